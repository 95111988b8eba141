//! `torrent-set`, all or nothing: file choices and priorities, labels, rate limits, seeding
//! goals, sequential download, trackers, the place in the queue. Every argument is checked, for every torrent named, before
//! anything changes; one that is unknown, malformed, or a setting share cannot change (to
//! that value) fails the call naming it, and nothing changes.

use serde_json::{json, Value};
use share_engine::TorrentCommand;

use super::args::{as_bool, as_int};
use super::{bool_arg, ids, int_in, num_arg, strings_arg, trackers, Args, RpcError, RpcResult};
use crate::registry::{FileChoice, Registry};

/// A list of file indexes (`files-wanted`, `priority-high`, ...); an empty list means every
/// file, as in Transmission. Checked against the torrent's files when applied.
fn indexes(args: &Args, key: &str) -> Result<Option<Vec<usize>>, RpcError> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(l)) if l.len() <= 1_000_000 => l
            .iter()
            .map(|v| {
                v.as_u64()
                    .map(|i| i as usize)
                    .ok_or_else(|| RpcError(format!("`{key}` holds an invalid file index")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(RpcError(format!("`{key}` must be a list of file indexes"))),
    }
}

/// `files-wanted`, `files-unwanted` and `priority-*` of one call.
pub fn file_choice(args: &Args) -> Result<FileChoice, RpcError> {
    Ok(FileChoice {
        wanted: indexes(args, "files-wanted")?,
        unwanted: indexes(args, "files-unwanted")?,
        high: indexes(args, "priority-high")?,
        low: indexes(args, "priority-low")?,
        normal: indexes(args, "priority-normal")?,
    })
}

/// Largest rate limit taken, in kB/s.
const MAX_KB: i64 = 100_000_000;

/// The arguments `torrent-set` applies.
const APPLIED: &[&str] = &[
    "ids",
    "labels",
    "files-wanted",
    "files-unwanted",
    "priority-high",
    "priority-low",
    "priority-normal",
    "seedRatioLimit",
    "seedRatioMode",
    "seedIdleLimit",
    "seedIdleMode",
    "downloadLimit",
    "downloadLimited",
    "uploadLimit",
    "uploadLimited",
    "sequentialDownload",
    "sequential_download",
    "trackerAdd",
    "trackerRemove",
    "trackerReplace",
    "trackerList",
    "queuePosition",
];

/// What a torrent has that share cannot change: the value it always has, and why.
fn fixed(key: &str) -> Option<(Value, &'static str)> {
    Some(match key {
        "bandwidthPriority" => (json!(0), "share has no bandwidth priorities"),
        "honorsSessionLimits" => (json!(true), "every torrent is held to the session's limits"),
        "group" => (json!(""), "share has no bandwidth groups"),
        _ => return None,
    })
}

/// Why share refuses an argument outright.
fn refused(key: &str) -> Option<&'static str> {
    Some(match key {
        "location" => "use torrent-set-location to move a torrent",
        _ => return None,
    })
}

/// Checks the arguments that are not applied: each is either a setting's current value
/// for every target, or a reason to refuse the call.
fn check_rest(r: &Registry, args: &Args) -> Vec<String> {
    let mut no = Vec::new();
    let mut keys: Vec<&String> = args.keys().collect();
    keys.sort();
    for k in keys {
        let v = &args[k.as_str()];
        if APPLIED.contains(&k.as_str()) {
            continue;
        }
        if let Some(why) = refused(k) {
            no.push(format!("{k}: {why}"));
        } else if let Some((now, why)) = fixed(k) {
            let same = match &now {
                Value::Bool(b) => as_bool(v) == Some(*b),
                Value::Number(n) => as_int(v) == n.as_i64(),
                other => v == other,
            };
            if !same {
                no.push(format!("{k}: {why} (it stays {now})"));
            }
        } else if k == "peer-limit" {
            let max = r.torrent_defaults.max_peers as i64;
            if as_int(v) != Some(max) {
                no.push(format!(
                    "peer-limit: the per-torrent peer limit is set at start (--max-peers; it stays {max})"
                ));
            }
        } else {
            no.push(format!("{k}: unknown argument"));
        }
    }
    no
}

pub fn torrent_set(r: &mut Registry, args: &Args) -> RpcResult {
    let targets = ids(r, args)?;
    // Check every argument before changing anything.
    let labels = strings_arg(args, "labels")?;
    let ratio = num_arg(args, "seedRatioLimit")?;
    if ratio.is_some_and(|v| !(0.0..=1e9).contains(&v)) {
        return Err(RpcError("`seedRatioLimit` must be a number from 0".into()));
    }
    let ratio_mode = int_in(args, "seedRatioMode", 0..=2)?;
    let idle = int_in(args, "seedIdleLimit", 0..=1_000_000_000)?;
    let idle_mode = int_in(args, "seedIdleMode", 0..=2)?;
    let down = int_in(args, "downloadLimit", 0..=MAX_KB)?;
    let down_on = bool_arg(args, "downloadLimited")?;
    let up = int_in(args, "uploadLimit", 0..=MAX_KB)?;
    let up_on = bool_arg(args, "uploadLimited")?;
    let sequential = match bool_arg(args, "sequentialDownload")? {
        Some(v) => Some(v),
        None => bool_arg(args, "sequential_download")?,
    };
    let choice = file_choice(args)?;
    // A place in the queue, from 0 (past the end: the end).
    let position = int_in(args, "queuePosition", 0..=i64::from(u32::MAX))?;
    let mut no = check_rest(r, args);
    let edit = match trackers::Edit::read(args) {
        Ok(e) => e,
        Err(why) => {
            no.push(why);
            None
        }
    };
    if !no.is_empty() {
        return Err(RpcError(format!(
            "torrent-set changed nothing: {}",
            no.join("; ")
        )));
    }
    // File indexes against each torrent's files, before any torrent changes.
    let mut files = Vec::new();
    for &id in &targets {
        let Some(e) = r.entries.get(&id) else {
            continue;
        };
        let count = e
            .meta
            .as_ref()
            .map_or(0, |m| m.info.files.iter().filter(|f| !f.padding).count());
        let (mut wanted, mut priorities) = (e.saved.wanted.clone(), e.saved.priorities.clone());
        let changed = choice
            .apply(count, &mut wanted, &mut priorities)
            .map_err(|e| RpcError(format!("torrent-set changed nothing: torrent {id}: {e}")))?;
        let tiers = match &edit {
            Some(edit) => Some(edit.apply(trackers::list(e)).map_err(|why| {
                RpcError(format!("torrent-set changed nothing: torrent {id}: {why}"))
            })?),
            None => None,
        };
        files.push((id, changed.then_some((wanted, priorities)), tiers));
    }
    for (id, chosen, tiers) in files {
        if let Some(tiers) = tiers {
            r.set_trackers(id, tiers);
        }
        let Some(e) = r.entries.get_mut(&id) else {
            continue;
        };
        if let Some(l) = &labels {
            e.saved.labels = l.clone();
        }
        if let Some(v) = ratio {
            e.saved.seed_ratio_limit = v;
        }
        if let Some(v) = ratio_mode {
            e.saved.seed_ratio_mode = v as u8;
        }
        if let Some(v) = idle {
            e.saved.seed_idle_limit = v as u64;
        }
        if let Some(v) = idle_mode {
            e.saved.seed_idle_mode = v as u8;
        }
        if let Some((wanted, priorities)) = chosen {
            (e.saved.wanted, e.saved.priorities) = (wanted, priorities);
            if let Some(h) = &e.handle {
                h.send(TorrentCommand::SetFiles {
                    wanted: e.saved.wanted.clone(),
                    priorities: e.saved.priorities.clone(),
                });
            }
        }
        if let Some(on) = sequential {
            e.saved.sequential = on;
            if let Some(h) = &e.handle {
                h.send(TorrentCommand::SetSequential(on));
            }
        }
        // A limit's value is kept while it is off, as Transmission keeps it.
        if let Some(kb) = down {
            e.saved.speed_kb.down = kb as u64;
        }
        if let Some(kb) = up {
            e.saved.speed_kb.up = kb as u64;
        }
        let kb = e.saved.speed_kb;
        let down_bytes = down
            .map(|_| kb.down * 1000)
            .or(e.saved.down_limit)
            .unwrap_or(kb.down * 1000);
        let up_bytes = up
            .map(|_| kb.up * 1000)
            .or(e.saved.up_limit)
            .unwrap_or(kb.up * 1000);
        let down_limit = (down.is_some() || down_on.is_some()).then(|| {
            down_on
                .unwrap_or(e.saved.down_limit.is_some())
                .then_some(down_bytes)
        });
        let up_limit = (up.is_some() || up_on.is_some()).then(|| {
            up_on
                .unwrap_or(e.saved.up_limit.is_some())
                .then_some(up_bytes)
        });
        if down_limit.is_some() || up_limit.is_some() {
            r.set_limits(id, up_limit, down_limit);
        }
        r.mark_dirty();
    }
    if let Some(pos) = position {
        for &id in &targets {
            r.set_queue_position(id, pos as usize);
        }
    }
    r.save();
    Ok(json!({}))
}
