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
