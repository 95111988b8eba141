//! `torrent-rename-path`: renames a file or a folder of one torrent, on disk and in what
//! the daemon shows, as Transmission does: `path` names it as `torrent-get`'s `files`
//! does (`NAME` for the torrent's own file or folder, `NAME/dir/file` inside a folder),
//! `name` is its new last element. The answer echoes the torrent's id, the old `path` and
//! the new `name`.
//!
//! The new name must be one plain path element that share's own rule for names leaves as
//! it is (not empty, no `/`, not `.` or `..`, no control characters, ...), and it must not
//! be taken, in the torrent or on disk (Transmission 3.00 renames in memory anyway; share
//! refuses). The rename on disk goes through the download folder's handle like every file
//! operation; the torrent's task is stopped around it and started again with the new
//! names, its resume data still valid (a complete torrent goes on seeding without a
//! rehash). The new names are kept with the torrent; its info-hash does not change.

use serde_json::json;
use share_core::Metainfo;

use super::{ids, str_arg, Args, RpcError, RpcResult};
use crate::owner::Handle;
use crate::saved::Renames;

/// A rename worked out on a torrent's metainfo: its names afterwards, and what moves on
/// disk (both relative to the torrent's folder).
#[derive(Debug, PartialEq)]
pub struct Plan {
    pub renames: Renames,
    pub from: std::path::PathBuf,
    pub to: std::path::PathBuf,
}

/// Works out the rename of `path` to `name` in `meta` (whose names are those of `current`
/// already).
pub fn plan(meta: &Metainfo, current: &Renames, path: &str, name: &str) -> Result<Plan, String> {
    if share_core::metainfo::sanitize::element(name.as_bytes()).as_deref() != Some(name)
        || name.contains('/')
    {
        return Err(format!(
            "{name:?} is not a plain file name (no slash, not . or .., no control characters)"
        ));
    }
    let info = &meta.info;
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if parts.first() != Some(&info.name.as_str()) {
        return Err(format!("no file or folder {path:?} in this torrent"));
    }
    let mut renames = current.clone();
    if parts.len() == 1 {
        renames.name = Some(name.to_owned());
        return Ok(Plan {
            renames,
            from: info.name.clone().into(),
            to: name.into(),
        });
    }
    let sub = &parts[1..];
    let starts = |p: &[String], prefix: &[&str]| {
        p.len() >= prefix.len() && p.iter().zip(prefix).all(|(a, b)| a == b)
    };
    let matched: Vec<usize> = (0..info.files.len())
        .filter(|&i| !info.single_file && starts(&info.files[i].path, sub))
        .collect();
    if matched.is_empty() {
        return Err(format!("no file or folder {path:?} in this torrent"));
    }
    let mut new_sub: Vec<&str> = sub.to_vec();
    *new_sub.last_mut().expect("sub is not empty") = name;
    if new_sub == sub {
        return Err(format!("{path:?} is called {name:?} already"));
    }
    let taken = (0..info.files.len())
        .filter(|i| !matched.contains(i))
        .any(|i| {
            starts(&info.files[i].path, &new_sub) || {
                // A file where the new name would be a folder on the way.
                let p = &info.files[i].path;
                p.len() < new_sub.len() && new_sub.iter().zip(p).all(|(a, b)| a == b)
            }
        });
    if taken {
        return Err(format!(
            "{}/{} exists in this torrent",
            info.name,
            new_sub.join("/")
        ));
    }
    let depth = sub.len() - 1;
    for &i in &matched {
        let mut p = info.files[i].path.clone();
        p[depth] = name.to_owned();
        renames.files.insert(i, p);
    }
    let join = |elements: &[&str]| -> std::path::PathBuf {
        std::iter::once(info.name.as_str())
            .chain(elements.iter().copied())
            .collect()
    };
    Ok(Plan {
        renames,
        from: join(sub),
        to: join(&new_sub),
    })
}

pub async fn rename_path(h: &Handle, args: Args) -> RpcResult {
    let path = str_arg(&args, "path")?
        .ok_or_else(|| RpcError("no path given".into()))?
        .to_owned();
    let name = str_arg(&args, "name")?
        .ok_or_else(|| RpcError("no name given".into()))?
        .to_owned();
    let targets = h.read(move |r| ids(r, &args)).await??;
    let [id] = targets[..] else {
        return Err(RpcError("torrent-rename-path requires 1 torrent".into()));
    };
    crate::ops::rename_path(h, id, &path, &name)
        .await
        .map_err(RpcError)?;
    Ok(json!({"id": id, "path": path, "name": name}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(files: &[(&str, u64)]) -> Metainfo {
        let mut list = String::new();
        for (p, len) in files {
            let parts: String = p.split('/').map(|e| format!("{}:{e}", e.len())).collect();
            list.push_str(&format!("d6:lengthi{len}e4:pathl{parts}ee"));
        }
        let info = format!(
            "d5:filesl{list}e4:name6:sample12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaae"
        );
        Metainfo::from_bytes(format!("d4:info{info}e").as_bytes()).unwrap()
    }

    #[test]
    fn a_file_a_folder_and_the_top_are_renamed() {
        let m = meta(&[("a.bin", 3), ("sub/b.txt", 2), ("sub/c.txt", 1)]);
        let none = Renames::default();
        let p = plan(&m, &none, "sample/a.bin", "x.bin").unwrap();
        assert_eq!(p.renames.files.get(&0), Some(&vec!["x.bin".to_string()]));
        assert_eq!(
            (p.from, p.to),
            ("sample/a.bin".into(), "sample/x.bin".into())
        );
        let p = plan(&m, &none, "sample/sub", "dir").unwrap();
        assert_eq!(p.renames.files.len(), 2);
        assert_eq!(p.renames.files[&2], vec!["dir".to_string(), "c.txt".into()]);
        assert_eq!((p.from, p.to), ("sample/sub".into(), "sample/dir".into()));
        let p = plan(&m, &none, "sample", "other").unwrap();
        assert_eq!(p.renames.name.as_deref(), Some("other"));
        let mut renamed = m.clone();
        p.renames.apply(&mut renamed);
        assert_eq!(renamed.info.name, "other");
        assert_eq!(renamed.info_hash, m.info_hash);
    }

    #[test]
    fn bad_names_missing_paths_and_taken_names_are_refused() {
        let m = meta(&[("a.bin", 3), ("sub/b.txt", 2)]);
        let none = Renames::default();
        for bad in ["", ".", "..", "a/b", "tab\there", "x\0y"] {
            assert!(plan(&m, &none, "sample/a.bin", bad).is_err(), "{bad:?}");
        }
        assert!(plan(&m, &none, "sample/nope", "x").is_err());
        assert!(plan(&m, &none, "other/a.bin", "x").is_err());
        assert!(plan(&m, &none, "sample/a.bin", "sub")
            .unwrap_err()
            .contains("exists"));
        assert!(plan(&m, &none, "sample/sub", "a.bin")
            .unwrap_err()
            .contains("exists"));
        assert!(plan(&m, &none, "sample/a.bin", "a.bin").is_err());
    }
}
