//! One iterative lookup (`find_node` or `get_peers`, BEP 5): which nodes to ask next, and when
//! it has converged.
//!
//! The candidates are kept sorted by distance to the target. At most [`ALPHA`] (4) queries are
//! in flight; one unanswered for [`SOFT_TIMEOUT`] (1 s) no longer holds its slot (the node's
//! transaction table fails it for good later). The lookup is done when the [`K`] (8) closest
//! candidates that have not failed have all answered, or after [`MAX_DURATION`] (60 s).
//! Bounds: [`MAX_CANDIDATES`] (128) candidates kept (the farthest unqueried ones give way),
//! [`MAX_SEEN`] (1024) addresses ever taken (each address is asked once), [`MAX_PEERS`] (500)
//! peers collected. At most `subnet_cap` (default 1) candidates of one IPv4 /24 or IPv6 /48
//! ([`subnet`]), so that a host with many ids cannot crowd the closest set (a Sybil defence).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::krpc::NodeInfo;
use super::routing::{subnet, K};
use super::{Distance, NodeId};

pub const ALPHA: usize = 4;
pub const SOFT_TIMEOUT: Duration = Duration::from_secs(1);
pub const MAX_DURATION: Duration = Duration::from_secs(60);
pub const MAX_CANDIDATES: usize = 128;
pub const MAX_SEEN: usize = 1024;
pub const MAX_PEERS: usize = 500;
/// Candidates of one subnet in a lookup, unless configured otherwise.
pub const SUBNET_CAP: usize = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    FindNode,
    GetPeers,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    New,
    InFlight(Instant),
    Responded,
    Failed,
}

#[derive(Debug, Clone)]
struct Candidate {
    /// Unknown for bootstrap routers, known for nodes learned from replies.
    id: Option<NodeId>,
    addr: SocketAddr,
    state: State,
    token: Option<Vec<u8>>,
}

#[derive(Debug)]
pub struct Lookup {
    pub target: NodeId,
    pub kind: Kind,
    pub started: Instant,
    candidates: Vec<Candidate>,
    seen: HashSet<SocketAddr>,
    peers: HashSet<SocketAddr>,
    subnet_cap: usize,
    pub queried: usize,
    pub responded: usize,
}

impl Lookup {
    pub fn new(target: NodeId, kind: Kind, subnet_cap: usize, now: Instant) -> Lookup {
        Lookup {
            target,
            kind,
            started: now,
            candidates: Vec::new(),
            seen: HashSet::new(),
            peers: HashSet::new(),
            subnet_cap: subnet_cap.max(1),
            queried: 0,
            responded: 0,
        }
    }

    fn key(&self, id: Option<NodeId>) -> Distance {
        id.map_or(Distance([0xff; 20]), |id| id.distance(&self.target))
    }

    /// Offers a node to ask; false when it was seen before or a bound refused it.
    pub fn add(&mut self, id: Option<NodeId>, addr: SocketAddr) -> bool {
        if self.seen.contains(&addr) || self.seen.len() >= MAX_SEEN {
            return false;
        }
        self.seen.insert(addr);
        let net = subnet(addr.ip());
        let same_net = self
            .candidates
            .iter()
            .filter(|c| c.state != State::Failed && subnet(c.addr.ip()) == net)
            .count();
        if same_net >= self.subnet_cap {
            return false;
        }
        let key = self.key(id);
        if self.candidates.len() >= MAX_CANDIDATES {
            // Make room by dropping the farthest candidate not yet asked, if it is farther.
            let Some(j) = self.candidates.iter().rposition(|c| c.state == State::New) else {
                return false;
            };
            if self.key(self.candidates[j].id) <= key {
                return false;
            }
            self.candidates.remove(j);
        }
        let at = self.candidates.partition_point(|c| self.key(c.id) <= key);
        self.candidates.insert(
            at,
            Candidate {
                id,
                addr,
                state: State::New,
                token: None,
            },
        );
        true
    }

    /// The closest [`K`] candidates that have not failed.
    fn window(&self) -> impl Iterator<Item = &Candidate> {
        self.candidates
            .iter()
            .filter(|c| c.state != State::Failed)
            .take(K)
    }

    /// The next node to ask, if a slot is free and one of the closest is unasked.
    pub fn next(&mut self, now: Instant) -> Option<(Option<NodeId>, SocketAddr)> {
        let active = self
            .candidates
            .iter()
            .filter(|c| matches!(c.state, State::InFlight(t) if now.saturating_duration_since(t) < SOFT_TIMEOUT))
            .count();
        if active >= ALPHA || self.is_done(now) {
            return None;
        }
        let addr = self.window().find(|c| c.state == State::New)?.addr;
        let c = self.candidates.iter_mut().find(|c| c.addr == addr)?;
        c.state = State::InFlight(now);
        self.queried += 1;
        Some((c.id, c.addr))
    }

    /// `addr` answered: it becomes a responder, its nodes become candidates, and the peers
    /// not seen before in this lookup are returned.
    pub fn on_response(
        &mut self,
        addr: SocketAddr,
        id: NodeId,
        nodes: &[NodeInfo],
        values: &[SocketAddr],
        token: Option<Vec<u8>>,
    ) -> Vec<SocketAddr> {
        if let Some(i) = self.candidates.iter().position(|c| c.addr == addr) {
            let mut c = self.candidates.remove(i);
            if c.state != State::Responded {
                self.responded += 1;
            }
            c.state = State::Responded;
            c.id = Some(id);
            c.token = token;
            let key = self.key(c.id);
            let at = self.candidates.partition_point(|x| self.key(x.id) <= key);
            self.candidates.insert(at, c);
        }
        for n in nodes {
            self.add(Some(n.id), n.addr);
        }
        let mut fresh = Vec::new();
        for v in values {
            if self.peers.len() >= MAX_PEERS {
                break;
            }
            if self.peers.insert(*v) {
                fresh.push(*v);
            }
        }
        fresh
    }

    pub fn on_failure(&mut self, addr: SocketAddr) {
        if let Some(c) = self.candidates.iter_mut().find(|c| c.addr == addr) {
            if c.state != State::Responded {
                c.state = State::Failed;
            }
        }
    }

    pub fn is_done(&self, now: Instant) -> bool {
        if now.saturating_duration_since(self.started) >= MAX_DURATION {
            return true;
        }
        // Done when the closest live candidates have all answered; an empty window (nothing
        // left to ask) is done too.
        self.window().all(|c| c.state == State::Responded)
    }

    /// When a query in flight next stops holding its slot (after `now`).
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        self.candidates
            .iter()
            .filter_map(|c| match c.state {
                State::InFlight(t) if t + SOFT_TIMEOUT > now => Some(t + SOFT_TIMEOUT),
                _ => None,
            })
            .min()
            .map(|t| t.min(self.started + MAX_DURATION))
    }

    /// The closest responders that gave a token: where to announce.
    pub fn announce_targets(&self) -> Vec<(NodeId, SocketAddr, Vec<u8>)> {
        self.candidates
            .iter()
            .filter(|c| c.state == State::Responded)
            .take(K)
            .filter_map(|c| Some((c.id?, c.addr, c.token.clone()?)))
            .collect()
    }

    /// The closest responders.
    pub fn closest_responders(&self) -> Vec<NodeInfo> {
        self.candidates
            .iter()
            .filter(|c| c.state == State::Responded)
            .take(K)
            .filter_map(|c| {
                Some(NodeInfo {
                    id: c.id?,
                    addr: c.addr,
                })
            })
            .collect()
    }

    pub fn peers_found(&self) -> usize {
        self.peers.len()
    }

    pub fn candidates(&self) -> usize {
        self.candidates.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn addr(i: u32) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x7f00_0001 + (i << 8))), 6881)
    }

    fn id_at(target: &NodeId, prefix: usize, salt: u8) -> NodeId {
        let mut rng = crate::dht::Rng::new([salt; 32]);
        target.random_in_bucket(prefix, &mut rng)
    }

    #[test]
    fn asks_alpha_at_once_and_converges_on_the_closest() {
        let now = Instant::now();
        let target = NodeId([0x55; 20]);
        let mut l = Lookup::new(target, Kind::GetPeers, SUBNET_CAP, now);
        for i in 0..20u32 {
            assert!(l.add(Some(id_at(&target, i as usize, i as u8)), addr(i)));
        }
        let first: Vec<_> = std::iter::from_fn(|| l.next(now)).collect();
        assert_eq!(first.len(), ALPHA);
        // The first asked are the closest: prefixes 19, 18, 17, 16.
        assert_eq!(first[0].1, addr(19));
        // Everyone answers with nothing new: the lookup ends after the closest 8 answered.
        let mut asked = first;
        while let Some((id, a)) = asked.pop() {
            l.on_response(a, id.unwrap(), &[], &[], Some(b"t".to_vec()));
            asked.extend(std::iter::from_fn(|| l.next(now)));
        }
        assert!(l.is_done(now));
        assert_eq!(l.queried, K);
        assert_eq!(l.announce_targets().len(), K);
    }

    #[test]
    fn a_slow_node_frees_its_slot_after_the_soft_timeout() {
        let now = Instant::now();
        let target = NodeId([1; 20]);
        let mut l = Lookup::new(target, Kind::FindNode, SUBNET_CAP, now);
        for i in 0..10u32 {
            l.add(Some(id_at(&target, i as usize, i as u8)), addr(i));
        }
        for _ in 0..ALPHA {
            assert!(l.next(now).is_some());
        }
        assert!(l.next(now).is_none());
        assert!(l.next(now + SOFT_TIMEOUT).is_some());
    }

    #[test]
    fn each_address_once_and_one_candidate_per_subnet() {
        let now = Instant::now();
        let target = NodeId([2; 20]);
        let mut l = Lookup::new(target, Kind::FindNode, SUBNET_CAP, now);
        assert!(l.add(Some(NodeId([3; 20])), addr(1)));
        assert!(!l.add(Some(NodeId([4; 20])), addr(1)));
        // Another port of the same /24: refused.
        let mut other = addr(1);
        other.set_port(7000);
        assert!(!l.add(Some(NodeId([5; 20])), other));
        assert_eq!(l.candidates(), 1);
    }

    #[test]
    fn candidates_and_peers_are_bounded() {
        let now = Instant::now();
        let target = NodeId([7; 20]);
        let mut l = Lookup::new(target, Kind::GetPeers, SUBNET_CAP, now);
        let mut rng = crate::dht::Rng::new([9; 32]);
        for i in 0..5000u32 {
            l.add(Some(NodeId::random(&mut rng)), addr(i));
        }
        assert!(l.candidates() <= MAX_CANDIDATES);
        let values: Vec<SocketAddr> = (0..2000).map(|i| addr(100_000 + i)).collect();
        let (id, a) = l.next(now).unwrap();
        let fresh = l.on_response(a, id.unwrap(), &[], &values, None);
        assert_eq!(fresh.len(), MAX_PEERS);
    }
}
