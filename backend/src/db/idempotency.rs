//! Stored responses for `Idempotency-Key`.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::idempotency_keys;
use super::{Db, DbResult};
use crate::db_write;

#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = idempotency_keys)]
pub struct KeyRow {
    pub user_id: String,
    pub route: String,
    pub idem_key: String,
    pub request_hash: String,
    /// `None` while the first request is still running.
    pub status_code: Option<i32>,
    pub response_body: Option<String>,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

/// Try to take the key. `Ok(None)` when this request owns it now; otherwise the row
/// that holds it (an expired row is removed and the key taken afresh).
pub async fn begin(db: &Db, row: &KeyRow) -> DbResult<Option<KeyRow>> {
    for _ in 0..2 {
        let inserted = db_write!(db, |conn| {
            match diesel::insert_into(idempotency_keys::table)
                .values(row)
                .execute(conn)
                .await
            {
                Ok(_) => Ok::<_, super::DbError>(true),
                Err(diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::UniqueViolation,
                    _,
                )) => Ok(false),
                Err(e) => Err(e.into()),
            }
        })?;
        if inserted {
            return Ok(None);
        }
        let existing = db_write!(db, |conn| {
            Ok::<_, super::DbError>(
                idempotency_keys::table
                    .find((&row.user_id, &row.route, &row.idem_key))
                    .select(KeyRow::as_select())
                    .first(conn)
                    .await
                    .optional()?,
            )
        })?;
        match existing {
            Some(e) if e.expires_at > row.created_at => return Ok(Some(e)),
            Some(_) => {
                // Expired: forget it and take the key again.
                db_write!(db, |conn| {
                    diesel::delete(
                        idempotency_keys::table
                            .filter(idempotency_keys::user_id.eq(&row.user_id))
                            .filter(idempotency_keys::route.eq(&row.route))
                            .filter(idempotency_keys::idem_key.eq(&row.idem_key))
                            .filter(idempotency_keys::expires_at.le(row.created_at)),
                    )
                    .execute(conn)
                    .await?;
                    Ok::<_, super::DbError>(())
                })?;
            }
            None => {}
        }
    }
    // Lost twice to concurrent requests with the same key: report it as in progress.
    Ok(Some(KeyRow {
        status_code: None,
        response_body: None,
        ..row.clone()
    }))
}

/// Store the response of the request that owns the key.
pub async fn finish(db: &Db, row: &KeyRow, status: i32, body: &str) -> DbResult<()> {
    db_write!(db, |conn| {
        diesel::update(
            idempotency_keys::table
                .filter(idempotency_keys::user_id.eq(&row.user_id))
                .filter(idempotency_keys::route.eq(&row.route))
                .filter(idempotency_keys::idem_key.eq(&row.idem_key)),
        )
        .set((
            idempotency_keys::status_code.eq(status),
            idempotency_keys::response_body.eq(body),
        ))
        .execute(conn)
        .await?;
        Ok(())
    })
}

/// Release the key (the request failed in a way worth retrying).
pub async fn abandon(db: &Db, row: &KeyRow) -> DbResult<()> {
    db_write!(db, |conn| {
        diesel::delete(
            idempotency_keys::table
                .filter(idempotency_keys::user_id.eq(&row.user_id))
                .filter(idempotency_keys::route.eq(&row.route))
                .filter(idempotency_keys::idem_key.eq(&row.idem_key))
                .filter(idempotency_keys::status_code.is_null()),
        )
        .execute(conn)
        .await?;
        Ok(())
    })
}
