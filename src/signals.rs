//! SIGINT and SIGTERM, caught from the first moment of a command's runtime: the handlers are
//! registered before the listening socket is bound, so a signal that comes right after
//! `listening on` is never missed (nor kills the process before its handler exists).

use anyhow::{Context, Result};
use tokio::signal::unix::{signal, Signal, SignalKind};

pub struct Stop {
    int: Signal,
    term: Signal,
}

impl Stop {
    /// Registers the handlers (inside a tokio runtime).
    pub fn install() -> Result<Stop> {
        Ok(Stop {
            int: signal(SignalKind::interrupt()).context("catching SIGINT")?,
            term: signal(SignalKind::terminate()).context("catching SIGTERM")?,
        })
    }

    /// Waits for either signal.
    pub async fn recv(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
    }
}
