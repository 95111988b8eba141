//! Addresses as per-address limits see them: [`IpKey`].
//!
//! A limit "per IP address" is meant to hold one host to a share. An IPv4 host has one
//! address (or shares it, behind NAT); an IPv6 host is routinely handed a whole /64 and
//! picks addresses in it at will (privacy addresses change every day), so counting IPv6
//! addresses one by one would let one host take 2^64 shares. Every per-address count, cap,
//! ban and rate limit is therefore keyed by an [`IpKey`]: an IPv4 address as it is, an
//! IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, what a dual-stack socket reports for an IPv4
//! peer) as that IPv4 address, and any other IPv6 address as its /64 prefix.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The unit per-address limits count: an IPv4 address, or an IPv6 /64.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpKey {
    V4(Ipv4Addr),
    /// The first 64 bits of the address.
    V6(u64),
}

impl IpKey {
    pub fn is_ipv6(&self) -> bool {
        matches!(self, IpKey::V6(_))
    }
}

impl From<IpAddr> for IpKey {
    fn from(ip: IpAddr) -> IpKey {
        match ip {
            IpAddr::V4(v4) => IpKey::V4(v4),
            IpAddr::V6(v6) => IpKey::from(v6),
        }
    }
}

impl From<Ipv4Addr> for IpKey {
    fn from(ip: Ipv4Addr) -> IpKey {
        IpKey::V4(ip)
    }
}

impl From<Ipv6Addr> for IpKey {
    fn from(ip: Ipv6Addr) -> IpKey {
        match ip.to_ipv4_mapped() {
            Some(v4) => IpKey::V4(v4),
            None => IpKey::V6((u128::from(ip) >> 64) as u64),
        }
    }
}

/// `192.0.2.1`, or `2001:db8:1:2::/64`.
impl fmt::Display for IpKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpKey::V4(v4) => v4.fmt(f),
            IpKey::V6(prefix) => write!(f, "{}/64", Ipv6Addr::from(u128::from(*prefix) << 64)),
        }
    }
}

impl fmt::Debug for IpKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IpKey({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> IpKey {
        IpKey::from(s.parse::<IpAddr>().unwrap())
    }

    #[test]
    fn an_ipv6_64_is_one_key_and_the_next_64_another() {
        assert_eq!(
            key("2001:db8:1:2::1"),
            key("2001:db8:1:2:ffff:ffff:ffff:ffff")
        );
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("2001:db8:1:2:abcd::9").to_string(), "2001:db8:1:2::/64");
        assert!(key("::1").is_ipv6());
    }

    #[test]
    fn ipv4_addresses_are_their_own_keys_even_when_mapped() {
        assert_ne!(key("192.0.2.1"), key("192.0.2.2"));
        assert_eq!(key("::ffff:192.0.2.1"), key("192.0.2.1"));
        assert_eq!(key("::ffff:192.0.2.1").to_string(), "192.0.2.1");
        assert!(!key("::ffff:192.0.2.1").is_ipv6());
        // An IPv4-compatible address (deprecated, `::a.b.c.d`) is an IPv6 address like any.
        assert_eq!(key("::192.0.2.1"), key("::1"));
    }
}
