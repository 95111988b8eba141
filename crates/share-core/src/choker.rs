//! Who gets to download from us: tit-for-tat choking with an optimistic unchoke.
//!
//! - While downloading, the regular slots go to the interested peers that upload to us
//!   fastest, recomputed every 10 s. A peer that has sent us nothing for 60 s while we wanted
//!   its pieces is snubbed and gets no regular slot.
//! - Between rounds (each `tick`), a swarm that downloads in seconds must not wait for one
//!   (the swarm sim, `sim/`, found each of these): a slot whose holder left or lost
//!   interest goes at once to the best-ranked waiting peer (`fill_free_slots`); a waiting
//!   peer that sends us at least twice as fast as the slowest holder takes its slot
//!   (`swap_better_partners`); a holder that took nothing from us for a second gives its
//!   slot to a waiting peer (`release_idle`, needs `sent_to`).
//! - A peer that has had pieces we want for `TAKES_ONLY_AFTER` and never sent us a block
//!   takes only (a free-rider): it never holds a regular slot, even a free one, until it
//!   sends us something. What it gets from us is optimistic turns.
//! - While seeding, the regular slots rotate every 10 s, those served longest ago first, so
//!   that every leecher is served over time (ranking a seed's slots by how fast peers take
//!   data would hand them to fast free-riders: a test of eight leechers and a free-rider
//!   says so). The optimistic slot goes each round to the newest peer never served, and
//!   between rounds to a peer never served as soon as it is interested: a newcomer waits
//!   no round at all, however many slow peers are queued (500 raw peers each asking
//!   16 KiB/s held every slot and starved a fresh leecher before). A seed with a ledger
//!   (`seeding::Handout`) ranks its peers itself (`tick_ranked`); its optimistic slot is
//!   handed on when its holder loses interest (done, or its turn is over).
//! - One optimistic slot rotates every 30 s among the choked interested peers: those never
//!   tried (newcomers) first, then whoever waited longest since its last turn, so that new
//!   peers get a first piece to trade and better partners are found. Taking turns, rather
//!   than a fresh draw, keeps a free-rider to its share of the turns; a peer that took a
//!   turn and gave nothing back comes after every other, and at most once in 30 s. With
//!   `set_optimistic_turn` a turn also ends once its holder got a piece's worth: in a
//!   swarm that downloads in seconds, 30 s is the whole download.
//!
//! Pure: time comes in as seconds, and the choice comes out as the set to unchoke.

use std::collections::{HashMap, HashSet};

use crate::picker::PeerKey;

pub const REGULAR_ROUND: u64 = 10;
pub const OPTIMISTIC_ROUND: u64 = 30;
pub const SNUB_AFTER: u64 = 60;
/// A peer that has had pieces we want for this long and never sent us a block takes only:
/// it gets optimistic turns, never a regular slot.
pub const TAKES_ONLY_AFTER: u64 = 2;

/// What the choker needs to know of a peer.
#[derive(Debug, Clone, Copy)]
pub struct PeerView {
    pub key: PeerKey,
    pub interested: bool,
    /// Bytes per second it sends us.
    pub download_rate: f64,
    /// Bytes per second we send it (what a seed ranks by).
    pub upload_rate: f64,
    /// Bytes it has sent us in all: breaks ties in rate, so that a peer that never gave
    /// anything ranks below every peer that did.
    pub received_total: u64,
    /// Seconds since it last sent us a block while we were interested in it (None: we are
    /// not interested, or it has not yet had 60 s to do so).
    pub silent_for: Option<u64>,
}

pub struct Choker {
    slots: usize,
    /// The regular slots' holders, as chosen at the last round.
    regular: Vec<PeerKey>,
    optimistic: Option<PeerKey>,
    next_regular: u64,
    next_optimistic: u64,
    /// When each peer was last given a slot while seeding (for the rotation).
    last_served: HashMap<PeerKey, u64>,
    /// When each peer last got the optimistic slot (for taking turns).
    last_optimistic: HashMap<PeerKey, u64>,
    /// When a seed last gave the optimistic slot to a newcomer between rounds.
    last_swap: Option<u64>,
    rng: u64,
    /// An optimistic turn also ends once its holder got this many bytes from us (a piece:
    /// what a newcomer needs to trade); None: turns are time only.
    turn_bytes: Option<u64>,
    /// Bytes sent to each peer so far, as last told (`sent_to`).
    sent: HashMap<PeerKey, u64>,
    /// What the optimistic holder had been sent when its turn began.
    turn_start: u64,
    /// Peers seen to take only (see `takes_only`), until they send us something.
    takers: HashSet<PeerKey>,
    /// What each regular holder had been sent at the last second's tick (`release_idle`).
    held_sent: HashMap<PeerKey, u64>,
    /// The second `release_idle` last looked.
    idle_checked: Option<u64>,
}

impl Choker {
    pub fn new(slots: usize, seed: u64) -> Self {
        Choker {
            slots,
            regular: Vec::new(),
            optimistic: None,
            next_regular: 0,
            next_optimistic: 0,
            last_served: Default::default(),
            last_optimistic: Default::default(),
            last_swap: None,
            rng: seed | 1,
            turn_bytes: None,
            sent: Default::default(),
            turn_start: 0,
            takers: Default::default(),
            held_sent: Default::default(),
            idle_checked: None,
        }
    }

    /// Ends a downloading peer's optimistic turn once its holder got `bytes` from us (the
    /// piece length): in a swarm that downloads in seconds a 30 s turn is the whole
    /// download, and the peers that drew no turn at the start would get nothing but what
    /// seeds give them. A piece is what a newcomer needs to trade. Needs `sent_to`.
    pub fn set_optimistic_turn(&mut self, bytes: u64) {
        self.turn_bytes = Some(bytes.max(1));
    }

    /// Bytes sent to the peer so far (its running total): call before each `tick`.
    pub fn sent_to(&mut self, key: PeerKey, bytes: u64) {
        self.sent.insert(key, bytes);
    }

    /// Whether the optimistic holder has had its piece's worth.
    fn optimistic_turn_done(&self) -> bool {
        let (Some(turn), Some(k)) = (self.turn_bytes, self.optimistic) else {
            return false;
        };
        let sent = self.sent.get(&k).copied().unwrap_or(0);
        sent.saturating_sub(self.turn_start) >= turn
    }

    /// A peer left: free its slot now.
    pub fn remove(&mut self, key: PeerKey) {
        self.regular.retain(|&k| k != key);
        self.last_served.remove(&key);
        self.last_optimistic.remove(&key);
        self.sent.remove(&key);
        self.takers.remove(&key);
        self.held_sent.remove(&key);
        if self.optimistic == Some(key) {
            self.optimistic = None;
        }
    }

    /// A seed's answer to a peer that just became interested with every slot taken: a peer
    /// never served takes the optimistic slot at once (at most one swap a second), instead of
    /// waiting for the next round behind every slow peer. True if the set changed.
    pub fn seed_newcomer(&mut self, key: PeerKey, now: u64) -> bool {
        if self.last_served.contains_key(&key)
            || self.regular.contains(&key)
            || self.last_swap.is_some_and(|t| t >= now)
        {
            return false;
        }
        self.last_swap = Some(now);
        self.optimistic = Some(key);
        self.last_served.insert(key, now);
        true
    }

    /// The peer holding the optimistic slot.
    pub fn optimistic(&self) -> Option<PeerKey> {
        self.optimistic
    }

    /// Whether a newly interested peer may be unchoked at once: a regular slot is free.
    pub fn has_free_slot(&self) -> bool {
        self.regular.len() < self.slots
    }

    /// The peers to unchoke, as of the last round.
    pub fn unchoked(&self) -> HashSet<PeerKey> {
        self.regular
            .iter()
            .copied()
            .chain(self.optimistic)
            .collect()
    }

    /// Recomputes the unchoked set when a round is due (or `force`), and between rounds
    /// fills free slots and takes unearned ones back; true if the set changed.
    pub fn tick(&mut self, now: u64, peers: &[PeerView], seeding: bool, force: bool) -> bool {
        self.tick_ranked(now, peers, seeding, force, |_| ())
    }

    /// `tick`, with a seed's own order for its regular slots: lower `rank` first, then those
    /// served longest ago (`seeding::Handout::rank` gives one). Ignored while downloading.
    pub fn tick_ranked<R: Ord>(
        &mut self,
        now: u64,
        peers: &[PeerView],
        seeding: bool,
        force: bool,
        rank: impl Fn(PeerKey) -> R,
    ) -> bool {
        for p in peers {
            if p.received_total > 0 {
                self.takers.remove(&p.key);
            } else if takes_only(p) {
                self.takers.insert(p.key);
            }
        }
        let freed = self.release_uninterested(peers);
        let regular_due = force || now >= self.next_regular;
        // The optimistic slot rotates on its own clock only (or when its holder left). Drawing
        // again whenever the holder loses interest would favour peers that never lose
        // interest, and a free-rider is exactly such a peer. A seed has none: its rotation
        // already serves everyone in turn.
        let optimistic_due = if seeding {
            regular_due || self.seed_optimistic_free(peers)
        } else {
            now >= self.next_optimistic
                || self.optimistic_turn_done()
                || self
                    .optimistic
                    .is_none_or(|o| !peers.iter().any(|p| p.key == o))
        };
        let mut changed = freed;
        if !regular_due {
            let idle = if seeding {
                Vec::new()
            } else {
                self.release_idle(now, peers)
            };
            changed |= !idle.is_empty();
            changed |= self.fill_free_slots(now, peers, seeding, &idle, &rank);
            changed |= !seeding && self.swap_better_partners(peers, &idle);
        }
        if !regular_due && !optimistic_due {
            self.note_held(now);
            return changed;
        }
        let interested: Vec<&PeerView> = peers.iter().filter(|p| p.interested).collect();
        if regular_due {
            self.next_regular = now + REGULAR_ROUND;
            self.regular = if seeding {
                // By the seed's rank, then never served first, then those served longest ago.
                let mut rest: Vec<&&PeerView> = interested.iter().collect();
                rest.sort_by_cached_key(|p| {
                    (rank(p.key), self.last_served.get(&p.key).copied(), p.key)
                });
                let v: Vec<PeerKey> = rest.iter().take(self.slots).map(|p| p.key).collect();
                for &k in &v {
                    self.last_served.insert(k, now);
                }
                v
            } else {
                let mut v: Vec<&&PeerView> = interested
                    .iter()
                    .filter(|p| self.may_hold_regular(p))
                    .collect();
                v.sort_by(|a, b| by_rate(a, b));
                v.iter().take(self.slots).map(|p| p.key).collect()
            };
        }
        if seeding {
            if optimistic_due {
                // The newest peer never served, else (by the seed's rank) the one served
                // longest ago.
                let mut choked: Vec<&&PeerView> = interested
                    .iter()
                    .filter(|p| !self.regular.contains(&p.key))
                    .collect();
                choked.sort_by_cached_key(|p| {
                    let last = self.last_served.get(&p.key).copied();
                    let rank = last.map(|_| rank(p.key));
                    (last.is_some(), rank, last, std::cmp::Reverse(p.key))
                });
                self.optimistic = choked.first().map(|p| p.key);
                if let Some(k) = self.optimistic {
                    self.last_served.insert(k, now);
                }
            }
        } else if optimistic_due || self.optimistic.is_some_and(|o| self.regular.contains(&o)) {
            self.next_optimistic = now + OPTIMISTIC_ROUND;
            // Never tried first, then the longest wait; ties at random. A peer that had a
            // turn and never gave us anything back, though it has pieces we want, waits
            // until nobody else does: what a free-rider gets is the turns nobody else
            // needs.
            // And such a peer gets a turn at most once an `OPTIMISTIC_ROUND`: turns as
            // short as a piece are for peers that may trade back.
            let mut choked: Vec<(bool, Option<u64>, u64, PeerKey)> = Vec::new();
            for p in &interested {
                if !self.regular.contains(&p.key) {
                    let last = self.last_optimistic.get(&p.key).copied();
                    let took_only = last.is_some() && self.takers.contains(&p.key);
                    if took_only && last.is_some_and(|t| now < t + OPTIMISTIC_ROUND) {
                        continue;
                    }
                    choked.push((took_only, last, self.next_random(), p.key));
                }
            }
            choked.sort_unstable();
            self.optimistic = choked.first().map(|c| c.3);
            if let Some(k) = self.optimistic {
                self.last_optimistic.insert(k, now);
                self.turn_start = self.sent.get(&k).copied().unwrap_or(0);
            }
        }
        self.note_held(now);
        true
    }

    /// A seed's optimistic slot is free again between rounds (its holder left, or lost
    /// interest: at a seed a peer loses interest when it is done, or when its turn is over)
    /// while a choked peer wants it.
    fn seed_optimistic_free(&self, peers: &[PeerView]) -> bool {
        let held = self
            .optimistic
            .is_some_and(|o| peers.iter().any(|p| p.key == o && p.interested));
        !held
            && peers
                .iter()
                .any(|p| p.interested && !self.regular.contains(&p.key))
    }

    /// Whether a downloading peer may hold a regular slot: not snubbed (it stopped sending
    /// to us), and not one that takes only (a free-rider), even when nobody else wants the
    /// slot: what it gets from us is its optimistic turns.
    fn may_hold_regular(&self, p: &PeerView) -> bool {
        p.silent_for.is_none_or(|s| s < SNUB_AFTER) && !self.takers.contains(&p.key)
    }

    /// Once a second while downloading (needs `sent_to`): a regular holder that took
    /// nothing from us since the last second gives its slot up when another peer waits
    /// for one. It is interested (it lacks a piece we have) but asks for nothing: what it
    /// lacks is all being fetched elsewhere. Found in the swarm sim: a leecher kept its
    /// slots for partners that had caught up with it while newcomers waited. Returns the
    /// peers released (they do not take a free slot again this second).
    fn release_idle(&mut self, now: u64, peers: &[PeerView]) -> Vec<PeerKey> {
        let mut idle = Vec::new();
        if self.idle_checked.is_some_and(|t| t >= now) || self.sent.is_empty() {
            return idle;
        }
        let waiting = peers.iter().any(|p| {
            p.interested
                && !self.regular.contains(&p.key)
                && self.optimistic != Some(p.key)
                && self.may_hold_regular(p)
        });
        if waiting {
            for &k in &self.regular {
                let sent = self.sent.get(&k).copied().unwrap_or(0);
                if self.held_sent.get(&k) == Some(&sent) {
                    idle.push(k);
                }
            }
            self.regular.retain(|k| !idle.contains(k));
        }
        idle
    }

    /// Once a second, what each regular holder has been sent so far (for `release_idle`).
    fn note_held(&mut self, now: u64) {
        if self.idle_checked.is_some_and(|t| t >= now) {
            return;
        }
        self.idle_checked = Some(now);
        self.held_sent = self
            .regular
            .iter()
            .map(|&k| (k, self.sent.get(&k).copied().unwrap_or(0)))
            .collect();
    }

    /// Regular holders that left or lost interest give their slot up now (the engine chokes
    /// such a peer at once; its slot must not stay taken until the round).
    fn release_uninterested(&mut self, peers: &[PeerView]) -> bool {
        let before = self.regular.len();
        self.regular
            .retain(|&k| peers.iter().any(|p| p.key == k && p.interested));
        self.regular.len() != before
    }

    /// Between rounds, a free regular slot goes to the best-ranked choked peer that wants
    /// one (a seed: by its rank, then served longest ago; downloading: by rate), at the
    /// next tick rather than at the next round.
    fn fill_free_slots<R: Ord>(
        &mut self,
        now: u64,
        peers: &[PeerView],
        seeding: bool,
        idle: &[PeerKey],
        rank: &impl Fn(PeerKey) -> R,
    ) -> bool {
        if self.regular.len() >= self.slots {
            return false;
        }
        let mut waiting: Vec<&PeerView> = peers
            .iter()
            .filter(|p| {
                p.interested
                    && !idle.contains(&p.key)
                    && !self.regular.contains(&p.key)
                    && self.optimistic != Some(p.key)
                    && (seeding || self.may_hold_regular(p))
            })
            .collect();
        if waiting.is_empty() {
            return false;
        }
        if seeding {
            waiting.sort_by_cached_key(|p| {
                (rank(p.key), self.last_served.get(&p.key).copied(), p.key)
            });
        } else {
            waiting.sort_by(|a, b| by_rate(a, b));
        }
        let room = self.slots - self.regular.len();
        for p in waiting.into_iter().take(room) {
            self.regular.push(p.key);
            if seeding {
                self.last_served.insert(p.key, now);
            }
        }
        true
    }

    /// Tit-for-tat between rounds: a choked peer that sends to us at least twice as fast
    /// as the slowest regular holder takes its slot now, not at the next round. Slots are
    /// given on no evidence at the start (all rates are zero), and a swarm that downloads
    /// in seconds is over before a round has passed: a peer that gives (a leecher just
    /// handed pieces nobody else has) must not wait behind one that does not (a
    /// free-rider, or a partner that has nothing left for us). Twice, so that two peers
    /// of about equal rates do not trade places every second.
    fn swap_better_partners(&mut self, peers: &[PeerView], idle: &[PeerKey]) -> bool {
        let mut givers: Vec<&PeerView> = peers
            .iter()
            .filter(|p| {
                p.interested
                    && !idle.contains(&p.key)
                    && p.download_rate > 0.0
                    && self.may_hold_regular(p)
                    && !self.regular.contains(&p.key)
                    && self.optimistic != Some(p.key)
            })
            .collect();
        givers.sort_by(|a, b| by_rate(a, b));
        let mut changed = false;
        for g in givers {
            let slowest = self
                .regular
                .iter()
                .enumerate()
                .map(|(slot, k)| (slot, peers.iter().find(|p| p.key == *k)))
                .min_by(|a, b| match (a.1, b.1) {
                    (Some(x), Some(y)) => by_rate(y, x),
                    (None, _) => std::cmp::Ordering::Less,
                    (_, None) => std::cmp::Ordering::Greater,
                });
            let Some((slot, holder)) = slowest else {
                break;
            };
            let holder_rate = holder.map_or(0.0, |h| h.download_rate);
            let holder_gave =
                holder.is_some_and(|h| h.received_total > 0 && self.may_hold_regular(h));
            if g.download_rate > 2.0 * holder_rate || !holder_gave {
                self.regular[slot] = g.key;
                changed = true;
            } else {
                break;
            }
        }
        changed
    }

    fn next_random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }
}

/// A peer that takes only: it has had pieces we want for `TAKES_ONLY_AFTER` and never
/// sent us one.
fn takes_only(p: &PeerView) -> bool {
    p.received_total == 0 && p.silent_for.is_some_and(|s| s >= TAKES_ONLY_AFTER)
}

/// Tit-for-tat order: fastest to us first; at equal rates, those that ever gave us anything.
fn by_rate(a: &PeerView, b: &PeerView) -> std::cmp::Ordering {
    b.download_rate
        .total_cmp(&a.download_rate)
        .then(b.received_total.cmp(&a.received_total))
        .then(a.key.cmp(&b.key))
}

#[cfg(test)]
mod tests;
