//! Which pieces a torrent wants, and which go first: the files' choices (wanted or not,
//! low, normal or high, from `TorrentConfig`, `TorrentCommand::SetFiles` or a
//! `FileFilter`) turned into a priority per piece for the picker, and the pieces readers
//! wait for (`TorrentCommand::Want`) set as deadlines ahead of everything else.
//!
//! File indexes here count the non-padding files (as the user and the RPC see them); the
//! storage layout counts every file, padding included ([`unwanted_slots`] maps one to the
//! other).

use share_core::picker::PeerKey;
use share_core::Info;
use tokio::sync::oneshot;

use super::transfer::Torrent;
use crate::{EngineError, Notice, TorrentConfig};

/// Readers waiting for pieces at once, at most; more are refused (their reply dropped).
const MAX_WAITERS: usize = 256;

/// Chooses the wanted files with the config's filter (`share fetch --only/--exclude`), once
/// the file list is known, when no file was chosen otherwise. A filter that leaves no file
/// is an error.
pub(super) fn apply_file_filter(
    config: &mut TorrentConfig,
    info: &Info,
) -> Result<(), EngineError> {
    if config.wanted.is_empty() {
        if let Some(f) = &config.file_filter {
            let wanted = f.choose(info);
            if !wanted.iter().any(|&w| w) {
                return Err(EngineError::NoFileChosen(info.name.clone()));
            }
            config.wanted = wanted;
        }
    }
    Ok(())
}

/// Each piece's priority for the picker, from the files' choices (indexes among the
/// non-padding files): the highest of the wanted files it holds bytes of, or not wanted.
pub(super) fn piece_priorities(info: &Info, wanted: &[bool], priorities: &[i8]) -> Vec<u8> {
    use share_core::picker::{NORMAL, SKIP};
    let count = info.piece_count() as usize;
    if wanted.iter().all(|&w| w) && priorities.iter().all(|&p| p == 0) {
        return vec![NORMAL; count];
    }
    let pl = info.piece_length as u64;
    let mut out = vec![SKIP; count];
    for (i, f) in info.files.iter().filter(|f| !f.padding).enumerate() {
        if f.length == 0 || !wanted.get(i).copied().unwrap_or(true) {
            continue;
        }
        let p = match priorities.get(i).copied().unwrap_or(0) {
            x if x < 0 => 1,
            0 => NORMAL,
            _ => 3,
        };
        let (first, last) = (f.offset / pl, (f.offset + f.length - 1) / pl);
        for slot in &mut out[first as usize..=(last as usize).min(count - 1)] {
            *slot = (*slot).max(p);
        }
    }
    out
}

/// Layout slots (all files, padding included) of files that are not wanted.
pub(super) fn unwanted_slots(info: &Info, wanted: &[bool]) -> Vec<bool> {
    let mut n = 0;
    info.files
        .iter()
        .map(|f| {
            if f.padding {
                return false;
            }
            n += 1;
            !wanted.get(n - 1).copied().unwrap_or(true)
        })
        .collect()
}

impl Torrent {
    /// New file choices: the picker's priorities change, and with them what is done, whom
    /// we are interested in, and what we ask for.
    pub(super) fn set_files(&mut self, wanted: Vec<bool>, priorities: Vec<i8>) {
        self.base.config.wanted = wanted;
        self.base.config.priorities = priorities;
        let p = piece_priorities(
            &self.info,
            &self.base.config.wanted,
            &self.base.config.priorities,
        );
        let was_done = self.picker.is_done();
        self.picker.set_priorities(p);
        let done = self.picker.is_done();
        self.base.set_complete(done);
        if done && !was_done {
            self.base.notice(Notice::Complete);
        }
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for k in keys {
            self.update_interest(k);
            self.fill(k);
        }
        if !done {
            self.dial_known();
        }
    }

    /// A reader waits for `pieces`: answered at once if they are all here, else once they
    /// are (and they go first meanwhile).
    pub(super) fn want(&mut self, pieces: std::ops::Range<u32>, reply: oneshot::Sender<()>) {
        let end = pieces.end.min(self.info.piece_count());
        let pieces = pieces.start.min(end)..end;
        if pieces.clone().all(|i| self.picker.have().get(i)) {
            let _ = reply.send(());
        } else if self.waiters.len() < MAX_WAITERS {
            self.waiters.push((pieces, reply));
            self.update_deadlines();
        }
    }

    /// Readers whose pieces are all here now are answered; the pieces the others wait for
    /// go first in the picker, oldest reader first.
    pub(super) fn update_deadlines(&mut self) {
        let have = self.picker.have();
        let mut i = 0;
        while i < self.waiters.len() {
            let (range, reply) = &self.waiters[i];
            if reply.is_closed() || range.clone().all(|p| have.get(p)) {
                let (_, reply) = self.waiters.remove(i);
                let _ = reply.send(());
            } else {
                i += 1;
            }
        }
        let mut urgent = Vec::new();
        for (range, _) in &self.waiters {
            for p in range.clone() {
                if !have.get(p) && !urgent.contains(&p) && urgent.len() < 4096 {
                    urgent.push(p);
                }
            }
        }
        self.picker.set_deadlines(urgent);
    }
}
