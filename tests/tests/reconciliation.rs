//! Three-way reconciliation of the providers' daily bills with orders and refunds
//! (issue 14, item 2): the admin API, the run's storage, and the service over the
//! emulator's trades with hand-built bills (the bill download lands separately).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use api_types::payment::PaymentMethod;
use chrono::{Duration, NaiveDate, Utc};
use fenpay::db::reconciliations as recon_db;
use fenpay::domain::bills::{BillFetch, BillKind, BillRow, BillTotals};
use fenpay::domain::reconciliation::china_day_of;
use fenpay::service::reconciliation::{run_day_with, Trigger};
use fenpay_tests::{both_backends, faults, order, pay_at_emulator, refund, TestApp};
use serde_json::{json, Value};

fn emu() -> Vec<(&'static str, &'static str)> {
    let mut v = TestApp::emulator_overrides();
    // No reconciler or sweeper: a lost notification stays lost until the bill shows it.
    v.push(("JOBS_ENABLED", "false"));
    v
}

async fn create(app: &TestApp, token: &str, provider: &str, product_id: i64) -> String {
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

async fn paid(app: &TestApp, token: &str, provider: &str, product_id: i64) -> String {
    let no = create(app, token, provider, product_id).await;
    pay_at_emulator(app, provider, &no).await;
    app.wait_in_db(&no, "paid").await;
    no
}

fn method(provider: &str) -> PaymentMethod {
    if provider == "alipay" {
        PaymentMethod::Alipay
    } else {
        PaymentMethod::Wechat
    }
}

/// A payment row as the provider's bill would list it, from the provider's own answer.
async fn payment_row(app: &TestApp, provider: &str, no: &str) -> BillRow {
    let trade = app
        .state
        .providers
        .query(method(provider), no)
        .await
        .unwrap();
    let amount = trade.amount_fen.unwrap();
    BillRow {
        provider: method(provider),
        kind: BillKind::Payment,
        out_trade_no: no.to_string(),
        provider_trade_no: trade.transaction_id.unwrap(),
        out_refund_no: None,
        provider_refund_no: None,
        amount_fen: amount,
        fee_fen: amount * 6 / 1000,
        status: "SUCCESS".into(),
        occurred_at: trade.paid_at.unwrap(),
    }
}

fn bill(
    day: NaiveDate,
    rows: Vec<BillRow>,
) -> Option<Result<BillFetch, fenpay::providers::ProviderError>> {
    let mut totals = BillTotals {
        rows: rows.len() as i64,
        ..BillTotals::default()
    };
    for r in &rows {
        match r.kind {
            BillKind::Payment => totals.payments_fen += r.amount_fen,
            BillKind::Refund => totals.refunds_fen += r.amount_fen,
        }
        totals.fees_fen += r.fee_fen;
    }
    Some(Ok(BillFetch::Ready { day, rows, totals }))
}

async fn events_of(app: &TestApp, event_type: &str) -> Vec<Value> {
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    use fenpay::db::schema::outbox_events as e;
    let kind = event_type.to_string();
    let load = async {
        fenpay::db_run!(&app.state.db, |conn| {
            Ok::<_, fenpay::db::DbError>(
                e::table
                    .filter(e::event_type.eq(kind))
                    .order(e::created_at.asc())
                    .select(e::payload)
                    .load::<String>(conn)
                    .await?,
            )
        })
    };
    let payloads: Vec<String> = load.await.unwrap();
    payloads
        .iter()
        .map(|p| serde_json::from_str(p).unwrap())
        .collect()
}

fn kinds(detail: &Value) -> Vec<(String, String)> {
    detail["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["kind"].as_str().unwrap().to_string(),
                i["out_refund_no"]
                    .as_str()
                    .or(i["order_no"].as_str())
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect()
}

both_backends!(
    only_admins_reach_reconciliations,
    &emu(),
    |app: TestApp| async move {
        let user = app.signup("buyer").await;
        let admin = app.admin("boss").await;
        let yesterday = china_day_of(Utc::now()) - Duration::days(1);
        for token in [None, Some(user.as_str())] {
            let want = if token.is_none() { 401 } else { 403 };
            assert_eq!(
                app.get("/api/v1/admin/reconciliations", token).await.0,
                want
            );
            assert_eq!(
                app.get("/api/v1/admin/reconciliations/1", token).await.0,
                want
            );
            let (status, body) = app
                .post(
                    "/api/v1/admin/reconciliations",
                    &json!({"date": yesterday, "provider": "wechat"}),
                    token,
                )
                .await;
            assert_eq!(status, want, "{body}");
        }
        let (_, refused) = app.get("/api/v1/admin/reconciliations", None).await;
        assert!(refused["code"].is_string(), "{refused}");
        // A day not over yet in China has no bill.
        let today = china_day_of(Utc::now());
        let (status, body) = app
            .post(
                "/api/v1/admin/reconciliations",
                &json!({"date": today}),
                Some(&admin),
            )
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("invalid_date")),
            "{body}"
        );
        let (status, body) = app
            .post(
                "/api/v1/admin/reconciliations",
                &json!({"date": "yesterday"}),
                Some(&admin),
            )
            .await;
        assert_eq!(status, 400, "{body}");
        // Yesterday, by hand: stored whatever the bill's state; listed; detail found.
        let (status, body) = app
            .post(
                "/api/v1/admin/reconciliations",
                &json!({"date": yesterday, "provider": "wechat"}),
                Some(&admin),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let runs = body["runs"].as_array().unwrap();
        assert_eq!(runs.len(), 1, "{body}");
        let run = &runs[0]["reconciliation"];
        assert_eq!(run["provider"], "wechat");
        assert_eq!(run["date"], yesterday.to_string());
        assert_eq!(run["attempts"], 1);
        let id = run["id"].as_i64().unwrap();
        let (status, list) = app
            .get(
                "/api/v1/admin/reconciliations?provider=wechat",
                Some(&admin),
            )
            .await;
        assert_eq!(status, 200, "{list}");
        assert_eq!(list["items"][0]["id"], id);
        let (status, list) = app
            .get(
                "/api/v1/admin/reconciliations?provider=alipay",
                Some(&admin),
            )
            .await;
        assert_eq!((status, list["items"].as_array().unwrap().len()), (200, 0));
        let (status, detail) = app
            .get(&format!("/api/v1/admin/reconciliations/{id}"), Some(&admin))
            .await;
        assert_eq!(status, 200, "{detail}");
        assert_eq!(detail["reconciliation"]["id"], id);
        assert_eq!(
            app.get("/api/v1/admin/reconciliations/999999", Some(&admin))
                .await
                .0,
            404
        );
    }
);

both_backends!(
    a_bill_not_ready_is_retried_later_and_runs_are_exclusive,
    &emu(),
    |app: TestApp| async move {
        let state = &app.state;
        let day = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        let not_ready = Some(Ok(BillFetch::NotReady {
            reason: "NO_STATEMENT_EXIST".into(),
        }));
        let run = run_day_with(state, PaymentMethod::Wechat, day, Trigger::Hand, not_ready)
            .await
            .unwrap()
            .unwrap();
        let r = &run.reconciliation;
        assert_eq!(r.status.as_str(), "not_ready");
        assert_eq!(r.error.as_deref(), Some("NO_STATEMENT_EXIST"));
        assert_eq!(r.attempts, 1);
        let retry_in = r.next_attempt_at.unwrap() - Utc::now();
        assert!(
            retry_in > Duration::minutes(29) && retry_in <= Duration::minutes(30),
            "{retry_in}"
        );
        // The job leaves it until then.
        let again = Some(Ok(BillFetch::NotReady { reason: "x".into() }));
        assert!(
            run_day_with(state, PaymentMethod::Wechat, day, Trigger::Job, again)
                .await
                .unwrap()
                .is_none()
        );
        // A run in progress (its lease held) keeps others out, the job and by hand.
        let row = recon_db::ensure(&state.db, "wechat", "2026-12-01")
            .await
            .unwrap();
        let token = recon_db::claim(&state.db, row.id, 600, false)
            .await
            .unwrap()
            .unwrap();
        assert!(recon_db::claim(&state.db, row.id, 600, false)
            .await
            .unwrap()
            .is_none());
        let err = run_day_with(
            state,
            PaymentMethod::Wechat,
            day,
            Trigger::Hand,
            bill(day, vec![]),
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("being reconciled"), "{err}");
        // A holder whose claim was taken over writes nothing.
        let stale = fenpay::db::ClaimToken::new();
        let item = recon_db::NewItem {
            reconciliation_id: row.id,
            kind: "matched".into(),
            order_no: Some("FPX".into()),
            out_refund_no: None,
            provider_trade_no: None,
            our_amount_fen: Some(1),
            provider_amount_fen: Some(1),
            our_status: None,
            provider_status: None,
            applied: false,
            review: "none".into(),
            detail: String::new(),
        };
        let figures = recon_db::Finished::default();
        assert!(!recon_db::finish(
            &state.db,
            row.id,
            &stale,
            &figures,
            std::slice::from_ref(&item),
            None
        )
        .await
        .unwrap());
        assert!(recon_db::items(&state.db, row.id).await.unwrap().is_empty());
        // The holder stores three items; a rerun's single item replaces them.
        let three = vec![item.clone(), item.clone(), item.clone()];
        assert!(
            recon_db::finish(&state.db, row.id, &token, &figures, &three, None)
                .await
                .unwrap()
        );
        assert_eq!(recon_db::items(&state.db, row.id).await.unwrap().len(), 3);
        let run = run_day_with(
            state,
            PaymentMethod::Wechat,
            day,
            Trigger::Hand,
            bill(day, vec![]),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(run.reconciliation.status.as_str(), "done");
        assert_eq!(run.reconciliation.attempts, 3);
        assert!(run.items.is_empty(), "{:?}", run.items);
        // Done: the job does not run it again.
        assert!(run_day_with(
            state,
            PaymentMethod::Wechat,
            day,
            Trigger::Job,
            bill(day, vec![])
        )
        .await
        .unwrap()
        .is_none());
    }
);

both_backends!(
    a_day_of_payments_reconciles_and_each_difference_is_reported,
    &emu(),
    |app: TestApp| async move {
        let admin = app.admin("boss").await;
        let buyer = app.signup("buyer").await;
        let day = china_day_of(Utc::now());
        // WeChat: a payment; one whose notification is lost; one whose amount we corrupt.
        let w1 = paid(&app, &buyer, "wechat", 1).await;
        let w3 = paid(&app, &buyer, "wechat", 2).await;
        // Alipay: a payment, and one partly refunded.
        let a1 = paid(&app, &buyer, "alipay", 1).await;
        let a2 = paid(&app, &buyer, "alipay", 2).await;
        let (status, refunded) =
            refund(&app, &admin, json!({"order_no": a2, "amount_fen": 100})).await;
        assert_eq!(status, 200, "{refunded}");
        assert_eq!(refunded["status"], "succeeded", "{refunded}");
        let rno = refunded["out_refund_no"].as_str().unwrap().to_string();
        // Last, so no other payment needs a notification: the buyer pays, every
        // notification (first and resends) is lost until the bills are reconciled.
        let w2 = create(&app, &buyer, "wechat", 1).await;
        faults(&app, json!({"drop_notifications_next": 1000})).await;
        pay_at_emulator(&app, "wechat", &w2).await;
        assert_eq!(order(&app, &w2).await.status.as_str(), "pending");

        // Alipay's bill: both payments and the refund. Zero differences.
        let refund_row = BillRow {
            kind: BillKind::Refund,
            out_refund_no: Some(rno.clone()),
            provider_refund_no: None,
            amount_fen: 100,
            fee_fen: -1,
            status: "退款".into(),
            occurred_at: Utc::now(),
            ..payment_row(&app, "alipay", &a2).await
        };
        let rows = vec![
            payment_row(&app, "alipay", &a1).await,
            payment_row(&app, "alipay", &a2).await,
            refund_row,
        ];
        let paid_fen: i64 = rows
            .iter()
            .filter(|r| r.kind == BillKind::Payment)
            .map(|r| r.amount_fen)
            .sum();
        let fees: i64 = rows.iter().map(|r| r.fee_fen).sum();
        let ali = run_day_with(
            &app.state,
            PaymentMethod::Alipay,
            day,
            Trigger::Hand,
            bill(day, rows),
        )
        .await
        .unwrap()
        .unwrap();
        let r = &ali.reconciliation;
        assert_eq!(
            (r.matched_count, r.difference_count),
            (3, 0),
            "{:?}",
            ali.items
        );
        assert_eq!(r.bill_payments_fen, paid_fen);
        assert_eq!(r.bill_refunds_fen, 100);
        assert_eq!(r.bill_fees_fen, fees);
        assert_eq!(r.net_fen, paid_fen - 100 - fees);
        assert_eq!(r.our_payments_fen, paid_fen);
        assert_eq!(r.our_refunds_fen, 100);
        assert!(events_of(&app, "reconciliation.mismatch").await.is_empty());

        // WeChat's bill: the three payments (w3 at its real amount) and one for an order
        // number we never issued.
        let real_w3 = order(&app, &w3).await.amount_fen;
        app.sql(&format!(
            "UPDATE orders SET amount_fen = amount_fen + 1 WHERE order_no = '{w3}'"
        ))
        .await;
        let mut stranger = payment_row(&app, "wechat", &w1).await;
        stranger.out_trade_no = "FP20261204STRANGER0001".into();
        stranger.provider_trade_no = "4200000000STRANGER".into();
        let rows = vec![
            payment_row(&app, "wechat", &w1).await,
            payment_row(&app, "wechat", &w2).await,
            payment_row(&app, "wechat", &w3).await,
            stranger.clone(),
        ];
        let wx = run_day_with(
            &app.state,
            PaymentMethod::Wechat,
            day,
            Trigger::Hand,
            bill(day, rows.clone()),
        )
        .await
        .unwrap()
        .unwrap();
        let wx = serde_json::to_value(&wx).unwrap();
        assert_eq!(
            kinds(&wx),
            vec![
                ("missing_here".to_string(), w2.clone()),
                ("amount_mismatch".to_string(), w3.clone()),
                ("unknown_order".to_string(), stranger.out_trade_no.clone()),
                ("matched".to_string(), w1.clone()),
            ],
            "{wx}"
        );
        faults(&app, json!({})).await;
        let items = wx["items"].as_array().unwrap();
        // The missing payment was verified with the provider and applied, and flagged.
        assert_eq!(items[0]["applied"], true, "{wx}");
        assert_eq!(items[0]["review"], "open");
        let w2_row = order(&app, &w2).await;
        assert_eq!(w2_row.status.as_str(), "paid");
        assert!(w2_row.needs_review);
        assert!(w2_row.review_reason.unwrap().contains("reconciliation"));
        // The record of that decision is the provider's verified answer.
        assert!(app
            .records(&w2)
            .await
            .iter()
            .any(|r| r.kind == "query" && r.verified && r.decision == "Applied"));
        assert_eq!(items[1]["our_amount_fen"], real_w3 + 1);
        assert_eq!(items[1]["provider_amount_fen"], real_w3);
        // Never applied, whatever the bill says.
        assert_eq!(items[2]["applied"], false);
        let r = &wx["reconciliation"];
        assert_eq!(
            (
                r["matched_count"].as_i64(),
                r["difference_count"].as_i64(),
                r["applied_count"].as_i64()
            ),
            (Some(1), Some(3), Some(1))
        );
        let events = events_of(&app, "reconciliation.mismatch").await;
        assert_eq!(events.len(), 1, "{events:?}");
        let data = &events[0]["data"];
        assert_eq!(data["provider"], "wechat");
        assert_eq!(data["differences"], 3);
        assert_eq!(data["kinds"]["unknown_order"], 1);
        assert_eq!(data["kinds"]["missing_here"], 1);

        // The amount put right and the run repeated: only the stranger is left, and the
        // run's items are replaced, not added to.
        app.sql(&format!(
            "UPDATE orders SET amount_fen = {real_w3} WHERE order_no = '{w3}'"
        ))
        .await;
        let id = r["id"].as_i64().unwrap();
        let (status, again) = app
            .post(
                "/api/v1/admin/reconciliations",
                &json!({"date": day - Duration::days(1), "provider": "wechat"}),
                Some(&admin),
            )
            .await;
        assert_eq!(status, 200, "{again}");
        let rerun = run_day_with(
            &app.state,
            PaymentMethod::Wechat,
            day,
            Trigger::Hand,
            bill(day, rows),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(rerun.reconciliation.id, id);
        let rerun = serde_json::to_value(&rerun).unwrap();
        assert_eq!(
            kinds(&rerun),
            vec![
                ("unknown_order".to_string(), stranger.out_trade_no.clone()),
                ("matched".to_string(), w1.clone()),
                ("matched".to_string(), w2.clone()),
                ("matched".to_string(), w3.clone()),
            ],
            "{rerun}"
        );
        let (status, shown) = app
            .get(&format!("/api/v1/admin/reconciliations/{id}"), Some(&admin))
            .await;
        assert_eq!(status, 200);
        assert_eq!(kinds(&shown), kinds(&rerun));
        assert_eq!(events_of(&app, "reconciliation.mismatch").await.len(), 2);
        // Listed newest day first: today's run before yesterday's.
        let (_, list) = app.get("/api/v1/admin/reconciliations", Some(&admin)).await;
        let days: Vec<&str> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["date"].as_str().unwrap())
            .collect();
        assert_eq!(
            days.first().copied(),
            Some(day.to_string().as_str()),
            "{list}"
        );
        // The books still agree.
        let (status, ledger) = app.get("/api/v1/admin/ledger/verify", Some(&admin)).await;
        assert_eq!(status, 200);
        assert_eq!(ledger["mismatches"], json!([]), "{ledger}");
    }
);

/// The stored refund's status.
async fn refund_status(app: &TestApp, out_refund_no: &str) -> String {
    fenpay::db::refunds::find(&app.state.db, out_refund_no)
        .await
        .unwrap()
        .unwrap()
        .status
        .as_str()
        .to_string()
}

/// Reconcile today's emulator bill of `provider` through the real download.
async fn reconcile_today(app: &TestApp, provider: PaymentMethod) -> Value {
    let day = china_day_of(Utc::now());
    let run = fenpay::service::reconciliation::run_day(&app.state, provider, day, Trigger::Hand)
        .await
        .unwrap()
        .unwrap();
    serde_json::to_value(&run).unwrap()
}

fn differences(run: &Value) -> Vec<(String, String)> {
    kinds(run)
        .into_iter()
        .filter(|(k, _)| k != "matched")
        .collect()
}

both_backends!(
    the_emulators_bills_reconcile_after_a_mixed_day,
    &TestApp::emulator_overrides(),
    |app: TestApp| async move {
        let admin = app.admin("boss").await;
        let buyer = app.signup("buyer").await;
        // Payments with both providers, one of each refunded in part.
        let w1 = paid(&app, &buyer, "wechat", 1).await;
        let w2 = paid(&app, &buyer, "wechat", 2).await;
        let a1 = paid(&app, &buyer, "alipay", 1).await;
        let a2 = paid(&app, &buyer, "alipay", 2).await;
        let (status, ar) = refund(&app, &admin, json!({"order_no": a2, "amount_fen": 200})).await;
        assert_eq!(
            (status, ar["status"].as_str()),
            (200, Some("succeeded")),
            "{ar}"
        );
        let (status, wr) = refund(&app, &admin, json!({"order_no": w2, "amount_fen": 300})).await;
        assert_eq!(status, 200, "{wr}");
        let w_refund = wr["out_refund_no"].as_str().unwrap().to_string();
        app.emulator_post(
            &format!("/__emulator/wechat/refunds/{w_refund}/settle"),
            &json!({"status": "SUCCESS"}),
        )
        .await;
        assert!(
            fenpay_tests::eventually(|| async {
                refund_status(&app, &w_refund).await == "succeeded"
            })
            .await,
            "the WeChat refund never succeeded here"
        );
        // Then every notification is lost: an Alipay payment, and a WeChat payment that
        // lands after we cancelled the order.
        faults(&app, json!({"drop_notifications_next": 1000})).await;
        let lost = create(&app, &buyer, "alipay", 1).await;
        pay_at_emulator(&app, "alipay", &lost).await;
        let late = create(&app, &buyer, "wechat", 1).await;
        pay_at_emulator(&app, "wechat", &late).await;
        assert!(
            fenpay::db::orders::cancel(&app.state.db, &late, "user", &Default::default())
                .await
                .unwrap()
                .is_some()
        );
        assert_eq!(order(&app, &lost).await.status.as_str(), "pending");
        let points_before = fenpay_tests::me(&app, &buyer).await["points_balance"]
            .as_i64()
            .unwrap();

        // What really happens: no notification and no job pass came in between (the
        // reconciler waits RECONCILE_MIN_AGE_SECS), so the bills find both missing here;
        // each is verified with the provider, applied like a notification, and flagged.
        let wx = reconcile_today(&app, PaymentMethod::Wechat).await;
        assert_eq!(
            differences(&wx),
            vec![("missing_here".to_string(), late.clone())],
            "{wx}"
        );
        let ali = reconcile_today(&app, PaymentMethod::Alipay).await;
        assert_eq!(
            differences(&ali),
            vec![("missing_here".to_string(), lost.clone())],
            "{ali}"
        );
        for run in [&wx, &ali] {
            assert_eq!(run["items"][0]["applied"], true, "{run}");
            assert_eq!(run["reconciliation"]["applied_count"], 1);
        }
        let late_row = order(&app, &late).await;
        assert_eq!(late_row.status.as_str(), "paid");
        assert!(late_row.needs_review);
        assert!(order(&app, &lost).await.needs_review);
        assert_eq!(order(&app, &lost).await.status.as_str(), "paid");
        // Fulfilled exactly once each (points product 1).
        let points_after = fenpay_tests::me(&app, &buyer).await["points_balance"]
            .as_i64()
            .unwrap();
        assert_eq!(points_after - points_before, 200);
        // The rest matched: two payments and a refund per provider.
        let matched = |run: &Value| {
            let mut m: Vec<String> = kinds(run)
                .into_iter()
                .filter(|(k, _)| k == "matched")
                .map(|(_, n)| n)
                .collect();
            m.sort();
            m
        };
        let mut want = vec![w1.clone(), w2.clone(), w_refund.clone()];
        want.sort();
        assert_eq!(matched(&wx), want, "{wx}");
        let a_refund = ar["out_refund_no"].as_str().unwrap().to_string();
        let mut want = vec![a1.clone(), a2.clone(), a_refund];
        want.sort();
        assert_eq!(matched(&ali), want, "{ali}");
        // Settlement figures per provider: net = payments - refunds - fees.
        for run in [&wx, &ali] {
            let r = &run["reconciliation"];
            let (p, rf, fee) = (
                r["bill_payments_fen"].as_i64().unwrap(),
                r["bill_refunds_fen"].as_i64().unwrap(),
                r["bill_fees_fen"].as_i64().unwrap(),
            );
            assert!(p > 0 && rf > 0 && fee > 0, "{r}");
            assert_eq!(r["net_fen"].as_i64().unwrap(), p - rf - fee);
        }
        assert_eq!(wx["reconciliation"]["bill_refunds_fen"], 300);
        assert_eq!(ali["reconciliation"]["bill_refunds_fen"], 200);
        assert_eq!(events_of(&app, "reconciliation.mismatch").await.len(), 2);

        // Run again: the day reconciles to zero differences, and no event.
        faults(&app, json!({})).await;
        for m in [PaymentMethod::Wechat, PaymentMethod::Alipay] {
            let run = reconcile_today(&app, m).await;
            assert!(differences(&run).is_empty(), "{run}");
            assert_eq!(run["reconciliation"]["matched_count"], 4, "{run}");
        }
        assert_eq!(events_of(&app, "reconciliation.mismatch").await.len(), 2);

        // A payment in the bill for an order we never issued: reported, never applied.
        faults(&app, json!({"bill_extra_payment": 1})).await;
        let wx = reconcile_today(&app, PaymentMethod::Wechat).await;
        let diff = differences(&wx);
        assert_eq!(diff.len(), 1, "{wx}");
        assert_eq!(diff[0].0, "unknown_order");
        assert!(diff[0].1.starts_with("EXT"), "{wx}");
        assert_eq!(wx["items"][0]["applied"], false);
        assert!(fenpay::db::orders::find(&app.state.db, &diff[0].1)
            .await
            .unwrap()
            .is_none());

        // An order whose amount was corrupted here: an amount mismatch.
        let real = order(&app, &w1).await.amount_fen;
        app.sql(&format!(
            "UPDATE orders SET amount_fen = {} WHERE order_no = '{w1}'",
            real + 1
        ))
        .await;
        let wx = reconcile_today(&app, PaymentMethod::Wechat).await;
        assert_eq!(
            differences(&wx),
            vec![("amount_mismatch".to_string(), w1.clone())],
            "{wx}"
        );
        assert_eq!(wx["items"][0]["our_amount_fen"], real + 1);
        assert_eq!(wx["items"][0]["provider_amount_fen"], real);
        app.sql(&format!(
            "UPDATE orders SET amount_fen = {real} WHERE order_no = '{w1}'"
        ))
        .await;
        let events = events_of(&app, "reconciliation.mismatch").await;
        assert_eq!(events.len(), 4, "{events:?}");
        assert_eq!(events[3]["data"]["kinds"]["amount_mismatch"], 1);

        // No bill yet: the run is kept not ready (retried by the job), earlier items stay.
        faults(&app, json!({"bill_missing": true})).await;
        let ali = reconcile_today(&app, PaymentMethod::Alipay).await;
        assert_eq!(ali["reconciliation"]["status"], "not_ready", "{ali}");
        assert!(ali["reconciliation"]["next_attempt_at"].is_string());
        assert_eq!(ali["items"].as_array().unwrap().len(), 4);
        faults(&app, json!({})).await;

        // The books still agree (what `fenpay verify-ledger` checks).
        let (status, ledger) = app.get("/api/v1/admin/ledger/verify", Some(&admin)).await;
        assert_eq!(status, 200);
        assert_eq!(ledger["mismatches"], json!([]), "{ledger}");
    }
);

// Each day of the window gets its run, not only yesterday: a day no replica reached
// between RECONCILE_HOUR and midnight is caught up later.
both_backends!(
    the_daily_job_runs_each_day_of_the_window_once_and_retries_later,
    &{
        let mut v = emu();
        v.push(("RECONCILE_HOUR", "0"));
        v.push(("RECONCILE_DAYS_BACK", "3"));
        v
    },
    |app: TestApp| async move {
        let yesterday = china_day_of(Utc::now()) - Duration::days(1);
        fenpay::service::reconciliation::job_pass(&app.state)
            .await
            .unwrap();
        let runs = recon_db::list(&app.state.db, None, None, None, 10)
            .await
            .unwrap();
        let mut seen: Vec<(String, String, i32)> = runs
            .iter()
            .map(|r| (r.provider.clone(), r.day.clone(), r.attempts))
            .collect();
        seen.sort();
        let mut expected = Vec::new();
        for provider in ["alipay", "wechat"] {
            for back in (0..3).rev() {
                let day = (yesterday - Duration::days(back)).to_string();
                expected.push((provider.to_string(), day, 1));
            }
        }
        assert_eq!(seen, expected, "{runs:?}");
        // A second pass right after: nothing is due (done, or retried in 30 min).
        fenpay::service::reconciliation::job_pass(&app.state)
            .await
            .unwrap();
        let again = recon_db::list(&app.state.db, None, None, None, 10)
            .await
            .unwrap();
        assert!(again.iter().all(|r| r.attempts == 1), "{again:?}");
        for r in &again {
            assert!(
                r.status == "done" || (r.status == "not_ready" && r.next_attempt_at.is_some()),
                "{r:?}"
            );
        }
    }
);
