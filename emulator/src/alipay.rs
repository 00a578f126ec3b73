//! The Alipay half of the emulator: `/gateway.do` (OpenAPI v2, RSA2) with
//! precreate, query, close, cancel, refund and refund query; the page / wap / app
//! cashier; trade notifications (payments and refunds) on Alipay's resend
//! schedule; and a control API under `/__emulator/alipay/`.
//!
//! Faithfulness rules (protocol reference §5 and §7): requests are verified over
//! every parameter except `sign` (`sign_type` included); responses are signed over
//! the raw compact `*_response` text and emitted as `{"<node>":{..},"sign":".."}`;
//! notifications and return redirects are V1-signed (no `sign_type`); page / wap /
//! app trades do not exist until the buyer opens the cashier, precreate (QR) trades
//! until the buyer scans the code (`ACQ.TRADE_NOT_EXIST` to query and close).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone, Utc};
use fenpay_proto::alipay as proto;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::faults::RequestFault;
use super::State;

/// Alipay's `yyyy-MM-dd HH:mm:ss` layout (China Standard Time).
const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// Delays before resends 2..=8 (docs.open.alipay.com/270/105902): 4m, 10m, 10m, 1h,
/// 2h, 6h, 15h, each divided by the configured time scale.
const RESEND_SCHEDULE_SECS: [u64; 7] = [240, 600, 600, 3_600, 7_200, 21_600, 54_000];

/// Largest total Alipay accepts: 100 000 000.00 yuan.
const MAX_TOTAL_FEN: i64 = 10_000_000_000;

const JSON_UTF8: &str = "application/json;charset=utf-8";
const HTML_UTF8: &str = "text/html; charset=utf-8";

/// Where a trade is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TradeStatus {
    /// Created (cashier opened or QR issued), not paid.
    WaitBuyerPay,
    /// Paid.
    TradeSuccess,
    /// Closed unpaid, or refunded in full (`refunded`).
    TradeClosed,
}

impl TradeStatus {
    /// The wire value (`WAIT_BUYER_PAY`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            TradeStatus::WaitBuyerPay => "WAIT_BUYER_PAY",
            TradeStatus::TradeSuccess => "TRADE_SUCCESS",
            TradeStatus::TradeClosed => "TRADE_CLOSED",
        }
    }
}

/// One emulated trade, as the control API shows it.
#[derive(Clone, Debug, Serialize)]
pub struct Trade {
    pub out_trade_no: String,
    /// Alipay's number: `yyyyMMdd` + 20 digits.
    pub trade_no: String,
    /// The method that created it (`alipay.trade.precreate`, `alipay.trade.page.pay`, ...).
    pub method: String,
    pub product_code: String,
    pub total_fen: i64,
    /// `total_fen` as Alipay writes it (`"12.34"`).
    pub total_amount: String,
    pub subject: String,
    pub notify_url: Option<String>,
    pub return_url: Option<String>,
    /// The wap cashier's "back to merchant" link.
    pub quit_url: Option<String>,
    pub status: TradeStatus,
    /// The buyer opened the cashier (page / wap / app) or scanned the QR code
    /// (precreate). Until then Alipay answers `ACQ.TRADE_NOT_EXIST` to query, close,
    /// cancel and refund, though the QR code can still be scanned and paid.
    pub opened: bool,
    /// Refunded in full (by a cancel or by refunds), hence closed.
    pub refunded: bool,
    /// Fen refunded so far.
    pub refund_fen: i64,
    /// `alipay.trade.refund` calls that moved money, oldest first.
    pub refunds: Vec<Refund>,
    pub qr_code: Option<String>,
    pub buyer_id: Option<String>,
    pub buyer_logon_id: Option<String>,
    pub gmt_create: DateTime<Utc>,
    pub gmt_payment: Option<DateTime<Utc>>,
    pub gmt_close: Option<DateTime<Utc>>,
    pub time_expire: Option<DateTime<Utc>>,
    /// Stays the same across resends of the payment notification.
    pub notify_id: Option<String>,
    /// What must match for a repeated create to be idempotent.
    #[serde(skip)]
    fingerprint: String,
}

/// One refund of a trade. Alipay refunds synchronously: it exists only once the
/// money moved.
#[derive(Clone, Debug, Serialize)]
pub struct Refund {
    /// The merchant's refund request number (defaults to `out_trade_no`).
    pub out_request_no: String,
    pub refund_fen: i64,
    /// `refund_fen` in yuan, as Alipay writes it.
    pub refund_amount: String,
    pub refund_reason: Option<String>,
    pub gmt_refund_pay: DateTime<Utc>,
    /// The trade's cumulative refund once this one went through.
    pub refunded_after_fen: i64,
    /// Stays the same across resends of this refund's notification.
    pub notify_id: String,
}

/// One notification attempt (one POST, or one dropped attempt).
#[derive(Clone, Debug, Serialize)]
pub struct NotificationAttempt {
    pub out_trade_no: String,
    /// The refund's `out_request_no` on refund notifications.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out_biz_no: Option<String>,
    pub notify_id: String,
    /// 1 for the first send; resends count up.
    pub attempt: u32,
    pub at: DateTime<Utc>,
    pub url: String,
    /// `delivered` (the body was `success`), `rejected` (any other body), `error`
    /// (no answer), or `dropped` (fault injection).
    pub outcome: String,
    pub http_status: Option<u16>,
    /// The merchant's answer, cut to 200 characters.
    pub response: Option<String>,
    pub error: Option<String>,
    /// Sent through the control API rather than the schedule.
    pub manual: bool,
}

/// In-memory Alipay trades and the notification log.
#[derive(Debug, Default)]
pub struct AlipayState {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    trades: HashMap<String, Trade>,
    log: Vec<NotificationAttempt>,
    /// Bumped by `reset` so that pending resend tasks stop.
    generation: u64,
}

impl AlipayState {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forget every trade and notification; stop pending resends.
    pub fn reset(&self) {
        let mut inner = self.lock();
        inner.trades.clear();
        inner.log.clear();
        inner.generation += 1;
    }

    /// A copy of one trade.
    pub fn trade(&self, out_trade_no: &str) -> Option<Trade> {
        self.lock().trades.get(out_trade_no).cloned()
    }

    /// The payments and refunds of one China day, as bill rows need them.
    pub fn day_activity(&self, day: chrono::NaiveDate) -> crate::bills::DayActivity {
        use crate::bills::{china_day, BillPayment, BillRefund, DayActivity};
        let mut out = DayActivity::default();
        for t in self.lock().trades.values() {
            let Some(paid_at) = t.gmt_payment else {
                continue;
            };
            let payer = t.buyer_logon_id.clone().unwrap_or_default();
            if china_day(paid_at) == day {
                out.payments.push(BillPayment {
                    out_trade_no: t.out_trade_no.clone(),
                    trade_no: t.trade_no.clone(),
                    amount_fen: t.total_fen,
                    at: paid_at,
                    created_at: t.gmt_create,
                    subject: t.subject.clone(),
                    trade_type: t.product_code.clone(),
                    payer: payer.clone(),
                });
            }
            for r in t
                .refunds
                .iter()
                .filter(|r| china_day(r.gmt_refund_pay) == day)
            {
                out.refunds.push(BillRefund {
                    out_trade_no: t.out_trade_no.clone(),
                    trade_no: t.trade_no.clone(),
                    out_refund_no: r.out_request_no.clone(),
                    refund_id: String::new(),
                    amount_fen: r.refund_fen,
                    total_fen: t.total_fen,
                    at: r.gmt_refund_pay,
                    created_at: t.gmt_create,
                    subject: t.subject.clone(),
                    status: "SUCCESS".to_string(),
                    trade_type: t.product_code.clone(),
                    payer: payer.clone(),
                });
            }
        }
        out
    }

    /// Notification attempts, oldest first, optionally for one trade.
    pub fn notifications(&self, out_trade_no: Option<&str>) -> Vec<NotificationAttempt> {
        self.lock()
            .log
            .iter()
            .filter(|a| out_trade_no.is_none_or(|no| a.out_trade_no == no))
            .cloned()
            .collect()
    }
}

/// Registers the gateway, the cashier and the control API.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/gateway.do", web::get().to(gateway))
        .route("/gateway.do", web::post().to(gateway))
        .route(
            "/__emulator/alipay/cashier/{out_trade_no}/pay",
            web::post().to(cashier_pay),
        )
        .route(
            "/__emulator/alipay/pay/{out_trade_no}",
            web::post().to(control_pay),
        )
        .route(
            "/__emulator/alipay/close/{out_trade_no}",
            web::post().to(control_close),
        )
        .route(
            "/__emulator/alipay/notify/{out_trade_no}",
            web::post().to(control_notify),
        )
        .route(
            "/__emulator/alipay/scan/{out_trade_no}",
            web::post().to(control_scan),
        )
        .route("/__emulator/alipay/trades", web::get().to(control_trades))
        .route("/downloadBillFile.resource", web::get().to(bill_file))
        .route("/__emulator/alipay/bill", web::get().to(control_bill))
        .route(
            "/__emulator/alipay/trades/{out_trade_no}",
            web::get().to(control_trade),
        )
        .route(
            "/__emulator/alipay/notifications",
            web::get().to(control_notifications),
        );
}

// ---------------------------------------------------------------------------
// Gateway

/// A failed gateway call: Alipay's code, msg, sub_code and sub_msg.
struct GwError {
    code: &'static str,
    sub_code: String,
    sub_msg: String,
}

impl GwError {
    fn new(code: &'static str, sub_code: &str, sub_msg: impl Into<String>) -> Self {
        GwError {
            code,
            sub_code: sub_code.to_string(),
            sub_msg: sub_msg.into(),
        }
    }

    fn missing(sub_code: &str, sub_msg: &str) -> Self {
        Self::new("40001", sub_code, sub_msg)
    }

    fn invalid(sub_code: &str, sub_msg: impl Into<String>) -> Self {
        Self::new("40002", sub_code, sub_msg)
    }

    fn business(sub_code: &str, sub_msg: impl Into<String>) -> Self {
        Self::new("40004", sub_code, sub_msg)
    }

    fn unavailable() -> Self {
        Self::new("20000", "ACQ.SYSTEM_ERROR", "系统错误")
    }

    fn msg(&self) -> &'static str {
        match self.code {
            "20000" => "Service Currently Unavailable",
            "40001" => "Missing Required Arguments",
            "40002" => "Invalid Arguments",
            _ => "Business Failed",
        }
    }

    fn members(&self) -> Members {
        vec![
            ("code", json!(self.code)),
            ("msg", json!(self.msg())),
            ("sub_code", json!(self.sub_code)),
            ("sub_msg", json!(self.sub_msg)),
        ]
    }
}

/// Methods whose answer is a cashier page for the buyer's browser, not JSON.
const CASHIER_METHODS: [&str; 3] = [
    "alipay.trade.page.pay",
    "alipay.trade.wap.pay",
    "alipay.trade.app.pay",
];

/// The QR-code method: its trade exists at Alipay only once the buyer scans it.
const PRECREATE: &str = "alipay.trade.precreate";

const BILL_METHOD: &str = "alipay.data.dataservice.bill.downloadurl.query";

const API_METHODS: [&str; 7] = [
    BILL_METHOD,
    "alipay.trade.precreate",
    "alipay.trade.query",
    "alipay.trade.close",
    "alipay.trade.cancel",
    "alipay.trade.refund",
    "alipay.trade.fastpay.refund.query",
];

/// `GET|POST /gateway.do`: parameters from the query string and the form body
/// (merged, the body wins).
async fn gateway(state: State, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let params = match gateway_params(&req, &body) {
        Ok(p) => p,
        Err(e) => {
            return signed(
                &state,
                "error_response",
                GwError::invalid("isv.invalid-parameter", e).members(),
            )
        }
    };
    let method = params.get("method").cloned().unwrap_or_default();
    let is_cashier = CASHIER_METHODS.contains(&method.as_str());
    let node = if API_METHODS.contains(&method.as_str()) {
        proto::response_node(&method)
    } else {
        "error_response".to_string()
    };
    match state.faults.next_request_fault() {
        RequestFault::None => {}
        RequestFault::Fail => return fault_answer(&state, &node, is_cashier),
        RequestFault::Timeout(ms) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            return fault_answer(&state, &node, is_cashier);
        }
    }
    if method.is_empty() {
        let err = GwError::missing("isv.missing-method", "缺少方法名参数");
        return signed(&state, &node, err.members());
    }
    if !is_cashier && !API_METHODS.contains(&method.as_str()) {
        let err = GwError::invalid("isv.invalid-method", format!("不存在的方法名: {method}"));
        return signed(&state, &node, err.members());
    }
    let checked = check_common(&state, &params).and_then(|()| biz_content(&params));
    let biz = match checked {
        Ok(biz) => biz,
        Err(e) if is_cashier => return error_page(StatusCode::BAD_REQUEST, &e),
        Err(e) => return signed(&state, &node, e.members()),
    };
    let now = Utc::now();
    let result = match method.as_str() {
        "alipay.trade.precreate" => precreate(&state, &params, &biz, now),
        "alipay.trade.query" => query(&state, &biz, now),
        "alipay.trade.close" => close(&state, &biz, now),
        "alipay.trade.cancel" => cancel(&state, &biz, now),
        "alipay.trade.refund" => refund(&state, &biz, now),
        "alipay.trade.fastpay.refund.query" => refund_query(&state, &biz, now),
        BILL_METHOD => bill_download_url(&state, &biz, now),
        _ => return cashier(&state, &method, &params, &biz, now),
    };
    match result {
        Ok(members) => {
            let mut all = vec![("code", json!("10000")), ("msg", json!("Success"))];
            all.extend(members);
            signed(&state, &node, all)
        }
        Err((e, extra)) => {
            let mut all = e.members();
            all.extend(extra);
            signed(&state, &node, all)
        }
    }
}

fn gateway_params(req: &HttpRequest, body: &[u8]) -> Result<BTreeMap<String, String>, String> {
    let mut params = BTreeMap::new();
    params.extend(parse_pairs(req.query_string())?);
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let is_form =
        content_type.is_empty() || content_type.starts_with("application/x-www-form-urlencoded");
    if !body.is_empty() && is_form {
        let text = std::str::from_utf8(body).map_err(|_| "请求体不是 UTF-8".to_string())?;
        params.extend(parse_pairs(text)?);
    }
    Ok(params)
}

fn parse_pairs(text: &str) -> Result<Vec<(String, String)>, String> {
    web::Query::<Vec<(String, String)>>::from_query(text)
        .map(web::Query::into_inner)
        .map_err(|e| format!("参数格式错误: {e}"))
}

/// Common parameters and the request signature.
fn check_common(state: &State, params: &BTreeMap<String, String>) -> Result<(), GwError> {
    let cfg = &state.config.alipay;
    let get = |name: &str| {
        params
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    match get("app_id") {
        None => return Err(GwError::missing("isv.missing-app-id", "缺少AppID参数")),
        Some(id) if id != cfg.app_id => {
            return Err(GwError::invalid("isv.invalid-app-id", "无效的AppID参数"))
        }
        Some(_) => {}
    }
    if let Some(charset) = get("charset") {
        if !charset.eq_ignore_ascii_case("utf-8") {
            return Err(GwError::invalid(
                "isv.invalid-charset",
                format!("字符集错误: the emulator speaks utf-8 only, got {charset}"),
            ));
        }
    }
    if let Some(format) = get("format") {
        if !format.eq_ignore_ascii_case("json") {
            return Err(GwError::invalid("isv.invalid-format", "无效的数据格式"));
        }
    }
    match get("timestamp") {
        None => return Err(GwError::missing("isv.missing-timestamp", "缺少时间戳参数")),
        Some(ts) if NaiveDateTime::parse_from_str(ts, TIME_FORMAT).is_err() => {
            return Err(GwError::invalid(
                "isv.invalid-timestamp",
                "非法的时间戳参数",
            ))
        }
        Some(_) => {}
    }
    if get("version").is_none() {
        return Err(GwError::missing("isv.missing-version", "缺少版本参数"));
    }
    match get("sign_type") {
        None => {
            return Err(GwError::missing(
                "isv.missing-signature-type",
                "缺少签名类型",
            ))
        }
        Some("RSA2") => {}
        Some(_) => {
            return Err(GwError::invalid(
                "isv.invalid-signature-type",
                "无效签名类型: the emulator accepts RSA2 only",
            ))
        }
    }
    if get("sign").is_none() {
        return Err(GwError::missing("isv.missing-signature", "缺少签名参数"));
    }
    if !proto::verify_request_params(params, &cfg.app_public_key) {
        // Like Alipay, show the string the gateway verified.
        let content = proto::sign_content(
            params.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            &["sign"],
        );
        return Err(GwError::invalid(
            "isv.invalid-signature",
            format!("验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配，网关生成的验签字符串为：{content}"),
        ));
    }
    Ok(())
}

fn biz_content(
    params: &BTreeMap<String, String>,
) -> Result<serde_json::Map<String, Value>, GwError> {
    let text = params
        .get("biz_content")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| GwError::missing("isv.missing-biz-content", "缺少业务参数 biz_content"))?;
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(GwError::invalid(
            "isv.invalid-biz-content",
            "biz_content 不是 JSON 对象",
        )),
    }
}

/// `{"<node>":{members},"sign":".."}` with the members in the given order.
fn signed(state: &State, node: &str, members: Vec<(&str, Value)>) -> HttpResponse {
    let content = compact_object(&members);
    // `bad_signature_next`: sign other content, so the sign does not verify.
    let signed_content = if state.faults.take_bad_signature() {
        format!("{content} ")
    } else {
        content.clone()
    };
    let built = proto::build_signed_response(
        node,
        &signed_content,
        None,
        &state.config.alipay.alipay_private_key,
    )
    .map(|body| body.replacen(&signed_content, &content, 1));
    match built {
        Ok(body) => HttpResponse::Ok().content_type(JSON_UTF8).body(body),
        Err(e) => HttpResponse::InternalServerError().body(format!("emulator signing failed: {e}")),
    }
}

fn compact_object(members: &[(&str, Value)]) -> String {
    let inner: Vec<String> = members
        .iter()
        .map(|(k, v)| format!("{}:{v}", Value::String((*k).to_string())))
        .collect();
    format!("{{{}}}", inner.join(","))
}

fn fault_answer(state: &State, node: &str, is_cashier: bool) -> HttpResponse {
    let err = GwError::unavailable();
    if is_cashier {
        error_page(StatusCode::SERVICE_UNAVAILABLE, &err)
    } else {
        signed(state, node, err.members())
    }
}

/// Response members in emission order.
type Members = Vec<(&'static str, Value)>;

/// A business failure plus the extra members Alipay sends along with it.
type Failure = (GwError, Members);

type MethodResult = Result<Members, Failure>;

/// The trade fields every create method reads from `biz_content`.
struct NewTrade {
    out_trade_no: String,
    total_fen: i64,
    subject: String,
    product_code: String,
    time_expire: Option<DateTime<Utc>>,
    quit_url: Option<String>,
}

fn biz_str(biz: &serde_json::Map<String, Value>, name: &str) -> Option<String> {
    match biz.get(name)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        // Some SDKs send total_amount as a JSON number; its text is still exact.
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn read_new_trade(
    biz: &serde_json::Map<String, Value>,
    default_product: &str,
    now: DateTime<Utc>,
) -> Result<NewTrade, GwError> {
    let param = |msg: String| GwError::business("ACQ.INVALID_PARAMETER", msg);
    let out_trade_no = biz_str(biz, "out_trade_no")
        .ok_or_else(|| param("参数无效: out_trade_no 不能为空".into()))?;
    if out_trade_no.len() > 64 || out_trade_no.chars().any(|c| !c.is_ascii_graphic()) {
        return Err(param("参数无效: out_trade_no 格式错误".into()));
    }
    let amount = biz_str(biz, "total_amount")
        .ok_or_else(|| param("参数无效: total_amount 不能为空".into()))?;
    let total_fen = proto::yuan_to_fen(&amount)
        .filter(|f| *f > 0)
        .ok_or_else(|| param(format!("参数无效: total_amount {amount}")))?;
    if total_fen > MAX_TOTAL_FEN {
        return Err(GwError::business(
            "ACQ.TOTAL_FEE_EXCEED",
            "订单金额超过限额",
        ));
    }
    let subject =
        biz_str(biz, "subject").ok_or_else(|| param("参数无效: subject 不能为空".into()))?;
    let time_expire = match biz_str(biz, "time_expire") {
        Some(text) => Some(
            parse_expire(&text).ok_or_else(|| param(format!("参数无效: time_expire {text}")))?,
        ),
        None => biz_str(biz, "timeout_express").and_then(|t| parse_timeout_express(&t, now)),
    };
    if time_expire.is_some_and(|t| t <= now) {
        return Err(param("参数无效: time_expire 已过期".into()));
    }
    Ok(NewTrade {
        out_trade_no,
        total_fen,
        subject,
        product_code: biz_str(biz, "product_code").unwrap_or_else(|| default_product.to_string()),
        time_expire,
        quit_url: biz_str(biz, "quit_url"),
    })
}

/// Finds or creates the trade for a create call. An existing trade is reused only
/// when the call is the same; paid and closed trades refuse.
fn open_trade(
    state: &State,
    method: &str,
    new: NewTrade,
    params: &BTreeMap<String, String>,
    now: DateTime<Utc>,
) -> Result<Trade, GwError> {
    let fingerprint = format!("{method}|{}|{}", new.total_fen, new.subject);
    let mut inner = state.alipay.lock();
    if let Some(trade) = inner.trades.get_mut(&new.out_trade_no) {
        expire_if_due(trade, now);
        return match trade.status {
            TradeStatus::TradeSuccess => {
                Err(GwError::business("ACQ.TRADE_HAS_SUCCESS", "交易已被支付"))
            }
            TradeStatus::TradeClosed => {
                Err(GwError::business("ACQ.TRADE_HAS_CLOSE", "交易已经关闭"))
            }
            TradeStatus::WaitBuyerPay if trade.fingerprint != fingerprint => Err(
                GwError::business("ACQ.CONTEXT_INCONSISTENT", "交易信息被篡改"),
            ),
            TradeStatus::WaitBuyerPay => {
                // Opening the cashier again opens it; posting a precreate again does
                // not scan its QR code.
                trade.opened |= method != PRECREATE;
                Ok(trade.clone())
            }
        };
    }
    let url = |name: &str| params.get(name).filter(|v| !v.is_empty()).cloned();
    let trade = Trade {
        trade_no: new_trade_no(now),
        method: method.to_string(),
        product_code: new.product_code,
        total_amount: proto::fen_to_yuan(new.total_fen),
        total_fen: new.total_fen,
        subject: new.subject,
        notify_url: url("notify_url"),
        return_url: url("return_url"),
        quit_url: new.quit_url,
        status: TradeStatus::WaitBuyerPay,
        // A QR code's trade comes into being when the buyer scans it.
        opened: method != PRECREATE,
        refunded: false,
        refund_fen: 0,
        refunds: Vec::new(),
        qr_code: (method == PRECREATE)
            .then(|| format!("https://qr.alipay.com/bax0{}", random_alnum(21))),
        buyer_id: None,
        buyer_logon_id: None,
        gmt_create: now,
        gmt_payment: None,
        gmt_close: None,
        time_expire: new.time_expire,
        notify_id: None,
        fingerprint,
        out_trade_no: new.out_trade_no.clone(),
    };
    inner.trades.insert(new.out_trade_no, trade.clone());
    Ok(trade)
}

fn precreate(
    state: &State,
    params: &BTreeMap<String, String>,
    biz: &serde_json::Map<String, Value>,
    now: DateTime<Utc>,
) -> MethodResult {
    let new = read_new_trade(biz, "FACE_TO_FACE_PAYMENT", now).map_err(|e| (e, vec![]))?;
    let out_trade_no = new.out_trade_no.clone();
    let trade = open_trade(state, PRECREATE, new, params, now)
        .map_err(|e| (e, vec![("out_trade_no", json!(out_trade_no))]))?;
    Ok(vec![
        ("out_trade_no", json!(trade.out_trade_no)),
        ("qr_code", json!(trade.qr_code.unwrap_or_default())),
    ])
}

/// Looks a trade up by `out_trade_no` or `trade_no`, applying a due expiry.
/// Unopened trades do not exist yet.
fn find_trade<'a>(
    inner: &'a mut Inner,
    biz: &serde_json::Map<String, Value>,
    now: DateTime<Utc>,
) -> Result<&'a mut Trade, Failure> {
    let out_trade_no = biz_str(biz, "out_trade_no");
    let trade_no = biz_str(biz, "trade_no");
    if out_trade_no.is_none() && trade_no.is_none() {
        return Err((
            GwError::business(
                "ACQ.INVALID_PARAMETER",
                "参数无效: out_trade_no 与 trade_no 不能同时为空",
            ),
            vec![],
        ));
    }
    let found = inner.trades.values_mut().find(|t| {
        t.opened
            && out_trade_no.as_ref().is_none_or(|no| &t.out_trade_no == no)
            && trade_no.as_ref().is_none_or(|no| &t.trade_no == no)
    });
    match found {
        Some(trade) => {
            expire_if_due(trade, now);
            Ok(trade)
        }
        None => {
            let mut extra = vec![];
            if let Some(no) = out_trade_no {
                extra.push(("out_trade_no", json!(no)));
            }
            Err((
                GwError::business("ACQ.TRADE_NOT_EXIST", "交易不存在"),
                extra,
            ))
        }
    }
}

fn query(state: &State, biz: &serde_json::Map<String, Value>, now: DateTime<Utc>) -> MethodResult {
    let mut inner = state.alipay.lock();
    let trade = find_trade(&mut inner, biz, now).map_err(|(e, mut extra)| {
        // Alipay's real not-exist answer carries zero amounts too.
        let zero = json!("0.00");
        let mut all = vec![
            ("buyer_pay_amount", zero.clone()),
            ("invoice_amount", zero.clone()),
        ];
        all.append(&mut extra);
        all.extend([("point_amount", zero.clone()), ("receipt_amount", zero)]);
        (e, all)
    })?;
    let paid = trade.gmt_payment.is_some();
    let paid_amount = if paid {
        json!(trade.total_amount)
    } else {
        json!("0.00")
    };
    let mut out: Members = Vec::new();
    if let Some(logon) = &trade.buyer_logon_id {
        out.push(("buyer_logon_id", json!(logon)));
    }
    out.push(("buyer_pay_amount", paid_amount.clone()));
    if let Some(id) = &trade.buyer_id {
        out.push(("buyer_user_id", json!(id)));
    }
    if paid {
        out.push((
            "fund_bill_list",
            json!([{ "amount": trade.total_amount, "fund_channel": "ALIPAYACCOUNT" }]),
        ));
    }
    out.push(("invoice_amount", paid_amount.clone()));
    out.push(("out_trade_no", json!(trade.out_trade_no)));
    out.push(("point_amount", json!("0.00")));
    out.push(("receipt_amount", paid_amount));
    if let Some(at) = trade.gmt_payment {
        out.push(("send_pay_date", json!(china_time(at))));
    }
    out.push(("total_amount", json!(trade.total_amount)));
    out.push(("trade_no", json!(trade.trade_no)));
    out.push(("trade_status", json!(trade.status.as_str())));
    Ok(out)
}

fn close(state: &State, biz: &serde_json::Map<String, Value>, now: DateTime<Utc>) -> MethodResult {
    let mut inner = state.alipay.lock();
    let trade = find_trade(&mut inner, biz, now)?;
    let ids = vec![
        ("out_trade_no", json!(trade.out_trade_no)),
        ("trade_no", json!(trade.trade_no)),
    ];
    if trade.status != TradeStatus::WaitBuyerPay {
        // Close is allowed only while waiting for payment.
        return Err((
            GwError::business("ACQ.TRADE_STATUS_ERROR", "交易状态不合法"),
            ids,
        ));
    }
    trade.status = TradeStatus::TradeClosed;
    trade.gmt_close = Some(now);
    Ok(ids)
}

fn cancel(state: &State, biz: &serde_json::Map<String, Value>, now: DateTime<Utc>) -> MethodResult {
    let mut inner = state.alipay.lock();
    let trade = find_trade(&mut inner, biz, now)?;
    let action = match trade.status {
        TradeStatus::WaitBuyerPay => {
            trade.status = TradeStatus::TradeClosed;
            trade.gmt_close = Some(now);
            "close"
        }
        TradeStatus::TradeSuccess => {
            trade.status = TradeStatus::TradeClosed;
            trade.refunded = true;
            trade.refund_fen = trade.total_fen;
            trade.gmt_close = Some(now);
            "refund"
        }
        // Repeating a cancel repeats its answer.
        TradeStatus::TradeClosed if trade.refunded => "refund",
        TradeStatus::TradeClosed => "close",
    };
    let mut out = vec![
        ("action", json!(action)),
        ("out_trade_no", json!(trade.out_trade_no)),
        ("retry_flag", json!("N")),
        ("trade_no", json!(trade.trade_no)),
    ];
    if action == "refund" {
        out.push((
            "gmt_refund_pay",
            json!(china_time(trade.gmt_close.unwrap_or(now))),
        ));
    }
    Ok(out)
}

/// `alipay.trade.refund`: synchronous. A repeated `out_request_no` answers
/// `fund_change=N` and moves nothing; a full refund closes the trade. Money that
/// moved is announced to the trade's `notify_url`.
fn refund(state: &State, biz: &serde_json::Map<String, Value>, now: DateTime<Utc>) -> MethodResult {
    let param = |msg: String| (GwError::business("ACQ.INVALID_PARAMETER", msg), vec![]);
    let amount = biz_str(biz, "refund_amount")
        .ok_or_else(|| param("参数无效: refund_amount 不能为空".into()))?;
    let fen = proto::yuan_to_fen(&amount)
        .filter(|f| *f > 0)
        .ok_or_else(|| param(format!("参数无效: refund_amount {amount}")))?;
    let mut inner = state.alipay.lock();
    let generation = inner.generation;
    let trade = find_trade(&mut inner, biz, now)?;
    let out_request_no =
        biz_str(biz, "out_request_no").unwrap_or_else(|| trade.out_trade_no.clone());
    let ids = vec![
        ("out_trade_no", json!(trade.out_trade_no)),
        ("trade_no", json!(trade.trade_no)),
    ];
    let answer = |trade: &Trade, fund_change: &str, r: &Refund| -> Members {
        let mut out: Members = Vec::new();
        if let Some(logon) = &trade.buyer_logon_id {
            out.push(("buyer_logon_id", json!(logon)));
        }
        if let Some(id) = &trade.buyer_id {
            out.push(("buyer_user_id", json!(id)));
        }
        out.push(("fund_change", json!(fund_change)));
        out.push(("gmt_refund_pay", json!(china_time(r.gmt_refund_pay))));
        out.push(("out_trade_no", json!(trade.out_trade_no)));
        out.push(("refund_fee", json!(proto::fen_to_yuan(trade.refund_fen))));
        out.push(("send_back_fee", json!(r.refund_amount)));
        out.push(("trade_no", json!(trade.trade_no)));
        out
    };
    if let Some(earlier) = trade
        .refunds
        .iter()
        .find(|r| r.out_request_no == out_request_no)
    {
        if earlier.refund_fen != fen {
            return Err((
                GwError::business("ACQ.DISCORDANT_REPEAT_REQUEST", "不一致的请求"),
                ids,
            ));
        }
        return Ok(answer(trade, "N", earlier));
    }
    if trade.gmt_payment.is_none() {
        return Err((
            GwError::business("ACQ.TRADE_STATUS_ERROR", "交易状态不合法"),
            ids,
        ));
    }
    if fen > trade.total_fen - trade.refund_fen {
        return Err((
            GwError::business("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "退款金额超限"),
            ids,
        ));
    }
    if state.faults.take_refund_not_enough() {
        return Err((
            GwError::business("ACQ.SELLER_BALANCE_NOT_ENOUGH", "卖家余额不足"),
            ids,
        ));
    }
    trade.refund_fen += fen;
    let record = Refund {
        out_request_no: out_request_no.clone(),
        refund_fen: fen,
        refund_amount: proto::fen_to_yuan(fen),
        refund_reason: biz_str(biz, "refund_reason"),
        gmt_refund_pay: now,
        refunded_after_fen: trade.refund_fen,
        notify_id: random_alnum(34),
    };
    if trade.refund_fen >= trade.total_fen {
        trade.status = TradeStatus::TradeClosed;
        trade.refunded = true;
        trade.gmt_close = Some(now);
    }
    let members = answer(trade, "Y", &record);
    trade.refunds.push(record);
    let notify = trade
        .notify_url
        .is_some()
        .then(|| trade.out_trade_no.clone());
    drop(inner);
    if let Some(out_trade_no) = notify {
        tokio::spawn(deliver_on_schedule(
            state.clone(),
            out_trade_no,
            Some(out_request_no),
            generation,
        ));
    }
    Ok(members)
}

/// `alipay.trade.fastpay.refund.query`: a refund that went through is
/// `REFUND_SUCCESS`; an unknown `out_request_no` answers success without any
/// refund member, Alipay's way of saying "no such refund".
/// `alipay.data.dataservice.bill.downloadurl.query`: a URL on the emulator serving
/// the day's `trade` bill zip. `signcustomer` bills, monthly dates, days without
/// activity, future days and the `bill_missing` fault: `isp.bill_not_exist` (today's
/// bill is served, unlike Alipay's, which appears the next morning).
fn bill_download_url(
    state: &State,
    biz: &serde_json::Map<String, Value>,
    now: DateTime<Utc>,
) -> MethodResult {
    let not_exist = || {
        (
            GwError::business("isp.bill_not_exist", "账单不存在"),
            vec![],
        )
    };
    let bill_type = biz_str(biz, "bill_type").ok_or_else(|| {
        (
            GwError::missing("isv.missing-bill-type", "缺少必选参数bill_type"),
            vec![],
        )
    })?;
    let date = biz_str(biz, "bill_date").ok_or_else(|| {
        (
            GwError::missing("isv.missing-bill-date", "缺少必选参数bill_date"),
            vec![],
        )
    })?;
    if !matches!(bill_type.as_str(), "trade" | "signcustomer") {
        return Err((
            GwError::invalid("isv.invalid-parameter", "bill_type 参数不合法"),
            vec![],
        ));
    }
    let day = match chrono::NaiveDate::parse_from_str(&date, "%Y-%m-%d") {
        Ok(day) => day,
        Err(_) if chrono::NaiveDate::parse_from_str(&format!("{date}-01"), "%Y-%m-%d").is_ok() => {
            return Err(not_exist())
        }
        Err(_) => {
            return Err((
                GwError::invalid("isv.invalid-parameter", "bill_date 格式不正确"),
                vec![],
            ))
        }
    };
    if bill_type != "trade" || state.faults.get().bill_missing || day > crate::bills::china_day(now)
    {
        return Err(not_exist());
    }
    let mut activity = state.alipay.day_activity(day);
    if state.faults.take_bill_extra_payment() {
        activity
            .payments
            .push(crate::bills::extra_payment(day, false));
    }
    if activity.is_empty() {
        return Err(not_exist());
    }
    let pid = &state.config.alipay.seller_id;
    let (detail, summary) = crate::bills::alipay_trade_bill(pid, day, &activity);
    let zip = crate::bills::alipay_zip(pid, day, &detail, &summary)
        .map_err(|_| (GwError::unavailable(), vec![]))?;
    let stamp = day.format("%Y%m%d");
    let file_name = format!("{pid}_{stamp}.csv.zip");
    let token = state.bills.put(crate::bills::StoredBill {
        bytes: zip,
        gzip: false,
        file_name: file_name.clone(),
    });
    Ok(vec![(
        "bill_download_url",
        json!(format!(
            "{}/downloadBillFile.resource?bizType=trade&userId={pid}&fileType=csv.zip&bizDates={stamp}&downloadFileName={file_name}&fileId={token}",
            state.base_url
        )),
    )])
}

#[derive(Deserialize)]
struct BillFileQuery {
    #[serde(rename = "fileId")]
    file_id: Option<String>,
}

/// `GET /downloadBillFile.resource?...&fileId=..`: the bill zip (no signature; the URL
/// came in a signed answer).
async fn bill_file(state: State, query: web::Query<BillFileQuery>) -> HttpResponse {
    match query.file_id.as_deref().and_then(|id| state.bills.get(id)) {
        Some(bill) => HttpResponse::Ok()
            .content_type("application/zip")
            .insert_header((
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename={}",
                    urlencoding::encode(&bill.file_name)
                ),
            ))
            .body(bill.bytes),
        None => HttpResponse::NotFound()
            .content_type(HTML_UTF8)
            .body("<html><body>文件不存在或已过期</body></html>"),
    }
}

#[derive(Deserialize)]
struct ControlBillQuery {
    date: Option<String>,
    /// `detail` (default) or `summary`.
    part: Option<String>,
}

/// `GET /__emulator/alipay/bill?date=YYYY-MM-DD[&part=summary]`: the day's trade bill
/// CSV as UTF-8 text, for people (no faults applied or consumed).
async fn control_bill(state: State, query: web::Query<ControlBillQuery>) -> HttpResponse {
    let day = match query
        .date
        .as_deref()
        .map(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d"))
    {
        Some(Ok(day)) => day,
        None => crate::bills::china_day(Utc::now()),
        Some(Err(_)) => {
            return control_error(
                StatusCode::BAD_REQUEST,
                "INVALID_PARAMETER",
                "date must be YYYY-MM-DD",
            )
        }
    };
    let activity = state.alipay.day_activity(day);
    let (detail, summary) =
        crate::bills::alipay_trade_bill(&state.config.alipay.seller_id, day, &activity);
    let text = if query.part.as_deref() == Some("summary") {
        summary
    } else {
        detail
    };
    HttpResponse::Ok()
        .content_type("text/csv;charset=utf-8")
        .body(text)
}

fn refund_query(
    state: &State,
    biz: &serde_json::Map<String, Value>,
    now: DateTime<Utc>,
) -> MethodResult {
    let out_request_no = biz_str(biz, "out_request_no").ok_or_else(|| {
        (
            GwError::business("ACQ.INVALID_PARAMETER", "参数无效: out_request_no 不能为空"),
            vec![],
        )
    })?;
    let with_time = biz
        .get("query_options")
        .and_then(Value::as_array)
        .is_some_and(|o| o.iter().any(|v| v == "gmt_refund_pay"));
    let mut inner = state.alipay.lock();
    let trade = find_trade(&mut inner, biz, now)?;
    let Some(r) = trade
        .refunds
        .iter()
        .find(|r| r.out_request_no == out_request_no)
    else {
        return Ok(vec![
            ("out_request_no", json!(out_request_no)),
            ("out_trade_no", json!(trade.out_trade_no)),
            ("trade_no", json!(trade.trade_no)),
        ]);
    };
    let mut out: Members = Vec::new();
    if with_time {
        out.push(("gmt_refund_pay", json!(china_time(r.gmt_refund_pay))));
    }
    out.push(("out_request_no", json!(r.out_request_no)));
    out.push(("out_trade_no", json!(trade.out_trade_no)));
    out.push(("refund_amount", json!(r.refund_amount)));
    if let Some(reason) = &r.refund_reason {
        out.push(("refund_reason", json!(reason)));
    }
    out.push(("refund_status", json!("REFUND_SUCCESS")));
    out.push(("total_amount", json!(trade.total_amount)));
    out.push(("trade_no", json!(trade.trade_no)));
    Ok(out)
}

// ---------------------------------------------------------------------------
// Cashier

/// Opening the page / wap / app cashier creates the trade (WAIT_BUYER_PAY).
fn cashier(
    state: &State,
    method: &str,
    params: &BTreeMap<String, String>,
    biz: &serde_json::Map<String, Value>,
    now: DateTime<Utc>,
) -> HttpResponse {
    let default_product = match method {
        "alipay.trade.wap.pay" => "QUICK_WAP_WAY",
        "alipay.trade.app.pay" => "QUICK_MSECURITY_PAY",
        _ => "FAST_INSTANT_TRADE_PAY",
    };
    let opened = read_new_trade(biz, default_product, now)
        .and_then(|new| open_trade(state, method, new, params, now));
    match opened {
        Ok(trade) => HttpResponse::Ok()
            .content_type(HTML_UTF8)
            .body(cashier_html(&trade)),
        Err(e) if e.code == "40004" && e.sub_code != "ACQ.INVALID_PARAMETER" => {
            error_page(StatusCode::CONFLICT, &e)
        }
        Err(e) => error_page(StatusCode::BAD_REQUEST, &e),
    }
}

fn cashier_html(trade: &Trade) -> String {
    let back = trade
        .quit_url
        .as_deref()
        .or(trade.return_url.as_deref())
        .unwrap_or("#");
    format!(
        r#"<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>支付宝 收银台 (fenpay emulator)</title>
<style>
body{{font-family:system-ui,sans-serif;background:#f5f5f5;margin:0}}
main{{max-width:28rem;margin:3rem auto;background:#fff;padding:2rem;border-radius:8px}}
h1{{color:#1677ff;font-size:1.4rem}} .amount{{font-size:2rem;font-weight:bold}}
button{{background:#1677ff;color:#fff;border:0;padding:.8rem 2rem;font-size:1.1rem;border-radius:4px}}
.note{{color:#a00;font-size:.85rem}}
</style></head>
<body><main class="cashier" data-out-trade-no="{out_trade_no}" data-trade-no="{trade_no}">
<h1>支付宝 收银台</h1>
<p class="note">fenpay emulator: a local test cashier, no real money moves.</p>
<p class="subject">{subject}</p>
<p class="amount">¥<span id="emulator-amount">{amount}</span></p>
<p>商户订单号 {out_trade_no}</p>
<form method="post" action="/__emulator/alipay/cashier/{path_no}/pay">
<button id="emulator-pay" type="submit">Pay 确认付款</button>
</form>
<p><a id="emulator-cancel" href="{back}">Cancel 取消</a></p>
</main></body></html>
"#,
        out_trade_no = html_escape(&trade.out_trade_no),
        trade_no = html_escape(&trade.trade_no),
        subject = html_escape(&trade.subject),
        amount = html_escape(&trade.total_amount),
        path_no = urlencoding::encode(&trade.out_trade_no),
        back = html_escape(back),
    )
}

fn error_page(status: StatusCode, e: &GwError) -> HttpResponse {
    let body = format!(
        r#"<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>支付宝 收银台 (fenpay emulator) - 错误</title></head>
<body><main id="emulator-error" data-code="{code}" data-sub-code="{sub_code}">
<h1>支付宝 收银台</h1>
<p>错误代码 {sub_code}</p><p>错误原因 {sub_msg}</p>
</main></body></html>
"#,
        code = e.code,
        sub_code = html_escape(&e.sub_code),
        sub_msg = html_escape(&e.sub_msg),
    );
    HttpResponse::build(status)
        .content_type(HTML_UTF8)
        .body(body)
}

fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// `POST /__emulator/alipay/cashier/{out_trade_no}/pay`: the buyer pays on the
/// cashier page; the browser goes back to `return_url` with signed parameters.
async fn cashier_pay(state: State, path: web::Path<String>) -> HttpResponse {
    let out_trade_no = path.into_inner();
    let trade = match pay(&state, &out_trade_no) {
        Ok(trade) => trade,
        Err((status, code, message)) => {
            return error_page(status, &GwError::business(code, message));
        }
    };
    let Some(return_url) = trade.return_url.clone() else {
        let body = format!(
            r#"<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>支付成功 (fenpay emulator)</title></head>
<body><main id="emulator-paid"><h1>支付成功</h1><p>¥{}</p><p>{}</p></main></body></html>
"#,
            html_escape(&trade.total_amount),
            html_escape(&trade.out_trade_no)
        );
        return HttpResponse::Ok().content_type(HTML_UTF8).body(body);
    };
    match return_params(&state, &trade) {
        Ok(query) => {
            let sep = if return_url.contains('?') { '&' } else { '?' };
            HttpResponse::SeeOther()
                .insert_header((header::LOCATION, format!("{return_url}{sep}{query}")))
                .finish()
        }
        Err(e) => HttpResponse::InternalServerError().body(e),
    }
}

/// The V1-signed parameters Alipay appends to `return_url`.
fn return_params(state: &State, trade: &Trade) -> Result<String, String> {
    let cfg = &state.config.alipay;
    let mut params = BTreeMap::new();
    // Alipay omits empty parameters; SDKs that sign `k=` for them would disagree.
    let mut put = |k: &str, v: &str| {
        if !v.is_empty() {
            params.insert(k.to_string(), v.to_string());
        }
    };
    put("app_id", &cfg.app_id);
    put("auth_app_id", &cfg.app_id);
    put("charset", "utf-8");
    put("method", &format!("{}.return", trade.method));
    put("out_trade_no", &trade.out_trade_no);
    put("seller_id", &cfg.seller_id);
    put("sign_type", "RSA2");
    put("timestamp", &china_time(Utc::now()));
    put("total_amount", &trade.total_amount);
    put("trade_no", &trade.trade_no);
    put("version", "1.0");
    let sign =
        proto::sign_notification(&params, &cfg.alipay_private_key).map_err(|e| e.to_string())?;
    params.insert("sign".into(), sign);
    Ok(encode_form(&params))
}

fn encode_form(params: &BTreeMap<String, String>) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", urlencoding::encode(k), urlencoding::encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

type ControlError = (StatusCode, &'static str, String);

/// The buyer pays: WAIT_BUYER_PAY → TRADE_SUCCESS (opening the trade first when
/// needed) and the notification schedule starts. Paying a paid trade is a no-op.
fn pay(state: &State, out_trade_no: &str) -> Result<Trade, ControlError> {
    let now = Utc::now();
    let (trade, generation) = {
        let mut inner = state.alipay.lock();
        let generation = inner.generation;
        let trade = inner.trades.get_mut(out_trade_no).ok_or_else(|| {
            (
                StatusCode::NOT_FOUND,
                "TRADE_NOT_EXIST",
                format!(
                    "no trade {out_trade_no}: create it (precreate) or open its cashier URL first"
                ),
            )
        })?;
        expire_if_due(trade, now);
        match trade.status {
            TradeStatus::TradeSuccess => return Ok(trade.clone()),
            TradeStatus::TradeClosed => {
                return Err((StatusCode::CONFLICT, "TRADE_CLOSED", "交易已经关闭".into()))
            }
            TradeStatus::WaitBuyerPay => {}
        }
        trade.opened = true;
        trade.status = TradeStatus::TradeSuccess;
        trade.gmt_payment = Some(now);
        trade.buyer_id = Some(format!("2088{}", random_digits(12)));
        trade.buyer_logon_id = Some("fen***@example.com".into());
        trade.notify_id = Some(random_alnum(34).to_ascii_lowercase());
        (trade.clone(), generation)
    };
    if trade.notify_url.is_some() {
        tokio::spawn(deliver_on_schedule(
            state.clone(),
            trade.out_trade_no.clone(),
            None,
            generation,
        ));
    }
    Ok(trade)
}

// ---------------------------------------------------------------------------
// Notifications

/// The payment notification (`out_biz_no` none) or a refund's, first attempt now.
async fn deliver_on_schedule(
    state: State,
    out_trade_no: String,
    out_biz_no: Option<String>,
    generation: u64,
) {
    for attempt in 0..=RESEND_SCHEDULE_SECS.len() {
        if attempt > 0 {
            let secs = RESEND_SCHEDULE_SECS[attempt - 1] as f64;
            tokio::time::sleep(scaled(secs, state.config.time_scale)).await;
        }
        if state.alipay.lock().generation != generation {
            return;
        }
        let number = u32::try_from(attempt + 1).unwrap_or(u32::MAX);
        let sent = notify_once(
            &state,
            &out_trade_no,
            out_biz_no.as_deref(),
            None,
            number,
            false,
        )
        .await;
        if let Some(entry) = sent {
            if entry.outcome == "delivered" {
                return;
            }
        }
    }
}

fn scaled(secs: f64, time_scale: f64) -> Duration {
    let scale = if time_scale.is_finite() && time_scale > 0.0 {
        time_scale
    } else {
        1.0
    };
    Duration::from_secs_f64(secs / scale)
}

/// One notification attempt (two concurrent posts under the duplicate fault).
/// `status` sends a trade-status notification (`WAIT_BUYER_PAY` after a scan, or a
/// `TRADE_CLOSED`) instead of the payment's. `None` when there is nothing to notify.
async fn notify_once(
    state: &State,
    out_trade_no: &str,
    out_biz_no: Option<&str>,
    status: Option<TradeStatus>,
    attempt: u32,
    manual: bool,
) -> Option<NotificationAttempt> {
    let faults = state.faults.get();
    if faults.delay_notifications_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.delay_notifications_ms)).await;
    }
    let trade = state.alipay.trade(out_trade_no)?;
    let url = trade.notify_url.clone()?;
    let refund = match out_biz_no {
        None => None,
        Some(no) => Some(
            trade
                .refunds
                .iter()
                .find(|r| r.out_request_no == no)?
                .clone(),
        ),
    };
    let notify_id = match (&refund, status) {
        (Some(r), _) => r.notify_id.clone(),
        (None, Some(_)) => random_alnum(34).to_ascii_lowercase(),
        (None, None) => trade.notify_id.clone()?,
    };
    let mut entry = NotificationAttempt {
        out_trade_no: out_trade_no.to_string(),
        out_biz_no: out_biz_no.map(String::from),
        notify_id,
        attempt,
        at: Utc::now(),
        url: url.clone(),
        outcome: "dropped".into(),
        http_status: None,
        response: None,
        error: None,
        manual,
    };
    if state.faults.take_drop_notification() {
        state.alipay.lock().log.push(entry.clone());
        return Some(entry);
    }
    let body = match notification_body(state, &trade, refund.as_ref(), status, &entry.notify_id) {
        Ok(body) => body,
        Err(e) => {
            entry.outcome = "error".into();
            entry.error = Some(e);
            state.alipay.lock().log.push(entry.clone());
            return Some(entry);
        }
    };
    let send = || {
        state
            .http
            .post(&url)
            .header(
                header::CONTENT_TYPE.as_str(),
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .body(body.clone())
            .send()
    };
    let results = if faults.duplicate_notifications {
        let (a, b) = futures_util::future::join(send(), send()).await;
        vec![a, b]
    } else {
        vec![send().await]
    };
    let mut entries = Vec::new();
    for result in results {
        let mut e = entry.clone();
        e.at = Utc::now();
        match result {
            Ok(resp) => {
                e.http_status = Some(resp.status().as_u16());
                let text = resp.text().await.unwrap_or_default();
                // Only the exact answer `success` stops the resends.
                e.outcome = if text.trim() == "success" {
                    "delivered"
                } else {
                    "rejected"
                }
                .into();
                e.response = Some(text.chars().take(200).collect());
            }
            Err(err) => {
                e.outcome = "error".into();
                e.error = Some(err.to_string());
            }
        }
        entries.push(e);
    }
    let delivered = entries.iter().find(|e| e.outcome == "delivered").cloned();
    let last = entries.last().cloned();
    state.alipay.lock().log.extend(entries);
    delivered.or(last)
}

/// The form body of a payment notification, or of a refund's when `refund` is set,
/// V1-signed (`sign_type` not signed). A refund notification is a trade
/// notification too: `trade_status` is the trade's after that refund
/// (`TRADE_SUCCESS` for a partial refund, `TRADE_CLOSED` once all is refunded),
/// plus `refund_fee` (cumulative), `gmt_refund` and `out_biz_no`.
fn notification_body(
    state: &State,
    trade: &Trade,
    refund: Option<&Refund>,
    status: Option<TradeStatus>,
    notify_id: &str,
) -> Result<String, String> {
    let cfg = &state.config.alipay;
    let paid_at = trade.gmt_payment.unwrap_or(trade.gmt_create);
    let mut params = BTreeMap::new();
    let mut put = |k: &str, v: &str| {
        if !v.is_empty() {
            params.insert(k.to_string(), v.to_string());
        }
    };
    put("notify_time", &china_time(Utc::now()));
    put("notify_type", "trade_status_sync");
    put("notify_id", notify_id);
    put("app_id", &cfg.app_id);
    put("auth_app_id", &cfg.app_id);
    put("charset", "utf-8");
    put("version", "1.0");
    put("sign_type", "RSA2");
    put("trade_no", &trade.trade_no);
    put("out_trade_no", &trade.out_trade_no);
    let paid = trade.gmt_payment.is_some();
    match refund {
        None => put(
            "trade_status",
            status.unwrap_or(TradeStatus::TradeSuccess).as_str(),
        ),
        Some(r) => {
            let full = r.refunded_after_fen >= trade.total_fen;
            let status = if full {
                TradeStatus::TradeClosed
            } else {
                TradeStatus::TradeSuccess
            };
            put("trade_status", status.as_str());
            put("out_biz_no", &r.out_request_no);
            put("refund_fee", &proto::fen_to_yuan(r.refunded_after_fen));
            // Alipay writes gmt_refund with milliseconds.
            let at = r.gmt_refund_pay.with_timezone(&china());
            put(
                "gmt_refund",
                &at.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
            );
            if full {
                put("gmt_close", &china_time(r.gmt_refund_pay));
            }
        }
    }
    put("total_amount", &trade.total_amount);
    put("point_amount", "0.00");
    put("seller_id", &cfg.seller_id);
    put("buyer_id", trade.buyer_id.as_deref().unwrap_or_default());
    put(
        "buyer_logon_id",
        trade.buyer_logon_id.as_deref().unwrap_or_default(),
    );
    put("gmt_create", &china_time(trade.gmt_create));
    put("subject", &trade.subject);
    if paid || refund.is_some() || status.is_none() {
        put("receipt_amount", &trade.total_amount);
        put("invoice_amount", &trade.total_amount);
        put("buyer_pay_amount", &trade.total_amount);
        put("gmt_payment", &china_time(paid_at));
        // Notifications spell it fundChannel (sync responses: fund_channel).
        let bills = json!([{ "amount": trade.total_amount, "fundChannel": "ALIPAYACCOUNT" }]);
        put("fund_bill_list", &bills.to_string());
    }
    if let (None, Some(TradeStatus::TradeClosed), Some(at)) = (refund, status, trade.gmt_close) {
        put("gmt_close", &china_time(at));
    }
    let sign =
        proto::sign_notification(&params, &cfg.alipay_private_key).map_err(|e| e.to_string())?;
    params.insert("sign".into(), sign);
    Ok(encode_form(&params))
}

// ---------------------------------------------------------------------------
// Control API

fn control_error(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "code": code, "message": message }))
}

/// `POST /__emulator/alipay/pay/{out_trade_no}`: the buyer pays.
async fn control_pay(state: State, path: web::Path<String>) -> HttpResponse {
    match pay(&state, &path.into_inner()) {
        Ok(trade) => HttpResponse::Ok().json(trade),
        Err((status, code, message)) => control_error(status, code, &message),
    }
}

/// `POST /__emulator/alipay/close/{out_trade_no}`: the trade times out unpaid
/// (what `time_expire` does), so a later payment is refused.
async fn control_close(state: State, path: web::Path<String>) -> HttpResponse {
    let out_trade_no = path.into_inner();
    let mut inner = state.alipay.lock();
    let Some(trade) = inner.trades.get_mut(&out_trade_no) else {
        return control_error(StatusCode::NOT_FOUND, "TRADE_NOT_EXIST", "no such trade");
    };
    match trade.status {
        TradeStatus::TradeSuccess => {
            control_error(StatusCode::CONFLICT, "TRADE_HAS_SUCCESS", "交易已被支付")
        }
        _ => {
            if trade.status == TradeStatus::WaitBuyerPay {
                trade.status = TradeStatus::TradeClosed;
                trade.gmt_close = Some(Utc::now());
            }
            HttpResponse::Ok().json(&*trade)
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct NotifyControl {
    /// `WAIT_BUYER_PAY` or `TRADE_CLOSED`: send a signed notification with this
    /// `trade_status`, whatever the trade's state (a test's forged or stale one).
    trade_status: Option<String>,
}

/// `POST /__emulator/alipay/notify/{out_trade_no}`: send the payment notification
/// once more, now; with `{"trade_status": "TRADE_CLOSED"}` (or `WAIT_BUYER_PAY`) a
/// signed notification of that status instead, the trade unchanged.
async fn control_notify(
    state: State,
    path: web::Path<String>,
    body: Option<web::Json<NotifyControl>>,
) -> HttpResponse {
    let out_trade_no = path.into_inner();
    let Some(trade) = state.alipay.trade(&out_trade_no) else {
        return control_error(StatusCode::NOT_FOUND, "TRADE_NOT_EXIST", "no such trade");
    };
    let wanted = body.and_then(|b| b.into_inner().trade_status);
    if let Some(wanted) = wanted {
        let status = match wanted.as_str() {
            "WAIT_BUYER_PAY" => TradeStatus::WaitBuyerPay,
            "TRADE_CLOSED" => TradeStatus::TradeClosed,
            _ => {
                return control_error(
                    StatusCode::BAD_REQUEST,
                    "INVALID_TRADE_STATUS",
                    "trade_status must be WAIT_BUYER_PAY or TRADE_CLOSED",
                )
            }
        };
        return status_notification(&state, &out_trade_no, status).await;
    }
    if trade.notify_id.is_none() || trade.notify_url.is_none() {
        return control_error(
            StatusCode::CONFLICT,
            "NOTHING_TO_NOTIFY",
            "the trade is not paid or has no notify_url",
        );
    }
    let sent = state
        .alipay
        .notifications(Some(&out_trade_no))
        .iter()
        .filter(|a| a.out_biz_no.is_none())
        .count();
    let attempt = u32::try_from(sent + 1).unwrap_or(u32::MAX);
    match notify_once(&state, &out_trade_no, None, None, attempt, true).await {
        Some(entry) => HttpResponse::Ok().json(entry),
        None => control_error(
            StatusCode::CONFLICT,
            "NOTHING_TO_NOTIFY",
            "nothing to notify",
        ),
    }
}

/// Send one signed trade-status notification now (no resends).
async fn status_notification(
    state: &State,
    out_trade_no: &str,
    status: TradeStatus,
) -> HttpResponse {
    match notify_once(state, out_trade_no, None, Some(status), 1, true).await {
        Some(entry) => HttpResponse::Ok().json(entry),
        None => control_error(
            StatusCode::CONFLICT,
            "NOTHING_TO_NOTIFY",
            "the trade has no notify_url",
        ),
    }
}

/// `POST /__emulator/alipay/scan/{out_trade_no}`: the buyer scans the precreate QR
/// code. Alipay then notifies `WAIT_BUYER_PAY` (the trade stays waiting for payment).
async fn control_scan(state: State, path: web::Path<String>) -> HttpResponse {
    let out_trade_no = path.into_inner();
    let waiting = {
        let mut inner = state.alipay.lock();
        match inner.trades.get_mut(&out_trade_no) {
            None => None,
            Some(trade) => {
                expire_if_due(trade, Utc::now());
                trade.opened = true;
                Some(trade.status == TradeStatus::WaitBuyerPay)
            }
        }
    };
    match waiting {
        None => control_error(StatusCode::NOT_FOUND, "TRADE_NOT_EXIST", "no such trade"),
        Some(false) => control_error(
            StatusCode::CONFLICT,
            "TRADE_NOT_WAITING",
            "the trade is no longer waiting for payment",
        ),
        Some(true) => status_notification(&state, &out_trade_no, TradeStatus::WaitBuyerPay).await,
    }
}

/// `GET /__emulator/alipay/trades`: every trade, oldest first.
async fn control_trades(state: State) -> HttpResponse {
    let mut trades: Vec<Trade> = state.alipay.lock().trades.values().cloned().collect();
    trades.sort_by_key(|t| t.gmt_create);
    HttpResponse::Ok().json(trades)
}

/// `GET /__emulator/alipay/trades/{out_trade_no}`.
async fn control_trade(state: State, path: web::Path<String>) -> HttpResponse {
    let out_trade_no = path.into_inner();
    let mut inner = state.alipay.lock();
    match inner.trades.get_mut(&out_trade_no) {
        Some(trade) => {
            expire_if_due(trade, Utc::now());
            HttpResponse::Ok().json(&*trade)
        }
        None => control_error(StatusCode::NOT_FOUND, "TRADE_NOT_EXIST", "no such trade"),
    }
}

#[derive(Debug, Deserialize)]
struct NotificationFilter {
    out_trade_no: Option<String>,
}

/// `GET /__emulator/alipay/notifications?out_trade_no=`: the delivery log.
async fn control_notifications(
    state: State,
    filter: web::Query<NotificationFilter>,
) -> HttpResponse {
    HttpResponse::Ok().json(state.alipay.notifications(filter.out_trade_no.as_deref()))
}

// ---------------------------------------------------------------------------
// Helpers

fn china() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| chrono::Offset::fix(&Utc))
}

fn china_time(t: DateTime<Utc>) -> String {
    t.with_timezone(&china()).format(TIME_FORMAT).to_string()
}

/// `time_expire`: `yyyy-MM-dd HH:mm:ss` (or without seconds) in +08:00.
fn parse_expire(text: &str) -> Option<DateTime<Utc>> {
    let naive = NaiveDateTime::parse_from_str(text, TIME_FORMAT)
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M"))
        .ok()?;
    china()
        .from_local_datetime(&naive)
        .single()
        .map(|t| t.with_timezone(&Utc))
}

/// `timeout_express` (`90m`, `2h`, `1d`); other forms are ignored.
fn parse_timeout_express(text: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let (number, unit) = text.split_at(text.len().checked_sub(1)?);
    let n: i64 = number.parse().ok()?;
    let minutes = match unit {
        "m" => n,
        "h" => n.checked_mul(60)?,
        "d" => n.checked_mul(24 * 60)?,
        _ => return None,
    };
    now.checked_add_signed(chrono::Duration::try_minutes(minutes)?)
}

/// Alipay closes an unpaid trade at its `time_expire`.
fn expire_if_due(trade: &mut Trade, now: DateTime<Utc>) {
    if trade.status == TradeStatus::WaitBuyerPay {
        if let Some(at) = trade.time_expire.filter(|at| *at <= now) {
            trade.status = TradeStatus::TradeClosed;
            trade.gmt_close = Some(at);
        }
    }
}

fn new_trade_no(now: DateTime<Utc>) -> String {
    format!(
        "{}22001{}",
        now.with_timezone(&china()).format("%Y%m%d"),
        random_digits(15)
    )
}

fn random_digits(len: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
        .collect()
}

fn random_alnum(len: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| char::from(CHARS[rng.gen_range(0..CHARS.len())]))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn response_members_keep_their_order() {
        let text = compact_object(&[
            ("code", json!("10000")),
            ("msg", json!("Success")),
            ("qr_code", json!("https://qr.alipay.com/x")),
        ]);
        assert_eq!(
            text,
            r#"{"code":"10000","msg":"Success","qr_code":"https://qr.alipay.com/x"}"#
        );
    }

    #[test]
    fn expiry_forms_parse() {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(
            parse_expire("2026-01-01 08:30:00"),
            Some(Utc.with_ymd_and_hms(2026, 1, 1, 0, 30, 0).unwrap())
        );
        assert_eq!(
            parse_expire("2026-01-01 08:30"),
            Some(Utc.with_ymd_and_hms(2026, 1, 1, 0, 30, 0).unwrap())
        );
        assert_eq!(
            parse_timeout_express("90m", now),
            Some(Utc.with_ymd_and_hms(2026, 1, 1, 1, 30, 0).unwrap())
        );
        assert_eq!(parse_timeout_express("1c", now), None);
        assert_eq!(parse_timeout_express("", now), None);
    }

    #[test]
    fn trade_numbers_look_like_alipay() {
        let no = new_trade_no(Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 7).unwrap());
        assert_eq!(no.len(), 28);
        assert!(no.starts_with("2026030422001"));
        assert!(no.bytes().all(|b| b.is_ascii_digit()));
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            html_escape(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn scaled_delays_never_divide_by_zero() {
        assert_eq!(scaled(240.0, 240.0), Duration::from_secs(1));
        assert_eq!(scaled(2.0, 0.0), Duration::from_secs(2));
    }
}
