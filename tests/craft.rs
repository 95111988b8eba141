//! Crafted .torrent files for end-to-end tests: raw names as bytes, BEP 47 keys, and piece
//! hashes computed over the files' data, so that real clients accept and transfer them.

use serde_bencode::value::Value;
use sha1::{Digest, Sha1};

/// A dictionary (serde_bencode writes its keys sorted).
fn dict(entries: Vec<(&str, Value)>) -> Value {
    Value::Dict(
        entries
            .into_iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v))
            .collect(),
    )
}

fn bytes(b: impl AsRef<[u8]>) -> Value {
    Value::Bytes(b.as_ref().to_vec())
}

fn list<T: AsRef<[u8]>>(items: &[T]) -> Value {
    Value::List(items.iter().map(bytes).collect())
}

/// One file of a crafted multi-file torrent.
pub struct File {
    /// Raw path elements, exactly as they go into `path`.
    pub path: Vec<Vec<u8>>,
    pub data: Vec<u8>,
    /// BEP 47 `attr`, if any.
    pub attr: Option<&'static str>,
    /// BEP 47 `symlink path`, if any.
    pub symlink: Option<Vec<&'static str>>,
}

impl File {
    pub fn new(path: &[&[u8]], data: Vec<u8>) -> File {
        File {
            path: path.iter().map(|c| c.to_vec()).collect(),
            data,
            attr: None,
            symlink: None,
        }
    }
}

/// A multi-file torrent named `name`, with `piece_length` pieces hashed over the files'
/// data in order (a symlink's data is empty).
pub fn multi_file(name: &str, files: &[File], piece_length: usize) -> Vec<u8> {
    let stream: Vec<u8> = files.iter().flat_map(|f| f.data.iter().copied()).collect();
    let pieces: Vec<u8> = stream
        .chunks(piece_length)
        .flat_map(|c| <[u8; 20]>::from(Sha1::digest(c)))
        .collect();
    let entries = files
        .iter()
        .map(|f| {
            let mut d = vec![
                ("length", Value::Int(f.data.len() as i64)),
                ("path", list(&f.path)),
            ];
            if let Some(a) = f.attr {
                d.push(("attr", bytes(a)));
            }
            if let Some(target) = &f.symlink {
                d.push(("symlink path", list(target)));
            }
            dict(d)
        })
        .collect();
    let torrent = dict(vec![(
        "info",
        dict(vec![
            ("files", Value::List(entries)),
            ("name", bytes(name)),
            ("piece length", Value::Int(piece_length as i64)),
            ("pieces", Value::Bytes(pieces)),
        ]),
    )]);
    serde_bencode::to_bytes(&torrent).expect("a value encodes")
}
