//! The download and seed queues, as transmission-daemon 3.00 has them.
//!
//! Every torrent has a place in one queue order (`queuePosition`, 0 first, no gaps; a new
//! torrent goes last, a removed one closes its gap). A torrent that is started when its
//! direction's queue is full waits (*queued*: status 3 "queued to download" or 5 "queued to
//! seed") instead of running; its task is paused, so it keeps the peers it knows of but
//! holds no connection and announces nowhere. The queue's direction is the torrent's: down
//! while it lacks wanted pieces, up once it has them all.
//!
//! A queue is full when as many torrents of its direction run as its size, not counting
//! those *stalled* (no payload either way for `queue-stalled-minutes`, when that rule is
//! on) nor those started by force (qBittorrent's force start). Once a second, and after
//! every stop, removal and setting change, the first queued torrents by position take the
//! free slots. As in Transmission, a torrent that runs is never put back in the queue to
//! make room (not when the queue shrinks, not when another moves ahead of it); a torrent
//! started with `torrent-start-now` or by force bypasses it. Unlike Transmission 3.00,
//! queued torrents start when their queue is switched off rather than stay waiting.
//!
//! `SHARE_QUEUE_STALLED_SECS` (for tests) counts the stall time in seconds instead of
//! `queue-stalled-minutes`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use share_engine::{State, TorrentCommand};
use tokio::time::Instant;

use crate::registry::{Entry, Registry};

/// Test-only: the stall time in seconds, overriding `queue-stalled-minutes`.
pub const STALLED_SECS_ENV: &str = "SHARE_QUEUE_STALLED_SECS";

/// The queue settings (Transmission's session keys in brackets).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct QueueSettings {
    /// `download-queue-enabled`, `download-queue-size`.
    pub download_enabled: bool,
    pub download_size: u32,
    /// `seed-queue-enabled`, `seed-queue-size`.
    pub seed_enabled: bool,
    pub seed_size: u32,
    /// `queue-stalled-enabled`, `queue-stalled-minutes`.
    pub stalled_enabled: bool,
    pub stalled_minutes: u32,
}

impl Default for QueueSettings {
    /// Transmission's sizes and stall rule, with both queues off (every torrent runs, as
    /// before share had queues).
    fn default() -> Self {
        QueueSettings {
            download_enabled: false,
            download_size: 5,
            seed_enabled: false,
            seed_size: 10,
            stalled_enabled: true,
            stalled_minutes: 30,
        }
    }
}

/// Largest queue size and stall time taken.
pub const MAX_SIZE: i64 = 1_000_000;
pub const MAX_MINUTES: i64 = 1_000_000;

impl QueueSettings {
    pub fn enabled(&self, d: Direction) -> bool {
        match d {
            Direction::Down => self.download_enabled,
            Direction::Up => self.seed_enabled,
        }
    }

    pub fn size(&self, d: Direction) -> usize {
        match d {
            Direction::Down => self.download_size as usize,
            Direction::Up => self.seed_size as usize,
        }
    }

    /// How long a running torrent may move no payload before it counts as stalled; `None`
    /// when the rule is off.
    pub fn stalled_after(&self) -> Option<Duration> {
        if !self.stalled_enabled {
            return None;
        }
        // Read once: this is asked for every torrent on every tick and `torrent-get`.
        static SECS: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
        let test_secs = *SECS.get_or_init(|| {
            std::env::var(STALLED_SECS_ENV)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
        });
        let secs = test_secs.unwrap_or(u64::from(self.stalled_minutes) * 60);
        Some(Duration::from_secs(secs))
    }
}

/// Which queue a torrent waits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Down,
    Up,
}

/// `queue-move-top`, `-up`, `-down`, `-bottom` (and qBittorrent's `topPrio`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    Top,
    Up,
    Down,
    Bottom,
}

impl Move {
    pub fn of_method(method: &str) -> Option<Move> {
        Some(match method {
            "queue-move-top" | "topPrio" => Move::Top,
            "queue-move-up" | "increasePrio" => Move::Up,
            "queue-move-down" | "decreasePrio" => Move::Down,
            "queue-move-bottom" | "bottomPrio" => Move::Bottom,
            _ => return None,
        })
    }
}

/// Puts `id` at `pos` of `order` (the ids in queue order), the others closing up around it;
/// a place past the end is the end.
pub fn set_position(order: &mut Vec<u32>, id: u32, pos: usize) {
    let Some(at) = order.iter().position(|&x| x == id) else {
        return;
    };
    order.remove(at);
    order.insert(pos.min(order.len()), id);
}

/// Moves `ids` as Transmission does: to the top or bottom keeping their order among
/// themselves; up or down one place each.
pub fn move_ids(order: &mut Vec<u32>, ids: &[u32], how: Move) {
    let place = |order: &Vec<u32>, id: u32| order.iter().position(|&x| x == id);
    let mut picked: Vec<(usize, u32)> = ids
        .iter()
        .filter_map(|&id| place(order, id).map(|p| (p, id)))
        .collect();
    picked.sort_unstable();
    picked.dedup();
    match how {
        Move::Top => {
            for &(_, id) in picked.iter().rev() {
                set_position(order, id, 0);
            }
        }
        Move::Bottom => {
            for &(_, id) in &picked {
                set_position(order, id, usize::MAX);
            }
        }
        Move::Up => {
            for &(_, id) in &picked {
                if let Some(p) = place(order, id) {
                    set_position(order, id, p.saturating_sub(1));
                }
            }
        }
        Move::Down => {
            for &(_, id) in picked.iter().rev() {
                if let Some(p) = place(order, id) {
                    set_position(order, id, p + 1);
                }
            }
        }
    }
}

impl Entry {
    /// Whether it has every wanted piece: as its task last said, once its data was checked;
    /// before that, whether it was ever complete.
    pub fn is_seed(&self) -> bool {
        if self.meta.is_none() {
            return false;
        }
        match (&self.handle, self.state()) {
            (Some(h), Some(State::Downloading | State::Seeding | State::Paused)) => {
                h.stats.complete.load(std::sync::atomic::Ordering::Relaxed)
            }
            _ => self.saved.done != 0,
        }
    }

    pub fn direction(&self) -> Direction {
        if self.is_seed() {
            Direction::Up
        } else {
            Direction::Down
        }
    }

    /// Started and not waiting in a queue (it may still be checking its data).
    pub fn running(&self) -> bool {
        !self.saved.paused && !self.queued && self.handle.is_some()
    }
}

impl Registry {
    /// The torrents in queue order.
    pub fn queue_order(&self) -> Vec<u32> {
        let mut ids: Vec<(u32, u32)> = self
            .entries
            .iter()
            .map(|(id, e)| (e.saved.queue_position, *id))
            .collect();
        ids.sort_unstable();
        ids.into_iter().map(|(_, id)| id).collect()
    }

    /// Gives the torrents the places of `order` (0, 1, ...).
    pub fn store_order(&mut self, order: &[u32]) {
        for (pos, id) in order.iter().enumerate() {
            if let Some(e) = self.entries.get_mut(id) {
                if e.saved.queue_position != pos as u32 {
                    e.saved.queue_position = pos as u32;
                    self.mark_dirty();
                }
            }
        }
    }

    /// The torrent at `gone` left the queue: those behind it move up one place.
    pub fn close_gap(&mut self, gone: u32) {
        for e in self.entries.values_mut() {
            if e.saved.queue_position > gone {
                e.saved.queue_position -= 1;
            }
        }
        self.mark_dirty();
    }

    /// Moves torrents in the queue; a torrent that moved ahead may take a free slot.
    pub fn queue_move(&mut self, ids: &[u32], how: Move) {
        let mut order = self.queue_order();
        move_ids(&mut order, ids, how);
        self.store_order(&order);
        self.pump();
    }

    /// `queuePosition` of `torrent-set`.
    pub fn set_queue_position(&mut self, id: u32, pos: usize) {
        let mut order = self.queue_order();
        set_position(&mut order, id, pos);
        self.store_order(&order);
        self.pump();
    }

    /// Whether a running torrent has moved no payload for the stall time.
    pub fn stalled(&self, e: &Entry, now: Instant) -> bool {
        let Some(after) = self.settings.queue.stalled_after() else {
            return false;
        };
        e.running()
            && matches!(
                e.state(),
                Some(State::Downloading | State::Seeding | State::Metadata)
            )
            && now.duration_since(e.run_since.max(e.last_active)) > after
    }

    /// Torrents that take a slot of `d`'s queue.
    fn active(&self, d: Direction, now: Instant) -> usize {
        self.entries
            .values()
            .filter(|e| {
                e.running()
                    && !e.saved.force_start
                    && e.busy.is_none()
                    && e.direction() == d
                    && !self.stalled(e, now)
            })
            .count()
    }

    /// Whether `e`, being started now, must wait in its queue.
    pub fn must_wait(&self, e: &Entry) -> bool {
        let q = self.settings.queue;
        let d = e.direction();
        !e.saved.force_start && q.enabled(d) && self.active(d, Instant::now()) >= q.size(d)
    }

    /// At start-up: which torrents wait, by queue order (nothing runs yet, nothing is
    /// stalled).
    pub fn queue_at_start(&mut self) {
        let q = self.settings.queue;
        let mut taken = [0usize; 2];
        for id in self.queue_order() {
            let Some(e) = self.entries.get_mut(&id) else {
                continue;
            };
            if e.saved.paused || e.saved.force_start {
                continue;
            }
            let d = e.direction();
            let n = &mut taken[d as usize];
            if q.enabled(d) && *n >= q.size(d) {
                e.queued = true;
            } else {
                *n += 1;
            }
        }
    }

    /// Starts the first queued torrents by position into the free slots of each queue (all
    /// of a queue that is off).
    pub fn pump(&mut self) {
        if !self.entries.values().any(|e| e.queued) {
            return;
        }
        let q = self.settings.queue;
        let now = Instant::now();
        for d in [Direction::Down, Direction::Up] {
            let waiting: Vec<u32> = self
                .queue_order()
                .into_iter()
                .filter(|id| {
                    self.entries.get(id).is_some_and(|e| {
                        e.queued && !e.saved.paused && e.busy.is_none() && e.direction() == d
                    })
                })
                .collect();
            if waiting.is_empty() {
                continue;
            }
            let free = if q.enabled(d) {
                q.size(d).saturating_sub(self.active(d, now))
            } else {
                usize::MAX
            };
            for id in waiting.into_iter().take(free) {
                self.unqueue(id);
            }
        }
    }

    /// Runs a torrent that waited (or was stopped), now.
    pub fn unqueue(&mut self, id: u32) {
        if let Some(e) = self.entries.get_mut(&id) {
            e.queued = false;
            e.run_since = Instant::now();
            if let Some(h) = &e.handle {
                h.send(TorrentCommand::Resume);
            }
            self.mark_dirty();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_are_transmissions() {
        let mut o = vec![1, 2, 3, 4, 5];
        move_ids(&mut o, &[4, 2], Move::Top);
        assert_eq!(o, [2, 4, 1, 3, 5]);
        move_ids(&mut o, &[2, 4], Move::Bottom);
        assert_eq!(o, [1, 3, 5, 2, 4]);
        move_ids(&mut o, &[1, 5], Move::Up);
        assert_eq!(o, [1, 5, 3, 2, 4]);
        move_ids(&mut o, &[3, 4], Move::Down);
        assert_eq!(o, [1, 5, 2, 3, 4]);
        move_ids(&mut o, &[2, 3], Move::Down);
        assert_eq!(o, [1, 5, 4, 2, 3]);
        // Unknown ids and repeats change nothing more.
        move_ids(&mut o, &[9, 3, 3], Move::Top);
        assert_eq!(o, [3, 1, 5, 4, 2]);
        set_position(&mut o, 3, 99);
        assert_eq!(o, [1, 5, 4, 2, 3]);
        set_position(&mut o, 2, 0);
        assert_eq!(o, [2, 1, 5, 4, 3]);
    }

    #[test]
    fn the_stall_time_is_minutes_unless_off() {
        let mut q = QueueSettings::default();
        if std::env::var(STALLED_SECS_ENV).is_err() {
            assert_eq!(q.stalled_after(), Some(Duration::from_secs(1800)));
        }
        q.stalled_enabled = false;
        assert_eq!(q.stalled_after(), None);
    }
}
