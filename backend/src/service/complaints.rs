//! The WeChat Pay complaints inbox (消费者投诉 2.0): sync complaints from the API (on a
//! verified notification, on demand for a date window, periodically), list and show them,
//! reply to the buyer and mark them handled. Only verified API answers change what is
//! stored; a notification contributes nothing but the complaint's id.

use std::sync::Arc;

use api_types::complaints::{
    ComplaintDetail, ComplaintListResponse, ComplaintOrder, ComplaintQuery, ComplaintSummary,
    ComplaintSyncRequest, ComplaintSyncResponse, NegotiationEntry,
};
use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Utc};
use fenpay_proto::wechat::complaints::{self as wire, Complaint};
use serde_json::json;

use crate::auth::AuthUser;
use crate::db::complaints::{self as complaint_db, ComplaintRow, ComplaintWrite};
use crate::db::events::{PendingEvent, COMPLAINT_CREATED};
use crate::db::{self, orders as order_db};
use crate::domain::complaints::{self as rules, ComplaintState};
use crate::error::{AppError, AppResult};
use crate::providers::wechat::WechatClient;
use crate::providers::ProviderError;
use crate::service::admin::paging;
use crate::service::audit::{self, Actor, Change, Target};
use crate::startup::AppState;

fn client(state: &AppState) -> AppResult<Arc<WechatClient>> {
    state
        .providers
        .wechat
        .clone()
        .ok_or_else(|| AppError::conflict("wechat_not_configured", "WeChat Pay is not configured"))
}

/// A provider failure as the admin API reports it.
fn provider_error(e: ProviderError) -> AppError {
    match e {
        ProviderError::TradeNotExist => AppError::NotFound("complaint"),
        ProviderError::Rejected { code, message } => AppError::conflict(
            "complaint_rejected",
            format!("WeChat Pay refused: {code}: {message}"),
        ),
        other => AppError::ProviderUnavailable(other.to_string()),
    }
}

fn parse_time(text: &str) -> Option<NaiveDateTime> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc).naive_utc())
}

/// Today in China (the days WeChat's `begin_date` / `end_date` name).
fn china_today() -> NaiveDate {
    (Utc::now() + Duration::hours(8)).date_naive()
}

/// What to store for a complaint just read from WeChat (its history too).
fn to_write(
    c: &Complaint,
    history: &[wire::NegotiationEntry],
    order_no: Option<String>,
    now: NaiveDateTime,
) -> Result<ComplaintWrite, ProviderError> {
    let state = ComplaintState::parse(&c.complaint_state).ok_or_else(|| {
        ProviderError::InvalidResponse(format!("unknown complaint_state {}", c.complaint_state))
    })?;
    let complaint_time = parse_time(&c.complaint_time).ok_or_else(|| {
        ProviderError::InvalidResponse(format!("complaint_time {:?}", c.complaint_time))
    })?;
    let first = c.complaint_order_info.first();
    let raw =
        serde_json::to_string(c).map_err(|e| ProviderError::InvalidResponse(e.to_string()))?;
    let history_json = serde_json::to_string(history)
        .map_err(|e| ProviderError::InvalidResponse(e.to_string()))?;
    Ok(ComplaintWrite {
        complaint_id: c.complaint_id.clone(),
        state: state.as_str().to_string(),
        problem_type: c.problem_type.clone(),
        problem_description: c.problem_description.clone(),
        complaint_detail: c.complaint_detail.clone(),
        complaint_time,
        amount_fen: first.map(|o| o.amount),
        out_trade_no: first.map(|o| o.out_trade_no.clone()),
        transaction_id: first.map(|o| o.transaction_id.clone()),
        order_no,
        user_complaint_times: c.user_complaint_times,
        incoming_user_response: c.incoming_user_response,
        response_deadline: rules::response_deadline(state, complaint_time),
        handled_at: (state == ComplaintState::Processed).then_some(now),
        last_synced_at: now,
        raw_detail: raw,
        history_json,
        updated_at: now,
    })
}

/// The inbox entry of a stored complaint, `time_left_secs` counted at `now`.
pub fn summary(row: &ComplaintRow, now: NaiveDateTime) -> ComplaintSummary {
    ComplaintSummary {
        complaint_id: row.complaint_id.clone(),
        state: row.state.clone(),
        problem_type: row.problem_type.clone(),
        problem_description: row.problem_description.clone(),
        complaint_time: db::utc(row.complaint_time),
        amount_fen: row.amount_fen,
        order_no: row.order_no.clone(),
        transaction_id: row.transaction_id.clone(),
        user_complaint_times: row.user_complaint_times,
        incoming_user_response: row.incoming_user_response,
        response_deadline: row.response_deadline.map(db::utc),
        time_left_secs: rules::time_left_secs(row.response_deadline, now),
        handled_at: row.handled_at.map(db::utc),
        last_synced_at: db::utc(row.last_synced_at),
    }
}

/// `complaint.created`: the complaint, its linked order and the time left to answer.
fn created_event(state: &AppState, w: &ComplaintWrite, now: NaiveDateTime) -> PendingEvent {
    PendingEvent::general(
        COMPLAINT_CREATED,
        json!({
            "complaint": {
                "complaint_id": w.complaint_id,
                "state": w.state,
                "problem_type": w.problem_type,
                "problem_description": w.problem_description,
                "complaint_time": db::utc(w.complaint_time),
                "amount_fen": w.amount_fen,
                "order_no": w.order_no,
                "transaction_id": w.transaction_id,
                "user_complaint_times": w.user_complaint_times,
                "response_deadline": w.response_deadline.map(db::utc),
                "time_left_secs": rules::time_left_secs(w.response_deadline, now),
            }
        }),
        &state.sinks,
        now,
    )
}

/// Store a complaint read from WeChat with its history; `true` when it is new here.
async fn store(
    state: &AppState,
    c: &Complaint,
    history: &[wire::NegotiationEntry],
) -> AppResult<bool> {
    let order_no = match c.complaint_order_info.first() {
        Some(o) => order_db::find(&state.db, &o.out_trade_no)
            .await?
            .map(|row| row.order_no),
        None => None,
    };
    let now = db::now();
    let write = to_write(c, history, order_no, now).map_err(provider_error)?;
    let event = created_event(state, &write, now);
    let created = complaint_db::upsert(&state.db, &write, &event).await?;
    if created {
        state.hub.committed([&event]);
        tracing::warn!(complaint_id = %write.complaint_id, order_no = ?write.order_no, "new WeChat Pay complaint");
    }
    Ok(created)
}

/// Read one complaint and its negotiation history from WeChat and store them.
pub async fn sync_one(state: &AppState, complaint_id: &str) -> AppResult<ComplaintRow> {
    let client = client(state)?;
    let detail = client
        .complaint(complaint_id)
        .await
        .map_err(provider_error)?;
    let history = client
        .negotiation_history(complaint_id)
        .await
        .map_err(provider_error)?;
    store(state, &detail, &history).await?;
    complaint_db::find(&state.db, complaint_id)
        .await?
        .ok_or(AppError::NotFound("complaint"))
}

/// Pull every complaint of a window (China days, at most 30) and store each with its
/// history.
pub async fn sync_window(
    state: &AppState,
    req: &ComplaintSyncRequest,
) -> AppResult<ComplaintSyncResponse> {
    let to = req.to.unwrap_or_else(china_today);
    let from = req
        .from
        .unwrap_or_else(|| to - Duration::days(rules::MAX_WINDOW_DAYS - 1));
    let (from, to) =
        rules::sync_window(from, to).map_err(|m| AppError::bad_request("invalid_range", m))?;
    let client = client(state)?;
    let (mut seen, mut created, mut offset) = (0i64, 0i64, 0i64);
    loop {
        let page = client
            .list_complaints(
                from,
                to,
                crate::providers::wechat::complaints::LIST_PAGE,
                offset,
            )
            .await
            .map_err(provider_error)?;
        let got = page.data.len() as i64;
        for c in &page.data {
            let history = client
                .negotiation_history(&c.complaint_id)
                .await
                .map_err(provider_error)?;
            if store(state, c, &history).await? {
                created += 1;
            }
        }
        seen += got;
        offset += got;
        let more = page.total_count.map_or(
            got == crate::providers::wechat::complaints::LIST_PAGE,
            |t| offset < t,
        );
        if got == 0 || !more {
            break;
        }
    }
    Ok(ComplaintSyncResponse {
        from,
        to,
        seen,
        created,
    })
}

/// A page of the inbox, newest first.
pub async fn list(state: &AppState, q: &ComplaintQuery) -> AppResult<ComplaintListResponse> {
    let (page, per_page) = paging(q.page, q.per_page)?;
    let (rows, total) = complaint_db::list(
        &state.db,
        q.state.map(|s| s.as_str()),
        per_page,
        (page - 1) * per_page,
    )
    .await?;
    let now = db::now();
    Ok(ComplaintListResponse {
        items: rows.iter().map(|r| summary(r, now)).collect(),
        page,
        per_page,
        total,
    })
}

fn history_of(row: &ComplaintRow) -> Vec<NegotiationEntry> {
    serde_json::from_str::<Vec<wire::NegotiationEntry>>(&row.history_json)
        .unwrap_or_default()
        .into_iter()
        .map(|e| NegotiationEntry {
            log_id: e.log_id,
            operator: e.operator,
            operate_time: e.operate_time,
            operate_type: e.operate_type,
            operate_details: e.operate_details,
        })
        .collect()
}

/// One complaint with its history and our order.
pub async fn detail(state: &AppState, id: &str) -> AppResult<ComplaintDetail> {
    let row = complaint_db::find(&state.db, id)
        .await?
        .ok_or(AppError::NotFound("complaint"))?;
    let order = match &row.order_no {
        Some(no) => order_db::find(&state.db, no)
            .await?
            .map(|o| ComplaintOrder {
                order_no: o.order_no.clone(),
                user_id: o.user_id.clone(),
                status: o.status.as_str().to_string(),
                amount_fen: o.amount_fen,
                refunded_fen: o.refunded_fen,
                product_name: o.product_name.clone(),
                paid_at: o.paid_at.map(db::utc),
            }),
        None => None,
    };
    Ok(ComplaintDetail {
        complaint: summary(&row, db::now()),
        complaint_detail: row.complaint_detail.clone(),
        history: history_of(&row),
        order,
    })
}

/// A stored complaint the merchant can still act on.
async fn open_complaint(state: &AppState, id: &str) -> AppResult<ComplaintRow> {
    let row = complaint_db::find(&state.db, id)
        .await?
        .ok_or(AppError::NotFound("complaint"))?;
    if ComplaintState::from_stored(&row.state).is_some_and(|s| !s.is_open()) {
        return Err(AppError::conflict(
            "complaint_processed",
            "the complaint is already marked handled",
        ));
    }
    Ok(row)
}

/// Reply to the buyer, then read the complaint again and record who replied.
pub async fn reply(
    state: &AppState,
    user: &AuthUser,
    id: &str,
    content: &str,
) -> AppResult<ComplaintDetail> {
    let actor = Actor::of(state, user).await?;
    let content = rules::reply_content(content)
        .map_err(|e| AppError::bad_request("invalid_reply", e.to_string()))?;
    let before = open_complaint(state, id).await?;
    client(state)?
        .respond_to_complaint(id, &content, None)
        .await
        .map_err(provider_error)?;
    let after = sync_one(state, id).await?;
    let now = db::now();
    audit::record(
        state,
        &actor,
        "complaint.reply",
        Target("complaint", id),
        Change::new(
            Some(summary(&before, now)),
            Some(json!({ "complaint": summary(&after, now), "content": content })),
        ),
    )
    .await;
    detail(state, id).await
}

/// Tell WeChat the complaint is handled, then read it again and record who did it.
pub async fn complete(state: &AppState, user: &AuthUser, id: &str) -> AppResult<ComplaintDetail> {
    let actor = Actor::of(state, user).await?;
    let before = open_complaint(state, id).await?;
    client(state)?
        .complete_complaint(id)
        .await
        .map_err(provider_error)?;
    let after = sync_one(state, id).await?;
    let now = db::now();
    audit::record(
        state,
        &actor,
        "complaint.complete",
        Target("complaint", id),
        Change::new(Some(summary(&before, now)), Some(summary(&after, now))),
    )
    .await;
    detail(state, id).await
}

/// What registering the notification URL did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Registered {
    Created,
    Replaced { old: String },
    Unchanged,
}

/// Make `url` the complaint notification URL at WeChat (create, or replace another).
pub async fn register_notify_url(
    client: &WechatClient,
    url: &str,
) -> Result<Registered, ProviderError> {
    match client.complaint_notify_url().await? {
        Some(current) if current.url == url => Ok(Registered::Unchanged),
        Some(current) => {
            client.set_complaint_notify_url(url, true).await?;
            Ok(Registered::Replaced { old: current.url })
        }
        None => {
            client.set_complaint_notify_url(url, false).await?;
            Ok(Registered::Created)
        }
    }
}

/// Start-up registration (`WECHAT_COMPLAINTS_REGISTER`): a few tries, then a warning.
pub async fn register_on_start(state: actix_web::web::Data<AppState>) {
    let Some(client) = state.providers.wechat.clone() else {
        return;
    };
    let url = state.settings.wechat.complaint_notify_url.clone();
    for attempt in 0..5u32 {
        match register_notify_url(&client, &url).await {
            Ok(done) => {
                tracing::info!(%url, outcome = ?done, "WeChat Pay complaint notification URL registered");
                return;
            }
            Err(e) => {
                tracing::warn!(%url, error = %e, attempt, "could not register the complaint notification URL");
                tokio::time::sleep(std::time::Duration::from_secs(1 << attempt)).await;
            }
        }
    }
    tracing::error!(%url, "complaint notification URL not registered: run `fenpay complaints register-url`");
}

/// The periodic safety net (`COMPLAINTS_SYNC_INTERVAL_SECS`): yesterday and today, in
/// case a notification was lost.
pub async fn run_periodic(state: actix_web::web::Data<AppState>) {
    let secs = state.settings.wechat.complaints_sync_interval_secs;
    if secs == 0 || state.providers.wechat.is_none() {
        return;
    }
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(secs));
    tick.tick().await;
    loop {
        tick.tick().await;
        let to = china_today();
        let req = ComplaintSyncRequest {
            from: Some(to - Duration::days(1)),
            to: Some(to),
        };
        match sync_window(&state, &req).await {
            Ok(r) => tracing::debug!(seen = r.seen, created = r.created, "complaints synced"),
            Err(e) => tracing::warn!(error = %e, "periodic complaint sync failed"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn complaint(state: &str) -> Complaint {
        serde_json::from_value(json!({
            "complaint_id": "200000000000000000000001",
            "complaint_time": "2026-12-10T16:00:00+08:00",
            "complaint_detail": "没有收到积分",
            "complaint_state": state,
            "complainted_mchid": "1900000109",
            "complaint_order_info": [{"transaction_id": "4200", "out_trade_no": "FP1", "amount": 1000}],
            "complaint_full_refunded": false,
            "incoming_user_response": false,
            "user_complaint_times": 2,
            "problem_description": "已付款未到账",
            "problem_type": "SERVICE_NOT_WORK"
        }))
        .unwrap()
    }

    #[test]
    fn a_pending_complaint_is_stored_with_its_deadline() {
        let now =
            NaiveDateTime::parse_from_str("2026-12-10 09:00:00", "%Y-%m-%d %H:%M:%S").unwrap();
        let w = to_write(&complaint("PENDING"), &[], Some("FP1".into()), now).unwrap();
        assert_eq!(w.state, "pending");
        assert_eq!(w.amount_fen, Some(1000));
        assert_eq!(w.complaint_time.to_string(), "2026-12-10 08:00:00");
        assert_eq!(
            w.response_deadline.unwrap().to_string(),
            "2026-12-11 08:00:00"
        );
        assert!(w.handled_at.is_none());
        let w = to_write(&complaint("PROCESSED"), &[], None, now).unwrap();
        assert_eq!(w.handled_at, Some(now));
        assert!(w.response_deadline.is_none());
        assert!(to_write(&complaint("WHATEVER"), &[], None, now).is_err());
    }
}
