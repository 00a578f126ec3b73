//! The hosted checkout page's public API (`/api/v1/checkout/{order_no}/...?sig=`): no
//! login; the link's `sig` stands for the right to see and pay the order.

use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use api_types::error::ErrorResponse;
use api_types::merchant::{CheckoutPayRequest, CheckoutView};
use api_types::payment::OrderStatus;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use utoipa::IntoParams;

use crate::error::{AppError, AppResult};
use crate::live::{SlotRefused, StreamSlot};
use crate::service::checkout;
use crate::startup::AppState;

/// A comment line this often keeps proxies from closing an idle stream; the order is read
/// again at the same time (choices and expiry send no signal).
const KEEPALIVE: Duration = Duration::from_secs(5);

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/checkout/{order_no}", web::get().to(get_checkout))
        .route("/checkout/{order_no}/pay", web::post().to(pay))
        .route("/checkout/{order_no}/events", web::get().to(events))
        .route("/checkout/{order_no}/return", web::get().to(return_to_app))
        .route(
            "/checkout/{order_no}/wechat-oauth",
            web::get().to(wechat_oauth),
        )
        .route(
            "/checkout/{order_no}/wechat-oauth/callback",
            web::get().to(wechat_oauth_callback),
        )
        .route(
            "/checkout/{order_no}/simulate-pay",
            web::post().to(simulate_pay),
        );
}

/// The link's signature.
#[derive(Deserialize, IntoParams)]
pub struct SigQuery {
    /// The `sig` of the order's `checkout_url`; missing or wrong: 404.
    pub sig: Option<String>,
}

/// What the checkout page shows: amount, subject, the app's name, the status, and the
/// payment targets once a method is chosen.
#[utoipa::path(get, path = "/api/v1/checkout/{order_no}", tag = "checkout",
    params(("order_no" = String, Path, description = "Order number"), SigQuery),
    responses(
        (status = 200, description = "The order as the page shows it", body = CheckoutView),
        (status = 404, description = "No such order, or a missing or wrong `sig`", body = ErrorResponse)))]
pub async fn get_checkout(
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<SigQuery>,
) -> AppResult<HttpResponse> {
    checkout::check_link(&state, &path, query.sig.as_deref())?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(checkout::view(&state, &path).await?))
}

/// The buyer's payment method: the order's trade is opened at the provider. The method
/// chosen already answers the order as it is; another one is 409 `method_already_chosen`;
/// a paid, cancelled or expired order is 409 `order_not_pending`. WeChat JSAPI (inside
/// WeChat) goes through `wechat-oauth` instead.
#[utoipa::path(post, path = "/api/v1/checkout/{order_no}/pay", tag = "checkout",
    params(("order_no" = String, Path, description = "Order number"), SigQuery),
    request_body = CheckoutPayRequest,
    responses(
        (status = 200, description = "The order with its payment targets", body = CheckoutView),
        (status = 400, description = "`unsupported_channel`, `openid_required`, `payment_method_unavailable`, `method_not_offered` (an epay order offers only the type it was created with)", body = ErrorResponse),
        (status = 404, description = "No such order, or a missing or wrong `sig`", body = ErrorResponse),
        (status = 409, description = "`method_already_chosen`, `order_not_pending`, `out_of_stock`", body = ErrorResponse),
        (status = 502, description = "The provider did not answer; retry", body = ErrorResponse)))]
pub async fn pay(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<SigQuery>,
    body: web::Json<CheckoutPayRequest>,
) -> AppResult<HttpResponse> {
    checkout::check_link(&state, &path, query.sig.as_deref())?;
    let ip = state.client_ip(&req).to_string();
    let view = checkout::pay(&state, &path, body.into_inner(), ip).await?;
    Ok(HttpResponse::Ok().json(view))
}

/// Back to the app: 302 to the order's `return_url` with `order_no`, `out_order_no`,
/// `status` and `sig` (HMAC-SHA256 under the app's webhook secret). Never proof of
/// payment: the webhook and the server API are.
#[utoipa::path(get, path = "/api/v1/checkout/{order_no}/return", tag = "checkout",
    params(("order_no" = String, Path, description = "Order number"), SigQuery),
    responses(
        (status = 302, description = "`Location`: the app's return URL with the signed result"),
        (status = 404, description = "No such order, no `return_url`, or a missing or wrong `sig`", body = ErrorResponse)))]
pub async fn return_to_app(
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<SigQuery>,
) -> AppResult<HttpResponse> {
    checkout::check_link(&state, &path, query.sig.as_deref())?;
    let url = checkout::return_redirect(&state, &path).await?;
    Ok(found(&url))
}

fn found(url: &str) -> HttpResponse {
    HttpResponse::Found()
        .insert_header((header::LOCATION, url))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// Inside WeChat: 302 to WeChat's web authorisation (`snsapi_base`, no prompt), which
/// comes back to `wechat-oauth/callback` with a code for the payer's openid.
#[utoipa::path(get, path = "/api/v1/checkout/{order_no}/wechat-oauth", tag = "checkout",
    params(("order_no" = String, Path, description = "Order number"), SigQuery),
    responses(
        (status = 302, description = "`Location`: `{WECHAT_OAUTH_URL}/connect/oauth2/authorize?...#wechat_redirect`"),
        (status = 400, description = "`wechat_oauth_unavailable`: no AppSecret or WeChat Pay on this server", body = ErrorResponse),
        (status = 404, description = "No such order, or a missing or wrong `sig`", body = ErrorResponse),
        (status = 409, description = "`order_not_pending`", body = ErrorResponse)))]
pub async fn wechat_oauth(
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<SigQuery>,
) -> AppResult<HttpResponse> {
    checkout::check_link(&state, &path, query.sig.as_deref())?;
    Ok(found(&checkout::oauth_redirect(&state, &path).await?))
}

/// WeChat's redirect back.
#[derive(Deserialize, IntoParams)]
pub struct OauthCallbackQuery {
    pub sig: Option<String>,
    /// WeChat's one-time code.
    pub code: Option<String>,
    /// The `state` this server sent (bound to the order, expires).
    pub state: Option<String>,
}

/// WeChat's redirect back from the web authorisation: the code is exchanged for the
/// openid, the order is paid through WeChat JSAPI, and the buyer goes back to the page
/// (302 to `/pay/{order_no}?sig=`, with `wechat_error=<code>` when something failed).
#[utoipa::path(get, path = "/api/v1/checkout/{order_no}/wechat-oauth/callback", tag = "checkout",
    params(("order_no" = String, Path, description = "Order number"), OauthCallbackQuery),
    responses(
        (status = 302, description = "`Location`: the checkout page"),
        (status = 404, description = "No such order, or a missing or wrong `sig`", body = ErrorResponse)))]
pub async fn wechat_oauth_callback(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<OauthCallbackQuery>,
) -> AppResult<HttpResponse> {
    checkout::check_link(&state, &path, query.sig.as_deref())?;
    let ip = state.client_ip(&req).to_string();
    let to = checkout::oauth_callback(
        &state,
        &path,
        query.code.as_deref(),
        query.state.as_deref(),
        ip,
    )
    .await;
    Ok(found(&to))
}

/// Development only (404 in production): the emulator pays the order's trade, as a buyer
/// who scanned the code would.
#[utoipa::path(post, path = "/api/v1/checkout/{order_no}/simulate-pay", tag = "development",
    params(("order_no" = String, Path, description = "Order number"), SigQuery),
    responses(
        (status = 202, description = "The emulator took the payment; watch the status"),
        (status = 404, description = "Not in development, no such order, or a wrong `sig`", body = ErrorResponse),
        (status = 409, description = "`no_method_chosen`, `order_not_pending`", body = ErrorResponse)))]
pub async fn simulate_pay(
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<SigQuery>,
) -> AppResult<HttpResponse> {
    checkout::check_link(&state, &path, query.sig.as_deref())?;
    checkout::simulate_pay(&state, &path).await?;
    Ok(HttpResponse::Accepted().finish())
}

/// Server-sent events: `event: status` with the `CheckoutView` now and at every change
/// (a method chosen, paid, cancelled, expired), until the order is no longer pending.
/// Streams count against `STREAM_MAX_PER_USER` per order and `STREAM_MAX_TOTAL` (429
/// `too_many_streams`); after `STREAM_MAX_LIFETIME_SECS` the stream ends with
/// `event: reconnect` and `EventSource` opens it again. Polling the GET works as well.
#[utoipa::path(get, path = "/api/v1/checkout/{order_no}/events", tag = "checkout",
    params(("order_no" = String, Path, description = "Order number"), SigQuery),
    responses(
        (status = 200, description = "`text/event-stream`: `event: status`, `data: <CheckoutView JSON>`", body = CheckoutView, content_type = "text/event-stream"),
        (status = 404, description = "No such order, or a missing or wrong `sig`", body = ErrorResponse),
        (status = 429, description = "`too_many_streams`", body = ErrorResponse)))]
pub async fn events(
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<SigQuery>,
) -> AppResult<HttpResponse> {
    let order_no = path.into_inner();
    checkout::check_link(&state, &order_no, query.sig.as_deref())?;
    let slot = state
        .streams
        .open(&format!("checkout:{order_no}"))
        .map_err(|why| AppError::TooMany {
            code: "too_many_streams",
            message: match why {
                SlotRefused::User => "too many live streams open for this order",
                SlotRefused::Total => "too many live streams open on this server",
            }
            .into(),
            retry_after_secs: 5,
        })?;
    let lifetime = Duration::from_secs(state.settings.limits.stream_max_lifetime_secs);
    // Subscribe before reading, so no change between the read and the stream is missed.
    let rx = state.hub.subscribe();
    let first = checkout::view(&state, &order_no).await?;
    checkout::watch(&state, &order_no).await;
    let stream = futures_util::stream::unfold(
        Stream {
            state: state.clone(),
            rx,
            order_no,
            last: None,
            first: Some(first),
            done: false,
            ends_at: tokio::time::Instant::now() + lifetime,
            _open: crate::metrics::StreamGuard::open(),
            _slot: slot,
        },
        next_chunk,
    );
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(stream))
}

struct Stream {
    state: web::Data<AppState>,
    rx: tokio::sync::broadcast::Receiver<crate::db::events::EventSignal>,
    order_no: String,
    /// The view last sent.
    last: Option<CheckoutView>,
    first: Option<CheckoutView>,
    done: bool,
    ends_at: tokio::time::Instant,
    _open: crate::metrics::StreamGuard,
    _slot: StreamSlot,
}

fn emit(s: &mut Stream, view: CheckoutView) -> web::Bytes {
    s.done = view.status != OrderStatus::Pending;
    let json = serde_json::to_string(&view).unwrap_or_default();
    s.last = Some(view);
    web::Bytes::from(format!("event: status\ndata: {json}\n\n"))
}

async fn next_chunk(mut s: Stream) -> Option<(Result<web::Bytes, actix_web::Error>, Stream)> {
    if s.done {
        return None;
    }
    if let Some(view) = s.first.take() {
        return Some((Ok(emit(&mut s, view)), s));
    }
    loop {
        let left = s
            .ends_at
            .saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            s.done = true;
            return Some((Ok(web::Bytes::from_static(super::events::RECONNECT)), s));
        }
        let woke = tokio::select! {
            woke = tokio::time::timeout(KEEPALIVE.min(left), s.rx.recv()) => Some(woke),
            _ = s.state.shutdown.triggered() => None,
        };
        let Some(woke) = woke else {
            s.done = true;
            return Some((
                Ok(web::Bytes::from_static(super::events::SHUTDOWN_FRAME)),
                s,
            ));
        };
        let idle = woke.is_err();
        let reload = match woke {
            Ok(Ok(sig)) => sig.order_no.as_deref() == Some(s.order_no.as_str()),
            Ok(Err(RecvError::Lagged(_))) => true,
            Ok(Err(RecvError::Closed)) => return None,
            Err(_) => true,
        };
        if !reload {
            continue;
        }
        let view = match checkout::view(&s.state, &s.order_no).await {
            Ok(v) => v,
            Err(AppError::NotFound(_)) => return None,
            Err(e) => {
                tracing::warn!(error = %e, "checkout stream cannot read the order");
                continue;
            }
        };
        checkout::watch(&s.state, &s.order_no).await;
        if s.last.as_ref() != Some(&view) {
            return Some((Ok(emit(&mut s, view)), s));
        }
        if idle {
            return Some((Ok(web::Bytes::from_static(b": keepalive\n\n")), s));
        }
    }
}
