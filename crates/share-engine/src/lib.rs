//! share's engine: the tokio glue around the sans-IO core and the disk layer.
//!
//! One torrent task owns all transfer state (picker, peer table, choking); each peer
//! connection has a reader task and a writer task that talk to it over bounded channels; one
//! disk thread owns the files. See `docs/engine.md` for the message flow and its invariants.

mod assembly;
mod disk;
mod limit;
mod peer;
mod serve;
mod torrent;
mod tracker;
pub mod transport;
mod uploads;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use share_core::Metainfo;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
pub use tokio_util::sync::CancellationToken;

pub use limit::RateLimiter;
pub use serve::TrackerServer;
pub use share_core::tracker::registry::Limits as TrackerLimits;
pub use share_core::tracker::ScrapeCounts;
pub use torrent::Outcome;
pub use tracker::scrape;

/// How a session behaves.
#[derive(Debug, Clone)]
pub struct Config {
    /// Peers to connect to, besides any that connect to us.
    pub peers: Vec<SocketAddr>,
    /// Tracker tiers (BEP 12) to announce to.
    pub trackers: Vec<Vec<String>>,
    /// Stop once every piece is verified (fetch); otherwise serve until shut down.
    pub stop_when_complete: bool,
    /// Upload rate limit in bytes per second.
    pub max_upload_rate: Option<u64>,
    /// Download rate limit in bytes per second.
    pub max_download_rate: Option<u64>,
    /// Most peer connections at once.
    pub max_peers: usize,
    /// Regular upload slots (the optimistic unchoke comes on top).
    pub upload_slots: usize,
    /// Never upload (a free-rider, for tests of the choker).
    pub no_upload: bool,
    /// Serve only: never download, never create files (`share seed`).
    pub seed_only: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            peers: Vec::new(),
            trackers: Vec::new(),
            stop_when_complete: true,
            max_upload_rate: None,
            max_download_rate: None,
            max_peers: 80,
            upload_slots: 4,
            no_upload: false,
            seed_only: false,
        }
    }
}

/// Live counters, read by the command line for its progress bar and summary.
#[derive(Debug, Default)]
pub struct Stats {
    /// Payload bytes sent to peers.
    pub uploaded: AtomicU64,
    /// Payload bytes received from peers.
    pub downloaded: AtomicU64,
    /// Bytes of verified pieces on disk.
    pub verified: AtomicU64,
    /// Bytes checked so far by the start-up check.
    pub checked: AtomicU64,
    /// Connected peers.
    pub peers: AtomicUsize,
}

impl Stats {
    pub fn get(&self, c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// Things worth telling the user as they happen.
#[derive(Debug, Clone)]
pub enum Notice {
    /// The start-up check finished: `valid` of `total` pieces verified; `missing` lists the
    /// others.
    Checked {
        valid: u32,
        total: u32,
        missing: Vec<u32>,
    },
    /// A peer was disconnected and will not be accepted again.
    Banned { addr: SocketAddr, reason: String },
    /// Every piece is verified and on disk.
    Complete,
    /// Something went wrong that does not stop the transfer.
    Warning(String),
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Storage(#[from] share_storage::StorageError),
    #[error("disk error: {0}")]
    Disk(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("no data to seed: {0} is missing or every piece fails its hash check")]
    NothingToSeed(PathBuf),
}

/// A bound listening socket: bind first so that `listening on` can be printed before the
/// data check, which may take a while.
pub struct Session {
    listener: TcpListener,
}

impl Session {
    pub async fn bind(addr: SocketAddr) -> std::io::Result<Session> {
        Ok(Session {
            listener: TcpListener::bind(addr).await?,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Checks the data under `dir`, then transfers until complete (when configured so) or
    /// until `shutdown` is cancelled.
    pub async fn run(
        self,
        meta: Metainfo,
        dir: PathBuf,
        config: Config,
        stats: Arc<Stats>,
        notices: mpsc::UnboundedSender<Notice>,
        shutdown: CancellationToken,
    ) -> Result<Outcome, EngineError> {
        torrent::run(self.listener, meta, dir, config, stats, notices, shutdown).await
    }
}
