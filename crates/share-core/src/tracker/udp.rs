//! UDP tracker packets (BEP 15), for the client and the server.

use super::{parse_compact_v4, parse_compact_v6, Announce, AnnounceReply, Event, ScrapeCounts};
use crate::InfoHash;

/// The magic constant of a connect request.
pub const PROTOCOL_ID: u64 = 0x417_2710_1980;
const CONNECT: u32 = 0;
const ANNOUNCE: u32 = 1;
const SCRAPE: u32 = 2;
const ERROR: u32 = 3;

/// A packet a client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Connect {
        transaction: u32,
    },
    Announce {
        connection: u64,
        transaction: u32,
        info_hash: InfoHash,
        peer_id: [u8; 20],
        downloaded: u64,
        left: u64,
        uploaded: u64,
        event: Event,
        key: u32,
        num_want: i32,
        port: u16,
    },
    Scrape {
        connection: u64,
        transaction: u32,
        hashes: Vec<InfoHash>,
    },
}

/// A packet a tracker sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Connect {
        transaction: u32,
        connection: u64,
    },
    Announce {
        transaction: u32,
        reply: AnnounceReply,
    },
    Scrape {
        transaction: u32,
        counts: Vec<ScrapeCounts>,
    },
    Error {
        transaction: u32,
        message: String,
    },
}

impl Response {
    pub fn transaction(&self) -> u32 {
        match self {
            Response::Connect { transaction, .. }
            | Response::Announce { transaction, .. }
            | Response::Scrape { transaction, .. }
            | Response::Error { transaction, .. } => *transaction,
        }
    }
}

fn event_code(e: Event) -> u32 {
    match e {
        Event::None => 0,
        Event::Completed => 1,
        Event::Started => 2,
        Event::Stopped => 3,
    }
}

fn event_from(code: u32) -> Option<Event> {
    Some(match code {
        0 => Event::None,
        1 => Event::Completed,
        2 => Event::Started,
        3 => Event::Stopped,
        _ => return None,
    })
}

impl Request {
    /// The announce request for `a` on connection `connection`.
    pub fn announce(connection: u64, transaction: u32, a: &Announce) -> Request {
        Request::Announce {
            connection,
            transaction,
            info_hash: a.info_hash,
            peer_id: a.peer_id,
            downloaded: a.downloaded,
            left: a.left,
            uploaded: a.uploaded,
            event: a.event,
            key: a.key,
            num_want: i32::try_from(a.numwant).unwrap_or(-1),
            port: a.port,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(98);
        match self {
            Request::Connect { transaction } => {
                out.extend_from_slice(&PROTOCOL_ID.to_be_bytes());
                out.extend_from_slice(&CONNECT.to_be_bytes());
                out.extend_from_slice(&transaction.to_be_bytes());
            }
            Request::Announce {
                connection,
                transaction,
                info_hash,
                peer_id,
                downloaded,
                left,
                uploaded,
                event,
                key,
                num_want,
                port,
            } => {
                out.extend_from_slice(&connection.to_be_bytes());
                out.extend_from_slice(&ANNOUNCE.to_be_bytes());
                out.extend_from_slice(&transaction.to_be_bytes());
                out.extend_from_slice(&info_hash.0);
                out.extend_from_slice(peer_id);
                out.extend_from_slice(&downloaded.to_be_bytes());
                out.extend_from_slice(&left.to_be_bytes());
                out.extend_from_slice(&uploaded.to_be_bytes());
                out.extend_from_slice(&event_code(*event).to_be_bytes());
                out.extend_from_slice(&0u32.to_be_bytes()); // IP: the sender's
                out.extend_from_slice(&key.to_be_bytes());
                out.extend_from_slice(&num_want.to_be_bytes());
                out.extend_from_slice(&port.to_be_bytes());
            }
            Request::Scrape {
                connection,
                transaction,
                hashes,
            } => {
                out.extend_from_slice(&connection.to_be_bytes());
                out.extend_from_slice(&SCRAPE.to_be_bytes());
                out.extend_from_slice(&transaction.to_be_bytes());
                for h in hashes.iter().take(74) {
                    out.extend_from_slice(&h.0);
                }
            }
        }
        out
    }

    /// Parses a packet a tracker received; `None` for anything malformed.
    pub fn decode(p: &[u8]) -> Option<Request> {
        let u32_at = |i: usize| Some(u32::from_be_bytes(p.get(i..i + 4)?.try_into().ok()?));
        let u64_at = |i: usize| Some(u64::from_be_bytes(p.get(i..i + 8)?.try_into().ok()?));
        let twenty = |i: usize| -> Option<[u8; 20]> { p.get(i..i + 20)?.try_into().ok() };
        let connection = u64_at(0)?;
        let action = u32_at(8)?;
        let transaction = u32_at(12)?;
        match action {
            CONNECT if connection == PROTOCOL_ID && p.len() >= 16 => {
                Some(Request::Connect { transaction })
            }
            ANNOUNCE if p.len() >= 98 => Some(Request::Announce {
                connection,
                transaction,
                info_hash: InfoHash(twenty(16)?),
                peer_id: twenty(36)?,
                downloaded: u64_at(56)?,
                left: u64_at(64)?,
                uploaded: u64_at(72)?,
                event: event_from(u32_at(80)?)?,
                key: u32_at(88)?,
                num_want: u32_at(92)? as i32,
                port: u16::from_be_bytes(p.get(96..98)?.try_into().ok()?),
            }),
            SCRAPE if p.len() >= 36 => Some(Request::Scrape {
                connection,
                transaction,
                hashes: p[16..]
                    .chunks_exact(20)
                    .take(74)
                    .map(|c| InfoHash(c.try_into().unwrap_or([0; 20])))
                    .collect(),
            }),
            _ => None,
        }
    }
}

impl Response {
    /// Parses a tracker's packet. `v6` says whether the tracker was reached over IPv6, which
    /// decides the size of each compact peer (BEP 15).
    pub fn decode(p: &[u8], v6: bool) -> Option<Response> {
        let u32_at = |i: usize| Some(u32::from_be_bytes(p.get(i..i + 4)?.try_into().ok()?));
        let action = u32_at(0)?;
        let transaction = u32_at(4)?;
        match action {
            CONNECT => Some(Response::Connect {
                transaction,
                connection: u64::from_be_bytes(p.get(8..16)?.try_into().ok()?),
            }),
            ANNOUNCE => {
                let peers_bytes = p.get(20..)?;
                let peers = if v6 {
                    parse_compact_v6(peers_bytes)
                } else {
                    parse_compact_v4(peers_bytes)
                };
                Some(Response::Announce {
                    transaction,
                    reply: AnnounceReply {
                        interval: u32_at(8)?,
                        leechers: Some(u32_at(12)?),
                        seeders: Some(u32_at(16)?),
                        peers,
                        ..Default::default()
                    },
                })
            }
            SCRAPE => Some(Response::Scrape {
                transaction,
                counts: p
                    .get(8..)?
                    .chunks_exact(12)
                    .map(|c| ScrapeCounts {
                        seeders: u32::from_be_bytes([c[0], c[1], c[2], c[3]]),
                        completed: u32::from_be_bytes([c[4], c[5], c[6], c[7]]),
                        leechers: u32::from_be_bytes([c[8], c[9], c[10], c[11]]),
                    })
                    .collect(),
            }),
            ERROR => Some(Response::Error {
                transaction,
                message: String::from_utf8_lossy(p.get(8..)?).into_owned(),
            }),
            _ => None,
        }
    }

    /// Encodes a reply; announce peers of the other address family than `v6` are left out.
    pub fn encode(&self, v6: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let head = |out: &mut Vec<u8>, action: u32, t: u32| {
            out.extend_from_slice(&action.to_be_bytes());
            out.extend_from_slice(&t.to_be_bytes());
        };
        match self {
            Response::Connect {
                transaction,
                connection,
            } => {
                head(&mut out, CONNECT, *transaction);
                out.extend_from_slice(&connection.to_be_bytes());
            }
            Response::Announce { transaction, reply } => {
                head(&mut out, ANNOUNCE, *transaction);
                out.extend_from_slice(&reply.interval.to_be_bytes());
                out.extend_from_slice(&reply.leechers.unwrap_or(0).to_be_bytes());
                out.extend_from_slice(&reply.seeders.unwrap_or(0).to_be_bytes());
                let (v4, v6_bytes) = super::compact(&reply.peers);
                out.extend_from_slice(if v6 { &v6_bytes } else { &v4 });
            }
            Response::Scrape {
                transaction,
                counts,
            } => {
                head(&mut out, SCRAPE, *transaction);
                for c in counts {
                    out.extend_from_slice(&c.seeders.to_be_bytes());
                    out.extend_from_slice(&c.completed.to_be_bytes());
                    out.extend_from_slice(&c.leechers.to_be_bytes());
                }
            }
            Response::Error {
                transaction,
                message,
            } => {
                head(&mut out, ERROR, *transaction);
                out.extend_from_slice(message.as_bytes());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        let a = Announce {
            info_hash: InfoHash([1; 20]),
            peer_id: [2; 20],
            port: 6881,
            uploaded: 3,
            downloaded: 4,
            left: 5,
            event: Event::Completed,
            numwant: 50,
            key: 9,
            tracker_id: None,
        };
        for r in [
            Request::Connect { transaction: 7 },
            Request::announce(0x1122, 8, &a),
            Request::Scrape {
                connection: 5,
                transaction: 9,
                hashes: vec![InfoHash([3; 20]), InfoHash([4; 20])],
            },
        ] {
            let bytes = r.encode();
            assert_eq!(Request::decode(&bytes), Some(r));
        }
        assert_eq!(Request::announce(1, 2, &a).encode().len(), 98);
    }

    #[test]
    fn responses_round_trip_and_garbage_is_none() {
        let reply = AnnounceReply {
            interval: 60,
            seeders: Some(1),
            leechers: Some(2),
            peers: vec!["127.0.0.1:7000".parse().unwrap()],
            ..Default::default()
        };
        for r in [
            Response::Connect {
                transaction: 1,
                connection: 99,
            },
            Response::Announce {
                transaction: 2,
                reply,
            },
            Response::Scrape {
                transaction: 3,
                counts: vec![ScrapeCounts {
                    seeders: 1,
                    completed: 2,
                    leechers: 3,
                }],
            },
            Response::Error {
                transaction: 4,
                message: "nope".into(),
            },
        ] {
            assert_eq!(Response::decode(&r.encode(false), false), Some(r));
        }
        assert_eq!(Response::decode(&[0, 0, 0], false), None);
        assert_eq!(Response::decode(&[0, 0, 0, 9, 0, 0, 0, 1], false), None);
        assert_eq!(Request::decode(&[0; 15]), None);
        let mut bad_magic = Request::Connect { transaction: 1 }.encode();
        bad_magic[0] = 1;
        assert_eq!(Request::decode(&bad_magic), None);
    }
}
