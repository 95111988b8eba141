use super::*;

fn ann(id: u8, port: u16, left: u64, event: Event) -> Announced {
    Announced {
        info_hash: InfoHash([1; 20]),
        peer_id: [id; 20],
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        left,
        event,
        numwant: None,
    }
}

#[test]
fn peers_find_each_other_but_not_themselves() {
    let mut r = Registry::new(Limits::default());
    let first = r.announce(&ann(1, 1000, 0, Event::Started), 0).unwrap();
    assert!(first.peers.is_empty());
    let second = r.announce(&ann(2, 2000, 10, Event::Started), 1).unwrap();
    assert_eq!(second.peers, vec![SocketAddr::from(([127, 0, 0, 1], 1000))]);
    assert_eq!((second.seeders, second.leechers), (Some(1), Some(1)));
    // The seed hears of the leecher, and then of other seeds.
    r.announce(&ann(3, 3000, 0, Event::Started), 2).unwrap();
    let again = r.announce(&ann(1, 1000, 0, Event::None), 2).unwrap();
    assert_eq!(
        again.peers,
        vec![
            SocketAddr::from(([127, 0, 0, 1], 2000)),
            SocketAddr::from(([127, 0, 0, 1], 3000))
        ]
    );
}

#[test]
fn completed_counts_and_stopped_removes() {
    let mut r = Registry::new(Limits::default());
    r.announce(&ann(1, 1000, 10, Event::Started), 0).unwrap();
    r.announce(&ann(1, 1000, 0, Event::Completed), 1).unwrap();
    let c = r.scrape(&InfoHash([1; 20]));
    assert_eq!((c.seeders, c.completed, c.leechers), (1, 1, 0));
    r.announce(&ann(1, 1000, 0, Event::Stopped), 2).unwrap();
    assert_eq!(r.torrent_count(), 0);
}

#[test]
fn silent_peers_expire_and_memory_is_bounded() {
    let limits = Limits {
        max_torrents: 2,
        max_peers: 3,
        interval: 60,
        peer_ttl: 100,
    };
    let mut r = Registry::new(limits);
    for id in 0..10 {
        r.announce(&ann(id, 1000 + id as u16, 5, Event::Started), 0)
            .unwrap();
    }
    assert_eq!(r.scrape(&InfoHash([1; 20])).leechers, 3);
    let mut other = ann(1, 1, 1, Event::Started);
    other.info_hash = InfoHash([2; 20]);
    r.announce(&other, 0).unwrap();
    other.info_hash = InfoHash([3; 20]);
    assert!(r.announce(&other, 0).is_err());
    r.announce(&ann(0, 1000, 5, Event::None), 150).unwrap();
    r.expire(150);
    assert_eq!(r.scrape(&InfoHash([1; 20])).leechers, 1);
    assert_eq!(r.torrent_count(), 1);
}

/// An announce of `id` from `ip` (port 6881), a leecher asking for 200 peers.
fn from(ip: &str, id: [u8; 20], event: Event) -> Announced {
    Announced {
        info_hash: InfoHash([1; 20]),
        peer_id: id,
        addr: SocketAddr::new(ip.parse().unwrap(), 6881),
        left: 5,
        event,
        numwant: Some(200),
    }
}

fn listed(r: &mut Registry, asker: &str, now: u64) -> Vec<SocketAddr> {
    r.announce(&from(asker, [0xee; 20], Event::None), now)
        .unwrap()
        .peers
}

#[test]
fn thousands_of_peer_ids_from_one_address_cannot_hide_an_honest_peer() {
    let mut r = Registry::new(Limits::default());
    for _ in 0..5000 {
        r.announce(&from("10.0.0.2", rand::random(), Event::Started), 0)
            .unwrap();
    }
    assert_eq!(
        r.scrape(&InfoHash([1; 20])).leechers,
        2000,
        "the swarm is full"
    );
    let honest = from("10.0.0.3", [7; 20], Event::Started);
    r.announce(&honest, 1).unwrap();
    let third = listed(&mut r, "10.0.0.4", 2);
    assert_eq!(third.len(), 200);
    assert!(third.contains(&honest.addr), "the honest peer is listed");
    // The flood's `stopped` with the honest peer's id removes nothing of the honest peer.
    r.announce(&from("10.0.0.2", [7; 20], Event::Stopped), 3)
        .unwrap();
    assert!(listed(&mut r, "10.0.0.4", 4).contains(&honest.addr));
    // Nor does another flood of new ids from the same address push it out.
    for _ in 0..100 {
        r.announce(&from("10.0.0.2", rand::random(), Event::Started), 5)
            .unwrap();
    }
    assert!(listed(&mut r, "10.0.0.5", 6).contains(&honest.addr));
}

#[test]
fn a_peer_is_its_id_and_its_address() {
    let mut r = Registry::new(Limits::default());
    let a = from("10.0.0.1", [1; 20], Event::Started);
    r.announce(&a, 0).unwrap();
    // The same id from another address is another peer; it neither moves nor stops the
    // first.
    let mut moved = from("10.0.0.9", [1; 20], Event::Started);
    moved.addr.set_port(9999);
    r.announce(&moved, 1).unwrap();
    assert_eq!(r.scrape(&InfoHash([1; 20])).leechers, 2);
    r.announce(&from("10.0.0.9", [1; 20], Event::Stopped), 2)
        .unwrap();
    assert_eq!(listed(&mut r, "10.0.0.4", 3), vec![a.addr]);
    // From its own address, an announce updates the peer and `stopped` removes it.
    let mut again = a.clone();
    again.addr.set_port(7000);
    r.announce(&again, 4).unwrap();
    assert_eq!(listed(&mut r, "10.0.0.4", 5), vec![again.addr]);
    r.announce(&from("10.0.0.1", [1; 20], Event::Stopped), 6)
        .unwrap();
    assert!(listed(&mut r, "10.0.0.4", 7).is_empty());
}

#[test]
fn an_ipv6_64_is_one_address() {
    let mut r = Registry::new(Limits {
        max_peers: 10,
        ..Limits::default()
    });
    // A peer whose privacy address changed within its /64 is still one peer.
    r.announce(&from("2001:db8:0:1::a", [1; 20], Event::Started), 0)
        .unwrap();
    r.announce(&from("2001:db8:0:1::b", [1; 20], Event::None), 1)
        .unwrap();
    assert_eq!(r.scrape(&InfoHash([1; 20])).leechers, 1);
    // Ids from many addresses of one /64 count against that /64 together.
    for i in 0..50u16 {
        let ip = format!("2001:db8:0:1::{:x}", 0x100 + i);
        r.announce(&from(&ip, rand::random(), Event::Started), 2)
            .unwrap();
    }
    let honest = from("2001:db8:0:2::1", [7; 20], Event::Started);
    r.announce(&honest, 3).unwrap();
    assert!(listed(&mut r, "2001:db8:0:3::1", 4).contains(&honest.addr));
    assert_eq!(r.scrape(&InfoHash([1; 20])).leechers, 10);
}

#[test]
fn a_full_swarm_drops_the_longest_silent_entry_of_the_address_with_most() {
    let mut r = Registry::new(Limits {
        max_peers: 4,
        ..Limits::default()
    });
    r.announce(&from("10.0.0.1", [1; 20], Event::Started), 0)
        .unwrap();
    r.announce(&from("10.0.0.1", [2; 20], Event::Started), 1)
        .unwrap();
    r.announce(&from("10.0.0.1", [3; 20], Event::Started), 2)
        .unwrap();
    r.announce(&from("10.0.0.2", [4; 20], Event::Started), 3)
        .unwrap();
    // Peer 1 announces again: peer 2 is now the one silent longest.
    r.announce(&from("10.0.0.1", [1; 20], Event::None), 4)
        .unwrap();
    r.announce(&from("10.0.0.3", [5; 20], Event::Started), 5)
        .unwrap();
    let ids = |r: &Registry| {
        let mut ids: Vec<u8> = r.swarms[&InfoHash([1; 20])]
            .peers
            .keys()
            .map(|(id, _)| id[0])
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&r), [1, 3, 4, 5]);
    // 10.0.0.1 holds 2, .2 one: not two more, so a newcomer from .2 is not listed ...
    r.announce(&from("10.0.0.2", [6; 20], Event::Started), 6)
        .unwrap();
    assert_eq!(ids(&r), [1, 3, 4, 5]);
    // ... while one from an address with none takes a place of .1's (the one silent
    // longest) ...
    r.announce(&from("10.0.0.4", [7; 20], Event::Started), 7)
        .unwrap();
    assert_eq!(ids(&r), [1, 4, 5, 7]);
    // ... and a full swarm of one entry per address keeps who came first.
    r.announce(&from("10.0.0.5", [8; 20], Event::Started), 8)
        .unwrap();
    assert_eq!(ids(&r), [1, 4, 5, 7]);
}

#[test]
fn a_reply_lists_every_address_before_a_second_entry_of_any() {
    let mut r = Registry::new(Limits::default());
    for id in 0..100u8 {
        r.announce(&from("10.0.0.1", [id; 20], Event::Started), 0)
            .unwrap();
    }
    let b = from("10.0.0.2", [200; 20], Event::Started);
    r.announce(&b, 0).unwrap();
    let mut few = from("10.0.0.3", [201; 20], Event::None);
    few.numwant = Some(2);
    let got = r.announce(&few, 1).unwrap().peers;
    assert_eq!(got.len(), 2);
    assert!(got.contains(&b.addr), "{got:?}");
}
