//! The disk thread: the only owner of the torrent's files during a transfer.
//!
//! A downloaded piece arrives whole and already verified (assembled and hashed in memory by
//! the torrent task) and is written with one positional write, so a bad piece never touches
//! the disk and a good one is never read back. Its buffer goes back for reuse. Reads for uploads go straight to the
//! requesting peer's writer, never through the torrent task.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use share_core::wire::{BlockRef, Message};
use share_storage::buf::AlignedBuf;
use share_storage::store::Store;
use tokio::sync::mpsc;

use crate::peer::Command;

pub enum Job {
    /// Write verified piece `index` at `offset`; the buffer comes back with `Done::Written`.
    Piece {
        index: u32,
        offset: u64,
        data: AlignedBuf,
    },
    /// Read a block and hand it to a peer's writer; `queued` counts its pending uploads.
    Read {
        block: BlockRef,
        offset: u64,
        to: mpsc::Sender<Command>,
        queued: Arc<AtomicUsize>,
    },
    Sync,
}

pub enum Done {
    Written { index: u32, buf: AlignedBuf },
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
                    Job::Read {
                        block,
                        offset,
                        to,
                        queued,
                    } => {
                        let mut data = AlignedBuf::new(block.length as usize);
                        if store.read(offset, data.as_mut_slice()).is_ok() {
                            let msg = Message::Piece {
                                index: block.index,
                                begin: block.begin,
                                data: Bytes::from_owner(data),
                            };
                            // A full or closed writer means the peer is gone or flooding.
                            if to.try_send(Command::Send(msg)).is_err() {
                                queued.fetch_sub(1, Ordering::Relaxed);
                            }
                        } else {
                            queued.fetch_sub(1, Ordering::Relaxed);
                        }
                        Ok(None)
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
