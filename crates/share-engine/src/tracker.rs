//! The tracker client: announces over HTTP and UDP (BEP 3, 15), tier by tier (BEP 12), and
//! hands the peers it learns to the torrent task.
//!
//! Lifecycle: `started` once, then a re-announce every interval the tracker asks for,
//! `completed` as soon as the download completes, and `stopped` (briefly awaited) at the end.
//! A tracker that is down, slow or answers garbage costs a warning and a growing back-off,
//! never the transfer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rand::seq::SliceRandom;
use share_core::tracker::udp::{Request, Response};
use share_core::tracker::{http, Announce, AnnounceReply, Event, ScrapeCounts};
use share_core::InfoHash;
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::{timeout, Instant};
use tokio_util::sync::CancellationToken;

use crate::egress::{Datagram, Egress};
use crate::tracker_board::TrackerStatus;
use crate::{Notice, PeerSource, Stats};

/// Largest tracker reply read over HTTP.
const MAX_BODY: usize = 1 << 20;
const HTTP_TIMEOUT: Duration = Duration::from_secs(15);
/// UDP tries per request: waits of 15 s, 30 s, ... (BEP 15), capped at this many.
const UDP_TRIES: u32 = 3;
/// A UDP connection id is good for a minute.
const CONNECTION_TTL: Duration = Duration::from_secs(60);
/// Shortest and longest waits between announces.
const MIN_INTERVAL: u64 = 10;
const MAX_BACKOFF: u64 = 300;

/// An error and its causes, `a: b: c` (reqwest's own message omits the cause, such as
/// "connection refused").
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// What the client announces about itself.
pub struct Identity {
    pub info_hash: InfoHash,
    pub peer_id: [u8; 20],
    pub port: u16,
    /// Where a router maps our port, if it does: that port is announced instead.
    pub external: Option<std::sync::Arc<crate::external::External>>,
}

/// An HTTP client that goes out through `egress`, leaving from `local` (the address we
/// listen on, when it is a specific one: a tracker that lists peers by source address then
/// lists the right one). Should it fail to build, the client is one that refuses every
/// request rather than one that goes around the egress.
pub fn http_client_from(egress: &Egress, local: Option<std::net::IpAddr>) -> reqwest::Client {
    let mut b = egress.http(reqwest::Client::builder());
    if egress.interface().is_none() && !egress.is_proxied() {
        b = b.local_address(local);
    }
    b.timeout(HTTP_TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .user_agent(concat!("share/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_else(|_| refusing_client())
}

/// A client whose every request fails (its proxy is an address nothing listens on).
fn refusing_client() -> reqwest::Client {
    reqwest::Client::builder()
        .proxy(reqwest::Proxy::all("socks5h://0.0.0.0:9").expect("literal"))
        .build()
        .expect("a client with no settings of note builds")
}

pub struct Client {
    tiers: Vec<Vec<String>>,
    me: Identity,
    stats: Arc<Stats>,
    http: reqwest::Client,
    egress: Arc<Egress>,
    udp_connections: HashMap<String, (u64, Instant)>,
    tracker_id: Option<String>,
    key: u32,
    /// Seconds to wait for the UDP replies of the first try (BEP 15: 15 s); tests may lower it.
    udp_first_wait: u64,
    /// Tells the torrent's tracker board how each announce went (one client per torrent
    /// does: a hybrid has one per hash, announcing to the same trackers); its writer's
    /// ticket once it runs.
    report: bool,
    ticket: u64,
}

impl Client {
    pub fn new(
        mut tiers: Vec<Vec<String>>,
        me: Identity,
        stats: Arc<Stats>,
        http: reqwest::Client,
        egress: Arc<Egress>,
    ) -> Client {
        // BEP 12: shuffle within each tier once; working trackers move to the front later.
        let mut rng = rand::thread_rng();
        for t in &mut tiers {
            t.shuffle(&mut rng);
        }
        Client {
            tiers,
            me,
            stats,
            http,
            egress,
            udp_connections: HashMap::new(),
            tracker_id: None,
            key: rand::random(),
            udp_first_wait: 15,
            report: false,
            ticket: 0,
        }
    }

    /// This client keeps the torrent's tracker board (`Stats::trackers`).
    pub fn reporting(mut self) -> Client {
        self.report = true;
        self
    }

    /// Every tracker on the board, the first in line marked in use until a round says more.
    fn board_start(&mut self) {
        if !self.report {
            return;
        }
        self.ticket = self.stats.trackers.claim();
        for (t, urls) in self.tiers.iter().enumerate() {
            for url in urls {
                self.stats.trackers.with(self.ticket, url, t, |_| {});
            }
        }
        if !self.stats.trackers.get().iter().any(|s| s.in_use) {
            if let Some(first) = self.tiers.first().and_then(|t| t.first()) {
                self.stats
                    .trackers
                    .with(self.ticket, first, 0, |s| s.in_use = true);
            }
        }
    }

    /// The client has stopped: nothing is planned.
    fn board_stop(&self) {
        if self.report {
            self.stats.trackers.update(self.ticket, |l| {
                for s in l {
                    s.announcing = false;
                    s.next_announce = 0;
                }
            });
        }
    }

    /// The next round is in `wait` seconds, at the trackers of the last one.
    fn board_next(&self, wait: u64) {
        if self.report {
            let at = crate::tracker_board::unix_now() + wait as i64;
            self.stats.trackers.update(self.ticket, |l| {
                for s in l.iter_mut().filter(|s| s.in_use) {
                    s.next_announce = at;
                }
            });
        }
    }

    /// Runs until `stop`: announces, forwards peers, re-announces; `stopped` at the end.
    pub async fn run(
        mut self,
        peers: mpsc::Sender<(PeerSource, Vec<SocketAddr>)>,
        complete: watch::Receiver<bool>,
        need_peers: Arc<Notify>,
        stop: CancellationToken,
        notices: mpsc::Sender<Notice>,
    ) {
        self.board_start();
        self.rounds(peers, complete, need_peers, stop, notices)
            .await;
        self.board_stop();
    }

    async fn rounds(
        &mut self,
        peers: mpsc::Sender<(PeerSource, Vec<SocketAddr>)>,
        mut complete: watch::Receiver<bool>,
        need_peers: Arc<Notify>,
        stop: CancellationToken,
        notices: mpsc::Sender<Notice>,
    ) {
        if self.tiers.is_empty() {
            return;
        }
        let mut event = Event::Started;
        let mut announced_complete = *complete.borrow();
        let mut backoff = 5u64;
        let mut min_wait = 0u64;
        loop {
            let wait = tokio::select! {
                _ = stop.cancelled() => break,
                r = self.announce(event) => match r {
                    Ok(reply) => {
                        backoff = 5;
                        event = Event::None;
                        if let Some(w) = &reply.warning {
                            let _ = notices.try_send(Notice::Warning(format!("tracker: {w}")));
                        }
                        let _ = peers.send((PeerSource::Tracker, reply.peers)).await;
                        min_wait = reply.min_interval.unwrap_or(0) as u64;
                        let interval = reply.interval.max(reply.min_interval.unwrap_or(0));
                        (interval as u64).max(MIN_INTERVAL)
                    }
                    Err(e) => {
                        let _ = notices.try_send(Notice::Warning(format!(
                            "no tracker answered ({e}); retrying in {backoff} s"
                        )));
                        let w = backoff;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        w
                    }
                },
            };
            self.board_next(wait);
            let sleep = tokio::time::sleep(Duration::from_secs(wait));
            tokio::pin!(sleep);
            // With no peers at all, ask again early, but not more often than every
            // `MIN_INTERVAL` seconds (nor before a `min interval` the tracker set).
            let early = Instant::now() + Duration::from_secs(MIN_INTERVAL.max(min_wait));
            loop {
                tokio::select! {
                    _ = stop.cancelled() => {
                        self.say_stopped(event).await;
                        return;
                    }
                    _ = &mut sleep => break,
                    _ = need_peers.notified() => {
                        if Instant::now() >= early {
                            break;
                        }
                    }
                    r = complete.changed(), if !announced_complete => {
                        if r.is_err() || *complete.borrow() {
                            announced_complete = true;
                            event = Event::Completed;
                            break;
                        }
                    }
                }
            }
        }
        self.say_stopped(event).await;
    }

    /// `stopped`, unless we never got through with `started`.
    async fn say_stopped(&mut self, pending: Event) {
        if pending == Event::Started {
            return;
        }
        self.udp_first_wait = 2;
        let _ = timeout(Duration::from_secs(4), self.announce(Event::Stopped)).await;
    }

    /// One announce round: the first tracker that answers, tier by tier (BEP 12).
    async fn announce(&mut self, event: Event) -> Result<AnnounceReply, String> {
        let a = Announce {
            info_hash: self.me.info_hash,
            peer_id: self.me.peer_id,
            port: self
                .me
                .external
                .as_ref()
                .map_or(self.me.port, |e| e.port(self.me.port)),
            uploaded: self.stats.uploaded.load(Ordering::Relaxed),
            downloaded: self.stats.downloaded.load(Ordering::Relaxed),
            // Before a magnet's metadata arrives the size is unknown: say one piece is left.
            left: match self.stats.total.load(Ordering::Relaxed) {
                0 => 16384,
                total => total.saturating_sub(self.stats.verified.load(Ordering::Relaxed)),
            },
            event,
            numwant: if event == Event::Stopped { 0 } else { 80 },
            key: self.key,
            tracker_id: self.tracker_id.clone(),
        };
        let mut errors = Vec::new();
        let (report, ticket) = (self.report, self.ticket);
        if report {
            self.stats.trackers.update(ticket, |l| {
                for s in l {
                    s.in_use = false;
                }
            });
        }
        for t in 0..self.tiers.len() {
            for i in 0..self.tiers[t].len() {
                let url = self.tiers[t][i].clone();
                if report {
                    self.stats.trackers.with(ticket, &url, t, |s| {
                        s.in_use = true;
                        s.announcing = true;
                        s.last_announce_start = crate::tracker_board::unix_now();
                    });
                }
                let result = self.announce_to(&url, &a).await;
                if report {
                    self.stats
                        .trackers
                        .with(ticket, &url, t, |s| record(s, &result));
                }
                match result {
                    Ok(reply) => {
                        if reply.tracker_id.is_some() {
                            self.tracker_id = reply.tracker_id.clone();
                        }
                        self.tiers[t][..=i].rotate_right(1);
                        tracing::debug!(%url, peers = reply.peers.len(), ?event, "announced");
                        return Ok(reply);
                    }
                    Err(e) => {
                        tracing::debug!(%url, error = %e, "announce failed");
                        errors.push(format!("{url}: {e}"));
                    }
                }
            }
        }
        Err(errors.join("; "))
    }

    async fn announce_to(&mut self, url: &str, a: &Announce) -> Result<AnnounceReply, String> {
        if url.starts_with("http://") || url.starts_with("https://") {
            self.http_announce(url, a).await
        } else if url.starts_with("udp://") {
            self.udp_announce(url, a).await
        } else {
            Err("unsupported tracker URL scheme".into())
        }
    }

    async fn http_announce(&self, url: &str, a: &Announce) -> Result<AnnounceReply, String> {
        let body = http_get(&self.http, &http::announce_url(url, a)).await?;
        http::parse_announce_reply(&body).map_err(|e| e.to_string())
    }

    async fn udp_announce(&mut self, url: &str, a: &Announce) -> Result<AnnounceReply, String> {
        let socket = udp_socket(url, &self.egress).await?;
        let v6 = socket.v6;
        let wait = self.udp_first_wait;
        let connection = match self.udp_connections.get(url) {
            Some((id, at)) if at.elapsed() < CONNECTION_TTL => *id,
            _ => {
                let t = rand::random();
                match udp_exchange(&socket, Request::Connect { transaction: t }, v6, wait).await? {
                    Response::Connect { connection, .. } => {
                        self.udp_connections
                            .insert(url.to_owned(), (connection, Instant::now()));
                        connection
                    }
                    _ => return Err("unexpected reply to connect".into()),
                }
            }
        };
        let t = rand::random();
        match udp_exchange(&socket, Request::announce(connection, t, a), v6, wait).await {
            Ok(Response::Announce { reply, .. }) => Ok(reply),
            Ok(_) => Err("unexpected reply to announce".into()),
            Err(e) => {
                // The connection id may have expired on the tracker's side.
                self.udp_connections.remove(url);
                Err(e)
            }
        }
    }
}

/// What one announce to a tracker gave, on its board entry.
fn record(s: &mut TrackerStatus, result: &Result<AnnounceReply, String>) {
    s.announcing = false;
    s.last_announce = crate::tracker_board::unix_now();
    match result {
        Ok(reply) => {
            s.last_result = "Success".into();
            s.last_succeeded = true;
            s.last_timed_out = false;
            s.last_peer_count = reply.peers.len() as u32;
            s.seeders = reply.seeders;
            s.leechers = reply.leechers;
        }
        Err(e) => {
            s.last_result = e.clone();
            s.last_succeeded = false;
            s.last_timed_out = e == NO_REPLY || e.contains("timed out");
            s.last_peer_count = 0;
        }
    }
}

/// What a UDP exchange that never got an answer says.
const NO_REPLY: &str = "no reply";

/// Sends `req` and waits for the reply with the same transaction id, retrying on the BEP 15
/// schedule (`first_wait` seconds, then twice that, ...). A tracker's error packet is an error.
async fn udp_exchange(
    socket: &Datagram,
    req: Request,
    v6: bool,
    first_wait: u64,
) -> Result<Response, String> {
    let transaction = match &req {
        Request::Connect { transaction }
        | Request::Announce { transaction, .. }
        | Request::Scrape { transaction, .. } => *transaction,
    };
    let packet = req.encode();
    let mut buf = vec![0u8; 2048];
    for n in 0..UDP_TRIES {
        socket.send(&packet).await.map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(first_wait << n);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(got) = timeout(left, socket.recv(&mut buf)).await else {
                break;
            };
            let len = got.map_err(|e| e.to_string())?;
            match Response::decode(&buf[..len], v6) {
                Some(r) if r.transaction() == transaction => {
                    if let Response::Error { message, .. } = r {
                        return Err(format!("tracker says: {message}"));
                    }
                    return Ok(r);
                }
                _ => continue,
            }
        }
    }
    Err(NO_REPLY.into())
}

/// GET `url`; the body, read up to `MAX_BODY` bytes.
async fn http_get(client: &reqwest::Client, url: &str) -> Result<Vec<u8>, String> {
    let mut resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| chain(&e.without_url()))?;
    if !resp.status().is_success() {
        return Err(format!("HTTP {}", resp.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| chain(&e.without_url()))? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(format!("reply larger than {MAX_BODY} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A datagram socket to the tracker of `url` (`udp://host:port/...`), through `egress`.
async fn udp_socket(url: &str, egress: &Egress) -> Result<Datagram, String> {
    let rest = url.strip_prefix("udp://").ok_or("not a udp:// URL")?;
    let hostport = rest.split(['/', '?']).next().unwrap_or(rest);
    let (host, port) = hostport
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
        .ok_or_else(|| format!("{hostport}: no port"))?;
    egress.tracker_udp(host, port).await
}

/// Asks the tracker at `url` (HTTP or UDP) how many peers share `info_hash`.
pub async fn scrape(url: &str, info_hash: InfoHash) -> Result<ScrapeCounts, String> {
    let egress = Egress::direct();
    if url.starts_with("udp://") {
        let socket = udp_socket(url, &egress).await?;
        let v6 = socket.v6;
        let connection = match udp_exchange(
            &socket,
            Request::Connect {
                transaction: rand::random(),
            },
            v6,
            5,
        )
        .await?
        {
            Response::Connect { connection, .. } => connection,
            _ => return Err("unexpected reply to connect".into()),
        };
        let req = Request::Scrape {
            connection,
            transaction: rand::random(),
            hashes: vec![info_hash],
        };
        return match udp_exchange(&socket, req, v6, 5).await? {
            Response::Scrape { counts, .. } => {
                counts.first().copied().ok_or("empty scrape reply".into())
            }
            _ => Err("unexpected reply to scrape".into()),
        };
    }
    let base = http::scrape_url(url).ok_or("this tracker has no scrape address")?;
    let sep = if base.contains('?') { '&' } else { '?' };
    let full = format!("{base}{sep}info_hash={}", share_core::percent(info_hash.0));
    let body = http_get(&http_client_from(&egress, None), &full).await?;
    let all = http::parse_scrape_reply(&body).map_err(|e| e.to_string())?;
    Ok(all.get(&info_hash).copied().unwrap_or_default())
}
