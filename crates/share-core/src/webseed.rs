//! Web seeds (BEP 19), sans I/O: which URL and byte range of an HTTP server hold a span of a
//! torrent, and which redirects may be followed.
//!
//! - A single-file torrent's URL is the file itself, unless it ends in `/`: then the
//!   torrent's name is appended.
//! - A multi-file torrent's URL is a folder: the torrent's name and each path element are
//!   appended, each percent-encoded, joined by `/`.
//! - A span of the torrent's byte stream that crosses files becomes one ranged request per
//!   file; padding files (BEP 47) are zeros and are never asked for.
//! - A web seed on a public address may not redirect to a loopback, private or link-local
//!   one (the rule libtorrent applies against request forgery).
//! - How a web seed is treated as it answers ([`Seat`]): a server that ignores ranges or
//!   refuses us is dropped; a busy one (`429`, `503`) is left alone for as long as it asks
//!   and then asked one request at a time; one that fails otherwise is retried after a
//!   growing pause; a file it does not have is left to the peers; one whose data fails
//!   verification is dropped (at once when it sent the whole piece).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::metainfo::{FileEntry, Info};

/// The URL of `file` of `info` on the web seed `base`.
pub fn file_url(base: &str, info: &Info, file: &FileEntry) -> String {
    if info.single_file {
        if base.ends_with('/') {
            format!("{base}{}", crate::percent(&info.name))
        } else {
            base.to_owned()
        }
    } else {
        let mut url = base.to_owned();
        if !url.ends_with('/') {
            url.push('/');
        }
        url.push_str(&crate::percent(&info.name));
        for e in &file.path {
            url.push('/');
            url.push_str(&crate::percent(e));
        }
        url
    }
}

/// One ranged GET: bytes `first..=last` of file `file` (its index in `info.files`), which
/// go at `at` in the span asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Get {
    pub file: usize,
    pub url: String,
    pub first: u64,
    pub last: u64,
    pub at: usize,
}

impl Get {
    pub fn len(&self) -> usize {
        (self.last - self.first + 1) as usize
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// The `Range` header's value.
    pub fn range(&self) -> String {
        format!("bytes={}-{}", self.first, self.last)
    }
}

/// The requests that fetch `len` bytes at `offset` of `info`'s byte stream from `base`;
/// padding files are left out (their bytes are zeros).
pub fn requests(base: &str, info: &Info, offset: u64, len: u64) -> Vec<Get> {
    let end = offset.saturating_add(len).min(info.total_length);
    let first = info
        .files
        .partition_point(|f| f.offset + f.length <= offset);
    info.files[first..]
        .iter()
        .enumerate()
        .take_while(|(_, f)| f.offset < end)
        .filter(|(_, f)| !f.padding && f.length > 0 && f.symlink.is_none())
        .map(|(i, f)| {
            let from = offset.max(f.offset);
            let to = end.min(f.offset + f.length);
            Get {
                file: first + i,
                url: file_url(base, info, f),
                first: from - f.offset,
                last: to - f.offset - 1,
                at: (from - offset) as usize,
            }
        })
        .collect()
}

/// Whether an address is one a public server must not send us to.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            a.is_loopback()
                || a.is_private()
                || a.is_link_local()
                || a.is_unspecified()
                || a.octets()[0] == 0
                || (a.octets()[0] == 100 && (a.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => is_internal(IpAddr::V4(v4)),
            None => {
                a.is_loopback()
                    || a.is_unspecified()
                    || (a.segments()[0] & 0xfe00) == 0xfc00
                    || (a.segments()[0] & 0xffc0) == 0xfe80
            }
        },
    }
}

/// Whether a web seed at `from` may redirect to `to`: anything, unless it leads from a
/// public address to an internal one.
pub fn redirect_allowed(from: IpAddr, to: IpAddr) -> bool {
    is_internal(from) || !is_internal(to)
}

/// Requests in flight to one web seed at most (fewer after it said it was busy).
pub const MAX_CONNECTIONS: usize = 2;
/// Pieces shared with others that may fail verification before a web seed is dropped.
pub const MAX_BAD_PIECES: u32 = 3;
/// Answers in a row that are not the range asked for before a web seed is dropped.
pub const MAX_BAD_ANSWERS: u32 = 3;
/// The first pause after a failed request, doubled after each failure in a row.
const FIRST_PAUSE: Duration = Duration::from_secs(5);
/// The longest pause between tries.
const MAX_PAUSE: Duration = Duration::from_secs(300);

/// How a request to a web seed went wrong, as far as deciding what to do next goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// It answered a ranged request with the whole file (or another non-`206`).
    NoRanges,
    /// File `0` (its index in the torrent) is not on the server.
    Missing(usize),
    /// Busy: come back after this long.
    Busy(Duration),
    /// Another HTTP status.
    Status(u16),
    /// An answer that is not the range asked for (a wrong `Content-Range`, a short body).
    BadAnswer,
    /// The connection failed or timed out.
    Transport,
}

/// What to do with a web seed after a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Not asked again, for this reason.
    Drop(String),
    /// Asked again after this long.
    Pause(Duration),
    /// This file is left to others; the rest is still asked of it.
    WithoutFile(usize),
}

/// One web seed as the torrent sees it: whether and how much it may be asked now.
#[derive(Debug, Clone)]
pub struct Seat {
    dropped: Option<String>,
    retry_at: Option<Instant>,
    /// Failures in a row (reset by a good answer).
    failures: u32,
    bad_answers: u32,
    bad_pieces: u32,
    /// Requests allowed in flight now.
    connections: usize,
    /// Files it does not have.
    missing: Vec<usize>,
}

impl Default for Seat {
    fn default() -> Self {
        Seat {
            dropped: None,
            retry_at: None,
            failures: 0,
            bad_answers: 0,
            bad_pieces: 0,
            connections: MAX_CONNECTIONS,
            missing: Vec::new(),
        }
    }
}

impl Seat {
    /// How many requests may be in flight to it at `now` (0: none).
    pub fn room(&self, now: Instant, in_flight: usize) -> usize {
        if self.dropped.is_some() || self.retry_at.is_some_and(|t| now < t) {
            return 0;
        }
        self.connections.saturating_sub(in_flight)
    }

    /// Why it is not used any more, if it is not.
    pub fn dropped(&self) -> Option<&str> {
        self.dropped.as_deref()
    }

    /// Files it does not have.
    pub fn missing(&self) -> &[usize] {
        &self.missing
    }

    /// It may not be used at all (an unusable URL, an address it may not reach).
    pub fn drop_for(&mut self, why: String) {
        self.dropped.get_or_insert(why);
    }

    /// A request was answered in full.
    pub fn answered(&mut self) {
        self.failures = 0;
        self.bad_answers = 0;
    }

    /// A request failed at `now`.
    pub fn failed(&mut self, f: Failure, now: Instant) -> Verdict {
        let verdict = match f {
            Failure::NoRanges => Verdict::Drop(
                "it ignores HTTP ranges (answered a ranged request with the whole file)".into(),
            ),
            Failure::Missing(file) => {
                if !self.missing.contains(&file) {
                    self.missing.push(file);
                }
                Verdict::WithoutFile(file)
            }
            Failure::Busy(after) => {
                // Busy servers are asked one request at a time from now on.
                self.connections = 1;
                Verdict::Pause(after.min(MAX_PAUSE))
            }
            Failure::Status(code) if (400..500).contains(&code) && code != 408 => {
                Verdict::Drop(format!("it refuses us (HTTP {code})"))
            }
            Failure::BadAnswer => {
                self.bad_answers += 1;
                if self.bad_answers >= MAX_BAD_ANSWERS {
                    Verdict::Drop(format!(
                        "{MAX_BAD_ANSWERS} answers in a row were not the range asked for"
                    ))
                } else {
                    Verdict::Pause(self.next_pause())
                }
            }
            Failure::Status(_) | Failure::Transport => Verdict::Pause(self.next_pause()),
        };
        match &verdict {
            Verdict::Drop(why) => self.drop_for(why.clone()),
            Verdict::Pause(d) => self.retry_at = Some(now + *d),
            Verdict::WithoutFile(_) => {}
        }
        verdict
    }

    fn next_pause(&mut self) -> Duration {
        let pause = FIRST_PAUSE
            .saturating_mul(1 << self.failures.min(6))
            .min(MAX_PAUSE);
        self.failures += 1;
        pause
    }

    /// A piece it sent failed verification; `sole`: it sent all of it. A server's files do
    /// not change between requests, so a piece it alone sent proves its copy wrong, and it
    /// is dropped at once (as a peer that alone sent a bad piece is banned); a piece it
    /// shared with others is a strike. True if it is now dropped.
    pub fn bad_piece(&mut self, sole: bool) -> bool {
        self.bad_pieces += 1;
        if sole {
            self.drop_for("a piece it alone sent failed verification".into());
        } else if self.bad_pieces >= MAX_BAD_PIECES {
            self.drop_for(format!(
                "{MAX_BAD_PIECES} pieces it sent failed verification"
            ));
        }
        self.dropped.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metainfo::FileEntry;

    #[test]
    fn a_seat_drops_pauses_and_leaves_files_as_servers_answer() {
        let now = Instant::now();
        let mut s = Seat::default();
        assert_eq!(s.room(now, 0), MAX_CONNECTIONS);
        assert_eq!(s.room(now, 1), MAX_CONNECTIONS - 1);
        // Busy: left alone for as long as asked, then one request at a time.
        assert_eq!(
            s.failed(Failure::Busy(Duration::from_secs(7)), now),
            Verdict::Pause(Duration::from_secs(7))
        );
        assert_eq!(s.room(now + Duration::from_secs(6), 0), 0);
        assert_eq!(s.room(now + Duration::from_secs(7), 0), 1);
        // A missing file is left to others.
        assert_eq!(s.failed(Failure::Missing(3), now), Verdict::WithoutFile(3));
        assert_eq!(s.missing(), &[3]);
        // Transport failures pause longer each time, and a good answer resets that.
        let a = s.failed(Failure::Transport, now);
        let b = s.failed(Failure::Transport, now);
        assert!(matches!((a, b), (Verdict::Pause(x), Verdict::Pause(y)) if y > x));
        s.answered();
        assert_eq!(
            s.failed(Failure::Status(502), now),
            Verdict::Pause(FIRST_PAUSE)
        );
        // Bad pieces shared with others: dropped after a few.
        assert!(!s.bad_piece(false));
        assert!(!s.bad_piece(false));
        assert!(s.bad_piece(false));
        assert_eq!(s.room(now + MAX_PAUSE, 0), 0);
        assert!(s.dropped().unwrap().contains("failed verification"));

        // One it sent alone: at once.
        let mut s = Seat::default();
        assert!(s.bad_piece(true));
        let mut s = Seat::default();
        assert!(
            matches!(s.failed(Failure::NoRanges, now), Verdict::Drop(w) if w.contains("ranges"))
        );
        let mut s = Seat::default();
        assert!(matches!(
            s.failed(Failure::Status(403), now),
            Verdict::Drop(_)
        ));
        let mut s = Seat::default();
        s.failed(Failure::BadAnswer, now);
        s.failed(Failure::BadAnswer, now);
        assert!(matches!(
            s.failed(Failure::BadAnswer, now),
            Verdict::Drop(_)
        ));
    }

    fn entry(path: &[&str], offset: u64, length: u64, padding: bool) -> FileEntry {
        FileEntry {
            path: path.iter().map(|s| s.to_string()).collect(),
            length,
            offset,
            padding,
            executable: false,
            hidden: false,
            symlink: None,
            pieces_root: None,
        }
    }

    fn info(single: bool, files: Vec<FileEntry>) -> Info {
        let total = files.last().map(|f| f.offset + f.length).unwrap_or(0);
        Info {
            name: "My Stuff".into(),
            piece_length: 16384,
            v1: true,
            v2: false,
            pieces: vec![0; 20],
            files,
            total_length: total,
            private: false,
            single_file: single,
            warnings: Vec::new(),
        }
    }

    #[test]
    fn urls_join_as_bep_19_says() {
        let one = info(true, vec![entry(&[], 0, 10, false)]);
        assert_eq!(
            file_url("http://h/x.iso", &one, &one.files[0]),
            "http://h/x.iso"
        );
        assert_eq!(
            file_url("http://h/pub/", &one, &one.files[0]),
            "http://h/pub/My%20Stuff"
        );
        let many = info(false, vec![entry(&["dir é", "a&b.txt"], 0, 10, false)]);
        assert_eq!(
            file_url("http://h/pub", &many, &many.files[0]),
            "http://h/pub/My%20Stuff/dir%20%C3%A9/a%26b.txt"
        );
        assert_eq!(
            file_url("http://h/pub/", &many, &many.files[0]),
            "http://h/pub/My%20Stuff/dir%20%C3%A9/a%26b.txt"
        );
    }

    #[test]
    fn a_span_across_files_is_one_request_per_file_and_padding_is_never_asked() {
        let i = info(
            false,
            vec![
                entry(&["a"], 0, 100, false),
                entry(&[".pad", "16284"], 100, 16284, true),
                entry(&["b"], 16384, 50, false),
                entry(&["empty"], 16434, 0, false),
                entry(&["c"], 16434, 1000, false),
            ],
        );
        let got = requests("http://h/", &i, 50, 17000);
        assert_eq!(got.len(), 3);
        assert_eq!(
            (got[0].file, got[0].first, got[0].last, got[0].at),
            (0, 50, 99, 0)
        );
        assert_eq!(
            (got[1].file, got[1].first, got[1].last, got[1].at),
            (2, 0, 49, 16334)
        );
        assert_eq!(
            (got[2].file, got[2].first, got[2].last, got[2].at),
            (4, 0, 615, 16384)
        );
        assert_eq!(got[2].range(), "bytes=0-615");
        assert!(
            requests("http://h/", &i, 100, 16284).is_empty(),
            "padding only"
        );
    }

    #[test]
    fn a_public_server_may_not_redirect_inward() {
        let public: IpAddr = "93.184.216.34".parse().unwrap();
        for inside in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.1.1",
            "169.254.1.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "100.64.0.1",
        ] {
            assert!(
                !redirect_allowed(public, inside.parse().unwrap()),
                "{inside}"
            );
        }
        assert!(redirect_allowed(public, "1.1.1.1".parse().unwrap()));
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(
            redirect_allowed(local, "127.0.0.2".parse().unwrap()),
            "loopback to loopback"
        );
    }
}
