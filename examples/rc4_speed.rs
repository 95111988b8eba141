//! Prints the cost of protocol encryption on this machine: RC4 (MSE's, 1024 bytes dropped) on
//! one core, the sans-IO MSE handshake (four 768-bit modular exponentiations), and 1 GiB
//! through `EncryptedStream` over an in-memory pipe and over loopback TCP, RC4 against
//! plaintext, on a current-thread runtime as `share` runs.
//!
//! `cargo run --release --example rc4_speed [MiB]` (default 1024).

use std::time::Instant;

use share_core::mse::{skey_hash, Handshake, Initiator, Policy, Rc4Stream, Responder, Secrets};
use share_core::InfoHash;
use share_engine::transport::{accept, mse_connect, EncryptedStream};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const CHUNK: usize = 256 * 1024;
const IH: InfoHash = InfoHash([3; 20]);

fn main() {
    let mib: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1024);
    let total = mib << 20;

    let mut buf = vec![7u8; 1 << 20];
    let mut rc4 = Rc4Stream::new(&[9; 20]);
    let start = Instant::now();
    for _ in 0..mib {
        rc4.apply(&mut buf);
    }
    report("rc4 in place, one core", total, start);

    let n = 200;
    let start = Instant::now();
    for i in 0..n {
        handshake(i as u8);
    }
    let per = start.elapsed().as_secs_f64() / f64::from(n);
    println!("mse handshake (both sides, sans-IO): {:.0} µs", per * 1e6);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for encrypted in [false, true] {
            let (a, b) = tokio::io::duplex(1 << 20);
            let (a, b) = pair(a, b, encrypted).await;
            let start = Instant::now();
            pump(a, b, total).await;
            report(&format!("duplex, {}", label(encrypted)), total, start);
        }
        for encrypted in [false, true] {
            let (a, b) = tcp().await;
            let (a, b) = pair(a, b, encrypted).await;
            let start = Instant::now();
            pump(a, b, total).await;
            report(&format!("loopback tcp, {}", label(encrypted)), total, start);
        }
        // The same, with the halves split as the peer tasks would hold them.
        let (a, b) = tcp().await;
        let (a, b) = pair(a, b, true).await;
        let (mut ar, _aw) = a.into_split(TcpStream::into_split);
        let (_br, mut bw) = b.into_split(TcpStream::into_split);
        let start = Instant::now();
        pump_halves(&mut bw, &mut ar, total).await;
        report("loopback tcp, rc4, into_split", total, start);
        let (a, b) = tcp().await;
        let (a, b) = pair(a, b, true).await;
        let (mut ar, _aw) = tokio::io::split(a);
        let (_br, mut bw) = tokio::io::split(b);
        let start = Instant::now();
        pump_halves(&mut bw, &mut ar, total).await;
        report("loopback tcp, rc4, tokio::io::split", total, start);
    });

    // A sender and a receiver each on its own core, as two peers are: what one side pays.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let start = Instant::now();
    let sender = std::thread::spawn(move || {
        on_own_runtime(async move {
            let tcp = TcpStream::connect(addr).await.unwrap();
            let mut s = mse_connect(tcp, IH, Policy::Require, b"").await.unwrap();
            let out = vec![0x42u8; CHUNK];
            let mut sent = 0;
            while sent < total {
                s.write_all(&out).await.unwrap();
                sent += out.len();
            }
            s.flush().await.unwrap();
        })
    });
    let (tcp, _) = l.accept().unwrap();
    on_own_runtime(async move {
        tcp.set_nonblocking(true).unwrap();
        let tcp = TcpStream::from_std(tcp).unwrap();
        let lookup = |h: &[u8; 20]| (h == &skey_hash(&IH)).then_some(IH);
        let mut r = accept(tcp, lookup, Policy::Require).await.unwrap().stream;
        let mut buf = vec![0u8; CHUNK];
        let mut got = 0;
        while got < total {
            got += r.read(&mut buf).await.unwrap();
        }
    });
    sender.join().unwrap();
    report(
        "loopback tcp, rc4, sender and receiver on two threads",
        total,
        start,
    );
}

fn on_own_runtime(f: impl std::future::Future<Output = ()>) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn label(encrypted: bool) -> &'static str {
    if encrypted {
        "rc4"
    } else {
        "plaintext"
    }
}

fn report(what: &str, bytes: usize, start: Instant) {
    let s = start.elapsed().as_secs_f64();
    println!("{what}: {:.0} MB/s", bytes as f64 / s / 1e6);
}

fn handshake(seed: u8) {
    let s = |k: u8| Secrets::new([k | 1; 20], vec![seed; 100], vec![]).unwrap();
    let lookup = |h: &[u8; 20]| (h == &skey_hash(&IH)).then_some(IH);
    let mut a = Initiator::new(IH, Policy::Require, b"", s(seed ^ 0x55)).unwrap();
    let mut b = Responder::new(lookup, Policy::Prefer, s(seed)).unwrap();
    b.feed(&a.take_output()).unwrap();
    a.feed(&b.take_output()).unwrap();
    assert!(b.feed(&a.take_output()).unwrap().is_some());
    assert!(a.feed(&b.take_output()).unwrap().is_some());
}

async fn tcp() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (a, b) = tokio::join!(TcpStream::connect(addr), l.accept());
    (a.unwrap(), b.unwrap().0)
}

/// Both ends after an MSE handshake (RC4) or as plaintext passthrough.
async fn pair<S>(a: S, b: S, encrypted: bool) -> (EncryptedStream<S>, EncryptedStream<S>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if !encrypted {
        return (
            EncryptedStream::plaintext(a, Vec::new()),
            EncryptedStream::plaintext(b, Vec::new()),
        );
    }
    let lookup = |h: &[u8; 20]| (h == &skey_hash(&IH)).then_some(IH);
    let (a, b) = tokio::join!(
        mse_connect(a, IH, Policy::Require, b""),
        accept(b, lookup, Policy::Require)
    );
    (a.unwrap(), b.unwrap().stream)
}

/// Sends `total` bytes from `a` to `b` (writer and reader as two tasks on one thread).
async fn pump<S>(a: EncryptedStream<S>, b: EncryptedStream<S>, total: usize)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut a, mut b) = (a, b);
    pump_halves(&mut a, &mut b, total).await;
}

async fn pump_halves(
    w: &mut (impl AsyncWrite + Unpin),
    r: &mut (impl AsyncRead + Unpin),
    total: usize,
) {
    let out = vec![0x42u8; CHUNK];
    let writer = async {
        let mut sent = 0;
        while sent < total {
            w.write_all(&out).await.unwrap();
            sent += out.len();
        }
        w.flush().await.unwrap();
    };
    let reader = async {
        let mut buf = vec![0u8; CHUNK];
        let mut got = 0;
        while got < total {
            let n = r.read(&mut buf).await.unwrap();
            assert!(n > 0);
            got += n;
        }
        assert_eq!(buf[0], 0x42);
    };
    tokio::join!(writer, reader);
}
