//! The peer wire decoder on arbitrary byte streams: errors are fine, panics are not.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut buf = bytes::BytesMut::from(data);
    while let Ok(Some(_)) = share_core::wire::decode(&mut buf, share_core::wire::max_frame(1000)) {}
});
