//! A swarm in virtual time (tests only): N leechers and one seed, each running the crate's
//! real `Picker` and `Choker` (and a seed's `seeding::Handout`) as the engine's torrent task
//! drives them, exchanging have, interested, choke, request, piece and suggest messages
//! with a latency of one tick, every host's upload capped in blocks a tick. Deterministic
//! (seeded), and quick enough for every `cargo test`.
//!
//! It measures what bench/netsim.py measures on real hosts, without timing anything: when
//! each leecher finishes, how many copies the origin uploaded, how far the last leecher
//! trails the median, and how much later a free-rider finishes. `tests.rs` holds the
//! swarm's promises as bounds on those numbers; `Config::integrated` false runs the engine
//! as it is today (only the core's own rules new), true what `seeding`'s integration note
//! asks of it.
//!
//! - `swarm.rs`: the hosts, the clock, the outcome.
//! - `host.rs`: one host, the engine's torrent task in miniature.

mod host;
mod swarm;
#[cfg(test)]
mod tests;

pub use swarm::{run, Config, Outcome};
