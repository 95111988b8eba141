//! Interop with real clients from Debian packages: libtorrent (python3-libtorrent) and aria2,
//! both directions, single-file and multi-file torrents with nested folders and a short last
//! piece. The peers are driven by the scripts in tests/peers/.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::util::*;

const TIMEOUT: Duration = Duration::from_secs(120);

/// Content for interop: a single file, or a folder with nested folders; short last pieces.
fn content(d: &Dir, multi: bool) -> std::path::PathBuf {
    if multi {
        d.data_file("src/tree/a.bin", 300_001, 11);
        d.data_file("src/tree/sub/deeper/c.bin", 123_457, 12);
        d.data_file("src/tree/sub/d.bin", 65_536, 13);
        d.data_file("src/tree/z.txt", 999, 14);
        d.join("src/tree")
    } else {
        d.data_file("src/file.bin", 2_500_003, 15);
        d.join("src/file.bin")
    }
}

fn assert_same_tree(src: &Path, dst: &Path) {
    let out = Command::new("diff")
        .arg("-r")
        .arg(src)
        .arg(dst)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

fn lt_peer(args: &[&str], torrent: &Path, dir: &Path) -> Command {
    let mut c = Command::new(python());
    c.arg(peer_script("lt_peer.py"))
        .arg(args[0])
        .arg(torrent)
        .arg(dir)
        .args(&args[1..]);
    c
}

/// Seeds with `seeder`, fetches with `share fetch`, compares.
fn share_fetches_from(multi: bool, seeder: impl FnOnce(&Path, &Path) -> Command) {
    let d = Dir::new();
    let path = content(&d, multi);
    let t = make_torrent(&d, &path, 16384, &[]);
    let mut seed = Proc::start(&mut seeder(&t, &d.join("src")));
    let mut fetch = start_fetch(&t, &d.join("dst"), &[seed.addr], &[]);
    let (code, _) = fetch.wait(TIMEOUT);
    assert_eq!(
        code,
        Some(0),
        "share fetch: {}\nseeder: {}",
        fetch.stderr(),
        seed.stderr()
    );
    assert_same_tree(&path, &d.join("dst").join(path.file_name().unwrap()));
    let (_, downloaded) = fetch.transfer_counts();
    assert!(
        downloaded >= walk_size(&path),
        "downloaded {downloaded} bytes"
    );
    seed.stop();
}

/// Seeds with `share seed`, fetches with `fetcher` (which must exit 0), compares.
fn fetches_from_share(multi: bool, fetcher: impl FnOnce(&Path, &Path, &str) -> Command) {
    let d = Dir::new();
    let path = content(&d, multi);
    let t = make_torrent(&d, &path, 16384, &[]);
    let mut seed = start_seed(&t, &d.join("src"), &[]);
    std::fs::create_dir_all(d.join("dst")).unwrap();
    let mut cmd = fetcher(&t, &d.join("dst"), &seed.addr.to_string());
    let out = run(&mut cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}\nshare seed: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        seed.stderr()
    );
    assert_same_tree(&path, &d.join("dst").join(path.file_name().unwrap()));
    let (code, _) = seed.stop();
    assert_eq!(code, Some(0));
    let size: u64 = walk_size(&path);
    assert!(
        seed.transfer_counts().0 >= size,
        "seed uploaded less than the content"
    );
}

fn walk_size(p: &Path) -> u64 {
    if p.is_file() {
        return std::fs::metadata(p).unwrap().len();
    }
    std::fs::read_dir(p)
        .unwrap()
        .map(|e| walk_size(&e.unwrap().path()))
        .sum()
}

#[test]
fn share_fetches_from_libtorrent_single_and_multi_file() {
    if !require_libtorrent() {
        return;
    }
    for multi in [false, true] {
        share_fetches_from(multi, |t, dir| {
            lt_peer(&["seed", "--timeout", "200"], t, dir)
        });
    }
}

#[test]
fn libtorrent_fetches_from_share_single_and_multi_file() {
    if !require_libtorrent() {
        return;
    }
    for multi in [false, true] {
        fetches_from_share(multi, |t, dir, addr| {
            lt_peer(&["fetch", "--peer", addr, "--timeout", "100"], t, dir)
        });
    }
}

#[test]
fn share_fetches_from_aria2() {
    if !require("aria2c", "aria2") {
        return;
    }
    for multi in [false, true] {
        share_fetches_from(multi, |t, dir| {
            let mut c = Command::new("bash");
            c.arg(peer_script("aria2_seed.sh"))
                .arg(t)
                .arg(dir)
                .args(["--timeout", "200"]);
            c
        });
    }
}

#[test]
fn aria2_fetches_from_share_through_opentracker() {
    if !require("aria2c", "aria2") || !require("opentracker", "opentracker") {
        return;
    }
    fetches_from_share(true, |t, dir, addr| {
        let mut c = Command::new("bash");
        c.arg(peer_script("aria2_fetch.sh"))
            .arg(t)
            .arg(dir)
            .arg(addr)
            .args(["--timeout", "100"]);
        c
    });
}
