//! Home routers in network namespaces (tests/netns_gateway): Debian's miniupnpd with
//! nftables NAT between a lan and a wan that exist only inside the test's namespaces. A
//! share seed in the lan maps its port by UPnP or by NAT-PMP/PCP, a libtorrent peer on the
//! wan fetches through the mapping, and the mapping is gone when the seed exits; two share
//! peers behind two NATs meet through a relay (BEP 55 hole punching).

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::netns::Pair;
use crate::util::*;

const TIMEOUT: Duration = Duration::from_secs(120);

fn script() -> String {
    format!(
        "{}/tests/netns_gateway/gateway.py",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// One gateway set (wan, routers, lans), taken down on drop, also when the test panics.
pub struct Gateway {
    prefix: String,
    env: HashMap<String, String>,
}

impl Gateway {
    /// `only`: "upnp" or "natpmp" for a router that speaks only that, "" for both.
    pub fn up(tag: &str, pairs: u8, only: &str) -> Gateway {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let prefix = format!("{tag}{}x{n}-", std::process::id() % 100_000);
        let mut c = Command::new(python());
        c.args([
            &script(),
            "up",
            &prefix,
            "--format",
            "env",
            "--pairs",
            &pairs.to_string(),
        ]);
        match only {
            "upnp" => c.arg("--no-natpmp"),
            "natpmp" => c.arg("--no-upnp"),
            _ => &mut c,
        };
        let out = run(&mut c);
        assert!(
            out.status.success(),
            "gateway.py up failed (it needs root, miniupnpd and nftables: \
             scripts/install-peers installs them): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let env = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
            .collect();
        Gateway { prefix, env }
    }

    pub fn get(&self, k: &str) -> &str {
        self.env
            .get(k)
            .unwrap_or_else(|| panic!("gateway.py printed no {k}: {:?}", self.env))
    }

    /// The router's NAT rules that miniupnpd wrote.
    fn mappings(&self, router: &str) -> String {
        ok(Command::new("ip").args([
            "netns",
            "exec",
            self.get(router),
            "nft",
            "list",
            "chain",
            "inet",
            "filter",
            "prerouting_miniupnpd",
        ]))
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = Command::new(python())
            .args([&script(), "down", &self.prefix])
            .status();
    }
}

fn require_gateway() -> bool {
    require("miniupnpd", "miniupnpd-nftables")
        && require("upnpc", "miniupnpc")
        && require("nft", "nftables")
        && require("ip", "iproute2")
        && require_libtorrent()
}

/// `share` inside namespace `ns`, with port mapping on (the harness has it off).
fn share_in(ns: &str, mapping: bool) -> Command {
    let mut c = share_in_namespace();
    c.env("SHARE_NO_LSD", "1")
        .env("SHARE_NO_PORT_MAPPING", if mapping { "0" } else { "1" });
    Pair::exec(ns, &c)
}

fn mapped_seed_is_reached_from_the_wan(upnp: bool) {
    if !require_gateway() {
        return;
    }
    let d = Dir::new();
    let file = d.data_file("src/f.bin", 3_000_017, 41);
    let t = make_torrent(&d, &file, 65536, &[]);
    let gw = Gateway::up("pm", 1, if upnp { "upnp" } else { "natpmp" });
    let ext_ip = gw.get("ROUTER1_EXTERNAL_IP").to_owned();
    let started = Instant::now();
    let mut seed = Proc::start(
        share_in(gw.get("LAN1_NETNS"), true)
            .arg("seed")
            .arg(&t)
            .arg("-d")
            .arg(d.join("src"))
            .args(["--listen", "0.0.0.0:0"]),
    );
    let port = seed.addr.port();
    let want = format!("reachable at {ext_ip}:{port} (");
    assert!(
        seed.wait_stderr(&want, Duration::from_secs(30)),
        "no `{want}` line: {}",
        seed.stderr()
    );
    let took = started.elapsed();
    let line = seed
        .stderr()
        .lines()
        .find(|l| l.contains(&want))
        .unwrap_or_default()
        .to_owned();
    let method = if upnp { "UPnP" } else { "PCP" };
    eprintln!("{line} after {:.2} s", took.as_secs_f64());
    assert!(
        line.contains(method) || (!upnp && line.contains("NAT-PMP")),
        "{line}"
    );
    let rules = gw.mappings("ROUTER1_NETNS");
    assert!(rules.contains(&format!("dport {port}")), "{rules}");
    if upnp {
        // As the router lists it to a UPnP client.
        let listed = ok(Command::new("ip").args([
            "netns",
            "exec",
            gw.get("LAN1_NETNS"),
            "upnpc",
            "-u",
            gw.get("MINIUPNPD1_ROOT_DESC_URL"),
            "-l",
        ]));
        assert!(
            listed.contains(&format!("TCP {port}->192.168.1.10:{port}")),
            "{listed}"
        );
    }
    // libtorrent on the wan fetches through the mapped address.
    let dst = d.join("wan");
    std::fs::create_dir_all(&dst).unwrap();
    let mut c = Command::new(python());
    c.arg(peer_script("lt_peer.py"))
        .arg("fetch")
        .arg(&t)
        .arg(&dst)
        .args([
            "--peer",
            &format!("{ext_ip}:{port}"),
            "--listen-ip",
            "45.3.0.1",
        ])
        .args(["--timeout", "60"]);
    let mut lt = Proc::start(&mut Pair::exec(gw.get("WAN_NETNS"), &c));
    assert!(
        lt.wait_line(|l| l == "done", TIMEOUT).is_some(),
        "libtorrent on the wan did not fetch through {ext_ip}:{port}: {}\nseed: {}",
        lt.stderr(),
        seed.stderr()
    );
    lt.stop();
    assert_same_file(&file, &dst.join("f.bin"));
    // The seed removes its mappings as it exits.
    assert_eq!(seed.stop().0, Some(0), "{}", seed.stderr());
    let rules = gw.mappings("ROUTER1_NETNS");
    assert!(
        !rules.contains(&format!("dport {port}")),
        "left behind: {rules}"
    );
}

#[test]
fn a_seed_behind_a_upnp_router_is_reached_through_its_mapping() {
    mapped_seed_is_reached_from_the_wan(true);
}

#[test]
fn a_seed_behind_a_nat_pmp_router_is_reached_through_its_mapping() {
    mapped_seed_is_reached_from_the_wan(false);
}

/// A torrent of two files: `small.txt` (which the relay takes, so that it is in the swarm
/// without holding what the fetch needs) and `big.bin`.
fn two_file_torrent(d: &Dir) -> std::path::PathBuf {
    d.data_file("src/pair/small.txt", 20_000, 51);
    d.data_file("src/pair/big.bin", 2_000_003, 52);
    make_torrent(d, &d.join("src/pair"), 16384, &[])
}

/// A share peer on the wan (45.3.0.1) that takes only `small.txt` and stays: the relay.
fn relay(gw: &Gateway, d: &Dir, t: &std::path::Path) -> Proc {
    Proc::start(
        share_in(gw.get("WAN_NETNS"), false)
            .env("SHARE_LOG", "share_engine=debug")
            .arg("fetch")
            .arg(t)
            .arg("-o")
            .arg(d.join("relay"))
            .args([
                "--only",
                "pair/small.txt",
                "--seed",
                "--listen",
                "45.3.0.1:0",
            ]),
    )
}

/// Waits for a share fetch to exit; its stderr.
fn fetched(mut p: Proc) -> String {
    let (code, _) = p.wait(TIMEOUT);
    let err = p.stderr();
    assert_eq!(
        code,
        Some(0),
        "the fetch behind the second NAT failed: {err}"
    );
    err
}

#[test]
fn two_share_peers_behind_nats_meet_through_a_relay_and_not_without_one() {
    if !require_gateway() {
        return;
    }
    let d = Dir::new();
    let t = two_file_torrent(&d);
    let gw = Gateway::up("hp", 2, "");
    // Without a relay: the fetch behind the second NAT cannot reach the seed behind the
    // first, though it has its public address.
    let seed = Proc::start(
        share_in(gw.get("LAN1_NETNS"), false)
            .env("SHARE_LOG", "share_engine=debug")
            .arg("seed")
            .arg(&t)
            .arg("-d")
            .arg(d.join("src"))
            .args(["--listen", "0.0.0.0:0"]),
    );
    let seed_public = format!("{}:{}", gw.get("ROUTER1_EXTERNAL_IP"), seed.addr.port());
    let mut alone = Proc::start(
        share_in(gw.get("LAN2_NETNS"), false)
            .env("SHARE_LOG", "share_engine=debug")
            .arg("fetch")
            .arg(&t)
            .arg("-o")
            .arg(d.join("alone"))
            .args(["--listen", "0.0.0.0:0", "--peer", &seed_public]),
    );
    assert!(
        alone.wait_stderr("connection closed", Duration::from_secs(40)),
        "{}",
        alone.stderr()
    );
    alone.stop();
    assert!(
        !alone.stderr().contains("connected addr"),
        "reached through the NAT without a relay: {}",
        alone.stderr()
    );
    drop(seed);
    // With a relay on the wan that both are connected to.
    let relay = relay(&gw, &d, &t);
    let via = relay.addr.to_string();
    let seed = Proc::start(
        share_in(gw.get("LAN1_NETNS"), false)
            .env("SHARE_LOG", "share_engine=debug")
            .arg("seed")
            .arg(&t)
            .arg("-d")
            .arg(d.join("src"))
            .args(["--listen", "0.0.0.0:0", "--peer", &via]),
    );
    let (punched, took) = fetch_through(&gw, &d, &t, &via);
    assert!(punched.contains("µTP"), "{punched}");
    eprintln!(
        "through the relay: fetched in {:.1} s; {punched}",
        took.as_secs_f64()
    );
    assert!(
        relay.stderr().contains("holepunch: introduced"),
        "{}",
        relay.stderr()
    );
    drop(seed);
}

#[test]
fn a_share_peer_and_a_libtorrent_seed_behind_nats_meet_through_a_share_relay() {
    if !require_gateway() {
        return;
    }
    let d = Dir::new();
    let t = two_file_torrent(&d);
    let gw = Gateway::up("hq", 2, "");
    let relay = relay(&gw, &d, &t);
    let via = relay.addr.to_string();
    // libtorrent seeds behind the first NAT, over µTP, connected out to the relay (its
    // port mapping is off, as lt_peer.py always has it).
    let mut c = Command::new(python());
    c.arg(peer_script("lt_peer.py"))
        .arg("seed")
        .arg(&t)
        .arg(d.join("src"))
        .args(["--utp-only", "--listen-ip", "192.168.1.10", "--peer", &via])
        .args(["--timeout", "100"]);
    let mut lt = Proc::start(&mut Pair::exec(gw.get("LAN1_NETNS"), &c));
    assert!(
        lt.wait_line(|l| l == "seeding", TIMEOUT).is_some(),
        "{}",
        lt.stderr()
    );
    let (punched, took) = fetch_through(&gw, &d, &t, &via);
    eprintln!(
        "share and libtorrent through the relay: fetched in {:.1} s; {punched}",
        took.as_secs_f64()
    );
    lt.stop();
}

/// `share fetch` of `t` in the second LAN, told only of `via`: the data must match, and the
/// log's line for its connection to the peer behind the first NAT is returned, with the
/// time the fetch took.
fn fetch_through(gw: &Gateway, d: &Dir, t: &std::path::Path, via: &str) -> (String, Duration) {
    let started = Instant::now();
    let fetch = Proc::start(
        share_in(gw.get("LAN2_NETNS"), false)
            .env("SHARE_LOG", "share_engine=debug")
            .arg("fetch")
            .arg(t)
            .arg("-o")
            .arg(d.join("out"))
            .args(["--listen", "0.0.0.0:0", "--peer", via]),
    );
    let err = fetched(fetch);
    let took = started.elapsed();
    assert_same_file(&d.join("src/pair/big.bin"), &d.join("out/pair/big.bin"));
    let punched = err
        .lines()
        .find(|l| l.contains("connected addr") && l.contains(gw.get("ROUTER1_EXTERNAL_IP")))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("never connected to the peer behind the other NAT: {err}"));
    (punched, took)
}
