//! Hole punching (BEP 55) in all three roles, on top of `share_core::holepunch`.
//!
//! - **Initiator:** a peer we learn of through PEX from a peer that speaks ut_holepunch,
//!   flagged as speaking it too and not known to be reachable, is introduced through that
//!   peer at once (a `rendezvous`); so is one whose dial fails. Each address is introduced
//!   at most once every [`ASK_AGAIN`].
//! - **Relay:** a `rendezvous` for a peer we are connected to that speaks ut_holepunch gets
//!   a `connect` to both sides, each naming the other's endpoint (for a µTP connection the
//!   address its packets come from, which is the hole its NAT keeps open; else the address
//!   it listens at); otherwise an `error` with BEP 55's code.
//! - **Target (and initiator):** a `connect` dials the endpoint over µTP at once, unless we
//!   are connected to it already.
//!
//! Each connection may send a few holepunch messages, then one every few seconds; more are
//! ignored. Dials for `connect` count against the torrent's dial rate like any other, and
//! go out on the session's µTP sockets, which the egress made (on `--interface`, or through
//! the proxy's UDP relay). A blocked address (`--blocklist`) takes no part: it is never
//! asked for, introduced (to anyone, or anyone to it) or dialed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use share_core::budget::Budget;
use share_core::ext::Extension;
use share_core::holepunch::{Holepunch, Refusal};
use share_core::pex::flags;
use share_core::picker::PeerKey;
use share_core::wire::Message;
use tokio::time::Instant;

use super::transfer::Torrent;
use crate::peer::Transport;

/// An address is introduced at most this often.
const ASK_AGAIN: Duration = Duration::from_secs(120);
/// Addresses remembered with the peer that told us of them, at most.
const MAX_REMEMBERED: usize = 1024;
/// Holepunch messages from one connection: a burst, then one per this many seconds.
const BURST: f64 = 8.0;
const EVERY_SECS: f64 = 5.0;

/// What the torrent remembers for hole punching.
#[derive(Default)]
pub(super) struct Punch {
    /// Who told us of an address (by PEX), to ask it for an introduction.
    introducer: HashMap<SocketAddr, PeerKey>,
    /// When each address was last introduced.
    asked: HashMap<SocketAddr, Instant>,
    /// Each connection's allowance of holepunch messages.
    budgets: HashMap<PeerKey, Budget>,
}

impl Punch {
    pub(super) fn forget(&mut self, key: PeerKey) {
        self.budgets.remove(&key);
        self.introducer.retain(|_, k| *k != key);
    }
}

impl Torrent {
    fn holepunch_id(&self, key: PeerKey) -> Option<u8> {
        if !self.base.offered().offers(Extension::Holepunch) {
            return None;
        }
        self.peers.get(&key)?.ext.holepunch_id
    }

    fn send_holepunch(&self, key: PeerKey, m: Holepunch) -> bool {
        let (Some(id), Some(p)) = (self.holepunch_id(key), self.peers.get(&key)) else {
            return false;
        };
        p.send(Message::Extended {
            id,
            payload: m.encode().into(),
        });
        true
    }

    /// Where peer `key` can be reached for a hole punch: the address its µTP packets come
    /// from, else where it listens.
    fn endpoint(&self, key: PeerKey) -> Option<SocketAddr> {
        let p = self.peers.get(&key)?;
        Some(if p.via.transport == Transport::Utp {
            p.addr
        } else {
            p.listen_addr.unwrap_or(p.addr)
        })
    }

    fn connected_to(&self, addr: SocketAddr) -> Option<PeerKey> {
        self.peers
            .iter()
            .find(|(_, p)| p.addr == addr || p.listen_addr == Some(addr))
            .map(|(k, _)| *k)
    }

    /// Peers `key` told us of by PEX, with their flags.
    pub(super) fn introduced(&mut self, key: PeerKey, learned: &[(SocketAddr, u8)]) {
        if self.holepunch_id(key).is_none() {
            return;
        }
        for &(addr, f) in learned {
            if self.punch.introducer.len() >= MAX_REMEMBERED {
                self.punch.introducer.clear();
            }
            self.punch.introducer.insert(addr, key);
            // It says it takes introductions and nobody reached it by dialing: ask now,
            // rather than after a dial that its NAT will drop.
            if f & flags::HOLEPUNCH != 0 && f & flags::REACHABLE == 0 {
                self.ask_introduction(addr);
            }
        }
    }

    /// A dial to `addr` failed: ask the peer that told us of it to introduce us.
    pub(super) fn dial_failed(&mut self, addr: SocketAddr) {
        if self.punch.introducer.contains_key(&addr) {
            self.ask_introduction(addr);
        }
    }

    fn ask_introduction(&mut self, target: SocketAddr) {
        if self.base.ctx.utp.is_empty() || self.picker.is_done() || self.base.paused {
            return;
        }
        let Some(&relay) = self.punch.introducer.get(&target) else {
            return;
        };
        if self.base.ctx.blocks.contains(target.ip()) {
            return;
        }
        let now = Instant::now();
        if self
            .punch
            .asked
            .get(&target)
            .is_some_and(|at| now.duration_since(*at) < ASK_AGAIN)
            || self.connected_to(target).is_some()
        {
            return;
        }
        if self.punch.asked.len() >= MAX_REMEMBERED {
            self.punch
                .asked
                .retain(|_, at| now.duration_since(*at) < ASK_AGAIN);
        }
        if self.send_holepunch(relay, Holepunch::Rendezvous(target)) {
            self.punch.asked.insert(target, now);
            tracing::debug!(%target, relay = ?self.peers.get(&relay).map(|p| p.addr), "holepunch: rendezvous asked");
        }
    }

    pub(super) fn on_holepunch(&mut self, key: PeerKey, payload: &[u8]) {
        let now = Instant::now();
        let budget = self
            .punch
            .budgets
            .entry(key)
            .or_insert_with(|| Budget::new(BURST, 1.0 / EVERY_SECS, now.into_std()));
        if !budget.take(now.into_std()) {
            return;
        }
        let from = self.peers.get(&key).map(|p| p.addr);
        let m = match Holepunch::parse(payload) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(peer = ?from, error = %e, "holepunch: ignored");
                return;
            }
        };
        match m {
            Holepunch::Rendezvous(target) => self.relay(key, target),
            Holepunch::Connect(addr) => self.punch_to(addr, from),
            Holepunch::Error(addr, why) => {
                tracing::debug!(peer = ?from, target = %addr, %why, "holepunch: no introduction");
            }
        }
    }

    /// Relay: introduce peer `key` to the peer at `target`.
    fn relay(&mut self, key: PeerKey, target: SocketAddr) {
        let ours = self.base.ctx.listen;
        let external = self.base.ctx.external.address().map(|(ip, _)| ip);
        // A blocked address is introduced to no one, nor anyone to it: as if it were not
        // there (we are not connected to it anyway, once a list blocks it).
        let blocked =
            |a: Option<SocketAddr>| a.is_some_and(|a| self.base.ctx.blocks.contains(a.ip()));
        let refusal = if target.port() == 0 || target.ip().is_unspecified() {
            Some(Refusal::NoSuchPeer)
        } else if blocked(Some(target)) || blocked(self.endpoint(key)) {
            Some(Refusal::NotConnected)
        } else if target.port() == self.base.ctx.external.port(ours.port())
            && (target.ip() == ours.ip() || Some(target.ip()) == external)
        {
            Some(Refusal::NoSelf)
        } else {
            match self.connected_to(target).filter(|t| *t != key) {
                None => Some(Refusal::NotConnected),
                Some(t) if self.holepunch_id(t).is_none() => Some(Refusal::NoSupport),
                Some(t) => {
                    let (Some(a), Some(b)) = (self.endpoint(key), self.endpoint(t)) else {
                        return;
                    };
                    self.send_holepunch(t, Holepunch::Connect(a));
                    self.send_holepunch(key, Holepunch::Connect(b));
                    tracing::debug!(initiator = %a, target = %b, "holepunch: introduced");
                    None
                }
            }
        };
        if let Some(r) = refusal {
            self.send_holepunch(key, Holepunch::Error(target, r));
        }
    }

    /// Initiator or target: dial `addr` over µTP now (the other side dials us too).
    fn punch_to(&mut self, addr: SocketAddr, relay: Option<SocketAddr>) {
        if self.connected_to(addr).is_some()
            || self.base.dialing.values().any(|a| *a == addr)
            || self.base.ctx.utp.is_empty()
            || self.base.paused
        {
            return;
        }
        if self.base.punch(addr) {
            tracing::debug!(%addr, ?relay, "holepunch: connecting");
        }
    }
}
