//! Serving requests: pieces (or, for large pieces, 1 MiB units of them) read once into a
//! small bounded cache, blocks copied out.
//!
//! Peers ask for a piece block by block, so reading the whole piece once (one positional
//! read on the disk thread) and answering the rest from memory costs one hand-off per piece
//! instead of one per 16 KiB block (on a seed those hand-offs were a fifth of the CPU time).
//! A piece larger than [`crate::assembly::BUFFERED_MAX`] is read a [`READ_UNIT`] at a time,
//! so the cache stays small whatever the piece size. Blocks are copied out of the cache,
//! not sliced from it: a peer that asks for one block of each of many pieces must not pin
//! whole pieces in memory. Cached buffers count against the session's memory budget; when
//! it is spent, a unit is read, answers its requests, and is let go.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use share_core::picker::PeerKey;
use share_core::wire::BlockRef;

use crate::memory::{MemoryBudget, PieceBuf};

/// Memory for cached units, per torrent.
const CACHE_BUDGET: u64 = 16 << 20;
/// What a large piece is read in.
pub const READ_UNIT: u32 = 1 << 20;
/// A torrent whose cache served nothing for this long lets it go (a daemon holds hundreds
/// of torrents, most of them idle at any moment).
pub const IDLE_AFTER: std::time::Duration = std::time::Duration::from_secs(30);

/// A unit of the cache: a piece, and which of its [`Uploads::unit`]-sized parts.
pub type Unit = (u32, u32);

/// What to do with a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Serve {
    /// The block, from the cache.
    Now(Bytes),
    /// Not cached: read this unit, then [`Uploads::unit_read`] answers this request.
    Read(Unit),
    /// A read of that unit is already under way; it will answer this request too.
    Wait,
}

pub struct Uploads {
    /// Bytes per unit: the piece length, or [`READ_UNIT`] for large pieces.
    unit: u32,
    cache: HashMap<Unit, PieceBuf>,
    order: VecDeque<Unit>,
    max_units: usize,
    pending: HashMap<Unit, Vec<(PeerKey, BlockRef)>>,
    /// Buffers of evicted units, for the next reads (a fresh one costs a zero-fill and
    /// page faults: a third of a seed's CPU time when every read took a new one).
    spare: Vec<PieceBuf>,
    budget: MemoryBudget,
    /// When the cache was last used.
    last_use: std::time::Instant,
}

impl Uploads {
    pub fn new(piece_length: u32, budget: MemoryBudget) -> Self {
        let unit = if piece_length as usize > crate::assembly::BUFFERED_MAX {
            READ_UNIT
        } else {
            piece_length.max(1)
        };
        Uploads {
            unit,
            cache: HashMap::new(),
            order: VecDeque::new(),
            max_units: (CACHE_BUDGET / unit as u64).clamp(2, 64) as usize,
            pending: HashMap::new(),
            spare: Vec::new(),
            budget,
            last_use: std::time::Instant::now(),
        }
    }

    /// Bytes per unit.
    pub fn unit(&self) -> u32 {
        self.unit
    }

    /// Where `b` lies, and its offset inside that unit.
    fn locate(&self, b: &BlockRef) -> (Unit, usize) {
        (
            (b.index, b.begin / self.unit),
            (b.begin % self.unit) as usize,
        )
    }

    fn block(&self, buf: &PieceBuf, b: &BlockRef) -> Option<Bytes> {
        let (_, start) = self.locate(b);
        let end = start.checked_add(b.length as usize)?;
        buf.as_slice().get(start..end).map(Bytes::copy_from_slice)
    }

    /// Empties the cache if it has not been used for [`IDLE_AFTER`] (reads under way are
    /// kept). True if it freed anything.
    pub fn trim_idle(&mut self, now: std::time::Instant) -> bool {
        if now.duration_since(self.last_use) < IDLE_AFTER
            || (self.cache.is_empty() && self.spare.is_empty())
        {
            return false;
        }
        self.cache = HashMap::new();
        self.order = VecDeque::new();
        self.spare = Vec::new();
        true
    }

    /// A buffer of `len` bytes to read the next unit into: a spare one, or a new one from
    /// the budget, or one outside it (not kept after its requests are answered).
    pub fn read_buffer(&mut self, len: usize) -> PieceBuf {
        let mut buf = self
            .spare
            .pop()
            .or_else(|| self.budget.alloc(self.unit as usize))
            .unwrap_or_else(|| PieceBuf::uncharged(len));
        if !buf.set_len(len) {
            buf = PieceBuf::uncharged(len);
        }
        buf
    }

    /// Keeps piece `index` (just verified and written whole: peers ask for a new piece soon
    /// after its `Have`, and the disk may not have it in its page cache). Returns the buffer
    /// of the unit evicted to make room, if any.
    pub fn insert(&mut self, index: u32, buf: PieceBuf) -> Option<PieceBuf> {
        self.keep((index, 0), buf)
    }

    fn keep(&mut self, unit: Unit, buf: PieceBuf) -> Option<PieceBuf> {
        self.last_use = std::time::Instant::now();
        if !buf.charged() {
            return Some(buf);
        }
        if self.cache.insert(unit, buf).is_none() {
            self.order.push_back(unit);
        }
        if self.order.len() > self.max_units {
            let old = self.order.pop_front()?;
            return self.cache.remove(&old);
        }
        None
    }

    /// A valid request (in range, for a piece we have) from `key`.
    pub fn request(&mut self, key: PeerKey, b: BlockRef) -> Serve {
        self.last_use = std::time::Instant::now();
        let (unit, _) = self.locate(&b);
        if let Some(buf) = self.cache.get(&unit) {
            if let Some(data) = self.block(buf, &b) {
                return Serve::Now(data);
            }
        }
        let waiting = self.pending.entry(unit).or_default();
        waiting.push((key, b));
        if waiting.len() == 1 {
            Serve::Read(unit)
        } else {
            Serve::Wait
        }
    }

    /// A unit was read (`None`: the read failed). Returns the requests it answers, with
    /// their data (`None` where it could not be served).
    pub fn unit_read(
        &mut self,
        unit: Unit,
        buf: Option<PieceBuf>,
    ) -> Vec<(PeerKey, BlockRef, Option<Bytes>)> {
        let waiting = self.pending.remove(&unit).unwrap_or_default();
        let answers = waiting
            .into_iter()
            .map(|(k, b)| (k, b, buf.as_ref().and_then(|buf| self.block(buf, &b))))
            .collect();
        if let Some(old) = buf.and_then(|buf| self.keep(unit, buf)) {
            if self.spare.len() < 4 && old.charged() {
                self.spare.push(old);
            }
        }
        answers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(len: usize, fill: u8) -> PieceBuf {
        let mut b = MemoryBudget::default().alloc(len).unwrap();
        b.as_mut_slice().fill(fill);
        b
    }

    #[test]
    fn one_read_answers_every_waiting_request_then_the_cache_does() {
        let mut u = Uploads::new(32768, MemoryBudget::default());
        let b0 = BlockRef {
            index: 3,
            begin: 0,
            length: 16384,
        };
        let b1 = BlockRef {
            index: 3,
            begin: 16384,
            length: 16384,
        };
        assert_eq!(u.request(1, b0), Serve::Read((3, 0)));
        assert_eq!(u.request(2, b1), Serve::Wait);
        let answers = u.unit_read((3, 0), Some(piece(32768, 9)));
        assert_eq!(answers.len(), 2);
        assert!(answers
            .iter()
            .all(|(_, b, d)| d.as_ref().unwrap().len() == b.length as usize));
        assert_eq!(u.request(5, b1), Serve::Now(Bytes::from(vec![9u8; 16384])));
    }

    #[test]
    fn the_cache_is_bounded_and_failed_reads_answer_nothing() {
        let mut u = Uploads::new(4 << 20, MemoryBudget::default()); // four pieces of 4 MiB fit the budget
        for i in 0..5 {
            let b = BlockRef {
                index: i,
                begin: 0,
                length: 10,
            };
            assert_eq!(u.request(1, b), Serve::Read((i, 0)));
            u.unit_read((i, 0), Some(piece(100, 1)));
        }
        assert_eq!(u.cache.len(), 4);
        assert_eq!(
            u.request(
                1,
                BlockRef {
                    index: 0,
                    begin: 0,
                    length: 10
                }
            ),
            Serve::Read((0, 0))
        );
        let answers = u.unit_read((0, 0), None);
        assert_eq!(answers[0].2, None);
    }

    #[test]
    fn written_pieces_are_served_from_memory_and_evict_the_oldest() {
        let mut u = Uploads::new(4 << 20, MemoryBudget::default()); // four pieces of 4 MiB fit the budget
        for i in 0..4 {
            assert!(u.insert(i, piece(100, i as u8 + 1)).is_none());
        }
        let evicted = u.insert(4, piece(100, 9)).expect("the oldest comes back");
        assert_eq!(evicted.as_slice()[0], 1);
        let b = BlockRef {
            index: 4,
            begin: 0,
            length: 10,
        };
        assert_eq!(u.request(1, b), Serve::Now(Bytes::from(vec![9u8; 10])));
    }

    #[test]
    fn large_pieces_are_read_a_unit_at_a_time() {
        let mut u = Uploads::new(256 << 20, MemoryBudget::default());
        assert_eq!(u.unit(), READ_UNIT);
        let b = BlockRef {
            index: 2,
            begin: 3 * READ_UNIT + 16384,
            length: 16384,
        };
        assert_eq!(u.request(1, b), Serve::Read((2, 3)));
        let mut buf = u.read_buffer(READ_UNIT as usize);
        assert_eq!(buf.len(), READ_UNIT as usize);
        buf.as_mut_slice()[16384..32768].fill(7);
        let answers = u.unit_read((2, 3), Some(buf));
        assert_eq!(answers[0].2.as_deref(), Some(&[7u8; 16384][..]));
    }

    #[test]
    fn with_the_budget_spent_reads_still_answer_and_nothing_is_kept() {
        let mut u = Uploads::new(32768, MemoryBudget::new(0));
        let b = BlockRef {
            index: 0,
            begin: 0,
            length: 10,
        };
        assert_eq!(u.request(1, b), Serve::Read((0, 0)));
        let buf = u.read_buffer(32768);
        assert!(!buf.charged());
        assert!(u.unit_read((0, 0), Some(buf))[0].2.is_some());
        assert!(u.cache.is_empty());
    }
}
