//! A torrent task: the one owner of a torrent's picker, peer table and choking.
//!
//! A torrent runs in up to two phases. One started from a magnet link first fetches its
//! metadata (`magnet.rs`): it connects, speaks the extension protocol and assembles the
//! `info` dictionary with `ut_metadata`. Then, as for a .torrent, it checks the data on disk
//! and transfers pieces (this file, `peers.rs` and `exchange.rs`); the connections made in
//! the first phase carry on into the second. What both phases need (the session's limits,
//! the command and discovery channels, the address book, trackers) is the [`Base`].
//!
//! The task reacts to peer events, disk results, commands, peers found by its sources and a
//! one-second tick. It never touches a socket or a file itself: it sends commands to peer
//! writers and jobs to the disk thread, whose queue is bounded, so a slow disk slows the
//! download instead of filling memory.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use share_core::bitfield::Bitfield;
use share_core::choker::{Choker, PeerView};
use share_core::ext::{ExtHandshake, Registry};
use share_core::pex;
use share_core::picker::{Arrival, Picker};
use share_core::wire::{self, BlockRef, Handshake, Message, MAX_BLOCK};
use share_core::{Info, Metainfo};
use share_storage::store::Store;
use share_storage::{hash, resume, Layout};
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::assembly::Assembler;
use crate::disk::{self, Done, Job};
use crate::limit::RateLimiter;
use crate::peer::{self, BoxStream, Command, Conn, Event, Link, Shared, MAX_QUEUED_UPLOADS};
use crate::session::{ConnPermit, SessionCtx};
use crate::tracker;
use crate::uploads::{Serve, Uploads};
use crate::{EngineError, Notice, PeerSource, Source, Stats, TorrentConfig};

pub use share_core::picker::PeerKey;

mod book;
mod exchange;
mod extensions;
mod magnet;
mod peers;

use book::{Book, DIALS_PER_SEC, DIAL_BURST};

/// Requests out per peer: two seconds of the peer's measured rate, at least `MIN_DEPTH`, at
/// most `MAX_DEPTH`. The window must be longer than a slow peer's reply latency (Transmission
/// answers in batches every 500 ms), or the depth could never grow past what it allows.
const MIN_DEPTH: usize = 32;
const DEPTH_WINDOW_SECS: f64 = 2.0;
const MAX_DEPTH: usize = 2000;
/// A peer that owes us blocks and sends none for this long loses its requests to others.
const STALL: Duration = Duration::from_secs(20);
/// Invalid requests tolerated from one peer before it is dropped.
const MAX_BAD_REQUESTS: u32 = 20;
/// Failed pieces a peer may have contributed to before it is banned.
const MAX_STRIKES: u32 = 3;
/// Jobs queued for the disk thread. Most are single-block reads for uploads; the pieces
/// among them are already bounded by the assembly budget (a piece stays "under way" in the
/// picker until the disk thread has verified it).
const DISK_QUEUE: usize = 16;
/// Memory for pieces being assembled: bounds the pieces under way.
const ASSEMBLY_BUDGET: u64 = 32 << 20;
/// Pieces under way at once for a torrent whose pieces are written through to the disk.
const WRITE_THROUGH_PARTIAL: usize = 8;
/// Peer events queued for the torrent task.
const EVENT_QUEUE: usize = 4096;
/// Bitfields (have-all, have-none) a peer may send.
const MAX_PIECE_SETS: u32 = 4;
/// Blocks a peer may send that we never asked of it before it is banned.
const MAX_UNREQUESTED: u32 = 64;
/// Requests beyond our `reqq` a peer may send (each is refused) before it is banned.
const MAX_EXCESS_REQUESTS: u32 = 2000;
/// Extension messages taken from a peer: a burst, then a steady rate per second.
const EXTENDED_BURST: f64 = 200.0;
const EXTENDED_PER_SEC: f64 = 20.0;
/// Extension messages ignored for coming too fast before the peer is banned.
const MAX_IGNORED_EXTENDED: u32 = 2000;
/// Blocks we withdrew (cancel, choke, stall) remembered per peer, so that one arriving late
/// is not taken for junk.
const MAX_WITHDRAWN: usize = 4096;
/// Stalls (20 s with requests out and no block) before a peer is dropped.
const MAX_STALLS: u32 = 3;
/// How often each connection hears which peers we know (BEP 11: about once a minute).
const PEX_EVERY: Duration = Duration::from_secs(60);
/// The first peer exchange after a connection starts.
const PEX_FIRST: Duration = Duration::from_secs(5);

/// How a run ended.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    pub complete: bool,
}

/// What the session (or the command line, or the daemon) asks of a torrent.
pub enum TorrentCommand {
    /// A connection for this torrent, its handshake read by the session.
    Incoming {
        stream: BoxStream,
        addr: SocketAddr,
        handshake: Handshake,
        permit: ConnPermit,
        via: peer::Via,
    },
    /// Close every connection and stop announcing, until `Resume`.
    Pause,
    Resume,
    /// The files and how much of each is verified.
    Files(oneshot::Sender<Vec<FileInfo>>),
    /// Everything the daemon's RPC shows about the torrent.
    Status(oneshot::Sender<Status>),
    /// This torrent's own rate limits, in bytes per second (`None`: none).
    SetLimits {
        up: Option<u64>,
        down: Option<u64>,
    },
    /// A reader needs these pieces (a stream): they are fetched first, and the reply comes
    /// once every one of them is verified and on disk.
    Want {
        pieces: std::ops::Range<u32>,
        reply: oneshot::Sender<()>,
    },
    /// Which files to fetch and their priorities (as in `TorrentConfig`).
    SetFiles {
        wanted: Vec<bool>,
        priorities: Vec<i8>,
    },
    /// Fetch pieces in order from now on (true) or rarest first (as `TorrentConfig`).
    SetSequential(bool),
    /// Ask the trackers (no sooner than their minimum interval) and the DHT for peers now.
    Reannounce,
}

/// How often resume data is written while pieces arrive.
const RESUME_EVERY: Duration = Duration::from_secs(30);

/// Readers waiting for pieces at once, at most; more are refused (their reply dropped).
const MAX_WAITERS: usize = 256;

/// A torrent's state in detail, for the daemon's RPC.
#[derive(Debug, Clone, Default)]
pub struct Status {
    pub name: Option<String>,
    pub has_metadata: bool,
    pub piece_count: u32,
    pub piece_length: u32,
    /// Verified pieces, as a BEP 3 bitfield (empty before the metadata).
    pub pieces: Vec<u8>,
    pub peers: Vec<PeerInfo>,
    pub files: Vec<FileInfo>,
}

/// One connected peer.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    pub addr: SocketAddr,
    /// The client, from its extension handshake (`v`) or its peer id.
    pub client: String,
    pub utp: bool,
    pub encrypted: bool,
    pub outgoing: bool,
    /// The share of the pieces it has, 0 to 1.
    pub progress: f64,
    /// Payload bytes per second from it, and to it.
    pub rate_to_us: u64,
    pub rate_to_peer: u64,
    pub am_choking: bool,
    pub am_interested: bool,
    pub peer_choking: bool,
    pub peer_interested: bool,
}

/// One file of a torrent, for display.
#[derive(Debug, Clone)]
pub struct FileInfo {
    pub path: String,
    pub length: u64,
    /// Bytes of it in verified pieces.
    pub verified: u64,
}

/// What the session gives a torrent task.
pub(crate) struct Inputs {
    pub ctx: Arc<SessionCtx>,
    pub cmds: mpsc::Receiver<TorrentCommand>,
    pub found: mpsc::Receiver<(PeerSource, Vec<SocketAddr>)>,
    pub found_tx: mpsc::Sender<(PeerSource, Vec<SocketAddr>)>,
    pub stats: Arc<Stats>,
    pub notices: mpsc::Sender<Notice>,
    /// Cancelled when the torrent is removed or the session shuts down.
    pub token: CancellationToken,
}

/// A tracker client running for this torrent.
struct TrackerRun {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// What both phases of a torrent need.
pub(crate) struct Base {
    ctx: Arc<SessionCtx>,
    config: TorrentConfig,
    stats: Arc<Stats>,
    notices: mpsc::Sender<Notice>,
    token: CancellationToken,
    cmds: mpsc::Receiver<TorrentCommand>,
    found: mpsc::Receiver<(PeerSource, Vec<SocketAddr>)>,
    found_tx: mpsc::Sender<(PeerSource, Vec<SocketAddr>)>,
    events: mpsc::Receiver<(PeerKey, Event)>,
    shared: Shared,
    uploaded: Arc<AtomicU64>,
    book: Book,
    /// Outgoing connections not yet through the handshake.
    dialing: HashMap<PeerKey, SocketAddr>,
    next_key: PeerKey,
    tiers: Vec<Vec<String>>,
    tracker: Option<TrackerRun>,
    /// Tells the tracker client when the download completes.
    complete: watch::Sender<bool>,
    /// Asks the tracker client for an early announce when we have no peers.
    need_peers: Arc<Notify>,
    /// The extensions offered on our connections (none of ours on a private torrent).
    registry: Registry,
    private: bool,
    paused: bool,
    /// Dials started: a rate, however often dialing is tried (each batch of peers a source
    /// finds, each tick, each closed connection).
    dial_budget: Budget,
    rates: crate::RateMeter,
}

impl Base {
    /// Where this torrent's resume data is kept, when it keeps any.
    fn resume_path(&self) -> Option<std::path::PathBuf> {
        self.config
            .resume
            .then(|| resume::path(&self.ctx.state_dir, &self.shared.info_hash.0))
    }

    fn notice(&self, n: Notice) {
        let _ = self.notices.try_send(n);
    }

    fn spawn_peer(&mut self, addr: SocketAddr, conn: Conn, permit: ConnPermit) -> PeerKey {
        let key = self.next_key;
        self.next_key += 1;
        tokio::spawn(peer::run(key, addr, conn, self.shared.clone(), permit));
        key
    }

    /// Dials addresses that are due, within the torrent's and the session's limits.
    fn dial(&mut self, connected: &HashSet<SocketAddr>, peers: usize, complete: bool) {
        if self.paused {
            return;
        }
        let now = Instant::now();
        let room = self
            .config
            .max_peers
            .saturating_sub(peers + self.dialing.len())
            .min(self.dial_budget.available(now));
        if room == 0 {
            return;
        }
        for addr in self.book.due(now, complete, connected, room) {
            self.dial_budget.take(now);
            let Some(permit) = self.ctx.dial_permit(addr.ip()) else {
                self.book.undial(&addr);
                continue;
            };
            let key = self.spawn_peer(addr, Conn::Dial, permit);
            self.dialing.insert(key, addr);
        }
    }

    /// Takes a connection the session routed to us, if there is room and the peer is not
    /// banned.
    fn admit(
        &mut self,
        stream: BoxStream,
        addr: SocketAddr,
        handshake: Handshake,
        permit: ConnPermit,
        via: peer::Via,
        peers: usize,
    ) {
        if self.paused
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
    fn dial_ended(&mut self, key: PeerKey, reason: &str) {
        let Some(addr) = self.dialing.remove(&key) else {
            return;
        };
        if reason == peer::SELF_CONNECTION {
            self.book.forget(&addr);
        } else {
            self.book.dial_failed(&addr, Instant::now());
        }
    }

    /// Remembers addresses a source found.
    fn add_found(&mut self, source: PeerSource, addrs: Vec<SocketAddr>) {
        let n = self.book.add(addrs, source, Instant::now());
        if n > 0 {
            tracing::debug!(source = source.name(), new = n, "peers found");
        }
        self.stats
            .set_learned(source, self.book.learned.get(&source).copied().unwrap_or(0));
    }

    fn start_trackers(&mut self) {
        if self.tiers.is_empty() || self.tracker.is_some() {
            return;
        }
        let stop = CancellationToken::new();
        let client = tracker::Client::new(
            self.tiers.clone(),
            tracker::Identity {
                info_hash: self.shared.info_hash,
                peer_id: self.ctx.peer_id,
                port: self.ctx.listen.port(),
            },
            self.stats.clone(),
            self.ctx.http.clone(),
        );
        let task = tokio::spawn(client.run(
            self.found_tx.clone(),
            self.complete.subscribe(),
            self.need_peers.clone(),
            stop.clone(),
            self.notices.clone(),
        ));
        self.tracker = Some(TrackerRun { stop, task });
    }

    /// Stops the tracker client (it announces `stopped`) and waits a little for it.
    async fn stop_trackers(&mut self) {
        if let Some(t) = self.tracker.take() {
            t.stop.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(6), t.task).await;
        }
    }

    /// The uploaded counter shared with peer writers, copied into the stats.
    fn sync_uploaded(&self) {
        self.stats
            .uploaded
            .store(self.uploaded.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    fn set_limits(&self, up: Option<u64>, down: Option<u64>) {
        self.shared.torrent_up.set_rate(up);
        self.shared.torrent_down.set_rate(down);
    }

    /// Tells a peer that runs a DHT node where ours listens (BEP 5 `port`).
    fn port_message(&self, hs: &Handshake) -> Option<Message> {
        let port = self.ctx.udp_port?;
        (self.shared.dht && !self.private && hs.supports_dht()).then_some(Message::Port(port))
    }

    /// A peer told us where its DHT node listens: our node pings it.
    fn dht_node(&self, peer: SocketAddr, port: u16) {
        if !self.private && port != 0 {
            self.ctx.dht.add_node(SocketAddr::new(peer.ip(), port));
        }
    }

    /// With no peers at all, asks the trackers and the DHT early.
    fn ask_for_peers(&self) {
        self.need_peers.notify_one();
        if !self.private {
            self.ctx.dht.want_peers(self.shared.info_hash);
        }
    }

    /// Our extension handshake for a peer at `addr`.
    fn ext_handshake(&self, addr: SocketAddr, metadata_size: Option<u32>) -> Message {
        let ours = share_core::ext::OurHandshake {
            registry: self.registry,
            port: Some(self.ctx.listen.port()),
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

/// Runs a torrent until it is complete (when so configured), removed, or the session ends.
pub(crate) async fn run(
    source: Source,
    config: TorrentConfig,
    io: Inputs,
) -> Result<Outcome, EngineError> {
    let hash = source.info_hash();
    // A magnet's peers (`x.pe`) are dialed whether or not its metadata is kept.
    let magnet_peers = match &source {
        Source::Magnet(m) => m.peers.clone(),
        Source::Torrent(_) => Vec::new(),
    };
    // A magnet whose metadata is in the state folder starts as a torrent.
    let source = match source {
        Source::Magnet(m) => match magnet::load_saved(&io.ctx, &m) {
            Some(meta) => Source::Torrent(meta),
            None => Source::Magnet(m),
        },
        s => s,
    };
    let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
    let uploaded = Arc::new(AtomicU64::new(0));
    let private_torrent = matches!(&source, Source::Torrent(m) if m.info.private);
    let shared = Shared {
        info_hash: hash,
        peer_id: io.ctx.peer_id,
        dht: io.ctx.dht.is_on() && !private_torrent,
        encryption: io.ctx.encryption,
        tcp: io.ctx.tcp,
        utp: io.ctx.utp.clone(),
        // Dial from the address we listen on, when it is a specific one: the tracker and
        // the peers then see (and pass on) the address that takes connections.
        bind_ip: Some(io.ctx.listen.ip()).filter(|ip| !ip.is_unspecified()),
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
    book.add(config.peers.iter().copied(), PeerSource::User, now);
    book.add(magnet_peers, PeerSource::User, now);
    let (tiers, private) = match &source {
        Source::Torrent(m) => (tiers(&m.trackers, &config), m.info.private),
        Source::Magnet(m) => {
            let t: Vec<Vec<String>> = m.trackers.iter().map(|u| vec![u.clone()]).collect();
            (tiers(&t, &config), false)
        }
    };
    let (complete, _) = watch::channel(false);
    let mut base = Base {
        ctx: io.ctx,
        config,
        stats: io.stats,
        notices: io.notices,
        token: io.token,
        cmds: io.cmds,
        found: io.found,
        found_tx: io.found_tx,
        events,
        shared,
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
        paused: false,
        dial_budget: Budget::new(DIAL_BURST, DIALS_PER_SEC),
        rates: crate::RateMeter::default(),
    };
    base.set_private(private);
    let (meta, handed) = match source {
        Source::Torrent(m) => (m, Vec::new()),
        Source::Magnet(m) => {
            base.stats.set_state(crate::State::Metadata);
            base.start_trackers();
            match magnet::fetch(&mut base, &m).await {
                Ok(Some(got)) => got,
                Ok(None) => {
                    base.stop_trackers().await;
                    base.sync_uploaded();
                    return Ok(Outcome { complete: false });
                }
                Err(e) => {
                    base.stop_trackers().await;
                    return Err(e);
                }
            }
        }
    };
    transfer(base, meta, handed).await
}

impl Base {
    /// A private torrent (BEP 27) offers no metadata or peer exchange, and its peers come
    /// only from its trackers and `--peer`; the session stops announcing it on LSD.
    fn set_private(&mut self, private: bool) {
        self.private = private;
        self.registry = if private {
            Registry::private()
        } else {
            Registry::public().with(share_core::ext::Extension::Pex, self.ctx.pex)
        };
        if private {
            let _ = self.ctx.private.try_send(self.shared.info_hash);
        }
    }
}

/// A client's name from its peer id (Azureus style `-XX1234-`), or its first bytes.
fn client_of(id: &[u8; 20]) -> String {
    let head = &id[..8];
    if head[0] == b'-' && head[7] == b'-' {
        String::from_utf8_lossy(&head[1..7]).into_owned()
    } else {
        String::from_utf8_lossy(head)
            .chars()
            .filter(|c| !c.is_control())
            .collect()
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

struct Peer {
    addr: SocketAddr,
    /// We dialed it (rather than it us).
    outgoing: bool,
    /// Where it listens, when its extension handshake said (`p`).
    listen_addr: Option<SocketAddr>,
    peer_id: [u8; 20],
    tx: mpsc::Sender<Command>,
    token: CancellationToken,
    queued: Arc<AtomicUsize>,
    has: Bitfield,
    fast: bool,
    am_choking: bool,
    am_interested: bool,
    peer_choking: bool,
    peer_interested: bool,
    inflight: HashSet<BlockRef>,
    depth: usize,
    reqq: usize,
    allowed_fast: HashSet<u32>,
    received_this_tick: u64,
    received_total: u64,
    /// Bytes per second it sends us (smoothed).
    rate: f64,
    last_block: Instant,
    /// When we last became interested in it (for snubbing).
    interested_since: Instant,
    strikes: u32,
    bad_requests: u32,
    /// What its extension handshake said.
    ext: ExtHandshake,
    /// Peer exchange with it: what we told it, what we take from it, when we tell it next.
    pex_out: pex::Outbox,
    pex_in: pex::Inbox,
    pex_next: Instant,
    /// Metadata pieces it asked of us (bounded).
    metadata_requests: u32,
    /// How its bytes travel.
    via: peer::Via,
    /// Payload bytes sent to it (counted by its writer), and the rate of that.
    sent: Arc<AtomicU64>,
    sent_last: u64,
    rate_to_peer: u64,
    /// Bitfields (or have-all, have-none) it sent.
    piece_sets: u32,
    /// Blocks we asked of it and then withdrew (cancelled, or choked without the fast
    /// extension): still welcome if they come, but no longer expected.
    withdrawn: HashSet<BlockRef>,
    /// Abuse counters: blocks never asked for, requests beyond our queue, extension
    /// messages ignored for their rate, stalls.
    unrequested: u32,
    excess_requests: u32,
    ext_budget: Budget,
    ext_ignored: u32,
    stalls: u32,
}

/// A token bucket counting messages (not bytes): `burst` at once, `rate` a second after.
#[derive(Debug)]
struct Budget {
    tokens: f64,
    at: Instant,
    burst: f64,
    rate: f64,
}

impl Budget {
    fn new(burst: f64, rate: f64) -> Self {
        Budget {
            tokens: burst,
            at: Instant::now(),
            burst,
            rate,
        }
    }

    /// Whole tokens available now.
    fn available(&mut self, now: Instant) -> usize {
        self.refill(now);
        self.tokens as usize
    }

    fn refill(&mut self, now: Instant) {
        self.tokens =
            (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate).min(self.burst);
        self.at = now;
    }

    fn take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl Peer {
    fn new(link: Link, outgoing: bool, pieces: u32) -> Peer {
        let now = Instant::now();
        let Link {
            addr,
            handshake,
            via,
            tx,
            queued,
            sent,
            token,
        } = link;
        Peer {
            addr,
            outgoing,
            listen_addr: outgoing.then_some(addr),
            peer_id: handshake.peer_id,
            tx,
            token,
            queued,
            has: Bitfield::new(pieces),
            fast: handshake.supports_fast(),
            am_choking: true,
            am_interested: false,
            peer_choking: true,
            peer_interested: false,
            inflight: HashSet::new(),
            depth: MIN_DEPTH * 2,
            reqq: 250,
            allowed_fast: HashSet::new(),
            received_this_tick: 0,
            received_total: 0,
            rate: 0.0,
            last_block: now,
            interested_since: now,
            strikes: 0,
            bad_requests: 0,
            ext: ExtHandshake::default(),
            pex_out: pex::Outbox::default(),
            pex_in: pex::Inbox::default(),
            pex_next: now + PEX_FIRST,
            metadata_requests: 0,
            via,
            sent,
            sent_last: 0,
            rate_to_peer: 0,
            piece_sets: 0,
            withdrawn: HashSet::new(),
            unrequested: 0,
            excess_requests: 0,
            ext_budget: Budget::new(EXTENDED_BURST, EXTENDED_PER_SEC),
            ext_ignored: 0,
            stalls: 0,
        }
    }

    /// A request we will not wait for any more (its block is still welcome).
    fn withdraw(&mut self, b: BlockRef) {
        if self.withdrawn.len() >= MAX_WITHDRAWN {
            self.withdrawn.clear();
        }
        self.withdrawn.insert(b);
    }

    fn log_totals(&self) {
        tracing::debug!(
            peer = %self.listen_addr.unwrap_or(self.addr),
            received = self.received_total,
            via = %self.via,
            "peer totals"
        );
    }

    /// Queues a message; a peer whose queue is full does not read and is dropped.
    fn send(&self, m: Message) {
        if self.tx.try_send(Command::Send(m)).is_err() {
            self.token.cancel();
        }
    }
}

struct Torrent {
    base: Base,
    meta: Metainfo,
    info: Info,
    picker: Picker,
    peers: HashMap<PeerKey, Peer>,
    /// Connections banned in this run (their blocks may still be in pieces under way).
    banned_keys: HashSet<PeerKey>,
    /// Readers waiting for pieces, in the order they asked.
    waiters: Vec<(std::ops::Range<u32>, oneshot::Sender<()>)>,
    /// When resume data was last written, and how many pieces it held.
    resume_saved: Option<(Instant, u32)>,
    choker: Choker,
    /// A slot came free: re-run the choker's ranking at the next tick.
    rechoke_soon: bool,
    started: Instant,
    /// Pieces being assembled from blocks and hashed as they arrive.
    assembly: Assembler,
    /// Pieces read for uploads, and requests waiting for them.
    uploads: Uploads,
    disk: mpsc::Sender<Job>,
    /// Where the files are (below a confined root).
    layout: Layout,
    /// The torrent's hold on its folder in the session.
    _content: crate::session::ContentClaim,
}

/// The second phase: check the data, then exchange pieces.
async fn transfer(
    mut base: Base,
    meta: Metainfo,
    handed: Vec<(PeerKey, magnet::Connected)>,
) -> Result<Outcome, EngineError> {
    let info = meta.info.clone();
    if !info.v1 {
        base.stop_trackers().await;
        return Err(EngineError::BadMetadata {
            hash: meta.info_hash,
            reason: "BitTorrent v2-only torrents cannot be transferred by this build yet".into(),
        });
    }
    base.stats.total.store(info.total_length, Ordering::Relaxed);
    if base.config.wanted.is_empty() {
        if let Some(f) = &base.config.file_filter {
            let wanted = f.choose(&info);
            if !wanted.iter().any(|&w| w) {
                base.stop_trackers().await;
                return Err(EngineError::NoFileChosen(info.name.clone()));
            }
            base.config.wanted = wanted;
        }
    }
    let (layout, claim) = match place(&base.ctx, &base.config, &info) {
        Ok(p) => p,
        Err(e) => {
            base.stop_trackers().await;
            return Err(e);
        }
    };
    let (have, found) = {
        base.stats.set_state(crate::State::CheckWait);
        let _turn = base.ctx.checks.clone().acquire_owned().await;
        base.stats.set_state(crate::State::Checking);
        let resume = base.resume_path();
        check(
            &layout,
            &info,
            &base.stats,
            resume.as_deref(),
            base.shared.info_hash.0,
        )
        .await
    };
    let missing: Vec<u32> = (0..info.piece_count()).filter(|&i| !have.get(i)).collect();
    base.notice(Notice::Checked {
        valid: have.count(),
        total: have.len(),
        missing: missing.iter().copied().take(64).collect(),
        found,
    });
    if base.config.seed_only && have.count() == 0 {
        base.stop_trackers().await;
        return Err(EngineError::NothingToSeed(base.config.dir.join(&info.name)));
    }
    let mut store = Store::with_budget(layout.clone(), base.ctx.files.clone());
    // Every file at full length, and BEP 47's executables and symlinks, even when the data
    // is all there already (a seed only serves what it has).
    if !base.config.seed_only {
        let skip = unwanted_slots(&info, &base.config.wanted);
        if let Err(e) = store.allocate_except(&skip) {
            base.stop_trackers().await;
            return Err(e.into());
        }
    }

    let (jobs_tx, jobs_rx) = mpsc::channel(DISK_QUEUE);
    let (done_tx, mut done) = mpsc::unbounded_channel();
    let disk_thread = disk::spawn(store, jobs_rx, done_tx);
    let mut picker = Picker::new(info.piece_length, info.total_length, have, rand::random());
    let assembly = Assembler::new(info.piece_length, base.ctx.memory.clone());
    // Pieces under way cost their buffers when assembled in memory; written through to the
    // disk they cost little, but each one spreads the peers thinner.
    picker.set_max_partial(if assembly.writes_through() {
        WRITE_THROUGH_PARTIAL
    } else {
        (ASSEMBLY_BUDGET / info.piece_length as u64).clamp(2, 4096) as usize
    });
    picker.set_priorities(piece_priorities(
        &info,
        &base.config.wanted,
        &base.config.priorities,
    ));
    picker.set_sequential(base.config.sequential);
    base.complete.send_replace(picker.is_done());
    base.start_trackers();
    let mut t = Torrent {
        picker,
        choker: Choker::new(base.config.upload_slots, rand::random()),
        rechoke_soon: false,
        started: Instant::now(),
        assembly,
        uploads: Uploads::new(info.piece_length, base.ctx.memory.clone()),
        disk: jobs_tx,
        info,
        meta,
        peers: HashMap::new(),
        banned_keys: HashSet::new(),
        waiters: Vec::new(),
        resume_saved: None,
        layout,
        _content: claim,
        base,
    };
    if t.picker.is_done() {
        t.base.notice(Notice::Complete);
    }
    t.set_state();
    let had_pieces = t.picker.have().count() > 0;
    for (key, c) in handed {
        if had_pieces {
            // It was told we have nothing; simpler to reconnect than to correct that.
            c.token.cancel();
        } else {
            t.adopt(key, c).await;
        }
    }
    t.dial_known();

    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut failure = None;
    loop {
        if t.base.config.stop_when_complete && t.picker.is_done() {
            break;
        }
        tokio::select! {
            _ = t.base.token.cancelled() => break,
            Some((key, ev)) = t.base.events.recv() => t.on_event(key, ev).await,
            Some(d) = done.recv() => match d {
                Done::Written { index, buf } => {
                    if let Some(old) = t.uploads.insert(index, buf) {
                        t.assembly.recycle(old);
                    }
                    t.on_written(index);
                }
                Done::Stored { index } | Done::Checked { index, ok: true } => t.on_written(index),
                Done::Checked { index, ok: false } => t.on_failed(index),
                Done::Read { unit, data } => t.on_unit_read(unit, data),
                Done::Failed(e) => { failure = Some(e); break; }
                Done::Synced => t.save_resume(),
            },
            Some(c) = t.base.cmds.recv() => t.on_command(c).await,
            Some((source, addrs)) = t.base.found.recv() => {
                t.base.add_found(source, addrs);
                t.dial_known();
            }
            _ = tick.tick() => t.on_tick(),
        }
        t.base.sync_uploaded();
    }

    // Wind down: tell the trackers, flush the disk, then close every connection.
    let complete = t.picker.is_done();
    let stopping = t.base.tracker.take();
    if let Some(s) = &stopping {
        s.stop.cancel();
    }
    if failure.is_none() && t.disk.send(Job::Sync).await.is_ok() {
        while let Some(d) = done.recv().await {
            match d {
                Done::Synced => {
                    t.save_resume();
                    break;
                }
                Done::Failed(e) => {
                    failure = Some(e);
                    break;
                }
                _ => {}
            }
        }
    }
    for p in t.peers.values() {
        p.log_totals();
        let _ = p.tx.try_send(Command::Close);
    }
    drop(t.disk);
    // Give writers a moment to flush a last message, then cut everything.
    tokio::time::sleep(Duration::from_millis(50)).await;
    t.base.shared.shutdown.cancel();
    t.base.sync_uploaded();
    let _ = tokio::task::spawn_blocking(move || disk_thread.join()).await;
    if let Some(s) = stopping {
        let _ = tokio::time::timeout(Duration::from_secs(6), s.task).await;
    }
    if let Some(e) = failure {
        return Err(EngineError::Disk(e));
    }
    Ok(Outcome { complete })
}

/// Hashes what is already on disk (on all cores); a missing content folder is skipped.
/// With resume data (see `share_storage::resume`), pieces of files whose size and mtime are
/// as recorded are trusted and not read. Returns the pieces that verify and whether any of
/// the content was there at all.
async fn check(
    layout: &Layout,
    info: &Info,
    stats: &Arc<Stats>,
    resume: Option<&std::path::Path>,
    info_hash: [u8; 20],
) -> (Bitfield, bool) {
    let count = info.piece_count();
    if !layout.slots.iter().any(|s| layout.root.exists(&s.path)) {
        return (Bitfield::new(count), false);
    }
    let layout = layout.clone();
    let pieces = info.pieces.clone();
    let st = stats.clone();
    let resume = resume.map(|p| p.to_path_buf());
    let valid = tokio::task::spawn_blocking(move || {
        let trusted = resume.and_then(|path| {
            let bytes = match share_storage::state::read_state(&path, resume::MAX_RESUME) {
                Ok(Some(b)) => b,
                Ok(None) => return None,
                Err(e) => {
                    tracing::warn!("resume data {e}: hashing everything");
                    return None;
                }
            };
            match resume::Resume::decode(&bytes, &info_hash, count, layout.slots.len()) {
                Ok(r) => Some(r.trusted(&layout, &resume::stamps(&layout))),
                Err(why) => {
                    tracing::warn!(path = %path.display(), "resume data refused ({why}): hashing everything");
                    None
                }
            }
        });
        let Some(trusted) = trusted else {
            return hash::check_pieces(&layout, &pieces, hash::default_threads(), &st.checked);
        };
        let only: Vec<bool> = trusted.iter().map(Option::is_none).collect();
        let hashed = only.iter().filter(|&&h| h).count();
        tracing::info!(trusted = trusted.len() - hashed, hashed, "resume data used");
        let mut valid = if hashed > 0 {
            hash::check_some(&layout, &pieces, Some(&only), hash::default_threads(), &st.checked)
        } else {
            vec![false; count as usize]
        };
        for (v, t) in valid.iter_mut().zip(&trusted) {
            if let Some(t) = t {
                *v = *t;
            }
        }
        valid
    })
    .await
    .unwrap_or_default();
    let have = Bitfield::from_bools(&valid);
    let bytes: u64 = have.ones().map(|i| info.piece_size(i) as u64).sum();
    stats.verified.store(bytes, Ordering::Relaxed);
    if valid.len() as u32 == count {
        (have, true)
    } else {
        (Bitfield::new(count), true)
    }
}

impl Torrent {
    async fn on_event(&mut self, key: PeerKey, ev: Event) {
        match ev {
            Event::Connected(link) => self.on_connected(key, link),
            Event::Closed(reason) => self.on_closed(key, &reason),
            Event::Messages(batch, _permit) => {
                for m in batch {
                    // A peer closed or banned by an earlier message: the rest is not read.
                    match self.peers.get(&key) {
                        Some(p) if !p.token.is_cancelled() => {}
                        _ => break,
                    }
                    self.on_message(key, m).await;
                }
            }
        }
    }

    async fn on_command(&mut self, c: TorrentCommand) {
        match c {
            TorrentCommand::Incoming {
                stream,
                addr,
                handshake,
                permit,
                via,
            } => {
                let n = self.peers.len();
                self.base.admit(stream, addr, handshake, permit, via, n);
            }
            TorrentCommand::Pause => {
                if !self.base.paused {
                    self.base.paused = true;
                    for p in self.peers.values() {
                        p.token.cancel();
                    }
                    self.base.stop_trackers().await;
                }
            }
            TorrentCommand::Resume => {
                if self.base.paused {
                    self.base.paused = false;
                    self.base.start_trackers();
                    self.dial_known();
                }
            }
            TorrentCommand::Files(reply) => {
                let _ = reply.send(self.files());
            }
            TorrentCommand::Status(reply) => {
                let _ = reply.send(self.status());
            }
            TorrentCommand::SetLimits { up, down } => self.base.set_limits(up, down),
            TorrentCommand::SetFiles { wanted, priorities } => {
                self.base.config.wanted = wanted;
                self.base.config.priorities = priorities;
                let p = piece_priorities(
                    &self.info,
                    &self.base.config.wanted,
                    &self.base.config.priorities,
                );
                let was_done = self.picker.is_done();
                self.picker.set_priorities(p);
                let done = self.picker.is_done();
                self.base.complete.send_replace(done);
                if done && !was_done {
                    self.base.notice(Notice::Complete);
                }
                let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
                for k in keys {
                    self.update_interest(k);
                    self.fill(k);
                }
                if !done {
                    self.dial_known();
                }
            }
            TorrentCommand::Reannounce => {
                if !self.base.paused {
                    self.base.ask_for_peers();
                }
            }
            TorrentCommand::SetSequential(on) => {
                self.base.config.sequential = on;
                self.picker.set_sequential(on);
            }
            TorrentCommand::Want { pieces, reply } => {
                let end = pieces.end.min(self.info.piece_count());
                let pieces = pieces.start.min(end)..end;
                if pieces.clone().all(|i| self.picker.have().get(i)) {
                    let _ = reply.send(());
                } else if self.waiters.len() < MAX_WAITERS {
                    self.waiters.push((pieces, reply));
                    self.update_deadlines();
                }
            }
        }
        self.set_state();
    }

    /// Readers whose pieces are all here now are answered; the pieces the others wait for
    /// go first in the picker, oldest reader first.
    pub(super) fn update_deadlines(&mut self) {
        let have = self.picker.have();
        let mut i = 0;
        while i < self.waiters.len() {
            let (range, reply) = &self.waiters[i];
            if reply.is_closed() || range.clone().all(|p| have.get(p)) {
                let (_, reply) = self.waiters.remove(i);
                let _ = reply.send(());
            } else {
                i += 1;
            }
        }
        let mut urgent = Vec::new();
        for (range, _) in &self.waiters {
            for p in range.clone() {
                if !have.get(p) && !urgent.contains(&p) && urgent.len() < 4096 {
                    urgent.push(p);
                }
            }
        }
        self.picker.set_deadlines(urgent);
    }

    fn status(&self) -> Status {
        let count = self.info.piece_count().max(1) as f64;
        Status {
            name: Some(self.info.name.clone()),
            has_metadata: true,
            piece_count: self.info.piece_count(),
            piece_length: self.info.piece_length,
            pieces: self.picker.have().as_bytes().to_vec(),
            peers: self
                .peers
                .values()
                .map(|p| PeerInfo {
                    addr: p.listen_addr.unwrap_or(p.addr),
                    client: p
                        .ext
                        .version
                        .clone()
                        .unwrap_or_else(|| client_of(&p.peer_id)),
                    utp: p.via.transport == peer::Transport::Utp,
                    encrypted: p.via.encryption != peer::Encryption::Plain,
                    outgoing: p.outgoing,
                    progress: p.has.count() as f64 / count,
                    rate_to_us: p.rate as u64,
                    rate_to_peer: p.rate_to_peer,
                    am_choking: p.am_choking,
                    am_interested: p.am_interested,
                    peer_choking: p.peer_choking,
                    peer_interested: p.peer_interested,
                })
                .collect(),
            files: self.files(),
        }
    }

    fn files(&self) -> Vec<FileInfo> {
        let pl = self.info.piece_length as u64;
        self.info
            .files
            .iter()
            .filter(|f| !f.padding)
            .map(|f| {
                let end = f.offset + f.length;
                let mut verified = 0;
                if f.length > 0 {
                    for i in (f.offset / pl) as u32..=((end - 1) / pl) as u32 {
                        if self.picker.have().get(i) {
                            let (s, e) = (i as u64 * pl, (i as u64 + 1) * pl);
                            verified += e.min(end) - s.max(f.offset);
                        }
                    }
                }
                FileInfo {
                    path: f.display_path(&self.info),
                    length: f.length,
                    verified,
                }
            })
            .collect()
    }

    /// Runs the choker (tit-for-tat while downloading, rotation while seeding) and applies
    /// its choice.
    fn rechoke(&mut self, now: Instant) {
        if self.base.config.no_upload {
            return;
        }
        let views: Vec<PeerView> = self
            .peers
            .iter()
            .map(|(&key, p)| PeerView {
                key,
                interested: p.peer_interested,
                download_rate: p.rate,
                upload_rate: p.rate_to_peer as f64,
                received_total: p.received_total,
                silent_for: p.am_interested.then(|| {
                    now.duration_since(p.last_block.max(p.interested_since))
                        .as_secs()
                }),
            })
            .collect();
        let secs = now.duration_since(self.started).as_secs();
        let seeding = self.picker.is_done();
        let force = std::mem::take(&mut self.rechoke_soon);
        if !self.choker.tick(secs, &views, seeding, force) {
            return;
        }
        let set = self.choker.unchoked();
        if tracing::enabled!(tracing::Level::DEBUG) {
            let optimistic = self.choker.optimistic();
            let names: Vec<String> = set
                .iter()
                .filter_map(|k| {
                    let p = self.peers.get(k)?;
                    let mark = if optimistic == Some(*k) { "*" } else { "" };
                    Some(format!("{}{mark}", p.listen_addr.unwrap_or(p.addr)))
                })
                .collect();
            let interested = views.iter().filter(|v| v.interested).count();
            tracing::debug!(secs, interested, unchoked = names.join(" "), "rechoked");
        }
        self.apply_choke();
    }

    /// Sends choke and unchoke messages so that the peers' states match the choker's set.
    fn apply_choke(&mut self) {
        let set = self.choker.unchoked();
        for (key, p) in self.peers.iter_mut() {
            let unchoke = set.contains(key);
            if unchoke == p.am_choking {
                p.am_choking = !unchoke;
                p.send(if unchoke {
                    Message::Unchoke
                } else {
                    Message::Choke
                });
            }
        }
    }

    /// Tells the picker how many connected peers have every piece.
    fn count_seeds(&mut self) {
        let seeds = self.peers.values().filter(|p| p.has.is_complete()).count();
        self.picker.set_seeds(seeds as u32);
    }

    /// Downloading, seeding or paused, as it is now.
    fn set_state(&self) {
        let s = if self.base.paused {
            crate::State::Paused
        } else if self.picker.is_done() {
            crate::State::Seeding
        } else {
            crate::State::Downloading
        };
        self.base.stats.set_state(s);
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        self.uploads.trim_idle(now.into_std());
        self.base.rates.tick(&self.base.stats);
        self.set_state();
        for p in self.peers.values_mut() {
            let sent = p.sent.load(Ordering::Relaxed);
            p.rate_to_peer = crate::smooth(p.rate_to_peer, sent.saturating_sub(p.sent_last));
            p.sent_last = sent;
        }
        self.count_seeds();
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for &key in &keys {
            let Some(p) = self.peers.get_mut(&key) else {
                continue;
            };
            p.rate = 0.6 * p.rate + 0.4 * p.received_this_tick as f64;
            p.received_this_tick = 0;
            // A peer that stalled once gets no more than its rate earns (a peer that sends a
            // byte a second must not hold 32 blocks at a time).
            let floor = if p.stalls > 0 { 1 } else { MIN_DEPTH };
            p.depth =
                ((p.rate * DEPTH_WINDOW_SECS / MAX_BLOCK as f64) as usize).clamp(floor, MAX_DEPTH);
            if !p.inflight.is_empty() && now.duration_since(p.last_block) > STALL {
                // Stalled: its requests go to others.
                let held: Vec<BlockRef> = p.inflight.drain().collect();
                for b in held {
                    self.picker.request_dropped(&b, key);
                    p.withdraw(b);
                }
                p.last_block = now;
                p.stalls += 1;
                // From now on trusted with one block at a time, until its rate earns more.
                p.depth = 1;
                if p.stalls >= MAX_STALLS {
                    self.close(key, "stalled three times with requests out");
                    continue;
                }
            }
            self.update_interest(key);
        }
        self.rechoke(now);
        for key in keys {
            self.fill(key);
        }
        self.send_pex(now);
        self.dial_known();
        if self.peers.is_empty() && self.base.dialing.is_empty() && !self.picker.is_done() {
            self.base.ask_for_peers();
        }
        // Resume data about every half minute while pieces arrive: sync first (the answer
        // writes it, see `save_resume`).
        let count = self.picker.have().count();
        let due = match self.resume_saved {
            None => count > 0,
            Some((at, n)) => n != count && at.elapsed() >= RESUME_EVERY,
        };
        if due && self.base.config.resume && self.disk.try_send(Job::Sync).is_ok() {
            self.resume_saved = Some((Instant::now(), count));
        }
    }
}

impl Torrent {
    /// Writes resume data: the disk has just been synced, so every piece the picker holds is
    /// on disk; the files are stamped now (a later write changes a stamp, and its pieces are
    /// hashed on the next start).
    fn save_resume(&mut self) {
        let Some(path) = self.base.resume_path() else {
            return;
        };
        let layout = self.layout.clone();
        let have = self.picker.have();
        self.resume_saved = Some((Instant::now(), have.count()));
        let data = resume::Resume {
            info_hash: self.base.shared.info_hash.0,
            pieces: have.as_bytes().to_vec(),
            piece_count: have.len(),
            files: resume::stamps(&layout),
        }
        .encode();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = share_storage::state::write_state(&path, &data) {
                tracing::warn!("writing resume data: {e}");
            }
        });
    }
}

/// Where a torrent's files go: beneath its download folder (or the folder it must be
/// confined to), opened by the kernel beneath a handle of it; and the torrent's claim on its
/// content root, which no other torrent of the session may hold.
fn place(
    ctx: &SessionCtx,
    config: &TorrentConfig,
    info: &Info,
) -> Result<(Layout, crate::session::ContentClaim), EngineError> {
    use share_storage::root::Root;
    let shown = config.dir.join(&info.name);
    let (root_dir, prefix) = match &config.confine {
        Some(outer) => match config.dir.strip_prefix(outer) {
            Ok(p) => (outer.clone(), p.to_path_buf()),
            Err(_) => return Err(share_storage::StorageError::Escapes(config.dir.clone()).into()),
        },
        None => (config.dir.clone(), std::path::PathBuf::new()),
    };
    let create = !config.seed_only;
    let root = match Root::open(&root_dir, ctx.links.clone(), create) {
        Ok(r) => r,
        Err(_) if config.seed_only => return Err(EngineError::NothingToSeed(shown)),
        Err(e) => return Err(e.into()),
    };
    if create && !prefix.as_os_str().is_empty() {
        root.create_dirs(&prefix)?;
    }
    let layout = Layout::for_torrent(Arc::new(root), &prefix, info)?;
    let (dev, ino) = layout.root.id().unwrap_or_default();
    let claim = ctx
        .contents
        .claim((dev, ino, layout.content.clone()))
        .ok_or(EngineError::SameContent(shown))?;
    Ok((layout, claim))
}

/// Each piece's priority for the picker, from the files' choices (indexes among the
/// non-padding files): the highest of the wanted files it holds bytes of, or not wanted.
fn piece_priorities(info: &Info, wanted: &[bool], priorities: &[i8]) -> Vec<u8> {
    use share_core::picker::{NORMAL, SKIP};
    let count = info.piece_count() as usize;
    if wanted.iter().all(|&w| w) && priorities.iter().all(|&p| p == 0) {
        return vec![NORMAL; count];
    }
    let pl = info.piece_length as u64;
    let mut out = vec![SKIP; count];
    for (i, f) in info.files.iter().filter(|f| !f.padding).enumerate() {
        if f.length == 0 || !wanted.get(i).copied().unwrap_or(true) {
            continue;
        }
        let p = match priorities.get(i).copied().unwrap_or(0) {
            x if x < 0 => 1,
            0 => NORMAL,
            _ => 3,
        };
        let (first, last) = (f.offset / pl, (f.offset + f.length - 1) / pl);
        for slot in &mut out[first as usize..=(last as usize).min(count - 1)] {
            *slot = (*slot).max(p);
        }
    }
    out
}

/// Layout slots (all files, padding included) of files that are not wanted.
fn unwanted_slots(info: &Info, wanted: &[bool]) -> Vec<bool> {
    let mut n = 0;
    info.files
        .iter()
        .map(|f| {
            if f.padding {
                return false;
            }
            n += 1;
            !wanted.get(n - 1).copied().unwrap_or(true)
        })
        .collect()
}
