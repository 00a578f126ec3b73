//! Operator routes (role `admin`): orders, order detail with payment records, refunds,
//! daily totals, webhook deliveries and resend.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use api_types::admin::{
    AdminOrderDetail, AdminOrderListResponse, AdminOrderQuery, DeliveryListResponse, DeliveryQuery,
    LedgerExportQuery, LedgerVerifyResponse, OrderExportQuery, RefundExportQuery, RefundRequest,
    RefundResponse, StatsQuery, StatsResponse, WebhookDelivery,
};
use api_types::error::ErrorResponse;
use api_types::reconciliation::{
    ReconciliationDetail, ReconciliationList, ReconciliationQuery, RunReconciliationRequest,
    RunReconciliationResponse,
};

use crate::auth::AuthUser;
use crate::error::AppResult;
use crate::http::idempotency;
use crate::service::audit::{self, Actor, Change, Target};
use crate::service::exports::Export;
use crate::service::{admin, exports, reconciliation, refunds};
use crate::startup::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/orders", web::get().to(list_orders))
        .route("/admin/orders/{order_no}", web::get().to(order_detail))
        .route("/admin/refunds", web::post().to(create_refund))
        .route("/admin/stats", web::get().to(stats))
        .route("/admin/exports/orders.csv", web::get().to(export_orders))
        .route("/admin/exports/refunds.csv", web::get().to(export_refunds))
        .route("/admin/exports/ledger.csv", web::get().to(export_ledger))
        .route("/admin/ledger/verify", web::get().to(verify_ledger))
        .route("/admin/webhooks/deliveries", web::get().to(list_deliveries))
        .route(
            "/admin/webhooks/deliveries/{id}/resend",
            web::post().to(resend_delivery),
        )
        .route(
            "/admin/reconciliations",
            web::get().to(list_reconciliations),
        )
        .route("/admin/reconciliations", web::post().to(run_reconciliation))
        .route(
            "/admin/reconciliations/{id}",
            web::get().to(reconciliation_detail),
        );
}

/// All orders, newest first, with filters.
#[utoipa::path(get, path = "/api/v1/admin/orders", tag = "admin",
    security(("bearer" = [])),
    params(AdminOrderQuery),
    responses(
        (status = 200, description = "A page of orders", body = AdminOrderListResponse),
        (status = 400, description = "`invalid_query`", body = ErrorResponse),
        (status = 401, description = "Missing or invalid token", body = ErrorResponse),
        (status = 403, description = "Not an administrator", body = ErrorResponse)))]
pub async fn list_orders(
    state: web::Data<AppState>,
    user: AuthUser,
    query: web::Query<AdminOrderQuery>,
) -> AppResult<HttpResponse> {
    user.require_admin()?;
    let (items, page, per_page, total) = admin::list_orders(&state, &query).await?;
    Ok(HttpResponse::Ok().json(AdminOrderListResponse {
        items,
        page,
        per_page,
        total,
    }))
}

/// Check every account's points and membership against the sum of its ledger entries.
///
/// `mismatches` is empty when the books agree; `fenpay verify-ledger` runs the same check
/// from the command line and exits non-zero on a difference.
#[utoipa::path(get, path = "/api/v1/admin/ledger/verify", tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Accounts checked and any differences", body = LedgerVerifyResponse),
        (status = 401, description = "Missing or invalid token", body = ErrorResponse),
        (status = 403, description = "Not an administrator", body = ErrorResponse)))]
pub async fn verify_ledger(state: web::Data<AppState>, user: AuthUser) -> AppResult<HttpResponse> {
    user.require_admin()?;
    Ok(HttpResponse::Ok().json(admin::verify_ledger(&state).await?))
}

/// One order with its payment records (every provider call and notification), refunds
/// and outbound events with their deliveries.
#[utoipa::path(get, path = "/api/v1/admin/orders/{order_no}", tag = "admin",
    security(("bearer" = [])),
    params(("order_no" = String, Path, description = "Order number")),
    responses(
        (status = 200, description = "The order and its history", body = AdminOrderDetail),
        (status = 403, description = "Not an administrator", body = ErrorResponse),
        (status = 404, description = "No such order", body = ErrorResponse)))]
pub async fn order_detail(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    user.require_admin()?;
    Ok(HttpResponse::Ok().json(admin::order_detail(&state, &path).await?))
}

/// Refund a paid order, fully (omit `amount_fen`) or partly.
///
/// The same `out_refund_no` never refunds twice; send an `Idempotency-Key` header too so
/// a retried request replays the first answer. WeChat refunds answer `processing` and
/// finish asynchronously (notification or reconciler); Alipay answers `succeeded`.
#[utoipa::path(post, path = "/api/v1/admin/refunds", tag = "admin",
    security(("bearer" = [])),
    request_body = RefundRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the stored answer for 24 h")),
    responses(
        (status = 200, description = "The refund as it stands", body = RefundResponse),
        (status = 400, description = "`invalid_refund_amount`, `invalid_refund_no`, `invalid_refund_reason`, `invalid_idempotency_key`", body = ErrorResponse),
        (status = 403, description = "Not an administrator", body = ErrorResponse),
        (status = 404, description = "No such order", body = ErrorResponse),
        (status = 409, description = "`order_not_paid`, `refund_no_conflict`, `refund_rejected`, `idempotency_key_in_progress`", body = ErrorResponse),
        (status = 422, description = "`idempotency_key_reused`", body = ErrorResponse),
        (status = 502, description = "`provider_unavailable`", body = ErrorResponse)))]
pub async fn create_refund(
    state: web::Data<AppState>,
    user: AuthUser,
    req: HttpRequest,
    body: web::Json<RefundRequest>,
) -> AppResult<HttpResponse> {
    let actor = Actor::of(&state, &user).await?;
    let body = body.into_inner();
    let key = idempotency::key_of(&req)?;
    idempotency::run(&state, &req, &user.user_id, "refunds", &body, || async {
        let refund =
            refunds::create_refund(&state, &user.user_id, body.clone(), key.as_deref()).await?;
        audit::record(
            &state,
            &actor,
            "refund.create",
            Target("refund", &refund.out_refund_no),
            Change::new(None::<()>, Some(&refund)),
        )
        .await;
        Ok(refund)
    })
    .await
}

/// Paid totals per day and provider, by payment time; days are those of the business
/// time zone (`BUSINESS_TIMEZONE`, named in `timezone`); default the last 30 days.
#[utoipa::path(get, path = "/api/v1/admin/stats", tag = "admin",
    security(("bearer" = [])),
    params(StatsQuery),
    responses(
        (status = 200, description = "Daily totals", body = StatsResponse),
        (status = 400, description = "`invalid_query`", body = ErrorResponse),
        (status = 403, description = "Not an administrator", body = ErrorResponse)))]
pub async fn stats(
    state: web::Data<AppState>,
    user: AuthUser,
    query: web::Query<StatsQuery>,
) -> AppResult<HttpResponse> {
    user.require_admin()?;
    Ok(HttpResponse::Ok().json(admin::stats(&state, &query).await?))
}

fn csv_response<S>(export: Export<S>) -> HttpResponse
where
    S: futures_util::Stream<Item = Result<web::Bytes, crate::error::AppError>> + 'static,
{
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{}\"", export.filename),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .streaming(export.body)
}

/// Orders as CSV (UTF-8 with BOM), oldest first, streamed.
///
/// `from` / `to`: days `YYYY-MM-DD` in the business time zone (`to` included) or RFC 3339
/// instants (`to` excluded), by creation time. Amounts in fen and in yuan (exact, two
/// decimals); times in the business time zone with their offset. Text cells starting
/// with `=`, `+`, `-`, `@`, tab or CR get a leading `'` (formula-injection guard).
#[utoipa::path(get, path = "/api/v1/admin/exports/orders.csv", tag = "admin",
    security(("bearer" = [])),
    params(OrderExportQuery),
    responses(
        (status = 200, description = "The orders", content_type = "text/csv; charset=utf-8", body = String),
        (status = 400, description = "`invalid_date`, `invalid_query`", body = ErrorResponse),
        (status = 401, description = "Missing or invalid token", body = ErrorResponse),
        (status = 403, description = "Not an administrator", body = ErrorResponse)))]
pub async fn export_orders(
    state: web::Data<AppState>,
    user: AuthUser,
    query: web::Query<OrderExportQuery>,
) -> AppResult<HttpResponse> {
    user.require_admin()?;
    Ok(csv_response(exports::orders(state, &query)?))
}

/// Refunds as CSV, oldest first, streamed; `from` / `to` by the refund's creation time,
/// `user` the order's buyer. Same format as the orders export.
#[utoipa::path(get, path = "/api/v1/admin/exports/refunds.csv", tag = "admin",
    security(("bearer" = [])),
    params(RefundExportQuery),
    responses(
        (status = 200, description = "The refunds", content_type = "text/csv; charset=utf-8", body = String),
        (status = 400, description = "`invalid_date`, `invalid_query`", body = ErrorResponse),
        (status = 401, description = "Missing or invalid token", body = ErrorResponse),
        (status = 403, description = "Not an administrator", body = ErrorResponse)))]
pub async fn export_refunds(
    state: web::Data<AppState>,
    user: AuthUser,
    query: web::Query<RefundExportQuery>,
) -> AppResult<HttpResponse> {
    user.require_admin()?;
    Ok(csv_response(exports::refunds(state, &query)?))
}

/// The balance ledger as CSV, in entry order, streamed; `from` / `to` by entry time.
/// Same format as the orders export.
#[utoipa::path(get, path = "/api/v1/admin/exports/ledger.csv", tag = "admin",
    security(("bearer" = [])),
    params(LedgerExportQuery),
    responses(
        (status = 200, description = "The ledger entries", content_type = "text/csv; charset=utf-8", body = String),
        (status = 400, description = "`invalid_date`, `invalid_query`", body = ErrorResponse),
        (status = 401, description = "Missing or invalid token", body = ErrorResponse),
        (status = 403, description = "Not an administrator", body = ErrorResponse)))]
pub async fn export_ledger(
    state: web::Data<AppState>,
    user: AuthUser,
    query: web::Query<LedgerExportQuery>,
) -> AppResult<HttpResponse> {
    user.require_admin()?;
    Ok(csv_response(exports::ledger(state, &query)?))
}

/// Webhook deliveries, newest first (the delivery log: attempts, last status, next try).
#[utoipa::path(get, path = "/api/v1/admin/webhooks/deliveries", tag = "admin",
    security(("bearer" = [])),
    params(DeliveryQuery),
    responses(
        (status = 200, description = "A page of deliveries", body = DeliveryListResponse),
        (status = 403, description = "Not an administrator", body = ErrorResponse)))]
pub async fn list_deliveries(
    state: web::Data<AppState>,
    user: AuthUser,
    query: web::Query<DeliveryQuery>,
) -> AppResult<HttpResponse> {
    user.require_admin()?;
    let (items, page, per_page, total) = admin::list_deliveries(
        &state,
        query.status,
        query.order_no.as_deref(),
        query.page,
        query.per_page,
    )
    .await?;
    Ok(HttpResponse::Ok().json(DeliveryListResponse {
        items,
        page,
        per_page,
        total,
    }))
}

/// Send a delivery again now (e.g. after it failed for 24 h and the receiver is fixed).
#[utoipa::path(post, path = "/api/v1/admin/webhooks/deliveries/{id}/resend", tag = "admin",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Delivery id")),
    responses(
        (status = 200, description = "Queued again", body = WebhookDelivery),
        (status = 403, description = "Not an administrator", body = ErrorResponse),
        (status = 404, description = "No such delivery", body = ErrorResponse)))]
pub async fn resend_delivery(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<i64>,
) -> AppResult<HttpResponse> {
    let actor = Actor::of(&state, &user).await?;
    let id = path.into_inner();
    let resent = admin::resend(&state, id).await?;
    audit::record(
        &state,
        &actor,
        "delivery.resend",
        Target("delivery", &id.to_string()),
        Change::new(None::<()>, Some(&resent)),
    )
    .await;
    Ok(HttpResponse::Ok().json(resent))
}

/// Reconciliations of the providers' daily bills with orders and refunds, newest day
/// first (at most 200): status, totals and difference counts per provider and day.
#[utoipa::path(get, path = "/api/v1/admin/reconciliations", tag = "admin",
    security(("bearer" = [])),
    params(ReconciliationQuery),
    responses(
        (status = 200, description = "Runs, newest day first", body = ReconciliationList),
        (status = 400, description = "`invalid_query`", body = ErrorResponse),
        (status = 401, description = "Missing or invalid token", body = ErrorResponse),
        (status = 403, description = "Not an administrator", body = ErrorResponse)))]
pub async fn list_reconciliations(
    state: web::Data<AppState>,
    user: AuthUser,
    query: web::Query<ReconciliationQuery>,
) -> AppResult<HttpResponse> {
    user.require_admin()?;
    let q = query.into_inner();
    let items = reconciliation::list(&state, q.from, q.to, q.provider).await?;
    Ok(HttpResponse::Ok().json(ReconciliationList { items }))
}

/// One run with its items, differences first (`kind` is a stable code: `matched`,
/// `missing_here`, `missing_at_provider`, `amount_mismatch`, `status_mismatch`,
/// `refund_missing_here`, `refund_missing_at_provider`, `refund_amount_mismatch`,
/// `unknown_order`, `duplicate_in_bill`, `bill_totals_mismatch`).
#[utoipa::path(get, path = "/api/v1/admin/reconciliations/{id}", tag = "admin",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Reconciliation id")),
    responses(
        (status = 200, description = "The run and its items", body = ReconciliationDetail),
        (status = 401, description = "Missing or invalid token", body = ErrorResponse),
        (status = 403, description = "Not an administrator", body = ErrorResponse),
        (status = 404, description = "No such reconciliation", body = ErrorResponse)))]
pub async fn reconciliation_detail(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<i64>,
) -> AppResult<HttpResponse> {
    user.require_admin()?;
    let detail = reconciliation::detail(&state, path.into_inner())
        .await?
        .ok_or(crate::error::AppError::NotFound("reconciliation"))?;
    Ok(HttpResponse::Ok().json(detail))
}

/// Reconcile one China-time day now (one provider, or every configured one): download
/// the bill, match it with orders and refunds, apply verified payments we lack, store
/// the result (replacing an earlier run of that day). A bill not ready yet answers 200
/// with the run `not_ready`; the daily job retries it.
#[utoipa::path(post, path = "/api/v1/admin/reconciliations", tag = "admin",
    security(("bearer" = [])),
    request_body = RunReconciliationRequest,
    responses(
        (status = 200, description = "The runs as they ended", body = RunReconciliationResponse),
        (status = 400, description = "`invalid_date` (a day not over yet in China), `payment_method_unavailable`", body = ErrorResponse),
        (status = 401, description = "Missing or invalid token", body = ErrorResponse),
        (status = 403, description = "Not an administrator", body = ErrorResponse),
        (status = 409, description = "`reconciliation_running`", body = ErrorResponse)))]
pub async fn run_reconciliation(
    state: web::Data<AppState>,
    user: AuthUser,
    body: web::Json<RunReconciliationRequest>,
) -> AppResult<HttpResponse> {
    user.require_admin()?;
    let body = body.into_inner();
    let today = crate::domain::reconciliation::china_day_of(chrono::Utc::now());
    if body.date >= today {
        return Err(crate::error::AppError::bad_request(
            "invalid_date",
            "the day is not over yet in China time; its bills do not exist yet",
        ));
    }
    let methods = match body.provider {
        Some(m) => vec![m],
        None => reconciliation::configured(&state),
    };
    let mut runs = Vec::new();
    for m in methods {
        if let Some(run) =
            reconciliation::run_day(&state, m, body.date, reconciliation::Trigger::Hand).await?
        {
            runs.push(run);
        }
    }
    Ok(HttpResponse::Ok().json(RunReconciliationResponse { runs }))
}
