//! Port mapping on a home router, so that peers outside can connect to us: UPnP IGD
//! (WANIPConnection v1/v2, WANPPPConnection; `igd-next`) first, then PCP and NAT-PMP
//! (`crab_nat`), for the TCP port and the UDP port (µTP and the DHT).
//!
//! One task per session: it finds the default gateway (`/proc/net/route`) and the address
//! we have towards it, maps both ports (the same external port when the router allows it,
//! another when it is taken by someone else), renews each lease before half of it has
//! passed (a router that only grants permanent leases gets one), looks for the gateway
//! again when the network changes, and removes its mappings when the session ends. What it
//! found is published as a [`Reachability`], and said once in a line:
//! `reachable at 203.0.113.7:6881 (UPnP on 192.168.1.1)`, or why not.
//!
//! It goes out the session's way ([`crate::Egress::port_mapping`]): never under a proxy
//! (the session starts no mapping there); bound to an interface (`--interface`), only a
//! default route through that interface counts, and the requests leave from its address
//! (`igd-next` and `crab_nat` open their own sockets and take a source address, not a
//! device; a gateway reached through the interface's own route keeps them on it).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU16;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Leases asked for; renewed at half.
const LEASE: u32 = 3600;
/// How long a gateway has to answer a search.
const SEARCH_TIMEOUT: Duration = Duration::from_secs(3);
/// How often the default route is read again, to notice a new network.
const RECHECK: Duration = Duration::from_secs(30);
/// How long removing mappings may take at exit.
const REMOVE_TIMEOUT: Duration = Duration::from_secs(3);

/// How the session can be reached from outside, as far as is known.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Reachability {
    /// Not found out yet (or port mapping is off).
    #[default]
    Unknown,
    /// A router maps this external address to our port.
    Mapped {
        external: SocketAddr,
        method: &'static str,
        gateway: IpAddr,
    },
    /// No mapping: why.
    Unmapped(String),
}

impl std::fmt::Display for Reachability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reachability::Unknown => f.write_str("reachability unknown"),
            Reachability::Mapped {
                external,
                method,
                gateway,
            } => write!(f, "reachable at {external} ({method} on {gateway})"),
            Reachability::Unmapped(why) => write!(f, "not reachable from outside: {why}"),
        }
    }
}

/// What to map.
#[derive(Debug, Clone)]
pub struct MapConfig {
    pub tcp_port: u16,
    /// The UDP port (µTP, the DHT), if the session has one.
    pub udp_port: Option<u16>,
    /// The address we listen on, when it is a specific one (else the one towards the
    /// gateway is used).
    pub local_ip: Option<IpAddr>,
    /// The interface the session is bound to (`--interface`): only a gateway on it counts,
    /// and `local_ip` is its address (none: no mapping).
    pub interface: Option<String>,
}

/// The default IPv4 gateway, from the kernel's routing table.
pub fn default_gateway() -> Option<Ipv4Addr> {
    gateway_on(None)
}

/// The default IPv4 gateway through `iface` (any interface if `None`).
pub fn gateway_on(iface: Option<&str>) -> Option<Ipv4Addr> {
    let table = std::fs::read_to_string("/proc/net/route").ok()?;
    gateway_from_table(&table, iface)
}

/// The gateway of the default route (destination 0, mask 0) in `/proc/net/route`'s text,
/// through `iface` when given.
fn gateway_from_table(table: &str, iface: Option<&str>) -> Option<Ipv4Addr> {
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 || f[1] != "00000000" || f[7] != "00000000" {
            return None;
        }
        if iface.is_some_and(|i| i != f[0]) {
            return None;
        }
        let g = u32::from_str_radix(f[2], 16).ok()?;
        // The table is in the host's byte order, little-endian here.
        (g != 0).then(|| Ipv4Addr::from(g.swap_bytes()))
    })
}

/// Where requests leave from: the address we listen on or the interface's; else, with no
/// interface, our address on the way to `gateway`.
fn local_for(config: &MapConfig, gateway: Option<Ipv4Addr>) -> Option<IpAddr> {
    let given = config.local_ip.filter(|ip| !ip.is_unspecified());
    if config.interface.is_some() {
        return given;
    }
    given.or_else(|| gateway.and_then(local_towards))
}

/// Our address on the way to `gateway` (a UDP socket connected to it; nothing is sent).
fn local_towards(gateway: Ipv4Addr) -> Option<IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect((gateway, 9)).ok()?;
    Some(s.local_addr().ok()?.ip())
}

enum Lease {
    Upnp {
        gateway: igd_next::aio::Gateway<igd_next::aio::tokio::Tokio>,
        ports: Vec<(igd_next::PortMappingProtocol, u16)>,
        /// Seconds; 0 for a permanent lease.
        lease: u32,
    },
    Pmp(Vec<crab_nat::PortMapping>),
}

/// One mapping of both ports, however made.
struct Mapped {
    lease: Lease,
    gateway: IpAddr,
    external: SocketAddr,
    method: &'static str,
}

async fn map_upnp(config: &MapConfig, local: IpAddr) -> Result<Mapped, String> {
    use igd_next::{AddPortError, PortMappingProtocol};
    let options = igd_next::SearchOptions {
        bind_addr: SocketAddr::new(local, 0),
        timeout: Some(SEARCH_TIMEOUT),
        single_search_timeout: Some(SEARCH_TIMEOUT),
        ..Default::default()
    };
    let gateway = igd_next::aio::tokio::search_gateway(options)
        .await
        .map_err(|e| format!("no UPnP gateway ({e})"))?;
    let external_ip = gateway
        .get_external_ip()
        .await
        .map_err(|e| format!("the UPnP gateway gave no external address ({e})"))?;
    let mut wanted = vec![(PortMappingProtocol::TCP, config.tcp_port)];
    if let Some(u) = config.udp_port {
        wanted.push((PortMappingProtocol::UDP, u));
    }
    let mut lease = LEASE;
    let mut ports = Vec::new();
    for (proto, port) in wanted {
        let local_addr = SocketAddr::new(local, port);
        let mut result = gateway
            .add_port(proto, port, local_addr, lease, "share")
            .await;
        if matches!(result, Err(AddPortError::OnlyPermanentLeasesSupported)) {
            lease = 0;
            result = gateway
                .add_port(proto, port, local_addr, lease, "share")
                .await;
        }
        let external = match result {
            Ok(()) => port,
            // Someone else holds that port: another one.
            Err(AddPortError::PortInUse) => gateway
                .add_any_port(proto, local_addr, lease, "share")
                .await
                .map_err(|e| format!("UPnP mapping of {proto} {port} failed ({e})"))?,
            Err(e) => return Err(format!("UPnP mapping of {proto} {port} failed ({e})")),
        };
        ports.push((proto, external));
    }
    let gateway_ip = gateway.addr.ip();
    Ok(Mapped {
        external: SocketAddr::new(external_ip, ports[0].1),
        lease: Lease::Upnp {
            gateway,
            ports,
            lease,
        },
        gateway: gateway_ip,
        method: "UPnP",
    })
}

async fn map_pmp(config: &MapConfig, gateway: Ipv4Addr, local: IpAddr) -> Result<Mapped, String> {
    use crab_nat::{InternetProtocol, PortMapping, PortMappingOptions, TimeoutConfig};
    let timeouts = TimeoutConfig {
        initial_timeout: Duration::from_millis(250),
        max_retries: 3,
        max_retry_timeout: Some(Duration::from_secs(1)),
    };
    let mut wanted = vec![(InternetProtocol::Tcp, config.tcp_port)];
    if let Some(u) = config.udp_port {
        wanted.push((InternetProtocol::Udp, u));
    }
    let mut maps = Vec::new();
    for (proto, port) in wanted {
        let Some(internal) = NonZeroU16::new(port) else {
            continue;
        };
        let options = PortMappingOptions {
            external_port: Some(internal),
            lifetime_seconds: Some(LEASE),
            timeout_config: Some(timeouts),
        };
        let m = PortMapping::new(IpAddr::V4(gateway), local, proto, internal, options)
            .await
            .map_err(|e| format!("no NAT-PMP or PCP gateway at {gateway} ({e})"))?;
        maps.push(m);
    }
    let first = maps.first().ok_or("nothing to map")?;
    let method = match first.mapping_type() {
        crab_nat::PortMappingType::NatPmp => "NAT-PMP",
        crab_nat::PortMappingType::Pcp { .. } => "PCP",
    };
    let external_ip = match first.mapping_type() {
        crab_nat::PortMappingType::Pcp { external_ip, .. } => external_ip,
        crab_nat::PortMappingType::NatPmp => IpAddr::V4(
            crab_nat::natpmp::external_address(IpAddr::V4(gateway), Some(timeouts))
                .await
                .map_err(|e| format!("the NAT-PMP gateway gave no external address ({e})"))?,
        ),
    };
    Ok(Mapped {
        external: SocketAddr::new(external_ip, first.external_port().get()),
        lease: Lease::Pmp(maps),
        gateway: IpAddr::V4(gateway),
        method,
    })
}

/// Maps both ports through whatever the gateway speaks: UPnP and PCP/NAT-PMP are tried at
/// once (a router that speaks only one answers without waiting for the other's search to
/// time out), the first mapping is kept, and one the other way made later is removed.
async fn map(config: &MapConfig) -> Result<Mapped, String> {
    let gateway =
        gateway_on(config.interface.as_deref()).ok_or_else(|| match &config.interface {
            Some(i) => format!("no default gateway through interface {i}"),
            None => "no default gateway".to_owned(),
        })?;
    let local = local_for(config, Some(gateway)).ok_or("no address towards the gateway")?;
    let (c1, c2) = (config.clone(), config.clone());
    let mut upnp = tokio::spawn(async move { map_upnp(&c1, local).await });
    let mut pmp = tokio::spawn(async move { map_pmp(&c2, gateway, local).await });
    let joined = |r: Result<Result<Mapped, String>, tokio::task::JoinError>| {
        r.unwrap_or_else(|e| Err(e.to_string()))
    };
    let (first, other) = tokio::select! {
        r = &mut upnp => (joined(r), pmp),
        r = &mut pmp => (joined(r), upnp),
    };
    match first {
        Ok(m) => {
            // The other may still map: undo it when it does.
            tokio::spawn(async move {
                if let Ok(Ok(extra)) = other.await {
                    let _ = tokio::time::timeout(REMOVE_TIMEOUT, extra.remove()).await;
                }
            });
            Ok(m)
        }
        Err(e1) => match joined(other.await) {
            Ok(m) => Ok(m),
            Err(e2) => Err(format!("{e1}; {e2}")),
        },
    }
}

impl Mapped {
    /// Renews the leases; an error if the router no longer takes them.
    async fn renew(&mut self, config: &MapConfig, local: IpAddr) -> Result<(), String> {
        match &mut self.lease {
            Lease::Upnp {
                gateway,
                ports,
                lease,
            } => {
                for (i, (proto, external)) in ports.iter().enumerate() {
                    let port = if i == 0 {
                        config.tcp_port
                    } else {
                        config.udp_port.unwrap_or(config.tcp_port)
                    };
                    gateway
                        .add_port(
                            *proto,
                            *external,
                            SocketAddr::new(local, port),
                            *lease,
                            "share",
                        )
                        .await
                        .map_err(|e| e.to_string())?;
                }
                Ok(())
            }
            Lease::Pmp(maps) => {
                for m in maps {
                    m.renew().await.map_err(|e| e.to_string())?;
                }
                Ok(())
            }
        }
    }

    /// How long until the leases must be renewed.
    fn renew_in(&self) -> Duration {
        match &self.lease {
            Lease::Upnp { lease: 0, .. } => RECHECK * 10,
            Lease::Upnp { lease, .. } => Duration::from_secs(*lease as u64 / 2),
            Lease::Pmp(maps) => maps
                .iter()
                .map(|m| Duration::from_secs(m.lifetime() as u64 / 2))
                .min()
                .unwrap_or(RECHECK)
                .max(Duration::from_secs(30)),
        }
    }

    async fn remove(self) {
        match self.lease {
            Lease::Upnp { gateway, ports, .. } => {
                for (proto, port) in ports {
                    let _ = gateway.remove_port(proto, port).await;
                }
            }
            Lease::Pmp(maps) => {
                for m in maps {
                    let _ = m.try_drop().await;
                }
            }
        }
    }
}

/// Maps the session's ports until `shutdown`, keeping `status` current, then removes the
/// mappings. Says the outcome once, and again when it changes.
pub async fn run(
    config: MapConfig,
    status: watch::Sender<Reachability>,
    shutdown: CancellationToken,
) {
    let mut current: Option<Mapped> = None;
    let mut gateway = gateway_on(config.interface.as_deref());
    loop {
        let wait = match &mut current {
            None => {
                let r = match map(&config).await {
                    Ok(m) => {
                        let r = Reachability::Mapped {
                            external: m.external,
                            method: m.method,
                            gateway: m.gateway,
                        };
                        current = Some(m);
                        r
                    }
                    Err(why) => Reachability::Unmapped(why),
                };
                if *status.borrow() != r {
                    tracing::info!("{r}");
                    status.send_replace(r);
                }
                current
                    .as_ref()
                    .map_or(RECHECK, Mapped::renew_in)
                    .min(RECHECK)
            }
            Some(m) => m.renew_in().min(RECHECK),
        };
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
        }
        let now = gateway_on(config.interface.as_deref());
        if now != gateway {
            // Another network: map again there.
            gateway = now;
            if let Some(m) = current.take() {
                let _ = tokio::time::timeout(REMOVE_TIMEOUT, m.remove()).await;
            }
            continue;
        }
        if let Some(m) = &mut current {
            let local = local_for(&config, gateway);
            let renewed = match local {
                Some(l) => m.renew(&config, l).await,
                None => Err("no address towards the gateway".into()),
            };
            if let Err(e) = renewed {
                tracing::info!("port mapping lost ({e}); mapping again");
                current = None;
            }
        }
    }
    if let Some(m) = current {
        let _ = tokio::time::timeout(REMOVE_TIMEOUT, m.remove()).await;
    }
    status.send_replace(Reachability::Unknown);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_gateway_is_read_from_the_routing_table() {
        let table =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
            eth0\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
            eth0\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n";
        assert_eq!(
            gateway_from_table(table, None),
            Some(Ipv4Addr::new(192, 168, 1, 1))
        );
        assert_eq!(gateway_from_table("Iface\n", None), None);
        // Bound to an interface: only its own default route counts.
        assert_eq!(
            gateway_from_table(table, Some("eth0")),
            Some(Ipv4Addr::new(192, 168, 1, 1))
        );
        assert_eq!(gateway_from_table(table, Some("wg0")), None);
    }

    #[test]
    fn the_outcome_reads_as_one_line() {
        let r = Reachability::Mapped {
            external: "203.0.113.7:6881".parse().unwrap(),
            method: "UPnP",
            gateway: "192.168.1.1".parse().unwrap(),
        };
        assert_eq!(
            r.to_string(),
            "reachable at 203.0.113.7:6881 (UPnP on 192.168.1.1)"
        );
    }
}
