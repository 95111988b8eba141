//! Resume data: which pieces were verified, and the size and modification time of each file
//! when that was so. On the next start, a piece whose files all still have the size and
//! mtime recorded is trusted without being read; a piece touching a file that changed (or
//! is missing, or was never recorded) is hashed again. The file is written atomically (see
//! [`crate::state`]) and ends with a SHA-1 of its content: a damaged or truncated one is
//! refused, and then everything is hashed, never trusted.
//!
//! The order that makes this safe: the data is synced first, then the files are stamped,
//! then the pieces written before the sync are recorded. A write after the stamp changes the
//! file's mtime, so its pieces are hashed on the next start.

use std::path::Path;

use sha1::{Digest, Sha1};

use crate::layout::Layout;

const MAGIC: &[u8; 14] = b"share-resume1\n";
/// Far above any real torrent's resume data (a million pieces and files).
pub const MAX_RESUME: u64 = 64 << 20;

/// A file's size and modification time (seconds, nanoseconds); `None` for a file that is
/// missing, padding, or a symlink.
pub type Stamp = Option<(u64, i64, u32)>;

/// Stamps every file of `layout` as it is now.
pub fn stamps(layout: &Layout) -> Vec<Stamp> {
    layout
        .slots
        .iter()
        .map(|s| {
            if s.padding || s.symlink.is_some() {
                return None;
            }
            let m = layout.root.stat(&s.path).ok()??;
            m.is_file.then_some((m.len, m.mtime, m.mtime_nsec))
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    pub info_hash: [u8; 20],
    /// Verified pieces, a BEP 3 bitfield.
    pub pieces: Vec<u8>,
    pub piece_count: u32,
    pub files: Vec<Stamp>,
}

impl Resume {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&self.info_hash);
        out.extend_from_slice(&self.piece_count.to_be_bytes());
        out.extend_from_slice(&self.pieces);
        out.extend_from_slice(&(self.files.len() as u32).to_be_bytes());
        for f in &self.files {
            let (len, sec, nsec) = f.unwrap_or((u64::MAX, 0, 0));
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&sec.to_be_bytes());
            out.extend_from_slice(&nsec.to_be_bytes());
        }
        let sum = Sha1::digest(&out);
        out.extend_from_slice(&sum);
        out
    }

    /// Reads resume data, checking its checksum and that it is about this torrent.
    pub fn decode(
        bytes: &[u8],
        info_hash: &[u8; 20],
        piece_count: u32,
        file_count: usize,
    ) -> Result<Resume, &'static str> {
        if bytes.len() < MAGIC.len() + 20 + 20 || !bytes.starts_with(MAGIC) {
            return Err("not share resume data");
        }
        let (body, sum) = bytes.split_at(bytes.len() - 20);
        if Sha1::digest(body).as_slice() != sum {
            return Err("its checksum does not match (damaged or truncated)");
        }
        let mut r = &body[MAGIC.len()..];
        let mut take = |n: usize| -> Result<&[u8], &'static str> {
            if r.len() < n {
                return Err("truncated");
            }
            let (a, b) = r.split_at(n);
            r = b;
            Ok(a)
        };
        let hash: [u8; 20] = take(20)?.try_into().expect("20 bytes");
        if &hash != info_hash {
            return Err("it is about another torrent");
        }
        let count = u32::from_be_bytes(take(4)?.try_into().expect("4 bytes"));
        if count != piece_count {
            return Err("its piece count differs");
        }
        let pieces = take(count.div_ceil(8) as usize)?.to_vec();
        let files = u32::from_be_bytes(take(4)?.try_into().expect("4 bytes")) as usize;
        if files != file_count {
            return Err("its file count differs");
        }
        let mut stamps = Vec::with_capacity(files);
        for _ in 0..files {
            let len = u64::from_be_bytes(take(8)?.try_into().expect("8 bytes"));
            let sec = i64::from_be_bytes(take(8)?.try_into().expect("8 bytes"));
            let nsec = u32::from_be_bytes(take(4)?.try_into().expect("4 bytes"));
            stamps.push((len != u64::MAX).then_some((len, sec, nsec)));
        }
        if !take(0)?.is_empty() || !r.is_empty() {
            return Err("trailing bytes");
        }
        Ok(Resume {
            info_hash: hash,
            pieces,
            piece_count: count,
            files: stamps,
        })
    }

    /// For each piece: `Some(true/false)` when the record can be trusted (its files are
    /// unchanged), `None` when it must be hashed.
    pub fn trusted(&self, layout: &Layout, now: &[Stamp]) -> Vec<Option<bool>> {
        let same: Vec<bool> = layout
            .slots
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s.padding
                    || s.symlink.is_some()
                    || (now.get(i).copied().flatten().is_some() && now.get(i) == self.files.get(i))
            })
            .collect();
        let pl = layout.piece_length as u64;
        let mut out = vec![Some(false); self.piece_count as usize];
        for (i, s) in layout.slots.iter().enumerate() {
            if same[i] || s.length == 0 {
                continue;
            }
            let first = s.offset / pl;
            let last = (s.offset + s.length - 1) / pl;
            for p in first..=last.min(self.piece_count as u64 - 1) {
                out[p as usize] = None;
            }
        }
        for (p, o) in out.iter_mut().enumerate() {
            if let Some(v) = o {
                *v = self.pieces[p / 8] & (0x80 >> (p % 8)) != 0;
            }
        }
        out
    }
}

/// Where a torrent's resume data lives in a state folder.
pub fn path(state_dir: &Path, info_hash: &[u8; 20]) -> std::path::PathBuf {
    let hex: String = info_hash.iter().map(|b| format!("{b:02x}")).collect();
    state_dir.join("resume").join(format!("{hex}.resume"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage_is_refused() {
        let r = Resume {
            info_hash: [7; 20],
            pieces: vec![0b1010_0000],
            piece_count: 3,
            files: vec![Some((10, 5, 6)), None],
        };
        let bytes = r.encode();
        assert_eq!(Resume::decode(&bytes, &[7; 20], 3, 2).unwrap(), r);
        assert!(Resume::decode(&bytes, &[8; 20], 3, 2).is_err());
        assert!(Resume::decode(&bytes, &[7; 20], 4, 2).is_err());
        for cut in [0, 1, 20, bytes.len() - 1] {
            assert!(Resume::decode(&bytes[..cut], &[7; 20], 3, 2).is_err());
        }
        let mut bad = bytes.clone();
        bad[20] ^= 1;
        assert!(Resume::decode(&bad, &[7; 20], 3, 2).is_err());
    }

    #[test]
    fn pieces_of_changed_files_are_hashed_again() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::write(&a, vec![1u8; 100]).unwrap();
        std::fs::write(&b, vec![2u8; 100]).unwrap();
        // Pieces of 64: 0 in a, 1 spans a and b, 2 and 3 in b.
        let layout = Layout::from_files([(a.clone(), 100), (b.clone(), 100)], 64);
        let r = Resume {
            info_hash: [1; 20],
            pieces: vec![0b1101_0000],
            piece_count: 4,
            files: stamps(&layout),
        };
        assert_eq!(
            r.trusted(&layout, &stamps(&layout)),
            vec![Some(true), Some(true), Some(false), Some(true)]
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&b, vec![3u8; 100]).unwrap();
        assert_eq!(
            r.trusted(&layout, &stamps(&layout)),
            vec![Some(true), None, None, None]
        );
        std::fs::remove_file(&a).unwrap();
        assert_eq!(r.trusted(&layout, &stamps(&layout)), vec![None; 4]);
    }
}
