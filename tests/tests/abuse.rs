//! Abuse limits (issue #12, items 6-8), each on SQLite and (with `TEST_DATABASE_URL`)
//! PostgreSQL:
//!
//! - login guesses are counted before the password is checked, per client and per
//!   account, so parallel guesses cannot exceed the limit;
//! - registration is limited per client, create-order per user (429 `rate_limited` with
//!   `Retry-After`);
//! - callback posts that fail verification are stored as a digest and a prefix, within a
//!   per-source and an overall limit (beyond it only counted);
//! - live event streams are capped per user and per server (429 `too_many_streams`), end
//!   after `STREAM_MAX_LIFETIME_SECS` with `event: reconnect`, and give their place back
//!   when they end or the client goes away.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use fenpay_tests::{both_backends, eventually, into_json, pay_at_emulator, TestApp};
use serde_json::{json, Value};

fn with_emulator(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut o = TestApp::emulator_overrides();
    o.extend_from_slice(extra);
    o
}

async fn login_status(app: &TestApp, username: &str, password: &str) -> (u16, Value, bool) {
    let resp = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap();
    let retry_after = resp.headers().contains_key("retry-after");
    let (status, body) = into_json(resp).await;
    (status, body, retry_after)
}

// ---- item 6: logins, registrations, create-order --------------------------------------

both_backends!(
    parallel_login_guesses_cannot_pass_the_limit,
    &[
        ("LOGIN_MAX_FAILURES", "3"),
        ("LOGIN_ACCOUNT_MAX_FAILURES", "1000"),
        ("PASSWORD_HASH_THREADS", "1"),
    ],
    |app: TestApp| async move {
        app.signup("victim").await;
        let guesses = (0..20).map(|i| {
            let app = &app;
            async move { login_status(app, "victim", &format!("guess-{i}")).await }
        });
        let answers = futures_util::future::join_all(guesses).await;
        let failed = answers.iter().filter(|(s, _, _)| *s == 401).count();
        let limited: Vec<_> = answers.iter().filter(|(s, _, _)| *s == 429).collect();
        assert_eq!(failed, 3, "exactly the limit was checked: {answers:?}");
        assert_eq!(limited.len(), 17, "{answers:?}");
        for (_, body, retry_after) in limited {
            assert_eq!(body["code"], "rate_limited");
            assert!(retry_after);
        }
        // The right password from this client is refused too, for now.
        assert_eq!(login_status(&app, "victim", "password-victim").await.0, 429);
    }
);

both_backends!(
    login_failures_are_limited_per_account,
    &[
        ("LOGIN_MAX_FAILURES", "1000"),
        ("LOGIN_ACCOUNT_MAX_FAILURES", "3"),
    ],
    |app: TestApp| async move {
        app.signup("carol").await;
        app.signup("dave").await;
        for _ in 0..3 {
            assert_eq!(login_status(&app, "carol", "wrong").await.0, 401);
        }
        // The account is locked for the window, whatever the spelling or the password...
        let (status, body, retry_after) = login_status(&app, "Carol", "password-carol").await;
        assert_eq!((status, body["code"].as_str()), (429, Some("rate_limited")));
        assert!(retry_after);
        // ... while other accounts still sign in from the same client, and a success
        // clears an account's failures.
        assert_eq!(login_status(&app, "dave", "wrong").await.0, 401);
        assert_eq!(login_status(&app, "dave", "password-dave").await.0, 200);
        for _ in 0..2 {
            assert_eq!(login_status(&app, "dave", "wrong").await.0, 401);
        }
        assert_eq!(login_status(&app, "dave", "password-dave").await.0, 200);
    }
);

both_backends!(
    registrations_are_limited_per_client,
    &[("REGISTER_MAX_PER_IP", "3")],
    |app: TestApp| async move {
        let attempts = (0..10).map(|i| {
            let app = &app;
            async move {
                let resp = app
                    .client
                    .post(app.url("/api/v1/auth/register"))
                    .json(&json!({"username": format!("flood{i}"), "password": "password-flood", "email": format!("flood{i}@example.com")}))
                    .send()
                    .await
                    .unwrap();
                let retry_after = resp.headers().contains_key("retry-after");
                let (status, body) = into_json(resp).await;
                (status, body, retry_after)
            }
        });
        let answers = futures_util::future::join_all(attempts).await;
        let created = answers.iter().filter(|(s, _, _)| *s == 201).count();
        assert_eq!(created, 3, "{answers:?}");
        for (status, body, retry_after) in &answers {
            if *status != 201 {
                assert_eq!(*status, 429, "{body}");
                assert_eq!(body["code"], "rate_limited");
                assert!(retry_after);
            }
        }
        // Only the accepted ones were hashed and stored.
        assert_eq!(
            app.sql("DELETE FROM users WHERE username LIKE 'flood%'")
                .await,
            3
        );
    }
);

both_backends!(
    create_order_is_limited_per_user,
    &with_emulator(&[("CREATE_ORDER_MAX_PER_USER", "3")]),
    |app: TestApp| async move {
        let eager = app.signup("eager").await;
        let calm = app.signup("calm").await;
        let create = |token: String| {
            let app = &app;
            async move {
                let resp = app
                    .client
                    .post(app.url("/api/v1/payment/create-order"))
                    .bearer_auth(token)
                    .json(&json!({"product_type": "points", "product_id": 1, "payment_method": "wechat"}))
                    .send()
                    .await
                    .unwrap();
                let retry_after = resp.headers().contains_key("retry-after");
                let (status, body) = into_json(resp).await;
                (status, body, retry_after)
            }
        };
        let answers = futures_util::future::join_all((0..6).map(|_| create(eager.clone()))).await;
        let ok = answers.iter().filter(|(s, _, _)| *s == 200).count();
        assert_eq!(ok, 3, "{answers:?}");
        for (status, body, retry_after) in &answers {
            if *status != 200 {
                assert_eq!(
                    (*status, body["code"].as_str()),
                    (429, Some("rate_limited"))
                );
                assert!(retry_after);
            }
        }
        assert_eq!(
            app.sql("UPDATE orders SET updated_at = updated_at").await,
            3,
            "no order was created past the limit"
        );
        // Another buyer is not affected.
        assert_eq!(create(calm).await.0, 200);
    }
);

// ---- item 7: unverified callback posts ------------------------------------------------

both_backends!(
    unverified_callback_posts_are_stored_small_and_limited,
    &with_emulator(&[
        ("UNVERIFIED_RECORDS_PER_IP_PER_MIN", "5"),
        ("UNVERIFIED_RECORDS_PER_MIN", "1000"),
    ]),
    |app: TestApp| async move {
        let big = format!(
            "{{\"id\":\"forged\",\"resource\":{{\"ciphertext\":\"{}\"}}}}",
            "A".repeat(60 * 1024)
        );
        for i in 0..20 {
            let resp = app
                .client
                .post(app.url("/api/v1/payment/wechat/callback"))
                .header("content-type", "application/json")
                .header("wechatpay-serial", "PUB_KEY_ID_FORGED")
                .header("wechatpay-signature", "Zm9yZ2Vk")
                .header(
                    "wechatpay-timestamp",
                    chrono::Utc::now().timestamp().to_string(),
                )
                .header("wechatpay-nonce", format!("n{i}"))
                .header("x-junk", "J".repeat(4000))
                .body(big.clone())
                .send()
                .await
                .unwrap();
            let (status, body) = into_json(resp).await;
            assert_eq!(
                (status, body["code"].as_str()),
                (401, Some("FAIL")),
                "{body}"
            );
        }
        for _ in 0..20 {
            let resp = app
                .client
                .post(app.url("/api/v1/payment/alipay/callback"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!(
                    "out_trade_no=FP1&trade_status=TRADE_SUCCESS&sign_type=RSA2&sign=Zm9yZ2Vk&pad={}",
                    "B".repeat(60 * 1024)
                ))
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            assert_eq!((status, resp.text().await.unwrap()), (400, "fail".into()));
        }
        assert!(
            app.state
                .records
                .flushed(std::time::Duration::from_secs(10))
                .await
        );
        assert_eq!(app.state.records.unverified_skipped(), 35);
        // Five stored from this source, each a digest, a length and a short prefix.
        let small = "order_no IS NULL AND verified = false AND length(body) < 1024 \
                     AND length(headers) < 1024 AND body LIKE '%\"sha256\"%'";
        assert_eq!(
            app.sql(&format!(
                "UPDATE payment_records SET kind = kind WHERE {small}"
            ))
            .await,
            5
        );
        assert_eq!(
            app.sql("UPDATE payment_records SET kind = kind WHERE order_no IS NULL")
                .await,
            5
        );
        // A verified notification still keeps its whole body.
        let buyer = app.signup("buyer").await;
        let no = fenpay_tests::paid_points_order(&app, &buyer).await;
        let records = app.records(&no).await;
        let notice = records
            .iter()
            .find(|r| r.kind == "notification")
            .expect("the notification's record");
        assert!(notice.verified);
        let envelope: Value = serde_json::from_str(&notice.body).unwrap();
        assert!(envelope["resource"]["ciphertext"].is_string(), "{envelope}");
    }
);

// ---- item 8: live event streams -------------------------------------------------------

async fn pending_order(app: &TestApp, token: &str) -> String {
    let (status, body) = app
        .post(
            "/api/v1/payment/create-order",
            &json!({"product_type": "points", "product_id": 1, "payment_method": "alipay"}),
            Some(token),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["order_no"].as_str().unwrap().to_string()
}

async fn open_stream(app: &TestApp, token: &str, no: &str) -> reqwest::Response {
    app.client
        .get(app.url(&format!("/api/v1/payment/orders/{no}/events")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

both_backends!(
    event_streams_are_capped_and_give_their_place_back,
    &with_emulator(&[("STREAM_MAX_PER_USER", "2"), ("STREAM_MAX_TOTAL", "3")]),
    |app: TestApp| async move {
        let alice = app.signup("alice").await;
        let bob = app.signup("bob").await;
        let a = pending_order(&app, &alice).await;
        let b = pending_order(&app, &bob).await;
        let a1 = open_stream(&app, &alice, &a).await;
        let a2 = open_stream(&app, &alice, &a).await;
        assert_eq!((a1.status().as_u16(), a2.status().as_u16()), (200, 200));
        let refused = open_stream(&app, &alice, &a).await;
        assert!(refused.headers().contains_key("retry-after"));
        let (status, body) = into_json(refused).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (429, Some("too_many_streams"))
        );
        // Bob has his own allowance, but the server holds at most three.
        let b1 = open_stream(&app, &bob, &b).await;
        assert_eq!(b1.status(), 200);
        let (status, body) = into_json(open_stream(&app, &bob, &b).await).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (429, Some("too_many_streams"))
        );
        // A client that goes away gives its place back.
        drop(a1);
        assert!(
            eventually(|| async { app.state.streams.open_now() == 2 }).await,
            "the dropped stream's place was not given back"
        );
        let again = open_stream(&app, &alice, &a).await;
        assert_eq!(again.status(), 200);
        drop((a2, b1, again));
        assert!(eventually(|| async { app.state.streams.open_now() == 0 }).await);
    }
);

both_backends!(
    event_streams_end_after_their_lifetime_and_reconnect,
    &with_emulator(&[
        ("STREAM_MAX_LIFETIME_SECS", "1"),
        ("STREAM_MAX_PER_USER", "1")
    ]),
    |app: TestApp| async move {
        let token = app.signup("lifetime").await;
        let no = pending_order(&app, &token).await;
        let resp = open_stream(&app, &token, &no).await;
        assert_eq!(resp.status(), 200);
        // The whole stream: the order's status, then the final event, then its end.
        let text = tokio::time::timeout(std::time::Duration::from_secs(15), resp.text())
            .await
            .expect("the stream ended")
            .unwrap();
        assert!(text.starts_with("event: status\n"), "{text}");
        assert!(
            text.ends_with(
                "retry: 1000\nevent: reconnect\ndata: {\"reason\":\"max_lifetime\"}\n\n"
            ),
            "{text}"
        );
        // Its place is free again: the reconnect (one stream per user here) is served
        // and sees the order as it is now.
        assert!(eventually(|| async { app.state.streams.open_now() == 0 }).await);
        pay_at_emulator(&app, "alipay", &no).await;
        app.wait_in_db(&no, "paid").await;
        let resp = open_stream(&app, &token, &no).await;
        assert_eq!(resp.status(), 200);
        let seen = fenpay_tests::sse_statuses(resp, "paid").await;
        assert_eq!(seen, ["paid"]);
    }
);
