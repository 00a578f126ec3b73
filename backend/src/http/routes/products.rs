//! Public product catalog.

use actix_web::{web, HttpResponse};
use api_types::error::ErrorResponse;
use api_types::product::{ProductListResponse, ProductResponse};

use crate::error::AppResult;
use crate::service::catalog;
use crate::startup::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/products", web::get().to(list_products))
        .route("/products/{id}", web::get().to(get_product));
}

/// List active products (points packs and membership tiers) in display order.
#[utoipa::path(get, path = "/api/v1/products", tag = "products",
    responses((status = 200, description = "Active products", body = ProductListResponse)))]
pub async fn list_products(state: web::Data<AppState>) -> AppResult<HttpResponse> {
    let items = catalog::list(&state.db).await?;
    Ok(HttpResponse::Ok().json(ProductListResponse { items }))
}

/// One active product.
#[utoipa::path(get, path = "/api/v1/products/{id}", tag = "products",
    params(("id" = i64, Path, description = "Product id")),
    responses(
        (status = 200, description = "The product", body = ProductResponse),
        (status = 400, description = "Id is not a number", body = ErrorResponse),
        (status = 404, description = "No such active product", body = ErrorResponse)))]
pub async fn get_product(
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> AppResult<HttpResponse> {
    let product = catalog::get(&state.db, id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(product))
}
