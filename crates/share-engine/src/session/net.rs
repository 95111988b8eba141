//! The session's sockets, on one port number: a TCP listener and a UDP socket (µTP and the
//! DHT) for each address family. Listening on the IPv4 wildcard (`0.0.0.0`, the default)
//! listens on the IPv6 one (`[::]`) too; a specific address listens on that family only.
//! Every socket is made by the session's [`Egress`] (an interface, a proxy's relay); under
//! a proxy the TCP port is held but not listened on, and µTP and the DHT live on the
//! proxy's UDP relay or not at all.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::egress::{Egress, Listener};
use tokio_util::sync::CancellationToken;

use super::SessionConfig;
use crate::ctx::Dht;
use crate::dht::{self, DhtConfig};
use crate::udp::{Endpoint, Utp};

/// Which transports connections use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transports {
    pub tcp: bool,
    pub utp: bool,
}

impl Default for Transports {
    fn default() -> Self {
        Transports {
            tcp: true,
            utp: true,
        }
    }
}

/// What [`bind`] opened.
pub(crate) struct Net {
    /// The first listener's address: what `listening on` says.
    pub local: SocketAddr,
    pub tcp: Vec<Arc<TcpListener>>,
    /// Ports held without listening (under a proxy).
    pub held: Vec<socket2::Socket>,
    pub utp: Vec<Arc<Utp>>,
    pub dht: Dht,
}

/// Binds the listeners, and the UDP sockets with µTP and DHT nodes on them.
pub(crate) async fn bind(
    config: &SessionConfig,
    egress: &Egress,
    shutdown: &CancellationToken,
    external: &Arc<crate::external::External>,
) -> std::io::Result<Net> {
    let listen = egress.listen_addr(config.listen);
    let first = egress.tcp_listener(listen)?;
    let local = first.local_addr()?;
    let mut tcp = vec![first];
    // The other family's wildcard, on the same port, when the wildcard was asked for.
    let other = match listen.ip() {
        ip if ip == Ipv4Addr::UNSPECIFIED => {
            Some(SocketAddr::from((Ipv6Addr::UNSPECIFIED, local.port())))
        }
        ip if ip == Ipv6Addr::UNSPECIFIED => {
            Some(SocketAddr::from((Ipv4Addr::UNSPECIFIED, local.port())))
        }
        _ => None,
    };
    if let Some(o) = other {
        match egress.tcp_listener(o) {
            Ok(l) => tcp.push(l),
            Err(e) => tracing::debug!(addr = %o, error = %e, "not listening on the other family"),
        }
    }
    let addrs: Vec<SocketAddr> = tcp.iter().filter_map(|l| l.local_addr().ok()).collect();
    let mut utp = Vec::new();
    let mut dht_nodes = Vec::new();
    let want_udp = (config.transports.utp || config.dht.is_some())
        && egress.udp_allowed("the DHT, UDP trackers and µTP").await;
    for addr in addrs.iter().filter(|_| want_udp) {
        // Under a proxy, one relay serves the session (its family is the proxy's).
        if egress.is_proxied() && (!utp.is_empty() || !dht_nodes.is_empty()) {
            break;
        }
        let (dht_tx, dht_rx) = mpsc::channel(dht::PACKET_QUEUE);
        let dht_tx = config.dht.is_some().then_some(dht_tx);
        let socket = match egress.session_udp(*addr).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(target: "share_engine::egress", %addr, error = %e, "no UDP socket here: no µTP or DHT on it");
                continue;
            }
        };
        let endpoint = match Endpoint::start(socket, config.transports.utp, dht_tx, shutdown) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(%addr, error = %e, "no UDP socket here: no µTP or DHT on it");
                continue;
            }
        };
        if let Some(u) = endpoint.utp {
            utp.push(u);
        }
        if let Some(bootstrap) = &config.dht {
            let mut dc = DhtConfig::new(local.port());
            dc.bootstrap = if bootstrap.is_empty() {
                dht::DEFAULT_BOOTSTRAP
                    .iter()
                    .map(|s| s.to_string())
                    .collect()
            } else {
                bootstrap.clone()
            };
            let file = if addr.is_ipv6() {
                "dht6.dat"
            } else {
                "dht.dat"
            };
            dc.state_file = Some(config.state_dir.join(file));
            dc.external = Some(external.clone());
            dc.blocks = config.blocks.clone();
            dc.egress = Some(config.egress.clone());
            match dht::spawn(endpoint.socket.clone(), dht_rx, dc) {
                Ok(h) => dht_nodes.push(h),
                Err(e) => tracing::warn!(%addr, error = %e, "the DHT is off here"),
            }
        }
    }
    let mut listening = Vec::new();
    let mut held = Vec::new();
    for l in tcp {
        match l {
            Listener::Open(l) => listening.push(l),
            Listener::Reserved(s) => held.push(s),
        }
    }
    if !config.transports.tcp {
        // µTP only: nothing listens on TCP (a peer's TCP dial is refused at once).
        listening.clear();
    }
    Ok(Net {
        local,
        tcp: listening,
        held,
        utp,
        dht: Dht::new(dht_nodes),
    })
}
