//! Purges of rows past their retention window, in small batches. What may be purged is
//! decided in [`crate::domain::retention`]; these functions delete what they are told.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text, Timestamp};
use diesel_async::{AsyncConnection, RunQueryDsl};

use super::schema::{outbox_events, webhook_attempts, webhook_deliveries};
use super::{Db, DbError, DbResult};
use crate::db_write;

#[derive(QueryableByName)]
struct EventId {
    #[diesel(sql_type = Text)]
    id: String,
}

/// `'a', 'b'` for an SQL `IN` list of fixed identifiers (the callers' constants).
fn sql_list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    items
        .into_iter()
        .map(|s| {
            debug_assert!(s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
            format!("'{s}'")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// What may go of the payment records: the rule's constants.
pub struct RecordRule<'a> {
    /// Kinds purged whatever their order became, unless their decision is evidence.
    pub query_kinds: &'a [&'a str],
    pub evidence_decisions: &'a [&'a str],
    /// Orders in these statuses (or held for review) keep their other records.
    pub kept_statuses: &'a [&'a str],
}

/// Delete up to `limit` payment records created before `before` that `rule` lets go.
pub async fn purge_payment_records(
    db: &Db,
    before: NaiveDateTime,
    rule: &RecordRule<'_>,
    limit: i64,
) -> DbResult<usize> {
    let p = |i: u8| match db.backend() {
        super::Backend::Postgres => format!("${i}"),
        super::Backend::Sqlite => format!("?{i}"),
    };
    let sql = format!(
        "DELETE FROM payment_records WHERE id IN (SELECT r.id FROM payment_records r \
         WHERE r.created_at < {before} AND (r.order_no IS NULL \
         OR (r.kind IN ({queries}) AND r.decision NOT IN ({evidence})) \
         OR NOT EXISTS (SELECT 1 FROM orders o WHERE o.order_no = r.order_no \
                        AND (o.status IN ({kept}) OR o.needs_review))) \
         ORDER BY r.created_at LIMIT {limit})",
        before = p(1),
        limit = p(2),
        queries = sql_list(rule.query_kinds.iter().copied()),
        evidence = sql_list(rule.evidence_decisions.iter().copied()),
        kept = sql_list(rule.kept_statuses.iter().copied()),
    );
    db_write!(db, |conn| {
        Ok::<_, DbError>(
            diesel::sql_query(sql.as_str())
                .bind::<Timestamp, _>(before)
                .bind::<BigInt, _>(limit)
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
