//! Pieces being assembled from blocks in memory, hashed while their blocks arrive.
//!
//! Blocks mostly arrive in order, so each piece's SHA-1 is advanced over every run of
//! consecutive blocks as it completes, while the bytes are still in cache; by the time the
//! last block lands there is little left to hash. Buffers of finished pieces come back from
//! the disk thread and are reused, which spares a zeroed allocation (and its page faults)
//! per piece. Memory is bounded by the picker's limit on pieces under way.

use std::collections::HashMap;

use sha1::{Digest, Sha1};
use share_core::wire::MAX_BLOCK;
use share_storage::buf::AlignedBuf;

/// Buffers kept for reuse at most.
const POOL_MAX: usize = 64;

struct Piece {
    buf: AlignedBuf,
    hasher: Sha1,
    /// Bytes from the start of the piece already hashed.
    hashed: usize,
    present: Vec<bool>,
}

pub struct Assembler {
    piece_length: usize,
    pieces: HashMap<u32, Piece>,
    pool: Vec<AlignedBuf>,
}

impl Assembler {
    pub fn new(piece_length: u32) -> Self {
        Assembler {
            piece_length: piece_length as usize,
            pieces: HashMap::new(),
            pool: Vec::new(),
        }
    }

    /// Stores a block of piece `index` (whose size is `size`) at `begin`. The caller has
    /// checked the block against the piece's bounds (the picker only accepts valid blocks).
    pub fn add(&mut self, index: u32, size: usize, begin: usize, data: &[u8]) {
        let pool = &mut self.pool;
        let piece_length = self.piece_length;
        let p = self.pieces.entry(index).or_insert_with(|| {
            let mut buf = pool.pop().unwrap_or_else(|| AlignedBuf::new(piece_length));
            if !buf.set_len(size) {
                buf = AlignedBuf::new(size);
            }
            Piece {
                buf,
                hasher: Sha1::new(),
                hashed: 0,
                present: vec![false; size.div_ceil(MAX_BLOCK as usize)],
            }
        });
        p.buf.as_mut_slice()[begin..][..data.len()].copy_from_slice(data);
        p.present[begin / MAX_BLOCK as usize] = true;
        while p.hashed < size && p.present[p.hashed / MAX_BLOCK as usize] {
            let end = (p.hashed + MAX_BLOCK as usize).min(size);
            p.hasher.update(&p.buf.as_slice()[p.hashed..end]);
            p.hashed = end;
        }
    }

    /// Takes the finished piece `index`: its bytes, and whether they match `expected`.
    pub fn finish(&mut self, index: u32, expected: &[u8; 20]) -> Option<(AlignedBuf, bool)> {
        let p = self.pieces.remove(&index)?;
        let complete = p.hashed == p.buf.len();
        let ok = complete && p.hasher.finalize().as_slice() == expected;
        Some((p.buf, ok))
    }

    /// Frees the spare buffers (a torrent with nothing left to fetch needs none).
    pub fn release(&mut self) {
        self.pool = Vec::new();
    }

    /// Gives a buffer back for reuse.
    pub fn recycle(&mut self, buf: AlignedBuf) {
        if self.pool.len() < POOL_MAX && buf.capacity() >= self.piece_length {
            self.pool.push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_in_any_order_give_the_piece_and_its_hash() {
        let size = 3 * MAX_BLOCK as usize + 100;
        let data: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
        let expected: [u8; 20] = Sha1::digest(&data).into();
        let mut a = Assembler::new(4 * MAX_BLOCK);
        for n in [2usize, 0, 3, 1] {
            let begin = n * MAX_BLOCK as usize;
            let end = (begin + MAX_BLOCK as usize).min(size);
            a.add(7, size, begin, &data[begin..end]);
        }
        let (buf, ok) = a.finish(7, &expected).unwrap();
        assert!(ok);
        assert_eq!(buf.as_slice(), &data[..]);
        // A reused buffer with stale bytes still hashes only what was written anew.
        a.recycle(buf);
        let other = vec![5u8; MAX_BLOCK as usize];
        a.add(8, MAX_BLOCK as usize, 0, &other);
        let (_, ok) = a.finish(8, &Sha1::digest(&other).into()).unwrap();
        assert!(ok);
        assert!(a.finish(9, &expected).is_none());
    }

    #[test]
    fn a_wrong_block_fails_the_hash() {
        let mut a = Assembler::new(MAX_BLOCK);
        a.add(0, 10, 0, &[1; 10]);
        let (_, ok) = a.finish(0, &Sha1::digest([2u8; 10]).into()).unwrap();
        assert!(!ok);
    }
}
