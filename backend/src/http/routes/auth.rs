//! Accounts: register, login, me.

use actix_web::{web, HttpRequest, HttpResponse};
use api_types::auth::{LoginRequest, RegisterRequest, Role, TokenResponse, UserResponse};
use api_types::error::ErrorResponse;

use crate::auth::AuthUser;
use crate::error::{AppError, AppResult};
use crate::http::validated;
use crate::service::accounts;
use crate::startup::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/auth/register", web::post().to(register))
        .route("/auth/login", web::post().to(login))
        .route("/auth/me", web::get().to(me))
        .route("/auth/logout-all", web::post().to(logout_all));
}

/// Create an account (role `user`). Registrations per client address are limited
/// (`REGISTER_MAX_PER_IP` per `REGISTER_WINDOW_SECS`): more are answered 429.
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Account created", body = UserResponse),
        (status = 400, description = "Malformed JSON or invalid fields (`validation_failed` lists them)", body = ErrorResponse),
        (status = 409, description = "`username_taken`", body = ErrorResponse),
        (status = 413, description = "Body too large", body = ErrorResponse),
        (status = 415, description = "Not JSON", body = ErrorResponse),
        (status = 429, description = "`rate_limited`: too many registrations from this client; retry after `Retry-After` seconds", body = ErrorResponse),
        (status = 503, description = "`server_busy`: every password-hashing thread is taken; retry after `Retry-After` seconds", body = ErrorResponse)))]
pub async fn register(
    state: web::Data<AppState>,
    http: HttpRequest,
    body: web::Json<RegisterRequest>,
) -> AppResult<HttpResponse> {
    let req = validated(body)?;
    // Taken before the password is hashed: parallel requests cannot all pass.
    state
        .limits
        .register(state.client_ip(&http))
        .map_err(|retry_after_secs| AppError::RateLimited { retry_after_secs })?;
    let user = accounts::register(&state.db, &state.hasher, req, Role::User).await?;
    Ok(HttpResponse::Created().json(user))
}

/// Exchange username and password for a bearer token. Failures are limited per client
/// (`LOGIN_MAX_FAILURES`) and per account (`LOGIN_ACCOUNT_MAX_FAILURES`) in
/// `LOGIN_WINDOW_SECS`; each attempt is counted before the password is checked, so
/// parallel guesses cannot exceed the limit. Past it: 429 with `Retry-After`.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in", body = TokenResponse),
        (status = 400, description = "Malformed request", body = ErrorResponse),
        (status = 401, description = "`invalid_credentials` (same answer whether or not the user exists)", body = ErrorResponse),
        (status = 429, description = "`rate_limited`: too many failures from this client or for this account", body = ErrorResponse),
        (status = 503, description = "`server_busy`: every password-hashing thread is taken; retry after `Retry-After` seconds", body = ErrorResponse)))]
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<LoginRequest>,
) -> AppResult<HttpResponse> {
    let body = validated(body)?;
    let client = state.client_ip(&req);
    let attempt = state
        .limits
        .login
        .begin(client, &body.username)
        .map_err(|retry_after_secs| AppError::RateLimited { retry_after_secs })?;
    match accounts::login(
        &state.db,
        &state.hasher,
        &state.jwt,
        &body.username,
        body.password,
    )
    .await
    {
        Ok(token) => {
            state.limits.login.succeeded(attempt);
            Ok(HttpResponse::Ok().json(token))
        }
        // A failed guess keeps its attempt.
        Err(AppError::InvalidCredentials) => {
            tracing::info!(%client, "login failed");
            Err(AppError::InvalidCredentials)
        }
        Err(e) => {
            state.limits.login.abandoned(attempt);
            Err(e)
        }
    }
}

/// The signed-in account: points balance, membership tier and expiry.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The account", body = UserResponse),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorResponse)))]
pub async fn me(state: web::Data<AppState>, user: AuthUser) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(accounts::me(&state.db, &user.user_id).await?))
}

/// Log out everywhere: every token of this account issued so far (this one included, and
/// every stream token) stops working. Sign in again for a new token.
#[utoipa::path(post, path = "/api/v1/auth/logout-all", tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Every token issued so far is revoked"),
        (status = 401, description = "Missing, invalid, expired or revoked token", body = ErrorResponse)))]
pub async fn logout_all(state: web::Data<AppState>, user: AuthUser) -> AppResult<HttpResponse> {
    accounts::logout_all(&state.db, &state.sessions, &user.user_id).await?;
    Ok(HttpResponse::NoContent().finish())
}
