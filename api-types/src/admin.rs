//! Operator (role `admin`) API: orders across all users, payment records, refunds,
//! daily totals and outbound webhook deliveries.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::payment::{OrderResponse, OrderStatus, PaymentMethod};

/// `GET /api/v1/admin/orders` filters. Every field is optional.
#[derive(Clone, Debug, Serialize, Deserialize, Default, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::IntoParams))]
pub struct AdminOrderQuery {
    pub status: Option<OrderStatus>,
    pub provider: Option<PaymentMethod>,
    /// Created at or after this day (`YYYY-MM-DD`, a day in the business time zone).
    pub from: Option<NaiveDate>,
    /// Created on or before this day (`YYYY-MM-DD`, a day in the business time zone).
    pub to: Option<NaiveDate>,
    /// A user id or an exact username.
    pub user: Option<String>,
    /// Only orders flagged for review (e.g. paid after close).
    pub needs_review: Option<bool>,
    /// 1-based page number (default 1).
    pub page: Option<i64>,
    /// Items per page, 1-100 (default 20).
    pub per_page: Option<i64>,
}

/// `GET /api/v1/admin/exports/orders.csv` filters (those of the order list).
///
/// `from` / `to` are days `YYYY-MM-DD` in the business time zone (`to` included whole)
/// or RFC 3339 instants (`to` excluded), compared with the creation time.
#[derive(Clone, Debug, Serialize, Deserialize, Default, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::IntoParams))]
pub struct OrderExportQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    pub status: Option<OrderStatus>,
    pub provider: Option<PaymentMethod>,
    /// A user id or an exact username.
    pub user: Option<String>,
}

/// `GET /api/v1/admin/exports/refunds.csv` filters; `from` / `to` as for orders,
/// compared with the refund's creation time; `user` is the order's buyer.
#[derive(Clone, Debug, Serialize, Deserialize, Default, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::IntoParams))]
pub struct RefundExportQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    pub status: Option<RefundStatus>,
    pub provider: Option<PaymentMethod>,
    /// A user id or an exact username.
    pub user: Option<String>,
}

/// `GET /api/v1/admin/exports/ledger.csv` filters; `from` / `to` as for orders,
/// compared with the entry's time.
#[derive(Clone, Debug, Serialize, Deserialize, Default, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::IntoParams))]
pub struct LedgerExportQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    /// A user id or an exact username.
    pub user: Option<String>,
}

/// One order as an operator sees it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct AdminOrder {
    /// The order as its buyer sees it.
    pub order: OrderResponse,
    pub user_id: String,
    pub username: String,
    /// Set when a person should look at this order (paid after close, oversold stock...).
    pub needs_review: bool,
    pub review_reason: Option<String>,
}

/// A page of orders for operators.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct AdminOrderListResponse {
    pub items: Vec<AdminOrder>,
    pub page: i64,
    pub per_page: i64,
    pub total: i64,
}

/// A stored provider exchange: an API call we made or a notification we received.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct PaymentRecord {
    pub id: i64,
    pub order_no: Option<String>,
    pub provider: PaymentMethod,
    /// `prepay`, `query`, `close`, `refund`, `refund_query`, `notification`, `refund_notification`.
    pub kind: String,
    /// Request headers (JSON object) for notifications; empty for our own calls.
    pub headers: String,
    /// Raw body received, or a summary of the call and its result.
    pub body: String,
    /// Whether the provider's signature verified.
    pub verified: bool,
    /// What fenpay decided (`Applied`, `Duplicate`, `rejected: ...`, `ok`, `error: ...`).
    pub decision: String,
    pub created_at: DateTime<Utc>,
}

/// Refund state.
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
pub enum RefundStatus {
    /// Accepted by the provider, money not yet back (WeChat refunds are asynchronous).
    Processing,
    Succeeded,
    /// The provider refused or abandoned the refund; the amount is refundable again.
    Failed,
}

impl RefundStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RefundStatus::Processing => "processing",
            RefundStatus::Succeeded => "succeeded",
            RefundStatus::Failed => "failed",
        }
    }

    /// The status named by its stored text; `None` for anything else.
    pub fn parse(s: &str) -> Option<RefundStatus> {
        Some(match s {
            "processing" => RefundStatus::Processing,
            "succeeded" => RefundStatus::Succeeded,
            "failed" => RefundStatus::Failed,
            _ => return None,
        })
    }
}

impl std::fmt::Display for RefundStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `POST /api/v1/admin/refunds`
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct RefundRequest {
    pub order_no: String,
    /// Fen to refund; omit for the whole remaining refundable amount.
    #[serde(default)]
    pub amount_fen: Option<i64>,
    /// Your refund number (6-64 chars of `[0-9A-Za-z_-|*@]`); the same number never
    /// refunds twice. Generated when omitted: from the `Idempotency-Key` when the request
    /// has one (so a retry after a 5xx finds the same refund), otherwise new.
    #[serde(default)]
    pub out_refund_no: Option<String>,
    /// Shown to the buyer by the provider.
    #[serde(default)]
    pub reason: Option<String>,
}

/// A refund.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct RefundResponse {
    pub out_refund_no: String,
    pub order_no: String,
    pub amount_fen: i64,
    pub status: RefundStatus,
    pub reason: Option<String>,
    /// The provider's refund id, once known.
    pub provider_refund_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub succeeded_at: Option<DateTime<Utc>>,
    /// The order after this refund was recorded.
    pub order_status: OrderStatus,
    pub order_refunded_fen: i64,
}

/// An outbound event (outbox row) and where it went.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct EventSummary {
    pub event_id: String,
    /// `order.created`, `order.paid`, `order.cancelled`, `order.refunded`, `order.paid_after_close`,
    /// `order.payment_mismatch`, `order.duplicate_payment`.
    pub event_type: String,
    pub created_at: DateTime<Utc>,
    pub deliveries: Vec<WebhookDelivery>,
}

/// Delivery state of one event to one endpoint.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its next attempt.
    Pending,
    Delivered,
    /// Retries exhausted (24 h by default); an operator may resend.
    Failed,
}

/// One event's delivery to one endpoint, with its attempt count and last result.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct WebhookDelivery {
    pub id: i64,
    pub event_id: String,
    pub event_type: String,
    pub order_no: Option<String>,
    /// The endpoint URL, or `telegram`.
    pub endpoint: String,
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// `GET /api/v1/admin/webhooks/deliveries` filters.
#[derive(Clone, Debug, Serialize, Deserialize, Default, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::IntoParams))]
pub struct DeliveryQuery {
    pub status: Option<DeliveryStatus>,
    pub order_no: Option<String>,
    pub page: Option<i64>,
    pub per_page: Option<i64>,
}

/// A page of deliveries.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct DeliveryListResponse {
    pub items: Vec<WebhookDelivery>,
    pub page: i64,
    pub per_page: i64,
    pub total: i64,
}

/// `GET /api/v1/admin/orders/{order_no}`: the order with everything that happened to it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct AdminOrderDetail {
    pub order: AdminOrder,
    /// Oldest first.
    pub records: Vec<PaymentRecord>,
    pub refunds: Vec<RefundResponse>,
    pub events: Vec<EventSummary>,
    /// The balance changes this order made (its purchase and claw-backs), oldest first.
    #[serde(default)]
    pub balance_entries: Vec<BalanceEntry>,
}

/// One row of the append-only balance ledger.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct BalanceEntry {
    pub id: i64,
    pub user_id: String,
    pub delta_points: i64,
    pub points_after: i64,
    /// Remaining membership seconds after minus before.
    pub delta_membership_secs: i64,
    pub tier_before: Option<String>,
    pub tier_after: Option<String>,
    pub expires_before: Option<DateTime<Utc>>,
    pub expires_after: Option<DateTime<Utc>>,
    pub order_no: Option<String>,
    pub out_refund_no: Option<String>,
    /// `purchase`, `upgrade`, `clawback`, `upgrade_reverted`, `opening_balance`, `adjustment`.
    pub reason: String,
    pub created_at: DateTime<Utc>,
    /// The operator's stated reason of an `adjustment`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// An account whose balances differ from the sum of its ledger.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct LedgerMismatch {
    pub user_id: String,
    pub username: String,
    pub points_balance: i64,
    pub ledger_points: i64,
    pub membership_tier: Option<String>,
    pub ledger_tier: Option<String>,
    pub membership_expires_at: Option<DateTime<Utc>>,
    pub ledger_expires_at: Option<DateTime<Utc>>,
}

/// `GET /api/v1/admin/ledger/verify`: every account checked against its ledger.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct LedgerVerifyResponse {
    pub accounts_checked: usize,
    /// Empty when every balance equals its ledger.
    pub mismatches: Vec<LedgerMismatch>,
}

/// `GET /api/v1/admin/stats` range: days (`YYYY-MM-DD`) in the business time zone
/// (`BUSINESS_TIMEZONE`); default the last 30 days there, today included.
#[derive(Clone, Debug, Serialize, Deserialize, Default, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::IntoParams))]
pub struct StatsQuery {
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
}

/// Paid totals of one provider on one day (by payment time, business time zone).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct DailyTotal {
    pub date: NaiveDate,
    pub provider: PaymentMethod,
    /// Orders paid that day (including ones refunded later).
    pub paid_count: i64,
    pub paid_fen: i64,
    /// Of those, how much has been refunded since.
    pub refunded_fen: i64,
    /// `paid_fen - refunded_fen`.
    pub net_fen: i64,
}

/// Reply of `GET /api/v1/admin/stats`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct StatsResponse {
    /// The IANA time zone whose days these are (`BUSINESS_TIMEZONE`, e.g. `Asia/Shanghai`).
    #[serde(default)]
    pub timezone: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// Ascending by date, then provider; days without payments are omitted.
    pub days: Vec<DailyTotal>,
    pub total_paid_fen: i64,
    pub total_refunded_fen: i64,
    pub total_paid_count: i64,
    /// Expired orders the sweeper could not close at their provider (now, not per range).
    pub stuck: StuckOrders,
}

/// Expired orders still pending because closing them at the provider keeps failing
/// (a misconfigured or rotated key, a refusal). The sweeper retries each with backoff
/// (1 min, 2, 4 ... 1 h); anything here for long needs an operator.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct StuckOrders {
    pub count: i64,
    /// The earliest expiry among them.
    pub oldest_expire_at: Option<DateTime<Utc>>,
    /// The last error of that order's close.
    pub last_error: Option<String>,
}

/// Live order status: `GET /api/v1/payment/orders/{order_no}/events` (server-sent events).
///
/// Each status change is sent as `event: status` with an [`OrderResponse`] as `data`;
/// the current state is sent first. A comment line keeps idle connections open.
/// Browsers' `EventSource` cannot set headers, so it authenticates with
/// `?token=` from [`StreamTokenResponse`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct StreamTokenResponse {
    /// Valid only for this order's event stream.
    pub token: String,
    pub expires_at: DateTime<Utc>,
    /// Path to open with `EventSource` (token included).
    pub url: String,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::payment::{PaymentChannel, PaymentMethod};
    use crate::product::ProductKind;
    use crate::Yuan;

    /// Clients (the WASM app, mobile apps in Rust) decode exactly what the server sends,
    /// yuan amounts included.
    #[test]
    fn admin_lists_round_trip_through_json() {
        let now = chrono::Utc::now();
        let order = OrderResponse {
            order_no: "FP1".into(),
            status: OrderStatus::Paid,
            amount: Yuan(9900),
            amount_fen: 9900,
            payment_time: Some(now),
            payment_method: PaymentMethod::Alipay,
            channel: PaymentChannel::Native,
            product_id: 5,
            product_type: ProductKind::Membership,
            product_name: "pro".into(),
            unit_price_fen: 9900,
            quantity: 1,
            is_upgrade: false,
            qr_code_url: None,
            qr_code_expire_at: now,
            expire_at: now,
            cancel_reason: None,
            refunded_fen: 100,
            provider_transaction_id: Some("T1".into()),
            created_at: now,
            updated_at: now,
        };
        let list = AdminOrderListResponse {
            items: vec![AdminOrder {
                order,
                user_id: "u1".into(),
                username: "alice".into(),
                needs_review: true,
                review_reason: Some("paid after the order was closed".into()),
            }],
            page: 1,
            per_page: 20,
            total: 1,
        };
        let text = serde_json::to_string(&list).unwrap();
        assert!(text.contains(r#""amount":99.00"#), "{text}");
        let back: AdminOrderListResponse = serde_json::from_str(&text).unwrap();
        assert_eq!(back, list);
        assert_eq!(DeliveryStatus::Failed.as_str(), "failed");
        let s: DeliveryStatus = serde_json::from_str(r#""delivered""#).unwrap();
        assert_eq!(s.as_str(), "delivered");
    }
}
