//! What the daemon does to torrents that takes time, in the caller's own task: adding from
//! a URL or a local file, stopping a torrent's task and waiting for its end, deleting and
//! moving data, asking running torrents for their details. The registry's owner is asked
//! only for the quick parts before and after (see `owner.rs`), so other RPC calls are
//! answered meanwhile; an entry being stopped or moved is marked busy.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use share_core::InfoHash;
use share_engine::{Session, Status, TorrentCommand, TorrentHandle};
use tokio::sync::{mpsc, oneshot};

use crate::owner::Handle;
use crate::registry::{engine_metadata, Added, NewSource, NewTorrent};

/// Largest .torrent taken from a URL or a local file.
pub const MAX_TORRENT_FILE: u64 = 16 << 20;
/// Redirects followed when fetching a .torrent by URL.
const MAX_REDIRECTS: usize = 5;
/// How long a torrent may take to stop (announce `stopped`, flush its data).
const STOP_WAIT: Duration = Duration::from_secs(15);
/// How long a torrent may take to give its details.
const STATUS_WAIT: Duration = Duration::from_secs(5);
/// How long an RPC call waits for fresh details before it answers with the last ones.
const FRESH_WAIT: Duration = Duration::from_millis(40);

/// The client for .torrent URLs: a timeout for the whole request, a few redirects (a
/// redirect to a magnet link stops there, and the link is taken).
pub fn http_client(egress: &share_engine::Egress) -> reqwest::Client {
    egress
        .http(reqwest::Client::builder())
        .timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::custom(|a| {
            if a.url().scheme() == "magnet" {
                a.stop()
            } else if a.previous().len() >= MAX_REDIRECTS {
                a.error(format!("more than {MAX_REDIRECTS} redirects"))
            } else {
                a.follow()
            }
        }))
        .build()
        // A client that cannot be built the egress's way must not go another way.
        .unwrap_or_else(|_| {
            reqwest::Client::builder()
                .proxy(reqwest::Proxy::all("socks5h://0.0.0.0:9").expect("literal"))
                .build()
                .unwrap_or_default()
        })
}

/// A .torrent from a URL (media managers hand those over); a redirect to a magnet link is
/// taken as the magnet. At most [`MAX_TORRENT_FILE`] bytes are read.
pub async fn fetch_url(h: &Handle, url: &str) -> Result<NewSource, String> {
    let resp = h
        .http
        .get(url)
        .send()
        .await
        .map_err(|e| format!("fetching {url}: {e}"))?;
    if resp.status().is_redirection() {
        if let Some(loc) = resp.headers().get("location").and_then(|l| l.to_str().ok()) {
            if share_core::Magnet::looks_like(loc) {
                return Ok(NewSource::Magnet(loc.to_owned()));
            }
        }
    }
    if !resp.status().is_success() {
        return Err(format!("fetching {url}: HTTP {}", resp.status()));
    }
    if resp.content_length().is_some_and(|n| n > MAX_TORRENT_FILE) {
        return Err(format!("{url}: larger than {MAX_TORRENT_FILE} bytes"));
    }
    let mut resp = resp;
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("fetching {url}: {e}"))?
    {
        if (body.len() + chunk.len()) as u64 > MAX_TORRENT_FILE {
            return Err(format!("{url}: larger than {MAX_TORRENT_FILE} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(NewSource::Metainfo(body))
}

/// A local .torrent or .magnet file (its path already checked to be in an allowed folder),
/// read up to [`MAX_TORRENT_FILE`] bytes.
pub async fn read_local(path: PathBuf) -> Result<NewSource, String> {
    tokio::task::spawn_blocking(move || {
        let f = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut bytes = Vec::new();
        f.take(MAX_TORRENT_FILE + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if bytes.len() as u64 > MAX_TORRENT_FILE {
            return Err(format!(
                "{}: larger than {MAX_TORRENT_FILE} bytes",
                path.display()
            ));
        }
        let magnet = path
            .extension()
            .is_some_and(|x| x.eq_ignore_ascii_case("magnet"));
        Ok(if magnet {
            NewSource::Magnet(String::from_utf8_lossy(&bytes).trim().to_owned())
        } else {
            NewSource::Metainfo(bytes)
        })
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Adds a torrent: its source is read and its .torrent kept here; the registry only
/// records it and starts it.
pub async fn add(h: &Handle, t: NewTorrent) -> Result<Added, String> {
    let (state_dir, folder) = (h.state_dir.clone(), h.folder.clone());
    let (root, download_root) = (h.root.clone(), h.download_root.clone());
    let (t, parsed) = tokio::task::spawn_blocking(move || {
        let mut p = t.source.parse()?;
        let hex = p.hash.to_hex();
        if p.meta.is_none() {
            p.meta = engine_metadata(&state_dir, &hex);
        }
        if let (Some(m), Ok(rel)) = (&p.meta, relative(&download_root, &t.download_dir)) {
            p.found = root.exists(&rel.join(&m.info.name));
        }
        // Its metainfo in the configuration folder (a magnet's, when its metadata is
        // known already; else once it arrives).
        match (&t.source, &p.meta) {
            (NewSource::Metainfo(bytes), _) => folder.keep_torrent(&hex, bytes)?,
            (NewSource::Magnet(_), Some(m)) => folder.keep_torrent(&hex, &m.to_torrent_bytes())?,
            _ => {}
        }
        Ok::<_, String>((t, p))
    })
    .await
    .map_err(|e| e.to_string())??;
    let hash = parsed.hash;
    let added = h
        .call(move |r| Box::pin(r.add(t, parsed)))
        .await
        .map_err(|e| e.to_string())?;
    if added.is_err() {
        // Refused (a bad file choice): its .torrent is not kept unless it was there before.
        let known = h.read(move |r| r.find_hash(&hash).is_some()).await;
        if matches!(known, Ok(false)) {
            forget_torrent_file(h, hash).await;
        }
    }
    added
}

async fn forget_torrent_file(h: &Handle, hash: InfoHash) {
    let folder = h.folder.clone();
    let _ = tokio::task::spawn_blocking(move || folder.forget_torrent(&hash.to_hex())).await;
}

/// Stops a torrent's task (it tells its trackers and flushes its data) and waits a while
/// for its end.
pub async fn stop_task(session: &Session, handle: TorrentHandle) {
    let done = handle.done();
    if session.remove(handle.info_hash).await {
        let _ = tokio::time::timeout(STOP_WAIT, done).await;
    }
}

/// Checks a torrent's data again: its task restarts, which hashes what is on disk.
pub async fn verify(h: &Handle, id: u32) -> Result<(), String> {
    let taken = h
        .read(move |r| r.take_handle(id, "checking"))
        .await
        .map_err(|e| e.to_string())??;
    if let Some(handle) = taken {
        stop_task(&h.session, handle).await;
    }
    h.call(move |r| Box::pin(r.rerun(id)))
        .await
        .map_err(|e| e.to_string())
}

/// Removes a torrent from the list, stops it, and deletes its data if asked: only its own
/// files (and the folders they leave empty), resolved beneath the download folder; a
/// symlink is removed, never followed.
pub async fn remove(h: &Handle, id: u32, delete_data: bool) -> Result<(), String> {
    let detached = h
        .read(move |r| r.detach(id))
        .await
        .map_err(|e| e.to_string())??;
    let Some(mut e) = detached else {
        return Ok(());
    };
    if let Some(handle) = e.handle.take() {
        stop_task(&h.session, handle).await;
    }
    h.statuses.forget(id);
    forget_torrent_file(h, e.hash()).await;
    let Some(meta) = e.meta.take().filter(|_| delete_data) else {
        return Ok(());
    };
    let rel = relative(&h.download_root, &e.saved.download_dir)?;
    let root = h.root.clone();
    tokio::task::spawn_blocking(move || {
        share_storage::Layout::for_torrent(root, &rel, &meta.info)
            .and_then(|l| l.delete())
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// `dir` below the download folder, as plain elements.
fn relative(root: &Path, dir: &Path) -> Result<PathBuf, String> {
    dir.strip_prefix(root)
        .map(Path::to_path_buf)
        .map_err(|_| format!("{} is outside the download folder", dir.display()))
}

/// Moves a torrent to another folder (and its data, if `move_data`): a rename where the
/// folders share a filesystem, else a copy that keeps symlinks as links, then a delete.
/// A destination inside the torrent's own folder is refused before anything changes.
pub async fn set_location(
    h: &Handle,
    id: u32,
    dir: PathBuf,
    move_data: bool,
) -> Result<(), String> {
    let content = h
        .read(move |r| r.content_of(id))
        .await
        .map_err(|e| e.to_string())?;
    let Some((from, meta)) = content else {
        return Ok(());
    };
    let to = relative(&h.download_root, &dir)?;
    let name = meta.as_ref().map(|m| m.info.name.clone());
    if let Some(name) = &name {
        let source = from.join(name);
        if move_data && to.starts_with(&source) {
            return Err(format!(
                "cannot move {} into a folder inside itself ({})",
                source.display(),
                dir.display()
            ));
        }
    }
    let taken = h
        .read(move |r| r.take_handle(id, "moving"))
        .await
        .map_err(|e| e.to_string())??;
    if let Some(handle) = taken {
        stop_task(&h.session, handle).await;
    }
    let moved = match (name, move_data) {
        (Some(name), true) if from != to => {
            let root = h.root.clone();
            tokio::task::spawn_blocking(move || {
                root.move_tree(&from.join(&name), &to.join(&name))
                    .map_err(|e| e.to_string())
            })
            .await
            .unwrap_or_else(|e| Err(e.to_string()))
        }
        _ => Ok(()),
    };
    let ok = moved.is_ok();
    h.call(move |r| {
        Box::pin(async move {
            if ok {
                r.set_dir(id, dir);
            }
            r.rerun(id).await
        })
    })
    .await
    .map_err(|e| e.to_string())?;
    moved
}

/// Renames a file or folder of a torrent (`torrent-rename-path`): worked out on its
/// metainfo, then its task is stopped, the data renamed beneath the download folder (when
/// it is on disk), the new names kept, and the task started again with them.
pub async fn rename_path(h: &Handle, id: u32, path: &str, name: &str) -> Result<(), String> {
    let (path, name) = (path.to_owned(), name.to_owned());
    let planned = h
        .read(move |r| {
            let e = r
                .entries
                .get(&id)
                .ok_or_else(|| format!("no torrent {id}"))?;
            let meta = e
                .meta
                .as_ref()
                .ok_or("its metadata is not here yet: nothing to rename")?;
            let plan = crate::rpc::rename_plan(meta, &e.saved.renames, &path, &name)?;
            Ok::<_, String>((plan, e.saved.download_dir.clone()))
        })
        .await
        .map_err(|e| e.to_string())??;
    let (plan, dir) = planned;
    let rel = relative(&h.download_root, &dir)?;
    let taken = h
        .read(move |r| r.take_handle(id, "renaming"))
        .await
        .map_err(|e| e.to_string())??;
    if let Some(handle) = taken {
        stop_task(&h.session, handle).await;
    }
    let root = h.root.clone();
    let (from, to) = (rel.join(&plan.from), rel.join(&plan.to));
    let renamed = tokio::task::spawn_blocking(move || {
        if root.exists(&from) {
            root.rename(&from, &root, &to).map_err(|e| e.to_string())
        } else if root.exists(&to) {
            Err(format!("{}: it exists already", to.display()))
        } else {
            // Nothing on disk yet: the new name is used when the file is made.
            Ok(())
        }
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    let renames = renamed.is_ok().then_some(plan.renames);
    h.call(move |r| {
        Box::pin(async move {
            if let Some(renames) = renames {
                r.set_renames(id, renames);
            }
            r.rerun(id).await
        })
    })
    .await
    .map_err(|e| e.to_string())?;
    renamed
}

/// Moves a torrent that completed in the incomplete folder to its own folder (where it
/// keeps seeding); a failure is shown as the torrent's error, and not tried again this run.
pub async fn finish(h: &Handle, id: u32) {
    let to = h
        .read(move |r| r.entries.get(&id).and_then(|e| e.saved.final_dir.clone()))
        .await
        .ok()
        .flatten();
    let Some(to) = to else {
        return;
    };
    if let Err(e) = set_location(h, id, to, true).await {
        tracing::warn!(id, error = %e, "could not move a completed torrent to its folder");
        let _ = h
            .read(move |r| {
                if let Some(entry) = r.entries.get_mut(&id) {
                    entry.error = Some(format!("moving it to its folder: {e}"));
                }
            })
            .await;
    }
}

/// A running torrent's details, asked of its task (none if it does not answer in time).
pub async fn status(commands: mpsc::Sender<TorrentCommand>) -> Option<Status> {
    let (tx, rx) = oneshot::channel();
    tokio::time::timeout(STATUS_WAIT, async {
        commands.send(TorrentCommand::Status(tx)).await.ok()?;
        rx.await.ok()
    })
    .await
    .ok()?
}

/// The details each running torrent last gave: what RPC calls answer with when a torrent
/// is too busy to answer at once (its disk slow, its queue full). A lock held only to put
/// or copy out entries.
#[derive(Default)]
pub struct StatusBoard {
    inner: std::sync::Mutex<Board>,
}

#[derive(Default)]
struct Board {
    last: std::collections::HashMap<u32, std::sync::Arc<Status>>,
    /// Torrents asked and not answered yet: never asked twice at once.
    asking: std::collections::HashSet<u32>,
}

impl StatusBoard {
    fn lock(&self) -> std::sync::MutexGuard<'_, Board> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets a torrent that is gone.
    pub fn forget(&self, id: u32) {
        self.lock().last.remove(&id);
    }
}

/// The details of the torrents in `askers`, asked all at once: fresh ones from those that
/// answer within [`FRESH_WAIT`], the last ones from the others (which update the board when
/// they answer), none from a torrent that never answered.
pub async fn statuses(
    board: &std::sync::Arc<StatusBoard>,
    askers: Vec<(u32, mpsc::Sender<TorrentCommand>)>,
) -> std::collections::HashMap<u32, Status> {
    let ids: Vec<u32> = askers.iter().map(|(id, _)| *id).collect();
    let mut asked = Vec::new();
    {
        let mut b = board.lock();
        for (id, c) in askers {
            if !b.asking.insert(id) {
                continue;
            }
            let board = board.clone();
            asked.push(tokio::spawn(async move {
                let s = status(c).await;
                let mut b = board.lock();
                b.asking.remove(&id);
                if let Some(s) = s {
                    b.last.insert(id, std::sync::Arc::new(s));
                }
            }));
        }
    }
    let _ = tokio::time::timeout(FRESH_WAIT, futures_util::future::join_all(asked)).await;
    let b = board.lock();
    ids.iter()
        .filter_map(|id| Some((*id, Status::clone(b.last.get(id)?))))
        .collect()
}
