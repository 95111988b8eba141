//! share's sans-IO core: everything that can be decided from bytes and events alone.
//!
//! No tokio, no sockets, no files. Outside input (a .torrent, the wire, a tracker reply)
//! passes a checked, bounded parser here before any other code sees it.

pub mod addr;
pub mod bencode;
pub mod bitfield;
pub mod blocklist;
pub mod budget;
pub mod choker;
pub mod dht;
pub mod ext;
pub mod hashes;
pub mod holepunch;
pub mod lsd;
pub mod magnet;
pub mod merkle;
pub mod metadata;
pub mod metainfo;
pub mod mse;
pub mod peer;
pub mod pex;
pub mod picker;
pub mod seeding;
#[cfg(test)]
mod sim;
pub mod tracker;
pub mod webseed;
pub mod wire;
pub mod write;

use std::fmt;

pub use addr::IpKey;
pub use magnet::{Magnet, MagnetError};
pub use merkle::Hash as Hash256;
pub use metainfo::{FileEntry, Info, Metainfo, MetainfoError};

/// The SHA-1 of a torrent's `info` dictionary: the torrent's identity (v1).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InfoHash(pub [u8; 20]);

impl InfoHash {
    /// 40 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InfoHash({})", self.to_hex())
    }
}

/// A torrent's identities (BEP 52): the v1 info-hash (SHA-1 of the `info` bytes), the v2
/// one (their SHA-256), or both for a hybrid torrent.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct InfoHashes {
    pub v1: Option<InfoHash>,
    pub v2: Option<[u8; 32]>,
}

impl InfoHashes {
    pub fn v1(h: InfoHash) -> InfoHashes {
        InfoHashes {
            v1: Some(h),
            v2: None,
        }
    }

    /// The v2 hash cut to 20 bytes: what v2 swarms use in handshakes, trackers, the DHT
    /// and LSD.
    pub fn v2_short(&self) -> Option<InfoHash> {
        self.v2
            .map(|h| InfoHash(h[..20].try_into().expect("20 of 32 bytes")))
    }

    /// The 20-byte key a torrent is known by in a session: its v1 hash when it has one,
    /// else its truncated v2 hash.
    pub fn key(&self) -> InfoHash {
        self.v1
            .or_else(|| self.v2_short())
            .unwrap_or(InfoHash([0; 20]))
    }

    /// Every 20-byte form peers may name the torrent by: v1, then the truncated v2.
    pub fn wire_forms(&self) -> Vec<InfoHash> {
        self.v1.into_iter().chain(self.v2_short()).collect()
    }

    /// Whether `h` names this torrent in either swarm.
    pub fn names(&self, h: &InfoHash) -> bool {
        self.v1.as_ref() == Some(h) || self.v2_short().as_ref() == Some(h)
    }

    /// As people see it: the 40 hex digits of v1 where there is one, else the 64 of v2.
    pub fn display(&self) -> String {
        match (self.v1, self.v2) {
            (Some(h), _) => h.to_hex(),
            (None, Some(v2)) => hex::encode(v2),
            (None, None) => String::new(),
        }
    }

    /// The hashes of these exact `info` bytes: v1 always, v2 when the torrent is v2.
    pub fn of_info(info_bytes: &[u8], v1: bool, v2: bool) -> InfoHashes {
        use sha1::Digest as _;
        InfoHashes {
            v1: v1.then(|| InfoHash(sha1::Sha1::digest(info_bytes).into())),
            v2: v2.then(|| merkle::sha256(info_bytes)),
        }
    }
}

/// `magnet:?xt=urn:btih:<hex>&xt=urn:btmh:1220<hex>&dn=<name>&tr=<url>...` (BEP 9, BEP 52):
/// the v1 topic, the v2 one, or both; values percent-encoded.
pub fn magnet_link(hashes: &InfoHashes, name: &str, trackers: &[String]) -> String {
    let mut topics = Vec::new();
    if let Some(h) = hashes.v1 {
        topics.push(format!("xt=urn:btih:{}", h.to_hex()));
    }
    if let Some(h) = hashes.v2 {
        topics.push(format!("xt=urn:btmh:1220{}", hex::encode(h)));
    }
    let mut out = format!("magnet:?{}&dn={}", topics.join("&"), percent(name));
    for t in trackers {
        out.push_str("&tr=");
        out.push_str(&percent(t));
    }
    out
}

/// Percent-encodes every byte outside RFC 3986's unreserved set.
pub fn percent(s: impl AsRef<[u8]>) -> String {
    let mut out = String::new();
    for &b in s.as_ref() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magnet_encodes_name_and_trackers() {
        let h = InfoHash([0xab; 20]);
        let m = magnet_link(&InfoHashes::v1(h), "a b&c", &["http://t/a?x=1".into()]);
        assert_eq!(
            m,
            "magnet:?xt=urn:btih:abababababababababababababababababababab&dn=a%20b%26c\
             &tr=http%3A%2F%2Ft%2Fa%3Fx%3D1"
        );
    }
}
