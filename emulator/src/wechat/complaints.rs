//! Consumer complaints 2.0 (消费者投诉 2.0): list, detail, negotiation history, merchant
//! reply and completion, the complaint notification URL, and `COMPLAINT.*` notifications;
//! plus `POST /__emulator/wechat/complaints` (a buyer complains about a paid trade).
//!
//! Same rules as every other WeChat path here: requests authenticated over method, path,
//! query and body; answers (204 included) and notifications signed; resources sealed with
//! the APIv3 key; notifications resent on WeChat's schedule until a 2xx.

use chrono::{DateTime, Duration as ChronoDuration, NaiveDate, SecondsFormat, Utc};
use fenpay_proto::wechat::complaints::{
    Complaint, ComplaintList, ComplaintNotice, ComplaintOrderInfo, CompleteBody, NegotiationEntry,
    NegotiationHistory, NotificationUrl, NotificationUrlBody, ResponseBody, EVENT_CREATE,
    EVENT_STATE_CHANGE, STATE_PENDING, STATE_PROCESSED, STATE_PROCESSING,
};

use super::*;

const NOTIFICATIONS_PATH: &str = "/v3/merchant-service/complaint-notifications";

/// The merchant's complaints (oldest first) and its notification URL.
#[derive(Debug, Default)]
pub struct ComplaintStore {
    notify_url: Option<String>,
    complaints: Vec<Stored>,
}

#[derive(Clone, Debug)]
struct Stored {
    complaint: Complaint,
    history: Vec<NegotiationEntry>,
    /// The China day of `complaint_time` (list filter).
    day: NaiveDate,
    out_trade_no: String,
}

impl ComplaintStore {
    fn find_mut(&mut self, id: &str) -> Option<&mut Stored> {
        self.complaints
            .iter_mut()
            .find(|c| c.complaint.complaint_id == id)
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/v3/merchant-service/complaints-v2",
        web::get().to(list_complaints),
    )
    .route(
        "/v3/merchant-service/complaints-v2/{complaint_id}",
        web::get().to(complaint_detail),
    )
    .route(
        "/v3/merchant-service/complaints-v2/{complaint_id}/negotiation-historys",
        web::get().to(negotiation_history),
    )
    .route(
        "/v3/merchant-service/complaints-v2/{complaint_id}/response",
        web::post().to(respond_to_user),
    )
    .route(
        "/v3/merchant-service/complaints-v2/{complaint_id}/complete",
        web::post().to(complete),
    )
    .route(NOTIFICATIONS_PATH, web::get().to(get_notify_url))
    .route(NOTIFICATIONS_PATH, web::post().to(create_notify_url))
    .route(NOTIFICATIONS_PATH, web::put().to(update_notify_url))
    .route(NOTIFICATIONS_PATH, web::delete().to(delete_notify_url))
    .route(
        "/__emulator/wechat/complaints",
        web::post().to(control_create),
    )
    .route("/__emulator/wechat/complaints", web::get().to(control_list))
    .route(
        "/__emulator/wechat/complaints/{complaint_id}/notify",
        web::post().to(control_renotify),
    );
}

fn not_exists() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "RESOURCE_NOT_EXISTS", "投诉单不存在")
}

fn now_text(now: DateTime<Utc>) -> String {
    now.with_timezone(&china())
        .to_rfc3339_opts(SecondsFormat::Millis, false)
}

/// `limit` / `offset` from a query string, with WeChat's bounds.
fn paging(
    q: &HashMap<String, String>,
    default_limit: i64,
    max_limit: i64,
) -> Result<(i64, i64), ApiError> {
    let num = |name: &str, default: i64| -> Result<i64, ApiError> {
        match q.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse::<i64>()
                .map_err(|_| ApiError::param("query", name, name, "类型校验失败", Some(&json!(v)))),
        }
    };
    let limit = num("limit", default_limit)?;
    let offset = num("offset", 0)?;
    if !(1..=max_limit).contains(&limit) {
        return Err(ApiError::param(
            "query",
            "limit",
            "分页大小",
            &format!("取值范围须为[1,{max_limit}]"),
            Some(&json!(limit)),
        ));
    }
    if offset < 0 {
        return Err(ApiError::param(
            "query",
            "offset",
            "分页开始位置",
            "须大于等于0",
            Some(&json!(offset)),
        ));
    }
    Ok((limit, offset))
}

fn query_map(req: &HttpRequest) -> HashMap<String, String> {
    web::Query::<HashMap<String, String>>::from_query(req.query_string())
        .map(|q| q.into_inner())
        .unwrap_or_default()
}

fn date_param(q: &HashMap<String, String>, name: &str, label: &str) -> Result<NaiveDate, ApiError> {
    let v = q
        .get(name)
        .ok_or_else(|| ApiError::required("query", name, label))?;
    NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .map_err(|_| ApiError::param("query", name, label, "格式须为YYYY-MM-DD", Some(&json!(v))))
}

async fn list_complaints(state: State, req: HttpRequest) -> HttpResponse {
    respond(
        &state,
        &req,
        async {
            let cfg = &state.config.wechat;
            let (_, mode) = gate(&state, &req, &[]).await?;
            let q = query_map(&req);
            let (limit, offset) = paging(&q, 10, 50)?;
            let begin = date_param(&q, "begin_date", "开始日期")?;
            let end = date_param(&q, "end_date", "结束日期")?;
            if end < begin || (end - begin).num_days() + 1 > 30 {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "PARAM_ERROR",
                    "查询时间范围不能超过30天，且结束日期不能早于开始日期",
                ));
            }
            if let Some(m) = q.get("complainted_mchid").filter(|m| **m != cfg.mch_id) {
                return Err(ApiError::param(
                    "query",
                    "complainted_mchid",
                    "被诉商户号",
                    "与请求头中的商户号不一致",
                    Some(&json!(m)),
                ));
            }
            let all: Vec<Complaint> = lock(&state.wechat.complaints)
                .complaints
                .iter()
                .filter(|c| c.day >= begin && c.day <= end)
                .map(|c| c.complaint.clone())
                .collect();
            let total = all.len() as i64;
            let data = all
                .into_iter()
                .skip(offset as usize)
                .take(limit as usize)
                .collect();
            signed_json(
                cfg,
                mode,
                &ComplaintList {
                    data,
                    limit,
                    offset,
                    total_count: Some(total),
                },
            )
        }
        .await,
    )
}

async fn complaint_detail(state: State, req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    respond(
        &state,
        &req,
        async {
            let (_, mode) = gate(&state, &req, &[]).await?;
            let found = lock(&state.wechat.complaints)
                .find_mut(&path)
                .map(|c| c.complaint.clone())
                .ok_or_else(not_exists)?;
            signed_json(&state.config.wechat, mode, &found)
        }
        .await,
    )
}

async fn negotiation_history(
    state: State,
    req: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    respond(
        &state,
        &req,
        async {
            let (_, mode) = gate(&state, &req, &[]).await?;
            let (limit, offset) = paging(&query_map(&req), 100, 300)?;
            let history = lock(&state.wechat.complaints)
                .find_mut(&path)
                .map(|c| c.history.clone())
                .ok_or_else(not_exists)?;
            let total = history.len() as i64;
            let data = history
                .into_iter()
                .skip(offset as usize)
                .take(limit as usize)
                .collect();
            signed_json(
                &state.config.wechat,
                mode,
                &NegotiationHistory {
                    data,
                    limit,
                    offset,
                    total_count: Some(total),
                },
            )
        }
        .await,
    )
}

fn body_json<T: serde::de::DeserializeOwned>(body: &str) -> Result<T, ApiError> {
    serde_json::from_str(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "PARAM_ERROR",
            format!("请求体解析失败: {e}"),
        )
    })
}

fn check_complainted_mchid(cfg: &WechatEmulatorConfig, mchid: &str) -> Result<(), ApiError> {
    if mchid != cfg.mch_id {
        return Err(ApiError::param(
            "body",
            "complainted_mchid",
            "被诉商户号",
            "与请求头中的商户号不一致",
            Some(&json!(mchid)),
        ));
    }
    Ok(())
}

fn entry(
    operator: &str,
    operate_type: &str,
    details: Option<String>,
    now: DateTime<Utc>,
) -> NegotiationEntry {
    NegotiationEntry {
        log_id: format!(
            "{}-{}",
            now.timestamp_millis(),
            random_from(b"0123456789", 10)
        ),
        operator: operator.to_string(),
        operate_time: now_text(now),
        operate_type: operate_type.to_string(),
        operate_details: details,
        image_list: Vec::new(),
    }
}

/// The merchant replies: `PENDING -> PROCESSING`, a `MERCHANT_RESPONSE` history entry,
/// then a `COMPLAINT.STATE_CHANGE` notification.
async fn respond_to_user(
    state: State,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let result = async {
        let cfg = &state.config.wechat;
        let (text, mode) = gate(&state, &req, &body).await?;
        let ask: ResponseBody = body_json(&text)?;
        check_complainted_mchid(cfg, &ask.complainted_mchid)?;
        let chars = ask.response_content.trim().chars().count();
        if chars == 0 || chars > 500 {
            return Err(ApiError::param(
                "body",
                "response_content",
                "回复内容",
                "长度须为[1,500]",
                Some(&json!(ask.response_content)),
            ));
        }
        if let Some(url) = &ask.jump_url {
            if !url.starts_with("https://") {
                return Err(ApiError::param(
                    "body",
                    "jump_url",
                    "跳转链接",
                    "须为HTTPS链接",
                    Some(&json!(url)),
                ));
            }
            if ask
                .jump_url_text
                .as_deref()
                .is_none_or(|t| t.is_empty() || t.chars().count() > 10)
            {
                return Err(ApiError::required("body", "jump_url_text", "跳转链接文案"));
            }
        }
        let now = Utc::now();
        let out_trade_no = {
            let mut store = lock(&state.wechat.complaints);
            let c = store.find_mut(&path).ok_or_else(not_exists)?;
            if c.complaint.complaint_state == STATE_PROCESSED {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "INVALID_REQUEST",
                    "投诉单已处理完成，不可回复",
                ));
            }
            c.complaint.complaint_state = STATE_PROCESSING.to_string();
            c.complaint.incoming_user_response = false;
            c.history.push(entry(
                "商家",
                "MERCHANT_RESPONSE",
                Some(ask.response_content.clone()),
                now,
            ));
            c.out_trade_no.clone()
        };
        Ok((mode, out_trade_no))
    }
    .await;
    finish_action(&state, &req, &path, result, "MERCHANT_RESPONSE")
}

/// The merchant marks it handled: `PROCESSED`, a `MERCHANT_CONFIRM_COMPLETE` entry, then
/// a `COMPLAINT.STATE_CHANGE` notification.
async fn complete(
    state: State,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let result = async {
        let cfg = &state.config.wechat;
        let (text, mode) = gate(&state, &req, &body).await?;
        let ask: CompleteBody = body_json(&text)?;
        check_complainted_mchid(cfg, &ask.complainted_mchid)?;
        let now = Utc::now();
        let out_trade_no = {
            let mut store = lock(&state.wechat.complaints);
            let c = store.find_mut(&path).ok_or_else(not_exists)?;
            if c.complaint.complaint_state == STATE_PROCESSED {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "INVALID_REQUEST",
                    "投诉单已处理完成",
                ));
            }
            c.complaint.complaint_state = STATE_PROCESSED.to_string();
            c.complaint.incoming_user_response = false;
            c.history
                .push(entry("商家", "MERCHANT_CONFIRM_COMPLETE", None, now));
            c.out_trade_no.clone()
        };
        Ok((mode, out_trade_no))
    }
    .await;
    finish_action(&state, &req, &path, result, "MERCHANT_CONFIRM_COMPLETE")
}

/// 204 signed, and the state-change notification when a URL is registered.
fn finish_action(
    state: &State,
    req: &HttpRequest,
    complaint_id: &str,
    result: Result<(SerialMode, String), ApiError>,
    action_type: &str,
) -> HttpResponse {
    match result {
        Ok((mode, out_trade_no)) => {
            let resp = signed(
                &state.config.wechat,
                mode,
                StatusCode::NO_CONTENT,
                Vec::new(),
            );
            notify(
                state,
                complaint_id,
                &out_trade_no,
                (EVENT_STATE_CHANGE, "投诉单状态变化"),
                action_type,
            );
            respond(state, req, Ok(resp))
        }
        Err(e) => respond(state, req, Err(e)),
    }
}

/// Seal and schedule a `COMPLAINT.*` notification to the registered URL (none: nothing
/// is sent, as at WeChat). Returns the notification id.
fn notify(
    state: &State,
    complaint_id: &str,
    out_trade_no: &str,
    event: (&str, &str),
    action_type: &str,
) -> Option<String> {
    let cfg = &state.config.wechat;
    let url = lock(&state.wechat.complaints).notify_url.clone()?;
    let notice = ComplaintNotice {
        complaint_id: complaint_id.to_string(),
        action_type: action_type.to_string(),
    };
    let mut log = match sealed_notification(cfg, event, "complaint", &notice, Utc::now()) {
        Ok(log) => log,
        Err(e) => {
            tracing::error!(error = %e, "emulator cannot build a complaint notification");
            return None;
        }
    };
    log.out_trade_no = out_trade_no.to_string();
    log.complaint_id = Some(complaint_id.to_string());
    log.notify_url = url;
    log.serial_mode = if cfg.mode == WechatKeyMode::PublicKey {
        SerialMode::PublicKey
    } else {
        SerialMode::Certificate
    };
    let id = log.id.clone();
    lock(&state.wechat.notifications).push(log);
    tokio::spawn(deliver_on_schedule(
        state.clone(),
        id.clone(),
        state.wechat.generation(),
    ));
    Some(id)
}

async fn get_notify_url(state: State, req: HttpRequest) -> HttpResponse {
    respond(
        &state,
        &req,
        async {
            let cfg = &state.config.wechat;
            let (_, mode) = gate(&state, &req, &[]).await?;
            let url = lock(&state.wechat.complaints)
                .notify_url
                .clone()
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::NOT_FOUND,
                        "RESOURCE_NOT_EXISTS",
                        "未设置投诉通知回调地址",
                    )
                })?;
            signed_json(
                cfg,
                mode,
                &NotificationUrl {
                    mchid: cfg.mch_id.clone(),
                    url,
                },
            )
        }
        .await,
    )
}

async fn set_notify_url(state: State, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    respond(
        &state,
        &req,
        async {
            let cfg = &state.config.wechat;
            let (text, mode) = gate(&state, &req, &body).await?;
            let ask: NotificationUrlBody = body_json(&text)?;
            // WeChat takes HTTPS only; the emulator also takes http for local servers.
            if !valid_notify_url(&ask.url) || ask.url.len() > 255 {
                return Err(ApiError::param(
                    "body",
                    "url",
                    "通知地址",
                    NOTIFY_URL_RULE,
                    Some(&json!(ask.url)),
                ));
            }
            lock(&state.wechat.complaints).notify_url = Some(ask.url.clone());
            signed_json(
                cfg,
                mode,
                &NotificationUrl {
                    mchid: cfg.mch_id.clone(),
                    url: ask.url,
                },
            )
        }
        .await,
    )
}

async fn create_notify_url(state: State, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    set_notify_url(state, req, body).await
}

async fn update_notify_url(state: State, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    set_notify_url(state, req, body).await
}

async fn delete_notify_url(state: State, req: HttpRequest) -> HttpResponse {
    respond(
        &state,
        &req,
        async {
            let (_, mode) = gate(&state, &req, &[]).await?;
            lock(&state.wechat.complaints).notify_url = None;
            Ok(signed(
                &state.config.wechat,
                mode,
                StatusCode::NO_CONTENT,
                Vec::new(),
            ))
        }
        .await,
    )
}

/// `POST /__emulator/wechat/complaints`: a buyer complains about a paid trade.
#[derive(Deserialize, Default)]
struct CreateControl {
    out_trade_no: Option<String>,
    transaction_id: Option<String>,
    problem_description: Option<String>,
    /// `REFUND`, `SERVICE_NOT_WORK` (default) or `OTHERS`.
    problem_type: Option<String>,
    complaint_detail: Option<String>,
    user_complaint_times: Option<i64>,
    apply_refund_amount: Option<i64>,
    /// Hours ago the complaint was made (default 0), to show deadlines.
    hours_ago: Option<i64>,
}

async fn control_create(state: State, body: web::Bytes) -> HttpResponse {
    let ask: CreateControl = match serde_json::from_slice(&body) {
        Ok(a) => a,
        Err(e) => return control_error(StatusCode::BAD_REQUEST, "INVALID_BODY", &e.to_string()),
    };
    let problem_type = ask
        .problem_type
        .unwrap_or_else(|| "SERVICE_NOT_WORK".into());
    if !["REFUND", "SERVICE_NOT_WORK", "OTHERS"].contains(&problem_type.as_str()) {
        return control_error(
            StatusCode::BAD_REQUEST,
            "INVALID_BODY",
            "problem_type must be REFUND, SERVICE_NOT_WORK or OTHERS",
        );
    }
    let trade = {
        let mut trades = lock(&state.wechat.trades);
        let now = Utc::now();
        let found = trades.values_mut().find(|t| {
            ask.out_trade_no.as_deref() == Some(t.out_trade_no.as_str())
                || (ask.transaction_id.is_some() && ask.transaction_id == t.transaction_id)
        });
        match found {
            Some(t) => {
                t.settle_expiry(now);
                t.clone()
            }
            None => return control_error(StatusCode::NOT_FOUND, "ORDER_NOT_EXIST", "订单不存在"),
        }
    };
    if !trade.is_paid() {
        return control_error(
            StatusCode::CONFLICT,
            "ORDER_NOT_PAID",
            "only a paid trade can be complained about",
        );
    }
    if lock(&state.wechat.complaints).notify_url.is_none() {
        return control_error(
            StatusCode::CONFLICT,
            "NO_NOTIFY_URL",
            "the merchant has no complaint notification URL (POST /v3/merchant-service/complaint-notifications)",
        );
    }
    let now = Utc::now() - ChronoDuration::hours(ask.hours_ago.unwrap_or(0).clamp(0, 24 * 30));
    let complaint_id = format!("2000{}", random_from(b"0123456789", 23));
    let description = ask
        .problem_description
        .unwrap_or_else(|| "已付款，未收到商品或服务".into());
    let detail = ask.complaint_detail.unwrap_or_else(|| description.clone());
    let complaint = Complaint {
        complaint_id: complaint_id.clone(),
        complaint_time: now_text(now),
        complaint_detail: detail.clone(),
        complaint_state: STATE_PENDING.to_string(),
        complainted_mchid: state.config.wechat.mch_id.clone(),
        payer_openid: trade.payer_openid.clone(),
        complaint_order_info: vec![ComplaintOrderInfo {
            transaction_id: trade.transaction_id.clone().unwrap_or_default(),
            out_trade_no: trade.out_trade_no.clone(),
            amount: trade.amount_total,
        }],
        complaint_full_refunded: false,
        incoming_user_response: false,
        user_complaint_times: ask.user_complaint_times.unwrap_or(1),
        complaint_media_list: Vec::new(),
        problem_description: description,
        problem_type: Some(problem_type),
        apply_refund_amount: ask.apply_refund_amount,
        user_tag_list: Vec::new(),
    };
    lock(&state.wechat.complaints).complaints.push(Stored {
        complaint: complaint.clone(),
        history: vec![entry("投诉人", "USER_CREATE_COMPLAINT", Some(detail), now)],
        day: now.with_timezone(&china()).date_naive(),
        out_trade_no: trade.out_trade_no.clone(),
    });
    let notification_id = notify(
        &state,
        &complaint_id,
        &trade.out_trade_no,
        (EVENT_CREATE, "产生新投诉"),
        "CREATE_COMPLAINT",
    );
    HttpResponse::Ok().json(json!({ "complaint": complaint, "notification_id": notification_id }))
}

async fn control_list(state: State) -> HttpResponse {
    let store = lock(&state.wechat.complaints);
    let list: Vec<Value> = store
        .complaints
        .iter()
        .map(|c| json!({ "complaint": c.complaint, "history": c.history }))
        .collect();
    HttpResponse::Ok().json(json!({ "notify_url": store.notify_url, "complaints": list }))
}

/// Send the complaint's latest notification once more (same `id`): a duplicate.
async fn control_renotify(state: State, path: web::Path<String>) -> HttpResponse {
    let latest = lock(&state.wechat.notifications)
        .iter()
        .rev()
        .find(|n| n.complaint_id.as_deref() == Some(path.as_str()))
        .cloned();
    let Some(log) = latest else {
        return control_error(
            StatusCode::NOT_FOUND,
            "RESOURCE_NOT_EXISTS",
            "没有该投诉单的通知",
        );
    };
    let (delivered, attempts) = attempt(&state, &log).await;
    HttpResponse::Ok().json(json!({ "id": log.id, "delivered": delivered, "attempts": attempts }))
}
