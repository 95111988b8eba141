//! `share seed` and `share fetch`: one session of the engine with one or more torrents, and
//! the lines and progress bars that ../shared/CLI.md promises.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use share_engine::{FileFilter, Session, SessionConfig, Source, TorrentConfig, TorrentHandle};

use crate::cli::{
    DiscoveryArgs, EgressArgs, FetchArgs, FilesArgs, LimitArgs, NetArgs, SeedArgs, TorrentArg,
    TransportArgs,
};
use crate::inspect::load;
use crate::signals::Stop;
use crate::ui;

#[derive(Clone, Copy, PartialEq)]
pub enum Kind {
    Seed,
    Fetch,
}

pub fn seed(args: SeedArgs) -> Result<()> {
    let config = TorrentConfig {
        stop_when_complete: false,
        seed_only: true,
        super_seed: args.super_seed,
        ..torrent_config(&args.net, args.dir.clone())
    };
    run(&args.torrents, &args.net, None, config, Kind::Seed)
}

pub fn fetch(args: FetchArgs) -> Result<()> {
    let config = TorrentConfig {
        stop_when_complete: !args.seed,
        no_upload: args.no_upload,
        sequential: args.sequential,
        file_filter: file_filter(&args.only, &args.exclude)?,
        ..torrent_config(&args.net, args.dir.clone())
    };
    run(
        &args.torrents,
        &args.net,
        args.max_download_rate,
        config,
        Kind::Fetch,
    )
}

/// `--only` and `--exclude` as one test of a file's path.
fn file_filter(only: &[String], exclude: &[String]) -> Result<Option<FileFilter>> {
    if only.is_empty() && exclude.is_empty() {
        return Ok(None);
    }
    let set = |globs: &[String]| -> Result<globset::GlobSet> {
        let mut b = globset::GlobSetBuilder::new();
        for g in globs {
            b.add(globset::Glob::new(g)?);
        }
        Ok(b.build()?)
    };
    let (only_set, exclude_set) = (set(only)?, set(exclude)?);
    let any_only = !only.is_empty();
    Ok(Some(FileFilter(std::sync::Arc::new(move |path: &str| {
        (!any_only || only_set.is_match(path)) && !exclude_set.is_match(path)
    }))))
}

fn torrent_config(net: &NetArgs, dir: PathBuf) -> TorrentConfig {
    TorrentConfig {
        dir,
        peers: net.peers.clone(),
        extra_trackers: net.trackers.clone(),
        upload_slots: net.limits.upload_slots,
        max_peers: net.limits.max_peers.max(1),
        ..TorrentConfig::default()
    }
}

/// Why a torrent has no way to find peers at all (no tracker, no web seed, no peer given,
/// the DHT and LSD off), if it has none; others may still connect to us.
fn no_way_to_peers(s: &Source, net: &NetArgs) -> Option<String> {
    let (name, trackers, web, peers) = match s {
        Source::Torrent(m) => (
            m.info.name.clone(),
            !m.trackers.is_empty() || !net.trackers.is_empty(),
            !m.url_list.is_empty(),
            false,
        ),
        Source::Magnet(m) => (
            m.name.clone().unwrap_or_else(|| m.info_hash.to_hex()),
            !m.trackers.is_empty() || !net.trackers.is_empty(),
            !m.web_seeds.is_empty(),
            !m.peers.is_empty(),
        ),
    };
    (!trackers && !web && !peers).then(|| {
        format!(
            "{name}: no way to find peers: it has no tracker or web seed, no --peer is given, \
             and the DHT and LSD are off; waiting for peers to connect to us"
        )
    })
}

/// Reads each TORRENT argument (before anything binds, so that a bad file fails early).
fn sources(args: &[TorrentArg]) -> Result<Vec<Source>> {
    let mut out: Vec<Source> = Vec::new();
    for a in args {
        let s = match a {
            TorrentArg::File(path) => Source::Torrent(load(path)?),
            TorrentArg::Magnet(m) => Source::Magnet((**m).clone()),
        };
        if out.iter().any(|o| o.info_hash() == s.info_hash()) {
            bail!("the torrent {} is given twice", s.info_hash());
        }
        out.push(s);
    }
    Ok(out)
}

fn session_config(
    net: &NetArgs,
    max_download_rate: Option<u64>,
    serves: bool,
) -> Result<SessionConfig> {
    let mut c = base_session_config(
        net.listen,
        &net.limits,
        max_download_rate,
        &net.discovery,
        &net.transport,
        &net.files,
        serves,
    )?;
    c.egress = egress(&net.egress)?;
    Ok(c)
}

/// The session's way out (`--interface`, `--proxy`), checked.
pub fn egress(args: &EgressArgs) -> Result<std::sync::Arc<share_engine::Egress>> {
    Ok(std::sync::Arc::new(
        share_engine::Egress::new(&args.policy()).map_err(anyhow::Error::msg)?,
    ))
}

/// Reads the `--blocklist` lists into the session's set (before it binds, so that no
/// blocked peer gets in first), with one warning per list that has lines not understood
/// and a line saying how many ranges were read and how long it took.
pub async fn load_blocklists(
    config: &SessionConfig,
    sources: &[String],
    quiet: bool,
) -> Result<()> {
    if sources.is_empty() {
        return Ok(());
    }
    let started = Instant::now();
    let (list, reports) = share_engine::blocks::load(sources, &config.egress)
        .await
        .map_err(anyhow::Error::msg)?;
    for r in &reports {
        if let Some(w) = r.warning() {
            eprintln!("warning: {w}");
        }
    }
    if !quiet {
        let entries: usize = reports.iter().map(|r| r.loaded.entries).sum();
        eprintln!(
            "blocklist: {} ranges ({entries} entries) from {} list{} in {:.2} s",
            list.len(),
            reports.len(),
            if reports.len() == 1 { "" } else { "s" },
            started.elapsed().as_secs_f64()
        );
    }
    config.blocks.set(list);
    Ok(())
}

/// Binds the session and prints `listening on IP:PORT`, the line scripts wait for.
pub async fn bind_session(config: SessionConfig) -> Result<Session> {
    let listen = config.listen;
    let session = Session::bind(config)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    println!("listening on {}", session.local_addr());
    std::io::stdout().flush()?;
    Ok(session)
}

/// The session settings that `seed`, `fetch` and `daemon` take alike: the listen address,
/// the limits, where peers come from and how connections are made.
pub fn base_session_config(
    listen: std::net::SocketAddr,
    limits: &LimitArgs,
    max_download_rate: Option<u64>,
    d: &DiscoveryArgs,
    transport: &TransportArgs,
    files: &FilesArgs,
    serves: bool,
) -> Result<SessionConfig> {
    // Port mapping is for sessions that serve others (seed, fetch --seed, the daemon).
    let mapping = serves && !d.no_port_mapping;
    crate::guard::check(d, mapping)?;
    let mut c = SessionConfig::new(listen, d.state_dir());
    c.max_upload_rate = limits.max_upload_rate;
    c.max_download_rate = max_download_rate;
    c.max_connections = limits.max_connections.max(1);
    c.max_per_ip = limits.max_per_ip.max(1);
    c.pex = !d.no_pex;
    c.lsd = !d.no_lsd;
    // The DHT bootstraps from the given nodes, or the public routers without any.
    c.dht = (!d.no_dht).then(|| d.dht_bootstrap.clone());
    c.loopback_only = crate::guard::loopback_only();
    c.encryption = transport.encryption;
    c.transports = transport.transports;
    c.follow_symlinks = files.follow_symlinks;
    c.port_mapping = mapping;
    Ok(c)
}

fn run(
    args: &[TorrentArg],
    net: &NetArgs,
    max_download_rate: Option<u64>,
    config: TorrentConfig,
    kind: Kind,
) -> Result<()> {
    let sources = sources(args)?;
    let serves = kind == Kind::Seed || !config.stop_when_complete;
    let session_config = session_config(net, max_download_rate, serves)?;
    let no_discovery = net.discovery.no_dht && net.discovery.no_lsd && net.peers.is_empty();
    // One thread for the network and the torrent tasks, the disk threads beside it: on a
    // machine of few cores this avoids the cross-thread wake-ups of a work-stealing pool.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async move {
        // Signals count from the start: one that comes right after `listening on` must not
        // kill the process before its handler exists.
        let mut stop = Stop::install()?;
        load_blocklists(&session_config, &net.egress.blocklists, net.quiet).await?;
        let session = bind_session(session_config).await?;

        let started = Instant::now();
        let view = ui::View::new(net.quiet, kind, sources.len());
        tokio::spawn(view.clone().follow_reachability(session.reachability()));
        if no_discovery && kind == Kind::Fetch {
            for s in &sources {
                if let Some(why) = no_way_to_peers(s, net) {
                    view.line(why);
                }
            }
        }
        let mut handles: Vec<TorrentHandle> = Vec::new();
        let mut uis = Vec::new();
        for source in sources {
            let name = match &source {
                Source::Torrent(m) => m.info.name.clone(),
                Source::Magnet(m) => m.name.clone().unwrap_or_else(|| m.info_hash.to_hex()),
            };
            let total = match &source {
                Source::Torrent(m) => m.info.total_length,
                Source::Magnet(_) => 0,
            };
            let mut h = session.add(source, config.clone()).await?;
            uis.push(tokio::spawn(view.clone().follow(
                name,
                total,
                h.notices.take(),
                h.stats.clone(),
            )));
            handles.push(h);
        }
        // Each torrent ends on its own when it completes (a plain fetch) or fails; all of
        // them at a signal.
        let mut ends = tokio::task::JoinSet::new();
        for (i, h) in handles.iter().enumerate() {
            let done = h.done();
            ends.spawn(async move { (i, done.await) });
        }
        let mut results: Vec<Option<Result<share_engine::Outcome, String>>> =
            vec![None; handles.len()];
        let mut signalled = false;
        while results.iter().any(Option::is_none) {
            tokio::select! {
                _ = stop.recv(), if !signalled => {
                    signalled = true;
                    session.shutdown().await;
                }
                Some(Ok((i, r))) = ends.join_next() => {
                    if let (Err(e), true) = (&r, handles.len() > 1) {
                        eprintln!("error: {}: {e}", handles[i].info_hash);
                    }
                    results[i] = Some(r);
                }
                else => break,
            }
        }
        session.shutdown().await;
        let mut results: Vec<Result<share_engine::Outcome, String>> = results
            .into_iter()
            .map(|r| r.unwrap_or(Err("the session has ended".into())))
            .collect();
        for u in uis {
            let _ = u.await;
        }
        let elapsed = started.elapsed();
        let up: u64 = handles.iter().map(|h| h.stats.get(&h.stats.uploaded)).sum();
        let down: u64 = handles.iter().map(|h| h.stats.get(&h.stats.downloaded)).sum();
        let mut errors = Vec::new();
        let mut incomplete = Vec::new();
        for (h, r) in handles.iter().zip(results.iter_mut()) {
            match r {
                Err(e) => errors.push(e.clone()),
                Ok(o) if kind == Kind::Fetch && !o.complete => incomplete.push(h),
                Ok(_) => {}
            }
        }
        let total: u64 = handles.iter().map(|h| h.stats.get(&h.stats.total)).sum();
        if kind == Kind::Fetch && !net.quiet && errors.is_empty() && incomplete.is_empty() {
            println!(
                "done: {} bytes verified in {:.1} s ({:.1} MiB/s)",
                total,
                elapsed.as_secs_f64(),
                down as f64 / (1 << 20) as f64 / elapsed.as_secs_f64().max(1e-3)
            );
        }
        println!("uploaded: {up} downloaded: {down}");
        if let Some(e) = errors.first() {
            if errors.len() > 1 {
                for e in &errors[1..] {
                    eprintln!("error: {e}");
                }
            }
            bail!("{e}");
        }
        if let Some(h) = incomplete.first() {
            let have = h.stats.get(&h.stats.verified);
            let total = h.stats.get(&h.stats.total);
            if total == 0 {
                bail!("stopped before the metadata of {} arrived; run again to resume", h.info_hash);
            }
            bail!("stopped before the download was complete: {have} of {total} bytes verified; run again to resume");
        }
        Ok(())
    })
}
