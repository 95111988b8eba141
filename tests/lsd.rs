//! Local service discovery (BEP 14), inside network namespaces the tests make: peers with
//! no tracker, no `--peer` and no DHT find each other by multicast, and a private torrent is
//! never announced.

use std::process::Command;
use std::time::Duration;

use crate::netns::Pair;
use crate::util::*;

const TIMEOUT: Duration = Duration::from_secs(90);

fn seed_in(pair: &Pair, torrents: &[&std::path::Path], dir: &std::path::Path) -> Proc {
    let mut cmd = share_in_namespace();
    cmd.arg("seed")
        .args(torrents)
        .arg("-d")
        .arg(dir)
        .args(["--listen", &format!("{}:0", pair.ip_a)]);
    Proc::start(&mut Pair::exec(&pair.a, &cmd))
}

#[test]
fn two_share_peers_with_no_tracker_find_each_other_on_the_local_network() {
    let pair = Pair::new();
    let d = Dir::new();
    d.data_file("src/f.bin", 3_000_000, 61);
    let t = make_torrent(&d, &d.join("src/f.bin"), 32768, &[]);
    let _seed = seed_in(&pair, &[&t], &d.join("src"));
    let mut cmd = share_in_namespace();
    cmd.arg("fetch")
        .arg(&t)
        .arg("-o")
        .arg(d.join("dst"))
        .args(["--listen", &format!("{}:0", pair.ip_b)]);
    let mut fetch = Proc::start(&mut Pair::exec(&pair.b, &cmd));
    let (code, _) = fetch.wait(TIMEOUT);
    assert_eq!(code, Some(0), "{}", fetch.stderr());
    assert_same_file(&d.join("src/f.bin"), &d.join("dst/f.bin"));
}

#[test]
fn libtorrent_with_lsd_on_finds_a_share_seed_on_the_local_network() {
    if !require_libtorrent() {
        return;
    }
    let pair = Pair::new();
    let d = Dir::new();
    d.data_file("src/f.bin", 2_000_000, 62);
    let t = make_torrent(&d, &d.join("src/f.bin"), 32768, &[]);
    let seed = seed_in(&pair, &[&t], &d.join("src"));
    std::fs::create_dir_all(d.join("dst")).unwrap();
    let mut lt = Command::new(python());
    lt.arg(peer_script("lt_peer.py"))
        .arg("fetch")
        .arg(&t)
        .arg(d.join("dst"))
        .args(["--lsd", "--listen-ip", &pair.ip_b, "--timeout", "80"]);
    let mut lt = Proc::start(&mut Pair::exec(&pair.b, &lt));
    assert!(
        lt.wait_line(|l| l == "done", TIMEOUT).is_some(),
        "libtorrent: {}\nshare seed: {}",
        lt.stderr(),
        seed.stderr()
    );
    assert_same_file(&d.join("src/f.bin"), &d.join("dst/f.bin"));
}

#[test]
fn a_private_torrent_is_never_announced_on_the_local_network() {
    let pair = Pair::new();
    let d = Dir::new();
    d.data_file("src/pub.bin", 100_000, 63);
    d.data_file("src/priv.bin", 100_000, 64);
    let public = d.join("pub.torrent");
    let private = d.join("priv.torrent");
    for (src, out, extra) in [
        ("src/pub.bin", &public, None),
        ("src/priv.bin", &private, Some("--private")),
    ] {
        ok(share()
            .arg("create")
            .arg(d.join(src))
            .args(["-q", "-o"])
            .arg(out)
            .args(extra));
    }
    let (pub_hash, _) = magnet_of(&public);
    let (priv_hash, _) = magnet_of(&private);
    let mut listen = Command::new("python3");
    listen.arg(peer_script("lsd_listen.py")).arg("8");
    let mut listener = Proc::start_with(&mut Pair::exec(&pair.b, &listen), |l| {
        l.starts_with("listening on")
    });
    let _seed = seed_in(&pair, &[&public, &private], &d.join("src"));
    let end = listener.wait_line(|l| l == "end", Duration::from_secs(30));
    assert!(end.is_some(), "{}", listener.stderr());
    let heard: Vec<&String> = listener
        .stdout
        .iter()
        .filter(|l| l.starts_with("heard "))
        .collect();
    assert!(
        heard.iter().any(|l| **l == format!("heard {pub_hash}")),
        "the public torrent was not announced: {heard:?}"
    );
    assert!(
        !heard.iter().any(|l| **l == format!("heard {priv_hash}")),
        "the private torrent was announced: {heard:?}"
    );
}
