//! Torrents that mainstream clients load although their names are odd: each loads, at the
//! documented safe paths, with a warning saying what changed; and BEP 47 attributes.

use super::*;

/// A `files` entry: `path` (raw elements), `length`, and more keys (sorted after `length`
/// and `path` as the caller gives them).
fn file(path: &[&[u8]], length: i64, more: Vec<(&'static str, B)>) -> B {
    let mut d = vec![
        ("length", B::I(length)),
        (
            "path",
            B::L(path.iter().map(|c| B::S(c.to_vec())).collect()),
        ),
    ];
    d.extend(more);
    d.sort_by_key(|(k, _)| *k);
    B::D(d)
}

/// A multi-file `info` named `name` with 16 KiB pieces over `files`.
fn info_of(name: &[u8], files: Vec<B>, total: i64) -> B {
    B::D(vec![
        ("files", B::L(files)),
        ("name", B::S(name.to_vec())),
        ("piece length", B::I(16384)),
        (
            "pieces",
            B::S(vec![1; 20 * ((total as usize).div_ceil(16384))]),
        ),
    ])
}

fn paths(m: &Metainfo) -> Vec<String> {
    m.info.files.iter().map(|f| f.path.join("/")).collect()
}

#[test]
fn odd_paths_load_at_their_documented_safe_places() {
    let raw: Vec<&[&[u8]]> = vec![
        &[b"dir", b"a/b.txt"],
        &[b"back\\slash"],
        &[b"", b".", b"x", b"..", b"y"],
        &[b"CON.txt"],
        &[b"tab\tname"],
        &[b"same.bin"],
        &[b"SAME.bin"],
        &[b".."],
    ];
    let long = [b'l'; 300];
    let long_path: &[&[u8]] = &[&long];
    let files: Vec<B> = raw
        .iter()
        .chain(std::iter::once(&long_path))
        .map(|p| file(p, 10, vec![]))
        .collect();
    let bytes = torrent(info_of(b"odd", files, 90));
    let m = load(&bytes).unwrap();
    let mut want: Vec<String> = [
        "dir/a_b.txt",
        "back_slash",
        "x/y",
        "_CON.txt",
        "tab_name",
        "same.bin",
        "SAME.1.bin",
        "_",
    ]
    .map(String::from)
    .to_vec();
    want.push("l".repeat(240));
    assert_eq!(paths(&m), want);
    assert_eq!(m.info.total_length, 90, "sanitizing moves no byte");
    assert_eq!(m.info.files[8].offset, 80);
    let start = bytes.windows(6).position(|w| w == b"4:info").unwrap() + 6;
    assert_eq!(
        m.info_hash.0,
        <[u8; 20]>::from(Sha1::digest(&bytes[start..bytes.len() - 1])),
        "the info-hash is that of the raw bytes"
    );
    let warnings = m.info.warnings.join("\n");
    assert!(
        warnings.contains("`dir/a/b.txt` is stored as `dir/a_b.txt`"),
        "{warnings}"
    );
    assert!(
        warnings.contains("`SAME.bin` appears more than once: stored as `SAME.1.bin`"),
        "{warnings}"
    );
    assert_eq!(m.info.warnings.len(), 8, "{warnings}");
}

#[test]
fn a_name_that_sanitizes_to_nothing_becomes_the_info_hash() {
    let bytes = torrent(B::D(vec![
        ("length", B::I(5)),
        ("name", s("..")),
        ("piece length", B::I(16384)),
        ("pieces", B::S(vec![0; 20])),
    ]));
    let m = load(&bytes).unwrap();
    assert_eq!(m.info.name, m.info_hash.to_hex());
    let odd = torrent(B::D(vec![
        ("length", B::I(5)),
        ("name", s("a/b")),
        ("piece length", B::I(16384)),
        ("pieces", B::S(vec![0; 20])),
    ]));
    assert_eq!(load(&odd).unwrap().info.name, "a_b");
}

#[test]
fn a_file_beside_a_folder_of_the_same_name_is_renamed() {
    let m = load(&torrent(multi(vec![vec!["a"], vec!["a", "b"]]))).unwrap();
    assert_eq!(paths(&m), ["a.1", "a/b"]);
}

#[test]
fn bep47_attributes_are_kept() {
    let files = vec![
        file(&[b"run.sh"], 10, vec![("attr", s("x"))]),
        file(&[b".secret"], 10, vec![("attr", s("h"))]),
        file(&[b"plain"], 10, vec![("attr", s("q?"))]),
    ];
    let m = load(&torrent(info_of(b"t", files, 30))).unwrap();
    let f = &m.info.files;
    assert!(f[0].executable && !f[0].hidden);
    assert!(f[1].hidden && !f[1].executable);
    assert!(
        !f[2].executable && !f[2].hidden && !f[2].padding,
        "unknown letters are ignored"
    );
    assert!(m.info.warnings.is_empty());
    let single = torrent(B::D(vec![
        ("attr", s("x")),
        ("length", B::I(5)),
        ("name", s("tool")),
        ("piece length", B::I(16384)),
        ("pieces", B::S(vec![0; 20])),
    ]));
    assert!(load(&single).unwrap().info.files[0].executable);
}

#[test]
fn symlinks_inside_the_folder_are_kept_and_others_dropped_with_a_warning() {
    let link = |target: Vec<&str>| {
        vec![
            ("attr", s("l")),
            ("symlink path", B::L(target.into_iter().map(s).collect())),
        ]
    };
    let files = vec![
        file(&[b"sub", b"data"], 10, vec![]),
        // A symlink's `length` is ignored: it holds no bytes.
        file(&[b"sub", b"link"], 99, link(vec!["sub", "data"])),
        file(&[b"up"], 0, link(vec!["sub", "..", "..", "etc", "passwd"])),
        file(&[b"root"], 0, link(vec!["."])),
        file(&[b"nowhere"], 0, vec![("attr", s("l"))]),
        file(&[b"last"], 10, vec![]),
    ];
    let m = load(&torrent(info_of(b"t", files, 20))).unwrap();
    assert_eq!(paths(&m), ["sub/data", "sub/link", "nowhere", "last"]);
    let f = &m.info.files;
    assert_eq!(
        f[1].symlink,
        Some(vec!["sub".to_string(), "data".to_string()])
    );
    assert_eq!((f[1].length, f[3].offset), (0, 10));
    assert_eq!(
        (f[2].symlink.clone(), f[2].length),
        (None, 0),
        "no target: an empty file"
    );
    let warnings = m.info.warnings.join("\n");
    assert!(warnings.contains("skipped the symlink `up`"), "{warnings}");
    assert!(
        warnings.contains("skipped the symlink `root`"),
        "{warnings}"
    );
    assert!(
        warnings.contains("`nowhere` is a symlink without a target"),
        "{warnings}"
    );
}

#[test]
fn bitcomet_padding_files_are_padding_by_name() {
    let files = vec![
        file(&[b"a"], 3, vec![]),
        file(&[b"_____padding_file_0_if you see this file, please update to BitComet 0.85 or above____"], 16381, vec![]),
        file(&[b"b"], 3, vec![]),
    ];
    let m = load(&torrent(info_of(b"t", files, 16387))).unwrap();
    assert!(m.info.files[1].padding);
    assert!(m.info.warnings.is_empty());
}

#[test]
fn warnings_are_bounded_in_number() {
    let paths: Vec<Vec<&str>> = (0..500).map(|_| vec!["same"]).collect();
    let m = load(&torrent(multi(paths))).unwrap();
    assert_eq!(m.info.files[499].path, ["same.499"]);
    assert_eq!(m.info.warnings.len(), 101);
    assert_eq!(m.info.warnings[100], "... and 399 more warnings");
}

#[test]
fn a_bencode_error_says_its_text_once() {
    let mut t = torrent(single(5, 16384, 20));
    t.extend(b"x");
    let e = load(&t).unwrap_err();
    let text = e.to_string();
    assert_eq!(text.matches("unexpected bytes").count(), 1, "{text}");
    assert!(
        std::error::Error::source(&e).is_none(),
        "the text is not a source too"
    );
}
