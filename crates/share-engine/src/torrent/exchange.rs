//! The torrent task's side of the piece exchange: what peers tell us, what we ask of them,
//! blocks that arrive, requests we serve, and pieces that pass or fail their hash.

use std::sync::atomic::Ordering;

use share_core::bitfield::Bitfield;
use share_core::picker::Arrival;
use share_core::wire::{BlockRef, Message, MAX_BLOCK};
use tokio::time::Instant;

use super::peers::{
    MAX_BAD_REQUESTS, MAX_EXCESS_REQUESTS, MAX_IGNORED_EXTENDED, MAX_PIECE_SETS, MAX_STRIKES,
    MAX_UNREQUESTED,
};
use super::transfer::Torrent;
use super::PeerKey;
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
                p.peer_choking = true;
                if !p.fast {
                    // Blocks already on the way may still come: they are not junk.
                    for b in p.inflight.drain() {
                        self.picker.request_dropped(&b, key);
                        p.withdrawn.insert(b);
                    }
                }
            }
            Message::Unchoke => {
                p.peer_choking = false;
                self.fill(key);
            }
            Message::Interested => {
                p.peer_interested = true;
                // A free slot goes to the best-ranked peer at the next tick (not simply to
                // whoever asked first, which would let a free-rider in); otherwise the next
                // round decides. A seed has nothing to trade for, so it fills a free slot at
                // once: a new leecher's first piece does not wait for the tick.
                if p.am_choking && self.choker.has_free_slot() {
                    self.rechoke_soon = true;
                    if self.picker.is_done() {
                        self.rechoke(tokio::time::Instant::now());
                    }
                } else if p.am_choking && self.picker.is_done() {
                    // Every slot taken: a peer never served takes the optimistic one now.
                    let secs = self.started.elapsed().as_secs();
                    if self.choker.seed_newcomer(key, secs) {
                        self.apply_choke();
                    }
                }
            }
            Message::NotInterested => {
                p.peer_interested = false;
                // A regular slot goes to someone else at the next tick. The optimistic one
                // stays with its holder until its turn is over: handing it on whenever the
                // holder lost interest would favour the peers that never do, free-riders.
                if !p.am_choking && self.choker.optimistic() != Some(key) {
                    p.am_choking = true;
                    p.send(Message::Choke);
                    self.rechoke_soon = true;
                }
            }
            Message::Have(i) => {
                if i < count && p.has.set(i) {
                    self.picker.peer_has(i);
                    // Interest can only start here, and only for a piece we lack: no need to
                    // look at the whole bitfield again (a flood of haves stays cheap).
                    let complete = p.has.is_complete();
                    if !p.am_interested && !self.picker.have().get(i) {
                        self.update_interest(key);
                    }
                    if complete {
                        self.count_seeds();
                    }
                    self.fill(key);
                }
            }
            // A bitfield (or have-all / have-none) belongs at the start; some clients send two
            // (aria2: have-none, then a bitfield), but each costs a pass over every piece, so
            // a peer that keeps sending them is closed.
            Message::Bitfield(_) | Message::HaveAll | Message::HaveNone
                if p.piece_sets >= MAX_PIECE_SETS =>
            {
                self.close(key, "sent its pieces over and over");
            }
            Message::Bitfield(bytes) => match Bitfield::from_wire(&bytes, count) {
                Some(b) => {
                    p.piece_sets += 1;
                    self.set_peer_pieces(key, b)
                }
                None => self.close(key, "sent a bitfield of the wrong size"),
            },
            Message::HaveAll => {
                p.piece_sets += 1;
                self.set_peer_pieces(key, Bitfield::full(count))
            }
            Message::HaveNone => p.piece_sets += 1,
            Message::AllowedFast(i) => {
                if i < count && p.allowed_fast.len() < 64 {
                    p.allowed_fast.insert(i);
                    self.fill(key);
                }
            }
            Message::Reject(b) => {
                if p.inflight.remove(&b) {
                    self.picker.request_dropped(&b, key);
                }
            }
            Message::Request(b) => self.on_request(key, b).await,
            Message::Piece { index, begin, data } => self.on_block(key, index, begin, data).await,
            Message::Extended { id, payload } => {
                let now = Instant::now();
                if !p.ext_budget.take(now.into_std()) {
                    p.ext_ignored += 1;
                    if p.ext_ignored > MAX_IGNORED_EXTENDED {
                        self.ban(key, "flooded extension messages".into());
                    }
                    return;
                }
                self.on_extended(key, id, &payload)
            }
            Message::Port(port) => {
                let addr = p.addr;
                self.base.dht_node(addr, port);
            }
            Message::Cancel(_) | Message::Suggest(_) | Message::KeepAlive => {}
        }
    }

    pub(super) fn set_peer_pieces(&mut self, key: PeerKey, b: Bitfield) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        self.picker.peer_lost_all(&p.has);
        self.picker.peer_has_all(&b);
        p.has = b;
        self.count_seeds();
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        if p.has.is_complete() {
            self.base.book.mark_seed(&p.addr);
            if let Some(l) = p.listen_addr {
                self.base.book.mark_seed(&l);
            }
        }
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        if p.has.is_complete() && self.picker.is_complete() {
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
        let wants = !self.base.config.seed_only && self.picker.wants_from(&p.has);
        if wants != p.am_interested {
            p.am_interested = wants;
            if wants {
                p.interested_since = Instant::now();
            }
            p.send(if wants {
                Message::Interested
            } else {
                Message::NotInterested
            });
        }
    }

    /// Sends requests to `key` up to its pipeline depth.
    pub(super) fn fill(&mut self, key: PeerKey) {
        if self.picker.is_done() {
            return;
        }
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        if !p.am_interested || (p.peer_choking && p.allowed_fast.is_empty()) {
            return;
        }
        let depth = p.depth.min(p.reqq);
        let room = depth.saturating_sub(p.inflight.len());
        // Refill in batches, not after every block.
        if room == 0 || (!p.inflight.is_empty() && room < (depth / 4).max(1)) {
            return;
        }
        let restricted;
        let has = if p.peer_choking {
            restricted = {
                let mut b = Bitfield::new(p.has.len());
                for &i in &p.allowed_fast {
                    if p.has.get(i) {
                        b.set(i);
                    }
                }
                b
            };
            &restricted
        } else {
            &p.has
        };
        let inflight = &p.inflight;
        let idle = inflight.is_empty();
        let blocks = self
            .picker
            .pick(key, has, room, idle, |b| inflight.contains(b));
        for b in blocks {
            p.inflight.insert(b);
            p.send(Message::Request(b));
        }
    }

    pub(super) async fn on_request(&mut self, key: PeerKey, b: BlockRef) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        let size = self.info.piece_size(b.index);
        let in_range = b.length > 0
            && b.length <= MAX_BLOCK
            && b.index < self.info.piece_count()
            && b.begin.checked_add(b.length).is_some_and(|end| end <= size);
        let over_queue = p.queued.load(Ordering::Relaxed) >= MAX_QUEUED_UPLOADS;
        let refuse = if !in_range {
            p.bad_requests += 1;
            true
        } else {
            // Choked, for a piece we lack, or beyond the queue we advertise: a few cross a
            // choke on the way, thousands are a flood.
            let refuse = p.am_choking || !self.picker.have().get(b.index) || over_queue;
            if refuse {
                p.excess_requests += 1;
            }
            refuse
        };
        if refuse {
            if p.bad_requests > MAX_BAD_REQUESTS {
                self.close(key, "sent too many invalid requests");
            } else if p.excess_requests > MAX_EXCESS_REQUESTS {
                self.ban(key, "flooded requests that we do not serve".into());
            } else if p.fast && p.excess_requests <= MAX_EXCESS_REQUESTS / 8 {
                // Rejects are owed for a few; a flood gets none (they would only fill the
                // queue to a peer that does not read).
                p.send(Message::Reject(b));
            }
            return;
        }
        p.queued.fetch_add(1, Ordering::Relaxed);
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
                Some(data) if !p.am_choking => p.send(Message::Piece {
                    index: b.index,
                    begin: b.begin,
                    data,
                }),
                _ => {
                    p.queued.fetch_sub(1, Ordering::Relaxed);
                    if p.fast {
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
        if !p.inflight.remove(&b) && !p.withdrawn.remove(&b) {
            p.unrequested += 1;
            let n = p.unrequested;
            if n > MAX_UNREQUESTED {
                self.ban(key, format!("sent {n} blocks that were never requested"));
            }
            return;
        }
        p.received_this_tick += data.len() as u64;
        p.received_total += data.len() as u64;
        p.last_block = Instant::now();
        self.base
            .stats
            .downloaded
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        let arrival = self.picker.block_received(&b, key);
        if arrival != Arrival::Unwanted {
            // Endgame: cancel the copies requested from others.
            for (k, other) in self.peers.iter_mut() {
                if *k != key && other.inflight.remove(&b) {
                    other.withdraw(b);
                    other.send(Message::Cancel(b));
                }
            }
            let size = self.info.piece_size(index) as usize;
            let piece_offset = index as u64 * self.info.piece_length as u64;
            if let Placed::WriteThrough(data) = self.assembly.add(index, size, begin as usize, data)
            {
                let offset = piece_offset + begin as u64;
                let _ = self.disk.send(Job::Block { offset, data }).await;
            }
            if arrival == Arrival::PieceComplete {
                let expected = self.info.piece_hash(index).unwrap_or_default();
                let job = match self.assembly.finish(index, &expected) {
                    Some(Finished::Buffered { buf, ok: true }) => Some(Job::Piece {
                        index,
                        offset: piece_offset,
                        data: buf,
                    }),
                    Some(Finished::Buffered { buf, ok: false }) => {
                        self.assembly.recycle(buf);
                        self.on_failed(index);
                        None
                    }
                    Some(Finished::Streamed { ok: true }) => Some(Job::Stored { index }),
                    Some(Finished::Streamed { ok: false }) => {
                        self.on_failed(index);
                        None
                    }
                    Some(Finished::ReadBack { hasher, from }) => Some(Job::HashRest {
                        index,
                        offset: piece_offset,
                        len: size,
                        from,
                        hasher,
                        expected,
                    }),
                    None => None,
                };
                if let Some(job) = job {
                    let _ = self.disk.send(job).await;
                }
            }
        }
        self.fill(key);
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
            for p in self.peers.values() {
                if !p.has.get(index) {
                    p.send(Message::Have(index));
                }
            }
            if self.picker.is_done() {
                self.assembly.release();
            }
            if self.picker.is_done() && self.picker.is_wanted(index) {
                self.base.notice(Notice::Complete);
                self.base.complete.send_replace(true);
                for p in self.peers.values_mut() {
                    if p.am_interested {
                        p.am_interested = false;
                        p.send(Message::NotInterested);
                    }
                    if p.has.is_complete() {
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
            let Some(p) = self.peers.get_mut(&key) else {
                continue;
            };
            p.strikes += 1;
            if sole || p.strikes >= MAX_STRIKES {
                let reason = format!(
                    "sent data for piece {index} that failed the hash check ({} strike{})",
                    p.strikes,
                    if p.strikes == 1 { "" } else { "s" }
                );
                self.ban(key, reason);
            }
        }
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for k in keys {
            self.fill(k);
        }
    }
}
