//! `share inspect`: what a .torrent holds, for people or as JSON.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use serde_json::json;
use share_core::{FileEntry, Info, Metainfo};
use share_engine::ScrapeCounts;

use crate::cli::InspectArgs;
use crate::human;

/// Whether [`load`] prints a torrent's warnings; `--quiet` turns it off.
static SHOW_WARNINGS: AtomicBool = AtomicBool::new(true);

/// Keeps [`load`] from printing warnings (for `--quiet`).
pub fn quiet_warnings() {
    SHOW_WARNINGS.store(false, Ordering::Relaxed);
}

/// Reads and validates a .torrent file, with the path in any error, and says on standard
/// error what was changed to load it safely (renamed paths, skipped symlinks).
pub fn load(path: &std::path::Path) -> Result<Metainfo> {
    let m = read(path)?;
    if SHOW_WARNINGS.load(Ordering::Relaxed) {
        for w in &m.info.warnings {
            eprintln!("warning: {w}");
        }
    }
    Ok(m)
}

/// What `inspect` takes: a magnet link (what it holds is shown) or a .torrent path.
pub fn run(args: InspectArgs) -> Result<()> {
    if share_core::Magnet::looks_like(&args.torrent) {
        let m = share_core::Magnet::parse(&args.torrent)
            .map_err(|e| anyhow::anyhow!("{}: {e}", args.torrent))?;
        return show_magnet(&m, args.json);
    }
    torrent(args)
}

/// A magnet link's info-hashes, name, trackers, peers and web seeds.
fn show_magnet(m: &share_core::Magnet, as_json: bool) -> Result<()> {
    let v1 = m.hashes.v1.map(|h| h.to_hex());
    let v2 = m.hashes.v2.map(hex::encode);
    let peers: Vec<String> = m.peers.iter().map(|p| p.to_string()).collect();
    if as_json {
        println!(
            "{}",
            json!({
                "name": m.name,
                "info_hash": v1,
                "info_hash_v2": v2,
                "trackers": m.trackers,
                "peers": peers,
                "web_seeds": m.web_seeds,
            })
        );
        return Ok(());
    }
    println!("magnet link");
    println!(
        "name:         {}",
        m.name.as_deref().unwrap_or("(none given)")
    );
    if let Some(h) = v1 {
        println!("info-hash:    {h}");
    }
    if let Some(h) = v2 {
        println!("info-hash-v2: {h}");
    }
    for (label, list) in [
        ("trackers", &m.trackers),
        ("peers", &peers),
        ("web seeds", &m.web_seeds),
    ] {
        println!("{label}:");
        for x in list {
            println!("  {x}");
        }
    }
    Ok(())
}

fn read(path: &std::path::Path) -> Result<Metainfo> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Metainfo::from_bytes(&bytes).with_context(|| format!("{}: not a valid torrent", path.display()))
}

/// A file as `--json` shows it: `path` and `length`, and BEP 47 attributes when set.
fn file_json(f: &FileEntry, info: &Info) -> serde_json::Value {
    let mut v = json!({"path": f.display_path(info), "length": f.length});
    if f.executable {
        v["executable"] = json!(true);
    }
    if f.hidden {
        v["hidden"] = json!(true);
    }
    if let Some(target) = &f.symlink {
        v["symlink"] = json!(target.join("/"));
    }
    v
}

fn torrent(args: InspectArgs) -> Result<()> {
    // The warnings are part of what inspect shows, not said beside it.
    let m = read(std::path::Path::new(&args.torrent))?;
    let info = &m.info;
    let files: Vec<_> = info
        .files
        .iter()
        .filter(|f| !f.padding)
        .map(|f| file_json(f, info))
        .collect();
    let scraped = if args.scrape {
        scrape_all(&m)?
    } else {
        Vec::new()
    };
    let scrape_json: Vec<_> = scraped
        .iter()
        .map(|(url, r)| match r {
            Ok(c) => json!({"url": url, "seeders": c.seeders, "leechers": c.leechers, "completed": c.completed}),
            Err(e) => json!({"url": url, "error": e}),
        })
        .collect();
    if args.json {
        let mut v = json!({
            "name": info.name,
            "info_hash": m.hashes.v1.map(|h| h.to_hex()),
            "info_hash_v2": m.hashes.v2.map(hex::encode),
            "meta_version": if info.v2 { 2 } else { 1 },
            "web_seeds": m.url_list,
            "piece_length": info.piece_length,
            "piece_count": info.piece_count(),
            "total_size": info.total_length,
            "private": info.private,
            "files": files,
            "trackers": m.tracker_urls(),
            "comment": m.comment,
            "created_by": m.created_by,
            "creation_date": m.creation_date,
            "creation_date_utc": m.creation_date.map(human::utc),
            "magnet": m.magnet(),
            "warnings": info.warnings,
        });
        if args.scrape {
            v["scrape"] = json!(scrape_json);
        }
        println!("{v}");
        return Ok(());
    }
    println!("name:         {}", info.name);
    if let Some(h) = m.hashes.v1 {
        println!("info-hash:    {h}");
    }
    if let Some(h) = m.hashes.v2 {
        println!("info-hash-v2: {}", hex::encode(h));
    }
    let format = match (info.v1, info.v2) {
        (true, true) => "hybrid (v1 + v2)",
        (false, true) => "v2",
        _ => "v1",
    };
    println!("format:       {format}");
    let size = |n: u64| format!("{n} bytes ({})", human::bytes(n));
    println!("piece length: {}", size(info.piece_length.into()));
    println!("pieces:       {}", info.piece_count());
    println!("total size:   {}", size(info.total_length));
    println!("private:      {}", if info.private { "yes" } else { "no" });
    for (label, v) in [("comment", &m.comment), ("created by", &m.created_by)] {
        if let Some(v) = v {
            println!("{:<13} {v}", format!("{label}:"));
        }
    }
    if let Some(d) = m.creation_date {
        println!("created:      {}", human::utc(d));
    }
    if !m.url_list.is_empty() {
        println!("web seeds:");
        for u in &m.url_list {
            println!("  {u}");
        }
    }
    println!("trackers:");
    for (i, tier) in m.trackers.iter().enumerate() {
        for url in tier {
            println!("  [tier {i}] {url}");
        }
    }
    println!("files:");
    for f in info.files.iter().filter(|f| !f.padding) {
        let mut what = f.display_path(info);
        if let Some(target) = &f.symlink {
            what = format!("{what} -> {}", target.join("/"));
        }
        if f.executable {
            what.push_str(" (executable)");
        }
        let human = format!("({})", human::bytes(f.length));
        println!("  {:>14} {human:>12}  {what}", f.length);
    }
    if !info.warnings.is_empty() {
        println!("warnings:");
        for w in &info.warnings {
            println!("  {w}");
        }
    }
    if args.scrape {
        println!("scrape:");
        for (url, r) in &scraped {
            match r {
                Ok(c) => println!(
                    "  {url}: {} seeders, {} leechers, {} completed",
                    c.seeders, c.leechers, c.completed
                ),
                Err(e) => println!("  {url}: {e}"),
            }
        }
    }
    Ok(())
}

/// Scrapes every tracker of `m`, all at once.
fn scrape_all(m: &Metainfo) -> Result<Vec<(String, Result<ScrapeCounts, String>)>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let urls = m.tracker_urls();
    let hash = m.info_hash;
    Ok(rt.block_on(async move {
        let tasks: Vec<_> = urls
            .into_iter()
            .map(|url| {
                tokio::spawn(async move {
                    let r = share_engine::scrape(&url, hash).await;
                    (url, r)
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            if let Ok(r) = t.await {
                out.push(r);
            }
        }
        out
    }))
}
