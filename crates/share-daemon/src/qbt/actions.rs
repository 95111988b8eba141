//! `torrents/*` changes other than adding and labels: stop/start (and the 4.x
//! pause/resume), delete, recheck, reannounce, setLocation, rename, filePrio, share and rate
//! limits, sequential download, force start, the queue moves.
//!
//! Every parameter is checked before anything changes. A change that only touches the
//! registry is one request to its owner; stopping, moving, deleting and checking go
//! through `ops` as the Transmission RPC's do. Multi-torrent endpoints ignore unknown
//! hashes (200); single-torrent ones answer 404.

use share_engine::TorrentCommand;

use super::torrents::{find, matching};
use super::{Answer, Call, Fail, Reply};
use crate::{ops, paths};

pub async fn dispatch(c: &Call<'_>, action: &str) -> Option<Answer> {
    Some(match action {
        "stop" | "pause" => each(c, |r, id| r.stop(id)).await,
        "start" | "resume" => start(c, None).await,
        "setForceStart" => match c.p.bool("value") {
            Some(v) => start(c, Some(v)).await,
            None => Err(Fail::bad("Missing required parameters: value")),
        },
        "delete" => delete(c).await,
        "recheck" => recheck(c).await,
        "reannounce" => {
            each(c, |r, id| {
                if let Some(h) = r.entries.get(&id).and_then(|e| e.handle.as_ref()) {
                    h.send(TorrentCommand::Reannounce);
                }
            })
            .await
        }
        "setLocation" => set_location(c).await,
        "rename" => rename(c).await,
        "filePrio" => file_prio(c).await,
        "setShareLimits" => share_limits(c).await,
        "setUploadLimit" => rate(c, true).await,
        "setDownloadLimit" => rate(c, false).await,
        "toggleSequentialDownload" => {
            each(c, |r, id| {
                if let Some(e) = r.entries.get_mut(&id) {
                    e.saved.sequential = !e.saved.sequential;
                    if let Some(h) = &e.handle {
                        h.send(TorrentCommand::SetSequential(e.saved.sequential));
                    }
                }
            })
            .await
        }
        "toggleFirstLastPiecePrio" => Err(Fail::conflict(
            "share does not put the first and last pieces first",
        )),
        "setSuperSeeding" => unsupported(c, "value", "share has no super-seeding"),
        "setAutoManagement" => {
            unsupported(c, "enable", "share has no automatic torrent management")
        }
        "topPrio" | "bottomPrio" | "increasePrio" | "decreasePrio" => queue(c, action).await,
        _ => return None,
    })
}

/// Runs `f` on every torrent `hashes` names, in one request to the owner, and saves; a
/// slot freed in a queue (a stop) goes to the next.
async fn each<F>(c: &Call<'_>, f: F) -> Answer
where
    F: Fn(&mut crate::Registry, u32) + Send + 'static,
{
    let hashes = c.p.hashes("hashes")?;
    c.h.read(move |r| {
        for id in matching(r, &hashes) {
            f(r, id);
        }
        r.pump();
        r.mark_dirty();
        r.save();
    })
    .await?;
    Ok(Reply::Empty)
}

/// A switch share does not have: `false` is what it is already; `true` is refused.
fn unsupported(c: &Call<'_>, key: &str, why: &str) -> Answer {
    c.p.hashes("hashes")?;
    match c.p.bool(key) {
        None => Err(Fail::bad(&format!("Missing required parameters: {key}"))),
        Some(false) => Ok(Reply::Empty),
        Some(true) => Err(Fail::conflict(why)),
    }
}

/// Starts the torrents: `start` (force: `None`) clears force; `setForceStart` sets it (and
/// starts a stopped torrent) or clears it (a stopped torrent stays stopped), as in
/// qBittorrent.
async fn start(c: &Call<'_>, force: Option<bool>) -> Answer {
    let hashes = c.p.hashes("hashes")?;
    c.h.call(move |r| {
        Box::pin(async move {
            for id in matching(r, &hashes) {
                let Some(e) = r.entries.get_mut(&id) else {
                    continue;
                };
                e.saved.force_start = force == Some(true);
                if force != Some(false) {
                    // Forced: past the queue, at once.
                    r.start_or_rerun(id, force == Some(true)).await;
                }
            }
            // A torrent no longer forced takes a slot again (or waits for one).
            r.pump();
            r.mark_dirty();
            r.save();
        })
    })
    .await?;
    Ok(Reply::Empty)
}

async fn delete(c: &Call<'_>) -> Answer {
    let hashes = c.p.hashes("hashes")?;
    // Absent counts as false (qBittorrent answers 400; *arr leave it out).
    let files = c.p.bool("deleteFiles").unwrap_or(false);
    let ids = c.h.read(move |r| matching(r, &hashes)).await?;
    let mut errors = Vec::new();
    for id in ids {
        if let Err(e) = ops::remove(c.h, id, files).await {
            errors.push(e);
        }
    }
    if errors.is_empty() {
        Ok(Reply::Empty)
    } else {
        Err(Fail::conflict(&errors.join("; ")))
    }
}

async fn recheck(c: &Call<'_>) -> Answer {
    let hashes = c.p.hashes("hashes")?;
    let ids = c.h.read(move |r| matching(r, &hashes)).await?;
    for id in ids {
        ops::verify(c.h, id).await.map_err(|e| Fail::conflict(&e))?;
    }
    Ok(Reply::Empty)
}

async fn set_location(c: &Call<'_>) -> Answer {
    let hashes = c.p.hashes("hashes")?;
    let location = c.p.need("location")?;
    if location.trim().is_empty() {
        return Err(Fail::bad("Save path cannot be empty"));
    }
    let dir = paths::download_dir(&c.h.download_root, location)
        .map_err(|e| Fail::conflict(&format!("Cannot make save path: {e}")))?;
    let ids = c.h.read(move |r| matching(r, &hashes)).await?;
    for id in ids {
        ops::set_location(c.h, id, dir.clone(), true)
            .await
            .map_err(|e| Fail::conflict(&e))?;
    }
    Ok(Reply::Empty)
}

async fn rename(c: &Call<'_>) -> Answer {
    let hash = c.p.need("hash")?.to_owned();
    let name = c.p.need("name")?.replace(['\r', '\n'], " ");
    let name = name.trim().to_owned();
    c.h.read(move |r| {
        let id = find(r, &hash)?;
        if name.is_empty() || name.len() > 1024 {
            return Err(Fail::conflict("Incorrect torrent name"));
        }
        if let Some(e) = r.entries.get_mut(&id) {
            e.saved.name = Some(name);
        }
        r.mark_dirty();
        r.save();
        Ok(Reply::Empty)
    })
    .await?
}

async fn file_prio(c: &Call<'_>) -> Answer {
    let hash = c.p.need("hash")?.to_owned();
    let ids = c.p.need("id")?.to_owned();
    let prio: i64 =
        c.p.need("priority")?
            .trim()
            .parse()
            .map_err(|_| Fail::bad("Priority must be an integer"))?;
    // qBittorrent's 0 (skip), 1 (normal), 6 (high), 7 (maximum; share's high).
    let (wanted, level) = match prio {
        0 => (false, 0i8),
        1 => (true, 0),
        6 | 7 => (true, 1),
        _ => return Err(Fail::bad("Priority is not valid")),
    };
    let indexes = ids
        .split('|')
        .map(|s| s.trim().parse::<usize>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| Fail::bad("File IDs must be integers"))?;
    c.h.read(move |r| {
        let id = find(r, &hash)?;
        let e = r.entries.get_mut(&id).ok_or_else(Fail::not_found)?;
        let Some(m) = &e.meta else {
            return Err(Fail::conflict("Torrent's metadata has not yet downloaded"));
        };
        let count = m.info.files.iter().filter(|f| !f.padding).count();
        if indexes.iter().any(|&i| i >= count) {
            return Err(Fail::conflict("File ID is not valid"));
        }
        e.saved.wanted.resize(count, true);
        e.saved.priorities.resize(count, 0);
        for i in indexes {
            e.saved.wanted[i] = wanted;
            if wanted {
                e.saved.priorities[i] = level;
            }
        }
        if let Some(h) = &e.handle {
            h.send(TorrentCommand::SetFiles {
                wanted: e.saved.wanted.clone(),
                priorities: e.saved.priorities.clone(),
            });
        }
        r.mark_dirty();
        r.save();
        Ok(Reply::Empty)
    })
    .await?
}

/// A share limit from qBittorrent's -2 (the session's) / -1 (none) / value, as share's
/// (mode, value): 0 the session's, 1 its own, 2 none.
pub fn limit_mode(v: f64, key: &str) -> Result<(u8, f64), Fail> {
    if v == -2.0 {
        Ok((0, 0.0))
    } else if v == -1.0 {
        Ok((2, 0.0))
    } else if v >= 0.0 {
        Ok((1, v))
    } else {
        Err(Fail::bad(&format!("'{key}' must be -2, -1 or at least 0")))
    }
}

async fn share_limits(c: &Call<'_>) -> Answer {
    let hashes = c.p.hashes("hashes")?;
    // Each absent one is -2 (qBittorrent requires all three; Sonarr sends two).
    let ratio = limit_mode(c.p.float("ratioLimit")?.unwrap_or(-2.0), "ratioLimit")?;
    let time = limit_mode(
        c.p.int("seedingTimeLimit")?.unwrap_or(-2) as f64,
        "seedingTimeLimit",
    )?;
    let idle = limit_mode(
        c.p.int("inactiveSeedingTimeLimit")?.unwrap_or(-2) as f64,
        "inactiveSeedingTimeLimit",
    )?;
    if let Some(a) = c.p.get("shareLimitAction") {
        if !matches!(a, "Default" | "Stop") {
            return Err(Fail::bad("share only stops a torrent at its share limit"));
        }
    }
    c.h.read(move |r| {
        for id in matching(r, &hashes) {
            let Some(e) = r.entries.get_mut(&id) else {
                continue;
            };
            e.saved.seed_ratio_mode = ratio.0;
            if ratio.0 == 1 {
                e.saved.seed_ratio_limit = ratio.1;
            }
            e.saved.seed_idle_mode = idle.0;
            if idle.0 == 1 {
                e.saved.seed_idle_limit = idle.1 as u64;
            }
            e.saved.seeding_time_limit = match time.0 {
                0 => -2,
                2 => -1,
                _ => time.1 as i64,
            };
        }
        r.mark_dirty();
        r.save();
    })
    .await?;
    Ok(Reply::Empty)
}

async fn rate(c: &Call<'_>, up: bool) -> Answer {
    let hashes = c.p.hashes("hashes")?;
    let limit =
        c.p.int("limit")?
            .ok_or_else(|| Fail::bad("Missing required parameters: limit"))?;
    let limit = (limit > 0).then_some(limit as u64);
    c.h.read(move |r| {
        for id in matching(r, &hashes) {
            if up {
                r.set_limits(id, Some(limit), None);
            } else {
                r.set_limits(id, None, Some(limit));
            }
        }
        r.save();
    })
    .await?;
    Ok(Reply::Empty)
}

/// A move in the queue (the Transmission RPC's `queue-move-*` on the same queue); 409 when
/// queueing is off, as qBittorrent answers.
async fn queue(c: &Call<'_>, action: &str) -> Answer {
    let hashes = c.p.hashes("hashes")?;
    let how = crate::queue::Move::of_method(action).ok_or_else(Fail::not_found)?;
    c.h.read(move |r| {
        if !super::app::queueing(&r.settings.queue) {
            return Err(Fail::conflict("Torrent queueing must be enabled"));
        }
        let ids = matching(r, &hashes);
        r.queue_move(&ids, how);
        r.save();
        Ok(Reply::Empty)
    })
    .await?
}
