//! User rows.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::users;
use super::{Db, DbResult};
use crate::{db_run, db_write};

#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: String,
    pub username: String,
    pub email: String,
    pub password_hash: String,
    pub role: String,
    pub points_balance: i64,
    pub membership_tier: Option<String>,
    pub membership_expires_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// Tokens issued before the last bump of this number are refused.
    pub token_version: i64,
}

/// Insert a user; a taken username surfaces as a unique violation.
pub async fn insert(db: &Db, row: &UserRow) -> DbResult<()> {
    db_write!(db, |conn| {
        diesel::insert_into(users::table)
            .values(row)
            .execute(conn)
            .await?;
        Ok(())
    })
}

pub async fn find_by_username(db: &Db, username: &str) -> DbResult<Option<UserRow>> {
    db_run!(db, |conn| {
        Ok(users::table
            .filter(users::username.eq(username))
            .select(UserRow::as_select())
            .first(conn)
            .await
            .optional()?)
    })
}

pub async fn find_by_id(db: &Db, id: &str) -> DbResult<Option<UserRow>> {
    db_run!(db, |conn| {
        Ok(users::table
            .find(id)
            .select(UserRow::as_select())
            .first(conn)
            .await
            .optional()?)
    })
}

/// Set a user's role; returns whether a row changed. The token version moves with it,
/// so tokens carrying the old role stop working.
pub async fn set_role(db: &Db, username: &str, role: &str) -> DbResult<bool> {
    let now = super::now();
    db_write!(db, |conn| {
        let n = diesel::update(users::table.filter(users::username.eq(username)))
            .set((
                users::role.eq(role),
                users::token_version.eq(users::token_version + 1),
                users::updated_at.eq(now),
            ))
            .execute(conn)
            .await?;
        Ok(n == 1)
    })
}

/// The token version and role of an account (`None` when it does not exist).
pub async fn token_state(db: &Db, id: &str) -> DbResult<Option<(i64, String)>> {
    db_run!(db, |conn| {
        Ok(users::table
            .find(id)
            .select((users::token_version, users::role))
            .first(conn)
            .await
            .optional()?)
    })
}

/// Revoke every token of an account issued so far; returns the new version.
pub async fn bump_token_version(db: &Db, id: &str) -> DbResult<Option<i64>> {
    let now = super::now();
    db_write!(db, |conn| {
        Ok(diesel::update(users::table.find(id))
            .set((
                users::token_version.eq(users::token_version + 1),
                users::updated_at.eq(now),
            ))
            .returning(users::token_version)
            .get_result(conn)
            .await
            .optional()?)
    })
}
