//! `share seed` and `share fetch`: a session of the engine, with the lines and progress bar
//! that ../shared/CLI.md promises.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use share_engine::{CancellationToken, Config, Notice, Session, Stats};
use tokio::sync::mpsc;

use crate::cli::{FetchArgs, NetArgs, SeedArgs};
use crate::inspect::load;
use crate::progress;

pub fn seed(args: SeedArgs) -> Result<()> {
    let config = config(&args.net, false, |c| {
        c.stop_when_complete = false;
        c.seed_only = true;
    });
    run(args.torrent, args.dir, &args.net, config, Kind::Seed)
}

pub fn fetch(args: FetchArgs) -> Result<()> {
    let config = config(&args.net, args.no_upload, |c| {
        c.stop_when_complete = !args.seed;
        c.max_download_rate = args.max_download_rate;
    });
    run(args.torrent, args.dir, &args.net, config, Kind::Fetch)
}

fn config(net: &NetArgs, no_upload: bool, more: impl FnOnce(&mut Config)) -> Config {
    let mut c = Config {
        peers: net.peers.clone(),
        max_upload_rate: net.max_upload_rate,
        upload_slots: net.upload_slots,
        max_peers: net.max_peers.max(1),
        no_upload,
        ..Config::default()
    };
    more(&mut c);
    c
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Seed,
    Fetch,
}

fn run(
    torrent: PathBuf,
    dir: PathBuf,
    net: &NetArgs,
    mut config: Config,
    kind: Kind,
) -> Result<()> {
    let meta = load(&torrent)?;
    // The torrent's tiers, then each -t URL as a tier of its own.
    config.trackers = meta.trackers.clone();
    for url in &net.trackers {
        if !config.trackers.iter().flatten().any(|u| u == url) {
            config.trackers.push(vec![url.clone()]);
        }
    }
    // One thread for the network and the torrent task, the disk thread beside it: on a
    // machine of few cores this avoids the cross-thread wake-ups of a work-stealing pool.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async move {
        let session = Session::bind(net.listen)
            .await
            .with_context(|| format!("listening on {}", net.listen))?;
        println!("listening on {}", session.local_addr()?);
        std::io::stdout().flush()?;

        let stats = Arc::new(Stats::default());
        let shutdown = CancellationToken::new();
        tokio::spawn(stop_on_signal(shutdown.clone()));
        let (ntx, nrx) = mpsc::unbounded_channel();
        let total = meta.info.total_length;
        let pieces = meta.info.piece_count();
        let ui = tokio::spawn(ui(nrx, stats.clone(), total, net.quiet, kind));
        let started = Instant::now();
        let result = session
            .run(meta, dir, config, stats.clone(), ntx, shutdown)
            .await;
        let _ = ui.await;
        let elapsed = started.elapsed();
        let (up, down) = (stats.get(&stats.uploaded), stats.get(&stats.downloaded));
        let outcome = match result {
            Ok(o) => o,
            Err(e) => {
                println!("uploaded: {up} downloaded: {down}");
                return Err(e.into());
            }
        };
        if kind == Kind::Fetch && !net.quiet && outcome.complete {
            println!(
                "done: {} bytes verified in {:.1} s ({:.1} MiB/s)",
                total,
                elapsed.as_secs_f64(),
                down as f64 / (1 << 20) as f64 / elapsed.as_secs_f64().max(1e-3)
            );
        }
        println!("uploaded: {up} downloaded: {down}");
        if kind == Kind::Fetch && !outcome.complete {
            let have = stats.get(&stats.verified);
            bail!("stopped before the download was complete: {have} of {total} bytes verified ({pieces} pieces in all); run again to resume");
        }
        Ok(())
    })
}

pub async fn stop_on_signal(token: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    token.cancel();
}

/// Prints notices (to standard error) and drives the progress bar until the session ends.
async fn ui(
    mut notices: mpsc::UnboundedReceiver<Notice>,
    stats: Arc<Stats>,
    total: u64,
    quiet: bool,
    kind: Kind,
) {
    let bar = progress::bytes_bar(total, quiet, "checking");
    let say = |text: String| {
        if quiet {
            return;
        }
        match &bar {
            Some(b) => b.suspend(|| eprintln!("{text}")),
            None => eprintln!("{text}"),
        }
    };
    let mut checking = true;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            n = notices.recv() => match n {
                None => break,
                Some(Notice::Checked { valid, total, missing }) => {
                    checking = false;
                    if let Some(b) = &bar {
                        b.set_prefix(if kind == Kind::Seed { "seeding" } else { "fetching" });
                        b.reset_eta();
                    }
                    say(format!("checked: {valid} of {total} pieces valid on disk"));
                    if kind == Kind::Seed && valid < total {
                        let list: Vec<String> = missing.iter().map(u32::to_string).collect();
                        say(format!(
                            "warning: {} pieces are missing or damaged (first: {}); serving the rest",
                            total - valid,
                            list.join(", ")
                        ));
                    }
                }
                Some(Notice::Banned { addr, reason }) => say(format!("banned peer {addr}: {reason}")),
                Some(Notice::Complete) => if kind == Kind::Fetch {
                    say("complete: every piece verified".to_owned());
                },
                Some(Notice::Warning(w)) => say(format!("warning: {w}")),
            },
            _ = tick.tick() => if let Some(b) = &bar {
                let pos = if checking { stats.get(&stats.checked) } else { stats.get(&stats.verified) };
                b.set_position(pos);
                b.set_message(format!(
                    "{} peers, up {}",
                    stats.peers.load(std::sync::atomic::Ordering::Relaxed),
                    indicatif::HumanBytes(stats.get(&stats.uploaded))
                ));
            },
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
}
