//! A set of piece indexes, as the wire's `bitfield` message carries it (high bit first).

/// Which pieces a peer (or we) have. Its length is fixed at the torrent's piece count.
#[derive(Clone, PartialEq, Eq)]
pub struct Bitfield {
    bytes: Vec<u8>,
    len: u32,
    ones: u32,
}

impl std::fmt::Debug for Bitfield {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bitfield({}/{})", self.ones, self.len)
    }
}

impl Bitfield {
    pub fn new(len: u32) -> Self {
        Bitfield {
            bytes: vec![0; (len as usize).div_ceil(8)],
            len,
            ones: 0,
        }
    }

    pub fn full(len: u32) -> Self {
        let mut b = Bitfield::new(len);
        (0..len).for_each(|i| {
            b.set(i);
        });
        b
    }

    /// From a wire `bitfield` payload: it must be exactly long enough, with spare bits clear.
    pub fn from_wire(bytes: &[u8], len: u32) -> Option<Self> {
        if bytes.len() != (len as usize).div_ceil(8) {
            return None;
        }
        let spare = (8 - len % 8) % 8;
        if spare > 0 && bytes.last().is_some_and(|b| b & ((1u8 << spare) - 1) != 0) {
            return None;
        }
        let ones = bytes.iter().map(|b| b.count_ones()).sum();
        Some(Bitfield {
            bytes: bytes.to_vec(),
            len,
            ones,
        })
    }

    pub fn from_bools(bits: &[bool]) -> Self {
        let mut b = Bitfield::new(bits.len() as u32);
        for (i, &v) in bits.iter().enumerate() {
            if v {
                b.set(i as u32);
            }
        }
        b
    }

    /// The pieces of `self` that `other` does not have.
    pub fn without(&self, other: &Bitfield) -> Bitfield {
        let mut out = Bitfield::new(self.len);
        for i in self.ones() {
            if !other.get(i) {
                out.set(i);
            }
        }
        out
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn len(&self) -> u32 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn count(&self) -> u32 {
        self.ones
    }

    pub fn is_complete(&self) -> bool {
        self.ones == self.len
    }

    pub fn get(&self, i: u32) -> bool {
        i < self.len && self.bytes[(i / 8) as usize] & (0x80 >> (i % 8)) != 0
    }

    /// Sets bit `i`; returns true if it was newly set. Out-of-range indexes are ignored.
    pub fn set(&mut self, i: u32) -> bool {
        if i >= self.len || self.get(i) {
            return false;
        }
        self.bytes[(i / 8) as usize] |= 0x80 >> (i % 8);
        self.ones += 1;
        true
    }

    pub fn ones(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.len).filter(|&i| self.get(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_is_checked() {
        assert!(Bitfield::from_wire(&[0xff, 0x80], 9).is_some());
        assert!(
            Bitfield::from_wire(&[0xff, 0xc0], 9).is_none(),
            "spare bit set"
        );
        assert!(Bitfield::from_wire(&[0xff], 9).is_none(), "too short");
        assert!(Bitfield::from_wire(&[0xff, 0, 0], 9).is_none(), "too long");
        let b = Bitfield::from_wire(&[0xa0, 0x80], 9).unwrap();
        assert_eq!(b.ones().collect::<Vec<_>>(), vec![0, 2, 8]);
        assert_eq!(b.count(), 3);
    }

    #[test]
    fn set_counts_once_and_ignores_out_of_range() {
        let mut b = Bitfield::new(10);
        assert!(b.set(3));
        assert!(!b.set(3));
        assert!(!b.set(10));
        assert_eq!(b.count(), 1);
        assert!(Bitfield::full(10).is_complete());
    }
}
