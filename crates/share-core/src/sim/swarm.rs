//! The world of the sim: hosts, the links between them, and the clock.
//!
//! One seed (the origin) and N leechers, every host connected to every other. Each tick:
//! the messages sent during the previous tick are delivered (a latency of one tick), then
//! every host uploads up to its capacity, and once a second of virtual time (staggered,
//! as real hosts' timers are) each host runs the engine's tick. Downloads are unlimited.
//! A leecher leaves as soon as it is done (`share fetch` without `--seed`).

use crate::bitfield::Bitfield;
use crate::choker::Choker;
use crate::picker::{PeerKey, Picker};
use crate::seeding::{Handout, Mode};
use crate::wire::MAX_BLOCK;

use super::host::{Host, Outbox};

/// The key of the seed; leechers are 1..=N.
pub const SEED: PeerKey = 0;

#[derive(Debug, Clone)]
pub struct Config {
    /// Leechers that upload.
    pub leechers: usize,
    /// Leechers that never unchoke anyone (keys after the others).
    pub free_riders: usize,
    pub pieces: u32,
    /// Blocks (16 KiB) a piece.
    pub piece_blocks: u32,
    /// Blocks each host may upload a tick.
    pub upload: u32,
    /// Blocks each leecher may upload a tick, if not `upload` (what limits a swarm).
    pub leecher_upload: Option<u32>,
    /// Ticks in a second of the choker's clock.
    pub ticks_per_sec: u64,
    /// `--upload-slots`.
    pub slots: usize,
    pub rng: u64,
    /// Give up (the outcome says who did not finish).
    pub max_ticks: u64,
    /// The seed's ledger: None for a plain seed (as before), or how it hands pieces out.
    pub seeding: Option<Mode>,
    /// The engine does what `seeding`'s integration note asks (false: the engine as it
    /// is, with only the picker's and the choker's own rules new; implies no ledger).
    pub integrated: bool,
    /// Print each host's state once a second (for a person reading a run).
    pub trace: bool,
}

impl Config {
    /// The netsim shape scaled to a test: 16 MiB in 64 pieces of 256 KiB, every host
    /// uploading 2 MiB/s (16 blocks a tick of 1/8 s), four slots.
    pub fn swarm(leechers: usize) -> Self {
        Config {
            leechers,
            free_riders: 0,
            pieces: 64,
            piece_blocks: 16,
            upload: 16,
            leecher_upload: None,
            ticks_per_sec: 8,
            slots: 4,
            rng: 1,
            max_ticks: 4000,
            seeding: Some(Mode::Suggest),
            integrated: true,
            trace: false,
        }
    }
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Each leecher's finishing tick (None: not done by `max_ticks`), free-riders last.
    pub finish: Vec<Option<u64>>,
    pub free_riders: usize,
    /// Blocks the seed uploaded.
    pub seed_blocks: u64,
    /// Blocks in the content.
    pub content_blocks: u64,
}

impl Outcome {
    fn done(&self) -> Vec<u64> {
        self.finish
            .iter()
            .map(|f| f.expect("every leecher finished"))
            .collect()
    }

    fn reciprocating(&self) -> Vec<u64> {
        let d = self.done();
        d[..d.len() - self.free_riders].to_vec()
    }

    /// Ticks until every leecher is done.
    pub fn time(&self) -> u64 {
        self.done().into_iter().max().unwrap_or(0)
    }

    /// Copies of the content the seed uploaded.
    pub fn origin_copies(&self) -> f64 {
        self.seed_blocks as f64 / self.content_blocks as f64
    }

    /// The median finishing tick of the reciprocating leechers.
    pub fn median(&self) -> f64 {
        let mut d = self.reciprocating();
        d.sort_unstable();
        let n = d.len();
        if n % 2 == 1 {
            d[n / 2] as f64
        } else {
            (d[n / 2 - 1] + d[n / 2]) as f64 / 2.0
        }
    }

    /// How much later than the median the last reciprocating leecher finished (0.1: 10%).
    pub fn spread(&self) -> f64 {
        let last = self.reciprocating().into_iter().max().unwrap_or(0) as f64;
        last / self.median() - 1.0
    }

    /// The reciprocating leechers' mean finishing tick.
    pub fn mean(&self) -> f64 {
        let d = self.reciprocating();
        d.iter().sum::<u64>() as f64 / d.len() as f64
    }

    /// The first free-rider's finishing tick over the reciprocating mean.
    pub fn free_rider_ratio(&self) -> f64 {
        let d = self.done();
        d[d.len() - self.free_riders] as f64 / self.mean()
    }

    /// One line for the tables in test output and the report.
    pub fn line(&self, label: &str) -> String {
        let mut s = format!(
            "{label:<22} time {:>4}  origin {:.2} copies  median {:>5.1}  mean {:>5.1}  last/median {:+5.1}%",
            self.time(),
            self.origin_copies(),
            self.median(),
            self.mean(),
            self.spread() * 100.0
        );
        if self.free_riders > 0 {
            s += &format!("  free-rider {:.2}x", self.free_rider_ratio());
        }
        s
    }
}

/// Runs one swarm to the end (or `max_ticks`).
pub fn run(cfg: &Config) -> Outcome {
    let n = cfg.leechers + cfg.free_riders;
    let piece_len = cfg.piece_blocks * MAX_BLOCK;
    let total = cfg.pieces as u64 * piece_len as u64;
    let mut hosts: Vec<Host> = (0..=n as u64)
        .map(|key| {
            let have = if key == SEED {
                Bitfield::full(cfg.pieces)
            } else {
                Bitfield::new(cfg.pieces)
            };
            let rng = cfg.rng.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (key + 1);
            let picker = Picker::new(piece_len, total, have, rng);
            let mut choker = Choker::new(cfg.slots, rng.rotate_left(17));
            if cfg.integrated {
                // Integration: optimistic turns are a piece long.
                choker.set_optimistic_turn(piece_len as u64);
            }
            let mut h = Host::new(key, picker, choker, cfg.ticks_per_sec);
            h.free_rider = key as usize > cfg.leechers;
            h.integrated = cfg.integrated;
            if key == SEED && cfg.integrated {
                h.handout = cfg.seeding.map(|m| Handout::new(piece_len, total, m, rng));
            }
            h
        })
        .collect();
    let mut alive = vec![true; n + 1];
    let mut out: Outbox = Vec::new();
    for (a, h) in hosts.iter_mut().enumerate() {
        for b in (0..=n).filter(|&b| b != a) {
            h.connect(b as PeerKey, &mut out);
        }
    }
    let mut finish: Vec<Option<u64>> = vec![None; n];
    for tick in 1..=cfg.max_ticks {
        for (from, to, m) in std::mem::take(&mut out) {
            if alive[from as usize] && alive[to as usize] {
                hosts[to as usize].on_message(tick, from, m, &mut out);
            }
        }
        for (k, h) in hosts.iter_mut().enumerate() {
            if alive[k] {
                let cap = match cfg.leecher_upload {
                    Some(cap) if k as PeerKey != SEED => cap,
                    _ => cfg.upload,
                };
                h.upload(cap, &mut out);
            }
        }
        for (k, h) in hosts.iter_mut().enumerate() {
            if alive[k] && (tick + k as u64).is_multiple_of(cfg.ticks_per_sec) {
                h.on_second(tick, &mut out);
            }
        }
        // The done leave; the others see their connections close.
        for k in 1..=n {
            if alive[k] && hosts[k].done_at.is_some() {
                alive[k] = false;
                finish[k - 1] = hosts[k].done_at;
                for (j, h) in hosts.iter_mut().enumerate() {
                    if alive[j] {
                        h.disconnect(k as PeerKey, tick, &mut out);
                    }
                }
            }
        }
        if cfg.trace && tick.is_multiple_of(cfg.ticks_per_sec) {
            let mut line = format!("{tick:>4}");
            for (k, h) in hosts.iter().enumerate() {
                if alive[k] {
                    line += &format!(" | {}", h.summary());
                }
            }
            println!("{line}");
        }
        if finish.iter().all(Option::is_some) {
            break;
        }
    }
    Outcome {
        finish,
        free_riders: cfg.free_riders,
        seed_blocks: hosts[SEED as usize].sent_blocks,
        content_blocks: (cfg.pieces * cfg.piece_blocks) as u64,
    }
}
