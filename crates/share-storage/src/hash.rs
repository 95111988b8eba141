//! Hashing and checking pieces on all cores.
//!
//! Each worker claims the next piece, reads it with positional reads into its own buffer and
//! hashes it, so one worker's read overlaps the others' hashing and no data is copied between
//! threads. A piece larger than [`CHUNK`] is read and hashed a chunk at a time, so memory is
//! at most one chunk per worker, whatever the size of the content or of its pieces (16 to
//! 256 MiB pieces exist).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use sha1::{Digest, Sha1};

use crate::StorageError;

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

/// What a v2 piece must hash to: its merkle node, the length of its file, and how many of
/// the piece's bytes lie in that file (the rest is padding to the next piece).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct V2Expect {
    pub node: share_core::merkle::Hash,
    pub file_length: u64,
    pub bytes: usize,
}

/// Which pieces on disk match their v2 hashes (a v2-only torrent's start-up check):
/// `expected[i]` for piece `i`, `None` where it cannot be checked (its file's piece layer
/// is not known yet: it reads as missing). As [`check_some`], for the pieces `only` marks.
pub fn check_v2(
    layout: &Layout,
    expected: &[Option<V2Expect>],
    only: Option<&[bool]>,
    threads: usize,
    progress: &AtomicU64,
) -> Vec<bool> {
    use share_core::merkle;
    let count = layout.piece_count();
    let picked: Vec<u32> = (0..count)
        .filter(|&i| only.is_none_or(|o| o.get(i as usize).copied().unwrap_or(false)))
        .filter(|&i| expected.get(i as usize).copied().flatten().is_some())
        .collect();
    let next = AtomicU32::new(0);
    let threads = threads.clamp(1, picked.len().max(1));
    let found: Vec<Vec<u32>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut reader = Reader::new(layout);
                    let mut buf = AlignedBuf::new((layout.piece_length as usize).min(CHUNK));
                    let mut good = Vec::new();
                    loop {
                        let k = next.fetch_add(1, Ordering::Relaxed) as usize;
                        let Some(&index) = picked.get(k) else { break };
                        let Some(e) = expected[index as usize] else {
                            continue;
                        };
                        let (offset, _) = layout.piece_range(index);
                        let mut leaves = Vec::with_capacity(e.bytes.div_ceil(merkle::BLOCK));
                        let mut done = 0;
                        let mut ok = true;
                        while done < e.bytes {
                            let n = (e.bytes - done).min(buf.len());
                            let dst = &mut buf.as_mut_slice()[..n];
                            if reader.read(offset + done as u64, dst).is_err() {
                                ok = false;
                                break;
                            }
                            leaves.extend(dst.chunks(merkle::BLOCK).map(merkle::sha256));
                            done += n;
                        }
                        progress.fetch_add(e.bytes as u64, Ordering::Relaxed);
                        if ok
                            && merkle::piece_hash(&leaves, e.file_length, layout.piece_length)
                                == e.node
                        {
                            good.push(index);
                        }
                    }
                    good
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut valid = vec![false; count as usize];
    for i in found.into_iter().flatten() {
        valid[i as usize] = true;
    }
    valid
}

/// What hashing files for a v2 or hybrid torrent gives: each file's merkle root and piece
/// layer (none for an empty file; no layer for a file of one piece or less), and for a
/// hybrid the SHA-1 of each piece of the padded v1 stream.
#[derive(Debug)]
pub struct V2Hashes {
    pub files: Vec<(
        Option<share_core::merkle::Hash>,
        Option<Vec<share_core::merkle::Hash>>,
    )>,
    pub v1_pieces: Option<Vec<u8>>,
}

/// What one piece of one file hashes to.
enum PieceOut {
    /// A file longer than a piece: the piece's subtree root (a node of its piece layer).
    Node(share_core::merkle::Hash),
    /// A file of one piece or less: its leaves (its root pads them to their own count).
    Leaves(Vec<share_core::merkle::Hash>),
}

/// Hashes `files` (paths of the user's own files, in the torrent's order) for a v2 torrent,
/// and for a hybrid one (`hybrid`) the v1 pieces of its stream, where every non-empty file
/// starts a piece and is padded with zeros to the next (except a lone file's end). Pieces
/// are hashed on `threads` workers, a chunk at a time.
pub fn hash_v2(
    files: &[(std::path::PathBuf, u64)],
    piece_length: u32,
    hybrid: bool,
    threads: usize,
    progress: &AtomicU64,
) -> Result<V2Hashes> {
    use share_core::merkle;
    let pl = piece_length as u64;
    let units: Vec<(usize, u64)> = files
        .iter()
        .enumerate()
        .flat_map(|(i, (_, len))| (0..len.div_ceil(pl)).map(move |k| (i, k)))
        .collect();
    let lone = files.len() == 1;
    let next = AtomicU32::new(0);
    let stop = AtomicBool::new(false);
    let threads = threads.clamp(1, units.len().max(1));
    type Out = (usize, merkle_out::Unit);
    let per_worker: Vec<Result<Vec<Out>>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut buf = AlignedBuf::new((piece_length as usize).min(CHUNK));
                    let mut out = Vec::new();
                    let mut open: Option<(usize, std::fs::File)> = None;
                    while !stop.load(Ordering::Relaxed) {
                        let u = next.fetch_add(1, Ordering::Relaxed) as usize;
                        let Some(&(file, k)) = units.get(u) else {
                            break;
                        };
                        let (path, len) = &files[file];
                        if open.as_ref().map(|(i, _)| *i) != Some(file) {
                            match std::fs::File::open(path) {
                                Ok(f) => open = Some((file, f)),
                                Err(e) => {
                                    stop.store(true, Ordering::Relaxed);
                                    return Err(StorageError::io(path)(e));
                                }
                            }
                        }
                        let f = &open.as_ref().expect("opened above").1;
                        let start = k * pl;
                        let n = (len - start).min(pl) as usize;
                        let mut leaves = Vec::with_capacity(n.div_ceil(merkle::BLOCK));
                        let mut sha1 = hybrid.then(Sha1::new);
                        let mut done = 0;
                        while done < n {
                            let m = (n - done).min(buf.len());
                            let dst = &mut buf.as_mut_slice()[..m];
                            if let Err(e) = std::os::unix::fs::FileExt::read_exact_at(
                                f,
                                dst,
                                start + done as u64,
                            ) {
                                stop.store(true, Ordering::Relaxed);
                                return Err(if e.kind() == std::io::ErrorKind::UnexpectedEof {
                                    StorageError::ShortFile {
                                        path: path.clone(),
                                        expected: *len,
                                    }
                                } else {
                                    StorageError::io(path)(e)
                                });
                            }
                            leaves.extend(dst.chunks(merkle::BLOCK).map(merkle::sha256));
                            if let Some(h) = &mut sha1 {
                                h.update(&*dst);
                            }
                            done += m;
                        }
                        // The v1 piece goes on with the padding's zeros, up to the piece's
                        // end (a lone file has no padding).
                        let v1 = sha1.map(|mut h| {
                            if !lone {
                                let zeros = vec![0u8; (pl as usize - n).min(1 << 20)];
                                let mut left = pl as usize - n;
                                while left > 0 {
                                    let z = left.min(zeros.len());
                                    h.update(&zeros[..z]);
                                    left -= z;
                                }
                            }
                            <[u8; 20]>::from(h.finalize())
                        });
                        let piece = if *len > pl {
                            PieceOut::Node(merkle::root(
                                &leaves,
                                pl / merkle::BLOCK as u64,
                                [0; 32],
                            ))
                        } else {
                            PieceOut::Leaves(leaves)
                        };
                        out.push((u, merkle_out::Unit { piece, v1 }));
                        progress.fetch_add(n as u64, Ordering::Relaxed);
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
    let mut results: Vec<Option<merkle_out::Unit>> = (0..units.len()).map(|_| None).collect();
    for part in per_worker {
        for (u, r) in part? {
            results[u] = Some(r);
        }
    }
    let mut out = V2Hashes {
        files: vec![(None, None); files.len()],
        v1_pieces: hybrid.then(Vec::new),
    };
    let mut at = 0;
    for (i, (_, len)) in files.iter().enumerate() {
        let count = len.div_ceil(pl) as usize;
        let mine = &mut results[at..at + count];
        at += count;
        if count == 0 {
            continue;
        }
        let mut layer = Vec::new();
        let mut small = Vec::new();
        for r in mine.iter_mut() {
            let r = r.take().expect("every unit hashed");
            if let (Some(v1), Some(all)) = (r.v1, out.v1_pieces.as_mut()) {
                all.extend_from_slice(&v1);
            }
            match r.piece {
                PieceOut::Node(h) => layer.push(h),
                PieceOut::Leaves(l) => small = l,
            }
        }
        out.files[i] = if *len > pl {
            (Some(merkle::layer_root(&layer, piece_length)), Some(layer))
        } else {
            (Some(merkle::piece_hash(&small, *len, piece_length)), None)
        };
    }
    Ok(out)
}

mod merkle_out {
    /// One piece of one file, hashed.
    pub struct Unit {
        pub piece: super::PieceOut,
        pub v1: Option<[u8; 20]>,
    }
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

    #[test]
    fn v2_hashes_of_files_on_disk_give_libtorrents_torrent() {
        use share_core::write::v2::{NewFileV2, NewTorrentV2};
        let dir = tempfile::tempdir().unwrap();
        // libtorrent's test folder, in its order: bytes (j * 31 + seed * 7) % 251.
        let spec: &[(&[&str], usize, usize)] = &[
            (&["a_small.txt"], 1000, 1),
            (&["b_mid.bin"], 40000, 2),
            (&["c_big.bin"], 200000, 3),
            (&["d_empty"], 0, 4),
            (&["sub", "e_exact.bin"], 65536, 5),
            (&["sub", "f_two.bin"], 131077, 6),
        ];
        let files: Vec<(PathBuf, u64)> = spec
            .iter()
            .map(|(path, len, seed)| {
                let p = path.iter().fold(dir.path().to_path_buf(), |p, c| p.join(c));
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                let data: Vec<u8> = (0..*len)
                    .map(|j| ((j * 31 + seed * 7) % 251) as u8)
                    .collect();
                std::fs::write(&p, data).unwrap();
                (p, *len as u64)
            })
            .collect();
        for threads in [1, 3] {
            let h = hash_v2(&files, 65536, true, threads, &AtomicU64::new(0)).unwrap();
            let t = NewTorrentV2 {
                name: "v2test".into(),
                piece_length: 65536,
                files: spec
                    .iter()
                    .zip(&h.files)
                    .map(|((path, len, _), (root, layer))| NewFileV2 {
                        path: path.iter().map(|s| s.to_string()).collect(),
                        length: *len as u64,
                        executable: false,
                        root: *root,
                        layer: layer.clone(),
                    })
                    .collect(),
                single_file: false,
                v1_pieces: h.v1_pieces,
                trackers: Vec::new(),
                private: false,
                comment: None,
                created_by: None,
                creation_date: None,
                web_seeds: Vec::new(),
            };
            let m = share_core::Metainfo::from_bytes(&t.to_bytes().unwrap()).unwrap();
            assert_eq!(
                m.hashes.v1.unwrap().to_hex(),
                "def10d7b1fe3d7ca076b8e5ba164d0b559d4a53a"
            );
            assert_eq!(
                hex::encode(m.hashes.v2.unwrap()),
                "b28f85b039a5c9c1b98ade965480b7c7bdf68d9e88437954fb275825f489e5fb"
            );
        }
    }

    #[test]
    fn a_v2_torrents_pieces_are_checked_by_their_merkle_nodes() {
        use crate::root::{Links, Root};
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/v2/multi_v2.torrent"
        );
        let m = share_core::Metainfo::from_bytes(&std::fs::read(path).unwrap()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let spec = [
            ("a_small.txt", 1000, 1),
            ("b_mid.bin", 40000, 2),
            ("c_big.bin", 200000, 3),
            ("d_empty", 0, 4),
            ("sub/e_exact.bin", 65536, 5),
            ("sub/f_two.bin", 131077, 6),
        ];
        for (rel, len, seed) in spec {
            let p = dir.path().join("v2test").join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            let data: Vec<u8> = (0..len)
                .map(|j| ((j * 31 + seed * 7) % 251) as u8)
                .collect();
            std::fs::write(p, data).unwrap();
        }
        let root = std::sync::Arc::new(Root::open(dir.path(), Links::refuse(), false).unwrap());
        let layout = Layout::for_torrent(root, std::path::Path::new(""), &m.info).unwrap();
        let expected: Vec<Option<V2Expect>> = (0..m.info.piece_count())
            .map(|i| {
                let p = m.v2_piece(i)?;
                let start = p.in_file as u64 * m.info.piece_length as u64;
                Some(V2Expect {
                    node: p.hash?,
                    file_length: p.file_length,
                    bytes: (p.file_length - start).min(m.info.piece_length as u64) as usize,
                })
            })
            .collect();
        let ok = check_v2(&layout, &expected, None, 2, &AtomicU64::new(0));
        assert_eq!(ok, vec![true; 10]);
        // A damaged byte in c_big's third piece, and f_two missing.
        let c = dir.path().join("v2test/c_big.bin");
        let mut data = std::fs::read(&c).unwrap();
        data[2 * 65536 + 7] ^= 1;
        std::fs::write(&c, data).unwrap();
        std::fs::remove_file(dir.path().join("v2test/sub/f_two.bin")).unwrap();
        let ok = check_v2(&layout, &expected, None, 2, &AtomicU64::new(0));
        assert_eq!(
            ok,
            [true, true, true, true, false, true, true, false, false, false]
        );
    }
}
