//! Swarms on loopback through `share tracker`: leechers trade so the seed uploads far less
//! than one copy per leecher, a super-seed uploads about one copy, share and libtorrent
//! leechers complete together, and libtorrent fetches from a super-seed.
//!
//! Nothing here asserts on time: the swarm's promises in time (a free-rider finishes
//! later, the last peer with the median) are sim tests in virtual time
//! (`share-core/src/sim`), measured by hand in network namespaces with `bench/netsim.py`.
//! The one timed scenario here runs only with `SHARE_TIMING_TESTS=1`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::util::*;

const TIMEOUT: Duration = Duration::from_secs(120);

fn tracker() -> Proc {
    Proc::start(share().args(["tracker", "--listen", "127.0.0.1:0", "--interval", "5"]))
}

fn swarm_torrent(d: &Dir, size: usize, tracker: &Proc) -> std::path::PathBuf {
    d.data_file("src/f.bin", size, 31);
    make_torrent(
        d,
        &d.join("src/f.bin"),
        65536,
        &["-t", &format!("http://{}/announce", tracker.addr)],
    )
}

/// `share fetch` with no --peer: peers come from the tracker only.
/// Starts `n` seeding leechers of `t` beside `seed`, waits until each has every piece and
/// the same bytes as the source, stops them all, and returns how many copies of the `size`
/// bytes the seed uploaded, and how many bytes the leechers uploaded.
fn copies_for_leechers(d: &Dir, t: &Path, seed: &mut Proc, n: usize, size: usize) -> (f64, u64) {
    let mut leechers: Vec<Proc> = (0..n)
        .map(|i| leecher(t, &d.join(&format!("l{i}")), &["--seed"]))
        .collect();
    for (i, l) in leechers.iter().enumerate() {
        assert!(
            l.wait_stderr("complete: every piece verified", TIMEOUT),
            "leecher {i} did not finish: {}",
            l.stderr()
        );
    }
    for (i, l) in leechers.iter_mut().enumerate() {
        assert_eq!(l.stop().0, Some(0));
        assert_same_file(&d.join("src/f.bin"), &d.join(&format!("l{i}/f.bin")));
    }
    assert_eq!(seed.stop().0, Some(0));
    let (uploaded, _) = seed.transfer_counts();
    let traded = leechers.iter().map(|l| l.transfer_counts().0).sum();
    (uploaded as f64 / size as f64, traded)
}

fn leecher(t: &Path, dir: &Path, extra: &[&str]) -> Proc {
    start_fetch(t, dir, &[], extra)
}

#[test]
fn six_leechers_trade_so_the_seed_uploads_under_three_copies() {
    let tracker = tracker();
    let d = Dir::new();
    let size = 8 << 20;
    let t = swarm_torrent(&d, size, &tracker);
    let mut seed = start_seed(&t, &d.join("src"), &["--max-upload-rate", "2M"]);
    let (copies, traded) = copies_for_leechers(&d, &t, &mut seed, 6, size);
    eprintln!("seed uploaded {copies:.2} copies for 6 leechers");
    assert!(copies < 3.0, "the seed uploaded {copies:.2} copies");
    assert!(
        traded > size as u64 * 3,
        "leechers uploaded only {traded} bytes to each other"
    );
}

/// Timed (a free-rider's finish against the others' mean), so not in the default run: it
/// once measured 1.079x against its 1.08 bound on a busy machine. The rule it checks is
/// `sim::tests` in share-core (virtual time); `bench/netsim.py --free-rider` measures it
/// in namespaces. `SHARE_TIMING_TESTS=1 cargo test --test tests swarm::a_free_rider` runs it.
#[test]
fn a_free_rider_finishes_later_than_reciprocating_leechers() {
    if std::env::var_os("SHARE_TIMING_TESTS").is_none() {
        eprintln!("timed test: set SHARE_TIMING_TESTS=1 to run it");
        return;
    }
    // Its measure is a time: it runs with no other test beside it.
    let d = Dir::alone();
    let tracker = tracker();
    // Eight leechers that upload at 256 KiB/s and one that never uploads, fed by a seed at
    // 512 KiB/s: the leechers' upload carries most of the swarm, and what each gets of it
    // depends on who unchokes it. Reciprocating leechers win regular slots from each other;
    // the free-rider only its turns at the optimistic slot, the seed's rotation, and slots
    // nobody else wants. The file takes several 30 s optimistic rounds to spread, so that
    // a lucky first draw does not decide the outcome.
    let size = 18 << 20;
    let t = swarm_torrent(&d, size, &tracker);
    let _seed = start_seed(
        &t,
        &d.join("src"),
        &["--max-upload-rate", "512K", "--upload-slots", "2"],
    );
    let start = Instant::now();
    let limits = ["--max-upload-rate", "256K", "--upload-slots", "2"];
    let mut leechers: Vec<Proc> = (0..8)
        .map(|i| leecher(&t, &d.join(&format!("h{i}")), &limits))
        .collect();
    leechers.push(leecher(
        &t,
        &d.join("rider"),
        &["--no-upload", "--upload-slots", "2"],
    ));
    // Each one's finishing time, polled together.
    let timeout = Duration::from_secs(240);
    let mut done: Vec<Option<f64>> = vec![None; leechers.len()];
    while done.iter().any(Option::is_none) {
        assert!(start.elapsed() < timeout, "swarm did not finish: {done:?}");
        for (i, p) in leechers.iter_mut().enumerate() {
            if done[i].is_none() {
                if let Some(status) = p.child.try_wait().unwrap() {
                    assert!(status.success(), "leecher {i}: {}", p.stderr());
                    done[i] = Some(start.elapsed().as_secs_f64());
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut rider = leechers.pop().unwrap();
    rider.wait(timeout);
    let rider_time = done.pop().unwrap().unwrap();
    let mut honest: Vec<f64> = done.into_iter().map(Option::unwrap).collect();
    honest.sort_by(f64::total_cmp);
    assert_same_file(&d.join("src/f.bin"), &d.join("rider/f.bin"));
    assert_eq!(rider.transfer_counts().0, 0, "the free-rider uploaded");
    let mean = honest.iter().sum::<f64>() / honest.len() as f64;
    eprintln!(
        "reciprocating leechers done at {honest:.1?} s (mean {mean:.1}), free-rider at \
         {rider_time:.1} s ({:.2}x the mean)",
        rider_time / mean
    );
    // Measured here: the free-rider at 1.15-1.23x the reciprocating mean, and after the last
    // of them. The bound leaves room for a noisy machine.
    assert!(
        rider_time > mean * 1.08,
        "free-rider {rider_time:.1} s, reciprocating mean {mean:.1} s"
    );
}

#[test]
fn share_and_libtorrent_leechers_complete_in_one_swarm() {
    if !require_libtorrent() {
        return;
    }
    let tracker = tracker();
    let d = Dir::new();
    let t = swarm_torrent(&d, 4 << 20, &tracker);
    let seed = start_seed(&t, &d.join("src"), &["--max-upload-rate", "4M"]);
    let mut shares: Vec<Proc> = (0..2)
        .map(|i| leecher(&t, &d.join(&format!("s{i}")), &["--seed"]))
        .collect();
    let mut lts: Vec<Proc> = (0..2)
        .map(|i| {
            let dir = d.join(&format!("lt{i}"));
            std::fs::create_dir_all(&dir).unwrap();
            Proc::start(
                Command::new(python())
                    .arg(peer_script("lt_peer.py"))
                    .arg("fetch")
                    .arg(&t)
                    .arg(&dir)
                    .args(["--peer", &seed.addr.to_string(), "--timeout", "110"]),
            )
        })
        .collect();
    for l in lts.iter_mut() {
        assert!(
            l.wait_line(|x| x == "done", TIMEOUT).is_some(),
            "libtorrent: {}",
            l.stderr()
        );
    }
    for s in &shares {
        assert!(
            s.wait_stderr("complete: every piece verified", TIMEOUT),
            "{}",
            s.stderr()
        );
    }
    for (i, s) in shares.iter_mut().enumerate() {
        s.stop();
        assert_same_file(&d.join("src/f.bin"), &d.join(&format!("s{i}/f.bin")));
    }
    for i in 0..2 {
        assert_same_file(&d.join("src/f.bin"), &d.join(&format!("lt{i}/f.bin")));
    }
}

#[test]
fn a_super_seed_uploads_about_one_copy_to_two_leechers() {
    let tracker = tracker();
    let d = Dir::new();
    let size = 4 << 20;
    let t = swarm_torrent(&d, size, &tracker);
    // Upload-limited, so that the leechers' trade matters: each piece is shown to one of
    // them, and the other takes it from that one.
    let mut seed = start_seed(
        &t,
        &d.join("src"),
        &["--super-seed", "--max-upload-rate", "1M"],
    );
    let (copies, _) = copies_for_leechers(&d, &t, &mut seed, 2, size);
    eprintln!("super-seed uploaded {copies:.2} copies for 2 leechers");
    assert!(copies >= 1.0, "the seed uploaded {copies:.2} copies");
    assert!(copies < 1.35, "the super-seed uploaded {copies:.2} copies");
}

#[test]
fn libtorrent_fetches_from_a_super_seed() {
    if !require_libtorrent() {
        return;
    }
    let d = Dir::new();
    d.data_file("src/f.bin", 3 << 20, 37);
    let t = make_torrent(&d, &d.join("src/f.bin"), 65536, &[]);
    let seed = start_seed(&t, &d.join("src"), &["--super-seed"]);
    let dir = d.join("lt");
    std::fs::create_dir_all(&dir).unwrap();
    let mut lt = Proc::start(
        Command::new(python())
            .arg(peer_script("lt_peer.py"))
            .arg("fetch")
            .arg(&t)
            .arg(&dir)
            .args(["--peer", &seed.addr.to_string(), "--timeout", "110"]),
    );
    assert!(
        lt.wait_line(|x| x == "done", TIMEOUT).is_some(),
        "libtorrent: {}\nseed: {}",
        lt.stderr(),
        seed.stderr()
    );
    assert_same_file(&d.join("src/f.bin"), &d.join("lt/f.bin"));
}
