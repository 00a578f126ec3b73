//! Aggregates read when `/metrics` is scraped: a handful of grouped counts, no row scans
//! beyond what the status indexes cover.

use chrono::NaiveDateTime;
use diesel::dsl::{count_star, min};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::{orders, refunds, webhook_deliveries};
use super::{Db, DbError, DbResult};
use crate::db_run;

/// What the database says right now.
#[derive(Clone, Debug, Default)]
pub struct Gauges {
    /// Orders per status.
    pub orders: Vec<(String, i64)>,
    /// Refunds per status.
    pub refunds: Vec<(String, i64)>,
    pub webhooks_pending: i64,
    /// Seconds the oldest due pending delivery has waited past its due time (0: none).
    pub webhook_lag_secs: f64,
    /// Expired pending orders whose close keeps failing (the admin stats' `stuck`).
    pub stuck: i64,
}

pub async fn read(db: &Db) -> DbResult<Gauges> {
    let now = db.now();
    let (orders, refunds, (pending, oldest)) = db_run!(db, |conn| {
        let orders: Vec<(String, i64)> = orders::table
            .group_by(orders::status)
            .select((orders::status, count_star()))
            .order(orders::status)
            .load(conn)
            .await?;
        let refunds: Vec<(String, i64)> = refunds::table
            .group_by(refunds::status)
            .select((refunds::status, count_star()))
            .order(refunds::status)
            .load(conn)
            .await?;
        let pending: (i64, Option<NaiveDateTime>) = webhook_deliveries::table
            .filter(webhook_deliveries::status.eq("pending"))
            .select((count_star(), min(webhook_deliveries::next_attempt_at)))
            .get_result(conn)
            .await?;
        Ok::<_, DbError>((orders, refunds, pending))
    })?;
    let (stuck, _, _) = super::orders::stuck_expired(db).await?;
    let webhook_lag_secs = oldest
        .map(|due| (now - due).num_milliseconds().max(0) as f64 / 1000.0)
        .unwrap_or(0.0);
    Ok(Gauges {
        orders,
        refunds,
        webhooks_pending: pending,
        webhook_lag_secs,
        stuck,
    })
}
