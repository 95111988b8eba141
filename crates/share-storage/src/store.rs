//! Positional reads and writes of byte ranges that may span several files, and the files
//! themselves: created at full length (sparse), executable where BEP 47 says `x`, symlinks
//! created at allocation; padding files never exist on disk. Every file is opened through
//! the layout's [`crate::root::Root`], so none can be outside the download folder.

use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::layout::Layout;
use crate::{Result, StorageError};

/// Reads byte ranges of a layout, keeping the most recent file open.
pub struct Reader<'a> {
    layout: &'a Layout,
    open: Option<(usize, File)>,
}

impl<'a> Reader<'a> {
    pub fn new(layout: &'a Layout) -> Self {
        Reader { layout, open: None }
    }

    /// Fills `buf` with the bytes at `offset` in the torrent's byte stream.
    pub fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        for seg in self.layout.segments(offset, buf.len())? {
            let slot = &self.layout.slots[seg.slot];
            let dst = &mut buf[seg.buf_offset..][..seg.len];
            if slot.padding {
                dst.fill(0);
                continue;
            }
            if self.open.as_ref().map(|(i, _)| *i) != Some(seg.slot) {
                let f = self.layout.root.read_file(&slot.path)?;
                self.open = Some((seg.slot, f));
            }
            let (_, file) = self.open.as_ref().expect("opened above");
            file.read_exact_at(dst, seg.file_offset).map_err(|e| {
                if e.kind() == ErrorKind::UnexpectedEof {
                    StorageError::ShortFile {
                        path: self.layout.display(seg.slot),
                        expected: slot.length,
                    }
                } else {
                    StorageError::Io {
                        path: self.layout.display(seg.slot),
                        error: e,
                    }
                }
            })?;
        }
        Ok(())
    }
}

/// Open file handles shared by every [`Store`] of a session: when the session is at its
/// budget, a store closes its own handles before it opens another, so that many torrents
/// together keep about `max` files open (each store may go over by the one it is opening).
#[derive(Debug, Clone)]
pub struct FileBudget {
    open: Arc<AtomicUsize>,
    max: usize,
}

impl FileBudget {
    pub fn new(max: usize) -> Self {
        FileBudget {
            open: Arc::new(AtomicUsize::new(0)),
            max: max.max(1),
        }
    }

    /// Handles open in all stores now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    fn full(&self) -> bool {
        self.open() >= self.max
    }
}

impl Default for FileBudget {
    fn default() -> Self {
        FileBudget::new(MAX_OPEN)
    }
}

/// Read and write access to a torrent's files for a transfer. Files are created (with their
/// folders, at their full length, sparse) on first write; handles stay open up to a bound.
pub struct Store {
    layout: Layout,
    handles: Vec<Option<File>>,
    /// Second handles for writes that bypass the page cache, per file.
    direct: Vec<Direct>,
    /// Bytes written that way.
    pub direct_bytes: u64,
    open_count: usize,
    budget: FileBudget,
}

/// Direct (O_DIRECT) writes: whole aligned blocks go from our buffer to the disk, with no
/// copy into the page cache. On this project's test machines that copy was most of a
/// leecher's CPU time (a virtual machine pays for every fresh page-cache page); a disk write
/// by DMA costs a tenth of it. Filesystems that refuse O_DIRECT (older tmpfs, some network
/// filesystems) get plain writes.
enum Direct {
    Untried,
    Open(File),
    Unsupported,
}

/// The alignment direct writes keep (offset, length and memory address).
const BLOCK: usize = 4096;

/// Most files kept open at once by a [`Store`].
const MAX_OPEN: usize = 128;

impl Store {
    pub fn new(layout: Layout) -> Self {
        Store::with_budget(layout, FileBudget::default())
    }

    /// A store whose open handles count against a session's shared budget.
    pub fn with_budget(layout: Layout, budget: FileBudget) -> Self {
        let n = layout.slots.len();
        Store {
            layout,
            handles: (0..n).map(|_| None).collect(),
            direct: (0..n).map(|_| Direct::Untried).collect(),
            direct_bytes: 0,
            open_count: 0,
            budget,
        }
    }

    /// Files this store holds open.
    pub fn open_files(&self) -> usize {
        self.open_count
    }

    /// Closes every handle this store holds (they open again on the next read or write).
    pub fn close_all(&mut self) {
        self.handles.iter_mut().for_each(|h| *h = None);
        for d in &mut self.direct {
            if matches!(d, Direct::Open(_)) {
                *d = Direct::Untried;
            }
        }
        self.budget
            .open
            .fetch_sub(self.open_count, Ordering::Relaxed);
        self.open_count = 0;
    }

    fn handle(&mut self, slot: usize, write: bool) -> Result<&File> {
        if self.handles[slot].is_none() {
            if self.open_count >= MAX_OPEN || (self.open_count > 0 && self.budget.full()) {
                self.close_all();
            }
            let s = &self.layout.slots[slot];
            let root = &self.layout.root;
            let shown = root.display(&s.path);
            let file = if write {
                let f = root.write_file(&s.path, true)?;
                let meta = f.metadata().map_err(StorageError::io(&shown))?;
                if meta.len() != s.length {
                    f.set_len(s.length).map_err(StorageError::io(&shown))?;
                }
                if s.executable {
                    make_executable(&f, &meta).map_err(StorageError::io(&shown))?;
                }
                f
            } else {
                match root.write_file(&s.path, false) {
                    Ok(f) => f,
                    // A file that escapes is refused for reading too.
                    Err(e @ StorageError::Link { .. }) => return Err(e),
                    // Seeding from a read-only copy still works.
                    Err(_) => root.read_file(&s.path)?,
                }
            };
            self.handles[slot] = Some(file);
            self.open_count += 1;
            self.budget.open.fetch_add(1, Ordering::Relaxed);
        }
        Ok(self.handles[slot].as_ref().expect("set above"))
    }

    /// Reads `buf.len()` bytes at `offset` of the byte stream.
    pub fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let segs: Vec<_> = self.layout.segments(offset, buf.len())?.collect();
        for seg in segs {
            let dst = &mut buf[seg.buf_offset..][..seg.len];
            if self.layout.slots[seg.slot].padding {
                dst.fill(0);
                continue;
            }
            let path = self.layout.display(seg.slot);
            let file = self.handle(seg.slot, false)?;
            file.read_exact_at(dst, seg.file_offset)
                .map_err(StorageError::io(path))?;
        }
        Ok(())
    }

    /// Writes `data` at `offset` of the byte stream; padding files are skipped.
    pub fn write(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        let segs: Vec<_> = self.layout.segments(offset, data.len())?.collect();
        for seg in segs {
            if self.layout.slots[seg.slot].padding {
                continue;
            }
            let path = self.layout.display(seg.slot);
            let src = &data[seg.buf_offset..][..seg.len];
            // The aligned middle goes direct where it can; the rest through the page cache.
            let head = (BLOCK - (seg.file_offset % BLOCK as u64) as usize) % BLOCK;
            let aligned = src.len().saturating_sub(head) / BLOCK * BLOCK;
            let mut done = (0, 0);
            if aligned > 0 && (src.as_ptr() as usize + head).is_multiple_of(BLOCK) {
                let at = seg.file_offset + head as u64;
                if self.write_direct(seg.slot, &src[head..][..aligned], at)? {
                    done = (head, head + aligned);
                }
            }
            let file = self.handle(seg.slot, true)?;
            for (from, to) in [(0, done.0), (done.1, src.len())] {
                if from < to {
                    file.write_all_at(&src[from..to], seg.file_offset + from as u64)
                        .map_err(StorageError::io(&path))?;
                }
            }
        }
        Ok(())
    }

    /// Writes aligned `data` at `offset` of file `slot` bypassing the page cache; false
    /// if the filesystem does not allow that (the caller writes it the usual way).
    fn write_direct(&mut self, slot: usize, data: &[u8], offset: u64) -> Result<bool> {
        if matches!(self.direct[slot], Direct::Untried) {
            // The plain handle creates the file and its folders and sets its length.
            self.handle(slot, true)?;
            let path = &self.layout.slots[slot].path;
            self.direct[slot] = match self.layout.root.direct_file(path) {
                Ok(f) => Direct::Open(f),
                Err(_) => Direct::Unsupported,
            };
        }
        let Direct::Open(file) = &self.direct[slot] else {
            return Ok(false);
        };
        match file.write_all_at(data, offset) {
            Ok(()) => {
                self.direct_bytes += data.len() as u64;
                Ok(true)
            }
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                self.direct[slot] = Direct::Unsupported;
                Ok(false)
            }
            Err(e) => Err(StorageError::Io {
                path: self.layout.display(slot),
                error: e,
            }),
        }
    }

    /// Creates every (non-padding) file at its full length, so that the content exists on
    /// disk even before its first piece arrives (and zero-length files exist at all), and
    /// every symlink: a symlink holds no bytes, so nothing later would create it.
    pub fn allocate(&mut self) -> Result<()> {
        self.allocate_except(&[])
    }

    /// As `allocate`, leaving out the files `skip` marks (not wanted: they are created only
    /// if a piece shared with a wanted file writes into them).
    pub fn allocate_except(&mut self, skip: &[bool]) -> Result<()> {
        for slot in 0..self.layout.slots.len() {
            let s = &self.layout.slots[slot];
            if skip.get(slot).copied().unwrap_or(false) {
                continue;
            }
            if let Some(link) = &s.symlink {
                self.layout.root.symlink(
                    &s.path,
                    &link.text,
                    &self.layout.content,
                    &link.target,
                )?;
            } else if !s.padding {
                self.handle(slot, true)?;
            }
        }
        Ok(())
    }

    /// Flushes written data to disk.
    pub fn sync(&mut self) -> Result<()> {
        for (slot, h) in self.handles.iter().enumerate() {
            if let Some(f) = h {
                f.sync_data()
                    .map_err(StorageError::io(self.layout.display(slot)))?;
            }
        }
        Ok(())
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.budget
            .open
            .fetch_sub(self.open_count, Ordering::Relaxed);
    }
}

/// Adds execute bits where the file has read bits (so the umask that shaped it holds),
/// unless some are set already.
fn make_executable(f: &File, meta: &std::fs::Metadata) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode();
    if mode & 0o111 == 0 {
        f.set_permissions(std::fs::Permissions::from_mode(mode | (mode & 0o444) >> 2))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{LinkSlot, Slot};
    use crate::root::{Links, Root};
    use std::fs::OpenOptions;
    use std::path::{Path, PathBuf};

    #[test]
    fn writes_across_files_create_folders_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let files = vec![
            (dir.path().join("t/a"), 10),
            (dir.path().join("t/sub/deep/b"), 0),
            (dir.path().join("t/c"), 30),
        ];
        let mut store = Store::new(Layout::from_files(files, 16));
        store.allocate().unwrap();
        let data: Vec<u8> = (0..40).collect();
        store.write(0, &data[..16]).unwrap();
        store.write(16, &data[16..]).unwrap();
        assert_eq!(std::fs::read(dir.path().join("t/a")).unwrap(), &data[..10]);
        assert_eq!(std::fs::read(dir.path().join("t/c")).unwrap(), &data[10..]);
        assert!(dir.path().join("t/sub/deep/b").exists());
        let mut back = vec![0; 20];
        store.read(5, &mut back).unwrap();
        assert_eq!(back, &data[5..25]);
        assert!(store.write(35, &[0; 6]).is_err());
    }

    #[test]
    fn stores_share_a_budget_of_open_files() {
        let dir = tempfile::tempdir().unwrap();
        let budget = FileBudget::new(3);
        let files = |tag: &str| -> Vec<(std::path::PathBuf, u64)> {
            (0..4)
                .map(|i| (dir.path().join(format!("{tag}{i}")), 10))
                .collect()
        };
        let mut a = Store::with_budget(Layout::from_files(files("a"), 10), budget.clone());
        let mut b = Store::with_budget(Layout::from_files(files("b"), 10), budget.clone());
        a.allocate().unwrap();
        assert!(budget.open() <= 3, "{}", budget.open());
        b.allocate().unwrap();
        assert!(budget.open() <= 4, "{}", budget.open());
        let mut buf = [0u8; 40];
        a.read(0, &mut buf).unwrap();
        b.read(0, &mut buf).unwrap();
        assert!(budget.open() <= 4);
        drop(a);
        drop(b);
        assert_eq!(budget.open(), 0);
    }

    #[test]
    fn allocation_makes_executables_and_symlinks_and_never_padding_files() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let slot = |rel: &str, length, offset| Slot {
            path: PathBuf::from(rel),
            length,
            offset,
            padding: false,
            executable: false,
            symlink: None,
        };
        let root = Root::open(dir.path(), Links::refuse(), false).unwrap();
        let layout = Layout {
            root: Arc::new(root),
            content: PathBuf::from("t"),
            slots: vec![
                Slot {
                    executable: true,
                    ..slot("t/run.sh", 5, 0)
                },
                Slot {
                    padding: true,
                    ..slot("t/.pad/11", 11, 5)
                },
                Slot {
                    symlink: Some(LinkSlot {
                        text: "../run.sh".into(),
                        target: "t/run.sh".into(),
                    }),
                    ..slot("t/sub/link", 0, 16)
                },
                slot("t/data", 4, 16),
            ],
            piece_length: 16,
            total_length: 20,
        };
        let mut store = Store::new(layout);
        store.allocate().unwrap();
        store.write(0, &[7; 16]).unwrap();
        store.allocate().unwrap(); // again, as a resumed download does
        let mode = std::fs::metadata(dir.path().join("t/run.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o100, 0o100, "executable: {mode:o}");
        assert_eq!(mode & 0o002, 0, "no more than the umask allows: {mode:o}");
        let data_mode = std::fs::metadata(dir.path().join("t/data"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(data_mode & 0o111, 0, "a plain file is not executable");
        assert!(
            !dir.path().join("t/.pad").exists(),
            "no padding file on disk"
        );
        let link = dir.path().join("t/sub/link");
        assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("../run.sh"));
        assert_eq!(std::fs::read(&link).unwrap(), [7; 5]);
        let mut back = [1u8; 16];
        store.read(0, &mut back).unwrap();
        assert_eq!(back[5..], [0; 11], "padding reads as zeros");
    }

    #[test]
    fn pieces_across_unaligned_file_boundaries_write_direct_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        // f1 starts on a 4 KiB boundary of the byte stream and is written direct but for its
        // last 368 bytes; f3 does not, and goes through the page cache.
        let sizes = [8192u64, 70000, 0, 40000];
        let files: Vec<_> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| (dir.path().join(format!("f{i}")), n))
            .collect();
        let layout = Layout::from_files(files, 16384);
        let mut store = Store::new(layout.clone());
        store.allocate().unwrap();
        let total: u64 = sizes.iter().sum();
        let data: Vec<u8> = (0..total).map(|i| (i * 7 % 251) as u8).collect();
        for index in 0..layout.piece_count() {
            let (offset, len) = layout.piece_range(index);
            let mut buf = crate::buf::AlignedBuf::new(len);
            buf.as_mut_slice()
                .copy_from_slice(&data[offset as usize..][..len]);
            store.write(offset, buf.as_slice()).unwrap();
        }
        store.sync().unwrap();
        let mut at = 0;
        for (i, &n) in sizes.iter().enumerate() {
            let on_disk = std::fs::read(dir.path().join(format!("f{i}"))).unwrap();
            assert!(on_disk == data[at..][..n as usize], "file {i} differs");
            at += n as usize;
        }
        // Where the filesystem allows it.
        use std::os::unix::fs::OpenOptionsExt;
        let direct_ok = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(dir.path().join("f0"))
            .is_ok();
        let expected = if direct_ok { 8192 + 69632 } else { 0 };
        assert_eq!(store.direct_bytes, expected);
    }
}
