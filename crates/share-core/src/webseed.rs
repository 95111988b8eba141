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

use std::net::IpAddr;

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
    let first = info.files.partition_point(|f| f.offset + f.length <= offset);
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
            a.is_loopback() || a.is_private() || a.is_link_local() || a.is_unspecified()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metainfo::FileEntry;

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
        assert_eq!(file_url("http://h/x.iso", &one, &one.files[0]), "http://h/x.iso");
        assert_eq!(file_url("http://h/pub/", &one, &one.files[0]), "http://h/pub/My%20Stuff");
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
        assert_eq!((got[0].file, got[0].first, got[0].last, got[0].at), (0, 50, 99, 0));
        assert_eq!((got[1].file, got[1].first, got[1].last, got[1].at), (2, 0, 49, 16334));
        assert_eq!((got[2].file, got[2].first, got[2].last, got[2].at), (4, 0, 615, 16384));
        assert_eq!(got[2].range(), "bytes=0-615");
        assert!(requests("http://h/", &i, 100, 16284).is_empty(), "padding only");
    }

    #[test]
    fn a_public_server_may_not_redirect_inward() {
        let public: IpAddr = "93.184.216.34".parse().unwrap();
        for inside in ["127.0.0.1", "10.1.2.3", "192.168.1.1", "169.254.1.1", "::1", "fd00::1", "fe80::1", "::ffff:127.0.0.1", "100.64.0.1"] {
            assert!(!redirect_allowed(public, inside.parse().unwrap()), "{inside}");
        }
        assert!(redirect_allowed(public, "1.1.1.1".parse().unwrap()));
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(redirect_allowed(local, "127.0.0.2".parse().unwrap()), "loopback to loopback");
    }
}
