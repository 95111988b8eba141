//! Confined file access: the only way share opens, creates, reads, writes, renames or
//! deletes a torrent's files.
//!
//! A [`Root`] is a directory handle of a download folder. Every path below it is resolved
//! by the kernel beneath that handle (`openat2` with `RESOLVE_BENEATH` and
//! `RESOLVE_NO_MAGICLINKS`), so no path can leave it, whatever the torrent says and whatever
//! sits on disk: the confinement holds by construction, not by a check per case.
//!
//! Symlinks, by the [`Links`] policy:
//! - by default no symlink is followed at all below the folder (`RESOLVE_NO_SYMLINKS`). A
//!   link planted at a file's path, or one that another torrent created, cannot redirect a
//!   read or a write; the file is an error, named with the reason.
//! - with `follow_user` (`--follow-symlinks`): links the user placed are followed, wherever
//!   they lead (people link files in to seed them from elsewhere), one path element at a
//!   time with `O_NOFOLLOW`; a link that a torrent created (its inode is in the
//!   [`LinkLedger`]) never is.
//!
//! A torrent's own BEP 47 links are created by [`Root::symlink`] only when their target
//! resolves inside the torrent's content root at that moment, and are recorded in the
//! ledger. Relative paths given to a root must be plain elements (no `..`, no `/` at the
//! start); [`crate::Layout`] builds them that way.

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::{Result, StorageError};

/// What a refused operation would have done, for its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Read,
    Write,
    Create,
    Delete,
    Move,
}

impl Op {
    fn not_done(self) -> &'static str {
        match self {
            Op::Read => "not read",
            Op::Write => "not written",
            Op::Create => "not created",
            Op::Delete => "not deleted",
            Op::Move => "not moved",
        }
    }
}

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkWhy {
    /// It resolves outside the folder through a symlink.
    Outside,
    /// It goes through a symlink that stays inside (followed only with `--follow-symlinks`).
    Inside,
    /// It goes through a symlink that a torrent created (never followed).
    TorrentLink,
    /// A torrent's symlink whose target would resolve outside its content root.
    TargetOutside,
}

/// The refusal, as a message: "`q/b/l/authorized_keys` resolves outside the download folder
/// through a symlink; not written".
pub fn link_message(rel: &Path, why: LinkWhy, op: Op) -> String {
    let what = match why {
        LinkWhy::Outside => "resolves outside the download folder through a symlink",
        LinkWhy::Inside => {
            "goes through a symlink in the download folder (links are followed only with \
             --follow-symlinks)"
        }
        LinkWhy::TorrentLink => "goes through a symlink that a torrent created",
        LinkWhy::TargetOutside => "is a symlink whose target resolves outside the torrent's folder",
    };
    format!("`{}` {what}; {}", rel.display(), op.not_done())
}

/// Which symlinks below a folder are followed, and the ledger of those torrents made.
#[derive(Clone, Debug)]
pub struct Links {
    /// Follow the links the user placed (never those in the ledger); otherwise none.
    pub follow_user: bool,
    /// Every link a torrent creates is recorded here, whatever the policy, so that a later
    /// run with `follow_user` still knows it.
    pub ledger: Arc<LinkLedger>,
}

impl Links {
    /// No link followed; a ledger for this run only.
    pub fn refuse() -> Links {
        Links {
            follow_user: false,
            ledger: Arc::new(LinkLedger::in_memory()),
        }
    }
}

/// The symlinks torrents created, by (device, inode), kept in the state folder so that a
/// later run (of another torrent with the same name, say) still knows them. A lock, because
/// the disk threads of several torrents create and look up links; it is held for one set
/// operation (and an append of 16 bytes when a link is created).
#[derive(Debug)]
pub struct LinkLedger {
    path: Option<PathBuf>,
    set: Mutex<HashSet<(u64, u64)>>,
}

/// Links remembered at most (16 bytes each on disk).
const MAX_LEDGER: usize = 1 << 20;

impl LinkLedger {
    /// The ledger kept at `path` (created when the first link is recorded).
    pub fn load(path: PathBuf) -> LinkLedger {
        let mut set = HashSet::new();
        if let Ok(f) = File::open(&path) {
            let mut bytes = Vec::new();
            let _ = f.take(MAX_LEDGER as u64 * 16).read_to_end(&mut bytes);
            for rec in bytes.chunks_exact(16) {
                let dev = u64::from_le_bytes(rec[..8].try_into().expect("8 bytes"));
                let ino = u64::from_le_bytes(rec[8..].try_into().expect("8 bytes"));
                set.insert((dev, ino));
            }
        }
        LinkLedger {
            path: Some(path),
            set: Mutex::new(set),
        }
    }

    /// A ledger that lives for this run only.
    pub fn in_memory() -> LinkLedger {
        LinkLedger {
            path: None,
            set: Mutex::new(HashSet::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<(u64, u64)>> {
        self.set.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn contains(&self, dev: u64, ino: u64) -> bool {
        self.lock().contains(&(dev, ino))
    }

    fn record(&self, dev: u64, ino: u64) {
        let mut set = self.lock();
        if set.len() >= MAX_LEDGER || !set.insert((dev, ino)) {
            return;
        }
        if let Some(path) = &self.path {
            if let Some(dir) = path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let mut rec = [0u8; 16];
            rec[..8].copy_from_slice(&dev.to_le_bytes());
            rec[8..].copy_from_slice(&ino.to_le_bytes());
            let written = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut f| f.write_all(&rec));
            if let Err(e) = written {
                tracing::warn!("recording a torrent's symlink in {}: {e}", path.display());
            }
        }
    }
}

/// A file's size and modification time, as a stat gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStat {
    pub len: u64,
    pub mtime: i64,
    pub mtime_nsec: u32,
    pub is_file: bool,
    pub is_dir: bool,
}

/// A folder that every path of a torrent is resolved beneath (see the module's notes).
#[derive(Debug)]
pub struct Root {
    /// `None`: the user's own files, by their paths as given (creating a torrent).
    fd: Option<OwnedFd>,
    path: PathBuf,
    links: Links,
}

fn errno_io(e: Errno) -> std::io::Error {
    std::io::Error::from_raw_os_error(e.raw_os_error())
}

const BENEATH: ResolveFlags = ResolveFlags::BENEATH.union(ResolveFlags::NO_MAGICLINKS);

impl Root {
    /// The folder `dir` (created first, with its parents, when `create`).
    pub fn open(dir: &Path, links: Links, create: bool) -> Result<Root> {
        if create {
            std::fs::create_dir_all(dir).map_err(StorageError::io(dir))?;
        }
        let fd = rustix::fs::open(
            dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| StorageError::io(dir)(errno_io(e)))?;
        Ok(Root {
            fd: Some(fd),
            path: dir.to_owned(),
            links,
        })
    }

    /// Not confined: paths are the user's own (absolute or relative to the working folder),
    /// opened as given, symlinks followed. Only for reading the files a torrent is created
    /// from.
    pub fn unconfined() -> Root {
        Root {
            fd: None,
            path: PathBuf::new(),
            links: Links::refuse(),
        }
    }

    /// The folder, as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where `rel` is, for messages.
    pub fn display(&self, rel: &Path) -> PathBuf {
        self.path.join(rel)
    }

    /// The folder's device and inode: two roots with the same id are one folder.
    pub fn id(&self) -> Option<(u64, u64)> {
        let st = rustix::fs::fstat(self.fd.as_ref()?).ok()?;
        Some((st.st_dev, st.st_ino))
    }

    fn err(&self, rel: &Path, e: Errno) -> StorageError {
        StorageError::io(self.display(rel))(errno_io(e))
    }

    /// Opens `rel` with `flags` beneath the root (see the module's notes for symlinks).
    fn resolve(&self, rel: &Path, flags: OFlags, mode: Mode, op: Op) -> Result<OwnedFd> {
        // openat2 refuses a mode without O_CREAT.
        let mode = if flags.contains(OFlags::CREATE) {
            mode
        } else {
            Mode::empty()
        };
        let Some(root) = &self.fd else {
            return rustix::fs::open(rel, flags | OFlags::CLOEXEC, mode)
                .map_err(|e| self.err(rel, e));
        };
        check_plain(rel)?;
        if self.links.follow_user {
            return self.walk(root.as_fd(), rel, flags, mode, op, &self.links.ledger);
        }
        rustix::fs::openat2(
            root,
            rel,
            flags | OFlags::CLOEXEC,
            mode,
            BENEATH | ResolveFlags::NO_SYMLINKS,
        )
        .map_err(|e| match e {
            Errno::LOOP | Errno::XDEV => self.classify(rel, op),
            e => self.err(rel, e),
        })
    }

    /// Why `rel` could not be opened without following a symlink: does following them lead
    /// outside?
    fn classify(&self, rel: &Path, op: Op) -> StorageError {
        let root = self.fd.as_ref().expect("a confined root");
        let why = match rustix::fs::openat2(
            root,
            rel,
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            BENEATH,
        ) {
            Err(Errno::XDEV) => LinkWhy::Outside,
            _ => LinkWhy::Inside,
        };
        StorageError::Link {
            path: rel.to_owned(),
            why,
            op,
        }
    }

    /// Element by element with `O_NOFOLLOW`: a symlink the user placed is followed (by the
    /// kernel, wherever it leads), one a torrent created is refused.
    fn walk(
        &self,
        root: BorrowedFd<'_>,
        rel: &Path,
        flags: OFlags,
        mode: Mode,
        op: Op,
        ledger: &LinkLedger,
    ) -> Result<OwnedFd> {
        let parts: Vec<&std::ffi::OsStr> = rel.iter().collect();
        let mut cur: Option<OwnedFd> = None;
        for (i, part) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            let dir = cur.as_ref().map_or(root, |f| f.as_fd());
            let (want, mode) = if last {
                (flags | OFlags::CLOEXEC, mode)
            } else {
                (
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
            };
            let opened = rustix::fs::openat2(
                dir,
                *part,
                want | OFlags::NOFOLLOW,
                mode,
                BENEATH | ResolveFlags::NO_SYMLINKS,
            );
            let fd = match opened {
                Ok(fd) => fd,
                // A symlink: ELOOP for a file, ENOTDIR for a folder (O_DIRECTORY|O_NOFOLLOW).
                Err(e @ (Errno::LOOP | Errno::NOTDIR)) => {
                    let st = rustix::fs::statat(dir, *part, AtFlags::SYMLINK_NOFOLLOW)
                        .map_err(|e| self.err(rel, e))?;
                    if FileType::from_raw_mode(st.st_mode) != FileType::Symlink {
                        return Err(self.err(rel, e));
                    }
                    if ledger.contains(st.st_dev, st.st_ino) {
                        return Err(StorageError::Link {
                            path: rel.to_owned(),
                            why: LinkWhy::TorrentLink,
                            op,
                        });
                    }
                    rustix::fs::openat2(dir, *part, want, mode, ResolveFlags::NO_MAGICLINKS)
                        .map_err(|e| self.err(rel, e))?
                }
                Err(e) => return Err(self.err(rel, e)),
            };
            cur = Some(fd);
        }
        cur.ok_or_else(|| self.err(rel, Errno::INVAL))
    }

    /// The folder that holds `rel`, and `rel`'s last element.
    fn parent<'p>(&self, rel: &'p Path, op: Op) -> Result<(Option<OwnedFd>, &'p std::ffi::OsStr)> {
        let name = rel
            .file_name()
            .ok_or_else(|| StorageError::Escapes(self.display(rel)))?;
        let parent = rel.parent().filter(|p| !p.as_os_str().is_empty());
        let fd = match parent {
            Some(p) => {
                Some(self.resolve(p, OFlags::PATH | OFlags::DIRECTORY, Mode::empty(), op)?)
            }
            None => None,
        };
        Ok((fd, name))
    }

    fn with_parent<T>(
        &self,
        rel: &Path,
        op: Op,
        f: impl FnOnce(BorrowedFd<'_>, &std::ffi::OsStr) -> rustix::io::Result<T>,
    ) -> Result<T> {
        let Some(root) = &self.fd else {
            return Err(StorageError::Escapes(rel.to_owned()));
        };
        let (fd, name) = self.parent(rel, op)?;
        let dir = fd.as_ref().map_or(root.as_fd(), |f| f.as_fd());
        f(dir, name).map_err(|e| self.err(rel, e))
    }

    /// Opens `rel` for reading.
    pub fn read_file(&self, rel: &Path) -> Result<File> {
        Ok(self
            .resolve(rel, OFlags::RDONLY, Mode::empty(), Op::Read)?
            .into())
    }

    /// Opens `rel` for reading and writing; created (with its folders) when `create`.
    pub fn write_file(&self, rel: &Path, create: bool) -> Result<File> {
        let mut flags = OFlags::RDWR;
        if create {
            if let Some(p) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
                self.create_dirs(p).map_err(|e| about(e, rel))?;
            }
            flags |= OFlags::CREATE;
        }
        let op = if create { Op::Create } else { Op::Write };
        Ok(self
            .resolve(rel, flags, Mode::from_raw_mode(0o666), op)?
            .into())
    }

    /// Opens an existing `rel` for writes that bypass the page cache (`O_DIRECT`).
    pub fn direct_file(&self, rel: &Path) -> Result<File> {
        Ok(self
            .resolve(
                rel,
                OFlags::WRONLY | OFlags::DIRECT,
                Mode::empty(),
                Op::Write,
            )?
            .into())
    }

    /// Creates the folder `rel` and its parents below the root, each one beneath the last.
    pub fn create_dirs(&self, rel: &Path) -> Result<()> {
        let Some(_) = &self.fd else {
            return std::fs::create_dir_all(rel).map_err(StorageError::io(rel));
        };
        check_plain(rel)?;
        let mut sofar = PathBuf::new();
        for part in rel.iter() {
            sofar.push(part);
            match self.with_parent(&sofar, Op::Create, |dir, name| {
                rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o777))
            }) {
                Ok(()) => {}
                Err(StorageError::Io { error, .. })
                    if error.raw_os_error() == Some(Errno::EXIST.raw_os_error()) => {}
                Err(e) => return Err(e),
            }
        }
        // Whatever was there already must be a folder we may go through.
        self.resolve(
            rel,
            OFlags::PATH | OFlags::DIRECTORY,
            Mode::empty(),
            Op::Create,
        )?;
        Ok(())
    }

    /// The size and mtime of what `rel` names (through a followed link, where links are).
    /// `None` when it does not exist.
    pub fn stat(&self, rel: &Path) -> Result<Option<FileStat>> {
        let fd = match self.resolve(rel, OFlags::PATH, Mode::empty(), Op::Read) {
            Ok(fd) => fd,
            Err(StorageError::Io { error, .. }) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(None)
            }
            Err(e) => return Err(e),
        };
        let st = rustix::fs::fstat(&fd).map_err(|e| self.err(rel, e))?;
        let kind = FileType::from_raw_mode(st.st_mode);
        Ok(Some(FileStat {
            len: st.st_size as u64,
            mtime: st.st_mtime,
            mtime_nsec: st.st_mtime_nsec as u32,
            is_file: kind == FileType::RegularFile,
            is_dir: kind == FileType::Directory,
        }))
    }

    /// Whether anything is at `rel` (a symlink counts, followed or not).
    pub fn exists(&self, rel: &Path) -> bool {
        let Some(_) = &self.fd else {
            return rel.exists();
        };
        self.with_parent(rel, Op::Read, |dir, name| {
            rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
        })
        .is_ok()
    }

    /// Creates a torrent's symlink at `rel` holding `text`, whose target is `target` (plain
    /// elements below the root): only if the target, followed as the kernel would, resolves
    /// inside `content` (the torrent's folder, below the root) now. Anything already at
    /// `rel` is left as it is. The link is recorded in the ledger, so that it never becomes
    /// a path element through which a file is written.
    pub fn symlink(&self, rel: &Path, text: &Path, content: &Path, target: &Path) -> Result<()> {
        let Some(root) = &self.fd else {
            return Err(StorageError::Escapes(rel.to_owned()));
        };
        check_plain(target)?;
        if let Some(p) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
            self.create_dirs(p).map_err(|e| about(e, rel))?;
        }
        if self.exists(rel) {
            return Ok(());
        }
        // The target beneath the content root, following links but never out of it: a
        // target that does not exist yet is fine (a file of the torrent made later).
        let content_fd = rustix::fs::openat2(
            root,
            content,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            BENEATH | ResolveFlags::NO_SYMLINKS,
        )
        .map_err(|e| match e {
            Errno::LOOP | Errno::XDEV => self.classify(content, Op::Create),
            e => self.err(content, e),
        })?;
        let in_content = target.strip_prefix(content).unwrap_or(target);
        match rustix::fs::openat2(
            &content_fd,
            in_content,
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            BENEATH,
        ) {
            Ok(_) | Err(Errno::NOENT) | Err(Errno::NOTDIR) => {}
            Err(_) => {
                return Err(StorageError::Link {
                    path: rel.to_owned(),
                    why: LinkWhy::TargetOutside,
                    op: Op::Create,
                })
            }
        }
        let st = self.with_parent(rel, Op::Create, |dir, name| {
            rustix::fs::symlinkat(text, dir, name)?;
            rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
        })?;
        self.links.ledger.record(st.st_dev, st.st_ino);
        Ok(())
    }

    /// Deletes the file (or symlink: the link itself, never its target) at `rel`. Ok when
    /// nothing is there.
    pub fn remove_file(&self, rel: &Path) -> Result<()> {
        match self.with_parent(rel, Op::Delete, |dir, name| {
            rustix::fs::unlinkat(dir, name, AtFlags::empty())
        }) {
            Err(StorageError::Io { error, .. }) if error.kind() == std::io::ErrorKind::NotFound => {
                Ok(())
            }
            r => r,
        }
    }

    /// Deletes the folder `rel` if it is empty (an error otherwise).
    pub fn remove_empty_dir(&self, rel: &Path) -> Result<()> {
        self.with_parent(rel, Op::Delete, |dir, name| {
            rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)
        })
    }

    /// Deletes `rel` and, if it is a folder, everything in it; symlinks are removed, never
    /// followed. Ok when nothing is there.
    pub fn remove_tree(&self, rel: &Path) -> Result<()> {
        let st = self.with_parent(rel, Op::Delete, |dir, name| {
            rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
        });
        let st = match st {
            Ok(st) => st,
            Err(StorageError::Io { error, .. }) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(())
            }
            Err(e) => return Err(e),
        };
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            for name in self.list_dir(rel)? {
                self.remove_tree(&rel.join(name))?;
            }
            self.remove_empty_dir(rel)
        } else {
            self.remove_file(rel)
        }
    }

    /// The names in the folder `rel`.
    pub fn list_dir(&self, rel: &Path) -> Result<Vec<std::ffi::OsString>> {
        use std::os::unix::ffi::OsStrExt;
        let fd = self.resolve(
            rel,
            OFlags::RDONLY | OFlags::DIRECTORY,
            Mode::empty(),
            Op::Read,
        )?;
        let dir = rustix::fs::Dir::read_from(&fd).map_err(|e| self.err(rel, e))?;
        let mut names = Vec::new();
        for entry in dir {
            let entry = entry.map_err(|e| self.err(rel, e))?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                names.push(std::ffi::OsStr::from_bytes(name).to_owned());
            }
        }
        Ok(names)
    }

    /// Renames `rel` to `to_rel` below `to` (another root, or this one). An error of kind
    /// `CrossesDevices` when they are on different filesystems.
    pub fn rename(&self, rel: &Path, to: &Root, to_rel: &Path) -> Result<()> {
        let Some(root) = &self.fd else {
            return Err(StorageError::Escapes(rel.to_owned()));
        };
        let Some(to_root) = &to.fd else {
            return Err(StorageError::Escapes(to_rel.to_owned()));
        };
        let (from_fd, from_name) = self.parent(rel, Op::Move)?;
        if let Some(p) = to_rel.parent().filter(|p| !p.as_os_str().is_empty()) {
            to.create_dirs(p)?;
        }
        let (to_fd, to_name) = to.parent(to_rel, Op::Move)?;
        let from_dir = from_fd.as_ref().map_or(root.as_fd(), |f| f.as_fd());
        let to_dir = to_fd.as_ref().map_or(to_root.as_fd(), |f| f.as_fd());
        rustix::fs::renameat_with(
            from_dir,
            from_name,
            to_dir,
            to_name,
            rustix::fs::RenameFlags::NOREPLACE,
        )
        .map_err(|e| self.err(rel, e))
    }

    /// Moves `from` to `to` (both below this root): a rename where they share a filesystem,
    /// else a copy that keeps symlinks as links, then a delete of the original. A
    /// destination inside `from` is refused; an existing destination is not replaced.
    pub fn move_tree(&self, from: &Path, to: &Path) -> Result<()> {
        if to.starts_with(from) {
            return Err(StorageError::Refused(format!(
                "cannot move {} into itself ({})",
                from.display(),
                to.display()
            )));
        }
        if !self.exists(from) {
            return Ok(());
        }
        match self.rename(from, self, to) {
            Err(StorageError::Io { error, .. })
                if error.raw_os_error() == Some(Errno::XDEV.raw_os_error()) =>
            {
                self.copy_tree(from, self, to)?;
                self.remove_tree(from)
            }
            r => r,
        }
    }

    /// Copies `rel` (a file, a symlink or a folder, recursively) to `to_rel` below `to`,
    /// never following a symlink: a link is copied as a link with the same text.
    pub fn copy_tree(&self, rel: &Path, to: &Root, to_rel: &Path) -> Result<()> {
        let st = self.with_parent(rel, Op::Read, |dir, name| {
            rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
        })?;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                to.create_dirs(to_rel)?;
                for name in self.list_dir(rel)? {
                    self.copy_tree(&rel.join(&name), to, &to_rel.join(&name))?;
                }
                Ok(())
            }
            FileType::Symlink => {
                let text = self.with_parent(rel, Op::Read, |dir, name| {
                    rustix::fs::readlinkat(dir, name, Vec::new())
                })?;
                use std::os::unix::ffi::OsStrExt;
                let text = Path::new(std::ffi::OsStr::from_bytes(text.as_bytes()));
                if let Some(p) = to_rel.parent().filter(|p| !p.as_os_str().is_empty()) {
                    to.create_dirs(p)?;
                }
                to.with_parent(to_rel, Op::Create, |dir, name| {
                    rustix::fs::symlinkat(text, dir, name)
                })
            }
            FileType::RegularFile => {
                let mut src = self.read_file(rel)?;
                let fd = {
                    if let Some(p) = to_rel.parent().filter(|p| !p.as_os_str().is_empty()) {
                        to.create_dirs(p)?;
                    }
                    to.resolve(
                        to_rel,
                        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL,
                        Mode::from_raw_mode(st.st_mode & 0o777),
                        Op::Create,
                    )?
                };
                let mut dst: File = fd.into();
                std::io::copy(&mut src, &mut dst).map_err(StorageError::io(to.display(to_rel)))?;
                Ok(())
            }
            // Pipes, sockets and devices are not a torrent's.
            _ => Ok(()),
        }
    }
}

/// A refusal met on the way to `rel` (creating its folders) is told as `rel`'s: the file
/// named is the one that was not written.
fn about(e: StorageError, rel: &Path) -> StorageError {
    match e {
        StorageError::Link { why, op, .. } => StorageError::Link {
            path: rel.to_owned(),
            why,
            op,
        },
        e => e,
    }
}

/// `rel` must be plain path elements: no root, no `.` or `..`, not empty.
fn check_plain(rel: &Path) -> Result<()> {
    let ok = rel.components().next().is_some()
        && rel.components().all(|c| matches!(c, Component::Normal(_)));
    if ok {
        Ok(())
    } else {
        Err(StorageError::Escapes(rel.to_owned()))
    }
}

#[cfg(test)]
mod tests;
