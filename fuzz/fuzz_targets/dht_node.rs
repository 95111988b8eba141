//! A DHT node fed a stream of datagrams from a handful of addresses, with time passing and
//! ticks between them: it must never panic and its bounds must hold throughout.
//! Input: records of [from (1 byte), milliseconds to advance (1 byte), length (2 bytes,
//! big-endian), datagram].
#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use share_core::dht::node::{MAX_LOOKUPS, MAX_OUT, MAX_PENDING};
use share_core::dht::{Config, Node};
use share_core::InfoHash;

fuzz_target!(|data: &[u8]| {
    let t0 = Instant::now();
    let mut now = t0;
    let router = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 1, 0, 1)), 6881);
    let config = Config {
        bootstrap: vec![router],
        ..Config::default()
    };
    let mut node = Node::new([7; 32], config, now);
    node.tick(now);
    node.get_peers(InfoHash([0x42; 20]), Some(6881), now);
    let mut rest = data;
    while rest.len() >= 4 {
        let from = SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(127, 1 + rest[0] % 8, 0, 1)),
            6881 + u16::from(rest[0] / 8 % 4),
        );
        now += Duration::from_millis(u64::from(rest[1]) * 50);
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]])).min(rest.len() - 4);
        let packet = &rest[4..4 + len];
        rest = &rest[4 + len..];
        node.handle_packet(from, packet, now);
        node.tick(now);
        let mut out = 0;
        while node.poll_transmit().is_some() {
            out += 1;
        }
        while node.poll_event().is_some() {}
        assert!(out <= MAX_OUT);
        let s = node.stats(now);
        assert!(s.pending <= MAX_PENDING && s.lookups_active <= MAX_LOOKUPS);
        assert!(s.nodes <= 160 * 8);
    }
    let _ = node.save(now);
});
