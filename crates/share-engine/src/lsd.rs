//! Local service discovery (BEP 14): the session's multicast announcer and listener.
//!
//! Every public torrent of the session is announced on 239.192.152.143:6771 (and
//! [ff15::efc0:988f]:6771 where IPv6 multicast works) soon after it is added and then every
//! [`INTERVAL`]; peers heard announcing a torrent we have go to that torrent's address book
//! as hints. Our own announces, looped back by the network, carry our cookie and are
//! ignored. Incoming announces are taken at a bounded rate.
//!
//! LSD only ever reaches the local network, but tests must still keep it off outside the
//! network namespaces they make (`--no-lsd`), since a multicast leaves the machine.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use share_core::lsd::{Announce, GROUP_V4, GROUP_V6, MAX_HASHES, MAX_PACKET};
use share_core::InfoHash;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::blocks::Blocks;
use crate::egress::Egress;
use crate::routes::Routes;
use crate::PeerSource;

/// How often each torrent is announced (BEP 14: every five minutes).
pub const INTERVAL: Duration = Duration::from_secs(300);
/// Incoming announces taken per second at most; the rest are dropped.
const MAX_INCOMING_PER_SEC: u32 = 50;

/// Runs until `shutdown`: announces the session's public torrents and routes what others
/// announce. `port` is our peer listening port.
pub async fn run(
    port: u16,
    routes: watch::Receiver<Routes>,
    egress: Arc<Egress>,
    blocks: Blocks,
    shutdown: CancellationToken,
) {
    if let Some(p) = egress.proxy() {
        tracing::warn!(target: "share_engine::egress", "local service discovery is off: its multicast would go around the proxy {p}");
        return;
    }
    let v4 = egress
        .multicast(GROUP_V4.into())
        .map_err(|e| tracing::warn!(error = %e, "local service discovery (IPv4) is off"))
        .ok();
    let v6 = egress
        .multicast(GROUP_V6.into())
        .map_err(|e| tracing::debug!(error = %e, "local service discovery over IPv6 is off"))
        .ok();
    if v4.is_none() && v6.is_none() {
        return;
    }
    let cookie = format!("{:016x}", rand::random::<u64>());
    let mut last: HashMap<InfoHash, Instant> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let (mut buf4, mut buf6) = (vec![0u8; MAX_PACKET], vec![0u8; MAX_PACKET]);
    let mut budget = (Instant::now(), 0u32);
    loop {
        let got = tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {
                announce_due(&routes, &mut last, port, &cookie, v4.as_deref(), v6.as_deref()).await;
                None
            }
            r = recv(v4.as_deref(), &mut buf4) => r.map(|(n, from)| (buf4[..n].to_vec(), from)),
            r = recv(v6.as_deref(), &mut buf6) => r.map(|(n, from)| (buf6[..n].to_vec(), from)),
        };
        let Some((packet, from)) = got else {
            continue;
        };
        let now = Instant::now();
        if now.duration_since(budget.0) >= Duration::from_secs(1) {
            budget = (now, 0);
        }
        budget.1 += 1;
        if budget.1 > MAX_INCOMING_PER_SEC {
            continue;
        }
        if !blocks.contains(from.ip()) {
            heard(&packet, from, &cookie, &routes);
        }
    }
}

async fn recv(socket: Option<&UdpSocket>, buf: &mut [u8]) -> Option<(usize, SocketAddr)> {
    match socket {
        Some(s) => s.recv_from(buf).await.ok(),
        None => std::future::pending().await,
    }
}

/// An announce from `from`: its peer goes to each torrent of ours it names.
fn heard(packet: &[u8], from: SocketAddr, cookie: &str, routes: &watch::Receiver<Routes>) {
    let Some(a) = Announce::parse(packet) else {
        return;
    };
    if a.cookie.as_deref() == Some(cookie) {
        return;
    }
    let peer = SocketAddr::new(unmap(from.ip()), a.port);
    let routes = routes.borrow().clone();
    for h in &a.info_hashes {
        if let Some(r) = routes.torrents.get(h).filter(|r| !r.private) {
            tracing::debug!(%peer, hash = %h, "heard on local service discovery");
            let _ = r.found.try_send((PeerSource::Lsd, vec![peer]));
        }
    }
}

fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// Announces every public torrent not announced within [`INTERVAL`] (new ones at once).
async fn announce_due(
    routes: &watch::Receiver<Routes>,
    last: &mut HashMap<InfoHash, Instant>,
    port: u16,
    cookie: &str,
    v4: Option<&UdpSocket>,
    v6: Option<&UdpSocket>,
) {
    let now = Instant::now();
    let routes = routes.borrow().clone();
    last.retain(|h, _| routes.torrents.contains_key(h));
    let due: Vec<InfoHash> = routes
        .torrents
        .iter()
        .filter(|(_, r)| !r.private)
        .map(|(h, _)| *h)
        .filter(|h| {
            last.get(h)
                .is_none_or(|t| now.duration_since(*t) >= INTERVAL)
        })
        .collect();
    for chunk in due.chunks(MAX_HASHES) {
        let a = Announce {
            port,
            info_hashes: chunk.to_vec(),
            cookie: Some(cookie.to_owned()),
        };
        if let Some(s) = v4 {
            if let Err(e) = s.send_to(&a.encode(GROUP_V4.into()), GROUP_V4).await {
                tracing::debug!(error = %e, "LSD announce (IPv4) failed");
            }
        }
        if let Some(s) = v6 {
            let _ = s.send_to(&a.encode(GROUP_V6.into()), GROUP_V6).await;
        }
        for h in chunk {
            last.insert(*h, now);
        }
        tracing::debug!(
            torrents = chunk.len(),
            "announced on local service discovery"
        );
    }
}
