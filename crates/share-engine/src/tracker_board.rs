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

/// Each tracker of a torrent, in tier order, and which tracker client writes it: the one
/// that claimed it last (when a torrent's trackers change, the old client may still be
/// saying `stopped` while the new one starts; what it writes then is dropped).
///
/// A lock rather than a channel: the board lives in the torrent's `Stats`, which the
/// command line and the daemon share, and it is held only to swap or clone an `Arc`.
#[derive(Debug, Default)]
pub struct TrackerBoard(Mutex<Board>);

#[derive(Debug, Default)]
struct Board {
    writer: u64,
    list: Arc<Vec<TrackerStatus>>,
}

impl TrackerBoard {
    /// The trackers as they are now.
    pub fn get(&self) -> Arc<Vec<TrackerStatus>> {
        self.lock().list.clone()
    }

    /// Makes the caller the board's writer; the writers before it are ignored from now on.
    pub(crate) fn claim(&self) -> u64 {
        let mut g = self.lock();
        g.writer += 1;
        g.writer
    }

    /// Changes the board, if `writer` is the one that claimed it last (copy on write:
    /// readers keep the snapshot they took).
    pub(crate) fn update(&self, writer: u64, f: impl FnOnce(&mut Vec<TrackerStatus>)) {
        let mut g = self.lock();
        if g.writer == writer {
            let mut list = (*g.list).clone();
            f(&mut list);
            g.list = Arc::new(list);
        }
    }

    /// Keeps only the trackers that `keep` says (whoever writes the board).
    pub(crate) fn retain(&self, keep: impl Fn(&TrackerStatus) -> bool) {
        let mut g = self.lock();
        let list: Vec<TrackerStatus> = g.list.iter().filter(|s| keep(s)).cloned().collect();
        g.list = Arc::new(list);
    }

    /// One tracker's entry, created if new.
    pub(crate) fn with(
        &self,
        writer: u64,
        url: &str,
        tier: usize,
        f: impl FnOnce(&mut TrackerStatus),
    ) {
        self.update(writer, |list| {
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

    fn lock(&self) -> std::sync::MutexGuard<'_, Board> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_last_writer_writes() {
        let b = TrackerBoard::default();
        let old = b.claim();
        b.with(old, "http://a/announce", 0, |s| s.in_use = true);
        let new = b.claim();
        b.with(old, "http://b/announce", 0, |s| s.in_use = true);
        b.update(old, |l| l.clear());
        assert_eq!(b.get().len(), 1);
        b.with(new, "http://a/announce", 0, |s| s.next_announce = 5);
        assert_eq!(b.get()[0].next_announce, 5);
        b.retain(|s| s.url != "http://a/announce");
        assert!(b.get().is_empty());
    }
}
