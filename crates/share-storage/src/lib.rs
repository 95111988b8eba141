//! share's disk layer: the only place that builds paths and touches files.
//!
//! - [`layout`]: a torrent's byte stream mapped onto files (a piece may span several).
//! - [`walk`]: the files of a folder being turned into a torrent, in mktorrent's order.
//! - [`hash`]: pieces hashed or checked on all cores, reading overlapped with hashing, with
//!   memory bounded by one piece buffer per thread whatever the content's size.
//! - [`root`]: confined file access: every path of a torrent resolved by the kernel beneath
//!   a directory handle of its download folder, symlinks followed only as the policy says.
//! - [`store`]: positional block reads and writes for a transfer.
//! - [`resume`]: verified pieces and file stamps, so a restart need not rehash.
//! - [`state`]: small state files (the DHT table), read bounded and written atomically.

pub mod buf;
pub mod hash;
pub mod layout;
pub mod resume;
pub mod root;
pub mod state;
pub mod store;
pub mod walk;

use std::path::PathBuf;

pub use layout::Layout;

/// A disk operation that failed, with the path it was about. Each message holds the text of
/// its cause, which is not also a `source`: a printed chain says it once.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{0}: symbolic link loop")]
    SymlinkLoop(PathBuf),
    #[error("{0}: no files to share")]
    NoFiles(PathBuf),
    #[error("{path}: file changed size while reading (expected {expected} bytes)")]
    ShortFile { path: PathBuf, expected: u64 },
    #[error("{0}: the path leaves the download folder")]
    Escapes(PathBuf),
    /// A path refused for a symlink on it (below the download folder).
    #[error("{}", root::link_message(path, *why, *op))]
    Link {
        path: PathBuf,
        why: root::LinkWhy,
        op: root::Op,
    },
    #[error("{0}")]
    Refused(String),
    #[error("read or write out of range: {offset}+{len} beyond {total}")]
    OutOfRange { offset: u64, len: u64, total: u64 },
}

impl StorageError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> StorageError {
        let path = path.into();
        move |error| StorageError::Io { path, error }
    }
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;
