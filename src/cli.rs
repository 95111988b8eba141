//! The command line, as ../shared/CLI.md pins it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "share",
    version,
    about = "BitTorrent-compatible peer-to-peer file sharing"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Hash a file or folder into pieces and write a .torrent (BitTorrent v1).
    Create(CreateArgs),
    /// Show what a .torrent holds.
    Inspect(InspectArgs),
}

#[derive(Args)]
pub struct CreateArgs {
    /// The file or folder to share.
    pub path: PathBuf,
    /// Where to write the .torrent (default: ./NAME.torrent).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// A tracker URL (repeatable; the first is `announce`, all go into `announce-list`).
    #[arg(short = 't', long = "tracker", value_name = "URL")]
    pub trackers: Vec<String>,
    /// Piece length in bytes: a power of two from 16 KiB to 64 MiB (K and M suffixes allowed).
    #[arg(long, value_name = "BYTES", value_parser = parse_piece_length)]
    pub piece_length: Option<u32>,
    /// Mark the torrent private (BEP 27): peers only from its trackers.
    #[arg(long)]
    pub private: bool,
    /// A comment stored in the torrent.
    #[arg(long, value_name = "TEXT")]
    pub comment: Option<String>,
    /// The torrent's name (default: the file or folder name).
    #[arg(long)]
    pub name: Option<String>,
    /// Leave out `creation date`, so that the output is reproducible.
    #[arg(long)]
    pub no_date: bool,
    /// Hashing threads (default: one per core).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Print only errors and the info-hash and magnet lines.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args)]
pub struct InspectArgs {
    /// The .torrent file.
    pub torrent: PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// A byte count: a plain integer, or with a K, M or G suffix (powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (digits, shift) = match s.char_indices().last() {
        Some((i, 'k' | 'K')) => (&s[..i], 10),
        Some((i, 'm' | 'M')) => (&s[..i], 20),
        Some((i, 'g' | 'G')) => (&s[..i], 30),
        _ => (s, 0),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{s}` is not a byte count (use e.g. 262144, 256K, 20M)"))?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("`{s}` is too large"))
}

fn parse_piece_length(s: &str) -> Result<u32, String> {
    let n = parse_size(s)?;
    if !n.is_power_of_two() || !(16 << 10..=64 << 20).contains(&n) {
        return Err(format!(
            "piece length {n} must be a power of two from 16384 (16K) to 67108864 (64M)"
        ));
    }
    Ok(n as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_suffixes_in_powers_of_1024() {
        assert_eq!(parse_size("20M"), Ok(20 << 20));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("12X").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("99999999999G").is_err());
    }

    #[test]
    fn piece_lengths_are_checked() {
        assert_eq!(parse_piece_length("16K"), Ok(16384));
        assert_eq!(parse_piece_length("67108864"), Ok(64 << 20));
        assert!(parse_piece_length("8K").is_err());
        assert!(parse_piece_length("128M").is_err());
        assert!(parse_piece_length("30000").is_err());
    }
}
