//! Trackers: share with a real opentracker over HTTP and UDP, real clients through
//! `share tracker`, and trackers that die, refuse or answer garbage.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use share_core::tracker::http as thttp;
use share_core::tracker::{Announce, Event};
use share_core::InfoHash;

use crate::util::*;

const TIMEOUT: Duration = Duration::from_secs(90);

fn info_hash_hex(torrent: &Path) -> String {
    let v: serde_json::Value =
        serde_json::from_str(&ok(share().args(["inspect", "--json"]).arg(torrent))).unwrap();
    v["info_hash"].as_str().unwrap().to_owned()
}

/// Creates a torrent of `path` announcing to `trackers`, named `name` in `d`.
fn torrent_with(d: &Dir, path: &Path, name: &str, trackers: &[String]) -> PathBuf {
    let out = d.join(name);
    let mut cmd = share();
    cmd.arg("create")
        .arg(path)
        .args(["-q", "--no-date", "--piece-length", "16384", "-o"])
        .arg(&out);
    for t in trackers {
        cmd.args(["-t", t]);
    }
    ok(&mut cmd);
    out
}

fn start_share_tracker() -> Proc {
    Proc::start(share().args(["tracker", "--listen", "127.0.0.1:0", "--interval", "5"]))
}

/// A plain HTTP GET on loopback; returns the body.
fn http_get(addr: SocketAddr, path: &str) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let split = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("HTTP reply")
        + 4;
    all[split..].to_vec()
}

#[test]
fn share_seed_and_fetch_find_each_other_through_opentracker_over_http_and_udp() {
    if !require("opentracker", "opentracker") {
        return;
    }
    let d = Dir::new();
    d.data_file("src/f.bin", 1_500_000, 21);
    let plain = torrent_with(&d, &d.join("src/f.bin"), "plain.torrent", &[]);
    let mut tracker = Proc::start(
        Command::new("bash")
            .arg(peer_script("opentracker.sh"))
            .arg(info_hash_hex(&plain)),
    );
    for scheme in ["http", "udp"] {
        let url = format!("{scheme}://{}/announce", tracker.addr);
        let t = torrent_with(
            &d,
            &d.join("src/f.bin"),
            &format!("{scheme}.torrent"),
            &[url],
        );
        let mut seed = start_seed(&t, &d.join("src"), &[]);
        let dst = d.join(&format!("dst-{scheme}"));
        let mut fetch = start_fetch(&t, &dst, &[], &[]);
        let (code, _) = fetch.wait(TIMEOUT);
        assert_eq!(
            code,
            Some(0),
            "{scheme}: {}\nseed: {}",
            fetch.stderr(),
            seed.stderr()
        );
        assert_same_file(&d.join("src/f.bin"), &dst.join("f.bin"));
        assert_eq!(seed.stop().0, Some(0));
    }
    tracker.stop();
}

#[test]
fn libtorrent_seeds_to_aria2_through_share_tracker() {
    if !require_libtorrent() || !require("aria2c", "aria2") {
        return;
    }
    let mut tracker = start_share_tracker();
    let d = Dir::new();
    d.data_file("src/tree/a.bin", 400_000, 22);
    d.data_file("src/tree/sub/b.bin", 123_456, 23);
    let url = format!("http://{}/announce", tracker.addr);
    let t = torrent_with(
        &d,
        &d.join("src/tree"),
        "t.torrent",
        std::slice::from_ref(&url),
    );
    let mut seed = Proc::start(
        Command::new(python())
            .arg(peer_script("lt_peer.py"))
            .arg("seed")
            .arg(&t)
            .arg(d.join("src"))
            .args(["--timeout", "200"]),
    );
    assert!(
        seed.wait_line(|l| l == "seeding", TIMEOUT).is_some(),
        "{}",
        seed.stderr()
    );
    std::fs::create_dir_all(d.join("dst")).unwrap();
    let out = run(Command::new("bash")
        .arg(peer_script("aria2_fetch.sh"))
        .arg(&t)
        .arg(d.join("dst"))
        .arg(&url)
        .args(["--timeout", "100"]));
    assert!(
        out.status.success(),
        "aria2: {}\nlibtorrent: {}",
        String::from_utf8_lossy(&out.stderr),
        seed.stderr()
    );
    assert_same_file(&d.join("src/tree/a.bin"), &d.join("dst/tree/a.bin"));
    assert_same_file(&d.join("src/tree/sub/b.bin"), &d.join("dst/tree/sub/b.bin"));
    seed.stop();
    tracker.stop();
}

#[test]
fn a_seed_announces_stopped_on_sigterm_as_scrape_shows() {
    let tracker = start_share_tracker();
    let d = Dir::new();
    d.data_file("src/f.bin", 50_000, 24);
    let url = format!("http://{}/announce", tracker.addr);
    let t = torrent_with(&d, &d.join("src/f.bin"), "t.torrent", &[url]);
    let hash = info_hash_hex(&t);
    let scrape = || {
        let enc: String = hash
            .as_bytes()
            .chunks(2)
            .map(|c| format!("%{}", std::str::from_utf8(c).unwrap()))
            .collect();
        String::from_utf8_lossy(&http_get(tracker.addr, &format!("/scrape?info_hash={enc}")))
            .into_owned()
    };
    let mut seed = start_seed(&t, &d.join("src"), &[]);
    let deadline = std::time::Instant::now() + TIMEOUT;
    while !scrape().contains("8:completei1e") {
        assert!(
            std::time::Instant::now() < deadline,
            "the seed never announced: {}",
            scrape()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(seed.stop().0, Some(0));
    assert!(
        scrape().contains("8:completei0e"),
        "after stop: {}",
        scrape()
    );
}

#[test]
fn a_tracker_killed_mid_download_does_not_stop_the_download() {
    let mut tracker = start_share_tracker();
    let d = Dir::new();
    d.data_file("src/f.bin", 3_000_000, 25);
    let full = std::fs::read(d.join("src/f.bin")).unwrap();
    let url = format!("http://{}/announce", tracker.addr);
    let t = torrent_with(&d, &d.join("src/f.bin"), "t.torrent", &[url]);
    let hash = info_hash_hex(&t);
    let enc: String = hash
        .as_bytes()
        .chunks(2)
        .map(|c| format!("%{}", std::str::from_utf8(c).unwrap()))
        .collect();
    let _seed = start_seed(&t, &d.join("src"), &["--max-upload-rate", "1M"]);
    let deadline = std::time::Instant::now() + TIMEOUT;
    while !String::from_utf8_lossy(&http_get(tracker.addr, &format!("/scrape?info_hash={enc}")))
        .contains("8:completei1e")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the seed never announced"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut fetch = start_fetch(&t, &d.join("dst"), &[], &[]);
    // Once data flows (the fetch found the seed through the tracker), the tracker dies.
    while bytes_in_place(&full, &d.join("dst/f.bin"), 16384) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no data: {}",
            fetch.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(&tracker.child, "KILL");
    let _ = tracker.child.wait();
    assert!(
        bytes_in_place(&full, &d.join("dst/f.bin"), 16384) < full.len(),
        "done too soon"
    );
    let (code, _) = fetch.wait(TIMEOUT);
    assert_eq!(code, Some(0), "{}", fetch.stderr());
    assert_same_file(&d.join("src/f.bin"), &d.join("dst/f.bin"));
}

/// An HTTP server that answers every request with `body` (garbage, for instance).
fn garbage_tracker(body: &'static [u8]) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten().take(50) {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(body);
        }
    });
    addr
}

#[test]
fn refused_and_garbage_trackers_cost_a_warning_not_the_download() {
    let d = Dir::new();
    d.data_file("src/f.bin", 200_000, 26);
    let garbage = garbage_tracker(b"<html>this is not bencode</html>");
    let trackers = [
        "http://127.0.0.1:1/announce".to_owned(),
        "udp://127.0.0.1:1/announce".to_owned(),
        format!("http://{garbage}/announce"),
    ];
    let t = torrent_with(&d, &d.join("src/f.bin"), "t.torrent", &trackers);
    let seed = start_seed(&t, &d.join("src"), &[]);
    let mut fetch = start_fetch(&t, &d.join("dst"), &[seed.addr], &[]);
    let (code, _) = fetch.wait(TIMEOUT);
    assert_eq!(code, Some(0), "{}", fetch.stderr());
    assert_same_file(&d.join("src/f.bin"), &d.join("dst/f.bin"));
    let err = fetch.stderr();
    assert!(err.contains("warning: no tracker answered"), "{err}");
    assert!(err.contains("malformed tracker reply"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn share_tracker_answers_malformed_announces_with_a_failure_reason() {
    let tracker = start_share_tracker();
    let body = http_get(tracker.addr, "/announce?info_hash=short&port=1");
    let text = String::from_utf8_lossy(&body);
    assert!(text.starts_with("d14:failure reason"), "{text}");
    assert!(text.contains("info_hash"), "{text}");
}

/// HTTP/1.1 GETs on one keep-alive connection from a loopback address of our choosing:
/// thousands of announces in a few seconds, each from the address the tracker must see.
struct KeepAlive {
    s: TcpStream,
    host: SocketAddr,
    buf: Vec<u8>,
}

impl KeepAlive {
    fn connect(from: &str, to: SocketAddr) -> KeepAlive {
        use socket2::{Domain, Socket, Type};
        let sock = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let from: SocketAddr = format!("{from}:0").parse().unwrap();
        sock.bind(&from.into()).unwrap();
        sock.connect(&to.into()).unwrap();
        let s: TcpStream = sock.into();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.set_nodelay(true).unwrap();
        KeepAlive {
            s,
            host: to,
            buf: Vec::new(),
        }
    }

    /// The body of the reply to `GET path`.
    fn get(&mut self, path: &str) -> Vec<u8> {
        write!(self.s, "GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.host).unwrap();
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            self.fill();
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{head}");
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .unwrap_or_else(|| panic!("no content-length: {head}"))
            .trim()
            .parse()
            .unwrap();
        while self.buf.len() < head_end + len {
            self.fill();
        }
        let body = self.buf[head_end..head_end + len].to_vec();
        self.buf.drain(..head_end + len);
        body
    }

    fn fill(&mut self) {
        let mut chunk = [0u8; 16384];
        let n = self.s.read(&mut chunk).unwrap();
        assert!(n > 0, "the tracker closed the connection");
        self.buf.extend_from_slice(&chunk[..n]);
    }

    /// Announces `peer_id` (listening on `port`) for `hash` and returns the peers listed.
    fn announce(
        &mut self,
        hash: InfoHash,
        peer_id: [u8; 20],
        port: u16,
        event: Event,
        numwant: u32,
    ) -> Vec<SocketAddr> {
        let a = Announce {
            info_hash: hash,
            peer_id,
            port,
            uploaded: 0,
            downloaded: 0,
            left: 1000,
            event,
            numwant,
            key: 0,
            tracker_id: None,
        };
        let body = self.get(&thttp::announce_url("/announce", &a));
        match thttp::parse_announce_reply(&body) {
            Ok(reply) => reply.peers,
            Err(e) => panic!("{e}: {}", String::from_utf8_lossy(&body)),
        }
    }
}

#[test]
fn thousands_of_peer_ids_from_one_address_cannot_hide_or_stop_an_honest_peer() {
    let tracker = start_share_tracker();
    let hash = InfoHash([0x5a; 20]);
    let started = std::time::Instant::now();
    let mut flood = KeepAlive::connect("127.0.0.2", tracker.addr);
    for i in 0..5000u32 {
        let mut id = [0u8; 20];
        id[..8].copy_from_slice(b"-FL0000-");
        id[8..12].copy_from_slice(&i.to_be_bytes());
        id[12..].copy_from_slice(&pseudo_random(8, u64::from(i)));
        flood.announce(hash, id, 10_000 + i as u16, Event::Started, 0);
    }
    eprintln!("5000 announces in {:.1} s", started.elapsed().as_secs_f64());
    let honest_id = *b"-HO0000-honestpeer01";
    let mut honest = KeepAlive::connect("127.0.0.3", tracker.addr);
    honest.announce(hash, honest_id, 7001, Event::Started, 0);
    let honest_addr: SocketAddr = "127.0.0.3:7001".parse().unwrap();
    let mut third = KeepAlive::connect("127.0.0.4", tracker.addr);
    let listed = third.announce(hash, *b"-TH0000-thirdpeer001", 7002, Event::Started, 200);
    assert_eq!(listed.len(), 200);
    assert!(listed.contains(&honest_addr), "{listed:?}");
    // A `stopped` with the honest peer's id from the flooding address stops nobody.
    flood.announce(hash, honest_id, 7001, Event::Stopped, 0);
    let listed = third.announce(hash, *b"-TH0000-thirdpeer001", 7002, Event::None, 200);
    assert!(listed.contains(&honest_addr), "{listed:?}");
}

/// `share inspect --scrape --json`: the seeders each tracker reports.
fn scraped_seeders(torrent: &Path) -> Vec<Option<u64>> {
    let v: serde_json::Value = serde_json::from_str(&ok(share()
        .args(["inspect", "--json", "--scrape"])
        .arg(torrent)))
    .unwrap();
    v["scrape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["seeders"].as_u64())
        .collect()
}

#[test]
fn scrape_over_http_and_udp_on_share_tracker_and_opentracker() {
    if !require("opentracker", "opentracker") {
        return;
    }
    let ours = start_share_tracker();
    let d = Dir::new();
    d.data_file("src/f.bin", 40_000, 27);
    let plain = torrent_with(&d, &d.join("src/f.bin"), "plain.torrent", &[]);
    let theirs = Proc::start(
        Command::new("bash")
            .arg(peer_script("opentracker.sh"))
            .arg(info_hash_hex(&plain)),
    );
    for (i, url) in [
        format!("http://{}/announce", ours.addr),
        format!("udp://{}/announce", ours.addr),
        format!("http://{}/announce", theirs.addr),
        format!("udp://{}/announce", theirs.addr),
    ]
    .into_iter()
    .enumerate()
    {
        let t = torrent_with(
            &d,
            &d.join("src/f.bin"),
            &format!("{i}.torrent"),
            std::slice::from_ref(&url),
        );
        let mut seed = start_seed(&t, &d.join("src"), &[]);
        let deadline = std::time::Instant::now() + TIMEOUT;
        while scraped_seeders(&t) != vec![Some(1)] {
            assert!(
                std::time::Instant::now() < deadline,
                "{url}: {:?}",
                scraped_seeders(&t)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        assert_eq!(seed.stop().0, Some(0));
        assert_eq!(scraped_seeders(&t), vec![Some(0)], "{url} after stopped");
    }
}
