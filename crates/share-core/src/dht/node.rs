//! The DHT node: answers queries, runs lookups and keeps the routing table fresh (BEP 5).
//!
//! Sans-IO: [`Node::handle_packet`] takes a datagram, [`Node::tick`] the time; packets to send
//! come out of [`Node::poll_transmit`], news out of [`Node::poll_event`]. A node speaks one
//! address family (that of its socket); a session runs one node per family (BEP 32).
//!
//! Bounds: [`MAX_PENDING`] (512) queries of ours awaiting a reply, each failed after
//! `query_timeout` (default 3 s); [`MAX_LOOKUPS`] (64) lookups at once; [`MAX_TORRENTS`]
//! (10 000) info-hashes looked up and announced on a schedule; [`MAX_OUT`] (4096) packets and
//! [`MAX_EVENTS`] (4096) events queued (more are dropped and counted); [`MAX_PINGS`] (16)
//! pings of unverified nodes at once; the saved table keeps at most [`MAX_SAVED`] (256) nodes.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::id::is_local;
use super::krpc::{self, code, ErrorReply, Kind, Message, Method, NodeInfo, Query, Response, Want};
use super::lookup::{self, Lookup};
use super::peer_store::PeerStore;
use super::rate::{Rate, RateLimiter};
use super::routing::{self, Insert, RoutingTable, K};
use super::tokens::Tokens;
use super::value::{self, Value, Writer};
use super::{NodeId, Rng};
use crate::bencode::Limits;
use crate::InfoHash;

pub const MAX_PENDING: usize = 512;
pub const MAX_LOOKUPS: usize = 64;
pub const MAX_TORRENTS: usize = 10_000;
pub const MAX_OUT: usize = 4096;
pub const MAX_EVENTS: usize = 4096;
pub const MAX_PINGS: usize = 16;
pub const MAX_SAVED: usize = 256;
/// How often the table is looked after: questionable nodes pinged, stale buckets refreshed,
/// expired peers dropped.
pub const MAINTENANCE: Duration = Duration::from_secs(60);
/// Questionable nodes pinged per maintenance round.
const PINGS_PER_ROUND: usize = 8;
/// Distinct /24s (IPv6 /48s) that must report the same external address before our id
/// follows it.
const IP_VOTES_NEEDED: usize = 5;

#[derive(Debug, Clone)]
pub struct Config {
    /// Nodes to start from when the table is empty (routers; ids unknown).
    pub bootstrap: Vec<SocketAddr>,
    /// The family of our socket: nodes of the other family are ignored.
    pub ipv6: bool,
    /// Our address as others see it, when known: our id is derived from it (BEP 42).
    pub external_ip: Option<IpAddr>,
    /// Nodes of one /24 (IPv6 /48) per bucket.
    pub subnet_cap: usize,
    /// Nodes of one IP address (an IPv6 /64 counts as one) in the routing table.
    pub ip_cap: usize,
    /// Candidates of one /24 (IPv6 /48) in a lookup.
    pub lookup_subnet_cap: usize,
    /// Incoming queries allowed per source IP (an IPv6 /64 counts as one), and in all.
    pub ip_rate: Rate,
    pub global_rate: Rate,
    pub query_timeout: Duration,
    /// A torrent's peers are looked up (and it is announced) this often.
    pub reannounce: Duration,
    /// The soonest a torrent's lookup may follow the previous one when asked early.
    pub min_lookup_interval: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bootstrap: Vec::new(),
            ipv6: false,
            external_ip: None,
            subnet_cap: routing::SUBNET_CAP,
            ip_cap: routing::IP_CAP,
            lookup_subnet_cap: lookup::SUBNET_CAP,
            ip_rate: Rate {
                per_sec: 20.0,
                burst: 50.0,
            },
            global_rate: Rate {
                per_sec: 2000.0,
                burst: 4000.0,
            },
            query_timeout: Duration::from_secs(3),
            reannounce: Duration::from_secs(15 * 60),
            min_lookup_interval: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LookupId(pub u64);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    LookupStarted {
        lookup: LookupId,
        target: NodeId,
        get_peers: bool,
        /// Nodes it starts from.
        seeds: usize,
    },
    /// Peers a `get_peers` lookup found, new to that lookup.
    PeersFound {
        lookup: LookupId,
        info_hash: InfoHash,
        peers: Vec<SocketAddr>,
    },
    LookupDone {
        lookup: LookupId,
        target: NodeId,
        get_peers: bool,
        peers: usize,
        queried: usize,
        responded: usize,
        /// `announce_peer` queries sent after it.
        announced: usize,
        duration: Duration,
        /// The closest nodes that answered (for `find_node` callers).
        closest: Vec<NodeInfo>,
    },
    /// The first bootstrap lookup finished with nodes in the table.
    Bootstrapped { nodes: usize },
    /// Our id changed to match our external address (BEP 42), `ip`.
    IdChanged { id: NodeId, ip: IpAddr },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DhtStats {
    pub id: Option<NodeId>,
    pub nodes: usize,
    pub good_nodes: usize,
    pub replacements: usize,
    pub bootstrapped: bool,
    pub torrents: usize,
    pub lookups_active: usize,
    pub lookups_started: u64,
    pub lookups_done: u64,
    pub peers_found: u64,
    pub stored_peers: usize,
    pub stored_info_hashes: usize,
    pub queries_in: u64,
    pub rate_limited: u64,
    pub malformed: u64,
    pub unsolicited: u64,
    pub timeouts: u64,
    pub packets_out: u64,
    pub dropped: u64,
    pub pending: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("saved DHT state is not valid: {0}")]
    Malformed(&'static str),
}

#[derive(Debug, Clone, Copy)]
enum Purpose {
    Lookup(LookupId),
    Ping,
    Announce,
}

#[derive(Debug)]
struct Pending {
    to: SocketAddr,
    id: Option<NodeId>,
    sent: Instant,
    purpose: Purpose,
}

#[derive(Debug)]
struct Running {
    lookup: Lookup,
    info_hash: Option<InfoHash>,
    announce_port: Option<u16>,
}

#[derive(Debug)]
struct Torrent {
    announce_port: Option<u16>,
    next: Instant,
    last: Option<Instant>,
    running: Option<LookupId>,
    /// After a lookup that found no peer or could announce to nobody (a young network, or
    /// one we have only just joined), the next comes after this wait, doubling up to
    /// `reannounce`.
    retry: Duration,
}

/// The first wait after a lookup that came back empty.
const FIRST_RETRY: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct Node {
    id: NodeId,
    config: Config,
    rng: Rng,
    table: RoutingTable,
    tokens: Tokens,
    store: PeerStore,
    rate: RateLimiter,
    pending: HashMap<[u8; 4], Pending>,
    lookups: HashMap<LookupId, Running>,
    next_lookup: u64,
    torrents: HashMap<InfoHash, Torrent>,
    /// The earliest `next` of a torrent with no lookup running (kept so that
    /// [`Node::next_timeout`] need not scan every torrent).
    torrents_due: Option<Instant>,
    last_tick: Instant,
    out: VecDeque<(SocketAddr, Vec<u8>)>,
    events: VecDeque<Event>,
    /// Nodes from the saved table: seeds for the bootstrap lookup.
    saved: Vec<NodeInfo>,
    bootstrap: Option<LookupId>,
    bootstrapped: bool,
    next_bootstrap: Instant,
    bootstrap_backoff: Duration,
    next_maintenance: Instant,
    refresh: Option<LookupId>,
    /// External address reported by others (BEP 42 `ip`), with the /24s (IPv6 /48s) that
    /// said so.
    ip_votes: Vec<(IpAddr, Vec<[u8; 9]>)>,
    stats: DhtStats,
}

impl Node {
    pub fn new(seed: [u8; 32], config: Config, now: Instant) -> Node {
        let mut rng = Rng::new(seed);
        let id = match config.external_ip {
            Some(ip) => NodeId::for_ip(ip, &mut rng),
            None => NodeId::random(&mut rng),
        };
        let tokens = Tokens::new(&mut rng, now);
        let mut table = RoutingTable::new(id, config.subnet_cap, now);
        table.set_ip_cap(config.ip_cap);
        Node {
            id,
            table,
            rate: RateLimiter::new(config.ip_rate, config.global_rate, now),
            config,
            rng,
            tokens,
            store: PeerStore::default(),
            pending: HashMap::new(),
            lookups: HashMap::new(),
            next_lookup: 0,
            torrents: HashMap::new(),
            torrents_due: None,
            last_tick: now,
            out: VecDeque::new(),
            events: VecDeque::new(),
            saved: Vec::new(),
            bootstrap: None,
            bootstrapped: false,
            next_bootstrap: now,
            bootstrap_backoff: Duration::from_secs(15),
            next_maintenance: now + MAINTENANCE,
            refresh: None,
            ip_votes: Vec::new(),
            stats: DhtStats::default(),
        }
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    pub fn table(&self) -> &RoutingTable {
        &self.table
    }

    pub fn stats(&self, now: Instant) -> DhtStats {
        DhtStats {
            id: Some(self.id),
            nodes: self.table.len(),
            good_nodes: self.table.good_count(now),
            replacements: self.table.replacement_count(),
            bootstrapped: self.bootstrapped,
            torrents: self.torrents.len(),
            lookups_active: self.lookups.len(),
            stored_peers: self.store.len(),
            stored_info_hashes: self.store.info_hashes(),
            pending: self.pending.len(),
            ..self.stats.clone()
        }
    }

    // ----- the caller's side -----

    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.out.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// A one-off `get_peers` lookup; with `announce_port`, we announce ourselves after it.
    pub fn get_peers(
        &mut self,
        info_hash: InfoHash,
        announce_port: Option<u16>,
        now: Instant,
    ) -> LookupId {
        let target = NodeId(info_hash.0);
        self.start_lookup(
            target,
            lookup::Kind::GetPeers,
            Some(info_hash),
            announce_port,
            now,
        )
    }

    /// A one-off `find_node` lookup; the closest nodes come in [`Event::LookupDone`].
    pub fn find_node(&mut self, target: NodeId, now: Instant) -> LookupId {
        self.start_lookup(target, lookup::Kind::FindNode, None, None, now)
    }

    /// Looks up `info_hash` now and every `reannounce`, announcing `announce_port` if given.
    pub fn add_torrent(
        &mut self,
        info_hash: InfoHash,
        announce_port: Option<u16>,
        now: Instant,
    ) -> bool {
        if let Some(t) = self.torrents.get_mut(&info_hash) {
            t.announce_port = announce_port;
            return true;
        }
        if self.torrents.len() >= MAX_TORRENTS {
            return false;
        }
        self.torrents.insert(
            info_hash,
            Torrent {
                announce_port,
                next: now,
                last: None,
                running: None,
                retry: FIRST_RETRY,
            },
        );
        self.due_at(now);
        true
    }

    fn due_at(&mut self, t: Instant) {
        self.torrents_due = Some(self.torrents_due.map_or(t, |d| d.min(t)));
    }

    pub fn remove_torrent(&mut self, info_hash: &InfoHash) {
        self.torrents.remove(info_hash);
    }

    /// Asks for an early lookup of a torrent; false when one ran too recently.
    pub fn want_peers(&mut self, info_hash: &InfoHash, now: Instant) -> bool {
        let min = self.config.min_lookup_interval;
        match self.torrents.get_mut(info_hash) {
            Some(t) if t.running.is_none() => {
                let earliest = t.last.map_or(now, |l| l + min);
                t.next = t.next.min(earliest.max(now));
                let next = t.next;
                self.due_at(next);
                next <= now
            }
            _ => false,
        }
    }

    /// A node we heard of from a peer (the BEP 5 `port` message): ping it.
    pub fn add_node(&mut self, addr: SocketAddr, now: Instant) {
        if self.usable(addr) && !self.table.contains_addr(addr) {
            self.send_ping(None, addr, now);
        }
    }

    // ----- packets in -----

    pub fn handle_packet(&mut self, from: SocketAddr, bytes: &[u8], now: Instant) {
        if from.is_ipv6() != self.config.ipv6 {
            return;
        }
        let msg = match Message::decode(bytes) {
            Ok(m) => m,
            Err(krpc::KrpcError::BadQuery { tid, .. }) => {
                self.stats.malformed += 1;
                if self.rate.allow(from.ip(), now) {
                    self.send_error(from, tid, code::PROTOCOL, "Protocol Error");
                }
                return;
            }
            Err(_) => {
                self.stats.malformed += 1;
                return;
            }
        };
        match msg.kind {
            Kind::Query(q) => {
                self.stats.queries_in += 1;
                if !self.rate.allow(from.ip(), now) {
                    self.stats.rate_limited += 1;
                    return;
                }
                let read_only = msg.read_only;
                let querier = q.id;
                self.answer(from, msg.tid, q, now);
                if !read_only
                    && self.table.get(&querier).is_none()
                    && self.table.would_take(&querier, from, now)
                {
                    self.send_ping(Some(querier), from, now);
                }
            }
            Kind::Response(r) => self.on_response(from, &msg.tid, msg.ip, r, now),
            Kind::Error(_) => self.on_error(from, &msg.tid, now),
        }
    }

    fn answer(&mut self, from: SocketAddr, tid: Vec<u8>, q: Query, now: Instant) {
        let mut r = Response {
            id: Some(self.id),
            ..Response::default()
        };
        match q.method {
            Method::Ping => {}
            Method::FindNode { target, want } => self.fill_nodes(&mut r, &target, want, now),
            Method::GetPeers { info_hash, want } => {
                r.token = Some(self.tokens.issue(from.ip()));
                r.values = self
                    .store
                    .get(&info_hash, self.config.ipv6, now, &mut self.rng);
                // We are a peer of our own torrents: say so, when we know our address (in a
                // small network the nodes we announced to may all have gone).
                if let (Some(ip), Some(port)) = (
                    self.config.external_ip,
                    self.torrents
                        .get(&InfoHash(info_hash.0))
                        .and_then(|t| t.announce_port),
                ) {
                    let me = SocketAddr::new(ip, port);
                    if ip.is_ipv6() == self.config.ipv6 && !r.values.contains(&me) {
                        r.values.insert(0, me);
                    }
                }
                self.fill_nodes(&mut r, &info_hash, want, now);
            }
            Method::AnnouncePeer {
                info_hash,
                port,
                implied_port,
                token,
            } => {
                let port = if implied_port { from.port() } else { port };
                if !self.tokens.check(from.ip(), &token) {
                    return self.send_error(from, tid, code::PROTOCOL, "Bad token");
                }
                if port == 0 {
                    return self.send_error(from, tid, code::PROTOCOL, "Bad port");
                }
                let trusted = q.id.matches_ip(from.ip());
                self.store
                    .announce(info_hash, SocketAddr::new(from.ip(), port), trusted, now);
            }
            Method::Other(_) => {
                return self.send_error(from, tid, code::METHOD_UNKNOWN, "Method Unknown");
            }
        }
        let m = Message {
            tid,
            kind: Kind::Response(r),
            ip: Some(from),
            read_only: false,
        };
        self.send(from, m.encode());
    }

    /// Our closest nodes to `target`, in the family we speak (a node of one family cannot
    /// give the other's: `want` is honoured as far as that goes).
    fn fill_nodes(&self, r: &mut Response, target: &NodeId, _want: Want, now: Instant) {
        let nodes = self.table.closest(target, K, now);
        if self.config.ipv6 {
            r.nodes6 = nodes;
        } else {
            r.nodes = nodes;
        }
    }

    fn on_response(
        &mut self,
        from: SocketAddr,
        tid: &[u8],
        our_ip: Option<SocketAddr>,
        r: Response,
        now: Instant,
    ) {
        let Some(p) = self.take_pending(from, tid) else {
            return;
        };
        let Some(id) = r.id else { return };
        let bep42 = id.matches_ip(from.ip());
        if let Insert::Waiting(Some((stale_id, stale_addr))) =
            self.table.heard_from(id, from, bep42, now)
        {
            self.send_ping(Some(stale_id), stale_addr, now);
        }
        if let Some(ip) = our_ip {
            self.vote_ip(ip.ip(), from.ip(), now);
        }
        if let Purpose::Lookup(lid) = p.purpose {
            let nodes: Vec<NodeInfo> = if self.config.ipv6 {
                &r.nodes6
            } else {
                &r.nodes
            }
            .iter()
            .filter(|n| n.id != self.id && self.usable(n.addr))
            .cloned()
            .collect();
            let values: Vec<SocketAddr> =
                r.values.iter().copied().filter(|v| v.port() != 0).collect();
            if let Some(run) = self.lookups.get_mut(&lid) {
                let fresh = run.lookup.on_response(from, id, &nodes, &values, r.token);
                if let (false, Some(info_hash)) = (fresh.is_empty(), run.info_hash) {
                    self.stats.peers_found += fresh.len() as u64;
                    self.event(Event::PeersFound {
                        lookup: lid,
                        info_hash,
                        peers: fresh,
                    });
                }
                self.drive(lid, now);
            }
        }
    }

    fn on_error(&mut self, from: SocketAddr, tid: &[u8], now: Instant) {
        let Some(p) = self.take_pending(from, tid) else {
            return;
        };
        if let Purpose::Lookup(lid) = p.purpose {
            if let Some(run) = self.lookups.get_mut(&lid) {
                run.lookup.on_failure(from);
            }
            self.drive(lid, now);
        }
    }

    fn take_pending(&mut self, from: SocketAddr, tid: &[u8]) -> Option<Pending> {
        let key: [u8; 4] = tid.try_into().ok()?;
        match self.pending.get(&key) {
            Some(p) if p.to == from => self.pending.remove(&key),
            _ => {
                self.stats.unsolicited += 1;
                None
            }
        }
    }

    /// BEP 42: when enough of the network agrees on our address and our id does not match
    /// it, take an id that does.
    fn vote_ip(&mut self, ip: IpAddr, voter: IpAddr, now: Instant) {
        if is_local(ip) || self.id.bep42_prefix_ok(ip) || ip.is_ipv6() != self.config.ipv6 {
            return;
        }
        let net = routing::subnet(voter);
        let i = match self.ip_votes.iter().position(|(v, _)| *v == ip) {
            Some(i) => i,
            None => {
                if self.ip_votes.len() >= 8 {
                    self.ip_votes.remove(0);
                }
                self.ip_votes.push((ip, Vec::new()));
                self.ip_votes.len() - 1
            }
        };
        let voters = &mut self.ip_votes[i].1;
        if !voters.contains(&net) {
            voters.push(net);
        }
        if voters.len() >= IP_VOTES_NEEDED {
            self.take_id_for(ip, now);
        }
    }

    fn take_id_for(&mut self, ip: IpAddr, now: Instant) {
        self.ip_votes.clear();
        self.id = NodeId::for_ip(ip, &mut self.rng);
        self.table.recentre(self.id, now);
        self.event(Event::IdChanged { id: self.id, ip });
    }

    /// Our external address is known another way (a port mapping): take a BEP 42 id for
    /// it, unless ours already matches.
    pub fn set_external(&mut self, ip: IpAddr, now: Instant) {
        if is_local(ip) || self.id.bep42_prefix_ok(ip) || ip.is_ipv6() != self.config.ipv6 {
            return;
        }
        self.take_id_for(ip, now);
    }

    // ----- time -----

    pub fn tick(&mut self, now: Instant) {
        self.last_tick = now;
        self.tokens.tick(&mut self.rng, now);
        self.expire_pending(now);

        if self.bootstrap.is_none()
            && (!self.bootstrapped || self.table.is_empty())
            && now >= self.next_bootstrap
        {
            self.bootstrapped = false;
            let own = self.id;
            self.bootstrap = Some(self.start_lookup(own, lookup::Kind::FindNode, None, None, now));
        }

        if !self.table.is_empty() && self.torrents_due.is_some_and(|t| t <= now) {
            let due: Vec<InfoHash> = self
                .torrents
                .iter()
                .filter(|(_, t)| t.running.is_none() && t.next <= now)
                .map(|(h, _)| *h)
                .collect();
            for h in due {
                if self.lookups.len() >= MAX_LOOKUPS {
                    break;
                }
                let port = self.torrents.get(&h).and_then(|t| t.announce_port);
                let lid = self.get_peers(h, port, now);
                if let Some(t) = self.torrents.get_mut(&h) {
                    t.running = Some(lid);
                    t.last = Some(now);
                    t.next = now + self.config.reannounce;
                }
            }
            // Torrents left waiting by the lookup bound are tried again in a second.
            self.torrents_due = self
                .torrents
                .values()
                .filter(|t| t.running.is_none())
                .map(|t| t.next.max(now + Duration::from_secs(1)))
                .min();
        }

        if now >= self.next_maintenance {
            self.next_maintenance = now + MAINTENANCE;
            self.store.expire(now);
            for (id, addr) in self
                .table
                .questionable(now)
                .into_iter()
                .take(PINGS_PER_ROUND)
            {
                self.send_ping(Some(id), addr, now);
            }
            if self.refresh.is_none() && self.bootstrapped {
                if let Some(&b) = self.table.stale_buckets(now).first() {
                    self.table.touch_bucket(b, now);
                    let target = self.id.random_in_bucket(b, &mut self.rng);
                    self.refresh = Some(self.find_node(target, now));
                }
            }
        }

        let ids: Vec<LookupId> = self.lookups.keys().copied().collect();
        for lid in ids {
            self.drive(lid, now);
        }
    }

    /// When [`Node::tick`] should next be called; always after the last tick.
    pub fn next_timeout(&self) -> Option<Instant> {
        let last = self.last_tick;
        let timeout = self.config.query_timeout;
        let mut next = self.next_maintenance.min(self.tokens.next_rotation());
        let mut at = |t: Instant| next = next.min(t);
        self.pending.values().for_each(|p| at(p.sent + timeout));
        self.lookups
            .values()
            .filter_map(|r| r.lookup.next_deadline(last))
            .for_each(&mut at);
        if self.bootstrap.is_none() && !self.bootstrapped {
            at(self.next_bootstrap);
        }
        if let (false, Some(t)) = (self.table.is_empty(), self.torrents_due) {
            at(t);
        }
        Some(next)
    }

    fn expire_pending(&mut self, now: Instant) {
        let timeout = self.config.query_timeout;
        let expired: Vec<[u8; 4]> = self
            .pending
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.sent) >= timeout)
            .map(|(k, _)| *k)
            .collect();
        for k in expired {
            let Some(p) = self.pending.remove(&k) else {
                continue;
            };
            self.stats.timeouts += 1;
            if let Some(id) = p.id {
                self.table.failed(&id, now);
            }
            if let Purpose::Lookup(lid) = p.purpose {
                if let Some(run) = self.lookups.get_mut(&lid) {
                    run.lookup.on_failure(p.to);
                }
            }
        }
    }

    // ----- lookups -----

    fn start_lookup(
        &mut self,
        target: NodeId,
        kind: lookup::Kind,
        info_hash: Option<InfoHash>,
        announce_port: Option<u16>,
        now: Instant,
    ) -> LookupId {
        self.next_lookup += 1;
        let lid = LookupId(self.next_lookup);
        self.stats.lookups_started += 1;
        let mut l = Lookup::new(target, kind, self.config.lookup_subnet_cap, now);
        for n in self.table.closest(&target, K * 2, now) {
            l.add(Some(n.id), n.addr);
        }
        if self.table.len() < K {
            let mut saved = std::mem::take(&mut self.saved);
            saved.sort_by_key(|n| n.id.distance(&target));
            for n in &saved {
                l.add(Some(n.id), n.addr);
            }
            self.saved = saved;
            for a in &self.config.bootstrap {
                l.add(None, *a);
            }
        }
        self.event(Event::LookupStarted {
            lookup: lid,
            target,
            get_peers: kind == lookup::Kind::GetPeers,
            seeds: l.candidates(),
        });
        if self.lookups.len() >= MAX_LOOKUPS {
            // Over the bound: the lookup ends at once, having asked nobody.
            self.finish(
                lid,
                Running {
                    lookup: l,
                    info_hash,
                    announce_port,
                },
                now,
            );
            return lid;
        }
        self.lookups.insert(
            lid,
            Running {
                lookup: l,
                info_hash,
                announce_port,
            },
        );
        self.drive(lid, now);
        lid
    }

    /// Sends the queries a lookup is ready for, and finishes it if it is done.
    fn drive(&mut self, lid: LookupId, now: Instant) {
        loop {
            if self.pending.len() >= MAX_PENDING {
                break;
            }
            let Some(run) = self.lookups.get_mut(&lid) else {
                return;
            };
            let Some((id, addr)) = run.lookup.next(now) else {
                break;
            };
            let method = match run.lookup.kind {
                lookup::Kind::FindNode => Method::FindNode {
                    target: run.lookup.target,
                    want: Want::default(),
                },
                lookup::Kind::GetPeers => Method::GetPeers {
                    info_hash: run.lookup.target,
                    want: Want::default(),
                },
            };
            self.send_query(id, addr, method, Purpose::Lookup(lid), now);
        }
        let done = self
            .lookups
            .get(&lid)
            .is_some_and(|r| r.lookup.is_done(now));
        if done {
            if let Some(run) = self.lookups.remove(&lid) {
                self.finish(lid, run, now);
            }
        }
    }

    fn finish(&mut self, lid: LookupId, run: Running, now: Instant) {
        self.stats.lookups_done += 1;
        let mut announced = 0;
        if let (Some(port), Some(info_hash)) = (run.announce_port, run.info_hash) {
            for (id, addr, token) in run.lookup.announce_targets() {
                let m = Method::AnnouncePeer {
                    info_hash: NodeId(info_hash.0),
                    port,
                    implied_port: false,
                    token,
                };
                if self.send_query(Some(id), addr, m, Purpose::Announce, now) {
                    announced += 1;
                }
            }
        }
        if let Some(h) = run.info_hash {
            let empty =
                run.lookup.peers_found() == 0 || (run.announce_port.is_some() && announced == 0);
            let reannounce = self.config.reannounce;
            if let Some(t) = self.torrents.get_mut(&h) {
                if t.running == Some(lid) {
                    t.running = None;
                    if empty {
                        t.next = t.next.min(now + t.retry);
                        t.retry = (t.retry * 2).min(reannounce);
                    } else {
                        t.retry = FIRST_RETRY;
                    }
                    let next = t.next;
                    self.due_at(next);
                }
            }
        }
        if self.refresh == Some(lid) {
            self.refresh = None;
        }
        if self.bootstrap == Some(lid) {
            self.bootstrap = None;
            if self.table.is_empty() {
                self.next_bootstrap = now + self.bootstrap_backoff;
                self.bootstrap_backoff = (self.bootstrap_backoff * 2).min(Duration::from_secs(300));
            } else {
                self.bootstrapped = true;
                self.bootstrap_backoff = Duration::from_secs(15);
                let nodes = self.table.len();
                self.event(Event::Bootstrapped { nodes });
            }
        }
        let l = &run.lookup;
        self.event(Event::LookupDone {
            lookup: lid,
            target: l.target,
            get_peers: l.kind == lookup::Kind::GetPeers,
            peers: l.peers_found(),
            queried: l.queried,
            responded: l.responded,
            announced,
            duration: now.saturating_duration_since(l.started),
            closest: l.closest_responders(),
        });
    }

    // ----- packets out -----

    fn usable(&self, addr: SocketAddr) -> bool {
        let ip = addr.ip();
        addr.port() != 0
            && addr.is_ipv6() == self.config.ipv6
            && !ip.is_unspecified()
            && !ip.is_multicast()
            && !matches!(ip, IpAddr::V4(v4) if v4.is_broadcast())
    }

    fn send_ping(&mut self, id: Option<NodeId>, addr: SocketAddr, now: Instant) {
        let pings = self
            .pending
            .values()
            .filter(|p| matches!(p.purpose, Purpose::Ping))
            .count();
        if pings < MAX_PINGS && self.usable(addr) {
            self.send_query(id, addr, Method::Ping, Purpose::Ping, now);
        }
    }

    fn send_query(
        &mut self,
        id: Option<NodeId>,
        to: SocketAddr,
        method: Method,
        purpose: Purpose,
        now: Instant,
    ) -> bool {
        if self.pending.len() >= MAX_PENDING {
            return false;
        }
        let tid = loop {
            let t = (self.rng.next_u64() as u32).to_be_bytes();
            if !self.pending.contains_key(&t) {
                break t;
            }
        };
        let m = Message {
            tid: tid.to_vec(),
            kind: Kind::Query(Query {
                id: self.id,
                method,
            }),
            ip: None,
            read_only: false,
        };
        self.pending.insert(
            tid,
            Pending {
                to,
                id,
                sent: now,
                purpose,
            },
        );
        self.send(to, m.encode());
        true
    }

    fn send_error(&mut self, to: SocketAddr, tid: Vec<u8>, code: i64, text: &str) {
        let m = Message {
            tid,
            kind: Kind::Error(ErrorReply {
                code,
                message: text.into(),
            }),
            ip: Some(to),
            read_only: false,
        };
        self.send(to, m.encode());
    }

    fn send(&mut self, to: SocketAddr, bytes: Vec<u8>) {
        if self.out.len() >= MAX_OUT {
            self.stats.dropped += 1;
            return;
        }
        self.stats.packets_out += 1;
        self.out.push_back((to, bytes));
    }

    fn event(&mut self, e: Event) {
        if self.events.len() >= MAX_EVENTS {
            self.stats.dropped += 1;
            return;
        }
        self.events.push_back(e);
    }

    // ----- persistence -----

    /// The routing table to keep across runs: `d2:id20:<id>5:nodes<26 × n>e` (or `nodes6`
    /// with 38-byte entries), good nodes first, at most [`MAX_SAVED`].
    pub fn save(&self, now: Instant) -> Vec<u8> {
        let mut nodes: Vec<&routing::Entry> = self.table.iter().collect();
        nodes.sort_by_key(|e| (e.state(now) != routing::State::Good, e.fails));
        let list: Vec<NodeInfo> = nodes
            .into_iter()
            .take(MAX_SAVED)
            .map(|e| e.info())
            .collect();
        let mut w = Writer::new();
        w.open_dict();
        w.kb(b"id", &self.id.0);
        let key: &[u8] = if self.config.ipv6 {
            b"nodes6"
        } else {
            b"nodes"
        };
        w.kb(key, &krpc::compact_node_list(&list));
        w.close();
        w.0
    }

    /// Restores a table saved by [`Node::save`]: our id (unless our external address calls
    /// for another) and the nodes to bootstrap from. Call before the first tick.
    pub fn load(&mut self, bytes: &[u8], now: Instant) -> Result<usize, StateError> {
        let limits = Limits {
            max_depth: 2,
            max_tokens: 16,
            max_len: 64 << 10,
        };
        let root = value::parse(bytes, limits).map_err(|_| StateError::Malformed("not bencode"))?;
        let id: [u8; 20] = root
            .get(b"id")
            .and_then(Value::bytes)
            .and_then(|b| b.try_into().ok())
            .ok_or(StateError::Malformed("id"))?;
        let (key, size): (&[u8], usize) = if self.config.ipv6 {
            (b"nodes6", 38)
        } else {
            (b"nodes", 26)
        };
        let raw = root.get(key).and_then(Value::bytes).unwrap_or(b"");
        if !raw.len().is_multiple_of(size) {
            return Err(StateError::Malformed("nodes"));
        }
        let keep_id = self
            .config
            .external_ip
            .is_none_or(|ip| NodeId(id).matches_ip(ip));
        if keep_id {
            self.id = NodeId(id);
            self.table = RoutingTable::new(self.id, self.config.subnet_cap, now);
            self.table.set_ip_cap(self.config.ip_cap);
        }
        self.saved = raw
            .chunks_exact(size)
            .take(MAX_SAVED)
            .filter_map(|c| {
                Some(NodeInfo {
                    id: NodeId(c[..20].try_into().ok()?),
                    addr: krpc::compact_addr(&c[20..])?,
                })
            })
            .filter(|n| self.usable(n.addr) && n.id != self.id)
            .collect();
        Ok(self.saved.len())
    }
}

#[cfg(test)]
mod tests;
