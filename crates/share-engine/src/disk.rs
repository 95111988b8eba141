//! The disk thread: the only owner of the torrent's files during a transfer.
//!
//! Jobs arrive in order on one channel, so a piece's blocks are always written before the
//! piece is verified. Reads for uploads go straight to the requesting peer's writer, never
//! through the torrent task. Memory: one piece buffer for verification, one block per read.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use sha1::{Digest, Sha1};
use share_core::wire::{BlockRef, Message};
use share_storage::buf::AlignedBuf;
use share_storage::store::Store;
use tokio::sync::mpsc;

use crate::peer::Command;

pub enum Job {
    Write {
        offset: u64,
        data: Bytes,
    },
    /// Hash piece `index` (`offset`, `len`) and compare with `expected`.
    Verify {
        index: u32,
        offset: u64,
        len: usize,
        expected: [u8; 20],
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
    Verified { index: u32, ok: bool },
    Failed(String),
    Synced,
}

/// Starts the disk thread. It ends when `jobs` closes.
pub fn spawn(
    store: Store,
    piece_length: u32,
    mut jobs: mpsc::Receiver<Job>,
    done: mpsc::UnboundedSender<Done>,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("share-disk".into())
        .spawn(move || {
            let mut store = store;
            let mut piece_buf = AlignedBuf::new(piece_length as usize);
            while let Some(job) = jobs.blocking_recv() {
                let result = match job {
                    Job::Write { offset, data } => store.write(offset, &data).map(|()| None),
                    Job::Verify {
                        index,
                        offset,
                        len,
                        expected,
                    } => {
                        let buf = &mut piece_buf.as_mut_slice()[..len];
                        let ok = store.read(offset, buf).is_ok()
                            && Sha1::digest(&*buf).as_slice() == expected;
                        Ok(Some(Done::Verified { index, ok }))
                    }
                    Job::Read {
                        block,
                        offset,
                        to,
                        queued,
                    } => {
                        let mut data = vec![0u8; block.length as usize];
                        if store.read(offset, &mut data).is_ok() {
                            let msg = Message::Piece {
                                index: block.index,
                                begin: block.begin,
                                data: data.into(),
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
