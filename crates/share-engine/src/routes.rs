//! The routes to a session's torrents: for each info-hash, the torrent's command and
//! discovery channels and whether it is private. The session task owns the torrent table and
//! publishes a snapshot of these in a watch channel; the acceptor (to hand a connection to
//! the torrent its handshake names) and local service discovery (to hand a torrent the
//! peers announced for it) read the snapshot, and nothing else shares the table.
//!
//! It sits between the session and the torrents: it names a torrent's command type, and
//! knows nothing of the session.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use share_core::InfoHash;
use tokio::sync::mpsc;

use crate::torrent::TorrentCommand;
use crate::PeerSource;

/// A torrent's entry points, as the acceptor and the discovery services see them.
#[derive(Clone)]
pub(crate) struct Route {
    pub cmd: mpsc::Sender<TorrentCommand>,
    pub found: mpsc::Sender<(PeerSource, Vec<SocketAddr>)>,
    pub private: bool,
}

/// The torrents by info-hash, and by MSE's SKEY hash (HASH('req2', info-hash)), for an
/// encrypted connection that names its torrent only that way.
#[derive(Default)]
pub(crate) struct RouteTable {
    pub torrents: HashMap<InfoHash, Route>,
    pub skeys: HashMap<[u8; 20], InfoHash>,
}

pub(crate) type Routes = Arc<RouteTable>;
