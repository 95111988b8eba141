//! Pieces being assembled from blocks, hashed while their blocks arrive.
//!
//! A piece is assembled one of two ways:
//! - **In memory** (pieces up to [`BUFFERED_MAX`], while the session's memory budget has
//!   room): its blocks are copied into one page-aligned buffer, which goes to the disk whole
//!   once the piece is verified. A bad piece never touches the disk; a good one is written
//!   once (directly, see `share_storage::store`) and kept for uploads.
//! - **Through to the disk** (larger pieces: 16 to 256 MiB pieces exist in the wild; or
//!   when the budget is spent): each block goes to the disk as it arrives. The piece's hash
//!   advances over the blocks that arrive in order; blocks that arrive ahead of it are held
//!   (copied, so that they do not pin a connection's read buffer) up to [`HOLD_BUDGET`] per
//!   torrent; past that they are only on disk, and once the piece is complete the rest of
//!   it is hashed back from the disk. A bad piece's bytes are on disk then, to be
//!   overwritten by the next try (resume data never vouches for them).
//!
//! Either way each piece's SHA-1 advances over every run of consecutive blocks as it
//! completes, while the bytes are still in cache: by the time the last block lands there is
//! little left to hash. Memory is bounded per torrent by the picker's limit on pieces under
//! way (in-memory pieces) and by [`HOLD_BUDGET`] (the others), and per session by the
//! [`MemoryBudget`].

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use sha1::{Digest, Sha1};
use share_core::wire::MAX_BLOCK;

use crate::memory::{MemoryBudget, PieceBuf};

/// Largest piece assembled in memory.
pub const BUFFERED_MAX: usize = 4 << 20;
/// Bytes of out-of-order blocks held per torrent for pieces written through.
pub const HOLD_BUDGET: usize = 8 << 20;
/// Buffers kept for reuse at most.
const POOL_MAX: usize = 16;

/// What to do with a block just added.
#[derive(Debug, PartialEq, Eq)]
pub enum Placed {
    /// It is in the piece's buffer.
    Kept,
    /// Write it to the disk now (its piece is assembled there).
    WriteThrough(Bytes),
}

/// A piece whose last block arrived.
pub enum Finished {
    /// Assembled in memory: the bytes, and whether they match the hash.
    Buffered { buf: PieceBuf, ok: bool },
    /// Written through, every byte hashed as it came: whether it matches.
    Streamed { ok: bool },
    /// Written through; hashed up to `from`: the rest is to be read back from the disk
    /// (after the blocks queued before it are written) and hashed on.
    ReadBack { hasher: Box<Sha1>, from: usize },
}

enum Body {
    Buffered { buf: PieceBuf, present: Vec<bool> },
    /// Blocks ahead of the hash, by offset; `gap` once one of them could not be held.
    Streamed { held: BTreeMap<usize, Bytes>, gap: bool },
}

struct Piece {
    hasher: Sha1,
    /// Bytes from the start of the piece already hashed.
    hashed: usize,
    size: usize,
    body: Body,
}

pub struct Assembler {
    piece_length: usize,
    pieces: HashMap<u32, Piece>,
    pool: Vec<PieceBuf>,
    budget: MemoryBudget,
    /// Bytes of blocks held by pieces written through.
    held: usize,
}

impl Assembler {
    pub fn new(piece_length: u32, budget: MemoryBudget) -> Self {
        Assembler {
            piece_length: piece_length as usize,
            pieces: HashMap::new(),
            pool: Vec::new(),
            budget,
            held: 0,
        }
    }

    /// Whether this torrent's pieces are all written through (too large for memory).
    pub fn writes_through(&self) -> bool {
        self.piece_length > BUFFERED_MAX
    }

    fn start(&mut self, size: usize) -> Piece {
        let buffer = (size <= BUFFERED_MAX)
            .then(|| {
                let mut buf = self.pool.pop().or_else(|| self.budget.alloc(self.piece_length))?;
                buf.set_len(size).then_some(buf)
            })
            .flatten();
        let body = match buffer {
            Some(buf) => Body::Buffered {
                buf,
                present: vec![false; size.div_ceil(MAX_BLOCK as usize)],
            },
            None => Body::Streamed {
                held: BTreeMap::new(),
                gap: false,
            },
        };
        Piece {
            hasher: Sha1::new(),
            hashed: 0,
            size,
            body,
        }
    }

    /// Stores a block of piece `index` (whose size is `size`) at `begin`. The caller has
    /// checked the block against the piece's bounds (the picker only accepts valid blocks,
    /// each once).
    pub fn add(&mut self, index: u32, size: usize, begin: usize, data: Bytes) -> Placed {
        if !self.pieces.contains_key(&index) {
            let p = self.start(size);
            self.pieces.insert(index, p);
        }
        let p = self.pieces.get_mut(&index).expect("inserted above");
        match &mut p.body {
            Body::Buffered { buf, present } => {
                buf.as_mut_slice()[begin..][..data.len()].copy_from_slice(&data);
                present[begin / MAX_BLOCK as usize] = true;
                while p.hashed < p.size && present[p.hashed / MAX_BLOCK as usize] {
                    let end = (p.hashed + MAX_BLOCK as usize).min(p.size);
                    p.hasher.update(&buf.as_slice()[p.hashed..end]);
                    p.hashed = end;
                }
                Placed::Kept
            }
            Body::Streamed { held, gap } => {
                if begin == p.hashed && !*gap {
                    p.hasher.update(&data);
                    p.hashed += data.len();
                    while let Some(next) = held.remove(&p.hashed) {
                        self.held -= next.len();
                        p.hasher.update(&next);
                        p.hashed += next.len();
                    }
                } else if !*gap && self.held + data.len() <= HOLD_BUDGET {
                    self.held += data.len();
                    held.insert(begin, Bytes::copy_from_slice(&data));
                } else {
                    // From here on the rest of the piece is hashed from the disk.
                    *gap = true;
                    self.held -= held.values().map(Bytes::len).sum::<usize>();
                    held.clear();
                }
                Placed::WriteThrough(data)
            }
        }
    }

    /// Takes the finished piece `index`; `expected` is its SHA-1.
    pub fn finish(&mut self, index: u32, expected: &[u8; 20]) -> Option<Finished> {
        let p = self.pieces.remove(&index)?;
        Some(match p.body {
            Body::Buffered { buf, .. } => {
                let ok = p.hashed == p.size && p.hasher.finalize().as_slice() == expected;
                Finished::Buffered { buf, ok }
            }
            Body::Streamed { held, gap } => {
                self.held -= held.values().map(Bytes::len).sum::<usize>();
                if p.hashed == p.size && !gap {
                    Finished::Streamed {
                        ok: p.hasher.finalize().as_slice() == expected,
                    }
                } else {
                    Finished::ReadBack {
                        hasher: Box::new(p.hasher),
                        from: p.hashed,
                    }
                }
            }
        })
    }

    /// Frees the spare buffers (a torrent with nothing left to fetch needs none).
    pub fn release(&mut self) {
        self.pool = Vec::new();
    }

    /// Gives a buffer back for reuse.
    pub fn recycle(&mut self, buf: PieceBuf) {
        if self.pool.len() < POOL_MAX && buf.capacity() >= self.piece_length {
            self.pool.push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks(data: &[u8]) -> Vec<(usize, Bytes)> {
        data.chunks(MAX_BLOCK as usize)
            .enumerate()
            .map(|(i, c)| (i * MAX_BLOCK as usize, Bytes::copy_from_slice(c)))
            .collect()
    }

    #[test]
    fn blocks_in_any_order_give_the_piece_and_its_hash() {
        let size = 3 * MAX_BLOCK as usize + 100;
        let data: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
        let expected: [u8; 20] = Sha1::digest(&data).into();
        let mut a = Assembler::new(4 * MAX_BLOCK, MemoryBudget::default());
        let b = blocks(&data);
        for n in [2usize, 0, 3, 1] {
            assert_eq!(a.add(7, size, b[n].0, b[n].1.clone()), Placed::Kept);
        }
        let Some(Finished::Buffered { buf, ok }) = a.finish(7, &expected) else {
            panic!("assembled in memory")
        };
        assert!(ok);
        assert_eq!(buf.as_slice(), &data[..]);
        // A reused buffer with stale bytes still hashes only what was written anew.
        a.recycle(buf);
        let other = vec![5u8; MAX_BLOCK as usize];
        a.add(8, MAX_BLOCK as usize, 0, Bytes::from(other.clone()));
        let Some(Finished::Buffered { ok, .. }) = a.finish(8, &Sha1::digest(&other).into())
        else {
            panic!()
        };
        assert!(ok);
        assert!(a.finish(9, &expected).is_none());
    }

    #[test]
    fn a_wrong_block_fails_the_hash() {
        let mut a = Assembler::new(MAX_BLOCK, MemoryBudget::default());
        a.add(0, 10, 0, Bytes::from_static(&[1; 10]));
        let Some(Finished::Buffered { ok, .. }) = a.finish(0, &Sha1::digest([2u8; 10]).into())
        else {
            panic!()
        };
        assert!(!ok);
    }

    #[test]
    fn large_pieces_go_through_to_disk_and_hash_in_order_with_held_blocks() {
        let size = 8 << 20;
        let data: Vec<u8> = (0..size).map(|i| (i * 7 % 253) as u8).collect();
        let expected: [u8; 20] = Sha1::digest(&data).into();
        let mut a = Assembler::new(size as u32, MemoryBudget::default());
        assert!(a.writes_through());
        let mut b = blocks(&data);
        // Pairs swapped: every other block arrives ahead of the hash and is held.
        for pair in b.chunks_mut(2) {
            pair.reverse();
        }
        for (begin, block) in b {
            assert!(matches!(a.add(0, size, begin, block), Placed::WriteThrough(_)));
        }
        assert_eq!(a.held, 0);
        let Some(Finished::Streamed { ok }) = a.finish(0, &expected) else {
            panic!("hashed as it came")
        };
        assert!(ok);
    }

    #[test]
    fn past_the_hold_budget_the_rest_is_hashed_from_the_disk() {
        let size = 16 << 20;
        let mut a = Assembler::new(size as u32, MemoryBudget::default());
        let block = Bytes::from(vec![1u8; MAX_BLOCK as usize]);
        // The first block comes last: everything else is ahead of the hash.
        for i in 1..size / MAX_BLOCK as usize {
            a.add(0, size, i * MAX_BLOCK as usize, block.clone());
            assert!(a.held <= HOLD_BUDGET);
        }
        a.add(0, size, 0, block);
        assert_eq!(a.held, 0, "the held blocks were let go");
        let Some(Finished::ReadBack { from, .. }) = a.finish(0, &[0; 20]) else {
            panic!("read back from the disk")
        };
        assert_eq!(from, 0);
        assert_eq!(a.held, 0);
    }

    #[test]
    fn with_the_session_budget_spent_small_pieces_go_through_too() {
        let mut a = Assembler::new(MAX_BLOCK, MemoryBudget::new(0));
        let data = Bytes::from(vec![3u8; MAX_BLOCK as usize]);
        assert!(matches!(
            a.add(0, MAX_BLOCK as usize, 0, data.clone()),
            Placed::WriteThrough(_)
        ));
        let Some(Finished::Streamed { ok }) = a.finish(0, &Sha1::digest(&data).into()) else {
            panic!()
        };
        assert!(ok);
    }
}
