//! The transport over in-memory pipes: both roles and the sniffing accept, each policy pair,
//! refusals, and hostile remotes (stalling, babbling) dropped in bounded time and memory.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use share_core::mse::Handshake as _;
use share_core::wire::{Handshake, HANDSHAKE_LEN};
use share_core::InfoHash;
use tokio::io::{
    duplex, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf,
};

use super::*;

const IH: InfoHash = InfoHash([0x42; 20]);

fn lookup(h: &[u8; 20]) -> Option<InfoHash> {
    (h == &skey_hash(&IH)).then_some(IH)
}

fn handshake(id: u8) -> [u8; HANDSHAKE_LEN] {
    Handshake::new(IH, [id; 20]).encode()
}

/// Dials with MSE and accepts with sniffing; both sides then swap BitTorrent handshakes and
/// a megabyte each way.
async fn talk(dial: Policy, listen: Policy) {
    let (a, b) = duplex(64 * 1024);
    let ours = handshake(1);
    let (client, server) = tokio::join!(mse_connect(a, IH, dial, &ours), accept(b, lookup, listen));
    let mut client = client.unwrap();
    let Accepted {
        mut stream,
        info_hash,
    } = server.unwrap();
    assert_eq!(info_hash, Some(IH));

    let mut theirs = [0u8; HANDSHAKE_LEN];
    stream.read_exact(&mut theirs).await.unwrap();
    assert_eq!(theirs, handshake(1));
    stream.write_all(&handshake(2)).await.unwrap();
    stream.flush().await.unwrap();
    client.read_exact(&mut theirs).await.unwrap();
    assert_eq!(theirs, handshake(2));

    let data: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    let expect = data.clone();
    let (mut cr, mut cw) = client.into_split(tokio::io::split);
    let (mut sr, mut sw) = stream.into_split(tokio::io::split);
    let up = tokio::spawn(async move {
        cw.write_all(&data).await.unwrap();
        cw.flush().await.unwrap();
        cw
    });
    let down = tokio::spawn(async move {
        sw.write_all(&[7u8; 1 << 20]).await.unwrap();
        sw.flush().await.unwrap();
        sw
    });
    let mut got = vec![0u8; 1 << 20];
    sr.read_exact(&mut got).await.unwrap();
    assert_eq!(got, expect);
    cr.read_exact(&mut got).await.unwrap();
    assert!(got.iter().all(|&b| b == 7));
    let (_cw, _sw) = (up.await.unwrap(), down.await.unwrap());
}

#[tokio::test]
async fn every_agreeing_policy_pair_talks_rc4() {
    for dial in [Policy::Prefer, Policy::Require] {
        for listen in [Policy::Prefer, Policy::Require] {
            talk(dial, listen).await;
        }
    }
}

#[tokio::test]
async fn the_stream_reports_rc4() {
    let (a, b) = duplex(4096);
    let (client, server) = tokio::join!(
        mse_connect(a, IH, Policy::Prefer, b""),
        mse_accept(b, lookup, Policy::Require)
    );
    let client = client.unwrap();
    assert_eq!(client.mse(), Some(Method::Rc4));
    assert!(client.is_encrypted());
    assert_eq!(server.unwrap().stream.mse(), Some(Method::Rc4));
}

#[tokio::test]
async fn a_plaintext_handshake_is_replayed_unless_encryption_is_required() {
    for policy in [Policy::Prefer, Policy::Disable] {
        let (mut a, b) = duplex(4096);
        a.write_all(&handshake(1)).await.unwrap();
        a.write_all(b"and a message").await.unwrap();
        let Accepted {
            mut stream,
            info_hash,
        } = accept(b, lookup, policy).await.unwrap();
        assert_eq!(info_hash, None);
        assert_eq!(stream.mse(), None);
        let mut got = vec![0u8; HANDSHAKE_LEN + 13];
        stream.read_exact(&mut got).await.unwrap();
        assert_eq!(&got[..HANDSHAKE_LEN], &handshake(1));
        assert_eq!(&got[HANDSHAKE_LEN..], b"and a message");
    }
    let (mut a, b) = duplex(4096);
    a.write_all(&handshake(1)).await.unwrap();
    let err = accept(b, lookup, Policy::Require).await.unwrap_err();
    assert!(matches!(err, TransportError::PlaintextRefused), "{err}");
}

#[tokio::test]
async fn mse_is_refused_when_disabled() {
    let (a, b) = duplex(4096);
    let (client, server) = tokio::join!(mse_connect(a, IH, Policy::Prefer, b""), async move {
        // The listener refuses, and the connection closes.
        accept(b, lookup, Policy::Disable).await.map(|_| ())
    });
    assert!(matches!(server, Err(TransportError::EncryptedRefused)));
    assert!(matches!(client, Err(TransportError::Closed)), "{client:?}");
    let (a, _b) = duplex(4096);
    let err = mse_connect(a, IH, Policy::Disable, b"").await.unwrap_err();
    assert!(matches!(err, TransportError::Mse(MseError::Disabled)));
}

#[tokio::test]
async fn an_unknown_torrent_is_refused() {
    let (a, b) = duplex(4096);
    let (client, server) = tokio::join!(
        mse_connect(a, InfoHash([1; 20]), Policy::Prefer, b""),
        async move { accept(b, lookup, Policy::Prefer).await.map(|_| ()) }
    );
    assert!(matches!(
        server,
        Err(TransportError::Mse(MseError::UnknownTorrent))
    ));
    assert!(client.is_err());
}

/// A valid DH key, then silence: dropped at the deadline.
#[tokio::test(start_paused = true)]
async fn a_handshake_that_never_completes_times_out() {
    let (mut a, b) = duplex(4096);
    let ya = share_core::mse::Initiator::new(IH, Policy::Prefer, b"", secrets())
        .unwrap()
        .take_output();
    a.write_all(&ya[..96]).await.unwrap();
    let start = tokio::time::Instant::now();
    let err = accept(b, lookup, Policy::Prefer).await.unwrap_err();
    assert!(matches!(err, TransportError::TimedOut), "{err}");
    assert_eq!(start.elapsed(), HANDSHAKE_TIMEOUT);
    drop(a);

    // The dialer likewise, against a listener that never answers.
    let (a, _b) = duplex(4096);
    let start = tokio::time::Instant::now();
    let err = mse_connect(a, IH, Policy::Prefer, b"").await.unwrap_err();
    assert!(matches!(err, TransportError::TimedOut), "{err}");
    assert_eq!(start.elapsed(), HANDSHAKE_TIMEOUT);
}

fn secrets() -> share_core::mse::Secrets {
    share_core::mse::Secrets::random(&mut rand::thread_rng())
}

/// Counts the bytes read through it.
#[derive(Debug)]
struct Counting {
    inner: DuplexStream,
    read: Arc<AtomicUsize>,
}

impl AsyncRead for Counting {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.read
            .fetch_add(buf.filled().len() - before, Ordering::Relaxed);
        r
    }
}

impl AsyncWrite for Counting {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A valid DH key, then an endless stream of garbage: refused after at most the pad bound
/// plus one read, whatever the remote keeps sending.
#[tokio::test]
async fn garbage_after_the_dh_key_is_refused_within_bounded_bytes() {
    let (mut a, b) = duplex(1 << 20);
    let read = Arc::new(AtomicUsize::new(0));
    let b = Counting {
        inner: b,
        read: read.clone(),
    };
    let ya = share_core::mse::Initiator::new(IH, Policy::Prefer, b"", secrets())
        .unwrap()
        .take_output();
    let babbler = tokio::spawn(async move {
        let mut sent = 0usize;
        let _ = a.write_all(&ya[..96]).await;
        let junk = [0xa5u8; 4096];
        while sent < 64 << 20 && a.write_all(&junk).await.is_ok() {
            sent += junk.len();
        }
        sent
    });
    let err = accept(b, lookup, Policy::Prefer).await.unwrap_err();
    assert!(
        matches!(err, TransportError::Mse(MseError::NoSyncHash)),
        "{err}"
    );
    let n = read.load(Ordering::Relaxed);
    assert!(n <= 96 + 512 + 20 + READ_CHUNK, "read {n} bytes");
    // The babbler's writes fail once the listener has dropped the connection.
    assert!(babbler.await.unwrap() < 64 << 20);
}

#[tokio::test]
async fn a_remote_that_closes_mid_handshake() {
    let (mut a, b) = duplex(4096);
    a.write_all(&[1u8; 50]).await.unwrap();
    drop(a);
    let err = accept(b, lookup, Policy::Prefer).await.unwrap_err();
    assert!(matches!(err, TransportError::Closed), "{err}");
}
