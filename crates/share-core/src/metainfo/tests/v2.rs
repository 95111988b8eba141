//! BitTorrent v2: a v2-only torrent is refused with a clear error; a hybrid one loads only
//! when its two file lists agree.

use super::*;

/// A hybrid `info`: v1 `files` with a pad after `a`, and a v2 `file tree` whose leaves are
/// `tree` (name, length), in that order.
fn hybrid(tree: Vec<(&'static str, i64)>) -> Vec<u8> {
    let leaf = |len: i64| B::D(vec![("", B::D(vec![("length", B::I(len))]))]);
    torrent(B::D(vec![
        (
            "file tree",
            B::D(tree.into_iter().map(|(n, l)| (n, leaf(l))).collect()),
        ),
        ("files", padded_files(5)),
        ("meta version", B::I(2)),
        ("name", s("h")),
        ("piece length", B::I(16384)),
        ("pieces", B::S(vec![0; 40])),
    ]))
}

#[test]
fn a_hybrid_whose_lists_agree_loads() {
    let m = load(&hybrid(vec![("a", 3), ("b", 5)])).unwrap();
    let real: Vec<_> = m.info.files.iter().filter(|f| !f.padding).collect();
    assert_eq!(real.len(), 2);
    assert!(m.info.warnings.is_empty());
}

#[test]
fn a_hybrid_whose_lists_disagree_is_refused() {
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
fn a_v2_only_torrent_says_so() {
    let t = torrent(B::D(vec![
        (
            "file tree",
            B::D(vec![(
                "f",
                B::D(vec![("", B::D(vec![("length", B::I(5))]))]),
            )]),
        ),
        ("meta version", B::I(2)),
        ("name", s("f")),
        ("piece length", B::I(16384)),
    ]));
    let e = load(&t).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("BitTorrent v2-only torrents are not supported yet"),
        "{e}"
    );
}

#[test]
fn the_hybrid_fixture_made_by_libtorrent_loads() {
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
