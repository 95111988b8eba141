//! A hostile crowd on real sockets: hundreds of fake DHT nodes on a few loopback IPs. Each
//! answers every query with an id and eight fake nodes right next to the target, fifty bogus
//! peers and a token; at start each pings the nodes it is told to, to get into their tables.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use share_core::dht::krpc::{Kind, Message, Method, NodeInfo, Query, Response};
use share_core::dht::{NodeId, Rng};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

pub struct Flood {
    pub addrs: Vec<SocketAddr>,
    pub bogus_sent: Arc<AtomicUsize>,
    pub queries: Arc<AtomicUsize>,
    tasks: Vec<JoinHandle<()>>,
}

/// An id right next to `target` (its last bytes changed).
fn near(target: &NodeId, rng: &mut Rng) -> NodeId {
    let mut id = target.0;
    id[19] ^= 1 + rng.below(255) as u8;
    id[18] ^= rng.below(4) as u8;
    NodeId(id)
}

impl Flood {
    pub async fn start(ips: &[Ipv4Addr], per_ip: usize, poke: &[SocketAddr]) -> Flood {
        let mut sockets = Vec::new();
        for ip in ips {
            for _ in 0..per_ip {
                let s = UdpSocket::bind(SocketAddr::new(IpAddr::V4(*ip), 0))
                    .await
                    .unwrap();
                sockets.push(Arc::new(s));
            }
        }
        let addrs: Arc<Vec<SocketAddr>> =
            Arc::new(sockets.iter().map(|s| s.local_addr().unwrap()).collect());
        let bogus_sent = Arc::new(AtomicUsize::new(0));
        let queries = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for (k, s) in sockets.into_iter().enumerate() {
            let mut rng = Rng::new([k as u8; 32]);
            for to in poke {
                let q = Message {
                    tid: vec![k as u8, 0],
                    kind: Kind::Query(Query {
                        id: NodeId::random(&mut rng),
                        method: Method::Ping,
                    }),
                    ip: None,
                    read_only: false,
                };
                let _ = s.send_to(&q.encode(), to).await;
            }
            let (addrs, bogus, queries) = (addrs.clone(), bogus_sent.clone(), queries.clone());
            tasks.push(tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                loop {
                    let Ok((n, from)) = s.recv_from(&mut buf).await else {
                        continue;
                    };
                    let Ok(m) = Message::decode(&buf[..n]) else {
                        continue;
                    };
                    let Kind::Query(q) = m.kind else { continue };
                    queries.fetch_add(1, Ordering::Relaxed);
                    let target = match q.method {
                        Method::FindNode { target, .. } => target,
                        Method::GetPeers { info_hash, .. } => info_hash,
                        _ => q.id,
                    };
                    let nodes = (0..8)
                        .map(|_| NodeInfo {
                            id: near(&target, &mut rng),
                            addr: addrs[rng.below(addrs.len())],
                        })
                        .collect();
                    let values: Vec<SocketAddr> = (0..50)
                        .map(|_| {
                            let r = rng.next_u64();
                            SocketAddr::new(
                                IpAddr::V4(Ipv4Addr::new(127, 250, r as u8, (r >> 8) as u8)),
                                1 + (r >> 16) as u16 % 60000,
                            )
                        })
                        .collect();
                    bogus.fetch_add(values.len(), Ordering::Relaxed);
                    let r = Message {
                        tid: m.tid,
                        kind: Kind::Response(Response {
                            id: Some(near(&target, &mut rng)),
                            nodes,
                            nodes6: vec![],
                            values,
                            token: Some(b"sybil".to_vec()),
                        }),
                        ip: Some(from),
                        read_only: false,
                    };
                    let _ = s.send_to(&r.encode(), from).await;
                }
            }));
        }
        Flood {
            addrs: addrs.to_vec(),
            bogus_sent,
            queries,
            tasks,
        }
    }

    pub fn stop(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}
