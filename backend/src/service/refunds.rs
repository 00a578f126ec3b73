//! Refunds: open at the provider, follow to success or failure (call result, WeChat
//! `REFUND.*` notification or reconciler query), and apply success exactly once.

use api_types::admin::{RefundRequest, RefundResponse, RefundStatus};
use chrono::Utc;

use crate::db::orders as order_db;
use crate::db::refunds::{self as refund_db, RefundRow, Reserve, Revive};
use crate::db::{self, DbError};
use crate::domain::order as rules;
use crate::error::{AppError, AppResult};
use crate::providers::{ProviderError, RemoteRefund, RemoteRefundState};
use crate::service::orders::{method_of, record_call};
use crate::startup::AppState;

/// Who asked for a refund the system made on its own.
pub const SYSTEM_ACTOR: &str = "system";

/// Refund numbers: what WeChat and Alipay both accept.
pub fn is_valid_refund_no(s: &str) -> bool {
    (6..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'|' | b'*' | b'@'))
}

fn new_refund_no() -> String {
    // Same shape as order numbers, RF instead of FP.
    let order_like = rules::new_order_no(Utc::now());
    format!("RF{}", &order_like[2..])
}

fn status_of(row: &RefundRow) -> RefundStatus {
    row.status
}

/// The API view of a refund, with its order's state after it.
pub fn to_response(row: &RefundRow, order: &order_db::OrderRow) -> RefundResponse {
    RefundResponse {
        out_refund_no: row.out_refund_no.clone(),
        order_no: row.order_no.clone(),
        amount_fen: row.amount_fen,
        status: status_of(row),
        reason: row.reason.clone(),
        provider_refund_id: row.provider_refund_id.clone(),
        created_at: db::utc(row.created_at),
        succeeded_at: row.succeeded_at.map(db::utc),
        order_status: order.status,
        order_refunded_fen: order.refunded_fen,
    }
}

async fn respond(state: &AppState, out_refund_no: &str) -> AppResult<RefundResponse> {
    let row = refund_db::find(&state.db, out_refund_no)
        .await?
        .ok_or(AppError::NotFound("refund"))?;
    let order = order_db::find(&state.db, &row.order_no)
        .await?
        .ok_or(AppError::NotFound("order"))?;
    Ok(to_response(&row, &order))
}

/// Refund all or part of a paid order. The same `out_refund_no` never refunds twice: asking
/// again returns the refund as it stands.
///
/// Without `out_refund_no`, the number comes from `idempotency_key` when the request has
/// one (so a retry finds the refund its first try reserved), otherwise it is new.
pub async fn create_refund(
    state: &AppState,
    actor: &str,
    req: RefundRequest,
    idempotency_key: Option<&str>,
) -> AppResult<RefundResponse> {
    let out_refund_no = match req.out_refund_no {
        Some(no) if !is_valid_refund_no(&no) => {
            return Err(AppError::bad_request(
                "invalid_refund_no",
                "out_refund_no must be 6-64 characters of 0-9 A-Z a-z _ - | * @",
            ))
        }
        Some(no) => no,
        None => match idempotency_key {
            Some(key) => rules::refund_no_for_key(actor, key),
            None => new_refund_no(),
        },
    };
    if let Some(reason) = &req.reason {
        if reason.chars().count() > 80 {
            return Err(AppError::bad_request(
                "invalid_refund_reason",
                "reason is at most 80 characters",
            ));
        }
    }
    let order = order_db::find(&state.db, &req.order_no)
        .await?
        .ok_or(AppError::NotFound("order"))?;
    if let Some(existing) = refund_db::find(&state.db, &out_refund_no).await? {
        return same_refund_again(state, existing, &req.order_no, req.amount_fen).await;
    }
    let amount = match req.amount_fen {
        Some(a) => a,
        None => {
            let held: i64 = refund_db::for_order(&state.db, &order.order_no)
                .await?
                .iter()
                .filter(|r| r.status != RefundStatus::Failed)
                .map(|r| r.amount_fen)
                .sum();
            order.amount_fen - held
        }
    };
    if amount <= 0 {
        return Err(AppError::bad_request(
            "invalid_refund_amount",
            "the refund amount must be a positive number of fen",
        ));
    }
    let now = db::now();
    let row = RefundRow {
        out_refund_no: out_refund_no.clone(),
        order_no: order.order_no.clone(),
        provider: order.provider.clone(),
        amount_fen: amount,
        reason: req.reason.clone(),
        status: RefundStatus::Processing,
        provider_refund_id: None,
        requested_by: actor.to_string(),
        failure: None,
        lease_until: None,
        created_at: now,
        updated_at: now,
        succeeded_at: None,
    };
    let row = match refund_db::reserve(&state.db, &row).await? {
        Reserve::Created(row) => row,
        Reserve::Existing(existing) => {
            return same_refund_again(state, existing, &req.order_no, req.amount_fen).await
        }
        Reserve::NotPaid => {
            return Err(AppError::conflict(
                "order_not_paid",
                format!(
                    "order {} is {}, not paid",
                    order.order_no,
                    order.status.as_str()
                ),
            ))
        }
        Reserve::Exceeds(refundable) => {
            return Err(AppError::bad_request(
                "invalid_refund_amount",
                format!("at most {refundable} fen can still be refunded"),
            ))
        }
    };
    tracing::info!(order_no = %row.order_no, out_refund_no = %row.out_refund_no, amount, actor, "refund requested");
    submit(state, &row, &order).await?;
    respond(state, &out_refund_no).await
}

async fn same_refund_again(
    state: &AppState,
    existing: RefundRow,
    order_no: &str,
    amount: Option<i64>,
) -> AppResult<RefundResponse> {
    if existing.order_no != order_no || amount.is_some_and(|a| a != existing.amount_fen) {
        return Err(AppError::conflict(
            "refund_no_conflict",
            "this out_refund_no was used for a different refund",
        ));
    }
    respond(state, &existing.out_refund_no).await
}

/// Send a processing refund to the provider (again: the provider deduplicates by number)
/// and apply what it answers. Only a verified business refusal fails the refund; any
/// other failure (unverifiable signature, timeout, 5xx, rate limit, our own signature
/// rejected...) leaves it processing: the money may have left, the reconciler finds out.
async fn submit(state: &AppState, row: &RefundRow, order: &order_db::OrderRow) -> AppResult<()> {
    let method = method_of(order);
    let req = crate::providers::RefundRequest {
        out_trade_no: order.order_no.clone(),
        out_refund_no: row.out_refund_no.clone(),
        amount_fen: row.amount_fen,
        total_fen: order.amount_fen,
        reason: row.reason.clone(),
    };
    let result = state.providers.refund(method, &req).await;
    record_call(
        state,
        &order.order_no,
        method,
        "refund",
        &format!("{req:?}"),
        &result,
    )
    .await;
    match result {
        Ok(remote) => {
            apply_remote(state, row, &remote).await?;
            Ok(())
        }
        Err(ProviderError::Rejected { code, message }) => {
            let failure = format!("{code}: {message}");
            refund_db::fail(&state.db, &row.out_refund_no, &failure).await?;
            Err(AppError::conflict(
                "refund_rejected",
                format!("the provider refused the refund: {code} {message}").replace("  ", " "),
            ))
        }
        Err(e) => {
            tracing::warn!(out_refund_no = %row.out_refund_no, error = %e, "refund outcome unknown; the reconciler will follow up");
            Ok(())
        }
    }
}

/// Apply a provider's word on a refund (call result, notification or query).
/// Returns what was decided, for the payment record.
pub async fn apply_remote(
    state: &AppState,
    row: &RefundRow,
    remote: &RemoteRefund,
) -> Result<&'static str, DbError> {
    match remote.state {
        RemoteRefundState::Succeeded => {
            let at = remote.succeeded_at.unwrap_or_else(Utc::now).naive_utc();
            let complete = || {
                refund_db::complete(
                    &state.db,
                    &row.order_no,
                    &row.out_refund_no,
                    remote.refund_id.as_deref(),
                    at,
                    state.settings.lifecycle.refund_clawback,
                    &state.sinks,
                )
            };
            if let Some(ev) = complete().await? {
                state.hub.committed([&ev]);
                tracing::info!(out_refund_no = %row.out_refund_no, "refund succeeded");
                return Ok("refund succeeded");
            }
            // Not processing. A refund we had marked failed did succeed at the provider:
            // the money left, so the success still counts (and a person looks at it).
            match refund_db::revive_failed(
                &state.db,
                &row.order_no,
                &row.out_refund_no,
                remote.refund_id.as_deref(),
                at,
            )
            .await?
            {
                Revive::NotFailed => Ok("duplicate"),
                Revive::Reopened => {
                    tracing::error!(out_refund_no = %row.out_refund_no, "refund marked failed succeeded at the provider: applied, order flagged for review");
                    match complete().await? {
                        Some(ev) => {
                            state.hub.committed([&ev]);
                            Ok("refund succeeded after it was marked failed")
                        }
                        None => Ok("duplicate"),
                    }
                }
                Revive::SucceededWithoutRoom => {
                    tracing::error!(out_refund_no = %row.out_refund_no, "refund marked failed succeeded at the provider but exceeds what is left: order flagged for review");
                    Ok("refund succeeded after it was marked failed; exceeds the order")
                }
            }
        }
        RemoteRefundState::Failed => {
            if refund_db::fail(
                &state.db,
                &row.out_refund_no,
                "the provider closed the refund",
            )
            .await?
            {
                tracing::warn!(out_refund_no = %row.out_refund_no, "refund failed at the provider");
                Ok("refund failed")
            } else {
                Ok("duplicate")
            }
        }
        RemoteRefundState::Abnormal => {
            if let Some(id) = &remote.refund_id {
                refund_db::set_provider_id(&state.db, &row.out_refund_no, id).await?;
            }
            if refund_db::mark_abnormal(&state.db, &row.out_refund_no, &row.order_no).await? {
                tracing::error!(out_refund_no = %row.out_refund_no, "refund abnormal at the provider: needs manual handling");
            }
            Ok("refund abnormal")
        }
        RemoteRefundState::Processing => {
            if let Some(id) = &remote.refund_id {
                refund_db::set_provider_id(&state.db, &row.out_refund_no, id).await?;
            }
            Ok("processing")
        }
    }
}

/// A verified refund notification (WeChat `REFUND.*`). Unknown refunds are an error so
/// the provider's record of it stays visible.
pub async fn apply_notice(state: &AppState, remote: &RemoteRefund) -> Result<&'static str, String> {
    let row = refund_db::find(&state.db, &remote.out_refund_no)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("unknown refund {}", remote.out_refund_no))?;
    if row.order_no != remote.out_trade_no {
        return Err(format!(
            "refund {} belongs to {}, not {}",
            row.out_refund_no, row.order_no, remote.out_trade_no
        ));
    }
    if remote.state == RemoteRefundState::Succeeded && remote.amount_fen != row.amount_fen {
        return Err(format!(
            "refund amount {} fen, ours is {} fen",
            remote.amount_fen, row.amount_fen
        ));
    }
    apply_remote(state, &row, remote)
        .await
        .map_err(|e| e.to_string())
}

/// Reconciler step for a refund still processing: ask the provider; if it never heard of
/// the refund, send it again (same number, so it cannot be taken twice).
pub async fn reconcile(state: &AppState, row: &RefundRow) -> Result<&'static str, String> {
    let order = order_db::find(&state.db, &row.order_no)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "order vanished".to_string())?;
    let method = method_of(&order);
    let queried = state
        .providers
        .query_refund(method, &order.order_no, &row.out_refund_no)
        .await;
    record_call(
        state,
        &order.order_no,
        method,
        "refund_query",
        &row.out_refund_no,
        &queried,
    )
    .await;
    match queried {
        Ok(remote) => apply_remote(state, row, &remote)
            .await
            .map_err(|e| e.to_string()),
        Err(ProviderError::TradeNotExist) => {
            submit(state, row, &order)
                .await
                .map_err(|e| e.to_string())?;
            Ok("resubmitted")
        }
        Err(e) => Err(e.to_string()),
    }
}

/// The automatic refund of a payment that arrived after its order was closed
/// (`AUTO_REFUND_PAID_AFTER_CLOSE`): the whole amount, under a number derived from the
/// order's, so it can never be made twice. It is reserved in the transaction that applies
/// the late payment ([`paid_after_close_refund`]), then sent by [`refund_paid_after_close`];
/// if that never happens (a crash, the provider down), the reconciler sends it.
pub fn paid_after_close_refund(order: &order_db::OrderRow) -> RefundRow {
    let now = db::now();
    RefundRow {
        out_refund_no: format!("RC{}", &order.order_no[2..]),
        order_no: order.order_no.clone(),
        provider: order.provider.clone(),
        amount_fen: order.amount_fen,
        reason: Some("订单已关闭，自动退款 / order was closed".into()),
        status: RefundStatus::Processing,
        provider_refund_id: None,
        requested_by: SYSTEM_ACTOR.to_string(),
        failure: None,
        lease_until: None,
        created_at: now,
        updated_at: now,
        succeeded_at: None,
    }
}

/// The automatic refund of a second payment for the same purchase
/// (`AUTO_REFUND_DUPLICATE_PAYMENTS`): like [`paid_after_close_refund`], the whole
/// amount under a number derived from the order's (`RD...`), reserved in the
/// transaction that applies the payment and sent by [`refund_duplicate_payment`] (or
/// the reconciler).
pub fn duplicate_payment_refund(order: &order_db::OrderRow) -> RefundRow {
    RefundRow {
        out_refund_no: format!("RD{}", &order.order_no[2..]),
        reason: Some("重复支付，自动退款 / duplicate payment".into()),
        ..paid_after_close_refund(order)
    }
}

/// Send the reserved paid-after-close refund of `order_no` to the provider now.
pub async fn refund_paid_after_close(
    state: &AppState,
    order_no: &str,
) -> AppResult<RefundResponse> {
    send_reserved(state, order_no, paid_after_close_refund).await
}

/// Send the reserved duplicate-payment refund of `order_no` to the provider now.
pub async fn refund_duplicate_payment(
    state: &AppState,
    order_no: &str,
) -> AppResult<RefundResponse> {
    send_reserved(state, order_no, duplicate_payment_refund).await
}

/// Send a refund reserved with a payment (`planned` names it) unless it is settled.
async fn send_reserved(
    state: &AppState,
    order_no: &str,
    planned: fn(&order_db::OrderRow) -> RefundRow,
) -> AppResult<RefundResponse> {
    let order = order_db::find(&state.db, order_no)
        .await?
        .ok_or(AppError::NotFound("order"))?;
    let planned = planned(&order);
    let row = refund_db::find(&state.db, &planned.out_refund_no)
        .await?
        .ok_or(AppError::NotFound("refund"))?;
    if row.status == RefundStatus::Processing {
        submit(state, &row, &order).await?;
    }
    respond(state, &row.out_refund_no).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refund_numbers() {
        let no = new_refund_no();
        assert!(no.starts_with("RF"));
        assert!(is_valid_refund_no(&no));
        assert!(!is_valid_refund_no("short"));
        assert!(!is_valid_refund_no("has space 1234"));
        assert!(!is_valid_refund_no(&"x".repeat(65)));
        assert!(is_valid_refund_no("RF-2026_11|22*a@b"));
    }
}
