//! A deterministic in-memory network of [`Node`]s for tests: packets are delivered after a
//! fixed latency, time advances in steps, and some addresses can be played by a hostile
//! responder instead of a node.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use super::krpc::{Kind, Message, Method, NodeInfo, Response};
use super::{Config, Event, Node, NodeId, Rng};

pub const STEP: Duration = Duration::from_millis(5);
pub const LATENCY: Duration = Duration::from_millis(10);

/// Each node in a /24 of its own, as the lookup's subnet cap expects of honest nodes.
pub fn addr_of(i: usize) -> SocketAddr {
    let i = i as u32;
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(127, 1 + (i / 256) as u8, (i % 256) as u8, 1)),
        6881,
    )
}

/// Something that answers for addresses that are not honest nodes.
pub trait Responder {
    fn owns(&self, addr: SocketAddr) -> bool;
    fn respond(&mut self, me: SocketAddr, from: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>>;
}

pub struct Net {
    pub now: Instant,
    pub nodes: Vec<(SocketAddr, Node)>,
    index: HashMap<SocketAddr, usize>,
    queue: VecDeque<(Instant, SocketAddr, SocketAddr, Vec<u8>)>,
    pub down: HashSet<SocketAddr>,
    pub events: Vec<(usize, Event)>,
    pub hostile: Option<Box<dyn Responder>>,
    pub delivered: u64,
}

impl Net {
    pub fn new() -> Net {
        let t0 = Instant::now();
        Net {
            now: t0,
            nodes: Vec::new(),
            index: HashMap::new(),
            queue: VecDeque::new(),
            down: HashSet::new(),
            events: Vec::new(),
            hostile: None,
            delivered: 0,
        }
    }

    pub fn add(&mut self, addr: SocketAddr, config: Config) -> usize {
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&(self.nodes.len() as u64 + 1).to_le_bytes());
        let node = Node::new(seed, config, self.now);
        self.push(addr, node)
    }

    pub fn push(&mut self, addr: SocketAddr, node: Node) -> usize {
        let i = self.nodes.len();
        self.nodes.push((addr, node));
        self.index.insert(addr, i);
        i
    }

    /// `n` honest nodes, each started a little after the previous one and bootstrapping from
    /// node 0, then run until everyone's first lookup is over.
    pub fn honest(n: usize) -> Net {
        let mut net = Net::new();
        for i in 0..n {
            let config = Config {
                bootstrap: if i == 0 { vec![] } else { vec![addr_of(0)] },
                ..Config::default()
            };
            net.add(addr_of(i), config);
            net.run(Duration::from_millis(30));
        }
        net.run(Duration::from_secs(5));
        net
    }

    /// Sends a datagram from anywhere (a hostile address, say).
    pub fn inject(&mut self, from: SocketAddr, to: SocketAddr, bytes: Vec<u8>) {
        self.queue.push_back((self.now + LATENCY, from, to, bytes));
    }

    pub fn node(&mut self, i: usize) -> &mut Node {
        &mut self.nodes[i].1
    }

    /// Advances to the next delivery or node timeout (at least [`STEP`], at most `limit`).
    pub fn step_until(&mut self, limit: Instant) {
        let mut next = limit;
        if let Some((at, ..)) = self.queue.front() {
            next = next.min(*at);
        }
        for (addr, node) in &self.nodes {
            if !self.down.contains(addr) {
                if let Some(t) = node.next_timeout() {
                    next = next.min(t);
                }
            }
        }
        self.now = next.max(self.now + STEP).min(limit.max(self.now + STEP));
        self.deliver();
    }

    fn deliver(&mut self) {
        let now = self.now;
        while self.queue.front().is_some_and(|(at, ..)| *at <= now) {
            let Some((_, from, to, bytes)) = self.queue.pop_front() else {
                break;
            };
            if self.down.contains(&to) {
                continue;
            }
            self.delivered += 1;
            if let Some(&i) = self.index.get(&to) {
                self.nodes[i].1.handle_packet(from, &bytes, now);
            } else if let Some(h) = self.hostile.as_mut().filter(|h| h.owns(to)) {
                if let Some(reply) = h.respond(to, from, &bytes) {
                    self.queue.push_back((now + LATENCY, to, from, reply));
                }
            }
        }
        for i in 0..self.nodes.len() {
            let (addr, node) = &mut self.nodes[i];
            let addr = *addr;
            if self.down.contains(&addr) {
                continue;
            }
            if node.next_timeout().is_some_and(|t| t <= now) {
                node.tick(now);
            }
            while let Some((to, bytes)) = node.poll_transmit() {
                self.queue.push_back((now + LATENCY, addr, to, bytes));
            }
            while let Some(e) = node.poll_event() {
                self.events.push((i, e));
            }
        }
    }

    pub fn run(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.step_until(end);
        }
    }

    /// Runs until `done` holds of an event of node `i`, at most `max`; returns that event.
    pub fn run_until(
        &mut self,
        i: usize,
        max: Duration,
        done: impl Fn(&Event) -> bool,
    ) -> Option<Event> {
        let end = self.now + max;
        let mut seen = self.events.len();
        while self.now < end {
            self.step_until(end);
            if let Some((_, e)) = self.events[seen..].iter().find(|(n, e)| *n == i && done(e)) {
                return Some(e.clone());
            }
            seen = self.events.len();
        }
        None
    }
}

/// A hostile crowd: many ids on a few IPs, every port a fake node. Each answers every query
/// with fake nodes just next to the target and with bogus peers.
pub struct Sybils {
    pub ips: Vec<IpAddr>,
    pub ports: u16,
    pub rng: Rng,
    /// Bogus peers handed out, in all.
    pub bogus_sent: usize,
    pub queries: usize,
}

impl Sybils {
    fn fake_near(&mut self, target: &NodeId) -> NodeInfo {
        let mut id = target.0;
        id[19] ^= 1 + (self.rng.below(255) as u8);
        id[18] ^= self.rng.below(4) as u8;
        let ip = self.ips[self.rng.below(self.ips.len())];
        let port = 20_000 + self.rng.below(usize::from(self.ports)) as u16;
        NodeInfo {
            id: NodeId(id),
            addr: SocketAddr::new(ip, port),
        }
    }
}

impl Responder for Sybils {
    fn owns(&self, addr: SocketAddr) -> bool {
        self.ips.contains(&addr.ip()) && (20_000..20_000 + self.ports).contains(&addr.port())
    }

    fn respond(&mut self, me: SocketAddr, from: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
        let m = Message::decode(bytes).ok()?;
        let Kind::Query(q) = m.kind else { return None };
        self.queries += 1;
        let target = match q.method {
            Method::FindNode { target, .. } => target,
            Method::GetPeers { info_hash, .. } => info_hash,
            _ => q.id,
        };
        // Our own id: right next to the target too, so that we always look closest.
        let mut own = target.0;
        own[19] ^= (me.port() & 0xff) as u8 | 1;
        let nodes = (0..8).map(|_| self.fake_near(&target)).collect();
        let values: Vec<SocketAddr> = (0..50)
            .map(|_| {
                SocketAddr::new(
                    IpAddr::V4(Ipv4Addr::from(self.rng.next_u64() as u32 | 1)),
                    6881,
                )
            })
            .collect();
        self.bogus_sent += values.len();
        let r = Response {
            id: Some(NodeId(own)),
            nodes,
            nodes6: vec![],
            values,
            token: Some(b"sybil".to_vec()),
        };
        Some(
            Message {
                tid: m.tid,
                kind: Kind::Response(r),
                ip: Some(from),
                read_only: false,
            }
            .encode(),
        )
    }
}
