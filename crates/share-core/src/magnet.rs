//! Magnet links (BEP 9, BEP 52):
//! `magnet:?xt=urn:btih:<hash>&xt=urn:btmh:1220<hash>&dn=<name>&tr=<url>&ws=<url>&x.pe=<ip:port>`.
//!
//! The v1 info-hash comes as 40 hex digits or 32 base32 characters; the v2 one as a SHA-256
//! multihash (`1220` and 64 hex digits). A hybrid torrent's link carries both. Values are
//! percent-decoded (and `+` is a space, as in a form-encoded query). Everything that is
//! malformed gets an error that says what is wrong; unknown parameters are ignored.

use std::net::SocketAddr;

use crate::{InfoHash, InfoHashes};

/// Most trackers and peer addresses taken from one link.
const MAX_ENTRIES: usize = 200;
/// Longest link accepted.
const MAX_LEN: usize = 64 << 10;

/// A parsed magnet link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Magnet {
    /// The 20-byte key of the torrent ([`InfoHashes::key`]).
    pub info_hash: InfoHash,
    /// The hashes the link names: v1, v2, or both.
    pub hashes: InfoHashes,
    /// The display name (`dn`), if given.
    pub name: Option<String>,
    /// Tracker URLs (`tr`), in order, without repeats.
    pub trackers: Vec<String>,
    /// Peer addresses (`x.pe`).
    pub peers: Vec<SocketAddr>,
    /// Web seeds (`ws`, BEP 19), in order, without repeats.
    pub web_seeds: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MagnetError {
    #[error("not a magnet link (it must start with `magnet:?`)")]
    NotMagnet,
    #[error("the magnet link is longer than {MAX_LEN} bytes")]
    TooLong,
    #[error("the magnet link has no `xt=urn:btih:` or `xt=urn:btmh:` info-hash")]
    NoInfoHash,
    #[error("the info-hash {0:?} is neither 40 hex digits nor 32 base32 characters")]
    BadInfoHash(String),
    #[error("the v2 info-hash {0:?} is not `1220` and 64 hex digits (a SHA-256 multihash)")]
    BadV2Hash(String),
    #[error("the magnet link has two different info-hashes")]
    TwoInfoHashes,
    #[error("`x.pe={0}` is not an IP:PORT peer address")]
    BadPeer(String),
    #[error("bad percent-encoding in `{0}`")]
    BadEncoding(String),
}

impl Magnet {
    pub fn parse(link: &str) -> Result<Magnet, MagnetError> {
        if link.len() > MAX_LEN {
            return Err(MagnetError::TooLong);
        }
        let query = link
            .strip_prefix("magnet:?")
            .or_else(|| {
                link.get(..8)
                    .filter(|p| p.eq_ignore_ascii_case("magnet:?"))
                    .map(|_| &link[8..])
            })
            .ok_or(MagnetError::NotMagnet)?;
        let mut info_hash = None;
        let mut v2: Option<[u8; 32]> = None;
        let mut name = None;
        let mut trackers: Vec<String> = Vec::new();
        let mut web_seeds: Vec<String> = Vec::new();
        let mut peers = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
            let value = || decode(raw).ok_or_else(|| MagnetError::BadEncoding(pair.to_owned()));
            // `xt.1`, `xt.2`, ... are further exact topics (BEP 9 allows several).
            let base = key.split('.').next().unwrap_or(key);
            match base {
                "xt" if key == "xt" || key[3..].parse::<u32>().is_ok() => {
                    let v = value()?;
                    if let Some(h) = strip_prefix_ci(&v, "urn:btih:") {
                        let h = parse_hash(h)?;
                        if info_hash.is_some_and(|old| old != h) {
                            return Err(MagnetError::TwoInfoHashes);
                        }
                        info_hash = Some(h);
                    } else if let Some(h) = strip_prefix_ci(&v, "urn:btmh:") {
                        let h = parse_v2(h)?;
                        if v2.is_some_and(|old| old != h) {
                            return Err(MagnetError::TwoInfoHashes);
                        }
                        v2 = Some(h);
                    }
                }
                "dn" if key == "dn" => name = Some(value()?),
                "tr" if key == "tr" || key[3..].parse::<u32>().is_ok() => {
                    let url = value()?;
                    if !url.is_empty() && !trackers.contains(&url) && trackers.len() < MAX_ENTRIES {
                        trackers.push(url);
                    }
                }
                "ws" if key == "ws" || key[3..].parse::<u32>().is_ok() => {
                    let url = value()?;
                    if !url.is_empty() && !web_seeds.contains(&url) && web_seeds.len() < MAX_ENTRIES
                    {
                        web_seeds.push(url);
                    }
                }
                _ if key == "x.pe" => {
                    let v = value()?;
                    let addr: SocketAddr =
                        v.parse().map_err(|_| MagnetError::BadPeer(v.clone()))?;
                    if addr.port() == 0 {
                        return Err(MagnetError::BadPeer(v));
                    }
                    if peers.len() < MAX_ENTRIES && !peers.contains(&addr) {
                        peers.push(addr);
                    }
                }
                _ => {}
            }
        }
        if info_hash.is_none() && v2.is_none() {
            return Err(MagnetError::NoInfoHash);
        }
        let hashes = InfoHashes { v1: info_hash, v2 };
        Ok(Magnet {
            info_hash: hashes.key(),
            hashes,
            name: name.filter(|n| !n.is_empty()),
            trackers,
            peers,
            web_seeds,
        })
    }

    /// Whether `s` looks like a magnet link (so that it is not taken for a file name).
    pub fn looks_like(s: &str) -> bool {
        s.get(..7)
            .is_some_and(|p| p.eq_ignore_ascii_case("magnet:"))
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// A v2 topic: the multihash of a SHA-256 (`12` the function, `20` its length in bytes).
fn parse_v2(h: &str) -> Result<[u8; 32], MagnetError> {
    let mut out = [0u8; 32];
    match strip_prefix_ci(h, "1220") {
        Some(hex) if hex.len() == 64 && hex::decode_to_slice(hex, &mut out).is_ok() => Ok(out),
        _ => Err(MagnetError::BadV2Hash(h.to_owned())),
    }
}

fn parse_hash(h: &str) -> Result<InfoHash, MagnetError> {
    let bad = || MagnetError::BadInfoHash(h.to_owned());
    let mut out = [0u8; 20];
    match h.len() {
        40 => hex::decode_to_slice(h, &mut out).map_err(|_| bad())?,
        32 => {
            // RFC 4648 base32, no padding: 32 characters of 5 bits are exactly 20 bytes.
            let mut acc: u64 = 0;
            let mut bits = 0;
            let mut n = 0;
            for c in h.bytes() {
                let v = match c.to_ascii_uppercase() {
                    c @ b'A'..=b'Z' => c - b'A',
                    c @ b'2'..=b'7' => c - b'2' + 26,
                    _ => return Err(bad()),
                };
                acc = (acc << 5) | v as u64;
                bits += 5;
                if bits >= 8 {
                    bits -= 8;
                    out[n] = (acc >> bits) as u8;
                    n += 1;
                }
            }
        }
        _ => return Err(bad()),
    }
    Ok(InfoHash(out))
}

/// Percent-decoding, with `+` as a space; `None` for a bad escape or bytes that are not UTF-8.
fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a";

    #[test]
    fn hex_and_base32_hashes_name_trackers_and_peers() {
        let m = Magnet::parse(&format!(
            "magnet:?xt=urn:btih:{HEX}&dn=My+File%20(1)&tr=http%3A%2F%2Ft%2Fa&tr=udp://u:1\
             &tr=http%3A%2F%2Ft%2Fa&x.pe=127.0.0.1:6881&x.pe=[::1]:7000&foo=bar"
        ))
        .unwrap();
        assert_eq!(m.info_hash.to_hex(), HEX);
        assert_eq!(m.name.as_deref(), Some("My File (1)"));
        assert_eq!(m.trackers, vec!["http://t/a", "udp://u:1"]);
        assert_eq!(
            m.peers,
            vec![
                "127.0.0.1:6881".parse().unwrap(),
                "[::1]:7000".parse().unwrap()
            ]
        );
        // The same hash in base32 (RFC 4648), in either case.
        let b32 = "YEX6DQDLXISUVHOJ6UM3GNNKPQJWPKEK";
        let m2 = Magnet::parse(&format!("magnet:?xt=urn:btih:{b32}")).unwrap();
        assert_eq!(m2.info_hash, m.info_hash);
        let m3 = Magnet::parse(&format!("MAGNET:?xt=urn:BTIH:{}", b32.to_lowercase())).unwrap();
        assert_eq!(m3.info_hash, m.info_hash);
        assert!(m3.name.is_none() && m3.trackers.is_empty());
    }

    #[test]
    fn v2_and_hybrid_links_and_malformed_ones() {
        let hex2 = "caf1e1c30e81cb361b9ee167c4aa64228a7fa4fa9f6105232b28ad099f3a302e";
        let v2 = format!("magnet:?xt=urn:btmh:1220{hex2}&ws=http%3A%2F%2Fw%2Fx");
        let m = Magnet::parse(&v2).unwrap();
        assert_eq!(hex::encode(m.hashes.v2.unwrap()), hex2);
        assert_eq!(m.hashes.v1, None);
        assert_eq!(m.info_hash.to_hex(), hex2[..40]);
        assert_eq!(m.web_seeds, vec!["http://w/x"]);
        // A hybrid link carries both; its key is the v1 hash.
        let h = Magnet::parse(&format!("{v2}&xt=urn:btih:{HEX}")).unwrap();
        assert_eq!(h.info_hash.to_hex(), HEX);
        assert!(h.hashes.v2.is_some());
        for bad in [
            "1220abc",
            "1120caf1e1c30e81cb361b9ee167c4aa64228a7fa4fa9f6105232b28ad099f3a302e",
        ] {
            assert!(matches!(
                Magnet::parse(&format!("magnet:?xt=urn:btmh:{bad}")),
                Err(MagnetError::BadV2Hash(_))
            ));
        }
        assert_eq!(Magnet::parse("http://x"), Err(MagnetError::NotMagnet));
        assert_eq!(Magnet::parse("magnet:?dn=x"), Err(MagnetError::NoInfoHash));
        assert!(matches!(
            Magnet::parse("magnet:?xt=urn:btih:1234"),
            Err(MagnetError::BadInfoHash(_))
        ));
        assert!(matches!(
            Magnet::parse(&format!("magnet:?xt=urn:btih:{}", "g".repeat(40))),
            Err(MagnetError::BadInfoHash(_))
        ));
        assert!(matches!(
            Magnet::parse(&format!("magnet:?xt=urn:btih:{HEX}&x.pe=nohost")),
            Err(MagnetError::BadPeer(_))
        ));
        assert!(matches!(
            Magnet::parse(&format!("magnet:?xt=urn:btih:{HEX}&dn=%zz")),
            Err(MagnetError::BadEncoding(_))
        ));
        assert!(matches!(
            Magnet::parse(&format!(
                "magnet:?xt=urn:btih:{HEX}&xt=urn:btih:{}",
                "0".repeat(40)
            )),
            Err(MagnetError::TwoInfoHashes)
        ));
        assert_eq!(
            Magnet::parse(&format!(
                "magnet:?xt=urn:btih:{HEX}&x={}",
                "a".repeat(70_000)
            )),
            Err(MagnetError::TooLong)
        );
    }

    #[test]
    fn our_own_links_parse_back() {
        let h = InfoHash([0xab; 20]);
        let hashes = InfoHashes {
            v1: Some(h),
            v2: Some([0xcd; 32]),
        };
        let link = crate::magnet_link(&hashes, "a b&c+d", &["http://t/a?x=1".into()]);
        let m = Magnet::parse(&link).unwrap();
        assert_eq!(m.info_hash, h);
        assert_eq!(m.hashes, hashes);
        assert_eq!(m.name.as_deref(), Some("a b&c+d"));
        assert_eq!(m.trackers, vec!["http://t/a?x=1"]);
    }
}
