//! BitTorrent v2 (BEP 52) in the transfer phase: what each piece must hash to, the piece
//! layers fetched from peers when the torrent came without them (a magnet link), hash
//! requests answered from the layers we have, and the bad block of a failed piece found.
//!
//! - **Layers.** A v2-only torrent's pieces of a file whose layer is missing cannot be
//!   verified, so they are not asked for; the layer is asked of peers that have pieces of
//!   that file, in chunks of 512 hashes with their proof to the file's root, two requests
//!   out per peer at most. A chunk that proves the root is kept; one that does not bans its
//!   sender. Once a file's layer is whole, its pieces are wanted again, and the torrent's
//!   metadata is kept with its layers (a restart needs no hash requests).
//! - **Bad blocks.** A v2-only piece that fails its merkle check keeps its blocks and their
//!   hashes (leaves) while the hashes of its 16 KiB blocks are asked of a peer that has the
//!   piece; they are taken only if they hash to the piece's known node. Then each block
//!   whose leaf differs was bad: whoever sent it is banned (the log names the block), only
//!   those blocks are fetched again, and no good block is thrown away. If no peer answers
//!   in time, the piece fails as a v1 piece does (fetched again from one peer).
//! - **Serving.** A hash request for a layer we hold is answered with the hashes and their
//!   proof; anything else gets a hash reject. Requests are checked before anything is
//!   computed, and a peer may send only so many.

use std::collections::HashMap;
use std::time::Duration;

use share_core::hashes::{self, FileTree};
use share_core::merkle::Hash;
use share_core::picker::PeerKey;
use share_core::wire::{HashRange, Message};
use tokio::time::Instant;

use super::transfer::Torrent;
use crate::assembly::Expected;
use crate::memory::PieceBuf;
use crate::peer::CloseReason;

/// Hash requests out to one peer at once.
const MAX_ASKED: usize = 2;
/// How long a hash request may go unanswered before it is asked of another peer.
const ASK_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a failed piece waits for its block hashes before it fails as a v1 piece does.
const SUSPECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Hash requests served per connection, at most.
const MAX_SERVED: u32 = 20_000;

/// A failed piece waiting for its block hashes.
struct Suspect {
    leaves: Vec<Hash>,
    buf: Option<PieceBuf>,
    since: Instant,
}

/// The v2 state of a torrent in its transfer phase.
#[derive(Default)]
pub(super) struct V2State {
    /// Layers being fetched: by root, the chunks received so far.
    layers: HashMap<Hash, Vec<Option<Vec<Hash>>>>,
    /// Requests out, by peer.
    asked: HashMap<PeerKey, Vec<(HashRange, Instant)>>,
    suspects: HashMap<u32, Suspect>,
    /// Requests served, by peer.
    served: HashMap<PeerKey, u32>,
    /// Pieces that cannot be verified yet (their file's layer is missing): not asked for.
    pub(super) blocked: Option<share_core::bitfield::Bitfield>,
    /// Requests a peer rejected: not asked of it again.
    refused: std::collections::HashSet<(HashRange, PeerKey)>,
}

impl V2State {
    /// The state for a torrent: the layers it lacks are to be fetched.
    pub(super) fn new(meta: &share_core::Metainfo) -> V2State {
        let mut s = V2State::default();
        for root in meta.missing_layers() {
            if let Some(tree) = file_tree(meta, &root) {
                s.layers
                    .insert(root, vec![None; hashes::layer_chunks(tree) as usize]);
            }
        }
        s.blocked = blocked(meta);
        s
    }

    pub(super) fn forget(&mut self, key: PeerKey) {
        self.asked.remove(&key);
        self.served.remove(&key);
        self.refused.retain(|(_, k)| *k != key);
    }
}

/// A v2-only torrent's pieces whose hash is not known yet (`None` when there are none).
fn blocked(meta: &share_core::Metainfo) -> Option<share_core::bitfield::Bitfield> {
    if meta.info.v1 || !meta.info.v2 {
        return None;
    }
    let bits: Vec<bool> = (0..meta.info.piece_count())
        .map(|i| meta.v2_piece(i).is_some_and(|p| p.hash.is_none()))
        .collect();
    bits.iter()
        .any(|&b| b)
        .then(|| share_core::bitfield::Bitfield::from_bools(&bits))
}

/// The tree of the file whose root is `root`.
fn file_tree(meta: &share_core::Metainfo, root: &Hash) -> Option<FileTree> {
    let f = meta
        .info
        .files
        .iter()
        .find(|f| f.pieces_root.as_ref() == Some(root))?;
    Some(FileTree {
        length: f.length,
        piece_length: meta.info.piece_length,
    })
}

impl Torrent {
    /// What piece `index` must hash to.
    pub(super) fn expected(&self, index: u32) -> Expected {
        Expected {
            v1: self.info.v1.then(|| self.info.piece_hash(index)).flatten(),
            v2: self
                .meta
                .v2_piece(index)
                .and_then(|p| Some((p.hash?, p.file_length))),
        }
    }

    /// For a v2 torrent's piece, how many of its bytes lie inside its file.
    pub(super) fn v2_bytes(&self, index: u32) -> Option<usize> {
        let p = self.meta.v2_piece(index)?;
        let start = p.in_file as u64 * self.info.piece_length as u64;
        Some((p.file_length - start).min(self.info.piece_length as u64) as usize)
    }

    /// Whether the torrent's pieces are checked by merkle trees only (no SHA-1).
    pub(super) fn v2_only(&self) -> bool {
        self.info.v2 && !self.info.v1
    }

    /// A hash request from `key`: answered from the layer we hold, or rejected.
    pub(super) fn on_hash_request(&mut self, key: PeerKey, r: HashRange) {
        let served = self.v2.served.entry(key).or_default();
        *served += 1;
        if *served > MAX_SERVED {
            self.ban(key, CloseReason::HashFlood);
            return;
        }
        let answer = file_tree(&self.meta, &r.root).and_then(|tree| {
            let layer = self.meta.piece_layers.get(&r.root)?;
            hashes::answer_from_layer(tree, layer, &r)
        });
        if answer.is_none() && self.read_leaves_for(key, &r) {
            return;
        }
        self.answer_hashes(key, r, answer);
    }

    fn answer_hashes(&self, key: PeerKey, r: HashRange, answer: Option<Vec<Hash>>) {
        let Some(p) = self.peers.get(&key) else {
            return;
        };
        p.send(match answer {
            Some(hashes) => Message::Hashes { range: r, hashes },
            None => Message::HashReject(r),
        });
    }

    /// A request below the piece layer, inside one piece we have: its blocks are read and
    /// hashed on the disk thread (the answer follows in [`Torrent::on_leaves`]).
    fn read_leaves_for(&mut self, key: PeerKey, r: &HashRange) -> bool {
        let Some(tree) = file_tree(&self.meta, &r.root) else {
            return false;
        };
        if !tree.valid(r) {
            return false;
        }
        let h = if tree.length <= self.info.piece_length as u64 {
            tree.height()
        } else {
            tree.piece_height()
        };
        if r.base >= h {
            return false;
        }
        let width = (1u64 << h) >> r.base;
        let in_file = r.index as u64 / width;
        let Some(f) = self
            .info
            .files
            .iter()
            .find(|f| f.pieces_root == Some(r.root))
        else {
            return false;
        };
        let pl = self.info.piece_length as u64;
        let piece = (f.offset / pl + in_file) as u32;
        if !self.picker.have().get(piece) {
            return false;
        }
        let Some(len) = self.v2_bytes(piece) else {
            return false;
        };
        let job = crate::disk::Job::Leaves {
            key,
            range: *r,
            piece,
            offset: piece as u64 * pl,
            len,
        };
        self.disk.try_send(job).is_ok()
    }

    /// The leaves of piece `piece` were read for `key`'s request: answer it.
    pub(super) fn on_leaves(
        &mut self,
        key: PeerKey,
        r: HashRange,
        piece: u32,
        leaves: Option<Vec<Hash>>,
    ) {
        let answer = leaves.and_then(|leaves| {
            let tree = file_tree(&self.meta, &r.root)?;
            let in_file = self.meta.v2_piece(piece)?.in_file as u64;
            let layer = self.meta.piece_layers.get(&r.root).map(Vec::as_slice);
            hashes::answer_within_piece(tree, layer, in_file, &leaves, &r)
        });
        self.answer_hashes(key, r, answer);
    }

    /// Hashes from `key`: a chunk of a layer we asked for, or the block hashes of a
    /// suspect piece. Hashes we did not ask for are ignored.
    pub(super) fn on_hashes(&mut self, key: PeerKey, r: HashRange, got: Vec<Hash>) {
        tracing::debug!(peer = ?self.peers.get(&key).map(|p| p.addr), base = r.base, index = r.index, hashes = got.len(), "hashes");
        let Some(asked) = self.v2.asked.get_mut(&key) else {
            return;
        };
        let Some(at) = asked.iter().position(|(a, _)| *a == r) else {
            return;
        };
        asked.remove(at);
        let Some(tree) = file_tree(&self.meta, &r.root) else {
            return;
        };
        // A layer chunk, for a file whose layer is missing; otherwise the block hashes of
        // a suspect piece (with 16 KiB pieces the two are the same layer).
        if !self.v2.layers.contains_key(&r.root) {
            if r.base == 0 {
                self.on_block_hashes(key, tree, r, got);
            }
            return;
        }
        match hashes::accept_layer(tree, &r.root, &r, &got) {
            Ok(part) => self.take_layer_chunk(r, part),
            Err(e) => self.ban(key, CloseReason::BadHashes(e.to_string())),
        }
    }

    /// A hash request refused: ask someone else.
    pub(super) fn on_hash_reject(&mut self, key: PeerKey, r: HashRange) {
        tracing::debug!(peer = ?self.peers.get(&key).map(|p| p.addr), base = r.base, index = r.index, "hash request rejected");
        if let Some(asked) = self.v2.asked.get_mut(&key) {
            asked.retain(|(a, _)| *a != r);
        }
        if self.v2.refused.len() < 10_000 {
            self.v2.refused.insert((r, key));
        }
    }

    fn take_layer_chunk(&mut self, r: HashRange, part: Vec<Hash>) {
        let Some(chunks) = self.v2.layers.get_mut(&r.root) else {
            return;
        };
        let c = (r.index / hashes::MAX_CHUNK) as usize;
        if let Some(slot) = chunks.get_mut(c) {
            *slot = Some(part);
        }
        if !chunks.iter().all(Option::is_some) {
            return;
        }
        let layer: Vec<Hash> = chunks.iter().flatten().flatten().copied().collect();
        self.v2.layers.remove(&r.root);
        if !self.meta.add_piece_layer(r.root, layer) {
            tracing::warn!(root = %hex::encode(r.root), "a piece layer from peers did not fit its file");
            return;
        }
        tracing::info!(root = %hex::encode(r.root), "piece layer received");
        self.base
            .metainfo
            .send_replace(Some(std::sync::Arc::new(self.meta.clone())));
        if self.v2.layers.is_empty() {
            self.keep_metadata();
        }
        // Its pieces can be verified now: ask for them.
        self.v2.blocked = blocked(&self.meta);
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for k in keys {
            self.fill(k);
        }
    }

    /// Keeps the torrent's metadata, with its layers now, in the state folder.
    fn keep_metadata(&self) {
        let path = self.base.ctx.metadata_path(&self.base.shared.info_hash);
        let bytes = self.meta.to_torrent_bytes();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = share_storage::state::write_state(&path, &bytes) {
                tracing::warn!("keeping the metadata with its piece layers: {e}");
            }
        });
    }

    /// A piece of a v2-only torrent failed its merkle check: keep its blocks and leaves
    /// and find out which block was bad.
    pub(super) fn suspect(&mut self, index: u32, leaves: Vec<Hash>, buf: Option<PieceBuf>) {
        self.v2.suspects.insert(
            index,
            Suspect {
                leaves,
                buf,
                since: Instant::now(),
            },
        );
        self.ask_hashes();
    }

    fn on_block_hashes(&mut self, key: PeerKey, tree: FileTree, r: HashRange, got: Vec<Hash>) {
        let bpp = 1u32 << tree.piece_height();
        let file_first = self
            .meta
            .info
            .files
            .iter()
            .find(|f| f.pieces_root == Some(r.root))
            .map_or(0, |f| (f.offset / self.info.piece_length as u64) as u32);
        let index = file_first + r.index / bpp;
        let Some(node) = self.expected(index).v2.map(|(n, _)| n) else {
            return;
        };
        let good = match hashes::accept_blocks(tree, &node, &r, &got) {
            Ok(g) => g,
            Err(e) => {
                self.ban(key, CloseReason::BadHashes(e.to_string()));
                return;
            }
        };
        let Some(s) = self.v2.suspects.remove(&index) else {
            return;
        };
        let bad: Vec<u32> = s
            .leaves
            .iter()
            .zip(&good)
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .map(|(i, _)| i as u32)
            .collect();
        if bad.is_empty() {
            self.fail_piece(index, s);
            return;
        }
        let senders = self.picker.block_senders(index);
        for &b in &bad {
            if let Some(Some(peer)) = senders.get(b as usize) {
                tracing::warn!(piece = index, block = b, peer = ?self.peers.get(peer).map(|p| p.addr), "a block failed its merkle check");
                self.ban(*peer, CloseReason::BadBlock { index, block: b });
            }
        }
        self.picker.blocks_failed(index, &bad);
        let leaves: Vec<Option<Hash>> = s
            .leaves
            .iter()
            .enumerate()
            .map(|(i, l)| (!bad.contains(&(i as u32))).then_some(*l))
            .collect();
        let size = self.info.piece_size(index) as usize;
        let v2_bytes = self.v2_bytes(index).unwrap_or(size);
        self.assembly.restore(index, size, s.buf, leaves, v2_bytes);
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for k in keys {
            self.fill(k);
        }
    }

    /// A suspect piece whose bad block could not be found: it fails as a v1 piece does.
    fn fail_piece(&mut self, index: u32, s: Suspect) {
        if let Some(buf) = s.buf {
            self.assembly.recycle(buf);
        }
        self.on_failed(index);
    }

    /// Once a second: expired requests dropped, layer chunks and block hashes asked for,
    /// suspects that waited too long failed.
    pub(super) fn v2_tick(&mut self) {
        if !self.info.v2 {
            return;
        }
        let now = Instant::now();
        // A request unanswered in time is not asked of that peer again.
        for (k, asked) in self.v2.asked.iter_mut() {
            asked.retain(|(r, at)| {
                let live = now.duration_since(*at) < ASK_TIMEOUT;
                if !live && self.v2.refused.len() < 10_000 {
                    self.v2.refused.insert((*r, *k));
                }
                live
            });
        }
        let late: Vec<u32> = self
            .v2
            .suspects
            .iter()
            .filter(|(_, s)| now.duration_since(s.since) > SUSPECT_TIMEOUT)
            .map(|(i, _)| *i)
            .collect();
        for i in late {
            if let Some(s) = self.v2.suspects.remove(&i) {
                self.fail_piece(i, s);
            }
        }
        self.ask_hashes();
    }

    /// Whether `r` is out already, to anyone.
    fn is_asked(&self, r: &HashRange) -> bool {
        self.v2.asked.values().flatten().any(|(a, _)| a == r)
    }

    /// A peer with room for a request that has piece `index` (on a v2 connection when the
    /// torrent is v2-only: hash messages are for those); one that sent none of the piece's
    /// blocks first (a liar would not prove itself wrong), then the least asked.
    fn asker(&self, index: u32, r: &HashRange) -> Option<PeerKey> {
        let senders = self.picker.block_senders(index);
        self.peers
            .iter()
            .filter(|(k, p)| {
                !self.v2.refused.contains(&(*r, **k))
                    && p.state.has.get(index)
                    && self.v2.asked.get(k).is_none_or(|a| a.len() < MAX_ASKED)
                    && (p.v2 || !self.v2_only())
            })
            .map(|(k, _)| *k)
            .min_by_key(|k| {
                (
                    senders.contains(&Some(*k)),
                    self.v2.asked.get(k).map_or(0, Vec::len),
                )
            })
    }

    fn ask(&mut self, key: PeerKey, r: HashRange) {
        if let Some(p) = self.peers.get(&key) {
            tracing::debug!(peer = %p.addr, base = r.base, index = r.index, length = r.length, proof_layers = r.proof_layers, "hash request");
            p.send(Message::HashRequest(r));
            self.v2
                .asked
                .entry(key)
                .or_default()
                .push((r, Instant::now()));
        }
    }

    /// Asks for the layer chunks and block hashes still missing.
    fn ask_hashes(&mut self) {
        let mut wanted: Vec<(HashRange, u32)> = Vec::new();
        for (root, chunks) in &self.v2.layers {
            let Some(tree) = file_tree(&self.meta, root) else {
                continue;
            };
            let first = self
                .info
                .files
                .iter()
                .find(|f| f.pieces_root.as_ref() == Some(root))
                .map_or(0, |f| (f.offset / self.info.piece_length as u64) as u32);
            for (c, chunk) in chunks.iter().enumerate() {
                if chunk.is_none() {
                    let piece = first + c as u32 * hashes::MAX_CHUNK;
                    wanted.push((hashes::layer_request(*root, tree, c as u64), piece));
                }
            }
        }
        for &index in self.v2.suspects.keys() {
            let Some(p) = self.meta.v2_piece(index) else {
                continue;
            };
            let tree = FileTree {
                length: p.file_length,
                piece_length: self.info.piece_length,
            };
            wanted.push((hashes::blocks_request(p.root, tree, p.in_file), index));
        }
        for (r, piece) in wanted {
            if self.is_asked(&r) {
                continue;
            }
            // A layer chunk may be asked of any peer with a piece of its file; the first
            // piece of the chunk is a good guess of one.
            let peer = self.asker(piece, &r).or_else(|| {
                self.peers
                    .iter()
                    .filter(|(k, p)| {
                        !self.v2.refused.contains(&(r, **k))
                            && p.state.has.count() > 0
                            && self.v2.asked.get(k).is_none_or(|a| a.len() < MAX_ASKED)
                            && (p.v2 || !self.v2_only())
                    })
                    .map(|(k, _)| *k)
                    .next()
            });
            if let Some(k) = peer {
                self.ask(k, r);
            }
        }
    }
}
