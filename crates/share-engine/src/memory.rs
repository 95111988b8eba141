//! The session's budget of bytes held in piece buffers: pieces being assembled, pieces on
//! their way to the disk, and the upload cache of every torrent together.
//!
//! Each buffer carries its charge ([`PieceBuf`]): wherever it goes (a disk job, the cache,
//! a pool of spare buffers) the bytes count until it is dropped, so the total is exact
//! without bookkeeping at each hand-off. When the budget is spent, a torrent assembles new
//! pieces by writing their blocks through to the disk (see `assembly.rs`) and reads for
//! uploads go uncached.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use share_storage::buf::AlignedBuf;

/// Bytes of piece buffers a session holds at most, by default.
pub const SESSION_BUDGET: u64 = 256 << 20;

#[derive(Debug, Clone)]
pub struct MemoryBudget {
    used: Arc<AtomicU64>,
    cap: u64,
}

impl MemoryBudget {
    pub fn new(cap: u64) -> Self {
        MemoryBudget {
            used: Arc::new(AtomicU64::new(0)),
            cap,
        }
    }

    /// Bytes held now.
    #[cfg(test)]
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// A zeroed page-aligned buffer of `len` bytes, if the budget has room for it.
    pub fn alloc(&self, len: usize) -> Option<PieceBuf> {
        let charge = len.div_ceil(4096) as u64 * 4096;
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                (u + charge <= self.cap).then_some(u + charge)
            })
            .ok()?;
        Some(PieceBuf {
            buf: AlignedBuf::new(len),
            charge,
            used: self.used.clone(),
        })
    }
}

impl Default for MemoryBudget {
    fn default() -> Self {
        MemoryBudget::new(SESSION_BUDGET)
    }
}

impl PieceBuf {
    /// A buffer outside any budget (a read that must happen when the budget is spent: it
    /// lives only until its requests are answered).
    pub fn uncharged(len: usize) -> PieceBuf {
        PieceBuf {
            buf: AlignedBuf::new(len),
            charge: 0,
            used: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Whether it counts against a budget.
    pub fn charged(&self) -> bool {
        self.charge > 0
    }
}

/// A buffer whose bytes count against a [`MemoryBudget`] until it is dropped.
pub struct PieceBuf {
    buf: AlignedBuf,
    charge: u64,
    used: Arc<AtomicU64>,
}

impl Deref for PieceBuf {
    type Target = AlignedBuf;
    fn deref(&self) -> &AlignedBuf {
        &self.buf
    }
}

impl DerefMut for PieceBuf {
    fn deref_mut(&mut self) -> &mut AlignedBuf {
        &mut self.buf
    }
}

impl Drop for PieceBuf {
    fn drop(&mut self) {
        self.used.fetch_sub(self.charge, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_count_until_dropped_and_the_cap_holds() {
        let b = MemoryBudget::new(3 * 4096);
        let x = b.alloc(4000).unwrap();
        let y = b.alloc(8192).unwrap();
        assert_eq!(b.used(), 3 * 4096);
        assert!(b.alloc(1).is_none());
        drop(x);
        assert!(b.alloc(4096).is_some(), "room again once one is dropped");
        drop(y);
        assert_eq!(b.used(), 0);
    }
}
