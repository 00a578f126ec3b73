//! Consumer complaints 2.0 (消费者投诉 2.0) wire types, shared by fenpay's client and the
//! emulator: `/v3/merchant-service/complaints-v2[...]` answers and bodies,
//! `/v3/merchant-service/complaint-notifications`, and the decrypted `COMPLAINT.*`
//! notification resource. Only the members fenpay reads or the emulator serves are typed;
//! unknown members are ignored. The payer's phone (`payer_phone`, RSA-encrypted) is
//! deliberately not a member: it is never decrypted nor stored.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Complaint states (`complaint_state`).
pub const STATE_PENDING: &str = "PENDING";
pub const STATE_PROCESSING: &str = "PROCESSING";
pub const STATE_PROCESSED: &str = "PROCESSED";

/// Notification event types.
pub const EVENT_CREATE: &str = "COMPLAINT.CREATE";
pub const EVENT_STATE_CHANGE: &str = "COMPLAINT.STATE_CHANGE";

/// One complaint, as the detail endpoint (and each item of the list) answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Complaint {
    pub complaint_id: String,
    /// RFC 3339, e.g. `2015-05-20T13:29:35.120+08:00`.
    pub complaint_time: String,
    #[serde(default)]
    pub complaint_detail: String,
    /// `PENDING`, `PROCESSING` or `PROCESSED`.
    pub complaint_state: String,
    #[serde(default)]
    pub complainted_mchid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer_openid: Option<String>,
    #[serde(default)]
    pub complaint_order_info: Vec<ComplaintOrderInfo>,
    #[serde(default)]
    pub complaint_full_refunded: bool,
    /// A buyer message waits for the merchant's answer.
    #[serde(default)]
    pub incoming_user_response: bool,
    #[serde(default)]
    pub user_complaint_times: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub complaint_media_list: Vec<Value>,
    #[serde(default)]
    pub problem_description: String,
    /// `REFUND`, `SERVICE_NOT_WORK` or `OTHERS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem_type: Option<String>,
    /// Fen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply_refund_amount: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_tag_list: Vec<String>,
}

/// An order a complaint is about (`complaint_order_info[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComplaintOrderInfo {
    pub transaction_id: String,
    pub out_trade_no: String,
    /// Fen.
    pub amount: i64,
}

/// `GET /v3/merchant-service/complaints-v2` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComplaintList {
    #[serde(default)]
    pub data: Vec<Complaint>,
    pub limit: i64,
    pub offset: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_count: Option<i64>,
}

/// One negotiation history entry (`negotiation-historys` `data[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NegotiationEntry {
    pub log_id: String,
    #[serde(default)]
    pub operator: String,
    /// RFC 3339.
    pub operate_time: String,
    /// e.g. `USER_CREATE_COMPLAINT`, `MERCHANT_RESPONSE`, `MERCHANT_CONFIRM_COMPLETE`.
    pub operate_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operate_details: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_list: Vec<String>,
}

/// `GET .../complaints-v2/{complaint_id}/negotiation-historys` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NegotiationHistory {
    #[serde(default)]
    pub data: Vec<NegotiationEntry>,
    pub limit: i64,
    pub offset: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_count: Option<i64>,
}

/// `POST .../complaints-v2/{complaint_id}/response` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseBody {
    pub complainted_mchid: String,
    /// At most 500 characters at WeChat.
    pub response_content: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jump_url: Option<String>,
    /// Required with `jump_url`, at most 10 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jump_url_text: Option<String>,
}

/// `POST .../complaints-v2/{complaint_id}/complete` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompleteBody {
    pub complainted_mchid: String,
}

/// `POST`/`PUT /v3/merchant-service/complaint-notifications` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationUrlBody {
    pub url: String,
}

/// What the notification-URL endpoints answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationUrl {
    pub mchid: String,
    pub url: String,
}

/// The decrypted resource of a `COMPLAINT.*` notification: only the id is trusted
/// enough to act on (the complaint is then read from the API).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComplaintNotice {
    pub complaint_id: String,
    /// e.g. `CREATE_COMPLAINT`, `MERCHANT_RESPONSE`, `MERCHANT_CONFIRM_COMPLETE`.
    #[serde(default)]
    pub action_type: String,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_detail_parses_and_never_keeps_the_phone() {
        let c: Complaint = serde_json::from_str(
            r#"{"complaint_id":"200201820200101080076610000","complaint_time":"2015-05-20T13:29:35.120+08:00",
                "complaint_detail":"反馈一个重复扣费的问题","complaint_state":"PENDING","complainted_mchid":"1900012181",
                "payer_phone":"Uy3qX0...encrypted","payer_openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
                "complaint_order_info":[{"transaction_id":"4200000404201909069117582536","out_trade_no":"20190906154617947762231","amount":3}],
                "complaint_full_refunded":true,"incoming_user_response":false,"user_complaint_times":1,
                "complaint_media_list":[{"media_type":"USER_COMPLAINT_IMAGE","media_url":["https://x"]}],
                "problem_description":"不满意商家服务","problem_type":"REFUND","apply_refund_amount":10,
                "user_tag_list":["TRUSTED"],"service_order_info":[]}"#,
        )
        .unwrap();
        assert_eq!(c.complaint_state, STATE_PENDING);
        assert_eq!(c.complaint_order_info[0].amount, 3);
        assert_eq!(c.problem_type.as_deref(), Some("REFUND"));
        let again = serde_json::to_string(&c).unwrap();
        assert!(!again.contains("payer_phone"), "{again}");
    }
}
