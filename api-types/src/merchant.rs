//! The server API for merchant apps (`/api/v1/merchant/...`, `Authorization: Bearer sk_...`)
//! and the hosted checkout page's public API (`/api/v1/checkout/...`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::payment::{OrderStatus, PaymentChannel, PaymentMethod, SdkParams};
use crate::Yuan;

/// `POST /api/v1/merchant/orders`
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MerchantOrderRequest {
    /// Your order number: 1-64 of `A-Z a-z 0-9 _ - . : |`, unique per app. The same one
    /// with the same body returns the same order; with a different body, 409
    /// `out_order_no_conflict`.
    pub out_order_no: String,
    /// What the buyer sees (1-128 characters); default: the product's name.
    #[serde(default)]
    pub subject: Option<String>,
    /// The amount in fen (1 to the app's maximum); exactly one of `amount_fen` and
    /// `product_id`.
    #[serde(default)]
    pub amount_fen: Option<i64>,
    /// A catalog product: the price comes from the catalog, and in `builtin` fulfilment
    /// fenpay credits its points / membership to `customer_ref`'s account.
    #[serde(default)]
    pub product_id: Option<i64>,
    /// Units of `product_id` (default 1).
    #[serde(default)]
    pub quantity: Option<i64>,
    /// Your id of the buyer (1-64 of `A-Z a-z 0-9 _ - . : |`).
    #[serde(default)]
    pub customer_ref: Option<String>,
    /// Absent: the buyer chooses on the checkout page.
    #[serde(default)]
    pub payment_method: Option<PaymentMethod>,
    /// With `payment_method`: default `native` (QR code).
    #[serde(default)]
    pub channel: Option<PaymentChannel>,
    /// WeChat JSAPI only: the payer's openid.
    #[serde(default)]
    pub openid: Option<String>,
    /// Your JSON object (at most 4 KiB as JSON), returned in every event and answer.
    #[serde(default)]
    #[cfg_attr(feature = "server", schema(value_type = Option<Object>))]
    pub metadata: Option<serde_json::Value>,
    /// Where the checkout page sends the buyer afterwards; its host must be one of the
    /// app's allowed return hosts.
    #[serde(default)]
    pub return_url: Option<String>,
    /// Minutes until the order closes unpaid (1-1440; default `ORDER_EXPIRE_MINUTES`).
    #[serde(default)]
    pub expire_minutes: Option<i64>,
}

/// A merchant order as the app sees it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct MerchantOrder {
    pub order_no: String,
    pub out_order_no: String,
    /// `pending` until paid (also while the buyer has not chosen a method), `paid`,
    /// `cancelled` (by you, by the buyer, or expired), `refunded` (fully).
    pub status: OrderStatus,
    pub subject: String,
    pub amount_fen: i64,
    pub amount: Yuan,
    pub refunded_fen: i64,
    pub product_id: Option<i64>,
    pub quantity: i64,
    pub customer_ref: Option<String>,
    #[cfg_attr(feature = "server", schema(value_type = Option<Object>))]
    pub metadata: Option<serde_json::Value>,
    /// Null until the buyer (or you) chose one.
    pub payment_method: Option<PaymentMethod>,
    pub channel: Option<PaymentChannel>,
    /// The hosted checkout page for this order.
    pub checkout_url: String,
    pub return_url: Option<String>,
    /// Provider fields, once a method is chosen and while the order is pending.
    pub qr_code_url: Option<String>,
    pub h5_url: Option<String>,
    pub pay_url: Option<String>,
    pub sdk_params: Option<SdkParams>,
    pub provider_transaction_id: Option<String>,
    /// `builtin` or `webhook`.
    pub fulfilment: String,
    pub expire_at: DateTime<Utc>,
    pub paid_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// `GET /api/v1/merchant/orders`
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema, utoipa::IntoParams))]
#[serde(deny_unknown_fields)]
pub struct MerchantOrderQuery {
    #[serde(default)]
    pub out_order_no: Option<String>,
    #[serde(default)]
    pub customer_ref: Option<String>,
    #[serde(default)]
    pub status: Option<OrderStatus>,
    /// Created at or after (RFC 3339).
    #[serde(default)]
    pub from: Option<DateTime<Utc>>,
    /// Created before (RFC 3339).
    #[serde(default)]
    pub to: Option<DateTime<Utc>>,
    #[serde(default)]
    pub page: Option<i64>,
    #[serde(default)]
    pub per_page: Option<i64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct MerchantOrderList {
    pub items: Vec<MerchantOrder>,
    pub page: i64,
    pub per_page: i64,
}

/// `POST /api/v1/merchant/refunds`
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MerchantRefundRequest {
    pub order_no: String,
    /// Fen to refund; omit for the whole remaining refundable amount.
    #[serde(default)]
    pub amount_fen: Option<i64>,
    /// Your refund number (6-64 chars of `[0-9A-Za-z_-|*@]`): the same number never
    /// refunds twice. Required unless the request has an `Idempotency-Key`.
    #[serde(default)]
    pub out_refund_no: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// `POST /api/v1/checkout/{order_no}/pay`: the buyer's choice on the checkout page.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CheckoutPayRequest {
    pub payment_method: PaymentMethod,
    pub channel: PaymentChannel,
    /// WeChat JSAPI: the openid from the OAuth step.
    #[serde(default)]
    pub openid: Option<String>,
}

/// What the hosted checkout page shows (no secrets, nothing about the buyer).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct CheckoutView {
    pub order_no: String,
    pub app_name: String,
    pub subject: String,
    pub amount_fen: i64,
    pub amount: Yuan,
    pub status: OrderStatus,
    /// Fixed by the app, or chosen already; null: the buyer picks.
    pub payment_method: Option<PaymentMethod>,
    pub channel: Option<PaymentChannel>,
    /// The methods this server can take.
    pub methods: Vec<PaymentMethod>,
    pub qr_code_url: Option<String>,
    pub h5_url: Option<String>,
    pub pay_url: Option<String>,
    pub sdk_params: Option<SdkParams>,
    pub expire_at: DateTime<Utc>,
    /// Whether the order has a `return_url` (the page offers "back to the shop").
    pub has_return: bool,
}
