use super::*;
use crate::dht::Rng;
use std::net::Ipv4Addr;

fn v4(a: u8, b: u8, c: u8, d: u8, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(a, b, c, d)), port)
}

/// An id in bucket `prefix` of a table centred on `own`.
fn in_bucket(own: &NodeId, prefix: usize, rng: &mut Rng) -> NodeId {
    own.random_in_bucket(prefix, rng)
}

#[test]
fn buckets_hold_k_nodes_and_the_table_stays_bounded() {
    let now = Instant::now();
    let mut rng = Rng::new([1; 32]);
    let own = NodeId::random(&mut rng);
    let mut t = RoutingTable::new(own, SUBNET_CAP, now);
    for i in 0..5000u32 {
        let [_, _, b, c] = i.to_be_bytes();
        t.heard_from(NodeId::random(&mut rng), v4(100, b, c, 1, 1), false, now);
    }
    for b in &t.buckets {
        assert!(b.nodes.len() <= K && b.replacements.len() <= REPLACEMENTS);
    }
    // Random ids land in the first buckets: bucket i expects 5000 / 2^(i+1) of them, so
    // buckets 0 to 8 fill and the next few hold a handful.
    assert!(t.len() <= 13 * K, "{}", t.len());
    assert!(t.len() >= 9 * K, "{}", t.len());
}

#[test]
fn at_most_two_nodes_of_a_slash_24_per_bucket() {
    let now = Instant::now();
    let mut rng = Rng::new([2; 32]);
    let own = NodeId::random(&mut rng);
    let mut t = RoutingTable::new(own, SUBNET_CAP, now);
    t.set_ip_cap(100);
    for port in 0..200u16 {
        let host = (port % 250) as u8 + 1;
        t.heard_from(
            in_bucket(&own, 0, &mut rng),
            v4(127, 66, 0, host, 1000 + port),
            false,
            now,
        );
    }
    let in_bucket0 = t.buckets[0].nodes.len();
    let waiting = t.buckets[0].replacements.len();
    assert_eq!((in_bucket0, waiting), (2, 0));
    // Other subnets still get in.
    for c in 1..=6 {
        assert_eq!(
            t.heard_from(
                in_bucket(&own, 0, &mut rng),
                v4(127, 66, c, 1, 1),
                false,
                now
            ),
            Insert::Added
        );
    }
    assert_eq!(t.buckets[0].nodes.len(), K);
}

#[test]
fn an_address_cannot_change_its_id_and_an_id_cannot_move() {
    let now = Instant::now();
    let mut rng = Rng::new([3; 32]);
    let own = NodeId::random(&mut rng);
    let mut t = RoutingTable::new(own, SUBNET_CAP, now);
    let (a, b) = (NodeId::random(&mut rng), NodeId::random(&mut rng));
    assert_eq!(
        t.heard_from(a, v4(127, 1, 0, 1, 1), false, now),
        Insert::Added
    );
    assert_eq!(
        t.heard_from(b, v4(127, 1, 0, 1, 1), false, now),
        Insert::Refused
    );
    assert_eq!(
        t.heard_from(a, v4(127, 2, 0, 1, 1), false, now),
        Insert::Refused
    );
    assert_eq!(
        t.heard_from(a, v4(127, 1, 0, 1, 1), false, now),
        Insert::Updated
    );
    assert_eq!(
        t.heard_from(own, v4(127, 3, 0, 1, 1), false, now),
        Insert::Refused
    );
}

#[test]
fn one_node_per_ip_in_the_whole_table() {
    let now = Instant::now();
    let mut rng = Rng::new([7; 32]);
    let own = NodeId::random(&mut rng);
    let mut t = RoutingTable::new(own, SUBNET_CAP, now);
    let added = (0..300u16)
        .filter(|p| {
            t.heard_from(
                NodeId::random(&mut rng),
                v4(127, 9, 9, 9, 1000 + p),
                false,
                now,
            ) == Insert::Added
        })
        .count();
    assert_eq!(added, 1);
    assert!(!t.would_take(&NodeId::random(&mut rng), v4(127, 9, 9, 9, 5), now));
}

fn v6(s: &str) -> SocketAddr {
    SocketAddr::new(s.parse().unwrap(), 6881)
}

#[test]
fn one_node_per_ipv6_64_in_the_whole_table() {
    let now = Instant::now();
    let mut rng = Rng::new([8; 32]);
    let own = NodeId::random(&mut rng);
    let mut t = RoutingTable::new(own, SUBNET_CAP, now);
    let added = (1..300u16)
        .filter(|i| {
            let addr = v6(&format!("2001:db8:0:1::{i:x}"));
            t.heard_from(NodeId::random(&mut rng), addr, false, now) == Insert::Added
        })
        .count();
    assert_eq!(added, 1);
    let id = NodeId::random(&mut rng);
    assert!(
        !t.would_take(&id, v6("2001:db8:0:1:ffff::1"), now),
        "same /64"
    );
    assert!(t.would_take(&id, v6("2001:db8:1:1::1"), now), "another /48");
}

#[test]
fn at_most_two_nodes_of_an_ipv6_48_per_bucket() {
    let now = Instant::now();
    let mut rng = Rng::new([9; 32]);
    let own = NodeId::random(&mut rng);
    let mut t = RoutingTable::new(own, SUBNET_CAP, now);
    // 50 hosts, each in its own /64 of one /48.
    for i in 1..=50u16 {
        let addr = v6(&format!("2001:db8:7:{i:x}::1"));
        t.heard_from(in_bucket(&own, 0, &mut rng), addr, false, now);
    }
    assert_eq!(t.buckets[0].nodes.len(), 2);
    let other = v6("2001:db8:8:1::1");
    assert_eq!(
        t.heard_from(in_bucket(&own, 0, &mut rng), other, false, now),
        Insert::Added,
        "another /48 still gets in"
    );
}

#[test]
fn node_states_follow_bep5_timings() {
    let t0 = Instant::now();
    let e = Entry {
        id: NodeId([0; 20]),
        addr: v4(127, 0, 0, 1, 1),
        last_response: t0,
        fails: 0,
        bep42: false,
    };
    assert_eq!(e.state(t0 + Duration::from_secs(14 * 60)), State::Good);
    assert_eq!(e.state(t0 + GOOD_FOR), State::Questionable);
    let failed_once = Entry {
        fails: 1,
        ..e.clone()
    };
    assert_eq!(failed_once.state(t0), State::Questionable);
    let failed_twice = Entry { fails: 2, ..e };
    assert_eq!(failed_twice.state(t0), State::Bad);
}

#[test]
fn a_bad_node_gives_its_place_to_a_replacement() {
    let now = Instant::now();
    let mut rng = Rng::new([4; 32]);
    let own = NodeId::random(&mut rng);
    let mut t = RoutingTable::new(own, SUBNET_CAP, now);
    let ids: Vec<NodeId> = (0..K).map(|_| in_bucket(&own, 0, &mut rng)).collect();
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(
            t.heard_from(*id, v4(127, i as u8, 0, 1, 1), false, now),
            Insert::Added
        );
    }
    let newcomer = in_bucket(&own, 0, &mut rng);
    let later = now + GOOD_FOR;
    // Everyone is questionable by then: the newcomer waits and we are told whom to ping.
    match t.heard_from(newcomer, v4(127, 50, 0, 1, 1), false, later) {
        Insert::Waiting(Some(_)) => {}
        other => panic!("{other:?}"),
    }
    t.failed(&ids[3], later);
    assert!(t.get(&ids[3]).is_some(), "one failure is not enough");
    t.failed(&ids[3], later);
    assert!(t.get(&ids[3]).is_none());
    assert!(t.get(&newcomer).is_some());
}

#[test]
fn ids_matching_their_address_are_preferred() {
    let now = Instant::now();
    let mut rng = Rng::new([5; 32]);
    let own = NodeId::random(&mut rng);
    let mut t = RoutingTable::new(own, SUBNET_CAP, now);
    for i in 0..K as u8 {
        t.heard_from(in_bucket(&own, 0, &mut rng), v4(9, i, 0, 1, 1), false, now);
    }
    // A node of a public address whose id is its BEP 42 id, in bucket 0.
    let addr = v4(203, 0, 113, 7, 6881);
    let id = loop {
        let id = NodeId::for_ip(addr.ip(), &mut rng);
        if own.common_prefix(&id) == 0 {
            break id;
        }
    };
    assert_eq!(t.heard_from(id, addr, true, now), Insert::Added);
    assert_eq!(t.buckets[0].nodes.len(), K);
    assert!(t.get(&id).is_some());
}

#[test]
fn closest_are_sorted_by_distance() {
    let now = Instant::now();
    let mut rng = Rng::new([6; 32]);
    let own = NodeId::random(&mut rng);
    let mut t = RoutingTable::new(own, SUBNET_CAP, now);
    for i in 0..200u8 {
        t.heard_from(NodeId::random(&mut rng), v4(100, 0, i, 1, 1), false, now);
    }
    let target = NodeId::random(&mut rng);
    let got = t.closest(&target, K, now);
    assert_eq!(got.len(), K);
    let mut all: Vec<NodeId> = t.iter().map(|e| e.id).collect();
    all.sort_by_key(|id| id.distance(&target));
    assert_eq!(
        got.iter().map(|n| n.id).collect::<Vec<_>>(),
        all[..K].to_vec()
    );
}
