//! Daily bills end to end, on both backends: orders paid with both providers (one of
//! each refunded in part), then `Providers::fetch_bill` for today's China day through
//! the app's own provider clients against the emulator: the rows must be exactly the
//! payments and refunds made (amounts, numbers, kinds, fees at the emulator's 0.6 %),
//! the totals must agree, and the `bill_missing` / `bill_extra_payment` faults show.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use api_types::payment::PaymentMethod;
use fenpay::domain::bills::{BillFetch, BillKind, BillRow, BillTotals};
use fenpay::emulator::bills::{china_day, fee_back_fen, fee_fen};
use fenpay_tests::{both_backends, faults, pay_at_emulator, refund, TestApp};
use serde_json::{json, Value};

fn emu() -> Vec<(&'static str, &'static str)> {
    TestApp::emulator_overrides()
}

async fn emulator_get(app: &TestApp, path: &str) -> Value {
    app.client
        .get(format!("{}{}", app.emulator(), path))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A paid order: (order_no, amount_fen, provider trade number).
async fn paid(
    app: &TestApp,
    token: &str,
    provider: &str,
    product_id: i64,
) -> (String, i64, String) {
    let kind = if product_id >= 4 {
        "membership"
    } else {
        "points"
    };
    let (status, order) = app
        .post(
            "/api/v1/payment/create-order",
            &json!({"product_type": kind, "product_id": product_id, "payment_method": provider}),
            Some(token),
        )
        .await;
    assert_eq!(status, 200, "{order}");
    let no = order["order_no"].as_str().unwrap().to_string();
    pay_at_emulator(app, provider, &no).await;
    app.wait_in_db(&no, "paid").await;
    let trade = emulator_get(app, &format!("/__emulator/{provider}/trades/{no}")).await;
    let trade_no = match provider {
        "wechat" => trade["transaction_id"].as_str().unwrap().to_string(),
        _ => trade["trade_no"].as_str().unwrap().to_string(),
    };
    (no, order["amount_fen"].as_i64().unwrap(), trade_no)
}

/// What a row must say, without the time (checked separately).
fn key(r: &BillRow) -> (bool, String, String, Option<String>, i64, i64) {
    (
        r.kind == BillKind::Refund,
        r.out_trade_no.clone(),
        r.provider_trade_no.clone(),
        r.out_refund_no.clone(),
        r.amount_fen,
        r.fee_fen,
    )
}

fn ready(fetch: BillFetch) -> (Vec<BillRow>, BillTotals) {
    match fetch {
        BillFetch::Ready { rows, totals, .. } => (rows, totals),
        other => panic!("bill not ready: {other:?}"),
    }
}

both_backends!(
    bills_list_exactly_the_days_payments_and_refunds,
    &emu(),
    |app: TestApp| async move {
        let token = app.signup("billy").await;
        let admin = app.admin("boss").await;
        let started = chrono::Utc::now();
        let w1 = paid(&app, &token, "wechat", 1).await;
        let w2 = paid(&app, &token, "wechat", 2).await;
        let a1 = paid(&app, &token, "alipay", 1).await;
        let a2 = paid(&app, &token, "alipay", 2).await;

        // Refund part of one order on each provider.
        let (status, body) =
            refund(&app, &admin, json!({"order_no": w1.0, "amount_fen": 300})).await;
        assert!(status < 300, "{body}");
        let (status, body) =
            refund(&app, &admin, json!({"order_no": a2.0, "amount_fen": 200})).await;
        assert!(status < 300, "{body}");
        let wr = emulator_get(
            &app,
            &format!("/__emulator/wechat/refunds?out_trade_no={}", w1.0),
        )
        .await;
        let w_refund_no = wr[0]["out_refund_no"].as_str().unwrap().to_string();
        let at = emulator_get(&app, &format!("/__emulator/alipay/trades/{}", a2.0)).await;
        let a_refund_no = at["refunds"][0]["out_request_no"]
            .as_str()
            .unwrap()
            .to_string();

        let providers = app.state.providers.clone();
        let day = china_day(chrono::Utc::now());
        assert_eq!(
            china_day(started),
            day,
            "the test straddled China midnight; run it again"
        );

        // WeChat.
        let (rows, totals) = ready(
            providers
                .fetch_bill(PaymentMethod::Wechat, day)
                .await
                .unwrap(),
        );
        let mut got: Vec<_> = rows.iter().map(key).collect();
        got.sort();
        let mut want = vec![
            (false, w1.0.clone(), w1.2.clone(), None, w1.1, fee_fen(w1.1)),
            (false, w2.0.clone(), w2.2.clone(), None, w2.1, fee_fen(w2.1)),
            (
                true,
                w1.0.clone(),
                w1.2.clone(),
                Some(w_refund_no),
                300,
                -fee_back_fen(w1.1, 300),
            ),
        ];
        want.sort();
        assert_eq!(got, want);
        assert!(rows.iter().all(|r| r.provider == PaymentMethod::Wechat));
        assert!(rows
            .iter()
            .all(|r| r.occurred_at >= started - chrono::Duration::seconds(1)));
        assert!(rows.iter().filter(|r| r.kind == BillKind::Refund).all(|r| r
            .provider_refund_no
            .as_deref()
            .is_some_and(|n| n.starts_with("50"))));
        assert_eq!(
            totals,
            BillTotals {
                rows: 3,
                payments_fen: w1.1 + w2.1,
                refunds_fen: 300,
                fees_fen: rows.iter().map(|r| r.fee_fen).sum(),
            }
        );

        // Alipay.
        let (rows, totals) = ready(
            providers
                .fetch_bill(PaymentMethod::Alipay, day)
                .await
                .unwrap(),
        );
        let mut got: Vec<_> = rows.iter().map(key).collect();
        got.sort();
        let mut want = vec![
            (false, a1.0.clone(), a1.2.clone(), None, a1.1, fee_fen(a1.1)),
            (false, a2.0.clone(), a2.2.clone(), None, a2.1, fee_fen(a2.1)),
            (
                true,
                a2.0.clone(),
                a2.2.clone(),
                Some(a_refund_no),
                200,
                -fee_back_fen(a2.1, 200),
            ),
        ];
        want.sort();
        assert_eq!(got, want);
        assert_eq!(
            totals,
            BillTotals {
                rows: 3,
                payments_fen: a1.1 + a2.1,
                refunds_fen: 200,
                fees_fen: rows.iter().map(|r| r.fee_fen).sum(),
            }
        );

        // WeChat's fund-flow bill: the payments in, their fees and the refund out.
        let wechat = providers.wechat.clone().unwrap();
        match wechat.fundflow_bill(day).await.unwrap() {
            fenpay::providers::wechat::FundFlowFetch::Ready { rows, totals, .. } => {
                let income: i64 = rows.iter().filter(|r| r.income).map(|r| r.amount_fen).sum();
                let expense: i64 = rows
                    .iter()
                    .filter(|r| !r.income)
                    .map(|r| r.amount_fen)
                    .sum();
                assert_eq!(totals.income_fen, income);
                assert_eq!(totals.expense_fen, expense);
                assert_eq!(totals.rows, rows.len() as i64);
                assert_eq!(
                    income - expense,
                    w1.1 + w2.1 - 300 - fee_fen(w1.1) - fee_fen(w2.1) + fee_back_fen(w1.1, 300)
                );
                assert!(rows
                    .iter()
                    .any(|r| r.business_name == "退款" && r.amount_fen == 300));
            }
            other => panic!("fund-flow bill not ready: {other:?}"),
        }

        // A future day has no bill yet.
        let tomorrow = day.succ_opt().unwrap();
        for method in [PaymentMethod::Wechat, PaymentMethod::Alipay] {
            let fetch = providers.fetch_bill(method, tomorrow).await.unwrap();
            assert!(matches!(fetch, BillFetch::NotReady { .. }), "{fetch:?}");
        }

        // bill_missing: not ready, on both providers.
        faults(&app, json!({"bill_missing": true})).await;
        for method in [PaymentMethod::Wechat, PaymentMethod::Alipay] {
            match providers.fetch_bill(method, day).await.unwrap() {
                BillFetch::NotReady { reason } => assert!(
                    reason.contains("NO_STATEMENT_EXIST") || reason.contains("isp.bill_not_exist"),
                    "{reason}"
                ),
                other => panic!("{method:?}: {other:?}"),
            }
        }

        // bill_extra_payment: the next bill holds a payment nobody here made.
        faults(&app, json!({"bill_extra_payment": 2})).await;
        for (method, known) in [
            (PaymentMethod::Wechat, [&w1.0, &w2.0]),
            (PaymentMethod::Alipay, [&a1.0, &a2.0]),
        ] {
            let (rows, totals) = ready(providers.fetch_bill(method, day).await.unwrap());
            assert_eq!(rows.len(), 4, "{method:?}");
            assert_eq!(totals.rows, 4);
            let strangers: Vec<&BillRow> = rows
                .iter()
                .filter(|r| !known.contains(&&r.out_trade_no))
                .collect();
            assert_eq!(strangers.len(), 1, "{rows:?}");
            let s = strangers[0];
            assert_eq!(s.kind, BillKind::Payment);
            assert!(s.amount_fen > 0);
            assert!(fenpay::db::orders::find(&app.state.db, &s.out_trade_no)
                .await
                .unwrap()
                .is_none());
            match method {
                PaymentMethod::Wechat => {
                    assert_eq!(s.provider_trade_no.len(), 28);
                    assert!(s.provider_trade_no.starts_with("4200"));
                }
                PaymentMethod::Alipay => assert!(s
                    .provider_trade_no
                    .starts_with(&day.format("%Y%m%d").to_string())),
            }
        }
        // Consumed: the next bill is the real one again.
        let (rows, _) = ready(
            providers
                .fetch_bill(PaymentMethod::Wechat, day)
                .await
                .unwrap(),
        );
        assert_eq!(rows.len(), 3);

        // The raw CSV for people.
        let csv = app
            .client
            .get(format!(
                "{}/__emulator/wechat/bill?date={}",
                app.emulator(),
                day.format("%Y-%m-%d")
            ))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(csv.starts_with("交易时间,"), "{csv}");
        assert!(csv.contains(&format!("`{}", w1.0)));
    }
);

both_backends!(
    a_day_without_trades_has_no_bill,
    &emu(),
    |app: TestApp| async move {
        let providers = app.state.providers.clone();
        let day = china_day(chrono::Utc::now());
        for method in [PaymentMethod::Wechat, PaymentMethod::Alipay] {
            let fetch = providers.fetch_bill(method, day).await.unwrap();
            assert!(matches!(fetch, BillFetch::NotReady { .. }), "{fetch:?}");
        }
    }
);
