//! The metadata phase of a torrent started from a magnet link: connect to peers, ask those
//! that offer it for the `info` dictionary (BEP 9), check it against the info-hash and the
//! same strict rules as a .torrent file, and keep it in the state folder so that a re-run
//! does not fetch it again.
//!
//! The connections made here carry on into the transfer. What they send meanwhile (their
//! bitfield, haves, choking) is held, at most [`MAX_HELD`] messages each, and taken by the
//! transfer phase once it knows the piece count. A peer that claims an oversized
//! `metadata_size`, or sends pieces that do not fit, is banned; one whose pieces made a
//! dictionary that fails the hash is banned once it is known to be the liar (see
//! `share_core::metadata`).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use share_core::ext::{ExtHandshake, Extension};
use share_core::metadata::{MetadataFetch, MetadataMsg, Progress};
use share_core::pex::{self, PexMessage};
use share_core::picker::PeerKey;
use share_core::wire::Message;
use share_core::{Magnet, Metainfo};
use tokio::time::Instant;

use super::base::Base;
use super::{Status, TorrentCommand};
use crate::ctx::SessionCtx;
use crate::peer::{CloseReason, Event, Link};
use crate::{EngineError, Notice, PeerSource};

/// Largest metadata file read back from the state folder (the metadata cap plus trackers).
const MAX_METADATA_FILE: u64 = share_core::metadata::MAX_METADATA as u64 + (1 << 20);
/// Messages held per connection until the metadata is here.
const MAX_HELD: usize = 4096;

/// A connection made during the metadata phase.
pub(super) struct Connected {
    pub link: Link,
    pub outgoing: bool,
    pub ext: ExtHandshake,
    pub held: Vec<Message>,
    pub pex_in: pex::Inbox,
}

impl std::ops::Deref for Connected {
    type Target = Link;

    fn deref(&self) -> &Link {
        &self.link
    }
}

/// The metadata kept from an earlier run, if it is there and is what the link names.
pub(super) fn load_saved(ctx: &SessionCtx, magnet: &Magnet) -> Option<Metainfo> {
    let path = ctx.metadata_path(&magnet.info_hash);
    let bytes = share_storage::state::read_state(&path, MAX_METADATA_FILE).ok()??;
    match Metainfo::from_bytes(&bytes) {
        Ok(mut meta) if same_torrent(&meta.hashes, &magnet.hashes) => {
            for url in &magnet.trackers {
                if !meta.trackers.iter().flatten().any(|u| u == url) {
                    meta.trackers.push(vec![url.clone()]);
                }
            }
            tracing::debug!(path = %path.display(), "metadata read from the state folder");
            Some(meta)
        }
        _ => {
            tracing::warn!(path = %path.display(), "ignoring a damaged metadata file");
            None
        }
    }
}

/// Whether every hash the link names is the torrent's.
fn same_torrent(meta: &share_core::InfoHashes, link: &share_core::InfoHashes) -> bool {
    link.v1.is_none_or(|h| meta.v1 == Some(h))
        && link.v2.is_none_or(|h| meta.v2 == Some(h))
        && (link.v1.is_some() || link.v2.is_some())
}

struct Fetching<'a> {
    base: &'a mut Base,
    /// The link's display name, until the metadata names the torrent.
    name: Option<String>,
    fetch: MetadataFetch,
    peers: HashMap<PeerKey, Connected>,
    done: Option<Vec<u8>>,
}

/// Fetches the metadata. `None` if the torrent was stopped first.
pub(super) async fn fetch(
    base: &mut Base,
    magnet: &Magnet,
) -> Result<Option<(Metainfo, Vec<(PeerKey, Connected)>)>, EngineError> {
    let hash = magnet.info_hash;
    let mut f = Fetching {
        base,
        name: magnet.name.clone(),
        fetch: MetadataFetch::of(magnet.hashes),
        peers: HashMap::new(),
        done: None,
    };
    f.dial();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    while f.done.is_none() {
        tokio::select! {
            _ = f.base.token.cancelled() => {
                for p in f.peers.values() {
                    p.token.cancel();
                }
                return Ok(None);
            }
            Some((key, ev)) = f.base.events.recv() => f.on_event(key, ev),
            Some(c) = f.base.cmds.recv() => f.on_command(c),
            Some((source, addrs)) = f.base.found.recv() => {
                f.base.add_found(source, addrs);
                f.dial();
            }
            _ = tick.tick() => f.on_tick(),
        }
    }
    let bytes = f.done.take().unwrap_or_default();
    let meta = match Metainfo::from_info_bytes(&bytes, f.base.tiers.clone()) {
        Ok(m) => m,
        Err(e) => {
            for p in f.peers.values() {
                p.token.cancel();
            }
            return Err(EngineError::BadMetadata {
                hash,
                reason: e.to_string(),
            });
        }
    };
    // A hybrid found through one of its hashes: the session routes the other to it too.
    f.base.hashes = meta.hashes;
    let _ = f
        .base
        .ctx
        .news
        .try_send(crate::ctx::TorrentNews::Hashes(hash, meta.hashes));
    let path = f.base.ctx.metadata_path(&hash);
    if let Err(e) = share_storage::state::write_state(&path, &meta.to_torrent_bytes()) {
        f.base.notice(Notice::Warning(format!(
            "could not keep the metadata in the state folder: {e}"
        )));
    }
    f.base.notice(Notice::Metadata {
        name: meta.info.name.clone(),
        total: meta.info.total_length,
        pieces: meta.info.piece_count(),
    });
    tracing::debug!(%hash, bytes = bytes.len(), peers = f.peers.len(), "metadata received");
    if meta.info.private {
        f.base.set_private(true);
    }
    let handed = f.peers.drain().collect();
    Ok(Some((meta, handed)))
}

impl Fetching<'_> {
    fn dial(&mut self) {
        let connected: HashSet<SocketAddr> = self
            .peers
            .values()
            .flat_map(|p| {
                std::iter::once(p.addr)
                    .chain(p.ext.port.map(|port| SocketAddr::new(p.addr.ip(), port)))
            })
            .collect();
        let n = self.peers.len();
        self.base.dial(&connected, n, false);
    }

    fn on_tick(&mut self) {
        self.base.rates.tick(&self.base.stats);
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for k in keys {
            self.ask(k);
        }
        self.dial();
        let (got, size) = self.fetch.progress();
        self.base.stats.checked.store(got as u64, Ordering::Relaxed);
        if let Some(size) = size {
            tracing::trace!(got, size, "metadata progress");
        }
        if self.peers.is_empty() && self.base.dialing.is_empty() {
            self.base.ask_for_peers();
        }
    }

    fn on_command(&mut self, c: TorrentCommand) {
        match c {
            TorrentCommand::Incoming {
                stream,
                addr,
                handshake,
                permit,
                via,
            } => {
                let n = self.peers.len();
                self.base.admit(stream, addr, handshake, permit, via, n);
            }
            TorrentCommand::Pause => {
                self.base.paused = true;
                self.base.stats.set_state(crate::State::Paused);
                for p in self.peers.values() {
                    p.token.cancel();
                }
            }
            TorrentCommand::Resume => {
                self.base.paused = false;
                self.base.stats.set_state(crate::State::Metadata);
                self.base.start_trackers();
                self.dial();
            }
            TorrentCommand::Files(reply) => {
                let _ = reply.send(Vec::new());
            }
            TorrentCommand::SetLimits { up, down } => self.base.set_limits(up, down),
            // Nothing can be waited for before the metadata (the reader asks again).
            TorrentCommand::Want { .. } => {}
            // Kept for when the metadata is here (the file list is not known before).
            TorrentCommand::SetFiles { wanted, priorities } => {
                self.base.config.wanted = wanted;
                self.base.config.priorities = priorities;
            }
            TorrentCommand::SetSequential(on) => self.base.config.sequential = on,
            TorrentCommand::SetTrackers(tiers) => self.base.set_trackers(tiers),
            TorrentCommand::Reannounce => {
                if !self.base.paused {
                    self.base.ask_for_peers();
                }
            }
            TorrentCommand::Status(reply) => {
                let _ = reply.send(Status {
                    name: self.name.clone(),
                    ..Status::default()
                });
            }
        }
    }

    fn on_event(&mut self, key: PeerKey, ev: Event) {
        match ev {
            Event::Connected(link) => {
                let (addr, handshake, token) = (link.addr, link.handshake, link.token.clone());
                let outgoing = self.base.dialing.remove(&key).is_some();
                if outgoing {
                    self.base.book.worked(&addr);
                }
                let duplicate = self
                    .peers
                    .values()
                    .any(|p| p.handshake.peer_id == handshake.peer_id);
                if duplicate
                    || self.base.book.is_banned(&addr, Some(&handshake.peer_id))
                    || self.peers.len() >= self.base.config.max_peers
                {
                    token.cancel();
                    return;
                }
                let via = link.via;
                let c = Connected {
                    link,
                    outgoing,
                    ext: ExtHandshake::default(),
                    held: Vec::new(),
                    pex_in: pex::Inbox::default(),
                };
                if handshake.supports_extensions() {
                    c.send(self.base.ext_handshake(addr, None));
                }
                if handshake.supports_fast() {
                    c.send(Message::HaveNone);
                }
                if let Some(m) = self.base.port_message(&handshake) {
                    c.send(m);
                }
                tracing::debug!(%addr, %via, "connected (fetching metadata)");
                self.peers.insert(key, c);
                self.base
                    .stats
                    .peers
                    .store(self.peers.len(), Ordering::Relaxed);
            }
            Event::Closed(reason) => {
                tracing::debug!(
                    reason = reason.to_string(),
                    "connection closed (fetching metadata)"
                );
                self.base.dial_ended(key, &reason);
                if let Some(p) = self.peers.remove(&key) {
                    self.base.book.closed(&p.addr, Instant::now());
                }
                self.fetch.remove_peer(key);
                self.base
                    .stats
                    .peers
                    .store(self.peers.len(), Ordering::Relaxed);
            }
            Event::Messages(batch, _permit) => {
                for m in batch {
                    match self.peers.get(&key) {
                        Some(p) if !p.token.is_cancelled() => {}
                        _ => break,
                    }
                    if self.done.is_some() && !matches!(m, Message::Extended { .. }) {
                        // Metadata complete: the rest is for the transfer.
                        if let Some(p) = self.peers.get_mut(&key) {
                            p.held.push(m);
                        }
                        continue;
                    }
                    self.on_message(key, m);
                }
            }
        }
    }

    fn on_message(&mut self, key: PeerKey, m: Message) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        match m {
            Message::Extended { id: 0, payload } => {
                let Ok(h) = ExtHandshake::parse(&payload) else {
                    return;
                };
                if let Some(ip) = h.yourip {
                    self.base.ctx.external.vote(p.addr.ip(), ip);
                }
                p.ext.update(h);
                if p.ext.metadata_id.is_some() {
                    if let Err(refusal) = self.fetch.add_peer(key, p.ext.metadata_size) {
                        self.ban(key, refusal.into());
                        return;
                    }
                    self.ask(key);
                }
            }
            Message::Extended { id, payload } => {
                match Extension::from_local_id(id, &self.base.offered()) {
                    Some(Extension::Metadata) => self.on_metadata(key, &payload),
                    Some(Extension::Pex) => {
                        if let Ok(msg) = PexMessage::parse(&payload) {
                            let addrs: Vec<SocketAddr> = p
                                .pex_in
                                .accept(msg, Instant::now().into_std())
                                .into_iter()
                                .map(|(a, _)| a)
                                .collect();
                            self.base.add_found(PeerSource::Pex, addrs);
                            self.dial();
                        }
                    }
                    // Introductions wait for the transfer phase.
                    Some(Extension::Holepunch) | None => {}
                }
            }
            // Blocks and requests cannot mean anything yet: dropped.
            Message::Piece { .. }
            | Message::Request(_)
            | Message::Reject(_)
            | Message::Cancel(_)
            | Message::Suggest(_)
            | Message::KeepAlive => {}
            Message::Port(port) => self.base.dht_node(p.addr, port),
            // Only the last bitfield counts, so only it is held.
            m @ (Message::Bitfield(_) | Message::HaveAll) => {
                p.held
                    .retain(|h| !matches!(h, Message::Bitfield(_) | Message::HaveAll));
                p.held.push(m);
            }
            other => {
                if p.held.len() >= MAX_HELD {
                    tracing::debug!(peer = %p.addr, "too many messages before the metadata: closed");
                    p.token.cancel();
                } else {
                    p.held.push(other);
                }
            }
        }
    }

    fn on_metadata(&mut self, key: PeerKey, payload: &[u8]) {
        let msg = match MetadataMsg::parse(payload) {
            Ok(m) => m,
            Err(e) => {
                self.ban(key, e.into());
                return;
            }
        };
        match msg {
            MetadataMsg::Request(piece) => {
                // We have nothing to give yet.
                if let Some(p) = self.peers.get(&key) {
                    if let Some(id) = p.ext.metadata_id {
                        p.send(Message::Extended {
                            id,
                            payload: MetadataMsg::Reject(piece).encode().into(),
                        });
                    }
                }
            }
            MetadataMsg::Reject(piece) => self.fetch.on_reject(key, piece),
            MetadataMsg::Data {
                piece,
                total_size,
                data,
            } => match self.fetch.on_data(key, piece, total_size, data) {
                Progress::Pending => self.ask(key),
                Progress::Invalid(why) => self.ban(key, CloseReason::BadMetadata(why)),
                Progress::Done(bytes) => self.done = Some(bytes),
                Progress::HashFailed { ban } => {
                    let who = if ban.is_empty() {
                        "several peers"
                    } else {
                        "a peer"
                    };
                    self.base.notice(Notice::Warning(format!(
                        "the metadata from {who} did not match the info-hash; fetching it again"
                    )));
                    for k in ban {
                        self.ban(k, CloseReason::MetadataMismatch);
                    }
                    let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
                    for k in keys {
                        self.ask(k);
                    }
                }
            },
        }
    }

    /// Sends `key` the metadata requests the fetch wants of it.
    fn ask(&mut self, key: PeerKey) {
        let Some(p) = self.peers.get(&key) else {
            return;
        };
        let Some(id) = p.ext.metadata_id else {
            return;
        };
        for piece in self.fetch.requests_for(key, Instant::now().into_std()) {
            p.send(Message::Extended {
                id,
                payload: MetadataMsg::Request(piece).encode().into(),
            });
        }
    }

    fn ban(&mut self, key: PeerKey, reason: CloseReason) {
        let Some(p) = self.peers.get(&key) else {
            return;
        };
        self.base.book.ban(p.addr, p.handshake.peer_id);
        self.base.notice(Notice::Banned {
            addr: p.addr,
            reason,
        });
        p.token.cancel();
        self.fetch.remove_peer(key);
    }
}
