//! BitTorrent v2 and hybrid torrents (BEP 52) against libtorrent 2.0.8: each reads the
//! other's torrents with the same info-hashes.

use serde_json::Value;

use crate::util::*;

/// A folder with files smaller and larger than a piece (16 KiB), one of exactly a piece,
/// an empty one, and a nested folder.
fn folder(d: &Dir) -> std::path::PathBuf {
    d.data_file("content/a_small.txt", 1000, 1);
    d.data_file("content/b_mid.bin", 10_000, 2);
    d.data_file("content/c_big.bin", 200_000, 3);
    d.data_file("content/d_empty", 0, 4);
    d.data_file("content/sub/e_exact.bin", 16384, 5);
    d.data_file("content/sub/f_two.bin", 32_771, 6);
    d.join("content")
}

fn libtorrent_view(torrent: &std::path::Path) -> Value {
    serde_json::from_str(&ok(std::process::Command::new(python())
        .arg(peer_script("lt_info.py"))
        .arg(torrent)))
    .unwrap()
}

fn share_view(torrent: &std::path::Path) -> Value {
    serde_json::from_str(&ok(share().args(["inspect", "--json"]).arg(torrent))).unwrap()
}

#[test]
fn share_reads_libtorrents_v2_and_hybrid_torrents_with_its_hashes() {
    if !require_libtorrent() {
        return;
    }
    let d = Dir::new();
    let content = folder(&d);
    for format in ["v2", "hybrid"] {
        let t = d.join(&format!("lt-{format}.torrent"));
        ok(std::process::Command::new(python())
            .arg(peer_script("lt_create.py"))
            .arg(&content)
            .arg(&t)
            .args(["--piece-length", "16384", "--format", format]));
        let (lt, ours) = (libtorrent_view(&t), share_view(&t));
        assert_eq!(ours["info_hash_v2"], lt["info_hash_v2"], "{format}");
        assert_eq!(ours["info_hash"], lt["info_hash"], "{format}");
        assert!(ours["info_hash_v2"].is_string(), "{format}: {ours}");
        assert_eq!(ours["info_hash"].is_null(), format == "v2");
        assert_eq!(ours["files"], lt["files"], "{format}");
        assert_eq!(ours["piece_count"], lt["piece_count"], "{format}");
    }
}

#[test]
fn libtorrent_reads_shares_v2_and_hybrid_torrents_with_the_same_hashes() {
    if !require_libtorrent() {
        return;
    }
    let d = Dir::new();
    let content = folder(&d);
    for format in ["v2", "hybrid"] {
        let t = d.join(&format!("share-{format}.torrent"));
        let out = ok(share()
            .arg("create")
            .arg(&content)
            .args(["--piece-length", "16384", "--no-date", "--format", format, "-o"])
            .arg(&t));
        let lines: Vec<&str> = out.lines().collect();
        let n = lines.len();
        assert!(lines[n - 1].starts_with("magnet: magnet:?"), "{out}");
        assert!(lines[n - 2].starts_with("info-hash-v2: "), "{out}");
        let v2 = lines[n - 2]["info-hash-v2: ".len()..].to_string();
        assert_eq!(v2.len(), 64);
        assert_eq!(lines[n - 3].starts_with("info-hash: "), format == "hybrid", "{out}");
        assert!(lines[n - 1].contains(&format!("xt=urn:btmh:1220{v2}")));
        // libtorrent's own torrent of the same folder has the same hashes.
        let theirs = d.join(&format!("lt-{format}.torrent"));
        ok(std::process::Command::new(python())
            .arg(peer_script("lt_create.py"))
            .arg(&content)
            .arg(&theirs)
            .args(["--piece-length", "16384", "--format", format]));
        let (lt_ours, lt_theirs) = (libtorrent_view(&t), libtorrent_view(&theirs));
        assert_eq!(lt_ours["info_hash_v2"], Value::from(v2), "{format}");
        assert_eq!(lt_ours["info_hash_v2"], lt_theirs["info_hash_v2"], "{format}");
        assert_eq!(lt_ours["info_hash"], lt_theirs["info_hash"], "{format}");
        assert_eq!(lt_ours["files"], lt_theirs["files"], "{format}");
    }
    // The default stays v1, mktorrent's hash.
    let out = ok(share().arg("create").arg(&content).args(["--no-date", "-o"]).arg(d.join("v1.torrent")));
    assert!(!out.contains("info-hash-v2"), "{out}");
}

#[test]
fn inspect_reads_a_magnet_link() {
    let link = "magnet:?xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a\
        &xt=urn:btmh:1220caf1e1c30e81cb361b9ee167c4aa64228a7fa4fa9f6105232b28ad099f3a302e\
        &dn=a+b&tr=http%3A%2F%2F127.0.0.1%3A1%2Fannounce&x.pe=127.0.0.1:7000&ws=http%3A%2F%2F127.0.0.1%3A2%2F";
    let v: Value = serde_json::from_str(&ok(share().args(["inspect", "--json", link]))).unwrap();
    assert_eq!(v["info_hash"], "c12fe1c06bba254a9dc9f519b335aa7c1367a88a");
    assert_eq!(
        v["info_hash_v2"],
        "caf1e1c30e81cb361b9ee167c4aa64228a7fa4fa9f6105232b28ad099f3a302e"
    );
    assert_eq!(v["name"], "a b");
    assert_eq!(v["trackers"][0], "http://127.0.0.1:1/announce");
    assert_eq!(v["peers"][0], "127.0.0.1:7000");
    assert_eq!(v["web_seeds"][0], "http://127.0.0.1:2/");
    let human = ok(share().args(["inspect", link]));
    assert!(human.contains("info-hash-v2: caf1e1c3"), "{human}");
    let bad = run(share().args(["inspect", "magnet:?xt=urn:btmh:1220abc"]));
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("1220"), "a clear error");
}
