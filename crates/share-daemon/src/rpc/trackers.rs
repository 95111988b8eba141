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
    fn sitename_is_the_label_before_the_top_level_domain() {
        assert_eq!(
            sitename("http://tracker.example.org:80/announce"),
            "example"
        );
        assert_eq!(sitename("udp://127.0.0.1:2/announce"), "127.0.0.1");
        assert_eq!(sitename("http://localhost:5/announce"), "localhost");
    }
}
