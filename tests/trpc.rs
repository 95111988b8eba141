//! The daemon's Transmission RPC without gaps: `session-get` and `torrent-get` compared key
//! by key and type by type with Debian's transmission-daemon 3.00 for the same torrents;
//! `session-set` and `torrent-set` that apply what they accept (a speed limit holds a
//! transfer, the alternative limits follow their schedule, the incomplete folder is used)
//! and refuse, naming it, what they cannot, changing nothing then; `torrent-rename-path` on
//! a complete torrent that goes on seeding; `trackerStats` as Transmission fills it; a
//! magnet whose fields agree with each other at every moment; `config-dir` holding each
//! torrent's metainfo.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::daemon::{base64_encode, seed_all, torrent_of, tracker, Daemon, Rpc, TIMEOUT};
use crate::util::*;

/// The 70 fields of Transmission 3.00's `torrent-get`.
const TD_FIELDS: &[&str] = &[
    "activityDate",
    "addedDate",
    "bandwidthPriority",
    "comment",
    "corruptEver",
    "creator",
    "dateCreated",
    "desiredAvailable",
    "doneDate",
    "downloadDir",
    "downloadLimit",
    "downloadLimited",
    "downloadedEver",
    "editDate",
    "error",
    "errorString",
    "eta",
    "etaIdle",
    "fileStats",
    "files",
    "hashString",
    "haveUnchecked",
    "haveValid",
    "honorsSessionLimits",
    "id",
    "isFinished",
    "isPrivate",
    "isStalled",
    "labels",
    "leftUntilDone",
    "magnetLink",
    "manualAnnounceTime",
    "maxConnectedPeers",
    "metadataPercentComplete",
    "name",
    "peer-limit",
    "peers",
    "peersConnected",
    "peersFrom",
    "peersGettingFromUs",
    "peersSendingToUs",
    "percentDone",
    "pieceCount",
    "pieceSize",
    "pieces",
    "priorities",
    "queuePosition",
    "rateDownload",
    "rateUpload",
    "recheckProgress",
    "secondsDownloading",
    "secondsSeeding",
    "seedIdleLimit",
    "seedIdleMode",
    "seedRatioLimit",
    "seedRatioMode",
    "sizeWhenDone",
    "startDate",
    "status",
    "torrentFile",
    "totalSize",
    "trackerStats",
    "trackers",
    "uploadLimit",
    "uploadLimited",
    "uploadRatio",
    "uploadedEver",
    "wanted",
    "webseeds",
    "webseedsSendingToUs",
];

/// What rpc-version 17 (Transmission 4.0) adds to `torrent-get`, with the JSON type 4.0
/// gives each (3.00 answers 0 for a name it does not know, so these are checked against
/// 4.0's specification instead).
const V17_FIELDS: &[(&str, &str)] = &[
    ("file-count", "int"),
    ("group", "string"),
    ("percentComplete", "number"),
    ("primary-mime-type", "string"),
    ("source", "string"),
    ("trackerList", "string"),
];

/// Fields Transmission gives as reals: it prints a whole real as an integer (`2`, `1`,
/// `0`), so only "a number" can be asked of them.
const REALS: &[&str] = &[
    "percentDone",
    "metadataPercentComplete",
    "recheckProgress",
    "seedRatioLimit",
    "uploadRatio",
    "progress",
    "percentComplete",
    "downloadSpeed",
    "uploadSpeed",
];

/// Differences share has on purpose, each with why. Anything else fails the comparison.
const ALLOWED: &[(&str, &str)] = &[
    (
        "session-get: extra rpc-version-semver",
        "share speaks rpc-version 17 (Transmission 4.0), which adds it",
    ),
    ("session-get: extra default-trackers", "rpc-version 17"),
    (
        "session-get: extra script-torrent-added-enabled",
        "rpc-version 17",
    ),
    (
        "session-get: extra script-torrent-added-filename",
        "rpc-version 17",
    ),
    (
        "session-get: extra script-torrent-done-seeding-enabled",
        "rpc-version 17",
    ),
    (
        "session-get: extra script-torrent-done-seeding-filename",
        "rpc-version 17",
    ),
    (
        "session-get: extra tcp-enabled",
        "Transmission 4.0 returns it too",
    ),
    (
        "torrent-get[].trackers[]: extra sitename",
        "rpc-version 17 adds sitename to trackers",
    ),
    (
        "torrent-get[].trackerStats[]: extra sitename",
        "rpc-version 17 adds sitename to trackerStats (27 keys)",
    ),
];

/// A JSON value's type as the comparison sees it.
fn kind(key: &str, v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) if REALS.contains(&key) => "number",
        Value::Number(n) if n.is_i64() || n.is_u64() => "int",
        Value::Number(_) => "real",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Compares `share` with `td` (Transmission's) key by key and type by type, recursively
/// (arrays by their first elements, when both have one); each difference is a line.
fn compare(path: &str, key: &str, td: &Value, share: &Value, out: &mut Vec<String>) {
    match (td, share) {
        (Value::Object(a), Value::Object(b)) => {
            for k in a.keys().filter(|k| !b.contains_key(*k)) {
                out.push(format!("{path}: missing {k}"));
            }
            for k in b.keys().filter(|k| !a.contains_key(*k)) {
                out.push(format!("{path}: extra {k}"));
            }
            for (k, v) in a {
                if let Some(w) = b.get(k) {
                    compare(&format!("{path}.{k}"), k, v, w, out);
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            if let (Some(x), Some(y)) = (a.first(), b.first()) {
                compare(&format!("{path}[]"), key, x, y, out);
            }
        }
        _ => {
            let (x, y) = (kind(key, td), kind(key, share));
            if x != y {
                out.push(format!(
                    "{path}: {y} where Transmission has {x} ({td} / {share})"
                ));
            }
        }
    }
}

/// Transmission 3.00's daemon on loopback only: its own configuration folder, RPC and
/// peer port on 127.0.0.1, no DHT, LPD, µTP, PEX, port mapping or blocklist. Stopped by
/// its process id when dropped.
struct Transmission {
    child: Child,
    rpc: SocketAddr,
    peer: SocketAddr,
    config: PathBuf,
}

impl Transmission {
    fn start(d: &Dir, download: &Path) -> Transmission {
        let config = d.join("td-config");
        std::fs::create_dir_all(&config).unwrap();
        std::fs::create_dir_all(download).unwrap();
        let (rpc_port, peer_port) = (free_port(), free_port());
        let settings = json!({
            "bind-address-ipv4": "127.0.0.1",
            "bind-address-ipv6": "::1",
            "blocklist-enabled": false,
            "blocklist-url": "http://127.0.0.1:9/blocklist",
            "dht-enabled": false,
            "download-dir": download,
            "lpd-enabled": false,
            "message-level": 1,
            "peer-port": peer_port,
            "peer-port-random-on-start": false,
            "pex-enabled": false,
            "port-forwarding-enabled": false,
            "rpc-authentication-required": false,
            "rpc-bind-address": "127.0.0.1",
            "rpc-host-whitelist-enabled": false,
            "rpc-port": rpc_port,
            "rpc-whitelist": "127.0.0.1",
            "rpc-whitelist-enabled": true,
            "scrape-paused-torrents-enabled": false,
            "utp-enabled": false,
            "watch-dir-enabled": false,
        });
        std::fs::write(config.join("settings.json"), settings.to_string()).unwrap();
        let child = Command::new("transmission-daemon")
            .args(["-f", "-g"])
            .arg(&config)
            .args([
                "--no-dht",
                "--no-lpd",
                "--no-portmap",
                "--no-blocklist",
                "--no-utp",
            ])
            .args(["-r", "127.0.0.1", "-i", "127.0.0.1", "-I", "::1"])
            .args(["-p", &rpc_port.to_string(), "-P", &peer_port.to_string()])
            .arg("-w")
            .arg(download)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start transmission-daemon");
        let td = Transmission {
            child,
            rpc: SocketAddr::from(([127, 0, 0, 1], rpc_port)),
            peer: SocketAddr::from(([127, 0, 0, 1], peer_port)),
            config,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(td.rpc).is_err() {
            assert!(
                Instant::now() < deadline,
                "transmission-daemon's RPC never answered"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        td
    }
}

impl Drop for Transmission {
    fn drop(&mut self) {
        signal(&self.child, "TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Adds the same torrents to a Transmission RPC server: `seeded` (its data in
/// `seed_dir`), `empty` (no data: downloading), and two magnets without metadata (one
/// paused, with a name and a tracker; one bare and running). Returns the ids in that order.
fn add_the_same(rpc: &mut Rpc, seeded: &Path, seed_dir: &Path, empty: &Path, magnets: [&str; 2]) {
    for (t, dir) in [(seeded, seed_dir), (empty, seed_dir)] {
        rpc.ok(
            "torrent-add",
            json!({
                "metainfo": base64_encode(&std::fs::read(t).unwrap()),
                "download-dir": dir,
            }),
        );
    }
    rpc.ok(
        "torrent-add",
        json!({"filename": magnets[0], "paused": true}),
    );
    rpc.ok("torrent-add", json!({"filename": magnets[1]}));
}

#[test]
fn session_get_and_torrent_get_have_transmission_daemons_keys_and_types() {
    if !require("transmission-daemon", "transmission-daemon") {
        return;
    }
    let d = Dir::new();
    let (_tracker, announce) = tracker();
    let udp = announce.replace("http://", "udp://");
    d.data_file("src/sample/a.bin", 2_000_003, 71);
    d.data_file("src/sample/sub/b.txt", 6_007, 72);
    let lone = d.data_file("other/lone.bin", 70_001, 73);
    let seeded = make_torrent(
        &d,
        &d.join("src/sample"),
        32768,
        &["-t", &announce, "-t", &udp, "--comment", "test comment"],
    );
    let seeded = {
        let to = d.join("sample.torrent");
        std::fs::rename(&seeded, &to).unwrap();
        to
    };
    let empty = torrent_of(&d, &lone, "lone.torrent", 32768, &announce);
    let hex = "0123456789abcdef0123456789abcdef01234567";
    let named = format!(
        "magnet:?xt=urn:btih:{hex}&dn=My+Magnet&tr={}",
        announce.replace(':', "%3A").replace('/', "%2F")
    );
    let bare = "magnet:?xt=urn:btih:89abcdef0123456789abcdef0123456789abcdef".to_string();

    // The same data in each one's folder.
    for dir in ["td-dl", "dl"] {
        std::fs::create_dir_all(d.join(dir)).unwrap();
        ok(Command::new("cp")
            .arg("-r")
            .arg(d.join("src"))
            .arg(d.join(dir)));
    }
    let td = Transmission::start(&d, &std::fs::canonicalize(d.join("td-dl")).unwrap());
    let daemon = Daemon::start(&d.join("dl"), &d.join("state"), &[]);
    let mut ours = daemon.client();
    let mut theirs = Rpc::new(td.rpc);
    let share_dir = std::fs::canonicalize(d.join("dl/src")).unwrap();
    let td_dir = std::fs::canonicalize(d.join("td-dl/src")).unwrap();
    add_the_same(&mut theirs, &seeded, &td_dir, &empty, [&named, &bare]);
    add_the_same(&mut ours, &seeded, &share_dir, &empty, [&named, &bare]);

    // Both seed the first torrent, with a peer each (a share fetch, held to 1 kB/s so that
    // it stays), and have announced to its trackers.
    let seeding = |rpc: &mut Rpc| {
        rpc.wait_for(
            "seeding and announced",
            &["status", "peersConnected", "trackerStats", "name"],
            TIMEOUT,
            |t| {
                let s = t.iter().find(|t| t["name"] == "sample");
                s.is_some_and(|s| {
                    s["status"] == 6
                        && s["peersConnected"].as_u64() >= Some(1)
                        && s["trackerStats"].as_array().is_some_and(|l| {
                            l.iter().any(|x| {
                                x["hasAnnounced"] == true && x["lastAnnounceSucceeded"] == true
                            })
                        })
                })
            },
        );
    };
    theirs.wait_for("Transmission's check", &["status", "name"], TIMEOUT, |t| {
        t.iter().any(|t| t["name"] == "sample" && t["status"] == 6)
    });
    let _f1 = start_fetch(
        &seeded,
        &d.join("f1"),
        &[td.peer],
        &["--max-download-rate", "1K"],
    );
    let _f2 = start_fetch(
        &seeded,
        &d.join("f2"),
        &[daemon.proc.addr],
        &["--max-download-rate", "1K"],
    );
    seeding(&mut theirs);
    seeding(&mut ours);

    let mut diffs = Vec::new();
    let a = theirs.ok("session-get", json!({}));
    let b = ours.ok("session-get", json!({}));
    compare("session-get", "", &a, &b, &mut diffs);
    let a = theirs.ok("session-stats", json!({}));
    let b = ours.ok("session-stats", json!({}));
    compare("session-stats", "", &a, &b, &mut diffs);

    let mut fields: Vec<&str> = TD_FIELDS.to_vec();
    fields.extend(V17_FIELDS.iter().map(|(f, _)| *f));
    let get = |rpc: &mut Rpc, fields: &[&str]| {
        let mut t = rpc.torrents(fields);
        t.sort_by_key(|t| t["hashString"].as_str().unwrap_or("").to_owned());
        t
    };
    let a = get(&mut theirs, TD_FIELDS);
    let b = get(&mut ours, &fields);
    assert_eq!(a.len(), 4, "{a:?}");
    assert_eq!(b.len(), 4, "{b:?}");
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x["hashString"], y["hashString"]);
        let mut y = y.clone();
        for (f, want) in V17_FIELDS {
            let got = kind(f, &y[*f]);
            assert!(
                got == *want || (*want == "number" && got != "string"),
                "{f}: {got}, 4.0 has {want}: {y}"
            );
            y.as_object_mut().unwrap().remove(*f);
        }
        compare("torrent-get[]", "", x, &y, &mut diffs);
        // Every element of the lists, not only the first.
        for list in ["trackers", "trackerStats", "files", "fileStats", "peers"] {
            for (i, e) in y[list].as_array().unwrap().iter().enumerate() {
                let mut one = Vec::new();
                if let Some(model) = x[list].as_array().and_then(|l| l.first()) {
                    compare(&format!("torrent-get[].{list}[]"), "", model, e, &mut one);
                }
                for line in one {
                    if !diffs.contains(&line) {
                        diffs.push(format!("{line} (element {i})"));
                    }
                }
            }
        }
    }
    diffs.sort();
    diffs.dedup();
    // What was compared, for the record: the peers lists were not empty on either side.
    let peers = |t: &[Value]| {
        t.iter()
            .map(|t| t["peers"].as_array().map_or(0, Vec::len))
            .sum::<usize>()
    };
    println!(
        "peers compared: Transmission {}, share {}",
        peers(&a),
        peers(&b)
    );
    assert!(peers(&a) > 0 && peers(&b) > 0, "no peer to compare");
    let stats = |t: &[Value]| {
        t.iter()
            .map(|t| t["trackerStats"].as_array().map_or(0, Vec::len))
            .sum::<usize>()
    };
    assert!(
        stats(&a) >= 3 && stats(&b) >= 3,
        "trackerStats: {} / {}",
        stats(&a),
        stats(&b)
    );
    let allowed: BTreeSet<&str> = ALLOWED.iter().map(|(d, _)| *d).collect();
    println!("differences from transmission-daemon 3.00:");
    for d in &diffs {
        let why = ALLOWED
            .iter()
            .find(|(a, _)| a == d)
            .map_or("NOT ALLOWED", |(_, w)| w);
        println!("  {d}: {why}");
    }
    let bad: Vec<&String> = diffs
        .iter()
        .filter(|d| !allowed.contains(d.as_str()))
        .collect();
    assert!(bad.is_empty(), "differences not allowed: {bad:#?}");
    println!(
        "the config folder of Transmission held {:?}",
        std::fs::read_dir(td.config.join("torrents")).map(|d| d.count())
    );
}

/// Bytes per second that a torrent received over `secs` seconds, by its `downloadedEver`.
fn rate_over(rpc: &mut Rpc, id: &Value, secs: f64) -> f64 {
    let read = |rpc: &mut Rpc| {
        let t = rpc.ok(
            "torrent-get",
            json!({"ids": [id], "fields": ["downloadedEver"]}),
        );
        t["torrents"][0]["downloadedEver"].as_f64().unwrap_or(0.0)
    };
    let (start, before) = (Instant::now(), read(rpc));
    std::thread::sleep(Duration::from_secs_f64(secs));
    (read(rpc) - before) / start.elapsed().as_secs_f64()
}

#[test]
fn a_speed_limit_set_through_session_set_shows_in_session_get_and_holds_a_transfer() {
    let d = Dir::new();
    let (_tracker, announce) = tracker();
    let big = d.data_file("src/big.bin", 12_000_017, 81);
    let t = torrent_of(&d, &big, "big.torrent", 65536, &announce);
    let _seed = seed_all(&d, &[&t]);
    let daemon = Daemon::start(&d.join("dl"), &d.join("state"), &[]);
    let mut rpc = daemon.client();

    rpc.ok(
        "session-set",
        json!({"speed-limit-down": 300, "speed-limit-down-enabled": true}),
    );
    let s = rpc.ok(
        "session-get",
        json!({"fields": ["speed-limit-down", "speed-limit-down-enabled"]}),
    );
    assert_eq!(
        s,
        json!({"speed-limit-down": 300, "speed-limit-down-enabled": true})
    );
    let added = rpc.ok(
        "torrent-add",
        json!({"metainfo": base64_encode(&std::fs::read(&t).unwrap())}),
    );
    let id = added["torrent-added"]["id"].clone();
    rpc.wait_for("the first bytes", &["downloadedEver"], TIMEOUT, |t| {
        t[0]["downloadedEver"].as_u64() > Some(100_000)
    });
    let limited = rate_over(&mut rpc, &id, 6.0);
    println!("held to 300 kB/s: {:.0} bytes/s", limited);
    assert!(limited < 3.0 * 300_000.0, "not held: {limited:.0} bytes/s");
    assert!(limited > 0.0, "nothing arrived");

    // Lifted: the rest comes at once.
    rpc.ok("session-set", json!({"speed-limit-down-enabled": false}));
    let s = rpc.ok(
        "session-get",
        json!({"fields": ["speed-limit-down", "speed-limit-down-enabled"]}),
    );
    assert_eq!(
        s,
        json!({"speed-limit-down": 300, "speed-limit-down-enabled": false})
    );
    let start = Instant::now();
    rpc.wait_for("the download", &["percentDone"], TIMEOUT, |t| {
        t[0]["percentDone"].as_f64() == Some(1.0)
    });
    println!(
        "the rest without the limit: {:.1} s",
        start.elapsed().as_secs_f64()
    );
    assert_same_file(&big, &d.join("dl/big.bin"));
}

#[test]
fn session_set_and_torrent_set_refuse_what_they_cannot_apply_naming_it_and_change_nothing() {
    let d = Dir::new();
    d.data_file("src/pair/a.bin", 100_003, 91);
    let t = make_torrent(&d, &d.join("src/pair"), 16384, &[]);
    let daemon = Daemon::start(&d.join("dl"), &d.join("state"), &[]);
    let mut rpc = daemon.client();
    let keys = [
        "speed-limit-up",
        "speed-limit-up-enabled",
        "pex-enabled",
        "peer-port",
        "alt-speed-enabled",
        "encryption",
    ];
    let before = rpc.ok("session-get", json!({ "fields": keys }));

    // Each of these fails the call, naming what it refuses; the good change beside it is
    // not made either.
    for (bad, named) in [
        (
            json!({"totally-unknown": 1}),
            "totally-unknown: unknown argument",
        ),
        (
            json!({"speed-limit-down": "abc"}),
            "speed-limit-down: must be a whole number",
        ),
        (
            json!({"speed-limit-down": 250.7}),
            "speed-limit-down: must be a whole number",
        ),
        (
            json!({"speed-limit-down-enabled": 2}),
            "speed-limit-down-enabled: must be true or false",
        ),
        (json!({"encryption": "bogus"}), "encryption: must be"),
        (
            json!({"peer-port": 1}),
            "peer-port: the listening port is bound at start",
        ),
        (
            json!({"dht-enabled": true}),
            "dht-enabled: the DHT node starts and stops with the daemon",
        ),
        (
            json!({"lpd-enabled": true}),
            "lpd-enabled: local service discovery",
        ),
        (
            json!({"rename-partial-files": true}),
            "rename-partial-files: share writes each file",
        ),
        (
            json!({"download-queue-size": -5}),
            "download-queue-size: must be a whole number from 0",
        ),
        (
            json!({"seed-queue-enabled": "maybe"}),
            "seed-queue-enabled: must be true or false",
        ),
        (
            json!({"queue-stalled-minutes": -1}),
            "queue-stalled-minutes: must be a whole number from 0",
        ),
        (json!({"version": "9"}), "version: it is read-only"),
        (json!({"download-dir": "/etc"}), "download-dir: "),
        (
            json!({"alt-speed-time-begin": 2000}),
            "alt-speed-time-begin: must be a whole number from 0 to 1440",
        ),
    ] {
        let mut args = bad.as_object().unwrap().clone();
        args.insert("speed-limit-up".into(), json!(77));
        args.insert("speed-limit-up-enabled".into(), json!(true));
        args.insert("pex-enabled".into(), json!(false));
        let v = rpc.call("session-set", Value::Object(args));
        let result = v["result"].as_str().unwrap();
        assert!(result.contains(named), "{bad} gave: {result}");
        assert_eq!(
            rpc.ok("session-get", json!({ "fields": keys })),
            before,
            "{bad} changed something"
        );
    }
    // Two refusals at once are both named.
    let v = rpc.call("session-set", json!({"peer-port": 2, "cache-size-mb": 64}));
    let result = v["result"].as_str().unwrap();
    assert!(
        result.contains("peer-port") && result.contains("cache-size-mb"),
        "{result}"
    );

    // What a settings dialog sends back unchanged is taken, read-only keys and all.
    let all = rpc.ok("session-get", json!({}));
    rpc.ok("session-set", all.clone());

    // What is applied shows in the next session-get.
    rpc.ok(
        "session-set",
        json!({
            "speed-limit-up": 77, "speed-limit-up-enabled": true,
            "alt-speed-up": 40, "alt-speed-down": 50,
            "pex-enabled": false, "encryption": "required", "utp-enabled": false,
            "start-added-torrents": false,
            "seedRatioLimit": "1.5", "seedRatioLimited": 1,
            "idle-seeding-limit": 12, "idle-seeding-limit-enabled": true,
            "download-queue-size": 0,
        }),
    );
    let s = rpc.ok("session-get", json!({}));
    for (k, v) in [
        ("speed-limit-up", json!(77)),
        ("speed-limit-up-enabled", json!(true)),
        ("alt-speed-up", json!(40)),
        ("alt-speed-down", json!(50)),
        ("pex-enabled", json!(false)),
        ("encryption", json!("required")),
        ("utp-enabled", json!(false)),
        ("start-added-torrents", json!(false)),
        ("seedRatioLimit", json!(1.5)),
        ("seedRatioLimited", json!(true)),
        ("idle-seeding-limit", json!(12)),
        ("idle-seeding-limit-enabled", json!(true)),
        ("download-queue-size", json!(0)),
    ] {
        assert_eq!(s[k], v, "{k} in {s}");
    }

    // The schedule of the alternative limits: a range that holds now switches them on at
    // once, one that does not switches them off (Transmission does the same when the
    // schedule changes, and at each of its edges after).
    rpc.ok(
        "session-set",
        json!({"alt-speed-time-enabled": true, "alt-speed-time-begin": 0, "alt-speed-time-end": 0, "alt-speed-time-day": 127}),
    );
    let s = rpc.ok(
        "session-get",
        json!({"fields": ["alt-speed-enabled", "alt-speed-time-enabled", "alt-speed-time-day"]}),
    );
    assert_eq!(
        s,
        json!({"alt-speed-enabled": true, "alt-speed-time-enabled": true, "alt-speed-time-day": 127})
    );
    rpc.ok("session-set", json!({"alt-speed-time-day": 0}));
    let s = rpc.ok("session-get", json!({"fields": ["alt-speed-enabled"]}));
    assert_eq!(s["alt-speed-enabled"], false);
    rpc.ok(
        "session-set",
        json!({"alt-speed-time-enabled": false, "alt-speed-enabled": true}),
    );
    let s = rpc.ok("session-get", json!({"fields": ["alt-speed-enabled"]}));
    assert_eq!(s["alt-speed-enabled"], true);
    // One schedule for both APIs: qBittorrent's scheduler keys set it too.
    let prefs = r#"json={"scheduler_enabled":false,"schedule_from_hour":22,"schedule_from_min":30,"schedule_to_hour":6,"schedule_to_min":0,"scheduler_days":1}"#;
    let a = crate::daemon::http(
        daemon.rpc,
        &format!("POST /api/v2/app/setPreferences HTTP/1.1\nHost: {}\nContent-Type: application/x-www-form-urlencoded", daemon.rpc),
        prefs.replace('{', "%7B").replace('}', "%7D").replace('"', "%22").replace(',', "%2C").replace(':', "%3A").as_bytes(),
    );
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let s = rpc.ok("session-get", json!({"fields": ["alt-speed-time-begin", "alt-speed-time-end", "alt-speed-time-day", "alt-speed-time-enabled"]}));
    assert_eq!(
        s,
        json!({"alt-speed-time-begin": 1350, "alt-speed-time-end": 360, "alt-speed-time-day": 62, "alt-speed-time-enabled": false})
    );
    rpc.ok("session-set", json!({"alt-speed-time-day": 0}));

    // start-added-torrents false: a torrent added without `paused` is stopped.
    let added = rpc.ok(
        "torrent-add",
        json!({"metainfo": base64_encode(&std::fs::read(&t).unwrap())}),
    );
    let id = added["torrent-added"]["id"].clone();
    let t0 = rpc.ok("torrent-get", json!({"ids": [id], "fields": ["status", "labels", "bandwidthPriority", "downloadLimit", "downloadLimited"]}));
    assert_eq!(t0["torrents"][0]["status"], 0, "{t0}");

    // torrent-set: all or nothing too.
    for (bad, named) in [
        (
            json!({"bandwidthPriority": 1}),
            "bandwidthPriority: share has no bandwidth priorities",
        ),
        (json!({"honorsSessionLimits": false}), "honorsSessionLimits"),
        (json!({"queuePosition": -1}), "queuePosition"),
        (
            json!({"trackerAdd": ["ftp://127.0.0.1:1/announce"]}),
            "trackerAdd: \"ftp://127.0.0.1:1/announce\" is not a tracker URL",
        ),
        (json!({"trackerRemove": [0]}), "trackerRemove: no tracker 0"),
        (
            json!({"location": "/tmp"}),
            "location: use torrent-set-location",
        ),
        (json!({"bogusKey": 5}), "bogusKey: unknown argument"),
        (json!({"peer-limit": "x"}), "peer-limit"),
        (json!({"files-wanted": [7]}), "beyond the torrent's files"),
        (json!({"labels": ["a,b"]}), "labels"),
    ] {
        let mut args = bad.as_object().unwrap().clone();
        args.insert("ids".into(), json!([id]));
        args.insert(
            "labels".into(),
            args.get("labels").cloned().unwrap_or(json!(["kept"])),
        );
        args.insert("downloadLimit".into(), json!(99));
        args.insert("downloadLimited".into(), json!(true));
        let v = rpc.call("torrent-set", Value::Object(args));
        let result = v["result"].as_str().unwrap();
        assert!(result.contains(named), "{bad} gave: {result}");
        let now = rpc.ok("torrent-get", json!({"ids": [id], "fields": ["status", "labels", "bandwidthPriority", "downloadLimit", "downloadLimited"]}));
        assert_eq!(now, t0, "{bad} changed something");
    }
    rpc.ok("torrent-set", json!({"ids": [id], "labels": ["kept"], "downloadLimit": 99, "downloadLimited": true, "bandwidthPriority": 0, "queuePosition": 0}));
    let now = rpc.ok(
        "torrent-get",
        json!({"ids": [id], "fields": ["labels", "downloadLimit", "downloadLimited"]}),
    );
    assert_eq!(
        now["torrents"][0],
        json!({"labels": ["kept"], "downloadLimit": 99, "downloadLimited": true})
    );
    rpc.ok(
        "torrent-set",
        json!({"ids": [id], "downloadLimited": false}),
    );
    let now = rpc.ok(
        "torrent-get",
        json!({"ids": [id], "fields": ["downloadLimit", "downloadLimited"]}),
    );
    assert_eq!(
        now["torrents"][0],
        json!({"downloadLimit": 99, "downloadLimited": false})
    );

    // The queue moves of a lone torrent leave it first (tests/queue.rs moves five).
    for method in [
        "queue-move-top",
        "queue-move-up",
        "queue-move-down",
        "queue-move-bottom",
    ] {
        rpc.ok(method, json!({"ids": [id]}));
    }
    let now = rpc.ok(
        "torrent-get",
        json!({"ids": [id], "fields": ["queuePosition"]}),
    );
    assert_eq!(now["torrents"][0]["queuePosition"], 0);
    // The settings survive a restart.
    let mut daemon = daemon;
    daemon.proc.stop();
    let daemon = Daemon::start(&d.join("dl"), &d.join("state"), &[]);
    let s = daemon.client().ok("session-get", json!({"fields": ["speed-limit-up", "speed-limit-up-enabled", "alt-speed-up", "start-added-torrents", "alt-speed-time-day"]}));
    assert_eq!(
        s,
        json!({"speed-limit-up": 77, "speed-limit-up-enabled": true, "alt-speed-up": 40, "start-added-torrents": false, "alt-speed-time-day": 0})
    );
}

#[test]
fn torrent_rename_path_renames_files_of_a_complete_torrent_which_keeps_seeding() {
    let d = Dir::new();
    let a = d.data_file("src/sample/a.bin", 600_007, 61);
    let b = d.data_file("src/sample/sub/b.txt", 90_001, 62);
    let t = make_torrent(&d, &d.join("src/sample"), 16384, &[]);
    std::fs::create_dir_all(d.join("dl")).unwrap();
    ok(Command::new("cp")
        .arg("-r")
        .arg(d.join("src/sample"))
        .arg(d.join("dl/")));
    let daemon = Daemon::start(&d.join("dl"), &d.join("state"), &[]);
    let mut rpc = daemon.client();
    let added = rpc.ok(
        "torrent-add",
        json!({"metainfo": base64_encode(&std::fs::read(&t).unwrap())}),
    );
    let id = added["torrent-added"]["id"].clone();
    let fields = [
        "status",
        "percentDone",
        "files",
        "name",
        "haveValid",
        "totalSize",
    ];
    rpc.wait_for("seeding", &fields, TIMEOUT, |t| t[0]["status"] == 6);

    let r = rpc.ok(
        "torrent-rename-path",
        json!({"ids": [id], "path": "sample/a.bin", "name": "renamed.bin"}),
    );
    assert_eq!(
        r,
        json!({"id": id, "path": "sample/a.bin", "name": "renamed.bin"})
    );
    let r = rpc.ok(
        "torrent-rename-path",
        json!({"ids": [id], "path": "sample/sub", "name": "folder"}),
    );
    assert_eq!(r["name"], "folder");
    let r = rpc.ok(
        "torrent-rename-path",
        json!({"ids": [id], "path": "sample", "name": "sample2"}),
    );
    assert_eq!(r["name"], "sample2");
    assert_same_file(&a, &d.join("dl/sample2/renamed.bin"));
    assert_same_file(&b, &d.join("dl/sample2/folder/b.txt"));
    assert!(!d.join("dl/sample").exists(), "the old folder stayed");

    // Refused, naming why, and nothing changes.
    for (path, name, why) in [
        ("sample2/renamed.bin", "folder", "exists"),
        ("sample2/nope", "x", "no file or folder"),
        ("sample2/renamed.bin", "a/b", "not a plain file name"),
        ("sample2/renamed.bin", "..", "not a plain file name"),
        ("sample2/renamed.bin", "", "not a plain file name"),
    ] {
        let v = rpc.call(
            "torrent-rename-path",
            json!({"ids": [id], "path": path, "name": name}),
        );
        assert!(
            v["result"].as_str().unwrap().contains(why),
            "{path} → {name:?}: {v}"
        );
    }
    let v = rpc.call(
        "torrent-rename-path",
        json!({"ids": [], "path": "sample2", "name": "x"}),
    );
    assert_eq!(v["result"], "torrent-rename-path requires 1 torrent", "{v}");

    let shown = rpc.wait_for("seeding again", &fields, TIMEOUT, |t| t[0]["status"] == 6);
    let names: Vec<&str> = shown[0]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["sample2/renamed.bin", "sample2/folder/b.txt"]);
    assert_eq!(shown[0]["name"], "sample2");
    assert_eq!(shown[0]["percentDone"].as_f64(), Some(1.0));
    assert_eq!(shown[0]["haveValid"], shown[0]["totalSize"]);

    // Another client fetches it from the renamed files, under the torrent's own names.
    let mut fetch = start_fetch(&t, &d.join("got"), &[daemon.proc.addr], &[]);
    let (code, _) = fetch.wait(TIMEOUT);
    assert_eq!(code, Some(0), "the fetch failed: {}", fetch.stderr());
    assert_same_file(&a, &d.join("got/sample/a.bin"));
    assert_same_file(&b, &d.join("got/sample/sub/b.txt"));

    // The names are kept: after a restart it seeds the renamed files, without a rehash
    // turning them into a download.
    let mut daemon = daemon;
    daemon.proc.stop();
    let daemon = Daemon::start(&d.join("dl"), &d.join("state"), &[]);
    let mut rpc = daemon.client();
    let shown = rpc.wait_for("seeding after the restart", &fields, TIMEOUT, |t| {
        t.len() == 1 && t[0]["status"] == 6
    });
    assert_eq!(shown[0]["files"][0]["name"], "sample2/renamed.bin");
    assert!(
        !d.join("dl/sample").exists(),
        "something was fetched again under the old name"
    );
}

/// Checks one `torrent-get` snapshot of a magnet against itself.
fn consistent(t: &Value, total: u64) -> Result<(), String> {
    let n = |k: &str| t[k].as_f64().unwrap_or(-1.0);
    let files = t["files"].as_array().map_or(0, Vec::len);
    let meta = n("metadataPercentComplete") == 1.0;
    let status = t["status"].as_u64().unwrap_or(99);
    let checks = [
        (
            meta == (n("totalSize") as u64 == total),
            "metadata known iff totalSize is the torrent's",
        ),
        (meta == (files > 0), "metadata known iff files are listed"),
        (
            meta == (n("pieceCount") > 0.0),
            "metadata known iff pieceCount",
        ),
        (meta || t["pieces"] == "", "pieces before the metadata"),
        (meta || status != 6, "seeding without metadata"),
        (
            status != 6
                || (n("leftUntilDone") == 0.0
                    && n("percentDone") == 1.0
                    && n("haveValid") == total as f64),
            "seeding but not done",
        ),
        (
            n("sizeWhenDone") <= n("totalSize"),
            "sizeWhenDone beyond totalSize",
        ),
        (
            n("leftUntilDone") <= n("sizeWhenDone"),
            "leftUntilDone beyond sizeWhenDone",
        ),
        (
            n("haveValid") <= n("totalSize"),
            "haveValid beyond totalSize",
        ),
        (
            t["files"].as_array().is_some_and(|f| {
                f.iter()
                    .map(|f| f["length"].as_u64().unwrap_or(0))
                    .sum::<u64>()
                    == n("totalSize") as u64
            }),
            "files do not add up to totalSize",
        ),
        (
            t["fileStats"].as_array().map_or(0, Vec::len) == files
                && t["wanted"].as_array().map_or(0, Vec::len) == files
                && t["priorities"].as_array().map_or(0, Vec::len) == files,
            "files, fileStats, wanted, priorities of different lengths",
        ),
        (
            n("sizeWhenDone") == 0.0
                || (n("percentDone")
                    - (n("sizeWhenDone") - n("leftUntilDone")) / n("sizeWhenDone"))
                .abs()
                    < 1e-9,
            "percentDone is not (sizeWhenDone - leftUntilDone) / sizeWhenDone",
        ),
        (status != 6 || n("eta") == -1.0, "eta of a seed"),
    ];
    match checks.iter().find(|(ok, _)| !ok) {
        Some((_, what)) => Err(format!("{what}: {t}")),
        None => Ok(()),
    }
}

#[test]
fn a_magnets_fields_agree_at_every_moment_and_its_metainfo_lands_in_config_dir() {
    let d = Dir::new();
    let (_tracker, announce) = tracker();
    let data = d.data_file("src/mag.bin", 3_000_017, 51);
    let t = torrent_of(&d, &data, "mag.torrent", 32768, &announce);
    let seed = seed_all(&d, &[&t]);
    let (hash, magnet) = magnet_of(&t);
    let magnet = format!("{magnet}&x.pe={}", seed.addr);
    let daemon = Daemon::start(&d.join("dl"), &d.join("state"), &[]);
    let mut rpc = daemon.client();
    // Slow enough to be seen downloading.
    rpc.ok(
        "session-set",
        json!({"speed-limit-down": 1000, "speed-limit-down-enabled": true}),
    );
    let config = PathBuf::from(
        rpc.ok("session-get", json!({"fields": ["config-dir"]}))["config-dir"]
            .as_str()
            .unwrap(),
    );
    assert!(config.is_dir(), "config-dir {config:?} is no folder");
    let kept = config
        .join("torrents")
        .join(format!("{}.torrent", hash.to_hex()));

    let added = rpc.ok("torrent-add", json!({"filename": magnet}));
    let id = added["torrent-added"]["id"].clone();
    let all: Vec<&str> = TD_FIELDS.to_vec();
    let deadline = Instant::now() + TIMEOUT;
    let (mut snapshots, mut states) = (0, BTreeSet::new());
    let mut seeding_for = 0;
    while seeding_for < 5 {
        assert!(Instant::now() < deadline, "the magnet never finished");
        let got = rpc.ok("torrent-get", json!({"ids": [id], "fields": all}));
        let one = &got["torrents"][0];
        consistent(one, 3_000_017).unwrap_or_else(|e| panic!("snapshot {snapshots}: {e}"));
        if one["metadataPercentComplete"] == 1 || one["metadataPercentComplete"] == 1.0 {
            assert_eq!(one["torrentFile"].as_str(), kept.to_str());
        }
        states.insert(one["status"].as_u64().unwrap());
        if one["status"] == 6 {
            seeding_for += 1;
        }
        snapshots += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    println!("{snapshots} snapshots, states seen: {states:?}");
    assert!(states.contains(&4), "never seen downloading: {states:?}");
    assert_same_file(&data, &d.join("dl/mag.bin"));

    // Its metainfo is in the config folder, as transmission-daemon keeps it.
    let bytes = std::fs::read(&kept).unwrap_or_else(|e| panic!("{kept:?}: {e}"));
    let m = share_core::Metainfo::from_bytes(&bytes).unwrap();
    assert_eq!(m.info_hash, hash);
    // And goes with the torrent.
    rpc.ok("torrent-remove", json!({"ids": [id]}));
    assert!(!kept.exists(), "{kept:?} outlived its torrent");
}

#[test]
fn tracker_stats_say_what_each_tracker_answered() {
    let d = Dir::new();
    let (_tracker, announce) = tracker();
    let dead = "http://127.0.0.1:1/announce";
    d.data_file("src/t/a.bin", 100_003, 41);
    let t = make_torrent(
        &d,
        &d.join("src/t"),
        16384,
        &[
            "-t",
            dead,
            "-t",
            &announce,
            "-t",
            "udp://127.0.0.1:1/announce",
        ],
    );
    let daemon = Daemon::start(&d.join("dl"), &d.join("state"), &[]);
    let mut rpc = daemon.client();
    rpc.ok(
        "torrent-add",
        json!({"metainfo": base64_encode(&std::fs::read(&t).unwrap())}),
    );
    let t = rpc.wait_for("an answer", &["trackerStats"], TIMEOUT, |t| {
        t[0]["trackerStats"][1]["lastAnnounceSucceeded"] == true
    });
    let stats = t[0]["trackerStats"].as_array().unwrap();
    println!("{}", serde_json::to_string_pretty(stats).unwrap());
    assert_eq!(stats.len(), 3);
    for s in stats {
        assert_eq!(
            s.as_object().unwrap().len(),
            27,
            "26 keys and sitename: {s}"
        );
    }
    let (down, up, backup) = (&stats[0], &stats[1], &stats[2]);
    let port = announce
        .trim_start_matches("http://127.0.0.1:")
        .split('/')
        .next()
        .unwrap();
    assert_eq!(down["host"], "http://127.0.0.1:1");
    assert_eq!(up["host"], format!("http://127.0.0.1:{port}"));
    assert_eq!(backup["host"], "udp://127.0.0.1:1");
    assert_eq!(down["lastAnnounceSucceeded"], false);
    assert_eq!(down["hasAnnounced"], true);
    assert_ne!(down["lastAnnounceResult"], "", "{down}");
    assert_eq!(up["lastAnnounceResult"], "Success");
    assert_eq!(
        up["announceState"], 1,
        "waiting for its next announce: {up}"
    );
    assert!(
        up["nextAnnounceTime"].as_i64() > up["lastAnnounceTime"].as_i64(),
        "{up}"
    );
    assert_eq!(up["isBackup"], false);
    assert_eq!((up["tier"].as_u64(), up["id"].as_u64()), (Some(1), Some(1)));
    // The tracker counted us: a seeder (share's tracker says so in its answer).
    assert!(up["seederCount"].as_i64() >= Some(0), "{up}");
    // The third tier was never needed: a backup with nothing planned.
    assert_eq!(backup["isBackup"], true);
    assert_eq!(
        (
            backup["announceState"].as_u64(),
            backup["nextAnnounceTime"].as_u64()
        ),
        (Some(0), Some(0))
    );
    assert_eq!(backup["hasAnnounced"], false);

    // Trackers changed through torrent-set: the working one replaced by another, which is
    // announced to at once; then the dead one removed. Kept across a restart.
    let (_other, announce2) = tracker();
    rpc.ok(
        "torrent-set",
        json!({"ids": [1], "trackerReplace": [1, announce2]}),
    );
    let t = rpc.wait_for(
        "the new tracker's answer",
        &["trackerStats", "trackers", "magnetLink"],
        TIMEOUT,
        |t| {
            t[0]["trackerStats"][1]["announce"] == announce2.as_str()
                && t[0]["trackerStats"][1]["lastAnnounceSucceeded"] == true
        },
    );
    assert!(
        !t[0]["trackers"].to_string().contains(&announce),
        "{}",
        t[0]["trackers"]
    );
    rpc.ok("torrent-set", json!({"ids": [1], "trackerRemove": [0]}));
    let tiers = |t: &Value| -> Vec<(String, u64)> {
        t["trackers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| {
                (
                    x["announce"].as_str().unwrap().to_owned(),
                    x["tier"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let want = vec![
        (announce2.clone(), 0),
        ("udp://127.0.0.1:1/announce".to_string(), 1),
    ];
    assert_eq!(tiers(&rpc.torrents(&["trackers"])[0]), want);
    let mut daemon = daemon;
    daemon.proc.stop();
    let daemon = Daemon::start(&d.join("dl"), &d.join("state"), &[]);
    let mut rpc = daemon.client();
    assert_eq!(tiers(&rpc.torrents(&["trackers"])[0]), want, "not kept");

    // Stopped: nothing planned anywhere.
    rpc.ok("torrent-stop", json!({}));
    let t = rpc.wait_for("stopped", &["trackerStats", "status"], TIMEOUT, |t| {
        t[0]["status"] == 0
    });
    for s in t[0]["trackerStats"].as_array().unwrap() {
        assert_eq!(
            (s["announceState"].as_u64(), s["nextAnnounceTime"].as_u64()),
            (Some(0), Some(0)),
            "{s}"
        );
    }
}

#[test]
fn an_incomplete_torrent_lives_in_incomplete_dir_and_moves_when_complete() {
    let d = Dir::new();
    let (_tracker, announce) = tracker();
    let data = d.data_file("src/inc.bin", 1_500_007, 31);
    let t = torrent_of(&d, &data, "inc.torrent", 32768, &announce);
    let _seed = seed_all(&d, &[&t]);
    let daemon = Daemon::start(&d.join("dl"), &d.join("state"), &[]);
    let mut rpc = daemon.client();
    rpc.ok("session-set", json!({"incomplete-dir": "partial", "incomplete-dir-enabled": true, "speed-limit-down": 500, "speed-limit-down-enabled": true}));
    let root = std::fs::canonicalize(d.join("dl")).unwrap();
    let s = rpc.ok(
        "session-get",
        json!({"fields": ["incomplete-dir", "incomplete-dir-enabled"]}),
    );
    assert_eq!(
        s,
        json!({"incomplete-dir": root.join("partial"), "incomplete-dir-enabled": true})
    );
    // Outside the download folder: refused.
    let v = rpc.call("session-set", json!({"incomplete-dir": "/tmp"}));
    assert!(
        v["result"].as_str().unwrap().contains("incomplete-dir"),
        "{v}"
    );

    rpc.ok(
        "torrent-add",
        json!({"metainfo": base64_encode(&std::fs::read(&t).unwrap())}),
    );
    let fields = ["downloadDir", "percentDone", "status", "downloadedEver"];
    let t0 = rpc.wait_for("some bytes", &fields, TIMEOUT, |t| {
        t[0]["downloadedEver"].as_u64() > Some(0)
    });
    assert_eq!(
        t0[0]["downloadDir"],
        root.to_str().unwrap(),
        "downloadDir names where it goes"
    );
    assert!(
        d.join("dl/partial/inc.bin").exists(),
        "not downloading into the incomplete folder"
    );
    assert!(!d.join("dl/inc.bin").exists());
    rpc.ok("session-set", json!({"speed-limit-down-enabled": false}));
    rpc.wait_for("moved and seeding", &fields, TIMEOUT, |t| {
        t[0]["status"] == 6 && d.join("dl/inc.bin").exists()
    });
    assert_same_file(&data, &d.join("dl/inc.bin"));
    assert!(
        !d.join("dl/partial/inc.bin").exists(),
        "the incomplete copy stayed"
    );
}
