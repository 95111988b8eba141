//! The daemon's blocklist, as transmission-daemon keeps one: the `--blocklist` lists and
//! the one `blocklist-update` fetched from `blocklist-url` (kept in
//! `STATE/daemon/blocklist`, so that it is there after a restart), read into the session's
//! set while `blocklist-enabled` is on. `blocklist-size` is the number of ranges read.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use share_core::blocklist::Blocklist;
use share_engine::Session;

/// The lists and the set last read from them.
#[derive(Debug)]
pub struct Lists {
    sources: Vec<String>,
    /// Where the fetched list is kept.
    saved: PathBuf,
    /// The set last read (kept while the blocklist is off, to be put back when it is on). A
    /// lock held for a pointer copy.
    current: Mutex<Arc<Blocklist>>,
    size: AtomicUsize,
}

impl Lists {
    pub fn new(sources: Vec<String>, state_dir: &Path) -> Lists {
        Lists {
            sources,
            saved: state_dir.join("daemon").join("blocklist"),
            current: Mutex::default(),
            size: AtomicUsize::new(0),
        }
    }

    /// Ranges in the set last read.
    pub fn size(&self) -> usize {
        self.size.load(Ordering::Relaxed)
    }

    fn all(&self, fetched: &Path) -> Vec<String> {
        let mut all = self.sources.clone();
        if fetched.exists() {
            all.push(fetched.to_string_lossy().into_owned());
        }
        all
    }

    async fn read(
        &self,
        session: &Session,
        sources: &[String],
        enabled: bool,
    ) -> Result<usize, String> {
        if sources.is_empty() {
            self.install(session, Blocklist::default(), enabled);
            return Ok(0);
        }
        let (list, reports) = share_engine::blocks::load(sources, &session.egress()).await?;
        for r in &reports {
            if let Some(w) = r.warning() {
                tracing::warn!("{w}");
            }
        }
        let n = list.len();
        self.install(session, list, enabled);
        Ok(n)
    }

    fn install(&self, session: &Session, list: Blocklist, enabled: bool) {
        let list = Arc::new(list);
        self.size.store(list.len(), Ordering::Relaxed);
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = list;
        self.enable(session, enabled);
    }

    /// Reads every list again; the number of ranges.
    pub async fn reload(&self, session: &Session, enabled: bool) -> Result<usize, String> {
        let all = self.all(&self.saved);
        self.read(session, &all, enabled).await
    }

    /// Puts the set in force, or takes it out.
    pub fn enable(&self, session: &Session, on: bool) {
        let list = if on {
            self.current
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
        } else {
            Arc::new(Blocklist::default())
        };
        session.blocks().set(list);
    }

    /// `blocklist-update`: fetches `url` through the session's egress, and keeps it only if
    /// it reads as a list; the number of ranges in force after.
    pub async fn update(
        &self,
        session: &Session,
        url: &str,
        enabled: bool,
    ) -> Result<usize, String> {
        if url.trim().is_empty() {
            return Err("no blocklist-url is set".into());
        }
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("blocklist-url {url} is not an http or https URL"));
        }
        let body = share_engine::blocks::download(url, &session.egress())
            .await
            .map_err(|e| format!("blocklist {url}: {e}"))?;
        if let Some(dir) = self.saved.parent() {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        }
        let tmp = self.saved.with_extension("new");
        std::fs::write(&tmp, &body).map_err(|e| format!("{}: {e}", tmp.display()))?;
        let mut sources = self.sources.clone();
        sources.push(tmp.to_string_lossy().into_owned());
        match self.read(session, &sources, enabled).await {
            Ok(n) => {
                std::fs::rename(&tmp, &self.saved).map_err(|e| e.to_string())?;
                Ok(n)
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e.replace(&*tmp.to_string_lossy(), url))
            }
        }
    }
}
