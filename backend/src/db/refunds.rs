//! Refund rows. A refund reserves its amount when it is created (so concurrent refunds can
//! never exceed what was paid) and moves `processing -> succeeded | failed` by
//! compare-and-set; success updates the order and claws back in the same transaction.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};

use super::events::{self, PendingEvent, Sinks};
use super::orders::OrderRow;
use super::schema::{orders, refunds};
use super::{Db, DbError, DbResult};
use crate::domain::fulfilment::BalanceOp;
use crate::{apply_balance_op, db_run, db_write, write_event};
use api_types::admin::RefundStatus;
use api_types::payment::OrderStatus;

#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = refunds)]
pub struct RefundRow {
    pub out_refund_no: String,
    pub order_no: String,
    pub provider: String,
    pub amount_fen: i64,
    pub reason: Option<String>,
    pub status: RefundStatus,
    pub provider_refund_id: Option<String>,
    pub requested_by: String,
    pub failure: Option<String>,
    pub lease_until: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub succeeded_at: Option<NaiveDateTime>,
}

/// Result of trying to open a refund row.
#[derive(Clone, Debug)]
pub enum Reserve {
    /// A new refund row now holds the amount.
    Created(RefundRow),
    /// This `out_refund_no` exists already (same refund asked again).
    Existing(RefundRow),
    /// The order is not paid (pending, cancelled or fully refunded).
    NotPaid,
    /// More than what is left to refund; carries the refundable amount.
    Exceeds(i64),
}

/// Open a refund row, holding its amount against the order, in one transaction that first
/// locks the order row (PostgreSQL) or the database (SQLite).
pub async fn reserve(db: &Db, row: &RefundRow) -> DbResult<Reserve> {
    db_write!(db, |conn| {
        conn.transaction::<Reserve, DbError, _>(async |conn| {
            // Write first: it takes the order's row lock (PostgreSQL) or the database
            // write lock (SQLite, where a read-then-write transaction could fail with
            // "database is locked" instead of waiting).
            let locked = diesel::update(
                orders::table
                    .filter(orders::order_no.eq(&row.order_no))
                    .filter(orders::status.eq(OrderStatus::Paid)),
            )
            .set(orders::updated_at.eq(orders::updated_at))
            .execute(conn)
            .await?;
            if let Some(existing) = refunds::table
                .find(&row.out_refund_no)
                .select(RefundRow::as_select())
                .first(conn)
                .await
                .optional()?
            {
                return Ok(Reserve::Existing(existing));
            }
            if locked == 0 {
                return Ok(Reserve::NotPaid);
            }
            let amount: i64 = orders::table
                .find(&row.order_no)
                .select(orders::amount_fen)
                .first(conn)
                .await?;
            let held: Vec<i64> = refunds::table
                .filter(refunds::order_no.eq(&row.order_no))
                .filter(refunds::status.ne(RefundStatus::Failed))
                .select(refunds::amount_fen)
                .load(conn)
                .await?;
            let refundable = amount - held.iter().sum::<i64>();
            if row.amount_fen > refundable {
                return Ok(Reserve::Exceeds(refundable.max(0)));
            }
            diesel::insert_into(refunds::table)
                .values(row)
                .execute(conn)
                .await?;
            Ok(Reserve::Created(row.clone()))
        })
        .await
    })
}

/// Compare-and-set `processing -> succeeded`, add the amount to the order (which becomes
/// `refunded` when nothing is left), claw back from the order's snapshot through the
/// ledger when `clawback` is set, and write `order.refunded`; one transaction.
pub async fn complete(
    db: &Db,
    order_no: &str,
    out_refund_no: &str,
    provider_refund_id: Option<&str>,
    succeeded_at: NaiveDateTime,
    clawback: bool,
    sinks: &Sinks,
) -> DbResult<Option<PendingEvent>> {
    let now = super::now();
    let guard = db.order_cache().writing(order_no);
    let out = db_write!(db, |conn| {
        conn.transaction::<Option<PendingEvent>, DbError, _>(async |conn| {
            let n = diesel::update(
                refunds::table
                    .filter(refunds::out_refund_no.eq(out_refund_no))
                    .filter(refunds::status.eq(RefundStatus::Processing)),
            )
            .set((
                refunds::status.eq(RefundStatus::Succeeded),
                refunds::provider_refund_id.eq(provider_refund_id),
                refunds::succeeded_at.eq(succeeded_at),
                refunds::lease_until.eq(None::<NaiveDateTime>),
                refunds::updated_at.eq(now),
            ))
            .execute(conn)
            .await?;
            if n == 0 {
                return Ok(None);
            }
            let refund: RefundRow = refunds::table
                .find(out_refund_no)
                .select(RefundRow::as_select())
                .first(conn)
                .await?;
            diesel::update(orders::table.find(&refund.order_no))
                .set((
                    orders::refunded_fen.eq(orders::refunded_fen + refund.amount_fen),
                    orders::updated_at.eq(now),
                ))
                .execute(conn)
                .await?;
            let order: OrderRow = orders::table
                .find(&refund.order_no)
                .select(OrderRow::as_select())
                .first(conn)
                .await?;
            if order.refunded_fen >= order.amount_fen {
                diesel::update(
                    orders::table
                        .filter(orders::order_no.eq(&order.order_no))
                        .filter(orders::status.eq(OrderStatus::Paid)),
                )
                .set(orders::status.eq(OrderStatus::Refunded))
                .execute(conn)
                .await?;
            }
            let before = order.refunded_fen - refund.amount_fen;
            let mut points_taken = 0;
            let mut membership_secs_taken = 0;
            if clawback {
                let snapshot = order.snapshot();
                let op = BalanceOp::Clawback {
                    snapshot: &snapshot,
                    before,
                    after: order.refunded_fen,
                    amount: order.amount_fen,
                };
                let change = apply_balance_op!(
                    conn,
                    &order.user_id,
                    &op,
                    now,
                    Some(order.order_no.as_str()),
                    Some(out_refund_no)
                );
                points_taken = -change.entry.delta_points;
                membership_secs_taken = -change.entry.delta_membership_secs;
                if !change.review.is_empty() {
                    crate::flag_review!(conn, &order.order_no, change.review.join("; "));
                }
            }
            let order: OrderRow = orders::table
                .find(&refund.order_no)
                .select(OrderRow::as_select())
                .first(conn)
                .await?;
            let ev = PendingEvent::for_order(
                events::ORDER_REFUNDED,
                &order,
                serde_json::json!({
                    "out_refund_no": refund.out_refund_no,
                    "refund_fen": refund.amount_fen,
                    "provider_refund_id": refund.provider_refund_id,
                    "full": order.refunded_fen >= order.amount_fen,
                    "points_clawed_back": points_taken,
                    "membership_seconds_clawed_back": membership_secs_taken,
                }),
                sinks,
                now,
            );
            write_event!(conn, &ev);
            Ok(Some(ev))
        })
        .await
    });
    // (The refund's order is `order_no`; should the caller have named another, the
    // changed one is forgotten too.)
    if let Ok(Some(ev)) = &out {
        if let Some(changed) = ev.event.order_no.as_deref().filter(|o| *o != order_no) {
            db.order_cache().invalidate(changed);
        }
    }
    guard.finish(&out);
    out
}

/// Compare-and-set `processing -> failed`: the amount becomes refundable again.
pub async fn fail(db: &Db, out_refund_no: &str, failure: &str) -> DbResult<bool> {
    let now = super::now();
    db_write!(db, |conn| {
        let n = diesel::update(
            refunds::table
                .filter(refunds::out_refund_no.eq(out_refund_no))
                .filter(refunds::status.eq(RefundStatus::Processing)),
        )
        .set((
            refunds::status.eq(RefundStatus::Failed),
            refunds::failure.eq(failure),
            refunds::lease_until.eq(None::<NaiveDateTime>),
            refunds::updated_at.eq(now),
        ))
        .execute(conn)
        .await?;
        Ok(n == 1)
    })
}

/// What [`revive_failed`] did with a refund the provider reports succeeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revive {
    /// The refund is not `failed` (processing, or already succeeded): nothing done.
    NotFailed,
    /// `failed -> processing` (the order had room for it) and the order is flagged for
    /// review; [`complete`] then applies the success as usual.
    Reopened,
    /// The order has no room left (its amount was refunded again meanwhile): the refund
    /// is recorded `succeeded` without touching the order's amounts, and the order is
    /// flagged for review (the payer got more back than the order was worth).
    SucceededWithoutRoom,
}

/// A verified success for a refund we had marked `failed` (an unverifiable answer taken
/// as a refusal, a failure that was not final): the money did leave, so the success
/// counts. One transaction that locks the order first, like [`reserve`]: when the
/// order still has room (what other non-failed refunds hold + this amount <= the
/// order's amount) compare-and-set `failed -> processing` for [`complete`]; otherwise
/// `failed -> succeeded` as a record only. Either way the order needs review.
pub async fn revive_failed(
    db: &Db,
    order_no: &str,
    out_refund_no: &str,
    provider_refund_id: Option<&str>,
    succeeded_at: NaiveDateTime,
) -> DbResult<Revive> {
    let now = super::now();
    let guard = db.order_cache().writing(order_no);
    let out = db_write!(db, |conn| {
        conn.transaction::<Revive, DbError, _>(async |conn| {
            // Write first (SQLite: take the write lock before reading).
            diesel::update(refunds::table.find(out_refund_no))
                .set(refunds::updated_at.eq(refunds::updated_at))
                .execute(conn)
                .await?;
            let Some(refund) = refunds::table
                .find(out_refund_no)
                .select(RefundRow::as_select())
                .first(conn)
                .await
                .optional()?
            else {
                return Ok(Revive::NotFailed);
            };
            if refund.status != RefundStatus::Failed {
                return Ok(Revive::NotFailed);
            }
            // Write first: takes the order's row lock (PostgreSQL) or the write lock (SQLite).
            diesel::update(orders::table.find(&refund.order_no))
                .set(orders::updated_at.eq(orders::updated_at))
                .execute(conn)
                .await?;
            let amount: i64 = orders::table
                .find(&refund.order_no)
                .select(orders::amount_fen)
                .first(conn)
                .await?;
            let held: Vec<i64> = refunds::table
                .filter(refunds::order_no.eq(&refund.order_no))
                .filter(refunds::status.ne(RefundStatus::Failed))
                .filter(refunds::out_refund_no.ne(out_refund_no))
                .select(refunds::amount_fen)
                .load(conn)
                .await?;
            let room = held.iter().sum::<i64>() + refund.amount_fen <= amount;
            let note = format!(
                "refund {out_refund_no} succeeded at the provider after it was marked failed"
            );
            let (outcome, reason, n) = if room {
                let n = diesel::update(
                    refunds::table
                        .filter(refunds::out_refund_no.eq(out_refund_no))
                        .filter(refunds::status.eq(RefundStatus::Failed)),
                )
                .set((
                    refunds::status.eq(RefundStatus::Processing),
                    refunds::failure.eq(note.as_str()),
                    refunds::updated_at.eq(now),
                ))
                .execute(conn)
                .await?;
                (Revive::Reopened, note.clone(), n)
            } else {
                let n = diesel::update(
                    refunds::table
                        .filter(refunds::out_refund_no.eq(out_refund_no))
                        .filter(refunds::status.eq(RefundStatus::Failed)),
                )
                .set((
                    refunds::status.eq(RefundStatus::Succeeded),
                    refunds::failure.eq(note.as_str()),
                    refunds::provider_refund_id.eq(provider_refund_id),
                    refunds::succeeded_at.eq(succeeded_at),
                    refunds::lease_until.eq(None::<NaiveDateTime>),
                    refunds::updated_at.eq(now),
                ))
                .execute(conn)
                .await?;
                let reason = format!(
                    "{note}, but the order has no room left for it: the payer got more back than the order's amount"
                );
                (Revive::SucceededWithoutRoom, reason, n)
            };
            if n == 0 {
                return Ok(Revive::NotFailed);
            }
            crate::flag_review!(conn, &refund.order_no, reason);
            Ok(outcome)
        })
        .await
    });
    guard.finish(&out);
    out
}

/// A refund stuck at the provider (WeChat ABNORMAL): note it on the refund and flag the
/// order for review; the refund stays processing (its amount reserved) until WeChat
/// reports the outcome of the manual handling.
pub async fn mark_abnormal(db: &Db, out_refund_no: &str, order_no: &str) -> DbResult<bool> {
    let note = "abnormal at the provider: handle it in the merchant platform";
    let guard = db.order_cache().writing(order_no);
    let out = db_write!(db, |conn| {
        conn.transaction::<bool, DbError, _>(async |conn| {
            let n = diesel::update(
                refunds::table
                    .filter(refunds::out_refund_no.eq(out_refund_no))
                    .filter(refunds::status.eq(RefundStatus::Processing))
                    .filter(refunds::failure.is_null()),
            )
            .set(refunds::failure.eq(note))
            .execute(conn)
            .await?;
            if n == 1 {
                diesel::update(orders::table.find(order_no))
                    .set((
                        orders::needs_review.eq(true),
                        orders::review_reason.eq(format!("refund {out_refund_no} {note}")),
                    ))
                    .execute(conn)
                    .await?;
            }
            Ok(n == 1)
        })
        .await
    });
    guard.finish(&out);
    out
}

/// Remember the provider's refund id while the refund is still processing.
pub async fn set_provider_id(db: &Db, out_refund_no: &str, id: &str) -> DbResult<()> {
    db_write!(db, |conn| {
        diesel::update(
            refunds::table
                .filter(refunds::out_refund_no.eq(out_refund_no))
                .filter(refunds::provider_refund_id.is_null()),
        )
        .set(refunds::provider_refund_id.eq(id))
        .execute(conn)
        .await?;
        Ok(())
    })
}

pub async fn find(db: &Db, out_refund_no: &str) -> DbResult<Option<RefundRow>> {
    db_run!(db, |conn| {
        Ok(refunds::table
            .find(out_refund_no)
            .select(RefundRow::as_select())
            .first(conn)
            .await
            .optional()?)
    })
}

pub async fn for_order(db: &Db, order_no: &str) -> DbResult<Vec<RefundRow>> {
    db_run!(db, |conn| {
        Ok(refunds::table
            .filter(refunds::order_no.eq(order_no))
            .order((refunds::created_at.asc(), refunds::out_refund_no.asc()))
            .select(RefundRow::as_select())
            .load(conn)
            .await?)
    })
}

/// Claim processing refunds older than `older_than` for the reconciler (leased; on
/// PostgreSQL each candidate is checked and leased in one statement, so two replicas
/// never take the same refund).
pub async fn claim_processing(
    db: &Db,
    older_than: NaiveDateTime,
    limit: i64,
    lease_secs: i64,
) -> DbResult<Vec<RefundRow>> {
    // Leases run on the database's clock, so replicas whose clocks differ agree on them.
    type NTs = diesel::sql_types::Nullable<diesel::sql_types::Timestamp>;
    let candidates: Vec<String> = db_write!(db, |conn| {
        Ok::<_, DbError>(
            refunds::table
                .filter(refunds::status.eq(RefundStatus::Processing))
                .filter(refunds::updated_at.lt(older_than))
                .filter(
                    refunds::lease_until
                        .is_null()
                        .or(refunds::lease_until.lt(db.clock_expr::<NTs>(0))),
                )
                .order(refunds::created_at.asc())
                .limit(limit)
                .select(refunds::out_refund_no)
                .load(conn)
                .await?,
        )
    })?;
    let mut out = Vec::new();
    for no in candidates {
        // The conditional update is the claim: only one replica's update matches.
        let won = db_write!(db, |conn| {
            Ok::<_, DbError>(
                diesel::update(
                    refunds::table
                        .filter(refunds::out_refund_no.eq(&no))
                        .filter(refunds::status.eq(RefundStatus::Processing))
                        .filter(
                            refunds::lease_until
                                .is_null()
                                .or(refunds::lease_until.lt(db.clock_expr::<NTs>(0))),
                        ),
                )
                .set((
                    refunds::lease_until.eq(db.clock_expr::<NTs>(lease_secs)),
                    refunds::updated_at.eq(db.clock_expr::<diesel::sql_types::Timestamp>(0)),
                ))
                .execute(conn)
                .await?
                    == 1,
            )
        })?;
        if won {
            if let Some(row) = find(db, &no).await? {
                out.push(row);
            }
        }
    }
    Ok(out)
}

/// Give back a refund claimed by [`claim_processing`] and not worked on (shutdown): its
/// lease ends now, if it is still the one this claim set. Refund claims carry no token, so
/// the lease's end is the fence: another replica that claimed the refund after this
/// lease ran out set a later one (at least a lease later), which this leaves alone.
pub async fn release_claim(db: &Db, claimed: &RefundRow) -> DbResult<bool> {
    let Some(ours) = claimed.lease_until else {
        return Ok(false);
    };
    let slack = chrono::TimeDelta::seconds(1);
    db_write!(db, |conn| {
        Ok::<_, DbError>(
            diesel::update(
                refunds::table
                    .filter(refunds::out_refund_no.eq(&claimed.out_refund_no))
                    .filter(refunds::status.eq(RefundStatus::Processing))
                    .filter(refunds::lease_until.ge(ours - slack))
                    .filter(refunds::lease_until.le(ours + slack)),
            )
            .set(refunds::lease_until.eq(None::<NaiveDateTime>))
            .execute(conn)
            .await?
                == 1,
        )
    })
}

/// An account's latest refunds (of its orders), newest first, with their orders.
pub async fn for_user(db: &Db, user_id: &str, limit: i64) -> DbResult<Vec<(RefundRow, OrderRow)>> {
    db_run!(db, |conn| {
        Ok(refunds::table
            .inner_join(orders::table)
            .filter(orders::user_id.eq(user_id))
            .order((refunds::created_at.desc(), refunds::out_refund_no.asc()))
            .limit(limit)
            .select((RefundRow::as_select(), OrderRow::as_select()))
            .load(conn)
            .await?)
    })
}
