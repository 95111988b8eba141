//! The torrent task driven in-process with fake peers over in-memory pipes
//! (`Session::accept_stream`) and tokio's paused clock, so that its timing rules are tested
//! in virtual time, deterministically, instead of with wall-clock sleeps: the stall rule
//! (requests withdrawn after 20 s, the peer dropped after three stalls), endgame (the last
//! blocks asked of a second peer and cancelled at the first), choking rounds (at most the
//! upload slots plus one optimistic unchoke at a time, every interested peer served in
//! turn), and the handshake deadline.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use sha1::{Digest, Sha1};
use share_core::wire::{self, BlockRef, Handshake, Message, HANDSHAKE_LEN};
use share_core::{InfoHash, Metainfo};
use share_engine::{Session, SessionConfig, Source, TorrentConfig, Transports};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::time::Instant;

const PIECE: usize = 64 * 1024;
const BLOCK: usize = 16 * 1024;

fn content(len: usize) -> Vec<u8> {
    let mut x = 0x9e3779b97f4a7c15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn torrent(name: &str, data: &[u8]) -> Metainfo {
    let mut pieces = Vec::new();
    for p in data.chunks(PIECE) {
        pieces.extend_from_slice(&Sha1::digest(p));
    }
    let info = share_core::write::Dict::new()
        .int("length", data.len() as i64)
        .bytes("name", name.as_bytes())
        .int("piece length", PIECE as i64)
        .bytes("pieces", &pieces)
        .finish();
    let t = share_core::write::Dict::new().raw("info", &info).finish();
    Metainfo::from_bytes(&t).expect("a valid torrent")
}

async fn session(state: &std::path::Path) -> Session {
    let mut c = SessionConfig::new("127.0.0.1:0".parse().unwrap(), state.to_path_buf());
    c.lsd = false;
    c.pex = false;
    c.dht = None;
    c.loopback_only = true;
    c.transports = Transports {
        tcp: true,
        utp: false,
    };
    Session::bind(c).await.expect("a session")
}

/// One fake peer on the far end of an in-memory pipe.
struct Fake {
    io: DuplexStream,
    buf: BytesMut,
}

impl Fake {
    /// Connects to `session` as if from `addr`, names `hash` and reads our handshake.
    async fn connect(session: &Session, hash: InfoHash, n: u8) -> Fake {
        let (ours, mut theirs) = tokio::io::duplex(1 << 20);
        let addr: SocketAddr = format!("127.0.0.{}:{}", 10 + n, 6000 + n as u16)
            .parse()
            .unwrap();
        session.accept_stream(ours, addr);
        let hs = Handshake::new(hash, [n; 20]);
        theirs.write_all(&hs.encode()).await.unwrap();
        let mut back = [0u8; HANDSHAKE_LEN];
        theirs.read_exact(&mut back).await.expect("our handshake");
        let back = Handshake::decode(&back).expect("a valid handshake");
        assert_eq!(back.info_hash, hash);
        Fake {
            io: theirs,
            buf: BytesMut::new(),
        }
    }

    async fn send(&mut self, m: Message) {
        let mut out = BytesMut::new();
        m.encode(&mut out);
        self.io.write_all(&out).await.unwrap();
    }

    /// The next message, or `None` when the connection closed.
    async fn recv(&mut self) -> Option<Message> {
        loop {
            match wire::decode(&mut self.buf, wire::max_frame(1 << 16)) {
                Ok(Some(m)) => return Some(m),
                Ok(None) => {}
                Err(e) => panic!("we sent a bad frame: {e}"),
            }
            let mut chunk = [0u8; 65536];
            match self.io.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

/// Ends the test process if a test runs longer than `secs` of wall-clock time (waits in
/// virtual time cannot bound themselves while other threads work).
struct Watchdog(Arc<std::sync::atomic::AtomicBool>);

fn watchdog(secs: u64) -> Watchdog {
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = done.clone();
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(secs));
        if !flag.load(std::sync::atomic::Ordering::Relaxed) {
            eprintln!("in_process: a test ran for more than {secs} s of wall-clock time");
            std::process::exit(101);
        }
    });
    Watchdog(done)
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

fn fetch_config(dir: &std::path::Path) -> TorrentConfig {
    TorrentConfig {
        dir: dir.to_path_buf(),
        stop_when_complete: true,
        resume: false,
        ..TorrentConfig::default()
    }
}

fn bitfield_full(pieces: usize) -> Message {
    let mut b = vec![0u8; pieces.div_ceil(8)];
    for i in 0..pieces {
        b[i / 8] |= 0x80 >> (i % 8);
    }
    Message::Bitfield(b.into())
}

fn block_of(data: &[u8], b: &BlockRef) -> bytes::Bytes {
    let at = b.index as usize * PIECE + b.begin as usize;
    bytes::Bytes::copy_from_slice(&data[at..at + b.length as usize])
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_holds_requests_loses_them_after_20_s_and_is_dropped_after_three_stalls() {
    let _watchdog = watchdog(120);
    let dir = tempfile::tempdir().unwrap();
    let data = content(8 * PIECE);
    let meta = torrent("stall.bin", &data);
    let hash = meta.info_hash;
    let s = session(&dir.path().join("state")).await;
    let _h = s
        .add(Source::Torrent(meta), fetch_config(&dir.path().join("dl")))
        .await
        .unwrap();
    let mut peer = Fake::connect(&s, hash, 1).await;
    peer.send(bitfield_full(8)).await;
    peer.send(Message::Unchoke).await;
    let start = Instant::now();
    let mut asked: Vec<(Duration, BlockRef)> = Vec::new();
    let closed_at = loop {
        match tokio::time::timeout(Duration::from_secs(600), peer.recv()).await {
            Ok(Some(Message::Request(b))) => asked.push((start.elapsed(), b)),
            Ok(Some(_)) => {}
            Ok(None) => break start.elapsed(),
            Err(_) => panic!("never dropped; asked {} times", asked.len()),
        }
    };
    // The first request for a block that was asked before.
    let mut seen = std::collections::HashSet::new();
    let again = asked
        .iter()
        .find(|(_, b)| !seen.insert(*b))
        .map(|(t, _)| *t)
        .expect("a block asked again");
    // The stall rule: asked again only after 20 s without a block, on a tick of 1 s.
    assert!(
        again >= Duration::from_secs(20) && again <= Duration::from_secs(22),
        "asked again at {again:?}"
    );
    // Three stalls of 20 s each, then closed.
    assert!(
        closed_at >= Duration::from_secs(60) && closed_at <= Duration::from_secs(66),
        "closed at {closed_at:?}"
    );
    // After the first stall it is trusted with one block at a time.
    let after: Vec<_> = asked.iter().filter(|(t, _)| *t >= again).collect();
    assert!(
        after.len() <= 3,
        "{} requests after the first stall",
        after.len()
    );
    s.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn endgame_asks_a_second_peer_for_the_last_blocks_and_cancels_them_at_the_first() {
    let _watchdog = watchdog(120);
    let dir = tempfile::tempdir().unwrap();
    let data = content(4 * PIECE + 5000);
    let meta = torrent("endgame.bin", &data);
    let hash = meta.info_hash;
    let pieces = meta.info.piece_count() as usize;
    let s = session(&dir.path().join("state")).await;
    let h = s
        .add(Source::Torrent(meta), fetch_config(&dir.path().join("dl")))
        .await
        .unwrap();
    // The first peer takes every request (the torrent has fewer blocks than its depth) and
    // answers none of them.
    let mut slow = Fake::connect(&s, hash, 1).await;
    slow.send(bitfield_full(pieces)).await;
    slow.send(Message::Unchoke).await;
    let blocks = data.len().div_ceil(BLOCK);
    let mut held = std::collections::HashSet::new();
    while held.len() < blocks {
        match tokio::time::timeout(Duration::from_secs(5), slow.recv()).await {
            Ok(Some(Message::Request(b))) => {
                held.insert(b);
            }
            Ok(Some(_)) => {}
            other => panic!("the first peer got {} requests, then {other:?}", held.len()),
        }
    }
    let slow_log = Arc::new(Mutex::new(Vec::new()));
    let log = slow_log.clone();
    let slow_task = tokio::spawn(async move {
        while let Some(m) = slow.recv().await {
            log.lock().unwrap().push(m);
        }
    });
    // A second peer: in endgame, it is asked for the same blocks, and answers at once.
    let start = Instant::now();
    let mut fast = Fake::connect(&s, hash, 2).await;
    fast.send(bitfield_full(pieces)).await;
    fast.send(Message::Unchoke).await;
    let mut answered = std::collections::HashSet::new();
    let done = h.done();
    tokio::pin!(done);
    loop {
        tokio::select! {
            r = &mut done => {
                assert!(r.expect("no error").complete);
                break;
            }
            m = fast.recv() => match m {
                Some(Message::Request(b)) => {
                    assert!(held.contains(&b), "asked for a block {b:?} nobody held");
                    fast.send(Message::Piece { index: b.index, begin: b.begin, data: block_of(&data, &b) }).await;
                    answered.insert(b);
                }
                Some(_) => {}
                // Complete: the torrent ends and closes its connections.
                // (The paused clock jumps while the disk threads sync, so this wait has a
                // wall-clock watchdog rather than a tokio timeout.)
                None => {
                    assert!((&mut done).await.expect("no error").complete);
                    break;
                }
            },
        }
    }
    // Endgame, not the stall rule (which withdraws requests without a cancel). The paused
    // clock jumps while the disk threads work, so virtual time says nothing here.
    let _ = start;
    assert_eq!(
        answered.len(),
        blocks,
        "every block came from the second peer"
    );
    // The torrent ended and closed the first peer's connection: its log is complete.
    let _ = slow_task.await;
    let cancels: std::collections::HashSet<BlockRef> = slow_log
        .lock()
        .unwrap()
        .iter()
        .filter_map(|m| match m {
            Message::Cancel(b) => Some(*b),
            _ => None,
        })
        .collect();
    // Every block the second peer delivered is cancelled at the first, but for the very
    // last, whose arrival completes the torrent (which then closes every connection).
    assert!(
        cancels.is_subset(&held),
        "cancelled blocks never asked: {cancels:?}"
    );
    assert!(
        cancels.len() + 1 >= held.len(),
        "{} of {} requests cancelled",
        cancels.len(),
        held.len()
    );
    assert_eq!(
        std::fs::read(dir.path().join("dl/endgame.bin")).unwrap(),
        data
    );
    s.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_seed_unchokes_at_most_its_slots_plus_one_and_serves_every_peer_in_turn() {
    let _watchdog = watchdog(120);
    let dir = tempfile::tempdir().unwrap();
    let data = content(4 * PIECE);
    let meta = torrent("choke.bin", &data);
    let hash = meta.info_hash;
    std::fs::write(dir.path().join("choke.bin"), &data).unwrap();
    let s = session(&dir.path().join("state")).await;
    let config = TorrentConfig {
        dir: dir.path().to_path_buf(),
        stop_when_complete: false,
        seed_only: true,
        upload_slots: 2,
        resume: false,
        ..TorrentConfig::default()
    };
    let _h = s.add(Source::Torrent(meta), config).await.unwrap();
    // Six interested leechers that have nothing.
    let events = Arc::new(Mutex::new(Vec::<(Duration, u8, bool)>::new()));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for n in 1..=6u8 {
        let mut p = Fake::connect(&s, hash, n).await;
        p.send(Message::Interested).await;
        let events = events.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(m) = p.recv().await {
                match m {
                    Message::Unchoke => events.lock().unwrap().push((start.elapsed(), n, true)),
                    Message::Choke => events.lock().unwrap().push((start.elapsed(), n, false)),
                    _ => {}
                }
            }
            // Closed (a peer silent for 150 s is dropped): no longer unchoked.
            events.lock().unwrap().push((start.elapsed(), n, false));
        }));
    }
    tokio::time::sleep(Duration::from_secs(140)).await;
    let events = events.lock().unwrap().clone();
    // The unchoked set halfway between rounds (the messages of one round reach the peers'
    // tasks in any order, and the paused clock may move while they do).
    let mut most = 0;
    let mut served = std::collections::HashSet::new();
    for half in (5..140).step_by(10) {
        let at = Duration::from_secs(half);
        let mut unchoked = std::collections::HashSet::new();
        for (t, n, on) in events.iter().filter(|e| e.0 <= at) {
            let _ = t;
            if *on {
                unchoked.insert(*n);
                served.insert(*n);
            } else {
                unchoked.remove(n);
            }
        }
        most = most.max(unchoked.len());
    }
    assert!(most <= 3, "{most} unchoked at once: {events:?}");
    assert!(most >= 2, "the slots were not used: {events:?}");
    assert_eq!(
        served.len(),
        6,
        "not every peer had a turn in 200 s: {events:?}"
    );
    // Slots change at rounds (10 s for the regular ones, 30 s for the optimistic), not on
    // every tick.
    let changes = events.len();
    assert!(
        changes <= 2 * (200 / 10) * 3 + 6,
        "{changes} choke changes in 200 s"
    );
    s.shutdown().await;
    for t in tasks {
        t.abort();
    }
}

#[tokio::test(start_paused = true)]
async fn a_connection_that_sends_nothing_is_closed_at_the_handshake_deadline() {
    let _watchdog = watchdog(120);
    let dir = tempfile::tempdir().unwrap();
    let s = session(&dir.path().join("state")).await;
    let (ours, mut theirs) = tokio::io::duplex(4096);
    let start = Instant::now();
    s.accept_stream(ours, "127.0.0.9:7000".parse().unwrap());
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(600), theirs.read(&mut buf))
        .await
        .expect("closed in time")
        .unwrap_or(0);
    assert_eq!(n, 0, "it wrote to a silent connection");
    let t = start.elapsed();
    assert!(
        t >= Duration::from_secs(5) && t <= Duration::from_secs(30),
        "closed after {t:?}"
    );
    s.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_seed_with_a_free_slot_unchokes_a_new_leecher_at_once() {
    let _watchdog = watchdog(120);
    let dir = tempfile::tempdir().unwrap();
    let data = content(2 * PIECE);
    let meta = torrent("now.bin", &data);
    let hash = meta.info_hash;
    std::fs::write(dir.path().join("now.bin"), &data).unwrap();
    let s = session(&dir.path().join("state")).await;
    let config = TorrentConfig {
        dir: dir.path().to_path_buf(),
        stop_when_complete: false,
        seed_only: true,
        resume: false,
        ..TorrentConfig::default()
    };
    let h = s.add(Source::Torrent(meta), config).await.unwrap();
    while h.stats.get(&h.stats.verified) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut p = Fake::connect(&s, hash, 1).await;
    // Past the first tick, so that nothing but the interest itself can unchoke it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    p.send(Message::Interested).await;
    let start = Instant::now();
    loop {
        match p.recv().await {
            Some(Message::Unchoke) => break,
            Some(_) => {}
            None => panic!("closed"),
        }
    }
    assert!(
        start.elapsed() < Duration::from_millis(100),
        "unchoked after {:?}",
        start.elapsed()
    );
    s.shutdown().await;
}
