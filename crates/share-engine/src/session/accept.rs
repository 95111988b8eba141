//! Incoming connections on every listener (TCP, and µTP on the UDP socket): a bounded set
//! of handshakes under way (the oldest dropped for a newcomer, a few per IP address, an IPv6
//! /64 counting as one), each read under one deadline, plaintext or inside MSE, then handed
//! to the torrent it names.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use share_core::wire::{Handshake, HANDSHAKE_LEN};
use share_core::IpKey;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

use crate::udp::Utp;
use tokio::sync::watch;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

use crate::ctx::{ConnPermit, SessionCtx};
use crate::peer::{self, HANDSHAKE_TIMEOUT};
use crate::routes::Routes;
use crate::torrent::TorrentCommand;
use crate::transport::{self, Policy};

/// Connections being handshaken on the listener at once. When they are all taken, the
/// oldest is dropped for the newcomer: an honest peer handshakes in milliseconds, so
/// connections that sit silent (slowloris) cannot keep it out.
pub const MAX_INCOMING_HANDSHAKES: usize = 64;
/// Handshakes under way from one IP address (an IPv6 /64 counts as one) at once; more from
/// it are closed at once.
pub const MAX_HANDSHAKES_PER_IP: usize = 8;

/// The incoming handshakes under way, oldest first. A lock, because each handshake ends in
/// its own task; it is held for a scan of at most [`MAX_INCOMING_HANDSHAKES`] entries.
#[derive(Default)]
pub(super) struct Handshaking {
    slots: VecDeque<(u64, IpKey, CancellationToken)>,
    next: u64,
}

impl Handshaking {
    /// A slot for a handshake from `ip`: `None` if that IP (its /64, for IPv6) has too many
    /// under way; the oldest handshake is dropped if every slot is taken.
    fn enter(&mut self, ip: IpAddr) -> Option<(u64, CancellationToken)> {
        let ip = IpKey::from(ip);
        if self.slots.iter().filter(|(_, i, _)| *i == ip).count() >= MAX_HANDSHAKES_PER_IP {
            return None;
        }
        if self.slots.len() >= MAX_INCOMING_HANDSHAKES {
            if let Some((_, _, oldest)) = self.slots.pop_front() {
                oldest.cancel();
            }
        }
        let id = self.next;
        self.next += 1;
        let token = CancellationToken::new();
        self.slots.push_back((id, ip, token.clone()));
        Some((id, token))
    }

    fn leave(&mut self, id: u64) {
        self.slots.retain(|(i, _, _)| *i != id);
    }
}

pub(super) type SharedHandshaking = Arc<std::sync::Mutex<Handshaking>>;

impl Handshaking {
    pub(super) fn shared() -> SharedHandshaking {
        Arc::default()
    }
}

fn lock(h: &SharedHandshaking) -> std::sync::MutexGuard<'_, Handshaking> {
    h.lock().unwrap_or_else(|p| p.into_inner())
}

/// A slot among the handshakes under way and a permit for the connection, or `None` (the
/// caller closes it).
fn admit(
    addr: SocketAddr,
    ctx: &SessionCtx,
    handshaking: &SharedHandshaking,
) -> Option<(u64, CancellationToken, ConnPermit)> {
    let ip = addr.ip();
    if ctx.blocks.contains(ip) {
        tracing::debug!(%addr, "blocked address (--blocklist): closed");
        return None;
    }
    let Some((id, token)) = lock(handshaking).enter(ip) else {
        tracing::debug!(%addr, "too many handshakes from this address: closed");
        return None;
    };
    match ctx.accept_permit(ip) {
        Some(p) => {
            // A connection from outside: our port is reachable.
            ctx.external.reached_from(ip);
            Some((id, token, p))
        }
        None => {
            lock(handshaking).leave(id);
            tracing::debug!(%addr, "connection limit reached: closed");
            None
        }
    }
}

/// Runs one incoming connection's handshake in a task of its own, in its slot.
pub(super) fn spawn_handshake<S>(
    stream: S,
    addr: SocketAddr,
    via: peer::Transport,
    routes: &watch::Receiver<Routes>,
    ctx: &SessionCtx,
    handshaking: &SharedHandshaking,
) where
    S: peer::PeerStream,
{
    let Some((id, token, permit)) = admit(addr, ctx, handshaking) else {
        return;
    };
    let routes = routes.clone();
    let handshaking = handshaking.clone();
    let policy = ctx.switches.encryption();
    tokio::spawn(async move {
        tokio::select! {
            _ = token.cancelled() => {
                tracing::debug!(%addr, "handshake dropped for a newer connection");
            }
            _ = route_incoming(stream, addr, via, permit, routes, policy) => {}
        }
        lock(&handshaking).leave(id);
    });
}

/// Accepts TCP connections and hands each, after its handshake, to its torrent.
pub(super) async fn tcp_loop(
    listener: Arc<TcpListener>,
    routes: watch::Receiver<Routes>,
    ctx: Arc<SessionCtx>,
    handshaking: SharedHandshaking,
    shutdown: CancellationToken,
) {
    loop {
        let (stream, addr) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of descriptors, most likely: wait a moment instead of spinning.
                    tracing::debug!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        spawn_handshake(
            stream,
            addr,
            peer::Transport::Tcp,
            &routes,
            &ctx,
            &handshaking,
        );
    }
}

/// Accepts µTP connections the same way.
pub(super) async fn utp_loop(
    utp: Arc<Utp>,
    routes: watch::Receiver<Routes>,
    ctx: Arc<SessionCtx>,
    handshaking: SharedHandshaking,
    shutdown: CancellationToken,
) {
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = utp.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(error = %e, "µTP accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let addr = stream.remote_addr();
        if !ctx.switches.utp() {
            // µTP was switched off while the session runs: the connection is dropped.
            continue;
        }
        spawn_handshake(
            stream,
            addr,
            peer::Transport::Utp,
            &routes,
            &ctx,
            &handshaking,
        );
    }
}

/// Reads the remote's handshake (plaintext, or inside MSE, as the encryption policy allows)
/// and hands the connection to the torrent it names.
async fn route_incoming<S: peer::PeerStream>(
    stream: S,
    addr: SocketAddr,
    via: peer::Transport,
    permit: ConnPermit,
    routes: watch::Receiver<Routes>,
    policy: Policy,
) {
    let got = timeout(HANDSHAKE_TIMEOUT, async {
        let table = routes.borrow().clone();
        let lookup = |skey: &[u8; 20]| table.skeys.get(skey).copied();
        let mut accepted = transport::accept(stream, lookup, policy)
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = [0u8; HANDSHAKE_LEN];
        accepted
            .stream
            .read_exact(&mut buf)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let theirs = Handshake::decode(&buf).map_err(|e| e.to_string())?;
        if accepted.info_hash.is_some_and(|h| h != theirs.info_hash) {
            return Err("the handshake names another torrent than its encryption".to_owned());
        }
        Ok::<_, String>((accepted.stream, theirs))
    })
    .await;
    let (stream, theirs) = match got {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => {
            if policy == Policy::Require && e.contains("plaintext handshake refused") {
                tracing::info!(%addr, %via, "refused a plaintext connection: encryption is required (--encryption require)");
            } else {
                tracing::debug!(%addr, %via, error = %e, "closed");
            }
            return;
        }
        Err(_) => {
            tracing::debug!(%addr, %via, "no handshake in time: closed");
            return;
        }
    };
    let route = routes.borrow().torrents.get(&theirs.info_hash).cloned();
    let Some(route) = route else {
        tracing::debug!(%addr, hash = %theirs.info_hash, "handshake for a torrent we do not have: closed");
        return;
    };
    let encryption = peer::Encryption::of(stream.mse());
    let cmd = TorrentCommand::Incoming {
        stream: Box::new(stream) as peer::BoxStream,
        addr,
        handshake: theirs,
        permit,
        via: peer::Via {
            transport: via,
            encryption,
        },
    };
    if route.cmd.try_send(cmd).is_err() {
        tracing::debug!(%addr, "torrent busy: closed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshakes_from_one_ipv6_64_count_against_one_limit() {
        let mut h = Handshaking::default();
        for i in 0..MAX_HANDSHAKES_PER_IP {
            let ip: IpAddr = format!("2001:db8:0:1::{:x}", i + 1).parse().unwrap();
            assert!(h.enter(ip).is_some());
        }
        assert!(
            h.enter("2001:db8:0:1:ffff::1".parse().unwrap()).is_none(),
            "same /64"
        );
        assert!(
            h.enter("2001:db8:0:2::1".parse().unwrap()).is_some(),
            "another /64"
        );
        let first = h.slots[0].0;
        h.leave(first);
        assert!(
            h.enter("2001:db8:0:1::99".parse().unwrap()).is_some(),
            "a slot came free"
        );
    }

    #[test]
    fn handshakes_from_two_ipv4_addresses_count_apart() {
        let mut h = Handshaking::default();
        for _ in 0..MAX_HANDSHAKES_PER_IP {
            assert!(h.enter("192.0.2.1".parse().unwrap()).is_some());
        }
        assert!(
            h.enter("::ffff:192.0.2.1".parse().unwrap()).is_none(),
            "the same address"
        );
        assert!(h.enter("192.0.2.2".parse().unwrap()).is_some());
    }
}
