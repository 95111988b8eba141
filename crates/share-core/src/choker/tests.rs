use super::*;

fn peer(key: PeerKey, rate: f64) -> PeerView {
    PeerView {
        key,
        interested: true,
        download_rate: rate,
        upload_rate: 0.0,
        received_total: rate as u64,
        silent_for: None,
    }
}

#[test]
fn fastest_uploaders_get_the_regular_slots_plus_one_optimistic() {
    let mut c = Choker::new(2, 1);
    let peers = [peer(1, 10.0), peer(2, 500.0), peer(3, 300.0), peer(4, 0.0)];
    assert!(c.tick(0, &peers, false, false));
    let set = c.unchoked();
    assert!(set.contains(&2) && set.contains(&3));
    assert_eq!(set.len(), 3, "two regular and one optimistic: {set:?}");
    // Nothing due a second later.
    assert!(!c.tick(1, &peers, false, false));
}

#[test]
fn a_free_rider_never_gets_a_regular_slot_and_takes_its_turn_optimistically() {
    let mut optimistic_turns = 0;
    let mut c = Choker::new(2, 7);
    for round in 0..20 {
        let peers = [peer(1, 100.0), peer(2, 90.0), peer(3, 80.0), peer(9, 0.0)];
        let now = round * OPTIMISTIC_ROUND;
        assert!(c.tick(now, &peers, false, false));
        let set = c.unchoked();
        assert!(set.contains(&1) && set.contains(&2));
        if set.contains(&9) {
            optimistic_turns += 1;
        }
    }
    // Two choked peers take turns: the one that is always interested gets no more.
    assert_eq!(optimistic_turns, 10);
}

#[test]
fn peers_not_yet_tried_come_first_for_the_optimistic_slot() {
    let mut c = Choker::new(1, 5);
    let mut peers = vec![peer(1, 100.0), peer(9, 0.0)];
    c.tick(0, &peers, false, false);
    assert_eq!(c.optimistic(), Some(9));
    // A newcomer arrives: it gets the next turn, before the peer already tried.
    peers.push(peer(7, 0.0));
    c.tick(OPTIMISTIC_ROUND, &peers, false, false);
    assert_eq!(c.optimistic(), Some(7));
    c.tick(2 * OPTIMISTIC_ROUND, &peers, false, false);
    assert_eq!(c.optimistic(), Some(9));
}

#[test]
fn a_somewhat_faster_peer_waits_for_the_round() {
    let mut c = Choker::new(1, 3);
    let mut peers = vec![peer(1, 100.0), peer(2, 50.0)];
    c.tick(0, &peers, false, false);
    assert_eq!(c.optimistic(), Some(2));
    // The optimistic holder leaves and the slot is refilled at once, but peer 3's rate
    // (less than twice peer 1's) wins it a regular slot only at the next round.
    c.remove(2);
    peers = vec![peer(1, 100.0), peer(3, 150.0)];
    assert!(c.tick(1, &peers, false, false));
    assert_eq!(c.regular, vec![1]);
    assert_eq!(c.optimistic(), Some(3));
    c.tick(REGULAR_ROUND, &peers, false, false);
    assert_eq!(c.regular, vec![3]);
}

#[test]
fn a_peer_twice_as_fast_takes_the_slowest_slot_between_rounds() {
    let mut c = Choker::new(2, 3);
    let mut peers = vec![peer(1, 100.0), peer(2, 90.0), peer(3, 10.0), peer(4, 10.0)];
    c.tick(0, &peers, false, false);
    assert_eq!(c.regular, vec![1, 2]);
    // The choked peer that is not the optimistic one starts sending fast (a leecher just
    // handed pieces nobody else has): it does not wait the rest of the round behind 2.
    let fast = if c.optimistic() == Some(3) { 4 } else { 3 };
    peers[fast as usize - 1].download_rate = 200.0;
    assert!(c.tick(1, &peers, false, false));
    assert!(
        c.regular.contains(&1) && c.regular.contains(&fast),
        "{:?}",
        c.regular
    );
}

#[test]
fn a_slot_whose_holder_lost_interest_is_refilled_at_the_next_tick() {
    let mut c = Choker::new(1, 3);
    let mut peers = vec![peer(1, 100.0), peer(2, 50.0), peer(3, 80.0)];
    c.tick(0, &peers, false, false);
    assert_eq!(c.regular, vec![1]);
    let opt = c.optimistic().unwrap();
    // The engine chokes a holder that says it is not interested; its slot goes to the
    // best-ranked waiting peer now, not in ten seconds.
    peers[0].interested = false;
    assert!(c.tick(1, &peers, false, false));
    let other = if opt == 2 { 3 } else { 2 };
    assert_eq!(c.regular, vec![other]);
    assert_eq!(c.optimistic(), Some(opt), "the optimistic turn goes on");
}

#[test]
fn a_slot_that_carries_nothing_for_a_second_goes_to_a_waiting_peer() {
    let mut c = Choker::new(1, 3);
    let peers = vec![peer(1, 100.0), peer(2, 50.0), peer(3, 40.0)];
    c.sent_to(1, 1000);
    c.tick(0, &peers, false, false);
    assert_eq!(c.regular, vec![1]);
    let opt = c.optimistic().unwrap();
    // Peer 1 is interested (it lacks a piece we have) but takes nothing: what it lacks
    // comes from elsewhere. A second later, its slot goes to the peer that waits.
    c.sent_to(1, 1000);
    assert!(c.tick(1, &peers, false, false));
    assert!(!c.regular.contains(&1));
    assert_eq!(c.regular.len(), 1);
    assert_ne!(c.regular, vec![opt]);
    // A holder that takes keeps its slot.
    let mut c = Choker::new(1, 3);
    c.sent_to(1, 1000);
    c.tick(0, &peers, false, false);
    c.sent_to(1, 9000);
    c.tick(1, &peers, false, false);
    assert_eq!(c.regular, vec![1]);
}

#[test]
fn a_peer_that_takes_only_never_holds_a_regular_slot() {
    let mut c = Choker::new(2, 3);
    // Peer 9 has had pieces we want for a while and never sent us a block.
    let mut rider = peer(9, 0.0);
    rider.silent_for = Some(TAKES_ONLY_AFTER);
    let peers = vec![peer(1, 100.0), rider];
    c.tick(0, &peers, false, false);
    // One regular slot is free and nobody else wants it: still not its.
    assert_eq!(c.regular, vec![1]);
    assert_eq!(c.optimistic(), Some(9));
    // Later it has nothing we want any more: it is still a taker.
    let mut rider = peer(9, 0.0);
    rider.silent_for = None;
    c.tick(REGULAR_ROUND, &[peer(1, 100.0), rider], false, false);
    assert_eq!(c.regular, vec![1]);
    // Until it sends us something.
    let mut gave = peer(9, 0.0);
    gave.received_total = 16384;
    c.tick(2 * REGULAR_ROUND, &[peer(1, 100.0), gave], false, false);
    assert!(c.regular.contains(&9));
}

#[test]
fn a_taker_gets_an_optimistic_turn_only_when_nobody_else_waits_and_once_a_round() {
    let mut c = Choker::new(1, 3);
    c.set_optimistic_turn(16384);
    let mut rider = peer(9, 0.0);
    rider.silent_for = Some(TAKES_ONLY_AFTER);
    let mut peers = vec![peer(1, 100.0), rider, peer(2, 0.0)];
    // Both are new: one of them gets the first turn.
    c.tick(0, &peers, false, false);
    if c.optimistic() == Some(2) {
        c.sent_to(2, 16384);
        c.tick(1, &peers, false, false);
    }
    assert_eq!(c.optimistic(), Some(9), "its first turn, as a newcomer");
    c.sent_to(9, 16384);
    // It took a turn and gave nothing back: peer 2 goes before it, again and again.
    // (Peer 1 keeps taking from its regular slot.)
    for (t, sent) in [(2, 16384), (3, 32768), (4, 49152)] {
        c.sent_to(1, t * 100_000);
        c.tick(t, &peers, false, false);
        assert_eq!(c.optimistic(), Some(2));
        c.sent_to(2, sent);
    }
    // With nobody else waiting it gets a turn, but only a round after its last.
    peers.retain(|p| p.key != 2);
    c.remove(2);
    c.sent_to(1, 500_000);
    c.tick(5, &peers, false, false);
    assert_eq!(c.optimistic(), None);
    c.sent_to(1, 600_000);
    c.tick(OPTIMISTIC_ROUND + 1, &peers, false, false);
    assert_eq!(c.optimistic(), Some(9));
}

#[test]
fn an_optimistic_turn_ends_after_a_piece() {
    let mut c = Choker::new(1, 3);
    c.set_optimistic_turn(262144);
    let peers = vec![peer(1, 100.0), peer(2, 0.0), peer(3, 0.0)];
    c.tick(0, &peers, false, false);
    let first = c.optimistic().unwrap();
    c.sent_to(first, 100_000);
    c.tick(1, &peers, false, false);
    assert_eq!(c.optimistic(), Some(first), "not yet a piece");
    c.sent_to(first, 262_144);
    c.tick(2, &peers, false, false);
    assert_ne!(c.optimistic(), Some(first), "the next peer's turn");
    assert!(c.optimistic().is_some());
}

#[test]
fn at_equal_rates_those_that_ever_gave_come_first() {
    let mut c = Choker::new(1, 3);
    let mut gave = peer(5, 0.0);
    gave.received_total = 16384;
    c.tick(0, &[peer(1, 0.0), gave], false, false);
    let set = c.unchoked();
    assert!(set.contains(&5));
    assert_eq!(c.optimistic(), Some(1), "5 holds the regular slot");
}

#[test]
fn the_optimistic_slot_is_not_redrawn_when_its_holder_loses_interest() {
    let mut c = Choker::new(1, 11);
    let mut peers = vec![peer(1, 100.0), peer(2, 0.0), peer(3, 0.0)];
    c.tick(0, &peers, false, false);
    let opt = c.optimistic.unwrap();
    peers.iter_mut().find(|p| p.key == opt).unwrap().interested = false;
    c.tick(REGULAR_ROUND, &peers, false, false);
    assert_eq!(c.optimistic, Some(opt));
    c.tick(OPTIMISTIC_ROUND, &peers, false, false);
    assert_ne!(c.optimistic, Some(opt), "rotated after 30 s");
}

#[test]
fn snubbed_peers_lose_their_regular_slot() {
    let mut c = Choker::new(1, 3);
    let mut fast = peer(1, 1000.0);
    fast.silent_for = Some(SNUB_AFTER + 1);
    assert!(c.tick(0, &[fast, peer(2, 1.0)], false, false));
    let set = c.unchoked();
    assert!(set.contains(&2));
}

#[test]
fn a_seed_with_a_ledger_serves_by_its_rank_and_hands_a_finished_turn_on() {
    let mut c = Choker::new(2, 5);
    let mut peers: Vec<PeerView> = (1..=5).map(|k| peer(k, 0.0)).collect();
    // Lower rank first: 4 and 2 get the regular slots, the newest never served (5) the
    // optimistic one.
    let rank = |k: PeerKey| match k {
        4 => 0,
        2 => 1,
        _ => 9,
    };
    c.tick_ranked(0, &peers, true, false, rank);
    assert_eq!(c.regular, vec![4, 2]);
    assert_eq!(c.optimistic(), Some(5));
    // Peer 2's turn is over (the engine says it is not interested): its slot goes to the
    // next in rank at once, and so does the optimistic slot when its holder's turn ends.
    peers[1].interested = false;
    assert!(c.tick_ranked(1, &peers, true, false, rank));
    assert!(c.regular.contains(&4) && !c.regular.contains(&2));
    peers[4].interested = false;
    assert!(c.tick_ranked(2, &peers, true, false, rank));
    assert!(c.optimistic().is_some_and(|o| o != 5 && o != 2));
    assert_eq!(c.unchoked().len(), 3);
}

#[test]
fn seeding_rotates_every_slot_so_everyone_is_served() {
    let mut c = Choker::new(2, 5);
    let peers: Vec<PeerView> = (1..=6).map(|k| peer(k, 0.0)).collect();
    let mut served = HashSet::new();
    for round in 0..2 {
        assert!(c.tick(round * REGULAR_ROUND, &peers, true, false));
        let set = c.unchoked();
        assert_eq!(set.len(), 3, "two slots and the optimistic one");
        served.extend(set.iter().copied());
    }
    assert_eq!(served.len(), 6, "{served:?}");
}

#[test]
fn a_seed_unchokes_a_newcomer_at_once_and_still_serves_everyone_in_turn() {
    let mut c = Choker::new(4, 5);
    // 500 slow peers, all served a while ago or never.
    let mut peers: Vec<PeerView> = (1..=500)
        .map(|k| {
            let mut p = peer(k, 0.0);
            p.upload_rate = 16384.0;
            p
        })
        .collect();
    c.tick(0, &peers, true, false);
    // A newcomer: the optimistic slot is its at once (the engine asks when it becomes
    // interested), and a second newcomer in the same second waits for the round...
    peers.push(peer(1000, 0.0));
    assert!(c.seed_newcomer(1000, 3));
    assert_eq!(c.optimistic(), Some(1000));
    assert!(!c.seed_newcomer(1001, 3));
    assert!(!c.seed_newcomer(1000, 4), "only peers never served");
    c.tick(REGULAR_ROUND, &peers, true, false);
    // A fast taker gets no more than its turns: a seed's slots rotate.
    peers.last_mut().unwrap().upload_rate = 100e6;
    c.tick(2 * REGULAR_ROUND, &peers, true, false);
    assert!(c.unchoked().len() <= 5);
    // Every slot rotates among the slow ones.
    let mut served = HashSet::new();
    for round in 20..40 {
        c.tick(round * REGULAR_ROUND, &peers, true, false);
        served.extend(c.unchoked());
    }
    assert!(
        served.len() >= 40,
        "only {} peers served in 20 rounds",
        served.len()
    );
}

#[test]
fn uninterested_peers_are_never_unchoked_and_leaving_frees_a_slot() {
    let mut c = Choker::new(1, 9);
    let mut idle = peer(1, 999.0);
    idle.interested = false;
    assert!(c.tick(0, &[idle, peer(2, 1.0)], false, false));
    let set = c.unchoked();
    assert_eq!(set.iter().copied().collect::<Vec<_>>(), vec![2]);
    assert!(!c.has_free_slot());
    c.remove(2);
    assert!(c.has_free_slot());
}
