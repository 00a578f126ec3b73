//! The HTTP edge: routes, OpenAPI document, static SPA, error conventions.

pub mod idempotency;
pub mod openapi;
pub mod routes;
pub mod security_headers;
pub mod spa;

use actix_web::web;
use validator::Validate;

use crate::error::{AppError, AppResult};

/// Run the request's validation rules; 400 `validation_failed` with field details.
pub fn validated<T: Validate>(body: web::Json<T>) -> AppResult<T> {
    let body = body.into_inner();
    body.validate().map_err(AppError::from)?;
    Ok(body)
}

/// Mount every API route, the OpenAPI document, Swagger UI and health checks.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // Resources, not method-guarded services: another method is 405, not the SPA.
    cfg.service(web::resource("/healthz").get(routes::health::healthz))
        .service(web::resource("/readyz").get(routes::health::readyz))
        .service(openapi::openapi_json)
        .service(openapi::swagger_ui())
        // The epay-compatible gateway lives outside /api/v1, where epay clients expect it.
        .configure(routes::epay::configure)
        .service(
            web::scope("/api/v1")
                .configure(routes::auth::configure)
                .configure(routes::products::configure)
                .configure(routes::payment::configure)
                .configure(routes::callbacks::configure)
                .configure(routes::complaints::configure)
                .configure(routes::events::configure)
                .configure(routes::checkout::configure)
                .configure(routes::admin::configure)
                .configure(routes::console::configure)
                .configure(routes::merchant::configure)
                .configure(routes::apps::configure)
                .configure(routes::app_tokens::configure)
                .default_service(web::to(routes::not_found)),
        );
}
