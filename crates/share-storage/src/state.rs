//! Files that outlive a run (a magnet's metadata, and later resume data and the DHT's
//! routing table), written so that a crash never leaves half a file: write a temporary file
//! beside the target, flush it to disk, then rename it over the target.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use crate::{Result, StorageError};

/// Largest state file read back.
pub const MAX_STATE_FILE: u64 = 64 << 20;

/// Writes `bytes` to `path` atomically, creating its folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(StorageError::io(parent))?;
    }
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Some(parent) = path.parent() {
            // The rename itself is durable once the folder is synced.
            if let Ok(d) = File::open(parent) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(StorageError::io(path))
}

/// Reads a state file, if it exists and is not larger than [`MAX_STATE_FILE`].
pub fn read(path: &Path) -> Option<Vec<u8>> {
    let meta = fs::metadata(path).ok()?;
    if meta.len() > MAX_STATE_FILE {
        return None;
    }
    fs::read(path).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_replace_the_whole_file_and_leave_no_temporary_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/state.bin");
        write_atomic(&path, b"first version, longer").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(read(&path).unwrap(), b"second");
        let names: Vec<_> = fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec!["state.bin"]);
        assert!(read(&dir.path().join("missing")).is_none());
    }
}
