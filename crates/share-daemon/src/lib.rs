#![recursion_limit = "256"]
//! `share daemon`: one session of many torrents, kept across restarts, driven through the
//! Transmission RPC (so transmission-remote, media managers and remote GUIs work with it),
//! with a web page of its own and HTTP streaming of files while they download.
//!
//! - [`registry`]: the daemon's torrents (ids, folders, labels, file choices, limits,
//!   seeding goals, totals) and what it does to them through the session.
//! - [`owner`]: the one task that holds the registry and runs what is asked of it.
//! - [`ops`]: what takes time (stopping, moving, deleting, fetching), done around it.
//! - [`saved`]: that list, kept in the state folder (written atomically; a damaged file is
//!   reported and rebuilt from the kept .torrent files).
//! - [`queue`]: the download and seed queues (Transmission's, which qBittorrent's API
//!   drives too).
//! - [`rpc`]: the Transmission RPC methods (rpc-version 17).
//! - [`qbt`]: qBittorrent's WebUI API v2 (WebAPI 2.11) over the same torrents.
//! - [`http`]: the HTTP server: the RPC endpoint with its session-id exchange, basic auth,
//!   `Host` checks and bounded bodies; the page; streaming.
//! - [`stream`]: files served with HTTP ranges while they download.
//! - [`watch`]: a folder whose new .torrent and .magnet files are added.
//! - [`turtle`]: the schedule of the alternative rate limits.
//! - [`paths`]: the only place RPC arguments become paths, kept inside the folders given.
//! - [`blocklist`]: the `--blocklist` lists and the one `blocklist-update` fetches.

pub mod blocklist;
pub mod http;
pub mod ops;
pub mod owner;
pub mod paths;
pub mod qbt;
pub mod queue;
pub mod registry;
pub mod rpc;
pub mod saved;
pub mod stream;
pub mod turtle;
pub mod watch;
mod web;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use share_engine::{Session, TorrentConfig};
use tokio_util::sync::CancellationToken;

pub use registry::Registry;

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Where the RPC, the page and streams are served.
    pub rpc: SocketAddr,
    /// HTTP basic auth for all of them (required when `rpc` is not on loopback).
    pub auth: Option<(String, String)>,
    /// The folder torrents download into; every folder an RPC call names must be inside it.
    pub download_dir: PathBuf,
    /// What outlives a run: the torrent list, the .torrent files, resume data.
    pub state_dir: PathBuf,
    /// A folder whose .torrent and .magnet files are added as they appear.
    pub watch: Option<PathBuf>,
    /// Host names the RPC answers to besides its own address and `localhost` (DNS
    /// rebinding: a page on another site that points its name at us is refused).
    pub host_names: Vec<String>,
    /// Settings for each torrent the daemon adds (peer limits, upload slots).
    pub torrent: TorrentConfig,
    /// How the session was started, for `session-get`.
    pub session: SessionSettings,
    /// `--blocklist` lists (files or URLs), read at start and at each `blocklist-update`.
    pub blocklists: Vec<String>,
}

/// How the session was started, for `session-get` (what can change while it runs, PEX,
/// LSD, µTP and encryption, is asked of the session itself).
#[derive(Debug, Clone)]
pub struct SessionSettings {
    pub dht: bool,
    pub tcp: bool,
    /// UPnP / NAT-PMP / PCP port mapping.
    pub port_mapping: bool,
    pub peer_limit_global: usize,
    /// Bytes per second, all torrents together.
    pub max_upload_rate: Option<u64>,
    pub max_download_rate: Option<u64>,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            dht: true,
            tcp: true,
            port_mapping: false,
            peer_limit_global: 500,
            max_upload_rate: None,
            max_download_rate: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("the RPC address {0} is not on loopback: give --rpc-auth USER:PASS to serve it there")]
    NeedsAuth(SocketAddr),
    #[error("serving the RPC on {addr}: {error}")]
    Bind {
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Blocklist(String),
}

/// A started daemon: its RPC socket is bound and its torrents are back.
pub struct Daemon {
    listener: tokio::net::TcpListener,
    state: Arc<http::AppState>,
    owner: tokio::task::JoinHandle<Registry>,
    stop_owner: CancellationToken,
}

impl Daemon {
    /// Binds the RPC socket and brings back the torrents of the last run.
    pub async fn start(session: Session, mut config: DaemonConfig) -> Result<Daemon, DaemonError> {
        if config.auth.is_none() && !config.rpc.ip().is_loopback() {
            return Err(DaemonError::NeedsAuth(config.rpc));
        }
        let listener = tokio::net::TcpListener::bind(config.rpc)
            .await
            .map_err(|error| DaemonError::Bind {
                addr: config.rpc,
                error,
            })?;
        std::fs::create_dir_all(&config.download_dir)?;
        std::fs::create_dir_all(&config.state_dir)?;
        // Absolute from here on: clients show these paths and send them back.
        config.download_dir = std::fs::canonicalize(&config.download_dir)?;
        config.state_dir = std::fs::canonicalize(&config.state_dir)?;
        let root = share_storage::root::Root::open(&config.download_dir, session.links(), true)
            .map_err(|e| DaemonError::Io(std::io::Error::other(e.to_string())))?;
        // The lists before the torrents: no blocked peer gets in first. One that cannot be
        // read stops the start, with its name.
        let lists = Arc::new(blocklist::Lists::new(
            config.blocklists.clone(),
            &config.state_dir,
        ));
        lists
            .reload(&session, true)
            .await
            .map_err(DaemonError::Blocklist)?;
        let registry =
            Registry::restore(session.clone(), &config, Arc::new(root), lists.clone()).await;
        if !registry.settings.blocklist_enabled {
            lists.enable(&session, false);
        }
        let stop_owner = CancellationToken::new();
        let (handle, owner) = owner::spawn(registry, config.watch.clone(), stop_owner.clone());
        let state = Arc::new(http::AppState::new(handle, &config, listener.local_addr()?));
        Ok(Daemon {
            listener,
            state,
            owner,
            stop_owner,
        })
    }

    pub fn rpc_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| self.state.bound)
    }

    /// Serves until `stop`; then stops every torrent and saves the torrent list.
    pub async fn run(self, stop: impl std::future::Future<Output = ()> + Send + 'static) {
        let watch = self
            .state
            .watch
            .clone()
            .map(|dir| watch::spawn(self.state.registry.clone(), dir));
        http::serve(self.listener, self.state, stop).await;
        if let Some(w) = watch {
            w.abort();
        }
        self.stop_owner.cancel();
        if let Ok(mut registry) = self.owner.await {
            registry.shutdown().await;
        }
    }
}
