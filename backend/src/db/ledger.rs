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
    /// An operator's stated reason (manual adjustments only).
    pub note: Option<String>,
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
            note: None,
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
    pub note: Option<String>,
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
    ($conn:ident, $user_id:expr, $op:expr, $now:expr, $order_no:expr, $refund_no:expr) => {
        $crate::apply_balance_op!($conn, $user_id, $op, $now, $order_no, $refund_no, None)
    };
    ($conn:ident, $user_id:expr, $op:expr, $now:expr, $order_no:expr, $refund_no:expr, $note:expr) => {{
        use $crate::db::schema::{balance_entries as be, users as u};
        let user_id: &str = $user_id;
        let now: chrono::NaiveDateTime = $now;
        // Write first: the row lock (PostgreSQL) or the write lock (SQLite) is held
        // before the balances are read, so no concurrent change is overwritten.
        // (One statement: the write returns the balances it locked.)
        let cols: $crate::db::ledger::AccountColumns = diesel::update(u::table.find(user_id))
            .set(u::updated_at.eq(now))
            .returning((
                u::points_balance,
                u::membership_tier,
                u::membership_rank,
                u::membership_price_fen,
                u::membership_period_days,
                u::membership_expires_at,
            ))
            .get_result($conn)
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
            let mut row = $crate::db::ledger::NewBalanceEntry::from_entry(
                user_id,
                &change.entry,
                $order_no,
                $refund_no,
                now,
            );
            row.note = $note;
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

/// One account beside what its ledger says, read in one statement (one snapshot).
#[derive(QueryableByName)]
struct AccountVsLedger {
    #[diesel(sql_type = Text)]
    user_id: String,
    #[diesel(sql_type = Text)]
    username: String,
    #[diesel(sql_type = BigInt)]
    points_balance: i64,
    #[diesel(sql_type = Nullable<Text>)]
    membership_tier: Option<String>,
    #[diesel(sql_type = Nullable<Timestamp>)]
    membership_expires_at: Option<NaiveDateTime>,
    #[diesel(sql_type = Nullable<BigInt>)]
    ledger_points: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    ledger_tier: Option<String>,
    #[diesel(sql_type = Nullable<Timestamp>)]
    ledger_expires_at: Option<NaiveDateTime>,
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

/// Compare every account with its ledger: (accounts checked, mismatches). One statement,
/// so a payment committing meanwhile is seen on both sides or on neither.
pub async fn verify(db: &Db) -> DbResult<(usize, Vec<LedgerMismatch>)> {
    // Every account at once: may take long on a big database (no statement timeout).
    let db = &db.unhurried();
    let rows: Vec<AccountVsLedger> = db_run!(db, |conn| {
        Ok::<_, super::DbError>(
            diesel::sql_query(
                "SELECT u.id AS user_id, u.username, u.points_balance, u.membership_tier, \
                 u.membership_expires_at, CAST(s.total AS BIGINT) AS ledger_points, \
                 l.tier_after AS ledger_tier, l.expires_after AS ledger_expires_at \
                 FROM users u \
                 LEFT JOIN (SELECT user_id, SUM(delta_points) AS total FROM balance_entries \
                            GROUP BY user_id) s ON s.user_id = u.id \
                 LEFT JOIN balance_entries l ON l.id = \
                   (SELECT MAX(b.id) FROM balance_entries b WHERE b.user_id = u.id) \
                 ORDER BY u.username",
            )
            .load(conn)
            .await?,
        )
    })?;
    let checked = rows.len();
    let mut out = Vec::new();
    for r in rows {
        let totals = fulfilment::LedgerTotals {
            points: r.ledger_points.unwrap_or(0),
            tier: r.ledger_tier,
            expires_at: r.ledger_expires_at,
        };
        if totals.points != r.points_balance
            || totals.tier != r.membership_tier
            || totals.expires_at != r.membership_expires_at
        {
            out.push(LedgerMismatch {
                user_id: r.user_id,
                username: r.username,
                points_balance: r.points_balance,
                ledger_points: totals.points,
                membership_tier: r.membership_tier,
                ledger_tier: totals.tier,
                membership_expires_at: r.membership_expires_at,
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

/// What an operator's adjustment did.
// One per admin action, returned once: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum AdjustWrite {
    NotFound,
    Refused(crate::domain::fulfilment::AdjustRefusal),
    /// Written: the entry's id and the change.
    Done(i64, crate::domain::fulfilment::Change),
}

/// An operator's adjustment of an account: the balances, the ledger entry with the
/// operator's reason and the audit entry, in one transaction (decided over the locked
/// account like every balance change).
pub async fn adjust(
    db: &Db,
    user_id: &str,
    adjustment: &crate::domain::fulfilment::Adjustment,
    note: &str,
    audit: impl Fn(&crate::domain::fulfilment::Change) -> super::audit::NewAudit + Sync,
) -> DbResult<AdjustWrite> {
    use crate::domain::fulfilment::BalanceOp;
    use diesel_async::AsyncConnection;
    let now = super::now();
    let audit = &audit;
    crate::db_write!(db, |conn| {
        conn.transaction::<AdjustWrite, super::DbError, _>(async |conn| {
            let exists: i64 = users::table
                .filter(users::id.eq(user_id))
                .count()
                .get_result(conn)
                .await?;
            if exists == 0 {
                return Ok(AdjustWrite::NotFound);
            }
            let change = crate::apply_balance_op!(
                conn,
                user_id,
                &BalanceOp::Adjust(adjustment),
                now,
                None,
                None,
                Some(note.to_string())
            );
            if let Some(why) = change.refused.clone() {
                // Nothing was written but the lock's touch of `updated_at`.
                return Ok(AdjustWrite::Refused(why));
            }
            let id: i64 = balance_entries::table
                .filter(balance_entries::user_id.eq(user_id))
                .order(balance_entries::id.desc())
                .select(balance_entries::id)
                .first(conn)
                .await?;
            diesel::insert_into(super::schema::admin_audit::table)
                .values(audit(&change))
                .execute(conn)
                .await?;
            Ok(AdjustWrite::Done(id, change))
        })
        .await
    })
}

/// An account's latest entries, newest first.
pub async fn latest_for_user(db: &Db, user_id: &str, limit: i64) -> DbResult<Vec<BalanceEntryRow>> {
    db_run!(db, |conn| {
        Ok(balance_entries::table
            .filter(balance_entries::user_id.eq(user_id))
            .order(balance_entries::id.desc())
            .limit(limit)
            .select(BalanceEntryRow::as_select())
            .load(conn)
            .await?)
    })
}
