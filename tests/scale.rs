//! The daemon at seedbox scale: thousands of torrents come back after `kill -9` without
//! their data being read again, and a slow disk or a slow server holds up no RPC call.

use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_bencode::value::Value as Bencode;
use serde_json::{json, Value};
use sha1::{Digest, Sha1};

use crate::daemon::{base64_encode, bytes_read, Daemon, Rpc};
use crate::util::*;

const TORRENTS: usize = 2000;
const SIZE: usize = 16 * 1024;
const WAIT: Duration = Duration::from_secs(300);

/// A single-file .torrent of `data` named `name`, one piece, no tracker.
fn single(name: &str, data: &[u8]) -> Vec<u8> {
    let piece = data.len().next_power_of_two().max(16384);
    let mut pieces = Vec::new();
    for c in data.chunks(piece) {
        pieces.extend_from_slice(&Sha1::digest(c));
    }
    let info = Bencode::Dict(
        [
            (b"name".to_vec(), Bencode::Bytes(name.as_bytes().to_vec())),
            (b"length".to_vec(), Bencode::Int(data.len() as i64)),
            (b"piece length".to_vec(), Bencode::Int(piece as i64)),
            (b"pieces".to_vec(), Bencode::Bytes(pieces)),
        ]
        .into_iter()
        .collect(),
    );
    let t = Bencode::Dict([(b"info".to_vec(), info)].into_iter().collect());
    serde_bencode::to_bytes(&t).unwrap()
}

fn statuses(rpc: &mut Rpc) -> Vec<Value> {
    rpc.torrents(&["id", "name", "status", "percentDone", "hashString"])
}

/// Waits until every torrent is listed, none waiting for or in a check, and `stopped` of
/// them stopped; the rest seeding.
fn wait_settled(rpc: &mut Rpc, stopped: usize) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let t = statuses(rpc);
        if t.len() == TORRENTS
            && t.iter().filter(|t| t["status"] == 0).count() == stopped
            && t.iter().all(|t| t["status"] == 6 || t["status"] == 0)
        {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "not settled: {:?}",
            &t[..t.len().min(3)]
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn two_thousand_torrents_come_back_after_kill_9_without_their_data_being_read() {
    let d = Dir::new();
    let dl = d.join("dl");
    std::fs::create_dir_all(&dl).unwrap();
    let mut metainfo = Vec::with_capacity(TORRENTS);
    for i in 0..TORRENTS {
        let name = format!("f{i:04}.bin");
        let data = pseudo_random(SIZE, 1000 + i as u64);
        std::fs::write(dl.join(&name), &data).unwrap();
        metainfo.push(base64_encode(&single(&name, &data)));
    }
    let state = d.join("state");
    let mut daemon = Daemon::start(&dl, &state, &[]);
    let mut rpc = daemon.client();
    let added = Instant::now();
    for m in &metainfo {
        rpc.ok("torrent-add", json!({ "metainfo": m }));
    }
    let add_time = added.elapsed();
    // Every tenth one stopped: that, too, must survive.
    let stop: Vec<u32> = (1..=TORRENTS as u32).step_by(10).collect();
    rpc.ok("torrent-stop", json!({ "ids": stop }));
    let before = wait_settled(&mut rpc, stop.len());
    let checked = added.elapsed();
    // Resume data is written as each check ends; give the last ones a moment.
    std::thread::sleep(Duration::from_secs(3));
    signal(&daemon.proc.child, "KILL");
    let _ = daemon.proc.child.wait();

    let started = Instant::now();
    let daemon = Daemon::start(&dl, &state, &[]);
    let mut rpc = daemon.client();
    rpc.ok("session-get", json!({}));
    let answering = started.elapsed();
    let after = wait_settled(&mut rpc, stop.len());
    let back = started.elapsed();
    let read = bytes_read(daemon.proc.child.id());
    eprintln!(
        "{TORRENTS} torrents: added in {:.1} s, checked after {:.1} s; after kill -9: RPC \
         answering in {} ms, all back in {:.1} s, {} KiB read ({} KiB of data)",
        add_time.as_secs_f64(),
        checked.as_secs_f64(),
        answering.as_millis(),
        back.as_secs_f64(),
        read / 1024,
        TORRENTS * SIZE / 1024
    );
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b["hashString"], a["hashString"]);
        assert_eq!(b["name"], a["name"]);
        assert_eq!(b["status"], a["status"], "{a}");
    }
    // Not one torrent's data read again: what was read is the state (metainfo, resume
    // data), far below the data itself.
    assert!(
        read < (TORRENTS * SIZE / 4) as u64,
        "{read} bytes read at start"
    );
}

/// A server that takes connections and never answers; it lives as long as the test.
fn silent_server() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/slow.torrent", l.local_addr().unwrap());
    (l, url)
}

#[test]
fn a_slow_disk_and_a_slow_server_hold_up_no_rpc_call() {
    let d = Dir::new();
    // The slow one: every disk job of its lane takes 300 ms more.
    let slow = d.data_file("src/slow.bin", 4 << 20, 7);
    let quick = d.data_file("src/quick.bin", 1 << 20, 8);
    let (_tracker, announce) = crate::daemon::tracker();
    let t_slow = crate::daemon::torrent_of(&d, &slow, "slow.torrent", 16384, &announce);
    let t_quick = crate::daemon::torrent_of(&d, &quick, "quick.torrent", 16384, &announce);
    let _seed = crate::daemon::seed_all(&d, &[&t_slow, &t_quick]);
    let mut cmd = share();
    cmd.env("SHARE_TEST_SLOW_DISK", "slow.bin=300");
    let mut daemon = Daemon::start_with(cmd, "127.0.0.1:0", &d.join("dl"), &d.join("state"), &[]);
    let mut rpc = daemon.client();
    for t in [&t_slow, &t_quick] {
        rpc.ok(
            "torrent-add",
            json!({"metainfo": base64_encode(&std::fs::read(t).unwrap())}),
        );
    }
    // An add by URL that waits on a server that never answers, meanwhile.
    let (server, url) = silent_server();
    let addr = daemon.rpc;
    let pending = std::thread::spawn(move || {
        let mut rpc = Rpc::new(addr);
        rpc.call("torrent-add", json!({ "filename": url }))
    });
    // The slow torrent is downloading: its lane has work queued.
    rpc.wait_for(
        "the slow torrent to be under way",
        &["name", "downloadedEver", "percentDone"],
        WAIT,
        |t| {
            t.iter().any(|t| {
                t["name"] == "slow.bin"
                    && t["downloadedEver"].as_u64() > Some(0)
                    && t["percentDone"].as_f64() < Some(0.9)
            })
        },
    );
    let fields = json!({"fields": ["id", "name", "status", "percentDone", "rateDownload", "peers", "files", "fileStats", "trackerStats", "pieces"]});
    let mut took = Vec::new();
    for _ in 0..10 {
        for (method, args) in [("session-get", json!({})), ("torrent-get", fields.clone())] {
            let t = Instant::now();
            let v = rpc.call(method, args);
            took.push(t.elapsed());
            assert_eq!(v["result"], "success", "{method}: {v}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    took.sort();
    eprintln!(
        "RPC beside a slow disk and a waiting add: median {} ms, slowest {} ms",
        took[took.len() / 2].as_millis(),
        took[took.len() - 1].as_millis()
    );
    assert!(
        took.iter().all(|t| *t < Duration::from_millis(100)),
        "calls took {took:?}"
    );
    // The quick torrent was not held up by the slow one's disk.
    rpc.wait_for("the quick torrent", &["name", "percentDone"], WAIT, |t| {
        t.iter()
            .any(|t| t["name"] == "quick.bin" && t["percentDone"].as_f64() == Some(1.0))
    });
    // The server goes: the add waiting on it fails, and says so.
    drop(server);
    let answer = pending.join().expect("the add's answer");
    assert_ne!(answer["result"], "success", "{answer}");
    daemon.proc.stop();
    assert_same_file(&quick, &Path::new(&d.join("dl")).join("quick.bin"));
}
