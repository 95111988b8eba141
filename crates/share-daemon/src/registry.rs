//! The daemon's torrents: what each is (its metainfo or magnet link), where it goes, what
//! the user chose for it, and its totals over every run, and the session tasks that run them.
//!
//! The `Registry` has one owner, the task in `owner.rs`: the RPC handlers, the watch folder
//! and the once-a-second tick all go through it, so every change to the list and every call
//! into the session happens in one place, in order. Nothing here waits on the network or
//! the disk: stopping a torrent (which waits for its task to end), moving and deleting data
//! and fetching URLs happen in the callers' tasks (`ops.rs`); an entry being worked on is
//! marked `busy` meanwhile. The only awaits are the session's own commands (add, remove),
//! which its task answers at once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use share_core::{InfoHash, Magnet, Metainfo};
use share_engine::{Session, Source, State, Stats, TorrentCommand, TorrentConfig, TorrentHandle};
use share_storage::root::Root;
use tokio::time::Instant;

use crate::saved::{Folder, RateLimits, SavedCategory, SavedList, SavedSession, SavedTorrent};
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
    /// What is being done to it outside the registry (stopping, moving, checking), if
    /// anything: other changes wait until it is done.
    pub busy: Option<&'static str>,
    /// Its move out of the incomplete folder has been started (tried once a run).
    pub finishing: bool,
    /// Started, but waiting for a slot in its queue (its task is paused); see `queue.rs`.
    pub queued: bool,
    /// When it last started to run (for the queues' stall rule).
    pub run_since: Instant,
}

impl Entry {
    fn new(saved: SavedTorrent, mut meta: Option<Metainfo>, mut magnet: Option<Magnet>) -> Entry {
        if let Some(m) = &mut meta {
            saved.apply(m);
        }
        if let Some(m) = &mut magnet {
            saved.apply_magnet(m);
        }
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
            busy: None,
            finishing: false,
            queued: false,
            run_since: Instant::now(),
        }
    }

    pub fn hash(&self) -> InfoHash {
        let mut h = [0u8; 20];
        let _ = hex::decode_to_slice(&self.saved.hash, &mut h);
        InfoHash(h)
    }

    /// The hashes it is known by: from its metainfo or magnet link, else its key alone.
    pub fn hashes(&self) -> share_core::InfoHashes {
        match (&self.meta, &self.magnet) {
            (Some(m), _) => m.hashes,
            (None, Some(m)) => m.hashes,
            _ => share_core::InfoHashes::v1(self.hash()),
        }
    }

    /// As the Transmission RPC shows it (`hashString`): the v1 hash where there is one,
    /// else the 64 hex digits of the v2 hash.
    pub fn hash_string(&self) -> String {
        let h = self.hashes().display();
        if h.is_empty() {
            self.saved.hash.clone()
        } else {
            h
        }
    }

    /// Takes the metainfo its running task has (a magnet's, once its metadata arrived):
    /// true when it is new.
    pub fn sync_meta(&mut self) -> bool {
        if self.meta.is_none() {
            if let Some(m) = self.handle.as_ref().and_then(|h| h.metainfo()) {
                let mut m = (*m).clone();
                self.saved.apply(&mut m);
                self.meta = Some(m);
                return true;
            }
        }
        false
    }

    /// The folder it belongs in: where it goes once complete, while it downloads into the
    /// incomplete folder; else where it is.
    pub fn download_dir(&self) -> &Path {
        self.saved
            .final_dir
            .as_deref()
            .unwrap_or(&self.saved.download_dir)
    }

    /// Whether `hex` (40 or 64 hex digits, any case) names this torrent.
    pub fn named_by(&self, hex: &str) -> bool {
        let hex = hex.to_ascii_lowercase();
        let hashes = self.hashes();
        hex == self.saved.hash
            || hashes.v1.is_some_and(|h| h.to_hex() == hex)
            || hashes.v2.is_some_and(|h| {
                let full = ::hex::encode(h);
                full == hex || full[..40] == hex
            })
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
        if let Some(n) = &self.saved.name {
            return n.clone();
        }
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
    /// What the qBittorrent API's add sets besides.
    pub options: AddOptions,
}

/// Settings of a new torrent besides its folder, state, labels and files (the qBittorrent
/// API's `torrents/add`); the defaults are those of any other add.
#[derive(Debug, Default, Clone)]
pub struct AddOptions {
    /// Its category, created if unknown (`""`: none).
    pub category: String,
    pub name: Option<String>,
    pub sequential: bool,
    pub force_start: bool,
    /// Bytes per second.
    pub up_limit: Option<u64>,
    pub down_limit: Option<u64>,
    /// Seeding goals as `SavedTorrent` keeps them: (mode, ratio), (mode, idle minutes),
    /// minutes of seeding.
    pub seed_ratio: Option<(u8, f64)>,
    pub seed_idle: Option<(u8, u64)>,
    pub seeding_time_limit: Option<i64>,
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

/// A new torrent's source, read and checked.
pub struct Parsed {
    pub hash: InfoHash,
    /// Known at once for a .torrent; for a magnet, when the engine kept its metadata.
    pub meta: Option<Metainfo>,
    pub magnet: Option<Magnet>,
    /// Its content is in its folder already: it stays there rather than going through
    /// the incomplete folder.
    pub found: bool,
}

impl NewSource {
    /// Reads the .torrent or the magnet link (refused with the reason if malformed).
    pub fn parse(&self) -> Result<Parsed, String> {
        match self {
            NewSource::Metainfo(bytes) => {
                let m = Metainfo::from_bytes(bytes)
                    .map_err(|e| format!("invalid or corrupt torrent file: {e}"))?;
                Ok(Parsed {
                    hash: m.info_hash,
                    meta: Some(m),
                    magnet: None,
                    found: false,
                })
            }
            NewSource::Magnet(link) => {
                let m = Magnet::parse(link).map_err(|e| format!("invalid magnet link: {e}"))?;
                Ok(Parsed {
                    hash: m.info_hash,
                    meta: None,
                    magnet: Some(m),
                    found: false,
                })
            }
        }
    }
}

pub struct Registry {
    pub session: Session,
    folder: Folder,
    pub download_root: PathBuf,
    /// The download folder, as a handle every file of every torrent is resolved beneath.
    pub root: Arc<Root>,
    /// Where the list goes to be written (by the saver, off the registry's task).
    saver: tokio::sync::watch::Sender<Option<SavedList>>,
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
    /// The qBittorrent API's categories, and its tags besides those torrents carry.
    pub categories: BTreeMap<String, SavedCategory>,
    pub tags: BTreeSet<String>,
    /// Whether the alternative limits' schedule was due at the last look (`None`: not
    /// looked at since it last changed): the limits switch when this changes.
    schedule_due: Option<bool>,
    /// The `--blocklist` lists and the one `blocklist-update` fetched.
    pub blocklist: Arc<crate::blocklist::Lists>,
}

impl Registry {
    /// Brings back the torrents of the last run.
    pub async fn restore(
        session: Session,
        config: &DaemonConfig,
        root: Arc<Root>,
        blocklist: Arc<crate::blocklist::Lists>,
    ) -> Registry {
        let folder = Folder::new(&config.state_dir);
        let http = crate::ops::http_client(&session.egress());
        let (list, warning) = folder.load();
        let mut r = Registry {
            saver: spawn_saver(folder.clone()),
            session,
            folder,
            download_root: config.download_dir.clone(),
            root,
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
            http,
            started: Instant::now(),
            removed_up: 0,
            removed_down: 0,
            categories: list.categories.clone(),
            tags: list.tags.clone(),
            schedule_due: None,
            blocklist,
        };
        let cli = &r.session_settings;
        if cli.max_upload_rate.is_some() || cli.max_download_rate.is_some() {
            r.settings.rate_limits = None;
        }
        r.apply_rate_limits();
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
            if let Some(m) = meta
                .as_ref()
                .filter(|_| !r.folder.torrent_path(&saved.hash).exists())
            {
                r.keep_metainfo(&saved.hash, m);
            }
            if meta.is_none() && magnet.is_none() {
                r.warnings.push(format!(
                    "torrent {} lost its metainfo; it is dropped from the list",
                    saved.hash
                ));
                continue;
            }
            r.next_id = r.next_id.max(saved.id + 1);
            let id = saved.id;
            r.entries.insert(id, Entry::new(saved, meta, magnet));
        }
        // Places without gaps (a list from before the queue: in the order of the ids), and
        // which torrents wait in their queue, before any starts.
        let order = r.queue_order();
        r.store_order(&order);
        r.queue_at_start();
        for id in order {
            if let Some(mut e) = r.entries.remove(&id) {
                r.run(&mut e).await;
                r.entries.insert(id, e);
            }
        }
        r.dirty = true;
        r.save();
        r
    }

    /// The session's limits outside alternative mode: those last set through an API, else
    /// those of the command line (which, when given, win at start: see `restore`).
    pub fn normal_limits(&self) -> RateLimits {
        self.settings.rate_limits.unwrap_or(RateLimits {
            up: self.session_settings.max_upload_rate,
            down: self.session_settings.max_download_rate,
        })
    }

    /// Puts the session's rate limits in force: the alternative ones in alternative mode,
    /// else the normal ones.
    pub fn apply_rate_limits(&self) {
        let l = if self.settings.alt_mode {
            self.settings.alt_limits
        } else {
            self.normal_limits()
        };
        self.session.set_rate_limits(l.up, l.down);
    }

    /// Switches the alternative limits when their schedule says so: when it becomes due or
    /// stops being due, or at once when the schedule was just changed (`poked`), as
    /// Transmission does. A switch made by hand in between holds until the next edge.
    pub fn follow_schedule(&mut self, now: crate::turtle::WeekMinute, poked: bool) {
        let sched = self.settings.alt_schedule;
        if poked {
            self.schedule_due = None;
        }
        if !sched.enabled {
            return;
        }
        let due = sched.due(now);
        if self.schedule_due != Some(due) {
            self.schedule_due = Some(due);
            if self.settings.alt_mode != due {
                tracing::info!(
                    on = due,
                    "the alternative rate limits follow their schedule"
                );
                self.settings.alt_mode = due;
                self.apply_rate_limits();
                self.dirty = true;
            }
        }
    }

    /// Transmission's configuration folder: each torrent's metainfo is kept in it as
    /// `torrents/<hash>.torrent`.
    pub fn config_dir(&self) -> PathBuf {
        self.folder.root().to_path_buf()
    }

    /// Where incomplete torrents go when that is enabled.
    pub fn incomplete_dir(&self) -> PathBuf {
        self.settings
            .incomplete_dir
            .clone()
            .unwrap_or_else(|| self.download_root.clone())
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
        engine_metadata(&self.state_dir, hash)
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
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
            confine: Some(self.download_root.clone()),
            stop_when_complete: false,
            wanted: e.saved.wanted.clone(),
            priorities: e.saved.priorities.clone(),
            sequential: e.saved.sequential,
            // Stopped and queued torrents check their data, then wait without peers.
            paused: e.saved.paused || e.queued,
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
                e.handle = Some(h);
                e.error = None;
                e.started = unix_now();
                e.run_since = Instant::now();
            }
            Err(err) => {
                e.error = Some(err.to_string());
                e.handle = None;
            }
        }
    }

    /// Takes a torrent's task out of its entry to be stopped elsewhere (its totals folded
    /// into the saved ones), and marks the entry `busy` with `what` until [`Registry::rerun`]
    /// or [`Registry::idle`]. An error if there is no such torrent or it is busy already.
    pub fn take_handle(
        &mut self,
        id: u32,
        what: &'static str,
    ) -> Result<Option<TorrentHandle>, String> {
        let Some(e) = self.entries.get_mut(&id) else {
            return Err(format!("no torrent {id}"));
        };
        if let Some(b) = e.busy {
            return Err(format!("torrent {id} is busy: {b}"));
        }
        e.fold_totals();
        e.busy = Some(what);
        self.dirty = true;
        Ok(e.handle.take())
    }

    /// The torrent is no longer busy; it runs again.
    pub async fn rerun(&mut self, id: u32) {
        if let Some(mut e) = self.entries.remove(&id) {
            e.busy = None;
            if e.handle.is_none() {
                self.run(&mut e).await;
            }
            self.entries.insert(id, e);
            self.dirty = true;
            self.save();
        }
    }

    /// Every entry takes the metainfo its task has: what the RPC shows is then consistent
    /// from the moment a magnet's metadata arrives.
    pub fn sync_meta(&mut self) {
        let ids: Vec<u32> = self
            .entries
            .iter()
            .filter(|(_, e)| e.meta.is_none() && e.handle.is_some())
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.take_meta(id);
        }
    }

    /// Takes a magnet's metainfo from its task once it is there, and keeps it in the
    /// configuration folder as `torrents/<hash>.torrent`.
    fn take_meta(&mut self, id: u32) {
        let Some(e) = self.entries.get_mut(&id) else {
            return;
        };
        if e.sync_meta() {
            let (hash, bytes) = match &e.meta {
                Some(m) => (e.saved.hash.clone(), m.to_torrent_bytes()),
                None => return,
            };
            self.keep_bytes(hash, bytes);
        }
    }

    /// Writes a torrent's metainfo to the configuration folder, off the registry's task.
    fn keep_metainfo(&self, hash: &str, meta: &Metainfo) {
        self.keep_bytes(hash.to_owned(), meta.to_torrent_bytes());
    }

    fn keep_bytes(&self, hash: String, bytes: Vec<u8>) {
        let folder = self.folder.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = folder.keep_torrent(&hash, &bytes) {
                tracing::warn!(%hash, error = %e, "could not keep the metainfo");
            }
        });
    }

    pub fn find_hash(&self, hash: &InfoHash) -> Option<u32> {
        self.find_hex(&hash.to_hex())
    }

    /// The torrent that 40 or 64 hex digits name (its key, its v1 hash, its v2 hash whole
    /// or truncated).
    pub fn find_hex(&self, hex: &str) -> Option<u32> {
        self.entries
            .iter()
            .find(|(_, e)| e.named_by(hex))
            .map(|(id, _)| *id)
    }

    /// Adds a torrent whose source was read and checked by the caller (`ops::add`, which
    /// also keeps its .torrent file and finds a magnet's metadata on disk).
    pub async fn add(&mut self, t: NewTorrent, p: Parsed) -> Result<Added, String> {
        let Parsed {
            hash,
            meta,
            magnet,
            found,
        } = p;
        if let Some(id) = self.find_hash(&hash) {
            let e = &self.entries[&id];
            return Ok(Added::Duplicate {
                id,
                name: e.name(),
                hash: e.hash_string(),
            });
        }
        let hex = hash.to_hex();
        // Checked before anything is kept.
        let (mut wanted, mut priorities) = (Vec::new(), Vec::new());
        if let Some(m) = &meta {
            let count = m.info.files.iter().filter(|f| !f.padding).count();
            t.files.apply(count, &mut wanted, &mut priorities)?;
        }
        let id = self.next_id;
        self.next_id += 1;
        let o = t.options;
        let mut saved = SavedTorrent::new(id, hex.clone(), t.download_dir.clone());
        // Through the incomplete folder, when that is on, unless its data is here already.
        let incomplete = self.incomplete_dir();
        if self.settings.incomplete_dir_enabled && !found && incomplete != t.download_dir {
            saved.download_dir = incomplete;
            saved.final_dir = Some(t.download_dir);
        }
        saved.magnet = match &t.source {
            NewSource::Magnet(l) => Some(l.clone()),
            NewSource::Metainfo(_) => None,
        };
        saved.added = unix_now();
        saved.paused = t.paused;
        saved.wanted = wanted;
        saved.priorities = priorities;
        saved.seed_ratio_limit = self.settings.seed_ratio_limit;
        // Transmission starts a torrent's limit values from the session's.
        let normal = self.normal_limits();
        saved.speed_kb = crate::saved::KbLimits {
            down: normal
                .down
                .map_or(self.settings.speed_limit_kb.down, |b| b / 1000),
            up: normal
                .up
                .map_or(self.settings.speed_limit_kb.up, |b| b / 1000),
        };
        saved.seed_idle_limit = self.settings.idle_seeding_limit;
        if let Some((mode, limit)) = o.seed_ratio {
            (saved.seed_ratio_mode, saved.seed_ratio_limit) = (mode, limit);
        }
        if let Some((mode, limit)) = o.seed_idle {
            (saved.seed_idle_mode, saved.seed_idle_limit) = (mode, limit);
        }
        if let Some(l) = o.seeding_time_limit {
            saved.seeding_time_limit = l;
        }
        (saved.up_limit, saved.down_limit) = (o.up_limit, o.down_limit);
        (saved.sequential, saved.force_start, saved.name) = (o.sequential, o.force_start, o.name);
        if !o.category.is_empty() {
            self.categories.entry(o.category.clone()).or_default();
        }
        saved.category = o.category;
        self.tags.extend(t.labels.iter().cloned());
        saved.labels = t.labels;
        // Last in the queue; it waits there if its queue is full.
        saved.queue_position = self.entries.len() as u32;
        let mut e = Entry::new(saved, meta, magnet);
        e.queued = !e.saved.paused && self.must_wait(&e);
        self.run(&mut e).await;
        let name = e.name();
        let shown = e.hash_string();
        self.entries.insert(id, e);
        self.dirty = true;
        self.save();
        Ok(Added::Added {
            id,
            name,
            hash: shown,
        })
    }

    /// Starts a torrent (`torrent-start`): a stopped one waits in its queue if that is
    /// full; one that runs or waits already stays as it is.
    pub fn start(&mut self, id: u32) {
        let Some(e) = self.entries.get(&id) else {
            return;
        };
        let wait = e.saved.paused && self.must_wait(e);
        if let Some(e) = self.entries.get_mut(&id) {
            e.saved.finished = false;
            self.dirty = true;
            if !e.saved.paused {
                return;
            }
            e.saved.paused = false;
            if wait {
                e.queued = true;
                return;
            }
        }
        self.unqueue(id);
    }

    /// Starts a torrent at once, past its queue (`torrent-start-now`, a force start).
    pub fn start_now(&mut self, id: u32) {
        if let Some(e) = self.entries.get_mut(&id) {
            let waiting = e.saved.paused || e.queued;
            e.saved.paused = false;
            e.saved.finished = false;
            self.dirty = true;
            if waiting {
                self.unqueue(id);
            }
        }
    }

    /// Starts a torrent that could not run (after an error), or resumes one (`now`: past
    /// its queue).
    pub async fn start_or_rerun(&mut self, id: u32, now: bool) {
        let needs_run = self
            .entries
            .get(&id)
            .is_some_and(|e| e.handle.is_none() && e.busy.is_none());
        if now {
            self.start_now(id);
        } else {
            self.start(id);
        }
        if needs_run {
            if let Some(mut e) = self.entries.remove(&id) {
                self.run(&mut e).await;
                self.entries.insert(id, e);
            }
        }
    }

    /// Stops a torrent. The next in its queue takes its slot at the caller's
    /// [`Registry::pump`] (once for many stops) or the next tick.
    pub fn stop(&mut self, id: u32) {
        if let Some(e) = self.entries.get_mut(&id) {
            e.saved.paused = true;
            e.queued = false;
            if let Some(h) = &e.handle {
                h.send(TorrentCommand::Pause);
            }
            self.dirty = true;
        }
    }

    /// Takes a torrent out of the list (its task to be stopped, its data perhaps deleted,
    /// by the caller). An error if it is busy.
    pub fn detach(&mut self, id: u32) -> Result<Option<Entry>, String> {
        if let Some(b) = self.entries.get(&id).and_then(|e| e.busy) {
            return Err(format!("torrent {id} is busy: {b}"));
        }
        let Some(mut e) = self.entries.remove(&id) else {
            return Ok(None);
        };
        e.fold_totals();
        let now = Instant::now();
        self.removed
            .retain(|(_, at)| now.duration_since(*at) < RECENT);
        if self.removed.len() < 10_000 {
            self.removed.push((id, now));
        }
        self.removed_up += e.saved.uploaded_ever;
        self.removed_down += e.saved.downloaded_ever;
        // The places behind it close up; its slot is free.
        self.close_gap(e.saved.queue_position);
        self.pump();
        self.dirty = true;
        self.save();
        Ok(Some(e))
    }

    /// Where a torrent's data is, relative to the download folder, and its metainfo.
    pub fn content_of(&self, id: u32) -> Option<(PathBuf, Option<Metainfo>)> {
        let e = self.entries.get(&id)?;
        let rel = e
            .saved
            .download_dir
            .strip_prefix(&self.download_root)
            .ok()?
            .to_path_buf();
        Some((rel, e.meta.clone()))
    }

    /// A torrent's files and folders have new names (`torrent-rename-path`): kept, and put
    /// into its metainfo.
    pub fn set_renames(&mut self, id: u32, renames: crate::saved::Renames) {
        if let Some(e) = self.entries.get_mut(&id) {
            if let Some(m) = &mut e.meta {
                renames.apply(m);
            }
            e.saved.renames = renames;
            self.dirty = true;
        }
    }

    /// A torrent announces to `tiers` from now on: kept, put into its metainfo (and the copy
    /// in the configuration folder) or magnet link, and told to its task.
    pub fn set_trackers(&mut self, id: u32, tiers: Vec<Vec<String>>) {
        let Some(e) = self.entries.get_mut(&id) else {
            return;
        };
        e.saved.trackers = Some(tiers.clone());
        if let Some(m) = &mut e.magnet {
            e.saved.apply_magnet(m);
        }
        let kept = e.meta.as_mut().map(|m| {
            m.trackers = tiers.clone();
            (e.saved.hash.clone(), m.to_torrent_bytes())
        });
        if let Some(h) = &e.handle {
            h.send(TorrentCommand::SetTrackers(tiers));
        }
        if let Some((hash, bytes)) = kept {
            self.keep_bytes(hash, bytes);
        }
        self.dirty = true;
    }

    /// A torrent's folder is now `dir` (where it was told to go: no longer somewhere else
    /// once complete).
    pub fn set_dir(&mut self, id: u32, dir: PathBuf) {
        if let Some(e) = self.entries.get_mut(&id) {
            e.saved.download_dir = dir;
            e.saved.final_dir = None;
            e.finishing = false;
            self.dirty = true;
        }
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
            categories: self.categories.clone(),
            tags: self.tags.clone(),
        };
        self.saver.send_replace(Some(list));
        self.dirty = false;
    }

    /// Once a second: metadata that arrived, completion dates, errors, seeding goals, the
    /// alternative limits' schedule. Returns the torrents that just completed in the
    /// incomplete folder, for the caller to move to their folder (`ops::finish`).
    pub fn tick(&mut self) -> Vec<u32> {
        self.follow_schedule(crate::turtle::WeekMinute::now(), false);
        let mut finished = Vec::new();
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
                if matches!(
                    stats.state(),
                    State::Seeding | State::Downloading | State::Metadata
                ) {
                    e.saved.seconds_active += 1;
                }
                match stats.state() {
                    State::Seeding => {
                        e.secs_seeding += 1;
                        e.saved.seconds_seeding += 1;
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
                self.take_meta(id);
            }
            if let Some(e) = self.entries.get_mut(&id) {
                let complete = e.state() == Some(State::Seeding);
                if complete && e.saved.final_dir.is_some() && e.busy.is_none() && !e.finishing {
                    e.finishing = true;
                    finished.push(id);
                }
            }
            if stop {
                self.stop(id);
                if let Some(e) = self.entries.get_mut(&id) {
                    e.saved.finished = true;
                }
            }
        }
        // Slots freed by torrents that completed, stopped or stalled.
        self.pump();
        finished
    }

    /// Stops every torrent and writes the list as it is then (here, at the end: nothing
    /// else waits on the registry any more).
    pub async fn shutdown(&mut self) {
        self.session.shutdown().await;
        for e in self.entries.values_mut() {
            e.fold_totals();
            e.handle = None;
        }
        self.dirty = true;
        self.save();
        if let Some(list) = self.saver.borrow().clone() {
            if let Err(e) = self.folder.save(&list) {
                tracing::warn!(error = %e, "could not save the torrent list");
            }
        }
    }

    pub fn folder(&self) -> &Folder {
        &self.folder
    }
}

/// The metadata the engine kept for a magnet (`STATE/metadata/<hash>.torrent`).
pub fn engine_metadata(state_dir: &Path, hash: &str) -> Option<Metainfo> {
    let path = state_dir.join("metadata").join(format!("{hash}.torrent"));
    let bytes = share_storage::state::read_state(&path, 64 << 20).ok()??;
    Metainfo::from_bytes(&bytes).ok()
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
    if idle_limit.is_some_and(|m| now.duration_since(e.last_active) >= Duration::from_secs(m * 60))
    {
        return true;
    }
    let minutes = match e.saved.seeding_time_limit {
        -2 => s.seeding_time_limit,
        m => m,
    };
    minutes >= 0 && e.saved.seconds_seeding >= minutes as u64 * 60
}

/// Writes the list whenever a new one is handed over (the newest wins), off the registry's
/// task: an atomic write with fsync may take a while on a slow disk.
fn spawn_saver(folder: Folder) -> tokio::sync::watch::Sender<Option<SavedList>> {
    let (tx, mut rx) = tokio::sync::watch::channel::<Option<SavedList>>(None);
    tokio::spawn(async move {
        while rx.changed().await.is_ok() {
            let Some(list) = rx.borrow_and_update().clone() else {
                continue;
            };
            let folder = folder.clone();
            let saved = tokio::task::spawn_blocking(move || folder.save(&list)).await;
            if let Ok(Err(e)) = saved {
                tracing::warn!(error = %e, "could not save the torrent list");
            }
        }
    });
    tx
}
