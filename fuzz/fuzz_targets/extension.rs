//! What peers and the local network send outside the core wire messages, on arbitrary
//! bytes: the extension handshake (BEP 10), ut_metadata (BEP 9) and ut_pex (BEP 11)
//! payloads, local service discovery packets (BEP 14) and magnet links. The first byte picks
//! the parser; the rest is its input. Errors are fine; panics, and answers that break what
//! the parsers promise, are not.
#![no_main]
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use share_core::ext::{ExtHandshake, Extension};
use share_core::metadata::MetadataMsg;
use share_core::pex::{Inbox, PexMessage};

fuzz_target!(|data: &[u8]| {
    let Some((&which, input)) = data.split_first() else {
        return;
    };
    match which % 5 {
        0 => {
            // Two handshakes, the second updating the first, as a peer may send.
            let mid = input.len() / 2;
            if let Ok(mut h) = ExtHandshake::parse(&input[..mid]) {
                if let Ok(newer) = ExtHandshake::parse(&input[mid..]) {
                    h.update(newer);
                }
                for e in [Extension::Metadata, Extension::Pex] {
                    assert_ne!(h.id_of(e), Some(0), "id 0 is the handshake itself");
                }
            }
        }
        1 => {
            if let Ok(m) = MetadataMsg::parse(input) {
                // What parses encodes to something that parses to the same message.
                let again = m.encode();
                assert_eq!(MetadataMsg::parse(&again).ok(), Some(m));
            }
        }
        2 => {
            if let Ok(m) = PexMessage::parse(input) {
                let again = PexMessage::parse(&m.encode()).expect("our own encoding parses");
                assert_eq!(again.added.len(), m.added.len());
                let now = Instant::now();
                let mut inbox = Inbox::default();
                let first = inbox.accept(m.clone(), now);
                assert!(first.len() <= m.added.len());
                // Too soon after the first: ignored.
                assert!(inbox.accept(m, now + Duration::from_secs(1)).is_empty());
            }
        }
        3 => {
            let _ = share_core::lsd::Announce::parse(input);
        }
        _ => {
            if let Ok(s) = std::str::from_utf8(input) {
                if let Ok(m) = share_core::Magnet::parse(s) {
                    assert!(share_core::Magnet::looks_like(s) || !s.is_empty());
                    let _ = m.info_hash.to_hex();
                }
            }
        }
    }
});
