//! Choking in the transfer phase: the torrent runs the sans-IO choker
//! (`share_core::choker`: tit-for-tat while downloading, rotation while seeding) once a
//! second or when a slot comes free, and sends the choke and unchoke messages that make the
//! peers' states match its choice. It also tells the picker how many peers are seeds.
//!
//! The choices themselves (and why they are what they are) are the choker's; this file
//! only feeds it what the peer table knows and applies its answer.

use share_core::choker::PeerView;
use tokio::time::Instant;

use super::transfer::Torrent;

impl Torrent {
    /// Runs the choker (tit-for-tat while downloading, rotation while seeding) and applies
    /// its choice.
    pub(super) fn rechoke(&mut self, now: Instant) {
        if self.base.config.no_upload {
            return;
        }
        let views: Vec<PeerView> = self
            .peers
            .iter()
            .map(|(&key, p)| PeerView {
                key,
                interested: p.state.peer_interested,
                download_rate: p.state.rate(),
                upload_rate: p.rate_to_peer as f64,
                received_total: p.state.received_total(),
                silent_for: p.state.silent_for(now.into_std()),
            })
            .collect();
        let secs = now.duration_since(self.started).as_secs();
        let seeding = self.picker.is_done();
        let force = std::mem::take(&mut self.rechoke_soon);
        if !self.choker.tick(secs, &views, seeding, force) {
            return;
        }
        let set = self.choker.unchoked();
        if tracing::enabled!(tracing::Level::DEBUG) {
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
    pub(super) fn apply_choke(&mut self) {
        let set = self.choker.unchoked();
        for (key, p) in self.peers.iter_mut() {
            if let Some(m) = p.state.set_choking(!set.contains(key)) {
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
