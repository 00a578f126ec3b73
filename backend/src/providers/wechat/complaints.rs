//! Consumer complaints 2.0 (消费者投诉 2.0): list, detail, negotiation history, reply,
//! mark handled, the notification URL, and `COMPLAINT.*` notifications. Signed and
//! verified exactly like the payment calls ([`WechatClient::call`]).

use std::collections::HashMap;

use chrono::NaiveDate;
use fenpay_proto::wechat::complaints::{
    Complaint, ComplaintList, ComplaintNotice, CompleteBody, NegotiationEntry, NegotiationHistory,
    NotificationUrl, NotificationUrlBody, ResponseBody, EVENT_CREATE, EVENT_STATE_CHANGE,
};

use super::{parse_json, WechatClient};
use crate::providers::ProviderError;

/// Largest page the list endpoint answers.
pub const LIST_PAGE: i64 = 50;
/// Largest page of the negotiation history.
const HISTORY_PAGE: i64 = 300;

/// A reply's optional link (`jump_url` must be HTTPS; `jump_url_text` at most 10 chars).
#[derive(Clone, Debug, Default)]
pub struct JumpLink {
    pub url: String,
    pub text: String,
}

impl WechatClient {
    fn complaint_path(id: &str) -> String {
        format!(
            "/v3/merchant-service/complaints-v2/{}",
            urlencoding::encode(id)
        )
    }

    /// One page of complaints made between `begin` and `end` (China days, at most 30
    /// days apart), for this merchant.
    pub async fn list_complaints(
        &self,
        begin: NaiveDate,
        end: NaiveDate,
        limit: i64,
        offset: i64,
    ) -> Result<ComplaintList, ProviderError> {
        let path = format!(
            "/v3/merchant-service/complaints-v2?limit={limit}&offset={offset}&begin_date={}&end_date={}&complainted_mchid={}",
            begin.format("%Y-%m-%d"),
            end.format("%Y-%m-%d"),
            urlencoding::encode(&self.cfg.mch_id)
        );
        let (_, text) = self.call("GET", &path, None).await?;
        let list: ComplaintList = parse_json(&text)?;
        for c in &list.data {
            self.check_complaint_owner(c)?;
        }
        Ok(list)
    }

    /// One complaint (`GET /v3/merchant-service/complaints-v2/{complaint_id}`).
    pub async fn complaint(&self, id: &str) -> Result<Complaint, ProviderError> {
        let (_, text) = self.call("GET", &Self::complaint_path(id), None).await?;
        let complaint: Complaint = parse_json(&text)?;
        if complaint.complaint_id != id {
            return Err(ProviderError::InvalidResponse(format!(
                "asked about complaint {id}, the answer is about {}",
                complaint.complaint_id
            )));
        }
        self.check_complaint_owner(&complaint)?;
        Ok(complaint)
    }

    /// The whole negotiation history of a complaint, oldest first as WeChat lists it.
    pub async fn negotiation_history(
        &self,
        id: &str,
    ) -> Result<Vec<NegotiationEntry>, ProviderError> {
        let mut out = Vec::new();
        loop {
            let path = format!(
                "{}/negotiation-historys?limit={HISTORY_PAGE}&offset={}",
                Self::complaint_path(id),
                out.len()
            );
            let (_, text) = self.call("GET", &path, None).await?;
            let page: NegotiationHistory = parse_json(&text)?;
            let got = page.data.len();
            out.extend(page.data);
            let more = page
                .total_count
                .map_or(got as i64 == HISTORY_PAGE, |total| {
                    (out.len() as i64) < total
                });
            if got == 0 || !more {
                return Ok(out);
            }
        }
    }

    /// Reply to the buyer (`POST .../{complaint_id}/response`, 204).
    pub async fn respond_to_complaint(
        &self,
        id: &str,
        content: &str,
        jump: Option<&JumpLink>,
    ) -> Result<(), ProviderError> {
        let body = ResponseBody {
            complainted_mchid: self.cfg.mch_id.clone(),
            response_content: content.to_string(),
            jump_url: jump.map(|j| j.url.clone()),
            jump_url_text: jump.map(|j| j.text.clone()),
        };
        let body = serde_json::to_string(&body)
            .map_err(|e| ProviderError::InvalidResponse(e.to_string()))?;
        let path = format!("{}/response", Self::complaint_path(id));
        self.call("POST", &path, Some(body)).await.map(|_| ())
    }

    /// Tell WeChat the complaint is handled (`POST .../{complaint_id}/complete`, 204).
    pub async fn complete_complaint(&self, id: &str) -> Result<(), ProviderError> {
        let body = serde_json::to_string(&CompleteBody {
            complainted_mchid: self.cfg.mch_id.clone(),
        })
        .map_err(|e| ProviderError::InvalidResponse(e.to_string()))?;
        let path = format!("{}/complete", Self::complaint_path(id));
        self.call("POST", &path, Some(body)).await.map(|_| ())
    }

    /// The registered complaint notification URL; `None` when none is registered.
    pub async fn complaint_notify_url(&self) -> Result<Option<NotificationUrl>, ProviderError> {
        match self
            .call("GET", "/v3/merchant-service/complaint-notifications", None)
            .await
        {
            Ok((_, text)) => Ok(Some(parse_json(&text)?)),
            Err(ProviderError::TradeNotExist) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Register (`POST`) or replace (`PUT`) the complaint notification URL.
    pub async fn set_complaint_notify_url(
        &self,
        url: &str,
        replace: bool,
    ) -> Result<NotificationUrl, ProviderError> {
        let body = serde_json::to_string(&NotificationUrlBody { url: url.into() })
            .map_err(|e| ProviderError::InvalidResponse(e.to_string()))?;
        let method = if replace { "PUT" } else { "POST" };
        let (_, text) = self
            .call(
                method,
                "/v3/merchant-service/complaint-notifications",
                Some(body),
            )
            .await?;
        parse_json(&text)
    }

    /// Remove the complaint notification URL (`DELETE`, 204).
    pub async fn delete_complaint_notify_url(&self) -> Result<(), ProviderError> {
        self.call(
            "DELETE",
            "/v3/merchant-service/complaint-notifications",
            None,
        )
        .await
        .map(|_| ())
    }

    /// Verify a `COMPLAINT.CREATE` / `COMPLAINT.STATE_CHANGE` notification exactly like a
    /// payment notification (signature over the raw body, skew, serial mode, AES-256-GCM)
    /// and return its resource. Only its `complaint_id` is to be used: the complaint
    /// itself is read from the API.
    pub async fn verify_complaint_notification(
        &self,
        headers: &HashMap<String, String>,
        body: &[u8],
    ) -> Result<ComplaintNotice, ProviderError> {
        let (_, notice): (_, ComplaintNotice) = self
            .open_notification(headers, body, &[EVENT_CREATE, EVENT_STATE_CHANGE], "")
            .await?;
        if notice.complaint_id.trim().is_empty() || notice.complaint_id.len() > 64 {
            return Err(ProviderError::InvalidResponse(
                "complaint notification without a valid complaint_id".into(),
            ));
        }
        Ok(notice)
    }

    /// A complaint against another merchant is not ours to store.
    fn check_complaint_owner(&self, c: &Complaint) -> Result<(), ProviderError> {
        if !c.complainted_mchid.is_empty() && c.complainted_mchid != self.cfg.mch_id {
            return Err(ProviderError::InvalidResponse(format!(
                "complaint {} is against mchid {}",
                c.complaint_id, c.complainted_mchid
            )));
        }
        Ok(())
    }
}
