//! `session-set`, all or nothing. Every argument is read and checked first: one that is
//! unknown, of the wrong type, out of range, or a setting share cannot change (to that
//! value) fails the call with an error naming each such argument and why, and nothing
//! changes. Then everything is applied at once: the saved settings (folders, seeding
//! goals, rate limits and their schedule, stopped adds, the queues, the blocklist's URL and
//! switch), the session's rate limits and blocklist, and the switches the session can flip
//! while it runs (PEX, LSD, µTP, encryption).
//!
//! What share cannot change is accepted only with the value `session-get` shows, so a
//! client that sends back every setting it read (a settings dialog) is not refused.

use std::path::PathBuf;

use serde_json::{json, Value};
use share_engine::transport::Policy;
use share_engine::{SwitchError, Switches};

use super::args::{as_bool, as_int, as_real};
use super::{queue, session, Args, RpcError, RpcResult};
use crate::registry::Registry;
use crate::saved::{RateLimits, SavedSession};
use crate::turtle::WeekMinute;

/// The folders a call names, resolved (confined to the download folder) by the caller
/// before it reaches the registry: `None` when not given.
#[derive(Debug, Default)]
pub struct Folders {
    pub download_dir: Option<Result<PathBuf, String>>,
    pub incomplete_dir: Option<Result<PathBuf, String>>,
}

/// Resolves `download-dir` and `incomplete-dir` (a stat or two: done off the registry).
pub fn folders(root: &std::path::Path, args: &Args) -> Folders {
    let one = |key: &str| {
        args.get(key).filter(|v| !v.is_null()).map(|v| match v {
            Value::String(s) => crate::paths::download_dir(root, s).map_err(|e| e.to_string()),
            _ => Err("must be a string".to_owned()),
        })
    };
    Folders {
        download_dir: one("download-dir"),
        incomplete_dir: one("incomplete-dir"),
    }
}

/// Why share cannot change a setting that `session-get` shows.
fn fixed(key: &str) -> Option<&'static str> {
    Some(match key {
        "dht-enabled" => {
            "the DHT node starts and stops with the daemon (--no-dht, --dht-bootstrap); \
             it cannot be switched while the daemon runs"
        }
        "peer-port" => {
            "the listening port is bound at start (--listen): its TCP listener and its µTP \
             and DHT sockets cannot move while the daemon runs; restart it with another \
             --listen"
        }
        "peer-port-random-on-start" => "share listens where --listen says",
        "port-forwarding-enabled" => "port mapping is chosen at start (--no-port-mapping)",
        "peer-limit-global" => "the connection limit is set at start (--max-connections)",
        "peer-limit-per-torrent" => "the per-torrent peer limit is set at start (--max-peers)",
        "rename-partial-files" => {
            "share writes each file under its own name from the start (no .part files)"
        }
        "cache-size-mb" => "share has no disk cache to size",
        "default-trackers" => "share adds no default trackers",
        "trash-original-torrent-files" => "share never deletes the .torrent files it is given",
        "script-torrent-added-enabled"
        | "script-torrent-added-filename"
        | "script-torrent-done-enabled"
        | "script-torrent-done-filename"
        | "script-torrent-done-seeding-enabled"
        | "script-torrent-done-seeding-filename" => "share runs no scripts",
        "tcp-enabled" => "TCP is chosen at start (--transports)",
        "blocklist-size"
        | "config-dir"
        | "download-dir-free-space"
        | "rpc-version"
        | "rpc-version-minimum"
        | "rpc-version-semver"
        | "session-id"
        | "units"
        | "version" => "it is read-only",
        _ => return None,
    })
}

/// Whether `asked` is, as the setting's type reads it, the value `current`.
fn same(asked: &Value, current: &Value) -> bool {
    match current {
        Value::Bool(b) => as_bool(asked) == Some(*b),
        Value::Number(n) if n.is_f64() => as_real(asked) == n.as_f64(),
        Value::Number(n) => as_int(asked) == n.as_i64(),
        other => asked == other,
    }
}

/// A call's changes, checked.
struct Plan {
    settings: SavedSession,
    /// The session's switches after the call, if it changes them.
    switches: Option<Switches>,
    /// The schedule changed: the alternative limits follow it at once.
    schedule_changed: bool,
    /// `alt-speed-enabled` as asked (it wins over the schedule in the same call).
    alt_mode: Option<bool>,
}

/// Reads every argument into a plan, or every reason it cannot be had.
fn plan(r: &Registry, args: &Args, folders: Folders, session_id: &str) -> Result<Plan, String> {
    let current = session::values(r, session_id);
    let mut s = r.settings.clone();
    let mut refused: Vec<String> = Vec::new();
    let mut no = |key: &str, why: &str| refused.push(format!("{key}: {why}"));
    let mut normal = r.normal_limits();
    let (mut down_kb, mut up_kb) = (
        current["speed-limit-down"].as_u64().unwrap_or(0),
        current["speed-limit-up"].as_u64().unwrap_or(0),
    );
    let (mut down_on, mut up_on) = (normal.down.is_some(), normal.up.is_some());
    let mut rates_changed = false;
    let sw = r.session.switches();
    let mut to = sw;
    let mut schedule_changed = false;
    let mut alt_mode = None;
    let mut keys: Vec<&String> = args.keys().collect();
    keys.sort();
    for key in keys {
        let v = &args[key.as_str()];
        let k = key.as_str();
        let boolean = || as_bool(v).ok_or("must be true or false");
        let int = |lo: i64, hi: i64| {
            as_int(v)
                .filter(|n| (lo..=hi).contains(n))
                .ok_or(format!("must be a whole number from {lo} to {hi}"))
        };
        // kB/s as Transmission counts them (1000 bytes).
        const MAX_KB: i64 = 100_000_000;
        let result: Result<(), String> = (|| {
            match k {
                "download-dir" => match &folders.download_dir {
                    Some(Ok(d)) => s.download_dir = Some(d.clone()),
                    Some(Err(e)) => return Err(e.clone()),
                    None => {}
                },
                "incomplete-dir" => match &folders.incomplete_dir {
                    Some(Ok(d)) => s.incomplete_dir = Some(d.clone()),
                    Some(Err(e)) => return Err(e.clone()),
                    None => {}
                },
                "incomplete-dir-enabled" => s.incomplete_dir_enabled = boolean()?,
                "seedRatioLimit" => {
                    s.seed_ratio_limit = as_real(v)
                        .filter(|f| (0.0..=1e9).contains(f))
                        .ok_or("must be a number from 0")?
                }
                "seedRatioLimited" => s.seed_ratio_limited = boolean()?,
                "idle-seeding-limit" => s.idle_seeding_limit = int(0, 1_000_000_000)? as u64,
                "idle-seeding-limit-enabled" => s.idle_seeding_limit_enabled = boolean()?,
                "speed-limit-down" => {
                    down_kb = int(0, MAX_KB)? as u64;
                    rates_changed = true;
                }
                "speed-limit-up" => {
                    up_kb = int(0, MAX_KB)? as u64;
                    rates_changed = true;
                }
                "speed-limit-down-enabled" => {
                    down_on = boolean()?;
                    rates_changed = true;
                }
                "speed-limit-up-enabled" => {
                    up_on = boolean()?;
                    rates_changed = true;
                }
                // 0: no limit that way (qBittorrent's meaning; see docs/engine.md).
                "alt-speed-down" => {
                    s.alt_limits.down = Some(int(0, MAX_KB)? as u64 * 1000).filter(|&b| b > 0)
                }
                "alt-speed-up" => {
                    s.alt_limits.up = Some(int(0, MAX_KB)? as u64 * 1000).filter(|&b| b > 0)
                }
                "alt-speed-enabled" => alt_mode = Some(boolean()?),
                "alt-speed-time-enabled" => {
                    s.alt_schedule.enabled = boolean()?;
                    schedule_changed = true;
                }
                "alt-speed-time-begin" => {
                    s.alt_schedule.begin = int(0, 1440)? as u16;
                    schedule_changed = true;
                }
                "alt-speed-time-end" => {
                    s.alt_schedule.end = int(0, 1440)? as u16;
                    schedule_changed = true;
                }
                "alt-speed-time-day" => {
                    s.alt_schedule.days = int(0, 127)? as u8;
                    schedule_changed = true;
                }
                "start-added-torrents" => s.add_stopped = !boolean()?,
                "encryption" => {
                    to.encryption = match v.as_str() {
                        Some("required") => Policy::Require,
                        Some("preferred") => Policy::Prefer,
                        Some("tolerated") => Policy::Disable,
                        _ => {
                            return Err(
                                "must be \"required\", \"preferred\" or \"tolerated\"".into()
                            )
                        }
                    }
                }
                "blocklist-enabled" => s.blocklist_enabled = boolean()?,
                // Fetched by `blocklist-update`: over HTTP(S) only (or none).
                "blocklist-url" => {
                    let url = v.as_str().ok_or("must be a string")?.trim();
                    if !(url.is_empty()
                        || url.starts_with("http://")
                        || url.starts_with("https://"))
                    {
                        return Err(format!("{url} is not an http or https URL"));
                    }
                    s.blocklist_url = url.to_owned();
                }
                "pex-enabled" => to.pex = boolean()?,
                "lpd-enabled" => to.lsd = boolean()?,
                "utp-enabled" => to.utp = boolean()?,
                // A measurement a client may send back with the rest: not a setting.
                "download-dir-free-space" => {
                    as_int(v).ok_or("must be a whole number")?;
                }
                _ if queue::is_session_key(k) => queue::set_key(&mut s.queue, k, v)?,
                _ => match (fixed(k), current.get(k)) {
                    (Some(why), Some(now)) => {
                        if !same(v, now) {
                            return Err(format!("{why} (it stays {now})"));
                        }
                    }
                    _ => return Err("unknown argument".into()),
                },
            }
            Ok(())
        })();
        if let Err(why) = result {
            no(k, &why);
        }
    }
    if to != sw {
        if let Err(e) = r.session.check_switches(&to) {
            let key = match e {
                SwitchError::NoUtpSocket | SwitchError::UtpOnly => "utp-enabled",
                SwitchError::LsdOffLoopback | SwitchError::LsdUnderProxy => "lpd-enabled",
            };
            no(key, &e.to_string());
        }
    }
    if !refused.is_empty() {
        return Err(format!(
            "session-set changed nothing: {}",
            refused.join("; ")
        ));
    }
    if rates_changed {
        normal = RateLimits {
            down: down_on.then_some(down_kb * 1000),
            up: up_on.then_some(up_kb * 1000),
        };
        s.speed_limit_kb.down = down_kb;
        s.speed_limit_kb.up = up_kb;
        s.rate_limits = Some(normal);
    }
    Ok(Plan {
        settings: s,
        switches: (to != sw).then_some(to),
        schedule_changed,
        alt_mode,
    })
}

pub fn set(r: &mut Registry, args: &Args, folders: Folders, session_id: &str) -> RpcResult {
    let p = plan(r, args, folders, session_id).map_err(RpcError)?;
    if let Some(to) = p.switches {
        // Checked in `plan`: this cannot fail now.
        r.session
            .set_switches(to)
            .map_err(|e| RpcError(e.to_string()))?;
    }
    if p.settings.blocklist_enabled != r.settings.blocklist_enabled {
        r.blocklist.enable(&r.session, p.settings.blocklist_enabled);
    }
    r.settings = p.settings;
    if p.schedule_changed {
        r.follow_schedule(WeekMinute::now(), true);
    }
    if let Some(on) = p.alt_mode {
        r.settings.alt_mode = on;
    }
    r.apply_rate_limits();
    // A queue that grew or was switched off lets its waiting torrents start.
    r.pump();
    r.mark_dirty();
    r.save();
    Ok(json!({}))
}
