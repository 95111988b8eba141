//! Interop both ways through a tracker (`share tracker`) with aria2 and Transmission: each
//! completes a download from `share seed`, and `share fetch` completes from each, with no
//! address given to anyone but the tracker's.
//!
//! Transmission 3.00 drops 127.x peer addresses that a tracker gives it and cannot be told a
//! peer's address, so share dials it: share learns Transmission's address from the tracker.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::util::*;

const TIMEOUT: Duration = Duration::from_secs(120);

struct Setup {
    d: Dir,
    tracker: Proc,
    torrent: PathBuf,
    content: PathBuf,
}

/// A share tracker and a small multi-file torrent announcing to it.
fn setup() -> Setup {
    let tracker =
        Proc::start(share().args(["tracker", "--listen", "127.0.0.1:0", "--interval", "5"]));
    let d = Dir::new();
    d.data_file("src/tree/a.bin", 1_500_001, 41);
    d.data_file("src/tree/sub/deeper/b.bin", 300_000, 42);
    d.data_file("src/tree/c.txt", 777, 43);
    let url = format!("http://{}/announce", tracker.addr);
    let torrent = make_torrent(&d, &d.join("src/tree"), 16384, &["-t", &url]);
    let content = d.join("src/tree");
    Setup {
        d,
        tracker,
        torrent,
        content,
    }
}

impl Setup {
    fn url(&self) -> String {
        format!("http://{}/announce", self.tracker.addr)
    }

    /// Waits until the tracker's scrape shows `key` (`complete` or `incomplete`) at 1 or more.
    fn wait_announced(&self, key: &str) {
        let hash = torrent_hash(&self.torrent);
        let enc: String = hash
            .chunks(2)
            .map(|c| format!("%{}", std::str::from_utf8(c).unwrap()))
            .collect();
        let deadline = Instant::now() + TIMEOUT;
        let zero = format!("{}:{key}i0e", key.len());
        let any = format!("{}:{key}i", key.len());
        loop {
            let body = scrape(self.tracker.addr, &format!("/scrape?info_hash={enc}"));
            if body.contains(&any) && !body.contains(&zero) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nobody announced as {key}: {body}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn check(&self, dst: &Path) {
        let out = run(Command::new("diff")
            .arg("-r")
            .arg(&self.content)
            .arg(dst.join("tree")));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

fn torrent_hash(t: &Path) -> Vec<u8> {
    let v: serde_json::Value =
        serde_json::from_str(&ok(share().args(["inspect", "--json"]).arg(t))).unwrap();
    v["info_hash"].as_str().unwrap().as_bytes().to_vec()
}

fn scrape(addr: SocketAddr, path: &str) -> String {
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
    String::from_utf8_lossy(&all).into_owned()
}

/// `share fetch` given no address but the tracker's completes from `other`, a seed that
/// announces there.
fn share_fetches_through_the_tracker(s: &Setup, other: &Proc, who: &str) {
    s.wait_announced("complete");
    let mut fetch = start_fetch(&s.torrent, &s.d.join("dst"), &[], &[]);
    let (code, _) = fetch.wait(TIMEOUT);
    assert_eq!(
        code,
        Some(0),
        "share: {}\n{who}: {}",
        fetch.stderr(),
        other.stderr()
    );
    s.check(&s.d.join("dst"));
}

fn transmission(mode: &str, s: &Setup, dir: &Path) -> Proc {
    std::fs::create_dir_all(dir).unwrap();
    Proc::start(
        Command::new("bash")
            .arg(peer_script("transmission_peer.sh"))
            .arg(mode)
            .arg(&s.torrent)
            .arg(dir)
            .args(["--timeout", "150"]),
    )
}

#[test]
fn transmission_fetches_from_share_seed_found_through_the_tracker() {
    if !require("transmission-daemon", "transmission-daemon") {
        return;
    }
    let s = setup();
    let mut tr = transmission("fetch", &s, &s.d.join("dst"));
    s.wait_announced("incomplete");
    let mut seed = start_seed(&s.torrent, &s.d.join("src"), &[]);
    assert!(
        tr.wait_line(|l| l == "done", TIMEOUT).is_some(),
        "transmission: {}\nshare: {}",
        tr.stderr(),
        seed.stderr()
    );
    s.check(&s.d.join("dst"));
    assert_eq!(seed.stop().0, Some(0));
    assert!(seed.transfer_counts().0 >= 1_800_778);
}

#[test]
fn share_fetches_from_transmission_found_through_the_tracker() {
    if !require("transmission-daemon", "transmission-daemon") {
        return;
    }
    let s = setup();
    let mut tr = transmission("seed", &s, &s.d.join("src"));
    assert!(
        tr.wait_line(|l| l == "seeding", TIMEOUT).is_some(),
        "{}",
        tr.stderr()
    );
    share_fetches_through_the_tracker(&s, &tr, "transmission");
}

#[test]
fn aria2_fetches_from_share_seed_found_through_the_tracker() {
    if !require("aria2c", "aria2") {
        return;
    }
    let s = setup();
    let seed = start_seed(&s.torrent, &s.d.join("src"), &[]);
    s.wait_announced("complete");
    std::fs::create_dir_all(s.d.join("dst")).unwrap();
    let out = run(Command::new("bash")
        .arg(peer_script("aria2_fetch.sh"))
        .arg(&s.torrent)
        .arg(s.d.join("dst"))
        .arg(s.url())
        .args(["--timeout", "100"]));
    assert!(
        out.status.success(),
        "aria2: {}\nshare: {}",
        String::from_utf8_lossy(&out.stderr),
        seed.stderr()
    );
    s.check(&s.d.join("dst"));
}

#[test]
fn share_fetches_from_aria2_found_through_the_tracker() {
    if !require("aria2c", "aria2") {
        return;
    }
    let s = setup();
    let aria = Proc::start(
        Command::new("bash")
            .arg(peer_script("aria2_seed.sh"))
            .arg(&s.torrent)
            .arg(s.d.join("src"))
            .args(["--tracker", &s.url(), "--timeout", "150"]),
    );
    share_fetches_through_the_tracker(&s, &aria, "aria2");
}
