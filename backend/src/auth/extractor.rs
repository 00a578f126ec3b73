//! `AuthUser`: a handler argument that requires a valid `Authorization: Bearer` JWT.

use actix_web::{dev::Payload, http::header, web, FromRequest, HttpRequest};
use api_types::auth::Role;
use futures_util::future::LocalBoxFuture;

use super::jwt::JwtError;
use crate::error::AppError;
use crate::startup::AppState;

/// The authenticated caller.
#[derive(Clone, Debug)]
pub struct AuthUser {
    pub user_id: String,
    pub role: Role,
    /// The token's version (stream tokens issued for this caller carry it).
    pub token_version: i64,
}

impl AuthUser {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// 403 unless the caller is an admin.
    pub fn require_admin(&self) -> Result<(), AppError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(AppError::Forbidden("administrator role required".into()))
        }
    }
}

impl FromRequest for AuthUser {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { authenticate(&req).await })
    }
}

/// The caller of a request with `Authorization: Bearer <JWT>`: a valid signature, not
/// expired, an account that still exists and a token version that was not revoked. A
/// token fenpay did not sign may be a merchant app's user's (`auth::app_tokens`).
pub async fn authenticate(req: &HttpRequest) -> Result<AuthUser, AppError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("AppState missing")))?;
    let token = bearer(req)?;
    let claims = match state.jwt.verify(token) {
        Ok(claims) => claims,
        Err(JwtError::Expired) => return Err(AppError::Unauthorized("token expired".into())),
        // Not ours: perhaps a merchant app's own user token (bring your own auth).
        Err(JwtError::Invalid) => return super::app_tokens::authenticate(state, token).await,
    };
    // The role is the account's now, not the one the token was issued with.
    let role = state
        .sessions
        .check(&state.db, &claims.sub, claims.ver)
        .await?;
    Ok(AuthUser {
        user_id: claims.sub,
        role,
        token_version: claims.ver,
    })
}

/// The merchant app of a request with `Authorization: Bearer sk_live_...` / `sk_test_...`:
/// a key we issued, not revoked (checked on every request: a revoked key is refused at once).
#[derive(Clone, Debug)]
pub struct MerchantApp(pub crate::db::apps::AppRow);

impl FromRequest for MerchantApp {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = req
                .app_data::<web::Data<AppState>>()
                .ok_or_else(|| AppError::internal(anyhow::anyhow!("AppState missing")))?;
            let key = bearer(&req)?;
            crate::service::apps::authenticate_key(state, key)
                .await
                .map(MerchantApp)
        })
    }
}

/// The token of `Authorization: Bearer <token>`.
pub fn bearer(req: &HttpRequest) -> Result<&str, AppError> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| AppError::Unauthorized("missing Authorization: Bearer token".into()))?;
    value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| AppError::Unauthorized("Authorization must be `Bearer <token>`".into()))
}
