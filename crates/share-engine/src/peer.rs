//! One peer connection: the handshake, then a reader task and a writer task.
//!
//! The reader decodes frames (bounded by `wire::max_frame` before any buffer is sized) and
//! forwards them to the torrent task; the writer encodes what the torrent task or the disk
//! thread sends, coalescing queued messages into one write, and sends keep-alives when idle.
//! Either side ending cancels the other.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use share_core::bencode::{self, Limits};
use share_core::wire::{self, Handshake, Message, HANDSHAKE_LEN};
use share_core::InfoHash;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};
use tokio_util::sync::CancellationToken;

use crate::limit::RateLimiter;
use crate::torrent::PeerKey;

/// The close reason of a connection to our own listener (a tracker listed us).
pub const SELF_CONNECTION: &str = "connected to ourselves";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A peer that sends nothing at all (not even a keep-alive) for this long is dropped.
const SILENCE_TIMEOUT: Duration = Duration::from_secs(150);
const KEEPALIVE_EVERY: Duration = Duration::from_secs(60);
/// Outgoing messages queued per peer; a full queue means the peer does not read.
pub const WRITE_QUEUE: usize = 1024;
/// The request queue depth we advertise (`reqq`) and accept per peer.
pub const MAX_QUEUED_UPLOADS: usize = 500;

/// What the torrent task (or the disk thread) asks of a connection.
#[derive(Debug)]
pub enum Command {
    Send(Message),
    Close,
}

/// What a connection tells the torrent task.
#[derive(Debug)]
pub enum Event {
    Connected {
        addr: SocketAddr,
        handshake: Handshake,
        tx: mpsc::Sender<Command>,
        queued: Arc<AtomicUsize>,
        /// Cancelling it closes the connection.
        token: CancellationToken,
    },
    /// The peer's BEP 10 handshake: how many requests it accepts at once, and the port it
    /// listens on (its address as we see it has an ephemeral port when it dialed us).
    Extensions {
        reqq: Option<u32>,
        port: Option<u16>,
    },
    /// The messages decoded from one read, in order.
    Messages(Vec<Message>),
    Closed(String),
}

/// What every connection of a session shares.
#[derive(Clone)]
pub struct Shared {
    pub info_hash: InfoHash,
    pub peer_id: [u8; 20],
    /// The port we listen on, told to peers in the extension handshake (`p`).
    pub listen_port: u16,
    pub max_frame: u32,
    pub events: mpsc::Sender<(PeerKey, Event)>,
    pub uploaded: Arc<AtomicU64>,
    pub upload_limit: Option<Arc<RateLimiter>>,
    pub download_limit: Option<Arc<RateLimiter>>,
    pub shutdown: CancellationToken,
}

/// Runs a connection to completion. `stream` is an accepted socket, or `None` to dial `addr`.
pub async fn run(key: PeerKey, addr: SocketAddr, stream: Option<TcpStream>, shared: Shared) {
    let reason = match connect(key, addr, stream, &shared).await {
        Ok(()) => "closed".to_owned(),
        Err(e) => e,
    };
    let _ = shared.events.send((key, Event::Closed(reason))).await;
}

async fn connect(
    key: PeerKey,
    addr: SocketAddr,
    stream: Option<TcpStream>,
    shared: &Shared,
) -> Result<(), String> {
    let mut stream = match stream {
        Some(s) => s,
        None => timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| "connect timed out".to_owned())?
            .map_err(|e| format!("connect: {e}"))?,
    };
    let _ = stream.set_nodelay(true);
    let ours = Handshake::new(shared.info_hash, shared.peer_id);
    let theirs = timeout(HANDSHAKE_TIMEOUT, async {
        stream.write_all(&ours.encode()).await?;
        let mut buf = [0u8; HANDSHAKE_LEN];
        stream.read_exact(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    })
    .await
    .map_err(|_| "handshake timed out".to_owned())?
    .map_err(|e| format!("handshake: {e}"))?;
    let theirs = Handshake::decode(&theirs).map_err(|e| e.to_string())?;
    if theirs.info_hash != shared.info_hash {
        return Err("wrong info-hash in handshake".into());
    }
    if theirs.peer_id == shared.peer_id {
        return Err(SELF_CONNECTION.into());
    }

    let (tx, rx) = mpsc::channel(WRITE_QUEUE);
    let queued = Arc::new(AtomicUsize::new(0));
    let (read, write) = stream.into_split();
    let token = shared.shutdown.child_token();
    if theirs.supports_extensions() {
        let ext = Message::Extended {
            id: 0,
            payload: Bytes::from(format!(
                "d1:mde1:pi{}e4:reqqi{MAX_QUEUED_UPLOADS}e1:v{}:{}e",
                shared.listen_port,
                VERSION.len(),
                VERSION
            )),
        };
        let _ = tx.try_send(Command::Send(ext));
    }
    shared
        .events
        .send((
            key,
            Event::Connected {
                addr,
                handshake: theirs,
                tx,
                queued: queued.clone(),
                token: token.clone(),
            },
        ))
        .await
        .map_err(|_| "session ended".to_owned())?;
    let writer = tokio::spawn(write_loop(write, rx, queued, shared.clone(), token.clone()));
    let result = read_loop(key, read, shared, &token).await;
    token.cancel();
    let _ = writer.await;
    result
}

/// How much the reader asks of the socket at once.
const READ_CHUNK: usize = 256 * 1024;

const VERSION: &str = concat!("share ", env!("CARGO_PKG_VERSION"));

async fn read_loop(
    key: PeerKey,
    mut read: OwnedReadHalf,
    shared: &Shared,
    token: &CancellationToken,
) -> Result<(), String> {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    loop {
        let n = tokio::select! {
            _ = token.cancelled() => return Ok(()),
            r = timeout(SILENCE_TIMEOUT, read.read_buf(&mut buf)) => r
                .map_err(|_| "peer silent for too long".to_owned())?
                .map_err(|e| format!("read: {e}"))?,
        };
        if n == 0 {
            return Err("peer closed the connection".into());
        }
        if let Some(l) = &shared.download_limit {
            l.acquire(n).await;
        }
        let mut batch = Vec::new();
        let mut ext = None;
        while let Some(msg) = wire::decode(&mut buf, shared.max_frame).map_err(|e| e.to_string())? {
            match msg {
                Message::Extended { id: 0, payload } => ext = Some(parse_extensions(&payload)),
                Message::KeepAlive => {}
                other => batch.push(other),
            }
        }
        if let Some((reqq, port)) = ext {
            if shared
                .events
                .send((key, Event::Extensions { reqq, port }))
                .await
                .is_err()
            {
                return Ok(());
            }
        }
        if !batch.is_empty()
            && shared
                .events
                .send((key, Event::Messages(batch)))
                .await
                .is_err()
        {
            return Ok(());
        }
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
    }
}

/// The `reqq` and `p` (listen port) of a BEP 10 handshake, where the payload is valid
/// bencode that has them.
fn parse_extensions(payload: &[u8]) -> (Option<u32>, Option<u16>) {
    #[derive(serde::Deserialize)]
    struct Ext {
        reqq: Option<i64>,
        p: Option<i64>,
    }
    if bencode::scan(payload, Limits::MESSAGE).is_err() {
        return (None, None);
    }
    let Ok(ext) = serde_bencode::from_bytes::<Ext>(payload) else {
        return (None, None);
    };
    (
        ext.reqq
            .and_then(|r| u32::try_from(r).ok())
            .filter(|&r| r > 0),
        ext.p.and_then(|p| u16::try_from(p).ok()).filter(|&p| p > 0),
    )
}

async fn write_loop(
    mut write: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Command>,
    queued: Arc<AtomicUsize>,
    shared: Shared,
    token: CancellationToken,
) {
    let mut out = BytesMut::with_capacity(256 * 1024);
    // Blocks waiting for the upload rate limit. Everything else (requests, haves, choking)
    // goes out at once: our own requests must never queue behind our uploads.
    let mut pieces: VecDeque<Message> = VecDeque::new();
    let mut ready_at: Option<Instant> = None;
    let mut close = false;
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
        };
        let mut next = first;
        while let Some(cmd) = next.take() {
            match cmd {
                Command::Close => close = true,
                Command::Send(m @ Message::Piece { .. }) => pieces.push_back(m),
                Command::Send(m) => m.encode(&mut out),
            }
            if !close && out.len() < 256 * 1024 && pieces.len() < 64 {
                next = rx.try_recv().ok();
            }
        }
        // Blocks whose turn has come under the rate limit.
        let mut payload = 0usize;
        while let Some(Message::Piece { data, .. }) = pieces.front() {
            let len = data.len();
            if let Some(l) = &shared.upload_limit {
                let at = *ready_at.get_or_insert_with(|| Instant::now() + l.reserve(len));
                if at > Instant::now() {
                    break;
                }
            }
            ready_at = None;
            if let Some(m) = pieces.pop_front() {
                m.encode(&mut out);
            }
            payload += len;
            queued.fetch_sub(1, Ordering::Relaxed);
            if out.len() >= 256 * 1024 {
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
            out.clear();
        }
    }
    let _ = write.shutdown().await;
    token.cancel();
}

#[cfg(test)]
mod tests {
    use super::parse_extensions;

    #[test]
    fn reqq_and_port_are_read_from_a_valid_extension_handshake_only() {
        assert_eq!(
            parse_extensions(b"d1:md11:ut_metadatai1ee1:pi6881e4:reqqi250ee"),
            (Some(250), Some(6881))
        );
        assert_eq!(parse_extensions(b"d1:pi70000e4:reqqi-1ee"), (None, None));
        assert_eq!(parse_extensions(b"d4:reqqi250e"), (None, None));
        assert_eq!(parse_extensions(b"de"), (None, None));
    }
}
