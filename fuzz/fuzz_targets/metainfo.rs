//! The .torrent reader on arbitrary bytes: it may refuse them, never panic or overflow, and
//! whatever it accepts is safe to lay out on disk.
#![no_main]
use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;

/// One element the storage layer can join under the download folder without leaving it.
fn safe(c: &str) -> bool {
    !c.is_empty()
        && c != "."
        && c != ".."
        && c.len() <= share_core::metainfo::MAX_COMPONENT_LEN
        && !c.contains(['/', '\\', '\0'])
}

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = share_core::Metainfo::from_bytes(data) {
        // Everything a valid torrent promises holds.
        let info = &m.info;
        assert_eq!(info.pieces.len() % 20, 0);
        assert!(info.piece_count() as u64 * info.piece_length as u64 >= info.total_length);
        for i in 0..info.piece_count() {
            assert!(info.piece_size(i) > 0);
        }
        let _ = m.magnet();
        // Sanitized: every path is made of safe elements, and no two files that reach the
        // disk share a path, ignoring case.
        assert!(safe(&info.name), "{:?}", info.name);
        let mut seen = HashSet::new();
        for f in info.files.iter().filter(|f| !f.padding) {
            assert!(f.path.iter().all(|c| safe(c)), "{:?}", f.path);
            assert!(info.single_file || !f.path.is_empty());
            assert!(seen.insert(f.path.join("/").to_lowercase()), "{:?}", f.path);
            if let Some(target) = &f.symlink {
                assert!(!target.is_empty() && target.iter().all(|c| safe(c)));
                assert_eq!(f.length, 0);
            }
        }
        assert!(info.warnings.len() <= 101);
    }
});
