//! Provider notifications. No JWT: authenticity comes from the provider's signature.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use api_types::payment::PaymentMethod;
use serde::Serialize;
use utoipa::ToSchema;

use crate::providers::ProviderError;
use crate::service::orders::{self, ApplyError};
use crate::service::records;
use crate::startup::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/payment/wechat/callback", web::post().to(wechat_callback))
        .route(
            "/payment/wechat/refund-callback",
            web::post().to(wechat_refund_callback),
        )
        .route("/payment/alipay/callback", web::post().to(alipay_callback))
        .route("/payment/alipay/return", web::get().to(alipay_return));
}

/// WeChat's expected failure body; any non-2xx makes WeChat resend.
#[derive(Serialize, ToSchema)]
pub struct WechatCallbackFailure {
    /// Always `FAIL`.
    pub code: &'static str,
    pub message: String,
}

pub(super) fn wechat_fail(status: StatusCode, message: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status).json(WechatCallbackFailure {
        code: "FAIL",
        message: message.into(),
    })
}

/// Store a verified notification with what was decided about it: `Ok(decision)`, or
/// `Err(reason)` when it was refused. `changed_nothing` (a duplicate of an applied
/// payment) lets it be written in the background; every other record is stored before
/// the provider gets its answer. (Posts that fail verification: [`record_unverified`].)
#[allow(clippy::too_many_arguments)]
async fn record_notification<E: std::fmt::Display>(
    state: &AppState,
    kind: &str,
    method: PaymentMethod,
    order_no: Option<&str>,
    headers: &str,
    body: &str,
    outcome: &Result<String, E>,
    changed_nothing: bool,
) {
    let (verified, decision) = match outcome {
        Ok(d) => (true, d.clone()),
        Err(e) => (order_no.is_some(), format!("rejected: {e}")),
    };
    let rec = orders::new_record(order_no, method, kind, headers, body, verified, &decision);
    if changed_nothing {
        state.records.record(rec);
    } else {
        orders::store_record(state, &rec).await;
    }
}

/// The database did not answer (it changed nothing): the record of this attempt is
/// queued for the background writer rather than awaited, so the provider hears the 5xx
/// within its deadline instead of after a second database timeout.
fn database_down<T>(outcome: &Result<T, ApplyError>) -> bool {
    matches!(outcome, Err(ApplyError::Db(e)) if e.is_unavailable())
}

/// Keep a callback post that failed verification: small (digest and prefix, see
/// `service::records::unverified_record`) and only within the unverified-record limits
/// for its source address and overall; beyond them it is only counted.
fn record_unverified(
    state: &AppState,
    req: &HttpRequest,
    method: PaymentMethod,
    kind: &str,
    headers: &HashMap<String, String>,
    body: &[u8],
    reason: &dyn std::fmt::Display,
) {
    let allowed = state.limits.store_unverified(state.client_ip(req));
    let rec = records::unverified_record(method, kind, headers, body, &reason.to_string());
    state.records.record_unverified(rec, allowed);
}

/// A WeChat notification that failed verification: keep its digest, answer so WeChat
/// resends.
pub(super) fn wechat_rejected(
    state: &AppState,
    req: &HttpRequest,
    kind: &str,
    headers: &HashMap<String, String>,
    body: &[u8],
    e: ProviderError,
) -> HttpResponse {
    tracing::warn!(error = %e, kind, "rejected WeChat notification");
    crate::metrics::rejected_notification(PaymentMethod::Wechat, &e);
    record_unverified(state, req, PaymentMethod::Wechat, kind, headers, body, &e);
    let status = match e {
        ProviderError::BadSignature(_) => StatusCode::UNAUTHORIZED,
        _ => StatusCode::BAD_REQUEST,
    };
    wechat_fail(status, "verification failed")
}

pub(super) fn headers_json(req: &HttpRequest) -> (HashMap<String, String>, String) {
    let map: HashMap<String, String> = req
        .headers()
        .iter()
        .filter_map(|(k, v)| {
            Some((
                k.as_str().to_ascii_lowercase(),
                v.to_str().ok()?.to_string(),
            ))
        })
        .collect();
    let text = serde_json::to_string(&map).unwrap_or_default();
    (map, text)
}

/// WeChat Pay payment notification (`TRANSACTION.SUCCESS`).
///
/// Verifies `Wechatpay-Signature` over the raw body (public-key or platform-certificate
/// mode by `Wechatpay-Serial`, timestamp within 5 minutes), decrypts the AEAD_AES_256_GCM
/// resource, checks mchid, appid, order and amount, then marks the order paid exactly once.
/// 204 on success and on duplicates; 4xx/5xx `{"code":"FAIL"}` otherwise so WeChat resends.
#[utoipa::path(post, path = "/api/v1/payment/wechat/callback", tag = "callbacks",
    request_body(content = String, description = "WeChat's signed, encrypted notification envelope", content_type = "application/json"),
    responses(
        (status = 204, description = "Applied (or already applied)"),
        (status = 400, description = "Does not match the order", body = WechatCallbackFailure),
        (status = 401, description = "Signature verification failed (including signature probes)", body = WechatCallbackFailure),
        (status = 404, description = "Unknown order", body = WechatCallbackFailure),
        (status = 500, description = "Transient failure; WeChat will resend", body = WechatCallbackFailure)))]
pub async fn wechat_callback(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let (headers, headers_text) = headers_json(&req);
    let Some(client) = state.providers.wechat.clone() else {
        return wechat_fail(StatusCode::NOT_FOUND, "WeChat Pay is not configured");
    };
    let method = PaymentMethod::Wechat;
    let (notice, _tx) = match client.verify_notification(&headers, &body).await {
        Ok(v) => v,
        Err(e) => return wechat_rejected(&state, &req, "notification", &headers, &body, e),
    };
    let body_text = String::from_utf8_lossy(&body).to_string();
    let cfg = client.config();
    let evidence = orders::Evidence {
        kind: "notification",
        headers: headers_text.clone(),
        body: body_text.clone(),
    };
    let outcome = orders::apply_payment(
        &state,
        method,
        &notice,
        Some((&cfg.app_id, &cfg.mch_id)),
        Some(&evidence),
    )
    .await;
    crate::metrics::payment_notification(method, &outcome);
    // An applied payment's record was written in its own transaction.
    if !matches!(outcome, Ok(o) if o.recorded()) {
        let duplicate =
            matches!(outcome, Ok(orders::ApplyOutcome::Duplicate)) || database_down(&outcome);
        let outcome = outcome.as_ref().map(|o| format!("{o:?}"));
        record_notification(
            &state,
            "notification",
            method,
            Some(&notice.out_trade_no),
            &headers_text,
            &body_text,
            &outcome,
            duplicate,
        )
        .await;
    }
    match outcome {
        Ok(_) => HttpResponse::NoContent().finish(),
        Err(ApplyError::UnknownOrder(_)) => wechat_fail(StatusCode::NOT_FOUND, "unknown order"),
        Err(ApplyError::Mismatch(m)) => {
            tracing::error!(order_no = %notice.out_trade_no, mismatch = %m, "WeChat notification does not match the order");
            wechat_fail(
                StatusCode::BAD_REQUEST,
                "notification does not match the order",
            )
        }
        Err(e @ (ApplyError::Db(_) | ApplyError::Unconfirmed(_))) => {
            tracing::error!(error = %e, "transient failure applying a WeChat notification");
            wechat_fail(
                StatusCode::INTERNAL_SERVER_ERROR,
                "temporary failure, please retry",
            )
        }
    }
}

/// WeChat Pay refund notification (`REFUND.SUCCESS`, `REFUND.ABNORMAL`, `REFUND.CLOSED`).
///
/// Verified and decrypted like payment notifications; a success completes the refund
/// exactly once (order refunded amount, claw-back, `order.refunded` event).
#[utoipa::path(post, path = "/api/v1/payment/wechat/refund-callback", tag = "callbacks",
    request_body(content = String, description = "WeChat's signed, encrypted refund notification", content_type = "application/json"),
    responses(
        (status = 204, description = "Applied (or already applied)"),
        (status = 400, description = "Does not match our refund", body = WechatCallbackFailure),
        (status = 401, description = "Signature verification failed", body = WechatCallbackFailure),
        (status = 500, description = "Transient failure; WeChat will resend", body = WechatCallbackFailure)))]
pub async fn wechat_refund_callback(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let (headers, headers_text) = headers_json(&req);
    let Some(client) = state.providers.wechat.clone() else {
        return wechat_fail(StatusCode::NOT_FOUND, "WeChat Pay is not configured");
    };
    let method = PaymentMethod::Wechat;
    let kind = "refund_notification";
    let remote = match client.verify_refund_notification(&headers, &body).await {
        Ok(r) => r,
        Err(e) => return wechat_rejected(&state, &req, kind, &headers, &body, e),
    };
    let body_text = String::from_utf8_lossy(&body).to_string();
    let outcome = crate::service::refunds::apply_notice(&state, &remote)
        .await
        .map(String::from);
    crate::metrics::notification(
        method,
        match outcome {
            Ok(_) => crate::metrics::Notice::Accepted,
            Err(_) => crate::metrics::Notice::Mismatch,
        },
    );
    record_notification(
        &state,
        kind,
        method,
        Some(&remote.out_trade_no),
        &headers_text,
        &body_text,
        &outcome,
        false,
    )
    .await;
    match outcome {
        Ok(_) => HttpResponse::NoContent().finish(),
        Err(e) => {
            tracing::error!(out_refund_no = %remote.out_refund_no, error = %e, "refund notification not applied");
            wechat_fail(StatusCode::BAD_REQUEST, "refund does not match")
        }
    }
}

fn alipay_reply(status: StatusCode, text: &'static str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/plain; charset=utf-8")
        .body(text)
}

/// Alipay asynchronous notification (`application/x-www-form-urlencoded`).
///
/// Verifies the V1 signature (`sign` and `sign_type` removed, values url-decoded), app_id
/// (and seller_id when configured), the order and `total_amount`. `TRADE_SUCCESS` /
/// `TRADE_FINISHED` mark the order paid exactly once; `WAIT_BUYER_PAY` (the buyer
/// scanned the QR code) changes nothing; `TRADE_CLOSED` cancels a pending order only
/// after `alipay.trade.query` confirms the trade closed unpaid (`fail` when the query
/// fails, so Alipay resends). Replies exactly `success` (duplicates too); anything else
/// makes Alipay resend.
#[utoipa::path(post, path = "/api/v1/payment/alipay/callback", tag = "callbacks",
    request_body(content = String, description = "Alipay's V1-signed form", content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "`success` (plain text)", body = String),
        (status = 400, description = "`fail`: verification failed or the notification does not match the order", body = String),
        (status = 500, description = "`fail`: transient failure; Alipay will resend", body = String),
        (status = 503, description = "`fail`: a TRADE_CLOSED the provider could not confirm yet; Alipay will resend", body = String)))]
pub async fn alipay_callback(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let (headers, headers_text) = headers_json(&req);
    let method = PaymentMethod::Alipay;
    let Some(client) = state.providers.alipay.clone() else {
        return alipay_reply(StatusCode::NOT_FOUND, "fail");
    };
    let (notice, trade_status, params) = match client.verify_notification(&body) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "rejected Alipay notification");
            crate::metrics::rejected_notification(method, &e);
            record_unverified(&state, &req, method, "notification", &headers, &body, &e);
            return alipay_reply(StatusCode::BAD_REQUEST, "fail");
        }
    };
    // Verified: the whole body is kept.
    let body_text = String::from_utf8_lossy(&body).to_string();
    // Alipay also notifies after a refund (`out_biz_no` = our refund number): if the
    // refund call's answer was lost, this completes the refund.
    if let Some(out_refund_no) = params
        .get("out_biz_no")
        .filter(|_| params.contains_key("refund_fee"))
    {
        let found = match crate::db::refunds::find(&state.db, out_refund_no).await {
            Ok(found) => found,
            // Unknown whether it is our refund: never let it fall through to the payment
            // path (a cached paid order would answer "success" and stop the resends).
            Err(e) => {
                tracing::error!(error = %e, "database failure reading a refund for an Alipay notification");
                return alipay_reply(StatusCode::INTERNAL_SERVER_ERROR, "fail");
            }
        };
        if let Some(row) = found {
            if row.order_no == notice.out_trade_no {
                let remote = crate::providers::RemoteRefund {
                    out_trade_no: row.order_no.clone(),
                    out_refund_no: row.out_refund_no.clone(),
                    refund_id: Some(notice.transaction_id.clone()),
                    state: crate::providers::RemoteRefundState::Succeeded,
                    amount_fen: row.amount_fen,
                    succeeded_at: None,
                };
                let decision = crate::service::refunds::apply_remote(&state, &row, &remote)
                    .await
                    .map(|d| format!("refund {out_refund_no}: {d}"))
                    .map_err(ApplyError::Db);
                crate::metrics::other_notification(method, &decision);
                record_notification(
                    &state,
                    "refund_notification",
                    method,
                    Some(&notice.out_trade_no),
                    &headers_text,
                    &body_text,
                    &decision,
                    false,
                )
                .await;
                return match decision {
                    Ok(_) => alipay_reply(StatusCode::OK, "success"),
                    Err(_) => alipay_reply(StatusCode::INTERNAL_SERVER_ERROR, "fail"),
                };
            }
        }
    }
    let mut duplicate = false;
    let outcome = match trade_status.as_str() {
        _ if notice.paid => {
            let evidence = orders::Evidence {
                kind: "notification",
                headers: headers_text.clone(),
                body: body_text.clone(),
            };
            let applied =
                orders::apply_payment(&state, method, &notice, None, Some(&evidence)).await;
            crate::metrics::payment_notification(method, &applied);
            match applied {
                // Its record was written in the transaction that applied it.
                Ok(o) if o.recorded() => return alipay_reply(StatusCode::OK, "success"),
                other => {
                    duplicate = matches!(other, Ok(orders::ApplyOutcome::Duplicate));
                    other.map(|o| format!("{o:?}"))
                }
            }
        }
        // The buyer scanned the QR code (precreate): nothing to do, nothing to change.
        "WAIT_BUYER_PAY" => Ok(format!("{trade_status}: ignored")),
        _ => orders::apply_provider_close(&state, method, &notice.out_trade_no)
            .await
            .map(|o| format!("{trade_status}: {o}")),
    };
    duplicate = duplicate || database_down(&outcome);
    if !notice.paid {
        crate::metrics::other_notification(method, &outcome);
    }
    record_notification(
        &state,
        "notification",
        method,
        Some(&notice.out_trade_no),
        &headers_text,
        &body_text,
        &outcome,
        duplicate,
    )
    .await;
    match outcome {
        Ok(_) => alipay_reply(StatusCode::OK, "success"),
        Err(ApplyError::Db(e)) => {
            tracing::error!(error = %e, "database failure applying an Alipay notification");
            alipay_reply(StatusCode::INTERNAL_SERVER_ERROR, "fail")
        }
        Err(ApplyError::Unconfirmed(e)) => {
            tracing::warn!(order_no = %notice.out_trade_no, error = %e, "Alipay notification not confirmed by a query; Alipay will resend");
            alipay_reply(StatusCode::SERVICE_UNAVAILABLE, "fail")
        }
        Err(e) => {
            tracing::error!(order_no = %notice.out_trade_no, error = %e, "Alipay notification does not match");
            alipay_reply(StatusCode::BAD_REQUEST, "fail")
        }
    }
}

/// Where Alipay's page/wap cashier sends the buyer back. The signature is verified, then
/// the browser is redirected to the web app's order page. This never marks anything paid:
/// only the notification or a provider query does.
#[utoipa::path(get, path = "/api/v1/payment/alipay/return", tag = "callbacks",
    responses(
        (status = 302, description = "Redirect to the web app (`/?order_no=...&from=alipay`), or for a merchant order to its checkout page (`/pay/{order_no}?sig=...`)"),
        (status = 400, description = "`invalid_signature`", body = api_types::error::ErrorResponse)))]
pub async fn alipay_return(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let verified = state
        .providers
        .alipay
        .as_ref()
        .map(|client| client.verify_return(req.query_string()));
    match verified {
        Some(Ok(params)) => {
            let order_no = params.get("out_trade_no").cloned().unwrap_or_default();
            // A merchant order's buyer goes back to its hosted checkout page.
            let to = match crate::service::checkout::alipay_return_target(&state, &order_no).await {
                Some(page) => page,
                None => format!("/?order_no={}&from=alipay", urlencoding::encode(&order_no)),
            };
            HttpResponse::Found()
                .insert_header((actix_web::http::header::LOCATION, to))
                .finish()
        }
        _ => actix_web::ResponseError::error_response(&crate::error::AppError::bad_request(
            "invalid_signature",
            "the return parameters are not signed by Alipay",
        )),
    }
}
