//! The daemon's torrents: what each is (its metainfo or magnet link), where it goes, what
//! the user chose for it, and its totals over every run, and the session tasks that run them.
//!
//! One `Registry` behind one async mutex: the RPC handlers, the watch folder and the
//! once-a-second background work all go through it, so every change to the list and every
//! call into the session happens in one place, in order. The mutex is held across session
//! calls (adding, removing), which are short.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use share_core::{InfoHash, Magnet, Metainfo};
use share_engine::{Session, Source, State, Stats, TorrentCommand, TorrentConfig, TorrentHandle};
use tokio::sync::{oneshot, Mutex};
use tokio::time::Instant;

use crate::saved::{Folder, SavedList, SavedSession, SavedTorrent};
use crate::DaemonConfig;

/// Unix seconds now.
/// How long a torrent counts as recently active (or removed) for `recently-active`.
pub const RECENT: Duration = Duration::from_secs(60);

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// One torrent of the daemon.
pub struct Entry {
    pub saved: SavedTorrent,
    /// The metainfo, once known (at once for a .torrent, after the metadata for a magnet).
    pub meta: Option<Metainfo>,
    pub magnet: Option<Magnet>,
    /// The running torrent task; `None` when it could not run (see `error`).
    pub handle: Option<TorrentHandle>,
    pub error: Option<String>,
    /// When it last sent or received payload (for the idle seeding limit).
    pub last_active: Instant,
    pub last_bytes: u64,
    /// Seconds spent downloading and seeding in this run (counted by the background tick).
    pub secs_downloading: u64,
    pub secs_seeding: u64,
    pub started: i64,
}

impl Entry {
    fn new(saved: SavedTorrent, meta: Option<Metainfo>, magnet: Option<Magnet>) -> Entry {
        Entry {
            saved,
            meta,
            magnet,
            handle: None,
            error: None,
            last_active: Instant::now(),
            last_bytes: 0,
            secs_downloading: 0,
            secs_seeding: 0,
            started: unix_now(),
        }
    }

    pub fn hash(&self) -> InfoHash {
        let mut h = [0u8; 20];
        let _ = hex::decode_to_slice(&self.saved.hash, &mut h);
        InfoHash(h)
    }

    pub fn stats(&self) -> Option<&Arc<Stats>> {
        self.handle.as_ref().map(|h| &h.stats)
    }

    pub fn uploaded_ever(&self) -> u64 {
        self.saved.uploaded_ever + self.stats().map_or(0, |s| s.get(&s.uploaded))
    }

    pub fn downloaded_ever(&self) -> u64 {
        self.saved.downloaded_ever + self.stats().map_or(0, |s| s.get(&s.downloaded))
    }

    /// Uploaded over downloaded, as Transmission counts it: a torrent that downloaded
    /// nothing (it was seeded from the start) counts the bytes it has verified. None when
    /// there is nothing to divide by.
    pub fn ratio(&self) -> Option<f64> {
        let base = match self.downloaded_ever() {
            0 => self.stats().map_or(0, |s| s.get(&s.verified)),
            d => d,
        };
        (base > 0).then(|| self.uploaded_ever() as f64 / base as f64)
    }

    pub fn name(&self) -> String {
        match (&self.meta, &self.magnet) {
            (Some(m), _) => m.info.name.clone(),
            (None, Some(m)) => m.name.clone().unwrap_or_else(|| self.saved.hash.clone()),
            _ => self.saved.hash.clone(),
        }
    }

    pub fn state(&self) -> Option<State> {
        self.stats().map(|s| s.state())
    }

    /// Bytes of the files wanted, and of those not yet verified (from the files' progress
    /// when known, else from the torrent's totals).
    pub fn total_size(&self) -> u64 {
        self.meta.as_ref().map_or(0, |m| m.info.total_length)
    }

    /// Whether file `i` (in the list's order, padding left out) is wanted.
    pub fn wanted(&self, i: usize) -> bool {
        self.saved.wanted.get(i).copied().unwrap_or(true)
    }

    fn fold_totals(&mut self) {
        self.saved.uploaded_ever = self.uploaded_ever();
        self.saved.downloaded_ever = self.downloaded_ever();
    }
}

/// What `torrent-add` gets.
pub enum Added {
    Added { id: u32, name: String, hash: String },
    Duplicate { id: u32, name: String, hash: String },
}

/// A new torrent, from the RPC or the watch folder.
pub struct NewTorrent {
    pub source: NewSource,
    pub download_dir: PathBuf,
    pub paused: bool,
    pub labels: Vec<String>,
    /// Files chosen at add time, applied before the torrent starts so that unwanted files
    /// are never allocated. (A magnet's files are chosen with `torrent-set` once its
    /// metadata is here.)
    pub files: FileChoice,
}

/// Which files are wanted and at what priority, as `torrent-add` and `torrent-set` name
/// them: lists of file indexes, an empty list meaning every file.
#[derive(Debug, Default)]
pub struct FileChoice {
    pub wanted: Option<Vec<usize>>,
    pub unwanted: Option<Vec<usize>>,
    pub high: Option<Vec<usize>>,
    pub low: Option<Vec<usize>>,
    pub normal: Option<Vec<usize>>,
}

impl FileChoice {
    /// Applies the choice to a torrent's `count` files: Ok(false) if it names none (or the
    /// files are not known yet), an error for an index beyond them.
    pub fn apply(
        &self,
        count: usize,
        wanted: &mut Vec<bool>,
        priorities: &mut Vec<i8>,
    ) -> Result<bool, String> {
        let lists = [
            &self.wanted,
            &self.unwanted,
            &self.high,
            &self.low,
            &self.normal,
        ];
        if count == 0 || lists.iter().all(|x| x.is_none()) {
            return Ok(false);
        }
        if lists
            .iter()
            .any(|l| l.iter().flatten().any(|&i| i >= count))
        {
            return Err("a file index is beyond the torrent's files".into());
        }
        let every = |l: &Option<Vec<usize>>| -> Vec<usize> {
            match l {
                Some(v) if v.is_empty() => (0..count).collect(),
                Some(v) => v.clone(),
                None => Vec::new(),
            }
        };
        wanted.resize(count, true);
        priorities.resize(count, 0);
        for i in every(&self.wanted) {
            wanted[i] = true;
        }
        for i in every(&self.unwanted) {
            wanted[i] = false;
        }
        for (list, p) in [(&self.high, 1i8), (&self.low, -1), (&self.normal, 0)] {
            for i in every(list) {
                priorities[i] = p;
            }
        }
        Ok(true)
    }
}

pub enum NewSource {
    /// A .torrent's bytes.
    Metainfo(Vec<u8>),
    Magnet(String),
}

pub struct Registry {
    pub session: Session,
    folder: Folder,
    pub download_root: PathBuf,
    pub watch: Option<PathBuf>,
    state_dir: PathBuf,
    pub torrent_defaults: TorrentConfig,
    pub session_settings: crate::SessionSettings,
    pub entries: BTreeMap<u32, Entry>,
    /// Torrents removed lately, with when: `torrent-get` of `recently-active` names them.
    pub removed: Vec<(u32, Instant)>,
    next_id: u32,
    pub settings: SavedSession,
    dirty: bool,
    /// Warnings to show (a damaged list, a torrent that could not come back).
    pub warnings: Vec<String>,
    pub http: reqwest::Client,
    pub started: Instant,
    /// Session totals over this run (for `session-stats`): folded totals of removed torrents.
    pub removed_up: u64,
    pub removed_down: u64,
}

impl Registry {
    /// Brings back the torrents of the last run.
    pub async fn restore(session: Session, config: &DaemonConfig) -> Registry {
        let folder = Folder::new(&config.state_dir);
        let (list, warning) = folder.load();
        let mut r = Registry {
            session,
            folder,
            download_root: config.download_dir.clone(),
            watch: config.watch.clone(),
            state_dir: config.state_dir.clone(),
            torrent_defaults: config.torrent.clone(),
            session_settings: config.session.clone(),
            entries: BTreeMap::new(),
            removed: Vec::new(),
            next_id: list.next_id.max(1),
            settings: list.session.clone(),
            dirty: false,
            warnings: warning.into_iter().collect(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .no_proxy()
                .build()
                .unwrap_or_default(),
            started: Instant::now(),
            removed_up: 0,
            removed_down: 0,
        };
        if let Some(w) = r.warnings.first() {
            tracing::warn!("{w}");
        }
        for mut saved in list.torrents {
            if saved.download_dir.as_os_str().is_empty() {
                saved.download_dir = r.default_dir();
            }
            let meta = r
                .folder
                .read_torrent(&saved.hash)
                .and_then(|b| Metainfo::from_bytes(&b).ok())
                .or_else(|| r.engine_metadata(&saved.hash));
            let magnet = saved.magnet.as_deref().and_then(|m| Magnet::parse(m).ok());
            if meta.is_none() && magnet.is_none() {
                r.warnings.push(format!(
                    "torrent {} lost its metainfo; it is dropped from the list",
                    saved.hash
                ));
                continue;
            }
            r.next_id = r.next_id.max(saved.id + 1);
            let id = saved.id;
            let mut e = Entry::new(saved, meta, magnet);
            r.run(&mut e).await;
            r.entries.insert(id, e);
        }
        r.dirty = true;
        r.save();
        r
    }

    /// The default folder for new torrents.
    pub fn default_dir(&self) -> PathBuf {
        self.settings
            .download_dir
            .clone()
            .unwrap_or_else(|| self.download_root.clone())
    }

    /// The metadata the engine kept for a magnet (`STATE/metadata/<hash>.torrent`).
    fn engine_metadata(&self, hash: &str) -> Option<Metainfo> {
        let path = self
            .state_dir
            .join("metadata")
            .join(format!("{hash}.torrent"));
        let bytes = share_storage::state::read_state(&path, 64 << 20).ok()??;
        Metainfo::from_bytes(&bytes).ok()
    }

    /// Starts the torrent task for `e` in the session (paused if it was).
    async fn run(&self, e: &mut Entry) {
        let source = match (&e.meta, &e.magnet) {
            (Some(m), _) => Source::Torrent(m.clone()),
            (None, Some(m)) => Source::Magnet(m.clone()),
            _ => return,
        };
        let config = TorrentConfig {
            dir: e.saved.download_dir.clone(),
            stop_when_complete: false,
            wanted: e.saved.wanted.clone(),
            priorities: e.saved.priorities.clone(),
            ..self.torrent_defaults.clone()
        };
        match self.session.add(source, config).await {
            Ok(mut h) => {
                // Notices are for a terminal; the daemon reads the stats.
                if let Some(mut n) = h.notices.take() {
                    tokio::spawn(async move { while n.recv().await.is_some() {} });
                }
                if e.saved.up_limit.is_some() || e.saved.down_limit.is_some() {
                    h.send(TorrentCommand::SetLimits {
                        up: e.saved.up_limit,
                        down: e.saved.down_limit,
                    });
                }
                if e.saved.paused {
                    h.send(TorrentCommand::Pause);
                }
                e.handle = Some(h);
                e.error = None;
                e.started = unix_now();
            }
            Err(err) => {
                e.error = Some(err.to_string());
                e.handle = None;
            }
        }
    }

    /// Stops the torrent task (its totals folded into the saved ones) and waits for its end.
    async fn halt(&mut self, id: u32) {
        let Some(e) = self.entries.get_mut(&id) else {
            return;
        };
        e.fold_totals();
        let hash = e.hash();
        if let Some(h) = e.handle.take() {
            let done = h.done();
            if self.session.remove(hash).await {
                let _ = tokio::time::timeout(Duration::from_secs(15), done).await;
            }
        }
        self.dirty = true;
    }

    pub fn find_hash(&self, hash: &InfoHash) -> Option<u32> {
        let hex = hash.to_hex();
        self.entries
            .iter()
            .find(|(_, e)| e.saved.hash == hex)
            .map(|(id, _)| *id)
    }

    pub async fn add(&mut self, t: NewTorrent) -> Result<Added, String> {
        let (meta, magnet, hash) = match &t.source {
            NewSource::Metainfo(bytes) => {
                let m = Metainfo::from_bytes(bytes)
                    .map_err(|e| format!("invalid or corrupt torrent file: {e}"))?;
                let h = m.info_hash;
                (Some(m), None, h)
            }
            NewSource::Magnet(link) => {
                let m = Magnet::parse(link).map_err(|e| format!("invalid magnet link: {e}"))?;
                let h = m.info_hash;
                (None, Some(m), h)
            }
        };
        if let Some(id) = self.find_hash(&hash) {
            let e = &self.entries[&id];
            return Ok(Added::Duplicate {
                id,
                name: e.name(),
                hash: e.saved.hash.clone(),
            });
        }
        let hex = hash.to_hex();
        let meta = meta.or_else(|| self.engine_metadata(&hex));
        // Checked before anything is kept.
        let (mut wanted, mut priorities) = (Vec::new(), Vec::new());
        if let Some(m) = &meta {
            let count = m.info.files.iter().filter(|f| !f.padding).count();
            t.files.apply(count, &mut wanted, &mut priorities)?;
        }
        if let NewSource::Metainfo(bytes) = &t.source {
            self.folder.keep_torrent(&hex, bytes)?;
        }
        let id = self.next_id;
        self.next_id += 1;
        let mut e = Entry::new(
            SavedTorrent {
                id,
                hash: hex.clone(),
                magnet: match &t.source {
                    NewSource::Magnet(l) => Some(l.clone()),
                    NewSource::Metainfo(_) => None,
                },
                download_dir: t.download_dir,
                labels: t.labels,
                added: unix_now(),
                done: 0,
                paused: t.paused,
                wanted,
                priorities,
                up_limit: None,
                down_limit: None,
                seed_ratio_limit: self.settings.seed_ratio_limit,
                seed_ratio_mode: 0,
                seed_idle_limit: self.settings.idle_seeding_limit,
                seed_idle_mode: 0,
                uploaded_ever: 0,
                downloaded_ever: 0,
                finished: false,
            },
            meta,
            magnet,
        );
        self.run(&mut e).await;
        let name = e.name();
        self.entries.insert(id, e);
        self.dirty = true;
        self.save();
        Ok(Added::Added {
            id,
            name,
            hash: hex,
        })
    }

    pub fn start(&mut self, id: u32) {
        if let Some(e) = self.entries.get_mut(&id) {
            e.saved.paused = false;
            e.saved.finished = false;
            if let Some(h) = &e.handle {
                h.send(TorrentCommand::Resume);
            }
            self.dirty = true;
        }
    }

    /// Starts a torrent that could not run (after an error), or resumes one.
    pub async fn start_or_rerun(&mut self, id: u32) {
        let needs_run = self.entries.get(&id).is_some_and(|e| e.handle.is_none());
        self.start(id);
        if needs_run {
            if let Some(mut e) = self.entries.remove(&id) {
                self.run(&mut e).await;
                self.entries.insert(id, e);
            }
        }
    }

    pub fn stop(&mut self, id: u32) {
        if let Some(e) = self.entries.get_mut(&id) {
            e.saved.paused = true;
            if let Some(h) = &e.handle {
                h.send(TorrentCommand::Pause);
            }
            self.dirty = true;
        }
    }

    /// Checks the data again: the torrent restarts, which hashes what is on disk.
    pub async fn verify(&mut self, id: u32) {
        self.halt(id).await;
        if let Some(mut e) = self.entries.remove(&id) {
            self.run(&mut e).await;
            self.entries.insert(id, e);
        }
    }

    pub async fn remove(&mut self, id: u32, delete_data: bool) -> Result<(), String> {
        self.halt(id).await;
        let Some(e) = self.entries.remove(&id) else {
            return Ok(());
        };
        let now = Instant::now();
        self.removed
            .retain(|(_, at)| now.duration_since(*at) < RECENT);
        if self.removed.len() < 10_000 {
            self.removed.push((id, now));
        }
        self.removed_up += e.saved.uploaded_ever;
        self.removed_down += e.saved.downloaded_ever;
        self.folder.forget_torrent(&e.saved.hash);
        self.dirty = true;
        self.save();
        if delete_data {
            if let Some(m) = &e.meta {
                delete_content(&e.saved.download_dir, m)?;
            }
        }
        Ok(())
    }

    /// Moves a torrent to another folder (and its data, if `move_data`).
    pub async fn set_location(
        &mut self,
        id: u32,
        dir: PathBuf,
        move_data: bool,
    ) -> Result<(), String> {
        self.halt(id).await;
        let Some(mut e) = self.entries.remove(&id) else {
            return Ok(());
        };
        let result = match (&e.meta, move_data) {
            (Some(m), true) => move_content(&e.saved.download_dir, &dir, &m.info.name),
            _ => Ok(()),
        };
        if result.is_ok() {
            e.saved.download_dir = dir;
        }
        self.run(&mut e).await;
        self.entries.insert(id, e);
        self.dirty = true;
        self.save();
        result
    }

    pub fn set_limits(&mut self, id: u32, up: Option<Option<u64>>, down: Option<Option<u64>>) {
        if let Some(e) = self.entries.get_mut(&id) {
            if let Some(u) = up {
                e.saved.up_limit = u;
            }
            if let Some(d) = down {
                e.saved.down_limit = d;
            }
            if let Some(h) = &e.handle {
                h.send(TorrentCommand::SetLimits {
                    up: e.saved.up_limit,
                    down: e.saved.down_limit,
                });
            }
            self.dirty = true;
        }
    }

    /// Marks file `index` wanted (a stream of it started).
    pub fn want_file(&mut self, id: u32, index: usize) {
        let Some(e) = self.entries.get_mut(&id) else {
            return;
        };
        if e.saved.wanted.len() <= index {
            e.saved.wanted.resize(index + 1, true);
        }
        e.saved.wanted[index] = true;
        if let Some(h) = &e.handle {
            h.send(TorrentCommand::SetFiles {
                wanted: e.saved.wanted.clone(),
                priorities: e.saved.priorities.clone(),
            });
        }
        self.dirty = true;
    }

    /// Asks a running torrent for its details.
    pub async fn status(&self, id: u32) -> Option<share_engine::Status> {
        let h = self.entries.get(&id)?.handle.as_ref()?;
        let (tx, rx) = oneshot::channel();
        if !h.send_wait(TorrentCommand::Status(tx)).await {
            return None;
        }
        tokio::time::timeout(Duration::from_secs(5), rx)
            .await
            .ok()?
            .ok()
    }

    pub fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    /// Writes the list if anything changed.
    pub fn save(&mut self) {
        if !self.dirty {
            return;
        }
        let list = SavedList {
            version: 1,
            next_id: self.next_id,
            torrents: self
                .entries
                .values()
                .map(|e| {
                    let mut s = e.saved.clone();
                    s.uploaded_ever = e.uploaded_ever();
                    s.downloaded_ever = e.downloaded_ever();
                    s
                })
                .collect(),
            session: self.settings.clone(),
        };
        match self.folder.save(&list) {
            Ok(()) => self.dirty = false,
            Err(e) => tracing::warn!(error = %e, "could not save the torrent list"),
        }
    }

    /// Once a second: metadata that arrived, completion dates, errors, seeding goals.
    pub fn tick(&mut self) {
        let now = Instant::now();
        let hashes: Vec<u32> = self.entries.keys().copied().collect();
        for id in hashes {
            let mut stop = false;
            let mut want_meta = false;
            {
                let Some(e) = self.entries.get_mut(&id) else {
                    continue;
                };
                if let Some(h) = &e.handle {
                    if let Some(Err(err)) = h.ended() {
                        e.error = Some(err);
                        e.handle = None;
                        self.dirty = true;
                        continue;
                    }
                }
                let Some(stats) = e.stats().cloned() else {
                    continue;
                };
                let bytes = stats.get(&stats.uploaded) + stats.get(&stats.downloaded);
                if bytes != e.last_bytes {
                    e.last_bytes = bytes;
                    e.last_active = now;
                }
                match stats.state() {
                    State::Seeding => {
                        e.secs_seeding += 1;
                        if e.saved.done == 0 {
                            e.saved.done = unix_now();
                            self.dirty = true;
                        }
                    }
                    State::Downloading | State::Metadata => e.secs_downloading += 1,
                    _ => {}
                }
                if e.meta.is_none() && stats.get(&stats.total) > 0 {
                    want_meta = true;
                }
                if stats.state() == State::Seeding && !e.saved.paused {
                    stop = goal_reached(e, &self.settings, now);
                }
            }
            if want_meta {
                let hex = self.entries[&id].saved.hash.clone();
                if let Some(m) = self.engine_metadata(&hex) {
                    if let Some(e) = self.entries.get_mut(&id) {
                        e.meta = Some(m);
                    }
                }
            }
            if stop {
                self.stop(id);
                if let Some(e) = self.entries.get_mut(&id) {
                    e.saved.finished = true;
                }
            }
        }
    }

    pub async fn shutdown(&mut self) {
        self.dirty = true;
        self.save();
        self.session.shutdown().await;
        self.dirty = true;
        self.save();
    }

    pub fn folder(&self) -> &Folder {
        &self.folder
    }
}

/// Whether a seeding torrent has met its ratio or idle goal (Transmission's modes: 0 the
/// session's, 1 the torrent's own, 2 none).
fn goal_reached(e: &Entry, s: &SavedSession, now: Instant) -> bool {
    let ratio_limit = match e.saved.seed_ratio_mode {
        1 => Some(e.saved.seed_ratio_limit),
        0 if s.seed_ratio_limited => Some(s.seed_ratio_limit),
        _ => None,
    };
    if let Some(limit) = ratio_limit {
        if e.ratio().is_some_and(|r| r >= limit) {
            return true;
        }
    }
    let idle_limit = match e.saved.seed_idle_mode {
        1 => Some(e.saved.seed_idle_limit),
        0 if s.idle_seeding_limit_enabled => Some(s.idle_seeding_limit),
        _ => None,
    };
    idle_limit.is_some_and(|m| now.duration_since(e.last_active) >= Duration::from_secs(m * 60))
}

/// Deletes a torrent's files (and the folders it made that are then empty), only inside
/// `dir`.
fn delete_content(dir: &Path, meta: &Metainfo) -> Result<(), String> {
    let layout = share_storage::Layout::for_torrent(dir, &meta.info).map_err(|e| e.to_string())?;
    for slot in &layout.slots {
        if slot.padding {
            continue;
        }
        match std::fs::remove_file(&slot.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("{}: {e}", slot.path.display())),
        }
    }
    if !meta.info.single_file {
        let root = dir.join(&meta.info.name);
        // Folders deepest first; only empty ones go.
        let mut folders: Vec<PathBuf> = layout
            .slots
            .iter()
            .flat_map(|s| {
                s.path
                    .ancestors()
                    .skip(1)
                    .map(Path::to_path_buf)
                    .collect::<Vec<_>>()
            })
            .filter(|p| p.starts_with(&root))
            .collect();
        folders.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        folders.dedup();
        for f in folders {
            let _ = std::fs::remove_dir(f);
        }
    }
    Ok(())
}

/// Moves `from/name` to `to/name` (a rename, or a copy and delete across filesystems).
fn move_content(from: &Path, to: &Path, name: &str) -> Result<(), String> {
    let (src, dst) = (from.join(name), to.join(name));
    if !src.exists() || src == dst {
        return Ok(());
    }
    std::fs::create_dir_all(to).map_err(|e| format!("{}: {e}", to.display()))?;
    if std::fs::rename(&src, &dst).is_ok() {
        return Ok(());
    }
    copy_tree(&src, &dst)
        .map_err(|e| format!("moving {} to {}: {e}", src.display(), dst.display()))?;
    if src.is_dir() {
        std::fs::remove_dir_all(&src)
    } else {
        std::fs::remove_file(&src)
    }
    .map_err(|e| format!("{}: {e}", src.display()))
}

fn copy_tree(src: &Path, dst: &Path) -> std::io::Result<()> {
    if src.is_dir() {
        std::fs::create_dir_all(dst)?;
        for e in std::fs::read_dir(src)? {
            let e = e?;
            copy_tree(&e.path(), &dst.join(e.file_name()))?;
        }
        Ok(())
    } else {
        std::fs::copy(src, dst).map(|_| ())
    }
}

/// The background work: the tick, the watch folder, and saving the list now and then.
pub fn spawn_background(
    registry: Arc<Mutex<Registry>>,
    watch: Option<PathBuf>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut n: u64 = 0;
        let mut seen = crate::watch::Seen::default();
        loop {
            tick.tick().await;
            n += 1;
            let mut r = registry.lock().await;
            r.tick();
            if let Some(w) = &watch {
                if n.is_multiple_of(2) {
                    crate::watch::scan(&mut r, w, &mut seen).await;
                }
            }
            if n.is_multiple_of(30) {
                r.mark_dirty();
            }
            r.save();
        }
    })
}
