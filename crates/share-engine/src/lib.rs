//! share's engine: the tokio glue around the sans-IO core and the disk layer.
//!
//! A [`Session`] runs many torrents in one process: it owns the listener (and routes each
//! incoming connection by the info-hash of its handshake), the peer id, the rate limits and
//! connection limits every torrent shares, and the discovery services (trackers through
//! each torrent, local service discovery and the DHT for all). Each torrent is one task
//! that owns all of its transfer state (picker, peer table, choking) and answers a bounded
//! command channel; each peer connection has a reader task and a writer task that talk to
//! it over bounded channels; each torrent's disk thread owns its files. See
//! `docs/engine.md`.

mod assembly;
pub mod blocks;
mod ctx;
pub mod dht;
mod disk;
pub mod egress;
pub mod external;
mod limit;
mod lsd;
mod memory;
mod peer;
pub mod portmap;
mod routes;
mod serve;
mod session;
mod torrent;
mod tracker;
mod tracker_board;
pub mod transport;
mod udp;
mod uploads;
pub mod webseed;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

pub use tokio_util::sync::CancellationToken;

pub use blocks::Blocks;
pub use egress::{Egress, NetPolicy};
pub use limit::RateLimiter;
pub use peer::{CloseReason, PeerStream};
pub use serve::TrackerServer;
pub use session::{Session, SessionConfig, SwitchError, Switches, TorrentHandle, Transports};
pub use share_core::tracker::registry::Limits as TrackerLimits;
pub use share_core::tracker::ScrapeCounts;
pub use torrent::{FileInfo, Outcome, PeerInfo, Status, TorrentCommand};
pub use tracker::scrape;
pub use tracker_board::{TrackerBoard, TrackerStatus};

use share_core::{Magnet, Metainfo};

/// What a torrent starts from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A .torrent we have.
    Torrent(Metainfo),
    /// A magnet link: the metadata comes from peers (or the state folder).
    Magnet(Magnet),
}

impl Source {
    pub fn info_hash(&self) -> share_core::InfoHash {
        match self {
            Source::Torrent(m) => m.info_hash,
            Source::Magnet(m) => m.info_hash,
        }
    }

    /// The v1 and v2 hashes it names (a magnet may name one of a hybrid's two).
    pub fn hashes(&self) -> share_core::InfoHashes {
        match self {
            Source::Torrent(m) => m.hashes,
            Source::Magnet(m) => m.hashes,
        }
    }
}

/// A test of a file's path: true for files to fetch.
#[derive(Clone)]
pub struct FileFilter(pub Arc<dyn Fn(&str) -> bool + Send + Sync>);

impl std::fmt::Debug for FileFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileFilter")
    }
}

impl FileFilter {
    /// Which of `info`'s non-padding files it chooses.
    pub fn choose(&self, info: &share_core::Info) -> Vec<bool> {
        info.files
            .iter()
            .filter(|f| !f.padding)
            .map(|f| (self.0)(&file_path(info, f)))
            .collect()
    }
}

/// A file's path as `--only` and `--exclude` see it: `NAME/dir/file`, or `NAME`.
pub fn file_path(info: &share_core::Info, f: &share_core::metainfo::FileEntry) -> String {
    if f.path.is_empty() {
        info.name.clone()
    } else {
        format!("{}/{}", info.name, f.path.join("/"))
    }
}

/// How one torrent behaves.
#[derive(Debug, Clone)]
pub struct TorrentConfig {
    /// The folder that holds (or will hold) the content, `dir/NAME`.
    pub dir: PathBuf,
    /// A folder `dir` must be inside: every file is then resolved beneath it (the daemon's
    /// download folder), not only beneath `dir`.
    pub confine: Option<PathBuf>,
    /// Peers to connect to, besides any that connect to us or that sources give.
    pub peers: Vec<SocketAddr>,
    /// Tracker URLs to announce to besides the torrent's own, each as a tier of its own.
    pub extra_trackers: Vec<String>,
    /// Stop once every piece is verified (fetch); otherwise serve until shut down.
    pub stop_when_complete: bool,
    /// Most peer connections for this torrent.
    pub max_peers: usize,
    /// Regular upload slots (the optimistic unchoke comes on top).
    pub upload_slots: usize,
    /// Never upload (a free-rider, for tests of the choker).
    pub no_upload: bool,
    /// Serve only: never download, never create files (`share seed`).
    pub seed_only: bool,
    /// BEP 16 super-seeding while seeding (`share seed --super-seed`): announce one piece
    /// at a time to each peer, the next once one of its pieces was seen elsewhere
    /// (`share_core::seeding`, `Mode::Super`). Otherwise a seed suggests pieces
    /// (`Mode::Suggest`) and serves whatever it is asked.
    pub super_seed: bool,
    /// Which files to fetch, by index among the non-padding files (empty: all; a file past
    /// the end of the list is wanted).
    pub wanted: Vec<bool>,
    /// Each file's priority, as in Transmission: -1 low, 0 normal, 1 high.
    pub priorities: Vec<i8>,
    /// Chooses the wanted files by path (`NAME/dir/file` for a folder, `NAME` for a single
    /// file) once the file list is known, when `wanted` is empty (`share fetch --only`).
    pub file_filter: Option<FileFilter>,
    /// Fetch pieces in order (to play a file as it arrives) rather than rarest first.
    pub sequential: bool,
    /// Keep resume data in the session's state folder, so a restart trusts the pieces of
    /// files whose size and mtime did not change instead of hashing them again.
    pub resume: bool,
    /// Start paused (as if `Pause` came first): its data is checked, but it announces to
    /// no tracker and holds no connection until `Resume` (the daemon's stopped and queued
    /// torrents).
    pub paused: bool,
}

impl Default for TorrentConfig {
    fn default() -> Self {
        TorrentConfig {
            dir: PathBuf::from("."),
            confine: None,
            peers: Vec::new(),
            extra_trackers: Vec::new(),
            stop_when_complete: true,
            max_peers: 80,
            upload_slots: 4,
            no_upload: false,
            seed_only: false,
            super_seed: false,
            wanted: Vec::new(),
            priorities: Vec::new(),
            file_filter: None,
            sequential: false,
            resume: true,
            paused: false,
        }
    }
}

/// Where a peer address came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PeerSource {
    /// `--peer`, or a magnet link's `x.pe`.
    User,
    Tracker,
    Dht,
    Pex,
    Lsd,
}

impl PeerSource {
    /// Sources that anyone in the swarm can feed: their addresses are hints, trusted only
    /// once they work.
    pub fn is_hint(self) -> bool {
        matches!(self, PeerSource::Dht | PeerSource::Pex | PeerSource::Lsd)
    }

    pub fn name(self) -> &'static str {
        match self {
            PeerSource::User => "given",
            PeerSource::Tracker => "tracker",
            PeerSource::Dht => "DHT",
            PeerSource::Pex => "PEX",
            PeerSource::Lsd => "LSD",
        }
    }

    pub const ALL: [PeerSource; 5] = [
        PeerSource::User,
        PeerSource::Tracker,
        PeerSource::Dht,
        PeerSource::Pex,
        PeerSource::Lsd,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// Live counters of one torrent, read by the command line for its progress bar and summary.
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
    /// The content's size (0 until a magnet's metadata has arrived).
    pub total: AtomicU64,
    /// Connected peers.
    pub peers: AtomicUsize,
    /// Addresses learned from each source ([`PeerSource::ALL`] order).
    pub learned: [AtomicU64; 5],
    /// Payload bytes per second, smoothed over a few seconds.
    pub rate_up: AtomicU64,
    pub rate_down: AtomicU64,
    /// Web seeds in use, and the payload bytes per second they send (part of `rate_down`).
    pub web_seeds: AtomicUsize,
    pub rate_web: AtomicU64,
    /// What the torrent is doing ([`State`] as a number).
    pub state: std::sync::atomic::AtomicU8,
    /// Every wanted piece is verified (known once the start-up check is over; it stays
    /// as it was while the torrent is paused).
    pub complete: std::sync::atomic::AtomicBool,
    /// Each tracker: its last announce and the next.
    pub trackers: TrackerBoard,
}

/// What a torrent is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    /// A magnet's metadata is being fetched.
    Metadata = 0,
    /// Waiting for its turn to check the data on disk (one torrent at a time).
    CheckWait = 1,
    /// Checking the data on disk.
    Checking = 2,
    Downloading = 3,
    Seeding = 4,
    Paused = 5,
}

impl Stats {
    pub fn get(&self, c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    /// How many addresses `source` gave.
    pub fn learned_from(&self, source: PeerSource) -> u64 {
        self.learned[source.index()].load(Ordering::Relaxed)
    }

    fn set_learned(&self, source: PeerSource, n: u64) {
        self.learned[source.index()].store(n, Ordering::Relaxed);
    }

    pub fn state(&self) -> State {
        match self.state.load(Ordering::Relaxed) {
            0 => State::Metadata,
            1 => State::CheckWait,
            2 => State::Checking,
            3 => State::Downloading,
            4 => State::Seeding,
            _ => State::Paused,
        }
    }

    fn set_state(&self, s: State) {
        self.state.store(s as u8, Ordering::Relaxed);
    }
}

/// Smooths a rate: the new second's bytes weigh 40%.
fn smooth(old: u64, new: u64) -> u64 {
    (old as f64 * 0.6 + new as f64 * 0.4) as u64
}

/// Follows a torrent's byte counters to give its rates, once a second.
#[derive(Debug, Default)]
struct RateMeter {
    last_up: u64,
    last_down: u64,
}

impl RateMeter {
    fn tick(&mut self, stats: &Stats) {
        let up = stats.get(&stats.uploaded);
        let down = stats.get(&stats.downloaded);
        let r_up = smooth(stats.get(&stats.rate_up), up.saturating_sub(self.last_up));
        let r_down = smooth(
            stats.get(&stats.rate_down),
            down.saturating_sub(self.last_down),
        );
        stats.rate_up.store(r_up, Ordering::Relaxed);
        stats.rate_down.store(r_down, Ordering::Relaxed);
        self.last_up = up;
        self.last_down = down;
    }
}

/// Things worth telling the user as they happen.
#[derive(Debug, Clone)]
pub enum Notice {
    /// A magnet link's metadata arrived (or was found in the state folder).
    Metadata {
        name: String,
        total: u64,
        pieces: u32,
    },
    /// The start-up check finished: `valid` of `total` pieces verified; `missing` lists the
    /// others. `found` says whether any of the content was on disk at all.
    Checked {
        valid: u32,
        total: u32,
        missing: Vec<u32>,
        found: bool,
    },
    /// A peer was disconnected and will not be accepted again.
    Banned {
        addr: SocketAddr,
        reason: CloseReason,
    },
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
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("no data to seed: {0} is missing or every piece fails its hash check")]
    NothingToSeed(PathBuf),
    #[error("the torrent {0} is already in this session")]
    Duplicate(share_core::InfoHash),
    #[error(
        "{0} is already the folder of another torrent in this session; refusing a second \
         torrent with the same folder and name"
    )]
    SameContent(PathBuf),
    #[error("the metadata for {hash} is not a usable torrent: {reason}")]
    BadMetadata {
        hash: share_core::InfoHash,
        reason: String,
    },
    #[error("the session has ended")]
    SessionEnded,
    #[error("no file of {0} matches the --only and --exclude patterns")]
    NoFileChosen(String),
}
