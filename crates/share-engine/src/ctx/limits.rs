//! The session's limits on connections: a place among all connections, among those being
//! set up, and among those of one IP address (an IPv6 /64 counts as one, see
//! [`IpKey`]), held for as long as a connection lives.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use share_core::IpKey;
use tokio::sync::OwnedSemaphorePermit;

/// Counts one peer connection against the session's limits while it lives: a place among
/// all connections, and while it is being set up, a place among those.
#[derive(Debug)]
pub struct ConnPermit {
    pub(super) _conn: OwnedSemaphorePermit,
    pub(super) _ip: IpGuard,
    pub(super) setting_up: Option<OwnedSemaphorePermit>,
}

/// Connections per IP address (per [`IpKey`]: an IPv6 /64 is one). A lock, because
/// connections end in their own tasks; it is held for one map update.
#[derive(Debug)]
pub(crate) struct PerIp {
    counts: std::sync::Mutex<HashMap<IpKey, usize>>,
    max: usize,
}

impl PerIp {
    pub fn new(max: usize) -> Self {
        PerIp {
            counts: std::sync::Mutex::new(HashMap::new()),
            max: max.max(1),
        }
    }

    pub(crate) fn acquire(self: &Arc<Self>, ip: IpAddr) -> Option<IpGuard> {
        let ip = IpKey::from(ip);
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = c.entry(ip).or_default();
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(IpGuard {
            ip,
            per_ip: self.clone(),
        })
    }
}

/// One connection's place in its IP address's count.
#[derive(Debug)]
pub(crate) struct IpGuard {
    ip: IpKey,
    per_ip: Arc<PerIp>,
}

impl Drop for IpGuard {
    fn drop(&mut self) {
        let mut c = self.per_ip.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = c.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.remove(&self.ip);
            }
        }
    }
}

impl ConnPermit {
    /// The handshake is done: the connection no longer counts as being set up.
    pub fn established(&mut self) {
        self.setting_up = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_of_one_ipv6_64_share_one_count() {
        let per_ip = Arc::new(PerIp::new(2));
        let a = per_ip.acquire(ip("2001:db8:0:1::a")).unwrap();
        let _b = per_ip.acquire(ip("2001:db8:0:1::b")).unwrap();
        assert!(
            per_ip.acquire(ip("2001:db8:0:1:ffff::c")).is_none(),
            "same /64"
        );
        assert!(
            per_ip.acquire(ip("2001:db8:0:2::a")).is_some(),
            "another /64"
        );
        drop(a);
        assert!(
            per_ip.acquire(ip("2001:db8:0:1::c")).is_some(),
            "a place came free"
        );
    }

    #[test]
    fn ipv4_addresses_count_one_by_one_mapped_or_not() {
        let per_ip = Arc::new(PerIp::new(1));
        let _a = per_ip.acquire(ip("192.0.2.1")).unwrap();
        assert!(
            per_ip.acquire(ip("::ffff:192.0.2.1")).is_none(),
            "the same address"
        );
        assert!(per_ip.acquire(ip("192.0.2.2")).is_some());
    }
}
