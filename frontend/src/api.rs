//! The only module that speaks HTTP: same-origin `/api/v1`, JSON bodies, bearer tokens.
//!
//! A 401 on a request that carried a token ends the session here, once, so every
//! screen gets "session expired" handling for free.

use api_types::admin::{
    AdminOrderDetail, AdminOrderListResponse, AdminOrderQuery, RefundRequest, RefundResponse,
    StatsQuery, StatsResponse, StreamTokenResponse,
};
use api_types::apps::{
    AppList, AppView, CreateAppRequest, CreatedApp, RotatedKey, RotatedWebhookSecret,
    UpdateAppRequest, UpdatedApp,
};
use api_types::auth::{LoginRequest, RegisterRequest, TokenResponse, UserResponse};
use api_types::complaints::{
    ComplaintDetail, ComplaintListResponse, ComplaintReplyRequest, ComplaintState,
    ComplaintSyncRequest, ComplaintSyncResponse,
};
use api_types::console::{
    AccountDetail, AccountListResponse, AccountQuery, AccountSummary, AdjustRequest,
    AdjustResponse, AdminProductList, AuditListResponse, AuditQuery, ProductCreate,
    ProductPatchRequest, ReasonRequest, ReorderRequest, RestockRequest,
};
use api_types::error::ErrorResponse;
use api_types::merchant::{CheckoutPayRequest, CheckoutView};
use api_types::payment::{
    CancelOrderRequest, CancelOrderResponse, CreateOrderRequest, CreateOrderResponse,
    OrderListResponse, OrderResponse,
};
use api_types::product::{ProductListResponse, ProductResponse};
use api_types::reconciliation::{
    ReconciliationDetail, ReconciliationList, ReconciliationQuery, RunReconciliationRequest,
    RunReconciliationResponse,
};
use leptos::prelude::*;
use serde::de::DeserializeOwned;
use serde::Serialize;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Headers, Request, RequestInit, Response};

use crate::state::{Notice, Session};
use crate::time::{note_server_date, now_ms};

const BASE: &str = "/api/v1";
/// Longest wait for one reply (the server gives a provider 10 s).
const REQUEST_TIMEOUT_MS: u32 = 20_000;
/// Longest wait for a whole CSV export (it streams; large ones take a while).
const DOWNLOAD_TIMEOUT_MS: u32 = 300_000;

/// Why a call failed.
#[derive(Clone, Debug, PartialEq)]
pub enum ApiError {
    /// The server answered with an error status; `body` is its `ErrorResponse` if it sent one.
    Status {
        status: u16,
        body: Option<ErrorResponse>,
    },
    /// No answer at all (offline, server down, request blocked).
    Network,
    /// A success status with a body that is not the expected wire type.
    Unexpected,
    /// The token was rejected; the session has already been cleared.
    SessionExpired,
}

impl ApiError {
    /// The stable error code, when the server sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ApiError::Status {
                body: Some(body), ..
            } => Some(body.code.as_str()),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Auth {
    /// Never send the token (sign-in, sign-up, public probes).
    Anonymous,
    /// Send the token when there is one.
    Bearer,
}

/// A handle on the API; `Copy`, so it moves freely into event handlers and tasks.
#[derive(Clone, Copy)]
pub struct Api {
    session: Session,
}

impl Api {
    pub fn new(session: Session) -> Self {
        Api { session }
    }

    pub async fn register(self, req: &RegisterRequest) -> Result<UserResponse, ApiError> {
        self.call(
            "POST",
            "/auth/register",
            Some(encode(req)?),
            Auth::Anonymous,
        )
        .await
    }

    pub async fn login(self, req: &LoginRequest) -> Result<TokenResponse, ApiError> {
        self.call("POST", "/auth/login", Some(encode(req)?), Auth::Anonymous)
            .await
    }

    pub async fn me(self) -> Result<UserResponse, ApiError> {
        self.call("GET", "/auth/me", None, Auth::Bearer).await
    }

    pub async fn products(self) -> Result<ProductListResponse, ApiError> {
        self.call("GET", "/products", None, Auth::Bearer).await
    }

    pub async fn create_order(
        self,
        req: &CreateOrderRequest,
    ) -> Result<CreateOrderResponse, ApiError> {
        self.call(
            "POST",
            "/payment/create-order",
            Some(encode(req)?),
            Auth::Bearer,
        )
        .await
    }

    pub async fn order_status(self, order_no: &str) -> Result<OrderResponse, ApiError> {
        let path = format!("/payment/order-status?order_no={}", query_value(order_no));
        self.call("GET", &path, None, Auth::Bearer).await
    }

    pub async fn cancel_order(self, order_no: &str) -> Result<CancelOrderResponse, ApiError> {
        let req = CancelOrderRequest {
            order_no: order_no.to_owned(),
        };
        self.call(
            "POST",
            "/payment/cancel-order",
            Some(encode(&req)?),
            Auth::Bearer,
        )
        .await
    }

    pub async fn orders(self, page: i64, per_page: i64) -> Result<OrderListResponse, ApiError> {
        let path = format!("/payment/orders?page={page}&per_page={per_page}");
        self.call("GET", &path, None, Auth::Bearer).await
    }

    /// A short-lived token for this order's event stream (`EventSource` cannot send headers).
    pub async fn stream_token(self, order_no: &str) -> Result<StreamTokenResponse, ApiError> {
        let path = format!("/payment/orders/{}/stream-token", path_segment(order_no));
        self.call("POST", &path, None, Auth::Bearer).await
    }

    /// Operators: orders across all users, filtered and paged.
    pub async fn admin_orders(
        self,
        query: &AdminOrderQuery,
    ) -> Result<AdminOrderListResponse, ApiError> {
        let path = format!("/admin/orders{}", admin_order_query(query));
        self.call("GET", &path, None, Auth::Bearer).await
    }

    /// Operators: one order with its payment records, refunds and outbound events.
    pub async fn admin_order(self, order_no: &str) -> Result<AdminOrderDetail, ApiError> {
        let path = format!("/admin/orders/{}", path_segment(order_no));
        self.call("GET", &path, None, Auth::Bearer).await
    }

    /// Operators: refunds (part of) a paid order. The same `idempotency_key` never
    /// refunds twice, so a repeated click or a retried request is harmless.
    pub async fn refund(
        self,
        req: &RefundRequest,
        idempotency_key: &str,
    ) -> Result<RefundResponse, ApiError> {
        let text = self
            .send_with(
                "POST",
                "/admin/refunds",
                Some(encode(req)?),
                Auth::Bearer,
                &[("Idempotency-Key", idempotency_key)],
            )
            .await?;
        serde_json::from_str(&text).map_err(|_| ApiError::Unexpected)
    }

    /// Operators: paid and refunded totals per day and provider.
    pub async fn admin_stats(self, query: &StatsQuery) -> Result<StatsResponse, ApiError> {
        let mut params = Vec::new();
        if let Some(from) = query.from {
            params.push(format!("from={from}"));
        }
        if let Some(to) = query.to {
            params.push(format!("to={to}"));
        }
        let path = format!("/admin/stats{}", join_query(&params));
        self.call("GET", &path, None, Auth::Bearer).await
    }

    /// Operators: bill reconciliations, newest day first.
    pub async fn admin_reconciliations(
        self,
        query: &ReconciliationQuery,
    ) -> Result<ReconciliationList, ApiError> {
        let mut params = Vec::new();
        if let Some(from) = query.from {
            params.push(format!("from={from}"));
        }
        if let Some(to) = query.to {
            params.push(format!("to={to}"));
        }
        if let Some(p) = query.provider {
            params.push(format!("provider={}", p.as_str()));
        }
        let path = format!("/admin/reconciliations{}", join_query(&params));
        self.call("GET", &path, None, Auth::Bearer).await
    }

    /// Operators: one reconciliation with its items, differences first.
    pub async fn admin_reconciliation(self, id: i64) -> Result<ReconciliationDetail, ApiError> {
        let path = format!("/admin/reconciliations/{id}");
        self.call("GET", &path, None, Auth::Bearer).await
    }

    /// Operators: reconcile one day now.
    pub async fn run_reconciliation(
        self,
        req: &RunReconciliationRequest,
    ) -> Result<RunReconciliationResponse, ApiError> {
        self.call(
            "POST",
            "/admin/reconciliations",
            Some(encode(req)?),
            Auth::Bearer,
        )
        .await
    }

    /// Operators: the WeChat Pay complaints inbox, newest first.
    pub async fn admin_complaints(
        self,
        state: Option<ComplaintState>,
        page: i64,
    ) -> Result<ComplaintListResponse, ApiError> {
        let mut params = vec![format!("page={page}"), "per_page=20".to_owned()];
        if let Some(s) = state {
            params.push(format!("state={}", s.as_str()));
        }
        let path = format!("/admin/complaints{}", join_query(&params));
        self.call("GET", &path, None, Auth::Bearer).await
    }

    /// Operators: one complaint with its negotiation history and order.
    pub async fn admin_complaint(self, id: &str) -> Result<ComplaintDetail, ApiError> {
        let path = format!(
            "/admin/complaints/{}",
            String::from(js_sys::encode_uri_component(id))
        );
        self.call("GET", &path, None, Auth::Bearer).await
    }

    /// Operators: reply to the buyer (1-200 characters).
    pub async fn reply_complaint(
        self,
        id: &str,
        content: &str,
    ) -> Result<ComplaintDetail, ApiError> {
        let path = format!(
            "/admin/complaints/{}/reply",
            String::from(js_sys::encode_uri_component(id))
        );
        let req = ComplaintReplyRequest {
            content: content.to_owned(),
        };
        self.call("POST", &path, Some(encode(&req)?), Auth::Bearer)
            .await
    }

    /// Operators: mark a complaint handled.
    pub async fn complete_complaint(self, id: &str) -> Result<ComplaintDetail, ApiError> {
        let path = format!(
            "/admin/complaints/{}/complete",
            String::from(js_sys::encode_uri_component(id))
        );
        self.call("POST", &path, None, Auth::Bearer).await
    }

    /// Operators: pull the last 30 days of complaints from WeChat now.
    pub async fn sync_complaints(self) -> Result<ComplaintSyncResponse, ApiError> {
        let req = ComplaintSyncRequest::default();
        self.call(
            "POST",
            "/admin/complaints/sync",
            Some(encode(&req)?),
            Auth::Bearer,
        )
        .await
    }

    /// Operators: every merchant app (no secrets).
    pub async fn admin_apps(self) -> Result<AppList, ApiError> {
        self.call("GET", "/admin/apps", None, Auth::Bearer).await
    }

    /// Operators: create an app; the answer is the only place its secrets are shown.
    pub async fn create_app(self, req: &CreateAppRequest) -> Result<CreatedApp, ApiError> {
        self.call("POST", "/admin/apps", Some(encode(req)?), Auth::Bearer)
            .await
    }

    /// Operators: change an app's settings.
    pub async fn update_app(
        self,
        id: &str,
        req: &UpdateAppRequest,
    ) -> Result<UpdatedApp, ApiError> {
        let path = format!("/admin/apps/{}", path_segment(id));
        self.call("PATCH", &path, Some(encode(req)?), Auth::Bearer)
            .await
    }

    /// Operators: a new API key for an app (the old one stops working at once).
    pub async fn rotate_app_key(self, id: &str) -> Result<RotatedKey, ApiError> {
        let path = format!("/admin/apps/{}/rotate-key", path_segment(id));
        self.call("POST", &path, None, Auth::Bearer).await
    }

    /// Operators: a new webhook signing secret for an app.
    pub async fn rotate_app_webhook_secret(
        self,
        id: &str,
    ) -> Result<RotatedWebhookSecret, ApiError> {
        let path = format!("/admin/apps/{}/rotate-webhook-secret", path_segment(id));
        self.call("POST", &path, None, Auth::Bearer).await
    }

    /// Operators: revoke an app for good.
    pub async fn revoke_app(self, id: &str) -> Result<AppView, ApiError> {
        let path = format!("/admin/apps/{}/revoke", path_segment(id));
        self.call("POST", &path, None, Auth::Bearer).await
    }

    /// Operators: the admin audit log, newest first.
    pub async fn admin_audit(self, query: &AuditQuery) -> Result<AuditListResponse, ApiError> {
        let mut params = Vec::new();
        for (name, value) in [
            ("action", &query.action),
            ("target_kind", &query.target_kind),
            ("target_id", &query.target_id),
            ("actor_id", &query.actor_id),
            ("from", &query.from),
            ("to", &query.to),
        ] {
            if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
                params.push(format!("{name}={}", query_value(value)));
            }
        }
        if let Some(page) = query.page {
            params.push(format!("page={page}"));
        }
        if let Some(per_page) = query.per_page {
            params.push(format!("per_page={per_page}"));
        }
        let path = format!("/admin/audit{}", join_query(&params));
        self.call("GET", &path, None, Auth::Bearer).await
    }

    /// Operators: accounts by part of a username or email, an id or an external id.
    pub async fn admin_accounts(
        self,
        query: &AccountQuery,
    ) -> Result<AccountListResponse, ApiError> {
        let mut params = Vec::new();
        if let Some(q) = query.q.as_deref().filter(|q| !q.is_empty()) {
            params.push(format!("q={}", query_value(q)));
        }
        if let Some(role) = query.role.as_deref().filter(|r| !r.is_empty()) {
            params.push(format!("role={}", query_value(role)));
        }
        if let Some(disabled) = query.disabled {
            params.push(format!("disabled={disabled}"));
        }
        if let Some(page) = query.page {
            params.push(format!("page={page}"));
        }
        if let Some(per_page) = query.per_page {
            params.push(format!("per_page={per_page}"));
        }
        let path = format!("/admin/accounts{}", join_query(&params));
        self.call("GET", &path, None, Auth::Bearer).await
    }

    /// Operators: one account with its orders, refunds, ledger and admin history.
    pub async fn admin_account(self, id: &str) -> Result<AccountDetail, ApiError> {
        let path = format!("/admin/accounts/{}", path_segment(id));
        self.call("GET", &path, None, Auth::Bearer).await
    }

    /// Operators: add or take points and/or membership days, with a reason.
    pub async fn adjust_account(
        self,
        id: &str,
        req: &AdjustRequest,
    ) -> Result<AdjustResponse, ApiError> {
        let path = format!("/admin/accounts/{}/adjust", path_segment(id));
        self.call("POST", &path, Some(encode(req)?), Auth::Bearer)
            .await
    }

    /// Operators: `disable`, `enable`, `grant-admin` or `revoke-admin` an account.
    pub async fn account_action(
        self,
        id: &str,
        action: &str,
        req: &ReasonRequest,
    ) -> Result<AccountSummary, ApiError> {
        let path = format!("/admin/accounts/{}/{action}", path_segment(id));
        self.call("POST", &path, Some(encode(req)?), Auth::Bearer)
            .await
    }

    /// Operators: every product, on sale or retired, in display order.
    pub async fn admin_products(self) -> Result<AdminProductList, ApiError> {
        self.call("GET", "/admin/products", None, Auth::Bearer)
            .await
    }

    /// Operators: a new product, on sale at once.
    pub async fn create_product(self, req: &ProductCreate) -> Result<ProductResponse, ApiError> {
        self.call("POST", "/admin/products", Some(encode(req)?), Auth::Bearer)
            .await
    }

    /// Operators: change the fields given (orders already created keep their snapshot).
    pub async fn update_product(
        self,
        id: i64,
        req: &ProductPatchRequest,
    ) -> Result<ProductResponse, ApiError> {
        let path = format!("/admin/products/{id}");
        self.call("PATCH", &path, Some(encode(req)?), Auth::Bearer)
            .await
    }

    /// Operators: `retire` or `restore` a product.
    pub async fn product_action(self, id: i64, action: &str) -> Result<ProductResponse, ApiError> {
        let path = format!("/admin/products/{id}/{action}");
        self.call("POST", &path, None, Auth::Bearer).await
    }

    /// Operators: add units to a limited-stock product.
    pub async fn restock_product(
        self,
        id: i64,
        req: &RestockRequest,
    ) -> Result<ProductResponse, ApiError> {
        let path = format!("/admin/products/{id}/restock");
        self.call("POST", &path, Some(encode(req)?), Auth::Bearer)
            .await
    }

    /// Operators: show the products in this order.
    pub async fn reorder_products(
        self,
        req: &ReorderRequest,
    ) -> Result<AdminProductList, ApiError> {
        self.call(
            "POST",
            "/admin/products/reorder",
            Some(encode(req)?),
            Auth::Bearer,
        )
        .await
    }

    /// True when the backend exposes its development emulator (200 from `/dev/info`).
    pub async fn dev_info(self) -> bool {
        match self.send("GET", "/dev/info", None, Auth::Anonymous).await {
            Ok(text) => serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v.get("emulator").and_then(serde_json::Value::as_bool))
                .unwrap_or(true),
            Err(_) => false,
        }
    }

    /// The hosted checkout page's view of a merchant order (no login; `sig` from the link).
    pub async fn checkout_view(self, order_no: &str, sig: &str) -> Result<CheckoutView, ApiError> {
        let path = format!(
            "/checkout/{}?sig={}",
            query_value(order_no),
            query_value(sig)
        );
        self.call("GET", &path, None, Auth::Anonymous).await
    }

    /// The buyer's payment method on the hosted checkout page.
    pub async fn checkout_pay(
        self,
        order_no: &str,
        sig: &str,
        req: &CheckoutPayRequest,
    ) -> Result<CheckoutView, ApiError> {
        let path = format!(
            "/checkout/{}/pay?sig={}",
            query_value(order_no),
            query_value(sig)
        );
        self.call("POST", &path, Some(encode(req)?), Auth::Anonymous)
            .await
    }

    /// Development only: the emulator pays a hosted checkout's trade.
    pub async fn checkout_simulate_pay(self, order_no: &str, sig: &str) -> Result<(), ApiError> {
        let path = format!(
            "/checkout/{}/simulate-pay?sig={}",
            query_value(order_no),
            query_value(sig)
        );
        self.send("POST", &path, None, Auth::Anonymous)
            .await
            .map(|_| ())
    }

    /// Development only: asks the backend's emulator to pay the order as if scanned.
    pub async fn simulate_pay(self, order_no: &str) -> Result<(), ApiError> {
        let body = serde_json::json!({ "order_no": order_no }).to_string();
        self.send("POST", "/dev/simulate-pay", Some(body), Auth::Bearer)
            .await
            .map(|_| ())
    }

    /// Operators: download a CSV export (`/admin/exports/...csv?...`) with the bearer
    /// token and hand it to the browser as a file. A plain link would not carry the
    /// token, so the file is fetched here and saved through a Blob URL.
    pub async fn download(self, path: &str, fallback_name: &str) -> Result<(), ApiError> {
        let token = self.session.token.get_untracked();
        let request = build_request(
            "GET",
            &format!("{BASE}{path}"),
            None,
            token.as_deref(),
            &[("Accept", "text/csv")],
            DOWNLOAD_TIMEOUT_MS,
        )
        .map_err(|_| ApiError::Network)?;
        let window = web_sys::window().ok_or(ApiError::Network)?;
        let response: Response = JsFuture::from(window.fetch_with_request(&request))
            .await
            .map_err(|_| ApiError::Network)?
            .dyn_into()
            .map_err(|_| ApiError::Network)?;
        let status = response.status();
        if !(200..300).contains(&status) {
            let text = match response.text() {
                Ok(promise) => JsFuture::from(promise)
                    .await
                    .ok()
                    .and_then(|v| v.as_string())
                    .unwrap_or_default(),
                Err(_) => String::new(),
            };
            if status == 401 && token.is_some() {
                if self.session.token.get_untracked() == token {
                    self.session.sign_out(Some(Notice::SessionExpired));
                }
                return Err(ApiError::SessionExpired);
            }
            return Err(ApiError::Status {
                status,
                body: serde_json::from_str(&text).ok(),
            });
        }
        let name = response
            .headers()
            .get("content-disposition")
            .ok()
            .flatten()
            .and_then(|v| attachment_name(&v))
            .unwrap_or_else(|| fallback_name.to_owned());
        let blob: web_sys::Blob = JsFuture::from(response.blob().map_err(|_| ApiError::Network)?)
            .await
            .map_err(|_| ApiError::Network)?
            .dyn_into()
            .map_err(|_| ApiError::Unexpected)?;
        save_blob(&window, &blob, &name).map_err(|_| ApiError::Unexpected)
    }

    async fn call<T: DeserializeOwned>(
        self,
        method: &str,
        path: &str,
        body: Option<String>,
        auth: Auth,
    ) -> Result<T, ApiError> {
        let text = self.send(method, path, body, auth).await?;
        serde_json::from_str(&text).map_err(|_| ApiError::Unexpected)
    }

    /// Performs the request; returns the body of a 2xx reply.
    async fn send(
        self,
        method: &str,
        path: &str,
        body: Option<String>,
        auth: Auth,
    ) -> Result<String, ApiError> {
        self.send_with(method, path, body, auth, &[]).await
    }

    /// [`Api::send`] with extra request headers.
    async fn send_with(
        self,
        method: &str,
        path: &str,
        body: Option<String>,
        auth: Auth,
        extra: &[(&str, &str)],
    ) -> Result<String, ApiError> {
        let token = match auth {
            Auth::Bearer => self.session.token.get_untracked(),
            Auth::Anonymous => None,
        };
        let request = build_request(
            method,
            &format!("{BASE}{path}"),
            body,
            token.as_deref(),
            extra,
            REQUEST_TIMEOUT_MS,
        )
        .map_err(|_| ApiError::Network)?;
        let window = web_sys::window().ok_or(ApiError::Network)?;
        let sent = now_ms();
        let response: Response = JsFuture::from(window.fetch_with_request(&request))
            .await
            .map_err(|_| ApiError::Network)?
            .dyn_into()
            .map_err(|_| ApiError::Network)?;
        // Every answer tells the time: countdowns follow the server's clock, not ours.
        if let Ok(Some(date)) = response.headers().get("date") {
            note_server_date(sent, now_ms(), &date);
        }
        let status = response.status();
        let text = match response.text() {
            Ok(promise) => JsFuture::from(promise)
                .await
                .ok()
                .and_then(|v| v.as_string())
                .unwrap_or_default(),
            Err(_) => String::new(),
        };
        if (200..300).contains(&status) {
            return Ok(text);
        }
        if status == 401 && token.is_some() {
            // Only end the session the request belonged to: a late reply for an old
            // token must not sign out a newer one.
            if self.session.token.get_untracked() == token {
                self.session.sign_out(Some(Notice::SessionExpired));
            }
            return Err(ApiError::SessionExpired);
        }
        Err(ApiError::Status {
            status,
            body: serde_json::from_str(&text).ok(),
        })
    }
}

fn build_request(
    method: &str,
    url: &str,
    body: Option<String>,
    token: Option<&str>,
    extra: &[(&str, &str)],
    timeout_ms: u32,
) -> Result<Request, JsValue> {
    let init = RequestInit::new();
    init.set_method(method);
    // A reply that never comes must not wedge the page (a reload waits for the one in
    // flight): give up, and let the caller retry or treat the outcome as unknown.
    init.set_signal(Some(&web_sys::AbortSignal::timeout_with_u32(timeout_ms)));
    let headers = Headers::new()?;
    headers.set("Accept", "application/json")?;
    if let Some(body) = body {
        headers.set("Content-Type", "application/json")?;
        init.set_body(&JsValue::from_str(&body));
    }
    if let Some(token) = token {
        headers.set("Authorization", &format!("Bearer {token}"))?;
    }
    for (name, value) in extra {
        headers.set(name, value)?;
    }
    init.set_headers(&headers);
    Request::new_with_str_and_init(url, &init)
}

/// `attachment; filename="fenpay-orders-20261205.csv"` -> the file name.
fn attachment_name(header: &str) -> Option<String> {
    let (_, rest) = header.split_once("filename=")?;
    let name = rest.split(';').next()?.trim().trim_matches('"');
    (!name.is_empty()).then(|| name.to_owned())
}

/// Save `blob` as a file named `name`: a temporary `<a download>` on an object URL,
/// clicked, removed, and the URL released a minute later (once the browser has it).
fn save_blob(window: &web_sys::Window, blob: &web_sys::Blob, name: &str) -> Result<(), JsValue> {
    let url = web_sys::Url::create_object_url_with_blob(blob)?;
    let document = window.document().ok_or(JsValue::NULL)?;
    let link: web_sys::HtmlAnchorElement = document.create_element("a")?.dyn_into()?;
    link.set_href(&url);
    link.set_download(name);
    let body = document.body().ok_or(JsValue::NULL)?;
    body.append_child(&link)?;
    link.click();
    body.remove_child(&link)?;
    let release = wasm_bindgen::closure::Closure::once_into_js(move || {
        let _ = web_sys::Url::revoke_object_url(&url);
    });
    window
        .set_timeout_with_callback_and_timeout_and_arguments_0(release.unchecked_ref(), 60_000)?;
    Ok(())
}

/// The export paths with the order list's filters that apply to each:
/// orders (all but the review flag), refunds (provider, days, user), ledger (days, user).
pub fn export_paths(q: &AdminOrderQuery) -> [(String, &'static str); 3] {
    let mut days_user = Vec::new();
    if let Some(from) = q.from {
        days_user.push(format!("from={from}"));
    }
    if let Some(to) = q.to {
        days_user.push(format!("to={to}"));
    }
    if let Some(user) = q.user.as_deref().filter(|u| !u.is_empty()) {
        days_user.push(format!("user={}", query_value(user)));
    }
    let mut with_provider = days_user.clone();
    if let Some(provider) = q.provider {
        with_provider.push(format!("provider={}", provider.as_str()));
    }
    let mut orders = with_provider.clone();
    if let Some(status) = q.status {
        orders.push(format!("status={}", status.as_str()));
    }
    [
        (
            format!("/admin/exports/orders.csv{}", join_query(&orders)),
            "fenpay-orders.csv",
        ),
        (
            format!("/admin/exports/refunds.csv{}", join_query(&with_provider)),
            "fenpay-refunds.csv",
        ),
        (
            format!("/admin/exports/ledger.csv{}", join_query(&days_user)),
            "fenpay-ledger.csv",
        ),
    ]
}

fn encode<T: Serialize>(value: &T) -> Result<String, ApiError> {
    serde_json::to_string(value).map_err(|_| ApiError::Unexpected)
}

fn query_value(raw: &str) -> String {
    String::from(js_sys::encode_uri_component(raw))
}

fn path_segment(raw: &str) -> String {
    query_value(raw)
}

fn join_query(params: &[String]) -> String {
    if params.is_empty() {
        String::new()
    } else {
        format!("?{}", params.join("&"))
    }
}

/// `?status=paid&from=2024-05-01...` with only the filters that are set.
fn admin_order_query(q: &AdminOrderQuery) -> String {
    let mut params = Vec::new();
    if let Some(status) = q.status {
        params.push(format!("status={}", status.as_str()));
    }
    if let Some(provider) = q.provider {
        params.push(format!("provider={}", provider.as_str()));
    }
    if let Some(from) = q.from {
        params.push(format!("from={from}"));
    }
    if let Some(to) = q.to {
        params.push(format!("to={to}"));
    }
    if let Some(user) = q.user.as_deref().filter(|u| !u.is_empty()) {
        params.push(format!("user={}", query_value(user)));
    }
    if let Some(flag) = q.needs_review {
        params.push(format!("needs_review={flag}"));
    }
    if let Some(page) = q.page {
        params.push(format!("page={page}"));
    }
    if let Some(per_page) = q.per_page {
        params.push(format!("per_page={per_page}"));
    }
    join_query(&params)
}
