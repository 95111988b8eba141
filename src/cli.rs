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
    /// Check the data on disk and serve it to peers.
    Seed(SeedArgs),
    /// Download from peers, verifying every piece; resumes a partial download.
    Fetch(FetchArgs),
    /// Run a small tracker (HTTP and UDP on one port) for a LAN or a test.
    Tracker(TrackerArgs),
    /// Run many torrents in the background, driven through the Transmission RPC and a web page.
    Daemon(DaemonArgs),
}

#[derive(Args)]
pub struct DaemonArgs {
    /// The address to listen on for peers.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:6881")]
    pub listen: std::net::SocketAddr,
    /// Where the Transmission RPC (/transmission/rpc), the web page (/) and streams are served.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9091")]
    pub rpc: std::net::SocketAddr,
    /// HTTP basic auth for the RPC and the page (required off loopback).
    #[arg(long, value_name = "USER:PASS", env = "SHARE_RPC_AUTH", value_parser = parse_auth)]
    pub rpc_auth: Option<(String, String)>,
    /// A host name the RPC answers to besides its address and localhost (repeatable; other
    /// Host headers are refused, against DNS rebinding).
    #[arg(long = "rpc-host-name", value_name = "NAME")]
    pub rpc_host_names: Vec<String>,
    /// The folder torrents download into; every folder an RPC call names must be inside it
    /// (default: $XDG_DOWNLOAD_DIR, else ~/Downloads).
    #[arg(long, value_name = "DIR")]
    pub download_dir: Option<PathBuf>,
    /// A folder whose new .torrent and .magnet files are added.
    #[arg(long, value_name = "DIR")]
    pub watch: Option<PathBuf>,
    /// Limit the download rate, all torrents together.
    #[arg(long, value_name = "RATE", value_parser = parse_size)]
    pub max_download_rate: Option<u64>,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub discovery: DiscoveryArgs,
    #[command(flatten)]
    pub transport: TransportArgs,
    #[command(flatten)]
    pub files: FilesArgs,
    #[command(flatten)]
    pub egress: EgressArgs,
}

impl DaemonArgs {
    pub fn download_dir(&self) -> PathBuf {
        if let Some(d) = &self.download_dir {
            return d.clone();
        }
        if let Some(x) = std::env::var_os("XDG_DOWNLOAD_DIR").filter(|v| !v.is_empty()) {
            return PathBuf::from(x);
        }
        let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
        PathBuf::from(home).join("Downloads")
    }
}

fn parse_auth(s: &str) -> Result<(String, String), String> {
    match s.split_once(':') {
        Some((u, p)) if !u.is_empty() && !p.is_empty() => Ok((u.to_string(), p.to_string())),
        _ => Err("expected USER:PASS, both non-empty".into()),
    }
}

#[derive(Args)]
pub struct TrackerArgs {
    /// The address to listen on (TCP for HTTP, UDP on the same port).
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:6969")]
    pub listen: std::net::SocketAddr,
    /// Seconds between announces that the tracker asks of clients.
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    pub interval: u32,
    /// Most torrents tracked at once.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub max_torrents: usize,
    /// Most peers listed per torrent.
    #[arg(long, value_name = "N", default_value_t = 2_000)]
    pub max_peers: usize,
    /// Print only errors and the `listening on` line.
    #[arg(short, long)]
    pub quiet: bool,
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
    /// Piece length in bytes: a power of two from 16 KiB to 256 MiB (K and M suffixes allowed).
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
    /// The metainfo format: `v1` (BEP 3; the info-hash mktorrent gives), `v2` (BEP 52:
    /// SHA-256 merkle trees per file), or `hybrid` (both, for clients of either kind; as
    /// libtorrent 2 makes them).
    #[arg(long, value_name = "FORMAT", default_value = "v1", value_parser = ["v1", "v2", "hybrid"])]
    pub format: String,
    /// A web seed URL (BEP 19, repeatable): an HTTP server holding the content.
    #[arg(long = "web-seed", value_name = "URL")]
    pub web_seeds: Vec<String>,
    /// Print only errors and the info-hash and magnet lines.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args)]
pub struct InspectArgs {
    /// The .torrent file, or a magnet link.
    pub torrent: String,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Also ask each tracker how many seeders and leechers the torrent has.
    #[arg(long)]
    pub scrape: bool,
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
    if !n.is_power_of_two() || !(16 << 10..=256 << 20).contains(&n) {
        return Err(format!(
            "piece length {n} must be a power of two from 16384 (16K) to 268435456 (256M)"
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
        assert_eq!(parse_piece_length("256M"), Ok(256 << 20));
        assert!(parse_piece_length("512M").is_err());
        assert!(parse_piece_length("30000").is_err());
    }
}

/// A TORRENT argument: a .torrent file or a magnet link.
#[derive(Debug, Clone)]
pub enum TorrentArg {
    File(PathBuf),
    Magnet(Box<share_core::Magnet>),
}

/// Parses a TORRENT argument; a malformed magnet link is bad usage (exit 2).
pub fn parse_torrent_arg(s: &str) -> Result<TorrentArg, String> {
    if share_core::Magnet::looks_like(s) {
        share_core::Magnet::parse(s)
            .map(|m| TorrentArg::Magnet(Box::new(m)))
            .map_err(|e| e.to_string())
    } else {
        Ok(TorrentArg::File(PathBuf::from(s)))
    }
}

#[derive(Args)]
pub struct SeedArgs {
    /// .torrent files or magnet links, all served on one port.
    #[arg(required = true, value_name = "TORRENT", value_parser = parse_torrent_arg)]
    pub torrents: Vec<TorrentArg>,
    /// The folder that holds the content (DIR/NAME).
    #[arg(short = 'd', long = "dir", value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
    /// Super-seed (BEP 16): show each peer one piece at a time, and the next once that
    /// piece was seen at another peer, so the first copy of each piece leaves here once.
    #[arg(long)]
    pub super_seed: bool,
    #[command(flatten)]
    pub net: NetArgs,
}

#[derive(Args)]
pub struct FetchArgs {
    /// .torrent files or magnet links, fetched side by side.
    #[arg(required = true, value_name = "TORRENT", value_parser = parse_torrent_arg)]
    pub torrents: Vec<TorrentArg>,
    /// The folder to download into (the content goes to DIR/NAME).
    #[arg(short = 'o', long = "output", value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
    /// Keep serving after the download is complete, until SIGINT or SIGTERM.
    #[arg(long)]
    pub seed: bool,
    /// Limit the download rate (bytes per second; K, M, G suffixes).
    #[arg(long, value_name = "RATE", value_parser = parse_size)]
    pub max_download_rate: Option<u64>,
    /// Never upload to peers (for tests of tit-for-tat).
    #[arg(long, hide = true)]
    pub no_upload: bool,
    /// Fetch only the files whose path (NAME/dir/file) matches this glob (repeatable; `*`
    /// crosses folders, so `*.mkv` matches at any depth).
    #[arg(long = "only", value_name = "GLOB", value_parser = parse_glob)]
    pub only: Vec<String>,
    /// Leave out the files whose path matches this glob (repeatable).
    #[arg(long = "exclude", value_name = "GLOB", value_parser = parse_glob)]
    pub exclude: Vec<String>,
    /// Fetch pieces in order, to play a file while it arrives.
    #[arg(long)]
    pub sequential: bool,
    #[command(flatten)]
    pub net: NetArgs,
}

/// Options that `seed` and `fetch` share.
#[derive(Args)]
pub struct NetArgs {
    /// A peer to connect to (repeatable), besides those the trackers give.
    #[arg(long = "peer", value_name = "ADDR")]
    pub peers: Vec<std::net::SocketAddr>,
    /// The address to listen on for peers.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:6881")]
    pub listen: std::net::SocketAddr,
    /// A tracker URL to use besides the torrent's own (repeatable).
    #[arg(short = 't', long = "tracker", value_name = "URL")]
    pub trackers: Vec<String>,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub discovery: DiscoveryArgs,
    #[command(flatten)]
    pub transport: TransportArgs,
    #[command(flatten)]
    pub files: FilesArgs,
    #[command(flatten)]
    pub egress: EgressArgs,
    /// Print only errors and the lines scripts rely on.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Upload rate, upload slots and connection limits, as `seed`, `fetch` and `daemon` take them.
#[derive(Args, Clone)]
pub struct LimitArgs {
    /// Limit the upload rate, all torrents together (bytes per second; K, M, G suffixes).
    #[arg(long, value_name = "RATE", value_parser = parse_size)]
    pub max_upload_rate: Option<u64>,
    /// Regular upload slots per torrent: peers unchoked at once besides the optimistic one.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub upload_slots: usize,
    /// Most peer connections at once, per torrent.
    #[arg(long, value_name = "N", default_value_t = 80)]
    pub max_peers: usize,
    /// Most peer connections at once, all torrents together.
    #[arg(long, value_name = "N", default_value_t = 500)]
    pub max_connections: usize,
    /// Most connections to or from one IP address (an IPv6 /64 counts as one), all torrents
    /// together.
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub max_per_ip: usize,
}

/// How files in the download folder are reached.
#[derive(Args, Clone)]
pub struct FilesArgs {
    /// Read and write through symlinks that you placed in the download folder (to seed files
    /// kept elsewhere); never through links a torrent created. Without it, a file reached
    /// through any symlink below the folder is an error.
    #[arg(long)]
    pub follow_symlinks: bool,
}

/// Where traffic goes, and whom it never reaches.
#[derive(Args, Clone, Default)]
pub struct EgressArgs {
    /// Bind every socket (peers, µTP, the DHT, trackers, web seeds, LSD) to this interface
    /// (SO_BINDTODEVICE) or to this address and its interface: when it goes down, nothing
    /// takes another route; when it comes back, the session carries on.
    #[arg(long, value_name = "NAME|ADDR")]
    pub interface: Option<String>,
    /// Send peer connections, HTTP(S) trackers and web seeds through a SOCKS5 proxy (names
    /// resolved by the proxy); µTP, the DHT and UDP trackers through its UDP relay, or off
    /// when it has none. Nothing listens for peers and nothing goes around it.
    #[arg(
        long,
        value_name = "socks5://[USER:PASS@]HOST:PORT",
        env = "SHARE_PROXY",
        hide_env_values = true
    )]
    pub proxy: Option<String>,
    /// An IP blocklist (repeatable): a file or an http(s) URL, in P2P text
    /// (`name:1.2.3.0-1.2.3.255`), eMule DAT or CIDR lines, optionally gzip-compressed.
    /// Blocked addresses are never connected to either way, nor passed on.
    #[arg(long = "blocklist", value_name = "PATH|URL")]
    pub blocklists: Vec<String>,
}

impl EgressArgs {
    pub fn policy(&self) -> share_engine::NetPolicy {
        share_engine::NetPolicy {
            interface: self.interface.clone(),
            proxy: self.proxy.clone(),
        }
    }
}

/// How connections to peers are made.
#[derive(Args, Clone)]
pub struct TransportArgs {
    /// Protocol encryption (MSE/PE): `prefer` takes both and dials encrypted first (the
    /// payload stays plaintext where the peer allows it), `require` refuses plaintext both
    /// ways (RC4 on every byte), `disable` speaks plaintext only.
    #[arg(long, value_name = "MODE", default_value = "prefer", value_parser = parse_policy)]
    pub encryption: share_core::mse::Policy,
    /// Transports to listen on and dial with: `tcp`, `utp` (µTP, BEP 29, on the UDP port
    /// the DHT uses), or both, comma-separated. Dials try TCP first, then µTP.
    #[arg(long, value_name = "LIST", default_value = "tcp,utp", value_parser = parse_transports)]
    pub transports: share_engine::Transports,
}

fn parse_transports(s: &str) -> Result<share_engine::Transports, String> {
    let mut t = share_engine::Transports {
        tcp: false,
        utp: false,
    };
    for word in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        match word.to_ascii_lowercase().as_str() {
            "tcp" => t.tcp = true,
            "utp" | "µtp" => t.utp = true,
            other => return Err(format!("`{other}` is not a transport (tcp, utp)")),
        }
    }
    if !t.tcp && !t.utp {
        return Err("at least one transport is needed (tcp, utp)".into());
    }
    Ok(t)
}

fn parse_policy(s: &str) -> Result<share_core::mse::Policy, String> {
    s.parse()
        .map_err(|_| format!("`{s}` is not one of prefer, require, disable"))
}

/// Where peers come from besides trackers and `--peer`, and where state is kept.
#[derive(Args, Clone)]
pub struct DiscoveryArgs {
    /// A DHT bootstrap node (repeatable; replaces the default public routers).
    #[arg(long = "dht-bootstrap", value_name = "HOST:PORT")]
    pub dht_bootstrap: Vec<String>,
    /// Do not use the DHT.
    #[arg(long, env = "SHARE_NO_DHT", value_parser = clap::builder::FalseyValueParser::new())]
    pub no_dht: bool,
    /// Do not exchange peers with peers (BEP 11).
    #[arg(long, env = "SHARE_NO_PEX", value_parser = clap::builder::FalseyValueParser::new())]
    pub no_pex: bool,
    /// Do not announce or listen for peers on the local network (BEP 14 multicast).
    #[arg(long, env = "SHARE_NO_LSD", value_parser = clap::builder::FalseyValueParser::new())]
    pub no_lsd: bool,
    /// Do not map the listening port on the router (UPnP IGD, NAT-PMP/PCP; on by default
    /// in `seed`, `fetch --seed` and `daemon`).
    #[arg(long, env = "SHARE_NO_PORT_MAPPING", value_parser = clap::builder::FalseyValueParser::new())]
    pub no_port_mapping: bool,
    /// The folder for what outlives a run (magnet metadata; default:
    /// $XDG_STATE_HOME/share, else ~/.local/state/share).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

impl DiscoveryArgs {
    pub fn state_dir(&self) -> PathBuf {
        if let Some(d) = &self.state_dir {
            return d.clone();
        }
        match std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
            Some(x) => PathBuf::from(x).join("share"),
            None => {
                let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
                PathBuf::from(home).join(".local/state/share")
            }
        }
    }
}

/// A file pattern for `--only` and `--exclude`, checked when the command line is read.
fn parse_glob(s: &str) -> Result<String, String> {
    globset::Glob::new(s)
        .map(|_| s.to_string())
        .map_err(|e| format!("bad pattern: {e}"))
}
