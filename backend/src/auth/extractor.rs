//! `AuthUser`: a handler argument that requires a valid `Authorization: Bearer` JWT.

use std::future::{ready, Ready};

use actix_web::{dev::Payload, http::header, web, FromRequest, HttpRequest};
use api_types::auth::Role;

use super::jwt::JwtError;
use crate::error::AppError;
use crate::startup::AppState;

/// The authenticated caller.
#[derive(Clone, Debug)]
pub struct AuthUser {
    pub user_id: String,
    pub role: Role,
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
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req))
    }
}

pub fn authenticate(req: &HttpRequest) -> Result<AuthUser, AppError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("AppState missing")))?;
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| AppError::Unauthorized("missing Authorization: Bearer token".into()))?;
    let token = value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| AppError::Unauthorized("Authorization must be `Bearer <token>`".into()))?;
    let claims = state.jwt.verify(token).map_err(|e| match e {
        JwtError::Expired => AppError::Unauthorized("token expired".into()),
        JwtError::Invalid => AppError::Unauthorized("invalid token".into()),
    })?;
    Ok(AuthUser {
        user_id: claims.sub,
        role: claims.role,
    })
}
