//! Account management from the console: search, the account page, manual adjustments
//! written to the ledger, disable / enable and the admin role. Every change is recorded
//! in the admin audit log in its own transaction.

use api_types::console::{
    AccountDetail, AccountLink, AccountListResponse, AccountQuery, AccountSummary, AdjustRequest,
    AdjustResponse, AuditQuery,
};
use serde_json::json;

use crate::db::ledger::{self, AdjustWrite};
use crate::db::orders::OrderFilter;
use crate::db::users::{self, AccountRow, AccountSearch, AccountWrite};
use crate::db::{self, orders as order_db, refunds as refund_db};
use crate::domain::accounts::AccountChange;
use crate::domain::fulfilment::{Adjustment, Change as BalanceChange, Rate, Tier};
use crate::error::{AppError, AppResult};
use crate::service::admin::{admin_order, balance_entry, paging};
use crate::service::audit::{self, Actor, Change, Target};
use crate::startup::AppState;

/// How many orders, refunds and ledger entries the account page shows.
const PAGE_ROWS: i64 = 100;
/// Longest stated reason.
pub const MAX_REASON_CHARS: usize = 200;
/// Largest points moved by one adjustment, either way.
pub const MAX_ADJUST_POINTS: i64 = 1_000_000_000;
/// Most days moved by one adjustment, either way (ten years).
pub const MAX_ADJUST_DAYS: i64 = 3_660;

pub fn summary(row: &AccountRow) -> AccountSummary {
    let (u, disabled_at) = row;
    AccountSummary {
        id: u.id.clone(),
        username: u.username.clone(),
        email: u.email.clone(),
        role: u.role.clone(),
        points_balance: u.points_balance,
        membership_tier: u.membership_tier.clone(),
        membership_expires_at: u.membership_expires_at.map(db::utc),
        disabled_at: disabled_at.map(db::utc),
        created_at: db::utc(u.created_at),
    }
}

/// The audit log's view of an account: what an operator can change.
fn audit_view(row: &AccountRow) -> serde_json::Value {
    json!({
        "username": row.0.username,
        "role": row.0.role,
        "disabled": row.1.is_some(),
        "points_balance": row.0.points_balance,
        "membership_tier": row.0.membership_tier,
        "membership_expires_at": row.0.membership_expires_at.map(db::utc),
    })
}

fn trimmed(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
}

/// A stated reason: trimmed, 1 to 200 characters when `required`, at most 200 otherwise.
pub fn reason(text: Option<&str>, required: bool) -> AppResult<Option<String>> {
    let text = text.map(str::trim).filter(|t| !t.is_empty());
    match text {
        None if required => Err(AppError::bad_request(
            "reason_required",
            "say why (reason, 1 to 200 characters)",
        )),
        Some(t) if t.chars().count() > MAX_REASON_CHARS => Err(AppError::bad_request(
            "reason_too_long",
            "reason is at most 200 characters",
        )),
        other => Ok(other.map(String::from)),
    }
}

/// Accounts matching the search, newest first.
pub async fn search(state: &AppState, q: &AccountQuery) -> AppResult<AccountListResponse> {
    let (page, per_page) = paging(q.page, q.per_page)?;
    let role = trimmed(&q.role);
    if let Some(r) = role.as_deref() {
        if r != "admin" && r != "user" {
            return Err(AppError::bad_request(
                "invalid_query",
                "role is `admin` or `user`",
            ));
        }
    }
    let s = AccountSearch {
        q: trimmed(&q.q),
        role,
        disabled: q.disabled,
    };
    let (rows, total) = users::search(&state.db, &s, per_page, (page - 1) * per_page).await?;
    Ok(AccountListResponse {
        items: rows.iter().map(summary).collect(),
        page,
        per_page,
        total,
    })
}

/// The account page.
pub async fn detail(state: &AppState, id: &str) -> AppResult<AccountDetail> {
    let row = users::find_account(&state.db, id)
        .await?
        .ok_or(AppError::NotFound("account"))?;
    let links = users::links(&state.db, id).await?;
    let filter = OrderFilter {
        user: Some(id.to_string()),
        ..OrderFilter::default()
    };
    let (orders, orders_total) = order_db::list_filtered(&state.db, &filter, PAGE_ROWS, 0).await?;
    let refunds = refund_db::for_user(&state.db, id, PAGE_ROWS).await?;
    let entries = ledger::latest_for_user(&state.db, id, PAGE_ROWS).await?;
    let history = audit::list(
        state,
        &AuditQuery {
            target_kind: Some("account".into()),
            target_id: Some(id.to_string()),
            per_page: Some(50),
            ..AuditQuery::default()
        },
    )
    .await?;
    Ok(AccountDetail {
        account: summary(&row),
        links: links
            .into_iter()
            .map(|(app_id, external_id)| AccountLink {
                app_id,
                external_id,
            })
            .collect(),
        orders: orders
            .into_iter()
            .map(|(o, name)| admin_order(&o, name))
            .collect(),
        orders_total,
        refunds: refunds
            .iter()
            .map(|(r, o)| crate::service::refunds::to_response(r, o))
            .collect(),
        ledger: entries.iter().map(balance_entry).collect(),
        audit: history.items,
    })
}

/// The tier a membership product grants, at its current catalog rate.
async fn tier_of_product(state: &AppState, product_id: i64) -> AppResult<Tier> {
    let p = crate::db::products::find(&state.db, product_id)
        .await?
        .ok_or_else(|| {
            AppError::bad_request("invalid_product", "tier_product_id names no product")
        })?;
    match (p.kind.as_str(), &p.membership_tier, p.membership_days) {
        ("membership", Some(name), Some(days)) if days > 0 => Ok(Tier {
            name: name.clone(),
            rate: Rate {
                rank: p.tier_rank.unwrap_or(0),
                price_fen: p.price_fen,
                days: i64::from(days),
            },
        }),
        _ => Err(AppError::bad_request(
            "invalid_product",
            "tier_product_id must name a membership product",
        )),
    }
}

/// A manual adjustment: balances, ledger entry (with the reason) and audit entry in one
/// transaction.
pub async fn adjust(
    state: &AppState,
    actor: &Actor,
    id: &str,
    req: &AdjustRequest,
) -> AppResult<AdjustResponse> {
    let why = reason(Some(&req.reason), true)?.unwrap_or_default();
    if req.points.abs() > MAX_ADJUST_POINTS || req.membership_days.abs() > MAX_ADJUST_DAYS {
        return Err(AppError::bad_request(
            "invalid_adjustment",
            format!(
                "points must be within ±{MAX_ADJUST_POINTS} and membership_days within ±{MAX_ADJUST_DAYS}"
            ),
        ));
    }
    let tier = match req.tier_product_id {
        Some(pid) => Some(tier_of_product(state, pid).await?),
        None => None,
    };
    let adjustment = Adjustment {
        points: req.points,
        membership_days: req.membership_days,
        tier,
    };
    let audit_entry = |c: &BalanceChange| {
        actor.entry(
            "account.adjust",
            Target("account", id),
            Change {
                before: Some(json!({
                    "points_balance": c.entry.points_after - c.entry.delta_points,
                    "membership_tier": c.entry.tier_before,
                    "membership_expires_at": c.entry.expires_before.map(db::utc),
                })),
                after: Some(json!({
                    "points_balance": c.entry.points_after,
                    "membership_tier": c.entry.tier_after,
                    "membership_expires_at": c.entry.expires_after.map(db::utc),
                    "delta_points": c.entry.delta_points,
                    "delta_membership_secs": c.entry.delta_membership_secs,
                })),
                reason: Some(why.clone()),
            },
        )
    };
    match ledger::adjust(&state.db, id, &adjustment, &why, audit_entry).await? {
        AdjustWrite::NotFound => Err(AppError::NotFound("account")),
        AdjustWrite::Refused(r) => Err(AppError::conflict(r.code(), r.message())),
        AdjustWrite::Done(entry_id, _) => {
            let row = users::find_account(&state.db, id)
                .await?
                .ok_or(AppError::NotFound("account"))?;
            let entry = ledger::latest_for_user(&state.db, id, PAGE_ROWS)
                .await?
                .into_iter()
                .find(|e| e.id == entry_id)
                .ok_or_else(|| {
                    AppError::internal(anyhow::anyhow!("ledger entry {entry_id} not found"))
                })?;
            Ok(AdjustResponse {
                account: summary(&row),
                entry: balance_entry(&entry),
            })
        }
    }
}

/// Disable, enable, grant or revoke admin. Tokens issued before the change are refused
/// from the next request on (this process at once; other replicas within
/// `AUTH_CACHE_TTL_SECS`).
pub async fn change(
    state: &AppState,
    actor: &Actor,
    id: &str,
    what: AccountChange,
    why: Option<String>,
) -> AppResult<AccountSummary> {
    let audit_entry = |before: &AccountRow, after: &AccountRow| {
        actor.entry(
            what.action(),
            Target("account", id),
            Change {
                before: Some(audit_view(before)),
                after: Some(audit_view(after)),
                reason: why.clone(),
            },
        )
    };
    let row = match users::apply_change(&state.db, id, what, audit_entry).await? {
        AccountWrite::NotFound => return Err(AppError::NotFound("account")),
        AccountWrite::Refused(r) => return Err(AppError::conflict(r.code(), r.message())),
        AccountWrite::Conflict => {
            return Err(AppError::conflict(
                "concurrent_change",
                "the account changed meanwhile: reload and try again",
            ))
        }
        AccountWrite::Unchanged(row) => row,
        AccountWrite::Changed { after, .. } => {
            // Hold the new version here at once (never lowered by a slower read).
            state.sessions.forget(id);
            state.sessions.refresh(&state.db, id).await?;
            after
        }
    };
    Ok(summary(&row))
}
