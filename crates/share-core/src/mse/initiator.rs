//! The MSE initiator (A): knows the torrent (SKEY) it dials for, offers crypto per its policy,
//! and may carry its BitTorrent handshake as the initial payload IA.

use super::dh::KeyPair;
use super::keys::{self, Secret};
use super::pending::{scan, Scan};
use super::sealed::{Exchange, Role};
use super::{
    Ciphers, Established, Method, MseError, Policy, Secrets, DH_KEY_LEN, MAX_INITIAL_PAYLOAD,
    MAX_PAD,
};
use crate::InfoHash;

enum State {
    /// Ya and PadA are sent; waiting for the 96 bytes of Yb.
    AwaitKey,
    /// Message 3 is sent; scanning PadB for ENCRYPT(VC) (`vc` is that ciphertext).
    SyncVc { vc: [u8; 8], from: usize },
    /// After the VC: crypto_select and len(PadD).
    Select,
    /// PadD, then the handshake is over.
    PadD { len: usize, method: Method },
}

/// The initiating side of a handshake, driven through [`super::Handshake`].
pub struct Initiator {
    state: State,
    info_hash: InfoHash,
    offered: u32,
    keys: KeyPair,
    crypto_pad: Vec<u8>,
    initial_payload: Vec<u8>,
    ciphers: Option<Ciphers>,
    io: Exchange,
}

impl Initiator {
    /// Starts a handshake for `info_hash`; Ya and PadA are queued for sending at once.
    /// `initial_payload` (usually our 68-byte BitTorrent handshake) goes out with message 3.
    pub fn new(
        info_hash: InfoHash,
        policy: Policy,
        initial_payload: &[u8],
        secrets: Secrets,
    ) -> Result<Initiator, MseError> {
        let offered = policy.provide().ok_or(MseError::Disabled)?;
        if initial_payload.len() > MAX_INITIAL_PAYLOAD {
            return Err(MseError::PayloadTooLong(initial_payload.len()));
        }
        let keys = KeyPair::new(&secrets.private_key);
        let mut io = Exchange::default();
        io.output.extend_from_slice(&keys.public);
        io.output.extend_from_slice(&secrets.dh_pad);
        Ok(Initiator {
            state: State::AwaitKey,
            info_hash,
            offered,
            keys,
            crypto_pad: secrets.crypto_pad,
            initial_payload: initial_payload.to_vec(),
            ciphers: None,
            io,
        })
    }

    /// Offers exactly `bits` (tests of a remote's choice).
    #[cfg(test)]
    pub(crate) fn offering(mut self, bits: u32) -> Initiator {
        self.offered = bits;
        self
    }

    /// Queues message 3 and returns ENCRYPT(VC) as the remote will send it.
    fn send_message3(&mut self, s: &Secret) -> [u8; 8] {
        let out = &mut self.io.output;
        out.extend_from_slice(&keys::req1(s));
        out.extend_from_slice(&keys::xor(
            &keys::skey_hash(&self.info_hash),
            &keys::req3(s),
        ));
        let encrypted_from = out.len();
        out.extend_from_slice(&[0u8; 8]);
        out.extend_from_slice(&self.offered.to_be_bytes());
        // Both lengths were checked in `new` and `Secrets::new`.
        out.extend_from_slice(&(self.crypto_pad.len() as u16).to_be_bytes());
        out.extend_from_slice(&self.crypto_pad);
        out.extend_from_slice(&(self.initial_payload.len() as u16).to_be_bytes());
        out.extend_from_slice(&self.initial_payload);
        let mut c = keys::ciphers(s, &self.info_hash, true);
        c.encrypt.apply(&mut out[encrypted_from..]);
        let mut vc = [0u8; 8];
        c.decrypt.apply(&mut vc);
        self.ciphers = Some(c);
        self.initial_payload = Vec::new();
        vc
    }
}

impl Role for Initiator {
    fn exchange(&mut self) -> &mut Exchange {
        &mut self.io
    }

    fn advance(&mut self) -> Result<Option<Established>, MseError> {
        loop {
            match self.state {
                State::AwaitKey => {
                    let Some(yb) = self.io.input.take_array::<DH_KEY_LEN>() else {
                        return Ok(None);
                    };
                    let s = self.keys.shared_secret(&yb)?;
                    let vc = self.send_message3(&s);
                    self.state = State::SyncVc { vc, from: 0 };
                }
                State::SyncVc { vc, from } => {
                    match scan(self.io.input.available(), &vc, from, MAX_PAD) {
                        (Scan::Found(at), _) => {
                            self.io.input.skip(at + vc.len());
                            self.state = State::Select;
                        }
                        (Scan::NeedMore, next) => {
                            self.state = State::SyncVc { vc, from: next };
                            return Ok(None);
                        }
                        (Scan::Missing, _) => return Err(MseError::NoSyncVc),
                    }
                }
                State::Select => {
                    let Some(field) = self.io.input.take(6) else {
                        return Ok(None);
                    };
                    let c = self.ciphers.as_mut().ok_or(MseError::Finished)?;
                    c.decrypt.apply(field);
                    let selected = u32::from_be_bytes([field[0], field[1], field[2], field[3]]);
                    let len = usize::from(u16::from_be_bytes([field[4], field[5]]));
                    // Exactly one method, and one we offered.
                    let method = [Method::Plaintext, Method::Rc4]
                        .into_iter()
                        .find(|m| m.bits() == selected && selected & self.offered != 0);
                    let Some(method) = method else {
                        return Err(MseError::BadSelect {
                            selected,
                            offered: self.offered,
                        });
                    };
                    if len > MAX_PAD {
                        return Err(MseError::PadTooLong(len));
                    }
                    self.state = State::PadD { len, method };
                }
                State::PadD { len, method } => {
                    let Some(pad) = self.io.input.take(len) else {
                        return Ok(None);
                    };
                    let mut c = self.ciphers.take().ok_or(MseError::Finished)?;
                    c.decrypt.apply(pad);
                    return Ok(Some(Established::new(
                        method,
                        self.info_hash,
                        c,
                        Vec::new(),
                        &mut self.io.input,
                    )));
                }
            }
        }
    }
}
