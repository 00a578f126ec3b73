//! Payment records of exchanges that changed nothing (notifications that failed
//! verification, duplicates of an applied payment) are written in the background, many
//! per transaction, so a burst of duplicates or forgeries never queues behind the
//! database. Every other record (a payment applied, a refund completed, an order closed, a
//! mismatch held, a provider call) is stored before the answer goes out.
//!
//! The queue is bounded (`RECORD_QUEUE` records, bodies are at most the request body
//! limit); when it is full a record is dropped, counted and logged, never waited for. A
//! crash loses at most what is queued.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::web;
use tokio::sync::mpsc;

use crate::db::orders::{self as order_db, NewPaymentRecord};
use crate::startup::AppState;

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
