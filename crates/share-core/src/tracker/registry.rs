//! A tracker's state: which peers are in which swarm. Pure: time comes in as seconds.
//!
//! Memory is bounded: at most `max_torrents` swarms and `max_peers` peers in each. A peer
//! that has not announced for `peer_ttl` seconds is dropped by [`Registry::expire`].

use std::collections::HashMap;
use std::net::SocketAddr;

use super::{AnnounceReply, Event, ScrapeCounts};
use crate::InfoHash;

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

struct Entry {
    addr: SocketAddr,
    seed: bool,
    last_seen: u64,
}

#[derive(Default)]
struct Swarm {
    peers: HashMap<[u8; 20], Entry>,
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
        if a.event == Event::Stopped {
            swarm.peers.remove(&a.peer_id);
        } else {
            let seed = a.left == 0;
            let room = swarm.peers.len() < max_peers;
            match swarm.peers.get_mut(&a.peer_id) {
                Some(e) => {
                    if seed && !e.seed && a.event == Event::Completed {
                        swarm.completed = swarm.completed.saturating_add(1);
                    }
                    *e = Entry {
                        addr: a.addr,
                        seed,
                        last_seen: now,
                    };
                }
                None if room => {
                    if a.event == Event::Completed {
                        swarm.completed = swarm.completed.saturating_add(1);
                    }
                    swarm.peers.insert(
                        a.peer_id,
                        Entry {
                            addr: a.addr,
                            seed,
                            last_seen: now,
                        },
                    );
                }
                // A full swarm still answers; the newcomer is just not listed.
                None => {}
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
                // A seed hears of leechers first, then of other seeds: a client that fetches
                // a magnet's metadata says `left=0` until it knows the size (aria2 does),
                // and needs the seeds.
                let seed = a.left == 0;
                let others = || s.peers.iter().filter(|(id, _)| **id != a.peer_id);
                let (first, rest): (Vec<_>, Vec<_>) =
                    others().partition(|(_, e)| !(seed && e.seed));
                peers = first
                    .into_iter()
                    .chain(rest)
                    .map(|(_, e)| e.addr)
                    .take(want)
                    .collect();
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
            s.peers
                .retain(|_, e| now.saturating_sub(e.last_seen) <= ttl);
        }
        self.swarms.retain(|_, s| !s.peers.is_empty());
    }

    pub fn torrent_count(&self) -> usize {
        self.swarms.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(id: u8, port: u16, left: u64, event: Event) -> Announced {
        Announced {
            info_hash: InfoHash([1; 20]),
            peer_id: [id; 20],
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            left,
            event,
            numwant: None,
        }
    }

    #[test]
    fn peers_find_each_other_but_not_themselves() {
        let mut r = Registry::new(Limits::default());
        let first = r.announce(&ann(1, 1000, 0, Event::Started), 0).unwrap();
        assert!(first.peers.is_empty());
        let second = r.announce(&ann(2, 2000, 10, Event::Started), 1).unwrap();
        assert_eq!(second.peers, vec![SocketAddr::from(([127, 0, 0, 1], 1000))]);
        assert_eq!((second.seeders, second.leechers), (Some(1), Some(1)));
        // The seed hears of the leecher, and then of other seeds.
        r.announce(&ann(3, 3000, 0, Event::Started), 2).unwrap();
        let again = r.announce(&ann(1, 1000, 0, Event::None), 2).unwrap();
        assert_eq!(
            again.peers,
            vec![
                SocketAddr::from(([127, 0, 0, 1], 2000)),
                SocketAddr::from(([127, 0, 0, 1], 3000))
            ]
        );
    }

    #[test]
    fn completed_counts_and_stopped_removes() {
        let mut r = Registry::new(Limits::default());
        r.announce(&ann(1, 1000, 10, Event::Started), 0).unwrap();
        r.announce(&ann(1, 1000, 0, Event::Completed), 1).unwrap();
        let c = r.scrape(&InfoHash([1; 20]));
        assert_eq!((c.seeders, c.completed, c.leechers), (1, 1, 0));
        r.announce(&ann(1, 1000, 0, Event::Stopped), 2).unwrap();
        assert_eq!(r.torrent_count(), 0);
    }

    #[test]
    fn silent_peers_expire_and_memory_is_bounded() {
        let limits = Limits {
            max_torrents: 2,
            max_peers: 3,
            interval: 60,
            peer_ttl: 100,
        };
        let mut r = Registry::new(limits);
        for id in 0..10 {
            r.announce(&ann(id, 1000 + id as u16, 5, Event::Started), 0)
                .unwrap();
        }
        assert_eq!(r.scrape(&InfoHash([1; 20])).leechers, 3);
        let mut other = ann(1, 1, 1, Event::Started);
        other.info_hash = InfoHash([2; 20]);
        r.announce(&other, 0).unwrap();
        other.info_hash = InfoHash([3; 20]);
        assert!(r.announce(&other, 0).is_err());
        r.announce(&ann(0, 1000, 5, Event::None), 150).unwrap();
        r.expire(150);
        assert_eq!(r.scrape(&InfoHash([1; 20])).leechers, 1);
        assert_eq!(r.torrent_count(), 1);
    }
}
