//! IP blocklists (`--blocklist`, the daemon's `blocklist-*`): a million gzip'd ranges read
//! at start; a blocked peer is never connected, whichever side dials and however it is
//! learned (PEX included), while unblocked peers are; the daemon driven by
//! transmission-remote `--blocklist-update` shows the count.
//!
//! Peers are told apart by their loopback addresses: the blocked ones listen (and so dial
//! from) 127.0.0.66, the others 127.0.0.1.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::daemon::Daemon;
use crate::util::*;

const TIMEOUT: Duration = Duration::from_secs(90);
const BLOCKED: &str = "127.0.0.66";

/// Writes `ranges` P2P lines (none of them on loopback) and `extra` lines, gzip'd, to
/// `path` (`.gz` added); returns the `.gz` path.
fn gzip_list(path: &Path, ranges: u32, extra: &[&str]) -> PathBuf {
    use std::io::Write;
    let mut text = Vec::with_capacity(ranges as usize * 32);
    for i in 0..ranges {
        // 1.0.0.0 up, 64 addresses apart, 32 wide: 1,000,000 of them end below 5.0.0.0.
        let a = std::net::Ipv4Addr::from(0x0100_0000 + i * 64);
        let b = std::net::Ipv4Addr::from(0x0100_0000 + i * 64 + 31);
        writeln!(text, "range {i}:{a}-{b}").unwrap();
    }
    for l in extra {
        writeln!(text, "{l}").unwrap();
    }
    std::fs::write(path, text).unwrap();
    ok(Command::new("gzip").arg("-f").arg(path));
    let mut gz = path.as_os_str().to_owned();
    gz.push(".gz");
    gz.into()
}

fn connected_to(p: &Proc, ip: &str) -> bool {
    p.stderr().contains(&format!("connected addr={ip}:"))
}

fn wait_for(what: &str, p: &Proc, f: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !f(&p.stderr()) {
        assert!(Instant::now() < deadline, "never {what}: {}", p.stderr());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A seed A and a leecher C on 127.0.0.1, a seed B on the blocked address; C is connected
/// to both. The fetcher, with a million-range list that also names B's address, is
/// told only of C: it learns A and B from C's PEX, connects to A and C and completes,
/// never connects to B, and closes a connection from a blocked leecher at accept.
#[test]
fn a_blocked_peer_is_never_connected_either_way_nor_through_pex_while_others_are() {
    let d = Dir::new();
    d.data_file("src/f.bin", 4 << 20, 81);
    let t = make_torrent(&d, &d.join("src/f.bin"), 32768, &[]);
    let list = gzip_list(
        &d.join("list.p2p"),
        1_000_000,
        &[&format!("a blocked share peer:{BLOCKED}-{BLOCKED}")],
    );

    // A uploads slowly, so that the fetcher is still fetching when the others act; C
    // downloads slowly, so that it stays a leecher connected to both seeds (two seeds part).
    let a = start_seed(&t, &d.join("src"), &["--max-upload-rate", "512K"]);
    let b = Proc::start(
        share()
            .arg("seed")
            .arg(&t)
            .arg("-d")
            .arg(d.join("src"))
            .args(["--listen", &format!("{BLOCKED}:0")]),
    );
    let mut c_cmd = share();
    c_cmd
        .env("SHARE_LOG", "share_engine=debug")
        .arg("fetch")
        .arg(&t)
        .arg("-o")
        .arg(d.join("c"))
        .args(["--listen", "127.0.0.1:0", "--max-download-rate", "48K"])
        .args(["--peer", &a.addr.to_string(), "--peer", &b.addr.to_string()]);
    let c = Proc::start(&mut c_cmd);
    wait_for("C connected to A and B", &c, |e| {
        e.contains(&format!("connected addr={}", a.addr))
            && e.contains(&format!("connected addr={}", b.addr))
    });

    let mut f_cmd = share();
    f_cmd
        .env("SHARE_LOG", "share_engine=debug")
        .arg("fetch")
        .arg(&t)
        .arg("-o")
        .arg(d.join("dst"))
        .args(["--listen", "127.0.0.1:0", "--seed", "--blocklist"])
        .arg(&list)
        .args(["--peer", &c.addr.to_string()]);
    let mut f = Proc::start(&mut f_cmd);

    // The list: every range, read in time.
    f.wait_stderr("blocklist: ", Duration::from_secs(30));
    let line = f
        .stderr()
        .lines()
        .find(|l| l.starts_with("blocklist: "))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no blocklist line: {}", f.stderr()));
    assert!(
        line.starts_with("blocklist: 1000001 ranges (1000001 entries) from 1 list in "),
        "{line}"
    );
    let secs: f64 = line
        .rsplit(" in ")
        .next()
        .and_then(|s| s.trim_end_matches(" s").parse().ok())
        .unwrap_or_else(|| panic!("no time in {line}"));
    // Under 2 s in an optimised build (measured by hand); the unoptimised test build gets
    // more room.
    let limit = if cfg!(debug_assertions) { 10.0 } else { 2.0 };
    assert!(secs < limit, "{line}");

    // A blocked leecher dials the fetcher: closed at accept.
    let mut b2_cmd = share();
    b2_cmd
        .arg("fetch")
        .arg(&t)
        .arg("-o")
        .arg(d.join("b2"))
        .args(["--listen", &format!("{BLOCKED}:0")])
        .args(["--peer", &f.addr.to_string()]);
    let _b2 = Proc::start(&mut b2_cmd);
    wait_for("a blocked dialer closed at accept", &f, |e| {
        e.lines()
            .any(|l| l.contains("blocked address (--blocklist): closed") && l.contains(BLOCKED))
    });

    // PEX from C named B, which was dropped; A, learned the same way, was connected.
    wait_for("C's PEX with B in it", &f, |e| {
        e.contains("PEX named blocked addresses (--blocklist): ignored")
    });
    wait_for("a connection to A (learned through PEX)", &f, |e| {
        e.contains(&format!("connected addr={}", a.addr))
    });
    let deadline = Instant::now() + TIMEOUT;
    while std::fs::read(d.join("dst/f.bin")).ok() != std::fs::read(d.join("src/f.bin")).ok() {
        assert!(Instant::now() < deadline, "never complete: {}", f.stderr());
        std::thread::sleep(Duration::from_millis(200));
    }
    // A while longer, for any late dial to show.
    std::thread::sleep(Duration::from_secs(3));
    f.stop();
    assert!(
        !connected_to(&f, BLOCKED),
        "connected to a blocked address: {}",
        f.stderr()
    );
    assert!(connected_to(&f, "127.0.0.1"));
}

/// The daemon: `--blocklist` read at start; `blocklist-url` set through session-set, then
/// `transmission-remote --blocklist-update` fetches it (gzip'd, over HTTP) and session-get
/// shows the new count; turned off, nothing is blocked, and the count stays.
#[test]
fn the_daemon_updates_its_blocklist_for_transmission_remote_and_shows_the_count() {
    if !require("transmission-remote", "transmission-cli") {
        return;
    }
    let d = Dir::new();
    std::fs::write(
        d.join("start.p2p"),
        "one:10.1.0.0-10.1.0.255\ntwo:10.2.0.0-10.2.0.255\n",
    )
    .unwrap();
    std::fs::create_dir_all(d.join("web")).unwrap();
    let fetched = gzip_list(&d.join("web/list.p2p"), 1000, &["x:192.0.2.0-192.0.2.9"]);
    assert!(fetched.ends_with("list.p2p.gz"));
    let web = Proc::start(
        Command::new(python())
            .arg(peer_script("web_server.py"))
            .arg(d.join("web")),
    );
    let daemon = Daemon::start(
        &d.join("dl"),
        &d.join("state"),
        &["--blocklist", d.join("start.p2p").to_str().unwrap()],
    );
    let mut rpc = daemon.client();
    let get = |rpc: &mut crate::daemon::Rpc| {
        rpc.call(
            "session-get",
            json!({"fields": ["blocklist-enabled", "blocklist-size", "blocklist-url"]}),
        )["arguments"]
            .clone()
    };
    let now = get(&mut rpc);
    assert_eq!(now["blocklist-size"], 2, "{now}");
    assert_eq!(now["blocklist-enabled"], true, "{now}");

    let url = format!("http://{}/list.p2p.gz", web.addr);
    let set = rpc.call("session-set", json!({"blocklist-url": url}));
    assert_eq!(set["result"], "success", "{set}");
    let out = run(Command::new("transmission-remote")
        .arg(daemon.rpc.to_string())
        .arg("--blocklist-update"));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    assert!(said.contains("success"), "{said}");
    let now = get(&mut rpc);
    assert_eq!(now["blocklist-size"], 2 + 1001, "{now}");
    assert_eq!(now["blocklist-url"], url.as_str(), "{now}");
    assert!(
        web.stderr().contains("GET /list.p2p.gz"),
        "{}",
        web.stderr()
    );

    // Off and on again through session-set; a URL that is not HTTP is refused.
    let set = rpc.call("session-set", json!({"blocklist-enabled": false}));
    assert_eq!(set["result"], "success", "{set}");
    assert_eq!(get(&mut rpc)["blocklist-enabled"], false);
    let set = rpc.call(
        "session-set",
        json!({"blocklist-url": "ftp://example.invalid/x"}),
    );
    assert!(
        set["result"].as_str().unwrap().contains("blocklist-url"),
        "{set}"
    );
    assert_eq!(get(&mut rpc)["blocklist-url"], url.as_str());
}
