//! A torrent task: the one owner of a torrent's picker, peer table and choking. This module
//! is its public face (the commands it takes, the views it gives, how a run ends) and
//! [`run`], which starts it; the parts live in the files below.
//!
//! A torrent runs in up to two phases. One started from a magnet link first fetches its
//! metadata (`magnet.rs`): it connects, speaks the extension protocol and assembles the
//! `info` dictionary with `ut_metadata`. Then, as for a .torrent, it checks the data on disk
//! (`check.rs`) and transfers pieces (`transfer.rs`, with `peers.rs`, `exchange.rs`,
//! `extensions.rs`, `choking.rs`, `handout.rs` for a seed's ledger, `priorities.rs`); the
//! connections made in the first phase carry on into the second. What both phases need
//! (the session's limits, the command and discovery channels, the address book, trackers)
//! is the [`Base`] (`base.rs`).
//!
//! The task reacts to peer events, disk results, commands, peers found by its sources and a
//! one-second tick. It never touches a socket or a file itself: it sends commands to peer
//! writers and jobs to the disk thread, whose queue is bounded, so a slow disk slows the
//! download instead of filling memory.

use std::net::SocketAddr;
use std::sync::Arc;

use share_core::wire::Handshake;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::ctx::{ConnPermit, SessionCtx};
use crate::peer::{self, BoxStream};
use crate::{EngineError, Notice, PeerSource, Source, Stats, TorrentConfig};

mod base;
mod book;
mod check;
mod choking;
mod exchange;
mod extensions;
mod handout;
mod holepunch;
mod magnet;
mod peers;
mod priorities;
mod status;
mod transfer;
mod v2;
mod web;

pub use web::WebSeedInfo;

use base::Base;

/// How a run ended.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    pub complete: bool,
}

/// What the session (or the command line, or the daemon) asks of a torrent.
pub enum TorrentCommand {
    /// A connection for this torrent, its handshake read by the session.
    Incoming {
        stream: BoxStream,
        addr: SocketAddr,
        handshake: Handshake,
        permit: ConnPermit,
        via: peer::Via,
    },
    /// Close every connection and stop announcing, until `Resume`.
    Pause,
    Resume,
    /// The files and how much of each is verified.
    Files(oneshot::Sender<Vec<FileInfo>>),
    /// Everything the daemon's RPC shows about the torrent.
    Status(oneshot::Sender<Status>),
    /// This torrent's own rate limits, in bytes per second (`None`: none).
    SetLimits {
        up: Option<u64>,
        down: Option<u64>,
    },
    /// A reader needs these pieces (a stream): they are fetched first, and the reply comes
    /// once every one of them is verified and on disk.
    Want {
        pieces: std::ops::Range<u32>,
        reply: oneshot::Sender<()>,
    },
    /// Which files to fetch and their priorities (as in `TorrentConfig`).
    SetFiles {
        wanted: Vec<bool>,
        priorities: Vec<i8>,
    },
    /// Fetch pieces in order from now on (true) or rarest first (as `TorrentConfig`).
    SetSequential(bool),
    /// Ask the trackers (no sooner than their minimum interval) and the DHT for peers now.
    Reannounce,
    /// Announce to these tracker tiers from now on (the old ones are told `stopped`).
    SetTrackers(Vec<Vec<String>>),
}

/// A torrent's state in detail, for the daemon's RPC.
#[derive(Debug, Clone, Default)]
pub struct Status {
    pub name: Option<String>,
    pub has_metadata: bool,
    pub piece_count: u32,
    pub piece_length: u32,
    /// Verified pieces, as a BEP 3 bitfield (empty before the metadata).
    pub pieces: Vec<u8>,
    pub peers: Vec<PeerInfo>,
    pub files: Vec<FileInfo>,
    /// Its web seeds (BEP 19), as far as they are in use.
    pub web_seeds: Vec<WebSeedInfo>,
}

/// One connected peer.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    pub addr: SocketAddr,
    /// The client, from its extension handshake (`v`) or its peer id.
    pub client: String,
    pub utp: bool,
    pub encrypted: bool,
    pub outgoing: bool,
    /// The share of the pieces it has, 0 to 1.
    pub progress: f64,
    /// Payload bytes per second from it, and to it.
    pub rate_to_us: u64,
    pub rate_to_peer: u64,
    pub am_choking: bool,
    pub am_interested: bool,
    pub peer_choking: bool,
    pub peer_interested: bool,
}

/// One file of a torrent, for display.
#[derive(Debug, Clone)]
pub struct FileInfo {
    pub path: String,
    pub length: u64,
    /// Bytes of it in verified pieces.
    pub verified: u64,
}

/// What the session gives a torrent task.
pub(crate) struct Inputs {
    pub ctx: Arc<SessionCtx>,
    pub cmds: mpsc::Receiver<TorrentCommand>,
    pub found: mpsc::Receiver<(PeerSource, Vec<SocketAddr>)>,
    pub found_tx: mpsc::Sender<(PeerSource, Vec<SocketAddr>)>,
    pub stats: Arc<Stats>,
    pub notices: mpsc::Sender<Notice>,
    /// Cancelled when the torrent is removed or the session shuts down.
    pub token: CancellationToken,
    /// Where the torrent publishes its metainfo once it has it.
    pub metainfo: tokio::sync::watch::Sender<Option<Arc<share_core::Metainfo>>>,
}

/// Runs a torrent until it is complete (when so configured), removed, or the session ends.
pub(crate) async fn run(
    source: Source,
    config: TorrentConfig,
    io: Inputs,
) -> Result<Outcome, EngineError> {
    // A magnet's peers (`x.pe`) are dialed whether or not its metadata is kept.
    let (magnet_peers, magnet_web_seeds) = match &source {
        Source::Magnet(m) => (m.peers.clone(), m.web_seeds.clone()),
        Source::Torrent(_) => (Vec::new(), Vec::new()),
    };
    // A magnet whose metadata is in the state folder starts as a torrent.
    let source = match source {
        Source::Magnet(m) => match magnet::load_saved(&io.ctx, &m) {
            Some(meta) => Source::Torrent(meta),
            None => Source::Magnet(m),
        },
        s => s,
    };
    let mut base = Base::new(&source, config, io, magnet_peers);
    base.web_seeds = magnet_web_seeds;
    let (meta, handed) = match source {
        Source::Torrent(m) => (m, Vec::new()),
        Source::Magnet(m) => {
            base.stats.set_state(if base.paused {
                crate::State::Paused
            } else {
                crate::State::Metadata
            });
            base.start_trackers();
            match magnet::fetch(&mut base, &m).await {
                Ok(Some(got)) => got,
                Ok(None) => {
                    base.stop_trackers().await;
                    base.sync_uploaded();
                    return Ok(Outcome { complete: false });
                }
                Err(e) => {
                    base.stop_trackers().await;
                    return Err(e);
                }
            }
        }
    };
    transfer::transfer(base, meta, handed).await
}
