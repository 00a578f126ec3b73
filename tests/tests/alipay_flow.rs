//! Orders paid through Alipay against the emulator, on both backends: QR (precreate) and
//! page pay end to end, notification checks, races and lost notifications. The flows run
//! in both Alipay key modes (public key, and certificate mode with the dev key set's TEST
//! chain).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use fenpay_tests::notices::alipay_notification as notification;
use fenpay_tests::{both_alipay_modes, both_backends, into_json, TestApp};
use serde_json::{json, Value};

fn emu() -> Vec<(&'static str, &'static str)> {
    TestApp::emulator_overrides()
}

async fn create(app: &TestApp, token: &str, product_id: i64, channel: &str) -> Value {
    let kind = if product_id >= 4 {
        "membership"
    } else {
        "points"
    };
    let (status, body) = app
        .post(
            "/api/v1/payment/create-order",
            &json!({"product_type": kind, "product_id": product_id, "payment_method": "alipay", "channel": channel}),
            Some(token),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn me(app: &TestApp, token: &str) -> Value {
    app.get("/api/v1/auth/me", Some(token)).await.1
}

async fn notify(app: &TestApp, form: String) -> (u16, String) {
    let resp = app
        .client
        .post(app.url("/api/v1/payment/alipay/callback"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

both_alipay_modes!(qr_flow_paid_by_notification, |app: TestApp| async move {
    let token = app.signup("ali").await;
    let order = create(&app, &token, 1, "native").await;
    let order_no = order["order_no"].as_str().unwrap();
    assert!(
        order["qr_code_url"]
            .as_str()
            .unwrap()
            .starts_with("https://qr.alipay.com/"),
        "{order}"
    );
    let (status, body) = app
        .emulator_post(&format!("/__emulator/alipay/pay/{order_no}"), &json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    app.wait_in_db(order_no, "paid").await;
    let paid = app.wait_for_status(&token, order_no, "paid").await;
    assert!(paid["provider_transaction_id"].is_string());
    assert_eq!(me(&app, &token).await["points_balance"], 100);
    let records = app.records(order_no).await;
    assert!(
        records
            .iter()
            .any(|r| r.provider == "alipay" && r.verified && r.decision == "Applied"),
        "{records:?}"
    );
});

both_alipay_modes!(page_pay_in_a_browser_like_flow, |app: TestApp| async move {
    let token = app.signup("desk").await;
    let order = create(&app, &token, 4, "page").await;
    let order_no = order["order_no"].as_str().unwrap();
    let pay_url = order["pay_url"].as_str().unwrap().to_string();
    // Not opened yet: the provider does not know the trade, the order stays pending.
    let (_, status_body) = app
        .get(
            &format!("/api/v1/payment/order-status?order_no={order_no}"),
            Some(&token),
        )
        .await;
    assert_eq!(status_body["status"], "pending");
    // The buyer opens the cashier...
    let page = app.client.get(&pay_url).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("emulator-pay"), "{html}");
    // ...clicks Pay and is sent back to our return URL with signed parameters.
    let resp = app
        .client
        .post(format!(
            "{}/__emulator/alipay/cashier/{order_no}/pay",
            app.emulator()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    let back = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(
        back.starts_with(&app.url("/api/v1/payment/alipay/return")),
        "{back}"
    );
    let ret = app.client.get(&back).send().await.unwrap();
    assert_eq!(ret.status().as_u16(), 302);
    assert!(ret.headers()["location"]
        .to_str()
        .unwrap()
        .contains(order_no));
    // A tampered return is refused.
    let (status, body) = into_json(
        app.client
            .get(back.replace("total_amount=", "total_amount=1"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_signature"))
    );

    app.wait_for_status(&token, order_no, "paid").await;
    let account = me(&app, &token).await;
    assert_eq!(account["membership_tier"], "basic");
    assert!(account["membership_expires_at"].is_string());
});

both_alipay_modes!(
    notifications_are_checked_and_idempotent,
    |app: TestApp| async move {
        let token = app.signup("checker").await;
        let order = create(&app, &token, 1, "native").await;
        let order_no = order["order_no"].as_str().unwrap().to_string();

        // Forged (tampered after signing), wrong amount, wrong app_id: "fail", nothing changes.
        let forged = notification(&order_no, "10.00", |_| {})
            .replace("total_amount=10.00", "total_amount=0.01");
        assert_eq!(notify(&app, forged).await.1, "fail");
        assert_eq!(
            notify(&app, notification(&order_no, "0.01", |_| {}))
                .await
                .1,
            "fail"
        );
        let wrong_app = notification(&order_no, "10.00", |p| {
            p.insert("app_id".into(), "2021009999999999".into());
        });
        assert_eq!(notify(&app, wrong_app).await.1, "fail");
        let (_, now) = app
            .get(
                &format!("/api/v1/payment/order-status?order_no={order_no}"),
                Some(&token),
            )
            .await;
        assert_eq!(now["status"], "pending");
        assert_eq!(me(&app, &token).await["points_balance"], 0);

        // The genuine one, five times at once: exactly `success` each time, credited once.
        let form = notification(&order_no, "10.00", |_| {});
        let mut tasks = Vec::new();
        for _ in 0..5 {
            let (client, url, form) = (
                app.client.clone(),
                app.url("/api/v1/payment/alipay/callback"),
                form.clone(),
            );
            tasks.push(tokio::spawn(async move {
                client
                    .post(url)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(form)
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap()
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), "success");
        }
        assert_eq!(me(&app, &token).await["points_balance"], 100);
    }
);

both_alipay_modes!(
    cancel_racing_payment_and_lost_notification,
    |app: TestApp| async move {
        let token = app.signup("late").await;
        app.emulator_post(
            "/__emulator/faults",
            &json!({"drop_notifications_next": 1000}),
        )
        .await;
        // Race: paid at Alipay, notification lost, buyer presses cancel -> paid wins.
        let order = create(&app, &token, 1, "native").await;
        let order_no = order["order_no"].as_str().unwrap();
        app.emulator_post(&format!("/__emulator/alipay/pay/{order_no}"), &json!({}))
            .await;
        let (status, body) = app
            .post(
                "/api/v1/payment/cancel-order",
                &json!({"order_no": order_no}),
                Some(&token),
            )
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (409, Some("order_already_paid")),
            "{body}"
        );
        assert_eq!(me(&app, &token).await["points_balance"], 100);

        // Lost notification recovered by order-status.
        let order = create(&app, &token, 2, "native").await;
        let order_no = order["order_no"].as_str().unwrap();
        app.emulator_post(&format!("/__emulator/alipay/pay/{order_no}"), &json!({}))
            .await;
        app.wait_for_status(&token, order_no, "paid").await;
        assert_eq!(me(&app, &token).await["points_balance"], 650);

        // A normal cancel closes the trade at Alipay (once the buyer scanned the code,
        // Alipay knows it; see cancelled_unscanned_qr_order_... for an unscanned one).
        let order = create(&app, &token, 1, "native").await;
        let order_no = order["order_no"].as_str().unwrap();
        app.emulator_post(&format!("/__emulator/alipay/scan/{order_no}"), &json!({}))
            .await;
        let (status, _) = app
            .post(
                "/api/v1/payment/cancel-order",
                &json!({"order_no": order_no}),
                Some(&token),
            )
            .await;
        assert_eq!(status, 200);
        let (status, _) = app
            .emulator_post(&format!("/__emulator/alipay/pay/{order_no}"), &json!({}))
            .await;
        assert_ne!(status, 200, "a closed trade cannot be paid");
    }
);

fn jobs_by_hand() -> Vec<(&'static str, &'static str)> {
    let mut vars = emu();
    vars.push(("JOBS_ENABLED", "false"));
    vars.push(("RECONCILE_MIN_AGE_SECS", "0"));
    vars
}

/// What our query of the order answered, newest first.
async fn queries(app: &TestApp, order_no: &str) -> Vec<String> {
    let mut bodies: Vec<String> = app
        .records(order_no)
        .await
        .into_iter()
        .filter(|r| r.kind == "query")
        .map(|r| r.body)
        .collect();
    bodies.reverse();
    bodies
}

// A QR (precreate) trade does not exist at Alipay until the buyer scans it: the
// reconciler's query answers ACQ.TRADE_NOT_EXIST, and the order stays pending and
// payable; after the scan the query says WAIT_BUYER_PAY, and the payment lands.
both_backends!(
    unscanned_qr_order_stays_pending_and_payable,
    &jobs_by_hand(),
    |app: TestApp| async move {
        let token = app.signup("qr-late").await;
        let order = create(&app, &token, 1, "native").await;
        let order_no = order["order_no"].as_str().unwrap();
        let report = fenpay::jobs::reconcile_once(&app.state).await;
        assert_eq!((report.queried, report.errors), (1, 0), "{report:?}");
        let seen = queries(&app, order_no).await;
        assert!(seen[0].contains("NotExist"), "{seen:?}");
        let (_, body) = app
            .get(
                &format!("/api/v1/payment/order-status?order_no={order_no}"),
                Some(&token),
            )
            .await;
        assert_eq!(body["status"], "pending");
        // The buyer scans: Alipay now knows the trade, still waiting for payment.
        let (status, body) = app
            .emulator_post(&format!("/__emulator/alipay/scan/{order_no}"), &json!({}))
            .await;
        assert_eq!(status, 200, "{body}");
        app.sql(&format!(
            "UPDATE orders SET last_query_at = NULL WHERE order_no = '{order_no}'"
        ))
        .await;
        let report = fenpay::jobs::reconcile_once(&app.state).await;
        assert_eq!(report.queried, 1, "{report:?}");
        let seen = queries(&app, order_no).await;
        assert!(seen[0].contains("Pending"), "{seen:?}");
        app.wait_in_db(order_no, "pending").await;
        let (status, body) = app
            .emulator_post(&format!("/__emulator/alipay/pay/{order_no}"), &json!({}))
            .await;
        assert_eq!(status, 200, "{body}");
        app.wait_in_db(order_no, "paid").await;
        assert_eq!(me(&app, &token).await["points_balance"], 100);
    }
);

// The close of an unscanned QR trade answers a verified ACQ.TRADE_NOT_EXIST: the order
// is cancelled locally (the established rule), but the QR code is still payable at
// Alipay until its time_expire. A buyer who scans and pays anyway (notifications lost)
// is found by the paid-after-close check: paid, fulfilled and held for review.
both_backends!(
    cancelled_unscanned_qr_order_is_still_checked_for_a_late_payment,
    &jobs_by_hand(),
    |app: TestApp| async move {
        let token = app.signup("qr-cancel").await;
        let order = create(&app, &token, 1, "native").await;
        let order_no = order["order_no"].as_str().unwrap();
        let (status, body) = app
            .post(
                "/api/v1/payment/cancel-order",
                &json!({"order_no": order_no}),
                Some(&token),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        app.wait_in_db(order_no, "cancelled").await;
        let records = app.records(order_no).await;
        assert!(
            records
                .iter()
                .any(|r| r.kind == "close" && r.decision.contains("does not exist")),
            "{records:?}"
        );
        app.emulator_post(
            "/__emulator/faults",
            &json!({"drop_notifications_next": 1000}),
        )
        .await;
        let (status, body) = app
            .emulator_post(&format!("/__emulator/alipay/pay/{order_no}"), &json!({}))
            .await;
        assert_eq!(
            (status, body["status"].as_str()),
            (200, Some("TRADE_SUCCESS")),
            "{body}"
        );
        // A minute after the cancel the reconciler checks the cancelled order.
        app.sql(&format!(
            "UPDATE orders SET updated_at = '{}' WHERE order_no = '{order_no}'",
            (chrono::Utc::now() - chrono::Duration::minutes(5))
                .naive_utc()
                .format("%Y-%m-%d %H:%M:%S")
        ))
        .await;
        let report = fenpay::jobs::reconcile_once(&app.state).await;
        assert_eq!(report.paid_after_close, 1, "{report:?}");
        let row = fenpay::db::orders::find(&app.state.db, order_no)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.status.as_str(), "paid");
        assert!(row.needs_review);
        assert_eq!(me(&app, &token).await["points_balance"], 100);
    }
);

// The sweeper's close of an expired, never scanned QR trade: TRADE_NOT_EXIST, the
// order is cancelled as expired, and the trade can no longer be paid at Alipay.
both_backends!(
    sweeper_cancels_an_expired_unscanned_qr_order,
    &jobs_by_hand(),
    |app: TestApp| async move {
        let token = app.signup("qr-expired").await;
        let order = create(&app, &token, 1, "native").await;
        let order_no = order["order_no"].as_str().unwrap();
        app.sql(&format!(
            "UPDATE orders SET expire_at = '2020-01-01 00:00:00' WHERE order_no = '{order_no}'"
        ))
        .await;
        let report = fenpay::jobs::sweep_once(&app.state).await;
        assert_eq!(report.cancelled, 1, "{report:?}");
        let row = fenpay::db::orders::find(&app.state.db, order_no)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (row.status.as_str(), row.cancel_reason.as_deref()),
            ("cancelled", Some("expired"))
        );
    }
);

fn cert_mode_jobs_by_hand() -> Vec<(&'static str, &'static str)> {
    let mut vars = TestApp::emulator_overrides_alipay("certificate");
    vars.push(("JOBS_ENABLED", "false"));
    vars.push(("RECONCILE_MIN_AGE_SECS", "0"));
    vars
}

// Certificate mode: an answer naming another `alipay_cert_sn` (Alipay rotated its
// certificate, ALIPAY_CERT_PATH is outdated) cannot be verified. The reconciler's query
// of a trade paid at Alipay (notification lost) changes nothing and counts an error;
// once the answers name the configured certificate again, the payment lands.
both_backends!(
    cert_mode_answer_under_another_alipay_cert_changes_nothing,
    &cert_mode_jobs_by_hand(),
    |app: TestApp| async move {
        let token = app.signup("rotated").await;
        let order = create(&app, &token, 1, "native").await;
        let order_no = order["order_no"].as_str().unwrap();
        let (status, body) = app
            .emulator_post(
                "/__emulator/faults",
                &json!({"drop_notifications_next": 1000}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = app
            .emulator_post(&format!("/__emulator/alipay/pay/{order_no}"), &json!({}))
            .await;
        assert_eq!(status, 200, "{body}");
        app.emulator_post(
            "/__emulator/faults",
            &json!({"drop_notifications_next": 1000, "alipay_cert_rotated_next": 1000}),
        )
        .await;
        let report = fenpay::jobs::reconcile_once(&app.state).await;
        assert_eq!((report.paid, report.errors), (0, 1), "{report:?}");
        app.wait_in_db(order_no, "pending").await;
        assert_eq!(me(&app, &token).await["points_balance"], 0);

        app.emulator_post(
            "/__emulator/faults",
            &json!({"drop_notifications_next": 1000}),
        )
        .await;
        app.sql(&format!(
            "UPDATE orders SET last_query_at = NULL WHERE order_no = '{order_no}'"
        ))
        .await;
        let report = fenpay::jobs::reconcile_once(&app.state).await;
        assert_eq!((report.paid, report.errors), (1, 0), "{report:?}");
        app.wait_in_db(order_no, "paid").await;
        assert_eq!(me(&app, &token).await["points_balance"], 100);
    }
);

// A notification signed by a key other than the Alipay certificate's is refused, in
// both modes; the genuine one is then accepted.
both_alipay_modes!(
    notification_signed_by_another_key_is_refused,
    |app: TestApp| async move {
        let token = app.signup("forger").await;
        let order = create(&app, &token, 1, "native").await;
        let order_no = order["order_no"].as_str().unwrap().to_string();
        let keys = fenpay_tests::dev_keys();
        // The app's own key: a well-formed RSA2 signature by the wrong party.
        let forged = fenpay_tests::notices::alipay_notification_signed_by(
            &order_no,
            "10.00",
            &keys.alipay_app_key,
        );
        assert_eq!(notify(&app, forged).await.1, "fail");
        app.wait_in_db(&order_no, "pending").await;
        assert_eq!(me(&app, &token).await["points_balance"], 0);
        let genuine = notification(&order_no, "10.00", |_| {});
        assert_eq!(notify(&app, genuine).await.1, "success");
        assert_eq!(me(&app, &token).await["points_balance"], 100);
    }
);

/// fenpay's own client with `ALIPAY_API=v3`: the server-side calls go to
/// `/v3/alipay/trade/...` (its gateway.do here is a dead address, so nothing can fall
/// back to it), page pay still builds a gateway.do URL, and an answer whose
/// `alipay-signature` does not verify is unverifiable: nothing is read from it.
#[tokio::test]
async fn v3_client_runs_the_server_calls_over_openapi_v3() {
    use api_types::payment::PaymentChannel;
    use fenpay::providers::alipay::{AlipayClient, AlipayClientConfig};
    use fenpay::providers::{
        PrepayRequest, ProviderError, RefundRequest, RemoteRefundState, RemoteTradeState,
    };

    let app = TestApp::sqlite(&emu()).await;
    let keys = fenpay::devkeys::DevKeys::load_or_generate(std::path::Path::new(
        fenpay_tests::shared_dev_keys_dir(),
    ))
    .unwrap();
    let dead_gateway = "http://127.0.0.1:9/gateway.do";
    let client = AlipayClient::new(AlipayClientConfig {
        app_id: "2021000000000001".into(),
        app_private_key: keys.alipay_app_key.clone(),
        alipay_public_key: keys.alipay_platform_key.public_key(),
        seller_id: None,
        gateway: dead_gateway.into(),
        v3_endpoint: Some(app.emulator()),
        notify_url: "http://127.0.0.1:9/notify".into(),
        cert_mode: None,
        return_url: "http://127.0.0.1:9/return".into(),
        timeout: std::time::Duration::from_secs(5),
    })
    .unwrap();
    let prepay = |no: &str, channel: PaymentChannel| PrepayRequest {
        out_trade_no: no.into(),
        description: "v3 client".into(),
        amount_fen: 1234,
        channel,
        expire_at: chrono::Utc::now() + chrono::Duration::minutes(30),
        openid: None,
        client_ip: "127.0.0.1".into(),
    };
    let no = format!("V3C{}", uuid::Uuid::new_v4().simple());

    let qr = client
        .prepay(&prepay(&no, PaymentChannel::Native))
        .await
        .unwrap();
    assert!(qr
        .qr_code_url
        .unwrap()
        .starts_with("https://qr.alipay.com/"));
    assert_eq!(
        client.query(&no).await.unwrap().state,
        RemoteTradeState::NotExist
    );
    app.emulator_post(&format!("/__emulator/alipay/scan/{no}"), &json!({}))
        .await;
    assert_eq!(
        client.query(&no).await.unwrap().state,
        RemoteTradeState::Pending
    );
    let (status, _) = app
        .emulator_post(&format!("/__emulator/alipay/pay/{no}"), &json!({}))
        .await;
    assert_eq!(status, 200);
    let trade = client.query(&no).await.unwrap();
    assert_eq!(trade.state, RemoteTradeState::Paid);
    assert_eq!(trade.amount_fen, Some(1234));

    let refund = RefundRequest {
        out_trade_no: no.clone(),
        out_refund_no: format!("{no}R1"),
        amount_fen: 234,
        total_fen: 1234,
        reason: Some("v3".into()),
    };
    let done = client.refund(&refund).await.unwrap();
    assert_eq!(done.state, RemoteRefundState::Succeeded);
    let queried = client.query_refund(&no, &format!("{no}R1")).await.unwrap();
    assert_eq!(
        (queried.state, queried.amount_fen),
        (RemoteRefundState::Succeeded, 234)
    );
    // A paid trade cannot be closed: the verified v3 error is read like gateway.do's.
    assert!(matches!(
        client.close(&no).await,
        Err(ProviderError::AlreadyPaid)
    ));

    // Close an unpaid, scanned trade.
    let open = format!("V3D{}", uuid::Uuid::new_v4().simple());
    client
        .prepay(&prepay(&open, PaymentChannel::Native))
        .await
        .unwrap();
    app.emulator_post(&format!("/__emulator/alipay/scan/{open}"), &json!({}))
        .await;
    client.close(&open).await.unwrap();
    assert_eq!(
        client.query(&open).await.unwrap().state,
        RemoteTradeState::Closed
    );

    // A spoiled alipay-signature: unverifiable, not "pending" or "paid".
    app.emulator_post("/__emulator/faults", &json!({"bad_signature_next": 1}))
        .await;
    assert!(matches!(
        client.query(&no).await,
        Err(ProviderError::InvalidResponse(_))
    ));

    // Page pay stays a signed gateway.do URL.
    let page = client
        .prepay(&prepay(&format!("{open}P"), PaymentChannel::Page))
        .await
        .unwrap();
    assert!(page.pay_url.unwrap().starts_with(dead_gateway));
}
