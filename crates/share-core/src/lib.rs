//! share's sans-IO core: everything that can be decided from bytes and events alone.
//!
//! No tokio, no sockets, no files. Outside input (a .torrent, the wire, a tracker reply)
//! passes a checked, bounded parser here before any other code sees it.

pub mod addr;
pub mod bencode;
pub mod bitfield;
pub mod budget;
pub mod choker;
pub mod dht;
pub mod ext;
pub mod lsd;
pub mod magnet;
pub mod metadata;
pub mod metainfo;
pub mod mse;
pub mod peer;
pub mod pex;
pub mod picker;
pub mod tracker;
pub mod wire;
pub mod write;

use std::fmt;

pub use addr::IpKey;
pub use magnet::{Magnet, MagnetError};
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

/// `magnet:?xt=urn:btih:<hex>&dn=<name>&tr=<url>...` (BEP 9), with values percent-encoded.
pub fn magnet_link(hash: &InfoHash, name: &str, trackers: &[String]) -> String {
    let mut out = format!("magnet:?xt=urn:btih:{}&dn={}", hash.to_hex(), percent(name));
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
        let m = magnet_link(&h, "a b&c", &["http://t/a?x=1".into()]);
        assert_eq!(
            m,
            "magnet:?xt=urn:btih:abababababababababababababababababababab&dn=a%20b%26c\
             &tr=http%3A%2F%2Ft%2Fa%3Fx%3D1"
        );
    }
}
