//! The routing table: Kademlia k-buckets of [`K`] (8) nodes around our id (BEP 5).
//!
//! Bucket `i` holds nodes whose id shares exactly `i` leading bits with ours (the last one
//! also holds longer prefixes), which is the table one gets by always splitting the bucket
//! that contains our id; so the table holds at most 160 × ([`K`] + [`REPLACEMENTS`]) = 2560
//! entries, and in practice about 8 × log2(network size).
//!
//! What gets in, and the Sybil defences:
//! - only nodes that answered one of our queries (a node that queries us is pinged first);
//!   ids learned from `nodes` lists go to lookups, never straight into the table;
//! - at most `subnet_cap` (default 2) nodes of one IPv4 /24 or IPv6 /48 in a bucket;
//! - at most `ip_cap` (default 1) nodes of one IP address in the whole table, so an address
//!   already in the table under another id is refused (no id hopping, no crowd of ports);
//!   an IPv6 /64 counts as one address ([`IpKey`]), as a host picks addresses in it at will,
//!   which is also why the subnet rule looks at the /48 (a site's usual allocation) and not
//!   at the /64 for IPv6;
//! - a node whose id matches its address (BEP 42) displaces one whose id does not;
//! - a full bucket keeps its nodes: a newcomer waits in the bucket's replacement cache
//!   ([`REPLACEMENTS`], 8) and takes the place of a node that goes bad.
//!
//! States (BEP 5): good = answered within [`GOOD_FOR`] (15 min); questionable after that;
//! bad after [`MAX_FAILS`] (2) unanswered queries in a row.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::krpc::NodeInfo;
use super::NodeId;
use crate::IpKey;

pub const K: usize = 8;
pub const BUCKETS: usize = 160;
pub const REPLACEMENTS: usize = 8;
pub const GOOD_FOR: Duration = Duration::from_secs(15 * 60);
pub const MAX_FAILS: u8 = 2;
/// Nodes of one /24 (or IPv6 /48) per bucket, unless configured otherwise.
pub const SUBNET_CAP: usize = 2;
/// Nodes of one IP address (or IPv6 /64) in the whole table, unless configured otherwise.
pub const IP_CAP: usize = 1;

#[derive(Debug, Clone)]
pub struct Entry {
    pub id: NodeId,
    pub addr: SocketAddr,
    pub last_response: Instant,
    /// Queries in a row it did not answer.
    pub fails: u8,
    /// Its id matches its address (BEP 42).
    pub bep42: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Good,
    Questionable,
    Bad,
}

impl Entry {
    pub fn state(&self, now: Instant) -> State {
        if self.fails >= MAX_FAILS {
            State::Bad
        } else if now.saturating_duration_since(self.last_response) < GOOD_FOR && self.fails == 0 {
            State::Good
        } else {
            State::Questionable
        }
    }

    pub fn info(&self) -> NodeInfo {
        NodeInfo {
            id: self.id,
            addr: self.addr,
        }
    }
}

/// What [`RoutingTable::heard_from`] did with a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Insert {
    Added,
    Updated,
    /// Its bucket is full: it waits in the replacement cache. The node given, if any, is the
    /// bucket's stalest questionable node, worth a ping to find out whether it is gone.
    Waiting(Option<(NodeId, SocketAddr)>),
    Refused,
}

#[derive(Debug)]
struct Bucket {
    nodes: Vec<Entry>,
    replacements: Vec<Entry>,
    last_changed: Instant,
}

#[derive(Debug)]
pub struct RoutingTable {
    own: NodeId,
    buckets: Vec<Bucket>,
    subnet_cap: usize,
    ip_cap: usize,
}

/// The /24 of an IPv4 address (an IPv4-mapped IPv6 one included) or the /48 of an IPv6
/// one: the /64 is what one host holds ([`IpKey`]), so the rule on neighbours looks wider.
pub fn subnet(ip: IpAddr) -> [u8; 9] {
    let mut k = [0u8; 9];
    match ip {
        IpAddr::V4(v4) => k[..3].copy_from_slice(&v4.octets()[..3]),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => k[..3].copy_from_slice(&v4.octets()[..3]),
            None => {
                k[..6].copy_from_slice(&v6.octets()[..6]);
                k[8] = 6;
            }
        },
    }
    k
}

impl RoutingTable {
    pub fn new(own: NodeId, subnet_cap: usize, now: Instant) -> RoutingTable {
        RoutingTable {
            own,
            buckets: (0..BUCKETS)
                .map(|_| Bucket {
                    nodes: Vec::new(),
                    replacements: Vec::new(),
                    last_changed: now,
                })
                .collect(),
            subnet_cap: subnet_cap.max(1),
            ip_cap: IP_CAP,
        }
    }

    /// Changes how many nodes of one IP address (or IPv6 /64) the table takes (default
    /// [`IP_CAP`]).
    pub fn set_ip_cap(&mut self, cap: usize) {
        self.ip_cap = cap.max(1);
    }

    /// Nodes of the table at `ip`, or in its /64 for IPv6.
    fn same_ip(&self, ip: IpAddr) -> usize {
        let key = IpKey::from(ip);
        self.iter()
            .filter(|e| IpKey::from(e.addr.ip()) == key)
            .count()
    }

    pub fn own_id(&self) -> NodeId {
        self.own
    }

    fn index(&self, id: &NodeId) -> usize {
        self.own.common_prefix(id).min(BUCKETS - 1)
    }

    /// A node answered one of our queries.
    pub fn heard_from(
        &mut self,
        id: NodeId,
        addr: SocketAddr,
        bep42: bool,
        now: Instant,
    ) -> Insert {
        if id == self.own {
            return Insert::Refused;
        }
        let i = self.index(&id);
        let cap = self.subnet_cap;
        let b = &mut self.buckets[i];
        if let Some(e) = b.nodes.iter_mut().find(|e| e.id == id) {
            if e.addr != addr {
                return Insert::Refused;
            }
            e.last_response = now;
            e.fails = 0;
            b.last_changed = now;
            return Insert::Updated;
        }
        if self.contains_addr(addr) || self.same_ip(addr.ip()) >= self.ip_cap {
            return Insert::Refused;
        }
        let b = &mut self.buckets[i];
        let entry = Entry {
            id,
            addr,
            last_response: now,
            fails: 0,
            bep42,
        };
        let net = subnet(addr.ip());
        let same_net = b
            .nodes
            .iter()
            .filter(|e| subnet(e.addr.ip()) == net)
            .count();
        if same_net >= cap {
            // A node of that subnet may still displace one of its own that went bad, or one
            // whose id does not match its address.
            let weaker = b.nodes.iter().position(|e| {
                subnet(e.addr.ip()) == net && (e.state(now) == State::Bad || bep42 && !e.bep42)
            });
            return match weaker {
                Some(j) => {
                    b.nodes[j] = entry;
                    b.last_changed = now;
                    Insert::Added
                }
                None => Insert::Refused,
            };
        }
        if b.nodes.len() < K {
            b.nodes.push(entry);
            b.replacements.retain(|r| r.id != id);
            b.last_changed = now;
            return Insert::Added;
        }
        let bad = b.nodes.iter().position(|e| e.state(now) == State::Bad);
        let unverified = || {
            b.nodes
                .iter()
                .enumerate()
                .filter(|(_, e)| !e.bep42)
                .min_by_key(|(_, e)| e.last_response)
                .map(|(j, _)| j)
        };
        if let Some(j) = bad.or_else(|| if bep42 { unverified() } else { None }) {
            b.nodes[j] = entry;
            b.last_changed = now;
            return Insert::Added;
        }
        let same_net_waiting = b
            .replacements
            .iter()
            .filter(|e| subnet(e.addr.ip()) == net)
            .count();
        if let Some(r) = b.replacements.iter_mut().find(|r| r.id == id) {
            *r = entry;
        } else if same_net_waiting < cap {
            if b.replacements.len() >= REPLACEMENTS {
                b.replacements.remove(0);
            }
            b.replacements.push(entry);
        } else {
            return Insert::Refused;
        }
        let stalest = b
            .nodes
            .iter()
            .filter(|e| e.state(now) == State::Questionable)
            .min_by_key(|e| e.last_response)
            .map(|e| (e.id, e.addr));
        Insert::Waiting(stalest)
    }

    /// A query to `id` went unanswered. A node that goes bad gives its place to the newest
    /// node of the replacement cache, if there is one.
    pub fn failed(&mut self, id: &NodeId, now: Instant) {
        let i = self.index(id);
        let b = &mut self.buckets[i];
        let Some(j) = b.nodes.iter().position(|e| e.id == *id) else {
            b.replacements.retain(|r| r.id != *id);
            return;
        };
        b.nodes[j].fails = b.nodes[j].fails.saturating_add(1);
        if b.nodes[j].state(now) == State::Bad {
            if let Some(r) = b.replacements.pop() {
                b.nodes[j] = r;
                b.last_changed = now;
            }
        }
    }

    /// Whether a node we have not heard from would be taken in if it answered: worth a ping.
    pub fn would_take(&self, id: &NodeId, addr: SocketAddr, now: Instant) -> bool {
        if *id == self.own || self.contains_addr(addr) || self.same_ip(addr.ip()) >= self.ip_cap {
            return false;
        }
        let b = &self.buckets[self.index(id)];
        let net = subnet(addr.ip());
        b.nodes
            .iter()
            .filter(|e| subnet(e.addr.ip()) == net)
            .count()
            < self.subnet_cap
            && (b.nodes.len() < K || b.nodes.iter().any(|e| e.state(now) == State::Bad))
    }

    pub fn contains_addr(&self, addr: SocketAddr) -> bool {
        self.iter().any(|e| e.addr == addr)
    }

    pub fn get(&self, id: &NodeId) -> Option<&Entry> {
        self.buckets[self.index(id)]
            .nodes
            .iter()
            .find(|e| e.id == *id)
    }

    /// The `n` closest nodes to `target` that are not bad.
    pub fn closest(&self, target: &NodeId, n: usize, now: Instant) -> Vec<NodeInfo> {
        let mut all: Vec<&Entry> = self.iter().filter(|e| e.state(now) != State::Bad).collect();
        all.sort_by_key(|e| e.id.distance(target));
        all.into_iter().take(n).map(Entry::info).collect()
    }

    /// Questionable nodes, stalest first: to be pinged.
    pub fn questionable(&self, now: Instant) -> Vec<(NodeId, SocketAddr)> {
        let mut q: Vec<&Entry> = self
            .iter()
            .filter(|e| e.state(now) == State::Questionable)
            .collect();
        q.sort_by_key(|e| e.last_response);
        q.into_iter().map(|e| (e.id, e.addr)).collect()
    }

    /// Buckets unchanged for [`GOOD_FOR`], up to one past the deepest non-empty one: each
    /// deserves a lookup of a random id inside it.
    pub fn stale_buckets(&self, now: Instant) -> Vec<usize> {
        let deepest = self
            .buckets
            .iter()
            .rposition(|b| !b.nodes.is_empty())
            .unwrap_or(0);
        (0..=(deepest + 1).min(BUCKETS - 1))
            .filter(|&i| now.saturating_duration_since(self.buckets[i].last_changed) >= GOOD_FOR)
            .collect()
    }

    pub fn touch_bucket(&mut self, i: usize, now: Instant) {
        if let Some(b) = self.buckets.get_mut(i) {
            b.last_changed = now;
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.buckets.iter().flat_map(|b| b.nodes.iter())
    }

    pub fn len(&self) -> usize {
        self.buckets.iter().map(|b| b.nodes.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn replacement_count(&self) -> usize {
        self.buckets.iter().map(|b| b.replacements.len()).sum()
    }

    pub fn good_count(&self, now: Instant) -> usize {
        self.iter().filter(|e| e.state(now) == State::Good).count()
    }

    /// The same nodes around a new id of ours (after BEP 42 gave us one).
    pub fn recentre(&mut self, own: NodeId, now: Instant) {
        let old: Vec<Entry> = self.iter().cloned().collect();
        let ip_cap = self.ip_cap;
        *self = RoutingTable::new(own, self.subnet_cap, now);
        self.ip_cap = ip_cap;
        for e in old {
            if self.heard_from(e.id, e.addr, e.bep42, e.last_response) == Insert::Added {
                let i = self.index(&e.id);
                if let Some(n) = self.buckets[i].nodes.iter_mut().find(|n| n.id == e.id) {
                    n.fails = e.fails;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
