//! Which blocks to request from which peer.
//!
//! - Pieces already under way are finished first, so that verified pieces (which can be
//!   shared) appear early and partial data stays small.
//! - A new piece is the rarest one the peer has, ties broken at random.
//! - Endgame: once every missing block is requested, a block may be requested again from a
//!   second peer; the engine cancels the other copies when one arrives.
//! - Pieces a reader waits for (a stream) come before all others, most urgent first, like
//!   libtorrent's `set_piece_deadline`; they may start beyond the bound on pieces under way.
//! - Each piece has a priority (0: not wanted, as when none of its files is; 1 low, 2
//!   normal, 3 high): a higher priority is started first, rarity breaks ties, and in
//!   sequential mode the lowest index does.
//! - A piece that failed its hash check is fetched again from one peer only, so that if it
//!   fails again, that peer is certainly the liar.
//! - A peer that suggests pieces (BEP 6 `Suggest`; a seed handing out what nobody has yet,
//!   see `seeding`) is asked for those first, and for other new pieces only when nothing
//!   is requested of it: another leecher may be getting them from it already. A choke
//!   ends its suggestions (the seed has handed its turn on).
//!
//! Invariants: a block is `Requested(n)` with n > 0 exactly while n requests for it are out;
//! a piece is in `partial` exactly while it is neither verified nor untouched.

use std::collections::HashMap;

use crate::bitfield::Bitfield;
use crate::wire::{BlockRef, MAX_BLOCK};

/// Most duplicate requests handed to one peer per pick in endgame.
const ENDGAME_BATCH: usize = 16;
/// Suggestions (BEP 6) kept per peer, the oldest dropped first.
const MAX_SUGGESTED: usize = 32;

/// Identifies a peer connection to the picker.
pub type PeerKey = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Free,
    Requested(u16),
    Received(PeerKey),
}

#[derive(Debug)]
struct Partial {
    blocks: Vec<Block>,
    received: u32,
    /// After a failed hash check, only this peer fetches the piece.
    exclusive: bool,
    owner: Option<PeerKey>,
}

/// What a block's arrival means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// New data; the piece is not complete yet.
    Stored,
    /// New data, and every block of the piece is now here: verify it.
    PieceComplete,
    /// A block we already had (endgame duplicate) or never asked for: drop it.
    Unwanted,
}

pub struct Picker {
    piece_length: u32,
    total_length: u64,
    have: Bitfield,
    availability: Vec<u32>,
    partial: HashMap<u32, Partial>,
    /// New pieces are started only while fewer than this many are under way (unless the peer
    /// can help with none of them, up to four times as many), which bounds the memory that
    /// holds pieces being assembled.
    max_partial: usize,
    /// Connected peers that have every piece (as last told).
    seeds: u32,
    rng: u64,
    /// Each piece's priority (see the module note); empty: all normal.
    priority: Vec<u8>,
    /// Missing wanted pieces (priority > 0), kept so that `is_done` is cheap.
    wanted_missing: u32,
    /// Pieces readers wait for, most urgent first.
    deadlines: Vec<u32>,
    /// New pieces in index order rather than rarest first.
    sequential: bool,
    /// Pieces each peer suggested (BEP 6), oldest first; a peer that ever suggested one has
    /// an entry, even if empty (see `pick`, step 2).
    suggested: HashMap<PeerKey, Vec<u32>>,
}

/// A piece's priority: not wanted.
pub const SKIP: u8 = 0;
/// The priority every piece has unless told otherwise.
pub const NORMAL: u8 = 2;

impl Picker {
    pub fn new(piece_length: u32, total_length: u64, have: Bitfield, seed: u64) -> Self {
        let count = have.len() as usize;
        Picker {
            piece_length,
            total_length,
            availability: vec![0; count],
            partial: HashMap::new(),
            max_partial: usize::MAX,
            seeds: 0,
            rng: seed | 1,
            wanted_missing: have.len() - have.count(),
            have,
            priority: Vec::new(),
            deadlines: Vec::new(),
            sequential: false,
            suggested: HashMap::new(),
        }
    }

    /// The peer suggests we take piece `index` from it (BEP 6 `Suggest`; a seed handing out
    /// pieces nobody has yet, see `seeding`): new pieces from that peer are its suggestions,
    /// and others only when nothing is requested of it (`pick`, step 2).
    pub fn suggest(&mut self, peer: PeerKey, index: u32) {
        if index >= self.have.len() || self.have.get(index) {
            return;
        }
        let list = self.suggested.entry(peer).or_default();
        if !list.contains(&index) {
            if list.len() >= MAX_SUGGESTED {
                list.remove(0);
            }
            list.push(index);
        }
    }

    /// The peer left: forget what it suggested.
    pub fn peer_gone(&mut self, peer: PeerKey) {
        self.suggested.remove(&peer);
    }

    /// The peer choked us: what it suggested is stale (a seed hands out pieces in turns and
    /// gives them to others meanwhile), but it still counts as a peer that suggests.
    pub fn choked_by(&mut self, peer: PeerKey) {
        if let Some(list) = self.suggested.get_mut(&peer) {
            list.clear();
        }
    }

    /// The first piece `peer` suggested that we may start now (wanted, missing, not under
    /// way, and it has it); suggestions no longer of use are dropped.
    fn suggested_piece(&mut self, peer: PeerKey, peer_has: &Bitfield) -> Option<u32> {
        if !self.takes_suggestions() {
            return None;
        }
        let list = self.suggested.get_mut(&peer)?;
        let have = &self.have;
        let partial = &self.partial;
        list.retain(|&i| !have.get(i) && !partial.contains_key(&i));
        let priority = &self.priority;
        list.iter().copied().find(|&i| {
            peer_has.get(i) && priority.get(i as usize).copied().unwrap_or(NORMAL) != SKIP
        })
    }

    /// Whether a peer's suggestions choose our new pieces: only when we pick rarest first
    /// among equals. In sequential mode, or with files of different priorities, our own
    /// order comes first (a stream must not wait for the pieces a seed hands out).
    fn takes_suggestions(&self) -> bool {
        !self.sequential && !self.priority.iter().any(|&p| p != NORMAL && p != SKIP)
    }

    /// Sets each piece's priority (`SKIP` for pieces no wanted file needs). A piece under
    /// way that is no longer wanted keeps its blocks but gets no new requests.
    pub fn set_priorities(&mut self, priority: Vec<u8>) {
        let count = self.have.len() as usize;
        self.priority = if priority.len() == count && priority.iter().any(|&p| p != NORMAL) {
            priority
        } else {
            Vec::new()
        };
        self.wanted_missing = (0..self.have.len())
            .filter(|&i| !self.have.get(i) && self.is_wanted(i))
            .count() as u32;
    }

    fn priority_of(&self, index: u32) -> u8 {
        self.priority.get(index as usize).copied().unwrap_or(NORMAL)
    }

    /// Whether some wanted file needs piece `index`.
    pub fn is_wanted(&self, index: u32) -> bool {
        self.priority_of(index) != SKIP
    }

    /// Pieces readers wait for, most urgent first (replacing the last list).
    pub fn set_deadlines(&mut self, urgent: Vec<u32>) {
        self.deadlines = urgent
            .into_iter()
            .filter(|&i| i < self.have.len() && !self.have.get(i))
            .collect();
    }

    /// New pieces in index order (for playing a file as it arrives) rather than rarest first.
    pub fn set_sequential(&mut self, on: bool) {
        self.sequential = on;
    }

    /// Every wanted piece is verified (all of them, unless some files are not wanted).
    pub fn is_done(&self) -> bool {
        self.wanted_missing == 0
    }

    /// Bounds the number of pieces under way (see the field's note).
    pub fn set_max_partial(&mut self, max: usize) {
        self.max_partial = max.max(1);
    }

    /// How many connected peers have every piece: pieces that only they have are what a
    /// seed is asked for first (see `pick`).
    pub fn set_seeds(&mut self, seeds: u32) {
        self.seeds = seeds;
    }

    /// Pieces under way.
    pub fn partial_count(&self) -> usize {
        self.partial.len()
    }

    pub fn have(&self) -> &Bitfield {
        &self.have
    }

    pub fn is_complete(&self) -> bool {
        self.have.is_complete()
    }

    fn piece_size(&self, index: u32) -> u32 {
        let start = index as u64 * self.piece_length as u64;
        (self.total_length - start).min(self.piece_length as u64) as u32
    }

    fn block_count(&self, index: u32) -> u32 {
        self.piece_size(index).div_ceil(MAX_BLOCK)
    }

    /// The block `n` of piece `index`.
    pub fn block(&self, index: u32, n: u32) -> BlockRef {
        let begin = n * MAX_BLOCK;
        BlockRef {
            index,
            begin,
            length: (self.piece_size(index) - begin).min(MAX_BLOCK),
        }
    }

    /// Whether `b` is exactly a block of this torrent as the picker would request it.
    pub fn is_valid_block(&self, b: &BlockRef) -> bool {
        b.index < self.have.len()
            && b.begin.is_multiple_of(MAX_BLOCK)
            && b.begin < self.piece_size(b.index)
            && self.block(b.index, b.begin / MAX_BLOCK).length == b.length
    }

    pub fn peer_has_all(&mut self, pieces: &Bitfield) {
        for i in pieces.ones() {
            self.availability[i as usize] += 1;
        }
    }

    pub fn peer_lost_all(&mut self, pieces: &Bitfield) {
        for i in pieces.ones() {
            let a = &mut self.availability[i as usize];
            *a = a.saturating_sub(1);
        }
    }

    pub fn peer_has(&mut self, index: u32) {
        if let Some(a) = self.availability.get_mut(index as usize) {
            *a += 1;
        }
    }

    /// Whether `peer_has` holds any piece we still need.
    pub fn wants_from(&self, peer_has: &Bitfield) -> bool {
        if self.is_done() {
            return false;
        }
        if peer_has.is_complete() {
            return true;
        }
        peer_has
            .ones()
            .any(|i| !self.have.get(i) && self.is_wanted(i))
    }

    /// Up to `max` blocks to request from `peer`, which has `peer_has`; `idle`: nothing is
    /// requested of it now. `requested_by_peer` tells which blocks this peer already has
    /// outstanding (never asked twice of one peer).
    pub fn pick(
        &mut self,
        peer: PeerKey,
        peer_has: &Bitfield,
        max: usize,
        idle: bool,
        requested_by_peer: impl Fn(&BlockRef) -> bool,
    ) -> Vec<BlockRef> {
        let mut out = Vec::new();
        if max == 0 {
            return out;
        }
        // 0. Pieces a reader waits for, most urgent first, whatever the bound.
        for k in 0..self.deadlines.len() {
            let index = self.deadlines[k];
            if self.have.get(index) || !peer_has.get(index) {
                continue;
            }
            if !self.partial.contains_key(&index) {
                self.start_piece(index);
            }
            self.take_free(index, peer, max, &mut out);
            if out.len() >= max {
                return out;
            }
        }
        // 1. Free blocks of pieces under way. A peer that has every piece (a seed) is asked
        //    for those that non-seeds have too only when it has nothing else to do (3): they
        //    can come from those peers, and a seed's upload is best spent on pieces only
        //    seeds have.
        let seed = peer_has.is_complete();
        let mut under_way: Vec<u32> = self
            .partial
            .iter()
            .filter(|(i, p)| {
                peer_has.get(**i)
                    && self.priority_of(**i) != SKIP
                    && (!p.exclusive || p.owner.is_none_or(|o| o == peer))
            })
            .map(|(i, _)| *i)
            .collect();
        under_way.sort_unstable();
        let (under_way, elsewhere): (Vec<u32>, Vec<u32>) = under_way
            .into_iter()
            .partition(|&i| !seed || self.availability[i as usize] <= self.seeds.max(1));
        for index in under_way {
            self.take_free(index, peer, max, &mut out);
            if out.len() >= max {
                return out;
            }
        }
        // 2. New pieces, rarest first, within the bound on pieces under way. A peer that has
        //    none of the pieces under way may start one more, up to four times the bound, so
        //    that pieces left by departed peers cannot stall the others. A peer that
        //    suggests pieces (a seed handing out what nobody has yet) is asked for those
        //    first, and for others only when nothing is requested of it: what we would pick
        //    on our own, another leecher may be getting from it already.
        let mut one_more = !self.partial.keys().any(|i| peer_has.get(*i));
        let suggests = self.takes_suggestions() && self.suggested.contains_key(&peer);
        while out.len() < max {
            if self.partial.len() >= self.max_partial {
                if !one_more || self.partial.len() >= self.max_partial.saturating_mul(4) {
                    break;
                }
                one_more = false;
            }
            let next = match self.suggested_piece(peer, peer_has) {
                Some(i) => Some(i),
                None if suggests && !(idle && out.is_empty()) => None,
                None => self.rarest_new_piece(peer_has),
            };
            let Some(index) = next else {
                break;
            };
            self.start_piece(index);
            self.take_free(index, peer, max, &mut out);
        }
        if out.is_empty() && idle {
            // 3. What other peers could give too, rather than leave a seed idle.
            for index in elsewhere {
                self.take_free(index, peer, max, &mut out);
            }
        }
        if !out.is_empty() || !self.in_endgame() {
            return out;
        }
        // 4. Endgame: blocks requested from one other peer only, not yet received; a few at a
        //    time, so that a small torrent is not fetched twice over.
        let mut dup: Vec<BlockRef> = Vec::new();
        for (&index, p) in &self.partial {
            if !peer_has.get(index)
                || self.priority_of(index) == SKIP
                || (p.exclusive && p.owner.is_some_and(|o| o != peer))
            {
                continue;
            }
            for (n, b) in p.blocks.iter().enumerate() {
                if *b == Block::Requested(1) {
                    let r = self.block(index, n as u32);
                    if !requested_by_peer(&r) {
                        dup.push(r);
                    }
                }
            }
        }
        dup.sort_unstable_by_key(|b| (b.index, b.begin));
        for r in dup.into_iter().take(max.min(ENDGAME_BATCH)) {
            if let Some(Block::Requested(n)) = self
                .partial
                .get_mut(&r.index)
                .map(|p| &mut p.blocks[(r.begin / MAX_BLOCK) as usize])
            {
                *n += 1;
            }
            out.push(r);
        }
        out
    }

    /// Up to `max` blocks for a source that fetches spans of the torrent rather than
    /// blocks (a web seed), which `has` the pieces given: whole new pieces, a run of
    /// consecutive ones starting at the rarest (so the parts that peers cannot give come
    /// first). When no new piece may start, what [`Picker::pick`] gives an idle peer: free
    /// blocks of pieces under way, then endgame copies (never one `in_flight` from it).
    pub fn pick_run(
        &mut self,
        source: PeerKey,
        has: &Bitfield,
        max: usize,
        in_flight: impl Fn(&BlockRef) -> bool,
    ) -> Vec<BlockRef> {
        let mut out = Vec::new();
        if max == 0 {
            return out;
        }
        // The same bound on pieces under way as peers have (it bounds the memory of pieces
        // being assembled).
        let bound = self.max_partial;
        if self.deadlines.is_empty() && self.partial.len() < bound {
            if let Some(first) = self.rarest_new_piece(has) {
                let priority = self.priority_of(first);
                let mut index = first;
                loop {
                    self.start_piece(index);
                    self.take_free(index, source, max, &mut out);
                    index += 1;
                    let fits = index < self.have.len()
                        && (self.block_count(index) as usize) <= max - out.len();
                    if out.len() >= max
                        || !fits
                        || self.partial.len() >= bound
                        || self.have.get(index)
                        || !has.get(index)
                        || self.partial.contains_key(&index)
                        || self.priority_of(index) != priority
                    {
                        break;
                    }
                }
                return out;
            }
        }
        self.pick(source, has, max, true, in_flight)
    }

    /// True when no block is free: every missing block is requested or received.
    pub fn in_endgame(&self) -> bool {
        let wanted_partial = self
            .partial
            .keys()
            .filter(|&&i| self.priority_of(i) != SKIP)
            .count() as u32;
        self.wanted_missing <= wanted_partial
            && self
                .partial
                .iter()
                .filter(|(&i, _)| self.priority_of(i) != SKIP)
                .all(|(_, p)| p.blocks.iter().all(|b| *b != Block::Free))
    }

    fn start_piece(&mut self, index: u32) {
        let blocks = vec![Block::Free; self.block_count(index) as usize];
        self.partial.insert(
            index,
            Partial {
                blocks,
                received: 0,
                exclusive: false,
                owner: None,
            },
        );
    }

    fn take_free(&mut self, index: u32, peer: PeerKey, max: usize, out: &mut Vec<BlockRef>) {
        let Some(p) = self.partial.get_mut(&index) else {
            return;
        };
        if p.exclusive {
            p.owner = Some(peer);
        }
        let free: Vec<u32> = p
            .blocks
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == Block::Free)
            .map(|(n, _)| n as u32)
            .take(max - out.len())
            .collect();
        for n in free {
            self.partial.get_mut(&index).expect("present").blocks[n as usize] = Block::Requested(1);
            out.push(self.block(index, n));
        }
    }

    /// The next piece to start: highest priority first; then the rarest (ties at random),
    /// or in sequential mode the lowest index.
    fn rarest_new_piece(&mut self, peer_has: &Bitfield) -> Option<u32> {
        let mut best: Option<(u32, u32)> = None;
        let mut best_priority = SKIP;
        let mut ties = 0u64;
        for i in 0..self.have.len() {
            let priority = self.priority_of(i);
            if priority < best_priority.max(1)
                || self.have.get(i)
                || !peer_has.get(i)
                || self.partial.contains_key(&i)
            {
                continue;
            }
            if priority > best_priority {
                best_priority = priority;
                best = None;
            }
            if self.sequential {
                if best.is_none() {
                    best = Some((i, 0));
                }
                continue;
            }
            let a = self.availability[i as usize];
            match best {
                Some((_, b)) if a > b => {}
                Some((_, b)) if a == b => {
                    // Reservoir sampling: each tied piece is chosen with equal chance.
                    ties += 1;
                    if self.next_random().is_multiple_of(ties) {
                        best = Some((i, a));
                    }
                }
                _ => {
                    best = Some((i, a));
                    ties = 1;
                }
            }
        }
        best.map(|(i, _)| i)
    }

    fn next_random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// A request for `b` will not be answered (choke, reject, timeout, disconnect).
    pub fn request_dropped(&mut self, b: &BlockRef, peer: PeerKey) {
        if let Some(p) = self.partial.get_mut(&b.index) {
            if let Some(Block::Requested(n)) = p.blocks.get_mut((b.begin / MAX_BLOCK) as usize) {
                *n -= 1;
                if *n == 0 {
                    p.blocks[(b.begin / MAX_BLOCK) as usize] = Block::Free;
                }
            }
            if p.owner == Some(peer) {
                p.owner = None;
            }
        }
    }

    /// Block `b` arrived from `peer`.
    pub fn block_received(&mut self, b: &BlockRef, peer: PeerKey) -> Arrival {
        if !self.is_valid_block(b) {
            return Arrival::Unwanted;
        }
        let Some(p) = self.partial.get_mut(&b.index) else {
            return Arrival::Unwanted;
        };
        let slot = &mut p.blocks[(b.begin / MAX_BLOCK) as usize];
        if !matches!(slot, Block::Requested(_)) {
            return Arrival::Unwanted;
        }
        *slot = Block::Received(peer);
        p.received += 1;
        if p.received as usize == p.blocks.len() {
            Arrival::PieceComplete
        } else {
            Arrival::Stored
        }
    }

    /// Piece `index` matched its hash.
    pub fn piece_verified(&mut self, index: u32) {
        self.partial.remove(&index);
        if !self.have.get(index) && self.is_wanted(index) {
            self.wanted_missing -= 1;
        }
        self.have.set(index);
        self.deadlines.retain(|&i| i != index);
    }

    /// Piece `index` failed its hash check: it will be fetched again, from one peer. Returns
    /// the peers that sent its blocks.
    pub fn piece_failed(&mut self, index: u32) -> Vec<PeerKey> {
        let Some(p) = self.partial.get_mut(&index) else {
            return Vec::new();
        };
        let mut senders: Vec<PeerKey> = p
            .blocks
            .iter()
            .filter_map(|b| match b {
                Block::Received(peer) => Some(*peer),
                _ => None,
            })
            .collect();
        senders.sort_unstable();
        senders.dedup();
        p.blocks.iter_mut().for_each(|b| *b = Block::Free);
        p.received = 0;
        p.exclusive = true;
        p.owner = None;
        senders
    }

    /// Who sent each block of piece `index` (`None` for a block not received).
    pub fn block_senders(&self, index: u32) -> Vec<Option<PeerKey>> {
        self.partial.get(&index).map_or_else(Vec::new, |p| {
            p.blocks
                .iter()
                .map(|b| match b {
                    Block::Received(peer) => Some(*peer),
                    _ => None,
                })
                .collect()
        })
    }

    /// Blocks `blocks` of piece `index` were found bad (BitTorrent v2: by their own
    /// hashes): they are fetched again, from anyone; the piece's other blocks are kept.
    /// Returns who sent the bad ones.
    pub fn blocks_failed(&mut self, index: u32, blocks: &[u32]) -> Vec<PeerKey> {
        let Some(p) = self.partial.get_mut(&index) else {
            return Vec::new();
        };
        let mut senders = Vec::new();
        for &n in blocks {
            if let Some(slot) = p.blocks.get_mut(n as usize) {
                if let Block::Received(peer) = *slot {
                    senders.push(peer);
                    *slot = Block::Free;
                    p.received -= 1;
                }
            }
        }
        senders.sort_unstable();
        senders.dedup();
        senders
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: u32 = MAX_BLOCK;

    #[test]
    fn a_web_seed_takes_a_run_of_whole_pieces_from_the_rarest_then_what_is_left() {
        let mut p = picker(8, 2 * B);
        let all = Bitfield::full(8);
        // Peers hold pieces 0-3 twice and 4-7 not at all: the run starts in 4-7.
        let mut low = Bitfield::new(8);
        (0..4).for_each(|i| {
            low.set(i);
        });
        p.peer_has_all(&low);
        p.peer_has_all(&low);
        let run = p.pick_run(99, &all, 5, |_| false);
        // Whole pieces only after the first: two pieces (four blocks), consecutive, unless
        // the run starts at the last piece.
        assert!(
            run.len() == 4 || (run.len() == 2 && run[0].index == 7),
            "{run:?}"
        );
        assert!(run.windows(2).all(|w| {
            (w[1].index, w[1].begin) == (w[0].index, w[0].begin + B)
                || (w[1].index, w[1].begin) == (w[0].index + 1, 0)
        }));
        assert!(run[0].index >= 4, "{run:?}");
        // Everything started: what is left of pieces under way comes next.
        let mut q = picker(1, 2 * B);
        let one = q.pick(1, &Bitfield::full(1), 1, true, |_| false);
        assert_eq!(one.len(), 1);
        let run = q.pick_run(99, &Bitfield::full(1), 4, |_| false);
        assert_eq!(
            run,
            vec![q.block(0, 1 - one[0].begin / B)],
            "the piece's free block"
        );
        // Endgame: the block out to the peer, never one of its own.
        let dup = q.pick_run(99, &Bitfield::full(1), 4, |b| *b == run[0]);
        assert_eq!(dup, one);
    }

    fn picker(pieces: u32, piece_len: u32) -> Picker {
        Picker::new(
            piece_len,
            pieces as u64 * piece_len as u64,
            Bitfield::new(pieces),
            7,
        )
    }

    fn none(_: &BlockRef) -> bool {
        false
    }

    #[test]
    fn bad_blocks_alone_are_fetched_again_and_their_senders_named() {
        let mut p = picker(1, 4 * B);
        p.peer_has_all(&Bitfield::full(1));
        let got = p.pick(1, &Bitfield::full(1), 4, true, |_| false);
        for (i, b) in got.iter().enumerate() {
            let arrival = p.block_received(b, 10 + i as u64 % 2);
            assert_eq!(arrival == Arrival::PieceComplete, i == 3);
        }
        assert_eq!(p.block_senders(0), [Some(10), Some(11), Some(10), Some(11)]);
        assert_eq!(p.blocks_failed(0, &[1]), vec![11]);
        // Only block 1 is asked again, and its arrival completes the piece.
        let again = p.pick(2, &Bitfield::full(1), 4, true, |_| false);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].begin, B);
        assert_eq!(p.block_received(&again[0], 2), Arrival::PieceComplete);
    }

    #[test]
    fn rarest_piece_is_picked_first() {
        let mut p = picker(4, B);
        let all = Bitfield::full(4);
        p.peer_has_all(&all);
        p.peer_has_all(&all);
        let mut few = Bitfield::new(4);
        few.set(2);
        p.peer_has_all(&few);
        // Piece 2 is on three peers; 0, 1, 3 on two. A pick of one takes one of those.
        let got = p.pick(1, &all, 1, true, none);
        assert_eq!(got.len(), 1);
        assert_ne!(got[0].index, 2);
    }

    #[test]
    fn ties_are_broken_at_random() {
        let mut firsts = std::collections::HashSet::new();
        for seed in 0..40 {
            let mut p = Picker::new(B, 8 * B as u64, Bitfield::new(8), seed);
            firsts.insert(p.pick(1, &Bitfield::full(8), 1, true, none)[0].index);
        }
        assert!(firsts.len() > 3, "{firsts:?}");
    }

    #[test]
    fn partial_pieces_are_finished_first() {
        let mut p = picker(3, 4 * B);
        let all = Bitfield::full(3);
        let first = p.pick(1, &all, 2, true, none);
        assert_eq!(first.len(), 2);
        let piece = first[0].index;
        let next = p.pick(2, &all, 2, true, none);
        assert!(next.iter().all(|b| b.index == piece), "{next:?}");
    }

    #[test]
    fn a_seed_is_asked_for_what_others_have_only_when_nothing_else_is_left() {
        let mut p = picker(2, 4 * B);
        let all = Bitfield::full(2);
        p.peer_has_all(&all); // the seed, key 1
        p.set_seeds(1);
        let mut leecher = Bitfield::new(2);
        leecher.set(0);
        p.peer_has_all(&leecher); // key 2
                                  // Piece 0 is started from the leecher; the seed is asked for piece 1, not the rest of
                                  // piece 0, which the leecher can give.
        assert!(p
            .pick(2, &leecher, 1, true, none)
            .iter()
            .all(|b| b.index == 0));
        let from_seed = p.pick(1, &all, 4, true, none);
        assert_eq!(from_seed.len(), 4);
        assert!(from_seed.iter().all(|b| b.index == 1), "{from_seed:?}");
        // With nothing else left, the seed is not left idle: once nothing is requested of it,
        // it gets piece 0's free blocks.
        assert!(p.pick(1, &all, 8, false, none).is_empty());
        let rest = p.pick(1, &all, 8, true, none);
        assert_eq!(rest.len(), 3);
        assert!(rest.iter().all(|b| b.index == 0), "{rest:?}");
    }

    #[test]
    fn pieces_only_seeds_have_are_asked_of_any_seed() {
        let mut p = picker(2, 4 * B);
        let all = Bitfield::full(2);
        p.peer_has_all(&all);
        p.peer_has_all(&all);
        p.set_seeds(2);
        // A piece started from one seed is finished from the other without waiting for it
        // to be idle: no leecher could give it.
        let first = p.pick(1, &all, 2, true, none);
        let second = p.pick(2, &all, 2, false, none);
        assert_eq!(second.len(), 2);
        assert!(
            second.iter().all(|b| b.index == first[0].index),
            "{second:?}"
        );
    }

    #[test]
    fn a_whole_piece_arrives_then_verifies() {
        let mut p = Picker::new(B, B as u64 * 2 + 100, Bitfield::new(3), 1);
        let all = Bitfield::full(3);
        let blocks = p.pick(1, &all, 10, true, none);
        assert_eq!(blocks.len(), 3);
        assert!(blocks.iter().any(|b| b.length == 100), "short last block");
        for b in &blocks {
            assert_eq!(p.block_received(b, 1), Arrival::PieceComplete);
            p.piece_verified(b.index);
        }
        assert!(p.is_complete());
        assert_eq!(p.block_received(&blocks[0], 1), Arrival::Unwanted);
    }

    #[test]
    fn dropped_requests_go_to_other_peers() {
        let mut p = picker(1, 2 * B);
        let all = Bitfield::full(1);
        let a = p.pick(1, &all, 2, true, none);
        assert_eq!(a.len(), 2);
        p.request_dropped(&a[1], 1);
        let b = p.pick(2, &all, 5, true, none);
        assert_eq!(b, vec![a[1]]);
    }

    #[test]
    fn endgame_duplicates_requests_but_never_to_the_same_peer() {
        let mut p = picker(1, 2 * B);
        let all = Bitfield::full(1);
        let a = p.pick(1, &all, 2, true, none);
        assert!(p.in_endgame());
        let again = p.pick(1, &all, 5, true, |b| a.contains(b));
        assert!(again.is_empty());
        let dup = p.pick(2, &all, 5, true, none);
        assert_eq!(dup, a);
        // A third peer gets nothing: each block already has two requests out.
        assert!(p.pick(3, &all, 5, true, none).is_empty());
        // The first copy arrives; the second is unwanted.
        assert_eq!(p.block_received(&a[0], 2), Arrival::Stored);
        assert_eq!(p.block_received(&a[0], 1), Arrival::Unwanted);
    }

    #[test]
    fn a_failed_piece_is_refetched_from_one_peer_only() {
        let mut p = picker(1, 2 * B);
        let all = Bitfield::full(1);
        let x = p.pick(1, &all, 1, true, none);
        let y = p.pick(2, &all, 1, true, none);
        p.block_received(&x[0], 1);
        assert_eq!(p.block_received(&y[0], 2), Arrival::PieceComplete);
        assert_eq!(p.piece_failed(0), vec![1, 2]);
        let retry = p.pick(2, &all, 1, true, none);
        assert_eq!(retry.len(), 1);
        assert!(
            p.pick(1, &all, 5, true, none).is_empty(),
            "piece owned by peer 2"
        );
        assert_eq!(p.pick(2, &all, 5, true, none).len(), 1);
    }

    #[test]
    fn pieces_under_way_are_bounded() {
        let mut p = picker(100, B);
        p.set_max_partial(3);
        let all = Bitfield::full(100);
        let got = p.pick(1, &all, 50, true, none);
        // The bound, plus one because nothing was under way that this peer could help with.
        assert_eq!(got.len(), 4);
        assert_eq!(p.partial_count(), 4);
        assert!(p.pick(2, &all, 50, true, none).is_empty());
        // A peer with none of those pieces may still start one.
        let mut other = Bitfield::new(100);
        other.set(99);
        assert_eq!(p.pick(3, &other, 50, true, none).len(), 1);
    }

    #[test]
    fn wire_blocks_are_validated() {
        let p = Picker::new(B * 2, B as u64 * 3, Bitfield::new(2), 1);
        assert!(p.is_valid_block(&BlockRef {
            index: 1,
            begin: 0,
            length: B
        }));
        assert!(!p.is_valid_block(&BlockRef {
            index: 1,
            begin: B,
            length: B
        }));
        assert!(!p.is_valid_block(&BlockRef {
            index: 2,
            begin: 0,
            length: B
        }));
        assert!(!p.is_valid_block(&BlockRef {
            index: 0,
            begin: 1,
            length: B
        }));
    }

    #[test]
    fn unwanted_pieces_are_never_requested_and_done_means_wanted() {
        let mut p = picker(6, B);
        p.set_priorities(vec![SKIP, NORMAL, SKIP, SKIP, NORMAL, SKIP]);
        let all = Bitfield::full(6);
        assert!(p.wants_from(&all));
        let got = p.pick(1, &all, 100, true, none);
        let mut pieces: Vec<u32> = got.iter().map(|b| b.index).collect();
        pieces.sort_unstable();
        assert_eq!(pieces, vec![1, 4]);
        // A peer with only unwanted pieces is of no interest.
        let mut some = Bitfield::new(6);
        some.set(0);
        some.set(2);
        assert!(!p.wants_from(&some));
        assert!(p.in_endgame());
        p.piece_verified(1);
        assert!(!p.is_done());
        p.piece_verified(4);
        assert!(p.is_done());
        assert!(!p.is_complete());
        assert!(!p.wants_from(&all));
        // Wanting one more file's piece makes it not done again.
        p.set_priorities(vec![SKIP, NORMAL, NORMAL, SKIP, NORMAL, SKIP]);
        assert!(!p.is_done());
        assert_eq!(p.pick(1, &all, 100, true, none)[0].index, 2);
    }

    #[test]
    fn deadlines_come_first_beyond_the_bound() {
        let mut p = picker(8, 2 * B);
        p.set_max_partial(1);
        let all = Bitfield::full(8);
        // One piece under way fills the bound.
        assert_eq!(p.pick(1, &all, 1, false, none).len(), 1);
        p.set_deadlines(vec![6, 3]);
        let got = p.pick(2, &all, 3, false, none);
        let order: Vec<(u32, u32)> = got.iter().map(|b| (b.index, b.begin)).collect();
        assert_eq!(order, vec![(6, 0), (6, B), (3, 0)]);
        p.piece_verified(6);
        let got = p.pick(3, &all, 1, false, none);
        assert_eq!((got[0].index, got[0].begin), (3, B));
    }

    #[test]
    fn a_seeds_suggestions_are_what_is_asked_of_it() {
        let mut p = picker(8, 2 * B);
        let all = Bitfield::full(8);
        p.peer_has_all(&all);
        p.set_seeds(1);
        p.suggest(1, 5);
        p.suggest(1, 2);
        // The suggestions, in the order given; nothing else new while requests are out
        // (another leecher may be getting any other piece from that seed).
        let got: Vec<u32> = p
            .pick(1, &all, 8, true, none)
            .iter()
            .map(|b| b.index)
            .collect();
        assert_eq!(got, vec![5, 5, 2, 2]);
        assert!(p.pick(1, &all, 8, false, none).is_empty());
        // Idle, with no suggestion left: not left idle.
        assert_eq!(p.pick(1, &all, 2, true, none).len(), 2);
        // A peer that suggests nothing is asked as before.
        assert_eq!(p.pick(2, &all, 2, false, none).len(), 2);
    }

    #[test]
    fn a_sequential_fetch_keeps_its_order_whatever_a_seed_suggests() {
        let mut p = picker(10, B);
        let all = Bitfield::full(10);
        p.peer_has_all(&all);
        p.set_sequential(true);
        p.suggest(1, 7);
        p.suggest(1, 5);
        let got = p.pick(1, &all, 3, false, none);
        let pieces: Vec<u32> = got.iter().map(|b| b.index).collect();
        assert_eq!(pieces, vec![0, 1, 2]);
    }

    #[test]
    fn suggestions_end_with_a_choke_and_with_the_peer() {
        let mut p = picker(8, 2 * B);
        let all = Bitfield::full(8);
        p.suggest(1, 5);
        // Choked: the seed handed its turn on, and piece 5 may go to someone else now.
        p.choked_by(1);
        assert!(p.pick(1, &all, 8, false, none).is_empty());
        p.suggest(1, 6);
        assert_eq!(p.pick(1, &all, 2, false, none)[0].index, 6);
        // Suggestions of pieces we have, or out of range, are ignored.
        p.piece_verified(3);
        p.suggest(1, 3);
        p.suggest(1, 99);
        assert!(p.pick(1, &all, 8, false, none).is_empty());
        p.peer_gone(1);
        assert_eq!(p.pick(1, &all, 2, false, none).len(), 2);
    }

    #[test]
    fn sequential_and_high_priority_order_new_pieces() {
        let mut p = picker(5, B);
        p.set_sequential(true);
        let all = Bitfield::full(5);
        let order: Vec<u32> = p
            .pick(1, &all, 5, true, none)
            .iter()
            .map(|b| b.index)
            .collect();
        assert_eq!(order, vec![0, 1, 2, 3, 4]);

        let mut p = picker(5, B);
        p.set_priorities(vec![NORMAL, 1, 3, NORMAL, 3]);
        let order: Vec<u32> = p
            .pick(1, &all, 5, true, none)
            .iter()
            .map(|b| b.index)
            .collect();
        assert_eq!(
            &order[..2]
                .iter()
                .copied()
                .collect::<std::collections::HashSet<_>>(),
            &[2, 4].into_iter().collect()
        );
        assert_eq!(order[4], 1);
    }
}
