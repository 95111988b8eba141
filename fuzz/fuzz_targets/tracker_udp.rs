//! UDP tracker packets (BEP 15) on arbitrary bytes: requests as `share tracker` reads them,
//! responses, over IPv4 and IPv6, as a client reads them. Malformed packets are `None`, never
//! a panic, and whatever decodes encodes back to itself.
#![no_main]
use libfuzzer_sys::fuzz_target;
use share_core::tracker::udp::{Request, Response};

fuzz_target!(|data: &[u8]| {
    if let Some(request) = Request::decode(data) {
        assert_eq!(Request::decode(&request.encode()).as_ref(), Some(&request));
    }
    for v6 in [false, true] {
        if let Some(response) = Response::decode(data, v6) {
            assert_eq!(
                Response::decode(&response.encode(v6), v6).as_ref(),
                Some(&response)
            );
        }
    }
});
