//! `Idempotency-Key` for create-order, cancel-order and refunds: the same key with the same
//! body replays the stored response for 24 hours; the same key with a different body is
//! 422 `idempotency_key_reused`; while the first request runs, 409
//! `idempotency_key_in_progress`. 5xx answers are not stored, so they can be retried.

use std::future::Future;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::db::idempotency::{self as store, KeyRow};
use crate::db::{self};
use crate::error::{AppError, AppResult};
use crate::startup::AppState;

pub const HEADER: &str = "idempotency-key";
/// How long a stored response is replayed.
pub const TTL_HOURS: i64 = 24;

/// The request's `Idempotency-Key`, if any (400 `invalid_idempotency_key` when malformed).
pub fn key_of(req: &HttpRequest) -> AppResult<Option<String>> {
    let Some(value) = req.headers().get(HEADER) else {
        return Ok(None);
    };
    let key = value.to_str().unwrap_or("");
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(AppError::bad_request(
            "invalid_idempotency_key",
            "Idempotency-Key must be 1-255 visible ASCII characters",
        ));
    }
    Ok(Some(key.to_string()))
}

fn to_http(status: StatusCode, body: String, replayed: bool) -> HttpResponse {
    let mut b = HttpResponse::build(status);
    b.content_type("application/json");
    if replayed {
        b.insert_header(("idempotent-replayed", "true"));
    }
    b.body(body)
}

/// Run `handler` under the request's `Idempotency-Key`, if it has one.
pub async fn run<B, T, F, Fut>(
    state: &AppState,
    req: &HttpRequest,
    user_id: &str,
    route: &'static str,
    body: &B,
    handler: F,
) -> AppResult<HttpResponse>
where
    B: Serialize,
    T: Serialize,
    F: FnOnce() -> Fut,
    Fut: Future<Output = AppResult<T>>,
{
    let Some(key) = key_of(req)? else {
        return Ok(HttpResponse::Ok().json(handler().await?));
    };
    let body_json = serde_json::to_vec(body).map_err(AppError::internal)?;
    let hash = hex::encode(Sha256::digest(
        [route.as_bytes(), b"\n", &body_json].concat(),
    ));
    let now = db::now();
    let row = KeyRow {
        user_id: user_id.to_string(),
        route: route.to_string(),
        idem_key: key,
        request_hash: hash,
        status_code: None,
        response_body: None,
        created_at: now,
        expires_at: now + chrono::Duration::hours(TTL_HOURS),
    };
    if let Some(existing) = store::begin(&state.db, &row).await? {
        if existing.request_hash != row.request_hash {
            return Err(AppError::Unprocessable {
                code: "idempotency_key_reused",
                message: "this Idempotency-Key was used with a different request".into(),
            });
        }
        return match (existing.status_code, existing.response_body) {
            (Some(code), Some(body)) => Ok(to_http(
                StatusCode::from_u16(code as u16).unwrap_or(StatusCode::OK),
                body,
                true,
            )),
            _ => Err(AppError::conflict(
                "idempotency_key_in_progress",
                "a request with this Idempotency-Key is still running; retry shortly",
            )),
        };
    }
    let (status, body) = match handler().await {
        Ok(value) => (
            StatusCode::OK,
            serde_json::to_string(&value).map_err(AppError::internal)?,
        ),
        Err(err) if err.status_code().is_server_error() => {
            store::abandon(&state.db, &row).await?;
            return Err(err);
        }
        Err(err) => (
            err.status_code(),
            serde_json::to_string(&err.body()).map_err(AppError::internal)?,
        ),
    };
    store::finish(&state.db, &row, i32::from(status.as_u16()), &body).await?;
    Ok(to_http(status, body, false))
}
