//! Orders and payment: the documented create-order / order-status / cancel-order contract.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::product::ProductKind;
use crate::Yuan;

/// Payment provider chosen by the buyer.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PaymentMethod {
    Wechat,
    Alipay,
}

impl PaymentMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentMethod::Wechat => "wechat",
            PaymentMethod::Alipay => "alipay",
        }
    }
}

/// How the buyer pays.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default, Hash)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PaymentChannel {
    /// A QR code to scan (WeChat Native, Alipay precreate).
    #[default]
    Native,
    /// WeChat H5 (mobile browser outside WeChat).
    H5,
    /// WeChat JSAPI (inside WeChat; requires `openid`).
    Jsapi,
    /// Mobile app SDK (WeChat app / Alipay app).
    App,
    /// Alipay desktop page pay.
    Page,
    /// Alipay mobile web pay.
    Wap,
}

impl PaymentChannel {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentChannel::Native => "native",
            PaymentChannel::H5 => "h5",
            PaymentChannel::Jsapi => "jsapi",
            PaymentChannel::App => "app",
            PaymentChannel::Page => "page",
            PaymentChannel::Wap => "wap",
        }
    }
}

/// Order status as stored and reported.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "server",
    derive(
        utoipa::ToSchema,
        diesel::expression::AsExpression,
        diesel::deserialize::FromSqlRow
    )
)]
#[cfg_attr(feature = "server", diesel(sql_type = diesel::sql_types::Text))]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Pending,
    Paid,
    Cancelled,
    Refunded,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Paid => "paid",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::Refunded => "refunded",
        }
    }

    /// The status named by its stored text; `None` for anything else.
    pub fn parse(s: &str) -> Option<OrderStatus> {
        Some(match s {
            "pending" => OrderStatus::Pending,
            "paid" => OrderStatus::Paid,
            "cancelled" => OrderStatus::Cancelled,
            "refunded" => OrderStatus::Refunded,
            _ => return None,
        })
    }

    /// No further change is expected without an operator (refund) action.
    pub fn is_terminal(self) -> bool {
        !matches!(self, OrderStatus::Pending)
    }
}

impl std::fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an order was cancelled.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    User,
    Expired,
}

/// `POST /api/v1/payment/create-order`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct CreateOrderRequest {
    /// Must match the product's kind.
    pub product_type: ProductKind,
    pub product_id: i64,
    pub payment_method: PaymentMethod,
    /// Membership only: pay the difference to a higher tier for the remaining time.
    #[serde(default)]
    pub is_upgrade: bool,
    /// Units to buy (default 1, at most 100).
    #[serde(default)]
    pub quantity: Option<i64>,
    /// Default `native` (QR code).
    #[serde(default)]
    pub channel: Option<PaymentChannel>,
    /// WeChat JSAPI only: the payer's openid under the configured appid.
    #[serde(default)]
    pub openid: Option<String>,
    /// A new QR code for an order of the caller's: the order it replaces. That order is
    /// closed at the provider and cancelled first when it is still pending (409
    /// `order_already_paid` and no new order when the provider says it was paid), and a
    /// second payment within the same chain of replacements is held for review as a
    /// duplicate payment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces_order_no: Option<String>,
}

/// Parameters a WeChat JSAPI/app SDK or the Alipay app SDK needs to open the cashier.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum SdkParams {
    /// WeChat JSAPI `wx.requestPayment` / `WeixinJSBridge` parameters.
    WechatJsapi {
        #[serde(rename = "appId")]
        app_id: String,
        #[serde(rename = "timeStamp")]
        time_stamp: String,
        #[serde(rename = "nonceStr")]
        nonce_str: String,
        package: String,
        #[serde(rename = "signType")]
        sign_type: String,
        #[serde(rename = "paySign")]
        pay_sign: String,
    },
    /// WeChat app SDK `PayReq` parameters.
    WechatApp {
        appid: String,
        partnerid: String,
        prepayid: String,
        package: String,
        noncestr: String,
        timestamp: String,
        sign: String,
    },
    /// Alipay app SDK: the signed order string.
    AlipayApp { order_string: String },
}

/// Reply of create-order.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct CreateOrderResponse {
    pub order_no: String,
    /// Yuan with two decimals.
    pub amount: Yuan,
    /// Integer fen.
    pub amount_fen: i64,
    pub payment_method: PaymentMethod,
    pub channel: PaymentChannel,
    /// Content of the QR code to show (native channel); also the pay URL for page/wap.
    pub qr_code_url: Option<String>,
    /// When the QR code should no longer be shown.
    pub qr_code_expire_at: DateTime<Utc>,
    /// When the order is closed if unpaid.
    pub expire_at: DateTime<Utc>,
    /// WeChat H5: the URL to open in the mobile browser.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub h5_url: Option<String>,
    /// Alipay page/wap: the cashier URL to redirect the buyer to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pay_url: Option<String>,
    /// WeChat jsapi/app, Alipay app: signed SDK parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdk_params: Option<SdkParams>,
    pub status: OrderStatus,
    /// Memberships: what paying this order does to the buyer's membership, computed as if
    /// it were paid now (the payment applies the same rule at its own time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub membership: Option<MembershipPreview>,
}

/// How a membership purchase treats the time the buyer already has.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MembershipRule {
    /// No active membership: it starts now.
    Start,
    /// The same tier: the purchased days are added to the expiry.
    Extend,
    /// Another tier: the remaining time is converted at the ratio of the two tiers' daily
    /// prices (rounded down to the second), then the purchased days are added.
    Convert,
    /// `is_upgrade`: the tier changes for the remaining time; the expiry stays.
    Upgrade,
}

/// The membership before and after paying an order.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct MembershipPreview {
    pub rule: MembershipRule,
    pub tier_before: Option<String>,
    pub expires_before: Option<DateTime<Utc>>,
    /// Seconds left on the current tier now.
    pub remaining_seconds_before: i64,
    /// What those seconds are worth in the new tier (equal unless converted).
    pub carried_seconds: i64,
    /// Seconds the purchase adds (0 for an upgrade).
    pub added_seconds: i64,
    pub tier_after: String,
    pub expires_after: DateTime<Utc>,
}

/// `GET /api/v1/payment/order-status?order_no=`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema, utoipa::IntoParams))]
pub struct OrderStatusQuery {
    pub order_no: String,
}

/// Reply of order-status; also one row of the order list.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct OrderResponse {
    pub order_no: String,
    pub status: OrderStatus,
    /// Yuan with two decimals.
    pub amount: Yuan,
    pub amount_fen: i64,
    /// When the provider confirmed the payment.
    pub payment_time: Option<DateTime<Utc>>,
    pub payment_method: PaymentMethod,
    pub channel: PaymentChannel,
    pub product_id: i64,
    pub product_type: ProductKind,
    pub product_name: String,
    pub unit_price_fen: i64,
    pub quantity: i64,
    pub is_upgrade: bool,
    pub qr_code_url: Option<String>,
    pub qr_code_expire_at: DateTime<Utc>,
    pub expire_at: DateTime<Utc>,
    pub cancel_reason: Option<CancelReason>,
    pub refunded_fen: i64,
    pub provider_transaction_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `POST /api/v1/payment/cancel-order`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct CancelOrderRequest {
    pub order_no: String,
}

/// The contract's envelope reply: `{"code": 200, "msg": "订单已取消", "data": null}`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct CancelOrderResponse {
    pub code: i32,
    pub msg: String,
    pub data: Option<serde_json::Value>,
}

/// Paging parameters for lists.
#[derive(Clone, Debug, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "server", derive(utoipa::IntoParams))]
pub struct PageQuery {
    /// 1-based page number (default 1).
    pub page: Option<i64>,
    /// Items per page, 1-100 (default 20).
    pub per_page: Option<i64>,
}

/// `GET /api/v1/payment/orders`: the caller's orders, newest first.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct OrderListResponse {
    pub items: Vec<OrderResponse>,
    pub page: i64,
    pub per_page: i64,
    pub total: i64,
}
