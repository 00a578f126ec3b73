//! Merchant apps: creation, keys, and the accounts of their customers.

use rand::distributions::Alphanumeric;
use rand::Rng;

use crate::db::apps::{self as app_db, AppRow};
use crate::db::users::UserRow;
use crate::db::{self, Db};
use crate::domain::apps::{self as rules, Fulfilment, KeyMode};
use crate::error::{AppError, AppResult};
use crate::startup::AppState;

/// A stored password hash no password verifies against: app accounts never log in.
pub const NO_PASSWORD: &str = "!app-account";

/// What creating an app (or rotating its key) shows once and never again.
#[derive(Clone)]
pub struct IssuedApp {
    pub app: AppRow,
    pub api_key: String,
}

impl std::fmt::Debug for IssuedApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedApp")
            .field("app", &self.app)
            .field("api_key", &"[redacted]")
            .finish()
    }
}

/// The settings an app is created with.
#[derive(Clone, Debug)]
pub struct NewApp {
    pub name: String,
    pub mode: KeyMode,
    pub webhook_url: Option<String>,
    pub return_hosts: Vec<String>,
    pub fulfilment: Fulfilment,
    pub max_amount_fen: Option<i64>,
    pub epay: bool,
}

fn random(n: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}

fn key_secret(state: &AppState) -> &[u8] {
    state.settings.api_key_secret.expose().as_bytes()
}

/// A fresh key for `mode`: (key, visible prefix, stored hash).
pub fn new_key(state: &AppState, mode: KeyMode) -> (String, String, String) {
    let key = rules::api_key(mode, &random(rules::KEY_RANDOM_LEN));
    let prefix = rules::key_prefix(&key);
    let hash = rules::key_hash(key_secret(state), &key);
    (key, prefix, hash)
}

/// A new epay merchant id: 1000-9999999, random, so ids say nothing about how many apps exist.
fn new_epay_pid() -> i64 {
    rand::thread_rng().gen_range(1000..10_000_000)
}

/// Validate and create an app with its own account; the key is in the answer only.
pub async fn create(state: &AppState, new: NewApp) -> AppResult<IssuedApp> {
    let name = new.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(AppError::bad_request(
            "invalid_app",
            "name must be 1-100 characters",
        ));
    }
    if let Some(url) = new.webhook_url.as_deref() {
        check_webhook_url(url)?;
    }
    let max_amount_fen = new
        .max_amount_fen
        .unwrap_or(state.settings.merchant_max_amount_fen);
    if max_amount_fen < 1 {
        return Err(AppError::bad_request(
            "invalid_app",
            "max_amount_fen must be at least 1",
        ));
    }
    let now = db::now();
    let id = format!("app_{}", random(16).to_ascii_lowercase());
    let (api_key, key_prefix, key_hash) = new_key(state, new.mode);
    let account = UserRow {
        id: uuid::Uuid::new_v4().to_string(),
        username: format!("app:{id}"),
        email: String::new(),
        password_hash: NO_PASSWORD.into(),
        role: "user".into(),
        points_balance: 0,
        membership_tier: None,
        membership_expires_at: None,
        created_at: now,
        updated_at: now,
        token_version: 0,
    };
    let app = AppRow {
        id: id.clone(),
        name,
        key_mode: new.mode.as_str().into(),
        key_prefix,
        key_hash,
        webhook_url: new.webhook_url,
        webhook_secret: format!("whsec_{}", random(32)),
        return_hosts: new.return_hosts.join(","),
        fulfilment: new.fulfilment.as_str().into(),
        max_amount_fen,
        epay_pid: None,
        epay_key: None,
        epay_enabled: false,
        jwt_issuer: None,
        jwt_audience: None,
        jwt_hs256_secret: None,
        jwt_public_keys: None,
        user_id: account.id.clone(),
        revoked_at: None,
        created_at: now,
        updated_at: now,
    };
    let mut app = app;
    if new.epay {
        app.epay_key = Some(random(32));
        app.epay_enabled = true;
    }
    // A random pid may collide with another app's: draw again (a few times at most).
    for _ in 0..5 {
        if new.epay {
            app.epay_pid = Some(new_epay_pid());
        }
        match app_db::insert(&state.db, &app, &account).await {
            Ok(()) => {
                tracing::info!(app_id = %app.id, name = %app.name, "app created");
                return Ok(IssuedApp { app, api_key });
            }
            Err(e) if e.is_unique_violation() && new.epay => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(AppError::internal(anyhow::anyhow!(
        "could not draw a free epay pid"
    )))
}

/// A webhook URL must be absolute http(s).
pub fn check_webhook_url(url: &str) -> AppResult<()> {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Ok(()),
        _ => Err(AppError::bad_request(
            "invalid_webhook_url",
            "webhook_url must be an absolute http(s) URL",
        )),
    }
}

/// The app an `Authorization: Bearer sk_...` key belongs to: the key shaped as ours, its
/// hash known, the app not revoked. Every failure is the same 401 (no oracle for which
/// part was wrong).
pub async fn authenticate_key(state: &AppState, key: &str) -> AppResult<AppRow> {
    let refused = || AppError::Unauthorized("invalid or revoked API key".into());
    if rules::key_mode_of(key).is_none() {
        return Err(refused());
    }
    let hash = rules::key_hash(key_secret(state), key);
    let app = app_db::find_by_key_hash(&state.db, &hash)
        .await?
        .ok_or_else(refused)?;
    if app.revoked_at.is_some() || !rules::same_signature(&app.key_hash, &hash) {
        return Err(refused());
    }
    Ok(app)
}

/// The fenpay account of an app's customer, made on first use.
pub async fn customer_account(db: &Db, app: &AppRow, external_id: &str) -> AppResult<String> {
    if !rules::valid_ref(external_id) {
        return Err(AppError::bad_request(
            "invalid_customer_ref",
            "a customer reference is 1-64 of A-Z a-z 0-9 _ - . : |",
        ));
    }
    if let Some(id) = app_db::account_of(db, &app.id, external_id).await? {
        return Ok(id);
    }
    let now = db::now();
    let account = UserRow {
        id: uuid::Uuid::new_v4().to_string(),
        username: format!("{}:{external_id}", app.id),
        email: String::new(),
        password_hash: NO_PASSWORD.into(),
        role: "user".into(),
        points_balance: 0,
        membership_tier: None,
        membership_expires_at: None,
        created_at: now,
        updated_at: now,
        token_version: 0,
    };
    Ok(app_db::ensure_account(db, &app.id, external_id, &account).await?)
}

/// The HMAC key of an app's hosted checkout links (`/pay/{order_no}?sig=`).
pub fn checkout_link_signature(state: &AppState, order_no: &str) -> String {
    let sig = rules::hmac_hex(
        key_secret(state),
        format!("checkout\n{order_no}").as_bytes(),
    );
    sig[..32].to_string()
}

/// Whether `sig` is the signature of `order_no`'s checkout link.
pub fn checkout_link_valid(state: &AppState, order_no: &str, sig: &str) -> bool {
    rules::same_signature(&checkout_link_signature(state, order_no), sig)
}
