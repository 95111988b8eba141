//! Stateful: one peer's byte stream, decoded by the wire codec and applied to the state the
//! torrent task keeps for a download (the peer's bitfield, the picker and its outstanding
//! requests, the metadata fetch), as `share-engine`'s exchange does. Whatever the peer
//! sends, nothing panics and the picker's promises hold: it asks only for blocks the peer
//! has and that are valid, counts every piece at most once, and a piece is verified only
//! after all its blocks arrived.
#![no_main]
use std::collections::HashSet;
use std::time::Instant;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use share_core::bitfield::Bitfield;
use share_core::metadata::{MetadataFetch, MetadataMsg, Progress};
use share_core::picker::{Arrival, Picker};
use share_core::wire::{self, BlockRef, Message};
use share_core::InfoHash;

const PIECE: u32 = 32 * 1024;
const TOTAL: u64 = 9 * PIECE as u64 + 1234;
const PEER: u64 = 7;

fuzz_target!(|data: &[u8]| {
    let mut picker = Picker::new(PIECE, TOTAL, Bitfield::new(10), 42);
    let count = 10u32;
    let mut peer_has = Bitfield::new(count);
    let mut outstanding: HashSet<BlockRef> = HashSet::new();
    let mut choked = true;
    let mut meta = MetadataFetch::new(InfoHash([3; 20]));
    let _ = meta.add_peer(PEER, Some(40_000));
    let mut buf = BytesMut::from(data);
    let mut verified = 0u32;
    let mut flip = false;
    while let Ok(Some(m)) = wire::decode(&mut buf, wire::max_frame(count)) {
        match m {
            Message::Have(i) if i < count => {
                if !peer_has.get(i) {
                    peer_has.set(i);
                    picker.peer_has(i);
                }
            }
            Message::Bitfield(b) => {
                if let Some(bf) = Bitfield::from_wire(&b, count) {
                    picker.peer_lost_all(&peer_has);
                    picker.peer_has_all(&bf);
                    peer_has = bf;
                }
            }
            Message::HaveAll => {
                picker.peer_lost_all(&peer_has);
                peer_has = Bitfield::full(count);
                picker.peer_has_all(&peer_has);
            }
            Message::HaveNone => {
                picker.peer_lost_all(&peer_has);
                peer_has = Bitfield::new(count);
            }
            Message::Choke => {
                choked = true;
                for b in outstanding.drain() {
                    picker.request_dropped(&b, PEER);
                }
            }
            Message::Unchoke => choked = false,
            Message::Reject(b) => {
                if outstanding.remove(&b) {
                    picker.request_dropped(&b, PEER);
                }
            }
            Message::Piece { index, begin, data } => {
                let b = BlockRef { index, begin, length: data.len() as u32 };
                // Data nobody asked for is dropped, as the engine does.
                if !outstanding.remove(&b) {
                    continue;
                }
                if let Arrival::PieceComplete = picker.block_received(&b, PEER) {
                    // The hash check passes or fails, in turns.
                    flip = !flip;
                    if flip {
                        assert!(!picker.have().get(index), "piece {index} counted twice");
                        picker.piece_verified(index);
                        verified += 1;
                    } else {
                        let _ = picker.piece_failed(index);
                    }
                }
            }
            Message::Extended { id: 0, payload } => {
                let _ = share_core::ext::ExtHandshake::parse(&payload);
            }
            Message::Extended { id: _, payload } => {
                if let Ok(MetadataMsg::Data { piece, total_size, data }) = MetadataMsg::parse(&payload) {
                    if let Progress::Done(info) = meta.on_data(PEER, piece, total_size, data) {
                        panic!("{} bytes hashed to a made-up info-hash", info.len());
                    }
                }
                let _ = meta.requests_for(PEER, Instant::now());
            }
            _ => {}
        }
        if !choked && outstanding.len() < 32 {
            let asked = outstanding.clone();
            for b in picker.pick(PEER, &peer_has, 32 - outstanding.len(), false, |b| asked.contains(b)) {
                assert!(peer_has.get(b.index), "asked for piece {} the peer lacks", b.index);
                assert!(picker.is_valid_block(&b), "asked for an invalid block {b:?}");
                assert!(!picker.have().get(b.index), "asked for a piece we have");
                outstanding.insert(b);
            }
        }
    }
    assert_eq!(picker.have().count(), verified);
});
