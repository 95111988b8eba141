//! Protocol encryption (MSE/PE) with real peers that insist on it: libtorrent with RC4
//! forced both ways, Transmission with encryption required, aria2 with
//! `--bt-require-crypto`; and a share peer that requires it refusing a plaintext one.

use std::process::Command;
use std::time::Duration;

use crate::util::*;

const TIMEOUT: Duration = Duration::from_secs(120);

fn content(d: &Dir) -> std::path::PathBuf {
    d.data_file("src/tree/a.bin", 900_001, 111);
    d.data_file("src/tree/sub/b.bin", 200_000, 112);
    d.join("src/tree")
}

fn assert_same_tree(d: &Dir, dst: &str) {
    for f in ["a.bin", "sub/b.bin"] {
        assert_same_file(
            &d.join("src/tree").join(f),
            &d.join(dst).join("tree").join(f),
        );
    }
}

fn lt(mode: &str, t: &std::path::Path, dir: &std::path::Path, extra: &[&str]) -> Proc {
    std::fs::create_dir_all(dir).unwrap();
    Proc::start(
        Command::new(python())
            .arg(peer_script("lt_peer.py"))
            .arg(mode)
            .arg(t)
            .arg(dir)
            .args(["--force-rc4", "--timeout", "100"])
            .args(extra),
    )
}

/// `share fetch` with the engine's debug log, so that the connection's encryption shows.
fn logged_fetch(
    t: &std::path::Path,
    dir: &std::path::Path,
    peer: std::net::SocketAddr,
    extra: &[&str],
) -> Proc {
    let mut c = share();
    c.env("SHARE_LOG", "share_engine=debug")
        .arg("fetch")
        .arg(t)
        .arg("-o")
        .arg(dir)
        .args(["--listen", "127.0.0.1:0", "--peer", &peer.to_string()])
        .args(extra);
    Proc::start(&mut c)
}

#[test]
fn share_fetches_from_libtorrent_that_forces_rc4_both_ways() {
    if !require_libtorrent() {
        return;
    }
    let d = Dir::new();
    let path = content(&d);
    let t = make_torrent(&d, &path, 16384, &[]);
    let mut seed = lt("seed", &t, &d.join("src"), &[]);
    assert!(
        seed.wait_line(|l| l == "seeding", TIMEOUT).is_some(),
        "{}",
        seed.stderr()
    );
    let mut fetch = logged_fetch(&t, &d.join("dst"), seed.addr, &[]);
    assert_eq!(fetch.wait(TIMEOUT).0, Some(0), "{}", fetch.stderr());
    assert_same_tree(&d, "dst");
    assert!(
        fetch.stderr().contains(", MSE RC4"),
        "not over RC4: {}",
        fetch.stderr()
    );
}

#[test]
fn libtorrent_that_forces_rc4_both_ways_fetches_from_share_seed() {
    if !require_libtorrent() {
        return;
    }
    let d = Dir::new();
    let path = content(&d);
    let t = make_torrent(&d, &path, 16384, &[]);
    let mut seed = start_seed(&t, &d.join("src"), &[]);
    let mut f = lt(
        "fetch",
        &t,
        &d.join("dst"),
        &["--peer", &seed.addr.to_string()],
    );
    assert!(
        f.wait_line(|l| l == "done", TIMEOUT).is_some(),
        "libtorrent: {}\nshare: {}",
        f.stderr(),
        seed.stderr()
    );
    assert_same_tree(&d, "dst");
    assert_eq!(seed.stop().0, Some(0));
}

#[test]
fn share_fetches_from_transmission_that_requires_encryption() {
    if !require("transmission-daemon", "transmission-daemon") {
        return;
    }
    let d = Dir::new();
    let path = content(&d);
    let t = make_torrent(&d, &path, 16384, &[]);
    let mut tr = Proc::start(
        Command::new("bash")
            .env("TRANSMISSION_ENCRYPTION", "2")
            .arg(peer_script("transmission_peer.sh"))
            .arg("seed")
            .arg(&t)
            .arg(d.join("src"))
            .args(["--timeout", "150"]),
    );
    assert!(
        tr.wait_line(|l| l == "seeding", TIMEOUT).is_some(),
        "{}",
        tr.stderr()
    );
    let mut fetch = logged_fetch(&t, &d.join("dst"), tr.addr, &[]);
    assert_eq!(
        fetch.wait(TIMEOUT).0,
        Some(0),
        "share: {}\ntransmission: {}",
        fetch.stderr(),
        tr.stderr()
    );
    assert_same_tree(&d, "dst");
    assert!(fetch.stderr().contains(", MSE RC4"), "{}", fetch.stderr());
}

#[test]
fn aria2_that_requires_encryption_fetches_from_share_seed() {
    if !require("aria2c", "aria2") || !require("opentracker", "opentracker") {
        return;
    }
    let d = Dir::new();
    let path = content(&d);
    let t = make_torrent(&d, &path, 16384, &[]);
    let mut seed = start_seed(&t, &d.join("src"), &[]);
    let out = run(Command::new("bash")
        .env(
            "ARIA2_EXTRA",
            "--bt-require-crypto=true --bt-min-crypto-level=arc4",
        )
        .arg(peer_script("aria2_fetch.sh"))
        .arg(&t)
        .arg(d.join("dst"))
        .arg(seed.addr.to_string())
        .args(["--timeout", "100"]));
    assert!(
        out.status.success(),
        "aria2: {}\n{}\nshare seed: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        seed.stderr()
    );
    assert_same_tree(&d, "dst");
    assert_eq!(seed.stop().0, Some(0));
}

#[test]
fn a_share_peer_that_requires_encryption_refuses_plaintext_and_says_so() {
    let d = Dir::new();
    let path = content(&d);
    let t = make_torrent(&d, &path, 16384, &[]);
    let (hash, _) = magnet_of(&t);
    let mut c = share();
    c.env("SHARE_LOG", "info")
        .arg("seed")
        .arg(&t)
        .arg("-d")
        .arg(d.join("src"))
        .args(["--listen", "127.0.0.1:0", "--encryption", "require"]);
    let seed = Proc::start(&mut c);
    // A plaintext handshake is refused: the connection is closed, and the log says why.
    let mut s = std::net::TcpStream::connect(seed.addr).unwrap();
    use std::io::{Read, Write};
    s.write_all(&share_core::wire::Handshake::new(hash, *b"-XX0000-plaintext000").encode())
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 68];
    assert!(
        s.read_exact(&mut buf).is_err(),
        "a plaintext handshake was answered"
    );
    assert!(
        seed.wait_stderr(
            "refused a plaintext connection: encryption is required",
            TIMEOUT
        ),
        "{}",
        seed.stderr()
    );
    // A share fetch that speaks only plaintext gets nothing; one that requires RC4 too
    // gets everything, over RC4.
    let mut plain = start_fetch(
        &t,
        &d.join("plain"),
        &[seed.addr],
        &["--encryption", "disable"],
    );
    std::thread::sleep(Duration::from_secs(3));
    let (code, _) = plain.stop();
    assert_eq!(
        code,
        Some(1),
        "a plaintext fetch completed: {}",
        plain.stderr()
    );
    let mut rc4 = logged_fetch(&t, &d.join("rc4"), seed.addr, &["--encryption", "require"]);
    assert_eq!(rc4.wait(TIMEOUT).0, Some(0), "{}", rc4.stderr());
    assert_same_tree(&d, "rc4");
    assert!(rc4.stderr().contains(", MSE RC4"), "{}", rc4.stderr());
}

#[test]
fn encrypted_handshakes_that_stall_or_babble_are_dropped_in_bounded_time() {
    use std::io::{Read, Write};
    use std::time::Instant;
    let d = Dir::new();
    let path = content(&d);
    let t = make_torrent(&d, &path, 16384, &[]);
    let seed = start_seed(&t, &d.join("src"), &[]);
    let closed_after = |s: &mut std::net::TcpStream| {
        let start = Instant::now();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return start.elapsed(),
                Ok(_) => continue,
            }
        }
    };
    // A DH key and then nothing: dropped at the handshake deadline.
    let mut stall = std::net::TcpStream::connect(seed.addr).unwrap();
    stall.write_all(&[0x55u8; 96]).unwrap();
    let waited = closed_after(&mut stall);
    assert!(waited < Duration::from_secs(15), "held for {waited:?}");
    // A DH key and then endless garbage: dropped once the sync scan gives up (the spec's
    // 512 bytes of padding), long before the deadline.
    let mut babble = std::net::TcpStream::connect(seed.addr).unwrap();
    let start = Instant::now();
    let mut sent = 0usize;
    while sent < 64 << 20 && start.elapsed() < Duration::from_secs(10) {
        if babble.write_all(&[0xa5u8; 4096]).is_err() {
            break;
        }
        sent += 4096;
    }
    let waited = closed_after(&mut babble) + start.elapsed();
    assert!(waited < Duration::from_secs(12), "held for {waited:?}");
    assert!(sent < 16 << 20, "took {sent} bytes of garbage");
    // The seed still serves.
    let mut fetch = start_fetch(&t, &d.join("dst"), &[seed.addr], &[]);
    assert_eq!(fetch.wait(TIMEOUT).0, Some(0), "{}", fetch.stderr());
    assert_same_tree(&d, "dst");
}
