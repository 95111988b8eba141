//! The `info` dictionary, from its raw decoded form to a validated [`Info`].
//!
//! Names and paths pass the sanitizing rule ([`super::sanitize`]), BEP 47 attributes become
//! fields of [`FileEntry`], a hybrid torrent's v2 file tree is checked against its v1 files
//! ([`super::v2`]), and the geometry is checked: piece count against total size, lengths
//! that add up without overflow. What had to change on the way is said in
//! [`Info::warnings`].

use serde::Deserialize;
use serde_bytes::ByteBuf;

use super::{sanitize, v2, FileEntry, Info, MetainfoError, MAX_FILES, MAX_PIECE_LENGTH};
use crate::InfoHashes;

#[derive(Deserialize)]
pub(super) struct RawInfo {
    name: ByteBuf,
    #[serde(rename = "name.utf-8")]
    name_utf8: Option<ByteBuf>,
    #[serde(rename = "piece length")]
    piece_length: i64,
    pieces: Option<ByteBuf>,
    length: Option<i64>,
    files: Option<Vec<RawFile>>,
    private: Option<i64>,
    /// BEP 47 attributes of a single-file torrent's file.
    attr: Option<ByteBuf>,
    #[serde(rename = "meta version")]
    meta_version: Option<i64>,
}

#[derive(Deserialize)]
struct RawFile {
    /// Absent for a symlink, which holds no bytes.
    length: Option<i64>,
    /// Absent for some padding files.
    path: Option<Vec<ByteBuf>>,
    #[serde(rename = "path.utf-8")]
    path_utf8: Option<Vec<ByteBuf>>,
    attr: Option<ByteBuf>,
    #[serde(rename = "symlink path")]
    symlink_path: Option<Vec<ByteBuf>>,
}

/// Most warnings kept; past it they are counted.
const MAX_WARNINGS: usize = 100;

/// Warnings about what was changed to load a torrent, bounded in number.
#[derive(Default)]
struct Warnings {
    kept: Vec<String>,
    more: usize,
}

impl Warnings {
    fn add(&mut self, w: impl FnOnce() -> String) {
        if self.kept.len() < MAX_WARNINGS {
            self.kept.push(w());
        } else {
            self.more += 1;
        }
    }

    fn finish(mut self) -> Vec<String> {
        if self.more > 0 {
            self.kept
                .push(format!("... and {} more warnings", self.more));
        }
        self.kept
    }
}

/// BEP 47 `attr`: characters in any order, unknown ones ignored.
#[derive(Default, Clone, Copy)]
struct Attr {
    padding: bool,
    executable: bool,
    hidden: bool,
    symlink: bool,
}

fn attributes(attr: Option<&ByteBuf>) -> Attr {
    let a = attr.map(|a| a.as_slice()).unwrap_or_default();
    Attr {
        padding: a.contains(&b'p'),
        executable: a.contains(&b'x'),
        hidden: a.contains(&b'h'),
        symlink: a.contains(&b'l'),
    }
}

/// BitComet marks its padding files by name, without `attr`.
const BITCOMET_PADDING: &[u8] = b"_____padding_file_";

impl RawFile {
    fn attr(&self) -> Attr {
        let mut a = attributes(self.attr.as_ref());
        let bitcomet = self
            .path
            .iter()
            .flatten()
            .last()
            .is_some_and(|last| last.starts_with(BITCOMET_PADDING));
        a.padding |= bitcomet;
        a
    }

    /// The path to use: `path.utf-8` when it is valid UTF-8, `path` otherwise, and
    /// `path.utf-8` as it is when there is no `path` (as libtorrent reads it).
    fn raw_path(&self) -> Option<&[ByteBuf]> {
        let utf8 = self
            .path_utf8
            .as_deref()
            .filter(|p| p.iter().all(|c| std::str::from_utf8(c).is_ok()));
        utf8.or(self.path.as_deref()).or(self.path_utf8.as_deref())
    }

    /// Its length in the byte stream: a symlink holds none (as libtorrent reads it).
    fn length(&self, attr: Attr) -> Result<u64, MetainfoError> {
        if attr.symlink {
            return Ok(0);
        }
        let len = self
            .length
            .ok_or_else(|| MetainfoError::BadInfo("a file has no `length`".into()))?;
        u64::try_from(len).map_err(|_| MetainfoError::BadLength(len))
    }
}

/// Validates `raw`, the decoded `info` of a torrent whose hashes are `hashes`; `tree` is the
/// raw `file tree` (BEP 52) when there is one.
pub(super) fn validate(
    raw: RawInfo,
    tree: Option<&[u8]>,
    hashes: &InfoHashes,
) -> Result<Info, MetainfoError> {
    let mut warnings = Warnings::default();
    if raw.piece_length <= 0 || raw.piece_length as u64 > MAX_PIECE_LENGTH {
        return Err(MetainfoError::BadPieceLength(raw.piece_length));
    }
    let piece_length = raw.piece_length as u32;
    let version = raw.meta_version.unwrap_or(1);
    if version > 2 {
        return Err(MetainfoError::UnknownVersion(version));
    }
    let tree = match (version, tree) {
        (2, Some(t)) => Some(v2::read_tree(t, MAX_FILES).map_err(MetainfoError::BadFileTree)?),
        (2, None) => {
            warnings.add(|| {
                "`meta version` is 2 but there is no `file tree`: read as a v1 torrent".into()
            });
            None
        }
        (_, Some(_)) => {
            warnings.add(|| "a `file tree` without `meta version` 2 is ignored".into());
            None
        }
        _ => None,
    };
    if tree.is_some() && (!piece_length.is_power_of_two() || piece_length < 16384) {
        return Err(MetainfoError::V2PieceLength(piece_length));
    }
    if let Some(p) = &raw.pieces {
        if !p.len().is_multiple_of(20) {
            return Err(MetainfoError::PiecesNotMultipleOf20(p.len()));
        }
    }
    let raw_name = raw
        .name_utf8
        .as_deref()
        .filter(|n| std::str::from_utf8(n).is_ok())
        .unwrap_or(&raw.name);
    let fallback = || hashes.display();
    let mut name = sanitize::element(raw_name).unwrap_or_else(fallback);
    if name.as_bytes() != raw_name {
        warnings.add(|| {
            format!(
                "the name {:?} is stored as {name:?}",
                String::from_utf8_lossy(raw_name)
            )
        });
    }

    let (files, single_file) = match (&raw.pieces, &tree) {
        (Some(_), tree) => {
            let (mut files, single) = v1_files(&raw, &mut warnings)?;
            if let Some(tree) = tree {
                check_hybrid(&raw, tree, piece_length)?;
                // The lists agree: the non-empty files come in the same order in both.
                let mut roots = tree.iter().filter(|f| f.length > 0).map(|f| f.root);
                for f in files.iter_mut().filter(|f| !f.padding && f.length > 0) {
                    f.pieces_root = roots.next().flatten();
                }
            }
            (files, single)
        }
        (None, Some(tree)) => {
            // A tree of one file at its top, and no `files`: a single-file torrent, named by
            // the tree (as libtorrent saves it, whatever `name` says).
            let single = tree.len() == 1 && tree[0].path.len() == 1 && raw.files.is_none();
            if single {
                name = sanitize::element(tree[0].path[0]).unwrap_or_else(fallback);
            }
            (v2_files(tree, piece_length, single, &mut warnings)?, single)
        }
        (None, None) => return Err(MetainfoError::BadInfo("missing field `pieces`".into())),
    };
    let total_length = files.last().map(|f| f.offset + f.length).unwrap_or(0);
    if total_length == 0 {
        return Err(MetainfoError::Empty);
    }
    let expected = total_length.div_ceil(piece_length as u64);
    if let Some(pieces) = &raw.pieces {
        let found = pieces.len() / 20;
        if found as u64 != expected {
            return Err(MetainfoError::PieceCountMismatch {
                found,
                expected,
                total: total_length,
            });
        }
    }
    if expected > u32::MAX as u64 / 2 {
        return Err(MetainfoError::LengthOverflow);
    }
    Ok(Info {
        name,
        piece_length,
        v1: raw.pieces.is_some(),
        v2: tree.is_some(),
        pieces: raw.pieces.map(ByteBuf::into_vec).unwrap_or_default(),
        files,
        total_length,
        private: raw.private == Some(1),
        single_file,
        warnings: warnings.finish(),
    })
}

/// The v1 files: one (`length`) or a list (`files`).
fn v1_files(
    raw: &RawInfo,
    warnings: &mut Warnings,
) -> Result<(Vec<FileEntry>, bool), MetainfoError> {
    match (raw.length, &raw.files) {
        (Some(len), None) => {
            let length = u64::try_from(len).map_err(|_| MetainfoError::BadLength(len))?;
            let attr = attributes(raw.attr.as_ref());
            let entry = FileEntry {
                path: Vec::new(),
                length,
                offset: 0,
                padding: false,
                executable: attr.executable,
                hidden: attr.hidden,
                symlink: None,
                pieces_root: None,
            };
            Ok((vec![entry], true))
        }
        (None, Some(raw_files)) => Ok((validate_files(raw_files, warnings)?, false)),
        _ => Err(MetainfoError::AmbiguousLayout),
    }
}

/// A v2-only torrent's files, laid out with padding after each non-empty file.
fn v2_files(
    tree: &[v2::TreeFile],
    piece_length: u32,
    single: bool,
    warnings: &mut Warnings,
) -> Result<Vec<FileEntry>, MetainfoError> {
    let (laid, _) = v2::layout(tree, piece_length).map_err(MetainfoError::BadFileTree)?;
    let mut files = Vec::with_capacity(laid.len());
    for l in laid {
        match l {
            v2::Laid::Pad { length, offset } => files.push(FileEntry {
                path: vec![".pad".into(), length.to_string()],
                length,
                offset,
                padding: true,
                executable: false,
                hidden: false,
                symlink: None,
                pieces_root: None,
            }),
            v2::Laid::File { index, offset } => {
                let f = &tree[index];
                let path = if single {
                    Vec::new()
                } else {
                    sanitize::path(&f.path)
                };
                let symlink = match &f.symlink {
                    None => None,
                    Some(target) => match sanitize::link_target(target) {
                        Some(t) => Some(t),
                        None => {
                            warnings.add(|| {
                                format!(
                                    "skipped the symlink {}: its target {} is outside the torrent's folder",
                                    v2::show(&f.path),
                                    v2::show(target)
                                )
                            });
                            continue;
                        }
                    },
                };
                if !single && path.iter().map(String::as_bytes).ne(f.path.iter().copied()) {
                    warnings
                        .add(|| format!("{} is stored as `{}`", v2::show(&f.path), path.join("/")));
                }
                files.push(FileEntry {
                    path,
                    length: f.length,
                    offset,
                    padding: false,
                    executable: f.executable,
                    hidden: f.hidden,
                    symlink,
                    pieces_root: f.root,
                });
            }
        }
    }
    let renamed = sanitize::make_unique(&mut files)?;
    for (i, old) in renamed {
        warnings.add(|| {
            format!(
                "`{}` appears more than once: stored as `{}`",
                old.join("/"),
                files[i].path.join("/")
            )
        });
    }
    Ok(files)
}

/// The v1 list of a hybrid torrent must be its v2 tree laid out (see `v2.rs`).
fn check_hybrid(
    raw: &RawInfo,
    tree: &[v2::TreeFile],
    piece_length: u32,
) -> Result<(), MetainfoError> {
    fn as_slices(p: &[ByteBuf]) -> Vec<&[u8]> {
        p.iter().map(|c| c.as_slice()).collect()
    }
    let v1: Vec<v2::V1Entry> = match (&raw.files, raw.length) {
        (Some(files), _) => files
            .iter()
            .map(|f| {
                let attr = f.attr();
                let paths = [f.path.as_deref(), f.path_utf8.as_deref()]
                    .into_iter()
                    .flatten()
                    .map(as_slices)
                    .collect();
                let length = f.length(attr).unwrap_or(u64::MAX);
                v2::V1Entry {
                    paths,
                    length,
                    padding: attr.padding,
                }
            })
            .collect(),
        (None, Some(len)) => {
            let names = [Some(&raw.name), raw.name_utf8.as_ref()];
            vec![v2::V1Entry {
                paths: names
                    .into_iter()
                    .flatten()
                    .map(|n| vec![n.as_slice()])
                    .collect(),
                length: u64::try_from(len).unwrap_or(u64::MAX),
                padding: false,
            }]
        }
        (None, None) => Vec::new(),
    };
    v2::check_hybrid(&v1, tree, piece_length).map_err(MetainfoError::HybridMismatch)
}

fn validate_files(
    raw_files: &[RawFile],
    warnings: &mut Warnings,
) -> Result<Vec<FileEntry>, MetainfoError> {
    if raw_files.len() > MAX_FILES {
        return Err(MetainfoError::TooManyFiles(raw_files.len()));
    }
    let mut files = Vec::with_capacity(raw_files.len());
    let mut offset = 0u64;
    for (i, f) in raw_files.iter().enumerate() {
        let attr = f.attr();
        let length = f.length(attr)?;
        // A file without a name is refused, as libtorrent refuses it: storing it as `_`
        // would make up a name the torrent never gave. Padding files never reach the disk
        // and may go without one.
        let raw_path = match f.raw_path() {
            Some(p) if !p.is_empty() => p,
            _ if attr.padding => &[],
            None => return Err(MetainfoError::FileWithoutPath(i + 1)),
            Some(_) => return Err(MetainfoError::FileWithEmptyPath(i + 1)),
        };
        let path = sanitize::path(raw_path);
        let symlink = match (attr.symlink && !attr.padding, &f.symlink_path) {
            (false, _) => None,
            (true, None) => {
                warnings.add(|| {
                    format!(
                        "{} is a symlink without a target: kept as an empty file",
                        shown(raw_path)
                    )
                });
                None
            }
            (true, Some(target)) => match sanitize::link_target(target) {
                Some(t) => Some(t),
                None => {
                    warnings.add(|| {
                        format!(
                            "skipped the symlink {}: its target {} is outside the torrent's folder",
                            shown(raw_path),
                            shown(target)
                        )
                    });
                    // It holds no bytes, so leaving it out moves no other file.
                    continue;
                }
            },
        };
        if !attr.padding && !same_path(raw_path, &path) {
            warnings.add(|| format!("{} is stored as `{}`", shown(raw_path), path.join("/")));
        }
        files.push(FileEntry {
            path,
            length,
            offset,
            padding: attr.padding,
            executable: attr.executable && !attr.padding,
            hidden: attr.hidden,
            symlink,
            pieces_root: None,
        });
        offset = offset
            .checked_add(length)
            .ok_or(MetainfoError::LengthOverflow)?;
    }
    let renamed = sanitize::make_unique(&mut files)?;
    for (i, old) in renamed {
        warnings.add(|| {
            format!(
                "`{}` appears more than once: stored as `{}`",
                old.join("/"),
                files[i].path.join("/")
            )
        });
    }
    Ok(files)
}

fn same_path(raw: &[ByteBuf], safe: &[String]) -> bool {
    raw.len() == safe.len()
        && raw
            .iter()
            .zip(safe)
            .all(|(r, s)| r.as_slice() == s.as_bytes())
}

fn shown(raw: &[ByteBuf]) -> String {
    let parts: Vec<_> = raw.iter().map(|c| String::from_utf8_lossy(c)).collect();
    format!("`{}`", parts.join("/"))
}
