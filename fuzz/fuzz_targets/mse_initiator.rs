//! The MSE initiator on hostile responders: errors are fine, panics and unbounded output are
//! not. See `mse_common::case` for how the input is shaped: raw, after a valid Yb, or after
//! Yb and padding with the rest encrypted under keyB (so the VC scan and the crypto_select
//! and PadD parsers see fuzz plaintext).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "mse_common.rs"]
mod common;
use common::*;
use share_core::mse::{Handshake, Initiator};

fuzz_target!(|data: &[u8]| {
    let h = honest();
    let Some((policy, input, sizes)) = case(data, &h.yb, &[], &h.stream_b) else {
        return;
    };
    // The keys do not depend on IA, so a short one keeps the runs fast.
    let Ok(mut a) = Initiator::new(IH, policy, &[0u8; 68], initiator_secrets()) else {
        return;
    };
    let _ya = a.take_output();
    feed_all(
        |chunk| {
            let r = a.feed(chunk);
            // Message 3 is the only thing sent after Ya: 40 + 16 + PadC + IA.
            assert!(a.take_output().len() <= 40 + 16 + 512 + 68);
            r
        },
        &input,
        &sizes,
    );
});
