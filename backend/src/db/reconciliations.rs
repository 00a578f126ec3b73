//! Reconciliation runs and their items, and what a run reads: the orders and refunds of
//! one provider around one day. Nothing here decides; see `domain::reconciliation` and
//! `service::reconciliation`.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};

use super::events::PendingEvent;
use super::orders::OrderRow;
use super::refunds::RefundRow;
use super::schema::{orders, reconciliation_items, reconciliations, refunds};
use super::{ClaimToken, Db, DbError, DbResult};
use crate::{db_run, db_write, write_event};
use api_types::admin::RefundStatus;
use api_types::payment::OrderStatus;

#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = reconciliations)]
pub struct ReconRow {
    pub id: i64,
    pub provider: String,
    pub day: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: Option<NaiveDateTime>,
    pub lease_until: Option<NaiveDateTime>,
    pub claim_token: Option<String>,
    pub bill_payments_fen: i64,
    pub bill_refunds_fen: i64,
    pub bill_fees_fen: i64,
    pub net_fen: i64,
    pub our_payments_fen: i64,
    pub our_refunds_fen: i64,
    pub matched_count: i64,
    pub difference_count: i64,
    pub applied_count: i64,
    pub created_at: NaiveDateTime,
    pub finished_at: Option<NaiveDateTime>,
    pub error: Option<String>,
}

#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = reconciliation_items)]
pub struct ItemRow {
    pub id: i64,
    pub reconciliation_id: i64,
    pub kind: String,
    pub order_no: Option<String>,
    pub out_refund_no: Option<String>,
    pub provider_trade_no: Option<String>,
    pub our_amount_fen: Option<i64>,
    pub provider_amount_fen: Option<i64>,
    pub our_status: Option<String>,
    pub provider_status: Option<String>,
    pub applied: bool,
    pub review: String,
    pub detail: String,
}

#[derive(Clone, Debug, Insertable)]
#[diesel(table_name = reconciliation_items)]
pub struct NewItem {
    pub reconciliation_id: i64,
    pub kind: String,
    pub order_no: Option<String>,
    pub out_refund_no: Option<String>,
    pub provider_trade_no: Option<String>,
    pub our_amount_fen: Option<i64>,
    pub provider_amount_fen: Option<i64>,
    pub our_status: Option<String>,
    pub provider_status: Option<String>,
    pub applied: bool,
    pub review: String,
    pub detail: String,
}

/// A finished run's figures.
#[derive(Clone, Debug, Default)]
pub struct Finished {
    pub bill_payments_fen: i64,
    pub bill_refunds_fen: i64,
    pub bill_fees_fen: i64,
    pub net_fen: i64,
    pub our_payments_fen: i64,
    pub our_refunds_fen: i64,
    pub matched_count: i64,
    pub difference_count: i64,
    pub applied_count: i64,
}

/// The run of (`provider`, `day`), created `pending` (due now) when there is none yet.
pub async fn ensure(db: &Db, provider: &str, day: &str) -> DbResult<ReconRow> {
    let now = super::now();
    db_write!(db, |conn| {
        diesel::insert_into(reconciliations::table)
            .values((
                reconciliations::provider.eq(provider),
                reconciliations::day.eq(day),
                reconciliations::status.eq("pending"),
                reconciliations::attempts.eq(0),
                reconciliations::created_at.eq(now),
            ))
            .on_conflict((reconciliations::provider, reconciliations::day))
            .do_nothing()
            .execute(conn)
            .await?;
        Ok::<_, DbError>(
            reconciliations::table
                .filter(reconciliations::provider.eq(provider))
                .filter(reconciliations::day.eq(day))
                .select(ReconRow::as_select())
                .first(conn)
                .await?,
        )
    })
}

/// Take the run for `lease_secs` (by the database's clock) unless someone holds it.
/// `due_only`: only when its next attempt is due and it is not done (the job);
/// otherwise whatever its state (a run by hand). `None` when it is not free.
pub async fn claim(
    db: &Db,
    id: i64,
    lease_secs: i64,
    due_only: bool,
) -> DbResult<Option<ClaimToken>> {
    type NTs = diesel::sql_types::Nullable<diesel::sql_types::Timestamp>;
    let token = ClaimToken::new();
    let n = db_write!(db, |conn| {
        let free = reconciliations::lease_until
            .is_null()
            .or(reconciliations::lease_until.lt(db.clock_expr::<NTs>(0)));
        let mut q = diesel::update(reconciliations::table)
            .filter(reconciliations::id.eq(id))
            .filter(free)
            .into_boxed();
        if due_only {
            q = q.filter(reconciliations::status.ne("done")).filter(
                reconciliations::next_attempt_at
                    .is_null()
                    .or(reconciliations::next_attempt_at.le(db.clock_expr::<NTs>(0))),
            );
        }
        Ok::<_, DbError>(
            q.set((
                reconciliations::lease_until.eq(db.clock_expr::<NTs>(lease_secs)),
                reconciliations::claim_token.eq(token.as_str()),
            ))
            .execute(conn)
            .await?,
        )
    })?;
    Ok((n == 1).then_some(token))
}

/// Runs of `min_day` or later not done whose next attempt is due and nobody holds,
/// oldest day first.
pub async fn due(db: &Db, min_day: &str, limit: i64) -> DbResult<Vec<ReconRow>> {
    type NTs = diesel::sql_types::Nullable<diesel::sql_types::Timestamp>;
    db_run!(db, |conn| {
        Ok::<_, DbError>(
            reconciliations::table
                .filter(reconciliations::status.ne("done"))
                .filter(reconciliations::day.ge(min_day))
                .filter(
                    reconciliations::next_attempt_at
                        .is_null()
                        .or(reconciliations::next_attempt_at.le(db.clock_expr::<NTs>(0))),
                )
                .filter(
                    reconciliations::lease_until
                        .is_null()
                        .or(reconciliations::lease_until.lt(db.clock_expr::<NTs>(0))),
                )
                .order((reconciliations::day.asc(), reconciliations::id.asc()))
                .limit(limit)
                .select(ReconRow::as_select())
                .load(conn)
                .await?,
        )
    })
}

/// Store a finished run if `token` still holds it, in one transaction: the figures, the
/// items (replacing any earlier run's), and `event` when given. `Ok(false)`, nothing
/// written, when the claim was lost.
pub async fn finish(
    db: &Db,
    id: i64,
    token: &ClaimToken,
    figures: &Finished,
    items: &[NewItem],
    event: Option<&PendingEvent>,
) -> DbResult<bool> {
    type NTs = diesel::sql_types::Nullable<diesel::sql_types::Timestamp>;
    db_write!(db, |conn| {
        conn.transaction::<bool, DbError, _>(async |conn| {
            let n = diesel::update(
                reconciliations::table
                    .filter(reconciliations::id.eq(id))
                    .filter(reconciliations::claim_token.eq(token.as_str())),
            )
            .set((
                reconciliations::status.eq("done"),
                reconciliations::attempts.eq(reconciliations::attempts + 1),
                reconciliations::next_attempt_at.eq(None::<NaiveDateTime>),
                reconciliations::lease_until.eq(None::<NaiveDateTime>),
                reconciliations::claim_token.eq(None::<String>),
                reconciliations::bill_payments_fen.eq(figures.bill_payments_fen),
                reconciliations::bill_refunds_fen.eq(figures.bill_refunds_fen),
                reconciliations::bill_fees_fen.eq(figures.bill_fees_fen),
                reconciliations::net_fen.eq(figures.net_fen),
                reconciliations::our_payments_fen.eq(figures.our_payments_fen),
                reconciliations::our_refunds_fen.eq(figures.our_refunds_fen),
                reconciliations::matched_count.eq(figures.matched_count),
                reconciliations::difference_count.eq(figures.difference_count),
                reconciliations::applied_count.eq(figures.applied_count),
                reconciliations::finished_at.eq(db.clock_expr::<NTs>(0)),
                reconciliations::error.eq(None::<String>),
            ))
            .execute(conn)
            .await?;
            if n == 0 {
                return Ok(false);
            }
            diesel::delete(
                reconciliation_items::table.filter(reconciliation_items::reconciliation_id.eq(id)),
            )
            .execute(conn)
            .await?;
            for item in items {
                diesel::insert_into(reconciliation_items::table)
                    .values(item)
                    .execute(conn)
                    .await?;
            }
            if let Some(ev) = event {
                write_event!(conn, ev);
            }
            Ok(true)
        })
        .await
    })
}

/// An attempt that could not finish (`not_ready`, `failed`): note it, retry in
/// `retry_in_secs`, and release the claim if `token` still holds it. Earlier items stay.
pub async fn postpone(
    db: &Db,
    id: i64,
    token: &ClaimToken,
    status: &str,
    error: &str,
    retry_in_secs: i64,
) -> DbResult<bool> {
    type NTs = diesel::sql_types::Nullable<diesel::sql_types::Timestamp>;
    let n = db_write!(db, |conn| {
        Ok::<_, DbError>(
            diesel::update(
                reconciliations::table
                    .filter(reconciliations::id.eq(id))
                    .filter(reconciliations::claim_token.eq(token.as_str())),
            )
            .set((
                reconciliations::status.eq(status),
                reconciliations::attempts.eq(reconciliations::attempts + 1),
                reconciliations::next_attempt_at.eq(db.clock_expr::<NTs>(retry_in_secs)),
                reconciliations::lease_until.eq(None::<NaiveDateTime>),
                reconciliations::claim_token.eq(None::<String>),
                reconciliations::error.eq(error),
            ))
            .execute(conn)
            .await?,
        )
    })?;
    Ok(n == 1)
}

pub async fn find(db: &Db, id: i64) -> DbResult<Option<ReconRow>> {
    db_run!(db, |conn| {
        Ok::<_, DbError>(
            reconciliations::table
                .find(id)
                .select(ReconRow::as_select())
                .first(conn)
                .await
                .optional()?,
        )
    })
}

/// Runs with `from <= day <= to` (days as `YYYY-MM-DD` compare as text), newest first.
pub async fn list(
    db: &Db,
    from: Option<&str>,
    to: Option<&str>,
    provider: Option<&str>,
    limit: i64,
) -> DbResult<Vec<ReconRow>> {
    db_run!(db, |conn| {
        let mut q = reconciliations::table.into_boxed();
        if let Some(f) = from {
            q = q.filter(reconciliations::day.ge(f.to_string()));
        }
        if let Some(t) = to {
            q = q.filter(reconciliations::day.le(t.to_string()));
        }
        if let Some(p) = provider {
            q = q.filter(reconciliations::provider.eq(p.to_string()));
        }
        Ok::<_, DbError>(
            q.order((reconciliations::day.desc(), reconciliations::provider.asc()))
                .limit(limit)
                .select(ReconRow::as_select())
                .load(conn)
                .await?,
        )
    })
}

/// A run's items in the order they were stored (differences first).
pub async fn items(db: &Db, id: i64) -> DbResult<Vec<ItemRow>> {
    db_run!(db, |conn| {
        Ok::<_, DbError>(
            reconciliation_items::table
                .filter(reconciliation_items::reconciliation_id.eq(id))
                .order(reconciliation_items::id.asc())
                .select(ItemRow::as_select())
                .load(conn)
                .await?,
        )
    })
}

/// Orders of `provider` paid (or refunded) with `paid_at` in `[from, before)`, and the
/// orders of `provider` among `named`, whatever their state.
pub async fn orders_touching(
    db: &Db,
    provider: &str,
    from: NaiveDateTime,
    before: NaiveDateTime,
    named: &[String],
) -> DbResult<Vec<OrderRow>> {
    db_run!(db, |conn| {
        let mut rows: Vec<OrderRow> = orders::table
            .filter(orders::provider.eq(provider))
            .filter(orders::status.eq_any([OrderStatus::Paid, OrderStatus::Refunded]))
            .filter(orders::paid_at.ge(from))
            .filter(orders::paid_at.lt(before))
            .select(OrderRow::as_select())
            .load(conn)
            .await?;
        for chunk in named.chunks(500) {
            let more: Vec<OrderRow> = orders::table
                .filter(orders::provider.eq(provider))
                .filter(orders::order_no.eq_any(chunk))
                .select(OrderRow::as_select())
                .load(conn)
                .await?;
            rows.extend(more);
        }
        rows.sort_by(|a, b| a.order_no.cmp(&b.order_no));
        rows.dedup_by(|a, b| a.order_no == b.order_no);
        Ok::<_, DbError>(rows)
    })
}

/// Refunds of `provider` that succeeded in `[from, before)`, and those among `named`.
pub async fn refunds_touching(
    db: &Db,
    provider: &str,
    from: NaiveDateTime,
    before: NaiveDateTime,
    named: &[String],
) -> DbResult<Vec<RefundRow>> {
    db_run!(db, |conn| {
        let mut rows: Vec<RefundRow> = refunds::table
            .filter(refunds::provider.eq(provider))
            .filter(refunds::status.eq(RefundStatus::Succeeded))
            .filter(refunds::succeeded_at.ge(from))
            .filter(refunds::succeeded_at.lt(before))
            .select(RefundRow::as_select())
            .load(conn)
            .await?;
        for chunk in named.chunks(500) {
            let more: Vec<RefundRow> = refunds::table
                .filter(refunds::provider.eq(provider))
                .filter(refunds::out_refund_no.eq_any(chunk))
                .select(RefundRow::as_select())
                .load(conn)
                .await?;
            rows.extend(more);
        }
        rows.sort_by(|a, b| a.out_refund_no.cmp(&b.out_refund_no));
        rows.dedup_by(|a, b| a.out_refund_no == b.out_refund_no);
        Ok::<_, DbError>(rows)
    })
}

/// Flag an order for an operator with `reason` (appended to earlier reasons).
pub async fn flag_order(db: &Db, order_no: &str, reason: &str) -> DbResult<()> {
    let guard = db.order_cache().writing(order_no);
    let out = db_write!(db, |conn| {
        conn.transaction::<(), DbError, _>(async |conn| {
            crate::flag_review!(conn, order_no, reason.to_string());
            Ok(())
        })
        .await
    });
    guard.finish(&out);
    out
}
