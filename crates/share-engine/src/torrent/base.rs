//! What both phases of a torrent share (the metadata fetch of a magnet link and the
//! transfer): the session's context, the torrent's channels and counters, the address book
//! and the dialing it drives, the tracker client, and the torrent's identity on the wire
//! (its extension registry, whether it is private, the handshakes it offers).
//!
//! It lives apart from either phase so that the phases differ only in what they do with a
//! connection, and a connection made in the first carries on into the second.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use share_core::budget::Budget;
use share_core::ext::Registry;
use share_core::picker::PeerKey;
use share_core::wire::{self, Handshake, Message};
use share_storage::resume;
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::book::{Book, DIALS_PER_SEC, DIAL_BURST};
use super::{Inputs, TorrentCommand};
use crate::ctx::{ConnPermit, SessionCtx};
use crate::limit::RateLimiter;
use crate::peer::{self, BoxStream, CloseReason, Conn, Event, Shared, MAX_QUEUED_UPLOADS};
use crate::tracker;
use crate::{Notice, PeerSource, Source, Stats, TorrentConfig};

/// Peer events queued for the torrent task.
const EVENT_QUEUE: usize = 4096;

/// A tracker client running for this torrent.
pub(super) struct TrackerRun {
    pub stop: CancellationToken,
    /// One client per swarm the torrent is in (a hybrid is in two: its v1 hash's and its
    /// truncated v2 hash's).
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl TrackerRun {
    /// Waits a while for every client to have said `stopped`.
    pub async fn wait(self) {
        let all = futures_join(self.tasks);
        let _ = tokio::time::timeout(Duration::from_secs(6), all).await;
    }
}

async fn futures_join(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for t in tasks {
        let _ = t.await;
    }
}

/// What both phases of a torrent need.
pub(super) struct Base {
    pub(super) ctx: Arc<SessionCtx>,
    pub(super) config: TorrentConfig,
    pub(super) stats: Arc<Stats>,
    /// Where the metainfo is published for the torrent's handle.
    pub(super) metainfo: tokio::sync::watch::Sender<Option<Arc<share_core::Metainfo>>>,
    pub(super) notices: mpsc::Sender<Notice>,
    pub(super) token: CancellationToken,
    pub(super) cmds: mpsc::Receiver<TorrentCommand>,
    pub(super) found: mpsc::Receiver<(PeerSource, Vec<SocketAddr>)>,
    found_tx: mpsc::Sender<(PeerSource, Vec<SocketAddr>)>,
    pub(super) events: mpsc::Receiver<(PeerKey, Event)>,
    pub(super) shared: Shared,
    /// The torrent's v1 and v2 hashes, as far as known.
    pub(super) hashes: share_core::InfoHashes,
    uploaded: Arc<AtomicU64>,
    pub(super) book: Book,
    /// Outgoing connections not yet through the handshake.
    pub(super) dialing: HashMap<PeerKey, SocketAddr>,
    next_key: PeerKey,
    pub(super) tiers: Vec<Vec<String>>,
    pub(super) tracker: Option<TrackerRun>,
    /// Tells the tracker client when the download completes.
    pub(super) complete: watch::Sender<bool>,
    /// Asks the tracker client for an early announce when we have no peers.
    need_peers: Arc<Notify>,
    /// The extensions this torrent may offer (none of ours on a private torrent); what is
    /// offered now is [`Base::offered`].
    registry: Registry,
    private: bool,
    pub(super) paused: bool,
    /// Web seeds named by the magnet link (`ws=`), beside the metainfo's `url-list`.
    pub(super) web_seeds: Vec<String>,
    /// Dials started: a rate, however often dialing is tried (each batch of peers a source
    /// finds, each tick, each closed connection).
    dial_budget: Budget,
    pub(super) rates: crate::RateMeter,
    /// The interface's returns seen (`Egress::returns`).
    egress_returns: u64,
    /// The blocklist's generation seen (`Blocks::generation`).
    blocks_seen: u64,
}

impl Base {
    /// The torrent's shared state before either phase starts: the address book holds the
    /// peers given (`--peer`, a magnet's `x.pe`), the trackers are known but not started.
    pub(super) fn new(
        source: &Source,
        config: TorrentConfig,
        io: Inputs,
        magnet_peers: Vec<SocketAddr>,
    ) -> Base {
        let hash = source.info_hash();
        let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
        let uploaded = Arc::new(AtomicU64::new(0));
        let private_torrent = matches!(source, Source::Torrent(m) if m.info.private);
        let shared = Shared {
            info_hash: hash,
            peer_id: io.ctx.peer_id,
            dht: io.ctx.dht.is_on() && !private_torrent,
            switches: io.ctx.switches.clone(),
            tcp: io.ctx.tcp,
            utp: io.ctx.utp.clone(),
            // Dial from the address we listen on, when it is a specific one: the tracker and
            // the peers then see (and pass on) the address that takes connections.
            bind_ip: Some(io.ctx.listen.ip()).filter(|ip| !ip.is_unspecified()),
            egress: io.ctx.egress.clone(),
            // Enough for a bitfield of any torrent whose metadata we accept.
            max_frame: wire::max_frame(u32::MAX / 2048),
            events: events_tx,
            uploaded: uploaded.clone(),
            upload_limit: io.ctx.upload_limit.clone(),
            download_limit: io.ctx.download_limit.clone(),
            torrent_up: Arc::new(RateLimiter::unlimited()),
            torrent_down: Arc::new(RateLimiter::unlimited()),
            shutdown: io.token.child_token(),
        };
        let mut book = Book::new(io.ctx.listen, io.ctx.loopback_only);
        let now = Instant::now();
        let free = |a: &SocketAddr| !io.ctx.blocks.contains(a.ip());
        book.add(
            config.peers.iter().copied().filter(free),
            PeerSource::User,
            now,
        );
        book.add(magnet_peers.into_iter().filter(free), PeerSource::User, now);
        let (tiers, private) = match source {
            Source::Torrent(m) => (tiers(&m.trackers, &config), m.info.private),
            Source::Magnet(m) => {
                let t: Vec<Vec<String>> = m.trackers.iter().map(|u| vec![u.clone()]).collect();
                (tiers(&t, &config), false)
            }
        };
        let (complete, _) = watch::channel(false);
        let (egress_returns, blocks_seen) = (io.ctx.egress.returns(), io.ctx.blocks.generation());
        let paused = config.paused;
        let mut base = Base {
            ctx: io.ctx,
            config,
            stats: io.stats,
            metainfo: io.metainfo,
            notices: io.notices,
            token: io.token,
            cmds: io.cmds,
            found: io.found,
            found_tx: io.found_tx,
            events,
            shared,
            hashes: source.hashes(),
            uploaded,
            book,
            dialing: HashMap::new(),
            next_key: 1,
            tiers,
            tracker: None,
            complete,
            need_peers: Arc::new(Notify::new()),
            registry: Registry::public(),
            private: false,
            paused,
            web_seeds: Vec::new(),
            dial_budget: Budget::new(DIAL_BURST, DIALS_PER_SEC, Instant::now().into_std()),
            rates: crate::RateMeter::default(),
            egress_returns,
            blocks_seen,
        };
        base.set_private(private);
        base
    }

    /// A private torrent (BEP 27) offers no metadata or peer exchange, and its peers come
    /// only from its trackers and `--peer`; the session stops announcing it on LSD.
    pub(super) fn set_private(&mut self, private: bool) {
        self.private = private;
        self.registry = if private {
            Registry::private()
        } else {
            Registry::public()
        };
        if private {
            let _ = self
                .ctx
                .news
                .try_send(crate::ctx::TorrentNews::Private(self.shared.info_hash));
        }
    }

    /// The extensions offered, and understood, now: the torrent's own, without peer
    /// exchange while the session has it switched off.
    pub(super) fn offered(&self) -> Registry {
        let pex = self.registry.offers(share_core::ext::Extension::Pex) && self.ctx.switches.pex();
        self.registry.with(share_core::ext::Extension::Pex, pex)
    }

    /// Where this torrent's resume data is kept, when it keeps any.
    pub(super) fn resume_path(&self) -> Option<std::path::PathBuf> {
        self.config
            .resume
            .then(|| resume::path(&self.ctx.state_dir, &self.shared.info_hash.0))
    }

    pub(super) fn notice(&self, n: Notice) {
        let _ = self.notices.try_send(n);
    }

    fn spawn_peer(&mut self, addr: SocketAddr, conn: Conn, permit: ConnPermit) -> PeerKey {
        let key = self.next_key;
        self.next_key += 1;
        tokio::spawn(peer::run(key, addr, conn, self.shared.clone(), permit));
        key
    }

    /// Dials addresses that are due, within the torrent's and the session's limits.
    pub(super) fn dial(&mut self, connected: &HashSet<SocketAddr>, peers: usize, complete: bool) {
        if self.paused {
            return;
        }
        let now = Instant::now();
        // The interface came back: every known address is worth a dial at once.
        let returns = self.ctx.egress.returns();
        if returns != self.egress_returns {
            self.egress_returns = returns;
            self.book.retry_now(now);
            self.ask_for_peers();
        }
        let room = self
            .config
            .max_peers
            .saturating_sub(peers + self.dialing.len())
            .min(self.dial_budget.available(now.into_std()));
        if room == 0 {
            return;
        }
        for addr in self.book.due(now, complete, connected, room) {
            if self.ctx.blocks.contains(addr.ip()) {
                // Blocked since it was learned (a new list).
                self.book.forget(&addr);
                continue;
            }
            self.dial_budget.take(now.into_std());
            let Some(permit) = self.ctx.dial_permit(addr.ip()) else {
                self.book.undial(&addr);
                continue;
            };
            let key = self.spawn_peer(addr, Conn::Dial, permit);
            self.dialing.insert(key, addr);
        }
    }

    /// Dials `addr` over µTP at once for a hole punch (BEP 55), within the dial rate and
    /// the session's limits; false if it may not be dialed now.
    pub(super) fn punch(&mut self, addr: SocketAddr) -> bool {
        let now = Instant::now().into_std();
        if self.ctx.blocks.contains(addr.ip()) {
            tracing::debug!(%addr, "holepunch: blocked address (--blocklist): not dialed");
            return false;
        }
        if !self.book.may_dial(&addr) || !self.dial_budget.take(now) {
            return false;
        }
        let Some(permit) = self.ctx.dial_permit(addr.ip()) else {
            return false;
        };
        let key = self.spawn_peer(addr, Conn::Punch, permit);
        self.dialing.insert(key, addr);
        true
    }

    /// Takes a connection the session routed to us, if there is room and the peer is not
    /// banned.
    pub(super) fn admit(
        &mut self,
        stream: BoxStream,
        addr: SocketAddr,
        handshake: Handshake,
        permit: ConnPermit,
        via: peer::Via,
        peers: usize,
    ) {
        if self.paused
            || self.ctx.blocks.contains(addr.ip())
            || peers + self.dialing.len() >= self.config.max_peers
            || self.book.is_banned(&addr, Some(&handshake.peer_id))
        {
            return;
        }
        self.spawn_peer(
            addr,
            Conn::Accepted {
                stream,
                theirs: handshake,
                via,
            },
            permit,
        );
    }

    /// An outgoing connection ended before its handshake (or got through it: `worked`).
    pub(super) fn dial_ended(&mut self, key: PeerKey, reason: &CloseReason) {
        let Some(addr) = self.dialing.remove(&key) else {
            return;
        };
        if *reason == CloseReason::SelfConnection {
            self.book.forget(&addr);
        } else {
            self.book.dial_failed(&addr, Instant::now());
        }
    }

    /// Whether the blocklist changed since the last call (peers it blocks must go).
    pub(super) fn blocks_changed(&mut self) -> bool {
        let g = self.ctx.blocks.generation();
        std::mem::replace(&mut self.blocks_seen, g) != g
    }

    /// Remembers addresses a source found.
    pub(super) fn add_found(&mut self, source: PeerSource, mut addrs: Vec<SocketAddr>) {
        let before = addrs.len();
        addrs.retain(|a| !self.ctx.blocks.contains(a.ip()));
        if addrs.len() < before {
            tracing::debug!(
                source = source.name(),
                blocked = before - addrs.len(),
                "blocked addresses (--blocklist) not kept"
            );
        }
        let n = self.book.add(addrs, source, Instant::now());
        if n > 0 {
            tracing::debug!(source = source.name(), new = n, "peers found");
        }
        self.stats
            .set_learned(source, self.book.learned.get(&source).copied().unwrap_or(0));
    }

    /// Starts announcing (not while paused: `Resume` starts it then).
    pub(super) fn start_trackers(&mut self) {
        if self.paused || self.tiers.is_empty() || self.tracker.is_some() {
            return;
        }
        let stop = CancellationToken::new();
        let mut forms = self.hashes.wire_forms();
        if forms.is_empty() {
            forms.push(self.shared.info_hash);
        }
        let tasks = forms
            .into_iter()
            .enumerate()
            .map(|(n, info_hash)| {
                let mut client = tracker::Client::new(
                    self.tiers.clone(),
                    tracker::Identity {
                        info_hash,
                        peer_id: self.ctx.peer_id,
                        port: self.ctx.listen.port(),
                        external: Some(self.ctx.external.clone()),
                    },
                    self.stats.clone(),
                    self.ctx.http.clone(),
                    self.ctx.egress.clone(),
                );
                if n == 0 {
                    client = client.reporting();
                }
                tokio::spawn(client.run(
                    self.found_tx.clone(),
                    self.complete.subscribe(),
                    self.need_peers.clone(),
                    stop.clone(),
                    self.notices.clone(),
                ))
            })
            .collect();
        self.tracker = Some(TrackerRun { stop, tasks });
    }

    /// Announces to `own` tiers (and the configured extra trackers) from now on: the
    /// running client is stopped (its `stopped` announces go out in the background, so the
    /// task does not wait on a slow tracker) and a new one started if one was running.
    pub(super) fn set_trackers(&mut self, own: Vec<Vec<String>>) {
        let running = self.tracker.is_some();
        if let Some(t) = self.tracker.take() {
            t.stop.cancel();
            tokio::spawn(t.wait());
        }
        self.tiers = tiers(&own, &self.config);
        let kept: std::collections::HashSet<&String> = self.tiers.iter().flatten().collect();
        self.stats.trackers.retain(|s| kept.contains(&s.url));
        if running {
            self.start_trackers();
        }
    }

    /// Stops the tracker client (it announces `stopped`) and waits a little for it.
    pub(super) async fn stop_trackers(&mut self) {
        if let Some(t) = self.tracker.take() {
            t.stop.cancel();
            t.wait().await;
        }
    }

    /// Whether every wanted piece is verified: told to the tracker client and the stats.
    pub(super) fn set_complete(&self, done: bool) {
        self.complete.send_replace(done);
        self.stats.complete.store(done, Ordering::Relaxed);
    }

    /// The uploaded counter shared with peer writers, copied into the stats.
    pub(super) fn sync_uploaded(&self) {
        self.stats
            .uploaded
            .store(self.uploaded.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    pub(super) fn set_limits(&self, up: Option<u64>, down: Option<u64>) {
        self.shared.torrent_up.set_rate(up);
        self.shared.torrent_down.set_rate(down);
    }

    /// Tells a peer that runs a DHT node where ours listens (BEP 5 `port`).
    pub(super) fn port_message(&self, hs: &Handshake) -> Option<Message> {
        let port = self.ctx.udp_port?;
        (self.shared.dht && !self.private && hs.supports_dht()).then_some(Message::Port(port))
    }

    /// A peer told us where its DHT node listens: our node pings it.
    pub(super) fn dht_node(&self, peer: SocketAddr, port: u16) {
        if !self.private && port != 0 {
            self.ctx.dht.add_node(SocketAddr::new(peer.ip(), port));
        }
    }

    /// With no peers at all, asks the trackers and the DHT early.
    pub(super) fn ask_for_peers(&self) {
        self.need_peers.notify_one();
        if !self.private {
            self.ctx.dht.want_peers(self.shared.info_hash);
        }
    }

    /// Our extension handshake for a peer at `addr`.
    pub(super) fn ext_handshake(&self, addr: SocketAddr, metadata_size: Option<u32>) -> Message {
        let ours = share_core::ext::OurHandshake {
            registry: self.offered(),
            // The port peers outside reach us at (a router may map another); under a proxy
            // nothing listens, and no port is told.
            port: (!self.ctx.egress.is_proxied())
                .then(|| self.ctx.external.port(self.ctx.listen.port())),
            version: peer::VERSION,
            reqq: MAX_QUEUED_UPLOADS as u32,
            metadata_size,
            yourip: Some(addr.ip()),
        };
        Message::Extended {
            id: 0,
            payload: ours.encode().into(),
        }
    }
}

/// The torrent's tiers, then each extra URL as a tier of its own.
fn tiers(own: &[Vec<String>], config: &TorrentConfig) -> Vec<Vec<String>> {
    let mut t = own.to_vec();
    for url in &config.extra_trackers {
        if !t.iter().flatten().any(|u| u == url) {
            t.push(vec![url.clone()]);
        }
    }
    t
}
