//! `AppError`: the one error type at the HTTP edge. It maps every failure to an honest
//! status, a stable snake_case `code` and a human message; internals stay in the logs.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use api_types::error::{ErrorResponse, FieldError};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("{0}")]
    Unauthorized(String),
    #[error("invalid username or password")]
    InvalidCredentials,
    #[error("{0}")]
    Forbidden(String),
    /// 403 with its own code (e.g. `account_disabled`).
    #[error("{message}")]
    Denied { code: &'static str, message: String },
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("request body is too large")]
    PayloadTooLarge,
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    #[error("too many attempts, retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// 429 with its own code (e.g. `too_many_streams`) and `Retry-After`.
    #[error("{message}")]
    TooMany {
        code: &'static str,
        message: String,
        retry_after_secs: u64,
    },
    #[error("payment provider unavailable: {0}")]
    ProviderUnavailable(String),
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error("the server is busy, retry in {retry_after_secs} s")]
    Busy { retry_after_secs: u64 },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        AppError::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        AppError::Conflict {
            code,
            message: message.into(),
        }
    }

    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        AppError::Internal(err.into())
    }

    /// Stable machine-readable code clients switch on.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::Validation(_) => "validation_failed",
            AppError::BadRequest { code, .. } => code,
            AppError::Unauthorized(_) => "unauthorized",
            AppError::InvalidCredentials => "invalid_credentials",
            AppError::Forbidden(_) => "forbidden",
            AppError::Denied { code, .. } => code,
            AppError::NotFound(_) => "not_found",
            AppError::Conflict { code, .. } => code,
            AppError::PayloadTooLarge => "payload_too_large",
            AppError::UnsupportedMediaType(_) => "unsupported_media_type",
            AppError::Unprocessable { code, .. } => code,
            AppError::RateLimited { .. } => "rate_limited",
            AppError::TooMany { code, .. } => code,
            AppError::ProviderUnavailable(_) => "provider_unavailable",
            AppError::Unavailable(_) => "service_unavailable",
            AppError::Busy { .. } => "server_busy",
            AppError::Internal(_) => "internal_error",
        }
    }

    fn public_message(&self) -> String {
        match self {
            AppError::Internal(_) => "internal server error".to_string(),
            AppError::ProviderUnavailable(_) => {
                "the payment provider is unavailable, please retry".to_string()
            }
            AppError::Unavailable(_) => "service temporarily unavailable".to_string(),
            other => other.to_string(),
        }
    }

    /// The JSON body sent to clients.
    pub fn body(&self) -> ErrorResponse {
        ErrorResponse {
            code: self.code().to_string(),
            message: self.public_message(),
            details: match self {
                AppError::Validation(details) => details.clone(),
                _ => Vec::new(),
            },
        }
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            AppError::Validation(_) | AppError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            AppError::Unauthorized(_) | AppError::InvalidCredentials => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) | AppError::Denied { .. } => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Conflict { .. } => StatusCode::CONFLICT,
            AppError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::RateLimited { .. } | AppError::TooMany { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            AppError::ProviderUnavailable(_) => StatusCode::BAD_GATEWAY,
            AppError::Unavailable(_) | AppError::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() {
            // The whole cause chain goes to the log, never to the client.
            tracing::error!(code = self.code(), error = ?self, "request failed");
        }
        let mut builder = HttpResponse::build(status);
        if let AppError::RateLimited { retry_after_secs }
        | AppError::Busy { retry_after_secs }
        | AppError::TooMany {
            retry_after_secs, ..
        } = self
        {
            builder.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
        }
        builder.json(self.body())
    }
}

impl From<validator::ValidationErrors> for AppError {
    fn from(errors: validator::ValidationErrors) -> Self {
        let mut details: Vec<FieldError> = errors
            .field_errors()
            .into_iter()
            .flat_map(|(field, errs)| {
                errs.iter().map(move |e| FieldError {
                    field: field.to_string(),
                    code: e.code.to_string(),
                    message: e
                        .message
                        .as_ref()
                        .map(|m| m.to_string())
                        .unwrap_or_else(|| describe_rule(e)),
                })
            })
            .collect();
        details.sort_by(|a, b| a.field.cmp(&b.field).then(a.code.cmp(&b.code)));
        AppError::Validation(details)
    }
}

fn describe_rule(e: &validator::ValidationError) -> String {
    let param = |name: &str| e.params.get(name).map(|v| v.to_string());
    match e.code.as_ref() {
        "length" => match (param("min"), param("max")) {
            (Some(min), Some(max)) => format!("length must be between {min} and {max}"),
            (Some(min), None) => format!("length must be at least {min}"),
            (None, Some(max)) => format!("length must be at most {max}"),
            (None, None) => "invalid length".to_string(),
        },
        "email" => "must be a valid email address".to_string(),
        "range" => "out of range".to_string(),
        other => format!("invalid ({other})"),
    }
}

impl From<crate::db::DbError> for AppError {
    fn from(err: crate::db::DbError) -> Self {
        if err.is_unavailable() {
            return AppError::Unavailable(err.to_string());
        }
        AppError::Internal(err.into())
    }
}

/// Map actix's JSON extractor failures to our error body with honest statuses.
pub fn json_error(err: actix_web::error::JsonPayloadError) -> AppError {
    use actix_web::error::JsonPayloadError as E;
    match err {
        E::OverflowKnownLength { .. } | E::Overflow { .. } => AppError::PayloadTooLarge,
        E::ContentType => {
            AppError::UnsupportedMediaType("expected Content-Type: application/json".to_string())
        }
        E::Deserialize(e) if e.is_data() => {
            AppError::bad_request("invalid_body", format!("invalid request body: {e}"))
        }
        E::Deserialize(e) => {
            AppError::bad_request("malformed_json", format!("malformed JSON: {e}"))
        }
        other => AppError::bad_request("invalid_body", other.to_string()),
    }
}

/// Map query-string extractor failures.
pub fn query_error(err: actix_web::error::QueryPayloadError) -> AppError {
    AppError::bad_request("invalid_query", err.to_string())
}

/// Map path extractor failures (e.g. a non-numeric id).
pub fn path_error(err: actix_web::error::PathError) -> AppError {
    AppError::bad_request("invalid_path", err.to_string())
}

pub type AppResult<T> = Result<T, AppError>;

/// The Alipay callback answers its own plain `success` / `fail` (Alipay's protocol).
pub const ALIPAY_CALLBACK_PATH: &str = "/api/v1/payment/alipay/callback";

/// The epay gateway's paths answer in its protocol (HTML refusal pages from submit.php).
pub const EPAY_PATH_PREFIX: &str = "/epay/";

/// Turn any error response that is not JSON yet (actix's own: 405 from a resource, 413
/// from a body extractor, 400 from a path that does not decode) into the JSON error body
/// with a stable code, keeping its status and headers. The Alipay callback's own `fail`
/// replies and the epay gateway's own refusal pages (its protocol's clients expect them)
/// stay as they are. Other responses pass through untouched (no boxing).
pub fn ensure_json<B>(
    res: actix_web::dev::ServiceResponse<B>,
) -> actix_web::dev::ServiceResponse<actix_web::body::EitherBody<B>>
where
    B: actix_web::body::MessageBody + 'static,
{
    let path = res.request().path();
    let own_reply = (path == ALIPAY_CALLBACK_PATH || path.starts_with(EPAY_PATH_PREFIX))
        && res.response().error().is_none();
    if own_reply || !needs_json(res.response()) {
        return res.map_into_left_body();
    }
    let message = res
        .response()
        .error()
        .filter(|_| res.status().is_client_error())
        .map(|e| e.to_string());
    let (req, old) = res.into_parts();
    actix_web::dev::ServiceResponse::new(req, json_like(&old, message)).map_into_right_body()
}

/// An error status whose body is not JSON.
fn needs_json<B>(res: &HttpResponse<B>) -> bool {
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    res.status().as_u16() >= 400 && !is_json
}

/// The JSON error body with `res`'s status and headers (`message`, or the status's reason).
fn json_like<B>(res: &HttpResponse<B>, message: Option<String>) -> HttpResponse {
    let status = res.status();
    let mut new = HttpResponse::build(status).json(ErrorResponse {
        code: code_for_status(status).to_string(),
        message: message
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string()),
        details: Vec::new(),
    });
    for (name, value) in res.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            new.headers_mut().append(name.clone(), value.clone());
        }
    }
    new
}

/// A middleware's refusal (an `Err` that never became a response inside the app, e.g. a
/// CORS preflight from a foreign origin), answered as the JSON error body.
#[derive(Debug)]
pub struct JsonRefusal(pub actix_web::Error);

impl std::fmt::Display for JsonRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl ResponseError for JsonRefusal {
    fn status_code(&self) -> StatusCode {
        self.0.as_response_error().status_code()
    }

    fn error_response(&self) -> HttpResponse {
        let res = self.0.error_response();
        if !needs_json(&res) {
            return res;
        }
        let message = self
            .status_code()
            .is_client_error()
            .then(|| self.0.to_string());
        json_like(&res, message)
    }
}

/// The stable code of an error that only has a status.
pub fn code_for_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        406 => "not_acceptable",
        408 => "request_timeout",
        411 => "length_required",
        413 => "payload_too_large",
        414 => "uri_too_long",
        415 => "unsupported_media_type",
        429 => "rate_limited",
        431 => "header_fields_too_large",
        500 => "internal_error",
        502 => "provider_unavailable",
        503 => "service_unavailable",
        s if s < 500 => "bad_request",
        _ => "internal_error",
    }
}
