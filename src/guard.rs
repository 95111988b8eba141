//! `SHARE_LOOPBACK_ONLY=1`: a promise that nothing leaves this machine, which the test
//! harness and the benchmarks make for every process they start. With it, `seed`, `fetch`
//! and `daemon` refuse to start with local service discovery on (it multicasts on the
//! network), with a DHT that would bootstrap from anything but loopback nodes, or with
//! port mapping on (it talks to the router), and the engine dials no address outside
//! 127.0.0.0/8 and ::1.

use anyhow::{bail, Result};

use crate::cli::DiscoveryArgs;

pub fn loopback_only() -> bool {
    std::env::var("SHARE_LOOPBACK_ONLY").as_deref() == Ok("1")
}

fn is_loopback(node: &str) -> bool {
    if let Ok(a) = node.parse::<std::net::SocketAddr>() {
        return a.ip().is_loopback();
    }
    node.rsplit_once(':')
        .is_some_and(|(host, _)| host.eq_ignore_ascii_case("localhost"))
}

/// Refuses discovery settings that would reach beyond this machine under the promise;
/// `mapping`: port mapping would run.
pub fn check(d: &DiscoveryArgs, mapping: bool) -> Result<()> {
    if !loopback_only() {
        return Ok(());
    }
    if mapping {
        bail!("SHARE_LOOPBACK_ONLY=1: port mapping talks to the router; pass --no-port-mapping");
    }
    if !d.no_lsd {
        bail!("SHARE_LOOPBACK_ONLY=1: local service discovery multicasts on the network; pass --no-lsd");
    }
    if !d.no_dht {
        if d.dht_bootstrap.is_empty() {
            bail!("SHARE_LOOPBACK_ONLY=1: the DHT would bootstrap from public nodes; pass --no-dht or a loopback --dht-bootstrap");
        }
        if let Some(n) = d.dht_bootstrap.iter().find(|n| !is_loopback(n)) {
            bail!("SHARE_LOOPBACK_ONLY=1: the DHT bootstrap node {n} is not on loopback");
        }
    }
    Ok(())
}
