//! Initiator and responder against each other: every policy pair, any chunking, padding at
//! both bounds, hostile remotes, and a known-answer test computed independently (Python's
//! `pow`, `hashlib.sha1` and a textbook RC4).

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

use super::*;

const IH: InfoHash = InfoHash([9; 20]);
const OTHER: InfoHash = InfoHash([10; 20]);

fn lookup(known: &'static [InfoHash]) -> impl Fn(&[u8; 20]) -> Option<InfoHash> {
    move |h| known.iter().copied().find(|ih| &skey_hash(ih) == h)
}

#[derive(Clone, Copy)]
enum Chunks {
    Whole,
    Bytes,
    Random(u64),
}

fn split(data: &[u8], how: Chunks, rng: &mut StdRng) -> Vec<Vec<u8>> {
    match how {
        Chunks::Whole => vec![data.to_vec()],
        Chunks::Bytes => data.iter().map(|&b| vec![b]).collect(),
        Chunks::Random(_) => {
            let mut out = Vec::new();
            let mut rest = data;
            while !rest.is_empty() {
                let n = rng.gen_range(1..=rest.len().min(200));
                out.push(rest[..n].to_vec());
                rest = &rest[n..];
            }
            out
        }
    }
}

/// One side of a conversation: a state machine until it is established, then a greeting it
/// sends and the raw bytes it receives after.
struct Side<M> {
    machine: M,
    outbox: Vec<u8>,
    done: Option<Established>,
    after: Vec<u8>,
    greeting: &'static [u8],
}

impl<M: Handshake> Side<M> {
    fn new(mut machine: M, greeting: &'static [u8]) -> Self {
        let outbox = machine.take_output();
        Side {
            machine,
            outbox,
            done: None,
            after: Vec::new(),
            greeting,
        }
    }

    fn receive(&mut self, chunk: &[u8]) -> Result<(), MseError> {
        if self.done.is_some() {
            self.after.extend_from_slice(chunk);
            return Ok(());
        }
        let step = self.machine.feed(chunk)?;
        self.outbox.extend(self.machine.take_output());
        if let Some(mut e) = step {
            let mut hello = self.greeting.to_vec();
            if let Some(c) = e.ciphers.as_mut() {
                c.encrypt.apply(&mut hello);
            }
            self.outbox.extend(hello);
            self.done = Some(e);
        }
        Ok(())
    }

    /// Everything received after the handshake, decrypted.
    fn received(&mut self) -> Vec<u8> {
        let e = self.done.as_mut().unwrap();
        let mut after = std::mem::take(&mut self.after);
        if let Some(c) = e.ciphers.as_mut() {
            c.decrypt.apply(&mut after);
        }
        let mut all = e.rest.clone();
        all.extend(after);
        all
    }
}

#[derive(Debug, PartialEq)]
enum Failed {
    Initiator(MseError),
    Responder(MseError),
}

/// Runs a handshake to the end; returns both sides' results and what each received after it.
fn converse(
    a: Initiator,
    b: Responder<impl Fn(&[u8; 20]) -> Option<InfoHash>>,
    how: Chunks,
) -> Result<(Established, Vec<u8>, Established, Vec<u8>), Failed> {
    let mut rng = StdRng::seed_from_u64(match how {
        Chunks::Random(s) => s,
        _ => 0,
    });
    let mut a = Side::new(a, b"hello from A");
    let mut b = Side::new(b, b"hello from B");
    for _ in 0..20 {
        for chunk in split(&std::mem::take(&mut a.outbox), how, &mut rng) {
            b.receive(&chunk).map_err(Failed::Responder)?;
        }
        for chunk in split(&std::mem::take(&mut b.outbox), how, &mut rng) {
            a.receive(&chunk).map_err(Failed::Initiator)?;
        }
        if a.done.is_some() && b.done.is_some() && a.outbox.is_empty() && b.outbox.is_empty() {
            let (ra, rb) = (a.received(), b.received());
            return Ok((a.done.unwrap(), ra, b.done.unwrap(), rb));
        }
    }
    panic!("the handshake did not finish");
}

fn secrets(seed: u64) -> Secrets {
    Secrets::random(&mut StdRng::seed_from_u64(seed))
}

fn padded(seed: u64, dh: usize, crypto: usize) -> Secrets {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut key = [0u8; 20];
    rng.fill_bytes(&mut key);
    let mut pad = |n| {
        let mut p = vec![0u8; n];
        rng.fill_bytes(&mut p);
        p
    };
    let (d, c) = (pad(dh), pad(crypto));
    Secrets::new(key, d, c).unwrap()
}

fn initiator(policy: Policy, s: Secrets) -> Initiator {
    Initiator::new(IH, policy, b"our BitTorrent handshake", s).unwrap()
}

fn responder(policy: Policy, s: Secrets) -> Responder<impl Fn(&[u8; 20]) -> Option<InfoHash>> {
    Responder::new(lookup(&[OTHER, IH]), policy, s).unwrap()
}

fn assert_talks(
    a: Initiator,
    b: Responder<impl Fn(&[u8; 20]) -> Option<InfoHash>>,
    how: Chunks,
    method: Method,
) {
    let (ea, ra, eb, rb) = converse(a, b, how).unwrap();
    assert_eq!(ea.method, method);
    assert_eq!(eb.method, method);
    assert_eq!(eb.info_hash, IH);
    assert_eq!(eb.initial_payload, b"our BitTorrent handshake");
    assert!(ea.initial_payload.is_empty());
    assert_eq!(ra, b"hello from B");
    assert_eq!(rb, b"hello from A");
}

#[test]
fn every_policy_pair_that_can_agree_selects_rc4_unless_both_allow_plaintext() {
    for pa in [Policy::Prefer, Policy::Require] {
        for pb in [Policy::Prefer, Policy::Require] {
            let method = if pa == Policy::Prefer && pb == Policy::Prefer {
                Method::Plaintext
            } else {
                Method::Rc4
            };
            assert_talks(
                initiator(pa, secrets(1)),
                responder(pb, secrets(2)),
                Chunks::Whole,
                method,
            );
        }
    }
}

#[test]
fn any_chunking_gives_the_same_result() {
    for how in [
        Chunks::Bytes,
        Chunks::Random(3),
        Chunks::Random(4),
        Chunks::Random(5),
    ] {
        assert_talks(
            initiator(Policy::Prefer, padded(7, 300, 40)),
            responder(Policy::Require, padded(8, 200, 17)),
            how,
            Method::Rc4,
        );
    }
}

#[test]
fn pads_of_zero_and_512_bytes() {
    for (dh, crypto) in [(0, 0), (512, 512), (0, 512), (512, 0)] {
        for how in [Chunks::Whole, Chunks::Bytes] {
            assert_talks(
                initiator(Policy::Require, padded(11, dh, crypto)),
                responder(Policy::Prefer, padded(12, dh, crypto)),
                how,
                Method::Rc4,
            );
        }
    }
}

#[test]
fn a_plaintext_only_offer_gets_plaintext_from_prefer_and_a_refusal_from_require() {
    let a = initiator(Policy::Prefer, secrets(1)).offering(CRYPTO_PLAINTEXT);
    let (ea, ra, eb, rb) =
        converse(a, responder(Policy::Prefer, secrets(2)), Chunks::Bytes).unwrap();
    assert_eq!(
        (ea.method, eb.method),
        (Method::Plaintext, Method::Plaintext)
    );
    assert!(ea.ciphers.is_none() && eb.ciphers.is_none());
    assert_eq!(eb.initial_payload, b"our BitTorrent handshake");
    assert_eq!(
        (ra.as_slice(), rb.as_slice()),
        (&b"hello from B"[..], &b"hello from A"[..])
    );

    let a = initiator(Policy::Prefer, secrets(1)).offering(CRYPTO_PLAINTEXT);
    let err = converse(a, responder(Policy::Require, secrets(2)), Chunks::Whole).unwrap_err();
    assert_eq!(
        err,
        Failed::Responder(MseError::NoCommonMethod {
            provided: 1,
            policy: Policy::Require
        })
    );
}

#[test]
fn the_initiator_refuses_a_selection_it_did_not_offer() {
    for (policy, select) in [
        (Policy::Require, 0x01),
        (Policy::Prefer, 0x03),
        (Policy::Prefer, 0),
    ] {
        let b = responder(Policy::Prefer, secrets(2)).selecting(select);
        let err = converse(initiator(policy, secrets(1)), b, Chunks::Whole).unwrap_err();
        let offered = policy.provide().unwrap();
        assert_eq!(
            err,
            Failed::Initiator(MseError::BadSelect {
                selected: select,
                offered
            })
        );
    }
}

#[test]
fn disable_speaks_no_mse() {
    let e = Initiator::new(IH, Policy::Disable, b"", secrets(1)).err();
    assert_eq!(e, Some(MseError::Disabled));
    let e = Responder::new(lookup(&[IH]), Policy::Disable, secrets(1)).err();
    assert_eq!(e, Some(MseError::Disabled));
}

#[test]
fn an_unknown_torrent_is_refused() {
    let a = Initiator::new(InfoHash([77; 20]), Policy::Prefer, b"", secrets(1)).unwrap();
    let err = converse(a, responder(Policy::Prefer, secrets(2)), Chunks::Random(9)).unwrap_err();
    assert_eq!(err, Failed::Responder(MseError::UnknownTorrent));
}

/// A valid Ya (or Yb) followed by garbage: the scan gives up after 512 bytes of padding.
#[test]
fn garbage_after_the_dh_key_fails_within_the_pad_bound() {
    let ya = Initiator::new(IH, Policy::Prefer, b"", secrets(1))
        .unwrap()
        .take_output()[..DH_KEY_LEN]
        .to_vec();
    let mut b = responder(Policy::Prefer, secrets(2));
    let mut rng = StdRng::seed_from_u64(5);
    let mut fed = 0;
    let mut input = ya;
    input.extend((0..10_000).map(|_| rng.gen::<u8>()));
    let err = loop {
        match b.feed(&input[fed..fed + 1]) {
            Ok(None) => fed += 1,
            Ok(Some(_)) => panic!("garbage established a connection"),
            Err(e) => break e,
        }
    };
    assert_eq!(err, MseError::NoSyncHash);
    // The last byte it could wait for: HASH('req1') starting after 512 bytes of PadA.
    assert_eq!(fed + 1, DH_KEY_LEN + MAX_PAD + 20);
    assert_eq!(b.feed(b"more").err(), Some(MseError::Finished));

    let mut a = initiator(Policy::Prefer, secrets(1));
    let yb = Responder::new(lookup(&[IH]), Policy::Prefer, secrets(2)).unwrap();
    let mut yb = yb;
    yb.feed(&a.take_output()[..DH_KEY_LEN]).unwrap();
    let mut input = yb.take_output()[..DH_KEY_LEN].to_vec();
    input.extend((0..10_000).map(|_| rng.gen::<u8>()));
    let err = a.feed(&input).unwrap_err();
    assert_eq!(err, MseError::NoSyncVc);
}

#[test]
fn oversized_padding_is_refused() {
    // A responder that claims a 513-byte PadD: forge its message 4 from the known keys.
    let mut a = Initiator::new(IH, Policy::Prefer, b"", padded(1, 0, 0)).unwrap();
    let mut b = Responder::new(lookup(&[IH]), Policy::Prefer, padded(2, 0, 0)).unwrap();
    b.feed(&a.take_output()).unwrap();
    let yb = b.take_output();
    a.feed(&yb).unwrap();
    let m3 = a.take_output();
    b.feed(&m3).unwrap();
    let mut m4 = b.take_output();
    // m4 = ENCRYPT(VC, select, len(PadD)); flip len(PadD) from 0 to 513 through the XOR.
    m4[12] ^= 0x02;
    m4[13] ^= 0x01;
    assert_eq!(a.feed(&m4).unwrap_err(), MseError::PadTooLong(513));
}

#[test]
fn a_wrong_verification_constant_is_refused() {
    let mut a = Initiator::new(IH, Policy::Prefer, b"", padded(1, 0, 0)).unwrap();
    let mut b = Responder::new(lookup(&[IH]), Policy::Prefer, padded(2, 0, 0)).unwrap();
    b.feed(&a.take_output()).unwrap();
    a.feed(&b.take_output()).unwrap();
    let mut m3 = a.take_output();
    m3[40] ^= 1; // first byte of ENCRYPT(VC)
    assert_eq!(b.feed(&m3).unwrap_err(), MseError::BadVerificationConstant);
}

#[test]
fn data_in_the_same_read_as_the_handshake_end_is_kept() {
    // B's reply and its first encrypted message arrive in one read, and A's likewise.
    let mut a = initiator(Policy::Require, padded(1, 10, 0));
    let mut b = responder(Policy::Require, padded(2, 20, 0));
    b.feed(&a.take_output()).unwrap();
    a.feed(&b.take_output()).unwrap();
    let m3 = a.take_output();
    // All of message 3 but its last byte: B answers with message 4 but is not done.
    assert!(b.feed(&m3[..m3.len() - 1]).unwrap().is_none());
    let m4 = b.take_output();
    let mut ea = a.feed(&m4).unwrap().unwrap();
    let mut ping = b"ping".to_vec();
    ea.ciphers.as_mut().unwrap().encrypt.apply(&mut ping);
    let mut last = vec![m3[m3.len() - 1]];
    last.extend(ping);
    let eb = b.feed(&last).unwrap().unwrap();
    assert_eq!(eb.rest, b"ping");
    assert_eq!(eb.initial_payload, b"our BitTorrent handshake");
}

#[test]
fn known_answer() {
    let hex = |s: &str| hex::decode(s).unwrap();
    let ya = hex("3476dc8d123697fcc69e9121618a08514ffa536506df209ce956ad3cf819f76f3fcebc46f4e8be364ec8f1445b9dbf8a9528ca7bfbc89ad13f28137640a2cfd1055d55d5cc6676d18b410e086631309e95fa7b0dae2b8379186b17ad3472c755");
    let yb = hex("0816092aa9b6a0bfdd7b86a6bac830dea6c71c4008a1fb53b69dc1c4acd99f8f3cf79d9d9ac411e18b59c0b58146912e51d0e508d20064b8633a85e20061823d9284b907b2dd0612884e61e9ebb8c9b462eda2f227491a6082bc58d6a1315c39");
    let m3 = hex("32dd7e3b16e8d7a1b444ea3f4167e202514f9feb7de15641025aa5da94322b22d792033e81a34c7f9529bd86a508fa4a07dcfadb27e34363d7a8");
    let m4 = hex("bdb873b37b8af573903872ad791f");
    let ih = InfoHash(core::array::from_fn(|i| i as u8));

    let s = |k| Secrets::new([k; 20], vec![], vec![]).unwrap();
    let mut a = Initiator::new(ih, Policy::Prefer, b"hi", s(0x11)).unwrap();
    assert_eq!(a.take_output(), ya);
    assert!(a.feed(&yb).unwrap().is_none());
    assert_eq!(a.take_output(), m3);

    let mut b = Responder::new(
        move |h: &[u8; 20]| (h == &skey_hash(&ih)).then_some(ih),
        Policy::Require,
        s(0x22),
    )
    .unwrap();
    let mut input = ya.clone();
    input.extend(&m3);
    let mut eb = b.feed(&input).unwrap().unwrap();
    let mut out = yb.clone();
    out.extend(&m4);
    assert_eq!(b.take_output(), out);
    assert_eq!(eb.initial_payload, b"hi");

    let mut ea = a.feed(&m4).unwrap().unwrap();
    let mut ping = b"ping".to_vec();
    ea.ciphers.as_mut().unwrap().encrypt.apply(&mut ping);
    assert_eq!(ping, hex("75b118b0"));
    let mut pong = b"pong".to_vec();
    eb.ciphers.as_mut().unwrap().encrypt.apply(&mut pong);
    assert_eq!(pong, hex("6839b5fd"));
}

#[test]
fn feeding_nothing_changes_nothing() {
    let mut b = responder(Policy::Prefer, secrets(2));
    assert!(b.feed(&[]).unwrap().is_none());
    assert!(b.take_output().is_empty());
}
