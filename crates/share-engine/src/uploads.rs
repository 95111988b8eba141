//! Serving requests: whole pieces read once into a small bounded cache, blocks copied out.
//!
//! Peers ask for a piece block by block, so reading the whole piece once (one positional
//! read on the disk thread) and answering the rest from memory costs one hand-off per piece
//! instead of one per 16 KiB block (on a seed those hand-offs were a fifth of the CPU time).
//! Blocks are copied out of the cache, not sliced from it: a peer that asks for one block of
//! each of many pieces must not pin whole pieces in memory.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use share_core::picker::PeerKey;
use share_core::wire::BlockRef;
use share_storage::buf::AlignedBuf;

/// Memory for cached pieces, per torrent.
const CACHE_BUDGET: u64 = 16 << 20;
/// A torrent whose cache served nothing for this long lets it go (a daemon holds hundreds
/// of torrents, most of them idle at any moment).
pub const IDLE_AFTER: std::time::Duration = std::time::Duration::from_secs(30);

/// What to do with a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Serve {
    /// The block, from the cache.
    Now(Bytes),
    /// Not cached: read piece `index`, then [`Uploads::piece_read`] answers this request.
    Read(u32),
    /// A read of that piece is already under way; it will answer this request too.
    Wait,
}

pub struct Uploads {
    cache: HashMap<u32, AlignedBuf>,
    order: VecDeque<u32>,
    max_pieces: usize,
    pending: HashMap<u32, Vec<(PeerKey, BlockRef)>>,
    /// Buffers of evicted pieces, for the next reads (a fresh one costs a zero-fill and
    /// page faults: a third of a seed's CPU time when every read took a new one).
    spare: Vec<AlignedBuf>,
    /// When the cache was last used.
    last_use: std::time::Instant,
}

fn block(buf: &AlignedBuf, b: &BlockRef) -> Option<Bytes> {
    let start = b.begin as usize;
    let end = start.checked_add(b.length as usize)?;
    buf.as_slice().get(start..end).map(Bytes::copy_from_slice)
}

impl Uploads {
    pub fn new(piece_length: u32) -> Self {
        Uploads {
            cache: HashMap::new(),
            order: VecDeque::new(),
            max_pieces: (CACHE_BUDGET / piece_length.max(1) as u64).clamp(2, 64) as usize,
            pending: HashMap::new(),
            spare: Vec::new(),
            last_use: std::time::Instant::now(),
        }
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

    /// A buffer to read the next piece into, if one is free.
    pub fn spare_buffer(&mut self) -> Option<AlignedBuf> {
        self.spare.pop()
    }

    /// Keeps piece `index` (just verified and written: peers ask for a new piece soon after
    /// its `Have`, and the disk may not have it in its page cache). Returns the buffer of
    /// the piece evicted to make room, if any.
    pub fn insert(&mut self, index: u32, buf: AlignedBuf) -> Option<AlignedBuf> {
        self.last_use = std::time::Instant::now();
        if self.cache.insert(index, buf).is_none() {
            self.order.push_back(index);
        }
        if self.order.len() > self.max_pieces {
            let old = self.order.pop_front()?;
            return self.cache.remove(&old);
        }
        None
    }

    /// A valid request (in range, for a piece we have) from `key`.
    pub fn request(&mut self, key: PeerKey, b: BlockRef) -> Serve {
        self.last_use = std::time::Instant::now();
        if let Some(buf) = self.cache.get(&b.index) {
            if let Some(data) = block(buf, &b) {
                return Serve::Now(data);
            }
        }
        let waiting = self.pending.entry(b.index).or_default();
        waiting.push((key, b));
        if waiting.len() == 1 {
            Serve::Read(b.index)
        } else {
            Serve::Wait
        }
    }

    /// Piece `index` was read (`None`: the read failed). Returns the requests it answers,
    /// with their data (`None` where it could not be served).
    pub fn piece_read(
        &mut self,
        index: u32,
        buf: Option<AlignedBuf>,
    ) -> Vec<(PeerKey, BlockRef, Option<Bytes>)> {
        let waiting = self.pending.remove(&index).unwrap_or_default();
        let answers = waiting
            .into_iter()
            .map(|(k, b)| (k, b, buf.as_ref().and_then(|buf| block(buf, &b))))
            .collect();
        if let Some(old) = buf.and_then(|buf| self.insert(index, buf)) {
            if self.spare.len() < 4 {
                self.spare.push(old);
            }
        }
        answers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(len: usize, fill: u8) -> AlignedBuf {
        let mut b = AlignedBuf::new(len);
        b.as_mut_slice().fill(fill);
        b
    }

    #[test]
    fn one_read_answers_every_waiting_request_then_the_cache_does() {
        let mut u = Uploads::new(32768);
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
        assert_eq!(u.request(1, b0), Serve::Read(3));
        assert_eq!(u.request(2, b1), Serve::Wait);
        let answers = u.piece_read(3, Some(piece(32768, 9)));
        assert_eq!(answers.len(), 2);
        assert!(answers
            .iter()
            .all(|(_, b, d)| d.as_ref().unwrap().len() == b.length as usize));
        assert_eq!(u.request(5, b1), Serve::Now(Bytes::from(vec![9u8; 16384])));
    }

    #[test]
    fn the_cache_is_bounded_and_failed_reads_answer_nothing() {
        let mut u = Uploads::new(8 << 20); // two pieces fit the budget
        for i in 0..5 {
            let b = BlockRef {
                index: i,
                begin: 0,
                length: 10,
            };
            assert_eq!(u.request(1, b), Serve::Read(i));
            u.piece_read(i, Some(piece(100, 1)));
        }
        assert_eq!(u.cache.len(), 2);
        assert_eq!(
            u.request(
                1,
                BlockRef {
                    index: 0,
                    begin: 0,
                    length: 10
                }
            ),
            Serve::Read(0)
        );
        let answers = u.piece_read(0, None);
        assert_eq!(answers[0].2, None);
    }

    #[test]
    fn written_pieces_are_served_from_memory_and_evict_the_oldest() {
        let mut u = Uploads::new(8 << 20); // two pieces fit the budget
        assert!(u.insert(0, piece(100, 1)).is_none());
        assert!(u.insert(1, piece(100, 2)).is_none());
        let evicted = u.insert(2, piece(100, 3)).expect("the oldest comes back");
        assert_eq!(evicted.as_slice()[0], 1);
        let b = BlockRef {
            index: 2,
            begin: 0,
            length: 10,
        };
        assert_eq!(u.request(1, b), Serve::Now(Bytes::from(vec![3u8; 10])));
    }
}
