//! A seed's ledger in the torrent task: the sans-IO `share_core::seeding::Handout` decides
//! which pieces to offer whom, whose turn at the seed's slots is over and how peers rank
//! for them; this file feeds it what the peer table sees and sends what it answers
//! (the module note of `share_core::seeding` lists each call, and `share_core::sim`
//! runs the same calls in a swarm in virtual time).
//!
//! The torrent makes its ledger when it has every piece (at start, or when its last piece
//! is verified): `Mode::Super` for `share seed --super-seed` (BEP 16), else `Mode::Suggest`.
//!
//! Turns (`Handout::wants_slot`) are for peers that speak the fast extension: a turn is a
//! suggested piece, and only such a peer hears a `Suggest` and keeps its queued blocks
//! coming across the choke that ends its turn. A peer without it is served by the
//! choker's plain rotation, and does not count as waiting (`contested`): a seed beside
//! hundreds of such peers (bench/load.py) keeps serving a fast leecher as before.

use std::sync::atomic::Ordering;

use share_core::picker::PeerKey;
use share_core::seeding::{Handout, Mode};
use share_core::wire::Message;

use super::transfer::Torrent;

impl Torrent {
    /// Makes the ledger once the torrent has every piece, fed what the peers have.
    pub(super) fn start_handout(&mut self) {
        if self.handout.is_some() || self.base.config.no_upload || !self.picker.have().is_complete()
        {
            return;
        }
        let mode = if self.base.config.super_seed {
            Mode::Super
        } else {
            Mode::Suggest
        };
        let mut h = Handout::new(
            self.info.piece_length,
            self.info.total_length,
            mode,
            rand::random(),
        );
        for (&k, p) in &self.peers {
            h.peer_has_all(k, &p.state.has);
        }
        self.handout = Some(h);
    }

    /// Whether this torrent is a super-seed now (announces offers instead of its pieces).
    pub(super) fn super_seeding(&self) -> bool {
        self.handout
            .as_ref()
            .is_some_and(|h| h.mode() == Mode::Super)
    }

    /// Other peers wait for the seed: a choked peer that wants a piece and takes turns
    /// (the fast extension, see the module note).
    pub(super) fn contested(&self) -> bool {
        self.handout.is_some()
            && self.peers.values().any(|p| {
                p.state.am_choking
                    && p.state.fast
                    && p.state.peer_interested
                    && !p.state.has.is_complete()
            })
    }

    /// Whether peer `key` should hold one of the seed's slots now (the choker's view of
    /// its interest): see `Handout::wants_slot`.
    pub(super) fn wants_slot(&self, key: PeerKey, contested: bool) -> bool {
        let (Some(h), Some(p)) = (&self.handout, self.peers.get(&key)) else {
            return true;
        };
        !p.state.fast || h.wants_slot(key, contested, p.queued.load(Ordering::Relaxed))
    }

    /// Sends the ledger's new offers to `key`: `Suggest` to an unchoked peer with the
    /// fast extension, or (a super-seed) `Have` to any peer.
    pub(super) fn send_offers(&mut self, key: PeerKey, contested: bool) {
        let (Some(h), Some(p)) = (&mut self.handout, self.peers.get(&key)) else {
            return;
        };
        let suggest = match h.mode() {
            Mode::Suggest if p.state.am_choking || !p.state.fast => return,
            Mode::Suggest => true,
            Mode::Super => false,
        };
        for i in h.offers(key, contested) {
            p.send(if suggest {
                Message::Suggest(i)
            } else {
                Message::Have(i)
            });
        }
    }

    /// Once a second: offers to every peer (a super-seed's next announcements, pieces
    /// that came free).
    pub(super) fn offers_tick(&mut self) {
        if self.handout.is_none() {
            return;
        }
        let contested = self.contested();
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for k in keys {
            self.send_offers(k, contested);
        }
    }

    /// `Have(index)` from `key`: the ledger witnesses it, and whoever it credits with
    /// passing a piece on (a super-seed may show them more), and `key`, get offers.
    pub(super) fn handout_have(&mut self, key: PeerKey, index: u32) {
        let Some(h) = &mut self.handout else {
            return;
        };
        let credited = h.peer_has(key, index);
        let contested = self.contested();
        for k in credited {
            self.send_offers(k, contested);
        }
        self.send_offers(key, contested);
    }

    /// After a batch of messages from peers: a seed whose unchoked peer's turn is over
    /// hands the slot on now (not at the next round).
    pub(super) fn turns_over(&mut self) {
        let Some(h) = &self.handout else {
            return;
        };
        if h.mode() == Mode::Super {
            return;
        }
        let over = self.peers.iter().any(|(&k, p)| {
            !p.state.am_choking
                && p.state.fast
                && !h.wants_slot(k, true, p.queued.load(Ordering::Relaxed))
        });
        if over && self.contested() {
            self.refill(tokio::time::Instant::now());
        }
    }
}
