//! The session's UDP socket, one per address family, on the listen port: µTP (BEP 29) and
//! the DHT share it, told apart by their first byte.
//!
//! - µTP packets have version 1 in the low nibble of byte 0 and a type 0..4 in the high one
//!   (0x01, 0x11, 0x21, 0x31, 0x41), and a 20-byte header.
//! - KRPC (DHT) messages are bencoded dictionaries: they begin with `d`.
//! - Anything else is dropped.
//!
//! With µTP on, `librqbit_utp` reads the socket through [`Demux`], our [`Transport`], which
//! hands KRPC datagrams to the DHT's bounded channel (`try_send`: dropped when full) and
//! returns only µTP ones. Receive errors that one bad datagram can cause (an ICMP error
//! reported on the socket, say) are swallowed there, since an error would end µTP's
//! dispatcher, and the DHT's packets with it. With µTP off, a plain reader feeds the DHT.
//!
//! The µTP implementation is `librqbit-utp` (rqbit's): Cubic congestion control rather than
//! LEDBAT, so a µTP transfer competes with TCP as a TCP flow would, instead of yielding.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use librqbit_dualstack_sockets::PollSendToVectored;
use librqbit_utp::{SocketOpts, Transport, UtpSocket, UtpSocketUdp};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::egress::Udp;

/// The environment type `librqbit_utp` runs with by default (its own type is not exported,
/// so it is named through the alias of its UDP socket).
pub(crate) trait EnvOf {
    type Env;
}

impl<T, E> EnvOf for UtpSocket<T, E> {
    type Env = E;
}

type Env = <UtpSocketUdp as EnvOf>::Env;

/// A µTP socket over our shared UDP socket.
pub type Utp = UtpSocket<Demux, Env>;

/// KRPC datagrams go to the DHT through this.
pub type DhtPackets = mpsc::Sender<(Bytes, SocketAddr)>;

/// Largest datagram read.
const MAX_DATAGRAM: usize = 65536;

fn is_utp(p: &[u8]) -> bool {
    p.len() >= 20 && p[0] & 0x0f == 1 && p[0] >> 4 <= 4
}

fn is_krpc(p: &[u8]) -> bool {
    p.first() == Some(&b'd') && p.len() <= share_core::dht::krpc::MAX_PACKET
}

/// The shared socket, as µTP sees it: only µTP datagrams come out of `recv_from`.
pub struct Demux {
    socket: Arc<Udp>,
    dht: Option<DhtPackets>,
    local: SocketAddr,
}

impl Demux {
    fn route_other(&self, p: &[u8], from: SocketAddr) {
        if let (true, Some(dht)) = (is_krpc(p), &self.dht) {
            let _ = dht.try_send((Bytes::copy_from_slice(p), from));
        }
    }
}

impl PollSendToVectored for Demux {
    fn poll_send_to_vectored(
        &self,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
        target: SocketAddr,
    ) -> Poll<std::io::Result<usize>> {
        self.socket.poll_send_vectored(cx, bufs, target)
    }
}

impl Transport for Demux {
    // The trait asks for a future that is also Sync, which an `async fn` does not promise.
    #[allow(clippy::manual_async_fn)]
    fn recv_from<'a>(
        &'a self,
        buf: &'a mut [u8],
    ) -> impl Future<Output = std::io::Result<(usize, SocketAddr)>> + Send + Sync + 'a {
        async move {
            loop {
                match self.socket.recv_from(buf).await {
                    Ok((n, from)) if is_utp(&buf[..n]) => return Ok((n, from)),
                    Ok((n, from)) => self.route_other(&buf[..n], from),
                    Err(e) if transient(&e) => continue,
                    Err(e) => return Err(e),
                }
            }
        }
    }

    #[allow(clippy::manual_async_fn)]
    fn send_to<'a>(
        &'a self,
        buf: &'a [u8],
        target: SocketAddr,
    ) -> impl Future<Output = std::io::Result<usize>> + Send + Sync + 'a {
        async move { self.socket.send_to(buf, target).await }
    }

    fn poll_send_to(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        target: SocketAddr,
    ) -> Poll<std::io::Result<usize>> {
        self.socket.poll_send_to(cx, buf, target)
    }

    fn bind_addr(&self) -> SocketAddr {
        self.local
    }
}

/// Errors a datagram socket reports for one packet (an ICMP unreachable for an earlier
/// send, a datagram too large), after which it works on.
fn transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionReset | Interrupted | WouldBlock | InvalidData
    ) || e.raw_os_error().is_some_and(|c| c == libc_emsgsize())
}

fn libc_emsgsize() -> i32 {
    90 // EMSGSIZE on Linux
}

/// The UDP side of a session for one address family.
pub struct Endpoint {
    pub socket: Arc<Udp>,
    /// µTP on this socket, when it is on.
    pub utp: Option<Arc<Utp>>,
}

impl Endpoint {
    /// Starts reading `socket` (made by the session's egress on the TCP listener's port):
    /// through µTP when `utp`, otherwise with a reader that only feeds the DHT.
    pub fn start(
        socket: Arc<Udp>,
        utp: bool,
        dht: Option<DhtPackets>,
        shutdown: &CancellationToken,
    ) -> std::io::Result<Endpoint> {
        let local = socket.local_addr();
        if utp {
            let opts = SocketOpts {
                cancellation_token: shutdown.child_token(),
                ..SocketOpts::default()
            };
            let demux = Demux {
                socket: socket.clone(),
                dht,
                local,
            };
            let utp = Utp::new_with_opts(demux, Env::default(), opts)
                .map_err(|e| std::io::Error::other(format!("µTP: {e}")))?;
            return Ok(Endpoint {
                socket,
                utp: Some(utp),
            });
        }
        if let Some(dht) = dht {
            let s = socket.clone();
            let stop = shutdown.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; MAX_DATAGRAM];
                loop {
                    let got = tokio::select! {
                        _ = stop.cancelled() => break,
                        r = s.recv_from(&mut buf) => r,
                    };
                    let Ok((n, from)) = got else { continue };
                    if is_krpc(&buf[..n]) {
                        let _ = dht.try_send((Bytes::copy_from_slice(&buf[..n]), from));
                    }
                }
            });
        }
        Ok(Endpoint { socket, utp: None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_are_told_apart_by_their_first_byte() {
        let mut utp = [0u8; 20];
        for t in 0..=4u8 {
            utp[0] = (t << 4) | 1;
            assert!(is_utp(&utp) && !is_krpc(&utp));
        }
        utp[0] = 0x51; // type 5 does not exist
        assert!(!is_utp(&utp));
        utp[0] = 0x42; // version 2
        assert!(!is_utp(&utp));
        assert!(!is_utp(&[0x41; 10]), "shorter than a header");
        let krpc = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe";
        assert!(is_krpc(krpc) && !is_utp(krpc));
        // A UDP tracker's reply starts with an action code: 0x00.
        assert!(!is_utp(&[0u8; 20]) && !is_krpc(&[0u8; 20]));
    }
}
