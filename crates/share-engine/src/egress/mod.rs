//! Where traffic goes: the one seam through which the session opens every socket and
//! builds every HTTP client (`--interface`, `--proxy`).
//!
//! [`Egress`] lives in the session's context; nothing else in the engine binds, connects
//! or builds a `reqwest::Client` on its own:
//!
//! | what | made by |
//! |---|---|
//! | TCP listeners | [`Egress::tcp_listener`] |
//! | the session's UDP sockets (µTP, the DHT) | [`Egress::session_udp`] |
//! | outgoing peer connections over TCP | [`Egress::connect_tcp`] |
//! | UDP tracker sockets | [`Egress::tracker_udp`] |
//! | HTTP clients (trackers, web seeds, the daemon's .torrent and blocklist downloads) | [`Egress::http`] |
//! | LSD's multicast sockets | [`Egress::multicast`] |
//! | port mapping (which local address, or off) | [`Egress::port_mapping`] |
//!
//! - **`--interface NAME`**: every socket gets `SO_BINDTODEVICE`, so the kernel sends its
//!   packets through that interface or not at all: when it goes down or loses its address,
//!   nothing takes another route (a kill switch by construction, not by watching). **`ADDR`**
//!   binds to the address and to the interface that holds it. A watcher says when the
//!   interface goes and comes back (one line each way); on its return, sockets that outlive
//!   it are bound again if it came back as a new device, and [`Egress::returns`] moves on
//!   so that torrents dial their peers again at once.
//! - **`--proxy socks5://`** ([`socks`]): peer connections, HTTP(S) trackers and web seeds
//!   go through the proxy, names resolved by it (socks5h). µTP, the DHT and UDP trackers go
//!   through its UDP relay (UDP ASSOCIATE) where it offers one; otherwise they are off, with
//!   one warning naming each. Nothing listens for peers (the port is reserved, not
//!   listened on), local service discovery and port mapping are off, and no name is
//!   resolved here: nothing is sent around the proxy.

pub mod iface;
pub mod socks;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio_util::sync::CancellationToken;

pub use iface::Iface;
pub use socks::{Proxy, Target};

/// A connection out, direct or through the proxy.
pub trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static> Stream for T {}
pub type BoxStream = Box<dyn Stream>;

/// What the user asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetPolicy {
    /// `--interface NAME|ADDR`.
    pub interface: Option<String>,
    /// `--proxy socks5://[USER:PASS@]HOST:PORT`.
    pub proxy: Option<String>,
}

/// How often the interface's state is read.
const WATCH_EVERY: Duration = Duration::from_secs(1);
const TCP_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether the proxy relays UDP: not known yet, yes, no.
const UDP_UNKNOWN: u8 = 0;
const UDP_YES: u8 = 1;
const UDP_NO: u8 = 2;

/// The session's way out. See the module's documentation.
pub struct Egress {
    iface: Option<Iface>,
    proxy: Option<Proxy>,
    udp: AtomicU8,
    /// Counts the interface's returns.
    returns: AtomicU64,
    /// Sockets that outlive a return of the interface (listeners, the session's UDP
    /// sockets, LSD's): bound to the device again if it comes back as a new one. A lock,
    /// taken to add one and by the watcher's rare rebinding.
    kept: Mutex<Vec<Weak<dyn AsFd + Send + Sync>>>,
}

impl std::fmt::Debug for Egress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Egress")
            .field("iface", &self.iface)
            .field("proxy", &self.proxy)
            .finish()
    }
}

impl Default for Egress {
    fn default() -> Self {
        Egress::direct()
    }
}

fn other(what: &str, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{what}: {e}"))
}

impl Egress {
    /// Straight out, through whatever route the kernel picks.
    pub fn direct() -> Egress {
        Egress {
            iface: None,
            proxy: None,
            udp: AtomicU8::new(UDP_UNKNOWN),
            returns: AtomicU64::new(0),
            kept: Mutex::new(Vec::new()),
        }
    }

    /// The policy checked: the interface exists, the proxy URL is one we speak.
    pub fn new(p: &NetPolicy) -> Result<Egress, String> {
        let iface = p.interface.as_deref().map(Iface::find).transpose()?;
        let proxy = p.proxy.as_deref().map(Proxy::parse).transpose()?;
        if iface.is_some() && proxy.is_some() {
            return Err("--interface and --proxy cannot be used together (bind the proxy's own route instead)".into());
        }
        Ok(Egress {
            iface,
            proxy,
            ..Egress::direct()
        })
    }

    pub fn interface(&self) -> Option<&Iface> {
        self.iface.as_ref()
    }

    pub fn proxy(&self) -> Option<&Proxy> {
        self.proxy.as_ref()
    }

    pub fn is_proxied(&self) -> bool {
        self.proxy.is_some()
    }

    /// How many times the interface came back: a torrent that sees it move dials its
    /// known peers again at once.
    pub fn returns(&self) -> u64 {
        self.returns.load(Ordering::Relaxed)
    }

    /// The address to listen on for `asked`: an interface named by its address listens
    /// there when the wildcard was asked for.
    pub fn listen_addr(&self, asked: SocketAddr) -> SocketAddr {
        match self.iface.as_ref().and_then(|i| i.addr) {
            Some(ip) if asked.ip().is_unspecified() => SocketAddr::new(ip, asked.port()),
            _ => asked,
        }
    }

    /// The address outgoing sockets of `family_v6` bind to, when there is one.
    fn source(&self, v6: bool) -> Option<IpAddr> {
        self.iface
            .as_ref()
            .and_then(|i| i.addr)
            .filter(|ip| ip.is_ipv6() == v6)
    }

    /// Binds `s` to the interface, when there is one.
    fn prepare(&self, s: &Socket) -> std::io::Result<()> {
        if let Some(i) = &self.iface {
            s.bind_device(Some(i.name.as_bytes()))
                .map_err(|e| other(&format!("binding to interface {}", i.name), e))?;
        }
        Ok(())
    }

    fn keep(&self, s: Weak<dyn AsFd + Send + Sync>) {
        if self.iface.is_some() {
            let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
            kept.retain(|w| w.strong_count() > 0);
            kept.push(s);
        }
    }

    /// A socket of `addr`'s family and `ty`, bound to the interface.
    fn socket(&self, addr: SocketAddr, ty: Type, proto: Protocol) -> std::io::Result<Socket> {
        let s = Socket::new(Domain::for_address(addr), ty, Some(proto))?;
        if addr.is_ipv6() {
            s.set_only_v6(true)?;
        }
        self.prepare(&s)?;
        s.set_nonblocking(true)?;
        Ok(s)
    }

    /// A TCP listener on `addr`. Under a proxy the port is only reserved (a bound socket
    /// that does not listen), since nothing may reach us around the proxy.
    pub fn tcp_listener(&self, addr: SocketAddr) -> std::io::Result<Listener> {
        let s = self.socket(addr, Type::STREAM, Protocol::TCP)?;
        s.set_reuse_address(true)?;
        s.bind(&addr.into())?;
        if self.is_proxied() {
            return Ok(Listener::Reserved(s));
        }
        s.listen(1024)?;
        let l = Arc::new(TcpListener::from_std(s.into())?);
        let weak: Weak<TcpListener> = Arc::downgrade(&l);
        self.keep(weak);
        Ok(Listener::Open(l))
    }

    /// A plain UDP socket on `addr`, bound to the interface.
    fn udp_socket(&self, addr: SocketAddr) -> std::io::Result<UdpSocket> {
        let s = self.socket(addr, Type::DGRAM, Protocol::UDP)?;
        // Room for bursts of µTP packets from many peers.
        let _ = s.set_recv_buffer_size(4 << 20);
        s.bind(&addr.into())?;
        UdpSocket::from_std(s.into())
    }

    /// The session's UDP socket for µTP and the DHT on `addr`. Under a proxy it is the
    /// proxy's relay, if the proxy offers one; an error says why not.
    pub async fn session_udp(&self, addr: SocketAddr) -> std::io::Result<Arc<Udp>> {
        let udp = match &self.proxy {
            None => Udp::plain(self.udp_socket(addr)?)?,
            Some(p) => Udp::relayed(self.associate(p).await?)?,
        };
        let udp = Arc::new(udp);
        let weak: Weak<Udp> = Arc::downgrade(&udp);
        self.keep(weak);
        Ok(udp)
    }

    /// A UDP association with the proxy; remembers whether the proxy offers them.
    async fn associate(&self, p: &Proxy) -> std::io::Result<socks::Relayed> {
        if self.udp.load(Ordering::Relaxed) == UDP_NO {
            return Err(std::io::Error::other("the proxy does not relay UDP"));
        }
        let proxy = p.addr().await?;
        let control = self.connect_direct(proxy, None).await?;
        let any = match proxy {
            SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
            SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
        };
        match p.associate(control, self.udp_socket(any)?).await {
            Ok(r) => {
                self.udp.store(UDP_YES, Ordering::Relaxed);
                Ok(r)
            }
            Err(e) => {
                self.udp.store(UDP_NO, Ordering::Relaxed);
                Err(std::io::Error::other(format!(
                    "the proxy refused a UDP association ({e})"
                )))
            }
        }
    }

    /// Whether UDP can be used at all: without a proxy, yes; with one, after asking it
    /// once (a refusal is said in one warning that names what is off).
    pub async fn udp_allowed(&self, what: &str) -> bool {
        let Some(p) = &self.proxy else {
            return true;
        };
        match self.udp.load(Ordering::Relaxed) {
            UDP_YES => true,
            UDP_NO => false,
            _ => match self.associate(p).await {
                Ok(_) => true,
                Err(e) => {
                    tracing::warn!(target: "share_engine::egress", "{e}: {what} are off, since nothing may go around the proxy {p}");
                    false
                }
            },
        }
    }

    /// A TCP connection to `addr` on the interface, from `from` when given.
    async fn connect_direct(
        &self,
        addr: SocketAddr,
        from: Option<IpAddr>,
    ) -> std::io::Result<TcpStream> {
        let s = self.socket(addr, Type::STREAM, Protocol::TCP)?;
        if let Some(ip) = from
            .filter(|ip| ip.is_ipv4() == addr.is_ipv4())
            .or_else(|| self.source(addr.is_ipv6()))
        {
            s.bind(&SocketAddr::new(ip, 0).into())?;
        }
        let socket = tokio::net::TcpSocket::from_std_stream(s.into());
        tokio::time::timeout(TCP_CONNECT_TIMEOUT, socket.connect(addr))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))?
    }

    /// An outgoing peer connection to `addr`: through the proxy, or on the interface (from
    /// `from`, the address we listen on, when it is a specific one).
    pub async fn connect_tcp(
        &self,
        addr: SocketAddr,
        from: Option<IpAddr>,
    ) -> std::io::Result<BoxStream> {
        match &self.proxy {
            None => {
                let s = self.connect_direct(addr, from).await?;
                let _ = s.set_nodelay(true);
                Ok(Box::new(s))
            }
            Some(p) => {
                let control = self.connect_direct(p.addr().await?, None).await?;
                let _ = control.set_nodelay(true);
                Ok(Box::new(p.connect(control, addr).await?))
            }
        }
    }

    /// `b` with the interface or the proxy applied: every HTTP client of the session is
    /// built through here.
    pub fn http(&self, mut b: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        b = b.no_proxy();
        if let Some(i) = &self.iface {
            b = b.interface(&i.name);
            if let Some(ip) = i.addr {
                b = b.local_address(ip);
            }
        }
        if let Some(p) = &self.proxy {
            match reqwest::Proxy::all(p.reqwest_url()) {
                Ok(proxy) => b = b.proxy(proxy),
                // Parsed by us already; should it fail, no client is better than a leak.
                Err(_) => b = b.proxy(reqwest::Proxy::all("socks5h://0.0.0.0:9").expect("literal")),
            }
        }
        b
    }

    /// Resolves a host name here, which a proxy forbids (names are the proxy's to resolve).
    pub async fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        if let Ok(ip) = host
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<IpAddr>()
        {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        if self.is_proxied() {
            return Err(std::io::Error::other(format!(
                "{host} is not resolved here: names go to the proxy only"
            )));
        }
        Ok(tokio::net::lookup_host((host, port)).await?.collect())
    }

    /// A datagram socket for the UDP tracker at `host:port`.
    pub async fn tracker_udp(&self, host: &str, port: u16) -> Result<Datagram, String> {
        if let Some(p) = &self.proxy {
            if !self.udp_allowed("the DHT, UDP trackers and µTP").await {
                return Err("UDP trackers are off: the proxy does not relay UDP".into());
            }
            let relay = self.associate(p).await.map_err(|e| e.to_string())?;
            let to = match host
                .trim_matches(|c| c == '[' || c == ']')
                .parse::<IpAddr>()
            {
                Ok(ip) => Target::Addr(SocketAddr::new(ip, port)),
                Err(_) => Target::Name(host.to_owned(), port),
            };
            let v6 = matches!(&to, Target::Addr(a) if a.is_ipv6());
            return Ok(Datagram {
                udp: Udp::relayed(relay).map_err(|e| e.to_string())?,
                to,
                v6,
            });
        }
        let addr = self
            .resolve(host, port)
            .await
            .map_err(|e| format!("resolving {host}: {e}"))?
            .into_iter()
            .next()
            .ok_or_else(|| format!("{host} has no address"))?;
        let bind = match addr {
            SocketAddr::V4(_) => SocketAddr::from((
                self.source(false).unwrap_or(Ipv4Addr::UNSPECIFIED.into()),
                0,
            )),
            SocketAddr::V6(_) => {
                SocketAddr::from((self.source(true).unwrap_or(Ipv6Addr::UNSPECIFIED.into()), 0))
            }
        };
        let socket = self.udp_socket(bind).map_err(|e| e.to_string())?;
        socket.connect(addr).await.map_err(|e| e.to_string())?;
        Ok(Datagram {
            udp: Udp::plain(socket).map_err(|e| e.to_string())?,
            to: Target::Addr(addr),
            v6: addr.is_ipv6(),
        })
    }

    /// A UDP socket on `port` for multicast (LSD): on the interface, with the group
    /// joined there. Under a proxy there is none: multicast would go around it.
    pub fn multicast(&self, group: SocketAddr) -> std::io::Result<Arc<UdpSocket>> {
        if let Some(p) = &self.proxy {
            return Err(std::io::Error::other(format!(
                "multicast would go around the proxy {p}"
            )));
        }
        let s = Socket::new(Domain::for_address(group), Type::DGRAM, Some(Protocol::UDP))?;
        if group.is_ipv6() {
            s.set_only_v6(true)?;
        }
        self.prepare(&s)?;
        s.set_reuse_address(true)?;
        s.set_reuse_port(true)?;
        s.set_nonblocking(true)?;
        let state = self.iface.as_ref().and_then(|i| i.state());
        match group.ip() {
            IpAddr::V4(g) => {
                s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, group.port())).into())?;
                let on = state
                    .as_ref()
                    .and_then(|st| {
                        st.addrs.iter().find_map(|a| match a {
                            IpAddr::V4(v4) => Some(*v4),
                            _ => None,
                        })
                    })
                    .unwrap_or(Ipv4Addr::UNSPECIFIED);
                s.join_multicast_v4(&g, &on)?;
                if !on.is_unspecified() {
                    s.set_multicast_if_v4(&on)?;
                }
                s.set_multicast_loop_v4(true)?;
            }
            IpAddr::V6(g) => {
                s.bind(&SocketAddr::from((Ipv6Addr::UNSPECIFIED, group.port())).into())?;
                let index = state.as_ref().map_or(0, |st| st.index);
                s.join_multicast_v6(&g, index)?;
                if index != 0 {
                    s.set_multicast_if_v6(index)?;
                }
                s.set_multicast_loop_v6(true)?;
            }
        }
        let socket = Arc::new(UdpSocket::from_std(s.into())?);
        let weak: Weak<UdpSocket> = Arc::downgrade(&socket);
        self.keep(weak);
        Ok(socket)
    }

    /// Port mapping's local address (`Ok(None)`: any), or why it is off.
    pub fn port_mapping(&self) -> Result<Option<IpAddr>, String> {
        if let Some(p) = &self.proxy {
            return Err(format!(
                "port mapping is off: it would go around the proxy {p}"
            ));
        }
        Ok(match &self.iface {
            None => None,
            Some(i) => i
                .addr
                .or_else(|| i.state()?.addrs.into_iter().find(|a| a.is_ipv4())),
        })
    }

    /// Watches the interface until `stop`: one line when it goes, one when it comes back;
    /// on its return, the kept sockets are bound to it again if it is a new device.
    pub fn watch(self: &Arc<Self>, stop: CancellationToken) {
        let Some(iface) = self.iface.clone() else {
            return;
        };
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            let first = iface.state();
            let mut index = first.as_ref().map(|s| s.index);
            let mut up = first.as_ref().is_some_and(|s| iface.usable(s));
            if !up {
                tracing::warn!(target: "share_engine::egress", "interface {} is down: nothing is sent until it is back", iface.name);
            }
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(WATCH_EVERY) => {}
                }
                let Some(me) = me.upgrade() else { return };
                let now = iface.state();
                let usable = now.as_ref().is_some_and(|s| iface.usable(s));
                if usable == up {
                    continue;
                }
                up = usable;
                let Some(s) = now.filter(|_| usable) else {
                    tracing::warn!(target: "share_engine::egress", "interface {} is down: nothing is sent until it is back", iface.name);
                    continue;
                };
                if index != Some(s.index) {
                    index = Some(s.index);
                    me.rebind(&iface);
                }
                let addrs: Vec<String> = s.addrs.iter().map(|a| a.to_string()).collect();
                tracing::info!(target: "share_engine::egress", "interface {} is back ({}): carrying on", iface.name, addrs.join(", "));
                me.returns.fetch_add(1, Ordering::Relaxed);
            }
        });
    }

    /// Binds the kept sockets to the interface again (it came back as a new device).
    fn rebind(&self, iface: &Iface) {
        let kept: Vec<Arc<dyn AsFd + Send + Sync>> = {
            let mut k = self.kept.lock().unwrap_or_else(|p| p.into_inner());
            k.retain(|w| w.strong_count() > 0);
            k.iter().filter_map(Weak::upgrade).collect()
        };
        for s in kept {
            if let Err(e) = SockRef::from(&s.as_fd()).bind_device(Some(iface.name.as_bytes())) {
                tracing::warn!(target: "share_engine::egress", error = %e, "a listening socket could not be bound to the new {} (it needs CAP_NET_RAW): incoming connections and µTP may stay off until a restart", iface.name);
            }
        }
    }
}

/// A TCP port of the session: listening, or (under a proxy) only held.
#[derive(Debug)]
pub enum Listener {
    Open(Arc<TcpListener>),
    Reserved(Socket),
}

impl Listener {
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match self {
            Listener::Open(l) => l.local_addr(),
            Listener::Reserved(s) => s
                .local_addr()?
                .as_socket()
                .ok_or_else(|| std::io::Error::other("not an IP socket")),
        }
    }
}

/// The session's UDP socket: plain, or through the proxy's relay.
#[derive(Debug)]
pub enum Udp {
    Plain(UdpSocket, SocketAddr),
    Relayed(socks::Relayed, SocketAddr),
}

impl AsFd for Udp {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Udp::Plain(s, _) => s.as_fd(),
            Udp::Relayed(r, _) => r.socket().as_fd(),
        }
    }
}

impl Udp {
    pub fn plain(s: UdpSocket) -> std::io::Result<Udp> {
        let local = s.local_addr()?;
        Ok(Udp::Plain(s, local))
    }

    fn relayed(r: socks::Relayed) -> std::io::Result<Udp> {
        let local = r.socket().local_addr()?;
        Ok(Udp::Relayed(r, local))
    }

    /// The local address (for a relayed socket, its own end towards the relay).
    pub fn local_addr(&self) -> SocketAddr {
        match self {
            Udp::Plain(_, a) | Udp::Relayed(_, a) => *a,
        }
    }

    pub async fn recv_from(&self, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
        match self {
            Udp::Plain(s, _) => s.recv_from(buf).await,
            Udp::Relayed(r, _) => r.recv_from(buf).await,
        }
    }

    pub async fn send_to(&self, buf: &[u8], to: SocketAddr) -> std::io::Result<usize> {
        match self {
            Udp::Plain(s, _) => s.send_to(buf, to).await,
            Udp::Relayed(r, _) => r.send_to(buf, &Target::Addr(to)).await,
        }
    }

    pub fn poll_send_to(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        to: SocketAddr,
    ) -> Poll<std::io::Result<usize>> {
        self.poll_send_parts(cx, &[buf], to)
    }

    /// Sends `bufs` as one datagram (a plain socket without copying them together).
    pub fn poll_send_vectored(
        &self,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
        to: SocketAddr,
    ) -> Poll<std::io::Result<usize>> {
        use librqbit_dualstack_sockets::PollSendToVectored;
        match self {
            Udp::Plain(s, _) => s.poll_send_to_vectored(cx, bufs, to),
            Udp::Relayed(..) => {
                let parts: Vec<&[u8]> = bufs.iter().map(|b| &b[..]).collect();
                self.poll_send_parts(cx, &parts, to)
            }
        }
    }

    /// Sends the parts as one datagram.
    pub fn poll_send_parts(
        &self,
        cx: &mut Context<'_>,
        parts: &[&[u8]],
        to: SocketAddr,
    ) -> Poll<std::io::Result<usize>> {
        match self {
            Udp::Plain(s, _) => {
                if let [one] = parts {
                    return s.poll_send_to(cx, one, to);
                }
                let v = parts.concat();
                s.poll_send_to(cx, &v, to)
            }
            Udp::Relayed(r, _) => {
                let len: usize = parts.iter().map(|p| p.len()).sum();
                let v = socks::Relayed::wrap(&Target::Addr(to), parts)?;
                r.socket().poll_send(cx, &v).map_ok(|_| len)
            }
        }
    }
}

/// A UDP tracker's socket: to one tracker, directly or through the relay.
pub struct Datagram {
    udp: Udp,
    to: Target,
    /// The tracker is at an IPv6 address (its peer lists are in the IPv6 form).
    pub v6: bool,
}

impl Datagram {
    pub async fn send(&self, buf: &[u8]) -> std::io::Result<usize> {
        match (&self.udp, &self.to) {
            (Udp::Plain(s, _), _) => s.send(buf).await,
            (Udp::Relayed(r, _), to) => r.send_to(buf, to).await,
        }
    }

    pub async fn recv(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        match &self.udp {
            Udp::Plain(s, _) => s.recv(buf).await,
            Udp::Relayed(r, _) => r.recv_from(buf).await.map(|(n, _)| n),
        }
    }
}
