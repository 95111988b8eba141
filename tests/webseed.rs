//! Web seeds (BEP 19) against real HTTP servers on loopback: Debian's nginx, and a Python
//! server (tests/peers/web_server.py) that ignores ranges, redirects, is busy, lacks a file
//! or serves a corrupt piece; libtorrent checks our `url-list` and URL joining, and
//! transmission-remote shows the web seed of a torrent in the daemon.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::util::*;

const TIMEOUT: Duration = Duration::from_secs(120);

/// nginx serving `root` on a free loopback port, in the foreground as one process (no
/// workers), with every file it writes under `dir`; `limit_rate` per connection if given.
struct Nginx {
    _proc: Proc,
    url: String,
}

impl Nginx {
    fn start(dir: &Path, root: &Path, limit_rate: Option<&str>) -> Nginx {
        std::fs::create_dir_all(dir).unwrap();
        let port = free_port();
        let d = dir.display();
        let conf = format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n  \
             proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  \
             uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
             server {{\n    listen 127.0.0.1:{port};\n    root {root};\n    {rate}\n  }}\n}}\n",
            root = root.display(),
            rate = limit_rate.map_or(String::new(), |r| format!("limit_rate {r};")),
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        // `exec` keeps the PID: stopping the Proc stops nginx itself.
        let proc = Proc::start_with(
            Command::new("sh").arg("-c").arg(format!(
                "echo started; exec nginx -p {d} -e {d}/error.log -c {}",
                conf_path.display()
            )),
            |l| l == "started",
        );
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not listen on {addr}: {}{}",
                proc.stderr(),
                std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Nginx {
            _proc: proc,
            url: format!("http://{addr}/"),
        }
    }
}

/// tests/peers/web_server.py serving `root` with `args`; `url` is its root.
fn web_server(root: &Path, args: &[&str]) -> (Proc, String) {
    let p = Proc::start(
        Command::new(pypi_python())
            .arg(peer_script("web_server.py"))
            .arg(root)
            .args(args),
    );
    let url = format!("http://{}/", p.addr);
    (p, url)
}

/// A torrent of `content` with `web_seeds` in its `url-list`, at `out`.
fn torrent(content: &Path, out: &Path, piece: u32, web_seeds: &[&str]) -> PathBuf {
    let mut c = share();
    c.arg("create")
        .arg(content)
        .args([
            "-q",
            "--no-date",
            "--piece-length",
            &piece.to_string(),
            "-o",
        ])
        .arg(out);
    for w in web_seeds {
        c.args(["--web-seed", w]);
    }
    ok(&mut c);
    out.to_path_buf()
}

/// A fetch of `t` into `dir` from web seeds and `peers`, with the engine's debug log (the
/// web seeds' and peers' totals at the end); waits for it to exit and checks it succeeded.
fn fetch(t: &Path, dir: &Path, peers: &[SocketAddr]) -> (f64, String) {
    let started = Instant::now();
    let mut cmd = share();
    cmd.env("SHARE_LOG", "share_engine=debug")
        .arg("fetch")
        .arg(t)
        .arg("-o")
        .arg(dir)
        .args(["--listen", "127.0.0.1:0"]);
    for p in peers {
        cmd.arg("--peer").arg(p.to_string());
    }
    let mut p = Proc::start(&mut cmd);
    let (code, _) = p.wait(TIMEOUT);
    let err = p.stderr();
    assert_eq!(code, Some(0), "fetch failed: {err}");
    (started.elapsed().as_secs_f64(), err)
}

/// Bytes the fetch's debug log says web seed `url`-ish sent (its `web seed totals` line).
fn web_received(log: &str) -> u64 {
    log.lines()
        .filter(|l| l.contains("web seed totals"))
        .filter_map(|l| l.split("received=").nth(1))
        .filter_map(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Bytes peers sent, from the `peer totals` lines.
fn peers_received(log: &str) -> u64 {
    log.lines()
        .filter(|l| l.contains("peer totals"))
        .filter_map(|l| l.split("received=").nth(1))
        .filter_map(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

fn same_tree(a: &Path, b: &Path) {
    let out = Command::new("diff")
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

/// A folder with names that need percent-encoding, several files and a sub-folder.
fn odd_folder(d: &Dir, rel: &str) -> PathBuf {
    d.data_file(&format!("{rel}/a file.bin"), 300_001, 1);
    d.data_file(&format!("{rel}/sub dir é/b&c #1.bin"), 123_457, 2);
    d.data_file(&format!("{rel}/sub dir é/ü.txt"), 1000, 3);
    d.data_file(&format!("{rel}/z.bin"), 70_000, 4);
    d.join(rel)
}

#[test]
fn nginx_alone_serves_a_single_file_and_a_folder_with_odd_names() {
    if !require("nginx", "nginx") {
        return;
    }
    let d = Dir::new();
    let www = d.join("www");
    let one = d.data_file("www/one file é.bin", 1_000_003, 7);
    let folder = odd_folder(&d, "www/My Folder ü");
    let nginx = Nginx::start(&d.join("nginx"), &www, None);
    // A single file: a URL ending in `/` gets the torrent's name appended; one that does
    // not is the file itself.
    for (i, base) in [
        nginx.url.clone(),
        format!("{}one%20file%20%C3%A9.bin", nginx.url),
    ]
    .iter()
    .enumerate()
    {
        let t = torrent(&one, &d.join(&format!("one-{i}.torrent")), 32768, &[base]);
        let out = d.join(&format!("got-one-{i}"));
        let (secs, log) = fetch(&t, &out, &[]);
        assert_same_file(&one, &out.join("one file é.bin"));
        assert!(web_received(&log) >= 1_000_003, "{log}");
        eprintln!("single file from {base}: {secs:.2} s");
    }
    // A folder: the name and each path element joined to the URL.
    let t = torrent(&folder, &d.join("folder.torrent"), 16384, &[&nginx.url]);
    let out = d.join("got-folder");
    let (secs, _) = fetch(&t, &out, &[]);
    same_tree(&folder, &out.join("My Folder ü"));
    eprintln!("folder from nginx: {secs:.2} s");
    drop(nginx);
}

#[test]
fn a_web_seed_and_a_rate_limited_seed_share_the_work() {
    if !require("nginx", "nginx") {
        return;
    }
    let d = Dir::new();
    let file = d.data_file("www/f.bin", 6 << 20, 11);
    let nginx = Nginx::start(&d.join("nginx"), &d.join("www"), Some("1m"));
    // The same torrent (`url-list` is outside the info dictionary) with and without the
    // web seed.
    let with = torrent(&file, &d.join("with.torrent"), 65536, &[&nginx.url]);
    let without = torrent(&file, &d.join("without.torrent"), 65536, &[]);
    let seed = start_seed(&without, &d.join("www"), &["--max-upload-rate", "1M"]);
    let (web_only, log) = fetch(&with, &d.join("web"), &[]);
    assert_same_file(&file, &d.join("web/f.bin"));
    assert_eq!(peers_received(&log), 0);
    let (peer_only, _) = fetch(&without, &d.join("peer"), &[seed.addr]);
    assert_same_file(&file, &d.join("peer/f.bin"));
    let (both, log) = fetch(&with, &d.join("both"), &[seed.addr]);
    assert_same_file(&file, &d.join("both/f.bin"));
    let (web, peer) = (web_received(&log), peers_received(&log));
    eprintln!(
        "6 MiB: web seed alone {web_only:.1} s, peer alone {peer_only:.1} s, both {both:.1} s \
         (web seed sent {web}, the peer {peer})"
    );
    assert!(
        web > 0 && peer > 0,
        "one source did all: web {web}, peer {peer}\n{log}"
    );
}

#[test]
fn a_server_that_ignores_ranges_is_dropped_with_a_warning_and_memory_stays_bounded() {
    let d = Dir::new();
    // 96 MiB: were the whole-file answer read, it would show in the fetch's memory.
    let file = d.data_file("www/big.bin", 96 << 20, 5);
    let (server, url) = web_server(&d.join("www"), &["--mode", "no-ranges"]);
    let t = torrent(&file, &d.join("t.torrent"), 1 << 20, &[&url]);
    // The seed is held to 32 MiB/s, so that the web seed is surely asked on the way.
    let seed = start_seed(&t, &d.join("www"), &["--max-upload-rate", "32M"]);
    let mut f = start_fetch(&t, &d.join("out"), &[seed.addr], &["--seed"]);
    assert!(
        f.wait_stderr("complete", TIMEOUT),
        "the fetch did not complete: {}",
        f.stderr()
    );
    let peak = peak_rss(f.child.id());
    f.stop();
    assert_same_file(&file, &d.join("out/big.bin"));
    let err = f.stderr();
    assert!(err.contains("ignores HTTP ranges"), "no warning: {err}");
    eprintln!(
        "fetch peak RSS {} MiB beside a server sending 96 MiB files whole",
        peak >> 20
    );
    assert!(peak < 90 << 20, "peak RSS {} MiB", peak >> 20);
    assert!(server.stderr().contains("-> 200"), "{}", server.stderr());
}

#[test]
fn redirects_and_busy_servers_are_followed_and_waited_for() {
    let d = Dir::new();
    let folder = odd_folder(&d, "www/stuff");
    let (_target, target_url) = web_server(&d.join("www"), &[]);
    // A redirect to another loopback port (a public server could not send us there).
    let (redirect, url) = web_server(&d.join("www"), &["--mode", "redirect", "--to", &target_url]);
    let t = torrent(&folder, &d.join("r.torrent"), 16384, &[&url]);
    fetch(&t, &d.join("r"), &[]);
    same_tree(&folder, &d.join("r/stuff"));
    assert!(redirect.stderr().contains("-> 302"));
    // Busy: three answers of 429 with `Retry-After: 1`, then it serves.
    let (busy, url) = web_server(
        &d.join("www"),
        &["--mode", "busy", "--busy", "3", "--retry-after", "1"],
    );
    let t = torrent(&folder, &d.join("b.torrent"), 16384, &[&url]);
    let (secs, _) = fetch(&t, &d.join("b"), &[]);
    same_tree(&folder, &d.join("b/stuff"));
    let log = busy.stderr();
    assert_eq!(log.matches("-> 429").count(), 3, "{log}");
    assert!(log.contains("-> 206"), "{log}");
    eprintln!("through a busy server: {secs:.1} s");
}

#[test]
fn a_missing_file_goes_to_peers_and_a_corrupt_server_is_dropped() {
    let d = Dir::new();
    let folder = odd_folder(&d, "www/stuff");
    // One file missing on the server: that file comes from the peer, the rest from both.
    let (missing, url) = web_server(&d.join("www"), &["--missing", "stuff/z.bin"]);
    let t = torrent(&folder, &d.join("m.torrent"), 16384, &[&url]);
    let seed = start_seed(&t, &d.join("www"), &["--max-upload-rate", "256K"]);
    let (_, log) = fetch(&t, &d.join("m"), &[seed.addr]);
    same_tree(&folder, &d.join("m/stuff"));
    assert!(log.contains("does not have stuff/z.bin"), "{log}");
    // Asked once per request that was in flight when the first 404 came (two at most).
    let server = missing.stderr();
    let asked = server
        .lines()
        .filter(|l| l.contains("z.bin") && l.contains("-> 404"))
        .count();
    assert!(
        (1..=2).contains(&asked),
        "z.bin was asked again after its 404: {server}"
    );
    assert!(web_received(&log) > 0, "{log}");
    // A corrupt file: the server is dropped at its first piece that fails, no peer is
    // blamed, the fetch completes. (The whole file, so that the piece cannot have come from
    // the peer first, as one corrupt piece might.)
    let (corrupt, url) = web_server(&d.join("www"), &["--corrupt", "stuff/a file.bin:0:300001"]);
    let t = torrent(&folder, &d.join("c.torrent"), 16384, &[&url]);
    let seed = start_seed(&t, &d.join("www"), &["--max-upload-rate", "256K"]);
    let (_, log) = fetch(&t, &d.join("c"), &[seed.addr]);
    same_tree(&folder, &d.join("c/stuff"));
    assert!(
        log.contains("dropped: a piece it alone sent failed verification"),
        "{log}"
    );
    assert!(!log.contains("banned peer"), "a peer was blamed: {log}");
    drop(corrupt);
}

#[test]
fn a_magnet_with_ws_uses_the_web_seed_beside_the_peer_that_gave_the_metadata() {
    if !require("nginx", "nginx") {
        return;
    }
    let d = Dir::new();
    let file = d.data_file("www/m.bin", 3 << 20, 9);
    let nginx = Nginx::start(&d.join("nginx"), &d.join("www"), None);
    let t = torrent(&file, &d.join("t.torrent"), 65536, &[]);
    let seed = start_seed(&t, &d.join("www"), &["--max-upload-rate", "256K"]);
    let (_, magnet) = magnet_of(&t);
    let link = format!(
        "{magnet}&ws={}&x.pe={}",
        share_core::percent(format!("{}m.bin", nginx.url)),
        seed.addr
    );
    let started = Instant::now();
    let mut p = Proc::start(
        share()
            .env("SHARE_LOG", "share_engine=debug")
            .args(["fetch", &link, "-o"])
            .arg(d.join("out"))
            .args(["--listen", "127.0.0.1:0"]),
    );
    let (code, _) = p.wait(TIMEOUT);
    assert_eq!(code, Some(0), "{}", p.stderr());
    assert_same_file(&file, &d.join("out/m.bin"));
    let web = web_received(&p.stderr());
    eprintln!(
        "magnet with ws=: {:.1} s, web seed sent {web}",
        started.elapsed().as_secs_f64()
    );
    assert!(web > 0, "{}", p.stderr());
}

#[test]
fn libtorrent_downloads_a_share_torrent_from_its_nginx_web_seed_alone() {
    if !require("nginx", "nginx") || !require_libtorrent() {
        return;
    }
    let d = Dir::new();
    let folder = odd_folder(&d, "www/Lib Test");
    let one = d.data_file("www/solo é.bin", 500_001, 12);
    let nginx = Nginx::start(&d.join("nginx"), &d.join("www"), None);
    for (name, content, is_dir) in [("folder", &folder, true), ("single", &one, false)] {
        let t = torrent(
            content,
            &d.join(&format!("{name}.torrent")),
            16384,
            &[&nginx.url],
        );
        let dst = d.join(&format!("lt-{name}"));
        std::fs::create_dir_all(&dst).unwrap();
        let mut lt = Proc::start(
            Command::new(python())
                .arg(peer_script("lt_peer.py"))
                .args(["fetch"])
                .arg(&t)
                .arg(&dst)
                .args(["--timeout", "100"]),
        );
        assert!(
            lt.wait_line(|l| l == "done", TIMEOUT).is_some(),
            "libtorrent did not fetch the {name} torrent from nginx: {}",
            lt.stderr()
        );
        lt.stop();
        if is_dir {
            same_tree(content, &dst.join("Lib Test"));
        } else {
            assert_same_file(content, &dst.join("solo é.bin"));
        }
    }
    let log = std::fs::read_to_string(d.join("nginx/access.log")).unwrap();
    assert!(
        log.to_lowercase()
            .contains("lib%20test/sub%20dir%20%c3%a9/b%26c%20%231.bin"),
        "{log}"
    );
}

#[test]
fn transmission_remote_lists_the_web_seed_of_a_torrent_in_the_daemon() {
    if !require("nginx", "nginx") || !require("transmission-remote", "transmission-cli") {
        return;
    }
    let d = Dir::new();
    let file = d.data_file("www/w.bin", 2 << 20, 3);
    let nginx = Nginx::start(&d.join("nginx"), &d.join("www"), None);
    let t = torrent(&file, &d.join("t.torrent"), 65536, &[&nginx.url]);
    let daemon = crate::daemon::Daemon::start(&d.join("dl"), &d.join("state"), &[]);
    let out = ok(Command::new("transmission-remote")
        .arg(daemon.rpc.to_string())
        .arg("-a")
        .arg(&t));
    assert!(out.contains("success"), "{out}");
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let info = ok(Command::new("transmission-remote")
            .arg(daemon.rpc.to_string())
            .args(["-t", "1", "-i"]));
        if info.contains("Percent Done: 100%") {
            assert!(info.contains("Web Seeds"), "{info}");
            break;
        }
        assert!(Instant::now() < deadline, "not complete: {info}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_same_file(&file, &d.join("dl/w.bin"));
    let json = daemon.client().call(
        "torrent-get",
        serde_json::json!({"ids": [1], "fields": ["webseeds", "webseedsSendingToUs"]}),
    );
    assert_eq!(
        json["arguments"]["torrents"][0]["webseeds"],
        serde_json::json!([nginx.url])
    );
}
