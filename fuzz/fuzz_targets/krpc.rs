//! KRPC datagrams (BEP 5): decoding must never panic, and whatever decodes (errors aside,
//! whose text is cut and made UTF-8) encodes back to a message that decodes the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use share_core::dht::krpc::{Kind, Message};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::decode(data) {
        if !matches!(m.kind, Kind::Error(_)) {
            let again = Message::decode(&m.encode()).expect("our encoding decodes");
            assert_eq!(again, m);
        }
    }
});
