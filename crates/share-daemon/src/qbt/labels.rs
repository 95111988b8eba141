//! Categories and tags: `categories`, `createCategory`, `editCategory`,
//! `removeCategories`, `setCategory`; `tags`, `createTags`, `deleteTags`, `addTags`,
//! `removeTags`, `setTags`.
//!
//! A torrent's tags are its Transmission labels (one list, both APIs); the registry keeps
//! the known tags besides (a tag may exist with no torrent) and the categories with their
//! folders, saved with the torrent list. A category's folder is confined to the download
//! folder like every path (`paths`).

use std::path::PathBuf;

use serde_json::{json, Map, Value};

use super::form::split_tags;
use super::torrents::matching;
use super::{Answer, Call, Fail, Reply};
use crate::paths;
use crate::registry::Registry;
use crate::saved::SavedCategory;

pub async fn dispatch(c: &Call<'_>, action: &str) -> Option<Answer> {
    Some(match action {
        "categories" => {
            c.h.read(|r| Reply::Json(categories(r)))
                .await
                .map_err(Fail::from)
        }
        "createCategory" => save_category(c, false).await,
        "editCategory" => save_category(c, true).await,
        "removeCategories" => remove_categories(c).await,
        "setCategory" => set_category(c).await,
        "tags" => {
            c.h.read(|r| Reply::Json(json!(all_tags(r))))
                .await
                .map_err(Fail::from)
        }
        "createTags" => change_tags(c, Tags::Create).await,
        "deleteTags" => change_tags(c, Tags::Delete).await,
        "addTags" => change_tags(c, Tags::Add).await,
        "removeTags" => change_tags(c, Tags::Remove).await,
        "setTags" => change_tags(c, Tags::Set).await,
        _ => return None,
    })
}

/// qBittorrent's rule for a category name: no `\`, no `/` at either end, no `//`.
pub fn check_category(name: &str) -> Result<(), Fail> {
    if name.is_empty()
        || name.contains('\\')
        || name.starts_with('/')
        || name.ends_with('/')
        || name.contains("//")
        || name.len() > 1024
    {
        return Err(Fail::conflict("Incorrect category name"));
    }
    Ok(())
}

/// A tag: not empty, no `,`, trimmed already.
pub fn check_tag(tag: &str) -> Result<(), Fail> {
    if tag.is_empty() || tag.contains(',') || tag.len() > 256 {
        return Err(Fail::bad(&format!("invalid tag {tag:?}")));
    }
    Ok(())
}

/// `{name: {"name", "savePath"}}` as qBittorrent writes it (`savePath` `""`: the default).
pub fn categories(r: &Registry) -> Value {
    let mut out = Map::new();
    for (name, c) in &r.categories {
        let path = c
            .save_path
            .as_ref()
            .map_or(String::new(), |p| p.to_string_lossy().into_owned());
        out.insert(name.clone(), json!({ "name": name, "savePath": path }));
    }
    Value::Object(out)
}

/// Every tag: the known ones and those torrents carry, sorted.
pub fn all_tags(r: &Registry) -> Vec<String> {
    let mut t = r.tags.clone();
    for e in r.entries.values() {
        t.extend(e.saved.labels.iter().cloned());
    }
    t.into_iter().collect()
}

async fn save_category(c: &Call<'_>, edit: bool) -> Answer {
    let name = c.p.need("category")?.trim().to_owned();
    if name.is_empty() {
        return Err(Fail::bad("Category cannot be empty"));
    }
    check_category(&name)?;
    let path = if edit {
        Some(c.p.need("savePath")?)
    } else {
        c.p.get("savePath")
    };
    if c.p.bool("downloadPathEnabled") == Some(true) {
        return Err(Fail::bad(
            "share has no separate folder for incomplete downloads",
        ));
    }
    let dir: Option<PathBuf> = match path.map(str::trim).filter(|p| !p.is_empty()) {
        Some(p) => Some(
            paths::download_dir(&c.h.download_root, p)
                .map_err(|e| Fail::conflict(&format!("Cannot make save path: {e}")))?,
        ),
        None => None,
    };
    c.h.read(move |r| {
        match (edit, r.categories.contains_key(&name)) {
            (false, true) => return Err(Fail::conflict("Unable to create category")),
            (true, false) => return Err(Fail::conflict("Unable to edit category")),
            _ => {}
        }
        r.categories.insert(name, SavedCategory { save_path: dir });
        r.mark_dirty();
        r.save();
        Ok(Reply::Empty)
    })
    .await?
}

async fn remove_categories(c: &Call<'_>) -> Answer {
    let names: Vec<String> =
        c.p.need("categories")?
            .split('\n')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
    c.h.read(move |r| {
        for n in &names {
            r.categories.remove(n);
        }
        for e in r.entries.values_mut() {
            if names.contains(&e.saved.category) {
                e.saved.category.clear();
            }
        }
        r.mark_dirty();
        r.save();
    })
    .await?;
    Ok(Reply::Empty)
}

async fn set_category(c: &Call<'_>) -> Answer {
    let hashes = c.p.hashes("hashes")?;
    let name = c.p.need("category")?.trim().to_owned();
    c.h.read(move |r| {
        if !name.is_empty() && !r.categories.contains_key(&name) {
            return Err(Fail::conflict("Incorrect category name"));
        }
        for id in matching(r, &hashes) {
            if let Some(e) = r.entries.get_mut(&id) {
                e.saved.category = name.clone();
            }
        }
        r.mark_dirty();
        r.save();
        Ok(Reply::Empty)
    })
    .await?
}

#[derive(Clone, Copy, PartialEq)]
enum Tags {
    Create,
    Delete,
    Add,
    Remove,
    Set,
}

async fn change_tags(c: &Call<'_>, what: Tags) -> Answer {
    let per_torrent = matches!(what, Tags::Add | Tags::Remove | Tags::Set);
    let hashes = if per_torrent {
        Some(c.p.hashes("hashes")?)
    } else {
        None
    };
    let tags = if what == Tags::Remove {
        split_tags(c.p.get("tags").unwrap_or(""))
    } else {
        split_tags(c.p.need("tags")?)
    };
    for t in &tags {
        check_tag(t)?;
    }
    c.h.read(move |r| {
        let ids = hashes.map(|h| matching(r, &h)).unwrap_or_default();
        match what {
            Tags::Create => r.tags.extend(tags.iter().cloned()),
            Tags::Delete => {
                for t in &tags {
                    r.tags.remove(t);
                }
                for e in r.entries.values_mut() {
                    e.saved.labels.retain(|l| !tags.contains(l));
                }
            }
            Tags::Add | Tags::Set => {
                r.tags.extend(tags.iter().cloned());
                for id in ids {
                    let Some(e) = r.entries.get_mut(&id) else {
                        continue;
                    };
                    if what == Tags::Set {
                        e.saved.labels.clear();
                    }
                    for t in &tags {
                        if !e.saved.labels.contains(t) {
                            e.saved.labels.push(t.clone());
                        }
                    }
                }
            }
            Tags::Remove => {
                for id in ids {
                    if let Some(e) = r.entries.get_mut(&id) {
                        // No tags named: every tag comes off.
                        e.saved
                            .labels
                            .retain(|l| !tags.is_empty() && !tags.contains(l));
                    }
                }
            }
        }
        r.mark_dirty();
        r.save();
    })
    .await?;
    Ok(Reply::Empty)
}
