//! The transfer phase's peer table: what the torrent task holds for each connection (a
//! [`Peer`]), and the table's life: dialing, admitting peers (new ones, and those carried
//! over from the metadata phase), closing and banning them.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use share_core::ext::ExtHandshake;
use share_core::peer::{Offence, PeerState};
use share_core::pex;
use share_core::picker::PeerKey;
use share_core::wire::{Handshake, Message};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::extensions::PEX_FIRST;
use share_core::InfoHash;

use super::magnet;
use super::transfer::Torrent;
use crate::peer::{self, CloseReason, Command, Link};
use crate::Notice;

/// One connected peer, as the torrent task holds it: its connection (the writer's queue,
/// the token that closes it, the counters the writer keeps), what it told us of itself, the
/// extensions' state with it, and its protocol state, the sans-IO [`PeerState`].
pub(super) struct Peer {
    pub(super) addr: SocketAddr,
    /// We dialed it (rather than it us).
    pub(super) outgoing: bool,
    /// Where it listens, when its extension handshake said (`p`).
    pub(super) listen_addr: Option<SocketAddr>,
    pub(super) peer_id: [u8; 20],
    pub(super) tx: mpsc::Sender<Command>,
    pub(super) token: CancellationToken,
    /// Uploads queued in its writer.
    pub(super) queued: Arc<AtomicUsize>,
    /// Choking, interest, its pieces, our requests, the pipeline and the abuse counters.
    pub(super) state: PeerState,
    /// What its extension handshake said.
    pub(super) ext: ExtHandshake,
    /// Peer exchange with it: what we told it, what we take from it, when we tell it next.
    pub(super) pex_out: pex::Outbox,
    pub(super) pex_in: pex::Inbox,
    pub(super) pex_next: Instant,
    /// Metadata pieces it asked of us (bounded).
    pub(super) metadata_requests: u32,
    /// How its bytes travel.
    pub(super) via: peer::Via,
    /// Payload bytes sent to it (counted by its writer), and the rate of that.
    pub(super) sent: Arc<AtomicU64>,
    pub(super) sent_last: u64,
    pub(super) rate_to_peer: u64,
    /// A v2 connection (BEP 52): the handshake named the torrent by its truncated v2 hash,
    /// so hash messages may be sent on it.
    pub(super) v2: bool,
}

impl Peer {
    pub(super) fn new(link: Link, outgoing: bool, pieces: u32, v2_hash: Option<InfoHash>) -> Peer {
        let now = Instant::now();
        let Link {
            addr,
            handshake,
            via,
            tx,
            queued,
            sent,
            token,
        } = link;
        Peer {
            addr,
            outgoing,
            // We dialed it there, or its µTP packets come from its listening socket.
            listen_addr: (outgoing || via.transport == peer::Transport::Utp).then_some(addr),
            peer_id: handshake.peer_id,
            tx,
            token,
            queued,
            state: PeerState::new(pieces, handshake.supports_fast(), now.into_std()),
            ext: ExtHandshake::default(),
            pex_out: pex::Outbox::default(),
            pex_in: pex::Inbox::default(),
            pex_next: now + PEX_FIRST,
            metadata_requests: 0,
            via,
            sent,
            sent_last: 0,
            rate_to_peer: 0,
            v2: v2_hash == Some(handshake.info_hash),
        }
    }

    pub(super) fn log_totals(&self) {
        tracing::debug!(
            peer = %self.listen_addr.unwrap_or(self.addr),
            received = self.state.received_total(),
            via = %self.via,
            "peer totals"
        );
    }

    /// Queues a message; a peer whose queue is full does not read and is dropped.
    pub(super) fn send(&self, m: Message) {
        if self.tx.try_send(Command::Send(m)).is_err() {
            self.token.cancel();
        }
    }
}

impl Torrent {
    /// Dials known addresses that are due, while there is room.
    pub(super) fn dial_known(&mut self) {
        let connected: HashSet<SocketAddr> = self
            .peers
            .values()
            .flat_map(|p| std::iter::once(p.addr).chain(p.listen_addr))
            .collect();
        let complete = self.picker.is_done();
        self.base.dial(&connected, self.peers.len(), complete);
    }

    pub(super) fn on_connected(&mut self, key: PeerKey, link: Link) {
        let (addr, hs) = (link.addr, link.handshake);
        let banned = self.base.book.is_banned(&addr, Some(&hs.peer_id));
        let outgoing = self.base.dialing.remove(&key).is_some();
        if outgoing {
            self.base.book.worked(&addr);
        }
        if banned
            || self.is_duplicate(key, addr, &hs, outgoing)
            || self.peers.len() >= self.base.config.max_peers
        {
            if outgoing {
                self.base.book.closed(&addr, Instant::now());
            }
            link.token.cancel();
            return;
        }
        let via = link.via;
        let peer = Peer::new(
            link,
            outgoing,
            self.info.piece_count(),
            self.base.hashes.v2_short(),
        );
        if hs.supports_extensions() {
            peer.send(
                self.base
                    .ext_handshake(addr, Some(self.meta.info_bytes.len() as u32)),
            );
        }
        if let Some(m) = self.base.port_message(&hs) {
            peer.send(m);
        }
        let have = self.picker.have();
        let super_seed = self.super_seeding();
        if super_seed {
            // A super-seed shows what it offers, one piece at a time (`send_offers` below).
            if peer.state.fast {
                peer.send(Message::HaveNone);
            }
        } else if peer.state.fast && have.count() == 0 {
            peer.send(Message::HaveNone);
        } else if peer.state.fast && have.is_complete() {
            peer.send(Message::HaveAll);
        } else if have.count() > 0 {
            peer.send(Message::Bitfield(have.as_bytes().to_vec().into()));
        }
        let swarm = if self.base.hashes.v2_short() == Some(hs.info_hash) {
            "v2"
        } else {
            "v1"
        };
        tracing::debug!(%addr, client = %String::from_utf8_lossy(&hs.peer_id[..8]), %via, swarm, "connected");
        self.peers.insert(key, peer);
        self.base
            .stats
            .peers
            .store(self.peers.len(), Ordering::Relaxed);
        if super_seed {
            let contested = self.contested();
            self.send_offers(key, contested);
        }
    }

    /// Two connections to one peer: both sides keep the one that the lower peer id dialed,
    /// so that when both dial at once they do not each close a different one (and keep
    /// neither). Returns whether the new one is the duplicate to close.
    fn is_duplicate(
        &mut self,
        key: PeerKey,
        addr: SocketAddr,
        hs: &Handshake,
        outgoing: bool,
    ) -> bool {
        let Some((&old_key, old)) = self
            .peers
            .iter()
            .find(|(k, p)| **k != key && p.peer_id == hs.peer_id)
        else {
            return false;
        };
        // The address is a peer we have: no need to dial it for a while.
        self.base.book.duplicate(&addr, Instant::now());
        let we_are_lower = self.base.ctx.peer_id < hs.peer_id;
        let keep_new = old.outgoing != outgoing && outgoing == we_are_lower;
        if keep_new {
            old.token.cancel();
            self.drop_peer(old_key);
        }
        !keep_new
    }

    /// A connection made while the metadata was fetched: it becomes a peer of the
    /// transfer, and the messages it sent meanwhile are taken now.
    pub(super) async fn adopt(&mut self, key: PeerKey, c: magnet::Connected) {
        let hs = c.link.handshake;
        let addr = c.link.addr;
        let mut peer = Peer::new(
            c.link,
            c.outgoing,
            self.info.piece_count(),
            self.base.hashes.v2_short(),
        );
        peer.listen_addr = c
            .ext
            .port
            .map(|p| SocketAddr::new(addr.ip(), p))
            .or(peer.listen_addr);
        if let Some(r) = c.ext.reqq {
            peer.state.set_reqq(r);
        }
        peer.ext = c.ext;
        peer.pex_in = c.pex_in;
        if hs.supports_extensions() {
            // Now that we have the metadata, say so (a second handshake updates the first).
            peer.send(
                self.base
                    .ext_handshake(addr, Some(self.meta.info_bytes.len() as u32)),
            );
        }
        self.peers.insert(key, peer);
        self.base
            .stats
            .peers
            .store(self.peers.len(), Ordering::Relaxed);
        for m in c.held {
            self.on_message(key, m).await;
        }
    }

    pub(super) fn on_closed(&mut self, key: PeerKey, reason: CloseReason) {
        let addr = self
            .peers
            .get(&key)
            .map(|p| p.addr)
            .or(self.base.dialing.get(&key).copied());
        tracing::debug!(peer = ?addr, reason = reason.to_string(), "connection closed");
        let dial_failed =
            self.base.dialing.contains_key(&key) && matches!(reason, CloseReason::Dial(_));
        self.base.dial_ended(key, &reason);
        self.drop_peer(key);
        if let (true, Some(addr)) = (dial_failed, addr) {
            self.dial_failed(addr);
        }
    }

    /// Forgets peer `key` (closing its connection): its requests go back to the picker and
    /// then to the others, its pieces leave the availability counts, its slot is freed.
    pub(super) fn drop_peer(&mut self, key: PeerKey) {
        self.v2.forget(key);
        self.punch.forget(key);
        let Some(p) = self.peers.remove(&key) else {
            return;
        };
        p.log_totals();
        p.token.cancel();
        for b in p.state.requests() {
            self.picker.request_dropped(b, key);
        }
        self.picker.peer_lost_all(&p.state.has);
        self.picker.peer_gone(key);
        if let Some(h) = &mut self.handout {
            h.peer_left(key);
        }
        self.count_seeds();
        self.choker.remove(key);
        // Its slot goes to the best-ranked waiting peer now.
        self.refill(Instant::now());
        self.base.book.closed(&p.addr, Instant::now());
        self.base
            .stats
            .peers
            .store(self.peers.len(), Ordering::Relaxed);
        // Its requests go to the others.
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for k in keys {
            self.fill(k);
        }
    }

    /// Closes the connections a new blocklist blocks.
    pub(super) fn drop_blocked(&mut self) {
        if !self.base.blocks_changed() {
            return;
        }
        let blocked: Vec<PeerKey> = self
            .peers
            .iter()
            .filter(|(_, p)| self.base.ctx.blocks.contains(p.addr.ip()))
            .map(|(k, _)| *k)
            .collect();
        for k in blocked {
            self.close(k, CloseReason::Blocked);
        }
    }

    /// Closes a connection that broke the protocol (without banning the peer).
    pub(super) fn close(&mut self, key: PeerKey, reason: CloseReason) {
        if let Some(p) = self.peers.get(&key) {
            tracing::debug!(peer = %p.addr, reason = reason.to_string(), "closing");
            p.token.cancel();
        }
    }

    /// Closes or bans a peer for what it did, as the offence says.
    pub(super) fn punish(&mut self, key: PeerKey, offence: Offence) {
        if offence.bans() {
            self.ban(key, offence.into());
        } else {
            self.close(key, offence.into());
        }
    }

    pub(super) fn ban(&mut self, key: PeerKey, reason: CloseReason) {
        if super::web::is_web(key) {
            self.web_drop(key, reason.to_string());
            return;
        }
        if self.banned_keys.len() >= 10_000 {
            self.banned_keys.clear();
        }
        self.banned_keys.insert(key);
        if let Some(p) = self.peers.get(&key) {
            self.base.book.ban(p.addr, p.peer_id);
            if let Some(l) = p.listen_addr {
                self.base.book.ban(l, p.peer_id);
            }
            self.base.notice(Notice::Banned {
                addr: p.addr,
                reason,
            });
            p.token.cancel();
        }
    }
}
