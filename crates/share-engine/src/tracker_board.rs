//! What a torrent's tracker client tells of each tracker (the daemon's `trackerStats`):
//! when it last announced there and how that went, the swarm's size as the tracker said,
//! and when it announces next. The client is the one writer; readers take a snapshot.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// One tracker, as its torrent's client last saw it. Times are Unix seconds, 0 for never.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackerStatus {
    pub url: String,
    /// Its tier (BEP 12), from 0.
    pub tier: usize,
    /// Tried in the latest announce round (or first in line before any): the others are
    /// backups, asked only when those fail.
    pub in_use: bool,
    /// An announce to it is under way.
    pub announcing: bool,
    pub last_announce_start: i64,
    pub last_announce: i64,
    /// `Success`, or why the announce failed; empty before the first.
    pub last_result: String,
    pub last_succeeded: bool,
    pub last_timed_out: bool,
    /// Peers its last answer held.
    pub last_peer_count: u32,
    /// Seeders and leechers its last answer counted, if it said.
    pub seeders: Option<u32>,
    pub leechers: Option<u32>,
    /// When the client announces next (0: nothing planned, as when it is stopped).
    pub next_announce: i64,
}

/// Each tracker of a torrent, in tier order.
///
/// A lock rather than a channel: the board lives in the torrent's `Stats`, which the
/// command line and the daemon share, and it is held only to swap or clone an `Arc`.
#[derive(Debug, Default)]
pub struct TrackerBoard(Mutex<Arc<Vec<TrackerStatus>>>);

impl TrackerBoard {
    /// The trackers as they are now.
    pub fn get(&self) -> Arc<Vec<TrackerStatus>> {
        self.lock().clone()
    }

    /// Changes the board (copy on write: readers keep the snapshot they took).
    pub(crate) fn update(&self, f: impl FnOnce(&mut Vec<TrackerStatus>)) {
        let mut g = self.lock();
        let mut list = (**g).clone();
        f(&mut list);
        *g = Arc::new(list);
    }

    /// One tracker's entry, created if new.
    pub(crate) fn with(&self, url: &str, tier: usize, f: impl FnOnce(&mut TrackerStatus)) {
        self.update(|list| {
            let i = match list.iter().position(|t| t.url == url) {
                Some(i) => i,
                None => {
                    list.push(TrackerStatus {
                        url: url.to_owned(),
                        tier,
                        ..TrackerStatus::default()
                    });
                    list.len() - 1
                }
            };
            f(&mut list[i]);
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Arc<Vec<TrackerStatus>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
