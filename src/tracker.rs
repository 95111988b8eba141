//! `share tracker`: a small tracker for a LAN or a test. At internet scale, point torrents at
//! a real tracker such as opentracker (share works with it) and the mainline DHT.

use std::io::Write;

use anyhow::{Context, Result};
use share_engine::{CancellationToken, TrackerLimits, TrackerServer};

use crate::cli::TrackerArgs;

pub fn run(args: TrackerArgs) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async move {
        let mut signals = crate::signals::Stop::install()?;
        let limits = TrackerLimits {
            max_torrents: args.max_torrents,
            max_peers: args.max_peers,
            interval: args.interval.max(1),
            peer_ttl: u64::from(args.interval.max(1)) * 2 + 30,
        };
        let server = TrackerServer::bind(args.listen, limits)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let addr = server.local_addr()?;
        println!("listening on {addr}");
        std::io::stdout().flush()?;
        if !args.quiet {
            eprintln!("announce: http://{addr}/announce  udp://{addr}/announce");
        }
        let stop = CancellationToken::new();
        let on_signal = stop.clone();
        tokio::spawn(async move {
            signals.recv().await;
            on_signal.cancel();
        });
        server.run(stop).await?;
        Ok(())
    })
}
