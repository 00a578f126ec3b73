//! Payment records of exchanges that changed nothing (notifications that failed
//! verification, duplicates of an applied payment) are written in the background, many
//! per transaction, so a burst of duplicates or forgeries never queues behind the
//! database. Every other record (a payment applied, a refund completed, an order closed, a
//! mismatch held, a provider call) is stored before the answer goes out.
//!
//! The queue is bounded (`RECORD_QUEUE` records, bodies are at most the request body
//! limit); when it is full a record is dropped, counted and logged, never waited for. A
//! crash loses at most what is queued.
//!
//! Anyone can post to a callback route, so a post that fails verification is kept small
//! ([`unverified_record`]: its SHA-256, length, a short prefix and the provider's headers,
//! truncated) and only within `UNVERIFIED_RECORDS_PER_IP_PER_MIN` per source address and
//! `UNVERIFIED_RECORDS_PER_MIN` in all; beyond that it is counted
//! ([`Recorder::unverified_skipped`]), not stored. Verified notifications keep their
//! whole body.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::web;
use tokio::sync::mpsc;

use api_types::payment::PaymentMethod;
use sha2::{Digest, Sha256};

use crate::db::orders::{self as order_db, NewPaymentRecord};
use crate::startup::AppState;

/// Bytes of an unverified body kept (besides its digest and length).
pub const UNVERIFIED_PREFIX: usize = 256;
/// Longest header value kept of an unverified post.
const UNVERIFIED_HEADER: usize = 128;
/// The headers kept of an unverified post: what verification looked at, and who sent it.
fn kept_header(name: &str) -> bool {
    name.starts_with("wechatpay-")
        || matches!(
            name,
            "content-type" | "content-length" | "user-agent" | "x-forwarded-for"
        )
}

/// The record of a callback post that failed verification: digest, length and prefix of
/// the body (JSON `{"sha256", "len", "prefix"}` in `body`), selected headers truncated.
pub fn unverified_record(
    method: PaymentMethod,
    kind: &str,
    headers: &HashMap<String, String>,
    body: &[u8],
    reason: &str,
) -> NewPaymentRecord {
    let cut = |s: &str, n: usize| -> String {
        let mut end = s.len().min(n);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s[..end].to_string()
    };
    let kept: std::collections::BTreeMap<&str, String> = headers
        .iter()
        .filter(|(k, _)| kept_header(k))
        .map(|(k, v)| (k.as_str(), cut(v, UNVERIFIED_HEADER)))
        .collect();
    let prefix = String::from_utf8_lossy(&body[..body.len().min(UNVERIFIED_PREFIX)]);
    let summary = serde_json::json!({
        "sha256": hex::encode(Sha256::digest(body)),
        "len": body.len(),
        "prefix": prefix,
    });
    crate::service::orders::new_record(
        None,
        method,
        kind,
        &serde_json::to_string(&kept).unwrap_or_default(),
        &summary.to_string(),
        false,
        &cut(&format!("rejected: {reason}"), 512),
    )
}

/// Records waiting to be written; more are dropped.
const RECORD_QUEUE: usize = 2_048;
/// Most records in one write (small: on SQLite it holds the write lock meanwhile).
const BATCH: usize = 64;

/// The handle services queue records on. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Recorder {
    tx: mpsc::Sender<NewPaymentRecord>,
    rx: Arc<Mutex<Option<mpsc::Receiver<NewPaymentRecord>>>>,
    dropped: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    queued: Arc<AtomicU64>,
    written: Arc<AtomicU64>,
    unverified_skipped: Arc<AtomicU64>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    pub fn new() -> Recorder {
        let (tx, rx) = mpsc::channel(RECORD_QUEUE);
        Recorder {
            tx,
            rx: Arc::new(Mutex::new(Some(rx))),
            dropped: Arc::default(),
            failed: Arc::default(),
            queued: Arc::default(),
            written: Arc::default(),
            unverified_skipped: Arc::default(),
        }
    }

    /// Queue a record. Never waits.
    pub fn record(&self, rec: NewPaymentRecord) {
        match self.tx.try_send(rec) {
            Ok(()) => {
                self.queued.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    tracing::warn!(dropped = n, "payment record queue full: records dropped");
                }
            }
        }
    }

    /// Queue the record of a post that failed verification, if `allowed` (within the
    /// unverified-record limits); otherwise only count it.
    pub fn record_unverified(&self, rec: NewPaymentRecord, allowed: bool) {
        if allowed {
            self.record(rec);
        } else {
            let n = self.unverified_skipped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(
                    skipped = n,
                    "unverified callback posts over their limit: counted, not stored"
                );
            }
        }
    }

    /// Unverified callback posts not stored because they were over the limits.
    pub fn unverified_skipped(&self) -> u64 {
        self.unverified_skipped.load(Ordering::Relaxed)
    }

    /// Records dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Records the database refused (logged).
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Wait (up to `limit`) until every record queued so far is written or given up on
    /// (see [`Recorder::failed`]).
    pub async fn flushed(&self, limit: Duration) -> bool {
        let target = self.queued.load(Ordering::Relaxed);
        let deadline = tokio::time::Instant::now() + limit;
        while self.written.load(Ordering::Relaxed) < target {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    fn take_receiver(&self) -> Option<mpsc::Receiver<NewPaymentRecord>> {
        self.rx.lock().ok()?.take()
    }
}

/// Write queued records until the process ends: whatever is waiting goes in one
/// write (up to [`BATCH`]); when a batch fails its records are tried one by one.
pub async fn run(state: web::Data<AppState>) {
    let recorder = state.records.clone();
    let Some(mut rx) = recorder.take_receiver() else {
        return;
    };
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        if order_db::record_many(&state.db, &batch).await.is_err() {
            // One at a time: a bad record must not take the others with it.
            tokio::time::sleep(Duration::from_millis(200)).await;
            for rec in &batch {
                if let Err(e) = order_db::record_many(&state.db, std::slice::from_ref(rec)).await {
                    recorder.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, "could not store a payment record");
                }
            }
        }
        recorder
            .written
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        batch.clear();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn unverified_records_keep_a_digest_and_a_prefix() {
        let body = vec![b'a'; 64 * 1024];
        let headers: HashMap<String, String> = [
            ("wechatpay-signature", "x".repeat(4096)),
            ("cookie", "secret".into()),
            ("content-type", "application/json".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let rec = unverified_record(
            PaymentMethod::Wechat,
            "notification",
            &headers,
            &body,
            "bad signature",
        );
        assert!(!rec.verified && rec.order_no.is_none());
        assert!(rec.body.len() < 1024 && rec.headers.len() < 512, "{rec:?}");
        let summary: serde_json::Value = serde_json::from_str(&rec.body).unwrap();
        assert_eq!(summary["len"], 64 * 1024);
        assert_eq!(summary["sha256"], hex::encode(Sha256::digest(&body)));
        assert_eq!(summary["prefix"].as_str().unwrap().len(), UNVERIFIED_PREFIX);
        assert!(!rec.headers.contains("cookie"));
        // A prefix cut inside a character stays valid text.
        let rec = unverified_record(
            PaymentMethod::Alipay,
            "notification",
            &HashMap::new(),
            "支".repeat(200).as_bytes(),
            "x",
        );
        assert!(serde_json::from_str::<serde_json::Value>(&rec.body).is_ok());
    }
}
