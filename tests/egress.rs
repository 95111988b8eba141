//! Where traffic goes (`--interface`, `--proxy`) and whom it never reaches (`--blocklist`).
//!
//! The interface and proxy tests run in network namespaces they make (tests/netns.rs
//! `Lab`), with nftables counters on the client's links as the witness: a packet that took
//! the wrong way is counted. The blocklist tests run on loopback, where 127.0.0.2 and
//! 127.0.0.3 are two hosts.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::netns::Lab;
use crate::util::*;

const TIMEOUT: Duration = Duration::from_secs(120);

/// Counters in `ns` of TCP and UDP packets sent through each of `devs`, and of those sent
/// to any address but `only_to` (when given).
fn count_output(lab: &Lab, ns: &str, dir: &Path, devs: &[&str], only_to: Option<&str>) {
    let mut rules = String::new();
    for d in devs {
        rules.push_str(&format!(
            "    oifname \"{d}\" meta l4proto {{ tcp, udp }} counter comment \"{d}\"\n"
        ));
    }
    if let Some(ip) = only_to {
        rules.push_str(&format!(
            "    ip daddr != {ip} meta l4proto {{ tcp, udp }} oifname != \"lo\" counter comment \"elsewhere\"\n\
             \x20   meta nfproto ipv6 meta l4proto {{ tcp, udp }} oifname != \"lo\" counter comment \"elsewhere6\"\n"
        ));
    }
    let file = dir.join(format!("{ns}.nft"));
    std::fs::write(
        &file,
        format!("table inet egress {{\n  chain out {{\n    type filter hook output priority 0; policy accept;\n{rules}  }}\n}}\n"),
    )
    .unwrap();
    lab.run(ns, &["nft", "-f", file.to_str().unwrap()]);
}

/// The packets the rule with `comment` counted so far.
fn packets(lab: &Lab, ns: &str, comment: &str) -> u64 {
    let text = lab.output(ns, &["nft", "list", "chain", "inet", "egress", "out"]);
    let line = text
        .lines()
        .find(|l| l.contains(&format!("comment \"{comment}\"")))
        .unwrap_or_else(|| panic!("no counter {comment} in {text}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let i = words.iter().position(|w| *w == "packets").expect("packets");
    words[i + 1].parse().unwrap()
}

/// A torrent of `content` at `out`, with 32 KiB pieces.
fn torrent(content: &Path, out: &Path, extra: &[&str]) -> std::path::PathBuf {
    ok(share()
        .arg("create")
        .arg(content)
        .args(["-q", "--no-date", "--piece-length", "32768", "-o"])
        .arg(out)
        .args(extra));
    out.to_path_buf()
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn seed_in(lab_ns: &str, t: &Path, dir: &Path, ip: &str, extra: &[&str]) -> Proc {
    let mut cmd = share_in_namespace();
    cmd.env("SHARE_NO_LSD", "1")
        .arg("seed")
        .arg(t)
        .arg("-d")
        .arg(dir)
        .args(["--listen", &format!("{ip}:0")])
        .args(extra);
    Proc::start(&mut crate::netns::Pair::exec(lab_ns, &cmd))
}

/// A client with a "vpn" and a "lan" link, each to a namespace with a seed reachable only
/// through it, and its default route (so its trackers and DHT node) on the lan. Bound to
/// the vpn, it fetches through the vpn alone: the lan's counter stays at zero, DHT,
/// trackers and LSD included, also while the vpn is down; when the vpn comes back the
/// fetch carries on and completes.
#[test]
fn bound_to_the_vpn_interface_nothing_leaves_through_the_lan_even_while_it_is_down() {
    if !require("nft", "nftables") {
        return;
    }
    let mut lab = Lab::new();
    let (c, v, l) = (lab.ns("c"), lab.ns("v"), lab.ns("l"));
    lab.link(&c, "vpn", "10.77.1.1", &v, "eth0", "10.77.1.2");
    lab.link(&c, "lan", "10.77.2.1", &l, "eth0", "10.77.2.2");
    lab.run(
        &c,
        &[
            "ip",
            "route",
            "add",
            "default",
            "via",
            "10.77.2.2",
            "dev",
            "lan",
        ],
    );
    let d = Dir::new();
    d.data_file("src/f.bin", 8 << 20, 71);
    let t = make_torrent(&d, &d.join("src/f.bin"), 65536, &[]);
    count_output(&lab, &c, d.path(), &["vpn", "lan"], None);

    // The vpn's seed is slow enough that the fetch is under way when the vpn goes down.
    let vpn_seed = seed_in(
        &v,
        &t,
        &d.join("src"),
        "10.77.1.2",
        &["--max-upload-rate", "768K"],
    );
    let lan_seed = seed_in(&l, &t, &d.join("src"), "10.77.2.2", &[]);
    let mut tracker = share_in_namespace();
    tracker.args(["tracker", "--listen", "10.77.2.2:0", "--quiet"]);
    let tracker = Proc::start(&mut crate::netns::Pair::exec(&l, &tracker));

    let mut cmd = share_in_namespace();
    cmd.env_remove("SHARE_NO_DHT")
        .env_remove("SHARE_NO_LSD")
        .arg("fetch")
        .arg(&t)
        .arg("-o")
        .arg(d.join("dst"))
        .args(["--interface", "vpn", "--listen", "0.0.0.0:0"])
        .args(["--peer", &vpn_seed.addr.to_string()])
        .args(["--peer", &lan_seed.addr.to_string()])
        .args(["-t", &format!("http://{}/announce", tracker.addr)])
        .args(["-t", &format!("udp://{}/announce", tracker.addr)])
        .args(["--dht-bootstrap", "10.77.2.2:6881"]);
    let mut fetch = Proc::start(&mut crate::netns::Pair::exec(&c, &cmd));

    wait_until("data through the vpn", Duration::from_secs(30), || {
        packets(&lab, &c, "vpn") > 50
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        packets(&lab, &c, "lan"),
        0,
        "a packet went out through the lan"
    );

    lab.run(&c, &["ip", "link", "set", "vpn", "down"]);
    assert!(
        fetch.wait_stderr("interface vpn is down", Duration::from_secs(10)),
        "no line said the interface went down: {}",
        fetch.stderr()
    );
    std::thread::sleep(Duration::from_secs(6));
    assert!(
        fetch.child.try_wait().unwrap().is_none(),
        "the fetch ended while the vpn was down: {}",
        fetch.stderr()
    );
    assert_eq!(
        packets(&lab, &c, "lan"),
        0,
        "with the vpn down, a packet went out through the lan"
    );

    lab.run(&c, &["ip", "link", "set", "vpn", "up"]);
    assert!(
        fetch.wait_stderr("interface vpn is back", Duration::from_secs(10)),
        "no line said the interface came back: {}",
        fetch.stderr()
    );
    let (code, _) = fetch.wait(TIMEOUT);
    assert_eq!(code, Some(0), "{}", fetch.stderr());
    assert_same_file(&d.join("src/f.bin"), &d.join("dst/f.bin"));
    assert_eq!(
        packets(&lab, &c, "lan"),
        0,
        "a packet went out through the lan"
    );
    let err = fetch.stderr();
    assert_eq!(err.matches("interface vpn is down").count(), 1, "{err}");
    assert_eq!(err.matches("interface vpn is back").count(), 1, "{err}");
}

/// A SOCKS5 proxy (dante) in a namespace that is the client's only way out: the client
/// fetches one torrent from a libtorrent seed it learns of from an HTTP tracker, another
/// from a web seed, and a third from a seed it learns of from a UDP tracker (through the
/// proxy's UDP relay), all through the proxy; nothing is sent to any address but the
/// proxy's.
#[test]
fn through_a_socks5_proxy_that_is_the_only_way_out_nothing_goes_around_it() {
    if !require("nft", "nftables") || !require("danted", "dante-server") || !require_libtorrent() {
        return;
    }
    let mut lab = Lab::new();
    let (c, p, w) = (lab.ns("c"), lab.ns("p"), lab.ns("w"));
    lab.link(&c, "uplink", "10.78.1.1", &p, "in", "10.78.1.2");
    lab.link(&p, "out", "10.78.2.1", &w, "eth0", "10.78.2.2");
    let d = Dir::new();
    count_output(&lab, &c, d.path(), &[], Some("10.78.1.2"));
    let _proxy = dante(&lab, &p, d.path(), true);

    let mut tracker = share_in_namespace();
    tracker.args(["tracker", "--listen", "10.78.2.2:0", "--quiet"]);
    let tracker = Proc::start(&mut crate::netns::Pair::exec(&w, &tracker));
    let announce = format!("http://{}/announce", tracker.addr);

    // One torrent from a libtorrent seed found through the tracker.
    d.data_file("lt/a.bin", 3 << 20, 72);
    let ta = torrent(
        &d.join("lt/a.bin"),
        &d.join("a.torrent"),
        &["-t", &announce],
    );
    let mut lt = Command::new(python());
    lt.arg(peer_script("lt_peer.py"))
        .arg("seed")
        .arg(&ta)
        .arg(d.join("lt"))
        .args(["--listen-ip", "10.78.2.2", "--timeout", "200"]);
    let mut lt = Proc::start(&mut crate::netns::Pair::exec(&w, &lt));
    assert!(
        lt.wait_line(|l| l == "seeding", TIMEOUT).is_some(),
        "{}",
        lt.stderr()
    );

    // Another from a web seed.
    d.data_file("web/b.bin", 2 << 20, 73);
    let mut web = Command::new(pypi_python());
    web.arg(peer_script("web_server.py"))
        .arg(d.join("web"))
        .args(["--bind", "10.78.2.2"]);
    let web = Proc::start(&mut crate::netns::Pair::exec(&w, &web));
    let web_seed = format!("http://{}/", web.addr);
    let tb = torrent(
        &d.join("web/b.bin"),
        &d.join("b.torrent"),
        &["--web-seed", &web_seed],
    );

    // A third from a share seed found through a UDP tracker: the announce goes through the
    // proxy's UDP relay.
    d.data_file("udp/c.bin", 1 << 20, 75);
    let udp_announce = format!("udp://{}/announce", tracker.addr);
    let tc = torrent(
        &d.join("udp/c.bin"),
        &d.join("c.torrent"),
        &["-t", &udp_announce],
    );
    let _udp_seed = seed_in(&w, &tc, &d.join("udp"), "10.78.2.2", &[]);

    let mut cmd = share_in_namespace();
    cmd.env("SHARE_NO_LSD", "1")
        .arg("fetch")
        .arg(&ta)
        .arg(&tb)
        .arg(&tc)
        .arg("-o")
        .arg(d.join("dst"))
        .args([
            "--proxy",
            "socks5://10.78.1.2:1080",
            "--listen",
            "0.0.0.0:0",
        ]);
    let mut fetch = Proc::start(&mut crate::netns::Pair::exec(&c, &cmd));
    let (code, _) = fetch.wait(TIMEOUT);
    assert_eq!(
        code,
        Some(0),
        "{}\nlibtorrent: {}\nweb: {}",
        fetch.stderr(),
        lt.stderr(),
        web.stderr()
    );
    assert_same_file(&d.join("lt/a.bin"), &d.join("dst/a.bin"));
    assert_same_file(&d.join("web/b.bin"), &d.join("dst/b.bin"));
    assert_same_file(&d.join("udp/c.bin"), &d.join("dst/c.bin"));
    assert!(
        web.stderr().contains("-> 206"),
        "the web seed served nothing: {}",
        web.stderr()
    );
    // Dante relays UDP: µTP went through its relay, nothing was turned off.
    assert!(!fetch.stderr().contains("are off"), "{}", fetch.stderr());
    assert_eq!(
        packets(&lab, &c, "elsewhere"),
        0,
        "a packet went around the proxy"
    );
    assert_eq!(
        packets(&lab, &c, "elsewhere6"),
        0,
        "an IPv6 packet went around the proxy"
    );
}

/// A proxy that relays no UDP (microsocks has no UDP ASSOCIATE): one warning names the
/// DHT, UDP trackers and µTP, which are off; no packet goes anywhere but the proxy.
#[test]
fn a_proxy_without_udp_associate_turns_off_the_dht_udp_trackers_and_utp_with_one_warning() {
    if !require("nft", "nftables") || !require("microsocks", "microsocks") {
        return;
    }
    let mut lab = Lab::new();
    let (c, p) = (lab.ns("c"), lab.ns("p"));
    lab.link(&c, "uplink", "10.79.1.1", &p, "in", "10.79.1.2");
    let d = Dir::new();
    count_output(&lab, &c, d.path(), &[], Some("10.79.1.2"));
    let mut ms = Command::new("ip");
    ms.args([
        "netns",
        "exec",
        &p,
        "microsocks",
        "-i",
        "10.79.1.2",
        "-p",
        "1080",
    ]);
    let _proxy = Background::spawn(ms);
    wait_listening(&lab, &p, "10.79.1.2:1080");

    d.data_file("src/f.bin", 100_000, 74);
    let t = make_torrent(
        &d,
        &d.join("src/f.bin"),
        32768,
        &["-t", "udp://10.79.2.2:6969/announce"],
    );
    let mut cmd = share_in_namespace();
    cmd.env_remove("SHARE_NO_DHT")
        .env("SHARE_NO_LSD", "1")
        .arg("fetch")
        .arg(&t)
        .arg("-o")
        .arg(d.join("dst"))
        .args([
            "--proxy",
            "socks5://10.79.1.2:1080",
            "--listen",
            "0.0.0.0:0",
        ])
        .args(["--dht-bootstrap", "10.79.2.2:6881"]);
    let fetch = Proc::start(&mut crate::netns::Pair::exec(&c, &cmd));
    assert!(
        fetch.wait_stderr("UDP trackers and µTP are off", Duration::from_secs(20)),
        "{}",
        fetch.stderr()
    );
    std::thread::sleep(Duration::from_secs(3));
    let err = fetch.stderr();
    let warning = err
        .lines()
        .find(|l| l.contains("are off"))
        .unwrap_or_default()
        .to_owned();
    for named in ["the DHT", "UDP trackers", "µTP", "socks5://10.79.1.2:1080"] {
        assert!(
            warning.contains(named),
            "the warning does not name {named}: {warning}"
        );
    }
    assert_eq!(
        err.matches("are off, since").count(),
        1,
        "one warning: {err}"
    );
    assert_eq!(
        packets(&lab, &c, "elsewhere"),
        0,
        "a packet went around the proxy"
    );
    assert_eq!(
        packets(&lab, &c, "elsewhere6"),
        0,
        "an IPv6 packet went around the proxy"
    );
}

/// A process started by a test with no `listening on` line of its own: killed by its PID
/// when dropped.
struct Background(std::process::Child);

impl Background {
    fn spawn(mut cmd: Command) -> Background {
        let child = cmd
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {cmd:?}: {e}"));
        Background(child)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_listening(lab: &Lab, ns: &str, addr: &str) {
    wait_until(
        &format!("a listener on {addr}"),
        Duration::from_secs(15),
        || lab.output(ns, &["ss", "-ltnH"]).contains(addr),
    );
}

/// Debian's dante in `ns`, on 10.78.1.2:1080 towards 10.78.2.1, relaying UDP if `udp`.
fn dante(lab: &Lab, ns: &str, dir: &Path, udp: bool) -> Background {
    let commands = if udp {
        "connect udpassociate"
    } else {
        "connect"
    };
    let conf = dir.join("danted.conf");
    std::fs::write(
        &conf,
        format!(
            "logoutput: stderr\n\
             internal: 10.78.1.2 port = 1080\n\
             external: 10.78.2.1\n\
             clientmethod: none\n\
             socksmethod: none\n\
             user.privileged: root\n\
             user.unprivileged: nobody\n\
             client pass {{ from: 10.78.1.0/24 to: 0.0.0.0/0 }}\n\
             socks pass {{ from: 10.78.1.0/24 to: 0.0.0.0/0 command: {commands} }}\n\
             socks pass {{ from: 0.0.0.0/0 to: 10.78.1.0/24 command: udpreply }}\n"
        ),
    )
    .unwrap();
    let danted = ["/usr/sbin/danted", "danted"]
        .into_iter()
        .find(|p| Path::new(p).is_absolute() && Path::new(p).exists())
        .unwrap_or("danted");
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, danted, "-f"]).arg(&conf);
    let b = Background::spawn(cmd);
    wait_listening(lab, ns, "10.78.1.2:1080");
    b
}
