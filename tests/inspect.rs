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
fn hostile_torrents_get_a_clear_error_and_exit_1() {
    let d = Dir::new();
    let mut deep = b"d4:info".to_vec();
    deep.extend(std::iter::repeat_n(b'l', 100_000));
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", vec![], "empty"),
        ("garbage", b"hello world".to_vec(), "malformed bencode"),
        ("deep", deep, "nesting deeper"),
        (
            "escape",
            b"d4:infod5:filesld6:lengthi1e4:pathl2:..6:passwdeee4:name1:x12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaaee"
                .to_vec(),
            "unsafe path",
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
