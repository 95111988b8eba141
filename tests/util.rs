//! A small harness: temp folders, the `share` binary, and real tools that must be present.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Tests run in parallel; one whose assertion depends on timing runs alone. Every test's
/// temporary folder holds this lock shared, and [`Dir::alone`] holds it exclusively.
static TIMING: std::sync::RwLock<()> = std::sync::RwLock::new(());

#[allow(clippy::large_enum_variant)]
enum Turn {
    Shared(std::sync::RwLockReadGuard<'static, ()>),
    Alone(std::sync::RwLockWriteGuard<'static, ()>),
}

/// A temporary folder that is removed when dropped.
pub struct Dir {
    pub tmp: tempfile::TempDir,
    _turn: Turn,
}

impl Dir {
    pub fn new() -> Dir {
        let turn = Turn::Shared(TIMING.read().unwrap_or_else(|p| p.into_inner()));
        Dir {
            tmp: tempfile::tempdir().expect("temp dir"),
            _turn: turn,
        }
    }

    /// A folder for a test that must not share the machine with other tests.
    pub fn alone() -> Dir {
        let turn = Turn::Alone(TIMING.write().unwrap_or_else(|p| p.into_inner()));
        Dir {
            tmp: tempfile::tempdir().expect("temp dir"),
            _turn: turn,
        }
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.tmp.path().join(p)
    }

    /// Writes `len` bytes of deterministic, piece-distinct data to `rel`.
    pub fn data_file(&self, rel: &str, len: usize, seed: u64) -> PathBuf {
        let path = self.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, pseudo_random(len, seed)).unwrap();
        path
    }
}

/// Deterministic bytes (xorshift), so that every piece differs.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The `share` binary under test, with the harness's promise that nothing leaves this
/// machine: `SHARE_LOOPBACK_ONLY=1` (share refuses to start a DHT that would bootstrap from
/// public nodes, local service discovery or port mapping, and dials loopback addresses
/// only), the DHT, LSD and port mapping off by default (`SHARE_NO_DHT`, `SHARE_NO_LSD`,
/// `SHARE_NO_PORT_MAPPING`; a test may pass loopback `--dht-bootstrap` nodes), and a fresh
/// state folder of its own.
pub fn share() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_share"));
    c.env("SHARE_LOOPBACK_ONLY", "1")
        .env("SHARE_NO_DHT", "1")
        .env("SHARE_NO_LSD", "1")
        .env("SHARE_NO_PORT_MAPPING", "1")
        .env("XDG_STATE_HOME", fresh_state_dir());
    c
}

/// `share` for a test that runs it inside a network namespace of its own (LSD, and a DHT
/// on the namespace's addresses, allowed): no loopback promise, but still a fresh state
/// folder, and the DHT and port mapping off unless the test turns them on
/// (`SHARE_NO_PORT_MAPPING=0`).
pub fn share_in_namespace() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_share"));
    c.env("SHARE_NO_DHT", "1")
        .env("SHARE_NO_PORT_MAPPING", "1")
        .env("XDG_STATE_HOME", fresh_state_dir());
    c
}

/// A state folder no other command of this test run shares.
fn fresh_state_dir() -> PathBuf {
    static BASE: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let base = BASE.get_or_init(|| tempfile::tempdir().expect("temp dir"));
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    base.path().join(format!("state-{n}"))
}

/// Runs a command and returns its output, failing the test if it could not start.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("could not run {cmd:?}: {e}"))
}

/// Runs a command that must succeed; returns its standard output.
pub fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// The `info-hash:` line of `share create` output.
pub fn info_hash_line(stdout: &str) -> String {
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines.len() >= 2, "create printed too little: {stdout}");
    let hash = lines[lines.len() - 2]
        .strip_prefix("info-hash: ")
        .unwrap_or_else(|| panic!("no info-hash line in {stdout}"));
    assert!(lines[lines.len() - 1].starts_with("magnet: magnet:?xt=urn:btih:"));
    hash.to_owned()
}

/// Whether interop tests may be skipped: only when SHARE_SKIP_INTEROP=1 is set explicitly.
pub fn skip_interop() -> bool {
    std::env::var("SHARE_SKIP_INTEROP").as_deref() == Ok("1")
}

/// Checks that a real tool is installed. A missing tool fails the test with a clear message
/// (returns false only when SHARE_SKIP_INTEROP=1 says to skip).
#[must_use]
pub fn require(tool: &str, package: &str) -> bool {
    if skip_interop() {
        eprintln!("SHARE_SKIP_INTEROP=1: skipping a test that needs {tool}");
        return false;
    }
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{tool} is not installed: this interop test needs the Debian package `{package}` \
         (scripts/test installs it: apt-get install -y {package})"
    );
    true
}

/// Checks that python3 can import libtorrent (python3-libtorrent).
#[must_use]
pub fn require_libtorrent() -> bool {
    if !require("python3", "python3") {
        return false;
    }
    let ok = Command::new(python())
        .args(["-c", "import libtorrent"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "python3 cannot import libtorrent: interop tests need the Debian package \
         `python3-libtorrent` (scripts/test installs it)"
    );
    true
}

/// The Python that has Debian's python3-libtorrent (the system one, not a pyenv shim).
pub fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// The Python on PATH, where scripts/install-peers put the PyPI packages (selenium,
/// transmission-rpc).
pub fn pypi_python() -> &'static str {
    "python3"
}

/// A helper script under tests/peers/.
pub fn peer_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/peers")
        .join(name)
}

/// The repository's fixtures folder.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// A background process started by a test: stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Proc {
    pub child: std::process::Child,
    /// The address from its `listening on` line.
    pub addr: std::net::SocketAddr,
    lines: std::sync::mpsc::Receiver<String>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
    pub stdout: Vec<String>,
}

/// Longest a test waits for a process to say it is listening.
pub const START_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

impl Proc {
    /// Spawns `cmd` and waits for its `listening on IP:PORT` line.
    pub fn start(cmd: &mut Command) -> Proc {
        let mut p = Proc::start_with(cmd, |l| l.starts_with("listening on "));
        let line = p.stdout.last().cloned().unwrap_or_default();
        p.addr = line["listening on ".len()..]
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{cmd:?}: not an address: {line}"));
        p
    }

    /// Spawns `cmd` and waits for a line of standard output that matches `ready`.
    pub fn start_with(cmd: &mut Command, ready: impl Fn(&str) -> bool) -> Proc {
        Proc::spawn(cmd.stdin(std::process::Stdio::null()), ready)
    }

    /// As [`Proc::start_with`], with standard input piped (`child.stdin`) for commands.
    pub fn start_with_stdin(cmd: &mut Command, ready: impl Fn(&str) -> bool) -> Proc {
        Proc::spawn(cmd.stdin(std::process::Stdio::piped()), ready)
    }

    fn spawn(cmd: &mut Command, ready: impl Fn(&str) -> bool) -> Proc {
        use std::io::{BufRead, Read};
        use std::process::Stdio;
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {cmd:?}: {e}"));
        let (tx, lines) = std::sync::mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut err = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut p = Proc {
            child,
            addr: "0.0.0.0:0".parse().unwrap(),
            lines,
            stderr,
            stdout: Vec::new(),
        };
        if p.wait_line(ready, START_TIMEOUT).is_none() {
            panic!("{cmd:?} never said it was ready; stderr: {}", p.stderr());
        }
        p
    }

    /// Waits for a line of standard output that matches.
    pub fn wait_line(
        &mut self,
        matches: impl Fn(&str) -> bool,
        timeout: std::time::Duration,
    ) -> Option<String> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(std::time::Instant::now())?;
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.stdout.push(line.clone());
                    if matches(&line) {
                        return Some(line);
                    }
                }
                Err(_) => return None,
            }
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until standard error holds `needle`; false on timeout.
    pub fn wait_stderr(&self, needle: &str, timeout: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if self.stderr.lock().unwrap().contains(needle) {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        false
    }

    /// Waits for the process to exit on its own; returns its exit code and all its stdout.
    pub fn wait(&mut self, timeout: std::time::Duration) -> (Option<i32>, Vec<String>) {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                while let Ok(l) = self
                    .lines
                    .recv_timeout(std::time::Duration::from_millis(200))
                {
                    self.stdout.push(l);
                }
                return (status.code(), self.stdout.clone());
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "process did not exit within {timeout:?}; stderr: {}",
                    self.stderr()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// SIGTERM, then waits for the exit (SIGKILL after a timeout).
    pub fn stop(&mut self) -> (Option<i32>, Vec<String>) {
        signal(&self.child, "TERM");
        self.wait(std::time::Duration::from_secs(20))
    }

    /// The `uploaded: U downloaded: D` numbers from its last line.
    pub fn transfer_counts(&self) -> (u64, u64) {
        let last = self.stdout.last().cloned().unwrap_or_default();
        parse_counts(&last).unwrap_or_else(|| panic!("last line is not the counts: {last:?}"))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            signal(&self.child, "TERM");
            std::thread::sleep(std::time::Duration::from_millis(200));
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Sends a signal by name to a child.
pub fn signal(child: &std::process::Child, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status();
}

/// Parses `uploaded: U downloaded: D`.
pub fn parse_counts(line: &str) -> Option<(u64, u64)> {
    let rest = line.strip_prefix("uploaded: ")?;
    let (up, down) = rest.split_once(" downloaded: ")?;
    Some((up.parse().ok()?, down.parse().ok()?))
}

/// Creates a torrent of `path` with `share create`; returns the torrent's path.
pub fn make_torrent(d: &Dir, path: &Path, piece_len: u32, extra: &[&str]) -> PathBuf {
    let out = d.join("t.torrent");
    ok(share()
        .arg("create")
        .arg(path)
        .args([
            "-q",
            "--no-date",
            "--piece-length",
            &piece_len.to_string(),
            "-o",
        ])
        .arg(&out)
        .args(extra));
    out
}

/// `share seed` of `torrent` with content under `dir`, on a free loopback port.
pub fn start_seed(torrent: &Path, dir: &Path, extra: &[&str]) -> Proc {
    Proc::start(
        share()
            .arg("seed")
            .arg(torrent)
            .arg("-d")
            .arg(dir)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra),
    )
}

/// `share fetch` of `torrent` into `dir` from `peers`, on a free loopback port.
pub fn start_fetch(
    torrent: &Path,
    dir: &Path,
    peers: &[std::net::SocketAddr],
    extra: &[&str],
) -> Proc {
    start_fetch_of(torrent.as_os_str(), dir, peers, extra)
}

/// `share fetch` of a .torrent path or a magnet link.
pub fn start_fetch_of(
    torrent: impl AsRef<std::ffi::OsStr>,
    dir: &Path,
    peers: &[std::net::SocketAddr],
    extra: &[&str],
) -> Proc {
    let mut cmd = share();
    cmd.arg("fetch")
        .arg(torrent)
        .arg("-o")
        .arg(dir)
        .args(["--listen", "127.0.0.1:0"])
        .args(extra);
    for p in peers {
        cmd.arg("--peer").arg(p.to_string());
    }
    Proc::start(&mut cmd)
}

/// The torrent's info-hash and magnet link (`magnet:?xt=urn:btih:...&dn=...&tr=...`).
pub fn magnet_of(torrent: &Path) -> (share_core::InfoHash, String) {
    let m = share_core::Metainfo::from_bytes(&std::fs::read(torrent).unwrap()).unwrap();
    (m.info_hash, m.magnet())
}

/// Peak resident memory of a running process, in bytes (VmHWM).
pub fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// A free TCP port on 127.0.0.1 (free now; a test that binds it later may race).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Asserts two files have the same bytes (without printing them).
pub fn assert_same_file(a: &Path, b: &Path) {
    let x = std::fs::read(a).unwrap_or_else(|e| panic!("{}: {e}", a.display()));
    let y = std::fs::read(b).unwrap_or_else(|e| panic!("{}: {e}", b.display()));
    assert!(x == y, "{} and {} differ", a.display(), b.display());
}

/// How many bytes of whole pieces of `part` already equal those of `full` (pieces of
/// `piece` bytes): what a download has verified and written so far.
pub fn bytes_in_place(full: &[u8], part: &Path, piece: usize) -> usize {
    let got = std::fs::read(part).unwrap_or_default();
    full.chunks(piece)
        .zip(got.chunks(piece))
        .filter(|(a, b)| a == b)
        .map(|(a, _)| a.len())
        .sum()
}

// ---- A raw peer, for tests that speak the wire protocol themselves ----

/// Connects and handshakes as a peer with the fast extension; returns the stream.
pub fn handshake(addr: std::net::SocketAddr, hash: share_core::InfoHash) -> std::net::TcpStream {
    use share_core::wire::Handshake;
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    s.write_all(&Handshake::new(hash, *b"-XX0000-testpeer0000").encode())
        .unwrap();
    let mut buf = [0u8; 68];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(Handshake::decode(&buf).unwrap().info_hash, hash);
    s
}

/// For a raw peer that speaks plaintext only: accepts connections until one begins with a
/// BitTorrent handshake (share dials encrypted first and falls back to plaintext when the
/// peer drops it, as this does), reads that handshake and returns the stream.
pub fn accept_plaintext(listener: &std::net::TcpListener) -> Option<std::net::TcpStream> {
    use std::io::Read;
    for _ in 0..10 {
        let (mut s, _) = listener.accept().ok()?;
        s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
            .unwrap();
        let mut hs = [0u8; 68];
        if s.read_exact(&mut hs).is_ok() && share_core::wire::Handshake::decode(&hs).is_ok() {
            return Some(s);
        }
    }
    None
}

/// Writes one message.
pub fn send(s: &mut std::net::TcpStream, m: share_core::wire::Message) {
    use std::io::Write;
    let mut out = bytes::BytesMut::new();
    m.encode(&mut out);
    s.write_all(&out).unwrap();
}

/// Reads messages until one matches, or the peer closes or stays silent past the read
/// timeout (None).
pub fn read_until(
    s: &mut std::net::TcpStream,
    buf: &mut bytes::BytesMut,
    want: impl Fn(&share_core::wire::Message) -> bool,
) -> Option<share_core::wire::Message> {
    use share_core::wire;
    use std::io::Read;
    loop {
        while let Some(m) = wire::decode(buf, wire::max_frame(100_000)).unwrap() {
            if want(&m) {
                return Some(m);
            }
        }
        let mut chunk = [0u8; 65536];
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}
