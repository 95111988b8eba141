//! The MSE responder on hostile initiators: errors are fine, panics and unbounded output are
//! not. See `mse_common::case` for how the input is shaped: raw, after a valid Ya, or after
//! Ya, padding, the sync hash and the SKEY with the rest encrypted under keyA (so the
//! crypto_provide, PadC and IA parsers see fuzz plaintext).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "mse_common.rs"]
mod common;
use common::*;
use share_core::mse::{Handshake, Responder};

fuzz_target!(|data: &[u8]| {
    let h = honest();
    let Some((policy, input, sizes)) = case(data, &h.ya, &h.sync, &h.stream_a) else {
        return;
    };
    let Ok(mut b) = Responder::new(lookup, policy, responder_secrets()) else {
        return;
    };
    feed_all(
        |chunk| {
            let r = b.feed(chunk);
            // Yb + PadB (at most 608) or message 4 (at most 526), never more at once.
            assert!(b.take_output().len() <= 96 + 512 + 8 + 4 + 2 + 512);
            r
        },
        &input,
        &sizes,
    );
});
