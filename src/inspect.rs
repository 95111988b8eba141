//! `share inspect`: what a .torrent holds, for people or as JSON.

use anyhow::{Context, Result};
use serde_json::json;
use share_core::Metainfo;

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
    if args.json {
        let v = json!({
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
    Ok(())
}
