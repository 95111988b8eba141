//! HTTP tracker formats on arbitrary bytes: announce and scrape replies (bencode, what a
//! tracker sends us) and announce and scrape queries (what `share tracker` reads). They may
//! refuse the input, never panic; what parses keeps its bounds and encodes again.
#![no_main]
use libfuzzer_sys::fuzz_target;
use share_core::tracker::{http, MAX_PEERS};

fuzz_target!(|data: &[u8]| {
    if let Ok(reply) = http::parse_announce_reply(data) {
        assert!(reply.peers.len() <= MAX_PEERS);
        let again = http::parse_announce_reply(&http::encode_announce_reply(&reply, true))
            .expect("an encoded reply parses");
        // Compact form lists IPv4 peers before IPv6 ones.
        let sorted = |mut p: Vec<std::net::SocketAddr>| {
            p.sort();
            p
        };
        assert_eq!(sorted(again.peers), sorted(reply.peers));
        assert_eq!(again.interval, reply.interval);
    }
    if let Ok(counts) = http::parse_scrape_reply(data) {
        let counts: Vec<_> = counts.into_iter().collect();
        // Our encoding is larger than the smallest one, so it may pass the size limits
        // only when the input was well within them.
        if let Ok(again) = http::parse_scrape_reply(&http::encode_scrape_reply(&counts)) {
            assert_eq!(again.len(), counts.len());
        }
    }
    let query = String::from_utf8_lossy(data);
    let _ = http::parse_announce_query(&query);
    assert!(http::parse_scrape_query(&query).len() <= 64);
});
