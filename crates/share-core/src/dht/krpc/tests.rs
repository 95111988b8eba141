use super::*;

fn id(b: u8) -> NodeId {
    NodeId([b; 20])
}

fn round_trip(m: Message) {
    let bytes = m.encode();
    crate::bencode::scan(&bytes, LIMITS).expect("our encoding is canonical bencode");
    assert_eq!(Message::decode(&bytes).unwrap(), m);
}

fn query(method: Method) -> Message {
    Message {
        tid: b"aa".to_vec(),
        kind: Kind::Query(Query { id: id(1), method }),
        ip: None,
        read_only: false,
    }
}

#[test]
fn queries_round_trip() {
    round_trip(query(Method::Ping));
    round_trip(query(Method::FindNode {
        target: id(2),
        want: Want { v4: true, v6: true },
    }));
    round_trip(query(Method::GetPeers {
        info_hash: id(3),
        want: Want::default(),
    }));
    round_trip(query(Method::AnnouncePeer {
        info_hash: id(3),
        port: 6881,
        implied_port: true,
        token: b"tok".to_vec(),
    }));
    round_trip(query(Method::Other(b"vote".to_vec())));
    let mut ro = query(Method::Ping);
    ro.read_only = true;
    round_trip(ro);
}

#[test]
fn responses_and_errors_round_trip() {
    let r = Response {
        id: Some(id(9)),
        nodes: vec![NodeInfo {
            id: id(4),
            addr: "127.0.0.1:6881".parse().unwrap(),
        }],
        nodes6: vec![NodeInfo {
            id: id(5),
            addr: "[::1]:6882".parse().unwrap(),
        }],
        values: vec![
            "10.1.2.3:80".parse().unwrap(),
            "[fe80::1]:81".parse().unwrap(),
        ],
        token: Some(b"secret".to_vec()),
    };
    round_trip(Message {
        tid: vec![0, 1, 2, 3],
        kind: Kind::Response(r),
        ip: Some("1.2.3.4:5".parse().unwrap()),
        read_only: false,
    });
    round_trip(Message {
        tid: b"x".to_vec(),
        kind: Kind::Error(ErrorReply {
            code: code::METHOD_UNKNOWN,
            message: "Method Unknown".into(),
        }),
        ip: None,
        read_only: false,
    });
}

#[test]
fn decodes_the_bep5_examples() {
    let ping = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe";
    let m = Message::decode(ping).unwrap();
    assert_eq!(m.tid, b"aa");
    assert!(matches!(
        m.kind,
        Kind::Query(Query {
            method: Method::Ping,
            ..
        })
    ));

    let ann = b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe";
    match Message::decode(ann).unwrap().kind {
        Kind::Query(Query {
            method:
                Method::AnnouncePeer {
                    port,
                    token,
                    implied_port,
                    ..
                },
            ..
        }) => {
            assert_eq!(
                (port, token.as_slice(), implied_port),
                (6881, &b"aoeusnth"[..], false)
            );
        }
        other => panic!("{other:?}"),
    }

    let values = b"d1:rd2:id20:abcdefghij01234567895:token8:aoeusnth6:valuesl6:axje.u6:idhtnmee1:t2:aa1:y1:re";
    match Message::decode(values).unwrap().kind {
        Kind::Response(r) => {
            assert_eq!(r.values.len(), 2);
            assert_eq!(r.token.as_deref(), Some(&b"aoeusnth"[..]));
        }
        other => panic!("{other:?}"),
    }

    let err = b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee";
    assert!(matches!(
        Message::decode(err).unwrap().kind,
        Kind::Error(ErrorReply { code: 201, .. })
    ));
}

#[test]
fn a_query_with_bad_arguments_keeps_its_transaction_id() {
    // find_node without a target: worth an error 203, so the tid must survive.
    let m = b"d1:ad2:id20:abcdefghij0123456789e1:q9:find_node1:t2:zz1:y1:qe";
    assert_eq!(
        Message::decode(m),
        Err(KrpcError::BadQuery {
            tid: b"zz".to_vec(),
            reason: "target"
        })
    );
}

#[test]
fn hostile_inputs_are_refused() {
    let cases: &[&[u8]] = &[
        b"",
        b"d",
        b"le",
        b"i5e",
        b"d1:t2:aae",                                                      // no y
        b"d1:t2:aa1:y1:xe",                                                // bad y
        b"d1:t17:aaaaaaaaaaaaaaaaa1:y1:re",                                // tid too long
        b"d1:rd2:id3:abce1:t2:aa1:y1:re",                                  // short id
        b"d1:rd2:id20:abcdefghij01234567895:nodes3:abce1:t1:a1:y1:re",     // partial node
        b"d1:rd2:id20:abcdefghij01234567896:valuesi3ee1:t1:a1:y1:re",      // values not a list
        b"d1:eli201ee1:t1:a1:y1:ee",                                       // fine: code alone
        b"d1:ad1:ad1:ad1:ad1:aleeeeee1:q4:ping1:t1:a1:y1:qe",              // too deep
        b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe1:x",    // trailing
        b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:q1:ai1ee", // dup key
    ];
    for (i, c) in cases.iter().enumerate() {
        let r = Message::decode(c);
        if i == 10 {
            assert!(r.is_ok(), "{r:?}");
        } else {
            assert!(r.is_err(), "case {i} decoded: {r:?}");
        }
    }
    // A long announce port and a long token are refused, not truncated.
    let big_port =
        b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:porti70000e5:token1:xe1:q13:announce_peer1:t2:aa1:y1:qe";
    assert!(matches!(
        Message::decode(big_port),
        Err(KrpcError::BadQuery { .. })
    ));
    // Too large a datagram is refused before it is scanned.
    let mut huge = b"d1:t2:aa1:y1:r1:rd2:id20:abcdefghij01234567895:token".to_vec();
    huge.extend_from_slice(format!("{}:", MAX_PACKET).as_bytes());
    huge.extend(std::iter::repeat_n(b'x', MAX_PACKET));
    huge.extend_from_slice(b"ee");
    assert!(Message::decode(&huge).is_err());
}

#[test]
fn values_beyond_the_bound_are_dropped() {
    let mut m = b"d1:rd2:id20:abcdefghij01234567896:valuesl".to_vec();
    for i in 0..(MAX_VALUES + 50) {
        m.extend_from_slice(b"6:");
        m.extend_from_slice(&[10, 0, (i >> 8) as u8, i as u8, 0, 80]);
    }
    m.extend_from_slice(b"ee1:t1:a1:y1:re");
    match Message::decode(&m).unwrap().kind {
        Kind::Response(r) => assert_eq!(r.values.len(), MAX_VALUES),
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_prefix_of_a_message_is_handled() {
    let m = query(Method::AnnouncePeer {
        info_hash: id(3),
        port: 1,
        implied_port: false,
        token: b"t".to_vec(),
    })
    .encode();
    for n in 0..m.len() {
        assert!(Message::decode(&m[..n]).is_err());
    }
}
