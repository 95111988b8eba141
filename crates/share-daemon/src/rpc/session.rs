//! `session-get`, `session-stats` and `free-space` (`session-set` is in `session_set.rs`).

use serde_json::{json, Map, Value};

use super::{str_arg, Args, RpcError, RpcResult, RPC_VERSION, RPC_VERSION_MIN};
use crate::paths;
use crate::registry::Registry;

/// Free and total bytes of the filesystem that holds `path`.
pub(crate) fn space(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: `c` is a valid NUL-terminated path and `st` is written by statvfs only.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let unit = st.f_frsize as u64;
    Some((st.f_bavail as u64 * unit, st.f_blocks as u64 * unit))
}

/// Transmission's word for an encryption policy.
pub fn encryption_word(p: share_engine::transport::Policy) -> &'static str {
    use share_engine::transport::Policy;
    match p {
        Policy::Require => "required",
        Policy::Prefer => "preferred",
        Policy::Disable => "tolerated",
    }
}

/// `session-get`: every key, or those `fields` names (unknown names are left out, as
/// Transmission does).
pub fn get(r: &Registry, args: &Args, session_id: &str) -> RpcResult {
    let all = values(r, session_id);
    match args.get("fields") {
        None | Some(Value::Null) => Ok(Value::Object(all)),
        Some(Value::Array(names)) => Ok(Value::Object(
            names
                .iter()
                .filter_map(Value::as_str)
                .filter_map(|n| Some((n.to_owned(), all.get(n)?.clone())))
                .collect(),
        )),
        Some(_) => Err(RpcError("`fields` must be a list of names".into())),
    }
}

/// Every session key with its value now.
pub fn values(r: &Registry, session_id: &str) -> Map<String, Value> {
    let dir = r.default_dir();
    let free = space(&dir).map_or(-1, |(f, _)| f as i64);
    let s = &r.settings;
    let sw = r.session.switches();
    let normal = r.normal_limits();
    let kb = |b: u64| b / 1000;
    let v = json!({
        "rpc-version": RPC_VERSION,
        "rpc-version-minimum": RPC_VERSION_MIN,
        "rpc-version-semver": "5.3.0",
        "version": concat!(env!("CARGO_PKG_VERSION"), " (share)"),
        "session-id": session_id,
        "config-dir": r.config_dir().to_string_lossy(),
        "download-dir": dir.to_string_lossy(),
        "download-dir-free-space": free,
        "incomplete-dir": r.incomplete_dir().to_string_lossy(),
        "incomplete-dir-enabled": s.incomplete_dir_enabled,
        "peer-port": r.session.local_addr().port(),
        "peer-port-random-on-start": false,
        "port-forwarding-enabled": r.session_settings.port_mapping,
        "encryption": encryption_word(sw.encryption),
        "dht-enabled": r.session_settings.dht,
        "pex-enabled": sw.pex,
        "lpd-enabled": sw.lsd,
        "utp-enabled": sw.utp,
        "tcp-enabled": r.session_settings.tcp,
        "seedRatioLimit": s.seed_ratio_limit,
        "seedRatioLimited": s.seed_ratio_limited,
        "idle-seeding-limit": s.idle_seeding_limit,
        "idle-seeding-limit-enabled": s.idle_seeding_limit_enabled,
        "speed-limit-down": normal.down.map_or(s.speed_limit_kb.down, kb),
        "speed-limit-down-enabled": normal.down.is_some(),
        "speed-limit-up": normal.up.map_or(s.speed_limit_kb.up, kb),
        "speed-limit-up-enabled": normal.up.is_some(),
        "alt-speed-enabled": s.alt_mode,
        "alt-speed-down": s.alt_limits.down.map_or(0, kb),
        "alt-speed-up": s.alt_limits.up.map_or(0, kb),
        "alt-speed-time-enabled": s.alt_schedule.enabled,
        "alt-speed-time-begin": s.alt_schedule.begin,
        "alt-speed-time-end": s.alt_schedule.end,
        "alt-speed-time-day": s.alt_schedule.days,
        "blocklist-enabled": s.blocklist_enabled,
        "blocklist-size": r.blocklist.size(),
        "blocklist-url": s.blocklist_url,
        "cache-size-mb": 0,
        "default-trackers": "",
        "peer-limit-global": r.session_settings.peer_limit_global,
        "peer-limit-per-torrent": r.torrent_defaults.max_peers,
        "rename-partial-files": false,
        "start-added-torrents": !s.add_stopped,
        "trash-original-torrent-files": false,
        "script-torrent-added-enabled": false,
        "script-torrent-added-filename": "",
        "script-torrent-done-enabled": false,
        "script-torrent-done-filename": "",
        "script-torrent-done-seeding-enabled": false,
        "script-torrent-done-seeding-filename": "",
        "units": {
            "speed-units": ["kB/s", "MB/s", "GB/s", "TB/s"],
            "speed-bytes": 1000,
            "size-units": ["kB", "MB", "GB", "TB"],
            "size-bytes": 1000,
            "memory-units": ["KiB", "MiB", "GiB", "TiB"],
            "memory-bytes": 1024
        }
    });
    let mut m = match v {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    m.extend(super::queue::session_values(&r.settings.queue));
    m
}

pub fn stats(r: &Registry) -> Value {
    let mut up_rate = 0;
    let mut down_rate = 0;
    let mut active = 0;
    let mut paused = 0;
    let (mut up, mut down) = (r.removed_up, r.removed_down);
    for e in r.entries.values() {
        if let Some(s) = e.stats() {
            up_rate += s.get(&s.rate_up);
            down_rate += s.get(&s.rate_down);
        }
        // As Transmission counts: running or paused, the two adding up to the total.
        if e.saved.paused {
            paused += 1;
        } else {
            active += 1;
        }
        up += e.uploaded_ever();
        down += e.downloaded_ever();
    }
    let secs = r.started.elapsed().as_secs();
    let totals = json!({
        "uploadedBytes": up,
        "downloadedBytes": down,
        "filesAdded": r.entries.len(),
        "sessionCount": 1,
        "secondsActive": secs,
    });
    json!({
        "activeTorrentCount": active,
        "pausedTorrentCount": paused,
        "torrentCount": r.entries.len(),
        "downloadSpeed": down_rate,
        "uploadSpeed": up_rate,
        "cumulative-stats": totals,
        "current-stats": totals,
    })
}

pub fn free_space(download_root: &std::path::Path, args: &Args) -> RpcResult {
    let Some(p) = str_arg(args, "path")? else {
        return Err(RpcError("no path given".into()));
    };
    let path = paths::download_dir(download_root, p)?;
    let (free, total) = space(&path)
        .or_else(|| space(download_root))
        .ok_or_else(|| RpcError(format!("{p}: cannot tell its free space")))?;
    Ok(json!({"path": p, "size-bytes": free, "total_size": total}))
}
