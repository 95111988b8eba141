//! BitTorrent v2 and hybrid torrents (BEP 52) against libtorrent 2.0.8: each reads the
//! other's torrents with the same info-hashes.

use serde_json::Value;

use crate::util::*;

/// A folder with files smaller and larger than a piece (16 KiB), one of exactly a piece,
/// an empty one, and a nested folder.
fn folder(d: &Dir) -> std::path::PathBuf {
    d.data_file("content/a_small.txt", 1000, 1);
    d.data_file("content/b_mid.bin", 10_000, 2);
    d.data_file("content/c_big.bin", 200_000, 3);
    d.data_file("content/d_empty", 0, 4);
    d.data_file("content/sub/e_exact.bin", 16384, 5);
    d.data_file("content/sub/f_two.bin", 32_771, 6);
    d.join("content")
}

fn libtorrent_view(torrent: &std::path::Path) -> Value {
    serde_json::from_str(&ok(std::process::Command::new(python())
        .arg(peer_script("lt_info.py"))
        .arg(torrent)))
    .unwrap()
}

fn share_view(torrent: &std::path::Path) -> Value {
    serde_json::from_str(&ok(share().args(["inspect", "--json"]).arg(torrent))).unwrap()
}

#[test]
fn share_reads_libtorrents_v2_and_hybrid_torrents_with_its_hashes() {
    if !require_libtorrent() {
        return;
    }
    let d = Dir::new();
    let content = folder(&d);
    for format in ["v2", "hybrid"] {
        let t = d.join(&format!("lt-{format}.torrent"));
        ok(std::process::Command::new(python())
            .arg(peer_script("lt_create.py"))
            .arg(&content)
            .arg(&t)
            .args(["--piece-length", "16384", "--format", format]));
        let (lt, ours) = (libtorrent_view(&t), share_view(&t));
        assert_eq!(ours["info_hash_v2"], lt["info_hash_v2"], "{format}");
        assert_eq!(ours["info_hash"], lt["info_hash"], "{format}");
        assert!(ours["info_hash_v2"].is_string(), "{format}: {ours}");
        assert_eq!(ours["info_hash"].is_null(), format == "v2");
        assert_eq!(ours["files"], lt["files"], "{format}");
        assert_eq!(ours["piece_count"], lt["piece_count"], "{format}");
    }
}

#[test]
fn libtorrent_reads_shares_v2_and_hybrid_torrents_with_the_same_hashes() {
    if !require_libtorrent() {
        return;
    }
    let d = Dir::new();
    let content = folder(&d);
    for format in ["v2", "hybrid"] {
        let t = d.join(&format!("share-{format}.torrent"));
        let out = ok(share()
            .arg("create")
            .arg(&content)
            .args([
                "--piece-length",
                "16384",
                "--no-date",
                "--format",
                format,
                "-o",
            ])
            .arg(&t));
        let lines: Vec<&str> = out.lines().collect();
        let n = lines.len();
        assert!(lines[n - 1].starts_with("magnet: magnet:?"), "{out}");
        assert!(lines[n - 2].starts_with("info-hash-v2: "), "{out}");
        let v2 = lines[n - 2]["info-hash-v2: ".len()..].to_string();
        assert_eq!(v2.len(), 64);
        assert_eq!(
            lines[n - 3].starts_with("info-hash: "),
            format == "hybrid",
            "{out}"
        );
        assert!(lines[n - 1].contains(&format!("xt=urn:btmh:1220{v2}")));
        // libtorrent's own torrent of the same folder has the same hashes.
        let theirs = d.join(&format!("lt-{format}.torrent"));
        ok(std::process::Command::new(python())
            .arg(peer_script("lt_create.py"))
            .arg(&content)
            .arg(&theirs)
            .args(["--piece-length", "16384", "--format", format]));
        let (lt_ours, lt_theirs) = (libtorrent_view(&t), libtorrent_view(&theirs));
        assert_eq!(lt_ours["info_hash_v2"], Value::from(v2), "{format}");
        assert_eq!(
            lt_ours["info_hash_v2"], lt_theirs["info_hash_v2"],
            "{format}"
        );
        assert_eq!(lt_ours["info_hash"], lt_theirs["info_hash"], "{format}");
        assert_eq!(lt_ours["files"], lt_theirs["files"], "{format}");
    }
    // The default stays v1, mktorrent's hash.
    let out = ok(share()
        .arg("create")
        .arg(&content)
        .args(["--no-date", "-o"])
        .arg(d.join("v1.torrent")));
    assert!(!out.contains("info-hash-v2"), "{out}");
}

#[test]
fn inspect_reads_a_magnet_link() {
    let link = "magnet:?xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a\
        &xt=urn:btmh:1220caf1e1c30e81cb361b9ee167c4aa64228a7fa4fa9f6105232b28ad099f3a302e\
        &dn=a+b&tr=http%3A%2F%2F127.0.0.1%3A1%2Fannounce&x.pe=127.0.0.1:7000&ws=http%3A%2F%2F127.0.0.1%3A2%2F";
    let v: Value = serde_json::from_str(&ok(share().args(["inspect", "--json", link]))).unwrap();
    assert_eq!(v["info_hash"], "c12fe1c06bba254a9dc9f519b335aa7c1367a88a");
    assert_eq!(
        v["info_hash_v2"],
        "caf1e1c30e81cb361b9ee167c4aa64228a7fa4fa9f6105232b28ad099f3a302e"
    );
    assert_eq!(v["name"], "a b");
    assert_eq!(v["trackers"][0], "http://127.0.0.1:1/announce");
    assert_eq!(v["peers"][0], "127.0.0.1:7000");
    assert_eq!(v["web_seeds"][0], "http://127.0.0.1:2/");
    let human = ok(share().args(["inspect", link]));
    assert!(human.contains("info-hash-v2: caf1e1c3"), "{human}");
    let bad = run(share().args(["inspect", "magnet:?xt=urn:btmh:1220abc"]));
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("1220"),
        "a clear error"
    );
}

fn same_tree(a: &std::path::Path, b: &std::path::Path) {
    let out = std::process::Command::new("diff")
        .arg("-r")
        .arg(a)
        .arg(b)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} and {} differ: {}",
        a.display(),
        b.display(),
        String::from_utf8_lossy(&out.stdout)
    );
}

const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

fn lt_create(content: &std::path::Path, out: &std::path::Path, format: &str) -> Value {
    ok(std::process::Command::new(python())
        .arg(peer_script("lt_create.py"))
        .arg(content)
        .arg(out)
        .args(["--piece-length", "16384", "--format", format]));
    libtorrent_view(out)
}

fn lt(mode: &str, t: &std::path::Path, dir: &std::path::Path, extra: &[&str]) -> Proc {
    std::fs::create_dir_all(dir).unwrap();
    let mut p = Proc::start(
        std::process::Command::new(python())
            .arg(peer_script("lt_peer.py"))
            .arg(mode)
            .arg(t)
            .arg(dir)
            .args(["--timeout", "200"])
            .args(extra),
    );
    if mode == "seed" {
        assert!(
            p.wait_line(|l| l == "seeding", TIMEOUT).is_some(),
            "libtorrent did not seed: {}",
            p.stderr()
        );
    }
    p
}

#[test]
fn share_fetches_v2_and_hybrid_torrents_from_libtorrent_by_torrent_and_by_magnet() {
    if !require_libtorrent() {
        return;
    }
    let d = Dir::new();
    let content = folder(&d);
    for format in ["v2", "hybrid"] {
        let t = d.join(&format!("lt-{format}.torrent"));
        let view = lt_create(&content, &t, format);
        let mut seed = lt("seed", &t, d.path(), &[]);
        let v2 = view["info_hash_v2"].as_str().unwrap().to_string();
        let mut sources = vec![("torrent", t.to_str().unwrap().to_string())];
        sources.push((
            "btmh magnet",
            format!("magnet:?xt=urn:btmh:1220{v2}&dn=content&x.pe={}", seed.addr),
        ));
        if let Some(v1) = view["info_hash"].as_str() {
            sources.push((
                "btih magnet",
                format!("magnet:?xt=urn:btih:{v1}&dn=content&x.pe={}", seed.addr),
            ));
        }
        for (how, source) in sources {
            let dst = d.join(&format!("dst-{format}-{}", how.replace(' ', "-")));
            let mut fetch = start_fetch_of(&source, &dst, &[seed.addr], &[]);
            let (code, _) = fetch.wait(TIMEOUT);
            assert_eq!(
                code,
                Some(0),
                "{format} by {how}: {}\nlibtorrent: {}",
                fetch.stderr(),
                seed.stderr()
            );
            same_tree(&content, &dst.join("content"));
        }
        seed.stop();
    }
}

#[test]
fn libtorrent_fetches_shares_v2_and_hybrid_torrents_from_a_share_seed() {
    if !require_libtorrent() {
        return;
    }
    let d = Dir::new();
    let content = folder(&d);
    for format in ["v2", "hybrid"] {
        let t = d.join(&format!("share-{format}.torrent"));
        ok(share()
            .arg("create")
            .arg(&content)
            .args([
                "--piece-length",
                "16384",
                "--format",
                format,
                "--quiet",
                "-o",
            ])
            .arg(&t));
        let mut seed = Proc::start(
            share()
                .env("SHARE_LOG", "share_engine=debug")
                .arg("seed")
                .arg(&t)
                .arg("-d")
                .arg(d.path())
                .args(["--listen", "127.0.0.1:0"]),
        );
        let dst = d.join(&format!("lt-{format}"));
        let mut fetch = lt("fetch", &t, &dst, &["--peer", &seed.addr.to_string()]);
        assert!(
            fetch.wait_line(|l| l == "done", TIMEOUT).is_some(),
            "libtorrent did not fetch the {format} torrent: {}\nshare seed: {}",
            fetch.stderr(),
            seed.stderr()
        );
        same_tree(&content, &dst.join("content"));
        fetch.stop();
        seed.stop();
        // A v2-only torrent's connection is in the v2 swarm; libtorrent takes the hybrid
        // through its v1 hash (encrypted, it does not upgrade): the v1 view serves it.
        let want = if format == "v2" {
            "swarm=\"v2\""
        } else {
            "swarm=\"v1\""
        };
        assert!(
            seed.stderr()
                .lines()
                .any(|l| l.contains("connected") && l.contains(want)),
            "{format}: {}",
            seed.stderr()
        );
    }
}

/// Bytes each peer sent a fetch, from its `peer totals` debug lines.
fn received_by_peer(stderr: &str) -> Vec<(String, u64)> {
    stderr
        .lines()
        .filter(|l| l.contains("peer totals"))
        .filter_map(|l| {
            let peer = l
                .split("peer=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .to_string();
            let n = l
                .split("received=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()?;
            Some((peer, n))
        })
        .collect()
}

#[test]
fn a_share_leecher_takes_a_hybrid_from_a_share_seed_and_a_libtorrent_seed_at_once() {
    if !require_libtorrent() {
        return;
    }
    let d = Dir::new();
    d.data_file("content/big.bin", 6 << 20, 9);
    d.data_file("content/small.bin", 100_000, 10);
    let content = d.join("content");
    let t = d.join("hybrid.torrent");
    lt_create(&content, &t, "hybrid");
    let share_seed = start_seed(&t, d.path(), &["--max-upload-rate", "1M"]);
    let lt_seed = lt("seed", &t, d.path(), &["--upload-rate", "1048576"]);
    let dst = d.join("dst");
    let mut fetch = Proc::start(
        share()
            .env("SHARE_LOG", "share_engine=debug")
            .arg("fetch")
            .arg(&t)
            .arg("-o")
            .arg(&dst)
            .args(["--listen", "127.0.0.1:0", "--peer"])
            .arg(share_seed.addr.to_string())
            .arg("--peer")
            .arg(lt_seed.addr.to_string()),
    );
    let (code, _) = fetch.wait(TIMEOUT);
    assert_eq!(code, Some(0), "{}", fetch.stderr());
    same_tree(&content, &dst.join("content"));
    let got = received_by_peer(&fetch.stderr());
    println!("received by peer: {got:?}");
    for seed in [share_seed.addr, lt_seed.addr] {
        let n: u64 = got
            .iter()
            .filter(|(p, _)| *p == seed.to_string())
            .map(|(_, n)| n)
            .sum();
        assert!(n > 1 << 20, "{seed} sent only {n} bytes: {got:?}");
    }
}

#[test]
fn a_peer_sending_one_bad_block_of_a_v2_torrent_is_banned_and_the_fetch_completes() {
    use bytes::BytesMut;
    use share_core::wire::{Handshake, Message};
    use std::io::{Read, Write};
    let d = Dir::new();
    let file = d.data_file("src/one.bin", 1 << 20, 77);
    let t = d.join("one.torrent");
    let out = ok(share()
        .arg("create")
        .arg(&file)
        .args([
            "--piece-length",
            "65536",
            "--format",
            "v2",
            "--no-date",
            "-o",
        ])
        .arg(&t));
    let v2 = out
        .lines()
        .find_map(|l| l.strip_prefix("info-hash-v2: "))
        .unwrap()
        .to_string();
    let short = share_core::InfoHash(hex::decode(&v2[..40]).unwrap().try_into().unwrap());
    let data = std::fs::read(&file).unwrap();

    // A liar: it has everything, and the first block it sends is wrong.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let liar = listener.local_addr().unwrap();
    let served = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let count = served.clone();
    std::thread::spawn(move || {
        let Some(mut s) = accept_plaintext(&listener) else {
            return;
        };
        let mut hs = Handshake::new(short, *b"-XX0000-liar00000000");
        hs.reserved[7] |= 0x04;
        if s.write_all(&hs.encode()).is_err() {
            return;
        }
        send(&mut s, Message::Bitfield(vec![0xff, 0xff].into()));
        send(&mut s, Message::Unchoke);
        let mut buf = BytesMut::new();
        let mut first = true;
        while let Some(m) = read_until(&mut s, &mut buf, |m| matches!(m, Message::Request(_))) {
            let Message::Request(b) = m else { continue };
            let at = b.index as usize * 65536 + b.begin as usize;
            let mut block = data[at..at + b.length as usize].to_vec();
            if first {
                block[100] ^= 0xff;
                first = false;
            }
            count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let m = Message::Piece {
                index: b.index,
                begin: b.begin,
                data: block.into(),
            };
            let mut out = BytesMut::new();
            m.encode(&mut out);
            if s.write_all(&out).is_err() {
                return;
            }
        }
        let _ = s.read(&mut [0u8; 1]);
    });
    let honest = start_seed(&t, &d.join("src"), &["--max-upload-rate", "512K"]);
    let mut fetch = Proc::start(
        share()
            .env("SHARE_LOG", "share_engine::torrent::v2=warn")
            .arg("fetch")
            .arg(&t)
            .arg("-o")
            .arg(d.join("dst"))
            .args(["--listen", "127.0.0.1:0", "--peer"])
            .arg(liar.to_string())
            .arg("--peer")
            .arg(honest.addr.to_string()),
    );
    let (code, _) = fetch.wait(TIMEOUT);
    let err = fetch.stderr();
    assert_eq!(code, Some(0), "{err}");
    assert_same_file(&file, &d.join("dst/one.bin"));
    assert!(
        served.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "the liar was never asked"
    );
    let banned: Vec<&str> = err.lines().filter(|l| l.contains("banned peer")).collect();
    assert_eq!(banned.len(), 1, "{err}");
    assert!(
        banned[0].contains(&liar.to_string()) && banned[0].contains("failed its merkle check"),
        "{err}"
    );
    assert!(
        err.contains("a block failed its merkle check"),
        "the log names the block: {err}"
    );
}

#[test]
fn the_daemon_fetches_v2_and_hybrid_torrents_by_torrent_and_magnet_and_streams_them() {
    use serde_json::json;
    let d = Dir::new();
    let content = folder(&d);
    let (mut tracker, url) = crate::daemon::tracker();
    let mut torrents = Vec::new();
    for format in ["v2", "hybrid"] {
        let t = d.join(&format!("{format}.torrent"));
        let out = ok(share()
            .arg("create")
            .arg(&content)
            .args([
                "--piece-length",
                "16384",
                "--format",
                format,
                "--no-date",
                "-t",
                &url,
                "-o",
            ])
            .arg(&t));
        let v2 = out
            .lines()
            .find_map(|l| l.strip_prefix("info-hash-v2: "))
            .unwrap()
            .to_string();
        let v1 = out
            .lines()
            .find_map(|l| l.strip_prefix("info-hash: "))
            .map(str::to_string);
        torrents.push((format, t, v1, v2));
    }
    // One seed for each: two torrents of one folder and name are refused in one session.
    let seeds: Vec<Proc> = torrents
        .iter()
        .map(|(_, t, _, _)| start_seed(t, d.path(), &[]))
        .collect();
    for (i, (format, t, v1, v2)) in torrents.iter().enumerate() {
        let seed = &seeds[i];
        for by in ["torrent", "magnet"] {
            let dl = d.join(&format!("daemon-{format}-{by}"));
            std::fs::create_dir_all(&dl).unwrap();
            let daemon =
                crate::daemon::Daemon::start(&dl, &d.join(&format!("state-{format}-{by}")), &[]);
            let mut rpc = daemon.client();
            let args = if by == "torrent" {
                json!({"metainfo": crate::daemon::base64_encode(&std::fs::read(t).unwrap())})
            } else {
                json!({"filename": format!("magnet:?xt=urn:btmh:1220{v2}&dn=content&x.pe={}", seed.addr)})
            };
            let added = rpc.ok("torrent-add", args);
            let want = v1.clone().unwrap_or_else(|| v2.clone());
            // A v2 magnet names only the v2 hash until the metadata shows a hybrid's v1.
            let first = if by == "magnet" {
                v2.clone()
            } else {
                want.clone()
            };
            assert_eq!(
                added["torrent-added"]["hashString"],
                json!(first),
                "{format} by {by}"
            );
            rpc.wait_for(
                &format!("{format} by {by}"),
                &["id", "percentDone", "files"],
                TIMEOUT,
                |t| {
                    t.first().is_some_and(|x| {
                        x["percentDone"] == 1.0
                            && x["files"].as_array().is_some_and(|f| f.len() == 6)
                    })
                },
            );
            let t = rpc.torrents(&["hashString", "totalSize", "files"]);
            assert_eq!(t[0]["hashString"], json!(want));
            assert_eq!(t[0]["files"].as_array().unwrap().len(), 6, "{t:?}");
            same_tree(&content, &dl.join("content"));
            // A stream of c_big.bin (file 2) reads the file.
            let a = crate::daemon::http(
                daemon.rpc,
                &format!(
                    "GET /stream/{}/2 HTTP/1.1\nHost: {}",
                    &want[..40],
                    daemon.rpc
                ),
                b"",
            );
            assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
            assert_eq!(a.body, std::fs::read(content.join("c_big.bin")).unwrap());
        }
    }
    tracker.stop();
}

/// Waits until every file under `src` has its copy under `dst`, byte for byte.
fn wait_same_files(
    src: &std::path::Path,
    dst: &std::path::Path,
    timeout: std::time::Duration,
) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    let mut files = Vec::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p.strip_prefix(src).unwrap().to_path_buf());
            }
        }
    }
    while std::time::Instant::now() < deadline {
        if files
            .iter()
            .all(|f| std::fs::read(dst.join(f)).ok() == std::fs::read(src.join(f)).ok())
        {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    false
}

#[test]
fn a_v1_only_client_rtorrent_fetches_a_share_hybrid_through_its_v1_view() {
    // aria2 1.36 re-encodes a hybrid's info dictionary into a wrong info-hash, and
    // Transmission 3.00 refuses hybrids; rtorrent (libtorrent-rakshasa, v1 only) takes the
    // hybrid as a v1 torrent with pad files, as a v1-only client should.
    if !require("rtorrent", "rtorrent") {
        return;
    }
    let d = Dir::new();
    let content = folder(&d);
    let tracker =
        Proc::start(share().args(["tracker", "--listen", "127.0.0.1:0", "--interval", "5"]));
    let t = d.join("hybrid.torrent");
    ok(share()
        .arg("create")
        .arg(&content)
        .args([
            "--piece-length",
            "16384",
            "--format",
            "hybrid",
            "--quiet",
            "-o",
        ])
        .arg(&t)
        .args(["--tracker", &format!("http://{}/announce", tracker.addr)]));
    let mut seed = Proc::start(
        share()
            .env("SHARE_LOG", "share_engine=debug")
            .arg("seed")
            .arg(&t)
            .arg("-d")
            .arg(d.path())
            .args(["--listen", "127.0.0.1:0"]),
    );
    let out = d.join("rt");
    let session = d.join("rt-session");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::create_dir_all(&session).unwrap();
    let port = free_port();
    // `exec` keeps the PID, so dropping the Proc stops rtorrent itself. No DHT, no PEX,
    // no UDP trackers, bound to loopback.
    let mut rt = Proc::start_with(
        std::process::Command::new("sh").arg("-c").arg(format!(
            "echo started; exec rtorrent -n -o system.daemon.set=true \
             -o directory.default.set={out} -o session.path.set={session} \
             -o dht.mode.set=disable -o protocol.pex.set=no -o trackers.use_udp.set=no \
             -o network.bind_address.set=127.0.0.1 -o network.port_range.set={port}-{port} \
             -o load.start={t}",
            out = out.display(),
            session = session.display(),
            t = t.display(),
        )),
        |l| l == "started",
    );
    let done = wait_same_files(&content, &out.join("content"), TIMEOUT);
    rt.stop();
    seed.stop();
    assert!(
        done,
        "rtorrent did not fetch the hybrid: {}\nshare seed: {}",
        rt.stderr(),
        seed.stderr()
    );
    assert!(
        seed.stderr()
            .lines()
            .any(|l| l.contains("connected") && l.contains("swarm=\"v1\"")),
        "{}",
        seed.stderr()
    );
}
