//! A torrent's byte stream mapped onto the files that hold it, and where each file goes:
//! a path of plain elements below a [`Root`] (the download folder), which resolves it with
//! no escape. Every path, and every symlink's target, is checked to be plain elements.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use share_core::Info;

use crate::root::Root;
use crate::{Result, StorageError};

/// One file of the content, with its place in the byte stream.
#[derive(Debug, Clone)]
pub struct Slot {
    /// Below the layout's root: `[PREFIX/]NAME[/dir/file]`.
    pub path: PathBuf,
    pub length: u64,
    pub offset: u64,
    /// BEP 47 padding: reads as zeros, never written, never created.
    pub padding: bool,
    /// BEP 47 `x`: created (or found) with its execute bits set.
    pub executable: bool,
    /// BEP 47 `l`: a symlink to be created at `path`; such a slot has no bytes.
    pub symlink: Option<LinkSlot>,
}

/// A torrent's symlink: the text it holds, and the target that text names (below the root),
/// which must resolve inside the torrent's folder when the link is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSlot {
    pub text: PathBuf,
    pub target: PathBuf,
}

/// The content's files in torrent order, plus the piece geometry, below a root.
#[derive(Debug, Clone)]
pub struct Layout {
    pub root: Arc<Root>,
    /// The torrent's folder (or single file) below the root: `[PREFIX/]NAME`.
    pub content: PathBuf,
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
    /// The layout of `info`'s content at `prefix/NAME` below `root` (`prefix` may be empty:
    /// the root is the download folder itself). Every path, and every symlink target, must be
    /// plain elements, even though the metainfo reader already made them so.
    pub fn for_torrent(root: Arc<Root>, prefix: &Path, info: &Info) -> Result<Layout> {
        if !prefix.as_os_str().is_empty() && !all_normal(prefix) {
            return Err(StorageError::Escapes(prefix.to_owned()));
        }
        let content = prefix.join(&info.name);
        if !one_element(&info.name) {
            return Err(StorageError::Escapes(content));
        }
        let slots = info
            .files
            .iter()
            .map(|f| {
                let path = f.path.iter().fold(content.clone(), |p, c| p.join(c));
                if !all_normal(&path) || !f.path.iter().all(|c| one_element(c)) {
                    return Err(StorageError::Escapes(path));
                }
                let symlink = match &f.symlink {
                    Some(target) => Some(LinkSlot {
                        text: link_text(&f.path, target)
                            .ok_or_else(|| StorageError::Escapes(path.clone()))?,
                        target: target.iter().fold(content.clone(), |p, c| p.join(c)),
                    }),
                    None => None,
                };
                Ok(Slot {
                    path,
                    length: f.length,
                    offset: f.offset,
                    padding: f.padding,
                    executable: f.executable,
                    symlink,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Layout {
            root,
            content,
            slots,
            piece_length: info.piece_length,
            total_length: info.total_length,
        })
    }

    /// A layout over the user's own files, by their paths, in the given order (for creating
    /// a torrent: not confined, see [`Root::unconfined`]).
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
                    executable: false,
                    symlink: None,
                };
                offset += length;
                s
            })
            .collect();
        Layout {
            root: Arc::new(Root::unconfined()),
            content: PathBuf::new(),
            slots,
            piece_length,
            total_length: offset,
        }
    }

    /// Deletes the torrent's files (a symlink slot: the link itself), then the folders below
    /// its content root that are left empty, deepest first. Nothing else is touched: every
    /// path resolves beneath the root and no link is followed. A file that cannot be
    /// deleted does not stop the others; the first such error is returned.
    pub fn delete(&self) -> Result<()> {
        let mut first = None;
        for s in self.slots.iter().filter(|s| !s.padding) {
            if let Err(e) = self.root.remove_file(&s.path) {
                first.get_or_insert(e);
            }
        }
        let mut dirs: Vec<&Path> = self
            .slots
            .iter()
            .flat_map(|s| s.path.ancestors().skip(1))
            .filter(|d| d.starts_with(&self.content))
            .collect();
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        dirs.dedup();
        for d in dirs {
            let _ = self.root.remove_empty_dir(d);
        }
        first.map_or(Ok(()), Err)
    }

    /// Where slot `i`'s file is, for messages.
    pub fn display(&self, i: usize) -> PathBuf {
        self.root.display(&self.slots[i].path)
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

fn all_normal(p: &Path) -> bool {
    p.components().all(|c| matches!(c, Component::Normal(_)))
}

/// Whether `c` is exactly one normal path element (no separator, not `.` or `..`).
fn one_element(c: &str) -> bool {
    let mut parts = Path::new(c).components();
    matches!(parts.next(), Some(Component::Normal(n)) if n == c) && parts.next().is_none()
}

/// The text of a symlink at `link` (elements below the content root) pointing to `target`
/// (elements below the root too): up from the link's folder to the root, then down. `None`
/// unless both are plain elements, so the link cannot resolve outside the root.
fn link_text(link: &[String], target: &[String]) -> Option<PathBuf> {
    if target.is_empty() || !target.iter().chain(link).all(|c| one_element(c)) {
        return None;
    }
    let up = link.len().checked_sub(1)?;
    let mut text = PathBuf::new();
    (0..up).for_each(|_| text.push(".."));
    target.iter().for_each(|c| text.push(c));
    Some(text)
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
    fn a_symlink_target_climbs_only_to_the_content_root() {
        let v = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            link_text(&v(&["a", "b", "link"]), &v(&["c", "d"])),
            Some(PathBuf::from("../../c/d"))
        );
        assert_eq!(
            link_text(&v(&["link"]), &v(&["d"])),
            Some(PathBuf::from("d"))
        );
        for bad in [&["..", "x"][..], &["a/b"], &["."], &[]] {
            assert_eq!(link_text(&v(&["link"]), &v(bad)), None, "{bad:?}");
        }
        assert_eq!(link_text(&[], &v(&["d"])), None, "a single file is no link");
    }

    #[test]
    fn ranges_past_the_end_are_refused() {
        let l = layout(&[10], 16);
        assert!(l.segments(5, 6).is_err());
        assert!(l.segments(u64::MAX, 2).is_err());
        assert_eq!(l.segments(10, 0).unwrap().count(), 0);
    }
}
