//! BitTorrent v2 (BEP 52), as far as a v1 client needs it: telling a v2-only torrent from a
//! hybrid one, and checking that a hybrid torrent's two file lists name the same content.
//!
//! A hybrid torrent carries a v1 `files` list (with padding files) and a v2 `file tree` in
//! the same `info` dictionary. share downloads by the v1 list; a v2 client uses the tree. If
//! the two disagreed, one info-hash would name two contents, so a hybrid is loaded only when
//! the v1 files, padding aside, are the tree's files in the tree's order, with the same paths
//! and lengths. The tree is walked token by token in file order (see
//! [`crate::bencode::tokens`]): no map per folder, work and memory linear in its size.

use crate::bencode::tokens::{Token, Tokens};

/// One real (non-padding) file as the v1 part of a hybrid names it.
pub(super) struct V1File<'a> {
    /// Its raw path, and its `path.utf-8` if given (either may match the tree); a
    /// single-file torrent's path is its name.
    pub paths: Vec<Vec<&'a [u8]>>,
    pub length: u64,
}

/// Checks a hybrid torrent's `file tree` (its raw bytes) against its v1 files in order.
/// `Err` says how they disagree, or what is malformed in the tree.
pub(super) fn check_hybrid(tree: &[u8], v1: &[V1File]) -> Result<(), String> {
    let mut walk = Walk {
        tokens: Tokens::new(tree),
        path: Vec::new(),
        v1,
        next: 0,
    };
    match walk.token()? {
        Token::Dict => walk.node(0)?,
        _ => return Err("the file tree is not a dictionary".into()),
    }
    if walk.next != v1.len() {
        return Err(format!(
            "`files` lists {} files, the `file tree` {}",
            v1.len(),
            walk.next
        ));
    }
    Ok(())
}

struct Walk<'a, 'b> {
    tokens: Tokens<'a>,
    /// The folder names from the tree's root to where the walk is.
    path: Vec<&'a [u8]>,
    v1: &'b [V1File<'b>],
    /// Index of the next v1 file to match.
    next: usize,
}

/// Deepest folder nesting read (the bencode scanner bounds it already; this keeps the
/// recursion bounded on its own).
const MAX_DEPTH: usize = 64;

impl<'a> Walk<'a, '_> {
    fn token(&mut self) -> Result<Token<'a>, String> {
        self.tokens
            .next_token()
            .map_err(|e| format!("the file tree is malformed: {e}"))
    }

    /// Reads a node whose `d` was just read; its name is the last of `path` (the root has
    /// none). A node whose first key is `""` is a file, its properties under that key; any
    /// other node is a folder of `name -> node` entries.
    fn node(&mut self, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err("the file tree is nested too deep".into());
        }
        let mut first = true;
        loop {
            let name = match self.token()? {
                Token::End => return Ok(()),
                Token::Bytes(b"") if first && depth > 0 => {
                    let length = self.properties()?;
                    if self.token()? != Token::End {
                        return Err(self.malformed("an entry that is both a file and a folder"));
                    }
                    return self.file(length);
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
            first = false;
            self.path.push(name);
            if self.token()? != Token::Dict {
                return Err(self.malformed("an entry that is not a dictionary"));
            }
            self.node(depth + 1)?;
            self.path.pop();
        }
    }

    /// Reads a file's properties dictionary (its `d` comes next); returns its length
    /// (0 for a symlink, BEP 47 `l`).
    fn properties(&mut self) -> Result<u64, String> {
        if self.token()? != Token::Dict {
            return Err(self.malformed("file properties that are not a dictionary"));
        }
        let (mut length, mut symlink) = (None, false);
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
                (b"attr", Token::Bytes(a)) => symlink = a.contains(&b'l'),
                (_, other) => self
                    .tokens
                    .skip(other)
                    .map_err(|e| format!("the file tree is malformed: {e}"))?,
            }
        }
        match (symlink, length) {
            (true, _) => Ok(0),
            (false, Some(n)) => Ok(n),
            (false, None) => Err(self.malformed("a file without a length")),
        }
    }

    /// A file of the tree, at `path`: it must be the next v1 file.
    fn file(&mut self, length: u64) -> Result<(), String> {
        let Some(want) = self.v1.get(self.next) else {
            return Err(format!(
                "the `file tree` has more files than `files` ({}); the first extra is {}",
                self.v1.len(),
                show(&self.path)
            ));
        };
        let same_path = want.paths.iter().any(|p| *p == self.path.as_slice());
        if !same_path || want.length != length {
            return Err(format!(
                "file {} is {} ({} bytes) in `files` but {} ({length} bytes) in the `file tree`",
                self.next + 1,
                want.paths.first().map_or_else(String::new, |p| show(p)),
                want.length,
                show(&self.path)
            ));
        }
        self.next += 1;
        Ok(())
    }

    fn malformed(&self, what: &str) -> String {
        format!("the file tree is malformed: {what} at {}", show(&self.path))
    }
}

fn show(path: &[&[u8]]) -> String {
    let parts: Vec<_> = path.iter().map(|p| String::from_utf8_lossy(p)).collect();
    format!("`{}`", parts.join("/"))
}

#[cfg(test)]
mod tests;
