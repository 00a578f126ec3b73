//! The OpenAPI document (generated from the handlers and DTOs) and Swagger UI.

use actix_web::{get, HttpResponse};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use super::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "fenpay",
        description = "Self-hosted payment backend for WeChat Pay API v3 and Alipay. Money is integer fen; `amount` fields in yuan are derived from fen with exactly two decimals. Errors are `{\"code\", \"message\"}` with stable snake_case codes.",
        license(name = "Apache-2.0")
    ),
    paths(
        routes::health::healthz,
        routes::health::readyz,
        routes::auth::register,
        routes::auth::login,
        routes::auth::me,
        routes::auth::logout_all,
        routes::products::list_products,
        routes::products::get_product,
        routes::payment::create_order,
        routes::payment::order_status,
        routes::payment::cancel_order,
        routes::payment::list_orders,
        routes::events::stream_token,
        routes::events::events,
        routes::callbacks::wechat_callback,
        routes::callbacks::wechat_refund_callback,
        routes::callbacks::alipay_callback,
        routes::callbacks::alipay_return,
        routes::admin::list_orders,
        routes::admin::order_detail,
        routes::admin::create_refund,
        routes::admin::stats,
        routes::admin::verify_ledger,
        routes::admin::list_deliveries,
        routes::admin::resend_delivery,
        routes::payment::dev_info,
        routes::payment::simulate_pay,
    ),
    components(schemas(
        api_types::error::ErrorResponse,
        api_types::error::FieldError,
    )),
    modifiers(&BearerScheme),
    tags(
        (name = "auth", description = "Accounts and tokens"),
        (name = "products", description = "Product catalog"),
        (name = "payment", description = "Orders and payment (the documented contract)"),
        (name = "callbacks", description = "Provider notifications (signed by the provider, no JWT)"),
        (name = "admin", description = "Operators (role admin): orders, payment records, refunds, totals, webhook deliveries"),
        (name = "development", description = "Development-only helpers (404 in production)"),
        (name = "health", description = "Liveness and readiness"),
    )
)]
pub struct ApiDoc;

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut http = Http::new(HttpAuthScheme::Bearer);
        http.bearer_format = Some("JWT".to_string());
        components.add_security_scheme("bearer", SecurityScheme::Http(http));
    }
}

/// The document as committed in `openapi/openapi.json` (pretty, trailing newline).
pub fn spec_json() -> String {
    let mut text = ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    text.push('\n');
    text
}

/// The OpenAPI document.
#[get("/api-docs/openapi.json")]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(spec_json())
}

/// Swagger UI at `/docs/` (assets vendored into the binary; works offline).
pub fn swagger_ui() -> SwaggerUi {
    SwaggerUi::new("/docs/{_:.*}").config(utoipa_swagger_ui::Config::from("/api-docs/openapi.json"))
}
