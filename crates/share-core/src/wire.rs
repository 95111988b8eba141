//! The peer wire protocol (BEP 3), with the fast extension (BEP 6), extension messages
//! (BEP 10) and BitTorrent v2's hash messages (BEP 52): the handshake and every message,
//! encoded and decoded without I/O.
//!
//! [`decode`] takes bytes as they arrive, in any chunking. It checks a frame's length prefix
//! against a bound before anything is sized from it, so a peer that announces a 4 GiB message
//! costs an error, not an allocation.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::InfoHash;

pub const PROTOCOL: &[u8; 19] = b"BitTorrent protocol";
pub const HANDSHAKE_LEN: usize = 68;
/// The largest block anyone may request or send.
pub const MAX_BLOCK: u32 = 16 * 1024;

/// The 68-byte handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handshake {
    pub reserved: [u8; 8],
    pub info_hash: InfoHash,
    pub peer_id: [u8; 20],
}

impl Handshake {
    /// Our handshake: extension protocol (BEP 10) and fast extension (BEP 6) advertised.
    pub fn new(info_hash: InfoHash, peer_id: [u8; 20]) -> Self {
        let mut reserved = [0u8; 8];
        reserved[5] |= 0x10;
        reserved[7] |= 0x04;
        Handshake {
            reserved,
            info_hash,
            peer_id,
        }
    }

    pub fn supports_extensions(&self) -> bool {
        self.reserved[5] & 0x10 != 0
    }

    pub fn supports_fast(&self) -> bool {
        self.reserved[7] & 0x04 != 0
    }

    /// The DHT bit (BEP 5): the peer runs a DHT node and takes a `port` message.
    pub fn supports_dht(&self) -> bool {
        self.reserved[7] & 0x01 != 0
    }

    /// BEP 52's upgrade bit: a hybrid torrent's peer that speaks v2 too.
    pub fn supports_v2(&self) -> bool {
        self.reserved[7] & 0x10 != 0
    }

    /// Our handshake with the v2 upgrade bit (sent with a hybrid torrent's v1 hash).
    pub fn with_v2(mut self, on: bool) -> Self {
        if on {
            self.reserved[7] |= 0x10;
        } else {
            self.reserved[7] &= !0x10;
        }
        self
    }

    /// Our handshake, saying we run a DHT node.
    pub fn with_dht(mut self, on: bool) -> Self {
        if on {
            self.reserved[7] |= 0x01;
        }
        self
    }

    pub fn encode(&self) -> [u8; HANDSHAKE_LEN] {
        let mut out = [0u8; HANDSHAKE_LEN];
        out[0] = 19;
        out[1..20].copy_from_slice(PROTOCOL);
        out[20..28].copy_from_slice(&self.reserved);
        out[28..48].copy_from_slice(&self.info_hash.0);
        out[48..68].copy_from_slice(&self.peer_id);
        out
    }

    pub fn decode(buf: &[u8; HANDSHAKE_LEN]) -> Result<Self, WireError> {
        if buf[0] != 19 || &buf[1..20] != PROTOCOL {
            return Err(WireError::NotBitTorrent);
        }
        let mut h = Handshake {
            reserved: [0; 8],
            info_hash: InfoHash([0; 20]),
            peer_id: [0; 20],
        };
        h.reserved.copy_from_slice(&buf[20..28]);
        h.info_hash.0.copy_from_slice(&buf[28..48]);
        h.peer_id.copy_from_slice(&buf[48..68]);
        Ok(h)
    }
}

/// A block: `length` bytes at `begin` inside piece `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockRef {
    pub index: u32,
    pub begin: u32,
    pub length: u32,
}

/// BEP 52: a range of one layer of a file's merkle tree, as hash requests, hashes and hash
/// rejects name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HashRange {
    /// The file, by its pieces root.
    pub root: [u8; 32],
    /// The layer, counted up from the leaves (0: block hashes).
    pub base: u32,
    /// The first hash's index in that layer.
    pub index: u32,
    /// How many hashes of that layer.
    pub length: u32,
    /// How many layers of proof above them.
    pub proof_layers: u32,
}

/// Most hashes one `hashes` message may carry: the most a request may ask (libtorrent's
/// bound) and a proof up a tree of any file a torrent may hold.
pub const MAX_HASHES: u32 = 8192 + 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    KeepAlive,
    Choke,
    Unchoke,
    Interested,
    NotInterested,
    Have(u32),
    Bitfield(Bytes),
    Request(BlockRef),
    Piece {
        index: u32,
        begin: u32,
        data: Bytes,
    },
    Cancel(BlockRef),
    Port(u16),
    /// BEP 6.
    Suggest(u32),
    HaveAll,
    HaveNone,
    Reject(BlockRef),
    AllowedFast(u32),
    /// BEP 10: extended message `id` (0 is the extension handshake) with a bencoded payload.
    Extended {
        id: u8,
        payload: Bytes,
    },
    /// BEP 52: asks for hashes of a file's tree.
    HashRequest(HashRange),
    /// BEP 52: the hashes asked for, then the proof (uncles, bottom-up).
    Hashes {
        range: HashRange,
        hashes: Vec<[u8; 32]>,
    },
    /// BEP 52: the hashes asked for will not come.
    HashReject(HashRange),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("not a BitTorrent handshake")]
    NotBitTorrent,
    #[error("message of {len} bytes is larger than the limit of {max}")]
    TooLong { len: u32, max: u32 },
    #[error("unknown message id {0}")]
    UnknownId(u8),
    #[error("message id {id} with a wrong length {len}")]
    BadLength { id: u8, len: u32 },
}

/// Largest frame we accept: a 16 KiB block plus its header, a bitfield for `piece_count`
/// pieces, or a 1 MiB extension message, whichever is largest.
pub fn max_frame(piece_count: u32) -> u32 {
    (MAX_BLOCK + 9)
        .max(piece_count.div_ceil(8) + 1)
        .max(1 << 20)
}

/// Decodes one message from the front of `buf`, if a whole one is there. Consumes exactly the
/// bytes of that message. `max_len` bounds the length prefix.
pub fn decode(buf: &mut BytesMut, max_len: u32) -> Result<Option<Message>, WireError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if len > max_len {
        return Err(WireError::TooLong { len, max: max_len });
    }
    if buf.len() < 4 + len as usize {
        buf.reserve(4 + len as usize - buf.len());
        return Ok(None);
    }
    buf.advance(4);
    if len == 0 {
        return Ok(Some(Message::KeepAlive));
    }
    let mut body = buf.split_to(len as usize);
    let id = body.get_u8();
    let rest = len - 1;
    let want = |n: u32| {
        if rest == n {
            Ok(())
        } else {
            Err(WireError::BadLength { id, len })
        }
    };
    let block = |body: &mut BytesMut| BlockRef {
        index: body.get_u32(),
        begin: body.get_u32(),
        length: body.get_u32(),
    };
    let range = |body: &mut BytesMut| {
        let mut root = [0u8; 32];
        body.copy_to_slice(&mut root);
        HashRange {
            root,
            base: body.get_u32(),
            index: body.get_u32(),
            length: body.get_u32(),
            proof_layers: body.get_u32(),
        }
    };
    Ok(Some(match id {
        0 => want(0).map(|_| Message::Choke)?,
        1 => want(0).map(|_| Message::Unchoke)?,
        2 => want(0).map(|_| Message::Interested)?,
        3 => want(0).map(|_| Message::NotInterested)?,
        4 => want(4).map(|_| Message::Have(body.get_u32()))?,
        5 => Message::Bitfield(body.freeze()),
        6 => want(12).map(|_| Message::Request(block(&mut body)))?,
        7 => {
            if rest < 8 {
                return Err(WireError::BadLength { id, len });
            }
            let index = body.get_u32();
            let begin = body.get_u32();
            Message::Piece {
                index,
                begin,
                data: body.freeze(),
            }
        }
        8 => want(12).map(|_| Message::Cancel(block(&mut body)))?,
        9 => want(2).map(|_| Message::Port(body.get_u16()))?,
        0x0D => want(4).map(|_| Message::Suggest(body.get_u32()))?,
        0x0E => want(0).map(|_| Message::HaveAll)?,
        0x0F => want(0).map(|_| Message::HaveNone)?,
        0x10 => want(12).map(|_| Message::Reject(block(&mut body)))?,
        0x11 => want(4).map(|_| Message::AllowedFast(body.get_u32()))?,
        20 => {
            if rest < 1 {
                return Err(WireError::BadLength { id, len });
            }
            let ext = body.get_u8();
            Message::Extended {
                id: ext,
                payload: body.freeze(),
            }
        }
        21 => want(48).map(|_| Message::HashRequest(range(&mut body)))?,
        22 => {
            let n = rest.checked_sub(48).filter(|n| n % 32 == 0).map(|n| n / 32);
            match n {
                Some(n) if n <= MAX_HASHES => {
                    let range = range(&mut body);
                    let hashes = body
                        .chunks_exact(32)
                        .map(|c| c.try_into().expect("32 bytes"))
                        .collect();
                    Message::Hashes { range, hashes }
                }
                _ => return Err(WireError::BadLength { id, len }),
            }
        }
        23 => want(48).map(|_| Message::HashReject(range(&mut body)))?,
        other => return Err(WireError::UnknownId(other)),
    }))
}

impl Message {
    /// Appends the framed message to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        let simple = |out: &mut BytesMut, id: u8| {
            out.put_u32(1);
            out.put_u8(id);
        };
        let with_u32 = |out: &mut BytesMut, id: u8, v: u32| {
            out.put_u32(5);
            out.put_u8(id);
            out.put_u32(v);
        };
        let with_block = |out: &mut BytesMut, id: u8, b: &BlockRef| {
            out.put_u32(13);
            out.put_u8(id);
            out.put_u32(b.index);
            out.put_u32(b.begin);
            out.put_u32(b.length);
        };
        match self {
            Message::KeepAlive => out.put_u32(0),
            Message::Choke => simple(out, 0),
            Message::Unchoke => simple(out, 1),
            Message::Interested => simple(out, 2),
            Message::NotInterested => simple(out, 3),
            Message::Have(i) => with_u32(out, 4, *i),
            Message::Bitfield(b) => {
                out.put_u32(1 + b.len() as u32);
                out.put_u8(5);
                out.put_slice(b);
            }
            Message::Request(b) => with_block(out, 6, b),
            Message::Piece { index, begin, data } => {
                out.reserve(13 + data.len());
                out.put_u32(9 + data.len() as u32);
                out.put_u8(7);
                out.put_u32(*index);
                out.put_u32(*begin);
                out.put_slice(data);
            }
            Message::Cancel(b) => with_block(out, 8, b),
            Message::Port(p) => {
                out.put_u32(3);
                out.put_u8(9);
                out.put_u16(*p);
            }
            Message::Suggest(i) => with_u32(out, 0x0D, *i),
            Message::HaveAll => simple(out, 0x0E),
            Message::HaveNone => simple(out, 0x0F),
            Message::Reject(b) => with_block(out, 0x10, b),
            Message::AllowedFast(i) => with_u32(out, 0x11, *i),
            Message::Extended { id, payload } => {
                out.put_u32(2 + payload.len() as u32);
                out.put_u8(20);
                out.put_u8(*id);
                out.put_slice(payload);
            }
            Message::HashRequest(r) => put_range(out, 21, r, 0),
            Message::Hashes { range, hashes } => {
                put_range(out, 22, range, hashes.len());
                hashes.iter().for_each(|h| out.put_slice(h));
            }
            Message::HashReject(r) => put_range(out, 23, r, 0),
        }
    }
}

/// A hash message's frame header and range, announcing `extra` hashes after it.
fn put_range(out: &mut BytesMut, id: u8, r: &HashRange, extra: usize) {
    out.reserve(53 + extra * 32);
    out.put_u32(49 + extra as u32 * 32);
    out.put_u8(id);
    out.put_slice(&r.root);
    out.put_u32(r.base);
    out.put_u32(r.index);
    out.put_u32(r.length);
    out.put_u32(r.proof_layers);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_messages() -> Vec<Message> {
        let b = BlockRef {
            index: 7,
            begin: 16384,
            length: 16384,
        };
        vec![
            Message::KeepAlive,
            Message::Choke,
            Message::Unchoke,
            Message::Interested,
            Message::NotInterested,
            Message::Have(42),
            Message::Bitfield(Bytes::from_static(&[0xff, 0x80])),
            Message::Request(b),
            Message::Piece {
                index: 1,
                begin: 2,
                data: Bytes::from(vec![9u8; 1000]),
            },
            Message::Cancel(b),
            Message::Port(6881),
            Message::Suggest(3),
            Message::HaveAll,
            Message::HaveNone,
            Message::Reject(b),
            Message::AllowedFast(5),
            Message::Extended {
                id: 0,
                payload: Bytes::from_static(b"d1:md11:ut_metadatai1eee"),
            },
            Message::HashRequest(range()),
            Message::Hashes {
                range: range(),
                hashes: vec![[1; 32], [2; 32], [3; 32]],
            },
            Message::HashReject(range()),
        ]
    }

    fn range() -> HashRange {
        HashRange {
            root: [7; 32],
            base: 2,
            index: 4,
            length: 4,
            proof_layers: 1,
        }
    }

    #[test]
    fn a_hash_request_is_what_libtorrent_sends() {
        // Captured from libtorrent 2.0.8: the piece layer of a file of three pieces.
        let wire = hex::decode(
            "000000311585db6f11d750c1525ab22755acb1742489e22a86f0c121c87fdc06dafb99a2ea\
             00000002000000000000000400000001",
        )
        .unwrap();
        let mut buf = BytesMut::from(&wire[..]);
        let Some(Message::HashRequest(r)) = decode(&mut buf, max_frame(1)).unwrap() else {
            panic!("not a hash request")
        };
        assert_eq!((r.base, r.index, r.length, r.proof_layers), (2, 0, 4, 1));
        let mut out = BytesMut::new();
        Message::HashRequest(r).encode(&mut out);
        assert_eq!(&out[..], &wire[..]);
    }

    #[test]
    fn hash_messages_of_the_wrong_size_are_errors() {
        for len in [48u32, 50, 49 + 33, 49 + 32 * (MAX_HASHES + 1)] {
            let mut buf = BytesMut::new();
            buf.put_u32(len);
            buf.put_u8(22);
            buf.put_slice(&vec![0; len as usize - 1]);
            assert!(
                matches!(
                    decode(&mut buf, 1 << 20),
                    Err(WireError::BadLength { id: 22, .. })
                ),
                "{len}"
            );
        }
        let mut buf = BytesMut::new();
        buf.put_u32(50);
        buf.put_u8(21);
        buf.put_slice(&[0; 49]);
        assert!(decode(&mut buf, 100).is_err());
    }

    #[test]
    fn every_message_round_trips() {
        for m in all_messages() {
            let mut buf = BytesMut::new();
            m.encode(&mut buf);
            assert_eq!(decode(&mut buf, max_frame(100)).unwrap(), Some(m.clone()));
            assert!(buf.is_empty(), "{m:?} left bytes");
        }
    }

    #[test]
    fn a_stream_decodes_the_same_in_any_chunking() {
        let mut stream = BytesMut::new();
        for m in all_messages() {
            m.encode(&mut stream);
        }
        let stream = stream.freeze();
        for chunk in [1, 2, 3, 5, 7, 64, 4096] {
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for part in stream.chunks(chunk) {
                buf.extend_from_slice(part);
                while let Some(m) = decode(&mut buf, max_frame(100)).unwrap() {
                    got.push(m);
                }
            }
            assert_eq!(got, all_messages(), "chunk size {chunk}");
        }
    }

    #[test]
    fn a_huge_length_prefix_is_refused_before_any_allocation() {
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff, 7][..]);
        let err = decode(&mut buf, max_frame(100)).unwrap_err();
        assert!(matches!(err, WireError::TooLong { len: u32::MAX, .. }));
        assert!(buf.capacity() < 1024);
    }

    #[test]
    fn wrong_lengths_and_unknown_ids_are_errors() {
        let mut buf = BytesMut::from(&[0, 0, 0, 2, 1, 0][..]);
        assert!(matches!(
            decode(&mut buf, 100),
            Err(WireError::BadLength { id: 1, .. })
        ));
        let mut buf = BytesMut::from(&[0, 0, 0, 1, 99][..]);
        assert_eq!(decode(&mut buf, 100), Err(WireError::UnknownId(99)));
        let mut buf = BytesMut::from(&[0, 0, 0, 5, 7, 0, 0, 0, 1][..]);
        assert!(matches!(
            decode(&mut buf, 100),
            Err(WireError::BadLength { id: 7, .. })
        ));
    }

    #[test]
    fn handshake_round_trips_and_advertises_extensions() {
        let h = Handshake::new(InfoHash([3; 20]), [4; 20]);
        let back = Handshake::decode(&h.encode()).unwrap();
        assert_eq!(back, h);
        assert!(back.supports_extensions() && back.supports_fast());
        assert!(!back.supports_dht() && !back.supports_v2());
        assert!(Handshake::decode(&h.with_v2(true).encode())
            .unwrap()
            .supports_v2());
        assert!(Handshake::decode(&h.with_dht(true).encode())
            .unwrap()
            .supports_dht());
        let mut bad = h.encode();
        bad[3] = b'x';
        assert_eq!(Handshake::decode(&bad), Err(WireError::NotBitTorrent));
    }
}
