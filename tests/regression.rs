//! One test per bug found, so that it stays fixed.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use share_core::wire::{self, BlockRef, Handshake, Message};
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

    let mut s = TcpStream::connect(seed.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&Handshake::new(m.info_hash, *b"-XX0000-regression01").encode())
        .unwrap();
    let mut hs = [0u8; 68];
    s.read_exact(&mut hs).unwrap();
    let mut out = BytesMut::new();
    Message::Interested.encode(&mut out);
    s.write_all(&out).unwrap();

    let mut buf = BytesMut::new();
    let mut read = |s: &mut TcpStream, buf: &mut BytesMut| -> Option<Message> {
        loop {
            if let Some(m) = wire::decode(buf, wire::max_frame(100)).unwrap() {
                return Some(m);
            }
            let mut chunk = [0u8; 65536];
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    while read(&mut s, &mut buf).expect("unchoke") != Message::Unchoke {}
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
        match read(&mut s, &mut buf) {
            Some(Message::Piece { .. }) => blocks += 1,
            Some(_) => {}
            None => panic!("got {blocks} of 96 blocks, then nothing for 10 s"),
        }
    }
    assert!(start.elapsed() < Duration::from_secs(10));
}
