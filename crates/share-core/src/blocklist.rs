//! IP blocklists: the formats everybody publishes, read into a compact set of ranges.
//!
//! A list is text, one entry a line, optionally gzip-compressed (told by its magic bytes):
//! - P2P (PeerGuardian) text: `some name:1.2.3.0-1.2.3.255` (the name may hold colons);
//! - eMule `ipfilter.dat`: `001.002.003.000 - 001.002.003.255 , 000 , some name` (an access
//!   level of 128 or more means allowed, as eMule reads it);
//! - CIDR lines or single addresses: `1.2.3.0/24`, `2001:db8::/32`, `5.6.7.8`.
//!
//! Blank lines and `#` or `//` comments are skipped. A line that is none of these is
//! counted and skipped: the caller warns once with the count and the first line's number.
//! Ranges are sorted and merged into two vectors (IPv4 as u32 pairs, IPv6 as u128 pairs): a
//! million ranges take a few MiB, and a lookup is a binary search.
//!
//! A list is read as a stream ([`Builder::add`] takes any `Read`): nothing holds the whole
//! text, a line longer than [`MAX_LINE`] is a bad line (read past, not kept), a list longer
//! than [`MAX_LIST`] once decompressed is refused, and so is one whose ranges would take
//! more than [`MAX_HELD`] bytes before merging.

use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, Ipv6Addr};

/// Largest list read once decompressed.
pub const MAX_LIST: u64 = 1 << 30;
/// Longest line kept (published lines are well under 200 bytes).
pub const MAX_LINE: usize = 1024;
/// Most bytes of ranges held while reading (8 per IPv4 range, 32 per IPv6 one): 16 million
/// IPv4 ranges.
pub const MAX_HELD: usize = 128 << 20;

/// A set of blocked address ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Blocklist {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

/// What reading a list found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Loaded {
    /// Entries read (before merging).
    pub entries: usize,
    /// Lines that were not understood, and the number of the first (from 1).
    pub bad_lines: usize,
    pub first_bad: Option<usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum BlocklistError {
    #[error("the list is not valid gzip: {0}")]
    Gzip(std::io::Error),
    #[error("reading the list: {0}")]
    Io(std::io::Error),
    #[error("the list is larger than {MAX_LIST} bytes once decompressed")]
    TooLarge,
    #[error("the lists hold more ranges than {MAX_HELD} bytes can keep")]
    TooMany,
}

fn contains<T: Ord + Copy>(ranges: &[(T, T)], x: T) -> bool {
    let i = ranges.partition_point(|r| r.1 < x);
    ranges.get(i).is_some_and(|r| r.0 <= x)
}

fn merge<T: Ord + Copy>(mut v: Vec<(T, T)>, next: impl Fn(T) -> Option<T>) -> Vec<(T, T)> {
    v.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(v.len());
    for (a, b) in v {
        match out.last_mut() {
            Some(last) if next(last.1).is_none_or(|n| a <= n) => {
                if b > last.1 {
                    last.1 = b;
                }
            }
            _ => out.push((a, b)),
        }
    }
    out.shrink_to_fit();
    out
}

impl Blocklist {
    /// Whether `ip` is blocked (an IPv4-mapped IPv6 address counts as its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => contains(&self.v4, u32::from(a)),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => contains(&self.v4, u32::from(v4)),
                None => contains(&self.v6, u128::from(a)),
            },
        }
    }

    /// Ranges held, after merging.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the ranges take.
    pub fn heap_size(&self) -> usize {
        self.v4.capacity() * 8 + self.v6.capacity() * 32
    }

    /// Reads lists (each plain or gzip) into one set; line numbers count through all of
    /// them, one after the other.
    pub fn read(lists: &[&[u8]]) -> Result<(Blocklist, Loaded), BlocklistError> {
        let mut b = Builder::default();
        let mut all = Loaded::default();
        let mut lines = 0;
        for raw in lists {
            let (l, n) = b.add_counting(*raw)?;
            all.entries += l.entries;
            all.bad_lines += l.bad_lines;
            if all.first_bad.is_none() {
                all.first_bad = l.first_bad.map(|f| f + lines);
            }
            lines += n;
        }
        Ok((b.finish(), all))
    }
}

/// Lists read one after the other into one set.
#[derive(Debug, Default)]
pub struct Builder {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl Builder {
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Reads one list (plain or gzip, told by its first bytes) from `r`.
    pub fn add(&mut self, r: impl Read) -> Result<Loaded, BlocklistError> {
        self.add_counting(r).map(|(l, _)| l)
    }

    /// [`Builder::add`], and the number of lines read.
    fn add_counting(&mut self, r: impl Read) -> Result<(Loaded, usize), BlocklistError> {
        let mut r = BufReader::with_capacity(64 << 10, r);
        let gzip = r
            .fill_buf()
            .map_err(BlocklistError::Io)?
            .starts_with(&[0x1f, 0x8b]);
        if gzip {
            let inner = flate2::bufread::MultiGzDecoder::new(r);
            self.lines(BufReader::with_capacity(64 << 10, inner), true)
        } else {
            self.lines(r, false)
        }
    }

    fn lines(&mut self, r: impl BufRead, gzip: bool) -> Result<(Loaded, usize), BlocklistError> {
        let mut r = r.take(MAX_LIST + 1);
        let io = |e: std::io::Error| {
            if gzip {
                BlocklistError::Gzip(e)
            } else {
                BlocklistError::Io(e)
            }
        };
        let mut loaded = Loaded::default();
        let mut line = Vec::with_capacity(256);
        let mut n = 0;
        while let Some(too_long) = next_line(&mut r, &mut line).map_err(io)? {
            n += 1;
            if r.limit() == 0 {
                return Err(BlocklistError::TooLarge);
            }
            let parsed = if too_long {
                Line::Bad
            } else {
                parse_line(&line)
            };
            match parsed {
                Line::Skip => continue,
                Line::Bad => {
                    loaded.bad_lines += 1;
                    loaded.first_bad.get_or_insert(n);
                    continue;
                }
                Line::V4(a, b) => self.v4.push((a.min(b), a.max(b))),
                Line::V6(a, b) => self.v6.push((a.min(b), a.max(b))),
            }
            loaded.entries += 1;
            if self.v4.len() * 8 + self.v6.len() * 32 > MAX_HELD {
                return Err(BlocklistError::TooMany);
            }
        }
        Ok((loaded, n))
    }

    /// The merged set.
    pub fn finish(self) -> Blocklist {
        Blocklist {
            v4: merge(self.v4, |x| x.checked_add(1)),
            v6: merge(self.v6, |x| x.checked_add(1)),
        }
    }
}

/// Reads the next line into `buf` (without its newline), keeping at most [`MAX_LINE`]
/// bytes: `Some(true)` for a line that was longer (the rest is read past), `None` at the
/// end.
fn next_line(r: &mut impl BufRead, buf: &mut Vec<u8>) -> std::io::Result<Option<bool>> {
    buf.clear();
    let mut too_long = false;
    let mut any = false;
    loop {
        let chunk = match r.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok(any.then_some(too_long));
        }
        any = true;
        let (part, found) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (&chunk[..i], Some(i)),
            None => (chunk, None),
        };
        if !too_long {
            let room = MAX_LINE - buf.len();
            if part.len() > room {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(part);
            }
        }
        match found {
            Some(i) => {
                r.consume(i + 1);
                return Ok(Some(too_long));
            }
            None => {
                let n = chunk.len();
                r.consume(n);
            }
        }
    }
}

enum Line {
    Skip,
    V4(u32, u32),
    V6(u128, u128),
    Bad,
}

/// An IPv4 address, leading zeros allowed in each part (eMule writes `001.002.003.004`).
fn v4(s: &str) -> Option<u32> {
    let mut parts = s.trim().split('.');
    let mut out = 0u32;
    for _ in 0..4 {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n: u32 = p.parse().ok()?;
        if n > 255 {
            return None;
        }
        out = out << 8 | n;
    }
    parts.next().is_none().then_some(out)
}

fn parse_line(raw: &[u8]) -> Line {
    let Ok(line) = std::str::from_utf8(raw) else {
        // A name in some legacy encoding: the addresses are ASCII; read what is.
        return parse_line(String::from_utf8_lossy(raw).as_bytes());
    };
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') || line.starts_with("//") {
        return Line::Skip;
    }
    // eMule: `first - last , level , name`.
    if let Some((range, rest)) = line.split_once(',') {
        if let Some((a, b)) = range.split_once('-') {
            if let (Some(a), Some(b)) = (v4(a), v4(b)) {
                let level: u32 = rest
                    .split(',')
                    .next()
                    .and_then(|l| l.trim().parse().ok())
                    .unwrap_or(0);
                return if level >= 128 {
                    Line::Skip
                } else {
                    Line::V4(a, b)
                };
            }
        }
    }
    // P2P: `name:first-last`, the name may hold colons.
    if let Some((_, range)) = line.rsplit_once(':') {
        if let Some((a, b)) = range.split_once('-') {
            if let (Some(a), Some(b)) = (v4(a), v4(b)) {
                return Line::V4(a, b);
            }
        }
    }
    // A bare range `first-last`.
    if let Some((a, b)) = line.split_once('-') {
        if let (Some(a), Some(b)) = (v4(a), v4(b)) {
            return Line::V4(a, b);
        }
    }
    // CIDR, or one address.
    let (addr, bits) = match line.split_once('/') {
        Some((a, b)) => match b.trim().parse::<u32>() {
            Ok(n) => (a.trim(), Some(n)),
            Err(_) => return Line::Bad,
        },
        None => (line, None),
    };
    if let Some(a) = v4(addr) {
        let bits = bits.unwrap_or(32);
        if bits > 32 {
            return Line::Bad;
        }
        let mask = if bits == 0 {
            0
        } else {
            u32::MAX << (32 - bits)
        };
        return Line::V4(a & mask, a | !mask);
    }
    if let Ok(a) = addr.parse::<Ipv6Addr>() {
        let bits = bits.unwrap_or(128);
        if bits > 128 {
            return Line::Bad;
        }
        let a = u128::from(a);
        let mask = if bits == 0 {
            0
        } else {
            u128::MAX << (128 - bits)
        };
        return match Ipv6Addr::from(a).to_ipv4_mapped() {
            Some(v4) if bits >= 96 => {
                let m = if bits == 96 {
                    0
                } else {
                    u32::MAX << (128 - bits)
                };
                let x = u32::from(v4);
                Line::V4(x & m, x | !m)
            }
            _ => Line::V6(a & mask, a | !mask),
        };
    }
    Line::Bad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn each_format_is_read_and_looked_up() {
        let text = b"# a comment\n\
            // another\n\
            \n\
            Some: org, with colons:1.2.3.0-1.2.3.255\n\
            001.002.004.000 - 001.002.004.255 , 000 , eMule entry\n\
            009.009.009.000 - 009.009.009.255 , 200 , allowed by its level\n\
            10.0.0.0/8\n\
            5.6.7.8\n\
            2001:db8::/32\n\
            ::ffff:192.0.2.0/120\n\
            not an entry at all\n\
            1.2.3/24\n";
        let (b, loaded) = Blocklist::read(&[text]).unwrap();
        assert_eq!(loaded.bad_lines, 2);
        assert_eq!(loaded.first_bad, Some(11));
        for blocked in [
            "1.2.3.9",
            "1.2.4.255",
            "10.200.0.1",
            "5.6.7.8",
            "2001:db8:1::5",
            "192.0.2.7",
            "::ffff:10.1.1.1",
        ] {
            assert!(b.contains(ip(blocked)), "{blocked}");
        }
        for free in [
            "1.2.5.0",
            "9.9.9.9",
            "11.0.0.0",
            "5.6.7.9",
            "2001:db9::1",
            "127.0.0.1",
        ] {
            assert!(!b.contains(ip(free)), "{free}");
        }
    }

    #[test]
    fn overlapping_and_adjacent_ranges_merge_and_gzip_is_read() {
        use std::io::Write;
        let text =
            b"a:1.0.0.0-1.0.0.10\nb:1.0.0.5-1.0.0.20\nc:1.0.0.21-1.0.0.30\nd:0.0.0.0-0.0.0.0\n";
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(text).unwrap();
        let gz = gz.finish().unwrap();
        let (b, loaded) = Blocklist::read(&[&gz, b"255.255.255.255\n"]).unwrap();
        assert_eq!(loaded.entries, 5);
        assert_eq!(b.len(), 3, "{b:?}");
        assert!(b.contains(ip("1.0.0.30")) && !b.contains(ip("1.0.0.31")));
        assert!(b.contains(ip("255.255.255.255")) && b.contains(ip("0.0.0.0")));
        assert!(Blocklist::read(&[&[0x1f, 0x8b, 1, 2]]).is_err());
    }

    #[test]
    fn long_lines_are_bad_lines_and_numbers_run_through_the_lists() {
        let mut text = b"1.1.1.1\n".to_vec();
        text.extend(std::iter::repeat_n(b'x', 5000));
        text.extend_from_slice(b"\n2.2.2.0/24\r\nbad\n");
        let (b, loaded) = Blocklist::read(&[b"3.3.3.3\n", &text]).unwrap();
        assert_eq!((loaded.entries, loaded.bad_lines), (3, 2));
        assert_eq!(loaded.first_bad, Some(3), "line 2 of the second list");
        assert!(b.contains(ip("2.2.2.200")) && b.contains(ip("3.3.3.3")));
        // A last line without a newline still counts.
        let (b, loaded) = Blocklist::read(&[b"4.4.4.4"]).unwrap();
        assert_eq!(loaded.entries, 1);
        assert!(b.contains(ip("4.4.4.4")));
    }

    #[test]
    fn a_builder_reads_any_reader() {
        let mut b = Builder::new();
        let l = b
            .add(std::io::Cursor::new(b"x:1.2.3.4-1.2.3.9\n".to_vec()))
            .unwrap();
        assert_eq!(l.entries, 1);
        assert!(b
            .add(std::io::Cursor::new(vec![0x1f, 0x8b, 8, 0, 0]))
            .is_err());
        let list = b.finish();
        assert!(list.contains(ip("1.2.3.5")) && !list.contains(ip("1.2.3.10")));
    }

    #[test]
    fn a_million_ranges_stay_small() {
        use std::io::Write;
        use std::net::Ipv4Addr;
        let mut text = Vec::new();
        for i in 0..1_000_000u32 {
            let a = Ipv4Addr::from(i.wrapping_mul(4096));
            let b = Ipv4Addr::from(i.wrapping_mul(4096) + 100);
            writeln!(text, "r{i}:{a}-{b}").unwrap();
        }
        let (b, loaded) = Blocklist::read(&[&text]).unwrap();
        assert_eq!(loaded.bad_lines, 0);
        assert_eq!(b.len(), 1_000_000);
        assert!(b.v4.capacity() * 8 <= 9 << 20);
        assert!(b.contains(ip("0.0.16.50")) && !b.contains(ip("0.0.16.200")));
    }
}
