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

/// Namespaces joined by veth links of a test's own design (names, addresses, routes), for
/// the egress tests. Dropping the lab stops every process still inside and deletes every
/// namespace it made.
pub struct Lab {
    tag: String,
    made: Vec<String>,
    links: u32,
}

impl Lab {
    /// A lab, or a clear failure when namespaces cannot be made (not root, no `ip`).
    pub fn new() -> Lab {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Lab {
            tag: format!("shl{}x{n}", std::process::id() % 100_000),
            made: Vec::new(),
            links: 0,
        }
    }

    fn fail(e: String) -> ! {
        panic!(
            "this test makes network namespaces, which needs root and iproute2 \
             (scripts/test installs it; CI runs as root): {e}"
        )
    }

    /// A namespace with its loopback up; its full name.
    pub fn ns(&mut self, short: &str) -> String {
        let name = format!("{}{short}", self.tag);
        sh(&["ip", "netns", "add", &name]).unwrap_or_else(|e| Lab::fail(e));
        self.made.push(name.clone());
        self.run(&name, &["ip", "link", "set", "lo", "up"]);
        name
    }

    /// Runs `args` inside `ns`; fails the test if it fails.
    pub fn run(&self, ns: &str, args: &[&str]) {
        let mut all = vec!["ip", "netns", "exec", ns];
        all.extend_from_slice(args);
        sh(&all).unwrap_or_else(|e| Lab::fail(e));
    }

    /// The standard output of `args` inside `ns`.
    pub fn output(&self, ns: &str, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .output()
            .unwrap_or_else(|e| Lab::fail(e.to_string()));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A veth link between `a` (device `a_dev`, address `a_ip/24`) and `b` (`b_dev`,
    /// `b_ip/24`), both up. The devices are made under unique names and renamed inside
    /// their namespaces, so two labs never collide.
    pub fn link(&mut self, a: &str, a_dev: &str, a_ip: &str, b: &str, b_dev: &str, b_ip: &str) {
        self.links += 1;
        let (ta, tb) = (
            format!("{}l{}a", self.tag, self.links),
            format!("{}l{}b", self.tag, self.links),
        );
        let go = || -> Result<(), String> {
            sh(&[
                "ip", "link", "add", &ta, "type", "veth", "peer", "name", &tb,
            ])?;
            sh(&["ip", "link", "set", &ta, "netns", a])?;
            sh(&["ip", "link", "set", &tb, "netns", b])?;
            Ok(())
        };
        go().unwrap_or_else(|e| Lab::fail(e));
        for (ns, tmp, dev, ip) in [(a, &ta, a_dev, a_ip), (b, &tb, b_dev, b_ip)] {
            self.run(ns, &["ip", "link", "set", "dev", tmp, "name", dev]);
            // Only the addresses a test gives: no IPv6 autoconfiguration chatter.
            self.run(
                ns,
                &[
                    "sysctl",
                    "-q",
                    "-w",
                    &format!("net.ipv6.conf.{dev}.disable_ipv6=1"),
                ],
            );
            self.run(ns, &["ip", "addr", "add", &format!("{ip}/24"), "dev", dev]);
            self.run(ns, &["ip", "link", "set", "dev", dev, "up"]);
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in &self.made {
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
