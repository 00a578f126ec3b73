//! Regression tests for money-safety defects, each on SQLite and (with
//! `TEST_DATABASE_URL`) PostgreSQL:
//!
//! - defect 2: an unverifiable refund answer never fails the refund; a verified success
//!   for a refund marked failed still applies (flagged for review);
//! - defect 3: Alipay `WAIT_BUYER_PAY` changes nothing; `TRADE_CLOSED` cancels only after
//!   a verified query confirms it;
//! - defect 7: a failed paid-after-close check of a cancelled order is retried;
//! - defect 9: an unsigned WeChat 404 never means "no such trade";
//! - defect 11: production has no dev routes;
//! - issue 16, 1: expired orders whose close keeps failing never stall the sweeper.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use fenpay_tests::{
    both_backends, eventually, faults, order, pay_at_emulator, refund, Backend, TestApp,
};
use serde_json::{json, Value};

fn emu() -> Vec<(&'static str, &'static str)> {
    TestApp::emulator_overrides()
}

async fn create_ok(app: &TestApp, token: &str, provider: &str, product_id: i64) -> String {
    let (status, body) = app
        .post(
            "/api/v1/payment/create-order",
            &json!({"product_type": "points", "product_id": product_id, "payment_method": provider}),
            Some(token),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["order_no"].as_str().unwrap().to_string()
}

async fn paid_order(app: &TestApp, token: &str, provider: &str) -> String {
    let no = create_ok(app, token, provider, 1).await;
    pay_at_emulator(app, provider, &no).await;
    app.wait_in_db(&no, "paid").await;
    no
}

async fn refund_row(app: &TestApp, no: &str) -> fenpay::db::refunds::RefundRow {
    fenpay::db::refunds::find(&app.state.db, no)
        .await
        .unwrap()
        .unwrap()
}

async fn decisions(app: &TestApp, order_no: &str, kind: &str) -> Vec<String> {
    app.records(order_no)
        .await
        .into_iter()
        .filter(|r| r.kind == kind)
        .map(|r| r.decision)
        .collect()
}

// ---- defect 2: refunds and unverifiable answers -----------------------------------------

both_backends!(
    unverifiable_refund_answer_leaves_the_refund_processing,
    &emu(),
    |app: TestApp| async move {
        let token = app.signup("d2-buyer").await;
        let admin = app.admin("d2-admin").await;
        let no = paid_order(&app, &token, "wechat").await;
        // WeChat takes the refund, but its answer does not verify (clock skew, a
        // rotated key): we cannot know, so the refund must stay processing.
        faults(&app, json!({"bad_signature_next": 1, "hold_refunds": true})).await;
        let (status, body) = refund(
            &app,
            &admin,
            json!({"order_no": no, "out_refund_no": "RF-d2-badsig"}),
        )
        .await;
        assert!(status == 200 || status == 202, "{status} {body}");
        assert_eq!(body["status"], "processing", "{body}");
        assert_eq!(
            refund_row(&app, "RF-d2-badsig").await.status.as_str(),
            "processing"
        );
        // While it is processing, its amount stays reserved.
        let (status, body) = refund(&app, &admin, json!({"order_no": no})).await;
        assert_eq!(status, 400, "{body}");
        // The refund goes through at WeChat: REFUND.SUCCESS arrives and is applied.
        let (status, body) = app
            .emulator_post(
                "/__emulator/wechat/refunds/RF-d2-badsig/settle",
                &json!({"status": "SUCCESS"}),
            )
            .await;
        assert!(status < 300, "{body}");
        eventually(|| async { order(&app, &no).await.status.as_str() == "refunded" }).await;
        let o = order(&app, &no).await;
        assert_eq!((o.status.as_str(), o.refunded_fen), ("refunded", 1000));
        assert_eq!(
            refund_row(&app, "RF-d2-badsig").await.status.as_str(),
            "succeeded"
        );
        // It cannot be refunded twice.
        faults(&app, json!({})).await;
        let (status, body) = refund(&app, &admin, json!({"order_no": no})).await;
        assert!(status == 409 || status == 400, "{status} {body}");
        let refunds: Value = app
            .client
            .get(format!(
                "{}/__emulator/wechat/refunds?out_trade_no={no}",
                app.emulator()
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let refunds = refunds.as_array().unwrap();
        assert_eq!(refunds.len(), 1, "{refunds:?}");
    }
);

both_backends!(
    a_verified_success_for_a_failed_refund_still_applies,
    &emu(),
    |app: TestApp| async move {
        let token = app.signup("d2b-buyer").await;
        let admin = app.admin("d2b-admin").await;
        let no = paid_order(&app, &token, "wechat").await;
        faults(&app, json!({"hold_refunds": true})).await;
        let (status, body) = refund(
            &app,
            &admin,
            json!({"order_no": no, "out_refund_no": "RF-d2-revive"}),
        )
        .await;
        assert_eq!((status, body["status"].as_str()), (200, Some("processing")));
        // Marked failed on our side (e.g. by an earlier build that took an
        // unverifiable answer for a refusal) while WeChat is still processing it.
        assert!(
            fenpay::db::refunds::fail(&app.state.db, "RF-d2-revive", "lost answer")
                .await
                .unwrap()
        );
        let (status, body) = app
            .emulator_post(
                "/__emulator/wechat/refunds/RF-d2-revive/settle",
                &json!({"status": "SUCCESS"}),
            )
            .await;
        assert!(status < 300, "{body}");
        eventually(|| async { order(&app, &no).await.status.as_str() == "refunded" }).await;
        let o = order(&app, &no).await;
        assert_eq!((o.status.as_str(), o.refunded_fen), ("refunded", 1000));
        assert!(o.needs_review);
        assert!(
            o.review_reason.as_deref().unwrap_or("").contains(
                "refund RF-d2-revive succeeded at the provider after it was marked failed"
            ),
            "{:?}",
            o.review_reason
        );
        assert_eq!(
            refund_row(&app, "RF-d2-revive").await.status.as_str(),
            "succeeded"
        );
        // Points were clawed back once.
        let (_, me) = app.get("/api/v1/auth/me", Some(&token)).await;
        assert_eq!(me["points_balance"], 0, "{me}");
    }
);

both_backends!(
    a_late_success_without_room_is_recorded_and_flagged,
    &emu(),
    |app: TestApp| async move {
        let token = app.signup("d2c-buyer").await;
        let no = paid_order(&app, &token, "alipay").await;
        let now = fenpay::db::now();
        let row = |out_refund_no: &str| fenpay::db::refunds::RefundRow {
            out_refund_no: out_refund_no.into(),
            order_no: no.clone(),
            provider: "alipay".into(),
            amount_fen: 1000,
            reason: None,
            status: api_types::admin::RefundStatus::Processing,
            provider_refund_id: None,
            requested_by: "test".into(),
            failure: None,
            lease_until: None,
            created_at: now,
            updated_at: now,
            succeeded_at: None,
        };
        // A (whole amount) failed, then B refunded the whole amount.
        let db = &app.state.db;
        fenpay::db::refunds::reserve(db, &row("RF-d2-a"))
            .await
            .unwrap();
        assert!(fenpay::db::refunds::fail(db, "RF-d2-a", "x").await.unwrap());
        fenpay::db::refunds::reserve(db, &row("RF-d2-b"))
            .await
            .unwrap();
        let ok = |r: &str| fenpay::providers::RemoteRefund {
            out_trade_no: no.clone(),
            out_refund_no: r.into(),
            refund_id: Some("T1".into()),
            state: fenpay::providers::RemoteRefundState::Succeeded,
            amount_fen: 1000,
            succeeded_at: None,
        };
        let b = refund_row(&app, "RF-d2-b").await;
        fenpay::service::refunds::apply_remote(&app.state, &b, &ok("RF-d2-b"))
            .await
            .unwrap();
        // Now the provider says A succeeded too: recorded, never over-applied, flagged.
        let a = refund_row(&app, "RF-d2-a").await;
        fenpay::service::refunds::apply_remote(&app.state, &a, &ok("RF-d2-a"))
            .await
            .unwrap();
        assert_eq!(
            refund_row(&app, "RF-d2-a").await.status.as_str(),
            "succeeded"
        );
        let o = order(&app, &no).await;
        assert_eq!((o.status.as_str(), o.refunded_fen), ("refunded", 1000));
        assert!(o.needs_review);
        assert!(o
            .review_reason
            .unwrap()
            .contains("refund RF-d2-a succeeded at the provider after it was marked failed"));
    }
);

// ---- defect 3: Alipay WAIT_BUYER_PAY and TRADE_CLOSED ------------------------------------

both_backends!(
    alipay_scan_and_unconfirmed_close_leave_the_order_pending,
    &emu(),
    |app: TestApp| async move {
        let token = app.signup("d3-buyer").await;
        let no = create_ok(&app, &token, "alipay", 1).await;
        // The buyer scans the QR code: Alipay notifies WAIT_BUYER_PAY.
        let (status, body) = app
            .emulator_post(&format!("/__emulator/alipay/scan/{no}"), &json!({}))
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["outcome"], "delivered", "{body}");
        assert_eq!(order(&app, &no).await.status.as_str(), "pending");
        let d = decisions(&app, &no, "notification").await;
        assert!(d.iter().any(|d| d == "WAIT_BUYER_PAY: ignored"), "{d:?}");
        // A signed TRADE_CLOSED while the trade is still open at Alipay: the query says
        // WAIT_BUYER_PAY, so nothing changes.
        let (status, body) = app
            .emulator_post(
                &format!("/__emulator/alipay/notify/{no}"),
                &json!({"trade_status": "TRADE_CLOSED"}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(order(&app, &no).await.status.as_str(), "pending");
        // The query fails: answer `fail` (Alipay resends), nothing changes.
        faults(&app, json!({"fail_requests_next": 1})).await;
        let (status, body) = app
            .emulator_post(
                &format!("/__emulator/alipay/notify/{no}"),
                &json!({"trade_status": "TRADE_CLOSED"}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["outcome"], "rejected", "{body}");
        assert_eq!(order(&app, &no).await.status.as_str(), "pending");
        // The buyer still pays: the order is paid, never cancelled on the way.
        pay_at_emulator(&app, "alipay", &no).await;
        app.wait_in_db(&no, "paid").await;
        // A TRADE_CLOSED for a paid trade: the query says paid.
        let no2 = create_ok(&app, &token, "alipay", 1).await;
        faults(&app, json!({"drop_notifications_next": 100})).await;
        pay_at_emulator(&app, "alipay", &no2).await;
        faults(&app, json!({})).await;
        let (status, body) = app
            .emulator_post(
                &format!("/__emulator/alipay/notify/{no2}"),
                &json!({"trade_status": "TRADE_CLOSED"}),
            )
            .await;
        assert_eq!((status, body["outcome"].as_str()), (200, Some("delivered")));
        assert_eq!(order(&app, &no2).await.status.as_str(), "paid");
        // A real close (the buyer scanned, so Alipay knows the trade, then it timed out
        // there): confirmed, cancelled.
        let no3 = create_ok(&app, &token, "alipay", 1).await;
        app.emulator_post(&format!("/__emulator/alipay/scan/{no3}"), &json!({}))
            .await;
        let (status, _) = app
            .emulator_post(&format!("/__emulator/alipay/close/{no3}"), &json!({}))
            .await;
        assert_eq!(status, 200);
        let (status, body) = app
            .emulator_post(
                &format!("/__emulator/alipay/notify/{no3}"),
                &json!({"trade_status": "TRADE_CLOSED"}),
            )
            .await;
        assert_eq!((status, body["outcome"].as_str()), (200, Some("delivered")));
        let o = order(&app, &no3).await;
        assert_eq!(
            (o.status.as_str(), o.cancel_reason.as_deref()),
            ("cancelled", Some("expired"))
        );
    }
);

// ---- defect 7: paid-after-close check retried after a failed query -----------------------

/// Make a cancelled order look cancelled `minutes` ago (the check waits a minute).
async fn cancelled_minutes_ago(app: &TestApp, no: &str, minutes: i64) {
    let then = (chrono::Utc::now() - chrono::Duration::minutes(minutes))
        .naive_utc()
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();
    app.sql(&format!(
        "UPDATE orders SET updated_at = '{then}' WHERE order_no = '{no}'"
    ))
    .await;
}

fn recheck_overrides() -> Vec<(&'static str, &'static str)> {
    let mut o = emu();
    o.push(("PAYMENT_QUERY_RETRY_MAX", "0"));
    o.push(("JOBS_ENABLED", "false"));
    o
}

both_backends!(
    failed_paid_after_close_check_is_retried,
    &recheck_overrides(),
    |app: TestApp| async move {
        let token = app.signup("d7-buyer").await;
        let late = create_ok(&app, &token, "wechat", 1).await;
        faults(&app, json!({"drop_notifications_next": 1000})).await;
        pay_at_emulator(&app, "wechat", &late).await;
        // Cancelled on our side while the payment went through at WeChat.
        assert!(
            fenpay::db::orders::cancel(&app.state.db, &late, "user", &Default::default())
                .await
                .unwrap()
                .is_some()
        );
        let five_min_ago = (chrono::Utc::now() - chrono::Duration::minutes(5))
            .naive_utc()
            .format("%Y-%m-%d %H:%M:%S")
            .to_string();
        app.sql(&format!(
            "UPDATE orders SET updated_at = '{five_min_ago}' WHERE order_no = '{late}'"
        ))
        .await;
        // WeChat is down for the first check (its notifications stay lost throughout).
        faults(
            &app,
            json!({"drop_notifications_next": 1000, "fail_requests_next": 1000}),
        )
        .await;
        let report = fenpay::jobs::reconcile_once(&app.state).await;
        assert!(report.errors >= 1, "{report:?}");
        assert_eq!(order(&app, &late).await.status.as_str(), "cancelled");
        faults(&app, json!({"drop_notifications_next": 1000})).await;
        // The retry is not due yet (backoff) ...
        let report = fenpay::jobs::reconcile_once(&app.state).await;
        assert_eq!(report.paid_after_close, 0, "{report:?}");
        // ... and once it is, the late payment is found.
        app.sql(&format!(
            "UPDATE orders SET paid_check_at = '2020-01-01 00:00:00' WHERE order_no = '{late}'"
        ))
        .await;
        let report = fenpay::jobs::reconcile_once(&app.state).await;
        assert_eq!(report.paid_after_close, 1, "{report:?}");
        let o = order(&app, &late).await;
        assert_eq!(o.status.as_str(), "paid");
        assert!(o.needs_review);
        // A verified answer ends the checking: nothing is claimed again.
        let unpaid = create_ok(&app, &token, "wechat", 1).await;
        fenpay::db::orders::cancel(&app.state.db, &unpaid, "user", &Default::default())
            .await
            .unwrap();
        app.sql(&format!(
            "UPDATE orders SET updated_at = '{five_min_ago}' WHERE order_no = '{unpaid}'"
        ))
        .await;
        let report = fenpay::jobs::reconcile_once(&app.state).await;
        assert_eq!(report.queried, 1, "{report:?}");
        let report = fenpay::jobs::reconcile_once(&app.state).await;
        assert_eq!(report.queried, 0, "{report:?}");
    }
);

// A cancel while the reconciler queried the pending order must not end the paid-after-close
// check before it began (found by a review after issue 10's fixes).
both_backends!(
    a_cancel_during_a_reconciler_query_keeps_the_paid_after_close_check,
    &recheck_overrides(),
    |app: TestApp| async move {
        use fenpay::db::orders::{self as order_db, OrderClaim};
        let token = app.signup("rq-buyer").await;
        let no = create_ok(&app, &token, "wechat", 1).await;
        // The reconciler claims the pending order and asks the provider about it ...
        let later = (chrono::Utc::now() + chrono::Duration::minutes(1)).naive_utc();
        let claimed = order_db::claim_for_job(
            &app.state.db,
            OrderClaim::StalePending(later, later, 100),
            50,
            120,
        )
        .await
        .unwrap();
        assert_eq!(
            claimed.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
            vec![no.clone()]
        );
        // ... meanwhile the order is cancelled here, and the buyer pays the trade anyway
        // (its notifications are lost) ...
        assert!(
            order_db::cancel(&app.state.db, &no, "user", &Default::default())
                .await
                .unwrap()
                .is_some()
        );
        faults(&app, json!({"drop_notifications_next": 1000})).await;
        pay_at_emulator(&app, "wechat", &no).await;
        // ... then the reconciler releases its claim.
        order_db::release_job_claim(&app.state.db, &no, &claimed[0].1, true)
            .await
            .unwrap();
        cancelled_minutes_ago(&app, &no, 5).await;
        // The paid-after-close check still runs and finds the payment.
        let report = fenpay::jobs::reconcile_once(&app.state).await;
        assert_eq!(report.paid_after_close, 1, "{report:?}");
        let o = order(&app, &no).await;
        assert_eq!(o.status.as_str(), "paid");
        assert!(o.needs_review);
    }
);

/// What the paid-after-close check would claim now (without waiting a minute).
async fn recently_cancelled(app: &TestApp) -> Vec<String> {
    use fenpay::db::orders::{self as order_db, OrderClaim};
    let now = chrono::Utc::now();
    order_db::claim_for_job(
        &app.state.db,
        OrderClaim::RecentlyCancelled(
            (now + chrono::Duration::minutes(1)).naive_utc(),
            (now - chrono::Duration::hours(1)).naive_utc(),
        ),
        50,
        0,
    )
    .await
    .unwrap()
    .into_iter()
    .map(|(no, _)| no)
    .collect()
}

// An order held for review (a payment mismatch) is not queried again once cancelled either.
both_backends!(
    a_held_cancelled_order_is_not_rechecked,
    &recheck_overrides(),
    |app: TestApp| async move {
        use fenpay::db::orders as order_db;
        let token = app.signup("held-buyer").await;
        let no = create_ok(&app, &token, "wechat", 1).await;
        order_db::cancel(&app.state.db, &no, "user", &Default::default())
            .await
            .unwrap();
        app.sql(&format!(
            "UPDATE orders SET sync_halted = TRUE WHERE order_no = '{no}'"
        ))
        .await;
        assert_eq!(
            recently_cancelled(&app).await,
            Vec::<String>::new(),
            "held: not claimed"
        );
        app.sql(&format!(
            "UPDATE orders SET sync_halted = FALSE WHERE order_no = '{no}'"
        ))
        .await;
        assert_eq!(
            recently_cancelled(&app).await,
            vec![no.clone()],
            "not held: claimed"
        );
    }
);

// ---- defect 9: an unsigned 404 is not "no such trade" ------------------------------------

/// A reverse proxy in front of the emulator that answers every WeChat close with an
/// unsigned `404 {"code":"ORDER_NOT_EXIST"}` (what a misrouted gateway could send).
async fn lying_proxy(upstream: String) -> String {
    use actix_web::{web, HttpRequest, HttpResponse};
    let client = reqwest::Client::new();
    let server = actix_web::HttpServer::new(move || {
        let (upstream, client) = (upstream.clone(), client.clone());
        actix_web::App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
            let (upstream, client) = (upstream.clone(), client.clone());
            async move {
                if req.path().starts_with("/v3/pay/transactions/") && req.path().ends_with("/close")
                {
                    return HttpResponse::NotFound()
                        .content_type("application/json")
                        .body(r#"{"code":"ORDER_NOT_EXIST","message":"订单不存在"}"#);
                }
                let pq = req
                    .uri()
                    .path_and_query()
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_default();
                let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes()).unwrap();
                let mut out = client.request(method, format!("{upstream}{pq}"));
                for (k, v) in req.headers() {
                    if k.as_str() != "host" && k.as_str() != "content-length" {
                        out = out.header(k.as_str(), v.to_str().unwrap_or_default());
                    }
                }
                let resp = out.body(body.to_vec()).send().await.unwrap();
                let mut answer = HttpResponse::build(
                    actix_web::http::StatusCode::from_u16(resp.status().as_u16()).unwrap(),
                );
                for (k, v) in resp.headers() {
                    if !matches!(k.as_str(), "content-length" | "transfer-encoding") {
                        answer.insert_header((
                            k.as_str().to_string(),
                            v.to_str().unwrap_or_default().to_string(),
                        ));
                    }
                }
                answer.body(resp.bytes().await.unwrap().to_vec())
            }
        }))
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let addr = server.addrs()[0];
    tokio::spawn(server.run());
    format!("http://{addr}")
}

/// A second app of the same backend whose provider calls (WeChat and Alipay) go through
/// [`lying_proxy`] in front of `app`'s emulator, with its jobs off.
async fn behind_lying_proxy(app: &TestApp, extra: &[(&str, &str)]) -> TestApp {
    let proxy = lying_proxy(app.emulator()).await;
    let keys = fenpay_tests::shared_dev_keys_dir();
    let mut overrides = vec![
        ("EMULATOR_ENABLED", "false"),
        ("EMULATOR_URL", proxy.as_str()),
        ("DEV_KEYS_DIR", keys),
        ("JOBS_ENABLED", "false"),
    ];
    overrides.extend_from_slice(extra);
    match app.backend {
        Backend::Sqlite => TestApp::sqlite(&overrides).await,
        Backend::Postgres => TestApp::postgres(&overrides).await.unwrap(),
    }
}

both_backends!(
    unsigned_wechat_404_does_not_cancel,
    &emu(),
    |app: TestApp| async move {
        let behind = behind_lying_proxy(&app, &[("WECHAT_PAY_TIMEOUT_SECS", "2")]).await;
        let token = behind.signup("d9-buyer").await;
        let no = create_ok(&behind, &token, "wechat", 1).await;
        let (status, body) = behind
            .post(
                "/api/v1/payment/cancel-order",
                &json!({"order_no": no}),
                Some(&token),
            )
            .await;
        assert_eq!(status, 502, "{body}");
        assert_eq!(body["code"], "provider_unavailable", "{body}");
        assert_eq!(order(&behind, &no).await.status.as_str(), "pending");
        // The QR code was still payable, and the buyer pays.
        pay_at_emulator(&app, "wechat", &no).await;
        behind.wait_in_db(&no, "paid").await;
        // The expiry sweeper gets the same unverified answer: it retries, never cancels.
        let no2 = create_ok(&behind, &token, "wechat", 1).await;
        behind
            .sql(&format!(
                "UPDATE orders SET expire_at = '2020-01-01 00:00:00' WHERE order_no = '{no2}'"
            ))
            .await;
        let report = fenpay::jobs::sweep_once(&behind.state).await;
        assert_eq!((report.cancelled, report.retry), (0, 1), "{report:?}");
        assert_eq!(order(&behind, &no2).await.status.as_str(), "pending");
        // A signed ORDER_NOT_EXIST from WeChat itself (the emulator) still cancels.
        let token = app.signup("d9-direct").await;
        let direct = create_ok(&app, &token, "wechat", 1).await;
        let (status, _) = app.emulator_post("/__emulator/reset", &json!({})).await;
        assert!(status < 300);
        let (status, body) = app
            .post(
                "/api/v1/payment/cancel-order",
                &json!({"order_no": direct}),
                Some(&token),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(order(&app, &direct).await.status.as_str(), "cancelled");
    }
);

// ---- defect 11: no dev routes in production ----------------------------------------------

both_backends!(
    production_has_no_dev_routes,
    &[("APP_ENV", "production")],
    |app: TestApp| async move {
        let token = app.signup("d11-buyer").await;
        let (status, body) = app.get("/api/v1/dev/info", None).await;
        assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
        let (status, _) = app
            .post(
                "/api/v1/dev/simulate-pay",
                &json!({"order_no": "FP-nope-000000"}),
                Some(&token),
            )
            .await;
        assert_eq!(status, 404);
    }
);

// ---- issue 16, 1: a close that keeps failing never stalls the expiry sweeper --------------

both_backends!(
    failing_closes_never_stall_the_sweeper,
    &emu(),
    |app: TestApp| async move {
        // Every WeChat close gets an unverifiable answer (the proxy); Alipay works.
        let behind = behind_lying_proxy(&app, &[]).await;
        let token = behind.signup("i16-sweep").await;
        // More failing WeChat orders than a sweeper batch (50), all older than the
        // Alipay order that expired with them.
        let mut failing = Vec::new();
        for _ in 0..51 {
            failing.push(create_ok(&behind, &token, "wechat", 1).await);
        }
        let alipay = create_ok(&behind, &token, "alipay", 1).await;
        behind
            .sql("UPDATE orders SET expire_at = '2020-01-01 00:00:00'")
            .await;

        // One pass tries every expired order exactly once: the 51 failures do not hide
        // the Alipay order, and none of them is claimed twice.
        let report = fenpay::jobs::sweep_once(&behind.state).await;
        assert_eq!((report.cancelled, report.retry), (1, 51), "{report:?}");
        assert_eq!(order(&behind, &alipay).await.status.as_str(), "cancelled");
        for no in &failing {
            let row = order(&behind, no).await;
            assert_eq!(row.status.as_str(), "pending", "{no}");
        }
        // They wait for their backoff: the next pass leaves them alone ...
        let report = fenpay::jobs::sweep_once(&behind.state).await;
        assert_eq!(report, fenpay::jobs::SweepReport::default());
        // ... an order that expires meanwhile is still swept at once ...
        let fresh = create_ok(&behind, &token, "alipay", 1).await;
        behind
            .sql(&format!(
                "UPDATE orders SET expire_at = '2020-01-02 00:00:00' WHERE order_no = '{fresh}'"
            ))
            .await;
        let report = fenpay::jobs::sweep_once(&behind.state).await;
        assert_eq!((report.cancelled, report.retry), (1, 0), "{report:?}");
        // ... and operators see them, with the error.
        let admin = behind.admin("i16-admin").await;
        let (status, stats) = behind.get("/api/v1/admin/stats", Some(&admin)).await;
        assert_eq!(status, 200, "{stats}");
        assert_eq!(stats["stuck"]["count"], 51, "{stats}");
        assert_eq!(
            stats["stuck"]["oldest_expire_at"], "2020-01-01T00:00:00Z",
            "{stats}"
        );
        assert!(
            stats["stuck"]["last_error"]
                .as_str()
                .unwrap_or_default()
                .len()
                > 3,
            "{stats}"
        );
        // Once due again they are retried, and the failure count grows.
        behind
            .sql(
                "UPDATE orders SET close_retry_at = '2020-01-01 00:00:00' WHERE close_failures > 0",
            )
            .await;
        let report = fenpay::jobs::sweep_once(&behind.state).await;
        assert_eq!((report.cancelled, report.retry), (0, 51), "{report:?}");
        let twice = behind
            .sql("UPDATE orders SET close_failures = close_failures WHERE close_failures = 2")
            .await;
        assert_eq!(twice, 51);
    }
);
