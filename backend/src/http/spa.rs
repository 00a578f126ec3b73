//! Serves the built Leptos SPA: static files, and index.html for unknown non-API paths
//! so client-side routes survive a reload.

use std::path::PathBuf;

use actix_files::{Files, NamedFile};
use actix_web::dev::{fn_service, ServiceRequest, ServiceResponse};
use actix_web::{HttpResponse, ResponseError};

use crate::error::AppError;

const NOT_BUILT: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>fenpay</title></head>\
<body><h1>fenpay</h1><p>The web app is not built. Run <code>scripts/build-frontend.sh</code> \
(the README run command does it for you). The API is at <a href=\"/docs/\">/docs/</a>.</p></body></html>";

/// The static file service for `dir`, mounted last at `/`.
pub fn service(dir: PathBuf) -> Files {
    let index = dir.join("index.html");
    Files::new("/", dir)
        .index_file("index.html")
        .default_handler(fn_service(move |req: ServiceRequest| {
            let index = index.clone();
            async move {
                let (req, _) = req.into_parts();
                let path = req.path();
                // API-looking paths keep the JSON 404 contract.
                if path.starts_with("/api/") || path.starts_with("/api-docs") {
                    let resp = AppError::NotFound("route").error_response();
                    return Ok(ServiceResponse::new(req, resp));
                }
                let resp = match NamedFile::open_async(&index).await {
                    Ok(file) => file.into_response(&req),
                    Err(_) => not_built(),
                };
                Ok(ServiceResponse::new(req, resp))
            }
        }))
}

/// The page shown when `frontend/dist` has not been built.
pub fn not_built() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(NOT_BUILT)
}
