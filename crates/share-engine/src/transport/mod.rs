//! Peer transports: protocol encryption (MSE/PE) over any `AsyncRead + AsyncWrite`, so the
//! peer code runs the BitTorrent protocol unchanged on TCP or µTP, plaintext or MSE-wrapped.
//!
//! - [`mse_connect`]: the initiator, for a connection we dial.
//! - [`accept`]: a listener's side, sniffing the first bytes: a plaintext handshake gives a
//!   passthrough stream that replays them, anything else goes to [`mse_accept`], which finds
//!   the torrent by its SKEY among the session's (a lookup the session gives).
//!
//! Every handshake runs under one deadline ([`HANDSHAKE_TIMEOUT`]) with reads of at most
//! [`READ_CHUNK`] bytes; the state machines fail within the spec's bounds on garbage, so a
//! peer that stalls or babbles is dropped in bounded time and memory.

mod handshake;
mod stream;
#[cfg(test)]
mod tests;

use std::time::Duration;

use share_core::mse::MseError;
use share_core::InfoHash;

pub use handshake::{accept, mse_accept, mse_connect};
pub use share_core::mse::{skey_hash, Method, Policy};
pub use stream::{EncryptedStream, WRITE_CHUNK};

/// The most a whole handshake (sniffing, DH, sync, crypto negotiation) may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The most one read during a handshake asks for.
pub const READ_CHUNK: usize = 4096;

/// An incoming connection, its handshake done.
#[derive(Debug)]
pub struct Accepted<S> {
    /// The connection; the remote's BitTorrent handshake is the first thing read from it.
    pub stream: EncryptedStream<S>,
    /// The torrent the remote named by MSE's SKEY; `None` for a plaintext connection, whose
    /// torrent is in its BitTorrent handshake.
    pub info_hash: Option<InfoHash>,
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("encryption handshake: {0}")]
    Mse(#[from] MseError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("handshake timed out")]
    TimedOut,
    #[error("the remote closed the connection during the handshake")]
    Closed,
    #[error("plaintext handshake refused: encryption is required")]
    PlaintextRefused,
    #[error("encrypted handshake refused: encryption is disabled")]
    EncryptedRefused,
}
