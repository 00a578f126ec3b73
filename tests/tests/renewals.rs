//! A new QR code for the same purchase (issue #16 item 5): create-order with
//! `replaces_order_no` closes the old trade first (paid there wins, no second order), and
//! a buyer who still pays twice within one chain of renewals gets the later payment held
//! for review as a duplicate and, with `AUTO_REFUND_DUPLICATE_PAYMENTS`, refunded. Each
//! on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use fenpay_tests::{both_backends, eventually, faults, me, order, pay_at_emulator, TestApp};
use serde_json::{json, Value};

fn emu() -> Vec<(&'static str, &'static str)> {
    TestApp::emulator_overrides()
}

fn auto_refund_duplicates() -> Vec<(&'static str, &'static str)> {
    let mut o = emu();
    o.push(("AUTO_REFUND_DUPLICATE_PAYMENTS", "true"));
    o
}

/// create-order for 100 points (product 1), replacing `replaces` when given.
async fn create(app: &TestApp, token: &str, replaces: Option<&str>) -> (u16, Value) {
    let mut body = json!({"product_type": "points", "product_id": 1, "payment_method": "wechat"});
    if let Some(no) = replaces {
        body["replaces_order_no"] = json!(no);
    }
    app.post("/api/v1/payment/create-order", &body, Some(token))
        .await
}

async fn create_ok(app: &TestApp, token: &str, replaces: Option<&str>) -> String {
    let (status, body) = create(app, token, replaces).await;
    assert_eq!(status, 200, "{body}");
    body["order_no"].as_str().unwrap().to_string()
}

async fn trade_state(app: &TestApp, no: &str) -> String {
    let resp = reqwest::get(format!("{}/__emulator/wechat/trades/{no}", app.emulator()))
        .await
        .unwrap();
    let v: Value = resp.json().await.unwrap();
    v["trade_state"].as_str().unwrap_or_default().to_string()
}

async fn event_types(app: &TestApp, order_no: &str) -> Vec<String> {
    fenpay::db::events::events_for_order(&app.state.db, order_no)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event_type)
        .collect()
}

async fn order_count(app: &TestApp, token: &str) -> i64 {
    let (status, list) = app.get("/api/v1/payment/orders", Some(token)).await;
    assert_eq!(status, 200, "{list}");
    list["total"].as_i64().unwrap()
}

/// An order the buyer paid at the provider while our side closed it (the notification
/// was lost and the close raced the payment): cancelled here, paid there.
async fn paid_but_cancelled(app: &TestApp, token: &str) -> String {
    let no = create_ok(app, token, None).await;
    faults(app, json!({"drop_notifications_next": 1000})).await;
    pay_at_emulator(app, "wechat", &no).await;
    assert!(
        fenpay::db::orders::cancel(&app.state.db, &no, "user", &Default::default())
            .await
            .unwrap()
            .is_some()
    );
    faults(app, json!({})).await;
    no
}

fn duplicate_flag(o: &fenpay::db::orders::OrderRow) -> bool {
    o.review_reason
        .as_deref()
        .unwrap_or_default()
        .contains("duplicate payment")
}

both_backends!(
    a_replacement_closes_the_old_order_first,
    &emu(),
    |app: TestApp| async move {
        let token = app.signup("renew").await;
        let first = create_ok(&app, &token, None).await;
        let second = create_ok(&app, &token, Some(&first)).await;
        // The old trade can no longer be paid: closed at the provider, cancelled here.
        assert_eq!(order(&app, &first).await.status.as_str(), "cancelled");
        assert_eq!(trade_state(&app, &first).await, "CLOSED");
        let (status, body) = app
            .emulator_post(&format!("/__emulator/wechat/pay/{first}"), &json!({}))
            .await;
        assert!(status >= 400, "a closed trade was paid: {status} {body}");
        // Chains: a renewal of a renewal names the first order.
        assert_eq!(
            order(&app, &second).await.renewal_root.as_deref(),
            Some(first.as_str())
        );
        let third = create_ok(&app, &token, Some(&second)).await;
        assert_eq!(
            order(&app, &third).await.renewal_root.as_deref(),
            Some(first.as_str())
        );
        assert_eq!(order(&app, &second).await.status.as_str(), "cancelled");
        // Replacing an already cancelled order is fine (the page cancels it first).
        let fourth = create_ok(&app, &token, Some(&second)).await;
        assert_eq!(
            order(&app, &fourth).await.renewal_root.as_deref(),
            Some(first.as_str())
        );
        assert_eq!(
            order(&app, &third).await.status.as_str(),
            "pending",
            "only the named order is closed"
        );

        // Someone else's order, an unknown one, another purchase: refused, nothing closed.
        let other = app.signup("renew-other").await;
        let (status, body) = create(&app, &other, Some(&third)).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (404, Some("not_found")),
            "{body}"
        );
        let (status, body) = create(&app, &token, Some("FP00000000000000000000000000")).await;
        assert_eq!(status, 404, "{body}");
        let (status, body) = app
            .post(
                "/api/v1/payment/create-order",
                &json!({"product_type": "points", "product_id": 2, "payment_method": "wechat",
                        "replaces_order_no": third}),
                Some(&token),
            )
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("invalid_replacement")),
            "{body}"
        );
        assert_eq!(order(&app, &third).await.status.as_str(), "pending");
        assert_eq!(order_count(&app, &token).await, 4);
    }
);

both_backends!(
    replacing_an_order_paid_at_the_provider_applies_the_payment_instead,
    &emu(),
    |app: TestApp| async move {
        let token = app.signup("renew-paid").await;
        let first = create_ok(&app, &token, None).await;
        // The buyer paid just before asking for a new code; the notification is late.
        faults(&app, json!({"drop_notifications_next": 1000})).await;
        pay_at_emulator(&app, "wechat", &first).await;
        let (status, body) = create(&app, &token, Some(&first)).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (409, Some("order_already_paid")),
            "{body}"
        );
        // Paid wins: the payment is applied, no second order exists, credited once.
        assert_eq!(order(&app, &first).await.status.as_str(), "paid");
        assert_eq!(order_count(&app, &token).await, 1);
        assert_eq!(me(&app, &token).await["points_balance"], 100);
        // And a paid order is never replaced.
        let (status, body) = create(&app, &token, Some(&first)).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (409, Some("order_already_paid")),
            "{body}"
        );
        assert_eq!(order_count(&app, &token).await, 1);
    }
);

both_backends!(
    a_second_payment_for_the_same_purchase_is_held_for_review,
    &emu(),
    |app: TestApp| async move {
        let token = app.signup("dup").await;
        let first = paid_but_cancelled(&app, &token).await;
        let second = create_ok(&app, &token, Some(&first)).await;
        // The first payment reaches us (the provider resends): paid after close.
        app.emulator_post(&format!("/__emulator/wechat/notify/{first}"), &json!({}))
            .await;
        app.wait_in_db(&first, "paid").await;
        assert!(
            !duplicate_flag(&order(&app, &first).await),
            "the first payment is no duplicate"
        );
        // The buyer pays the new code too: the later payment is the duplicate.
        pay_at_emulator(&app, "wechat", &second).await;
        app.wait_in_db(&second, "paid").await;
        let o = order(&app, &second).await;
        assert!(o.needs_review);
        let reason = o.review_reason.clone().unwrap_or_default();
        assert!(
            reason.contains("duplicate payment") && reason.contains(&first),
            "{reason}"
        );
        let types = event_types(&app, &second).await;
        assert!(
            types.contains(&"order.duplicate_payment".to_string()),
            "{types:?}"
        );
        assert!(!event_types(&app, &first)
            .await
            .contains(&"order.duplicate_payment".to_string()));
        // Not refunded unless configured, and it buys nothing: credited once, an operator
        // decides about the money.
        assert!(fenpay::db::refunds::for_order(&app.state.db, &second)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(me(&app, &token).await["points_balance"], 100);
        let paid_event = fenpay::db::events::events_for_order(&app.state.db, &second)
            .await
            .unwrap()
            .into_iter()
            .find(|e| e.event_type == "order.paid")
            .unwrap();
        let details: serde_json::Value = serde_json::from_str(&paid_event.payload).unwrap();
        assert_eq!(
            details["data"]["details"]["points_credited"], 0,
            "{details}"
        );
        let admin = app.admin("dup-admin").await;
        let (_, flagged) = app
            .get("/api/v1/admin/orders?needs_review=true", Some(&admin))
            .await;
        let flagged: Vec<&str> = flagged["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|i| i["order"]["order_no"].as_str())
            .collect();
        assert!(flagged.contains(&second.as_str()), "{flagged:?}");
    }
);

both_backends!(
    a_duplicate_payment_is_refunded_automatically_when_configured,
    &auto_refund_duplicates(),
    |app: TestApp| async move {
        let token = app.signup("dup-auto").await;
        let first = paid_but_cancelled(&app, &token).await;
        let second = create_ok(&app, &token, Some(&first)).await;
        app.emulator_post(&format!("/__emulator/wechat/notify/{first}"), &json!({}))
            .await;
        app.wait_in_db(&first, "paid").await;
        pay_at_emulator(&app, "wechat", &second).await;
        // WeChat refunds settle by notification (or the reconciler): the whole payment back.
        assert!(
            eventually(|| async { order(&app, &second).await.status.as_str() == "refunded" }).await
        );
        let o = order(&app, &second).await;
        assert!(
            o.needs_review && duplicate_flag(&o),
            "{:?}",
            o.review_reason
        );
        assert_eq!(o.refunded_fen, o.amount_fen);
        let refunds = fenpay::db::refunds::for_order(&app.state.db, &second)
            .await
            .unwrap();
        assert_eq!(refunds.len(), 1, "one refund, never two");
        assert_eq!(refunds[0].out_refund_no, format!("RD{}", &second[2..]));
        assert_eq!(refunds[0].requested_by, "system");
        // The first payment stays (only paid-after-close refunds touch it, and they are off).
        assert_eq!(order(&app, &first).await.status.as_str(), "paid");
        assert!(fenpay::db::refunds::for_order(&app.state.db, &first)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            me(&app, &token).await["points_balance"],
            100,
            "the duplicate credited nothing, and its refund took nothing back"
        );
        let types = event_types(&app, &second).await;
        for t in ["order.paid", "order.duplicate_payment", "order.refunded"] {
            assert!(types.contains(&t.to_string()), "{t} missing: {types:?}");
        }
    }
);

both_backends!(
    two_payments_of_one_chain_applied_at_once_flag_exactly_one,
    &emu(),
    |app: TestApp| async move {
        let token = app.signup("dup-race").await;
        let first = paid_but_cancelled(&app, &token).await;
        let second = create_ok(&app, &token, Some(&first)).await;
        faults(&app, json!({"drop_notifications_next": 1000})).await;
        pay_at_emulator(&app, "wechat", &second).await;
        faults(&app, json!({})).await;
        // Both notifications arrive together.
        let a = format!("/__emulator/wechat/notify/{first}");
        let b = format!("/__emulator/wechat/notify/{second}");
        let empty = json!({});
        tokio::join!(app.emulator_post(&a, &empty), app.emulator_post(&b, &empty));
        app.wait_in_db(&first, "paid").await;
        app.wait_in_db(&second, "paid").await;
        let flags = [
            duplicate_flag(&order(&app, &first).await),
            duplicate_flag(&order(&app, &second).await),
        ];
        assert_eq!(flags.iter().filter(|f| **f).count(), 1, "{flags:?}");
        assert_eq!(me(&app, &token).await["points_balance"], 100);
    }
);
