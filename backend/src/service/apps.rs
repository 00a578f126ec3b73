//! Merchant apps: creation, keys, and the accounts of their customers.

use rand::distributions::Alphanumeric;
use rand::Rng;

use api_types::apps::{
    AppFulfilment, AppKeyMode, AppView, CreateAppRequest, CreatedApp, UpdateAppRequest,
};

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
    let name = check_name(&new.name)?;
    if let Some(url) = new.webhook_url.as_deref() {
        check_webhook_url(url)?;
    }
    let return_hosts = check_return_hosts(&new.return_hosts)?;
    let max_amount_fen = check_max_amount(
        state,
        new.max_amount_fen
            .unwrap_or(state.settings.merchant_max_amount_fen),
    )?;
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
        webhook_secret: new_webhook_secret(),
        return_hosts,
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
        app.epay_key = Some(new_epay_key());
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

fn new_webhook_secret() -> String {
    format!("whsec_{}", random(32))
}

fn new_epay_key() -> String {
    random(32)
}

/// An app's name: trimmed, 1-100 characters, no control characters.
pub fn check_name(raw: &str) -> AppResult<String> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(AppError::bad_request(
            "invalid_app",
            "name must be 1-100 characters without control characters",
        ));
    }
    Ok(name.to_string())
}

/// The allowed return hosts, normalized and joined as stored (`a.com,*.b.com`).
pub fn check_return_hosts(hosts: &[String]) -> AppResult<String> {
    let mut out: Vec<String> = Vec::new();
    for raw in hosts {
        let Some(host) = rules::normalize_return_host(raw) else {
            return Err(AppError::bad_request(
                "invalid_return_host",
                format!(
                    "{raw:?} is not a host name: give a bare host such as shop.example.com or *.example.com (no scheme, port or path)"
                ),
            ));
        };
        if !out.contains(&host) {
            out.push(host);
        }
    }
    if out.len() > rules::MAX_RETURN_HOSTS {
        return Err(AppError::bad_request(
            "invalid_return_host",
            format!("at most {} return hosts", rules::MAX_RETURN_HOSTS),
        ));
    }
    Ok(out.join(","))
}

/// An app's largest order: 1 fen to `MERCHANT_MAX_AMOUNT_FEN`.
fn check_max_amount(state: &AppState, fen: i64) -> AppResult<i64> {
    let cap = state.settings.merchant_max_amount_fen;
    if !(1..=cap).contains(&fen) {
        return Err(AppError::bad_request(
            "invalid_app",
            format!("max_amount_fen must be between 1 and {cap} (MERCHANT_MAX_AMOUNT_FEN)"),
        ));
    }
    Ok(fen)
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

/// One app, or 404 `not_found`.
pub async fn find(state: &AppState, id: &str) -> AppResult<AppRow> {
    app_db::find(&state.db, id)
        .await?
        .ok_or(AppError::NotFound("app"))
}

fn revoked() -> AppError {
    AppError::conflict("app_revoked", "the app is revoked")
}

/// A live app (not revoked), or 404 / 409 `app_revoked`.
async fn find_live(state: &AppState, id: &str) -> AppResult<AppRow> {
    let app = find(state, id).await?;
    if app.revoked_at.is_some() {
        return Err(revoked());
    }
    Ok(app)
}

/// Every app, oldest first.
pub async fn list(state: &AppState) -> AppResult<Vec<AppRow>> {
    Ok(app_db::list(&state.db).await?)
}

/// A new key for a live app (same mode); the old one stops working with this write.
pub async fn rotate_key(state: &AppState, id: &str) -> AppResult<IssuedApp> {
    // A concurrent rotation makes the compare-and-set miss: read again and retry.
    for _ in 0..3 {
        let app = find_live(state, id).await?;
        let mode = KeyMode::parse(&app.key_mode).unwrap_or(KeyMode::Live);
        let (api_key, prefix, hash) = new_key(state, mode);
        if app_db::rotate_key(&state.db, id, &app.key_hash, &prefix, &hash).await? {
            tracing::info!(app_id = %id, key_prefix = %prefix, "app key rotated");
            let app = find(state, id).await?;
            return Ok(IssuedApp { app, api_key });
        }
    }
    Err(AppError::conflict(
        "app_changed",
        "the app's key changed meanwhile, retry",
    ))
}

/// Revoke an app: its key is refused from this write on. Revoking twice is 409
/// `app_revoked`.
pub async fn revoke(state: &AppState, id: &str) -> AppResult<AppRow> {
    if !app_db::revoke(&state.db, id).await? {
        find_live(state, id).await?;
        return Err(revoked());
    }
    tracing::warn!(app_id = %id, "app revoked");
    find(state, id).await
}

/// What `fenpay app set` / `PATCH /admin/apps/{id}` change; `None` leaves a field.
#[derive(Clone, Debug, Default)]
pub struct AppChanges {
    pub name: Option<String>,
    /// `Some(None)` removes the webhook URL.
    pub webhook_url: Option<Option<String>>,
    pub return_hosts: Option<Vec<String>>,
    pub fulfilment: Option<Fulfilment>,
    pub max_amount_fen: Option<i64>,
    /// On: the existing epay pid and key again, or new ones when the app has none.
    pub epay: Option<bool>,
}

/// Change a live app's settings (everything checked before anything is written). The
/// write is a compare-and-set on the app as read: a concurrent change or revocation makes
/// it read again (a revoked app is 409 `app_revoked`).
/// Answers the app as written and, when this change drew the app's first epay key, that key
/// (shown once).
pub async fn update(
    state: &AppState,
    id: &str,
    changes: AppChanges,
) -> AppResult<(AppRow, Option<String>)> {
    for _ in 0..5 {
        let mut drawn_key = None;
        let mut app = find_live(state, id).await?;
        let seen = app.updated_at;
        if let Some(name) = &changes.name {
            app.name = check_name(name)?;
        }
        if let Some(url) = &changes.webhook_url {
            if let Some(url) = url {
                check_webhook_url(url)?;
            }
            app.webhook_url = url.clone();
        }
        if let Some(hosts) = &changes.return_hosts {
            app.return_hosts = check_return_hosts(hosts)?;
        }
        if let Some(f) = changes.fulfilment {
            app.fulfilment = f.as_str().into();
        }
        if let Some(fen) = changes.max_amount_fen {
            app.max_amount_fen = check_max_amount(state, fen)?;
        }
        if let Some(on) = changes.epay {
            app.epay_enabled = on;
            if on && app.epay_key.is_none() {
                let key = new_epay_key();
                app.epay_key = Some(key.clone());
                drawn_key = Some(key);
            }
            if on && app.epay_pid.is_none() {
                // Random: a collision with another app's pid fails on the unique index
                // and the next round draws again.
                app.epay_pid = Some(new_epay_pid());
            }
        }
        match app_db::update_unchanged(&state.db, &app, seen).await {
            Ok(true) => {
                tracing::info!(app_id = %id, "app settings changed");
                return Ok((find(state, id).await?, drawn_key));
            }
            Ok(false) => continue,
            Err(e) if e.is_unique_violation() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(AppError::conflict(
        "app_changed",
        "the app changed meanwhile, retry",
    ))
}

/// A new webhook signing secret for a live app; events signed from now on use it.
pub async fn rotate_webhook_secret(state: &AppState, id: &str) -> AppResult<AppRow> {
    for _ in 0..3 {
        let mut app = find_live(state, id).await?;
        let seen = app.updated_at;
        app.webhook_secret = new_webhook_secret();
        if app_db::update_unchanged(&state.db, &app, seen).await? {
            tracing::info!(app_id = %id, "app webhook secret rotated");
            return find(state, id).await;
        }
    }
    Err(AppError::conflict(
        "app_changed",
        "the app changed meanwhile, retry",
    ))
}

// ---- wire types ------------------------------------------------------------------------

/// The stored time (UTC) as the API shows it.
fn utc(t: chrono::NaiveDateTime) -> chrono::DateTime<chrono::Utc> {
    t.and_utc()
}

/// An app as operators see it: no secret.
pub fn view(app: &AppRow) -> AppView {
    AppView {
        id: app.id.clone(),
        name: app.name.clone(),
        mode: match KeyMode::parse(&app.key_mode) {
            Some(KeyMode::Test) => AppKeyMode::Test,
            _ => AppKeyMode::Live,
        },
        key_prefix: app.key_prefix.clone(),
        webhook_url: app.webhook_url.clone(),
        return_hosts: rules::parse_hosts(&app.return_hosts),
        fulfilment: match Fulfilment::parse(&app.fulfilment) {
            Some(Fulfilment::Webhook) => AppFulfilment::Webhook,
            _ => AppFulfilment::Builtin,
        },
        max_amount_fen: app.max_amount_fen,
        epay_pid: app.epay_pid,
        epay_enabled: app.epay_enabled,
        revoked: app.revoked_at.is_some(),
        revoked_at: app.revoked_at.map(utc),
        created_at: utc(app.created_at),
        updated_at: utc(app.updated_at),
    }
}

/// The one-time answer of a creation.
pub fn created(issued: &IssuedApp) -> CreatedApp {
    CreatedApp {
        app: view(&issued.app),
        api_key: issued.api_key.clone(),
        webhook_secret: issued.app.webhook_secret.clone(),
        epay_key: issued.app.epay_key.clone(),
    }
}

pub fn key_mode(m: AppKeyMode) -> KeyMode {
    match m {
        AppKeyMode::Live => KeyMode::Live,
        AppKeyMode::Test => KeyMode::Test,
    }
}

pub fn fulfilment(f: AppFulfilment) -> Fulfilment {
    match f {
        AppFulfilment::Builtin => Fulfilment::Builtin,
        AppFulfilment::Webhook => Fulfilment::Webhook,
    }
}

impl From<CreateAppRequest> for NewApp {
    fn from(r: CreateAppRequest) -> NewApp {
        NewApp {
            name: r.name,
            mode: key_mode(r.mode.unwrap_or_default()),
            webhook_url: r.webhook_url,
            return_hosts: r.return_hosts,
            fulfilment: fulfilment(r.fulfilment.unwrap_or_default()),
            max_amount_fen: r.max_amount_fen,
            epay: r.epay,
        }
    }
}

impl From<UpdateAppRequest> for AppChanges {
    fn from(r: UpdateAppRequest) -> AppChanges {
        AppChanges {
            name: r.name,
            webhook_url: r.webhook_url,
            return_hosts: r.return_hosts,
            fulfilment: r.fulfilment.map(fulfilment),
            max_amount_fen: r.max_amount_fen,
            epay: r.epay,
        }
    }
}
