//! The session's UDP port on arbitrary datagrams: the demultiplexer (our code), µTP
//! (librqbit-utp, BEP 29) and the DHT node (KRPC) behind it, as a real session in this
//! process runs them. Each input is cut into datagrams (a 2-byte length before each) sent
//! from one loopback socket to the session's port; a panic in any task aborts. The first
//! datagram of each input is forced to look like µTP (version 1, a valid type), so that
//! most inputs reach the µTP code rather than being dropped by the demultiplexer.
#![no_main]
#[path = "common/mod.rs"]
mod common;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use share_engine::Session;

struct World {
    rt: tokio::runtime::Runtime,
    _session: Session,
    target: SocketAddr,
    from: std::net::UdpSocket,
    _dir: tempfile::TempDir,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        common::abort_on_panic();
        let dir = tempfile::tempdir().unwrap();
        let rt = common::runtime();
        let state = dir.path().join("state");
        let session = rt.block_on(async move {
            let mut c = common::loopback_config(state, true);
            c.pex = false;
            // A DHT that knows one loopback address where nothing listens: it never
            // reaches beyond this machine.
            c.dht = Some(vec!["127.0.0.1:9".into()]);
            Session::bind(c).await.unwrap()
        });
        let target = session.local_addr();
        let from = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        World { rt, _session: session, target, from, _dir: dir }
    })
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    let mut rest = data;
    let mut first = true;
    while rest.len() >= 2 {
        let len = (u16::from_be_bytes([rest[0], rest[1]]) as usize) % 1500;
        rest = &rest[2..];
        let take = len.min(rest.len());
        let mut dgram = rest[..take].to_vec();
        rest = &rest[take..];
        if first && !dgram.is_empty() {
            dgram[0] = ((dgram[0] % 5) << 4) | 1;
            first = false;
        }
        let _ = w.from.send_to(&dgram, w.target);
    }
    // Let the session take them.
    w.rt.block_on(async { tokio::time::sleep(Duration::from_millis(2)).await });
});
