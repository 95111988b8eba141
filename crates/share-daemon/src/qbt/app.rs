//! `app/*`: versions, build info, the default folder, and the preferences.
//!
//! `preferences` returns every key qBittorrent 5.1 has (`preferences.json` holds the
//! defaults of those share has no use for) with share's own values for what it has: the
//! default folder, rate limits (and the alternative ones), seeding limits, stopped adds,
//! DHT/PEX/LSD, encryption, the listen port, connection and upload slot limits, queueing.
//! `setPreferences` changes what share can change (the folder, limits, seeding goals,
//! stopped adds, the alternative limits' schedule, shared with the Transmission RPC's
//! `alt-speed-time-*`, the queues, shared with its `*-queue-*` settings); a key whose value it cannot change is accepted only if the value
//! is the one it already has; anything else is a 400 naming the keys, and then nothing
//! changes.

use std::sync::OnceLock;

use serde_json::{json, Map, Value};

use super::{Answer, Call, Fail, Reply, APP_VERSION, WEBAPI_VERSION};
use crate::paths;
use crate::registry::Registry;
use crate::saved::SavedSession;

pub async fn dispatch(c: Call<'_>, action: &str) -> Answer {
    match action {
        "webapiVersion" => Ok(Reply::Text(WEBAPI_VERSION.into())),
        "version" => Ok(Reply::Text(APP_VERSION.into())),
        "buildInfo" => Ok(Reply::Json(json!({
            "qt": "",
            "libtorrent": concat!("share ", env!("CARGO_PKG_VERSION")),
            "boost": "",
            "openssl": "",
            "zlib": "",
            "bitness": usize::BITS,
            "platform": "linux",
        }))),
        "defaultSavePath" => Ok(Reply::Text(
            c.h.read(|r| r.default_dir().to_string_lossy().into_owned())
                .await?,
        )),
        "preferences" => {
            let me = c.qbt.identity();
            Ok(Reply::Json(Value::Object(
                c.h.read(move |r| preferences(r, &me)).await?,
            )))
        }
        "setPreferences" => set_preferences(&c).await,
        "networkInterfaceList" | "networkInterfaceAddressList" => Ok(Reply::Json(json!([]))),
        _ => Err(Fail::not_found()),
    }
}

fn defaults() -> &'static Map<String, Value> {
    static D: OnceLock<Map<String, Value>> = OnceLock::new();
    D.get_or_init(|| serde_json::from_str(include_str!("preferences.json")).unwrap_or_default())
}

/// Who the API is: its port and address, and its user (`None`: no login needed).
#[derive(Debug, Clone)]
pub struct Identity {
    pub bound: std::net::SocketAddr,
    pub user: Option<String>,
}

/// A limit in qBittorrent's terms (0: none; a limit of 0 in force shows as 1 byte/s,
/// which is what it lets through).
fn limit(v: Option<u64>) -> u64 {
    v.map_or(0, |b| b.max(1))
}

/// The preferences as share has them.
pub fn preferences(r: &Registry, me: &Identity) -> Map<String, Value> {
    let mut p = defaults().clone();
    let s = &r.settings;
    let ss = &r.session_settings;
    let normal = r.normal_limits();
    let dir = r.default_dir().to_string_lossy().into_owned();
    let mut set = |k: &str, v: Value| {
        p.insert(k.to_owned(), v);
    };
    set("save_path", json!(dir));
    set("temp_path", json!(dir));
    set("temp_path_enabled", json!(false));
    set("listen_port", json!(r.session.local_addr().port()));
    set("random_port", json!(false));
    set("upnp", json!(ss.port_mapping));
    set("max_connec", json!(ss.peer_limit_global));
    set(
        "max_connec_per_torrent",
        json!(r.torrent_defaults.max_peers),
    );
    set("max_uploads", json!(-1));
    set(
        "max_uploads_per_torrent",
        json!(r.torrent_defaults.upload_slots),
    );
    set("dl_limit", json!(limit(normal.down)));
    set("up_limit", json!(limit(normal.up)));
    set("alt_dl_limit", json!(limit(s.alt_limits.down)));
    set("alt_up_limit", json!(limit(s.alt_limits.up)));
    // The alternative limits' schedule (set through the Transmission RPC).
    let sched = s.alt_schedule;
    set("scheduler_enabled", json!(sched.enabled));
    set("schedule_from_hour", json!(sched.begin / 60 % 24));
    set("schedule_from_min", json!(sched.begin % 60));
    set("schedule_to_hour", json!(sched.end / 60 % 24));
    set("schedule_to_min", json!(sched.end % 60));
    // qBittorrent's days: every day, weekdays, weekends, or one day from Monday (3).
    let days = match sched.days {
        62 => Some(1),
        65 => Some(2),
        d if d.count_ones() == 1 => Some((d.trailing_zeros() + 6) % 7 + 3),
        _ => None,
    };
    set("scheduler_days", json!(days.unwrap_or(0)));
    let sw = r.session.switches();
    set(
        "bittorrent_protocol",
        json!(match (ss.tcp, sw.utp) {
            (true, true) => 0,
            (true, false) => 1,
            _ => 2,
        }),
    );
    set("dht", json!(ss.dht));
    set("pex", json!(sw.pex));
    set("lsd", json!(sw.lsd));
    let enc = match sw.encryption {
        share_engine::transport::Policy::Require => 1,
        share_engine::transport::Policy::Disable => 2,
        share_engine::transport::Policy::Prefer => 0,
    };
    set("encryption", json!(enc));
    // The queues: qBittorrent's one switch and its limits (-1: none) over Transmission's two
    // queues; a stalled torrent is one that moved nothing for the stall time.
    let q = &s.queue;
    let on = queueing(q);
    set("queueing_enabled", json!(on));
    let size = |enabled: bool, n: u32| if on && !enabled { -1 } else { i64::from(n) };
    set(
        "max_active_downloads",
        json!(size(q.download_enabled, q.download_size)),
    );
    set(
        "max_active_uploads",
        json!(size(q.seed_enabled, q.seed_size)),
    );
    set("max_active_torrents", json!(-1));
    set("dont_count_slow_torrents", json!(q.stalled_enabled));
    set(
        "slow_torrent_inactive_timer",
        json!(u64::from(q.stalled_minutes) * 60),
    );
    set("slow_torrent_dl_rate_threshold", json!(0));
    set("slow_torrent_ul_rate_threshold", json!(0));
    set("max_ratio_enabled", json!(s.seed_ratio_limited));
    set(
        "max_ratio",
        json!(if s.seed_ratio_limited {
            s.seed_ratio_limit
        } else {
            -1.0
        }),
    );
    set("max_seeding_time_enabled", json!(s.seeding_time_limit >= 0));
    set("max_seeding_time", json!(s.seeding_time_limit.max(-1)));
    set(
        "max_inactive_seeding_time_enabled",
        json!(s.idle_seeding_limit_enabled),
    );
    set(
        "max_inactive_seeding_time",
        json!(if s.idle_seeding_limit_enabled {
            s.idle_seeding_limit as i64
        } else {
            -1
        }),
    );
    set("max_ratio_act", json!(0));
    set("add_stopped_enabled", json!(s.add_stopped));
    set("web_ui_port", json!(me.bound.port()));
    set("web_ui_address", json!(me.bound.ip().to_string()));
    set(
        "web_ui_username",
        json!(me.user.clone().unwrap_or_default()),
    );
    set("bypass_local_auth", json!(me.user.is_none()));
    set("web_ui_max_auth_fail_count", json!(super::auth::MAX_FAILS));
    p
}

/// qBittorrent's one queueing switch: on when either of the queues is.
pub fn queueing(q: &crate::queue::QueueSettings) -> bool {
    q.download_enabled || q.seed_enabled
}

/// `queueing_enabled`, `max_active_downloads` and `max_active_uploads` (-1: no limit, that
/// queue off), `dont_count_slow_torrents` and `slow_torrent_inactive_timer` (whole
/// minutes, in seconds) onto the queue settings.
fn apply_queue(
    q: &mut crate::queue::QueueSettings,
    changes: &Map<String, Value>,
) -> Result<(), Fail> {
    use crate::queue::{MAX_MINUTES, MAX_SIZE};
    let get = |k: &str| changes.get(k);
    let on = get("queueing_enabled")
        .map(|v| as_bool("queueing_enabled", v))
        .transpose()?
        .unwrap_or(queueing(q));
    let limit = |k: &str, enabled: bool, size: &mut u32| -> Result<bool, Fail> {
        match get(k) {
            None => Ok(!queueing(q) || enabled),
            Some(v) => match as_int(k, v)? {
                -1 => Ok(false),
                n if (0..=MAX_SIZE).contains(&n) => {
                    *size = n as u32;
                    Ok(true)
                }
                _ => Err(Fail::bad(&format!(
                    "'{k}' must be -1 or from 0 to {MAX_SIZE}"
                ))),
            },
        }
    };
    let (mut down_size, mut seed_size) = (q.download_size, q.seed_size);
    let down = limit("max_active_downloads", q.download_enabled, &mut down_size)?;
    let up = limit("max_active_uploads", q.seed_enabled, &mut seed_size)?;
    (q.download_size, q.seed_size) = (down_size, seed_size);
    q.download_enabled = on && down;
    q.seed_enabled = on && up;
    if let Some(v) = get("dont_count_slow_torrents") {
        q.stalled_enabled = as_bool("dont_count_slow_torrents", v)?;
    }
    if let Some(v) = get("slow_torrent_inactive_timer") {
        let secs = as_int("slow_torrent_inactive_timer", v)?;
        if secs < 0 || secs % 60 != 0 || secs / 60 > MAX_MINUTES {
            return Err(Fail::bad(
                "'slow_torrent_inactive_timer' must be whole minutes (a multiple of 60 seconds): share counts the stall time in minutes",
            ));
        }
        q.stalled_minutes = (secs / 60) as u32;
    }
    Ok(())
}

fn as_int(k: &str, v: &Value) -> Result<i64, Fail> {
    v.as_i64()
        .or_else(|| v.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
        .ok_or_else(|| Fail::bad(&format!("'{k}' must be an integer")))
}

fn as_bool(k: &str, v: &Value) -> Result<bool, Fail> {
    v.as_bool()
        .ok_or_else(|| Fail::bad(&format!("'{k}' must be a boolean")))
}

fn bytes(k: &str, v: &Value) -> Result<Option<u64>, Fail> {
    let n = as_int(k, v)?;
    Ok((n > 0).then_some(n as u64))
}

/// Applies `changes` to a copy of the settings: the new settings, or a 400.
fn apply(
    r: &Registry,
    me: &Identity,
    changes: &Map<String, Value>,
    save_path: Option<std::path::PathBuf>,
) -> Result<SavedSession, Fail> {
    let current = preferences(r, me);
    let mut s = r.settings.clone();
    let mut normal = r.normal_limits();
    let mut refused = Vec::new();
    for (k, v) in changes {
        match k.as_str() {
            "save_path" => s.download_dir = save_path.clone(),
            "dl_limit" => normal.down = bytes(k, v)?,
            "up_limit" => normal.up = bytes(k, v)?,
            "alt_dl_limit" => s.alt_limits.down = bytes(k, v)?,
            "alt_up_limit" => s.alt_limits.up = bytes(k, v)?,
            "add_stopped_enabled" | "start_paused_enabled" => s.add_stopped = as_bool(k, v)?,
            "max_ratio_enabled" => s.seed_ratio_limited = as_bool(k, v)?,
            "max_inactive_seeding_time_enabled" => s.idle_seeding_limit_enabled = as_bool(k, v)?,
            // The alternative limits' schedule, which the Transmission RPC sets too.
            "scheduler_enabled" => s.alt_schedule.enabled = as_bool(k, v)?,
            "schedule_from_hour" | "schedule_from_min" | "schedule_to_hour" | "schedule_to_min" => {
                let sched = &mut s.alt_schedule;
                let n = as_int(k, v)?;
                let hour_part = k.ends_with("hour");
                if !(0..if hour_part { 24 } else { 60 }).contains(&n) {
                    return Err(Fail::bad(&format!("'{k}' is out of range")));
                }
                let minute = if k.starts_with("schedule_from") {
                    &mut sched.begin
                } else {
                    &mut sched.end
                };
                let (h, m) = (*minute / 60 % 24, *minute % 60);
                *minute = if hour_part {
                    n as u16 * 60 + m
                } else {
                    h * 60 + n as u16
                };
            }
            "scheduler_days" => {
                s.alt_schedule.days = match as_int(k, v)? {
                    0 => 127,
                    1 => 62,
                    2 => 65,
                    // Monday (3) to Sunday (9).
                    d @ 3..=9 => 1 << ((d - 2) % 7),
                    _ => return Err(Fail::bad("'scheduler_days' is out of range")),
                }
            }
            "max_seeding_time_enabled"
            | "max_seeding_time"
            | "max_inactive_seeding_time"
            | "max_ratio"
            | "queueing_enabled"
            | "max_active_downloads"
            | "max_active_uploads"
            | "dont_count_slow_torrents"
            | "slow_torrent_inactive_timer" => {}
            _ if current.get(k) == Some(v) => {}
            _ => refused.push(k.clone()),
        }
    }
    if !refused.is_empty() {
        refused.sort();
        return Err(Fail::bad(&format!(
            "share cannot change these preferences (or not to these values): {}",
            refused.join(", ")
        )));
    }
    if let Some(v) = changes.get("max_ratio") {
        let f = v
            .as_f64()
            .filter(|f| f.is_finite())
            .ok_or_else(|| Fail::bad("'max_ratio' must be a number"))?;
        if f >= 0.0 {
            s.seed_ratio_limit = f;
        } else if !changes.contains_key("max_ratio_enabled") {
            s.seed_ratio_limited = false;
        }
    }
    let time_on = changes
        .get("max_seeding_time_enabled")
        .map(|v| as_bool("max_seeding_time_enabled", v))
        .transpose()?;
    let time = changes
        .get("max_seeding_time")
        .map(|v| as_int("max_seeding_time", v))
        .transpose()?;
    match (time_on, time) {
        (Some(false), _) => s.seeding_time_limit = -1,
        (_, Some(t)) => s.seeding_time_limit = t.max(-1),
        (Some(true), None) if s.seeding_time_limit < 0 => s.seeding_time_limit = 1440,
        _ => {}
    }
    if let Some(v) = changes.get("max_inactive_seeding_time") {
        let m = as_int("max_inactive_seeding_time", v)?;
        if m >= 0 {
            s.idle_seeding_limit = m as u64;
        } else if !changes.contains_key("max_inactive_seeding_time_enabled") {
            s.idle_seeding_limit_enabled = false;
        }
    }
    if ["dl_limit", "up_limit"]
        .iter()
        .any(|k| changes.contains_key(*k))
    {
        s.rate_limits = Some(normal);
    }
    apply_queue(&mut s.queue, changes)?;
    Ok(s)
}

async fn set_preferences(c: &Call<'_>) -> Answer {
    let raw = c.p.need("json")?;
    let changes: Map<String, Value> = match serde_json::from_str(raw) {
        Ok(Value::Object(m)) => m,
        _ => return Err(Fail::bad("'json' must hold a JSON object")),
    };
    let save_path = match changes.get("save_path") {
        None => None,
        Some(Value::String(p)) => Some(
            paths::download_dir(&c.h.download_root, p)
                .map_err(|e| Fail::bad(&format!("save_path: {e}")))?,
        ),
        Some(_) => return Err(Fail::bad("'save_path' must be a string")),
    };
    let me = c.qbt.identity();
    c.h.read(move |r| {
        let s = apply(r, &me, &changes, save_path)?;
        let schedule_changed = s.alt_schedule != r.settings.alt_schedule;
        r.settings = s;
        if schedule_changed {
            r.follow_schedule(crate::turtle::WeekMinute::now(), true);
        }
        r.apply_rate_limits();
        r.pump();
        r.mark_dirty();
        r.save();
        Ok(Reply::Empty)
    })
    .await?
}
