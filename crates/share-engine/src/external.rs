//! Our address as the outside sees it, from what the session learns: a port mapping (the
//! router says which external address and port forward to us), the peers' BEP 10 `yourip`
//! votes, and the DHT's vote (BEP 42: the nodes that answer us say where they see us from).
//! A mapping is taken as it is; votes count only from public addresses (a peer on the LAN
//! sees our LAN address), one per subnet, and need two subnets to agree.
//!
//! It is used where it helps: the port told to trackers and in the extension handshake (a
//! router may map another external port than ours), the DHT's node id (BEP 42), and the
//! daemon's `port-test` (reachable if mapped, or once a peer from outside connected to us).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use share_core::webseed::is_internal;

/// Voters remembered at most.
const MAX_VOTERS: usize = 64;
/// Subnets that must agree on an address before it is believed.
const VOTES_NEEDED: usize = 2;

#[derive(Debug, Default)]
struct Inner {
    mapped: Option<SocketAddr>,
    /// (voter's subnet, the address it saw), newest last.
    votes: Vec<(IpAddr, IpAddr)>,
    dht: Option<IpAddr>,
}

/// The /24 (IPv6: /48) a voter is in: one vote per subnet.
fn subnet(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            IpAddr::from([o[0], o[1], o[2], 0])
        }
        IpAddr::V6(a) => {
            let mut s = a.segments();
            s[3..].iter_mut().for_each(|x| *x = 0);
            IpAddr::from(s)
        }
    }
}

/// What the session knows of its external address.
#[derive(Debug, Default)]
pub struct External {
    inner: Mutex<Inner>,
    /// A peer from a public address connected to us: our port is open.
    reached: AtomicBool,
}

/// Where an external address came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Mapping,
    Peers,
    Dht,
}

impl External {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A port mapping's external address (`None`: no mapping now).
    pub fn set_mapped(&self, addr: Option<SocketAddr>) {
        self.lock().mapped = addr;
    }

    /// A peer at `voter` says it sees us at `seen` (BEP 10 `yourip`).
    pub fn vote(&self, voter: IpAddr, seen: IpAddr) {
        if is_internal(voter) || is_internal(seen) {
            return;
        }
        let key = subnet(voter);
        let mut g = self.lock();
        g.votes.retain(|(k, _)| *k != key);
        if g.votes.len() >= MAX_VOTERS {
            g.votes.remove(0);
        }
        g.votes.push((key, seen));
    }

    /// The DHT took an id for this address (its nodes agreed on it).
    pub fn dht(&self, ip: IpAddr) {
        if !is_internal(ip) {
            self.lock().dht = Some(ip);
        }
    }

    /// A connection came in from `from`.
    pub fn reached_from(&self, from: IpAddr) {
        if !is_internal(from) {
            self.reached.store(true, Ordering::Relaxed);
        }
    }

    /// Our external address and where it came from, if known.
    pub fn address(&self) -> Option<(IpAddr, Source)> {
        let g = self.lock();
        if let Some(m) = g.mapped {
            return Some((m.ip(), Source::Mapping));
        }
        let mut best: Option<(IpAddr, usize)> = None;
        for (_, ip) in &g.votes {
            let n = g.votes.iter().filter(|(_, x)| x == ip).count();
            if n >= VOTES_NEEDED && best.is_none_or(|(_, b)| n > b) {
                best = Some((*ip, n));
            }
        }
        if let Some((ip, _)) = best {
            return Some((ip, Source::Peers));
        }
        g.dht.map(|ip| (ip, Source::Dht))
    }

    /// The port peers outside reach us at: the mapped one, else `local`.
    pub fn port(&self, local: u16) -> u16 {
        self.lock().mapped.map_or(local, |m| m.port())
    }

    /// Whether peers outside can reach our port, as far as is known: a mapping, or a
    /// connection from a public address.
    pub fn port_open(&self) -> bool {
        self.lock().mapped.is_some() || self.reached.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mapping_wins_then_two_subnets_of_votes_then_the_dht() {
        let e = External::default();
        assert_eq!(e.address(), None);
        assert!(!e.port_open());
        e.dht("45.1.0.9".parse().unwrap());
        assert_eq!(e.address().unwrap().1, Source::Dht);
        // A LAN peer's view and one voter are not enough.
        e.vote(
            "192.168.1.5".parse().unwrap(),
            "192.168.1.10".parse().unwrap(),
        );
        e.vote("8.8.8.8".parse().unwrap(), "45.1.0.2".parse().unwrap());
        e.vote("8.8.8.9".parse().unwrap(), "45.1.0.2".parse().unwrap());
        assert_eq!(e.address().unwrap().1, Source::Dht, "one subnet");
        e.vote("9.9.9.9".parse().unwrap(), "45.1.0.2".parse().unwrap());
        assert_eq!(
            e.address(),
            Some(("45.1.0.2".parse().unwrap(), Source::Peers))
        );
        e.set_mapped(Some("45.1.0.3:7000".parse().unwrap()));
        assert_eq!(e.address().unwrap().1, Source::Mapping);
        assert_eq!(e.port(6881), 7000);
        assert!(e.port_open());
        e.set_mapped(None);
        assert_eq!(e.port(6881), 6881);
        assert!(!e.port_open());
        e.reached_from("127.0.0.1".parse().unwrap());
        assert!(!e.port_open());
        e.reached_from("8.8.4.4".parse().unwrap());
        assert!(e.port_open());
    }
}
