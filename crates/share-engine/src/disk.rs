//! The disk thread: the only owner of the torrent's files during a transfer.
//!
//! Jobs run in the order they were queued, which the torrent task relies on: a piece's
//! blocks written through (see `assembly.rs`) are on disk before the job that reports the
//! piece stored, or that hashes its rest back from the disk. A piece assembled in memory
//! arrives whole and already verified and is written with one positional write; its buffer
//! comes back for the upload cache. Reads for uploads fill a unit (a piece, or a part of a
//! large one) at a time.

use bytes::Bytes;
use sha1::{Digest, Sha1};
use share_storage::store::Store;
use tokio::sync::mpsc;

use crate::memory::PieceBuf;
use crate::uploads::Unit;

/// Bytes read at a time when a piece is hashed back from the disk.
const HASH_READ: usize = 1 << 20;

pub enum Job {
    /// Write verified piece `index` at `offset`; the buffer comes back with `Done::Written`.
    Piece {
        index: u32,
        offset: u64,
        data: PieceBuf,
    },
    /// Write a block of a piece being assembled on disk.
    Block { offset: u64, data: Bytes },
    /// Every block of verified piece `index` is queued before this: answer `Done::Stored`.
    Stored { index: u32 },
    /// Piece `index` (`len` bytes at `offset`) is on disk, hashed up to `from` by `hasher`:
    /// hash the rest from the disk and compare with `expected` (`Done::Checked`).
    HashRest {
        index: u32,
        offset: u64,
        len: usize,
        from: usize,
        hasher: Box<Sha1>,
        expected: [u8; 20],
        /// The piece's merkle verdict (a hybrid), known already: both must hold.
        v2_ok: Option<bool>,
    },
    /// The leaf hashes (SHA-256 of each 16 KiB block) of `len` bytes at `offset`: one v2
    /// piece's blocks inside its file, for a peer's hash request.
    Leaves {
        key: u64,
        range: share_core::wire::HashRange,
        piece: u32,
        offset: u64,
        len: usize,
    },
    /// Read `buf.len()` bytes at `offset` for uploads (a unit of the cache).
    Read {
        unit: Unit,
        offset: u64,
        buf: PieceBuf,
    },
    Sync,
}

pub enum Done {
    Written {
        index: u32,
        buf: PieceBuf,
    },
    Stored {
        index: u32,
    },
    Checked {
        index: u32,
        ok: bool,
    },
    /// The leaves asked for (`None` if the read failed).
    Leaves {
        key: u64,
        range: share_core::wire::HashRange,
        piece: u32,
        leaves: Option<Vec<share_core::merkle::Hash>>,
    },
    /// A unit read for uploads (`None` if the read failed).
    Read {
        unit: Unit,
        data: Option<PieceBuf>,
    },
    Failed(String),
    Synced,
}

/// The rest of a piece, hashed from the disk: whether the whole matches `expected`. A read
/// error makes it a failed piece (fetched again), not a failed torrent.
fn hash_rest(
    store: &mut Store,
    offset: u64,
    len: usize,
    from: usize,
    mut hasher: Sha1,
    expected: &[u8; 20],
) -> bool {
    let mut buf = vec![0u8; HASH_READ.min(len - from.min(len))];
    let mut at = from;
    while at < len {
        let n = (len - at).min(HASH_READ);
        if store.read(offset + at as u64, &mut buf[..n]).is_err() {
            return false;
        }
        hasher.update(&buf[..n]);
        at += n;
    }
    hasher.finalize().as_slice() == expected
}

/// Starts the disk thread. It ends when `jobs` closes.
pub fn spawn(
    store: Store,
    mut jobs: mpsc::Receiver<Job>,
    done: mpsc::UnboundedSender<Done>,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("share-disk".into())
        .spawn(move || {
            let mut store = store;
            while let Some(job) = jobs.blocking_recv() {
                let result = match job {
                    Job::Piece {
                        index,
                        offset,
                        data,
                    } => store
                        .write(offset, data.as_slice())
                        .map(|()| Some(Done::Written { index, buf: data })),
                    Job::Block { offset, data } => store.write(offset, &data).map(|()| None),
                    Job::Stored { index } => Ok(Some(Done::Stored { index })),
                    Job::HashRest {
                        index,
                        offset,
                        len,
                        from,
                        hasher,
                        expected,
                        v2_ok,
                    } => {
                        let ok = v2_ok.unwrap_or(true)
                            && hash_rest(&mut store, offset, len, from, *hasher, &expected);
                        Ok(Some(Done::Checked { index, ok }))
                    }
                    Job::Leaves {
                        key,
                        range,
                        piece,
                        offset,
                        len,
                    } => {
                        let mut buf = vec![0u8; len];
                        let leaves = store
                            .read(offset, &mut buf)
                            .is_ok()
                            .then(|| share_core::merkle::leaves(&buf));
                        Ok(Some(Done::Leaves {
                            key,
                            range,
                            piece,
                            leaves,
                        }))
                    }
                    Job::Read {
                        unit,
                        offset,
                        mut buf,
                    } => {
                        let data = store
                            .read(offset, buf.as_mut_slice())
                            .is_ok()
                            .then_some(buf);
                        Ok(Some(Done::Read { unit, data }))
                    }
                    Job::Sync => store.sync().map(|()| Some(Done::Synced)),
                };
                match result {
                    Ok(Some(d)) => {
                        let _ = done.send(d);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        let _ = done.send(Done::Failed(e.to_string()));
                        return;
                    }
                }
            }
        })
        .expect("spawning the disk thread")
}
