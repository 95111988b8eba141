//! The files of a path that is being turned into a torrent.
//!
//! A folder's files are listed the way mktorrent lists them, so that the same content gives
//! the same info-hash: every regular file below the folder (hidden ones and empty ones too),
//! symbolic links followed, sorted by plain byte comparison of the whole relative path with
//! `/` separators. Unlike mktorrent, a symbolic link loop or an unreadable file is an error,
//! not a crash or a silently different torrent. Pipes, sockets and devices are skipped.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::{Result, StorageError};

/// One file found by [`list_files`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundFile {
    pub path: PathBuf,
    /// Components below the walked folder (empty when the walked path is itself a file).
    pub components: Vec<String>,
    pub length: u64,
}

/// The files of `root`, a file or a folder. For a file, one entry with no components.
pub fn list_files(root: &Path) -> Result<Vec<FoundFile>> {
    let meta = fs::metadata(root).map_err(StorageError::io(root))?;
    if meta.is_file() {
        check_readable(root)?;
        return Ok(vec![FoundFile {
            path: root.to_owned(),
            components: Vec::new(),
            length: meta.len(),
        }]);
    }
    /// A folder still to read: its relative components, and the (dev, inode) of every folder
    /// on its path, to tell a symbolic link loop from a link to elsewhere.
    struct Pending {
        dir: PathBuf,
        rel: Vec<String>,
        ancestors: Vec<(u64, u64)>,
    }
    let mut found = Vec::new();
    let mut todo = vec![Pending {
        dir: root.to_owned(),
        rel: Vec::new(),
        ancestors: vec![(meta.dev(), meta.ino())],
    }];
    while let Some(Pending {
        dir,
        rel,
        ancestors,
    }) = todo.pop()
    {
        for entry in fs::read_dir(&dir).map_err(StorageError::io(&dir))? {
            let entry = entry.map_err(StorageError::io(&dir))?;
            let path = entry.path();
            let name = entry.file_name();
            let name = std::str::from_utf8(name.as_bytes())
                .map_err(|_| StorageError::Io {
                    path: path.clone(),
                    error: std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "file name is not UTF-8",
                    ),
                })?
                .to_owned();
            let meta = fs::metadata(&path).map_err(StorageError::io(&path))?;
            let mut components = rel.clone();
            components.push(name);
            if meta.is_dir() {
                let id = (meta.dev(), meta.ino());
                if ancestors.contains(&id) {
                    return Err(StorageError::SymlinkLoop(path));
                }
                let mut chain = ancestors.clone();
                chain.push(id);
                todo.push(Pending {
                    dir: path,
                    rel: components,
                    ancestors: chain,
                });
            } else if meta.is_file() {
                check_readable(&path)?;
                found.push(FoundFile {
                    path,
                    components,
                    length: meta.len(),
                });
            }
        }
    }
    found.sort_by_cached_key(|f| f.components.join("/"));
    if found.is_empty() {
        return Err(StorageError::NoFiles(root.to_owned()));
    }
    Ok(found)
}

fn check_readable(path: &Path) -> Result<()> {
    fs::File::open(path)
        .map(drop)
        .map_err(StorageError::io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_like_mktorrent_whole_path_byte_order() {
        let d = tempfile::tempdir().unwrap();
        for p in [
            "a b", "a-c/x", "a.txt", "a/b", "a0", ".hidden", "B", "_x", "empty",
        ] {
            let path = d.path().join(p);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, if p == "empty" { "" } else { "data" }).unwrap();
        }
        let names: Vec<String> = list_files(d.path())
            .unwrap()
            .iter()
            .map(|f| f.components.join("/"))
            .collect();
        assert_eq!(
            names,
            [".hidden", "B", "_x", "a b", "a-c/x", "a.txt", "a/b", "a0", "empty"]
        );
    }

    #[test]
    fn a_symlink_loop_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("sub")).unwrap();
        fs::write(d.path().join("sub/f"), "x").unwrap();
        std::os::unix::fs::symlink("..", d.path().join("sub/up")).unwrap();
        let err = list_files(d.path()).unwrap_err();
        assert!(matches!(err, StorageError::SymlinkLoop(_)), "{err}");
    }

    #[test]
    fn links_to_files_are_followed_and_empty_folders_are_an_error() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("real"), "abc").unwrap();
        std::os::unix::fs::symlink("real", d.path().join("link")).unwrap();
        let files = list_files(d.path()).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].length, 3);
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            list_files(empty.path()),
            Err(StorageError::NoFiles(_))
        ));
    }
}
