//! Prometheus metrics in the text exposition format (version 0.0.4), hand-rolled.
//!
//! The hot path only touches atomics: every series is preallocated in fixed tables
//! (routes x statuses, providers x operations, ...), so recording never takes a lock or
//! allocates a series. Gauges that live in the database (orders and refunds by status,
//! webhook backlog, stuck orders) are read at scrape time with a few aggregate queries.
//!
//! Exposure (see README, *Metrics*): `METRICS_BIND` serves `/metrics` on its own
//! listener without authentication (bind it to a private address); on the main listener
//! `/metrics` exists only when `METRICS_TOKEN` is set, and then answers only to
//! `Authorization: Bearer <METRICS_TOKEN>` (401 otherwise). Without either it is 404.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use api_types::payment::PaymentMethod;

use crate::error::AppError;
use crate::startup::AppState;

/// Histogram bucket upper bounds in microseconds (rendered in seconds).
const BOUNDS_US: [u64; 12] = [
    1_000, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    5_000_000, 10_000_000,
];

/// A latency histogram of atomics (buckets stored non-cumulative, summed when rendered).
pub struct Histogram {
    buckets: [AtomicU64; BOUNDS_US.len() + 1],
    sum_us: AtomicU64,
}

impl Histogram {
    fn new() -> Histogram {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_us: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = BOUNDS_US.partition_point(|b| *b < us);
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
    }

    fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Relaxed)).sum()
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (i, bound) in BOUNDS_US.iter().enumerate() {
            cumulative += self.buckets[i].load(Relaxed);
            let le = *bound as f64 / 1e6;
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
        }
        cumulative += self.buckets[BOUNDS_US.len()].load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {cumulative}");
        let sum = self.sum_us.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
    }
}

/// Statuses with their own series; anything else counts under `other`.
const STATUSES: [u16; 22] = [
    200, 201, 202, 204, 301, 302, 304, 307, 400, 401, 403, 404, 405, 409, 413, 415, 422, 429, 500,
    502, 503, 504,
];
const PROVIDERS: [&str; 2] = ["wechat", "alipay"];
/// Provider operations (`Providers` methods).
pub const OPS: [&str; 6] = ["prepay", "query", "close", "refund", "refund_query", "bill"];
/// What became of a provider notification: (result, reason).
const NOTICE_OUTCOMES: [(&str, &str); 10] = [
    ("applied", ""),
    ("duplicate", ""),
    ("paid_after_cancel", ""),
    ("accepted", ""),
    ("rejected", "signature"),
    ("rejected", "invalid"),
    ("rejected", "unknown_order"),
    ("rejected", "mismatch"),
    ("rejected", "unconfirmed"),
    ("rejected", "error"),
];
const WEBHOOK_RESULTS: [&str; 3] = ["delivered", "retry", "given_up"];

/// The route patterns requests are counted under (never raw paths).
struct Routes {
    names: Vec<String>,
    index: HashMap<String, usize>,
}

fn routes() -> &'static Routes {
    static ROUTES: OnceLock<Routes> = OnceLock::new();
    ROUTES.get_or_init(|| {
        use utoipa::OpenApi;
        let mut names: Vec<String> = crate::http::openapi::ApiDoc::openapi()
            .paths
            .paths
            .keys()
            .cloned()
            .collect();
        names.extend(["/metrics", "/api-docs/openapi.json"].map(String::from));
        names.sort();
        names.dedup();
        // Everything else (the SPA, Swagger UI assets, unknown paths).
        names.push("other".into());
        let index = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        Routes { names, index }
    })
}

/// Every series of this process.
pub struct Metrics {
    /// [route][status] (the last status slot is `other`).
    http: Vec<Histogram>,
    provider_calls: Vec<Histogram>,
    provider_errors: Vec<AtomicU64>,
    notices: Vec<AtomicU64>,
    webhooks: [AtomicU64; WEBHOOK_RESULTS.len()],
    sse_open: AtomicI64,
}

/// The process's metrics (shared by every app a test process builds; tests compare
/// before and after).
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let n = routes().names.len() * (STATUSES.len() + 1);
        let calls = PROVIDERS.len() * OPS.len();
        Metrics {
            http: (0..n).map(|_| Histogram::new()).collect(),
            provider_calls: (0..calls).map(|_| Histogram::new()).collect(),
            provider_errors: (0..calls).map(|_| AtomicU64::new(0)).collect(),
            notices: (0..PROVIDERS.len() * NOTICE_OUTCOMES.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
            webhooks: std::array::from_fn(|_| AtomicU64::new(0)),
            sse_open: AtomicI64::new(0),
        }
    })
}

fn provider_index(method: PaymentMethod) -> usize {
    match method {
        PaymentMethod::Wechat => 0,
        PaymentMethod::Alipay => 1,
    }
}

/// One HTTP request ended: its route pattern (`None`: no route matched), status, time.
pub fn http_request(pattern: Option<&str>, status: u16, elapsed: Duration) {
    let r = routes();
    let route = pattern
        .and_then(|p| r.index.get(p).copied())
        .unwrap_or(r.names.len() - 1);
    let s = STATUSES
        .iter()
        .position(|c| *c == status)
        .unwrap_or(STATUSES.len());
    global().http[route * (STATUSES.len() + 1) + s].observe(elapsed);
}

/// One provider call ended (`op` is one of [`OPS`]).
pub fn provider_call(method: PaymentMethod, op: &str, ok: bool, elapsed: Duration) {
    let Some(o) = OPS.iter().position(|x| *x == op) else {
        return;
    };
    let i = provider_index(method) * OPS.len() + o;
    let m = global();
    m.provider_calls[i].observe(elapsed);
    if !ok {
        m.provider_errors[i].fetch_add(1, Relaxed);
    }
}

/// What became of a provider notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    Applied,
    Duplicate,
    PaidAfterCancel,
    /// Verified and handled without applying a payment (a refund notice, a scan, a close).
    Accepted,
    BadSignature,
    Invalid,
    UnknownOrder,
    Mismatch,
    Unconfirmed,
    Error,
}

pub fn notification(method: PaymentMethod, outcome: Notice) {
    let i = provider_index(method) * NOTICE_OUTCOMES.len() + outcome as usize;
    global().notices[i].fetch_add(1, Relaxed);
}

/// A verified notification's payment outcome.
pub fn payment_notification(
    method: PaymentMethod,
    outcome: &Result<crate::service::orders::ApplyOutcome, crate::service::orders::ApplyError>,
) {
    use crate::service::orders::{ApplyError as E, ApplyOutcome as O};
    notification(
        method,
        match outcome {
            Ok(O::Applied) => Notice::Applied,
            Ok(O::Duplicate) => Notice::Duplicate,
            Ok(O::PaidAfterCancel) => Notice::PaidAfterCancel,
            Err(E::UnknownOrder(_)) => Notice::UnknownOrder,
            Err(E::Mismatch(_)) => Notice::Mismatch,
            Err(E::Unconfirmed(_)) => Notice::Unconfirmed,
            Err(E::Db(_)) => Notice::Error,
        },
    );
}

/// A verified notification that was not a payment (a refund, a scan, a close): accepted,
/// or refused for `error`.
pub fn other_notification<T>(
    method: PaymentMethod,
    outcome: &Result<T, crate::service::orders::ApplyError>,
) {
    use crate::service::orders::ApplyError as E;
    notification(
        method,
        match outcome {
            Ok(_) => Notice::Accepted,
            Err(E::UnknownOrder(_)) => Notice::UnknownOrder,
            Err(E::Mismatch(_)) => Notice::Mismatch,
            Err(E::Unconfirmed(_)) => Notice::Unconfirmed,
            Err(E::Db(_)) => Notice::Error,
        },
    );
}

/// A notification that failed verification.
pub fn rejected_notification(method: PaymentMethod, e: &crate::providers::ProviderError) {
    let outcome = match e {
        crate::providers::ProviderError::BadSignature(_) => Notice::BadSignature,
        _ => Notice::Invalid,
    };
    notification(method, outcome);
}

/// One webhook attempt ended: `delivered`, `retry` or `given_up`.
pub fn webhook_attempt(result: &str) {
    if let Some(i) = WEBHOOK_RESULTS.iter().position(|r| *r == result) {
        global().webhooks[i].fetch_add(1, Relaxed);
    }
}

/// Held by each open event stream: counts it in `fenpay_sse_streams_open`.
#[derive(Debug)]
pub struct StreamGuard(());

impl StreamGuard {
    pub fn open() -> StreamGuard {
        global().sse_open.fetch_add(1, Relaxed);
        StreamGuard(())
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        global().sse_open.fetch_sub(1, Relaxed);
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// The in-memory series.
pub fn render_process(out: &mut String) {
    let m = global();
    let r = routes();
    header(
        out,
        "fenpay_http_request_duration_seconds",
        "histogram",
        "HTTP requests by route pattern and status, with their latency.",
    );
    for (route, name) in r.names.iter().enumerate() {
        for s in 0..=STATUSES.len() {
            let h = &m.http[route * (STATUSES.len() + 1) + s];
            if h.count() == 0 {
                continue;
            }
            let status = STATUSES
                .get(s)
                .map_or_else(|| "other".to_string(), u16::to_string);
            let labels = format!("route=\"{}\",status=\"{status}\"", escape(name));
            h.render(out, "fenpay_http_request_duration_seconds", &labels);
        }
    }
    header(
        out,
        "fenpay_provider_call_duration_seconds",
        "histogram",
        "Calls to WeChat Pay and Alipay by operation, with their latency.",
    );
    for (p, provider) in PROVIDERS.iter().enumerate() {
        for (o, op) in OPS.iter().enumerate() {
            let labels = format!("provider=\"{provider}\",operation=\"{op}\"");
            m.provider_calls[p * OPS.len() + o].render(
                out,
                "fenpay_provider_call_duration_seconds",
                &labels,
            );
        }
    }
    header(
        out,
        "fenpay_provider_call_errors_total",
        "counter",
        "Provider calls that failed (any error, business refusals included).",
    );
    for (p, provider) in PROVIDERS.iter().enumerate() {
        for (o, op) in OPS.iter().enumerate() {
            let v = m.provider_errors[p * OPS.len() + o].load(Relaxed);
            let _ = writeln!(
                out,
                "fenpay_provider_call_errors_total{{provider=\"{provider}\",operation=\"{op}\"}} {v}"
            );
        }
    }
    header(
        out,
        "fenpay_notifications_total",
        "counter",
        "Provider notifications by provider and result (rejected ones by reason).",
    );
    for (p, provider) in PROVIDERS.iter().enumerate() {
        for (i, (result, reason)) in NOTICE_OUTCOMES.iter().enumerate() {
            let v = m.notices[p * NOTICE_OUTCOMES.len() + i].load(Relaxed);
            let _ = writeln!(
                out,
                "fenpay_notifications_total{{provider=\"{provider}\",result=\"{result}\",reason=\"{reason}\"}} {v}"
            );
        }
    }
    header(
        out,
        "fenpay_webhook_attempts_total",
        "counter",
        "Webhook delivery attempts by result.",
    );
    for (i, result) in WEBHOOK_RESULTS.iter().enumerate() {
        let v = m.webhooks[i].load(Relaxed);
        let _ = writeln!(
            out,
            "fenpay_webhook_attempts_total{{result=\"{result}\"}} {v}"
        );
    }
    header(
        out,
        "fenpay_sse_streams_open",
        "gauge",
        "Live order event streams open now.",
    );
    let _ = writeln!(out, "fenpay_sse_streams_open {}", m.sse_open.load(Relaxed));
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Everything: the process's series, the pool and the database gauges.
pub async fn render(state: &AppState) -> String {
    let mut out = String::with_capacity(16 * 1024);
    render_process(&mut out);
    header(
        &mut out,
        "fenpay_db_pool_connections",
        "gauge",
        "Database pool connections by pool and state (in_use, idle).",
    );
    let size = state.settings.database_pool_size;
    let pools: Vec<(&str, bb8::State, u32)> = match state.db.pools() {
        crate::db::Pools::Pg(p) => vec![("postgres", p.state(), size)],
        crate::db::Pools::Sqlite(r, w) => vec![
            ("sqlite_read", r.state(), size),
            ("sqlite_write", w.state(), 1),
        ],
    };
    for (name, s, _) in &pools {
        let in_use = s.connections.saturating_sub(s.idle_connections);
        let _ = writeln!(
            out,
            "fenpay_db_pool_connections{{pool=\"{name}\",state=\"in_use\"}} {in_use}"
        );
        let _ = writeln!(
            out,
            "fenpay_db_pool_connections{{pool=\"{name}\",state=\"idle\"}} {}",
            s.idle_connections
        );
    }
    header(
        &mut out,
        "fenpay_db_pool_max_connections",
        "gauge",
        "Database pool size limit.",
    );
    for (name, _, max) in &pools {
        let _ = writeln!(
            out,
            "fenpay_db_pool_max_connections{{pool=\"{name}\"}} {max}"
        );
    }
    match crate::db::gauges::read(&state.db).await {
        Ok(g) => {
            header(&mut out, "fenpay_orders", "gauge", "Orders by status.");
            for (status, n) in &g.orders {
                let _ = writeln!(out, "fenpay_orders{{status=\"{}\"}} {n}", escape(status));
            }
            header(&mut out, "fenpay_refunds", "gauge", "Refunds by status.");
            for (status, n) in &g.refunds {
                let _ = writeln!(out, "fenpay_refunds{{status=\"{}\"}} {n}", escape(status));
            }
            header(
                &mut out,
                "fenpay_webhook_deliveries_pending",
                "gauge",
                "Webhook deliveries not yet delivered nor given up.",
            );
            let _ = writeln!(
                out,
                "fenpay_webhook_deliveries_pending {}",
                g.webhooks_pending
            );
            header(
                &mut out,
                "fenpay_webhook_lag_seconds",
                "gauge",
                "How long the oldest due webhook delivery has been waiting (0: none due).",
            );
            let _ = writeln!(out, "fenpay_webhook_lag_seconds {}", g.webhook_lag_secs);
            header(
                &mut out,
                "fenpay_orders_stuck",
                "gauge",
                "Expired orders still pending because closing them at the provider keeps failing.",
            );
            let _ = writeln!(out, "fenpay_orders_stuck {}", g.stuck);
            header(
                &mut out,
                "fenpay_scrape_db_ok",
                "gauge",
                "1 when the database gauges could be read.",
            );
            let _ = writeln!(out, "fenpay_scrape_db_ok 1");
        }
        Err(e) => {
            tracing::warn!(error = %e, "metrics: cannot read the database gauges");
            header(
                &mut out,
                "fenpay_scrape_db_ok",
                "gauge",
                "1 when the database gauges could be read.",
            );
            let _ = writeln!(out, "fenpay_scrape_db_ok 0");
        }
    }
    out
}

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `/metrics` on the main listener: 404 unless `METRICS_TOKEN` is set, then only with
/// `Authorization: Bearer <METRICS_TOKEN>`.
pub async fn guarded(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let token = state.settings.metrics_token.expose();
    if token.is_empty() {
        return AppError::NotFound("route").error_response();
    }
    let given = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !constant_time_eq(given.as_bytes(), token.as_bytes()) {
        return AppError::Unauthorized("metrics need the METRICS_TOKEN bearer token".into())
            .error_response();
    }
    open(state).await
}

/// `/metrics` on the `METRICS_BIND` listener (no authentication: keep it private).
pub async fn open(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(CONTENT_TYPE)
        .body(render(&state).await)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Serve `/metrics` alone on `bind` (the `METRICS_BIND` listener).
pub fn serve_separately(
    state: web::Data<AppState>,
    bind: &str,
) -> anyhow::Result<(actix_web::dev::Server, std::net::SocketAddr)> {
    let listener = std::net::TcpListener::bind(bind)
        .map_err(|e| anyhow::anyhow!("cannot bind METRICS_BIND={bind}: {e}"))?;
    let addr = listener.local_addr()?;
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(state.clone())
            .route("/metrics", web::get().to(open))
    })
    .listen(listener)?
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .run();
    Ok((server, addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_render_cumulative_buckets() {
        let h = Histogram::new();
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(7));
        h.observe(Duration::from_secs(60));
        let mut out = String::new();
        h.render(&mut out, "x", "a=\"b\"");
        assert!(out.contains("x_bucket{a=\"b\",le=\"0.001\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"0.01\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"10\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("x_count{a=\"b\"} 3\n"), "{out}");
    }

    #[test]
    fn requests_count_under_their_route_pattern() {
        http_request(
            Some("/api/v1/payment/orders/{order_no}/events"),
            200,
            Duration::from_millis(3),
        );
        http_request(Some("/nonexistent/{x}"), 418, Duration::from_millis(3));
        let mut out = String::new();
        render_process(&mut out);
        assert!(out.contains(
            "fenpay_http_request_duration_seconds_count{route=\"/api/v1/payment/orders/{order_no}/events\",status=\"200\"}"
        ), "{out}");
        assert!(
            out.contains(
                "fenpay_http_request_duration_seconds_count{route=\"other\",status=\"other\"}"
            ),
            "{out}"
        );
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
