//! Runs N of our DHT nodes in one process, for benchmarks and manual tests on loopback.
//!
//! ```text
//! cargo run --release --example dht_node -- --nodes N --net A [--port P]
//!     [--bootstrap IP:PORT]... [--state-dir DIR] [--announce-port P]
//! ```
//! Node i listens on 127.A.i.1:P (P defaults to 6881); node 0 bootstraps from the
//! `--bootstrap` nodes, the others from node 0 and those. Only 127.0.0.0/8 addresses are
//! accepted. Prints `node I IP:PORT` for each, then `ready` once each has 3 nodes in its
//! table (30 s at most). Commands, one a line on standard input:
//!   get_peers HEX [I] [announce]   prints `peers HEX MS ADDR,...` (MS: the lookup's time)
//!   stats [I]                      prints `stats I NODES GOOD LOOKUPS PEERS_FOUND`
//!   quit                           saves the tables (with --state-dir) and exits
//! `SHARE_LOG=debug` logs every lookup.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use share_core::InfoHash;
use share_engine::dht::{spawn_standalone, DhtConfig, DhtHandle};
use tokio::io::{AsyncBufReadExt, BufReader};

struct Args {
    nodes: usize,
    net: u8,
    port: u16,
    bootstrap: Vec<String>,
    state_dir: Option<PathBuf>,
    announce_port: u16,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        nodes: 1,
        net: 70,
        port: 6881,
        bootstrap: Vec::new(),
        state_dir: None,
        announce_port: 7777,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--nodes" => a.nodes = value()?.parse().map_err(|e| format!("--nodes: {e}"))?,
            "--net" => a.net = value()?.parse().map_err(|e| format!("--net: {e}"))?,
            "--port" => a.port = value()?.parse().map_err(|e| format!("--port: {e}"))?,
            "--announce-port" => {
                a.announce_port = value()?
                    .parse()
                    .map_err(|e| format!("--announce-port: {e}"))?
            }
            "--state-dir" => a.state_dir = Some(value()?.into()),
            "--bootstrap" => {
                let b = value()?;
                if !b.starts_with("127.") {
                    return Err(format!("only loopback bootstrap nodes: {b}"));
                }
                a.bootstrap.push(b);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.nodes == 0 || a.nodes > 256 {
        return Err("--nodes: 1 to 256".into());
    }
    Ok(a)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("SHARE_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("dht_node: {e}");
            std::process::exit(2);
        }
    };
    let addr = |i: usize| -> SocketAddr {
        format!("127.{}.{}.1:{}", args.net, i, args.port)
            .parse()
            .unwrap()
    };
    let mut nodes: Vec<DhtHandle> = Vec::new();
    for i in 0..args.nodes {
        let mut config = DhtConfig::new(args.announce_port);
        config.bootstrap = args.bootstrap.clone();
        if i > 0 {
            config.bootstrap.insert(0, addr(0).to_string());
        }
        config.state_file = args
            .state_dir
            .as_ref()
            .map(|d| d.join(format!("dht-{i}.dat")));
        match spawn_standalone(addr(i), config).await {
            Ok(h) => nodes.push(h),
            Err(e) => {
                eprintln!("dht_node: cannot bind {}: {e}", addr(i));
                std::process::exit(4);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (i, n) in nodes.iter().enumerate() {
        println!("node {i} {}", n.local_addr());
    }
    let end = tokio::time::Instant::now() + Duration::from_secs(30);
    'wait: while tokio::time::Instant::now() < end {
        for n in &nodes {
            if n.stats().await.nodes < 3.min(args.nodes - 1 + args.bootstrap.len()) {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue 'wait;
            }
        }
        break;
    }
    println!("ready");

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let words: Vec<&str> = line.split_whitespace().collect();
        let pick = |w: Option<&&str>| {
            w.and_then(|s| s.parse::<usize>().ok())
                .filter(|&i| i < nodes.len())
        };
        match words.first().copied() {
            Some("quit") => break,
            Some("get_peers") => {
                let Some(hash) = words
                    .get(1)
                    .and_then(|h| hex::decode(h).ok())
                    .and_then(|b| <[u8; 20]>::try_from(b).ok())
                else {
                    eprintln!("dht_node: get_peers needs 40 hex digits");
                    continue;
                };
                let i = pick(words.get(2)).unwrap_or(nodes.len() - 1);
                let announce = words.contains(&"announce");
                let r = nodes[i].lookup(InfoHash(hash), announce).await;
                let peers: Vec<String> = r.peers.iter().map(|p| p.to_string()).collect();
                println!(
                    "peers {} {:.1} {}",
                    hex::encode(hash),
                    r.duration.as_secs_f64() * 1000.0,
                    peers.join(",")
                );
            }
            Some("stats") => {
                let i = pick(words.get(1)).unwrap_or(0);
                let s = nodes[i].stats().await;
                println!(
                    "stats {i} {} {} {} {}",
                    s.nodes, s.good_nodes, s.lookups_done, s.peers_found
                );
            }
            Some(other) => eprintln!("dht_node: unknown command {other}"),
            None => {}
        }
    }
    for n in nodes {
        n.shutdown().await;
    }
}
