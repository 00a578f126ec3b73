//! The outbox: events written in the same transaction as the order change they report,
//! their webhook deliveries (one row per endpoint) and the delivery log.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text, Timestamp};
use diesel_async::{AsyncConnection, RunQueryDsl};
use serde_json::json;

use super::orders::OrderRow;
use super::schema::{outbox_events, webhook_attempts, webhook_deliveries};
use super::{ClaimToken, Db, DbClock, DbError, DbResult};
use crate::{db_run, db_write};

/// Endpoint name used for the Telegram notifier in `webhook_deliveries`.
pub const TELEGRAM_ENDPOINT: &str = "telegram";

/// Endpoint names `epay:<app_id>`: an epay order's payment notification (a signed GET to
/// the order's `notify_url`, see `service::epay`). One name per app, so one app's broken
/// receiver opens only its own circuit.
pub const EPAY_ENDPOINT_PREFIX: &str = "epay:";

/// The epay notification endpoint of an event, if it has one: `order.paid` of an app's
/// order that carries a `notify_url`.
pub fn epay_endpoint(event_type: &str, order: &OrderRow) -> Option<String> {
    match (&order.app_id, &order.notify_url) {
        (Some(app_id), Some(_)) if event_type == ORDER_PAID => {
            Some(format!("{EPAY_ENDPOINT_PREFIX}{app_id}"))
        }
        _ => None,
    }
}

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

/// A reconciliation of a provider's daily bill found differences.
pub const RECONCILIATION_MISMATCH: &str = "reconciliation.mismatch";

/// A WeChat Pay buyer complaint reached fenpay (once per complaint; no order_no column:
/// the linked order, if any, is in the payload).
pub const COMPLAINT_CREATED: &str = "complaint.created";

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
                ORDER_CREATED
                    | ORDER_PAID
                    | ORDER_PAID_AFTER_CLOSE
                    | ORDER_PAYMENT_MISMATCH
                    | ORDER_DUPLICATE_PAYMENT
                    | COMPLAINT_CREATED
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
        let mut endpoints = sinks.endpoints_for(event_type);
        // An app's orders also go to the app's own webhook endpoint.
        if let Some(app_id) = &order.app_id {
            endpoints.push(app_endpoint(app_id));
        }
        let deliveries = endpoints
            .into_iter()
            // epay orders: the payment notification to their notify_url.
            .chain(epay_endpoint(event_type, order))
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

    /// An event about no single order (e.g. a reconciliation): `data` is its payload's data.
    pub fn general(
        event_type: &str,
        data: serde_json::Value,
        sinks: &Sinks,
        now: NaiveDateTime,
    ) -> PendingEvent {
        let id = format!("evt_{}", uuid::Uuid::new_v4().simple());
        let payload = json!({
            "id": id,
            "type": event_type,
            "created_at": super::utc(now),
            "data": data,
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
                order_no: None,
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

/// The delivery endpoint name of an app's own webhook (its URL and secret are read when
/// the delivery is sent, so a changed URL or a rotated secret applies to pending ones).
pub fn app_endpoint(app_id: &str) -> String {
    format!("{APP_ENDPOINT_PREFIX}{app_id}")
}

/// Prefix of [`app_endpoint`] names.
pub const APP_ENDPOINT_PREFIX: &str = "app:";

/// The order as webhook receivers see it (integer fen, UTC times); an app's order also
/// carries the app's own fields.
pub fn order_payload(o: &OrderRow) -> serde_json::Value {
    let mut payload = base_payload(o);
    if let (Some(app_id), Some(map)) = (&o.app_id, payload.as_object_mut()) {
        map.insert("app_id".into(), json!(app_id));
        map.insert("out_order_no".into(), json!(o.out_order_no));
        map.insert("customer_ref".into(), json!(o.customer_ref));
        map.insert(
            "metadata".into(),
            o.metadata
                .as_deref()
                .and_then(|m| serde_json::from_str(m).ok())
                .unwrap_or(serde_json::Value::Null),
        );
    }
    payload
}

fn base_payload(o: &OrderRow) -> serde_json::Value {
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
    /// An operator asked for a resend while an attempt was in flight: it is sent again
    /// once that attempt is over.
    pub resend_requested: bool,
    /// The last operator resend; the retry window counts from it (else from `created_at`).
    pub resent_at: Option<NaiveDateTime>,
}

impl DeliveryRow {
    /// Where the WEBHOOK_RETRY_HOURS window starts: the last resend, else the creation.
    pub fn retry_window_start(&self) -> NaiveDateTime {
        self.resent_at.unwrap_or(self.created_at)
    }
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
    #[diesel(sql_type = Timestamp)]
    now: NaiveDateTime,
}

#[derive(QueryableByName)]
struct DueEndpoint {
    #[diesel(sql_type = Text)]
    endpoint: String,
}

/// Deliveries claimed together: their ids, the claim's token, and the database's clock
/// at the claim (what due times and the retry window are computed from).
#[derive(Clone, Debug)]
pub struct DeliveryClaim {
    pub ids: Vec<i64>,
    pub token: ClaimToken,
    pub clock: Option<DbClock>,
}

/// A delivery is due when it was never tried (whatever clock wrote its creation time)
/// or its retry time has come, and no live claim holds it; times by the database's clock.
fn due_condition(db: &Db) -> String {
    let now = db.clock_sql(0);
    format!(
        "status = 'pending' AND (attempts = 0 OR next_attempt_at <= {now}) \
         AND (lease_until IS NULL OR lease_until < {now})"
    )
}

/// Endpoints that have deliveries due now (at most `limit`).
pub async fn due_endpoints(db: &Db, limit: i64) -> DbResult<Vec<String>> {
    let sql = format!(
        "SELECT endpoint FROM webhook_deliveries WHERE {} GROUP BY endpoint \
         ORDER BY MIN(next_attempt_at) LIMIT {limit}",
        due_condition(db)
    );
    let rows: Vec<DueEndpoint> = db_run!(db, |conn| {
        Ok::<_, DbError>(diesel::sql_query(sql.as_str()).load(conn).await?)
    })?;
    Ok(rows.into_iter().map(|r| r.endpoint).collect())
}

/// Claim up to `limit` due deliveries to `endpoint` for `lease_secs` (by the database's
/// clock, so replicas whose clocks disagree never take each other's claims), under a
/// fresh token that finishing the attempt must name. On PostgreSQL the candidates are
/// picked `FOR UPDATE SKIP LOCKED`, so concurrent dispatchers never claim the same row.
/// A claim also satisfies an earlier resend request (its attempt is the resend).
pub async fn claim_due_deliveries(
    db: &Db,
    endpoint: &str,
    limit: i64,
    lease_secs: i64,
) -> DbResult<DeliveryClaim> {
    let token = ClaimToken::new();
    let pg = db.backend() == super::Backend::Postgres;
    let p = |i: u8| if pg { format!("${i}") } else { format!("?{i}") };
    let sql = format!(
        "UPDATE webhook_deliveries SET lease_until = {until}, claim_token = {token}, \
         resend_requested = FALSE WHERE id IN (SELECT id FROM webhook_deliveries \
         WHERE endpoint = {endpoint} AND {due} ORDER BY next_attempt_at, id LIMIT {limit}{lock}) \
         RETURNING id, {now} AS now",
        until = db.clock_sql(lease_secs),
        token = p(1),
        endpoint = p(2),
        due = due_condition(db),
        limit = p(3),
        lock = if pg { " FOR UPDATE SKIP LOCKED" } else { "" },
        now = db.clock_sql(0),
    );
    let rows: Vec<ClaimedId> = db_write!(db, |conn| {
        Ok::<_, DbError>(
            diesel::sql_query(sql.as_str())
                .bind::<Text, _>(token.as_str())
                .bind::<Text, _>(endpoint)
                .bind::<BigInt, _>(limit)
                .load(conn)
                .await?,
        )
    })?;
    Ok(DeliveryClaim {
        clock: <[ClaimedId]>::first(&rows).map(|r| DbClock::new(r.now)),
        ids: rows.into_iter().map(|r| r.id).collect(),
        token,
    })
}

/// How an attempt ended.
#[derive(Clone, Debug)]
pub enum AttemptResult {
    Delivered,
    /// Retry this many seconds from now (by the database's clock).
    Retry(i64),
    /// Retries exhausted.
    GiveUp,
}

/// Log an attempt and move the delivery on, releasing its claim, if `token` still holds
/// it. `Ok(false)` (nothing written) when it does not: the lease ran out and another
/// dispatcher claimed the delivery, or an operator's resend superseded a dead claim.
/// A resend requested during the attempt queues the delivery again at once, whatever
/// this attempt's result.
pub async fn finish_attempt(
    db: &Db,
    token: &ClaimToken,
    attempt: &NewAttempt,
    result: &AttemptResult,
) -> DbResult<bool> {
    type Ts = diesel::sql_types::Timestamp;
    type NTs = diesel::sql_types::Nullable<Timestamp>;
    // One transaction: an attempt logged without its delivery moved on would be
    // delivered again after the lease.
    db_write!(db, |conn| {
        conn.transaction::<bool, DbError, _>(async |conn| {
            // Take the row (a write that changes nothing) and read the resend flag, only
            // while this claim still holds it.
            let resend: Option<bool> = diesel::update(
                webhook_deliveries::table
                    .filter(webhook_deliveries::id.eq(attempt.delivery_id))
                    .filter(webhook_deliveries::claim_token.eq(token.as_str()))
                    .filter(webhook_deliveries::status.eq("pending")),
            )
            .set(webhook_deliveries::claim_token.eq(token.as_str()))
            .returning(webhook_deliveries::resend_requested)
            .get_result(conn)
            .await
            .optional()?;
            let Some(resend) = resend else {
                return Ok(false);
            };
            let (status, after_secs, delivered) = match (resend, result) {
                (true, r) => ("pending", 0, matches!(r, AttemptResult::Delivered)),
                (false, AttemptResult::Delivered) => ("delivered", 0, true),
                (false, AttemptResult::Retry(secs)) => ("pending", *secs, false),
                (false, AttemptResult::GiveUp) => ("failed", 0, false),
            };
            diesel::insert_into(webhook_attempts::table)
                .values(attempt)
                .execute(conn)
                .await?;
            diesel::update(webhook_deliveries::table.find(attempt.delivery_id))
                .set((
                    webhook_deliveries::status.eq(status),
                    webhook_deliveries::attempts.eq(attempt.attempt),
                    webhook_deliveries::next_attempt_at.eq(db.clock_expr::<Ts>(after_secs)),
                    webhook_deliveries::lease_until.eq(None::<NaiveDateTime>),
                    webhook_deliveries::claim_token.eq(None::<String>),
                    webhook_deliveries::resend_requested.eq(false),
                    webhook_deliveries::last_status_code.eq(attempt.status_code),
                    webhook_deliveries::last_error.eq(&attempt.error),
                    // The first arrival stays on record, even when a resend fails later.
                    webhook_deliveries::delivered_at.eq(if delivered {
                        diesel::dsl::sql::<NTs>(&format!(
                            "COALESCE(delivered_at, {})",
                            db.clock_sql(0)
                        ))
                    } else {
                        diesel::dsl::sql::<NTs>("delivered_at")
                    }),
                    webhook_deliveries::updated_at.eq(db.clock_expr::<Ts>(0)),
                ))
                .execute(conn)
                .await?;
            Ok(true)
        })
        .await
    })
}

/// What an operator's resend did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resend {
    /// Queued: due now.
    Now,
    /// An attempt is in flight: the delivery is sent again once it is over (never two
    /// attempts at once).
    AfterAttemptInFlight,
}

/// Queue a delivery again (operator resend), whatever its state; the retry window starts
/// again now. `None` when there is no such delivery.
pub async fn requeue(db: &Db, id: i64) -> DbResult<Option<Resend>> {
    type Ts = diesel::sql_types::Timestamp;
    type NTs = diesel::sql_types::Nullable<Timestamp>;
    // A claim can come or go between the two statements; each is a compare-and-set, so
    // a lost race just tries again.
    for _ in 0..3 {
        let in_flight = db_write!(db, |conn| {
            Ok::<_, DbError>(
                diesel::update(
                    webhook_deliveries::table
                        .filter(webhook_deliveries::id.eq(id))
                        .filter(webhook_deliveries::claim_token.is_not_null())
                        .filter(webhook_deliveries::lease_until.ge(db.clock_expr::<NTs>(0))),
                )
                .set((
                    webhook_deliveries::resend_requested.eq(true),
                    webhook_deliveries::resent_at.eq(db.clock_expr::<NTs>(0)),
                    webhook_deliveries::updated_at.eq(db.clock_expr::<Ts>(0)),
                ))
                .execute(conn)
                .await?,
            )
        })?;
        if in_flight == 1 {
            return Ok(Some(Resend::AfterAttemptInFlight));
        }
        let queued = db_write!(db, |conn| {
            Ok::<_, DbError>(
                diesel::update(
                    webhook_deliveries::table
                        .filter(webhook_deliveries::id.eq(id))
                        .filter(
                            webhook_deliveries::claim_token
                                .is_null()
                                .or(webhook_deliveries::lease_until.is_null())
                                .or(webhook_deliveries::lease_until.lt(db.clock_expr::<NTs>(0))),
                        ),
                )
                .set((
                    webhook_deliveries::status.eq("pending"),
                    webhook_deliveries::next_attempt_at.eq(db.clock_expr::<Ts>(0)),
                    webhook_deliveries::lease_until.eq(None::<NaiveDateTime>),
                    webhook_deliveries::claim_token.eq(None::<String>),
                    webhook_deliveries::resend_requested.eq(false),
                    webhook_deliveries::resent_at.eq(db.clock_expr::<NTs>(0)),
                    webhook_deliveries::updated_at.eq(db.clock_expr::<Ts>(0)),
                ))
                .execute(conn)
                .await?,
            )
        })?;
        if queued == 1 {
            return Ok(Some(Resend::Now));
        }
        if find_delivery(db, id).await?.is_none() {
            return Ok(None);
        }
    }
    Err(DbError::Pool(
        "a webhook delivery kept changing hands during a resend; try again".into(),
    ))
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
