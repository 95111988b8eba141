use super::*;

const PIECE: u32 = 16 * crate::wire::MAX_BLOCK;

fn handout(pieces: u32, mode: Mode) -> Handout {
    Handout::new(PIECE, pieces as u64 * PIECE as u64, mode, 7)
}

/// The peer asks for every block of `index`.
fn ask_all(h: &mut Handout, peer: PeerKey, index: u32) {
    for _ in 0..16 {
        h.requested(peer, index);
    }
}

#[test]
fn each_offer_is_a_piece_nobody_has_and_goes_to_one_peer() {
    let mut h = handout(8, Mode::Suggest);
    let mut seen = Vec::new();
    for peer in 1..=8 {
        let offers = h.offers(peer, true);
        assert_eq!(offers.len(), TURN, "a turn's worth while others wait");
        seen.extend(offers);
    }
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 8, "eight peers, eight different pieces");
    // Every piece is out: a ninth peer, with others waiting, gets none that another has.
    assert!(h.offers(9, true).is_empty());
}

#[test]
fn with_nobody_waiting_a_peer_is_kept_supplied() {
    let mut h = handout(16, Mode::Suggest);
    let first = h.offers(1, false);
    assert_eq!(first.len(), OFFERS_AHEAD);
    h.requested(1, first[0]);
    assert_eq!(h.offers(1, false).len(), 1, "one more, to stay ahead");
    assert!(h.wants_slot(1, false, 1000));
}

#[test]
fn a_turn_ends_once_its_piece_is_asked_for_and_nearly_sent() {
    let mut h = handout(8, Mode::Suggest);
    let piece = h.offers(1, true)[0];
    assert!(h.wants_slot(1, true, 0), "offered, not yet asked for");
    ask_all(&mut h, 1, piece);
    assert!(h.wants_slot(1, true, 16), "its blocks are still queued");
    assert!(h.rank(1).standing == Standing::InTurn);
    // Few blocks left in its queue: the next peer is unchoked while they go out.
    assert!(!h.wants_slot(1, true, LOW_WATER));
    // Nobody else waiting: it goes on.
    assert!(h.wants_slot(1, false, 0));
}

#[test]
fn a_choke_ends_the_turn_and_gives_untaken_offers_back() {
    let mut h = handout(2, Mode::Suggest);
    let first = h.offers(1, true)[0];
    let second = h.offers(2, true)[0];
    assert_ne!(first, second);
    h.choked(1);
    // Peer 1 never asked for its piece: it is offered to the next peer.
    assert_eq!(h.offers(3, true), vec![first]);
    // And peer 1, unchoked again later, may be offered it again.
    h.choked(3);
    assert_eq!(h.offers(1, true), vec![first]);
}

#[test]
fn passing_on_is_witnessed_by_another_peers_have() {
    let mut h = handout(8, Mode::Suggest);
    let piece = h.offers(1, true)[0];
    ask_all(&mut h, 1, piece);
    assert!(h.peer_has(1, piece).is_empty());
    // Peer 2 announces the piece without having had it from us: peer 1 passed it on.
    assert_eq!(h.peer_has(2, piece), vec![1]);
    // Once per piece.
    assert!(h.peer_has(3, piece).is_empty());
    assert_eq!(h.peers[&1].passed, 1);
}

#[test]
fn a_peer_that_keeps_what_it_gets_ranks_last_and_its_pieces_go_out_again() {
    let mut h = handout(4, Mode::Suggest);
    // Peer 9 gets three pieces and passes none on.
    for piece in 0..3 {
        ask_all(&mut h, 9, piece);
        h.peer_has(9, piece);
    }
    assert_eq!(h.rank(9).standing, Standing::Keeps);
    assert_eq!(h.rank(5).standing, Standing::PassesOn, "a newcomer");
    // Nobody can take those pieces from it: they count as out nowhere, so each is handed
    // out again.
    let mut offered: Vec<u32> = (1..=4).flat_map(|p| h.offers(p, true)).collect();
    offered.sort_unstable();
    assert_eq!(offered, vec![0, 1, 2, 3]);
}

#[test]
fn a_peer_near_done_comes_first_and_gets_what_others_have() {
    let mut h = handout(20, Mode::Suggest);
    for piece in 0..20 {
        h.peer_has(2, piece);
        if piece != 7 {
            h.peer_has(1, piece);
        }
    }
    assert_eq!(h.rank(1).standing, Standing::NearDone);
    assert!(h.rank(1) < h.rank(3));
    // Piece 7 is out (peer 2 has it), yet it is offered to the peer that lacks only it.
    assert_eq!(h.offers(1, true), vec![7]);
    assert!(h.offers(3, true).is_empty(), "not to a peer far from done");
}

#[test]
fn within_a_class_those_given_least_come_first() {
    let mut h = handout(8, Mode::Suggest);
    ask_all(&mut h, 1, 0);
    h.peer_has(1, 0);
    h.choked(1);
    assert!(h.rank(2) < h.rank(1));
}

#[test]
fn a_super_seed_announces_a_few_pieces_and_serves_only_those() {
    let mut h = handout(8, Mode::Super);
    let theirs = h.offers(2, true);
    let shown = h.offers(1, true);
    assert!(shown.iter().all(|i| !theirs.contains(i)));
    assert_eq!(shown.len(), SUPER_AHEAD);
    let other = (0..8).find(|i| !shown.contains(i)).unwrap();
    assert!(h.may_serve(1, shown[0]));
    assert!(!h.may_serve(1, other), "what it offered another, or nobody");
    // Peer 1 gets both and passes neither on (peer 2 lacks them): nothing more for it.
    for &piece in &shown {
        ask_all(&mut h, 1, piece);
        h.peer_has(1, piece);
    }
    assert!(h.offers(1, true).is_empty());
    // Another peer announces one of them: peer 1 passed it on, and gets a new one.
    assert_eq!(h.peer_has(2, shown[0]), vec![1]);
    assert_eq!(h.offers(1, true).len(), 1);
    // A super-seed's turns do not end; its choker rotates as any seed's.
    assert!(h.wants_slot(1, true, 0));
}

#[test]
fn a_peer_that_left_leaves_the_counts() {
    let mut h = handout(2, Mode::Suggest);
    let first = h.offers(1, true)[0];
    ask_all(&mut h, 1, first);
    h.peer_left(1);
    // Its piece is nobody's again.
    let mut offered: Vec<u32> = [h.offers(2, true), h.offers(3, true)].concat();
    offered.sort_unstable();
    assert_eq!(offered, vec![0, 1]);
}
