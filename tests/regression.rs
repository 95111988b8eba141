//! One test per bug found, so that it stays fixed.

use std::io::Write;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use share_core::wire::{BlockRef, Message};
use share_core::Metainfo;

use crate::util::*;

/// The writer moved at most 256 KiB of queued blocks per write and then waited for the next
/// command; a peer that sent one burst of requests and waited got the rest only after the
/// 60 s keep-alive. A 1 GiB transfer took 25 s instead of 4.
#[test]
fn a_burst_of_requests_is_answered_in_full_without_further_prompting() {
    let d = Dir::new();
    d.data_file("src/f.bin", 2 << 20, 51);
    let t = make_torrent(&d, &d.join("src/f.bin"), 1 << 20, &[]);
    let m = Metainfo::from_bytes(&std::fs::read(&t).unwrap()).unwrap();
    let seed = start_seed(&t, &d.join("src"), &[]);

    let mut s = handshake(seed.addr, m.info_hash);
    let mut buf = BytesMut::new();
    send(&mut s, Message::Interested);
    assert!(read_until(&mut s, &mut buf, |m| *m == Message::Unchoke).is_some());
    // 96 blocks (1.5 MiB) in one burst, then silence.
    let mut out = BytesMut::new();
    for n in 0..96u32 {
        let b = BlockRef {
            index: n / 64,
            begin: (n % 64) * 16384,
            length: 16384,
        };
        Message::Request(b).encode(&mut out);
    }
    s.write_all(&out).unwrap();
    let start = Instant::now();
    let mut blocks = 0;
    while blocks < 96 {
        match read_until(&mut s, &mut buf, |m| matches!(m, Message::Piece { .. })) {
            Some(_) => blocks += 1,
            None => panic!("got {blocks} of 96 blocks, then nothing for 10 s"),
        }
    }
    assert!(start.elapsed() < Duration::from_secs(10));
}

/// An error's cause was printed twice in the chain: `malformed bencode: 1 unexpected bytes
/// after the end of the value (at byte 146): 1 unexpected bytes after the end of the value
/// (at byte 146)`, because the message embedded its source and also returned it.
#[test]
fn an_error_chain_says_each_cause_once() {
    let d = Dir::new();
    let t = d.join("trailing.torrent");
    std::fs::write(
        &t,
        b"d4:infod6:lengthi1e4:name1:x12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaaeex",
    )
    .unwrap();
    let out = run(share().arg("inspect").arg(&t));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(
        err.matches("unexpected bytes after the end").count(),
        1,
        "{err}"
    );
    let missing = run(share().arg("create").arg(d.join("nothing-here")));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
}
