//! The swarm's promises, measured in the sim (see the module note), in ticks of virtual
//! time: a change to the picker, the choker or the seed's ledger that breaks one fails here.
//!
//! Each promise holds for three seeds of the sim's randomness. The bounds are what the
//! rules achieve with a margin; the goals, where they are tighter, are beside them
//! (a swarm of N leechers within 1.3x the time of one download, the origin sending at most
//! 1.2 copies, a free-rider 1.5x later): the sim's own floor is above some of them (with
//! unlimited leecher upload, 16 leechers still take 1.2-1.3x, from the seed's pace and the
//! hops of the last pieces), and docs/engine.md says where the rest goes.

use std::sync::OnceLock;

use super::*;
use crate::seeding::Mode;

/// Seeds of the sim's randomness each promise is checked for.
const RNGS: [u64; 3] = [1, 2, 3];

/// Swarms of 16 and 32 finish within this many times one download's time (goal: 1.3;
/// before: 3.5-4.7 at N=16, 5.9-8.2 at N=32).
const MAX_TIME_RATIO: f64 = 1.65;
/// Copies of the content the origin uploads at N = 16 and 32 (goal: 1.2; before: 2.0-2.5).
const MAX_ORIGIN_COPIES: f64 = 1.4;
/// How much later than the median the last leecher finishes (goal and bound: 10%, at
/// N=16; 15% at N=32; before: 80-140%).
const MAX_SPREAD_16: f64 = 0.10;
const MAX_SPREAD_32: f64 = 0.15;
/// A free-rider's finish over the reciprocating mean (goal: 1.5; before: 0.65, it finished
/// first).
const MIN_FREE_RIDER_RATIO: f64 = 1.35;
/// The reciprocating mean with a free-rider over the mean without one (goal: 1.0).
const MAX_FREE_RIDER_COST: f64 = 1.07;

fn runs(leechers: usize, free_riders: usize, seeding: Option<Mode>) -> Vec<Outcome> {
    RNGS.iter()
        .map(|&rng| {
            let mut c = Config::swarm(leechers);
            c.rng = rng;
            c.free_riders = free_riders;
            c.seeding = seeding;
            run(&c)
        })
        .collect()
}

/// The runs several promises share, each made once.
fn alone() -> &'static [Outcome] {
    static RUNS: OnceLock<Vec<Outcome>> = OnceLock::new();
    RUNS.get_or_init(|| runs(1, 0, Some(Mode::Suggest)))
}

fn sixteen() -> &'static [Outcome] {
    static RUNS: OnceLock<Vec<Outcome>> = OnceLock::new();
    RUNS.get_or_init(|| runs(16, 0, Some(Mode::Suggest)))
}

fn thirty_two() -> &'static [Outcome] {
    static RUNS: OnceLock<Vec<Outcome>> = OnceLock::new();
    RUNS.get_or_init(|| runs(32, 0, Some(Mode::Suggest)))
}

#[test]
fn one_download_takes_the_content_at_the_upload_rate() {
    for o in alone() {
        // 1024 blocks at 16 a tick, plus the round trips to start.
        assert!((64..=72).contains(&o.time()), "{}", o.line("N=1"));
        assert_eq!(o.seed_blocks, o.content_blocks);
    }
}

#[test]
fn a_swarm_takes_little_longer_than_one_download() {
    let one = alone()[0].time() as f64;
    for (n, o) in sixteen()
        .iter()
        .map(|o| (16, o))
        .chain(thirty_two().iter().map(|o| (32, o)))
    {
        let ratio = o.time() as f64 / one;
        assert!(
            ratio <= MAX_TIME_RATIO,
            "{ratio:.2}x: {}",
            o.line(&format!("N={n}"))
        );
    }
}

#[test]
fn the_origin_sends_each_piece_about_once() {
    for (n, o) in sixteen()
        .iter()
        .map(|o| (16, o))
        .chain(thirty_two().iter().map(|o| (32, o)))
    {
        assert!(
            o.origin_copies() <= MAX_ORIGIN_COPIES,
            "{}",
            o.line(&format!("N={n}"))
        );
    }
    // With room for every leecher at once, too.
    for o in runs(4, 0, Some(Mode::Suggest)) {
        assert!(o.origin_copies() <= 1.25, "{}", o.line("N=4"));
    }
}

#[test]
fn no_leecher_trails_the_swarm() {
    for o in sixteen() {
        assert!(o.spread() <= MAX_SPREAD_16, "{}", o.line("N=16"));
    }
    for o in thirty_two() {
        assert!(o.spread() <= MAX_SPREAD_32, "{}", o.line("N=32"));
    }
}

#[test]
fn a_free_rider_finishes_markedly_later_without_slowing_the_others() {
    let with = runs(16, 1, Some(Mode::Suggest));
    for (o, without) in with.iter().zip(sixteen()) {
        let label = "N=16 + 1 free-rider";
        assert!(
            o.free_rider_ratio() >= MIN_FREE_RIDER_RATIO,
            "{}",
            o.line(label)
        );
        let cost = o.mean() / without.mean();
        assert!(cost <= MAX_FREE_RIDER_COST, "{cost:.3}: {}", o.line(label));
    }
}

#[test]
fn a_super_seed_hands_each_piece_out_about_once() {
    for o in runs(16, 0, Some(Mode::Super)) {
        assert!(o.origin_copies() <= 1.45, "{}", o.line("super N=16"));
        assert!(o.spread() <= 0.10, "{}", o.line("super N=16"));
    }
}

#[test]
fn the_engine_as_it_is_gains_from_the_choker_alone() {
    // Before the integration: only the choker's own rules are new, and no leecher trails
    // the swarm by the seed's ten-second rounds any more (before: 81-95% at N=16).
    for rng in RNGS {
        let mut c = Config::swarm(16);
        c.rng = rng;
        c.integrated = false;
        let o = run(&c);
        assert!(o.spread() <= 0.25, "{}", o.line("today N=16"));
    }
}

/// The table in the report: `cargo test -p share-core sim::tests::table -- --ignored
/// --nocapture` (N = 1, 4, 16, 32 and the free-rider case, for each seed policy).
#[test]
#[ignore]
fn table() {
    let modes = [
        ("today", false, None),
        ("plain", true, None),
        ("suggest", true, Some(Mode::Suggest)),
        ("super", true, Some(Mode::Super)),
    ];
    for (name, integrated, mode) in modes {
        for rng in RNGS {
            for (n, riders) in [(1, 0), (4, 0), (16, 0), (32, 0), (16, 1)] {
                let mut c = Config::swarm(n);
                c.rng = rng;
                c.integrated = integrated;
                c.seeding = mode;
                c.free_riders = riders;
                let label = format!(
                    "{name} rng {rng} N={n}{}",
                    if riders > 0 { "+fr" } else { "" }
                );
                println!("{}", run(&c).line(&label));
            }
        }
    }
}

/// What limits the swarm when leechers' upload does not: `cargo test -p share-core
/// sim::tests::floor -- --ignored --nocapture`.
#[test]
#[ignore]
fn floor() {
    for rng in RNGS {
        for n in [16, 32] {
            let mut c = Config::swarm(n);
            c.rng = rng;
            c.leecher_upload = Some(1000);
            println!(
                "{}",
                run(&c).line(&format!("unlimited leechers rng {rng} N={n}"))
            );
        }
    }
}
