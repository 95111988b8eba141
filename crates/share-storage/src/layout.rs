//! A torrent's byte stream mapped onto the files that hold it.

use std::path::{Component, Path, PathBuf};

use share_core::Info;

use crate::{Result, StorageError};

/// One file of the content, with its place in the byte stream.
#[derive(Debug, Clone)]
pub struct Slot {
    pub path: PathBuf,
    pub length: u64,
    pub offset: u64,
    /// BEP 47 padding: reads as zeros, never written.
    pub padding: bool,
}

/// The content's files in torrent order, plus the piece geometry.
#[derive(Debug, Clone)]
pub struct Layout {
    pub slots: Vec<Slot>,
    pub piece_length: u32,
    pub total_length: u64,
}

/// A part of a byte range that falls inside one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub slot: usize,
    /// Offset inside that file.
    pub file_offset: u64,
    pub len: usize,
    /// Offset of the segment inside the requested range.
    pub buf_offset: usize,
}

impl Layout {
    /// The layout of `info`'s content under `dir` (`dir/NAME` or `dir/NAME/...`). Every path is
    /// checked to stay below `dir`, even though the metainfo reader already refused unsafe ones.
    pub fn for_torrent(dir: &Path, info: &Info) -> Result<Layout> {
        let root = dir.join(&info.name);
        let slots = info
            .files
            .iter()
            .map(|f| {
                let path = f.path.iter().fold(root.clone(), |p, c| p.join(c));
                let rel = path.strip_prefix(dir).unwrap_or(&path);
                if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
                    return Err(StorageError::Escapes(path));
                }
                Ok(Slot {
                    path,
                    length: f.length,
                    offset: f.offset,
                    padding: f.padding,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Layout {
            slots,
            piece_length: info.piece_length,
            total_length: info.total_length,
        })
    }

    /// A layout over files on disk, in the given order (for creating a torrent).
    pub fn from_files(files: impl IntoIterator<Item = (PathBuf, u64)>, piece_length: u32) -> Self {
        let mut offset = 0;
        let slots = files
            .into_iter()
            .map(|(path, length)| {
                let s = Slot {
                    path,
                    length,
                    offset,
                    padding: false,
                };
                offset += length;
                s
            })
            .collect();
        Layout {
            slots,
            piece_length,
            total_length: offset,
        }
    }

    pub fn piece_count(&self) -> u32 {
        self.total_length.div_ceil(self.piece_length as u64) as u32
    }

    /// Byte offset and length of piece `index`.
    pub fn piece_range(&self, index: u32) -> (u64, usize) {
        let start = index as u64 * self.piece_length as u64;
        let len = self
            .total_length
            .saturating_sub(start)
            .min(self.piece_length as u64);
        (start, len as usize)
    }

    /// The parts of `offset..offset+len` in each file, in order, skipping empty files.
    pub fn segments(&self, offset: u64, len: usize) -> Result<impl Iterator<Item = Segment> + '_> {
        let end = offset
            .checked_add(len as u64)
            .filter(|&e| e <= self.total_length)
            .ok_or(StorageError::OutOfRange {
                offset,
                len: len as u64,
                total: self.total_length,
            })?;
        // First file whose end lies beyond `offset`.
        let first = self
            .slots
            .partition_point(|s| s.offset + s.length <= offset);
        Ok(self.slots[first..]
            .iter()
            .enumerate()
            .take_while(move |(_, s)| s.offset < end)
            .filter(|(_, s)| s.length > 0)
            .map(move |(i, s)| {
                let from = offset.max(s.offset);
                let to = end.min(s.offset + s.length);
                Segment {
                    slot: first + i,
                    file_offset: from - s.offset,
                    len: (to - from) as usize,
                    buf_offset: (from - offset) as usize,
                }
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(lens: &[u64], piece: u32) -> Layout {
        Layout::from_files(
            lens.iter()
                .enumerate()
                .map(|(i, &l)| (PathBuf::from(i.to_string()), l)),
            piece,
        )
    }

    #[test]
    fn a_piece_spans_several_files_and_skips_empty_ones() {
        let l = layout(&[10, 0, 5, 20], 16);
        let segs: Vec<_> = l.segments(8, 16).unwrap().collect();
        assert_eq!(
            segs,
            vec![
                Segment {
                    slot: 0,
                    file_offset: 8,
                    len: 2,
                    buf_offset: 0
                },
                Segment {
                    slot: 2,
                    file_offset: 0,
                    len: 5,
                    buf_offset: 2
                },
                Segment {
                    slot: 3,
                    file_offset: 0,
                    len: 9,
                    buf_offset: 7
                },
            ]
        );
        assert_eq!(l.piece_count(), 3);
        assert_eq!(l.piece_range(2), (32, 3));
    }

    #[test]
    fn ranges_past_the_end_are_refused() {
        let l = layout(&[10], 16);
        assert!(l.segments(5, 6).is_err());
        assert!(l.segments(u64::MAX, 2).is_err());
        assert_eq!(l.segments(10, 0).unwrap().count(), 0);
    }
}
