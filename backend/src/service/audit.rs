//! The admin audit log: who did what to which target, with the state before and after.
//!
//! Changes fenpay writes itself in one transaction (catalog, accounts) put their entry in
//! that transaction ([`Actor::entry`] builds it); actions carried out by another service
//! (a refund, a delivery resend, a complaint reply) are recorded with [`record`] once
//! they succeeded, so a refused or failed action leaves no entry.

use api_types::console::{AuditEntry, AuditListResponse, AuditQuery};
use serde::Serialize;

use crate::auth::AuthUser;
use crate::db::audit::{self as audit_db, AuditFilter, AuditRow, NewAudit};
use crate::db::{self, users};
use crate::domain::business_time;
use crate::error::{AppError, AppResult};
use crate::service::admin::paging;
use crate::startup::AppState;

/// The admin acting: the account and its username at the time.
#[derive(Clone, Debug)]
pub struct Actor {
    pub id: String,
    pub name: String,
}

impl Actor {
    /// The command line (`fenpay product ...`): no account behind it.
    pub fn cli() -> Actor {
        Actor {
            id: "cli".into(),
            name: "cli".into(),
        }
    }

    /// The admin behind a request (403 unless the caller is an admin).
    pub async fn of(state: &AppState, user: &AuthUser) -> AppResult<Actor> {
        user.require_admin()?;
        let name = users::find_by_id(&state.db, &user.user_id)
            .await?
            .map(|u| u.username)
            .unwrap_or_else(|| user.user_id.clone());
        Ok(Actor {
            id: user.user_id.clone(),
            name,
        })
    }

    /// The row recording `action` on `target`, to insert in the change's transaction.
    pub fn entry(&self, action: &str, target: Target<'_>, change: Change) -> NewAudit {
        NewAudit {
            actor_id: self.id.clone(),
            actor_name: self.name.clone(),
            action: action.to_string(),
            target_kind: target.0.to_string(),
            target_id: target.1.to_string(),
            before_json: change.before.map(|v| v.to_string()),
            after_json: change.after.map(|v| v.to_string()),
            reason: change.reason,
            created_at: db::now(),
        }
    }
}

/// What an action acted on: `(kind, id)`, e.g. `("product", "12")`.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a>(pub &'a str, pub &'a str);

/// The target's state before and after, and the stated reason.
#[derive(Clone, Debug, Default)]
pub struct Change {
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    pub reason: Option<String>,
}

impl Change {
    pub fn new(before: Option<impl Serialize>, after: Option<impl Serialize>) -> Change {
        Change {
            before: before.and_then(|b| serde_json::to_value(b).ok()),
            after: after.and_then(|a| serde_json::to_value(a).ok()),
            reason: None,
        }
    }

    pub fn with_reason(mut self, reason: impl Into<String>) -> Change {
        self.reason = Some(reason.into());
        self
    }
}

/// Record an action another service has already carried out. A failure to write the
/// entry is logged, never turned into a failure of the action that succeeded.
pub async fn record(
    state: &AppState,
    actor: &Actor,
    action: &str,
    target: Target<'_>,
    change: Change,
) {
    let entry = actor.entry(action, target, change);
    if let Err(e) = audit_db::insert(&state.db, &entry).await {
        tracing::error!(error = %e, action, target_kind = target.0, target_id = target.1, "could not write the admin audit entry");
    }
}

fn parse_json(text: Option<String>) -> Option<serde_json::Value> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}

pub fn to_entry(row: AuditRow) -> AuditEntry {
    AuditEntry {
        id: row.id,
        actor_id: row.actor_id,
        actor_name: row.actor_name,
        action: row.action,
        target_kind: row.target_kind,
        target_id: row.target_id,
        before: parse_json(row.before_json),
        after: parse_json(row.after_json),
        reason: row.reason,
        created_at: db::utc(row.created_at),
    }
}

fn given(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
}

/// A page of the log, newest first.
pub async fn list(state: &AppState, q: &AuditQuery) -> AppResult<AuditListResponse> {
    let (page, per_page) = paging(q.page, q.per_page)?;
    let tz = state.settings.business_timezone;
    let (from, before) = business_time::parse_range(q.from.as_deref(), q.to.as_deref(), tz)
        .map_err(|m| AppError::bad_request("invalid_date", m))?;
    let filter = AuditFilter {
        actor_id: given(&q.actor_id),
        action: given(&q.action),
        target_kind: given(&q.target_kind),
        target_id: given(&q.target_id),
        from: from.map(|t| t.naive_utc()),
        to: before.map(|t| t.naive_utc()),
    };
    let (rows, total) = audit_db::list(&state.db, &filter, per_page, (page - 1) * per_page).await?;
    Ok(AuditListResponse {
        items: rows.into_iter().map(to_entry).collect(),
        page,
        per_page,
        total,
    })
}
