//! Provider notifications. No JWT: authenticity comes from the provider's signature.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use api_types::payment::PaymentMethod;
use serde::Serialize;
use utoipa::ToSchema;

use crate::providers::ProviderError;
use crate::service::orders::{self, ApplyError};
use crate::startup::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/payment/wechat/callback", web::post().to(wechat_callback));
}

/// WeChat's expected failure body; any non-2xx makes WeChat resend.
#[derive(Serialize, ToSchema)]
pub struct WechatCallbackFailure {
    /// Always `FAIL`.
    pub code: &'static str,
    pub message: String,
}

fn wechat_fail(status: StatusCode, message: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status).json(WechatCallbackFailure {
        code: "FAIL",
        message: message.into(),
    })
}

fn headers_json(req: &HttpRequest) -> (HashMap<String, String>, String) {
    let map: HashMap<String, String> = req
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_ascii_lowercase(), v.to_str().ok()?.to_string())))
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
    let body_text = String::from_utf8_lossy(&body).to_string();
    let Some(client) = state.providers.wechat.clone() else {
        return wechat_fail(StatusCode::NOT_FOUND, "WeChat Pay is not configured");
    };
    let method = PaymentMethod::Wechat;
    let (notice, _tx) = match client.verify_notification(&headers, &body).await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "rejected WeChat notification");
            orders::record(&state, None, method, "notification", &headers_text, &body_text, false, &format!("rejected: {e}")).await;
            let status = match e {
                ProviderError::BadSignature(_) => StatusCode::UNAUTHORIZED,
                _ => StatusCode::BAD_REQUEST,
            };
            return wechat_fail(status, "verification failed");
        }
    };
    let cfg = client.config();
    let outcome = orders::apply_payment(&state, method, &notice, Some((&cfg.app_id, &cfg.mch_id))).await;
    let decision = match &outcome {
        Ok(o) => format!("{o:?}"),
        Err(e) => format!("rejected: {e}"),
    };
    orders::record(&state, Some(&notice.out_trade_no), method, "notification", &headers_text, &body_text, true, &decision).await;
    match outcome {
        Ok(_) => HttpResponse::NoContent().finish(),
        Err(ApplyError::UnknownOrder(_)) => wechat_fail(StatusCode::NOT_FOUND, "unknown order"),
        Err(ApplyError::Mismatch(m)) => {
            tracing::error!(order_no = %notice.out_trade_no, mismatch = %m, "WeChat notification does not match the order");
            wechat_fail(StatusCode::BAD_REQUEST, "notification does not match the order")
        }
        Err(ApplyError::Db(e)) => {
            tracing::error!(error = %e, "database failure applying a WeChat notification");
            wechat_fail(StatusCode::INTERNAL_SERVER_ERROR, "temporary failure, please retry")
        }
    }
}
