//! Confined storage on random layouts: one or two torrents (sharing a name or not) of files
//! and BEP 47 links with arbitrary path elements and targets, laid out into one download
//! folder in which symlinks to a victim folder beside it may have been planted. Whatever
//! the input: nothing outside the download folder is created, changed or removed.
#![no_main]
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use share_storage::root::{LinkLedger, Links, Root};
use share_storage::store::Store;
use share_storage::Layout;

const ELEMENTS: [&str; 7] = ["a", "b", "c", "..", ".", "victim", "x y"];

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        b
    }

    fn elements(&mut self) -> Vec<&'static str> {
        let n = self.byte() % 4 + 1;
        (0..n).map(|_| ELEMENTS[self.byte() as usize % ELEMENTS.len()]).collect()
    }
}

fn bstr(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(format!("{}:", s.len()).as_bytes());
    out.extend_from_slice(s);
}

fn blist(out: &mut Vec<u8>, items: &[&str]) {
    out.push(b'l');
    items.iter().for_each(|i| bstr(out, i.as_bytes()));
    out.push(b'e');
}

/// A multi-file .torrent named `name`: files (with `len` bytes) and links, keys sorted.
fn torrent(name: &str, entries: &[(Vec<&str>, Option<Vec<&str>>, u64)]) -> Vec<u8> {
    let total: u64 = entries.iter().filter(|e| e.1.is_none()).map(|e| e.2).sum();
    let pieces = total.div_ceil(16384).max(1) as usize;
    let mut files = vec![b'l'];
    for (path, link, len) in entries {
        files.push(b'd');
        if link.is_some() {
            bstr(&mut files, b"attr");
            bstr(&mut files, b"l");
        }
        bstr(&mut files, b"length");
        files.extend_from_slice(format!("i{}e", if link.is_some() { 0 } else { *len }).as_bytes());
        bstr(&mut files, b"path");
        blist(&mut files, path);
        if let Some(t) = link {
            bstr(&mut files, b"symlink path");
            blist(&mut files, t);
        }
        files.push(b'e');
    }
    files.push(b'e');
    let mut out = b"d4:infod5:files".to_vec();
    out.extend_from_slice(&files);
    bstr(&mut out, b"name");
    bstr(&mut out, name.as_bytes());
    bstr(&mut out, b"piece length");
    out.extend_from_slice(b"i16384e");
    bstr(&mut out, b"pieces");
    bstr(&mut out, &vec![0u8; pieces * 20]);
    out.extend_from_slice(b"ee");
    out
}

/// Everything below `root`, links not followed, with size, mtime and content.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, (u64, i64, i64, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let path = e.path();
            let Ok(m) = std::fs::symlink_metadata(&path) else { continue };
            let content = if m.is_file() {
                std::fs::read(&path).unwrap_or_default()
            } else {
                Vec::new()
            };
            if m.is_dir() {
                todo.push(path.clone());
            }
            out.insert(path, (m.len(), m.mtime(), m.mtime_nsec(), content));
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let flags = input.byte();
    let follow = flags & 1 == 1;
    let tmp = tempfile::tempdir().unwrap();
    let dl = tmp.path().join("dl");
    let victim = tmp.path().join("victim");
    std::fs::create_dir_all(dl.join("q")).unwrap();
    std::fs::create_dir_all(victim.join("d")).unwrap();
    std::fs::write(victim.join("f"), b"victim").unwrap();
    // Links planted in the folder by someone else (followed only with the option, which is
    // then the user's own choice: so planted only without it).
    if !follow {
        for _ in 0..input.byte() % 4 {
            let at = input.elements();
            let target = match input.byte() % 3 {
                0 => victim.clone(),
                1 => victim.join("f"),
                _ => PathBuf::from("../../victim"),
            };
            let mut p = dl.join("q");
            for e in &at {
                if !matches!(*e, ".." | ".") {
                    p.push(e);
                }
            }
            if let Some(parent) = p.parent() {
                let _ = std::fs::create_dir_all(parent);
            }
            let _ = std::os::unix::fs::symlink(&target, &p);
        }
    }
    let before = snapshot(tmp.path());
    let ledger = Arc::new(LinkLedger::in_memory());
    for t in 0..(1 + (flags >> 1 & 1)) {
        let name = if flags >> 2 & 1 == 1 && t == 1 { "r" } else { "q" };
        let entries: Vec<_> = (0..input.byte() % 6 + 1)
            .map(|_| {
                let path = input.elements();
                let link = (input.byte() % 3 == 0).then(|| input.elements());
                (path, link, (input.byte() as u64) * 300)
            })
            .collect();
        let Ok(meta) = share_core::Metainfo::from_bytes(&torrent(name, &entries)) else {
            continue;
        };
        let links = Links {
            follow_user: follow,
            ledger: ledger.clone(),
        };
        let Ok(root) = Root::open(&dl, links, false) else { continue };
        let Ok(layout) = Layout::for_torrent(Arc::new(root), Path::new(""), &meta.info) else {
            continue;
        };
        let total = layout.total_length;
        let mut store = Store::new(layout);
        let _ = store.allocate();
        let bytes = vec![0xAB; total as usize];
        let _ = store.write(0, &bytes);
        let mut back = vec![0; total as usize];
        let _ = store.read(0, &mut back);
        let _ = store.sync();
    }
    let after = snapshot(tmp.path());
    let outside = |m: &BTreeMap<PathBuf, _>| -> Vec<PathBuf> {
        m.keys().filter(|p| !p.starts_with(&dl)).cloned().collect()
    };
    assert_eq!(outside(&before), outside(&after), "something appeared or vanished outside");
    for p in outside(&before) {
        assert_eq!(before[&p], after[&p], "{} changed", p.display());
    }
});
