//! `session-get`, `session-set`, `session-stats` and `free-space`.

use serde_json::{json, Value};

use super::{bool_arg, num_arg, str_arg, Args, RpcError, RpcResult, RPC_VERSION, RPC_VERSION_MIN};
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

pub fn get(r: &Registry, _args: &Args, session_id: &str) -> Value {
    let dir = r.default_dir();
    let free = space(&dir).map_or(-1, |(f, _)| f as i64);
    let s = &r.settings;
    json!({
        "rpc-version": RPC_VERSION,
        "rpc-version-minimum": RPC_VERSION_MIN,
        "rpc-version-semver": "5.3.0",
        "version": concat!(env!("CARGO_PKG_VERSION"), " (share)"),
        "session-id": session_id,
        "download-dir": dir.to_string_lossy(),
        "download-dir-free-space": free,
        "incomplete-dir": dir.to_string_lossy(),
        "incomplete-dir-enabled": false,
        "config-dir": "",
        "peer-port": r.session.local_addr().port(),
        "peer-port-random-on-start": false,
        "port-forwarding-enabled": false,
        "encryption": r.session_settings.encryption,
        "dht-enabled": r.session_settings.dht,
        "pex-enabled": r.session_settings.pex,
        "lpd-enabled": r.session_settings.lsd,
        "utp-enabled": r.session_settings.utp,
        "seedRatioLimit": s.seed_ratio_limit,
        "seedRatioLimited": s.seed_ratio_limited,
        "idle-seeding-limit": s.idle_seeding_limit,
        "idle-seeding-limit-enabled": s.idle_seeding_limit_enabled,
        "speed-limit-down": r.normal_limits().down.map_or(0, |b| b / 1000),
        "speed-limit-down-enabled": r.normal_limits().down.is_some(),
        "speed-limit-up": r.normal_limits().up.map_or(0, |b| b / 1000),
        "speed-limit-up-enabled": r.normal_limits().up.is_some(),
        "alt-speed-enabled": false,
        "alt-speed-down": 0,
        "alt-speed-up": 0,
        "alt-speed-time-enabled": false,
        "alt-speed-time-begin": 0,
        "alt-speed-time-end": 0,
        "alt-speed-time-day": 0,
        "blocklist-enabled": false,
        "blocklist-size": 0,
        "blocklist-url": "",
        "cache-size-mb": 0,
        "download-queue-enabled": false,
        "download-queue-size": 0,
        "seed-queue-enabled": false,
        "seed-queue-size": 0,
        "queue-stalled-enabled": false,
        "queue-stalled-minutes": 30,
        "peer-limit-global": r.session_settings.peer_limit_global,
        "peer-limit-per-torrent": r.torrent_defaults.max_peers,
        "rename-partial-files": false,
        "start-added-torrents": true,
        "trash-original-torrent-files": false,
        "script-torrent-done-enabled": false,
        "script-torrent-done-filename": "",
        "units": {
            "speed-units": ["kB/s", "MB/s", "GB/s", "TB/s"],
            "speed-bytes": 1000,
            "size-units": ["kB", "MB", "GB", "TB"],
            "size-bytes": 1000,
            "memory-units": ["KiB", "MiB", "GiB", "TiB"],
            "memory-bytes": 1024
        }
    })
}

pub fn set(r: &mut Registry, args: &Args) -> RpcResult {
    if let Some(d) = str_arg(args, "download-dir")? {
        let dir = paths::download_dir(&r.download_root, d)?;
        r.settings.download_dir = Some(dir);
    }
    if let Some(v) = num_arg(args, "seedRatioLimit")? {
        if v < 0.0 {
            return Err(RpcError("`seedRatioLimit` must not be negative".into()));
        }
        r.settings.seed_ratio_limit = v;
    }
    if let Some(v) = bool_arg(args, "seedRatioLimited")? {
        r.settings.seed_ratio_limited = v;
    }
    if let Some(v) = num_arg(args, "idle-seeding-limit")? {
        r.settings.idle_seeding_limit = v.clamp(0.0, 1e9) as u64;
    }
    if let Some(v) = bool_arg(args, "idle-seeding-limit-enabled")? {
        r.settings.idle_seeding_limit_enabled = v;
    }
    r.mark_dirty();
    r.save();
    Ok(json!({}))
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
