//! WeChat Pay consumer complaints (消费者投诉 2.0): the operator inbox (role `admin`).

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// A complaint's state at WeChat.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ComplaintState {
    /// New, not answered yet: the first reply is due 24 h after the complaint.
    Pending,
    /// Answered; the buyer and the merchant negotiate.
    Processing,
    /// Marked handled.
    Processed,
}

impl ComplaintState {
    pub fn as_str(self) -> &'static str {
        match self {
            ComplaintState::Pending => "pending",
            ComplaintState::Processing => "processing",
            ComplaintState::Processed => "processed",
        }
    }
}

/// One complaint in the inbox.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct ComplaintSummary {
    /// WeChat's complaint id.
    pub complaint_id: String,
    /// `pending`, `processing` or `processed`.
    pub state: String,
    /// `REFUND`, `SERVICE_NOT_WORK` or `OTHERS` (as WeChat names them).
    pub problem_type: Option<String>,
    pub problem_description: String,
    pub complaint_time: DateTime<Utc>,
    /// The complained-about payment, fen.
    pub amount_fen: Option<i64>,
    /// Our order, when the complaint's `out_trade_no` is one of ours.
    pub order_no: Option<String>,
    pub transaction_id: Option<String>,
    /// How many times this buyer complained.
    pub user_complaint_times: i64,
    /// A buyer message waits for an answer.
    pub incoming_user_response: bool,
    /// First reply due (pending complaints only: complaint time + 24 h).
    pub response_deadline: Option<DateTime<Utc>>,
    /// Seconds until `response_deadline`; negative when overdue; null without a deadline.
    pub time_left_secs: Option<i64>,
    pub handled_at: Option<DateTime<Utc>>,
    /// When fenpay last read it from WeChat.
    pub last_synced_at: DateTime<Utc>,
}

/// One entry of a complaint's negotiation history (oldest first).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct NegotiationEntry {
    pub log_id: String,
    pub operator: String,
    pub operate_time: String,
    /// e.g. `USER_CREATE_COMPLAINT`, `MERCHANT_RESPONSE`, `MERCHANT_CONFIRM_COMPLETE`.
    pub operate_type: String,
    pub operate_details: Option<String>,
}

/// The order a complaint is about.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct ComplaintOrder {
    pub order_no: String,
    pub user_id: String,
    pub status: String,
    pub amount_fen: i64,
    pub refunded_fen: i64,
    pub product_name: String,
    pub paid_at: Option<DateTime<Utc>>,
}

/// `GET /api/v1/admin/complaints/{id}`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct ComplaintDetail {
    pub complaint: ComplaintSummary,
    /// The buyer's complaint text.
    pub complaint_detail: String,
    pub history: Vec<NegotiationEntry>,
    pub order: Option<ComplaintOrder>,
}

/// `GET /api/v1/admin/complaints` filters.
#[derive(Clone, Debug, Serialize, Deserialize, Default, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::IntoParams))]
pub struct ComplaintQuery {
    #[cfg_attr(feature = "server", param(inline))]
    pub state: Option<ComplaintState>,
    /// 1-based (default 1).
    pub page: Option<i64>,
    /// 1-100 (default 20).
    pub per_page: Option<i64>,
}

/// A page of complaints, newest first.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct ComplaintListResponse {
    pub items: Vec<ComplaintSummary>,
    pub page: i64,
    pub per_page: i64,
    pub total: i64,
}

/// `POST /api/v1/admin/complaints/{id}/reply`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct ComplaintReplyRequest {
    /// 1-200 characters (after trimming).
    pub content: String,
}

/// `POST /api/v1/admin/complaints/sync`: China days, at most 30 (default: the last 30).
#[derive(Clone, Debug, Serialize, Deserialize, Default, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct ComplaintSyncRequest {
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
}

/// What a sync did.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct ComplaintSyncResponse {
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// Complaints WeChat listed.
    pub seen: i64,
    /// New here.
    pub created: i64,
}
