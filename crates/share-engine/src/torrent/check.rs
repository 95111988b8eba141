//! Before the transfer, and after it: where a torrent's files go ([`place`]), what of them
//! is already there ([`check`]), and the resume data that lets the next check trust pieces
//! instead of reading them (`Torrent::save_resume`).
//!
//! The check runs on the blocking pool (hashing on all cores); resume data is read there and
//! written there, atomically (`share_storage::state`). See `share_storage::resume` for what
//! resume data vouches for.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use share_core::bitfield::Bitfield;
use share_core::Info;
use share_storage::{hash, resume, Layout};
use tokio::time::Instant;

use super::transfer::Torrent;
use crate::ctx::{ContentClaim, SessionCtx};
use crate::{EngineError, Stats, TorrentConfig};

/// Where a torrent's files go: beneath its download folder (or the folder it must be
/// confined to), opened by the kernel beneath a handle of it; and the torrent's claim on its
/// content root, which no other torrent of the session may hold.
pub(super) fn place(
    ctx: &SessionCtx,
    config: &TorrentConfig,
    info: &Info,
) -> Result<(Layout, ContentClaim), EngineError> {
    let shown = config.dir.join(&info.name);
    let (root_dir, prefix) = match &config.confine {
        Some(outer) => match config.dir.strip_prefix(outer) {
            Ok(p) => (outer.clone(), p.to_path_buf()),
            Err(_) => return Err(share_storage::StorageError::Escapes(config.dir.clone()).into()),
        },
        None => (config.dir.clone(), std::path::PathBuf::new()),
    };
    let create = !config.seed_only;
    let root = match ctx.roots.open(&root_dir, &ctx.links, create) {
        Ok(r) => r,
        Err(_) if config.seed_only => return Err(EngineError::NothingToSeed(shown)),
        Err(e) => return Err(e.into()),
    };
    if create && !prefix.as_os_str().is_empty() {
        root.create_dirs(&prefix)?;
    }
    let layout = Layout::for_torrent(root, &prefix, info)?;
    let (dev, ino) = layout.root.id().unwrap_or_default();
    let claim = ctx
        .contents
        .claim((dev, ino, layout.content.clone()))
        .ok_or(EngineError::SameContent(shown))?;
    Ok((layout, claim))
}

/// Hashes what is already on disk (on all cores); a missing content folder is skipped.
/// With resume data (see `share_storage::resume`), pieces of files whose size and mtime are
/// as recorded are trusted and not read. Returns the pieces that verify and whether any of
/// the content was there at all.
pub(super) async fn check(
    layout: &Layout,
    meta: &share_core::Metainfo,
    stats: &Arc<Stats>,
    resume: Option<&std::path::Path>,
    info_hash: [u8; 20],
) -> (Bitfield, bool) {
    let info = &meta.info;
    let count = info.piece_count();
    if !layout.slots.iter().any(|s| layout.root.exists(&s.path)) {
        return (Bitfield::new(count), false);
    }
    let layout = layout.clone();
    let pieces = info.pieces.clone();
    // A v2-only torrent's pieces are checked by their merkle nodes (those whose layer is
    // known), a v1 or hybrid torrent's by SHA-1.
    let v2 = (!info.v1).then(|| v2_expectations(meta));
    let check_pieces =
        move |layout: &Layout, only: Option<&[bool]>, progress: &std::sync::atomic::AtomicU64| {
            match &v2 {
                Some(e) => hash::check_v2(layout, e, only, hash::default_threads(), progress),
                None => hash::check_some(layout, &pieces, only, hash::default_threads(), progress),
            }
        };
    let st = stats.clone();
    let resume = resume.map(|p| p.to_path_buf());
    let valid = tokio::task::spawn_blocking(move || {
        let trusted = resume.and_then(|path| {
            let bytes = match share_storage::state::read_state(&path, resume::MAX_RESUME) {
                Ok(Some(b)) => b,
                Ok(None) => return None,
                Err(e) => {
                    tracing::warn!("resume data {e}: hashing everything");
                    return None;
                }
            };
            match resume::Resume::decode(&bytes, &info_hash, count, layout.slots.len()) {
                Ok(r) => Some(r.trusted(&layout, &resume::stamps(&layout))),
                Err(why) => {
                    tracing::warn!(path = %path.display(), "resume data refused ({why}): hashing everything");
                    None
                }
            }
        });
        let Some(trusted) = trusted else {
            return check_pieces(&layout, None, &st.checked);
        };
        let only: Vec<bool> = trusted.iter().map(Option::is_none).collect();
        let hashed = only.iter().filter(|&&h| h).count();
        tracing::info!(trusted = trusted.len() - hashed, hashed, "resume data used");
        let mut valid = if hashed > 0 {
            check_pieces(&layout, Some(&only), &st.checked)
        } else {
            vec![false; count as usize]
        };
        for (v, t) in valid.iter_mut().zip(&trusted) {
            if let Some(t) = t {
                *v = *t;
            }
        }
        valid
    })
    .await
    .unwrap_or_default();
    let have = Bitfield::from_bools(&valid);
    let bytes: u64 = have.ones().map(|i| info.piece_size(i) as u64).sum();
    stats.verified.store(bytes, Ordering::Relaxed);
    if valid.len() as u32 == count {
        (have, true)
    } else {
        (Bitfield::new(count), true)
    }
}

/// What each piece of a v2-only torrent must hash to, where its file's layer is known.
fn v2_expectations(meta: &share_core::Metainfo) -> Vec<Option<hash::V2Expect>> {
    let pl = meta.info.piece_length as u64;
    (0..meta.info.piece_count())
        .map(|i| {
            let p = meta.v2_piece(i)?;
            Some(hash::V2Expect {
                node: p.hash?,
                file_length: p.file_length,
                bytes: (p.file_length - p.in_file as u64 * pl).min(pl) as usize,
            })
        })
        .collect()
}

impl Torrent {
    /// Writes resume data: the disk has just been synced, so every piece the picker holds is
    /// on disk; the files are stamped now (a later write changes a stamp, and its pieces are
    /// hashed on the next start).
    pub(super) fn save_resume(&mut self) {
        let Some(path) = self.base.resume_path() else {
            return;
        };
        let layout = self.layout.clone();
        let have = self.picker.have();
        self.resume_saved = Some((Instant::now(), have.count()));
        let data = resume::Resume {
            info_hash: self.base.shared.info_hash.0,
            pieces: have.as_bytes().to_vec(),
            piece_count: have.len(),
            files: resume::stamps(&layout),
        }
        .encode();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = share_storage::state::write_state(&path, &data) {
                tracing::warn!("writing resume data: {e}");
            }
        });
    }
}
