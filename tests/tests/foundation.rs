//! Accounts, catalog, HTTP conventions and the OpenAPI document, on both backends.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use fenpay_tests::{both_backends, into_json, TestApp};
use serde_json::json;

both_backends!(register_login_me, &[], |app: TestApp| async move {
    let (status, user) = app
        .post(
            "/api/v1/auth/register",
            &json!({"username": "alice", "password": "s3cret-password", "email": "Alice@Example.com"}),
            None,
        )
        .await;
    assert_eq!(status, 201, "{user}");
    assert_eq!(user["username"], "alice");
    assert_eq!(user["email"], "alice@example.com");
    assert_eq!(user["role"], "user");
    assert_eq!(user["points_balance"], 0);
    assert!(user.get("password_hash").is_none());

    let token = app.login("alice", "s3cret-password").await;
    let (status, me) = app.get("/api/v1/auth/me", Some(&token)).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["id"], user["id"]);
    assert_eq!(me["membership_tier"], serde_json::Value::Null);

    // The token carries sub, role and exp.
    let claims = app.state.jwt.verify(&token).unwrap();
    assert_eq!(claims.sub, user["id"].as_str().unwrap());
    assert!(claims.exp > chrono::Utc::now().timestamp());
});

both_backends!(
    password_hashing_is_bounded_and_sheds_load,
    // Logins in flight count against the login limits (an attempt is taken before the
    // hash): lifted here, where the crowd is the point.
    &[
        ("PASSWORD_HASH_THREADS", "1"),
        ("PASSWORD_HASH_QUEUE", "1"),
        ("LOGIN_MAX_FAILURES", "1000"),
        ("LOGIN_ACCOUNT_MAX_FAILURES", "1000"),
    ],
    |app: TestApp| async move {
        app.signup("crowd").await;
        // 20 logins at once against one hashing thread and one queue slot: the rest are
        // told to come back (503 server_busy + Retry-After), none fails otherwise.
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (client, url) = (app.client.clone(), app.url("/api/v1/auth/login"));
            tasks.push(tokio::spawn(async move {
                let resp = client
                    .post(url)
                    .json(&json!({"username": "crowd", "password": "password-crowd"}))
                    .send()
                    .await
                    .unwrap();
                let status = resp.status().as_u16();
                let retry = resp
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().to_string());
                let body: serde_json::Value = resp.json().await.unwrap();
                (status, retry, body)
            }));
        }
        let (mut ok, mut busy) = (0, 0);
        for t in tasks {
            match t.await.unwrap() {
                (200, _, body) => {
                    assert!(body["access_token"].is_string(), "{body}");
                    ok += 1;
                }
                (503, retry, body) => {
                    assert_eq!(body["code"], "server_busy", "{body}");
                    assert_eq!(retry.as_deref(), Some("1"));
                    busy += 1;
                }
                other => panic!("unexpected answer: {other:?}"),
            }
        }
        assert!(ok >= 1, "some logins went through ({ok} ok, {busy} busy)");
        assert!(busy >= 1, "the queue overflowed ({ok} ok, {busy} busy)");
        // Once the crowd is gone, logins work again.
        app.login("crowd", "password-crowd").await;
    }
);

both_backends!(
    duplicate_username_conflicts,
    &[],
    |app: TestApp| async move {
        app.signup("bob").await;
        let (status, body) = app
        .post(
            "/api/v1/auth/register",
            &json!({"username": "bob", "password": "another-password", "email": "b2@example.com"}),
            None,
        )
        .await;
        assert_eq!(status, 409);
        assert_eq!(body["code"], "username_taken");
    }
);

both_backends!(
    validation_errors_list_fields,
    &[],
    |app: TestApp| async move {
        let (status, body) = app
            .post(
                "/api/v1/auth/register",
                &json!({"username": "a b", "password": "short", "email": "not-an-email"}),
                None,
            )
            .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["code"], "validation_failed");
        let fields: Vec<&str> = body["details"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["field"].as_str().unwrap())
            .collect();
        assert!(fields.contains(&"username"), "{body}");
        assert!(fields.contains(&"password"), "{body}");
        assert!(fields.contains(&"email"), "{body}");
        // Nothing was written.
        let (status, _) = app
            .post(
                "/api/v1/auth/login",
                &json!({"username": "a b", "password": "short"}),
                None,
            )
            .await;
        assert_eq!(status, 401);
    }
);

both_backends!(
    malformed_and_mistyped_bodies,
    &[],
    |app: TestApp| async move {
        let resp = app
            .client
            .post(app.url("/api/v1/auth/register"))
            .header("content-type", "application/json")
            .body("{\"username\": ")
            .send()
            .await
            .unwrap();
        let (status, body) = into_json(resp).await;
        assert_eq!(status, 400);
        assert_eq!(body["code"], "malformed_json");

        let (status, body) = app
            .post("/api/v1/auth/register", &json!({"username": 5}), None)
            .await;
        assert_eq!(status, 400);
        assert_eq!(body["code"], "invalid_body");

        let resp = app
            .client
            .post(app.url("/api/v1/auth/login"))
            .header("content-type", "text/plain")
            .body("username=alice")
            .send()
            .await
            .unwrap();
        let (status, body) = into_json(resp).await;
        assert_eq!(status, 415);
        assert_eq!(body["code"], "unsupported_media_type");
    }
);

both_backends!(
    oversize_body_is_413,
    &[("BODY_LIMIT_BYTES", "1024")],
    |app: TestApp| async move {
        let big = "x".repeat(4096);
        let (status, body) = app
            .post(
                "/api/v1/auth/register",
                &json!({"username": "big", "password": big, "email": "big@example.com"}),
                None,
            )
            .await;
        assert_eq!(status, 413, "{body}");
        assert_eq!(body["code"], "payload_too_large");
    }
);

both_backends!(
    wrong_password_and_unknown_user_look_alike,
    &[],
    |app: TestApp| async move {
        app.signup("carol").await;
        let (s1, b1) = app
            .post(
                "/api/v1/auth/login",
                &json!({"username": "carol", "password": "wrong-password"}),
                None,
            )
            .await;
        let (s2, b2) = app
            .post(
                "/api/v1/auth/login",
                &json!({"username": "nobody", "password": "wrong-password"}),
                None,
            )
            .await;
        assert_eq!((s1, s2), (401, 401));
        assert_eq!(b1, b2, "same answer whether or not the user exists");
        assert_eq!(b1["code"], "invalid_credentials");
    }
);

both_backends!(
    repeated_login_failures_are_limited,
    &[("LOGIN_MAX_FAILURES", "3")],
    |app: TestApp| async move {
        app.signup("dave").await;
        for _ in 0..3 {
            let (status, _) = app
                .post(
                    "/api/v1/auth/login",
                    &json!({"username": "dave", "password": "bad-password"}),
                    None,
                )
                .await;
            assert_eq!(status, 401);
        }
        let resp = app
            .client
            .post(app.url("/api/v1/auth/login"))
            .json(&json!({"username": "dave", "password": "password-dave"}))
            .send()
            .await
            .unwrap();
        assert!(resp.headers().get("retry-after").is_some());
        let (status, body) = into_json(resp).await;
        assert_eq!(status, 429);
        assert_eq!(body["code"], "rate_limited");
    }
);

both_backends!(
    tampered_and_expired_tokens_are_401,
    &[],
    |app: TestApp| async move {
        let token = app.signup("erin").await;
        let (status, body) = app.get("/api/v1/auth/me", None).await;
        assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")));

        let mut parts: Vec<String> = token.split('.').map(String::from).collect();
        let sig = parts[2].clone();
        let flipped = if sig.ends_with('A') { "B" } else { "A" };
        parts[2] = format!("{}{}", &sig[..sig.len() - 1], flipped);
        let (status, body) = app.get("/api/v1/auth/me", Some(&parts.join("."))).await;
        assert_eq!(status, 401);
        assert_eq!(body["message"], "invalid token");

        let claims = app.state.jwt.verify(&token).unwrap();
        let now = chrono::Utc::now().timestamp();
        let expired = app
            .state
            .jwt
            .issue_at(&claims.sub, claims.role, now - 7200, now - 3600)
            .unwrap();
        let (status, body) = app.get("/api/v1/auth/me", Some(&expired)).await;
        assert_eq!(status, 401);
        assert_eq!(body["message"], "token expired");

        let (status, _) = app.get("/api/v1/auth/me", Some("not-a-jwt")).await;
        assert_eq!(status, 401);
    }
);

both_backends!(
    catalog_is_public_and_seeded,
    &[],
    |app: TestApp| async move {
        let (status, body) = app.get("/api/v1/products", None).await;
        assert_eq!(status, 200);
        let items = body["items"].as_array().unwrap();
        let points = items.iter().filter(|p| p["kind"] == "points").count();
        let memberships = items.iter().filter(|p| p["kind"] == "membership").count();
        assert_eq!((points, memberships), (3, 2), "{body}");
        // Yuan amounts are exact two-decimal numbers derived from fen (raw text, not floats).
        let raw = app
            .client
            .get(app.url("/api/v1/products"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for p in items {
            let fen = p["price_fen"].as_i64().unwrap();
            let needle = format!(
                "\"price_fen\":{fen},\"price\":{}.{:02},",
                fen / 100,
                fen % 100
            );
            assert!(raw.contains(&needle), "{needle} in {raw}");
        }
        let id = items[0]["id"].as_i64().unwrap();
        let (status, one) = app.get(&format!("/api/v1/products/{id}"), None).await;
        assert_eq!(status, 200);
        assert_eq!(one, items[0]);
        let (status, body) = app.get("/api/v1/products/999999", None).await;
        assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
        let (status, body) = app.get("/api/v1/products/abc", None).await;
        assert_eq!((status, body["code"].as_str()), (400, Some("invalid_path")));
    }
);

both_backends!(
    conventions_health_docs_and_unknown_routes,
    &[],
    |app: TestApp| async move {
        let (status, body) = app.get("/healthz", None).await;
        assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
        let (status, body) = app.get("/readyz", None).await;
        assert_eq!(status, 200);
        let expected = match app.backend {
            fenpay_tests::Backend::Sqlite => "sqlite",
            fenpay_tests::Backend::Postgres => "postgres",
        };
        assert_eq!(body["database"], expected);

        let resp = app
            .client
            .get(app.url("/api/v1/does-not-exist"))
            .send()
            .await
            .unwrap();
        assert!(resp.headers().get("x-request-id").is_some());
        let (status, body) = into_json(resp).await;
        assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));

        let (status, spec) = app.get("/api-docs/openapi.json", None).await;
        assert_eq!(status, 200);
        assert!(spec["paths"]["/api/v1/auth/login"].is_object());

        let resp = app.client.get(app.url("/docs/")).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        assert!(resp.text().await.unwrap().contains("swagger"));

        // Non-API paths fall back to the SPA (here: the "not built" page).
        let resp = app
            .client
            .get(app.url("/orders/some/client/route"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
    }
);

#[test]
fn committed_openapi_matches_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi/openapi.json");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    let generated = fenpay::http::openapi::spec_json();
    assert!(
        committed == generated,
        "openapi/openapi.json is out of date: run `cargo run -p fenpay -- openapi > openapi/openapi.json`"
    );
}

both_backends!(
    create_admin_creates_or_promotes_safely,
    &[],
    |app: TestApp| async move {
        use api_types::auth::RegisterRequest;
        use fenpay::service::accounts::create_admin;
        let req = |name: &str, password: &str| RegisterRequest {
            username: name.into(),
            password: password.into(),
            email: format!("{name}@example.com"),
        };
        let admin = create_admin(
            &app.state.db,
            &app.state.hasher,
            req("root", "root-password-1"),
        )
        .await
        .unwrap();
        assert_eq!(admin.role, api_types::auth::Role::Admin);
        let token = app.login("root", "root-password-1").await;
        assert_eq!(
            app.state.jwt.verify(&token).unwrap().role,
            api_types::auth::Role::Admin
        );

        // An existing user is promoted only when the password matches.
        app.signup("frank").await;
        assert!(create_admin(
            &app.state.db,
            &app.state.hasher,
            req("frank", "not-franks-password")
        )
        .await
        .is_err());
        let (_, me) = app
            .get(
                "/api/v1/auth/me",
                Some(&app.login("frank", "password-frank").await),
            )
            .await;
        assert_eq!(me["role"], "user");
        let promoted = create_admin(
            &app.state.db,
            &app.state.hasher,
            req("frank", "password-frank"),
        )
        .await
        .unwrap();
        assert_eq!(promoted.role, api_types::auth::Role::Admin);
    }
);

both_backends!(
    cors_allows_only_configured_origins,
    &[("CORS_ORIGINS", "https://shop.example.com")],
    |app: TestApp| async move {
        let preflight = |origin: &'static str| {
            app.client
                .request(reqwest::Method::OPTIONS, app.url("/api/v1/auth/login"))
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .send()
        };
        let ok = preflight("https://shop.example.com").await.unwrap();
        assert_eq!(
            ok.headers()
                .get("access-control-allow-origin")
                .map(|v| v.to_str().unwrap()),
            Some("https://shop.example.com")
        );
        let other = preflight("https://evil.example.com").await.unwrap();
        assert!(other.headers().get("access-control-allow-origin").is_none());
    }
);

/// SQLite: this process's writers share one connection and do not wait long for a lock
/// another process holds (the write runs on the thread that asked). While a second
/// process keeps the database's write lock, create-order answers 503
/// `service_unavailable` well inside a provider's 5 s deadline instead of hanging for the
/// readers' 10 s busy timeout and failing with 500; nothing is left half-written, and the
/// next order goes through once the lock is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_locked_out_by_another_process_answers_503_in_time_and_leaves_nothing() {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let app = TestApp::sqlite(&TestApp::emulator_overrides()).await;
    let token = app.signup("locked").await;
    let order = json!({"product_type": "points", "product_id": 1, "payment_method": "alipay"});

    let path = fenpay::db::sqlite_path(&app.database_url).to_string();
    let mut other = diesel::SqliteConnection::establish(&path).unwrap();
    other.batch_execute("BEGIN IMMEDIATE").unwrap();
    let started = std::time::Instant::now();
    let (status, body) = app
        .post("/api/v1/payment/create-order", &order, Some(&token))
        .await;
    let waited = started.elapsed();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "service_unavailable", "{body}");
    assert!(
        waited < std::time::Duration::from_secs(4),
        "answered after {waited:?}"
    );
    other.batch_execute("ROLLBACK").unwrap();

    let (status, body) = app
        .post("/api/v1/payment/create-order", &order, Some(&token))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, list) = app.get("/api/v1/payment/orders", Some(&token)).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["total"], 1, "only the second order exists: {list}");
}

/// PostgreSQL: pooled connections are not pinged before each use, so a connection the
/// server closed (a restart, a failover, an operator's `pg_terminate_backend`) is found by
/// the request that uses it. That request answers 503 `service_unavailable` (never 500),
/// the connection is dropped, and the requests after it are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connections_the_server_closed_cost_one_503_each_then_are_replaced() {
    let Some(app) = TestApp::postgres(&[]).await else {
        eprintln!("TEST_DATABASE_URL not set: skipped");
        return;
    };
    let token = app.signup("closed").await;
    let me = || async { app.get("/api/v1/auth/me", Some(&token)).await };
    // Open several pooled connections.
    let warm: Vec<_> = (0..8).map(|_| me()).collect();
    for (status, body) in futures_util::future::join_all(warm).await {
        assert_eq!(status, 200, "{body}");
    }
    app.sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .await;
    let mut seen = Vec::new();
    for _ in 0..30 {
        let (status, body) = me().await;
        assert!(
            status == 200 || (status == 503 && body["code"] == "service_unavailable"),
            "{status} {body}"
        );
        seen.push(status);
    }
    assert!(
        seen[seen.len() - 10..].iter().all(|s| *s == 200),
        "the closed connections were replaced: {seen:?}"
    );
}

/// SQLite: a read whose caller goes away mid-statement (a client that disconnects) must
/// wait for its statement and give its pooled connection back intact, also on a
/// current-thread runtime like each actix-web worker's. diesel-async's default waits with
/// `block_in_place`, which panics there.
#[tokio::test]
async fn sqlite_reads_abandoned_midway_give_their_connections_back() {
    use std::time::Duration;
    let app = TestApp::sqlite(&[]).await;
    let db = app.state.db.clone();
    let mut abandoned = 0;
    for i in 0..3000u64 {
        let read = fenpay::db::orders::list_for_user(&db, "nobody", 50, 0);
        if tokio::time::timeout(Duration::from_micros(i % 80), read)
            .await
            .is_err()
        {
            abandoned += 1;
        }
    }
    assert!(abandoned > 0, "no read was abandoned midway");
    // Every connection came back: as many concurrent reads as the pool holds, at once.
    let reads = (0..10).map(|_| fenpay::db::orders::find(&db, "FP-none"));
    let all = tokio::time::timeout(
        Duration::from_secs(5),
        futures_util::future::join_all(reads),
    )
    .await
    .expect("the pool still serves reads");
    assert!(all.iter().all(|r| matches!(r, Ok(None))), "{all:?}");
}
