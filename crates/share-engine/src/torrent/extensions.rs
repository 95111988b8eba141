//! The transfer phase's extension messages (BEP 10): the remote's extension handshake, the
//! metadata we serve (BEP 9), and peer exchange (BEP 11) both ways.
//!
//! A message id we did not offer on this connection is ignored, as is a malformed message:
//! extensions are never fatal. A private torrent offers neither ut_metadata nor ut_pex, so
//! their messages are ignored there too.

use std::net::SocketAddr;
use std::time::Duration;

use share_core::ext::{ExtHandshake, Extension};
use share_core::metadata::{self, MetadataMsg};
use share_core::pex::{flags, PexMessage};
use share_core::picker::PeerKey;
use share_core::wire::Message;
use tokio::time::Instant;

use super::transfer::Torrent;
use crate::PeerSource;

/// How often each connection hears which peers we know (BEP 11: about once a minute).
const PEX_EVERY: Duration = Duration::from_secs(60);
/// The first peer exchange after a connection starts.
pub(super) const PEX_FIRST: Duration = Duration::from_secs(5);

impl Torrent {
    pub(super) fn on_extended(&mut self, key: PeerKey, id: u8, payload: &[u8]) {
        if id == 0 {
            self.on_ext_handshake(key, payload);
            return;
        }
        match Extension::from_local_id(id, &self.base.offered()) {
            Some(Extension::Metadata) => self.on_metadata_message(key, payload),
            Some(Extension::Pex) => self.on_pex(key, payload),
            Some(Extension::Holepunch) => self.on_holepunch(key, payload),
            None => {}
        }
    }

    fn on_ext_handshake(&mut self, key: PeerKey, payload: &[u8]) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        let Ok(h) = ExtHandshake::parse(payload) else {
            tracing::debug!(peer = %p.addr, "malformed extension handshake ignored");
            return;
        };
        if let Some(r) = h.reqq {
            p.state.set_reqq(r);
        }
        if let Some(port) = h.port {
            p.listen_addr = Some(SocketAddr::new(p.addr.ip(), port));
        }
        if let Some(ip) = h.yourip {
            self.base.ctx.external.vote(p.addr.ip(), ip);
        }
        p.ext.update(h);
    }

    fn on_metadata_message(&mut self, key: PeerKey, payload: &[u8]) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        let Ok(MetadataMsg::Request(piece)) = MetadataMsg::parse(payload) else {
            // Data and rejects are for a fetch we are not doing; junk is ignored.
            return;
        };
        let Some(their_id) = p.ext.metadata_id else {
            return;
        };
        let info = &self.meta.info_bytes;
        // Each piece a few times over per connection, no more: metadata requests cost
        // 16 KiB of queue each.
        let allowance = info.len().div_ceil(metadata::PIECE) as u32 * 3 + 8;
        p.metadata_requests += 1;
        let reply = match metadata::piece_of(info, piece) {
            Some(data) if p.metadata_requests <= allowance => MetadataMsg::Data {
                piece,
                total_size: Some(info.len() as i64),
                data,
            },
            _ => MetadataMsg::Reject(piece),
        };
        p.send(Message::Extended {
            id: their_id,
            payload: reply.encode().into(),
        });
    }

    fn on_pex(&mut self, key: PeerKey, payload: &[u8]) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        let Ok(msg) = PexMessage::parse(payload) else {
            tracing::debug!(peer = %p.addr, "malformed ut_pex message ignored");
            return;
        };
        let mut learned = p.pex_in.accept(msg, Instant::now().into_std());
        // A blocked address is neither dialed nor asked to be introduced (hole punching).
        let blocks = &self.base.ctx.blocks;
        let before = learned.len();
        learned.retain(|(a, _)| !blocks.contains(a.ip()));
        if learned.len() < before {
            tracing::debug!(peer = %p.addr, blocked = before - learned.len(), "PEX named blocked addresses (--blocklist): ignored");
        }
        let addrs: Vec<SocketAddr> = learned.iter().map(|(a, _)| *a).collect();
        self.introduced(key, &learned);
        if !addrs.is_empty() {
            self.base.add_found(PeerSource::Pex, addrs);
        }
    }

    /// Tells each peer that is due which peers we are connected to (about once a minute).
    pub(super) fn send_pex(&mut self, now: Instant) {
        if !self.base.offered().offers(Extension::Pex) {
            return;
        }
        // Only peers we are connected to, at an address they can be reached at, and never
        // one the blocklist names.
        let blocks = &self.base.ctx.blocks;
        let known: Vec<(PeerKey, SocketAddr, u8)> = self
            .peers
            .iter()
            .filter_map(|(k, p)| {
                let addr = p.listen_addr.filter(|a| !blocks.contains(a.ip()))?;
                let mut f = 0;
                if p.outgoing {
                    f |= flags::REACHABLE;
                }
                if p.via.transport == crate::peer::Transport::Utp {
                    f |= flags::UTP;
                }
                if p.ext.holepunch_id.is_some() {
                    f |= flags::HOLEPUNCH;
                }
                if p.state.has.is_complete() {
                    f |= flags::SEED;
                }
                Some((*k, addr, f))
            })
            .collect();
        for (key, p) in self.peers.iter_mut() {
            let Some(their_id) = p.ext.pex_id else {
                continue;
            };
            if p.pex_next > now {
                continue;
            }
            p.pex_next = now + PEX_EVERY;
            let others: Vec<(SocketAddr, u8)> = known
                .iter()
                .filter(|(k, _, _)| k != key)
                .map(|(_, a, f)| (*a, *f))
                .collect();
            if let Some(msg) = p.pex_out.next(&others) {
                p.send(Message::Extended {
                    id: their_id,
                    payload: msg.encode().into(),
                });
            }
        }
    }
}
