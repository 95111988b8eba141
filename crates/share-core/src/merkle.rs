//! BEP 52 merkle trees: SHA-256 over 16 KiB blocks, one tree per file.
//!
//! The leaves are the hashes of a file's 16 KiB blocks (the last one hashed at its real,
//! short length); a tree is padded with zero leaves to a power of two, and a parent is the
//! hash of its two children. A file of more than one piece is verified piece by piece
//! against its *piece layer* (the tree's nodes that each cover one piece); the piece layer
//! hashes to the file's *pieces root*. A file of one piece or less has no piece layer: its
//! root covers its blocks padded to the next power of two of their count (not to the
//! blocks per piece), and is its one piece's hash.
//!
//! Layers are counted up from the leaves (0 = block hashes), as hash requests count them.
//! Pure functions over hashes; no I/O.

use sha2::{Digest, Sha256};

/// Bytes per leaf.
pub const BLOCK: usize = 16384;

pub type Hash = [u8; 32];

pub fn sha256(data: &[u8]) -> Hash {
    Sha256::digest(data).into()
}

fn parent(l: &Hash, r: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update(l);
    h.update(r);
    h.finalize().into()
}

/// The hash of an all-zero subtree `k` layers high (0: a zero leaf).
pub fn pad_hash(k: u32) -> Hash {
    let mut h = [0u8; 32];
    for _ in 0..k {
        h = parent(&h, &h);
    }
    h
}

/// The smallest power of two at least `n` (at least 1).
pub fn num_leafs(n: u64) -> u64 {
    n.max(1).next_power_of_two()
}

/// The leaf hashes of `data` (a file's bytes, or a whole number of its blocks).
pub fn leaves(data: &[u8]) -> Vec<Hash> {
    data.chunks(BLOCK).map(sha256).collect()
}

/// The root of `nodes` padded with `pad` (the hash of a padding node at their layer) to
/// `width` nodes, a power of two at least `nodes.len()`.
pub fn root(nodes: &[Hash], width: u64, pad: Hash) -> Hash {
    debug_assert!(width.is_power_of_two() && width >= nodes.len() as u64);
    let mut layer = nodes.to_vec();
    let mut pad = pad;
    let mut width = width;
    if layer.is_empty() {
        layer.push(pad);
    }
    while width > 1 {
        if layer.len() % 2 == 1 {
            layer.push(pad);
        }
        layer = layer.chunks(2).map(|p| parent(&p[0], &p[1])).collect();
        pad = parent(&pad, &pad);
        width /= 2;
    }
    layer[0]
}

/// Layers from the leaves up to the piece layer: log2 of the blocks per piece.
pub fn piece_layer_height(piece_length: u32) -> u32 {
    (piece_length as usize / BLOCK).max(1).trailing_zeros()
}

/// A file's pieces root and, when it is longer than one piece, its piece layer, from its
/// block hashes.
pub fn file_tree(leaves: &[Hash], length: u64, piece_length: u32) -> (Hash, Option<Vec<Hash>>) {
    let bpp = (piece_length as usize / BLOCK).max(1);
    if length <= piece_length as u64 {
        return (root(leaves, num_leafs(leaves.len() as u64), [0; 32]), None);
    }
    let layer: Vec<Hash> = leaves
        .chunks(bpp)
        .map(|c| root(c, bpp as u64, [0; 32]))
        .collect();
    let r = layer_root(&layer, piece_length);
    (r, Some(layer))
}

/// The root a piece layer hashes to.
pub fn layer_root(layer: &[Hash], piece_length: u32) -> Hash {
    root(
        layer,
        num_leafs(layer.len() as u64),
        pad_hash(piece_layer_height(piece_length)),
    )
}

/// The hash piece `k` of a file must have, from its block hashes (the piece's blocks that
/// lie inside the file): the root of `bpp` leaves, or for a file of one piece or less, the
/// root over its blocks padded to a power of two of their count.
pub fn piece_hash(blocks: &[Hash], file_length: u64, piece_length: u32) -> Hash {
    if file_length <= piece_length as u64 {
        root(blocks, num_leafs(blocks.len() as u64), [0; 32])
    } else {
        let bpp = (piece_length as usize / BLOCK).max(1);
        root(blocks, bpp as u64, [0; 32])
    }
}

/// The nodes of layer `base` of a tree whose layer 0 is `leaves` padded to `width`: what a
/// `hashes` message sends as its base hashes (padding nodes included).
pub fn layer_of(leaves: &[Hash], width: u64, base: u32) -> Vec<Hash> {
    let mut layer = leaves.to_vec();
    let mut pad = [0u8; 32];
    let mut width = width;
    for _ in 0..base {
        if layer.len() % 2 == 1 {
            layer.push(pad);
        }
        layer = layer.chunks(2).map(|p| parent(&p[0], &p[1])).collect();
        pad = parent(&pad, &pad);
        width /= 2;
    }
    layer.resize(width as usize, pad);
    layer
}

/// What a `hashes` message (BEP 52) proves: `base` hashes at layer `base` starting at
/// `index`, a power-of-two count, and `uncles` bottom-up from the subtree they form to
/// (short of) the root of a tree whose layer `base` is `level_size` wide.
pub struct Proof<'a> {
    pub base_hashes: &'a [Hash],
    pub index: u64,
    pub uncles: &'a [Hash],
}

impl Proof<'_> {
    /// The root these hashes lead to: the subtree of the base hashes, then each uncle in
    /// turn as its sibling (left or right by the subtree's position). `None` if the shape
    /// does not fit (a count that is not a power of two, an index not a multiple of it).
    pub fn root(&self) -> Option<Hash> {
        let n = self.base_hashes.len() as u64;
        if n == 0 || !n.is_power_of_two() || !self.index.is_multiple_of(n) {
            return None;
        }
        let mut node = root(self.base_hashes, n, [0; 32]);
        let mut pos = self.index / n;
        for u in self.uncles {
            node = if pos.is_multiple_of(2) {
                parent(&node, u)
            } else {
                parent(u, &node)
            };
            pos /= 2;
        }
        Some(node)
    }
}

/// The uncles that prove the `count` nodes at `index` of `layer` (one layer of a tree, its
/// full padded width, a power of two) up `proof_layers` layers of proof, bottom-up, the
/// first `log2(count)` layers being inside the subtree (they cost no uncle). As libtorrent
/// sends them: at most up to the layer below the root.
pub fn uncles(layer: &[Hash], pad: Hash, index: u64, count: u64, proof_layers: u32) -> Vec<Hash> {
    let inside = count.max(1).trailing_zeros();
    let wanted = proof_layers.saturating_add(1).saturating_sub(inside);
    let mut out = Vec::new();
    // Build up from the subtree's layer.
    let mut nodes: Vec<Hash> = layer.to_vec();
    let mut pad = pad;
    for _ in 0..inside {
        nodes = nodes.chunks(2).map(|p| parent(&p[0], &p[1])).collect();
        pad = parent(&pad, &pad);
    }
    let mut pos = index / count.max(1);
    for _ in 0..wanted {
        if nodes.len() < 2 {
            break;
        }
        let sibling = pos ^ 1;
        out.push(nodes.get(sibling as usize).copied().unwrap_or(pad));
        if nodes.len() % 2 == 1 {
            nodes.push(pad);
        }
        nodes = nodes.chunks(2).map(|p| parent(&p[0], &p[1])).collect();
        pad = parent(&pad, &pad);
        pos /= 2;
    }
    out
}

#[cfg(test)]
mod tests;
