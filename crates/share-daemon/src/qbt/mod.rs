//! qBittorrent's WebUI API v2 at `/api/v2/<scope>/<action>`, as qBittorrent 5.1 (WebAPI
//! 2.11) answers it, so that media managers, scripts (qbittorrent-api), Flood and VueTorrent
//! drive the daemon's torrents (the same ones the Transmission RPC shows); docs/engine.md
//! (the daemon) says how it sits on the registry.
//!
//! A request passes, in qBittorrent's order: share's `Host` check (DNS rebinding, 421, as
//! every route), the cross-site check (`Origin`/`Referer` against `Host`: 401), the session
//! (the `SID` cookie; or none needed on loopback without `--rpc-auth`; else 403
//! `Forbidden`), the scope (404), the method (GET or POST; POST-only endpoints 405), the
//! bounded body and its parameters ([`form`]), then the endpoint.
//!
//! - [`auth`]: logins, sessions, bans, the cross-site check.
//! - [`app`], [`transfer`]: versions, preferences, global limits.
//! - [`torrents`] (reads), [`actions`] (changes), [`add`], [`labels`] (categories, tags).
//! - [`fields`]: the torrent object, its state string and the per-torrent views.
//! - [`sync`]: `sync/maindata` and `sync/torrentPeers` deltas per session.

mod actions;
mod add;
pub mod app;
pub mod auth;
mod fields;
pub mod form;
mod labels;
mod sync;
mod torrents;
mod transfer;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use serde_json::Value;

use crate::http::{AppState, MAX_BODY};
use crate::owner::{Gone, Handle};
use form::Params;

pub use auth::Qbt;

/// What qBittorrent reports: WebAPI 2.11.4 is qBittorrent 5.1.x.
pub const WEBAPI_VERSION: &str = "2.11.4";
pub const APP_VERSION: &str = "v5.1.4";

/// A refusal: its status and the text qBittorrent puts in the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fail {
    pub status: StatusCode,
    pub msg: String,
}

impl Fail {
    pub fn new(status: StatusCode, msg: &str) -> Fail {
        Fail {
            status,
            msg: msg.to_owned(),
        }
    }
    pub fn bad(msg: &str) -> Fail {
        Fail::new(StatusCode::BAD_REQUEST, msg)
    }
    pub fn conflict(msg: &str) -> Fail {
        Fail::new(StatusCode::CONFLICT, msg)
    }
    pub fn not_found() -> Fail {
        Fail::new(StatusCode::NOT_FOUND, "Not Found")
    }
}

impl From<Gone> for Fail {
    fn from(g: Gone) -> Fail {
        Fail::new(StatusCode::SERVICE_UNAVAILABLE, &g.to_string())
    }
}

/// What an endpoint answers.
#[derive(Debug)]
pub enum Reply {
    /// 200 with an empty `text/plain` body.
    Empty,
    Text(String),
    Json(Value),
    /// A .torrent (`torrents/export`).
    Torrent(Vec<u8>, String),
}

pub type Answer = Result<Reply, Fail>;

/// One call: the daemon, the API's state, the caller's session and parameters.
pub struct Call<'a> {
    pub h: &'a Handle,
    pub qbt: &'a Qbt,
    /// The caller's session id (every endpoint but the public ones has one).
    pub sid: String,
    pub p: Params,
}

/// Scopes qBittorrent has (an action of another scope is 404 after the session check).
const SCOPES: &[&str] = &[
    "auth",
    "app",
    "log",
    "sync",
    "torrents",
    "transfer",
    "rss",
    "search",
    "torrentcreator",
];

/// Endpoints that take POST only (WebAPI 2.11, with the 4.x `pause`/`resume`).
fn post_only(scope: &str, action: &str) -> bool {
    match scope {
        "auth" => matches!(action, "login" | "logout"),
        "app" => matches!(
            action,
            "sendTestEmail" | "setCookies" | "setPreferences" | "shutdown"
        ),
        "transfer" => matches!(
            action,
            "banPeers"
                | "setDownloadLimit"
                | "setSpeedLimitsMode"
                | "setUploadLimit"
                | "toggleSpeedLimitsMode"
        ),
        "torrents" => matches!(
            action,
            "add"
                | "addPeers"
                | "addTags"
                | "addTrackers"
                | "addWebSeeds"
                | "bottomPrio"
                | "createCategory"
                | "createTags"
                | "decreasePrio"
                | "delete"
                | "deleteTags"
                | "editCategory"
                | "editTracker"
                | "editWebSeed"
                | "filePrio"
                | "increasePrio"
                | "reannounce"
                | "recheck"
                | "removeCategories"
                | "removeTags"
                | "removeTrackers"
                | "removeWebSeeds"
                | "rename"
                | "renameFile"
                | "renameFolder"
                | "setAutoManagement"
                | "setCategory"
                | "setDownloadLimit"
                | "setDownloadPath"
                | "setForceStart"
                | "setLocation"
                | "setSavePath"
                | "setShareLimits"
                | "setSSLParameters"
                | "setSuperSeeding"
                | "setTags"
                | "setUploadLimit"
                | "start"
                | "stop"
                | "pause"
                | "resume"
                | "toggleFirstLastPiecePrio"
                | "toggleSequentialDownload"
                | "topPrio"
        ),
        _ => false,
    }
}

/// `/api/v2/<scope>/<action>` with qBittorrent's name rule, else `None`.
fn split_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/api/v2/")?;
    let (scope, action) = rest.split_once('/')?;
    let name = |s: &str| {
        let mut b = s.bytes();
        b.next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
            && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
    };
    (name(scope) && name(action)).then_some((scope, action))
}

pub fn text(status: StatusCode, body: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=UTF-8")],
        body.to_owned(),
    )
        .into_response()
}

fn respond(answer: Answer) -> Response {
    let mut r = match answer {
        Ok(Reply::Empty) => text(StatusCode::OK, ""),
        Ok(Reply::Text(t)) => text(StatusCode::OK, &t),
        Ok(Reply::Json(v)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            v.to_string(),
        )
            .into_response(),
        Ok(Reply::Torrent(bytes, name)) => {
            let mut r = (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/x-bittorrent")],
                bytes,
            )
                .into_response();
            if let Ok(v) =
                HeaderValue::from_str(&format!("attachment; filename=\"{name}.torrent\""))
            {
                r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
            }
            r
        }
        Err(f) => text(f.status, &f.msg),
    };
    let h = r.headers_mut();
    h.insert(
        "x-xss-protection",
        HeaderValue::from_static("1; mode=block"),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Serves one request under `/api/v2/`.
pub async fn serve(state: Arc<AppState>, from: SocketAddr, req: Request) -> Response {
    if let Some(r) = crate::http::host_refused(&state, req.headers()) {
        return r;
    }
    let (parts, body) = req.into_parts();
    let Some((scope, action)) = split_path(parts.uri.path()) else {
        return respond(Err(Fail::not_found()));
    };
    let qbt = &state.qbt;
    if auth::cross_site(&parts.headers) {
        return respond(Err(Fail::new(StatusCode::UNAUTHORIZED, "Unauthorized")));
    }
    let basic_ok = state.basic_auth_ok(&parts.headers);
    let (sid, cookie) = qbt.session(&parts.headers, from.ip(), basic_ok);
    let login = (scope, action) == ("auth", "login");
    let public = login || (scope, action) == ("app", "webapiVersion");
    let with_cookie = |mut r: Response| {
        if let Some(c) = &cookie {
            if let Ok(v) = HeaderValue::from_str(c) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
        }
        r
    };
    if sid.is_none() && !public {
        return respond(Err(Fail::new(StatusCode::FORBIDDEN, "Forbidden")));
    }
    if !SCOPES.contains(&scope) {
        return with_cookie(respond(Err(Fail::not_found())));
    }
    let head = parts.method == Method::HEAD;
    let method = if head {
        Method::GET
    } else {
        parts.method.clone()
    };
    if (method != Method::GET && method != Method::POST)
        || (method == Method::GET && post_only(scope, action))
    {
        return with_cookie(respond(Err(Fail::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method Not Allowed",
        ))));
    }
    let body = match http_body_util::Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return respond(Err(Fail::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Payload Too Large",
            )))
        }
    };
    let p = match Params::read(&method, parts.uri.query(), &parts.headers, body).await {
        Ok(p) => p,
        Err(f) => return with_cookie(respond(Err(f))),
    };
    if login {
        let (answer, new_cookie) = qbt.login(&p, from.ip(), sid.is_some());
        let mut r = with_cookie(respond(answer));
        if let Some(c) = new_cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
            r.headers_mut().insert(header::SET_COOKIE, c);
        }
        return r;
    }
    let Some(sid) = sid else {
        // Only `app/webapiVersion` gets here without a session.
        return respond(Ok(Reply::Text(WEBAPI_VERSION.into())));
    };
    if (scope, action) == ("auth", "logout") {
        qbt.logout(&sid);
        let mut r = respond(Ok(Reply::Empty));
        r.headers_mut().insert(
            header::SET_COOKIE,
            HeaderValue::from_static("SID=; expires=Thu, 01 Jan 1970 00:00:00 GMT; path=/"),
        );
        return r;
    }
    let call = Call {
        h: &state.registry,
        qbt,
        sid,
        p,
    };
    let mut r = with_cookie(respond(dispatch(call, scope, action).await));
    if head {
        *r.body_mut() = Body::empty();
    }
    r
}

async fn dispatch(c: Call<'_>, scope: &str, action: &str) -> Answer {
    match scope {
        "app" => app::dispatch(c, action).await,
        "transfer" => transfer::dispatch(c, action).await,
        "sync" => sync::dispatch(c, action).await,
        "log" if matches!(action, "main" | "peers") => Ok(Reply::Json(Value::Array(vec![]))),
        "torrents" => {
            if let Some(a) = torrents::dispatch(&c, action).await {
                return a;
            }
            if let Some(a) = labels::dispatch(&c, action).await {
                return a;
            }
            if action == "add" {
                return add::add(&c).await;
            }
            actions::dispatch(&c, action)
                .await
                .unwrap_or_else(|| Err(Fail::not_found()))
        }
        _ => Err(Fail::not_found()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_qbittorrents_rule() {
        assert_eq!(
            split_path("/api/v2/torrents/info"),
            Some(("torrents", "info"))
        );
        for bad in [
            "/api/v2/torrents",
            "/api/v2/torrents/info/x",
            "/api/v2/1x/info",
            "/api/v2/app/web-api",
            "/api/v1/app/version",
        ] {
            assert_eq!(split_path(bad), None, "{bad}");
        }
        assert!(post_only("torrents", "pause") && !post_only("torrents", "info"));
    }
}
