//! Several `fenpay serve` replicas on one PostgreSQL database (skipped without
//! `TEST_DATABASE_URL`): 200 orders paid through the shared emulator with duplicated and
//! delayed notifications, both replicas running every job and a webhook dispatcher.
//! Every order must be fulfilled exactly once, every event delivered once per event id,
//! no order left pending; live status crosses replicas through LISTEN/NOTIFY.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use fenpay_tests::{
    eventually, order, pay_at_emulator, sse_statuses, TestApp, WebhookReceiver, TEST_WEBHOOK_SECRET,
};
use serde_json::json;

async fn pending_count(app: &TestApp) -> i64 {
    let filter = fenpay::db::orders::OrderFilter {
        status: Some("pending".into()),
        ..Default::default()
    };
    fenpay::db::orders::list_filtered(&app.state.db, &filter, 1, 0)
        .await
        .unwrap()
        .1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_pay_200_orders_exactly_once() {
    if std::env::var("TEST_DATABASE_URL").is_err() {
        eprintln!("TEST_DATABASE_URL not set: multi-replica test skipped");
        return;
    }
    let counter = WebhookReceiver::default();
    let hook = counter.start().await;
    let mut o = TestApp::emulator_overrides();
    o.extend([
        ("WEBHOOK_SECRET", TEST_WEBHOOK_SECRET),
        ("DISPATCH_INTERVAL_SECS", "1"),
        ("SWEEP_INTERVAL_SECS", "1"),
        ("RECONCILE_INTERVAL_SECS", "1"),
        ("RECONCILE_MIN_AGE_SECS", "2"),
        ("DATABASE_POOL_SIZE", "10"),
    ]);
    o.push(("WEBHOOK_URLS", &hook));
    let a = TestApp::postgres(&o).await.unwrap();
    let b = a.replica(&o).await;
    let apps = [&a, &b];

    // Duplicated and delayed notifications for every payment.
    let (status, _) = a
        .emulator_post(
            "/__emulator/faults",
            &json!({"duplicate_notifications": true, "delay_notifications_ms": 50}),
        )
        .await;
    assert_eq!(status, 200);

    // 20 buyers, 10 orders each, alternating replicas and providers.
    let mut tokens = Vec::new();
    for i in 0..20 {
        tokens.push(apps[i % 2].signup(&format!("buyer{i}")).await);
    }
    let started = Instant::now();
    let mut orders: Vec<(usize, String, &str)> = Vec::new();
    let creates = futures_util::future::join_all((0..200).map(|n| {
        let app = apps[n % 2];
        let buyer = n % 20;
        let provider = if n % 3 == 0 { "alipay" } else { "wechat" };
        let token = tokens[buyer].clone();
        async move {
            let (status, body) = app
                .post(
                    "/api/v1/payment/create-order",
                    &json!({"product_type": "points", "product_id": 1, "payment_method": provider}),
                    Some(&token),
                )
                .await;
            assert_eq!(status, 200, "{body}");
            (
                buyer,
                body["order_no"].as_str().unwrap().to_string(),
                provider,
            )
        }
    }))
    .await;
    orders.extend(creates);
    let created_in = started.elapsed();

    // Live status across replicas: watch on B an order created on A (so A receives its
    // notification and B hears of it through PostgreSQL LISTEN/NOTIFY).
    let (watch_buyer, watch_no, _) = orders
        .iter()
        .enumerate()
        .find(|(n, (_, _, p))| n % 2 == 0 && *p == "wechat")
        .map(|(_, o)| o.clone())
        .unwrap();
    let resp = b
        .client
        .get(b.url(&format!("/api/v1/payment/orders/{watch_no}/events")))
        .bearer_auth(&tokens[watch_buyer])
        .send()
        .await
        .unwrap();
    let watcher = tokio::spawn(sse_statuses(resp, "paid"));
    tokio::time::sleep(Duration::from_millis(200)).await;

    let paying = Instant::now();
    let primary = &a;
    futures_util::future::join_all(orders.iter().map(|(_, no, provider)| async move {
        let (status, body) = primary
            .emulator_post(&format!("/__emulator/{provider}/pay/{no}"), &json!({}))
            .await;
        assert!(status < 300, "{status} {body}");
    }))
    .await;

    // Every order paid (notifications; reconcilers and sweepers run on both replicas).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if pending_count(&a).await == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "orders left pending");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let settled_in = paying.elapsed();
    let statuses = watcher.await.unwrap();
    assert_eq!(
        statuses.last().map(String::as_str),
        Some("paid"),
        "{statuses:?}"
    );

    // Exactly once: each buyer paid 10 x 100 points.
    for (i, token) in tokens.iter().enumerate() {
        let (_, me) = a.get("/api/v1/auth/me", Some(token)).await;
        assert_eq!(me["points_balance"], 1000, "buyer{i}: {me}");
    }
    // Each event delivered once per event id: 200 created + 200 paid.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = counter.per_event().len();
        if n >= 400 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {n} of 400 events delivered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let delivered_in = paying.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let seen = counter.per_event();
    assert_eq!(seen.len(), 400);
    let dupes: Vec<_> = seen.iter().filter(|(_, (_, n))| *n != 1).collect();
    assert!(dupes.is_empty(), "delivered more than once: {dupes:?}");
    let paid_events = seen.values().filter(|(t, _)| t == "order.paid").count();
    assert_eq!(paid_events, 200);
    assert!(counter
        .got
        .lock()
        .unwrap()
        .iter()
        .all(|(_, _, valid)| *valid));
    // Both replicas did dispatch work (claims were shared, never duplicated).
    let records: i64 = {
        let admin = a.admin("replica-admin").await;
        let (_, stats) = a.get("/api/v1/admin/stats", Some(&admin)).await;
        assert_eq!(stats["total_paid_count"], 200, "{stats}");
        stats["total_paid_fen"].as_i64().unwrap()
    };
    assert_eq!(records, 200 * 1000);
    eprintln!(
        "replicas: 200 orders created in {:.2?}, all paid in {:.2?} (duplicated + delayed notifications), 400 webhooks delivered once each within {:.2?}",
        created_in, settled_in, delivered_in
    );
}

/// order-status on `replica` as the buyer sees it.
async fn status_on(replica: &TestApp, token: &str, no: &str) -> String {
    let url = format!("/api/v1/payment/order-status?order_no={no}");
    let (code, body) = replica.get(&url, Some(token)).await;
    assert_eq!(code, 200, "{body}");
    body["status"].as_str().unwrap().to_string()
}

/// order-status is served from each replica's order cache (a TTL of an hour here, so only
/// the invalidation can make a change show): a change committed on one replica, through
/// fenpay or behind its back, reaches the other's readers as soon as it hears of it on
/// `fenpay_orders`; a lost LISTEN connection empties the cache; changes to the jobs'
/// bookkeeping columns alone do not. Jobs are off, and the orders B caches are not pending
/// where B's own order watcher could find out by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_order_cache_never_serves_a_row_another_replica_changed() {
    if std::env::var("TEST_DATABASE_URL").is_err() {
        eprintln!("TEST_DATABASE_URL not set: multi-replica test skipped");
        return;
    }
    let mut o = TestApp::emulator_overrides();
    o.extend([("ORDER_CACHE_TTL_SECS", "3600"), ("JOBS_ENABLED", "false")]);
    let a = TestApp::postgres(&o).await.unwrap();
    let b = a.replica(&o).await;
    let token = a.signup("cached-buyer").await;
    let admin = a.admin("cache-admin").await;
    let live =
        || async { a.state.db.order_cache().is_live() && b.state.db.order_cache().is_live() };
    assert!(
        eventually(live).await,
        "the caches never went live (LISTEN)"
    );
    let create = || async {
        let (status, body) = a
            .post(
                "/api/v1/payment/create-order",
                &json!({"product_type": "points", "product_id": 1, "payment_method": "wechat"}),
                Some(&token),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["order_no"].as_str().unwrap().to_string()
    };
    let hits = |replica: &TestApp| replica.state.db.order_cache().stats().hits;
    // The replica answers from memory (once earlier notices about the order have come).
    let cached_on = |replica: &'static str, no: String| {
        let (app, token) = (if replica == "a" { &a } else { &b }, &token);
        async move {
            eventually(|| async {
                let before = hits(app);
                status_on(app, token, &no).await;
                hits(app) == before + 1
            })
            .await
        }
    };
    let paid = || async {
        let no = create().await;
        pay_at_emulator(&a, "wechat", &no).await;
        assert!(
            eventually(|| async { order(&a, &no).await.status.as_str() == "paid" }).await,
            "the payment was not applied"
        );
        no
    };

    // 1. Refunded through A: B's cached "paid" goes.
    let refunded_no = paid().await;
    assert!(
        cached_on("b", refunded_no.clone()).await,
        "B never cached the order"
    );
    let (code, body) = fenpay_tests::refund(&a, &admin, json!({"order_no": refunded_no})).await;
    assert!(code < 300, "{code} {body}");
    assert!(
        eventually(|| async { order(&a, &refunded_no).await.status.as_str() == "refunded" }).await,
        "the refund did not complete"
    );
    assert!(
        eventually(|| async { status_on(&b, &token, &refunded_no).await == "refunded" }).await,
        "B kept serving the order as paid after A committed the refund"
    );

    // 2. Cancelled through B: A's cached "pending" goes (and B's own, at once).
    let cancel_no = create().await;
    assert!(
        cached_on("a", cancel_no.clone()).await,
        "A never cached the order"
    );
    let (code, body) = b
        .post(
            "/api/v1/payment/cancel-order",
            &json!({"order_no": cancel_no}),
            Some(&token),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(status_on(&b, &token, &cancel_no).await, "cancelled");
    assert!(
        eventually(|| async { status_on(&a, &token, &cancel_no).await == "cancelled" }).await,
        "A kept serving the order as pending after B cancelled it"
    );

    // 3. Behind fenpay's back (an operator's SQL on A's connection): the trigger tells B.
    let manual_no = paid().await;
    assert!(
        cached_on("b", manual_no.clone()).await,
        "B never cached the order"
    );
    a.sql(&format!(
        "UPDATE orders SET status = 'refunded', refunded_fen = amount_fen WHERE order_no = '{manual_no}'"
    ))
    .await;
    assert!(
        eventually(|| async { status_on(&b, &token, &manual_no).await == "refunded" }).await,
        "B missed a change made in SQL"
    );

    // 4. Bookkeeping alone (a job's lease) is quiet: B keeps its copy.
    let quiet_no = paid().await;
    assert!(
        cached_on("b", quiet_no.clone()).await,
        "B never cached the order"
    );
    let before = hits(&b);
    a.sql(&format!(
        "UPDATE orders SET lease_until = '2030-01-01 00:00:00', query_attempts = 7 WHERE order_no = '{quiet_no}'"
    ))
    .await;
    // The notice, were there one, would arrive well within this.
    tokio::time::sleep(Duration::from_millis(300)).await;
    status_on(&b, &token, &quiet_no).await;
    assert_eq!(
        hits(&b),
        before + 1,
        "a bookkeeping write emptied B's cache"
    );

    // 5. The LISTEN connections are cut (a failover) while a change is made: whatever B
    // cached before is not served after it reconnects.
    let cut_no = paid().await;
    assert!(
        cached_on("b", cut_no.clone()).await,
        "B never cached the order"
    );
    a.sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .await;
    a.sql(&format!(
        "UPDATE orders SET status = 'refunded', refunded_fen = amount_fen WHERE order_no = '{cut_no}'"
    ))
    .await;
    assert!(
        eventually(|| async { status_on(&b, &token, &cut_no).await == "refunded" }).await,
        "B served a row from before its LISTEN connection was lost"
    );
    assert!(
        eventually(live).await,
        "the caches did not come back after the LISTEN connections did"
    );
}
