//! `share inspect` on torrents made by real tools, and on hostile ones.

use serde_json::Value;

use crate::util::*;

#[test]
fn fixtures_from_real_tools_have_the_info_hashes_those_tools_report() {
    let expected: Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("expected.json")).unwrap()).unwrap();
    let expected = expected.as_object().unwrap();
    assert!(expected.len() >= 7);
    for (file, want) in expected {
        let got: Value = serde_json::from_str(&ok(share()
            .args(["inspect", "--json"])
            .arg(fixtures().join(file))))
        .unwrap();
        for key in [
            "info_hash",
            "name",
            "piece_length",
            "piece_count",
            "total_size",
            "files",
        ] {
            assert_eq!(got[key], want[key], "{file}: {key}");
        }
    }
}

#[test]
fn inspect_json_has_the_contract_keys() {
    let v: Value = serde_json::from_str(&ok(share()
        .args(["inspect", "--json"])
        .arg(fixtures().join("mktorrent-multi.torrent"))))
    .unwrap();
    for key in [
        "name",
        "info_hash",
        "piece_length",
        "piece_count",
        "total_size",
        "files",
        "trackers",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    assert_eq!(v["files"][5]["path"], "sub/deeper/c.txt");
    assert_eq!(v["trackers"][0], "http://127.0.0.1:6969/announce");
}

#[test]
fn inspect_human_output_names_the_essentials() {
    let out = ok(share()
        .arg("inspect")
        .arg(fixtures().join("libtorrent-multi-hybrid.torrent")));
    assert!(out.contains("5bbdda0e88c7790286968202b542ce69b270aff1"));
    assert!(out.contains("sub/deeper/c.txt"));
    assert!(!out.contains(".pad"), "padding files are not shown: {out}");
}

#[test]
fn inspect_shows_sizes_in_human_units_and_the_creation_date_as_a_date() {
    let d = Dir::new();
    // 2026-12-02 12:00:00 UTC.
    let t = d.join("dated.torrent");
    let mut bytes = b"d13:creation datei1796212800e4:infod6:lengthi150159e4:name1:x\
                      12:piece lengthi16384e6:pieces200:"
        .to_vec();
    bytes.extend([b'a'; 200]);
    bytes.extend(b"ee");
    std::fs::write(&t, bytes).unwrap();
    let out = ok(share().arg("inspect").arg(&t));
    assert!(
        out.contains("total size:   150159 bytes (146.6 KiB)"),
        "{out}"
    );
    assert!(out.contains("piece length: 16384 bytes (16 KiB)"), "{out}");
    assert!(
        out.contains("created:      2026-12-02 12:00:00 UTC"),
        "{out}"
    );
    let v: Value = serde_json::from_str(&ok(share().args(["inspect", "--json"]).arg(&t))).unwrap();
    assert_eq!(v["creation_date"], 1796212800);
    assert_eq!(v["creation_date_utc"], "2026-12-02 12:00:00 UTC");
    assert_eq!(v["total_size"], 150159);
}

#[test]
fn inspect_shows_where_odd_paths_are_stored_and_why() {
    let d = Dir::new();
    let t = d.join("odd.torrent");
    std::fs::write(
        &t,
        b"d4:infod5:filesld6:lengthi1e4:pathl2:..6:passwdeed6:lengthi1e4:pathl3:a/beee\
          4:name1:x12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaaee",
    )
    .unwrap();
    let v: Value = serde_json::from_str(&ok(share().args(["inspect", "--json"]).arg(&t))).unwrap();
    assert_eq!(v["files"][0]["path"], "passwd");
    assert_eq!(v["files"][1]["path"], "a_b");
    assert_eq!(v["warnings"][0], "`../passwd` is stored as `passwd`");
    let out = ok(share().arg("inspect").arg(&t));
    assert!(
        out.contains("warnings:\n  `../passwd` is stored as `passwd`"),
        "{out}"
    );
}

#[test]
fn hostile_torrents_get_a_clear_error_and_exit_1() {
    let d = Dir::new();
    let mut deep = b"d4:info".to_vec();
    deep.extend(std::iter::repeat_n(b'l', 100_000));
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", vec![], "empty"),
        ("garbage", b"hello world".to_vec(), "malformed bencode"),
        ("deep", deep, "nesting deeper"),
        (
            "v2 file without a root",
            b"d4:infod9:file treed1:fd0:d6:lengthi1eeee12:meta versioni2e4:name1:f12:piece lengthi16384eee"
                .to_vec(),
            "a file without a `pieces root` at `f`",
        ),
        (
            "pieces",
            b"d4:infod6:lengthi1e4:name1:x12:piece lengthi16384e6:pieces3:abcee".to_vec(),
            "not a multiple of 20",
        ),
    ];
    for (name, bytes, msg) in cases {
        let path = d.join(name);
        std::fs::write(&path, bytes).unwrap();
        let out = run(share().arg("inspect").arg(&path));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert!(err.contains(msg), "{name}: {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
    }
}
