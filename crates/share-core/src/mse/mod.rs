//! Message Stream Encryption (MSE/PE, "protocol encryption"): the obfuscated handshake that
//! libtorrent, Transmission, aria2 and others speak before the BitTorrent handshake. Sans-IO:
//! the two roles are state machines fed bytes, with their replies taken from an output buffer.
//!
//! ```text
//! A->B  Ya, PadA                                    96 bytes + 0..512
//! B->A  Yb, PadB                                    96 bytes + 0..512
//! A->B  HASH('req1',S), HASH('req2',SKEY) xor HASH('req3',S),
//!       ENCRYPT(VC, crypto_provide, len(PadC), PadC, len(IA)), ENCRYPT(IA)
//! B->A  ENCRYPT(VC, crypto_select, len(PadD), PadD), ENCRYPT2(payload)
//! A->B  ENCRYPT2(payload)
//! ```
//!
//! Y = 2^X mod P (the spec's 768-bit prime), S the shared secret, SKEY the info-hash, VC eight
//! zero bytes, ENCRYPT RC4 keyed with HASH('keyA'|'keyB', S, SKEY) after discarding 1024 bytes,
//! ENCRYPT2 that RC4 stream or plaintext as selected. B finds A's message 3 by scanning for
//! HASH('req1', S) and A finds B's reply by scanning for ENCRYPT(VC); both scans are bounded
//! by the 512-byte pad limit, every length field is checked before use, and nothing is sized
//! from a remote length beyond the spec's bounds (the largest is IA, at most 65535 bytes).

mod cipher;
mod dh;
mod initiator;
mod keys;
mod pending;
mod responder;
#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;

use rand::RngCore;

use crate::InfoHash;

pub use cipher::Rc4Stream;
pub use initiator::Initiator;
pub use keys::skey_hash;
pub use responder::Responder;

/// Length of a Diffie-Hellman public key on the wire.
pub const DH_KEY_LEN: usize = 96;
/// The most padding allowed anywhere in the handshake.
pub const MAX_PAD: usize = 512;
/// The most initial payload (IA) a handshake can carry.
pub const MAX_INITIAL_PAYLOAD: usize = u16::MAX as usize;

const CRYPTO_PLAINTEXT: u32 = 0x01;
const CRYPTO_RC4: u32 = 0x02;

/// Which handshakes we speak (shared with the command line's `--encryption`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// Accept both; offer plaintext and RC4, and select RC4 when it is offered.
    #[default]
    Prefer,
    /// RC4 only: refuse plaintext handshakes and a plaintext selection both ways.
    Require,
    /// Plaintext BitTorrent only, no MSE at all.
    Disable,
}

impl Policy {
    /// The `crypto_provide` bits an initiator offers under this policy.
    fn provide(self) -> Option<u32> {
        match self {
            Policy::Prefer => Some(CRYPTO_PLAINTEXT | CRYPTO_RC4),
            Policy::Require => Some(CRYPTO_RC4),
            Policy::Disable => None,
        }
    }

    /// A responder's choice among the offered `provide` bits. Under `Prefer` the handshake
    /// is obfuscated and the payload stays plaintext when the initiator allows it (as
    /// libtorrent does by default, `prefer_rc4` off): the handshake is what classifiers key
    /// on, and RC4 would cost a core at 500 MB/s. An initiator that offers only RC4 gets RC4.
    fn select(self, provide: u32) -> Result<Method, MseError> {
        let rc4 = provide & CRYPTO_RC4 != 0;
        let plain = provide & CRYPTO_PLAINTEXT != 0;
        match self {
            Policy::Prefer if plain => Ok(Method::Plaintext),
            Policy::Prefer | Policy::Require if rc4 => Ok(Method::Rc4),
            _ => Err(MseError::NoCommonMethod {
                provided: provide,
                policy: self,
            }),
        }
    }
}

impl FromStr for Policy {
    type Err = MseError;
    fn from_str(s: &str) -> Result<Self, MseError> {
        match s {
            "prefer" => Ok(Policy::Prefer),
            "require" => Ok(Policy::Require),
            "disable" => Ok(Policy::Disable),
            _ => Err(MseError::UnknownPolicy(s.to_owned())),
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Policy::Prefer => "prefer",
            Policy::Require => "require",
            Policy::Disable => "disable",
        })
    }
}

/// How the payload after the handshake travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Plaintext,
    Rc4,
}

impl Method {
    fn bits(self) -> u32 {
        match self {
            Method::Plaintext => CRYPTO_PLAINTEXT,
            Method::Rc4 => CRYPTO_RC4,
        }
    }
}

/// What a connection's first bytes say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniff {
    /// A plaintext BitTorrent handshake (byte 19, then "BitTorrent protocol").
    Plaintext,
    /// Anything else: an MSE handshake (a DH public key) or garbage for the responder to judge.
    Encrypted,
    /// Too few bytes to tell.
    NeedMore,
}

const PLAINTEXT_PREFIX: &[u8; 20] = b"\x13BitTorrent protocol";

/// Tells a plaintext handshake from an MSE one by the first bytes received. Decides as soon
/// as a byte differs from the plaintext prefix; needs at most 20 bytes.
pub fn sniff(first: &[u8]) -> Sniff {
    let n = first.len().min(PLAINTEXT_PREFIX.len());
    if first[..n] != PLAINTEXT_PREFIX[..n] {
        Sniff::Encrypted
    } else if n < PLAINTEXT_PREFIX.len() {
        Sniff::NeedMore
    } else {
        Sniff::Plaintext
    }
}

/// The local randomness of one handshake: the DH private key and the pads. Given by the caller
/// so that the state machines are deterministic (tests, fuzzing).
#[derive(Clone)]
pub struct Secrets {
    private_key: [u8; 20],
    dh_pad: Vec<u8>,
    crypto_pad: Vec<u8>,
}

impl Secrets {
    /// A 160-bit private key, PadA/PadB (`dh_pad`, sent after the public key) and PadC/PadD
    /// (`crypto_pad`, sent encrypted after the crypto field); each pad at most 512 bytes.
    pub fn new(
        private_key: [u8; 20],
        dh_pad: Vec<u8>,
        crypto_pad: Vec<u8>,
    ) -> Result<Secrets, MseError> {
        for pad in [&dh_pad, &crypto_pad] {
            if pad.len() > MAX_PAD {
                return Err(MseError::PadTooLong(pad.len()));
            }
        }
        Ok(Secrets {
            private_key,
            dh_pad,
            crypto_pad,
        })
    }

    /// A random key and a random PadA/PadB of 0..=512 bytes. PadC/PadD stay empty, as the
    /// spec says is current practice.
    pub fn random(rng: &mut impl RngCore) -> Secrets {
        let mut private_key = [0u8; 20];
        rng.fill_bytes(&mut private_key);
        let mut dh_pad = vec![0u8; (rng.next_u32() as usize) % (MAX_PAD + 1)];
        rng.fill_bytes(&mut dh_pad);
        Secrets {
            private_key,
            dh_pad,
            crypto_pad: Vec::new(),
        }
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secrets")
            .field("dh_pad", &self.dh_pad.len())
            .field("crypto_pad", &self.crypto_pad.len())
            .finish_non_exhaustive()
    }
}

/// The face both roles show: feed it what the remote sends; send what
/// [`Handshake::take_output`] gives, after construction and after every feed.
pub trait Handshake: sealed::Role {
    /// Takes bytes from the remote. `Ok(Some(_))` once the handshake is complete; bytes past
    /// its end are in [`Established::rest`], decrypted. After an error or completion the
    /// handshake is over and further feeds fail with [`MseError::Finished`].
    fn feed(&mut self, bytes: &[u8]) -> Result<Option<Established>, MseError> {
        if self.exchange().over {
            return Err(MseError::Finished);
        }
        self.exchange().input.push(bytes);
        let step = self.advance();
        if !matches!(step, Ok(None)) {
            self.exchange().over = true;
        }
        step
    }

    /// Bytes to send to the remote, taken (the buffer is left empty).
    fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.exchange().output)
    }
}

impl<T: sealed::Role> Handshake for T {}

mod sealed {
    use super::pending::Pending;
    use super::{Established, MseError};

    /// What both roles keep alike: bytes received and not consumed, bytes to send, and
    /// whether the handshake is over.
    #[derive(Default)]
    pub struct Exchange {
        pub input: Pending,
        pub output: Vec<u8>,
        pub over: bool,
    }

    pub trait Role {
        fn exchange(&mut self) -> &mut Exchange;
        /// Runs the state machine over the input received so far.
        fn advance(&mut self) -> Result<Option<Established>, MseError>;
    }
}

/// The RC4 streams of an established connection, each already past the handshake's bytes.
#[derive(Debug)]
pub struct Ciphers {
    /// Applied to everything we send.
    pub encrypt: Rc4Stream,
    /// Applied to everything we receive.
    pub decrypt: Rc4Stream,
}

/// A completed handshake.
#[derive(Debug)]
pub struct Established {
    /// How the payload travels from here on.
    pub method: Method,
    /// The torrent (the initiator's own; the responder's from the SKEY lookup).
    pub info_hash: InfoHash,
    /// `Some` exactly when `method` is RC4.
    pub ciphers: Option<Ciphers>,
    /// The responder's IA, decrypted (usually the remote's BitTorrent handshake); always empty
    /// for the initiator.
    pub initial_payload: Vec<u8>,
    /// Bytes fed after the end of the handshake, already decrypted.
    pub rest: Vec<u8>,
}

impl Established {
    /// The end of a handshake: what is left of `input` is the payload stream, decrypted with
    /// `ciphers` if RC4 was selected (the ciphers are dropped otherwise).
    fn new(
        method: Method,
        info_hash: InfoHash,
        mut ciphers: Ciphers,
        initial_payload: Vec<u8>,
        input: &mut pending::Pending,
    ) -> Established {
        let mut rest = input.take_rest();
        let ciphers = match method {
            Method::Rc4 => {
                ciphers.decrypt.apply(&mut rest);
                Some(ciphers)
            }
            Method::Plaintext => None,
        };
        Established {
            method,
            info_hash,
            ciphers,
            initial_payload,
            rest,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MseError {
    #[error("the remote's Diffie-Hellman public key is degenerate (0, 1, P-1 or not below P)")]
    BadPublicKey,
    #[error("no HASH('req1', S) within 512 bytes of padding after the DH key")]
    NoSyncHash,
    #[error("no encrypted verification constant within 512 bytes of padding after the DH key")]
    NoSyncVc,
    #[error("the remote asked for a torrent we do not have (unknown SKEY)")]
    UnknownTorrent,
    #[error("wrong verification constant after the SKEY (not encrypted with our keys)")]
    BadVerificationConstant,
    #[error("padding of {0} bytes: the most allowed is 512")]
    PadTooLong(usize),
    #[error("initial payload of {0} bytes: the most allowed is 65535")]
    PayloadTooLong(usize),
    #[error("the remote offers crypto_provide {provided:#x}, and encryption policy `{policy}` accepts none of it")]
    NoCommonMethod { provided: u32, policy: Policy },
    #[error("the remote selected crypto {selected:#x}, but we offered {offered:#x}")]
    BadSelect { selected: u32, offered: u32 },
    #[error("encryption policy `disable` speaks no MSE")]
    Disabled,
    #[error("the handshake is already over")]
    Finished,
    #[error("unknown encryption policy `{0}` (expected prefer, require or disable)")]
    UnknownPolicy(String),
}

#[cfg(test)]
mod policy_tests {
    use super::*;

    #[test]
    fn sniff_decides_on_the_first_differing_byte() {
        assert_eq!(sniff(b""), Sniff::NeedMore);
        assert_eq!(sniff(b"\x13Bit"), Sniff::NeedMore);
        assert_eq!(sniff(b"\x13BitTorrent protocol"), Sniff::Plaintext);
        assert_eq!(sniff(b"\x13BitTorrent protocol\0\0"), Sniff::Plaintext);
        assert_eq!(sniff(b"\x13Bix"), Sniff::Encrypted);
        assert_eq!(sniff(&[0x12]), Sniff::Encrypted);
        assert_eq!(sniff(&[0xff; 96]), Sniff::Encrypted);
    }

    #[test]
    fn prefer_selects_plaintext_payload_when_allowed_and_require_rc4_only() {
        assert_eq!(Policy::Prefer.select(3), Ok(Method::Plaintext));
        assert_eq!(Policy::Prefer.select(2), Ok(Method::Rc4));
        assert_eq!(Policy::Prefer.select(1), Ok(Method::Plaintext));
        assert_eq!(Policy::Require.select(3), Ok(Method::Rc4));
        assert!(Policy::Require.select(1).is_err());
        assert!(Policy::Prefer.select(0x10).is_err());
        assert!(Policy::Disable.select(3).is_err());
    }

    #[test]
    fn policy_names_round_trip() {
        for p in [Policy::Prefer, Policy::Require, Policy::Disable] {
            assert_eq!(p.to_string().parse::<Policy>(), Ok(p));
        }
        assert!("on".parse::<Policy>().is_err());
        assert_eq!(Policy::default(), Policy::Prefer);
    }

    #[test]
    fn secrets_refuse_long_pads() {
        assert_eq!(
            Secrets::new([1; 20], vec![0; 513], vec![]).unwrap_err(),
            MseError::PadTooLong(513)
        );
        assert!(Secrets::new([1; 20], vec![0; 512], vec![0; 512]).is_ok());
    }
}
