use super::*;
use crate::dht::krpc::{Kind, Message, Method, Query};
use crate::dht::sim::{addr_of, Net, Sybils};

fn node(now: Instant) -> Node {
    Node::new([1; 32], Config::default(), now)
}

fn ask(n: &mut Node, from: SocketAddr, method: Method, now: Instant) -> Message {
    let q = Message {
        tid: b"qq".to_vec(),
        kind: Kind::Query(Query {
            id: NodeId([9; 20]),
            method,
        }),
        ip: None,
        read_only: true,
    };
    n.handle_packet(from, &q.encode(), now);
    let (to, bytes) = n.poll_transmit().expect("an answer");
    assert_eq!(to, from);
    Message::decode(&bytes).unwrap()
}

fn get_peers(info_hash: NodeId) -> Method {
    Method::GetPeers {
        info_hash,
        want: Want::default(),
    }
}

fn response(m: Message) -> Response {
    match m.kind {
        Kind::Response(r) => r,
        other => panic!("not a response: {other:?}"),
    }
}

fn error_code(m: Message) -> i64 {
    match m.kind {
        Kind::Error(e) => e.code,
        other => panic!("not an error: {other:?}"),
    }
}

#[test]
fn answers_the_four_queries_and_stores_an_announce() {
    let now = Instant::now();
    let mut n = node(now);
    let from: SocketAddr = "127.5.0.1:4000".parse().unwrap();
    let r = response(ask(&mut n, from, Method::Ping, now));
    assert_eq!(r.id, Some(n.id()));

    let hash = NodeId([7; 20]);
    let r = response(ask(&mut n, from, get_peers(hash), now));
    let token = r.token.expect("a token");
    assert!(r.values.is_empty());

    let announce = Method::AnnouncePeer {
        info_hash: hash,
        port: 51413,
        implied_port: false,
        token: token.clone(),
    };
    response(ask(&mut n, from, announce, now));
    let r = response(ask(&mut n, from, get_peers(hash), now));
    assert_eq!(r.values, vec!["127.5.0.1:51413".parse().unwrap()]);

    // implied_port: the UDP source port is stored instead.
    let implied = Method::AnnouncePeer {
        info_hash: hash,
        port: 1,
        implied_port: true,
        token,
    };
    response(ask(&mut n, from, implied, now));
    let r = response(ask(&mut n, from, get_peers(hash), now));
    assert_eq!(r.values, vec![from]);

    let r = response(ask(
        &mut n,
        from,
        Method::FindNode {
            target: hash,
            want: Want::default(),
        },
        now,
    ));
    assert!(r.nodes.is_empty(), "an empty table gives no nodes");
}

#[test]
fn a_bad_token_or_unknown_method_gets_an_error() {
    let now = Instant::now();
    let mut n = node(now);
    let from: SocketAddr = "127.5.0.1:4000".parse().unwrap();
    let forged = Method::AnnouncePeer {
        info_hash: NodeId([7; 20]),
        port: 1,
        implied_port: false,
        token: b"forged".to_vec(),
    };
    assert_eq!(error_code(ask(&mut n, from, forged, now)), code::PROTOCOL);
    assert_eq!(
        error_code(ask(
            &mut n,
            from,
            Method::Other(b"sample_infohashes".to_vec()),
            now
        )),
        code::METHOD_UNKNOWN
    );
    // A token given to another address is refused too.
    let r = response(ask(
        &mut n,
        "127.6.0.1:1".parse().unwrap(),
        get_peers(NodeId([7; 20])),
        now,
    ));
    let stolen = Method::AnnouncePeer {
        info_hash: NodeId([7; 20]),
        port: 1,
        implied_port: false,
        token: r.token.unwrap(),
    };
    assert_eq!(error_code(ask(&mut n, from, stolen, now)), code::PROTOCOL);
    // Malformed arguments with a readable tid: error 203.
    n.handle_packet(
        from,
        b"d1:ad2:id20:abcdefghij0123456789e1:q9:find_node1:t2:zz1:y1:qe",
        now,
    );
    let (_, bytes) = n.poll_transmit().unwrap();
    assert_eq!(error_code(Message::decode(&bytes).unwrap()), code::PROTOCOL);
}

#[test]
fn queries_over_the_per_ip_rate_are_dropped() {
    let now = Instant::now();
    let mut n = node(now);
    let from: SocketAddr = "127.5.0.1:4000".parse().unwrap();
    let ping = Message {
        tid: b"p".to_vec(),
        kind: Kind::Query(Query {
            id: NodeId([9; 20]),
            method: Method::Ping,
        }),
        ip: None,
        read_only: true,
    }
    .encode();
    for _ in 0..500 {
        n.handle_packet(from, &ping, now);
    }
    let answered = std::iter::from_fn(|| n.poll_transmit()).count();
    assert_eq!(answered, Config::default().ip_rate.burst as usize);
    assert_eq!(n.stats(now).rate_limited, 500 - answered as u64);
}

#[test]
fn replies_from_the_wrong_address_or_with_unknown_tids_are_ignored() {
    let now = Instant::now();
    let router: SocketAddr = "127.9.0.1:6881".parse().unwrap();
    let mut n = Node::new(
        [2; 32],
        Config {
            bootstrap: vec![router],
            ..Config::default()
        },
        now,
    );
    n.tick(now);
    let (to, bytes) = n.poll_transmit().expect("a bootstrap query");
    assert_eq!(to, router);
    let q = Message::decode(&bytes).unwrap();
    let reply = |tid: Vec<u8>| {
        Message {
            tid,
            kind: Kind::Response(Response {
                id: Some(NodeId([3; 20])),
                ..Response::default()
            }),
            ip: None,
            read_only: false,
        }
        .encode()
    };
    n.handle_packet(
        "127.9.0.2:6881".parse().unwrap(),
        &reply(q.tid.clone()),
        now,
    );
    n.handle_packet(router, &reply(b"nope".to_vec()), now);
    assert_eq!(n.table().len(), 0);
    assert_eq!(n.stats(now).unsolicited, 2);
    n.handle_packet(router, &reply(q.tid), now);
    assert_eq!(n.table().len(), 1);
}

#[test]
fn random_bytes_never_panic_and_allocate_nothing_lasting() {
    let now = Instant::now();
    let mut n = node(now);
    let mut rng = Rng::new([5; 32]);
    let seeds: [&[u8]; 3] = [
        b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe",
        b"d1:rd2:id20:abcdefghij01234567895:nodes26:abcdefghij0123456789xxxxxx5:token8:aoeusnth6:valuesl6:axje.u6:idhtnmee1:t2:aa1:y1:re",
        b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee",
    ];
    for i in 0..20_000 {
        let mut p = seeds[i % 3].to_vec();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(p.len());
            p[at] = rng.next_u64() as u8;
        }
        let from = SocketAddr::new(
            IpAddr::V4((rng.next_u64() as u32).into()),
            1 + rng.below(60000) as u16,
        );
        n.handle_packet(from, &p, now);
        while n.poll_transmit().is_some() {}
    }
    assert!(
        n.table().is_empty(),
        "nothing unsolicited gets into the table"
    );
    assert!(n.pending.len() <= MAX_PINGS);
}

#[test]
fn save_and_load_keep_the_id_and_the_nodes() {
    let mut net = Net::honest(30);
    let now = net.now;
    let saved = net.node(5).save(now);
    let id = net.node(5).id();
    let count = net.node(5).table().len();
    assert!(count >= 8, "{count}");
    let mut fresh = Node::new([42; 32], Config::default(), now);
    assert_eq!(fresh.load(&saved, now).unwrap(), count);
    assert_eq!(fresh.id(), id);
    assert!(fresh.load(b"d2:id3:abce", now).is_err());
    assert!(fresh
        .load(b"d2:id20:abcdefghij01234567895:nodes3:abce", now)
        .is_err());
}

#[test]
fn a_restarted_node_rejoins_from_its_saved_table_alone() {
    let mut net = Net::honest(40);
    let now = net.now;
    let saved = net.node(7).save(now);
    // Node 0, the only bootstrap node, is gone; node 7 comes back as a new process.
    net.down.insert(addr_of(0));
    net.down.insert(addr_of(7));
    net.run(Duration::from_secs(2));
    let config = Config {
        bootstrap: vec![addr_of(0)],
        ..Config::default()
    };
    let mut again = Node::new([77; 32], config, net.now);
    again.load(&saved, net.now).unwrap();
    let i = net.push(addr_of(1000), again);
    let got = net.run_until(i, Duration::from_secs(30), |e| {
        matches!(e, Event::Bootstrapped { .. })
    });
    match got {
        Some(Event::Bootstrapped { nodes }) => assert!(nodes >= 8, "{nodes}"),
        other => panic!("did not rejoin: {other:?}"),
    }
}

#[test]
fn testnet_of_200_finds_an_announced_peer() {
    let mut net = Net::honest(200);
    let hash = InfoHash([0xa5; 20]);
    let now = net.now;
    net.node(17).get_peers(hash, Some(40_000), now);
    let done = net.run_until(17, Duration::from_secs(30), |e| {
        matches!(e, Event::LookupDone { .. })
    });
    let Some(Event::LookupDone { announced, .. }) = done else {
        panic!("no end: {done:?}")
    };
    assert!(announced >= 6, "announced to {announced}");
    net.run(Duration::from_secs(1));

    let now = net.now;
    let lid = net.node(151).get_peers(hash, None, now);
    let found = net.run_until(151, Duration::from_secs(30), |e| {
        matches!(e, Event::PeersFound { .. })
    });
    match found {
        Some(Event::PeersFound {
            lookup,
            info_hash,
            peers,
        }) => {
            assert_eq!((lookup, info_hash), (lid, hash));
            assert_eq!(peers, vec![SocketAddr::new(addr_of(17).ip(), 40_000)]);
        }
        other => panic!("not found: {other:?}"),
    }
}

#[test]
fn find_node_converges_on_the_true_closest() {
    let mut net = Net::honest(150);
    let mut rng = Rng::new([8; 32]);
    let mut hits = 0;
    for round in 0..5 {
        let target = NodeId::random(&mut rng);
        let mut truth: Vec<NodeId> = net.nodes.iter().map(|(_, n)| n.id()).collect();
        truth.sort_by_key(|id| id.distance(&target));
        let asker = 10 + round * 20;
        let now = net.now;
        net.node(asker).find_node(target, now);
        let done = net.run_until(asker, Duration::from_secs(30), |e| {
            matches!(e, Event::LookupDone { .. })
        });
        let Some(Event::LookupDone {
            closest, duration, ..
        }) = done
        else {
            panic!()
        };
        assert!(duration < Duration::from_secs(2), "{duration:?}");
        let own = net.nodes[asker].1.id();
        let want: Vec<NodeId> = truth.into_iter().filter(|id| *id != own).take(K).collect();
        hits += closest.iter().filter(|n| want.contains(&n.id)).count();
    }
    assert!(hits >= 5 * K - 2, "{hits} of {} true closest found", 5 * K);
}

#[test]
fn torrents_are_looked_up_and_announced_on_a_schedule() {
    let mut net = Net::honest(40);
    let hash = InfoHash([0x3c; 20]);
    // Someone is in the swarm already, so that node 3's lookups find a peer (a lookup that
    // finds none is retried sooner: see the next test).
    let now = net.now;
    net.node(20).get_peers(hash, Some(999), now);
    net.run(Duration::from_secs(5));
    let now = net.now;
    assert!(net.node(3).add_torrent(hash, Some(1234), now));
    net.run(Duration::from_secs(5));
    let runs = |net: &Net| {
        net.events
            .iter()
            .filter(|(i, e)| {
                *i == 3
                    && matches!(
                        e,
                        Event::LookupDone {
                            get_peers: true,
                            ..
                        }
                    )
            })
            .count()
    };
    assert_eq!(runs(&net), 1);
    let now = net.now;
    assert!(
        !net.node(3).want_peers(&hash, now),
        "too soon after the last one"
    );
    net.run(Duration::from_secs(50));
    assert_eq!(runs(&net), 1);
    // The early request was kept for the earliest moment allowed, a minute after the last.
    net.run(Duration::from_secs(15));
    assert_eq!(runs(&net), 2);
    net.run(Duration::from_secs(120));
    let now = net.now;
    assert!(
        net.node(3).want_peers(&hash, now),
        "a minute later it may run at once"
    );
    net.run(Duration::from_secs(5));
    assert_eq!(runs(&net), 3);
    net.run(Config::default().reannounce);
    assert_eq!(runs(&net), 4);
    // Another node finds node 3 through what it announced.
    let now = net.now;
    net.node(30).get_peers(hash, None, now);
    let found = net.run_until(30, Duration::from_secs(30), |e| {
        matches!(e, Event::PeersFound { .. })
    });
    assert!(found.is_some());
}

#[test]
fn sybil_flood_does_not_hide_the_honest_peer() {
    let mut net = Net::honest(60);
    let hash = InfoHash([0x77; 20]);
    let honest_seed = SocketAddr::new(addr_of(12).ip(), 50_000);
    let now = net.now;
    net.node(12).get_peers(hash, Some(50_000), now);
    net.run(Duration::from_secs(5));

    // 400 fake nodes (100 ports on each of four IPs in two /24s). They answer every query
    // with an id and eight fake nodes right next to the target, and fifty bogus peers.
    let ips: Vec<IpAddr> = ["127.66.0.1", "127.66.0.2", "127.67.0.1", "127.67.0.2"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    let fakes: Vec<SocketAddr> = (0..400)
        .map(|i| SocketAddr::new(ips[i % 4], 20_000 + (i / 4) as u16))
        .collect();
    net.hostile = Some(Box::new(Sybils {
        ips: ips.clone(),
        ports: 100,
        rng: Rng::new([66; 32]),
        bogus_sent: 0,
        queries: 0,
    }));
    // Every fake queries every honest node, so that they ping it and take it in if they may.
    let mut rng = Rng::new([67; 32]);
    for (k, fake) in fakes.iter().enumerate() {
        for i in 0..net.nodes.len() {
            let q = Message {
                tid: vec![k as u8],
                kind: Kind::Query(Query {
                    id: NodeId::random(&mut rng),
                    method: Method::Ping,
                }),
                ip: None,
                read_only: false,
            };
            net.inject(*fake, addr_of(i), q.encode());
        }
    }
    net.run(Duration::from_secs(10));

    // The victim knows twenty fakes and one honest node, and looks up at once.
    let mut bootstrap: Vec<SocketAddr> = fakes[..20].to_vec();
    bootstrap.push(addr_of(1));
    let v = net.add(
        addr_of(900),
        Config {
            bootstrap,
            ..Config::default()
        },
    );
    let now = net.now;
    net.node(v).get_peers(hash, None, now);
    let mut found_honest = false;
    let mut bogus = 0;
    let end = net.now + Duration::from_secs(60);
    let mut seen = net.events.len();
    let mut done = false;
    while net.now < end && !done {
        net.step_until(end);
        for (i, e) in &net.events[seen..] {
            if *i != v {
                continue;
            }
            match e {
                Event::PeersFound { peers, .. } => {
                    found_honest |= peers.contains(&honest_seed);
                    bogus += peers.iter().filter(|p| **p != honest_seed).count();
                }
                Event::LookupDone {
                    get_peers: true, ..
                } => done = true,
                _ => {}
            }
        }
        seen = net.events.len();
    }
    assert!(done, "the lookup ended");
    assert!(found_honest, "the honest seed was found");
    assert!(bogus > 0, "the flood reached the lookup");
    assert!(
        bogus <= lookup::MAX_PEERS,
        "{bogus} bogus peers from one lookup"
    );

    // Every table (the victim's and the honest nodes'): at most two fakes of a /24 per
    // bucket, honest nodes the majority, within the table's bound.
    let mut worst = 0;
    for (_, n) in &net.nodes {
        let table = n.table();
        let mut per_bucket: HashMap<(usize, [u8; 9]), usize> = HashMap::new();
        for e in table.iter().filter(|e| ips.contains(&e.addr.ip())) {
            *per_bucket
                .entry((
                    table.own_id().common_prefix(&e.id),
                    routing::subnet(e.addr.ip()),
                ))
                .or_default() += 1;
        }
        assert!(
            per_bucket.values().all(|&n| n <= routing::SUBNET_CAP),
            "{per_bucket:?}"
        );
        let fake_count: usize = per_bucket.values().sum();
        assert!(table.len() <= routing::BUCKETS * K);
        assert!(
            fake_count * 2 < table.len(),
            "{fake_count} of {} are fakes",
            table.len()
        );
        worst = worst.max(fake_count);
        let s = n.stats(net.now);
        assert!(s.pending <= MAX_PENDING && s.lookups_active <= MAX_LOOKUPS);
    }
    let s = net.nodes[v].1.stats(net.now);
    eprintln!(
        "sybil: victim table {} nodes; at most {worst} fakes in any table; {bogus} bogus peers out of one lookup; {} timeouts",
        net.nodes[v].1.table().len(),
        s.timeouts
    );
}

#[test]
fn a_lookup_that_comes_back_empty_is_retried_soon_then_less_often() {
    let mut net = Net::honest(30);
    let hash = InfoHash([0x4d; 20]);
    let now = net.now;
    // Not announcing (so that its own address never comes back as a peer).
    assert!(net.node(3).add_torrent(hash, None, now));
    let runs = |net: &Net| {
        net.events
            .iter()
            .filter(|(i, e)| {
                *i == 3
                    && matches!(
                        e,
                        Event::LookupDone {
                            get_peers: true,
                            ..
                        }
                    )
            })
            .count()
    };
    // Nobody else has the torrent: 10 s, then 20 s, then 40 s between lookups.
    net.run(Duration::from_secs(5));
    assert_eq!(runs(&net), 1);
    net.run(Duration::from_secs(12));
    assert_eq!(runs(&net), 2);
    net.run(Duration::from_secs(22));
    assert_eq!(runs(&net), 3);
    net.run(Duration::from_secs(30));
    assert_eq!(runs(&net), 3, "the wait doubled");
    net.run(Duration::from_secs(15));
    assert_eq!(runs(&net), 4);
}
