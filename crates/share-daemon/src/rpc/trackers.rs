//! `trackers`, `trackerStats` and `trackerList` of `torrent-get`: a torrent's trackers by
//! tier (its metainfo's, or a magnet's `tr` each in a tier of its own, as the engine
//! announces them), and for each what its torrent's tracker client last did there (the
//! engine's tracker board). `trackerStats` carries Transmission's 26 keys with its types,
//! and 4.0's `sitename`.
//!
//! share announces, tier by tier, to the first tracker that answers (BEP 12); a tracker
//! that was not tried in the latest round is a backup (`isBackup`), with no planned
//! announce. share does not scrape: the scrape fields say it never did, and the seeder and
//! leecher counts come from the announce answers (`-1` when unknown), as Transmission fills
//! them too.

use serde_json::{json, Value};
use share_engine::TrackerStatus;

use crate::registry::Entry;

/// A torrent's tracker URLs with their tiers, in order (their place is their `id`).
pub fn list(e: &Entry) -> Vec<(usize, String)> {
    match (&e.meta, &e.magnet) {
        (Some(m), _) => m
            .trackers
            .iter()
            .enumerate()
            .flat_map(|(t, urls)| urls.iter().map(move |u| (t, u.clone())))
            .collect(),
        (None, Some(m)) => m.trackers.iter().cloned().enumerate().collect(),
        _ => Vec::new(),
    }
}

/// `trackers`: announce, id, scrape, tier (and 4.0's sitename).
pub fn trackers(e: &Entry) -> Value {
    json!(list(e)
        .into_iter()
        .enumerate()
        .map(|(id, (tier, url))| json!({
            "announce": url,
            "id": id,
            "scrape": scrape_url(&url),
            "tier": tier,
            "sitename": sitename(&url),
        }))
        .collect::<Vec<_>>())
}

/// `trackerList`: the URLs one per line, a blank line between tiers.
pub fn tracker_list(e: &Entry) -> String {
    let mut out = String::new();
    let mut last = None;
    for (tier, url) in list(e) {
        if let Some(t) = last {
            out.push_str(if t == tier { "\n" } else { "\n\n" });
        }
        out.push_str(&url);
        last = Some(tier);
    }
    out
}

/// Transmission's announce states (also its scrape states).
const INACTIVE: u8 = 0;
const WAITING: u8 = 1;
const ACTIVE: u8 = 3;

/// `trackerStats`: each tracker with what was last done there. `running`: the torrent's
/// task is running and not paused (else nothing is planned anywhere).
pub fn stats(e: &Entry, running: bool) -> Value {
    let board = e.stats().map(|s| s.trackers.get());
    let known = |url: &str| -> Option<TrackerStatus> {
        board.as_ref()?.iter().find(|t| t.url == url).cloned()
    };
    let any_in_use = board.as_ref().is_some_and(|b| b.iter().any(|t| t.in_use));
    json!(list(e)
        .into_iter()
        .enumerate()
        .map(|(id, (tier, url))| {
            let s = known(&url).unwrap_or_default();
            // Before any round, the first tracker is the one in line.
            let in_use = s.in_use || (!any_in_use && id == 0);
            let state = match (running, s.announcing, in_use && s.next_announce > 0) {
                (false, _, _) => INACTIVE,
                (true, true, _) => ACTIVE,
                (true, false, true) => WAITING,
                _ => INACTIVE,
            };
            let count = |n: Option<u32>| n.map_or(-1, i64::from);
            json!({
                "announce": url,
                "announceState": state,
                "downloadCount": -1,
                "hasAnnounced": s.last_announce != 0,
                "hasScraped": false,
                "host": host(&url),
                "id": id,
                "isBackup": !in_use,
                "lastAnnouncePeerCount": s.last_peer_count,
                "lastAnnounceResult": s.last_result,
                "lastAnnounceStartTime": s.last_announce_start,
                "lastAnnounceSucceeded": s.last_succeeded,
                "lastAnnounceTime": s.last_announce,
                "lastAnnounceTimedOut": s.last_timed_out,
                "lastScrapeResult": "",
                "lastScrapeStartTime": 0,
                "lastScrapeSucceeded": false,
                "lastScrapeTime": 0,
                "lastScrapeTimedOut": false,
                "leecherCount": count(s.leechers),
                "nextAnnounceTime": if state == WAITING { s.next_announce } else { 0 },
                "nextScrapeTime": 0,
                "scrape": scrape_url(&url),
                "scrapeState": INACTIVE,
                "seederCount": count(s.seeders),
                "sitename": sitename(&url),
                "tier": tier,
            })
        })
        .collect::<Vec<_>>())
}

/// The scrape URL Transmission derives (`/announce` → `/scrape`, UDP too), `""` if none.
fn scrape_url(url: &str) -> String {
    share_core::tracker::http::scrape_url(url).unwrap_or_default()
}

/// A URL's scheme, host and port (the default port of the scheme when it names none).
fn parts(url: &str) -> Option<(String, String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme.is_empty()
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next()?;
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        (format!("[{h}]"), after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (hostport.to_owned(), None),
        }
    };
    if host.is_empty() || host == "[]" {
        return None;
    }
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => match scheme.as_str() {
            "https" => 443,
            "ftp" => 21,
            _ => 80,
        },
    };
    Some((scheme, host.to_ascii_lowercase(), port))
}

/// `host` as Transmission shows it: `scheme://host:port`, the port always there.
pub fn host(url: &str) -> String {
    match parts(url) {
        Some((scheme, host, port)) => format!("{scheme}://{host}:{port}"),
        None => "invalid://invalid:0".into(),
    }
}

/// 4.0's `sitename`: the label before the top-level domain (`tracker.example.org` →
/// `example`), or the host itself for an address or a one-label name.
pub fn sitename(url: &str) -> String {
    let Some((_, host, _)) = parts(url) else {
        return String::new();
    };
    if host.starts_with('[') || host.parse::<std::net::Ipv4Addr>().is_ok() {
        return host;
    }
    let labels: Vec<&str> = host.split('.').filter(|l| !l.is_empty()).collect();
    match labels.len() {
        0 => String::new(),
        1 => labels[0].to_owned(),
        n => labels[n - 2].to_owned(),
    }
}

/// Changes `torrent-set` makes to a torrent's trackers, as Transmission takes them:
/// `trackerList` (4.0: the whole list, a URL a line, a blank line between tiers),
/// `trackerAdd` (each URL a tier of its own, at the end), `trackerRemove` (ids, as
/// `trackers` numbers them) and `trackerReplace` (`[id, url, id, url, ...]`, each keeping
/// its tier), applied in that order.
#[derive(Debug, Default)]
pub struct Edit {
    list: Option<Vec<Vec<String>>>,
    add: Vec<String>,
    remove: Vec<usize>,
    replace: Vec<(usize, String)>,
}

/// A tracker URL share can announce to: HTTP(S) or UDP, with a host.
fn announce_url(v: &Value) -> Option<String> {
    let u = v.as_str()?.trim();
    let scheme_ok = ["http://", "https://", "udp://"]
        .iter()
        .any(|p| u.len() > p.len() && u[..p.len()].eq_ignore_ascii_case(p));
    (scheme_ok && u.len() <= 2048 && !u.chars().any(char::is_whitespace) && parts(u).is_some())
        .then(|| u.to_owned())
}

impl Edit {
    /// Reads the tracker arguments of a call (`None`: it has none).
    pub fn read(args: &serde_json::Map<String, Value>) -> Result<Option<Edit>, String> {
        let mut e = Edit::default();
        let mut any = false;
        if let Some(v) = args.get("trackerList").filter(|v| !v.is_null()) {
            any = true;
            let text = v.as_str().ok_or("trackerList: must be a string")?;
            let mut tiers: Vec<Vec<String>> = vec![Vec::new()];
            for line in text.lines().map(str::trim) {
                if line.is_empty() {
                    tiers.push(Vec::new());
                } else {
                    let url = announce_url(&Value::from(line))
                        .ok_or(format!("trackerList: {line:?} is not a tracker URL"))?;
                    tiers.last_mut().expect("one tier at least").push(url);
                }
            }
            tiers.retain(|t| !t.is_empty());
            e.list = Some(tiers);
        }
        let list = |k: &str| -> Result<Option<&Vec<Value>>, String> {
            match args.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Array(l)) if l.len() <= 1000 => Ok(Some(l)),
                Some(_) => Err(format!("{k}: must be a list")),
            }
        };
        if let Some(l) = list("trackerAdd")? {
            any = true;
            for v in l {
                e.add
                    .push(announce_url(v).ok_or(format!("trackerAdd: {v} is not a tracker URL"))?);
            }
        }
        if let Some(l) = list("trackerRemove")? {
            any = true;
            for v in l {
                e.remove.push(
                    v.as_u64()
                        .ok_or(format!("trackerRemove: {v} is not a tracker id"))?
                        as usize,
                );
            }
        }
        if let Some(l) = list("trackerReplace")? {
            any = true;
            if l.len() % 2 != 0 {
                return Err("trackerReplace: must hold pairs of id and URL".into());
            }
            for pair in l.chunks(2) {
                let id = pair[0]
                    .as_u64()
                    .ok_or(format!("trackerReplace: {} is not a tracker id", pair[0]))?;
                let url = announce_url(&pair[1])
                    .ok_or(format!("trackerReplace: {} is not a tracker URL", pair[1]))?;
                e.replace.push((id as usize, url));
            }
        }
        Ok(any.then_some(e))
    }

    /// The tiers after the edit of a torrent's `current` ones, or why it cannot be made.
    pub fn apply(&self, current: Vec<(usize, String)>) -> Result<Vec<Vec<String>>, String> {
        // (tier, url) in order; ids are places in this list.
        let mut flat: Vec<(usize, String)> = match &self.list {
            Some(tiers) => tiers
                .iter()
                .enumerate()
                .flat_map(|(t, urls)| urls.iter().map(move |u| (t, u.clone())))
                .collect(),
            None => current,
        };
        let has = |flat: &[(usize, String)], u: &str| flat.iter().any(|(_, x)| x == u);
        for url in &self.add {
            if has(&flat, url) {
                return Err(format!("trackerAdd: {url} is a tracker of it already"));
            }
            let tier = flat.iter().map(|(t, _)| t + 1).max().unwrap_or(0);
            flat.push((tier, url.clone()));
        }
        let mut gone: Vec<usize> = self.remove.clone();
        gone.sort_unstable();
        gone.dedup();
        if let Some(&bad) = gone.iter().find(|&&i| i >= flat.len()) {
            return Err(format!("trackerRemove: no tracker {bad}"));
        }
        for i in gone.into_iter().rev() {
            flat.remove(i);
        }
        for (id, url) in &self.replace {
            if *id >= flat.len() {
                return Err(format!("trackerReplace: no tracker {id}"));
            }
            if flat
                .iter()
                .enumerate()
                .any(|(i, (_, u))| i != *id && u == url)
            {
                return Err(format!("trackerReplace: {url} is a tracker of it already"));
            }
            flat[*id].1 = url.clone();
        }
        if let Some(tiers) = &self.list {
            let all: Vec<&String> = tiers.iter().flatten().collect();
            if (1..all.len()).any(|i| all[..i].contains(&all[i])) {
                return Err("trackerList: a URL is there twice".into());
            }
        }
        // Tiers renumbered from 0, in order, none empty.
        let mut tiers: Vec<Vec<String>> = Vec::new();
        let mut last = None;
        for (t, url) in flat {
            if last != Some(t) {
                tiers.push(Vec::new());
                last = Some(t);
            }
            tiers.last_mut().expect("pushed").push(url);
        }
        Ok(tiers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_is_scheme_host_and_port_as_transmission_shows_it() {
        assert_eq!(host("http://127.0.0.1:1/announce"), "http://127.0.0.1:1");
        assert_eq!(host("udp://127.0.0.1:2/announce"), "udp://127.0.0.1:2");
        assert_eq!(host("https://127.0.0.1/announce"), "https://127.0.0.1:443");
        assert_eq!(
            host("http://Tracker.Example.org/a?x=1"),
            "http://tracker.example.org:80"
        );
        assert_eq!(host("http://u:p@[::1]:6969/announce"), "http://[::1]:6969");
        assert_eq!(host("not a url"), "invalid://invalid:0");
        assert_eq!(host("http://:5/announce"), "invalid://invalid:0");
        assert_eq!(host("http://h:99999/"), "invalid://invalid:0");
    }

    #[test]
    fn tracker_edits_add_remove_replace_and_list_as_transmission_does() {
        let args = |v: Value| v.as_object().unwrap().clone();
        let now = vec![
            (0, "http://a/announce".to_string()),
            (0, "http://b/announce".into()),
            (1, "udp://c:1".into()),
        ];
        let e = Edit::read(&args(json!({"trackerAdd": ["http://d/announce"]})))
            .unwrap()
            .unwrap();
        assert_eq!(
            e.apply(now.clone()).unwrap(),
            vec![
                vec!["http://a/announce".to_string(), "http://b/announce".into()],
                vec!["udp://c:1".into()],
                vec!["http://d/announce".into()]
            ]
        );
        let e = Edit::read(&args(
            json!({"trackerRemove": [0, 2], "trackerReplace": [0, "http://e/announce"]}),
        ))
        .unwrap()
        .unwrap();
        assert_eq!(
            e.apply(now.clone()).unwrap(),
            vec![vec!["http://e/announce".to_string()]]
        );
        let e = Edit::read(&args(
            json!({"trackerList": "http://x/a\nhttp://y/a\n\nudp://z:2\n"}),
        ))
        .unwrap()
        .unwrap();
        assert_eq!(
            e.apply(now.clone()).unwrap(),
            vec![
                vec!["http://x/a".to_string(), "http://y/a".into()],
                vec!["udp://z:2".into()]
            ]
        );
        assert!(Edit::read(&args(json!({"nothing": 1}))).unwrap().is_none());
        for bad in [
            json!({"trackerAdd": ["ftp://x/a"]}),
            json!({"trackerAdd": ["not a url"]}),
            json!({"trackerRemove": ["x"]}),
            json!({"trackerReplace": [0]}),
            json!({"trackerList": 5}),
        ] {
            assert!(Edit::read(&args(bad.clone())).is_err(), "{bad}");
        }
        for bad in [
            json!({"trackerAdd": ["http://a/announce"]}),
            json!({"trackerRemove": [3]}),
            json!({"trackerReplace": [1, "http://a/announce"]}),
            json!({"trackerList": "http://x/a\nhttp://x/a"}),
        ] {
            let e = Edit::read(&args(bad.clone())).unwrap().unwrap();
            assert!(e.apply(now.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn sitename_is_the_label_before_the_top_level_domain() {
        assert_eq!(
            sitename("http://tracker.example.org:80/announce"),
            "example"
        );
        assert_eq!(sitename("udp://127.0.0.1:2/announce"), "127.0.0.1");
        assert_eq!(sitename("http://localhost:5/announce"), "localhost");
    }
}
