//! Peer exchange (BEP 11, `ut_pex`): the message codec, what we tell each connection, and
//! the limits on what we accept from it.
//!
//! We tell a peer, about once a minute, which peers we are connected to (added since the
//! last message) and which we lost (dropped), at most [`MAX_PER_MESSAGE`] of each, with
//! their flags. What a peer tells us is an untrusted hint: [`Inbox`] takes at most one
//! message per [`MIN_INTERVAL`] from a connection and at most [`MAX_LEARNED`] addresses over
//! its life, and the codec reads at most [`MAX_PER_MESSAGE`] × 2 entries from a message
//! whatever its size.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_bytes::ByteBuf;

use crate::bencode::{self, Limits};
use crate::tracker::{compact, parse_compact_v4, parse_compact_v6};
use crate::write::Dict;

/// BEP 11: at most 50 added and 50 dropped peers per message.
pub const MAX_PER_MESSAGE: usize = 50;
/// A connection may send one message this often; more are ignored.
pub const MIN_INTERVAL: Duration = Duration::from_secs(30);
/// Addresses taken from one connection over its whole life.
pub const MAX_LEARNED: usize = 300;
/// Largest message read.
const MAX_MESSAGE: usize = 16 << 10;

/// The flags of an added peer.
pub mod flags {
    pub const ENCRYPTION: u8 = 0x01;
    pub const SEED: u8 = 0x02;
    pub const UTP: u8 = 0x04;
    pub const HOLEPUNCH: u8 = 0x08;
    /// We reached it by dialing, so it accepts connections.
    pub const REACHABLE: u8 = 0x10;
}

/// One ut_pex message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PexMessage {
    pub added: Vec<(SocketAddr, u8)>,
    pub dropped: Vec<SocketAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PexError {
    #[error("malformed ut_pex message: {0}")]
    Bencode(#[from] bencode::BencodeError),
    #[error("ut_pex message larger than {MAX_MESSAGE} bytes")]
    TooLarge,
    #[error("malformed ut_pex message")]
    Malformed,
}

#[derive(Deserialize, Default)]
struct Raw {
    added: Option<ByteBuf>,
    #[serde(rename = "added.f")]
    added_f: Option<ByteBuf>,
    added6: Option<ByteBuf>,
    #[serde(rename = "added6.f")]
    added6_f: Option<ByteBuf>,
    dropped: Option<ByteBuf>,
    dropped6: Option<ByteBuf>,
}

impl PexMessage {
    pub fn parse(payload: &[u8]) -> Result<PexMessage, PexError> {
        if payload.len() > MAX_MESSAGE {
            return Err(PexError::TooLarge);
        }
        let scan = bencode::scan(payload, Limits::MESSAGE)?;
        if !scan.is_dict {
            return Err(PexError::Malformed);
        }
        let raw: Raw = serde_bencode::from_bytes(payload).map_err(|_| PexError::Malformed)?;
        let bytes = |b: &Option<ByteBuf>| b.as_ref().map(|b| b.to_vec()).unwrap_or_default();
        let mut added = Vec::new();
        for (addrs, fl) in [
            (parse_compact_v4(&bytes(&raw.added)), bytes(&raw.added_f)),
            (parse_compact_v6(&bytes(&raw.added6)), bytes(&raw.added6_f)),
        ] {
            for (i, a) in addrs.into_iter().take(MAX_PER_MESSAGE * 2).enumerate() {
                added.push((a, fl.get(i).copied().unwrap_or(0)));
            }
        }
        let mut dropped = parse_compact_v4(&bytes(&raw.dropped));
        dropped.truncate(MAX_PER_MESSAGE * 2);
        let mut d6 = parse_compact_v6(&bytes(&raw.dropped6));
        d6.truncate(MAX_PER_MESSAGE * 2);
        dropped.extend(d6);
        Ok(PexMessage { added, dropped })
    }

    pub fn encode(&self) -> Vec<u8> {
        let (v4, v6): (Vec<_>, Vec<_>) = self.added.iter().partition(|(a, _)| a.is_ipv4());
        let addrs = |l: &[&(SocketAddr, u8)]| l.iter().map(|(a, _)| *a).collect::<Vec<_>>();
        let fl = |l: &[&(SocketAddr, u8)]| l.iter().map(|(_, f)| *f).collect::<Vec<_>>();
        let (a4, _) = compact(&addrs(&v4));
        let (_, a6) = compact(&addrs(&v6));
        let (d4, d6) = compact(&self.dropped);
        let mut d = Dict::new();
        d.bytes("added", &a4).bytes("added.f", &fl(&v4));
        d.bytes("added6", &a6).bytes("added6.f", &fl(&v6));
        d.bytes("dropped", &d4).bytes("dropped6", &d6);
        d.finish()
    }
}

/// What we have told one connection so far.
#[derive(Debug, Default)]
pub struct Outbox {
    told: HashSet<SocketAddr>,
}

impl Outbox {
    /// The next message for this connection, given the peers we are connected to now (the
    /// remote itself left out by the caller); `None` when nothing changed.
    pub fn next(&mut self, connected: &[(SocketAddr, u8)]) -> Option<PexMessage> {
        let now: HashSet<SocketAddr> = connected.iter().map(|(a, _)| *a).collect();
        let added: Vec<(SocketAddr, u8)> = connected
            .iter()
            .filter(|(a, _)| !self.told.contains(a) && usable(a))
            .take(MAX_PER_MESSAGE)
            .copied()
            .collect();
        let dropped: Vec<SocketAddr> = self
            .told
            .iter()
            .filter(|a| !now.contains(a))
            .take(MAX_PER_MESSAGE)
            .copied()
            .collect();
        if added.is_empty() && dropped.is_empty() {
            return None;
        }
        for (a, _) in &added {
            self.told.insert(*a);
        }
        for a in &dropped {
            self.told.remove(a);
        }
        Some(PexMessage { added, dropped })
    }
}

/// Addresses worth passing on: a real port and an address one can dial.
fn usable(a: &SocketAddr) -> bool {
    a.port() != 0
        && match a.ip() {
            IpAddr::V4(ip) => !ip.is_unspecified() && !ip.is_broadcast() && !ip.is_multicast(),
            IpAddr::V6(ip) => !ip.is_unspecified() && !ip.is_multicast(),
        }
}

/// The limits on what one connection tells us.
#[derive(Debug, Default)]
pub struct Inbox {
    last: Option<Instant>,
    learned: usize,
    /// Messages ignored for coming too soon.
    pub ignored: u32,
}

impl Inbox {
    /// Takes a message that arrived at `now`: the addresses to consider dialing, within the
    /// connection's limits (none if it came too soon after the last).
    pub fn accept(&mut self, msg: PexMessage, now: Instant) -> Vec<(SocketAddr, u8)> {
        if self
            .last
            .is_some_and(|l| now.duration_since(l) < MIN_INTERVAL)
        {
            self.ignored += 1;
            return Vec::new();
        }
        self.last = Some(now);
        let room = MAX_LEARNED - self.learned;
        let out: Vec<_> = msg
            .added
            .into_iter()
            .filter(|(a, _)| usable(a))
            .take(room.min(MAX_PER_MESSAGE * 2))
            .collect();
        self.learned += out.len();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn messages_round_trip_with_flags_and_both_families() {
        let m = PexMessage {
            added: vec![
                (a("10.0.0.1:6881"), flags::SEED | flags::REACHABLE),
                (a("[2001:db8::1]:7000"), flags::UTP),
                (a("10.0.0.2:6882"), 0),
            ],
            dropped: vec![a("10.0.0.9:1"), a("[::2]:2")],
        };
        let back = PexMessage::parse(&m.encode()).unwrap();
        assert_eq!(
            back.added,
            vec![
                (a("10.0.0.1:6881"), 0x12),
                (a("10.0.0.2:6882"), 0),
                (a("[2001:db8::1]:7000"), 0x04)
            ]
        );
        assert_eq!(back.dropped, m.dropped);
        // Flags may be missing; garbage is an error.
        let bare = PexMessage::parse(b"d5:added6:\x0a\x00\x00\x01\x1a\xe1e").unwrap();
        assert_eq!(bare.added, vec![(a("10.0.0.1:6881"), 0)]);
        assert!(PexMessage::parse(b"d5:added").is_err());
        assert!(PexMessage::parse(b"i5e").is_err());
        assert!(PexMessage::parse(&vec![b'x'; MAX_MESSAGE + 1]).is_err());
    }

    #[test]
    fn a_huge_message_yields_a_bounded_number_of_entries() {
        let many: Vec<SocketAddr> = (0..2000u32)
            .map(|i| SocketAddr::new(IpAddr::V4((0x0a00_0000 + i + 1).into()), 1000))
            .collect();
        let (v4, _) = compact(&many);
        let mut d = Dict::new();
        d.bytes("added", &v4);
        let m = PexMessage::parse(&d.finish()).unwrap();
        assert_eq!(m.added.len(), MAX_PER_MESSAGE * 2);
    }

    #[test]
    fn the_outbox_sends_changes_only_fifty_at_a_time() {
        let mut out = Outbox::default();
        let peers: Vec<(SocketAddr, u8)> = (1..=60u32)
            .map(|i| {
                (
                    SocketAddr::new(IpAddr::V4((0x0a00_0000 + i).into()), 6881),
                    0,
                )
            })
            .collect();
        let first = out.next(&peers).unwrap();
        assert_eq!(first.added.len(), 50);
        let second = out.next(&peers).unwrap();
        assert_eq!(second.added.len(), 10);
        assert!(out.next(&peers).is_none());
        let fewer = &peers[5..];
        let third = out.next(fewer).unwrap();
        assert!(third.added.is_empty());
        assert_eq!(third.dropped.len(), 5);
        assert!(out
            .next(&[(a("0.0.0.0:5"), 0), (a("10.1.1.1:0"), 0)])
            .unwrap()
            .added
            .is_empty());
    }

    #[test]
    fn the_inbox_takes_one_message_per_interval_and_a_bounded_total() {
        let t0 = Instant::now();
        let mut inbox = Inbox::default();
        let msg = |base: u32| PexMessage {
            added: (0..100u32)
                .map(|i| (SocketAddr::new(IpAddr::V4((base + i).into()), 9), 0))
                .collect(),
            dropped: vec![],
        };
        assert_eq!(inbox.accept(msg(0x0a00_0001), t0).len(), 100);
        assert!(inbox
            .accept(msg(0x0b00_0001), t0 + Duration::from_secs(1))
            .is_empty());
        assert_eq!(inbox.ignored, 1);
        let mut total = 100;
        for n in 1..10 {
            total += inbox
                .accept(msg(0x0c00_0000 + n * 1000), t0 + MIN_INTERVAL * n)
                .len();
        }
        assert_eq!(total, MAX_LEARNED);
    }
}
