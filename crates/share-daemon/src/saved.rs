//! The daemon's torrent list in the state folder: `daemon/torrents.json` for the list and
//! settings, `daemon/torrents/<hash>.torrent` for each torrent's metainfo (a magnet keeps
//! its link until its metadata is in the engine's metadata folder).
//!
//! Every write is atomic (temporary file, fsync, rename). A list that is damaged or
//! truncated is never trusted: it is reported, kept aside as `torrents.json.bad`, and the
//! list is rebuilt from the kept .torrent files (whose data is then checked by hashing).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Largest list read back.
const MAX_LIST: u64 = 64 << 20;

/// One torrent as kept.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SavedTorrent {
    pub id: u32,
    pub hash: String,
    /// For a torrent added by magnet link (its .torrent may not exist yet).
    #[serde(default)]
    pub magnet: Option<String>,
    pub download_dir: PathBuf,
    #[serde(default)]
    pub labels: Vec<String>,
    #[serde(default)]
    pub added: i64,
    #[serde(default)]
    pub done: i64,
    #[serde(default)]
    pub paused: bool,
    /// Per file (the list's order): wanted, and priority (-1 low, 0 normal, 1 high).
    #[serde(default)]
    pub wanted: Vec<bool>,
    #[serde(default)]
    pub priorities: Vec<i8>,
    #[serde(default)]
    pub up_limit: Option<u64>,
    #[serde(default)]
    pub down_limit: Option<u64>,
    #[serde(default)]
    pub seed_ratio_limit: f64,
    /// 0: the session's, 1: this torrent's, 2: unlimited (Transmission's modes).
    #[serde(default)]
    pub seed_ratio_mode: u8,
    #[serde(default)]
    pub seed_idle_limit: u64,
    #[serde(default)]
    pub seed_idle_mode: u8,
    #[serde(default)]
    pub uploaded_ever: u64,
    #[serde(default)]
    pub downloaded_ever: u64,
    /// Stopped by a seeding goal.
    #[serde(default)]
    pub finished: bool,
    /// The qBittorrent API's category (`""`: none); its tags are the `labels`.
    #[serde(default)]
    pub category: String,
    /// A name shown instead of the metainfo's (the files keep theirs).
    #[serde(default)]
    pub name: Option<String>,
    /// Pieces fetched in order.
    #[serde(default)]
    pub sequential: bool,
    /// Started by force (qBittorrent's force start): it is never queued, and does not count
    /// toward the queues' limits.
    #[serde(default)]
    pub force_start: bool,
    /// Minutes of seeding after which it stops: -2 the session's, -1 none.
    #[serde(default = "minus_two")]
    pub seeding_time_limit: i64,
    /// Seconds spent seeding and active (downloading or seeding), over every run.
    #[serde(default)]
    pub seconds_seeding: u64,
    #[serde(default)]
    pub seconds_active: u64,
    /// Transmission's `downloadLimit`/`uploadLimit` in kB/s, kept while the limit is off
    /// (the limits in force are `up_limit` and `down_limit`).
    #[serde(default)]
    pub speed_kb: KbLimits,
    /// Where it goes once complete, while it downloads into the incomplete folder.
    #[serde(default)]
    pub final_dir: Option<PathBuf>,
    /// Files and folders renamed with `torrent-rename-path`, applied to its metainfo
    /// whenever that is read (the info-hash stays that of the original).
    #[serde(default, skip_serializing_if = "Renames::is_empty")]
    pub renames: Renames,
    /// Its trackers by tier as last set through `torrent-set` (`None`: its metainfo's or
    /// magnet link's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trackers: Option<Vec<Vec<String>>>,
    /// Its place in the queue, from 0 (see `queue.rs`); a list written before there was a
    /// queue has none, and its torrents are put at the end in the order of their ids.
    #[serde(default = "last_place")]
    pub queue_position: u32,
}

impl SavedTorrent {
    /// Puts what was changed of the torrent (names, trackers) into its metainfo.
    pub fn apply(&self, meta: &mut share_core::Metainfo) {
        self.renames.apply(meta);
        if let Some(t) = &self.trackers {
            meta.trackers = t.clone();
        }
    }

    /// Puts its trackers into its magnet link (a tier each, as a magnet has them).
    pub fn apply_magnet(&self, magnet: &mut share_core::Magnet) {
        if let Some(t) = &self.trackers {
            magnet.trackers = t.iter().flatten().cloned().collect();
        }
    }
}

/// A torrent's names as renamed on disk: its content's name, and the paths of the files
/// whose path changed (by index among all files, padding included).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Renames {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub files: std::collections::BTreeMap<usize, Vec<String>>,
}

impl Renames {
    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.files.is_empty()
    }

    /// Puts the new names into `meta` (a file index beyond its files is ignored).
    pub fn apply(&self, meta: &mut share_core::Metainfo) {
        if let Some(n) = &self.name {
            meta.info.name = n.clone();
        }
        for (i, path) in &self.files {
            if let Some(f) = meta.info.files.get_mut(*i) {
                f.path = path.clone();
            }
        }
    }
}

fn last_place() -> u32 {
    u32::MAX
}

fn minus_two() -> i64 {
    -2
}

fn minus_one() -> i64 {
    -1
}

impl SavedTorrent {
    /// A torrent with the default settings.
    pub fn new(id: u32, hash: String, download_dir: PathBuf) -> SavedTorrent {
        SavedTorrent {
            id,
            hash,
            magnet: None,
            download_dir,
            labels: Vec::new(),
            added: 0,
            done: 0,
            paused: false,
            wanted: Vec::new(),
            priorities: Vec::new(),
            up_limit: None,
            down_limit: None,
            seed_ratio_limit: 2.0,
            seed_ratio_mode: 0,
            seed_idle_limit: 30,
            seed_idle_mode: 0,
            uploaded_ever: 0,
            downloaded_ever: 0,
            finished: false,
            category: String::new(),
            name: None,
            sequential: false,
            force_start: false,
            seeding_time_limit: -2,
            seconds_seeding: 0,
            seconds_active: 0,
            speed_kb: KbLimits::default(),
            final_dir: None,
            renames: Renames::default(),
            trackers: None,
            queue_position: last_place(),
        }
    }
}

/// A category of the qBittorrent API: a name, and the folder its torrents go to by default
/// (`None`: the default folder).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct SavedCategory {
    #[serde(default)]
    pub save_path: Option<PathBuf>,
}

/// Session settings the RPC can change.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SavedSession {
    pub seed_ratio_limit: f64,
    pub seed_ratio_limited: bool,
    pub idle_seeding_limit: u64,
    pub idle_seeding_limit_enabled: bool,
    #[serde(default)]
    pub download_dir: Option<PathBuf>,
    /// Minutes of seeding after which torrents stop (-1: none).
    #[serde(default = "minus_one")]
    pub seeding_time_limit: i64,
    /// The session's rate limits as last set through an API (bytes per second, `None`: no
    /// limit); a rate given on the command line replaces them at start.
    #[serde(default)]
    pub rate_limits: Option<RateLimits>,
    /// The alternative rate limits, and whether they are the ones in force.
    #[serde(default)]
    pub alt_limits: RateLimits,
    #[serde(default)]
    pub alt_mode: bool,
    /// New torrents are added stopped.
    #[serde(default)]
    pub add_stopped: bool,
    /// Transmission's `speed-limit-up`/`-down` in kB/s (1000 bytes), kept while their limit
    /// is off; the limits in force are `rate_limits`.
    #[serde(default)]
    pub speed_limit_kb: KbLimits,
    /// When the alternative limits switch on and off by themselves.
    #[serde(default)]
    pub alt_schedule: crate::turtle::Schedule,
    /// Where torrents download until they are complete, when enabled (then they move to
    /// their folder).
    #[serde(default)]
    pub incomplete_dir: Option<PathBuf>,
    #[serde(default)]
    pub incomplete_dir_enabled: bool,
    /// The blocklist is in force (Transmission's `blocklist-enabled`).
    #[serde(default = "yes")]
    pub blocklist_enabled: bool,
    /// Where `blocklist-update` fetches a list from (Transmission's `blocklist-url`).
    #[serde(default)]
    pub blocklist_url: String,
    /// The download and seed queues (see `queue.rs`).
    #[serde(default)]
    pub queue: crate::queue::QueueSettings,
}

fn yes() -> bool {
    true
}

/// Rates in kB/s (1000 bytes), as Transmission shows them.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct KbLimits {
    pub up: u64,
    pub down: u64,
}

impl Default for KbLimits {
    /// Transmission's.
    fn default() -> Self {
        KbLimits { up: 100, down: 100 }
    }
}

/// Upload and download limits in bytes per second.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Default)]
pub struct RateLimits {
    pub up: Option<u64>,
    pub down: Option<u64>,
}

impl Default for SavedSession {
    fn default() -> Self {
        SavedSession {
            seed_ratio_limit: 2.0,
            seed_ratio_limited: false,
            idle_seeding_limit: 30,
            idle_seeding_limit_enabled: false,
            download_dir: None,
            seeding_time_limit: -1,
            rate_limits: None,
            alt_limits: RateLimits::default(),
            alt_mode: false,
            add_stopped: false,
            speed_limit_kb: KbLimits::default(),
            alt_schedule: crate::turtle::Schedule::default(),
            incomplete_dir: None,
            incomplete_dir_enabled: false,
            blocklist_enabled: true,
            blocklist_url: String::new(),
            queue: crate::queue::QueueSettings::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct SavedList {
    pub version: u32,
    pub next_id: u32,
    pub torrents: Vec<SavedTorrent>,
    #[serde(default)]
    pub session: SavedSession,
    /// The qBittorrent API's categories and tags (a torrent's tags are its labels).
    #[serde(default)]
    pub categories: std::collections::BTreeMap<String, SavedCategory>,
    #[serde(default)]
    pub tags: std::collections::BTreeSet<String>,
}

/// Where the daemon keeps its files.
#[derive(Debug, Clone)]
pub struct Folder {
    root: PathBuf,
}

impl Folder {
    pub fn new(state_dir: &Path) -> Folder {
        Folder {
            root: state_dir.join("daemon"),
        }
    }

    /// The folder itself (Transmission's `config-dir`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn list_path(&self) -> PathBuf {
        self.root.join("torrents.json")
    }

    pub fn torrent_path(&self, hash: &str) -> PathBuf {
        self.root.join("torrents").join(format!("{hash}.torrent"))
    }

    /// Reads the list. `Err` holds a message for a damaged list (and the list rebuilt from
    /// the kept .torrent files); no list at all is a fresh start.
    pub fn load(&self) -> (SavedList, Option<String>) {
        let path = self.list_path();
        let bytes = match share_storage::state::read_state(&path, MAX_LIST) {
            Ok(Some(b)) => b,
            Ok(None) => return (SavedList::default(), None),
            Err(e) => {
                return (
                    self.rebuild(),
                    Some(format!("cannot read {}: {e}", path.display())),
                )
            }
        };
        match serde_json::from_slice::<SavedList>(&bytes) {
            Ok(list) if list.version == 1 => (list, None),
            Ok(list) => (
                self.rebuild(),
                Some(format!(
                    "{}: unknown version {}",
                    path.display(),
                    list.version
                )),
            ),
            Err(e) => {
                let bad = path.with_extension("json.bad");
                let _ = std::fs::rename(&path, &bad);
                (
                    self.rebuild(),
                    Some(format!(
                        "{} is damaged ({e}); kept as {} and rebuilt from the saved torrents",
                        path.display(),
                        bad.display()
                    )),
                )
            }
        }
    }

    /// A list of every kept .torrent file, with default settings.
    fn rebuild(&self) -> SavedList {
        let mut list = SavedList {
            version: 1,
            next_id: 1,
            ..SavedList::default()
        };
        let Ok(dir) = std::fs::read_dir(self.root.join("torrents")) else {
            return list;
        };
        let mut names: Vec<String> = dir
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter_map(|n| n.strip_suffix(".torrent").map(str::to_owned))
            .filter(|h| h.len() == 40 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .collect();
        names.sort();
        for hash in names {
            list.torrents
                .push(SavedTorrent::new(list.next_id, hash, PathBuf::new()));
            list.next_id += 1;
        }
        list
    }

    pub fn save(&self, list: &SavedList) -> Result<(), String> {
        let bytes = serde_json::to_vec_pretty(list).map_err(|e| e.to_string())?;
        share_storage::state::write_state(&self.list_path(), &bytes).map_err(|e| e.to_string())
    }

    pub fn keep_torrent(&self, hash: &str, bytes: &[u8]) -> Result<(), String> {
        share_storage::state::write_state(&self.torrent_path(hash), bytes)
            .map_err(|e| e.to_string())
    }

    pub fn forget_torrent(&self, hash: &str) {
        let _ = std::fs::remove_file(self.torrent_path(hash));
    }

    pub fn read_torrent(&self, hash: &str) -> Option<Vec<u8>> {
        share_storage::state::read_state(&self.torrent_path(hash), MAX_LIST)
            .ok()
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_list_is_reported_and_rebuilt_from_the_kept_torrents() {
        let dir = tempfile::tempdir().unwrap();
        let f = Folder::new(dir.path());
        let (fresh, err) = f.load();
        assert!(err.is_none() && fresh.torrents.is_empty());
        let hash = "ab".repeat(20);
        f.keep_torrent(&hash, b"d4:infode").unwrap();
        let mut list = f.rebuild();
        list.torrents[0].labels = vec!["tv".into()];
        list.torrents[0].category = "shows".into();
        list.categories
            .insert("shows".into(), SavedCategory::default());
        list.tags.insert("tv".into());
        f.save(&list).unwrap();
        assert_eq!(f.load(), (list.clone(), None));
        // Truncated: reported, set aside, rebuilt (without the settings it lost).
        let bytes = std::fs::read(f.list_path()).unwrap();
        std::fs::write(f.list_path(), &bytes[..bytes.len() / 2]).unwrap();
        let (rebuilt, err) = f.load();
        assert!(err.unwrap().contains("damaged"));
        assert_eq!(rebuilt.torrents.len(), 1);
        assert_eq!(rebuilt.torrents[0].hash, hash);
        assert!(rebuilt.torrents[0].labels.is_empty());
        assert!(f.list_path().with_extension("json.bad").exists());
    }

    #[test]
    fn a_list_written_before_categories_and_tags_still_loads() {
        let old = r#"{"version":1,"next_id":2,"torrents":[{"id":1,"hash":"abababababababababababababababababababab","download_dir":"/d"}],"session":{"seed_ratio_limit":2.0,"seed_ratio_limited":false,"idle_seeding_limit":30,"idle_seeding_limit_enabled":false}}"#;
        let list: SavedList = serde_json::from_str(old).unwrap();
        let t = &list.torrents[0];
        assert_eq!((t.category.as_str(), t.seeding_time_limit), ("", -2));
        assert!(list.categories.is_empty() && list.tags.is_empty());
        assert_eq!(list.session.seeding_time_limit, -1);
        assert_eq!(list.session.rate_limits, None);
    }
}
