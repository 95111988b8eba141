//! A tracker's state: which peers are in which swarm. Pure: time comes in as seconds.
//!
//! Memory is bounded: at most `max_torrents` swarms and `max_peers` peers in each. A peer
//! that has not announced for `peer_ttl` seconds is dropped by [`Registry::expire`].
//!
//! One address cannot steer the list (the address is the announce's source IP, an IPv6 /64
//! counting as one, see [`IpKey`]):
//! - a peer is its peer id *and* its address, so an announce can change or remove (`stopped`)
//!   only the entry made from its own address: the same peer id from another address is
//!   another entry, and a forged `stopped` removes nothing of anyone else's;
//! - a full swarm makes room for a newcomer by dropping an entry of the address that holds
//!   the most entries (the one silent longest), if that address holds at least two more than
//!   the newcomer's (so a full swarm of one entry per address does not churn):
//!   an address that announces thousands of peer ids ends up holding the places nobody else
//!   wants, never the places of the others;
//! - a reply lists one entry of each address before a second of any, so those thousands
//!   cannot push the other addresses out of a reply either.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

use super::{AnnounceReply, Event, ScrapeCounts};
use crate::{InfoHash, IpKey};

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_torrents: usize,
    pub max_peers: usize,
    /// Seconds between announces that the tracker asks for.
    pub interval: u32,
    /// Seconds without an announce after which a peer is dropped.
    pub peer_ttl: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_torrents: 10_000,
            max_peers: 2_000,
            interval: 120,
            peer_ttl: 300,
        }
    }
}

/// Peers given in one reply at most.
const MAX_NUMWANT: usize = 200;
const DEFAULT_NUMWANT: usize = 50;

/// A peer in a swarm: its peer id and the address it announced from.
type PeerKey = ([u8; 20], IpKey);

struct Entry {
    addr: SocketAddr,
    seed: bool,
    last_seen: u64,
}

#[derive(Default)]
struct Swarm {
    peers: HashMap<PeerKey, Entry>,
    /// Entries per address, kept with `peers`: who holds the most when the swarm is full.
    per_ip: HashMap<IpKey, u32>,
    completed: u32,
}

impl Swarm {
    fn counts(&self) -> ScrapeCounts {
        let seeders = self.peers.values().filter(|e| e.seed).count() as u32;
        ScrapeCounts {
            seeders,
            completed: self.completed,
            leechers: self.peers.len() as u32 - seeders,
        }
    }

    fn insert(&mut self, key: PeerKey, entry: Entry) {
        if self.peers.insert(key, entry).is_none() {
            *self.per_ip.entry(key.1).or_default() += 1;
        }
    }

    fn remove(&mut self, key: &PeerKey) {
        if self.peers.remove(key).is_some() {
            uncount(&mut self.per_ip, key.1);
        }
    }

    /// Drops peers silent for longer than `ttl`.
    fn expire(&mut self, now: u64, ttl: u64) {
        let per_ip = &mut self.per_ip;
        self.peers.retain(|key, e| {
            let live = now.saturating_sub(e.last_seen) <= ttl;
            if !live {
                uncount(per_ip, key.1);
            }
            live
        });
    }

    /// Makes room in a full swarm for a newcomer from `ip`: drops an entry of the address
    /// that holds the most, if it holds at least two more than `ip` (otherwise the newcomer
    /// is not listed: a full swarm of one entry per address keeps who came first instead of
    /// churning). Whether there is room now.
    fn make_room(&mut self, ip: IpKey) -> bool {
        // O(distinct addresses); the swarm is full, so this is at most `max_peers`.
        let Some((&top, &most)) = self.per_ip.iter().max_by_key(|(_, n)| **n) else {
            return false;
        };
        if self.per_ip.get(&ip).copied().unwrap_or(0) + 2 > most {
            return false;
        }
        // Of that address's entries, the one silent longest: the likeliest to be gone (a
        // client that quit without `stopped`), and a live one is back at its next announce.
        // Dropping its newest instead would keep a flood's first ids for their whole
        // time-to-live. A scan of the swarm, only when a full swarm takes a newcomer; the
        // reply walks the swarm anyway.
        let victim = self
            .peers
            .iter()
            .filter(|(key, _)| key.1 == top)
            .min_by_key(|(_, e)| e.last_seen)
            .map(|(key, _)| *key);
        match victim {
            Some(key) => {
                self.remove(&key);
                true
            }
            None => false,
        }
    }

    /// Up to `want` peers for a reply to `asker` (a seed if `seed`): one of each address
    /// before a second of any; within that, a seed hears of leechers first, then of other
    /// seeds (a client that fetches a magnet's metadata says `left=0` until it knows the
    /// size, aria2 does, and needs the seeds).
    fn pick(&self, asker: &[u8; 20], seed: bool, want: usize) -> Vec<SocketAddr> {
        if want == 0 {
            return Vec::new();
        }
        // The first entry of each address: those preferred, then the others; then the
        // second and later entries the same way.
        let mut tiers: [Vec<SocketAddr>; 4] = Default::default();
        let mut seen: HashSet<IpKey> = HashSet::new();
        let passes: &[bool] = if seed { &[true, false] } else { &[true] };
        for &preferred in passes {
            for ((id, ip), e) in &self.peers {
                if tiers[0].len() >= want {
                    // The best tier alone fills the reply.
                    break;
                }
                // A peer is not told of itself, under its id from any address.
                let is_preferred = !(seed && e.seed);
                if id == asker || is_preferred != preferred {
                    continue;
                }
                let tier = usize::from(!preferred) + if seen.insert(*ip) { 0 } else { 2 };
                if tiers[tier].len() < want {
                    tiers[tier].push(e.addr);
                }
            }
        }
        tiers.into_iter().flatten().take(want).collect()
    }
}

fn uncount(per_ip: &mut HashMap<IpKey, u32>, ip: IpKey) {
    if let Some(n) = per_ip.get_mut(&ip) {
        *n -= 1;
        if *n == 0 {
            per_ip.remove(&ip);
        }
    }
}

/// One announce as the registry sees it.
#[derive(Debug, Clone)]
pub struct Announced {
    pub info_hash: InfoHash,
    pub peer_id: [u8; 20],
    /// The peer's address: the request's source IP with the announced port.
    pub addr: SocketAddr,
    pub left: u64,
    pub event: Event,
    pub numwant: Option<u32>,
}

pub struct Registry {
    limits: Limits,
    swarms: HashMap<InfoHash, Swarm>,
}

impl Registry {
    pub fn new(limits: Limits) -> Self {
        Registry {
            limits,
            swarms: HashMap::new(),
        }
    }

    /// Records an announce and picks peers for the reply. The error is a failure reason.
    pub fn announce(&mut self, a: &Announced, now: u64) -> Result<AnnounceReply, &'static str> {
        if !self.swarms.contains_key(&a.info_hash) {
            if a.event == Event::Stopped {
                return Ok(self.reply(None, a));
            }
            if self.swarms.len() >= self.limits.max_torrents {
                return Err("tracker is full: too many torrents");
            }
        }
        let max_peers = self.limits.max_peers;
        let swarm = self.swarms.entry(a.info_hash).or_default();
        let key = (a.peer_id, IpKey::from(a.addr.ip()));
        if a.event == Event::Stopped {
            swarm.remove(&key);
        } else {
            let seed = a.left == 0;
            let entry = Entry {
                addr: a.addr,
                seed,
                last_seen: now,
            };
            match swarm.peers.get_mut(&key) {
                Some(e) => {
                    if seed && !e.seed && a.event == Event::Completed {
                        swarm.completed = swarm.completed.saturating_add(1);
                    }
                    *e = entry;
                }
                None => {
                    // A full swarm that cannot make room still answers; the newcomer is
                    // just not listed.
                    if swarm.peers.len() < max_peers || swarm.make_room(key.1) {
                        if a.event == Event::Completed {
                            swarm.completed = swarm.completed.saturating_add(1);
                        }
                        swarm.insert(key, entry);
                    }
                }
            }
        }
        let swarm = self.swarms.get(&a.info_hash);
        let reply = self.reply(swarm, a);
        if swarm.is_some_and(|s| s.peers.is_empty()) {
            self.swarms.remove(&a.info_hash);
        }
        Ok(reply)
    }

    fn reply(&self, swarm: Option<&Swarm>, a: &Announced) -> AnnounceReply {
        let want = a
            .numwant
            .map_or(DEFAULT_NUMWANT, |n| n as usize)
            .min(MAX_NUMWANT);
        let mut peers = Vec::new();
        let mut counts = ScrapeCounts::default();
        if let Some(s) = swarm {
            counts = s.counts();
            if a.event != Event::Stopped {
                peers = s.pick(&a.peer_id, a.left == 0, want);
            }
        }
        AnnounceReply {
            interval: self.limits.interval,
            min_interval: Some(self.limits.interval / 2),
            seeders: Some(counts.seeders),
            leechers: Some(counts.leechers),
            peers,
            ..Default::default()
        }
    }

    pub fn scrape(&self, hash: &InfoHash) -> ScrapeCounts {
        self.swarms.get(hash).map(Swarm::counts).unwrap_or_default()
    }

    /// Drops peers silent for longer than the time-to-live, and empty swarms.
    pub fn expire(&mut self, now: u64) {
        let ttl = self.limits.peer_ttl;
        for s in self.swarms.values_mut() {
            s.expire(now, ttl);
        }
        self.swarms.retain(|_, s| !s.peers.is_empty());
    }

    pub fn torrent_count(&self) -> usize {
        self.swarms.len()
    }
}

#[cfg(test)]
mod tests;
