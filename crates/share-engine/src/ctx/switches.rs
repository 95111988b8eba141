//! The session's switches that can change while it runs: peer exchange, µTP and the
//! encryption policy. Atomics, read at each use (a dial, an accepted connection, a PEX
//! round, an extension handshake) and written by `Session::set_switches`; a change holds
//! for what comes next, connections already open keep what they agreed.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use crate::transport::Policy;

#[derive(Debug)]
pub(crate) struct LiveSwitches {
    pex: AtomicBool,
    utp: AtomicBool,
    encryption: AtomicU8,
}

fn policy_code(p: Policy) -> u8 {
    match p {
        Policy::Prefer => 0,
        Policy::Require => 1,
        Policy::Disable => 2,
    }
}

impl LiveSwitches {
    pub fn new(pex: bool, utp: bool, encryption: Policy) -> LiveSwitches {
        LiveSwitches {
            pex: AtomicBool::new(pex),
            utp: AtomicBool::new(utp),
            encryption: AtomicU8::new(policy_code(encryption)),
        }
    }

    /// Peer exchange for public torrents: offered in extension handshakes, sent and read.
    pub fn pex(&self) -> bool {
        self.pex.load(Ordering::Relaxed)
    }

    /// µTP: dialed, and accepted, on the session's µTP sockets.
    pub fn utp(&self) -> bool {
        self.utp.load(Ordering::Relaxed)
    }

    pub fn encryption(&self) -> Policy {
        match self.encryption.load(Ordering::Relaxed) {
            1 => Policy::Require,
            2 => Policy::Disable,
            _ => Policy::Prefer,
        }
    }

    pub fn set(&self, pex: bool, utp: bool, encryption: Policy) {
        self.pex.store(pex, Ordering::Relaxed);
        self.utp.store(utp, Ordering::Relaxed);
        self.encryption
            .store(policy_code(encryption), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_switch_reads_back_what_was_set() {
        let s = LiveSwitches::new(true, true, Policy::Prefer);
        for p in [Policy::Require, Policy::Disable, Policy::Prefer] {
            s.set(false, true, p);
            assert_eq!((s.pex(), s.utp(), s.encryption()), (false, true, p));
        }
        s.set(true, false, Policy::Require);
        assert_eq!(
            (s.pex(), s.utp(), s.encryption()),
            (true, false, Policy::Require)
        );
    }
}
