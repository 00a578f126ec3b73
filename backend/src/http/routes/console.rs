//! Operator routes (role `admin`) for running the business: the audit log, accounts and
//! the catalog.

use actix_web::{web, HttpResponse};
use api_types::console::{
    AccountDetail, AccountListResponse, AccountQuery, AccountSummary, AdjustRequest,
    AdjustResponse, AdminProductList, AuditListResponse, AuditQuery, ProductCreate,
    ProductPatchRequest, ReasonRequest, ReorderRequest, RestockRequest,
};
use api_types::error::ErrorResponse;
use api_types::product::ProductResponse;

use crate::auth::AuthUser;
use crate::db::products::CatalogOp;
use crate::domain::accounts::AccountChange;
use crate::error::AppResult;
use crate::service::audit::{self, Actor};
use crate::service::{catalog, console};
use crate::startup::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/audit", web::get().to(list_audit))
        .route("/admin/accounts", web::get().to(list_accounts))
        .route("/admin/accounts/{id}", web::get().to(account_detail))
        .route(
            "/admin/accounts/{id}/adjust",
            web::post().to(adjust_account),
        )
        .route(
            "/admin/accounts/{id}/disable",
            web::post().to(disable_account),
        )
        .route(
            "/admin/accounts/{id}/enable",
            web::post().to(enable_account),
        )
        .route(
            "/admin/accounts/{id}/grant-admin",
            web::post().to(grant_admin),
        )
        .route(
            "/admin/accounts/{id}/revoke-admin",
            web::post().to(revoke_admin),
        )
        .route("/admin/products", web::get().to(list_products))
        .route("/admin/products", web::post().to(create_product))
        .route("/admin/products/reorder", web::post().to(reorder_products))
        .route("/admin/products/{id}", web::patch().to(update_product))
        .route(
            "/admin/products/{id}/retire",
            web::post().to(retire_product),
        )
        .route(
            "/admin/products/{id}/restore",
            web::post().to(restore_product),
        )
        .route(
            "/admin/products/{id}/restock",
            web::post().to(restock_product),
        );
}

/// The admin audit log, newest first: every admin action with actor, time, target and
/// the target's state before and after.
#[utoipa::path(get, path = "/api/v1/admin/audit", tag = "admin",
    security(("bearer" = [])),
    params(AuditQuery),
    responses(
        (status = 200, description = "A page of entries", body = AuditListResponse),
        (status = 400, description = "`invalid_query`, `invalid_date`", body = ErrorResponse),
        (status = 401, description = "Missing or invalid token", body = ErrorResponse),
        (status = 403, description = "Not an administrator", body = ErrorResponse)))]
pub async fn list_audit(
    state: web::Data<AppState>,
    user: AuthUser,
    query: web::Query<AuditQuery>,
) -> AppResult<HttpResponse> {
    user.require_admin()?;
    Ok(HttpResponse::Ok().json(audit::list(&state, &query).await?))
}

/// Search accounts by part of a username or email, an account id or an app's external
/// user id; newest first.
#[utoipa::path(get, path = "/api/v1/admin/accounts", tag = "admin",
    security(("bearer" = [])),
    params(AccountQuery),
    responses(
        (status = 200, description = "A page of accounts", body = AccountListResponse),
        (status = 400, description = "`invalid_query`", body = ErrorResponse),
        (status = 401, description = "Missing or invalid token", body = ErrorResponse),
        (status = 403, description = "Not an administrator", body = ErrorResponse)))]
pub async fn list_accounts(
    state: web::Data<AppState>,
    user: AuthUser,
    query: web::Query<AccountQuery>,
) -> AppResult<HttpResponse> {
    user.require_admin()?;
    Ok(HttpResponse::Ok().json(console::search(&state, &query).await?))
}

/// One account with its latest orders, refunds, ledger entries and admin history.
#[utoipa::path(get, path = "/api/v1/admin/accounts/{id}", tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Account id")),
    responses(
        (status = 200, description = "The account page", body = AccountDetail),
        (status = 401, description = "Missing or invalid token", body = ErrorResponse),
        (status = 403, description = "Not an administrator", body = ErrorResponse),
        (status = 404, description = "No such account", body = ErrorResponse)))]
pub async fn account_detail(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    user.require_admin()?;
    Ok(HttpResponse::Ok().json(console::detail(&state, &path).await?))
}

/// Add or take points and/or days of membership by hand, with a mandatory reason. The
/// change is a ledger entry (`adjustment`, with the reason as its note), so
/// `verify-ledger` still balances; it is recorded in the audit log.
#[utoipa::path(post, path = "/api/v1/admin/accounts/{id}/adjust", tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Account id")),
    request_body = AdjustRequest,
    responses(
        (status = 200, description = "The account after and its ledger entry", body = AdjustResponse),
        (status = 400, description = "`reason_required`, `reason_too_long`, `invalid_adjustment`, `invalid_product`", body = ErrorResponse),
        (status = 401, description = "Missing or invalid token", body = ErrorResponse),
        (status = 403, description = "Not an administrator", body = ErrorResponse),
        (status = 404, description = "No such account", body = ErrorResponse),
        (status = 409, description = "`empty_adjustment`, `insufficient_points`, `tier_required`, `tier_conflict`, `no_membership` (nothing written)", body = ErrorResponse)))]
pub async fn adjust_account(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
    body: web::Json<AdjustRequest>,
) -> AppResult<HttpResponse> {
    let actor = Actor::of(&state, &user).await?;
    Ok(HttpResponse::Ok().json(console::adjust(&state, &actor, &path, &body).await?))
}

async fn change(
    state: &AppState,
    user: &AuthUser,
    id: &str,
    what: AccountChange,
    body: Option<web::Json<ReasonRequest>>,
) -> AppResult<HttpResponse> {
    let actor = Actor::of(state, user).await?;
    let why = console::reason(body.as_ref().and_then(|b| b.reason.as_deref()), false)?;
    Ok(HttpResponse::Ok().json(console::change(state, &actor, id, what, why).await?))
}

/// Disable an account: it cannot sign in and every token it holds is refused from the
/// next request (this server at once, other replicas within `AUTH_CACHE_TTL_SECS`).
/// Its orders, refunds and ledger stay as they are.
#[utoipa::path(post, path = "/api/v1/admin/accounts/{id}/disable", tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Account id")),
    request_body(content = Option<ReasonRequest>, description = "Optional reason"),
    responses(
        (status = 200, description = "The account now", body = AccountSummary),
        (status = 400, description = "`reason_too_long`", body = ErrorResponse),
        (status = 401, description = "Missing or invalid token", body = ErrorResponse),
        (status = 403, description = "Not an administrator", body = ErrorResponse),
        (status = 404, description = "No such account", body = ErrorResponse),
        (status = 409, description = "`last_admin`, `concurrent_change`", body = ErrorResponse)))]
pub async fn disable_account(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
    body: Option<web::Json<ReasonRequest>>,
) -> AppResult<HttpResponse> {
    change(&state, &user, &path, AccountChange::Disable, body).await
}

/// Enable a disabled account (it signs in again; tokens from before stay revoked).
#[utoipa::path(post, path = "/api/v1/admin/accounts/{id}/enable", tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Account id")),
    request_body(content = Option<ReasonRequest>, description = "Optional reason"),
    responses(
        (status = 200, description = "The account now", body = AccountSummary),
        (status = 400, description = "`reason_too_long`", body = ErrorResponse),
        (status = 401, description = "Missing or invalid token", body = ErrorResponse),
        (status = 403, description = "Not an administrator", body = ErrorResponse),
        (status = 404, description = "No such account", body = ErrorResponse),
        (status = 409, description = "`concurrent_change`", body = ErrorResponse)))]
pub async fn enable_account(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
    body: Option<web::Json<ReasonRequest>>,
) -> AppResult<HttpResponse> {
    change(&state, &user, &path, AccountChange::Enable, body).await
}

/// Grant the admin role (the account's tokens are revoked: it signs in again as admin).
#[utoipa::path(post, path = "/api/v1/admin/accounts/{id}/grant-admin", tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Account id")),
    request_body(content = Option<ReasonRequest>, description = "Optional reason"),
    responses(
        (status = 200, description = "The account now", body = AccountSummary),
        (status = 400, description = "`reason_too_long`", body = ErrorResponse),
        (status = 401, description = "Missing or invalid token", body = ErrorResponse),
        (status = 403, description = "Not an administrator", body = ErrorResponse),
        (status = 404, description = "No such account", body = ErrorResponse),
        (status = 409, description = "`concurrent_change`", body = ErrorResponse)))]
pub async fn grant_admin(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
    body: Option<web::Json<ReasonRequest>>,
) -> AppResult<HttpResponse> {
    change(&state, &user, &path, AccountChange::GrantAdmin, body).await
}

/// Revoke the admin role (bumps the token version). The last active admin cannot be
/// demoted (`last_admin`).
#[utoipa::path(post, path = "/api/v1/admin/accounts/{id}/revoke-admin", tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Account id")),
    request_body(content = Option<ReasonRequest>, description = "Optional reason"),
    responses(
        (status = 200, description = "The account now", body = AccountSummary),
        (status = 400, description = "`reason_too_long`", body = ErrorResponse),
        (status = 401, description = "Missing or invalid token", body = ErrorResponse),
        (status = 403, description = "Not an administrator", body = ErrorResponse),
        (status = 404, description = "No such account", body = ErrorResponse),
        (status = 409, description = "`last_admin`, `concurrent_change`", body = ErrorResponse)))]
pub async fn revoke_admin(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
    body: Option<web::Json<ReasonRequest>>,
) -> AppResult<HttpResponse> {
    change(&state, &user, &path, AccountChange::RevokeAdmin, body).await
}

/// Every product, on sale or retired, in display order.
#[utoipa::path(get, path = "/api/v1/admin/products", tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The whole catalog", body = AdminProductList),
        (status = 401, description = "Missing or invalid token", body = ErrorResponse),
        (status = 403, description = "Not an administrator", body = ErrorResponse)))]
pub async fn list_products(state: web::Data<AppState>, user: AuthUser) -> AppResult<HttpResponse> {
    user.require_admin()?;
    Ok(HttpResponse::Ok().json(catalog::list_all(&state.db).await?))
}

async fn catalog_change(
    state: &AppState,
    user: &AuthUser,
    op: CatalogOp,
) -> AppResult<HttpResponse> {
    let actor = Actor::of(state, user).await?;
    Ok(HttpResponse::Ok().json(catalog::apply(&state.db, &actor, op).await?))
}

/// Add a product (a points pack, a membership tier's period, limited-stock goods with
/// `stock`); on sale at once, shown last.
#[utoipa::path(post, path = "/api/v1/admin/products", tag = "admin",
    security(("bearer" = [])),
    request_body = ProductCreate,
    responses(
        (status = 200, description = "The product", body = ProductResponse),
        (status = 400, description = "`invalid_product`", body = ErrorResponse),
        (status = 401, description = "Missing or invalid token", body = ErrorResponse),
        (status = 403, description = "Not an administrator", body = ErrorResponse),
        (status = 409, description = "`tier_price_order`, `tier_rank_conflict`", body = ErrorResponse)))]
pub async fn create_product(
    state: web::Data<AppState>,
    user: AuthUser,
    body: web::Json<ProductCreate>,
) -> AppResult<HttpResponse> {
    catalog_change(&state, &user, catalog::create_op(&body)).await
}

/// Edit a product. New orders use the new price and grant; orders created before keep
/// their snapshot (they are paid and fulfilled as created).
#[utoipa::path(patch, path = "/api/v1/admin/products/{id}", tag = "admin",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Product id")),
    request_body = ProductPatchRequest,
    responses(
        (status = 200, description = "The product", body = ProductResponse),
        (status = 400, description = "`invalid_product`, `empty_patch`", body = ErrorResponse),
        (status = 401, description = "Missing or invalid token", body = ErrorResponse),
        (status = 403, description = "Not an administrator", body = ErrorResponse),
        (status = 404, description = "No such product", body = ErrorResponse),
        (status = 409, description = "`tier_price_order`, `tier_rank_conflict`", body = ErrorResponse)))]
pub async fn update_product(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<i64>,
    body: web::Json<ProductPatchRequest>,
) -> AppResult<HttpResponse> {
    user.require_admin()?;
    let op = catalog::update_op(path.into_inner(), &body)?;
    catalog_change(&state, &user, op).await
}

/// Retire a product: it leaves the catalog and cannot be bought; its orders stay intact.
#[utoipa::path(post, path = "/api/v1/admin/products/{id}/retire", tag = "admin",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Product id")),
    responses(
        (status = 200, description = "The product", body = ProductResponse),
        (status = 401, description = "Missing or invalid token", body = ErrorResponse),
        (status = 403, description = "Not an administrator", body = ErrorResponse),
        (status = 404, description = "No such product", body = ErrorResponse)))]
pub async fn retire_product(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<i64>,
) -> AppResult<HttpResponse> {
    catalog_change(
        &state,
        &user,
        CatalogOp::SetActive(path.into_inner(), false),
    )
    .await
}

/// Put a retired product on sale again (checked against the tiers on sale).
#[utoipa::path(post, path = "/api/v1/admin/products/{id}/restore", tag = "admin",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Product id")),
    responses(
        (status = 200, description = "The product", body = ProductResponse),
        (status = 401, description = "Missing or invalid token", body = ErrorResponse),
        (status = 403, description = "Not an administrator", body = ErrorResponse),
        (status = 404, description = "No such product", body = ErrorResponse),
        (status = 409, description = "`tier_price_order`, `tier_rank_conflict`", body = ErrorResponse)))]
pub async fn restore_product(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<i64>,
) -> AppResult<HttpResponse> {
    catalog_change(&state, &user, CatalogOp::SetActive(path.into_inner(), true)).await
}

/// Add units to a limited-stock product (added to what is left, so a sale meanwhile is
/// never lost).
#[utoipa::path(post, path = "/api/v1/admin/products/{id}/restock", tag = "admin",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Product id")),
    request_body = RestockRequest,
    responses(
        (status = 200, description = "The product", body = ProductResponse),
        (status = 400, description = "`invalid_product`", body = ErrorResponse),
        (status = 401, description = "Missing or invalid token", body = ErrorResponse),
        (status = 403, description = "Not an administrator", body = ErrorResponse),
        (status = 404, description = "No such product", body = ErrorResponse),
        (status = 409, description = "`unlimited_stock`", body = ErrorResponse)))]
pub async fn restock_product(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<i64>,
    body: web::Json<RestockRequest>,
) -> AppResult<HttpResponse> {
    catalog_change(
        &state,
        &user,
        CatalogOp::Restock(path.into_inner(), body.add),
    )
    .await
}

/// Show products in the given order (unlisted ones follow in their current order).
#[utoipa::path(post, path = "/api/v1/admin/products/reorder", tag = "admin",
    security(("bearer" = [])),
    request_body = ReorderRequest,
    responses(
        (status = 200, description = "The whole catalog in its new order", body = AdminProductList),
        (status = 400, description = "`invalid_order`", body = ErrorResponse),
        (status = 401, description = "Missing or invalid token", body = ErrorResponse),
        (status = 403, description = "Not an administrator", body = ErrorResponse)))]
pub async fn reorder_products(
    state: web::Data<AppState>,
    user: AuthUser,
    body: web::Json<ReorderRequest>,
) -> AppResult<HttpResponse> {
    let actor = Actor::of(&state, &user).await?;
    Ok(HttpResponse::Ok().json(catalog::reorder(&state.db, &actor, &body.ids).await?))
}
