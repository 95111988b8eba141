//! `share daemon` through qBittorrent's WebUI API v2: the PyPI qbittorrent-api client drives
//! it (tests/peers/qbt_client.py) over the same torrents as the Transmission RPC, categories
//! and tags come back after a restart, and hostile callers get qBittorrent's statuses with
//! nothing changed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::daemon::*;
use crate::util::*;

const AUTH: &str = "admin:s3cret";

/// A qBittorrent API caller with its cookie.
struct Qb {
    addr: SocketAddr,
    cookie: String,
}

impl Qb {
    fn new(addr: SocketAddr) -> Qb {
        Qb {
            addr,
            cookie: String::new(),
        }
    }

    /// One request; `body` url-encoded unless `ctype` says otherwise.
    fn send(&self, method: &str, path: &str, body: &[u8], extra: &str) -> Answer {
        let mut head = format!("{method} /api/v2/{path} HTTP/1.1\nHost: {}", self.addr);
        if !extra.contains("Content-Type") {
            head.push_str("\nContent-Type: application/x-www-form-urlencoded");
        }
        if !self.cookie.is_empty() {
            head.push_str(&format!("\nCookie: SID={}", self.cookie));
        }
        if !extra.is_empty() {
            head.push('\n');
            head.push_str(extra);
        }
        http(self.addr, &head, body)
    }

    fn post(&self, path: &str, body: &str) -> Answer {
        self.send("POST", path, body.as_bytes(), "")
    }

    fn login(&mut self, user_pass: &str) -> Answer {
        let (u, p) = user_pass.split_once(':').unwrap();
        let a = self.post("auth/login", &format!("username={u}&password={p}"));
        if let Some(c) = a.header("set-cookie") {
            self.cookie = c["SID=".len()..].split(';').next().unwrap().to_string();
        }
        a
    }

    fn json(&self, path: &str, body: &str) -> Value {
        let a = self.post(path, body);
        assert_eq!(
            a.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&a.body)
        );
        a.json()
    }
}

fn body(a: &Answer) -> String {
    String::from_utf8_lossy(&a.body).to_string()
}

fn transmission(daemon: &Daemon) -> Rpc {
    let mut rpc = daemon.client();
    rpc.auth = Some(base64_encode(AUTH.as_bytes()));
    rpc
}

#[test]
fn the_python_qbittorrent_api_client_drives_it_over_the_same_torrents_as_transmission() {
    if skip_interop() {
        return;
    }
    let d = Dir::new();
    let (_tracker, announce) = tracker();
    let one = d.data_file("src/one.bin", 1_500_001, 41);
    d.data_file("src/many/a.bin", 300_007, 42);
    d.data_file("src/many/b.bin", 500_009, 43);
    let mag = d.data_file("src/mag.bin", 600_011, 44);
    let seen = d.data_file("src/seen.bin", 400_013, 45);
    let t1 = torrent_of(&d, &one, "one.torrent", 32768, &announce);
    let t2 = torrent_of(&d, &d.join("src/many"), "many.torrent", 16384, &announce);
    let t3 = torrent_of(&d, &mag, "mag.torrent", 32768, &announce);
    let t4 = torrent_of(&d, &seen, "seen.torrent", 32768, &announce);
    let seed = seed_all(&d, &[&t1, &t2, &t3, &t4]);
    let magnet = magnet_via(&t3, &seed);
    let dl = d.join("dl");
    let mut daemon = Daemon::start(&dl, &d.join("state"), &["--rpc-auth", AUTH]);

    // Added through the Transmission RPC: the qBittorrent client must list it.
    let mut rpc = transmission(&daemon);
    let added = rpc.ok(
        "torrent-add",
        json!({"metainfo": base64_encode(&std::fs::read(&t4).unwrap())}),
    );
    let seen_hash = added["torrent-added"]["hashString"]
        .as_str()
        .unwrap()
        .to_string();

    let dl = std::fs::canonicalize(&dl).unwrap();
    let out = run(Command::new(pypi_python())
        .arg(peer_script("qbt_client.py"))
        .args(["--port", &daemon.rpc.port().to_string()])
        .args(["--user", "admin", "--password", "s3cret"])
        .arg("--download-dir")
        .arg(&dl)
        .arg("--one")
        .arg(&t1)
        .arg("--one-src")
        .arg(&one)
        .arg("--many")
        .arg(&t2)
        .arg("--many-src")
        .arg(d.join("src/many"))
        .args(["--magnet", &magnet])
        .arg("--magnet-src")
        .arg(&mag)
        .args(["--seen-hash", &seen_hash]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("ALL OK"),
        "qbt_client.py failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_same_file(&seen, &dl.join("seen.bin"));

    // What the qBittorrent client did, seen through the Transmission RPC: the tags are the
    // labels, the new name and folder show, the deleted torrent is gone.
    let list = rpc.torrents(&["name", "labels", "downloadDir", "hashString"]);
    assert_eq!(list.len(), 3, "{list:?}");
    let renamed = list
        .iter()
        .find(|t| t["name"] == "renamed one")
        .expect("renamed");
    assert_eq!(renamed["labels"], json!(["a", "b"]));
    assert_eq!(renamed["downloadDir"], dl.join("moved").to_str().unwrap());
    assert_same_file(&one, &dl.join("moved/one.bin"));

    // Categories, tags and limits come back after a restart.
    daemon.proc.stop();
    let daemon = Daemon::start(&dl, &d.join("state"), &["--rpc-auth", AUTH]);
    let mut q = Qb::new(daemon.rpc);
    assert_eq!(body(&q.login(AUTH)), "Ok.");
    let cats = q.json("torrents/categories", "");
    assert_eq!(cats["tv"]["savePath"], dl.join("tv").to_str().unwrap());
    assert!(cats.get("movies").is_some(), "{cats}");
    let tags = q.json("torrents/tags", "");
    for t in ["a", "b", "m"] {
        assert!(tags.as_array().unwrap().contains(&json!(t)), "{tags}");
    }
    let info = q.json("torrents/info", "category=tv");
    assert_eq!(info.as_array().unwrap().len(), 1, "{info}");
    assert_eq!(info[0]["name"], "renamed one");
    assert_eq!(info[0]["tags"], "a, b");
    assert_eq!(info[0]["ratio_limit"], 2.5);
    assert_eq!(q.json("app/preferences", "")["alt_dl_limit"], 2048);
}

/// Every file under `dir`.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            }
            out.push(e.path());
        }
    }
    out
}

fn multipart(boundary: &str, parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut b = Vec::new();
    for (name, file, data) in parts {
        b.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"").as_bytes(),
        );
        if let Some(f) = file {
            b.extend_from_slice(
                format!("; filename=\"{f}\"\r\nContent-Type: application/x-bittorrent").as_bytes(),
            );
        }
        b.extend_from_slice(b"\r\n\r\n");
        b.extend_from_slice(data);
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    b
}

#[test]
fn hostile_qbittorrent_api_callers_get_its_statuses_and_nothing_changes() {
    let d = Dir::new();
    let src = d.data_file("src/x.bin", 100_000, 46);
    let t = make_torrent(&d, &src, 16384, &[]);
    let torrent = std::fs::read(&t).unwrap();
    std::fs::create_dir_all(d.join("outside")).unwrap();
    let daemon = Daemon::start(
        &d.join("root/dl"),
        &d.join("root/state"),
        &["--rpc-auth", AUTH],
    );
    let mut q = Qb::new(daemon.rpc);

    // No cookie, a stale one: 403 `Forbidden`; the version probe needs none.
    let a = q.post("torrents/info", "");
    assert_eq!((a.status, body(&a).as_str()), (403, "Forbidden"));
    let a = q.send("GET", "app/webapiVersion", b"", "");
    assert_eq!((a.status, body(&a).as_str()), (200, "2.11.4"));
    q.cookie = "bm90IGEgc2Vzc2lvbiBhdCBhbGwgYXQgYWxsIQ==".into();
    assert_eq!(q.post("torrents/info", "").status, 403);
    assert_eq!(q.post("no/such", "").status, 403);
    // A login from another site: 401, no cookie.
    let a = q.send(
        "POST",
        "auth/login",
        b"username=admin&password=s3cret",
        "Origin: http://evil.example",
    );
    assert_eq!(a.status, 401);
    assert!(a.header("set-cookie").is_none());
    assert_eq!(body(&q.login(AUTH)), "Ok.");
    let a = q.send(
        "POST",
        "torrents/stop",
        b"hashes=all",
        "Referer: http://evil.example/x",
    );
    assert_eq!(a.status, 401);

    // Unknown endpoints, methods, hashes.
    assert_eq!(q.post("torrents/nothing", "").status, 404);
    assert_eq!(q.post("nothing/info", "").status, 404);
    assert_eq!(q.send("GET", "torrents/delete", b"", "").status, 405);
    let unknown = "ab".repeat(20);
    for path in ["properties", "files", "trackers", "webseeds", "pieceStates"] {
        let a = q.post(&format!("torrents/{path}"), &format!("hash={unknown}"));
        assert_eq!(a.status, 404, "{path}");
    }
    assert_eq!(q.post("sync/torrentPeers", "hash=nothex").status, 404);
    assert_eq!(
        q.post("torrents/stop", &format!("hashes={unknown}")).status,
        200
    );

    // Folders outside the download folder.
    let outside = d.join("outside");
    for dir in [
        "/etc",
        "../../outside",
        outside.to_str().unwrap(),
        "a/../../..",
    ] {
        let b = multipart(
            "BB",
            &[
                ("savepath", None, dir.as_bytes()),
                ("torrents", Some("x.torrent"), &torrent),
            ],
        );
        let a = q.send(
            "POST",
            "torrents/add",
            &b,
            "Content-Type: multipart/form-data; boundary=BB",
        );
        assert_eq!(a.status, 400, "savepath {dir}: {}", body(&a));
        let a = q.post(
            "torrents/createCategory",
            &format!("category=c&savePath={dir}"),
        );
        assert_eq!(a.status, 409, "category {dir}: {}", body(&a));
        let a = q.post(
            "app/setPreferences",
            &format!("json={{\"save_path\":\"{dir}\"}}"),
        );
        assert_eq!(a.status, 400, "save_path {dir}");
    }
    assert_eq!(q.json("torrents/info", ""), json!([]));
    assert_eq!(q.json("torrents/categories", ""), json!({}));

    // A 40 MiB body: 413. Malformed multipart and a file that is no torrent: refused.
    let huge = vec![b'x'; 40 << 20];
    let a = q.send(
        "POST",
        "torrents/add",
        &huge,
        "Content-Type: multipart/form-data; boundary=BB",
    );
    assert_eq!(a.status, 413);
    let a = q.send(
        "POST",
        "torrents/add",
        b"--BB\r\nnonsense",
        "Content-Type: multipart/form-data; boundary=BB",
    );
    assert_eq!(a.status, 400, "{}", body(&a));
    let b = multipart("BB", &[("torrents", Some("bad.torrent"), b"d4:infode")]);
    let a = q.send(
        "POST",
        "torrents/add",
        &b,
        "Content-Type: multipart/form-data; boundary=BB",
    );
    assert_eq!(
        (a.status, body(&a).as_str()),
        (415, "Error: 'bad.torrent' is not a valid torrent file.")
    );
    let a = q.post(
        "app/setPreferences",
        "json={\"dht\":true,\"up_limit\":1024}",
    );
    assert_eq!(a.status, 400);
    assert!(body(&a).contains("dht"), "{}", body(&a));
    assert_eq!(q.json("app/preferences", "")["up_limit"], 0);

    // A good add, then a move out of the folder and a bad priority: refused.
    let b = multipart(
        "BB",
        &[
            ("stopped", None, b"true"),
            ("torrents", Some("x.torrent"), &torrent),
        ],
    );
    let a = q.send(
        "POST",
        "torrents/add",
        &b,
        "Content-Type: multipart/form-data; boundary=BB",
    );
    assert_eq!(body(&a), "Ok.");
    let hash = q.json("torrents/info", "")[0]["hash"]
        .as_str()
        .unwrap()
        .to_string();
    let a = q.post(
        "torrents/setLocation",
        &format!("hashes={hash}&location=/etc"),
    );
    assert_eq!(a.status, 409);
    let a = q.post("torrents/filePrio", &format!("hash={hash}&id=5&priority=1"));
    assert_eq!(a.status, 409);
    let a = q.post("torrents/filePrio", &format!("hash={hash}&id=0&priority=3"));
    assert_eq!(a.status, 400);
    let a = q.post("torrents/topPrio", &format!("hashes={hash}"));
    assert_eq!(
        (a.status, body(&a).as_str()),
        (409, "Torrent queueing must be enabled")
    );
    assert_eq!(
        q.json("torrents/info", "")[0]["save_path"],
        std::fs::canonicalize(d.join("root/dl"))
            .unwrap()
            .to_str()
            .unwrap()
    );

    // A wrong password, ten times: banned after five, even with the right one; the session
    // that is logged in still works (as in qBittorrent).
    let mut bad = Qb::new(daemon.rpc);
    let answers: Vec<(u16, String)> = (0..10)
        .map(|_| {
            let a = bad.login("admin:wrong");
            (a.status, body(&a))
        })
        .collect();
    assert!(
        answers[..5].iter().all(|a| *a == (200, "Fails.".into())),
        "{answers:?}"
    );
    let banned = (
        403,
        "Your IP address has been banned after too many failed authentication attempts."
            .to_string(),
    );
    assert!(answers[5..].iter().all(|a| *a == banned), "{answers:?}");
    let a = bad.login(AUTH);
    assert_eq!((a.status, body(&a)), banned);
    assert!(a.header("set-cookie").is_none());
    assert_eq!(q.json("torrents/info", "").as_array().unwrap().len(), 1);

    assert!(files_under(&outside).is_empty());
    for p in files_under(d.path()) {
        assert!(
            p.starts_with(d.join("root"))
                || p.starts_with(d.join("src"))
                || p.starts_with(&outside)
                || p == t,
            "something was written at {}",
            p.display()
        );
    }
}
