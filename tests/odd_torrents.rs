//! Torrents with odd names, loaded the way mainstream clients load them. Each crafted
//! multi-file torrent is fetched from libtorrent (which sanitizes names its own way and
//! stores the seed's files where it chooses) and from `share seed`, and must land at the
//! paths of share's documented rule (README, "Safety on outside input"), with nothing
//! outside the download folder. Also BEP 47: padding files never reach the disk,
//! executables and in-folder symlinks are made, a symlink that would escape is not.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use share_core::Metainfo;

use crate::craft::{multi_file, File};
use crate::util::*;

const TIMEOUT: Duration = Duration::from_secs(90);

/// Where a file that share does not create is "stored".
const NOT_ON_DISK: &str = "";

/// A crafted torrent and where share must store each of its files (relative to the
/// content folder, in torrent order; [`NOT_ON_DISK`] for a file that is skipped).
struct Case {
    name: &'static str,
    files: Vec<File>,
    stored: Vec<String>,
}

fn case(name: &'static str, files: &[(&[&[u8]], usize)], stored: &[&str]) -> Case {
    let files = files
        .iter()
        .enumerate()
        .map(|(i, (path, len))| File::new(path, pseudo_random(*len, 1000 + i as u64)))
        .collect();
    Case {
        name,
        files,
        stored: stored.iter().map(|s| s.to_string()).collect(),
    }
}

/// One case per kind of odd name the sanitizing rule handles.
fn cases() -> Vec<Case> {
    let long_txt = format!("{}.txt", "x".repeat(300));
    let long_bare = "y".repeat(300);
    let mut long = case(
        "long",
        &[
            (&[long_txt.as_bytes()], 20_000),
            (&[long_bare.as_bytes()], 7_001),
        ],
        &[],
    );
    long.stored = vec![format!("{}.txt", "x".repeat(236)), "y".repeat(240)];
    vec![
        case(
            "separators",
            &[
                (&[b"dir", b"a/b.txt"], 20_000),
                (&[b"back\\slash.bin"], 7_001),
                (&[b"/abs"], 333),
            ],
            &["dir/a_b.txt", "back_slash.bin", "_abs"],
        ),
        long,
        case(
            "empty-and-dots",
            &[
                (&[b"", b"a.txt"], 20_000),
                (&[b".", b"sub", b"", b"b.txt"], 7_001),
                (&[b"..", b"..", b"c.txt"], 333),
            ],
            &["a.txt", "sub/b.txt", "c.txt"],
        ),
        case(
            "duplicates",
            &[
                (&[b"same.txt"], 20_000),
                (&[b"same.txt"], 7_001),
                (&[b"Same.TXT"], 333),
                (&[b"dir"], 4_000),
                (&[b"dir", b"f"], 5_000),
            ],
            &["same.txt", "same.1.txt", "Same.2.TXT", "dir.1", "dir/f"],
        ),
        case(
            "windows-names",
            &[
                (&[b"CON"], 20_000),
                (&[b"nul.txt"], 7_001),
                (&[b"aux", b"com1.log"], 333),
            ],
            &["_CON", "_nul.txt", "_aux/_com1.log"],
        ),
        case(
            "control-characters",
            &[
                (&[b"tab\there"], 20_000),
                (&[b"bell\x07.txt"], 7_001),
                (&["rtl\u{202E}gpj.exe".as_bytes()], 333),
            ],
            &["tab_here", "bell_.txt", "rtl_gpj.exe"],
        ),
    ]
}

#[test]
fn odd_names_fetched_from_libtorrent_land_at_the_sanitized_paths() {
    if !require_libtorrent() {
        return;
    }
    let d = Dir::new();
    for c in cases() {
        let work = d.join(c.name);
        let t = write_torrent(&work, &c.files, c.name);
        for (f, at) in c.files.iter().zip(libtorrent_paths(&t)) {
            write(&work.join("seed").join(at), &f.data);
        }
        let mut seed = lt_seed(&t, &work.join("seed"));
        fetch_and_check(&c, &t, &work.join("fetched"), &mut seed);
    }
}

#[test]
fn odd_names_fetched_from_share_land_at_the_sanitized_paths() {
    let d = Dir::new();
    for c in cases() {
        let work = d.join(c.name);
        let t = write_torrent(&work, &c.files, c.name);
        for (f, at) in c.files.iter().zip(&c.stored) {
            write(&work.join("seed").join(c.name).join(at), &f.data);
        }
        let mut seed = start_seed(&t, &work.join("seed"), &[]);
        fetch_and_check(&c, &t, &work.join("fetched"), &mut seed);
    }
}

#[test]
fn odd_padding_files_of_a_libtorrent_hybrid_never_reach_the_disk() {
    if !require_libtorrent() {
        return;
    }
    let d = Dir::new();
    d.data_file("src/padded/a.bin", 20_000, 1);
    d.data_file("src/padded/b.txt", 7_001, 2);
    d.data_file("src/padded/sub/c.bin", 2 * 16384, 3);
    d.data_file("src/padded/z.bin", 1, 4);
    let t = d.join("padded.torrent");
    ok(Command::new(python())
        .arg(peer_script("lt_create.py"))
        .arg(d.join("src/padded"))
        .arg(&t));
    let m = Metainfo::from_bytes(&std::fs::read(&t).unwrap()).unwrap();
    let pads = m.info.files.iter().filter(|f| f.padding).count();
    assert!(pads >= 3, "libtorrent padded {pads} files");
    assert!(
        m.info_bytes.windows(11).any(|w| w == b"9:file tree"),
        "a hybrid torrent"
    );

    let mut seed = lt_seed(&t, &d.join("src"));
    let out = d.join("fetched/out");
    let mut fetch = start_fetch(&t, &out, &[seed.addr], &[]);
    let (code, _) = fetch.wait(TIMEOUT);
    assert_eq!(code, Some(0), "{}\nseed: {}", fetch.stderr(), seed.stderr());
    seed.stop();
    assert_eq!(names(&d.join("fetched")), ["out"]);
    let diff = run(Command::new("diff")
        .arg("-r")
        .arg(d.join("src/padded"))
        .arg(out.join("padded")));
    assert!(
        diff.status.success(),
        "{}",
        String::from_utf8_lossy(&diff.stdout)
    );
    let stored = tree(&out);
    assert!(
        stored.iter().all(|p| !p.contains(".pad")),
        "a padding file on disk: {stored:?}"
    );
}

/// `run.sh` is executable (`x`), `bin/to-data` a symlink to `data.bin` (`l`), and
/// `escape` a symlink whose target leaves the torrent's folder.
fn bep47_case() -> Case {
    let mut c = case(
        "attributes",
        &[
            (&[b"bin", b"run.sh"], 3_000),
            (&[b"data.bin"], 20_000),
            (&[b"bin", b"to-data"], 0),
            (&[b"escape"], 0),
            (&[b"last.txt"], 333),
        ],
        &[
            "bin/run.sh",
            "data.bin",
            "bin/to-data",
            NOT_ON_DISK,
            "last.txt",
        ],
    );
    c.files[0].attr = Some("x");
    c.files[2].attr = Some("l");
    c.files[2].symlink = Some(vec!["data.bin"]);
    c.files[3].attr = Some("l");
    c.files[3].symlink = Some(vec!["..", "..", "etc", "passwd"]);
    c
}

#[test]
fn odd_bep47_executables_and_symlinks_are_made_and_escaping_links_are_not() {
    let libtorrent = require_libtorrent();
    let d = Dir::new();
    let c = bep47_case();
    let t = write_torrent(&d.join("t"), &c.files, c.name);
    let real = |f: &&File| f.symlink.is_none();
    for (f, at) in c.files.iter().zip(&c.stored).filter(|(f, _)| real(f)) {
        write(&d.join("share-seed").join(c.name).join(at), &f.data);
    }
    let mut sources = vec![("share", start_seed(&t, &d.join("share-seed"), &[]))];
    if libtorrent {
        let at = libtorrent_paths(&t);
        for (f, at) in c.files.iter().zip(at).filter(|(f, _)| real(f)) {
            write(&d.join("lt-seed").join(at), &f.data);
        }
        sources.push(("libtorrent", lt_seed(&t, &d.join("lt-seed"))));
    }
    for (from, mut seed) in sources {
        let parent = d.join(&format!("from-{from}"));
        let fetch_stderr = fetch_and_check(&c, &t, &parent, &mut seed);
        let content = parent.join("out").join(c.name);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(content.join("bin/run.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o111,
            0o111 & !umask(),
            "{from}: run.sh mode {mode:o}"
        );
        let data_mode = std::fs::metadata(content.join("data.bin"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(data_mode & 0o111, 0, "{from}");
        let link = content.join("bin/to-data");
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            Path::new("../data.bin"),
            "{from}"
        );
        assert_eq!(std::fs::read(&link).unwrap(), c.files[1].data, "{from}");
        assert!(
            fetch_stderr.contains("skipped the symlink `escape`"),
            "{from}: {fetch_stderr}"
        );
    }
}

/// Writes the crafted torrent into `work/t.torrent`.
fn write_torrent(work: &Path, files: &[File], name: &str) -> std::path::PathBuf {
    let t = work.join("t.torrent");
    write(&t, &multi_file(name, files, 16384));
    t
}

fn write(path: &Path, data: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, data).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// Where libtorrent stores each file of `torrent`, relative to its save folder.
fn libtorrent_paths(torrent: &Path) -> Vec<String> {
    let out = ok(Command::new(python())
        .arg(peer_script("lt_paths.py"))
        .arg(torrent));
    let v: Value = serde_json::from_str(&out).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_owned())
        .collect()
}

/// A libtorrent seed of `torrent` with its data under `dir`, once it has checked the data.
fn lt_seed(torrent: &Path, dir: &Path) -> Proc {
    let mut seed = Proc::start(
        Command::new(python())
            .arg(peer_script("lt_peer.py"))
            .arg("seed")
            .arg(torrent)
            .arg(dir),
    );
    assert!(
        seed.wait_line(|l| l == "seeding", TIMEOUT).is_some(),
        "libtorrent did not seed {}: {}",
        torrent.display(),
        seed.stderr()
    );
    seed
}

/// Fetches `torrent` from `seed` into `parent/out`, stops the seed, and checks that the
/// files are at `c.stored` with their data and that nothing else is in `parent`. Returns
/// the fetch's standard error.
fn fetch_and_check(c: &Case, torrent: &Path, parent: &Path, seed: &mut Proc) -> String {
    let out = parent.join("out");
    let mut fetch = start_fetch(torrent, &out, &[seed.addr], &[]);
    let (code, _) = fetch.wait(TIMEOUT);
    assert_eq!(
        code,
        Some(0),
        "{}: fetch: {}\nseed: {}",
        c.name,
        fetch.stderr(),
        seed.stderr()
    );
    seed.stop();
    assert_eq!(
        names(parent),
        ["out"],
        "{}: beside the download folder",
        c.name
    );
    assert_eq!(names(&out), [c.name], "{}: in the download folder", c.name);
    let content = out.join(c.name);
    let want: BTreeSet<String> = c
        .stored
        .iter()
        .filter(|s| *s != NOT_ON_DISK)
        .cloned()
        .collect();
    assert_eq!(tree(&content), want, "{}", c.name);
    for (f, at) in c.files.iter().zip(&c.stored) {
        if f.symlink.is_none() && at != NOT_ON_DISK {
            let got = std::fs::read(content.join(at)).unwrap();
            assert!(got == f.data, "{}: {at} has other data", c.name);
        }
    }
    fetch.stderr()
}

/// The names in a folder, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Every file and symlink below `root` (links not followed), as `/`-joined relative paths.
fn tree(root: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut todo = vec![root.to_owned()];
    while let Some(dir) = todo.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            if std::fs::symlink_metadata(&path).unwrap().is_dir() {
                todo.push(path);
            } else {
                let rel = path.strip_prefix(root).unwrap();
                out.insert(rel.to_string_lossy().into_owned());
            }
        }
    }
    out
}

/// This process's umask (the fetch inherits it).
fn umask() -> u32 {
    let out = ok(Command::new("sh").args(["-c", "umask"]));
    u32::from_str_radix(out.trim(), 8).unwrap()
}
