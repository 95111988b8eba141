//! Crafted .torrent files for end-to-end tests: raw names as bytes, BEP 47 keys, and piece
//! hashes computed over the files' data, so that real clients accept and transfer them.

#![allow(dead_code)]

use sha1::{Digest, Sha1};

/// A bencode value; dictionaries are written with their keys sorted.
pub enum B {
    I(i64),
    S(Vec<u8>),
    L(Vec<B>),
    D(Vec<(&'static str, B)>),
}

pub fn s(v: impl AsRef<[u8]>) -> B {
    B::S(v.as_ref().to_vec())
}

pub fn encode(b: &B, out: &mut Vec<u8>) {
    match b {
        B::I(i) => out.extend(format!("i{i}e").bytes()),
        B::S(v) => {
            out.extend(format!("{}:", v.len()).bytes());
            out.extend(v);
        }
        B::L(l) => {
            out.push(b'l');
            l.iter().for_each(|x| encode(x, out));
            out.push(b'e');
        }
        B::D(d) => {
            let mut keys: Vec<&(&str, B)> = d.iter().collect();
            keys.sort_by_key(|(k, _)| k.as_bytes());
            out.push(b'd');
            for (k, v) in keys {
                encode(&s(k), out);
                encode(v, out);
            }
            out.push(b'e');
        }
    }
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
                ("length", B::I(f.data.len() as i64)),
                ("path", B::L(f.path.iter().map(s).collect())),
            ];
            if let Some(a) = f.attr {
                d.push(("attr", s(a)));
            }
            if let Some(target) = &f.symlink {
                d.push(("symlink path", B::L(target.iter().map(s).collect())));
            }
            B::D(d)
        })
        .collect();
    let torrent = B::D(vec![(
        "info",
        B::D(vec![
            ("files", B::L(entries)),
            ("name", s(name)),
            ("piece length", B::I(piece_length as i64)),
            ("pieces", B::S(pieces)),
        ]),
    )]);
    let mut out = Vec::new();
    encode(&torrent, &mut out);
    out
}
