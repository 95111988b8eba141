//! Hashing and checking pieces on all cores.
//!
//! Each worker claims the next piece, reads it with positional reads into its own buffer and
//! hashes it, so one worker's read overlaps the others' hashing and no data is copied between
//! threads. A piece larger than [`CHUNK`] is read and hashed a chunk at a time, so memory is
//! at most one chunk per worker, whatever the size of the content or of its pieces (16 to
//! 256 MiB pieces exist).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use sha1::{Digest, Sha1};

use crate::buf::AlignedBuf;
use crate::layout::Layout;
use crate::store::Reader;
use crate::Result;

/// The most bytes a worker reads at once.
pub const CHUNK: usize = 4 << 20;

/// The number of hashing threads to use by default: one per core.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// SHA-1 of every piece, concatenated (the `pieces` field of a torrent). Any read error stops
/// all workers and is returned. `progress` grows by each piece's length as it is hashed.
pub fn hash_pieces(layout: &Layout, threads: usize, progress: &AtomicU64) -> Result<Vec<u8>> {
    let hashes = par_pieces(layout, None, threads, progress, |_, digest| digest)?;
    Ok(hashes.into_iter().flatten().collect::<Vec<_>>().concat())
}

/// Which pieces on disk match `expected` (20 bytes per piece). A missing or short file makes
/// its pieces bad; it is not an error.
pub fn check_pieces(
    layout: &Layout,
    expected: &[u8],
    threads: usize,
    progress: &AtomicU64,
) -> Vec<bool> {
    check_some(layout, expected, None, threads, progress)
}

/// As `check_pieces`, for the pieces `only` marks (all when `None`); the others read as bad.
pub fn check_some(
    layout: &Layout,
    expected: &[u8],
    only: Option<&[bool]>,
    threads: usize,
    progress: &AtomicU64,
) -> Vec<bool> {
    par_pieces(layout, only, threads, progress, |i, digest| {
        let want = &expected[i as usize * 20..][..20];
        Ok(digest.is_ok_and(|d| d.as_slice() == want))
    })
    .map(|v| v.into_iter().map(|x| x.unwrap_or(false)).collect())
    .unwrap_or_default()
}

/// SHA-1 of `len` bytes at `offset`, read a buffer at a time.
fn digest(reader: &mut Reader, buf: &mut [u8], offset: u64, len: usize) -> Result<[u8; 20]> {
    let mut h = Sha1::new();
    let mut done = 0;
    while done < len {
        let n = (len - done).min(buf.len());
        reader.read(offset + done as u64, &mut buf[..n])?;
        h.update(&buf[..n]);
        done += n;
    }
    Ok(h.finalize().into())
}

/// Runs `f` on every piece's digest (or those `only` marks: the others give `None`) on
/// `threads` workers; results come back in piece order. `f` returning an error stops every
/// worker.
fn par_pieces<T: Send>(
    layout: &Layout,
    only: Option<&[bool]>,
    threads: usize,
    progress: &AtomicU64,
    f: impl Fn(u32, Result<[u8; 20]>) -> Result<T> + Sync,
) -> Result<Vec<Option<T>>> {
    let count = layout.piece_count();
    let picked: Vec<u32> = (0..count)
        .filter(|&i| only.is_none_or(|o| o.get(i as usize).copied().unwrap_or(false)))
        .collect();
    let next = AtomicU32::new(0);
    let stop = AtomicBool::new(false);
    let threads = threads.clamp(1, picked.len().max(1));
    let per_worker: Vec<Result<Vec<(u32, T)>>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut reader = Reader::new(layout);
                    let mut aligned = AlignedBuf::new((layout.piece_length as usize).min(CHUNK));
                    let buf = aligned.as_mut_slice();
                    let mut out = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&index) = picked.get(k as usize) else {
                            break;
                        };
                        let (offset, len) = layout.piece_range(index);
                        let data = digest(&mut reader, buf, offset, len);
                        match f(index, data) {
                            Ok(v) => out.push((index, v)),
                            Err(e) => {
                                stop.store(true, Ordering::Relaxed);
                                return Err(e);
                            }
                        }
                        progress.fetch_add(len as u64, Ordering::Relaxed);
                    }
                    Ok(out)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut all: Vec<Option<T>> = (0..count).map(|_| None).collect();
    for part in per_worker {
        for (i, v) in part? {
            all[i as usize] = Some(v);
        }
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn write_files(dir: &std::path::Path, lens: &[usize]) -> Vec<(PathBuf, u64)> {
        lens.iter()
            .enumerate()
            .map(|(i, &l)| {
                let p = dir.join(format!("f{i}"));
                let data: Vec<u8> = (0..l).map(|b| (b * 7 + i) as u8).collect();
                std::fs::write(&p, data).unwrap();
                (p, l as u64)
            })
            .collect()
    }

    #[test]
    fn hashes_match_a_plain_sequential_hash_for_any_thread_count() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_files(dir.path(), &[1000, 0, 20000, 5, 40000]);
        let all: Vec<u8> = files
            .iter()
            .flat_map(|(p, _)| std::fs::read(p).unwrap())
            .collect();
        let expected: Vec<u8> = all
            .chunks(16384)
            .flat_map(|c| <[u8; 20]>::from(Sha1::digest(c)))
            .collect();
        let layout = Layout::from_files(files, 16384);
        for threads in [1, 2, 3, 8] {
            let progress = AtomicU64::new(0);
            assert_eq!(hash_pieces(&layout, threads, &progress).unwrap(), expected);
            assert_eq!(progress.load(Ordering::Relaxed), all.len() as u64);
        }
        let ok = check_pieces(&layout, &expected, 2, &AtomicU64::new(0));
        assert!(ok.iter().all(|&b| b));
    }

    #[test]
    fn check_reports_damaged_and_missing_pieces() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_files(dir.path(), &[16384 * 3, 16384]);
        let layout = Layout::from_files(files.clone(), 16384);
        let good = hash_pieces(&layout, 2, &AtomicU64::new(0)).unwrap();
        // Damage piece 1, remove the file of piece 3.
        let mut data = std::fs::read(&files[0].0).unwrap();
        data[16384 + 5] ^= 1;
        std::fs::write(&files[0].0, data).unwrap();
        std::fs::remove_file(&files[1].0).unwrap();
        let ok = check_pieces(&layout, &good, 2, &AtomicU64::new(0));
        assert_eq!(ok, vec![true, false, true, false]);
        // Creating from the same files is an error that names the missing file.
        let err = hash_pieces(&layout, 2, &AtomicU64::new(0)).unwrap_err();
        assert!(err.to_string().contains("f1"), "{err}");
    }
}
