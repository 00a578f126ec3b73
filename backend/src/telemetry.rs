//! Structured logs: `RUST_LOG` filters, `LOG_FORMAT=json` for machines, pretty otherwise.

use tracing_subscriber::{fmt, EnvFilter};

/// Install the global subscriber once; later calls are ignored (tests call it repeatedly).
pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,actix_server=warn,h2=warn,hyper=warn"));
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
