//! The queue settings as the Transmission RPC shows them (`session-get`) and takes them
//! (`session-set`); the queue itself is `crate::queue`.

use serde_json::{json, Map, Value};

use super::args::{as_bool, as_int};
use crate::queue::{QueueSettings, MAX_MINUTES, MAX_SIZE};

/// What `session-get` shows of the queues.
pub fn session_values(q: &QueueSettings) -> Map<String, Value> {
    let v = json!({
        "download-queue-enabled": q.download_enabled,
        "download-queue-size": q.download_size,
        "seed-queue-enabled": q.seed_enabled,
        "seed-queue-size": q.seed_size,
        "queue-stalled-enabled": q.stalled_enabled,
        "queue-stalled-minutes": q.stalled_minutes,
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Whether `key` is a queue setting of `session-set`.
pub fn is_session_key(key: &str) -> bool {
    session_values(&QueueSettings::default()).contains_key(key)
}

/// Takes one queue setting of `session-set` into `q`; why not, for a bad value.
pub fn set_key(q: &mut QueueSettings, key: &str, v: &Value) -> Result<(), String> {
    let boolean = || as_bool(v).ok_or("must be true or false");
    let int = |hi: i64| {
        as_int(v)
            .filter(|n| (0..=hi).contains(n))
            .map(|n| n as u32)
            .ok_or(format!("must be a whole number from 0 to {hi}"))
    };
    match key {
        "download-queue-enabled" => q.download_enabled = boolean()?,
        "download-queue-size" => q.download_size = int(MAX_SIZE)?,
        "seed-queue-enabled" => q.seed_enabled = boolean()?,
        "seed-queue-size" => q.seed_size = int(MAX_SIZE)?,
        "queue-stalled-enabled" => q.stalled_enabled = boolean()?,
        "queue-stalled-minutes" => q.stalled_minutes = int(MAX_MINUTES)?,
        _ => return Err("unknown argument".into()),
    }
    Ok(())
}
