//! The transfer phase's peer table: what the torrent task holds for each connection (a
//! [`Peer`]), and the table's life: dialing, admitting peers (new ones, and those carried
//! over from the metadata phase), closing and banning them.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use share_core::bitfield::Bitfield;
use share_core::budget::Budget;
use share_core::ext::ExtHandshake;
use share_core::pex;
use share_core::wire::{BlockRef, Handshake, Message};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::transfer::Torrent;
use super::{magnet, PeerKey};
use crate::peer::{self, Command, Link};
use crate::Notice;

/// Requests out per peer: two seconds of the peer's measured rate, at least `MIN_DEPTH`, at
/// most `MAX_DEPTH`. The window must be longer than a slow peer's reply latency (Transmission
/// answers in batches every 500 ms), or the depth could never grow past what it allows.
pub(super) const MIN_DEPTH: usize = 32;
pub(super) const DEPTH_WINDOW_SECS: f64 = 2.0;
pub(super) const MAX_DEPTH: usize = 2000;
/// A peer that owes us blocks and sends none for this long loses its requests to others.
pub(super) const STALL: Duration = Duration::from_secs(20);
/// Invalid requests tolerated from one peer before it is dropped.
pub(super) const MAX_BAD_REQUESTS: u32 = 20;
/// Failed pieces a peer may have contributed to before it is banned.
pub(super) const MAX_STRIKES: u32 = 3;
/// Bitfields (have-all, have-none) a peer may send.
pub(super) const MAX_PIECE_SETS: u32 = 4;
/// Blocks a peer may send that we never asked of it before it is banned.
pub(super) const MAX_UNREQUESTED: u32 = 64;
/// Requests beyond our `reqq` a peer may send (each is refused) before it is banned.
pub(super) const MAX_EXCESS_REQUESTS: u32 = 2000;
/// Extension messages taken from a peer: a burst, then a steady rate per second.
pub(super) const EXTENDED_BURST: f64 = 200.0;
pub(super) const EXTENDED_PER_SEC: f64 = 20.0;
/// Extension messages ignored for coming too fast before the peer is banned.
pub(super) const MAX_IGNORED_EXTENDED: u32 = 2000;
/// Blocks we withdrew (cancel, choke, stall) remembered per peer, so that one arriving late
/// is not taken for junk.
pub(super) const MAX_WITHDRAWN: usize = 4096;
/// Stalls (20 s with requests out and no block) before a peer is dropped.
pub(super) const MAX_STALLS: u32 = 3;
/// How often each connection hears which peers we know (BEP 11: about once a minute).
pub(super) const PEX_EVERY: Duration = Duration::from_secs(60);
/// The first peer exchange after a connection starts.
pub(super) const PEX_FIRST: Duration = Duration::from_secs(5);

/// One connected peer, as the torrent task holds it.
pub(super) struct Peer {
    pub(super) addr: SocketAddr,
    /// We dialed it (rather than it us).
    pub(super) outgoing: bool,
    /// Where it listens, when its extension handshake said (`p`).
    pub(super) listen_addr: Option<SocketAddr>,
    pub(super) peer_id: [u8; 20],
    pub(super) tx: mpsc::Sender<Command>,
    pub(super) token: CancellationToken,
    pub(super) queued: Arc<AtomicUsize>,
    pub(super) has: Bitfield,
    pub(super) fast: bool,
    pub(super) am_choking: bool,
    pub(super) am_interested: bool,
    pub(super) peer_choking: bool,
    pub(super) peer_interested: bool,
    pub(super) inflight: HashSet<BlockRef>,
    pub(super) depth: usize,
    pub(super) reqq: usize,
    pub(super) allowed_fast: HashSet<u32>,
    pub(super) received_this_tick: u64,
    pub(super) received_total: u64,
    /// Bytes per second it sends us (smoothed).
    pub(super) rate: f64,
    pub(super) last_block: Instant,
    /// When we last became interested in it (for snubbing).
    pub(super) interested_since: Instant,
    pub(super) strikes: u32,
    pub(super) bad_requests: u32,
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
    /// Bitfields (or have-all, have-none) it sent.
    pub(super) piece_sets: u32,
    /// Blocks we asked of it and then withdrew (cancelled, or choked without the fast
    /// extension): still welcome if they come, but no longer expected.
    pub(super) withdrawn: HashSet<BlockRef>,
    /// Abuse counters: blocks never asked for, requests beyond our queue, extension
    /// messages ignored for their rate, stalls.
    pub(super) unrequested: u32,
    pub(super) excess_requests: u32,
    pub(super) ext_budget: Budget,
    pub(super) ext_ignored: u32,
    pub(super) stalls: u32,
}

impl Peer {
    pub(super) fn new(link: Link, outgoing: bool, pieces: u32) -> Peer {
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
            listen_addr: outgoing.then_some(addr),
            peer_id: handshake.peer_id,
            tx,
            token,
            queued,
            has: Bitfield::new(pieces),
            fast: handshake.supports_fast(),
            am_choking: true,
            am_interested: false,
            peer_choking: true,
            peer_interested: false,
            inflight: HashSet::new(),
            depth: MIN_DEPTH * 2,
            reqq: 250,
            allowed_fast: HashSet::new(),
            received_this_tick: 0,
            received_total: 0,
            rate: 0.0,
            last_block: now,
            interested_since: now,
            strikes: 0,
            bad_requests: 0,
            ext: ExtHandshake::default(),
            pex_out: pex::Outbox::default(),
            pex_in: pex::Inbox::default(),
            pex_next: now + PEX_FIRST,
            metadata_requests: 0,
            via,
            sent,
            sent_last: 0,
            rate_to_peer: 0,
            piece_sets: 0,
            withdrawn: HashSet::new(),
            unrequested: 0,
            excess_requests: 0,
            ext_budget: Budget::new(EXTENDED_BURST, EXTENDED_PER_SEC, now.into_std()),
            ext_ignored: 0,
            stalls: 0,
        }
    }

    /// A request we will not wait for any more (its block is still welcome).
    pub(super) fn withdraw(&mut self, b: BlockRef) {
        if self.withdrawn.len() >= MAX_WITHDRAWN {
            self.withdrawn.clear();
        }
        self.withdrawn.insert(b);
    }

    pub(super) fn log_totals(&self) {
        tracing::debug!(
            peer = %self.listen_addr.unwrap_or(self.addr),
            received = self.received_total,
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
        let peer = Peer::new(link, outgoing, self.info.piece_count());
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
        if peer.fast && have.count() == 0 {
            peer.send(Message::HaveNone);
        } else if peer.fast && have.is_complete() {
            peer.send(Message::HaveAll);
        } else if have.count() > 0 {
            peer.send(Message::Bitfield(have.as_bytes().to_vec().into()));
        }
        tracing::debug!(%addr, client = %String::from_utf8_lossy(&hs.peer_id[..8]), %via, "connected");
        self.peers.insert(key, peer);
        self.base
            .stats
            .peers
            .store(self.peers.len(), Ordering::Relaxed);
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
        let mut peer = Peer::new(c.link, c.outgoing, self.info.piece_count());
        peer.listen_addr = c
            .ext
            .port
            .map(|p| SocketAddr::new(addr.ip(), p))
            .or(peer.listen_addr);
        if let Some(r) = c.ext.reqq {
            peer.reqq = (r as usize).clamp(1, MAX_DEPTH);
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

    pub(super) fn on_closed(&mut self, key: PeerKey, reason: &str) {
        let addr = self
            .peers
            .get(&key)
            .map(|p| p.addr)
            .or(self.base.dialing.get(&key).copied());
        tracing::debug!(peer = ?addr, reason, "connection closed");
        self.base.dial_ended(key, reason);
        self.drop_peer(key);
    }

    /// Forgets peer `key` (closing its connection): its requests go back to the picker and
    /// then to the others, its pieces leave the availability counts, its slot is freed.
    pub(super) fn drop_peer(&mut self, key: PeerKey) {
        let Some(p) = self.peers.remove(&key) else {
            return;
        };
        p.log_totals();
        p.token.cancel();
        for b in &p.inflight {
            self.picker.request_dropped(b, key);
        }
        self.picker.peer_lost_all(&p.has);
        self.count_seeds();
        self.choker.remove(key);
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

    /// Closes a connection that broke the protocol (without banning the peer).
    pub(super) fn close(&mut self, key: PeerKey, reason: &str) {
        if let Some(p) = self.peers.get(&key) {
            tracing::debug!(peer = %p.addr, reason, "closing");
            p.token.cancel();
        }
    }

    pub(super) fn ban(&mut self, key: PeerKey, reason: String) {
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
