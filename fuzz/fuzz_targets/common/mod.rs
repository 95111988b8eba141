//! What the in-process targets (`torrent_task`, `udp_datagrams`) share: a panic in any
//! task aborts (the fuzzer reports it), one runtime of one worker, and a session that
//! stays on loopback.

use share_engine::{SessionConfig, Transports};

/// Makes every panic, in any thread or task, abort the process.
pub fn abort_on_panic() {
    std::panic::set_hook(Box::new(|info| {
        eprintln!("panic: {info}");
        std::process::abort();
    }));
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// A session on 127.0.0.1 with LSD off and the loopback promise made.
pub fn loopback_config(state: std::path::PathBuf, utp: bool) -> SessionConfig {
    let mut c = SessionConfig::new("127.0.0.1:0".parse().unwrap(), state);
    c.lsd = false;
    c.dht = None;
    c.loopback_only = true;
    c.transports = Transports { tcp: true, utp };
    c
}
