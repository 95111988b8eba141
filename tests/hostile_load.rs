//! Hostile load: each hostile peer of tests/peers/hostile.py beside an honest seed. The
//! fetch completes with the right bytes and bounded memory, and the hostile peer is banned or
//! dropped. Each test prints its fetch time and the same fetch's time with no hostile peer
//! (bench/hostile.py makes the table).

use std::process::Command;
use std::time::{Duration, Instant};

use crate::util::*;

const TIMEOUT: Duration = Duration::from_secs(120);
const SIZE: usize = 16 << 20;
const PIECE: u32 = 65536;

struct Setup {
    d: Dir,
    t: std::path::PathBuf,
    hash: String,
    pieces: u32,
    seed: Proc,
}

fn setup() -> Setup {
    let d = Dir::new();
    d.data_file("src/f.bin", SIZE, 91);
    let t = make_torrent(&d, &d.join("src/f.bin"), PIECE, &[]);
    let (hash, _) = magnet_of(&t);
    // A seed at 4 MiB/s: the fetch takes seconds, long enough for the hostile peer to matter.
    let seed = start_seed(&t, &d.join("src"), &["--max-upload-rate", "4M"]);
    Setup {
        pieces: (SIZE as u32).div_ceil(PIECE),
        hash: hash.to_hex(),
        d,
        t,
        seed,
    }
}

fn hostile(mode: &str, s: &Setup, extra: &[&str]) -> Command {
    let mut c = Command::new("python3");
    c.arg(peer_script("hostile.py"))
        .arg(mode)
        .args([
            "--hash",
            &s.hash,
            "--pieces",
            &s.pieces.to_string(),
            "--timeout",
            "110",
        ])
        .args(extra);
    c
}

/// Fetches from the seed (and `others`) into a fresh folder; returns the time it took.
/// A fetch from the seed and `others`: its time, the process, and its peak RSS (sampled
/// while it runs).
fn fetch(s: &Setup, dir: &str, others: &[std::net::SocketAddr]) -> (f64, Proc, u64) {
    let mut peers = others.to_vec();
    peers.push(s.seed.addr);
    let start = Instant::now();
    let mut f = start_fetch(&s.t, &s.d.join(dir), &peers, &[]);
    let mut rss = 0;
    while f.child.try_wait().unwrap().is_none() && start.elapsed() < TIMEOUT {
        rss = rss.max(peak_rss(f.child.id()));
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, _) = f.wait(TIMEOUT);
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(code, Some(0), "{}", f.stderr());
    assert_same_file(&s.d.join("src/f.bin"), &s.d.join(dir).join("f.bin"));
    (secs, f, rss)
}

fn assert_bounded_rss(p: &Proc, what: &str) {
    let rss = peak_rss(p.child.id());
    assert!(rss == 0 || rss < 200 << 20, "{what}: peak RSS {rss}");
}

/// A hostile peer the fetch is given as `--peer`, beside the honest seed.
fn beside_a_peer(mode: &str, banned_for: Option<&str>) {
    let s = setup();
    let (base, _, base_rss) = fetch(&s, "base", &[]);
    let mut h = Proc::start(&mut hostile(mode, &s, &[]));
    let (secs, f, rss) = fetch(&s, "dst", &[h.addr]);
    // Bounded memory: the hostile peer costs the fetch no more than a few MiB over a fetch
    // without it.
    assert!(rss < 200 << 20, "{mode}: the fetch peaked at {rss} bytes");
    let err = f.stderr();
    if let Some(why) = banned_for {
        assert!(
            err.contains(&format!("banned peer {}: {why}", h.addr)),
            "{mode}: {err}"
        );
    }
    // Junk is not counted as downloaded.
    let (_, down) = f.transfer_counts();
    assert!(
        down <= SIZE as u64 + (SIZE as u64 / 10),
        "{mode}: counted {down} bytes"
    );
    let dropped = h.wait_line(|l| l.starts_with("dropped after"), Duration::from_secs(90));
    assert!(
        dropped.is_some(),
        "{mode}: the hostile peer was never dropped: {err}"
    );
    eprintln!(
        "{mode}: fetch {secs:.2} s, peak RSS {} MiB beside the hostile peer; {base:.2} s, {} MiB without ({})",
        rss >> 20,
        base_rss >> 20,
        dropped.unwrap()
    );
}

#[test]
fn a_flood_of_unrequested_blocks_is_dropped_uncounted_and_its_sender_banned() {
    beside_a_peer(
        "unrequested",
        Some("sent 65 blocks that were never requested"),
    );
}

#[test]
fn a_flood_of_100000_requests_gets_its_sender_banned() {
    beside_a_peer("requests", Some("flooded requests that we do not serve"));
}

#[test]
fn floods_of_haves_and_bitfields_get_their_sender_dropped() {
    beside_a_peer("haves", None);
}

#[test]
fn a_flood_of_extension_messages_gets_its_sender_banned() {
    beside_a_peer("extended", Some("flooded extension messages"));
}

#[test]
fn a_peer_that_sends_a_byte_a_second_does_not_hold_the_download() {
    beside_a_peer("slow", None);
}

/// A hostile load on the seed's listener while the fetch connects to it.
fn at_the_listener(mode: &str, extra: &[&str]) {
    let s = setup();
    let (base, _, _) = fetch(&s, "base", &[]);
    let target = s.seed.addr.to_string();
    let mut args = vec!["--target", target.as_str()];
    args.extend_from_slice(extra);
    let mut h = Proc::start_with(&mut hostile(mode, &s, &args), |l| l == "started");
    std::thread::sleep(Duration::from_secs(2));
    let (secs, _, _) = fetch(&s, "dst", &[]);
    assert_bounded_rss(&s.seed, mode);
    let (_, out) = h.stop();
    eprintln!(
        "{mode}: fetch {secs:.2} s under the load, {base:.2} s without ({})",
        out.last().cloned().unwrap_or_default()
    );
}

#[test]
fn three_hundred_slowloris_connections_do_not_keep_an_honest_peer_out() {
    at_the_listener("slowloris", &["--count", "300"]);
}

#[test]
fn five_hundred_connections_a_second_opened_and_dropped_do_not_keep_an_honest_peer_out() {
    at_the_listener("churn", &["--rate", "500"]);
}
