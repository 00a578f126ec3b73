//! Webhook dispatcher: delivers outbox events to the configured endpoints (and Telegram),
//! signed, retried with exponential backoff for WEBHOOK_RETRY_HOURS, every attempt logged.
//!
//! Receivers verify `Fenpay-Signature: t=<unix seconds>,v1=<hex>` where
//! `v1 = HMAC-SHA256(WEBHOOK_SECRET, "<t>.<raw body>")`, and deduplicate by
//! `Fenpay-Event-Id` (delivery is at least once; a fenced lease on the database's clock
//! makes duplicates rare: only a replica that stalls past its lease can cause one).
//!
//! `WEBHOOK_CONCURRENCY` slots are kept busy, each refilled as its delivery ends; one
//! endpoint gets at most `WEBHOOK_PER_ENDPOINT_CONCURRENCY` of them, and an endpoint that
//! keeps failing is paused by its circuit, so a hanging receiver never slows the others.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix_web::web;
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;
use tokio::task::JoinSet;

use crate::db::events::{
    self as event_db, AttemptResult, NewAttempt, EPAY_ENDPOINT_PREFIX, TELEGRAM_ENDPOINT,
};
use crate::db::{ClaimToken, DbClock};
use crate::startup::AppState;

/// Longest gap between two attempts.
const MAX_BACKOFF_SECS: i64 = 6 * 3600;

/// `Fenpay-Signature` header value for `body` at unix time `t`.
pub fn signature_header(secret: &[u8], t: i64, body: &[u8]) -> String {
    format!("t={t},v1={}", hex::encode(sign(secret, t, body)))
}

fn sign(secret: &[u8], t: i64, body: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// Check a `Fenpay-Signature` header (what receivers do; used by our tests and docs).
pub fn verify_signature(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> bool {
    let mut t = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => sigs.extend(hex::decode(v).ok()),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    if (now - t).abs() > tolerance_secs {
        return false;
    }
    sigs.iter().any(|s| {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(t.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.verify_slice(s).is_ok()
    })
}

/// Delay before attempt `attempt + 1`: base * 2^(attempt-1), capped, with ±10% jitter.
pub fn backoff_secs(base: i64, attempt: i32) -> i64 {
    let exp = (attempt.max(1) - 1).min(30) as u32;
    let raw = base
        .saturating_mul(1_i64 << exp.min(40))
        .min(MAX_BACKOFF_SECS);
    let jitter = raw / 10;
    if jitter == 0 {
        return raw;
    }
    raw + rand::thread_rng().gen_range(-jitter..=jitter)
}

/// Endpoints the dispatcher looks at per refill (each gets its own claim).
const MAX_ENDPOINTS_PER_FILL: i64 = 100;

/// An endpoint's circuit: after `WEBHOOK_CIRCUIT_FAILURES` failed attempts in a row it
/// opens and the endpoint's due deliveries wait `WEBHOOK_CIRCUIT_OPEN_SECS`; then one
/// probe is sent (half-open): a success closes it, a failure opens it again.
#[derive(Clone, Debug, Default)]
struct Circuit {
    failures: u32,
    open_until: Option<Instant>,
}

/// The dispatcher of one process: a fixed number of delivery slots, each refilled as
/// soon as its delivery ends, a per-endpoint limit and a circuit per endpoint, so a slow
/// or dead endpoint holds at most its own slots and never delays the others.
struct Dispatcher {
    state: web::Data<AppState>,
    client: reqwest::Client,
    running: JoinSet<Finished>,
    /// The endpoint of each running delivery task, so a task that panics still gives
    /// its endpoint slot back.
    task_endpoints: HashMap<tokio::task::Id, String>,
    in_flight: HashMap<String, usize>,
    circuits: HashMap<String, Circuit>,
    /// Rotates which endpoint is served first, so none is always last.
    turn: usize,
}

/// A delivery that ended: its endpoint and whether the endpoint answered 2xx (`None`
/// when nothing was sent).
struct Finished {
    endpoint: String,
    ok: Option<bool>,
}

impl Dispatcher {
    fn new(state: web::Data<AppState>, client: reqwest::Client) -> Dispatcher {
        Dispatcher {
            state,
            client,
            running: JoinSet::new(),
            task_endpoints: HashMap::new(),
            in_flight: HashMap::new(),
            circuits: HashMap::new(),
            turn: 0,
        }
    }

    /// How many more deliveries to `endpoint` may start now.
    fn allowance(&self, endpoint: &str, now: Instant) -> usize {
        let l = &self.state.settings.lifecycle;
        let busy = self.in_flight.get(endpoint).copied().unwrap_or(0);
        match self.circuits.get(endpoint) {
            Some(c) if c.failures >= l.webhook_circuit_failures => match c.open_until {
                Some(until) if until > now => 0,
                // Half-open: one probe at a time.
                _ => usize::from(busy == 0),
            },
            _ => l.webhook_per_endpoint_concurrency.saturating_sub(busy),
        }
    }

    /// Claim due deliveries into the free slots, endpoint by endpoint within each one's
    /// allowance.
    async fn fill(&mut self) {
        let l = &self.state.settings.lifecycle;
        let mut free = l.webhook_concurrency.saturating_sub(self.running.len());
        if free == 0 {
            return;
        }
        let lease = l.webhook_timeout_secs as i64 + 30;
        let mut endpoints =
            match event_db::due_endpoints(&self.state.db, MAX_ENDPOINTS_PER_FILL).await {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!(error = %e, "dispatcher cannot list due deliveries");
                    return;
                }
            };
        if endpoints.is_empty() {
            return;
        }
        endpoints.sort();
        self.turn = self.turn.wrapping_add(1);
        let start = self.turn % endpoints.len();
        endpoints.rotate_left(start);
        let now = Instant::now();
        for endpoint in endpoints {
            if free == 0 {
                break;
            }
            let n = self.allowance(&endpoint, now).min(free);
            if n == 0 {
                continue;
            }
            let claim =
                match event_db::claim_due_deliveries(&self.state.db, &endpoint, n as i64, lease)
                    .await
                {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::error!(error = %e, "dispatcher cannot claim deliveries");
                        return;
                    }
                };
            let Some(clock) = claim.clock else { continue };
            for id in claim.ids {
                free -= 1;
                *self.in_flight.entry(endpoint.clone()).or_default() += 1;
                let (state, client, token) =
                    (self.state.clone(), self.client.clone(), claim.token.clone());
                let task_endpoint = endpoint.clone();
                let task = self.running.spawn(async move {
                    let ok = deliver(&state, &client, id, &token, clock).await;
                    Finished {
                        endpoint: task_endpoint,
                        ok,
                    }
                });
                self.task_endpoints.insert(task.id(), endpoint.clone());
            }
        }
    }

    /// Book a delivery that ended: free its slot and move the endpoint's circuit.
    /// Book a delivery task that ended, however it ended. One that panicked frees its
    /// slots like any other; its claim is retried once its lease runs out.
    fn ended(&mut self, result: Result<(tokio::task::Id, Finished), tokio::task::JoinError>) {
        match result {
            Ok((id, done)) => {
                self.task_endpoints.remove(&id);
                self.finished(done);
            }
            Err(e) => {
                tracing::error!(error = %e, "a webhook delivery task failed; it is retried after its lease");
                if let Some(endpoint) = self.task_endpoints.remove(&e.id()) {
                    self.finished(Finished { endpoint, ok: None });
                }
            }
        }
    }

    fn finished(&mut self, done: Finished) {
        if let Some(n) = self.in_flight.get_mut(&done.endpoint) {
            *n = n.saturating_sub(1);
        }
        let l = &self.state.settings.lifecycle;
        let circuit = self.circuits.entry(done.endpoint.clone()).or_default();
        match done.ok {
            Some(true) => {
                if circuit.failures >= l.webhook_circuit_failures {
                    tracing::info!(endpoint = %redact(&self.state, &done.endpoint), "webhook endpoint answers again: circuit closed");
                }
                *circuit = Circuit::default();
            }
            Some(false) => {
                circuit.failures = circuit.failures.saturating_add(1);
                if circuit.failures >= l.webhook_circuit_failures {
                    if circuit.failures == l.webhook_circuit_failures {
                        tracing::warn!(endpoint = %redact(&self.state, &done.endpoint), failures = circuit.failures, "webhook endpoint keeps failing: circuit open, its deliveries wait");
                    }
                    circuit.open_until =
                        Some(Instant::now() + Duration::from_secs(l.webhook_circuit_open_secs));
                }
            }
            None => {}
        }
    }

    /// When the next open circuit may be probed.
    fn next_probe(&self) -> Option<Instant> {
        let threshold = self.state.settings.lifecycle.webhook_circuit_failures;
        self.circuits
            .values()
            .filter(|c| c.failures >= threshold)
            .filter_map(|c| c.open_until)
            .filter(|t| *t > Instant::now())
            .min()
    }
}

/// Run forever: keep every delivery slot busy with what is due, refilling a slot as its
/// delivery ends; otherwise wait for a new event, a circuit to half-open, or the poll.
pub async fn run(state: web::Data<AppState>) {
    let mut rx = state.hub.subscribe();
    let every = Duration::from_secs(state.settings.lifecycle.dispatch_interval_secs);
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(
            state.settings.lifecycle.webhook_timeout_secs,
        ))
        .user_agent(concat!("fenpay-webhooks/", env!("CARGO_PKG_VERSION")))
        // A redirect would carry the signed body to wherever the receiver points: a 3xx
        // is a failed attempt (recorded with its status), never followed.
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhook dispatcher cannot start");
            return;
        }
    };
    let mut d = Dispatcher::new(state, client);
    loop {
        if d.state.shutdown.is_triggered() {
            // Claim nothing more; let the deliveries in flight finish and record.
            while let Some(done) = d.running.join_next_with_id().await {
                d.ended(done);
            }
            return;
        }
        d.fill().await;
        let poll = tokio::time::Instant::now() + every;
        let wake = d
            .next_probe()
            .map_or(poll, |t| poll.min(tokio::time::Instant::from_std(t)));
        tokio::select! {
            Some(done) = d.running.join_next_with_id(), if !d.running.is_empty() => {
                d.ended(done);
                // Book every other delivery that ended meanwhile before refilling.
                while let Some(done) = d.running.try_join_next_with_id() {
                    d.ended(done);
                }
            }
            _ = tokio::time::sleep_until(wake) => {}
            _ = d.state.shutdown.triggered() => {}
            r = rx.recv() => {
                if let Err(tokio::sync::broadcast::error::RecvError::Closed) = r {
                    return;
                }
                // Let a burst of events from one transaction arrive together.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Send one claimed delivery and record the attempt (if the claim still holds).
/// `Some(true)` when the endpoint answered 2xx, `Some(false)` when it failed, `None` when
/// no endpoint was contacted.
async fn deliver(
    state: &AppState,
    client: &reqwest::Client,
    id: i64,
    token: &ClaimToken,
    clock: DbClock,
) -> Option<bool> {
    let Ok(Some((delivery, event))) = event_db::find_delivery(&state.db, id).await else {
        return None;
    };
    let l = &state.settings.lifecycle;
    let started = Instant::now();
    let result = if delivery.endpoint == TELEGRAM_ENDPOINT {
        send_telegram(state, client, &event)
            .await
            .map(Answer::status)
    } else if delivery.endpoint.starts_with(EPAY_ENDPOINT_PREFIX) {
        send_epay(state, client, &event).await
    } else if let Some(app_id) = delivery
        .endpoint
        .strip_prefix(event_db::APP_ENDPOINT_PREFIX)
    {
        // An app's own endpoint, signed with the app's secret, both as they are now.
        match crate::db::apps::find(&state.db, app_id).await {
            Ok(Some(app)) => match app.webhook_url.as_deref() {
                Some(url) => {
                    post_event(client, url, app.webhook_secret.as_bytes(), &event, state).await
                }
                None => Err(NO_APP_WEBHOOK.to_string()),
            },
            Ok(None) => Err("the app does not exist".to_string()),
            Err(e) => Err(format!("could not read the app: {e}")),
        }
    } else {
        post_event(
            client,
            &delivery.endpoint,
            l.webhook_secret.expose().as_bytes(),
            &event,
            state,
        )
        .await
    };
    let attempt = delivery.attempts + 1;
    // The database's time now: the claim's reading plus the time since.
    let now = clock.now();
    let (status_code, error, outcome) = match result {
        Ok(Answer {
            code,
            refused: None,
        }) if (200..300).contains(&code) => (Some(code), None, AttemptResult::Delivered),
        other => {
            let (code, err) = match other {
                Ok(Answer {
                    code,
                    refused: Some(why),
                }) => (Some(code), why),
                Ok(Answer {
                    code,
                    refused: None,
                }) => (Some(code), format!("HTTP {code}")),
                Err(e) => (None, e),
            };
            let after = backoff_secs(l.webhook_backoff_base_secs, attempt);
            let next = now + chrono::Duration::seconds(after);
            let outcome = if err == NO_APP_WEBHOOK {
                // Nothing to retry: an app that takes no webhooks (an epay-only app). The
                // delivery stays in the log as failed; a resend sends it once a URL is set.
                AttemptResult::GiveUp
            } else if next - delivery.retry_window_start()
                > chrono::Duration::hours(l.webhook_retry_hours)
            {
                tracing::error!(delivery = id, event = %event.id, endpoint = %redact(state, &delivery.endpoint), "webhook delivery given up");
                AttemptResult::GiveUp
            } else {
                AttemptResult::Retry(after)
            };
            (code, Some(err), outcome)
        }
    };
    let ok = matches!(outcome, AttemptResult::Delivered);
    // No endpoint was contacted when the app takes no webhooks: that says nothing about
    // an endpoint's health, so it must not open (or close) a circuit. Counted, an
    // epay-only app's sixth order would wait behind an open circuit for nothing.
    let contacted = error.as_deref() != Some(NO_APP_WEBHOOK);
    crate::metrics::webhook_attempt(match outcome {
        AttemptResult::Delivered => "delivered",
        AttemptResult::Retry(_) => "retry",
        AttemptResult::GiveUp => "given_up",
    });
    let log = NewAttempt {
        delivery_id: id,
        attempt,
        status_code: status_code.map(i32::from),
        error: error.map(|e| redact(state, &e)),
        duration_ms: started.elapsed().as_millis() as i64,
        created_at: now,
    };
    // A failed write is tried again within the lease: an attempt the receiver took
    // must not be sent again only because our database hiccuped.
    let mut tries = 0;
    let recorded = loop {
        match event_db::finish_attempt(&state.db, token, &log, &outcome).await {
            Err(e) if tries < 3 => {
                tries += 1;
                tracing::warn!(delivery = id, error = %e, "could not record a webhook attempt; trying again");
                tokio::time::sleep(Duration::from_millis(500 * tries)).await;
            }
            other => break other,
        }
    };
    match recorded {
        Ok(true) => {}
        Ok(false) => tracing::warn!(
            delivery = id,
            attempt,
            delivered = ok,
            "webhook attempt ended after its claim was lost (lease expired and taken over, or superseded by a resend): not recorded"
        ),
        Err(e) => tracing::error!(delivery = id, error = %e, "could not record a webhook attempt"),
    }
    contacted.then_some(ok)
}

/// Why an app's delivery was not sent: the app has no `webhook_url`.
const NO_APP_WEBHOOK: &str = "the app has no webhook_url";

/// POST an event's payload to `url`, signed with `secret` (`fenpay-signature`).
async fn post_event(
    client: &reqwest::Client,
    url: &str,
    secret: &[u8],
    event: &event_db::EventRow,
    state: &AppState,
) -> Result<Answer, String> {
    // The signature's time is this process's clock: receivers compare it with theirs.
    let t = state.db.now().and_utc().timestamp();
    let body = event.payload.clone().into_bytes();
    client
        .post(url)
        .header("content-type", "application/json")
        .header("fenpay-signature", signature_header(secret, t, &body))
        .header("fenpay-event-id", &event.id)
        .header("fenpay-event-type", &event.event_type)
        .body(body)
        .send()
        .await
        .map(|r| Answer::status(r.status().as_u16()))
        .map_err(|e| e.without_url().to_string())
}

/// What an endpoint answered: its HTTP status, and why the answer does not count as
/// delivered although the status may be 2xx (an epay receiver must answer `success`).
struct Answer {
    code: u16,
    refused: Option<String>,
}

impl Answer {
    fn status(code: u16) -> Answer {
        Answer {
            code,
            refused: None,
        }
    }
}

/// Longest epay receiver answer read (`success` is all it needs to say).
const EPAY_ANSWER_MAX: usize = 1024;

/// An epay payment notification: a GET to the order's `notify_url` with the signed
/// parameters; delivered only when the body is exactly `success` (blanks aside).
async fn send_epay(
    state: &AppState,
    client: &reqwest::Client,
    event: &event_db::EventRow,
) -> Result<Answer, String> {
    let order_no = event.order_no.as_deref().unwrap_or_default();
    let (notify_url, query) = crate::service::epay::notification(state, order_no)
        .await
        .map_err(|e| format!("cannot build the epay notification: {e}"))?;
    let mut url =
        reqwest::Url::parse(&notify_url).map_err(|_| "notify_url is not a URL".to_string())?;
    url.query_pairs_mut().extend_pairs(query.iter());
    let mut response = client
        .get(url)
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    let code = response.status().as_u16();
    let mut body = Vec::new();
    while body.len() < EPAY_ANSWER_MAX {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(e) => return Err(e.without_url().to_string()),
        }
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(EPAY_ANSWER_MAX)]);
    if (200..300).contains(&code) && crate::domain::epay::acknowledged(&text) {
        return Ok(Answer::status(code));
    }
    let shown: String = text.trim().chars().take(64).collect();
    Ok(Answer {
        code,
        refused: Some(format!(
            "HTTP {code}: the receiver answered {shown:?}, not `success`"
        )),
    })
}

/// Never let the Telegram bot token reach logs or the delivery log.
fn redact(state: &AppState, text: &str) -> String {
    let token = state.settings.lifecycle.telegram_bot_token.expose();
    if token.is_empty() {
        text.to_string()
    } else {
        text.replace(token, "<redacted>")
    }
}

fn telegram_text(event: &event_db::EventRow) -> String {
    let payload: serde_json::Value = serde_json::from_str(&event.payload).unwrap_or_default();
    if event.event_type == event_db::COMPLAINT_CREATED {
        return complaint_text(&payload["data"]["complaint"]);
    }
    let order = &payload["data"]["order"];
    let fen = order["amount_fen"].as_i64().unwrap_or(0);
    let title = match event.event_type.as_str() {
        event_db::ORDER_CREATED => "🧾 新订单 / New order",
        event_db::ORDER_PAID => "✅ 已支付 / Paid",
        event_db::ORDER_PAID_AFTER_CLOSE => "⚠️ 关单后支付 / Paid after close — review",
        event_db::ORDER_DUPLICATE_PAYMENT => "⚠️ 重复支付 / Duplicate payment — review",
        other => other,
    };
    format!(
        "{title}\n{}\n¥{}.{:02} · {} · {}",
        order["order_no"].as_str().unwrap_or(""),
        fen / 100,
        fen % 100,
        order["provider"].as_str().unwrap_or(""),
        order["product_name"].as_str().unwrap_or(""),
    )
}

/// A new complaint: what, how much, which order, and the time left to answer.
fn complaint_text(c: &serde_json::Value) -> String {
    let amount = c["amount_fen"]
        .as_i64()
        .map(|fen| format!("¥{}.{:02}", fen / 100, fen % 100))
        .unwrap_or_else(|| "-".into());
    let left = c["time_left_secs"]
        .as_i64()
        .map(|s| format!("{}h{:02}m", s.div_euclid(3600), s.rem_euclid(3600) / 60))
        .unwrap_or_else(|| "-".into());
    format!(
        "📣 微信支付投诉 / WeChat Pay complaint — reply within {left}\n{} · {}\n{amount} · {}",
        c["complaint_id"].as_str().unwrap_or(""),
        c["problem_type"].as_str().unwrap_or("OTHERS"),
        c["order_no"].as_str().unwrap_or("-"),
    )
}

async fn send_telegram(
    state: &AppState,
    client: &reqwest::Client,
    event: &event_db::EventRow,
) -> Result<u16, String> {
    let l = &state.settings.lifecycle;
    let url = format!(
        "{}/bot{}/sendMessage",
        l.telegram_api_base,
        l.telegram_bot_token.expose()
    );
    client
        .post(url)
        .json(&serde_json::json!({ "chat_id": l.telegram_chat_id, "text": telegram_text(event) }))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .map_err(|e| e.without_url().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_reject_tampering() {
        let secret = b"whsec_test_only";
        let body = br#"{"id":"evt_1"}"#;
        let h = signature_header(secret, 1_700_000_000, body);
        assert!(h.starts_with("t=1700000000,v1="));
        assert!(verify_signature(secret, &h, body, 1_700_000_010, 300));
        assert!(!verify_signature(
            secret,
            &h,
            br#"{"id":"evt_2"}"#,
            1_700_000_010,
            300
        ));
        assert!(!verify_signature(b"other", &h, body, 1_700_000_010, 300));
        // Replayed long after: refused.
        assert!(!verify_signature(secret, &h, body, 1_700_001_000, 300));
        assert!(!verify_signature(secret, "v1=00", body, 1_700_000_000, 300));
    }

    #[test]
    fn signature_matches_an_independent_computation() {
        // HMAC-SHA256(key="key", "1.{}") computed with Python's hmac module.
        let h = signature_header(b"key", 1, b"{}");
        assert_eq!(
            h,
            "t=1,v1=1ba6b8171186efc613e8bcc0cbdab2748f24984d7c5a84faa2637afa0e40d224"
        );
    }

    #[test]
    fn backoff_doubles_and_caps() {
        for (attempt, expect) in [(1, 30), (2, 60), (3, 120), (10, 15_360)] {
            let got = backoff_secs(30, attempt);
            assert!((got - expect).abs() <= expect / 10, "{attempt}: {got}");
        }
        let capped = backoff_secs(30, 40);
        assert!(capped <= MAX_BACKOFF_SECS + MAX_BACKOFF_SECS / 10);
        assert!(capped >= MAX_BACKOFF_SECS - MAX_BACKOFF_SECS / 10);
    }
}
