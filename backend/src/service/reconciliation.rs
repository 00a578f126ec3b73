//! Three-way reconciliation of a provider's daily bill with our orders and refunds:
//! fetch the bill, load ours, match (`domain::reconciliation`), apply the payments the
//! provider has and we lack (verified by a query, through the same path as a lost
//! notification), store the run, and emit `reconciliation.mismatch` on any difference.
//! The daily job, `fenpay reconcile` and the admin API all go through [`run_day`].

use std::collections::BTreeMap;

use api_types::payment::PaymentMethod;
use api_types::reconciliation::{
    ReconItemKind, ReconStatus, Reconciliation, ReconciliationDetail, ReconciliationItem,
};
use chrono::NaiveDate;

use crate::db::events::{PendingEvent, RECONCILIATION_MISMATCH};
use crate::db::orders as order_db;
use crate::db::reconciliations::{self as recon_db, Finished, ItemRow, NewItem, ReconRow};
use crate::db::{self, ClaimToken};
use crate::domain::bills::BillFetch;
use crate::domain::reconciliation::{self as rules, Item, OrderSnap, RefundSnap, Window};
use crate::error::{AppError, AppResult};
use crate::providers::ProviderError;
use crate::service::orders::{self as order_service, ApplyOutcome};
use crate::startup::AppState;

/// A run holds its day this long; longer than a bill download and the queries it makes.
const LEASE_SECS: i64 = 600;
/// A bill not ready yet, or a failed run, is tried again after this long.
pub const RETRY_SECS: i64 = 30 * 60;

/// Who asked for a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// The daily job: only a due run that is not done.
    Job,
    /// An operator (CLI, admin API): now, whatever the run's state.
    Hand,
}

fn method_str(m: PaymentMethod) -> &'static str {
    m.as_str()
}

fn method_of(s: &str) -> PaymentMethod {
    if s == "alipay" {
        PaymentMethod::Alipay
    } else {
        PaymentMethod::Wechat
    }
}

/// Reconcile `method`'s bill of the China-time `day`. `Ok(None)` when the job finds the
/// day taken or not due; by hand, a day being run elsewhere is 409
/// `reconciliation_running`. A bill not ready yet or a provider failure is not an error:
/// the run is stored `not_ready` / `failed` and retried by the job.
pub async fn run_day(
    state: &AppState,
    method: PaymentMethod,
    day: NaiveDate,
    trigger: Trigger,
) -> AppResult<Option<ReconciliationDetail>> {
    run_day_with(state, method, day, trigger, None).await
}

/// [`run_day`] with the bill already in hand (`None`: download it). Tests feed
/// hand-built bills through here; everything else about the run is the same.
#[doc(hidden)]
pub async fn run_day_with(
    state: &AppState,
    method: PaymentMethod,
    day: NaiveDate,
    trigger: Trigger,
    bill: Option<Result<BillFetch, ProviderError>>,
) -> AppResult<Option<ReconciliationDetail>> {
    if !state.providers.is_configured(method) {
        return Err(AppError::bad_request(
            "payment_method_unavailable",
            format!("{} is not configured", method.as_str()),
        ));
    }
    let day_str = day.format("%Y-%m-%d").to_string();
    let row = recon_db::ensure(&state.db, method_str(method), &day_str).await?;
    let Some(token) =
        recon_db::claim(&state.db, row.id, LEASE_SECS, trigger == Trigger::Job).await?
    else {
        return match trigger {
            Trigger::Job => Ok(None),
            Trigger::Hand => Err(AppError::conflict(
                "reconciliation_running",
                "this day is being reconciled right now; try again shortly",
            )),
        };
    };
    let result = attempt(state, &row, method, day, &token, bill).await;
    if let Err(e) = &result {
        // Our own failure (database): give the day back for a later attempt.
        let _ = recon_db::postpone(
            &state.db,
            row.id,
            &token,
            "failed",
            &e.to_string(),
            RETRY_SECS,
        )
        .await;
        return Err(AppError::Internal(anyhow::anyhow!("{e}")));
    }
    detail(state, row.id).await
}

async fn attempt(
    state: &AppState,
    row: &ReconRow,
    method: PaymentMethod,
    day: NaiveDate,
    token: &ClaimToken,
    bill: Option<Result<BillFetch, ProviderError>>,
) -> anyhow::Result<()> {
    let fetched = match bill {
        Some(b) => b,
        None => state.providers.fetch_bill(method, day).await,
    };
    let (rows, stated) = match fetched {
        Ok(BillFetch::Ready { rows, totals, .. }) => (rows, totals),
        Ok(BillFetch::NotReady { reason }) => {
            tracing::info!(provider = method.as_str(), %day, %reason, "bill not ready; retrying later");
            recon_db::postpone(&state.db, row.id, token, "not_ready", &reason, RETRY_SECS).await?;
            return Ok(());
        }
        Err(e) => {
            tracing::warn!(provider = method.as_str(), %day, error = %e, "bill download failed; retrying later");
            recon_db::postpone(
                &state.db,
                row.id,
                token,
                "failed",
                &e.to_string(),
                RETRY_SECS,
            )
            .await?;
            return Ok(());
        }
    };
    let window = Window::china_day(day).widened();
    let named_orders: Vec<String> = rows.iter().map(|r| r.out_trade_no.clone()).collect();
    let named_refunds: Vec<String> = rows
        .iter()
        .filter_map(|r| r.out_refund_no.clone())
        .collect();
    let provider = method_str(method);
    let (from, before) = (window.start.naive_utc(), window.end.naive_utc());
    let orders =
        recon_db::orders_touching(&state.db, provider, from, before, &named_orders).await?;
    let refunds =
        recon_db::refunds_touching(&state.db, provider, from, before, &named_refunds).await?;
    let order_snaps: Vec<OrderSnap> = orders
        .iter()
        .map(|o| OrderSnap {
            order_no: o.order_no.clone(),
            status: o.status,
            amount_fen: o.amount_fen,
            provider_trade_no: o.provider_transaction_id.clone(),
            paid_at: o.paid_at.map(db::utc),
        })
        .collect();
    let refund_snaps: Vec<RefundSnap> = refunds
        .iter()
        .map(|r| RefundSnap {
            out_refund_no: r.out_refund_no.clone(),
            order_no: r.order_no.clone(),
            amount_fen: r.amount_fen,
            status: r.status,
            succeeded_at: r.succeeded_at.map(db::utc),
        })
        .collect();
    let outcome = rules::reconcile(
        method,
        day,
        &rows,
        Some(&stated),
        &order_snaps,
        &refund_snaps,
    );
    let mut items = Vec::with_capacity(outcome.items.len());
    let mut applied_count = 0;
    for item in &outcome.items {
        let (applied, note) = if item.kind == ReconItemKind::MissingHere {
            apply_missing(state, item, &day.to_string()).await
        } else {
            (false, None)
        };
        applied_count += i64::from(applied);
        items.push(new_item(row.id, item, applied, note));
    }
    let differences = outcome.difference_count() as i64;
    let figures = Finished {
        bill_payments_fen: outcome.totals.bill_payments_fen,
        bill_refunds_fen: outcome.totals.bill_refunds_fen,
        bill_fees_fen: outcome.totals.bill_fees_fen,
        net_fen: outcome.totals.net_fen,
        our_payments_fen: outcome.totals.our_payments_fen,
        our_refunds_fen: outcome.totals.our_refunds_fen,
        matched_count: outcome.matched_count() as i64,
        difference_count: differences,
        applied_count,
    };
    let event = (differences > 0).then(|| {
        let mut by_kind: BTreeMap<&str, i64> = BTreeMap::new();
        for i in outcome.differences() {
            *by_kind.entry(i.kind.as_str()).or_default() += 1;
        }
        PendingEvent::general(
            RECONCILIATION_MISMATCH,
            serde_json::json!({
                "reconciliation_id": row.id,
                "provider": provider,
                "date": day,
                "differences": differences,
                "applied": applied_count,
                "kinds": by_kind,
                "bill_payments_fen": figures.bill_payments_fen,
                "bill_refunds_fen": figures.bill_refunds_fen,
                "bill_fees_fen": figures.bill_fees_fen,
                "net_fen": figures.net_fen,
            }),
            &state.sinks,
            db::now(),
        )
    });
    if !recon_db::finish(&state.db, row.id, token, &figures, &items, event.as_ref()).await? {
        anyhow::bail!("the run's claim was lost (another run took the day over)");
    }
    if let Some(ev) = &event {
        state.hub.committed([ev]);
        tracing::warn!(provider, %day, differences, applied = applied_count, "reconciliation found differences");
    } else {
        tracing::info!(provider, %day, matched = figures.matched_count, "reconciliation: no differences");
    }
    Ok(())
}

/// A payment the bill has and we lack: only a verified query may apply it, through the
/// same path as a lost notification; then the order is flagged for an operator.
/// Returns (applied, what happened).
async fn apply_missing(state: &AppState, item: &Item, day: &str) -> (bool, Option<String>) {
    let Some(order_no) = item.order_no.as_deref() else {
        return (false, None);
    };
    let order = match order_db::find(&state.db, order_no).await {
        Ok(Some(o)) => o,
        Ok(None) => return (false, Some("the order is gone".into())),
        Err(e) => return (false, Some(format!("could not read the order: {e}"))),
    };
    match order_service::sync_with_provider(state, &order).await {
        Ok(Some(outcome @ (ApplyOutcome::Applied | ApplyOutcome::PaidAfterCancel))) => {
            let reason = format!(
                "payment applied by the reconciliation of {day}: paid at the provider, not here"
            );
            if let Err(e) = recon_db::flag_order(&state.db, order_no, &reason).await {
                tracing::warn!(order_no, error = %e, "could not flag a reconciled order for review");
            }
            tracing::warn!(
                order_no,
                ?outcome,
                "reconciliation applied a payment missing here"
            );
            (
                true,
                Some(format!(
                    "verified with the provider and applied ({outcome:?})"
                )),
            )
        }
        Ok(Some(ApplyOutcome::Duplicate)) => (
            false,
            Some("already paid by the time it was verified (a notification arrived)".into()),
        ),
        Ok(None) => (
            false,
            Some("the provider's query does not report it paid: left unchanged".into()),
        ),
        Err(e) => (
            false,
            Some(format!(
                "could not be verified with the provider ({e}): left unchanged"
            )),
        ),
    }
}

fn new_item(run: i64, i: &Item, applied: bool, note: Option<String>) -> NewItem {
    let detail = match note {
        Some(n) if i.detail.is_empty() => n,
        Some(n) => format!("{}; {n}", i.detail),
        None => i.detail.clone(),
    };
    NewItem {
        reconciliation_id: run,
        kind: i.kind.as_str().to_string(),
        order_no: i.order_no.clone(),
        out_refund_no: i.out_refund_no.clone(),
        provider_trade_no: i.provider_trade_no.clone(),
        our_amount_fen: i.our_amount_fen,
        provider_amount_fen: i.provider_amount_fen,
        our_status: i.our_status.clone(),
        provider_status: i.provider_status.clone(),
        applied,
        review: if i.kind.is_difference() {
            "open"
        } else {
            "none"
        }
        .to_string(),
        detail,
    }
}

/// The API view of a run.
pub fn to_api(r: &ReconRow) -> Reconciliation {
    Reconciliation {
        id: r.id,
        provider: method_of(&r.provider),
        date: NaiveDate::parse_from_str(&r.day, "%Y-%m-%d").unwrap_or_default(),
        status: ReconStatus::parse(&r.status).unwrap_or(ReconStatus::Failed),
        attempts: r.attempts,
        next_attempt_at: r.next_attempt_at.map(db::utc),
        bill_payments_fen: r.bill_payments_fen,
        bill_refunds_fen: r.bill_refunds_fen,
        bill_fees_fen: r.bill_fees_fen,
        net_fen: r.net_fen,
        our_payments_fen: r.our_payments_fen,
        our_refunds_fen: r.our_refunds_fen,
        matched_count: r.matched_count,
        difference_count: r.difference_count,
        applied_count: r.applied_count,
        created_at: db::utc(r.created_at),
        finished_at: r.finished_at.map(db::utc),
        error: r.error.clone(),
    }
}

fn item_to_api(i: ItemRow) -> ReconciliationItem {
    ReconciliationItem {
        id: i.id,
        kind: ReconItemKind::parse(&i.kind).unwrap_or(ReconItemKind::StatusMismatch),
        order_no: i.order_no,
        out_refund_no: i.out_refund_no,
        provider_trade_no: i.provider_trade_no,
        our_amount_fen: i.our_amount_fen,
        provider_amount_fen: i.provider_amount_fen,
        our_status: i.our_status,
        provider_status: i.provider_status,
        applied: i.applied,
        review: i.review,
        detail: i.detail,
    }
}

/// A run with its items, differences first.
pub async fn detail(state: &AppState, id: i64) -> AppResult<Option<ReconciliationDetail>> {
    let Some(row) = recon_db::find(&state.db, id).await? else {
        return Ok(None);
    };
    let mut items: Vec<ReconciliationItem> = recon_db::items(&state.db, id)
        .await?
        .into_iter()
        .map(item_to_api)
        .collect();
    items.sort_by_key(|i| (!i.kind.is_difference(), i.kind, i.id));
    Ok(Some(ReconciliationDetail {
        reconciliation: to_api(&row),
        items,
    }))
}

/// Runs in a range of days, newest first (at most 200).
pub async fn list(
    state: &AppState,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    provider: Option<PaymentMethod>,
) -> AppResult<Vec<Reconciliation>> {
    let f = from.map(|d| d.format("%Y-%m-%d").to_string());
    let t = to.map(|d| d.format("%Y-%m-%d").to_string());
    let rows = recon_db::list(
        &state.db,
        f.as_deref(),
        t.as_deref(),
        provider.map(method_str),
        200,
    )
    .await?;
    Ok(rows.iter().map(to_api).collect())
}

/// The providers a run without one names: every configured one.
pub fn configured(state: &AppState) -> Vec<PaymentMethod> {
    [PaymentMethod::Wechat, PaymentMethod::Alipay]
        .into_iter()
        .filter(|m| state.providers.is_configured(*m))
        .collect()
}

/// One pass of the daily job: make sure each of the last `RECONCILE_DAYS_BACK` days
/// (yesterday from `RECONCILE_HOUR`, China time, on) has a run per configured provider,
/// then run every due one. Returns the runs finished.
pub async fn job_pass(state: &AppState) -> anyhow::Result<usize> {
    let now = db::utc(state.db.clock().await?.now());
    let l = &state.settings.lifecycle;
    let yesterday = rules::yesterday_in_china(now);
    let oldest = yesterday - chrono::Duration::days(l.bill_reconcile_days_back - 1);
    // Every day of the window gets its run, not only yesterday: a day on which no replica
    // ran between RECONCILE_HOUR and midnight is caught up the next day. Yesterday's bill
    // is out from RECONCILE_HOUR on.
    let newest = if rules::bills_due(now, l.bill_reconcile_hour) {
        yesterday
    } else {
        yesterday - chrono::Duration::days(1)
    };
    let mut day = oldest;
    while day <= newest {
        for m in configured(state) {
            recon_db::ensure(&state.db, method_str(m), &day.to_string()).await?;
        }
        day += chrono::Duration::days(1);
    }
    let mut done = 0;
    for row in recon_db::due(&state.db, &oldest.to_string(), 20).await? {
        if state.shutdown.is_triggered() {
            break;
        }
        let Ok(day) = NaiveDate::parse_from_str(&row.day, "%Y-%m-%d") else {
            continue;
        };
        let method = method_of(&row.provider);
        if day < oldest || !state.providers.is_configured(method) {
            continue;
        }
        match run_day(state, method, day, Trigger::Job).await {
            Ok(Some(d)) if d.reconciliation.status == ReconStatus::Done => done += 1,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(provider = %row.provider, day = %row.day, error = %e, "reconciliation failed")
            }
        }
    }
    Ok(done)
}
