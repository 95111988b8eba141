//! The file tree read raw, laid out in pieces, and a hybrid's v1 list checked against it.

use super::*;

/// `a.txt` (3 bytes), `sub/b.bin` (5), `sub/c` (0): the tree of a small torrent.
const TREE: &[u8] = b"d5:a.txtd0:d6:lengthi3e11:pieces root32:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaee\
3:subd5:b.bind0:d6:lengthi5e11:pieces root32:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbee1:cd0:d6:lengthi0eeeee";

#[test]
fn the_tree_is_read_in_order_with_roots_and_lengths() {
    let files = read_tree(TREE, 100).unwrap();
    let paths: Vec<String> = files.iter().map(|f| show(&f.path)).collect();
    assert_eq!(paths, ["`a.txt`", "`sub/b.bin`", "`sub/c`"]);
    assert_eq!(files[0].root, Some([b'a'; 32]));
    assert_eq!(
        (files[1].length, files[2].length, files[2].root),
        (5, 0, None)
    );
    assert!(read_tree(TREE, 2)
        .unwrap_err()
        .contains("more than 2 files"));
}

#[test]
fn malformed_trees_are_refused_not_panicked_on() {
    let cases: &[(&[u8], &str)] = &[
        (b"le", "not a dictionary"),
        (b"de", "holds no file"),
        (b"d1:ad0:d6:lengthi3eee", "without a `pieces root`"),
        (b"d1:ad0:d6:lengthi3e11:pieces root3:abcee", "not 32 bytes"),
        (b"d1:ad0:d4:attr1:p6:lengthi3eeee", "padding file"),
        (b"d1:ad0:d4:attr1:lee", "symlink without a `symlink path`"),
        (
            b"d1:ad0:d6:lengthi0ee1:xd0:d6:lengthi0eeee",
            "both a file and a folder",
        ),
        (
            b"d1:bd0:d6:lengthi0eee1:ad0:d6:lengthi0eeee",
            "keys out of order",
        ),
        (b"d1:ad0:d6:lengthi-1eeee", "negative length"),
        (b"d1:adee", "an empty folder"),
        (b"d1:ad0:d6:lengthi0e", "malformed"),
        (b"d0:d6:lengthi0eee", "without a name"),
    ];
    for (tree, want) in cases {
        let e = read_tree(tree, 100).unwrap_err();
        assert!(e.contains(want), "{:?}: {e}", String::from_utf8_lossy(tree));
    }
    // An empty file's root is ignored; a symlink has no length.
    let files =
        read_tree(b"d1:ad0:d6:lengthi0e11:pieces root32:zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzee1:bd0:d4:attr1:l12:symlink pathl1:aeeee", 10)
            .unwrap();
    assert_eq!(files[0].root, None);
    assert_eq!(files[1].symlink, Some(vec![&b"a"[..]]));
}

#[test]
fn each_non_empty_file_starts_a_piece_and_the_last_one_is_padded_too() {
    let files = read_tree(TREE, 100).unwrap();
    let (laid, total) = layout(&files, 16384).unwrap();
    assert_eq!(
        laid,
        [
            Laid::File {
                index: 0,
                offset: 0
            },
            Laid::Pad {
                length: 16381,
                offset: 3
            },
            Laid::File {
                index: 1,
                offset: 16384
            },
            Laid::Pad {
                length: 16379,
                offset: 16389
            },
            Laid::File {
                index: 2,
                offset: 32768
            },
        ]
    );
    assert_eq!(total, 32768);
}

fn entries<'a>(list: &'a [(&'a [&'a str], u64, bool)]) -> Vec<V1Entry<'a>> {
    list.iter()
        .map(|(path, length, padding)| V1Entry {
            paths: vec![path.iter().map(|c| c.as_bytes()).collect()],
            length: *length,
            padding: *padding,
        })
        .collect()
}

#[test]
fn a_hybrid_list_agrees_with_and_without_its_tail_padding() {
    let files = read_tree(TREE, 100).unwrap();
    let with_tail: Vec<(&[&str], u64, bool)> = vec![
        (&["a.txt"], 3, false),
        (&[".pad", "16381"], 16381, true),
        (&["sub", "b.bin"], 5, false),
        (&[".pad", "16379"], 16379, true),
        (&["sub", "c"], 0, false),
    ];
    assert_eq!(check_hybrid(&entries(&with_tail), &files, 16384), Ok(()));
    let without: Vec<(&[&str], u64, bool)> = vec![
        (&["a.txt"], 3, false),
        (&[".pad", "16381"], 16381, true),
        (&["sub", "b.bin"], 5, false),
        (&["sub", "c"], 0, false),
    ];
    assert_eq!(check_hybrid(&entries(&without), &files, 16384), Ok(()));
}

#[test]
fn each_disagreement_of_a_hybrid_is_named() {
    let files = read_tree(TREE, 100).unwrap();
    type L<'a> = Vec<(&'a [&'a str], u64, bool)>;
    let cases: Vec<(L, &str)> = vec![
        (
            vec![
                (&["a.txt"], 4, false),
                (&[".pad", "1"], 16380, true),
                (&["sub", "b.bin"], 5, false),
                (&["sub", "c"], 0, false),
            ],
            "file 1 is `a.txt` (4 bytes at 0)",
        ),
        (
            vec![
                (&["a.txt"], 3, false),
                (&[".pad", "1"], 16381, true),
                (&["sub", "B.bin"], 5, false),
                (&["sub", "c"], 0, false),
            ],
            "file 3 is `sub/B.bin`",
        ),
        (
            vec![
                (&["a.txt"], 3, false),
                (&["sub", "b.bin"], 5, false),
                (&["sub", "c"], 0, false),
            ],
            "lists 3 entries, the `file tree` lays out 5",
        ),
        (
            vec![
                (&["a.txt"], 3, false),
                (&[".pad", "1"], 16000, true),
                (&["sub", "b.bin"], 5, false),
                (&["sub", "c"], 0, false),
            ],
            "at 16003) in `files` but `sub/b.bin` (5 bytes at 16384)",
        ),
    ];
    for (list, want) in cases {
        let e = check_hybrid(&entries(&list), &files, 16384).unwrap_err();
        assert!(e.contains(want), "{want}: {e}");
    }
}
