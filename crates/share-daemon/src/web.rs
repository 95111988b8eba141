//! The web page: three files built into the binary (no build step, nothing fetched at run
//! time). The page talks to the RPC like any other client.

const INDEX: &str = include_str!("../web/index.html");
const APP: &str = include_str!("../web/app.js");
const STYLE: &str = include_str!("../web/style.css");

/// Everything the page may load: its own files and RPC, nothing inline, nothing elsewhere.
pub const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; \
                       script-src 'self'; connect-src 'self'; media-src 'self'; frame-ancestors 'none'";

/// The asset at `path`, with its type.
pub fn asset(path: &str) -> Option<(&'static str, &'static str)> {
    match path {
        "/" | "/index.html" | "/web" | "/web/" | "/transmission/web/" => {
            Some(("text/html; charset=utf-8", INDEX))
        }
        "/app.js" => Some(("text/javascript; charset=utf-8", APP)),
        "/style.css" => Some(("text/css; charset=utf-8", STYLE)),
        _ => None,
    }
}
