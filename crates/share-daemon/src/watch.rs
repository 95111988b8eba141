//! The watch folder (`--watch DIR`): every .torrent and .magnet file that appears there is
//! added, then renamed with `.added` after it (as Transmission does), so that it is added
//! once. A file that cannot be added is renamed `.invalid` with the reason logged. A file
//! still being written (changed within the last second) waits for the next scan.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::registry::{NewSource, NewTorrent, Registry};

/// Most files taken per scan; the rest wait for the next.
const PER_SCAN: usize = 64;
/// Largest file read from the folder.
const MAX_FILE: u64 = 64 << 20;

#[derive(Default)]
pub struct Seen {
    sizes: HashMap<PathBuf, u64>,
}

/// Adds what is new in `dir`.
pub async fn scan(r: &mut Registry, dir: &Path, seen: &mut Seen) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut todo = Vec::new();
    for e in rd.flatten().take(4096) {
        let path = e.path();
        let ext = path.extension().and_then(|x| x.to_str()).unwrap_or("");
        if !(ext.eq_ignore_ascii_case("torrent") || ext.eq_ignore_ascii_case("magnet")) {
            continue;
        }
        let Ok(meta) = e.metadata() else { continue };
        if !meta.is_file() || meta.len() > MAX_FILE {
            continue;
        }
        // Settled: the same size as at the last scan, and not modified just now.
        let recent = meta
            .modified()
            .ok()
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .is_none_or(|age| age < Duration::from_secs(1));
        let same = seen.sizes.insert(path.clone(), meta.len()) == Some(meta.len());
        if same && !recent {
            todo.push(path);
        }
        if todo.len() >= PER_SCAN {
            break;
        }
    }
    for path in todo {
        seen.sizes.remove(&path);
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let is_magnet = path
            .extension()
            .is_some_and(|x| x.eq_ignore_ascii_case("magnet"));
        let source = if is_magnet {
            NewSource::Magnet(String::from_utf8_lossy(&bytes).trim().to_owned())
        } else {
            NewSource::Metainfo(bytes)
        };
        let t = NewTorrent {
            source,
            download_dir: r.default_dir(),
            paused: false,
            labels: Vec::new(),
            files: Default::default(),
        };
        let suffix = match r.add(t).await {
            Ok(_) => "added",
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "watch folder: not added");
                "invalid"
            }
        };
        let mut done = path.clone().into_os_string();
        done.push(format!(".{suffix}"));
        let _ = std::fs::rename(&path, PathBuf::from(done));
    }
}
