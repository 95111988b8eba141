//! What a session gives its torrents and their connections: [`SessionCtx`] (the peer id,
//! the listen address, the rate limiters, the caps on connections ([`ConnPermit`]), one data
//! check at a time, the budgets of open files and piece memory, the HTTP client, the
//! transports, the DHT, the way out (`egress/`) and the blocklist), and the claims
//! torrents hold on their content folders.
//!
//! It sits below everything that uses it, so that the arrows of the engine point one way:
//! the session builds it and hands it down (session → torrent → peer → ctx; the acceptor
//! and LSD read the routes in `routes.rs`). Nothing here knows of torrents or peers.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use share_core::{InfoHash, InfoHashes};
use share_storage::store::FileBudget;
use tokio::sync::{mpsc, Semaphore};

use crate::blocks::Blocks;
use crate::dht::DhtHandle;
use crate::egress::Egress;
use crate::limit::RateLimiter;
use crate::memory::MemoryBudget;
use crate::udp::Utp;

mod limits;
mod switches;

pub use limits::ConnPermit;
pub(crate) use limits::PerIp;
pub(crate) use switches::LiveSwitches;

/// What the session shares with its torrents (read-only, or internally synchronised).
pub(crate) struct SessionCtx {
    pub peer_id: [u8; 20],
    pub listen: SocketAddr,
    pub upload_limit: Option<Arc<RateLimiter>>,
    pub download_limit: Option<Arc<RateLimiter>>,
    /// Connections in all torrents together, those being dialed, those of one IP: taken
    /// through [`SessionCtx::dial_permit`] and [`SessionCtx::accept_permit`].
    pub connections: Arc<Semaphore>,
    pub dialing: Arc<Semaphore>,
    pub per_ip: Arc<PerIp>,
    /// One start-up data check at a time: each uses every core.
    pub checks: Arc<Semaphore>,
    pub files: FileBudget,
    /// The disk workers every torrent's files go through.
    pub disk: crate::disk::DiskPool,
    pub http: reqwest::Client,
    pub state_dir: PathBuf,
    pub loopback_only: bool,
    /// The session's DHT nodes (none when it is off).
    pub dht: Dht,
    /// The UDP port the DHT listens on (told to peers in a `port` message).
    pub udp_port: Option<u16>,
    /// Peer exchange, µTP and the encryption policy, as they are now.
    pub switches: Arc<LiveSwitches>,
    /// Dial over TCP; and over µTP on these sockets (one per family), while µTP is on.
    pub tcp: bool,
    pub utp: Vec<Arc<Utp>>,
    /// Tells the session task what a magnet's metadata revealed about a torrent.
    pub news: mpsc::Sender<TorrentNews>,
    /// Which symlinks below a download folder are followed.
    pub links: share_storage::root::Links,
    /// The content roots of the torrents in their transfer phase.
    pub contents: Arc<ContentRoots>,
    /// The download folders open as confined roots, one handle each for all torrents in it.
    pub roots: RootCache,
    /// Bytes held in piece buffers, all torrents together.
    pub memory: MemoryBudget,
    /// Our address as the outside sees it (mapping, `yourip` votes, the DHT).
    pub external: Arc<crate::external::External>,
    /// Where every socket and HTTP client goes out (`egress/`).
    pub egress: Arc<Egress>,
    /// Addresses never connected to or passed on.
    pub blocks: Blocks,
}

/// Download folders opened as [`share_storage::root::Root`]s, shared by the torrents in
/// them: a thousand torrents in one folder hold one directory handle, not a thousand. A
/// folder is opened again when its handle no longer names what its path names (it was
/// moved or replaced). A lock held for one map operation.
#[derive(Default)]
pub(crate) struct RootCache(
    std::sync::Mutex<
        std::collections::HashMap<PathBuf, std::sync::Weak<share_storage::root::Root>>,
    >,
);

impl RootCache {
    /// `dir` as a root (created first when `create`), shared with the torrents that hold it.
    pub fn open(
        &self,
        dir: &std::path::Path,
        links: &share_storage::root::Links,
        create: bool,
    ) -> share_storage::Result<Arc<share_storage::root::Root>> {
        use std::os::unix::fs::MetadataExt;
        let now = std::fs::metadata(dir).ok().map(|m| (m.dev(), m.ino()));
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = map.get(dir).and_then(std::sync::Weak::upgrade) {
            if now.is_some() && r.id() == now {
                return Ok(r);
            }
        }
        let r = Arc::new(share_storage::root::Root::open(dir, links.clone(), create)?);
        map.retain(|_, w| w.strong_count() > 0);
        map.insert(dir.to_path_buf(), Arc::downgrade(&r));
        Ok(r)
    }
}

/// The folders (or single files) that torrents of the session hold: a second torrent with
/// the same folder and name is refused, so that two torrents never write into one tree. A
/// lock, because torrents claim and release them from their own tasks; it is held for one
/// set operation.
#[derive(Debug, Default)]
pub(crate) struct ContentRoots(std::sync::Mutex<HashSet<ContentKey>>);

/// A content root: the download folder's device and inode, and the path below it.
type ContentKey = (u64, u64, PathBuf);

impl ContentRoots {
    /// Claims `key` until the claim is dropped; `None` if a torrent holds it already.
    pub fn claim(self: &Arc<Self>, key: ContentKey) -> Option<ContentClaim> {
        let mut set = self.0.lock().unwrap_or_else(|p| p.into_inner());
        set.insert(key.clone()).then(|| ContentClaim {
            key,
            roots: self.clone(),
        })
    }
}

/// A torrent's hold on its content root.
#[derive(Debug)]
pub(crate) struct ContentClaim {
    key: ContentKey,
    roots: Arc<ContentRoots>,
}

impl Drop for ContentClaim {
    fn drop(&mut self) {
        let mut set = self.roots.0.lock().unwrap_or_else(|p| p.into_inner());
        set.remove(&self.key);
    }
}

impl SessionCtx {
    /// A permit for a new outgoing connection to `ip`, if the session has room for one.
    pub fn dial_permit(&self, ip: IpAddr) -> Option<ConnPermit> {
        if self.blocks.contains(ip) {
            return None;
        }
        let setting_up = self.dialing.clone().try_acquire_owned().ok()?;
        let conn = self.connections.clone().try_acquire_owned().ok()?;
        let ip = self.per_ip.acquire(ip)?;
        Some(ConnPermit {
            _conn: conn,
            _ip: ip,
            setting_up: Some(setting_up),
        })
    }

    /// A permit for a connection from `ip` that the listener accepted, if the session has
    /// room for one (it is not counted among those being set up: the acceptor bounds its
    /// handshakes itself).
    pub fn accept_permit(&self, ip: IpAddr) -> Option<ConnPermit> {
        if self.blocks.contains(ip) {
            return None;
        }
        let conn = self.connections.clone().try_acquire_owned().ok()?;
        Some(ConnPermit {
            _conn: conn,
            _ip: self.per_ip.acquire(ip)?,
            setting_up: None,
        })
    }

    /// Where a magnet's metadata is kept.
    pub fn metadata_path(&self, hash: &InfoHash) -> PathBuf {
        self.state_dir
            .join("metadata")
            .join(format!("{hash}.torrent"))
    }
}

/// The session's DHT: a node per address family, all on the listen port.
#[derive(Debug, Clone, Default)]
pub(crate) struct Dht {
    nodes: Vec<DhtHandle>,
}

impl Dht {
    pub fn new(nodes: Vec<DhtHandle>) -> Dht {
        Dht { nodes }
    }

    pub fn is_on(&self) -> bool {
        !self.nodes.is_empty()
    }

    /// Looks the torrent up on every family's DHT (and announces it) from now on.
    pub fn add_torrent(&self, hash: share_core::InfoHash, peers: mpsc::Sender<Vec<SocketAddr>>) {
        for n in &self.nodes {
            n.add_torrent(hash, peers.clone());
        }
    }

    pub fn remove_torrent(&self, hash: share_core::InfoHash) {
        for n in &self.nodes {
            n.remove_torrent(hash);
        }
    }

    pub fn want_peers(&self, hash: share_core::InfoHash) {
        for n in &self.nodes {
            n.want_peers(hash);
        }
    }

    /// Our external address is known: each node takes a BEP 42 id for it.
    pub fn set_external(&self, ip: IpAddr) {
        for n in &self.nodes {
            if n.local_addr().is_ipv6() == ip.is_ipv6() {
                n.set_external(ip);
            }
        }
    }

    /// A node a peer told us of: the node of its family pings it.
    pub fn add_node(&self, addr: SocketAddr) {
        if let Some(n) = self
            .nodes
            .iter()
            .find(|n| n.local_addr().is_ipv6() == addr.is_ipv6())
        {
            n.add_node(addr);
        }
    }

    /// Stops every node (each saves its routing table).
    pub async fn shutdown(&self) {
        for n in self.nodes.clone() {
            n.shutdown().await;
        }
    }
}

/// What a torrent tells the session about itself once its metadata is known.
#[derive(Debug, Clone, Copy)]
pub enum TorrentNews {
    /// It is private (BEP 27): no DHT, no LSD.
    Private(InfoHash),
    /// Its hashes, both when it is a hybrid found through one of them: the session routes
    /// connections and DHT lookups of the other one to it too.
    Hashes(InfoHash, InfoHashes),
}
