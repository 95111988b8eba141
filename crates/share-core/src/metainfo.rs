//! Metainfo (BEP 3, and BEP 52 for v2 and hybrid torrents): reading a .torrent into
//! validated types.
//!
//! The input passes the strict scanner in [`crate::bencode`] first; serde_bencode then decodes
//! only what passed, with every name and path as raw bytes. The info-hash is the SHA-1 of the
//! exact bytes of `info` as they stand in the file, so keys we do not model, BEP 52 keys of a
//! hybrid torrent, or keys out of order keep the true hash. The `info` dictionary itself is
//! read in `metainfo/info.rs`: names and paths pass the sanitizing rule of [`sanitize`]
//! (what mainstream clients load, we load, at safe paths), BEP 47 attributes are kept, and
//! a v2 `file tree` is read, laid out in pieces, and for a hybrid checked against the v1
//! list (`metainfo/v2.rs`). A v2 torrent's `piece layers` (outside `info`) must be as long
//! as their files need and hash to their roots; one that is missing is fetched from peers.

use std::collections::HashSet;

use serde::Deserialize;
use serde_bencode::value::Value;
use sha1::{Digest, Sha1};

use crate::bencode::{self, BencodeError, Limits};
use crate::merkle::{self, Hash};
use crate::{InfoHash, InfoHashes};

/// Largest piece length we accept when reading (libtorrent's limit is similar).
pub const MAX_PIECE_LENGTH: u64 = 256 << 20;
/// Most files in one torrent.
pub const MAX_FILES: usize = 1_000_000;
/// Longest single path component in bytes (common filesystems allow 255).
pub const MAX_COMPONENT_LEN: usize = sanitize::MAX_ELEMENT_LEN;

mod info;
pub mod sanitize;
mod v2;

/// Why a .torrent cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MetainfoError {
    /// The text of the bencode error is part of this one's (it is not also a `source`, so
    /// that a printed error chain says it once).
    #[error("malformed bencode: {0}")]
    Bencode(BencodeError),
    #[error("the torrent is not a dictionary")]
    NotADict,
    #[error("the torrent has no `info` dictionary")]
    MissingInfo,
    #[error("invalid `info` dictionary: {0}")]
    BadInfo(String),
    #[error("piece length {0} is invalid (must be between 1 and {MAX_PIECE_LENGTH} bytes)")]
    BadPieceLength(i64),
    #[error("`pieces` is {0} bytes, not a multiple of 20")]
    PiecesNotMultipleOf20(usize),
    #[error("`pieces` holds {found} hashes but {expected} pieces are needed for {total} bytes")]
    PieceCountMismatch {
        found: usize,
        expected: u64,
        total: u64,
    },
    #[error("file length {0} is invalid")]
    BadLength(i64),
    #[error("the total size of the files overflows")]
    LengthOverflow,
    #[error("the torrent has no content (total size 0)")]
    Empty,
    #[error("torrent has both `length` and `files`, or neither")]
    AmbiguousLayout,
    /// The index counts from 1, as the other messages about files do.
    #[error("file {0} of the `files` list has no `path`")]
    FileWithoutPath(usize),
    #[error("file {0} of the `files` list has an empty `path`")]
    FileWithEmptyPath(usize),
    #[error("too many files ({0})")]
    TooManyFiles(usize),
    #[error("too many files share a path to give each one its own")]
    TooManyDuplicates,
    #[error("`meta version` {0} is not supported (only 1 and 2 are)")]
    UnknownVersion(i64),
    #[error("{0}")]
    BadFileTree(String),
    #[error("piece length {0} is invalid for BitTorrent v2 (a power of two of at least 16384)")]
    V2PieceLength(u32),
    #[error("`piece layers`: {0}")]
    BadPieceLayers(String),
    #[error("the v1 and v2 file lists of this hybrid torrent disagree: {0}")]
    HybridMismatch(String),
}

impl From<BencodeError> for MetainfoError {
    fn from(e: BencodeError) -> Self {
        MetainfoError::Bencode(e)
    }
}

/// One file in the torrent's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Where the file is stored: sanitized components relative to the content root `NAME/`
    /// (empty for a single-file torrent, whose content is the file `NAME` itself).
    pub path: Vec<String>,
    /// Bytes in the torrent's byte stream (0 for a symlink).
    pub length: u64,
    /// Offset of the file's first byte in the torrent's byte stream.
    pub offset: u64,
    /// A BEP 47 padding file (`attr` holds `p`): its bytes are zeros and are never written
    /// to disk.
    pub padding: bool,
    /// BEP 47 `x`: the file is made executable.
    pub executable: bool,
    /// BEP 47 `h`: the creator's file was hidden (kept for display; nothing is renamed).
    pub hidden: bool,
    /// BEP 47 `l`: a symlink to this target, sanitized components relative to the content
    /// root, always inside it (a symlink that would leave it is not in the list at all).
    pub symlink: Option<Vec<String>>,
    /// BEP 52: the root of the file's merkle tree (v2 and hybrid torrents; non-empty files).
    pub pieces_root: Option<Hash>,
}

impl FileEntry {
    /// The path below the content root, joined with `/` (the name for a single file).
    pub fn display_path(&self, info: &Info) -> String {
        if self.path.is_empty() {
            info.name.clone()
        } else {
            self.path.join("/")
        }
    }
}

/// The validated `info` dictionary.
#[derive(Debug, Clone)]
pub struct Info {
    /// The suggested name of the file or folder, safe to use as one path component.
    pub name: String,
    pub piece_length: u32,
    /// It has v1 piece hashes (SHA-1, `pieces`): a v1 or hybrid torrent.
    pub v1: bool,
    /// It has a v2 `file tree` (its files start on piece boundaries and carry merkle roots):
    /// a v2 or hybrid torrent.
    pub v2: bool,
    /// The 20-byte SHA-1 of each piece, concatenated (empty for a v2-only torrent).
    pub pieces: Vec<u8>,
    pub files: Vec<FileEntry>,
    pub total_length: u64,
    pub private: bool,
    /// True for a single-file torrent (`length`), false for a folder (`files`).
    pub single_file: bool,
    /// What was changed to load the torrent safely (a renamed path, a skipped symlink), for
    /// the user to see.
    pub warnings: Vec<String>,
}

impl Info {
    pub fn piece_count(&self) -> u32 {
        if self.v1 {
            (self.pieces.len() / 20) as u32
        } else {
            self.total_length.div_ceil(self.piece_length as u64) as u32
        }
    }

    /// The file piece `index` lies in (v2: each piece lies in one file): its index in
    /// `files`, and the piece's number inside it.
    pub fn piece_file(&self, index: u32) -> Option<(usize, u32)> {
        let start = index as u64 * self.piece_length as u64;
        let i = self.files.partition_point(|f| f.offset + f.length <= start);
        let f = self
            .files
            .get(i)
            .filter(|f| !f.padding && f.offset <= start)?;
        let first = f.offset / self.piece_length as u64;
        Some((i, index - first as u32))
    }

    /// The pieces that hold bytes of file `file` (its index in `files`); `None` for an
    /// empty file or an index out of range.
    pub fn file_pieces(&self, file: usize) -> Option<std::ops::RangeInclusive<u32>> {
        let f = self.files.get(file).filter(|f| f.length > 0)?;
        let pl = self.piece_length as u64;
        Some((f.offset / pl) as u32..=((f.offset + f.length - 1) / pl) as u32)
    }

    /// The expected SHA-1 of piece `index`; `None` when out of range.
    pub fn piece_hash(&self, index: u32) -> Option<[u8; 20]> {
        let start = (index as usize).checked_mul(20)?;
        self.pieces.get(start..start + 20)?.try_into().ok()
    }

    /// The length of piece `index` (the last one may be short); 0 when out of range.
    pub fn piece_size(&self, index: u32) -> u32 {
        if index >= self.piece_count() {
            return 0;
        }
        let start = index as u64 * self.piece_length as u64;
        (self.total_length - start).min(self.piece_length as u64) as u32
    }
}

/// A validated .torrent.
#[derive(Debug, Clone)]
pub struct Metainfo {
    /// The 20-byte key the torrent is known by ([`InfoHashes::key`]: v1 where there is one).
    pub info_hash: InfoHash,
    /// Its v1 and v2 info-hashes, as it has them.
    pub hashes: InfoHashes,
    pub info: Info,
    /// BEP 52 piece layers by pieces root (checked against the roots); a file longer than
    /// a piece whose layer is missing gets it from peers.
    pub piece_layers: std::collections::HashMap<Hash, Vec<Hash>>,
    /// The exact bytes of the `info` dictionary (for BEP 9 metadata exchange).
    pub info_bytes: Vec<u8>,
    /// Tracker tiers (BEP 12): `announce-list` when present, otherwise `[[announce]]`.
    pub trackers: Vec<Vec<String>>,
    pub comment: Option<String>,
    pub created_by: Option<String>,
    pub creation_date: Option<i64>,
    /// Web seeds (BEP 19).
    pub url_list: Vec<String>,
}

#[derive(Deserialize)]
struct RawTorrent {
    announce: Option<Value>,
    #[serde(rename = "announce-list")]
    announce_list: Option<Value>,
    comment: Option<Value>,
    #[serde(rename = "created by")]
    created_by: Option<Value>,
    #[serde(rename = "creation date")]
    creation_date: Option<Value>,
    #[serde(rename = "url-list")]
    url_list: Option<Value>,
}

impl Metainfo {
    /// Reads and validates a .torrent file's bytes.
    pub fn from_bytes(input: &[u8]) -> Result<Metainfo, MetainfoError> {
        let scan = bencode::scan(input, Limits::TORRENT)?;
        if !scan.is_dict {
            return Err(MetainfoError::NotADict);
        }
        let span = scan
            .value_span(input, b"info")
            .ok_or(MetainfoError::MissingInfo)?;
        let info_bytes = &input[span];
        let (hashes, info) = read_info(info_bytes)?;
        let piece_layers = match (info.v2, scan.value_span(input, b"piece layers")) {
            (true, Some(span)) => read_piece_layers(&input[span], &info)?,
            _ => Default::default(),
        };
        // The outer fields are informative only: a wrong type is ignored, not fatal.
        let raw: Option<RawTorrent> = serde_bencode::from_bytes(input).ok();
        let (announce, announce_list, comment, created_by, creation_date, url_list) = match raw {
            Some(r) => (
                r.announce,
                r.announce_list,
                r.comment,
                r.created_by,
                r.creation_date,
                r.url_list,
            ),
            None => Default::default(),
        };
        Ok(Metainfo {
            info_hash: hashes.key(),
            hashes,
            info,
            piece_layers,
            info_bytes: info_bytes.to_vec(),
            trackers: tracker_tiers(announce, announce_list),
            comment: comment.as_ref().and_then(text),
            created_by: created_by.as_ref().and_then(text),
            creation_date: match creation_date {
                Some(Value::Int(d)) => Some(d),
                _ => None,
            },
            url_list: match url_list {
                Some(Value::List(l)) => l.iter().filter_map(text).collect(),
                Some(v) => text(&v).into_iter().collect(),
                None => Vec::new(),
            },
        })
    }

    /// Builds a torrent from a bare `info` dictionary (BEP 9 metadata exchange) and the
    /// trackers a magnet link named. The bytes pass the same strict scan and checks as a
    /// .torrent file; the info-hash is their SHA-1.
    pub fn from_info_bytes(
        info_bytes: &[u8],
        trackers: Vec<Vec<String>>,
    ) -> Result<Metainfo, MetainfoError> {
        let (hashes, info) = read_info(info_bytes)?;
        Ok(Metainfo {
            info_hash: hashes.key(),
            hashes,
            info,
            piece_layers: Default::default(),
            info_bytes: info_bytes.to_vec(),
            trackers,
            comment: None,
            created_by: None,
            creation_date: None,
            url_list: Vec::new(),
        })
    }

    /// A .torrent holding this torrent's `info` bytes unchanged and its trackers (how a
    /// magnet link's metadata is kept in the state folder).
    pub fn to_torrent_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.info_bytes.len() + 256);
        out.push(b'd');
        let urls = self.tracker_urls();
        let bytes = crate::write::string;
        if let Some(first) = urls.first() {
            bytes(&mut out, b"announce");
            bytes(&mut out, first.as_bytes());
            bytes(&mut out, b"announce-list");
            out.push(b'l');
            for tier in &self.trackers {
                out.push(b'l');
                for u in tier {
                    bytes(&mut out, u.as_bytes());
                }
                out.push(b'e');
            }
            out.push(b'e');
        }
        bytes(&mut out, b"info");
        out.extend_from_slice(&self.info_bytes);
        if !self.piece_layers.is_empty() {
            bytes(&mut out, b"piece layers");
            out.extend_from_slice(&encode_piece_layers(&self.piece_layers));
        }
        out.push(b'e');
        out
    }

    /// The hash piece `index` must have as BEP 52 verifies it: its file, and the piece's
    /// hash (from the piece layer, or the file's root for a file of one piece), `None`
    /// while the layer is not known. `None` for a v1 torrent or a piece of padding only.
    pub fn v2_piece(&self, index: u32) -> Option<V2Piece> {
        if !self.info.v2 {
            return None;
        }
        let (file, k) = self.info.piece_file(index)?;
        let f = &self.info.files[file];
        let root = f.pieces_root?;
        let hash = if f.length <= self.info.piece_length as u64 {
            Some(root)
        } else {
            self.piece_layers
                .get(&root)
                .and_then(|l| l.get(k as usize))
                .copied()
        };
        Some(V2Piece {
            file,
            file_length: f.length,
            in_file: k,
            file_offset: f.offset,
            root,
            hash,
        })
    }

    /// Takes the piece layer of a file (fetched from peers) if it hashes to the file's root.
    pub fn add_piece_layer(&mut self, root: Hash, layer: Vec<Hash>) -> bool {
        let fits = self.info.files.iter().any(|f| {
            f.pieces_root == Some(root)
                && f.length > self.info.piece_length as u64
                && layer.len() as u64 == f.length.div_ceil(self.info.piece_length as u64)
        });
        if fits && merkle::layer_root(&layer, self.info.piece_length) == root {
            self.piece_layers.insert(root, layer);
            true
        } else {
            false
        }
    }

    /// Roots of files longer than a piece whose layer is not known yet.
    pub fn missing_layers(&self) -> Vec<Hash> {
        let mut out: Vec<Hash> = self
            .info
            .files
            .iter()
            .filter(|f| f.length > self.info.piece_length as u64)
            .filter_map(|f| f.pieces_root)
            .filter(|r| !self.piece_layers.contains_key(r))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Every tracker URL, tier by tier, without repeats.
    pub fn tracker_urls(&self) -> Vec<String> {
        let mut seen = HashSet::new();
        self.trackers
            .iter()
            .flatten()
            .filter(|u| seen.insert(u.as_str()))
            .cloned()
            .collect()
    }

    /// A magnet link (BEP 9) for this torrent: `btih` and/or `btmh`.
    pub fn magnet(&self) -> String {
        crate::magnet_link(&self.hashes, &self.info.name, &self.tracker_urls())
    }
}

/// Where a piece of a v2 torrent lies and the hash it must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct V2Piece {
    /// Index in `info.files`.
    pub file: usize,
    pub file_length: u64,
    /// The piece's number inside its file.
    pub in_file: u32,
    /// The file's offset in the torrent's byte stream.
    pub file_offset: u64,
    pub root: Hash,
    /// `None` while the file's piece layer is not known.
    pub hash: Option<Hash>,
}

/// Reads `piece layers` (its raw bytes): a dictionary of 32-byte roots to concatenated
/// hashes. Each layer must have one hash per piece of a file longer than a piece with that
/// root and hash to it; layers of unknown roots are ignored.
fn read_piece_layers(
    raw: &[u8],
    info: &Info,
) -> Result<std::collections::HashMap<Hash, Vec<Hash>>, MetainfoError> {
    let bad = |what: String| MetainfoError::BadPieceLayers(what);
    let dict: std::collections::BTreeMap<serde_bytes::ByteBuf, serde_bytes::ByteBuf> =
        serde_bencode::from_bytes(raw).map_err(|_| bad("not a dictionary of strings".into()))?;
    let pl = info.piece_length as u64;
    let mut out = std::collections::HashMap::new();
    for (key, value) in dict {
        let root: Hash = key
            .as_slice()
            .try_into()
            .map_err(|_| bad(format!("a key of {} bytes, not 32", key.len())))?;
        if !value.len().is_multiple_of(32) {
            return Err(bad(format!(
                "the layer of {} is not whole hashes",
                hex::encode(root)
            )));
        }
        let Some(file) = info
            .files
            .iter()
            .find(|f| f.pieces_root == Some(root) && f.length > pl)
        else {
            continue;
        };
        let pieces = file.length.div_ceil(pl) as usize;
        if value.len() != pieces * 32 {
            return Err(bad(format!(
                "the layer of {} holds {} hashes, its file needs {pieces}",
                file.path.join("/"),
                value.len() / 32
            )));
        }
        let layer: Vec<Hash> = value
            .chunks_exact(32)
            .map(|c| c.try_into().expect("32 bytes"))
            .collect();
        if merkle::layer_root(&layer, info.piece_length) != root {
            return Err(bad(format!(
                "the layer of {} does not hash to its root",
                file.path.join("/")
            )));
        }
        out.insert(root, layer);
    }
    Ok(out)
}

/// `piece layers` as bencode, roots sorted.
fn encode_piece_layers(layers: &std::collections::HashMap<Hash, Vec<Hash>>) -> Vec<u8> {
    let mut keys: Vec<&Hash> = layers.keys().collect();
    keys.sort();
    let mut out = vec![b'd'];
    for k in keys {
        crate::write::string(&mut out, k);
        crate::write::string(&mut out, &layers[k].concat());
    }
    out.push(b'e');
    out
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    }
}

fn tracker_tiers(announce: Option<Value>, list: Option<Value>) -> Vec<Vec<String>> {
    let mut tiers: Vec<Vec<String>> = match list {
        Some(Value::List(tiers)) => tiers
            .iter()
            .map(|tier| match tier {
                Value::List(urls) => urls.iter().filter_map(text).collect(),
                other => text(other).into_iter().collect(),
            })
            .filter(|t: &Vec<String>| !t.is_empty())
            .collect(),
        _ => Vec::new(),
    };
    if tiers.is_empty() {
        if let Some(a) = announce.as_ref().and_then(text) {
            if !a.is_empty() {
                tiers.push(vec![a]);
            }
        }
    }
    tiers
}

/// Scans, decodes and validates the bytes of an `info` dictionary; its info-hash is their
/// SHA-1.
fn read_info(info_bytes: &[u8]) -> Result<(InfoHashes, Info), MetainfoError> {
    let scan = bencode::scan(info_bytes, Limits::TORRENT)?;
    if !scan.is_dict {
        return Err(MetainfoError::BadInfo("`info` is not a dictionary".into()));
    }
    let raw: info::RawInfo =
        serde_bencode::from_bytes(info_bytes).map_err(|e| MetainfoError::BadInfo(e.to_string()))?;
    let tree = scan
        .value_span(info_bytes, b"file tree")
        .map(|span| &info_bytes[span]);
    // The v2 hash only for what loads as v2; the name's fallback needs one of them first.
    let provisional = InfoHashes::v1(InfoHash(Sha1::digest(info_bytes).into()));
    let info = info::validate(raw, tree, &provisional)?;
    let hashes = InfoHashes::of_info(info_bytes, info.v1, info.v2);
    Ok((hashes, info))
}

/// Checks that a name we are about to write into a new torrent (`share create --name`) is
/// one path component that needs no sanitizing; says why not otherwise. Reading a torrent
/// never refuses a name: it applies [`sanitize::element`] instead.
pub fn component(raw: &[u8]) -> Result<String, &'static str> {
    if raw.is_empty() {
        return Err("a path component is empty");
    }
    if raw == b"." || raw == b".." {
        return Err("a path component is `.` or `..`");
    }
    if raw.contains(&0) {
        return Err("a path component holds a NUL byte");
    }
    if raw.contains(&b'/') || raw.contains(&b'\\') {
        return Err("a path component holds a path separator");
    }
    if raw.len() > MAX_COMPONENT_LEN {
        return Err("a path component is longer than 255 bytes");
    }
    std::str::from_utf8(raw)
        .map(str::to_owned)
        .map_err(|_| "a path component is not UTF-8")
}

#[cfg(test)]
mod tests;
