//! The server API for merchant apps: `Authorization: Bearer sk_live_...` (or `sk_test_...`).

use actix_web::{web, HttpRequest, HttpResponse};
use api_types::admin::RefundResponse;
use api_types::error::ErrorResponse;
use api_types::merchant::{
    MerchantOrder, MerchantOrderList, MerchantOrderQuery, MerchantOrderRequest,
    MerchantRefundRequest,
};

use crate::auth::extractor::MerchantApp;
use crate::error::AppResult;
use crate::http::idempotency;
use crate::service::merchant;
use crate::startup::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/merchant/orders", web::post().to(create_order))
        .route("/merchant/orders", web::get().to(list_orders))
        .route("/merchant/orders/{order_no}", web::get().to(get_order))
        .route(
            "/merchant/orders/{order_no}/cancel",
            web::post().to(cancel_order),
        )
        .route("/merchant/refunds", web::post().to(create_refund));
}

/// Create an order for your app (or get the one this `out_order_no` made before).
///
/// Exactly one of `amount_fen` (a custom amount, `subject` required) and `product_id` (a
/// catalog product). With `payment_method` the trade is opened at once and the provider
/// fields are in the answer; without it, send the buyer to `checkout_url` to choose.
/// The same `out_order_no` with the same body returns the same order.
#[utoipa::path(post, path = "/api/v1/merchant/orders", tag = "merchant",
    security(("api_key" = [])),
    request_body = MerchantOrderRequest,
    responses(
        (status = 200, description = "The order (new, or the one this out_order_no made before)", body = MerchantOrder),
        (status = 400, description = "`invalid_out_order_no`, `invalid_customer_ref`, `invalid_subject`, `invalid_metadata`, `invalid_return_url`, `invalid_expire_minutes`, `channel_without_method`, `invalid_quantity`, `amount_or_product`, `invalid_amount`, `unsupported_channel`, `openid_required`, `payment_method_unavailable`, `invalid_idempotency_key`", body = ErrorResponse),
        (status = 401, description = "Missing, invalid or revoked API key", body = ErrorResponse),
        (status = 403, description = "A test key on a server with real providers", body = ErrorResponse),
        (status = 404, description = "No such active product", body = ErrorResponse),
        (status = 409, description = "`out_order_no_conflict`: this out_order_no was used with another body; `out_of_stock`; `idempotency_key_in_progress`", body = ErrorResponse),
        (status = 422, description = "`idempotency_key_reused`", body = ErrorResponse),
        (status = 502, description = "`provider_unavailable`: the order stays open for the buyer's choice; retrying the same request tries the provider again", body = ErrorResponse)))]
pub async fn create_order(
    state: web::Data<AppState>,
    app: MerchantApp,
    req: HttpRequest,
    body: web::Json<MerchantOrderRequest>,
) -> AppResult<HttpResponse> {
    let ip = state.client_ip(&req).to_string();
    let body = body.into_inner();
    let app = app.0;
    idempotency::run(
        &state,
        &req,
        &app.user_id,
        "merchant-order",
        &body,
        || async {
            merchant::create(&state, &app, body.clone(), None, ip)
                .await
                .map(|(order, _)| order)
        },
    )
    .await
}

/// One of your app's orders (another app's: 404).
#[utoipa::path(get, path = "/api/v1/merchant/orders/{order_no}", tag = "merchant",
    security(("api_key" = [])),
    params(("order_no" = String, Path, description = "fenpay's order number")),
    responses(
        (status = 200, description = "The order", body = MerchantOrder),
        (status = 401, description = "Missing, invalid or revoked API key", body = ErrorResponse),
        (status = 404, description = "No such order of this app", body = ErrorResponse)))]
pub async fn get_order(
    state: web::Data<AppState>,
    app: MerchantApp,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(merchant::get(&state, &app.0, &path).await?))
}

/// Your app's orders, newest first: by `out_order_no`, `customer_ref`, `status`, creation time.
#[utoipa::path(get, path = "/api/v1/merchant/orders", tag = "merchant",
    security(("api_key" = [])),
    params(MerchantOrderQuery),
    responses(
        (status = 200, description = "A page of orders", body = MerchantOrderList),
        (status = 400, description = "`invalid_query`", body = ErrorResponse),
        (status = 401, description = "Missing, invalid or revoked API key", body = ErrorResponse)))]
pub async fn list_orders(
    state: web::Data<AppState>,
    app: MerchantApp,
    query: web::Query<MerchantOrderQuery>,
) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(merchant::list(&state, &app.0, query.into_inner()).await?))
}

/// Cancel one of your app's unpaid orders (closing the trade at the provider first).
#[utoipa::path(post, path = "/api/v1/merchant/orders/{order_no}/cancel", tag = "merchant",
    security(("api_key" = [])),
    params(("order_no" = String, Path, description = "fenpay's order number")),
    responses(
        (status = 200, description = "The order, cancelled (or as it was when already cancelled)", body = MerchantOrder),
        (status = 401, description = "Missing, invalid or revoked API key", body = ErrorResponse),
        (status = 404, description = "No such order of this app", body = ErrorResponse),
        (status = 409, description = "`order_already_paid`", body = ErrorResponse),
        (status = 502, description = "`provider_unavailable`: the order stays pending", body = ErrorResponse)))]
pub async fn cancel_order(
    state: web::Data<AppState>,
    app: MerchantApp,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(merchant::cancel(&state, &app.0, &path).await?))
}

/// Refund all or part of one of your app's paid orders.
#[utoipa::path(post, path = "/api/v1/merchant/refunds", tag = "merchant",
    security(("api_key" = [])),
    request_body = MerchantRefundRequest,
    responses(
        (status = 200, description = "The refund as it stands", body = RefundResponse),
        (status = 400, description = "`out_refund_no_required`, `invalid_refund_amount`, `invalid_refund_no`, `invalid_refund_reason`, `invalid_idempotency_key`", body = ErrorResponse),
        (status = 401, description = "Missing, invalid or revoked API key", body = ErrorResponse),
        (status = 404, description = "No such order of this app", body = ErrorResponse),
        (status = 409, description = "`order_not_paid`, `refund_no_conflict`, `refund_rejected`, `idempotency_key_in_progress`", body = ErrorResponse),
        (status = 422, description = "`idempotency_key_reused`", body = ErrorResponse),
        (status = 502, description = "`provider_unavailable`", body = ErrorResponse)))]
pub async fn create_refund(
    state: web::Data<AppState>,
    app: MerchantApp,
    req: HttpRequest,
    body: web::Json<MerchantRefundRequest>,
) -> AppResult<HttpResponse> {
    let body = body.into_inner();
    let app = app.0;
    let key = idempotency::key_of(&req)?;
    idempotency::run(&state, &req, &app.user_id, "merchant-refund", &body, || {
        merchant::refund(&state, &app, body.clone(), key.as_deref())
    })
    .await
}
