//! `torrents/*` reads: `info` (filters, sort, paging), `properties`, `files`, `trackers`,
//! `webseeds`, `pieceStates`, `count`, `uploadLimit`/`downloadLimit`, `export`.
//!
//! The running torrents named are asked for their details at once, outside the registry's
//! owner (`ops::status`); then one request to the owner builds the objects, and filtering,
//! sorting and paging happen back in the caller's task.

use std::cmp::Ordering;
use std::collections::HashMap;

use serde_json::{json, Map, Value};
use share_engine::Status;

use super::fields::{self, View};
use super::form::{valid_hash, Hashes};
use super::{Answer, Call, Fail, Reply};
use crate::ops;
use crate::owner::Handle;
use crate::registry::Registry;

pub async fn dispatch(c: &Call<'_>, action: &str) -> Option<Answer> {
    Some(match action {
        "info" => info(c).await,
        "properties" => properties(c).await,
        "files" => files(c).await,
        "trackers" => trackers(c).await,
        "webseeds" => webseeds(c).await,
        "pieceStates" => piece_states(c).await,
        "count" => {
            c.h.read(|r| Reply::Text(r.entries.len().to_string()))
                .await
                .map_err(Fail::from)
        }
        "uploadLimit" => limits(c, true).await,
        "downloadLimit" => limits(c, false).await,
        "export" => export(c).await,
        _ => return None,
    })
}

/// The registry id of the torrent `hash` names: 404 if there is none.
pub fn find(r: &Registry, hash: &str) -> Result<u32, Fail> {
    let hash = hash.trim().to_ascii_lowercase();
    if !valid_hash(&hash) {
        return Err(Fail::not_found());
    }
    r.find_hex(&hash).ok_or_else(Fail::not_found)
}

/// The ids `hashes` names (unknown ones left out).
pub fn matching(r: &Registry, hashes: &Hashes) -> Vec<u32> {
    r.entries
        .iter()
        .filter(|(_, e)| hashes.matches(&e.saved.hash))
        .map(|(id, _)| *id)
        .collect()
}

/// The details of the running torrents among `ids`, asked all at once (see
/// [`ops::statuses`]).
pub async fn statuses(h: &Handle, ids: Vec<u32>) -> Result<HashMap<u32, Status>, Fail> {
    let askers = h
        .read(move |r| {
            ids.iter()
                .filter_map(|id| Some((*id, r.entries.get(id)?.handle.as_ref()?.commands())))
                .collect::<Vec<_>>()
        })
        .await?;
    Ok(ops::statuses(&h.statuses, askers).await)
}

/// The torrent `hash` names, with its details: 404 if unknown.
async fn one(c: &Call<'_>) -> Result<(u32, HashMap<u32, Status>), Fail> {
    let hash = c.p.need("hash")?.to_owned();
    let id = c.h.read(move |r| find(r, &hash)).await??;
    Ok((id, statuses(c.h, vec![id]).await?))
}

/// Every torrent's object, with its details.
pub async fn all_objects(h: &Handle) -> Result<Vec<Map<String, Value>>, Fail> {
    let ids = h.read(|r| r.entries.keys().copied().collect()).await?;
    let st = statuses(h, ids).await?;
    Ok(h.read(move |r| {
        r.entries
            .iter()
            .map(|(id, e)| {
                fields::torrent_with_hash(&View {
                    r,
                    e,
                    st: st.get(id),
                })
            })
            .collect()
    })
    .await?)
}

/// Whether a torrent object passes `filter` (qBittorrent's names, and the 4.x `paused`
/// and `resumed`); an unknown filter passes everything, as in qBittorrent.
fn passes(filter: &str, t: &Map<String, Value>) -> bool {
    let state = t.get("state").and_then(Value::as_str).unwrap_or("");
    let up = t.get("upspeed").and_then(Value::as_u64).unwrap_or(0);
    let stopped = state.starts_with("stopped");
    let seeding = matches!(
        state,
        "uploading" | "stalledUP" | "checkingUP" | "queuedUP" | "forcedUP"
    );
    let active = matches!(
        state,
        "downloading"
            | "metaDL"
            | "forcedMetaDL"
            | "forcedDL"
            | "uploading"
            | "forcedUP"
            | "moving"
    ) || (state == "stalledDL" && up > 0);
    match filter {
        "downloading" => matches!(
            state,
            "downloading"
                | "metaDL"
                | "forcedMetaDL"
                | "stalledDL"
                | "checkingDL"
                | "stoppedDL"
                | "queuedDL"
                | "forcedDL"
        ),
        "seeding" => seeding,
        "completed" => seeding || state == "stoppedUP",
        "stopped" | "paused" => stopped,
        "running" | "resumed" => !stopped,
        "active" => active,
        "inactive" => !active,
        "stalled" => matches!(state, "stalledUP" | "stalledDL"),
        "stalled_uploading" => state == "stalledUP",
        "stalled_downloading" => state == "stalledDL",
        "checking" => matches!(state, "checkingUP" | "checkingDL" | "checkingResumeData"),
        "moving" => state == "moving",
        "errored" => matches!(state, "error" | "missingFiles"),
        _ => true,
    }
}

fn compare(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Some(Value::String(x)), Some(Value::String(y))) => x.to_lowercase().cmp(&y.to_lowercase()),
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        (Some(Value::Null) | None, Some(Value::Null) | None) => Ordering::Equal,
        (Some(Value::Null) | None, _) => Ordering::Less,
        (_, Some(Value::Null) | None) => Ordering::Greater,
        _ => Ordering::Equal,
    }
}

async fn info(c: &Call<'_>) -> Answer {
    let p = &c.p;
    let filter = p.get("filter").unwrap_or("all").to_owned();
    let hashes = p.get("hashes").map(Hashes::parse);
    let category = p.get("category");
    let tag = p.get("tag");
    let private = p.bool("private");
    let reverse = p.bool("reverse").unwrap_or(false);
    let limit = p.int("limit")?.unwrap_or(0);
    let offset = p.int("offset")?.unwrap_or(0);
    let mut list: Vec<Map<String, Value>> = all_objects(c.h)
        .await?
        .into_iter()
        .filter(|t| passes(&filter, t))
        .filter(|t| {
            hashes
                .as_ref()
                .is_none_or(|h| h.matches(t["hash"].as_str().unwrap_or("")))
        })
        .filter(|t| category.is_none_or(|cat| t["category"] == cat))
        .filter(|t| {
            tag.is_none_or(|tag| {
                let tags = t["tags"].as_str().unwrap_or("");
                if tag.is_empty() {
                    tags.is_empty()
                } else {
                    tags.split(", ").any(|x| x == tag)
                }
            })
        })
        .filter(|t| private.is_none_or(|p| t["private"] == p))
        .collect();
    if let Some(key) = p.get("sort") {
        if !list.is_empty() && !list[0].contains_key(key) {
            return Err(Fail::bad("'sort' parameter is invalid"));
        }
        list.sort_by(|a, b| compare(a.get(key), b.get(key)));
    }
    if reverse {
        list.reverse();
    }
    let n = list.len() as i64;
    let mut start = if offset < 0 { n + offset } else { offset };
    if start < 0 || start >= n {
        start = 0;
    }
    let end = if limit > 0 { (start + limit).min(n) } else { n };
    let page: Vec<Value> = list
        .drain(start as usize..end as usize)
        .map(Value::Object)
        .collect();
    Ok(Reply::Json(Value::Array(page)))
}

async fn properties(c: &Call<'_>) -> Answer {
    let (id, st) = one(c).await?;
    let o =
        c.h.read(move |r| {
            let e = r.entries.get(&id)?;
            let v = View {
                r,
                e,
                st: st.get(&id),
            };
            let t = fields::torrent(&v);
            let m = e.meta.as_ref();
            let pieces_have = st
                .get(&id)
                .map_or(0, |s| s.pieces.iter().map(|b| b.count_ones()).sum::<u32>());
            let secs = e.saved.seconds_active.max(1);
            let (seeds, leechers) = v.seeds_and_leechers();
            let limit = |l: Option<u64>| l.map_or(-1, |l| l as i64);
            Some(json!({
                "hash": e.saved.hash,
                "infohash_v1": e.saved.hash,
                "infohash_v2": v.infohash_v2(),
                "name": t["name"],
                "save_path": t["save_path"],
                "download_path": "",
                "comment": t["comment"],
                "created_by": m.and_then(|m| m.created_by.clone()).unwrap_or_default(),
                "creation_date": m.and_then(|m| m.creation_date).unwrap_or(-1),
                "addition_date": e.saved.added,
                "completion_date": t["completion_on"],
                "last_seen": t["seen_complete"],
                "time_elapsed": e.saved.seconds_active,
                "seeding_time": e.saved.seconds_seeding,
                "eta": t["eta"],
                "nb_connections": seeds + leechers,
                "nb_connections_limit": r.torrent_defaults.max_peers,
                "total_downloaded": t["downloaded"],
                "total_downloaded_session": t["downloaded_session"],
                "total_uploaded": t["uploaded"],
                "total_uploaded_session": t["uploaded_session"],
                "total_wasted": 0,
                "dl_speed": t["dlspeed"],
                "dl_speed_avg": e.downloaded_ever() / secs,
                "up_speed": t["upspeed"],
                "up_speed_avg": e.uploaded_ever() / secs,
                "dl_limit": limit(e.saved.down_limit),
                "up_limit": limit(e.saved.up_limit),
                "seeds": seeds,
                "seeds_total": seeds,
                "peers": leechers,
                "peers_total": leechers,
                "share_ratio": t["ratio"],
                "popularity": t["popularity"],
                "reannounce": 0,
                "total_size": e.total_size(),
                "pieces_num": m.map_or(0, |m| m.info.piece_count()),
                "piece_size": m.map_or(0, |m| m.info.piece_length),
                "pieces_have": pieces_have,
                "is_private": m.is_some_and(|m| m.info.private),
                "private": t["private"],
                "has_metadata": m.is_some(),
                "progress": t["progress"],
            }))
        })
        .await?;
    o.map(Reply::Json).ok_or_else(Fail::not_found)
}

/// Share's file priority (and wanted) as qBittorrent's: 0 skip, 1 normal, 6 high.
pub fn qbt_priority(wanted: bool, p: i8) -> i64 {
    match (wanted, p) {
        (false, _) => 0,
        (true, p) if p > 0 => 6,
        _ => 1,
    }
}

async fn files(c: &Call<'_>) -> Answer {
    let indexes: Option<Vec<&str>> = c.p.get("indexes").map(|s| s.split('|').collect());
    let (id, st) = one(c).await?;
    let rows = c
        .h
        .read(move |r| {
            let Some(e) = r.entries.get(&id) else {
                return Vec::new();
            };
            let Some(m) = &e.meta else {
                return Vec::new();
            };
            let v = View { r, e, st: st.get(&id) };
            let status = st.get(&id).map(|s| &s.files);
            let pl = m.info.piece_length.max(1) as u64;
            let done = v.complete();
            let avail = fields::availability(&v).clamp(0.0, 1.0);
            m.info
                .files
                .iter()
                .filter(|f| !f.padding)
                .enumerate()
                .map(|(i, f)| {
                    let name = share_engine::file_path(&m.info, f);
                    let verified = status.and_then(|s| s.get(i)).map_or(0, |s| s.verified);
                    let last = (f.offset + f.length.max(1) - 1) / pl;
                    let mut o = json!({
                        "index": i,
                        "name": name,
                        "size": f.length,
                        "progress": if f.length == 0 { 1.0 } else { verified as f64 / f.length as f64 },
                        "priority": qbt_priority(e.wanted(i), e.saved.priorities.get(i).copied().unwrap_or(0)),
                        "piece_range": [f.offset / pl, last],
                        "availability": avail,
                    });
                    if i == 0 {
                        o["is_seed"] = json!(done);
                    }
                    o
                })
                .collect()
        })
        .await?;
    let Some(wanted) = indexes else {
        return Ok(Reply::Json(Value::Array(rows)));
    };
    let mut out = Vec::new();
    for w in wanted {
        let i: usize = w
            .trim()
            .parse()
            .map_err(|_| Fail::conflict(&format!("\"{w}\" is not a valid file index.")))?;
        let row = rows
            .get(i)
            .ok_or_else(|| Fail::conflict(&format!("Index {i} is out of bounds.")))?;
        out.push(row.clone());
    }
    Ok(Reply::Json(Value::Array(out)))
}

async fn trackers(c: &Call<'_>) -> Answer {
    let (id, _) = {
        let hash = c.p.need("hash")?.to_owned();
        (c.h.read(move |r| find(r, &hash)).await??, ())
    };
    let rows = c
        .h
        .read(move |r| {
            let e = r.entries.get(&id)?;
            let v = View { r, e, st: None };
            let private = e.meta.as_ref().is_some_and(|m| m.info.private);
            let s = &r.session_settings;
            let sw = r.session.switches();
            let running = e.handle.is_some() && !e.saved.paused;
            let learned = |src| e.stats().map_or(0, |s| s.learned_from(src));
            let mut rows = Vec::new();
            for (url, on, src) in [
                ("** [DHT] **", s.dht, share_engine::PeerSource::Dht),
                ("** [PeX] **", sw.pex, share_engine::PeerSource::Pex),
                ("** [LSD] **", sw.lsd, share_engine::PeerSource::Lsd),
            ] {
                rows.push(json!({
                    "url": url, "tier": -1,
                    "status": if on && !private { 2 } else { 0 },
                    "msg": if private { "This torrent is private" } else { "" },
                    "num_peers": learned(src), "num_seeds": 0, "num_leeches": 0, "num_downloaded": 0,
                }));
            }
            let tiers: Vec<Vec<String>> = match (&e.meta, &e.magnet) {
                (Some(m), _) => m.trackers.clone(),
                (None, Some(m)) => m.trackers.iter().map(|t| vec![t.clone()]).collect(),
                _ => Vec::new(),
            };
            let working = running && learned(share_engine::PeerSource::Tracker) > 0;
            for (tier, urls) in tiers.iter().enumerate() {
                for u in urls {
                    rows.push(json!({
                        "url": u, "tier": tier,
                        "status": if working { 2 } else { 1 },
                        "msg": "",
                        "num_peers": -1, "num_seeds": -1, "num_leeches": -1, "num_downloaded": -1,
                    }));
                }
            }
            let _ = v;
            Some(rows)
        })
        .await?
        .ok_or_else(Fail::not_found)?;
    Ok(Reply::Json(Value::Array(rows)))
}

async fn webseeds(c: &Call<'_>) -> Answer {
    let hash = c.p.need("hash")?.to_owned();
    let urls =
        c.h.read(move |r| {
            let id = find(r, &hash)?;
            let e = &r.entries[&id];
            Ok::<_, Fail>(match (&e.meta, &e.magnet) {
                (Some(m), _) => m.url_list.clone(),
                (None, Some(m)) => m.web_seeds.clone(),
                _ => Vec::new(),
            })
        })
        .await??;
    Ok(Reply::Json(json!(urls
        .into_iter()
        .map(|u| json!({ "url": u }))
        .collect::<Vec<_>>())))
}

async fn piece_states(c: &Call<'_>) -> Answer {
    let (id, st) = one(c).await?;
    let count =
        c.h.read(move |r| {
            r.entries
                .get(&id)
                .and_then(|e| e.meta.as_ref())
                .map_or(0, |m| m.info.piece_count())
        })
        .await?;
    let bits = st.get(&id).map(|s| s.pieces.clone()).unwrap_or_default();
    let states: Vec<u8> = (0..count as usize)
        .map(|i| {
            let have = bits.get(i / 8).is_some_and(|b| b & (0x80 >> (i % 8)) != 0);
            if have {
                2
            } else {
                0
            }
        })
        .collect();
    Ok(Reply::Json(json!(states)))
}

async fn limits(c: &Call<'_>, up: bool) -> Answer {
    let asked: Vec<String> = c.p.need("hashes")?.split('|').map(str::to_owned).collect();
    let out =
        c.h.read(move |r| {
            let mut out = Map::new();
            for h in asked {
                let limit = find(r, &h).ok().map_or(-1, |id| {
                    let s = &r.entries[&id].saved;
                    (if up { s.up_limit } else { s.down_limit }).unwrap_or(0) as i64
                });
                out.insert(h, json!(limit));
            }
            out
        })
        .await?;
    Ok(Reply::Json(Value::Object(out)))
}

async fn export(c: &Call<'_>) -> Answer {
    let hash = c.p.need("hash")?.to_owned();
    let hex =
        c.h.read(move |r| find(r, &hash).map(|id| r.entries[&id].saved.hash.clone()))
            .await??;
    let folder = c.h.folder.clone();
    let state = c.h.state_dir.clone();
    let h2 = hex.clone();
    let bytes = tokio::task::spawn_blocking(move || {
        folder.read_torrent(&h2).or_else(|| {
            let p = state.join("metadata").join(format!("{h2}.torrent"));
            share_storage::state::read_state(&p, 64 << 20)
                .ok()
                .flatten()
        })
    })
    .await
    .ok()
    .flatten()
    .ok_or_else(|| Fail::conflict("the torrent's metadata is not known yet"))?;
    Ok(Reply::Torrent(bytes, hex))
}
