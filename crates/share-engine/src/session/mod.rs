//! The session: what every torrent of a process shares, and the task that owns the torrent
//! table.
//!
//! - **One listener.** The acceptor reads each incoming connection's handshake (with a
//!   deadline, at most [`accept::MAX_INCOMING_HANDSHAKES`] at once) and hands the connection
//!   to the torrent its info-hash names; an unknown info-hash is closed.
//! - **The torrent table** belongs to the session task. It publishes a snapshot of the
//!   routes (info-hash → the torrent's channels, `routes.rs`) through a watch channel, so
//!   that the acceptor and the discovery services read it without locks or round trips.
//! - **Shared limits**: the peer id, the upload and download rate limiters, a cap on
//!   connections in all ([`ConnPermit`](crate::ctx::ConnPermit)) and on connections being
//!   set up, one start-up data check at a time, and a budget of open files: the
//!   [`SessionCtx`] (`ctx.rs`) it builds and hands to every torrent.
//! - **Discovery**: trackers (one client per torrent, sharing one HTTP client), and local
//!   service discovery and the DHT for every public torrent.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use share_core::InfoHash;
use share_storage::store::FileBudget;
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::ctx::{PerIp, SessionCtx};
use crate::limit::RateLimiter;
use crate::routes::{Route, RouteTable, Routes};
use crate::torrent::{self, TorrentCommand};
use crate::transport::{self, Policy};
use crate::{EngineError, Notice, Outcome, PeerSource, Source, Stats, TorrentConfig};

mod accept;
mod net;
mod switches;

pub use net::Transports;
pub use switches::{SwitchError, Switches};

/// Connections to or from one IP address (an IPv6 /64 counts as one), in all torrents
/// together (default).
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
    /// Most connections to or from one IP address (an IPv6 /64 counts as one).
    pub max_per_ip: usize,
    /// What outlives a run: magnet metadata, resume data, the DHT's routing tables, the
    /// symlinks torrents made.
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
    /// TCP, µTP, or both.
    pub transports: Transports,
    /// Read and write through symlinks that the user placed in a download folder (never
    /// through links a torrent created).
    pub follow_symlinks: bool,
    /// Map the listening ports on the home router (UPnP IGD, NAT-PMP/PCP).
    pub port_mapping: bool,
    /// Where traffic goes out (`--interface`, `--proxy`): every socket and HTTP client.
    pub egress: Arc<crate::Egress>,
    /// Addresses never connected to or passed on (`--blocklist`).
    pub blocks: crate::Blocks,
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
            transports: Transports::default(),
            follow_symlinks: false,
            port_mapping: false,
            egress: Arc::new(crate::Egress::direct()),
            blocks: crate::Blocks::default(),
        }
    }
}

/// A torrent running in a session.
pub struct TorrentHandle {
    pub info_hash: InfoHash,
    pub stats: Arc<Stats>,
    /// What the torrent tells the user (taken by whoever shows it).
    pub notices: Option<mpsc::Receiver<Notice>>,
    cmd: mpsc::Sender<TorrentCommand>,
    ended: watch::Receiver<Option<Result<Outcome, String>>>,
    metainfo: watch::Receiver<Option<Arc<share_core::Metainfo>>>,
}

impl TorrentHandle {
    /// The torrent's metainfo once its transfer phase starts (at once for a .torrent,
    /// when its metadata arrives for a magnet link), with the piece layers it has.
    pub fn metainfo(&self) -> Option<Arc<share_core::Metainfo>> {
        self.metainfo.borrow().clone()
    }

    /// Sends a command to the torrent task (false if it has ended or its queue is full).
    pub fn send(&self, c: TorrentCommand) -> bool {
        self.cmd.try_send(c).is_ok()
    }

    /// A sender of commands to the torrent task, for a reader that outlives a borrow of the
    /// handle (a stream).
    pub fn commands(&self) -> mpsc::Sender<TorrentCommand> {
        self.cmd.clone()
    }

    /// Sends a command, waiting for room in the torrent's queue (false if it has ended).
    pub async fn send_wait(&self, c: TorrentCommand) -> bool {
        self.cmd.send(c).await.is_ok()
    }

    /// How the torrent ended, if it has.
    pub fn ended(&self) -> Option<Result<Outcome, String>> {
        self.ended.borrow().clone()
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

struct Incoming {
    routes: watch::Receiver<Routes>,
    ctx: Arc<SessionCtx>,
    handshaking: accept::SharedHandshaking,
    lsd: switches::Lsd,
}

fn limiter(rate: Option<u64>) -> RateLimiter {
    rate.map_or_else(RateLimiter::unlimited, RateLimiter::new)
}

/// A running session: a cheap handle to its task.
#[derive(Clone)]
pub struct Session {
    tx: mpsc::Sender<SessionCmd>,
    local_addr: SocketAddr,
    /// Ports held without listening (under a proxy), for the session's life.
    _held: Arc<Vec<socket2::Socket>>,
    /// What an incoming connection needs, for [`Session::accept_stream`].
    incoming: Arc<Incoming>,
    shutdown: CancellationToken,
    done: Arc<tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
    /// How peers outside reach us: what port mapping found.
    reachability: watch::Receiver<crate::portmap::Reachability>,
    /// The port-mapping task, which removes its mappings when the session ends.
    mapping: Arc<tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl Session {
    /// Binds the listener and starts the session (bind first, so that `listening on` can be
    /// printed before any data check).
    pub async fn bind(config: SessionConfig) -> std::io::Result<Session> {
        let shutdown = CancellationToken::new();
        let external = Arc::new(crate::external::External::default());
        let egress = config.egress.clone();
        let net = net::bind(&config, &egress, &shutdown, &external).await?;
        egress.watch(shutdown.clone());
        let local_addr = net.local;
        let (news_tx, news_rx) = mpsc::channel(16);
        let ctx = Arc::new(SessionCtx {
            peer_id: peer_id(),
            listen: local_addr,
            // Always there (unlimited without a rate) so that the rates can change at run
            // time (`Session::set_rate_limits`).
            upload_limit: Some(Arc::new(limiter(config.max_upload_rate))),
            download_limit: Some(Arc::new(limiter(config.max_download_rate))),
            connections: Arc::new(Semaphore::new(config.max_connections.max(1))),
            dialing: Arc::new(Semaphore::new(MAX_DIALING)),
            per_ip: Arc::new(PerIp::new(config.max_per_ip)),
            checks: Arc::new(Semaphore::new(1)),
            files: FileBudget::new(FILE_BUDGET),
            disk: crate::disk::DiskPool::for_this_machine(),
            http: crate::tracker::http_client_from(
                &egress,
                Some(local_addr.ip()).filter(|ip| !ip.is_unspecified()),
            ),
            state_dir: config.state_dir.clone(),
            loopback_only: config.loopback_only,
            // Under a proxy our DHT node cannot be reached: no `port` message tells of it.
            udp_port: (net.dht.is_on() && !egress.is_proxied()).then_some(local_addr.port()),
            dht: net.dht,
            switches: Arc::new(crate::ctx::LiveSwitches::new(
                config.pex,
                config.transports.utp && !net.utp.is_empty(),
                config.encryption,
            )),
            tcp: config.transports.tcp,
            utp: net.utp.clone(),
            news: news_tx,
            links: share_storage::root::Links {
                follow_user: config.follow_symlinks,
                ledger: Arc::new(share_storage::root::LinkLedger::load(
                    config.state_dir.join("links"),
                )),
            },
            contents: Arc::default(),
            roots: Default::default(),
            memory: crate::memory::MemoryBudget::default(),
            external,
            egress: egress.clone(),
            blocks: config.blocks.clone(),
        });
        let (routes_tx, routes_rx) = watch::channel(Routes::default());
        let (tx, rx) = mpsc::channel(32);
        let handshaking = accept::Handshaking::shared();
        for listener in net.tcp {
            tokio::spawn(accept::tcp_loop(
                listener,
                routes_rx.clone(),
                ctx.clone(),
                handshaking.clone(),
                shutdown.clone(),
            ));
        }
        for utp in net.utp {
            tokio::spawn(accept::utp_loop(
                utp,
                routes_rx.clone(),
                ctx.clone(),
                handshaking.clone(),
                shutdown.clone(),
            ));
        }
        let lsd = switches::Lsd::new(
            local_addr.port(),
            routes_rx.clone(),
            egress.clone(),
            config.blocks.clone(),
            shutdown.clone(),
        );
        // Under a proxy LSD stays off: its multicast would go around the proxy.
        if config.lsd && egress.is_proxied() {
            tracing::warn!(target: "share_engine::egress", "local service discovery is off: its multicast would go around the proxy");
        } else {
            lsd.set(config.lsd);
        }
        let (reach_tx, reachability) = watch::channel(crate::portmap::Reachability::Unknown);
        let mapping = if !config.port_mapping {
            None
        } else if local_addr.ip().is_loopback() || config.loopback_only {
            reach_tx.send_replace(crate::portmap::Reachability::Unmapped(
                "listening on loopback only".into(),
            ));
            None
        } else {
            // Through the egress: off under a proxy, on the interface's address when bound.
            match egress.port_mapping() {
                Err(why) => {
                    tracing::warn!(target: "share_engine::egress", "{why}");
                    reach_tx.send_replace(crate::portmap::Reachability::Unmapped(why));
                    None
                }
                Ok(via) => {
                    let map = crate::portmap::MapConfig {
                        tcp_port: local_addr.port(),
                        udp_port: (!ctx.utp.is_empty() || ctx.dht.is_on())
                            .then_some(local_addr.port()),
                        local_ip: Some(local_addr.ip())
                            .filter(|ip| !ip.is_unspecified())
                            .or(via),
                        interface: egress.interface().map(|i| i.name.clone()),
                    };
                    Some(tokio::spawn(crate::portmap::run(
                        map,
                        reach_tx,
                        shutdown.child_token(),
                    )))
                }
            }
        };
        // What the mapping finds is our external address, for trackers, peers and the DHT.
        {
            let mut r = reachability.clone();
            let ctx = ctx.clone();
            tokio::spawn(async move {
                loop {
                    let mapped = match &*r.borrow_and_update() {
                        crate::portmap::Reachability::Mapped { external, .. } => Some(*external),
                        _ => None,
                    };
                    ctx.external.set_mapped(mapped);
                    if let Some(m) = mapped {
                        ctx.dht.set_external(m.ip());
                    }
                    if r.changed().await.is_err() {
                        return;
                    }
                }
            });
        }
        let incoming = Arc::new(Incoming {
            routes: routes_rx.clone(),
            ctx: ctx.clone(),
            handshaking: handshaking.clone(),
            lsd,
        });
        let task = tokio::spawn(
            SessionTask {
                ctx,
                torrents: HashMap::new(),
                routes: routes_tx,
                skeys: HashMap::new(),
                tasks: JoinSet::new(),
                shutdown: shutdown.clone(),
            }
            .run(rx, news_rx),
        );
        Ok(Session {
            tx,
            local_addr,
            _held: Arc::new(net.held),
            incoming,
            shutdown,
            done: Arc::new(tokio::sync::Mutex::new(Some(task))),
            reachability,
            mapping: Arc::new(tokio::sync::Mutex::new(mapping)),
        })
    }

    /// Whether peers outside can reach our port, as far as the session knows: a port
    /// mapping, or a connection that came from a public address.
    pub fn port_open(&self) -> bool {
        self.incoming.ctx.external.port_open()
    }

    /// Our address as the outside sees it, if known, and where that came from.
    pub fn external_address(&self) -> Option<(std::net::IpAddr, crate::external::Source)> {
        self.incoming.ctx.external.address()
    }

    /// How peers outside reach us, as port mapping found (and as it changes).
    pub fn reachability(&self) -> watch::Receiver<crate::portmap::Reachability> {
        self.reachability.clone()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where the session's traffic goes out: for HTTP clients of the embedder's own that
    /// must go the same way (the daemon's downloads).
    pub fn egress(&self) -> Arc<crate::Egress> {
        self.incoming.ctx.egress.clone()
    }

    /// The session's blocklist (replaced with [`crate::Blocks::set`]; connections to
    /// addresses a new list blocks are dropped within a second).
    pub fn blocks(&self) -> crate::Blocks {
        self.incoming.ctx.blocks.clone()
    }

    /// Changes the session-wide rate limits, in bytes per second (`None`: no limit); every
    /// connection of every torrent follows at once.
    pub fn set_rate_limits(&self, up: Option<u64>, down: Option<u64>) {
        let ctx = &self.incoming.ctx;
        for (l, rate) in [(&ctx.upload_limit, up), (&ctx.download_limit, down)] {
            if let Some(l) = l {
                l.set_rate(rate);
            }
        }
    }

    /// The session-wide rate limits (upload, download), bytes per second.
    pub fn rate_limits(&self) -> (Option<u64>, Option<u64>) {
        let ctx = &self.incoming.ctx;
        (
            ctx.upload_limit.as_ref().and_then(|l| l.rate()),
            ctx.download_limit.as_ref().and_then(|l| l.rate()),
        )
    }

    /// Peer exchange, local service discovery, µTP and the encryption policy, as they are.
    pub fn switches(&self) -> Switches {
        let i = &self.incoming;
        Switches {
            pex: i.ctx.switches.pex(),
            lsd: i.lsd.is_on(),
            utp: i.ctx.switches.utp(),
            encryption: i.ctx.switches.encryption(),
        }
    }

    /// Whether [`Session::set_switches`] would take `to` (µTP needs the session's µTP
    /// sockets; turning it off needs TCP; LSD is refused under the loopback-only promise).
    pub fn check_switches(&self, to: &Switches) -> Result<(), SwitchError> {
        let ctx = &self.incoming.ctx;
        switches::check(
            to,
            !ctx.utp.is_empty(),
            ctx.tcp,
            ctx.loopback_only,
            ctx.egress.is_proxied(),
        )
    }

    /// Switches peer exchange, local service discovery, µTP and the encryption policy, all
    /// or nothing: from the next connection, PEX round and LSD announce on.
    pub fn set_switches(&self, to: Switches) -> Result<(), SwitchError> {
        self.check_switches(&to)?;
        let i = &self.incoming;
        i.ctx.switches.set(to.pex, to.utp, to.encryption);
        i.lsd.set(to.lsd);
        Ok(())
    }

    /// Which symlinks below a download folder the session follows (for the daemon's own
    /// file operations, which must follow the same rule as the torrents).
    pub fn links(&self) -> share_storage::root::Links {
        self.incoming.ctx.links.clone()
    }

    /// Takes a connection made elsewhere (an in-memory pipe in a test, a transport of the
    /// embedder's own) as if the listener had accepted it from `addr`: the same limits,
    /// handshake deadline and routing by info-hash.
    pub fn accept_stream<S: crate::peer::PeerStream>(&self, stream: S, addr: SocketAddr) {
        let i = &self.incoming;
        accept::spawn_handshake(
            stream,
            addr,
            crate::peer::Transport::Tcp,
            &i.routes,
            &i.ctx,
            &i.handshaking,
        );
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
        // The mappings are removed (a few seconds at most) before the process goes.
        if let Some(task) = self.mapping.lock().await.take() {
            let _ = task.await;
        }
    }
}

struct Entry {
    route: Route,
    token: CancellationToken,
    ended: watch::Sender<Option<Result<Outcome, String>>>,
    /// The torrent's other wire hashes (a hybrid's truncated v2 hash), routed to it too.
    aliases: Vec<InfoHash>,
}

struct SessionTask {
    ctx: Arc<SessionCtx>,
    torrents: HashMap<InfoHash, Entry>,
    routes: watch::Sender<Routes>,
    /// The SKEY hash of each routed hash (see `publish`).
    skeys: HashMap<InfoHash, [u8; 20]>,
    tasks: JoinSet<(InfoHash, Result<Outcome, EngineError>)>,
    shutdown: CancellationToken,
}

impl SessionTask {
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<SessionCmd>,
        mut news: mpsc::Receiver<crate::ctx::TorrentNews>,
    ) {
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                c = rx.recv() => match c {
                    Some(c) => self.on_command(c),
                    None => break,
                },
                Some(n) = news.recv() => self.on_news(n),
                Some(r) = self.tasks.join_next(), if !self.tasks.is_empty() => self.on_ended(r),
            }
        }
        for e in self.torrents.values() {
            e.token.cancel();
        }
        while let Some(r) = self.tasks.join_next().await {
            self.on_ended(r);
        }
        // Saves the routing tables.
        let dht = self.ctx.dht.clone();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), dht.shutdown()).await;
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

    /// Whether `h` names a torrent of the session, by its key or another of its hashes.
    fn knows(&self, h: &InfoHash) -> bool {
        self.torrents.contains_key(h) || self.torrents.values().any(|e| e.aliases.contains(h))
    }

    fn on_news(&mut self, n: crate::ctx::TorrentNews) {
        use crate::ctx::TorrentNews;
        match n {
            TorrentNews::Private(hash) => {
                if let Some(e) = self.torrents.get_mut(&hash) {
                    e.route.private = true;
                    for h in std::iter::once(hash).chain(e.aliases.clone()) {
                        self.ctx.dht.remove_torrent(h);
                    }
                    self.publish();
                }
            }
            TorrentNews::Hashes(key, hashes) => {
                let new: Vec<InfoHash> = hashes
                    .wire_forms()
                    .into_iter()
                    .filter(|h| *h != key && !self.knows(h))
                    .collect();
                let Some(e) = self.torrents.get_mut(&key) else {
                    return;
                };
                e.aliases.extend(&new);
                let (private, found) = (e.route.private, e.route.found.clone());
                if !private {
                    for h in new {
                        self.dht_add(h, &found);
                    }
                }
                self.publish();
            }
        }
    }

    fn add(&mut self, source: Source, config: TorrentConfig) -> Result<TorrentHandle, EngineError> {
        let hash = source.info_hash();
        let forms = source.hashes().wire_forms();
        if self.knows(&hash) || forms.iter().any(|h| self.knows(h)) {
            return Err(EngineError::Duplicate(hash));
        }
        let aliases: Vec<InfoHash> = forms.into_iter().filter(|h| *h != hash).collect();
        let (cmd_tx, cmd_rx) = mpsc::channel(TORRENT_QUEUE);
        let (found_tx, found_rx) = mpsc::channel(FOUND_QUEUE);
        let (notice_tx, notice_rx) = mpsc::channel(256);
        let (ended_tx, ended_rx) = watch::channel(None);
        let (meta_tx, meta_rx) = watch::channel(None);
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
            metainfo: meta_tx,
        };
        if !private {
            for h in std::iter::once(hash).chain(aliases.iter().copied()) {
                self.dht_add(h, &route.found);
            }
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
                aliases,
            },
        );
        self.publish();
        Ok(TorrentHandle {
            info_hash: hash,
            stats,
            notices: Some(notice_rx),
            cmd: cmd_tx,
            ended: ended_rx,
            metainfo: meta_rx,
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
            for h in e.aliases {
                self.ctx.dht.remove_torrent(h);
            }
        }
        self.ctx.dht.remove_torrent(hash);
        self.publish();
    }

    /// Looks the torrent up on the DHT (and announces it) from now on; the peers found go
    /// to its discovery channel.
    fn dht_add(&self, hash: InfoHash, found: &mpsc::Sender<(PeerSource, Vec<SocketAddr>)>) {
        if !self.ctx.dht.is_on() {
            return;
        }
        let (tx, mut rx) = mpsc::channel::<Vec<SocketAddr>>(16);
        let found = found.clone();
        tokio::spawn(async move {
            while let Some(peers) = rx.recv().await {
                if found.send((PeerSource::Dht, peers)).await.is_err() {
                    break;
                }
            }
        });
        self.ctx.dht.add_torrent(hash, tx);
    }

    fn publish(&mut self) {
        // Every hash a torrent is known by leads to it: a hybrid's v1 hash and its
        // truncated v2 hash.
        let torrents: HashMap<InfoHash, Route> = self
            .torrents
            .iter()
            .flat_map(|(h, e)| {
                std::iter::once(*h)
                    .chain(e.aliases.iter().copied())
                    .map(move |k| (k, e.route.clone()))
            })
            .collect();
        // Each hash's SKEY hash once, not at every publish: a daemon adding thousands of
        // torrents publishes once per add.
        let memo = &mut self.skeys;
        memo.retain(|h, _| torrents.contains_key(h));
        let skeys = torrents
            .keys()
            .map(|h| {
                (
                    *memo.entry(*h).or_insert_with(|| transport::skey_hash(h)),
                    *h,
                )
            })
            .collect();
        self.routes
            .send_replace(Arc::new(RouteTable { torrents, skeys }));
    }
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
