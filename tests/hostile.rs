//! Hostile peers written here, against real `share` processes: liars, floods, bad requests.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use share_core::wire::{BlockRef, Handshake, Message};
use share_core::{InfoHash, Metainfo};

use crate::util::*;

fn info_hash(torrent: &std::path::Path) -> (InfoHash, u32) {
    let m = Metainfo::from_bytes(&std::fs::read(torrent).unwrap()).unwrap();
    (m.info_hash, m.info.piece_count())
}

/// Whether the peer closes the connection within `timeout`.
fn closed_within(s: &mut TcpStream, timeout: Duration) -> bool {
    s.set_read_timeout(Some(timeout)).unwrap();
    let mut chunk = [0u8; 65536];
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        match s.read(&mut chunk) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
    false
}

/// A peer that claims every piece and answers every request with garbage.
fn start_liar(hash: InfoHash, pieces: u32) -> (SocketAddr, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = dropped.clone();
    std::thread::spawn(move || {
        let Some(mut s) = accept_plaintext(&listener) else {
            return;
        };
        s.write_all(&Handshake::new(hash, *b"-XX0000-liar00000000").encode())
            .unwrap();
        send(
            &mut s,
            Message::Bitfield(
                share_core::bitfield::Bitfield::full(pieces)
                    .as_bytes()
                    .to_vec()
                    .into(),
            ),
        );
        send(&mut s, Message::Unchoke);
        let mut buf = BytesMut::new();
        while let Some(Message::Request(BlockRef {
            index,
            begin,
            length,
        })) = read_until(&mut s, &mut buf, |m| matches!(m, Message::Request(_)))
        {
            let data = vec![0xAAu8; length as usize].into();
            let mut out = BytesMut::new();
            Message::Piece { index, begin, data }.encode(&mut out);
            if s.write_all(&out).is_err() {
                break;
            }
        }
        flag.store(true, Ordering::SeqCst);
    });
    (addr, dropped)
}

#[test]
fn a_peer_sending_corrupt_blocks_is_banned_and_the_data_comes_out_right() {
    let d = Dir::new();
    d.data_file("src/f.bin", 1_000_000, 3);
    let t = make_torrent(&d, &d.join("src/f.bin"), 32768, &[]);
    let (hash, pieces) = info_hash(&t);
    let (liar, liar_dropped) = start_liar(hash, pieces);
    let seed = start_seed(&t, &d.join("src"), &["--max-upload-rate", "2M"]);
    let mut fetch = start_fetch(&t, &d.join("dst"), &[liar, seed.addr], &[]);
    let (code, _) = fetch.wait(Duration::from_secs(60));
    assert_eq!(code, Some(0), "{}", fetch.stderr());
    assert_same_file(&d.join("src/f.bin"), &d.join("dst/f.bin"));
    let err = fetch.stderr();
    assert!(err.contains(&format!("banned peer {liar}")), "{err}");
    assert!(
        liar_dropped.load(Ordering::SeqCst),
        "the liar is still connected"
    );
}

#[test]
fn a_4_gib_length_prefix_gets_a_disconnect_not_an_allocation() {
    let d = Dir::new();
    d.data_file("src/f.bin", 100_000, 3);
    let t = make_torrent(&d, &d.join("src/f.bin"), 16384, &[]);
    let (hash, _) = info_hash(&t);
    let seed = start_seed(&t, &d.join("src"), &[]);
    for _ in 0..20 {
        let mut s = handshake(seed.addr, hash);
        s.write_all(&[0xff, 0xff, 0xff, 0xff, 7, 0, 0, 0]).unwrap();
        assert!(
            closed_within(&mut s, Duration::from_secs(10)),
            "not disconnected"
        );
    }
    let rss = std::fs::read_to_string(format!("/proc/{}/status", seed.child.id())).unwrap();
    let kb: u64 = rss
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(kb < 200 * 1024, "seed peak RSS {kb} KiB");
    // Still serving.
    let mut fetch = start_fetch(&t, &d.join("dst"), &[seed.addr], &[]);
    assert_eq!(fetch.wait(Duration::from_secs(60)).0, Some(0));
}

#[test]
fn a_wrong_info_hash_is_refused() {
    let d = Dir::new();
    d.data_file("src/f.bin", 10_000, 3);
    let t = make_torrent(&d, &d.join("src/f.bin"), 16384, &[]);
    let seed = start_seed(&t, &d.join("src"), &[]);
    let mut s = TcpStream::connect(seed.addr).unwrap();
    s.write_all(&Handshake::new(InfoHash([9; 20]), [1; 20]).encode())
        .unwrap();
    // We may get its handshake first; what matters is that it then hangs up.
    assert!(closed_within(&mut s, Duration::from_secs(10)));
}

#[test]
fn out_of_range_requests_are_rejected_and_valid_ones_still_served() {
    let d = Dir::new();
    d.data_file("src/f.bin", 100_000, 3);
    let t = make_torrent(&d, &d.join("src/f.bin"), 32768, &[]);
    let (hash, pieces) = info_hash(&t);
    let seed = start_seed(&t, &d.join("src"), &[]);
    let mut s = handshake(seed.addr, hash);
    let mut buf = BytesMut::new();
    send(&mut s, Message::Interested);
    assert!(read_until(&mut s, &mut buf, |m| *m == Message::Unchoke).is_some());
    let bad = [
        BlockRef {
            index: pieces + 5,
            begin: 0,
            length: 16384,
        },
        BlockRef {
            index: u32::MAX,
            begin: 0,
            length: 16384,
        },
        BlockRef {
            index: 0,
            begin: 32768,
            length: 16384,
        },
        BlockRef {
            index: 0,
            begin: u32::MAX - 5,
            length: 16384,
        },
        BlockRef {
            index: 0,
            begin: 0,
            length: 1 << 20,
        },
        BlockRef {
            index: 0,
            begin: 0,
            length: 0,
        },
        BlockRef {
            index: pieces - 1,
            begin: 0,
            length: 16384,
        },
    ];
    for b in bad {
        send(&mut s, Message::Request(b));
        let got = read_until(&mut s, &mut buf, |m| {
            matches!(m, Message::Reject(_) | Message::Piece { .. })
        });
        assert_eq!(got, Some(Message::Reject(b)), "request {b:?}");
    }
    let good = BlockRef {
        index: 1,
        begin: 16384,
        length: 16384,
    };
    send(&mut s, Message::Request(good));
    let got = read_until(&mut s, &mut buf, |m| matches!(m, Message::Piece { .. })).expect("piece");
    let data = std::fs::read(d.join("src/f.bin")).unwrap();
    let want = &data[32768 + 16384..32768 + 32768];
    assert!(
        matches!(got, Message::Piece { index: 1, begin: 16384, data: ref b } if &b[..] == want)
    );
}
