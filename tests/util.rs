//! A small harness: temp folders, the `share` binary, and real tools that must be present.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A temporary folder that is removed when dropped.
pub struct Dir {
    pub tmp: tempfile::TempDir,
}

impl Dir {
    pub fn new() -> Dir {
        Dir {
            tmp: tempfile::tempdir().expect("temp dir"),
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

/// The `share` binary under test.
pub fn share() -> Command {
    Command::new(env!("CARGO_BIN_EXE_share"))
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
