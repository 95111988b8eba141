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
//! Either way each piece's SHA-1 (v1 and hybrid torrents) advances over every run of
//! consecutive blocks as it completes, while the bytes are still in cache: by the time the
//! last block lands there is little left to hash. For a v2 torrent (BEP 52) each block's
//! SHA-256 is taken as it arrives, in any order: its leaf in the file's merkle tree. A
//! complete piece's leaves hash to the piece's node, compared with the piece layer (or the
//! file's root); the leaves are kept with a failed piece, so that the block that was wrong
//! can be found (see `share_core::hashes`). A v2-only piece written through never needs
//! reading back. Memory is bounded per torrent by the picker's limit on pieces under way
//! (in-memory pieces) and by [`HOLD_BUDGET`] (the others), and per session by the
//! [`MemoryBudget`].

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use sha1::{Digest, Sha1};
use share_core::merkle::{self, Hash};
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

/// What a piece must hash to.
#[derive(Debug, Clone, Copy, Default)]
pub struct Expected {
    /// Its SHA-1 (v1 and hybrid torrents).
    pub v1: Option<[u8; 20]>,
    /// Its merkle node, and the length of the file it lies in (v2 and hybrid, once the
    /// file's piece layer is known).
    pub v2: Option<(Hash, u64)>,
}

/// A piece whose last block arrived.
pub enum Finished {
    /// Assembled in memory: the bytes, and whether they match the hash.
    Buffered {
        buf: PieceBuf,
        ok: bool,
        leaves: Option<Vec<Hash>>,
    },
    /// Written through, every byte hashed as it came: whether it matches.
    Streamed { ok: bool, leaves: Option<Vec<Hash>> },
    /// Written through; hashed up to `from`: the rest is to be read back from the disk
    /// (after the blocks queued before it are written) and hashed on. `v2_ok` is the
    /// merkle verdict, already known.
    ReadBack {
        hasher: Box<Sha1>,
        from: usize,
        v2_ok: Option<bool>,
    },
}

enum Body {
    Buffered {
        buf: PieceBuf,
        present: Vec<bool>,
    },
    /// Blocks ahead of the hash, by offset; `gap` once one of them could not be held.
    Streamed {
        held: BTreeMap<usize, Bytes>,
        gap: bool,
    },
}

struct Piece {
    hasher: Sha1,
    /// Bytes from the start of the piece already hashed (SHA-1).
    hashed: usize,
    size: usize,
    body: Body,
    /// v2: the leaf hash of each block inside the file, as they arrive; and how many of
    /// the piece's bytes lie inside the file.
    leaves: Option<(Vec<Option<Hash>>, usize)>,
}

pub struct Assembler {
    piece_length: usize,
    pieces: HashMap<u32, Piece>,
    pool: Vec<PieceBuf>,
    budget: MemoryBudget,
    /// Bytes of blocks held by pieces written through.
    held: usize,
    /// Whether pieces are checked by SHA-1 (a v1 or hybrid torrent).
    v1: bool,
}

impl Assembler {
    pub fn new(piece_length: u32, budget: MemoryBudget) -> Self {
        Assembler {
            piece_length: piece_length as usize,
            pieces: HashMap::new(),
            pool: Vec::new(),
            budget,
            held: 0,
            v1: true,
        }
    }

    /// A v2-only torrent's: no SHA-1, so nothing to hash in order.
    pub fn v2_only(mut self) -> Self {
        self.v1 = false;
        self
    }

    /// Whether this torrent's pieces are all written through (too large for memory).
    pub fn writes_through(&self) -> bool {
        self.piece_length > BUFFERED_MAX
    }

    fn start(&mut self, size: usize, v2_bytes: Option<usize>) -> Piece {
        let buffer = (size <= BUFFERED_MAX)
            .then(|| {
                let mut buf = self
                    .pool
                    .pop()
                    .or_else(|| self.budget.alloc(self.piece_length))?;
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
            leaves: v2_bytes.map(|n| (vec![None; n.div_ceil(MAX_BLOCK as usize)], n)),
        }
    }

    /// Stores a block of piece `index` (whose size is `size`) at `begin`. The caller has
    /// checked the block against the piece's bounds (the picker only accepts valid blocks,
    /// each once). `v2_bytes` (a v2 torrent's piece) is how many of the piece's bytes lie
    /// inside its file: the blocks there are leaves of the file's tree; the rest is the
    /// padding up to the next piece.
    pub fn add(
        &mut self,
        index: u32,
        size: usize,
        begin: usize,
        data: Bytes,
        v2_bytes: Option<usize>,
    ) -> Placed {
        if !self.pieces.contains_key(&index) {
            let p = self.start(size, v2_bytes);
            self.pieces.insert(index, p);
        }
        let v1 = self.v1;
        let p = self.pieces.get_mut(&index).expect("inserted above");
        if let Some((leaves, inside)) = &mut p.leaves {
            if begin < *inside {
                let end = (begin + data.len()).min(*inside);
                if let Some(slot) = leaves.get_mut(begin / MAX_BLOCK as usize) {
                    *slot = Some(merkle::sha256(&data[..end - begin]));
                }
            }
        }
        if !v1 {
            // Nothing hashed in order: the leaves are the check.
            p.hashed = p.size;
            return match &mut p.body {
                Body::Buffered { buf, .. } => {
                    buf.as_mut_slice()[begin..][..data.len()].copy_from_slice(&data);
                    Placed::Kept
                }
                Body::Streamed { .. } => Placed::WriteThrough(data),
            };
        }
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

    /// Takes the finished piece `index`, checked against what it must hash to.
    pub fn finish(&mut self, index: u32, expected: &Expected) -> Option<Finished> {
        let p = self.pieces.remove(&index)?;
        // The merkle verdict, and the leaves (kept to find a bad block).
        let (v2_ok, leaves) = match (&p.leaves, expected.v2) {
            (Some((slots, _)), Some((node, file_length))) => {
                let leaves: Option<Vec<Hash>> = slots.iter().copied().collect();
                let ok = leaves.as_ref().is_some_and(|l| {
                    merkle::piece_hash(l, file_length, self.piece_length as u32) == node
                });
                (Some(ok), leaves)
            }
            _ => (None, None),
        };
        let v1_done = !self.v1 || p.hashed == p.size;
        let v1_ok = |h: Sha1| !self.v1 || expected.v1.is_some_and(|e| h.finalize().as_slice() == e);
        let both = |v1: bool| v1 && v2_ok.unwrap_or(self.v1);
        Some(match p.body {
            Body::Buffered { buf, .. } => {
                let ok = v1_done && both(v1_ok(p.hasher));
                Finished::Buffered { buf, ok, leaves }
            }
            Body::Streamed { held, gap } => {
                self.held -= held.values().map(Bytes::len).sum::<usize>();
                if v1_done && !gap {
                    Finished::Streamed {
                        ok: both(v1_ok(p.hasher)),
                        leaves,
                    }
                } else {
                    Finished::ReadBack {
                        hasher: Box::new(p.hasher),
                        from: p.hashed,
                        v2_ok,
                    }
                }
            }
        })
    }

    /// Puts back a failed v2 piece whose bad blocks were found: its good blocks stay (in
    /// `buf` when it was assembled in memory, on disk when written through), and `leaves`
    /// holds their hashes, `None` for each block to be fetched again.
    pub fn restore(
        &mut self,
        index: u32,
        size: usize,
        buf: Option<PieceBuf>,
        leaves: Vec<Option<Hash>>,
        v2_bytes: usize,
    ) {
        let body = match buf {
            Some(buf) => Body::Buffered {
                present: leaves.iter().map(Option::is_some).collect(),
                buf,
            },
            None => Body::Streamed {
                held: BTreeMap::new(),
                gap: true,
            },
        };
        let p = Piece {
            hasher: Sha1::new(),
            hashed: size,
            size,
            body,
            leaves: Some((leaves, v2_bytes)),
        };
        self.pieces.insert(index, p);
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

    fn v1(h: [u8; 20]) -> Expected {
        Expected {
            v1: Some(h),
            v2: None,
        }
    }

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
            assert_eq!(a.add(7, size, b[n].0, b[n].1.clone(), None), Placed::Kept);
        }
        let Some(Finished::Buffered { buf, ok, .. }) = a.finish(7, &v1(expected)) else {
            panic!("assembled in memory")
        };
        assert!(ok);
        assert_eq!(buf.as_slice(), &data[..]);
        // A reused buffer with stale bytes still hashes only what was written anew.
        a.recycle(buf);
        let other = vec![5u8; MAX_BLOCK as usize];
        a.add(8, MAX_BLOCK as usize, 0, Bytes::from(other.clone()), None);
        let Some(Finished::Buffered { ok, .. }) = a.finish(8, &v1(Sha1::digest(&other).into()))
        else {
            panic!()
        };
        assert!(ok);
        assert!(a.finish(9, &v1(expected)).is_none());
    }

    #[test]
    fn a_wrong_block_fails_the_hash() {
        let mut a = Assembler::new(MAX_BLOCK, MemoryBudget::default());
        a.add(0, 10, 0, Bytes::from_static(&[1; 10]), None);
        let Some(Finished::Buffered { ok, .. }) = a.finish(0, &v1(Sha1::digest([2u8; 10]).into()))
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
            assert!(matches!(
                a.add(0, size, begin, block, None),
                Placed::WriteThrough(_)
            ));
        }
        assert_eq!(a.held, 0);
        let Some(Finished::Streamed { ok, .. }) = a.finish(0, &v1(expected)) else {
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
            a.add(0, size, i * MAX_BLOCK as usize, block.clone(), None);
            assert!(a.held <= HOLD_BUDGET);
        }
        a.add(0, size, 0, block, None);
        assert_eq!(a.held, 0, "the held blocks were let go");
        let Some(Finished::ReadBack { from, .. }) = a.finish(0, &v1([0; 20])) else {
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
            a.add(0, MAX_BLOCK as usize, 0, data.clone(), None),
            Placed::WriteThrough(_)
        ));
        let Some(Finished::Streamed { ok, .. }) = a.finish(0, &v1(Sha1::digest(&data).into()))
        else {
            panic!()
        };
        assert!(ok);
    }

    #[test]
    fn v2_blocks_are_leaves_in_any_order_and_a_bad_one_is_found() {
        // A file of 2.5 blocks in a piece of 4 blocks: the last block is short, the fourth
        // is padding (not a leaf).
        let file_len = 2 * MAX_BLOCK as usize + 5000;
        let data: Vec<u8> = (0..file_len).map(|i| (i * 13 % 251) as u8).collect();
        let node = merkle::piece_hash(&merkle::leaves(&data), file_len as u64, 4 * MAX_BLOCK);
        let expected = Expected {
            v1: None,
            v2: Some((node, file_len as u64)),
        };
        let size = 4 * MAX_BLOCK as usize;
        let mut stream = data.clone();
        stream.resize(size, 0);
        let blocks = blocks(&stream);
        for big_budget in [true, false] {
            let budget = MemoryBudget::new(if big_budget { 1 << 30 } else { 0 });
            let mut a = Assembler::new(4 * MAX_BLOCK, budget).v2_only();
            for n in [3usize, 1, 0, 2] {
                a.add(0, size, blocks[n].0, blocks[n].1.clone(), Some(file_len));
            }
            match a.finish(0, &expected).unwrap() {
                Finished::Buffered { ok, leaves, .. } | Finished::Streamed { ok, leaves } => {
                    assert!(ok, "budget {big_budget}");
                    assert_eq!(leaves.unwrap(), merkle::leaves(&data));
                }
                Finished::ReadBack { .. } => panic!("a v2-only piece is never read back"),
            }
            // One bad block: the piece fails, and its leaf tells which.
            let mut bad = blocks[1].1.to_vec();
            bad[100] ^= 1;
            for (n, blk) in blocks.iter().enumerate().take(4) {
                let b = if n == 1 {
                    Bytes::from(bad.clone())
                } else {
                    blk.1.clone()
                };
                a.add(1, size, blk.0, b, Some(file_len));
            }
            let (ok, leaves) = match a.finish(1, &expected).unwrap() {
                Finished::Buffered { ok, leaves, .. } | Finished::Streamed { ok, leaves } => {
                    (ok, leaves.unwrap())
                }
                Finished::ReadBack { .. } => panic!(),
            };
            assert!(!ok);
            let good = merkle::leaves(&data);
            let wrong: Vec<usize> = (0..3).filter(|&i| leaves[i] != good[i]).collect();
            assert_eq!(wrong, [1]);
        }
    }

    #[test]
    fn a_hybrid_piece_passes_only_when_both_hashes_agree() {
        let data = vec![9u8; MAX_BLOCK as usize];
        let node = merkle::piece_hash(&merkle::leaves(&data), data.len() as u64, MAX_BLOCK);
        let sha1: [u8; 20] = Sha1::digest(&data).into();
        for (v1_hash, v2_node, want) in [
            (sha1, node, true),
            ([0; 20], node, false),
            (sha1, [0; 32], false),
        ] {
            let mut a = Assembler::new(MAX_BLOCK, MemoryBudget::default());
            a.add(
                0,
                data.len(),
                0,
                Bytes::from(data.clone()),
                Some(data.len()),
            );
            let e = Expected {
                v1: Some(v1_hash),
                v2: Some((v2_node, data.len() as u64)),
            };
            let Some(Finished::Buffered { ok, .. }) = a.finish(0, &e) else {
                panic!()
            };
            assert_eq!(ok, want);
        }
    }
}
