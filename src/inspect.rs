//! `share inspect`: what a .torrent holds, for people or as JSON.

use anyhow::{Context, Result};
use serde_json::json;
use share_core::Metainfo;
use share_engine::ScrapeCounts;

use crate::cli::InspectArgs;

/// Reads and validates a .torrent file, with the path in any error.
pub fn load(path: &std::path::Path) -> Result<Metainfo> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Metainfo::from_bytes(&bytes).with_context(|| format!("{}: not a valid torrent", path.display()))
}

pub fn run(args: InspectArgs) -> Result<()> {
    let m = load(&args.torrent)?;
    let info = &m.info;
    let files: Vec<_> = info
        .files
        .iter()
        .filter(|f| !f.padding)
        .map(|f| json!({"path": f.display_path(info), "length": f.length}))
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
            "info_hash": m.info_hash.to_hex(),
            "piece_length": info.piece_length,
            "piece_count": info.piece_count(),
            "total_size": info.total_length,
            "private": info.private,
            "files": files,
            "trackers": m.tracker_urls(),
            "comment": m.comment,
            "created_by": m.created_by,
            "creation_date": m.creation_date,
            "magnet": m.magnet(),
        });
        if args.scrape {
            v["scrape"] = json!(scrape_json);
        }
        println!("{v}");
        return Ok(());
    }
    println!("name:         {}", info.name);
    println!("info-hash:    {}", m.info_hash);
    println!("piece length: {}", info.piece_length);
    println!("pieces:       {}", info.piece_count());
    println!("total size:   {}", info.total_length);
    println!("private:      {}", if info.private { "yes" } else { "no" });
    for (label, v) in [("comment", &m.comment), ("created by", &m.created_by)] {
        if let Some(v) = v {
            println!("{:<13} {v}", format!("{label}:"));
        }
    }
    if let Some(d) = m.creation_date {
        println!("created:      {d} (unix time)");
    }
    println!("trackers:");
    for (i, tier) in m.trackers.iter().enumerate() {
        for url in tier {
            println!("  [tier {i}] {url}");
        }
    }
    println!("files:");
    for f in info.files.iter().filter(|f| !f.padding) {
        println!("  {:>14}  {}", f.length, f.display_path(info));
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
