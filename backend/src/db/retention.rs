//! Purges of rows past their retention window, in small batches. What may be purged is
//! decided in [`crate::domain::retention`]; the SQL here states the same rule.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text, Timestamp};
use diesel_async::{AsyncConnection, RunQueryDsl};

use super::schema::{outbox_events, payment_records, webhook_attempts, webhook_deliveries};
use super::{Db, DbError, DbResult};
use crate::domain::retention as rules;
use crate::{db_run, db_write};

#[derive(QueryableByName)]
struct EventId {
    #[diesel(sql_type = Text)]
    id: String,
}

/// An SQL string literal of one of the rule's constants (plain words, no quotes).
fn lit(s: &str) -> String {
    debug_assert!(!s.contains('\''));
    format!("'{s}'")
}

/// [`rules::record_may_go`] as an SQL condition on `payment_records r`.
fn record_may_go_sql() -> String {
    let failed = lit(&format!("{}%", rules::FAILED_CALL_PREFIX));
    let rejected = lit(&format!("{}%", rules::REJECTED_PREFIX));
    let unchanged = rules::QUERY_CHANGED_NOTHING.map(lit).join(", ");
    let kept = rules::KEPT_STATUSES.map(|s| lit(s.as_str())).join(", ");
    format!(
        "((r.kind = {query} AND (r.decision LIKE {failed} OR r.decision IN ({unchanged}))) \
         OR (r.kind = {refund_query} AND r.decision LIKE {failed}) \
         OR (NOT r.verified AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.order_no = r.order_no)) \
         OR (NOT (r.verified AND r.decision LIKE {rejected}) AND EXISTS (SELECT 1 FROM orders o \
             WHERE o.order_no = r.order_no AND o.status NOT IN ({kept}) AND NOT o.needs_review)))",
        query = lit(rules::QUERY_KIND),
        refund_query = lit(rules::REFUND_QUERY_KIND),
    )
}

/// The ids of the payment records created before `before`: (lowest, highest).
pub async fn old_record_ids(db: &Db, before: NaiveDateTime) -> DbResult<Option<(i64, i64)>> {
    let (low, high): (Option<i64>, Option<i64>) = db_run!(db, |conn| {
        let old = || payment_records::table.filter(payment_records::created_at.lt(before));
        let low = old()
            .select(diesel::dsl::min(payment_records::id))
            .first(conn)
            .await?;
        let high = old()
            .select(diesel::dsl::max(payment_records::id))
            .first(conn)
            .await?;
        Ok::<_, DbError>((low, high))
    })?;
    Ok(low.zip(high))
}

/// Delete the payment records with `from <= id < to` created before `before` that the
/// retention rule lets go (one statement over at most `to - from` rows).
pub async fn purge_payment_records(
    db: &Db,
    before: NaiveDateTime,
    from: i64,
    to: i64,
) -> DbResult<usize> {
    let p = |i: u8| match db.backend() {
        super::Backend::Postgres => format!("${i}"),
        super::Backend::Sqlite => format!("?{i}"),
    };
    let sql = format!(
        "DELETE FROM payment_records WHERE id IN (SELECT r.id FROM payment_records r \
         WHERE r.id >= {from} AND r.id < {to} AND r.created_at < {before} AND {rule})",
        before = p(1),
        from = p(2),
        to = p(3),
        rule = record_may_go_sql(),
    );
    db_write!(db, |conn| {
        Ok::<_, DbError>(
            diesel::sql_query(sql.as_str())
                .bind::<Timestamp, _>(before)
                .bind::<BigInt, _>(from)
                .bind::<BigInt, _>(to)
                .execute(conn)
                .await?,
        )
    })
}

/// Delete up to `limit` events created before `before` whose every delivery arrived,
/// with those deliveries and their attempts, in one transaction. Returns the events
/// deleted. An event that got a delivery to make meanwhile (a resend) stays.
pub async fn purge_delivered_events(db: &Db, before: NaiveDateTime, limit: i64) -> DbResult<usize> {
    let p = |i: u8| match db.backend() {
        super::Backend::Postgres => format!("${i}"),
        super::Backend::Sqlite => format!("?{i}"),
    };
    let pick = format!(
        "SELECT e.id FROM outbox_events e WHERE e.created_at < {before} AND NOT EXISTS \
         (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.id AND d.status <> 'delivered') \
         ORDER BY e.created_at LIMIT {limit}",
        before = p(1),
        limit = p(2),
    );
    db_write!(db, |conn| {
        conn.transaction::<usize, DbError, _>(async |conn| {
            let ids: Vec<String> = diesel::sql_query(pick.as_str())
                .bind::<Timestamp, _>(before)
                .bind::<BigInt, _>(limit)
                .load::<EventId>(conn)
                .await?
                .into_iter()
                .map(|e| e.id)
                .collect();
            if ids.is_empty() {
                return Ok(0);
            }
            let delivered = || {
                webhook_deliveries::table
                    .filter(webhook_deliveries::event_id.eq_any(&ids))
                    .filter(webhook_deliveries::status.eq("delivered"))
            };
            diesel::delete(webhook_attempts::table.filter(
                webhook_attempts::delivery_id.eq_any(delivered().select(webhook_deliveries::id)),
            ))
            .execute(conn)
            .await?;
            diesel::delete(delivered()).execute(conn).await?;
            let left = webhook_deliveries::table
                .filter(webhook_deliveries::event_id.eq(outbox_events::id))
                .select(webhook_deliveries::id);
            Ok(diesel::delete(
                outbox_events::table
                    .filter(outbox_events::id.eq_any(&ids))
                    .filter(diesel::dsl::not(diesel::dsl::exists(left))),
            )
            .execute(conn)
            .await?)
        })
        .await
    })
}

/// Delete up to `limit` `Idempotency-Key` answers that expired before `now`.
pub async fn purge_idempotency_keys(db: &Db, now: NaiveDateTime, limit: i64) -> DbResult<usize> {
    let sql = match db.backend() {
        super::Backend::Postgres => {
            "DELETE FROM idempotency_keys WHERE (user_id, route, idem_key) IN \
             (SELECT user_id, route, idem_key FROM idempotency_keys WHERE expires_at <= $1 \
              ORDER BY expires_at LIMIT $2)"
        }
        super::Backend::Sqlite => {
            "DELETE FROM idempotency_keys WHERE rowid IN (SELECT rowid FROM idempotency_keys \
             WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ?2)"
        }
    };
    db_write!(db, |conn| {
        Ok::<_, DbError>(
            diesel::sql_query(sql)
                .bind::<Timestamp, _>(now)
                .bind::<BigInt, _>(limit)
                .execute(conn)
                .await?,
        )
    })
}
