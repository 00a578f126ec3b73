//! Bring your own auth: setting and clearing a merchant app's own-token configuration
//! (issuer, audience, HS256 secret, RS256 / ES256 public keys). The admin API and the
//! CLI (`fenpay app set-jwt`) call these.

use api_types::app_tokens::{AppJwtConfig, AppJwtKey, AppJwtRequest};

use crate::config::Settings;
use crate::db::apps::{self as app_db, AppRow};
use crate::db::Db;
use crate::domain::app_tokens::{self as rules, AppKeys};
use crate::domain::apps::same_signature;
use crate::error::{AppError, AppResult};

/// Longest issuer / audience accepted.
pub const MAX_CLAIM_LEN: usize = 256;

fn invalid(message: impl Into<String>) -> AppError {
    AppError::bad_request("invalid_jwt_config", message)
}

/// `Some(trimmed)` unless absent or blank.
fn given(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

fn check_claim(name: &str, value: &str) -> AppResult<()> {
    if value.chars().count() > MAX_CLAIM_LEN || value.chars().any(char::is_control) {
        return Err(invalid(format!(
            "{name} must be 1-{MAX_CLAIM_LEN} characters without control characters"
        )));
    }
    Ok(())
}

/// A live app, or 404 / 409 `app_revoked`.
async fn live_app(db: &Db, app_id: &str) -> AppResult<AppRow> {
    let app = app_db::find(db, app_id)
        .await?
        .ok_or(AppError::NotFound("app"))?;
    if app.revoked_at.is_some() {
        return Err(AppError::conflict("app_revoked", "the app is revoked"));
    }
    Ok(app)
}

/// Validate and store an app's token configuration, replacing the previous one. 400
/// `invalid_jwt_config` (what to fix in the message), 404 for no such app, 409
/// `app_revoked`, 409 `jwt_issuer_taken` when another app has the issuer. Takes effect
/// at the next request on every replica (the row is read per token).
pub async fn set_jwt(
    db: &Db,
    settings: &Settings,
    app_id: &str,
    req: &AppJwtRequest,
) -> AppResult<AppJwtConfig> {
    let issuer = given(Some(&req.issuer)).ok_or_else(|| invalid("issuer is required"))?;
    check_claim("issuer", issuer)?;
    let audience = given(req.audience.as_deref());
    if let Some(aud) = audience {
        check_claim("audience", aud)?;
    }
    // The secret is taken as given (whitespace is part of a secret).
    let secret = req.hs256_secret.as_deref().filter(|s| !s.is_empty());
    let public_keys = given(req.public_keys.as_deref());
    AppKeys::parse(secret, public_keys).map_err(|e| invalid(e.0))?;
    if let Some(secret) = secret {
        // fenpay's own tokens are checked first: an app holding fenpay's secret could
        // sign tokens as any fenpay account, administrators included.
        if same_signature(secret, settings.jwt_secret.expose()) {
            return Err(invalid(
                "hs256_secret must not be fenpay's own JWT_SECRET: give the app its own secret",
            ));
        }
    }
    let app = live_app(db, app_id).await?;
    if let Some(other) = app_db::find_by_issuer(db, issuer).await? {
        if other.id != app.id {
            return Err(issuer_taken());
        }
    }
    match app_db::set_jwt(db, &app.id, Some(issuer), audience, secret, public_keys).await {
        Ok(true) => {}
        Ok(false) => {
            return Err(live_app(db, app_id)
                .await
                .err()
                .unwrap_or(AppError::NotFound("app")))
        }
        Err(e) if e.is_unique_violation() => return Err(issuer_taken()),
        Err(e) => return Err(e.into()),
    }
    tracing::info!(app_id = %app.id, issuer, audience, hs256 = secret.is_some(),
        public_keys = public_keys.is_some(), "app token configuration set");
    get_jwt(db, app_id).await
}

fn issuer_taken() -> AppError {
    AppError::conflict(
        "jwt_issuer_taken",
        "another app has this issuer: issuers must be unique",
    )
}

/// Stop accepting an app's own user tokens (at the next request). Accounts already
/// linked stay, with their orders. 404 for no such app, 409 `app_revoked`.
pub async fn clear_jwt(db: &Db, app_id: &str) -> AppResult<AppJwtConfig> {
    let app = live_app(db, app_id).await?;
    if !app_db::set_jwt(db, &app.id, None, None, None, None).await? {
        return Err(live_app(db, app_id)
            .await
            .err()
            .unwrap_or(AppError::NotFound("app")));
    }
    tracing::info!(app_id = %app.id, "app token configuration cleared");
    get_jwt(db, app_id).await
}

/// An app's token configuration as shown (the secret never is); 404 for no such app.
pub async fn get_jwt(db: &Db, app_id: &str) -> AppResult<AppJwtConfig> {
    let app = app_db::find(db, app_id)
        .await?
        .ok_or(AppError::NotFound("app"))?;
    Ok(view(&app))
}

/// The shown form of an app's configuration.
pub fn view(app: &AppRow) -> AppJwtConfig {
    let public_keys = app
        .jwt_public_keys
        .as_deref()
        .and_then(|text| rules::parse_public_keys(text).ok())
        .unwrap_or_default()
        .iter()
        .map(|k| AppJwtKey {
            kid: k.kid.clone(),
            alg: k.alg.as_str().to_string(),
        })
        .collect();
    AppJwtConfig {
        app_id: app.id.clone(),
        issuer: app.jwt_issuer.clone(),
        audience: app.jwt_audience.clone(),
        hs256_secret_set: app.jwt_hs256_secret.is_some(),
        public_keys,
        updated_at: app.updated_at.and_utc(),
    }
}
