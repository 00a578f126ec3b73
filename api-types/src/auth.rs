//! Accounts: registration, login, the signed-in user.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Role carried in the JWT.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }
}

/// `POST /api/v1/auth/register`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema, validator::Validate))]
pub struct RegisterRequest {
    /// 3-32 characters: letters, digits, `_`, `-`, `.`.
    #[cfg_attr(
        feature = "server",
        validate(
            length(min = 3, max = 32),
            custom(function = "crate::auth::validate_username")
        )
    )]
    #[cfg_attr(feature = "server", schema(example = "alice"))]
    pub username: String,
    /// 8-128 characters.
    #[cfg_attr(feature = "server", validate(length(min = 8, max = 128)))]
    #[cfg_attr(feature = "server", schema(example = "correct horse battery"))]
    pub password: String,
    #[cfg_attr(feature = "server", validate(email, length(max = 254)))]
    #[cfg_attr(feature = "server", schema(example = "alice@example.com"))]
    pub email: String,
}

/// Usernames are restricted to a portable, unambiguous character set.
#[cfg(feature = "server")]
pub fn validate_username(name: &str) -> Result<(), validator::ValidationError> {
    if name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        Ok(())
    } else {
        let mut err = validator::ValidationError::new("charset");
        err.message = Some("may contain only letters, digits, '_', '-' and '.'".into());
        Err(err)
    }
}

/// `POST /api/v1/auth/login`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema, validator::Validate))]
pub struct LoginRequest {
    #[cfg_attr(feature = "server", validate(length(min = 1, max = 64)))]
    pub username: String,
    #[cfg_attr(feature = "server", validate(length(min = 1, max = 128)))]
    pub password: String,
}

/// A bearer token and the user it belongs to.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct TokenResponse {
    /// HS256 JWT to send as `Authorization: Bearer <token>`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the token expires.
    pub expires_in: i64,
    pub user: UserResponse,
}

/// `GET /api/v1/auth/me`: the signed-in account with its balances.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct UserResponse {
    pub id: String,
    pub username: String,
    pub email: String,
    pub role: Role,
    /// Points balance (credited by points packs).
    pub points_balance: i64,
    /// Current membership tier, if any membership was ever bought.
    pub membership_tier: Option<String>,
    /// When the membership ends (UTC); past means expired.
    pub membership_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}
