//! Metadata exchange (BEP 9, `ut_metadata`): the message codec, and the fetch of a torrent's
//! `info` dictionary from peers when all we have is its info-hash (a magnet link).
//!
//! [`MetadataFetch`] is sans-IO: the torrent task tells it which peers offer metadata and
//! what they send, and asks it which pieces to request of whom. It holds at most
//! [`MAX_METADATA`] bytes whatever a peer claims (a larger `metadata_size` is refused before
//! anything is allocated), asks several peers at once, re-asks a piece that timed out, and
//! checks the assembled bytes against the info-hash. When they do not match, a peer that
//! sent every piece is named for a ban; when several contributed, each gets a strike and the
//! next attempt takes every piece from one peer, so a liar is caught on its own.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Deserialize;
use sha1::{Digest, Sha1};

use crate::bencode::{self, Limits};
use crate::picker::PeerKey;
use crate::write::Dict;
use crate::{InfoHash, InfoHashes};

/// Metadata travels in pieces of 16 KiB (the last may be shorter).
pub const PIECE: usize = 16 * 1024;
/// The largest `info` dictionary we fetch: far above any real torrent's (a torrent of a
/// million files has one of about 100 MiB... but such torrents are not shared by magnet).
pub const MAX_METADATA: usize = 32 << 20;
/// Requests out to one peer at once.
const PER_PEER: usize = 3;
/// A piece asked for and not received in this time is asked of someone else.
const PIECE_TIMEOUT: Duration = Duration::from_secs(15);
/// Strikes (bad dictionaries contributed to) before a peer is banned.
const MAX_STRIKES: u32 = 2;

/// A `ut_metadata` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataMsg<'a> {
    Request(u32),
    /// A piece of the dictionary, and the size of the whole (which the sender must give).
    Data {
        piece: u32,
        total_size: Option<i64>,
        data: &'a [u8],
    },
    Reject(u32),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    #[error("malformed ut_metadata message: {0}")]
    Bencode(#[from] bencode::BencodeError),
    #[error("malformed ut_metadata message: {0}")]
    Malformed(&'static str),
}

#[derive(Deserialize)]
struct Header {
    msg_type: i64,
    piece: i64,
    total_size: Option<i64>,
}

impl<'a> MetadataMsg<'a> {
    pub fn parse(payload: &'a [u8]) -> Result<MetadataMsg<'a>, MetadataError> {
        let (scan, end) = bencode::scan_prefix(payload, Limits::MESSAGE)?;
        if !scan.is_dict {
            return Err(MetadataError::Malformed("not a dictionary"));
        }
        let h: Header = serde_bencode::from_bytes(&payload[..end])
            .map_err(|_| MetadataError::Malformed("no msg_type or piece"))?;
        let piece = u32::try_from(h.piece).map_err(|_| MetadataError::Malformed("bad piece"))?;
        let rest = &payload[end..];
        match h.msg_type {
            0 | 2 if !rest.is_empty() => Err(MetadataError::Malformed("bytes after the header")),
            0 => Ok(MetadataMsg::Request(piece)),
            1 => Ok(MetadataMsg::Data {
                piece,
                total_size: h.total_size,
                data: rest,
            }),
            2 => Ok(MetadataMsg::Reject(piece)),
            _ => Err(MetadataError::Malformed("unknown msg_type")),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut d = Dict::new();
        match self {
            MetadataMsg::Request(p) => d.int("msg_type", 0).int("piece", *p as i64).finish(),
            MetadataMsg::Reject(p) => d.int("msg_type", 2).int("piece", *p as i64).finish(),
            MetadataMsg::Data {
                piece,
                total_size,
                data,
            } => {
                d.int("msg_type", 1).int("piece", *piece as i64);
                if let Some(t) = total_size {
                    d.int("total_size", *t);
                }
                let mut out = d.finish();
                out.extend_from_slice(data);
                out
            }
        }
    }
}

/// Piece `piece` of `info` for a peer that asked, or `None` if there is no such piece.
pub fn piece_of(info: &[u8], piece: u32) -> Option<&[u8]> {
    let start = (piece as usize).checked_mul(PIECE)?;
    if start >= info.len() {
        return None;
    }
    Some(&info[start..(start + PIECE).min(info.len())])
}

fn pieces_for(size: usize) -> usize {
    size.div_ceil(PIECE)
}

/// Why a peer's offer of metadata is not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("claims a metadata_size of {0} bytes, more than the limit of {MAX_METADATA}")]
    TooLarge(i64),
    #[error("claims a metadata_size of {0} bytes")]
    Invalid(i64),
}

/// What a `data` message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Stored (or ignored as a repeat); more pieces to come.
    Pending,
    /// The piece does not fit what we asked for: the peer misbehaves.
    Invalid(&'static str),
    /// Every piece arrived and the bytes hash to the info-hash.
    Done(Vec<u8>),
    /// Every piece arrived but the bytes do not hash to the info-hash. The fetch starts over;
    /// `ban` names the peers to ban (a sole contributor, or one with too many strikes).
    HashFailed { ban: Vec<PeerKey> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Missing,
    Asked { peer: PeerKey, at: Instant },
    Got { peer: PeerKey },
}

#[derive(Debug, Clone)]
struct Offer {
    size: usize,
    /// It rejected a request: asked no more.
    refuses: bool,
}

/// Fetching one torrent's `info` dictionary.
#[derive(Debug)]
pub struct MetadataFetch {
    /// What the dictionary must hash to: SHA-1 to the v1 hash, SHA-256 to the v2 hash,
    /// each that is known.
    hashes: InfoHashes,
    offers: HashMap<PeerKey, Offer>,
    /// The size being fetched, once chosen (from the offers).
    size: Option<usize>,
    slots: Vec<Slot>,
    /// Allocated at the first piece, at most `MAX_METADATA` bytes.
    buf: Vec<u8>,
    strikes: HashMap<PeerKey, u32>,
    /// After a failure with several contributors: every piece from this one peer.
    exclusive: Option<PeerKey>,
    exclusive_next: bool,
}

impl MetadataFetch {
    /// Fetching the dictionary of a torrent known by its v1 hash.
    pub fn new(info_hash: InfoHash) -> Self {
        MetadataFetch::of(InfoHashes::v1(info_hash))
    }

    /// Fetching the dictionary of a torrent known by `hashes` (a v2 magnet names its v2
    /// hash, a hybrid's may name both).
    pub fn of(hashes: InfoHashes) -> Self {
        MetadataFetch {
            hashes,
            offers: HashMap::new(),
            size: None,
            slots: Vec::new(),
            buf: Vec::new(),
            strikes: HashMap::new(),
            exclusive: None,
            exclusive_next: false,
        }
    }

    /// A peer's extension handshake named ut_metadata with this `metadata_size`.
    pub fn add_peer(&mut self, key: PeerKey, size: Option<i64>) -> Result<(), Refusal> {
        let Some(size) = size else {
            // It supports the extension but does not have the metadata.
            return Ok(());
        };
        if size <= 0 {
            return Err(Refusal::Invalid(size));
        }
        if size as u64 > MAX_METADATA as u64 {
            return Err(Refusal::TooLarge(size));
        }
        self.offers.insert(
            key,
            Offer {
                size: size as usize,
                refuses: false,
            },
        );
        Ok(())
    }

    pub fn remove_peer(&mut self, key: PeerKey) {
        self.offers.remove(&key);
        for s in &mut self.slots {
            if matches!(*s, Slot::Asked { peer, .. } if peer == key) {
                *s = Slot::Missing;
            }
        }
        if self.exclusive == Some(key) {
            self.exclusive = None;
            self.exclusive_next = true;
        }
    }

    /// Whether any connected peer offers the metadata.
    pub fn has_offers(&self) -> bool {
        self.offers.values().any(|o| !o.refuses)
    }

    /// Bytes of the dictionary received so far, and its size once known.
    pub fn progress(&self) -> (usize, Option<usize>) {
        let got = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| matches!(s, Slot::Got { .. }))
            .map(|(i, _)| self.piece_len(i as u32))
            .sum();
        (got, self.size)
    }

    fn piece_len(&self, piece: u32) -> usize {
        let size = self.size.unwrap_or(0);
        let start = piece as usize * PIECE;
        size.saturating_sub(start).min(PIECE)
    }

    /// Chooses the size to fetch: the one most connected peers claim.
    fn choose_size(&mut self) {
        if self.size.is_some() {
            return;
        }
        let mut votes: HashMap<usize, usize> = HashMap::new();
        for o in self.offers.values().filter(|o| !o.refuses) {
            *votes.entry(o.size).or_default() += 1;
        }
        let Some((&size, _)) = votes
            .iter()
            .max_by_key(|(&s, &n)| (n, std::cmp::Reverse(s)))
        else {
            return;
        };
        self.size = Some(size);
        self.slots = vec![Slot::Missing; pieces_for(size)];
    }

    /// The pieces to request of `key` now (none if it does not offer the size being fetched).
    pub fn requests_for(&mut self, key: PeerKey, now: Instant) -> Vec<u32> {
        self.choose_size();
        let Some(size) = self.size else {
            return Vec::new();
        };
        match self.offers.get(&key) {
            Some(o) if o.size == size && !o.refuses => {}
            _ => return Vec::new(),
        }
        if self.exclusive_next && self.exclusive.is_none() {
            self.exclusive = Some(key);
            self.exclusive_next = false;
        }
        if self.exclusive.is_some_and(|e| e != key) {
            return Vec::new();
        }
        let mut out = Vec::new();
        let asked = self
            .slots
            .iter()
            .filter(|s| matches!(s, Slot::Asked { peer, at } if *peer == key && now.duration_since(*at) < PIECE_TIMEOUT))
            .count();
        for (i, s) in self.slots.iter_mut().enumerate() {
            if asked + out.len() >= PER_PEER {
                break;
            }
            let due = match *s {
                Slot::Missing => true,
                Slot::Asked { peer, at } => peer != key && now.duration_since(at) >= PIECE_TIMEOUT,
                Slot::Got { .. } => false,
            };
            if due {
                *s = Slot::Asked { peer: key, at: now };
                out.push(i as u32);
            }
        }
        out
    }

    /// The peer refused piece `piece`: it is asked no more.
    pub fn on_reject(&mut self, key: PeerKey, piece: u32) {
        if let Some(o) = self.offers.get_mut(&key) {
            o.refuses = true;
        }
        if let Some(s) = self.slots.get_mut(piece as usize) {
            if matches!(*s, Slot::Asked { peer, .. } if peer == key) {
                *s = Slot::Missing;
            }
        }
        if self.exclusive == Some(key) {
            self.exclusive = None;
            self.exclusive_next = true;
        }
    }

    /// A piece arrived from `key`.
    pub fn on_data(
        &mut self,
        key: PeerKey,
        piece: u32,
        total_size: Option<i64>,
        data: &[u8],
    ) -> Progress {
        let Some(size) = self.size else {
            return Progress::Invalid("sent metadata that was not asked for");
        };
        let Some(slot) = self.slots.get(piece as usize).copied() else {
            return Progress::Invalid("sent a metadata piece beyond the end");
        };
        if total_size.is_some_and(|t| t != size as i64) {
            return Progress::Invalid("sent a total_size that differs from its metadata_size");
        }
        if data.len() != self.piece_len(piece) {
            return Progress::Invalid("sent a metadata piece of the wrong length");
        }
        match slot {
            Slot::Got { .. } => return Progress::Pending,
            Slot::Asked { peer, .. } if peer == key => {}
            // Not asked of it (any more): take it anyway if it is still missing.
            Slot::Asked { .. } | Slot::Missing => {
                if self.exclusive.is_some_and(|e| e != key) {
                    return Progress::Pending;
                }
            }
        }
        if self.buf.len() != size {
            self.buf = vec![0; size];
        }
        let start = piece as usize * PIECE;
        self.buf[start..start + data.len()].copy_from_slice(data);
        self.slots[piece as usize] = Slot::Got { peer: key };
        if !self.slots.iter().all(|s| matches!(s, Slot::Got { .. })) {
            return Progress::Pending;
        }
        let v1_ok = self
            .hashes
            .v1
            .is_none_or(|h| Sha1::digest(&self.buf).as_slice() == h.0);
        let v2_ok = self
            .hashes
            .v2
            .is_none_or(|h| crate::merkle::sha256(&self.buf) == h);
        if v1_ok && v2_ok && (self.hashes.v1.is_some() || self.hashes.v2.is_some()) {
            return Progress::Done(std::mem::take(&mut self.buf));
        }
        // A bad dictionary: who sent it?
        let mut senders: Vec<PeerKey> = self
            .slots
            .iter()
            .filter_map(|s| match s {
                Slot::Got { peer } => Some(*peer),
                _ => None,
            })
            .collect();
        senders.sort_unstable();
        senders.dedup();
        let sole = senders.len() == 1;
        let mut ban = Vec::new();
        for k in senders {
            let n = self.strikes.entry(k).or_default();
            *n += 1;
            if sole || *n >= MAX_STRIKES {
                ban.push(k);
                self.offers.remove(&k);
            }
        }
        self.size = None;
        self.slots.clear();
        self.buf = Vec::new();
        self.exclusive = None;
        self.exclusive_next = !sole;
        Progress::HashFailed { ban }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(len: usize) -> (Vec<u8>, InfoHash) {
        let bytes: Vec<u8> = (0..len).map(|i| (i * 13 % 251) as u8).collect();
        let h = InfoHash(Sha1::digest(&bytes).into());
        (bytes, h)
    }

    #[test]
    fn messages_round_trip_and_malformed_ones_are_errors() {
        for m in [
            MetadataMsg::Request(3),
            MetadataMsg::Reject(0),
            MetadataMsg::Data {
                piece: 1,
                total_size: Some(20000),
                data: &[7u8; 3616],
            },
        ] {
            let bytes = m.encode();
            assert_eq!(MetadataMsg::parse(&bytes).unwrap(), m);
        }
        assert_eq!(
            MetadataMsg::Request(2).encode(),
            b"d8:msg_typei0e5:piecei2ee".to_vec()
        );
        for bad in [
            &b"d8:msg_typei0ee"[..],
            b"d8:msg_typei7e5:piecei0ee",
            b"d8:msg_typei0e5:piecei-1ee",
            b"d8:msg_typei0e5:piecei0eexx",
            b"le",
            b"",
            b"d8:msg_type",
        ] {
            assert!(MetadataMsg::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn pieces_are_served_by_index() {
        let (bytes, _) = info(PIECE + 10);
        assert_eq!(piece_of(&bytes, 0).unwrap().len(), PIECE);
        assert_eq!(piece_of(&bytes, 1).unwrap(), &bytes[PIECE..]);
        assert!(piece_of(&bytes, 2).is_none());
        assert!(piece_of(&bytes, u32::MAX).is_none());
    }

    #[test]
    fn a_huge_claim_is_refused_before_anything_is_allocated() {
        let (_, h) = info(10);
        let mut f = MetadataFetch::new(h);
        assert_eq!(
            f.add_peer(1, Some(4 << 30)),
            Err(Refusal::TooLarge(4 << 30))
        );
        assert_eq!(f.add_peer(2, Some(-5)), Err(Refusal::Invalid(-5)));
        assert!(!f.has_offers());
        assert!(f.requests_for(1, Instant::now()).is_empty());
        assert_eq!(f.buf.capacity(), 0);
    }

    #[test]
    fn pieces_come_from_several_peers_and_the_hash_is_checked() {
        let (bytes, h) = info(3 * PIECE + 100);
        let now = Instant::now();
        let mut f = MetadataFetch::new(h);
        f.add_peer(1, Some(bytes.len() as i64)).unwrap();
        f.add_peer(2, Some(bytes.len() as i64)).unwrap();
        let a = f.requests_for(1, now);
        let b = f.requests_for(2, now);
        assert_eq!(a, vec![0, 1, 2]);
        assert_eq!(b, vec![3]);
        let mut last = Progress::Pending;
        for (peer, p) in a.iter().map(|&p| (1, p)).chain(b.iter().map(|&p| (2, p))) {
            let data = piece_of(&bytes, p).unwrap();
            last = f.on_data(peer, p, Some(bytes.len() as i64), data);
        }
        assert_eq!(last, Progress::Done(bytes));
    }

    #[test]
    fn a_sole_liar_is_banned_and_a_liar_among_several_is_caught_by_an_exclusive_retry() {
        let (bytes, h) = info(2 * PIECE);
        let size = Some(bytes.len() as i64);
        let now = Instant::now();
        let junk = vec![0u8; PIECE];
        // Alone: banned at once.
        let mut f = MetadataFetch::new(h);
        f.add_peer(9, size).unwrap();
        assert_eq!(f.requests_for(9, now), vec![0, 1]);
        assert_eq!(f.on_data(9, 0, size, &junk), Progress::Pending);
        assert_eq!(
            f.on_data(9, 1, size, &junk),
            Progress::HashFailed { ban: vec![9] }
        );
        assert!(!f.has_offers());

        // With an honest peer: a strike each, then all from one peer; the liar's second
        // bad dictionary gets it banned, the honest peer's good one completes.
        let mut f = MetadataFetch::new(h);
        f.add_peer(1, size).unwrap();
        f.add_peer(2, size).unwrap();
        // Force one piece each.
        assert_eq!(f.requests_for(1, now), vec![0, 1]);
        f.on_reject(1, 1);
        f.offers.get_mut(&1).unwrap().refuses = false;
        assert_eq!(f.requests_for(2, now), vec![1]);
        assert_eq!(
            f.on_data(1, 0, size, piece_of(&bytes, 0).unwrap()),
            Progress::Pending
        );
        assert_eq!(
            f.on_data(2, 1, size, &junk),
            Progress::HashFailed { ban: vec![] }
        );
        // Exclusive: the first peer asked gets every piece; the other none.
        assert_eq!(f.requests_for(2, now), vec![0, 1]);
        assert!(f.requests_for(1, now).is_empty());
        f.on_data(2, 0, size, &junk);
        assert_eq!(
            f.on_data(2, 1, size, &junk),
            Progress::HashFailed { ban: vec![2] }
        );
        assert_eq!(f.requests_for(1, now), vec![0, 1]);
        f.on_data(1, 0, size, piece_of(&bytes, 0).unwrap());
        assert_eq!(
            f.on_data(1, 1, size, piece_of(&bytes, 1).unwrap()),
            Progress::Done(bytes.clone())
        );
    }

    #[test]
    fn wrong_lengths_and_sizes_are_invalid_and_timeouts_reassign() {
        let (bytes, h) = info(PIECE + 5);
        let size = Some(bytes.len() as i64);
        let now = Instant::now();
        let mut f = MetadataFetch::new(h);
        assert_eq!(
            f.on_data(1, 0, size, &[0; 5]),
            Progress::Invalid("sent metadata that was not asked for")
        );
        f.add_peer(1, size).unwrap();
        f.add_peer(2, size).unwrap();
        assert_eq!(f.requests_for(1, now), vec![0, 1]);
        assert!(f.requests_for(2, now).is_empty());
        assert!(matches!(
            f.on_data(1, 1, size, &[0; 6]),
            Progress::Invalid(_)
        ));
        assert!(matches!(
            f.on_data(1, 1, Some(99), &[0; 5]),
            Progress::Invalid(_)
        ));
        assert!(matches!(
            f.on_data(1, 2, size, &[0; 5]),
            Progress::Invalid(_)
        ));
        // Peer 1 stays silent: after the timeout its pieces go to peer 2.
        assert_eq!(f.requests_for(2, now + PIECE_TIMEOUT), vec![0, 1]);
        f.remove_peer(2);
        assert_eq!(f.requests_for(1, now + PIECE_TIMEOUT), vec![0, 1]);
    }

    #[test]
    fn the_size_most_peers_claim_is_fetched() {
        let (bytes, h) = info(100);
        let now = Instant::now();
        let mut f = MetadataFetch::new(h);
        f.add_peer(1, Some(50)).unwrap();
        f.add_peer(2, Some(100)).unwrap();
        f.add_peer(3, Some(100)).unwrap();
        assert!(f.requests_for(1, now).is_empty());
        assert_eq!(f.requests_for(2, now), vec![0]);
        assert_eq!(
            f.on_data(2, 0, Some(100), &bytes),
            Progress::Done(bytes.clone())
        );
    }
}
