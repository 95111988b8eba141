//! The MSE responder (B): does not know the torrent up front. It learns it from the obfuscated
//! stream identifier HASH('req2', SKEY) through a lookup the session gives (one entry per
//! torrent, see [`super::skey_hash`]), then selects crypto per its policy.

use super::dh::KeyPair;
use super::keys::{self, Secret};
use super::pending::{scan, Scan};
use super::sealed::{Exchange, Role};
use super::{Ciphers, Established, Method, MseError, Policy, Secrets, DH_KEY_LEN, MAX_PAD};
use crate::InfoHash;

enum State {
    /// Waiting for the 96 bytes of Ya.
    AwaitKey,
    /// Yb and PadB are sent; scanning PadA for HASH('req1', S).
    SyncHash {
        secret: Box<Secret>,
        marker: [u8; 20],
        from: usize,
    },
    /// HASH('req2', SKEY) xor HASH('req3', S).
    Skey {
        secret: Box<Secret>,
    },
    /// ENCRYPT(VC, crypto_provide, len(PadC)).
    Provide,
    /// ENCRYPT(PadC, len(IA)).
    PadC {
        len: usize,
        method: Method,
    },
    /// ENCRYPT(IA), then the handshake is over.
    Payload {
        len: usize,
        method: Method,
    },
    Over,
}

/// The responding side of a handshake, driven through [`super::Handshake`]; `L` maps
/// HASH('req2', SKEY) to a torrent we have.
pub struct Responder<L> {
    state: State,
    lookup: L,
    policy: Policy,
    /// Selects these bits whatever is offered (tests of the initiator's checks).
    #[cfg(test)]
    forced_select: Option<u32>,
    keys: KeyPair,
    secrets: Secrets,
    info_hash: Option<InfoHash>,
    ciphers: Option<Ciphers>,
    io: Exchange,
}

impl<L: Fn(&[u8; 20]) -> Option<InfoHash>> Responder<L> {
    pub fn new(lookup: L, policy: Policy, secrets: Secrets) -> Result<Responder<L>, MseError> {
        if policy == Policy::Disable {
            return Err(MseError::Disabled);
        }
        Ok(Responder {
            state: State::AwaitKey,
            lookup,
            policy,
            #[cfg(test)]
            forced_select: None,
            keys: KeyPair::new(&secrets.private_key),
            secrets,
            info_hash: None,
            ciphers: None,
            io: Exchange::default(),
        })
    }

    #[cfg(test)]
    pub(crate) fn selecting(mut self, bits: u32) -> Responder<L> {
        self.forced_select = Some(bits);
        self
    }

    /// Queues ENCRYPT(VC, crypto_select, len(PadD), PadD).
    fn send_message4(&mut self, method: Method) {
        let from = self.io.output.len();
        let out = &mut self.io.output;
        out.extend_from_slice(&[0u8; 8]);
        let bits = method.bits();
        #[cfg(test)]
        let bits = self.forced_select.unwrap_or(bits);
        out.extend_from_slice(&bits.to_be_bytes());
        // Checked by `Secrets::new`: at most 512.
        out.extend_from_slice(&(self.secrets.crypto_pad.len() as u16).to_be_bytes());
        out.extend_from_slice(&self.secrets.crypto_pad);
        if let Some(c) = self.ciphers.as_mut() {
            c.encrypt.apply(&mut out[from..]);
        }
    }
}

impl<L: Fn(&[u8; 20]) -> Option<InfoHash>> Role for Responder<L> {
    fn exchange(&mut self) -> &mut Exchange {
        &mut self.io
    }

    fn advance(&mut self) -> Result<Option<Established>, MseError> {
        loop {
            let state = std::mem::replace(&mut self.state, State::Over);
            self.state = match state {
                State::AwaitKey => {
                    let Some(ya) = self.io.input.take_array::<DH_KEY_LEN>() else {
                        self.state = State::AwaitKey;
                        return Ok(None);
                    };
                    let secret = Box::new(self.keys.shared_secret(&ya)?);
                    self.io.output.extend_from_slice(&self.keys.public);
                    self.io.output.extend_from_slice(&self.secrets.dh_pad);
                    State::SyncHash {
                        marker: keys::req1(&secret),
                        secret,
                        from: 0,
                    }
                }
                State::SyncHash {
                    secret,
                    marker,
                    from,
                } => match scan(self.io.input.available(), &marker, from, MAX_PAD) {
                    (Scan::Found(at), _) => {
                        self.io.input.skip(at + marker.len());
                        State::Skey { secret }
                    }
                    (Scan::NeedMore, next) => {
                        self.state = State::SyncHash {
                            secret,
                            marker,
                            from: next,
                        };
                        return Ok(None);
                    }
                    (Scan::Missing, _) => return Err(MseError::NoSyncHash),
                },
                State::Skey { secret } => {
                    let Some(masked) = self.io.input.take_array::<20>() else {
                        self.state = State::Skey { secret };
                        return Ok(None);
                    };
                    let wanted = keys::xor(&masked, &keys::req3(&secret));
                    let info_hash = (self.lookup)(&wanted).ok_or(MseError::UnknownTorrent)?;
                    self.info_hash = Some(info_hash);
                    self.ciphers = Some(keys::ciphers(&secret, &info_hash, false));
                    State::Provide
                }
                State::Provide => {
                    let Some(field) = self.io.input.take(14) else {
                        self.state = State::Provide;
                        return Ok(None);
                    };
                    let c = self.ciphers.as_mut().ok_or(MseError::Finished)?;
                    c.decrypt.apply(field);
                    if field[..8] != [0u8; 8] {
                        return Err(MseError::BadVerificationConstant);
                    }
                    let provide = u32::from_be_bytes([field[8], field[9], field[10], field[11]]);
                    let len = usize::from(u16::from_be_bytes([field[12], field[13]]));
                    if len > MAX_PAD {
                        return Err(MseError::PadTooLong(len));
                    }
                    let method = self.policy.select(provide)?;
                    self.send_message4(method);
                    State::PadC { len, method }
                }
                State::PadC { len, method } => {
                    let Some(field) = self.io.input.take(len + 2) else {
                        self.state = State::PadC { len, method };
                        return Ok(None);
                    };
                    let c = self.ciphers.as_mut().ok_or(MseError::Finished)?;
                    c.decrypt.apply(field);
                    // u16: IA can never exceed the spec's 65535 bytes.
                    let len = usize::from(u16::from_be_bytes([field[len], field[len + 1]]));
                    State::Payload { len, method }
                }
                State::Payload { len, method } => {
                    let Some(ia) = self.io.input.take(len) else {
                        self.state = State::Payload { len, method };
                        return Ok(None);
                    };
                    let mut c = self.ciphers.take().ok_or(MseError::Finished)?;
                    let info_hash = self.info_hash.ok_or(MseError::Finished)?;
                    c.decrypt.apply(ia);
                    let ia = ia.to_vec();
                    return Ok(Some(Established::new(
                        method,
                        info_hash,
                        c,
                        ia,
                        &mut self.io.input,
                    )));
                }
                State::Over => return Err(MseError::Finished),
            };
        }
    }
}
