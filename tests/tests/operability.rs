//! Operability (issue #12): Prometheus `/metrics` on the main listener (guarded by
//! `METRICS_TOKEN`) and on its own `METRICS_BIND` listener. The binary-level checks
//! (graceful shutdown, `fenpay doctor`, `trigger`, `replay`) are in `backend/tests/cli.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use fenpay_tests::{both_backends, eventually, pay_at_emulator, TestApp};
use serde_json::json;

const TOKEN: &str = "metrics-token-0123456789abcdefghijklmnop";

async fn scrape(app: &TestApp, token: Option<&str>) -> (u16, String) {
    let mut req = app.client.get(app.url("/metrics"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

/// The value of the series whose line starts with `series` (labels included), 0 when absent.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

fn with_token() -> Vec<(&'static str, &'static str)> {
    let mut vars = TestApp::emulator_overrides();
    vars.push(("METRICS_TOKEN", TOKEN));
    vars
}

both_backends!(
    metrics_count_a_paid_order_and_a_duplicate_notification,
    &with_token(),
    |app: TestApp| async move { paid_and_duplicate(app).await }
);

async fn paid_and_duplicate(app: TestApp) {
    // Guarded: no token, a wrong one -> 401 in the JSON error shape.
    let (status, body) = scrape(&app, None).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("\"code\":\"unauthorized\""), "{body}");
    assert_eq!(scrape(&app, Some("wrong")).await.0, 401);

    let (status, before) = scrape(&app, Some(TOKEN)).await;
    assert_eq!(status, 200, "{before}");
    let applied = r#"fenpay_notifications_total{provider="wechat",result="applied",reason=""}"#;
    let duplicate = r#"fenpay_notifications_total{provider="wechat",result="duplicate",reason=""}"#;
    let prepay =
        r#"fenpay_provider_call_duration_seconds_count{provider="wechat",operation="prepay"}"#;
    let create = r#"fenpay_http_request_duration_seconds_count{route="/api/v1/payment/create-order",status="200"}"#;

    let buyer = app.signup("metrics-buyer").await;
    let no = fenpay_tests::paid_points_order(&app, &buyer).await;
    // The emulator sends the notification once more: a duplicate.
    let (status, body) = app
        .emulator_post(&format!("/__emulator/wechat/notify/{no}"), &json!({}))
        .await;
    assert!(status < 300, "{status} {body}");
    let moved = eventually(|| async {
        let after = scrape(&app, Some(TOKEN)).await.1;
        value(&after, duplicate) > value(&before, duplicate)
    })
    .await;
    assert!(moved, "the duplicate notification was never counted");

    let (_, after) = scrape(&app, Some(TOKEN)).await;
    assert!(
        value(&after, applied) >= value(&before, applied) + 1.0,
        "{after}"
    );
    assert!(
        value(&after, prepay) >= value(&before, prepay) + 1.0,
        "{after}"
    );
    // By route pattern, never the raw path.
    assert!(
        value(&after, create) >= value(&before, create) + 1.0,
        "{after}"
    );
    assert!(
        !after.contains(&no),
        "a raw path or order number leaked into a label"
    );
    assert!(
        value(&after, r#"fenpay_orders{status="paid"}"#) >= 1.0,
        "{after}"
    );
    assert_eq!(value(&after, "fenpay_scrape_db_ok"), 1.0, "{after}");
    assert!(
        after.contains("fenpay_db_pool_connections{pool="),
        "{after}"
    );
    assert!(after.contains("# TYPE fenpay_http_request_duration_seconds histogram"));
    assert!(after.contains("fenpay_orders_stuck 0"), "{after}");
    assert!(after.contains("fenpay_sse_streams_open "), "{after}");
}

#[tokio::test]
async fn metrics_are_off_on_the_main_listener_without_a_token_and_open_on_their_own_bind() {
    let app = TestApp::sqlite(&[]).await;
    let (status, body) = scrape(&app, None).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("\"code\":\"not_found\""), "{body}");
    // The separate listener is started by `run_until_stopped` (the binary); here the
    // handler it mounts is served directly.
    let (server, addr) =
        fenpay::metrics::serve_separately(app.state.clone(), "127.0.0.1:0").unwrap();
    tokio::spawn(server);
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("fenpay_scrape_db_ok 1"), "{text}");
}

fn reconcile_at_once() -> Vec<(&'static str, &'static str)> {
    let mut vars = TestApp::emulator_overrides();
    vars.push(("RECONCILE_MIN_AGE_SECS", "0"));
    vars
}

both_backends!(
    jobs_after_shutdown_leave_no_claim_behind,
    &reconcile_at_once(),
    |app: TestApp| async move {
        let buyer = app.signup("drain-buyer").await;
        let admin = app.admin("drain-admin").await;
        let create = || async {
            let (status, order) = app
                .post(
                    "/api/v1/payment/create-order",
                    &json!({"product_type": "points", "product_id": 1, "payment_method": "wechat"}),
                    Some(&buyer),
                )
                .await;
            assert_eq!(status, 200, "{order}");
            order["order_no"].as_str().unwrap().to_string()
        };
        let expired = create().await;
        let paid = create().await;
        pay_at_emulator(&app, "wechat", &paid).await;
        app.wait_in_db(&paid, "paid").await;
        // A WeChat refund that stays processing at the provider.
        fenpay_tests::faults(&app, json!({"hold_refunds": true})).await;
        let (status, body) = fenpay_tests::refund(
            &app,
            &admin,
            json!({"order_no": paid, "out_refund_no": "RF-drain"}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "processing", "{body}");
        let past = if app.backend == fenpay_tests::Backend::Postgres {
            "now() - interval '1 hour'"
        } else {
            "datetime('now', '-1 hour')"
        };
        app.sql(&format!(
            "UPDATE orders SET expire_at = {past} WHERE order_no = '{expired}'"
        ))
        .await;
        // Due for the reconciler's refund follow-up too.
        app.sql(&format!(
            "UPDATE refunds SET updated_at = {past} WHERE out_refund_no = 'RF-drain'"
        ))
        .await;

        // Shutdown: a pass started now works on nothing and leaves nothing leased (without
        // it the sweeper would close the expired order, and the reconciler would query
        // it and follow the refund up).
        app.state.shutdown.trigger();
        let swept = fenpay::jobs::sweep_once(&app.state).await;
        assert_eq!(swept, fenpay::jobs::SweepReport::default());
        let reconciled = fenpay::jobs::reconcile_once(&app.state).await;
        assert_eq!(reconciled.queried, 0, "{reconciled:?}");
        assert_eq!(reconciled.refunds_checked, 0, "{reconciled:?}");
        let row = fenpay_tests::order(&app, &expired).await;
        assert_eq!(row.status.as_str(), "pending");
        assert_eq!(row.lease_until, None);

        // A refund claimed and then given back at shutdown is free for the next pass.
        let far = app.state.db.now() + chrono::Duration::hours(1);
        let claimed = fenpay::db::refunds::claim_processing(&app.state.db, far, 50, 120)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1, "{claimed:?}");
        // Its lease ran out and another replica claimed it: the stale claim releases
        // nothing of the new one.
        app.sql("UPDATE refunds SET lease_until = '2099-01-01 00:00:00' WHERE out_refund_no = 'RF-drain'")
            .await;
        assert!(
            !fenpay::db::refunds::release_claim(&app.state.db, &claimed[0])
                .await
                .unwrap()
        );
        let theirs = fenpay::db::refunds::find(&app.state.db, "RF-drain")
            .await
            .unwrap()
            .unwrap();
        assert!(
            theirs.lease_until.is_some(),
            "another replica's lease was cleared"
        );
        // Our own claim is given back.
        assert!(fenpay::db::refunds::release_claim(&app.state.db, &theirs)
            .await
            .unwrap());
        let row = fenpay::db::refunds::find(&app.state.db, "RF-drain")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.lease_until, None);
        let again = fenpay::db::refunds::claim_processing(&app.state.db, far, 50, 120)
            .await
            .unwrap();
        assert_eq!(again.len(), 1, "released refunds are claimable at once");
    }
);
