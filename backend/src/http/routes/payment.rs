//! The documented payment contract: create-order, order-status, cancel-order, the
//! order list, and the development "simulate pay" helper.

use actix_web::{web, HttpRequest, HttpResponse};
use api_types::error::ErrorResponse;
use api_types::payment::{
    CancelOrderRequest, CancelOrderResponse, CreateOrderRequest, CreateOrderResponse,
    OrderListResponse, OrderResponse, OrderStatusQuery, PageQuery,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::AuthUser;
use crate::error::{AppError, AppResult};
use crate::http::idempotency;
use crate::service::orders;
use crate::startup::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/payment/create-order", web::post().to(create_order))
        .route("/payment/order-status", web::get().to(order_status))
        .route("/payment/cancel-order", web::post().to(cancel_order))
        .route("/payment/orders", web::get().to(list_orders))
        .route("/dev/info", web::get().to(dev_info))
        .route("/dev/simulate-pay", web::post().to(simulate_pay));
}

/// Create an order for a catalog product and open the trade at the provider.
///
/// The price comes from the catalog, never from the client. `channel` defaults to
/// `native` (a QR code); `h5`, `jsapi` (with `openid`) and `app` are WeChat channels,
/// `page`, `wap` and `app` Alipay ones. If the provider fails, nothing is left behind
/// and the reply is 502 `provider_unavailable`.
#[utoipa::path(post, path = "/api/v1/payment/create-order", tag = "payment",
    security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Same key and body within 24 h replays the first answer")),
    request_body = CreateOrderRequest,
    responses(
        (status = 200, description = "Order created; show `qr_code_url` as a QR code", body = CreateOrderResponse),
        (status = 400, description = "`invalid_quantity`, `unsupported_channel`, `openid_required`, `product_type_mismatch`, `payment_method_unavailable`, `upgrade_not_available`, `invalid_idempotency_key`", body = ErrorResponse),
        (status = 401, description = "Missing or invalid token", body = ErrorResponse),
        (status = 404, description = "No such active product", body = ErrorResponse),
        (status = 409, description = "`out_of_stock`, `idempotency_key_in_progress`", body = ErrorResponse),
        (status = 422, description = "`idempotency_key_reused`: same key, different body", body = ErrorResponse),
        (status = 429, description = "`rate_limited`: more than `CREATE_ORDER_MAX_PER_USER` calls in `CREATE_ORDER_WINDOW_SECS`; retry after `Retry-After` seconds", body = ErrorResponse),
        (status = 502, description = "`provider_unavailable`: nothing was created", body = ErrorResponse)))]
pub async fn create_order(
    state: web::Data<AppState>,
    user: AuthUser,
    req: HttpRequest,
    body: web::Json<CreateOrderRequest>,
) -> AppResult<HttpResponse> {
    let ip = state.client_ip(&req).to_string();
    // Each call signs a provider request and writes an order: limited per user.
    state
        .limits
        .create_order
        .acquire(&user.user_id)
        .map_err(|retry_after_secs| AppError::RateLimited { retry_after_secs })?;
    let body = body.into_inner();
    idempotency::run(&state, &req, &user.user_id, "create-order", &body, || {
        orders::create_order(&state, &user, body.clone(), ip)
    })
    .await
}

/// Status of one of the caller's orders (admins see all; others get 404).
///
/// A read: it never waits for the provider. While someone polls a pending order (or holds
/// its event stream), the server checks it with the provider in the background, every few
/// seconds, so a lost notification never leaves the buyer waiting.
#[utoipa::path(get, path = "/api/v1/payment/order-status", tag = "payment",
    security(("bearer" = [])),
    params(OrderStatusQuery),
    responses(
        (status = 200, description = "The order", body = OrderResponse),
        (status = 400, description = "`invalid_query`", body = ErrorResponse),
        (status = 401, description = "Missing or invalid token", body = ErrorResponse),
        (status = 404, description = "No such order visible to the caller", body = ErrorResponse)))]
pub async fn order_status(
    state: web::Data<AppState>,
    user: AuthUser,
    query: web::Query<OrderStatusQuery>,
) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(orders::order_status(&state, &user, &query.order_no).await?))
}

/// Cancel a pending order. The trade is closed at the provider first; if the provider
/// reports it paid, the order becomes paid and the reply is 409 `order_already_paid`.
#[utoipa::path(post, path = "/api/v1/payment/cancel-order", tag = "payment",
    security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Same key and body within 24 h replays the first answer")),
    request_body = CancelOrderRequest,
    responses(
        (status = 200, description = "`{\"code\": 200, \"msg\": \"订单已取消\", \"data\": null}`", body = CancelOrderResponse),
        (status = 404, description = "No such order visible to the caller", body = ErrorResponse),
        (status = 409, description = "`order_already_paid`, `order_not_pending` or `idempotency_key_in_progress`", body = ErrorResponse),
        (status = 422, description = "`idempotency_key_reused`: same key, different body", body = ErrorResponse),
        (status = 502, description = "`provider_unavailable`: the order stays pending", body = ErrorResponse)))]
pub async fn cancel_order(
    state: web::Data<AppState>,
    user: AuthUser,
    req: HttpRequest,
    body: web::Json<CancelOrderRequest>,
) -> AppResult<HttpResponse> {
    let body = body.into_inner();
    idempotency::run(
        &state,
        &req,
        &user.user_id,
        "cancel-order",
        &body,
        || async {
            orders::cancel_order(&state, &user, &body.order_no).await?;
            Ok(CancelOrderResponse {
                code: 200,
                msg: "订单已取消".into(),
                data: None,
            })
        },
    )
    .await
}

/// The caller's orders, newest first.
#[utoipa::path(get, path = "/api/v1/payment/orders", tag = "payment",
    security(("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "A page of orders", body = OrderListResponse),
        (status = 400, description = "`invalid_query`", body = ErrorResponse),
        (status = 401, description = "Missing or invalid token", body = ErrorResponse)))]
pub async fn list_orders(
    state: web::Data<AppState>,
    user: AuthUser,
    query: web::Query<PageQuery>,
) -> AppResult<HttpResponse> {
    let (page, per_page) = crate::service::admin::paging(query.page, query.per_page)?;
    let (items, total) = orders::list_orders(&state, &user, page, per_page).await?;
    Ok(HttpResponse::Ok().json(OrderListResponse {
        items,
        page,
        per_page,
        total,
    }))
}

/// Development only: whether the provider emulator is available.
#[derive(Serialize, ToSchema)]
pub struct DevInfoResponse {
    pub emulator: bool,
    pub emulator_url: String,
}

/// Development only (404 in production): emulator availability for the demo UI.
#[utoipa::path(get, path = "/api/v1/dev/info", tag = "development",
    responses(
        (status = 200, description = "Emulator present", body = DevInfoResponse),
        (status = 404, description = "Not in development", body = ErrorResponse)))]
pub async fn dev_info(state: web::Data<AppState>) -> AppResult<HttpResponse> {
    let url = dev_emulator_url(&state)?;
    Ok(HttpResponse::Ok().json(DevInfoResponse {
        emulator: true,
        emulator_url: url,
    }))
}

/// The emulator's URL for the dev helpers: only in development (404 otherwise, even if
/// an emulator were somehow configured).
fn dev_emulator_url(state: &AppState) -> AppResult<String> {
    if !state.settings.is_development() {
        return Err(AppError::NotFound("route"));
    }
    state
        .emulator_url
        .clone()
        .ok_or(AppError::NotFound("route"))
}

/// Body of the simulate-pay helper.
#[derive(Deserialize, ToSchema)]
pub struct SimulatePayRequest {
    pub order_no: String,
}

/// Development only: act as the buyer who scans the QR code and pays, through the
/// emulator's control API. The order then goes paid by the normal notification path.
#[utoipa::path(post, path = "/api/v1/dev/simulate-pay", tag = "development",
    security(("bearer" = [])),
    request_body = SimulatePayRequest,
    responses(
        (status = 202, description = "The emulator accepted the payment; watch order-status"),
        (status = 404, description = "Not in development, or no such order", body = ErrorResponse),
        (status = 409, description = "`order_not_pending`", body = ErrorResponse)))]
pub async fn simulate_pay(
    state: web::Data<AppState>,
    user: AuthUser,
    body: web::Json<SimulatePayRequest>,
) -> AppResult<HttpResponse> {
    let base = dev_emulator_url(&state)?;
    let order = orders::visible_order(&state, &user, &body.order_no).await?;
    if order.status != api_types::payment::OrderStatus::Pending {
        return Err(AppError::conflict(
            "order_not_pending",
            "the order is not pending",
        ));
    }
    orders::pay_at_emulator(&base, &order.provider, &order.order_no).await?;
    Ok(HttpResponse::Accepted().finish())
}
