//! The retention purge: removes, in small batches, what is past its window (see
//! [`crate::domain::retention`]). Every replica may run it; deletes are idempotent.

use std::time::Duration;

use actix_web::web;

use crate::db::retention as retention_db;
use crate::db::{self, DbResult};
use crate::domain::retention as rules;
use crate::startup::AppState;

/// Between two purge statements, so other writers get the database.
const PAUSE: Duration = Duration::from_millis(20);

/// What one purge removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionReport {
    pub payment_records: usize,
    pub events: usize,
    pub idempotency_keys: usize,
}

/// Run forever: purge, then wait RETENTION_INTERVAL_SECS.
pub async fn run(state: web::Data<AppState>) {
    let every = Duration::from_secs(state.settings.lifecycle.retention_interval_secs);
    loop {
        match purge_once(&state).await {
            Ok(r) if r != RetentionReport::default() => {
                tracing::info!(report = ?r, "retention purge");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention purge failed; trying again later"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = state.shutdown.triggered() => return,
        }
    }
}

/// One purge of everything past its window (tests call this directly).
pub async fn purge_once(state: &AppState) -> DbResult<RetentionReport> {
    let l = &state.settings.lifecycle;
    // A purge statement may scan much: no statement timeout (PostgreSQL).
    let db = state.db.unhurried();
    let now = db::now();
    let mut report = RetentionReport {
        idempotency_keys: in_batches(|| {
            retention_db::purge_idempotency_keys(&db, now, rules::BATCH)
        })
        .await?,
        ..RetentionReport::default()
    };
    if let Some(before) = rules::cutoff(now, l.retention_records_days) {
        // Records that stay for good are never rescanned in one statement: the purge walks
        // the old ids in steps of BATCH.
        if let Some((low, high)) = retention_db::old_record_ids(&db, before).await? {
            let mut from = low;
            while from <= high {
                let to = from.saturating_add(rules::BATCH);
                report.payment_records +=
                    retention_db::purge_payment_records(&db, before, from, to).await?;
                from = to;
                tokio::time::sleep(PAUSE).await;
            }
        }
    }
    if let Some(before) = rules::cutoff(now, l.retention_events_days) {
        report.events =
            in_batches(|| retention_db::purge_delivered_events(&db, before, rules::BATCH)).await?;
    }
    Ok(report)
}

/// Repeat a batch delete until a batch comes back short, pausing between batches so
/// other writers get the database; returns the rows deleted.
async fn in_batches<F, Fut>(mut batch: F) -> DbResult<usize>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = DbResult<usize>>,
{
    let mut total = 0;
    loop {
        let n = batch().await?;
        total += n;
        if (n as i64) < rules::BATCH {
            return Ok(total);
        }
        tokio::time::sleep(PAUSE).await;
    }
}
