//! Dialing a peer: TCP, then µTP, within the transports allowed; on each connection the
//! handshakes the encryption policy asks for (MSE first under `prefer`, plaintext again on a
//! new connection if that fails). Every failure is kept, in order, so the close reason of a
//! dial that never worked says what each attempt met.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use share_core::wire::{Handshake, HANDSHAKE_LEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

use super::{BoxStream, Encryption, Shared, Transport, Via, HANDSHAKE_TIMEOUT};
use crate::transport::{self, Policy};
use crate::udp::Utp;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Dials `addr` over TCP, then µTP if TCP does not connect or its handshake fails (a
/// refused TCP dial fails at once; a peer may take µTP only), within the transports
/// allowed. On a connection: MSE
/// first under `prefer` (most peers take it, and some take nothing else), plaintext again
/// on a new connection if the MSE handshake fails; MSE only under `require`; plaintext
/// only under `disable`. Our BitTorrent handshake travels inside MSE's first message.
/// `utp_only`: a hole punch, which only µTP can make (its packets open the NAT).
pub(super) async fn dial(
    addr: SocketAddr,
    ours: &Handshake,
    shared: &Shared,
    utp_only: bool,
) -> Result<(BoxStream, Handshake, Via), String> {
    let utp = shared
        .utp
        .iter()
        .find(|u| u.bind_addr().is_ipv6() == addr.is_ipv6())
        .filter(|_| shared.switches.utp());
    let mut tried = Vec::new();
    let order = [
        (shared.tcp && !utp_only).then_some(Transport::Tcp),
        utp.map(|_| Transport::Utp),
    ];
    // A peer may accept a transport and then close it at once (libtorrent with incoming
    // TCP turned off does): a handshake that fails on one transport is tried on the next.
    for transport in order.into_iter().flatten() {
        match over(transport, addr, ours, shared, utp).await {
            Ok(x) => return Ok(x),
            Err(Dialed::Unreachable(e) | Dialed::Refused(e)) => {
                tried.push(format!("{transport}: {e}"))
            }
        }
    }
    if tried.is_empty() {
        return Err("no transport to reach this peer".into());
    }
    Err(tried.join("; "))
}

/// Why a dial failed: the peer could not be reached at all, or it did not take our
/// handshake (worth a try the other way).
enum Dialed {
    Unreachable(String),
    Refused(String),
}

/// Opens a connection to `addr` over `transport` (TCP through the session's egress: an
/// interface, a proxy).
async fn open(
    transport: Transport,
    addr: SocketAddr,
    utp: Option<&Arc<Utp>>,
    shared: &Shared,
) -> Result<BoxStream, String> {
    match (transport, utp) {
        (Transport::Tcp, _) => {
            let tcp = timeout(
                CONNECT_TIMEOUT,
                shared.egress.connect_tcp(addr, shared.bind_ip),
            )
            .await
            .map_err(|_| "connect timed out".to_owned())?
            .map_err(|e| format!("connect: {e}"))?;
            Ok(Box::new(tcp))
        }
        (Transport::Utp, Some(u)) => {
            let s = timeout(CONNECT_TIMEOUT, u.connect(addr))
                .await
                .map_err(|_| "connect timed out".to_owned())?
                .map_err(|e| format!("connect: {e}"))?;
            Ok(Box::new(s))
        }
        (Transport::Utp, None) => Err("no µTP socket for this address family".into()),
    }
}

/// The handshakes over `transport`, as the encryption policy says.
async fn over(
    transport: Transport,
    addr: SocketAddr,
    ours: &Handshake,
    shared: &Shared,
    utp: Option<&Arc<Utp>>,
) -> Result<(BoxStream, Handshake, Via), Dialed> {
    let plain = |stream| async move {
        let (s, h) = plain_handshake(stream, ours, shared).await?;
        Ok::<_, String>((
            s,
            h,
            Via {
                transport,
                encryption: Encryption::Plain,
            },
        ))
    };
    let first = open(transport, addr, utp, shared)
        .await
        .map_err(Dialed::Unreachable)?;
    match shared.switches.encryption() {
        Policy::Disable => plain(first).await.map_err(Dialed::Refused),
        policy => match mse_handshake(first, ours, policy, shared).await {
            Ok((s, h, encryption)) => Ok((
                s,
                h,
                Via {
                    transport,
                    encryption,
                },
            )),
            Err(e) if policy == Policy::Prefer => {
                tracing::debug!(%addr, %transport, error = %e, "encrypted handshake failed: dialing in plaintext");
                let again = open(transport, addr, utp, shared)
                    .await
                    .map_err(Dialed::Unreachable)?;
                plain(again).await.map_err(Dialed::Refused)
            }
            Err(e) => Err(Dialed::Refused(format!("{e} (encryption is required)"))),
        },
    }
}

/// Reads and checks the remote's BitTorrent handshake.
async fn read_handshake(stream: &mut BoxStream, shared: &Shared) -> Result<Handshake, String> {
    let mut buf = [0u8; HANDSHAKE_LEN];
    timeout(HANDSHAKE_TIMEOUT, stream.read_exact(&mut buf))
        .await
        .map_err(|_| "handshake timed out".to_owned())?
        .map_err(|e| format!("handshake: {e}"))?;
    let theirs = Handshake::decode(&buf).map_err(|e| e.to_string())?;
    if theirs.info_hash != shared.info_hash {
        return Err("wrong info-hash in handshake".into());
    }
    Ok(theirs)
}

async fn plain_handshake(
    mut stream: BoxStream,
    ours: &Handshake,
    shared: &Shared,
) -> Result<(BoxStream, Handshake), String> {
    timeout(HANDSHAKE_TIMEOUT, stream.write_all(&ours.encode()))
        .await
        .map_err(|_| "handshake timed out".to_owned())?
        .map_err(|e| format!("handshake: {e}"))?;
    let theirs = read_handshake(&mut stream, shared).await?;
    Ok((stream, theirs))
}

async fn mse_handshake(
    stream: BoxStream,
    ours: &Handshake,
    policy: Policy,
    shared: &Shared,
) -> Result<(BoxStream, Handshake, Encryption), String> {
    let enc = transport::mse_connect(stream, shared.info_hash, policy, &ours.encode())
        .await
        .map_err(|e| e.to_string())?;
    let encryption = Encryption::of(enc.mse());
    let mut stream: BoxStream = Box::new(enc);
    let theirs = read_handshake(&mut stream, shared).await?;
    Ok((stream, theirs, encryption))
}
