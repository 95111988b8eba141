//! Private torrents (BEP 27): no metadata exchange and no peer exchange on the wire (and no
//! local service discovery: see lsd.rs).

use std::time::Duration;

use bytes::BytesMut;
use share_core::ext::{ExtHandshake, OurHandshake, Registry};
use share_core::metadata::MetadataMsg;
use share_core::pex::PexMessage;
use share_core::wire::Message;

use crate::util::*;

#[test]
fn a_private_torrent_offers_neither_ut_metadata_nor_ut_pex_and_sends_neither() {
    let d = Dir::new();
    d.data_file("src/f.bin", 200_000, 81);
    let t = make_torrent(&d, &d.join("src/f.bin"), 16384, &["--private"]);
    let (hash, _) = magnet_of(&t);
    let seed = start_seed(&t, &d.join("src"), &[]);
    let mut s = handshake(seed.addr, hash);
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let ours = OurHandshake {
        registry: Registry::public(),
        port: Some(1),
        version: "probe",
        reqq: 10,
        metadata_size: None,
        yourip: None,
    };
    send(
        &mut s,
        Message::Extended {
            id: 0,
            payload: ours.encode().into(),
        },
    );
    let mut buf = BytesMut::new();
    let Some(Message::Extended { payload, .. }) = read_until(&mut s, &mut buf, |m| {
        matches!(m, Message::Extended { id: 0, .. })
    }) else {
        panic!("no extension handshake");
    };
    let h = ExtHandshake::parse(&payload).unwrap();
    assert_eq!(h.metadata_id, None, "{}", String::from_utf8_lossy(&payload));
    assert_eq!(h.pex_id, None);
    assert_eq!(h.metadata_size, None);
    // Asking anyway (at the ids a public torrent would use) gets nothing back.
    send(
        &mut s,
        Message::Extended {
            id: 1,
            payload: MetadataMsg::Request(0).encode().into(),
        },
    );
    let pex = PexMessage {
        added: vec![("127.0.0.1:9".parse().unwrap(), 0)],
        dropped: vec![],
    };
    send(
        &mut s,
        Message::Extended {
            id: 2,
            payload: pex.encode().into(),
        },
    );
    let other = read_until(
        &mut s,
        &mut buf,
        |m| matches!(m, Message::Extended { id, .. } if *id != 0),
    );
    assert_eq!(other, None, "the seed sent an extension message");
}
