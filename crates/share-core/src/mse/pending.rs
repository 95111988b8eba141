//! The bytes a handshake has received but not yet consumed, and the bounded scan for a sync
//! marker in them.

/// Received, unconsumed bytes. Holds at most what the current step of the handshake still
/// needs (bounded by the spec) plus whatever the last `feed` brought past it. (`pub` only
/// because the sealed `Role` trait reaches it; the module is private.)
#[derive(Default)]
pub struct Pending {
    data: Vec<u8>,
    start: usize,
}

impl Pending {
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start == self.data.len() {
            self.data.clear();
            self.start = 0;
        }
        self.data.extend_from_slice(bytes);
    }

    pub fn available(&self) -> &[u8] {
        &self.data[self.start..]
    }

    /// The next `n` bytes, consumed, for decrypting in place; `None` until they have all come.
    pub fn take(&mut self, n: usize) -> Option<&mut [u8]> {
        if self.data.len() - self.start < n {
            return None;
        }
        let from = self.start;
        self.start += n;
        Some(&mut self.data[from..from + n])
    }

    /// The next `N` bytes, consumed, as an array.
    pub fn take_array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Some(out)
    }

    pub fn skip(&mut self, n: usize) {
        self.start = (self.start + n).min(self.data.len());
    }

    /// Everything not consumed, leaving nothing.
    pub fn take_rest(&mut self) -> Vec<u8> {
        let mut data = std::mem::take(&mut self.data);
        data.drain(..self.start);
        self.start = 0;
        data
    }
}

/// Where a sync scan stands: `marker` must begin within the first `max_offset + 1` bytes.
pub(crate) enum Scan {
    /// The marker begins this many bytes in.
    Found(usize),
    /// Not yet; more bytes may still bring it.
    NeedMore,
    /// Not within the bound: the remote is not speaking MSE with our keys.
    Missing,
}

/// Looks for `marker` in `data`, starting at offset `from` (offsets before it were ruled out
/// by earlier calls). The caller keeps `from` = the returned `next_from`.
pub(crate) fn scan(data: &[u8], marker: &[u8], from: usize, max_offset: usize) -> (Scan, usize) {
    let m = marker.len();
    let last_start = data.len().saturating_sub(m);
    let mut i = from;
    while i <= last_start.min(max_offset) && i + m <= data.len() {
        if &data[i..i + m] == marker {
            return (Scan::Found(i), i);
        }
        i += 1;
    }
    if i > max_offset {
        (Scan::Missing, i)
    } else {
        (Scan::NeedMore, i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_waits_for_all_bytes() {
        let mut p = Pending::default();
        p.push(b"abc");
        assert!(p.take(4).is_none());
        p.push(b"de");
        assert_eq!(p.take(4).unwrap(), b"abcd");
        assert_eq!(p.available(), b"e");
        assert_eq!(p.take_rest(), b"e");
        assert!(p.available().is_empty());
    }

    #[test]
    fn scan_is_incremental_and_bounded() {
        let data = b"xxxxMARKyy";
        let (s, next) = scan(&data[..6], b"MARK", 0, 8);
        assert!(matches!(s, Scan::NeedMore));
        assert_eq!(next, 3);
        let (s, _) = scan(data, b"MARK", next, 8);
        assert!(matches!(s, Scan::Found(4)));
        // The marker at offset 4 is past a bound of 3.
        let (s, _) = scan(data, b"MARK", 0, 3);
        assert!(matches!(s, Scan::Missing));
        // At exactly the bound it is found.
        let (s, _) = scan(data, b"MARK", 0, 4);
        assert!(matches!(s, Scan::Found(4)));
    }
}
