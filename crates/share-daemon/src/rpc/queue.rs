//! Transmission's download and seed queues, as far as share has them: not yet. This is the
//! one place where they plug in: the session keys `session-get` shows for them, the
//! `session-set` keys and the `torrent-set` key (`queuePosition`) a queue would take, and
//! the `queue-move-*` methods. Until there is a queue, a value other than the one shown is
//! refused with an error naming it (never `success` for something ignored), and so are the
//! moves.

use serde_json::{json, Map, Value};

use super::RpcError;

/// What `session-get` shows of the queues: none (every torrent runs), and no stall rule.
pub fn session_values() -> Map<String, Value> {
    let v = json!({
        "download-queue-enabled": false,
        "download-queue-size": 0,
        "seed-queue-enabled": false,
        "seed-queue-size": 0,
        "queue-stalled-enabled": false,
        "queue-stalled-minutes": 30,
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Why share cannot take a queue setting now.
pub const NO_QUEUE: &str = "share has no download or seed queue yet: every torrent runs";

/// Whether `key` is a queue setting of `session-set`.
pub fn is_session_key(key: &str) -> bool {
    session_values().contains_key(key)
}

/// A torrent's place in the queue (`queuePosition`): its place in the list, by id.
pub fn position(id: u32) -> u32 {
    id.saturating_sub(1)
}

/// `queue-move-top`, `-up`, `-down`, `-bottom`.
pub fn move_refused(method: &str) -> RpcError {
    RpcError(format!("{method}: {NO_QUEUE}"))
}
