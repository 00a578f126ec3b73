//! Background work under slow receivers, admin resends and skewed clocks (issue 16):
//! a hanging webhook endpoint must not throttle the others; a delivery is never attempted
//! twice at once, whatever the operator or another replica's clock does.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fenpay_tests::{eventually, Backend, TestApp, WebhookReceiver, TEST_WEBHOOK_SECRET};
use serde_json::{json, Value};

/// An endpoint that accepts connections and never answers (until the client gives up).
async fn hanging_endpoint() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    (format!("http://{addr}/hang"), accepted)
}

/// A receiver that answers 204 after `delay`, counting arrivals per event id and how
/// often a request for an event arrived while another for the same event was unanswered.
#[derive(Clone, Default)]
struct SlowReceiver {
    delay: Duration,
    arrivals: Arc<Mutex<HashMap<String, usize>>>,
    in_flight: Arc<Mutex<HashMap<String, usize>>>,
    overlaps: Arc<AtomicUsize>,
}

impl SlowReceiver {
    fn new(delay: Duration) -> SlowReceiver {
        SlowReceiver {
            delay,
            ..Default::default()
        }
    }

    async fn start(&self) -> String {
        let me = self.clone();
        let server = actix_web::HttpServer::new(move || {
            let me = me.clone();
            actix_web::App::new().default_service(actix_web::web::to(
                move |req: actix_web::HttpRequest| {
                    let me = me.clone();
                    async move { me.receive(req).await }
                },
            ))
        })
        .workers(2)
        .bind("127.0.0.1:0")
        .unwrap();
        let addr = server.addrs()[0];
        tokio::spawn(server.run());
        format!("http://{addr}/hooks")
    }

    async fn receive(&self, req: actix_web::HttpRequest) -> actix_web::HttpResponse {
        let id = req
            .headers()
            .get("fenpay-event-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        *self.arrivals.lock().unwrap().entry(id.clone()).or_default() += 1;
        {
            let mut f = self.in_flight.lock().unwrap();
            let n = f.entry(id.clone()).or_default();
            if *n > 0 {
                self.overlaps.fetch_add(1, Ordering::SeqCst);
            }
            *n += 1;
        }
        tokio::time::sleep(self.delay).await;
        *self.in_flight.lock().unwrap().entry(id).or_default() -= 1;
        actix_web::HttpResponse::NoContent().finish()
    }

    fn total(&self) -> usize {
        self.arrivals.lock().unwrap().values().sum()
    }

    fn busy(&self) -> usize {
        self.in_flight.lock().unwrap().values().sum()
    }
}

fn webhook_overrides() -> Vec<(&'static str, &'static str)> {
    let mut o = TestApp::emulator_overrides();
    o.extend([
        ("WEBHOOK_SECRET", TEST_WEBHOOK_SECRET),
        ("DISPATCH_INTERVAL_SECS", "1"),
        ("WEBHOOK_BACKOFF_BASE_SECS", "1"),
    ]);
    o
}

/// Create `n` orders (each writes an `order.created` event), spread over a few buyers.
async fn create_orders(app: &TestApp, n: usize) {
    let mut tokens = Vec::new();
    for b in 0..n.div_ceil(10) {
        tokens.push(app.signup(&format!("buyer{b}")).await);
    }
    let creates = (0..n).map(|i| {
        let token = tokens[i / 10].clone();
        async move {
            let (status, body) = app
                .post(
                    "/api/v1/payment/create-order",
                    &json!({"product_type": "points", "product_id": 1, "payment_method": "wechat"}),
                    Some(&token),
                )
                .await;
            assert_eq!(status, 200, "{body}");
        }
    });
    futures_util::future::join_all(creates).await;
}

/// The deliveries of the app's events to `endpoint`, as the admin API lists them.
async fn deliveries(app: &TestApp, admin: &str, endpoint: &str) -> Vec<Value> {
    let (status, list) = app
        .get(
            "/api/v1/admin/webhooks/deliveries?per_page=100",
            Some(admin),
        )
        .await;
    assert_eq!(status, 200, "{list}");
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["endpoint"] == endpoint)
        .cloned()
        .collect()
}

/// A fresh app on `backend`; `None` (the test is skipped) for PostgreSQL without
/// `TEST_DATABASE_URL`.
async fn start(backend: Backend, overrides: &[(&str, &str)]) -> Option<TestApp> {
    match backend {
        Backend::Sqlite => Some(TestApp::sqlite(overrides).await),
        Backend::Postgres => {
            let app = TestApp::postgres(overrides).await;
            if app.is_none() {
                eprintln!("TEST_DATABASE_URL not set: PostgreSQL variant skipped");
            }
            app
        }
    }
}

/// `name::sqlite` and `name::postgres`, each running `body(backend)`.
macro_rules! on_both {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$body(fenpay_tests::Backend::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$body(fenpay_tests::Backend::Postgres).await;
            }
        }
    };
}

// ---- one hanging endpoint -----------------------------------------------------------------

/// An app whose events go to an endpoint that never answers and to a healthy one.
async fn hanging_and_healthy(
    backend: Backend,
    extra: &[(&'static str, &'static str)],
) -> Option<(TestApp, SlowReceiver, Arc<AtomicUsize>)> {
    let healthy = SlowReceiver::new(Duration::ZERO);
    let healthy_url = healthy.start().await;
    let (hang_url, hung) = hanging_endpoint().await;
    let urls = format!("{hang_url},{healthy_url}");
    let mut o = webhook_overrides();
    o.push(("WEBHOOK_TIMEOUT_SECS", "10"));
    o.extend_from_slice(extra);
    o.push(("WEBHOOK_URLS", &urls));
    let app = start(backend, &o).await?;
    Some((app, healthy, hung))
}

// Two endpoints receive every event; one never answers (each of its deliveries waits the
// whole 10 s client timeout). The healthy endpoint still gets every delivery at once: the
// batch dispatcher sent 20 at a time and waited for the slowest, so the healthy endpoint
// got 10 per 10 s.
on_both!(
    a_hanging_endpoint_does_not_hold_up_the_others,
    hanging_endpoint_case
);
async fn hanging_endpoint_case(backend: Backend) {
    let Some((app, healthy, hung)) = hanging_and_healthy(backend, &[]).await else {
        return;
    };
    let n = 60;
    create_orders(&app, n).await;
    // Generous: the batch dispatcher needed 60 s here (6 batches of 10 s).
    eventually(|| async { healthy.total() >= n }).await;
    assert_eq!(healthy.total(), n, "healthy endpoint's deliveries");
    // The hanging endpoint was tried too, but never with more requests at once than its
    // per-endpoint limit (8 by default).
    let tried = hung.load(Ordering::SeqCst);
    assert!(
        (1..=8).contains(&tried),
        "{tried} requests to the hanging endpoint"
    );
    // Every event reached the healthy endpoint exactly once.
    assert!(healthy.arrivals.lock().unwrap().values().all(|c| *c == 1));
}

// An endpoint that keeps failing has its circuit opened: its due deliveries wait instead
// of being tried one after another, then a probe finds it answering again and the rest
// follow.
on_both!(a_failing_endpoint_is_paused_by_its_circuit, circuit_case);
async fn circuit_case(backend: Backend) {
    let rx = WebhookReceiver::default();
    let url = rx.start().await;
    *rx.fail_first.lock().unwrap() = 1000;
    let mut o = webhook_overrides();
    o.extend([
        ("WEBHOOK_PER_ENDPOINT_CONCURRENCY", "1"),
        ("WEBHOOK_CIRCUIT_FAILURES", "2"),
        ("WEBHOOK_CIRCUIT_OPEN_SECS", "2"),
    ]);
    o.push(("WEBHOOK_URLS", &url));
    let Some(app) = start(backend, &o).await else {
        return;
    };
    let tried = || 1000 - *rx.fail_first.lock().unwrap();
    create_orders(&app, 10).await;
    assert!(eventually(|| async { tried() >= 2 }).await);
    // Ten deliveries are due, but after two failures in a row the endpoint waits.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        tried() <= 3,
        "{} attempts while the circuit was open",
        tried()
    );
    // The receiver recovers: a probe closes the circuit and every event arrives.
    *rx.fail_first.lock().unwrap() = 0;
    assert!(eventually(|| async { rx.per_event().len() == 10 }).await);
}

/// Measures the dispatcher's delivery rate to a healthy endpoint while another endpoint
/// hangs (each of its deliveries waits the 10 s timeout). Prints deliveries/s; asserts
/// nothing. `cargo test -p fenpay-tests --test jobs measure -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a test"]
async fn measure_delivery_rate_with_a_hanging_endpoint() {
    let n = 200;
    // The dispatcher starts once every event is written, so only its rate is measured.
    let (app, healthy, _) = hanging_and_healthy(Backend::Sqlite, &[("JOBS_ENABLED", "false")])
        .await
        .unwrap();
    create_orders(&app, n).await;
    let started = Instant::now();
    tokio::spawn(fenpay::jobs::dispatcher::run(app.state.clone()));
    let window = Duration::from_secs(30);
    while healthy.total() < n && started.elapsed() < window {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let got = healthy.total();
    println!(
        "healthy endpoint: {got} of {n} deliveries in {elapsed:.2} s = {:.1} deliveries/s \
         (another endpoint hangs until the 10 s timeout)",
        got as f64 / elapsed
    );
}

// ---- admin resend ---------------------------------------------------------------------------

// A resend of a delivery whose attempt is still in flight must not start a second attempt
// beside it: the event is sent again once the first attempt is over.
on_both!(
    a_resend_never_runs_beside_the_attempt_in_flight,
    resend_in_flight_case
);
async fn resend_in_flight_case(backend: Backend) {
    let slow = SlowReceiver::new(Duration::from_millis(1500));
    let url = slow.start().await;
    let mut o = webhook_overrides();
    o.push(("WEBHOOK_URLS", &url));
    let Some(app) = start(backend, &o).await else {
        return;
    };
    let admin = app.admin("resend-admin").await;
    create_orders(&app, 1).await;
    // The first attempt is at the receiver, unanswered.
    assert!(eventually(|| async { slow.busy() == 1 }).await);
    let listed = deliveries(&app, &admin, &url).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let id = listed[0]["id"].as_i64().unwrap();
    let (status, body) = app
        .post(
            &format!("/api/v1/admin/webhooks/deliveries/{id}/resend"),
            &json!({}),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // The event is sent twice in all, one attempt after the other.
    assert!(
        eventually(|| async {
            slow.total() >= 2
                && slow.busy() == 0
                && deliveries(&app, &admin, &url).await[0]["status"] == "delivered"
        })
        .await,
        "{} arrivals, {} unanswered",
        slow.total(),
        slow.busy()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(slow.total(), 2, "sent once, then once more for the resend");
    assert_eq!(
        slow.overlaps.load(Ordering::SeqCst),
        0,
        "a second attempt started while the first was in flight"
    );
    let d = &deliveries(&app, &admin, &url).await[0];
    assert_eq!(d["attempts"], 2, "{d}");
}

// An operator resends a delivery that gave up after WEBHOOK_RETRY_HOURS: the retry window
// starts again at the resend, so a receiver still failing is retried, not given up on at
// its first failure.
on_both!(a_resend_restarts_the_retry_window, resend_window_case);
async fn resend_window_case(backend: Backend) {
    let rx = WebhookReceiver::default();
    let url = rx.start().await;
    *rx.fail_first.lock().unwrap() = 1000;
    let mut o = webhook_overrides();
    o.push(("WEBHOOK_CIRCUIT_FAILURES", "1000"));
    o.push(("WEBHOOK_URLS", &url));
    let Some(app) = start(backend, &o).await else {
        return;
    };
    let admin = app.admin("window-admin").await;
    create_orders(&app, 1).await;
    // The delivery was created long ago: its next failure gives up.
    assert!(
        eventually(|| async { deliveries(&app, &admin, &url).await[0]["attempts"] == 1 }).await
    );
    app.sql("UPDATE webhook_deliveries SET created_at = '2020-01-01 00:00:00'")
        .await;
    assert!(
        eventually(|| async { deliveries(&app, &admin, &url).await[0]["status"] == "failed" })
            .await
    );
    let d = deliveries(&app, &admin, &url).await.remove(0);
    let (id, attempts) = (d["id"].as_i64().unwrap(), d["attempts"].as_i64().unwrap());
    let (status, body) = app
        .post(
            &format!("/api/v1/admin/webhooks/deliveries/{id}/resend"),
            &json!({}),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // The resent attempt fails too, and the delivery waits for its next retry.
    assert!(
        eventually(|| async {
            deliveries(&app, &admin, &url).await[0]["attempts"].as_i64() > Some(attempts)
        })
        .await
    );
    let d = deliveries(&app, &admin, &url).await.remove(0);
    assert_eq!(
        d["status"], "pending",
        "given up at once after a resend: {d}"
    );
}

// ---- fenced claims on the database's clock ----------------------------------------------------

/// `t` as a SQL timestamp literal (UTC, like the stored times).
fn ts(t: chrono::DateTime<chrono::Utc>) -> String {
    t.naive_utc().format("'%Y-%m-%d %H:%M:%S%.6f'").to_string()
}

// Two replicas on one database, one whose clock runs a minute ahead. Leases are taken and
// compared on the database's clock, so the skewed replica never takes over a delivery the
// other is still sending (to an endpoint that takes 3 s to answer), nor an order another
// job holds: every event arrives exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_with_skewed_clocks_deliver_each_event_once() {
    if std::env::var("TEST_DATABASE_URL").is_err() {
        eprintln!("TEST_DATABASE_URL not set: multi-replica test skipped");
        return;
    }
    use fenpay::db::orders::{self as order_db, OrderClaim};
    let slow = SlowReceiver::new(Duration::from_secs(3));
    let url = slow.start().await;
    let mut o = webhook_overrides();
    o.push(("WEBHOOK_URLS", &url));
    // Leases last the timeout plus 30 s: 35 s, less than the skew.
    o.push(("WEBHOOK_TIMEOUT_SECS", "5"));
    let a = TestApp::postgres(&o).await.unwrap();
    // A's dispatcher takes the first deliveries and is sending them when B starts.
    let n = 16;
    create_orders(&a, n).await;
    assert!(eventually(|| async { slow.busy() > 0 }).await);
    let mut skewed = o.clone();
    skewed.push(("CLOCK_OFFSET_SECS", "60"));
    let b = a.replica(&skewed).await;
    assert!(
        eventually(|| async {
            slow.total() >= n && slow.busy() == 0 && {
                let (list, _) = fenpay::db::events::list_deliveries(
                    &a.state.db,
                    Some("delivered"),
                    None,
                    100,
                    0,
                )
                .await
                .unwrap();
                list.len() == n
            }
        })
        .await,
        "{} arrivals",
        slow.total()
    );
    // Anything sent twice would have arrived by now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let arrivals = slow.arrivals.lock().unwrap().clone();
    assert_eq!(arrivals.len(), n, "{arrivals:?}");
    assert!(
        arrivals.values().all(|c| *c == 1),
        "events delivered more than once: {arrivals:?}"
    );
    assert_eq!(slow.overlaps.load(Ordering::SeqCst), 0);

    // Orders: a claim A holds for 2 minutes is not B's to take, a minute later by B's clock.
    let later = (chrono::Utc::now() + chrono::Duration::minutes(1)).naive_utc();
    let stale = OrderClaim::StalePending(later, later, 100);
    let claimed = order_db::claim_for_job(&a.state.db, stale, 100, 120)
        .await
        .unwrap();
    assert_eq!(claimed.len(), n);
    let taken = order_db::claim_for_job(&b.state.db, stale, 100, 120)
        .await
        .unwrap();
    assert!(taken.is_empty(), "B took over {} live claims", taken.len());
}

// The skewed replica's expiry sweeper does not close an order before it expires by the
// database's clock (here its own clock runs 10 minutes ahead; the order expires in 5).
on_both!(a_fast_clock_does_not_expire_orders_early, early_expiry_case);
async fn early_expiry_case(backend: Backend) {
    let mut o = TestApp::emulator_overrides();
    o.push(("CLOCK_OFFSET_SECS", "600"));
    let Some(app) = start(backend, &o).await else {
        return;
    };
    create_orders(&app, 1).await;
    let in_5_min = ts(chrono::Utc::now() + chrono::Duration::minutes(5));
    app.sql(&format!("UPDATE orders SET expire_at = {in_5_min}"))
        .await;
    let report = fenpay::jobs::sweep_once(&app.state).await;
    assert_eq!(report, fenpay::jobs::SweepReport::default());
    let (orders, _) = fenpay::db::orders::list_filtered(
        &app.state.db,
        &fenpay::db::orders::OrderFilter {
            status: Some("pending".into()),
            ..Default::default()
        },
        10,
        0,
    )
    .await
    .unwrap();
    assert_eq!(orders.len(), 1, "the order was closed before it expired");
}

// A job whose lease ran out and was taken over finishes late: its finish (a webhook
// attempt) or release (an order claim) changes nothing; the current holder's does.
on_both!(a_stale_finish_or_release_changes_nothing, stale_finish_case);
async fn stale_finish_case(backend: Backend) {
    use fenpay::db::events::{self as event_db, AttemptResult, NewAttempt};
    use fenpay::db::orders::{self as order_db, OrderClaim};
    let url = "http://127.0.0.1:9/hooks";
    let mut o = webhook_overrides();
    o.push(("JOBS_ENABLED", "false"));
    o.push(("WEBHOOK_URLS", url));
    let Some(app) = start(backend, &o).await else {
        return;
    };
    let db = &app.state.db;
    create_orders(&app, 1).await;

    // Webhook delivery: claimed, the lease runs out, claimed again.
    let first = event_db::claim_due_deliveries(db, url, 10, 60)
        .await
        .unwrap();
    assert_eq!(first.ids.len(), 1);
    let id = first.ids[0];
    app.sql("UPDATE webhook_deliveries SET lease_until = '2020-01-01 00:00:00'")
        .await;
    let second = event_db::claim_due_deliveries(db, url, 10, 60)
        .await
        .unwrap();
    assert_eq!(second.ids, vec![id]);
    let attempt = |n| NewAttempt {
        delivery_id: id,
        attempt: n,
        status_code: Some(204),
        error: None,
        duration_ms: 1,
        created_at: chrono::Utc::now().naive_utc(),
    };
    // The first holder's late finish: refused, nothing written.
    let owned = event_db::finish_attempt(db, &first.token, &attempt(1), &AttemptResult::Delivered)
        .await
        .unwrap();
    assert!(!owned);
    let (d, _) = event_db::find_delivery(db, id).await.unwrap().unwrap();
    assert_eq!((d.status.as_str(), d.attempts), ("pending", 0));
    assert!(d.lease_until.is_some(), "the live claim was released");
    assert!(event_db::attempts_for(db, id).await.unwrap().is_empty());
    assert!(event_db::claim_due_deliveries(db, url, 10, 60)
        .await
        .unwrap()
        .ids
        .is_empty());
    // The current holder's finish counts.
    let owned = event_db::finish_attempt(db, &second.token, &attempt(1), &AttemptResult::Delivered)
        .await
        .unwrap();
    assert!(owned);
    let (d, _) = event_db::find_delivery(db, id).await.unwrap().unwrap();
    assert_eq!((d.status.as_str(), d.attempts), ("delivered", 1));
    assert_eq!(event_db::attempts_for(db, id).await.unwrap().len(), 1);

    // Order claim: the same story with the reconciler's release.
    let later = (chrono::Utc::now() + chrono::Duration::minutes(1)).naive_utc();
    let stale = OrderClaim::StalePending(later, later, 100);
    let first = order_db::claim_for_job(db, stale, 10, 120).await.unwrap();
    assert_eq!(first.len(), 1);
    let (no, first_token) = first[0].clone();
    app.sql("UPDATE orders SET lease_until = '2020-01-01 00:00:00'")
        .await;
    let second = order_db::claim_for_job(db, stale, 10, 120).await.unwrap();
    assert_eq!(second.len(), 1);
    let owned = order_db::release_job_claim(db, &no, &first_token, true)
        .await
        .unwrap();
    assert!(!owned);
    let row = fenpay_tests::order(&app, &no).await;
    assert!(row.lease_until.is_some(), "the live claim was released");
    assert_eq!((row.query_attempts, row.last_query_at), (0, None));
    assert!(order_db::claim_for_job(db, stale, 10, 120)
        .await
        .unwrap()
        .is_empty());
    let owned = order_db::release_job_claim(db, &no, &second[0].1, true)
        .await
        .unwrap();
    assert!(owned);
    let row = fenpay_tests::order(&app, &no).await;
    assert!(row.lease_until.is_none());
    assert_eq!(row.query_attempts, 1);
}
