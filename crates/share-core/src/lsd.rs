//! Local service discovery (BEP 14): the `BT-SEARCH` announce that peers multicast on the
//! local network, written and read.
//!
//! ```text
//! BT-SEARCH * HTTP/1.1\r\n
//! Host: 239.192.152.143:6771\r\n
//! Port: 6881\r\n
//! Infohash: <40 hex>\r\n          (one or more)
//! cookie: <ours>\r\n
//! \r\n\r\n
//! ```
//! The cookie lets a sender recognise its own announces when the multicast comes back to it.
//! Reading is bounded: a datagram over [`MAX_PACKET`] bytes or with more than
//! [`MAX_HASHES`] info-hashes is cut short, and lines that are not understood are skipped.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::InfoHash;

pub const GROUP_V4: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(239, 192, 152, 143), 6771);
pub const GROUP_V6: SocketAddrV6 = SocketAddrV6::new(
    Ipv6Addr::new(0xff15, 0, 0, 0, 0, 0, 0xefc0, 0x988f),
    6771,
    0,
    0,
);
/// Largest announce read (and written: a datagram that fits any local network).
pub const MAX_PACKET: usize = 1400;
/// Most info-hashes in one announce.
pub const MAX_HASHES: usize = 16;

/// One announce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announce {
    pub port: u16,
    pub info_hashes: Vec<InfoHash>,
    pub cookie: Option<String>,
}

impl Announce {
    /// The datagram, for the group `host` (`GROUP_V4` or `GROUP_V6`).
    pub fn encode(&self, host: SocketAddr) -> Vec<u8> {
        let mut s = format!(
            "BT-SEARCH * HTTP/1.1\r\nHost: {host}\r\nPort: {}\r\n",
            self.port
        );
        for h in self.info_hashes.iter().take(MAX_HASHES) {
            s.push_str(&format!("Infohash: {}\r\n", h.to_hex()));
        }
        if let Some(c) = &self.cookie {
            s.push_str(&format!("cookie: {c}\r\n"));
        }
        s.push_str("\r\n\r\n");
        s.into_bytes()
    }

    /// Reads a datagram; `None` if it is not a BT-SEARCH announce with a port and at least
    /// one valid info-hash.
    pub fn parse(packet: &[u8]) -> Option<Announce> {
        let packet = &packet[..packet.len().min(MAX_PACKET)];
        let text = std::str::from_utf8(packet).ok().or_else(|| {
            // A datagram cut at MAX_PACKET may end inside a character.
            let e = std::str::from_utf8(packet).err()?;
            std::str::from_utf8(&packet[..e.valid_up_to()]).ok()
        })?;
        let mut lines = text.split("\r\n");
        if !lines.next()?.starts_with("BT-SEARCH * HTTP/1.1") {
            return None;
        }
        let mut port = None;
        let mut info_hashes = Vec::new();
        let mut cookie = None;
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "port" => port = value.parse::<u16>().ok().filter(|&p| p != 0),
                "infohash" if info_hashes.len() < MAX_HASHES => {
                    let mut h = [0u8; 20];
                    if value.len() == 40 && hex::decode_to_slice(value, &mut h).is_ok() {
                        info_hashes.push(InfoHash(h));
                    }
                }
                "cookie" => cookie = Some(value.chars().take(64).collect()),
                _ => {}
            }
        }
        if info_hashes.is_empty() {
            return None;
        }
        Some(Announce {
            port: port?,
            info_hashes,
            cookie,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announces_round_trip() {
        let a = Announce {
            port: 6881,
            info_hashes: vec![InfoHash([0xab; 20]), InfoHash([1; 20])],
            cookie: Some("c00k1e".into()),
        };
        let bytes = a.encode(GROUP_V4.into());
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with("BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\n"));
        assert!(text.ends_with("\r\n\r\n\r\n"));
        assert_eq!(Announce::parse(&bytes), Some(a.clone()));
        let v6 = a.encode(GROUP_V6.into());
        assert!(String::from_utf8_lossy(&v6).contains("Host: [ff15::efc0:988f]:6771"));
    }

    #[test]
    fn libtorrent_style_announces_parse_and_junk_does_not() {
        // libtorrent writes the header names in its own case and no cookie on some versions.
        let lt = b"BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: 51413\r\n\
                   Infohash: C12FE1C06BBA254A9DC9F519B335AA7C1367A88A\r\n\r\n\r\n";
        let a = Announce::parse(lt).unwrap();
        assert_eq!(a.port, 51413);
        assert_eq!(
            a.info_hashes[0].to_hex(),
            "c12fe1c06bba254a9dc9f519b335aa7c1367a88a"
        );
        assert_eq!(a.cookie, None);
        for junk in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            b"BT-SEARCH * HTTP/1.1\r\nPort: 1\r\n\r\n",
            b"BT-SEARCH * HTTP/1.1\r\nInfohash: zz\r\nPort: 1\r\n",
            b"BT-SEARCH * HTTP/1.1\r\nInfohash: c12fe1c06bba254a9dc9f519b335aa7c1367a88a\r\nPort: 0\r\n",
            b"\xff\xfe",
            b"",
        ] {
            assert_eq!(Announce::parse(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn a_flood_of_hashes_is_cut_short() {
        let mut s = String::from("BT-SEARCH * HTTP/1.1\r\nPort: 7\r\n");
        for i in 0..100u8 {
            s.push_str(&format!("Infohash: {}\r\n", hex::encode([i; 20])));
        }
        let a = Announce::parse(s.as_bytes()).unwrap();
        assert!(a.info_hashes.len() <= MAX_HASHES);
    }
}
