//! `torrent-get`: the fields Transmission's clients read (transmission-remote's list and
//! info views, the web clients, the media managers), by name.

use base64::Engine as _;
use serde_json::{json, Map, Value};
use share_engine::State;

use std::collections::HashMap;

use super::{ids, trackers, Args, RpcError, RpcResult};
use crate::ops;
use crate::owner::Handle;
use crate::registry::{unix_now, Entry, Registry};

/// Fields that need the torrent's details (files, peers, pieces) from its task.
const DETAILED: &[&str] = &[
    "files",
    "fileStats",
    "peers",
    "pieces",
    "wanted",
    "priorities",
    "haveValid",
    "peersGettingFromUs",
    "peersSendingToUs",
    "webseeds",
    "webseedsSendingToUs",
    "leftUntilDone",
    "sizeWhenDone",
    "percentDone",
    "desiredAvailable",
    "eta",
    "isFinished",
    "file-count",
    "percentComplete",
];

/// Transmission's status codes: 0 stopped, 1 waiting to check, 2 checking, 3 queued to
/// download, 4 downloading, 5 queued to seed, 6 seeding.
pub fn status_code(e: &Entry) -> u8 {
    if let Some(what) = e.busy {
        return if what == "checking" { 2 } else { 0 };
    }
    if e.handle.is_none() || e.saved.paused {
        return 0;
    }
    if e.queued {
        return match e.state() {
            Some(State::CheckWait) => 1,
            Some(State::Checking) => 2,
            _ if e.is_seed() => 5,
            _ => 3,
        };
    }
    match e.state() {
        Some(State::Paused) | None => 0,
        Some(State::CheckWait) => 1,
        Some(State::Checking) => 2,
        Some(State::Metadata) | Some(State::Downloading) => 4,
        Some(State::Seeding) => 6,
    }
}

pub async fn torrent_get(h: &Handle, args: Args) -> RpcResult {
    let fields: Vec<String> = match args.get("fields") {
        Some(Value::Array(l)) if l.len() <= 512 => l
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Some(_) => return Err(RpcError("`fields` must be a list of names".into())),
        None => return Err(RpcError("no fields given".into())),
    };
    let detailed = fields.iter().any(|f| DETAILED.contains(&f.as_str()));
    // Which torrents, and how to ask the running ones for their details; then they are
    // asked all at once, outside the registry's owner, which meanwhile answers others.
    let a = args.clone();
    let (wanted_ids, askers) = h
        .read(move |r| {
            let wanted = ids(r, &a)?;
            // A torrent checking its data answers only once the check is over: its
            // details then come from its metainfo and counters.
            let askers: Vec<_> = wanted
                .iter()
                .filter(|_| detailed)
                .filter_map(|id| r.entries.get(id).map(|e| (id, e)))
                .filter(|(_, e)| !matches!(e.state(), Some(State::CheckWait | State::Checking)))
                .filter_map(|(id, e)| Some((*id, e.handle.as_ref()?.commands())))
                .collect();
            Ok::<_, RpcError>((wanted, askers))
        })
        .await??;
    let statuses: HashMap<u32, share_engine::Status> = ops::statuses(&h.statuses, askers).await;
    Ok(h.read(move |r| {
        r.sync_meta();
        rows(r, &args, &fields, &wanted_ids, &statuses)
    })
    .await?)
}

fn rows(
    r: &Registry,
    args: &Args,
    fields: &[String],
    wanted_ids: &[u32],
    statuses: &HashMap<u32, share_engine::Status>,
) -> Value {
    let table = args.get("format").and_then(Value::as_str) == Some("table");
    let mut rows = Vec::new();
    for &id in wanted_ids {
        let Some(e) = r.entries.get(&id) else {
            continue;
        };
        // Details of the metadata phase say nothing of a torrent whose metainfo is known.
        let status = statuses
            .get(&id)
            .filter(|s| s.has_metadata || e.meta.is_none());
        let mut obj = Map::new();
        for f in fields {
            if let Some(v) = field(e, id, f, status, r) {
                obj.insert(f.clone(), v);
            }
        }
        rows.push(obj);
    }
    if table {
        let mut t = vec![Value::from(fields.to_vec())];
        for row in rows {
            t.push(Value::Array(
                fields
                    .iter()
                    .map(|f| row.get(f).cloned().unwrap_or(Value::Null))
                    .collect(),
            ));
        }
        return json!({ "torrents": t });
    }
    let mut out = json!({ "torrents": rows });
    if args.get("ids").and_then(Value::as_str) == Some("recently-active") {
        let now = tokio::time::Instant::now();
        let removed: Vec<u32> = r
            .removed
            .iter()
            .filter(|(_, at)| now.duration_since(*at) < crate::registry::RECENT)
            .map(|(id, _)| *id)
            .collect();
        out["removed"] = json!(removed);
    }
    out
}

/// Sizes from the files' progress: (size of wanted files, wanted bytes not verified,
/// verified bytes in all). Without the task's details (a check under way), from the
/// metainfo, the choice of files and the verified count. Nothing before the metainfo.
fn sizes(e: &Entry, status: Option<&share_engine::Status>) -> (u64, u64, u64) {
    let Some(meta) = &e.meta else {
        return (0, 0, 0);
    };
    let verified_all = e.stats().map_or(0, |s| s.get(&s.verified));
    match status.filter(|s| !s.files.is_empty()) {
        Some(st) => {
            let mut when_done = 0;
            let mut left = 0;
            for (i, f) in st.files.iter().enumerate() {
                if e.wanted(i) {
                    when_done += f.length;
                    left += f.length.saturating_sub(f.verified);
                }
            }
            (when_done, left, verified_all)
        }
        None => {
            let when_done: u64 = files_of(meta)
                .enumerate()
                .filter(|(i, _)| e.wanted(*i))
                .map(|(_, f)| f.length)
                .sum();
            let verified = verified_all.min(when_done);
            (when_done, when_done - verified, verified_all)
        }
    }
}

/// A torrent's files as `files` lists them (padding left out).
fn files_of(meta: &share_core::Metainfo) -> impl Iterator<Item = &share_core::metainfo::FileEntry> {
    meta.info.files.iter().filter(|f| !f.padding)
}

/// The files as `torrent-get` shows them: (name, length, verified bytes); from the task's
/// details when there are some, else from the metainfo (nothing verified known).
fn file_rows(e: &Entry, status: Option<&share_engine::Status>) -> Vec<(String, u64, u64)> {
    let Some(meta) = &e.meta else {
        return Vec::new();
    };
    let prefix = (!meta.info.single_file).then(|| meta.info.name.clone());
    let named = |path: &str| match &prefix {
        Some(p) => format!("{p}/{path}"),
        None => path.to_owned(),
    };
    match status.filter(|s| !s.files.is_empty()) {
        Some(st) => st
            .files
            .iter()
            .map(|f| (named(&f.path), f.length, f.verified))
            .collect(),
        None => files_of(meta)
            .map(|f| {
                let path = if f.path.is_empty() {
                    meta.info.name.clone()
                } else {
                    named(&f.path.join("/"))
                };
                (path, f.length, 0)
            })
            .collect(),
    }
}

fn field(
    e: &Entry,
    id: u32,
    name: &str,
    status: Option<&share_engine::Status>,
    r: &Registry,
) -> Option<Value> {
    let stats = e.stats();
    let rate_down = stats.map_or(0, |s| s.get(&s.rate_down));
    let rate_up = stats.map_or(0, |s| s.get(&s.rate_up));
    let meta = e.meta.as_ref();
    let peers = status.map(|s| s.peers.as_slice()).unwrap_or(&[]);
    Some(match name {
        "id" => json!(id),
        "hashString" => json!(e.hash_string()),
        "name" => json!(e.name()),
        "status" => json!(status_code(e)),
        "totalSize" => json!(e.total_size()),
        "sizeWhenDone" => json!(sizes(e, status).0),
        "leftUntilDone" => json!(sizes(e, status).1),
        "haveValid" => json!(sizes(e, status).2),
        "haveUnchecked" | "corruptEver" => json!(0),
        "desiredAvailable" => json!(sizes(e, status).1),
        "percentDone" => {
            let (when_done, left, _) = sizes(e, status);
            json!(if when_done == 0 {
                0.0
            } else {
                (when_done - left) as f64 / when_done as f64
            })
        }
        "percentComplete" => {
            let total = e.total_size();
            json!(if total == 0 {
                0.0
            } else {
                sizes(e, status).2 as f64 / total as f64
            })
        }
        "metadataPercentComplete" => json!(if meta.is_some() { 1.0 } else { 0.0 }),
        "rateDownload" => json!(rate_down),
        "rateUpload" => json!(rate_up),
        "eta" => {
            let (_, left, _) = sizes(e, status);
            json!(match (left, rate_down) {
                (0, _) => -1i64,
                (_, 0) => -2,
                (l, r) => (l / r) as i64,
            })
        }
        "etaIdle" => json!(-1),
        "peersConnected" => {
            json!(stats.map_or(0, |s| s.peers.load(std::sync::atomic::Ordering::Relaxed)))
        }
        "peersGettingFromUs" => json!(peers.iter().filter(|p| p.rate_to_peer > 0).count()),
        "peersSendingToUs" => json!(peers.iter().filter(|p| p.rate_to_us > 0).count()),
        "peersFrom" => json!({
            "fromTracker": stats.map_or(0, |s| s.learned_from(share_engine::PeerSource::Tracker)),
            "fromDht": stats.map_or(0, |s| s.learned_from(share_engine::PeerSource::Dht)),
            "fromPex": stats.map_or(0, |s| s.learned_from(share_engine::PeerSource::Pex)),
            "fromLpd": stats.map_or(0, |s| s.learned_from(share_engine::PeerSource::Lsd)),
            "fromIncoming": 0, "fromCache": 0, "fromLtep": 0,
        }),
        "webseedsSendingToUs" => json!(status.map_or(0, |s| s
            .web_seeds
            .iter()
            .filter(|w| w.rate_to_us > 0)
            .count())),
        // The web seeds in use (a magnet's `ws=` among them), else the metainfo's list.
        "webseeds" => json!(match status.filter(|s| !s.web_seeds.is_empty()) {
            Some(s) => s.web_seeds.iter().map(|w| w.url.clone()).collect(),
            None => meta.map_or(vec![], |m| m.url_list.clone()),
        }),
        "uploadedEver" => json!(e.uploaded_ever()),
        "downloadedEver" => json!(e.downloaded_ever()),
        "uploadRatio" => {
            json!(e.ratio().unwrap_or(-1.0))
        }
        "downloadDir" => json!(e.download_dir().to_string_lossy()),
        "error" => json!(if e.error.is_some() { 3 } else { 0 }),
        "errorString" => json!(e.error.clone().unwrap_or_default()),
        "isFinished" => json!(e.saved.finished),
        "isStalled" => json!(r.stalled(e, tokio::time::Instant::now())),
        "isPrivate" => json!(meta.is_some_and(|m| m.info.private)),
        "labels" => json!(e.saved.labels),
        "addedDate" => json!(e.saved.added),
        "doneDate" => json!(e.saved.done),
        "startDate" => json!(e.started),
        "activityDate" => json!(if rate_up + rate_down > 0 {
            unix_now()
        } else {
            e.started
        }),
        "dateCreated" => json!(meta.and_then(|m| m.creation_date).unwrap_or(0)),
        "editDate" => json!(0),
        "comment" => json!(meta.and_then(|m| m.comment.clone()).unwrap_or_default()),
        "creator" => json!(meta.and_then(|m| m.created_by.clone()).unwrap_or_default()),
        "magnetLink" => json!(meta.map_or_else(
            || e.saved.magnet.clone().unwrap_or_default(),
            |m| m.magnet()
        )),
        "pieceCount" => json!(meta.map_or(0, |m| m.info.piece_count())),
        "pieceSize" => json!(meta.map_or(0, |m| m.info.piece_length)),
        "pieces" => {
            // Without the task's details (a check under way): nothing known verified.
            let count = meta.map_or(0, |m| m.info.piece_count()) as usize;
            let none = vec![0u8; count.div_ceil(8)];
            let bits = status
                .filter(|s| !s.pieces.is_empty())
                .map_or(none.as_slice(), |s| s.pieces.as_slice());
            json!(base64::engine::general_purpose::STANDARD.encode(bits))
        }
        "seedRatioLimit" => json!(e.saved.seed_ratio_limit),
        "seedRatioMode" => json!(e.saved.seed_ratio_mode),
        "seedIdleLimit" => json!(e.saved.seed_idle_limit),
        "seedIdleMode" => json!(e.saved.seed_idle_mode),
        "downloadLimit" => json!(e
            .saved
            .down_limit
            .map_or(e.saved.speed_kb.down, |l| l / 1000)),
        "downloadLimited" => json!(e.saved.down_limit.is_some()),
        "uploadLimit" => json!(e.saved.up_limit.map_or(e.saved.speed_kb.up, |l| l / 1000)),
        "uploadLimited" => json!(e.saved.up_limit.is_some()),
        "honorsSessionLimits" => json!(true),
        "bandwidthPriority" => json!(0),
        "peer-limit" => json!(r.torrent_defaults.max_peers),
        "maxConnectedPeers" => json!(r.torrent_defaults.max_peers),
        "queuePosition" => json!(e.saved.queue_position),
        "recheckProgress" => {
            let checked = stats.map_or(0, |s| s.get(&s.checked));
            let total = e.total_size().max(1);
            json!(if status_code(e) == 2 {
                checked as f64 / total as f64
            } else {
                0.0
            })
        }
        "secondsDownloading" => json!(e.secs_downloading),
        "secondsSeeding" => json!(e.secs_seeding),
        "manualAnnounceTime" => json!(-1),
        "file-count" => json!(meta.map_or(0, |m| files_of(m).count())),
        "files" => json!(file_rows(e, status)
            .into_iter()
            .map(|(name, length, done)| json!({
                "name": name,
                "length": length,
                "bytesCompleted": done,
            }))
            .collect::<Vec<_>>()),
        "fileStats" => json!(file_rows(e, status)
            .into_iter()
            .enumerate()
            .map(|(i, (_, _, done))| json!({
                "bytesCompleted": done,
                "wanted": e.wanted(i),
                "priority": e.saved.priorities.get(i).copied().unwrap_or(0),
            }))
            .collect::<Vec<_>>()),
        "wanted" => json!((0..meta.map_or(0, |m| files_of(m).count()))
            .map(|i| u8::from(e.wanted(i)))
            .collect::<Vec<_>>()),
        "priorities" => json!((0..meta.map_or(0, |m| files_of(m).count()))
            .map(|i| e.saved.priorities.get(i).copied().unwrap_or(0))
            .collect::<Vec<_>>()),
        "primary-mime-type" => json!(primary_mime_type(meta)),
        "source" => json!(""),
        "torrentFile" => json!(r.folder().torrent_path(&e.saved.hash).to_string_lossy()),
        "peers" => json!(peers
            .iter()
            .map(|p| json!({
                "address": p.addr.ip().to_string(),
                "port": p.addr.port(),
                "clientName": p.client,
                "clientIsChoked": p.peer_choking,
                "clientIsInterested": p.am_interested,
                "peerIsChoked": p.am_choking,
                "peerIsInterested": p.peer_interested,
                "isDownloadingFrom": p.rate_to_us > 0,
                "isUploadingTo": p.rate_to_peer > 0,
                "isEncrypted": p.encrypted,
                "isIncoming": !p.outgoing,
                "isUTP": p.utp,
                "progress": p.progress,
                "rateToClient": p.rate_to_us,
                "rateToPeer": p.rate_to_peer,
                "flagStr": flags(p),
            }))
            .collect::<Vec<_>>()),
        "trackers" => trackers::trackers(e),
        "trackerStats" => trackers::stats(e, status_code(e) != 0),
        "trackerList" => json!(trackers::tracker_list(e)),
        "downloadedDate" => json!(e.saved.done),
        "sequentialDownload" => json!(e.saved.sequential),
        "group" => json!(""),
        _ => {
            let _ = r;
            return None;
        }
    })
}

/// 4.0's `primary-mime-type`: the type of the bytes most of the torrent is made of (by
/// the extensions of its files), `application/octet-stream` when unknown.
fn primary_mime_type(meta: Option<&share_core::Metainfo>) -> &'static str {
    const TYPES: &[(&str, &str)] = &[
        ("mkv", "video/x-matroska"),
        ("mp4", "video/mp4"),
        ("m4v", "video/mp4"),
        ("avi", "video/x-msvideo"),
        ("webm", "video/webm"),
        ("mov", "video/quicktime"),
        ("ts", "video/mp2t"),
        ("mp3", "audio/mpeg"),
        ("flac", "audio/flac"),
        ("ogg", "audio/ogg"),
        ("opus", "audio/ogg"),
        ("m4a", "audio/mp4"),
        ("wav", "audio/x-wav"),
        ("jpg", "image/jpeg"),
        ("jpeg", "image/jpeg"),
        ("png", "image/png"),
        ("gif", "image/gif"),
        ("pdf", "application/pdf"),
        ("epub", "application/epub+zip"),
        ("zip", "application/zip"),
        ("iso", "application/x-iso9660-image"),
        ("txt", "text/plain"),
        ("html", "text/html"),
    ];
    let mut by_type: HashMap<&str, u64> = HashMap::new();
    for f in meta.into_iter().flat_map(files_of) {
        let name = f.path.last().map_or("", String::as_str);
        let name = if name.is_empty() {
            meta.map_or("", |m| m.info.name.as_str())
        } else {
            name
        };
        let ext = name
            .rsplit_once('.')
            .map_or("", |(_, x)| x)
            .to_ascii_lowercase();
        let t = TYPES
            .iter()
            .find(|(x, _)| *x == ext)
            .map_or("application/octet-stream", |(_, t)| t);
        *by_type.entry(t).or_default() += f.length;
    }
    by_type
        .into_iter()
        .max_by_key(|(t, n)| (*n, *t))
        .map_or("application/octet-stream", |(t, _)| t)
}

/// Transmission's peer flag letters: D downloading from it, d we are interested, U
/// uploading to it, u it is interested, E encrypted, T µTP, I incoming.
fn flags(p: &share_engine::PeerInfo) -> String {
    let mut s = String::new();
    if p.rate_to_us > 0 {
        s.push('D');
    } else if p.am_interested {
        s.push('d');
    }
    if p.rate_to_peer > 0 {
        s.push('U');
    } else if p.peer_interested {
        s.push('u');
    }
    if p.encrypted {
        s.push('E');
    }
    if p.utp {
        s.push('T');
    }
    if !p.outgoing {
        s.push('I');
    }
    s
}
