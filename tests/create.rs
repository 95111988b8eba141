//! `share create`: same info-hash as mktorrent, readable by libtorrent, clear errors.

use serde_json::Value;

use crate::util::*;

/// Builds the nested test folder used by several tests; returns its path.
fn nested_folder(d: &Dir) -> std::path::PathBuf {
    d.data_file("content/a.bin", 70_000, 1);
    d.data_file("content/sub/deeper/c.bin", 12_345, 2);
    d.data_file("content/sub-file", 777, 3);
    d.data_file("content/sub/d.bin", 65_536, 4);
    d.data_file("content/.hidden", 10, 5);
    d.data_file("content/empty", 0, 6);
    d.data_file("content/Z", 40_001, 7);
    d.join("content")
}

fn mktorrent_hash(d: &Dir, path: &std::path::Path, piece_log2: u32) -> String {
    let out = d.join("mk.torrent");
    let _ = std::fs::remove_file(&out);
    ok(std::process::Command::new("mktorrent")
        .args([
            "-l",
            &piece_log2.to_string(),
            "-a",
            "http://127.0.0.1:1/announce",
            "-o",
        ])
        .arg(&out)
        .arg(path));
    libtorrent_view(&out)["info_hash"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn libtorrent_view(torrent: &std::path::Path) -> Value {
    let out = ok(std::process::Command::new(python())
        .arg(peer_script("lt_info.py"))
        .arg(torrent));
    serde_json::from_str(&out).unwrap()
}

fn share_create(d: &Dir, path: &std::path::Path, piece_len: u32, out: &str) -> String {
    let stdout = ok(share()
        .arg("create")
        .arg(path)
        .args(["--piece-length", &piece_len.to_string(), "--no-date", "-o"])
        .arg(d.join(out)));
    info_hash_line(&stdout)
}

#[test]
fn same_info_hash_as_mktorrent_single_and_multi_file() {
    if !require("mktorrent", "mktorrent") || !require_libtorrent() {
        return;
    }
    let d = Dir::new();
    let single = d.data_file("one.bin", 1_000_003, 9);
    let folder = nested_folder(&d);
    for (path, log2) in [(&single, 15), (&single, 18), (&folder, 15), (&folder, 16)] {
        let ours = share_create(&d, path, 1 << log2, "ours.torrent");
        let theirs = mktorrent_hash(&d, path, log2);
        assert_eq!(ours, theirs, "{} with 2^{log2} pieces", path.display());
    }
}

#[test]
fn libtorrent_reads_what_share_creates() {
    if !require_libtorrent() {
        return;
    }
    let d = Dir::new();
    let folder = nested_folder(&d);
    let hash = share_create(&d, &folder, 16384, "t.torrent");
    let lt = libtorrent_view(&d.join("t.torrent"));
    let ours: Value = serde_json::from_str(&ok(share()
        .args(["inspect", "--json"])
        .arg(d.join("t.torrent"))))
    .unwrap();
    assert_eq!(lt["info_hash"], Value::from(hash.clone()));
    assert_eq!(ours["info_hash"], Value::from(hash));
    assert_eq!(lt["piece_count"], ours["piece_count"]);
    assert_eq!(lt["total_size"], ours["total_size"]);
    assert_eq!(lt["files"], ours["files"]);
    assert_eq!(lt["files"].as_array().unwrap().len(), 7);
}

#[test]
fn quiet_create_prints_exactly_the_two_contract_lines() {
    let d = Dir::new();
    let f = d.data_file("x.bin", 5000, 1);
    let out = ok(share()
        .current_dir(d.path())
        .args(["create", "--quiet", "--no-date"])
        .arg(&f)
        .args(["-t", "http://127.0.0.1:1/a", "-t", "udp://127.0.0.1:2"]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    let hash = info_hash_line(&out);
    assert_eq!(hash.len(), 40);
    assert!(hash
        .chars()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    assert!(lines[1].contains("&dn=x.bin"));
    // Default output: ./NAME.torrent, reproducible byte for byte with --no-date.
    let first = std::fs::read(d.join("x.bin.torrent")).unwrap();
    ok(share()
        .current_dir(d.path())
        .args(["create", "-q", "--no-date"])
        .arg(&f)
        .args(["-t", "http://127.0.0.1:1/a", "-t", "udp://127.0.0.1:2"]));
    assert_eq!(first, std::fs::read(d.join("x.bin.torrent")).unwrap());
    let v: Value = serde_json::from_str(&ok(share()
        .args(["inspect", "--json"])
        .arg(d.join("x.bin.torrent"))))
    .unwrap();
    assert_eq!(
        v["trackers"],
        serde_json::json!(["http://127.0.0.1:1/a", "udp://127.0.0.1:2"])
    );
}

#[test]
fn create_options_reach_the_torrent() {
    let d = Dir::new();
    let f = d.data_file("x.bin", 5000, 1);
    ok(share()
        .args([
            "create",
            "-q",
            "--private",
            "--comment",
            "hello",
            "--name",
            "renamed",
        ])
        .arg(&f)
        .arg("-o")
        .arg(d.join("t.torrent")));
    let v: Value = serde_json::from_str(&ok(share()
        .args(["inspect", "--json"])
        .arg(d.join("t.torrent"))))
    .unwrap();
    assert_eq!(v["name"], "renamed");
    assert_eq!(v["private"], true);
    assert_eq!(v["comment"], "hello");
    assert!(v["creation_date"].as_i64().unwrap() > 1_600_000_000);
    assert_eq!(v["piece_length"], 16384);
}

#[test]
fn create_errors_are_clear() {
    let d = Dir::new();
    // Missing path: runtime failure, exit 1, names the path.
    let out = run(share().arg("create").arg(d.join("nope")));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
    // Bad piece length: usage error, exit 2.
    let f = d.data_file("x", 10, 1);
    let out = run(share()
        .arg("create")
        .arg(&f)
        .args(["--piece-length", "1000"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("power of two"));
    // A symlink loop.
    std::fs::create_dir(d.join("loop")).unwrap();
    d.data_file("loop/f", 10, 1);
    std::os::unix::fs::symlink("..", d.join("loop/up")).unwrap();
    let out = run(share()
        .arg("create")
        .arg(d.join("loop"))
        .arg("-o")
        .arg(d.join("l.t")));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("symbolic link loop"));
    // Only empty files.
    d.data_file("empties/a", 0, 1);
    let out = run(share()
        .arg("create")
        .arg(d.join("empties"))
        .arg("-o")
        .arg(d.join("e.t")));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to share"));
}

#[test]
fn an_unreadable_file_is_a_clear_error() {
    let d = Dir::new();
    let f = d.data_file("dir/secret", 100, 1);
    d.data_file("dir/public", 100, 2);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::read(&f).is_ok() {
        // Running as root: permissions do not stop reads, so there is nothing to test here.
        return;
    }
    let out = run(share()
        .arg("create")
        .arg(d.join("dir"))
        .arg("-o")
        .arg(d.join("t")));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("secret"));
}
