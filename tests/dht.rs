//! The DHT end to end, on loopback only: trackerless swarms of share peers that know one
//! bootstrap node, magnets fetched both ways through libtorrent's DHT, a Sybil flood, a
//! restart from the saved routing table, and the harness's promise that no DHT or LSD
//! traffic leaves the machine.
//!
//! Every share process listens on an address of its own, 127.N.0.1 (a /24 each, as honest
//! nodes on the internet have: the routing table takes at most one node per IP).

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;

const TIMEOUT: Duration = Duration::from_secs(120);
/// Nobody listens here: a bootstrap node for a process that is itself the first node.
const NOBODY: &str = "127.0.0.1:9";

/// `share` with the DHT on (still under the loopback promise).
fn share_dht() -> Command {
    let mut c = share();
    c.env("SHARE_NO_DHT", "0");
    c
}

fn seed_on(
    ip: &str,
    t: &std::path::Path,
    dir: &std::path::Path,
    bootstrap: &str,
    extra: &[&str],
) -> Proc {
    Proc::start(
        share_dht()
            .arg("seed")
            .arg(t)
            .arg("-d")
            .arg(dir)
            .args(["--listen", &format!("{ip}:0"), "--dht-bootstrap", bootstrap])
            .args(extra),
    )
}

fn fetch_on(ip: &str, what: &str, dir: &std::path::Path, bootstrap: &str, extra: &[&str]) -> Proc {
    Proc::start(
        share_dht()
            .arg("fetch")
            .arg(what)
            .arg("-o")
            .arg(dir)
            .args(["--listen", &format!("{ip}:0"), "--dht-bootstrap", bootstrap])
            .args(extra),
    )
}

fn magnet_only(t: &std::path::Path) -> String {
    let (hash, _) = magnet_of(t);
    format!("magnet:?xt=urn:btih:{hash}")
}

#[test]
fn a_trackerless_swarm_of_one_seed_and_four_leechers_that_know_one_node_completes() {
    let d = Dir::new();
    d.data_file("src/f.bin", 4 << 20, 101);
    let t = make_torrent(&d, &d.join("src/f.bin"), 65536, &[]);
    let seed = seed_on(
        "127.31.0.1",
        &t,
        &d.join("src"),
        NOBODY,
        &["--max-upload-rate", "2M"],
    );
    let boot = seed.addr.to_string();
    let link = magnet_only(&t);
    let mut leechers: Vec<Proc> = (0..4)
        .map(|i| {
            fetch_on(
                &format!("127.3{}.0.1", i + 2),
                &link,
                &d.join(&format!("l{i}")),
                &boot,
                &["--seed"],
            )
        })
        .collect();
    for (i, l) in leechers.iter().enumerate() {
        assert!(
            l.wait_stderr("complete: every piece verified", TIMEOUT),
            "leecher {i}: {}",
            l.stderr()
        );
    }
    for (i, l) in leechers.iter_mut().enumerate() {
        assert_eq!(l.stop().0, Some(0));
        assert_same_file(&d.join("src/f.bin"), &d.join(&format!("l{i}/f.bin")));
    }
    // They traded among themselves: the seed alone could not have sent it all at 2 MiB/s
    // as fast, and the leechers uploaded.
    let traded: u64 = leechers.iter().map(|l| l.transfer_counts().0).sum();
    assert!(traded > 0, "the leechers never found each other");
}

/// libtorrent's DHT: N sessions on 127.NET.i.1:PORT, driven on standard input.
struct LtDht {
    proc: Proc,
    nodes: Vec<SocketAddr>,
}

impl LtDht {
    fn start(net: u8, nodes: usize) -> LtDht {
        let port = free_port();
        let mut c = Command::new(python());
        c.arg(peer_script("lt_dht.py"))
            .args(["--nodes", &nodes.to_string(), "--net", &net.to_string()])
            .args(["--port", &port.to_string(), "--timeout", "250"])
            .stdin(Stdio::piped());
        let proc = Proc::start_with_stdin(&mut c, |l| l == "ready");
        let addrs = proc
            .stdout
            .iter()
            .filter_map(|l| l.strip_prefix("node "))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
            .collect();
        LtDht { proc, nodes: addrs }
    }

    fn say(&mut self, line: &str) {
        let stdin = self.proc.child.stdin.as_mut().expect("piped stdin");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    fn wait(&mut self, prefix: &str) -> String {
        self.proc
            .wait_line(|l| l.starts_with(prefix), TIMEOUT)
            .unwrap_or_else(|| panic!("lt_dht: no `{prefix}` line: {}", self.proc.stderr()))
    }

    /// Waits until a lookup from session 0 finds `addr` among the peers of `hash`.
    fn wait_announced(&mut self, hash: &str, addr: &str) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            self.say(&format!("get_peers {hash} 0"));
            let line = self.wait(&format!("peers {hash}"));
            if line.contains(addr) {
                return;
            }
            assert!(Instant::now() < deadline, "{addr} never announced: {line}");
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

#[test]
fn share_fetches_a_magnet_from_a_libtorrent_seed_found_through_libtorrents_dht() {
    if !require_libtorrent() {
        return;
    }
    let d = Dir::new();
    let file = d.data_file("src/lt.bin", 1_500_000, 102);
    let mut lt = LtDht::start(41, 4);
    lt.say(&format!("seed_file {}", file.display()));
    let line = lt.wait("seeding ");
    let mut words = line.split_whitespace().skip(1);
    let (hash, seed_addr) = (
        words.next().unwrap().to_owned(),
        words.next().unwrap().to_owned(),
    );
    lt.wait_announced(&hash, &seed_addr);
    let boot = lt.nodes[0].to_string();
    let mut fetch = fetch_on(
        "127.41.9.1",
        &format!("magnet:?xt=urn:btih:{hash}"),
        &d.join("dst"),
        &boot,
        &[],
    );
    let (code, _) = fetch.wait(TIMEOUT);
    assert_eq!(code, Some(0), "{}", fetch.stderr());
    assert_same_file(&file, &d.join("dst/lt.bin"));
    lt.say("quit");
}

#[test]
fn libtorrent_fetches_a_magnet_through_the_dht_from_a_share_seed() {
    if !require_libtorrent() {
        return;
    }
    let d = Dir::new();
    d.data_file("src/f.bin", 1_200_000, 103);
    let t = make_torrent(&d, &d.join("src/f.bin"), 16384, &[]);
    let (hash, _) = magnet_of(&t);
    let mut lt = LtDht::start(42, 4);
    let boot = lt.nodes[0].to_string();
    let seed = seed_on("127.42.9.1", &t, &d.join("src"), &boot, &[]);
    lt.wait_announced(&hash.to_hex(), &seed.addr.to_string());
    std::fs::create_dir_all(d.join("dst")).unwrap();
    lt.say(&format!("fetch {hash} {}", d.join("dst").display()));
    lt.wait(&format!("fetched {hash}"));
    assert_same_file(&d.join("src/f.bin"), &d.join("dst/f.bin"));
    lt.say("quit");
}

#[test]
fn a_dht_fetch_completes_through_a_sybil_flood_of_400_fake_nodes() {
    let d = Dir::new();
    d.data_file("src/f.bin", 2 << 20, 104);
    d.data_file("other/g.bin", 10_000, 108);
    let t = make_torrent(&d, &d.join("src/f.bin"), 65536, &[]);
    let u = d.join("u.torrent");
    ok(share()
        .arg("create")
        .arg(d.join("other/g.bin"))
        .args(["-q", "-o"])
        .arg(&u));
    // An honest node (a peer of another torrent), and the seed, which knows that node.
    let honest = seed_on("127.54.0.1", &u, &d.join("other"), NOBODY, &[]);
    let boot = honest.addr.to_string();
    let _seed = seed_on("127.51.0.1", &t, &d.join("src"), &boot, &[]);
    let link = magnet_only(&t);
    std::thread::sleep(Duration::from_secs(3));

    // Without the flood: a fetcher that knows only the honest node.
    let start = Instant::now();
    let mut calm = fetch_on("127.52.0.1", &link, &d.join("calm"), &boot, &[]);
    assert!(calm.wait_stderr("metadata:", TIMEOUT), "{}", calm.stderr());
    let calm_first = start.elapsed().as_secs_f64();
    assert_eq!(calm.wait(TIMEOUT).0, Some(0), "{}", calm.stderr());
    let calm_all = start.elapsed().as_secs_f64();

    // With 400 fake nodes on four addresses in two /24s, pinging the fetcher (before it
    // starts, and every 10 s) and the honest node, and answering every query with
    // themselves and with bogus peers.
    let port = free_port();
    let victim: SocketAddr = format!("127.53.0.1:{port}").parse().unwrap();
    let mut sybil = Proc::start_with(
        Command::new("python3")
            .arg(peer_script("sybil_dht.py"))
            .args([
                "--ips",
                "127.66.0.2,127.66.0.3,127.66.1.2,127.66.1.3",
                "--per-ip",
                "100",
            ])
            .args([
                "--poke",
                &victim.to_string(),
                "--poke",
                &boot,
                "--timeout",
                "200",
            ]),
        |l| l.starts_with("started"),
    );
    std::thread::sleep(Duration::from_secs(2));
    let start = Instant::now();
    let mut cmd = share_dht();
    cmd.env("SHARE_LOG", "share_engine=debug")
        .arg("fetch")
        .arg(&link)
        .arg("-o")
        .arg(d.join("flood"))
        .args(["--listen", &victim.to_string(), "--dht-bootstrap", &boot]);
    let mut flooded = Proc::start(&mut cmd);
    assert!(
        flooded.wait_stderr("metadata:", TIMEOUT),
        "{}",
        tail(&flooded.stderr())
    );
    let flood_first = start.elapsed().as_secs_f64();
    let (code, _) = flooded.wait(TIMEOUT);
    let flood_all = start.elapsed().as_secs_f64();
    assert_eq!(code, Some(0), "{}", tail(&flooded.stderr()));
    assert_same_file(&d.join("src/f.bin"), &d.join("flood/f.bin"));
    let rss = peak_rss(flooded.child.id());
    assert!(rss == 0 || rss < 200 << 20, "peak RSS {rss}");
    let (_, out) = sybil.stop();
    let said = out.last().cloned().unwrap_or_default();
    // The flood was there: the fakes were asked, and sent bogus peers.
    assert!(
        said.starts_with("queries") && !said.starts_with("queries 0 "),
        "{said}"
    );
    // Bogus peers are dialed at the book's bounded rate, not as fast as they come.
    let err = flooded.stderr();
    let bogus_dials = err
        .lines()
        .filter(|l| l.contains("connection closed") && l.contains("127.77."))
        .count() as f64;
    assert!(
        bogus_dials <= 10.0 * flood_all + 25.0,
        "{bogus_dials} bogus dials in {flood_all:.1} s"
    );
    eprintln!(
        "sybil flood: metadata after {flood_first:.2} s, done after {flood_all:.2} s \
         ({bogus_dials} bogus dials; {said}); without it: {calm_first:.2} s, {calm_all:.2} s"
    );
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

#[test]
fn a_restarted_node_finds_the_swarm_from_its_saved_table_with_no_bootstrap_node() {
    let d = Dir::new();
    d.data_file("src/f.bin", 1_000_000, 105);
    d.data_file("other/g.bin", 100_000, 106);
    let t = make_torrent(&d, &d.join("src/f.bin"), 65536, &[]);
    let u = d.join("u.torrent");
    ok(share()
        .arg("create")
        .arg(d.join("other/g.bin"))
        .args(["-q", "-o"])
        .arg(&u));
    let seed = seed_on("127.61.0.1", &t, &d.join("src"), NOBODY, &[]);
    let state = d.join("state");
    let state_arg = state.to_str().unwrap().to_owned();
    // A node that meets the seed's node, then stops (saving its table).
    let mut first = seed_on(
        "127.62.0.1",
        &u,
        &d.join("other"),
        &seed.addr.to_string(),
        &["--state-dir", &state_arg],
    );
    let table = state.join("dht.dat");
    let deadline = Instant::now() + TIMEOUT;
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(first.stop().0, Some(0), "{}", first.stderr());
    while !table.exists() {
        assert!(Instant::now() < deadline, "no routing table saved");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Started again with only a dead bootstrap node: it finds the seed from its table.
    let mut again = fetch_on(
        "127.62.0.1",
        &magnet_only(&t),
        &d.join("dst"),
        NOBODY,
        &["--state-dir", &state_arg],
    );
    let (code, _) = again.wait(TIMEOUT);
    assert_eq!(code, Some(0), "{}", again.stderr());
    assert_same_file(&d.join("src/f.bin"), &d.join("dst/f.bin"));
}

#[test]
fn the_loopback_promise_refuses_public_dht_bootstraps_and_local_discovery() {
    let d = Dir::new();
    d.data_file("src/f.bin", 1000, 107);
    let t = make_torrent(&d, &d.join("src/f.bin"), 16384, &[]);
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str], &'a str);
    let cases: [Case; 3] = [
        (
            &[("SHARE_NO_DHT", "0")],
            &[],
            "the DHT would bootstrap from public nodes",
        ),
        (
            &[("SHARE_NO_DHT", "0")],
            &["--dht-bootstrap", "router.bittorrent.com:6881"],
            "is not on loopback",
        ),
        (
            &[("SHARE_NO_LSD", "0")],
            &[],
            "local service discovery multicasts",
        ),
    ];
    for (env, args, says) in cases {
        let mut c = share();
        for (k, v) in env {
            c.env(k, v);
        }
        let out = run(c
            .arg("seed")
            .arg(&t)
            .arg("-d")
            .arg(d.join("src"))
            .args(["--listen", "127.0.0.1:0"])
            .args(args));
        assert_eq!(out.status.code(), Some(1), "{says}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{err}");
        assert!(!String::from_utf8_lossy(&out.stdout).contains("listening on"));
    }
}
