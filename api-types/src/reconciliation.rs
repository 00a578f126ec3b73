//! Three-way reconciliation of the providers' daily bills with orders and refunds
//! (operator API, role `admin`).

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::payment::PaymentMethod;

/// What one reconciliation item says. The codes are stable.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReconItemKind {
    /// The bill row and our record agree (payment or refund).
    Matched,
    /// Paid at the provider, not paid here (a lost notification, a payment after close).
    MissingHere,
    /// Paid here within the day, absent from the provider's bill.
    MissingAtProvider,
    /// Both paid, different amounts.
    AmountMismatch,
    /// Both paid, but the provider's transaction id differs from ours.
    StatusMismatch,
    /// Refunded at the provider, not (or not yet successfully) refunded here.
    RefundMissingHere,
    /// Refunded here within the day, absent from the provider's bill.
    RefundMissingAtProvider,
    /// Both refunded, different amounts.
    RefundAmountMismatch,
    /// A bill row for an order number we never issued: reported, never applied.
    UnknownOrder,
    /// The same payment or refund listed twice in the bill.
    DuplicateInBill,
    /// The bill's own summary does not add up to its rows.
    BillTotalsMismatch,
}

impl ReconItemKind {
    pub const ALL: [ReconItemKind; 11] = [
        ReconItemKind::Matched,
        ReconItemKind::MissingHere,
        ReconItemKind::MissingAtProvider,
        ReconItemKind::AmountMismatch,
        ReconItemKind::StatusMismatch,
        ReconItemKind::RefundMissingHere,
        ReconItemKind::RefundMissingAtProvider,
        ReconItemKind::RefundAmountMismatch,
        ReconItemKind::UnknownOrder,
        ReconItemKind::DuplicateInBill,
        ReconItemKind::BillTotalsMismatch,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReconItemKind::Matched => "matched",
            ReconItemKind::MissingHere => "missing_here",
            ReconItemKind::MissingAtProvider => "missing_at_provider",
            ReconItemKind::AmountMismatch => "amount_mismatch",
            ReconItemKind::StatusMismatch => "status_mismatch",
            ReconItemKind::RefundMissingHere => "refund_missing_here",
            ReconItemKind::RefundMissingAtProvider => "refund_missing_at_provider",
            ReconItemKind::RefundAmountMismatch => "refund_amount_mismatch",
            ReconItemKind::UnknownOrder => "unknown_order",
            ReconItemKind::DuplicateInBill => "duplicate_in_bill",
            ReconItemKind::BillTotalsMismatch => "bill_totals_mismatch",
        }
    }

    /// The kind named by its stored code; `None` for anything else.
    pub fn parse(s: &str) -> Option<ReconItemKind> {
        ReconItemKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Everything but `matched` is a difference.
    pub fn is_difference(self) -> bool {
        self != ReconItemKind::Matched
    }
}

/// Where a reconciliation run stands.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReconStatus {
    /// Not run yet (the job created it and will run it).
    Pending,
    /// Run: items and totals stored.
    Done,
    /// The last attempt failed (provider or database error); retried.
    Failed,
    /// The provider has no bill for that day yet; retried.
    NotReady,
}

impl ReconStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReconStatus::Pending => "pending",
            ReconStatus::Done => "done",
            ReconStatus::Failed => "failed",
            ReconStatus::NotReady => "not_ready",
        }
    }

    pub fn parse(s: &str) -> Option<ReconStatus> {
        Some(match s {
            "pending" => ReconStatus::Pending,
            "done" => ReconStatus::Done,
            "failed" => ReconStatus::Failed,
            "not_ready" => ReconStatus::NotReady,
            _ => return None,
        })
    }
}

/// One provider's day as reconciled.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct Reconciliation {
    pub id: i64,
    pub provider: PaymentMethod,
    /// The China-time (UTC+8) day the providers' bill covers.
    pub date: NaiveDate,
    pub status: ReconStatus,
    pub attempts: i32,
    /// When the job tries again (`not_ready`, `failed`).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Sum of the bill's payment rows.
    pub bill_payments_fen: i64,
    /// Sum of the bill's refund rows (positive).
    pub bill_refunds_fen: i64,
    /// Provider fees on the bill (net of fees given back).
    pub bill_fees_fen: i64,
    /// Settlement: payments - refunds - fees.
    pub net_fen: i64,
    /// Our payments within the day.
    pub our_payments_fen: i64,
    /// Our successful refunds within the day.
    pub our_refunds_fen: i64,
    pub matched_count: i64,
    pub difference_count: i64,
    /// `missing_here` payments verified with the provider and applied.
    pub applied_count: i64,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
}

/// One matched pair or one difference.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct ReconciliationItem {
    pub id: i64,
    pub kind: ReconItemKind,
    pub order_no: Option<String>,
    pub out_refund_no: Option<String>,
    pub provider_trade_no: Option<String>,
    pub our_amount_fen: Option<i64>,
    pub provider_amount_fen: Option<i64>,
    pub our_status: Option<String>,
    pub provider_status: Option<String>,
    /// A `missing_here` payment the run verified with the provider and applied.
    pub applied: bool,
    /// `none` (matched), `open` (a difference for an operator to look at).
    pub review: String,
    pub detail: String,
}

/// `GET /api/v1/admin/reconciliations` filters.
#[derive(Clone, Debug, Serialize, Deserialize, Default, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::IntoParams))]
pub struct ReconciliationQuery {
    /// Days on or after this one (`YYYY-MM-DD`, China time).
    pub from: Option<NaiveDate>,
    /// Days on or before this one.
    pub to: Option<NaiveDate>,
    pub provider: Option<PaymentMethod>,
}

/// Reply of `GET /api/v1/admin/reconciliations`: newest day first (at most 200).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct ReconciliationList {
    pub items: Vec<Reconciliation>,
}

/// Reply of `GET /api/v1/admin/reconciliations/{id}` and of a run: differences first.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct ReconciliationDetail {
    pub reconciliation: Reconciliation,
    pub items: Vec<ReconciliationItem>,
}

/// `POST /api/v1/admin/reconciliations`: run one day now.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct RunReconciliationRequest {
    /// The China-time day (`YYYY-MM-DD`).
    pub date: NaiveDate,
    /// One provider; both configured ones when omitted.
    #[serde(default)]
    pub provider: Option<PaymentMethod>,
}

/// Reply of `POST /api/v1/admin/reconciliations`: one entry per provider run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct RunReconciliationResponse {
    pub runs: Vec<ReconciliationDetail>,
}
