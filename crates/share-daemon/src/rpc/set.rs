//! `torrent-set`: file choices and priorities, labels, rate limits, seeding goals.

use serde_json::{json, Value};
use share_engine::TorrentCommand;

use super::{bool_arg, ids, num_arg, strings_arg, Args, RpcError, RpcResult};
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

/// KB/s in Transmission's units (1000 bytes) to bytes per second.
fn kbps(v: f64) -> u64 {
    (v.max(0.0) * 1000.0) as u64
}

pub fn torrent_set(r: &mut Registry, args: &Args) -> RpcResult {
    let targets = ids(r, args)?;
    // Check every argument before changing anything.
    let labels = strings_arg(args, "labels")?;
    let ratio = num_arg(args, "seedRatioLimit")?;
    let ratio_mode = num_arg(args, "seedRatioMode")?;
    let idle = num_arg(args, "seedIdleLimit")?;
    let idle_mode = num_arg(args, "seedIdleMode")?;
    let down = num_arg(args, "downloadLimit")?;
    let down_on = bool_arg(args, "downloadLimited")?;
    let up = num_arg(args, "uploadLimit")?;
    let up_on = bool_arg(args, "uploadLimited")?;
    let choice = file_choice(args)?;
    for m in [ratio_mode, idle_mode].into_iter().flatten() {
        if !(0.0..=2.0).contains(&m) {
            return Err(RpcError("a seeding mode must be 0, 1 or 2".into()));
        }
    }
    for id in targets {
        let count = r
            .entries
            .get(&id)
            .and_then(|e| e.meta.as_ref())
            .map_or(0, |m| m.info.files.iter().filter(|f| !f.padding).count());
        let Some(e) = r.entries.get_mut(&id) else {
            continue;
        };
        if let Some(l) = &labels {
            e.saved.labels = l.clone();
        }
        if let Some(v) = ratio {
            e.saved.seed_ratio_limit = v.max(0.0);
        }
        if let Some(v) = ratio_mode {
            e.saved.seed_ratio_mode = v as u8;
        }
        if let Some(v) = idle {
            e.saved.seed_idle_limit = v.clamp(0.0, 1e9) as u64;
        }
        if let Some(v) = idle_mode {
            e.saved.seed_idle_mode = v as u8;
        }
        if choice
            .apply(count, &mut e.saved.wanted, &mut e.saved.priorities)
            .map_err(RpcError)?
        {
            if let Some(h) = &e.handle {
                h.send(TorrentCommand::SetFiles {
                    wanted: e.saved.wanted.clone(),
                    priorities: e.saved.priorities.clone(),
                });
            }
        }
        let limits = (
            down.is_some() || down_on.is_some(),
            up.is_some() || up_on.is_some(),
        );
        let down_limit = down_on
            .unwrap_or(e.saved.down_limit.is_some() || down.is_some())
            .then(|| down.map(kbps).or(e.saved.down_limit).unwrap_or(0));
        let up_limit = up_on
            .unwrap_or(e.saved.up_limit.is_some() || up.is_some())
            .then(|| up.map(kbps).or(e.saved.up_limit).unwrap_or(0));
        r.set_limits(
            id,
            limits.1.then_some(up_limit),
            limits.0.then_some(down_limit),
        );
        r.mark_dirty();
    }
    r.save();
    Ok(json!({}))
}
