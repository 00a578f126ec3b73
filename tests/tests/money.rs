//! Money-path regressions on both backends: membership tiers (conversion, upgrades and
//! their refunds), purchase snapshots, balance changes that never overwrite each other,
//! payment mismatches held for review, transactions that outlive the request timeout,
//! and the balance ledger that accounts for every change.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, Utc};
use fenpay_tests::{both_backends, me, pay_at_emulator, refund, Backend, TestApp};
use serde_json::{json, Value};

const DAY: i64 = 86_400;

fn emu() -> Vec<(&'static str, &'static str)> {
    TestApp::emulator_overrides()
}

async fn create(app: &TestApp, token: &str, body: Value) -> (u16, Value) {
    app.post("/api/v1/payment/create-order", &body, Some(token))
        .await
}

async fn create_ok(app: &TestApp, token: &str, body: Value) -> Value {
    let (status, reply) = create(app, token, body).await;
    assert_eq!(status, 200, "{reply}");
    reply
}

fn membership(product_id: i64, provider: &str, quantity: i64, upgrade: bool) -> Value {
    json!({"product_type": "membership", "product_id": product_id, "payment_method": provider,
           "quantity": quantity, "is_upgrade": upgrade})
}

fn points(product_id: i64, provider: &str) -> Value {
    json!({"product_type": "points", "product_id": product_id, "payment_method": provider})
}

async fn paid(app: &TestApp, token: &str, provider: &str, body: Value) -> String {
    let reply = create_ok(app, token, body).await;
    let no = reply["order_no"].as_str().unwrap().to_string();
    pay_at_emulator(app, provider, &no).await;
    app.wait_in_db(&no, "paid").await;
    no
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .unwrap_or_else(|| panic!("not a time: {v}"))
        .parse()
        .unwrap()
}

/// Seconds of membership left now.
async fn remaining(app: &TestApp, token: &str) -> i64 {
    let m = me(app, token).await;
    (time(&m["membership_expires_at"]) - Utc::now()).num_seconds()
}

async fn detail(app: &TestApp, admin: &str, order_no: &str) -> Value {
    let (status, body) = app
        .get(&format!("/api/v1/admin/orders/{order_no}"), Some(admin))
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn ledger_is_consistent(app: &TestApp, admin: &str) {
    let (status, body) = app.get("/api/v1/admin/ledger/verify", Some(admin)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["mismatches"], json!([]), "{body}");
    assert!(body["accounts_checked"].as_u64().unwrap() >= 1);
}

fn near(got: i64, want: i64, what: &str) {
    assert!(
        (got - want).abs() <= 30,
        "{what}: {got} s, expected {want} s (±30 s)"
    );
}

// ---- 1. membership time across tiers ----------------------------------------------------

both_backends!(
    another_tier_converts_remaining_time,
    &emu(),
    |app: TestApp| async move {
        let token = app.signup("tiers").await;
        let admin = app.admin("tiers-admin").await;
        // More than the membership cap is refused before anything is created.
        let (status, body) = create(&app, &token, membership(4, "alipay", 13, false)).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["code"], "invalid_quantity");
        // 90 days of basic (29.00 / 30 days).
        paid(&app, &token, "alipay", membership(4, "alipay", 3, false)).await;
        near(remaining(&app, &token).await, 90 * DAY, "basic x3");
        // One month of pro (99.00 / 30 days): the 90 basic days are worth 90 * 29/99 pro days.
        let reply = create_ok(&app, &token, membership(5, "alipay", 1, false)).await;
        let preview = &reply["membership"];
        assert_eq!(preview["rule"], "convert", "{reply}");
        assert_eq!(preview["tier_before"], "basic");
        assert_eq!(preview["tier_after"], "pro");
        let converted = 90 * DAY * 2900 / 9900;
        near(
            preview["carried_seconds"].as_i64().unwrap(),
            converted,
            "preview carried",
        );
        assert_eq!(preview["added_seconds"], 30 * DAY);
        let no = reply["order_no"].as_str().unwrap().to_string();
        pay_at_emulator(&app, "alipay", &no).await;
        app.wait_in_db(&no, "paid").await;
        let m = me(&app, &token).await;
        assert_eq!(m["membership_tier"], "pro");
        near(
            remaining(&app, &token).await,
            converted + 30 * DAY,
            "converted pro",
        );
        // The reverse is no silent demotion: pro time converts up into more basic days.
        let pro_left = remaining(&app, &token).await;
        paid(&app, &token, "alipay", membership(4, "alipay", 1, false)).await;
        assert_eq!(me(&app, &token).await["membership_tier"], "basic");
        near(
            remaining(&app, &token).await,
            pro_left * 9900 / 2900 + 30 * DAY,
            "converted back to basic",
        );
        // The same tier extends.
        let before = remaining(&app, &token).await;
        paid(&app, &token, "alipay", membership(4, "alipay", 2, false)).await;
        near(
            remaining(&app, &token).await,
            before + 60 * DAY,
            "basic extended",
        );
        ledger_is_consistent(&app, &admin).await;
    }
);

// ---- 4. snapshots, not the live catalog ---------------------------------------------------

both_backends!(
    fulfilment_and_clawback_read_the_snapshot,
    &emu(),
    |app: TestApp| async move {
        let token = app.signup("snapper").await;
        let admin = app.admin("snap-admin").await;
        // Ordered at 100 points; the catalog changes before the payment.
        let a = create_ok(&app, &token, points(1, "alipay")).await;
        let a = a["order_no"].as_str().unwrap().to_string();
        app.sql("UPDATE products SET points = 9999 WHERE id = 1")
            .await;
        pay_at_emulator(&app, "alipay", &a).await;
        app.wait_in_db(&a, "paid").await;
        assert_eq!(me(&app, &token).await["points_balance"], 100);
        // Ordered at 550 points; the product is deleted before the payment.
        let b = create_ok(&app, &token, points(2, "alipay")).await;
        let b = b["order_no"].as_str().unwrap().to_string();
        app.sql("DELETE FROM products WHERE id = 2").await;
        pay_at_emulator(&app, "alipay", &b).await;
        app.wait_in_db(&b, "paid").await;
        assert_eq!(me(&app, &token).await["points_balance"], 650);
        // Claw-back too: the refund takes back what was granted, not the catalog's value.
        app.sql("UPDATE products SET points = 1 WHERE id = 1").await;
        let (status, body) = refund(&app, &admin, json!({"order_no": a})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(me(&app, &token).await["points_balance"], 550);
        let (status, body) = refund(&app, &admin, json!({"order_no": b, "amount_fen": 2500})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(me(&app, &token).await["points_balance"], 275);
        // A membership bought before its tier's price changed keeps the days it bought.
        let m = create_ok(&app, &token, membership(4, "alipay", 1, false)).await;
        let m = m["order_no"].as_str().unwrap().to_string();
        app.sql("UPDATE products SET membership_days = 1 WHERE id = 4")
            .await;
        pay_at_emulator(&app, "alipay", &m).await;
        app.wait_in_db(&m, "paid").await;
        near(remaining(&app, &token).await, 30 * DAY, "snapshot days");
        // The ledger explains every change of this order.
        let d = detail(&app, &admin, &b).await;
        let entries = d["balance_entries"].as_array().unwrap();
        let deltas: Vec<i64> = entries
            .iter()
            .map(|e| e["delta_points"].as_i64().unwrap())
            .collect();
        assert_eq!(deltas, [550, -275], "{d}");
        assert_eq!(entries[0]["reason"], "purchase");
        assert_eq!(entries[1]["reason"], "clawback");
        ledger_is_consistent(&app, &admin).await;
    }
);

// ---- 5. claw-back never overwrites a concurrent extension --------------------------------

/// Hold the row lock of `username`'s account in a separate PostgreSQL session for `ms`.
async fn hold_account_lock(app: &TestApp, username: &str, ms: u64) -> tokio::task::JoinHandle<()> {
    use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
    let mut conn = AsyncPgConnection::establish(&app.database_url)
        .await
        .unwrap();
    conn.batch_execute(&format!(
        "BEGIN; SELECT id FROM users WHERE username = '{username}' FOR UPDATE"
    ))
    .await
    .unwrap();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        conn.batch_execute("COMMIT").await.unwrap();
    })
}

both_backends!(
    clawback_and_extension_both_count,
    &emu(),
    |app: TestApp| async move {
        let token = app.signup("racer").await;
        let admin = app.admin("race-admin").await;
        let first = paid(&app, &token, "alipay", membership(4, "alipay", 1, false)).await;
        let second = create_ok(&app, &token, membership(4, "alipay", 1, false)).await;
        let second = second["order_no"].as_str().unwrap().to_string();
        near(remaining(&app, &token).await, 30 * DAY, "first month");
        // The extension reaches the account first and waits for its lock; the refund of
        // the first month arrives while it waits. Whatever the order, both must count.
        let lock = match app.backend {
            Backend::Postgres => Some(hold_account_lock(&app, "racer", 1500).await),
            Backend::Sqlite => None,
        };
        let pay_task = {
            let emulator = app.emulator();
            let second = second.clone();
            tokio::spawn(async move {
                reqwest::Client::new()
                    .post(format!("{emulator}/__emulator/alipay/pay/{second}"))
                    .json(&json!({}))
                    .send()
                    .await
                    .unwrap()
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let (status, body) = refund(&app, &admin, json!({"order_no": first})).await;
        assert_eq!(status, 200, "{body}");
        if let Some(lock) = lock {
            lock.await.unwrap();
        }
        pay_task.await.unwrap();
        app.wait_in_db(&second, "paid").await;
        // +30 days, -30 days, +30 days.
        near(
            remaining(&app, &token).await,
            30 * DAY,
            "after refund and extension",
        );
        ledger_is_consistent(&app, &admin).await;
    }
);

// ---- 6. refunding an upgrade -----------------------------------------------------------

both_backends!(
    refunding_an_upgrade_restores_the_tier,
    &emu(),
    |app: TestApp| async move {
        let token = app.signup("upper").await;
        let admin = app.admin("up-admin").await;
        paid(&app, &token, "alipay", membership(4, "alipay", 1, false)).await;
        let expiry = me(&app, &token).await["membership_expires_at"].clone();
        let reply = create_ok(&app, &token, membership(5, "alipay", 1, true)).await;
        assert_eq!(reply["membership"]["rule"], "upgrade", "{reply}");
        let up = reply["order_no"].as_str().unwrap().to_string();
        let amount = reply["amount_fen"].as_i64().unwrap();
        pay_at_emulator(&app, "alipay", &up).await;
        app.wait_in_db(&up, "paid").await;
        assert_eq!(me(&app, &token).await["membership_tier"], "pro");
        // A partial refund keeps pro and asks an operator to look.
        let (status, body) = refund(&app, &admin, json!({"order_no": up, "amount_fen": 100})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(me(&app, &token).await["membership_tier"], "pro");
        let d = detail(&app, &admin, &up).await;
        assert_eq!(d["order"]["needs_review"], true, "{d}");
        // The rest: back to basic, with the same expiry.
        let (status, body) = refund(&app, &admin, json!({"order_no": up})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["amount_fen"], amount - 100);
        let m = me(&app, &token).await;
        assert_eq!(m["membership_tier"], "basic", "{m}");
        assert_eq!(time(&m["membership_expires_at"]), time(&expiry));
        let d = detail(&app, &admin, &up).await;
        let reasons: Vec<&str> = d["balance_entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["reason"].as_str().unwrap())
            .collect();
        assert_eq!(reasons, ["upgrade", "upgrade_reverted"], "{d}");
        ledger_is_consistent(&app, &admin).await;
    }
);

// ---- 8. a verified payment that does not match the order ------------------------------------

both_backends!(
    payment_mismatch_is_held_for_review,
    &emu(),
    |app: TestApp| async move {
        let token = app.signup("mismatch").await;
        let admin = app.admin("mm-admin").await;
        let reply = create_ok(&app, &token, points(1, "wechat")).await;
        let no = reply["order_no"].as_str().unwrap().to_string();
        // The provider's trade says 10.00; make ours say 10.01.
        app.sql(&format!(
            "UPDATE orders SET amount_fen = amount_fen + 1 WHERE order_no = '{no}'"
        ))
        .await;
        pay_at_emulator(&app, "wechat", &no).await;
        let flagged = fenpay_tests::eventually(|| async {
            detail(&app, &admin, &no).await["order"]["needs_review"] == json!(true)
        })
        .await;
        assert!(flagged, "mismatch was never flagged");
        let d = detail(&app, &admin, &no).await;
        assert_eq!(d["order"]["order"]["status"], "pending");
        assert!(
            d["order"]["review_reason"]
                .as_str()
                .unwrap()
                .contains("amount"),
            "{d}"
        );
        let types: Vec<&str> = d["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event_type"].as_str().unwrap())
            .collect();
        assert_eq!(
            types
                .iter()
                .filter(|t| **t == "order.payment_mismatch")
                .count(),
            1,
            "{types:?}"
        );
        // The jobs leave it alone: no close, no query, no loop.
        app.sql(&format!(
            "UPDATE orders SET expire_at = '2020-01-01 00:00:00', created_at = '2020-01-01 00:00:00' WHERE order_no = '{no}'"
        ))
        .await;
        // (WeChat keeps resending the notification meanwhile; count our own calls.)
        let calls = |d: Value| {
            d["records"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["kind"] != "notification")
                .count()
        };
        let records_before = calls(detail(&app, &admin, &no).await);
        let sweep = fenpay::jobs::sweep_once(&app.state).await;
        assert_eq!(sweep, fenpay::jobs::SweepReport::default());
        let rec = fenpay::jobs::reconcile_once(&app.state).await;
        assert_eq!(rec.queried, 0, "{rec:?}");
        let records_after = calls(detail(&app, &admin, &no).await);
        assert_eq!(records_before, records_after);
        assert_eq!(me(&app, &token).await["points_balance"], 0);
    }
);

// ---- 10. a transaction outlives the request's provider timeout --------------------------

/// A WeChat order the buyer paid while every notification was lost.
async fn paid_with_notifications_lost(app: &TestApp, token: &str) -> String {
    let (status, body) = app
        .emulator_post(
            "/__emulator/faults",
            &json!({"drop_notifications_next": 100}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let reply = create_ok(app, token, points(1, "wechat")).await;
    let no = reply["order_no"].as_str().unwrap().to_string();
    pay_at_emulator(app, "wechat", &no).await;
    no
}

/// The order's records say its payment was applied, exactly once.
async fn applied_once(app: &TestApp, admin: &str, no: &str) {
    let d = detail(app, admin, no).await;
    let applied = d["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["decision"] == "Applied")
        .count();
    assert_eq!(applied, 1, "{d}");
}

both_backends!(
    order_status_never_drops_a_payment_midway,
    &emu(),
    |app: TestApp| async move {
        let token = app.signup("patient").await;
        let admin = app.admin("patient-admin").await;
        let no = paid_with_notifications_lost(&app, &token).await;
        // The account row is locked for longer than order-status waits for the provider:
        // the payment it found is applied once the lock goes, not abandoned halfway.
        let lock = match app.backend {
            Backend::Postgres => Some(hold_account_lock(&app, "patient", 4500).await),
            Backend::Sqlite => None,
        };
        let (status, body) = app
            .get(
                &format!("/api/v1/payment/order-status?order_no={no}"),
                Some(&token),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        if let Some(lock) = &lock {
            // A read never waits for the payment the watcher is applying behind the lock.
            assert!(
                !lock.is_finished(),
                "order-status waited for the lock: {body}"
            );
            assert_eq!(body["status"], "pending", "{body}");
        }
        app.wait_for_status(&token, &no, "paid").await;
        if let Some(lock) = lock {
            lock.await.unwrap();
        }
        assert_eq!(me(&app, &token).await["points_balance"], 100);
        // The record that says it was applied is there, exactly once.
        applied_once(&app, &admin, &no).await;
        ledger_is_consistent(&app, &admin).await;
    }
);

/// Hold a write lock on one order for `ms` (PostgreSQL: its row; SQLite: the database's
/// write lock, from a second connection), as a long transaction elsewhere would. Returns
/// once the lock is held; the handle finishes when it is released.
async fn hold_order_lock(app: &TestApp, order_no: &str, ms: u64) -> tokio::task::JoinHandle<()> {
    let hold = std::time::Duration::from_millis(ms);
    match app.backend {
        Backend::Postgres => {
            use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
            let mut conn = AsyncPgConnection::establish(&app.database_url)
                .await
                .unwrap();
            conn.batch_execute(&format!(
                "BEGIN; SELECT order_no FROM orders WHERE order_no = '{order_no}' FOR UPDATE"
            ))
            .await
            .unwrap();
            tokio::spawn(async move {
                tokio::time::sleep(hold).await;
                conn.batch_execute("COMMIT").await.unwrap();
            })
        }
        Backend::Sqlite => {
            use diesel::connection::SimpleConnection;
            use diesel::Connection;
            let path = app.database_url.trim_start_matches("sqlite://").to_string();
            let (held_tx, held) = tokio::sync::oneshot::channel();
            let task = tokio::task::spawn_blocking(move || {
                let mut conn = diesel::SqliteConnection::establish(&path).unwrap();
                conn.batch_execute("BEGIN IMMEDIATE").unwrap();
                held_tx.send(()).unwrap();
                std::thread::sleep(hold);
                conn.batch_execute("COMMIT").unwrap();
            });
            held.await.unwrap();
            tokio::spawn(async move { task.await.unwrap() })
        }
    }
}

both_backends!(order_status_is_a_read, &emu(), |app: TestApp| async move {
    let token = app.signup("watcher").await;
    let no = paid_with_notifications_lost(&app, &token).await;
    // A writer holds the order (a long transaction elsewhere): every poll still answers,
    // because order-status neither writes nor waits for the provider.
    let lock = hold_order_lock(&app, &no, 5000).await;
    for _ in 0..5 {
        let (status, body) = app
            .get(
                &format!("/api/v1/payment/order-status?order_no={no}"),
                Some(&token),
            )
            .await;
        assert_eq!(
            (status, body["status"].as_str()),
            (200, Some("pending")),
            "{body}"
        );
    }
    assert!(!lock.is_finished(), "a poll waited for the writer");
    lock.await.unwrap();
    // The polls nudged the watcher, which finds the payment whose notification was lost.
    app.wait_for_status(&token, &no, "paid").await;
    assert_eq!(me(&app, &token).await["points_balance"], 100);
    let admin = app.admin("watch-admin").await;
    applied_once(&app, &admin, &no).await;
});

// ---- the ledger check finds a balance changed behind its back -----------------------------

both_backends!(
    ledger_verification_finds_untracked_changes,
    &emu(),
    |app: TestApp| async move {
        let token = app.signup("audited").await;
        let admin = app.admin("audit-admin").await;
        paid(&app, &token, "wechat", points(1, "wechat")).await;
        paid(&app, &token, "alipay", membership(4, "alipay", 1, false)).await;
        ledger_is_consistent(&app, &admin).await;
        // A change that bypasses the ledger (a hand-written UPDATE) is found at once.
        app.sql("UPDATE users SET points_balance = points_balance + 5 WHERE username = 'audited'")
            .await;
        let (status, body) = app.get("/api/v1/admin/ledger/verify", Some(&admin)).await;
        assert_eq!(status, 200, "{body}");
        let found = body["mismatches"].as_array().unwrap();
        assert_eq!(found.len(), 1, "{body}");
        assert_eq!(found[0]["username"], "audited");
        assert_eq!(found[0]["points_balance"], 105);
        assert_eq!(found[0]["ledger_points"], 100);
        // Membership too (what `fenpay verify-ledger` checks, through the same query).
        app.sql("UPDATE users SET points_balance = points_balance - 5, membership_tier = 'pro' WHERE username = 'audited'")
            .await;
        let (checked, mismatches) = fenpay::db::ledger::verify(&app.state.db).await.unwrap();
        assert!(checked >= 2);
        assert_eq!(mismatches.len(), 1, "{mismatches:?}");
        assert_eq!(mismatches[0].ledger_tier.as_deref(), Some("basic"));
        // Only admins may ask.
        let (status, _) = app.get("/api/v1/admin/ledger/verify", Some(&token)).await;
        assert_eq!(status, 403);
    }
);
