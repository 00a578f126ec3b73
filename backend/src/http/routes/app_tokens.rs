//! Bring your own auth, operator side (role `admin`): which tokens of a merchant app's
//! own users fenpay accepts on the SPA / mobile contract routes.

use actix_web::{web, HttpResponse};
use api_types::app_tokens::{AppJwtConfig, AppJwtRequest};
use api_types::error::ErrorResponse;

use crate::auth::AuthUser;
use crate::error::AppResult;
use crate::service::app_tokens;
use crate::startup::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/apps/{id}/jwt", web::get().to(get_jwt))
        .route("/admin/apps/{id}/jwt", web::put().to(set_jwt))
        .route("/admin/apps/{id}/jwt", web::delete().to(clear_jwt));
}

/// An app's own-token configuration (the HS256 secret is never shown).
#[utoipa::path(get, path = "/api/v1/admin/apps/{id}/jwt", tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "App id")),
    responses(
        (status = 200, description = "The configuration; `issuer` null when none", body = AppJwtConfig),
        (status = 403, description = "Not an administrator", body = ErrorResponse),
        (status = 404, description = "No such app", body = ErrorResponse)))]
pub async fn get_jwt(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    user.require_admin()?;
    Ok(HttpResponse::Ok().json(app_tokens::get_jwt(&state.db, &path).await?))
}

/// Accept the app's own user tokens: JWTs with this `iss` (and `aud`, when given), signed
/// HS256 with the shared secret or RS256 / ES256 with one of the public keys. Replaces
/// the previous configuration; takes effect at the next request.
#[utoipa::path(put, path = "/api/v1/admin/apps/{id}/jwt", tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "App id")),
    request_body = AppJwtRequest,
    responses(
        (status = 200, description = "The configuration now", body = AppJwtConfig),
        (status = 400, description = "`invalid_jwt_config`: the message says what to fix", body = ErrorResponse),
        (status = 403, description = "Not an administrator", body = ErrorResponse),
        (status = 404, description = "No such app", body = ErrorResponse),
        (status = 409, description = "`jwt_issuer_taken` (another app has the issuer), `app_revoked`", body = ErrorResponse)))]
pub async fn set_jwt(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
    body: web::Json<AppJwtRequest>,
) -> AppResult<HttpResponse> {
    user.require_admin()?;
    let config = app_tokens::set_jwt(&state.db, &state.settings, &path, &body).await?;
    Ok(HttpResponse::Ok().json(config))
}

/// Stop accepting the app's own user tokens (at the next request). Accounts already
/// linked to the app keep their orders.
#[utoipa::path(delete, path = "/api/v1/admin/apps/{id}/jwt", tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "App id")),
    responses(
        (status = 200, description = "The configuration now (cleared)", body = AppJwtConfig),
        (status = 403, description = "Not an administrator", body = ErrorResponse),
        (status = 404, description = "No such app", body = ErrorResponse),
        (status = 409, description = "`app_revoked`", body = ErrorResponse)))]
pub async fn clear_jwt(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    user.require_admin()?;
    Ok(HttpResponse::Ok().json(app_tokens::clear_jwt(&state.db, &path).await?))
}
