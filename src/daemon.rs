//! `share daemon`: one session and the daemon crate around it, until SIGINT or SIGTERM.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result};
use share_daemon::{Daemon, DaemonConfig};
use share_engine::TorrentConfig;

use crate::cli::DaemonArgs;
use crate::signals::Stop;
use crate::transfer::{base_session_config, bind_session};

pub fn run(args: DaemonArgs) -> Result<()> {
    let mut session_config = base_session_config(
        args.listen,
        &args.limits,
        args.max_download_rate,
        &args.discovery,
        &args.transport,
        &args.files,
        true,
    )?;
    session_config.egress = crate::transfer::egress(&args.egress)?;
    let config = DaemonConfig {
        rpc: args.rpc,
        auth: args.rpc_auth.clone(),
        download_dir: args.download_dir(),
        state_dir: args.discovery.state_dir(),
        watch: args.watch.clone(),
        host_names: args.rpc_host_names.clone(),
        torrent: TorrentConfig {
            stop_when_complete: false,
            upload_slots: args.limits.upload_slots,
            max_peers: args.limits.max_peers.max(1),
            ..TorrentConfig::default()
        },
        session: share_daemon::SessionSettings {
            dht: session_config.dht.is_some(),
            tcp: session_config.transports.tcp,
            // No mapping under a proxy (the session says why): session-get shows it off.
            port_mapping: session_config.port_mapping && !session_config.egress.is_proxied(),
            peer_limit_global: session_config.max_connections,
            max_upload_rate: session_config.max_upload_rate,
            max_download_rate: session_config.max_download_rate,
        },
        blocklists: args.egress.blocklists.clone(),
    };
    // Refused before anything binds: an RPC open to the network without a password.
    if config.auth.is_none() && !config.rpc.ip().is_loopback() {
        anyhow::bail!(
            "the RPC address {} is not on loopback: give --rpc-auth USER:PASS to serve it there",
            config.rpc
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async move {
        let mut stop = Stop::install()?;
        let session = bind_session(session_config).await?;
        tokio::spawn(
            crate::ui::View::new(false, crate::transfer::Kind::Seed, 1)
                .follow_reachability(session.reachability()),
        );
        tokio::spawn(give_back_memory_at_rest());
        let daemon = Daemon::start(session.clone(), config).await?;
        println!("rpc on http://{}/", daemon.rpc_addr());
        std::io::stdout().flush()?;
        daemon
            .run(async move {
                stop.recv().await;
            })
            .await;
        session.shutdown().await;
        Ok(())
    })
}

/// CPU time this process has used (user and system).
fn cpu_time() -> Duration {
    // SAFETY: getrusage writes into the struct it is given and nothing else.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return Duration::ZERO;
    }
    let t = |v: libc::timeval| Duration::new(v.tv_sec as u64, v.tv_usec as u32 * 1000);
    t(u.ru_utime) + t(u.ru_stime)
}

/// A daemon mostly rests, and `main` tells the allocator to keep freed memory for the next
/// transfer: once it has used under 5% of a core for 30 s, the memory its transfers freed
/// is handed back to the kernel (`malloc_trim`), so a seedbox at rest holds what its
/// torrents need, not its busiest minute.
async fn give_back_memory_at_rest() {
    const EVERY: Duration = Duration::from_secs(30);
    let mut tick = tokio::time::interval(EVERY);
    tick.tick().await;
    let mut last = cpu_time();
    loop {
        tick.tick().await;
        let now = cpu_time();
        if now.saturating_sub(last) < EVERY / 20 {
            #[cfg(all(target_os = "linux", target_env = "gnu"))]
            let _ = tokio::task::spawn_blocking(|| {
                // SAFETY: malloc_trim only returns free heap memory to the kernel.
                unsafe { libc::malloc_trim(0) }
            })
            .await;
        }
        last = cpu_time();
    }
}
