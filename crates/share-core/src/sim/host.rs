//! One simulated host: what the engine's torrent task does with the picker, the choker and
//! a seed's ledger (`share-engine/src/torrent.rs`, `torrent/exchange.rs`,
//! `torrent/peers.rs`), message by message, with no sockets or clock of its own.
//!
//! Kept as close to the engine as a page allows: the same interest rules, the same request
//! pipeline (two seconds of the measured rate, 32 to 2000 blocks, refilled in quarters),
//! the same rechoke triggers, cancels of endgame copies, fast-extension chokes (what was
//! queued still goes out, what comes after is rejected). Where it does more than the
//! engine does today, the difference is what the engine must do to keep the promises; each
//! such place says "integration" and `seeding`'s module note lists them. Verification is
//! instant.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::hash::BuildHasherDefault;

use crate::bitfield::Bitfield;
use crate::choker::{Choker, PeerView};
use crate::picker::{Arrival, PeerKey, Picker};
use crate::seeding::{Handout, Mode};
use crate::wire::{BlockRef, MAX_BLOCK};

/// A set whose iteration order depends only on what went in: the sim is deterministic.
type Set<T> = HashSet<T, BuildHasherDefault<DefaultHasher>>;

const MIN_DEPTH: usize = 32;
const MAX_DEPTH: usize = 2000;
const DEPTH_WINDOW_SECS: f64 = 2.0;
const REQQ: usize = 500;

/// A peer wire message, as far as the sim needs one (a `Piece` carries no bytes).
#[derive(Debug, Clone)]
pub(super) enum Msg {
    HaveAll,
    HaveNone,
    Have(u32),
    Interested,
    NotInterested,
    Choke,
    Unchoke,
    Request(BlockRef),
    Cancel(BlockRef),
    Reject(BlockRef),
    Piece(BlockRef),
    Suggest(u32),
}

/// Messages sent this tick: (from, to, message), delivered at the next.
pub(super) type Outbox = Vec<(PeerKey, PeerKey, Msg)>;

/// One end of a connection: what the engine's `Peer` holds that matters here.
pub(super) struct Link {
    pub has: Bitfield,
    pub am_choking: bool,
    pub am_interested: bool,
    pub peer_choking: bool,
    pub peer_interested: bool,
    /// Our requests it has not answered.
    pub inflight: Set<BlockRef>,
    /// Its requests we have not answered, oldest first (the writer's queue).
    pub queue: VecDeque<BlockRef>,
    received_total: u64,
    received_this_sec: u64,
    /// Bytes a second it sends us (smoothed as the engine does).
    rate: f64,
    sent_total: u64,
    sent_last: u64,
    rate_to_peer: u64,
    last_block: u64,
    interested_since: u64,
    depth: usize,
}

impl Link {
    fn new(pieces: u32) -> Self {
        Link {
            has: Bitfield::new(pieces),
            am_choking: true,
            am_interested: false,
            peer_choking: true,
            peer_interested: false,
            inflight: Set::default(),
            queue: VecDeque::new(),
            received_total: 0,
            received_this_sec: 0,
            rate: 0.0,
            sent_total: 0,
            sent_last: 0,
            rate_to_peer: 0,
            last_block: 0,
            interested_since: 0,
            depth: MIN_DEPTH,
        }
    }
}

pub(super) struct Host {
    pub key: PeerKey,
    pub picker: Picker,
    pub choker: Choker,
    pub links: BTreeMap<PeerKey, Link>,
    /// Never unchokes anyone: uploads nothing.
    pub free_rider: bool,
    /// The tick its last wanted piece was verified.
    pub done_at: Option<u64>,
    /// Blocks it uploaded.
    pub sent_blocks: u64,
    /// A seed's ledger of what it handed out (None: a plain seed, as before).
    pub handout: Option<Handout>,
    /// Does what the integration note asks of the engine (false: the engine as it is).
    pub integrated: bool,
    rechoke_soon: bool,
    /// Where the next upload turn starts (the peers' writers share the upload bucket).
    next_turn: usize,
    ticks_per_sec: u64,
}

impl Host {
    pub fn new(key: PeerKey, picker: Picker, choker: Choker, ticks_per_sec: u64) -> Self {
        Host {
            key,
            picker,
            choker,
            links: BTreeMap::new(),
            free_rider: false,
            done_at: None,
            sent_blocks: 0,
            handout: None,
            integrated: true,
            rechoke_soon: false,
            next_turn: 0,
            ticks_per_sec,
        }
    }

    fn secs(&self, tick: u64) -> u64 {
        tick / self.ticks_per_sec
    }

    /// A new connection: say what we have (fast extension: have-all or have-none). A
    /// super-seed says it has nothing, then announces what it offers.
    pub fn connect(&mut self, other: PeerKey, out: &mut Outbox) {
        let pieces = self.picker.have().len();
        self.links.insert(other, Link::new(pieces));
        let have = self.picker.have();
        if self
            .handout
            .as_ref()
            .is_some_and(|h| h.mode() == Mode::Super)
        {
            out.push((self.key, other, Msg::HaveNone));
            self.send_offers(other, out);
        } else if have.is_complete() {
            out.push((self.key, other, Msg::HaveAll));
        } else if have.count() == 0 {
            out.push((self.key, other, Msg::HaveNone));
        } else {
            for i in have.ones() {
                out.push((self.key, other, Msg::Have(i)));
            }
        }
    }

    /// `drop_peer`: its requests go back to the picker, its pieces leave the counts, its
    /// slot is freed and (integration) given to a waiting peer at once.
    pub fn disconnect(&mut self, other: PeerKey, tick: u64, out: &mut Outbox) {
        let Some(l) = self.links.remove(&other) else {
            return;
        };
        for b in &l.inflight {
            self.picker.request_dropped(b, other);
        }
        self.picker.peer_lost_all(&l.has);
        self.picker.peer_gone(other);
        if let Some(h) = &mut self.handout {
            h.peer_left(other);
        }
        self.count_seeds();
        self.choker.remove(other);
        if self.integrated {
            self.refill(tick, out);
        }
        let keys: Vec<PeerKey> = self.links.keys().copied().collect();
        for k in keys {
            self.fill(k, out);
        }
    }

    pub fn on_message(&mut self, tick: u64, from: PeerKey, m: Msg, out: &mut Outbox) {
        self.handle(tick, from, m, out);
        // Integration: a seed with a ledger looks at its turns after every message (at a
        // busy seed haves and requests come all the time): a peer whose turn is over hands
        // its slot on.
        if self.handout.is_some() {
            self.turns_over(tick, out);
        }
    }

    fn handle(&mut self, tick: u64, from: PeerKey, m: Msg, out: &mut Outbox) {
        let seeding = self.picker.is_done();
        let Some(l) = self.links.get_mut(&from) else {
            return;
        };
        match m {
            // Fast extension (share to share): what was queued still comes, and what was
            // not is rejected. Integration: suggestions end with the turn.
            Msg::Choke => {
                l.peer_choking = true;
                self.picker.choked_by(from);
            }
            Msg::Unchoke => {
                l.peer_choking = false;
                self.fill(from, out);
            }
            Msg::Interested => {
                l.peer_interested = true;
                if l.am_choking && self.choker.has_free_slot() {
                    self.rechoke_soon = true;
                    if seeding {
                        self.rechoke(tick, out);
                    }
                } else if l.am_choking
                    && seeding
                    && self.choker.seed_newcomer(from, self.secs(tick))
                {
                    self.apply_choke(out);
                }
            }
            Msg::NotInterested => {
                l.peer_interested = false;
                if !l.am_choking && self.choker.optimistic() != Some(from) {
                    l.am_choking = true;
                    out.push((self.key, from, Msg::Choke));
                    // Integration: its slot goes to the best-ranked waiting peer now.
                    if self.integrated {
                        self.refill(tick, out);
                    } else {
                        self.rechoke_soon = true;
                    }
                }
            }
            Msg::Have(i) => {
                // Integration: a seed's ledger witnesses every `Have`.
                if let Some(h) = &mut self.handout {
                    for k in h.peer_has(from, i) {
                        self.send_offers(k, out);
                    }
                    self.send_offers(from, out);
                }
                let Some(l) = self.links.get_mut(&from) else {
                    return;
                };
                if l.has.set(i) {
                    self.picker.peer_has(i);
                    let complete = l.has.is_complete();
                    if !l.am_interested && !self.picker.have().get(i) {
                        self.update_interest(from, tick, out);
                    }
                    if complete {
                        self.count_seeds();
                    }
                    self.fill(from, out);
                }
            }
            Msg::HaveAll => {
                let all = Bitfield::full(l.has.len());
                if let Some(h) = &mut self.handout {
                    h.peer_has_all(from, &all);
                }
                self.picker.peer_lost_all(&l.has);
                self.picker.peer_has_all(&all);
                l.has = all;
                self.count_seeds();
                self.update_interest(from, tick, out);
                self.fill(from, out);
            }
            Msg::HaveNone => {}
            Msg::Request(b) => {
                let refused = self
                    .handout
                    .as_ref()
                    .is_some_and(|h| !h.may_serve(from, b.index));
                if l.am_choking || !self.picker.have().get(b.index) || refused {
                    out.push((self.key, from, Msg::Reject(b)));
                } else if l.queue.len() < REQQ {
                    l.queue.push_back(b);
                    if self
                        .handout
                        .as_mut()
                        .is_some_and(|h| h.requested(from, b.index))
                    {
                        self.send_offers(from, out);
                    }
                }
            }
            // Integration: a suggestion goes to the picker.
            Msg::Suggest(i) => {
                self.picker.suggest(from, i);
                self.fill(from, out);
            }
            Msg::Cancel(b) => l.queue.retain(|q| *q != b),
            Msg::Reject(b) => {
                if l.inflight.remove(&b) {
                    self.picker.request_dropped(&b, from);
                }
            }
            Msg::Piece(b) => self.on_block(tick, from, b, out),
        }
    }

    fn on_block(&mut self, tick: u64, from: PeerKey, b: BlockRef, out: &mut Outbox) {
        let Some(l) = self.links.get_mut(&from) else {
            return;
        };
        l.inflight.remove(&b);
        l.received_total += b.length as u64;
        l.received_this_sec += b.length as u64;
        l.last_block = tick;
        let arrival = self.picker.block_received(&b, from);
        if arrival != Arrival::Unwanted {
            for (&k, other) in self.links.iter_mut() {
                if k != from && other.inflight.remove(&b) {
                    out.push((self.key, k, Msg::Cancel(b)));
                }
            }
            if arrival == Arrival::PieceComplete {
                self.on_verified(tick, b.index, out);
            }
        }
        self.fill(from, out);
    }

    fn on_verified(&mut self, tick: u64, index: u32, out: &mut Outbox) {
        self.picker.piece_verified(index);
        // Integration: a `Have` to every peer, seeds too (a seed's ledger counts them).
        for (&k, l) in &self.links {
            if self.integrated || !l.has.get(index) {
                out.push((self.key, k, Msg::Have(index)));
            }
        }
        // Integration: a peer whose pieces we now all have is of no more interest: say so
        // now, not at the next tick, or the slot it gives us stays taken and idle.
        let holders: Vec<PeerKey> = self
            .links
            .iter()
            .filter(|(_, l)| self.integrated && l.am_interested && l.has.get(index))
            .map(|(&k, _)| k)
            .collect();
        for k in holders {
            self.update_interest(k, tick, out);
        }
        if self.picker.is_done() {
            self.done_at = Some(tick);
            for (&k, l) in self.links.iter_mut() {
                if l.am_interested {
                    l.am_interested = false;
                    out.push((self.key, k, Msg::NotInterested));
                }
            }
        }
    }

    fn count_seeds(&mut self) {
        let seeds = self.links.values().filter(|l| l.has.is_complete()).count();
        self.picker.set_seeds(seeds as u32);
    }

    fn update_interest(&mut self, key: PeerKey, tick: u64, out: &mut Outbox) {
        let Some(l) = self.links.get_mut(&key) else {
            return;
        };
        let wants = self.picker.wants_from(&l.has);
        if wants != l.am_interested {
            l.am_interested = wants;
            if wants {
                l.interested_since = tick;
            }
            let m = if wants {
                Msg::Interested
            } else {
                Msg::NotInterested
            };
            out.push((self.key, key, m));
        }
    }

    /// Requests up to the pipeline depth, in batches of a quarter of it.
    fn fill(&mut self, key: PeerKey, out: &mut Outbox) {
        if self.picker.is_done() {
            return;
        }
        let Some(l) = self.links.get_mut(&key) else {
            return;
        };
        if !l.am_interested || l.peer_choking {
            return;
        }
        let depth = l.depth.min(REQQ);
        let room = depth.saturating_sub(l.inflight.len());
        if room == 0 || (!l.inflight.is_empty() && room < (depth / 4).max(1)) {
            return;
        }
        let idle = l.inflight.is_empty();
        let inflight = &l.inflight;
        let blocks = self
            .picker
            .pick(key, &l.has, room, idle, |b| inflight.contains(b));
        for b in blocks {
            l.inflight.insert(b);
            out.push((self.key, key, Msg::Request(b)));
        }
    }

    /// The engine's rechoke: a forced round if one was asked for.
    fn rechoke(&mut self, tick: u64, out: &mut Outbox) {
        let force = std::mem::take(&mut self.rechoke_soon);
        self.run_choker(tick, force, out);
    }

    /// Integration: the choker between rounds, at once: a freed slot goes to the
    /// best-ranked waiting peer (a holder that lost interest or left, a seed's turn over).
    fn refill(&mut self, tick: u64, out: &mut Outbox) {
        self.run_choker(tick, false, out);
    }

    fn run_choker(&mut self, tick: u64, force: bool, out: &mut Outbox) {
        if self.free_rider {
            return;
        }
        let now = tick;
        let tps = self.ticks_per_sec;
        let contested = self.contested();
        let handout = &self.handout;
        let views: Vec<PeerView> = self
            .links
            .iter()
            .map(|(&key, l)| PeerView {
                key,
                // Integration: a seed's peer whose turn is over waits for the next one.
                interested: l.peer_interested
                    && handout
                        .as_ref()
                        .is_none_or(|h| h.wants_slot(key, contested, l.queue.len())),
                download_rate: l.rate,
                upload_rate: l.rate_to_peer as f64,
                received_total: l.received_total,
                silent_for: l
                    .am_interested
                    .then(|| (now - l.last_block.max(l.interested_since)) / tps),
            })
            .collect();
        let seeding = self.picker.is_done();
        let secs = self.secs(tick);
        // Integration: the choker is told what each peer was sent.
        if self.integrated {
            for (&k, l) in &self.links {
                self.choker.sent_to(k, l.sent_total);
            }
        }
        let changed = match &self.handout {
            Some(h) => self
                .choker
                .tick_ranked(secs, &views, seeding, force, |k| h.rank(k)),
            None => self.choker.tick(secs, &views, seeding, force),
        };
        if changed {
            self.apply_choke(out);
        }
    }

    /// Sends chokes and unchokes so that the peers' states match the choker's set. A
    /// seed's offers go before an unchoke, so that the first requests take them.
    fn apply_choke(&mut self, out: &mut Outbox) {
        let set = self.choker.unchoked();
        let keys: Vec<PeerKey> = self.links.keys().copied().collect();
        for k in keys {
            let l = self.links.get_mut(&k).expect("listed");
            let unchoke = set.contains(&k);
            if unchoke != l.am_choking {
                continue;
            }
            l.am_choking = !unchoke;
            if unchoke {
                self.send_offers(k, out);
                out.push((self.key, k, Msg::Unchoke));
            } else {
                if let Some(h) = &mut self.handout {
                    h.choked(k);
                }
                out.push((self.key, k, Msg::Choke));
            }
        }
    }

    /// Integration: whether other peers want a seed's slot (choked peers that lack pieces).
    fn contested(&self) -> bool {
        self.links
            .values()
            .any(|l| l.am_choking && !l.has.is_complete())
    }

    /// A seed with a ledger: when an unchoked peer's turn is over, its slot is handed on.
    fn turns_over(&mut self, tick: u64, out: &mut Outbox) {
        let contested = self.contested();
        let Some(h) = &self.handout else {
            return;
        };
        let over = self
            .links
            .iter()
            .any(|(&k, l)| !l.am_choking && !h.wants_slot(k, contested, l.queue.len()));
        if over {
            self.refill(tick, out);
        }
    }

    /// A seed with a ledger offers pieces: suggested to an unchoked peer, or announced by a
    /// super-seed to any peer.
    fn send_offers(&mut self, key: PeerKey, out: &mut Outbox) {
        let contested = self.contested();
        let Some(h) = &mut self.handout else {
            return;
        };
        let Some(l) = self.links.get(&key) else {
            return;
        };
        let suggest = match h.mode() {
            Mode::Suggest if l.am_choking => return,
            Mode::Suggest => true,
            Mode::Super => false,
        };
        for i in h.offers(key, contested) {
            out.push((
                self.key,
                key,
                if suggest {
                    Msg::Suggest(i)
                } else {
                    Msg::Have(i)
                },
            ));
        }
    }

    /// The engine's once-a-second tick: rates, pipeline depths, interest, rechoke, requests.
    pub fn on_second(&mut self, tick: u64, out: &mut Outbox) {
        for l in self.links.values_mut() {
            let sent = l.sent_total.saturating_sub(l.sent_last) as f64;
            l.rate_to_peer = (l.rate_to_peer as f64 * 0.6 + sent * 0.4) as u64;
            l.sent_last = l.sent_total;
            l.rate = 0.6 * l.rate + 0.4 * l.received_this_sec as f64;
            l.received_this_sec = 0;
            l.depth = ((l.rate * DEPTH_WINDOW_SECS / MAX_BLOCK as f64) as usize)
                .clamp(MIN_DEPTH, MAX_DEPTH);
        }
        self.count_seeds();
        let keys: Vec<PeerKey> = self.links.keys().copied().collect();
        for &k in &keys {
            self.update_interest(k, tick, out);
        }
        self.rechoke(tick, out);
        for &k in &keys {
            self.fill(k, out);
        }
        for k in keys {
            self.send_offers(k, out);
        }
    }

    /// Sends up to `cap` blocks this tick, one per peer in turn (the peers' writers share
    /// one upload bucket), each peer's requests oldest first.
    pub fn upload(&mut self, cap: u32, out: &mut Outbox) {
        let keys: Vec<PeerKey> = self
            .links
            .iter()
            .filter(|(_, l)| !l.queue.is_empty())
            .map(|(&k, _)| k)
            .collect();
        if keys.is_empty() {
            return;
        }
        let (mut sent, mut idle_turns, mut turn) = (0, 0, self.next_turn);
        while sent < cap && idle_turns < keys.len() {
            let k = keys[turn % keys.len()];
            turn += 1;
            let l = self.links.get_mut(&k).expect("listed");
            match l.queue.pop_front() {
                Some(b) => {
                    l.sent_total += b.length as u64;
                    out.push((self.key, k, Msg::Piece(b)));
                    sent += 1;
                    idle_turns = 0;
                }
                None => idle_turns += 1,
            }
        }
        self.sent_blocks += sent as u64;
        self.next_turn = turn;
    }

    /// `key:have/unchoked by/unchokes/interested in us/queued`, for traces.
    pub fn summary(&self) -> String {
        let by = self.links.values().filter(|l| !l.peer_choking).count();
        let to = self.links.values().filter(|l| !l.am_choking).count();
        let int = self.links.values().filter(|l| l.peer_interested).count();
        let q: usize = self.links.values().map(|l| l.queue.len()).sum();
        let have = self.picker.have().count();
        format!("{}:{have}/{by}/{to}/{int}/{q}", self.key)
    }
}
