//! BitTorrent v2 (BEP 52): reading the `file tree` of a v2 or hybrid `info` dictionary,
//! laying its files out in pieces, and checking a hybrid's two file lists against each other.
//!
//! The tree is walked token by token in file order (see [`crate::bencode::tokens`]): no map
//! per folder, work and memory linear in its size. A node whose only key is `""` is a file,
//! its properties under that key; any other node is a folder. Every non-empty file starts
//! on a piece boundary: in the byte stream the engine works on, each is followed by padding
//! up to the next boundary (the last one too, as libtorrent lays a v2 torrent out), so that
//! a v2 torrent is a v1-shaped stream of files and padding files whose pieces are verified
//! by merkle trees instead of SHA-1.
//!
//! A hybrid carries a v1 `files` list (with its own padding files) beside the tree; one
//! info-hash must not name two contents, so it loads only when the two agree as libtorrent
//! requires (`files_compatible`): the same files at the same offsets, with the same paths
//! and lengths. Hybrids made by libtorrent before 2.0.8, which have no padding after the
//! last file, load too.

use crate::bencode::tokens::{Token, Tokens};

/// One file of the tree, raw, in tree order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TreeFile<'a> {
    /// Path elements below the torrent's folder, as the tree names them.
    pub path: Vec<&'a [u8]>,
    /// Bytes (0 for a symlink).
    pub length: u64,
    /// The root of its merkle tree; only for a non-empty file.
    pub root: Option<[u8; 32]>,
    pub executable: bool,
    pub hidden: bool,
    /// BEP 47 `l`: a symlink to this path (elements below the torrent's folder).
    pub symlink: Option<Vec<&'a [u8]>>,
}

/// Deepest folder nesting read (the bencode scanner bounds it already; this keeps the
/// recursion bounded on its own).
const MAX_DEPTH: usize = 64;

/// The files of a `file tree` (its raw bytes), in order; `max_files` at most.
pub(super) fn read_tree(tree: &[u8], max_files: usize) -> Result<Vec<TreeFile<'_>>, String> {
    let mut walk = Walk {
        tokens: Tokens::new(tree),
        path: Vec::new(),
        files: Vec::new(),
        max_files,
    };
    match walk.token()? {
        Token::Dict => walk.node(0)?,
        _ => return Err("the file tree is not a dictionary".into()),
    }
    if walk.files.is_empty() {
        return Err("the file tree holds no file".into());
    }
    Ok(walk.files)
}

struct Walk<'a> {
    tokens: Tokens<'a>,
    /// The folder names from the tree's root to where the walk is.
    path: Vec<&'a [u8]>,
    files: Vec<TreeFile<'a>>,
    max_files: usize,
}

impl<'a> Walk<'a> {
    fn token(&mut self) -> Result<Token<'a>, String> {
        self.tokens
            .next_token()
            .map_err(|e| format!("the file tree is malformed: {e}"))
    }

    /// Reads a node whose `d` was just read; its name is the last of `path` (the root has
    /// none).
    fn node(&mut self, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err("the file tree is nested too deep".into());
        }
        let mut first = true;
        let mut previous: Option<&[u8]> = None;
        loop {
            let name = match self.token()? {
                Token::End => {
                    if first && depth > 0 {
                        return Err(self.malformed("an empty folder"));
                    }
                    return Ok(());
                }
                Token::Bytes(b"") if first && depth > 0 => {
                    self.file()?;
                    if self.token()? != Token::End {
                        return Err(self.malformed("an entry that is both a file and a folder"));
                    }
                    return Ok(());
                }
                Token::Bytes(b"") if depth == 0 => {
                    return Err(self.malformed("a file without a name"))
                }
                Token::Bytes(b"") => {
                    return Err(self.malformed("an entry that is both a file and a folder"))
                }
                Token::Bytes(name) => name,
                _ => return Err(self.malformed("a key that is not a string")),
            };
            // The order of the files is the order of the keys: they must be sorted, as
            // bencode requires and libtorrent checks, or two clients would lay the pieces
            // out differently.
            if previous.is_some_and(|p| p >= name) {
                return Err(self.malformed("keys out of order"));
            }
            previous = Some(name);
            first = false;
            self.path.push(name);
            if self.token()? != Token::Dict {
                return Err(self.malformed("an entry that is not a dictionary"));
            }
            self.node(depth + 1)?;
            self.path.pop();
        }
    }

    /// Reads a file's properties dictionary (its `d` comes next).
    fn file(&mut self) -> Result<(), String> {
        if self.files.len() >= self.max_files {
            return Err(format!(
                "the file tree holds more than {} files",
                self.max_files
            ));
        }
        if self.token()? != Token::Dict {
            return Err(self.malformed("file properties that are not a dictionary"));
        }
        let (mut length, mut root, mut attr, mut target) = (None, None, &b""[..], None);
        loop {
            let key = match self.token()? {
                Token::End => break,
                Token::Bytes(k) => k,
                _ => return Err(self.malformed("a key that is not a string")),
            };
            match (key, self.token()?) {
                (b"length", Token::Int(n)) => {
                    length =
                        Some(u64::try_from(n).map_err(|_| self.malformed("a negative length"))?)
                }
                (b"pieces root", Token::Bytes(r)) => {
                    root = Some(
                        <[u8; 32]>::try_from(r)
                            .map_err(|_| self.malformed("a `pieces root` that is not 32 bytes"))?,
                    )
                }
                (b"attr", Token::Bytes(a)) => attr = a,
                (b"symlink path", Token::List) => target = Some(self.elements()?),
                (_, other) => self
                    .tokens
                    .skip(other)
                    .map_err(|e| format!("the file tree is malformed: {e}"))?,
            }
        }
        if attr.contains(&b'p') {
            return Err(self.malformed("a padding file (`attr` p is not allowed in v2)"));
        }
        let symlink = attr.contains(&b'l');
        let length = match (symlink, length) {
            (true, _) => 0,
            (false, Some(n)) => n,
            (false, None) => return Err(self.malformed("a file without a length")),
        };
        let root = if length > 0 {
            match root {
                Some(r) if r != [0; 32] => Some(r),
                _ => return Err(self.malformed("a file without a `pieces root`")),
            }
        } else {
            // An empty file has none; one that is there anyway is ignored, as libtorrent
            // ignores it.
            None
        };
        let symlink = match (symlink, target) {
            (true, Some(t)) => Some(t),
            (true, None) => return Err(self.malformed("a symlink without a `symlink path`")),
            (false, _) => None,
        };
        self.files.push(TreeFile {
            path: self.path.clone(),
            length,
            root,
            executable: attr.contains(&b'x'),
            hidden: attr.contains(&b'h'),
            symlink,
        });
        Ok(())
    }

    /// A list of strings (its `l` was just read).
    fn elements(&mut self) -> Result<Vec<&'a [u8]>, String> {
        let mut out = Vec::new();
        loop {
            match self.token()? {
                Token::End => return Ok(out),
                Token::Bytes(b) if out.len() < 256 => out.push(b),
                _ => return Err(self.malformed("a `symlink path` that is not a list of names")),
            }
        }
    }

    fn malformed(&self, what: &str) -> String {
        format!("the file tree is malformed: {what} at {}", show(&self.path))
    }
}

pub(super) fn show(path: &[&[u8]]) -> String {
    let parts: Vec<_> = path.iter().map(|p| String::from_utf8_lossy(p)).collect();
    format!("`{}`", parts.join("/"))
}

/// One entry of a laid-out byte stream: a file of the tree (its index) or padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Laid {
    File { index: usize, offset: u64 },
    Pad { length: u64, offset: u64 },
}

/// The tree's files laid out as libtorrent lays a v2 torrent out: each non-empty file
/// followed by padding to the next piece boundary, the last one too.
pub(super) fn layout(files: &[TreeFile], piece_length: u32) -> Result<(Vec<Laid>, u64), String> {
    let pl = piece_length as u64;
    let mut out = Vec::with_capacity(files.len() * 2);
    let mut offset = 0u64;
    for (index, f) in files.iter().enumerate() {
        out.push(Laid::File { index, offset });
        offset = offset
            .checked_add(f.length)
            .ok_or("the total size of the files overflows")?;
        if f.length > 0 && !offset.is_multiple_of(pl) {
            let length = pl - offset % pl;
            out.push(Laid::Pad { length, offset });
            offset += length;
        }
    }
    Ok((out, offset))
}

/// One entry of a hybrid's v1 `files` list, raw: what the comparison needs.
pub(super) struct V1Entry<'a> {
    /// Its raw path, and its `path.utf-8` if given (either may match the tree); a
    /// single-file torrent's path is its name.
    pub paths: Vec<Vec<&'a [u8]>>,
    pub length: u64,
    pub padding: bool,
}

/// A hybrid's v1 list must be the tree's layout (without its last padding if the v1 list
/// has none there): the same number of entries, and wherever either side has a non-empty
/// file, both have one, with the same path, length and offset.
pub(super) fn check_hybrid(
    v1: &[V1Entry],
    files: &[TreeFile],
    piece_length: u32,
) -> Result<(), String> {
    let (mut laid, _) = layout(files, piece_length)?;
    if v1.len() + 1 == laid.len() {
        // No tail padding (libtorrent before 2.0.8, or a single file): drop the last pad,
        // wherever it sits before trailing empty files.
        if let Some(i) = laid.iter().rposition(|l| matches!(l, Laid::Pad { .. })) {
            laid.remove(i);
        }
    }
    if v1.len() != laid.len() {
        return Err(format!(
            "`files` lists {} entries, the `file tree` lays out {}",
            v1.len(),
            laid.len()
        ));
    }
    let mut v1_offset = 0u64;
    for (i, (a, b)) in v1.iter().zip(&laid).enumerate() {
        let real_a = !a.padding && a.length > 0;
        let real_b = match b {
            Laid::File { index, .. } => files[*index].length > 0,
            Laid::Pad { .. } => false,
        };
        if real_a || real_b {
            let Laid::File { index, offset } = b else {
                return Err(format!(
                    "entry {} of `files` is a file where the tree has padding",
                    i + 1
                ));
            };
            let f = &files[*index];
            if !real_a {
                return Err(format!(
                    "entry {} of `files` is padding or empty where the tree has {}",
                    i + 1,
                    show(&f.path)
                ));
            }
            let same_path = a.paths.iter().any(|p| *p == f.path.as_slice());
            if !same_path || a.length != f.length || v1_offset != *offset {
                return Err(format!(
                    "file {} is {} ({} bytes at {v1_offset}) in `files` but {} ({} bytes at {offset}) in the `file tree`",
                    i + 1,
                    a.paths.first().map_or_else(String::new, |p| show(p)),
                    a.length,
                    show(&f.path),
                    f.length,
                ));
            }
        }
        v1_offset += a.length;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
