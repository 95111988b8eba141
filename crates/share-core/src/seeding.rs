//! What a seed hands out, and to whom, so that each piece leaves the origin about once.
//!
//! A seed alone in a swarm is the only source of every piece nobody has yet: each copy it
//! sends of a piece a leecher already has (or is already getting from it) is upload the
//! leechers could have given each other, and the whole swarm waits for it. Leechers cannot
//! avoid that on their own (none sees what the others asked of the seed), so the seed
//! keeps a ledger (`Handout`): per piece, the peers known to have it (their `Have`s,
//! witnessed), the peers getting it from us and the peers it is offered to; per peer, the
//! pieces offered to it, asked of us, and passed on (another peer announced a piece after
//! this one had it from us, and did not get it from us). From it come:
//!
//! - **Offers** (`offers`): pieces with no copy anywhere, each offered to one peer; once
//!   every piece is out, while others wait for the seed, a piece someone has goes only to
//!   a peer near done (the others take it from the swarm). By default (`Mode::Suggest`) an
//!   offer is a `Suggest` (BEP 6) sent just before the unchoke: the seed still says it has
//!   everything and serves whatever it is asked, so a client that ignores suggestions, or
//!   asks for a piece offered to another, is served as before (super-seeding's weakness).
//!   As a super-seed (`Mode::Super`, BEP 16) offers are the only `Have`s a peer hears, it
//!   is served only those, and it gets a new one once one of its pieces was seen elsewhere
//!   (or nobody else lacks them).
//! - **Turns** (`Mode::Suggest`): while others wait for the seed, an unchoked peer is
//!   offered `TURN` piece; once it has asked for every block of it and few are left in its
//!   queue, its turn is over (`wants_slot` turns false) and the seed's choker hands the slot
//!   on; the blocks still queued go out after the choke. The seed's pieces so reach every
//!   leecher within seconds, each with something the others lack, instead of feeding the
//!   few it unchoked first while the rest wait for them (the sim's first finding: the
//!   five peers a seed unchoked first traded among themselves while eleven had nothing).
//!   With nobody waiting a turn goes on, `OFFERS_AHEAD` offers ahead.
//! - **Keepers**: a peer given more than `PROBATION` pieces that passed on fewer than
//!   half keeps what it gets. Its pieces count as no copy (the swarm cannot take them
//!   from it), so they are handed out again, and it ranks last for the seed's slots: what
//!   a free-rider gets from a seed is what the seed spares.
//! - **Ranks** (`rank`, for `Choker::tick_ranked`): a peer in the middle of its turn, then
//!   one near done (`NEAR_DONE`: it finishes instead of trailing the swarm), then one that
//!   passes pieces on (or is new), then one that keeps; within a class, those given the
//!   fewest pieces first; then the choker's own order (served longest ago).
//!
//! ## Engine integration
//!
//! What the torrent task does (share-engine's `torrent/handout.rs`, `choking.rs`,
//! `exchange.rs` and `peers.rs`; `sim/host.rs` does the same in virtual time). It owns one
//! `Handout` while it seeds (made when it has every piece, fed the connected peers'
//! bitfields; `Mode::Super` for `share seed --super-seed`). `contested` below is: some peer
//! we choke lacks a piece (the engine counts only interested peers with the fast extension:
//! turns are for peers that hear a `Suggest`; the others are served by the plain rotation
//! and their `wants_slot` is taken as true). `queued` is the peer's blocks waiting in its
//! writer (`Peer::queued`).
//!
//! - Connect: a super-seed sends `HaveNone` (not `HaveAll` or a bitfield), then `Have(i)`
//!   for each `offers(key, contested)`. A bitfield or have-all from the peer:
//!   `peer_has_all`.
//! - `Have(i)` from a peer: `peer_has(key, i)`; send offers to each peer it returns and to
//!   this one. Leechers send `Have` to seeds too: the ledger is built from them.
//! - `Request(b)`: a super-seed rejects it unless `may_serve(key, b.index)`; a request that
//!   is served: `requested(key, b.index)`, then, when it says so, send offers to the peer.
//! - Send offers (`offers(key, contested)`): as `Suggest(i)` to an unchoked peer
//!   (`Mode::Suggest`), or `Have(i)` to any peer (`Mode::Super`). Also once a second for
//!   every peer.
//! - Applying the choker's set: to a peer being unchoked, its offers first, then `Unchoke`;
//!   a peer being choked: `choked(key)`.
//! - Rechoke: the view of each peer has `interested: peer_interested &&
//!   wants_slot(key, contested, queued)`, and the choker runs as
//!   `tick_ranked(secs, &views, true, force, |k| handout.rank(k))`. After handling any
//!   message, if an unchoked peer no longer `wants_slot`, run the choker at once (not
//!   forced) and apply its set (the engine looks after each batch of a peer's messages).
//! - A peer leaves: `peer_left(key)`.
//!
//! What every torrent does besides (the picker's and the choker's side, leeching or
//! seeding): `Suggest(i)` from a peer: `Picker::suggest(key, i)`, then refill its requests;
//! `Choke` from a peer: `Picker::choked_by(key)`; a peer leaves: `Picker::peer_gone(key)`;
//! before each choker run, `Choker::sent_to(key, bytes sent)` for every peer, and once
//! `Choker::set_optimistic_turn(piece_length)`; a regular slot freed by `NotInterested` or a
//! departure: run the choker at once (not forced) instead of setting `rechoke_soon`; a
//! verified piece: re-check interest in the peers that have it (a peer whose pieces we all
//! have says nothing more to us: a count per peer of its pieces we lack keeps that cheap).
//! `sim/host.rs` does all of this (each place says "integration").

use std::collections::HashMap;

use crate::bitfield::Bitfield;
use crate::picker::PeerKey;

/// Pieces in a turn while other peers wait for the seed (`Mode::Suggest`): one, so that
/// every leecher has a piece to trade soonest.
pub const TURN: usize = 1;
/// A peer's turn ends once it asked for every block of its turn and has at most this many
/// blocks queued: the next peer is unchoked while those go out, so the seed's upload does
/// not stop for the round trip of a handover.
pub const LOW_WATER: usize = 8;
/// Offers a peer holds that it has not asked for yet while nobody waits (`Mode::Suggest`):
/// enough to fill its request pipeline while the next offers travel.
pub const OFFERS_AHEAD: usize = 4;
/// Pieces a super-seed lets a peer hold from it that were not yet seen elsewhere (BEP 16
/// says one; two keep a peer's pipeline full across a round trip).
pub const SUPER_AHEAD: usize = 2;
/// Pieces a peer may be given before whether it passes them on counts.
pub const PROBATION: u32 = 2;
/// A peer that lacks at most 1/`NEAR_DONE` of the pieces (and at least one) is near done.
pub const NEAR_DONE: u32 = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Say we have everything, suggest what to take, serve in turns (the default).
    Suggest,
    /// BEP 16 super-seeding: announce one piece at a time to each peer.
    Super,
}

/// A peer's class for a seed's slots, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Standing {
    /// Unchoked, in the middle of its turn.
    InTurn,
    /// Lacks at most 1/`NEAR_DONE` of the pieces.
    NearDone,
    /// Passes on what it gets (or has had too little to show).
    PassesOn,
    /// Keeps what it gets.
    Keeps,
}

/// How a seed ranks a peer for its slots: lower first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SeedRank {
    pub standing: Standing,
    /// Pieces it asked us for so far.
    pub given: u32,
}

struct Given {
    piece: u32,
    at: u64,
    passed: bool,
}

struct Ledger {
    has: Bitfield,
    /// Pieces offered to it that it has not asked for yet.
    offers: Vec<u32>,
    /// Pieces offered (announced, for a super-seed) to it, ever.
    shown: Bitfield,
    /// Pieces it asked us for (a block or more).
    got: Bitfield,
    /// Pieces it got from us: when it announced having each (`u64::MAX` while it is still
    /// getting it), and whether it was seen to pass it on.
    given: Vec<Given>,
    /// Pieces it passed on.
    passed: u32,
    /// It keeps what it gets (see `Standing::Keeps`): its pieces do not count as copies.
    keeps: bool,
    /// The pieces it asked for since it was last unchoked, with the blocks of each asked.
    turn: Vec<(u32, u32)>,
}

/// A seed's ledger of what it handed out (see the module note).
pub struct Handout {
    mode: Mode,
    pieces: u32,
    piece_length: u32,
    total_length: u64,
    /// Per piece: connected peers that have it.
    holders: Vec<u32>,
    /// Per piece: peers that asked us for it and do not have it yet.
    receiving: Vec<u32>,
    /// Per piece: offers not yet taken up.
    offered: Vec<u32>,
    /// Per piece: connected peers that asked us for it (the only ones a `Have` from
    /// another peer can credit with passing it on).
    from_us: Vec<u32>,
    /// Pieces with no copy at all: nobody has them, is getting them or was offered them.
    fresh: u32,
    peers: HashMap<PeerKey, Ledger>,
    /// Counts `Have`s, to tell who had a piece first.
    haves: u64,
    rng: u64,
}

impl Handout {
    pub fn new(piece_length: u32, total_length: u64, mode: Mode, seed: u64) -> Self {
        let pieces = total_length.div_ceil(piece_length.max(1) as u64) as u32;
        let n = pieces as usize;
        Handout {
            mode,
            pieces,
            piece_length,
            total_length,
            holders: vec![0; n],
            receiving: vec![0; n],
            offered: vec![0; n],
            from_us: vec![0; n],
            fresh: pieces,
            peers: HashMap::new(),
            haves: 0,
            rng: seed | 1,
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Changes a piece's counts, keeping `fresh` in step.
    fn count(&mut self, i: usize, holders: i32, receiving: i32, offered: i32) {
        let was = self.copies(i);
        self.holders[i] = self.holders[i].saturating_add_signed(holders);
        self.receiving[i] = self.receiving[i].saturating_add_signed(receiving);
        self.offered[i] = self.offered[i].saturating_add_signed(offered);
        let is = self.copies(i);
        self.fresh = self.fresh + u32::from(is == 0) - u32::from(was == 0);
    }

    fn copies(&self, i: usize) -> u32 {
        self.holders[i] + self.receiving[i] + self.offered[i]
    }

    fn near_done(&self, l: &Ledger) -> bool {
        let missing = self.pieces - l.has.count();
        missing > 0 && missing * NEAR_DONE <= self.pieces
    }

    fn ledger(&mut self, peer: PeerKey) -> &mut Ledger {
        ledger(&mut self.peers, self.pieces, peer)
    }

    /// A peer's bitfield (or have-all) at the start of a connection.
    pub fn peer_has_all(&mut self, peer: PeerKey, pieces: &Bitfield) {
        for i in pieces.ones() {
            let _ = self.peer_has(peer, i);
        }
    }

    /// A peer announced piece `index` (`Have`): it counts as a holder, and whoever had the
    /// piece from us before it (when it did not get it from us) is seen to pass pieces on.
    /// Returns those peers (a super-seed may offer them more now).
    pub fn peer_has(&mut self, peer: PeerKey, index: u32) -> Vec<PeerKey> {
        let mut credited = Vec::new();
        if index >= self.pieces {
            return credited;
        }
        let i = index as usize;
        let l = ledger(&mut self.peers, self.pieces, peer);
        if !l.has.set(index) {
            return credited;
        }
        let from_us = l.got.get(index);
        self.haves += 1;
        if let Some(g) = l.given.iter_mut().find(|g| g.piece == index) {
            g.at = self.haves;
        }
        let counts = i32::from(!l.keeps);
        let offer = l.offers.iter().position(|&o| o == index);
        if let Some(at) = offer {
            l.offers.remove(at);
        }
        self.count(
            i,
            counts,
            -counts * i32::from(from_us),
            -i32::from(offer.is_some()),
        );
        if from_us || self.from_us[i] == 0 {
            return credited;
        }
        // Who passed it on: of the peers that had it from us and have it, one that does
        // pass pieces on if there is one (a piece a keeper hoards is handed out again, and
        // spreads from the next peer), and of those the one that had it first; credited
        // once for it.
        let first = self
            .peers
            .iter()
            .filter(|(&k, o)| k != peer && o.has.get(index))
            .filter_map(|(&k, o)| {
                let g = o.given.iter().find(|g| g.piece == index)?;
                Some((o.keeps, g.at, k))
            })
            .min();
        if let Some((_, _, k)) = first {
            let other = self.peers.get_mut(&k).expect("listed");
            let g = other
                .given
                .iter_mut()
                .find(|g| g.piece == index)
                .expect("found");
            if !g.passed {
                g.passed = true;
                other.passed += 1;
                credited.push(k);
            }
        }
        for &k in &credited {
            self.restand(k);
        }
        credited
    }

    /// Whether a peer keeps what it gets: given more than `PROBATION` pieces and seen to
    /// pass on fewer than half of them.
    fn keeps(l: &Ledger) -> bool {
        l.passed * 2 + PROBATION < l.got.count()
    }

    /// The peer's standing may have changed: a peer that keeps what it gets is no copy of
    /// anything (the swarm cannot take its pieces), one that passes pieces on is.
    fn restand(&mut self, peer: PeerKey) {
        let Some(l) = self.peers.get_mut(&peer) else {
            return;
        };
        let keeps = Self::keeps(l);
        if keeps == l.keeps {
            return;
        }
        l.keeps = keeps;
        let sign = if keeps { -1 } else { 1 };
        let has: Vec<u32> = l.has.ones().collect();
        let receiving: Vec<u32> = l.got.ones().filter(|&i| !l.has.get(i)).collect();
        for i in has {
            self.count(i as usize, sign, 0, 0);
        }
        for i in receiving {
            self.count(i as usize, 0, sign, 0);
        }
    }

    /// A peer left: its pieces, offers and requests leave the counts.
    pub fn peer_left(&mut self, peer: PeerKey) {
        let Some(l) = self.peers.remove(&peer) else {
            return;
        };
        let counts = i32::from(!l.keeps);
        for i in l.has.ones() {
            self.count(i as usize, -counts, 0, 0);
        }
        for i in l.got.ones() {
            if !l.has.get(i) {
                self.count(i as usize, 0, -counts, 0);
            }
        }
        for &i in &l.offers {
            self.count(i as usize, 0, 0, -1);
        }
        for i in l.got.ones() {
            self.from_us[i as usize] -= 1;
        }
    }

    /// The peer asked us for a block of piece `index`, and will be served: the piece is
    /// being given to it (part of its turn), and an offer of it is taken up. True when the
    /// piece is new to its turn: only then can its offers change (`offers` is worth a call).
    pub fn requested(&mut self, peer: PeerKey, index: u32) -> bool {
        if index >= self.pieces {
            return false;
        }
        let l = ledger(&mut self.peers, self.pieces, peer);
        let offer = l.offers.iter().position(|&o| o == index);
        if let Some(at) = offer {
            l.offers.remove(at);
        }
        let new = match l.turn.iter_mut().find(|t| t.0 == index) {
            Some(t) => {
                t.1 += 1;
                false
            }
            None => {
                l.turn.push((index, 1));
                // Pieces of its turn that it has count for nothing any more: a turn that
                // goes on (nobody waits) stays as long as the pieces under way.
                if l.turn.len() > 64 {
                    let has = &l.has;
                    l.turn.retain(|t| !has.get(t.0));
                }
                true
            }
        };
        let first = !l.has.get(index) && l.got.set(index);
        if first {
            self.from_us[index as usize] += 1;
            l.given.push(Given {
                piece: index,
                at: u64::MAX,
                passed: false,
            });
        }
        let counts = i32::from(first && !l.keeps);
        self.count(index as usize, 0, counts, -i32::from(offer.is_some()));
        if first {
            self.restand(peer);
        }
        new || offer.is_some()
    }

    /// Whether the peer should hold one of the seed's slots now (the choker's view of its
    /// interest). While others wait (`contested`, `Mode::Suggest`): not once its turn is
    /// over (it asked for every block of its turn and has at most `LOW_WATER` of them
    /// still `queued`), and not when there is nothing to offer it (every piece is out and
    /// it is not near done). The choke overtakes its queued blocks, so what it asks after
    /// is refused, and the next peer's requests arrive before the seed runs dry.
    pub fn wants_slot(&self, peer: PeerKey, contested: bool, queued: usize) -> bool {
        if self.mode == Mode::Super || !contested {
            return true;
        }
        let Some(l) = self.peers.get(&peer) else {
            return self.fresh > 0;
        };
        let asked_all = l
            .turn
            .iter()
            .all(|&(i, n)| l.has.get(i) || n >= blocks_in(self.piece_length, self.total_length, i));
        let in_turn = !l.offers.is_empty() || !asked_all || queued > LOW_WATER;
        if in_turn {
            return true;
        }
        l.turn.len() < TURN && (self.fresh > 0 || self.near_done(l))
    }

    /// We choked the peer: its turn ends, and offers it did not take up go back
    /// (`Mode::Suggest`; a super-seed's announcements cannot be taken back).
    pub fn choked(&mut self, peer: PeerKey) {
        if self.mode == Mode::Super {
            return;
        }
        let Some(l) = self.peers.get_mut(&peer) else {
            return;
        };
        l.turn.clear();
        let offers = std::mem::take(&mut l.offers);
        for i in offers {
            self.count(i as usize, 0, 0, -1);
        }
    }

    /// Whether to serve the peer's request for piece `index`: always, except that a
    /// super-seed serves only what it announced to that peer.
    pub fn may_serve(&self, peer: PeerKey, index: u32) -> bool {
        self.mode == Mode::Suggest
            || self
                .peers
                .get(&peer)
                .is_some_and(|l| index < self.pieces && l.shown.get(index))
    }

    /// New pieces to offer the peer now: `Suggest` each (`Mode::Suggest`: to an unchoked
    /// peer, before the `Unchoke`), or announce each with `Have` (`Mode::Super`: to any
    /// peer). `contested`: other peers wait for the seed (a turn is then `TURN` pieces).
    /// Call when the peer is unchoked, asks for a block or announces a piece, and once a
    /// second; usually empty.
    pub fn offers(&mut self, peer: PeerKey, contested: bool) -> Vec<u32> {
        self.ledger(peer);
        let mut out = Vec::new();
        loop {
            let room = match self.mode {
                Mode::Suggest => {
                    let l = &self.peers[&peer];
                    let this_turn = l.turn.len() + l.offers.len();
                    l.offers.len() < OFFERS_AHEAD && (!contested || this_turn < TURN)
                }
                Mode::Super => self.super_room(peer),
            };
            if !room {
                break;
            }
            let Some((index, copies)) = self.rarest_for(peer) else {
                break;
            };
            // While others wait, a piece someone has already goes only to a peer near
            // done: the others can take it from the swarm.
            if self.mode == Mode::Suggest
                && contested
                && copies > 0
                && !self.near_done(&self.peers[&peer])
            {
                break;
            }
            let l = self.ledger(peer);
            l.offers.push(index);
            l.shown.set(index);
            self.count(index as usize, 0, 0, 1);
            out.push(index);
        }
        out
    }

    /// A super-seed offers a peer more while fewer than `SUPER_AHEAD` of the pieces it
    /// was offered or given are still to be passed on. A piece that every other peer has
    /// already cannot be passed on, and does not count.
    fn super_room(&mut self, peer: PeerKey) -> bool {
        let others = (self.peers.len() as u32).saturating_sub(1);
        let holders = &self.holders;
        let Some(l) = self.peers.get(&peer) else {
            return false;
        };
        let waiting = l
            .given
            .iter()
            .filter(|g| {
                let own = u32::from(l.has.get(g.piece) && !l.keeps);
                let held_by_others = holders[g.piece as usize].saturating_sub(own);
                !g.passed && held_by_others < others
            })
            .count();
        waiting + l.offers.len() < SUPER_AHEAD
    }

    /// The piece the peer lacks with the fewest copies (had, being given, offered), not
    /// offered or given to it before; the search starts at a random piece, so ties are
    /// broken at random, and stops at the first piece nobody has.
    fn rarest_for(&mut self, peer: PeerKey) -> Option<(u32, u32)> {
        if self.pieces == 0 {
            return None;
        }
        let start = (self.next_random() % self.pieces as u64) as u32;
        let l = self.peers.get(&peer)?;
        let mut best: Option<(u32, u32)> = None;
        for k in 0..self.pieces {
            let i = (start + k) % self.pieces;
            // A super-seed announces a piece once; a suggestion may come again in a
            // later turn (the peer may not have taken it then).
            let seen = match self.mode {
                Mode::Super => l.got.get(i) || l.shown.get(i),
                Mode::Suggest => l.offers.contains(&i) || l.turn.iter().any(|t| t.0 == i),
            };
            if l.has.get(i) || seen {
                continue;
            }
            let n = i as usize;
            let copies = self.copies(n);
            if best.is_none_or(|(_, c)| copies < c) {
                best = Some((i, copies));
                if copies == 0 {
                    break;
                }
            }
        }
        best
    }

    /// The peer's rank for a seed's slots (see the module note).
    pub fn rank(&self, peer: PeerKey) -> SeedRank {
        let Some(l) = self.peers.get(&peer) else {
            return SeedRank {
                standing: Standing::PassesOn,
                given: 0,
            };
        };
        let missing = self.pieces - l.has.count();
        let given = l.got.count();
        let in_turn = l.turn.iter().any(|&(i, _)| !l.has.get(i));
        let standing = if in_turn {
            Standing::InTurn
        } else if missing > 0 && missing * NEAR_DONE <= self.pieces {
            Standing::NearDone
        } else if !l.keeps {
            Standing::PassesOn
        } else {
            Standing::Keeps
        };
        SeedRank { standing, given }
    }

    fn next_random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }
}

/// The peer's entry, made on first use.
fn ledger(peers: &mut HashMap<PeerKey, Ledger>, pieces: u32, peer: PeerKey) -> &mut Ledger {
    peers.entry(peer).or_insert_with(|| Ledger {
        has: Bitfield::new(pieces),
        offers: Vec::new(),
        shown: Bitfield::new(pieces),
        got: Bitfield::new(pieces),
        given: Vec::new(),
        passed: 0,
        keeps: false,
        turn: Vec::new(),
    })
}

/// Blocks in piece `index`.
fn blocks_in(piece_length: u32, total_length: u64, index: u32) -> u32 {
    let start = index as u64 * piece_length as u64;
    let size = (total_length - start).min(piece_length as u64) as u32;
    size.div_ceil(crate::wire::MAX_BLOCK)
}

#[cfg(test)]
mod tests;
