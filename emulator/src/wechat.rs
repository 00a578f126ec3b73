//! The WeChat Pay API v3 half of the emulator: native / h5 / jsapi / app prepay,
//! query by `out_trade_no` or `transaction_id`, close, refunds
//! (`/v3/refund/domestic/refunds`), `/v3/certificates`, and `TRANSACTION.SUCCESS` /
//! `REFUND.*` notifications on WeChat's resend schedule; plus a control API under
//! `/__emulator/wechat/`.
//!
//! Faithfulness rules (protocol reference §1-4 and the §7 checklist):
//! - every request is authenticated over the exact method, path + raw query and
//!   body bytes (`WECHATPAY2-SHA256-RSA2048`, any parameter order, 5-minute skew);
//! - every 2xx answer, 204 included, is signed over `ts\nnonce\nbody\n` (with
//!   `Wechatpay-Signature-Type`): a public-key merchant's always with the WeChat Pay
//!   public key, a certificate merchant's under the key its `Wechatpay-Serial` asks
//!   for; errors are JSON `{"code","message"[,"detail"]}`, signed the same way when
//!   the request was authenticated;
//! - notifications are AEAD_AES_256_GCM sealed with the APIv3 key, carry
//!   `Wechatpay-Signature-Type`, non-empty `associated_data` and a 12-character
//!   nonce, and are resent 15s/15s/30s/3m/10m/20m/30m/30m/30m/60m/3h/3h/3h/6h/6h
//!   (divided by the time scale) until the merchant answers 2xx within 5 s.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use fenpay_proto::wechat::{
    self as proto, ApiErrorBody, CertificateEntry, CertificateList, EncryptedCertificate,
    EncryptedResource, NotificationEnvelope, Payer, RefundResource, RefundResourceAmount,
    Transaction, TransactionAmount,
};
use fenpay_proto::ProtoError;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::faults::RequestFault;
use super::{State, WechatEmulatorConfig};
use fenpay_proto::wechat::WechatKeyMode;

mod complaints;

/// Delays before resends 1..=15 (skills `回调通知处理.md` §重试机制), in seconds,
/// each divided by the configured time scale.
const RESEND_SCHEDULE_SECS: [u64; 15] = [
    15, 15, 30, 180, 600, 1_200, 1_800, 1_800, 1_800, 3_600, 10_800, 10_800, 10_800, 21_600, 21_600,
];

/// A new refund stays `PROCESSING` this long (divided by the time scale) before it
/// reaches its end: refunds to the payer's balance (零钱) are near-instant.
const REFUND_SETTLE_SECS: u64 = 1;

/// Where refunded money lands (`user_received_account`) for a balance payment.
const USER_RECEIVED_ACCOUNT: &str = "支付用户零钱";

/// An unpaid order closes by itself 7 days after it was placed (`time_expire` only
/// ends the time the buyer can pay).
const DEFAULT_VALIDITY_DAYS: i64 = 7;

/// WeChat's notification requests announce themselves this way.
const NOTIFY_USER_AGENT: &str = "Mozilla/4.0";

const JSON_UTF8: &str = "application/json; charset=utf-8";

/// The `PARAM_ERROR` wording for a `notify_url` WeChat refuses.
const NOTIFY_URL_RULE: &str = "格式校验失败，须为http或https开头且不携带参数的URL";

/// The four prepay products. The wire names are WeChat's `trade_type` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TradeType {
    /// QR code (`code_url`).
    Native,
    /// In-WeChat web page / mini program (`prepay_id`, payer openid required).
    Jsapi,
    /// Mobile app (`prepay_id`).
    App,
    /// Mobile browser H5 (`h5_url`).
    Mweb,
}

impl TradeType {
    /// The `trade_type` wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            TradeType::Native => "NATIVE",
            TradeType::Jsapi => "JSAPI",
            TradeType::App => "APP",
            TradeType::Mweb => "MWEB",
        }
    }
}

/// Where a trade is in its life (`NOTPAY -> SUCCESS | CLOSED`, `SUCCESS -> REFUND`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TradeState {
    /// Created, not paid.
    Notpay,
    /// Paid.
    Success,
    /// Closed unpaid, by the merchant or by expiry.
    Closed,
    /// Paid, then a refund was accepted (转入退款; skills `订单状态流转.md`: any
    /// refund, partial or full, moves the order here).
    Refund,
}

impl TradeState {
    /// The `trade_state` wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            TradeState::Notpay => "NOTPAY",
            TradeState::Success => "SUCCESS",
            TradeState::Closed => "CLOSED",
            TradeState::Refund => "REFUND",
        }
    }

    fn desc(self) -> &'static str {
        match self {
            TradeState::Notpay => "订单未支付",
            TradeState::Success => "支付成功",
            TradeState::Closed => "订单已关闭",
            TradeState::Refund => "转入退款",
        }
    }
}

/// Which key a signature is announced under (`Wechatpay-Serial`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SerialMode {
    /// WeChat Pay public key: `Wechatpay-Serial: PUB_KEY_ID_...`.
    #[default]
    PublicKey,
    /// Platform certificate: `Wechatpay-Serial: <certificate serial>`.
    Certificate,
}

/// One trade as the emulator holds it.
#[derive(Clone, Debug, Serialize)]
pub struct Trade {
    pub out_trade_no: String,
    pub trade_type: TradeType,
    pub trade_state: TradeState,
    pub appid: String,
    pub mchid: String,
    pub description: String,
    /// Order total in fen.
    pub amount_total: i64,
    pub notify_url: String,
    pub time_expire: Option<String>,
    pub attach: Option<String>,
    /// The payer: given at prepay for JSAPI, at payment otherwise.
    pub payer_openid: Option<String>,
    /// `4200...` (28 digits), set on payment.
    pub transaction_id: Option<String>,
    /// RFC 3339 (+08:00), set on payment.
    pub success_time: Option<String>,
    pub created_at: String,
    /// Past `time_expire`: the buyer can no longer pay. The trade still answers
    /// `NOTPAY` until the merchant closes it, or until the 7-day limit closes it.
    pub expired: bool,
    /// Refunds against this trade, oldest first.
    pub refunds: Vec<Refund>,
    /// The prepay answer, repeated verbatim on an identical re-post.
    pub prepay: Value,
    /// The request body as first posted, for the re-entry comparison.
    #[serde(skip)]
    request: Value,
    /// Payment deadline: `time_expire`, or the 7-day limit without one.
    #[serde(skip)]
    expires_at: DateTime<FixedOffset>,
    /// When WeChat closes it by itself if still unpaid: 7 days after creation (or at a
    /// later `time_expire`).
    #[serde(skip)]
    closes_at: DateTime<FixedOffset>,
    /// Serial mode of this trade's notifications (chosen at payment).
    #[serde(skip)]
    notify_mode: SerialMode,
    /// The mode the prepay was answered in: its notification's unless the buyer's
    /// payment (control API) asks for another.
    #[serde(skip)]
    prepay_mode: SerialMode,
}

impl Trade {
    /// Apply the passing of time: past `time_expire` an unpaid trade can no longer be
    /// paid but still answers `NOTPAY` (only the merchant's close, or the 7-day limit,
    /// closes it: pay.weixin.qq.com 订单状态流转).
    fn settle_expiry(&mut self, now: DateTime<Utc>) {
        if self.is_paid() {
            return;
        }
        self.expired = now > self.expires_at;
        if self.trade_state == TradeState::Notpay && now > self.closes_at {
            self.trade_state = TradeState::Closed;
        }
    }

    /// Move the trade's clock `secs` forward (its creation and deadlines back).
    fn age(&mut self, secs: i64) {
        let by = chrono::Duration::seconds(secs);
        self.expires_at -= by;
        self.closes_at -= by;
        if let Ok(created) = DateTime::parse_from_rfc3339(&self.created_at) {
            self.created_at = rfc3339(created - by);
        }
    }

    /// Paid (and possibly refunded since).
    fn is_paid(&self) -> bool {
        matches!(self.trade_state, TradeState::Success | TradeState::Refund)
    }

    /// Fen committed to refunds: every refund except closed ones (an ABNORMAL
    /// refund's money has left the merchant too).
    fn refunded(&self) -> i64 {
        self.refunds
            .iter()
            .filter(|r| r.status != RefundStatus::Closed)
            .map(|r| r.refund)
            .sum()
    }

    /// The Transaction object the query endpoints answer and notifications carry.
    pub fn transaction(&self) -> Transaction {
        let paid = self.is_paid();
        Transaction {
            appid: self.appid.clone(),
            mchid: self.mchid.clone(),
            out_trade_no: self.out_trade_no.clone(),
            transaction_id: self.transaction_id.clone(),
            trade_type: paid.then(|| self.trade_type.as_str().to_string()),
            trade_state: self.trade_state.as_str().to_string(),
            trade_state_desc: self.trade_state.desc().to_string(),
            bank_type: paid.then(|| "OTHERS".to_string()),
            attach: self.attach.clone(),
            success_time: self.success_time.clone(),
            payer: Some(Payer {
                openid: if paid {
                    self.payer_openid.clone()
                } else {
                    None
                },
            }),
            amount: Some(TransactionAmount {
                total: self.amount_total,
                payer_total: paid.then_some(self.amount_total),
                currency: Some("CNY".to_string()),
                payer_currency: Some("CNY".to_string()),
            }),
        }
    }
}

/// One delivery attempt of a notification.
#[derive(Clone, Debug, Serialize)]
pub struct DeliveryAttempt {
    /// RFC 3339 (+08:00) time the attempt finished.
    pub at: String,
    /// The merchant's HTTP status, if it answered.
    pub status: Option<u16>,
    /// A deliberately mis-signed `WECHATPAY/SIGNTEST/` copy (never counts as delivery).
    pub probe: bool,
    /// Swallowed by the `drop_notifications_next` fault (counts as a failure).
    pub dropped: bool,
    /// Transport error (refused, timed out after 5 s, ...).
    pub error: Option<String>,
}

/// A notification and every attempt to deliver it.
#[derive(Clone, Debug, Serialize)]
pub struct NotificationLog {
    /// The envelope `id`, the same on every resend.
    pub id: String,
    pub out_trade_no: String,
    /// Set on `REFUND.*` notifications.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out_refund_no: Option<String>,
    /// Set on `COMPLAINT.*` notifications.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub complaint_id: Option<String>,
    pub event_type: String,
    pub notify_url: String,
    pub serial_mode: SerialMode,
    pub attempts: Vec<DeliveryAttempt>,
    /// True once a real (non-probe) attempt got a 2xx.
    pub delivered: bool,
    #[serde(skip)]
    body: Arc<Vec<u8>>,
}

/// In-memory WeChat state: trades by `out_trade_no` and the notification log.
#[derive(Debug, Default)]
pub struct WechatState {
    trades: Mutex<HashMap<String, Trade>>,
    notifications: Mutex<Vec<NotificationLog>>,
    /// Consumer complaints and the registered complaint notification URL.
    complaints: Mutex<complaints::ComplaintStore>,
    /// Bumped by `reset()` so resends scheduled before it stop.
    generation: AtomicU64,
    /// Posts notifications with WeChat's header spelling (built on first use).
    notifier: OnceLock<reqwest::Client>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl WechatState {
    /// Forget all trades and notifications; pending resends stop.
    pub fn reset(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        lock(&self.trades).clear();
        lock(&self.notifications).clear();
        *lock(&self.complaints) = complaints::ComplaintStore::default();
    }

    /// A snapshot of one trade (expiry applied).
    pub fn trade(&self, out_trade_no: &str) -> Option<Trade> {
        let mut trades = lock(&self.trades);
        let trade = trades.get_mut(out_trade_no)?;
        trade.settle_expiry(Utc::now());
        Some(trade.clone())
    }

    /// A snapshot of one refund.
    pub fn refund(&self, out_refund_no: &str) -> Option<Refund> {
        lock(&self.trades)
            .values()
            .flat_map(|t| t.refunds.iter())
            .find(|r| r.out_refund_no == out_refund_no)
            .cloned()
    }

    /// Every refund, optionally for one trade, oldest first.
    pub fn refunds(&self, out_trade_no: Option<&str>) -> Vec<Refund> {
        let mut all: Vec<Refund> = lock(&self.trades)
            .values()
            .filter(|t| out_trade_no.is_none_or(|no| t.out_trade_no == no))
            .flat_map(|t| t.refunds.iter().cloned())
            .collect();
        all.sort_by(|a, b| a.create_time.cmp(&b.create_time));
        all
    }

    /// The notification log, optionally for one trade, oldest first.
    pub fn notifications(&self, out_trade_no: Option<&str>) -> Vec<NotificationLog> {
        lock(&self.notifications)
            .iter()
            .filter(|n| out_trade_no.is_none_or(|no| n.out_trade_no == no))
            .cloned()
            .collect()
    }

    /// The payments and refunds of one China day, as bill rows need them: payments by
    /// success time, refunds (all but closed ones) by the time WeChat accepted them.
    pub fn day_activity(&self, day: chrono::NaiveDate) -> crate::bills::DayActivity {
        use crate::bills::{china_day, BillPayment, BillRefund, DayActivity};
        let parse = |t: &str| {
            DateTime::parse_from_rfc3339(t)
                .ok()
                .map(|t| t.with_timezone(&Utc))
        };
        let mut out = DayActivity::default();
        for t in lock(&self.trades).values() {
            let (Some(transaction_id), Some(paid_at)) = (
                t.transaction_id.clone(),
                t.success_time.as_deref().and_then(parse),
            ) else {
                continue;
            };
            let created = parse(&t.created_at).unwrap_or(paid_at);
            let payer = t.payer_openid.clone().unwrap_or_default();
            if china_day(paid_at) == day {
                out.payments.push(BillPayment {
                    out_trade_no: t.out_trade_no.clone(),
                    trade_no: transaction_id.clone(),
                    amount_fen: t.amount_total,
                    at: paid_at,
                    created_at: created,
                    subject: t.description.clone(),
                    trade_type: t.trade_type.as_str().to_string(),
                    payer: payer.clone(),
                });
            }
            for r in t
                .refunds
                .iter()
                .filter(|r| r.status != RefundStatus::Closed)
            {
                // WeChat bills a refund on the day it accepted it (商户退款受理成功时间),
                // with the status it had when the bill was made.
                let Some(at) = parse(&r.create_time) else {
                    continue;
                };
                if china_day(at) != day {
                    continue;
                }
                out.refunds.push(BillRefund {
                    out_trade_no: t.out_trade_no.clone(),
                    trade_no: transaction_id.clone(),
                    out_refund_no: r.out_refund_no.clone(),
                    refund_id: r.refund_id.clone(),
                    amount_fen: r.refund,
                    total_fen: r.total,
                    at,
                    created_at: parse(&r.create_time).unwrap_or(at),
                    subject: t.description.clone(),
                    status: r.status.as_str().to_string(),
                    trade_type: t.trade_type.as_str().to_string(),
                    payer: payer.clone(),
                });
            }
        }
        out
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    fn record_attempt(&self, id: &str, attempt: DeliveryAttempt, delivered: bool) {
        if let Some(log) = lock(&self.notifications).iter_mut().find(|n| n.id == id) {
            log.attempts.push(attempt);
            log.delivered |= delivered;
        }
    }
}

/// Mount the provider paths and the control API.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v3/pay/transactions/native", web::post().to(native))
        .route("/v3/pay/transactions/h5", web::post().to(h5))
        .route("/v3/pay/transactions/jsapi", web::post().to(jsapi))
        .route("/v3/pay/transactions/app", web::post().to(app))
        .route(
            "/v3/pay/transactions/out-trade-no/{out_trade_no}",
            web::get().to(query_by_out_trade_no),
        )
        .route(
            "/v3/pay/transactions/id/{transaction_id}",
            web::get().to(query_by_transaction_id),
        )
        .route(
            "/v3/pay/transactions/out-trade-no/{out_trade_no}/close",
            web::post().to(close),
        )
        .route("/v3/certificates", web::get().to(certificates))
        .route("/v3/bill/tradebill", web::get().to(trade_bill))
        .route("/v3/bill/fundflowbill", web::get().to(fundflow_bill))
        .route("/v3/billdownload/file", web::get().to(bill_download))
        .route("/__emulator/wechat/bill", web::get().to(control_bill))
        .route("/v3/refund/domestic/refunds", web::post().to(create_refund))
        .route(
            "/v3/refund/domestic/refunds/{out_refund_no}",
            web::get().to(query_refund),
        )
        .route("/__emulator/wechat/refunds", web::get().to(control_refunds))
        .route(
            "/__emulator/wechat/refunds/{out_refund_no}",
            web::get().to(control_refund),
        )
        .route(
            "/__emulator/wechat/refunds/{out_refund_no}/settle",
            web::post().to(control_settle_refund),
        )
        .route(
            "/__emulator/wechat/pay/{out_trade_no}",
            web::post().to(control_pay),
        )
        .route("/__emulator/wechat/trades", web::get().to(control_trades))
        .route(
            "/__emulator/wechat/trades/{out_trade_no}",
            web::get().to(control_trade),
        )
        .route(
            "/__emulator/wechat/trades/{out_trade_no}/age",
            web::post().to(control_age),
        )
        .route(
            "/__emulator/wechat/notifications",
            web::get().to(control_notifications),
        )
        .route(
            "/__emulator/wechat/notify/{out_trade_no}",
            web::post().to(control_notify),
        )
        .configure(complaints::configure);
}

// ---------------------------------------------------------------------------
// Errors

/// A non-2xx WeChat answer. Answers to authenticated requests are signed like 2xx
/// answers (SDKs only check signatures on 2xx, so this is harmless to them and lets a
/// careful client tell a real 404 from a proxy's); answers to requests that could not
/// be authenticated (401 SIGN_ERROR, injected 500s) are not: WeChat cannot know the key.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    detail: Option<Value>,
    /// Business error number WeChat appends to `Request-ID` (`...-268498688`).
    errno: Option<u32>,
    /// Raised before the request was authenticated: answered unsigned.
    unauthenticated: bool,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            detail: None,
            errno: None,
            unauthenticated: false,
        }
    }

    fn errno(mut self, errno: u32) -> Self {
        self.errno = Some(errno);
        self
    }

    fn unauthenticated(mut self) -> Self {
        self.unauthenticated = true;
        self
    }

    /// `PARAM_ERROR` in WeChat's wording: `输入源“/body/x”映射到字段“y”...`.
    fn param(location: &str, field: &str, label: &str, rule: &str, value: Option<&Value>) -> Self {
        let mut err = ApiError::new(
            StatusCode::BAD_REQUEST,
            "PARAM_ERROR",
            format!("输入源“/{location}/{field}”映射到字段“{label}”{rule}"),
        );
        err.detail =
            Some(json!({ "location": location, "value": value.cloned().unwrap_or(Value::Null) }));
        err.errno = Some(268_435_461);
        err
    }

    fn required(location: &str, field: &str, label: &str) -> Self {
        ApiError::param(
            location,
            field,
            label,
            "必填性规则校验失败，此字段为必填项",
            None,
        )
    }

    fn system() -> Self {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "SYSTEM_ERROR",
            "系统错误",
        )
    }

    fn sign() -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "SIGN_ERROR", "签名错误").errno(268_443_699)
    }

    fn order_not_exist() -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "ORDER_NOT_EXIST", "订单不存在").errno(268_512_771)
    }

    fn body_and_request_id(&self) -> (Vec<u8>, String) {
        let body = ApiErrorBody {
            code: self.code.to_string(),
            message: self.message.clone(),
            detail: self.detail.clone(),
        };
        let request_id = match self.errno {
            Some(n) => format!("{}-{n}", request_id()),
            None => request_id(),
        };
        (serde_json::to_vec(&body).unwrap_or_default(), request_id)
    }

    /// The unsigned answer.
    fn into_response(self) -> HttpResponse {
        let (body, request_id) = self.body_and_request_id();
        HttpResponse::build(self.status)
            .insert_header(("Request-ID", request_id))
            .content_type(JSON_UTF8)
            .body(body)
    }

    /// The answer signed like a 2xx one (authenticated requests only).
    fn into_signed_response(self, cfg: &WechatEmulatorConfig, mode: SerialMode) -> HttpResponse {
        let (body, request_id) = self.body_and_request_id();
        let mut resp = signed(cfg, mode, self.status, body);
        if let Ok(value) = header::HeaderValue::from_str(&request_id) {
            resp.headers_mut()
                .insert(header::HeaderName::from_static("request-id"), value);
        }
        resp
    }
}

/// Turn a handler's result into the answer: errors to authenticated requests are
/// signed; the `bad_signature_next` fault spoils the signature of a 2xx answer.
fn respond(
    state: &State,
    req: &HttpRequest,
    result: Result<HttpResponse, ApiError>,
) -> HttpResponse {
    let cfg = &state.config.wechat;
    match result {
        Ok(mut resp) => {
            if resp.status().is_success() && state.faults.take_bad_signature() {
                spoil_signature(&mut resp);
            }
            resp
        }
        Err(e) if e.unauthenticated => e.into_response(),
        Err(e) => e.into_signed_response(cfg, answer_mode(cfg, req)),
    }
}

/// Replace `Wechatpay-Signature` by one that does not verify (one bit flipped).
fn spoil_signature(resp: &mut HttpResponse) {
    let name = header::HeaderName::from_static("wechatpay-signature");
    let spoiled = resp
        .headers()
        .get(&name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| STANDARD.decode(v).ok())
        .map(|mut raw| {
            if let Some(b) = raw.first_mut() {
                *b ^= 0x01;
            }
            STANDARD.encode(raw)
        });
    if let Some(value) = spoiled.and_then(|v| header::HeaderValue::from_str(&v).ok()) {
        resp.headers_mut().insert(name, value);
    }
}

/// `Request-ID`: WeChat's are long uppercase hex strings.
fn request_id() -> String {
    let mut rng = rand::thread_rng();
    (0..52)
        .map(|_| char::from(b"0123456789ABCDEF"[rng.gen_range(0..16)]))
        .collect()
}

// ---------------------------------------------------------------------------
// Authentication, faults and signed answers

/// Apply request faults, authenticate, and return the body text and the serial
/// mode the answer must be signed in.
async fn gate(
    state: &State,
    req: &HttpRequest,
    body: &[u8],
) -> Result<(String, SerialMode), ApiError> {
    match state.faults.next_request_fault() {
        RequestFault::None => {}
        RequestFault::Fail => return Err(ApiError::system().unauthenticated()),
        RequestFault::Timeout(ms) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            return Err(ApiError::system().unauthenticated());
        }
    }
    let cfg = &state.config.wechat;
    let body = std::str::from_utf8(body)
        .map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "INVALID_REQUEST",
                "请求体不是合法的UTF-8编码",
            )
            .unauthenticated()
        })?
        .to_string();
    authenticate(cfg, req, &body).map_err(ApiError::unauthenticated)?;
    Ok((body, answer_mode(cfg, req)))
}

fn authenticate(cfg: &WechatEmulatorConfig, req: &HttpRequest, body: &str) -> Result<(), ApiError> {
    let format_error = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "SIGN_ERROR",
            "Http头Authorization值格式错误，请参考《微信支付商户REST API签名规则》",
        )
    };
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(format_error)?;
    // The signature covers the path and query exactly as sent (no decoding).
    let canonical = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path(), |pq| pq.as_str());
    let params = proto::verify_authorization(
        &cfg.merchant_public_key,
        header,
        req.method().as_str(),
        canonical,
        body,
        Utc::now().timestamp(),
    )
    .map_err(|e| match e {
        ProtoError::Malformed(_) => format_error(),
        _ => ApiError::sign(),
    })?;
    if params.mchid != cfg.mch_id || !params.serial_no.eq_ignore_ascii_case(&cfg.merchant_serial) {
        return Err(ApiError::sign());
    }
    Ok(())
}

/// The key an answer is signed under: always the public key for a public-key merchant
/// ([`WechatKeyMode::PublicKey`]); for a certificate merchant, chosen by the request's
/// `Wechatpay-Serial`.
///
/// An absent (or empty) header gets the platform certificate: during the switch to
/// public keys WeChat answers with the public key only for requests that name its
/// id (pay.weixin.qq.com/doc/v3/merchant/4012154180), and certificate-mode clients
/// (e.g. the wechatpayv3 Python SDK) send no header at all. Any other value is
/// answered in public-key mode.
fn answer_mode(cfg: &WechatEmulatorConfig, req: &HttpRequest) -> SerialMode {
    if cfg.mode == WechatKeyMode::PublicKey {
        // A public-key merchant has no certificate to be answered with, whatever the
        // request names (wechatpay-go and others send no Wechatpay-Serial at all).
        return SerialMode::PublicKey;
    }
    let serial = req
        .headers()
        .get("Wechatpay-Serial")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or_default();
    if serial.is_empty() || serial.eq_ignore_ascii_case(&cfg.platform_cert.serial_hex) {
        SerialMode::Certificate
    } else {
        SerialMode::PublicKey
    }
}

fn serial_for(cfg: &WechatEmulatorConfig, mode: SerialMode) -> &str {
    match mode {
        SerialMode::PublicKey => &cfg.public_key_id,
        SerialMode::Certificate => &cfg.platform_cert.serial_hex,
    }
}

/// A signed 2xx answer; `body` may be empty (204).
fn signed(
    cfg: &WechatEmulatorConfig,
    mode: SerialMode,
    status: StatusCode,
    body: Vec<u8>,
) -> HttpResponse {
    let timestamp = Utc::now().timestamp().to_string();
    let nonce = proto::nonce_str(32);
    let signature = match proto::sign_response(&cfg.platform_key, &timestamp, &nonce, &body) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "emulator cannot sign a WeChat answer");
            return ApiError::system().into_response();
        }
    };
    let mut builder = HttpResponse::build(status);
    builder
        .insert_header(("Request-ID", request_id()))
        .insert_header(("Wechatpay-Timestamp", timestamp))
        .insert_header(("Wechatpay-Nonce", nonce))
        .insert_header(("Wechatpay-Signature", signature))
        .insert_header(("Wechatpay-Serial", serial_for(cfg, mode).to_string()))
        // WeChat sends it on answers too; wechatpayv3 refuses answers without it.
        .insert_header(("Wechatpay-Signature-Type", proto::SIGNATURE_TYPE));
    if body.is_empty() {
        builder.finish()
    } else {
        builder.content_type(JSON_UTF8).body(body)
    }
}

fn signed_json<T: Serialize>(
    cfg: &WechatEmulatorConfig,
    mode: SerialMode,
    value: &T,
) -> Result<HttpResponse, ApiError> {
    let body = serde_json::to_vec(value).map_err(|_| ApiError::system())?;
    Ok(signed(cfg, mode, StatusCode::OK, body))
}

// ---------------------------------------------------------------------------
// Prepay

async fn native(state: State, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    respond(
        &state,
        &req,
        prepay(&state, &req, &body, TradeType::Native).await,
    )
}

async fn h5(state: State, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    respond(
        &state,
        &req,
        prepay(&state, &req, &body, TradeType::Mweb).await,
    )
}

async fn jsapi(state: State, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    respond(
        &state,
        &req,
        prepay(&state, &req, &body, TradeType::Jsapi).await,
    )
}

async fn app(state: State, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    respond(
        &state,
        &req,
        prepay(&state, &req, &body, TradeType::App).await,
    )
}

async fn prepay(
    state: &State,
    req: &HttpRequest,
    body: &[u8],
    trade_type: TradeType,
) -> Result<HttpResponse, ApiError> {
    let cfg = &state.config.wechat;
    let (text, mode) = gate(state, req, body).await?;
    let params: Value = serde_json::from_str(&text).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "PARAM_ERROR",
            "请求体无法解析为JSON",
        )
    })?;
    let now = Utc::now();
    let order = validate_prepay(cfg, trade_type, &params)?;
    let answer = {
        let mut trades = lock(&state.wechat.trades);
        match trades.get_mut(&order.out_trade_no) {
            Some(existing) => {
                existing.settle_expiry(now);
                match existing.trade_state {
                    // The official troubleshooting guide names these ORDER_PAID
                    // (268498689 该订单已支付) and ORDER_CLOSED; our client maps both
                    // spellings.
                    TradeState::Success | TradeState::Refund => {
                        return Err(ApiError::new(
                            StatusCode::BAD_REQUEST,
                            "ORDER_PAID",
                            "该订单已支付",
                        )
                        .errno(268_498_689))
                    }
                    TradeState::Closed => {
                        return Err(ApiError::new(
                            StatusCode::BAD_REQUEST,
                            "ORDER_CLOSED",
                            "订单已关闭",
                        ))
                    }
                    TradeState::Notpay => {}
                }
                if existing.trade_type != trade_type || existing.request != params {
                    // Reference §7: a changed re-post is OUT_TRADE_NO_USED (403),
                    // business number 268498688.
                    return Err(ApiError::new(
                        StatusCode::FORBIDDEN,
                        "OUT_TRADE_NO_USED",
                        "请求重入时，参数与首次请求时不一致",
                    )
                    .errno(268_498_688));
                }
                existing.prepay.clone()
            }
            None => {
                let answer = prepay_answer(trade_type, now);
                let mut trade = order.into_trade(trade_type, params, answer.clone(), now);
                trade.prepay_mode = mode;
                trades.insert(trade.out_trade_no.clone(), trade);
                answer
            }
        }
    };
    signed_json(cfg, mode, &answer)
}

/// The validated fields of a prepay request.
struct NewOrder {
    appid: String,
    mchid: String,
    description: String,
    out_trade_no: String,
    notify_url: String,
    total: i64,
    time_expire: Option<(String, DateTime<FixedOffset>)>,
    attach: Option<String>,
    payer_openid: Option<String>,
}

impl NewOrder {
    fn into_trade(
        self,
        trade_type: TradeType,
        request: Value,
        prepay: Value,
        now: DateTime<Utc>,
    ) -> Trade {
        let created = now.with_timezone(&china());
        let limit = created + chrono::Duration::days(DEFAULT_VALIDITY_DAYS);
        let expires_at = self.time_expire.as_ref().map_or(limit, |(_, t)| *t);
        let closes_at = expires_at.max(limit);
        Trade {
            out_trade_no: self.out_trade_no,
            trade_type,
            trade_state: TradeState::Notpay,
            appid: self.appid,
            mchid: self.mchid,
            description: self.description,
            amount_total: self.total,
            notify_url: self.notify_url,
            time_expire: self.time_expire.map(|(text, _)| text),
            attach: self.attach,
            payer_openid: self.payer_openid,
            transaction_id: None,
            success_time: None,
            created_at: rfc3339(created),
            expired: false,
            refunds: Vec::new(),
            prepay,
            request,
            expires_at,
            closes_at,
            notify_mode: SerialMode::PublicKey,
            prepay_mode: SerialMode::PublicKey,
        }
    }
}

/// Top-level members the direct-merchant prepay endpoints accept.
const PREPAY_FIELDS: [&str; 14] = [
    "appid",
    "mchid",
    "description",
    "out_trade_no",
    "time_expire",
    "attach",
    "notify_url",
    "goods_tag",
    "support_fapiao",
    "amount",
    "payer",
    "detail",
    "scene_info",
    "settle_info",
];

fn validate_prepay(
    cfg: &WechatEmulatorConfig,
    trade_type: TradeType,
    params: &Value,
) -> Result<NewOrder, ApiError> {
    let obj = params.as_object().ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "PARAM_ERROR",
            "请求体必须是JSON对象",
        )
    })?;
    if let Some(extra) = obj.keys().find(|k| !PREPAY_FIELDS.contains(&k.as_str())) {
        let mut err = ApiError::new(
            StatusCode::BAD_REQUEST,
            "PARAM_ERROR",
            format!("参数中含有非法的额外参数“{extra}”"),
        )
        .errno(270_924_358);
        err.detail = Some(json!({ "location": "body", "value": extra }));
        return Err(err);
    }
    let appid = required_str(obj, "appid", "应用ID", 32)?;
    let mchid = required_str(obj, "mchid", "直连商户号", 32)?;
    let description = required_str(obj, "description", "商品描述", 127)?;
    let out_trade_no = required_str(obj, "out_trade_no", "商户订单号", 32)?;
    let notify_url = required_str(obj, "notify_url", "通知地址", 256)?;
    if mchid != cfg.mch_id {
        return Err(ApiError::param(
            "body",
            "mchid",
            "直连商户号",
            "与请求头中的商户号不一致",
            obj.get("mchid"),
        ));
    }
    if appid != cfg.app_id {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "APPID_MCHID_NOT_MATCH",
            "appid和mch_id不匹配",
        )
        .errno(268_445_527));
    }
    let trade_no_ok = (6..=32).contains(&out_trade_no.len())
        && out_trade_no
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-|*".contains(&b));
    if !trade_no_ok {
        return Err(ApiError::param(
            "body",
            "out_trade_no",
            "商户订单号",
            "字符串规则校验失败，长度须为6-32且只能是数字、大小写字母_-|*",
            obj.get("out_trade_no"),
        ));
    }
    if !valid_notify_url(&notify_url) {
        return Err(ApiError::param(
            "body",
            "notify_url",
            "通知地址",
            NOTIFY_URL_RULE,
            obj.get("notify_url"),
        ));
    }
    let amount = obj
        .get("amount")
        .ok_or_else(|| ApiError::required("body", "amount", "订单金额"))?
        .as_object()
        .ok_or_else(|| {
            ApiError::param(
                "body",
                "amount",
                "订单金额",
                "类型校验失败",
                obj.get("amount"),
            )
        })?;
    let total_value = amount
        .get("total")
        .ok_or_else(|| ApiError::required("body", "amount/total", "总金额"))?;
    let total = total_value
        .as_i64()
        .filter(|t| (1..=i64::from(i32::MAX)).contains(t))
        .ok_or_else(|| {
            ApiError::param(
                "body",
                "amount/total",
                "总金额",
                "取值规则校验失败，须为不小于1的整数（单位：分）",
                Some(total_value),
            )
        })?;
    if let Some(currency) = amount.get("currency") {
        if currency.as_str() != Some("CNY") {
            return Err(ApiError::param(
                "body",
                "amount/currency",
                "货币类型",
                "取值规则校验失败，仅支持CNY",
                Some(currency),
            ));
        }
    }
    let time_expire = match obj.get("time_expire") {
        None => None,
        Some(v) => {
            let text = v.as_str().unwrap_or_default();
            let parsed = DateTime::parse_from_rfc3339(text).map_err(|_| {
                ApiError::param(
                    "body",
                    "time_expire",
                    "交易结束时间",
                    "格式校验失败，须为RFC3339格式",
                    Some(v),
                )
            })?;
            Some((text.to_string(), parsed))
        }
    };
    let attach = optional_str(obj, "attach", "附加数据", 128)?;
    let payer_openid = match obj.get("payer") {
        Some(Value::Object(payer)) => optional_str(payer, "openid", "用户标识", 128)?,
        Some(other) => {
            return Err(ApiError::param(
                "body",
                "payer",
                "支付者",
                "类型校验失败",
                Some(other),
            ))
        }
        None => None,
    };
    match trade_type {
        TradeType::Jsapi if payer_openid.as_deref().unwrap_or_default().is_empty() => {
            return Err(ApiError::required("body", "payer/openid", "用户标识").errno(268_501_013));
        }
        TradeType::Mweb => check_h5_scene(obj)?,
        _ => {}
    }
    Ok(NewOrder {
        appid,
        mchid,
        description,
        out_trade_no,
        notify_url,
        total,
        time_expire,
        attach,
        payer_openid,
    })
}

fn check_h5_scene(obj: &Map<String, Value>) -> Result<(), ApiError> {
    let scene = obj
        .get("scene_info")
        .and_then(Value::as_object)
        .ok_or_else(|| ApiError::required("body", "scene_info", "场景信息"))?;
    let ip = scene
        .get("payer_client_ip")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::required("body", "scene_info/payer_client_ip", "用户终端IP"))?;
    if ip.parse::<std::net::IpAddr>().is_err() {
        return Err(ApiError::param(
            "body",
            "scene_info/payer_client_ip",
            "用户终端IP",
            "格式校验失败",
            scene.get("payer_client_ip"),
        ));
    }
    let kind = scene
        .get("h5_info")
        .and_then(Value::as_object)
        .and_then(|h5| h5.get("type"))
        .ok_or_else(|| ApiError::required("body", "scene_info/h5_info/type", "场景类型"))?;
    if !matches!(kind.as_str(), Some("Wap" | "iOS" | "Android")) {
        return Err(ApiError::param(
            "body",
            "scene_info/h5_info/type",
            "场景类型",
            "取值规则校验失败，须为Wap、iOS或Android",
            Some(kind),
        ));
    }
    Ok(())
}

fn required_str(
    obj: &Map<String, Value>,
    field: &str,
    label: &str,
    max_bytes: usize,
) -> Result<String, ApiError> {
    optional_str(obj, field, label, max_bytes)?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::required("body", field, label))
}

/// A string member of at most `max_bytes` UTF-8 bytes (WeChat's `string(n)`).
fn optional_str(
    obj: &Map<String, Value>,
    field: &str,
    label: &str,
    max_bytes: usize,
) -> Result<Option<String>, ApiError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() <= max_bytes => Ok(Some(s.clone())),
        Some(v @ Value::String(s)) => Err(ApiError::param(
            "body",
            field,
            label,
            &format!(
                "字符串规则校验失败，字节数 {}，大于最大值 {max_bytes}",
                s.len()
            ),
            Some(v),
        )),
        Some(v) => Err(ApiError::param(
            "body",
            field,
            label,
            "类型校验失败，须为字符串",
            Some(v),
        )),
    }
}

/// WeChat's rule for `notify_url`: an http(s) URL with a host and no parameters
/// ("不能携带参数"): a query string (or fragment) is refused at prepay.
fn valid_notify_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(rest) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
            !host.is_empty() && !url.contains(char::is_whitespace) && !url.contains(['?', '#'])
        }
        None => false,
    }
}

fn prepay_answer(trade_type: TradeType, now: DateTime<Utc>) -> Value {
    let prepay_id = format!(
        "wx{}{}",
        now.with_timezone(&china()).format("%d%H%M%S%Y%m"),
        random_from(b"0123456789abcdef", 20)
    );
    match trade_type {
        TradeType::Native => json!({
            "code_url": format!(
                "weixin://wxpay/bizpayurl?pr={}",
                random_from(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", 9)
            )
        }),
        TradeType::Mweb => json!({
            "h5_url": format!(
                "https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb?prepay_id={prepay_id}&package={}",
                random_from(b"0123456789", 10)
            )
        }),
        TradeType::Jsapi | TradeType::App => json!({ "prepay_id": prepay_id }),
    }
}

// ---------------------------------------------------------------------------
// Query, close, certificates

#[derive(Deserialize)]
struct MchidQuery {
    mchid: Option<String>,
}

fn check_mchid(
    cfg: &WechatEmulatorConfig,
    location: &str,
    mchid: Option<&str>,
) -> Result<(), ApiError> {
    match mchid {
        None | Some("") => Err(ApiError::required(location, "mchid", "直连商户号")),
        Some(m) if m != cfg.mch_id => Err(ApiError::param(
            location,
            "mchid",
            "直连商户号",
            "与请求头中的商户号不一致",
            Some(&Value::String(m.to_string())),
        )),
        Some(_) => Ok(()),
    }
}

fn query_mchid(req: &HttpRequest) -> Option<String> {
    web::Query::<MchidQuery>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.into_inner().mchid)
}

async fn query_by_out_trade_no(
    state: State,
    req: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    respond(
        &state,
        &req,
        async {
            let cfg = &state.config.wechat;
            let (_, mode) = gate(&state, &req, &[]).await?;
            check_mchid(cfg, "query", query_mchid(&req).as_deref())?;
            let trade = state
                .wechat
                .trade(&path)
                .ok_or_else(ApiError::order_not_exist)?;
            signed_json(cfg, mode, &trade.transaction())
        }
        .await,
    )
}

async fn query_by_transaction_id(
    state: State,
    req: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    respond(
        &state,
        &req,
        async {
            let cfg = &state.config.wechat;
            let (_, mode) = gate(&state, &req, &[]).await?;
            check_mchid(cfg, "query", query_mchid(&req).as_deref())?;
            let trade = lock(&state.wechat.trades)
                .values()
                .find(|t| t.transaction_id.as_deref() == Some(path.as_str()))
                .cloned()
                .ok_or_else(ApiError::order_not_exist)?;
            signed_json(cfg, mode, &trade.transaction())
        }
        .await,
    )
}

#[derive(Deserialize)]
struct CloseBody {
    mchid: Option<String>,
}

async fn close(
    state: State,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    respond(
        &state,
        &req,
        async {
            let cfg = &state.config.wechat;
            let (text, mode) = gate(&state, &req, &body).await?;
            let parsed: CloseBody = serde_json::from_str(&text).map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "PARAM_ERROR",
                    "请求体无法解析为JSON",
                )
            })?;
            check_mchid(cfg, "body", parsed.mchid.as_deref())?;
            {
                let mut trades = lock(&state.wechat.trades);
                let trade = trades
                    .get_mut(path.as_str())
                    .ok_or_else(ApiError::order_not_exist)?;
                trade.settle_expiry(Utc::now());
                match trade.trade_state {
                    // Official troubleshooting guide: closing a paid order answers
                    // ORDER_PAID (268449538 订单已支付).
                    TradeState::Success | TradeState::Refund => {
                        return Err(ApiError::new(
                            StatusCode::BAD_REQUEST,
                            "ORDER_PAID",
                            "订单已支付",
                        )
                        .errno(268_449_538))
                    }
                    // Closing is re-entrant.
                    TradeState::Notpay | TradeState::Closed => {
                        trade.trade_state = TradeState::Closed;
                    }
                }
            }
            Ok(signed(cfg, mode, StatusCode::NO_CONTENT, Vec::new()))
        }
        .await,
    )
}

async fn certificates(state: State, req: HttpRequest) -> HttpResponse {
    respond(
        &state,
        &req,
        async {
            let cfg = &state.config.wechat;
            gate(&state, &req, &[]).await?;
            if cfg.mode == WechatKeyMode::PublicKey {
                // What WeChat answers a merchant that only has the public key.
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "RESOURCE_NOT_EXISTS",
                    "无可用的平台证书，请在商户平台-API安全申请使用微信支付公钥。可查看指引https://pay.weixin.qq.com/doc/v3/merchant/4012153196",
                ));
            }
            let cert = &cfg.platform_cert;
            let encrypted = EncryptedCertificate::seal(
                cfg.api_v3_key.expose().as_bytes(),
                &proto::nonce_str(12),
                &cert.pem,
            )
            .map_err(|e| {
                tracing::error!(error = %e, "emulator cannot seal the platform certificate");
                ApiError::system()
            })?;
            let list = CertificateList {
                data: vec![CertificateEntry {
                    serial_no: cert.serial_hex.clone(),
                    effective_time: rfc3339(cert.not_before.with_timezone(&china())),
                    expire_time: rfc3339(cert.not_after.with_timezone(&china())),
                    encrypt_certificate: encrypted,
                }],
            };
            // Always signed by the certificate it lists: clients (wechatpay-go's
            // downloader, ours) verify the download with the certificates inside it.
            signed_json(cfg, SerialMode::Certificate, &list)
        }
        .await,
    )
}

// ---------------------------------------------------------------------------
// Control API: the buyer pays; inspection; manual resend

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PayControl {
    openid: Option<String>,
    serial_mode: Option<SerialMode>,
}

fn control_error(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "code": code, "message": message }))
}

/// The buyer scans and pays: `NOTPAY -> SUCCESS`, then the notification goes out.
async fn control_pay(state: State, path: web::Path<String>, body: web::Bytes) -> HttpResponse {
    let control: PayControl = if body.iter().all(u8::is_ascii_whitespace) {
        PayControl::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(c) => c,
            Err(e) => {
                return control_error(StatusCode::BAD_REQUEST, "INVALID_BODY", &e.to_string())
            }
        }
    };
    let cfg = &state.config.wechat;
    if cfg.mode == WechatKeyMode::PublicKey && control.serial_mode == Some(SerialMode::Certificate)
    {
        return control_error(
            StatusCode::CONFLICT,
            "NO_PLATFORM_CERTIFICATE",
            "the merchant has the WeChat Pay public key only (EMULATOR_WECHAT_MODE=public_key): notifications are signed with it",
        );
    }
    let now = Utc::now();
    let (tx, log) = {
        let mut trades = lock(&state.wechat.trades);
        let Some(trade) = trades.get_mut(path.as_str()) else {
            return control_error(StatusCode::NOT_FOUND, "ORDER_NOT_EXIST", "订单不存在");
        };
        trade.settle_expiry(now);
        match trade.trade_state {
            TradeState::Success | TradeState::Refund => {
                return HttpResponse::Ok().json(trade.transaction())
            }
            TradeState::Closed => {
                return control_error(StatusCode::CONFLICT, "ORDER_CLOSED", "订单已关闭")
            }
            // Past time_expire the buyer's WeChat refuses to pay (the trade stays NOTPAY).
            TradeState::Notpay if trade.expired => {
                return control_error(StatusCode::CONFLICT, "ORDER_EXPIRED", "订单已失效")
            }
            TradeState::Notpay => {}
        }
        let transaction_id = loop {
            let id = format!("4200{}", random_from(b"0123456789", 24));
            if !trades
                .values()
                .any(|t| t.transaction_id.as_deref() == Some(&id))
            {
                break id;
            }
        };
        let Some(trade) = trades.get_mut(path.as_str()) else {
            return control_error(StatusCode::NOT_FOUND, "ORDER_NOT_EXIST", "订单不存在");
        };
        trade.trade_state = TradeState::Success;
        trade.transaction_id = Some(transaction_id);
        trade.success_time = Some(rfc3339(now.with_timezone(&china())));
        if trade.payer_openid.is_none() {
            trade.payer_openid = Some(control.openid.clone().unwrap_or_else(random_openid));
        }
        trade.notify_mode = control.serial_mode.unwrap_or(trade.prepay_mode);
        let tx = trade.transaction();
        match success_notification(cfg, trade, &tx, now) {
            Ok(log) => (tx, log),
            Err(e) => {
                tracing::error!(error = %e, "emulator cannot build a WeChat notification");
                return control_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "SYSTEM_ERROR",
                    "系统错误",
                );
            }
        }
    };
    let id = log.id.clone();
    lock(&state.wechat.notifications).push(log);
    tokio::spawn(deliver_on_schedule(
        state.clone(),
        id,
        state.wechat.generation(),
    ));
    HttpResponse::Ok().json(tx)
}

async fn control_trades(state: State) -> HttpResponse {
    let now = Utc::now();
    let mut trades: Vec<Trade> = lock(&state.wechat.trades)
        .values_mut()
        .map(|t| {
            t.settle_expiry(now);
            t.clone()
        })
        .collect();
    trades.sort_by(|a, b| a.created_at.cmp(&b.created_at));
    HttpResponse::Ok().json(trades)
}

#[derive(Debug, Deserialize)]
struct AgeControl {
    /// Seconds that pass for the trade.
    secs: i64,
}

/// `POST /__emulator/wechat/trades/{out_trade_no}/age` with `{"secs": N}`: N seconds
/// pass for this trade (its creation, `time_expire` and 7-day limit move back), so a
/// test can take it past `time_expire` or the 7-day limit. Answers the trade.
async fn control_age(
    state: State,
    path: web::Path<String>,
    body: web::Json<AgeControl>,
) -> HttpResponse {
    if !(0..=30 * 86_400).contains(&body.secs) {
        return control_error(
            StatusCode::BAD_REQUEST,
            "INVALID_BODY",
            "secs must be between 0 and 2592000",
        );
    }
    let mut trades = lock(&state.wechat.trades);
    let Some(trade) = trades.get_mut(path.as_str()) else {
        return control_error(StatusCode::NOT_FOUND, "ORDER_NOT_EXIST", "订单不存在");
    };
    trade.age(body.secs);
    trade.settle_expiry(Utc::now());
    HttpResponse::Ok().json(&*trade)
}

async fn control_trade(state: State, path: web::Path<String>) -> HttpResponse {
    match state.wechat.trade(&path) {
        Some(trade) => HttpResponse::Ok().json(trade),
        None => control_error(StatusCode::NOT_FOUND, "ORDER_NOT_EXIST", "订单不存在"),
    }
}

#[derive(Deserialize)]
struct NotificationsQuery {
    out_trade_no: Option<String>,
}

async fn control_notifications(
    state: State,
    query: web::Query<NotificationsQuery>,
) -> HttpResponse {
    HttpResponse::Ok().json(state.wechat.notifications(query.out_trade_no.as_deref()))
}

/// Send the trade's success notification once more (same `id`): WeChat does
/// deliver duplicates, and merchants must absorb them.
async fn control_notify(state: State, path: web::Path<String>) -> HttpResponse {
    let latest = lock(&state.wechat.notifications)
        .iter()
        .rev()
        .find(|n| n.out_trade_no == *path && n.out_refund_no.is_none() && n.complaint_id.is_none())
        .cloned();
    let Some(log) = latest else {
        return match state.wechat.trade(&path) {
            None => control_error(StatusCode::NOT_FOUND, "ORDER_NOT_EXIST", "订单不存在"),
            Some(_) => control_error(StatusCode::CONFLICT, "ORDER_NOT_PAID", "订单未支付"),
        };
    };
    let (_, made) = attempt(&state, &log).await;
    let after = state
        .wechat
        .notifications(Some(&path))
        .into_iter()
        .find(|n| n.id == log.id);
    match after {
        Some(mut updated) => {
            // Only the attempts this call made: a scheduled delivery may be
            // in flight beside it.
            updated.attempts = made;
            HttpResponse::Ok().json(updated)
        }
        None => control_error(StatusCode::GONE, "RESET", "the emulator was reset"),
    }
}

// ---------------------------------------------------------------------------
// Refunds

/// A refund's life: `PROCESSING -> SUCCESS | ABNORMAL | CLOSED`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RefundStatus {
    /// Accepted, money on its way back.
    Processing,
    /// The money is back with the payer.
    Success,
    /// Abandoned; the money stays with the merchant.
    Closed,
    /// Stuck (e.g. the payer's card was cancelled); needs the merchant's attention.
    Abnormal,
}

impl RefundStatus {
    /// The `status` / `refund_status` wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            RefundStatus::Processing => "PROCESSING",
            RefundStatus::Success => "SUCCESS",
            RefundStatus::Closed => "CLOSED",
            RefundStatus::Abnormal => "ABNORMAL",
        }
    }

    /// `event_type` and `summary` of the notification a final state sends.
    fn event(self) -> Option<(&'static str, &'static str)> {
        match self {
            RefundStatus::Processing => None,
            RefundStatus::Success => Some(("REFUND.SUCCESS", "退款成功")),
            RefundStatus::Closed => Some(("REFUND.CLOSED", "退款关闭")),
            RefundStatus::Abnormal => Some(("REFUND.ABNORMAL", "退款异常")),
        }
    }
}

/// One refund as the emulator holds it.
#[derive(Clone, Debug, Serialize)]
pub struct Refund {
    /// WeChat's refund number (`50` + 27 digits).
    pub refund_id: String,
    pub out_refund_no: String,
    pub out_trade_no: String,
    pub transaction_id: String,
    pub reason: Option<String>,
    /// Where the `REFUND.*` notification goes; none when the request named none.
    pub notify_url: Option<String>,
    /// `funds_account` as requested (`AVAILABLE` / `UNSETTLED`).
    pub funds_account: Option<String>,
    /// Fen refunded by this refund.
    pub refund: i64,
    /// The order total, fen.
    pub total: i64,
    pub status: RefundStatus,
    /// How the refund ends once it leaves `PROCESSING` (the ABNORMAL fault sets it).
    pub outcome: RefundStatus,
    /// RFC 3339 (+08:00).
    pub create_time: String,
    /// RFC 3339 (+08:00), once `SUCCESS`.
    pub success_time: Option<String>,
    /// Serial mode of the request, reused for its notification.
    #[serde(skip)]
    notify_mode: SerialMode,
}

impl Refund {
    /// The `Refund` object the create and query endpoints answer
    /// (wechatpay-go `refunddomestic.Refund`).
    fn answer(&self) -> Value {
        let mut answer = json!({
            "refund_id": self.refund_id,
            "out_refund_no": self.out_refund_no,
            "transaction_id": self.transaction_id,
            "out_trade_no": self.out_trade_no,
            "channel": "ORIGINAL",
            "user_received_account": USER_RECEIVED_ACCOUNT,
            "create_time": self.create_time,
            "status": self.status.as_str(),
            "funds_account": self.funds_account.as_deref().unwrap_or("UNSETTLED"),
            "amount": {
                "total": self.total,
                "refund": self.refund,
                "from": [],
                "payer_total": self.total,
                "payer_refund": self.refund,
                "settlement_refund": self.refund,
                "settlement_total": self.total,
                "discount_refund": 0,
                "currency": "CNY",
                "refund_fee": 0,
            },
            "promotion_detail": [],
        });
        if let Some(at) = &self.success_time {
            answer["success_time"] = json!(at);
        }
        answer
    }

    /// The decrypted resource of its `REFUND.*` notification.
    fn resource(&self, mchid: &str) -> RefundResource {
        RefundResource {
            mchid: mchid.to_string(),
            transaction_id: self.transaction_id.clone(),
            out_trade_no: self.out_trade_no.clone(),
            refund_id: self.refund_id.clone(),
            out_refund_no: self.out_refund_no.clone(),
            refund_status: self.status.as_str().to_string(),
            success_time: self.success_time.clone(),
            user_received_account: Some(USER_RECEIVED_ACCOUNT.to_string()),
            amount: RefundResourceAmount {
                total: self.total,
                refund: self.refund,
                payer_total: self.total,
                payer_refund: self.refund,
            },
        }
    }
}

/// The validated members of a refund request.
struct RefundAsk {
    out_refund_no: String,
    out_trade_no: Option<String>,
    transaction_id: Option<String>,
    reason: Option<String>,
    notify_url: Option<String>,
    funds_account: Option<String>,
    refund: i64,
    total: i64,
}

impl RefundAsk {
    fn names(&self, trade: &Trade) -> bool {
        self.out_trade_no
            .as_ref()
            .is_none_or(|no| *no == trade.out_trade_no)
            && self
                .transaction_id
                .as_ref()
                .is_none_or(|id| trade.transaction_id.as_ref() == Some(id))
    }

    /// A repeat of an existing refund (same order, same amounts).
    fn repeats(&self, refund: &Refund) -> bool {
        self.out_trade_no
            .as_ref()
            .is_none_or(|no| *no == refund.out_trade_no)
            && self
                .transaction_id
                .as_ref()
                .is_none_or(|id| *id == refund.transaction_id)
            && self.refund == refund.refund
            && self.total == refund.total
    }
}

/// Top-level members `POST /v3/refund/domestic/refunds` accepts (direct merchants).
const REFUND_FIELDS: [&str; 8] = [
    "transaction_id",
    "out_trade_no",
    "out_refund_no",
    "reason",
    "notify_url",
    "funds_account",
    "amount",
    "goods_detail",
];

fn invalid_request(message: &str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "INVALID_REQUEST", message)
}

fn validate_refund(params: &Value) -> Result<RefundAsk, ApiError> {
    let obj = params.as_object().ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "PARAM_ERROR",
            "请求体必须是JSON对象",
        )
    })?;
    if let Some(extra) = obj.keys().find(|k| !REFUND_FIELDS.contains(&k.as_str())) {
        let mut err = ApiError::new(
            StatusCode::BAD_REQUEST,
            "PARAM_ERROR",
            format!("参数中含有非法的额外参数“{extra}”"),
        );
        err.detail = Some(json!({ "location": "body", "value": extra }));
        return Err(err);
    }
    let out_refund_no = required_str(obj, "out_refund_no", "商户退款单号", 64)?;
    if !out_refund_no
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_-|*@".contains(&b))
    {
        return Err(ApiError::param(
            "body",
            "out_refund_no",
            "商户退款单号",
            "字符串规则校验失败，只能是数字、大小写字母_-|*@",
            obj.get("out_refund_no"),
        ));
    }
    let out_trade_no =
        optional_str(obj, "out_trade_no", "商户订单号", 32)?.filter(|s| !s.is_empty());
    let transaction_id =
        optional_str(obj, "transaction_id", "微信支付订单号", 32)?.filter(|s| !s.is_empty());
    if out_trade_no.is_none() && transaction_id.is_none() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "PARAM_ERROR",
            "transaction_id和out_trade_no必须二选一进行传参",
        ));
    }
    // string[1, 80]: characters, not bytes.
    let reason = optional_str(obj, "reason", "退款原因", 80 * 4)?.filter(|s| !s.is_empty());
    if reason.as_ref().is_some_and(|r| r.chars().count() > 80) {
        return Err(ApiError::param(
            "body",
            "reason",
            "退款原因",
            "字符串规则校验失败，长度不能超过80",
            obj.get("reason"),
        ));
    }
    let notify_url = optional_str(obj, "notify_url", "退款结果回调url", 256)?;
    if notify_url.as_deref().is_some_and(|u| !valid_notify_url(u)) {
        return Err(ApiError::param(
            "body",
            "notify_url",
            "退款结果回调url",
            NOTIFY_URL_RULE,
            obj.get("notify_url"),
        ));
    }
    let funds_account = optional_str(obj, "funds_account", "退款资金来源", 32)?;
    if funds_account
        .as_deref()
        .is_some_and(|f| !matches!(f, "AVAILABLE" | "UNSETTLED"))
    {
        return Err(ApiError::param(
            "body",
            "funds_account",
            "退款资金来源",
            "取值规则校验失败",
            obj.get("funds_account"),
        ));
    }
    let amount = obj
        .get("amount")
        .ok_or_else(|| ApiError::required("body", "amount", "金额信息"))?
        .as_object()
        .ok_or_else(|| {
            ApiError::param(
                "body",
                "amount",
                "金额信息",
                "类型校验失败",
                obj.get("amount"),
            )
        })?;
    let fen = |field: &str, label: &str| {
        let value = amount
            .get(field)
            .ok_or_else(|| ApiError::required("body", &format!("amount/{field}"), label))?;
        value
            .as_i64()
            .filter(|t| (1..=i64::from(i32::MAX)).contains(t))
            .ok_or_else(|| {
                ApiError::param(
                    "body",
                    &format!("amount/{field}"),
                    label,
                    "取值规则校验失败，须为不小于1的整数（单位：分）",
                    Some(value),
                )
            })
    };
    let refund = fen("refund", "退款金额")?;
    let total = fen("total", "原订单金额")?;
    match amount.get("currency") {
        None => return Err(ApiError::required("body", "amount/currency", "退款币种")),
        Some(c) if c.as_str() != Some("CNY") => {
            return Err(ApiError::param(
                "body",
                "amount/currency",
                "退款币种",
                "取值规则校验失败，仅支持CNY",
                Some(c),
            ))
        }
        Some(_) => {}
    }
    if refund > total {
        return Err(ApiError::param(
            "body",
            "amount/refund",
            "退款金额",
            "取值规则校验失败，不能大于原订单金额",
            amount.get("refund"),
        ));
    }
    Ok(RefundAsk {
        out_refund_no,
        out_trade_no,
        transaction_id,
        reason,
        notify_url,
        funds_account,
        refund,
        total,
    })
}

/// `POST /v3/refund/domestic/refunds`: accept a refund (`PROCESSING`); it ends
/// after [`REFUND_SETTLE_SECS`] (scaled) and its notification goes out. The same
/// `out_refund_no` again answers the existing refund and refunds nothing more.
async fn create_refund(state: State, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    respond(&state, &req, open_refund(&state, &req, &body).await)
}

async fn open_refund(
    state: &State,
    req: &HttpRequest,
    body: &[u8],
) -> Result<HttpResponse, ApiError> {
    let cfg = &state.config.wechat;
    let (text, mode) = gate(state, req, body).await?;
    let params: Value = serde_json::from_str(&text).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "PARAM_ERROR",
            "请求体无法解析为JSON",
        )
    })?;
    let ask = validate_refund(&params)?;
    let now = Utc::now();
    let answer = {
        let mut trades = lock(&state.wechat.trades);
        let existing = trades
            .values()
            .flat_map(|t| t.refunds.iter())
            .find(|r| r.out_refund_no == ask.out_refund_no);
        if let Some(existing) = existing {
            if !ask.repeats(existing) {
                return Err(invalid_request(
                    "订单金额或退款金额与之前请求不一致，请核实后再试",
                ));
            }
            return signed_json(cfg, mode, &existing.answer());
        }
        let refund_id = loop {
            let id = format!("50{}", random_from(b"0123456789", 27));
            if !trades
                .values()
                .flat_map(|t| t.refunds.iter())
                .any(|r| r.refund_id == id)
            {
                break id;
            }
        };
        let trade = trades.values_mut().find(|t| ask.names(t)).ok_or_else(|| {
            ApiError::new(StatusCode::NOT_FOUND, "RESOURCE_NOT_EXISTS", "订单不存在")
        })?;
        trade.settle_expiry(now);
        if !trade.is_paid() {
            // Reference §4: an unpaid order is "not found" for refunds.
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "RESOURCE_NOT_EXISTS",
                "订单不存在",
            ));
        }
        if ask.total != trade.amount_total {
            return Err(invalid_request("订单金额与原订单金额不一致，请核实后再试"));
        }
        let refunded = trade.refunded();
        if refunded >= trade.amount_total {
            return Err(invalid_request("订单已全额退款"));
        }
        if refunded + ask.refund > trade.amount_total {
            return Err(invalid_request("申请退款金额超过订单可退金额"));
        }
        if state.faults.take_refund_not_enough() {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "NOT_ENOUGH",
                "基本账户余额不足，请充值后重新发起",
            ));
        }
        let outcome = if state.faults.take_refund_abnormal() {
            RefundStatus::Abnormal
        } else {
            RefundStatus::Success
        };
        let refund = Refund {
            refund_id,
            out_refund_no: ask.out_refund_no,
            out_trade_no: trade.out_trade_no.clone(),
            transaction_id: trade.transaction_id.clone().unwrap_or_default(),
            reason: ask.reason,
            notify_url: ask.notify_url,
            funds_account: ask.funds_account,
            refund: ask.refund,
            total: trade.amount_total,
            status: RefundStatus::Processing,
            outcome,
            create_time: rfc3339(now.with_timezone(&china())),
            success_time: None,
            notify_mode: mode,
        };
        trade.trade_state = TradeState::Refund;
        let answer = refund.answer();
        if !state.faults.get().hold_refunds {
            tokio::spawn(settle_later(
                state.clone(),
                refund.out_refund_no.clone(),
                state.wechat.generation(),
            ));
        }
        trade.refunds.push(refund);
        answer
    };
    signed_json(cfg, mode, &answer)
}

/// The bank delay, then the refund's planned end.
async fn settle_later(state: State, out_refund_no: String, generation: u64) {
    tokio::time::sleep(scaled(REFUND_SETTLE_SECS, state.config.time_scale)).await;
    if state.wechat.generation() != generation {
        return;
    }
    if let Err((_, code, message)) = settle_refund(&state, &out_refund_no, None) {
        tracing::warn!(%out_refund_no, code, %message, "emulated refund did not settle");
    }
}

type ControlError = (StatusCode, &'static str, String);

/// Move a `PROCESSING` refund to `to` (default: its planned outcome) and send its
/// notification. A refund that already ended is left alone.
fn settle_refund(
    state: &State,
    out_refund_no: &str,
    to: Option<RefundStatus>,
) -> Result<Refund, ControlError> {
    let cfg = &state.config.wechat;
    let now = Utc::now();
    let (refund, log) = {
        let mut trades = lock(&state.wechat.trades);
        let found = trades.values_mut().find_map(|t| {
            let mchid = t.mchid.clone();
            t.refunds
                .iter_mut()
                .find(|r| r.out_refund_no == out_refund_no)
                .map(|r| (mchid, r))
        });
        let Some((mchid, refund)) = found else {
            return Err((
                StatusCode::NOT_FOUND,
                "RESOURCE_NOT_EXISTS",
                "退款单不存在".into(),
            ));
        };
        if refund.status != RefundStatus::Processing {
            return Ok(refund.clone());
        }
        let status = to.unwrap_or(refund.outcome);
        let Some(event) = status.event() else {
            return Err((
                StatusCode::BAD_REQUEST,
                "INVALID_STATUS",
                "a refund settles to SUCCESS, ABNORMAL or CLOSED".into(),
            ));
        };
        refund.status = status;
        if status == RefundStatus::Success {
            refund.success_time = Some(rfc3339(now.with_timezone(&china())));
        }
        let refund = refund.clone();
        let log = match &refund.notify_url {
            Some(url) => {
                let mut log =
                    sealed_notification(cfg, event, "refund", &refund.resource(&mchid), now)
                        .map_err(|e| {
                            (
                                StatusCode::INTERNAL_SERVER_ERROR,
                                "SYSTEM_ERROR",
                                e.to_string(),
                            )
                        })?;
                log.out_trade_no = refund.out_trade_no.clone();
                log.out_refund_no = Some(refund.out_refund_no.clone());
                log.notify_url = url.clone();
                log.serial_mode = refund.notify_mode;
                Some(log)
            }
            None => None,
        };
        (refund, log)
    };
    if let Some(log) = log {
        let id = log.id.clone();
        lock(&state.wechat.notifications).push(log);
        tokio::spawn(deliver_on_schedule(
            state.clone(),
            id,
            state.wechat.generation(),
        ));
    }
    Ok(refund)
}

/// `GET /v3/refund/domestic/refunds/{out_refund_no}`.
async fn query_refund(state: State, req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    respond(
        &state,
        &req,
        async {
            let cfg = &state.config.wechat;
            let (_, mode) = gate(&state, &req, &[]).await?;
            let refund = state.wechat.refund(&path).ok_or_else(|| {
                ApiError::new(StatusCode::NOT_FOUND, "RESOURCE_NOT_EXISTS", "退款单不存在")
            })?;
            signed_json(cfg, mode, &refund.answer())
        }
        .await,
    )
}

#[derive(Deserialize)]
struct RefundsQuery {
    out_trade_no: Option<String>,
}

/// `GET /__emulator/wechat/refunds?out_trade_no=`: every refund, oldest first.
async fn control_refunds(state: State, query: web::Query<RefundsQuery>) -> HttpResponse {
    HttpResponse::Ok().json(state.wechat.refunds(query.out_trade_no.as_deref()))
}

/// `GET /__emulator/wechat/refunds/{out_refund_no}`.
async fn control_refund(state: State, path: web::Path<String>) -> HttpResponse {
    match state.wechat.refund(&path) {
        Some(refund) => HttpResponse::Ok().json(refund),
        None => control_error(StatusCode::NOT_FOUND, "RESOURCE_NOT_EXISTS", "退款单不存在"),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SettleControl {
    status: Option<RefundStatus>,
}

/// `POST /__emulator/wechat/refunds/{out_refund_no}/settle` with an optional
/// `{"status": "SUCCESS" | "ABNORMAL" | "CLOSED"}`: end a `PROCESSING` refund now
/// (used with the `hold_refunds` fault).
async fn control_settle_refund(
    state: State,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let control: SettleControl = if body.iter().all(u8::is_ascii_whitespace) {
        SettleControl::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(c) => c,
            Err(e) => {
                return control_error(StatusCode::BAD_REQUEST, "INVALID_BODY", &e.to_string())
            }
        }
    };
    match settle_refund(&state, &path, control.status) {
        Ok(refund) => HttpResponse::Ok().json(refund),
        Err((status, code, message)) => control_error(status, code, &message),
    }
}

// ---------------------------------------------------------------------------
// Notifications

fn success_notification(
    cfg: &WechatEmulatorConfig,
    trade: &Trade,
    tx: &Transaction,
    now: DateTime<Utc>,
) -> Result<NotificationLog, ProtoError> {
    let mut log = sealed_notification(
        cfg,
        ("TRANSACTION.SUCCESS", "支付成功"),
        "transaction",
        tx,
        now,
    )?;
    log.out_trade_no = trade.out_trade_no.clone();
    log.notify_url = trade.notify_url.clone();
    log.serial_mode = trade.notify_mode;
    Ok(log)
}

/// An envelope around `resource`, sealed with the APIv3 key: `original_type` and
/// `associated_data` are both `kind` (`transaction` / `refund`), as in real traffic.
/// The caller fills in whom it is for.
fn sealed_notification<T: Serialize>(
    cfg: &WechatEmulatorConfig,
    (event_type, summary): (&str, &str),
    kind: &str,
    resource: &T,
    now: DateTime<Utc>,
) -> Result<NotificationLog, ProtoError> {
    let plaintext =
        serde_json::to_vec(resource).map_err(|e| ProtoError::Malformed(e.to_string()))?;
    let resource = EncryptedResource::seal(
        cfg.api_v3_key.expose().as_bytes(),
        kind,
        kind,
        &proto::nonce_str(12),
        &plaintext,
    )?;
    let envelope = NotificationEnvelope {
        id: uuid::Uuid::new_v4().to_string(),
        create_time: rfc3339(now.with_timezone(&china())),
        resource_type: "encrypt-resource".to_string(),
        event_type: event_type.to_string(),
        summary: summary.to_string(),
        resource,
    };
    let body = serde_json::to_vec(&envelope).map_err(|e| ProtoError::Malformed(e.to_string()))?;
    Ok(NotificationLog {
        id: envelope.id,
        out_trade_no: String::new(),
        out_refund_no: None,
        complaint_id: None,
        event_type: envelope.event_type,
        notify_url: String::new(),
        serial_mode: SerialMode::PublicKey,
        attempts: Vec::new(),
        delivered: false,
        body: Arc::new(body),
    })
}

/// First attempt now, then one per schedule step until a 2xx, a reset, or the
/// schedule runs out (1 + 15 attempts).
async fn deliver_on_schedule(state: State, id: String, generation: u64) {
    for step in 0..=RESEND_SCHEDULE_SECS.len() {
        if step > 0 {
            let secs = RESEND_SCHEDULE_SECS[step - 1];
            tokio::time::sleep(scaled(secs, state.config.time_scale)).await;
        }
        if state.wechat.generation() != generation {
            return;
        }
        let log = lock(&state.wechat.notifications)
            .iter()
            .find(|n| n.id == id)
            .cloned();
        let Some(log) = log else { return };
        if attempt(&state, &log).await.0 {
            return;
        }
    }
}

fn scaled(secs: u64, time_scale: f64) -> Duration {
    let scale = if time_scale.is_finite() && time_scale > 0.0 {
        time_scale
    } else {
        1.0
    };
    Duration::from_secs_f64(secs as f64 / scale)
}

/// One notification attempt with the notification faults applied: whether the
/// merchant took it (2xx within 5 s) and the attempts it made (also logged).
async fn attempt(state: &State, log: &NotificationLog) -> (bool, Vec<DeliveryAttempt>) {
    if state.faults.take_drop_notification() {
        let dropped = DeliveryAttempt {
            at: rfc3339(Utc::now().with_timezone(&china())),
            status: None,
            probe: false,
            dropped: true,
            error: None,
        };
        state.wechat.record_attempt(&log.id, dropped.clone(), false);
        return (false, vec![dropped]);
    }
    let faults = state.faults.get();
    if faults.delay_notifications_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.delay_notifications_ms)).await;
    }
    let mut attempts = Vec::new();
    if faults.signature_probe {
        let probe = post_notification(state, log, true).await;
        state.wechat.record_attempt(&log.id, probe.clone(), false);
        attempts.push(probe);
    }
    let mut made = Vec::new();
    let ok = if faults.duplicate_notifications {
        let (a, b) = tokio::join!(
            post_notification(state, log, false),
            post_notification(state, log, false)
        );
        let ok = [&a, &b].iter().any(|r| is_success(r));
        made.push((a, ok));
        made.push((b, ok));
        ok
    } else {
        let a = post_notification(state, log, false).await;
        let ok = is_success(&a);
        made.push((a, ok));
        ok
    };
    for (a, delivered) in made {
        state.wechat.record_attempt(&log.id, a.clone(), delivered);
        attempts.push(a);
    }
    (ok, attempts)
}

fn is_success(a: &DeliveryAttempt) -> bool {
    a.status.is_some_and(|s| (200..300).contains(&s))
}

/// The notification client: like the shared one (5 s, WeChat's deadline for the
/// merchant) but sending `Wechatpay-Signature`-style names as WeChat does rather
/// than hyper's lower case, for merchants that read headers case-sensitively.
fn notifier(state: &State) -> &reqwest::Client {
    state.wechat.notifier.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .http1_title_case_headers()
            .build()
            .unwrap_or_else(|_| state.http.clone())
    })
}

/// POST the notification body, freshly signed (new timestamp and nonce); a probe
/// carries a `WECHATPAY/SIGNTEST/` signature that can never verify.
async fn post_notification(state: &State, log: &NotificationLog, probe: bool) -> DeliveryAttempt {
    let cfg = &state.config.wechat;
    let timestamp = Utc::now().timestamp().to_string();
    let nonce = proto::nonce_str(32);
    let signature = if probe {
        let mut noise = [0u8; 192];
        rand::thread_rng().fill(&mut noise[..]);
        Ok(format!(
            "{}{}",
            proto::SIGNATURE_PROBE_PREFIX,
            STANDARD.encode(noise)
        ))
    } else {
        proto::sign_response(&cfg.platform_key, &timestamp, &nonce, &log.body)
    };
    let result = match signature {
        Err(e) => Err(format!("signing failed: {e}")),
        Ok(signature) => notifier(state)
            .post(&log.notify_url)
            .header("Content-Type", "application/json")
            .header("User-Agent", NOTIFY_USER_AGENT)
            .header("Wechatpay-Timestamp", &timestamp)
            .header("Wechatpay-Nonce", &nonce)
            .header("Wechatpay-Signature", signature)
            .header("Wechatpay-Serial", serial_for(cfg, log.serial_mode))
            .header("Wechatpay-Signature-Type", proto::SIGNATURE_TYPE)
            .body(log.body.as_ref().clone())
            .send()
            .await
            .map(|resp| resp.status().as_u16())
            .map_err(|e| {
                if e.is_timeout() {
                    "no answer within 5 s".to_string()
                } else {
                    e.to_string()
                }
            }),
    };
    DeliveryAttempt {
        at: rfc3339(Utc::now().with_timezone(&china())),
        status: result.as_ref().ok().copied(),
        probe,
        dropped: false,
        error: result.err(),
    }
}

// ---------------------------------------------------------------------------
// Small helpers

/// China Standard Time (+08:00), the zone of WeChat's timestamps.
fn china() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| chrono::Offset::fix(&Utc))
}

/// `2018-06-08T10:34:56+08:00`.
fn rfc3339(t: DateTime<FixedOffset>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, false)
}

fn random_from(alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| char::from(alphabet[rng.gen_range(0..alphabet.len())]))
        .collect()
}

/// A 28-character openid shaped like WeChat's (`o` + 27 URL-safe characters).
fn random_openid() -> String {
    format!(
        "o{}",
        random_from(
            b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_",
            27
        )
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn resend_delays_follow_the_v3_schedule_and_scale() {
        let total: u64 = RESEND_SCHEDULE_SECS.iter().sum();
        // The whole schedule spans 24 h 4 min.
        assert_eq!(total, 24 * 3_600 + 4 * 60);
        assert_eq!(scaled(15, 1000.0), Duration::from_millis(15));
        assert_eq!(scaled(15, 0.0), Duration::from_secs(15));
        assert_eq!(scaled(15, f64::NAN), Duration::from_secs(15));
    }

    #[test]
    fn notify_urls_must_be_http_or_https_with_a_host() {
        assert!(valid_notify_url("https://shop.example/wx/notify"));
        assert!(valid_notify_url("http://127.0.0.1:8080/cb"));
        assert!(!valid_notify_url("ftp://shop.example/cb"));
        assert!(!valid_notify_url("https:///cb"));
        assert!(!valid_notify_url("https://a b/cb"));
        // WeChat: "通知URL必须为直接可访问的URL，不允许携带查询串".
        assert!(!valid_notify_url("https://shop.example/wx/notify?order=1"));
        assert!(!valid_notify_url("https://shop.example/wx/notify#x"));
    }

    #[test]
    fn prepay_answers_have_wechat_shapes() {
        let now = Utc::now();
        let native = prepay_answer(TradeType::Native, now);
        let url = native["code_url"].as_str().unwrap();
        assert!(url.starts_with("weixin://wxpay/bizpayurl?pr="));
        let jsapi = prepay_answer(TradeType::Jsapi, now);
        let id = jsapi["prepay_id"].as_str().unwrap();
        assert!(id.starts_with("wx") && id.len() == 36, "{id}");
        let h5 = prepay_answer(TradeType::Mweb, now);
        assert!(h5["h5_url"]
            .as_str()
            .unwrap()
            .starts_with("https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb?prepay_id=wx"));
        assert_eq!(random_openid().len(), 28);
    }
}

// ---------------------------------------------------------------------------
// Bills

#[derive(Deserialize)]
struct BillQuery {
    bill_date: Option<String>,
    bill_type: Option<String>,
    account_type: Option<String>,
    tar_type: Option<String>,
}

/// Which bill a request asks for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum BillKind {
    Trade,
    FundFlow,
}

fn no_statement() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "NO_STATEMENT_EXIST",
        "要下载的账单不存在",
    )
}

fn bill_param(message: &str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "PARAM_ERROR", message.to_string())
}

/// `GET /v3/bill/tradebill?bill_date=YYYY-MM-DD[&bill_type=ALL|SUCCESS|REFUND][&tar_type=GZIP]`.
async fn trade_bill(state: State, req: HttpRequest) -> HttpResponse {
    let result = bill_answer(&state, &req, BillKind::Trade).await;
    respond(&state, &req, result)
}

/// `GET /v3/bill/fundflowbill?bill_date=YYYY-MM-DD[&account_type=BASIC][&tar_type=GZIP]`.
async fn fundflow_bill(state: State, req: HttpRequest) -> HttpResponse {
    let result = bill_answer(&state, &req, BillKind::FundFlow).await;
    respond(&state, &req, result)
}

/// Build the day's bill, keep it under a token, answer its hash and download URL.
/// A day without activity, a future day, or the `bill_missing` fault: 400
/// `NO_STATEMENT_EXIST` (today's bill is served, unlike WeChat, which makes day D's
/// bill after 10:00 on D+1, so that tests need no clock games).
async fn bill_answer(
    state: &State,
    req: &HttpRequest,
    kind: BillKind,
) -> Result<HttpResponse, ApiError> {
    let cfg = &state.config.wechat;
    let (_, mode) = gate(state, req, &[]).await?;
    let q = web::Query::<BillQuery>::from_query(req.query_string())
        .map_err(|_| bill_param("查询参数格式错误"))?
        .into_inner();
    let date = q.bill_date.as_deref().ok_or_else(|| {
        bill_param("输入源“/query/bill_date”映射到值字段“账单日期”字段规则校验失败，字段必填")
    })?;
    let day = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .map_err(|_| bill_param("账单日期格式不正确，应为YYYY-MM-DD"))?;
    let tar_gzip = match q.tar_type.as_deref() {
        None => false,
        Some("GZIP") => true,
        Some(_) => return Err(bill_param("tar_type 只支持 GZIP")),
    };
    let bill_type = q.bill_type.as_deref().unwrap_or("ALL");
    if kind == BillKind::Trade && !matches!(bill_type, "ALL" | "SUCCESS" | "REFUND") {
        return Err(bill_param("bill_type 只支持 ALL、SUCCESS、REFUND"));
    }
    if kind == BillKind::FundFlow
        && !matches!(
            q.account_type.as_deref().unwrap_or("BASIC"),
            "BASIC" | "OPERATION" | "FEES"
        )
    {
        return Err(bill_param("account_type 只支持 BASIC、OPERATION、FEES"));
    }
    if state.faults.get().bill_missing || day > crate::bills::china_day(Utc::now()) {
        return Err(no_statement());
    }
    let mut activity = state.wechat.day_activity(day);
    if kind == BillKind::Trade && state.faults.take_bill_extra_payment() {
        activity
            .payments
            .push(crate::bills::extra_payment(day, true));
    }
    if activity.is_empty() {
        return Err(no_statement());
    }
    let text = match kind {
        BillKind::Trade => {
            match bill_type {
                "SUCCESS" => activity.refunds.clear(),
                "REFUND" => activity.payments.clear(),
                _ => {}
            }
            crate::bills::wechat_trade_bill(&cfg.app_id, &cfg.mch_id, &activity)
        }
        BillKind::FundFlow => crate::bills::wechat_fundflow_bill(&cfg.mch_id, day, &activity),
    };
    let bytes = text.into_bytes();
    let hash = fenpay_proto::bills::sha1_hex(&bytes);
    let token = state.bills.put(crate::bills::StoredBill {
        bytes,
        gzip: tar_gzip,
        file_name: format!("{}.csv", day.format("%Y%m%d")),
    });
    signed_json(
        cfg,
        mode,
        &json!({
            "hash_type": "SHA1",
            "hash_value": hash,
            "download_url": format!("{}/v3/billdownload/file?token={token}", state.base_url),
        }),
    )
}

#[derive(Deserialize)]
struct DownloadQuery {
    token: Option<String>,
}

/// `GET /v3/billdownload/file?token=..`: the merchant's `Authorization` is checked as
/// on every call; the answer is the file itself, unsigned (the hash proves it).
async fn bill_download(state: State, req: HttpRequest) -> HttpResponse {
    let cfg = &state.config.wechat;
    let result: Result<HttpResponse, ApiError> = async {
        gate(&state, &req, &[]).await?;
        let token = web::Query::<DownloadQuery>::from_query(req.query_string())
            .ok()
            .and_then(|q| q.into_inner().token)
            .ok_or_else(|| bill_param("缺少 token"))?;
        let bill = state.bills.get(&token).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "INVALID_REQUEST",
                "账单下载链接无效或已过期",
            )
        })?;
        let (body, ctype) = if bill.gzip {
            (
                crate::bills::gzip(&bill.bytes).map_err(|_| ApiError::system())?,
                "application/x-gzip",
            )
        } else {
            (bill.bytes, "text/csv;charset=utf-8")
        };
        Ok(HttpResponse::Ok()
            .insert_header(("Request-ID", request_id()))
            .insert_header((
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename={}{}",
                    bill.file_name,
                    if bill.gzip { ".gz" } else { "" }
                ),
            ))
            .content_type(ctype)
            .body(body))
    }
    .await;
    match result {
        Ok(resp) => resp,
        Err(e) if e.unauthenticated => e.into_response(),
        Err(e) => e.into_signed_response(cfg, answer_mode(cfg, &req)),
    }
}

#[derive(Deserialize)]
struct ControlBillQuery {
    date: Option<String>,
    /// `trade` (default) or `fundflow`.
    kind: Option<String>,
}

/// `GET /__emulator/wechat/bill?date=YYYY-MM-DD[&kind=fundflow]`: the day's bill as
/// CSV text, for people (no faults applied or consumed).
async fn control_bill(state: State, query: web::Query<ControlBillQuery>) -> HttpResponse {
    let cfg = &state.config.wechat;
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
                "PARAM_ERROR",
                "date must be YYYY-MM-DD",
            )
        }
    };
    let activity = state.wechat.day_activity(day);
    let text = match query.kind.as_deref() {
        Some("fundflow") => crate::bills::wechat_fundflow_bill(&cfg.mch_id, day, &activity),
        _ => crate::bills::wechat_trade_bill(&cfg.app_id, &cfg.mch_id, &activity),
    };
    HttpResponse::Ok()
        .content_type("text/csv;charset=utf-8")
        .body(text)
}
