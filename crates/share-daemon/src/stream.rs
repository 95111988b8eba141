//! `GET /stream/<info-hash>/<file-index>`: a file served over HTTP while it downloads.
//!
//! The body is read in chunks; before each chunk the reader asks the torrent for the pieces
//! under it (`TorrentCommand::Want`), which puts them first in the picker (deadline first),
//! and waits only until they are verified; the pieces just after it are asked for too, so
//! that the next chunk is on its way while this one is sent. One `Range` (`bytes=a-b`,
//! `bytes=a-`, `bytes=-n`) is honoured, as players and `curl -r` send; a file's index counts
//! the torrent's files without BEP 47 padding, as the RPC's `files` list does.

use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use share_core::InfoHash;
use share_engine::TorrentCommand;
use share_storage::root::Root;
use tokio::sync::{mpsc, oneshot};

use crate::owner::Handle;
use crate::registry::Registry;

/// Bytes read and sent at a time.
const CHUNK: u64 = 256 << 10;
/// Pieces asked for beyond the chunk being read.
const READ_AHEAD: u32 = 4;

fn plain(status: StatusCode, text: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text.to_string(),
    )
        .into_response()
}

/// What a stream needs, taken from the registry at its start.
struct Target {
    /// The download folder, and the file below it: read only beneath it, never through a
    /// symlink the policy does not allow.
    root: Arc<Root>,
    rel: PathBuf,
    /// The file's place in the torrent's byte stream.
    offset: u64,
    length: u64,
    piece_length: u64,
    piece_count: u32,
    /// The torrent task, when it runs.
    commands: Option<mpsc::Sender<TorrentCommand>>,
    name: String,
}

/// A `Range` header that cannot be satisfied (answered 416).
#[derive(Debug, PartialEq, Eq)]
pub struct Unsatisfiable;

/// A parsed `Range` header: the first and last byte wanted, inclusive.
pub fn parse_range(value: &str, len: u64) -> Result<Option<(u64, u64)>, Unsatisfiable> {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Err(Unsatisfiable);
    };
    // Several ranges: the first is served (a player asks for one).
    let first = spec.split(',').next().unwrap_or("").trim();
    let (a, b) = first.split_once('-').ok_or(Unsatisfiable)?;
    let (a, b) = (a.trim(), b.trim());
    let range = if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| Unsatisfiable)?;
        if n == 0 || len == 0 {
            return Err(Unsatisfiable);
        }
        (len.saturating_sub(n), len - 1)
    } else {
        let start: u64 = a.parse().map_err(|_| Unsatisfiable)?;
        let end = if b.is_empty() {
            len.saturating_sub(1)
        } else {
            b.parse::<u64>()
                .map_err(|_| Unsatisfiable)?
                .min(len.saturating_sub(1))
        };
        if start >= len || end < start {
            return Err(Unsatisfiable);
        }
        (start, end)
    };
    Ok(Some(range))
}

fn mime(name: &str) -> &'static str {
    let ext = name.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "mp4" | "m4v" => "video/mp4",
        "mkv" => "video/x-matroska",
        "webm" => "video/webm",
        "avi" => "video/x-msvideo",
        "mov" => "video/quicktime",
        "ts" => "video/mp2t",
        "mp3" => "audio/mpeg",
        "m4a" => "audio/mp4",
        "flac" => "audio/flac",
        "ogg" | "oga" => "audio/ogg",
        "opus" => "audio/opus",
        "wav" => "audio/wav",
        "txt" | "srt" | "nfo" | "md" => "text/plain; charset=utf-8",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "pdf" => "application/pdf",
        _ => "application/octet-stream",
    }
}

async fn target(handle: &Handle, hash: &str, index: &str) -> Result<Target, Response> {
    let mut h = [0u8; 20];
    if hash.len() != 40 || hex::decode_to_slice(hash, &mut h).is_err() {
        return Err(plain(
            StatusCode::BAD_REQUEST,
            "400: the info-hash must be 40 hex digits\n",
        ));
    }
    let Ok(index) = index.parse::<usize>() else {
        return Err(plain(
            StatusCode::BAD_REQUEST,
            "400: the file index must be a number\n",
        ));
    };
    let hash = InfoHash(h);
    let found = handle
        .read(move |r| find_target(r, &hash, index))
        .await
        .map_err(|e| plain(StatusCode::SERVICE_UNAVAILABLE, &format!("503: {e}\n")))?
        .map_err(|(status, text)| plain(status, text))?;
    // A file that resolves through a symlink is refused before anything is sent.
    let (root, rel) = (found.root.clone(), found.rel.clone());
    let checked = tokio::task::spawn_blocking(move || root.stat(&rel)).await;
    match checked {
        Ok(Err(e @ share_storage::StorageError::Link { .. })) => {
            Err(plain(StatusCode::FORBIDDEN, &format!("403: {e}\n")))
        }
        _ if found.commands.is_none() => Err(plain(
            StatusCode::CONFLICT,
            "409: the torrent is not running\n",
        )),
        _ => Ok(found),
    }
}

/// Why a stream is refused: the status and the text of the answer.
type Refusal = (StatusCode, &'static str);

/// The torrent and file a stream names, marked wanted.
fn find_target(r: &mut Registry, hash: &InfoHash, index: usize) -> Result<Target, Refusal> {
    r.sync_meta();
    let Some(id) = r.find_hash(hash) else {
        return Err((StatusCode::NOT_FOUND, "404: no such torrent\n"));
    };
    let wanted_now = {
        let e = &r.entries[&id];
        let Some(meta) = &e.meta else {
            return Err((
                StatusCode::SERVICE_UNAVAILABLE,
                "503: the torrent's metadata is not here yet\n",
            ));
        };
        let commands = e.handle.as_ref().map(|h| h.commands());
        let info = &meta.info;
        let files: Vec<(usize, &share_core::FileEntry)> = info
            .files
            .iter()
            .enumerate()
            .filter(|(_, f)| !f.padding)
            .collect();
        let Some(&(slot, f)) = files.get(index) else {
            return Err((StatusCode::NOT_FOUND, "404: no such file in the torrent\n"));
        };
        let prefix = e
            .saved
            .download_dir
            .strip_prefix(&r.download_root)
            .map_err(|_| (StatusCode::FORBIDDEN, "403: outside the download folder\n"))?;
        let layout =
            share_storage::Layout::for_torrent(r.root.clone(), prefix, info).map_err(|_| {
                (
                    StatusCode::FORBIDDEN,
                    "403: the torrent's paths are not usable\n",
                )
            })?;
        let t = Target {
            root: r.root.clone(),
            rel: layout.slots[slot].path.clone(),
            offset: f.offset,
            length: f.length,
            piece_length: info.piece_length as u64,
            piece_count: info.piece_count(),
            commands,
            name: f.path.last().cloned().unwrap_or_else(|| info.name.clone()),
        };
        (!e.wanted(index), t)
    };
    // A file streamed is a file wanted.
    let (unwanted, t) = wanted_now;
    if unwanted {
        r.want_file(id, index);
    }
    Ok(t)
}

/// Answers one stream request.
pub async fn serve(
    registry: &Handle,
    hash: &str,
    index: &str,
    headers: &HeaderMap,
    method: &Method,
) -> Response {
    let t = match target(registry, hash, index).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let len = t.length;
    let range = match headers.get(header::RANGE).map(|v| v.to_str().unwrap_or("")) {
        None => None,
        Some(v) => match parse_range(v, len) {
            Ok(r) => r,
            Err(Unsatisfiable) => {
                let mut resp = plain(StatusCode::RANGE_NOT_SATISFIABLE, "416: bad range\n");
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                    resp.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                return resp;
            }
        },
    };
    let (start, end) = range.unwrap_or((0, len.saturating_sub(1)));
    let count = if len == 0 { 0 } else { end - start + 1 };
    let status = if range.is_some() {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let mut builder = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, mime(&t.name))
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_LENGTH, count.to_string())
        .header(header::CACHE_CONTROL, "no-store");
    if range.is_some() {
        builder = builder.header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}"));
    }
    if *method == Method::HEAD || count == 0 {
        return builder
            .body(Body::empty())
            .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "500\n"));
    }
    let (tx, mut rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    tokio::spawn(pump(t, start, end + 1, tx));
    let body = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    builder
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "500\n"))
}

/// The pieces under bytes `from..to` of the file.
fn pieces(t: &Target, from: u64, to: u64) -> std::ops::Range<u32> {
    let a = (t.offset + from) / t.piece_length;
    let b = (t.offset + to - 1) / t.piece_length + 1;
    a as u32..(b as u32).min(t.piece_count)
}

/// Asks for `pieces`; the answer comes when they are all verified.
async fn want(t: &Target, pieces: std::ops::Range<u32>) -> Option<oneshot::Receiver<()>> {
    let (reply, rx) = oneshot::channel();
    t.commands
        .as_ref()?
        .send(TorrentCommand::Want { pieces, reply })
        .await
        .ok()?;
    Some(rx)
}

/// Reads `from..to` of the file chunk by chunk, each once its pieces are verified, into `tx`
/// (which stops when the client goes away).
async fn pump(t: Target, from: u64, to: u64, tx: mpsc::Sender<Result<Bytes, std::io::Error>>) {
    let gone = || std::io::Error::other("the torrent stopped or was removed");
    let mut at = from;
    let mut _ahead: Option<oneshot::Receiver<()>> = None;
    let file = Arc::new(std::sync::Mutex::new(None::<std::fs::File>));
    while at < to {
        let end = (at + CHUNK).min(to);
        let range = pieces(&t, at, end);
        let Some(ready) = want(&t, range.clone()).await else {
            let _ = tx.send(Err(gone())).await;
            return;
        };
        // The next pieces are on their way while this chunk is read and sent.
        let next = range.end..(range.end + READ_AHEAD).min(t.piece_count);
        _ahead = if next.is_empty() {
            None
        } else {
            want(&t, next).await
        };
        tokio::select! {
            r = ready => if r.is_err() {
                let _ = tx.send(Err(gone())).await;
                return;
            },
            _ = tx.closed() => return,
        }
        let (root, rel) = (t.root.clone(), t.rel.clone());
        let (file, n) = (file.clone(), (end - at) as usize);
        let read = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
            let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
            if f.is_none() {
                *f = Some(root.read_file(&rel).map_err(std::io::Error::other)?);
            }
            let mut buf = vec![0u8; n];
            f.as_ref().expect("opened").read_exact_at(&mut buf, at)?;
            Ok(buf)
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        let chunk = match read {
            Ok(b) => Bytes::from(b),
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        if tx.send(Ok(chunk)).await.is_err() {
            return;
        }
        at = end;
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_range, Unsatisfiable};

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-99", 1000), Ok(Some((0, 99))));
        assert_eq!(parse_range("bytes=900-", 1000), Ok(Some((900, 999))));
        assert_eq!(parse_range("bytes=-100", 1000), Ok(Some((900, 999))));
        assert_eq!(parse_range("bytes=-5000", 1000), Ok(Some((0, 999))));
        assert_eq!(parse_range("bytes=10-5000", 1000), Ok(Some((10, 999))));
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), Ok(Some((0, 1))));
        for bad in [
            "bytes=1000-",
            "bytes=5-1",
            "bytes=-0",
            "items=0-1",
            "bytes=x-",
            "bytes=0",
        ] {
            assert_eq!(parse_range(bad, 1000), Err(Unsatisfiable), "{bad}");
        }
    }
}
