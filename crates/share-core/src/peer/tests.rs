//! `PeerState` alone: each rule and threshold, driven by a clock the test moves.

use super::*;

fn block(index: u32, begin: u32) -> BlockRef {
    BlockRef {
        index,
        begin,
        length: MAX_BLOCK,
    }
}

/// A peer with every piece that unchoked us, and in whom we are interested.
fn serving(now: Instant) -> PeerState {
    let mut p = PeerState::new(100, false, now);
    p.has = Bitfield::full(100);
    p.peer_choking = false;
    let _ = p.set_interested(true, now);
    p
}

#[test]
fn interest_and_choking_say_so_only_when_they_change() {
    let now = Instant::now();
    let mut p = PeerState::new(10, false, now);
    assert_eq!(p.set_interested(false, now), None);
    assert_eq!(p.set_interested(true, now), Some(Message::Interested));
    assert_eq!(p.set_interested(true, now), None);
    assert_eq!(p.set_interested(false, now), Some(Message::NotInterested));
    assert_eq!(p.set_choking(true), None, "a new peer starts choked");
    assert_eq!(p.set_choking(false), Some(Message::Unchoke));
    assert_eq!(p.set_choking(true), Some(Message::Choke));
}

#[test]
fn nothing_is_asked_of_a_peer_that_chokes_us_unless_it_allowed_pieces_fast() {
    let now = Instant::now();
    let mut p = serving(now);
    p.peer_choking = true;
    assert_eq!(p.request_room(), 0);
    assert!(p.allow_fast(7));
    assert!(!p.allow_fast(100), "beyond the piece count");
    assert_eq!(p.request_room(), MIN_DEPTH * 2);
    let askable = p.askable();
    assert_eq!(askable.ones().collect::<Vec<_>>(), vec![7]);
}

#[test]
fn requests_are_refilled_in_batches_of_a_quarter_of_the_depth() {
    let now = Instant::now();
    let mut p = serving(now);
    let depth = p.depth();
    assert_eq!(p.request_room(), depth);
    for i in 0..depth as u32 {
        p.requested(block(i, 0));
    }
    assert_eq!(p.request_room(), 0);
    for i in 0..(depth / 4 - 1) as u32 {
        assert!(p.block_arrived(&block(i, 0), now).unwrap());
    }
    assert_eq!(p.request_room(), 0, "less than a quarter free");
    assert!(p.block_arrived(&block(depth as u32 - 1, 0), now).unwrap());
    assert_eq!(p.request_room(), depth / 4);
}

#[test]
fn the_depth_follows_two_seconds_of_the_rate_within_its_bounds() {
    let t0 = Instant::now();
    let mut p = serving(t0);
    p.set_reqq(5000);
    assert_eq!(p.tick(t0), None);
    assert_eq!(p.depth(), MIN_DEPTH, "no data yet: the floor");
    // 100 blocks a second for a while: the rate nears 1.6 MB/s, two seconds of it.
    for s in 1..=30u32 {
        for i in 0..100 {
            let b = block(s, i * MAX_BLOCK);
            p.requested(b);
            p.block_arrived(&b, t0).unwrap();
        }
        let _ = p.tick(t0);
    }
    assert!((195..=200).contains(&p.depth()), "{}", p.depth());
    p.set_reqq(50);
    assert_eq!(p.depth(), 50, "never above the peer's reqq");
}

#[test]
fn a_peer_that_owes_blocks_for_20_s_loses_them_and_is_closed_at_its_third_stall() {
    let t0 = Instant::now();
    let mut p = serving(t0);
    let mut now = t0;
    for stall in 1..=MAX_STALLS {
        p.requested(block(stall, 0));
        assert_eq!(p.tick(now + STALL), None, "not yet");
        now += STALL + Duration::from_secs(1);
        let s = p.tick(now).expect("stalled");
        assert_eq!(s.withdrawn, vec![block(stall, 0)]);
        assert!(p.is_idle());
        assert_eq!(p.depth(), 1, "one block at a time from now on");
        let out = (stall == MAX_STALLS).then_some(Offence::Stalled);
        assert_eq!(s.offence, out);
        assert_eq!(
            p.block_arrived(&block(stall, 0), now),
            Ok(true),
            "a withdrawn block is still welcome"
        );
    }
}

#[test]
fn a_choke_voids_our_requests_without_the_fast_extension_only() {
    let now = Instant::now();
    let mut p = serving(now);
    p.requested(block(1, 0));
    assert_eq!(p.choked(), vec![block(1, 0)]);
    assert!(p.is_idle());
    assert_eq!(
        p.block_arrived(&block(1, 0), now),
        Ok(true),
        "late, not junk"
    );

    let mut f = PeerState::new(100, true, now);
    f.requested(block(1, 0));
    assert!(f.choked().is_empty());
    assert!(f.is_requested(&block(1, 0)));
    assert!(f.rejected(&block(1, 0)));
    assert!(!f.rejected(&block(1, 0)));
}

#[test]
fn a_cancelled_block_is_still_welcome() {
    let now = Instant::now();
    let mut p = serving(now);
    p.requested(block(1, 0));
    assert!(p.cancel(block(1, 0)));
    assert!(!p.cancel(block(1, 0)));
    assert_eq!(p.block_arrived(&block(1, 0), now), Ok(true));
    assert_eq!(p.received_total(), MAX_BLOCK as u64);
}

#[test]
fn blocks_never_asked_for_are_dropped_and_the_65th_is_an_offence() {
    let now = Instant::now();
    let mut p = serving(now);
    for i in 0..MAX_UNREQUESTED {
        assert_eq!(p.block_arrived(&block(i, 0), now), Ok(false));
    }
    assert_eq!(
        p.block_arrived(&block(99, 0), now),
        Err(Offence::Unrequested(65))
    );
    assert_eq!(p.received_total(), 0, "none of it counted");
    assert_eq!(
        Offence::Unrequested(65).to_string(),
        "sent 65 blocks that were never requested"
    );
}

#[test]
fn requests_are_served_refused_with_a_reject_refused_silently_then_banned() {
    let now = Instant::now();
    let mut p = PeerState::new(10, true, now);
    assert_eq!(
        p.on_request(true, true),
        Ok(Answer::Refuse { reject: true }),
        "choked"
    );
    let _ = p.set_choking(false);
    assert_eq!(p.on_request(true, true), Ok(Answer::Serve));
    for _ in 1..MAX_EXCESS_REQUESTS / 8 {
        assert_eq!(
            p.on_request(true, false),
            Ok(Answer::Refuse { reject: true })
        );
    }
    assert_eq!(
        p.on_request(true, false),
        Ok(Answer::Refuse { reject: false })
    );
    for _ in MAX_EXCESS_REQUESTS / 8 + 2..=MAX_EXCESS_REQUESTS {
        assert_eq!(
            p.on_request(true, false),
            Ok(Answer::Refuse { reject: false })
        );
    }
    assert_eq!(p.on_request(true, false), Err(Offence::ExcessRequests));
    assert!(Offence::ExcessRequests.bans());
}

#[test]
fn invalid_requests_close_after_twenty() {
    let now = Instant::now();
    let mut p = PeerState::new(10, false, now);
    for _ in 0..MAX_BAD_REQUESTS {
        assert_eq!(
            p.on_request(false, true),
            Ok(Answer::Refuse { reject: false })
        );
    }
    assert_eq!(p.on_request(false, true), Err(Offence::BadRequests));
    assert!(!Offence::BadRequests.bans());
}

#[test]
fn a_fifth_bitfield_closes() {
    let mut p = PeerState::new(10, true, Instant::now());
    for _ in 0..MAX_PIECE_SETS {
        assert_eq!(p.piece_set(), Ok(()));
    }
    assert_eq!(p.piece_set(), Err(Offence::PieceSets));
    assert_eq!(
        Offence::PieceSets.to_string(),
        "sent its pieces over and over"
    );
}

#[test]
fn extension_messages_beyond_their_rate_are_ignored_then_banned() {
    let t0 = Instant::now();
    let mut p = PeerState::new(10, true, t0);
    for _ in 0..EXTENDED_BURST as u32 {
        assert_eq!(p.extended(t0), Ok(true));
    }
    for _ in 0..MAX_IGNORED_EXTENDED {
        assert_eq!(p.extended(t0), Ok(false));
    }
    assert_eq!(p.extended(t0), Err(Offence::ExtendedFlood));
    let later = t0 + Duration::from_secs(1);
    assert_eq!(p.extended(later), Ok(true), "the rate refills");
}

#[test]
fn a_sole_sender_of_a_bad_piece_is_banned_at_once_others_at_their_third_strike() {
    let mut sole = PeerState::new(10, true, Instant::now());
    let e = sole.failed_piece(4, true).unwrap_err();
    assert_eq!(
        e.to_string(),
        "sent data for piece 4 that failed the hash check (1 strike)"
    );
    let mut shared = PeerState::new(10, true, Instant::now());
    assert_eq!(shared.failed_piece(1, false), Ok(()));
    assert_eq!(shared.failed_piece(2, false), Ok(()));
    let e = shared.failed_piece(3, false).unwrap_err();
    assert_eq!(
        e,
        Offence::BadPiece {
            index: 3,
            strikes: 3
        }
    );
    assert_eq!(
        e.to_string(),
        "sent data for piece 3 that failed the hash check (3 strikes)"
    );
    assert!(e.bans());
}

#[test]
fn the_choker_hears_how_long_an_interesting_peer_has_been_silent() {
    let t0 = Instant::now();
    let mut p = PeerState::new(10, true, t0);
    assert_eq!(p.silent_for(t0 + Duration::from_secs(9)), None);
    let _ = p.set_interested(true, t0 + Duration::from_secs(5));
    assert_eq!(p.silent_for(t0 + Duration::from_secs(9)), Some(4));
}

#[test]
fn requests_crossing_a_choke_are_rejected_but_not_held_against_the_peer() {
    let now = Instant::now();
    let mut p = PeerState::new(10, true, now);
    // A seed that serves in turns chokes and unchokes a leecher many times.
    for _ in 0..20 {
        let _ = p.set_choking(false);
        assert_eq!(p.on_request(true, true), Ok(Answer::Serve));
        let _ = p.set_choking(true);
        for _ in 0..CROSSING_REQUESTS {
            assert_eq!(
                p.on_request(true, true),
                Ok(Answer::Refuse { reject: true })
            );
        }
    }
    // Beyond what a pipeline can hold, requests to a choking peer count as excess again.
    for _ in 0..MAX_EXCESS_REQUESTS {
        assert!(p.on_request(true, true).is_ok());
    }
    assert_eq!(p.on_request(true, true), Err(Offence::ExcessRequests));
}
