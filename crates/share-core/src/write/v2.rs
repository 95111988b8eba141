//! Writing a BitTorrent v2 or hybrid metainfo file (BEP 52) from hashes computed elsewhere,
//! as libtorrent 2.0.8's `create_torrent` writes it, so that the same files, piece length
//! and options give the same info-hashes:
//!
//! - files in libtorrent's order: sorted element by element by their bytes (which is the
//!   order of the `file tree`'s sorted keys);
//! - the `file tree`: per file `length`, and `pieces root` for a non-empty one, and `attr`
//!   `x` for an executable one;
//! - for a hybrid, a v1 list over the same stream: a padding file (`attr` `p`, path
//!   `.pad/<size>`) after every non-empty file that does not end on a piece boundary, the
//!   last one included, unless the torrent is a single file; and `pieces`, the SHA-1 of each
//!   piece of that padded stream;
//! - `meta version` 2; `piece layers` (outside `info`) for every file longer than a piece.

use std::collections::HashMap;

use serde_bencode::value::Value;

use crate::merkle::Hash;

/// One file of a v2 or hybrid torrent being created, its hashes computed.
#[derive(Debug, Clone)]
pub struct NewFileV2 {
    /// Path elements below the torrent's folder (empty for a single-file torrent).
    pub path: Vec<String>,
    pub length: u64,
    pub executable: bool,
    /// The file's merkle root (none for an empty file).
    pub root: Option<Hash>,
    /// Its piece layer, for a file longer than a piece.
    pub layer: Option<Vec<Hash>>,
}

/// Everything a new v2 or hybrid torrent holds.
#[derive(Debug, Clone)]
pub struct NewTorrentV2 {
    pub name: String,
    pub piece_length: u32,
    /// In the order [`sort`] gives.
    pub files: Vec<NewFileV2>,
    pub single_file: bool,
    /// A hybrid's v1 piece hashes over the padded stream; `None` for v2 only.
    pub v1_pieces: Option<Vec<u8>>,
    pub trackers: Vec<String>,
    pub private: bool,
    pub comment: Option<String>,
    pub created_by: Option<String>,
    pub creation_date: Option<i64>,
    pub web_seeds: Vec<String>,
}

/// libtorrent's file order: element by element, by bytes.
pub fn sort<T>(files: &mut [T], path: impl Fn(&T) -> &[String]) {
    files.sort_by(|a, b| {
        path(a)
            .iter()
            .map(String::as_bytes)
            .cmp(path(b).iter().map(String::as_bytes))
    });
}

/// One entry of a hybrid's padded v1 stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    File(usize),
    Pad(u64),
}

/// The v1 stream of a hybrid: each file, and padding after each non-empty one that does
/// not end on a piece boundary (the last too), unless there is one file only.
pub fn padded(files: &[NewFileV2], piece_length: u32) -> Vec<Entry> {
    let pl = piece_length as u64;
    let mut out = Vec::new();
    let mut offset = 0u64;
    for (i, f) in files.iter().enumerate() {
        out.push(Entry::File(i));
        offset += f.length;
        if files.len() > 1 && f.length > 0 && !offset.is_multiple_of(pl) {
            let pad = pl - offset % pl;
            out.push(Entry::Pad(pad));
            offset += pad;
        }
    }
    out
}

fn bytes(b: impl AsRef<[u8]>) -> Value {
    Value::Bytes(b.as_ref().to_vec())
}

fn dict(entries: Vec<(&str, Value)>) -> Value {
    Value::Dict(
        entries
            .into_iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v))
            .collect(),
    )
}

/// A folder of the file tree being built.
#[derive(Default)]
struct Folder {
    items: HashMap<Vec<u8>, Node>,
}

enum Node {
    Folder(Folder),
    File(Value),
}

impl Folder {
    fn insert(&mut self, path: &[String], leaf: Value) -> Result<(), String> {
        let (first, rest) = path.split_first().ok_or("a file without a name")?;
        let key = first.as_bytes().to_vec();
        if rest.is_empty() {
            if self.items.contains_key(&key) {
                return Err(format!("{first} is both a file and a folder"));
            }
            self.items.insert(key, Node::File(leaf));
            return Ok(());
        }
        match self
            .items
            .entry(key)
            .or_insert_with(|| Node::Folder(Folder::default()))
        {
            Node::Folder(f) => f.insert(rest, leaf),
            Node::File(_) => Err(format!("{first} is both a file and a folder")),
        }
    }

    fn value(self) -> Value {
        Value::Dict(
            self.items
                .into_iter()
                .map(|(k, n)| {
                    let v = match n {
                        Node::Folder(f) => f.value(),
                        Node::File(props) => Value::Dict([(Vec::new(), props)].into()),
                    };
                    (k, v)
                })
                .collect(),
        )
    }
}

impl NewTorrentV2 {
    /// The bencoded .torrent, or why it cannot be written (a path that is both a file and
    /// a folder).
    pub fn to_bytes(&self) -> Result<Vec<u8>, String> {
        let mut tree = Folder::default();
        for f in &self.files {
            let mut props = vec![("length", Value::Int(f.length as i64))];
            if let Some(r) = f.root.filter(|_| f.length > 0) {
                props.push(("pieces root", bytes(r)));
            }
            if f.executable {
                props.push(("attr", bytes("x")));
            }
            let path = if self.single_file {
                std::slice::from_ref(&self.name)
            } else {
                &f.path[..]
            };
            tree.insert(path, dict(props))?;
        }
        let mut info = vec![
            ("file tree", tree.value()),
            ("meta version", Value::Int(2)),
            ("name", bytes(&self.name)),
            ("piece length", Value::Int(self.piece_length as i64)),
        ];
        if let Some(pieces) = &self.v1_pieces {
            info.push(("pieces", bytes(pieces)));
            if self.single_file {
                let f = &self.files[0];
                info.push(("length", Value::Int(f.length as i64)));
                if f.executable {
                    info.push(("attr", bytes("x")));
                }
            } else {
                let list = padded(&self.files, self.piece_length)
                    .into_iter()
                    .map(|e| match e {
                        Entry::File(i) => {
                            let f = &self.files[i];
                            let mut d = vec![
                                ("length", Value::Int(f.length as i64)),
                                ("path", Value::List(f.path.iter().map(bytes).collect())),
                            ];
                            if f.executable {
                                d.push(("attr", bytes("x")));
                            }
                            dict(d)
                        }
                        Entry::Pad(n) => dict(vec![
                            ("attr", bytes("p")),
                            ("length", Value::Int(n as i64)),
                            (
                                "path",
                                Value::List(vec![bytes(".pad"), bytes(n.to_string())]),
                            ),
                        ]),
                    })
                    .collect();
                info.push(("files", Value::List(list)));
            }
        }
        if self.private {
            info.push(("private", Value::Int(1)));
        }
        let mut top = vec![("info", dict(info))];
        let layers: HashMap<Vec<u8>, Value> = self
            .files
            .iter()
            .filter_map(|f| Some((f.root?.to_vec(), bytes(f.layer.as_ref()?.concat()))))
            .collect();
        if !layers.is_empty() {
            top.push(("piece layers", Value::Dict(layers)));
        }
        if let Some(first) = self.trackers.first() {
            top.push(("announce", bytes(first)));
        }
        if self.trackers.len() > 1 {
            top.push((
                "announce-list",
                Value::List(
                    self.trackers
                        .iter()
                        .map(|t| Value::List(vec![bytes(t)]))
                        .collect(),
                ),
            ));
        }
        if let Some(c) = &self.comment {
            top.push(("comment", bytes(c)));
        }
        if let Some(c) = &self.created_by {
            top.push(("created by", bytes(c)));
        }
        if let Some(d) = self.creation_date {
            top.push(("creation date", Value::Int(d)));
        }
        match self.web_seeds.len() {
            0 => {}
            1 => top.push(("url-list", bytes(&self.web_seeds[0]))),
            _ => top.push((
                "url-list",
                Value::List(self.web_seeds.iter().map(bytes).collect()),
            )),
        }
        serde_bencode::to_bytes(&dict(top)).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle;
    use sha1::{Digest, Sha1};

    fn data(len: usize, seed: usize) -> Vec<u8> {
        (0..len)
            .map(|j| ((j * 31 + seed * 7) % 251) as u8)
            .collect()
    }

    /// libtorrent's test folder: (path, length, seed).
    const FOLDER: &[(&[&str], usize, usize)] = &[
        (&["a_small.txt"], 1000, 1),
        (&["b_mid.bin"], 40000, 2),
        (&["c_big.bin"], 200000, 3),
        (&["d_empty"], 0, 4),
        (&["sub", "e_exact.bin"], 65536, 5),
        (&["sub", "f_two.bin"], 131077, 6),
    ];

    fn torrent(
        files: &[(&[&str], usize, usize)],
        name: &str,
        hybrid: bool,
        single: bool,
    ) -> NewTorrentV2 {
        let pl = 65536u32;
        let mut new: Vec<(NewFileV2, Vec<u8>)> = files
            .iter()
            .map(|(path, len, seed)| {
                let d = data(*len, *seed);
                let (root, layer) = if *len > 0 {
                    let (r, l) = merkle::file_tree(&merkle::leaves(&d), *len as u64, pl);
                    (Some(r), l)
                } else {
                    (None, None)
                };
                let f = NewFileV2 {
                    path: path.iter().map(|s| s.to_string()).collect(),
                    length: *len as u64,
                    executable: false,
                    root,
                    layer,
                };
                (f, d)
            })
            .collect();
        // Given in another order: sorting gives libtorrent's.
        new.reverse();
        sort(&mut new, |(f, _)| &f.path);
        let (files, contents): (Vec<NewFileV2>, Vec<Vec<u8>>) = new.into_iter().unzip();
        let v1_pieces = hybrid.then(|| {
            let mut stream = Vec::new();
            for e in padded(&files, pl) {
                match e {
                    Entry::File(i) => stream.extend_from_slice(&contents[i]),
                    Entry::Pad(n) => stream.resize(stream.len() + n as usize, 0),
                }
            }
            stream
                .chunks(pl as usize)
                .flat_map(|c| <[u8; 20]>::from(Sha1::digest(c)))
                .collect()
        });
        NewTorrentV2 {
            name: name.into(),
            piece_length: pl,
            files,
            single_file: single,
            v1_pieces,
            trackers: Vec::new(),
            private: false,
            comment: None,
            created_by: None,
            creation_date: None,
            web_seeds: Vec::new(),
        }
    }

    #[test]
    fn the_same_files_give_libtorrents_info_hashes() {
        let cases = [
            (
                FOLDER,
                "v2test",
                true,
                false,
                Some("def10d7b1fe3d7ca076b8e5ba164d0b559d4a53a"),
                "b28f85b039a5c9c1b98ade965480b7c7bdf68d9e88437954fb275825f489e5fb",
            ),
            (
                FOLDER,
                "v2test",
                false,
                false,
                None,
                "cde5cd2510e07f92646341e72dbd8c9c8e39d678151c5a5e4c0966d273b40d6e",
            ),
            (
                &[(&[][..], 100000, 7)][..],
                "one.bin",
                true,
                true,
                Some("f903b6da7ccf5778bdd4f8747d2f5e2b1bbc08b1"),
                "426dddc8e4b7b26e347e5032e46ad009e39d407277c72d0c45f2b54605b8176e",
            ),
            (
                &[(&[][..], 100000, 7)][..],
                "one.bin",
                false,
                true,
                None,
                "ec9b96473755e010343baef5d3cecfadadc65147f9703a650d99ccf1ce1cf1d8",
            ),
            (
                &[(&["one.bin"][..], 100000, 7)][..],
                "single",
                true,
                false,
                Some("466f045f143cf485017d7c18655ee8c23394ddbd"),
                "c8911f35faa7cf3938b243751a443ed52f9a454c4532eae11b45fcd33bd4b6b7",
            ),
            (
                &[(&["one.bin"][..], 100000, 7)][..],
                "single",
                false,
                false,
                None,
                "cc5d9745326f1c91ad0e9f3d7a7c9290e29f3ea9b019291fb6a7f984c929a7f6",
            ),
        ];
        for (files, name, hybrid, single, v1, v2) in cases {
            let bytes = torrent(files, name, hybrid, single).to_bytes().unwrap();
            let m = crate::Metainfo::from_bytes(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(
                m.hashes.v1.map(|h| h.to_hex()).as_deref(),
                v1,
                "{name} hybrid={hybrid}"
            );
            assert_eq!(
                hex::encode(m.hashes.v2.unwrap()),
                v2,
                "{name} hybrid={hybrid}"
            );
            assert!(m.missing_layers().is_empty());
        }
    }
}
