//! Background jobs: the expiry sweeper, the reconciler, the daily bill reconciliation and
//! the webhook dispatcher.
//!
//! Every job claims its rows with a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL), so any
//! number of `fenpay serve` replicas can run them against one database without doing the
//! same work twice. SQLite mode is a single process.

pub mod dispatcher;
pub mod retention;

use std::time::Duration;

use actix_web::web;
use api_types::payment::{CancelReason, OrderStatus};
use chrono::Duration as ChronoDuration;

use crate::db::orders::{self as order_db, OrderClaim};
use crate::db::{refunds as refund_db, ClaimToken};
use crate::domain::order as rules;
use crate::error::AppError;
use crate::service::orders::{self as order_service, ApplyOutcome};
use crate::service::refunds as refund_service;
use crate::startup::AppState;

/// Orders or refunds one job pass takes at a time.
const BATCH: i64 = 50;
/// How long a claim lasts; longer than any provider call with its retries.
const LEASE_SECS: i64 = 120;
/// A cancelled order is checked for a late payment after this long: once, when the
/// provider answers; a failed query is retried with backoff (1 min, 2, 4 ... 1 h) ...
const CANCELLED_CHECK_DELAY_SECS: i64 = 60;
/// ... but no longer after this.
const CANCELLED_CHECK_WINDOW_HOURS: i64 = 24;
/// A processing refund is queried at most this often.
const REFUND_QUERY_GAP_SECS: i64 = 30;

/// How often the daily bill reconciliation looks for a due day (see
/// `service::reconciliation::job_pass`; a run is leased, so replicas never run a day twice).
const BILL_RECONCILE_EVERY: Duration = Duration::from_secs(300);

/// What a sweeper pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Expired orders closed at the provider and cancelled.
    pub cancelled: usize,
    /// Expired orders the provider reported paid: now paid and fulfilled.
    pub paid: usize,
    /// Provider failures: the order stays pending and is retried next pass.
    pub retry: usize,
}

/// What a reconciler pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    pub queried: usize,
    /// Pending orders found paid at the provider (a lost notification).
    pub paid: usize,
    /// Cancelled orders found paid at the provider.
    pub paid_after_close: usize,
    pub refunds_checked: usize,
    pub errors: usize,
}

/// Start the jobs this process runs (and, always, the PostgreSQL LISTEN task, the order
/// watcher and the payment-record writer).
pub fn spawn(state: web::Data<AppState>) {
    let s = &state.settings;
    tokio::spawn(crate::live::listen(
        state.db.clone(),
        s.database_url.expose().to_string(),
        state.hub.clone(),
    ));
    // Serving order-status relies on it, so it runs even without the other jobs.
    tokio::spawn(crate::service::watcher::run(state.clone()));
    tokio::spawn(crate::service::records::run(state.clone()));
    tokio::spawn(crate::db::checkpoint_wal(state.db.clone()));
    if s.wechat.complaints_register {
        tokio::spawn(crate::service::complaints::register_on_start(state.clone()));
    }
    if !s.lifecycle.jobs_enabled {
        tracing::info!("background jobs disabled (JOBS_ENABLED=false)");
        return;
    }
    tokio::spawn(crate::service::complaints::run_periodic(state.clone()));
    let sweep_every = Duration::from_secs(s.lifecycle.sweep_interval_secs);
    let reconcile_every = Duration::from_secs(s.lifecycle.reconcile_interval_secs);
    // Tracked: shutdown waits for them to finish or release what they claimed.
    let sd = state.shutdown.clone();
    let st = state.clone();
    sd.spawn_tracked(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(sweep_every) => {}
                _ = st.shutdown.triggered() => return,
            }
            let report = sweep_once(&st).await;
            if report != SweepReport::default() {
                tracing::info!(?report, "expiry sweep");
            }
        }
    });
    let st = state.clone();
    sd.spawn_tracked(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(reconcile_every) => {}
                _ = st.shutdown.triggered() => return,
            }
            let report = reconcile_once(&st).await;
            if report.paid + report.paid_after_close + report.errors > 0 {
                tracing::info!(?report, "reconciliation");
            }
        }
    });
    if s.lifecycle.bill_reconcile_enabled {
        let st = state.clone();
        sd.spawn_tracked(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(BILL_RECONCILE_EVERY) => {}
                    _ = st.shutdown.triggered() => return,
                }
                match crate::service::reconciliation::job_pass(&st).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(runs = n, "daily bills reconciled"),
                    Err(e) => tracing::warn!(error = %e, "bill reconciliation pass failed; trying again later"),
                }
            }
        });
    }
    tokio::spawn(retention::run(state.clone()));
    sd.spawn_tracked(dispatcher::run(state));
}

/// One sweeper pass: close expired pending orders at the provider, then cancel them as
/// expired; a provider that reports the order paid makes it paid and fulfilled instead.
pub async fn sweep_once(state: &AppState) -> SweepReport {
    let mut report = SweepReport::default();
    let mut seen = std::collections::HashSet::new();
    loop {
        if state.shutdown.is_triggered() {
            return report;
        }
        let claimed = match order_db::claim_for_job(
            &state.db,
            OrderClaim::Expired,
            BATCH,
            LEASE_SECS,
        )
        .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "sweeper cannot claim orders");
                return report;
            }
        };
        // An order this pass already tried is due again only when the pass outlasted its
        // backoff or lease: give it back untouched; the pass ends once nothing new is due.
        let (fresh, again): (Vec<_>, Vec<_>) = claimed
            .into_iter()
            .partition(|(no, _)| seen.insert(no.clone()));
        for (no, claim) in &again {
            release(state, no, claim).await;
        }
        if fresh.is_empty() {
            return report;
        }
        for (no, claim) in fresh {
            // Shutting down: give back what this pass claimed but did not start.
            if state.shutdown.is_triggered() {
                release(state, &no, &claim).await;
                continue;
            }
            let order = match order_db::find(&state.db, &no).await {
                Ok(Some(order)) => order,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(order_no = %no, error = %e, "sweeper cannot read a claimed order");
                    release(state, &no, &claim).await;
                    continue;
                }
            };
            let failure =
                match order_service::close_and_cancel(state, &order, CancelReason::Expired).await {
                    Ok(()) => {
                        report.cancelled += 1;
                        None
                    }
                    Err(AppError::Conflict {
                        code: "order_already_paid",
                        ..
                    }) => match order_db::find(&state.db, &no).await {
                        // The provider says paid and the payment is applied.
                        Ok(Some(o)) if o.status != OrderStatus::Pending => {
                            report.paid += 1;
                            None
                        }
                        // Paid at the provider, but the query that would apply it failed.
                        _ => Some(
                            "paid at the provider; the payment could not be applied yet".into(),
                        ),
                    },
                    Err(e) => Some(e.to_string()),
                };
            if let Some(error) = failure {
                // Retried after a backoff, so orders that keep failing (one provider
                // misconfigured) never hold up the others.
                tracing::warn!(order_no = %no, %error, "could not close an expired order; retrying later");
                report.retry += 1;
                let released = order_db::release_failed_close(
                    &state.db,
                    &no,
                    &claim,
                    &error,
                    rules::close_retry_backoff_secs,
                )
                .await;
                if let Err(e) = released {
                    tracing::warn!(order_no = %no, error = %e, "could not release a job claim");
                }
            }
        }
    }
}

/// Give a claimed order back without noting anything.
async fn release(state: &AppState, order_no: &str, claim: &ClaimToken) {
    if let Err(e) = order_db::release_job_claim(&state.db, order_no, claim, false).await {
        tracing::warn!(order_no = %order_no, error = %e, "could not release a job claim");
    }
}

/// Query with up to PAYMENT_QUERY_RETRY_MAX retries of transient failures.
async fn sync_with_retries(
    state: &AppState,
    order: &order_db::OrderRow,
) -> Result<Option<ApplyOutcome>, crate::providers::ProviderError> {
    let max = state.settings.payment_query_retry_max;
    let mut attempt = 0;
    loop {
        match order_service::sync_with_provider(state, order).await {
            Err(e) if e.is_retryable() && attempt < max => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(200 << attempt.min(5))).await;
            }
            other => return other,
        }
    }
}

/// One reconciler pass: pending orders older than RECONCILE_MIN_AGE_SECS and recently
/// cancelled orders are queried at the provider; payments found are applied exactly as
/// a notification would apply them. Processing refunds are followed up too.
pub async fn reconcile_once(state: &AppState) -> ReconcileReport {
    let mut report = ReconcileReport::default();
    // The database's clock: replicas agree on it whatever their own clocks say.
    let clock = match state.db.clock().await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "reconciler cannot read the database's clock");
            report.errors += 1;
            return report;
        }
    };
    let now = clock.now();
    let l = &state.settings.lifecycle;
    let claims = [
        OrderClaim::StalePending(
            now - ChronoDuration::seconds(l.reconcile_min_age_secs),
            now - ChronoDuration::seconds(l.reconcile_interval_secs as i64 / 2),
            i32::MAX,
        ),
        OrderClaim::RecentlyCancelled(
            now - ChronoDuration::seconds(CANCELLED_CHECK_DELAY_SECS),
            now - ChronoDuration::hours(CANCELLED_CHECK_WINDOW_HOURS),
        ),
    ];
    for claim in claims {
        let cancelled = matches!(claim, OrderClaim::RecentlyCancelled(..));
        let claimed = match order_db::claim_for_job(&state.db, claim, BATCH * 4, LEASE_SECS).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "reconciler cannot claim orders");
                report.errors += 1;
                continue;
            }
        };
        for (no, claim) in claimed {
            if state.shutdown.is_triggered() {
                // Given back untouched: the next replica (or start) picks it up.
                if let Err(e) = order_db::release_job_claim(&state.db, &no, &claim, false).await {
                    tracing::warn!(order_no = %no, error = %e, "could not release a job claim");
                }
                continue;
            }
            let Ok(Some(order)) = order_db::find(&state.db, &no).await else {
                continue;
            };
            report.queried += 1;
            let failed = match sync_with_retries(state, &order).await {
                Ok(Some(ApplyOutcome::Applied)) => {
                    report.paid += 1;
                    false
                }
                Ok(Some(ApplyOutcome::PaidAfterCancel)) => {
                    report.paid_after_close += 1;
                    false
                }
                Ok(_) => false,
                Err(e) => {
                    tracing::warn!(order_no = %no, error = %e, "reconciler query failed");
                    report.errors += 1;
                    true
                }
            };
            let released = if cancelled {
                // Only a verified answer ends the paid-after-close check, and only once the
                // trade can no longer be paid: before its `time_expire` an Alipay page / wap /
                // app trade the buyer never opened may still come into being and be paid.
                let again = failed || order.expire_at > clock.now();
                order_db::release_paid_check(
                    &state.db,
                    &no,
                    &claim,
                    again,
                    rules::paid_check_backoff_secs,
                )
                .await
            } else {
                order_db::release_job_claim(&state.db, &no, &claim, true).await
            };
            if let Err(e) = released {
                tracing::warn!(order_no = %no, error = %e, "could not release a job claim");
            }
        }
    }
    if state.shutdown.is_triggered() {
        return report;
    }
    match refund_db::claim_processing(
        &state.db,
        now - ChronoDuration::seconds(REFUND_QUERY_GAP_SECS),
        BATCH,
        LEASE_SECS,
    )
    .await
    {
        Ok(rows) => {
            for row in rows {
                if state.shutdown.is_triggered() {
                    // Shutting down: give the rest back for the next pass (or replica).
                    if let Err(e) = refund_db::release_claim(&state.db, &row).await {
                        tracing::warn!(out_refund_no = %row.out_refund_no, error = %e, "could not release a refund claim");
                    }
                    continue;
                }
                report.refunds_checked += 1;
                if let Err(e) = refund_service::reconcile(state, &row).await {
                    tracing::warn!(out_refund_no = %row.out_refund_no, error = %e, "refund follow-up failed");
                    report.errors += 1;
                }
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "reconciler cannot claim refunds");
            report.errors += 1;
        }
    }
    report
}
