//! Shared by the MSE fuzz targets: fixed secrets (so every run sees the same shared secret),
//! chunked feeding, and keystreams recovered from an honest handshake so that fuzz input can
//! be encrypted the way the target expects and reach the parsers past the sync points.

// Each target uses its own half of this.
#![allow(dead_code)]

use std::sync::OnceLock;

use share_core::mse::{
    skey_hash, Established, Handshake, Initiator, MseError, Policy, Responder, Secrets,
};
use share_core::InfoHash;

pub const IH: InfoHash = InfoHash([0x5e; 20]);
pub const OTHER: InfoHash = InfoHash([0x17; 20]);

pub fn lookup(h: &[u8; 20]) -> Option<InfoHash> {
    [IH, OTHER].into_iter().find(|ih| &skey_hash(ih) == h)
}

pub fn initiator_secrets() -> Secrets {
    Secrets::new([0x11; 20], vec![], vec![]).unwrap()
}

pub fn responder_secrets() -> Secrets {
    Secrets::new([0x22; 20], vec![], vec![]).unwrap()
}

/// What an honest handshake between the fixed secrets looks like.
pub struct Honest {
    /// The initiator's Ya.
    pub ya: Vec<u8>,
    /// The responder's Yb.
    pub yb: Vec<u8>,
    /// HASH('req1', S) and the masked SKEY: message 3's plaintext head.
    pub sync: Vec<u8>,
    /// keyA's keystream from message 3's first encrypted byte on.
    pub stream_a: Vec<u8>,
    /// keyB's keystream from message 4's first byte on.
    pub stream_b: Vec<u8>,
}

pub fn honest() -> &'static Honest {
    static H: OnceLock<Honest> = OnceLock::new();
    H.get_or_init(|| {
        // A 65535-byte zero IA: message 3's ciphertext is then keyA's keystream, once the
        // known header is taken off.
        let ia = vec![0u8; 65535];
        let mut a = Initiator::new(IH, Policy::Prefer, &ia, initiator_secrets()).unwrap();
        let mut b = Responder::new(lookup, Policy::Prefer, responder_secrets()).unwrap();
        let ya = a.take_output();
        b.feed(&ya).unwrap();
        let yb = b.take_output();
        a.feed(&yb).unwrap();
        let m3 = a.take_output();
        let mut eb = b.feed(&m3).unwrap().unwrap();
        let m4 = b.take_output();
        let mut head = vec![0u8; 8];
        head.extend(3u32.to_be_bytes());
        head.extend(0u16.to_be_bytes());
        head.extend(65535u16.to_be_bytes());
        let stream_a: Vec<u8> = m3[40..]
            .iter()
            .enumerate()
            .map(|(i, c)| c ^ head.get(i).copied().unwrap_or(0))
            .collect();
        let mut plain_m4 = vec![0u8; 8];
        plain_m4.extend(2u32.to_be_bytes());
        plain_m4.extend(0u16.to_be_bytes());
        let mut stream_b: Vec<u8> = m4.iter().zip(&plain_m4).map(|(c, p)| c ^ p).collect();
        let mut more = vec![0u8; 8192];
        eb.ciphers.as_mut().unwrap().encrypt.apply(&mut more);
        stream_b.extend(more);
        Honest {
            ya,
            yb,
            sync: m3[..40].to_vec(),
            stream_a,
            stream_b,
        }
    })
}

/// One fuzz case: the policy, the bytes to feed and the chunk sizes. The input's first byte
/// picks how much of an honest handshake comes before the fuzz bytes: none (raw input), the
/// DH key `key`, or `key`, padding, `sync` and the rest encrypted with `stream` (so the parsers
/// past the sync point see fuzz plaintext); its bit 0x10 picks the policy. The second byte
/// sizes the chunks, the third the padding (up to 765 bytes: past 512 the machine must give up).
pub fn case(
    data: &[u8],
    key: &[u8],
    sync: &[u8],
    stream: &[u8],
) -> Option<(Policy, Vec<u8>, [u8; 3])> {
    let [mode, sizes, pad, rest @ ..] = data else {
        return None;
    };
    let policy = if mode & 0x10 != 0 {
        Policy::Require
    } else {
        Policy::Prefer
    };
    let input = match mode % 3 {
        0 => rest.to_vec(),
        1 => [key, rest].concat(),
        _ => {
            let (pad, plain) = rest.split_at((usize::from(*pad) * 3).min(rest.len()));
            let mut v = key.to_vec();
            v.extend_from_slice(pad);
            v.extend_from_slice(sync);
            v.extend(encrypt(plain, stream));
            v
        }
    };
    Some((policy, input, [*sizes, sizes.rotate_left(3), 255]))
}

/// XORs `plain` with `stream` (as far as it reaches; beyond it the bytes go as they are).
pub fn encrypt(plain: &[u8], stream: &[u8]) -> Vec<u8> {
    plain
        .iter()
        .enumerate()
        .map(|(i, p)| p ^ stream.get(i).copied().unwrap_or(0))
        .collect()
}

/// Feeds `input` in chunks of 1..=`max_chunk` bytes (sizes drawn from `sizes`) and checks
/// what must hold whatever the input: bounded output, a spent machine after the end.
pub fn feed_all(
    mut feed: impl FnMut(&[u8]) -> Result<Option<Established>, MseError>,
    input: &[u8],
    sizes: &[u8],
) {
    let mut at = 0;
    let mut turn = 0;
    while at < input.len() {
        let size = 1 + usize::from(sizes.get(turn % sizes.len().max(1)).copied().unwrap_or(255));
        turn += 1;
        let end = (at + size).min(input.len());
        match feed(&input[at..end]) {
            Ok(None) => at = end,
            Ok(Some(e)) => {
                assert!(e.rest.len() <= end - at);
                assert_eq!(
                    e.ciphers.is_some(),
                    e.method == share_core::mse::Method::Rc4
                );
                assert!(matches!(feed(b"x"), Err(MseError::Finished)));
                return;
            }
            Err(_) => {
                assert!(matches!(feed(b"x"), Err(MseError::Finished)));
                return;
            }
        }
    }
}
