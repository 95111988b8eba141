//! `sync/maindata` and `sync/torrentPeers`: the whole state once, then what changed, as
//! qBittorrent sends them. Each session keeps the last answers it was sent (in its
//! `auth` session): a `rid` naming the last one gets the changes since it; naming the one
//! before (the client missed an answer) gets the changes since that one; any other gets a
//! full update. The next `rid` is the last one plus one, cycling through 1..=1000000.
//!
//! In a partial answer a torrent that changed carries only its changed keys; removed
//! torrents, categories, tags and trackers are listed by name; a key with nothing to say is
//! left out (`rid` is always there).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use super::torrents::{all_objects, find, statuses};
use super::{Answer, Call, Fail, Reply};

/// A session's sync state: the answers it may build on.
#[derive(Debug, Default)]
pub struct SyncState {
    main: Vec<(u64, Snapshot)>,
    main_rid: u64,
    peers: Vec<(u64, Map<String, Value>)>,
    peers_rid: u64,
}

/// Everything `maindata` shows, by name.
#[derive(Debug, Clone, Default)]
struct Snapshot {
    torrents: Map<String, Value>,
    categories: Map<String, Value>,
    tags: BTreeSet<String>,
    trackers: Map<String, Value>,
    server_state: Map<String, Value>,
}

pub async fn dispatch(c: Call<'_>, action: &str) -> Answer {
    match action {
        "maindata" => maindata(&c).await,
        "torrentPeers" => torrent_peers(&c).await,
        _ => Err(Fail::not_found()),
    }
}

fn next_rid(last: u64) -> u64 {
    last % 1_000_000 + 1
}

/// The rid a client sent (absent or not a number: 0, a full update).
fn rid(c: &Call<'_>) -> u64 {
    c.p.get("rid")
        .and_then(|r| r.trim().parse::<u64>().ok())
        .unwrap_or(0)
}

async fn snapshot(c: &Call<'_>) -> Result<Snapshot, Fail> {
    let objects = all_objects(c.h).await?;
    let free = {
        let dir = c.h.read(|r| r.default_dir()).await?;
        tokio::task::spawn_blocking(move || crate::rpc::session::space(&dir))
            .await
            .ok()
            .flatten()
            .map_or(0, |(f, _)| f)
    };
    let (categories, tags, mut server_state) =
        c.h.read(|r| {
            let cats = match super::labels::categories(r) {
                Value::Object(m) => m,
                _ => Map::new(),
            };
            let tags: BTreeSet<String> = super::labels::all_tags(r).into_iter().collect();
            let mut s = super::transfer::info(r);
            let (mut up, mut down) = (r.removed_up, r.removed_down);
            for e in r.entries.values() {
                up += e.uploaded_ever();
                down += e.downloaded_ever();
            }
            s.insert("alltime_dl".into(), json!(down));
            s.insert("alltime_ul".into(), json!(up));
            s.insert(
                "global_ratio".into(),
                json!(if down == 0 {
                    "-".to_owned()
                } else {
                    format!("{:.2}", up as f64 / down as f64)
                }),
            );
            s.insert(
                "queueing".into(),
                json!(super::app::queueing(&r.settings.queue)),
            );
            s.insert("use_alt_speed_limits".into(), json!(r.settings.alt_mode));
            (cats, tags, s)
        })
        .await?;
    for (k, v) in [
        ("total_wasted_session", json!(0)),
        ("total_peer_connections", json!(0)),
        ("read_cache_hits", json!("0")),
        ("total_buffers_size", json!(0)),
        ("write_cache_overload", json!("0")),
        ("read_cache_overload", json!("0")),
        ("queued_io_jobs", json!(0)),
        ("average_time_queue", json!(0)),
        ("total_queued_size", json!(0)),
        ("free_space_on_disk", json!(free)),
        ("refresh_interval", json!(1500)),
        ("use_subcategories", json!(false)),
    ] {
        server_state.insert(k.into(), v);
    }
    let mut torrents = Map::new();
    let mut trackers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut peers = 0;
    for mut t in objects {
        let hash = t
            .remove("hash")
            .and_then(|h| h.as_str().map(str::to_owned))
            .unwrap_or_default();
        peers += t["num_seeds"].as_u64().unwrap_or(0) + t["num_leechs"].as_u64().unwrap_or(0);
        if let Some(url) = t
            .get("tracker")
            .and_then(Value::as_str)
            .filter(|u| !u.is_empty())
        {
            trackers
                .entry(url.to_owned())
                .or_default()
                .push(hash.clone());
        }
        torrents.insert(hash, Value::Object(t));
    }
    server_state.insert("total_peer_connections".into(), json!(peers));
    Ok(Snapshot {
        torrents,
        categories,
        tags,
        trackers: trackers.into_iter().map(|(k, v)| (k, json!(v))).collect(),
        server_state,
    })
}

/// What changed in `now` since `then`: (new or changed entries, changed keys only for
/// objects that were there; names removed).
fn diff_maps(
    then: &Map<String, Value>,
    now: &Map<String, Value>,
    by_key: bool,
) -> (Map<String, Value>, Vec<String>) {
    let mut changed = Map::new();
    for (k, v) in now {
        match (then.get(k), v) {
            (None, _) => {
                changed.insert(k.clone(), v.clone());
            }
            (Some(Value::Object(old)), Value::Object(new)) if by_key => {
                let d: Map<String, Value> = new
                    .iter()
                    .filter(|(kk, vv)| old.get(*kk) != Some(*vv))
                    .map(|(kk, vv)| (kk.clone(), vv.clone()))
                    .collect();
                if !d.is_empty() {
                    changed.insert(k.clone(), Value::Object(d));
                }
            }
            (Some(old), new) if old != new => {
                changed.insert(k.clone(), new.clone());
            }
            _ => {}
        }
    }
    let removed = then
        .keys()
        .filter(|k| !now.contains_key(*k))
        .cloned()
        .collect();
    (changed, removed)
}

fn answer(rid: u64, base: Option<&Snapshot>, now: &Snapshot) -> Value {
    let mut out = Map::new();
    out.insert("rid".into(), json!(rid));
    let Some(base) = base else {
        out.insert("full_update".into(), json!(true));
        out.insert("torrents".into(), Value::Object(now.torrents.clone()));
        out.insert("categories".into(), Value::Object(now.categories.clone()));
        out.insert("tags".into(), json!(now.tags));
        out.insert("trackers".into(), Value::Object(now.trackers.clone()));
        out.insert(
            "server_state".into(),
            Value::Object(now.server_state.clone()),
        );
        return Value::Object(out);
    };
    let mut put = |key: &str, v: Value, empty: bool| {
        if !empty {
            out.insert(key.into(), v);
        }
    };
    for (key, removed_key, then, now, by_key) in [
        (
            "torrents",
            "torrents_removed",
            &base.torrents,
            &now.torrents,
            true,
        ),
        (
            "categories",
            "categories_removed",
            &base.categories,
            &now.categories,
            true,
        ),
        (
            "trackers",
            "trackers_removed",
            &base.trackers,
            &now.trackers,
            false,
        ),
    ] {
        let (changed, removed) = diff_maps(then, now, by_key);
        put(key, Value::Object(changed.clone()), changed.is_empty());
        put(removed_key, json!(removed), removed.is_empty());
    }
    let added: Vec<&String> = now.tags.difference(&base.tags).collect();
    let gone: Vec<&String> = base.tags.difference(&now.tags).collect();
    put("tags", json!(added), added.is_empty());
    put("tags_removed", json!(gone), gone.is_empty());
    let server: Map<String, Value> = now
        .server_state
        .iter()
        .filter(|(k, v)| base.server_state.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    put(
        "server_state",
        Value::Object(server.clone()),
        server.is_empty(),
    );
    Value::Object(out)
}

async fn maindata(c: &Call<'_>) -> Answer {
    let asked = rid(c);
    let now = snapshot(c).await?;
    let mut state = c.qbt.take_sync(&c.sid);
    let base = (asked > 0)
        .then(|| state.main.iter().find(|(r, _)| *r == asked).cloned())
        .flatten();
    let rid = next_rid(state.main_rid);
    let out = answer(rid, base.as_ref().map(|(_, s)| s), &now);
    state.main = base.into_iter().chain([(rid, now)]).collect();
    state.main_rid = rid;
    c.qbt.put_sync(&c.sid, state);
    Ok(Reply::Json(out))
}

/// qBittorrent's peer flag letters and what they mean.
fn flags(p: &share_engine::PeerInfo) -> (String, String) {
    let mut out: Vec<(&str, &str)> = Vec::new();
    match (p.am_interested, p.peer_choking) {
        (true, false) => out.push(("D", "Interested (local) and unchoked (peer)")),
        (true, true) => out.push(("d", "Interested (local) and choked (peer)")),
        (false, false) => out.push(("K", "Not interested (local) and unchoked (peer)")),
        _ => {}
    }
    match (p.peer_interested, p.am_choking) {
        (true, false) => out.push(("U", "Interested (peer) and unchoked (local)")),
        (true, true) => out.push(("u", "Interested (peer) and choked (local)")),
        (false, false) => out.push(("?", "Not interested (peer) and unchoked (local)")),
        _ => {}
    }
    if !p.outgoing {
        out.push(("I", "Incoming connection"));
    }
    if p.encrypted {
        out.push(("E", "Encrypted traffic"));
    }
    if p.utp {
        out.push(("P", "μTP"));
    }
    let letters: Vec<&str> = out.iter().map(|(l, _)| *l).collect();
    let desc: Vec<String> = out.iter().map(|(l, d)| format!("{l} = {d}")).collect();
    (letters.join(" "), desc.join("\n"))
}

async fn torrent_peers(c: &Call<'_>) -> Answer {
    let hash = c.p.get("hash").ok_or_else(Fail::not_found)?.to_owned();
    let id = c.h.read(move |r| find(r, &hash)).await??;
    let st = statuses(c.h, vec![id]).await?;
    let mut now = Map::new();
    for p in st.get(&id).map_or(&[][..], |s| s.peers.as_slice()) {
        let (letters, desc) = flags(p);
        now.insert(
            p.addr.to_string(),
            json!({
                "ip": p.addr.ip().to_string(),
                "port": p.addr.port(),
                "client": p.client,
                "peer_id_client": p.client,
                "progress": p.progress,
                "dl_speed": p.rate_to_us,
                "up_speed": p.rate_to_peer,
                "downloaded": 0,
                "uploaded": 0,
                "connection": if p.utp { "μTP" } else { "BT" },
                "flags": letters,
                "flags_desc": desc,
                "relevance": (1.0 - p.progress).max(0.0),
                "files": "",
            }),
        );
    }
    let asked = rid(c);
    let mut state = c.qbt.take_sync(&c.sid);
    let base = (asked > 0)
        .then(|| state.peers.iter().find(|(r, _)| *r == asked).cloned())
        .flatten();
    let rid = next_rid(state.peers_rid);
    let mut out = Map::new();
    out.insert("rid".into(), json!(rid));
    out.insert("show_flags".into(), json!(true));
    match &base {
        None => {
            out.insert("full_update".into(), json!(true));
            out.insert("peers".into(), Value::Object(now.clone()));
        }
        Some((_, then)) => {
            let (changed, removed) = diff_maps(then, &now, true);
            if !changed.is_empty() {
                out.insert("peers".into(), Value::Object(changed));
            }
            if !removed.is_empty() {
                out.insert("peers_removed".into(), json!(removed));
            }
        }
    }
    state.peers = base.into_iter().chain([(rid, now)]).collect();
    state.peers_rid = rid;
    c.qbt.put_sync(&c.sid, state);
    Ok(Reply::Json(Value::Object(out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(torrents: Value, tags: &[&str]) -> Snapshot {
        Snapshot {
            torrents: torrents.as_object().unwrap().clone(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            ..Snapshot::default()
        }
    }

    #[test]
    fn a_partial_update_carries_only_what_changed() {
        let a = snap(
            json!({"h1": {"name": "a", "state": "stalledDL"}, "h2": {"name": "b"}}),
            &["x"],
        );
        let b = snap(
            json!({"h1": {"name": "a", "state": "uploading"}, "h3": {"name": "c"}}),
            &["y"],
        );
        let full = answer(1, None, &a);
        assert_eq!(full["full_update"], true);
        assert_eq!(full["torrents"]["h2"]["name"], "b");
        let d = answer(2, Some(&a), &b);
        assert_eq!(
            d,
            json!({"rid": 2, "torrents": {"h1": {"state": "uploading"}, "h3": {"name": "c"}},
                   "torrents_removed": ["h2"], "tags": ["y"], "tags_removed": ["x"]})
        );
        assert_eq!(answer(3, Some(&b), &b), json!({"rid": 3}));
    }

    #[test]
    fn rids_cycle() {
        assert_eq!(next_rid(0), 1);
        assert_eq!(next_rid(1_000_000), 1);
    }
}
