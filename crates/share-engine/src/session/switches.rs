//! What a running session can switch on and off (the daemon's `session-set`): peer
//! exchange, local service discovery, µTP and the encryption policy. A change is checked
//! whole before any of it is made, and holds from the next connection, PEX round or LSD
//! announce on. The DHT and the listening port are bound at start and stay as they are.

use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::blocks::Blocks;
use crate::egress::Egress;
use crate::routes::Routes;
use crate::transport::Policy;

/// The switches, as they are or as they should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Switches {
    pub pex: bool,
    pub lsd: bool,
    pub utp: bool,
    pub encryption: Policy,
}

/// Why a change of switches is refused (nothing of it is made).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SwitchError {
    #[error("the session has no µTP socket (it was started with --transports tcp)")]
    NoUtpSocket,
    #[error("µTP is the session's only transport (--transports utp)")]
    UtpOnly,
    #[error(
        "local service discovery multicasts on the network, and this session promised \
         loopback only (SHARE_LOOPBACK_ONLY=1)"
    )]
    LsdOffLoopback,
    #[error("local service discovery multicasts around the proxy (--proxy)")]
    LsdUnderProxy,
}

/// Local service discovery's task, started and stopped at will.
pub(super) struct Lsd {
    running: Mutex<Option<CancellationToken>>,
    port: u16,
    routes: watch::Receiver<Routes>,
    egress: Arc<Egress>,
    blocks: Blocks,
    shutdown: CancellationToken,
}

impl Lsd {
    pub fn new(
        port: u16,
        routes: watch::Receiver<Routes>,
        egress: Arc<Egress>,
        blocks: Blocks,
        shutdown: CancellationToken,
    ) -> Lsd {
        Lsd {
            running: Mutex::new(None),
            port,
            routes,
            egress,
            blocks,
            shutdown,
        }
    }

    pub fn is_on(&self) -> bool {
        self.lock().is_some()
    }

    /// Starts or stops the task (nothing if it already is as asked).
    pub fn set(&self, on: bool) {
        let mut running = self.lock();
        match (on, running.is_some()) {
            (true, false) => {
                let token = self.shutdown.child_token();
                tokio::spawn(crate::lsd::run(
                    self.port,
                    self.routes.clone(),
                    self.egress.clone(),
                    self.blocks.clone(),
                    token.clone(),
                ));
                *running = Some(token);
            }
            (false, true) => {
                if let Some(t) = running.take() {
                    t.cancel();
                }
            }
            _ => {}
        }
    }

    // A plain mutex: held to swap a token, never across an await.
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<CancellationToken>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Whether `to` can be had in a session with (or without) µTP sockets, TCP, and the
/// loopback-only promise.
pub(super) fn check(
    to: &Switches,
    has_utp_socket: bool,
    tcp: bool,
    loopback_only: bool,
    proxied: bool,
) -> Result<(), SwitchError> {
    if to.utp && !has_utp_socket {
        return Err(SwitchError::NoUtpSocket);
    }
    if !to.utp && !tcp {
        return Err(SwitchError::UtpOnly);
    }
    if to.lsd && loopback_only {
        return Err(SwitchError::LsdOffLoopback);
    }
    if to.lsd && proxied {
        return Err(SwitchError::LsdUnderProxy);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sw(pex: bool, lsd: bool, utp: bool) -> Switches {
        Switches {
            pex,
            lsd,
            utp,
            encryption: Policy::Prefer,
        }
    }

    #[test]
    fn only_what_the_session_can_have_is_taken() {
        assert_eq!(
            check(&sw(false, false, true), true, true, true, false),
            Ok(())
        );
        assert_eq!(
            check(&sw(true, false, false), false, true, false, false),
            Ok(())
        );
        assert_eq!(
            check(&sw(true, false, true), false, true, false, false),
            Err(SwitchError::NoUtpSocket)
        );
        assert_eq!(
            check(&sw(true, false, false), true, false, false, false),
            Err(SwitchError::UtpOnly)
        );
        assert_eq!(
            check(&sw(true, true, true), true, true, true, false),
            Err(SwitchError::LsdOffLoopback)
        );
        assert_eq!(
            check(&sw(true, true, true), true, true, false, false),
            Ok(())
        );
        assert_eq!(
            check(&sw(true, true, true), true, true, false, true),
            Err(SwitchError::LsdUnderProxy)
        );
    }
}
