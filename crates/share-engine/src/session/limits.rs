//! The session's limits on connections: a place among all connections, among those being
//! set up, and among those of one IP address, held for as long as a connection lives.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use tokio::sync::OwnedSemaphorePermit;

/// Counts one peer connection against the session's limits while it lives: a place among
/// all connections, and while it is being set up, a place among those.
#[derive(Debug)]
pub struct ConnPermit {
    pub(super) _conn: OwnedSemaphorePermit,
    pub(super) _ip: IpGuard,
    pub(super) setting_up: Option<OwnedSemaphorePermit>,
}

/// Connections per IP address. A lock, because connections end in their own tasks; it is
/// held for one map update.
#[derive(Debug)]
pub(crate) struct PerIp {
    counts: std::sync::Mutex<HashMap<IpAddr, usize>>,
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
    ip: IpAddr,
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
