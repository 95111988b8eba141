//! Confined storage, tried as a hostile user would: crafted torrents whose BEP 47 links
//! compose across torrents, symlinks planted in the download folder, and the daemon's file
//! operations. Whatever they try, nothing outside the download folder is created, changed
//! or read, and the error names the file.

use std::collections::BTreeMap;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::craft::{multi_file, File};
use crate::daemon::{Daemon, TIMEOUT};
use crate::util::*;

/// Everything below `root`, links not followed: each path with its kind, size, mtime and
/// bytes (files) or target (links).
fn snapshot(root: &Path) -> BTreeMap<PathBuf, (String, u64, i64, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            let m = std::fs::symlink_metadata(&path).unwrap();
            let (kind, content) = if m.file_type().is_symlink() {
                let t = std::fs::read_link(&path).unwrap();
                ("link", t.into_os_string().into_encoded_bytes())
            } else if m.is_dir() {
                todo.push(path.clone());
                ("dir", Vec::new())
            } else {
                ("file", std::fs::read(&path).unwrap())
            };
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            out.insert(
                rel,
                (
                    kind.into(),
                    m.len(),
                    m.mtime_nsec() + m.mtime() * 1_000_000_000,
                    content,
                ),
            );
        }
    }
    out
}

/// A victim tree beside the download folder: a file that a hostile torrent would love to
/// overwrite, and a folder.
fn victim(d: &Dir) -> PathBuf {
    let v = d.join("victim");
    std::fs::create_dir_all(v.join("sub")).unwrap();
    std::fs::write(
        v.join("authorized_keys"),
        b"ssh-ed25519 AAAA the owner's key\n",
    )
    .unwrap();
    std::fs::write(v.join("sub/notes"), b"keep\n").unwrap();
    v
}

/// Writes a crafted torrent, and its data as plain files in `data` (the honest seed's
/// folder, where no link exists: a seed serves what the torrent says).
fn crafted(d: &Dir, file: &str, name: &str, files: &[File], data: &Path) -> PathBuf {
    let t = d.join(file);
    std::fs::write(&t, multi_file(name, files, 16384)).unwrap();
    for f in files.iter().filter(|f| f.symlink.is_none()) {
        let mut p = data.join(name);
        for c in &f.path {
            p.push(String::from_utf8_lossy(c).as_ref());
        }
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, &f.data).unwrap();
    }
    t
}

fn link(path: &[&[u8]], target: Vec<&'static str>) -> File {
    let mut f = File::new(path, Vec::new());
    f.attr = Some("l");
    f.symlink = Some(target);
    f
}

/// Two torrents named `q`. The first makes a link deep in its folder to a shallow place; the
/// second makes a link below that one whose `..`s, counted from where the first link really
/// leads, climb out of the download folder, and writes a file through it.
fn composing_pair(shape: &str) -> (Vec<File>, Vec<File>) {
    let payload = || {
        File::new(
            &[b"a", b"b", b"c", b"l", b"authorized_keys"],
            b"ssh-ed25519 AAAA the attacker's key\n".to_vec(),
        )
    };
    match shape {
        // q/a/b/c -> ../../d (a folder link); q/a/b/c/l -> ../../../victim.
        "folder link" => (
            vec![
                File::new(&[b"d", b"readme"], pseudo_random(20_000, 1)),
                link(&[b"a", b"b", b"c"], vec!["d"]),
            ],
            vec![link(&[b"a", b"b", b"c", b"l"], vec!["victim"]), payload()],
        ),
        // q/a/b/c -> ../../r, q/r -> s (a chain); then as above.
        "chain" => (
            vec![
                File::new(&[b"s", b"readme"], pseudo_random(20_000, 2)),
                link(&[b"a", b"b", b"c"], vec!["r"]),
                link(&[b"r"], vec!["s"]),
            ],
            vec![link(&[b"a", b"b", b"c", b"l"], vec!["victim"]), payload()],
        ),
        _ => unreachable!(),
    }
}

#[test]
fn two_torrents_sharing_a_name_cannot_compose_their_links_to_write_outside() {
    for shape in ["folder link", "chain"] {
        let d = Dir::new();
        let v = victim(&d);
        let before = snapshot(d.path());
        let (first, second) = composing_pair(shape);
        let a = crafted(&d, "a.torrent", "q", &first, &d.join("seed-a"));
        let b = crafted(&d, "b.torrent", "q", &second, &d.join("seed-b"));
        let mut seed_a = start_seed(&a, &d.join("seed-a"), &[]);
        let mut seed_b = start_seed(&b, &d.join("seed-b"), &[]);
        let dl = d.join("dl");

        let mut fa = start_fetch(&a, &dl, &[seed_a.addr], &[]);
        assert_eq!(fa.wait(TIMEOUT).0, Some(0), "{shape}: {}", fa.stderr());
        assert!(std::fs::symlink_metadata(dl.join("q/a/b/c"))
            .unwrap()
            .file_type()
            .is_symlink());

        let mut fb = start_fetch(&b, &dl, &[seed_b.addr], &[]);
        let (code, _) = fb.wait(TIMEOUT);
        assert_ne!(code, Some(0), "{shape}: the second torrent must fail");
        let err = fb.stderr();
        assert!(
            err.contains("`q/a/b/c/l") && err.contains("symlink") && err.contains("not "),
            "{shape}: the error names the file: {err}"
        );
        let mut after = snapshot(d.path());
        let ours = |p: &Path| {
            p.starts_with("dl")
                || p.starts_with("seed-a")
                || p.starts_with("seed-b")
                || p.extension().is_some_and(|x| x == "torrent")
        };
        after.retain(|p, _| !ours(p));
        assert_eq!(
            after, before,
            "{shape}: something outside the download folder changed"
        );
        assert_eq!(
            std::fs::read(v.join("authorized_keys")).unwrap(),
            b"ssh-ed25519 AAAA the owner's key\n"
        );
        seed_a.stop();
        seed_b.stop();
    }
}

#[test]
fn the_daemon_refuses_a_second_torrent_with_the_same_folder_and_a_composed_link() {
    let d = Dir::new();
    let v = victim(&d);
    let before = snapshot(&v);
    let (first, second) = composing_pair("folder link");
    let a = crafted(&d, "a.torrent", "q", &first, &d.join("seed-a"));
    let b = crafted(&d, "b.torrent", "q", &second, &d.join("seed-b"));
    let dl = d.join("dl");
    std::fs::create_dir_all(&dl).unwrap();
    let daemon = Daemon::start(&dl, &d.join("state"), &[]);
    let mut rpc = daemon.client();
    // The daemon's torrents find their seeds through a tracker.
    let (mut tracker, url) = crate::daemon::tracker();
    let a = retrack(&d, &a, &url, "a2.torrent");
    let b = retrack(&d, &b, &url, "b2.torrent");
    let mut seed_a = start_seed(&a, &d.join("seed-a"), &[]);
    let mut seed_b = start_seed(&b, &d.join("seed-b"), &[]);
    let ra = rpc.ok(
        "torrent-add",
        json!({"metainfo": base64(&std::fs::read(&a).unwrap())}),
    );
    let ida = ra["torrent-added"]["id"].as_u64().unwrap();
    rpc.wait_for(
        "the first torrent to finish",
        &["id", "percentDone"],
        TIMEOUT,
        |t| t.iter().any(|x| x["id"] == ida && x["percentDone"] == 1.0),
    );
    // Same folder and name while the first is in the session: refused, clearly.
    let rb = rpc.ok(
        "torrent-add",
        json!({"metainfo": base64(&std::fs::read(&b).unwrap())}),
    );
    let idb = rb["torrent-added"]["id"].as_u64().unwrap();
    let t = rpc.wait_for(
        "the second torrent's error",
        &["id", "errorString"],
        TIMEOUT,
        |t| t.iter().any(|x| x["id"] == idb && x["errorString"] != ""),
    );
    let err = t.iter().find(|x| x["id"] == idb).unwrap()["errorString"].to_string();
    assert!(
        err.contains("already the folder of another torrent"),
        "{err}"
    );
    // The first removed (its data kept), the second started again: its link is refused.
    rpc.ok("torrent-remove", json!({"ids": [ida]}));
    rpc.ok("torrent-start", json!({"ids": [idb]}));
    let t = rpc.wait_for(
        "the second torrent's link error",
        &["id", "errorString"],
        TIMEOUT,
        |t| {
            t.iter().any(|x| {
                x["id"] == idb && x["errorString"].as_str().unwrap_or("").contains("symlink")
            })
        },
    );
    let err = t.iter().find(|x| x["id"] == idb).unwrap()["errorString"].to_string();
    assert!(err.contains("`q/a/b/c/l"), "{err}");
    assert_eq!(snapshot(&v), before, "the victim tree changed");
    seed_a.stop();
    seed_b.stop();
    tracker.stop();
}

/// `t` again with `url` as its tracker, written to `out`.
fn retrack(d: &Dir, t: &Path, url: &str, out: &str) -> PathBuf {
    let bytes = std::fs::read(t).unwrap();
    let mut v: serde_bencode::value::Value = serde_bencode::from_bytes(&bytes).unwrap();
    if let serde_bencode::value::Value::Dict(m) = &mut v {
        m.insert(
            b"announce".to_vec(),
            serde_bencode::value::Value::Bytes(url.as_bytes().to_vec()),
        );
    }
    let p = d.join(out);
    std::fs::write(&p, serde_bencode::to_bytes(&v).unwrap()).unwrap();
    p
}

pub fn base64(bytes: &[u8]) -> String {
    crate::daemon::base64_encode(bytes)
}

/// A torrent `q` of two files, each of whole pieces: `q/one` and `q/two`.
fn two_files(d: &Dir) -> (PathBuf, Vec<u8>, Vec<u8>) {
    let one = pseudo_random(64 * 1024, 11);
    let two = pseudo_random(64 * 1024, 12);
    let files = vec![
        File::new(&[b"one"], one.clone()),
        File::new(&[b"two"], two.clone()),
    ];
    let t = crafted(d, "q.torrent", "q", &files, &d.join("src"));
    (t, one, two)
}

#[test]
fn a_planted_link_is_not_followed_without_the_option_and_is_with_it() {
    let d = Dir::new();
    let v = victim(&d);
    let (t, one, two) = two_files(&d);
    let seed = start_seed(&t, &d.join("src"), &[]);

    // A link at a file's path, to a file outside: not truncated, not written, not read.
    let dl = d.join("dl");
    std::fs::create_dir_all(dl.join("q")).unwrap();
    symlink(v.join("authorized_keys"), dl.join("q/two")).unwrap();
    let before = snapshot(&v);
    let mut f = start_fetch(&t, &dl, &[seed.addr], &[]);
    let (code, _) = f.wait(TIMEOUT);
    assert_ne!(code, Some(0));
    assert!(
        f.stderr()
            .contains("`q/two` resolves outside the download folder through a symlink"),
        "{}",
        f.stderr()
    );
    assert_eq!(snapshot(&v), before, "the link's target changed");

    // A link on the path, to a folder outside: nothing created there.
    let dl2 = d.join("dl2");
    std::fs::create_dir_all(&dl2).unwrap();
    symlink(v.join("sub"), dl2.join("q")).unwrap();
    let mut f = start_fetch(&t, &dl2, &[seed.addr], &[]);
    assert_ne!(f.wait(TIMEOUT).0, Some(0));
    assert!(f.stderr().contains("`q/"), "{}", f.stderr());
    assert_eq!(
        snapshot(&v),
        before,
        "something was created through the folder link"
    );

    // With --follow-symlinks, the user's link is written through as before.
    let target = d.join("elsewhere/two");
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    std::fs::write(&target, b"").unwrap();
    let dl3 = d.join("dl3");
    std::fs::create_dir_all(dl3.join("q")).unwrap();
    symlink(&target, dl3.join("q/two")).unwrap();
    let mut f = start_fetch(&t, &dl3, &[seed.addr], &["--follow-symlinks"]);
    assert_eq!(f.wait(TIMEOUT).0, Some(0), "{}", f.stderr());
    assert_eq!(std::fs::read(&target).unwrap(), two);
    assert_eq!(std::fs::read(dl3.join("q/one")).unwrap(), one);
}

#[test]
fn a_seed_never_reads_through_a_planted_link_unless_told_to() {
    let d = Dir::new();
    let (t, one, two) = two_files(&d);
    // The seed's folder: `one` is real, `two` a link to a copy kept elsewhere.
    let kept = d.join("kept/two");
    std::fs::create_dir_all(kept.parent().unwrap()).unwrap();
    std::fs::write(&kept, &two).unwrap();
    std::fs::remove_file(d.join("src/q/two")).unwrap();
    symlink(&kept, d.join("src/q/two")).unwrap();

    let mut seed = start_seed(&t, &d.join("src"), &[]);
    let mut f = start_fetch(&t, &d.join("dst"), &[seed.addr], &[]);
    // It gets `one` and never a byte of `two`.
    let deadline = Instant::now() + TIMEOUT;
    while std::fs::read(d.join("dst/q/one")).ok().as_deref() != Some(&one[..]) {
        assert!(
            Instant::now() < deadline,
            "never got the real file: {}",
            f.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    f.stop();
    let (_, _) = seed.stop();
    assert_eq!(
        seed.transfer_counts().0,
        one.len() as u64,
        "only `one` was uploaded"
    );
    assert_ne!(std::fs::read(d.join("dst/q/two")).unwrap(), two);

    // Told to, it serves the linked file too.
    let mut seed = start_seed(&t, &d.join("src"), &["--follow-symlinks"]);
    let mut f = start_fetch(&t, &d.join("dst2"), &[seed.addr], &[]);
    assert_eq!(f.wait(TIMEOUT).0, Some(0), "{}", f.stderr());
    assert_eq!(std::fs::read(d.join("dst2/q/two")).unwrap(), two);
    seed.stop();
}

#[test]
fn the_daemon_streams_no_file_through_a_planted_link() {
    let d = Dir::new();
    let v = victim(&d);
    let (t, _, _) = two_files(&d);
    let dl = d.join("dl");
    std::fs::create_dir_all(dl.join("q")).unwrap();
    std::fs::copy(d.join("src/q/one"), dl.join("q/one")).unwrap();
    symlink(v.join("authorized_keys"), dl.join("q/two")).unwrap();
    let daemon = Daemon::start(&dl, &d.join("state"), &[]);
    let mut rpc = daemon.client();
    let r = rpc.ok(
        "torrent-add",
        json!({"metainfo": base64(&std::fs::read(&t).unwrap())}),
    );
    let hash = r["torrent-added"]["hashString"]
        .as_str()
        .unwrap()
        .to_string();
    let get = |index: u32| {
        crate::daemon::http(
            daemon.rpc,
            &format!("GET /stream/{hash}/{index} HTTP/1.1\nHost: {}", daemon.rpc),
            b"",
        )
    };
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let a = get(1);
        if a.status == 403 {
            let text = String::from_utf8_lossy(&a.body).to_string();
            assert!(
                text.contains("`q/two`") && text.contains("symlink"),
                "{text}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never refused: {} {:?}",
            a.status,
            String::from_utf8_lossy(&a.body)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        std::fs::read(v.join("authorized_keys")).unwrap(),
        b"ssh-ed25519 AAAA the owner's key\n"
    );
}

#[test]
fn set_location_into_its_own_folder_is_refused_and_rpc_answers_during_a_long_move() {
    let d = Dir::alone();
    let dl = d.join("dl");
    std::fs::create_dir_all(dl.join("a")).unwrap();
    // Another filesystem inside the download folder, so that a move there is a copy.
    let other = dl.join("other");
    std::fs::create_dir_all(&other).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1200m", "tmpfs"])
        .arg(&other)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        mounted,
        "this test mounts a tmpfs (it runs as root, as CI does)"
    );
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
    let _unmount = Unmount(other.clone());

    // A complete multi-file torrent of 600 MiB in dl/a.
    let src = d.join("src");
    for i in 0..6 {
        let p = src.join(format!("big/part{i}"));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let chunk = pseudo_random(1 << 20, i as u64);
        let mut f = std::fs::File::create(&p).unwrap();
        for _ in 0..100 {
            std::io::Write::write_all(&mut f, &chunk).unwrap();
        }
    }
    let t = make_torrent(&d, &src.join("big"), 1 << 20, &[]);
    std::process::Command::new("cp")
        .arg("-r")
        .arg(src.join("big"))
        .arg(dl.join("a"))
        .status()
        .unwrap();
    let daemon = Daemon::start(&dl, &d.join("state"), &[]);
    let mut rpc = daemon.client();
    let r = rpc.ok(
        "torrent-add",
        json!({"metainfo": base64(&std::fs::read(&t).unwrap()), "download-dir": dl.join("a").to_str().unwrap()}),
    );
    let id = r["torrent-added"]["id"].as_u64().unwrap();
    rpc.wait_for("the check", &["id", "percentDone"], TIMEOUT, |t| {
        t[0]["percentDone"] == 1.0
    });

    // Into a folder inside its own: an error, and no folder made.
    let inside = dl.join("a/big/sub");
    let v = rpc.call(
        "torrent-set-location",
        json!({"ids": [id], "location": inside.to_str().unwrap(), "move": true}),
    );
    assert_ne!(v["result"], "success", "{v}");
    assert!(
        v["result"].as_str().unwrap().contains("inside itself"),
        "{v}"
    );
    assert!(!inside.exists());

    // A move to the other filesystem (a copy) while session-get is asked again and again.
    let addr = daemon.rpc;
    let mover = std::thread::spawn(move || {
        let mut rpc = crate::daemon::Rpc::new(addr);
        let started = Instant::now();
        let v = rpc.call(
            "torrent-set-location",
            json!({"ids": [id], "location": other.to_str().unwrap(), "move": true}),
        );
        (v, started.elapsed())
    });
    let mut slowest = Duration::ZERO;
    let mut asked = 0;
    while !mover.is_finished() {
        let t0 = Instant::now();
        rpc.ok("session-get", json!({}));
        slowest = slowest.max(t0.elapsed());
        asked += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    let (v, took) = mover.join().unwrap();
    assert_eq!(v["result"], "success", "{v}");
    println!("move took {took:?}; session-get asked {asked} times meanwhile, slowest {slowest:?}");
    assert!(asked >= 3, "the move was too quick to tell ({took:?})");
    assert!(
        slowest < Duration::from_millis(100),
        "session-get took {slowest:?} during the move"
    );
    assert!(!dl.join("a/big").exists());
    assert_same_file(&src.join("big/part5"), &dl.join("other/big/part5"));
}

#[test]
fn an_add_by_url_from_a_server_that_never_answers_leaves_the_rpc_answering() {
    let d = Dir::new();
    let dl = d.join("dl");
    std::fs::create_dir_all(&dl).unwrap();
    let daemon = Daemon::start(&dl, &d.join("state"), &[]);
    // A server that accepts and never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/x.torrent", silent.local_addr().unwrap());
    let held = std::thread::spawn(move || {
        let mut conns = Vec::new();
        silent.set_nonblocking(true).unwrap();
        let until = Instant::now() + Duration::from_secs(8);
        while Instant::now() < until {
            if let Ok((c, _)) = silent.accept() {
                conns.push(c);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        conns.len()
    });
    let mut rpc = daemon.client();
    rpc.ok("session-get", json!({}));
    // The add, sent on a connection of its own and left waiting.
    let body =
        serde_json::to_vec(&json!({"method": "torrent-add", "arguments": {"filename": url}}))
            .unwrap();
    let sid = crate::daemon::http(
        daemon.rpc,
        &format!("POST /transmission/rpc HTTP/1.1\nHost: {}", daemon.rpc),
        b"{}",
    )
    .header("x-transmission-session-id")
    .unwrap()
    .to_string();
    let mut adder = std::net::TcpStream::connect(daemon.rpc).unwrap();
    std::io::Write::write_all(
        &mut adder,
        format!(
            "POST /transmission/rpc HTTP/1.1\r\nHost: {}\r\nX-Transmission-Session-Id: {sid}\r\nContent-Length: {}\r\n\r\n",
            daemon.rpc,
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    std::io::Write::write_all(&mut adder, &body).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let t0 = Instant::now();
        rpc.ok("session-get", json!({}));
        rpc.ok("torrent-get", json!({"fields": ["id", "name"]}));
        slowest = slowest.max(t0.elapsed());
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("session-get and torrent-get during the add: slowest {slowest:?}");
    assert!(slowest < Duration::from_millis(100), "{slowest:?}");
    assert!(
        held.join().unwrap() >= 1,
        "the add never reached the server"
    );
}
