//! The torrent task's side of the piece exchange: what peers tell us, what we ask of them,
//! blocks that arrive, requests we serve, and pieces that pass or fail their hash.

use std::sync::atomic::Ordering;

use share_core::bitfield::Bitfield;
use share_core::peer::{Answer, Offence};
use share_core::picker::{Arrival, PeerKey};
use share_core::wire::{BlockRef, Message, MAX_BLOCK};
use tokio::time::Instant;

use super::transfer::Torrent;
use crate::assembly::{Finished, Placed};
use crate::disk::Job;
use crate::memory::PieceBuf;
use crate::peer::MAX_QUEUED_UPLOADS;
use crate::uploads::Serve;
use crate::Notice;

impl Torrent {
    pub(super) async fn on_message(&mut self, key: PeerKey, m: Message) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        let count = self.info.piece_count();
        match m {
            Message::Choke => {
                // Without the fast extension our requests are void (blocks already on the
                // way may still come: they are not junk).
                for b in p.state.choked() {
                    self.picker.request_dropped(&b, key);
                }
                // What it suggested is stale: a seed gives its turns to others meanwhile.
                self.picker.choked_by(key);
            }
            Message::Unchoke => {
                p.state.peer_choking = false;
                self.fill(key);
            }
            Message::Interested => {
                p.state.peer_interested = true;
                // A free slot goes to the best-ranked peer at the next tick (not simply to
                // whoever asked first, which would let a free-rider in); otherwise the next
                // round decides. A seed has nothing to trade for, so it fills a free slot at
                // once: a new leecher's first piece does not wait for the tick.
                if p.state.am_choking && self.choker.has_free_slot() {
                    self.rechoke_soon = true;
                    if self.picker.is_done() {
                        self.rechoke(tokio::time::Instant::now());
                    }
                } else if p.state.am_choking && self.picker.is_done() {
                    // Every slot taken: a peer never served takes the optimistic one now.
                    let secs = self.started.elapsed().as_secs();
                    if self.choker.seed_newcomer(key, secs) {
                        self.apply_choke();
                    }
                }
            }
            Message::NotInterested => {
                p.state.peer_interested = false;
                // A regular slot goes to someone else at the next tick. The optimistic one
                // stays with its holder until its turn is over: handing it on whenever the
                // holder lost interest would favour the peers that never do, free-riders.
                // Its slot goes to the best-ranked waiting peer now: a slot left empty
                // until the tick is upload lost.
                if !p.state.am_choking && self.choker.optimistic() != Some(key) {
                    if let Some(m) = p.state.set_choking(true) {
                        p.send(m);
                    }
                    if let Some(h) = &mut self.handout {
                        h.choked(key);
                    }
                    self.refill(Instant::now());
                }
            }
            Message::Have(i) => {
                // A seed's ledger witnesses every `Have` (who passes pieces on).
                if i < count && self.handout.is_some() {
                    self.handout_have(key, i);
                }
                let Some(p) = self.peers.get_mut(&key) else {
                    return;
                };
                if i < count && p.state.has.set(i) {
                    self.picker.peer_has(i);
                    // Interest can only start here, and only for a piece we lack: no need to
                    // look at the whole bitfield again (a flood of haves stays cheap).
                    let complete = p.state.has.is_complete();
                    if !p.state.am_interested && !self.picker.have().get(i) {
                        self.update_interest(key);
                    }
                    if complete {
                        self.count_seeds();
                    }
                    self.fill(key);
                }
            }
            // A bitfield (or have-all / have-none) belongs at the start; a peer that keeps
            // sending them is closed (`PeerState::piece_set`).
            Message::Bitfield(bytes) => match p.state.piece_set() {
                Err(offence) => self.punish(key, offence),
                Ok(()) => match Bitfield::from_wire(&bytes, count) {
                    Some(b) => self.set_peer_pieces(key, b),
                    None => self.punish(key, Offence::BadBitfield),
                },
            },
            Message::HaveAll => match p.state.piece_set() {
                Err(offence) => self.punish(key, offence),
                Ok(()) => self.set_peer_pieces(key, Bitfield::full(count)),
            },
            Message::HaveNone => {
                if let Err(offence) = p.state.piece_set() {
                    self.punish(key, offence);
                }
            }
            Message::AllowedFast(i) => {
                if p.state.allow_fast(i) {
                    self.fill(key);
                }
            }
            Message::Reject(b) => {
                if p.state.rejected(&b) {
                    self.picker.request_dropped(&b, key);
                }
            }
            Message::Request(b) => self.on_request(key, b).await,
            Message::Piece { index, begin, data } => self.on_block(key, index, begin, data).await,
            Message::Extended { id, payload } => {
                match p.state.extended(Instant::now().into_std()) {
                    Ok(true) => self.on_extended(key, id, &payload),
                    Ok(false) => {}
                    Err(offence) => self.punish(key, offence),
                }
            }
            Message::Port(port) => {
                let addr = p.addr;
                self.base.dht_node(addr, port);
            }
            // BEP 6: a seed handing out pieces nobody has yet tells us which to take.
            Message::Suggest(i) => {
                if i < count && !self.picker.have().get(i) {
                    self.picker.suggest(key, i);
                    self.fill(key);
                }
            }
            Message::Cancel(_) | Message::KeepAlive => {}
            Message::HashRequest(r) => self.on_hash_request(key, r),
            Message::Hashes { range, hashes } => self.on_hashes(key, range, hashes),
            Message::HashReject(r) => self.on_hash_reject(key, r),
        }
    }

    pub(super) fn set_peer_pieces(&mut self, key: PeerKey, b: Bitfield) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        self.picker.peer_lost_all(&p.state.has);
        self.picker.peer_has_all(&b);
        if let Some(h) = &mut self.handout {
            h.peer_has_all(key, &b);
        }
        p.state.has = b;
        self.count_seeds();
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        if p.state.has.is_complete() {
            self.base.book.mark_seed(&p.addr);
            if let Some(l) = p.listen_addr {
                self.base.book.mark_seed(&l);
            }
        }
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        if p.state.has.is_complete() && self.picker.is_complete() {
            // Two seeds have nothing to say to each other.
            p.token.cancel();
            return;
        }
        self.update_interest(key);
        self.fill(key);
    }

    pub(super) fn update_interest(&mut self, key: PeerKey) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        let wants = !self.base.config.seed_only && self.picker.wants_from(&p.state.has);
        if let Some(m) = p.state.set_interested(wants, Instant::now().into_std()) {
            p.send(m);
        }
    }

    /// Sends requests to `key` up to its pipeline depth (in batches, not after every block:
    /// `PeerState::request_room`).
    pub(super) fn fill(&mut self, key: PeerKey) {
        if self.picker.is_done() {
            return;
        }
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        let room = p.state.request_room();
        if room == 0 {
            return;
        }
        let state = &p.state;
        let askable = state.askable();
        // A v2 torrent's pieces that cannot be verified yet are not asked for.
        let masked;
        let has = match &self.v2.blocked {
            Some(blocked) => {
                masked = askable.without(blocked);
                &masked
            }
            None => &*askable,
        };
        let blocks = self
            .picker
            .pick(key, has, room, state.is_idle(), |b| state.is_requested(b));
        for b in blocks {
            p.state.requested(b);
            p.send(Message::Request(b));
        }
    }

    pub(super) async fn on_request(&mut self, key: PeerKey, b: BlockRef) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        let size = self.info.piece_size(b.index);
        let valid = b.length > 0
            && b.length <= MAX_BLOCK
            && b.index < self.info.piece_count()
            && b.begin.checked_add(b.length).is_some_and(|end| end <= size);
        let over_queue = p.queued.load(Ordering::Relaxed) >= MAX_QUEUED_UPLOADS;
        // A super-seed serves only the pieces it announced to this peer.
        let shown = self
            .handout
            .as_ref()
            .is_none_or(|h| h.may_serve(key, b.index));
        let can_serve = self.picker.have().get(b.index) && !over_queue && shown;
        match p.state.on_request(valid, can_serve) {
            Ok(Answer::Serve) => {}
            Ok(Answer::Refuse { reject }) => {
                if reject {
                    p.send(Message::Reject(b));
                }
                return;
            }
            Err(offence) => {
                self.punish(key, offence);
                return;
            }
        }
        p.queued.fetch_add(1, Ordering::Relaxed);
        // The ledger: the piece is being given to it; a new piece may bring new offers.
        if valid
            && self
                .handout
                .as_mut()
                .is_some_and(|h| h.requested(key, b.index))
        {
            let contested = self.contested();
            self.send_offers(key, contested);
        }
        let Some(p) = self.peers.get(&key) else {
            return;
        };
        match self.uploads.request(key, b) {
            Serve::Now(data) => p.send(Message::Piece {
                index: b.index,
                begin: b.begin,
                data,
            }),
            Serve::Read(unit) => {
                let size = self.info.piece_size(unit.0) as u64;
                let step = self.uploads.unit() as u64;
                let start = unit.1 as u64 * step;
                let len = step.min(size.saturating_sub(start)) as usize;
                let job = Job::Read {
                    unit,
                    offset: unit.0 as u64 * self.info.piece_length as u64 + start,
                    buf: self.uploads.read_buffer(len),
                };
                let _ = self.disk.send(job).await;
            }
            Serve::Wait => {}
        }
    }

    /// A unit read for uploads: answer the requests that waited for it.
    pub(super) fn on_unit_read(&mut self, unit: crate::uploads::Unit, data: Option<PieceBuf>) {
        for (key, b, block) in self.uploads.unit_read(unit, data) {
            let Some(p) = self.peers.get(&key) else {
                continue;
            };
            match block {
                Some(data) if !p.state.am_choking => p.send(Message::Piece {
                    index: b.index,
                    begin: b.begin,
                    data,
                }),
                _ => {
                    p.queued.fetch_sub(1, Ordering::Relaxed);
                    if p.state.fast {
                        p.send(Message::Reject(b));
                    }
                }
            }
        }
    }

    pub(super) async fn on_block(
        &mut self,
        key: PeerKey,
        index: u32,
        begin: u32,
        data: bytes::Bytes,
    ) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        let b = BlockRef {
            index,
            begin,
            length: data.len() as u32,
        };
        // Only what we asked of this peer counts (or asked and withdrew: a cancel or a choke
        // may cross a block on the way). Anything else is dropped, uncounted, and a peer
        // that keeps sending it is banned.
        match p.state.block_arrived(&b, Instant::now().into_std()) {
            Ok(true) => {}
            Ok(false) => return,
            Err(offence) => {
                self.punish(key, offence);
                return;
            }
        }
        self.base
            .stats
            .downloaded
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        self.accept_block(key, b, data).await;
        self.fill(key);
    }

    /// Block `b` from `key` (a peer or a web seed), asked of it and counted: into the
    /// picker, the piece being assembled and the disk; a complete piece is verified.
    pub(super) async fn accept_block(&mut self, key: PeerKey, b: BlockRef, data: bytes::Bytes) {
        let (index, begin) = (b.index, b.begin);
        let arrival = self.picker.block_received(&b, key);
        if arrival != Arrival::Unwanted {
            // Endgame: cancel the copies requested from others.
            for (k, other) in self.peers.iter_mut() {
                if *k != key && other.state.cancel(b) {
                    other.send(Message::Cancel(b));
                }
            }
            let size = self.info.piece_size(index) as usize;
            let piece_offset = index as u64 * self.info.piece_length as u64;
            let v2_bytes = self.v2_bytes(index);
            if let Placed::WriteThrough(data) =
                self.assembly
                    .add(index, size, begin as usize, data, v2_bytes)
            {
                let offset = piece_offset + begin as u64;
                let _ = self.disk.send(Job::Block { offset, data }).await;
            }
            if arrival == Arrival::PieceComplete {
                let expect = self.expected(index);
                let expected = expect.v1.unwrap_or_default();
                let v2_only = self.v2_only();
                let job = match self.assembly.finish(index, &expect) {
                    Some(Finished::Buffered { buf, ok: true, .. }) => Some(Job::Piece {
                        index,
                        offset: piece_offset,
                        data: buf,
                    }),
                    Some(Finished::Buffered {
                        buf,
                        ok: false,
                        leaves: Some(leaves),
                    }) if v2_only => {
                        self.suspect(index, leaves, Some(buf));
                        None
                    }
                    Some(Finished::Buffered { buf, ok: false, .. }) => {
                        self.assembly.recycle(buf);
                        self.on_failed(index);
                        None
                    }
                    Some(Finished::Streamed {
                        ok: false,
                        leaves: Some(leaves),
                    }) if v2_only => {
                        self.suspect(index, leaves, None);
                        None
                    }
                    Some(Finished::Streamed { ok: true, .. }) => Some(Job::Stored { index }),
                    Some(Finished::Streamed { ok: false, .. }) => {
                        self.on_failed(index);
                        None
                    }
                    Some(Finished::ReadBack {
                        hasher,
                        from,
                        v2_ok,
                    }) => Some(Job::HashRest {
                        index,
                        offset: piece_offset,
                        len: size,
                        from,
                        hasher,
                        expected,
                        v2_ok,
                    }),
                    None => None,
                };
                if let Some(job) = job {
                    let _ = self.disk.send(job).await;
                }
            }
        }
    }

    /// Piece `index` matched its hash and is on disk.
    pub(super) fn on_written(&mut self, index: u32) {
        {
            self.picker.piece_verified(index);
            if !self.waiters.is_empty() {
                self.update_deadlines();
            }
            self.base
                .stats
                .verified
                .fetch_add(self.info.piece_size(index) as u64, Ordering::Relaxed);
            // Every peer hears of it, those that have it too: a seed's ledger counts them
            // (who passes pieces on), and a `Have` is 9 bytes.
            for p in self.peers.values() {
                p.send(Message::Have(index));
            }
            // A peer whose pieces we now all have is of no more interest: say so now, not
            // at the next tick, or the slot it gives us stays taken and idle. (A seed is
            // always of interest until we are done.)
            let holders: Vec<PeerKey> = self
                .peers
                .iter()
                .filter(|(_, p)| {
                    p.state.am_interested && p.state.has.get(index) && !p.state.has.is_complete()
                })
                .map(|(&k, _)| k)
                .collect();
            for k in holders {
                self.update_interest(k);
            }
            if self.picker.is_done() {
                self.assembly.release();
                self.start_handout();
            }
            if self.picker.is_done() && self.picker.is_wanted(index) {
                self.base.notice(Notice::Complete);
                self.base.set_complete(true);
                for p in self.peers.values_mut() {
                    if let Some(m) = p.state.set_interested(false, Instant::now().into_std()) {
                        p.send(m);
                    }
                    if p.state.has.is_complete() {
                        p.token.cancel();
                    }
                }
            }
        }
    }

    /// Piece `index` failed its hash check: refetch it, and strike or ban who sent it.
    pub(super) fn on_failed(&mut self, index: u32) {
        let senders = self.picker.piece_failed(index);
        let sole = senders.len() == 1;
        // A peer banned already (a liar caught another way) explains the bad piece: the
        // others who sent blocks of it get no strike.
        if senders.iter().any(|k| self.banned_keys.contains(k)) {
            let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
            for k in keys {
                self.fill(k);
            }
            return;
        }
        for key in senders {
            if super::web::is_web(key) {
                self.web_bad_piece(key, index, sole);
                continue;
            }
            let Some(p) = self.peers.get_mut(&key) else {
                continue;
            };
            if let Err(offence) = p.state.failed_piece(index, sole) {
                self.punish(key, offence);
            }
        }
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for k in keys {
            self.fill(k);
        }
        self.fill_web();
    }
}
