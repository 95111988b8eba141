//! What a torrent in its transfer phase shows of itself: its [`Status`] for the daemon's
//! RPC (pieces, peers, files) and its files with how much of each is verified. Read-only
//! views, built on demand from the state the task owns.

use super::transfer::Torrent;
use super::{FileInfo, PeerInfo, Status};
use crate::peer;

impl Torrent {
    pub(super) fn status(&self) -> Status {
        let count = self.info.piece_count().max(1) as f64;
        Status {
            name: Some(self.info.name.clone()),
            has_metadata: true,
            piece_count: self.info.piece_count(),
            piece_length: self.info.piece_length,
            pieces: self.picker.have().as_bytes().to_vec(),
            peers: self
                .peers
                .values()
                .map(|p| PeerInfo {
                    addr: p.listen_addr.unwrap_or(p.addr),
                    client: p
                        .ext
                        .version
                        .clone()
                        .unwrap_or_else(|| client_of(&p.peer_id)),
                    utp: p.via.transport == peer::Transport::Utp,
                    encrypted: p.via.encryption != peer::Encryption::Plain,
                    outgoing: p.outgoing,
                    progress: p.state.has.count() as f64 / count,
                    rate_to_us: p.state.rate() as u64,
                    rate_to_peer: p.rate_to_peer,
                    am_choking: p.state.am_choking,
                    am_interested: p.state.am_interested,
                    peer_choking: p.state.peer_choking,
                    peer_interested: p.state.peer_interested,
                })
                .collect(),
            files: self.files(),
            web_seeds: self.web.infos(),
        }
    }

    pub(super) fn files(&self) -> Vec<FileInfo> {
        let pl = self.info.piece_length as u64;
        self.info
            .files
            .iter()
            .filter(|f| !f.padding)
            .map(|f| {
                let end = f.offset + f.length;
                let mut verified = 0;
                if f.length > 0 {
                    for i in (f.offset / pl) as u32..=((end - 1) / pl) as u32 {
                        if self.picker.have().get(i) {
                            let (s, e) = (i as u64 * pl, (i as u64 + 1) * pl);
                            verified += e.min(end) - s.max(f.offset);
                        }
                    }
                }
                FileInfo {
                    path: f.display_path(&self.info),
                    length: f.length,
                    verified,
                }
            })
            .collect()
    }
}

/// A client's name from its peer id (Azureus style `-XX1234-`), or its first bytes.
fn client_of(id: &[u8; 20]) -> String {
    let head = &id[..8];
    if head[0] == b'-' && head[7] == b'-' {
        String::from_utf8_lossy(&head[1..7]).into_owned()
    } else {
        String::from_utf8_lossy(head)
            .chars()
            .filter(|c| !c.is_control())
            .collect()
    }
}
