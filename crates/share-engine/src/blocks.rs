//! The session's IP blocklist (`--blocklist`, the daemon's `blocklist-update`): one set
//! shared by the acceptor, every torrent's dialing and peer exchange, LSD and the DHT.
//!
//! A blocked address is never dialed (it never enters an address book, and a book entry
//! that becomes blocked is dropped at its dial), its connections are closed at accept
//! before a byte is read, peers we are connected to are dropped when a new list blocks
//! them, and it is never passed on: PEX lists only peers we are connected to, and the DHT
//! neither answers nor asks a blocked node.
//!
//! The set is replaced whole (a new list is read beside the old one, then swapped in): a
//! read lock around one binary search, a write lock around one pointer swap.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use share_core::blocklist::Blocklist;

/// A cheap handle on the session's blocklist.
#[derive(Debug, Clone, Default)]
pub struct Blocks(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    list: RwLock<Arc<Blocklist>>,
    /// Counts replacements: holders of state derived from the list notice a new one.
    generation: AtomicU64,
}

impl Blocks {
    pub fn new(list: Blocklist) -> Blocks {
        let b = Blocks::default();
        b.set(list);
        b
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let list = self.0.list.read().unwrap_or_else(|p| p.into_inner());
        !list.is_empty() && list.contains(ip)
    }

    /// Ranges in the set.
    pub fn len(&self) -> usize {
        self.0.list.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Replaces the set.
    pub fn set(&self, list: impl Into<Arc<Blocklist>>) {
        *self.0.list.write().unwrap_or_else(|p| p.into_inner()) = list.into();
        self.0.generation.fetch_add(1, Ordering::Relaxed);
    }

    pub fn generation(&self) -> u64 {
        self.0.generation.load(Ordering::Relaxed)
    }
}

/// Longest download of a list (published lists are a few MiB gzip'd).
pub const MAX_DOWNLOAD: usize = 256 << 20;
const DOWNLOAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// What reading one list found.
#[derive(Debug, Clone)]
pub struct ListReport {
    /// The path or URL.
    pub source: String,
    pub loaded: share_core::blocklist::Loaded,
}

impl ListReport {
    /// The one warning a list with lines not understood is worth.
    pub fn warning(&self) -> Option<String> {
        let l = &self.loaded;
        (l.bad_lines > 0).then(|| {
            format!(
                "blocklist {}: {} line{} not understood, skipped (the first is line {})",
                self.source,
                l.bad_lines,
                if l.bad_lines == 1 { "" } else { "s" },
                l.first_bad.unwrap_or(0)
            )
        })
    }
}

enum Input {
    File(std::path::PathBuf),
    Bytes(Vec<u8>),
}

/// Downloads `url` through `egress`, at most [`MAX_DOWNLOAD`] bytes.
pub async fn download(url: &str, egress: &crate::Egress) -> Result<Vec<u8>, String> {
    let client = egress
        .http(reqwest::Client::builder())
        .timeout(DOWNLOAD_TIMEOUT)
        .connect_timeout(std::time::Duration::from_secs(10))
        .user_agent(concat!("share/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| e.to_string())?;
    let mut resp = client.get(url).send().await.map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("HTTP {}", resp.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_DOWNLOAD {
            return Err(format!("larger than {MAX_DOWNLOAD} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Reads each source (a file, or an `http(s)://` URL fetched through `egress`) into one
/// set. A list that cannot be read or is not a list at all is an error naming it; lines
/// not understood are counted in its report.
pub async fn load(
    sources: &[String],
    egress: &crate::Egress,
) -> Result<(Blocklist, Vec<ListReport>), String> {
    let mut inputs = Vec::new();
    for s in sources {
        if s.starts_with("http://") || s.starts_with("https://") {
            let body = download(s, egress)
                .await
                .map_err(|e| format!("blocklist {s}: {e}"))?;
            inputs.push((s.clone(), Input::Bytes(body)));
        } else {
            inputs.push((s.clone(), Input::File(s.into())));
        }
    }
    tokio::task::spawn_blocking(move || {
        let mut b = share_core::blocklist::Builder::new();
        let mut reports = Vec::new();
        for (source, input) in inputs {
            let loaded = match input {
                Input::File(path) => {
                    let f = std::fs::File::open(&path)
                        .map_err(|e| format!("blocklist {source}: {e}"))?;
                    b.add(f)
                }
                Input::Bytes(v) => b.add(std::io::Cursor::new(v)),
            }
            .map_err(|e| format!("blocklist {source}: {e}"))?;
            if loaded.entries == 0 && loaded.bad_lines > 0 {
                return Err(format!(
                    "blocklist {source}: no line is a P2P, eMule DAT or CIDR entry (the first bad one is line {})",
                    loaded.first_bad.unwrap_or(0)
                ));
            }
            reports.push(ListReport { source, loaded });
        }
        Ok((b.finish(), reports))
    })
    .await
    .map_err(|e| format!("reading blocklists: {e}"))?
}
