//! The outbox: events written in the same transaction as the order change they report,
//! their webhook deliveries (one row per endpoint) and the delivery log.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Timestamp};
use diesel_async::{AsyncConnection, RunQueryDsl};
use serde_json::json;

use super::orders::OrderRow;
use super::schema::{outbox_events, webhook_attempts, webhook_deliveries};
use super::{Db, DbError, DbResult};
use crate::{db_run, db_write};

/// Endpoint name used for the Telegram notifier in `webhook_deliveries`.
pub const TELEGRAM_ENDPOINT: &str = "telegram";

/// Event types.
pub const ORDER_CREATED: &str = "order.created";
pub const ORDER_PAID: &str = "order.paid";
pub const ORDER_CANCELLED: &str = "order.cancelled";
pub const ORDER_REFUNDED: &str = "order.refunded";
pub const ORDER_PAID_AFTER_CLOSE: &str = "order.paid_after_close";
/// A verified provider answer that does not match the order (amount, app, merchant).
pub const ORDER_PAYMENT_MISMATCH: &str = "order.payment_mismatch";
/// A second payment for the same purchase (an order and its renewed QR code both paid).
pub const ORDER_DUPLICATE_PAYMENT: &str = "order.duplicate_payment";

/// Where events go: the configured webhook URLs, and Telegram for the events a
/// shop owner wants on their phone.
#[derive(Clone, Debug, Default)]
pub struct Sinks {
    pub webhook_urls: Vec<String>,
    pub telegram: bool,
}

impl Sinks {
    fn endpoints_for(&self, event_type: &str) -> Vec<String> {
        let mut out = self.webhook_urls.clone();
        if self.telegram
            && matches!(
                event_type,
                ORDER_CREATED | ORDER_PAID | ORDER_PAID_AFTER_CLOSE | ORDER_PAYMENT_MISMATCH
            )
        {
            out.push(TELEGRAM_ENDPOINT.to_string());
        }
        out
    }
}

#[derive(Clone, Debug, Insertable)]
#[diesel(table_name = outbox_events)]
pub struct NewEvent {
    pub id: String,
    pub event_type: String,
    pub order_no: Option<String>,
    pub payload: String,
    pub created_at: NaiveDateTime,
}

#[derive(Clone, Debug, Insertable)]
#[diesel(table_name = webhook_deliveries)]
pub struct NewDelivery {
    pub event_id: String,
    pub endpoint: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// An event and its deliveries, ready to be written inside a transaction with
/// [`write_event!`](crate::write_event).
#[derive(Clone, Debug)]
pub struct PendingEvent {
    pub event: NewEvent,
    pub deliveries: Vec<NewDelivery>,
}

/// What subscribers (live streams, the dispatcher) hear about a committed event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventSignal {
    pub event_id: String,
    pub event_type: String,
    pub order_no: Option<String>,
}

impl PendingEvent {
    /// An order event whose payload is the order as it is after the change, plus `extra`.
    pub fn for_order(
        event_type: &str,
        order: &OrderRow,
        extra: serde_json::Value,
        sinks: &Sinks,
        now: NaiveDateTime,
    ) -> PendingEvent {
        let id = format!("evt_{}", uuid::Uuid::new_v4().simple());
        let payload = json!({
            "id": id,
            "type": event_type,
            "created_at": super::utc(now),
            "data": {
                "order": order_payload(order),
                "details": extra,
            },
        });
        let deliveries = sinks
            .endpoints_for(event_type)
            .into_iter()
            .map(|endpoint| NewDelivery {
                event_id: id.clone(),
                endpoint,
                status: "pending".into(),
                attempts: 0,
                next_attempt_at: now,
                created_at: now,
                updated_at: now,
            })
            .collect();
        PendingEvent {
            event: NewEvent {
                id,
                event_type: event_type.to_string(),
                order_no: Some(order.order_no.clone()),
                payload: payload.to_string(),
                created_at: now,
            },
            deliveries,
        }
    }

    pub fn signal(&self) -> EventSignal {
        EventSignal {
            event_id: self.event.id.clone(),
            event_type: self.event.event_type.clone(),
            order_no: self.event.order_no.clone(),
        }
    }
}

/// The order as webhook receivers see it (integer fen, UTC times).
pub fn order_payload(o: &OrderRow) -> serde_json::Value {
    json!({
        "order_no": o.order_no,
        "user_id": o.user_id,
        "status": o.status,
        "amount_fen": o.amount_fen,
        "refunded_fen": o.refunded_fen,
        "provider": o.provider,
        "channel": o.channel,
        "product_id": o.product_id,
        "product_type": o.product_type,
        "product_name": o.product_name,
        "quantity": o.quantity,
        "is_upgrade": o.is_upgrade,
        "provider_transaction_id": o.provider_transaction_id,
        "paid_at": o.paid_at.map(super::utc),
        "cancel_reason": o.cancel_reason,
        "needs_review": o.needs_review,
        "review_reason": o.review_reason,
        "created_at": super::utc(o.created_at),
    })
}

/// Insert a [`PendingEvent`] on `$conn` (inside the caller's transaction).
#[macro_export]
macro_rules! write_event {
    ($conn:ident, $ev:expr) => {{
        let ev: &$crate::db::events::PendingEvent = $ev;
        diesel::insert_into($crate::db::schema::outbox_events::table)
            .values(&ev.event)
            .execute($conn)
            .await?;
        for d in &ev.deliveries {
            diesel::insert_into($crate::db::schema::webhook_deliveries::table)
                .values(d)
                .execute($conn)
                .await?;
        }
    }};
}

#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = outbox_events)]
pub struct EventRow {
    pub id: String,
    pub event_type: String,
    pub order_no: Option<String>,
    pub payload: String,
    pub created_at: NaiveDateTime,
}

#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = webhook_deliveries)]
pub struct DeliveryRow {
    pub id: i64,
    pub event_id: String,
    pub endpoint: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: NaiveDateTime,
    pub lease_until: Option<NaiveDateTime>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub delivered_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Clone, Debug, Insertable)]
#[diesel(table_name = webhook_attempts)]
pub struct NewAttempt {
    pub delivery_id: i64,
    pub attempt: i32,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub duration_ms: i64,
    pub created_at: NaiveDateTime,
}

pub async fn events_for_order(db: &Db, order_no: &str) -> DbResult<Vec<EventRow>> {
    db_run!(db, |conn| {
        Ok(outbox_events::table
            .filter(outbox_events::order_no.eq(order_no))
            .order((outbox_events::created_at.asc(), outbox_events::id.asc()))
            .select(EventRow::as_select())
            .load(conn)
            .await?)
    })
}

pub async fn find_event(db: &Db, id: &str) -> DbResult<Option<EventRow>> {
    db_run!(db, |conn| {
        Ok(outbox_events::table
            .find(id)
            .select(EventRow::as_select())
            .first(conn)
            .await
            .optional()?)
    })
}

/// Deliveries with their event, for one order or filtered by status, newest first.
pub async fn list_deliveries(
    db: &Db,
    status: Option<&str>,
    order_no: Option<&str>,
    limit: i64,
    offset: i64,
) -> DbResult<(Vec<(DeliveryRow, EventRow)>, i64)> {
    db_run!(db, |conn| {
        let build = || {
            let mut q = webhook_deliveries::table
                .inner_join(outbox_events::table)
                .into_boxed();
            if let Some(s) = status {
                q = q.filter(webhook_deliveries::status.eq(s.to_string()));
            }
            if let Some(o) = order_no {
                q = q.filter(outbox_events::order_no.eq(o.to_string()));
            }
            q
        };
        let rows = build()
            .order(webhook_deliveries::id.desc())
            .limit(limit)
            .offset(offset)
            .select((DeliveryRow::as_select(), EventRow::as_select()))
            .load(conn)
            .await?;
        let total: i64 = build().count().get_result(conn).await?;
        Ok((rows, total))
    })
}

pub async fn find_delivery(db: &Db, id: i64) -> DbResult<Option<(DeliveryRow, EventRow)>> {
    db_run!(db, |conn| {
        Ok(webhook_deliveries::table
            .inner_join(outbox_events::table)
            .filter(webhook_deliveries::id.eq(id))
            .select((DeliveryRow::as_select(), EventRow::as_select()))
            .first(conn)
            .await
            .optional()?)
    })
}

#[derive(QueryableByName)]
struct ClaimedId {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Claim up to `limit` due deliveries for `lease_secs`. On PostgreSQL the candidates are
/// picked `FOR UPDATE SKIP LOCKED`, so concurrent dispatchers on other replicas never
/// claim the same row; the lease keeps the claim after the transaction.
pub async fn claim_due_deliveries(db: &Db, limit: i64, lease_secs: i64) -> DbResult<Vec<i64>> {
    let now = super::now();
    let until = now + chrono::Duration::seconds(lease_secs);
    let rows: Vec<ClaimedId> = match db.backend() {
        super::Backend::Postgres => db_write!(db, |conn| {
            Ok::<_, super::DbError>(
                diesel::sql_query(
                    "UPDATE webhook_deliveries SET lease_until = $1 WHERE id IN (\
                     SELECT id FROM webhook_deliveries WHERE status = 'pending' \
                     AND next_attempt_at <= $2 AND (lease_until IS NULL OR lease_until < $2) \
                     ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING id",
                )
                .bind::<Timestamp, _>(until)
                .bind::<Timestamp, _>(now)
                .bind::<BigInt, _>(limit)
                .load(conn)
                .await?,
            )
        })?,
        super::Backend::Sqlite => db_write!(db, |conn| {
            Ok::<_, super::DbError>(
                diesel::sql_query(
                    "UPDATE webhook_deliveries SET lease_until = ?1 WHERE id IN (\
                     SELECT id FROM webhook_deliveries WHERE status = 'pending' \
                     AND next_attempt_at <= ?2 AND (lease_until IS NULL OR lease_until < ?2) \
                     ORDER BY next_attempt_at LIMIT ?3) RETURNING id",
                )
                .bind::<Timestamp, _>(until)
                .bind::<Timestamp, _>(now)
                .bind::<BigInt, _>(limit)
                .load(conn)
                .await?,
            )
        })?,
    };
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// How an attempt ended.
#[derive(Clone, Debug)]
pub enum AttemptResult {
    Delivered,
    /// Retry at this time.
    Retry(NaiveDateTime),
    /// Retries exhausted.
    GiveUp,
}

/// Log an attempt and move the delivery on, releasing its lease.
pub async fn finish_attempt(db: &Db, attempt: &NewAttempt, result: &AttemptResult) -> DbResult<()> {
    let now = super::now();
    let (status, next, delivered_at) = match result {
        AttemptResult::Delivered => ("delivered", now, Some(now)),
        AttemptResult::Retry(at) => ("pending", *at, None),
        AttemptResult::GiveUp => ("failed", now, None),
    };
    // One transaction: an attempt logged without its delivery moved on would be
    // delivered again after the lease.
    db_write!(db, |conn| {
        conn.transaction::<(), DbError, _>(async |conn| {
            diesel::insert_into(webhook_attempts::table)
                .values(attempt)
                .execute(conn)
                .await?;
            diesel::update(
                webhook_deliveries::table
                    .filter(webhook_deliveries::id.eq(attempt.delivery_id))
                    .filter(webhook_deliveries::status.eq("pending")),
            )
            .set((
                webhook_deliveries::status.eq(status),
                webhook_deliveries::attempts.eq(attempt.attempt),
                webhook_deliveries::next_attempt_at.eq(next),
                webhook_deliveries::lease_until.eq(None::<NaiveDateTime>),
                webhook_deliveries::last_status_code.eq(attempt.status_code),
                webhook_deliveries::last_error.eq(&attempt.error),
                webhook_deliveries::delivered_at.eq(delivered_at),
                webhook_deliveries::updated_at.eq(now),
            ))
            .execute(conn)
            .await?;
            Ok(())
        })
        .await
    })
}

/// Queue a delivery again now (operator resend), whatever its state.
pub async fn requeue(db: &Db, id: i64) -> DbResult<bool> {
    let now = super::now();
    db_write!(db, |conn| {
        let n = diesel::update(webhook_deliveries::table.filter(webhook_deliveries::id.eq(id)))
            .set((
                webhook_deliveries::status.eq("pending"),
                webhook_deliveries::next_attempt_at.eq(now),
                webhook_deliveries::lease_until.eq(None::<NaiveDateTime>),
                webhook_deliveries::updated_at.eq(now),
            ))
            .execute(conn)
            .await?;
        Ok(n == 1)
    })
}

/// Attempts so far for a delivery (the delivery log), oldest first.
pub async fn attempts_for(db: &Db, delivery_id: i64) -> DbResult<Vec<(i32, Option<i32>)>> {
    db_run!(db, |conn| {
        Ok(webhook_attempts::table
            .filter(webhook_attempts::delivery_id.eq(delivery_id))
            .order(webhook_attempts::id.asc())
            .select((webhook_attempts::attempt, webhook_attempts::status_code))
            .load(conn)
            .await?)
    })
}
