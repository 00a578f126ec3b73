//! Bring your own auth: a merchant app's own user tokens on the SPA / mobile contract.
//!
//! A bearer token that is not one of ours is looked at once more: its `iss` claim
//! (unverified) names the app, whose row is read (so a revoked app or a changed
//! configuration counts at the next request, on every replica); the token is then verified
//! for real with that app's keys (`domain::app_tokens`), and its `sub` becomes the
//! external id of an account linked to the app, made on first use. The caller is that
//! account, role `user`, never an administrator.
//!
//! Parsing PEM / JWKS text is not done per request: parsed keys are held per app and used
//! while the row's `updated_at` and key texts are the ones they were parsed from. An app's
//! links (`app_accounts`: app and `sub` to account) never change once made and are held
//! too. Both maps are bounded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use api_types::auth::Role;
use chrono::NaiveDateTime;

use super::extractor::AuthUser;
use crate::db::apps::{self as app_db, AppRow};
use crate::domain::app_tokens::{self as rules, AppKeys, TokenError};
use crate::error::{AppError, AppResult};
use crate::service::apps::customer_account;
use crate::startup::AppState;

/// Most apps with parsed keys held at once (past it the map starts again).
const KEYS_CAPACITY: usize = 1_000;
/// Most app-user links held at once (past it the map starts again).
const LINKS_CAPACITY: usize = 100_000;

/// What parsed keys were parsed from: used only while the row still says the same.
#[derive(PartialEq)]
struct Source {
    updated_at: NaiveDateTime,
    hs256_secret: Option<String>,
    public_keys: Option<String>,
}

impl Source {
    fn of(app: &AppRow) -> Self {
        Source {
            updated_at: app.updated_at,
            hs256_secret: app.jwt_hs256_secret.clone(),
            public_keys: app.jwt_public_keys.clone(),
        }
    }

    fn matches(&self, app: &AppRow) -> bool {
        self.updated_at == app.updated_at
            && self.hs256_secret == app.jwt_hs256_secret
            && self.public_keys == app.jwt_public_keys
    }
}

/// Parsed keys and account links of merchant apps' users, per process.
#[derive(Default)]
pub struct AppTokens {
    keys: Mutex<HashMap<String, (Source, Arc<AppKeys>)>>,
    links: Mutex<HashMap<(String, String), String>>,
}

impl std::fmt::Debug for AppTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AppTokens(..)")
    }
}

impl AppTokens {
    pub fn new() -> Self {
        AppTokens::default()
    }

    /// The app's parsed keys, parsed again only when its configuration changed.
    fn keys_of(&self, app: &AppRow) -> Option<Arc<AppKeys>> {
        {
            let held = self.keys.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((source, keys)) = held.get(&app.id) {
                if source.matches(app) {
                    return Some(keys.clone());
                }
            }
        }
        let keys = match AppKeys::parse(
            app.jwt_hs256_secret.as_deref(),
            app.jwt_public_keys.as_deref(),
        ) {
            Ok(keys) => Arc::new(keys),
            Err(e) => {
                // Validated when set; reaching this means the row was edited by hand.
                tracing::error!(app_id = %app.id, error = %e, "app token keys do not parse");
                return None;
            }
        };
        let mut held = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if held.len() >= KEYS_CAPACITY && !held.contains_key(&app.id) {
            held.clear();
        }
        held.insert(app.id.clone(), (Source::of(app), keys.clone()));
        Some(keys)
    }

    fn link(&self, app_id: &str, sub: &str) -> Option<String> {
        let links = self.links.lock().unwrap_or_else(|p| p.into_inner());
        links.get(&(app_id.to_string(), sub.to_string())).cloned()
    }

    fn store_link(&self, app_id: &str, sub: &str, user_id: &str) {
        let mut links = self.links.lock().unwrap_or_else(|p| p.into_inner());
        if links.len() >= LINKS_CAPACITY {
            links.clear();
        }
        links.insert((app_id.to_string(), sub.to_string()), user_id.to_string());
    }
}

fn refused(e: TokenError) -> AppError {
    AppError::Unauthorized(e.to_string())
}

/// The caller of a bearer token that is not one of fenpay's: a merchant app's user, or
/// 401 `unauthorized` ("invalid token" / "token expired", nothing more specific).
/// Nothing is written before the token is verified.
pub async fn authenticate(state: &AppState, token: &str) -> AppResult<AuthUser> {
    let issuer = rules::unverified_issuer(token).ok_or(refused(TokenError::Invalid))?;
    let app = app_db::find_by_issuer(&state.db, &issuer)
        .await?
        .filter(|app| app.revoked_at.is_none())
        .ok_or(refused(TokenError::Invalid))?;
    let keys = state
        .app_tokens
        .keys_of(&app)
        .ok_or(refused(TokenError::Invalid))?;
    let sub = keys
        .verify(token, &issuer, app.jwt_audience.as_deref())
        .map_err(refused)?;
    let user_id = match state.app_tokens.link(&app.id, &sub) {
        Some(user_id) => user_id,
        None => {
            let user_id = customer_account(&state.db, &app, &sub).await?;
            state.app_tokens.store_link(&app.id, &sub, &user_id);
            user_id
        }
    };
    // The app's token carries no version: the account's current one stands in, so stream
    // tokens issued to this caller die with "log out everywhere" like everyone else's.
    let token_version = state.sessions.current(&state.db, &user_id).await?;
    Ok(AuthUser {
        user_id,
        role: Role::User,
        token_version,
    })
}
