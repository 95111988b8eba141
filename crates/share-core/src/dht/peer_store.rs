//! Peers other nodes announced to us (`announce_peer`), served back in `get_peers` replies.
//!
//! Bounded three ways: [`MAX_PEERS_PER_HASH`] (100) per info-hash, [`MAX_INFO_HASHES`]
//! (1000) info-hashes, [`MAX_PEERS_TOTAL`] (20 000) in all; entries expire after
//! [`PEER_TTL`] (30 min) unless announced again. One entry per IP address (an IPv6 /64
//! counts as one, see [`IpKey`]) and info-hash: a later announce from the same IP replaces
//! the address and port, so a host cannot fill a swarm's list with ports, nor with the
//! addresses of its /64. An announcer whose node id matches its IP (BEP 42) may displace one that does
//! not, never the reverse. A reply carries at most [`MAX_VALUES_PER_REPLY`] (50) peers,
//! sampled at random.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{NodeId, Rng};
use crate::IpKey;

pub const PEER_TTL: Duration = Duration::from_secs(30 * 60);
pub const MAX_PEERS_PER_HASH: usize = 100;
pub const MAX_INFO_HASHES: usize = 1000;
pub const MAX_PEERS_TOTAL: usize = 20_000;
pub const MAX_VALUES_PER_REPLY: usize = 50;

#[derive(Debug, Clone)]
struct Entry {
    addr: SocketAddr,
    at: Instant,
    /// The announcer's id matched its address (BEP 42).
    trusted: bool,
}

#[derive(Debug, Default)]
pub struct PeerStore {
    swarms: HashMap<NodeId, Vec<Entry>>,
    total: usize,
    /// When a full store last swept out expired entries (at most once a second).
    swept: Option<Instant>,
}

impl PeerStore {
    /// Stores `addr` for `info_hash`; false when a bound refused it.
    pub fn announce(
        &mut self,
        info_hash: NodeId,
        addr: SocketAddr,
        trusted: bool,
        now: Instant,
    ) -> bool {
        if let Some(list) = self.swarms.get_mut(&info_hash) {
            let ip = IpKey::from(addr.ip());
            if let Some(e) = list.iter_mut().find(|e| IpKey::from(e.addr.ip()) == ip) {
                *e = Entry {
                    addr,
                    at: now,
                    trusted: trusted || e.trusted,
                };
                return true;
            }
        }
        let full = self.total >= MAX_PEERS_TOTAL
            || !self.swarms.contains_key(&info_hash) && self.swarms.len() >= MAX_INFO_HASHES;
        if full
            && self
                .swept
                .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1))
        {
            self.swept = Some(now);
            self.expire(now);
        }
        if !self.swarms.contains_key(&info_hash) && self.swarms.len() >= MAX_INFO_HASHES {
            return false;
        }
        let list = self.swarms.entry(info_hash).or_default();
        let entry = Entry {
            addr,
            at: now,
            trusted,
        };
        if list.len() < MAX_PEERS_PER_HASH {
            if self.total >= MAX_PEERS_TOTAL {
                if list.is_empty() {
                    self.swarms.remove(&info_hash);
                }
                return false;
            }
            list.push(entry);
            self.total += 1;
            return true;
        }
        // Full: displace the oldest untrusted entry, or the oldest of all if we are trusted.
        let victim = list
            .iter()
            .enumerate()
            .filter(|(_, e)| !e.trusted || trusted)
            .min_by_key(|(_, e)| (e.trusted, e.at))
            .map(|(i, _)| i);
        match victim {
            Some(i) => {
                list[i] = entry;
                true
            }
            None => false,
        }
    }

    /// Up to [`MAX_VALUES_PER_REPLY`] live peers of `info_hash` of the given family.
    pub fn get(
        &self,
        info_hash: &NodeId,
        ipv6: bool,
        now: Instant,
        rng: &mut Rng,
    ) -> Vec<SocketAddr> {
        let Some(list) = self.swarms.get(info_hash) else {
            return Vec::new();
        };
        let mut live: Vec<SocketAddr> = list
            .iter()
            .filter(|e| now.saturating_duration_since(e.at) < PEER_TTL && e.addr.is_ipv6() == ipv6)
            .map(|e| e.addr)
            .collect();
        // A partial Fisher-Yates shuffle picks the sample.
        let n = live.len().min(MAX_VALUES_PER_REPLY);
        for i in 0..n {
            let j = i + rng.below(live.len() - i);
            live.swap(i, j);
        }
        live.truncate(n);
        live
    }

    /// Drops entries older than [`PEER_TTL`].
    pub fn expire(&mut self, now: Instant) {
        let mut total = 0;
        self.swarms.retain(|_, list| {
            list.retain(|e| now.saturating_duration_since(e.at) < PEER_TTL);
            total += list.len();
            !list.is_empty()
        });
        self.total = total;
    }

    pub fn len(&self) -> usize {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    pub fn info_hashes(&self) -> usize {
        self.swarms.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn addr(i: u32, port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)), port)
    }

    #[test]
    fn bounded_per_hash_and_one_entry_per_ip() {
        let now = Instant::now();
        let mut s = PeerStore::default();
        let h = NodeId([1; 20]);
        for i in 0..(MAX_PEERS_PER_HASH as u32 * 2) {
            s.announce(h, addr(i, 1), false, now);
        }
        assert_eq!(s.len(), MAX_PEERS_PER_HASH);
        // The same host on other ports replaces its own entry.
        for port in 2..50 {
            s.announce(h, addr(1_000_000, port), false, now);
        }
        assert_eq!(s.len(), MAX_PEERS_PER_HASH);
        let mut rng = Rng::new([0; 32]);
        assert_eq!(s.get(&h, false, now, &mut rng).len(), MAX_VALUES_PER_REPLY);
    }

    #[test]
    fn one_entry_per_ipv6_64() {
        let now = Instant::now();
        let mut s = PeerStore::default();
        let h = NodeId([3; 20]);
        for i in 1..50 {
            let a: SocketAddr = format!("[2001:db8:0:1::{i:x}]:6881").parse().unwrap();
            s.announce(h, a, false, now);
        }
        assert_eq!(s.len(), 1, "one /64");
        s.announce(h, "[2001:db8:0:2::1]:6881".parse().unwrap(), false, now);
        assert_eq!(s.len(), 2, "another /64");
    }

    #[test]
    fn trusted_announcers_displace_untrusted_ones_only() {
        let now = Instant::now();
        let mut s = PeerStore::default();
        let h = NodeId([2; 20]);
        for i in 0..MAX_PEERS_PER_HASH as u32 {
            assert!(s.announce(h, addr(i, 1), true, now));
        }
        assert!(
            !s.announce(h, addr(5000, 1), false, now),
            "untrusted cannot displace"
        );
        assert!(s.announce(h, addr(5001, 1), true, now));
    }

    #[test]
    fn total_and_info_hash_bounds_and_expiry() {
        let t0 = Instant::now();
        let mut s = PeerStore::default();
        let mut n = 0u32;
        for h in 0..(MAX_INFO_HASHES as u32 + 10) {
            let mut id = [0u8; 20];
            id[..4].copy_from_slice(&h.to_be_bytes());
            for _ in 0..30 {
                s.announce(NodeId(id), addr(n, 1), false, t0);
                n += 1;
            }
        }
        assert!(s.len() <= MAX_PEERS_TOTAL);
        assert!(s.info_hashes() <= MAX_INFO_HASHES);
        s.expire(t0 + PEER_TTL);
        assert_eq!((s.len(), s.info_hashes()), (0, 0));
    }
}
