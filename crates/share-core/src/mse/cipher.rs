//! MSE's RC4: RustCrypto's `rc4` keyed with a 20-byte SHA-1 digest, its first 1024 bytes of
//! keystream thrown away (the spec's answer to RC4's biased start).

use rc4::{KeyInit, Rc4, StreamCipher};

/// Keystream bytes discarded after keying.
const DISCARD: usize = 1024;

/// One direction's RC4 stream. Encrypting and decrypting are the same operation.
pub struct Rc4Stream(Rc4);

impl Rc4Stream {
    /// RC4 keyed with `key`, already past the first 1024 bytes of keystream.
    pub fn new(key: &[u8; 20]) -> Rc4Stream {
        // 20 bytes is within RC4's 1..=256-byte key range, so this cannot fail.
        let Ok(mut rc4) = Rc4::new_from_slice(key) else {
            unreachable!("a 20-byte RC4 key is valid")
        };
        rc4.apply_keystream(&mut [0u8; DISCARD]);
        Rc4Stream(rc4)
    }

    /// XORs the next `buf.len()` keystream bytes into `buf`, in place.
    pub fn apply(&mut self, buf: &mut [u8]) {
        self.0.apply_keystream(buf);
    }
}

impl std::fmt::Debug for Rc4Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rc4Stream(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6229, 128-bit key 0x0102..10: the keystream at offset 1024 (0x400) is what our
    /// stream yields first.
    #[test]
    fn discards_the_first_1024_bytes() {
        let key: [u8; 16] = core::array::from_fn(|i| i as u8 + 1);
        let mut raw = Rc4::new_from_slice(&key).unwrap();
        let mut ks = [0u8; 1040];
        raw.apply_keystream(&mut ks);
        let rfc = hex::decode("bdf0324e6083dcc6d3cedd3ca8c53c16").unwrap();
        assert_eq!(&ks[1024..], &rfc[..]);

        // Our stream over a 20-byte key starts where the raw one's byte 1024 is.
        let key20 = [7u8; 20];
        let mut raw = Rc4::new_from_slice(&key20).unwrap();
        let mut ks = [0u8; 1040];
        raw.apply_keystream(&mut ks);
        let mut ours = [0u8; 16];
        Rc4Stream::new(&key20).apply(&mut ours);
        assert_eq!(&ours[..], &ks[1024..]);
    }

    #[test]
    fn applying_twice_restores_the_text() {
        let mut a = Rc4Stream::new(&[1; 20]);
        let mut b = Rc4Stream::new(&[1; 20]);
        let mut buf = *b"attack at dawn";
        a.apply(&mut buf);
        assert_ne!(&buf, b"attack at dawn");
        b.apply(&mut buf);
        assert_eq!(&buf, b"attack at dawn");
    }
}
