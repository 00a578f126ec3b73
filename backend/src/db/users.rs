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

/// The token version and role of an account, and whether it is disabled (`None` when
/// it does not exist).
pub async fn token_state(db: &Db, id: &str) -> DbResult<Option<(i64, String, bool)>> {
    db_run!(db, |conn| {
        Ok(users::table
            .find(id)
            .select((users::token_version, users::role, users::disabled_at))
            .first::<(i64, String, Option<NaiveDateTime>)>(conn)
            .await
            .optional()?
            .map(|(v, role, disabled)| (v, role, disabled.is_some())))
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

diesel::define_sql_function! {
    /// SQL `lower(text)` (ASCII on SQLite: usernames and emails are ASCII here).
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

/// An account as an operator sees it: the row and when it was disabled.
pub type AccountRow = (UserRow, Option<NaiveDateTime>);

/// What to search for.
#[derive(Clone, Debug, Default)]
pub struct AccountSearch {
    /// Part of a username or email, or an exact account id or external id.
    pub q: Option<String>,
    pub role: Option<String>,
    pub disabled: Option<bool>,
}

/// A page of accounts, newest first, and how many match.
pub async fn search(
    db: &Db,
    s: &AccountSearch,
    limit: i64,
    offset: i64,
) -> DbResult<(Vec<AccountRow>, i64)> {
    use super::schema::app_accounts;
    macro_rules! filtered {
        () => {{
            let mut q = users::table.into_boxed();
            if let Some(text) = &s.q {
                let pattern = format!("%{}%", like_escape(&text.to_lowercase()));
                let linked = app_accounts::table
                    .filter(app_accounts::external_id.eq(text.clone()))
                    .select(app_accounts::user_id);
                q = q.filter(
                    users::id
                        .eq(text.clone())
                        .or(lower(users::username).like(pattern.clone()).escape('\\'))
                        .or(lower(users::email).like(pattern).escape('\\'))
                        .or(users::id.eq_any(linked)),
                );
            }
            if let Some(role) = &s.role {
                q = q.filter(users::role.eq(role.clone()));
            }
            match s.disabled {
                Some(true) => q = q.filter(users::disabled_at.is_not_null()),
                Some(false) => q = q.filter(users::disabled_at.is_null()),
                None => {}
            }
            q
        }};
    }
    db_run!(db, |conn| {
        let total: i64 = filtered!().count().get_result(conn).await?;
        let rows = filtered!()
            .order((users::created_at.desc(), users::id.asc()))
            .limit(limit)
            .offset(offset)
            .select((UserRow::as_select(), users::disabled_at))
            .load(conn)
            .await?;
        Ok((rows, total))
    })
}

/// `%`, `_` and `\` taken literally in a LIKE pattern (with `ESCAPE '\'`).
fn like_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// One account with its disabled time.
pub async fn find_account(db: &Db, id: &str) -> DbResult<Option<AccountRow>> {
    db_run!(db, |conn| {
        Ok(users::table
            .find(id)
            .select((UserRow::as_select(), users::disabled_at))
            .first(conn)
            .await
            .optional()?)
    })
}

/// The apps an account is a customer of: `(app_id, external_id)`.
pub async fn links(db: &Db, id: &str) -> DbResult<Vec<(String, String)>> {
    use super::schema::app_accounts;
    db_run!(db, |conn| {
        Ok(app_accounts::table
            .filter(app_accounts::user_id.eq(id))
            .order(app_accounts::created_at.asc())
            .select((app_accounts::app_id, app_accounts::external_id))
            .load(conn)
            .await?)
    })
}

/// What an account change did.
// One per admin action, returned once: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum AccountWrite {
    NotFound,
    /// Refused by the rule (nothing written).
    Refused(crate::domain::accounts::AccountRefusal),
    /// Nothing to change: the account already was so (nothing written).
    Unchanged(AccountRow),
    /// Written: the account before and after, and its new token version.
    Changed {
        before: AccountRow,
        after: AccountRow,
    },
    /// Another change of the same account won the race (nothing written).
    Conflict,
}

/// Apply an operator's change to an account in one transaction with its audit entry.
/// A change that can remove an admin first locks every active admin's row (a write that
/// changes nothing), so two admins demoting each other cannot both succeed; the
/// account's own write is a compare-and-set on its token version, which moves with
/// every change (tokens issued before it are refused).
pub async fn apply_change(
    db: &Db,
    id: &str,
    change: crate::domain::accounts::AccountChange,
    audit: impl Fn(&AccountRow, &AccountRow) -> super::audit::NewAudit + Sync,
) -> DbResult<AccountWrite> {
    use crate::domain::accounts::{self as rules, AccountState};
    use diesel_async::AsyncConnection;
    let now = super::now();
    let audit = &audit;
    db_write!(db, |conn| {
        conn.transaction::<AccountWrite, super::DbError, _>(async |conn| {
            let active_admins: Vec<String> = if change.removes_admin() {
                diesel::update(
                    users::table
                        .filter(users::role.eq("admin"))
                        .filter(users::disabled_at.is_null()),
                )
                .set(users::updated_at.eq(users::updated_at))
                .returning(users::id)
                .get_results(conn)
                .await?
            } else {
                Vec::new()
            };
            let Some(before) = users::table
                .find(id)
                .select((UserRow::as_select(), users::disabled_at))
                .first::<AccountRow>(conn)
                .await
                .optional()?
            else {
                return Ok(AccountWrite::NotFound);
            };
            let state = AccountState {
                admin: before.0.role == "admin",
                disabled: before.1.is_some(),
            };
            let after = match rules::decide(change, id, &state, &active_admins) {
                Err(why) => return Ok(AccountWrite::Refused(why)),
                Ok(None) => return Ok(AccountWrite::Unchanged(before)),
                Ok(Some(after)) => after,
            };
            let role = if after.admin { "admin" } else { "user" };
            let disabled_at = if after.disabled {
                Some(before.1.unwrap_or(now))
            } else {
                None
            };
            let n = diesel::update(
                users::table
                    .filter(users::id.eq(id))
                    .filter(users::token_version.eq(before.0.token_version)),
            )
            .set((
                users::role.eq(role),
                users::disabled_at.eq(disabled_at),
                users::token_version.eq(users::token_version + 1),
                users::updated_at.eq(now),
            ))
            .execute(conn)
            .await?;
            if n != 1 {
                return Ok(AccountWrite::Conflict);
            }
            let mut row = before.0.clone();
            row.role = role.to_string();
            row.token_version += 1;
            row.updated_at = now;
            let after_row: AccountRow = (row, disabled_at);
            diesel::insert_into(super::schema::admin_audit::table)
                .values(audit(&before, &after_row))
                .execute(conn)
                .await?;
            Ok(AccountWrite::Changed {
                before,
                after: after_row,
            })
        })
        .await
    })
}

/// When the account was disabled (`None`: enabled or gone).
pub async fn disabled_at(db: &Db, id: &str) -> DbResult<Option<NaiveDateTime>> {
    db_run!(db, |conn| {
        Ok(users::table
            .find(id)
            .select(users::disabled_at)
            .first::<Option<NaiveDateTime>>(conn)
            .await
            .optional()?
            .flatten())
    })
}
