//! Route handlers grouped by area.

pub mod admin;
pub mod app_tokens;
pub mod apps;
pub mod auth;
pub mod callbacks;
pub mod checkout;
pub mod complaints;
pub mod console;
pub mod epay;
pub mod events;
pub mod health;
pub mod merchant;
pub mod payment;
pub mod products;

use actix_web::{HttpResponse, ResponseError};

use crate::error::AppError;

/// Unknown API paths answer JSON, never HTML.
pub async fn not_found() -> HttpResponse {
    AppError::NotFound("route").error_response()
}
