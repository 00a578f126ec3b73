//! Operator (role `admin`) API of merchant apps: `/api/v1/admin/apps`. List and detail
//! answers never carry a secret; the API key, webhook secret and epay key appear only in
//! the answer of the call that made them (create, rotate).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};

/// Which providers an app's key drives: `live` the configured ones; `test` keys
/// (`sk_test_...`) are meant for a development server with the emulator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AppKeyMode {
    #[default]
    Live,
    Test,
}

/// Who credits the buyer of an app's order: fenpay (`builtin`: points, memberships of
/// catalog products) or the app itself from the webhook events (`webhook`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AppFulfilment {
    #[default]
    Builtin,
    Webhook,
}

/// A merchant app as operators see it (no secrets).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct AppView {
    /// `app_...`
    pub id: String,
    pub name: String,
    pub mode: AppKeyMode,
    /// The visible start of the current API key (`sk_live_ab12`), to tell keys apart.
    pub key_prefix: String,
    /// Where the app's events go (signed with its webhook secret); null: none sent.
    pub webhook_url: Option<String>,
    /// Hosts a `return_url` may point at (`*.example.com` allows subdomains).
    pub return_hosts: Vec<String>,
    pub fulfilment: AppFulfilment,
    /// Largest amount of one order, fen.
    pub max_amount_fen: i64,
    /// The epay (易支付) merchant id, once drawn.
    pub epay_pid: Option<i64>,
    /// Whether the epay gateway answers this app.
    pub epay_enabled: bool,
    /// Revoked apps' keys are refused; a revoked app cannot be changed.
    pub revoked: bool,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `GET /api/v1/admin/apps`: every app, oldest first.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct AppList {
    pub items: Vec<AppView>,
}

/// `POST /api/v1/admin/apps`
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateAppRequest {
    /// 1-100 characters.
    pub name: String,
    /// Absolute http(s) URL of the app's event receiver.
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// Default `live`.
    #[serde(default)]
    pub mode: Option<AppKeyMode>,
    /// Bare host names (`shop.example.com`, `*.example.com`), at most 20.
    #[serde(default)]
    pub return_hosts: Vec<String>,
    /// Default `builtin`.
    #[serde(default)]
    pub fulfilment: Option<AppFulfilment>,
    /// Largest order in fen, 1 to `MERCHANT_MAX_AMOUNT_FEN` (the default).
    #[serde(default)]
    pub max_amount_fen: Option<i64>,
    /// Draw epay credentials and enable the epay gateway for this app.
    #[serde(default)]
    pub epay: bool,
}

/// The answer to creating an app: the secrets are shown here once and never again.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct CreatedApp {
    pub app: AppView,
    /// `sk_live_...` / `sk_test_...`: `Authorization: Bearer` of the server API.
    pub api_key: String,
    /// `whsec_...`: checks the signatures of the app's webhooks and return redirects.
    pub webhook_secret: String,
    /// The epay merchant key (with `epay`), else null.
    pub epay_key: Option<String>,
}

impl std::fmt::Debug for CreatedApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedApp")
            .field("app", &self.app)
            .field("api_key", &"[redacted]")
            .field("webhook_secret", &"[redacted]")
            .field("epay_key", &self.epay_key.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// `PATCH /api/v1/admin/apps/{id}`: absent fields stay as they are.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateAppRequest {
    #[serde(default)]
    pub name: Option<String>,
    /// A URL sets it; `null` removes it (no events are sent).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "server", schema(value_type = Option<String>, nullable))]
    pub webhook_url: Option<Option<String>>,
    /// Replaces the list (`[]`: no return URL allowed).
    #[serde(default)]
    pub return_hosts: Option<Vec<String>>,
    #[serde(default)]
    pub fulfilment: Option<AppFulfilment>,
    #[serde(default)]
    pub max_amount_fen: Option<i64>,
    /// `true` enables the epay gateway (drawing a pid and key when the app has none: the
    /// answer shows that key once), `false` disables it (the credentials are kept, and
    /// `true` later enables the same ones again).
    #[serde(default)]
    pub epay: Option<bool>,
}

/// The answer to `PATCH /api/v1/admin/apps/{id}`.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct UpdatedApp {
    pub app: AppView,
    /// The epay key when this change drew one (epay turned on for the first time), shown
    /// once; else null.
    pub epay_key: Option<String>,
}

impl std::fmt::Debug for UpdatedApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpdatedApp")
            .field("app", &self.app)
            .field("epay_key", &self.epay_key.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// A field that is present (possibly `null`) deserializes to `Some(..)`.
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// `POST /api/v1/admin/apps/{id}/rotate-key`: the new key, shown once; the old one is
/// refused from now on.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct RotatedKey {
    pub app_id: String,
    pub api_key: String,
    pub key_prefix: String,
}

impl std::fmt::Debug for RotatedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotatedKey")
            .field("app_id", &self.app_id)
            .field("api_key", &"[redacted]")
            .field("key_prefix", &self.key_prefix)
            .finish()
    }
}

/// `POST /api/v1/admin/apps/{id}/rotate-webhook-secret`: the new secret, shown once.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct RotatedWebhookSecret {
    pub app_id: String,
    pub webhook_secret: String,
}

impl std::fmt::Debug for RotatedWebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotatedWebhookSecret")
            .field("app_id", &self.app_id)
            .field("webhook_secret", &"[redacted]")
            .finish()
    }
}
