//! KRPC (BEP 5): the bencoded messages DHT nodes exchange over UDP, decoded strictly.
//!
//! A datagram passes [`crate::bencode::scan`] under [`LIMITS`] (at most [`MAX_PACKET`] bytes,
//! nesting 4 deep, 1024 values) before a tree is built; then every field the node uses is
//! checked for type and length. Unknown keys are ignored (extensions add them), unknown
//! query methods decode as [`Method::Other`] so that the node can answer error 204.
//! Bounds on what one message can carry:
//! - transaction id: at most [`MAX_TID`] bytes; token: at most [`MAX_TOKEN`] bytes;
//! - `nodes` / `nodes6`: at most [`MAX_NODES`] entries each are kept;
//! - `values`: at most [`MAX_VALUES`] peers are kept;
//! - error text: at most [`MAX_ERROR_TEXT`] bytes are kept.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::id::NodeId;
use super::value::{self, Value, Writer};
use crate::bencode::{BencodeError, Limits};

/// The largest datagram decoded. Real KRPC messages fit in one Ethernet frame.
pub const MAX_PACKET: usize = 4096;
/// Scan limits for a KRPC datagram.
pub const LIMITS: Limits = Limits {
    max_depth: 4,
    max_tokens: 1024,
    max_len: MAX_PACKET,
};
pub const MAX_TID: usize = 16;
pub const MAX_TOKEN: usize = 64;
pub const MAX_NODES: usize = 16;
pub const MAX_VALUES: usize = 200;
pub const MAX_ERROR_TEXT: usize = 128;
const MAX_METHOD: usize = 32;

/// Our client version (`v`), two letters and two bytes of version.
pub const VERSION: &[u8] = b"SH\x00\x01";

/// KRPC error codes (BEP 5).
pub mod code {
    pub const GENERIC: i64 = 201;
    pub const SERVER: i64 = 202;
    pub const PROTOCOL: i64 = 203;
    pub const METHOD_UNKNOWN: i64 = 204;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The transaction id, echoed in the reply.
    pub tid: Vec<u8>,
    pub kind: Kind,
    /// BEP 42: the address the sender saw us at (in replies).
    pub ip: Option<SocketAddr>,
    /// BEP 43: the sender does not answer queries; keep it out of routing tables.
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Query(Query),
    Response(Response),
    Error(ErrorReply),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The querier's id.
    pub id: NodeId,
    pub method: Method,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    Ping,
    FindNode {
        target: NodeId,
        want: Want,
    },
    GetPeers {
        info_hash: NodeId,
        want: Want,
    },
    AnnouncePeer {
        info_hash: NodeId,
        port: u16,
        /// Use the UDP source port instead of `port`.
        implied_port: bool,
        token: Vec<u8>,
    },
    /// A method we do not implement (answered with error 204).
    Other(Vec<u8>),
}

/// BEP 32's `want`: which address families of nodes the querier asks for.
/// Neither set means the querier did not say (the reply's family is the querier's own).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Want {
    pub v4: bool,
    pub v6: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub id: NodeId,
    pub addr: SocketAddr,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Response {
    pub id: Option<NodeId>,
    pub nodes: Vec<NodeInfo>,
    pub nodes6: Vec<NodeInfo>,
    pub values: Vec<SocketAddr>,
    pub token: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorReply {
    pub code: i64,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KrpcError {
    #[error("not bencode: {0}")]
    Bencode(#[from] BencodeError),
    #[error("not a dictionary")]
    NotADict,
    #[error("missing or malformed {0}")]
    Bad(&'static str),
    /// A query whose transaction id could be read but whose arguments are wrong: it deserves
    /// error 203 rather than silence.
    #[error("malformed query arguments: {reason}")]
    BadQuery { tid: Vec<u8>, reason: &'static str },
}

impl Message {
    /// Decodes one datagram.
    pub fn decode(bytes: &[u8]) -> Result<Message, KrpcError> {
        let root = value::parse(bytes, LIMITS)?;
        if !matches!(root, Value::Dict(_)) {
            return Err(KrpcError::NotADict);
        }
        let tid = root
            .get(b"t")
            .and_then(Value::bytes)
            .ok_or(KrpcError::Bad("t"))?;
        if tid.len() > MAX_TID {
            return Err(KrpcError::Bad("t"));
        }
        let tid = tid.to_vec();
        let ip = root
            .get(b"ip")
            .and_then(Value::bytes)
            .and_then(compact_addr);
        let read_only = root.get(b"ro").and_then(Value::int) == Some(1);
        let y = root
            .get(b"y")
            .and_then(Value::bytes)
            .ok_or(KrpcError::Bad("y"))?;
        let kind = match y {
            b"q" => Kind::Query(decode_query(&root).map_err(|reason| KrpcError::BadQuery {
                tid: tid.clone(),
                reason,
            })?),
            b"r" => Kind::Response(decode_response(root.get(b"r").ok_or(KrpcError::Bad("r"))?)?),
            b"e" => Kind::Error(decode_error(root.get(b"e"))?),
            _ => return Err(KrpcError::Bad("y")),
        };
        Ok(Message {
            tid,
            kind,
            ip,
            read_only,
        })
    }

    /// Encodes the message (keys in sorted order, as bencode requires).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.open_dict();
        let mut method: Option<&[u8]> = None;
        match &self.kind {
            Kind::Query(q) => {
                w.bytes(b"a");
                method = Some(encode_args(&mut w, q));
            }
            Kind::Error(e) => {
                let text = &e.message.as_bytes()[..e.message.len().min(MAX_ERROR_TEXT)];
                w.bytes(b"e").open_list().int(e.code).bytes(text).close();
            }
            Kind::Response(_) => {}
        }
        if let Some(ip) = self.ip {
            w.kb(b"ip", &compact(ip));
        }
        if let Some(name) = method {
            w.kb(b"q", name);
        }
        if let Kind::Response(r) = &self.kind {
            w.bytes(b"r");
            encode_response(&mut w, r);
        }
        if self.read_only {
            w.ki(b"ro", 1);
        }
        w.kb(b"t", &self.tid);
        w.kb(b"v", VERSION);
        let y: &[u8] = match self.kind {
            Kind::Query(_) => b"q",
            Kind::Response(_) => b"r",
            Kind::Error(_) => b"e",
        };
        w.kb(b"y", y);
        w.close();
        w.0
    }
}

fn id_of(v: Option<&Value>) -> Option<NodeId> {
    let b = v?.bytes()?;
    Some(NodeId(b.try_into().ok()?))
}

fn decode_query(root: &Value) -> Result<Query, &'static str> {
    let q = root.get(b"q").and_then(Value::bytes).ok_or("q")?;
    let a = root.get(b"a").filter(|a| matches!(a, Value::Dict(_)));
    let id = id_of(a.and_then(|a| a.get(b"id")));
    let known = matches!(q, b"ping" | b"find_node" | b"get_peers" | b"announce_peer");
    if !known {
        if q.len() > MAX_METHOD {
            return Err("q");
        }
        return Ok(Query {
            id: id.unwrap_or(NodeId([0; 20])),
            method: Method::Other(q.to_vec()),
        });
    }
    let a = a.ok_or("a")?;
    let id = id.ok_or("id")?;
    let want = decode_want(a.get(b"want"));
    let method = match q {
        b"ping" => Method::Ping,
        b"find_node" => Method::FindNode {
            target: id_of(a.get(b"target")).ok_or("target")?,
            want,
        },
        b"get_peers" => Method::GetPeers {
            info_hash: id_of(a.get(b"info_hash")).ok_or("info_hash")?,
            want,
        },
        _ => {
            let implied_port = a.get(b"implied_port").and_then(Value::int).unwrap_or(0) != 0;
            let port = match a.get(b"port").and_then(Value::int) {
                Some(p) => u16::try_from(p).map_err(|_| "port")?,
                None if implied_port => 0,
                None => return Err("port"),
            };
            let token = a.get(b"token").and_then(Value::bytes).ok_or("token")?;
            if token.len() > MAX_TOKEN {
                return Err("token");
            }
            Method::AnnouncePeer {
                info_hash: id_of(a.get(b"info_hash")).ok_or("info_hash")?,
                port,
                implied_port,
                token: token.to_vec(),
            }
        }
    };
    Ok(Query { id, method })
}

fn decode_want(v: Option<&Value>) -> Want {
    let mut want = Want::default();
    if let Some(Value::List(items)) = v {
        for item in items {
            match item.bytes() {
                Some(b"n4") => want.v4 = true,
                Some(b"n6") => want.v6 = true,
                _ => {}
            }
        }
    }
    want
}

fn decode_response(r: &Value) -> Result<Response, KrpcError> {
    if !matches!(r, Value::Dict(_)) {
        return Err(KrpcError::Bad("r"));
    }
    let mut out = Response {
        id: Some(id_of(r.get(b"id")).ok_or(KrpcError::Bad("id"))?),
        ..Response::default()
    };
    if let Some(v) = r.get(b"nodes") {
        out.nodes = compact_nodes(v.bytes().ok_or(KrpcError::Bad("nodes"))?, 4)?;
    }
    if let Some(v) = r.get(b"nodes6") {
        out.nodes6 = compact_nodes(v.bytes().ok_or(KrpcError::Bad("nodes6"))?, 16)?;
    }
    if let Some(v) = r.get(b"token") {
        let t = v.bytes().ok_or(KrpcError::Bad("token"))?;
        if t.len() > MAX_TOKEN {
            return Err(KrpcError::Bad("token"));
        }
        out.token = Some(t.to_vec());
    }
    match r.get(b"values") {
        None => {}
        Some(Value::List(items)) => {
            // Entries of an unknown size are skipped; the rest are kept up to the bound.
            out.values = items
                .iter()
                .filter_map(|v| v.bytes().and_then(compact_addr))
                .take(MAX_VALUES)
                .collect();
        }
        Some(_) => return Err(KrpcError::Bad("values")),
    }
    Ok(out)
}

fn decode_error(e: Option<&Value>) -> Result<ErrorReply, KrpcError> {
    let Some(Value::List(items)) = e else {
        return Err(KrpcError::Bad("e"));
    };
    let code = items
        .first()
        .and_then(Value::int)
        .ok_or(KrpcError::Bad("e"))?;
    let text = items.get(1).and_then(Value::bytes).unwrap_or(b"");
    let text = &text[..text.len().min(MAX_ERROR_TEXT)];
    Ok(ErrorReply {
        code,
        message: String::from_utf8_lossy(text).into_owned(),
    })
}

/// `nodes` (26-byte entries) or `nodes6` (38-byte entries); the length must be a multiple
/// of the entry size; entries past [`MAX_NODES`] are dropped.
fn compact_nodes(b: &[u8], ip_len: usize) -> Result<Vec<NodeInfo>, KrpcError> {
    let size = 20 + ip_len + 2;
    if !b.len().is_multiple_of(size) {
        return Err(KrpcError::Bad(if ip_len == 4 { "nodes" } else { "nodes6" }));
    }
    Ok(b.chunks_exact(size)
        .take(MAX_NODES)
        .filter_map(|c| {
            Some(NodeInfo {
                id: NodeId(c[..20].try_into().ok()?),
                addr: compact_addr(&c[20..])?,
            })
        })
        .collect())
}

/// A compact address: 4 or 16 bytes of IP, then the port, big-endian.
pub fn compact_addr(b: &[u8]) -> Option<SocketAddr> {
    let (ip, port) = match b.len() {
        6 => {
            let o: [u8; 4] = b[..4].try_into().ok()?;
            (IpAddr::V4(Ipv4Addr::from(o)), &b[4..])
        }
        18 => {
            let o: [u8; 16] = b[..16].try_into().ok()?;
            (IpAddr::V6(Ipv6Addr::from(o)), &b[16..])
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, u16::from_be_bytes([port[0], port[1]])))
}

pub fn compact(addr: SocketAddr) -> Vec<u8> {
    let mut out = match addr.ip() {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    out.extend_from_slice(&addr.port().to_be_bytes());
    out
}

pub fn compact_node_list(nodes: &[NodeInfo]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nodes.len() * 38);
    for n in nodes {
        out.extend_from_slice(&n.id.0);
        out.extend_from_slice(&compact(n.addr));
    }
    out
}

fn encode_args<'q>(w: &mut Writer, q: &'q Query) -> &'q [u8] {
    w.open_dict();
    w.kb(b"id", &q.id.0);
    let want = |w: &mut Writer, want: &Want| {
        if want.v4 || want.v6 {
            w.bytes(b"want").open_list();
            if want.v4 {
                w.bytes(b"n4");
            }
            if want.v6 {
                w.bytes(b"n6");
            }
            w.close();
        }
    };
    let name: &[u8] = match &q.method {
        Method::Ping => b"ping",
        Method::FindNode { target, want: wt } => {
            w.kb(b"target", &target.0);
            want(w, wt);
            b"find_node"
        }
        Method::GetPeers {
            info_hash,
            want: wt,
        } => {
            w.kb(b"info_hash", &info_hash.0);
            want(w, wt);
            b"get_peers"
        }
        Method::AnnouncePeer {
            info_hash,
            port,
            implied_port,
            token,
        } => {
            if *implied_port {
                w.ki(b"implied_port", 1);
            }
            w.kb(b"info_hash", &info_hash.0);
            w.ki(b"port", i64::from(*port));
            w.kb(b"token", token);
            b"announce_peer"
        }
        Method::Other(name) => name,
    };
    w.close();
    name
}

fn encode_response(w: &mut Writer, r: &Response) {
    w.open_dict();
    if let Some(id) = r.id {
        w.kb(b"id", &id.0);
    }
    let v4: Vec<NodeInfo> = r
        .nodes
        .iter()
        .filter(|n| n.addr.is_ipv4())
        .cloned()
        .collect();
    let v6: Vec<NodeInfo> = r
        .nodes6
        .iter()
        .filter(|n| n.addr.is_ipv6())
        .cloned()
        .collect();
    if !v4.is_empty() {
        w.kb(b"nodes", &compact_node_list(&v4));
    }
    if !v6.is_empty() {
        w.kb(b"nodes6", &compact_node_list(&v6));
    }
    if let Some(t) = &r.token {
        w.kb(b"token", t);
    }
    if !r.values.is_empty() {
        w.bytes(b"values").open_list();
        for v in &r.values {
            w.bytes(&compact(*v));
        }
        w.close();
    }
    w.close();
}

#[cfg(test)]
mod tests;
