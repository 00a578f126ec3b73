//! WeChat Pay complaints (消费者投诉 2.0): the notification callback (WeChat signature)
//! and the operator inbox (role `admin`).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use api_types::complaints::{
    ComplaintDetail, ComplaintListResponse, ComplaintQuery, ComplaintReplyRequest,
    ComplaintSyncRequest, ComplaintSyncResponse,
};
use api_types::error::ErrorResponse;

use super::callbacks::{headers_json, wechat_fail, wechat_rejected, WechatCallbackFailure};
use crate::auth::AuthUser;
use crate::error::AppResult;
use crate::service::complaints;
use crate::startup::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/callbacks/wechat/complaints",
        web::post().to(wechat_complaint_callback),
    )
    .route("/admin/complaints", web::get().to(list_complaints))
    .route("/admin/complaints/sync", web::post().to(sync_complaints))
    .route("/admin/complaints/{id}", web::get().to(complaint_detail))
    .route(
        "/admin/complaints/{id}/reply",
        web::post().to(reply_complaint),
    )
    .route(
        "/admin/complaints/{id}/complete",
        web::post().to(complete_complaint),
    );
}

/// WeChat Pay complaint notification (`COMPLAINT.CREATE`, `COMPLAINT.STATE_CHANGE`).
///
/// Verified exactly like payment notifications (`Wechatpay-Signature` over the raw body,
/// serial mode, 5-minute skew, AES-256-GCM resource). Only the complaint id is taken from
/// it: the complaint and its negotiation history are then read from the complaint API and
/// stored; `complaint.created` is emitted once per complaint however often it is
/// notified. 204 once stored; an unverifiable notification changes nothing (401/400),
/// a failed read answers 500 so WeChat resends.
#[utoipa::path(post, path = "/api/v1/callbacks/wechat/complaints", tag = "callbacks",
    request_body(content = String, description = "WeChat's signed, encrypted complaint notification", content_type = "application/json"),
    responses(
        (status = 204, description = "The complaint was read from WeChat and stored"),
        (status = 400, description = "Not a complaint notification", body = WechatCallbackFailure),
        (status = 401, description = "Signature verification failed", body = WechatCallbackFailure),
        (status = 404, description = "WeChat Pay is not configured", body = WechatCallbackFailure),
        (status = 500, description = "Transient failure; WeChat will resend", body = WechatCallbackFailure)))]
pub async fn wechat_complaint_callback(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let (headers, _) = headers_json(&req);
    let Some(client) = state.providers.wechat.clone() else {
        return wechat_fail(StatusCode::NOT_FOUND, "WeChat Pay is not configured");
    };
    let notice = match client.verify_complaint_notification(&headers, &body).await {
        Ok(n) => n,
        Err(e) => {
            return wechat_rejected(&state, &req, "complaint_notification", &headers, &body, e)
        }
    };
    match complaints::sync_one(&state, &notice.complaint_id).await {
        Ok(row) => {
            tracing::info!(complaint_id = %row.complaint_id, action = %notice.action_type, state = %row.state, "complaint notification applied");
            HttpResponse::NoContent().finish()
        }
        Err(e) => {
            tracing::error!(complaint_id = %notice.complaint_id, error = %e, "could not read a notified complaint; WeChat will resend");
            wechat_fail(
                StatusCode::INTERNAL_SERVER_ERROR,
                "temporary failure, please retry",
            )
        }
    }
}

/// The complaints inbox, newest first.
///
/// `time_left_secs` counts down to `response_deadline`: WeChat expects a first reply to a
/// `pending` complaint within 24 hours of `complaint_time` (negative once overdue; null
/// for complaints already answered or handled).
#[utoipa::path(get, path = "/api/v1/admin/complaints", tag = "admin",
    security(("bearer" = [])),
    params(ComplaintQuery),
    responses(
        (status = 200, description = "A page of complaints", body = ComplaintListResponse),
        (status = 400, description = "`invalid_query`", body = ErrorResponse),
        (status = 401, description = "Missing or invalid token", body = ErrorResponse),
        (status = 403, description = "Not an administrator", body = ErrorResponse)))]
pub async fn list_complaints(
    state: web::Data<AppState>,
    user: AuthUser,
    query: web::Query<ComplaintQuery>,
) -> AppResult<HttpResponse> {
    user.require_admin()?;
    Ok(HttpResponse::Ok().json(complaints::list(&state, &query).await?))
}

/// One complaint with its negotiation history (as last read from WeChat) and our order.
#[utoipa::path(get, path = "/api/v1/admin/complaints/{id}", tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "WeChat's complaint id")),
    responses(
        (status = 200, description = "The complaint", body = ComplaintDetail),
        (status = 401, description = "Missing or invalid token", body = ErrorResponse),
        (status = 403, description = "Not an administrator", body = ErrorResponse),
        (status = 404, description = "`not_found`", body = ErrorResponse)))]
pub async fn complaint_detail(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    user.require_admin()?;
    Ok(HttpResponse::Ok().json(complaints::detail(&state, &path).await?))
}

/// Pull the complaints of a window of China days (at most 30; default the last 30) from
/// WeChat and store them with their histories; new ones emit `complaint.created`.
#[utoipa::path(post, path = "/api/v1/admin/complaints/sync", tag = "admin",
    security(("bearer" = [])),
    request_body = ComplaintSyncRequest,
    responses(
        (status = 200, description = "What the sync saw and created", body = ComplaintSyncResponse),
        (status = 400, description = "`invalid_range` (more than 30 days, or `to` before `from`)", body = ErrorResponse),
        (status = 401, description = "Missing or invalid token", body = ErrorResponse),
        (status = 403, description = "Not an administrator", body = ErrorResponse),
        (status = 409, description = "`wechat_not_configured`", body = ErrorResponse),
        (status = 502, description = "`provider_unavailable`", body = ErrorResponse)))]
pub async fn sync_complaints(
    state: web::Data<AppState>,
    user: AuthUser,
    body: web::Json<ComplaintSyncRequest>,
) -> AppResult<HttpResponse> {
    user.require_admin()?;
    Ok(HttpResponse::Ok().json(complaints::sync_window(&state, &body).await?))
}

/// Reply to the buyer (1-200 characters), then read the complaint again from WeChat.
/// Recorded in the audit log (`complaint.reply`).
#[utoipa::path(post, path = "/api/v1/admin/complaints/{id}/reply", tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "WeChat's complaint id")),
    request_body = ComplaintReplyRequest,
    responses(
        (status = 200, description = "The complaint after the reply", body = ComplaintDetail),
        (status = 400, description = "`invalid_reply` (empty or longer than 200 characters), `invalid_body`", body = ErrorResponse),
        (status = 401, description = "Missing or invalid token", body = ErrorResponse),
        (status = 403, description = "Not an administrator", body = ErrorResponse),
        (status = 404, description = "`not_found`", body = ErrorResponse),
        (status = 409, description = "`complaint_processed`, `complaint_rejected` (WeChat refused), `wechat_not_configured`", body = ErrorResponse),
        (status = 502, description = "`provider_unavailable`", body = ErrorResponse)))]
pub async fn reply_complaint(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
    body: web::Json<ComplaintReplyRequest>,
) -> AppResult<HttpResponse> {
    let detail = complaints::reply(&state, &user, &path, &body.content).await?;
    Ok(HttpResponse::Ok().json(detail))
}

/// Tell WeChat the complaint is handled, then read it again (`processed`). Recorded in
/// the audit log (`complaint.complete`).
#[utoipa::path(post, path = "/api/v1/admin/complaints/{id}/complete", tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "WeChat's complaint id")),
    responses(
        (status = 200, description = "The complaint, handled", body = ComplaintDetail),
        (status = 401, description = "Missing or invalid token", body = ErrorResponse),
        (status = 403, description = "Not an administrator", body = ErrorResponse),
        (status = 404, description = "`not_found`", body = ErrorResponse),
        (status = 409, description = "`complaint_processed`, `complaint_rejected` (WeChat refused), `wechat_not_configured`", body = ErrorResponse),
        (status = 502, description = "`provider_unavailable`", body = ErrorResponse)))]
pub async fn complete_complaint(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let detail = complaints::complete(&state, &user, &path).await?;
    Ok(HttpResponse::Ok().json(detail))
}
