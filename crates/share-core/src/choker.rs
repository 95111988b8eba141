//! Who gets to download from us: tit-for-tat choking with an optimistic unchoke.
//!
//! - While downloading, the regular slots go to the interested peers that upload to us
//!   fastest, recomputed every 10 s. A peer that has sent us nothing for 60 s while we wanted
//!   its pieces is snubbed and gets no regular slot.
//! - While seeding, the regular slots rotate every 10 s, those served longest ago first, so
//!   that every leecher is served over time (ranking a seed's slots by how fast peers take
//!   data would hand them to fast free-riders: a test of eight leechers and a free-rider
//!   says so). The optimistic slot goes each round to the newest peer never served, and
//!   between rounds to a peer never served as soon as it is interested: a newcomer waits
//!   no round at all, however many slow peers are queued (500 raw peers each asking
//!   16 KiB/s held every slot and starved a fresh leecher before).
//! - One optimistic slot rotates every 30 s among the choked interested peers: those never
//!   tried (newcomers) first, then whoever waited longest since its last turn, so that new
//!   peers get a first piece to trade and better partners are found. Taking turns, rather
//!   than a fresh draw, keeps a free-rider (always interested, never in a regular slot) to
//!   its fair share of the turns.
//!
//! Pure: time comes in as seconds, and the choice comes out as the set to unchoke.

use std::collections::{HashMap, HashSet};

use crate::picker::PeerKey;

pub const REGULAR_ROUND: u64 = 10;
pub const OPTIMISTIC_ROUND: u64 = 30;
pub const SNUB_AFTER: u64 = 60;

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
        }
    }

    /// A peer left: free its slot now.
    pub fn remove(&mut self, key: PeerKey) {
        self.regular.retain(|&k| k != key);
        self.last_served.remove(&key);
        self.last_optimistic.remove(&key);
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

    /// Recomputes the unchoked set when a round is due (or `force`); true if it did.
    pub fn tick(&mut self, now: u64, peers: &[PeerView], seeding: bool, force: bool) -> bool {
        let regular_due = force || now >= self.next_regular;
        // The optimistic slot rotates on its own clock only (or when its holder left). Drawing
        // again whenever the holder loses interest would favour peers that never lose
        // interest, and a free-rider is exactly such a peer. A seed has none: its rotation
        // already serves everyone in turn.
        let optimistic_due = if seeding {
            regular_due
        } else {
            now >= self.next_optimistic
                || self
                    .optimistic
                    .is_none_or(|o| !peers.iter().any(|p| p.key == o))
        };
        if !regular_due && !optimistic_due {
            return false;
        }
        let interested: Vec<&PeerView> = peers.iter().filter(|p| p.interested).collect();
        if regular_due {
            self.next_regular = now + REGULAR_ROUND;
            self.regular = if seeding {
                // Never served first, then those served longest ago.
                let mut rest: Vec<&&PeerView> = interested.iter().collect();
                rest.sort_by_key(|p| (self.last_served.get(&p.key).copied(), p.key));
                let v: Vec<PeerKey> = rest.iter().take(self.slots).map(|p| p.key).collect();
                for &k in &v {
                    self.last_served.insert(k, now);
                }
                v
            } else {
                let mut v: Vec<&&PeerView> = interested
                    .iter()
                    .filter(|p| p.silent_for.is_none_or(|s| s < SNUB_AFTER))
                    .collect();
                v.sort_by(|a, b| {
                    b.download_rate
                        .total_cmp(&a.download_rate)
                        .then(b.received_total.cmp(&a.received_total))
                        .then(a.key.cmp(&b.key))
                });
                v.iter().take(self.slots).map(|p| p.key).collect()
            };
        }
        if seeding {
            if optimistic_due {
                // The newest peer never served, else the one served longest ago.
                let mut choked: Vec<&&PeerView> = interested
                    .iter()
                    .filter(|p| !self.regular.contains(&p.key))
                    .collect();
                choked.sort_by_key(|p| {
                    let last = self.last_served.get(&p.key).copied();
                    (last.is_some(), last, std::cmp::Reverse(p.key))
                });
                self.optimistic = choked.first().map(|p| p.key);
                if let Some(k) = self.optimistic {
                    self.last_served.insert(k, now);
                }
            }
        } else if optimistic_due || self.optimistic.is_some_and(|o| self.regular.contains(&o)) {
            self.next_optimistic = now + OPTIMISTIC_ROUND;
            // Never tried first, then the longest wait; ties at random.
            let mut choked: Vec<(Option<u64>, u64, PeerKey)> = Vec::new();
            for p in &interested {
                if !self.regular.contains(&p.key) {
                    let last = self.last_optimistic.get(&p.key).copied();
                    choked.push((last, self.next_random(), p.key));
                }
            }
            choked.sort_unstable();
            self.optimistic = choked.first().map(|c| c.2);
            if let Some(k) = self.optimistic {
                self.last_optimistic.insert(k, now);
            }
        }
        true
    }

    fn next_random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(key: PeerKey, rate: f64) -> PeerView {
        PeerView {
            key,
            interested: true,
            download_rate: rate,
            upload_rate: 0.0,
            received_total: rate as u64,
            silent_for: None,
        }
    }

    #[test]
    fn fastest_uploaders_get_the_regular_slots_plus_one_optimistic() {
        let mut c = Choker::new(2, 1);
        let peers = [peer(1, 10.0), peer(2, 500.0), peer(3, 300.0), peer(4, 0.0)];
        assert!(c.tick(0, &peers, false, false));
        let set = c.unchoked();
        assert!(set.contains(&2) && set.contains(&3));
        assert_eq!(set.len(), 3, "two regular and one optimistic: {set:?}");
        // Nothing due a second later.
        assert!(!c.tick(1, &peers, false, false));
    }

    #[test]
    fn a_free_rider_never_gets_a_regular_slot_and_takes_its_turn_optimistically() {
        let mut optimistic_turns = 0;
        let mut c = Choker::new(2, 7);
        for round in 0..20 {
            let peers = [peer(1, 100.0), peer(2, 90.0), peer(3, 80.0), peer(9, 0.0)];
            let now = round * OPTIMISTIC_ROUND;
            assert!(c.tick(now, &peers, false, false));
            let set = c.unchoked();
            assert!(set.contains(&1) && set.contains(&2));
            if set.contains(&9) {
                optimistic_turns += 1;
            }
        }
        // Two choked peers take turns: the one that is always interested gets no more.
        assert_eq!(optimistic_turns, 10);
    }

    #[test]
    fn peers_not_yet_tried_come_first_for_the_optimistic_slot() {
        let mut c = Choker::new(1, 5);
        let mut peers = vec![peer(1, 100.0), peer(9, 0.0)];
        c.tick(0, &peers, false, false);
        assert_eq!(c.optimistic(), Some(9));
        // A newcomer arrives: it gets the next turn, before the peer already tried.
        peers.push(peer(7, 0.0));
        c.tick(OPTIMISTIC_ROUND, &peers, false, false);
        assert_eq!(c.optimistic(), Some(7));
        c.tick(2 * OPTIMISTIC_ROUND, &peers, false, false);
        assert_eq!(c.optimistic(), Some(9));
    }

    #[test]
    fn regular_slots_change_only_at_their_round() {
        let mut c = Choker::new(1, 3);
        let mut peers = vec![peer(1, 100.0), peer(2, 50.0)];
        c.tick(0, &peers, false, false);
        assert_eq!(c.optimistic(), Some(2));
        // The optimistic holder leaves and the slot is refilled at once, but peer 3's rate
        // wins it a regular slot only at the next round.
        c.remove(2);
        peers = vec![peer(1, 100.0), peer(3, 500.0)];
        assert!(c.tick(1, &peers, false, false));
        let set = c.unchoked();
        assert!(set.contains(&1) && set.contains(&3));
        assert_eq!(c.optimistic(), Some(3));
        c.tick(REGULAR_ROUND, &peers, false, false);
        assert_eq!(c.regular, vec![3]);
    }

    #[test]
    fn at_equal_rates_those_that_ever_gave_come_first() {
        let mut c = Choker::new(1, 3);
        let mut gave = peer(5, 0.0);
        gave.received_total = 16384;
        c.tick(0, &[peer(1, 0.0), gave], false, false);
        let set = c.unchoked();
        assert!(set.contains(&5));
        assert_eq!(c.optimistic(), Some(1), "5 holds the regular slot");
    }

    #[test]
    fn the_optimistic_slot_is_not_redrawn_when_its_holder_loses_interest() {
        let mut c = Choker::new(1, 11);
        let mut peers = vec![peer(1, 100.0), peer(2, 0.0), peer(3, 0.0)];
        c.tick(0, &peers, false, false);
        let opt = c.optimistic.unwrap();
        peers.iter_mut().find(|p| p.key == opt).unwrap().interested = false;
        c.tick(REGULAR_ROUND, &peers, false, false);
        assert_eq!(c.optimistic, Some(opt));
        c.tick(OPTIMISTIC_ROUND, &peers, false, false);
        assert_ne!(c.optimistic, Some(opt), "rotated after 30 s");
    }

    #[test]
    fn snubbed_peers_lose_their_regular_slot() {
        let mut c = Choker::new(1, 3);
        let mut fast = peer(1, 1000.0);
        fast.silent_for = Some(SNUB_AFTER + 1);
        assert!(c.tick(0, &[fast, peer(2, 1.0)], false, false));
        let set = c.unchoked();
        assert!(set.contains(&2));
    }

    #[test]
    fn seeding_rotates_every_slot_so_everyone_is_served() {
        let mut c = Choker::new(2, 5);
        let peers: Vec<PeerView> = (1..=6).map(|k| peer(k, 0.0)).collect();
        let mut served = HashSet::new();
        for round in 0..2 {
            assert!(c.tick(round * REGULAR_ROUND, &peers, true, false));
            let set = c.unchoked();
            assert_eq!(set.len(), 3, "two slots and the optimistic one");
            served.extend(set.iter().copied());
        }
        assert_eq!(served.len(), 6, "{served:?}");
    }

    #[test]
    fn a_seed_unchokes_a_newcomer_at_once_and_still_serves_everyone_in_turn() {
        let mut c = Choker::new(4, 5);
        // 500 slow peers, all served a while ago or never.
        let mut peers: Vec<PeerView> = (1..=500)
            .map(|k| {
                let mut p = peer(k, 0.0);
                p.upload_rate = 16384.0;
                p
            })
            .collect();
        c.tick(0, &peers, true, false);
        // A newcomer: the optimistic slot is its at once (the engine asks when it becomes
        // interested), and a second newcomer in the same second waits for the round...
        peers.push(peer(1000, 0.0));
        assert!(c.seed_newcomer(1000, 3));
        assert_eq!(c.optimistic(), Some(1000));
        assert!(!c.seed_newcomer(1001, 3));
        assert!(!c.seed_newcomer(1000, 4), "only peers never served");
        c.tick(REGULAR_ROUND, &peers, true, false);
        // A fast taker gets no more than its turns: a seed's slots rotate.
        peers.last_mut().unwrap().upload_rate = 100e6;
        c.tick(2 * REGULAR_ROUND, &peers, true, false);
        assert!(c.unchoked().len() <= 5);
        // Every slot rotates among the slow ones.
        let mut served = HashSet::new();
        for round in 20..40 {
            c.tick(round * REGULAR_ROUND, &peers, true, false);
            served.extend(c.unchoked());
        }
        assert!(
            served.len() >= 40,
            "only {} peers served in 20 rounds",
            served.len()
        );
    }

    #[test]
    fn uninterested_peers_are_never_unchoked_and_leaving_frees_a_slot() {
        let mut c = Choker::new(1, 9);
        let mut idle = peer(1, 999.0);
        idle.interested = false;
        assert!(c.tick(0, &[idle, peer(2, 1.0)], false, false));
        let set = c.unchoked();
        assert_eq!(set.iter().copied().collect::<Vec<_>>(), vec![2]);
        assert!(!c.has_free_slot());
        c.remove(2);
        assert!(c.has_free_slot());
    }
}
