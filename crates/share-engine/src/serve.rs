//! `share tracker`: HTTP announce and scrape, and UDP (BEP 15) on the same port, over one
//! bounded [`Registry`].
//!
//! The registry sits behind a mutex because the HTTP handlers and the UDP loop both use it;
//! each use is a short, non-blocking update, never held across an await.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, RawQuery, State};
use axum::routing::get;
use axum::Router;
use share_core::tracker::http::{self as thttp, AnnounceQuery};
use share_core::tracker::registry::{Announced, Limits, Registry};
use share_core::tracker::udp::{Request, Response};
use share_core::tracker::AnnounceReply;
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;

struct Shared {
    registry: Mutex<Registry>,
    started: Instant,
    /// Keys the UDP connection ids, so that they need no state.
    secret: RandomState,
}

impl Shared {
    fn now(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn announce(&self, a: &Announced) -> Result<AnnounceReply, &'static str> {
        let now = self.now();
        self.registry().announce(a, now)
    }

    /// A connection id for the client at `addr`, valid for the current and the next minute.
    /// It is tied to the IP only: clients may announce from a new port each time.
    fn connection_id(&self, addr: &SocketAddr, minute: u64) -> u64 {
        self.secret.hash_one((addr.ip(), minute))
    }

    fn connection_ok(&self, addr: &SocketAddr, id: u64) -> bool {
        let minute = self.now() / 60;
        id == self.connection_id(addr, minute)
            || id == self.connection_id(addr, minute.saturating_sub(1))
    }
}

/// A tracker bound to its TCP and UDP sockets (same port).
pub struct TrackerServer {
    tcp: TcpListener,
    udp: UdpSocket,
    shared: Arc<Shared>,
}

impl TrackerServer {
    pub async fn bind(addr: SocketAddr, limits: Limits) -> std::io::Result<TrackerServer> {
        let tcp = TcpListener::bind(addr).await?;
        let udp = UdpSocket::bind(tcp.local_addr()?).await?;
        Ok(TrackerServer {
            tcp,
            udp,
            shared: Arc::new(Shared {
                registry: Mutex::new(Registry::new(limits)),
                started: Instant::now(),
                secret: RandomState::new(),
            }),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    /// Serves until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) -> std::io::Result<()> {
        let app = Router::new()
            .route("/announce", get(http_announce))
            .route("/scrape", get(http_scrape))
            .with_state(self.shared.clone());
        let expiry = {
            let shared = self.shared.clone();
            let stop = shutdown.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(15));
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tick.tick() => {
                            let now = shared.now();
                            shared.registry().expire(now);
                        }
                    }
                }
            })
        };
        let udp = tokio::spawn(udp_loop(self.udp, self.shared.clone(), shutdown.clone()));
        let stop = shutdown.clone();
        axum::serve(
            self.tcp,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await?;
        let _ = udp.await;
        let _ = expiry.await;
        Ok(())
    }
}

fn announced(q: &AnnounceQuery, ip: IpAddr) -> Announced {
    Announced {
        info_hash: q.info_hash,
        peer_id: q.peer_id,
        addr: SocketAddr::new(ip, q.port),
        left: q.left,
        event: q.event,
        numwant: q.numwant,
    }
}

async fn http_announce(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
) -> Vec<u8> {
    let q = match thttp::parse_announce_query(query.as_deref().unwrap_or("")) {
        Ok(q) => q,
        Err(reason) => return thttp::encode_failure(&reason),
    };
    match shared.announce(&announced(&q, from.ip())) {
        Ok(reply) => thttp::encode_announce_reply(&reply, q.compact),
        Err(reason) => thttp::encode_failure(reason),
    }
}

async fn http_scrape(State(shared): State<Arc<Shared>>, RawQuery(query): RawQuery) -> Vec<u8> {
    let hashes = thttp::parse_scrape_query(query.as_deref().unwrap_or(""));
    let registry = shared.registry();
    let counts: Vec<_> = hashes.iter().map(|h| (*h, registry.scrape(h))).collect();
    thttp::encode_scrape_reply(&counts)
}

async fn udp_loop(socket: UdpSocket, shared: Arc<Shared>, stop: CancellationToken) {
    let mut buf = vec![0u8; 2048];
    loop {
        let (len, from) = tokio::select! {
            _ = stop.cancelled() => return,
            r = socket.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(_) => continue,
            },
        };
        let Some(req) = Request::decode(&buf[..len]) else {
            continue;
        };
        let reply = match req {
            Request::Connect { transaction } => Response::Connect {
                transaction,
                connection: shared.connection_id(&from, shared.now() / 60),
            },
            Request::Announce {
                connection,
                transaction,
                ..
            }
            | Request::Scrape {
                connection,
                transaction,
                ..
            } if !shared.connection_ok(&from, connection) => Response::Error {
                transaction,
                message: "unknown or expired connection id".into(),
            },
            Request::Announce {
                transaction,
                info_hash,
                peer_id,
                left,
                event,
                num_want,
                port,
                ..
            } => {
                let a = Announced {
                    info_hash,
                    peer_id,
                    addr: SocketAddr::new(from.ip(), port),
                    left,
                    event,
                    numwant: u32::try_from(num_want).ok(),
                };
                match shared.announce(&a) {
                    Ok(reply) => Response::Announce { transaction, reply },
                    Err(message) => Response::Error {
                        transaction,
                        message: message.into(),
                    },
                }
            }
            Request::Scrape {
                transaction,
                hashes,
                ..
            } => {
                let registry = shared.registry();
                Response::Scrape {
                    transaction,
                    counts: hashes.iter().map(|h| registry.scrape(h)).collect(),
                }
            }
        };
        let _ = socket.send_to(&reply.encode(from.is_ipv6()), from).await;
    }
}
