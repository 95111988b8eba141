//! A torrent as qBittorrent's API shows it: the `torrents/info` object (a `sync/maindata`
//! torrent plus `hash`), its state string, and the sizes they share with `properties` and
//! `files`. Keys, types and sentinels are qBittorrent 5.1's: `-1` for "never" dates, eta
//! 8640000 for "unknown", ratio limits `-2` (the session's) and `-1` (none), 0 for an
//! unlimited rate, tags joined by `", "`.
//!
//! Built from the registry entry and, when the torrent task answered, its detailed status
//! (per-file progress and peers); without it the totals stand in.

use std::path::PathBuf;

use serde_json::{json, Map, Value};
use share_engine::{State, Status};

use crate::registry::{unix_now, Entry, Registry};

/// qBittorrent's "infinite" ETA.
pub const ETA_NONE: i64 = 8_640_000;

/// How a torrent stands, from what the registry and its task know.
pub struct View<'a> {
    pub r: &'a Registry,
    pub e: &'a Entry,
    pub st: Option<&'a Status>,
}

impl View<'_> {
    /// (bytes of the wanted files, of those not yet verified).
    pub fn wanted_sizes(&self) -> (u64, u64) {
        let Some(m) = &self.e.meta else {
            return (0, 0);
        };
        let files: Vec<_> = m.info.files.iter().filter(|f| !f.padding).collect();
        let verified_all = self.e.stats().map_or(0, |s| s.get(&s.verified));
        let statuses = self.st.map(|s| &s.files).filter(|f| f.len() == files.len());
        let mut size = 0;
        let mut left = 0;
        for (i, f) in files.iter().enumerate() {
            if !self.e.wanted(i) {
                continue;
            }
            size += f.length;
            match statuses {
                Some(s) => left += f.length.saturating_sub(s[i].verified),
                None => left += f.length,
            }
        }
        if statuses.is_none() {
            left = size.saturating_sub(verified_all.min(size));
        }
        (size, left)
    }

    pub fn complete(&self) -> bool {
        let (size, left) = self.wanted_sizes();
        self.e.meta.is_some() && size > 0 && left == 0
    }

    pub fn rates(&self) -> (u64, u64) {
        self.e
            .stats()
            .map_or((0, 0), |s| (s.get(&s.rate_down), s.get(&s.rate_up)))
    }

    /// qBittorrent's state string (5.x names).
    pub fn state(&self) -> &'static str {
        let e = self.e;
        let done = self.complete();
        match e.busy {
            Some("moving") => return "moving",
            Some("checking") => return if done { "checkingUP" } else { "checkingDL" },
            Some(_) => return if done { "stoppedUP" } else { "stoppedDL" },
            None => {}
        }
        if e.error.is_some() {
            return "error";
        }
        if e.saved.paused || e.handle.is_none() {
            return if done { "stoppedUP" } else { "stoppedDL" };
        }
        if e.queued && !matches!(e.state(), Some(State::CheckWait | State::Checking)) {
            return if e.is_seed() { "queuedUP" } else { "queuedDL" };
        }
        let (down, up) = self.rates();
        let forced = e.saved.force_start;
        match e.state() {
            Some(State::Metadata) => {
                if forced {
                    "forcedMetaDL"
                } else {
                    "metaDL"
                }
            }
            Some(State::CheckWait) => "checkingResumeData",
            Some(State::Checking) => {
                if e.saved.done > 0 {
                    "checkingUP"
                } else {
                    "checkingDL"
                }
            }
            Some(State::Seeding) => match (forced, up) {
                (true, _) => "forcedUP",
                (false, 0) => "stalledUP",
                _ => "uploading",
            },
            Some(State::Downloading) => match (forced, down) {
                (true, _) => "forcedDL",
                (false, 0) => "stalledDL",
                _ => "downloading",
            },
            Some(State::Paused) | None => {
                if done {
                    "stoppedUP"
                } else {
                    "stoppedDL"
                }
            }
        }
    }

    pub fn eta(&self) -> i64 {
        let (_, left) = self.wanted_sizes();
        let (down, _) = self.rates();
        if left == 0 || down == 0 || self.e.saved.paused {
            ETA_NONE
        } else {
            ((left / down) as i64).min(ETA_NONE)
        }
    }

    /// Connected peers that have everything, and the others.
    pub fn seeds_and_leechers(&self) -> (usize, usize) {
        let peers = self.st.map_or(&[][..], |s| s.peers.as_slice());
        let seeds = peers.iter().filter(|p| p.progress >= 1.0).count();
        (seeds, peers.len() - seeds)
    }

    /// Content path: the single file, or the torrent's folder.
    pub fn content_path(&self) -> PathBuf {
        let name = match &self.e.meta {
            Some(m) => m.info.name.clone(),
            None => self.e.name(),
        };
        self.e.saved.download_dir.join(name)
    }

    pub fn trackers(&self) -> Vec<String> {
        match (&self.e.meta, &self.e.magnet) {
            (Some(m), _) => m.trackers.iter().flatten().cloned().collect(),
            (None, Some(m)) => m.trackers.clone(),
            _ => Vec::new(),
        }
    }

    pub fn magnet_uri(&self) -> String {
        self.e.meta.as_ref().map_or_else(
            || self.e.saved.magnet.clone().unwrap_or_default(),
            |m| m.magnet(),
        )
    }

    pub fn infohash_v2(&self) -> String {
        let v2 = match (&self.e.meta, &self.e.magnet) {
            (Some(m), _) => m.hashes.v2,
            (None, Some(m)) => m.hashes.v2,
            _ => None,
        };
        v2.map(hex::encode).unwrap_or_default()
    }

    pub fn ratio(&self) -> f64 {
        self.e.ratio().map_or(0.0, |r| r.min(9999.0))
    }

    /// Unix seconds of the last payload sent or received.
    pub fn last_activity(&self) -> i64 {
        unix_now() - self.e.last_active.elapsed().as_secs() as i64
    }
}

/// Per-torrent limits as qBittorrent writes them: -2 the session's, -1 none.
pub fn ratio_limit(e: &Entry) -> f64 {
    match e.saved.seed_ratio_mode {
        0 => -2.0,
        1 => e.saved.seed_ratio_limit,
        _ => -1.0,
    }
}

pub fn idle_limit(e: &Entry) -> i64 {
    match e.saved.seed_idle_mode {
        0 => -2,
        1 => e.saved.seed_idle_limit as i64,
        _ => -1,
    }
}

/// The limits in force (the session's resolved), -1 for none.
fn effective(r: &Registry, e: &Entry) -> (f64, i64, i64) {
    let s = &r.settings;
    let ratio = match e.saved.seed_ratio_mode {
        0 if s.seed_ratio_limited => s.seed_ratio_limit,
        0 => -1.0,
        _ => ratio_limit(e),
    };
    let time = match e.saved.seeding_time_limit {
        -2 => s.seeding_time_limit,
        v => v,
    };
    let idle = match idle_limit(e) {
        -2 if s.idle_seeding_limit_enabled => s.idle_seeding_limit as i64,
        -2 => -1,
        v => v,
    };
    (ratio, time, idle)
}

/// A torrent object without `hash` (as in `sync/maindata`).
pub fn torrent(v: &View) -> Map<String, Value> {
    let (e, r) = (v.e, v.r);
    let meta = e.meta.as_ref();
    let (size, left) = v.wanted_sizes();
    let (down, up) = v.rates();
    let (seeds, leechers) = v.seeds_and_leechers();
    let stats = e.stats();
    let session = |c: fn(&share_engine::Stats) -> &std::sync::atomic::AtomicU64| {
        stats.map_or(0, |s| s.get(c(s)))
    };
    let (max_ratio, max_time, max_idle) = effective(r, e);
    let trackers = v.trackers();
    let content = v.content_path();
    let multi = meta.is_some_and(|m| !m.info.single_file);
    let months = e.saved.seconds_active as f64 / (30.0 * 86_400.0);
    let o = json!({
        "added_on": e.saved.added,
        "amount_left": left,
        "auto_tmm": false,
        "availability": availability(v),
        "category": e.saved.category,
        "comment": meta.and_then(|m| m.comment.clone()).unwrap_or_default(),
        "completed": size - left,
        "completion_on": if e.saved.done > 0 { e.saved.done } else { -1 },
        "content_path": content.to_string_lossy(),
        "dl_limit": e.saved.down_limit.unwrap_or(0),
        "dlspeed": down,
        "download_path": "",
        "downloaded": e.downloaded_ever(),
        "downloaded_session": session(|s| &s.downloaded),
        "eta": v.eta(),
        "f_l_piece_prio": false,
        "force_start": e.saved.force_start,
        "has_metadata": meta.is_some(),
        "inactive_seeding_time_limit": idle_limit(e),
        "infohash_v1": e.hashes().v1.map(|h| h.to_hex()).unwrap_or_default(),
        "infohash_v2": v.infohash_v2(),
        "last_activity": v.last_activity(),
        "magnet_uri": v.magnet_uri(),
        "max_inactive_seeding_time": max_idle,
        "max_ratio": max_ratio,
        "max_seeding_time": max_time,
        "name": e.name(),
        "num_complete": seeds,
        "num_incomplete": leechers,
        "num_leechs": leechers,
        "num_seeds": seeds,
        "popularity": if months > 0.0 { v.ratio() / months.max(1.0 / 30.0) } else { 0.0 },
        "priority": queue_position(v.r, e),
        "private": meta.map(|m| m.info.private),
        "progress": if size == 0 { 0.0 } else { (size - left) as f64 / size as f64 },
        "ratio": v.ratio(),
        "ratio_limit": ratio_limit(e),
        "reannounce": 0,
        "root_path": if multi { content.to_string_lossy().into_owned() } else { String::new() },
        "save_path": e.saved.download_dir.to_string_lossy(),
        "seeding_time": e.saved.seconds_seeding,
        "seeding_time_limit": e.saved.seeding_time_limit,
        "seen_complete": match (e.saved.done, seeds) {
            (d, _) if d > 0 => d,
            (_, 0) => -1,
            _ => unix_now(),
        },
        "seq_dl": e.saved.sequential,
        "size": size,
        "state": v.state(),
        "super_seeding": false,
        "tags": e.saved.labels.join(", "),
        "time_active": e.saved.seconds_active,
        "total_size": e.total_size(),
        "tracker": trackers.first().cloned().unwrap_or_default(),
        "trackers_count": trackers.len(),
        "up_limit": e.saved.up_limit.unwrap_or(0),
        "uploaded": e.uploaded_ever(),
        "uploaded_session": session(|s| &s.uploaded),
        "upspeed": up,
    });
    match o {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Copies of the content among the connected peers, roughly (share does not keep each
/// peer's pieces here): the sum of their shares; -1 when stopped, as qBittorrent.
pub fn availability(v: &View) -> f64 {
    if v.e.saved.paused || v.e.handle.is_none() {
        return -1.0;
    }
    let peers = v.st.map_or(&[][..], |s| s.peers.as_slice());
    peers.iter().map(|p| p.progress).sum()
}

/// The torrent's place in the queue, 1-based (its `queuePosition` in the Transmission RPC,
/// plus one); 0 when queueing is off or the torrent is complete, as qBittorrent says.
pub fn queue_position(r: &Registry, e: &Entry) -> u32 {
    if !super::app::queueing(&r.settings.queue) || e.is_seed() {
        0
    } else {
        e.saved.queue_position.saturating_add(1)
    }
}

/// A torrent object with its `hash` (as in `torrents/info`).
pub fn torrent_with_hash(v: &View) -> Map<String, Value> {
    let mut m = torrent(v);
    m.insert("hash".into(), json!(v.e.saved.hash));
    m
}
