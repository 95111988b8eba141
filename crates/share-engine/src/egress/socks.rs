//! The SOCKS5 proxy of `--proxy socks5://[USER:PASS@]HOST:PORT`, with socks5h semantics:
//! names are handed to the proxy, never resolved here.
//!
//! - TCP (peers): a CONNECT through `tokio-socks` over a connection we open to the proxy.
//! - HTTP (trackers, web seeds): reqwest's own SOCKS support, given [`Proxy::reqwest_url`].
//! - UDP (µTP, the DHT, UDP trackers): a UDP ASSOCIATE through `fast-socks5`'s request
//!   (`tokio-socks` has none), from a UDP socket of ours; every datagram then goes to the
//!   proxy's relay with the SOCKS header in front. The association lives as long as its TCP
//!   control connection, which the [`Relayed`] socket keeps.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use fast_socks5::util::target_addr::TargetAddr;
use tokio::net::{TcpStream, UdpSocket};

/// How long the proxy has to answer a request.
const PROXY_TIMEOUT: Duration = Duration::from_secs(10);

/// A SOCKS5 proxy.
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    pub host: String,
    pub port: u16,
    auth: Option<(String, String)>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        write!(f, "socks5://{}:{}", self.host, self.port)
    }
}

impl std::fmt::Display for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// `%XX` escapes of a URL's user or password.
fn decode(s: &str) -> String {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Proxy {
    /// `socks5://[USER:PASS@]HOST:PORT` (`socks5h://` is taken as the same).
    pub fn parse(s: &str) -> Result<Proxy, String> {
        let usage = "give --proxy socks5://[USER:PASS@]HOST:PORT";
        let u = reqwest::Url::parse(s.trim()).map_err(|e| format!("`{s}`: {e} ({usage})"))?;
        if !matches!(u.scheme(), "socks5" | "socks5h") {
            return Err(format!(
                "`{}` proxies are not supported: only SOCKS5 ({usage})",
                u.scheme()
            ));
        }
        let host = u
            .host_str()
            .ok_or_else(|| format!("the proxy has no host ({usage})"))?
            .trim_matches(|c| c == '[' || c == ']')
            .to_owned();
        let port = u
            .port()
            .ok_or_else(|| format!("the proxy has no port ({usage})"))?;
        if !matches!(u.path(), "" | "/") || u.query().is_some() {
            return Err(format!("the proxy URL has a path ({usage})"));
        }
        let auth = match (u.username(), u.password()) {
            ("", None) => None,
            (user, Some(pass)) if !user.is_empty() => Some((decode(user), decode(pass))),
            _ => {
                return Err(format!(
                    "the proxy's credentials need both USER and PASS ({usage})"
                ))
            }
        };
        Ok(Proxy { host, port, auth })
    }

    /// The URL reqwest takes: socks5h, so that names go to the proxy.
    pub fn reqwest_url(&self) -> String {
        let host = match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V6(a)) => format!("[{a}]"),
            _ => self.host.clone(),
        };
        let enc = |s: &str| {
            s.bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect::<String>()
        };
        match &self.auth {
            Some((u, p)) => format!("socks5h://{}:{}@{host}:{}", enc(u), enc(p), self.port),
            None => format!("socks5h://{host}:{}", self.port),
        }
    }

    /// The proxy's own address (its name, if it has one, is resolved here: that names the
    /// proxy, not where traffic goes).
    pub async fn addr(&self) -> std::io::Result<SocketAddr> {
        if let Ok(ip) = self.host.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, self.port));
        }
        tokio::net::lookup_host((self.host.as_str(), self.port))
            .await?
            .next()
            .ok_or_else(|| std::io::Error::other(format!("the proxy {} has no address", self.host)))
    }

    /// A CONNECT to `target` over `control`, a connection to the proxy.
    pub async fn connect(
        &self,
        control: TcpStream,
        target: SocketAddr,
    ) -> std::io::Result<tokio_socks::tcp::Socks5Stream<TcpStream>> {
        use tokio_socks::tcp::Socks5Stream;
        let go = async {
            match &self.auth {
                Some((u, p)) => {
                    Socks5Stream::connect_with_password_and_socket(control, target, u, p).await
                }
                None => Socks5Stream::connect_with_socket(control, target).await,
            }
        };
        tokio::time::timeout(PROXY_TIMEOUT, go)
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "the proxy did not answer")
            })?
            .map_err(|e| std::io::Error::other(format!("through the proxy: {e}")))
    }

    /// A UDP association over `control`, a connection to the proxy: `socket` (ours, of the
    /// proxy's family) then sends to and hears from the proxy's relay only.
    pub async fn associate(
        &self,
        control: TcpStream,
        socket: UdpSocket,
    ) -> std::io::Result<Relayed> {
        use fast_socks5::client::{Config, Socks5Stream};
        use fast_socks5::{AuthenticationMethod, Socks5Command};
        let proxy_ip = control.peer_addr()?.ip();
        let auth = self
            .auth
            .as_ref()
            .map(|(u, p)| AuthenticationMethod::Password {
                username: u.clone(),
                password: p.clone(),
            });
        // Where we will send from, as far as we can tell: any address of the proxy's family
        // (an IPv6 form towards an IPv4 proxy is refused by some, dante among them).
        let from = match proxy_ip {
            IpAddr::V4(_) => SocketAddr::from(([0u8; 4], 0)),
            IpAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
        };
        let go = async {
            let mut s = Socks5Stream::use_stream(control, auth, Config::default()).await?;
            let relay = s
                .request(Socks5Command::UDPAssociate, TargetAddr::Ip(from))
                .await?;
            Ok::<_, fast_socks5::SocksError>((s, relay))
        };
        let (control, relay) = tokio::time::timeout(PROXY_TIMEOUT, go)
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "the proxy did not answer")
            })?
            .map_err(|e| std::io::Error::other(format!("{e:#}")))?;
        // A relay at 0.0.0.0 (or ::) is at the proxy's own address (RFC 1928).
        let relay = match relay {
            TargetAddr::Ip(a) if a.ip().is_unspecified() => SocketAddr::new(proxy_ip, a.port()),
            TargetAddr::Ip(a) => a,
            TargetAddr::Domain(..) => {
                return Err(std::io::Error::other("the proxy named its relay by a name"))
            }
        };
        socket.connect(relay).await?;
        Ok(Relayed {
            socket,
            _control: control,
            relay,
        })
    }
}

/// A UDP socket whose datagrams go through the proxy's relay, and the control connection
/// the association lives as long as.
pub struct Relayed {
    socket: UdpSocket,
    _control: fast_socks5::client::Socks5Stream<TcpStream>,
    pub relay: SocketAddr,
}

impl std::fmt::Debug for Relayed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "relayed through {}", self.relay)
    }
}

/// Where a relayed datagram goes: an address, or a name the proxy resolves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Addr(SocketAddr),
    Name(String, u16),
}

impl Relayed {
    pub fn socket(&self) -> &UdpSocket {
        &self.socket
    }

    /// `payload` with the SOCKS header for `to` in front.
    pub fn wrap(to: &Target, payload: &[&[u8]]) -> std::io::Result<Vec<u8>> {
        let header = match to {
            Target::Addr(a) => fast_socks5::new_udp_header(*a),
            Target::Name(h, p) => fast_socks5::new_udp_header((h.as_str(), *p)),
        };
        let mut v = header.map_err(|e| std::io::Error::other(e.to_string()))?;
        for p in payload {
            v.extend_from_slice(p);
        }
        Ok(v)
    }

    /// Reads the next datagram from the relay into `buf`, without its header: its length and
    /// where it came from. Datagrams the relay cannot have sent whole (fragments, a malformed
    /// header, a sender named by a name) are skipped.
    pub async fn recv_from(&self, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
        loop {
            let n = self.socket().recv(buf).await?;
            let Some((from, at)) = unwrap(&buf[..n]).await else {
                continue;
            };
            buf.copy_within(at..n, 0);
            return Ok((n - at, from));
        }
    }

    pub async fn send_to(&self, buf: &[u8], to: &Target) -> std::io::Result<usize> {
        let v = Relayed::wrap(to, &[buf])?;
        self.socket().send(&v).await?;
        Ok(buf.len())
    }
}

/// The sender and the payload's offset of a datagram from the relay.
async fn unwrap(p: &[u8]) -> Option<(SocketAddr, usize)> {
    let (frag, from, payload) = fast_socks5::parse_udp_request(p).await.ok()?;
    match from {
        TargetAddr::Ip(a) if frag == 0 => Some((a, p.len() - payload.len())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls_are_read_and_checked() {
        let p = Proxy::parse("socks5://alice:s%40cret@127.0.0.1:1080").unwrap();
        assert_eq!((p.host.as_str(), p.port), ("127.0.0.1", 1080));
        assert_eq!(p.auth, Some(("alice".into(), "s@cret".into())));
        assert_eq!(p.reqwest_url(), "socks5h://alice:s%40cret@127.0.0.1:1080");
        assert!(!format!("{p:?}").contains("cret"), "no password in logs");
        let p = Proxy::parse("socks5h://[::1]:9050").unwrap();
        assert_eq!(p.reqwest_url(), "socks5h://[::1]:9050");
        for bad in [
            "http://127.0.0.1:8080",
            "socks4://127.0.0.1:1080",
            "socks5://127.0.0.1",
            "socks5://alice@127.0.0.1:1080",
            "socks5://127.0.0.1:1080/x",
            "127.0.0.1:1080",
        ] {
            assert!(Proxy::parse(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn relayed_datagrams_are_unwrapped() {
        let to = Target::Addr("192.0.2.7:6881".parse().unwrap());
        let v = Relayed::wrap(&to, &[b"d1:ad", b"e"]).unwrap();
        let (from, at) = unwrap(&v).await.unwrap();
        assert_eq!(from, "192.0.2.7:6881".parse().unwrap());
        assert_eq!(&v[at..], b"d1:ade");
        assert!(
            unwrap(&[0, 0, 1, 1, 0]).await.is_none(),
            "a fragment, truncated"
        );
        assert!(unwrap(&[0, 0]).await.is_none());
        let named = Relayed::wrap(&Target::Name("tracker.example".into(), 80), &[b"x"]).unwrap();
        assert!(unwrap(&named).await.is_none(), "a sender named by a name");
    }
}
