//! The extension protocol (BEP 10): the extension handshake and the registry of the
//! extensions we speak.
//!
//! Each side names its extensions in the handshake's `m` dictionary with the message id it
//! wants to receive them under. So a message we send uses the *remote's* id for that
//! extension, and one we receive carries *ours*. [`Registry`] says which extensions this
//! connection offers (a private torrent offers neither `ut_metadata` nor `ut_pex`) and builds
//! our handshake; [`ExtHandshake::parse`] reads the remote's, keeping only what it
//! understands: unknown extensions are ignored, a malformed handshake is an error the caller
//! may ignore, and nothing in it is fatal to the connection by itself.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Deserialize;
use serde_bencode::value::Value;
use serde_bytes::ByteBuf;

use crate::bencode::{self, Limits};
use crate::write::Dict;

/// The extensions share knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Extension {
    /// BEP 9: metadata exchange.
    Metadata,
    /// BEP 11: peer exchange.
    Pex,
    /// BEP 55: hole punching (a peer both sides are connected to introduces them).
    Holepunch,
}

impl Extension {
    /// In the order of their names (the `m` dictionary is written in this order).
    pub const ALL: [Extension; 3] = [Extension::Holepunch, Extension::Metadata, Extension::Pex];

    pub fn name(self) -> &'static str {
        match self {
            Extension::Metadata => "ut_metadata",
            Extension::Pex => "ut_pex",
            Extension::Holepunch => "ut_holepunch",
        }
    }

    /// The id under which we receive it (what our `m` dictionary says).
    pub fn local_id(self) -> u8 {
        match self {
            Extension::Metadata => 1,
            Extension::Pex => 2,
            Extension::Holepunch => 4,
        }
    }

    /// Which extension an incoming message id is, among those offered on this connection.
    pub fn from_local_id(id: u8, offered: &Registry) -> Option<Extension> {
        offered.iter().find(|e| e.local_id() == id)
    }
}

/// The extensions offered on one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Registry {
    metadata: bool,
    pex: bool,
    holepunch: bool,
}

impl Registry {
    /// Every extension we know (a public torrent).
    pub fn public() -> Self {
        Registry {
            metadata: true,
            pex: true,
            holepunch: true,
        }
    }

    /// A private torrent (BEP 27): no metadata exchange, no peer exchange, no introductions.
    pub fn private() -> Self {
        Registry::default()
    }

    pub fn with(mut self, e: Extension, on: bool) -> Self {
        match e {
            Extension::Metadata => self.metadata = on,
            Extension::Pex => self.pex = on,
            Extension::Holepunch => self.holepunch = on,
        }
        self
    }

    pub fn offers(&self, e: Extension) -> bool {
        match e {
            Extension::Metadata => self.metadata,
            Extension::Pex => self.pex,
            Extension::Holepunch => self.holepunch,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = Extension> + '_ {
        Extension::ALL.into_iter().filter(|e| self.offers(*e))
    }
}

/// What we say in our extension handshake.
#[derive(Debug, Clone)]
pub struct OurHandshake<'a> {
    pub registry: Registry,
    /// Our listen port (`p`).
    pub port: Option<u16>,
    /// Client name and version (`v`).
    pub version: &'a str,
    /// How many requests we queue per peer (`reqq`).
    pub reqq: u32,
    /// The size of the `info` dictionary, when we have it and offer ut_metadata.
    pub metadata_size: Option<u32>,
    /// The remote's address as we see it (`yourip`).
    pub yourip: Option<IpAddr>,
}

impl OurHandshake<'_> {
    pub fn encode(&self) -> Vec<u8> {
        let mut d = Dict::new();
        let mut m = Dict::new();
        // `m` keys in sorted order: ut_holepunch < ut_metadata < ut_pex.
        for e in self.registry.iter() {
            m.int(e.name(), e.local_id() as i64);
        }
        d.raw("m", &m.finish());
        if let (Some(size), true) = (self.metadata_size, self.registry.metadata) {
            d.int("metadata_size", size as i64);
        }
        if let Some(p) = self.port {
            d.int("p", p as i64);
        }
        d.int("reqq", self.reqq as i64);
        d.bytes("v", self.version.as_bytes());
        if let Some(ip) = self.yourip {
            match ip {
                IpAddr::V4(v4) => d.bytes("yourip", &v4.octets()),
                IpAddr::V6(v6) => d.bytes("yourip", &v6.octets()),
            };
        }
        d.finish()
    }
}

/// The remote's extension handshake, as far as we understand it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtHandshake {
    /// The remote's id for ut_metadata (0 or absent: not supported, or withdrawn).
    pub metadata_id: Option<u8>,
    /// The remote's id for ut_pex.
    pub pex_id: Option<u8>,
    /// The remote's id for ut_holepunch.
    pub holepunch_id: Option<u8>,
    /// Where it listens (`p`).
    pub port: Option<u16>,
    /// Its client name (`v`), lossily decoded and cut to 64 bytes.
    pub version: Option<String>,
    /// How many requests it queues (`reqq`).
    pub reqq: Option<u32>,
    /// The size of the info dictionary it can send (`metadata_size`), unchecked.
    pub metadata_size: Option<i64>,
    /// Our address as it sees it (`yourip`).
    pub yourip: Option<IpAddr>,
    /// Extensions its `m` names with id 0: withdrawn (matters for a later handshake).
    pub withdrawn: Registry,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtError {
    #[error("malformed extension message: {0}")]
    Bencode(#[from] bencode::BencodeError),
    #[error("the extension handshake is not a dictionary")]
    NotADict,
}

#[derive(Deserialize)]
struct RawHandshake {
    m: Option<std::collections::BTreeMap<ByteBuf, Value>>,
    p: Option<Value>,
    v: Option<Value>,
    reqq: Option<Value>,
    metadata_size: Option<Value>,
    yourip: Option<Value>,
}

fn int(v: &Option<Value>) -> Option<i64> {
    match v {
        Some(Value::Int(i)) => Some(*i),
        _ => None,
    }
}

impl ExtHandshake {
    /// Reads a remote's handshake. Fields of the wrong type are ignored, not fatal.
    pub fn parse(payload: &[u8]) -> Result<ExtHandshake, ExtError> {
        let scan = bencode::scan(payload, Limits::MESSAGE)?;
        if !scan.is_dict {
            return Err(ExtError::NotADict);
        }
        let raw: RawHandshake =
            serde_bencode::from_bytes(payload).map_err(|_| ExtError::NotADict)?;
        let entry = |e: Extension| {
            raw.m
                .as_ref()
                .and_then(|m| m.get(serde_bytes::Bytes::new(e.name().as_bytes())))
        };
        let id = |e: Extension| match entry(e) {
            Some(Value::Int(i)) => u8::try_from(*i).ok().filter(|&i| i > 0),
            _ => None,
        };
        let mut withdrawn = Registry::default();
        for e in Extension::ALL {
            if matches!(entry(e), Some(Value::Int(0))) {
                withdrawn = withdrawn.with(e, true);
            }
        }
        Ok(ExtHandshake {
            withdrawn,
            metadata_id: id(Extension::Metadata),
            pex_id: id(Extension::Pex),
            holepunch_id: id(Extension::Holepunch),
            port: int(&raw.p)
                .and_then(|p| u16::try_from(p).ok())
                .filter(|&p| p > 0),
            version: match &raw.v {
                Some(Value::Bytes(b)) => {
                    Some(String::from_utf8_lossy(&b[..b.len().min(64)]).into_owned())
                }
                _ => None,
            },
            reqq: int(&raw.reqq)
                .and_then(|r| u32::try_from(r).ok())
                .filter(|&r| r > 0),
            metadata_size: int(&raw.metadata_size),
            yourip: match &raw.yourip {
                Some(Value::Bytes(b)) if b.len() == 4 => {
                    Some(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3])))
                }
                Some(Value::Bytes(b)) if b.len() == 16 => {
                    let mut a = [0u8; 16];
                    a.copy_from_slice(b);
                    Some(IpAddr::V6(Ipv6Addr::from(a)))
                }
                _ => None,
            },
        })
    }

    /// The remote's id for `e`.
    pub fn id_of(&self, e: Extension) -> Option<u8> {
        match e {
            Extension::Metadata => self.metadata_id,
            Extension::Pex => self.pex_id,
            Extension::Holepunch => self.holepunch_id,
        }
    }

    /// A later handshake updates what it names (BEP 10: a handshake may be sent again;
    /// an id of 0 withdraws an extension, an absent one keeps it).
    pub fn update(&mut self, newer: ExtHandshake) {
        for e in Extension::ALL {
            let slot = match e {
                Extension::Metadata => &mut self.metadata_id,
                Extension::Pex => &mut self.pex_id,
                Extension::Holepunch => &mut self.holepunch_id,
            };
            match newer.id_of(e) {
                Some(id) => *slot = Some(id),
                None if newer.withdrawn.offers(e) => *slot = None,
                None => {}
            }
        }
        self.port = newer.port.or(self.port);
        self.version = newer.version.or(self.version.take());
        self.reqq = newer.reqq.or(self.reqq);
        self.metadata_size = newer.metadata_size.or(self.metadata_size);
        self.yourip = newer.yourip.or(self.yourip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_handshake_is_sorted_bencode_that_reads_back() {
        let ours = OurHandshake {
            registry: Registry::public(),
            port: Some(6881),
            version: "share 0.1.0",
            reqq: 500,
            metadata_size: Some(12345),
            yourip: Some("10.1.2.3".parse().unwrap()),
        };
        let bytes = ours.encode();
        assert_eq!(
            bytes,
            b"d1:md12:ut_holepunchi4e11:ut_metadatai1e6:ut_pexi2ee13:metadata_sizei12345e\
              1:pi6881e4:reqqi500e\
              1:v11:share 0.1.06:yourip4:\x0a\x01\x02\x03e"
                .to_vec()
        );
        let back = ExtHandshake::parse(&bytes).unwrap();
        assert_eq!(back.metadata_id, Some(1));
        assert_eq!(back.pex_id, Some(2));
        assert_eq!(back.port, Some(6881));
        assert_eq!(back.reqq, Some(500));
        assert_eq!(back.metadata_size, Some(12345));
        assert_eq!(back.version.as_deref(), Some("share 0.1.0"));
        assert_eq!(back.yourip, Some("10.1.2.3".parse().unwrap()));
    }

    #[test]
    fn a_private_torrent_offers_no_metadata_or_pex() {
        let ours = OurHandshake {
            registry: Registry::private(),
            port: None,
            version: "v",
            reqq: 10,
            metadata_size: Some(5),
            yourip: None,
        };
        let bytes = ours.encode();
        assert_eq!(bytes, b"d1:mde4:reqqi10e1:v1:ve".to_vec());
        let back = ExtHandshake::parse(&bytes).unwrap();
        assert_eq!(back.metadata_id, None);
        assert_eq!(back.pex_id, None);
        assert_eq!(back.metadata_size, None);
    }

    #[test]
    fn unknown_extensions_and_wrong_types_are_ignored_malformed_bencode_is_an_error() {
        let h = ExtHandshake::parse(
            b"d1:md11:lt_donthavei7e11:ut_metadatai3e6:ut_pexi300ee1:pi70000e4:reqq3:abc1:vi5ee",
        )
        .unwrap();
        assert_eq!(h.metadata_id, Some(3));
        assert_eq!(h.pex_id, None, "an id above 255 is not an id");
        assert_eq!(h.port, None);
        assert_eq!(h.reqq, None);
        assert_eq!(h.version, None);
        assert_eq!(ExtHandshake::parse(b"de").unwrap(), ExtHandshake::default());
        assert!(ExtHandshake::parse(b"d1:m").is_err());
        assert!(ExtHandshake::parse(b"le").is_err());
        assert!(ExtHandshake::parse(b"").is_err());
        assert!(ExtHandshake::parse(&[b'l'; 100]).is_err());
    }

    #[test]
    fn a_second_handshake_updates_and_can_withdraw() {
        let first = b"d1:md11:ut_metadatai3e6:ut_pexi4ee1:pi1000ee";
        let mut h = ExtHandshake::parse(first).unwrap();
        let second = b"d1:md6:ut_pexi0eee";
        h.update(ExtHandshake::parse(second).unwrap());
        assert_eq!(h.metadata_id, Some(3));
        assert_eq!(h.pex_id, None);
        assert_eq!(h.port, Some(1000));
    }

    #[test]
    fn incoming_ids_map_to_offered_extensions_only() {
        let public = Registry::public();
        assert_eq!(
            Extension::from_local_id(1, &public),
            Some(Extension::Metadata)
        );
        assert_eq!(Extension::from_local_id(2, &public), Some(Extension::Pex));
        assert_eq!(Extension::from_local_id(9, &public), None);
        assert_eq!(Extension::from_local_id(1, &Registry::private()), None);
    }
}
