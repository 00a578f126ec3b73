//! Order rows and their compare-and-set transitions.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Text, Timestamp};
use std::sync::Arc;

use diesel_async::{AsyncConnection, RunQueryDsl};

use super::events::{self, PendingEvent, Sinks};
use super::refunds::RefundRow;
use super::schema::{checkouts, orders, payment_records, products, refunds, users};
use super::{ClaimToken, Db, DbError, DbResult};
use crate::domain::fulfilment::{BalanceOp, Rate, Snapshot, Tier};
use crate::{apply_balance_op, db_run, db_write, write_event};
use api_types::admin::RefundStatus;
use api_types::payment::OrderStatus;

#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = orders)]
pub struct OrderRow {
    pub order_no: String,
    pub user_id: String,
    pub product_id: i64,
    pub product_type: String,
    pub product_name: String,
    pub unit_price_fen: i64,
    pub quantity: i64,
    pub is_upgrade: bool,
    pub amount_fen: i64,
    pub provider: String,
    pub channel: String,
    pub status: OrderStatus,
    pub cancel_reason: Option<String>,
    pub refunded_fen: i64,
    pub provider_transaction_id: Option<String>,
    pub qr_code_url: Option<String>,
    pub pay_url: Option<String>,
    pub h5_url: Option<String>,
    pub sdk_params: Option<String>,
    pub expire_at: NaiveDateTime,
    pub qr_code_expire_at: NaiveDateTime,
    pub paid_at: Option<NaiveDateTime>,
    pub last_query_at: Option<NaiveDateTime>,
    pub needs_review: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// Units of limited stock this order holds (released on cancel / expiry).
    pub stock_held: i64,
    pub review_reason: Option<String>,
    pub lease_until: Option<NaiveDateTime>,
    pub query_attempts: i32,
    /// The purchase snapshot (see [`OrderRow::snapshot`]).
    pub snap_points: i64,
    pub snap_membership_days: i64,
    pub snap_tier: Option<String>,
    pub snap_tier_rank: Option<i32>,
    pub snap_tier_price_fen: Option<i64>,
    pub snap_tier_days: Option<i32>,
    pub snap_from_tier: Option<String>,
    pub snap_from_rank: Option<i32>,
    pub snap_from_price_fen: Option<i64>,
    pub snap_from_days: Option<i32>,
    pub snap_upgrade_secs: i64,
    /// A verified answer did not match the order: jobs leave it to an operator.
    pub sync_halted: bool,
    /// The first order of the renewal chain this order belongs to ("get a new code"
    /// replaced it, directly or through other renewals); `None` for a chain's first order.
    pub renewal_root: Option<String>,
    /// Orders made for a merchant app (see `db::apps`): the app, its order number, its
    /// customer, its metadata (a JSON object as text), where the buyer returns, and (epay
    /// orders) where the payment notification goes.
    pub app_id: Option<String>,
    pub out_order_no: Option<String>,
    pub customer_ref: Option<String>,
    pub metadata: Option<String>,
    pub return_url: Option<String>,
    pub notify_url: Option<String>,
}

fn tier_of(
    name: &Option<String>,
    rank: Option<i32>,
    price: Option<i64>,
    days: Option<i32>,
) -> Option<Tier> {
    Some(Tier {
        name: name.clone()?,
        rate: Rate {
            rank: rank.unwrap_or(0),
            price_fen: price.unwrap_or(0),
            days: i64::from(days.unwrap_or(0)),
        },
    })
}

impl OrderRow {
    /// What this order bought, as frozen at create-order: fulfilment and claw-back read
    /// only this, never the live catalog.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            points: self.snap_points,
            tier: tier_of(
                &self.snap_tier,
                self.snap_tier_rank,
                self.snap_tier_price_fen,
                self.snap_tier_days,
            ),
            membership_days: self.snap_membership_days,
            upgrade_from: if self.is_upgrade {
                tier_of(
                    &self.snap_from_tier,
                    self.snap_from_rank,
                    self.snap_from_price_fen,
                    self.snap_from_days,
                )
            } else {
                None
            },
            upgrade_secs: self.snap_upgrade_secs,
        }
    }

    /// Store `snap` on a row that is about to be inserted.
    pub fn set_snapshot(&mut self, snap: &Snapshot) {
        self.snap_points = snap.points;
        self.snap_membership_days = snap.membership_days;
        let t = snap.tier.as_ref();
        self.snap_tier = t.map(|t| t.name.clone());
        self.snap_tier_rank = t.map(|t| t.rate.rank);
        self.snap_tier_price_fen = t.map(|t| t.rate.price_fen);
        self.snap_tier_days = t.map(|t| i32::try_from(t.rate.days).unwrap_or(i32::MAX));
        let f = snap.upgrade_from.as_ref();
        self.snap_from_tier = f.map(|t| t.name.clone());
        self.snap_from_rank = f.map(|t| t.rate.rank);
        self.snap_from_price_fen = f.map(|t| t.rate.price_fen);
        self.snap_from_days = f.map(|t| i32::try_from(t.rate.days).unwrap_or(i32::MAX));
        self.snap_upgrade_secs = snap.upgrade_secs;
    }
}

/// Provider-confirmed payment facts.
#[derive(Clone, Debug)]
pub struct PaidFacts {
    pub transaction_id: String,
    pub paid_at: NaiveDateTime,
}

/// Where to look for a payment record.
#[derive(Clone, Debug, Insertable)]
#[diesel(table_name = payment_records)]
pub struct NewPaymentRecord {
    pub order_no: Option<String>,
    pub provider: String,
    pub kind: String,
    pub headers: String,
    pub body: String,
    pub verified: bool,
    pub decision: String,
    pub created_at: NaiveDateTime,
}

#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = payment_records)]
pub struct PaymentRecordRow {
    pub id: i64,
    pub order_no: Option<String>,
    pub provider: String,
    pub kind: String,
    pub headers: String,
    pub body: String,
    pub verified: bool,
    pub decision: String,
    pub created_at: NaiveDateTime,
}

/// Insert a new pending order on `$conn` (inside the caller's transaction). When it holds
/// limited stock (`row.stock_held > 0`), the product's stock is decremented with a
/// conditional update that never goes below zero; `false` means out of stock and nothing
/// was written.
#[macro_export]
macro_rules! insert_order {
    ($conn:ident, $row:expr) => {{
        use $crate::db::schema::{orders, products};
        let row: &$crate::db::orders::OrderRow = $row;
        let mut ok = true;
        if row.stock_held > 0 {
            let n = diesel::update(
                products::table
                    .filter(products::id.eq(row.product_id))
                    .filter(products::stock.ge(row.stock_held)),
            )
            .set(products::stock.eq(products::stock - row.stock_held))
            .execute($conn)
            .await?;
            ok = n == 1;
        }
        if ok {
            diesel::insert_into(orders::table)
                .values(row)
                .execute($conn)
                .await?;
        }
        ok
    }};
}

/// Insert a new pending order (see [`insert_order!`](crate::insert_order)); `false` means
/// out of stock and nothing was written.
pub async fn insert(db: &Db, row: &OrderRow) -> DbResult<bool> {
    db_write!(db, |conn| {
        conn.transaction::<bool, DbError, _>(async |conn| Ok(crate::insert_order!(conn, row)))
            .await
    })
}

/// Release the stock an order holds (inside a transaction), at most once.
macro_rules! release_stock {
    ($conn:ident, $order_no:expr) => {{
        let held: Option<(i64, i64)> = orders::table
            .find($order_no)
            .filter(orders::stock_held.gt(0))
            .select((orders::product_id, orders::stock_held))
            .first($conn)
            .await
            .optional()?;
        if let Some((product_id, held)) = held {
            diesel::update(orders::table.find($order_no))
                .set(orders::stock_held.eq(0))
                .execute($conn)
                .await?;
            diesel::update(
                products::table
                    .filter(products::id.eq(product_id))
                    .filter(products::stock.is_not_null()),
            )
            .set(products::stock.eq(products::stock + held))
            .execute($conn)
            .await?;
        }
    }};
}

pub async fn find(db: &Db, order_no: &str) -> DbResult<Option<OrderRow>> {
    db_run!(db, |conn| {
        Ok(orders::table
            .find(order_no)
            .select(OrderRow::as_select())
            .first(conn)
            .await
            .optional()?)
    })
}

/// [`find`] through the order cache: for reads that show the order (order-status) and
/// for choosing which compare-and-set to try. Never decide anything else from it: a
/// copy may be a moment old on another replica, and the jobs' bookkeeping columns
/// (`lease_until`, `last_query_at`, `query_attempts`) are not kept current in it.
pub async fn find_cached(db: &Db, order_no: &str) -> DbResult<Option<Arc<OrderRow>>> {
    let ticket = match db.order_cache().get(order_no) {
        Ok(row) => return Ok(Some(row)),
        Err(ticket) => ticket,
    };
    let row = find(db, order_no).await?.map(Arc::new);
    if let (Some(ticket), Some(row)) = (ticket, &row) {
        db.order_cache().fill(ticket, row.clone());
    }
    Ok(row)
}

/// A user's orders, newest first, with the total count.
pub async fn list_for_user(
    db: &Db,
    user_id: &str,
    limit: i64,
    offset: i64,
) -> DbResult<(Vec<OrderRow>, i64)> {
    db_run!(db, |conn| {
        let rows = orders::table
            .filter(orders::user_id.eq(user_id))
            .order((orders::created_at.desc(), orders::order_no.desc()))
            .limit(limit)
            .offset(offset)
            .select(OrderRow::as_select())
            .load(conn)
            .await?;
        let total: i64 = orders::table
            .filter(orders::user_id.eq(user_id))
            .count()
            .get_result(conn)
            .await?;
        Ok((rows, total))
    })
}

/// Store what the provider returned for a pending order that has none yet and announce it
/// (`order.created`): a compare-and-set, so two prepays of one trade (a merchant order's
/// buyer retrying after a timeout) announce it once.
pub async fn set_payment_targets(
    db: &Db,
    order_no: &str,
    targets: (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    ),
    sinks: &Sinks,
) -> DbResult<Option<PendingEvent>> {
    let (qr_code_url, pay_url, h5_url, sdk_params) = targets;
    let now = super::now();
    let guard = db.order_cache().writing(order_no);
    let out = db_write!(db, |conn| {
        conn.transaction::<Option<PendingEvent>, DbError, _>(async |conn| {
            let n = diesel::update(
                orders::table
                    .filter(orders::order_no.eq(order_no))
                    .filter(orders::status.eq(OrderStatus::Pending))
                    .filter(orders::qr_code_url.is_null())
                    .filter(orders::pay_url.is_null())
                    .filter(orders::h5_url.is_null())
                    .filter(orders::sdk_params.is_null()),
            )
            .set((
                orders::qr_code_url.eq(&qr_code_url),
                orders::pay_url.eq(&pay_url),
                orders::h5_url.eq(&h5_url),
                orders::sdk_params.eq(&sdk_params),
                orders::updated_at.eq(now),
            ))
            .execute(conn)
            .await?;
            if n == 0 {
                return Ok(None);
            }
            let row = orders::table
                .find(order_no)
                .select(OrderRow::as_select())
                .first(conn)
                .await?;
            let ev = PendingEvent::for_order(
                events::ORDER_CREATED,
                &row,
                serde_json::json!({}),
                sinks,
                now,
            );
            write_event!(conn, &ev);
            Ok(Some(ev))
        })
        .await
    });
    guard.finish(&out);
    out
}

/// Remove a pending order whose provider call failed, so nothing half-made stays behind.
/// Its stock hold is released in the same transaction.
pub async fn delete_unopened(db: &Db, order_no: &str) -> DbResult<bool> {
    let guard = db.order_cache().writing(order_no);
    let out = db_write!(db, |conn| {
        conn.transaction::<bool, DbError, _>(async |conn| {
            // Write first (see `mark_paid`), then release the stock it held.
            diesel::update(orders::table.find(order_no))
                .set(orders::updated_at.eq(orders::updated_at))
                .execute(conn)
                .await?;
            release_stock!(conn, order_no);
            let n = diesel::delete(
                orders::table
                    .filter(orders::order_no.eq(order_no))
                    .filter(orders::status.eq(OrderStatus::Pending))
                    .filter(orders::provider_transaction_id.is_null()),
            )
            .execute(conn)
            .await?;
            if n == 1 {
                // A merchant order's buyer may choose again (this or the other method).
                diesel::update(
                    checkouts::table
                        .find(order_no)
                        .filter(checkouts::status.eq(super::apps::CHECKOUT_CHOSEN)),
                )
                .set(checkouts::status.eq(super::apps::CHECKOUT_OPEN))
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

/// Compare-and-set `pending -> cancelled`, releasing held stock and writing
/// `order.cancelled` in the same transaction. `Some(event)` when this call won.
pub async fn cancel(
    db: &Db,
    order_no: &str,
    reason: &str,
    sinks: &Sinks,
) -> DbResult<Option<PendingEvent>> {
    let now = super::now();
    let guard = db.order_cache().writing(order_no);
    let out = db_write!(db, |conn| {
        conn.transaction::<Option<PendingEvent>, DbError, _>(async |conn| {
            let n = diesel::update(
                orders::table
                    .filter(orders::order_no.eq(order_no))
                    .filter(orders::status.eq(OrderStatus::Pending)),
            )
            .set((
                orders::status.eq(OrderStatus::Cancelled),
                orders::cancel_reason.eq(reason),
                orders::lease_until.eq(None::<NaiveDateTime>),
                // On the database's clock, like `last_query_at`, which the paid-after-close
                // check compares it with: a replica's skew cannot skip the check.
                orders::updated_at.eq(db.clock_expr::<Timestamp>(0)),
            ))
            .execute(conn)
            .await?;
            if n == 0 {
                return Ok(None);
            }
            release_stock!(conn, order_no);
            let row = orders::table
                .find(order_no)
                .select(OrderRow::as_select())
                .first(conn)
                .await?;
            let ev = PendingEvent::for_order(
                events::ORDER_CANCELLED,
                &row,
                serde_json::json!({ "reason": reason }),
                sinks,
                now,
            );
            write_event!(conn, &ev);
            Ok(Some(ev))
        })
        .await
    });
    guard.finish(&out);
    out
}

/// Claim the right to query the provider for a pending order at most once per `min_gap`.
pub async fn claim_query_slot(
    db: &Db,
    order_no: &str,
    min_gap: chrono::Duration,
) -> DbResult<bool> {
    // On the database's clock, like every other write of `last_query_at`.
    type NTs = diesel::sql_types::Nullable<Timestamp>;
    let gap = min_gap.num_seconds();
    db_write!(db, |conn| {
        let n = diesel::update(
            orders::table
                .filter(orders::order_no.eq(order_no))
                .filter(orders::status.eq(OrderStatus::Pending))
                .filter(
                    orders::last_query_at
                        .is_null()
                        .or(orders::last_query_at.lt(db.clock_expr::<NTs>(-gap))),
                ),
        )
        .set(orders::last_query_at.eq(db.clock_expr::<NTs>(0)))
        .execute(conn)
        .await?;
        Ok(n == 1)
    })
}

/// Refunds decided with a payment, reserved in the transaction that applies it when
/// their case arises (the full amount, under a number derived from the order's).
#[derive(Clone, Copy, Debug, Default)]
pub struct AutoRefunds<'a> {
    /// Reserved when the order is paid after it was closed.
    pub after_close: Option<&'a RefundRow>,
    /// Reserved when the payment turns out to be a duplicate in its renewal chain and
    /// no `after_close` refund is reserved (one full refund is all an order can take).
    pub duplicate: Option<&'a RefundRow>,
}

/// Compare-and-set `from -> paid` and fulfil from the order's snapshot in the same
/// transaction (balances through the ledger), writing `order.paid` (and
/// `order.paid_after_close` when `from` is `cancelled`) and, when given, the payment
/// record that says so.
///
/// An order of a renewal chain (see `domain::order::renewal_root`) whose payment finds
/// another paid order in its chain is flagged for review as a duplicate payment and
/// `order.duplicate_payment` is written. The check runs after the account's row is
/// locked (every payment of one buyer takes that lock), so of two concurrent payments in
/// one chain the second always sees the first.
///
/// Returns the events when this call won; a duplicate or concurrent caller gets `None`
/// and nothing is credited twice.
pub async fn mark_paid(
    db: &Db,
    order_no: &str,
    from: OrderStatus,
    facts: &PaidFacts,
    evidence: Option<&NewPaymentRecord>,
    refunds: AutoRefunds<'_>,
    sinks: &Sinks,
) -> DbResult<Option<Vec<PendingEvent>>> {
    let now = super::now();
    let after_close = from == OrderStatus::Cancelled;
    let guard = db.order_cache().writing(order_no);
    let out = db_write!(db, |conn| {
        conn.transaction::<Option<Vec<PendingEvent>>, DbError, _>(async |conn| {
            // The write comes first: it takes the row lock (PostgreSQL) or the
            // database write lock (SQLite) before anything is read.
            let Some(row) = diesel::update(
                orders::table
                    .filter(orders::order_no.eq(order_no))
                    .filter(orders::status.eq(from)),
            )
            .set((
                orders::status.eq(OrderStatus::Paid),
                orders::paid_at.eq(facts.paid_at),
                orders::provider_transaction_id.eq(&facts.transaction_id),
                orders::lease_until.eq(None::<NaiveDateTime>),
                orders::updated_at.eq(now),
            ))
            .returning(OrderRow::as_returning())
            .get_result(conn)
            .await
            .optional()?
            else {
                return Ok(None);
            };
            // Whether anything below writes the order row again (then it is re-read for
            // the event; otherwise `row` is already what was committed).
            let mut rewritten = false;
            let mut review: Vec<String> = Vec::new();
            if after_close {
                review.push("paid after the order was closed".into());
                // Stock was released at cancel: take it again if any is left.
                let limited: Option<Option<i64>> = products::table
                    .find(row.product_id)
                    .select(products::stock)
                    .first(conn)
                    .await
                    .optional()?;
                if let Some(Some(_)) = limited {
                    let taken = diesel::update(
                        products::table
                            .filter(products::id.eq(row.product_id))
                            .filter(products::stock.ge(row.quantity)),
                    )
                    .set(products::stock.eq(products::stock - row.quantity))
                    .execute(conn)
                    .await?;
                    if taken == 1 {
                        diesel::update(orders::table.find(order_no))
                            .set(orders::stock_held.eq(row.quantity))
                            .execute(conn)
                            .await?;
                        rewritten = true;
                    } else {
                        review.push("oversold: no stock left".into());
                    }
                }
            }
            // Take the account lock first (PostgreSQL; SQLite has one writer): a concurrent
            // payment in the same chain has committed by now, or waits for this one.
            diesel::update(users::table.find(&row.user_id))
                .set(users::id.eq(users::id))
                .execute(conn)
                .await?;
            // Only chain members can have one: a first order gets renewals only once it is
            // cancelled, so paid from pending it has none.
            let chain = row
                .renewal_root
                .clone()
                .or_else(|| after_close.then(|| row.order_no.clone()));
            let mut duplicate_of = None;
            if let Some(root) = chain {
                let paid: Vec<(String, i64)> = orders::table
                    .filter(
                        orders::order_no
                            .eq(&root)
                            .or(orders::renewal_root.eq(&root)),
                    )
                    .filter(orders::order_no.ne(order_no))
                    .filter(orders::user_id.eq(&row.user_id))
                    .filter(orders::status.eq(OrderStatus::Paid))
                    .select((orders::order_no, orders::amount_fen))
                    .load(conn)
                    .await?;
                // An order whose refunds (made or under way) return all of it no longer
                // counts as paid: a payment after it is not a duplicate.
                let mut others = Vec::new();
                for (no, amount) in paid {
                    let refunding: Vec<i64> = refunds::table
                        .filter(refunds::order_no.eq(&no))
                        .filter(refunds::status.ne(RefundStatus::Failed))
                        .select(refunds::amount_fen)
                        .load(conn)
                        .await?;
                    if crate::domain::order::still_paid(amount, refunding.iter().sum()) {
                        others.push(no);
                    }
                }
                if let Some(reason) = crate::domain::order::duplicate_payment(&others) {
                    review.push(reason);
                    duplicate_of = others.iter().min().cloned().map(|first| (root, first));
                }
            }
            // A duplicate payment buys nothing (the order paid first already did): it is
            // held for review (and refunded when so configured) with nothing to take back.
            let snapshot = row.snapshot();
            let mut credited = None;
            if duplicate_of.is_none() {
                let change = apply_balance_op!(
                    conn,
                    &row.user_id,
                    &BalanceOp::Fulfil(&snapshot),
                    now,
                    Some(order_no),
                    None
                );
                review.extend(change.review.iter().cloned());
                credited = Some(change.entry);
            } else {
                // Its snapshot is emptied, so a refund of it takes nothing back.
                diesel::update(orders::table.find(order_no))
                    .set((
                        orders::snap_points.eq(0),
                        orders::snap_membership_days.eq(0),
                        orders::snap_tier.eq(None::<String>),
                        orders::snap_tier_rank.eq(None::<i32>),
                        orders::snap_tier_price_fen.eq(None::<i64>),
                        orders::snap_tier_days.eq(None::<i32>),
                        orders::snap_from_tier.eq(None::<String>),
                        orders::snap_from_rank.eq(None::<i32>),
                        orders::snap_from_price_fen.eq(None::<i64>),
                        orders::snap_from_days.eq(None::<i32>),
                        orders::snap_upgrade_secs.eq(0),
                    ))
                    .execute(conn)
                    .await?;
                rewritten = true;
            }
            if !review.is_empty() {
                crate::flag_review!(conn, order_no, review.join("; "));
                rewritten = true;
            }
            if let Some(rec) = evidence {
                diesel::insert_into(payment_records::table)
                    .values(rec)
                    .execute(conn)
                    .await?;
            }
            // A refund decided with the payment is reserved with it, so a crash before it
            // reaches the provider leaves it processing for the reconciler, never lost.
            let refund = refunds
                .after_close
                .or(refunds.duplicate.filter(|_| duplicate_of.is_some()));
            if let Some(refund) = refund {
                let exists: i64 = refunds::table
                    .find(&refund.out_refund_no)
                    .count()
                    .get_result(conn)
                    .await?;
                if exists == 0 {
                    diesel::insert_into(refunds::table)
                        .values(refund)
                        .execute(conn)
                        .await?;
                }
            }
            let row = if rewritten {
                orders::table
                    .find(order_no)
                    .select(OrderRow::as_select())
                    .first(conn)
                    .await?
            } else {
                row
            };
            // A duplicate credits nothing: its events say so and name the order paid first.
            let details = match &credited {
                Some(e) => serde_json::json!({
                    "points_credited": e.delta_points,
                    "membership": snapshot.tier.as_ref().map(|t| serde_json::json!({
                        "tier": t.name,
                        "days": snapshot.membership_days,
                        "upgrade": snapshot.upgrade_from.is_some(),
                        "tier_before": e.tier_before,
                        "expires_before": e.expires_before.map(super::utc),
                        "expires_after": e.expires_after.map(super::utc),
                        "seconds_added": e.delta_membership_secs,
                    })),
                }),
                None => serde_json::json!({
                    "points_credited": 0,
                    "membership": null,
                    "duplicate_of": duplicate_of.as_ref().map(|(_, first)| first),
                }),
            };
            let mut out = vec![PendingEvent::for_order(
                events::ORDER_PAID,
                &row,
                details.clone(),
                sinks,
                now,
            )];
            if after_close {
                out.push(PendingEvent::for_order(
                    events::ORDER_PAID_AFTER_CLOSE,
                    &row,
                    details.clone(),
                    sinks,
                    now,
                ));
            }
            if let Some((root, first)) = duplicate_of {
                let mut details = details;
                details["duplicate_of"] = serde_json::json!(first);
                details["renewal_root"] = serde_json::json!(root);
                out.push(PendingEvent::for_order(
                    events::ORDER_DUPLICATE_PAYMENT,
                    &row,
                    details,
                    sinks,
                    now,
                ));
            }
            for ev in &out {
                write_event!(conn, ev);
            }
            Ok(Some(out))
        })
        .await
    });
    guard.finish(&out);
    out
}

/// Flag an order for an operator (inside a transaction), appending to earlier reasons.
#[macro_export]
macro_rules! flag_review {
    ($conn:ident, $order_no:expr, $reason:expr) => {{
        use $crate::db::schema::orders as o;
        let reason: String = $reason;
        let earlier: Option<String> = o::table
            .find($order_no)
            .select(o::review_reason)
            .first($conn)
            .await?;
        let joined = match earlier.filter(|r| !r.is_empty()) {
            Some(e) if e.contains(&reason) => e,
            Some(e) => format!("{e}; {reason}"),
            None => reason,
        };
        diesel::update(o::table.find($order_no))
            .set((o::needs_review.eq(true), o::review_reason.eq(joined)))
            .execute($conn)
            .await?;
    }};
}

/// A verified provider answer does not match the order (amount, app, merchant): flag it
/// for review, stop the jobs from retrying it, and emit `order.payment_mismatch` once.
pub async fn halt_for_mismatch(
    db: &Db,
    order_no: &str,
    reason: &str,
    sinks: &Sinks,
) -> DbResult<Option<PendingEvent>> {
    let now = super::now();
    let guard = db.order_cache().writing(order_no);
    let out = db_write!(db, |conn| {
        conn.transaction::<Option<PendingEvent>, DbError, _>(async |conn| {
            let n = diesel::update(
                orders::table
                    .filter(orders::order_no.eq(order_no))
                    .filter(orders::sync_halted.eq(false)),
            )
            .set((
                orders::sync_halted.eq(true),
                orders::lease_until.eq(None::<NaiveDateTime>),
                orders::updated_at.eq(now),
            ))
            .execute(conn)
            .await?;
            if n == 0 {
                return Ok(None);
            }
            crate::flag_review!(conn, order_no, format!("payment mismatch: {reason}"));
            let row = orders::table
                .find(order_no)
                .select(OrderRow::as_select())
                .first(conn)
                .await?;
            let ev = PendingEvent::for_order(
                events::ORDER_PAYMENT_MISMATCH,
                &row,
                serde_json::json!({ "reason": reason }),
                sinks,
                now,
            );
            write_event!(conn, &ev);
            Ok(Some(ev))
        })
        .await
    });
    guard.finish(&out);
    out
}

/// Keep many records in one transaction (one statement on PostgreSQL).
pub async fn record_many(db: &Db, recs: &[NewPaymentRecord]) -> DbResult<()> {
    match db.pools() {
        super::Pools::Pg(pool) => crate::db_on_pg!(pool, db, |conn| {
            diesel::insert_into(payment_records::table)
                .values(recs)
                .execute(conn)
                .await?;
            Ok(())
        }),
        // diesel-async has no multi-row insert for SQLite: one transaction, a statement each.
        super::Pools::Sqlite(..) => db_write!(db, |conn| {
            conn.transaction::<(), DbError, _>(async |conn| {
                for rec in recs {
                    diesel::insert_into(payment_records::table)
                        .values(rec)
                        .execute(conn)
                        .await?;
                }
                Ok(())
            })
            .await
        }),
    }
}

pub async fn records_for(db: &Db, order_no: &str) -> DbResult<Vec<PaymentRecordRow>> {
    db_run!(db, |conn| {
        Ok(payment_records::table
            .filter(payment_records::order_no.eq(order_no))
            .order(payment_records::id.asc())
            .select(PaymentRecordRow::as_select())
            .load(conn)
            .await?)
    })
}

/// One payment record by id (`fenpay replay`).
pub async fn record_by_id(db: &Db, id: i64) -> DbResult<Option<PaymentRecordRow>> {
    db_run!(db, |conn| {
        Ok(payment_records::table
            .filter(payment_records::id.eq(id))
            .select(PaymentRecordRow::as_select())
            .first(conn)
            .await
            .optional()?)
    })
}

/// Filters for the operator's order list.
#[derive(Clone, Debug, Default)]
pub struct OrderFilter {
    pub status: Option<String>,
    pub provider: Option<String>,
    pub created_from: Option<NaiveDateTime>,
    pub created_before: Option<NaiveDateTime>,
    /// A user id or username.
    pub user: Option<String>,
    pub needs_review: Option<bool>,
}

/// Orders across all users with their usernames, newest first, and the total count.
pub async fn list_filtered(
    db: &Db,
    filter: &OrderFilter,
    limit: i64,
    offset: i64,
) -> DbResult<(Vec<(OrderRow, String)>, i64)> {
    db_run!(db, |conn| {
        let build = || {
            let mut q = orders::table.inner_join(users::table).into_boxed();
            if let Some(s) = &filter.status {
                q = q.filter(orders::status.eq(s.clone()));
            }
            if let Some(p) = &filter.provider {
                q = q.filter(orders::provider.eq(p.clone()));
            }
            if let Some(t) = filter.created_from {
                q = q.filter(orders::created_at.ge(t));
            }
            if let Some(t) = filter.created_before {
                q = q.filter(orders::created_at.lt(t));
            }
            if let Some(u) = &filter.user {
                q = q.filter(users::id.eq(u.clone()).or(users::username.eq(u.clone())));
            }
            if let Some(r) = filter.needs_review {
                q = q.filter(orders::needs_review.eq(r));
            }
            q
        };
        let rows = build()
            .order((orders::created_at.desc(), orders::order_no.desc()))
            .limit(limit)
            .offset(offset)
            .select((OrderRow::as_select(), users::username))
            .load(conn)
            .await?;
        let total: i64 = build().count().get_result(conn).await?;
        Ok((rows, total))
    })
}

/// (paid_at, provider, amount_fen, refunded_fen) of orders paid in `[from, before)`.
pub async fn paid_between(
    db: &Db,
    from: NaiveDateTime,
    before: NaiveDateTime,
) -> DbResult<Vec<(NaiveDateTime, String, i64, i64)>> {
    db_run!(db, |conn| {
        let rows: Vec<(Option<NaiveDateTime>, String, i64, i64)> = orders::table
            .filter(orders::status.eq_any([OrderStatus::Paid, OrderStatus::Refunded]))
            .filter(orders::paid_at.ge(from))
            .filter(orders::paid_at.lt(before))
            .select((
                orders::paid_at,
                orders::provider,
                orders::amount_fen,
                orders::refunded_fen,
            ))
            .load(conn)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(t, p, a, r)| Some((t?, p, a, r)))
            .collect())
    })
}

#[derive(QueryableByName)]
struct ClaimedOrder {
    #[diesel(sql_type = Text)]
    order_no: String,
}

/// Which orders a job wants.
#[derive(Clone, Copy, Debug)]
pub enum OrderClaim {
    /// Pending orders past `expire_at` whose close is due: never tried, or its retry
    /// time (`close_retry_at`) has come (expiry sweeper). Orders whose close failed fewer
    /// times come first, so orders that keep failing never hold up the others.
    Expired,
    /// Pending orders created before the given time, not queried since the second
    /// time, with fewer than the given number of reconciler queries (reconciler).
    StalePending(NaiveDateTime, NaiveDateTime, i32),
    /// Orders cancelled before the first time and after the second, not queried since
    /// they were cancelled, or whose failed check is due again (`paid_check_at`)
    /// (paid-after-close detection).
    RecentlyCancelled(NaiveDateTime, NaiveDateTime),
}

/// Claim up to `limit` orders for a job, leasing them for `lease_secs` under a fresh
/// token that releasing the claim must name. Leases and expiry are compared on the
/// database's clock, so replicas whose own clocks disagree never take each other's
/// claims or close an order early. PostgreSQL picks candidates `FOR UPDATE SKIP LOCKED`,
/// so replicas never claim the same order; the lease keeps the claim while the job talks
/// to the provider outside any transaction.
pub async fn claim_for_job(
    db: &Db,
    claim: OrderClaim,
    limit: i64,
    lease_secs: i64,
) -> DbResult<Vec<(String, ClaimToken)>> {
    let token = ClaimToken::new();
    // Only fills the parameters a claim does not use: {NOW} is the database's clock.
    let now = db.now();
    let (condition, t1, t2, n) = match claim {
        OrderClaim::Expired => (
            "status = 'pending' AND NOT sync_halted AND expire_at < {NOW} \
             AND (close_retry_at IS NULL OR close_retry_at <= {NOW})",
            now,
            now,
            0,
        ),
        OrderClaim::StalePending(created_before, queried_before, max) => (
            "status = 'pending' AND NOT sync_halted AND created_at < {T1} AND expire_at >= {NOW} \
             AND (last_query_at IS NULL OR last_query_at < {T2}) AND query_attempts < {N}",
            created_before,
            queried_before,
            max,
        ),
        OrderClaim::RecentlyCancelled(cancelled_before, cancelled_after) => (
            "status = 'cancelled' AND NOT sync_halted AND updated_at < {T1} AND updated_at > {T2} \
             AND (last_query_at IS NULL OR last_query_at < updated_at \
                  OR (paid_check_at IS NOT NULL AND paid_check_at <= {NOW}))",
            cancelled_before,
            cancelled_after,
            0,
        ),
    };
    // Every bound parameter must appear in the statement on both engines.
    let condition =
        format!("{condition} AND ({{T1}} IS NULL OR {{T2}} IS NULL OR {{N}} IS NULL OR 1 = 1)");
    let pg = db.backend() == super::Backend::Postgres;
    let p = |i: u8| if pg { format!("${i}") } else { format!("?{i}") };
    let now = db.clock_sql(0);
    let condition = condition
        .replace("{NOW}", &now)
        .replace("{T1}", &p(2))
        .replace("{T2}", &p(3))
        .replace("{N}", &p(4));
    let sql = format!(
        "UPDATE orders SET lease_until = {lease}, claim_token = {token} WHERE order_no IN \
         (SELECT order_no FROM orders WHERE {condition} AND (lease_until IS NULL OR lease_until < {now}) \
         ORDER BY {order} LIMIT {limit}{lock}) RETURNING order_no",
        order = match claim {
            OrderClaim::Expired => "close_failures, expire_at, created_at",
            _ => "created_at",
        },
        lease = db.clock_sql(lease_secs),
        token = p(1),
        limit = p(5),
        lock = if pg { " FOR UPDATE SKIP LOCKED" } else { "" },
    );
    let rows: Vec<ClaimedOrder> = db_write!(db, |conn| {
        Ok::<_, DbError>(
            diesel::sql_query(sql.as_str())
                .bind::<Text, _>(token.as_str())
                .bind::<Timestamp, _>(t1)
                .bind::<Timestamp, _>(t2)
                .bind::<Integer, _>(n)
                .bind::<BigInt, _>(limit)
                .load(conn)
                .await?,
        )
    })?;
    Ok(rows
        .into_iter()
        .map(|r| (r.order_no, token.clone()))
        .collect())
}

/// The sweeper could not close an expired order: drop the claim, count the failure and
/// schedule the next try after `retry_in_secs(failures)` (the caller's backoff) on the
/// database's clock, keeping `error` (shortened) for operators, if `token` still holds the
/// claim (`Ok(false)`, nothing written, when it does not). The failure is counted only
/// while the order is pending.
pub async fn release_failed_close(
    db: &Db,
    order_no: &str,
    token: &ClaimToken,
    error: &str,
    retry_in_secs: fn(i32) -> i64,
) -> DbResult<bool> {
    type NTs = diesel::sql_types::Nullable<Timestamp>;
    let error: String = error.chars().filter(|c| *c != '\0').take(500).collect();
    let owned = db_write!(db, |conn| {
        conn.transaction::<bool, DbError, _>(async |conn| {
            let mine = orders::table
                .filter(orders::order_no.eq(order_no))
                .filter(orders::claim_token.eq(token.as_str()));
            let Some((failures, status)) = diesel::update(mine)
                .set((
                    orders::lease_until.eq(None::<NaiveDateTime>),
                    orders::claim_token.eq(None::<String>),
                ))
                .returning((orders::close_failures, orders::status))
                .get_result::<(i32, OrderStatus)>(conn)
                .await
                .optional()?
            else {
                return Ok(false);
            };
            if status == OrderStatus::Pending {
                let failures = failures.saturating_add(1);
                diesel::update(orders::table.find(order_no))
                    .set((
                        orders::close_failures.eq(failures),
                        orders::close_retry_at.eq(db.clock_expr::<NTs>(retry_in_secs(failures))),
                        orders::close_error.eq(Some(error.as_str())),
                    ))
                    .execute(conn)
                    .await?;
            }
            Ok(true)
        })
        .await
    })?;
    if !owned {
        stale_release(order_no, "sweeper close");
    }
    Ok(owned)
}

/// Expired orders still pending because closing them at the provider keeps failing:
/// how many, the earliest expiry among them, and that order's last error.
pub async fn stuck_expired(db: &Db) -> DbResult<(i64, Option<NaiveDateTime>, Option<String>)> {
    let pending_expired = || {
        orders::table
            .filter(orders::status.eq(OrderStatus::Pending))
            .filter(orders::close_failures.gt(0))
    };
    db_run!(db, |conn| {
        let count: i64 = pending_expired().count().get_result(conn).await?;
        let oldest: Option<(NaiveDateTime, Option<String>)> = pending_expired()
            .order(orders::expire_at.asc())
            .select((orders::expire_at, orders::close_error))
            .first(conn)
            .await
            .optional()?;
        Ok::<_, DbError>(match oldest {
            Some((at, error)) => (count, Some(at), error),
            None => (count, None, None),
        })
    })
}

/// A release by a job whose claim was taken over (its lease ran out and another job
/// claimed the order) changes nothing; say so.
fn stale_release(order_no: &str, what: &str) {
    tracing::warn!(
        order_no,
        "{what}: the job's claim on the order was lost (lease expired and taken over); nothing changed"
    );
}

/// The paid-after-close check of a cancelled order is over for now: drop the claim and
/// note the query, if `token` still holds the claim (`Ok(false)`, nothing written, when
/// it does not). `failed` (no verified answer) schedules the next try after
/// `retry_in_secs` (the caller's backoff) on the database's clock; a verified answer
/// ends the checking.
pub async fn release_paid_check(
    db: &Db,
    order_no: &str,
    token: &ClaimToken,
    failed: bool,
    retry_in_secs: fn(i32) -> i64,
) -> DbResult<bool> {
    type NTs = diesel::sql_types::Nullable<Timestamp>;
    let owned = db_write!(db, |conn| {
        conn.transaction::<bool, DbError, _>(async |conn| {
            let mine = orders::table
                .filter(orders::order_no.eq(order_no))
                .filter(orders::claim_token.eq(token.as_str()));
            let Some(failures) = diesel::update(mine)
                .set((
                    orders::lease_until.eq(None::<NaiveDateTime>),
                    orders::claim_token.eq(None::<String>),
                    orders::last_query_at.eq(db.clock_expr::<NTs>(0)),
                ))
                .returning(orders::paid_check_failures)
                .get_result::<i32>(conn)
                .await
                .optional()?
            else {
                return Ok(false);
            };
            if failed {
                let failures = failures.saturating_add(1);
                diesel::update(orders::table.find(order_no))
                    .set((
                        orders::paid_check_failures.eq(failures),
                        orders::paid_check_at.eq(db.clock_expr::<NTs>(retry_in_secs(failures))),
                    ))
                    .execute(conn)
                    .await?;
            } else {
                diesel::update(orders::table.find(order_no))
                    .set(orders::paid_check_at.eq(None::<NaiveDateTime>))
                    .execute(conn)
                    .await?;
            }
            Ok(true)
        })
        .await
    })?;
    if !owned {
        stale_release(order_no, "paid-after-close check");
    }
    Ok(owned)
}

/// A job is done with an order: note the query (while the order is still pending) and
/// drop the claim, if `token` still holds it (`Ok(false)`, nothing written, when it does
/// not). An order cancelled while the job held it keeps `last_query_at` from before its
/// cancel, so the paid-after-close check still picks it up.
pub async fn release_job_claim(
    db: &Db,
    order_no: &str,
    token: &ClaimToken,
    queried: bool,
) -> DbResult<bool> {
    type NTs = diesel::sql_types::Nullable<Timestamp>;
    let owned = db_write!(db, |conn| {
        conn.transaction::<bool, DbError, _>(async |conn| {
            let n = diesel::update(
                orders::table
                    .filter(orders::order_no.eq(order_no))
                    .filter(orders::claim_token.eq(token.as_str())),
            )
            .set((
                orders::lease_until.eq(None::<NaiveDateTime>),
                orders::claim_token.eq(None::<String>),
            ))
            .execute(conn)
            .await?;
            if n == 0 {
                return Ok(false);
            }
            if queried {
                diesel::update(
                    orders::table
                        .filter(orders::order_no.eq(order_no))
                        .filter(orders::status.eq(OrderStatus::Pending)),
                )
                .set((
                    orders::last_query_at.eq(db.clock_expr::<NTs>(0)),
                    orders::query_attempts.eq(orders::query_attempts + 1),
                ))
                .execute(conn)
                .await?;
            }
            Ok(true)
        })
        .await
    })?;
    if !owned {
        stale_release(order_no, "job claim");
    }
    Ok(owned)
}
