//! Live order status over server-sent events, and the single-order tokens that let a
//! browser's `EventSource` (which cannot send headers) open the stream.

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use api_types::admin::StreamTokenResponse;
use api_types::error::ErrorResponse;
use api_types::payment::OrderStatus;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use utoipa::IntoParams;

use crate::auth::jwt::JwtError;
use crate::auth::{extractor::authenticate, AuthUser};
use crate::db::orders as order_db;
use crate::error::{AppError, AppResult};
use crate::live::{SlotRefused, StreamSlot};
use crate::service::orders;
use crate::startup::AppState;

/// Stream tokens live this long (EventSource reconnects reuse the URL meanwhile).
pub const STREAM_TOKEN_TTL_SECS: i64 = 3600;
/// A comment line this often keeps proxies from closing an idle stream; the order is
/// re-read from the database at the same time (a safety net for missed signals).
const KEEPALIVE: Duration = Duration::from_secs(10);
/// The last frame of a stream that reached `STREAM_MAX_LIFETIME_SECS`: the browser's
/// `EventSource` opens it again after `retry` milliseconds (a new slot, a fresh read).
pub(crate) const RECONNECT: &[u8] =
    b"retry: 1000\nevent: reconnect\ndata: {\"reason\":\"max_lifetime\"}\n\n";
/// The last frame of a stream whose token was revoked (log out everywhere, a role change,
/// a deleted account): checked at every wake-up, so within `KEEPALIVE` of the revocation.
const REVOKED: &[u8] = b"event: revoked\ndata: {\"reason\":\"token revoked\"}\n\n";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/payment/orders/{order_no}/stream-token",
        web::post().to(stream_token),
    )
    .route("/payment/orders/{order_no}/events", web::get().to(events));
}

/// A token that opens this order's event stream only, for `EventSource`.
#[utoipa::path(post, path = "/api/v1/payment/orders/{order_no}/stream-token", tag = "payment",
    security(("bearer" = [])),
    params(("order_no" = String, Path, description = "Order number")),
    responses(
        (status = 200, description = "Open `url` with EventSource", body = StreamTokenResponse),
        (status = 401, description = "Missing or invalid token", body = ErrorResponse),
        (status = 404, description = "No such order visible to the caller", body = ErrorResponse)))]
pub async fn stream_token(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let order = orders::visible_order(&state, &user, &path).await?;
    let (token, exp) = state
        .jwt
        .issue_stream(
            &user.user_id,
            user.role,
            user.token_version,
            &order.order_no,
            STREAM_TOKEN_TTL_SECS,
        )
        .map_err(AppError::internal)?;
    Ok(HttpResponse::Ok().json(StreamTokenResponse {
        url: format!(
            "/api/v1/payment/orders/{}/events?token={token}",
            order.order_no
        ),
        token,
        expires_at: chrono::DateTime::from_timestamp(exp, 0).unwrap_or_default(),
    }))
}

/// `?token=` for EventSource.
#[derive(Deserialize, IntoParams)]
pub struct StreamQuery {
    /// From `stream-token`; alternatively send `Authorization: Bearer`.
    pub token: Option<String>,
}

/// Server-sent events: `event: status` with the order (an `OrderResponse`) now and at
/// every change, until it is paid, cancelled or refunded. Authenticate with
/// `Authorization: Bearer <JWT>` or `?token=` from `stream-token`. Polling order-status
/// remains supported.
///
/// Streams are capped per user (`STREAM_MAX_PER_USER`) and per server
/// (`STREAM_MAX_TOTAL`): past either, 429 `too_many_streams`. A stream lasts at most
/// `STREAM_MAX_LIFETIME_SECS`, then ends with `event: reconnect` (and `retry: 1000`):
/// `EventSource` reconnects by itself.
#[utoipa::path(get, path = "/api/v1/payment/orders/{order_no}/events", tag = "payment",
    params(("order_no" = String, Path, description = "Order number"), StreamQuery),
    responses(
        (status = 200, description = "`text/event-stream`: `event: status`, `data: <OrderResponse JSON>`", body = crate::http::openapi::OrderStatusEvent, content_type = "text/event-stream"),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorResponse),
        (status = 404, description = "No such order visible to the caller", body = ErrorResponse),
        (status = 429, description = "`too_many_streams`: this user or this server holds the most streams allowed; retry after `Retry-After` seconds", body = ErrorResponse)))]
pub async fn events(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<StreamQuery>,
) -> AppResult<HttpResponse> {
    let order_no = path.into_inner();
    let user = match (&query.token, req.headers().contains_key("authorization")) {
        (Some(token), false) => {
            let claims = state
                .jwt
                .verify_stream(token, &order_no)
                .map_err(|e| match e {
                    JwtError::Expired => AppError::Unauthorized("stream token expired".into()),
                    JwtError::Invalid => AppError::Unauthorized("invalid stream token".into()),
                })?;
            // A stream token dies with the account's other tokens.
            let role = state
                .sessions
                .check(&state.db, &claims.sub, claims.ver)
                .await?;
            AuthUser {
                user_id: claims.sub,
                role,
                token_version: claims.ver,
            }
        }
        _ => authenticate(&req).await?,
    };
    // Held by the stream: dropped (the place given back) when it ends or the client goes.
    let slot = state.streams.open(&user.user_id).map_err(|why| {
        let message = match why {
            SlotRefused::User => "too many live streams open for this account",
            SlotRefused::Total => "too many live streams open on this server",
        };
        AppError::TooMany {
            code: "too_many_streams",
            message: message.into(),
            retry_after_secs: 5,
        }
    })?;
    let lifetime = Duration::from_secs(state.settings.limits.stream_max_lifetime_secs);
    // Subscribe before reading, so no change between the read and the stream is missed.
    let rx = state.hub.subscribe();
    let first = orders::visible_order(&state, &user, &order_no).await?;
    orders::watch_if_pending(&state, &first);
    let stream = futures_util::stream::unfold(
        Stream {
            state: state.clone(),
            rx,
            order_no,
            last: None,
            pending_first: Some(first),
            done: false,
            user_id: user.user_id.clone(),
            token_version: user.token_version,
            _open: crate::metrics::StreamGuard::open(),
            ends_at: tokio::time::Instant::now() + lifetime,
            _slot: slot,
        },
        next_chunk,
    );
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(stream))
}

struct Stream {
    state: web::Data<AppState>,
    rx: tokio::sync::broadcast::Receiver<crate::db::events::EventSignal>,
    order_no: String,
    /// (status, updated_at) last sent.
    last: Option<(OrderStatus, chrono::NaiveDateTime)>,
    pending_first: Option<order_db::OrderRow>,
    done: bool,
    /// Whose token opened it, and its version: the stream ends when it is revoked.
    user_id: String,
    token_version: i64,
    /// Counted in `fenpay_sse_streams_open` while the stream lives.
    _open: crate::metrics::StreamGuard,
    /// `STREAM_MAX_LIFETIME_SECS` after it opened.
    ends_at: tokio::time::Instant,
    _slot: StreamSlot,
}

/// The last frame of a stream the server closes because it is shutting down: clients
/// reconnect (EventSource does by itself, after `retry` ms) to another replica or later.
pub(crate) const SHUTDOWN_FRAME: &[u8] =
    b"event: shutdown\nretry: 2000\ndata: {\"reason\":\"server shutting down\"}\n\n";

fn frame(row: &order_db::OrderRow) -> web::Bytes {
    let json = serde_json::to_string(&orders::to_response(row)).unwrap_or_default();
    web::Bytes::from(format!("event: status\ndata: {json}\n\n"))
}

/// The next bytes of the stream: a status frame when the order changed, a keepalive
/// comment when idle; `None` after a terminal status has been sent.
async fn next_chunk(mut s: Stream) -> Option<(Result<web::Bytes, actix_web::Error>, Stream)> {
    if s.done {
        return None;
    }
    if let Some(row) = s.pending_first.take() {
        return Some((Ok(emit(&mut s, &row)), s));
    }
    loop {
        let left = s
            .ends_at
            .saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            s.done = true;
            return Some((Ok(web::Bytes::from_static(RECONNECT)), s));
        }
        let woke = tokio::select! {
            woke = tokio::time::timeout(KEEPALIVE.min(left), s.rx.recv()) => Some(woke),
            _ = s.state.shutdown.triggered() => None,
        };
        let Some(woke) = woke else {
            // The server is shutting down: say so and end the stream.
            s.done = true;
            return Some((Ok(web::Bytes::from_static(SHUTDOWN_FRAME)), s));
        };
        let idle = woke.is_err();
        let reload = match woke {
            Err(_) if tokio::time::Instant::now() >= s.ends_at => continue,
            Ok(Ok(sig)) => sig.order_no.as_deref() == Some(s.order_no.as_str()),
            // Missed some signals: re-read to be sure.
            Ok(Err(RecvError::Lagged(_))) => true,
            Ok(Err(RecvError::Closed)) => return None,
            Err(_) => true,
        };
        if !reload {
            continue;
        }
        // Still the account's token? (From the token cache: no read per stream.)
        if let Err(e) = s
            .state
            .sessions
            .check(&s.state.db, &s.user_id, s.token_version)
            .await
        {
            if matches!(e, crate::error::AppError::Unauthorized(_)) {
                s.done = true;
                return Some((Ok(web::Bytes::from_static(REVOKED)), s));
            }
        }
        // From the order cache when it can (kept honest by every writer): ten thousand idle
        // streams re-read their orders every keepalive.
        let row = match order_db::find_cached(&s.state.db, &s.order_no).await {
            Ok(Some(row)) => row,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(error = %e, "event stream cannot read the order");
                continue;
            }
        };
        // An open stream is someone watching: keep the watcher checking the order.
        orders::watch_if_pending(&s.state, &row);
        let key = (row.status, row.updated_at);
        if s.last.as_ref() != Some(&key) {
            return Some((Ok(emit(&mut s, &row)), s));
        }
        if idle {
            return Some((Ok(web::Bytes::from_static(b": keepalive\n\n")), s));
        }
    }
}

fn emit(s: &mut Stream, row: &order_db::OrderRow) -> web::Bytes {
    s.last = Some((row.status, row.updated_at));
    s.done = row.status != OrderStatus::Pending;
    frame(row)
}
