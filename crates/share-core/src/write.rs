//! Writing a v1 metainfo file from piece hashes that were computed elsewhere.
//!
//! The info dictionary holds exactly the keys mktorrent writes (`files` or `length`, `name`,
//! `piece length`, `pieces`, and `private` when set), in sorted order, so that the same content
//! and piece length give the same info-hash as mktorrent and libtorrent.

use serde::Serialize;
use serde_bytes::ByteBuf;

pub mod v2;

/// One file of a torrent being created.
#[derive(Debug, Clone)]
pub struct NewFile {
    /// Components below the content root; empty for a single-file torrent.
    pub path: Vec<String>,
    pub length: u64,
}

/// Everything a new torrent holds.
#[derive(Debug, Clone)]
pub struct NewTorrent {
    pub name: String,
    pub piece_length: u32,
    pub pieces: Vec<u8>,
    pub files: Vec<NewFile>,
    /// True for a single file (`length`), false for a folder (`files`).
    pub single_file: bool,
    pub trackers: Vec<String>,
    pub private: bool,
    pub comment: Option<String>,
    pub created_by: Option<String>,
    pub creation_date: Option<i64>,
    /// Web seeds (BEP 19 `url-list`).
    pub web_seeds: Vec<String>,
}

// Field order is the sorted key order; serde_bencode writes fields in declaration order.
#[derive(Serialize)]
struct OutTorrent<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    announce: Option<&'a str>,
    #[serde(rename = "announce-list", skip_serializing_if = "Option::is_none")]
    announce_list: Option<Vec<Vec<&'a str>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    comment: Option<&'a str>,
    #[serde(rename = "created by", skip_serializing_if = "Option::is_none")]
    created_by: Option<&'a str>,
    #[serde(rename = "creation date", skip_serializing_if = "Option::is_none")]
    creation_date: Option<i64>,
    info: OutInfo<'a>,
    #[serde(rename = "url-list", skip_serializing_if = "Option::is_none")]
    url_list: Option<UrlList<'a>>,
}

/// `url-list`: one URL as a string, several as a list (as mktorrent and libtorrent write it).
#[derive(Serialize)]
#[serde(untagged)]
enum UrlList<'a> {
    One(&'a str),
    Many(&'a [String]),
}

#[derive(Serialize)]
struct OutInfo<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    files: Option<Vec<OutFile<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    length: Option<u64>,
    name: &'a str,
    #[serde(rename = "piece length")]
    piece_length: u32,
    pieces: ByteBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    private: Option<u8>,
}

#[derive(Serialize)]
struct OutFile<'a> {
    length: u64,
    path: &'a [String],
}

impl NewTorrent {
    /// The bencoded .torrent.
    pub fn to_bytes(&self) -> Vec<u8> {
        let files = (!self.single_file).then(|| {
            self.files
                .iter()
                .map(|f| OutFile {
                    length: f.length,
                    path: &f.path,
                })
                .collect()
        });
        let out = OutTorrent {
            announce: self.trackers.first().map(String::as_str),
            // Like mktorrent: a list only when there is more than one tracker, one per tier.
            announce_list: (self.trackers.len() > 1)
                .then(|| self.trackers.iter().map(|t| vec![t.as_str()]).collect()),
            comment: self.comment.as_deref(),
            created_by: self.created_by.as_deref(),
            creation_date: self.creation_date,
            info: OutInfo {
                files,
                length: self.single_file.then(|| self.files[0].length),
                name: &self.name,
                piece_length: self.piece_length,
                pieces: ByteBuf::from(self.pieces.clone()),
                private: self.private.then_some(1),
            },
            url_list: match self.web_seeds.as_slice() {
                [] => None,
                [one] => Some(UrlList::One(one)),
                many => Some(UrlList::Many(many)),
            },
        };
        // Serializing plain structs of strings and integers into a Vec cannot fail.
        serde_bencode::to_bytes(&out).expect("bencode serialization of a plain struct")
    }
}

/// A bencoded dictionary written key by key, for small messages (extension handshakes,
/// peer exchange, metadata). Keys must be given in sorted order, as bencode requires.
#[derive(Debug, Default)]
pub struct Dict {
    out: Vec<u8>,
    last: Option<Vec<u8>>,
}

impl Dict {
    pub fn new() -> Self {
        Dict {
            out: vec![b'd'],
            last: None,
        }
    }

    fn key(&mut self, key: &str) {
        debug_assert!(
            self.last.as_deref().is_none_or(|l| l < key.as_bytes()),
            "bencode keys out of order at {key:?}"
        );
        self.last = Some(key.as_bytes().to_vec());
        string(&mut self.out, key.as_bytes());
    }

    pub fn int(&mut self, key: &str, v: i64) -> &mut Self {
        self.key(key);
        self.out.push(b'i');
        self.out.extend_from_slice(v.to_string().as_bytes());
        self.out.push(b'e');
        self
    }

    pub fn bytes(&mut self, key: &str, v: &[u8]) -> &mut Self {
        self.key(key);
        string(&mut self.out, v);
        self
    }

    /// A value that is already bencoded (a nested dictionary or list).
    pub fn raw(&mut self, key: &str, v: &[u8]) -> &mut Self {
        self.key(key);
        self.out.extend_from_slice(v);
        self
    }

    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.out);
        out.push(b'e');
        out
    }
}

/// Appends a bencoded byte string.
pub fn string(out: &mut Vec<u8>, v: &[u8]) {
    out.extend_from_slice(v.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(v);
}
