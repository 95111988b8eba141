//! The disk thread: the only owner of the torrent's files during a transfer.
//!
//! A downloaded piece arrives whole and already verified (assembled and hashed in memory by
//! the torrent task) and is written with one positional write, so a bad piece never touches
//! the disk and a good one is never read back; its buffer goes back for reuse. Pieces for
//! uploads are read whole, for the torrent task's small cache (see `uploads.rs`).

use share_storage::buf::AlignedBuf;
use share_storage::store::Store;
use tokio::sync::mpsc;

pub enum Job {
    /// Write verified piece `index` at `offset`; the buffer comes back with `Done::Written`.
    Piece {
        index: u32,
        offset: u64,
        data: AlignedBuf,
    },
    /// Read piece `index` (`len` bytes at `offset`) for uploads, into `buf` if one is given.
    ReadPiece {
        index: u32,
        offset: u64,
        len: usize,
        buf: Option<AlignedBuf>,
    },
    Sync,
}

pub enum Done {
    Written {
        index: u32,
        buf: AlignedBuf,
    },
    /// A piece read for uploads (`None` if the read failed).
    PieceRead {
        index: u32,
        data: Option<AlignedBuf>,
    },
    Failed(String),
    Synced,
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
                    Job::ReadPiece {
                        index,
                        offset,
                        len,
                        buf,
                    } => {
                        let mut buf = buf
                            .and_then(|mut b| b.set_len(len).then_some(b))
                            .unwrap_or_else(|| AlignedBuf::new(len));
                        let data = store
                            .read(offset, buf.as_mut_slice())
                            .is_ok()
                            .then_some(buf);
                        Ok(Some(Done::PieceRead { index, data }))
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
