//! Merchant apps, their customers' accounts, and checkouts (merchant orders before and
//! after a payment method is chosen). Executes writes; the rules are in `domain::apps`.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};

use super::orders::OrderRow;
use super::schema::{app_accounts, apps, checkouts, users};
use super::users::UserRow;
use super::{Db, DbError, DbResult};
use crate::{db_run, db_write};

#[derive(Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = apps)]
pub struct AppRow {
    pub id: String,
    pub name: String,
    pub key_mode: String,
    pub key_prefix: String,
    pub key_hash: String,
    pub webhook_url: Option<String>,
    pub webhook_secret: String,
    pub return_hosts: String,
    pub fulfilment: String,
    pub max_amount_fen: i64,
    pub epay_pid: Option<i64>,
    pub epay_key: Option<String>,
    pub epay_enabled: bool,
    pub jwt_issuer: Option<String>,
    pub jwt_audience: Option<String>,
    pub jwt_hs256_secret: Option<String>,
    pub jwt_public_keys: Option<String>,
    pub user_id: String,
    pub revoked_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// Secrets stay out of logs: Debug shows which are set, never their values.
impl std::fmt::Debug for AppRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppRow")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("key_mode", &self.key_mode)
            .field("key_prefix", &self.key_prefix)
            .field("webhook_url", &self.webhook_url)
            .field("webhook_secret", &"[redacted]")
            .field("return_hosts", &self.return_hosts)
            .field("fulfilment", &self.fulfilment)
            .field("max_amount_fen", &self.max_amount_fen)
            .field("epay_pid", &self.epay_pid)
            .field("epay_key", &self.epay_key.as_ref().map(|_| "[redacted]"))
            .field("epay_enabled", &self.epay_enabled)
            .field("jwt_issuer", &self.jwt_issuer)
            .field("jwt_audience", &self.jwt_audience)
            .field(
                "jwt_hs256_secret",
                &self.jwt_hs256_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("jwt_public_keys", &self.jwt_public_keys.is_some())
            .field("user_id", &self.user_id)
            .field("revoked_at", &self.revoked_at)
            .finish()
    }
}

#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = checkouts)]
pub struct CheckoutRow {
    pub order_no: String,
    pub app_id: String,
    pub out_order_no: String,
    pub request_hash: String,
    pub user_id: String,
    pub subject: String,
    pub amount_fen: i64,
    /// `custom` (an amount set by the app) or the product's kind.
    pub product_type: String,
    pub product_id: Option<i64>,
    pub unit_price_fen: i64,
    pub quantity: i64,
    /// The grants, frozen at creation (copied to the order's `snap_*` when one is made).
    pub snap_points: i64,
    pub snap_membership_days: i64,
    pub snap_tier: Option<String>,
    pub snap_tier_rank: Option<i32>,
    pub snap_tier_price_fen: Option<i64>,
    pub snap_tier_days: Option<i32>,
    pub customer_ref: Option<String>,
    pub metadata: Option<String>,
    pub payment_method: Option<String>,
    pub channel: Option<String>,
    pub return_url: Option<String>,
    pub notify_url: Option<String>,
    pub fulfilment: String,
    /// `open` | `chosen` | `cancelled`
    pub status: String,
    pub expire_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

pub const CHECKOUT_OPEN: &str = "open";
pub const CHECKOUT_CHOSEN: &str = "chosen";
pub const CHECKOUT_CANCELLED: &str = "cancelled";

/// Create an app and the account its customer-less orders belong to, in one transaction.
pub async fn insert(db: &Db, app: &AppRow, account: &UserRow) -> DbResult<()> {
    db_write!(db, |conn| {
        conn.transaction::<(), DbError, _>(async |conn| {
            diesel::insert_into(users::table)
                .values(account)
                .execute(conn)
                .await?;
            diesel::insert_into(apps::table)
                .values(app)
                .execute(conn)
                .await?;
            Ok(())
        })
        .await
    })
}

pub async fn find(db: &Db, id: &str) -> DbResult<Option<AppRow>> {
    db_run!(db, |conn| {
        Ok(apps::table
            .find(id)
            .select(AppRow::as_select())
            .first(conn)
            .await
            .optional()?)
    })
}

/// The app a key hash belongs to, revoked or not (the caller refuses revoked ones).
pub async fn find_by_key_hash(db: &Db, key_hash: &str) -> DbResult<Option<AppRow>> {
    db_run!(db, |conn| {
        Ok(apps::table
            .filter(apps::key_hash.eq(key_hash))
            .select(AppRow::as_select())
            .first(conn)
            .await
            .optional()?)
    })
}

pub async fn find_by_epay_pid(db: &Db, pid: i64) -> DbResult<Option<AppRow>> {
    db_run!(db, |conn| {
        Ok(apps::table
            .filter(apps::epay_pid.eq(pid))
            .select(AppRow::as_select())
            .first(conn)
            .await
            .optional()?)
    })
}

pub async fn find_by_issuer(db: &Db, issuer: &str) -> DbResult<Option<AppRow>> {
    db_run!(db, |conn| {
        Ok(apps::table
            .filter(apps::jwt_issuer.eq(issuer))
            .select(AppRow::as_select())
            .first(conn)
            .await
            .optional()?)
    })
}

pub async fn list(db: &Db) -> DbResult<Vec<AppRow>> {
    db_run!(db, |conn| {
        Ok(apps::table
            .order(apps::created_at.asc())
            .select(AppRow::as_select())
            .load(conn)
            .await?)
    })
}

/// Replace a live app's key (compare-and-set on the old hash); `false` when the app is
/// revoked, gone, or its key changed meanwhile.
pub async fn rotate_key(
    db: &Db,
    id: &str,
    old_hash: &str,
    new_prefix: &str,
    new_hash: &str,
) -> DbResult<bool> {
    let now = super::now();
    db_write!(db, |conn| {
        let n = diesel::update(
            apps::table
                .find(id)
                .filter(apps::key_hash.eq(old_hash))
                .filter(apps::revoked_at.is_null()),
        )
        .set((
            apps::key_prefix.eq(new_prefix),
            apps::key_hash.eq(new_hash),
            apps::updated_at.eq(now),
        ))
        .execute(conn)
        .await?;
        Ok(n == 1)
    })
}

/// Revoke an app's key at once; `false` when it was revoked already or does not exist.
pub async fn revoke(db: &Db, id: &str) -> DbResult<bool> {
    let now = super::now();
    db_write!(db, |conn| {
        let n = diesel::update(apps::table.find(id).filter(apps::revoked_at.is_null()))
            .set((apps::revoked_at.eq(Some(now)), apps::updated_at.eq(now)))
            .execute(conn)
            .await?;
        Ok(n == 1)
    })
}

/// Write an app's settings as given (the service validated them); `false` when gone.
pub async fn update(db: &Db, app: &AppRow) -> DbResult<bool> {
    let now = super::now();
    db_write!(db, |conn| {
        let n = diesel::update(apps::table.find(&app.id))
            .set((
                apps::name.eq(&app.name),
                apps::webhook_url.eq(&app.webhook_url),
                apps::webhook_secret.eq(&app.webhook_secret),
                apps::return_hosts.eq(&app.return_hosts),
                apps::fulfilment.eq(&app.fulfilment),
                apps::max_amount_fen.eq(app.max_amount_fen),
                apps::epay_pid.eq(app.epay_pid),
                apps::epay_key.eq(&app.epay_key),
                apps::epay_enabled.eq(app.epay_enabled),
                apps::jwt_issuer.eq(&app.jwt_issuer),
                apps::jwt_audience.eq(&app.jwt_audience),
                apps::jwt_hs256_secret.eq(&app.jwt_hs256_secret),
                apps::jwt_public_keys.eq(&app.jwt_public_keys),
                apps::updated_at.eq(now),
            ))
            .execute(conn)
            .await?;
        Ok(n == 1)
    })
}

/// [`update`] as a compare-and-set: only while the app is live and unchanged since it was
/// read (`seen_updated_at`); `false` when it was revoked, changed meanwhile, or is gone.
pub async fn update_unchanged(
    db: &Db,
    app: &AppRow,
    seen_updated_at: NaiveDateTime,
) -> DbResult<bool> {
    let now = super::now();
    db_write!(db, |conn| {
        let n = diesel::update(
            apps::table
                .find(&app.id)
                .filter(apps::updated_at.eq(seen_updated_at))
                .filter(apps::revoked_at.is_null()),
        )
        .set((
            apps::name.eq(&app.name),
            apps::webhook_url.eq(&app.webhook_url),
            apps::webhook_secret.eq(&app.webhook_secret),
            apps::return_hosts.eq(&app.return_hosts),
            apps::fulfilment.eq(&app.fulfilment),
            apps::max_amount_fen.eq(app.max_amount_fen),
            apps::epay_pid.eq(app.epay_pid),
            apps::epay_key.eq(&app.epay_key),
            apps::epay_enabled.eq(app.epay_enabled),
            apps::updated_at.eq(now),
        ))
        .execute(conn)
        .await?;
        Ok(n == 1)
    })
}

/// The account of an app's customer (`external_id`: a customer_ref or a JWT's `sub`),
/// made from `new_account` on first use. Two first uses at once make one account: the
/// loser's insert fails on the key and it reads the winner's.
pub async fn ensure_account(
    db: &Db,
    app_id: &str,
    external_id: &str,
    new_account: &UserRow,
) -> DbResult<String> {
    if let Some(id) = account_of(db, app_id, external_id).await? {
        return Ok(id);
    }
    let now = super::now();
    let made = db_write!(db, |conn| {
        conn.transaction::<(), DbError, _>(async |conn| {
            diesel::insert_into(users::table)
                .values(new_account)
                .execute(conn)
                .await?;
            diesel::insert_into(app_accounts::table)
                .values((
                    app_accounts::app_id.eq(app_id),
                    app_accounts::external_id.eq(external_id),
                    app_accounts::user_id.eq(&new_account.id),
                    app_accounts::created_at.eq(now),
                ))
                .execute(conn)
                .await?;
            Ok(())
        })
        .await
    });
    match made {
        Ok(()) => Ok(new_account.id.clone()),
        Err(e) if e.is_unique_violation() => account_of(db, app_id, external_id).await?.ok_or(e),
        Err(e) => Err(e),
    }
}

pub async fn account_of(db: &Db, app_id: &str, external_id: &str) -> DbResult<Option<String>> {
    db_run!(db, |conn| {
        Ok(app_accounts::table
            .find((app_id, external_id))
            .select(app_accounts::user_id)
            .first(conn)
            .await
            .optional()?)
    })
}

/// The app and external id an account was made for (`None` for fenpay's own accounts).
pub async fn link_of(db: &Db, user_id: &str) -> DbResult<Option<(String, String)>> {
    db_run!(db, |conn| {
        Ok(app_accounts::table
            .filter(app_accounts::user_id.eq(user_id))
            .select((app_accounts::app_id, app_accounts::external_id))
            .first(conn)
            .await
            .optional()?)
    })
}

/// Insert a checkout; `Err(existing)` when the app already has one with that
/// `out_order_no` (the caller compares request hashes).
pub async fn insert_checkout(db: &Db, row: &CheckoutRow) -> DbResult<Result<(), Box<CheckoutRow>>> {
    let inserted: DbResult<()> = db_write!(db, |conn| {
        diesel::insert_into(checkouts::table)
            .values(row)
            .execute(conn)
            .await?;
        Ok(())
    });
    match inserted {
        Ok(()) => Ok(Ok(())),
        Err(e) if e.is_unique_violation() => {
            match find_checkout_by_out(db, &row.app_id, &row.out_order_no).await? {
                Some(existing) => Ok(Err(Box::new(existing))),
                None => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

pub async fn find_checkout(db: &Db, order_no: &str) -> DbResult<Option<CheckoutRow>> {
    db_run!(db, |conn| {
        Ok(checkouts::table
            .find(order_no)
            .select(CheckoutRow::as_select())
            .first(conn)
            .await
            .optional()?)
    })
}

pub async fn find_checkout_by_out(
    db: &Db,
    app_id: &str,
    out_order_no: &str,
) -> DbResult<Option<CheckoutRow>> {
    db_run!(db, |conn| {
        Ok(checkouts::table
            .filter(checkouts::app_id.eq(app_id))
            .filter(checkouts::out_order_no.eq(out_order_no))
            .select(CheckoutRow::as_select())
            .first(conn)
            .await
            .optional()?)
    })
}

/// Why a payment method could not be chosen for a checkout.
#[derive(Debug, PartialEq, Eq)]
pub enum ChooseOutcome {
    /// The order row was written (with its stock hold).
    Chosen,
    /// Not open any more: chosen already, cancelled, or past `expire_at` (`now`).
    NotOpen,
    OutOfStock,
}

/// Compare-and-set a checkout `open -> chosen` (still before `expire_at`) and insert its
/// order row, in one transaction: two buyers choosing at once, or a choice racing the
/// app's cancel, make at most one order.
pub async fn choose(db: &Db, order: &OrderRow, now: NaiveDateTime) -> DbResult<ChooseOutcome> {
    db_write!(db, |conn| {
        conn.transaction::<ChooseOutcome, DbError, _>(async |conn| {
            let n = diesel::update(
                checkouts::table
                    .find(&order.order_no)
                    .filter(checkouts::status.eq(CHECKOUT_OPEN))
                    .filter(checkouts::expire_at.gt(now)),
            )
            .set((
                checkouts::status.eq(CHECKOUT_CHOSEN),
                checkouts::payment_method.eq(&order.provider),
                checkouts::channel.eq(&order.channel),
                checkouts::updated_at.eq(now),
            ))
            .execute(conn)
            .await?;
            if n == 0 {
                return Ok(ChooseOutcome::NotOpen);
            }
            if !crate::insert_order!(conn, order) {
                // Roll the choice back with the transaction.
                return Err(DbError::Query(diesel::result::Error::RollbackTransaction));
            }
            Ok(ChooseOutcome::Chosen)
        })
        .await
    })
    .or_else(|e| match e {
        DbError::Query(diesel::result::Error::RollbackTransaction) => Ok(ChooseOutcome::OutOfStock),
        e => Err(e),
    })
}

/// Compare-and-set `open -> cancelled`; `false` when it was not open (a method was chosen:
/// cancel the order instead, or it was cancelled already).
pub async fn cancel_open(db: &Db, order_no: &str) -> DbResult<bool> {
    let now = super::now();
    db_write!(db, |conn| {
        let n = diesel::update(
            checkouts::table
                .find(order_no)
                .filter(checkouts::status.eq(CHECKOUT_OPEN)),
        )
        .set((
            checkouts::status.eq(CHECKOUT_CANCELLED),
            checkouts::updated_at.eq(now),
        ))
        .execute(conn)
        .await?;
        Ok(n == 1)
    })
}

/// An app's checkouts, newest first, with filters; `status` here is the checkout's.
#[derive(Clone, Debug, Default)]
pub struct CheckoutFilter {
    pub out_order_no: Option<String>,
    pub customer_ref: Option<String>,
    pub from: Option<NaiveDateTime>,
    pub to: Option<NaiveDateTime>,
}

pub async fn list_checkouts(
    db: &Db,
    app_id: &str,
    f: &CheckoutFilter,
    limit: i64,
    offset: i64,
) -> DbResult<Vec<CheckoutRow>> {
    db_run!(db, |conn| {
        let mut q = checkouts::table
            .filter(checkouts::app_id.eq(app_id))
            .into_boxed();
        if let Some(v) = &f.out_order_no {
            q = q.filter(checkouts::out_order_no.eq(v.clone()));
        }
        if let Some(v) = &f.customer_ref {
            q = q.filter(checkouts::customer_ref.eq(v.clone()));
        }
        if let Some(v) = f.from {
            q = q.filter(checkouts::created_at.ge(v));
        }
        if let Some(v) = f.to {
            q = q.filter(checkouts::created_at.lt(v));
        }
        Ok(q.order(checkouts::created_at.desc())
            .limit(limit)
            .offset(offset)
            .select(CheckoutRow::as_select())
            .load(conn)
            .await?)
    })
}

/// An app's own-token configuration (all four columns; `None` clears), on a live app only;
/// `false` when the app is revoked or gone. A unique violation means another app has the
/// issuer.
pub async fn set_jwt(
    db: &Db,
    id: &str,
    issuer: Option<&str>,
    audience: Option<&str>,
    hs256_secret: Option<&str>,
    public_keys: Option<&str>,
) -> DbResult<bool> {
    let now = super::now();
    db_write!(db, |conn| {
        let n = diesel::update(apps::table.find(id).filter(apps::revoked_at.is_null()))
            .set((
                apps::jwt_issuer.eq(issuer),
                apps::jwt_audience.eq(audience),
                apps::jwt_hs256_secret.eq(hs256_secret),
                apps::jwt_public_keys.eq(public_keys),
                apps::updated_at.eq(now),
            ))
            .execute(conn)
            .await?;
        Ok(n == 1)
    })
}
