//! Stateful, end to end in one process: a real session seeding a real torrent, and each
//! input is one peer connection (over an in-memory pipe, `Session::accept_stream`) that
//! sends a valid handshake and then the fuzzer's bytes. The torrent task, its peer code
//! and its disk threads take whatever comes; a panic anywhere (a spawned task included)
//! aborts the process, which the fuzzer reports.
#![no_main]
#[path = "common/mod.rs"]
mod common;
use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use share_core::wire::Handshake;
use share_core::{InfoHash, Metainfo};
use share_engine::{Session, Source, TorrentConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct World {
    rt: tokio::runtime::Runtime,
    session: Session,
    hash: InfoHash,
    _dir: tempfile::TempDir,
}

const PIECE: usize = 32 * 1024;

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        common::abort_on_panic();
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..5 * PIECE + 777).map(|i| (i * 31 % 251) as u8).collect();
        std::fs::write(dir.path().join("f.bin"), &data).unwrap();
        let mut pieces = Vec::new();
        for p in data.chunks(PIECE) {
            use sha1::Digest;
            pieces.extend_from_slice(&sha1::Sha1::digest(p));
        }
        let info = share_core::write::Dict::new()
            .int("length", data.len() as i64)
            .bytes("name", b"f.bin")
            .int("piece length", PIECE as i64)
            .bytes("pieces", &pieces)
            .finish();
        let meta =
            Metainfo::from_bytes(&share_core::write::Dict::new().raw("info", &info).finish())
                .unwrap();
        let hash = meta.info_hash;
        let rt = common::runtime();
        let state = dir.path().join("state");
        let root = dir.path().to_path_buf();
        let session = rt.block_on(async move {
            let mut c = common::loopback_config(state, false);
            c.max_per_ip = 100_000;
            let s = Session::bind(c).await.unwrap();
            let config = TorrentConfig {
                dir: root,
                stop_when_complete: false,
                seed_only: true,
                resume: false,
                ..TorrentConfig::default()
            };
            let h = s.add(Source::Torrent(meta), config).await.unwrap();
            // Until the data is checked and it serves.
            while h.stats.get(&h.stats.verified) == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            std::mem::forget(h);
            s
        });
        World { rt, session, hash, _dir: dir }
    })
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    w.rt.block_on(async {
        let (ours, mut theirs) = tokio::io::duplex(1 << 16);
        w.session.accept_stream(ours, "127.0.0.2:4000".parse().unwrap());
        let mut hs = Handshake::new(w.hash, [7; 20]).encode();
        hs[25] |= 0x10; // extension protocol
        hs[27] |= 0x04; // fast extension
        let (mut r, mut wr) = tokio::io::split(&mut theirs);
        let writer = async {
            let _ = wr.write_all(&hs).await;
            let _ = wr.write_all(data).await;
            let _ = wr.flush().await;
        };
        // Read (and drop) whatever comes back, so our side never blocks on a full pipe,
        // until the session closes the connection or a moment passes.
        let reader = async {
            let mut sink = vec![0u8; 1 << 16];
            let _ = tokio::time::timeout(Duration::from_millis(10), async {
                while matches!(r.read(&mut sink).await, Ok(n) if n > 0) {}
            })
            .await;
        };
        tokio::join!(writer, reader);
    });
});
