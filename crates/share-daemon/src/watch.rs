//! The watch folder (`--watch DIR`): every .torrent and .magnet file that appears there is
//! added, then renamed with `.added` after it (as Transmission does), so that it is added
//! once. A file that cannot be added is renamed `.invalid` with the reason logged. A file
//! still being written (changed within the last second) waits for the next scan.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::owner::Handle;
use crate::registry::NewTorrent;

/// Most files taken per scan; the rest wait for the next.
const PER_SCAN: usize = 64;
/// Largest file read from the folder.
const MAX_FILE: u64 = crate::ops::MAX_TORRENT_FILE;

#[derive(Default)]
pub struct Seen {
    sizes: HashMap<PathBuf, u64>,
}

/// Adds what is new in `dir`: the folder is read here, each file added through the registry
/// like a `torrent-add`.
pub async fn scan(h: &Handle, dir: &Path, seen: &mut Seen) {
    let todo = {
        let dir = dir.to_path_buf();
        let mut sizes = std::mem::take(&mut seen.sizes);
        let found = tokio::task::spawn_blocking(move || {
            let todo = settled(&dir, &mut sizes);
            (todo, sizes)
        })
        .await;
        match found {
            Ok((todo, sizes)) => {
                seen.sizes = sizes;
                todo
            }
            Err(_) => return,
        }
    };
    let Ok((download_dir, paused)) = h.read(|r| (r.default_dir(), r.settings.add_stopped)).await
    else {
        return;
    };
    for path in todo {
        seen.sizes.remove(&path);
        let added = match crate::ops::read_local(path.clone()).await {
            Ok(source) => {
                let t = NewTorrent {
                    source,
                    download_dir: download_dir.clone(),
                    paused,
                    labels: Vec::new(),
                    files: Default::default(),
                    options: Default::default(),
                };
                crate::ops::add(h, t).await.map(|_| ())
            }
            Err(e) => Err(e),
        };
        let suffix = match added {
            Ok(()) => "added",
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "watch folder: not added");
                "invalid"
            }
        };
        let mut done = path.clone().into_os_string();
        done.push(format!(".{suffix}"));
        let _ = tokio::fs::rename(&path, PathBuf::from(done)).await;
    }
}

/// The .torrent and .magnet files of `dir` that have settled: the same size as at the last
/// scan, and not modified in the last second.
fn settled(dir: &Path, sizes: &mut HashMap<PathBuf, u64>) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
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
        let recent = meta
            .modified()
            .ok()
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .is_none_or(|age| age < Duration::from_secs(1));
        let same = sizes.insert(path.clone(), meta.len()) == Some(meta.len());
        if same && !recent {
            todo.push(path);
        }
        if todo.len() >= PER_SCAN {
            break;
        }
    }
    todo
}

/// Scans the folder every two seconds until the daemon stops.
pub fn spawn(h: Handle, dir: PathBuf) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut seen = Seen::default();
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        loop {
            tick.tick().await;
            scan(&h, &dir, &mut seen).await;
        }
    })
}
