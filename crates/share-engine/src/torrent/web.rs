//! Web seeds (BEP 19) as a source of blocks beside the peers.
//!
//! A web seed is not a peer: it does not trade, choke or announce pieces. It is asked for
//! spans of the torrent (a run of whole pieces, from the picker's [`Picker::pick_run`]) and
//! its answer comes back as blocks through the same path as a peer's
//! ([`Torrent::accept_block`]): the picker, the pieces being assembled, the disk and the
//! hash check. The picker knows each web seed by a key of its own (high above the peers'),
//! so a piece that fails is blamed on whoever sent its blocks, web seed or peer.
//!
//! Each web seed has a [`Seat`] (share-core) that decides how much it may be asked and what
//! a failure means; here the torrent task owns the seats and the requests in flight, and
//! one small task per request makes the HTTP requests (one per file the span crosses) and
//! cuts the answer into blocks. Those tasks send into one bounded queue, so the torrent's
//! pace (and the disk's behind it) holds the HTTP reads back. A span is about two seconds
//! of the web seed's rate (256 KiB to 4 MiB), so that a slow server does not claim what
//! peers would bring sooner, and each web seed has at most two requests in flight.
//!
//! [`Picker::pick_run`]: share_core::picker::Picker::pick_run

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use share_core::bitfield::Bitfield;
use share_core::picker::PeerKey;
use share_core::webseed::{self as ws, Seat, Verdict};
use share_core::wire::BlockRef;
use share_core::Info;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::transfer::Torrent;
use crate::limit::RateLimiter;
use crate::webseed::{WebSeed, WebSeedError};
use crate::Notice;

/// The picker's keys for web seeds: this, plus the seat's number.
const WEB_KEYS: PeerKey = 1 << 62;
/// The most bytes one request to a web seed asks for.
pub(super) const SPAN: u64 = 4 << 20;
/// The least: what a web seed is asked for before its rate is known.
const MIN_SPAN: u64 = 256 << 10;
/// A request asks for about this many seconds of the web seed's rate (so that it does not
/// claim what peers would bring sooner).
const SPAN_SECONDS: u64 = 2;
/// Web seeds used per torrent at most (a torrent may list more).
const MAX_SEATS: usize = 16;
/// Blocks and answers from web seeds queued for the torrent task.
const EVENT_QUEUE: usize = 256;

/// Whether a picker key is a web seed's.
pub(super) fn is_web(key: PeerKey) -> bool {
    key >= WEB_KEYS
}

/// What the request tasks tell the torrent.
pub(super) enum WebEvent {
    /// The client for seat `seat` is ready, or the URL cannot be used.
    Ready {
        seat: usize,
        client: Result<Arc<WebSeed>, WebSeedError>,
    },
    /// One block of a request's answer.
    Block {
        seat: usize,
        flight: u64,
        block: BlockRef,
        data: Bytes,
    },
    /// A request ended (its blocks not sent are to be asked again).
    Done {
        seat: usize,
        flight: u64,
        result: Result<(), WebSeedError>,
    },
}

/// A request in flight: its blocks not yet here.
struct Flight {
    blocks: Vec<BlockRef>,
    token: CancellationToken,
}

/// One web seed.
struct WebSeat {
    url: String,
    seat: Seat,
    client: Option<Arc<WebSeed>>,
    /// Pieces it may be asked for (all but those of files it does not have).
    has: Bitfield,
    flights: HashMap<u64, Flight>,
    received: u64,
    received_last: u64,
    rate: u64,
    /// Its drop was told to the user.
    told: bool,
}

/// What a web seed shows of itself (the daemon's `webseeds`, the progress line).
#[derive(Debug, Clone)]
pub struct WebSeedInfo {
    pub url: String,
    /// Payload bytes per second from it.
    pub rate_to_us: u64,
    /// Why it is not used any more, if it is not.
    pub dropped: Option<String>,
}

/// The torrent's web seeds and the requests in flight to them.
pub(super) struct Web {
    seats: Vec<WebSeat>,
    tx: mpsc::Sender<WebEvent>,
    pub(super) rx: mpsc::Receiver<WebEvent>,
    next_flight: u64,
    /// Cancelled when the torrent ends: every request task stops.
    token: CancellationToken,
    info: Arc<Info>,
}

impl Web {
    /// The web seeds at `urls` (the first [`MAX_SEATS`] distinct ones), each getting its
    /// client made in the background.
    pub(super) fn start(
        urls: &[String],
        info: Arc<Info>,
        bind: Option<std::net::IpAddr>,
        egress: Arc<crate::egress::Egress>,
        loopback_only: bool,
        token: CancellationToken,
    ) -> Web {
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        let mut seats: Vec<WebSeat> = Vec::new();
        for url in urls {
            if seats.len() >= MAX_SEATS || seats.iter().any(|s| &s.url == url) {
                continue;
            }
            let seat = seats.len();
            let (url2, tx2, egress) = (url.clone(), tx.clone(), egress.clone());
            tokio::spawn(async move {
                let client = WebSeed::new(&url2, bind, &egress, loopback_only)
                    .await
                    .map(Arc::new);
                let _ = tx2.send(WebEvent::Ready { seat, client }).await;
            });
            seats.push(WebSeat {
                url: url.clone(),
                seat: Seat::default(),
                client: None,
                has: Bitfield::full(info.piece_count()),
                flights: HashMap::new(),
                received: 0,
                received_last: 0,
                rate: 0,
                told: false,
            });
        }
        Web {
            seats,
            tx,
            rx,
            next_flight: 0,
            token,
            info,
        }
    }

    pub(super) fn infos(&self) -> Vec<WebSeedInfo> {
        self.seats
            .iter()
            .map(|s| WebSeedInfo {
                url: s.url.clone(),
                rate_to_us: s.rate,
                dropped: s.seat.dropped().map(str::to_owned),
            })
            .collect()
    }

    /// What each web seed sent in this run, in the debug log (as peers' totals are).
    pub(super) fn log_totals(&self) {
        for s in &self.seats {
            tracing::debug!(web_seed = %s.url, received = s.received, dropped = ?s.seat.dropped(), "web seed totals");
        }
    }

    /// Stops every request in flight; returns their blocks (to go back to the picker).
    fn cancel_all(&mut self) -> Vec<(PeerKey, BlockRef)> {
        let mut back = Vec::new();
        for (i, s) in self.seats.iter_mut().enumerate() {
            for (_, f) in s.flights.drain() {
                f.token.cancel();
                back.extend(f.blocks.into_iter().map(|b| (key_of(i), b)));
            }
        }
        back
    }
}

impl Drop for Web {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

fn key_of(seat: usize) -> PeerKey {
    WEB_KEYS + seat as PeerKey
}

fn seat_of(key: PeerKey) -> usize {
    (key - WEB_KEYS) as usize
}

impl Torrent {
    /// Asks each web seed that has room for a span, while the download needs one.
    pub(super) fn fill_web(&mut self) {
        if self.picker.is_done() || self.base.paused || self.base.config.seed_only {
            return;
        }
        let now = std::time::Instant::now();
        for i in 0..self.web.seats.len() {
            loop {
                let s = &self.web.seats[i];
                let Some(client) = s.client.clone() else {
                    break;
                };
                if s.seat.room(now, s.flights.len()) == 0 {
                    break;
                }
                let key = key_of(i);
                // A v2 torrent's pieces that cannot be verified yet are not asked for.
                let has = match &self.v2.blocked {
                    Some(blocked) => s.has.without(blocked),
                    None => s.has.clone(),
                };
                let flights = &s.flights;
                let span = (s.rate * SPAN_SECONDS).clamp(MIN_SPAN, SPAN);
                let max = (span / share_core::wire::MAX_BLOCK as u64).max(1) as usize;
                let mut blocks = self.picker.pick_run(key, &has, max, |b| {
                    flights.values().any(|f| f.blocks.contains(b))
                });
                if blocks.is_empty() {
                    break;
                }
                // One request is one contiguous span; what does not join the first run
                // goes back to the picker.
                let pl = self.info.piece_length as u64;
                let at = |b: &BlockRef| b.index as u64 * pl + b.begin as u64;
                blocks.sort_unstable_by_key(at);
                let mut run = 1;
                while run < blocks.len()
                    && at(&blocks[run]) == at(&blocks[run - 1]) + blocks[run - 1].length as u64
                {
                    run += 1;
                }
                for b in blocks.split_off(run) {
                    self.picker.request_dropped(&b, key);
                }
                self.launch(i, client, blocks);
            }
        }
    }

    fn launch(&mut self, seat: usize, client: Arc<WebSeed>, blocks: Vec<BlockRef>) {
        let flight = self.web.next_flight;
        self.web.next_flight += 1;
        let token = self.web.token.child_token();
        let job = Span {
            client,
            info: self.web.info.clone(),
            seat,
            flight,
            blocks: blocks.clone(),
            events: self.web.tx.clone(),
            limits: [
                self.base.shared.download_limit.clone(),
                Some(self.base.shared.torrent_down.clone()),
            ],
        };
        let t = token.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = t.cancelled() => {}
                _ = job.run() => {}
            }
        });
        self.web.seats[seat]
            .flights
            .insert(flight, Flight { blocks, token });
    }

    pub(super) async fn on_web(&mut self, ev: WebEvent) {
        match ev {
            WebEvent::Ready { seat, client } => {
                let s = &mut self.web.seats[seat];
                match client {
                    Ok(c) => s.client = Some(c),
                    Err(e) => {
                        s.seat.drop_for(e.to_string());
                        s.told = true;
                        self.base
                            .notice(Notice::Warning(format!("web seed not used: {e}")));
                    }
                }
                self.fill_web();
            }
            WebEvent::Block {
                seat,
                flight,
                block,
                data,
            } => {
                let s = &mut self.web.seats[seat];
                let Some(f) = s.flights.get_mut(&flight) else {
                    return; // a request cancelled meanwhile
                };
                let Some(at) = f.blocks.iter().position(|b| *b == block) else {
                    return;
                };
                f.blocks.swap_remove(at);
                s.received += data.len() as u64;
                self.base
                    .stats
                    .downloaded
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
                self.accept_block(key_of(seat), block, data).await;
            }
            WebEvent::Done {
                seat,
                flight,
                result,
            } => {
                let key = key_of(seat);
                let Some(f) = self.web.seats[seat].flights.remove(&flight) else {
                    return;
                };
                for b in &f.blocks {
                    self.picker.request_dropped(b, key);
                }
                match result {
                    Ok(()) => self.web.seats[seat].seat.answered(),
                    Err(e) => self.web_failed(seat, e),
                }
                self.fill_web();
                // Blocks given back may go to peers.
                let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
                for k in keys {
                    self.fill(k);
                }
            }
        }
    }

    fn web_failed(&mut self, seat: usize, e: WebSeedError) {
        let s = &mut self.web.seats[seat];
        let url = s.url.clone();
        match s.seat.failed(e.failure(), std::time::Instant::now()) {
            Verdict::Drop(why) => {
                tracing::warn!(web_seed = %url, error = %e, "web seed dropped");
                self.web_drop(key_of(seat), why);
            }
            Verdict::Pause(d) => {
                tracing::debug!(web_seed = %url, error = %e, pause = ?d, "web seed failed");
            }
            Verdict::WithoutFile(file) => {
                if let Some(pieces) = self.info.file_pieces(file) {
                    let mut gone = Bitfield::new(self.info.piece_count());
                    for i in pieces {
                        gone.set(i);
                    }
                    s.has = s.has.without(&gone);
                }
                let path = match self.info.files.get(file) {
                    Some(_) if self.info.single_file => self.info.name.clone(),
                    Some(f) => format!("{}/{}", self.info.name, f.display_path(&self.info)),
                    None => String::new(),
                };
                self.base.notice(Notice::Warning(format!(
                    "web seed {url} does not have {path} (404): it is left to the peers"
                )));
            }
        }
    }

    /// A web seed is not asked again, for `why`; its requests stop.
    pub(super) fn web_drop(&mut self, key: PeerKey, why: String) {
        let seat = seat_of(key);
        let Some(s) = self.web.seats.get_mut(seat) else {
            return;
        };
        s.seat.drop_for(why.clone());
        let first = !std::mem::replace(&mut s.told, true);
        let why = s.seat.dropped().unwrap_or_default().to_owned();
        let url = s.url.clone();
        for (_, f) in s.flights.drain() {
            f.token.cancel();
            for b in &f.blocks {
                self.picker.request_dropped(b, key);
            }
        }
        if first {
            self.base
                .notice(Notice::Warning(format!("web seed {url} dropped: {why}")));
        }
    }

    /// A piece that web seed `key` sent (`sole`: all of) failed verification.
    pub(super) fn web_bad_piece(&mut self, key: PeerKey, index: u32, sole: bool) {
        let Some(s) = self.web.seats.get_mut(seat_of(key)) else {
            return;
        };
        tracing::warn!(web_seed = %s.url, piece = index, "a piece from a web seed failed its hash check");
        if s.seat.bad_piece(sole) {
            let why = s.seat.dropped().unwrap_or_default().to_owned();
            self.web_drop(key, why);
        }
    }

    /// Paused: every request stops, and its blocks go back.
    pub(super) fn web_pause(&mut self) {
        for (key, b) in self.web.cancel_all() {
            self.picker.request_dropped(&b, key);
        }
    }

    /// Once a second: each web seed's rate, and the totals the progress line shows.
    pub(super) fn web_tick(&mut self) {
        let mut usable = 0;
        let mut rate = 0;
        for s in &mut self.web.seats {
            s.rate = crate::smooth(s.rate, s.received - s.received_last);
            s.received_last = s.received;
            if s.client.is_some() && s.seat.dropped().is_none() {
                usable += 1;
            }
            rate += s.rate;
        }
        let stats = &self.base.stats;
        stats.web_seeds.store(usable, Ordering::Relaxed);
        stats.rate_web.store(rate, Ordering::Relaxed);
        self.fill_web();
    }
}

/// One request: a contiguous span of blocks, fetched with one ranged GET per file it
/// crosses, and sent to the torrent a block at a time.
struct Span {
    client: Arc<WebSeed>,
    info: Arc<Info>,
    seat: usize,
    flight: u64,
    blocks: Vec<BlockRef>,
    events: mpsc::Sender<WebEvent>,
    limits: [Option<Arc<RateLimiter>>; 2],
}

impl Span {
    async fn run(self) {
        let result = self.fetch().await;
        let _ = self
            .events
            .send(WebEvent::Done {
                seat: self.seat,
                flight: self.flight,
                result,
            })
            .await;
    }

    async fn fetch(&self) -> Result<(), WebSeedError> {
        let pl = self.info.piece_length as u64;
        let Some(first) = self.blocks.first() else {
            return Ok(());
        };
        let start = first.index as u64 * pl + first.begin as u64;
        let len: u64 = self.blocks.iter().map(|b| b.length as u64).sum();
        let mut cut = Cutter {
            blocks: &self.blocks,
            next: 0,
            buf: BytesMut::new(),
            pos: 0,
        };
        for g in ws::requests(&self.client.url, &self.info, start, len) {
            // Padding (and a v2 torrent's gaps between files) is zeros.
            cut.zeros_until(g.at, self).await?;
            let mut body = self.client.open(&g).await?;
            while let Some(chunk) = body.next().await? {
                for l in self.limits.iter().flatten() {
                    l.acquire(chunk.len()).await;
                }
                cut.push(&chunk, self).await?;
            }
        }
        cut.zeros_until(len as usize, self).await
    }

    async fn send(&self, block: BlockRef, data: Bytes) -> Result<(), WebSeedError> {
        let ev = WebEvent::Block {
            seat: self.seat,
            flight: self.flight,
            block,
            data,
        };
        self.events
            .send(ev)
            .await
            .map_err(|_| WebSeedError::Request(self.client.url.clone(), "torrent ended".into()))
    }
}

/// Cuts a span's bytes, as they come, into its blocks.
struct Cutter<'a> {
    blocks: &'a [BlockRef],
    next: usize,
    buf: BytesMut,
    /// Bytes of the span seen so far.
    pos: usize,
}

impl Cutter<'_> {
    async fn push(&mut self, mut data: &[u8], span: &Span) -> Result<(), WebSeedError> {
        while !data.is_empty() {
            let Some(b) = self.blocks.get(self.next) else {
                self.pos += data.len(); // past the span: cut off
                return Ok(());
            };
            let want = b.length as usize - self.buf.len();
            let n = want.min(data.len());
            if self.buf.is_empty() {
                self.buf.reserve(b.length as usize);
            }
            self.buf.extend_from_slice(&data[..n]);
            data = &data[n..];
            self.pos += n;
            if self.buf.len() == b.length as usize {
                let block = *b;
                self.next += 1;
                span.send(block, self.buf.split().freeze()).await?;
            }
        }
        Ok(())
    }

    async fn zeros_until(&mut self, to: usize, span: &Span) -> Result<(), WebSeedError> {
        const ZEROS: [u8; 16384] = [0; 16384];
        while self.pos < to {
            let n = (to - self.pos).min(ZEROS.len());
            self.push(&ZEROS[..n], span).await?;
        }
        Ok(())
    }
}
