//! The BEP 52 hash exchange, sans I/O: which hash requests to answer and with what, which to
//! send, and whether the hashes a peer sends prove what they claim.
//!
//! Two needs drive requests here:
//! - a torrent that came without piece layers (a magnet link, or a .torrent that left them
//!   out) asks peers for each missing layer, in chunks of at most [`MAX_CHUNK`] hashes with
//!   the proof that leads from each chunk to the file's root;
//! - a piece that fails its merkle check asks for the hashes of its 16 KiB blocks (proved by
//!   the piece's hash, which is known), so that the bad block, and who sent it, is found
//!   and the good blocks are kept.
//!
//! Requests are checked as libtorrent checks them (`validate_hash_request`) before anything
//! is computed; answers are checked against a known root before anything is kept. Nothing
//! here allocates more than the request's bounded length.

use crate::merkle::{self, Hash, Proof};
use crate::wire::HashRange;

/// Most hashes asked for in one request (libtorrent asks for 512 and serves up to 8192).
pub const MAX_CHUNK: u32 = 512;
/// Most hashes of one request we answer.
pub const MAX_SERVED: u32 = 8192;

/// The shape of one file's tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileTree {
    pub length: u64,
    pub piece_length: u32,
}

impl FileTree {
    pub fn blocks(&self) -> u64 {
        self.length.div_ceil(merkle::BLOCK as u64)
    }

    /// Leaves of the padded tree.
    pub fn width(&self) -> u64 {
        merkle::num_leafs(self.blocks())
    }

    /// Layers below the root (the root's layer is this number, counted from the leaves).
    pub fn height(&self) -> u32 {
        self.width().trailing_zeros()
    }

    /// The piece layer's height (log2 of blocks per piece).
    pub fn piece_height(&self) -> u32 {
        merkle::piece_layer_height(self.piece_length)
    }

    pub fn pieces(&self) -> u64 {
        self.length.div_ceil(self.piece_length as u64)
    }

    /// Nodes in layer `base`, padding included.
    fn level_size(&self, base: u32) -> u64 {
        self.width() >> base
    }

    /// Whether a request for this file's hashes is well formed, as libtorrent decides it.
    pub fn valid(&self, r: &HashRange) -> bool {
        let layers = self.height();
        r.base < layers
            && r.length > 0
            && r.length <= MAX_SERVED
            && (r.index as u64) + (r.length as u64) <= self.level_size(r.base)
            && r.proof_layers < layers - r.base
    }

    /// How many hashes a `hashes` answer to `r` carries: the base hashes, then an uncle for
    /// each proof layer above the subtree they form.
    pub fn answer_len(r: &HashRange) -> usize {
        let inside = merkle::num_leafs(r.length as u64).trailing_zeros();
        r.length as usize + (r.proof_layers + 1).saturating_sub(inside) as usize
    }
}

/// Answers `r` from a file's piece layer (`layer`, one hash per piece, unpadded): the
/// requested nodes at or above the piece layer and their proof. `None` when it asks below
/// the piece layer (block hashes: the caller may compute them from the data), or is
/// malformed.
pub fn answer_from_layer(tree: FileTree, layer: &[Hash], r: &HashRange) -> Option<Vec<Hash>> {
    let h = tree.piece_height();
    if !tree.valid(r) || r.base < h || layer.len() as u64 != tree.pieces() {
        return None;
    }
    answer(
        &layer_nodes(tree, layer, r.base),
        merkle::pad_hash(r.base),
        r,
    )
}

/// Answers `r` from a file's block hashes (all of them, unpadded): any layer.
pub fn answer_from_leaves(tree: FileTree, leaves: &[Hash], r: &HashRange) -> Option<Vec<Hash>> {
    if !tree.valid(r) || leaves.len() as u64 != tree.blocks() {
        return None;
    }
    let nodes = merkle::layer_of(leaves, tree.width(), r.base);
    answer(&nodes, merkle::pad_hash(r.base), r)
}

/// Answers `r` below the piece layer from the leaves of the one piece it lies in (`leaves`,
/// the piece's blocks inside the file, unpadded; for a file of one piece, all its leaves)
/// and, above that piece, the file's piece layer. `None` when the range is not inside
/// piece `piece`, or is malformed.
pub fn answer_within_piece(
    tree: FileTree,
    layer: Option<&[Hash]>,
    piece: u64,
    leaves: &[Hash],
    r: &HashRange,
) -> Option<Vec<Hash>> {
    if !tree.valid(r) {
        return None;
    }
    if tree.length <= tree.piece_length as u64 {
        return answer_from_leaves(tree, leaves, r);
    }
    let layer = layer.filter(|l| l.len() as u64 == tree.pieces())?;
    let h = tree.piece_height();
    if r.base >= h {
        return answer_from_layer(tree, layer, r);
    }
    let bpp = 1u64 << h;
    let width = bpp >> r.base;
    let (first, count) = (piece * width, r.length as u64);
    if (r.index as u64) < first || r.index as u64 + count > first + width {
        return None;
    }
    let local = merkle::layer_of(leaves, bpp, r.base);
    let i = (r.index as u64 - first) as usize;
    let mut out: Vec<Hash> = local[i..i + count as usize].to_vec();
    let want = FileTree::answer_len(r) - count as usize;
    let n = merkle::num_leafs(count);
    let start = (i as u64 / n) * n;
    let mut uncles = merkle::uncles(&local, merkle::pad_hash(r.base), start, n, r.proof_layers);
    uncles.truncate(want);
    if uncles.len() < want {
        let mut nodes = layer.to_vec();
        nodes.resize(
            merkle::num_leafs(tree.pieces()) as usize,
            merkle::pad_hash(h),
        );
        let more = (want - uncles.len()) as u32;
        uncles.extend(merkle::uncles(
            &nodes,
            merkle::pad_hash(h),
            piece,
            1,
            more - 1,
        ));
    }
    if uncles.len() != want {
        return None;
    }
    out.extend(uncles);
    Some(out)
}

/// Layer `base` (at or above the piece layer) from the piece layer, padded.
fn layer_nodes(tree: FileTree, layer: &[Hash], base: u32) -> Vec<Hash> {
    let h = tree.piece_height();
    let width = merkle::num_leafs(tree.pieces());
    let mut nodes = layer.to_vec();
    nodes.resize(width as usize, merkle::pad_hash(h));
    for _ in h..base {
        nodes = nodes
            .chunks(2)
            .map(|p| merkle::sha256(&[p[0], p[1]].concat()))
            .collect();
    }
    nodes
}

fn answer(nodes: &[Hash], pad: Hash, r: &HashRange) -> Option<Vec<Hash>> {
    let (i, n) = (r.index as usize, r.length as usize);
    let mut out: Vec<Hash> = nodes.get(i..)?.iter().take(n).copied().collect();
    out.resize(n, pad);
    let count = merkle::num_leafs(n as u64);
    // The proof goes from the subtree the range forms; a range that is not a power of two
    // (libtorrent never asks one) is proved from the power of two that holds it.
    let start = (i as u64 / count) * count;
    out.extend(merkle::uncles(nodes, pad, start, count, r.proof_layers));
    Some(out)
}

/// Why an answer is not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    #[error("hashes for a request that was not made")]
    Unasked,
    #[error("{got} hashes where {want} were due")]
    Count { got: usize, want: usize },
    #[error("the hashes do not prove the known hash")]
    Proof,
}

/// A request for part of a file's piece layer, with what its answer must prove.
pub fn layer_request(root: Hash, tree: FileTree, chunk: u64) -> HashRange {
    let width = merkle::num_leafs(tree.pieces());
    let index = chunk * MAX_CHUNK as u64;
    let length = merkle::num_leafs((tree.pieces() - index).min(MAX_CHUNK as u64));
    HashRange {
        root,
        base: tree.piece_height(),
        index: index as u32,
        length: length as u32,
        proof_layers: width.trailing_zeros().saturating_sub(1),
    }
}

/// The chunks a piece layer comes in.
pub fn layer_chunks(tree: FileTree) -> u64 {
    tree.pieces().div_ceil(MAX_CHUNK as u64)
}

/// Checks an answer to `r` (a [`layer_request`]) against the file's `root`: the piece
/// hashes it proves (padding dropped).
pub fn accept_layer(
    tree: FileTree,
    root: &Hash,
    r: &HashRange,
    hashes: &[Hash],
) -> Result<Vec<Hash>, HashError> {
    let want = FileTree::answer_len(r);
    if hashes.len() != want {
        return Err(HashError::Count {
            got: hashes.len(),
            want,
        });
    }
    let (base, uncles) = hashes.split_at(r.length as usize);
    let proof = Proof {
        base_hashes: base,
        index: r.index as u64,
        uncles,
    };
    if proof.root().as_ref() != Some(root) {
        return Err(HashError::Proof);
    }
    let real = tree
        .pieces()
        .saturating_sub(r.index as u64)
        .min(r.length as u64) as usize;
    Ok(base[..real].to_vec())
}

/// A request for the block hashes of piece `k` of a file whose piece hash is known.
pub fn blocks_request(root: Hash, tree: FileTree, k: u32) -> HashRange {
    let bpp = 1u64 << tree.piece_height();
    let (index, length) = if tree.length <= tree.piece_length as u64 {
        (0, tree.width())
    } else {
        (k as u64 * bpp, bpp)
    };
    HashRange {
        root,
        base: 0,
        index: index as u32,
        length: length as u32,
        proof_layers: length.trailing_zeros().saturating_sub(1),
    }
}

/// Checks an answer to a [`blocks_request`] against the piece's known hash: the block hashes
/// of the piece (padding dropped: as many as the piece has blocks).
pub fn accept_blocks(
    tree: FileTree,
    piece_hash: &Hash,
    r: &HashRange,
    hashes: &[Hash],
) -> Result<Vec<Hash>, HashError> {
    if hashes.len() != r.length as usize {
        return Err(HashError::Count {
            got: hashes.len(),
            want: r.length as usize,
        });
    }
    if &merkle::root(hashes, r.length as u64, [0; 32]) != piece_hash {
        return Err(HashError::Proof);
    }
    let real = tree
        .blocks()
        .saturating_sub(r.index as u64)
        .min(r.length as u64) as usize;
    Ok(hashes[..real].to_vec())
}

#[cfg(test)]
mod tests;
