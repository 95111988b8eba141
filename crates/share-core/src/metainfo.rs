//! BitTorrent v1 metainfo (BEP 3): reading a .torrent into validated types.
//!
//! The input passes the strict scanner in [`crate::bencode`] first; serde_bencode then decodes
//! only what passed, with every name and path as raw bytes. The info-hash is the SHA-1 of the
//! exact bytes of `info` as they stand in the file, so keys we do not model (BEP 47 `attr`,
//! BEP 52 `file tree` in a hybrid torrent, `source`, ...) or keys out of order keep the true
//! hash. Everything a later layer relies on is checked here: piece count against total size,
//! safe relative paths, lengths that add up without overflow.

use std::collections::HashSet;

use serde::Deserialize;
use serde_bencode::value::Value;
use serde_bytes::ByteBuf;
use sha1::{Digest, Sha1};

use crate::bencode::{self, BencodeError, Limits};
use crate::InfoHash;

/// Largest piece length we accept when reading (libtorrent's limit is similar).
pub const MAX_PIECE_LENGTH: u64 = 256 << 20;
/// Most files in one torrent.
pub const MAX_FILES: usize = 1_000_000;
/// Longest single path component in bytes (common filesystems allow 255).
pub const MAX_COMPONENT_LEN: usize = 255;

/// Why a .torrent cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MetainfoError {
    #[error("malformed bencode: {0}")]
    Bencode(#[from] BencodeError),
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
    #[error("too many files ({0})")]
    TooManyFiles(usize),
    #[error("unsafe path in torrent: {path:?}: {reason}")]
    UnsafePath { path: String, reason: &'static str },
    #[error("the path {0:?} appears twice")]
    DuplicatePath(String),
    #[error("the path {0:?} is both a file and a folder")]
    FileFolderClash(String),
}

/// One file in the torrent's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Components relative to the content root `NAME/` (empty for a single-file torrent, whose
    /// content is the file `NAME` itself).
    pub path: Vec<String>,
    pub length: u64,
    /// Offset of the file's first byte in the torrent's byte stream.
    pub offset: u64,
    /// A BEP 47 padding file: its bytes are zeros and are never written to disk.
    pub padding: bool,
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

#[derive(Deserialize)]
struct RawInfo {
    name: ByteBuf,
    #[serde(rename = "name.utf-8")]
    name_utf8: Option<ByteBuf>,
    #[serde(rename = "piece length")]
    piece_length: i64,
    pieces: ByteBuf,
    length: Option<i64>,
    files: Option<Vec<RawFile>>,
    private: Option<i64>,
}

#[derive(Deserialize)]
struct RawFile {
    length: i64,
    path: Vec<ByteBuf>,
    #[serde(rename = "path.utf-8")]
    path_utf8: Option<Vec<ByteBuf>>,
    attr: Option<ByteBuf>,
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
        if info_bytes.first() != Some(&b'd') {
            return Err(MetainfoError::BadInfo("`info` is not a dictionary".into()));
        }
        let raw_info: RawInfo = serde_bencode::from_bytes(info_bytes)
            .map_err(|e| MetainfoError::BadInfo(e.to_string()))?;
        let info = validate_info(raw_info)?;
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
            info_hash: InfoHash(Sha1::digest(info_bytes).into()),
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
        let scan = bencode::scan(info_bytes, Limits::TORRENT)?;
        if !scan.is_dict {
            return Err(MetainfoError::BadInfo("`info` is not a dictionary".into()));
        }
        let raw_info: RawInfo = serde_bencode::from_bytes(info_bytes)
            .map_err(|e| MetainfoError::BadInfo(e.to_string()))?;
        let info = validate_info(raw_info)?;
        Ok(Metainfo {
            info_hash: InfoHash(Sha1::digest(info_bytes).into()),
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

fn validate_info(raw: RawInfo) -> Result<Info, MetainfoError> {
    if raw.piece_length <= 0 || raw.piece_length as u64 > MAX_PIECE_LENGTH {
        return Err(MetainfoError::BadPieceLength(raw.piece_length));
    }
    let piece_length = raw.piece_length as u32;
    if !raw.pieces.len().is_multiple_of(20) {
        return Err(MetainfoError::PiecesNotMultipleOf20(raw.pieces.len()));
    }
    let name = component(
        raw.name_utf8
            .as_deref()
            .filter(|n| std::str::from_utf8(n).is_ok())
            .unwrap_or(&raw.name),
    )
    .map_err(|reason| MetainfoError::UnsafePath {
        path: String::from_utf8_lossy(&raw.name).into_owned(),
        reason,
    })?;

    let (files, single_file) = match (raw.length, raw.files) {
        (Some(len), None) => {
            let length = u64::try_from(len).map_err(|_| MetainfoError::BadLength(len))?;
            let entry = FileEntry {
                path: Vec::new(),
                length,
                offset: 0,
                padding: false,
            };
            (vec![entry], true)
        }
        (None, Some(raw_files)) => (validate_files(raw_files)?, false),
        _ => return Err(MetainfoError::AmbiguousLayout),
    };
    let total_length = files.last().map(|f| f.offset + f.length).unwrap_or(0);
    if total_length == 0 {
        return Err(MetainfoError::Empty);
    }
    let expected = total_length.div_ceil(piece_length as u64);
    let found = raw.pieces.len() / 20;
    if found as u64 != expected {
        return Err(MetainfoError::PieceCountMismatch {
            found,
            expected,
            total: total_length,
        });
    }
    Ok(Info {
        name,
        piece_length,
        pieces: raw.pieces.into_vec(),
        files,
        total_length,
        private: raw.private == Some(1),
        single_file,
    })
}

fn validate_files(raw_files: Vec<RawFile>) -> Result<Vec<FileEntry>, MetainfoError> {
    if raw_files.len() > MAX_FILES {
        return Err(MetainfoError::TooManyFiles(raw_files.len()));
    }
    let mut files = Vec::with_capacity(raw_files.len());
    let mut offset = 0u64;
    for f in raw_files {
        let length = u64::try_from(f.length).map_err(|_| MetainfoError::BadLength(f.length))?;
        let utf8 = f
            .path_utf8
            .filter(|p| p.iter().all(|c| std::str::from_utf8(c).is_ok()));
        let raw_path = utf8.as_ref().unwrap_or(&f.path);
        let shown = || {
            raw_path
                .iter()
                .map(|c| String::from_utf8_lossy(c))
                .collect::<Vec<_>>()
                .join("/")
        };
        if raw_path.is_empty() {
            return Err(MetainfoError::UnsafePath {
                path: String::new(),
                reason: "the path is empty",
            });
        }
        let path = raw_path
            .iter()
            .map(|c| component(c))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|reason| MetainfoError::UnsafePath {
                path: shown(),
                reason,
            })?;
        files.push(FileEntry {
            path,
            length,
            offset,
            padding: f.attr.is_some_and(|a| a.contains(&b'p')),
        });
        offset = offset
            .checked_add(length)
            .ok_or(MetainfoError::LengthOverflow)?;
    }
    check_unique(&files)?;
    Ok(files)
}

/// No two files share a path, and no file is also a folder of another.
fn check_unique(files: &[FileEntry]) -> Result<(), MetainfoError> {
    let mut paths = HashSet::with_capacity(files.len());
    for f in files.iter().filter(|f| !f.padding) {
        if !paths.insert(f.path.as_slice()) {
            return Err(MetainfoError::DuplicatePath(f.path.join("/")));
        }
    }
    for f in files.iter().filter(|f| !f.padding) {
        for n in 1..f.path.len() {
            if paths.contains(&f.path[..n]) {
                return Err(MetainfoError::FileFolderClash(f.path[..n].join("/")));
            }
        }
    }
    Ok(())
}

/// Turns one raw path component into a safe one, or says why it is unsafe.
///
/// Names that are not UTF-8 are kept losslessly: each byte that is not part of valid UTF-8
/// becomes `%XX`, so distinct raw names stay distinct (a clash with a real `%XX` name is
/// caught as a duplicate path).
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
    Ok(match std::str::from_utf8(raw) {
        Ok(s) => s.to_owned(),
        Err(_) => lossless_escape(raw),
    })
}

fn lossless_escape(mut raw: &[u8]) -> String {
    let mut out = String::new();
    loop {
        match std::str::from_utf8(raw) {
            Ok(s) => {
                out.push_str(s);
                return out;
            }
            Err(e) => {
                let (good, rest) = raw.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(good).unwrap_or_default());
                let bad = e.error_len().unwrap_or(rest.len());
                for b in &rest[..bad] {
                    out.push_str(&format!("%{b:02X}"));
                }
                raw = &rest[bad..];
            }
        }
    }
}

#[cfg(test)]
mod tests;
