//! Stored WeChat Pay complaints. The service decides what a row says (from a verified API
//! answer); this module writes it idempotently: the first write of a complaint inserts it
//! and its `complaint.created` event in one transaction, every later write updates it.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};

use super::events::PendingEvent;
use super::schema::complaints;
use super::{Db, DbError, DbResult};
use crate::{db_run, db_write, write_event};

#[derive(Clone, Debug, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = complaints)]
pub struct ComplaintRow {
    pub complaint_id: String,
    pub state: String,
    pub problem_type: Option<String>,
    pub problem_description: String,
    pub complaint_detail: String,
    pub complaint_time: NaiveDateTime,
    pub amount_fen: Option<i64>,
    pub out_trade_no: Option<String>,
    pub transaction_id: Option<String>,
    pub order_no: Option<String>,
    pub user_complaint_times: i64,
    pub incoming_user_response: bool,
    pub response_deadline: Option<NaiveDateTime>,
    pub handled_at: Option<NaiveDateTime>,
    pub last_synced_at: NaiveDateTime,
    pub raw_detail: String,
    pub history_json: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// A complaint as just read from WeChat.
#[derive(Clone, Debug, Insertable, AsChangeset)]
#[diesel(table_name = complaints, treat_none_as_null = true)]
pub struct ComplaintWrite {
    pub complaint_id: String,
    pub state: String,
    pub problem_type: Option<String>,
    pub problem_description: String,
    pub complaint_detail: String,
    pub complaint_time: NaiveDateTime,
    pub amount_fen: Option<i64>,
    pub out_trade_no: Option<String>,
    pub transaction_id: Option<String>,
    pub order_no: Option<String>,
    pub user_complaint_times: i64,
    pub incoming_user_response: bool,
    pub response_deadline: Option<NaiveDateTime>,
    pub handled_at: Option<NaiveDateTime>,
    pub last_synced_at: NaiveDateTime,
    pub raw_detail: String,
    pub history_json: String,
    pub updated_at: NaiveDateTime,
}

/// Insert or update `row`. `created` is written with the row only when this call inserted
/// it (so a complaint's creation event is written once, whatever the number of
/// notifications and syncs, on one database or several replicas); `handled_at` keeps the
/// first time it was seen handled. Returns whether the row was inserted.
pub async fn upsert(db: &Db, row: &ComplaintWrite, created: &PendingEvent) -> DbResult<bool> {
    db_write!(db, |conn| {
        conn.transaction::<bool, DbError, _>(async |conn| {
            let inserted = diesel::insert_into(complaints::table)
                .values((row, complaints::created_at.eq(row.updated_at)))
                .on_conflict_do_nothing()
                .execute(conn)
                .await?;
            if inserted == 1 {
                write_event!(conn, created);
                return Ok(true);
            }
            let kept_handled: Option<NaiveDateTime> = complaints::table
                .find(&row.complaint_id)
                .select(complaints::handled_at)
                .first(conn)
                .await?;
            let mut update = row.clone();
            if update.handled_at.is_some() && kept_handled.is_some() {
                update.handled_at = kept_handled;
            }
            diesel::update(complaints::table.find(&row.complaint_id))
                .set(&update)
                .execute(conn)
                .await?;
            Ok(false)
        })
        .await
    })
}

pub async fn find(db: &Db, complaint_id: &str) -> DbResult<Option<ComplaintRow>> {
    db_run!(db, |conn| {
        Ok::<_, DbError>(
            complaints::table
                .find(complaint_id)
                .select(ComplaintRow::as_select())
                .first(conn)
                .await
                .optional()?,
        )
    })
}

/// A page of complaints (newest first), optionally in one state, and the total.
pub async fn list(
    db: &Db,
    state: Option<&str>,
    limit: i64,
    offset: i64,
) -> DbResult<(Vec<ComplaintRow>, i64)> {
    let rows = db_run!(db, |conn| {
        let mut q = complaints::table.into_boxed();
        if let Some(s) = state {
            q = q.filter(complaints::state.eq(s.to_string()));
        }
        Ok::<_, DbError>(
            q.order((
                complaints::complaint_time.desc(),
                complaints::complaint_id.desc(),
            ))
            .limit(limit)
            .offset(offset)
            .select(ComplaintRow::as_select())
            .load(conn)
            .await?,
        )
    })?;
    let total = db_run!(db, |conn| {
        let mut q = complaints::table.into_boxed();
        if let Some(s) = state {
            q = q.filter(complaints::state.eq(s.to_string()));
        }
        Ok::<_, DbError>(q.count().get_result::<i64>(conn).await?)
    })?;
    Ok((rows, total))
}
