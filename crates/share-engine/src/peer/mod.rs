//! One peer connection: the handshake, then a reader task and a writer task.
//!
//! The connection runs over any byte stream (TCP or µTP, plaintext or inside MSE), so the
//! peer protocol does not care how the bytes travel. An outgoing connection dials and
//! handshakes (`dial.rs`); an incoming one arrives with the remote's handshake already read
//! by the session, which used it to choose the torrent.
//!
//! The reader decodes frames (bounded by `wire::max_frame` before any buffer is sized) and
//! forwards them to the torrent task; the writer encodes what the torrent task sends,
//! coalescing queued messages into one write, and sends keep-alives when idle. Either side
//! ending cancels the other, and the connection reports why it ended, a [`CloseReason`]
//! (`close.rs`).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use share_core::wire::{self, Handshake, Message};
use share_core::InfoHash;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::{timeout, Instant};
use tokio_util::sync::CancellationToken;

use share_core::picker::PeerKey;

use crate::ctx::ConnPermit;
use crate::limit::RateLimiter;
use crate::transport::Method;
use crate::udp::Utp;

mod close;
mod dial;

pub use close::CloseReason;

pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A peer that sends nothing at all (not even a keep-alive) for this long is dropped.
const SILENCE_TIMEOUT: Duration = Duration::from_secs(150);
const KEEPALIVE_EVERY: Duration = Duration::from_secs(60);
/// Outgoing messages queued per peer; a full queue means the peer does not read.
pub const WRITE_QUEUE: usize = 1024;
/// The request queue depth we advertise (`reqq`) and accept per peer.
pub const MAX_QUEUED_UPLOADS: usize = 500;

/// A byte stream a peer connection can run over.
pub trait PeerStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> PeerStream for T {}
pub type BoxStream = Box<dyn PeerStream>;

/// How a connection starts.
pub enum Conn {
    /// Dial this address and handshake.
    Dial,
    /// Dial over µTP only, at once: a hole punch (BEP 55), while the other side dials us.
    Punch,
    /// Accepted by the session, which read the remote's handshake.
    Accepted {
        stream: BoxStream,
        theirs: Handshake,
        via: Via,
    },
}

/// The transport a connection runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Utp,
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Transport::Tcp => "TCP",
            Transport::Utp => "µTP",
        })
    }
}

/// How a connection's bytes travel: over which transport, and whether encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Via {
    pub transport: Transport,
    pub encryption: Encryption,
}

impl std::fmt::Display for Via {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}, {}", self.transport, self.encryption)
    }
}

/// How a connection's bytes travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encryption {
    /// Plain BitTorrent.
    Plain,
    /// An MSE handshake, then a plaintext payload (what both sides allowed).
    Obfuscated,
    /// MSE with RC4 on every byte.
    Rc4,
}

impl Encryption {
    pub fn of(method: Option<Method>) -> Encryption {
        match method {
            None => Encryption::Plain,
            Some(Method::Plaintext) => Encryption::Obfuscated,
            Some(Method::Rc4) => Encryption::Rc4,
        }
    }
}

impl std::fmt::Display for Encryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Encryption::Plain => "plaintext",
            Encryption::Obfuscated => "MSE (plaintext payload)",
            Encryption::Rc4 => "MSE RC4",
        })
    }
}

/// What the torrent task asks of a connection.
#[derive(Debug)]
pub enum Command {
    Send(Message),
    Close,
}

/// A connection through its handshake, as the torrent task holds it.
#[derive(Debug)]
pub struct Link {
    pub addr: SocketAddr,
    pub handshake: Handshake,
    /// Which transport and whether encrypted, for logs and the peer list.
    pub via: Via,
    pub tx: mpsc::Sender<Command>,
    /// Uploads queued in the writer.
    pub queued: Arc<AtomicUsize>,
    /// Payload bytes sent to this peer.
    pub sent: Arc<AtomicU64>,
    /// Cancelling it closes the connection.
    pub token: CancellationToken,
}

impl Link {
    /// Queues a message; a peer whose queue is full does not read and is dropped.
    pub fn send(&self, m: Message) {
        if self.tx.try_send(Command::Send(m)).is_err() {
            self.token.cancel();
        }
    }
}

/// What a connection tells the torrent task.
#[derive(Debug)]
pub enum Event {
    Connected(Link),
    /// Messages decoded, in order, with their share of the connection's buffer budget: the
    /// reader reads on only while the torrent task has taken (dropped) enough of these.
    Messages(Vec<Message>, OwnedSemaphorePermit),
    Closed(CloseReason),
}

/// What every connection of a torrent shares.
#[derive(Clone)]
pub struct Shared {
    pub info_hash: InfoHash,
    pub peer_id: [u8; 20],
    /// We run a DHT node (the handshake says so, BEP 5).
    pub dht: bool,
    /// Protocol encryption on the connections we dial, and whether µTP is on, as the
    /// session says now.
    pub switches: Arc<crate::ctx::LiveSwitches>,
    /// Dial over TCP; and over µTP on these sockets (one per family).
    pub tcp: bool,
    pub utp: Vec<Arc<Utp>>,
    /// The source address of the TCP connections we dial (None: the system's choice).
    pub bind_ip: Option<std::net::IpAddr>,
    /// Where TCP connections go out (an interface, a proxy).
    pub egress: Arc<crate::egress::Egress>,
    pub max_frame: u32,
    pub events: mpsc::Sender<(PeerKey, Event)>,
    pub uploaded: Arc<AtomicU64>,
    /// The session's limits, and this torrent's own.
    pub upload_limit: Option<Arc<RateLimiter>>,
    pub download_limit: Option<Arc<RateLimiter>>,
    pub torrent_up: Arc<RateLimiter>,
    pub torrent_down: Arc<RateLimiter>,
    pub shutdown: CancellationToken,
}

/// Runs a connection to completion. The permit counts it against the session's limits
/// for as long as it lives.
pub async fn run(key: PeerKey, addr: SocketAddr, conn: Conn, shared: Shared, permit: ConnPermit) {
    let reason = match connect(key, addr, conn, &shared, permit).await {
        Ok(()) => CloseReason::Closed,
        Err(e) => e,
    };
    let _ = shared.events.send((key, Event::Closed(reason))).await;
}

async fn connect(
    key: PeerKey,
    addr: SocketAddr,
    conn: Conn,
    shared: &Shared,
    mut permit: ConnPermit,
) -> Result<(), CloseReason> {
    let ours = Handshake::new(shared.info_hash, shared.peer_id).with_dht(shared.dht);
    let (stream, theirs, via) = match conn {
        Conn::Dial => dial::dial(addr, &ours, shared, false)
            .await
            .map_err(CloseReason::Dial)?,
        Conn::Punch => dial::dial(addr, &ours, shared, true)
            .await
            .map_err(CloseReason::Dial)?,
        Conn::Accepted {
            mut stream,
            theirs,
            via,
        } => {
            // The answer names the torrent as the peer did: a hybrid's v1 hash, or its
            // truncated v2 hash (a v2 connection, BEP 52).
            let ours = Handshake::new(theirs.info_hash, shared.peer_id).with_dht(shared.dht);
            timeout(HANDSHAKE_TIMEOUT, stream.write_all(&ours.encode()))
                .await
                .map_err(|_| CloseReason::HandshakeTimeout)?
                .map_err(|e| CloseReason::Handshake(e.to_string()))?;
            (stream, theirs, via)
        }
    };
    if theirs.peer_id == shared.peer_id {
        return Err(CloseReason::SelfConnection);
    }
    permit.established();

    let (tx, rx) = mpsc::channel(WRITE_QUEUE);
    let queued = Arc::new(AtomicUsize::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let (read, write) = tokio::io::split(stream);
    let token = shared.shutdown.child_token();
    shared
        .events
        .send((
            key,
            Event::Connected(Link {
                addr,
                handshake: theirs,
                via,
                tx,
                queued: queued.clone(),
                sent: sent.clone(),
                token: token.clone(),
            }),
        ))
        .await
        .map_err(|_| CloseReason::SessionEnded)?;
    let writer = tokio::spawn(write_loop(
        write,
        rx,
        queued,
        sent,
        shared.clone(),
        token.clone(),
    ));
    let result = read_loop(key, read, shared, &token).await;
    token.cancel();
    let _ = writer.await;
    drop(permit);
    result
}

/// How much the reader asks of the socket at once, at most: a fast peer's reads grow to
/// this; an idle connection's buffer stays at `MIN_READ` (500 idle peers then hold 8 MiB of
/// read buffers, not 128).
const READ_CHUNK: usize = 256 * 1024;
const MIN_READ: usize = 16 * 1024;
/// What the writer coalesces into one write, at most.
const WRITE_CHUNK: usize = 256 * 1024;

/// Our client name and version, as the extension handshake gives it (`v`).
pub const VERSION: &str = concat!("share ", env!("CARGO_PKG_VERSION"));

/// Messages handed to the torrent task at once: a bound on the work one peer can give it
/// per turn (a read of 256 KiB could hold 29,000 `have` messages).
const MAX_BATCH: usize = 512;
/// Keep-alives a peer may send in a minute (an honest one sends one every minute or two).
const MAX_KEEPALIVES_PER_MIN: u32 = 30;
/// Bytes of one connection's messages that may wait for the torrent task at once. A peer
/// that sends faster than the task takes its messages is back-pressured (its socket is not
/// read), not buffered: a flood costs at most this much memory.
pub const PEER_BUFFER: u32 = 4 << 20;

async fn read_loop(
    key: PeerKey,
    mut read: impl AsyncRead + Unpin,
    shared: &Shared,
    token: &CancellationToken,
) -> Result<(), CloseReason> {
    let mut buf = BytesMut::with_capacity(MIN_READ);
    let mut last_read = 0usize;
    let mut keepalives = (Instant::now(), 0u32);
    let budget = Arc::new(Semaphore::new(PEER_BUFFER as usize));
    loop {
        // Decode what is buffered, a bounded batch at a time; read more only once the
        // torrent task has taken it all (so a peer that outpaces the task waits, unbuffered).
        let mut batch = Vec::new();
        let before = buf.len();
        while batch.len() < MAX_BATCH {
            match wire::decode(&mut buf, shared.max_frame).map_err(CloseReason::Wire)? {
                Some(Message::KeepAlive) => {
                    let now = Instant::now();
                    if now.duration_since(keepalives.0) > Duration::from_secs(60) {
                        keepalives = (now, 0);
                    }
                    keepalives.1 += 1;
                    if keepalives.1 > MAX_KEEPALIVES_PER_MIN {
                        return Err(CloseReason::KeepAliveFlood);
                    }
                }
                Some(m) => batch.push(m),
                None => break,
            }
        }
        let full = batch.len() == MAX_BATCH;
        if !batch.is_empty() {
            let bytes = (before - buf.len()).clamp(1, PEER_BUFFER as usize) as u32;
            let permit = tokio::select! {
                _ = token.cancelled() => return Ok(()),
                p = budget.clone().acquire_many_owned(bytes) => p.map_err(|_| CloseReason::Closed)?,
            };
            if shared
                .events
                .send((key, Event::Messages(batch, permit)))
                .await
                .is_err()
            {
                return Ok(());
            }
        }
        if full {
            continue;
        }
        // Room for twice the last read (the socket had that much ready), within bounds.
        let want = (last_read * 2).clamp(MIN_READ, READ_CHUNK);
        if buf.capacity() - buf.len() < want / 4 {
            buf.reserve(want);
        }
        let n = tokio::select! {
            _ = token.cancelled() => return Ok(()),
            r = timeout(SILENCE_TIMEOUT, read.read_buf(&mut buf)) => r
                .map_err(|_| CloseReason::Silent)?
                .map_err(|e| CloseReason::Read(e.to_string()))?,
        };
        if n == 0 {
            return Err(CloseReason::PeerClosed);
        }
        last_read = n;
        if let Some(l) = &shared.download_limit {
            l.acquire(n).await;
        }
        shared.torrent_down.acquire(n).await;
    }
}

async fn write_loop(
    mut write: impl AsyncWrite + Unpin,
    mut rx: mpsc::Receiver<Command>,
    queued: Arc<AtomicUsize>,
    sent: Arc<AtomicU64>,
    shared: Shared,
    token: CancellationToken,
) {
    let mut out = BytesMut::with_capacity(MIN_READ);
    // Blocks waiting for the upload rate limit. Everything else (requests, haves, choking)
    // goes out at once: our own requests must never queue behind our uploads.
    let mut pieces: VecDeque<Message> = VecDeque::new();
    let mut ready_at: Option<Instant> = None;
    let mut close = false;
    // Bytes handed to the stream that it may still hold: an encrypting stream takes a chunk
    // and writes it as the connection lets it, so it must be flushed (driven) while the loop
    // waits, or the last chunk of a burst stays behind until the next write. Over µTP,
    // whose send window often makes a write wait, that was the last block of a download.
    let mut unflushed = false;
    while !close {
        // Queued blocks go as soon as the limiter allows (at once without one); with nothing
        // queued, wake only for a keep-alive.
        let wake = match (ready_at, pieces.is_empty()) {
            (Some(at), _) => at,
            (None, false) => Instant::now(),
            (None, true) => Instant::now() + KEEPALIVE_EVERY,
        };
        let first = tokio::select! {
            _ = token.cancelled() => break,
            _ = tokio::time::sleep_until(wake) => {
                (ready_at.is_none() && pieces.is_empty() && out.is_empty())
                    .then_some(Command::Send(Message::KeepAlive))
            }
            c = rx.recv() => match c {
                Some(c) => Some(c),
                None => break,
            },
            r = write.flush(), if unflushed => {
                if r.is_err() {
                    break;
                }
                unflushed = false;
                None
            }
        };
        let mut next = first;
        while let Some(cmd) = next.take() {
            match cmd {
                Command::Close => close = true,
                Command::Send(m @ Message::Piece { .. }) => pieces.push_back(m),
                Command::Send(m) => m.encode(&mut out),
            }
            if !close && out.len() < WRITE_CHUNK && pieces.len() < 64 {
                next = rx.try_recv().ok();
            }
        }
        // Blocks whose turn has come under the rate limit.
        let mut payload = 0usize;
        while let Some(Message::Piece { data, .. }) = pieces.front() {
            let len = data.len();
            let at = *ready_at.get_or_insert_with(|| {
                let session = shared
                    .upload_limit
                    .as_ref()
                    .map_or(Duration::ZERO, |l| l.reserve(len));
                Instant::now() + session.max(shared.torrent_up.reserve(len))
            });
            if at > Instant::now() {
                break;
            }
            ready_at = None;
            if let Some(m) = pieces.pop_front() {
                m.encode(&mut out);
            }
            payload += len;
            queued.fetch_sub(1, Ordering::Relaxed);
            if out.len() >= WRITE_CHUNK {
                break;
            }
        }
        if !out.is_empty() {
            let ok = tokio::select! {
                _ = token.cancelled() => false,
                r = write.write_all(&out) => r.is_ok(),
            };
            if !ok {
                break;
            }
            shared.uploaded.fetch_add(payload as u64, Ordering::Relaxed);
            sent.fetch_add(payload as u64, Ordering::Relaxed);
            out.clear();
            unflushed = true;
        }
    }
    let _ = write.shutdown().await;
    token.cancel();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::EncryptedStream;
    use share_core::mse::{Ciphers, Established, Rc4Stream};

    fn shared() -> Shared {
        let (events, _) = mpsc::channel(1);
        Shared {
            info_hash: InfoHash([0; 20]),
            peer_id: [0; 20],
            dht: false,
            switches: Arc::new(crate::ctx::LiveSwitches::new(
                true,
                false,
                crate::transport::Policy::Prefer,
            )),
            tcp: true,
            utp: Vec::new(),
            bind_ip: None,
            egress: Arc::new(crate::egress::Egress::direct()),
            max_frame: 1 << 20,
            events,
            uploaded: Arc::new(AtomicU64::new(0)),
            upload_limit: None,
            download_limit: None,
            torrent_up: Arc::new(RateLimiter::unlimited()),
            torrent_down: Arc::new(RateLimiter::unlimited()),
            shutdown: CancellationToken::new(),
        }
    }

    /// The last block written over an encrypting stream to a connection that makes writes
    /// wait (a µTP send window, here a small in-memory pipe) arrives while the writer has
    /// nothing more to send. It did not: it stayed in the stream's buffer until the next
    /// message (a keep-alive two minutes later), and libtorrent waited for it in vain.
    #[tokio::test]
    async fn the_last_block_over_a_slow_encrypted_connection_arrives_without_more_writes() {
        let (a, mut b) = tokio::io::duplex(4096);
        let est = Established {
            method: Method::Rc4,
            info_hash: InfoHash([0; 20]),
            ciphers: Some(Ciphers {
                encrypt: Rc4Stream::new(&[1; 20]),
                decrypt: Rc4Stream::new(&[2; 20]),
            }),
            initial_payload: Vec::new(),
            rest: Vec::new(),
        };
        let stream = EncryptedStream::established(a, est);
        let (tx, rx) = mpsc::channel(8);
        let token = CancellationToken::new();
        let writer = tokio::spawn(write_loop(
            stream,
            rx,
            Arc::new(AtomicUsize::new(1)),
            Arc::new(AtomicU64::new(0)),
            shared(),
            token.clone(),
        ));
        let data = bytes::Bytes::from(vec![7u8; 16384]);
        tx.send(Command::Send(Message::Piece {
            index: 0,
            begin: 0,
            data,
        }))
        .await
        .unwrap();
        // 13 bytes of header and 16 KiB of block, through a 4 KiB pipe, with no more
        // commands: every byte arrives.
        let mut got = vec![0u8; 13 + 16384];
        tokio::time::timeout(Duration::from_secs(5), b.read_exact(&mut got))
            .await
            .expect("the last bytes stayed in the writer")
            .unwrap();
        let mut plain = got.clone();
        Rc4Stream::new(&[1; 20]).apply(&mut plain);
        assert!(plain[13..].iter().all(|&x| x == 7));
        token.cancel();
        drop(tx);
        let _ = writer.await;
    }
}
