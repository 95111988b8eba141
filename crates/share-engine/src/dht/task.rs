//! The node task: one loop that owns the sans-IO node and feeds it packets, commands and
//! timeouts, then sends what it wants sent and routes what it found.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant as StdInstant;

use bytes::Bytes;
use rand::RngCore;
use share_core::dht::{Event, LookupId, Node};
use share_core::InfoHash;
use tokio::sync::{mpsc, oneshot};

use crate::blocks::Blocks;
use crate::egress::{Egress, Udp};
use tokio::time::Instant;

use super::{Command, DhtConfig, LookupResult, MAX_STATE_FILE, SAVE_EVERY};

/// Good nodes in the table before the first save is brought forward.
const FIRST_SAVE_AT: usize = 8;
/// How soon after that the first save comes.
const FIRST_SAVE_AFTER: std::time::Duration = std::time::Duration::from_secs(20);

/// The clock the node sees: tokio's, so that tests with a paused clock drive it too.
fn now() -> StdInstant {
    Instant::now().into_std()
}

/// A one-off lookup someone is waiting for.
struct Waiting {
    reply: oneshot::Sender<LookupResult>,
    peers: Vec<SocketAddr>,
}

pub(super) async fn run(
    socket: Arc<Udp>,
    mut packets: mpsc::Receiver<(Bytes, SocketAddr)>,
    mut cmds: mpsc::Receiver<Command>,
    config: DhtConfig,
) {
    let local = Some(socket.local_addr());
    let mut core = config.node.clone();
    core.ipv6 = local.is_some_and(|a| a.is_ipv6());
    // A socket bound to one address knows it: our id follows it (BEP 42) and lookups of our
    // own torrents can name us.
    let bound = local.map(|a| a.ip()).filter(|ip| !ip.is_unspecified());
    core.external_ip = config.external_ip.or(core.external_ip).or(bound);
    core.bootstrap = resolve(&config.bootstrap, core.ipv6, config.egress.as_deref()).await;
    let mut seed = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut seed);
    let mut node = Node::new(seed, core, now());
    if let Some(path) = &config.state_file {
        load(&mut node, path);
    }
    tracing::debug!(id = %node.id(), addr = ?local, bootstrap = config.bootstrap.len(), "dht: node started");

    let mut torrents: HashMap<InfoHash, mpsc::Sender<Vec<SocketAddr>>> = HashMap::new();
    let mut waiting: HashMap<LookupId, Waiting> = HashMap::new();
    let mut next_save = Instant::now() + SAVE_EVERY;
    // The first save comes soon after the table has filled, so that even a process killed
    // early restarts from it.
    let mut saved_once = false;
    let mut shutdown: Option<oneshot::Sender<()>> = None;

    loop {
        flush(&mut node, &socket, &config.blocks).await;
        route_events(
            &mut node,
            &torrents,
            &mut waiting,
            config.external.as_deref(),
        );
        let wake = node
            .next_timeout()
            .map(Instant::from_std)
            .unwrap_or(next_save)
            .min(next_save);
        // Timers first, so that a stream of packets cannot starve timeouts.
        tokio::select! {
            biased;
            _ = tokio::time::sleep_until(wake) => {
                node.tick(now());
                if !saved_once && node.stats(now()).good_nodes >= FIRST_SAVE_AT {
                    saved_once = true;
                    next_save = next_save.min(Instant::now() + FIRST_SAVE_AFTER);
                }
                if Instant::now() >= next_save {
                    next_save = Instant::now() + SAVE_EVERY;
                    if let Some(path) = &config.state_file {
                        save(&node, path);
                    }
                }
            }
            cmd = cmds.recv() => match cmd {
                None => break,
                Some(Command::Shutdown(ack)) => {
                    shutdown = Some(ack);
                    break;
                }
                Some(cmd) => command(&mut node, cmd, &config, &mut torrents, &mut waiting),
            },
            pkt = packets.recv() => match pkt {
                None => break,
                // A blocked node is neither answered nor learned from.
                Some((bytes, from)) if !config.blocks.contains(from.ip()) => {
                    node.handle_packet(from, &bytes, now())
                }
                Some(_) => {}
            },
        }
    }
    flush(&mut node, &socket, &config.blocks).await;
    if let Some(path) = &config.state_file {
        save(&node, path);
    }
    tracing::debug!(id = %node.id(), "dht: node stopped");
    if let Some(ack) = shutdown {
        let _ = ack.send(());
    }
}

fn command(
    node: &mut Node,
    cmd: Command,
    config: &DhtConfig,
    torrents: &mut HashMap<InfoHash, mpsc::Sender<Vec<SocketAddr>>>,
    waiting: &mut HashMap<LookupId, Waiting>,
) {
    let t = now();
    match cmd {
        Command::AddTorrent(h, peers) => {
            if node.add_torrent(h, Some(config.port_for_announce), t) {
                torrents.insert(h, peers);
            }
        }
        Command::RemoveTorrent(h) => {
            node.remove_torrent(&h);
            torrents.remove(&h);
        }
        Command::WantPeers(h) => {
            node.want_peers(&h, t);
        }
        Command::AddNode(addr) => node.add_node(addr, t),
        Command::SetExternal(ip) => node.set_external(ip, t),
        Command::Lookup {
            info_hash,
            announce,
            reply,
        } => {
            let port = announce.then_some(config.port_for_announce);
            let lid = node.get_peers(info_hash, port, t);
            waiting.insert(
                lid,
                Waiting {
                    reply,
                    peers: Vec::new(),
                },
            );
        }
        Command::Stats(reply) => {
            let _ = reply.send(node.stats(t));
        }
        Command::Table(reply) => {
            let _ = reply.send(node.table().iter().map(|e| (e.id, e.addr)).collect());
        }
        Command::Shutdown(_) => {}
    }
}

async fn flush(node: &mut Node, socket: &Udp, blocks: &Blocks) {
    while let Some((to, bytes)) = node.poll_transmit() {
        if blocks.contains(to.ip()) {
            continue;
        }
        if let Err(e) = socket.send_to(&bytes, to).await {
            tracing::trace!(%to, error = %e, "dht: send failed");
        }
    }
}

fn route_events(
    node: &mut Node,
    torrents: &HashMap<InfoHash, mpsc::Sender<Vec<SocketAddr>>>,
    waiting: &mut HashMap<LookupId, Waiting>,
    external: Option<&crate::external::External>,
) {
    while let Some(e) = node.poll_event() {
        match e {
            Event::LookupStarted {
                lookup,
                target,
                get_peers,
                seeds,
            } => {
                tracing::debug!(lookup = lookup.0, %target, get_peers, seeds, "dht: lookup started");
            }
            Event::PeersFound {
                lookup,
                info_hash,
                peers,
            } => {
                if let Some(w) = waiting.get_mut(&lookup) {
                    w.peers.extend_from_slice(&peers);
                }
                if let Some(tx) = torrents.get(&info_hash) {
                    let _ = tx.try_send(peers);
                }
            }
            Event::LookupDone {
                lookup,
                target,
                get_peers,
                peers,
                queried,
                responded,
                announced,
                duration,
                ..
            } => {
                tracing::debug!(
                    lookup = lookup.0, %target, get_peers, peers, queried, responded, announced,
                    ms = duration.as_millis() as u64,
                    "dht: lookup done"
                );
                if let Some(w) = waiting.remove(&lookup) {
                    let _ = w.reply.send(LookupResult {
                        peers: w.peers,
                        queried,
                        responded,
                        announced,
                        duration,
                    });
                }
            }
            Event::Bootstrapped { nodes } => tracing::debug!(nodes, "dht: bootstrapped"),
            Event::IdChanged { id, ip } => {
                tracing::debug!(%id, %ip, "dht: new id for our external address");
                if let Some(e) = external {
                    e.dht(ip);
                }
            }
        }
    }
}

/// Resolves `host:port` strings to addresses of our family; failures are logged and skipped.
async fn resolve(hosts: &[String], ipv6: bool, egress: Option<&Egress>) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for h in hosts {
        let got = match (egress, h.rsplit_once(':')) {
            (Some(e), Some((host, port))) => match port.parse::<u16>() {
                Ok(port) => e.resolve(host, port).await,
                Err(_) => Err(std::io::Error::other("no port")),
            },
            _ => tokio::net::lookup_host(h.as_str())
                .await
                .map(|a| a.collect()),
        };
        match got {
            Ok(addrs) => out.extend(addrs.into_iter().filter(|a| a.is_ipv6() == ipv6)),
            Err(e) if egress.is_some_and(|e| e.is_proxied()) => {
                tracing::warn!(target: "share_engine::egress", host = %h, error = %e, "dht: bootstrap node skipped (under a proxy, give nodes by address)")
            }
            Err(e) => tracing::debug!(host = %h, error = %e, "dht: bootstrap node not resolved"),
        }
    }
    out
}

fn load(node: &mut Node, path: &Path) {
    match share_storage::state::read_state(path, MAX_STATE_FILE) {
        Ok(Some(bytes)) => match node.load(&bytes, now()) {
            Ok(n) => tracing::debug!(nodes = n, path = %path.display(), "dht: table loaded"),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "dht: saved table ignored")
            }
        },
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "dht: saved table not read"),
    }
}

fn save(node: &Node, path: &Path) {
    if let Err(e) = share_storage::state::write_state(path, &node.save(now())) {
        tracing::warn!(error = %e, "dht: table not saved");
    }
}
