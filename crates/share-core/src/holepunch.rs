//! BEP 55 hole punching: a peer that two others are connected to introduces them, so that
//! two peers behind NATs (neither reachable) can open a µTP connection to each other. The
//! initiator sends `rendezvous` (the target's endpoint) to the relay; the relay sends
//! `connect` to both, each naming the other's endpoint, or `error` back; on `connect` each
//! side dials the other over µTP at once, so that each one's outgoing packets open its own
//! NAT for the other's.
//!
//! The message (`ut_holepunch`, BEP 10): type (1 byte), address type (1: 0 IPv4, 1 IPv6),
//! address (4 or 16), port (2), error code (4), big-endian. libtorrent leaves the error
//! code out of `rendezvous` and `connect`, so it is optional there; a message of any other
//! length is malformed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Why a relay cannot introduce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the target endpoint is not valid")]
    NoSuchPeer,
    #[error("the relay is not connected to the target")]
    NotConnected,
    #[error("the target does not support hole punching")]
    NoSupport,
    #[error("the target is the relay itself")]
    NoSelf,
    /// A code BEP 55 does not define.
    #[error("error code {0}")]
    Other(u32),
}

impl Refusal {
    pub fn code(self) -> u32 {
        match self {
            Refusal::NoSuchPeer => 1,
            Refusal::NotConnected => 2,
            Refusal::NoSupport => 3,
            Refusal::NoSelf => 4,
            Refusal::Other(c) => c,
        }
    }

    fn from_code(c: u32) -> Refusal {
        match c {
            1 => Refusal::NoSuchPeer,
            2 => Refusal::NotConnected,
            3 => Refusal::NoSupport,
            4 => Refusal::NoSelf,
            c => Refusal::Other(c),
        }
    }
}

/// One `ut_holepunch` message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holepunch {
    /// Initiator to relay: introduce me to the peer at this endpoint.
    Rendezvous(SocketAddr),
    /// Relay to both sides: connect (µTP) to this endpoint now.
    Connect(SocketAddr),
    /// Relay to initiator: the introduction to this endpoint cannot be made.
    Error(SocketAddr, Refusal),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed ut_holepunch message ({0})")]
pub struct Malformed(&'static str);

impl Holepunch {
    pub fn addr(&self) -> SocketAddr {
        match *self {
            Holepunch::Rendezvous(a) | Holepunch::Connect(a) | Holepunch::Error(a, _) => a,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let (kind, err) = match self {
            Holepunch::Rendezvous(_) => (0u8, 0u32),
            Holepunch::Connect(_) => (1, 0),
            Holepunch::Error(_, r) => (2, r.code()),
        };
        let a = self.addr();
        let mut out = Vec::with_capacity(24);
        out.push(kind);
        match a.ip() {
            IpAddr::V4(v4) => {
                out.push(0);
                out.extend_from_slice(&v4.octets());
            }
            IpAddr::V6(v6) => {
                out.push(1);
                out.extend_from_slice(&v6.octets());
            }
        }
        out.extend_from_slice(&a.port().to_be_bytes());
        out.extend_from_slice(&err.to_be_bytes());
        out
    }

    pub fn parse(b: &[u8]) -> Result<Holepunch, Malformed> {
        let (&kind, rest) = b.split_first().ok_or(Malformed("empty"))?;
        let (&family, rest) = rest.split_first().ok_or(Malformed("no address type"))?;
        let (ip, rest): (IpAddr, &[u8]) = match (family, rest.len()) {
            (0, 6 | 10) => {
                let a: [u8; 4] = rest[..4].try_into().expect("length checked");
                (Ipv4Addr::from(a).into(), &rest[4..])
            }
            (1, 18 | 22) => {
                let a: [u8; 16] = rest[..16].try_into().expect("length checked");
                (Ipv6Addr::from(a).into(), &rest[16..])
            }
            (0 | 1, _) => return Err(Malformed("wrong length")),
            _ => return Err(Malformed("unknown address type")),
        };
        let port = u16::from_be_bytes([rest[0], rest[1]]);
        let err = match rest.len() {
            6 => u32::from_be_bytes([rest[2], rest[3], rest[4], rest[5]]),
            // An error without its code is malformed; other messages may leave it out.
            _ if kind == 2 => return Err(Malformed("an error without its code")),
            _ => 0,
        };
        let addr = SocketAddr::new(ip, port);
        match kind {
            0 => Ok(Holepunch::Rendezvous(addr)),
            1 => Ok(Holepunch::Connect(addr)),
            2 => Ok(Holepunch::Error(addr, Refusal::from_code(err))),
            _ => Err(Malformed("unknown message type")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_back_and_anything_else_is_malformed() {
        for m in [
            Holepunch::Rendezvous("45.2.0.2:6881".parse().unwrap()),
            Holepunch::Connect("[2001:db8::1]:51413".parse().unwrap()),
            Holepunch::Error("45.2.0.2:6881".parse().unwrap(), Refusal::NotConnected),
            Holepunch::Error("45.2.0.2:6881".parse().unwrap(), Refusal::Other(99)),
        ] {
            assert_eq!(Holepunch::parse(&m.encode()), Ok(m));
        }
        let ok = Holepunch::Connect("1.2.3.4:5".parse().unwrap()).encode();
        assert_eq!(ok.len(), 12);
        assert_eq!(ok, [1, 0, 1, 2, 3, 4, 0, 5, 0, 0, 0, 0]);
        // libtorrent's form, without the error code.
        assert_eq!(
            Holepunch::parse(&ok[..8]),
            Ok(Holepunch::Connect("1.2.3.4:5".parse().unwrap()))
        );
        for bad in [
            &[][..],
            &[0][..],
            &ok[..11],
            &ok[..7],
            &[2, 0, 1, 2, 3, 4, 0, 5][..],
            &[ok.clone(), vec![0]].concat()[..],
            &[3, 0, 1, 2, 3, 4, 0, 5, 0, 0, 0, 0][..],
            &[0, 2, 1, 2, 3, 4, 0, 5, 0, 0, 0, 0][..],
        ] {
            assert!(Holepunch::parse(bad).is_err(), "{bad:?}");
        }
    }
}
