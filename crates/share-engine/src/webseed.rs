//! A web seed (BEP 19): an HTTP server holding a torrent's files, asked for ranges of them.
//!
//! What a request is (which URL, which bytes) is decided in `share_core::webseed`; here the
//! requests are made and the answers held to what was asked:
//! - HTTP/1.1 keep-alive through one small client per web seed (at most two idle
//!   connections), HTTPS through rustls, a timeout for each request;
//! - a `206` with the `Content-Range` asked for, and exactly as many bytes: a server that
//!   answers a ranged request with `200` ignores ranges, and its body is not read at all (a
//!   whole-file body must not fill memory); a body longer than the range is cut off;
//! - redirects followed up to five; a web seed on a public address may not redirect to (or
//!   resolve to) a loopback, private or link-local one;
//! - `404` says the file is not on this server; `429` and `503` say when to come back
//!   (`Retry-After`, bounded).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use share_core::webseed::{is_internal, redirect_allowed, Get};

/// Redirects followed at most.
const MAX_REDIRECTS: usize = 5;
/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest back-off a server may ask for.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// Why a request to a web seed failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebSeedError {
    #[error("{0}: the server ignores ranges (answered {1} to a ranged request)")]
    NoRanges(String, u16),
    #[error("{url}: not on the server (404)")]
    Missing { url: String, file: usize },
    #[error("{0}: busy, come back in {1:?}")]
    Busy(String, Duration),
    #[error("{0}: HTTP {1}")]
    Status(String, u16),
    #[error("{0}: the answer is not the range asked for ({1})")]
    BadAnswer(String, String),
    #[error("{0}: {1}")]
    Request(String, String),
    #[error("{0}: refused: {1}")]
    Refused(String, String),
}

/// Resolves names, leaving out internal addresses for a web seed that is not itself
/// internal (a public server must not lead us to our own network).
struct OutsideOnly;

impl reqwest::dns::Resolve for OutsideOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| !is_internal(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!("{host} resolves to no public address").into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// One web seed.
pub struct WebSeed {
    pub url: String,
    client: reqwest::Client,
}

/// Where `url` points: its host's first address.
async fn host_ip(url: &reqwest::Url) -> Option<IpAddr> {
    let host = url.host_str()?;
    if let Ok(ip) = host
        .trim_matches(|c| c == '[' || c == ']')
        .parse::<IpAddr>()
    {
        return Some(ip);
    }
    let port = url.port_or_known_default().unwrap_or(80);
    tokio::net::lookup_host((host, port))
        .await
        .ok()?
        .next()
        .map(|a| a.ip())
}

impl WebSeed {
    /// A web seed at `url`; requests go out through `egress` (an interface, a proxy), and
    /// leave from `bind` when given. `loopback_only` (the tests' promise) refuses one that
    /// is not on loopback.
    ///
    /// Under a proxy the server's name is the proxy's to resolve: a name is not looked up
    /// here, so the rule against public servers leading to internal addresses holds for
    /// addresses in URLs (and redirects) only, and "internal" means the proxy's network.
    pub async fn new(
        url: &str,
        bind: Option<IpAddr>,
        egress: &crate::egress::Egress,
        loopback_only: bool,
    ) -> Result<WebSeed, WebSeedError> {
        let refused = |why: &str| WebSeedError::Refused(url.to_owned(), why.to_owned());
        let parsed = reqwest::Url::parse(url).map_err(|e| refused(&e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(refused("not an http or https URL"));
        }
        let literal = parsed.host_str().and_then(|h| {
            h.trim_matches(|c| c == '[' || c == ']')
                .parse::<IpAddr>()
                .ok()
        });
        let ip = if egress.is_proxied() {
            literal
        } else {
            Some(
                host_ip(&parsed)
                    .await
                    .ok_or_else(|| refused("its host has no address"))?,
            )
        };
        if loopback_only && !ip.is_some_and(|ip| ip.is_loopback()) {
            return Err(refused("not on loopback (SHARE_LOOPBACK_ONLY)"));
        }
        // A name under a proxy: taken as public.
        let ip = ip.unwrap_or(IpAddr::from([192, 0, 2, 1]));
        let internal = is_internal(ip);
        let policy = reqwest::redirect::Policy::custom(move |a| {
            if a.previous().len() >= MAX_REDIRECTS {
                return a.error(format!("more than {MAX_REDIRECTS} redirects"));
            }
            let target = a.url().host_str().and_then(|h| {
                h.trim_matches(|c| c == '[' || c == ']')
                    .parse::<IpAddr>()
                    .ok()
            });
            match target {
                Some(t) if !redirect_allowed(ip, t) || (loopback_only && !t.is_loopback()) => {
                    a.error("a redirect from a public server to an internal address")
                }
                _ => a.follow(),
            }
        });
        let mut b = egress
            .http(reqwest::Client::builder())
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(2)
            .redirect(policy);
        if !internal && !egress.is_proxied() {
            b = b.dns_resolver(Arc::new(OutsideOnly));
        }
        if egress.interface().is_none() && !egress.is_proxied() {
            if let Some(ip) = bind.filter(|ip| !ip.is_unspecified()) {
                b = b.local_address(ip);
            }
        }
        let client = b.build().map_err(|e| refused(&e.to_string()))?;
        Ok(WebSeed {
            url: url.to_owned(),
            client,
        })
    }

    /// Asks for `g`'s range and checks the answer's head: a `206` with the `Content-Range`
    /// asked for. Its body is read through [`RangeBody::next`], no further than the range.
    pub async fn open(&self, g: &Get) -> Result<RangeBody, WebSeedError> {
        let url = &g.url;
        let resp = self
            .client
            .get(url)
            .header(reqwest::header::RANGE, g.range())
            .send()
            .await
            .map_err(|e| WebSeedError::Request(url.clone(), e.to_string()))?;
        let status = resp.status().as_u16();
        match status {
            206 => {}
            404 | 410 => {
                return Err(WebSeedError::Missing {
                    url: url.clone(),
                    file: g.file,
                })
            }
            429 | 503 => {
                let after = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map_or(Duration::from_secs(10), Duration::from_secs)
                    .min(MAX_RETRY_AFTER);
                return Err(WebSeedError::Busy(url.clone(), after));
            }
            // A success that is not a partial answer: the server ignores ranges. Its body
            // (perhaps the whole file) is not read.
            200..=299 => return Err(WebSeedError::NoRanges(url.clone(), status)),
            _ => return Err(WebSeedError::Status(url.clone(), status)),
        }
        let range = resp
            .headers()
            .get(reqwest::header::CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let expected = format!("bytes {}-{}/", g.first, g.last);
        if !range.starts_with(&expected) {
            return Err(WebSeedError::BadAnswer(
                url.clone(),
                format!("Content-Range {range:?} for {}", g.range()),
            ));
        }
        Ok(RangeBody {
            resp,
            left: g.len(),
            url: url.clone(),
        })
    }
}

/// The body of a ranged answer, read in the chunks the connection gives.
pub struct RangeBody {
    resp: reqwest::Response,
    /// Bytes of the range not yet read.
    left: usize,
    url: String,
}

impl RangeBody {
    /// The next chunk of the range; `None` once all of it is read. A body that ends early
    /// is an error; one that goes on past the range is cut off there.
    pub async fn next(&mut self) -> Result<Option<bytes::Bytes>, WebSeedError> {
        if self.left == 0 {
            return Ok(None);
        }
        let chunk = self
            .resp
            .chunk()
            .await
            .map_err(|e| WebSeedError::Request(self.url.clone(), e.to_string()))?;
        match chunk {
            None => Err(WebSeedError::BadAnswer(
                self.url.clone(),
                format!("the body ended {} bytes short of the range", self.left),
            )),
            Some(mut c) => {
                c.truncate(self.left);
                self.left -= c.len();
                Ok(Some(c))
            }
        }
    }
}

impl WebSeedError {
    /// What the failure means for deciding what to do with the web seed.
    pub fn failure(&self) -> share_core::webseed::Failure {
        use share_core::webseed::Failure;
        match self {
            WebSeedError::NoRanges(..) => Failure::NoRanges,
            WebSeedError::Missing { file, .. } => Failure::Missing(*file),
            WebSeedError::Busy(_, after) => Failure::Busy(*after),
            WebSeedError::Status(_, code) => Failure::Status(*code),
            WebSeedError::BadAnswer(..) => Failure::BadAnswer,
            WebSeedError::Request(..) => Failure::Transport,
            WebSeedError::Refused(..) => Failure::Status(403),
        }
    }
}
