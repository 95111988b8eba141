//! Why a connection ended: [`CloseReason`], what a connection reports when it ends
//! (`Event::Closed`), what the torrent gives when it closes or bans a peer, and what a ban
//! notice says. Its `Display` is the text logs and notices have always shown (tests look for
//! some of them); code decides by variant, never by text.

use share_core::metadata::{MetadataError, Refusal};
use share_core::peer::Offence;
use share_core::wire::WireError;

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloseReason {
    /// Closed by us (the torrent cancelled it, or shut down), without an error.
    #[error("closed")]
    Closed,
    /// The remote has our own peer id: our listener, reached through an address a tracker
    /// or a peer gave us.
    #[error("connected to ourselves")]
    SelfConnection,
    /// Its address is on the blocklist (a list that came after it connected).
    #[error("blocked by the blocklist")]
    Blocked,
    /// The torrent task is gone.
    #[error("session ended")]
    SessionEnded,
    /// Every way of dialing it failed: each transport's failure, in the order tried.
    #[error("{0}")]
    Dial(String),
    /// Our handshake to a connection routed to us did not go out in time.
    #[error("handshake timed out")]
    HandshakeTimeout,
    /// Our handshake to a connection routed to us did not go out.
    #[error("handshake: {0}")]
    Handshake(String),
    /// It sent a frame that does not decode.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// It sent more keep-alives than an honest peer does.
    #[error("flooded keep-alives")]
    KeepAliveFlood,
    /// It sent nothing at all, not even a keep-alive, for too long.
    #[error("peer silent for too long")]
    Silent,
    /// Reading from it failed.
    #[error("read: {0}")]
    Read(String),
    /// It closed the connection.
    #[error("peer closed the connection")]
    PeerClosed,
    /// The torrent closed or banned it for what it did (see `share_core::peer`).
    #[error(transparent)]
    Offence(#[from] Offence),
    /// Its offer of metadata cannot be taken (BEP 9: an impossible `metadata_size`).
    #[error(transparent)]
    MetadataRefused(#[from] Refusal),
    /// It sent a malformed `ut_metadata` message.
    #[error(transparent)]
    MetadataMessage(#[from] MetadataError),
    /// It sent metadata pieces that do not fit what we asked for.
    #[error("{0}")]
    BadMetadata(&'static str),
    /// The metadata it sent, or sent all of, does not hash to the info-hash.
    #[error("sent metadata that does not match the info-hash")]
    MetadataMismatch,
    /// BEP 52: a block it sent does not match its hash in the file's merkle tree.
    #[error("sent block {block} of piece {index} that failed its merkle check (offset {offset} of the piece)", offset = *block as u64 * 16384)]
    BadBlock { index: u32, block: u32 },
    /// BEP 52: hashes it sent do not prove what they claim.
    #[error("sent hashes that do not prove the file's root: {0}")]
    BadHashes(String),
    /// BEP 52: more hash requests than any honest peer sends.
    #[error("flooded hash requests")]
    HashFlood,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_read_as_they_always_have() {
        assert_eq!(
            CloseReason::SelfConnection.to_string(),
            "connected to ourselves"
        );
        assert_eq!(
            CloseReason::from(Offence::Unrequested(65)).to_string(),
            "sent 65 blocks that were never requested"
        );
        assert_eq!(
            CloseReason::from(Offence::ExcessRequests).to_string(),
            "flooded requests that we do not serve"
        );
        assert_eq!(
            CloseReason::from(Offence::ExtendedFlood).to_string(),
            "flooded extension messages"
        );
        assert_eq!(
            CloseReason::MetadataMismatch.to_string(),
            "sent metadata that does not match the info-hash"
        );
        assert_eq!(
            CloseReason::from(Refusal::Invalid(4294967296)).to_string(),
            "claims a metadata_size of 4294967296 bytes"
        );
    }
}
