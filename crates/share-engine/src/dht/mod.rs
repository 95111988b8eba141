//! The session's DHT node (BEP 5): a task that owns a sans-IO [`share_core::dht::Node`] and
//! drives it with the session's UDP socket, the clock and commands from [`DhtHandle`]s.
//!
//! The task does not read the socket: the session's UDP reader hands it KRPC datagrams
//! (those starting with `d`; µTP shares the socket) over a bounded channel of
//! [`PACKET_QUEUE`] (1024) packets, and the task sends with `send_to` on the shared socket.
//! [`spawn_standalone`] binds a socket and runs such a reader itself, for tests and tools.
//! Commands go over a channel of [`COMMAND_QUEUE`] (256). Peers found for a torrent are
//! sent with `try_send` on the torrent's own bounded channel (dropped when it is full; the
//! core never reports a peer twice in one lookup). The routing table is saved every
//! [`SAVE_EVERY`] (10 min) and at shutdown, atomically, and read back at start.

mod task;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use share_core::dht::Config as CoreConfig;
pub use share_core::dht::{DhtStats, NodeId};
use share_core::InfoHash;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::egress::Udp;

pub const PACKET_QUEUE: usize = 1024;
pub const COMMAND_QUEUE: usize = 256;
pub const SAVE_EVERY: Duration = Duration::from_secs(10 * 60);
/// The largest state file read back (a saved table is at most 256 × 38 bytes and a header).
pub const MAX_STATE_FILE: u64 = 64 << 10;

/// The public routers a node bootstraps from when it knows no other node.
pub const DEFAULT_BOOTSTRAP: [&str; 3] = [
    "router.bittorrent.com:6881",
    "dht.transmissionbt.com:6881",
    "router.utorrent.com:6881",
];

#[derive(Debug, Clone)]
pub struct DhtConfig {
    /// `host:port` nodes to start from, resolved with `lookup_host` (default: the public
    /// routers; `--dht-bootstrap` replaces them).
    pub bootstrap: Vec<String>,
    /// Where the routing table is kept across runs.
    pub state_file: Option<PathBuf>,
    /// The TCP (and µTP) port announced with `announce_peer`.
    pub port_for_announce: u16,
    /// Our external address, when known (our id is derived from it, BEP 42).
    pub external_ip: Option<IpAddr>,
    /// Told the address when the node's votes settle on one.
    pub external: Option<std::sync::Arc<crate::external::External>>,
    /// The sans-IO node's settings; its `bootstrap` and `ipv6` are filled in by the task.
    pub node: CoreConfig,
    /// Nodes never answered or asked (`--blocklist`).
    pub blocks: crate::blocks::Blocks,
    /// Resolves the bootstrap names (under a proxy it refuses: names go to the proxy only).
    pub egress: Option<Arc<crate::egress::Egress>>,
}

impl DhtConfig {
    /// The defaults, with the public routers. Tests must replace `bootstrap`.
    pub fn new(port_for_announce: u16) -> DhtConfig {
        DhtConfig {
            bootstrap: DEFAULT_BOOTSTRAP.iter().map(|s| s.to_string()).collect(),
            state_file: None,
            port_for_announce,
            external_ip: None,
            external: None,
            node: CoreConfig::default(),
            blocks: crate::blocks::Blocks::default(),
            egress: None,
        }
    }
}

/// The outcome of a one-off lookup ([`DhtHandle::lookup`]).
#[derive(Debug, Clone, Default)]
pub struct LookupResult {
    pub peers: Vec<SocketAddr>,
    pub queried: usize,
    pub responded: usize,
    pub announced: usize,
    pub duration: Duration,
}

#[derive(Debug)]
enum Command {
    AddTorrent(InfoHash, mpsc::Sender<Vec<SocketAddr>>),
    RemoveTorrent(InfoHash),
    WantPeers(InfoHash),
    AddNode(SocketAddr),
    SetExternal(IpAddr),
    Lookup {
        info_hash: InfoHash,
        announce: bool,
        reply: oneshot::Sender<LookupResult>,
    },
    Stats(oneshot::Sender<DhtStats>),
    Table(oneshot::Sender<Vec<(NodeId, SocketAddr)>>),
    Shutdown(oneshot::Sender<()>),
}

/// A cheap handle on the node task.
#[derive(Debug, Clone)]
pub struct DhtHandle {
    cmds: mpsc::Sender<Command>,
    local_addr: SocketAddr,
}

/// Starts the node task on `socket`, fed with KRPC datagrams by the session's reader.
pub fn spawn(
    socket: Arc<Udp>,
    packets: mpsc::Receiver<(Bytes, SocketAddr)>,
    config: DhtConfig,
) -> std::io::Result<DhtHandle> {
    let local_addr = socket.local_addr();
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
    tokio::spawn(task::run(socket, packets, rx, config));
    Ok(DhtHandle {
        cmds: tx,
        local_addr,
    })
}

/// Binds `bind_addr` and runs a reader that passes every datagram starting with `d` to a
/// node task: a DHT node on a socket of its own (tests, examples, benchmarks).
pub async fn spawn_standalone(
    bind_addr: SocketAddr,
    config: DhtConfig,
) -> std::io::Result<DhtHandle> {
    let socket = Arc::new(Udp::plain(UdpSocket::bind(bind_addr).await?)?);
    let (tx, rx) = mpsc::channel(PACKET_QUEUE);
    let handle = spawn(socket.clone(), rx, config)?;
    tokio::spawn(async move {
        let mut buf = vec![0u8; share_core::dht::krpc::MAX_PACKET + 1];
        loop {
            tokio::select! {
                _ = tx.closed() => break,
                got = socket.recv_from(&mut buf) => {
                    let Ok((n, from)) = got else { continue };
                    if buf.first() == Some(&b'd') && n <= share_core::dht::krpc::MAX_PACKET {
                        let _ = tx.try_send((Bytes::copy_from_slice(&buf[..n]), from));
                    }
                }
            }
        }
    });
    Ok(handle)
}

impl DhtHandle {
    /// The UDP address the node sends from.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Looks `info_hash` up now and every ~15 min, announcing our port; peers go to `peers`.
    pub fn add_torrent(&self, info_hash: InfoHash, peers: mpsc::Sender<Vec<SocketAddr>>) {
        let _ = self.cmds.try_send(Command::AddTorrent(info_hash, peers));
    }

    pub fn remove_torrent(&self, info_hash: InfoHash) {
        let _ = self.cmds.try_send(Command::RemoveTorrent(info_hash));
    }

    /// An early lookup for a torrent that needs peers (at most one a minute).
    pub fn want_peers(&self, info_hash: InfoHash) {
        let _ = self.cmds.try_send(Command::WantPeers(info_hash));
    }

    /// A DHT node a peer told us of (BEP 5 `port` message): it is pinged.
    /// Our external address is known (a port mapping): the node takes a BEP 42 id for it.
    pub fn set_external(&self, ip: IpAddr) {
        let _ = self.cmds.try_send(Command::SetExternal(ip));
    }

    pub fn add_node(&self, addr: SocketAddr) {
        let _ = self.cmds.try_send(Command::AddNode(addr));
    }

    /// One `get_peers` lookup, announcing our port after it if `announce`; waits for its end.
    pub async fn lookup(&self, info_hash: InfoHash, announce: bool) -> LookupResult {
        let (reply, rx) = oneshot::channel();
        let cmd = Command::Lookup {
            info_hash,
            announce,
            reply,
        };
        if self.cmds.send(cmd).await.is_err() {
            return LookupResult::default();
        }
        rx.await.unwrap_or_default()
    }

    pub async fn stats(&self) -> DhtStats {
        let (tx, rx) = oneshot::channel();
        if self.cmds.send(Command::Stats(tx)).await.is_err() {
            return DhtStats::default();
        }
        rx.await.unwrap_or_default()
    }

    /// The nodes of the routing table (for tests and diagnostics).
    pub async fn routing_table(&self) -> Vec<(NodeId, SocketAddr)> {
        let (tx, rx) = oneshot::channel();
        if self.cmds.send(Command::Table(tx)).await.is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// Stops the node, saving its table first.
    pub async fn shutdown(self) {
        let (tx, rx) = oneshot::channel();
        if self.cmds.send(Command::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}
