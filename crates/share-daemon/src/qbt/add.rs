//! `torrents/add`: magnets, info-hashes and HTTP URLs in `urls` (one a line), .torrent
//! files as multipart parts, with qBittorrent's options.
//!
//! Everything is checked before anything is fetched or added: the options (a folder
//! outside the download folder, a bad category or tag, an option share cannot honour: 400)
//! and every uploaded file (one that is not a torrent: qBittorrent's 415, and nothing is
//! added). Then each source is fetched (URLs, outside the registry's owner) and added as
//! `torrent-add` adds. The answer is `Ok.` if one was added, else `Fails.` (a duplicate, a
//! URL that fails, a bad link), as in qBittorrent 5.1.

use std::path::PathBuf;

use axum::http::StatusCode;

use super::actions::limit_mode;
use super::form::valid_hash;
use super::labels::{check_category, check_tag};
use super::{Answer, Call, Fail, Reply};
use crate::registry::{AddOptions, Added, FileChoice, NewSource, NewTorrent};
use crate::{ops, paths};

/// Sources taken from one call at most.
const MAX_SOURCES: usize = 1000;

/// The options of an add, checked.
struct Plan {
    dir: Option<PathBuf>,
    paused: Option<bool>,
    labels: Vec<String>,
    options: AddOptions,
}

fn plan(c: &Call<'_>) -> Result<Plan, Fail> {
    let p = &c.p;
    let dir = match p.get("savepath").map(str::trim).filter(|s| !s.is_empty()) {
        Some(d) => Some(
            paths::download_dir(&c.h.download_root, d)
                .map_err(|e| Fail::bad(&format!("savepath: {e}")))?,
        ),
        None => None,
    };
    let category = p.get("category").unwrap_or("").trim().to_owned();
    if !category.is_empty() {
        check_category(&category)?;
    }
    let labels = p.tags("tags");
    for t in &labels {
        check_tag(t)?;
    }
    let mut refused = Vec::new();
    for (key, ok) in [
        ("autoTMM", p.bool("autoTMM") != Some(true)),
        (
            "firstLastPiecePrio",
            p.bool("firstLastPiecePrio") != Some(true),
        ),
        ("useDownloadPath", p.bool("useDownloadPath") != Some(true)),
        (
            "downloadPath",
            p.get("downloadPath")
                .is_none_or(|d| d.trim().is_empty() || p.get("savepath") == Some(d)),
        ),
        (
            "contentLayout",
            p.get("contentLayout").is_none_or(|l| l == "Original"),
        ),
        (
            "stopCondition",
            p.get("stopCondition").is_none_or(|l| l == "None"),
        ),
        (
            "shareLimitAction",
            p.get("shareLimitAction")
                .is_none_or(|l| matches!(l, "Default" | "Stop")),
        ),
    ] {
        if !ok {
            refused.push(key);
        }
    }
    if !refused.is_empty() {
        return Err(Fail::bad(&format!(
            "share cannot honour these options: {}",
            refused.join(", ")
        )));
    }
    let bytes = |key: &str| -> Result<Option<u64>, Fail> {
        Ok(p.int(key)?.filter(|&v| v > 0).map(|v| v as u64))
    };
    let minutes = |key: &str| -> Result<Option<(u8, f64)>, Fail> {
        p.int(key)?.map(|v| limit_mode(v as f64, key)).transpose()
    };
    let ratio = p
        .float("ratioLimit")?
        .map(|v| limit_mode(v, "ratioLimit"))
        .transpose()?;
    let idle = minutes("inactiveSeedingTimeLimit")?;
    let name = p
        .get("rename")
        .map(|n| n.replace(['\r', '\n'], " ").trim().to_owned())
        .filter(|n| !n.is_empty());
    Ok(Plan {
        dir,
        paused: p.bool("stopped").or_else(|| p.bool("paused")),
        labels,
        options: AddOptions {
            category,
            name,
            sequential: p.bool("sequentialDownload").unwrap_or(false),
            force_start: p.bool("forced").unwrap_or(false),
            up_limit: bytes("upLimit")?,
            down_limit: bytes("dlLimit")?,
            seed_ratio: ratio,
            seed_idle: idle.map(|(m, v)| (m, v as u64)),
            seeding_time_limit: minutes("seedingTimeLimit")?.map(|(m, v)| match m {
                0 => -2,
                2 => -1,
                _ => v as i64,
            }),
        },
    })
}

/// What one line of `urls` is: a link to add, or a URL to fetch.
enum Line {
    Magnet(String),
    Url(String),
    Bad,
}

fn line(u: &str) -> Line {
    if share_core::Magnet::looks_like(u) {
        Line::Magnet(u.to_owned())
    } else if u.starts_with("http://") || u.starts_with("https://") {
        Line::Url(u.to_owned())
    } else if valid_hash(u) {
        Line::Magnet(format!("magnet:?xt=urn:btih:{}", u.to_ascii_lowercase()))
    } else {
        Line::Bad
    }
}

pub async fn add(c: &Call<'_>) -> Answer {
    let plan = plan(c)?;
    let lines: Vec<Line> =
        c.p.get("urls")
            .unwrap_or("")
            .split('\n')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(line)
            .collect();
    if lines.len() + c.p.files.len() > MAX_SOURCES {
        return Err(Fail::bad("too many torrents in one add"));
    }
    for (name, bytes) in &c.p.files {
        if share_core::Metainfo::from_bytes(bytes).is_err() {
            return Err(Fail::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                &format!("Error: '{name}' is not a valid torrent file."),
            ));
        }
    }
    let (default_dir, stopped, category_dir) = {
        let cat = plan.options.category.clone();
        c.h.read(move |r| {
            (
                r.default_dir(),
                r.settings.add_stopped,
                r.categories.get(&cat).and_then(|c| c.save_path.clone()),
            )
        })
        .await?
    };
    let dir = plan.dir.clone().or(category_dir).unwrap_or(default_dir);
    let paused = plan.paused.unwrap_or(stopped);
    let mut sources: Vec<Result<NewSource, String>> =
        c.p.files
            .iter()
            .map(|(_, b)| Ok(NewSource::Metainfo(b.to_vec())))
            .collect();
    for l in lines {
        sources.push(match l {
            Line::Magnet(m) => Ok(NewSource::Magnet(m)),
            Line::Url(u) => ops::fetch_url(c.h, &u).await,
            Line::Bad => Err("not a magnet link, URL or info-hash".into()),
        });
    }
    let mut added = 0;
    for s in sources {
        let Ok(source) = s else {
            continue;
        };
        let t = NewTorrent {
            source,
            download_dir: dir.clone(),
            paused,
            labels: plan.labels.clone(),
            files: FileChoice::default(),
            options: plan.options.clone(),
        };
        if let Ok(Added::Added { .. }) = ops::add(c.h, t).await {
            added += 1;
        }
    }
    Ok(Reply::Text(if added > 0 { "Ok." } else { "Fails." }.into()))
}
