//! Small state files that outlive a run (the DHT routing table, and the like): read with a
//! size bound, written atomically (a temporary file beside the target, fsync, rename, fsync
//! of the folder), so a crash leaves either the old file or the new one, never half of one.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;

use crate::{Result, StorageError};

/// Reads `path` if it exists; `None` when it does not, an error when it is over `max_len`.
pub fn read_state(path: &Path, max_len: u64) -> Result<Option<Vec<u8>>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StorageError::io(path)(e)),
    };
    let mut buf = Vec::new();
    file.take(max_len + 1)
        .read_to_end(&mut buf)
        .map_err(StorageError::io(path))?;
    if buf.len() as u64 > max_len {
        return Err(StorageError::io(path)(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("state file larger than {max_len} bytes"),
        )));
    }
    Ok(Some(buf))
}

/// Replaces `path` with `bytes` atomically, creating its folder if needed.
pub fn write_state(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(StorageError::io(dir))?;
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp{}", std::process::id()));
    let tmp = dir.join(name);
    let written = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(StorageError::io(&tmp)(e));
    }
    fs::rename(&tmp, path).map_err(StorageError::io(path))?;
    // The rename is durable once the folder is synced.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_read_and_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/dht.dat");
        assert!(read_state(&path, 10).unwrap().is_none());
        write_state(&path, b"hello").unwrap();
        write_state(&path, b"world!").unwrap();
        assert_eq!(read_state(&path, 10).unwrap().unwrap(), b"world!");
        assert!(read_state(&path, 3).is_err());
        let leftovers = fs::read_dir(path.parent().unwrap()).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary file left behind");
    }
}
