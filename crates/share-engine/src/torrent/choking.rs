//! Choking in the transfer phase: the torrent runs the sans-IO choker
//! (`share_core::choker`: tit-for-tat while downloading, rotation while seeding) once a
//! second, and between rounds at once when a slot comes free (a holder lost interest or
//! left, a seed's peer's turn is over: `refill`), and sends the choke and unchoke messages
//! that make the peers' states match its choice. It tells the choker what each peer was
//! sent (`sent_to`), and a seed's ranks come from its ledger (`handout.rs`). It also tells
//! the picker how many peers are seeds.
//!
//! The choices themselves (and why they are what they are) are the choker's; this file
//! only feeds it what the peer table knows and applies its answer.

use std::sync::atomic::Ordering;

use share_core::choker::PeerView;
use share_core::picker::PeerKey;
use tokio::time::Instant;

use super::transfer::Torrent;

impl Torrent {
    /// Runs the choker (tit-for-tat while downloading, rotation while seeding) and applies
    /// its choice: a full round when one is due or a slot came free (`rechoke_soon`).
    pub(super) fn rechoke(&mut self, now: Instant) {
        let force = std::mem::take(&mut self.rechoke_soon);
        self.run_choker(now, force);
    }

    /// The choker between rounds, at once: a freed slot goes to the best-ranked waiting
    /// peer (a holder lost interest or left, a seed's peer's turn is over).
    pub(super) fn refill(&mut self, now: Instant) {
        self.run_choker(now, false);
    }

    fn run_choker(&mut self, now: Instant, force: bool) {
        if self.base.config.no_upload {
            return;
        }
        let contested = self.contested();
        let views: Vec<PeerView> = self
            .peers
            .iter()
            .map(|(&key, p)| PeerView {
                key,
                // A seed's peer whose turn is over waits for the next one.
                interested: p.state.peer_interested && self.wants_slot(key, contested),
                download_rate: p.state.rate(),
                upload_rate: p.rate_to_peer as f64,
                received_total: p.state.received_total(),
                silent_for: p.state.silent_for(now.into_std()),
            })
            .collect();
        for (&key, p) in &self.peers {
            self.choker.sent_to(key, p.sent.load(Ordering::Relaxed));
        }
        let secs = now.duration_since(self.started).as_secs();
        let seeding = self.picker.is_done();
        let changed = match &self.handout {
            Some(h) => self
                .choker
                .tick_ranked(secs, &views, seeding, force, |k| h.rank(k)),
            None => self.choker.tick(secs, &views, seeding, force),
        };
        if !changed {
            return;
        }
        if tracing::enabled!(tracing::Level::DEBUG) {
            let set = self.choker.unchoked();
            let optimistic = self.choker.optimistic();
            let names: Vec<String> = set
                .iter()
                .filter_map(|k| {
                    let p = self.peers.get(k)?;
                    let mark = if optimistic == Some(*k) { "*" } else { "" };
                    Some(format!("{}{mark}", p.listen_addr.unwrap_or(p.addr)))
                })
                .collect();
            let interested = views.iter().filter(|v| v.interested).count();
            tracing::debug!(secs, interested, unchoked = names.join(" "), "rechoked");
        }
        self.apply_choke();
    }

    /// Sends choke and unchoke messages so that the peers' states match the choker's set.
    /// A seed's offers go just before an unchoke, so that the peer's first requests take
    /// them; a choked peer's turn ends in the seed's ledger.
    pub(super) fn apply_choke(&mut self) {
        let set = self.choker.unchoked();
        let contested = self.contested();
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for key in keys {
            let unchoke = set.contains(&key);
            let Some(p) = self.peers.get_mut(&key) else {
                continue;
            };
            let Some(m) = p.state.set_choking(!unchoke) else {
                continue;
            };
            if unchoke {
                self.send_offers(key, contested);
            } else if let Some(h) = &mut self.handout {
                h.choked(key);
            }
            if let Some(p) = self.peers.get(&key) {
                p.send(m);
            }
        }
    }

    /// Tells the picker how many connected peers have every piece.
    pub(super) fn count_seeds(&mut self) {
        let seeds = self
            .peers
            .values()
            .filter(|p| p.state.has.is_complete())
            .count();
        self.picker.set_seeds(seeds as u32);
    }
}
