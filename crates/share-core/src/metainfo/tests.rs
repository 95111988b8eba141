//! A table of hostile and edge-case torrents, each mapped to the error it must give.

use super::*;

mod odd;
mod v2;

/// A tiny bencode builder for tests: keys are written in the order given.
pub(super) enum B {
    I(i64),
    S(Vec<u8>),
    L(Vec<B>),
    D(Vec<(&'static str, B)>),
}

pub(super) fn s(v: &str) -> B {
    B::S(v.as_bytes().to_vec())
}

pub(super) fn enc(b: &B, out: &mut Vec<u8>) {
    match b {
        B::I(i) => out.extend(format!("i{i}e").bytes()),
        B::S(v) => {
            out.extend(format!("{}:", v.len()).bytes());
            out.extend(v);
        }
        B::L(l) => {
            out.push(b'l');
            l.iter().for_each(|x| enc(x, out));
            out.push(b'e');
        }
        B::D(d) => {
            out.push(b'd');
            for (k, v) in d {
                enc(&s(k), out);
                enc(v, out);
            }
            out.push(b'e');
        }
    }
}

pub(super) fn torrent(info: B) -> Vec<u8> {
    let mut out = Vec::new();
    enc(
        &B::D(vec![("announce", s("http://t/a")), ("info", info)]),
        &mut out,
    );
    out
}

pub(super) fn single(len: i64, piece_len: i64, pieces: usize) -> B {
    B::D(vec![
        ("length", B::I(len)),
        ("name", s("f.bin")),
        ("piece length", B::I(piece_len)),
        ("pieces", B::S(vec![7; pieces])),
    ])
}

pub(super) fn multi(paths: Vec<Vec<&str>>) -> B {
    let n = paths.len() as i64;
    B::D(vec![
        (
            "files",
            B::L(
                paths
                    .into_iter()
                    .map(|p| {
                        B::D(vec![
                            ("length", B::I(10)),
                            ("path", B::L(p.into_iter().map(s).collect())),
                        ])
                    })
                    .collect(),
            ),
        ),
        ("name", s("root")),
        ("piece length", B::I(16384)),
        (
            "pieces",
            B::S(vec![1; 20 * ((n * 10 + 16383) / 16384) as usize]),
        ),
    ])
}

/// `files` with `a` (3 bytes), a padding file up to the next 16 KiB piece, and `b`.
pub(super) fn padded_files(b_length: i64) -> B {
    B::L(vec![
        B::D(vec![("length", B::I(3)), ("path", B::L(vec![s("a")]))]),
        B::D(vec![
            ("attr", s("p")),
            ("length", B::I(16381)),
            ("path", B::L(vec![s(".pad"), s("16381")])),
        ]),
        B::D(vec![
            ("length", B::I(b_length)),
            ("path", B::L(vec![s("b")])),
        ]),
    ])
}

/// A multi-file `info` over `files` (10 bytes each), with 16 KiB pieces.
fn files_of(files: Vec<B>) -> B {
    B::D(vec![
        ("files", B::L(files)),
        ("name", s("root")),
        ("piece length", B::I(16384)),
        ("pieces", B::S(vec![1; 20])),
    ])
}

fn named(name: &str) -> B {
    B::D(vec![("length", B::I(10)), ("path", B::L(vec![s(name)]))])
}

/// `a`, then a file with a `length` and no `path`, then `c`.
fn no_path() -> Vec<B> {
    vec![named("a"), B::D(vec![("length", B::I(10))]), named("c")]
}

/// `a`, then a file whose `path` is an empty list, then `c`.
fn empty_path() -> Vec<B> {
    let empty = B::D(vec![("length", B::I(10)), ("path", B::L(vec![]))]);
    vec![named("a"), empty, named("c")]
}

pub(super) fn load(bytes: &[u8]) -> Result<Metainfo, MetainfoError> {
    Metainfo::from_bytes(bytes)
}

#[test]
fn reads_a_single_file_torrent() {
    let m = load(&torrent(single(40000, 16384, 60))).unwrap();
    assert_eq!(m.info.name, "f.bin");
    assert_eq!(m.info.piece_count(), 3);
    assert_eq!(m.info.piece_size(2), 40000 - 2 * 16384);
    assert_eq!(m.info.piece_size(3), 0);
    assert!(m.info.single_file);
    assert_eq!(m.trackers, vec![vec!["http://t/a".to_string()]]);
}

#[test]
fn info_hash_is_over_the_raw_bytes_even_with_unknown_and_unsorted_keys() {
    let info = B::D(vec![
        ("name", s("f.bin")),
        ("length", B::I(5)),
        ("zzz-unknown", B::L(vec![B::I(1), s("x")])),
        ("piece length", B::I(16384)),
        ("pieces", B::S(vec![9; 20])),
    ]);
    let bytes = torrent(info);
    let m = load(&bytes).unwrap();
    let start = bytes.windows(6).position(|w| w == b"4:info").unwrap() + 6;
    let raw = &bytes[start..bytes.len() - 1];
    assert_eq!(m.info_hash.0, <[u8; 20]>::from(Sha1::digest(raw)));
    assert_eq!(m.info_bytes, raw);
}

#[test]
fn hostile_torrents_give_their_own_errors() {
    use MetainfoError as E;
    let deep = {
        let mut v = b"d4:info".to_vec();
        v.extend(std::iter::repeat_n(b'l', 50_000));
        v.extend(std::iter::repeat_n(b'e', 50_001));
        v
    };
    /// A name, the torrent's bytes, and the check its error must pass.
    type Case = (&'static str, Vec<u8>, fn(&E) -> bool);
    let cases: Vec<Case> = vec![
        (
            "truncated",
            torrent(single(5, 16384, 20))[..30].to_vec(),
            |e| matches!(e, E::Bencode(BencodeError::Truncated { .. })),
        ),
        ("deep nesting", deep, |e| {
            matches!(e, E::Bencode(BencodeError::TooDeep { .. }))
        }),
        ("not a dict", b"li1ee".to_vec(), |e| {
            matches!(e, E::NotADict)
        }),
        ("no info", b"d1:ai1ee".to_vec(), |e| {
            matches!(e, E::MissingInfo)
        }),
        ("info is a list", b"d4:infoli1eee".to_vec(), |e| {
            matches!(e, E::BadInfo(_))
        }),
        (
            "integer too big",
            b"d4:infod6:lengthi99999999999999999999eee".to_vec(),
            |e| matches!(e, E::Bencode(BencodeError::IntegerOutOfRange { .. })),
        ),
        ("pieces not x20", torrent(single(5, 16384, 21)), |e| {
            matches!(e, E::PiecesNotMultipleOf20(21))
        }),
        ("too few pieces", torrent(single(40000, 16384, 40)), |e| {
            matches!(
                e,
                E::PieceCountMismatch {
                    found: 2,
                    expected: 3,
                    ..
                }
            )
        }),
        ("too many pieces", torrent(single(5, 16384, 40)), |e| {
            matches!(e, E::PieceCountMismatch { .. })
        }),
        ("piece length 0", torrent(single(5, 0, 20)), |e| {
            matches!(e, E::BadPieceLength(0))
        }),
        ("piece length huge", torrent(single(5, 1 << 40, 20)), |e| {
            matches!(e, E::BadPieceLength(_))
        }),
        ("negative length", torrent(single(-5, 16384, 20)), |e| {
            matches!(e, E::BadLength(-5))
        }),
        ("empty", torrent(single(0, 16384, 0)), |e| {
            matches!(e, E::Empty)
        }),
        (
            "meta version 3",
            torrent(B::D(vec![
                ("length", B::I(5)),
                ("meta version", B::I(3)),
                ("name", s("x")),
                ("piece length", B::I(16384)),
                ("pieces", B::S(vec![0; 20])),
            ])),
            |e| matches!(e, E::UnknownVersion(3)),
        ),
        (
            "no pieces",
            torrent(B::D(vec![
                ("length", B::I(5)),
                ("name", s("x")),
                ("piece length", B::I(16384)),
            ])),
            |e| matches!(e, E::BadInfo(m) if m.contains("pieces")),
        ),
        (
            "length and files",
            {
                let mut out = Vec::new();
                enc(
                    &B::D(vec![(
                        "info",
                        B::D(vec![
                            ("files", B::L(vec![])),
                            ("length", B::I(5)),
                            ("name", s("x")),
                            ("piece length", B::I(16384)),
                            ("pieces", B::S(vec![0; 20])),
                        ]),
                    )]),
                    &mut out,
                );
                out
            },
            |e| matches!(e, E::AmbiguousLayout),
        ),
        ("a file without `path`", torrent(files_of(no_path())), |e| {
            matches!(e, E::FileWithoutPath(2))
                && e.to_string() == "file 2 of the `files` list has no `path`"
        }),
        (
            "a file with an empty `path`",
            torrent(files_of(empty_path())),
            |e| {
                matches!(e, E::FileWithEmptyPath(2))
                    && e.to_string() == "file 2 of the `files` list has an empty `path`"
            },
        ),
        (
            "trailing garbage",
            {
                let mut t = torrent(single(5, 16384, 20));
                t.extend(b"junk");
                t
            },
            |e| matches!(e, E::Bencode(BencodeError::TrailingBytes { .. })),
        ),
    ];
    for (what, bytes, expect) in cases {
        match load(&bytes) {
            Ok(_) => panic!("{what}: accepted"),
            Err(e) => assert!(expect(&e), "{what}: wrong error {e:?}"),
        }
    }
}

#[test]
fn lengths_that_overflow_u64_are_rejected() {
    let file = |len: i64| B::D(vec![("length", B::I(len)), ("path", B::L(vec![s("x")]))]);
    let info = B::D(vec![
        (
            "files",
            B::L(vec![file(i64::MAX), file(i64::MAX), file(i64::MAX)]),
        ),
        ("name", s("root")),
        ("piece length", B::I(1 << 20)),
        ("pieces", B::S(vec![0; 20])),
    ]);
    assert!(matches!(
        load(&torrent(info)),
        Err(MetainfoError::LengthOverflow)
    ));
}

#[test]
fn non_utf8_names_are_kept_losslessly_or_taken_from_utf8_keys() {
    let info = B::D(vec![
        (
            "files",
            B::L(vec![
                B::D(vec![
                    ("length", B::I(3)),
                    ("path", B::L(vec![B::S(b"caf\xe9".to_vec())])),
                ]),
                B::D(vec![
                    ("length", B::I(3)),
                    ("path", B::L(vec![B::S(b"\xff".to_vec())])),
                    ("path.utf-8", B::L(vec![s("ünï")])),
                ]),
            ]),
        ),
        ("name", B::S(b"r\xf6ot".to_vec())),
        ("piece length", B::I(16384)),
        ("pieces", B::S(vec![0; 20])),
    ]);
    let m = load(&torrent(info)).unwrap();
    assert_eq!(m.info.name, "r%F6ot");
    assert_eq!(m.info.files[0].path, vec!["caf%E9"]);
    assert_eq!(m.info.files[1].path, vec!["ünï"]);
    assert_eq!(m.info.files[1].offset, 3);
}

#[test]
fn a_padding_file_may_go_without_a_path_and_a_name_of_dropped_elements_is_kept() {
    let pad = |path: Option<Vec<B>>| {
        let mut d = vec![("attr", s("p")), ("length", B::I(10))];
        d.extend(path.map(|p| ("path", B::L(p))));
        B::D(d)
    };
    let files = vec![named("a"), pad(None), pad(Some(vec![])), named("c")];
    let m = load(&torrent(files_of(files))).unwrap();
    let pads: Vec<bool> = m.info.files.iter().map(|f| f.padding).collect();
    assert_eq!(pads, [false, true, true, false]);
    // A path whose every element the rule drops is not empty: it is stored as `_`.
    let dots = B::D(vec![("length", B::I(10)), ("path", B::L(vec![s("..")]))]);
    let m = load(&torrent(files_of(vec![named("a"), dots]))).unwrap();
    assert_eq!(m.info.files[1].path, ["_"]);
    // `path.utf-8` alone names a file, as libtorrent reads it.
    let utf8 = B::D(vec![
        ("length", B::I(10)),
        ("path.utf-8", B::L(vec![s("u")])),
    ]);
    let m = load(&torrent(files_of(vec![named("a"), utf8]))).unwrap();
    assert_eq!(m.info.files[1].path, ["u"]);
}

#[test]
fn padding_files_are_marked() {
    let info = B::D(vec![
        ("files", padded_files(3)),
        ("name", s("root")),
        ("piece length", B::I(16384)),
        ("pieces", B::S(vec![0; 40])),
    ]);
    let m = load(&torrent(info)).unwrap();
    let pads: Vec<bool> = m.info.files.iter().map(|f| f.padding).collect();
    assert_eq!(pads, vec![false, true, false]);
    assert_eq!(m.info.files[2].offset, 16384);
}

#[test]
fn wrong_types_in_informative_fields_are_ignored() {
    let mut out = Vec::new();
    enc(
        &B::D(vec![
            ("announce", B::I(5)),
            (
                "announce-list",
                B::L(vec![B::L(vec![s("udp://a"), s("udp://b")]), B::L(vec![])]),
            ),
            ("comment", B::L(vec![])),
            ("info", single(5, 16384, 20)),
        ]),
        &mut out,
    );
    let m = load(&out).unwrap();
    assert_eq!(
        m.trackers,
        vec![vec!["udp://a".to_string(), "udp://b".to_string()]]
    );
    assert_eq!(m.comment, None);
}

#[test]
fn written_torrents_read_back_with_sorted_keys() {
    use crate::write::{NewFile, NewTorrent};
    let t = NewTorrent {
        name: "dir".into(),
        piece_length: 16384,
        pieces: vec![3; 40],
        files: vec![
            NewFile {
                path: vec!["a".into(), "b.txt".into()],
                length: 20000,
            },
            NewFile {
                path: vec!["c".into()],
                length: 1,
            },
        ],
        single_file: false,
        trackers: vec!["http://x/announce".into(), "udp://y:1".into()],
        private: true,
        comment: Some("hi".into()),
        created_by: Some("share".into()),
        creation_date: None,
        web_seeds: vec!["http://w/a".into(), "http://w/b".into()],
    };
    let bytes = t.to_bytes();
    let m = load(&bytes).unwrap();
    assert_eq!(m.url_list, vec!["http://w/a", "http://w/b"]);
    assert!(m.info.private);
    assert_eq!(m.info.files[1].offset, 20000);
    assert_eq!(m.tracker_urls(), vec!["http://x/announce", "udp://y:1"]);
    assert_eq!(m.comment.as_deref(), Some("hi"));
    // Keys in sorted order, as mktorrent writes them.
    let info = String::from_utf8_lossy(&m.info_bytes);
    let order: Vec<usize> = [
        "5:files",
        "4:name",
        "12:piece length",
        "6:pieces",
        "7:private",
    ]
    .iter()
    .map(|k| info.find(k).unwrap())
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{info}");
    assert!(String::from_utf8_lossy(&bytes).starts_with("d8:announce"));
}

#[test]
fn a_bare_info_dictionary_gives_the_same_torrent_and_round_trips_with_trackers() {
    let bytes = torrent(single(100, 64, 40));
    let full = load(&bytes).unwrap();
    let bare =
        Metainfo::from_info_bytes(&full.info_bytes, vec![vec!["http://t/a".into()]]).unwrap();
    assert_eq!(bare.info_hash, full.info_hash);
    assert_eq!(bare.info.total_length, 100);
    let again = load(&bare.to_torrent_bytes()).unwrap();
    assert_eq!(again.info_hash, full.info_hash);
    assert_eq!(again.trackers, vec![vec!["http://t/a".to_owned()]]);
    assert!(Metainfo::from_info_bytes(b"li1ee", vec![]).is_err());
    assert!(Metainfo::from_info_bytes(b"d4:name1:xe", vec![]).is_err());
}
