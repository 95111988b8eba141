//! Tracker protocols, sans-IO: what goes over the wire to and from a tracker.
//!
//! - [`http`]: BEP 3 announce and scrape over HTTP, compact (BEP 23) and dictionary peer
//!   lists, `peers6` (BEP 7); both the client's side and the server's.
//! - [`udp`]: BEP 15 packets: connect, announce, scrape, error.
//! - [`registry`]: the state of a tracker: swarms, peers, expiry, bounded memory.
//!
//! Replies from outside pass [`crate::bencode::scan`] with message limits before decoding,
//! and peer lists are capped at [`MAX_PEERS`].

pub mod http;
pub mod registry;
pub mod udp;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Most peers taken from one tracker reply.
pub const MAX_PEERS: usize = 2000;

/// The `event` of an announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    None,
    Started,
    Completed,
    Stopped,
}

impl Event {
    pub fn as_str(self) -> Option<&'static str> {
        match self {
            Event::None => None,
            Event::Started => Some("started"),
            Event::Completed => Some("completed"),
            Event::Stopped => Some("stopped"),
        }
    }

    pub fn from_name(s: &[u8]) -> Option<Event> {
        Some(match s {
            b"" | b"empty" => Event::None,
            b"started" => Event::Started,
            b"completed" => Event::Completed,
            b"stopped" => Event::Stopped,
            _ => return None,
        })
    }
}

/// What a client tells the tracker in an announce.
#[derive(Debug, Clone)]
pub struct Announce {
    pub info_hash: crate::InfoHash,
    pub peer_id: [u8; 20],
    pub port: u16,
    pub uploaded: u64,
    pub downloaded: u64,
    pub left: u64,
    pub event: Event,
    pub numwant: u32,
    pub key: u32,
    pub tracker_id: Option<String>,
}

/// What a tracker answers to an announce.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnnounceReply {
    pub interval: u32,
    pub min_interval: Option<u32>,
    pub tracker_id: Option<String>,
    pub seeders: Option<u32>,
    pub leechers: Option<u32>,
    pub peers: Vec<SocketAddr>,
    pub warning: Option<String>,
}

/// Counts for one torrent in a scrape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScrapeCounts {
    pub seeders: u32,
    pub completed: u32,
    pub leechers: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrackerError {
    #[error("tracker says: {0}")]
    Failure(String),
    #[error("malformed tracker reply: {0}")]
    Malformed(String),
}

/// IPv4 peers in compact form: 4 address bytes and 2 port bytes each.
pub fn parse_compact_v4(bytes: &[u8]) -> Vec<SocketAddr> {
    bytes
        .chunks_exact(6)
        .take(MAX_PEERS)
        .map(|c| {
            let ip = Ipv4Addr::new(c[0], c[1], c[2], c[3]);
            SocketAddr::new(IpAddr::V4(ip), u16::from_be_bytes([c[4], c[5]]))
        })
        .filter(|a| a.port() != 0)
        .collect()
}

/// IPv6 peers in compact form: 16 address bytes and 2 port bytes each.
pub fn parse_compact_v6(bytes: &[u8]) -> Vec<SocketAddr> {
    bytes
        .chunks_exact(18)
        .take(MAX_PEERS)
        .map(|c| {
            let mut a = [0u8; 16];
            a.copy_from_slice(&c[..16]);
            SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from(a)),
                u16::from_be_bytes([c[16], c[17]]),
            )
        })
        .filter(|a| a.port() != 0)
        .collect()
}

/// Compact form of peers: IPv4 ones into the first list, IPv6 ones into the second.
pub fn compact(peers: &[SocketAddr]) -> (Vec<u8>, Vec<u8>) {
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for p in peers {
        match p.ip() {
            IpAddr::V4(ip) => {
                v4.extend_from_slice(&ip.octets());
                v4.extend_from_slice(&p.port().to_be_bytes());
            }
            IpAddr::V6(ip) => {
                v6.extend_from_slice(&ip.octets());
                v6.extend_from_slice(&p.port().to_be_bytes());
            }
        }
    }
    (v4, v6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_peers_round_trip_and_skip_port_zero() {
        let peers: Vec<SocketAddr> = vec![
            "127.0.0.1:6881".parse().unwrap(),
            "[::1]:7000".parse().unwrap(),
            "10.0.0.2:51413".parse().unwrap(),
        ];
        let (v4, v6) = compact(&peers);
        assert_eq!(parse_compact_v4(&v4), vec![peers[0], peers[2]]);
        assert_eq!(parse_compact_v6(&v6), vec![peers[1]]);
        assert!(parse_compact_v4(&[1, 2, 3, 4, 0, 0, 9]).is_empty());
    }
}
