//! The daemon's download queue, as transmission-daemon has it: with a queue of two, two of
//! five torrents download and three wait (status 3) in their order; `queue-move-top`
//! changes who is next; a stopped torrent's slot goes to the next; stalled torrents give
//! their slots up; the places survive a restart; qBittorrent's API moves the same queue
//! and shows it; bad settings are refused, naming them, and change nothing.
//!
//! Most torrents here have no peer, so none completes and none moves data: which run and
//! which wait is the queue's doing alone; one test has a seed, and each download that
//! completes hands its slot to the next. The stall time is counted in seconds
//! (`SHARE_QUEUE_STALLED_SECS`, for tests) instead of `queue-stalled-minutes`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use crate::daemon::{
    base64_encode, http, seed_all, torrent_of, tracker, Answer, Daemon, Rpc, TIMEOUT,
};
use crate::util::*;

/// How long a queue decision may take to show (the daemon's tick is a second).
const SOON: Duration = Duration::from_secs(30);

fn start(d: &Dir) -> Daemon {
    let mut cmd = share();
    cmd.env("SHARE_QUEUE_STALLED_SECS", "2");
    Daemon::start_with(cmd, "127.0.0.1:0", &d.join("dl"), &d.join("state"), &[])
}

/// Status and queue position of each torrent, by id.
fn queue(rpc: &mut Rpc) -> BTreeMap<u64, (u64, u64)> {
    rpc.torrents(&["id", "status", "queuePosition"])
        .iter()
        .map(|t| {
            let n = |k: &str| t[k].as_u64().unwrap_or_else(|| panic!("{k} in {t}"));
            (n("id"), (n("status"), n("queuePosition")))
        })
        .collect()
}

/// Waits until every torrent's status is as `want` says (by id), or panics with the queue.
fn wait_status(rpc: &mut Rpc, what: &str, want: &[(u64, u64)]) -> BTreeMap<u64, (u64, u64)> {
    let deadline = std::time::Instant::now() + SOON;
    loop {
        let q = queue(rpc);
        if want
            .iter()
            .all(|(id, s)| q.get(id).map(|x| x.0) == Some(*s))
        {
            return q;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}: (status, queuePosition) by id: {q:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn positions(q: &BTreeMap<u64, (u64, u64)>) -> Vec<(u64, u64)> {
    q.iter().map(|(id, (_, p))| (*id, *p)).collect()
}

/// The daemon's page as headless Chromium renders it after its first polls (at most a
/// minute: `timeout` ends it).
fn web_page(addr: SocketAddr) -> String {
    let profile = Dir::new();
    let out = run(std::process::Command::new("timeout")
        .args([
            "60",
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--virtual-time-budget=5000", "--dump-dom"])
        .arg(format!("http://{addr}/")));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn qbt(addr: SocketAddr, path: &str, body: &str) -> Answer {
    http(
        addr,
        &format!(
            "POST /api/v2/{path} HTTP/1.1\nHost: {addr}\nContent-Type: application/x-www-form-urlencoded"
        ),
        body.as_bytes(),
    )
}

fn qbt_ok(addr: SocketAddr, path: &str, body: &str) -> Answer {
    let a = qbt(addr, path, body);
    assert_eq!(
        a.status,
        200,
        "{path} {body}: {}",
        String::from_utf8_lossy(&a.body)
    );
    a
}

fn url(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Five small torrents of their own content (nobody has it).
fn five_torrents(d: &Dir) -> Vec<Vec<u8>> {
    (1..=5)
        .map(|i| {
            let src = d.data_file(&format!("src/t{i}/data.bin"), 40_000 + i, i as u64);
            let t = make_torrent(d, src.parent().unwrap(), 16384, &[]);
            std::fs::read(&t).unwrap()
        })
        .collect()
}

fn add_all(rpc: &mut Rpc, torrents: &[Vec<u8>]) -> Vec<u64> {
    torrents
        .iter()
        .map(|t| {
            let a = rpc.ok("torrent-add", json!({"metainfo": base64_encode(t)}));
            a["torrent-added"]["id"].as_u64().unwrap()
        })
        .collect()
}

#[test]
fn two_of_five_download_three_wait_in_order_move_top_stalls_and_restart() {
    let d = Dir::new();
    let torrents = five_torrents(&d);
    let mut daemon = start(&d);
    let mut rpc = daemon.client();
    rpc.ok(
        "session-set",
        json!({"download-queue-enabled": true, "download-queue-size": 2, "queue-stalled-enabled": false}),
    );
    let ids = add_all(&mut rpc, &torrents);
    assert_eq!(ids, [1, 2, 3, 4, 5]);

    // Two download, three wait, in the order they came.
    let q = wait_status(
        &mut rpc,
        "two downloading, three queued",
        &[(1, 4), (2, 4), (3, 3), (4, 3), (5, 3)],
    );
    assert_eq!(positions(&q), [(1, 0), (2, 1), (3, 2), (4, 3), (5, 4)]);
    let waiting = rpc.ok(
        "torrent-get",
        json!({"ids": [3, 4, 5], "fields": ["peersConnected", "isStalled"]}),
    );
    for t in waiting["torrents"].as_array().unwrap() {
        assert_eq!(t["peersConnected"], 0, "{t}");
    }
    // The web page shows who waits, and where.
    if require("chromium", "chromium") {
        let page = web_page(daemon.rpc);
        for n in 3..=5 {
            assert!(page.contains(&format!("Queued to download #{n}")), "{page}");
        }
        assert_eq!(page.matches("Queued to download").count(), 3, "{page}");
    }

    // The last moves to the top: it is next, and nobody running is put back.
    rpc.ok("queue-move-top", json!({"ids": [5]}));
    let q = queue(&mut rpc);
    assert_eq!(positions(&q), [(1, 1), (2, 2), (3, 3), (4, 4), (5, 0)]);
    assert_eq!(q[&1].0, 4);
    assert_eq!(q[&5].0, 3);
    // Moves up, down and to the bottom, as Transmission makes them.
    rpc.ok("queue-move-down", json!({"ids": [5]}));
    rpc.ok("queue-move-up", json!({"ids": [5]}));
    rpc.ok("queue-move-bottom", json!({"ids": [1]}));
    rpc.ok("queue-move-up", json!({"ids": [1]}));
    let q = queue(&mut rpc);
    assert_eq!(positions(&q), [(1, 3), (2, 1), (3, 2), (4, 4), (5, 0)]);
    rpc.ok("torrent-set", json!({"ids": [1], "queuePosition": 0}));
    let q = queue(&mut rpc);
    assert_eq!(positions(&q), [(1, 0), (2, 2), (3, 3), (4, 4), (5, 1)]);

    // A stopped torrent gives its slot to the first waiting by position: 5, not 3.
    rpc.ok("torrent-stop", json!({"ids": [1]}));
    wait_status(
        &mut rpc,
        "5 taking 1's slot",
        &[(1, 0), (2, 4), (5, 4), (3, 3), (4, 3)],
    );
    // Started again, 1 waits: the queue is full.
    rpc.ok("torrent-start", json!({"ids": [1]}));
    wait_status(&mut rpc, "1 waiting", &[(1, 3), (2, 4), (5, 4)]);

    // Stalled torrents (nothing moved for the stall time) do not count: those waiting start.
    rpc.ok("session-set", json!({"queue-stalled-enabled": true}));
    wait_status(
        &mut rpc,
        "the stalled giving their slots up",
        &[(1, 4), (2, 4), (3, 4), (4, 4), (5, 4)],
    );
    let stalled = rpc.ok("torrent-get", json!({"ids": [2], "fields": ["isStalled"]}));
    assert_eq!(stalled["torrents"][0]["isStalled"], true);

    // The places, and the settings, survive a restart; the queue decides again by them.
    rpc.ok("session-set", json!({"queue-stalled-enabled": false}));
    rpc.ok("torrent-stop", json!({"ids": [2]}));
    let before = positions(&queue(&mut rpc));
    daemon.proc.stop();
    let daemon = start(&d);
    let mut rpc = daemon.client();
    let q = wait_status(
        &mut rpc,
        "the first two by position running after the restart",
        &[(1, 4), (5, 4), (2, 0), (3, 3), (4, 3)],
    );
    assert_eq!(positions(&q), before);
    let s = rpc.ok("session-get", json!({"fields": ["download-queue-enabled", "download-queue-size", "queue-stalled-enabled", "queue-stalled-minutes"]}));
    assert_eq!(
        s,
        json!({"download-queue-enabled": true, "download-queue-size": 2, "queue-stalled-enabled": false, "queue-stalled-minutes": 30})
    );

    // A removed torrent closes the gap; its slot goes to the next.
    rpc.ok("torrent-remove", json!({"ids": [1]}));
    let q = wait_status(&mut rpc, "3 taking 1's slot", &[(5, 4), (3, 4), (4, 3)]);
    assert_eq!(positions(&q), [(2, 1), (3, 2), (4, 3), (5, 0)]);
    // torrent-start-now bypasses the queue.
    rpc.ok("torrent-start-now", json!({"ids": [4]}));
    wait_status(
        &mut rpc,
        "4 started past the queue",
        &[(4, 4), (3, 4), (5, 4)],
    );
    // The queue switched off: everything started runs.
    rpc.ok("torrent-start", json!({"ids": [2]}));
    wait_status(&mut rpc, "2 waiting", &[(2, 3)]);
    rpc.ok("session-set", json!({"download-queue-enabled": false}));
    wait_status(
        &mut rpc,
        "everything running",
        &[(2, 4), (3, 4), (4, 4), (5, 4)],
    );
}

#[test]
fn qbittorrent_moves_the_same_queue_and_shows_it() {
    let d = Dir::new();
    let torrents = five_torrents(&d);
    let daemon = start(&d);
    let mut rpc = daemon.client();
    let hashes: Vec<String> = {
        add_all(&mut rpc, &torrents);
        rpc.torrents(&["id", "hashString"])
            .iter()
            .map(|t| t["hashString"].as_str().unwrap().to_string())
            .collect()
    };
    let addr = daemon.rpc;

    // Off: the moves are refused (409, as qBittorrent), priorities are 0.
    let a = qbt(addr, "torrents/topPrio", &format!("hashes={}", hashes[4]));
    assert_eq!(
        (a.status, String::from_utf8_lossy(&a.body).as_ref()),
        (409, "Torrent queueing must be enabled")
    );
    let info = qbt_ok(addr, "torrents/info", "").json();
    assert!(
        info.as_array().unwrap().iter().all(|t| t["priority"] == 0),
        "{info}"
    );

    // qBittorrent's preferences set the queue the Transmission RPC shows.
    qbt_ok(
        addr,
        "app/setPreferences",
        &format!(
            "json={}",
            url(
                r#"{"queueing_enabled":true,"max_active_downloads":2,"max_active_uploads":-1,"dont_count_slow_torrents":false}"#
            )
        ),
    );
    let s = rpc.ok("session-get", json!({"fields": ["download-queue-enabled", "download-queue-size", "seed-queue-enabled", "queue-stalled-enabled"]}));
    assert_eq!(
        s,
        json!({"download-queue-enabled": true, "download-queue-size": 2, "seed-queue-enabled": false, "queue-stalled-enabled": false})
    );
    let p = qbt_ok(addr, "app/preferences", "").json();
    for (k, v) in [
        ("queueing_enabled", json!(true)),
        ("max_active_downloads", json!(2)),
        ("max_active_uploads", json!(-1)),
        ("max_active_torrents", json!(-1)),
        ("dont_count_slow_torrents", json!(false)),
    ] {
        assert_eq!(p[k], v, "{k}");
    }
    // Torrents already running stay running (Transmission's rule); stopped and started
    // again, three wait.
    rpc.ok("torrent-stop", json!({}));
    rpc.ok("torrent-start", json!({"ids": [1, 2, 3, 4, 5]}));
    wait_status(
        &mut rpc,
        "two downloading, three queued",
        &[(1, 4), (2, 4), (3, 3), (4, 3), (5, 3)],
    );
    let by_hash = |addr| -> BTreeMap<String, (String, u64)> {
        qbt_ok(addr, "torrents/info", "")
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["hash"].as_str().unwrap().to_string(),
                    (
                        t["state"].as_str().unwrap().to_string(),
                        t["priority"].as_u64().unwrap(),
                    ),
                )
            })
            .collect()
    };
    let info = by_hash(addr);
    let prio: Vec<u64> = hashes.iter().map(|h| info[h].1).collect();
    assert_eq!(prio, [1, 2, 3, 4, 5]);
    let states: Vec<&str> = hashes.iter().map(|h| info[h].0.as_str()).collect();
    assert_eq!(
        &states[2..],
        ["queuedDL", "queuedDL", "queuedDL"],
        "{states:?}"
    );
    assert!(
        states[..2]
            .iter()
            .all(|s| s.ends_with("DL") && !s.starts_with("queued")),
        "{states:?}"
    );

    // The prio endpoints move the queue the Transmission RPC shows.
    qbt_ok(addr, "torrents/topPrio", &format!("hashes={}", hashes[4]));
    assert_eq!(
        positions(&queue(&mut rpc)),
        [(1, 1), (2, 2), (3, 3), (4, 4), (5, 0)]
    );
    qbt_ok(
        addr,
        "torrents/bottomPrio",
        &format!("hashes={}|{}", hashes[0], hashes[1]),
    );
    assert_eq!(
        positions(&queue(&mut rpc)),
        [(1, 3), (2, 4), (3, 1), (4, 2), (5, 0)]
    );
    qbt_ok(
        addr,
        "torrents/increasePrio",
        &format!("hashes={}", hashes[1]),
    );
    assert_eq!(
        positions(&queue(&mut rpc)),
        [(1, 4), (2, 3), (3, 1), (4, 2), (5, 0)]
    );
    qbt_ok(
        addr,
        "torrents/decreasePrio",
        &format!("hashes={}", hashes[4]),
    );
    assert_eq!(
        positions(&queue(&mut rpc)),
        [(1, 4), (2, 3), (3, 0), (4, 2), (5, 1)]
    );
    let info = by_hash(addr);
    let prio: Vec<u64> = hashes.iter().map(|h| info[h].1).collect();
    assert_eq!(prio, [5, 4, 1, 3, 2]);
    // A stopped torrent's slot goes to the first waiting: 3.
    rpc.ok("torrent-stop", json!({"ids": [1]}));
    wait_status(&mut rpc, "3 taking 1's slot", &[(3, 4), (4, 3), (5, 3)]);

    // Force start bypasses the queue.
    qbt_ok(
        addr,
        "torrents/setForceStart",
        &format!("hashes={}&value=true", hashes[4]),
    );
    wait_status(&mut rpc, "5 forced", &[(5, 4), (4, 3)]);
    assert_eq!(by_hash(addr)[&hashes[4]].0, "forcedDL");

    // Bad values: 400, naming them, nothing changed.
    let before = qbt_ok(addr, "app/preferences", "").json();
    for bad in [
        r#"{"max_active_downloads":-5}"#,
        r#"{"max_active_downloads":"x"}"#,
        r#"{"queueing_enabled":"yes"}"#,
        r#"{"max_active_torrents":3}"#,
        r#"{"slow_torrent_inactive_timer":90}"#,
    ] {
        let a = qbt(addr, "app/setPreferences", &format!("json={}", url(bad)));
        let key = bad.split('"').nth(1).unwrap();
        assert_eq!(a.status, 400, "{bad}");
        assert!(
            String::from_utf8_lossy(&a.body).contains(key),
            "{bad}: {}",
            String::from_utf8_lossy(&a.body)
        );
    }
    assert_eq!(qbt_ok(addr, "app/preferences", "").json(), before);
}

#[test]
fn queue_settings_and_moves_with_bad_arguments_are_refused_naming_them() {
    let d = Dir::new();
    let torrents = five_torrents(&d);
    let daemon = start(&d);
    let mut rpc = daemon.client();
    add_all(&mut rpc, &torrents[..2]);
    let keys = [
        "download-queue-enabled",
        "download-queue-size",
        "seed-queue-enabled",
        "seed-queue-size",
        "queue-stalled-enabled",
        "queue-stalled-minutes",
    ];
    let before = rpc.ok("session-get", json!({ "fields": keys }));
    for (bad, named) in [
        (
            json!({"download-queue-size": -1}),
            "download-queue-size: must be a whole number from 0",
        ),
        (
            json!({"seed-queue-size": 2.5}),
            "seed-queue-size: must be a whole number",
        ),
        (
            json!({"queue-stalled-minutes": "ten"}),
            "queue-stalled-minutes: must be a whole number",
        ),
        (
            json!({"download-queue-enabled": 2}),
            "download-queue-enabled: must be true or false",
        ),
        (
            json!({"seed-queue-enabled": "on"}),
            "seed-queue-enabled: must be true or false",
        ),
    ] {
        let mut args = bad.as_object().unwrap().clone();
        // A good change beside it is not made either.
        args.insert("queue-stalled-enabled".into(), json!(false));
        let v = rpc.call("session-set", Value::Object(args));
        let result = v["result"].as_str().unwrap();
        assert!(result.contains(named), "{bad} gave: {result}");
        assert_eq!(
            rpc.ok("session-get", json!({ "fields": keys })),
            before,
            "{bad} changed something"
        );
    }
    let q = queue(&mut rpc);
    for bad in [json!(-1), json!("first"), json!(1.5)] {
        let v = rpc.call(
            "torrent-set",
            json!({"ids": [2], "queuePosition": bad, "labels": ["x"]}),
        );
        let result = v["result"].as_str().unwrap();
        assert!(result.contains("queuePosition"), "{bad} gave: {result}");
    }
    let v = rpc.call("queue-move-top", json!({"ids": ["not-a-hash"]}));
    assert!(v["result"].as_str().unwrap().contains("invalid id"), "{v}");
    assert_eq!(queue(&mut rpc), q);
    let labels = rpc.ok("torrent-get", json!({"ids": [2], "fields": ["labels"]}));
    assert_eq!(labels["torrents"][0]["labels"], json!([]));
    // Past the end is the end, as in Transmission.
    rpc.ok("torrent-set", json!({"ids": [1], "queuePosition": 99}));
    assert_eq!(positions(&queue(&mut rpc)), [(1, 1), (2, 0)]);
}

#[test]
fn a_finished_download_gives_its_slot_to_the_next_and_those_waiting_hold_no_peers() {
    let d = Dir::new();
    let (_tracker, announce) = tracker();
    let files: Vec<PathBuf> = (1..=3)
        .map(|i| {
            let f = d.data_file(&format!("src/f{i}.bin"), 300_000 + i, 20 + i as u64);
            torrent_of(&d, &f, &format!("f{i}.torrent"), 16384, &announce)
        })
        .collect();
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let _seed = seed_all(&d, &refs);
    let daemon = start(&d);
    let mut rpc = daemon.client();
    // One at a time, slow enough to be seen downloading.
    rpc.ok(
        "session-set",
        json!({"download-queue-enabled": true, "download-queue-size": 1, "queue-stalled-enabled": false,
               "speed-limit-down": 150, "speed-limit-down-enabled": true}),
    );
    let torrents: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    add_all(&mut rpc, &torrents);
    let fields = ["id", "status", "peersConnected", "percentDone", "doneDate"];
    let t = rpc.wait_for(
        "the first downloading from the seed",
        &fields,
        TIMEOUT,
        |t| {
            t[0]["status"] == 4
                && t[0]["peersConnected"].as_u64() > Some(0)
                && t[0]["percentDone"].as_f64() < Some(1.0)
        },
    );
    for w in &t[1..] {
        assert_eq!(
            (w["status"].as_u64(), w["peersConnected"].as_u64()),
            (Some(3), Some(0)),
            "{t:?}"
        );
    }
    // Each, complete, seeds on and gives its slot to the next.
    let t = rpc.wait_for("all three complete", &fields, TIMEOUT, |t| {
        t.iter().all(|x| {
            x["percentDone"].as_f64() == Some(1.0)
                && x["status"] == 6
                && x["doneDate"].as_i64() > Some(0)
        })
    });
    let done: Vec<i64> = t.iter().map(|x| x["doneDate"].as_i64().unwrap()).collect();
    assert!(done[0] <= done[1] && done[1] <= done[2], "{t:?}");
    for (i, f) in files.iter().enumerate() {
        let name = format!("f{}.bin", i + 1);
        assert_eq!(
            std::fs::read(d.join("dl").join(&name)).unwrap(),
            std::fs::read(d.join("src").join(&name)).unwrap(),
            "{}",
            f.display()
        );
    }
}
