//! Helpers for the DHT tests: loopback addresses, a small network of our nodes, waiting
//! with a deadline, and `lt_dht.py` (libtorrent DHT nodes) as a child process.

use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use share_engine::dht::{spawn_standalone, DhtConfig, DhtHandle};

/// The port our nodes announce.
pub const ANNOUNCE_PORT: u16 = 7777;

/// 127.a.b.c on any port.
pub fn ip(a: u8, b: u8, c: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, a, b, 1 + c)), 0)
}

/// A config that names its bootstrap nodes (never the public routers).
pub fn config(bootstrap: Vec<String>, state_file: Option<PathBuf>) -> DhtConfig {
    for b in &bootstrap {
        assert!(b.starts_with("127."), "tests use loopback nodes only: {b}");
    }
    let mut c = DhtConfig::new(ANNOUNCE_PORT);
    c.bootstrap = bootstrap;
    c.state_file = state_file;
    c
}

/// `n` of our nodes on 127.`net`.i.1, each bootstrapping from node 0 and started a little
/// after the previous one.
pub async fn start_net(n: usize, net: u8) -> Vec<DhtHandle> {
    let first = spawn_standalone(ip(net, 0, 0), config(vec![], None))
        .await
        .unwrap();
    let boot = vec![first.local_addr().to_string()];
    let mut nodes = vec![first];
    for i in 1..n {
        let h = spawn_standalone(ip(net, i as u8, 0), config(boot.clone(), None))
            .await
            .unwrap();
        nodes.push(h);
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    nodes
}

/// Polls `cond` every 100 ms until it holds (`Some(())`) or `limit` passes (`None`).
pub async fn wait_for<F, Fut>(limit: Duration, mut cond: F) -> Option<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond().await {
            return Some(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// `tests/peers/lt_dht.py`: libtorrent DHT nodes on 127.`net`.i.1:6881, driven by lines.
pub struct LtDht {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: std_mpsc::Receiver<String>,
}

impl LtDht {
    pub fn start(nodes: usize, net: u8, bootstrap: &[SocketAddr]) -> LtDht {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/peers/lt_dht.py");
        let mut cmd = Command::new("/usr/bin/python3");
        cmd.arg(script).args([
            "--nodes",
            &nodes.to_string(),
            "--net",
            &net.to_string(),
            "--timeout",
            "280",
        ]);
        for b in bootstrap {
            cmd.args(["--bootstrap", &b.to_string()]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 with libtorrent (scripts/install-peers)");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std_mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        LtDht {
            stdin: child.stdin.take(),
            child,
            lines: rx,
        }
    }

    pub fn send(&mut self, line: &str) {
        if let Some(s) = self.stdin.as_mut() {
            let _ = writeln!(s, "{line}");
            let _ = s.flush();
        }
    }

    /// The next line starting with `prefix`, skipping others, within `limit`.
    pub fn wait_line(&mut self, prefix: &str, limit: Duration) -> Option<String> {
        let end = Instant::now() + limit;
        loop {
            let left = end.checked_duration_since(Instant::now())?;
            match self.lines.recv_timeout(left) {
                Ok(l) if l.starts_with(prefix) => return Some(l),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }

    /// Asks it to quit, then kills it (by its PID) if it has not within 5 s.
    pub fn stop(mut self) {
        self.send("quit");
        self.stdin = None;
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for LtDht {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
