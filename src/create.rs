//! `share create`: hash a file or folder and write a .torrent.

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use share_core::write::{NewFile, NewTorrent};
use share_core::Metainfo;
use share_storage::{hash, walk, Layout};

use crate::cli::CreateArgs;
use crate::progress;

/// A piece length for `total` bytes: the smallest power of two from 16 KiB to 16 MiB that
/// keeps the piece count at or below 2,000 (so usually 1,000 to 2,000 pieces).
pub fn auto_piece_length(total: u64) -> u32 {
    let mut len: u64 = 16 << 10;
    while len < 16 << 20 && total.div_ceil(len) > 2000 {
        len *= 2;
    }
    len as u32
}

pub fn run(args: CreateArgs) -> Result<()> {
    let files = walk::list_files(&args.path)?;
    let single_file = files.len() == 1 && files[0].components.is_empty();
    let name = match &args.name {
        Some(n) => n.clone(),
        None => {
            let canonical = args
                .path
                .canonicalize()
                .with_context(|| format!("{}", args.path.display()))?;
            canonical
                .file_name()
                .and_then(|n| n.to_str())
                .context("the path has no usable file name; give one with --name")?
                .to_owned()
        }
    };
    share_core::metainfo::component(name.as_bytes())
        .map_err(|why| anyhow::anyhow!("invalid name {name:?}: {why}"))?;
    let total: u64 = files.iter().map(|f| f.length).sum();
    if total == 0 {
        bail!(
            "{}: nothing to share (all files are empty)",
            args.path.display()
        );
    }
    let piece_length = args
        .piece_length
        .unwrap_or_else(|| auto_piece_length(total));
    let threads = args.threads.unwrap_or_else(hash::default_threads);
    let counter = AtomicU64::new(0);
    let bar = progress::bytes_bar(total, args.quiet, "hashing");
    let created_by = Some(format!("share {}", env!("CARGO_PKG_VERSION")));
    let creation_date = (!args.no_date).then(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    });
    let bytes = if args.format == "v1" {
        let layout = Layout::from_files(
            files.iter().map(|f| (f.path.clone(), f.length)),
            piece_length,
        );
        let pieces = progress::track(bar, &counter, || {
            hash::hash_pieces(&layout, threads, &counter)
        })?;
        NewTorrent {
            name: name.clone(),
            piece_length,
            pieces,
            files: files
                .into_iter()
                .map(|f| NewFile {
                    path: f.components,
                    length: f.length,
                })
                .collect(),
            single_file,
            trackers: args.trackers.clone(),
            private: args.private,
            comment: args.comment.clone(),
            created_by,
            creation_date,
            web_seeds: args.web_seeds.clone(),
        }
        .to_bytes()
    } else {
        let hybrid = args.format == "hybrid";
        let mut files = files;
        // libtorrent's order, element by element (the file tree's order).
        share_core::write::v2::sort(&mut files, |f| &f.components);
        let paths: Vec<_> = files.iter().map(|f| (f.path.clone(), f.length)).collect();
        let hashes = progress::track(bar, &counter, || {
            hash::hash_v2(&paths, piece_length, hybrid, threads, &counter)
        })?;
        share_core::write::v2::NewTorrentV2 {
            name: name.clone(),
            piece_length,
            files: files
                .iter()
                .zip(hashes.files)
                .map(|(f, (root, layer))| share_core::write::v2::NewFileV2 {
                    path: f.components.clone(),
                    length: f.length,
                    executable: executable(&f.path),
                    root,
                    layer,
                })
                .collect(),
            single_file,
            v1_pieces: hashes.v1_pieces,
            trackers: args.trackers.clone(),
            private: args.private,
            comment: args.comment.clone(),
            created_by,
            creation_date,
            web_seeds: args.web_seeds.clone(),
        }
        .to_bytes()
        .map_err(|e| anyhow::anyhow!("cannot make a v2 torrent of these files: {e}"))?
    };
    // Read back what we wrote: the hash printed is the hash of the file on disk.
    let meta =
        Metainfo::from_bytes(&bytes).context("internal error: created torrent is invalid")?;
    let out = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{name}.torrent")));
    write_atomically(&out, &bytes)?;
    if !args.quiet {
        let count = meta.info.files.iter().filter(|f| !f.padding).count();
        println!(
            "wrote {} ({} pieces of {} bytes, {} bytes in {} file{})",
            out.display(),
            meta.info.piece_count(),
            piece_length,
            total,
            count,
            if count == 1 { "" } else { "s" }
        );
    }
    if let Some(v1) = meta.hashes.v1 {
        println!("info-hash: {v1}");
    }
    if let Some(v2) = meta.hashes.v2 {
        println!("info-hash-v2: {}", hex::encode(v2));
    }
    println!("magnet: {}", meta.magnet());
    Ok(())
}

/// Whether the owner may execute the file (libtorrent then marks it `x`).
fn executable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o100 != 0)
}

/// Writes to a temporary file beside `path`, then renames it into place.
fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("torrent.part");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::auto_piece_length;

    #[test]
    fn automatic_piece_length_aims_for_1000_to_2000_pieces() {
        assert_eq!(auto_piece_length(1), 16 << 10);
        assert_eq!(auto_piece_length(1 << 30), 1 << 20);
        for total in [100u64 << 20, 1 << 30, 7 << 30, 20 << 30] {
            let n = total.div_ceil(auto_piece_length(total) as u64);
            assert!((1000..=2000).contains(&n), "{total}: {n} pieces");
        }
        assert_eq!(auto_piece_length(1 << 50), 16 << 20);
    }
}
