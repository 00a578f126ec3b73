//! Operator routes (role `admin`) for merchant apps: list, create, read, change, rotate
//! the key or the webhook secret, revoke. Secrets appear only in the answer that made them.

use actix_web::{web, HttpResponse};
use api_types::apps::{
    AppList, AppView, CreateAppRequest, CreatedApp, RotatedKey, RotatedWebhookSecret,
    UpdateAppRequest, UpdatedApp,
};
use api_types::error::ErrorResponse;

use crate::auth::AuthUser;
use crate::error::AppResult;
use crate::service::apps;
use crate::service::audit::{self, Actor, Change, Target};
use crate::startup::AppState;

/// Record an app change (views only: never a key or secret).
async fn record(state: &AppState, actor: &Actor, action: &str, id: &str, change: Change) {
    audit::record(state, actor, action, Target("app", id), change).await;
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/apps", web::get().to(list_apps))
        .route("/admin/apps", web::post().to(create_app))
        .route("/admin/apps/{id}", web::get().to(get_app))
        .route("/admin/apps/{id}", web::patch().to(update_app))
        .route("/admin/apps/{id}/rotate-key", web::post().to(rotate_key))
        .route("/admin/apps/{id}/revoke", web::post().to(revoke_app))
        .route(
            "/admin/apps/{id}/rotate-webhook-secret",
            web::post().to(rotate_webhook_secret),
        );
}

/// Every merchant app, oldest first (no secrets).
#[utoipa::path(get, path = "/api/v1/admin/apps", tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The apps", body = AppList),
        (status = 401, description = "Missing or invalid token", body = ErrorResponse),
        (status = 403, description = "Not an administrator", body = ErrorResponse)))]
pub async fn list_apps(state: web::Data<AppState>, user: AuthUser) -> AppResult<HttpResponse> {
    user.require_admin()?;
    let items = apps::list(&state).await?.iter().map(apps::view).collect();
    Ok(HttpResponse::Ok().json(AppList { items }))
}

/// Create a merchant app with its own API key and webhook secret (and epay credentials
/// with `epay`). The answer is the only place the secrets are ever shown.
#[utoipa::path(post, path = "/api/v1/admin/apps", tag = "admin",
    security(("bearer" = [])),
    request_body = CreateAppRequest,
    responses(
        (status = 201, description = "The app and its secrets, shown once", body = CreatedApp),
        (status = 400, description = "`invalid_app`, `invalid_webhook_url`, `invalid_return_host`", body = ErrorResponse),
        (status = 401, description = "Missing or invalid token", body = ErrorResponse),
        (status = 403, description = "Not an administrator", body = ErrorResponse)))]
pub async fn create_app(
    state: web::Data<AppState>,
    user: AuthUser,
    body: web::Json<CreateAppRequest>,
) -> AppResult<HttpResponse> {
    let actor = Actor::of(&state, &user).await?;
    let issued = apps::create(&state, body.into_inner().into()).await?;
    let view = apps::view(&issued.app);
    record(
        &state,
        &actor,
        "app.create",
        &view.id,
        Change::new(None::<()>, Some(&view)),
    )
    .await;
    Ok(HttpResponse::Created().json(apps::created(&issued)))
}

/// One merchant app (no secrets).
#[utoipa::path(get, path = "/api/v1/admin/apps/{id}", tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "App id (`app_...`)")),
    responses(
        (status = 200, description = "The app", body = AppView),
        (status = 403, description = "Not an administrator", body = ErrorResponse),
        (status = 404, description = "`not_found`: no such app", body = ErrorResponse)))]
pub async fn get_app(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    user.require_admin()?;
    Ok(HttpResponse::Ok().json(apps::view(&apps::find(&state, &path).await?)))
}

/// Change a live app's name, webhook URL (`null` removes it), return hosts, fulfilment,
/// order maximum or epay switch; absent fields stay. Turning epay on for the first time
/// draws a pid and key: the answer shows that key once.
#[utoipa::path(patch, path = "/api/v1/admin/apps/{id}", tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "App id (`app_...`)")),
    request_body = UpdateAppRequest,
    responses(
        (status = 200, description = "The app as changed", body = UpdatedApp),
        (status = 400, description = "`invalid_app`, `invalid_webhook_url`, `invalid_return_host`", body = ErrorResponse),
        (status = 403, description = "Not an administrator", body = ErrorResponse),
        (status = 404, description = "`not_found`: no such app", body = ErrorResponse),
        (status = 409, description = "`app_revoked`, `app_changed`", body = ErrorResponse)))]
pub async fn update_app(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
    body: web::Json<UpdateAppRequest>,
) -> AppResult<HttpResponse> {
    let actor = Actor::of(&state, &user).await?;
    let before = apps::view(&apps::find(&state, &path).await?);
    let (app, epay_key) = apps::update(&state, &path, body.into_inner().into()).await?;
    let after = apps::view(&app);
    record(
        &state,
        &actor,
        "app.update",
        &app.id,
        Change::new(Some(&before), Some(&after)),
    )
    .await;
    Ok(HttpResponse::Ok().json(UpdatedApp {
        app: apps::view(&app),
        epay_key,
    }))
}

/// Replace a live app's API key: the answer shows the new key once; the old key is
/// refused from this moment.
#[utoipa::path(post, path = "/api/v1/admin/apps/{id}/rotate-key", tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "App id (`app_...`)")),
    responses(
        (status = 200, description = "The new key, shown once", body = RotatedKey),
        (status = 403, description = "Not an administrator", body = ErrorResponse),
        (status = 404, description = "`not_found`: no such app", body = ErrorResponse),
        (status = 409, description = "`app_revoked`, `app_changed`", body = ErrorResponse)))]
pub async fn rotate_key(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let actor = Actor::of(&state, &user).await?;
    let issued = apps::rotate_key(&state, &path).await?;
    let change = Change::new(
        None::<()>,
        Some(serde_json::json!({"key_prefix": issued.app.key_prefix})),
    );
    record(&state, &actor, "app.rotate_key", &issued.app.id, change).await;
    Ok(HttpResponse::Ok().json(RotatedKey {
        app_id: issued.app.id.clone(),
        key_prefix: issued.app.key_prefix.clone(),
        api_key: issued.api_key,
    }))
}

/// Revoke an app: its key is refused from this moment, for good (create a new app to
/// start again). Its orders, refunds and events stay.
#[utoipa::path(post, path = "/api/v1/admin/apps/{id}/revoke", tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "App id (`app_...`)")),
    responses(
        (status = 200, description = "The revoked app", body = AppView),
        (status = 403, description = "Not an administrator", body = ErrorResponse),
        (status = 404, description = "`not_found`: no such app", body = ErrorResponse),
        (status = 409, description = "`app_revoked`: revoked already", body = ErrorResponse)))]
pub async fn revoke_app(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let actor = Actor::of(&state, &user).await?;
    let view = apps::view(&apps::revoke(&state, &path).await?);
    record(
        &state,
        &actor,
        "app.revoke",
        &view.id,
        Change::new(None::<()>, Some(&view)),
    )
    .await;
    Ok(HttpResponse::Ok().json(view))
}

/// Replace a live app's webhook signing secret (shown once); events and return redirects
/// are signed with the new one from now on.
#[utoipa::path(post, path = "/api/v1/admin/apps/{id}/rotate-webhook-secret", tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "App id (`app_...`)")),
    responses(
        (status = 200, description = "The new secret, shown once", body = RotatedWebhookSecret),
        (status = 403, description = "Not an administrator", body = ErrorResponse),
        (status = 404, description = "`not_found`: no such app", body = ErrorResponse),
        (status = 409, description = "`app_revoked`, `app_changed`", body = ErrorResponse)))]
pub async fn rotate_webhook_secret(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let actor = Actor::of(&state, &user).await?;
    let app = apps::rotate_webhook_secret(&state, &path).await?;
    record(
        &state,
        &actor,
        "app.rotate_webhook_secret",
        &app.id,
        Change::default(),
    )
    .await;
    Ok(HttpResponse::Ok().json(RotatedWebhookSecret {
        app_id: app.id,
        webhook_secret: app.webhook_secret,
    }))
}
