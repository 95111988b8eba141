//! The sanitizing rule: how names and paths from a .torrent become safe places on disk.
//!
//! A .torrent names its files with raw byte strings, and mainstream clients load torrents
//! whose names hold separators, control characters, over-long or empty elements, or repeat.
//! Instead of refusing them, every element is rewritten by one fixed rule, the same on every
//! platform so that a torrent lands at the same paths everywhere:
//!
//! | raw element | stored as |
//! |---|---|
//! | not UTF-8 | each invalid byte becomes `%XX` (lossless: distinct raw names stay distinct) |
//! | `/` or `\` inside it | `_` |
//! | a control character (U+0000-U+001F, U+007F-U+009F) | `_` |
//! | a direction mark or override (U+200E, U+200F, U+202A-U+202E, U+2066-U+2069) | `_` |
//! | empty, `.` or `..` | dropped; a path left with nothing is `_` |
//! | a name Windows reserves (`CON`, `PRN`, `AUX`, `NUL`, `COM0`-`COM9`, `LPT0`-`LPT9`, with any extension, any case) | `_` in front: `_con.txt` |
//! | longer than 255 bytes | cut to 240 bytes, keeping an extension of up to 16 bytes |
//!
//! Then, across the torrent's files (padding files aside, as they never reach the disk),
//! a path that another file or folder already holds, compared ignoring case, gets `.1`
//! (`.2`, ...) before the extension of its last element: `a.txt`, `a.1.txt`. Folders win
//! over files, so `x` as a file beside `x/y` becomes `x.1`. The torrent's name follows the
//! element rule; a name that is dropped becomes the info-hash in hex.
//!
//! The result is always relative, made of normal elements only, so nothing is ever written
//! outside the download folder. [`link_target`] applies the rule to a symlink's target.

use std::collections::{HashMap, HashSet};

use super::{FileEntry, MetainfoError};

/// Longest element kept as it is, in bytes (the limit of common filesystems).
pub const MAX_ELEMENT_LEN: usize = 255;
/// Length an over-long element is cut to, leaving room for a `.N` duplicate suffix.
pub const SHORTENED_LEN: usize = 240;
/// Longest tail after a last `.` that counts as an extension, dot included.
const MAX_EXTENSION_LEN: usize = 16;

/// Most names tried, over a whole torrent, while giving duplicates their own paths. A real
/// torrent needs about one per duplicate; this bounds the work a hostile one can cause.
pub const MAX_RENAME_TRIES: usize = 4_000_000;

/// One raw path element, made safe; `None` when the rule drops it (empty, `.`, `..`).
pub fn element(raw: &[u8]) -> Option<String> {
    if raw.is_empty() || raw == b"." || raw == b".." {
        return None;
    }
    let mut out: String = lossless(raw)
        .chars()
        .map(|c| if unsafe_char(c) { '_' } else { c })
        .collect();
    if reserved_on_windows(&out) {
        out.insert(0, '_');
    }
    if out.len() > MAX_ELEMENT_LEN {
        let (stem, ext) = split_extension(&out);
        out = fit(stem, ext, SHORTENED_LEN);
    }
    Some(out)
}

/// A raw path made safe: its elements, never empty (`_` when every element was dropped).
pub fn path<E: AsRef<[u8]>>(raw: &[E]) -> Vec<String> {
    let out: Vec<String> = raw.iter().filter_map(|e| element(e.as_ref())).collect();
    if out.is_empty() {
        vec!["_".to_owned()]
    } else {
        out
    }
}

/// A symlink's target (BEP 47 `symlink path`, relative to the content root), made safe:
/// empty and `.` elements are dropped, `..` goes up one element, the rest follow
/// [`element`]. `None` when the target climbs above the root or is the root itself: such a
/// link would point outside the torrent's folder, or make it contain itself.
pub fn link_target<E: AsRef<[u8]>>(raw: &[E]) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for e in raw {
        match e.as_ref() {
            b"" | b"." => {}
            b".." => {
                out.pop()?;
            }
            other => out.extend(element(other)),
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Gives every file that reaches the disk (all but padding files) a path of its own,
/// compared ignoring case: a file whose path another file or any folder already holds gets
/// a `.N` suffix. Returns the index and old path of each file renamed, in torrent order;
/// Fails only when a hostile torrent would need more than [`MAX_RENAME_TRIES`] names.
pub fn make_unique(files: &mut [FileEntry]) -> Result<Vec<(usize, Vec<String>)>, MetainfoError> {
    // Folders are interned as (parent folder id, lowercase name) -> id; 0 is the root.
    let mut folders: HashMap<(usize, String), usize> = HashMap::new();
    let mut parents = Vec::with_capacity(files.len());
    for f in files.iter() {
        let mut parent = 0;
        if !f.padding {
            for name in &f.path[..f.path.len().saturating_sub(1)] {
                let next = folders.len() + 1;
                parent = *folders.entry((parent, name.to_lowercase())).or_insert(next);
            }
        }
        parents.push(parent);
    }
    // First every file whose path is free keeps it, so that a rename never takes the raw
    // name of a later file.
    let mut taken: HashSet<(usize, String)> = HashSet::with_capacity(files.len());
    let keeps: Vec<bool> = files
        .iter()
        .zip(&parents)
        .map(|(f, &parent)| match f.path.last().filter(|_| !f.padding) {
            Some(last) => {
                let key = (parent, last.to_lowercase());
                !folders.contains_key(&key) && taken.insert(key)
            }
            None => true,
        })
        .collect();
    // Per (folder, name): the next suffix to try, so that many copies of one name cost
    // one try each.
    let mut next_suffix: HashMap<(usize, String), u64> = HashMap::new();
    let mut renamed = Vec::new();
    let mut tries = 0usize;
    for (i, f) in files.iter_mut().enumerate().filter(|(i, _)| !keeps[*i]) {
        let parent = parents[i];
        let Some(last) = f.path.last() else {
            continue;
        };
        let base = (parent, last.to_lowercase());
        let mut n = next_suffix.get(&base).copied().unwrap_or(1);
        let new = loop {
            tries += 1;
            if tries > MAX_RENAME_TRIES {
                return Err(MetainfoError::TooManyDuplicates);
            }
            let candidate = with_suffix(last, n);
            n += 1;
            let key = (parent, candidate.to_lowercase());
            if !folders.contains_key(&key) && taken.insert(key) {
                break candidate;
            }
        };
        next_suffix.insert(base, n);
        let old = f.path.clone();
        if let Some(last) = f.path.last_mut() {
            *last = new;
        }
        renamed.push((i, old));
    }
    Ok(renamed)
}

/// `name` with `.n` before its extension, kept within [`MAX_ELEMENT_LEN`].
fn with_suffix(name: &str, n: u64) -> String {
    let (stem, ext) = split_extension(name);
    fit(stem, &format!(".{n}{ext}"), MAX_ELEMENT_LEN)
}

/// `stem` cut at a character boundary so that `stem + tail` is at most `max` bytes.
fn fit(stem: &str, tail: &str, max: usize) -> String {
    let mut cut = max.saturating_sub(tail.len()).min(stem.len());
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{tail}", &stem[..cut])
}

/// `("archive.tar", ".gz")`; no extension when the last dot starts the name (`.bashrc`)
/// or is more than [`MAX_EXTENSION_LEN`] bytes from the end.
fn split_extension(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(dot) if dot > 0 && name.len() - dot <= MAX_EXTENSION_LEN => name.split_at(dot),
        _ => (name, ""),
    }
}

fn unsafe_char(c: char) -> bool {
    matches!(c, '/' | '\\' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
        || c.is_control()
}

/// Device names Windows reserves whatever the extension: `CON`, `nul.txt`, `Com1.tar.gz`.
fn reserved_on_windows(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or(name).trim_end_matches(' ');
    let upper = stem.to_ascii_uppercase();
    match upper.as_bytes() {
        b"CON" | b"PRN" | b"AUX" | b"NUL" => true,
        [b'C', b'O', b'M', d] | [b'L', b'P', b'T', d] => d.is_ascii_digit(),
        _ => false,
    }
}

/// The element as text: valid UTF-8 as it is, each byte that is not part of valid UTF-8 as
/// `%XX`.
fn lossless(mut raw: &[u8]) -> String {
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
