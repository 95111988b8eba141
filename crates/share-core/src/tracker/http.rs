//! HTTP tracker messages (BEP 3, 23, 7): announce URLs, replies, scrape, and the server's
//! parsing of a raw query string.

use std::collections::HashMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use serde_bencode::value::Value;
use serde_bytes::ByteBuf;

use super::{
    compact, parse_compact_v4, parse_compact_v6, Announce, AnnounceReply, Event, ScrapeCounts,
    TrackerError, MAX_PEERS,
};
use crate::bencode::{self, Limits};
use crate::{percent, InfoHash};

/// The announce URL for `a` on tracker `base` (which may already hold a query).
pub fn announce_url(base: &str, a: &Announce) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    let mut url = format!(
        "{base}{sep}info_hash={}&peer_id={}&port={}&uploaded={}&downloaded={}&left={}\
         &compact=1&numwant={}&key={:08x}",
        percent(a.info_hash.0),
        percent(a.peer_id),
        a.port,
        a.uploaded,
        a.downloaded,
        a.left,
        a.numwant,
        a.key
    );
    if let Some(e) = a.event.as_str() {
        url.push_str("&event=");
        url.push_str(e);
    }
    if let Some(id) = &a.tracker_id {
        url.push_str("&trackerid=");
        url.push_str(&percent(id));
    }
    url
}

/// The scrape URL of an announce URL, when it has one (the last path part starts with
/// `announce`).
pub fn scrape_url(announce: &str) -> Option<String> {
    let (path, query) = match announce.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (announce, None),
    };
    let slash = path.rfind('/')?;
    let last = &path[slash + 1..];
    let rest = last.strip_prefix("announce")?;
    let mut url = format!("{}/scrape{rest}", &path[..slash]);
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    Some(url)
}

#[derive(Deserialize)]
struct RawReply {
    #[serde(rename = "failure reason")]
    failure: Option<ByteBuf>,
    #[serde(rename = "warning message")]
    warning: Option<ByteBuf>,
    interval: Option<i64>,
    #[serde(rename = "min interval")]
    min_interval: Option<i64>,
    #[serde(rename = "tracker id")]
    tracker_id: Option<ByteBuf>,
    complete: Option<i64>,
    incomplete: Option<i64>,
    peers: Option<Value>,
    peers6: Option<ByteBuf>,
}

fn text(b: &ByteBuf) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn count(v: Option<i64>) -> Option<u32> {
    v.and_then(|n| u32::try_from(n).ok())
}

/// Parses an announce reply body.
pub fn parse_announce_reply(body: &[u8]) -> Result<AnnounceReply, TrackerError> {
    bencode::scan(body, Limits::MESSAGE).map_err(|e| TrackerError::Malformed(e.to_string()))?;
    let raw: RawReply =
        serde_bencode::from_bytes(body).map_err(|e| TrackerError::Malformed(e.to_string()))?;
    if let Some(f) = raw.failure {
        return Err(TrackerError::Failure(text(&f)));
    }
    let interval =
        count(raw.interval).ok_or_else(|| TrackerError::Malformed("no valid `interval`".into()))?;
    let mut peers = match raw.peers {
        Some(Value::Bytes(b)) => parse_compact_v4(&b),
        Some(Value::List(list)) => list.iter().filter_map(dict_peer).take(MAX_PEERS).collect(),
        _ => Vec::new(),
    };
    if let Some(b) = raw.peers6 {
        peers.extend(parse_compact_v6(&b));
    }
    peers.truncate(MAX_PEERS);
    Ok(AnnounceReply {
        interval,
        min_interval: count(raw.min_interval),
        tracker_id: raw.tracker_id.as_ref().map(text),
        seeders: count(raw.complete),
        leechers: count(raw.incomplete),
        peers,
        warning: raw.warning.as_ref().map(text),
    })
}

/// A peer in the dictionary form: `{ip, port, peer id}`.
fn dict_peer(v: &Value) -> Option<SocketAddr> {
    let Value::Dict(d) = v else { return None };
    let ip = match d.get(&b"ip"[..])? {
        Value::Bytes(b) => std::str::from_utf8(b).ok()?.parse().ok()?,
        _ => return None,
    };
    let port = match d.get(&b"port"[..])? {
        Value::Int(p) => u16::try_from(*p).ok().filter(|&p| p != 0)?,
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Parses a scrape reply: counts per info-hash.
pub fn parse_scrape_reply(body: &[u8]) -> Result<HashMap<InfoHash, ScrapeCounts>, TrackerError> {
    bencode::scan(body, Limits::MESSAGE).map_err(|e| TrackerError::Malformed(e.to_string()))?;
    let v: Value =
        serde_bencode::from_bytes(body).map_err(|e| TrackerError::Malformed(e.to_string()))?;
    let Value::Dict(top) = v else {
        return Err(TrackerError::Malformed("not a dictionary".into()));
    };
    if let Some(Value::Bytes(f)) = top.get(&b"failure reason"[..]) {
        return Err(TrackerError::Failure(
            String::from_utf8_lossy(f).into_owned(),
        ));
    }
    let Some(Value::Dict(files)) = top.get(&b"files"[..]) else {
        return Err(TrackerError::Malformed("no `files`".into()));
    };
    let get = |d: &HashMap<Vec<u8>, Value>, k: &[u8]| match d.get(k) {
        Some(Value::Int(n)) => u32::try_from(*n).unwrap_or(0),
        _ => 0,
    };
    Ok(files
        .iter()
        .filter_map(|(k, v)| {
            let hash: [u8; 20] = k.as_slice().try_into().ok()?;
            let Value::Dict(d) = v else { return None };
            Some((
                InfoHash(hash),
                ScrapeCounts {
                    seeders: get(d, b"complete"),
                    completed: get(d, b"downloaded"),
                    leechers: get(d, b"incomplete"),
                },
            ))
        })
        .collect())
}

// ---- The server's side ----

/// An announce as a tracker reads it from a query string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceQuery {
    pub info_hash: InfoHash,
    pub peer_id: [u8; 20],
    pub port: u16,
    pub uploaded: u64,
    pub downloaded: u64,
    pub left: u64,
    pub event: Event,
    pub numwant: Option<u32>,
    pub compact: bool,
}

/// Splits a raw query string into percent-decoded byte pairs.
pub fn query_pairs(query: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .take(64)
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> Vec<u8> {
    // '+' stays '+': tracker queries carry raw bytes, not form text.
    percent_encoding::percent_decode_str(s).collect()
}

fn field<'a>(pairs: &'a [(Vec<u8>, Vec<u8>)], key: &str) -> Option<&'a [u8]> {
    pairs
        .iter()
        .find(|(k, _)| k == key.as_bytes())
        .map(|(_, v)| v.as_slice())
}

fn number<T: std::str::FromStr>(
    pairs: &[(Vec<u8>, Vec<u8>)],
    key: &str,
) -> Result<Option<T>, String> {
    match field(pairs, key) {
        None => Ok(None),
        Some(v) => std::str::from_utf8(v)
            .ok()
            .and_then(|s| s.parse().ok())
            .map(Some)
            .ok_or_else(|| format!("invalid `{key}`")),
    }
}

/// Reads an announce from its query string; the error is a `failure reason`.
pub fn parse_announce_query(query: &str) -> Result<AnnounceQuery, String> {
    let pairs = query_pairs(query);
    let twenty = |key: &str| -> Result<[u8; 20], String> {
        field(&pairs, key)
            .ok_or_else(|| format!("missing `{key}`"))?
            .try_into()
            .map_err(|_| format!("`{key}` must be 20 bytes"))
    };
    Ok(AnnounceQuery {
        info_hash: InfoHash(twenty("info_hash")?),
        peer_id: twenty("peer_id")?,
        port: number(&pairs, "port")?
            .filter(|&p: &u16| p != 0)
            .ok_or("missing or invalid `port`")?,
        uploaded: number(&pairs, "uploaded")?.unwrap_or(0),
        downloaded: number(&pairs, "downloaded")?.unwrap_or(0),
        left: number(&pairs, "left")?.unwrap_or(0),
        event: Event::from_name(field(&pairs, "event").unwrap_or(b"")).ok_or("invalid `event`")?,
        numwant: number(&pairs, "numwant")?,
        compact: field(&pairs, "compact") != Some(b"0"),
    })
}

/// The info-hashes asked for in a scrape query.
pub fn parse_scrape_query(query: &str) -> Vec<InfoHash> {
    query_pairs(query)
        .into_iter()
        .filter(|(k, _)| k == b"info_hash")
        .filter_map(|(_, v)| v.as_slice().try_into().ok().map(InfoHash))
        .take(64)
        .collect()
}

#[derive(Serialize)]
struct OutReply {
    complete: u32,
    incomplete: u32,
    interval: u32,
    #[serde(rename = "min interval")]
    min_interval: u32,
    peers: ByteBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    peers6: Option<ByteBuf>,
}

#[derive(Serialize)]
struct OutDictPeer {
    ip: String,
    port: u16,
}

#[derive(Serialize)]
struct OutDictReply {
    complete: u32,
    incomplete: u32,
    interval: u32,
    #[serde(rename = "min interval")]
    min_interval: u32,
    peers: Vec<OutDictPeer>,
}

/// A bencoded announce reply, compact (BEP 23, with `peers6`) or in dictionary form.
pub fn encode_announce_reply(r: &AnnounceReply, compact_form: bool) -> Vec<u8> {
    let seeders = r.seeders.unwrap_or(0);
    let leechers = r.leechers.unwrap_or(0);
    let min_interval = r.min_interval.unwrap_or(r.interval / 2);
    let out = if compact_form {
        let (v4, v6) = compact(&r.peers);
        serde_bencode::to_bytes(&OutReply {
            complete: seeders,
            incomplete: leechers,
            interval: r.interval,
            min_interval,
            peers: ByteBuf::from(v4),
            peers6: (!v6.is_empty()).then(|| ByteBuf::from(v6)),
        })
    } else {
        serde_bencode::to_bytes(&OutDictReply {
            complete: seeders,
            incomplete: leechers,
            interval: r.interval,
            min_interval,
            peers: r
                .peers
                .iter()
                .map(|p| OutDictPeer {
                    ip: p.ip().to_string(),
                    port: p.port(),
                })
                .collect(),
        })
    };
    out.unwrap_or_else(|_| encode_failure("internal error"))
}

/// A bencoded `failure reason` reply.
pub fn encode_failure(reason: &str) -> Vec<u8> {
    format!("d14:failure reason{}:{}e", reason.len(), reason).into_bytes()
}

/// A bencoded scrape reply.
pub fn encode_scrape_reply(counts: &[(InfoHash, ScrapeCounts)]) -> Vec<u8> {
    let mut out = b"d5:filesd".to_vec();
    let mut sorted: Vec<_> = counts.to_vec();
    sorted.sort_by_key(|(h, _)| h.0);
    sorted.dedup_by_key(|(h, _)| h.0);
    for (h, c) in sorted {
        out.extend_from_slice(b"20:");
        out.extend_from_slice(&h.0);
        out.extend_from_slice(
            format!(
                "d8:completei{}e10:downloadedi{}e10:incompletei{}ee",
                c.seeders, c.completed, c.leechers
            )
            .as_bytes(),
        );
    }
    out.extend_from_slice(b"ee");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn announce() -> Announce {
        Announce {
            info_hash: InfoHash([0xab; 20]),
            peer_id: *b"-SH0100-abcdefghijkl",
            port: 6881,
            uploaded: 1,
            downloaded: 2,
            left: 3,
            event: Event::Started,
            numwant: 50,
            key: 0xdead,
            tracker_id: None,
        }
    }

    #[test]
    fn announce_url_percent_encodes_raw_bytes_and_round_trips_through_the_server_parser() {
        let url = announce_url("http://t:1/announce", &announce());
        assert!(url.starts_with("http://t:1/announce?info_hash=%AB%AB"));
        assert!(url.contains("&event=started") && url.contains("&compact=1"));
        let q = parse_announce_query(url.split_once('?').unwrap().1).unwrap();
        assert_eq!(q.info_hash, InfoHash([0xab; 20]));
        assert_eq!(q.peer_id, *b"-SH0100-abcdefghijkl");
        assert_eq!((q.port, q.uploaded, q.downloaded, q.left), (6881, 1, 2, 3));
        assert_eq!(q.event, Event::Started);
        assert!(q.compact);
        let with_query = announce_url("http://t/a?passkey=x", &announce());
        assert!(with_query.starts_with("http://t/a?passkey=x&info_hash="));
    }

    #[test]
    fn scrape_urls_follow_the_convention() {
        assert_eq!(
            scrape_url("http://t/announce").as_deref(),
            Some("http://t/scrape")
        );
        assert_eq!(
            scrape_url("http://t/x/announce.php?k=1").as_deref(),
            Some("http://t/x/scrape.php?k=1")
        );
        assert_eq!(scrape_url("http://t/a"), None);
    }

    #[test]
    fn replies_compact_dict_and_v6_parse() {
        let r = AnnounceReply {
            interval: 1800,
            seeders: Some(2),
            leechers: Some(5),
            peers: vec!["1.2.3.4:5".parse().unwrap(), "[::1]:9".parse().unwrap()],
            ..Default::default()
        };
        let back = parse_announce_reply(&encode_announce_reply(&r, true)).unwrap();
        assert_eq!(back.peers, r.peers);
        assert_eq!(
            (back.interval, back.seeders, back.leechers),
            (1800, Some(2), Some(5))
        );
        assert_eq!(back.min_interval, Some(900));
        let back = parse_announce_reply(&encode_announce_reply(&r, false)).unwrap();
        assert_eq!(back.peers, r.peers);
        let body = b"d8:intervali60e5:peersld2:ip9:127.0.0.17:peer id20:aaaaaaaaaaaaaaaaaaaa4:porti7000eee15:warning message4:slowe";
        let r = parse_announce_reply(body).unwrap();
        assert_eq!(r.peers, vec!["127.0.0.1:7000".parse().unwrap()]);
        assert_eq!(r.warning.as_deref(), Some("slow"));
    }

    #[test]
    fn failures_and_garbage_are_errors() {
        assert_eq!(
            parse_announce_reply(&encode_failure("not registered")),
            Err(TrackerError::Failure("not registered".into()))
        );
        for body in [&b"<html>502</html>"[..], b"d8:intervali-5ee", b"de", b""] {
            assert!(
                matches!(parse_announce_reply(body), Err(TrackerError::Malformed(_))),
                "{body:?}"
            );
        }
    }

    #[test]
    fn bad_announce_queries_give_a_reason() {
        assert!(parse_announce_query("info_hash=abc&peer_id=x&port=1").is_err());
        let ok = "info_hash=%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB\
                  &peer_id=-SH0100-abcdefghijkl";
        assert_eq!(
            parse_announce_query(ok).unwrap_err(),
            "missing or invalid `port`"
        );
        assert!(parse_announce_query(&format!("{ok}&port=70000")).is_err());
        assert!(parse_announce_query(&format!("{ok}&port=1&event=bogus")).is_err());
        assert!(parse_announce_query(&format!("{ok}&port=1&left=-1")).is_err());
    }

    #[test]
    fn scrape_round_trips() {
        let c = ScrapeCounts {
            seeders: 1,
            completed: 2,
            leechers: 3,
        };
        let body = encode_scrape_reply(&[(InfoHash([7; 20]), c)]);
        let back = parse_scrape_reply(&body).unwrap();
        assert_eq!(back[&InfoHash([7; 20])], c);
        let q = "info_hash=%07%07%07%07%07%07%07%07%07%07%07%07%07%07%07%07%07%07%07%07";
        assert_eq!(parse_scrape_query(q), vec![InfoHash([7; 20])]);
    }
}
