//! The MSE handshake over a real stream: the sans-IO state machines of `share_core::mse`
//! driven by bounded reads under one deadline, and the sniffing accept that lets one listener
//! take both plaintext and encrypted connections.

use std::future::Future;

use share_core::mse::{self, Established, Handshake, Initiator, Policy, Responder, Secrets, Sniff};
use share_core::InfoHash;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;

use super::{Accepted, EncryptedStream, TransportError, HANDSHAKE_TIMEOUT, READ_CHUNK};

/// Opens MSE on a fresh connection for `info_hash`; `initial_payload` (our BitTorrent
/// handshake, usually) travels encrypted in message 3. The remote's first bytes after the
/// handshake (its BitTorrent handshake) are read from the returned stream.
///
/// Under `Policy::Prefer` a remote that speaks no MSE closes or times out: the caller dials
/// again in plaintext.
pub async fn mse_connect<S>(
    mut stream: S,
    info_hash: InfoHash,
    policy: Policy,
    initial_payload: &[u8],
) -> Result<EncryptedStream<S>, TransportError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let secrets = Secrets::random(&mut rand::thread_rng());
    let mut machine = Initiator::new(info_hash, policy, initial_payload, secrets)?;
    let e = within_deadline(drive(&mut stream, &mut machine, &[])).await?;
    Ok(EncryptedStream::established(stream, e))
}

/// Answers an MSE handshake, finding the torrent with `lookup` (HASH('req2', info-hash) to
/// info-hash, see [`mse::skey_hash`]). The remote's IA (its BitTorrent handshake, usually),
/// then anything after it, are read first from the returned stream.
pub async fn mse_accept<S, L>(
    stream: S,
    lookup: L,
    policy: Policy,
) -> Result<Accepted<S>, TransportError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    L: Fn(&[u8; 20]) -> Option<InfoHash>,
{
    within_deadline(respond(stream, Vec::new(), lookup, policy)).await
}

/// Accepts either kind of connection: a plaintext BitTorrent handshake (unless `policy` is
/// `Require`), or MSE (unless it is `Disable`). A plaintext stream replays the bytes read
/// while sniffing, so the caller reads the handshake from it as usual.
pub async fn accept<S, L>(
    mut stream: S,
    lookup: L,
    policy: Policy,
) -> Result<Accepted<S>, TransportError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    L: Fn(&[u8; 20]) -> Option<InfoHash>,
{
    within_deadline(async move {
        let mut first = Vec::new();
        let kind = loop {
            match mse::sniff(&first) {
                Sniff::NeedMore => read_some(&mut stream, &mut first).await?,
                kind => break kind,
            }
        };
        match (kind, policy) {
            (Sniff::Plaintext, Policy::Require) => Err(TransportError::PlaintextRefused),
            (Sniff::Plaintext, _) => Ok(Accepted {
                stream: EncryptedStream::plaintext(stream, first),
                info_hash: None,
            }),
            (_, Policy::Disable) => Err(TransportError::EncryptedRefused),
            _ => respond(stream, first, lookup, policy).await,
        }
    })
    .await
}

/// `f`, or `TimedOut` once [`HANDSHAKE_TIMEOUT`] has passed.
async fn within_deadline<T>(
    f: impl Future<Output = Result<T, TransportError>>,
) -> Result<T, TransportError> {
    timeout(HANDSHAKE_TIMEOUT, f)
        .await
        .map_err(|_| TransportError::TimedOut)?
}

async fn respond<S, L>(
    mut stream: S,
    first: Vec<u8>,
    lookup: L,
    policy: Policy,
) -> Result<Accepted<S>, TransportError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    L: Fn(&[u8; 20]) -> Option<InfoHash>,
{
    let secrets = Secrets::random(&mut rand::thread_rng());
    let mut machine = Responder::new(lookup, policy, secrets)?;
    let e = drive(&mut stream, &mut machine, &first).await?;
    let info_hash = Some(e.info_hash);
    Ok(Accepted {
        stream: EncryptedStream::established(stream, e),
        info_hash,
    })
}

/// One read of at most [`READ_CHUNK`] bytes, appended to `into`.
async fn read_some<S: AsyncRead + Unpin>(
    stream: &mut S,
    into: &mut Vec<u8>,
) -> Result<(), TransportError> {
    let mut buf = [0u8; READ_CHUNK];
    let n = read_chunk(stream, &mut buf).await?;
    into.extend_from_slice(&buf[..n]);
    Ok(())
}

/// One read into `buf`; the remote closing is an error here, mid-handshake.
async fn read_chunk<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut [u8; READ_CHUNK],
) -> Result<usize, TransportError> {
    match stream.read(buf).await? {
        0 => Err(TransportError::Closed),
        n => Ok(n),
    }
}

/// Sends what the machine has to say, feeds it what arrives (`first` before anything read),
/// until it is established or fails. Each read is at most [`READ_CHUNK`] bytes and the machine
/// fails within the spec's bounds, so a hostile remote costs a bounded amount of memory.
async fn drive<S, M>(
    stream: &mut S,
    machine: &mut M,
    first: &[u8],
) -> Result<Established, TransportError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    M: Handshake,
{
    let mut step = if first.is_empty() {
        None
    } else {
        machine.feed(first)?
    };
    let mut buf = [0u8; READ_CHUNK];
    loop {
        let out = machine.take_output();
        if !out.is_empty() {
            stream.write_all(&out).await?;
            stream.flush().await?;
        }
        if let Some(e) = step {
            return Ok(e);
        }
        let n = read_chunk(stream, &mut buf).await?;
        step = machine.feed(&buf[..n])?;
    }
}
