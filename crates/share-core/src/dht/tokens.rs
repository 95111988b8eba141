//! Write tokens for `announce_peer` (BEP 5): proof that an announcer asked `get_peers` from
//! the address it announces from, recently.
//!
//! A token is the first [`TOKEN_LEN`] bytes of SHA-1(secret, querier IP). The secret rotates
//! every [`ROTATE`] (5 min) and the previous one is still accepted, so a token is good for
//! between 5 and [`ROTATE`] × 2 (10 min). No per-querier state is kept.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use sha1::{Digest, Sha1};

use super::Rng;

pub const ROTATE: Duration = Duration::from_secs(5 * 60);
pub const TOKEN_LEN: usize = 8;

#[derive(Debug)]
pub struct Tokens {
    current: [u8; 16],
    previous: [u8; 16],
    rotated_at: Instant,
}

impl Tokens {
    pub fn new(rng: &mut Rng, now: Instant) -> Tokens {
        let mut t = Tokens {
            current: [0; 16],
            previous: [0; 16],
            rotated_at: now,
        };
        rng.fill(&mut t.current);
        rng.fill(&mut t.previous);
        t
    }

    /// Rotates the secret when due (called from the node's tick).
    pub fn tick(&mut self, rng: &mut Rng, now: Instant) {
        while now.saturating_duration_since(self.rotated_at) >= ROTATE {
            self.previous = self.current;
            rng.fill(&mut self.current);
            self.rotated_at += ROTATE;
        }
    }

    pub fn issue(&self, ip: IpAddr) -> Vec<u8> {
        token(&self.current, ip).to_vec()
    }

    pub fn check(&self, ip: IpAddr, given: &[u8]) -> bool {
        given == token(&self.current, ip) || given == token(&self.previous, ip)
    }

    pub fn next_rotation(&self) -> Instant {
        self.rotated_at + ROTATE
    }
}

fn token(secret: &[u8; 16], ip: IpAddr) -> [u8; TOKEN_LEN] {
    let mut h = Sha1::new();
    h.update(secret);
    match ip {
        IpAddr::V4(v4) => h.update(v4.octets()),
        IpAddr::V6(v6) => h.update(v6.octets()),
    }
    let d = h.finalize();
    let mut out = [0u8; TOKEN_LEN];
    out.copy_from_slice(&d[..TOKEN_LEN]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_tied_to_the_ip_and_expire() {
        let t0 = Instant::now();
        let mut rng = Rng::new([3; 32]);
        let mut tokens = Tokens::new(&mut rng, t0);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let tok = tokens.issue(a);
        assert!(tokens.check(a, &tok));
        assert!(!tokens.check(b, &tok), "another address cannot use it");
        assert!(!tokens.check(a, b"forged!!"));

        tokens.tick(&mut rng, t0 + Duration::from_secs(299));
        assert!(tokens.check(a, &tok));
        tokens.tick(&mut rng, t0 + ROTATE);
        assert!(tokens.check(a, &tok), "the previous secret still counts");
        tokens.tick(&mut rng, t0 + ROTATE * 2);
        assert!(!tokens.check(a, &tok), "two rotations later it has expired");
    }
}
