//! Orders paid through WeChat Pay v3 against the emulator, on both backends: the full
//! flow, duplicate and forged notifications, races, lost callbacks and provider faults.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use fenpay_proto::wechat as proto;
use fenpay_tests::notices::wechat_notification as notification;
use fenpay_tests::{both_backends, dev_keys, into_json, TestApp};
use serde_json::{json, Value};

fn emu() -> Vec<(&'static str, &'static str)> {
    TestApp::emulator_overrides()
}

async fn create(app: &TestApp, token: &str, product_id: i64) -> Value {
    let (status, body) = app
        .post(
            "/api/v1/payment/create-order",
            &json!({"product_type": "points", "product_id": product_id, "payment_method": "wechat", "is_upgrade": false}),
            Some(token),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn points(app: &TestApp, token: &str) -> i64 {
    let (_, me) = app.get("/api/v1/auth/me", Some(token)).await;
    me["points_balance"].as_i64().unwrap()
}

async fn deliver(app: &TestApp, headers: &[(String, String)], body: &str) -> (u16, Value) {
    let mut req = app
        .client
        .post(app.url("/api/v1/payment/wechat/callback"))
        .header("content-type", "application/json")
        .body(body.to_string());
    for (k, v) in headers {
        req = req.header(k, v);
    }
    into_json(req.send().await.unwrap()).await
}

fn set(headers: &mut [(String, String)], name: &str, value: String) {
    for (k, v) in headers.iter_mut() {
        if k == name {
            *v = value.clone();
        }
    }
}

both_backends!(
    full_flow_native_qr_paid_by_notification,
    &emu(),
    |app: TestApp| async move {
        let token = app.signup("buyer").await;
        let order = create(&app, &token, 1).await;
        let order_no = order["order_no"].as_str().unwrap();
        assert!(
            order["qr_code_url"]
                .as_str()
                .unwrap()
                .starts_with("weixin://wxpay/bizpayurl?pr="),
            "{order}"
        );
        assert_eq!(order["amount_fen"], 1000);
        assert_eq!(order["status"], "pending");

        let (status, trade) = app
            .emulator_post(&format!("/__emulator/wechat/pay/{order_no}"), &json!({}))
            .await;
        assert_eq!(status, 200, "{trade}");
        app.wait_in_db(order_no, "paid").await;
        let paid = app.wait_for_status(&token, order_no, "paid").await;
        assert!(paid["payment_time"].is_string());
        assert!(paid["provider_transaction_id"]
            .as_str()
            .unwrap()
            .starts_with("42"));
        assert_eq!(points(&app, &token).await, 100);

        // The raw notification was stored with its verdict.
        let records = app.records(order_no).await;
        assert!(
            records
                .iter()
                .any(|r| r.kind == "notification" && r.verified && r.decision == "Applied"),
            "{records:?}"
        );

        let (status, list) = app.get("/api/v1/payment/orders", Some(&token)).await;
        assert_eq!(status, 200);
        assert_eq!(list["total"], 1);
        assert_eq!(list["items"][0]["order_no"], order_no);
    }
);

both_backends!(
    same_notification_20_times_concurrently_pays_once,
    &emu(),
    |app: TestApp| async move {
        let token = app.signup("dup").await;
        let order = create(&app, &token, 2).await;
        let order_no = order["order_no"].as_str().unwrap().to_string();
        let (headers, body) = notification(&order_no, 5000, |_| {});
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (client, url, headers, body) = (
                app.client.clone(),
                app.url("/api/v1/payment/wechat/callback"),
                headers.clone(),
                body.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let mut req = client
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body);
                for (k, v) in &headers {
                    req = req.header(k, v);
                }
                req.send().await.unwrap().status().as_u16()
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), 204);
        }
        assert_eq!(points(&app, &token).await, 550, "credited exactly once");
        let records = app.records(&order_no).await;
        let applied = records.iter().filter(|r| r.decision == "Applied").count();
        let dups = records.iter().filter(|r| r.decision == "Duplicate").count();
        assert_eq!((applied, dups), (1, 19));
    }
);

both_backends!(
    bad_notifications_are_rejected_and_change_nothing,
    &emu(),
    |app: TestApp| async move {
        let token = app.signup("victim").await;
        let order = create(&app, &token, 1).await;
        let order_no = order["order_no"].as_str().unwrap().to_string();

        // Forged: signed by a key that is not WeChat's.
        let (mut headers, body) = notification(&order_no, 1000, |_| {});
        let forged = fenpay_proto::wechat::sign_response(
            &dev_keys().alipay_app_key,
            "1",
            "n",
            body.as_bytes(),
        )
        .unwrap();
        set(&mut headers, "Wechatpay-Signature", forged);
        let (status, reply) = deliver(&app, &headers, &body).await;
        assert_eq!((status, reply["code"].as_str()), (401, Some("FAIL")));

        // Body tampered after signing.
        let (headers, body) = notification(&order_no, 1000, |_| {});
        let (status, _) = deliver(
            &app,
            &headers,
            &body.replace("TRANSACTION.SUCCESS", "TRANSACTION.SUCCESS "),
        )
        .await;
        assert_eq!(status, 401);

        // Signature probe.
        let (mut headers, body) = notification(&order_no, 1000, |_| {});
        set(
            &mut headers,
            "Wechatpay-Signature",
            "WECHATPAY/SIGNTEST/c2lnbmF0dXJlLXByb2Jl".into(),
        );
        let (status, _) = deliver(&app, &headers, &body).await;
        assert!(
            (400..600).contains(&status),
            "probe must get 4xx/5xx, got {status}"
        );

        // Stale timestamp (10 minutes old), correctly signed.
        let keys = dev_keys();
        let (mut headers, body) = notification(&order_no, 1000, |_| {});
        let old = (chrono::Utc::now().timestamp() - 600).to_string();
        let sig = proto::sign_response(
            &keys.wechat_platform_key,
            &old,
            "stalenonce",
            body.as_bytes(),
        )
        .unwrap();
        set(&mut headers, "Wechatpay-Timestamp", old);
        set(&mut headers, "Wechatpay-Nonce", "stalenonce".into());
        set(&mut headers, "Wechatpay-Signature", sig);
        let (status, _) = deliver(&app, &headers, &body).await;
        assert_eq!(status, 401);

        // Correctly signed but wrong amount, wrong mchid, wrong appid.
        let (headers, body) = notification(&order_no, 1, |_| {});
        assert_eq!(deliver(&app, &headers, &body).await.0, 400);
        let (headers, body) = notification(&order_no, 1000, |tx| tx["mchid"] = json!("1999999999"));
        assert_eq!(deliver(&app, &headers, &body).await.0, 400);
        let (headers, body) =
            notification(&order_no, 1000, |tx| tx["appid"] = json!("wx-someone-else"));
        assert_eq!(deliver(&app, &headers, &body).await.0, 400);

        // Unknown order: WeChat should retry (non-2xx), nothing is created.
        let (headers, body) = notification("FP00000000000000NOPE000000", 1000, |_| {});
        assert_eq!(deliver(&app, &headers, &body).await.0, 404);

        let (status, now) = app
            .get(
                &format!("/api/v1/payment/order-status?order_no={order_no}"),
                Some(&token),
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(now["status"], "pending");
        assert_eq!(points(&app, &token).await, 0);
    }
);

both_backends!(
    cancel_racing_a_payment_paid_wins,
    &emu(),
    |app: TestApp| async move {
        let token = app.signup("racer").await;
        let order = create(&app, &token, 1).await;
        let order_no = order["order_no"].as_str().unwrap();
        // The buyer pays, but every notification is lost.
        app.emulator_post(
            "/__emulator/faults",
            &json!({"drop_notifications_next": 1000}),
        )
        .await;
        let (status, _) = app
            .emulator_post(&format!("/__emulator/wechat/pay/{order_no}"), &json!({}))
            .await;
        assert_eq!(status, 200);
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
        let (_, now) = app
            .get(
                &format!("/api/v1/payment/order-status?order_no={order_no}"),
                Some(&token),
            )
            .await;
        assert_eq!(now["status"], "paid");
        assert_eq!(points(&app, &token).await, 100);
    }
);

both_backends!(
    cancel_closes_at_provider,
    &emu(),
    |app: TestApp| async move {
        let token = app.signup("canceller").await;
        let order = create(&app, &token, 1).await;
        let order_no = order["order_no"].as_str().unwrap();
        let (status, body) = app
            .post(
                "/api/v1/payment/cancel-order",
                &json!({"order_no": order_no}),
                Some(&token),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body,
            json!({"code": 200, "msg": "订单已取消", "data": null})
        );
        let (_, now) = app
            .get(
                &format!("/api/v1/payment/order-status?order_no={order_no}"),
                Some(&token),
            )
            .await;
        assert_eq!(
            (now["status"].as_str(), now["cancel_reason"].as_str()),
            (Some("cancelled"), Some("user"))
        );
        // The trade is closed at the provider: the buyer can no longer pay it.
        let (status, _) = app
            .emulator_post(&format!("/__emulator/wechat/pay/{order_no}"), &json!({}))
            .await;
        assert_eq!(status, 409);
        // Cancelling again is harmless.
        let (status, _) = app
            .post(
                "/api/v1/payment/cancel-order",
                &json!({"order_no": order_no}),
                Some(&token),
            )
            .await;
        assert_eq!(status, 200);
    }
);

both_backends!(
    lost_notification_recovered_by_order_status,
    &emu(),
    |app: TestApp| async move {
        let token = app.signup("patient").await;
        let order = create(&app, &token, 3).await;
        let order_no = order["order_no"].as_str().unwrap();
        app.emulator_post(
            "/__emulator/faults",
            &json!({"drop_notifications_next": 1000}),
        )
        .await;
        app.emulator_post(&format!("/__emulator/wechat/pay/{order_no}"), &json!({}))
            .await;
        let paid = app.wait_for_status(&token, order_no, "paid").await;
        assert_eq!(paid["amount_fen"], 10000);
        assert_eq!(points(&app, &token).await, 1200);
    }
);

both_backends!(
    provider_failures_on_create_leave_nothing,
    &emu(),
    |app: TestApp| async move {
        let token = app.signup("unlucky").await;
        app.emulator_post("/__emulator/faults", &json!({"fail_requests_next": 1}))
            .await;
        let (status, body) = app
            .post(
                "/api/v1/payment/create-order",
                &json!({"product_type": "points", "product_id": 1, "payment_method": "wechat"}),
                Some(&token),
            )
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (502, Some("provider_unavailable")),
            "{body}"
        );

        // fenpay closes a maybe-opened trade in the background after a failed prepay; let
        // that settle so it does not consume the next fault.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        // A stall longer than the client timeout (2 s in tests).
        app.emulator_post(
            "/__emulator/faults",
            &json!({"timeout_requests_next": 1, "timeout_ms": 4000}),
        )
        .await;
        let (status, body) = app
            .post(
                "/api/v1/payment/create-order",
                &json!({"product_type": "points", "product_id": 1, "payment_method": "wechat"}),
                Some(&token),
            )
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (502, Some("provider_unavailable")),
            "{body}"
        );

        let (_, list) = app.get("/api/v1/payment/orders", Some(&token)).await;
        assert_eq!(list["total"], 0, "no half-made orders: {list}");
        // The provider is healthy again: ordering works.
        create(&app, &token, 1).await;
    }
);

both_backends!(
    orders_are_private_and_input_is_checked,
    &emu(),
    |app: TestApp| async move {
        let alice = app.signup("alice").await;
        let mallory = app.signup("mallory").await;
        let order = create(&app, &alice, 1).await;
        let order_no = order["order_no"].as_str().unwrap();
        let (status, body) = app
            .get(
                &format!("/api/v1/payment/order-status?order_no={order_no}"),
                Some(&mallory),
            )
            .await;
        assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
        let (status, _) = app
            .post(
                "/api/v1/payment/cancel-order",
                &json!({"order_no": order_no}),
                Some(&mallory),
            )
            .await;
        assert_eq!(status, 404);
        let (status, _) = app
            .get(
                &format!("/api/v1/payment/order-status?order_no={order_no}"),
                None,
            )
            .await;
        assert_eq!(status, 401);

        let bad = [
            (
                json!({"product_type": "membership", "product_id": 1, "payment_method": "wechat"}),
                400,
                "product_type_mismatch",
            ),
            (
                json!({"product_type": "points", "product_id": 999, "payment_method": "wechat"}),
                404,
                "not_found",
            ),
            (
                json!({"product_type": "points", "product_id": 1, "payment_method": "wechat", "quantity": 0}),
                400,
                "invalid_quantity",
            ),
            (
                json!({"product_type": "points", "product_id": 1, "payment_method": "wechat", "channel": "page"}),
                400,
                "unsupported_channel",
            ),
            (
                json!({"product_type": "points", "product_id": 1, "payment_method": "wechat", "channel": "jsapi"}),
                400,
                "openid_required",
            ),
            (
                json!({"product_type": "points", "product_id": 1, "payment_method": "bitcoin"}),
                400,
                "invalid_body",
            ),
        ];
        for (req, want_status, want_code) in bad {
            let (status, body) = app
                .post("/api/v1/payment/create-order", &req, Some(&alice))
                .await;
            assert_eq!(
                (status, body["code"].as_str()),
                (want_status, Some(want_code)),
                "{req}: {body}"
            );
        }
        let (status, body) = app.get("/api/v1/payment/order-status", Some(&alice)).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("invalid_query"))
        );
        let (_, list) = app.get("/api/v1/payment/orders", Some(&alice)).await;
        assert_eq!(list["total"], 1);
    }
);

both_backends!(
    h5_jsapi_and_app_channels,
    &emu(),
    |app: TestApp| async move {
        let token = app.signup("mobile").await;
        let (status, h5) = app
        .post(
            "/api/v1/payment/create-order",
            &json!({"product_type": "points", "product_id": 1, "payment_method": "wechat", "channel": "h5"}),
            Some(&token),
        )
        .await;
        assert_eq!(status, 200, "{h5}");
        assert!(h5["h5_url"].as_str().unwrap().starts_with("https://"));

        let keys = dev_keys();
        let merchant_pub = keys.wechat_merchant_key.public_key();
        let (status, js) = app
        .post(
            "/api/v1/payment/create-order",
            &json!({"product_type": "points", "product_id": 1, "payment_method": "wechat", "channel": "jsapi", "openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}),
            Some(&token),
        )
        .await;
        assert_eq!(status, 200, "{js}");
        let p = &js["sdk_params"];
        let msg = format!(
            "{}\n{}\n{}\n{}\n",
            p["appId"].as_str().unwrap(),
            p["timeStamp"].as_str().unwrap(),
            p["nonceStr"].as_str().unwrap(),
            p["package"].as_str().unwrap()
        );
        assert!(p["package"].as_str().unwrap().starts_with("prepay_id=wx"));
        assert!(merchant_pub.verify_sha256_base64(msg.as_bytes(), p["paySign"].as_str().unwrap()));

        let (status, appr) = app
        .post(
            "/api/v1/payment/create-order",
            &json!({"product_type": "points", "product_id": 1, "payment_method": "wechat", "channel": "app"}),
            Some(&token),
        )
        .await;
        assert_eq!(status, 200, "{appr}");
        let p = &appr["sdk_params"];
        let msg = format!(
            "{}\n{}\n{}\n{}\n",
            p["appid"].as_str().unwrap(),
            p["timestamp"].as_str().unwrap(),
            p["noncestr"].as_str().unwrap(),
            p["prepayid"].as_str().unwrap()
        );
        assert!(merchant_pub.verify_sha256_base64(msg.as_bytes(), p["sign"].as_str().unwrap()));
    }
);

/// Merchant keys given explicitly (as in production) and no WeChat Pay public key:
/// fenpay downloads platform certificates from `/v3/certificates` and verifies
/// responses and notifications in certificate mode.
fn certificate_mode() -> Vec<(&'static str, &'static str)> {
    let dir = fenpay_tests::shared_dev_keys_dir();
    let read = |name: &str| -> &'static str {
        Box::leak(
            std::fs::read_to_string(format!("{dir}/{name}"))
                .unwrap()
                .trim()
                .to_string()
                .into_boxed_str(),
        )
    };
    let mut vars = emu();
    vars.push((
        "WECHAT_PAY_PRIVATE_KEY_PATH",
        Box::leak(format!("{dir}/wechat_merchant_key.pem").into_boxed_str()),
    ));
    vars.push(("WECHAT_PAY_MCH_SERIAL", read("wechat_merchant_serial")));
    vars.push(("WECHAT_PAY_API_V3_KEY", read("wechat_api_v3_key")));
    // An older merchant: the emulator plays one with platform certificates.
    vars.push(("EMULATOR_WECHAT_MODE", "certificate"));
    vars
}

/// A merchant registered since late 2024, configured as in production: merchant key and
/// the WeChat Pay public key with its id, no certificates anywhere (the emulator's
/// default merchant).
fn public_key_mode() -> Vec<(&'static str, &'static str)> {
    let mut vars = certificate_mode();
    vars.retain(|(k, _)| *k != "EMULATOR_WECHAT_MODE");
    let keys = dev_keys();
    // Next to the shared keys; written whole, then renamed (tests run in parallel).
    let dir = std::path::Path::new(fenpay_tests::shared_dev_keys_dir());
    let path = dir.join("wechat_pay_public_key.pem");
    let tmp = dir.join(format!("wechat_pay_public_key.pem.{}", std::process::id()));
    std::fs::write(&tmp, keys.wechat_platform_key.public_key().to_spki_pem()).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    vars.push((
        "WECHAT_PAY_PUBLIC_KEY_PATH",
        Box::leak(path.display().to_string().into_boxed_str()),
    ));
    vars.push((
        "WECHAT_PAY_PUBLIC_KEY_ID",
        Box::leak(keys.wechat_public_key_id.into_boxed_str()),
    ));
    vars
}

/// The stored notification of an order (order-status may apply the payment first
/// through a query; the notification must verify either way).
async fn stored_notification(
    app: &TestApp,
    order_no: &str,
) -> fenpay::db::orders::PaymentRecordRow {
    for _ in 0..100 {
        if let Some(note) = app
            .records(order_no)
            .await
            .into_iter()
            .find(|r| r.kind == "notification")
        {
            return note;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no notification stored for {order_no}");
}

both_backends!(
    platform_certificate_mode_end_to_end,
    &certificate_mode(),
    |app: TestApp| async move {
        let token = app.signup("certmode").await;
        let order = create(&app, &token, 1).await;
        let order_no = order["order_no"].as_str().unwrap();
        // The merchant is in certificate mode: its notification is signed under the
        // certificate without anyone asking.
        let (status, _) = app
            .emulator_post(&format!("/__emulator/wechat/pay/{order_no}"), &json!({}))
            .await;
        assert_eq!(status, 200);
        let note = stored_notification(&app, order_no).await;
        let cert_serial = fenpay_tests::dev_keys().wechat_platform_cert.serial_hex;
        assert!(
            note.headers.to_ascii_uppercase().contains(&cert_serial),
            "signed under the certificate serial"
        );
        assert!(note.verified, "{note:?}");
        app.wait_for_status(&token, order_no, "paid").await;
        assert!(
            matches!(note.decision.as_str(), "Applied" | "Duplicate"),
            "{note:?}"
        );
        assert_eq!(points(&app, &token).await, 100);
    }
);

both_backends!(
    public_key_merchant_end_to_end,
    &public_key_mode(),
    |app: TestApp| async move {
        let keys = dev_keys();
        let token = app.signup("pubkey").await;
        let order = create(&app, &token, 1).await;
        let order_no = order["order_no"].as_str().unwrap();
        let (status, _) = app
            .emulator_post(&format!("/__emulator/wechat/pay/{order_no}"), &json!({}))
            .await;
        assert_eq!(status, 200);
        let note = stored_notification(&app, order_no).await;
        assert!(
            note.headers.contains(&keys.wechat_public_key_id),
            "{note:?}"
        );
        assert!(note.verified, "{note:?}");
        app.wait_for_status(&token, order_no, "paid").await;
        assert_eq!(points(&app, &token).await, 100);
        // Close (a signed 204) and refund (REFUND.SUCCESS notification) verify too.
        let other = create(&app, &token, 1).await;
        let (status, body) = app
            .post(
                "/api/v1/payment/cancel-order",
                &json!({"order_no": other["order_no"]}),
                Some(&token),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let admin = app.admin("pubkey-admin").await;
        let (status, body) = app
            .post(
                "/api/v1/admin/refunds",
                &json!({"order_no": order_no}),
                Some(&admin),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        app.wait_in_db(order_no, "refunded").await;
    }
);

both_backends!(
    a_certificate_mode_client_cannot_work_for_a_public_key_merchant,
    &{
        // fenpay configured without the public key, the emulator's merchant has only it.
        let mut vars = certificate_mode();
        vars.retain(|(k, _)| *k != "EMULATOR_WECHAT_MODE");
        vars
    },
    |app: TestApp| async move {
        let token = app.signup("nocert").await;
        let (status, body) = app
            .post(
                "/api/v1/payment/create-order",
                &json!({"product_type": "points", "product_id": 1, "payment_method": "wechat", "is_upgrade": false}),
                Some(&token),
            )
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (502, Some("provider_unavailable")),
            "{body}"
        );
    }
);

both_backends!(
    development_keys_follow_the_certificate_mode,
    &{
        let mut vars = emu();
        vars.push(("EMULATOR_WECHAT_MODE", "certificate"));
        vars
    },
    |app: TestApp| async move {
        let token = app.signup("devcert").await;
        let order = create(&app, &token, 1).await;
        let order_no = order["order_no"].as_str().unwrap();
        let (status, _) = app
            .emulator_post(&format!("/__emulator/wechat/pay/{order_no}"), &json!({}))
            .await;
        assert_eq!(status, 200);
        let note = stored_notification(&app, order_no).await;
        let cert_serial = dev_keys().wechat_platform_cert.serial_hex;
        assert!(
            note.headers.to_ascii_uppercase().contains(&cert_serial),
            "{note:?}"
        );
        assert!(note.verified, "{note:?}");
        app.wait_for_status(&token, order_no, "paid").await;
    }
);

both_backends!(
    a_trade_past_time_expire_stays_notpay_until_the_sweeper_closes_it,
    &{
        let mut vars = emu();
        vars.push(("JOBS_ENABLED", "false"));
        vars.push(("RECONCILE_MIN_AGE_SECS", "0"));
        vars
    },
    |app: TestApp| async move {
        let token = app.signup("late-buyer").await;
        let order = create(&app, &token, 1).await;
        let order_no = order["order_no"].as_str().unwrap();
        // The order's half hour passes, here and at WeChat.
        let (status, trade) = app
            .emulator_post(
                &format!("/__emulator/wechat/trades/{order_no}/age"),
                &json!({"secs": 31 * 60}),
            )
            .await;
        assert_eq!(status, 200, "{trade}");
        assert_eq!(
            (trade["trade_state"].as_str(), trade["expired"].as_bool()),
            (Some("NOTPAY"), Some(true))
        );
        // The buyer can no longer pay...
        let (status, body) = app
            .emulator_post(&format!("/__emulator/wechat/pay/{order_no}"), &json!({}))
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (409, Some("ORDER_EXPIRED")),
            "{body}"
        );
        // ...the query still says NOTPAY: the order stays pending...
        let report = fenpay::jobs::reconcile_once(&app.state).await;
        assert_eq!(report.queried, 1, "{report:?}");
        let (_, status_body) = app
            .get(
                &format!("/api/v1/payment/order-status?order_no={order_no}"),
                Some(&token),
            )
            .await;
        assert_eq!(status_body["status"], "pending");
        let records = app.records(order_no).await;
        assert!(
            records
                .iter()
                .any(|r| r.kind == "query" && r.body.contains("Pending")),
            "{records:?}"
        );
        // ...until the sweeper closes the trade and cancels the order.
        app.sql(&format!(
            "UPDATE orders SET expire_at = '2020-01-01 00:00:00' WHERE order_no = '{order_no}'"
        ))
        .await;
        let report = fenpay::jobs::sweep_once(&app.state).await;
        assert_eq!(report.cancelled, 1, "{report:?}");
        app.wait_in_db(order_no, "cancelled").await;
        let trade: Value = app
            .client
            .get(format!(
                "{}/__emulator/wechat/trades/{order_no}",
                app.emulator()
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(trade["trade_state"], "CLOSED");
    }
);
