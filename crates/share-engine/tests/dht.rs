//! The DHT node on real UDP sockets, all on loopback: our nodes finding each other, a restart
//! from the saved table, interop with libtorrent's DHT both ways, and a Sybil flood.
//!
//! Every node binds its own 127.x.y.1 address (a /24 of its own, as honest nodes on the
//! internet have) on an OS-chosen port; nothing ever leaves 127.0.0.0/8: every config names
//! its bootstrap nodes, never the public routers.

#[path = "dht/support.rs"]
mod support;
#[path = "dht/sybil.rs"]
mod sybil;

use std::net::SocketAddr;
use std::time::Duration;

use share_core::InfoHash;
use share_engine::dht::{spawn_standalone, DhtHandle};
use support::*;
use tokio::sync::mpsc;

#[tokio::test]
async fn nodes_on_loopback_find_each_other_and_an_announced_peer() {
    let nodes = start_net(30, 12).await;
    for n in &nodes {
        wait_for(Duration::from_secs(20), || async {
            n.stats().await.nodes >= 4
        })
        .await
        .expect("every node has a table");
    }
    let hash = InfoHash([0x5a; 20]);
    let r = nodes[3].lookup(hash, true).await;
    assert!(r.announced >= 4, "announced to {}", r.announced);

    let (tx, mut rx) = mpsc::channel(16);
    nodes[9].add_torrent(hash, tx);
    let peers = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("peers in time")
        .unwrap();
    let announcer = SocketAddr::new(nodes[3].local_addr().ip(), ANNOUNCE_PORT);
    assert_eq!(peers, vec![announcer]);
    let s = nodes[9].stats().await;
    assert!(s.lookups_started >= 2 && s.peers_found >= 1, "{s:?}");
    stop_all(nodes).await;
}

#[tokio::test]
async fn a_restarted_node_rejoins_from_its_saved_table() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("dht.dat");
    let mut nodes = start_net(10, 13).await;
    for n in &nodes {
        wait_for(Duration::from_secs(20), || async {
            n.stats().await.nodes >= 3
        })
        .await
        .expect("a table");
    }
    // Node 9 with a state file: started, joined, stopped (which saves its table).
    let bootstrap = vec![nodes[0].local_addr().to_string()];
    let nine = spawn_standalone(ip(13, 9, 0), config(bootstrap.clone(), Some(state.clone())))
        .await
        .unwrap();
    wait_for(Duration::from_secs(20), || async {
        nine.stats().await.nodes >= 5
    })
    .await
    .expect("node 9 joined");
    let id = nine.stats().await.id;
    nine.shutdown().await;
    assert!(state.exists(), "the table was saved");

    // The bootstrap node goes away; node 9 comes back with only its saved table.
    nodes.remove(0).shutdown().await;
    let again = spawn_standalone(ip(13, 9, 0), config(bootstrap, Some(state)))
        .await
        .unwrap();
    wait_for(Duration::from_secs(20), || async {
        let s = again.stats().await;
        s.bootstrapped && s.nodes >= 5
    })
    .await
    .expect("rejoined without the bootstrap node");
    assert_eq!(again.stats().await.id, id, "same id as before");
    let r = again.lookup(InfoHash([1; 20]), false).await;
    assert!(r.responded >= 5, "{r:?}");
    again.shutdown().await;
    stop_all(nodes).await;
}

#[tokio::test]
async fn interop_with_libtorrent_both_ways() {
    let mut lt = LtDht::start(5, 52, &[]);
    let ready = lt.wait_line("ready", Duration::from_secs(60));
    assert!(ready.is_some(), "libtorrent's DHT came up");
    let ours = spawn_standalone(
        ip(14, 0, 0),
        config(
            vec!["127.52.0.1:6881".into(), "127.52.2.1:6881".into()],
            None,
        ),
    )
    .await
    .unwrap();
    wait_for(Duration::from_secs(30), || async {
        ours.stats().await.nodes >= 3
    })
    .await
    .expect("libtorrent nodes in our table");

    // A libtorrent seed announces itself; our get_peers finds it.
    lt.send("seed");
    let line = lt
        .wait_line("seeding", Duration::from_secs(20))
        .expect("seeding");
    let words: Vec<&str> = line.split_whitespace().collect();
    let hash = InfoHash(hex::decode(words[1]).unwrap().try_into().unwrap());
    let seed: SocketAddr = words[2].parse().unwrap();
    let found = wait_for(Duration::from_secs(120), || async {
        ours.lookup(hash, false).await.peers.contains(&seed)
    })
    .await;
    assert!(found.is_some(), "our lookup found libtorrent's seed {seed}");
    eprintln!("interop: our get_peers found libtorrent's seed {seed}");

    // We announce; libtorrent's lookup finds us.
    let ours_hash = InfoHash([0xc4; 20]);
    let r = ours.lookup(ours_hash, true).await;
    assert!(r.announced >= 2, "{r:?}");
    let us = SocketAddr::new(ours.local_addr().ip(), ANNOUNCE_PORT);
    let mut seen = false;
    for _ in 0..10 {
        lt.send(&format!("get_peers {}", ours_hash));
        if let Some(line) = lt.wait_line("peers", Duration::from_secs(70)) {
            if line
                .split_whitespace()
                .nth(3)
                .is_some_and(|p| p.split(',').any(|a| a == us.to_string()))
            {
                eprintln!("interop: libtorrent's lookup: {line}");
                seen = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    assert!(seen, "libtorrent's lookup found our announce {us}");
    ours.shutdown().await;
    lt.stop();
}

/// A shorthand so that the handles read as a list.
async fn stop_all(nodes: Vec<DhtHandle>) {
    for n in nodes {
        n.shutdown().await;
    }
}

/// Resident memory of this process, in KiB (Linux).
fn vm_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_sybil_flood_leaves_the_honest_seed_findable() {
    use share_core::dht::lookup::MAX_PEERS;
    use share_core::dht::routing::{subnet, BUCKETS, K, SUBNET_CAP};
    use std::collections::HashMap;
    use std::net::Ipv4Addr;

    let rss_before = vm_rss_kib();
    let honest = start_net(10, 15).await;
    for n in &honest {
        wait_for(Duration::from_secs(20), || async {
            n.stats().await.nodes >= 3
        })
        .await
        .expect("honest tables");
    }
    let hash = InfoHash([0x99; 20]);
    let r = honest[1].lookup(hash, true).await;
    assert!(r.announced >= 3, "{r:?}");
    let seed = SocketAddr::new(honest[1].local_addr().ip(), ANNOUNCE_PORT);

    // 400 fake nodes: 100 on each of four IPs in two /24s; they ping every honest node.
    let ips: Vec<Ipv4Addr> = ["127.66.0.1", "127.66.0.2", "127.67.0.1", "127.67.0.2"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    let honest_addrs: Vec<SocketAddr> = honest.iter().map(|h| h.local_addr()).collect();
    let flood = sybil::Flood::start(&ips, 100, &honest_addrs).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The victim knows twenty fakes and one honest node, and wants the torrent's peers.
    let mut bootstrap: Vec<String> = flood.addrs[..20].iter().map(|a| a.to_string()).collect();
    bootstrap.push(honest_addrs[0].to_string());
    let victim = spawn_standalone(ip(16, 0, 0), config(bootstrap, None))
        .await
        .unwrap();
    let (tx, mut rx) = mpsc::channel(64);
    victim.add_torrent(hash, tx);
    let start = std::time::Instant::now();
    let (mut found, mut bogus) = (false, 0usize);
    while start.elapsed() < Duration::from_secs(30) {
        victim.want_peers(hash);
        match tokio::time::timeout(Duration::from_millis(500), rx.recv()).await {
            Ok(Some(peers)) => {
                found |= peers.contains(&seed);
                bogus += peers.iter().filter(|p| **p != seed).count();
            }
            Ok(None) => break,
            Err(_) => {}
        }
        if found && start.elapsed() > Duration::from_secs(10) {
            break;
        }
    }
    let elapsed = start.elapsed();
    assert!(found, "the honest seed was found through the flood");
    assert!(
        flood.queries.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "the flood was asked"
    );
    // Lookups run at most once a minute, each reporting at most MAX_PEERS peers.
    assert!(bogus <= 2 * MAX_PEERS, "{bogus} bogus peers in {elapsed:?}");

    let (mut worst, mut worst_of) = (0, 0);
    for n in honest.iter().chain(std::iter::once(&victim)) {
        let own = n.stats().await.id.unwrap();
        let table = n.routing_table().await;
        assert!(table.len() <= BUCKETS * K);
        let mut per_bucket: HashMap<(usize, [u8; 9]), usize> = HashMap::new();
        for (id, addr) in table.iter().filter(|(_, a)| flood.addrs.contains(a)) {
            *per_bucket
                .entry((own.common_prefix(id), subnet(addr.ip())))
                .or_default() += 1;
        }
        assert!(
            per_bucket.values().all(|&c| c <= SUBNET_CAP),
            "{per_bucket:?}"
        );
        let fakes: usize = per_bucket.values().sum();
        assert!(fakes <= ips.len(), "one node per IP address: {fakes} fakes");
        worst = worst.max(fakes);
        worst_of = if worst == fakes {
            table.len()
        } else {
            worst_of
        };
        let s = n.stats().await;
        assert!(s.pending <= 512 && s.lookups_active <= 64, "{s:?}");
    }
    let grown_mib = vm_rss_kib().saturating_sub(rss_before) / 1024;
    eprintln!(
        "sybil: seed found; {bogus} bogus peers in {elapsed:?}; at most {worst} fakes in a table (of {worst_of}); \
         {} queries to the flood, {} bogus peers sent; RSS +{grown_mib} MiB",
        flood.queries.load(std::sync::atomic::Ordering::Relaxed),
        flood.bogus_sent.load(std::sync::atomic::Ordering::Relaxed)
    );
    assert!(grown_mib < 64, "memory grew by {grown_mib} MiB");
    flood.stop();
    victim.shutdown().await;
    stop_all(honest).await;
}
