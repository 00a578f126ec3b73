//! Browser security headers on every response (SECURITY.md, "Browser security").
//!
//! Every response: `X-Content-Type-Options: nosniff`, `Referrer-Policy:
//! strict-origin-when-cross-origin`, `X-Frame-Options: DENY`, and in production over
//! https `Strict-Transport-Security`. HTML (the web app, Swagger UI, the epay refusal
//! page) gets a strict Content-Security-Policy; everything else the minimal
//! `default-src 'none'; frame-ancestors 'none'`.
//!
//! The web app's `index.html` boots the WASM from an inline module script. Its sha256
//! is read from the served file (`STATIC_DIR/index.html`) and re-read whenever the file
//! changes (rebuilt under a running server), never written down by hand: an edit of
//! `index.html` cannot silently break the page.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

use actix_web::dev::ServiceResponse;
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::config::{AppEnv, Settings};

/// The policy of everything that is not HTML (JSON, SSE, plain text, assets).
pub const NON_HTML_POLICY: &str = "default-src 'none'; frame-ancestors 'none'";

/// Where Swagger UI is served (see [`docs_policy`]).
pub const DOCS_PREFIX: &str = "/docs/";

/// `Strict-Transport-Security` when it is sent (a year; no `includeSubDomains`: other
/// hosts of the operator's domain are not ours to pin).
pub const HSTS: &str = "max-age=31536000";

/// Where the headers' inputs come from.
pub struct SecurityHeaders {
    index: PathBuf,
    hsts: bool,
    docs: HeaderValue,
    /// The HTML policy for the `index.html` last seen (its modification time and size).
    cache: Mutex<Option<(FileStamp, HeaderValue)>>,
}

type FileStamp = Option<(Option<SystemTime>, u64)>;

impl SecurityHeaders {
    pub fn new(settings: &Settings) -> SecurityHeaders {
        SecurityHeaders {
            index: settings.static_dir.join("index.html"),
            hsts: hsts_enabled(settings),
            docs: HeaderValue::from_str(&docs_policy())
                .unwrap_or_else(|_| HeaderValue::from_static(NON_HTML_POLICY)),
            cache: Mutex::new(None),
        }
    }

    /// Adds the headers to `res` (a header the handler set itself is kept).
    pub fn apply<B>(&self, res: &mut ServiceResponse<B>) {
        let html = is_html(res.headers());
        let csp = if html && res.request().path().starts_with(DOCS_PREFIX) {
            self.docs.clone()
        } else if html {
            self.html_policy()
        } else {
            HeaderValue::from_static(NON_HTML_POLICY)
        };
        let headers = res.headers_mut();
        let mut set = |name: HeaderName, value: HeaderValue| {
            if !headers.contains_key(&name) {
                headers.insert(name, value);
            }
        };
        set(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        set(
            header::REFERRER_POLICY,
            HeaderValue::from_static("strict-origin-when-cross-origin"),
        );
        set(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        set(header::CONTENT_SECURITY_POLICY, csp);
        if self.hsts {
            set(
                header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_static(HSTS),
            );
        }
    }

    /// The HTML policy with the hashes of the served `index.html`'s inline scripts and
    /// styles, recomputed when the file's modification time or size changes.
    fn html_policy(&self) -> HeaderValue {
        let stamp = std::fs::metadata(&self.index)
            .ok()
            .map(|m| (m.modified().ok(), m.len()));
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((seen, value)) = cache.as_ref() {
            if *seen == stamp {
                return value.clone();
            }
        }
        let page = match stamp {
            Some(_) => std::fs::read_to_string(&self.index).unwrap_or_default(),
            None => String::new(),
        };
        let value = HeaderValue::from_str(&html_policy(&page))
            .unwrap_or_else(|_| HeaderValue::from_static(NON_HTML_POLICY));
        *cache = Some((stamp, value.clone()));
        value
    }
}

/// HSTS only for a production server whose public URL is https: a browser that saw it
/// over plain http (development, a LAN test box) would refuse that host's http for a year.
pub fn hsts_enabled(settings: &Settings) -> bool {
    settings.app_env == AppEnv::Production
        && settings
            .public_base_url
            .get(..8)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
}

fn is_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .get(..9)
                .is_some_and(|t| t.eq_ignore_ascii_case("text/html"))
        })
}

/// The Content-Security-Policy of an HTML page whose inline scripts and styles are those
/// of `page` (the web app's `index.html`; other pages have none of their own).
///
/// - `script-src 'self' 'wasm-unsafe-eval'` + hashes: the app's own files, compiling its
///   WebAssembly module, and the inline boot script by hash; no `'unsafe-inline'`, no
///   `'unsafe-eval'`, no other origin.
/// - `style-src 'self'` + hashes: the app's stylesheet is a file; its only inline styles
///   are set through CSSOM (`style:width=`), which CSP does not restrict.
/// - `img-src 'self' data:`: the app's `<link rel=icon href="data:,">` and the `data:` SVG
///   icons in Swagger UI's stylesheet (QR codes are inline SVG elements, not images).
/// - `connect-src 'self'`: the API and its event streams are same-origin.
/// - `form-action 'self'`: the app's forms are handled in the page; provider pages
///   (WeChat H5, Alipay page/wap pay) are reached by navigation, not by a form post.
pub fn html_policy(page: &str) -> String {
    let hashes = |tag: &str| -> String {
        inline_blocks(page, tag)
            .iter()
            .map(|body| format!(" {}", csp_hash(body)))
            .collect()
    };
    policy(
        &format!("'self' 'wasm-unsafe-eval'{}", hashes("script")),
        &format!("'self'{}", hashes("style")),
    )
}

/// The policy of Swagger UI (`/docs/`): [`html_policy`]'s, but `style-src` also allows
/// inline styles. Swagger UI's top bar draws its logo as an inline SVG with a `<style>`
/// element; everything else it styles through its stylesheet or CSSOM. Scripts are its
/// own files only (its `index.html` has no inline script, and it has no WebAssembly).
pub fn docs_policy() -> String {
    policy("'self'", "'self' 'unsafe-inline'")
}

fn policy(script_src: &str, style_src: &str) -> String {
    format!(
        "default-src 'self'; script-src {script_src}; \
         style-src {style_src}; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// `'sha256-…'` of an inline block as the browser hashes it: its text after the HTML
/// parser's newline normalisation (CRLF and CR become LF).
pub fn csp_hash(body: &str) -> String {
    let text = body.replace("\r\n", "\n").replace('\r', "\n");
    let digest = Sha256::digest(text.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// The contents of the inline `<tag>` elements of `page` (`script` without `src`, or
/// `style`). A block inside a comment is hashed too, which allows nothing that runs.
pub fn inline_blocks<'a>(page: &'a str, tag: &str) -> Vec<&'a str> {
    // ASCII lower-casing keeps byte offsets, so slices of `lower` index `page`.
    let lower = page.to_ascii_lowercase();
    let open = format!("<{tag}");
    let close = format!("</{tag}");
    let mut blocks = Vec::new();
    let mut at = 0;
    while let Some(found) = lower[at..].find(&open) {
        let name_end = at + found + open.len();
        let delimited = lower
            .as_bytes()
            .get(name_end)
            .is_some_and(|b| b.is_ascii_whitespace() || *b == b'>' || *b == b'/');
        if !delimited {
            at = name_end;
            continue;
        }
        let Some(gt) = lower[name_end..].find('>') else {
            break;
        };
        let attrs = &lower[name_end..name_end + gt];
        let body_start = name_end + gt + 1;
        let Some(len) = lower[body_start..].find(&close) else {
            break;
        };
        let has_src = attrs
            .split(|c: char| c.is_ascii_whitespace() || c == '/')
            .any(|a| a == "src" || a.starts_with("src="));
        if !(tag == "script" && has_src) {
            blocks.push(&page[body_start..body_start + len]);
        }
        at = body_start + len + close.len();
    }
    blocks
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn try_settings(vars: &[(&str, &str)]) -> Result<Settings, crate::config::ConfigError> {
        let mut map: HashMap<String, String> = [
            (
                "JWT_SECRET",
                "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz",
            ),
            ("DATABASE_URL", "sqlite://unused.db"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in vars {
            map.insert(k.to_string(), v.to_string());
        }
        Settings::from_map(&map)
    }

    fn settings(vars: &[(&str, &str)]) -> Settings {
        try_settings(vars).unwrap_or_else(|e| panic!("settings: {e}"))
    }

    #[test]
    fn hsts_only_in_production_over_https() {
        assert!(!hsts_enabled(&settings(&[])));
        assert!(!hsts_enabled(&settings(&[(
            "PUBLIC_BASE_URL",
            "https://pay.example.com"
        )])));
        // (Production over plain http is refused by the configuration itself.)
        let refused = try_settings(&[
            ("APP_ENV", "production"),
            ("PUBLIC_BASE_URL", "http://pay.example.com"),
        ]);
        assert!(refused.is_err_and(|e| e.to_string().contains("PUBLIC_BASE_URL")));
        assert!(hsts_enabled(&settings(&[
            ("APP_ENV", "production"),
            ("PUBLIC_BASE_URL", "HTTPS://pay.example.com"),
        ])));
    }

    #[test]
    fn hashes_inline_scripts_and_styles_only() {
        let page = "<html><head><SCRIPT src=\"/a.js\"></script><style>p{}</style>\
                    <scripts>x</scripts></head><body><script type=\"module\">\r\nboot();\n</script>\
                    <script\n>two()</script></body></html>";
        assert_eq!(
            inline_blocks(page, "script"),
            vec!["\r\nboot();\n", "two()"]
        );
        assert_eq!(inline_blocks(page, "style"), vec!["p{}"]);
        let policy = html_policy(page);
        // The browser hashes the text after newline normalisation.
        assert_eq!(csp_hash("\r\nboot();\n"), csp_hash("\nboot();\n"));
        assert!(policy.contains(&format!(
            "script-src 'self' 'wasm-unsafe-eval' {} {};",
            csp_hash("\nboot();\n"),
            csp_hash("two()")
        )));
        assert!(policy.contains(&format!("style-src 'self' {};", csp_hash("p{}"))));
        assert!(!policy.contains("unsafe-inline"));
        // Swagger UI: inline styles (no hash, which would switch 'unsafe-inline' off),
        // scripts from its own files only.
        let docs = docs_policy();
        assert!(docs.contains("style-src 'self' 'unsafe-inline';"));
        assert!(docs.contains("script-src 'self';"));
        assert!(!docs.contains("sha256-"));
        // A known value: sha256 of the empty string.
        assert_eq!(
            csp_hash(""),
            "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"
        );
    }

    #[test]
    fn the_shipped_index_boot_script_is_hashed() {
        let page = include_str!("../../../frontend/index.html");
        let scripts = inline_blocks(page, "script");
        assert_eq!(scripts.len(), 1, "index.html has one inline (boot) script");
        assert!(scripts[0].contains("frontend_bg.wasm"));
        assert!(html_policy(page).contains(&csp_hash(scripts[0])));
    }
}
