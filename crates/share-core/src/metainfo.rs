//! BitTorrent v1 metainfo (BEP 3): reading a .torrent into validated types.
//!
//! The input passes the strict scanner in [`crate::bencode`] first; serde_bencode then decodes
//! only what passed, with every name and path as raw bytes. The info-hash is the SHA-1 of the
//! exact bytes of `info` as they stand in the file, so keys we do not model, BEP 52 keys of a
//! hybrid torrent, or keys out of order keep the true hash. The `info` dictionary itself is
//! read in `metainfo/info.rs`: names and paths pass the sanitizing rule of [`sanitize`]
//! (what mainstream clients load, we load, at safe paths), BEP 47 attributes are kept, a
//! v2-only torrent is told apart and a hybrid one checked (`metainfo/v2.rs`).

use std::collections::HashSet;

use serde::Deserialize;
use serde_bencode::value::Value;
use sha1::{Digest, Sha1};

use crate::bencode::{self, BencodeError, Limits};
use crate::InfoHash;

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
    #[error(
        "BitTorrent v2-only torrents are not supported yet; this one has a v2 `file tree` but \
         no v1 `pieces` (v1 and hybrid v1+v2 torrents load)"
    )]
    V2Only,
    #[error("`meta version` {0} is not supported (only v1 and hybrid v1+v2 torrents are)")]
    UnknownVersion(i64),
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
    /// The 20-byte SHA-1 of each piece, concatenated.
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
        (self.pieces.len() / 20) as u32
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
    pub info_hash: InfoHash,
    pub info: Info,
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
        let (info_hash, info) = read_info(info_bytes)?;
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
            info_hash,
            info,
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
        let (info_hash, info) = read_info(info_bytes)?;
        Ok(Metainfo {
            info_hash,
            info,
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
        out.push(b'e');
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

    /// A magnet link (BEP 9) for this torrent.
    pub fn magnet(&self) -> String {
        crate::magnet_link(&self.info_hash, &self.info.name, &self.tracker_urls())
    }
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
fn read_info(info_bytes: &[u8]) -> Result<(InfoHash, Info), MetainfoError> {
    let scan = bencode::scan(info_bytes, Limits::TORRENT)?;
    if !scan.is_dict {
        return Err(MetainfoError::BadInfo("`info` is not a dictionary".into()));
    }
    let raw: info::RawInfo =
        serde_bencode::from_bytes(info_bytes).map_err(|e| MetainfoError::BadInfo(e.to_string()))?;
    let hash = InfoHash(Sha1::digest(info_bytes).into());
    let tree = scan
        .value_span(info_bytes, b"file tree")
        .map(|span| &info_bytes[span]);
    Ok((hash, info::validate(raw, tree, &hash)?))
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
