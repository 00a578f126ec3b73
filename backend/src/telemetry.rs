//! Structured logs: `RUST_LOG` filters, `LOG_FORMAT=json` for machines, pretty otherwise.

use tracing_subscriber::{fmt, EnvFilter};

/// Without `RUST_LOG`. actix-http's connection dispatcher logs at ERROR what a client
/// alone causes (a request line it cannot parse, a connection reset): silenced.
pub const DEFAULT_FILTER: &str =
    "info,actix_server=warn,h2=warn,hyper=warn,actix_http::h1::dispatcher=off";

/// Install the global subscriber once; later calls are ignored (tests call it repeatedly).
pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let json = std::env::var("LOG_FORMAT")
        .map(|v| v == "json")
        .unwrap_or(false);
    let result = if json {
        fmt().with_env_filter(filter).json().try_init()
    } else {
        fmt().with_env_filter(filter).try_init()
    };
    // Already installed (tests, or an embedding program): keep the existing one.
    let _ = result;
}

/// [`init`] writing to stderr: for commands whose stdout is their answer (`fenpay app`).
pub fn init_stderr() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let json = std::env::var("LOG_FORMAT")
        .map(|v| v == "json")
        .unwrap_or(false);
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// The access log's request span (tracing-actix-web's fields), with secret-bearing query
/// parameters (stream tokens above all: `EventSource` cannot send headers) redacted.
pub struct RedactedSpan;

impl tracing_actix_web::RootSpanBuilder for RedactedSpan {
    fn on_request_start(request: &actix_web::dev::ServiceRequest) -> tracing::Span {
        use actix_web::HttpMessage;
        let target = request
            .uri()
            .path_and_query()
            .map(|p| redact_target(p.as_str()))
            .unwrap_or_default();
        let route = request.match_pattern().unwrap_or_else(|| "default".into());
        let request_id = request
            .extensions()
            .get::<tracing_actix_web::RequestId>()
            .map(|id| id.to_string())
            .unwrap_or_default();
        tracing::info_span!(
            "HTTP request",
            http.method = %request.method(),
            http.route = %route,
            http.target = %target,
            http.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
            request_id = %request_id,
            exception.message = tracing::field::Empty,
            exception.details = tracing::field::Empty,
        )
    }

    fn on_request_end<B: actix_web::body::MessageBody>(
        span: tracing::Span,
        outcome: &Result<actix_web::dev::ServiceResponse<B>, actix_web::Error>,
    ) {
        tracing_actix_web::DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}

/// Query parameters whose values never reach a log.
const SECRET_PARAMS: &[&str] = &[
    "token",
    "access_token",
    "stream_token",
    "password",
    "secret",
    "api_key",
    "key",
    "sign",
    "signature",
    // A hosted checkout link's signature, and a WeChat web authorisation code.
    "sig",
    "code",
];

/// `path?token=abc&x=1` -> `path?token=<redacted>&x=1` (names compared case-insensitively,
/// percent-encoded names decoded first).
pub fn redact_target(target: &str) -> String {
    let Some((path, query)) = target.split_once('?') else {
        return target.to_string();
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| {
            let name = pair.split_once('=').map_or(pair, |(n, _)| n);
            let decoded = urlencoding::decode(name)
                .map(|n| n.to_ascii_lowercase())
                .unwrap_or_default();
            if SECRET_PARAMS.contains(&decoded.as_str()) {
                format!("{name}=<redacted>")
            } else {
                pair.to_string()
            }
        })
        .collect();
    format!("{path}?{}", pairs.join("&"))
}

#[cfg(test)]
mod tests {
    use super::redact_target;

    #[test]
    fn secret_query_parameters_are_redacted() {
        assert_eq!(
            redact_target("/api/v1/payment/orders/FP1/events?token=eyJabc.def&x=1"),
            "/api/v1/payment/orders/FP1/events?token=<redacted>&x=1"
        );
        assert_eq!(redact_target("/a?%54oken=s"), "/a?%54oken=<redacted>");
        assert_eq!(
            redact_target("/a?Sign=s&sign"),
            "/a?Sign=<redacted>&sign=<redacted>"
        );
        assert_eq!(
            redact_target("/pay/FP1?sig=abc&state=s"),
            "/pay/FP1?sig=<redacted>&state=s"
        );
        assert_eq!(
            redact_target("/api/v1/checkout/FP1/wechat-oauth/callback?code=c1&sig=s"),
            "/api/v1/checkout/FP1/wechat-oauth/callback?code=<redacted>&sig=<redacted>"
        );
        assert_eq!(redact_target("/a?page=2"), "/a?page=2");
        assert_eq!(redact_target("/a"), "/a");
    }
}
