use super::*;
use std::os::unix::fs::symlink;

/// A download folder `dl` beside a victim folder `outside` holding `secret`.
struct Scene {
    _tmp: tempfile::TempDir,
    dl: PathBuf,
    outside: PathBuf,
}

fn scene() -> Scene {
    let tmp = tempfile::tempdir().unwrap();
    let dl = tmp.path().join("dl");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&dl).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret"), b"keep me").unwrap();
    Scene {
        dl,
        outside,
        _tmp: tmp,
    }
}

fn refuse(s: &Scene) -> Root {
    Root::open(&s.dl, Links::refuse(), false).unwrap()
}

fn why(e: StorageError) -> LinkWhy {
    match e {
        StorageError::Link { why, .. } => why,
        e => panic!("not a link refusal: {e}"),
    }
}

#[test]
fn a_planted_link_at_a_files_path_is_neither_written_nor_read() {
    let s = scene();
    std::fs::create_dir_all(s.dl.join("q")).unwrap();
    symlink(s.outside.join("secret"), s.dl.join("q/file")).unwrap();
    let root = refuse(&s);
    let e = root.write_file(Path::new("q/file"), true).unwrap_err();
    assert_eq!(
        e.to_string(),
        "`q/file` resolves outside the download folder through a symlink; not created"
    );
    assert_eq!(
        why(root.read_file(Path::new("q/file")).unwrap_err()),
        LinkWhy::Outside
    );
    assert!(matches!(
        root.stat(Path::new("q/file")),
        Err(StorageError::Link { .. })
    ));
    assert_eq!(std::fs::read(s.outside.join("secret")).unwrap(), b"keep me");
}

#[test]
fn a_planted_folder_link_on_the_path_is_refused_and_nothing_is_created_outside() {
    let s = scene();
    std::fs::create_dir_all(s.dl.join("q")).unwrap();
    symlink(&s.outside, s.dl.join("q/b")).unwrap();
    let root = refuse(&s);
    let e = root.write_file(Path::new("q/b/new/x"), true).unwrap_err();
    assert_eq!(why(e), LinkWhy::Outside);
    assert!(!s.outside.join("new").exists());
    assert_eq!(
        why(root.read_file(Path::new("q/b/secret")).unwrap_err()),
        LinkWhy::Outside
    );
}

#[test]
fn a_link_that_stays_inside_is_still_not_followed_by_default() {
    let s = scene();
    std::fs::create_dir_all(s.dl.join("q/c")).unwrap();
    symlink("c", s.dl.join("q/b")).unwrap();
    let root = refuse(&s);
    assert_eq!(
        why(root.write_file(Path::new("q/b/x"), true).unwrap_err()),
        LinkWhy::Inside
    );
    assert!(!s.dl.join("q/c/x").exists());
}

#[test]
fn user_links_are_followed_with_the_option_and_torrent_links_never() {
    let s = scene();
    std::fs::create_dir_all(s.dl.join("q")).unwrap();
    symlink(s.outside.join("secret"), s.dl.join("q/file")).unwrap();
    let links = Links {
        follow_user: true,
        ledger: Arc::new(LinkLedger::in_memory()),
    };
    let root = Root::open(&s.dl, links, false).unwrap();
    let mut got = String::new();
    root.read_file(Path::new("q/file"))
        .unwrap()
        .read_to_string(&mut got)
        .unwrap();
    assert_eq!(got, "keep me");
    // A torrent's own link (recorded when made) is never a way through.
    std::fs::create_dir_all(s.dl.join("q/c")).unwrap();
    root.symlink(
        Path::new("q/b"),
        Path::new("c"),
        Path::new("q"),
        Path::new("q/c"),
    )
    .unwrap();
    assert_eq!(
        std::fs::read_link(s.dl.join("q/b")).unwrap(),
        Path::new("c")
    );
    assert_eq!(
        why(root.write_file(Path::new("q/b/x"), true).unwrap_err()),
        LinkWhy::TorrentLink
    );
    assert!(!s.dl.join("q/c/x").exists());
}

#[test]
fn the_ledger_outlives_a_run() {
    let s = scene();
    let path = s.dl.join("ledger");
    let a = LinkLedger::load(path.clone());
    a.record(7, 9);
    let b = LinkLedger::load(path);
    assert!(b.contains(7, 9));
    assert!(!b.contains(9, 7));
}

#[test]
fn two_torrents_cannot_compose_their_links_to_climb_out() {
    // Torrent A (name q) makes q/a/b -> ../c, a link to a shallower folder. Torrent B (the
    // same name) then wants q/a/b/l -> ../../../t, which seen from q/c climbs above `dl`.
    let s = scene();
    std::fs::create_dir_all(s.dl.join("q/c")).unwrap();
    let root = refuse(&s);
    root.symlink(
        Path::new("q/a/b"),
        Path::new("../c"),
        Path::new("q"),
        Path::new("q/c"),
    )
    .unwrap();
    let e = root
        .symlink(
            Path::new("q/a/b/l"),
            Path::new("../../../t"),
            Path::new("q"),
            Path::new("q/t"),
        )
        .unwrap_err();
    assert!(matches!(e, StorageError::Link { .. }), "{e}");
    let e = root
        .write_file(Path::new("q/a/b/l/authorized_keys"), true)
        .unwrap_err();
    assert!(matches!(e, StorageError::Link { .. }), "{e}");
    assert!(!s.dl.join("q/c/l").exists());
    assert!(!s.outside.parent().unwrap().join("t").exists());
}

#[test]
fn a_link_whose_target_leaves_the_torrent_through_another_link_is_not_made() {
    let s = scene();
    std::fs::create_dir_all(s.dl.join("q")).unwrap();
    // A user's link inside the torrent's folder, to outside.
    symlink(&s.outside, s.dl.join("q/out")).unwrap();
    let root = refuse(&s);
    let e = root
        .symlink(
            Path::new("q/l"),
            Path::new("out/secret"),
            Path::new("q"),
            Path::new("q/out/secret"),
        )
        .unwrap_err();
    assert_eq!(why(e), LinkWhy::TargetOutside);
    assert!(std::fs::symlink_metadata(s.dl.join("q/l")).is_err());
}

#[test]
fn deleting_a_tree_removes_links_and_never_what_they_point_to() {
    let s = scene();
    std::fs::create_dir_all(s.dl.join("q/sub")).unwrap();
    std::fs::write(s.dl.join("q/sub/f"), b"x").unwrap();
    symlink(&s.outside, s.dl.join("q/sub/out")).unwrap();
    symlink(s.outside.join("secret"), s.dl.join("q/secret")).unwrap();
    let root = refuse(&s);
    root.remove_tree(Path::new("q")).unwrap();
    assert!(!s.dl.join("q").exists());
    assert_eq!(std::fs::read(s.outside.join("secret")).unwrap(), b"keep me");
    // A link on the way to what is to be deleted is not followed.
    std::fs::create_dir_all(s.dl.join("r")).unwrap();
    symlink(&s.outside, s.dl.join("r/via")).unwrap();
    assert!(root.remove_file(Path::new("r/via/secret")).is_err());
    assert!(s.outside.join("secret").exists());
}

#[test]
fn copies_keep_links_as_links_and_renames_stay_beneath_both_roots() {
    let s = scene();
    std::fs::create_dir_all(s.dl.join("from/q")).unwrap();
    std::fs::write(s.dl.join("from/q/f"), b"data").unwrap();
    symlink(s.outside.join("secret"), s.dl.join("from/q/l")).unwrap();
    let root = refuse(&s);
    root.copy_tree(Path::new("from/q"), &root, Path::new("to/q"))
        .unwrap();
    assert_eq!(std::fs::read(s.dl.join("to/q/f")).unwrap(), b"data");
    assert_eq!(
        std::fs::read_link(s.dl.join("to/q/l")).unwrap(),
        s.outside.join("secret")
    );
    root.rename(Path::new("from/q"), &root, Path::new("moved/q"))
        .unwrap();
    assert!(s.dl.join("moved/q/f").exists());
    // A destination that exists is not replaced.
    assert!(root
        .rename(Path::new("moved/q"), &root, Path::new("to/q"))
        .is_err());
}

#[test]
fn paths_must_be_plain_elements() {
    let s = scene();
    let root = refuse(&s);
    for bad in ["../x", "/etc/passwd", "a/../../x", ""] {
        assert!(root.write_file(Path::new(bad), true).is_err(), "{bad}");
    }
    assert!(!s.outside.parent().unwrap().join("x").exists());
}

#[test]
fn existing_files_open_for_writing_and_new_ones_are_created_in_both_modes() {
    let s = scene();
    std::fs::create_dir_all(s.dl.join("q")).unwrap();
    std::fs::write(s.dl.join("q/old"), b"x").unwrap();
    let follow = Links {
        follow_user: true,
        ledger: Arc::new(LinkLedger::in_memory()),
    };
    for links in [Links::refuse(), follow] {
        let root = Root::open(&s.dl, links, false).unwrap();
        root.write_file(Path::new("q/old"), false).unwrap();
        root.write_file(Path::new("q/new/deep/file"), true).unwrap();
        assert!(s.dl.join("q/new/deep/file").is_file());
        std::fs::remove_dir_all(s.dl.join("q/new")).unwrap();
    }
}
