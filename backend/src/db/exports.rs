//! Batches for the CSV exports: oldest first, one page after another by keyset (the
//! last row's sort key), so an export of any size reads a bounded number of rows at a
//! time and never skips or repeats a row when others are inserted meanwhile.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::ledger::BalanceEntryRow;
use super::orders::OrderRow;
use super::refunds::RefundRow;
use super::schema::{balance_entries, orders, refunds, users};
use super::{Db, DbResult};
use crate::db_run;

/// What an export includes; every field is optional. Times are stored UTC.
#[derive(Clone, Debug, Default)]
pub struct ExportFilter {
    pub from: Option<NaiveDateTime>,
    pub before: Option<NaiveDateTime>,
    /// Orders: the order status; refunds: the refund status.
    pub status: Option<String>,
    pub provider: Option<String>,
    /// A user id or an exact username.
    pub user: Option<String>,
}

/// The next `limit` orders (with their usernames) created after `after`
/// (`created_at`, `order_no`), oldest first.
pub async fn orders_page(
    db: &Db,
    filter: &ExportFilter,
    after: Option<(NaiveDateTime, String)>,
    limit: i64,
) -> DbResult<Vec<(OrderRow, String)>> {
    db_run!(db, |conn| {
        let mut q = orders::table.inner_join(users::table).into_boxed();
        if let Some(s) = &filter.status {
            q = q.filter(orders::status.eq(s.clone()));
        }
        if let Some(p) = &filter.provider {
            q = q.filter(orders::provider.eq(p.clone()));
        }
        if let Some(t) = filter.from {
            q = q.filter(orders::created_at.ge(t));
        }
        if let Some(t) = filter.before {
            q = q.filter(orders::created_at.lt(t));
        }
        if let Some(u) = &filter.user {
            q = q.filter(users::id.eq(u.clone()).or(users::username.eq(u.clone())));
        }
        if let Some((t, no)) = after.clone() {
            q = q.filter(
                orders::created_at
                    .gt(t)
                    .or(orders::created_at.eq(t).and(orders::order_no.gt(no))),
            );
        }
        Ok(q.order((orders::created_at.asc(), orders::order_no.asc()))
            .limit(limit)
            .select((OrderRow::as_select(), users::username))
            .load(conn)
            .await?)
    })
}

/// One refund with what the export shows of its order and buyer.
pub type RefundExportRow = (RefundRow, String, String, String);

/// The next `limit` refunds (with the order's user id, username and product name)
/// created after `after` (`created_at`, `out_refund_no`), oldest first.
pub async fn refunds_page(
    db: &Db,
    filter: &ExportFilter,
    after: Option<(NaiveDateTime, String)>,
    limit: i64,
) -> DbResult<Vec<RefundExportRow>> {
    db_run!(db, |conn| {
        let mut q = refunds::table
            .inner_join(orders::table.inner_join(users::table))
            .into_boxed();
        if let Some(s) = &filter.status {
            q = q.filter(refunds::status.eq(s.clone()));
        }
        if let Some(p) = &filter.provider {
            q = q.filter(refunds::provider.eq(p.clone()));
        }
        if let Some(t) = filter.from {
            q = q.filter(refunds::created_at.ge(t));
        }
        if let Some(t) = filter.before {
            q = q.filter(refunds::created_at.lt(t));
        }
        if let Some(u) = &filter.user {
            q = q.filter(users::id.eq(u.clone()).or(users::username.eq(u.clone())));
        }
        if let Some((t, no)) = after.clone() {
            q = q.filter(
                refunds::created_at
                    .gt(t)
                    .or(refunds::created_at.eq(t).and(refunds::out_refund_no.gt(no))),
            );
        }
        Ok(
            q.order((refunds::created_at.asc(), refunds::out_refund_no.asc()))
                .limit(limit)
                .select((
                    RefundRow::as_select(),
                    users::id,
                    users::username,
                    orders::product_name,
                ))
                .load(conn)
                .await?,
        )
    })
}

/// The next `limit` ledger entries (with usernames) after entry `after_id`, in entry
/// order (ids only grow).
pub async fn ledger_page(
    db: &Db,
    filter: &ExportFilter,
    after_id: Option<i64>,
    limit: i64,
) -> DbResult<Vec<(BalanceEntryRow, String)>> {
    db_run!(db, |conn| {
        let mut q = balance_entries::table.inner_join(users::table).into_boxed();
        if let Some(t) = filter.from {
            q = q.filter(balance_entries::created_at.ge(t));
        }
        if let Some(t) = filter.before {
            q = q.filter(balance_entries::created_at.lt(t));
        }
        if let Some(u) = &filter.user {
            q = q.filter(users::id.eq(u.clone()).or(users::username.eq(u.clone())));
        }
        if let Some(id) = after_id {
            q = q.filter(balance_entries::id.gt(id));
        }
        Ok(q.order(balance_entries::id.asc())
            .limit(limit)
            .select((BalanceEntryRow::as_select(), users::username))
            .load(conn)
            .await?)
    })
}
