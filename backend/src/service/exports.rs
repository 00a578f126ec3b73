//! CSV exports for operators: orders, refunds and the balance ledger.
//!
//! Each export is streamed: the table is read in batches of [`BATCH`] rows by keyset
//! (see `db::exports`) and every batch is sent as one chunk, so memory stays flat
//! whatever the size. The text rules (quoting, formula guard, BOM, yuan from fen) are
//! in `domain::csv`; days and local times in `domain::business_time`.

use std::future::Future;

use actix_web::web::Bytes;
use api_types::admin::{LedgerExportQuery, OrderExportQuery, RefundExportQuery};
use chrono::{NaiveDateTime, Utc};
use chrono_tz::Tz;
use futures_util::stream::{self, Stream};

use crate::db::exports::{self as export_db, ExportFilter, RefundExportRow};
use crate::db::ledger::BalanceEntryRow;
use crate::db::orders::OrderRow;
use crate::domain::business_time;
use crate::domain::csv;
use crate::error::{AppError, AppResult};
use crate::startup::AppStateHandle;

/// Rows read (and sent) at a time.
pub const BATCH: i64 = 500;

/// A ready export: its file name and body.
pub struct Export<S> {
    pub filename: String,
    pub body: S,
}

fn time(t: NaiveDateTime, tz: Tz) -> String {
    csv::text(&business_time::local_text(t.and_utc(), tz))
}

fn opt_time(t: Option<NaiveDateTime>, tz: Tz) -> String {
    t.map(|t| time(t, tz)).unwrap_or_default()
}

/// `from` / `to` and the user as stored filters; a bad day or time is `invalid_date`.
fn base_filter(
    from: Option<&str>,
    to: Option<&str>,
    user: Option<&str>,
    tz: Tz,
) -> AppResult<ExportFilter> {
    let (from, before) = business_time::parse_range(from, to, tz)
        .map_err(|m| AppError::bad_request("invalid_date", m))?;
    Ok(ExportFilter {
        from: from.map(|t| t.naive_utc()),
        before: before.map(|t| t.naive_utc()),
        status: None,
        provider: None,
        user: user
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(String::from),
    })
}

fn filename(kind: &str, tz: Tz) -> String {
    let today = business_time::day_of(Utc::now(), tz);
    format!("fenpay-{kind}-{}.csv", today.format("%Y%m%d"))
}

/// The body: the BOM and header line, then one chunk per batch until a batch comes back
/// short. A database error mid-way ends the stream with that error (the client sees a
/// truncated download, never a silently short file claiming to be complete).
fn paged<K, R, F, Fut>(
    header: String,
    fetch: F,
    key: fn(&R) -> K,
    encode: impl Fn(&R) -> String + 'static,
) -> impl Stream<Item = Result<Bytes, AppError>> + 'static
where
    K: Clone + 'static,
    R: 'static,
    F: FnMut(Option<K>) -> Fut + 'static,
    Fut: Future<Output = AppResult<Vec<R>>> + 'static,
{
    struct Pager<K, F, E> {
        header: Option<String>,
        after: Option<K>,
        done: bool,
        fetch: F,
        encode: E,
    }
    let start = Pager {
        header: Some(format!("{}{header}", csv::BOM)),
        after: None,
        done: false,
        fetch,
        encode,
    };
    stream::unfold(start, move |mut p| async move {
        if let Some(h) = p.header.take() {
            return Some((Ok(Bytes::from(h)), p));
        }
        if p.done {
            return None;
        }
        match (p.fetch)(p.after.clone()).await {
            Err(e) => {
                p.done = true;
                Some((Err(e), p))
            }
            Ok(rows) => {
                let last = rows.last()?;
                p.done = (rows.len() as i64) < BATCH;
                p.after = Some(key(last));
                let mut chunk = String::with_capacity(rows.len() * 160);
                for r in &rows {
                    chunk.push_str(&(p.encode)(r));
                }
                Some((Ok(Bytes::from(chunk)), p))
            }
        }
    })
}

pub const ORDER_COLUMNS: [&str; 21] = [
    "order_no",
    "created_at",
    "paid_at",
    "status",
    "provider",
    "channel",
    "user_id",
    "username",
    "product_type",
    "product_id",
    "product_name",
    "quantity",
    "amount_fen",
    "amount_yuan",
    "refunded_fen",
    "refunded_yuan",
    "provider_transaction_id",
    "app_id",
    "out_order_no",
    "needs_review",
    "review_reason",
];

fn order_line(r: &(OrderRow, String), tz: Tz) -> String {
    let (o, username) = r;
    csv::line(&[
        csv::text(&o.order_no),
        time(o.created_at, tz),
        opt_time(o.paid_at, tz),
        csv::text(o.status.as_str()),
        csv::text(&o.provider),
        csv::text(&o.channel),
        csv::text(&o.user_id),
        csv::text(username),
        csv::text(&o.product_type),
        csv::int(o.product_id),
        csv::text(&o.product_name),
        csv::int(o.quantity),
        csv::int(o.amount_fen),
        csv::yuan(o.amount_fen),
        csv::int(o.refunded_fen),
        csv::yuan(o.refunded_fen),
        csv::opt_text(o.provider_transaction_id.as_deref()),
        csv::opt_text(o.app_id.as_deref()),
        csv::opt_text(o.out_order_no.as_deref()),
        csv::boolean(o.needs_review),
        csv::opt_text(o.review_reason.as_deref()),
    ])
}

/// Orders created in the range, oldest first.
pub fn orders(
    state: AppStateHandle,
    q: &OrderExportQuery,
) -> AppResult<Export<impl Stream<Item = Result<Bytes, AppError>>>> {
    let tz = state.settings.business_timezone;
    let mut filter = base_filter(q.from.as_deref(), q.to.as_deref(), q.user.as_deref(), tz)?;
    filter.status = q.status.map(|s| s.as_str().to_string());
    filter.provider = q.provider.map(|p| p.as_str().to_string());
    let fetch = move |after: Option<(NaiveDateTime, String)>| {
        let state = state.clone();
        let filter = filter.clone();
        async move { Ok(export_db::orders_page(&state.db, &filter, after, BATCH).await?) }
    };
    Ok(Export {
        filename: filename("orders", tz),
        body: paged(
            csv::header(&ORDER_COLUMNS),
            fetch,
            |(o, _)| (o.created_at, o.order_no.clone()),
            move |r| order_line(r, tz),
        ),
    })
}

pub const REFUND_COLUMNS: [&str; 16] = [
    "out_refund_no",
    "order_no",
    "created_at",
    "succeeded_at",
    "status",
    "provider",
    "amount_fen",
    "amount_yuan",
    "reason",
    "provider_refund_id",
    "failure",
    "requested_by",
    "user_id",
    "username",
    "product_name",
    "updated_at",
];

fn refund_line(r: &RefundExportRow, tz: Tz) -> String {
    let (f, user_id, username, product_name) = r;
    csv::line(&[
        csv::text(&f.out_refund_no),
        csv::text(&f.order_no),
        time(f.created_at, tz),
        opt_time(f.succeeded_at, tz),
        csv::text(f.status.as_str()),
        csv::text(&f.provider),
        csv::int(f.amount_fen),
        csv::yuan(f.amount_fen),
        csv::opt_text(f.reason.as_deref()),
        csv::opt_text(f.provider_refund_id.as_deref()),
        csv::opt_text(f.failure.as_deref()),
        csv::text(&f.requested_by),
        csv::text(user_id),
        csv::text(username),
        csv::text(product_name),
        time(f.updated_at, tz),
    ])
}

/// Refunds created in the range, oldest first.
pub fn refunds(
    state: AppStateHandle,
    q: &RefundExportQuery,
) -> AppResult<Export<impl Stream<Item = Result<Bytes, AppError>>>> {
    let tz = state.settings.business_timezone;
    let mut filter = base_filter(q.from.as_deref(), q.to.as_deref(), q.user.as_deref(), tz)?;
    filter.status = q.status.map(|s| s.as_str().to_string());
    filter.provider = q.provider.map(|p| p.as_str().to_string());
    let fetch = move |after: Option<(NaiveDateTime, String)>| {
        let state = state.clone();
        let filter = filter.clone();
        async move { Ok(export_db::refunds_page(&state.db, &filter, after, BATCH).await?) }
    };
    Ok(Export {
        filename: filename("refunds", tz),
        body: paged(
            csv::header(&REFUND_COLUMNS),
            fetch,
            |(f, ..)| (f.created_at, f.out_refund_no.clone()),
            move |r| refund_line(r, tz),
        ),
    })
}

pub const LEDGER_COLUMNS: [&str; 14] = [
    "id",
    "created_at",
    "user_id",
    "username",
    "reason",
    "delta_points",
    "points_after",
    "delta_membership_secs",
    "tier_before",
    "tier_after",
    "expires_before",
    "expires_after",
    "order_no",
    "out_refund_no",
];

fn ledger_line(r: &(BalanceEntryRow, String), tz: Tz) -> String {
    let (e, username) = r;
    csv::line(&[
        csv::int(e.id),
        time(e.created_at, tz),
        csv::text(&e.user_id),
        csv::text(username),
        csv::text(&e.reason),
        csv::int(e.delta_points),
        csv::int(e.points_after),
        csv::int(e.delta_membership_secs),
        csv::opt_text(e.tier_before.as_deref()),
        csv::opt_text(e.tier_after.as_deref()),
        opt_time(e.expires_before, tz),
        opt_time(e.expires_after, tz),
        csv::opt_text(e.order_no.as_deref()),
        csv::opt_text(e.out_refund_no.as_deref()),
    ])
}

/// Ledger entries written in the range, in entry order.
pub fn ledger(
    state: AppStateHandle,
    q: &LedgerExportQuery,
) -> AppResult<Export<impl Stream<Item = Result<Bytes, AppError>>>> {
    let tz = state.settings.business_timezone;
    let filter = base_filter(q.from.as_deref(), q.to.as_deref(), q.user.as_deref(), tz)?;
    let fetch = move |after: Option<i64>| {
        let state = state.clone();
        let filter = filter.clone();
        async move { Ok(export_db::ledger_page(&state.db, &filter, after, BATCH).await?) }
    };
    Ok(Export {
        filename: filename("ledger", tz),
        body: paged(
            csv::header(&LEDGER_COLUMNS),
            fetch,
            |(e, _)| e.id,
            move |r| ledger_line(r, tz),
        ),
    })
}
