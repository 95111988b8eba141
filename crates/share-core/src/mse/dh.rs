//! MSE's Diffie-Hellman: G = 2 over the spec's 768-bit prime P, 160-bit private keys, keys and
//! the shared secret as 96-byte big-endian numbers. One modular exponentiation each for the
//! public key and the secret (num-bigint's Montgomery ladder; constant time is not needed).

use std::sync::OnceLock;

use num_bigint::BigUint;

use super::{MseError, DH_KEY_LEN};

/// P, from the MSE specification (as libtorrent, Transmission and Vuze use it).
const PRIME: &str = "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74\
                     020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437\
                     4FE1356D6D51C245E485B576625E7EC6F44C42E9A63A36210000000000090563";

fn prime() -> &'static BigUint {
    static P: OnceLock<BigUint> = OnceLock::new();
    P.get_or_init(|| match BigUint::parse_bytes(PRIME.as_bytes(), 16) {
        Some(p) => p,
        None => unreachable!("the prime is valid hex"),
    })
}

/// Our half of the exchange.
pub(crate) struct KeyPair {
    private: BigUint,
    /// Ya or Yb as sent.
    pub public: [u8; DH_KEY_LEN],
}

impl KeyPair {
    pub fn new(private_key: &[u8; 20]) -> KeyPair {
        let private = BigUint::from_bytes_be(private_key);
        let public = modpow(&BigUint::from(2u32), &private);
        KeyPair {
            public: to_bytes(&public),
            private,
        }
    }

    /// S from the remote's public key, which must be in 2..P-1: the degenerate keys 0, 1 and
    /// P-1 (and anything not reduced mod P) would give a secret an eavesdropper can guess.
    pub fn shared_secret(&self, remote: &[u8; DH_KEY_LEN]) -> Result<[u8; DH_KEY_LEN], MseError> {
        let p = prime();
        let y = BigUint::from_bytes_be(remote);
        let one = BigUint::from(1u32);
        if y <= one || y >= p - &one {
            return Err(MseError::BadPublicKey);
        }
        Ok(to_bytes(&modpow(&y, &self.private)))
    }
}

/// `base^exp mod P`.
#[cfg(not(fuzzing))]
fn modpow(base: &BigUint, exp: &BigUint) -> BigUint {
    base.modpow(exp, prime())
}

/// `base^exp mod P`, remembered: fuzz targets use fixed keys, and an instrumented modpow
/// would otherwise be nearly all of every run. A pure function, so nothing else changes.
#[cfg(fuzzing)]
fn modpow(base: &BigUint, exp: &BigUint) -> BigUint {
    use std::cell::RefCell;
    use std::collections::HashMap;
    thread_local! {
        static SEEN: RefCell<HashMap<(BigUint, BigUint), BigUint>> = RefCell::default();
    }
    SEEN.with(|seen| {
        let mut seen = seen.borrow_mut();
        if seen.len() > 4096 {
            seen.clear();
        }
        seen.entry((base.clone(), exp.clone()))
            .or_insert_with(|| base.modpow(exp, prime()))
            .clone()
    })
}

/// A number below P as 96 big-endian bytes, zero-padded on the left.
fn to_bytes(n: &BigUint) -> [u8; DH_KEY_LEN] {
    let bytes = n.to_bytes_be();
    let mut out = [0u8; DH_KEY_LEN];
    // n < P < 2^768, so it never has more than 96 bytes.
    let skip = bytes.len().saturating_sub(DH_KEY_LEN);
    let tail = &bytes[skip..];
    out[DH_KEY_LEN - tail.len()..].copy_from_slice(tail);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_agree_on_the_secret() {
        let a = KeyPair::new(&[0x11; 20]);
        let b = KeyPair::new(&[0x22; 20]);
        let sa = a.shared_secret(&b.public).unwrap();
        let sb = b.shared_secret(&a.public).unwrap();
        assert_eq!(sa, sb);
        assert_ne!(a.public, b.public);
    }

    #[test]
    fn the_prime_has_768_bits() {
        assert_eq!(prime().bits(), 768);
        assert_eq!(to_bytes(prime()), {
            let mut b = [0u8; 96];
            b.copy_from_slice(&hex::decode(PRIME).unwrap());
            b
        });
    }

    #[test]
    fn small_public_keys_are_zero_padded() {
        // 2^1 = 2: one significant byte, at the end.
        let k = KeyPair::new(&{
            let mut k = [0u8; 20];
            k[19] = 1;
            k
        });
        assert_eq!(k.public[95], 2);
        assert!(k.public[..95].iter().all(|&b| b == 0));
    }

    #[test]
    fn degenerate_keys_are_refused() {
        let k = KeyPair::new(&[5; 20]);
        let mut y = [0u8; 96];
        assert_eq!(k.shared_secret(&y), Err(MseError::BadPublicKey));
        y[95] = 1;
        assert_eq!(k.shared_secret(&y), Err(MseError::BadPublicKey));
        let mut p_minus_1 = to_bytes(prime());
        p_minus_1[95] -= 1;
        assert_eq!(k.shared_secret(&p_minus_1), Err(MseError::BadPublicKey));
        assert_eq!(k.shared_secret(&[0xff; 96]), Err(MseError::BadPublicKey));
        y[95] = 2;
        assert!(k.shared_secret(&y).is_ok());
    }
}
