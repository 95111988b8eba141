//! The session: what every torrent of a process shares, and the task that owns the torrent
//! table.
//!
//! - **One listener.** The acceptor reads each incoming connection's handshake (with a
//!   deadline, at most [`MAX_INCOMING_HANDSHAKES`] at once) and hands the connection to the
//!   torrent its info-hash names; an unknown info-hash is closed.
//! - **The torrent table** belongs to the session task. It publishes a snapshot of the
//!   routes (info-hash → the torrent's channels) through a watch channel, so that the
//!   acceptor and the discovery services read it without locks or round trips.
//! - **Shared limits**: the peer id, the upload and download rate limiters, a cap on
//!   connections in all ([`ConnPermit`]) and on connections being set up, one start-up data
//!   check at a time, and a budget of open files.
//! - **Discovery**: trackers (one client per torrent, sharing one HTTP client) and local
//!   service discovery for every public torrent.

use std::collections::HashMap;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use share_core::wire::{Handshake, HANDSHAKE_LEN};
use share_core::InfoHash;
use share_storage::store::FileBudget;
use tokio::io::AsyncReadExt;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

use crate::dht::{self, DhtConfig, DhtHandle};
use crate::limit::RateLimiter;
use crate::peer::{self, HANDSHAKE_TIMEOUT};
use crate::torrent::{self, TorrentCommand};
use crate::transport::{self, Policy};
use crate::{EngineError, Notice, Outcome, PeerSource, Source, Stats, TorrentConfig};

/// Connections being handshaken on the listener at once. When they are all taken, the
/// oldest is dropped for the newcomer: an honest peer handshakes in milliseconds, so
/// connections that sit silent (slowloris) cannot keep it out.
pub const MAX_INCOMING_HANDSHAKES: usize = 64;
/// Handshakes under way from one IP address at once; more from it are closed at once.
pub const MAX_HANDSHAKES_PER_IP: usize = 8;
/// Connections to or from one IP address, in all torrents together (default).
pub const MAX_PER_IP: usize = 16;
/// Outgoing connections being set up at once (across all torrents).
pub const MAX_DIALING: usize = 48;
/// Open files across all torrents.
pub const FILE_BUDGET: usize = 512;
/// Commands queued for a torrent task.
const TORRENT_QUEUE: usize = 64;
/// Peer address batches queued for a torrent task from its sources.
const FOUND_QUEUE: usize = 64;

/// How a session behaves.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub listen: SocketAddr,
    pub max_upload_rate: Option<u64>,
    pub max_download_rate: Option<u64>,
    /// Most peer connections in all torrents together.
    pub max_connections: usize,
    /// Most connections to or from one IP address.
    pub max_per_ip: usize,
    /// What outlives a run: magnet metadata (and later the DHT table, resume data).
    pub state_dir: PathBuf,
    /// Local service discovery (BEP 14) for public torrents.
    pub lsd: bool,
    /// Peer exchange (BEP 11) for public torrents.
    pub pex: bool,
    /// Dial no address outside loopback (tests and benchmarks promise this).
    pub loopback_only: bool,
    /// The DHT (BEP 5), with its bootstrap nodes (`None`: off).
    pub dht: Option<Vec<String>>,
    /// Protocol encryption (MSE/PE) on every connection, both ways.
    pub encryption: Policy,
}

impl SessionConfig {
    pub fn new(listen: SocketAddr, state_dir: PathBuf) -> Self {
        SessionConfig {
            listen,
            max_upload_rate: None,
            max_download_rate: None,
            max_connections: 500,
            max_per_ip: MAX_PER_IP,
            state_dir,
            lsd: false,
            pex: true,
            loopback_only: false,
            dht: None,
            encryption: Policy::Prefer,
        }
    }
}

/// Counts one peer connection against the session's limits while it lives: a place among
/// all connections, and while it is being set up, a place among those.
#[derive(Debug)]
pub struct ConnPermit {
    _conn: OwnedSemaphorePermit,
    _ip: IpGuard,
    setting_up: Option<OwnedSemaphorePermit>,
}

/// Connections per IP address. A lock, because connections end in their own tasks; it is
/// held for one map update.
#[derive(Debug)]
pub(crate) struct PerIp {
    counts: std::sync::Mutex<HashMap<IpAddr, usize>>,
    max: usize,
}

impl PerIp {
    fn acquire(self: &Arc<Self>, ip: IpAddr) -> Option<IpGuard> {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = c.entry(ip).or_default();
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(IpGuard {
            ip,
            per_ip: self.clone(),
        })
    }
}

/// One connection's place in its IP address's count.
#[derive(Debug)]
pub(crate) struct IpGuard {
    ip: IpAddr,
    per_ip: Arc<PerIp>,
}

impl Drop for IpGuard {
    fn drop(&mut self) {
        let mut c = self.per_ip.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = c.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.remove(&self.ip);
            }
        }
    }
}

impl ConnPermit {
    /// The handshake is done: the connection no longer counts as being set up.
    pub fn established(&mut self) {
        self.setting_up = None;
    }
}

/// What the session shares with its torrents (read-only, or internally synchronised).
pub(crate) struct SessionCtx {
    pub peer_id: [u8; 20],
    pub listen: SocketAddr,
    pub upload_limit: Option<Arc<RateLimiter>>,
    pub download_limit: Option<Arc<RateLimiter>>,
    connections: Arc<Semaphore>,
    dialing: Arc<Semaphore>,
    per_ip: Arc<PerIp>,
    /// One start-up data check at a time: each uses every core.
    pub checks: Arc<Semaphore>,
    pub files: FileBudget,
    pub http: reqwest::Client,
    pub state_dir: PathBuf,
    pub pex: bool,
    pub loopback_only: bool,
    /// The session's DHT node, when it runs one.
    pub dht: Option<DhtHandle>,
    /// The UDP port the DHT listens on (told to peers in a `port` message).
    pub udp_port: Option<u16>,
    pub encryption: Policy,
    /// Tells the session task that a torrent turned out to be private (a magnet's metadata).
    pub private: mpsc::Sender<InfoHash>,
}

impl SessionCtx {
    /// A permit for a new outgoing connection to `ip`, if the session has room for one.
    pub fn dial_permit(&self, ip: IpAddr) -> Option<ConnPermit> {
        let setting_up = self.dialing.clone().try_acquire_owned().ok()?;
        let conn = self.connections.clone().try_acquire_owned().ok()?;
        let ip = self.per_ip.acquire(ip)?;
        Some(ConnPermit {
            _conn: conn,
            _ip: ip,
            setting_up: Some(setting_up),
        })
    }

    /// Where a magnet's metadata is kept.
    pub fn metadata_path(&self, hash: &InfoHash) -> PathBuf {
        self.state_dir
            .join("metadata")
            .join(format!("{hash}.torrent"))
    }
}

/// A torrent's entry points, as the acceptor and the discovery services see them.
#[derive(Clone)]
pub(crate) struct Route {
    pub cmd: mpsc::Sender<TorrentCommand>,
    pub found: mpsc::Sender<(PeerSource, Vec<SocketAddr>)>,
    pub private: bool,
}

/// The torrents by info-hash, and by MSE's SKEY hash (HASH('req2', info-hash)), for an
/// encrypted connection that names its torrent only that way.
#[derive(Default)]
pub(crate) struct RouteTable {
    pub torrents: HashMap<InfoHash, Route>,
    pub skeys: HashMap<[u8; 20], InfoHash>,
}

pub(crate) type Routes = Arc<RouteTable>;

/// A torrent running in a session.
pub struct TorrentHandle {
    pub info_hash: InfoHash,
    pub stats: Arc<Stats>,
    /// What the torrent tells the user (taken by whoever shows it).
    pub notices: Option<mpsc::Receiver<Notice>>,
    cmd: mpsc::Sender<TorrentCommand>,
    ended: watch::Receiver<Option<Result<Outcome, String>>>,
}

impl TorrentHandle {
    /// Sends a command to the torrent task (false if it has ended or its queue is full).
    pub fn send(&self, c: TorrentCommand) -> bool {
        self.cmd.try_send(c).is_ok()
    }

    /// Waits for the torrent to end (complete, removed, or the session shut down).
    pub fn done(
        &self,
    ) -> impl std::future::Future<Output = Result<Outcome, String>> + Send + 'static {
        let mut ended = self.ended.clone();
        async move {
            loop {
                if let Some(r) = ended.borrow().clone() {
                    return r;
                }
                if ended.changed().await.is_err() {
                    return ended
                        .borrow()
                        .clone()
                        .unwrap_or(Err("the session has ended".into()));
                }
            }
        }
    }
}

enum SessionCmd {
    Add {
        source: Box<Source>,
        config: TorrentConfig,
        reply: oneshot::Sender<Result<TorrentHandle, EngineError>>,
    },
    Remove {
        hash: InfoHash,
        reply: oneshot::Sender<bool>,
    },
    List {
        reply: oneshot::Sender<Vec<InfoHash>>,
    },
}

/// A running session: a cheap handle to its task.
#[derive(Clone)]
pub struct Session {
    tx: mpsc::Sender<SessionCmd>,
    local_addr: SocketAddr,
    shutdown: CancellationToken,
    done: Arc<tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl Session {
    /// Binds the listener and starts the session (bind first, so that `listening on` can be
    /// printed before any data check).
    pub async fn bind(config: SessionConfig) -> std::io::Result<Session> {
        let listener = TcpListener::bind(config.listen).await?;
        let local_addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        // One UDP socket on the same port, for the DHT (and µTP).
        let (dht, udp_port) = match &config.dht {
            Some(bootstrap) => match start_dht(local_addr, bootstrap, &config, &shutdown).await {
                Ok(d) => (Some(d), Some(local_addr.port())),
                Err(e) => {
                    tracing::warn!(error = %e, "the DHT is off: no UDP socket on {local_addr}");
                    (None, None)
                }
            },
            None => (None, None),
        };
        let (private_tx, private_rx) = mpsc::channel(16);
        let ctx = Arc::new(SessionCtx {
            peer_id: peer_id(),
            listen: local_addr,
            upload_limit: config
                .max_upload_rate
                .map(|r| Arc::new(RateLimiter::new(r))),
            download_limit: config
                .max_download_rate
                .map(|r| Arc::new(RateLimiter::new(r))),
            connections: Arc::new(Semaphore::new(config.max_connections.max(1))),
            dialing: Arc::new(Semaphore::new(MAX_DIALING)),
            per_ip: Arc::new(PerIp {
                counts: std::sync::Mutex::new(HashMap::new()),
                max: config.max_per_ip.max(1),
            }),
            checks: Arc::new(Semaphore::new(1)),
            files: FileBudget::new(FILE_BUDGET),
            http: crate::tracker::http_client(),
            state_dir: config.state_dir.clone(),
            pex: config.pex,
            loopback_only: config.loopback_only,
            dht,
            udp_port,
            encryption: config.encryption,
            private: private_tx,
        });
        let (routes_tx, routes_rx) = watch::channel(Routes::default());
        let (tx, rx) = mpsc::channel(32);
        tokio::spawn(accept_loop(
            listener,
            routes_rx.clone(),
            ctx.clone(),
            shutdown.clone(),
        ));
        if config.lsd {
            tokio::spawn(crate::lsd::run(
                local_addr.port(),
                routes_rx.clone(),
                shutdown.clone(),
            ));
        }
        let task = tokio::spawn(
            SessionTask {
                ctx,
                torrents: HashMap::new(),
                routes: routes_tx,
                tasks: JoinSet::new(),
                shutdown: shutdown.clone(),
            }
            .run(rx, private_rx),
        );
        Ok(Session {
            tx,
            local_addr,
            shutdown,
            done: Arc::new(tokio::sync::Mutex::new(Some(task))),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Adds a torrent; it starts at once (checking its data, or fetching a magnet's
    /// metadata first).
    pub async fn add(
        &self,
        source: Source,
        config: TorrentConfig,
    ) -> Result<TorrentHandle, EngineError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(SessionCmd::Add {
                source: Box::new(source),
                config,
                reply,
            })
            .await
            .map_err(|_| EngineError::SessionEnded)?;
        rx.await.map_err(|_| EngineError::SessionEnded)?
    }

    /// Stops a torrent and forgets it (its data stays); false if there is no such torrent.
    pub async fn remove(&self, hash: InfoHash) -> bool {
        let (reply, rx) = oneshot::channel();
        if self
            .tx
            .send(SessionCmd::Remove { hash, reply })
            .await
            .is_err()
        {
            return false;
        }
        rx.await.unwrap_or(false)
    }

    /// The torrents running now.
    pub async fn list(&self) -> Vec<InfoHash> {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(SessionCmd::List { reply }).await.is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// Stops every torrent (each tells its trackers and flushes its data) and waits.
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        if let Some(task) = self.done.lock().await.take() {
            let _ = task.await;
        }
    }
}

struct Entry {
    route: Route,
    token: CancellationToken,
    ended: watch::Sender<Option<Result<Outcome, String>>>,
}

struct SessionTask {
    ctx: Arc<SessionCtx>,
    torrents: HashMap<InfoHash, Entry>,
    routes: watch::Sender<Routes>,
    tasks: JoinSet<(InfoHash, Result<Outcome, EngineError>)>,
    shutdown: CancellationToken,
}

impl SessionTask {
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<SessionCmd>,
        mut private: mpsc::Receiver<InfoHash>,
    ) {
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                c = rx.recv() => match c {
                    Some(c) => self.on_command(c),
                    None => break,
                },
                Some(hash) = private.recv() => {
                    if let Some(e) = self.torrents.get_mut(&hash) {
                        e.route.private = true;
                        if let Some(d) = &self.ctx.dht {
                            d.remove_torrent(hash);
                        }
                        self.publish();
                    }
                }
                Some(r) = self.tasks.join_next(), if !self.tasks.is_empty() => self.on_ended(r),
            }
        }
        for e in self.torrents.values() {
            e.token.cancel();
        }
        while let Some(r) = self.tasks.join_next().await {
            self.on_ended(r);
        }
        if let Some(d) = self.ctx.dht.clone() {
            // Saves the routing table.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), d.shutdown()).await;
        }
    }

    fn on_command(&mut self, c: SessionCmd) {
        match c {
            SessionCmd::Add {
                source,
                config,
                reply,
            } => {
                let _ = reply.send(self.add(*source, config));
            }
            SessionCmd::Remove { hash, reply } => {
                let found = self.torrents.get(&hash).map(|e| e.token.cancel()).is_some();
                let _ = reply.send(found);
            }
            SessionCmd::List { reply } => {
                let _ = reply.send(self.torrents.keys().copied().collect());
            }
        }
    }

    fn add(&mut self, source: Source, config: TorrentConfig) -> Result<TorrentHandle, EngineError> {
        let hash = source.info_hash();
        if self.torrents.contains_key(&hash) {
            return Err(EngineError::Duplicate(hash));
        }
        let (cmd_tx, cmd_rx) = mpsc::channel(TORRENT_QUEUE);
        let (found_tx, found_rx) = mpsc::channel(FOUND_QUEUE);
        let (notice_tx, notice_rx) = mpsc::channel(256);
        let (ended_tx, ended_rx) = watch::channel(None);
        let stats = Arc::new(Stats::default());
        let token = self.shutdown.child_token();
        let private = matches!(&source, Source::Torrent(m) if m.info.private);
        let route = Route {
            cmd: cmd_tx.clone(),
            found: found_tx.clone(),
            private,
        };
        let inputs = torrent::Inputs {
            ctx: self.ctx.clone(),
            cmds: cmd_rx,
            found: found_rx,
            found_tx,
            stats: stats.clone(),
            notices: notice_tx,
            token: token.clone(),
        };
        if !private {
            self.dht_add(hash, &route.found);
        }
        self.tasks.spawn(async move {
            let r = torrent::run(source, config, inputs).await;
            (hash, r)
        });
        self.torrents.insert(
            hash,
            Entry {
                route,
                token,
                ended: ended_tx,
            },
        );
        self.publish();
        Ok(TorrentHandle {
            info_hash: hash,
            stats,
            notices: Some(notice_rx),
            cmd: cmd_tx,
            ended: ended_rx,
        })
    }

    fn on_ended(
        &mut self,
        r: Result<(InfoHash, Result<Outcome, EngineError>), tokio::task::JoinError>,
    ) {
        let Ok((hash, result)) = r else {
            return;
        };
        if let Some(e) = self.torrents.remove(&hash) {
            let _ = e.ended.send(Some(result.map_err(|e| e.to_string())));
        }
        if let Some(d) = &self.ctx.dht {
            d.remove_torrent(hash);
        }
        self.publish();
    }

    /// Looks the torrent up on the DHT (and announces it) from now on; the peers found go
    /// to its discovery channel.
    fn dht_add(&self, hash: InfoHash, found: &mpsc::Sender<(PeerSource, Vec<SocketAddr>)>) {
        let Some(d) = &self.ctx.dht else {
            return;
        };
        let (tx, mut rx) = mpsc::channel::<Vec<SocketAddr>>(16);
        let found = found.clone();
        tokio::spawn(async move {
            while let Some(peers) = rx.recv().await {
                if found.send((PeerSource::Dht, peers)).await.is_err() {
                    break;
                }
            }
        });
        d.add_torrent(hash, tx);
    }

    fn publish(&self) {
        let torrents: HashMap<InfoHash, Route> = self
            .torrents
            .iter()
            .map(|(h, e)| (*h, e.route.clone()))
            .collect();
        let skeys = torrents
            .keys()
            .map(|h| (transport::skey_hash(h), *h))
            .collect();
        self.routes
            .send_replace(Arc::new(RouteTable { torrents, skeys }));
    }
}

/// The incoming handshakes under way, oldest first. A lock, because each handshake ends in
/// its own task; it is held for a scan of at most [`MAX_INCOMING_HANDSHAKES`] entries.
#[derive(Default)]
struct Handshaking {
    slots: VecDeque<(u64, IpAddr, CancellationToken)>,
    next: u64,
}

impl Handshaking {
    /// A slot for a handshake from `ip`: `None` if that IP has too many under way; the
    /// oldest handshake is dropped if every slot is taken.
    fn enter(&mut self, ip: IpAddr) -> Option<(u64, CancellationToken)> {
        if self.slots.iter().filter(|(_, i, _)| *i == ip).count() >= MAX_HANDSHAKES_PER_IP {
            return None;
        }
        if self.slots.len() >= MAX_INCOMING_HANDSHAKES {
            if let Some((_, _, oldest)) = self.slots.pop_front() {
                oldest.cancel();
            }
        }
        let id = self.next;
        self.next += 1;
        let token = CancellationToken::new();
        self.slots.push_back((id, ip, token.clone()));
        Some((id, token))
    }

    fn leave(&mut self, id: u64) {
        self.slots.retain(|(i, _, _)| *i != id);
    }
}

type SharedHandshaking = Arc<std::sync::Mutex<Handshaking>>;

fn lock(h: &SharedHandshaking) -> std::sync::MutexGuard<'_, Handshaking> {
    h.lock().unwrap_or_else(|p| p.into_inner())
}

/// Accepts connections and hands each, after its handshake, to its torrent.
async fn accept_loop(
    listener: TcpListener,
    routes: watch::Receiver<Routes>,
    ctx: Arc<SessionCtx>,
    shutdown: CancellationToken,
) {
    let handshaking: SharedHandshaking = Arc::default();
    loop {
        let (stream, addr) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of descriptors, most likely: wait a moment instead of spinning.
                    tracing::debug!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let ip = addr.ip();
        let Some((id, token)) = lock(&handshaking).enter(ip) else {
            tracing::debug!(%addr, "too many handshakes from this address: closed");
            continue;
        };
        let permit = ctx
            .connections
            .clone()
            .try_acquire_owned()
            .ok()
            .and_then(|conn| {
                Some(ConnPermit {
                    _conn: conn,
                    _ip: ctx.per_ip.acquire(ip)?,
                    setting_up: None,
                })
            });
        let Some(permit) = permit else {
            lock(&handshaking).leave(id);
            tracing::debug!(%addr, "connection limit reached: closed");
            continue;
        };
        let routes = routes.clone();
        let handshaking = handshaking.clone();
        let policy = ctx.encryption;
        tokio::spawn(async move {
            tokio::select! {
                _ = token.cancelled() => {
                    tracing::debug!(%addr, "handshake dropped for a newer connection");
                }
                _ = route_incoming(stream, addr, permit, routes, policy) => {}
            }
            lock(&handshaking).leave(id);
        });
    }
}

/// Reads the remote's handshake (plaintext, or inside MSE, as the encryption policy allows)
/// and hands the connection to the torrent it names.
async fn route_incoming(
    stream: TcpStream,
    addr: SocketAddr,
    permit: ConnPermit,
    routes: watch::Receiver<Routes>,
    policy: Policy,
) {
    let _ = stream.set_nodelay(true);
    let got = timeout(HANDSHAKE_TIMEOUT, async {
        let table = routes.borrow().clone();
        let lookup = |skey: &[u8; 20]| table.skeys.get(skey).copied();
        let mut accepted = transport::accept(stream, lookup, policy)
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = [0u8; HANDSHAKE_LEN];
        accepted
            .stream
            .read_exact(&mut buf)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let theirs = Handshake::decode(&buf).map_err(|e| e.to_string())?;
        if accepted.info_hash.is_some_and(|h| h != theirs.info_hash) {
            return Err("the handshake names another torrent than its encryption".to_owned());
        }
        Ok::<_, String>((accepted.stream, theirs))
    })
    .await;
    let (stream, theirs) = match got {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => {
            if policy == Policy::Require && e.contains("plaintext handshake refused") {
                tracing::info!(%addr, "refused a plaintext connection: encryption is required (--encryption require)");
            } else {
                tracing::debug!(%addr, error = %e, "closed");
            }
            return;
        }
        Err(_) => {
            tracing::debug!(%addr, "no handshake in time: closed");
            return;
        }
    };
    let route = routes.borrow().torrents.get(&theirs.info_hash).cloned();
    let Some(route) = route else {
        tracing::debug!(%addr, hash = %theirs.info_hash, "handshake for a torrent we do not have: closed");
        return;
    };
    let method = stream.mse();
    let cmd = TorrentCommand::Incoming {
        stream: Box::new(stream) as peer::BoxStream,
        addr,
        handshake: theirs,
        permit,
        encryption: peer::Encryption::of(method),
    };
    if route.cmd.try_send(cmd).is_err() {
        tracing::debug!(%addr, "torrent busy: closed");
    }
}

/// Binds the UDP socket beside the listener and starts the DHT node on it, with a reader
/// that hands it the KRPC datagrams (those that begin with `d`).
async fn start_dht(
    local: SocketAddr,
    bootstrap: &[String],
    config: &SessionConfig,
    shutdown: &CancellationToken,
) -> std::io::Result<DhtHandle> {
    let socket = Arc::new(tokio::net::UdpSocket::bind(local).await?);
    let (tx, rx) = mpsc::channel(dht::PACKET_QUEUE);
    let mut dc = DhtConfig::new(local.port());
    dc.bootstrap = bootstrap.to_vec();
    if dc.bootstrap.is_empty() {
        dc.bootstrap = dht::DEFAULT_BOOTSTRAP
            .iter()
            .map(|s| s.to_string())
            .collect();
    }
    let family = if local.is_ipv6() {
        "dht6.dat"
    } else {
        "dht.dat"
    };
    dc.state_file = Some(config.state_dir.join(family));
    let handle = dht::spawn(socket.clone(), rx, dc)?;
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        loop {
            let got = tokio::select! {
                _ = stop.cancelled() => break,
                r = socket.recv_from(&mut buf) => r,
            };
            let Ok((n, from)) = got else { continue };
            match buf.first() {
                Some(b'd') if n <= share_core::dht::krpc::MAX_PACKET => {
                    let _ = tx.try_send((bytes::Bytes::copy_from_slice(&buf[..n]), from));
                }
                // µTP comes here next; anything else is dropped.
                _ => {}
            }
        }
    });
    Ok(handle)
}

/// `-SH0100-` and 12 random characters.
fn peer_id() -> [u8; 20] {
    let mut id = *b"-SH0100-000000000000";
    const CHARS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    for b in &mut id[8..] {
        *b = CHARS[rand::random::<usize>() % CHARS.len()];
    }
    id
}
