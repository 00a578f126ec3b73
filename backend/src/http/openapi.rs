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
        routes::complaints::wechat_complaint_callback,
        routes::complaints::list_complaints,
        routes::complaints::complaint_detail,
        routes::complaints::sync_complaints,
        routes::complaints::reply_complaint,
        routes::complaints::complete_complaint,
        routes::admin::list_orders,
        routes::admin::order_detail,
        routes::admin::create_refund,
        routes::admin::stats,
        routes::admin::export_orders,
        routes::admin::export_refunds,
        routes::admin::export_ledger,
        routes::admin::verify_ledger,
        routes::admin::list_deliveries,
        routes::admin::resend_delivery,
        routes::admin::list_reconciliations,
        routes::admin::reconciliation_detail,
        routes::admin::run_reconciliation,
        routes::console::list_audit,
        routes::console::list_accounts,
        routes::console::account_detail,
        routes::console::adjust_account,
        routes::console::disable_account,
        routes::console::enable_account,
        routes::console::grant_admin,
        routes::console::revoke_admin,
        routes::console::list_products,
        routes::console::create_product,
        routes::console::update_product,
        routes::console::retire_product,
        routes::console::restore_product,
        routes::console::restock_product,
        routes::console::reorder_products,
        routes::merchant::create_order,
        routes::merchant::list_orders,
        routes::merchant::get_order,
        routes::merchant::cancel_order,
        routes::merchant::create_refund,
        routes::apps::list_apps,
        routes::apps::create_app,
        routes::apps::get_app,
        routes::apps::update_app,
        routes::apps::rotate_key,
        routes::apps::revoke_app,
        routes::apps::rotate_webhook_secret,
        routes::app_tokens::get_jwt,
        routes::app_tokens::set_jwt,
        routes::app_tokens::clear_jwt,
        routes::epay::submit_get,
        routes::epay::submit_post,
        routes::epay::mapi,
        routes::epay::api_get,
        routes::epay::api_post,
        routes::payment::dev_info,
        routes::payment::simulate_pay,
        routes::checkout::get_checkout,
        routes::checkout::pay,
        routes::checkout::events,
        routes::checkout::return_to_app,
        routes::checkout::wechat_oauth,
        routes::checkout::wechat_oauth_callback,
        routes::checkout::simulate_pay,
    ),
    components(schemas(
        api_types::error::ErrorResponse,
        api_types::error::FieldError,
        OrderStatusEvent,
    )),
    modifiers(&BearerScheme, &CommonErrors),
    tags(
        (name = "auth", description = "Accounts and tokens"),
        (name = "products", description = "Product catalog"),
        (name = "payment", description = "Orders and payment (the documented contract)"),
        (name = "callbacks", description = "Provider notifications (signed by the provider, no JWT)"),
        (name = "merchant", description = "The server API for merchant apps (`Authorization: Bearer sk_live_...`): orders, cancels, refunds"),
        (name = "admin", description = "Operators (role admin): orders, payment records, refunds, totals, webhook deliveries, bill reconciliation, merchant apps"),
        (name = "checkout", description = "The hosted checkout page (public; the link's `sig` is required)"),
        (name = "admin", description = "Operators (role admin): orders, payment records, refunds, totals, webhook deliveries, bill reconciliation"),
        (name = "epay", description = "The epay (易支付)-compatible gateway for apps that enabled it (MD5-signed form parameters; see the README)"),
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
        let mut key = Http::new(HttpAuthScheme::Bearer);
        key.bearer_format = Some("sk_live_... / sk_test_... (an app's API key)".to_string());
        components.add_security_scheme("api_key", SecurityScheme::Http(key));
    }
}

/// One server-sent event of an order's live stream.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct OrderStatusEvent {
    /// Always `status`.
    pub event: String,
    /// The order now: an `OrderResponse`, as JSON text.
    #[schema(content_media_type = "application/json")]
    pub data: String,
}

/// Answers that actix or the token check give before a handler runs, added to every
/// operation that can get them and does not document them yet: 400 (a query, path or body
/// that does not parse), 401 (no valid token), 413 (body too large), 415 (not JSON).
struct CommonErrors;

impl Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{Content, Ref, RefOr, ResponseBuilder};
        let error = |description: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        Content::new(Some(Ref::from_schema_name("ErrorResponse"))),
                    )
                    .build(),
            )
        };
        for item in openapi.paths.paths.values_mut() {
            let ops = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            for op in ops.into_iter().flatten() {
                let body = op.request_body.as_ref();
                let json_body = body.is_some_and(|b| b.content.contains_key("application/json"));
                let params = op.parameters.as_ref().is_some_and(|p| !p.is_empty());
                let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
                let responses = &mut op.responses.responses;
                if params || body.is_some() {
                    responses.entry("400".into()).or_insert_with(|| {
                        error("`invalid_query`, `invalid_path`, `malformed_json`, `invalid_body` or `validation_failed`: the request does not parse")
                    });
                }
                if secured {
                    responses.entry("401".into()).or_insert_with(|| {
                        error("`unauthorized`: missing, invalid, expired or revoked token")
                    });
                }
                if body.is_some() {
                    responses
                        .entry("413".into())
                        .or_insert_with(|| error("`payload_too_large`"));
                }
                if json_body {
                    responses.entry("415".into()).or_insert_with(|| {
                        error("`unsupported_media_type`: the body is not `application/json`")
                    });
                }
            }
        }
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
    // No validator badge: it is an image from validator.swagger.io (which the page's
    // Content-Security-Policy refuses, and which would learn the document's URL).
    SwaggerUi::new("/docs/{_:.*}")
        .config(utoipa_swagger_ui::Config::from("/api-docs/openapi.json").validator_url("none"))
}
