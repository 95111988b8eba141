//! The sanitizing rule, case by case, as the table in the module's header states it.

use super::*;

fn entry(path: &[&str]) -> FileEntry {
    FileEntry {
        path: path.iter().map(|s| s.to_string()).collect(),
        length: 1,
        offset: 0,
        padding: false,
        executable: false,
        hidden: false,
        symlink: None,
        pieces_root: None,
    }
}

#[test]
fn each_unsafe_element_has_its_documented_safe_form() {
    let long = "x".repeat(300);
    let long_with_ext = format!("{}.mkv", "y".repeat(300));
    let cases: Vec<(&[u8], Option<String>)> = vec![
        (b"plain.txt", Some("plain.txt".into())),
        (b"a/b", Some("a_b".into())),
        (b"..\\..\\x", Some(".._.._x".into())),
        (b"/etc", Some("_etc".into())),
        (b"tab\there", Some("tab_here".into())),
        (b"nul\0byte", Some("nul_byte".into())),
        (b"esc\x1b[31m", Some("esc_[31m".into())),
        (
            "evil\u{202E}txt.exe".as_bytes(),
            Some("evil_txt.exe".into()),
        ),
        (b"caf\xe9", Some("caf%E9".into())),
        (b"", None),
        (b".", None),
        (b"..", None),
        (b"...", Some("...".into())),
        (b".hidden", Some(".hidden".into())),
        (b"CON", Some("_CON".into())),
        (b"con.txt", Some("_con.txt".into())),
        (b"Lpt9.tar.gz", Some("_Lpt9.tar.gz".into())),
        (b"nul .x", Some("_nul .x".into())),
        (b"COM10", Some("COM10".into())),
        (b"console", Some("console".into())),
        (long.as_bytes(), Some("x".repeat(240))),
        (
            long_with_ext.as_bytes(),
            Some(format!("{}.mkv", "y".repeat(236))),
        ),
    ];
    for (raw, want) in cases {
        assert_eq!(element(raw), want, "{:?}", String::from_utf8_lossy(raw));
    }
}

#[test]
fn shortening_never_splits_a_character_and_stays_within_the_limit() {
    let raw = "é".repeat(200); // 400 bytes
    let short = element(raw.as_bytes()).unwrap();
    assert!(short.len() <= SHORTENED_LEN);
    assert!(short.chars().all(|c| c == 'é'));
    assert_eq!(short.len(), 240);
    let exact = "z".repeat(MAX_ELEMENT_LEN);
    assert_eq!(element(exact.as_bytes()).unwrap(), exact, "255 bytes fit");
}

#[test]
fn a_path_drops_empty_and_dot_elements_and_is_never_empty() {
    assert_eq!(path(&["a", "", ".", "b"]), vec!["a", "b"]);
    assert_eq!(path(&["..", "etc", "passwd"]), vec!["etc", "passwd"]);
    assert_eq!(path(&["", ".."]), vec!["_"]);
    assert_eq!(path::<&str>(&[]), vec!["_"]);
}

#[test]
fn a_link_target_stays_inside_the_root_or_is_refused() {
    assert_eq!(
        link_target(&["a", "b.txt"]),
        Some(vec!["a".into(), "b.txt".into()])
    );
    assert_eq!(link_target(&["a", "..", "c"]), Some(vec!["c".into()]));
    assert_eq!(link_target(&["", ".", "a/b"]), Some(vec!["a_b".into()]));
    assert_eq!(link_target(&["..", "etc"]), None, "climbs out");
    assert_eq!(
        link_target(&["a", "..", "..", "x"]),
        None,
        "climbs out later"
    );
    assert_eq!(link_target(&["a", ".."]), None, "the root itself");
    assert_eq!(link_target::<&str>(&[]), None);
}

#[test]
fn duplicates_get_a_numbered_suffix_before_the_extension() {
    let mut files = vec![
        entry(&["a.txt"]),
        entry(&["A.TXT"]),
        entry(&["a.txt"]),
        entry(&["a.1.txt"]),
        entry(&["noext"]),
        entry(&["noext"]),
        entry(&["d", ".bashrc"]),
        entry(&["D", ".bashrc"]),
    ];
    let renamed = make_unique(&mut files).unwrap();
    let paths: Vec<String> = files.iter().map(|f| f.path.join("/")).collect();
    assert_eq!(
        paths,
        [
            "a.txt",
            "A.2.TXT",
            "a.3.txt",
            "a.1.txt",
            "noext",
            "noext.1",
            "d/.bashrc",
            "D/.bashrc.1",
        ]
    );
    let which: Vec<usize> = renamed.iter().map(|(i, _)| *i).collect();
    assert_eq!(which, [1, 2, 5, 7]);
    assert_eq!(renamed[0].1, ["A.TXT"]);
}

#[test]
fn a_file_that_is_also_a_folder_yields_to_the_folder() {
    let mut files = vec![entry(&["x"]), entry(&["x", "y"]), entry(&["x.1"])];
    make_unique(&mut files).unwrap();
    let paths: Vec<String> = files.iter().map(|f| f.path.join("/")).collect();
    assert_eq!(paths, ["x.2", "x/y", "x.1"]);
}

#[test]
fn padding_files_may_repeat_and_take_no_name() {
    let mut pad = entry(&[".pad", "7"]);
    pad.padding = true;
    let mut files = vec![pad.clone(), entry(&["f"]), pad, entry(&[".pad"])];
    assert!(make_unique(&mut files).unwrap().is_empty());
    assert_eq!(
        files[3].path,
        [".pad"],
        "a pad's folder holds nothing on disk"
    );
}

#[test]
fn a_duplicate_suffix_keeps_a_full_length_name_within_the_limit() {
    let name = format!("{}.bin", "n".repeat(251));
    let mut files = vec![entry(&[&name]), entry(&[&name])];
    make_unique(&mut files).unwrap();
    let second = &files[1].path[0];
    assert_eq!(second.len(), MAX_ELEMENT_LEN);
    assert!(second.ends_with("n.1.bin"), "{second}");
}

#[test]
fn many_copies_of_one_name_cost_one_try_each() {
    let mut files: Vec<FileEntry> = (0..20_000).map(|_| entry(&["same"])).collect();
    let start = std::time::Instant::now();
    make_unique(&mut files).unwrap();
    assert_eq!(files[19_999].path, ["same.19999"]);
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
}
