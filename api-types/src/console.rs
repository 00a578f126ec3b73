//! Running the business from the console: the admin audit log, account management and
//! catalog management.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One admin action.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    pub id: i64,
    /// The admin's account id (`cli` for the command line).
    pub actor_id: String,
    pub actor_name: String,
    /// A stable code: `refund.create`, `delivery.resend`, `product.create`,
    /// `product.update`, `product.retire`, `product.restock`, `product.reorder`,
    /// `account.adjust`, `account.disable`, `account.enable`, `account.grant_admin`,
    /// `account.revoke_admin`, `complaint.reply`, `complaint.complete`, ...
    pub action: String,
    /// `order`, `refund`, `delivery`, `product`, `account`, `complaint`, ...
    pub target_kind: String,
    pub target_id: String,
    /// The target's state before the action (absent when it did not exist).
    #[cfg_attr(feature = "server", schema(value_type = Option<Object>))]
    pub before: Option<serde_json::Value>,
    /// The target's state after the action.
    #[cfg_attr(feature = "server", schema(value_type = Option<Object>))]
    pub after: Option<serde_json::Value>,
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// `GET /api/v1/admin/audit` filters.
#[derive(Clone, Debug, Serialize, Deserialize, Default, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::IntoParams))]
pub struct AuditQuery {
    /// The acting admin's account id.
    pub actor_id: Option<String>,
    /// An exact action (`product.update`) or a family (`product`).
    pub action: Option<String>,
    pub target_kind: Option<String>,
    pub target_id: Option<String>,
    /// First business day (`YYYY-MM-DD`, in BUSINESS_TIMEZONE) or an RFC 3339 instant.
    pub from: Option<String>,
    /// Last business day (inclusive) or an RFC 3339 instant (exclusive).
    pub to: Option<String>,
    pub page: Option<i64>,
    pub per_page: Option<i64>,
}

/// A page of audit entries, newest first.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct AuditListResponse {
    pub items: Vec<AuditEntry>,
    pub page: i64,
    pub per_page: i64,
    pub total: i64,
}

/// `GET /api/v1/admin/accounts`: search by username, email, account id or an app's
/// external user id (`customer_ref`, a JWT's `sub`).
#[derive(Clone, Debug, Serialize, Deserialize, Default, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::IntoParams))]
pub struct AccountQuery {
    /// Part of a username or email (case-insensitive), or an exact account id or external id.
    pub q: Option<String>,
    /// Only `admin` or `user` accounts.
    pub role: Option<String>,
    /// Only disabled (`true`) or enabled (`false`) accounts.
    pub disabled: Option<bool>,
    pub page: Option<i64>,
    pub per_page: Option<i64>,
}

/// An account as an operator sees it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct AccountSummary {
    pub id: String,
    pub username: String,
    pub email: String,
    /// `admin` or `user`.
    pub role: String,
    pub points_balance: i64,
    pub membership_tier: Option<String>,
    pub membership_expires_at: Option<DateTime<Utc>>,
    /// When the account was disabled (absent: enabled).
    pub disabled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A page of accounts, newest first.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct AccountListResponse {
    pub items: Vec<AccountSummary>,
    pub page: i64,
    pub per_page: i64,
    pub total: i64,
}

/// The account as a merchant app's customer.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct AccountLink {
    pub app_id: String,
    pub external_id: String,
}

/// `GET /api/v1/admin/accounts/{id}`: the account with its latest orders, refunds and
/// ledger entries (newest first, at most 100 of each) and its admin history.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct AccountDetail {
    pub account: AccountSummary,
    pub links: Vec<AccountLink>,
    pub orders: Vec<crate::admin::AdminOrder>,
    pub orders_total: i64,
    pub refunds: Vec<crate::admin::RefundResponse>,
    pub ledger: Vec<crate::admin::BalanceEntry>,
    /// Admin actions on this account, newest first (at most 50).
    pub audit: Vec<AuditEntry>,
}

/// `POST /api/v1/admin/accounts/{id}/adjust`: points and/or days of membership added
/// (positive) or taken (negative), with the reason written to the ledger entry.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct AdjustRequest {
    #[serde(default)]
    pub points: i64,
    #[serde(default)]
    pub membership_days: i64,
    /// A membership product whose tier is granted to an account without an active one.
    pub tier_product_id: Option<i64>,
    /// Why (1 to 200 characters); mandatory.
    pub reason: String,
}

/// The account after an adjustment and the ledger entry written.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct AdjustResponse {
    pub account: AccountSummary,
    pub entry: crate::admin::BalanceEntry,
}

/// An optional stated reason for disable / enable / role changes.
#[derive(Clone, Debug, Serialize, Deserialize, Default, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct ReasonRequest {
    pub reason: Option<String>,
}

/// `POST /api/v1/admin/products`: a new product, on sale at once (placed last).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct ProductCreate {
    /// `points` or `membership`.
    pub kind: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub price_fen: i64,
    /// Points granted per unit (required for `points`; optional extra for `membership`).
    pub points: Option<i64>,
    /// Membership days per unit (`membership`).
    pub membership_days: Option<i64>,
    /// Tier name (`membership`): a-z, 0-9, `_`, `-`.
    pub membership_tier: Option<String>,
    /// Tier rank (`membership`): a higher rank is an upgrade and must cost more per day.
    pub tier_rank: Option<i32>,
    /// Units for sale; absent: unlimited.
    pub stock: Option<i64>,
}

/// `PATCH /api/v1/admin/products/{id}`: the fields given replace the current ones. Orders
/// already created keep the price and grant they were created with.
#[derive(Clone, Debug, Serialize, Deserialize, Default, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct ProductPatchRequest {
    pub name: Option<String>,
    pub description: Option<String>,
    pub price_fen: Option<i64>,
    pub points: Option<i64>,
    pub membership_days: Option<i64>,
    pub membership_tier: Option<String>,
    pub tier_rank: Option<i32>,
}

/// `POST /api/v1/admin/products/{id}/restock`: units added to a limited product.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct RestockRequest {
    pub add: i64,
}

/// `POST /api/v1/admin/products/reorder`: product ids in the order to show them (those
/// not listed follow in their current order).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct ReorderRequest {
    pub ids: Vec<i64>,
}

/// `GET /api/v1/admin/products`: every product, on sale or retired, in display order.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct AdminProductList {
    pub items: Vec<crate::product::ProductResponse>,
}
