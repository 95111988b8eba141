//! The Mainline DHT (BEP 5, with BEP 42 ids and BEP 32 compact IPv6 nodes), sans-IO.
//!
//! [`Node`] is a state machine: the caller feeds it UDP payloads ([`Node::handle_packet`])
//! and the time ([`Node::tick`]), and takes the packets to send ([`Node::poll_transmit`])
//! and what happened ([`Node::poll_event`]). It never reads a clock, owns no socket and draws
//! its randomness from a seed, so a network of nodes can be run in memory, deterministically.
//! See `docs/dht.md` for the shape, the bounds and the Sybil defences.

pub mod id;
pub mod krpc;
pub mod lookup;
pub mod node;
pub mod peer_store;
pub mod rate;
pub mod routing;
pub mod tokens;
mod value;

#[cfg(test)]
mod sim;

pub use id::{Distance, NodeId};
pub use krpc::{KrpcError, Message};
pub use node::{Config, DhtStats, Event, LookupId, Node, StateError};

/// A small deterministic generator (SplitMix64): ids, transaction ids, token secrets and
/// sampling. It is seeded by the caller, which draws the seed from the OS.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: [u8; 32]) -> Rng {
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        for chunk in seed.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            s = s.rotate_left(17) ^ u64::from_le_bytes(b);
            s = s.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        }
        Rng(s)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}
