//! MSE's hashes: HASH = SHA-1 over the concatenated arguments. The sync hash ('req1'), the
//! obfuscated stream identifier ('req2' xor 'req3') and the two RC4 keys ('keyA', 'keyB').

use sha1::{Digest, Sha1};

use super::{Ciphers, Rc4Stream, DH_KEY_LEN};
use crate::InfoHash;

pub(crate) type Secret = [u8; DH_KEY_LEN];

fn hash(parts: &[&[u8]]) -> [u8; 20] {
    let mut h = Sha1::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// HASH('req1', S): the marker the responder scans for.
pub(crate) fn req1(s: &Secret) -> [u8; 20] {
    hash(&[b"req1", s])
}

/// HASH('req2', SKEY) for a torrent: what an incoming connection names it by, once the
/// responder has taken HASH('req3', S) off. A session precomputes it for each of its torrents.
pub fn skey_hash(info_hash: &InfoHash) -> [u8; 20] {
    hash(&[b"req2", &info_hash.0])
}

/// HASH('req3', S): the mask over the stream identifier.
pub(crate) fn req3(s: &Secret) -> [u8; 20] {
    hash(&[b"req3", s])
}

pub(crate) fn xor(a: &[u8; 20], b: &[u8; 20]) -> [u8; 20] {
    core::array::from_fn(|i| a[i] ^ b[i])
}

/// The two RC4 streams: A sends with HASH('keyA', S, SKEY), B with HASH('keyB', S, SKEY).
pub(crate) fn ciphers(s: &Secret, skey: &InfoHash, initiator: bool) -> Ciphers {
    let a = Rc4Stream::new(&hash(&[b"keyA", s, &skey.0]));
    let b = Rc4Stream::new(&hash(&[b"keyB", s, &skey.0]));
    if initiator {
        Ciphers {
            encrypt: a,
            decrypt: b,
        }
    } else {
        Ciphers {
            encrypt: b,
            decrypt: a,
        }
    }
}
