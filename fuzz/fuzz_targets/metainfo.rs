//! The .torrent reader on arbitrary bytes: it may refuse them, never panic or overflow.
#![no_main]
use libfuzzer_sys::fuzz_target;

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
    }
});
