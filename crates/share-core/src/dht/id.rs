//! Node ids: 160-bit numbers, XOR distance, and BEP 42's binding of an id to an address.
//!
//! BEP 42 makes the first 21 bits of a node id a CRC32C of the node's (masked) IP address, so
//! a node cannot choose an id next to a target it wants to hijack without owning an address
//! that hashes there. Addresses of local networks (loopback, RFC 1918, link-local, ULA) are
//! exempt, as the BEP says. The CRC is written here (a 256-entry table built at compile
//! time): it is twenty lines, and checking an id costs a handful of table reads.

use std::fmt;
use std::net::IpAddr;

use super::Rng;

/// A node id or an info-hash: both live in the same 160-bit space.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub [u8; 20]);

/// The XOR of two ids, compared as a big-endian number: smaller is closer.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub struct Distance(pub [u8; 20]);

impl NodeId {
    pub fn distance(&self, other: &NodeId) -> Distance {
        let mut d = [0u8; 20];
        for (i, b) in d.iter_mut().enumerate() {
            *b = self.0[i] ^ other.0[i];
        }
        Distance(d)
    }

    /// How many leading bits `self` shares with `other` (160 when equal).
    pub fn common_prefix(&self, other: &NodeId) -> usize {
        self.distance(other).leading_zeros()
    }

    pub fn random(rng: &mut Rng) -> NodeId {
        let mut id = [0u8; 20];
        rng.fill(&mut id);
        NodeId(id)
    }

    /// A random id that shares exactly `prefix` leading bits with `self` (`prefix < 160`):
    /// a target inside bucket `prefix` of a table centred on `self`.
    pub fn random_in_bucket(&self, prefix: usize, rng: &mut Rng) -> NodeId {
        let mut id = NodeId::random(rng).0;
        let prefix = prefix.min(159);
        for bit in 0..=prefix {
            let (byte, mask) = (bit / 8, 0x80u8 >> (bit % 8));
            let ours = self.0[byte] & mask;
            let want = if bit == prefix { ours ^ mask } else { ours };
            id[byte] = (id[byte] & !mask) | want;
        }
        NodeId(id)
    }

    /// A BEP 42 id for `ip`, its free bits drawn from `rng`.
    pub fn for_ip(ip: IpAddr, rng: &mut Rng) -> NodeId {
        let mut id = NodeId::random(rng).0;
        let r = id[19];
        let crc = ip_crc(ip, r);
        id[0] = (crc >> 24) as u8;
        id[1] = (crc >> 16) as u8;
        id[2] = ((crc >> 8) as u8 & 0xf8) | (id[2] & 0x07);
        NodeId(id)
    }

    /// Whether `self` is a valid BEP 42 id for a node at `ip`. Local addresses always pass.
    pub fn matches_ip(&self, ip: IpAddr) -> bool {
        is_local(ip) || self.bep42_prefix_ok(ip)
    }

    /// The BEP 42 check itself, with no exemption for local addresses.
    pub fn bep42_prefix_ok(&self, ip: IpAddr) -> bool {
        let crc = ip_crc(ip, self.0[19]);
        self.0[0] == (crc >> 24) as u8
            && self.0[1] == (crc >> 16) as u8
            && self.0[2] & 0xf8 == (crc >> 8) as u8 & 0xf8
    }
}

impl Distance {
    pub fn leading_zeros(&self) -> usize {
        let mut n = 0;
        for b in self.0 {
            if b == 0 {
                n += 8;
            } else {
                return n + b.leading_zeros() as usize;
            }
        }
        n
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", hex::encode(self.0))
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// Loopback, private (RFC 1918), link-local and unique-local addresses: BEP 42 exempts them.
pub fn is_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => {
            let s = v6.segments()[0];
            v6.is_loopback() || s & 0xffc0 == 0xfe80 || s & 0xfe00 == 0xfc00
        }
    }
}

/// CRC32C of the masked address with the 3 bits of `r` folded in (BEP 42).
fn ip_crc(ip: IpAddr, r: u8) -> u32 {
    let r = r & 0x07;
    match ip {
        IpAddr::V4(v4) => {
            let masked = (u32::from(v4) & 0x030f_3fff) | (u32::from(r) << 29);
            crc32c(&masked.to_be_bytes())
        }
        IpAddr::V6(v6) => {
            const MASK: [u8; 8] = [0x01, 0x03, 0x07, 0x0f, 0x1f, 0x3f, 0x7f, 0xff];
            let o = v6.octets();
            let mut b = [0u8; 8];
            for i in 0..8 {
                b[i] = o[i] & MASK[i];
            }
            b[0] |= r << 5;
            crc32c(&b)
        }
    }
}

const CRC32C_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82f6_3b78
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// CRC-32C (Castagnoli), as BEP 42 uses it.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c = CRC32C_TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn crc32c_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn bep42_vectors() {
        // The examples of BEP 42: address, last byte, and the 21-bit prefix they fix.
        let cases: [([u8; 4], u8, [u8; 3]); 5] = [
            ([124, 31, 75, 21], 0x01, [0x5f, 0xbf, 0xbf]),
            ([21, 75, 31, 124], 0x56, [0x5a, 0x3c, 0xe9]),
            ([65, 23, 51, 170], 0x16, [0xa5, 0xd4, 0x32]),
            ([84, 124, 73, 14], 0x41, [0x1b, 0x03, 0x21]),
            ([43, 213, 53, 83], 0x5a, [0xe5, 0x6f, 0x6c]),
        ];
        for (ip, last, prefix) in cases {
            let ip = IpAddr::V4(Ipv4Addr::from(ip));
            let mut id = [0u8; 20];
            id[..3].copy_from_slice(&prefix);
            id[19] = last;
            assert!(NodeId(id).bep42_prefix_ok(ip), "{ip}");
            id[0] ^= 1;
            assert!(!NodeId(id).bep42_prefix_ok(ip), "{ip} with a wrong prefix");
        }
    }

    #[test]
    fn generated_ids_verify_and_local_addresses_are_exempt() {
        let mut rng = Rng::new([7; 32]);
        for ip in ["1.2.3.4", "203.0.113.9", "2001:db8::1"] {
            let ip: IpAddr = ip.parse().unwrap();
            for _ in 0..20 {
                assert!(NodeId::for_ip(ip, &mut rng).matches_ip(ip));
            }
            let other: IpAddr = "8.8.4.4".parse().unwrap();
            let mismatched = (0..20)
                .filter(|_| !NodeId::for_ip(other, &mut rng).matches_ip(ip))
                .count();
            assert!(mismatched >= 19);
        }
        let random = NodeId::random(&mut rng);
        assert!(random.matches_ip("127.3.0.1".parse().unwrap()));
        assert!(random.matches_ip("192.168.1.1".parse().unwrap()));
        assert!(random.matches_ip("fd00::1".parse().unwrap()));
    }

    #[test]
    fn distance_and_buckets() {
        let a = NodeId([0; 20]);
        let mut b = [0u8; 20];
        b[2] = 0x10;
        assert_eq!(a.common_prefix(&NodeId(b)), 19);
        assert_eq!(a.common_prefix(&a), 160);
        let mut rng = Rng::new([1; 32]);
        for p in [0, 5, 77, 159] {
            assert_eq!(a.random_in_bucket(p, &mut rng).common_prefix(&a), p);
        }
    }
}
