//! Who may call the qBittorrent API: `auth/login` with the `--rpc-auth` credentials gives a
//! `SID` cookie (24 random bytes in base64, an idle timeout of an hour); five failed logins
//! from one address ban it for an hour (403 with qBittorrent's message, checked before the
//! password); without `--rpc-auth` (the RPC is then on loopback) every caller is let in as
//! qBittorrent lets them in with "bypass authentication for clients on localhost": a
//! session is made for a request that has none and its cookie sent. A correct HTTP basic
//! `Authorization` (as the Transmission RPC takes) also makes a session, as qBittorrent 5.2
//! does.
//!
//! The sessions and bans are behind a plain mutex: requests run in many tasks, every use is
//! a few map operations, and nothing holds it across an await. Each session also keeps its
//! `sync` state (the last answers it was sent), taken out and put back around a call.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use axum::http::{header, HeaderMap, StatusCode};
use base64::Engine as _;
use tokio::time::Instant;

use super::form::Params;
use super::sync::SyncState;
use super::{Answer, Fail, Reply};

/// Idle time after which a session ends.
const SESSION_TIMEOUT: Duration = Duration::from_secs(3600);
/// Failed logins from one address before it is banned, and for how long.
pub const MAX_FAILS: u32 = 5;
const BAN: Duration = Duration::from_secs(3600);
/// Sessions kept at most (the least recently used go first).
const MAX_SESSIONS: usize = 4096;
/// Addresses whose failures are remembered at most.
const MAX_FAILING: usize = 10_000;
pub const BANNED: &str =
    "Your IP address has been banned after too many failed authentication attempts.";

struct Session {
    last: Instant,
    sync: SyncState,
}

#[derive(Default)]
struct Failures {
    count: u32,
    banned_until: Option<Instant>,
}

/// The API's own state: credentials, sessions, failed logins.
pub struct Qbt {
    creds: Option<(String, String)>,
    bound: std::net::SocketAddr,
    sessions: Mutex<HashMap<String, Session>>,
    failures: Mutex<HashMap<IpAddr, Failures>>,
}

/// Equal, in time that depends on the length of `want` only.
fn same(given: &str, want: &str) -> bool {
    given.len() == want.len()
        && given
            .bytes()
            .zip(want.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

fn cookie_sid(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix("SID=").map(str::to_owned))
        .filter(|s| !s.is_empty())
}

fn set_cookie(sid: &str) -> String {
    format!("SID={sid}; HttpOnly; path=/; SameSite=Strict")
}

impl Qbt {
    pub fn new(creds: Option<(String, String)>, bound: std::net::SocketAddr) -> Qbt {
        Qbt {
            creds,
            bound,
            sessions: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// The API's address and user, for `app/preferences`.
    pub fn identity(&self) -> super::app::Identity {
        super::app::Identity {
            bound: self.bound,
            user: self.creds.as_ref().map(|(u, _)| u.clone()),
        }
    }

    fn lock_sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new session; its id.
    fn open(&self) -> String {
        let bytes: [u8; 24] = rand::random();
        let sid = base64::engine::general_purpose::STANDARD.encode(bytes);
        let mut s = self.lock_sessions();
        let now = Instant::now();
        if s.len() >= MAX_SESSIONS {
            s.retain(|_, v| now.duration_since(v.last) < SESSION_TIMEOUT);
        }
        while s.len() >= MAX_SESSIONS {
            let oldest = s.iter().min_by_key(|(_, v)| v.last).map(|(k, _)| k.clone());
            match oldest {
                Some(k) => s.remove(&k),
                None => break,
            };
        }
        s.insert(
            sid.clone(),
            Session {
                last: now,
                sync: SyncState::default(),
            },
        );
        sid
    }

    /// The caller's session, refreshed; or a new one when no login is needed (or a correct
    /// basic auth came), with the `Set-Cookie` value to send.
    pub fn session(
        &self,
        headers: &HeaderMap,
        _from: IpAddr,
        basic_ok: bool,
    ) -> (Option<String>, Option<String>) {
        if let Some(sid) = cookie_sid(headers) {
            let mut s = self.lock_sessions();
            let now = Instant::now();
            match s.get_mut(&sid) {
                Some(v) if now.duration_since(v.last) < SESSION_TIMEOUT => {
                    v.last = now;
                    return (Some(sid), None);
                }
                Some(_) => {
                    s.remove(&sid);
                }
                None => {}
            }
        }
        // Without credentials the RPC is on loopback only (the daemon refuses to start
        // otherwise): every caller is local, and local callers need no login.
        let bypass = self.creds.is_none();
        if bypass || (basic_ok && headers.contains_key(header::AUTHORIZATION)) {
            let sid = self.open();
            let cookie = set_cookie(&sid);
            return (Some(sid), Some(cookie));
        }
        (None, None)
    }

    /// `auth/login`: (the answer, a `Set-Cookie` for a new session).
    pub fn login(&self, p: &Params, from: IpAddr, has_session: bool) -> (Answer, Option<String>) {
        let now = Instant::now();
        {
            let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(e) = f.get(&from) {
                match e.banned_until {
                    Some(until) if now < until => {
                        return (Err(Fail::new(StatusCode::FORBIDDEN, BANNED)), None)
                    }
                    Some(_) => {
                        f.remove(&from);
                    }
                    None => {}
                }
            }
        }
        if has_session {
            return (Ok(Reply::Text("Ok.".into())), None);
        }
        let Some((user, pass)) = &self.creds else {
            let sid = self.open();
            return (Ok(Reply::Text("Ok.".into())), Some(set_cookie(&sid)));
        };
        let u = p.get("username").unwrap_or("");
        let w = p.get("password").unwrap_or("");
        // Both compared, always: the time does not tell which was wrong.
        let ok = same(u, user) & same(w, pass);
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if ok {
            f.remove(&from);
            drop(f);
            let sid = self.open();
            return (Ok(Reply::Text("Ok.".into())), Some(set_cookie(&sid)));
        }
        if f.len() >= MAX_FAILING && !f.contains_key(&from) {
            f.retain(|_, e| e.banned_until.is_some_and(|u| now < u));
        }
        let e = f.entry(from).or_default();
        e.count += 1;
        if e.count >= MAX_FAILS {
            e.banned_until = Some(now + BAN);
        }
        (Ok(Reply::Text("Fails.".into())), None)
    }

    pub fn logout(&self, sid: &str) {
        self.lock_sessions().remove(sid);
    }

    /// Takes a session's sync state out to work on it (put back with [`Qbt::put_sync`]).
    pub fn take_sync(&self, sid: &str) -> SyncState {
        self.lock_sessions()
            .get_mut(sid)
            .map(|s| std::mem::take(&mut s.sync))
            .unwrap_or_default()
    }

    pub fn put_sync(&self, sid: &str, sync: SyncState) {
        if let Some(s) = self.lock_sessions().get_mut(sid) {
            s.sync = sync;
        }
    }
}

/// The `host:port` of a URL (`http://host:port/path` → `host:port`), lowercased.
fn authority(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let a = rest.split(['/', '?', '#']).next()?;
    let a = a.rsplit_once('@').map_or(a, |(_, h)| h);
    (!a.is_empty()).then(|| a.to_ascii_lowercase())
}

/// qBittorrent's CSRF rule: a request with an `Origin` (else a `Referer`) must come from
/// the host and port it is sent to (the scheme is not compared, the port literally).
/// Requests with neither (scripts, media managers) pass.
pub fn cross_site(headers: &HeaderMap) -> bool {
    let get = |h: header::HeaderName| headers.get(h).and_then(|v| v.to_str().ok());
    let source = get(header::ORIGIN).or_else(|| get(header::REFERER));
    let Some(source) = source else {
        return false;
    };
    let target = get(header::HOST).map(|h| h.trim().to_ascii_lowercase());
    authority(source) != target
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn cross_site_requests_are_told_apart() {
        let host = ("host", "127.0.0.1:8080");
        assert!(!cross_site(&headers(&[host])));
        assert!(!cross_site(&headers(&[
            host,
            ("origin", "http://127.0.0.1:8080")
        ])));
        assert!(!cross_site(&headers(&[
            host,
            ("referer", "https://127.0.0.1:8080/x?y")
        ])));
        assert!(cross_site(&headers(&[
            host,
            ("origin", "http://evil.example")
        ])));
        assert!(cross_site(&headers(&[
            host,
            ("origin", "http://127.0.0.1")
        ])));
        assert!(cross_site(&headers(&[host, ("origin", "null")])));
        assert!(cross_site(&headers(&[
            host,
            ("referer", "http://evil.example:8080/")
        ])));
    }

    #[tokio::test]
    async fn five_failures_ban_the_address_even_for_the_right_password() {
        let q = Qbt::new(
            Some(("admin".into(), "pw".into())),
            "127.0.0.1:1".parse().unwrap(),
        );
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let form = |u: &str, w: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            );
            let body = bytes::Bytes::from(format!("username={u}&password={w}"));
            futures_util::FutureExt::now_or_never(Params::read(
                &axum::http::Method::POST,
                None,
                &h,
                body,
            ))
            .unwrap()
            .unwrap()
        };
        let (a, c) = q.login(&form("admin", "pw"), ip, false);
        assert!(matches!(a, Ok(Reply::Text(ref t)) if t == "Ok.") && c.is_some());
        for _ in 0..MAX_FAILS {
            let (a, c) = q.login(&form("admin", "nope"), ip, false);
            assert!(matches!(a, Ok(Reply::Text(ref t)) if t == "Fails.") && c.is_none());
        }
        let (a, _) = q.login(&form("admin", "pw"), ip, false);
        assert_eq!(a.unwrap_err(), Fail::new(StatusCode::FORBIDDEN, BANNED));
        // Another address is not banned.
        let (a, _) = q.login(&form("admin", "pw"), "10.0.0.2".parse().unwrap(), false);
        assert!(matches!(a, Ok(Reply::Text(ref t)) if t == "Ok."));
    }

    #[test]
    fn sessions_come_from_the_cookie_or_from_no_credentials() {
        let q = Qbt::new(
            Some(("a".into(), "b".into())),
            "127.0.0.1:1".parse().unwrap(),
        );
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(q.session(&HeaderMap::new(), ip, false), (None, None));
        let sid = q.open();
        assert_eq!(sid.len(), 32);
        let h = headers(&[("cookie", &format!("x=1; SID={sid}"))]);
        assert_eq!(q.session(&h, ip, false), (Some(sid.clone()), None));
        q.logout(&sid);
        assert_eq!(q.session(&h, ip, false), (None, None));
        let open = Qbt::new(None, "127.0.0.1:1".parse().unwrap());
        let (s, c) = open.session(&HeaderMap::new(), ip, false);
        assert!(s.is_some() && c.unwrap().starts_with("SID="));
    }
}
