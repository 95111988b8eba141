//! The hybrid check on raw file trees: what agrees, and each way of disagreeing.

use super::*;

fn v1<'a>(files: &'a [(&'a [&'a str], u64)]) -> Vec<V1File<'a>> {
    files
        .iter()
        .map(|(path, length)| V1File {
            paths: vec![path.iter().map(|c| c.as_bytes()).collect()],
            length: *length,
        })
        .collect()
}

/// `a.txt` (3 bytes), `sub/b.bin` (5), `sub/c` (0): the tree of a small hybrid torrent.
const TREE: &[u8] = b"d5:a.txtd0:d6:lengthi3e11:pieces root32:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaee\
3:subd5:b.bind0:d6:lengthi5eee1:cd0:d6:lengthi0eeeee";

#[test]
fn a_tree_that_names_the_v1_files_in_order_agrees() {
    let files = v1(&[(&["a.txt"], 3), (&["sub", "b.bin"], 5), (&["sub", "c"], 0)]);
    assert_eq!(check_hybrid(TREE, &files), Ok(()));
}

/// What is changed, the v1 files, and what the error must say.
type Case<'a> = (&'a str, Vec<(&'a [&'a str], u64)>, &'a str);

#[test]
fn each_disagreement_is_named() {
    let cases: Vec<Case> = vec![
        (
            "another length",
            vec![(&["a.txt"], 4), (&["sub", "b.bin"], 5), (&["sub", "c"], 0)],
            "file 1 is `a.txt` (4 bytes) in `files` but `a.txt` (3 bytes)",
        ),
        (
            "another name",
            vec![(&["a.txt"], 3), (&["sub", "B.bin"], 5), (&["sub", "c"], 0)],
            "file 2 is `sub/B.bin`",
        ),
        (
            "another order",
            vec![(&["sub", "b.bin"], 5), (&["a.txt"], 3), (&["sub", "c"], 0)],
            "file 1 is `sub/b.bin`",
        ),
        (
            "a file fewer in v1",
            vec![(&["a.txt"], 3), (&["sub", "b.bin"], 5)],
            "more files than `files` (2); the first extra is `sub/c`",
        ),
        (
            "a file more in v1",
            vec![
                (&["a.txt"], 3),
                (&["sub", "b.bin"], 5),
                (&["sub", "c"], 0),
                (&["z"], 1),
            ],
            "`files` lists 4 files, the `file tree` 3",
        ),
    ];
    for (what, files, want) in cases {
        let err = check_hybrid(TREE, &v1(&files)).expect_err(what);
        assert!(err.contains(want), "{what}: {err}");
    }
}

#[test]
fn malformed_trees_are_refused_not_panicked_on() {
    let files = v1(&[(&["a"], 1)]);
    let cases: [(&[u8], &str); 6] = [
        (b"le", "not a dictionary"),
        (b"d1:ai1ee", "not a dictionary"),
        (b"d0:d6:lengthi1eee", "a file without a name"),
        (b"d1:ad0:d6:lengthi1ee1:bdeee", "both a file and a folder"),
        (b"d1:ad0:d4:attr1:xeee", "a file without a length"),
        (b"d1:ad0:d6:lengthi1e", "malformed"),
    ];
    for (tree, want) in cases {
        let err = check_hybrid(tree, &files).expect_err(want);
        assert!(
            err.contains(want),
            "{:?}: {err}",
            String::from_utf8_lossy(tree)
        );
    }
}

#[test]
fn a_symlink_in_the_tree_holds_no_bytes() {
    let tree = b"d4:linkd0:d4:attr1:l12:symlink pathl1:aeeee";
    assert_eq!(check_hybrid(tree, &v1(&[(&["link"], 0)])), Ok(()));
}
