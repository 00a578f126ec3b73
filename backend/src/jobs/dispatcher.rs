//! Webhook dispatcher: delivers outbox events to the configured endpoints (and Telegram),
//! signed, retried with exponential backoff for WEBHOOK_RETRY_HOURS, every attempt logged.
//!
//! Receivers verify `Fenpay-Signature: t=<unix seconds>,v1=<hex>` where
//! `v1 = HMAC-SHA256(WEBHOOK_SECRET, "<t>.<raw body>")`, and deduplicate by
//! `Fenpay-Event-Id` (delivery is at least once; a lease makes duplicates rare).

use std::time::{Duration, Instant};

use actix_web::web;
use chrono::Utc;
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;

use crate::db::events::{self as event_db, AttemptResult, NewAttempt, TELEGRAM_ENDPOINT};
use crate::db::{self};
use crate::startup::AppState;

/// Longest gap between two attempts.
const MAX_BACKOFF_SECS: i64 = 6 * 3600;
/// Deliveries sent concurrently per batch.
const BATCH: i64 = 20;

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

/// Run forever: deliver what is due, then wait for the next event or the poll period.
pub async fn run(state: web::Data<AppState>) {
    let mut rx = state.hub.subscribe();
    let every = Duration::from_secs(state.settings.lifecycle.dispatch_interval_secs);
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(
            state.settings.lifecycle.webhook_timeout_secs,
        ))
        .user_agent(concat!("fenpay-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhook dispatcher cannot start");
            return;
        }
    };
    loop {
        dispatch_due(&state, &client).await;
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
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

/// Deliver every due delivery now (one pass; tests call this directly).
pub async fn dispatch_due(state: &AppState, client: &reqwest::Client) -> usize {
    let lease = state.settings.lifecycle.webhook_timeout_secs as i64 + 30;
    let mut sent = 0;
    loop {
        let ids = match event_db::claim_due_deliveries(&state.db, BATCH, lease).await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::error!(error = %e, "dispatcher cannot claim deliveries");
                return sent;
            }
        };
        if ids.is_empty() {
            return sent;
        }
        sent += ids.len();
        futures_util::future::join_all(ids.into_iter().map(|id| deliver(state, client, id))).await;
    }
}

async fn deliver(state: &AppState, client: &reqwest::Client, id: i64) {
    let Ok(Some((delivery, event))) = event_db::find_delivery(&state.db, id).await else {
        return;
    };
    let l = &state.settings.lifecycle;
    let started = Instant::now();
    let result = if delivery.endpoint == TELEGRAM_ENDPOINT {
        send_telegram(state, client, &event).await
    } else {
        let t = Utc::now().timestamp();
        let body = event.payload.clone().into_bytes();
        client
            .post(&delivery.endpoint)
            .header("content-type", "application/json")
            .header(
                "fenpay-signature",
                signature_header(l.webhook_secret.expose().as_bytes(), t, &body),
            )
            .header("fenpay-event-id", &event.id)
            .header("fenpay-event-type", &event.event_type)
            .body(body)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .map_err(|e| e.without_url().to_string())
    };
    let attempt = delivery.attempts + 1;
    let now = db::now();
    let (status_code, error, outcome) = match result {
        Ok(code) if (200..300).contains(&code) => (Some(code), None, AttemptResult::Delivered),
        other => {
            let (code, err) = match other {
                Ok(code) => (Some(code), format!("HTTP {code}")),
                Err(e) => (None, e),
            };
            let next =
                now + chrono::Duration::seconds(backoff_secs(l.webhook_backoff_base_secs, attempt));
            let outcome = if next - delivery.created_at
                > chrono::Duration::hours(l.webhook_retry_hours)
            {
                tracing::error!(delivery = id, event = %event.id, endpoint = %redact(state, &delivery.endpoint), "webhook delivery given up");
                AttemptResult::GiveUp
            } else {
                AttemptResult::Retry(next)
            };
            (code, Some(err), outcome)
        }
    };
    let log = NewAttempt {
        delivery_id: id,
        attempt,
        status_code: status_code.map(i32::from),
        error: error.map(|e| redact(state, &e)),
        duration_ms: started.elapsed().as_millis() as i64,
        created_at: now,
    };
    if let Err(e) = event_db::finish_attempt(&state.db, &log, &outcome).await {
        tracing::error!(delivery = id, error = %e, "could not record a webhook attempt");
    }
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
    let order = &payload["data"]["order"];
    let fen = order["amount_fen"].as_i64().unwrap_or(0);
    let title = match event.event_type.as_str() {
        event_db::ORDER_CREATED => "🧾 新订单 / New order",
        event_db::ORDER_PAID => "✅ 已支付 / Paid",
        event_db::ORDER_PAID_AFTER_CLOSE => "⚠️ 关单后支付 / Paid after close — review",
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
