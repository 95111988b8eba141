//! The torrent task: the one owner of the picker, the peer table and choking.
//!
//! It reacts to peer events, disk results, new connections and a one-second tick. It never
//! touches a socket or a file itself: it sends commands to peer writers and jobs to the disk
//! thread, whose queue is bounded, so a slow disk slows the download instead of filling
//! memory.
//!
//! This file holds the state, the run loop, the tick and choking; `peers.rs` the connections
//! (dialing, admitting, closing, banning); `exchange.rs` the messages, requests, blocks and
//! hash results.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use share_core::bitfield::Bitfield;
use share_core::choker::{Choker, PeerView};
use share_core::picker::{Arrival, Picker};
use share_core::wire::{self, BlockRef, Handshake, Message, MAX_BLOCK};
use share_core::{Info, Metainfo};
use share_storage::store::Store;
use share_storage::{hash, Layout};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::assembly::Assembler;
use crate::disk::{self, Done, Job};
use crate::limit::RateLimiter;
use crate::peer::{self, Command, Event, Shared, MAX_QUEUED_UPLOADS};
use crate::tracker;
use crate::uploads::{Serve, Uploads};
use crate::{Config, EngineError, Notice, Stats};
use share_storage::buf::AlignedBuf;

pub use share_core::picker::PeerKey;

mod exchange;
mod peers;

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

/// Most addresses remembered for dialing.
const MAX_KNOWN: usize = 1000;

/// How a run ended.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    pub complete: bool,
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
}

impl Peer {
    fn log_totals(&self) {
        tracing::debug!(
            peer = %self.listen_addr.unwrap_or(self.addr),
            received = self.received_total,
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

struct Known {
    addr: SocketAddr,
    next_try: Instant,
    failures: u32,
    busy: bool,
    /// It had every piece when last seen: not worth dialing once we have them all too.
    seed: bool,
}

struct Torrent {
    info: Info,
    picker: Picker,
    peers: HashMap<PeerKey, Peer>,
    /// Outgoing connections not yet through the handshake.
    dialing: HashMap<PeerKey, SocketAddr>,
    known: Vec<Known>,
    banned_addrs: HashSet<SocketAddr>,
    banned_ids: HashSet<[u8; 20]>,
    next_key: PeerKey,
    choker: Choker,
    /// Our listening address: a tracker may list us, and we do not dial ourselves.
    listen: SocketAddr,
    /// Asks the tracker client for an early announce when we have no peers.
    need_peers: Arc<tokio::sync::Notify>,
    /// A slot came free: re-run the choker's ranking at the next tick.
    rechoke_soon: bool,
    started: Instant,
    /// Pieces being assembled from blocks and hashed as they arrive.
    assembly: Assembler,
    /// Pieces read for uploads, and requests waiting for them.
    uploads: Uploads,
    shared: Shared,
    disk: mpsc::Sender<Job>,
    /// Tells the tracker client when the download completes.
    complete: tokio::sync::watch::Sender<bool>,
    config: Config,
    stats: Arc<Stats>,
    notices: mpsc::UnboundedSender<Notice>,
}

pub async fn run(
    listener: TcpListener,
    meta: Metainfo,
    dir: PathBuf,
    config: Config,
    stats: Arc<Stats>,
    notices: mpsc::UnboundedSender<Notice>,
    shutdown: CancellationToken,
) -> Result<Outcome, EngineError> {
    let info = meta.info.clone();
    let layout = Layout::for_torrent(&dir, &info)?;
    let have = check(&layout, &info, &stats).await;
    let missing: Vec<u32> = (0..info.piece_count()).filter(|&i| !have.get(i)).collect();
    let _ = notices.send(Notice::Checked {
        valid: have.count(),
        total: have.len(),
        missing: missing.iter().copied().take(64).collect(),
    });
    if config.seed_only && have.count() == 0 {
        return Err(EngineError::NothingToSeed(dir.join(&info.name)));
    }
    let mut store = Store::new(layout);
    if !have.is_complete() && !config.seed_only {
        store.allocate()?;
    }

    let (events_tx, mut events) = mpsc::channel(4096);
    let (jobs_tx, jobs_rx) = mpsc::channel(DISK_QUEUE);
    let (done_tx, mut done) = mpsc::unbounded_channel();
    let disk_thread = disk::spawn(store, jobs_rx, done_tx);
    let session = shutdown.child_token();
    let uploaded = Arc::new(AtomicU64::new(0));
    let shared = Shared {
        info_hash: meta.info_hash,
        peer_id: peer_id(),
        listen_port: listener.local_addr()?.port(),
        max_frame: wire::max_frame(info.piece_count()),
        events: events_tx,
        uploaded: uploaded.clone(),
        upload_limit: config
            .max_upload_rate
            .map(|r| Arc::new(RateLimiter::new(r))),
        download_limit: config
            .max_download_rate
            .map(|r| Arc::new(RateLimiter::new(r))),
        shutdown: session.clone(),
    };
    let now = Instant::now();
    let have_all = have.is_complete();
    let mut picker = Picker::new(info.piece_length, info.total_length, have, rand::random());
    picker.set_max_partial((ASSEMBLY_BUDGET / info.piece_length as u64).clamp(2, 4096) as usize);
    let (complete_tx, complete_rx) = tokio::sync::watch::channel(have_all);
    let (tracker_peers_tx, mut tracker_peers) = mpsc::channel(16);
    let tracker_stop = CancellationToken::new();
    let need_peers = Arc::new(tokio::sync::Notify::new());
    let tracker = tokio::spawn(
        tracker::Client::new(
            config.trackers.clone(),
            tracker::Identity {
                info_hash: meta.info_hash,
                peer_id: shared.peer_id,
                port: listener.local_addr()?.port(),
                total: info.total_length,
            },
            stats.clone(),
        )
        .run(
            tracker_peers_tx,
            complete_rx,
            need_peers.clone(),
            tracker_stop.clone(),
            notices.clone(),
        ),
    );
    let mut t = Torrent {
        picker,
        info,
        peers: HashMap::new(),
        dialing: HashMap::new(),
        known: config
            .peers
            .iter()
            .map(|&addr| Known {
                addr,
                next_try: now,
                failures: 0,
                busy: false,
                seed: false,
            })
            .collect(),
        banned_addrs: HashSet::new(),
        banned_ids: HashSet::new(),
        next_key: 1,
        choker: Choker::new(config.upload_slots, rand::random()),
        rechoke_soon: false,
        listen: listener.local_addr()?,
        need_peers: need_peers.clone(),
        started: Instant::now(),
        assembly: Assembler::new(meta.info.piece_length),
        uploads: Uploads::new(meta.info.piece_length),
        shared,
        disk: jobs_tx,
        complete: complete_tx,
        config: config.clone(),
        stats: stats.clone(),
        notices: notices.clone(),
    };
    if t.picker.is_complete() {
        let _ = notices.send(Notice::Complete);
    }
    t.dial_known();

    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut failure = None;
    loop {
        if config.stop_when_complete && t.picker.is_complete() {
            break;
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some((key, ev)) = events.recv() => t.on_event(key, ev).await,
            Some(d) = done.recv() => match d {
                Done::Written { index, buf } => {
                    if let Some(old) = t.uploads.insert(index, buf) {
                        t.assembly.recycle(old);
                    }
                    t.on_written(index);
                }
                Done::PieceRead { index, data } => t.on_piece_read(index, data),
                Done::Failed(e) => { failure = Some(e); break; }
                Done::Synced => {}
            },
            r = listener.accept() => if let Ok((stream, addr)) = r { t.accept(stream, addr) },
            Some(addrs) = tracker_peers.recv() => t.add_known(addrs),
            _ = tick.tick() => t.on_tick(),
        }
        t.stats
            .uploaded
            .store(uploaded.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    // Wind down: tell the trackers, flush the disk, then close every connection.
    tracker_stop.cancel();
    let complete = t.picker.is_complete();
    if failure.is_none() && t.disk.send(Job::Sync).await.is_ok() {
        while let Some(d) = done.recv().await {
            match d {
                Done::Synced => break,
                Done::Failed(e) => {
                    failure = Some(e);
                    break;
                }
                Done::Written { .. } | Done::PieceRead { .. } => {}
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
    session.cancel();
    stats
        .uploaded
        .store(uploaded.load(Ordering::Relaxed), Ordering::Relaxed);
    let _ = tokio::task::spawn_blocking(move || disk_thread.join()).await;
    let _ = tokio::time::timeout(Duration::from_secs(6), tracker).await;
    if let Some(e) = failure {
        return Err(EngineError::Disk(e));
    }
    Ok(Outcome { complete })
}

/// Hashes what is already on disk (on all cores); a missing content folder is skipped.
async fn check(layout: &Layout, info: &Info, stats: &Arc<Stats>) -> Bitfield {
    let count = info.piece_count();
    if !layout.slots.iter().any(|s| s.path.exists()) {
        return Bitfield::new(count);
    }
    let layout = layout.clone();
    let pieces = info.pieces.clone();
    let st = stats.clone();
    let valid = tokio::task::spawn_blocking(move || {
        hash::check_pieces(&layout, &pieces, hash::default_threads(), &st.checked)
    })
    .await
    .unwrap_or_default();
    let have = Bitfield::from_bools(&valid);
    let bytes: u64 = have.ones().map(|i| info.piece_size(i) as u64).sum();
    stats.verified.store(bytes, Ordering::Relaxed);
    if valid.len() as u32 == count {
        have
    } else {
        Bitfield::new(count)
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

impl Torrent {
    async fn on_event(&mut self, key: PeerKey, ev: Event) {
        match ev {
            Event::Connected {
                addr,
                handshake,
                tx,
                queued,
                token,
            } => self.on_connected(key, addr, handshake, tx, queued, token),
            Event::Extensions { reqq, port } => {
                if let Some(p) = self.peers.get_mut(&key) {
                    if let Some(r) = reqq {
                        p.reqq = (r as usize).clamp(1, MAX_DEPTH);
                    }
                    p.listen_addr = port.map(|port| SocketAddr::new(p.addr.ip(), port));
                }
            }
            Event::Closed(reason) => self.on_closed(key, &reason),
            Event::Messages(batch) => {
                for m in batch {
                    self.on_message(key, m).await;
                }
            }
        }
    }

    /// Runs the choker (tit-for-tat while downloading, rotation while seeding) and applies
    /// its choice.
    fn rechoke(&mut self, now: Instant) {
        if self.config.no_upload {
            return;
        }
        let views: Vec<PeerView> = self
            .peers
            .iter()
            .map(|(&key, p)| PeerView {
                key,
                interested: p.peer_interested,
                download_rate: p.rate,
                received_total: p.received_total,
                silent_for: p.am_interested.then(|| {
                    now.duration_since(p.last_block.max(p.interested_since))
                        .as_secs()
                }),
            })
            .collect();
        let secs = now.duration_since(self.started).as_secs();
        let seeding = self.picker.is_complete();
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

    fn on_tick(&mut self) {
        let now = Instant::now();
        self.count_seeds();
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for &key in &keys {
            let Some(p) = self.peers.get_mut(&key) else {
                continue;
            };
            p.rate = 0.6 * p.rate + 0.4 * p.received_this_tick as f64;
            p.received_this_tick = 0;
            p.depth = ((p.rate * DEPTH_WINDOW_SECS / MAX_BLOCK as f64) as usize)
                .clamp(MIN_DEPTH, MAX_DEPTH);
            if !p.inflight.is_empty() && now.duration_since(p.last_block) > STALL {
                // Stalled: its requests go to others.
                for b in p.inflight.drain() {
                    self.picker.request_dropped(&b, key);
                }
                p.last_block = now;
            }
            self.update_interest(key);
        }
        self.rechoke(now);
        for key in keys {
            self.fill(key);
        }
        self.dial_known();
        if self.peers.is_empty() && self.dialing.is_empty() && !self.picker.is_complete() {
            self.need_peers.notify_one();
        }
    }
}
