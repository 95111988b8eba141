//! The session's disk service: a bounded pool of worker threads that every torrent's
//! files go through, in place of a thread per torrent.
//!
//! Each torrent in its transfer phase has a *lane* ([`spawn`]): a small tokio task that owns
//! its [`Store`] and takes its jobs from a bounded channel. The lane hands a batch of jobs
//! (at most [`BATCH`], whatever is queued) to the pool with the store, and waits for both
//! back before it hands the next, so a lane has at most one batch in the pool. That gives
//! the two properties the torrent relies on and the one the session needs:
//! - jobs of one torrent run in the order they were queued: a piece's blocks written through
//!   (see `assembly.rs`) are on disk before the job that reports the piece stored, or that
//!   hashes its rest back from the disk;
//! - a torrent's disk is never touched by two workers at once;
//! - the pool's queue is first come, first served, one batch per lane, so a busy torrent
//!   takes turns with the others instead of starving them, and a slow disk holds one worker
//!   per torrent waiting on it, never the session.
//!
//! An idle torrent costs a parked task (a few hundred bytes), not a thread. A piece assembled
//! in memory arrives whole and already verified and is written with one positional write;
//! its buffer comes back for the upload cache. Reads for uploads fill a unit (a piece, or a
//! part of a large one) at a time.

use std::sync::{Arc, Mutex};

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
    Block {
        offset: u64,
        data: Bytes,
    },
    /// Every block of verified piece `index` is queued before this: answer `Done::Stored`.
    Stored {
        index: u32,
    },
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

/// A lane with nothing to do this long closes its files: a thousand idle torrents hold no
/// descriptors.
const IDLE_CLOSE: std::time::Duration = std::time::Duration::from_secs(20);

/// Jobs a lane hands to the pool at a time at most: enough to amortise the handoff under
/// load, few enough that other torrents' turns come soon.
pub const BATCH: usize = 32;

type Work = Box<dyn FnOnce() + Send>;

/// The pool of disk workers shared by every torrent of a session.
#[derive(Clone)]
pub struct DiskPool {
    tx: std::sync::mpsc::Sender<Work>,
}

impl DiskPool {
    /// `workers` threads (at least one); they end when the last handle is dropped.
    pub fn new(workers: usize) -> DiskPool {
        let workers = workers.max(1);
        let (tx, rx) = std::sync::mpsc::channel::<Work>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..workers {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("share-disk-{i}"))
                .spawn(move || loop {
                    // The lock is held only while waiting for the next piece of work.
                    let next = rx.lock().map(|r| r.recv());
                    match next {
                        Ok(Ok(work)) => work(),
                        _ => return,
                    }
                })
                .expect("spawning a disk worker");
        }
        DiskPool { tx }
    }

    /// A few workers per core, at most 16: disks wait more than they compute.
    pub fn for_this_machine() -> DiskPool {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        DiskPool::new((cores * 2).clamp(4, 16))
    }

    /// Runs `f` on a worker and gives back what it returns (`None` if the pool is gone).
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.tx
            .send(Box::new(move || {
                let _ = tx.send(f());
            }))
            .ok()?;
        rx.await.ok()
    }
}

/// Runs one job on `store`: what to tell the torrent, or the error that ends the lane.
fn run_job(store: &mut Store, job: Job) -> Result<Option<Done>, String> {
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
            let ok =
                v2_ok.unwrap_or(true) && hash_rest(store, offset, len, from, *hasher, &expected);
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
    result.map_err(|e| e.to_string())
}

/// A test's slow disk: `SHARE_TEST_SLOW_DISK=NAME=MS` makes every job of the torrent named
/// NAME take MS milliseconds longer (for the tests that show a slow disk holds up nobody
/// else). Nothing else reads it.
pub fn test_slowness(name: &str) -> Option<std::time::Duration> {
    let v = std::env::var("SHARE_TEST_SLOW_DISK").ok()?;
    let (n, ms) = v.rsplit_once('=')?;
    if n != name {
        return None;
    }
    Some(std::time::Duration::from_millis(ms.parse().ok()?))
}

/// Starts a torrent's lane on `pool`. It ends when `jobs` closes or a job fails (after
/// `Done::Failed`); the store is closed when it ends. `slow`: see [`test_slowness`].
pub fn spawn(
    pool: DiskPool,
    store: Store,
    mut jobs: mpsc::Receiver<Job>,
    done: mpsc::UnboundedSender<Done>,
    slow: Option<std::time::Duration>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut store = Some(store);
        loop {
            let first = match tokio::time::timeout(IDLE_CLOSE, jobs.recv()).await {
                Ok(Some(job)) => job,
                Ok(None) => break,
                Err(_) => {
                    // Idle: its files need no handles until the next job.
                    let s = store.take().expect("the store is back between batches");
                    if s.open_files() == 0 {
                        store = Some(s);
                        continue;
                    }
                    match pool
                        .run(move || {
                            let mut s = s;
                            s.close_all();
                            s
                        })
                        .await
                    {
                        Some(s) => store = Some(s),
                        None => return,
                    }
                    continue;
                }
            };
            let mut batch = Vec::with_capacity(BATCH.min(jobs.len() + 1));
            batch.push(first);
            while batch.len() < BATCH {
                match jobs.try_recv() {
                    Ok(j) => batch.push(j),
                    Err(_) => break,
                }
            }
            let mut s = store.take().expect("the store is back between batches");
            let tell = done.clone();
            let back = pool
                .run(move || {
                    for job in batch {
                        if let Some(d) = slow {
                            std::thread::sleep(d);
                        }
                        match run_job(&mut s, job) {
                            Ok(Some(d)) => {
                                let _ = tell.send(d);
                            }
                            Ok(None) => {}
                            Err(e) => {
                                let _ = tell.send(Done::Failed(e));
                                return (s, false);
                            }
                        }
                    }
                    (s, true)
                })
                .await;
            match back {
                Some((s, true)) => store = Some(s),
                Some((s, false)) => {
                    // Closed on a worker: closing files may wait on the disk.
                    let _ = pool.run(move || drop(s)).await;
                    return;
                }
                None => return,
            }
        }
        if let Some(s) = store {
            let _ = pool.run(move || drop(s)).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use share_storage::layout::Layout;

    fn store(dir: &std::path::Path, name: &str) -> Store {
        let mut s = Store::new(Layout::from_files([(dir.join(name), 1 << 20)], 1 << 16));
        s.allocate().unwrap();
        s
    }

    #[tokio::test]
    async fn a_lane_keeps_its_order_and_a_busy_lane_takes_turns_with_another() {
        let dir = tempfile::tempdir().unwrap();
        // One worker: the only way B's job runs before A's last is by taking turns.
        let pool = DiskPool::new(1);
        let (a_tx, a_rx) = mpsc::channel(256);
        let (b_tx, b_rx) = mpsc::channel(256);
        let (done_tx, mut done) = mpsc::unbounded_channel();
        let (b_done_tx, mut b_done) = mpsc::unbounded_channel();
        // Queue A's jobs before its lane starts, so they wait for it all at once.
        for i in 0..(4 * BATCH as u32) {
            a_tx.send(Job::Block {
                offset: u64::from(i) * 4096,
                data: Bytes::from(vec![i as u8; 4096]),
            })
            .await
            .unwrap();
            a_tx.send(Job::Stored { index: i }).await.unwrap();
        }
        b_tx.send(Job::Stored { index: 9999 }).await.unwrap();
        let a = spawn(pool.clone(), store(dir.path(), "a"), a_rx, done_tx, None);
        let b = spawn(pool.clone(), store(dir.path(), "b"), b_rx, b_done_tx, None);
        let mut seen = Vec::new();
        let mut b_after = None;
        while seen.len() < 4 * BATCH {
            tokio::select! {
                Some(Done::Stored { index }) = done.recv() => seen.push(index),
                Some(Done::Stored { index: 9999 }) = b_done.recv(), if b_after.is_none() => {
                    b_after = Some(seen.len())
                }
            }
        }
        // A's reports come in the order its jobs were queued.
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
        // B's one job did not wait for all of A's.
        let b_after = b_after.or_else(|| b_done.try_recv().ok().map(|_| seen.len()));
        assert!(
            b_after.is_some_and(|n| n < 4 * BATCH),
            "B ran after {b_after:?} of A's"
        );
        drop((a_tx, b_tx));
        a.await.unwrap();
        b.await.unwrap();
        // What A wrote is on disk, block by block.
        let mut s = store(dir.path(), "a");
        let mut buf = vec![0u8; 4096];
        s.read(5 * 4096, &mut buf).unwrap();
        assert!(buf.iter().all(|&x| x == 5));
    }

    #[tokio::test]
    async fn a_failed_job_ends_the_lane_after_saying_so() {
        let dir = tempfile::tempdir().unwrap();
        let pool = DiskPool::new(2);
        let (tx, rx) = mpsc::channel(8);
        let (done_tx, mut done) = mpsc::unbounded_channel();
        let lane = spawn(pool, store(dir.path(), "a"), rx, done_tx, None);
        // Past the end of the torrent's bytes.
        tx.send(Job::Block {
            offset: 2 << 20,
            data: Bytes::from_static(b"x"),
        })
        .await
        .unwrap();
        assert!(matches!(done.recv().await, Some(Done::Failed(_))));
        lane.await.unwrap();
        assert!(tx.send(Job::Sync).await.is_err(), "the lane is gone");
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_lane_closes_its_files() {
        let dir = tempfile::tempdir().unwrap();
        let budget = share_storage::store::FileBudget::new(64);
        let mut s = Store::with_budget(
            Layout::from_files([(dir.path().join("a"), 1 << 20)], 1 << 16),
            budget.clone(),
        );
        s.allocate().unwrap();
        let (tx, rx) = mpsc::channel(8);
        let (done_tx, mut done) = mpsc::unbounded_channel();
        let lane = spawn(DiskPool::new(1), s, rx, done_tx, None);
        tx.send(Job::Block {
            offset: 0,
            data: Bytes::from_static(b"data"),
        })
        .await
        .unwrap();
        tx.send(Job::Stored { index: 0 }).await.unwrap();
        assert!(matches!(done.recv().await, Some(Done::Stored { index: 0 })));
        assert_eq!(budget.open(), 1);
        tokio::time::sleep(IDLE_CLOSE * 2).await;
        // The close runs on a worker thread, outside the paused clock.
        for _ in 0..100 {
            if budget.open() == 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
            tokio::task::yield_now().await;
        }
        assert_eq!(budget.open(), 0, "still open after the lane was idle");
        drop(tx);
        lane.await.unwrap();
    }
}
