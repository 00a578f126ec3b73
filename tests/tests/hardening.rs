//! Issue 12 (hardening): authentication, error shapes, client addresses, log redaction,
//! webhook redirects. Each test failed on the code before its fix.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use fenpay_tests::{eventually, TestApp, WebhookReceiver, TEST_WEBHOOK_SECRET};
use serde_json::{json, Value};

/// Everything this test binary logs (installed before any app, so the apps log here).
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing_subscriber::filter::LevelFilter::INFO)
            .with_ansi(false)
            .with_writer(move || Capture(sink.clone()))
            .try_init();
        buf
    })
    .clone()
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn app(overrides: &[(&str, &str)]) -> TestApp {
    captured_logs();
    let mut o = TestApp::emulator_overrides();
    o.extend_from_slice(overrides);
    TestApp::sqlite(&o).await
}

/// The app on SQLite, and on PostgreSQL too when `TEST_DATABASE_URL` is set.
async fn apps(overrides: &[(&str, &str)]) -> Vec<TestApp> {
    captured_logs();
    let mut o = TestApp::emulator_overrides();
    o.extend_from_slice(overrides);
    let mut apps = vec![TestApp::sqlite(&o).await];
    apps.extend(TestApp::postgres(&o).await);
    apps
}

async fn create_order(app: &TestApp, token: &str) -> (u16, Value) {
    app.post(
        "/api/v1/payment/create-order",
        &json!({"product_type": "points", "product_id": 1, "payment_method": "wechat"}),
        Some(token),
    )
    .await
}

/// A raw response: status, content type, body text.
async fn raw(resp: reqwest::Response) -> (u16, String, String) {
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (status, ct, resp.text().await.unwrap_or_default())
}

/// An error answer: JSON with a stable code. Returns the code.
fn json_error(what: &str, (status, ct, body): &(u16, String, String), want: u16) -> String {
    assert_eq!(*status, want, "{what}: {body}");
    assert!(ct.starts_with("application/json"), "{what}: {ct} {body:?}");
    let v: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("{what}: {body:?}"));
    assert!(v["message"].is_string(), "{what}: {v}");
    v["code"].as_str().expect("code").to_string()
}

// ---- 3: a token whose account is gone ---------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_of_a_deleted_account_is_401_everywhere() {
    for app in apps(&[]).await {
        let token = app.signup("ghost").await;
        app.sql("DELETE FROM users WHERE username = 'ghost'").await;
        let (status, body) = create_order(&app, &token).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (401, Some("unauthorized")),
            "{body}"
        );
        let (status, _) = app.get("/api/v1/auth/me", Some(&token)).await;
        assert_eq!(status, 401);
        let (status, _) = app.get("/api/v1/payment/orders", Some(&token)).await;
        assert_eq!(status, 401);
    }
}

// ---- 10: token versions -----------------------------------------------------------------

// "Log out everywhere" revokes every token issued so far, stream tokens included, at once
// (the default cache TTL: this process updates its own copy).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_all_revokes_every_token_and_stream_token() {
    for app in apps(&[]).await {
        let first = app.signup("leaver").await;
        let second = app.login("leaver", "password-leaver").await;
        let (status, order) = create_order(&app, &first).await;
        assert_eq!(status, 200, "{order}");
        let no = order["order_no"].as_str().unwrap();
        let (status, stream) = app
            .post(
                &format!("/api/v1/payment/orders/{no}/stream-token"),
                &json!({}),
                Some(&second),
            )
            .await;
        assert_eq!(status, 200, "{stream}");
        let url = app.url(stream["url"].as_str().unwrap());
        // Both tokens work (and are cached) before.
        assert_eq!(app.get("/api/v1/auth/me", Some(&first)).await.0, 200);
        assert_eq!(app.get("/api/v1/auth/me", Some(&second)).await.0, 200);
        // A stream opened before the revocation ends with it.
        let mut open = app.client.get(&url).send().await.unwrap();
        assert_eq!(open.status().as_u16(), 200);

        let resp = app
            .client
            .post(app.url("/api/v1/auth/logout-all"))
            .bearer_auth(&second)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 204);

        for token in [&first, &second] {
            let (status, body) = app.get("/api/v1/auth/me", Some(token)).await;
            assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")));
            let (status, _) = app
                .get(
                    &format!("/api/v1/payment/order-status?order_no={no}"),
                    Some(token),
                )
                .await;
            assert_eq!(status, 401);
        }
        let resp = app.client.get(&url).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 401, "the stream token died too");
        let mut seen = String::new();
        let ended = tokio::time::timeout(std::time::Duration::from_secs(20), async {
            while let Ok(Some(chunk)) = open.chunk().await {
                seen.push_str(&String::from_utf8_lossy(&chunk));
            }
        })
        .await;
        assert!(ended.is_ok(), "the open stream was not ended: {seen}");
        assert!(seen.contains("event: revoked"), "{seen}");
        // Signing in again works.
        let fresh = app.login("leaver", "password-leaver").await;
        assert_eq!(app.get("/api/v1/auth/me", Some(&fresh)).await.0, 200);
        let resp = app.client.get(&url).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 401, "old stream tokens stay dead");
    }
}

// A demoted admin loses admin access on the next request, whatever role the token names;
// a promotion through `create-admin` revokes the tokens issued before it. (No cache here:
// the role changes come from outside this process, as `fenpay create-admin` does.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_changes_take_effect_at_once() {
    for app in apps(&[("AUTH_CACHE_TTL_SECS", "0")]).await {
        let boss = app.admin("boss").await;
        assert_eq!(app.get("/api/v1/admin/orders", Some(&boss)).await.0, 200);
        // Demoted by SQL (no version bump): the role is the account's, not the token's.
        app.sql("UPDATE users SET role = 'user' WHERE username = 'boss'")
            .await;
        let (status, body) = app.get("/api/v1/admin/orders", Some(&boss)).await;
        assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")));
        // Promoted again, then demoted through the role setter: the token is revoked.
        app.sql("UPDATE users SET role = 'admin' WHERE username = 'boss'")
            .await;
        assert_eq!(app.get("/api/v1/admin/orders", Some(&boss)).await.0, 200);
        assert!(fenpay::db::users::set_role(&app.state.db, "boss", "user")
            .await
            .unwrap());
        let (status, body) = app.get("/api/v1/admin/orders", Some(&boss)).await;
        assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")));

        // create-admin promoting an existing account revokes its earlier tokens.
        let pat = app.signup("pat").await;
        assert_eq!(app.get("/api/v1/auth/me", Some(&pat)).await.0, 200);
        fenpay::service::accounts::create_admin(
            &app.state.db,
            &app.state.hasher,
            api_types::auth::RegisterRequest {
                username: "pat".into(),
                password: "password-pat".into(),
                email: "pat@example.com".into(),
            },
        )
        .await
        .unwrap();
        assert_eq!(app.get("/api/v1/auth/me", Some(&pat)).await.0, 401);
        let pat = app.login("pat", "password-pat").await;
        assert_eq!(app.get("/api/v1/admin/orders", Some(&pat)).await.0, 200);
    }
}

// ---- 4: every error is JSON -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_is_json_with_a_code() {
    let app = app(&[("BODY_LIMIT_BYTES", "1024")]).await;
    let c = &app.client;
    // Unknown methods on known routes: 405 on the health checks (they used to fall
    // through to the web app), JSON 404 `not_found` under /api/v1 (method-routed).
    for (method, path, want) in [
        ("PUT", "/healthz", 405),
        ("DELETE", "/readyz", 405),
        ("PATCH", "/api/v1/auth/me", 404),
        ("GET", "/api/v1/auth/login", 404),
        ("DELETE", "/api/v1/payment/create-order", 404),
        ("PUT", "/api/v1/payment/wechat/callback", 404),
        ("GET", "/api/v1/payment/alipay/callback", 404),
    ] {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let r = raw(c.request(m, app.url(path)).send().await.unwrap()).await;
        json_error(&format!("{method} {path}"), &r, want);
    }
    // Oversized bodies, callbacks included.
    let big = vec![b'x'; 4096];
    for path in [
        "/api/v1/payment/wechat/callback",
        "/api/v1/payment/wechat/refund-callback",
        "/api/v1/payment/alipay/callback",
        "/api/v1/auth/login",
    ] {
        let r = raw(c
            .post(app.url(path))
            .header("content-type", "application/json")
            .body(big.clone())
            .send()
            .await
            .unwrap())
        .await;
        assert_eq!(json_error(path, &r, 413), "payload_too_large");
    }
    // A path segment that is not UTF-8 once decoded.
    for path in [
        "/api/v1/products/%FF",
        "/api/v1/payment/orders/%FF/events",
        "/api/v1/admin/orders/%C3%28",
    ] {
        let r = raw(c.get(app.url(path)).send().await.unwrap()).await;
        let status = r.0;
        assert!((400..500).contains(&status), "{path}: {r:?}");
        json_error(path, &r, status);
    }
    // Not JSON where JSON is expected; a body that does not parse.
    let r = raw(c
        .post(app.url("/api/v1/auth/login"))
        .header("content-type", "text/plain")
        .body("hi")
        .send()
        .await
        .unwrap())
    .await;
    assert_eq!(
        json_error("text/plain login", &r, 415),
        "unsupported_media_type"
    );
    // A header that is not text.
    let r = raw(c
        .get(app.url("/api/v1/auth/me"))
        .header(
            "authorization",
            reqwest::header::HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap(),
        )
        .send()
        .await
        .unwrap())
    .await;
    assert_eq!(json_error("binary authorization", &r, 401), "unauthorized");
    // A CORS preflight from an origin that is not allowed.
    let r = raw(c
        .request(reqwest::Method::OPTIONS, app.url("/api/v1/auth/me"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap())
    .await;
    if r.0 >= 400 {
        json_error("preflight", &r, r.0);
    }
    // The Alipay callback keeps its own plain-text protocol for what it decides.
    let r = raw(c
        .post(app.url("/api/v1/payment/alipay/callback"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("trade_status=TRADE_SUCCESS&sign=bogus")
        .send()
        .await
        .unwrap())
    .await;
    assert_eq!(r.2, "fail", "{r:?}");
    assert!(r.1.starts_with("text/plain"), "{r:?}");
}

// Raw bytes that are not a valid URI never reach the app: actix-http's parser answers 400
// (with no body: nothing of ours runs) and closes the connection. It is not logged at
// ERROR by default (`telemetry::DEFAULT_FILTER`): a client can send them at will.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_request_targets_are_client_errors() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = app(&[]).await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"GET /api/v1/products/\xff\xfe HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).to_string();
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(fenpay::telemetry::DEFAULT_FILTER.contains("actix_http::h1::dispatcher=off"));
    // The same bytes percent-encoded reach the app: JSON.
    let r = raw(app
        .client
        .get(app.url("/api/v1/products/%FF%FE"))
        .send()
        .await
        .unwrap())
    .await;
    json_error("percent-encoded", &r, r.0);
}

// ---- 5: the client address behind proxies -----------------------------------------------

#[test]
fn the_client_is_the_rightmost_untrusted_hop() {
    use fenpay::startup::forwarded_client;
    let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
    let ip = |s: &str| -> std::net::IpAddr { s.parse().unwrap() };
    let proxy = ip("10.0.0.1");
    // The client wrote the left part; the proxy appended what it saw.
    assert_eq!(
        forwarded_client(proxy, &["6.6.6.6", " 1.2.3.4"], &trusted),
        ip("1.2.3.4")
    );
    // Two proxies of ours in the chain.
    assert_eq!(
        forwarded_client(proxy, &["6.6.6.6", "1.2.3.4", "10.0.0.7"], &trusted),
        ip("1.2.3.4")
    );
    // Not from a trusted proxy: the header is the client's own claim.
    assert_eq!(
        forwarded_client(ip("8.8.8.8"), &["1.2.3.4"], &trusted),
        ip("8.8.8.8")
    );
    // Only proxies, or garbage: the last address that could be told.
    assert_eq!(
        forwarded_client(proxy, &["10.0.0.9"], &trusted),
        ip("10.0.0.9")
    );
    assert_eq!(
        forwarded_client(proxy, &["1.2.3.4", "junk", "10.0.0.9"], &trusted),
        ip("10.0.0.9")
    );
    assert_eq!(forwarded_client(proxy, &[], &trusted), proxy);
    // Ports and brackets as some proxies write them, and empty entries, still name the
    // client (otherwise every client would share the proxy's address and its limits).
    assert_eq!(
        forwarded_client(proxy, &["6.6.6.6", "1.2.3.4:5678", ""], &trusted),
        ip("1.2.3.4")
    );
    assert_eq!(
        forwarded_client(proxy, &["[2001:db8::1]:443", "10.0.0.7"], &trusted),
        ip("2001:db8::1")
    );
    assert_eq!(
        forwarded_client(proxy, &["[2001:db8::2]"], &trusted),
        ip("2001:db8::2")
    );
}

async fn failed_login(app: &TestApp, xff: &str) -> u16 {
    app.client
        .post(app.url("/api/v1/auth/login"))
        .header("x-forwarded-for", xff)
        .json(&json!({"username": "nobody", "password": "wrong-password"}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

// A client behind the proxy cannot dodge the login limiter by writing a new first
// X-Forwarded-For entry each time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_forwarded_for_does_not_dodge_the_login_limiter() {
    let app = app(&[("TRUST_PROXY", "true"), ("LOGIN_MAX_FAILURES", "2")]).await;
    // The test client connects from 127.0.0.1: a trusted proxy by default.
    for i in 0..2 {
        assert_eq!(
            failed_login(&app, &format!("203.0.113.{i}, 198.51.100.7")).await,
            401
        );
    }
    assert_eq!(failed_login(&app, "203.0.113.99, 198.51.100.7").await, 429);
    // Another client behind the same proxy is not affected.
    assert_eq!(failed_login(&app, "198.51.100.8").await, 401);

    // A peer that is not a configured proxy: its header is ignored.
    let app = self::app(&[
        ("TRUST_PROXY", "true"),
        ("TRUSTED_PROXIES", "10.0.0.0/8"),
        ("LOGIN_MAX_FAILURES", "2"),
    ])
    .await;
    for i in 0..2 {
        assert_eq!(failed_login(&app, &format!("203.0.113.{i}")).await, 401);
    }
    assert_eq!(failed_login(&app, "203.0.113.50").await, 429);
}

// ---- 9: secrets in query strings stay out of the logs -------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_tokens_in_query_strings_are_not_logged() {
    let logs = captured_logs();
    let app = app(&[]).await;
    let secret = "eyJSECRETSTREAMTOKENVALUE.abc.def";
    let resp = app
        .client
        .get(app.url(&format!(
            "/api/v1/payment/orders/FPNOPE/events?token={secret}"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    // The access log has the request (its event is written as the response leaves).
    assert!(
        eventually(|| async {
            String::from_utf8_lossy(&logs.lock().unwrap()).contains("FPNOPE/events?token=")
        })
        .await,
        "the request was logged"
    );
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).to_string();
    assert!(!text.contains("SECRETSTREAMTOKEN"), "token in the logs");
    assert!(text.contains("token=<redacted>"));
}

// ---- 11: webhooks never follow redirects ------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_redirect_is_a_failed_attempt() {
    let rx = WebhookReceiver::default();
    let target = rx.start().await;
    // An endpoint that redirects (307 keeps the method and body) to the receiver.
    let to = target.clone();
    let server = actix_web::HttpServer::new(move || {
        let to = to.clone();
        actix_web::App::new().default_service(actix_web::web::to(move || {
            let to = to.clone();
            async move {
                actix_web::HttpResponse::TemporaryRedirect()
                    .insert_header(("location", to))
                    .finish()
            }
        }))
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let redirecting = format!("http://{}/hooks", server.addrs()[0]);
    tokio::spawn(server.run());

    let app = app(&[
        ("WEBHOOK_URLS", &redirecting),
        ("WEBHOOK_SECRET", TEST_WEBHOOK_SECRET),
        ("DISPATCH_INTERVAL_SECS", "1"),
        ("WEBHOOK_BACKOFF_BASE_SECS", "1"),
    ])
    .await;
    let admin = app.admin("hook-admin").await;
    let buyer = app.signup("hook-buyer").await;
    assert_eq!(create_order(&app, &buyer).await.0, 200);
    let attempted = eventually(|| async {
        let (_, list) = app
            .get("/api/v1/admin/webhooks/deliveries", Some(&admin))
            .await;
        list["items"]
            .as_array()
            .is_some_and(|items| items.iter().any(|d| d["attempts"].as_i64() >= Some(1)))
    })
    .await;
    assert!(attempted, "no attempt recorded");
    let (_, list) = app
        .get("/api/v1/admin/webhooks/deliveries", Some(&admin))
        .await;
    let d = &list["items"][0];
    assert_ne!(d["status"], "delivered", "{d}");
    assert_eq!(d["last_status_code"], 307, "{d}");
    assert!(
        rx.got.lock().unwrap().is_empty(),
        "the signed body followed the redirect"
    );
}

// ---- 12: what schemathesis found --------------------------------------------------------

// A huge page number overflowed `(page - 1) * per_page`: the worker panicked (debug) and
// the connection closed without an answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_page_numbers_are_400() {
    let app = app(&[]).await;
    let admin = app.admin("pager").await;
    for path in [
        "/api/v1/payment/orders?page=2305843009213693952&per_page=100",
        "/api/v1/admin/orders?page=2305843009213693952&status=pending",
        "/api/v1/admin/webhooks/deliveries?page=9223372036854775807",
    ] {
        let (status, body) = app.get(path, Some(&admin)).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("invalid_query")),
            "{path}: {body}"
        );
    }
    assert_eq!(
        app.get("/api/v1/payment/orders?page=1000000", Some(&admin))
            .await
            .0,
        200
    );
}
