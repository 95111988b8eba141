//! share to share on loopback: single and multi-file, resume after SIGKILL, exit codes.

use std::time::Duration;

use crate::util::*;

#[test]
fn share_fetches_from_share_single_and_multi_file() {
    let d = Dir::new();
    d.data_file("src/one.bin", 3_000_017, 1);
    let t = make_torrent(&d, &d.join("src/one.bin"), 32768, &[]);
    let mut seed = start_seed(&t, &d.join("src"), &[]);
    let mut fetch = start_fetch(&t, &d.join("dst"), &[seed.addr], &[]);
    let (code, _) = fetch.wait(Duration::from_secs(60));
    assert_eq!(code, Some(0), "{}", fetch.stderr());
    assert_same_file(&d.join("src/one.bin"), &d.join("dst/one.bin"));
    assert_eq!(fetch.transfer_counts(), (0, 3_000_017));
    let (code, _) = seed.stop();
    assert_eq!(code, Some(0), "{}", seed.stderr());
    assert_eq!(seed.transfer_counts().0, 3_000_017);

    // A folder with nested folders, an empty file and a short last piece.
    let m = Dir::new();
    m.data_file("src/tree/a.bin", 100_000, 2);
    m.data_file("src/tree/sub/deeper/c.bin", 77_777, 3);
    m.data_file("src/tree/sub/d.bin", 65_536, 4);
    m.data_file("src/tree/empty", 0, 5);
    let t = make_torrent(&m, &m.join("src/tree"), 16384, &[]);
    let seed = start_seed(&t, &m.join("src"), &[]);
    let mut fetch = start_fetch(&t, &m.join("dst"), &[seed.addr], &["--quiet"]);
    assert_eq!(
        fetch.wait(Duration::from_secs(60)).0,
        Some(0),
        "{}",
        fetch.stderr()
    );
    for f in ["a.bin", "sub/deeper/c.bin", "sub/d.bin", "empty"] {
        assert_same_file(&m.join("src/tree").join(f), &m.join("dst/tree").join(f));
    }
    // --quiet: only the contract lines.
    assert_eq!(fetch.stdout.len(), 2, "{:?}", fetch.stdout);
}

#[test]
fn a_fetch_killed_half_way_resumes_and_fetches_only_the_rest() {
    let d = Dir::new();
    let total = 6 * 1024 * 1024;
    let piece = 65536;
    d.data_file("src/big.bin", total, 7);
    let full = std::fs::read(d.join("src/big.bin")).unwrap();
    let t = make_torrent(&d, &d.join("src/big.bin"), piece as u32, &[]);
    let seed = start_seed(&t, &d.join("src"), &["--max-upload-rate", "2M"]);
    let mut first = start_fetch(&t, &d.join("dst"), &[seed.addr], &[]);
    // Kill it once at least 40% of the pieces are on disk.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while bytes_in_place(&full, &d.join("dst/big.bin"), piece) < total * 2 / 5 {
        assert!(
            std::time::Instant::now() < deadline,
            "no progress: {}",
            first.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(&first.child, "KILL");
    let _ = first.child.wait();
    let kept = bytes_in_place(&full, &d.join("dst/big.bin"), piece);
    assert!(kept < total, "finished before it was killed");

    let mut second = start_fetch(&t, &d.join("dst"), &[seed.addr], &[]);
    let (code, _) = second.wait(Duration::from_secs(60));
    assert_eq!(code, Some(0), "{}", second.stderr());
    assert_same_file(&d.join("src/big.bin"), &d.join("dst/big.bin"));
    let (_, downloaded) = second.transfer_counts();
    // Every piece on disk at the kill was kept: only the rest came over the wire again.
    assert_eq!(
        downloaded,
        (total - kept) as u64,
        "kept {kept} of {total} bytes"
    );
    let err = second.stderr();
    let pieces_kept = kept / piece;
    assert!(
        err.contains(&format!("checked: {pieces_kept} of 96 pieces valid")),
        "{err}"
    );
}

#[test]
fn fetch_without_peers_stops_on_sigterm_with_an_error() {
    let d = Dir::new();
    d.data_file("src/x.bin", 50_000, 1);
    let t = make_torrent(&d, &d.join("src/x.bin"), 16384, &[]);
    let mut fetch = start_fetch(&t, &d.join("dst"), &[], &[]);
    std::thread::sleep(Duration::from_millis(300));
    let (code, out) = fetch.stop();
    assert_eq!(code, Some(1));
    assert_eq!(
        out.last().map(|l| parse_counts(l).is_some()),
        Some(true),
        "{out:?}"
    );
    assert!(
        fetch.stderr().contains("run again to resume"),
        "{}",
        fetch.stderr()
    );
}

#[test]
fn seed_with_no_data_is_a_clear_error_and_damage_is_reported() {
    let d = Dir::new();
    d.data_file("src/x.bin", 100_000, 1);
    let t = make_torrent(&d, &d.join("src/x.bin"), 16384, &[]);
    let out = run(share()
        .arg("seed")
        .arg(&t)
        .arg("-d")
        .arg(d.join("elsewhere"))
        .args(["--listen", "127.0.0.1:0"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no data to seed"));
    assert!(
        !d.join("elsewhere/x.bin").exists(),
        "seed must not create files"
    );

    // Damage piece 2: the seed says so and still serves the other pieces.
    let mut data = std::fs::read(d.join("src/x.bin")).unwrap();
    data[2 * 16384 + 10] ^= 0xff;
    std::fs::write(d.join("src/x.bin"), data).unwrap();
    let mut seed = start_seed(&t, &d.join("src"), &[]);
    std::thread::sleep(Duration::from_millis(500));
    let (code, _) = seed.stop();
    assert_eq!(code, Some(0));
    let err = seed.stderr();
    assert!(
        err.contains("1 pieces are missing or damaged (first: 2)"),
        "{err}"
    );
}

/// A tmpfs mount of `size` at `path`, unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(path: &std::path::Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(path).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(path.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_is_a_clear_error_and_loses_nothing() {
    let d = Dir::new();
    let total = 3 << 20;
    let piece = 65536;
    d.data_file("src/f.bin", total, 61);
    let full = std::fs::read(d.join("src/f.bin")).unwrap();
    let t = make_torrent(&d, &d.join("src/f.bin"), piece as u32, &[]);
    let Some(disk) = Tmpfs::mount(&d.join("small"), "1m") else {
        // Mounting needs root, which CI and the developers' machines have.
        panic!("cannot mount a 1 MiB tmpfs for this test: run it as root");
    };
    let seed = start_seed(&t, &d.join("src"), &[]);
    let mut fetch = start_fetch(&t, &disk.0, &[seed.addr], &[]);
    let (code, out) = fetch.wait(Duration::from_secs(60));
    let err = fetch.stderr();
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        out.last().is_some_and(|l| parse_counts(l).is_some()),
        "{out:?}"
    );

    // Nothing verified is lost: what fitted is kept by the next run, somewhere roomier.
    std::fs::create_dir_all(d.join("roomy")).unwrap();
    std::fs::copy(disk.0.join("f.bin"), d.join("roomy/f.bin")).unwrap();
    drop(disk);
    let kept = bytes_in_place(&full, &d.join("roomy/f.bin"), piece);
    assert!(kept > 0, "nothing was written before the disk filled");
    let mut again = start_fetch(&t, &d.join("roomy"), &[seed.addr], &[]);
    assert_eq!(
        again.wait(Duration::from_secs(60)).0,
        Some(0),
        "{}",
        again.stderr()
    );
    assert_same_file(&d.join("src/f.bin"), &d.join("roomy/f.bin"));
    assert_eq!(again.transfer_counts().1, (total - kept) as u64);
}

/// `../../passwd` was refused; it is now stored as `x/passwd`, inside the download folder.
#[test]
fn a_torrent_whose_paths_would_escape_the_folder_is_fetched_inside_it() {
    let d = Dir::new();
    let data = pseudo_random(5000, 71);
    let file = crate::craft::File::new(&[b"..", b"..", b"passwd"], data.clone());
    let t = d.join("evil.torrent");
    std::fs::write(&t, crate::craft::multi_file("x", &[file], 16384)).unwrap();
    std::fs::create_dir_all(d.join("src/x")).unwrap();
    std::fs::write(d.join("src/x/passwd"), &data).unwrap();
    let mut seed = start_seed(&t, &d.join("src"), &[]);
    let mut fetch = start_fetch(&t, &d.join("dl"), &[seed.addr], &[]);
    let (code, _) = fetch.wait(Duration::from_secs(60));
    assert_eq!(code, Some(0), "{}", fetch.stderr());
    seed.stop();
    assert!(std::fs::read(d.join("dl/x/passwd")).unwrap() == data);
    assert!(fetch
        .stderr()
        .contains("warning: `../../passwd` is stored as `passwd`"));
    let mut top: Vec<_> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    top.sort();
    assert_eq!(top, ["dl", "evil.torrent", "src"]);
    assert_eq!(std::fs::read_dir(d.join("dl")).unwrap().count(), 1);
}

#[test]
fn fetch_only_and_exclude_take_the_matching_files_and_a_second_run_resumes() {
    let d = Dir::new();
    d.data_file("src/show/e1.mkv", 600_001, 91);
    d.data_file("src/show/e2.mkv", 500_003, 92);
    d.data_file("src/show/extras/making-of.mkv", 400_009, 93);
    d.data_file("src/show/notes.txt", 20_011, 94);
    let t = make_torrent(&d, &d.join("src/show"), 16384, &[]);
    let seed = start_seed(&t, &d.join("src"), &[]);
    let mut f = start_fetch(
        &t,
        &d.join("dl"),
        &[seed.addr],
        &["--only", "*.mkv", "--exclude", "*/extras/*"],
    );
    let (code, out) = f.wait(std::time::Duration::from_secs(120));
    assert_eq!(code, Some(0), "{out:?} {}", f.stderr());
    assert_same_file(&d.join("src/show/e1.mkv"), &d.join("dl/show/e1.mkv"));
    assert_same_file(&d.join("src/show/e2.mkv"), &d.join("dl/show/e2.mkv"));
    let (_, down) = parse_counts(out.last().unwrap()).unwrap();
    assert!(down <= 600_001 + 500_003 + 4 * 16384, "downloaded {down}");
    for skipped in ["dl/show/extras/making-of.mkv", "dl/show/notes.txt"] {
        let have = std::fs::read(d.join(skipped)).unwrap_or_default();
        let full = std::fs::read(d.join(&skipped.replace("dl/", "src/"))).unwrap();
        assert!(have != full, "{skipped} was fetched");
    }
    // The rest, with the first files kept: only what was left out comes over the wire.
    let mut f = start_fetch(&t, &d.join("dl"), &[seed.addr], &[]);
    let (code, out) = f.wait(std::time::Duration::from_secs(120));
    assert_eq!(code, Some(0), "{out:?} {}", f.stderr());
    let (_, down) = parse_counts(out.last().unwrap()).unwrap();
    assert!(
        down <= 400_009 + 20_011 + 4 * 16384,
        "downloaded {down} again"
    );
    let out = run(std::process::Command::new("diff")
        .arg("-r")
        .arg(d.join("src/show"))
        .arg(d.join("dl/show")));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // A pattern that matches nothing is a clear error; a malformed one is bad usage.
    let out = run(share()
        .arg("fetch")
        .arg(&t)
        .arg("-o")
        .arg(d.join("none"))
        .args(["--listen", "127.0.0.1:0", "--only", "*.iso"])
        .arg("--peer")
        .arg(seed.addr.to_string()));
    assert_eq!(out.status.code(), Some(1));
    assert!(!String::from_utf8_lossy(&out.stderr).is_empty());
    let out = run(share().arg("fetch").arg(&t).args(["--only", "a[b"]));
    assert_eq!(out.status.code(), Some(2));
}
