//! A provider's daily bill as typed rows: what the providers' statement files
//! (WeChat Pay `tradebill`, Alipay `trade` bill) say happened on one China-time day.
//!
//! The provider clients turn the files into these rows; the reconciliation rules
//! (`domain::reconciliation`) match them against orders and refunds. Amounts are fen.

use api_types::payment::PaymentMethod;
use chrono::{DateTime, NaiveDate, Utc};

/// What one bill row records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BillKind {
    /// A successful payment (WeChat `SUCCESS`, Alipay `交易`).
    Payment,
    /// A refund (WeChat `REFUND`, Alipay `退款`).
    Refund,
}

/// One payment or refund in a provider's daily bill.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BillRow {
    pub provider: PaymentMethod,
    pub kind: BillKind,
    /// Our order number (`out_trade_no`).
    pub out_trade_no: String,
    /// The provider's transaction id (`transaction_id` / `trade_no`).
    pub provider_trade_no: String,
    /// Refund rows: our refund number (`out_refund_no` / Alipay 退款批次号).
    pub out_refund_no: Option<String>,
    /// Refund rows: the provider's refund id, when the bill has one.
    pub provider_refund_no: Option<String>,
    /// Payment rows: the amount paid; refund rows: the amount refunded. Always positive.
    pub amount_fen: i64,
    /// The provider's service fee on this row as the bill states it (refund rows usually
    /// carry a negative fee: the fee given back).
    pub fee_fen: i64,
    /// The provider's own status text for the row (WeChat 交易状态 `SUCCESS` / `REFUND`,
    /// refund status `SUCCESS` / `PROCESSING` / ...; Alipay 业务类型 `交易` / `退款`).
    pub status: String,
    /// When it happened (payment time, refund time).
    pub occurred_at: DateTime<Utc>,
}

/// The totals a bill states about itself (its summary rows), for checking the rows
/// were all read and for the settlement figures.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BillTotals {
    /// Number of detail rows the summary announces.
    pub rows: i64,
    /// Sum of payment amounts.
    pub payments_fen: i64,
    /// Sum of refund amounts (positive).
    pub refunds_fen: i64,
    /// Sum of service fees (net of fees given back).
    pub fees_fen: i64,
}

/// A bill for one provider and one day, as fetched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BillFetch {
    /// The provider has no bill for that day yet (WeChat `NO_STATEMENT_EXIST` /
    /// `STATEMENT_CREATING`, Alipay `isp.bill_not_exist`): try again later.
    NotReady { reason: String },
    /// The bill: every detail row, and the totals its summary states.
    Ready {
        day: NaiveDate,
        rows: Vec<BillRow>,
        totals: BillTotals,
    },
}
