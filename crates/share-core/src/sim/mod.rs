//! A swarm in virtual time (tests only): N leechers and one seed, each running the crate's
//! real `Picker` and `Choker` as the engine drives them, exchanging have, interested,
//! choke, request and piece messages with a latency of one tick, every host's upload capped
//! in blocks a tick. Deterministic (seeded), and quick enough for every `cargo test`.
//!
//! It measures what bench/netsim.py measures on real hosts, without timing anything: when
//! each leecher finishes, how many copies the origin uploaded, how far the last leecher
//! trails the median, and how much later a free-rider finishes. `tests.rs` holds the
//! swarm's promises as thresholds on those numbers.

mod host;
mod swarm;
#[cfg(test)]
mod tests;

pub use swarm::{run, Config};
