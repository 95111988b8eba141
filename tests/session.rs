//! One process, many torrents: a `share seed` serving several torrents on one port, and a
//! `share fetch` of several at once.

use std::process::Command;
use std::time::Duration;

use crate::util::*;

const TIMEOUT: Duration = Duration::from_secs(90);

/// Three torrents of different content under `d/src`: a.bin, b.bin and the folder c/.
fn three(d: &Dir) -> Vec<std::path::PathBuf> {
    d.data_file("src/a.bin", 1_500_000, 51);
    d.data_file("src/b.bin", 900_001, 52);
    d.data_file("src/c/x.bin", 400_000, 53);
    d.data_file("src/c/sub/y.bin", 123_456, 54);
    ["a.bin", "b.bin", "c"]
        .iter()
        .map(|name| {
            let out = d.join(&format!("{name}.torrent"));
            ok(share()
                .arg("create")
                .arg(d.join("src").join(name))
                .args(["-q", "--no-date", "--piece-length", "16384", "-o"])
                .arg(&out));
            out
        })
        .collect()
}

#[test]
fn one_seed_serves_three_torrents_on_one_port_to_three_fetchers_at_once() {
    if !require_libtorrent() {
        return;
    }
    let d = Dir::new();
    let t = three(&d);
    let mut seed = Proc::start(
        share()
            .arg("seed")
            .args(&t)
            .arg("-d")
            .arg(d.join("src"))
            .args(["--listen", "127.0.0.1:0"]),
    );
    let mut a = start_fetch(&t[0], &d.join("da"), &[seed.addr], &[]);
    let mut b = start_fetch(&t[1], &d.join("db"), &[seed.addr], &[]);
    std::fs::create_dir_all(d.join("dc")).unwrap();
    let mut c = Proc::start(
        Command::new(python())
            .arg(peer_script("lt_peer.py"))
            .arg("fetch")
            .arg(&t[2])
            .arg(d.join("dc"))
            .args(["--peer", &seed.addr.to_string(), "--timeout", "80"]),
    );
    assert_eq!(a.wait(TIMEOUT).0, Some(0), "{}", a.stderr());
    assert_eq!(b.wait(TIMEOUT).0, Some(0), "{}", b.stderr());
    assert!(
        c.wait_line(|l| l == "done", TIMEOUT).is_some(),
        "libtorrent: {}\nseed: {}",
        c.stderr(),
        seed.stderr()
    );
    assert_same_file(&d.join("src/a.bin"), &d.join("da/a.bin"));
    assert_same_file(&d.join("src/b.bin"), &d.join("db/b.bin"));
    assert_same_file(&d.join("src/c/x.bin"), &d.join("dc/c/x.bin"));
    assert_same_file(&d.join("src/c/sub/y.bin"), &d.join("dc/c/sub/y.bin"));
    let (code, out) = seed.stop();
    assert_eq!(code, Some(0), "{}", seed.stderr());
    assert_eq!(
        out.iter().filter(|l| l.starts_with("listening on")).count(),
        1,
        "{out:?}"
    );
    // The summary counts what all three torrents sent.
    let (up, _) = seed.transfer_counts();
    assert!(up >= 1_500_000 + 900_001 + 523_456, "uploaded {up}");
}

#[test]
fn one_fetch_of_three_torrents_and_a_seed_with_one_torrent_missing() {
    let d = Dir::new();
    let t = three(&d);
    // The seed has only two of the three; the third is reported and the others served.
    std::fs::rename(d.join("src/b.bin"), d.join("b.away")).unwrap();
    let seed = Proc::start(
        share()
            .arg("seed")
            .args(&t)
            .arg("-d")
            .arg(d.join("src"))
            .args(["--listen", "127.0.0.1:0"]),
    );
    assert!(
        seed.wait_stderr("no data to seed", TIMEOUT),
        "{}",
        seed.stderr()
    );
    let mut fetch = Proc::start(
        share()
            .arg("fetch")
            .arg(&t[0])
            .arg(&t[2])
            .arg("-o")
            .arg(d.join("dst"))
            .args(["--listen", "127.0.0.1:0", "--peer", &seed.addr.to_string()]),
    );
    assert_eq!(fetch.wait(TIMEOUT).0, Some(0), "{}", fetch.stderr());
    assert_same_file(&d.join("src/a.bin"), &d.join("dst/a.bin"));
    assert_same_file(&d.join("src/c/x.bin"), &d.join("dst/c/x.bin"));
    assert_eq!(fetch.transfer_counts().1, 1_500_000 + 523_456);
    // The same torrent twice is bad input.
    let out = run(share()
        .arg("fetch")
        .arg(&t[0])
        .arg(&t[0])
        .args(["--listen", "127.0.0.1:0"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is given twice"));
}

#[test]
fn malformed_magnet_links_are_bad_usage() {
    for (link, says) in [
        (
            "magnet:?xt=urn:btih:1234",
            "neither 40 hex digits nor 32 base32",
        ),
        (
            "magnet:?dn=x",
            "no `xt=urn:btih:` or `xt=urn:btmh:` info-hash",
        ),
        (
            "magnet:?xt=urn:btmh:1114caf1e1c30e81cb361b9ee167c4aa64228a7f",
            "is not `1220` and 64 hex digits",
        ),
        (
            "magnet:?xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a&x.pe=nope",
            "is not an IP:PORT peer address",
        ),
    ] {
        let out = run(share().args(["fetch", link, "--listen", "127.0.0.1:0"]));
        assert_eq!(out.status.code(), Some(2), "{link}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{link}: {err}");
    }
}
