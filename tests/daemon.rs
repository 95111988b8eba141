//! `share daemon` driven as people drive theirs: Debian's transmission-remote, the PyPI
//! transmission-rpc client, a headless browser on its page, ffprobe and curl on its streams;
//! a restart after SIGKILL; selective downloads; and an RPC that hostile callers poke at.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::util::*;

pub const TIMEOUT: Duration = Duration::from_secs(120);

/// A running `share daemon` on loopback ports of its own.
pub struct Daemon {
    pub proc: Proc,
    pub rpc: SocketAddr,
}

impl Daemon {
    pub fn start(download: &Path, state: &Path, extra: &[&str]) -> Daemon {
        Daemon::start_on("127.0.0.1:0", download, state, extra)
    }

    pub fn start_on(rpc: &str, download: &Path, state: &Path, extra: &[&str]) -> Daemon {
        Daemon::start_with(share(), rpc, download, state, extra)
    }

    /// As `start_on`, from `cmd` (`share()` with something of its own, an environment
    /// variable).
    pub fn start_with(
        mut cmd: Command,
        rpc: &str,
        download: &Path,
        state: &Path,
        extra: &[&str],
    ) -> Daemon {
        let mut proc = Proc::start(
            cmd.arg("daemon")
                .args(["--listen", "127.0.0.1:0", "--rpc", rpc])
                .arg("--download-dir")
                .arg(download)
                .arg("--state-dir")
                .arg(state)
                .args(extra),
        );
        let line = proc
            .wait_line(|l| l.starts_with("rpc on http://"), START_TIMEOUT)
            .unwrap_or_else(|| panic!("the daemon never said where its RPC is: {}", proc.stderr()));
        let rpc = line["rpc on http://".len()..]
            .trim_end_matches('/')
            .parse()
            .unwrap_or_else(|_| panic!("not an address: {line}"));
        Daemon { proc, rpc }
    }

    pub fn client(&self) -> Rpc {
        Rpc::new(self.rpc)
    }
}

/// An HTTP answer: status, headers (names lowercased), body.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}), status {}: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// One HTTP/1.1 exchange over a fresh connection (`Connection: close`); `head` holds the
/// request line and headers without the final blank line.
pub fn http(addr: SocketAddr, head: &str, body: &[u8]) -> Answer {
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the daemon");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = head.trim_end().replace('\n', "\r\n").into_bytes();
    req.extend_from_slice(
        format!(
            "\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    req.extend_from_slice(body);
    // A server may answer and close before reading a refused body: that is fine.
    let _ = s.write_all(&req);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

/// A Transmission RPC client that does the session-id exchange.
pub struct Rpc {
    pub addr: SocketAddr,
    pub auth: Option<String>,
    sid: String,
}

impl Rpc {
    pub fn new(addr: SocketAddr) -> Rpc {
        Rpc {
            addr,
            auth: None,
            sid: String::new(),
        }
    }

    pub fn post(&self, body: &[u8], extra_headers: &str) -> Answer {
        let mut head = format!(
            "POST /transmission/rpc HTTP/1.1\nHost: {}\nX-Transmission-Session-Id: {}\nContent-Type: application/json",
            self.addr, self.sid
        );
        if let Some(a) = &self.auth {
            head.push_str(&format!("\nAuthorization: Basic {a}"));
        }
        if !extra_headers.is_empty() {
            head.push('\n');
            head.push_str(extra_headers);
        }
        http(self.addr, &head, body)
    }

    /// Calls `method`; returns the whole answer (`result`, `arguments`).
    pub fn call(&mut self, method: &str, arguments: Value) -> Value {
        let body = serde_json::to_vec(&json!({"method": method, "arguments": arguments})).unwrap();
        self.call_raw(&body)
    }

    /// Posts `body` as it is; returns the JSON answer.
    pub fn call_raw(&mut self, body: &[u8]) -> Value {
        let method = String::from_utf8_lossy(&body[..body.len().min(60)]).to_string();
        for _ in 0..2 {
            let a = self.post(body, "");
            if a.status == 409 {
                self.sid = a
                    .header("x-transmission-session-id")
                    .expect("a 409 names the session id")
                    .to_string();
                continue;
            }
            assert_eq!(
                a.status,
                200,
                "{method}: {}",
                String::from_utf8_lossy(&a.body)
            );
            return a.json();
        }
        panic!("{method}: the session id was refused twice");
    }

    /// Calls `method` and insists on `success`; returns `arguments`.
    pub fn ok(&mut self, method: &str, arguments: Value) -> Value {
        let v = self.call(method, arguments);
        assert_eq!(v["result"], "success", "{method}: {v}");
        v["arguments"].clone()
    }

    /// `torrent-get` of `fields` for every torrent.
    pub fn torrents(&mut self, fields: &[&str]) -> Vec<Value> {
        let v = self.ok("torrent-get", json!({ "fields": fields }));
        v["torrents"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until `done` holds for the torrent list, or panics after `timeout`.
    pub fn wait_for(
        &mut self,
        what: &str,
        fields: &[&str],
        timeout: Duration,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let t = self.torrents(fields);
            if done(&t) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {t:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// `share tracker` on loopback, announce interval 5 s.
pub fn tracker() -> (Proc, String) {
    let p = Proc::start(share().args(["tracker", "--listen", "127.0.0.1:0", "--interval", "5"]));
    let url = format!("http://{}/announce", p.addr);
    (p, url)
}

pub fn torrent_of(d: &Dir, path: &Path, out: &str, piece: u32, announce: &str) -> PathBuf {
    let t = make_torrent(d, path, piece, &["-t", announce]);
    let to = d.join(out);
    std::fs::rename(&t, &to).unwrap();
    to
}

/// `t`'s magnet link with the seed's address as `x.pe`.
pub fn magnet_via(t: &Path, seed: &Proc) -> String {
    let (_, magnet) = magnet_of(t);
    format!("{magnet}&x.pe={}", seed.addr)
}

/// `share seed` of all of `torrents` (content under `d/src`) on one port.
pub fn seed_all(d: &Dir, torrents: &[&Path]) -> Proc {
    let rest: Vec<&str> = torrents[1..].iter().map(|t| t.to_str().unwrap()).collect();
    start_seed(torrents[0], &d.join("src"), &rest)
}

fn transmission_remote(rpc: SocketAddr, args: &[&str]) -> String {
    let out = run(Command::new("transmission-remote")
        .arg(rpc.to_string())
        .args(args));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "transmission-remote {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn by_name<'a>(list: &'a [Value], name: &str) -> &'a Value {
    list.iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no torrent named {name} in {list:?}"))
}

fn done(t: &Value) -> bool {
    t["percentDone"].as_f64() == Some(1.0)
}

#[test]
fn transmission_remote_adds_lists_stops_starts_deselects_and_removes() {
    if !require("transmission-remote", "transmission-cli") {
        return;
    }
    let d = Dir::new();
    let (_tracker, announce) = tracker();
    let one = d.data_file("src/one.bin", 3_000_017, 1);
    let two = d.data_file("src/two.bin", 2_000_003, 2);
    d.data_file("src/three/a.bin", 700_001, 3);
    d.data_file("src/three/b.bin", 900_003, 4);
    d.data_file("src/three/sub/c.bin", 500_009, 5);
    let t1 = torrent_of(&d, &one, "one.torrent", 32768, &announce);
    let t2 = torrent_of(&d, &two, "two.torrent", 32768, &announce);
    let t3 = torrent_of(&d, &d.join("src/three"), "three.torrent", 16384, &announce);
    let seed = seed_all(&d, &[&t1, &t2, &t3]);
    let magnet = magnet_via(&t2, &seed);

    let daemon = Daemon::start(&d.join("dl"), &d.join("state"), &[]);
    let mut rpc = daemon.client();
    let out = transmission_remote(daemon.rpc, &["-a", t1.to_str().unwrap()]);
    assert!(out.contains("success"), "{out}");
    let out = transmission_remote(daemon.rpc, &["-a", &magnet]);
    assert!(out.contains("success"), "{out}");
    // Added with its second and third files unwanted, as `-a FILE -G 1,2` asks.
    let out = transmission_remote(daemon.rpc, &["-a", t3.to_str().unwrap(), "-G", "1,2"]);
    assert!(out.contains("success"), "{out}");

    let fields = ["id", "name", "percentDone", "status", "hashString"];
    let list = rpc.wait_for("three downloads", &fields, TIMEOUT, |t| {
        t.len() == 3 && t.iter().all(done)
    });
    let listing = transmission_remote(daemon.rpc, &["-l"]);
    for name in ["one.bin", "two.bin", "three"] {
        assert!(listing.contains(name), "{name} missing from -l: {listing}");
    }
    assert_eq!(listing.matches("100%").count(), 3, "{listing}");
    assert_same_file(&one, &d.join("dl/one.bin"));
    assert_same_file(&two, &d.join("dl/two.bin"));
    assert_same_file(&d.join("src/three/a.bin"), &d.join("dl/three/a.bin"));
    for unwanted in ["dl/three/b.bin", "dl/three/sub/c.bin"] {
        let p = d.join(unwanted);
        let have = std::fs::read(&p).unwrap_or_default();
        let full = std::fs::read(d.join(&unwanted.replace("dl/", "src/"))).unwrap();
        assert!(have != full, "{unwanted} was fetched although unwanted");
    }

    let id1 = by_name(&list, "one.bin")["id"].to_string();
    let info = transmission_remote(daemon.rpc, &["-t", &id1, "-i"]);
    assert!(info.contains("Name: one.bin"), "{info}");
    let hash = by_name(&list, "one.bin")["hashString"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(info.contains(&format!("Hash: {hash}")), "{info}");
    assert!(info.contains("Percent Done: 100%"), "{info}");

    let id3 = by_name(&list, "three")["id"].to_string();
    let files = transmission_remote(daemon.rpc, &["-t", &id3, "-f"]);
    assert_eq!(files.matches(" Yes ").count(), 1, "{files}");
    assert_eq!(files.matches(" No ").count(), 2, "{files}");

    transmission_remote(daemon.rpc, &["-t", &id1, "-S"]);
    rpc.wait_for("a stop", &fields, TIMEOUT, |t| {
        by_name(t, "one.bin")["status"] == 0
    });
    let listing = transmission_remote(daemon.rpc, &["-l"]);
    assert!(
        listing
            .lines()
            .any(|l| l.contains("one.bin") && l.contains("Stopped")),
        "{listing}"
    );
    transmission_remote(daemon.rpc, &["-t", &id1, "-s"]);
    rpc.wait_for("a start", &fields, TIMEOUT, |t| {
        by_name(t, "one.bin")["status"] == 6
    });

    // Wanted again: the rest of the third torrent arrives.
    transmission_remote(daemon.rpc, &["-t", &id3, "-g", "all"]);
    rpc.wait_for("the other files", &fields, TIMEOUT, |t| {
        done(by_name(t, "three")) && Path::new(&d.join("dl/three/sub/c.bin")).exists()
    });
    let deadline = Instant::now() + TIMEOUT;
    while std::fs::read(d.join("dl/three/sub/c.bin")).unwrap_or_default()
        != std::fs::read(d.join("src/three/sub/c.bin")).unwrap()
    {
        assert!(Instant::now() < deadline, "c.bin never arrived");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_same_file(&d.join("src/three/b.bin"), &d.join("dl/three/b.bin"));

    transmission_remote(daemon.rpc, &["-t", &id1, "--remove-and-delete"]);
    rpc.wait_for("a removal", &fields, TIMEOUT, |t| t.len() == 2);
    assert!(!d.join("dl/one.bin").exists(), "the data was not deleted");
    assert!(d.join("dl/two.bin").exists());
    assert_same_file(&one, &d.join("src/one.bin"));
}

#[test]
fn the_python_transmission_rpc_client_drives_it_and_reads_what_happened() {
    if skip_interop() {
        return;
    }
    let d = Dir::new();
    let (_tracker, announce) = tracker();
    let one = d.data_file("src/one.bin", 2_500_001, 21);
    d.data_file("src/many/a.bin", 400_003, 22);
    d.data_file("src/many/b.bin", 600_001, 23);
    let t1 = torrent_of(&d, &one, "one.torrent", 32768, &announce);
    let t2 = torrent_of(&d, &d.join("src/many"), "many.torrent", 16384, &announce);
    let mag = d.data_file("src/mag.bin", 700_001, 24);
    let t3 = torrent_of(&d, &mag, "mag.torrent", 32768, &announce);
    let seed = seed_all(&d, &[&t1, &t2, &t3]);
    let magnet = magnet_via(&t3, &seed);
    let daemon = Daemon::start(&d.join("dl"), &d.join("state"), &[]);
    let out = run(Command::new(pypi_python())
        .arg(peer_script("trpc_client.py"))
        .arg("--port")
        .arg(daemon.rpc.port().to_string())
        .arg("--single")
        .arg(&t1)
        .arg("--multi")
        .arg(&t2)
        .arg("--multi-src")
        .arg(d.join("src/many"))
        .arg("--magnet")
        .arg(&magnet)
        .arg("--single-size")
        .arg("2500001")
        .arg("--download-dir")
        .arg(std::fs::canonicalize(d.join("dl")).unwrap()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "trpc_client.py failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("ALL OK"), "{stdout}");
    assert_same_file(&one, &d.join("dl/one.bin"));
    assert_same_file(&mag, &d.join("dl/mag.bin"));
    // The script removed the second torrent with its data.
    assert!(
        !d.join("dl/many").exists(),
        "the removed torrent's data is still there"
    );
}

/// Every file under `dir`, recursively (for "nothing was written there").
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out.sort();
    out
}

#[test]
fn hostile_rpc_callers_get_the_right_errors_and_nothing_is_written_outside() {
    let d = Dir::new();
    let src = d.data_file("src/x.bin", 100_000, 31);
    let t = make_torrent(&d, &src, 16384, &[]);
    std::fs::create_dir_all(d.join("outside")).unwrap();
    let daemon = Daemon::start(
        &d.join("root/dl"),
        &d.join("root/state"),
        &["--rpc-auth", "alice:s3cret"],
    );
    let mut rpc = daemon.client();
    rpc.auth = Some("YWxpY2U6czNjcmV0".into()); // alice:s3cret

    // Wrong password, and none at all: 401 (the wrong one after a delay).
    let mut bad = Rpc::new(daemon.rpc);
    bad.auth = Some("YWxpY2U6d3Jvbmc=".into()); // alice:wrong
    let a = bad.post(br#"{"method":"session-get"}"#, "");
    assert_eq!(a.status, 401);
    assert!(a.header("www-authenticate").is_some());
    let a = Rpc::new(daemon.rpc).post(br#"{"method":"session-get"}"#, "");
    assert_eq!(a.status, 401);
    assert_eq!(
        http(
            daemon.rpc,
            &format!("GET / HTTP/1.1\nHost: {}", daemon.rpc),
            b""
        )
        .status,
        401
    );

    // A wrong session id: 409 with the right one, and the call is not made.
    let a = rpc.post(
        br#"{"method":"torrent-add","arguments":{"filename":"x"}}"#,
        "",
    );
    assert_eq!(a.status, 409);
    let sid = a.header("x-transmission-session-id").unwrap().to_string();
    assert_eq!(sid.len(), 48);

    // A Host that is not ours (DNS rebinding): refused before anything else.
    let a = http(
        daemon.rpc,
        &format!(
            "POST /transmission/rpc HTTP/1.1\nHost: evil.example\nAuthorization: Basic YWxpY2U6czNjcmV0\nX-Transmission-Session-Id: {sid}"
        ),
        br#"{"method":"session-get"}"#,
    );
    assert_eq!(a.status, 421, "{}", String::from_utf8_lossy(&a.body));
    let a = http(
        daemon.rpc,
        "GET / HTTP/1.1\nHost: evil.example:9091\nAuthorization: Basic YWxpY2U6czNjcmV0",
        b"",
    );
    assert_eq!(a.status, 421);

    // Malformed JSON, not an object, an unknown method, wrong argument types.
    for body in [&b"{\"method\":"[..], b"[1,2,3]", b"\xff\xfe", b""] {
        let v = rpc.call_raw(body);
        assert_ne!(v["result"], "success", "{body:?}: {v}");
    }
    let v = rpc.call("no-such-method", json!({}));
    assert_eq!(v["result"], "method name not recognized", "{v}");
    let v = rpc.call("torrent-get", json!({"fields": "id"}));
    assert_ne!(v["result"], "success", "{v}");
    let v = rpc.call(
        "torrent-set",
        json!({"ids": "everything", "uploadLimit": "fast"}),
    );
    assert_ne!(v["result"], "success", "{v}");
    let v = rpc.call("torrent-add", json!({"metainfo": "not base64!"}));
    assert_ne!(v["result"], "success", "{v}");
    let v = rpc.call("torrent-add", json!({"metainfo": "ZDQ6aW5mb2Rl"})); // "d4:infode"
    assert_ne!(v["result"], "success", "{v}");

    // A huge body: 413, and the daemon is still there.
    let huge = vec![b' '; 40 << 20];
    let a = rpc.post(&huge, "");
    assert_eq!(a.status, 413);

    // Folders outside the download folder, and files outside the allowed ones.
    let metainfo = base64_encode(&std::fs::read(&t).unwrap());
    // A file index beyond the torrent's files: refused, and nothing is added.
    let v = rpc.call(
        "torrent-add",
        json!({"metainfo": metainfo, "files-unwanted": [99]}),
    );
    assert_ne!(v["result"], "success", "{v}");
    assert!(rpc.torrents(&["id"]).is_empty());
    let outside = d.join("outside").to_str().unwrap().to_string();
    for dir in [
        "../..",
        "/etc",
        "../outside",
        &outside,
        "sub/../../../outside",
    ] {
        let v = rpc.call(
            "torrent-add",
            json!({"metainfo": metainfo, "download-dir": dir}),
        );
        assert_ne!(v["result"], "success", "download-dir {dir}: {v}");
        let v = rpc.call("session-set", json!({"download-dir": dir}));
        assert_ne!(
            v["result"], "success",
            "session-set download-dir {dir}: {v}"
        );
    }
    for file in ["/etc/passwd", "../../x.bin", t.to_str().unwrap()] {
        let v = rpc.call("torrent-add", json!({ "filename": file }));
        assert_ne!(v["result"], "success", "filename {file}: {v}");
    }
    let v = rpc.call(
        "torrent-add",
        json!({ "filename": "http://127.0.0.1:1/x.torrent" }),
    );
    assert_ne!(v["result"], "success", "{v}");
    // A good add, then a move out of the folder.
    let v = rpc.ok(
        "torrent-add",
        json!({"metainfo": metainfo, "paused": true, "download-dir": "sub"}),
    );
    let id = v["torrent-added"]["id"].clone();
    for dir in ["/etc", "../../outside", &outside] {
        let v = rpc.call(
            "torrent-set-location",
            json!({"ids": [id], "location": dir, "move": true}),
        );
        assert_ne!(v["result"], "success", "set-location {dir}: {v}");
    }
    let v = rpc.call("free-space", json!({"path": "/etc"}));
    assert_ne!(v["result"], "success", "{v}");

    assert_eq!(tree(&d.join("outside")), Vec::<PathBuf>::new());
    let answer = rpc.ok("session-get", json!({}));
    let root = std::fs::canonicalize(d.join("root/dl")).unwrap();
    assert_eq!(answer["download-dir"], root.to_str().unwrap());
    for p in tree(d.path()) {
        assert!(
            p.starts_with(d.join("root"))
                || p.starts_with(d.join("src"))
                || p.starts_with(d.join("outside"))
                || p == t,
            "something was written at {}",
            p.display()
        );
    }
}

pub fn base64_encode(bytes: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn a_torrent_of_ten_files_with_two_wanted_fetches_only_their_pieces() {
    let d = Dir::new();
    let (_tracker, announce) = tracker();
    let mut sizes = Vec::new();
    for i in 0..10 {
        let len = 400_000 + i * 37_013;
        d.data_file(&format!("src/ten/f{i}.bin"), len, 40 + i as u64);
        sizes.push(len as u64);
    }
    let t = torrent_of(&d, &d.join("src/ten"), "ten.torrent", 32768, &announce);
    let _seed = start_seed(&t, &d.join("src"), &[]);
    let daemon = Daemon::start(&d.join("dl"), &d.join("state"), &[]);
    let mut rpc = daemon.client();
    let unwanted: Vec<usize> = (0..10).filter(|i| *i != 3 && *i != 7).collect();
    rpc.ok(
        "torrent-add",
        json!({"metainfo": base64_encode(&std::fs::read(&t).unwrap()), "files-unwanted": unwanted}),
    );
    let list = rpc.wait_for(
        "the two files",
        &[
            "percentDone",
            "downloadedEver",
            "sizeWhenDone",
            "fileStats",
            "status",
        ],
        TIMEOUT,
        |t| t.len() == 1 && done(&t[0]),
    );
    let wanted = sizes[3] + sizes[7];
    assert_eq!(
        list[0]["sizeWhenDone"].as_u64(),
        Some(wanted),
        "{:?}",
        list[0]
    );
    let got = list[0]["downloadedEver"].as_u64().unwrap();
    // At most one piece more at each end of each wanted file.
    assert!(
        got >= wanted && got <= wanted + 4 * 32768,
        "downloaded {got} for {wanted} wanted"
    );
    for i in [3, 7] {
        assert_same_file(
            &d.join(&format!("src/ten/f{i}.bin")),
            &d.join(&format!("dl/ten/f{i}.bin")),
        );
    }
    let stats = list[0]["fileStats"].as_array().unwrap();
    for (i, s) in stats.iter().enumerate() {
        assert_eq!(s["wanted"], i == 3 || i == 7, "{s}");
    }
    // Files nobody asked for hold no more than the ends of the pieces they share with the
    // wanted ones (the neighbours are sparse: only those ends take room on disk).
    let on_disk: u64 = (0..10)
        .filter(|i| *i != 3 && *i != 7)
        .map(|i| {
            std::fs::metadata(d.join(&format!("dl/ten/f{i}.bin")))
                .map_or(0, |m| std::os::unix::fs::MetadataExt::blocks(&m) * 512)
        })
        .sum();
    assert!(
        on_disk <= 4 * 32768,
        "{on_disk} bytes of unwanted files on disk"
    );
}

/// `rchar` of /proc/PID/io: every byte the process has read (files and sockets).
pub fn bytes_read(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    io.lines()
        .find_map(|l| l.strip_prefix("rchar: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Waits until the daemon lists `count` torrents and none is waiting for or in a check.
fn wait_ready(rpc: &mut Rpc, count: usize) -> Vec<Value> {
    rpc.wait_for(
        "the torrents to be back and checked",
        &["id", "name", "status", "percentDone", "hashString"],
        TIMEOUT,
        |t| t.len() == count && t.iter().all(|t| t["status"] != 1 && t["status"] != 2),
    )
}

#[test]
fn a_daemon_killed_with_sigkill_comes_back_with_its_torrents_and_rehashes_only_what_changed() {
    let d = Dir::new();
    let (_tracker, announce) = tracker();
    let mut torrents = Vec::new();
    // Two the daemon seeds (their data is in its folder from the start)...
    for (i, name) in ["s1.bin", "s2.bin"].iter().enumerate() {
        let src = d.data_file(&format!("src/{name}"), 16 << 20, 50 + i as u64);
        std::fs::create_dir_all(d.join("dl")).unwrap();
        std::fs::copy(&src, d.join(&format!("dl/{name}"))).unwrap();
        torrents.push(torrent_of(
            &d,
            &src,
            &format!("{name}.torrent"),
            65536,
            &announce,
        ));
    }
    // ...and three it fetches from a slow seed, killed half way.
    for (i, name) in ["h1.bin", "h2.bin", "h3.bin"].iter().enumerate() {
        let src = d.data_file(&format!("src/{name}"), 4 << 20, 60 + i as u64);
        torrents.push(torrent_of(
            &d,
            &src,
            &format!("{name}.torrent"),
            65536,
            &announce,
        ));
    }
    let half: Vec<&str> = torrents[2..].iter().map(|t| t.to_str().unwrap()).collect();
    let slow_seed = |rate: &str| {
        let mut args = half[1..].to_vec();
        args.extend(["--max-upload-rate", rate]);
        start_seed(Path::new(half[0]), &d.join("src"), &args)
    };
    let mut seed = slow_seed("1M");
    let state = d.join("state");
    let mut daemon = Daemon::start(&d.join("dl"), &state, &[]);
    let mut rpc = daemon.client();
    for t in &torrents {
        rpc.ok(
            "torrent-add",
            json!({"metainfo": base64_encode(&std::fs::read(t).unwrap())}),
        );
    }
    let fields = ["id", "name", "status", "percentDone", "hashString"];
    let before = rpc.wait_for("seeding and half done", &fields, TIMEOUT, |t| {
        t.len() == 5
            && t.iter().all(|t| {
                let p = t["percentDone"].as_f64().unwrap_or(0.0);
                if t["name"].as_str().unwrap().starts_with('s') {
                    t["status"] == 6
                } else {
                    p >= 0.25
                }
            })
    });
    signal(&daemon.proc.child, "KILL");
    let _ = daemon.proc.child.wait();
    for t in &before[2..] {
        assert!(
            t["percentDone"].as_f64().unwrap() < 1.0,
            "finished before the kill: {t}"
        );
    }
    // Nothing arrives over the network while the restart is measured.
    seed.stop();

    let started = Instant::now();
    let mut daemon = Daemon::start(&d.join("dl"), &state, &[]);
    let mut rpc = daemon.client();
    let after = wait_ready(&mut rpc, 5);
    let ready = started.elapsed();
    let read = bytes_read(daemon.proc.child.id());
    eprintln!(
        "restart after SIGKILL: ready in {} ms, {} bytes read ({} MiB of seeding data, {} MiB half done)",
        ready.as_millis(),
        read,
        32,
        12
    );
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b["id"], a["id"]);
        assert_eq!(b["name"], a["name"]);
        assert_eq!(b["hashString"], a["hashString"]);
    }
    for a in &after[..2] {
        assert_eq!(a["status"], 6, "{a}");
        assert_eq!(a["percentDone"].as_f64(), Some(1.0), "{a}");
    }
    for (b, a) in before[2..].iter().zip(&after[2..]) {
        let (pb, pa) = (
            b["percentDone"].as_f64().unwrap(),
            a["percentDone"].as_f64().unwrap(),
        );
        assert!(
            pa + 0.05 >= pb && pa < 1.0,
            "{} was {pb} and is {pa}",
            a["name"]
        );
    }
    // The seeding files were not read again: what was read is at most the half done files
    // (whose mtimes changed after the last resume data) and the state.
    assert!(read < 16 << 20, "{read} bytes read at start");

    // The seed comes back; the half done ones finish, byte for byte.
    let _seed = slow_seed("20M");
    rpc.wait_for("the rest", &fields, TIMEOUT, |t| t.iter().all(done));
    for name in ["s1.bin", "s2.bin", "h1.bin", "h2.bin", "h3.bin"] {
        assert_same_file(
            &d.join(&format!("src/{name}")),
            &d.join(&format!("dl/{name}")),
        );
    }

    // Damaged resume data is reported and not trusted: the torrent is hashed again.
    daemon.proc.stop();
    let s1 = &after[0]["hashString"].as_str().unwrap().to_string();
    let resume = state.join(format!("resume/{s1}.resume"));
    let len = std::fs::metadata(&resume)
        .expect("resume data of a seeding torrent")
        .len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&resume)
        .unwrap();
    f.set_len(len / 2).unwrap();
    drop(f);
    let mut daemon = Daemon::start(&d.join("dl"), &state, &[]);
    let mut rpc = daemon.client();
    let again = wait_ready(&mut rpc, 5);
    assert!(again.iter().all(done), "{again:?}");
    let read = bytes_read(daemon.proc.child.id());
    assert!(
        read >= 16 << 20,
        "the damaged resume data was trusted: {read} bytes read"
    );
    assert!(
        daemon.proc.stderr().contains("resume data"),
        "not reported: {}",
        daemon.proc.stderr()
    );
    daemon.proc.stop();
}

fn curl_range(url: &str, range: &str) -> Vec<u8> {
    let out =
        run(Command::new("curl").args(["-sS", "--fail", "--max-time", "60", "-r", range, url]));
    assert!(
        out.status.success(),
        "curl -r {range} {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn a_video_streams_with_ranges_while_it_downloads_from_a_slow_seed() {
    if !require("ffprobe", "ffmpeg") || !require("curl", "curl") {
        return;
    }
    let d = Dir::new();
    let (_tracker, announce) = tracker();
    std::fs::create_dir_all(d.join("src")).unwrap();
    let video = d.join("src/clip.mkv");
    // About 200 MiB: 607 frames of raw 640x360 video, 24.28 s.
    let out = run(Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x360:rate=25",
        ])
        .args([
            "-frames:v",
            "607",
            "-c:v",
            "rawvideo",
            "-pix_fmt",
            "yuv420p",
        ])
        .arg(&video));
    assert!(
        out.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let full = std::fs::read(&video).unwrap();
    let len = full.len();
    assert!(len > 200_000_000);
    let t = torrent_of(&d, &video, "clip.torrent", 1 << 20, &announce);
    let _seed = start_seed(&t, &d.join("src"), &["--max-upload-rate", "10M"]);
    let daemon = Daemon::start(&d.join("dl"), &d.join("state"), &[]);
    let mut rpc = daemon.client();
    let added = rpc.ok(
        "torrent-add",
        json!({"metainfo": base64_encode(&std::fs::read(&t).unwrap())}),
    );
    let hash = added["torrent-added"]["hashString"]
        .as_str()
        .unwrap()
        .to_string();
    let url = format!("http://{}/stream/{hash}/0", daemon.rpc);

    let probe = run(Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-rw_timeout",
            "60000000",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(&url));
    let duration = String::from_utf8_lossy(&probe.stdout).trim().to_string();
    assert!(
        probe.status.success(),
        "ffprobe: {}",
        String::from_utf8_lossy(&probe.stderr)
    );
    assert!(
        (duration.parse::<f64>().unwrap() - 24.28).abs() < 0.05,
        "duration {duration}"
    );

    let mid = len / 2;
    for (range, want) in [
        ("0-65535".to_string(), &full[..65536]),
        (format!("{mid}-{}", mid + 99_999), &full[mid..mid + 100_000]),
        (format!("-{}", 70_000), &full[len - 70_000..]),
        (format!("{}-", len - 5), &full[len - 5..]),
    ] {
        let got = curl_range(&url, &range);
        assert!(
            got == want,
            "range {range}: {} bytes, not the source's",
            got.len()
        );
    }
    let t = rpc.torrents(&["percentDone"]);
    let p = t[0]["percentDone"].as_f64().unwrap();
    assert!(
        p < 0.9,
        "the reads came after the download ({p}), not during it"
    );
    eprintln!(
        "streamed ffprobe and four ranges at {:.0}% of the download",
        p * 100.0
    );

    // Ranges past the end are refused; a HEAD names the length and takes ranges.
    let a = http(
        daemon.rpc,
        &format!(
            "GET /stream/{hash}/0 HTTP/1.1\nHost: {}\nRange: bytes={}-",
            daemon.rpc,
            len + 10
        ),
        b"",
    );
    assert_eq!(a.status, 416);
    let a = http(
        daemon.rpc,
        &format!("HEAD /stream/{hash}/0 HTTP/1.1\nHost: {}", daemon.rpc),
        b"",
    );
    assert_eq!(a.status, 200);
    assert_eq!(a.header("content-length"), Some(len.to_string().as_str()));
    assert_eq!(a.header("accept-ranges"), Some("bytes"));
    for bad in [
        format!("/stream/{hash}/1"),
        "/stream/zz/0".into(),
        format!("/stream/{hash}/-1"),
    ] {
        let a = http(
            daemon.rpc,
            &format!("GET {bad} HTTP/1.1\nHost: {}", daemon.rpc),
            b"",
        );
        assert!(a.status == 404 || a.status == 400, "{bad}: {}", a.status);
    }
}

#[test]
fn the_web_page_in_headless_chromium_adds_a_magnet_sees_it_finish_pauses_and_removes_it() {
    if !require("chromium", "chromium") || !require("chromedriver", "chromium-driver") {
        return;
    }
    let d = Dir::new();
    let src = d.data_file("src/page.bin", 3_000_001, 71);
    let t = make_torrent(&d, &src, 32768, &[]);
    let seed = start_seed(&t, &d.join("src"), &[]);
    let (hash, _) = magnet_of(&t);
    let magnet = magnet_via(&t, &seed);
    let daemon = Daemon::start(&d.join("dl"), &d.join("state"), &[]);
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-page");
    let _ = std::fs::remove_dir_all(&shots);
    let out = run(Command::new(pypi_python())
        .arg(peer_script("web_page.py"))
        .arg("--url")
        .arg(format!("http://{}/", daemon.rpc))
        .arg("--magnet")
        .arg(&magnet)
        .arg("--hash")
        .arg(hash.to_hex())
        .arg("--screenshots")
        .arg(&shots)
        .args(["--timeout", "90"]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "web_page.py failed:\n{stdout}\n{}\ndaemon: {}",
        String::from_utf8_lossy(&out.stderr),
        daemon.proc.stderr()
    );
    for shot in [
        "01-loaded",
        "02-added",
        "03-complete",
        "04-paused",
        "05-removed",
    ] {
        let p = shots.join(format!("{shot}.png"));
        let len = std::fs::metadata(&p).map_or(0, |m| m.len());
        assert!(len > 1000, "no screenshot {}", p.display());
    }
    eprintln!("screenshots in {}", shots.display());
    // It was fetched whole before it was removed (the page removes without the data).
    assert_same_file(&src, &d.join("dl/page.bin"));
    let mut rpc = daemon.client();
    assert!(rpc.torrents(&["id"]).is_empty());
}

#[test]
fn a_seeding_goal_stops_the_torrent_and_marks_it_finished() {
    let d = Dir::new();
    let src = d.data_file("src/goal.bin", 1_500_007, 81);
    let t = make_torrent(&d, &src, 32768, &[]);
    std::fs::create_dir_all(d.join("dl")).unwrap();
    std::fs::copy(&src, d.join("dl/goal.bin")).unwrap();
    let daemon = Daemon::start(&d.join("dl"), &d.join("state"), &[]);
    let mut rpc = daemon.client();
    let added = rpc.ok(
        "torrent-add",
        json!({"metainfo": base64_encode(&std::fs::read(&t).unwrap())}),
    );
    let id = added["torrent-added"]["id"].clone();
    rpc.ok(
        "torrent-set",
        json!({"ids": [id], "seedRatioLimit": 1.0, "seedRatioMode": 1}),
    );
    let fields = [
        "status",
        "isFinished",
        "uploadedEver",
        "uploadRatio",
        "seedRatioLimit",
    ];
    rpc.wait_for("seeding", &fields, TIMEOUT, |t| t[0]["status"] == 6);
    assert_eq!(rpc.torrents(&fields)[0]["isFinished"], false);
    // A fetcher takes it all: the ratio reaches 1 and the daemon stops seeding.
    let mut fetch = start_fetch(&t, &d.join("leech"), &[daemon.proc.addr], &[]);
    let (code, _) = fetch.wait(TIMEOUT);
    assert_eq!(code, Some(0));
    let t = rpc.wait_for("the goal", &fields, TIMEOUT, |t| t[0]["status"] == 0);
    assert_eq!(t[0]["isFinished"], true, "{:?}", t[0]);
    assert!(t[0]["uploadRatio"].as_f64().unwrap() >= 1.0, "{:?}", t[0]);
    assert_same_file(&src, &d.join("leech/goal.bin"));
}

#[test]
fn the_watch_folder_adds_torrents_and_magnets_put_there() {
    let d = Dir::new();
    let src = d.data_file("src/w.bin", 700_001, 82);
    let (_tracker, announce) = tracker();
    let t = torrent_of(&d, &src, "w.torrent", 32768, &announce);
    let other = d.data_file("src/m.bin", 300_001, 83);
    let tm = make_torrent(&d, &other, 16384, &[]);
    let seed = start_seed(&t, &d.join("src"), &[tm.to_str().unwrap()]);
    let (_, magnet) = magnet_of(&tm);
    std::fs::create_dir_all(d.join("watch")).unwrap();
    let daemon = Daemon::start(
        &d.join("dl"),
        &d.join("state"),
        &["--watch", d.join("watch").to_str().unwrap()],
    );
    let mut rpc = daemon.client();
    std::fs::copy(&t, d.join("watch/w.torrent")).unwrap();
    std::fs::write(
        d.join("watch/m.magnet"),
        format!("{magnet}&x.pe={}\n", seed.addr),
    )
    .unwrap();
    std::fs::write(d.join("watch/junk.torrent"), b"d4:junke").unwrap();
    rpc.wait_for(
        "the watched torrent",
        &["name", "percentDone"],
        TIMEOUT,
        |t| t.len() == 2 && t.iter().all(done),
    );
    assert_same_file(&src, &d.join("dl/w.bin"));
    assert_same_file(&other, &d.join("dl/m.bin"));
    assert!(d.join("watch/w.torrent.added").exists());
    assert!(d.join("watch/junk.torrent.invalid").exists());
    assert!(
        daemon.proc.stderr().contains("junk.torrent"),
        "a bad file is not reported: {}",
        daemon.proc.stderr()
    );
}

#[test]
fn an_rpc_off_loopback_needs_a_password_and_bad_options_are_bad_usage() {
    let d = Dir::new();
    let out = run(share()
        .args(["daemon", "--listen", "127.0.0.1:0", "--rpc", "0.0.0.0:0"])
        .arg("--download-dir")
        .arg(d.join("dl"))
        .arg("--state-dir")
        .arg(d.join("state")));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--rpc-auth"));
    for bad in [&["--rpc-auth", "nopassword"][..], &["--rpc", "nowhere"]] {
        let out = run(share().arg("daemon").args(bad));
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
    }
}

#[test]
fn torrent_add_takes_an_http_url() {
    let d = Dir::new();
    let src = d.data_file("src/u.bin", 200_003, 95);
    let t = make_torrent(&d, &src, 16384, &[]);
    std::fs::create_dir_all(d.join("www")).unwrap();
    std::fs::copy(&t, d.join("www/u.torrent")).unwrap();
    let port = free_port();
    let mut server = Command::new(python())
        .args([
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
        ])
        .current_dir(d.join("www"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let daemon = Daemon::start(&d.join("dl"), &d.join("state"), &[]);
    let mut rpc = daemon.client();
    let url = format!("http://127.0.0.1:{port}/u.torrent");
    let deadline = Instant::now() + TIMEOUT;
    let added = loop {
        let v = rpc.call("torrent-add", json!({ "filename": url, "paused": true }));
        if v["result"] == "success" || Instant::now() > deadline {
            break v;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(added["result"], "success", "{added}");
    assert_eq!(added["arguments"]["torrent-added"]["name"], "u.bin");
}

#[test]
fn verify_set_location_free_space_priorities_and_goals_answer_as_transmission_does() {
    let d = Dir::new();
    d.data_file("src/pair/a.bin", 300_007, 96);
    d.data_file("src/pair/b.bin", 200_003, 97);
    let t = make_torrent(&d, &d.join("src/pair"), 16384, &[]);
    std::fs::create_dir_all(d.join("dl")).unwrap();
    ok(Command::new("cp")
        .arg("-r")
        .arg(d.join("src/pair"))
        .arg(d.join("dl/")));
    let daemon = Daemon::start(&d.join("dl"), &d.join("state"), &[]);
    let mut rpc = daemon.client();
    let added = rpc.ok(
        "torrent-add",
        json!({"metainfo": base64_encode(&std::fs::read(&t).unwrap()), "priority-high": [1]}),
    );
    let id = added["torrent-added"]["id"].clone();
    let fields = [
        "status",
        "percentDone",
        "priorities",
        "downloadDir",
        "seedIdleLimit",
        "seedIdleMode",
    ];
    let t0 = rpc.wait_for("seeding", &fields, TIMEOUT, |t| t[0]["status"] == 6);
    assert_eq!(t0[0]["priorities"], json!([0, 1]), "{:?}", t0[0]);

    // torrent-verify: checked again (hashing what is on disk), then seeding again.
    rpc.ok("torrent-verify", json!({ "ids": [id] }));
    rpc.wait_for("the check", &fields, TIMEOUT, |t| {
        t[0]["status"] == 6 && done(&t[0])
    });

    // Moved inside the download folder, with its data.
    rpc.ok(
        "torrent-set-location",
        json!({"ids": [id], "location": "moved", "move": true}),
    );
    let root = std::fs::canonicalize(d.join("dl")).unwrap();
    let t1 = rpc.wait_for("the move", &fields, TIMEOUT, |t| {
        t[0]["downloadDir"] == root.join("moved").to_str().unwrap() && t[0]["status"] == 6
    });
    assert!(done(&t1[0]), "{:?}", t1[0]);
    assert_same_file(&d.join("src/pair/a.bin"), &d.join("dl/moved/pair/a.bin"));
    assert!(!d.join("dl/pair/a.bin").exists(), "the old copy stayed");

    let free = rpc.ok("free-space", json!({ "path": root.to_str().unwrap() }));
    assert!(free["size-bytes"].as_u64().unwrap() > 0, "{free}");
    // On loopback, with no mapping and no peer from outside: not known to be open.
    let port = rpc.ok("port-test", json!({}));
    assert_eq!(port["port-is-open"], false, "{port}");

    // Goals are kept and read back (the idle one stops a torrent after minutes: a unit of
    // time the suite does not wait for).
    rpc.ok(
        "torrent-set",
        json!({"ids": [id], "seedIdleLimit": 5, "seedIdleMode": 1, "priority-low": [0]}),
    );
    let t2 = rpc.torrents(&fields);
    assert_eq!(t2[0]["seedIdleLimit"], 5);
    assert_eq!(t2[0]["seedIdleMode"], 1);
    assert_eq!(t2[0]["priorities"], json!([-1, 1]));
    // And they survive a restart.
    let mut daemon = daemon;
    daemon.proc.stop();
    let daemon = Daemon::start(&d.join("dl"), &d.join("state"), &[]);
    let mut rpc = daemon.client();
    let t3 = rpc.wait_for("the restart", &fields, TIMEOUT, |t| {
        t.len() == 1 && t[0]["status"] == 6
    });
    assert_eq!(t3[0]["seedIdleLimit"], 5);
    assert_eq!(t3[0]["priorities"], json!([-1, 1]));
    assert_eq!(t3[0]["downloadDir"], root.join("moved").to_str().unwrap());
}
