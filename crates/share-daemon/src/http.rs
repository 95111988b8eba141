//! The daemon's HTTP server: `POST /transmission/rpc`, qBittorrent's API under `/api/v2/`
//! (its own login and sessions: see `qbt`), the page at `/`, streams at
//! `/stream/<info-hash>/<file-index>`.
//!
//! Every request passes, in order:
//! 1. **Host**: the `Host` header must name the address we are bound to, `localhost`, a
//!    loopback address, or one of the configured names. A page elsewhere that points its own
//!    name at us (DNS rebinding) is refused with 421.
//! 2. **Auth**, when configured: HTTP basic; a wrong password is answered after a delay that
//!    grows with the failures from that address (1 s, then up to 8 s), so guessing is slow.
//! 3. For the RPC, the **session id** (Transmission's CSRF guard): a request without the
//!    current `X-Transmission-Session-Id` gets 409 and the id in that header.
//! 4. Bodies are read up to [`MAX_BODY`] (413 beyond).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use base64::Engine as _;
use http_body_util::BodyExt;

use crate::owner::Handle;
use crate::DaemonConfig;

/// Largest request body (a base64 .torrent of 12 MiB fits).
pub const MAX_BODY: usize = 16 << 20;
const SESSION_HEADER: &str = "X-Transmission-Session-Id";

pub struct AppState {
    pub registry: Handle,
    session_id: String,
    auth: Option<(String, String)>,
    hosts: Vec<String>,
    pub bound: SocketAddr,
    pub watch: Option<std::path::PathBuf>,
    /// Failed logins per address: how many, for the delay of the next.
    failures: std::sync::Mutex<HashMap<IpAddr, u32>>,
    /// The qBittorrent API's sessions and bans.
    pub qbt: crate::qbt::Qbt,
}

impl AppState {
    pub fn new(registry: Handle, config: &DaemonConfig, bound: SocketAddr) -> AppState {
        let session_id: String = (0..48)
            .map(|_| {
                const C: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
                C[rand::random::<usize>() % C.len()] as char
            })
            .collect();
        AppState {
            registry,
            session_id,
            auth: config.auth.clone(),
            hosts: config
                .host_names
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            bound,
            watch: config.watch.clone(),
            failures: std::sync::Mutex::new(HashMap::new()),
            qbt: crate::qbt::Qbt::new(config.auth.clone(), bound),
        }
    }

    /// Whether a `Host` header names us.
    fn host_ok(&self, host: &str) -> bool {
        let host = host.trim().to_ascii_lowercase();
        // Strip the port: "name:port", "[v6]:port".
        let name = if let Some(rest) = host.strip_prefix('[') {
            rest.split(']').next().unwrap_or("").to_owned()
        } else {
            host.rsplit_once(':')
                .map_or(host.clone(), |(h, _)| h.to_owned())
        };
        if name == "localhost" || self.hosts.contains(&name) {
            return true;
        }
        match name.parse::<IpAddr>() {
            Ok(ip) => ip.is_loopback() || ip == self.bound.ip() || self.bound.ip().is_unspecified(),
            Err(_) => false,
        }
    }

    /// Whether the request may pass basic auth (always, when none is configured).
    pub fn basic_auth_ok(&self, headers: &HeaderMap) -> bool {
        let Some((user, pass)) = &self.auth else {
            return true;
        };
        let Some(v) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let Some(b64) = v.strip_prefix("Basic ") else {
            return false;
        };
        let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else {
            return false;
        };
        let given = String::from_utf8_lossy(&raw);
        let want = format!("{user}:{pass}");
        // Compared in constant time for the length of the right answer.
        given.len() == want.len()
            && given
                .bytes()
                .zip(want.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }

    fn failed(&self, ip: IpAddr) -> Duration {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if f.len() > 10_000 {
            f.clear();
        }
        let n = f.entry(ip).or_default();
        *n = n.saturating_add(1);
        Duration::from_secs(1u64 << (*n - 1).min(3))
    }

    fn succeeded(&self, ip: IpAddr) {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        f.remove(&ip);
    }
}

fn plain(status: StatusCode, text: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text.to_owned(),
    )
        .into_response()
}

/// The `Host` check every request passes first: a refusal (421) for a name that is not ours.
pub fn host_refused(state: &AppState, headers: &HeaderMap) -> Option<Response> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    (!state.host_ok(host)).then(|| {
        plain(
            StatusCode::MISDIRECTED_REQUEST,
            "421: this daemon does not answer to that host name (start it with --rpc-host-name NAME to allow one)\n",
        )
    })
}

/// The checks every request passes before its handler (Host, then auth).
async fn guard(state: &AppState, from: SocketAddr, headers: &HeaderMap) -> Option<Response> {
    if let Some(r) = host_refused(state, headers) {
        return Some(r);
    }
    if !state.basic_auth_ok(headers) {
        if headers.contains_key(header::AUTHORIZATION) {
            tokio::time::sleep(state.failed(from.ip())).await;
        }
        let mut r = plain(StatusCode::UNAUTHORIZED, "401: Unauthorized\n");
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"share\""),
        );
        return Some(r);
    }
    if state.auth.is_some() {
        state.succeeded(from.ip());
    }
    None
}

async fn rpc(
    State(state): State<Arc<AppState>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let headers = req.headers().clone();
    if let Some(r) = guard(&state, from, &headers).await {
        return r;
    }
    let id_ok = headers
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == state.session_id);
    if !id_ok {
        let mut r = plain(
            StatusCode::CONFLICT,
            &format!("<h1>409: Conflict</h1><p>Your request had an invalid session-id header.</p><p><code>{SESSION_HEADER}: {}</code></p>", state.session_id),
        );
        if let Ok(v) = HeaderValue::from_str(&state.session_id) {
            r.headers_mut().insert(SESSION_HEADER, v);
        }
        return r;
    }
    if req.method() != Method::POST {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "405: the RPC takes POST\n");
    }
    let body = match http_body_util::Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                "413: request body too large\n",
            )
        }
    };
    let answer = crate::rpc::handle(&state.registry, &body, &state.session_id).await;
    let mut resp = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json; charset=UTF-8")],
        answer.to_string(),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&state.session_id) {
        resp.headers_mut().insert(SESSION_HEADER, v);
    }
    resp
}

async fn page(
    State(state): State<Arc<AppState>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    if let Some(r) = guard(&state, from, req.headers()).await {
        return r;
    }
    let path = req.uri().path();
    match crate::web::asset(path) {
        Some((mime, body)) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, mime),
                (header::CACHE_CONTROL, "no-cache"),
                (
                    header::HeaderName::from_static("x-content-type-options"),
                    "nosniff",
                ),
                (header::HeaderName::from_static("x-frame-options"), "DENY"),
                (header::CONTENT_SECURITY_POLICY, crate::web::CSP),
            ],
            body,
        )
            .into_response(),
        None => plain(StatusCode::NOT_FOUND, "404: Not Found\n"),
    }
}

async fn stream(
    State(state): State<Arc<AppState>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    Path((hash, index)): Path<(String, String)>,
    req: Request,
) -> Response {
    if let Some(r) = guard(&state, from, req.headers()).await {
        return r;
    }
    crate::stream::serve(&state.registry, &hash, &index, req.headers(), req.method()).await
}

async fn qbt_api(
    State(state): State<Arc<AppState>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    crate::qbt::serve(state, from, req).await
}

/// Serves until `stop`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let app = Router::new()
        .route("/transmission/rpc", any(rpc))
        .route("/transmission/rpc/", any(rpc))
        .route("/stream/{hash}/{index}", get(stream))
        .route("/api/v2/{*rest}", any(qbt_api))
        .fallback(page)
        .with_state(state);
    // Requests under way get a moment to finish once `stop` comes, not more: an add by URL
    // waiting on a server that never answers must not hold the daemon's exit.
    let (stopping_tx, stopping) = tokio::sync::oneshot::channel::<()>();
    let stop = async move {
        stop.await;
        let _ = stopping_tx.send(());
    };
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(stop);
    tokio::select! {
        _ = server => {}
        _ = async {
            if stopping.await.is_ok() {
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            } else {
                // The server ended on its own: the other branch completes.
                std::future::pending::<()>().await
            }
        } => tracing::info!("stopping without waiting for requests still under way"),
    }
}

/// How long requests under way may take once the daemon is asked to stop.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// A body of bytes (for handlers that build one).
pub fn body(b: impl Into<Bytes>) -> Body {
    Body::from(b.into())
}
