//! IPv6 on [::1]: share to share given `--peer [::1]:PORT`, through `share tracker` (whose
//! replies carry IPv6 peers as `peers6`, BEP 7), and with libtorrent both ways.

use std::process::Command;
use std::time::Duration;

use crate::util::*;

const TIMEOUT: Duration = Duration::from_secs(120);

fn content(d: &Dir) -> std::path::PathBuf {
    d.data_file("src/f.bin", 1_500_003, 131);
    d.join("src/f.bin")
}

fn seed6(t: &std::path::Path, d: &Dir) -> Proc {
    Proc::start(
        share()
            .arg("seed")
            .arg(t)
            .arg("-d")
            .arg(d.join("src"))
            .args(["--listen", "[::1]:0"]),
    )
}

fn fetch6(t: &std::path::Path, dir: &std::path::Path, peers: &[String]) -> Proc {
    let mut c = share();
    c.env("SHARE_LOG", "share_engine::torrent::peers=debug")
        .arg("fetch")
        .arg(t)
        .arg("-o")
        .arg(dir)
        .args(["--listen", "[::1]:0"]);
    for p in peers {
        c.args(["--peer", p]);
    }
    Proc::start(&mut c)
}

/// `share fetch` over [::1] into `d/dst`, to completion, with the bytes checked and the
/// connection to `from` (the seeding process) seen in its log.
fn fetch6_from(t: &std::path::Path, d: &Dir, peers: &[String], from: &Proc) -> Proc {
    let mut fetch = fetch6(t, &d.join("dst"), peers);
    assert!(fetch.addr.is_ipv6());
    assert_eq!(
        fetch.wait(TIMEOUT).0,
        Some(0),
        "share: {}\nthe seed: {}",
        fetch.stderr(),
        from.stderr()
    );
    assert_same_file(&d.join("src/f.bin"), &d.join("dst/f.bin"));
    assert!(
        fetch
            .stderr()
            .contains(&format!("connected addr={}", from.addr)),
        "{}",
        fetch.stderr()
    );
    fetch
}

#[test]
fn share_to_share_over_ipv6_given_the_peer() {
    let d = Dir::new();
    let f = content(&d);
    let t = make_torrent(&d, &f, 32768, &[]);
    let seed = seed6(&t, &d);
    assert!(seed.addr.is_ipv6(), "{}", seed.addr);
    fetch6_from(&t, &d, &[seed.addr.to_string()], &seed);
}

#[test]
fn share_to_share_over_ipv6_through_share_tracker_peers6() {
    let tracker = Proc::start(share().args(["tracker", "--listen", "[::1]:0", "--interval", "5"]));
    let d = Dir::new();
    let f = content(&d);
    let url = format!("http://{}/announce", tracker.addr);
    let t = make_torrent(&d, &f, 32768, &["-t", &url]);
    let seed = seed6(&t, &d);
    // Give the seed a moment to announce; the fetch learns of it from the tracker only.
    std::thread::sleep(Duration::from_secs(1));
    fetch6_from(&t, &d, &[], &seed);
    // The reply really was `peers6`: ask the tracker as a fetcher would.
    let (hash, _) = magnet_of(&t);
    let enc: String = hash.0.iter().map(|b| format!("%{b:02X}")).collect();
    let body = http_get_bytes(
        tracker.addr,
        &format!("/announce?info_hash={enc}&peer_id=-XX0000-000000000000&port=1&uploaded=0&downloaded=0&left=10&compact=1"),
    );
    assert!(
        body.windows(8).any(|w| w == b"6:peers6"),
        "{}",
        String::from_utf8_lossy(&body)
    );
}

fn http_get_bytes(addr: std::net::SocketAddr, path: &str) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    all
}

/// libtorrent seeding `t` (content under `d/src`) on [::1], once it says so.
fn lt_seed6(t: &std::path::Path, d: &Dir) -> Proc {
    let mut lt = Proc::start(
        Command::new(python())
            .arg(peer_script("lt_peer.py"))
            .arg("seed")
            .arg(t)
            .arg(d.join("src"))
            .args(["--listen-ip", "::1", "--timeout", "200"]),
    );
    assert!(
        lt.wait_line(|l| l == "seeding", TIMEOUT).is_some(),
        "{}",
        lt.stderr()
    );
    lt
}

#[test]
fn share_and_libtorrent_over_ipv6_both_ways() {
    if !require_libtorrent() {
        return;
    }
    let d = Dir::new();
    let f = content(&d);
    let t = make_torrent(&d, &f, 32768, &[]);
    // libtorrent seeds on [::1]; share fetches.
    let lt = lt_seed6(&t, &d);
    assert!(lt.addr.is_ipv6(), "{}", lt.addr);
    fetch6_from(&t, &d, &[lt.addr.to_string()], &lt);
    drop(lt);
    // share seeds on [::1]; libtorrent fetches.
    let mut seed = seed6(&t, &d);
    std::fs::create_dir_all(d.join("lt")).unwrap();
    let mut f2 = Proc::start(
        Command::new(python())
            .arg(peer_script("lt_peer.py"))
            .arg("fetch")
            .arg(&t)
            .arg(d.join("lt"))
            .args([
                "--listen-ip",
                "::1",
                "--peer",
                &seed.addr.to_string(),
                "--timeout",
                "100",
            ]),
    );
    assert!(
        f2.wait_line(|l| l == "done", TIMEOUT).is_some(),
        "libtorrent: {}\nshare: {}",
        f2.stderr(),
        seed.stderr()
    );
    assert_same_file(&f, &d.join("lt/f.bin"));
    assert_eq!(seed.stop().0, Some(0));
}

#[test]
fn the_wildcard_listens_on_both_families_on_one_port() {
    let d = Dir::new();
    let f = content(&d);
    let t = make_torrent(&d, &f, 32768, &[]);
    let seed = Proc::start(
        share()
            .arg("seed")
            .arg(&t)
            .arg("-d")
            .arg(d.join("src"))
            .args(["--listen", "0.0.0.0:0"]),
    );
    let port = seed.addr.port();
    for (i, peer) in [format!("127.0.0.1:{port}"), format!("[::1]:{port}")]
        .iter()
        .enumerate()
    {
        let dir = d.join(&format!("dst{i}"));
        let mut fetch = fetch6(&t, &dir, std::slice::from_ref(peer));
        assert_eq!(fetch.wait(TIMEOUT).0, Some(0), "{peer}: {}", fetch.stderr());
        assert_same_file(&f, &dir.join("f.bin"));
    }
}

#[test]
fn share_fetches_from_libtorrent_found_through_share_tracker_over_ipv6() {
    if !require_libtorrent() {
        return;
    }
    let tracker = Proc::start(share().args(["tracker", "--listen", "[::1]:0", "--interval", "5"]));
    let d = Dir::new();
    let f = content(&d);
    let url = format!("http://{}/announce", tracker.addr);
    let t = make_torrent(&d, &f, 32768, &["-t", &url]);
    // libtorrent seeds on [::1] and announces to the tracker; share is given no peer.
    let lt = lt_seed6(&t, &d);
    fetch6_from(&t, &d, &[], &lt);
}
