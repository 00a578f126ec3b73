//! Order rows and their compare-and-set transitions.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};

use super::schema::{orders, payment_records, users};
use super::{Db, DbError, DbResult};
use crate::db_run;

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
    pub status: String,
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
}

/// What the buyer gets when the order is paid, applied in the same transaction.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Fulfilment {
    pub user_id: String,
    pub points: i64,
    /// (tier, days) for memberships.
    pub membership: Option<(String, i64)>,
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

pub async fn insert(db: &Db, row: &OrderRow) -> DbResult<()> {
    db_run!(db, |conn| {
        diesel::insert_into(orders::table)
            .values(row)
            .execute(conn)
            .await?;
        Ok(())
    })
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

/// Store what the provider returned for a pending order.
pub async fn set_payment_targets(
    db: &Db,
    order_no: &str,
    qr_code_url: Option<String>,
    pay_url: Option<String>,
    h5_url: Option<String>,
    sdk_params: Option<String>,
) -> DbResult<bool> {
    let now = super::now();
    db_run!(db, |conn| {
        let n = diesel::update(
            orders::table
                .filter(orders::order_no.eq(order_no))
                .filter(orders::status.eq("pending")),
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
        Ok(n == 1)
    })
}

/// Remove a pending order whose provider call failed, so nothing half-made stays behind.
pub async fn delete_unopened(db: &Db, order_no: &str) -> DbResult<bool> {
    db_run!(db, |conn| {
        let n = diesel::delete(
            orders::table
                .filter(orders::order_no.eq(order_no))
                .filter(orders::status.eq("pending"))
                .filter(orders::provider_transaction_id.is_null()),
        )
        .execute(conn)
        .await?;
        Ok(n == 1)
    })
}

/// Compare-and-set `pending -> cancelled`; `true` when this call won.
pub async fn cancel(db: &Db, order_no: &str, reason: &str) -> DbResult<bool> {
    let now = super::now();
    db_run!(db, |conn| {
        let n = diesel::update(
            orders::table
                .filter(orders::order_no.eq(order_no))
                .filter(orders::status.eq("pending")),
        )
        .set((
            orders::status.eq("cancelled"),
            orders::cancel_reason.eq(reason),
            orders::updated_at.eq(now),
        ))
        .execute(conn)
        .await?;
        Ok(n == 1)
    })
}

/// Claim the right to query the provider for a pending order at most once per `min_gap`.
pub async fn claim_query_slot(
    db: &Db,
    order_no: &str,
    min_gap: chrono::Duration,
) -> DbResult<bool> {
    let now = super::now();
    let threshold = now - min_gap;
    db_run!(db, |conn| {
        let n = diesel::update(
            orders::table
                .filter(orders::order_no.eq(order_no))
                .filter(orders::status.eq("pending"))
                .filter(
                    orders::last_query_at
                        .is_null()
                        .or(orders::last_query_at.lt(threshold)),
                ),
        )
        .set(orders::last_query_at.eq(now))
        .execute(conn)
        .await?;
        Ok(n == 1)
    })
}

/// Compare-and-set `from -> paid` and fulfil in the same transaction.
///
/// Returns `true` when this call won; a duplicate or concurrent caller gets `false` and
/// nothing is credited twice.
pub async fn mark_paid(
    db: &Db,
    order_no: &str,
    from: &str,
    facts: &PaidFacts,
    needs_review: bool,
    fulfilment: &Fulfilment,
) -> DbResult<bool> {
    let now = super::now();
    db_run!(db, |conn| {
        conn.transaction::<bool, DbError, _>(async |conn| {
            {
                // The write comes first: it takes the row lock (PostgreSQL) or the
                // database write lock (SQLite) before anything is read.
                let n = diesel::update(
                    orders::table
                        .filter(orders::order_no.eq(order_no))
                        .filter(orders::status.eq(from)),
                )
                .set((
                    orders::status.eq("paid"),
                    orders::paid_at.eq(facts.paid_at),
                    orders::provider_transaction_id.eq(&facts.transaction_id),
                    orders::needs_review.eq(needs_review),
                    orders::updated_at.eq(now),
                ))
                .execute(conn)
                .await?;
                if n == 0 {
                    return Ok(false);
                }
                diesel::update(users::table.find(&fulfilment.user_id))
                    .set((
                        users::points_balance.eq(users::points_balance + fulfilment.points),
                        users::updated_at.eq(now),
                    ))
                    .execute(conn)
                    .await?;
                if let Some((tier, days)) = &fulfilment.membership {
                    let current: Option<NaiveDateTime> = users::table
                        .find(&fulfilment.user_id)
                        .select(users::membership_expires_at)
                        .first(conn)
                        .await?;
                    let start = current.filter(|t| *t > now).unwrap_or(now);
                    diesel::update(users::table.find(&fulfilment.user_id))
                        .set((
                            users::membership_tier.eq(tier),
                            users::membership_expires_at.eq(start + chrono::Duration::days(*days)),
                        ))
                        .execute(conn)
                        .await?;
                }
                Ok(true)
            }
        })
        .await
    })
}

/// Keep a raw provider exchange (notification or API call) with its verdict.
pub async fn record(db: &Db, rec: &NewPaymentRecord) -> DbResult<()> {
    db_run!(db, |conn| {
        diesel::insert_into(payment_records::table)
            .values(rec)
            .execute(conn)
            .await?;
        Ok(())
    })
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
