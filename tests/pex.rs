//! Peer exchange (BEP 11): a leecher that knows one peer learns the rest of the swarm from
//! it, and a flood of exchanged addresses stays bounded.

use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use bytes::BytesMut;
use share_core::ext::{ExtHandshake, OurHandshake, Registry};
use share_core::pex::PexMessage;
use share_core::wire::Message;

use crate::util::*;

const TIMEOUT: Duration = Duration::from_secs(90);

#[test]
fn a_leecher_given_one_libtorrent_seed_learns_the_other_leechers_through_pex_and_connects() {
    if !require_libtorrent() {
        return;
    }
    let d = Dir::new();
    d.data_file("src/f.bin", 8 << 20, 71);
    let t = make_torrent(&d, &d.join("src/f.bin"), 65536, &[]);
    // A slow libtorrent seed, so that the swarm is still busy when the newcomer arrives.
    let mut lt = Proc::start(
        Command::new(python())
            .arg(peer_script("lt_peer.py"))
            .arg("seed")
            .arg(&t)
            .arg(d.join("src"))
            .args(["--timeout", "200", "--upload-rate", "400000"]),
    );
    assert!(
        lt.wait_line(|l| l == "seeding", TIMEOUT).is_some(),
        "{}",
        lt.stderr()
    );
    let others: Vec<Proc> = (0..4)
        .map(|i| {
            start_fetch(
                &t,
                &d.join(&format!("l{i}")),
                &[lt.addr],
                &["--seed", "--no-pex"],
            )
        })
        .collect();
    // Let them connect to the seed (and it learn where they listen).
    std::thread::sleep(Duration::from_secs(3));
    let mut cmd = share();
    cmd.env("SHARE_LOG", "share_engine=debug")
        .arg("fetch")
        .arg(&t)
        .arg("-o")
        .arg(d.join("new"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--seed",
            "--peer",
            &lt.addr.to_string(),
        ]);
    let newcomer = Proc::start(&mut cmd);
    for o in &others {
        let line = format!("connected addr={}", o.addr);
        assert!(
            newcomer.wait_stderr(&line, TIMEOUT),
            "never connected to {} (learned by PEX): {}",
            o.addr,
            newcomer
                .stderr()
                .lines()
                .filter(|l| l.contains("peers found") || l.contains("connected"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    assert!(
        newcomer.stderr().contains("source=\"PEX\""),
        "{}",
        newcomer.stderr()
    );
}

#[test]
fn a_pex_flood_is_bounded_and_the_seed_keeps_serving() {
    let d = Dir::new();
    d.data_file("src/f.bin", 1_000_000, 72);
    let t = make_torrent(&d, &d.join("src/f.bin"), 32768, &[]);
    let (hash, _) = magnet_of(&t);
    let mut cmd = share();
    cmd.env("SHARE_LOG", "share_engine=debug")
        .arg("seed")
        .arg(&t)
        .arg("-d")
        .arg(d.join("src"))
        .args(["--listen", "127.0.0.1:0"]);
    let mut seed = Proc::start(&mut cmd);
    let mut s: TcpStream = handshake(seed.addr, hash);
    let ours = OurHandshake {
        registry: Registry::public(),
        port: Some(1),
        version: "flood",
        reqq: 10,
        metadata_size: None,
        yourip: None,
    };
    send(
        &mut s,
        Message::Extended {
            id: 0,
            payload: ours.encode().into(),
        },
    );
    let mut buf = BytesMut::new();
    let theirs = read_until(&mut s, &mut buf, |m| {
        matches!(m, Message::Extended { id: 0, .. })
    });
    let Some(Message::Extended { payload, .. }) = theirs else {
        panic!("no extension handshake");
    };
    let pex_id = ExtHandshake::parse(&payload)
        .unwrap()
        .pex_id
        .expect("ut_pex offered");
    // 300 messages of 2000 loopback addresses each (none listening).
    let mut sent = 0u64;
    for m in 0..300u32 {
        let added = (0..2000u32)
            .map(|i| {
                let n = m * 2000 + i;
                let ip = std::net::Ipv4Addr::new(127, 1 + (n >> 16) as u8, (n >> 8) as u8, n as u8);
                (std::net::SocketAddr::new(ip.into(), 9), 0u8)
            })
            .collect();
        let msg = PexMessage {
            added,
            dropped: vec![],
        };
        let mut out = BytesMut::new();
        Message::Extended {
            id: pex_id,
            payload: msg.encode().into(),
        }
        .encode(&mut out);
        if std::io::Write::write_all(&mut s, &out).is_err() {
            break;
        }
        sent += 2000;
    }
    assert!(sent >= 100_000, "the seed dropped the flood early: {sent}");
    // Meanwhile an honest fetch completes.
    let mut fetch = start_fetch(&t, &d.join("dst"), &[seed.addr], &[]);
    assert_eq!(fetch.wait(TIMEOUT).0, Some(0), "{}", fetch.stderr());
    assert_same_file(&d.join("src/f.bin"), &d.join("dst/f.bin"));
    std::thread::sleep(Duration::from_secs(2));
    let err = seed.stderr();
    let learned: u64 = err
        .lines()
        .filter(|l| l.contains("peers found") && l.contains("PEX"))
        .filter_map(|l| {
            l.split("new=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    assert!(learned > 0, "nothing taken from the flood at all: {err}");
    assert!(
        learned <= 300,
        "took {learned} addresses from one connection"
    );
    let rss = peak_rss(seed.child.id());
    assert!(rss == 0 || rss < 150 << 20, "peak RSS {rss}");
    assert_eq!(seed.stop().0, Some(0));
}
