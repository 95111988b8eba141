//! Network namespaces made by a test: two hosts joined by a veth pair, with addresses of
//! their own and a multicast route, and nothing else. What runs inside can use local service
//! discovery (multicast) without anything leaving the machine. Dropping the pair stops
//! every process still inside and deletes both namespaces.

use std::ffi::OsStr;
use std::process::Command;

/// Two namespaces, `a` and `b`, at `ip_a` and `ip_b` on one link.
pub struct Pair {
    pub a: String,
    pub b: String,
    pub ip_a: String,
    pub ip_b: String,
}

fn sh(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Pair {
    /// Makes the pair. Fails the test with a clear message when this cannot be done (not
    /// root, or no `ip`): namespace tests need root, as CI has.
    pub fn new() -> Pair {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let pid = std::process::id();
        let tag = format!("sht{}x{n}", pid % 100_000);
        let net = format!("10.{}.{}", 100 + pid % 100, 10 + n % 200);
        let p = Pair {
            a: format!("{tag}a"),
            b: format!("{tag}b"),
            ip_a: format!("{net}.1"),
            ip_b: format!("{net}.2"),
        };
        if let Err(e) = p.build(&tag) {
            panic!(
                "this test makes network namespaces, which needs root and iproute2 \
                 (scripts/test installs it; CI runs as root): {e}"
            );
        }
        p
    }

    fn build(&self, tag: &str) -> Result<(), String> {
        let (va, vb) = (format!("{tag}va"), format!("{tag}vb"));
        sh(&["ip", "netns", "add", &self.a])?;
        sh(&["ip", "netns", "add", &self.b])?;
        sh(&[
            "ip", "link", "add", &va, "type", "veth", "peer", "name", &vb,
        ])?;
        sh(&["ip", "link", "set", &va, "netns", &self.a])?;
        sh(&["ip", "link", "set", &vb, "netns", &self.b])?;
        for (ns, dev, ip) in [(&self.a, &va, &self.ip_a), (&self.b, &vb, &self.ip_b)] {
            let x = |args: &[&str]| {
                let mut all = vec!["ip", "netns", "exec", ns.as_str()];
                all.extend_from_slice(args);
                sh(&all)
            };
            x(&["ip", "link", "set", "lo", "up"])?;
            x(&["ip", "addr", "add", &format!("{ip}/24"), "dev", dev])?;
            x(&["ip", "link", "set", dev, "up"])?;
            x(&["ip", "route", "add", "224.0.0.0/4", "dev", dev])?;
        }
        Ok(())
    }

    /// `cmd` run inside namespace `ns` (its program, arguments and environment).
    pub fn exec(ns: &str, cmd: &Command) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).arg(cmd.get_program());
        c.args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        c
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-KILL", pid]).status();
                }
            }
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

/// The arguments as strings, for messages.
#[allow(dead_code)]
pub fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(OsStr::to_string_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}
