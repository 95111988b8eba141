//! `transfer/*`: the session's totals and rates, and its rate limits, normal and
//! alternative, changed at run time through `Session::set_rate_limits` (every connection
//! of every torrent follows at once) and kept with the torrent list.

use serde_json::{json, Map, Value};

use super::{Answer, Call, Fail, Reply};
use crate::registry::Registry;

pub async fn dispatch(c: Call<'_>, action: &str) -> Answer {
    match action {
        "info" => Ok(Reply::Json(Value::Object(c.h.read(|r| info(r)).await?))),
        "speedLimitsMode" => Ok(Reply::Text(
            if c.h.read(|r| r.settings.alt_mode).await? {
                "1"
            } else {
                "0"
            }
            .into(),
        )),
        "toggleSpeedLimitsMode" => set_mode(&c, None).await,
        "setSpeedLimitsMode" => {
            let mode =
                c.p.need("mode")?
                    .trim()
                    .parse::<i64>()
                    .map_err(|_| Fail::bad("'mode': invalid argument"))?;
            set_mode(&c, Some(mode != 0)).await
        }
        "downloadLimit" | "uploadLimit" => {
            let (up, down) = c.h.session.rate_limits();
            let v = if action == "uploadLimit" { up } else { down };
            Ok(Reply::Text(v.unwrap_or(0).to_string()))
        }
        "setDownloadLimit" | "setUploadLimit" => {
            let limit =
                c.p.int("limit")?
                    .ok_or_else(|| Fail::bad("Missing required parameters: limit"))?;
            let limit = (limit > 0).then_some(limit as u64);
            let up = action == "setUploadLimit";
            c.h.read(move |r| set_limit(r, up, limit)).await?;
            Ok(Reply::Empty)
        }
        "banPeers" => Err(Fail::conflict("share cannot ban peers through this API")),
        _ => Err(Fail::not_found()),
    }
}

/// Sets the limit of the set in force (the alternative one in alternative mode).
fn set_limit(r: &mut Registry, up: bool, limit: Option<u64>) {
    let s = &mut r.settings;
    let mut l = if s.alt_mode {
        s.alt_limits
    } else {
        r.normal_limits()
    };
    if up {
        l.up = limit;
    } else {
        l.down = limit;
    }
    if r.settings.alt_mode {
        r.settings.alt_limits = l;
    } else {
        r.settings.rate_limits = Some(l);
    }
    r.apply_rate_limits();
    r.mark_dirty();
    r.save();
}

async fn set_mode(c: &Call<'_>, alt: Option<bool>) -> Answer {
    c.h.read(move |r| {
        r.settings.alt_mode = alt.unwrap_or(!r.settings.alt_mode);
        r.apply_rate_limits();
        r.mark_dirty();
        r.save();
    })
    .await?;
    Ok(Reply::Empty)
}

/// Totals and rates of the session (this run), and the limits in force.
pub fn info(r: &Registry) -> Map<String, Value> {
    let (mut up_rate, mut down_rate, mut up, mut down) = (0, 0, 0, 0);
    for e in r.entries.values() {
        if let Some(s) = e.stats() {
            up_rate += s.get(&s.rate_up);
            down_rate += s.get(&s.rate_down);
            up += s.get(&s.uploaded);
            down += s.get(&s.downloaded);
        }
    }
    let (up_limit, down_limit) = r.session.rate_limits();
    let o = json!({
        "dl_info_speed": down_rate,
        "dl_info_data": down,
        "up_info_speed": up_rate,
        "up_info_data": up,
        "dl_rate_limit": down_limit.unwrap_or(0),
        "up_rate_limit": up_limit.unwrap_or(0),
        "dht_nodes": 0,
        "connection_status": "connected",
        "last_external_address_v4": "",
        "last_external_address_v6": "",
    });
    match o {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}
