//! BitTorrent v2 and hybrid torrents: libtorrent 2.0.8's own .torrent files load with the
//! hashes, roots, layouts and piece layers it reports (fixtures/v2, made by
//! python3-libtorrent from files of bytes `(j * 31 + seed * 7) % 251`); hybrids load only
//! when their two file lists agree; and the torrents libtorrent refuses are refused.

use super::*;

fn fixture(name: &str) -> Metainfo {
    let path = format!("{}/../../fixtures/v2/{name}", env!("CARGO_MANIFEST_DIR"));
    load(&std::fs::read(&path).unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn raw_fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../../fixtures/v2/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn real(m: &Metainfo) -> Vec<(String, u64, u64)> {
    m.info
        .files
        .iter()
        .filter(|f| !f.padding)
        .map(|f| (f.path.join("/"), f.length, f.offset))
        .collect()
}

#[test]
fn libtorrents_v2_and_hybrid_torrents_load_with_its_hashes() {
    let cases = [
        (
            "multi_hybrid.torrent",
            Some("def10d7b1fe3d7ca076b8e5ba164d0b559d4a53a"),
            "b28f85b039a5c9c1b98ade965480b7c7bdf68d9e88437954fb275825f489e5fb",
        ),
        (
            "multi_v2.torrent",
            None,
            "cde5cd2510e07f92646341e72dbd8c9c8e39d678151c5a5e4c0966d273b40d6e",
        ),
        (
            "multi_hybrid_notailpad.torrent",
            Some("50348d2fe30c9b8d3409e03e0f9ff6b4bb289d64"),
            "b2b9a4860c2f6f86a9309b9210a06cbbd20d68a286e2a241576c47aa3b57a304",
        ),
        (
            "single_file_hybrid.torrent",
            Some("f903b6da7ccf5778bdd4f8747d2f5e2b1bbc08b1"),
            "426dddc8e4b7b26e347e5032e46ad009e39d407277c72d0c45f2b54605b8176e",
        ),
        (
            "single_file_v2.torrent",
            None,
            "ec9b96473755e010343baef5d3cecfadadc65147f9703a650d99ccf1ce1cf1d8",
        ),
        (
            "onedir_hybrid.torrent",
            Some("466f045f143cf485017d7c18655ee8c23394ddbd"),
            "c8911f35faa7cf3938b243751a443ed52f9a454c4532eae11b45fcd33bd4b6b7",
        ),
        (
            "onedir_v2.torrent",
            None,
            "cc5d9745326f1c91ad0e9f3d7a7c9290e29f3ea9b019291fb6a7f984c929a7f6",
        ),
    ];
    for (file, v1, v2) in cases {
        let m = fixture(file);
        assert_eq!(m.hashes.v1.map(|h| h.to_hex()).as_deref(), v1, "{file}");
        assert_eq!(m.hashes.v2.map(hex::encode).as_deref(), Some(v2), "{file}");
        assert_eq!(
            m.info_hash.to_hex(),
            v1.unwrap_or(&v2[..40]),
            "{file}: the key"
        );
        assert!(m.info.v2 && m.info.v1 == v1.is_some(), "{file}");
        assert!(m.info.warnings.is_empty(), "{file}: {:?}", m.info.warnings);
        assert!(
            m.missing_layers().is_empty(),
            "{file}: every layer is in the file"
        );
        // Every piece has a known hash, and the magnet names both topics.
        for i in 0..m.info.piece_count() {
            if let Some(p) = m.v2_piece(i) {
                assert!(p.hash.is_some(), "{file} piece {i}");
            }
        }
        let link = m.magnet();
        assert!(link.contains(&format!("xt=urn:btmh:1220{v2}")), "{link}");
        assert_eq!(link.contains("urn:btih:"), v1.is_some());
    }
}

#[test]
fn a_v2_torrent_is_laid_out_with_each_file_on_a_piece_boundary() {
    let m = fixture("multi_v2.torrent");
    assert_eq!(m.info.name, "v2test");
    assert_eq!(
        real(&m),
        [
            ("a_small.txt".into(), 1000, 0),
            ("b_mid.bin".into(), 40000, 65536),
            ("c_big.bin".into(), 200000, 131072),
            ("d_empty".into(), 0, 393216),
            ("sub/e_exact.bin".into(), 65536, 393216),
            ("sub/f_two.bin".into(), 131077, 458752),
        ]
    );
    // libtorrent's layout: padding after every non-empty file, the last one too.
    assert_eq!(m.info.total_length, 655360);
    assert_eq!(m.info.piece_count(), 10);
    // Piece 5 is c_big's last; piece 9 f_two's third, from its layer.
    let p = m.v2_piece(5).unwrap();
    assert_eq!(
        (m.info.files[p.file].path.join("/"), p.in_file),
        ("c_big.bin".into(), 3)
    );
    let p = m.v2_piece(9).unwrap();
    assert_eq!(
        hex::encode(p.hash.unwrap()),
        "3fdfb8e78ba03854b33dff87049059270d8693e88396e53e12bfd3329a43d416"
    );
    // A file of one piece is verified against its root.
    let p = m.v2_piece(0).unwrap();
    assert_eq!(
        hex::encode(p.hash.unwrap()),
        "008549d94fa71e7a0a483d84380d05a923a4b18e79ba1f8a8ddac923956d32ef"
    );
}

#[test]
fn hybrids_made_with_and_without_a_tail_pad_lay_out_the_same_files() {
    let new = fixture("multi_hybrid.torrent");
    let old = fixture("multi_hybrid_notailpad.torrent");
    assert_eq!(real(&new)[..3], real(&old)[..3]);
    assert_eq!(new.info.total_length, 655360);
    assert_eq!(
        old.info.total_length, 589829,
        "no padding after the last file"
    );
    assert!(new
        .info
        .files
        .iter()
        .filter(|f| !f.padding && f.length > 0)
        .all(|f| f.pieces_root.is_some()));
    assert_eq!(new.info.piece_count(), 10);
    assert_eq!(old.info.piece_count(), 10);
}

#[test]
fn single_file_v2_torrents_are_named_by_their_file() {
    for file in ["single_file_v2.torrent", "onedir_v2.torrent"] {
        let m = fixture(file);
        assert!(m.info.single_file, "{file}");
        assert_eq!(m.info.name, "one.bin", "{file}");
        assert_eq!(real(&m), [(String::new(), 100000, 0)]);
        assert_eq!(m.info.total_length, 131072, "{file}: padded to the piece");
    }
    // The hybrid of a folder of one file keeps the folder.
    let m = fixture("onedir_hybrid.torrent");
    assert!(!m.info.single_file);
    assert_eq!(m.info.name, "single");
}

/// `multi_v2.torrent` with `edit` applied to its decoded form.
fn edited(
    edit: impl FnOnce(&mut std::collections::HashMap<Vec<u8>, serde_bencode::value::Value>),
) -> Vec<u8> {
    use serde_bencode::value::Value;
    let mut v: Value = serde_bencode::from_bytes(&raw_fixture("multi_v2.torrent")).unwrap();
    if let Value::Dict(d) = &mut v {
        edit(d);
    }
    serde_bencode::to_bytes(&v).unwrap()
}

fn info_of(
    d: &mut std::collections::HashMap<Vec<u8>, serde_bencode::value::Value>,
) -> &mut std::collections::HashMap<Vec<u8>, serde_bencode::value::Value> {
    match d.get_mut(&b"info"[..]) {
        Some(serde_bencode::value::Value::Dict(i)) => i,
        _ => panic!("no info"),
    }
}

#[test]
fn the_torrents_libtorrent_refuses_are_refused() {
    use serde_bencode::value::Value;
    let layers = |d: &mut std::collections::HashMap<Vec<u8>, Value>| -> Vec<Vec<u8>> {
        match d.get(&b"piece layers"[..]) {
            Some(Value::Dict(l)) => l.keys().cloned().collect(),
            _ => Vec::new(),
        }
    };
    type Edit = Box<dyn FnOnce(&mut std::collections::HashMap<Vec<u8>, Value>)>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "a corrupted piece layer",
            Box::new(move |d| {
                let k = layers(d)[0].clone();
                if let Some(Value::Dict(l)) = d.get_mut(&b"piece layers"[..]) {
                    if let Some(Value::Bytes(b)) = l.get_mut(&k) {
                        b[0] ^= 1;
                    }
                }
            }),
            "does not hash to its root",
        ),
        (
            "a piece layer one hash short",
            Box::new(move |d| {
                let k = layers(d)[0].clone();
                if let Some(Value::Dict(l)) = d.get_mut(&b"piece layers"[..]) {
                    if let Some(Value::Bytes(b)) = l.get_mut(&k) {
                        b.truncate(b.len() - 32);
                    }
                }
            }),
            "hashes, its file needs",
        ),
        (
            "piece length 8192",
            Box::new(|d| {
                info_of(d).insert(b"piece length".to_vec(), Value::Int(8192));
            }),
            "invalid for BitTorrent v2",
        ),
        (
            "piece length not a power of two",
            Box::new(|d| {
                info_of(d).insert(b"piece length".to_vec(), Value::Int(98304));
            }),
            "invalid for BitTorrent v2",
        ),
        (
            "meta version 3",
            Box::new(|d| {
                info_of(d).insert(b"meta version".to_vec(), Value::Int(3));
            }),
            "`meta version` 3",
        ),
    ];
    for (what, edit, want) in cases {
        let e = load(&edited(edit)).unwrap_err();
        assert!(e.to_string().contains(want), "{what}: {e}");
    }
    // Without `piece layers` it loads, and says which files need theirs from peers.
    let m = load(&edited(|d| {
        d.remove(&b"piece layers"[..]);
    }))
    .unwrap();
    assert_eq!(m.missing_layers().len(), 2);
    assert!(
        m.v2_piece(2).unwrap().hash.is_none(),
        "c_big's pieces wait for its layer"
    );
    assert!(
        m.v2_piece(0).unwrap().hash.is_some(),
        "a file of one piece needs none"
    );
    // A layer that arrives is taken only if it hashes to the root.
    let full = fixture("multi_v2.torrent");
    let mut m = m;
    for (root, layer) in &full.piece_layers {
        let mut bad = layer.clone();
        bad[0][0] ^= 1;
        assert!(!m.add_piece_layer(*root, bad));
        assert!(m.add_piece_layer(*root, layer.clone()));
    }
    assert!(m.missing_layers().is_empty());
    // The layers go into the .torrent kept for a magnet, and come back from it.
    let again = load(&m.to_torrent_bytes()).unwrap();
    assert_eq!(again.piece_layers, full.piece_layers);
}

/// A hybrid `info` (v1 `files` with pads) over a tree of `tree` (name, length, root byte).
fn hybrid(tree: Vec<(&'static str, i64)>) -> Vec<u8> {
    let leaf = |len: i64, r: u8| {
        B::D(vec![(
            "",
            B::D(vec![
                ("length", B::I(len)),
                ("pieces root", B::S(vec![r; 32])),
            ]),
        )])
    };
    torrent(B::D(vec![
        (
            "file tree",
            B::D(
                tree.into_iter()
                    .enumerate()
                    .map(|(i, (n, l))| (n, leaf(l, i as u8 + 1)))
                    .collect(),
            ),
        ),
        ("files", padded_files(5)),
        ("meta version", B::I(2)),
        ("name", s("h")),
        ("piece length", B::I(16384)),
        ("pieces", B::S(vec![0; 40])),
    ]))
}

#[test]
fn a_hybrid_whose_lists_disagree_is_refused() {
    assert!(load(&hybrid(vec![("a", 3), ("b", 5)])).is_ok());
    for tree in [
        vec![("a", 3), ("b", 6)],
        vec![("a", 3), ("c", 5)],
        vec![("a", 3)],
        vec![("a", 3), ("b", 5), ("c", 1)],
    ] {
        let e = load(&hybrid(tree.clone())).unwrap_err();
        assert!(
            matches!(e, MetainfoError::HybridMismatch(_)),
            "{tree:?}: {e}"
        );
        assert!(e.to_string().contains("hybrid torrent disagree"), "{e}");
    }
}

#[test]
fn the_older_hybrid_fixture_made_by_libtorrent_loads() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/libtorrent-multi-hybrid.torrent"
    );
    let m = load(&std::fs::read(path).unwrap()).unwrap();
    assert_eq!(
        m.info_hash.to_hex(),
        "5bbdda0e88c7790286968202b542ce69b270aff1"
    );
    let real: u64 = m
        .info
        .files
        .iter()
        .filter(|f| !f.padding)
        .map(|f| f.length)
        .sum();
    assert_eq!(real, 150159);
    assert!(m.info.warnings.is_empty(), "{:?}", m.info.warnings);
}
