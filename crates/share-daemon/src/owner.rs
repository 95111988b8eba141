//! The registry's one owner: a task that holds the [`Registry`] and runs what callers hand
//! it, one request at a time, besides the once-a-second tick.
//!
//! A request is a closure over the registry. Most are plain functions (`read`); those that
//! start or remove torrents in the session await the session's answer (`call`), which its
//! task gives at once. Nothing handed to the owner may wait on the network or the disk:
//! fetching a URL, reading a local file, waiting for a torrent to stop, moving or deleting
//! data and asking torrents for their details all happen in the caller's task, before or
//! after its request (see `ops.rs`). So `session-get` is answered in the time the owner
//! takes for the requests ahead of it, never in the time a disk or a server takes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use share_engine::Session;
use share_storage::root::Root;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::registry::Registry;
use crate::saved::Folder;

type Job = Box<dyn for<'a> FnOnce(&'a mut Registry) -> BoxFuture<'a, ()> + Send>;

/// Requests waiting for the owner at most; callers beyond wait for room.
const QUEUE: usize = 256;

/// The daemon has stopped: its registry is gone.
#[derive(Debug, Clone, Copy)]
pub struct Gone;

impl std::fmt::Display for Gone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the daemon is shutting down")
    }
}

/// A cheap handle to the registry's owner, and what never changes while the daemon runs.
#[derive(Clone)]
pub struct Handle {
    tx: mpsc::Sender<Job>,
    pub session: Session,
    /// The download folder as a handle (every torrent's files are resolved beneath it).
    pub root: Arc<Root>,
    /// The download folder's path (absolute).
    pub download_root: PathBuf,
    pub state_dir: PathBuf,
    pub watch: Option<PathBuf>,
    pub folder: Folder,
    pub http: reqwest::Client,
    /// What each running torrent last said of itself (see `ops::statuses`).
    pub statuses: Arc<crate::ops::StatusBoard>,
}

impl Handle {
    /// Runs `f` on the registry and returns what it gives.
    pub async fn read<T, F>(&self, f: F) -> Result<T, Gone>
    where
        T: Send + 'static,
        F: FnOnce(&mut Registry) -> T + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |r| {
            let _ = tx.send(f(r));
            Box::pin(async {})
        });
        self.tx.send(job).await.map_err(|_| Gone)?;
        rx.await.map_err(|_| Gone)
    }

    /// Runs `f` on the registry; it may await the session's commands (add, remove), which
    /// are answered at once, and nothing slower.
    pub async fn call<T, F>(&self, f: F) -> Result<T, Gone>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(&'a mut Registry) -> BoxFuture<'a, T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |r| {
            Box::pin(async move {
                let _ = tx.send(f(r).await);
            })
        });
        self.tx.send(job).await.map_err(|_| Gone)?;
        rx.await.map_err(|_| Gone)
    }
}

/// Starts the owner of `registry`. It runs until `stop`, then gives the registry back.
pub fn spawn(
    mut registry: Registry,
    watch: Option<PathBuf>,
    stop: CancellationToken,
) -> (Handle, tokio::task::JoinHandle<Registry>) {
    let (tx, mut rx) = mpsc::channel::<Job>(QUEUE);
    let handle = Handle {
        tx,
        session: registry.session.clone(),
        root: registry.root.clone(),
        download_root: registry.download_root.clone(),
        state_dir: registry.state_dir().to_path_buf(),
        watch,
        folder: registry.folder().clone(),
        http: registry.http.clone(),
        statuses: Default::default(),
    };
    let me = handle.clone();
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut n: u64 = 0;
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                Some(job) = rx.recv() => {
                    // What a request sees is current: a magnet's metainfo from the moment
                    // its task has it.
                    registry.sync_meta();
                    job(&mut registry).await
                }
                _ = tick.tick() => {
                    n += 1;
                    for id in registry.tick() {
                        // Out of the incomplete folder: a move, in a task of its own.
                        let h = me.clone();
                        tokio::spawn(async move { crate::ops::finish(&h, id).await });
                    }
                    if n.is_multiple_of(30) {
                        registry.mark_dirty();
                    }
                    registry.save();
                }
            }
        }
        registry
    });
    (handle, task)
}
