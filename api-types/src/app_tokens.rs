//! Bring your own auth: the configuration that lets a merchant app's own user tokens
//! (JWTs it signs) call the SPA / mobile contract routes
//! (`PUT /api/v1/admin/apps/{id}/jwt`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// `PUT /api/v1/admin/apps/{id}/jwt`: replaces the whole configuration.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AppJwtRequest {
    /// The exact `iss` of the app's tokens (1-256 characters), unique among apps.
    pub issuer: String,
    /// When set, tokens must carry it in `aud` (recommended: tokens the app issues for
    /// other services are then refused here).
    #[serde(default)]
    pub audience: Option<String>,
    /// HS256 shared secret, used as its UTF-8 bytes (32-1024 bytes). Write-only.
    #[serde(default)]
    pub hs256_secret: Option<String>,
    /// RS256 / ES256 public keys: PEM (`-----BEGIN PUBLIC KEY-----`, one or more blocks)
    /// or a JWKS document (`{"keys": [...]}`, RSA >= 2048 bits and EC P-256 keys, `kid`
    /// picks the key). At least one of `hs256_secret` and `public_keys`.
    #[serde(default)]
    pub public_keys: Option<String>,
}

/// Secrets stay out of logs.
impl std::fmt::Debug for AppJwtRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppJwtRequest")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field(
                "hs256_secret",
                &self.hs256_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("public_keys", &self.public_keys.is_some())
            .finish()
    }
}

/// One configured public key.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct AppJwtKey {
    /// The JWKS `kid` (null for PEM keys).
    pub kid: Option<String>,
    /// `RS256` or `ES256`.
    pub alg: String,
}

/// An app's token configuration as shown (the secret never is).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct AppJwtConfig {
    pub app_id: String,
    /// Null: the app's user tokens are not accepted.
    pub issuer: Option<String>,
    pub audience: Option<String>,
    /// Whether an HS256 secret is configured.
    pub hs256_secret_set: bool,
    /// The public keys configured (RS256 / ES256).
    pub public_keys: Vec<AppJwtKey>,
    pub updated_at: DateTime<Utc>,
}
