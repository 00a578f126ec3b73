//! The balance ledger: one append-only row per change of an account's points or
//! membership, written in the transaction that makes the change.
//!
//! [`apply_balance_op!`](crate::apply_balance_op) is the only writer of `points_balance`
//! and membership columns: it takes the account's row lock (write first), reads the
//! balances, lets [`domain::fulfilment::decide`](crate::domain::fulfilment::decide) choose
//! the change, and writes the account and its entry.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamp};
use diesel_async::RunQueryDsl;

use super::schema::{balance_entries, users};
use super::{Db, DbResult};
use crate::db_run;
use crate::domain::fulfilment::{self, Account, Entry, Rate, Reason};

#[derive(Clone, Debug, Insertable)]
#[diesel(table_name = balance_entries)]
pub struct NewBalanceEntry {
    pub user_id: String,
    pub delta_points: i64,
    pub points_after: i64,
    pub delta_membership_secs: i64,
    pub tier_before: Option<String>,
    pub tier_after: Option<String>,
    pub expires_before: Option<NaiveDateTime>,
    pub expires_after: Option<NaiveDateTime>,
    pub order_no: Option<String>,
    pub out_refund_no: Option<String>,
    pub reason: String,
    pub created_at: NaiveDateTime,
}

impl NewBalanceEntry {
    pub fn from_entry(
        user_id: &str,
        e: &Entry,
        order_no: Option<&str>,
        out_refund_no: Option<&str>,
        now: NaiveDateTime,
    ) -> Self {
        NewBalanceEntry {
            user_id: user_id.to_string(),
            delta_points: e.delta_points,
            points_after: e.points_after,
            delta_membership_secs: e.delta_membership_secs,
            tier_before: e.tier_before.clone(),
            tier_after: e.tier_after.clone(),
            expires_before: e.expires_before,
            expires_after: e.expires_after,
            order_no: order_no.map(String::from),
            out_refund_no: out_refund_no.map(String::from),
            reason: e.reason.as_str().to_string(),
            created_at: now,
        }
    }
}

#[derive(Clone, Debug, Queryable, Selectable, QueryableByName)]
#[diesel(table_name = balance_entries)]
pub struct BalanceEntryRow {
    pub id: i64,
    pub user_id: String,
    pub delta_points: i64,
    pub points_after: i64,
    pub delta_membership_secs: i64,
    pub tier_before: Option<String>,
    pub tier_after: Option<String>,
    pub expires_before: Option<NaiveDateTime>,
    pub expires_after: Option<NaiveDateTime>,
    pub order_no: Option<String>,
    pub out_refund_no: Option<String>,
    pub reason: String,
    pub created_at: NaiveDateTime,
}

impl BalanceEntryRow {
    /// The entry as the domain sees it; an unknown reason is an error, never guessed.
    pub fn to_entry(&self) -> Result<Entry, String> {
        Ok(Entry {
            delta_points: self.delta_points,
            points_after: self.points_after,
            delta_membership_secs: self.delta_membership_secs,
            tier_before: self.tier_before.clone(),
            tier_after: self.tier_after.clone(),
            expires_before: self.expires_before,
            expires_after: self.expires_after,
            reason: Reason::parse(&self.reason)
                .ok_or_else(|| format!("unknown ledger reason {:?}", self.reason))?,
        })
    }
}

/// The balance columns of `users`, as read under the row lock.
pub type AccountColumns = (
    i64,
    Option<String>,
    Option<i32>,
    Option<i64>,
    Option<i32>,
    Option<NaiveDateTime>,
);

pub fn account_of(cols: AccountColumns) -> Account {
    let (points, tier, rank, price, days, expires_at) = cols;
    let rate = match (rank, price, days) {
        (rank, Some(price_fen), Some(days)) => Some(Rate {
            rank: rank.unwrap_or(0),
            price_fen,
            days: i64::from(days),
        }),
        _ => None,
    };
    Account {
        points,
        tier,
        rate,
        expires_at,
    }
}

/// Inside a transaction: lock the account, decide `$op` over its balances, write the
/// new balances and the ledger entry. Evaluates to the [`Change`](fulfilment::Change).
#[macro_export]
macro_rules! apply_balance_op {
    ($conn:ident, $user_id:expr, $op:expr, $now:expr, $order_no:expr, $refund_no:expr) => {{
        use $crate::db::schema::{balance_entries as be, users as u};
        let user_id: &str = $user_id;
        let now: chrono::NaiveDateTime = $now;
        // Write first: the row lock (PostgreSQL) or the write lock (SQLite) is held
        // before the balances are read, so no concurrent change is overwritten.
        diesel::update(u::table.find(user_id))
            .set(u::updated_at.eq(now))
            .execute($conn)
            .await?;
        let cols: $crate::db::ledger::AccountColumns = u::table
            .find(user_id)
            .select((
                u::points_balance,
                u::membership_tier,
                u::membership_rank,
                u::membership_price_fen,
                u::membership_period_days,
                u::membership_expires_at,
            ))
            .first($conn)
            .await?;
        let account = $crate::db::ledger::account_of(cols);
        let change = $crate::domain::fulfilment::decide($op, &account, now);
        if change.changes_balances() {
            let rate = change.after.rate;
            diesel::update(u::table.find(user_id))
                .set((
                    // Relative: the entry's delta is exactly what the balance moves by.
                    u::points_balance.eq(u::points_balance + change.entry.delta_points),
                    u::membership_tier.eq(&change.after.tier),
                    u::membership_rank.eq(rate.map(|r| r.rank)),
                    u::membership_price_fen.eq(rate.map(|r| r.price_fen)),
                    u::membership_period_days
                        .eq(rate.map(|r| i32::try_from(r.days).unwrap_or(i32::MAX))),
                    u::membership_expires_at.eq(change.after.expires_at),
                ))
                .execute($conn)
                .await?;
            let row = $crate::db::ledger::NewBalanceEntry::from_entry(
                user_id,
                &change.entry,
                $order_no,
                $refund_no,
                now,
            );
            diesel::insert_into(be::table)
                .values(&row)
                .execute($conn)
                .await?;
        }
        change
    }};
}

/// Every ledger entry of an order (its purchase and its claw-backs), oldest first.
pub async fn for_order(db: &Db, order_no: &str) -> DbResult<Vec<BalanceEntryRow>> {
    db_run!(db, |conn| {
        Ok(balance_entries::table
            .filter(balance_entries::order_no.eq(order_no))
            .order(balance_entries::id.asc())
            .select(BalanceEntryRow::as_select())
            .load(conn)
            .await?)
    })
}

/// An account's entries, oldest first.
pub async fn for_user(db: &Db, user_id: &str) -> DbResult<Vec<BalanceEntryRow>> {
    db_run!(db, |conn| {
        Ok(balance_entries::table
            .filter(balance_entries::user_id.eq(user_id))
            .order(balance_entries::id.asc())
            .select(BalanceEntryRow::as_select())
            .load(conn)
            .await?)
    })
}

#[derive(QueryableByName)]
struct PointsSum {
    #[diesel(sql_type = Text)]
    user_id: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    total: Option<i64>,
}

#[derive(QueryableByName)]
struct LastMembership {
    #[diesel(sql_type = Text)]
    user_id: String,
    #[diesel(sql_type = Nullable<Text>)]
    tier_after: Option<String>,
    #[diesel(sql_type = Nullable<Timestamp>)]
    expires_after: Option<NaiveDateTime>,
}

/// An account whose balances differ from what its ledger says.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LedgerMismatch {
    pub user_id: String,
    pub username: String,
    pub points_balance: i64,
    pub ledger_points: i64,
    pub membership_tier: Option<String>,
    pub ledger_tier: Option<String>,
    pub membership_expires_at: Option<NaiveDateTime>,
    pub ledger_expires_at: Option<NaiveDateTime>,
}

/// Compare every account with its ledger: (accounts checked, mismatches).
pub async fn verify(db: &Db) -> DbResult<(usize, Vec<LedgerMismatch>)> {
    type UserCols = (String, String, i64, Option<String>, Option<NaiveDateTime>);
    let (accounts, sums, lasts): (Vec<UserCols>, Vec<PointsSum>, Vec<LastMembership>) = db_run!(
        db,
        |conn| {
            let accounts = users::table
                .select((
                    users::id,
                    users::username,
                    users::points_balance,
                    users::membership_tier,
                    users::membership_expires_at,
                ))
                .load(conn)
                .await?;
            let sums = diesel::sql_query(
                "SELECT user_id, CAST(SUM(delta_points) AS BIGINT) AS total FROM balance_entries GROUP BY user_id",
            )
            .load(conn)
            .await?;
            let lasts = diesel::sql_query(
                "SELECT user_id, tier_after, expires_after FROM balance_entries \
                 WHERE id IN (SELECT MAX(id) FROM balance_entries GROUP BY user_id)",
            )
            .load(conn)
            .await?;
            Ok::<_, super::DbError>((accounts, sums, lasts))
        }
    )?;
    let sums: std::collections::HashMap<String, i64> = sums
        .into_iter()
        .map(|s| (s.user_id, s.total.unwrap_or(0)))
        .collect();
    let lasts: std::collections::HashMap<String, (Option<String>, Option<NaiveDateTime>)> = lasts
        .into_iter()
        .map(|l| (l.user_id, (l.tier_after, l.expires_after)))
        .collect();
    let checked = accounts.len();
    let mut out = Vec::new();
    for (user_id, username, points, tier, expires) in accounts {
        let ledger_points = sums.get(&user_id).copied().unwrap_or(0);
        let (ledger_tier, ledger_expires) = lasts.get(&user_id).cloned().unwrap_or((None, None));
        let totals = fulfilment::LedgerTotals {
            points: ledger_points,
            tier: ledger_tier,
            expires_at: ledger_expires,
        };
        if totals.points != points || totals.tier != tier || totals.expires_at != expires {
            out.push(LedgerMismatch {
                user_id,
                username,
                points_balance: points,
                ledger_points: totals.points,
                membership_tier: tier,
                ledger_tier: totals.tier,
                membership_expires_at: expires,
                ledger_expires_at: totals.expires_at,
            });
        }
    }
    Ok((checked, out))
}

/// An account's balances now (outside any lock: for previews and prices only).
pub async fn read_account(db: &Db, user_id: &str) -> DbResult<Option<Account>> {
    let cols: Option<AccountColumns> = db_run!(db, |conn| {
        Ok::<_, super::DbError>(
            users::table
                .find(user_id)
                .select((
                    users::points_balance,
                    users::membership_tier,
                    users::membership_rank,
                    users::membership_price_fen,
                    users::membership_period_days,
                    users::membership_expires_at,
                ))
                .first(conn)
                .await
                .optional()?,
        )
    })?;
    Ok(cols.map(account_of))
}
