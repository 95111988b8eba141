//! The parameters of one qBittorrent API call, read as qBittorrent reads them: from the
//! query string of a GET, from the body only of a POST (url-encoded or multipart; a part
//! with a file name is an uploaded file, whatever its field name). The body was read by
//! the HTTP layer, bounded by `MAX_BODY`; a multipart body is parsed by `multer` with the
//! same bound and at most [`MAX_PARTS`] parts, and anything malformed is a 400.
//!
//! Values are typed here, once: booleans are `true`/`false` in any case (and, beyond
//! qBittorrent, `1`/`0`); a number that does not parse is a 400 naming the parameter, never
//! a silent 0.

use std::collections::HashMap;

use axum::http::{header, HeaderMap, Method};
use bytes::Bytes;

use super::Fail;

/// Parts of a multipart body read at most.
pub const MAX_PARTS: usize = 1024;

/// One call's parameters and uploaded files.
#[derive(Debug, Default)]
pub struct Params {
    fields: HashMap<String, String>,
    /// Uploaded files: (file name, bytes), in the order sent.
    pub files: Vec<(String, Bytes)>,
}

impl Params {
    /// Reads the parameters of a request (`query` for a GET, `body` for a POST).
    pub async fn read(
        method: &Method,
        query: Option<&str>,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<Params, Fail> {
        let mut p = Params::default();
        if method != Method::POST {
            p.add_urlencoded(query.unwrap_or("").as_bytes());
            return Ok(p);
        }
        if body.is_empty() {
            return Ok(p);
        }
        let ctype = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mime = ctype
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match mime.as_str() {
            "application/x-www-form-urlencoded" => p.add_urlencoded(&body),
            "multipart/form-data" => p.add_multipart(ctype, body).await?,
            _ => {
                return Err(Fail::bad(
                    "the body must be url-encoded or multipart/form-data",
                ))
            }
        }
        Ok(p)
    }

    fn add_urlencoded(&mut self, raw: &[u8]) {
        for (k, v) in form_urlencoded::parse(raw) {
            self.fields.insert(k.into_owned(), v.into_owned());
        }
    }

    async fn add_multipart(&mut self, ctype: &str, body: Bytes) -> Result<(), Fail> {
        let boundary = multer::parse_boundary(ctype)
            .map_err(|_| Fail::bad("multipart body without a boundary"))?;
        let limits = multer::Constraints::new().size_limit(
            multer::SizeLimit::new()
                .whole_stream(crate::http::MAX_BODY as u64)
                .per_field(crate::http::MAX_BODY as u64),
        );
        let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(body) });
        let mut m = multer::Multipart::with_constraints(stream, boundary, limits);
        let malformed = |e: multer::Error| Fail::bad(&format!("malformed multipart body: {e}"));
        let mut parts = 0;
        while let Some(field) = m.next_field().await.map_err(malformed)? {
            parts += 1;
            if parts > MAX_PARTS {
                return Err(Fail::bad("too many parts in the multipart body"));
            }
            let name = field.name().unwrap_or("").to_owned();
            let file = field.file_name().map(str::to_owned);
            let bytes = field.bytes().await.map_err(malformed)?;
            match file {
                Some(f) => self.files.push((f, bytes)),
                None => {
                    let v = String::from_utf8(bytes.to_vec())
                        .map_err(|_| Fail::bad(&format!("'{name}' is not UTF-8")))?;
                    self.fields.insert(name, v);
                }
            }
        }
        Ok(())
    }

    /// A parameter as sent (present but empty counts as present).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str)
    }

    /// A parameter the endpoint requires: its absence is qBittorrent's 400 `Bad Request`.
    pub fn need(&self, key: &str) -> Result<&str, Fail> {
        self.get(key)
            .ok_or_else(|| Fail::bad(&format!("Missing required parameters: {key}")))
    }

    /// The first present of several names (aliases: `stopped`/`paused`).
    pub fn any(&self, keys: &[&str]) -> Option<&str> {
        keys.iter().find_map(|k| self.get(k))
    }

    /// `true`/`false` in any case, or `1`/`0`; anything else counts as absent, as in
    /// qBittorrent's `parseBool`.
    pub fn bool(&self, key: &str) -> Option<bool> {
        self.get(key).and_then(parse_bool)
    }

    /// An integer parameter; present but not an integer is a 400.
    pub fn int(&self, key: &str) -> Result<Option<i64>, Fail> {
        match self.get(key).map(str::trim) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse::<i64>()
                .map(Some)
                .map_err(|_| Fail::bad(&format!("'{key}' must be an integer"))),
        }
    }

    /// A number parameter (finite); present but not a number is a 400.
    pub fn float(&self, key: &str) -> Result<Option<f64>, Fail> {
        match self.get(key).map(str::trim) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .map(Some)
                .ok_or_else(|| Fail::bad(&format!("'{key}' must be a number"))),
        }
    }

    /// A `|`-separated list of info-hashes, or `all` (`None`).
    pub fn hashes(&self, key: &str) -> Result<Hashes, Fail> {
        Ok(Hashes::parse(self.need(key)?))
    }

    /// A `,`-separated list of tags, trimmed, empty ones dropped.
    pub fn tags(&self, key: &str) -> Vec<String> {
        split_tags(self.get(key).unwrap_or(""))
    }
}

/// qBittorrent's booleans, plus `1`/`0`.
pub fn parse_bool(v: &str) -> Option<bool> {
    let v = v.trim();
    if v.eq_ignore_ascii_case("true") || v == "1" {
        Some(true)
    } else if v.eq_ignore_ascii_case("false") || v == "0" {
        Some(false)
    } else {
        None
    }
}

pub fn split_tags(v: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in v.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        if !out.iter().any(|o| o == t) {
            out.push(t.to_owned());
        }
    }
    out
}

/// Which torrents a `hashes` parameter names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hashes {
    All,
    /// Lowercase 40-hex ids; anything else in the list matches nothing.
    Some(Vec<String>),
}

impl Hashes {
    pub fn parse(v: &str) -> Hashes {
        if v.trim() == "all" {
            return Hashes::All;
        }
        Hashes::Some(
            v.split('|')
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| valid_hash(h))
                .collect(),
        )
    }

    pub fn matches(&self, hash: &str) -> bool {
        match self {
            Hashes::All => true,
            Hashes::Some(l) => l.iter().any(|h| h == hash),
        }
    }
}

/// 40 hex digits (a torrent id as qBittorrent parses it).
pub fn valid_hash(h: &str) -> bool {
    h.len() == 40 && h.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(ctype: &str, body: &'static [u8]) -> Result<Params, Fail> {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, ctype.parse().unwrap());
        futures_util::FutureExt::now_or_never(Params::read(
            &Method::POST,
            Some("ignored=1"),
            &h,
            Bytes::from_static(body),
        ))
        .unwrap()
    }

    #[test]
    fn a_post_reads_its_body_only() {
        let p = post(
            "application/x-www-form-urlencoded",
            b"hashes=a%7Cb&name=x+y",
        )
        .unwrap();
        assert_eq!(p.get("name"), Some("x y"));
        assert_eq!(p.get("ignored"), None);
        assert!(post("application/json", b"{}").is_err());
    }

    #[test]
    fn multipart_files_are_keyed_by_their_file_name_and_bad_bodies_refused() {
        let body = b"--XX\r\nContent-Disposition: form-data; name=\"torrents\"; filename=\"a.torrent\"\r\n\r\nd4:infode\r\n--XX\r\nContent-Disposition: form-data; name=\"category\"\r\n\r\ntv\r\n--XX--\r\n";
        let p = post("multipart/form-data; boundary=XX", body).unwrap();
        assert_eq!(p.get("category"), Some("tv"));
        assert_eq!(p.files.len(), 1);
        assert_eq!(&p.files[0].1[..], b"d4:infode");
        assert!(post("multipart/form-data; boundary=XX", b"--XX\r\ngarbage").is_err());
        assert!(post("multipart/form-data", b"--XX--").is_err());
    }

    #[test]
    fn values_are_typed_or_refused() {
        let p = post(
            "application/x-www-form-urlencoded",
            b"a=True&b=false&c=1&d=yes&n=12&f=1.5&bad=x",
        )
        .unwrap();
        assert_eq!(
            [p.bool("a"), p.bool("b"), p.bool("c"), p.bool("d")],
            [Some(true), Some(false), Some(true), None]
        );
        assert_eq!(p.int("n").unwrap(), Some(12));
        assert_eq!(p.float("f").unwrap(), Some(1.5));
        assert!(p.int("bad").is_err() && p.float("bad").is_err());
        assert_eq!(p.int("none").unwrap(), None);
        assert!(p.need("none").is_err());
    }

    #[test]
    fn hashes_and_tags() {
        let h = "ab".repeat(20);
        assert_eq!(Hashes::parse("all"), Hashes::All);
        let l = Hashes::parse(&format!("{}|nothex|", h.to_uppercase()));
        assert!(l.matches(&h));
        assert_eq!(l, Hashes::Some(vec![h]));
        assert_eq!(split_tags(" a, b,,a ,c "), vec!["a", "b", "c"]);
    }
}
