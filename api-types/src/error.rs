//! The error body every failing API call returns.

use serde::{Deserialize, Serialize};

/// `{"code": "...", "message": "..."}`: clients switch on the stable snake_case `code`;
/// `message` is for humans; `details` lists per-field problems on validation errors.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct ErrorResponse {
    /// Stable machine-readable code, e.g. `validation_failed`, `unauthorized`, `not_found`.
    pub code: String,
    /// Human-readable explanation; never contains internals.
    pub message: String,
    /// Field-level problems (only for `validation_failed`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<FieldError>,
}

/// One invalid field of a request.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct FieldError {
    /// Name of the field in the request body or query.
    pub field: String,
    /// Rule that failed, e.g. `length`, `email`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}
