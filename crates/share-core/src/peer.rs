//! One peer's protocol state, as the torrent that holds the connection sees it: who chokes
//! whom and who is interested, the pieces the peer has, the requests we have out to it (and
//! those we withdrew), how deep our pipeline to it runs, and the counters that catch a peer
//! that abuses the protocol, with their thresholds.
//!
//! Sans-IO: the caller says what time it is and sends what it is told to. Everything that
//! needs more than one peer (the picker, the choker, the upload cache) stays with the
//! caller; a method here answers for this peer alone, and an [`Offence`] says why a peer is
//! to be closed or banned. Thresholds are counted the same way for every rule: the limit is
//! what a peer may do, one more and it is out.

use std::borrow::Cow;
use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::bitfield::Bitfield;
use crate::budget::Budget;
use crate::wire::{BlockRef, Message, MAX_BLOCK};

/// Requests out per peer: two seconds of the peer's measured rate, at least `MIN_DEPTH`, at
/// most `MAX_DEPTH`. The window must be longer than a slow peer's reply latency (Transmission
/// answers in batches every 500 ms), or the depth could never grow past what it allows.
pub const MIN_DEPTH: usize = 32;
pub const DEPTH_WINDOW_SECS: f64 = 2.0;
pub const MAX_DEPTH: usize = 2000;
/// The queue depth we assume of a peer until its extension handshake says (`reqq`).
pub const DEFAULT_REQQ: usize = 250;
/// A peer that owes us blocks and sends none for this long loses its requests to others.
pub const STALL: Duration = Duration::from_secs(20);
/// Stalls (20 s with requests out and no block) before a peer is dropped.
pub const MAX_STALLS: u32 = 3;
/// Invalid requests tolerated from one peer before it is dropped.
pub const MAX_BAD_REQUESTS: u32 = 20;
/// Requests beyond our `reqq` a peer may send (each is refused) before it is banned.
pub const MAX_EXCESS_REQUESTS: u32 = 2000;
/// Requests refused after each choke that do not count as excess: they crossed the choke
/// on the wire (a seed that hands out its slots in turns chokes often; a leecher's
/// pipeline is at most our `reqq`, 500, and rarely half of it).
pub const CROSSING_REQUESTS: u32 = 256;
/// Failed pieces a peer may have contributed to before it is banned.
pub const MAX_STRIKES: u32 = 3;
/// Bitfields (have-all, have-none) a peer may send.
pub const MAX_PIECE_SETS: u32 = 4;
/// Blocks a peer may send that we never asked of it before it is banned.
pub const MAX_UNREQUESTED: u32 = 64;
/// Extension messages taken from a peer: a burst, then a steady rate per second.
pub const EXTENDED_BURST: f64 = 200.0;
pub const EXTENDED_PER_SEC: f64 = 20.0;
/// Extension messages ignored for coming too fast before the peer is banned.
pub const MAX_IGNORED_EXTENDED: u32 = 2000;
/// Blocks we withdrew (cancel, choke, stall) remembered per peer, so that one arriving late
/// is not taken for junk.
pub const MAX_WITHDRAWN: usize = 4096;
/// Pieces a peer may allow us to fetch while it chokes us (BEP 6 allowed fast).
pub const MAX_ALLOWED_FAST: usize = 64;

/// What a peer did that ends its connection. [`Offence::bans`] says which also ban it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Offence {
    /// It stalled [`MAX_STALLS`] times with our requests out.
    #[error("stalled three times with requests out")]
    Stalled,
    /// It sent more than [`MAX_PIECE_SETS`] bitfields (have-all, have-none).
    #[error("sent its pieces over and over")]
    PieceSets,
    /// Its bitfield does not fit the torrent's piece count.
    #[error("sent a bitfield of the wrong size")]
    BadBitfield,
    /// It sent more than [`MAX_BAD_REQUESTS`] requests outside the torrent.
    #[error("sent too many invalid requests")]
    BadRequests,
    /// It sent more than [`MAX_EXCESS_REQUESTS`] requests that we refused.
    #[error("flooded requests that we do not serve")]
    ExcessRequests,
    /// It sent this many blocks that we never asked of it (more than [`MAX_UNREQUESTED`]).
    #[error("sent {0} blocks that were never requested")]
    Unrequested(u32),
    /// It sent more than [`MAX_IGNORED_EXTENDED`] extension messages too fast.
    #[error("flooded extension messages")]
    ExtendedFlood,
    /// It sent data for a piece that failed its hash check: alone, or for the
    /// [`MAX_STRIKES`]th time.
    #[error(
        "sent data for piece {index} that failed the hash check ({strikes} strike{})",
        if *.strikes == 1 { "" } else { "s" }
    )]
    BadPiece { index: u32, strikes: u32 },
}

impl Offence {
    /// Whether the peer is banned (its address and peer id refused from now on), not only
    /// disconnected. Floods and lies ban; what an honest but broken client might do closes.
    pub fn bans(self) -> bool {
        match self {
            Offence::Stalled | Offence::PieceSets | Offence::BadBitfield | Offence::BadRequests => {
                false
            }
            Offence::ExcessRequests
            | Offence::Unrequested(_)
            | Offence::ExtendedFlood
            | Offence::BadPiece { .. } => true,
        }
    }
}

/// How to answer a request from the peer that broke no rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Serve it.
    Serve,
    /// Refuse it, with a reject message (fast extension) or silently.
    Refuse { reject: bool },
}

/// The peer owed us blocks and sent none for [`STALL`].
#[derive(Debug, PartialEq, Eq)]
pub struct Stalled {
    /// Our requests to it, withdrawn: the caller gives them to others.
    pub withdrawn: Vec<BlockRef>,
    /// Set when it has stalled too often: close it.
    pub offence: Option<Offence>,
}

/// One peer's protocol state.
#[derive(Debug)]
pub struct PeerState {
    /// The pieces it has.
    pub has: Bitfield,
    /// It speaks the fast extension (BEP 6).
    pub fast: bool,
    pub am_choking: bool,
    pub am_interested: bool,
    pub peer_choking: bool,
    pub peer_interested: bool,
    /// Blocks we asked of it and wait for.
    inflight: HashSet<BlockRef>,
    /// Blocks we asked of it and then withdrew (cancelled, or choked without the fast
    /// extension): still welcome if they come, but no longer expected.
    withdrawn: HashSet<BlockRef>,
    /// Requests we keep out, at most (from its rate), and the queue it says it has.
    depth: usize,
    reqq: usize,
    /// Pieces it lets us fetch while it chokes us.
    allowed_fast: HashSet<u32>,
    received_this_tick: u64,
    received_total: u64,
    /// Bytes per second it sends us (smoothed).
    rate: f64,
    last_block: Instant,
    /// When we last became interested in it (for snubbing).
    interested_since: Instant,
    /// Abuse counters: failed pieces it sent data for, invalid requests, requests we
    /// refused, bitfields, blocks never asked for, extension messages ignored for their
    /// rate, stalls.
    strikes: u32,
    bad_requests: u32,
    excess_requests: u32,
    /// Refused requests still taken as crossing our last choke (`CROSSING_REQUESTS`).
    crossing: u32,
    piece_sets: u32,
    unrequested: u32,
    ext_budget: Budget,
    ext_ignored: u32,
    stalls: u32,
}

impl PeerState {
    /// A peer just through its handshake: choked both ways, uninterested, nothing asked.
    pub fn new(pieces: u32, fast: bool, now: Instant) -> PeerState {
        PeerState {
            has: Bitfield::new(pieces),
            fast,
            am_choking: true,
            am_interested: false,
            peer_choking: true,
            peer_interested: false,
            inflight: HashSet::new(),
            withdrawn: HashSet::new(),
            depth: MIN_DEPTH * 2,
            reqq: DEFAULT_REQQ,
            allowed_fast: HashSet::new(),
            received_this_tick: 0,
            received_total: 0,
            rate: 0.0,
            last_block: now,
            interested_since: now,
            strikes: 0,
            bad_requests: 0,
            excess_requests: 0,
            crossing: 0,
            piece_sets: 0,
            unrequested: 0,
            ext_budget: Budget::new(EXTENDED_BURST, EXTENDED_PER_SEC, now),
            ext_ignored: 0,
            stalls: 0,
        }
    }

    /// Bytes per second it sends us (smoothed over a few ticks).
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Payload bytes it has sent us that we asked for.
    pub fn received_total(&self) -> u64 {
        self.received_total
    }

    /// The requests we keep out to it at most, now.
    pub fn depth(&self) -> usize {
        self.depth.min(self.reqq)
    }

    /// The queue depth its extension handshake gives (`reqq`), within our bounds.
    pub fn set_reqq(&mut self, reqq: u32) {
        self.reqq = (reqq as usize).clamp(1, MAX_DEPTH);
    }

    /// For the choker: while we are interested, the whole seconds since it last sent a
    /// block (or since we became interested, if later).
    pub fn silent_for(&self, now: Instant) -> Option<u64> {
        self.am_interested.then(|| {
            now.saturating_duration_since(self.last_block.max(self.interested_since))
                .as_secs()
        })
    }

    /// Our interest in it: the message that says so, if it changed.
    #[must_use]
    pub fn set_interested(&mut self, wants: bool, now: Instant) -> Option<Message> {
        if wants == self.am_interested {
            return None;
        }
        self.am_interested = wants;
        if wants {
            self.interested_since = now;
            Some(Message::Interested)
        } else {
            Some(Message::NotInterested)
        }
    }

    /// Whether we choke it: the message that says so, if it changed.
    #[must_use]
    pub fn set_choking(&mut self, choke: bool) -> Option<Message> {
        if choke == self.am_choking {
            return None;
        }
        self.am_choking = choke;
        if choke {
            self.crossing = CROSSING_REQUESTS;
        }
        Some(if choke {
            Message::Choke
        } else {
            Message::Unchoke
        })
    }

    /// It choked us. Without the fast extension our requests are void: they are returned
    /// for the caller to give to others, and remembered as withdrawn (blocks already on the
    /// way may still come, and are not junk). With it, a choke voids nothing: it rejects
    /// what it will not send.
    #[must_use]
    pub fn choked(&mut self) -> Vec<BlockRef> {
        self.peer_choking = true;
        if self.fast {
            return Vec::new();
        }
        let void: Vec<BlockRef> = self.inflight.drain().collect();
        // Not through `withdraw`: this path has never applied the MAX_WITHDRAWN bound.
        self.withdrawn.extend(void.iter().copied());
        void
    }

    /// It allows us to fetch piece `index` while choked (at most [`MAX_ALLOWED_FAST`]);
    /// false if the piece is out of range or the set is full.
    pub fn allow_fast(&mut self, index: u32) -> bool {
        if index < self.has.len() && self.allowed_fast.len() < MAX_ALLOWED_FAST {
            self.allowed_fast.insert(index);
            true
        } else {
            false
        }
    }

    /// How many more requests to send it now: none while we are not interested or it
    /// chokes us (unless it allowed pieces fast), and none until a quarter of the depth is
    /// free, so requests go out in batches and not after every block.
    pub fn request_room(&self) -> usize {
        if !self.am_interested || (self.peer_choking && self.allowed_fast.is_empty()) {
            return 0;
        }
        let depth = self.depth();
        let room = depth.saturating_sub(self.inflight.len());
        if room == 0 || (!self.inflight.is_empty() && room < (depth / 4).max(1)) {
            return 0;
        }
        room
    }

    /// The pieces we may ask it for: all it has, or while it chokes us, those of them it
    /// allowed fast.
    pub fn askable(&self) -> Cow<'_, Bitfield> {
        if !self.peer_choking {
            return Cow::Borrowed(&self.has);
        }
        let mut b = Bitfield::new(self.has.len());
        for &i in &self.allowed_fast {
            if self.has.get(i) {
                b.set(i);
            }
        }
        Cow::Owned(b)
    }

    /// Whether we wait for block `b` from it.
    pub fn is_requested(&self, b: &BlockRef) -> bool {
        self.inflight.contains(b)
    }

    /// Whether we wait for no block from it.
    pub fn is_idle(&self) -> bool {
        self.inflight.is_empty()
    }

    /// The blocks we wait for from it.
    pub fn requests(&self) -> impl Iterator<Item = &BlockRef> {
        self.inflight.iter()
    }

    /// We asked it for `b`.
    pub fn requested(&mut self, b: BlockRef) {
        self.inflight.insert(b);
    }

    /// It rejected `b`: true if we were waiting for it (the caller gives it to others).
    #[must_use]
    pub fn rejected(&mut self, b: &BlockRef) -> bool {
        self.inflight.remove(b)
    }

    /// `b` came from another peer: true if we were waiting for it from this one too (the
    /// caller sends a cancel). The block stays welcome.
    #[must_use]
    pub fn cancel(&mut self, b: BlockRef) -> bool {
        if self.inflight.remove(&b) {
            self.withdraw(b);
            true
        } else {
            false
        }
    }

    /// Block `b` arrived. `Ok(true)`: we asked for it (or asked and withdrew it), and it
    /// counts. `Ok(false)`: we never asked for it, and it is dropped uncounted; more than
    /// [`MAX_UNREQUESTED`] of those is an offence.
    pub fn block_arrived(&mut self, b: &BlockRef, now: Instant) -> Result<bool, Offence> {
        if !self.inflight.remove(b) && !self.withdrawn.remove(b) {
            self.unrequested += 1;
            if self.unrequested > MAX_UNREQUESTED {
                return Err(Offence::Unrequested(self.unrequested));
            }
            return Ok(false);
        }
        self.received_this_tick += b.length as u64;
        self.received_total += b.length as u64;
        self.last_block = now;
        Ok(true)
    }

    /// A request from it. `valid`: it lies inside the torrent (a block of at most
    /// [`MAX_BLOCK`] within its piece); `can_serve`: we have the piece and room in its
    /// upload queue. Choked, or for a piece we lack, or beyond the queue we advertise: a
    /// few cross a choke on the way, thousands are a flood. Rejects are owed for a few; a
    /// flood gets none (they would only fill the queue to a peer that does not read).
    pub fn on_request(&mut self, valid: bool, can_serve: bool) -> Result<Answer, Offence> {
        if !valid {
            self.bad_requests += 1;
        } else if self.am_choking && self.crossing > 0 {
            // Sent before our choke reached it: refused, not held against it.
            self.crossing -= 1;
            return Ok(Answer::Refuse { reject: self.fast });
        } else if self.am_choking || !can_serve {
            self.excess_requests += 1;
        } else {
            return Ok(Answer::Serve);
        }
        if self.bad_requests > MAX_BAD_REQUESTS {
            Err(Offence::BadRequests)
        } else if self.excess_requests > MAX_EXCESS_REQUESTS {
            Err(Offence::ExcessRequests)
        } else {
            Ok(Answer::Refuse {
                reject: self.fast && self.excess_requests <= MAX_EXCESS_REQUESTS / 8,
            })
        }
    }

    /// It sent a bitfield (or have-all, have-none): some clients send two (aria2: have-none,
    /// then a bitfield), but each costs a pass over every piece, so more than
    /// [`MAX_PIECE_SETS`] is an offence.
    pub fn piece_set(&mut self) -> Result<(), Offence> {
        if self.piece_sets >= MAX_PIECE_SETS {
            return Err(Offence::PieceSets);
        }
        self.piece_sets += 1;
        Ok(())
    }

    /// An extension message from it: `Ok(true)` to take it, `Ok(false)` to ignore it for
    /// coming too fast; more than [`MAX_IGNORED_EXTENDED`] ignored is an offence.
    pub fn extended(&mut self, now: Instant) -> Result<bool, Offence> {
        if self.ext_budget.take(now) {
            return Ok(true);
        }
        self.ext_ignored += 1;
        if self.ext_ignored > MAX_IGNORED_EXTENDED {
            return Err(Offence::ExtendedFlood);
        }
        Ok(false)
    }

    /// Piece `index`, which it sent data for, failed its hash check: a strike. Sending all
    /// of a bad piece (`sole`), or a part of [`MAX_STRIKES`] of them, is an offence.
    pub fn failed_piece(&mut self, index: u32, sole: bool) -> Result<(), Offence> {
        self.strikes += 1;
        if sole || self.strikes >= MAX_STRIKES {
            return Err(Offence::BadPiece {
                index,
                strikes: self.strikes,
            });
        }
        Ok(())
    }

    /// Once a second: its rate (smoothed: the last second weighs 40%) and our pipeline
    /// depth from it, and whether it stalled. A peer that stalled once gets no more than its
    /// rate earns (one that sends a byte a second must not hold 32 blocks at a time); a
    /// stall leaves it one block at a time until its rate earns more.
    #[must_use]
    pub fn tick(&mut self, now: Instant) -> Option<Stalled> {
        self.rate = 0.6 * self.rate + 0.4 * self.received_this_tick as f64;
        self.received_this_tick = 0;
        let floor = if self.stalls > 0 { 1 } else { MIN_DEPTH };
        self.depth =
            ((self.rate * DEPTH_WINDOW_SECS / MAX_BLOCK as f64) as usize).clamp(floor, MAX_DEPTH);
        if self.inflight.is_empty() || now.saturating_duration_since(self.last_block) <= STALL {
            return None;
        }
        let withdrawn: Vec<BlockRef> = self.inflight.drain().collect();
        for &b in &withdrawn {
            self.withdraw(b);
        }
        self.last_block = now;
        self.stalls += 1;
        self.depth = 1;
        Some(Stalled {
            withdrawn,
            offence: (self.stalls >= MAX_STALLS).then_some(Offence::Stalled),
        })
    }

    /// A request we will not wait for any more (its block is still welcome).
    fn withdraw(&mut self, b: BlockRef) {
        if self.withdrawn.len() >= MAX_WITHDRAWN {
            self.withdrawn.clear();
        }
        self.withdrawn.insert(b);
    }
}

#[cfg(test)]
mod tests;
