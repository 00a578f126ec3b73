//! The order lifecycle engine on both backends: stock reservation, membership upgrades,
//! the expiry sweeper, the reconciler (lost notifications, paid after close), refunds
//! with claw-back, payment records and admin views, Idempotency-Key, live status (SSE)
//! and signed webhooks with retries, resend and the Telegram notifier.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use fenpay_tests::{
    both_alipay_modes, both_backends, eventually, faults, me, order, pay_at_emulator, refund,
    sse_statuses, Backend, TestApp, WebhookReceiver, TEST_WEBHOOK_SECRET,
};
use serde_json::{json, Value};

fn emu() -> Vec<(&'static str, &'static str)> {
    TestApp::emulator_overrides()
}

async fn create(app: &TestApp, token: &str, provider: &str, product_id: i64) -> (u16, Value) {
    let kind = if product_id >= 4 {
        "membership"
    } else {
        "points"
    };
    app.post(
        "/api/v1/payment/create-order",
        &json!({"product_type": kind, "product_id": product_id, "payment_method": provider}),
        Some(token),
    )
    .await
}

async fn create_ok(app: &TestApp, token: &str, provider: &str, product_id: i64) -> String {
    let (status, body) = create(app, token, provider, product_id).await;
    assert_eq!(status, 200, "{body}");
    body["order_no"].as_str().unwrap().to_string()
}

async fn set_stock(app: &TestApp, product_id: i64, stock: &str) {
    app.sql(&format!(
        "UPDATE products SET stock = {stock} WHERE id = {product_id}"
    ))
    .await;
}

async fn stock(app: &TestApp, product_id: i64) -> Option<i64> {
    fenpay::db::products::find(&app.state.db, product_id)
        .await
        .unwrap()
        .unwrap()
        .stock
}

async fn event_types(app: &TestApp, order_no: &str) -> Vec<String> {
    fenpay::db::events::events_for_order(&app.state.db, order_no)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event_type)
        .collect()
}

// ---- stock --------------------------------------------------------------------------

both_backends!(
    stock_is_reserved_atomically_and_released,
    &emu(),
    |app: TestApp| async move {
        let token = app.signup("stocky").await;
        set_stock(&app, 1, "3").await;
        // Eight buyers race for three units: exactly three orders, never below zero.
        let results =
            futures_util::future::join_all((0..8).map(|_| create(&app, &token, "wechat", 1))).await;
        let ok: Vec<&Value> = results
            .iter()
            .filter(|(s, _)| *s == 200)
            .map(|(_, b)| b)
            .collect();
        assert_eq!(ok.len(), 3, "{results:?}");
        for (status, body) in &results {
            if *status != 200 {
                assert_eq!(*status, 409, "{body}");
                assert_eq!(body["code"], "out_of_stock");
            }
        }
        assert_eq!(stock(&app, 1).await, Some(0));
        // Cancel releases the unit; cancelling again does not release it twice.
        let first = ok[0]["order_no"].as_str().unwrap();
        for _ in 0..2 {
            let (status, body) = app
                .post(
                    "/api/v1/payment/cancel-order",
                    &json!({"order_no": first}),
                    Some(&token),
                )
                .await;
            assert_eq!(status, 200, "{body}");
        }
        assert_eq!(stock(&app, 1).await, Some(1));
        // Expiry releases too (sweeper).
        let second = ok[1]["order_no"].as_str().unwrap();
        app.sql(&format!(
            "UPDATE orders SET expire_at = '2020-01-01 00:00:00' WHERE order_no = '{second}'"
        ))
        .await;
        let report = fenpay::jobs::sweep_once(&app.state).await;
        assert_eq!(report.cancelled, 1, "{report:?}");
        assert_eq!(stock(&app, 1).await, Some(2));
        // A paid order keeps its unit.
        let third = ok[2]["order_no"].as_str().unwrap();
        pay_at_emulator(&app, "wechat", third).await;
        app.wait_in_db(third, "paid").await;
        assert_eq!(stock(&app, 1).await, Some(2));
        // Unlimited products are untouched.
        let _ = create_ok(&app, &token, "wechat", 2).await;
        assert_eq!(stock(&app, 2).await, None);
    }
);

// ---- membership upgrade ---------------------------------------------------------------

both_backends!(
    membership_upgrade_pays_the_prorated_difference,
    &emu(),
    |app: TestApp| async move {
        let token = app.signup("upgrader").await;
        let (status, body) = app
        .post(
            "/api/v1/payment/create-order",
            &json!({"product_type": "membership", "product_id": 5, "payment_method": "wechat", "is_upgrade": true}),
            Some(&token),
        )
        .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["code"], "upgrade_not_available");
        // Buy basic (29.00 / 30 days), then upgrade to pro (99.00 / 30 days).
        let basic = create_ok(&app, &token, "wechat", 4).await;
        pay_at_emulator(&app, "wechat", &basic).await;
        app.wait_in_db(&basic, "paid").await;
        let before = me(&app, &token).await;
        assert_eq!(before["membership_tier"], "basic");
        // Half the period left: the difference for 15 days is 35.00.
        app.sql(&format!(
            "UPDATE users SET membership_expires_at = '{}' WHERE username = 'upgrader'",
            (chrono::Utc::now() + chrono::Duration::days(15))
                .naive_utc()
                .format("%Y-%m-%d %H:%M:%S")
        ))
        .await;
        let (status, body) = app
        .post(
            "/api/v1/payment/create-order",
            &json!({"product_type": "membership", "product_id": 5, "payment_method": "wechat", "is_upgrade": true}),
            Some(&token),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let fen = body["amount_fen"].as_i64().unwrap();
        assert!((3495..=3500).contains(&fen), "prorated price {fen}");
        let up = body["order_no"].as_str().unwrap().to_string();
        let expires_before = me(&app, &token).await["membership_expires_at"].clone();
        pay_at_emulator(&app, "wechat", &up).await;
        app.wait_in_db(&up, "paid").await;
        let after = me(&app, &token).await;
        assert_eq!(after["membership_tier"], "pro");
        // The tier changes; the remaining time is kept, not extended.
        assert_eq!(after["membership_expires_at"], expires_before);
        // Downgrading "upgrades" are refused.
        let (status, body) = app
        .post(
            "/api/v1/payment/create-order",
            &json!({"product_type": "membership", "product_id": 4, "payment_method": "wechat", "is_upgrade": true}),
            Some(&token),
        )
        .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["code"], "upgrade_not_available");
    }
);

// ---- expiry sweeper -------------------------------------------------------------------

both_backends!(
    sweeper_closes_expired_orders_and_rescues_paid_ones,
    &emu(),
    |app: TestApp| async move {
        let token = app.signup("sweepy").await;
        let unpaid = create_ok(&app, &token, "wechat", 1).await;
        let unpaid_ali = create_ok(&app, &token, "alipay", 1).await;
        let paid = create_ok(&app, &token, "wechat", 2).await;
        // The buyer pays, but every notification is lost.
        faults(&app, json!({"drop_notifications_next": 1000})).await;
        pay_at_emulator(&app, "wechat", &paid).await;
        app.sql("UPDATE orders SET expire_at = '2020-01-01 00:00:00'")
            .await;
        let report = fenpay::jobs::sweep_once(&app.state).await;
        assert_eq!(report.cancelled, 2, "{report:?}");
        assert_eq!(report.paid, 1, "{report:?}");
        assert_eq!(order(&app, &unpaid).await.status.as_str(), "cancelled");
        assert_eq!(
            order(&app, &unpaid).await.cancel_reason.as_deref(),
            Some("expired")
        );
        assert_eq!(order(&app, &unpaid_ali).await.status.as_str(), "cancelled");
        assert_eq!(order(&app, &paid).await.status.as_str(), "paid");
        assert_eq!(me(&app, &token).await["points_balance"], 550);
        // The trade is really closed at the provider: it can no longer be paid.
        let (status, _) = app
            .emulator_post(&format!("/__emulator/wechat/pay/{unpaid}"), &json!({}))
            .await;
        assert!(status >= 400);
        // A second pass finds nothing; nothing is credited twice.
        let again = fenpay::jobs::sweep_once(&app.state).await;
        assert_eq!(again, fenpay::jobs::SweepReport::default());
        assert_eq!(me(&app, &token).await["points_balance"], 550);
        assert!(event_types(&app, &unpaid)
            .await
            .contains(&"order.cancelled".to_string()));
    }
);

both_backends!(
    sweeper_leaves_orders_pending_while_the_provider_is_down,
    &emu(),
    |app: TestApp| async move {
        let token = app.signup("downy").await;
        let no = create_ok(&app, &token, "alipay", 1).await;
        app.sql("UPDATE orders SET expire_at = '2020-01-01 00:00:00'")
            .await;
        faults(&app, json!({"fail_requests_next": 100})).await;
        let report = fenpay::jobs::sweep_once(&app.state).await;
        assert_eq!(report.retry, 1, "{report:?}");
        assert_eq!(order(&app, &no).await.status.as_str(), "pending");
        // Provider back: the order waits for its backoff (a minute) ...
        faults(&app, json!({})).await;
        let report = fenpay::jobs::sweep_once(&app.state).await;
        assert_eq!(report, fenpay::jobs::SweepReport::default());
        // ... then the next pass closes it.
        app.sql("UPDATE orders SET close_retry_at = '2020-01-01 00:00:00'")
            .await;
        let report = fenpay::jobs::sweep_once(&app.state).await;
        assert_eq!(report.cancelled, 1, "{report:?}");
    }
);

// ---- reconciler -----------------------------------------------------------------------

both_backends!(
    reconciler_applies_lost_payments_and_paid_after_close,
    &emu(),
    |app: TestApp| async move {
        let token = app.signup("recon").await;
        let lost = create_ok(&app, &token, "alipay", 1).await;
        let late = create_ok(&app, &token, "wechat", 1).await;
        let unpaid = create_ok(&app, &token, "wechat", 1).await;
        faults(&app, json!({"drop_notifications_next": 1000})).await;
        pay_at_emulator(&app, "alipay", &lost).await;
        pay_at_emulator(&app, "wechat", &late).await;
        // `late` was cancelled on our side while the payment went through at the provider.
        assert!(
            fenpay::db::orders::cancel(&app.state.db, &late, "user", &Default::default())
                .await
                .unwrap()
                .is_some()
        );
        app.sql("UPDATE orders SET created_at = '2020-01-01 00:00:00', updated_at = '2020-01-02 00:00:00'")
        .await;
        app.sql(&format!(
            "UPDATE orders SET updated_at = '{}' WHERE order_no = '{late}'",
            (chrono::Utc::now() - chrono::Duration::minutes(5))
                .naive_utc()
                .format("%Y-%m-%d %H:%M:%S")
        ))
        .await;
        let report = fenpay::jobs::reconcile_once(&app.state).await;
        assert_eq!(report.paid, 1, "{report:?}");
        assert_eq!(report.paid_after_close, 1, "{report:?}");
        assert_eq!(order(&app, &lost).await.status.as_str(), "paid");
        assert_eq!(order(&app, &unpaid).await.status.as_str(), "pending");
        let l = order(&app, &late).await;
        assert_eq!(l.status.as_str(), "paid");
        assert!(l.needs_review);
        assert!(l.review_reason.unwrap().contains("paid after"));
        let types = event_types(&app, &late).await;
        assert!(
            types.contains(&"order.paid_after_close".to_string()),
            "{types:?}"
        );
        assert_eq!(me(&app, &token).await["points_balance"], 200);
        // Every query is in the payment records.
        let admin = app.admin("recon-admin").await;
        let (_, detail) = app
            .get(&format!("/api/v1/admin/orders/{lost}"), Some(&admin))
            .await;
        let kinds: Vec<&str> = detail["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["kind"].as_str().unwrap())
            .collect();
        assert!(
            kinds.contains(&"prepay") && kinds.contains(&"query"),
            "{kinds:?}"
        );
        // Review filter.
        let (_, flagged) = app
            .get("/api/v1/admin/orders?needs_review=true", Some(&admin))
            .await;
        assert_eq!(flagged["total"], 1, "{flagged}");
        assert_eq!(flagged["items"][0]["order"]["order_no"], late.as_str());
        // A second pass changes nothing.
        let again = fenpay::jobs::reconcile_once(&app.state).await;
        assert_eq!(again.paid + again.paid_after_close, 0, "{again:?}");
        assert_eq!(me(&app, &token).await["points_balance"], 200);
    }
);

// ---- refunds --------------------------------------------------------------------------

async fn paid_order(app: &TestApp, token: &str, provider: &str, product_id: i64) -> String {
    let no = create_ok(app, token, provider, product_id).await;
    pay_at_emulator(app, provider, &no).await;
    app.wait_in_db(&no, "paid").await;
    no
}

// Alipay refunds (refund, fastpay.refund.query) in both Alipay key modes.
both_alipay_modes!(
    alipay_partial_then_full_refund_with_clawback,
    |app: TestApp| async move {
        let token = app.signup("ali-refund").await;
        let admin = app.admin("ali-admin").await;
        let no = paid_order(&app, &token, "alipay", 2).await; // 50.00 -> 550 points
        assert_eq!(me(&app, &token).await["points_balance"], 550);
        // Only admins refund.
        let (status, _) = refund(&app, &token, json!({"order_no": no})).await;
        assert_eq!(status, 403);
        let (status, body) = refund(
            &app,
            &admin,
            json!({"order_no": no, "amount_fen": 1000, "out_refund_no": "RF-part-1"}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "succeeded");
        assert_eq!(body["order_status"], "paid");
        assert_eq!(body["order_refunded_fen"], 1000);
        // 10.00 of 50.00 refunded: a fifth of 550 points is taken back.
        assert_eq!(me(&app, &token).await["points_balance"], 440);
        // The same refund number again: nothing more is refunded.
        let (status, body) = refund(
            &app,
            &admin,
            json!({"order_no": no, "amount_fen": 1000, "out_refund_no": "RF-part-1"}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["order_refunded_fen"], 1000);
        // ...but the same number for another amount is a conflict.
        let (status, body) = refund(
            &app,
            &admin,
            json!({"order_no": no, "amount_fen": 500, "out_refund_no": "RF-part-1"}),
        )
        .await;
        assert_eq!(status, 409, "{body}");
        assert_eq!(body["code"], "refund_no_conflict");
        // More than what is left.
        let (status, body) =
            refund(&app, &admin, json!({"order_no": no, "amount_fen": 4001})).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["code"], "invalid_refund_amount");
        // The rest (amount omitted): the order is refunded and all points are back out.
        let (status, body) = refund(&app, &admin, json!({"order_no": no})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["amount_fen"], 4000);
        assert_eq!(body["order_status"], "refunded");
        assert_eq!(me(&app, &token).await["points_balance"], 0);
        let (status, body) = refund(&app, &admin, json!({"order_no": no, "amount_fen": 1})).await;
        assert_eq!(status, 409, "{body}");
        assert_eq!(body["code"], "order_not_paid");
        // The trade at Alipay agrees.
        let (_, detail) = app
            .get(&format!("/api/v1/admin/orders/{no}"), Some(&admin))
            .await;
        assert_eq!(detail["order"]["order"]["status"], "refunded");
        assert_eq!(detail["refunds"].as_array().unwrap().len(), 2);
        let types: Vec<&str> = detail["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event_type"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            [
                "order.created",
                "order.paid",
                "order.refunded",
                "order.refunded"
            ]
        );
        // Alipay's refund notifications are recognised as such (and change nothing more).
        let mut kinds = Vec::new();
        for _ in 0..100 {
            kinds = app
                .records(&no)
                .await
                .into_iter()
                .filter(|r| r.kind == "refund_notification")
                .map(|r| r.decision)
                .collect();
            if kinds.len() >= 2 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(kinds.len(), 2, "{kinds:?}");
        // Whichever came first (the refund call's answer or the notification) completed
        // the refund; the other was a duplicate.
        assert!(
            kinds
                .iter()
                .all(|d| d.ends_with("duplicate") || d.ends_with("refund succeeded")),
            "{kinds:?}"
        );
        assert_eq!(order(&app, &no).await.refunded_fen, 5000);
        // Pending orders cannot be refunded; unknown orders are 404; bad numbers are 400.
        let pending = create_ok(&app, &token, "alipay", 1).await;
        let (status, body) = refund(&app, &admin, json!({"order_no": pending})).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (409, Some("order_not_paid"))
        );
        let (status, _) = refund(&app, &admin, json!({"order_no": "FP-nope-000000"})).await;
        assert_eq!(status, 404);
        let (status, body) = refund(
            &app,
            &admin,
            json!({"order_no": no, "out_refund_no": "bad no"}),
        )
        .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("invalid_refund_no"))
        );
    }
);

both_backends!(
    wechat_refund_completes_by_notification,
    &emu(),
    |app: TestApp| async move {
        let token = app.signup("wx-refund").await;
        let admin = app.admin("wx-admin").await;
        let no = paid_order(&app, &token, "wechat", 4).await; // basic membership, 30 days
        let before = me(&app, &token).await;
        let (status, body) =
            refund(&app, &admin, json!({"order_no": no, "reason": "测试退款"})).await;
        assert_eq!(status, 200, "{body}");
        // WeChat answers PROCESSING; REFUND.SUCCESS arrives shortly after.
        let out_refund_no = body["out_refund_no"].as_str().unwrap().to_string();
        eventually(|| async { order(&app, &no).await.status.as_str() == "refunded" }).await;
        assert_eq!(order(&app, &no).await.status.as_str(), "refunded");
        let r = fenpay::db::refunds::find(&app.state.db, &out_refund_no)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.status.as_str(), "succeeded");
        assert!(r.provider_refund_id.is_some());
        // The 30 days of membership are taken back: it ends now (never before now).
        let after = me(&app, &token).await;
        let exp = |v: &Value| {
            chrono::DateTime::parse_from_rfc3339(v["membership_expires_at"].as_str().unwrap())
                .unwrap()
        };
        let taken = exp(&before) - exp(&after);
        assert!(
            taken.num_hours() >= 30 * 24 - 1 && taken.num_days() <= 30,
            "{taken}"
        );
        assert!(exp(&after) <= chrono::Utc::now());
        let records = app.records(&no).await;
        assert!(
            records
                .iter()
                .any(|r| r.kind == "refund_notification" && r.verified),
            "{records:?}"
        );
    }
);

both_backends!(
    concurrent_refunds_never_exceed_the_payment,
    &emu(),
    |app: TestApp| async move {
        let token = app.signup("race-refund").await;
        let admin = app.admin("race-admin").await;
        let no = paid_order(&app, &token, "alipay", 1).await;
        let results = futures_util::future::join_all((0..6).map(|i| {
            refund(
                &app,
                &admin,
                json!({"order_no": no, "amount_fen": 600, "out_refund_no": format!("RF-race-{i}")}),
            )
        }))
        .await;
        let ok = results.iter().filter(|(s, _)| *s == 200).count();
        assert_eq!(ok, 1, "{results:?}");
        assert_eq!(order(&app, &no).await.refunded_fen, 600);
    }
);

// ---- admin views ----------------------------------------------------------------------

both_backends!(
    admin_lists_filters_and_totals,
    &emu(),
    |app: TestApp| async move {
        let alice = app.signup("alice").await;
        let bob = app.signup("bob").await;
        let admin = app.admin("boss").await;
        let a1 = paid_order(&app, &alice, "wechat", 1).await;
        let _a2 = paid_order(&app, &alice, "alipay", 2).await;
        let _b1 = create_ok(&app, &bob, "wechat", 3).await;
        let (status, body) = app.get("/api/v1/admin/orders", Some(&alice)).await;
        assert_eq!(status, 403, "{body}");
        let (_, all) = app.get("/api/v1/admin/orders", Some(&admin)).await;
        assert_eq!(all["total"], 3);
        let (_, paid) = app
            .get(
                "/api/v1/admin/orders?status=paid&provider=wechat",
                Some(&admin),
            )
            .await;
        assert_eq!(paid["total"], 1);
        assert_eq!(paid["items"][0]["order"]["order_no"], a1.as_str());
        assert_eq!(paid["items"][0]["username"], "alice");
        let (_, bobs) = app.get("/api/v1/admin/orders?user=bob", Some(&admin)).await;
        assert_eq!(bobs["total"], 1);
        // Days are those of the business time zone (default Asia/Shanghai, UTC+8).
        let today = (chrono::Utc::now() + chrono::Duration::hours(8)).date_naive();
        let (_, range) = app
            .get(
                &format!("/api/v1/admin/orders?from={today}&to={today}&per_page=2"),
                Some(&admin),
            )
            .await;
        assert_eq!(
            (
                range["total"].as_i64(),
                range["items"].as_array().unwrap().len()
            ),
            (Some(3), 2)
        );
        let (status, body) = app
            .get("/api/v1/admin/orders?from=2026-13-01", Some(&admin))
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("invalid_query"))
        );
        let (status, body) = app
            .get("/api/v1/admin/orders?status=weird", Some(&admin))
            .await;
        assert_eq!(status, 400, "{body}");
        let (_, stats) = app.get("/api/v1/admin/stats", Some(&admin)).await;
        assert_eq!(stats["total_paid_fen"], 6000, "{stats}");
        assert_eq!(stats["total_paid_count"], 2);
        let days = stats["days"].as_array().unwrap();
        assert_eq!(days.len(), 2, "one row per provider: {stats}");
        assert!(days.iter().all(|d| d["date"] == today.to_string()));
        let (status, _) = app
            .get(
                "/api/v1/admin/stats?from=2020-01-01&to=2026-01-01",
                Some(&admin),
            )
            .await;
        assert_eq!(status, 400);
        let (status, _) = app
            .get("/api/v1/admin/orders/FPnope00000000", Some(&admin))
            .await;
        assert_eq!(status, 404);
    }
);

// ---- Idempotency-Key ------------------------------------------------------------------

async fn post_with_key(
    app: &TestApp,
    path: &str,
    key: &str,
    body: &Value,
    token: &str,
) -> (u16, Value, bool) {
    let resp = app
        .client
        .post(app.url(path))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .unwrap();
    let replayed = resp.headers().get("idempotent-replayed").is_some();
    let (status, body) = fenpay_tests::into_json(resp).await;
    (status, body, replayed)
}

both_backends!(
    idempotency_keys_replay_and_refuse_reuse,
    &emu(),
    |app: TestApp| async move {
        let token = app.signup("idem").await;
        let body = json!({"product_type": "points", "product_id": 1, "payment_method": "wechat"});
        let (s1, b1, r1) =
            post_with_key(&app, "/api/v1/payment/create-order", "key-1", &body, &token).await;
        let (s2, b2, r2) =
            post_with_key(&app, "/api/v1/payment/create-order", "key-1", &body, &token).await;
        assert_eq!((s1, s2, r1, r2), (200, 200, false, true));
        assert_eq!(b1, b2, "the stored response is replayed");
        let (_, list) = app.get("/api/v1/payment/orders", Some(&token)).await;
        assert_eq!(list["total"], 1, "only one order was created");
        let other = json!({"product_type": "points", "product_id": 2, "payment_method": "wechat"});
        let (s3, b3, _) = post_with_key(
            &app,
            "/api/v1/payment/create-order",
            "key-1",
            &other,
            &token,
        )
        .await;
        assert_eq!(
            (s3, b3["code"].as_str()),
            (422, Some("idempotency_key_reused"))
        );
        // Keys are per user: another buyer's identical key is independent.
        let token2 = app.signup("idem2").await;
        let (s4, b4, r4) = post_with_key(
            &app,
            "/api/v1/payment/create-order",
            "key-1",
            &body,
            &token2,
        )
        .await;
        assert_eq!((s4, r4), (200, false));
        assert_ne!(b4["order_no"], b1["order_no"]);
        // Cancel-order: errors are replayed too (4xx), so a retry sees the same answer.
        let no = b1["order_no"].as_str().unwrap();
        let cancel = json!({"order_no": no});
        let (c1, _, _) =
            post_with_key(&app, "/api/v1/payment/cancel-order", "c-1", &cancel, &token).await;
        let (c2, _, cr2) =
            post_with_key(&app, "/api/v1/payment/cancel-order", "c-1", &cancel, &token).await;
        assert_eq!((c1, c2, cr2), (200, 200, true));
        let (s5, b5, _) =
            post_with_key(&app, "/api/v1/payment/create-order", "", &body, &token).await;
        assert_eq!(
            (s5, b5["code"].as_str()),
            (400, Some("invalid_idempotency_key"))
        );
        // After 24 hours the key is forgotten: the same request makes a new order.
        app.sql("UPDATE idempotency_keys SET expires_at = '2020-01-01 00:00:00'")
            .await;
        let (s6, b6, r6) =
            post_with_key(&app, "/api/v1/payment/create-order", "key-1", &body, &token).await;
        assert_eq!((s6, r6), (200, false));
        assert_ne!(b6["order_no"], b1["order_no"]);
        // A failed provider call (502) is not stored: the retry runs again.
        faults(&app, json!({"fail_requests_next": 1})).await;
        let (s7, _, _) =
            post_with_key(&app, "/api/v1/payment/create-order", "key-2", &body, &token).await;
        let (s8, _, r8) =
            post_with_key(&app, "/api/v1/payment/create-order", "key-2", &body, &token).await;
        assert_eq!((s7, s8, r8), (502, 200, false));
    }
);

// A refund under an Idempotency-Key whose answer was a 5xx (the key is then forgotten, so
// the client may retry) must not refund twice when retried: without `out_refund_no`, its
// number comes from the key, and the retry finds the refund the first try reserved.
both_backends!(
    a_refund_retried_after_a_5xx_under_the_same_key_refunds_once,
    &emu(),
    |app: TestApp| async move {
        let token = app.signup("idem-refund").await;
        let admin = app.admin("idem-admin").await;
        let no = paid_order(&app, &token, "alipay", 1).await;
        let (_, order) = app
            .get(
                &format!("/api/v1/payment/order-status?order_no={no}"),
                Some(&token),
            )
            .await;
        let part = order["amount_fen"].as_i64().unwrap() / 3;
        let body = json!({"order_no": no, "amount_fen": part});
        let (s1, b1, _) =
            post_with_key(&app, "/api/v1/admin/refunds", "refund-1", &body, &admin).await;
        assert_eq!(s1, 200, "{b1}");
        // What a 5xx after the reservation leaves: the refund exists, the key does not.
        app.sql("DELETE FROM idempotency_keys").await;
        let (s2, b2, r2) =
            post_with_key(&app, "/api/v1/admin/refunds", "refund-1", &body, &admin).await;
        assert_eq!((s2, r2), (200, false), "{b2}");
        assert_eq!(b2["out_refund_no"], b1["out_refund_no"], "{b2}");
        let refunds = fenpay::db::refunds::for_order(&app.state.db, &no)
            .await
            .unwrap();
        assert_eq!(refunds.len(), 1, "one refund, not two: {refunds:?}");
        // Another key is another refund.
        let (s3, b3, _) =
            post_with_key(&app, "/api/v1/admin/refunds", "refund-2", &body, &admin).await;
        assert_eq!(s3, 200, "{b3}");
        assert_ne!(b3["out_refund_no"], b1["out_refund_no"]);
    }
);

// ---- live status (SSE) ------------------------------------------------------------------

both_backends!(
    live_status_streams_the_payment,
    &emu(),
    |app: TestApp| async move {
        let token = app.signup("live").await;
        let no = create_ok(&app, &token, "wechat", 1).await;
        let (status, tok) = app
            .post(
                &format!("/api/v1/payment/orders/{no}/stream-token"),
                &json!({}),
                Some(&token),
            )
            .await;
        assert_eq!(status, 200, "{tok}");
        let url = app.url(tok["url"].as_str().unwrap());
        let resp = app.client.get(&url).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        let reader = tokio::spawn(sse_statuses(resp, "paid"));
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        pay_at_emulator(&app, "wechat", &no).await;
        let seen = reader.await.unwrap();
        assert_eq!(seen, ["pending", "paid"]);
        // The token opens this order only, and is not an API token.
        let other = create_ok(&app, &token, "wechat", 1).await;
        let bad = app
            .client
            .get(app.url(&format!(
                "/api/v1/payment/orders/{other}/events?token={}",
                tok["token"].as_str().unwrap()
            )))
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), 401);
        let (status, _) = app
            .get("/api/v1/auth/me", Some(tok["token"].as_str().unwrap()))
            .await;
        assert_eq!(status, 401);
        // Bearer auth works too; another user's order is 404.
        let resp = app
            .client
            .get(app.url(&format!("/api/v1/payment/orders/{no}/events")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(sse_statuses(resp, "paid").await, ["paid"]);
        let stranger = app.signup("stranger").await;
        let (status, _) = app
            .post(
                &format!("/api/v1/payment/orders/{no}/stream-token"),
                &json!({}),
                Some(&stranger),
            )
            .await;
        assert_eq!(status, 404);
        let (status, _) = app
            .get(&format!("/api/v1/payment/orders/{no}/events"), None)
            .await;
        assert_eq!(status, 401);
    }
);

// ---- webhooks -------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_signed_retried_logged_and_resent() {
    let rx = WebhookReceiver::default();
    let hook = rx.start().await;
    let tg = hook.trim_end_matches("/hooks").to_string();
    let mut o = emu();
    o.extend([
        ("WEBHOOK_SECRET", TEST_WEBHOOK_SECRET),
        ("WEBHOOK_BACKOFF_BASE_SECS", "1"),
        ("DISPATCH_INTERVAL_SECS", "1"),
        ("TELEGRAM_BOT_TOKEN", "123456:TEST-token"),
        ("TELEGRAM_CHAT_ID", "42"),
    ]);
    o.push(("WEBHOOK_URLS", &hook));
    o.push(("TELEGRAM_API_BASE", &tg));
    let app = TestApp::sqlite(&o).await;
    *rx.fail_first.lock().unwrap() = 2;
    let token = app.signup("hooked").await;
    let no = paid_order(&app, &token, "wechat", 1).await;
    // order.created + order.paid, each delivered once after two 500s, signed.
    eventually(|| async { rx.got.lock().unwrap().len() >= 2 }).await;
    let got = rx.got.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got.iter().all(|(_, _, valid)| *valid));
    let types: Vec<&str> = got.iter().map(|(_, t, _)| t.as_str()).collect();
    assert!(types.contains(&"order.created") && types.contains(&"order.paid"));
    // Telegram heard about the new and the paid order, token never logged.
    let tg_msgs = rx.telegram.lock().unwrap().clone();
    assert_eq!(tg_msgs.len(), 2, "{tg_msgs:?}");
    assert_eq!(tg_msgs[0]["chat_id"], "42");
    let admin = app.admin("hook-admin").await;
    let (_, list) = app
        .get(
            &format!("/api/v1/admin/webhooks/deliveries?order_no={no}"),
            Some(&admin),
        )
        .await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 4, "{list}");
    let attempts: i64 = items.iter().map(|d| d["attempts"].as_i64().unwrap()).sum();
    assert_eq!(attempts, 6, "2 failures logged before success: {list}");
    assert!(items.iter().all(|d| d["status"] == "delivered"));
    let dump = list.to_string();
    assert!(!dump.contains("TEST-token"), "bot token leaked: {dump}");
    // A receiver down for longer than the retry window: the delivery gives up...
    *rx.fail_first.lock().unwrap() = 1000;
    let (status, _) = app
        .post(
            "/api/v1/payment/cancel-order",
            &json!({"order_no": create_ok(&app, &token, "wechat", 1).await}),
            Some(&token),
        )
        .await;
    assert_eq!(status, 200);
    app.sql(
        "UPDATE webhook_deliveries SET created_at = '2020-01-01 00:00:00' WHERE status = 'pending'",
    )
    .await;
    let mut failed = Value::Null;
    for _ in 0..100 {
        let (_, l) = app
            .get(
                "/api/v1/admin/webhooks/deliveries?status=failed",
                Some(&admin),
            )
            .await;
        if l["total"].as_i64() >= Some(1) {
            failed = l;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(failed["total"].as_i64() >= Some(1), "nothing gave up");
    // ...and an operator resends it once the receiver is fixed.
    *rx.fail_first.lock().unwrap() = 0;
    let before = rx.got.lock().unwrap().len();
    for d in failed["items"].as_array().unwrap() {
        let id = d["id"].as_i64().unwrap();
        let (status, body) = app
            .post(
                &format!("/api/v1/admin/webhooks/deliveries/{id}/resend"),
                &json!({}),
                Some(&admin),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    eventually(|| async { rx.got.lock().unwrap().len() > before }).await;
    assert!(rx.got.lock().unwrap().len() > before);
    let (status, _) = app
        .post(
            "/api/v1/admin/webhooks/deliveries/999999/resend",
            &json!({}),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 404);
}

// ---- faults around jobs and refunds -------------------------------------------------------

fn auto_refund() -> Vec<(&'static str, &'static str)> {
    let mut o = emu();
    o.push(("AUTO_REFUND_PAID_AFTER_CLOSE", "true"));
    o
}

both_backends!(
    late_payment_is_refunded_automatically_when_configured,
    &auto_refund(),
    |app: TestApp| async move {
        let token = app.signup("late-auto").await;
        let no = create_ok(&app, &token, "alipay", 1).await;
        faults(&app, json!({"drop_notifications_next": 1000})).await;
        pay_at_emulator(&app, "alipay", &no).await;
        // Our side cancelled meanwhile (the close raced the payment).
        assert!(
            fenpay::db::orders::cancel(&app.state.db, &no, "user", &Default::default())
                .await
                .unwrap()
                .is_some()
        );
        faults(&app, json!({})).await;
        // The provider resends the notification: paid after close -> fulfilled, flagged, refunded.
        let (status, body) = app
            .emulator_post(&format!("/__emulator/alipay/notify/{no}"), &json!({}))
            .await;
        assert!(status < 300, "{body}");
        eventually(|| async { order(&app, &no).await.status.as_str() == "refunded" }).await;
        let o = order(&app, &no).await;
        assert_eq!(o.status.as_str(), "refunded");
        assert!(o.needs_review);
        assert_eq!(o.refunded_fen, 1000);
        let refunds = fenpay::db::refunds::for_order(&app.state.db, &no)
            .await
            .unwrap();
        assert_eq!(refunds.len(), 1);
        assert_eq!(refunds[0].requested_by, "system");
        assert_eq!(refunds[0].out_refund_no, format!("RC{}", &no[2..]));
        // Points credited by the late payment were taken back with the refund.
        assert_eq!(me(&app, &token).await["points_balance"], 0);
        let types = event_types(&app, &no).await;
        for t in [
            "order.cancelled",
            "order.paid",
            "order.paid_after_close",
            "order.refunded",
        ] {
            assert!(types.contains(&t.to_string()), "{t} missing: {types:?}");
        }
    }
);

both_backends!(
    late_payment_and_its_refund_commit_together,
    &auto_refund(),
    |app: TestApp| async move {
        let token = app.signup("late-atomic").await;
        let no = create_ok(&app, &token, "alipay", 1).await;
        faults(&app, json!({"drop_notifications_next": 1000})).await;
        pay_at_emulator(&app, "alipay", &no).await;
        fenpay::db::orders::cancel(&app.state.db, &no, "user", &Default::default())
            .await
            .unwrap();
        faults(&app, json!({})).await;
        // Refunds cannot be written for a while (a failing disk, a broken constraint...).
        let (install, remove): (&[&str], &str) = match app.backend {
            Backend::Postgres => (
                &[
                    "CREATE FUNCTION refunds_down() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'refunds down'; END $$ LANGUAGE plpgsql",
                    "CREATE TRIGGER refunds_down BEFORE INSERT ON refunds FOR EACH ROW EXECUTE FUNCTION refunds_down()",
                ],
                "DROP TRIGGER refunds_down ON refunds",
            ),
            Backend::Sqlite => (
                &["CREATE TRIGGER refunds_down BEFORE INSERT ON refunds BEGIN SELECT RAISE(ABORT, 'refunds down'); END"],
                "DROP TRIGGER refunds_down",
            ),
        };
        for sql in install {
            app.sql(sql).await;
        }
        // The late payment arrives: it cannot be applied without its refund, so it is not
        // applied at all (the provider resends) rather than credited and never refunded.
        app.emulator_post(&format!("/__emulator/alipay/notify/{no}"), &json!({}))
            .await;
        let o = order(&app, &no).await;
        assert_eq!(o.status.as_str(), "cancelled", "applied without its refund");
        app.sql(remove).await;
        // The provider's next resend applies both.
        app.emulator_post(&format!("/__emulator/alipay/notify/{no}"), &json!({}))
            .await;
        eventually(|| async { order(&app, &no).await.status.as_str() == "refunded" }).await;
        let o = order(&app, &no).await;
        assert!(o.needs_review);
        assert_eq!(o.refunded_fen, 1000);
        assert_eq!(me(&app, &token).await["points_balance"], 0);
    }
);

both_backends!(
    refund_faults_abnormal_closed_and_refused,
    &emu(),
    |app: TestApp| async move {
        let token = app.signup("abnormal").await;
        let admin = app.admin("abnormal-admin").await;
        let wait_refund = |no: &'static str, cond: fn(&fenpay::db::refunds::RefundRow) -> bool| {
            let db = app.state.db.clone();
            async move {
                for _ in 0..200 {
                    let row = fenpay::db::refunds::find(&db, no).await.unwrap().unwrap();
                    if cond(&row) {
                        return row;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                panic!("refund {no} never reached the expected state");
            }
        };
        // ABNORMAL (money stuck on the way to the payer): stays reserved, order flagged.
        let no = paid_order(&app, &token, "wechat", 1).await;
        faults(&app, json!({"refund_abnormal_next": 1})).await;
        let (status, body) = refund(
            &app,
            &admin,
            json!({"order_no": no, "out_refund_no": "RF-abnormal-1"}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "processing");
        let r = wait_refund("RF-abnormal-1", |r| r.failure.is_some()).await;
        assert_eq!(r.status.as_str(), "processing");
        let o = order(&app, &no).await;
        assert_eq!(
            (o.status.as_str(), o.refunded_fen, o.needs_review),
            ("paid", 0, true)
        );
        assert!(o.review_reason.unwrap().contains("RF-abnormal-1"));
        assert_eq!(
            me(&app, &token).await["points_balance"],
            100,
            "nothing clawed back"
        );
        let (status, body) = refund(&app, &admin, json!({"order_no": no})).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("invalid_refund_amount")),
            "{body}"
        );
        // CLOSED: nothing refunded, the amount is refundable again.
        let no2 = paid_order(&app, &token, "wechat", 1).await;
        faults(&app, json!({"hold_refunds": true})).await;
        let (status, body) = refund(
            &app,
            &admin,
            json!({"order_no": no2, "out_refund_no": "RF-closed-1"}),
        )
        .await;
        assert_eq!(
            (status, body["status"].as_str()),
            (200, Some("processing")),
            "{body}"
        );
        let (status, body) = app
            .emulator_post(
                "/__emulator/wechat/refunds/RF-closed-1/settle",
                &json!({"status": "CLOSED"}),
            )
            .await;
        assert!(status < 300, "{body}");
        let r = wait_refund("RF-closed-1", |r| r.status.as_str() != "processing").await;
        assert_eq!(r.status.as_str(), "failed");
        faults(&app, json!({})).await;
        let (status, body) = refund(
            &app,
            &admin,
            json!({"order_no": no2, "out_refund_no": "RF-closed-2"}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["amount_fen"], 1000);
        // The provider refusing outright is a clear 409 and frees the amount at once.
        let no3 = paid_order(&app, &token, "alipay", 1).await;
        faults(&app, json!({"refund_not_enough_next": 1})).await;
        let (status, body) = refund(&app, &admin, json!({"order_no": no3})).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (409, Some("refund_rejected")),
            "{body}"
        );
        let (status, body) = refund(&app, &admin, json!({"order_no": no3})).await;
        assert_eq!(
            (status, body["status"].as_str()),
            (200, Some("succeeded")),
            "{body}"
        );
    }
);

both_backends!(
    reconciler_retries_transient_provider_failures,
    &emu(),
    |app: TestApp| async move {
        let token = app.signup("flaky").await;
        let no = create_ok(&app, &token, "wechat", 1).await;
        faults(&app, json!({"drop_notifications_next": 1000})).await;
        pay_at_emulator(&app, "wechat", &no).await;
        app.sql("UPDATE orders SET created_at = '2020-01-01 00:00:00'")
            .await;
        // Two failed queries, then the provider answers: within PAYMENT_QUERY_RETRY_MAX.
        faults(
            &app,
            json!({"drop_notifications_next": 1000, "fail_requests_next": 2}),
        )
        .await;
        let report = fenpay::jobs::reconcile_once(&app.state).await;
        assert_eq!((report.paid, report.errors), (1, 0), "{report:?}");
        assert_eq!(order(&app, &no).await.status.as_str(), "paid");
        // A provider that stays down: the pass reports the error and the order stays pending.
        let no2 = create_ok(&app, &token, "wechat", 1).await;
        app.sql("UPDATE orders SET created_at = '2020-01-01 00:00:00'")
            .await;
        faults(&app, json!({"fail_requests_next": 100})).await;
        let report = fenpay::jobs::reconcile_once(&app.state).await;
        assert_eq!((report.paid, report.errors), (0, 1), "{report:?}");
        assert_eq!(order(&app, &no2).await.status.as_str(), "pending");
    }
);

// ---- retention ------------------------------------------------------------------------------

fn retention_overrides() -> Vec<(&'static str, &'static str)> {
    let mut o = emu();
    o.extend([
        ("JOBS_ENABLED", "false"),
        // Deliveries are made for each event; nothing listens (the test sets their states).
        ("WEBHOOK_URLS", "http://127.0.0.1:9/hooks"),
        ("WEBHOOK_SECRET", TEST_WEBHOOK_SECRET),
    ]);
    o
}

/// Rows matching `filter` in `table` (an UPDATE that changes nothing counts them).
async fn rows(app: &TestApp, table: &str, column: &str, filter: &str) -> usize {
    app.sql(&format!(
        "UPDATE {table} SET {column} = {column} WHERE {filter}"
    ))
    .await
}

const RECORD_KINDS: [&str; 7] = [
    "prepay",
    "query",
    "close",
    "notification",
    "refund",
    "refund_query",
    "refund_notification",
];
const RECORD_DECISIONS: [&str; 6] = [
    "ok",
    "Duplicate",
    "Applied",
    "PaidAfterCancel",
    "error: timed out",
    "rejected: amount differs",
];

both_backends!(
    retention_purges_what_is_past_its_window_and_keeps_the_audit_trail,
    &retention_overrides(),
    |app: TestApp| async move {
        use api_types::payment::OrderStatus;
        use fenpay::domain::retention::{record_may_go, RecordOrder};
        let token = app.signup("retention").await;
        let paid = paid_order(&app, &token, "wechat", 1).await;
        let cancelled = create_ok(&app, &token, "alipay", 1).await;
        let (status, _) = app
            .post(
                "/api/v1/payment/cancel-order",
                &json!({"order_no": cancelled}),
                Some(&token),
            )
            .await;
        assert_eq!(status, 200);
        // Orders in every state a record can meet: refunded, held for review, pending.
        let refunded = paid_order(&app, &token, "alipay", 1).await;
        app.sql(&format!(
            "UPDATE orders SET status = 'refunded', refunded_fen = amount_fen WHERE order_no = '{refunded}'"
        ))
        .await;
        let held = create_ok(&app, &token, "wechat", 1).await;
        app.sql(&format!(
            "UPDATE orders SET needs_review = true, review_reason = 'test' WHERE order_no = '{held}'"
        ))
        .await;
        let pending = create_ok(&app, &token, "wechat", 1).await;
        let known = [
            (paid.clone(), OrderStatus::Paid, false),
            (cancelled.clone(), OrderStatus::Cancelled, false),
            (refunded.clone(), OrderStatus::Refunded, false),
            (held.clone(), OrderStatus::Pending, true),
            (pending.clone(), OrderStatus::Pending, false),
        ];
        // Every kind x decision x verified, on each of them, on an order we do not have and
        // on none, two years old (marked `combo`).
        let mut targets: Vec<(String, RecordOrder)> = known
            .iter()
            .map(|(no, status, needs_review)| {
                let order = RecordOrder::Known {
                    status: *status,
                    needs_review: *needs_review,
                };
                (format!("'{no}'"), order)
            })
            .collect();
        targets.push(("'FP-no-such-order'".into(), RecordOrder::Unknown));
        targets.push(("NULL".into(), RecordOrder::Unknown));
        for (order_no, _) in &targets {
            let mut values = Vec::new();
            for kind in RECORD_KINDS {
                for decision in RECORD_DECISIONS {
                    for verified in [true, false] {
                        values.push(format!(
                            "({order_no}, 'wechat', '{kind}', 'combo', '', {verified}, \
                             '{decision}', '2020-01-01 00:00:00')"
                        ));
                    }
                }
            }
            app.sql(&format!(
                "INSERT INTO payment_records (order_no, provider, kind, headers, body, verified, \
                 decision, created_at) VALUES {}",
                values.join(", ")
            ))
            .await;
        }
        // The flow's own records are two years old too; the deliveries of the paid order
        // arrived, the cancelled order's `order.cancelled` delivery gave up, each with an
        // attempt.
        app.sql("UPDATE payment_records SET created_at = '2020-01-01 00:00:00'")
            .await;
        app.sql("UPDATE outbox_events SET created_at = '2020-01-01 00:00:00'")
            .await;
        app.sql("UPDATE webhook_deliveries SET status = 'delivered'")
            .await;
        let gave_up = format!(
            "event_id IN (SELECT id FROM outbox_events WHERE order_no = '{cancelled}' \
             AND event_type = 'order.cancelled')"
        );
        assert_eq!(
            app.sql(&format!(
                "UPDATE webhook_deliveries SET status = 'failed' WHERE {gave_up}"
            ))
            .await,
            1
        );
        app.sql(
            "INSERT INTO webhook_attempts (delivery_id, attempt, status_code, duration_ms, \
             created_at) SELECT id, 1, 200, 5, '2020-01-01 00:00:00' FROM webhook_deliveries",
        )
        .await;
        let attempts_kept = rows(
            &app,
            "webhook_attempts",
            "id",
            &format!("delivery_id IN (SELECT id FROM webhook_deliveries WHERE {gave_up})"),
        )
        .await;
        assert_eq!(attempts_kept, 1);
        app.sql(
            "INSERT INTO idempotency_keys (user_id, route, idem_key, request_hash, created_at, \
             expires_at) VALUES ('u', 'r', 'k', 'h', '2020-01-01 00:00:00', '2020-01-02 00:00:00')",
        )
        .await;
        // A recent order: inside every window.
        let recent = create_ok(&app, &token, "wechat", 1).await;
        let records_before = rows(&app, "payment_records", "id", "1 = 1").await;

        let report = fenpay::jobs::retention::purge_once(&app.state)
            .await
            .unwrap();

        // The database kept exactly what the rule keeps, combination by combination.
        for (order_no, order) in &targets {
            let on = if order_no == "NULL" {
                "order_no IS NULL".to_string()
            } else {
                format!("order_no = {order_no}")
            };
            for kind in RECORD_KINDS {
                for decision in RECORD_DECISIONS {
                    for verified in [true, false] {
                        let filter = format!(
                            "{on} AND headers = 'combo' AND kind = '{kind}' AND decision = \
                             '{decision}' AND verified = {verified}"
                        );
                        let left = rows(&app, "payment_records", "id", &filter).await;
                        let keep = !record_may_go(kind, decision, verified, *order);
                        assert_eq!(left, usize::from(keep), "{filter}");
                    }
                }
            }
        }
        // The paid order keeps its audit trail: the prepay call and the applied
        // notification; the never-paid order's records are gone; the recent ones stay.
        let kept: Vec<(String, String)> = app
            .records(&paid)
            .await
            .into_iter()
            .map(|r| (r.kind, r.decision))
            .collect();
        assert!(kept.iter().any(|(k, _)| k == "prepay"), "{kept:?}");
        assert!(
            kept.iter()
                .any(|(k, d)| k == "notification" && d == "Applied"),
            "{kept:?}"
        );
        assert!(app
            .records(&cancelled)
            .await
            .iter()
            .all(|r| r.headers == "combo"));
        assert!(!app.records(&recent).await.is_empty());
        let records_after = rows(&app, "payment_records", "id", "1 = 1").await;
        assert_eq!(report.payment_records, records_before - records_after);
        // Delivered events went with their deliveries and attempts; the one that gave up
        // stays (with its attempt) for an operator to resend, and so do recent ones.
        let left_events = |no: String| {
            let app = &app;
            async move { rows(app, "outbox_events", "id", &format!("order_no = '{no}'")).await }
        };
        assert_eq!(left_events(paid.clone()).await, 0);
        assert_eq!(left_events(cancelled.clone()).await, 1);
        assert!(left_events(recent.clone()).await >= 1);
        assert_eq!(rows(&app, "webhook_deliveries", "id", &gave_up).await, 1);
        assert_eq!(
            rows(&app, "webhook_attempts", "id", "1 = 1").await,
            attempts_kept
        );
        assert!(report.events >= 3, "{report:?}");
        assert_eq!(report.idempotency_keys, 1);
        // A second purge finds nothing more.
        let again = fenpay::jobs::retention::purge_once(&app.state)
            .await
            .unwrap();
        assert_eq!(again, fenpay::jobs::retention::RetentionReport::default());
    }
);
