//! The Transmission RPC (rpc-version 17), as Transmission 3.00 and 4.0 speak it: a JSON
//! object `{"method", "arguments", "tag"}` in, `{"result", "arguments", "tag"}` out, where
//! `result` is `"success"` or the error's text. Unknown methods and bad arguments get that
//! error form; nothing here panics on what a client sends, and a `session-set` or
//! `torrent-set` that fails changes nothing.
//!
//! - `args`: reading arguments (Transmission's coercions, an error naming anything else).
//! - `session` and `session_set`: the session's settings, all or nothing.
//! - `get`, `set`: `torrent-get` and `torrent-set` (all or nothing).
//! - `trackers`: `trackers`, `trackerStats`, `trackerList`, and tracker edits.
//! - `rename`: `torrent-rename-path`.
//! - `queue`: the queue settings of `session-get`/`session-set` (the queue is `crate::queue`).

mod args;
mod get;
mod queue;
mod rename;
pub(crate) mod session;
mod session_set;
mod set;
mod trackers;

pub use args::{bool_arg, int_arg, int_in, num_arg, str_arg, strings_arg};
pub use rename::plan as rename_plan;

use std::path::PathBuf;

use base64::Engine as _;
use serde_json::{json, Map, Value};

use crate::owner::Handle;
use crate::registry::{Added, NewSource, NewTorrent, Registry};
use crate::{ops, paths};

/// The RPC version we speak, and the oldest we still answer like.
pub const RPC_VERSION: u64 = 17;
pub const RPC_VERSION_MIN: u64 = 14;

/// An error for the `result` field.
#[derive(Debug)]
pub struct RpcError(pub String);

impl<T: std::fmt::Display> From<T> for RpcError {
    fn from(e: T) -> Self {
        RpcError(e.to_string())
    }
}

type Args = Map<String, Value>;
type RpcResult = Result<Value, RpcError>;

/// Answers one request body (already read, bounded by the HTTP layer).
pub async fn handle(h: &Handle, body: &[u8], session_id: &str) -> Value {
    let req: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return answer(Err(RpcError(format!("malformed JSON request: {e}"))), None),
    };
    let tag = req.get("tag").cloned();
    let Some(method) = req.get("method").and_then(Value::as_str) else {
        return answer(Err(RpcError("no method given".into())), tag);
    };
    let args = match req.get("arguments") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return answer(Err(RpcError("`arguments` is not an object".into())), tag),
    };
    answer(dispatch(h, method, args, session_id).await, tag)
}

/// Runs a method: what only reads or changes the registry runs on its owner; what waits on
/// the network or the disk runs here, around its requests to the owner.
async fn dispatch(h: &Handle, method: &str, args: Args, session_id: &str) -> RpcResult {
    let sid = session_id.to_owned();
    match method {
        "session-get" => h.read(move |r| session::get(r, &args, &sid)).await?,
        "session-set" => {
            let folders = session_set::folders(&h.download_root, &args);
            h.read(move |r| session_set::set(r, &args, folders, &sid))
                .await?
        }
        "session-stats" => Ok(h.read(|r| session::stats(r)).await?),
        "session-close" => Ok(json!({})),
        "torrent-get" => get::torrent_get(h, args).await,
        "torrent-add" => add(h, args).await,
        "torrent-set" => h.read(move |r| set::torrent_set(r, &args)).await?,
        "torrent-start" | "torrent-start-now" => {
            let targets = h.read(move |r| ids(r, &args)).await??;
            // `-now` bypasses the queue.
            let now = method == "torrent-start-now";
            h.call(move |r| {
                Box::pin(async move {
                    for id in targets {
                        r.start_or_rerun(id, now).await;
                    }
                    r.save();
                })
            })
            .await?;
            Ok(json!({}))
        }
        "torrent-stop" => {
            h.read(move |r| {
                for id in ids(r, &args)? {
                    r.stop(id);
                }
                // Their slots go to the next in the queues.
                r.pump();
                r.save();
                Ok(json!({}))
            })
            .await?
        }
        "torrent-verify" => {
            for id in h.read(move |r| ids(r, &args)).await?? {
                ops::verify(h, id).await?;
            }
            Ok(json!({}))
        }
        "torrent-reannounce" => {
            h.read(move |r| {
                for id in ids(r, &args)? {
                    if let Some(t) = r.entries.get(&id).and_then(|e| e.handle.as_ref()) {
                        t.send(share_engine::TorrentCommand::Reannounce);
                    }
                }
                Ok(json!({}))
            })
            .await?
        }
        "queue-move-top" | "queue-move-up" | "queue-move-down" | "queue-move-bottom" => {
            let how = crate::queue::Move::of_method(method);
            h.read(move |r| {
                let targets = ids(r, &args)?;
                if let Some(how) = how {
                    r.queue_move(&targets, how);
                }
                r.save();
                Ok(json!({}))
            })
            .await?
        }
        "torrent-rename-path" => rename::rename_path(h, args).await,
        "torrent-remove" => remove(h, args).await,
        "torrent-set-location" => set_location(h, args).await,
        "free-space" => session::free_space(&h.download_root, &args),
        // From what the session knows (a port mapping, or a peer from outside that
        // connected), not from an outside service.
        "port-test" => Ok(json!({"port-is-open": h.session.port_open()})),
        "blocklist-update" => {
            let (url, on, lists, session) = h
                .read(|r| {
                    let s = &r.settings;
                    (
                        s.blocklist_url.clone(),
                        s.blocklist_enabled,
                        r.blocklist.clone(),
                        r.session.clone(),
                    )
                })
                .await?;
            let n = lists.update(&session, &url, on).await?;
            Ok(json!({"blocklist-size": n}))
        }
        _ => Err(RpcError("method name not recognized".into())),
    }
}

fn answer(result: RpcResult, tag: Option<Value>) -> Value {
    let mut out = match result {
        Ok(args) => json!({"result": "success", "arguments": args}),
        Err(RpcError(e)) => json!({"result": e, "arguments": {}}),
    };
    if let Some(t) = tag {
        out["tag"] = t;
    }
    out
}

/// The torrents an `ids` argument names: every one when absent; a number, a hash string, or
/// a list of either; `"recently-active"` for those active in the last minute.
pub fn ids(r: &Registry, args: &Args) -> Result<Vec<u32>, RpcError> {
    let all = || r.entries.keys().copied().collect::<Vec<u32>>();
    let one = |v: &Value| -> Result<Option<u32>, RpcError> {
        match v {
            Value::Number(n) => n
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(|n| r.entries.contains_key(&n).then_some(n))
                .ok_or_else(|| RpcError(format!("invalid id {n}"))),
            Value::String(s) => {
                if matches!(s.len(), 40 | 64) && s.bytes().all(|b| b.is_ascii_hexdigit()) {
                    Ok(r.find_hex(s))
                } else {
                    Err(RpcError(format!("invalid id {s:?}")))
                }
            }
            _ => Err(RpcError("invalid id".into())),
        }
    };
    match args.get("ids") {
        None | Some(Value::Null) => Ok(all()),
        Some(Value::String(s)) if s == "recently-active" => {
            let now = tokio::time::Instant::now();
            Ok(r.entries
                .iter()
                .filter(|(_, e)| {
                    now.duration_since(e.last_active) < crate::registry::RECENT
                        || e.stats().is_some_and(|s| {
                            matches!(
                                s.state(),
                                share_engine::State::Checking | share_engine::State::CheckWait
                            )
                        })
                })
                .map(|(id, _)| *id)
                .collect())
        }
        Some(Value::Array(list)) => {
            if list.len() > 100_000 {
                return Err(RpcError("too many ids".into()));
            }
            let mut out = Vec::new();
            for v in list {
                if let Some(id) = one(v)? {
                    out.push(id);
                }
            }
            Ok(out)
        }
        Some(v) => Ok(one(v)?.into_iter().collect()),
    }
}

fn download_dir(r: &Registry, args: &Args) -> Result<PathBuf, RpcError> {
    match str_arg(args, "download-dir")? {
        Some(d) => Ok(paths::download_dir(&r.download_root, d)?),
        None => Ok(r.default_dir()),
    }
}

async fn add(h: &Handle, args: Args) -> RpcResult {
    // Everything the arguments say is checked before anything is fetched.
    let a = args.clone();
    let (dir, watch, stopped) = h
        .read(move |r| {
            Ok::<_, RpcError>((
                download_dir(r, &a)?,
                r.watch.clone(),
                r.settings.add_stopped,
            ))
        })
        .await??;
    // As `start-added-torrents` says, unless the call says.
    let paused = bool_arg(&args, "paused")?.unwrap_or(stopped);
    let labels = strings_arg(&args, "labels")?.unwrap_or_default();
    let files = set::file_choice(&args)?;
    let source = match (str_arg(&args, "metainfo")?, str_arg(&args, "filename")?) {
        (Some(b64), _) => {
            let clean: String = b64.chars().filter(|c| !c.is_whitespace()).collect();
            NewSource::Metainfo(
                base64::engine::general_purpose::STANDARD
                    .decode(clean)
                    .map_err(|e| RpcError(format!("`metainfo` is not base64: {e}")))?,
            )
        }
        (None, Some(f)) if share_core::Magnet::looks_like(f) => NewSource::Magnet(f.to_owned()),
        (None, Some(f)) if f.starts_with("http://") || f.starts_with("https://") => {
            ops::fetch_url(h, f).await?
        }
        (None, Some(f)) => {
            let mut allowed: Vec<&std::path::Path> = vec![h.download_root.as_path()];
            if let Some(w) = &watch {
                allowed.push(w);
            }
            ops::read_local(paths::local_file(&allowed, f)?).await?
        }
        (None, None) => return Err(RpcError("no filename or metainfo specified".into())),
    };
    let t = NewTorrent {
        source,
        download_dir: dir,
        paused,
        labels,
        files,
        options: Default::default(),
    };
    let (key, id, name, hash) = match ops::add(h, t).await.map_err(RpcError)? {
        Added::Added { id, name, hash } => ("torrent-added", id, name, hash),
        Added::Duplicate { id, name, hash } => ("torrent-duplicate", id, name, hash),
    };
    Ok(json!({ key: {"id": id, "name": name, "hashString": hash} }))
}

async fn remove(h: &Handle, args: Args) -> RpcResult {
    let delete = bool_arg(&args, "delete-local-data")?.unwrap_or(false);
    let mut errors = Vec::new();
    for id in h.read(move |r| ids(r, &args)).await?? {
        if let Err(e) = ops::remove(h, id, delete).await {
            errors.push(e);
        }
    }
    if errors.is_empty() {
        Ok(json!({}))
    } else {
        Err(RpcError(errors.join("; ")))
    }
}

async fn set_location(h: &Handle, args: Args) -> RpcResult {
    let Some(loc) = str_arg(&args, "location")? else {
        return Err(RpcError("no location given".into()));
    };
    let dir = paths::download_dir(&h.download_root, loc)?;
    let move_data = bool_arg(&args, "move")?.unwrap_or(false);
    for id in h.read(move |r| ids(r, &args)).await?? {
        ops::set_location(h, id, dir.clone(), move_data)
            .await
            .map_err(RpcError)?;
    }
    Ok(json!({}))
}
