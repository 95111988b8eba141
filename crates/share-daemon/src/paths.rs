//! Folders and files an RPC call names, kept inside the folders the daemon was given.
//!
//! A `download-dir` is taken relative to the daemon's download folder, or as an absolute
//! path that must lie inside it; `..`, a NUL byte, or a symlink that leads outside is refused.
//! A `torrent-add` `filename` that is a local path must be a file inside the download
//! folder or the watch folder.

use std::path::{Component, Path, PathBuf};

/// Why a path from an RPC call is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("{0:?} is outside the daemon's folders")]
    Outside(String),
    #[error("{0:?} is not a usable path")]
    Bad(String),
    #[error("{0:?}: no such file")]
    Missing(String),
}

/// `path` with `.` dropped; `None` if it climbs with `..` or holds a NUL byte.
fn normal(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::RootDir | Component::Prefix(_) => out.push(c.as_os_str()),
            Component::CurDir => {}
            Component::Normal(n) => {
                if n.to_string_lossy().contains('\0') {
                    return None;
                }
                out.push(n)
            }
            Component::ParentDir => return None,
        }
    }
    Some(out)
}

/// The deepest existing ancestor of `path`, canonicalized, with the rest appended: where the
/// path really leads, symlinks included, even before it exists.
fn real(path: &Path) -> PathBuf {
    let mut head = path.to_path_buf();
    let mut tail = Vec::new();
    loop {
        if let Ok(c) = head.canonicalize() {
            let mut out = c;
            for t in tail.iter().rev() {
                out.push(t);
            }
            return out;
        }
        match (head.file_name().map(|n| n.to_owned()), head.parent()) {
            (Some(n), Some(p)) => {
                tail.push(n);
                head = p.to_path_buf();
            }
            _ => return path.to_path_buf(),
        }
    }
}

fn inside(root: &Path, path: &Path) -> bool {
    real(path).starts_with(real(root))
}

/// Resolves a `download-dir` from the RPC: inside `root`, or refused.
pub fn download_dir(root: &Path, asked: &str) -> Result<PathBuf, PathError> {
    let p = Path::new(asked);
    let n = normal(p).ok_or_else(|| PathError::Bad(asked.to_owned()))?;
    let full = if n.is_absolute() { n } else { root.join(n) };
    if !inside(root, &full) {
        return Err(PathError::Outside(asked.to_owned()));
    }
    Ok(full)
}

/// A local .torrent (or .magnet) file named by `torrent-add`: inside one of `allowed`.
pub fn local_file(allowed: &[&Path], asked: &str) -> Result<PathBuf, PathError> {
    let p = Path::new(asked);
    let n = normal(p).ok_or_else(|| PathError::Bad(asked.to_owned()))?;
    if !n.is_absolute() {
        return Err(PathError::Bad(asked.to_owned()));
    }
    if !allowed.iter().any(|root| inside(root, &n)) {
        return Err(PathError::Outside(asked.to_owned()));
    }
    if !n.is_file() {
        return Err(PathError::Missing(asked.to_owned()));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn download_folders_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("dl");
        std::fs::create_dir_all(root.join("movies")).unwrap();
        assert_eq!(download_dir(&root, "movies").unwrap(), root.join("movies"));
        assert_eq!(
            download_dir(&root, root.join("tv/new").to_str().unwrap()).unwrap(),
            root.join("tv/new")
        );
        for bad in ["../..", "/etc", "movies/../../x", "/", "a\0b"] {
            assert!(download_dir(&root, bad).is_err(), "{bad}");
        }
        // A symlink inside the root that points outside is outside.
        std::os::unix::fs::symlink("/etc", root.join("sneaky")).unwrap();
        assert_eq!(
            download_dir(&root, "sneaky/x"),
            Err(PathError::Outside("sneaky/x".into()))
        );
    }

    #[test]
    fn local_torrent_files_must_be_inside_an_allowed_folder() {
        let dir = tempfile::tempdir().unwrap();
        let watch = dir.path().join("watch");
        std::fs::create_dir_all(&watch).unwrap();
        std::fs::write(watch.join("a.torrent"), b"d").unwrap();
        let ok = watch.join("a.torrent");
        assert_eq!(local_file(&[&watch], ok.to_str().unwrap()).unwrap(), ok);
        assert!(matches!(
            local_file(&[&watch], "/etc/passwd"),
            Err(PathError::Outside(_))
        ));
        assert!(matches!(
            local_file(&[&watch], "a.torrent"),
            Err(PathError::Bad(_))
        ));
        assert!(matches!(
            local_file(&[&watch], watch.join("none").to_str().unwrap()),
            Err(PathError::Missing(_))
        ));
    }
}
