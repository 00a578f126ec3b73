//! Claims SECURITY.md makes about the running server, checked on the wire.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine;
use fenpay_tests::{both_backends, TestApp};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The h2 crate comes with actix-http and has open advisories (RUSTSEC-2026-0258), which
/// SECURITY.md answers with "the listener speaks HTTP/1.1 only". A client that opens with
/// the HTTP/2 connection preface (prior knowledge, h2c) must get an HTTP/1.1 answer or a
/// closed connection, never an HTTP/2 SETTINGS frame.
#[tokio::test]
async fn the_listener_never_speaks_http2() {
    let app = TestApp::sqlite(&[]).await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    // An empty SETTINGS frame: length 0, type 4, flags 0, stream 0.
    hello.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    conn.write_all(&hello).await.unwrap();
    let mut answer = Vec::new();
    // Whatever came back before the server closed (or before we stopped waiting): an
    // HTTP/2 server sends its SETTINGS frame first, which starts with a length, not text.
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        conn.read_to_end(&mut answer),
    )
    .await;
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1 "),
        "the server answered the HTTP/2 preface with {:?}",
        String::from_utf8_lossy(&answer[..answer.len().min(64)])
    );
    // The server is unharmed.
    let (status, body) = app.get("/healthz", None).await;
    assert_eq!(status, 200, "{body}");
}

// ---- browser security headers (SECURITY.md, "Browser security") ---------------------------

/// A web app build of its own (the shipped `frontend/index.html`, whose inline boot script
/// the policy must allow by hash) for one test: `STATIC_DIR` pointing at it.
fn spa_overrides() -> Vec<(&'static str, &'static str)> {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
        .keep();
    let index = concat!(env!("CARGO_MANIFEST_DIR"), "/../frontend/index.html");
    std::fs::copy(index, dir.join("index.html")).unwrap();
    std::fs::write(dir.join("style.css"), "body{}").unwrap();
    let dir: &'static str = Box::leak(dir.display().to_string().into_boxed_str());
    vec![("STATIC_DIR", dir)]
}

/// The contents of the inline (no `src`) scripts of an HTML page.
fn inline_scripts(html: &str) -> Vec<String> {
    html.split("<script")
        .skip(1)
        .filter_map(|rest| {
            let (attrs, rest) = rest.split_once('>')?;
            let (body, _) = rest.split_once("</script>")?;
            (!attrs.contains("src=")).then(|| body.to_string())
        })
        .collect()
}

/// `'sha256-…'` as a browser computes it for an inline script.
fn sha256_source(script: &str) -> String {
    let digest = Sha256::digest(script.replace("\r\n", "\n").as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// One directive's sources (`script-src` -> `['self', …]`), or `None` when absent.
fn directive(csp: &str, name: &str) -> Option<Vec<String>> {
    csp.split(';').map(str::trim).find_map(|d| {
        let mut words = d.split_whitespace();
        (words.next() == Some(name)).then(|| words.map(str::to_string).collect())
    })
}

async fn fetch(app: &TestApp, path: &str) -> (reqwest::header::HeaderMap, String) {
    let resp = app.client.get(app.url(path)).send().await.unwrap();
    let headers = resp.headers().clone();
    (headers, resp.text().await.unwrap())
}

fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

/// What every response carries, whatever its type.
fn assert_common(headers: &reqwest::header::HeaderMap, what: &str) {
    assert_eq!(
        header(headers, "x-content-type-options"),
        "nosniff",
        "{what}"
    );
    assert_eq!(
        header(headers, "referrer-policy"),
        "strict-origin-when-cross-origin",
        "{what}"
    );
    assert_eq!(header(headers, "x-frame-options"), "DENY", "{what}");
    let csp = header(headers, "content-security-policy");
    assert_eq!(
        directive(csp, "frame-ancestors"),
        Some(vec!["'none'".to_string()]),
        "{what}: {csp}"
    );
    // Development (the harness's APP_ENV) over http: never HSTS.
    assert!(headers.get("strict-transport-security").is_none(), "{what}");
}

/// The strict HTML policy: scripts from the server itself only (plus the hashes given),
/// nothing inline unless hashed, no eval, no plugins, no `<base>`, forms to itself.
fn assert_strict_html(csp: &str, script_hashes: &[String], what: &str) {
    let mut want_script = vec!["'self'".to_string(), "'wasm-unsafe-eval'".to_string()];
    want_script.extend(script_hashes.iter().cloned());
    assert_eq!(
        directive(csp, "script-src"),
        Some(want_script),
        "{what}: {csp}"
    );
    for (name, want) in [
        ("default-src", "'self'"),
        ("style-src", "'self'"),
        ("connect-src", "'self'"),
        ("object-src", "'none'"),
        ("base-uri", "'none'"),
        ("form-action", "'self'"),
    ] {
        assert_eq!(
            directive(csp, name),
            Some(vec![want.to_string()]),
            "{what}: {name} in {csp}"
        );
    }
    assert_eq!(
        directive(csp, "img-src"),
        Some(vec!["'self'".to_string(), "data:".to_string()]),
        "{what}: {csp}"
    );
}

both_backends!(
    browser_security_headers,
    &spa_overrides(),
    |app: TestApp| async move {
        // The web app: its inline boot script is allowed by exactly its hash.
        let (headers, html) = fetch(&app, "/").await;
        assert!(header(&headers, "content-type").starts_with("text/html"));
        assert_common(&headers, "/");
        let scripts = inline_scripts(&html);
        assert_eq!(scripts.len(), 1, "the boot script is served inline: {html}");
        assert!(scripts[0].contains("frontend_bg.wasm"));
        let hashes: Vec<String> = scripts.iter().map(|s| sha256_source(s)).collect();
        let csp = header(&headers, "content-security-policy");
        assert_strict_html(csp, &hashes, "/");
        // A client-side route (the SPA fallback) is the same page with the same policy.
        let (headers, html) = fetch(&app, "/admin/orders").await;
        assert_common(&headers, "/admin/orders");
        assert_eq!(inline_scripts(&html), scripts);
        assert_strict_html(
            header(&headers, "content-security-policy"),
            &hashes,
            "fallback",
        );

        // index.html rebuilt under the running server: the policy follows the new file.
        let index = app.state.settings.static_dir.join("index.html");
        let edited = std::fs::read_to_string(&index)
            .unwrap()
            .replace("console.error(err);", "console.error('boot failed', err);");
        std::fs::write(&index, &edited).unwrap();
        let (headers, html) = fetch(&app, "/").await;
        let new_hashes: Vec<String> = inline_scripts(&html)
            .iter()
            .map(|s| sha256_source(s))
            .collect();
        assert_ne!(new_hashes, hashes, "the edit changed the boot script");
        assert_strict_html(
            header(&headers, "content-security-policy"),
            &new_hashes,
            "rebuilt",
        );

        // Swagger UI: no inline script of its own; inline styles allowed (its logo), scripts
        // from the server only.
        let (headers, html) = fetch(&app, "/docs/").await;
        assert!(header(&headers, "content-type").starts_with("text/html"));
        assert_common(&headers, "/docs/");
        assert!(html.contains("swagger-ui"), "{html}");
        assert_eq!(inline_scripts(&html), Vec::<String>::new(), "{html}");
        let csp = header(&headers, "content-security-policy");
        assert_eq!(
            directive(csp, "script-src"),
            Some(vec!["'self'".to_string()]),
            "{csp}"
        );
        assert_eq!(
            directive(csp, "style-src"),
            Some(vec!["'self'".to_string(), "'unsafe-inline'".to_string()]),
            "{csp}"
        );
        assert_eq!(
            directive(csp, "object-src"),
            Some(vec!["'none'".to_string()])
        );
        assert_eq!(
            directive(csp, "connect-src"),
            Some(vec!["'self'".to_string()])
        );

        // The API, its errors, the OpenAPI document and the health check: JSON, minimal policy.
        for path in [
            "/api/v1/products",
            "/api/v1/nope",
            "/api/v1/auth/me",
            "/api-docs/openapi.json",
            "/healthz",
        ] {
            let (headers, _) = fetch(&app, path).await;
            assert_common(&headers, path);
            assert_eq!(
                header(&headers, "content-security-policy"),
                "default-src 'none'; frame-ancestors 'none'",
                "{path}"
            );
        }
        // The epay refusal page is HTML with the strict policy (no script runs there).
        let (headers, html) = fetch(&app, "/epay/submit.php?pid=1").await;
        assert!(
            header(&headers, "content-type").starts_with("text/html"),
            "{html}"
        );
        assert_common(&headers, "/epay/submit.php");
        assert_eq!(inline_scripts(&html), Vec::<String>::new());
        let csp = header(&headers, "content-security-policy");
        assert!(!csp.contains("'unsafe-inline'"), "{csp}");
    }
);

both_backends!(
    hsts_in_production_over_https,
    &[
        ("APP_ENV", "production"),
        ("PUBLIC_BASE_URL", "https://pay.example.test")
    ],
    |app: TestApp| async move {
        for path in ["/healthz", "/api/v1/products", "/docs/"] {
            let (headers, _) = fetch(&app, path).await;
            assert_eq!(
                header(&headers, "strict-transport-security"),
                "max-age=31536000",
                "{path}"
            );
            assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
        }
    }
);
