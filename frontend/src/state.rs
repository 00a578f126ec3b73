//! App-wide state shared through context: the session, the current screen, dev mode.

use api_types::auth::{TokenResponse, UserResponse};
use api_types::payment::{CreateOrderResponse, OrderResponse, OrderStatus, PaymentMethod};
use api_types::product::ProductKind;
use api_types::Yuan;
use chrono::{DateTime, Utc};
use leptos::prelude::*;

use crate::time::now_ms;

const TOKEN_KEY: &str = "fenpay.token";
const TOKEN_EXPIRES_KEY: &str = "fenpay.token_expires_at";

/// `localStorage`, if the browser allows it.
pub fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

/// Why the sign-in page is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    /// The API rejected the token (or it ran out): sign in again.
    SessionExpired,
    /// The user pressed "sign out".
    SignedOut,
}

/// The bearer token (mirrored in localStorage) and the account it belongs to.
#[derive(Clone, Copy)]
pub struct Session {
    pub token: RwSignal<Option<String>>,
    pub user: RwSignal<Option<UserResponse>>,
    pub notice: RwSignal<Option<Notice>>,
}

impl Session {
    /// Reads a stored token, dropping it if its recorded lifetime has passed.
    pub fn restore() -> Self {
        let store = storage();
        let token = store
            .as_ref()
            .and_then(|s| s.get_item(TOKEN_KEY).ok().flatten())
            .filter(|t| !t.is_empty());
        let expires_at = store
            .as_ref()
            .and_then(|s| s.get_item(TOKEN_EXPIRES_KEY).ok().flatten())
            .and_then(|v| v.parse::<i64>().ok());
        let expired = matches!(expires_at, Some(at) if at <= now_ms());
        let session = Session {
            token: RwSignal::new(None),
            user: RwSignal::new(None),
            notice: RwSignal::new(None),
        };
        match token {
            Some(_) if expired => session.sign_out(Some(Notice::SessionExpired)),
            Some(token) => session.token.set(Some(token)),
            None => {}
        }
        session
    }

    pub fn sign_in(self, reply: TokenResponse) {
        if let Some(s) = storage() {
            let expires_at = now_ms().saturating_add(reply.expires_in.saturating_mul(1000));
            let _ = s.set_item(TOKEN_KEY, &reply.access_token);
            let _ = s.set_item(TOKEN_EXPIRES_KEY, &expires_at.to_string());
        }
        self.notice.set(None);
        self.user.set(Some(reply.user));
        self.token.set(Some(reply.access_token));
    }

    pub fn sign_out(self, notice: Option<Notice>) {
        if let Some(s) = storage() {
            let _ = s.remove_item(TOKEN_KEY);
            let _ = s.remove_item(TOKEN_EXPIRES_KEY);
        }
        self.notice.set(notice);
        self.user.set(None);
        self.token.set(None);
    }
}

/// An order being paid: what the payment screen needs, from either a fresh
/// create-order reply or a pending order reopened from the list.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkout {
    pub order_no: String,
    pub status: OrderStatus,
    pub amount: Yuan,
    pub payment_method: PaymentMethod,
    pub product_type: ProductKind,
    pub product_id: i64,
    pub product_name: String,
    pub qr_code_url: Option<String>,
    pub qr_code_expire_at: DateTime<Utc>,
    /// Until then the provider takes a payment for this order (after the QR code
    /// expired too: a buyer who scanned in time may still be paying).
    pub expire_at: DateTime<Utc>,
}

impl Checkout {
    /// From a create-order reply for the given product.
    pub fn created(
        reply: CreateOrderResponse,
        product_type: ProductKind,
        product_id: i64,
        product_name: String,
    ) -> Self {
        Checkout {
            order_no: reply.order_no,
            status: reply.status,
            amount: reply.amount,
            payment_method: reply.payment_method,
            product_type,
            product_id,
            product_name,
            qr_code_url: reply.qr_code_url,
            qr_code_expire_at: reply.qr_code_expire_at,
            expire_at: reply.expire_at,
        }
    }

    pub fn reopened(order: &OrderResponse) -> Self {
        Checkout {
            order_no: order.order_no.clone(),
            status: order.status,
            amount: order.amount,
            payment_method: order.payment_method,
            product_type: order.product_type,
            product_id: order.product_id,
            product_name: order.product_name.clone(),
            qr_code_url: order.qr_code_url.clone(),
            qr_code_expire_at: order.qr_code_expire_at,
            expire_at: order.expire_at,
        }
    }
}

/// The screen shown to a signed-in user.
#[derive(Clone, Debug, PartialEq)]
pub enum Route {
    Products,
    Orders,
    Pay(Checkout),
    Admin(AdminView),
}

/// The operator screens, each with its own address so a reload stays put.
#[derive(Clone, Debug, PartialEq)]
pub enum AdminView {
    Orders,
    Order(String),
    Stats,
    /// Bill reconciliations per day and provider.
    Reconciliations,
    /// One reconciliation's items, differences first.
    Reconciliation(i64),
    /// Merchant apps: keys, webhooks, return hosts, epay.
    Apps,
    /// Accounts: search, then one account's page.
    Accounts,
    /// One account: balances, history, adjustments, disable / role changes.
    Account(String),
    /// Every product, on sale or retired: create, edit, retire, restock, order.
    Catalog,
    /// The admin audit log.
    Audit,
    /// WeChat Pay complaints: the inbox, one complaint's history, reply, mark handled.
    Complaints,
}

impl Route {
    /// The address bar path for this screen (`/` for the buyer screens).
    pub fn path(&self) -> String {
        match self {
            Route::Admin(AdminView::Orders) => "/admin".to_owned(),
            Route::Admin(AdminView::Stats) => "/admin/stats".to_owned(),
            Route::Admin(AdminView::Reconciliations) => "/admin/reconciliations".to_owned(),
            Route::Admin(AdminView::Apps) => "/admin/apps".to_owned(),
            Route::Admin(AdminView::Accounts) => "/admin/accounts".to_owned(),
            Route::Admin(AdminView::Account(id)) => format!(
                "/admin/accounts/{}",
                String::from(js_sys::encode_uri_component(id))
            ),
            Route::Admin(AdminView::Catalog) => "/admin/catalog".to_owned(),
            Route::Admin(AdminView::Audit) => "/admin/audit".to_owned(),
            Route::Admin(AdminView::Complaints) => "/admin/complaints".to_owned(),
            Route::Admin(AdminView::Reconciliation(id)) => format!("/admin/reconciliations/{id}"),
            Route::Admin(AdminView::Order(no)) => format!(
                "/admin/orders/{}",
                String::from(js_sys::encode_uri_component(no))
            ),
            _ => "/".to_owned(),
        }
    }

    /// The screen an address opens (`/admin...`); `None` for everything else.
    pub fn from_path(path: &str) -> Option<Route> {
        let rest = path.trim_end_matches('/').strip_prefix("/admin")?;
        let view = match rest {
            "" | "/orders" => AdminView::Orders,
            "/stats" => AdminView::Stats,
            "/reconciliations" => AdminView::Reconciliations,
            "/apps" => AdminView::Apps,
            "/accounts" => AdminView::Accounts,
            "/catalog" => AdminView::Catalog,
            "/audit" => AdminView::Audit,
            "/complaints" => AdminView::Complaints,
            other if other.starts_with("/accounts/") => {
                let id = other.strip_prefix("/accounts/")?;
                AdminView::Account(js_sys::decode_uri_component(id).ok()?.as_string()?)
            }
            other if other.starts_with("/reconciliations/") => {
                AdminView::Reconciliation(other.strip_prefix("/reconciliations/")?.parse().ok()?)
            }
            other => {
                let no = other.strip_prefix("/orders/")?;
                let no = js_sys::decode_uri_component(no).ok()?.as_string()?;
                AdminView::Order(no)
            }
        };
        Some(Route::Admin(view))
    }
}

#[derive(Clone, Copy)]
pub struct Nav(pub RwSignal<Route>);

/// Whether the backend runs its payment emulator (enables "simulate scan & pay").
#[derive(Clone, Copy)]
pub struct DevMode(pub RwSignal<bool>);
