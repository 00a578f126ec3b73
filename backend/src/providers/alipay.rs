//! Alipay OpenAPI client (RSA2, public-key mode): precreate / page / wap / app
//! prepay, query, close, cancel, refund and refund query, and verification of
//! async notifications and return_url redirects.
//!
//! v2 (`gateway.do`): every request is signed over all parameters except `sign` (so
//! `sign_type` is signed). Every sync response is verified over the raw text of its
//! `*_response` node with the Alipay public key before anything in it is trusted.
//!
//! v3 (`ALIPAY_API=v3`, server-side calls only: precreate, query, close, refund,
//! refund query; page / wap / app pay and cancel stay on `gateway.do`): `POST
//! /v3/alipay/trade/...` with a JSON body and `Authorization: ALIPAY-SHA256withRSA
//! app_id=..,nonce=..,timestamp=..,sign=..` over `auth\nMETHOD\npath\nbody\n`. An answer
//! is believed only when `alipay-signature` verifies over
//! `alipay-timestamp\nalipay-nonce\nbody\n`; a missing or bad one is unverifiable.

use std::collections::BTreeMap;
use std::time::Duration;

use api_types::payment::{PaymentChannel, SdkParams};
use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone, Utc};
use fenpay_proto::alipay as proto;
use fenpay_proto::{RsaPrivateKey, RsaPublicKey};
use serde_json::{json, Value};

use super::{
    PaymentNotice, PrepayRequest, PrepayResponse, ProviderError, RefundRequest, RemoteRefund,
    RemoteRefundState, RemoteTrade, RemoteTradeState,
};

/// Alipay's `yyyy-MM-dd HH:mm:ss` layout (always China Standard Time).
const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// Alipay caps `subject` at 256 characters.
const SUBJECT_MAX_CHARS: usize = 256;

/// Alipay caps `refund_reason` at 256 characters.
const REFUND_REASON_MAX_CHARS: usize = 256;

/// Everything the client needs. The lead builds it from [`crate::config::AlipaySettings`]
/// (or the development keys).
#[derive(Clone, Debug)]
pub struct AlipayClientConfig {
    /// The application's `app_id`.
    pub app_id: String,
    /// Our application private key (signs requests). Its `Debug` is redacted.
    pub app_private_key: RsaPrivateKey,
    /// The Alipay public key (verifies responses, notifications and returns); in
    /// certificate mode, the key of the configured Alipay certificate.
    pub alipay_public_key: RsaPublicKey,
    /// Certificate mode ("公钥证书模式"); `None`: public-key mode.
    pub cert_mode: Option<AlipayCertSns>,
    /// When set, notifications must carry this `seller_id`.
    pub seller_id: Option<String>,
    /// Full gateway URL, e.g. `https://openapi.alipay.com/gateway.do`.
    pub gateway: String,
    /// OpenAPI v3 base URL (`https://openapi.alipay.com`): when set, the server-side
    /// trade calls go through v3 instead of `gateway.do`.
    pub v3_endpoint: Option<String>,
    /// Where Alipay posts async notifications.
    pub notify_url: String,
    /// Where the page/wap cashier sends the buyer back (also the wap `quit_url`).
    pub return_url: String,
    /// Whole-request timeout for gateway calls.
    pub timeout: Duration,
}

/// Certificate mode: the SNs every request carries and every answer must name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlipayCertSns {
    /// `app_cert_sn`: SN of our app certificate (`appCertPublicKey_<appid>.crt`).
    pub app_cert_sn: String,
    /// `alipay_root_cert_sn`: SNs of the RSA roots in `alipayRootCert.crt`, joined by `_`.
    pub alipay_root_cert_sn: String,
    /// SN of the configured Alipay certificate (`alipayCertPublicKey_RSA2.crt`): answers
    /// must carry it as `alipay_cert_sn`.
    pub alipay_cert_sn: String,
}

/// The Alipay client. Cheap to clone (the HTTP client and keys are shared).
#[derive(Clone, Debug)]
pub struct AlipayClient {
    cfg: AlipayClientConfig,
    http: reqwest::Client,
}

/// Outcome of `alipay.trade.cancel`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CancelOutcome {
    /// `close` (the unpaid trade was closed) or `refund` (the payment was refunded);
    /// absent when Alipay did not say.
    pub action: Option<String>,
    /// `retry_flag=Y`: Alipay asks for the cancel to be repeated.
    pub retry: bool,
    /// Alipay's trade number, when reported.
    pub trade_no: Option<String>,
}

/// A trade notification that passed every check.
pub type VerifiedNotification = (PaymentNotice, String, BTreeMap<String, String>);

impl AlipayClient {
    /// Builds the client; fails when the configuration cannot work at all.
    pub fn new(cfg: AlipayClientConfig) -> Result<Self, ProviderError> {
        if cfg.app_id.trim().is_empty() {
            return Err(ProviderError::NotConfigured(
                "ALIPAY_APP_ID is empty".into(),
            ));
        }
        reqwest::Url::parse(&cfg.gateway).map_err(|e| {
            ProviderError::NotConfigured(format!("ALIPAY_GATEWAY {:?}: {e}", cfg.gateway))
        })?;
        if let Some(endpoint) = &cfg.v3_endpoint {
            reqwest::Url::parse(endpoint).map_err(|e| {
                ProviderError::NotConfigured(format!("ALIPAY_ENDPOINT {endpoint:?}: {e}"))
            })?;
        }
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("fenpay/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ProviderError::NotConfigured(e.to_string()))?;
        Ok(AlipayClient { cfg, http })
    }

    /// The configuration this client was built with.
    pub fn config(&self) -> &AlipayClientConfig {
        &self.cfg
    }

    /// The day's `trade` bill: `alipay.data.dataservice.bill.downloadurl.query`
    /// (verified answer) gives a short-lived URL; the zip it serves holds the GBK CSV
    /// detail and summary. `isp.bill_not_exist` (verified) is [`BillFetch::NotReady`].
    pub async fn trade_bill(
        &self,
        day: chrono::NaiveDate,
    ) -> Result<crate::domain::bills::BillFetch, ProviderError> {
        use crate::domain::bills::BillFetch;
        let method = "alipay.data.dataservice.bill.downloadurl.query";
        let biz = json!({ "bill_type": "trade", "bill_date": day.format("%Y-%m-%d").to_string() });
        let content = match self.call(method, &biz, "").await {
            Ok(content) => content,
            Err(ProviderError::Rejected { code, message })
                if code.strip_prefix("aop.").unwrap_or(&code) == "isp.bill_not_exist" =>
            {
                return Ok(BillFetch::NotReady {
                    reason: format!("{code}: {message}"),
                })
            }
            Err(e) => return Err(e),
        };
        let url = str_field(&content, "bill_download_url")
            .ok_or_else(|| invalid(format!("{method}: no bill_download_url")))?;
        let url = bill_download_target(&self.cfg.gateway, url)
            .map_err(|e| invalid(format!("{method}: {e}")))?;
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| ProviderError::Unavailable(format!("bill download: {e}")))?;
        let status = resp.status().as_u16();
        if status >= 500 {
            return Err(ProviderError::Unavailable(format!(
                "bill download: HTTP {status}"
            )));
        }
        if status != 200 {
            return Err(invalid(format!("bill download: HTTP {status}")));
        }
        let bytes = super::read_capped(resp, super::bills::MAX_BILL_BYTES, "bill download").await?;
        let (rows, totals) = super::bills::alipay::parse_trade_bill_zip(&bytes)
            .map_err(|e| invalid(e.to_string()))?;
        Ok(BillFetch::Ready { day, rows, totals })
    }

    /// Opens a trade for the buyer: `native` → `alipay.trade.precreate` (QR code),
    /// `page` / `wap` → a signed cashier URL (no server call), `app` → the signed
    /// order string for the Alipay app SDK.
    pub async fn prepay(&self, req: &PrepayRequest) -> Result<PrepayResponse, ProviderError> {
        match req.channel {
            PaymentChannel::Native => {
                let biz = self.biz_content(req, "FACE_TO_FACE_PAYMENT");
                let content = self
                    .call("alipay.trade.precreate", &biz, &req.out_trade_no)
                    .await?;
                let qr_code = str_field(&content, "qr_code").ok_or_else(|| {
                    ProviderError::InvalidResponse("precreate without qr_code".into())
                })?;
                Ok(PrepayResponse {
                    qr_code_url: Some(qr_code.to_string()),
                    ..Default::default()
                })
            }
            PaymentChannel::Page => {
                let biz = self.biz_content(req, "FAST_INSTANT_TRADE_PAY");
                let params = self.signed_params("alipay.trade.page.pay", &biz, true)?;
                Ok(PrepayResponse {
                    pay_url: Some(self.gateway_url(&params)),
                    ..Default::default()
                })
            }
            PaymentChannel::Wap => {
                let mut biz = self.biz_content(req, "QUICK_WAP_WAY");
                biz["quit_url"] = json!(self.cfg.return_url);
                let params = self.signed_params("alipay.trade.wap.pay", &biz, true)?;
                Ok(PrepayResponse {
                    pay_url: Some(self.gateway_url(&params)),
                    ..Default::default()
                })
            }
            PaymentChannel::App => {
                let biz = self.biz_content(req, "QUICK_MSECURITY_PAY");
                let params = self.signed_params("alipay.trade.app.pay", &biz, false)?;
                Ok(PrepayResponse {
                    sdk_params: Some(SdkParams::AlipayApp {
                        order_string: encode_form(&params),
                    }),
                    ..Default::default()
                })
            }
            other => Err(ProviderError::Rejected {
                code: "unsupported_channel".into(),
                message: format!("Alipay does not support the {} channel", other.as_str()),
            }),
        }
    }

    /// Queries a trade (`alipay.trade.query`). A trade Alipay does not know (page/wap
    /// before the buyer opens the cashier) is `NotExist`, not an error.
    ///
    /// `TRADE_CLOSED` means "closed unpaid" or "paid, then refunded in full"; the
    /// second carries `send_pay_date` and is reported as `Paid` (see [`remote_trade`]).
    pub async fn query(&self, out_trade_no: &str) -> Result<RemoteTrade, ProviderError> {
        let biz = json!({ "out_trade_no": out_trade_no });
        let content = match self.call("alipay.trade.query", &biz, out_trade_no).await {
            Ok(content) => content,
            Err(ProviderError::TradeNotExist) => {
                return Ok(RemoteTrade {
                    out_trade_no: out_trade_no.to_string(),
                    state: RemoteTradeState::NotExist,
                    transaction_id: None,
                    amount_fen: None,
                    paid_at: None,
                })
            }
            Err(e) => return Err(e),
        };
        remote_trade(out_trade_no, &content)
    }

    /// Refunds (`alipay.trade.refund`, `out_request_no` = our refund number, the
    /// idempotency key). Alipay refunds synchronously: `fund_change=Y` means the money
    /// moved now. `N` answers a repeated `out_request_no` (the money moved on an
    /// earlier call, or not at all), so the refund query decides.
    pub async fn refund(&self, req: &RefundRequest) -> Result<RemoteRefund, ProviderError> {
        let mut biz = json!({
            "out_trade_no": req.out_trade_no,
            "refund_amount": proto::fen_to_yuan(req.amount_fen),
            "out_request_no": req.out_refund_no,
        });
        if let Some(reason) = req
            .reason
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
        {
            biz["refund_reason"] = json!(reason
                .chars()
                .take(REFUND_REASON_MAX_CHARS)
                .collect::<String>());
        }
        let content = self
            .call("alipay.trade.refund", &biz, &req.out_trade_no)
            .await
            .map_err(|e| match e {
                // check_code's trade-state errors read differently for a refund:
                // the trade cannot be refunded (any more).
                ProviderError::AlreadyPaid => ProviderError::Rejected {
                    code: "ACQ.TRADE_HAS_FINISHED".into(),
                    message: "交易已完结，不可退款".into(),
                },
                ProviderError::AlreadyClosed => ProviderError::Rejected {
                    code: "ACQ.TRADE_HAS_CLOSE".into(),
                    message: "交易已关闭".into(),
                },
                other => other,
            })?;
        match str_field(&content, "fund_change") {
            Some("Y") => Ok(RemoteRefund {
                out_trade_no: req.out_trade_no.clone(),
                out_refund_no: req.out_refund_no.clone(),
                refund_id: str_field(&content, "trade_no")
                    .filter(|s| !s.is_empty())
                    .map(String::from),
                state: RemoteRefundState::Succeeded,
                amount_fen: req.amount_fen,
                succeeded_at: Some(
                    str_field(&content, "gmt_refund_pay")
                        .and_then(parse_china_time)
                        .unwrap_or_else(Utc::now),
                ),
            }),
            _ => match self
                .query_refund(&req.out_trade_no, &req.out_refund_no)
                .await
            {
                // Accepted, but nothing refunded (yet) under this number.
                Err(ProviderError::TradeNotExist) => Ok(RemoteRefund {
                    out_trade_no: req.out_trade_no.clone(),
                    out_refund_no: req.out_refund_no.clone(),
                    refund_id: str_field(&content, "trade_no").map(String::from),
                    state: RemoteRefundState::Processing,
                    amount_fen: req.amount_fen,
                    succeeded_at: None,
                }),
                other => other,
            },
        }
    }

    /// Where a refund stands (`alipay.trade.fastpay.refund.query`). A success answer
    /// without `refund_status` and `refund_amount` is Alipay's "no such refund":
    /// `TradeNotExist`, as is an unknown trade.
    pub async fn query_refund(
        &self,
        out_trade_no: &str,
        out_refund_no: &str,
    ) -> Result<RemoteRefund, ProviderError> {
        let biz = json!({
            "out_trade_no": out_trade_no,
            "out_request_no": out_refund_no,
            "query_options": ["gmt_refund_pay"],
        });
        let content = self
            .call("alipay.trade.fastpay.refund.query", &biz, out_trade_no)
            .await?;
        remote_refund(out_trade_no, out_refund_no, &content)
    }

    /// Closes an unpaid trade (`alipay.trade.close`). `TradeNotExist` when Alipay does
    /// not know it (the caller decides: the buyer may still open the cashier),
    /// `AlreadyPaid` / `AlreadyClosed` when it is no longer waiting for payment.
    pub async fn close(&self, out_trade_no: &str) -> Result<(), ProviderError> {
        let biz = json!({ "out_trade_no": out_trade_no });
        match self.call("alipay.trade.close", &biz, out_trade_no).await {
            Ok(_) => Ok(()),
            // Close is only allowed in WAIT_BUYER_PAY; the status error does not say
            // whether the trade was paid or closed, so ask.
            Err(ProviderError::Rejected { code, message })
                if code == "ACQ.TRADE_STATUS_ERROR"
                    || code == "ACQ.REASON_TRADE_STATUS_INVALID" =>
            {
                match self.query(out_trade_no).await?.state {
                    RemoteTradeState::Paid => Err(ProviderError::AlreadyPaid),
                    RemoteTradeState::Closed => Err(ProviderError::AlreadyClosed),
                    _ => Err(ProviderError::Rejected { code, message }),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Cancels a trade (`alipay.trade.cancel`): Alipay closes it when unpaid and
    /// refunds it when paid.
    pub async fn cancel(&self, out_trade_no: &str) -> Result<CancelOutcome, ProviderError> {
        let biz = json!({ "out_trade_no": out_trade_no });
        let content = self.call("alipay.trade.cancel", &biz, out_trade_no).await?;
        Ok(CancelOutcome {
            action: str_field(&content, "action").map(String::from),
            retry: str_field(&content, "retry_flag") == Some("Y"),
            trade_no: str_field(&content, "trade_no").map(String::from),
        })
    }

    /// Verifies an async trade notification (the raw `application/x-www-form-urlencoded`
    /// body): V1 signature (`sign` and `sign_type` excluded) with the Alipay public key,
    /// our `app_id` (and `seller_id` when configured), an exact `total_amount`.
    /// Returns the notice, the raw `trade_status` and every parameter.
    pub fn verify_notification(
        &self,
        form_body: &[u8],
    ) -> Result<VerifiedNotification, ProviderError> {
        let text = std::str::from_utf8(form_body)
            .map_err(|_| invalid("notification body is not UTF-8"))?;
        let params = parse_form(text).map_err(invalid)?;
        self.check_signed_params(&params, "notification")?;
        if let Some(kind) = params.get("notify_type") {
            if kind != "trade_status_sync" {
                return Err(invalid(format!("unexpected notify_type {kind}")));
            }
        }
        if let Some(expected) = self.cfg.seller_id.as_deref().filter(|s| !s.is_empty()) {
            let got = params.get("seller_id").map_or("", String::as_str);
            if got != expected {
                return Err(invalid(format!(
                    "notification is for seller_id {got:?}, expected {expected}"
                )));
            }
        }
        let required = |name: &str| {
            params
                .get(name)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| invalid(format!("notification without {name}")))
        };
        let trade_status = required("trade_status")?.clone();
        let paid = match trade_status.as_str() {
            "TRADE_SUCCESS" | "TRADE_FINISHED" => true,
            "TRADE_CLOSED" | "WAIT_BUYER_PAY" => false,
            other => return Err(invalid(format!("unknown trade_status {other}"))),
        };
        let amount_text = required("total_amount")?;
        let amount_fen = proto::yuan_to_fen(amount_text)
            .ok_or_else(|| invalid(format!("total_amount {amount_text:?} is not an amount")))?;
        let paid_at = ["gmt_payment", "notify_time"]
            .iter()
            .find_map(|name| params.get(*name).and_then(|t| parse_china_time(t)))
            .unwrap_or_else(Utc::now);
        let notice = PaymentNotice {
            out_trade_no: required("out_trade_no")?.clone(),
            transaction_id: required("trade_no")?.clone(),
            amount_fen,
            paid_at,
            app_id: required("app_id")?.clone(),
            merchant_id: params.get("seller_id").cloned().unwrap_or_default(),
            paid,
        };
        Ok((notice, trade_status, params))
    }

    /// Verifies the parameters Alipay appends to `return_url` after a page/wap payment
    /// (the query string, with or without the leading `?`). They are V1-signed like
    /// notifications. A return only tells the buyer's browser where to go: the payment
    /// itself is confirmed by the notification or a query.
    pub fn verify_return(&self, query: &str) -> Result<BTreeMap<String, String>, ProviderError> {
        let params = parse_form(query.strip_prefix('?').unwrap_or(query)).map_err(invalid)?;
        self.check_signed_params(&params, "return")?;
        for name in ["out_trade_no", "trade_no", "total_amount"] {
            if params.get(name).is_none_or(|v| v.is_empty()) {
                return Err(invalid(format!("return without {name}")));
            }
        }
        Ok(params)
    }

    /// V1 signature plus `app_id` (and `sign_type`) checks shared by notifications
    /// and returns.
    fn check_signed_params(
        &self,
        params: &BTreeMap<String, String>,
        what: &str,
    ) -> Result<(), ProviderError> {
        if params.get("sign").is_none_or(|s| s.is_empty()) {
            return Err(invalid(format!("{what} is not signed")));
        }
        if let Some(kind) = params.get("sign_type") {
            if kind != "RSA2" {
                return Err(invalid(format!("{what} sign_type {kind} is not RSA2")));
            }
        }
        if !proto::verify_notification(params, &self.cfg.alipay_public_key) {
            return Err(invalid(format!("{what} signature does not verify")));
        }
        let app_id = params.get("app_id").map_or("", String::as_str);
        if app_id != self.cfg.app_id {
            return Err(invalid(format!(
                "{what} is for app_id {app_id:?}, expected {}",
                self.cfg.app_id
            )));
        }
        Ok(())
    }

    fn biz_content(&self, req: &PrepayRequest, product_code: &str) -> Value {
        let subject = if req.description.trim().is_empty() {
            req.out_trade_no.as_str()
        } else {
            req.description.as_str()
        };
        json!({
            "out_trade_no": req.out_trade_no,
            "total_amount": proto::fen_to_yuan(req.amount_fen),
            "subject": subject.chars().take(SUBJECT_MAX_CHARS).collect::<String>(),
            "product_code": product_code,
            "time_expire": china_time(req.expire_at),
        })
    }

    /// The common parameters plus `biz_content`, signed.
    fn signed_params(
        &self,
        method: &str,
        biz: &Value,
        with_return_url: bool,
    ) -> Result<BTreeMap<String, String>, ProviderError> {
        let mut params = BTreeMap::new();
        let mut put = |k: &str, v: &str| {
            if !v.is_empty() {
                params.insert(k.to_string(), v.to_string());
            }
        };
        put("app_id", &self.cfg.app_id);
        put("method", method);
        put("format", "JSON");
        put("charset", "utf-8");
        put("sign_type", "RSA2");
        put("timestamp", &china_time(Utc::now()));
        put("version", "1.0");
        put("notify_url", &self.cfg.notify_url);
        if let Some(sns) = &self.cfg.cert_mode {
            put("app_cert_sn", &sns.app_cert_sn);
            put("alipay_root_cert_sn", &sns.alipay_root_cert_sn);
        }
        if with_return_url {
            put("return_url", &self.cfg.return_url);
        }
        put("biz_content", &biz.to_string());
        let sign = proto::sign_params(&params, &self.cfg.app_private_key)
            .map_err(|e| ProviderError::NotConfigured(format!("signing failed: {e}")))?;
        params.insert("sign".into(), sign);
        Ok(params)
    }

    fn gateway_url(&self, params: &BTreeMap<String, String>) -> String {
        let sep = if self.cfg.gateway.contains('?') {
            '&'
        } else {
            '?'
        };
        format!("{}{sep}{}", self.cfg.gateway, encode_form(params))
    }

    /// Posts a signed request and returns the verified, successful response content.
    /// `out_trade_no`, when the content echoes one, must be the trade we asked about:
    /// a signed response does not name the request it answers.
    async fn call(
        &self,
        method: &str,
        biz: &Value,
        out_trade_no: &str,
    ) -> Result<Value, ProviderError> {
        let content = match (&self.cfg.v3_endpoint, v3_path(method)) {
            (Some(endpoint), Some(path)) => self.call_v3(endpoint, method, &path, biz).await?,
            _ => self.call_gateway(method, biz).await?,
        };
        check_code(&content)?;
        if let Some(echoed) = str_field(&content, "out_trade_no") {
            if echoed != out_trade_no {
                return Err(invalid(format!(
                    "{method}: response is for out_trade_no {echoed}, asked about {out_trade_no}"
                )));
            }
        }
        Ok(content)
    }

    /// `gateway.do`: the verified response node (its `code` not yet checked).
    async fn call_gateway(&self, method: &str, biz: &Value) -> Result<Value, ProviderError> {
        let params = self.signed_params(method, biz, false)?;
        let sep = if self.cfg.gateway.contains('?') {
            '&'
        } else {
            '?'
        };
        let url = format!("{}{sep}charset=utf-8", self.cfg.gateway);
        let resp = self
            .http
            .post(url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded;charset=utf-8",
            )
            .body(encode_form(&params))
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    ProviderError::Unavailable(format!("{method} timed out"))
                } else {
                    ProviderError::Unavailable(format!("{method}: {e}"))
                }
            })?;
        let status = resp.status().as_u16();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| ProviderError::Unavailable(format!("{method}: reading response: {e}")))?;
        if status >= 500 {
            return Err(ProviderError::Unavailable(format!(
                "{method}: HTTP {status}"
            )));
        }
        if status != 200 {
            return Err(invalid(format!("{method}: HTTP {status}")));
        }
        let body = std::str::from_utf8(&bytes)
            .map_err(|_| invalid(format!("{method}: response is not UTF-8")))?;
        self.verified_content(body, method)
    }

    /// OpenAPI v3: signs and posts `biz` as the JSON body; returns the verified answer
    /// in gateway.do's shape (`code` `10000` plus the fields, or `40004` with
    /// `sub_code` / `sub_msg` for a verified error) so both APIs share one reading.
    async fn call_v3(
        &self,
        endpoint: &str,
        method: &str,
        path: &str,
        biz: &Value,
    ) -> Result<Value, ProviderError> {
        let mut body_value = biz.clone();
        if method == "alipay.trade.precreate" && !self.cfg.notify_url.is_empty() {
            body_value["notify_url"] = json!(self.cfg.notify_url);
        }
        let body = body_value.to_string();
        let auth = format!(
            "app_id={},nonce={},timestamp={}",
            self.cfg.app_id,
            uuid::Uuid::new_v4(),
            Utc::now().timestamp_millis()
        );
        let sign = self
            .cfg
            .app_private_key
            .sign_sha256_base64(format!("{auth}\nPOST\n{path}\n{body}\n").as_bytes())
            .map_err(|e| ProviderError::NotConfigured(format!("signing failed: {e}")))?;
        let resp = self
            .http
            .post(format!("{}{path}", endpoint.trim_end_matches('/')))
            .header(
                reqwest::header::AUTHORIZATION,
                format!("ALIPAY-SHA256withRSA {auth},sign={sign}"),
            )
            .header(
                "alipay-request-id",
                uuid::Uuid::new_v4().simple().to_string(),
            )
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::ACCEPT, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    ProviderError::Unavailable(format!("{method} (v3) timed out"))
                } else {
                    ProviderError::Unavailable(format!("{method} (v3): {e}"))
                }
            })?;
        let status = resp.status().as_u16();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let signature = (
            header("alipay-timestamp"),
            header("alipay-nonce"),
            header("alipay-signature"),
        );
        let bytes = resp.bytes().await.map_err(|e| {
            ProviderError::Unavailable(format!("{method} (v3): reading response: {e}"))
        })?;
        let body = std::str::from_utf8(&bytes)
            .map_err(|_| invalid(format!("{method} (v3): response is not UTF-8")))?;
        let verified = match signature {
            (Some(ts), Some(nonce), Some(sig))
                if !nonce.contains('\n') && fresh_v3_timestamp(&ts, Utc::now()) =>
            {
                self.cfg
                    .alipay_public_key
                    .verify_sha256_base64(format!("{ts}\n{nonce}\n{body}\n").as_bytes(), &sig)
            }
            _ => false,
        };
        v3_content(method, status, body, verified)
    }

    /// Verifies the response signature and parses the signed node. An unsigned
    /// answer is only believed when believing it cannot change any money decision
    /// (our signature was rejected, or the service is down).
    fn verified_content(&self, body: &str, method: &str) -> Result<Value, ProviderError> {
        let has_sign = proto::response_sign(body).is_ok_and(|s| !s.is_empty());
        if !has_sign {
            let node = proto::extract_response_content(body, &proto::response_node(method))
                .or_else(|_| proto::extract_response_content(body, "error_response"))
                .map_err(|e| invalid(format!("{method}: {e}")))?;
            let content: Value = serde_json::from_str(node)
                .map_err(|e| invalid(format!("{method}: response JSON: {e}")))?;
            return Err(match check_code(&content) {
                Err(e @ (ProviderError::SignatureRejected(_) | ProviderError::Unavailable(_))) => e,
                _ => invalid(format!(
                    "{method}: unsigned response (code {:?}, sub_code {:?})",
                    str_field(&content, "code").unwrap_or(""),
                    str_field(&content, "sub_code").unwrap_or("")
                )),
            });
        }
        if let Some(sns) = &self.cfg.cert_mode {
            // The answer names the certificate whose key signed it. Another one means
            // Alipay rotated its certificate: the SDKs download it
            // (alipay.open.app.alipaycert.download); we cannot verify the answer, so it
            // changes nothing and the caller retries later.
            let answered = proto::response_cert_sn(body)
                .map_err(|e| invalid(format!("{method}: {e}")))?
                .unwrap_or_default();
            if answered != sns.alipay_cert_sn {
                tracing::error!(
                    method,
                    answered_alipay_cert_sn = %answered,
                    configured_alipay_cert_sn = %sns.alipay_cert_sn,
                    "Alipay answered with a certificate other than ALIPAY_CERT_PATH: download the current alipayCertPublicKey_RSA2.crt from the Alipay open platform, set ALIPAY_CERT_PATH to it and restart (run `fenpay doctor` to check the chain)"
                );
                return Err(invalid(format!(
                    "{method}: answer signed under alipay_cert_sn {answered:?}, configured {}; update ALIPAY_CERT_PATH",
                    sns.alipay_cert_sn
                )));
            }
        }
        let node = proto::verify_response(body, method, &self.cfg.alipay_public_key)
            .map_err(|e| invalid(format!("{method}: response signature: {e}")))?;
        serde_json::from_str(node).map_err(|e| invalid(format!("{method}: response JSON: {e}")))
    }
}

fn invalid(msg: impl Into<String>) -> ProviderError {
    ProviderError::InvalidResponse(msg.into())
}

/// The v3 path of a server-side trade method (`alipay.trade.fastpay.refund.query` ->
/// `/v3/alipay/trade/fastpay/refund/query`); `None` for methods kept on `gateway.do`.
fn v3_path(method: &str) -> Option<String> {
    const V3_METHODS: [&str; 5] = [
        "alipay.trade.precreate",
        "alipay.trade.query",
        "alipay.trade.close",
        "alipay.trade.refund",
        "alipay.trade.fastpay.refund.query",
    ];
    V3_METHODS
        .contains(&method)
        .then(|| format!("/v3/{}", method.replace('.', "/")))
}

/// Reads a v3 answer into gateway.do's shape. Only a verified answer is read; an
/// unverified one is believed only where believing it cannot change money state
/// (5xx: unavailable; 401: our signature was refused), like an unsigned v2 answer.
fn v3_content(
    method: &str,
    status: u16,
    body: &str,
    verified: bool,
) -> Result<Value, ProviderError> {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let field = |name: &str| {
        parsed
            .as_ref()
            .and_then(|v| str_field(v, name))
            .unwrap_or("")
            .to_string()
    };
    if status >= 500 {
        return Err(ProviderError::Unavailable(format!(
            "{method} (v3): HTTP {status} {}",
            field("code")
        )));
    }
    if status == 401 {
        return Err(ProviderError::SignatureRejected(format!(
            "{} {}",
            field("code"),
            field("message")
        )));
    }
    if !verified {
        return Err(invalid(format!(
            "{method} (v3): HTTP {status} answer without a valid alipay-signature"
        )));
    }
    let Some(Value::Object(map)) = parsed else {
        return Err(invalid(format!(
            "{method} (v3): response is not a JSON object"
        )));
    };
    if status == 200 {
        let mut content = serde_json::Map::new();
        content.insert("code".into(), json!("10000"));
        content.insert("msg".into(), json!("Success"));
        content.extend(map);
        return Ok(Value::Object(content));
    }
    if (400..500).contains(&status) {
        let code = map.get("code").and_then(Value::as_str).unwrap_or("");
        if code.is_empty() {
            return Err(invalid(format!(
                "{method} (v3): HTTP {status} without code"
            )));
        }
        return Ok(json!({
            "code": "40004",
            "msg": "Business Failed",
            "sub_code": code,
            "sub_msg": map.get("message").and_then(Value::as_str).unwrap_or(""),
        }));
    }
    Err(invalid(format!("{method} (v3): HTTP {status}")))
}

fn str_field<'a>(content: &'a Value, name: &str) -> Option<&'a str> {
    content.get(name).and_then(Value::as_str)
}

/// Maps a response node's `code` / `sub_code` to our errors (`10000` is success).
fn check_code(content: &Value) -> Result<(), ProviderError> {
    let code = str_field(content, "code").unwrap_or("");
    if code == "10000" {
        return Ok(());
    }
    let sub_code = str_field(content, "sub_code").unwrap_or("");
    // Some gateways prefix the ACQ codes with `aop.`.
    let bare = sub_code.strip_prefix("aop.").unwrap_or(sub_code);
    let message = str_field(content, "sub_msg")
        .or_else(|| str_field(content, "msg"))
        .unwrap_or("")
        .to_string();
    Err(match bare {
        "ACQ.TRADE_NOT_EXIST" => ProviderError::TradeNotExist,
        "ACQ.TRADE_HAS_SUCCESS" | "ACQ.TRADE_HAS_FINISHED" => ProviderError::AlreadyPaid,
        "ACQ.TRADE_HAS_CLOSE" => ProviderError::AlreadyClosed,
        "ACQ.SYSTEM_ERROR" => ProviderError::Unavailable(message),
        "isv.invalid-signature" => ProviderError::SignatureRejected(message),
        _ if code == "20000" => ProviderError::Unavailable(message),
        _ if code.is_empty() => invalid("response without code"),
        _ => ProviderError::Rejected {
            code: if sub_code.is_empty() {
                code.to_string()
            } else {
                sub_code.to_string()
            },
            message,
        },
    })
}

/// Reduces a verified `alipay.trade.query` success to a [`RemoteTrade`].
///
/// Alipay reports `TRADE_CLOSED` both for a trade closed unpaid and for one that
/// was paid and then refunded in full. Only the latter has `send_pay_date` (the
/// payment time), and it is reported as `Paid`: the money question "did the buyer
/// pay this order?" is settled as yes, and callers must never treat a refunded
/// order as an unpaid one (refunds are tracked on their own).
fn remote_trade(out_trade_no: &str, content: &Value) -> Result<RemoteTrade, ProviderError> {
    let status =
        str_field(content, "trade_status").ok_or_else(|| invalid("query without trade_status"))?;
    let paid_at = str_field(content, "send_pay_date").and_then(parse_china_time);
    let state = match status {
        "WAIT_BUYER_PAY" => RemoteTradeState::Pending,
        "TRADE_SUCCESS" | "TRADE_FINISHED" => RemoteTradeState::Paid,
        "TRADE_CLOSED" if paid_at.is_some() => RemoteTradeState::Paid,
        "TRADE_CLOSED" => RemoteTradeState::Closed,
        other => return Err(invalid(format!("unknown trade_status {other}"))),
    };
    let amount_fen = match str_field(content, "total_amount") {
        Some(text) => Some(
            proto::yuan_to_fen(text)
                .ok_or_else(|| invalid(format!("total_amount {text:?} is not an amount")))?,
        ),
        None => None,
    };
    if state == RemoteTradeState::Paid && amount_fen.is_none() {
        return Err(invalid("paid trade without total_amount"));
    }
    Ok(RemoteTrade {
        out_trade_no: out_trade_no.to_string(),
        state,
        transaction_id: str_field(content, "trade_no")
            .filter(|s| !s.is_empty())
            .map(String::from),
        amount_fen,
        paid_at,
    })
}

/// Reduces a verified `alipay.trade.fastpay.refund.query` success to a
/// [`RemoteRefund`].
fn remote_refund(
    out_trade_no: &str,
    out_refund_no: &str,
    content: &Value,
) -> Result<RemoteRefund, ProviderError> {
    if let Some(echoed) = str_field(content, "out_request_no") {
        if echoed != out_refund_no {
            return Err(invalid(format!(
                "refund query answered for out_request_no {echoed}, asked about {out_refund_no}"
            )));
        }
    }
    let status = str_field(content, "refund_status");
    let amount = str_field(content, "refund_amount");
    if status.is_none() && amount.is_none() {
        return Err(ProviderError::TradeNotExist);
    }
    let amount_fen = match amount {
        Some(text) => proto::yuan_to_fen(text)
            .ok_or_else(|| invalid(format!("refund_amount {text:?} is not an amount")))?,
        None => 0,
    };
    let state = match status {
        Some("REFUND_SUCCESS") => RemoteRefundState::Succeeded,
        Some("REFUND_PROCESSING") => RemoteRefundState::Processing,
        Some("REFUND_FAIL") => RemoteRefundState::Failed,
        // Older answers carried refund_status only for asynchronous refunds; without
        // it an amount alone is not proof of success, so keep asking.
        None => RemoteRefundState::Processing,
        Some(other) => return Err(invalid(format!("unknown refund_status {other}"))),
    };
    if state == RemoteRefundState::Succeeded && amount_fen <= 0 {
        return Err(invalid("successful refund without refund_amount"));
    }
    Ok(RemoteRefund {
        out_trade_no: out_trade_no.to_string(),
        out_refund_no: out_refund_no.to_string(),
        refund_id: str_field(content, "trade_no")
            .filter(|s| !s.is_empty())
            .map(String::from),
        state,
        amount_fen,
        succeeded_at: (state == RemoteRefundState::Succeeded).then(|| {
            str_field(content, "gmt_refund_pay")
                .and_then(parse_china_time)
                .unwrap_or_else(Utc::now)
        }),
    })
}

/// China Standard Time (+08:00), the zone of every Alipay timestamp.
fn china() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| chrono::Offset::fix(&Utc))
}

/// Formats an instant as Alipay's `yyyy-MM-dd HH:mm:ss` in +08:00.
/// An OpenAPI v3 answer's `alipay-timestamp` (milliseconds) within 15 minutes of `now`: a
/// signed answer captured earlier cannot be played back later as a fresh one.
pub fn fresh_v3_timestamp(ts: &str, now: DateTime<Utc>) -> bool {
    ts.parse::<i64>()
        .is_ok_and(|ms| now.timestamp_millis().abs_diff(ms) <= 15 * 60 * 1000)
}

/// Where to download a bill from: Alipay's bill files carry no signature or hash, so the
/// URL (taken from a verified answer) must lead to Alipay itself over TLS: with an https
/// gateway, an `alipay.com` host, `http://` upgraded to `https://`; with a plain-http
/// gateway (the local emulator), the gateway's own origin only.
pub fn bill_download_target(gateway: &str, url: &str) -> Result<String, String> {
    let origin = |u: &str| -> Option<(String, String)> {
        let (scheme, rest) = u.split_once("://")?;
        let host_port = rest.split(['/', '?', '#']).next()?;
        Some((scheme.to_ascii_lowercase(), host_port.to_ascii_lowercase()))
    };
    let (gw_scheme, gw_host) = origin(gateway).ok_or("the gateway URL has no origin")?;
    let (scheme, host) = origin(url).ok_or("bill_download_url is not a URL")?;
    if gw_scheme == "https" {
        let name = host.split(':').next().unwrap_or_default();
        let on_alipay = name == "alipay.com" || name.ends_with(".alipay.com");
        if !on_alipay || host.contains('@') {
            return Err(format!("bill_download_url is not on alipay.com ({host})"));
        }
        return match scheme.as_str() {
            "https" => Ok(url.to_string()),
            "http" => Ok(format!("https://{}", &url["http://".len()..])),
            _ => Err(format!("bill_download_url has scheme {scheme}")),
        };
    }
    if scheme == gw_scheme && host == gw_host {
        Ok(url.to_string())
    } else {
        Err(format!(
            "bill_download_url is not on the gateway's host ({host})"
        ))
    }
}

pub fn china_time(t: DateTime<Utc>) -> String {
    t.with_timezone(&china()).format(TIME_FORMAT).to_string()
}

/// Parses Alipay's `yyyy-MM-dd HH:mm:ss` (+08:00).
pub fn parse_china_time(text: &str) -> Option<DateTime<Utc>> {
    let naive = NaiveDateTime::parse_from_str(text.trim(), TIME_FORMAT).ok()?;
    china()
        .from_local_datetime(&naive)
        .single()
        .map(|t| t.with_timezone(&Utc))
}

/// Percent-encodes `k=v&...` (keys in map order) for a URL query or a form body.
pub fn encode_form(params: &BTreeMap<String, String>) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", urlencoding::encode(k), urlencoding::encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Parses `application/x-www-form-urlencoded` text (`+` is a space, `%XX` decoded as
/// UTF-8). A repeated key is an error: a signed message has each parameter once.
pub fn parse_form(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            urlencoding::decode(&s.replace('+', " "))
                .map(|c| c.into_owned())
                .map_err(|_| format!("parameter {k:?} is not valid UTF-8 after decoding"))
        };
        let key = decode(k)?;
        let value = decode(v)?;
        if out.insert(key.clone(), value).is_some() {
            return Err(format!("parameter {key} appears twice"));
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod properties;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn content(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    // Alipay's bill files are neither signed nor hashed: only Alipay over TLS (or, with a
    // plain-http gateway, the local emulator's own origin) may serve them.
    #[test]
    fn v3_answers_must_be_fresh() {
        let now = Utc::now();
        let ms = |d: i64| (now.timestamp_millis() + d).to_string();
        assert!(fresh_v3_timestamp(&ms(0), now));
        assert!(fresh_v3_timestamp(&ms(-14 * 60 * 1000), now));
        assert!(!fresh_v3_timestamp(&ms(-16 * 60 * 1000), now));
        assert!(!fresh_v3_timestamp(&ms(16 * 60 * 1000), now));
        assert!(!fresh_v3_timestamp("2026-12-05 10:00:00", now));
        assert!(!fresh_v3_timestamp("", now));
    }

    #[test]
    fn bill_downloads_go_only_to_alipay_over_tls() {
        let prod = "https://openapi.alipay.com/gateway.do";
        let t = |url: &str| bill_download_target(prod, url);
        assert_eq!(
            t("http://dwbillcenter.alipay.com/downloadBillFile.resource?x=1").unwrap(),
            "https://dwbillcenter.alipay.com/downloadBillFile.resource?x=1"
        );
        assert!(t("https://dwbillcenter.alipay.com/f").is_ok());
        for bad in [
            "https://evil.example/f",
            "https://alipay.com.evil.example/f",
            "https://evilalipay.com/f",
            "https://x@dwbillcenter.alipay.com/f",
            "ftp://dwbillcenter.alipay.com/f",
            "dwbillcenter.alipay.com/f",
        ] {
            assert!(t(bad).is_err(), "{bad}");
        }
        let emu = "http://127.0.0.1:8090/gateway.do";
        assert!(
            bill_download_target(emu, "http://127.0.0.1:8090/downloadBillFile.resource?a").is_ok()
        );
        assert!(bill_download_target(emu, "http://127.0.0.1:9999/f").is_err());
        assert!(bill_download_target(emu, "http://evil.example/f").is_err());
    }

    #[test]
    fn codes_map_to_provider_errors() {
        let err = |sub: &str| {
            check_code(&content(&format!(
                r#"{{"code":"40004","msg":"Business Failed","sub_code":"{sub}","sub_msg":"m"}}"#
            )))
            .unwrap_err()
        };
        assert!(check_code(&content(r#"{"code":"10000","msg":"Success"}"#)).is_ok());
        assert_eq!(err("ACQ.TRADE_NOT_EXIST"), ProviderError::TradeNotExist);
        assert_eq!(err("ACQ.TRADE_HAS_SUCCESS"), ProviderError::AlreadyPaid);
        assert_eq!(err("ACQ.TRADE_HAS_CLOSE"), ProviderError::AlreadyClosed);
        assert!(err("ACQ.SYSTEM_ERROR").is_retryable());
        assert!(err("aop.ACQ.SYSTEM_ERROR").is_retryable());
        assert!(matches!(
            err("ACQ.CONTEXT_INCONSISTENT"),
            ProviderError::Rejected { code, .. } if code == "ACQ.CONTEXT_INCONSISTENT"
        ));
        let unavailable = check_code(&content(
            r#"{"code":"20000","msg":"Service Currently Unavailable","sub_code":"isp.unknow-error"}"#,
        ));
        assert!(unavailable.unwrap_err().is_retryable());
        let bad_sig = check_code(&content(
            r#"{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.invalid-signature","sub_msg":"验签出错"}"#,
        ));
        assert_eq!(
            bad_sig.unwrap_err(),
            ProviderError::SignatureRejected("验签出错".into())
        );
        let plain = check_code(&content(
            r#"{"code":"40001","msg":"Missing Required Arguments"}"#,
        ));
        assert_eq!(
            plain.unwrap_err(),
            ProviderError::Rejected {
                code: "40001".into(),
                message: "Missing Required Arguments".into()
            }
        );
    }

    #[test]
    fn query_states_and_amounts_are_exact() {
        let q = |status: &str, amount: &str| {
            remote_trade(
                "o1",
                &content(&format!(
                    r#"{{"code":"10000","trade_status":"{status}","total_amount":"{amount}","trade_no":"2026x","send_pay_date":"2026-01-02 03:04:05"}}"#
                )),
            )
        };
        let paid = q("TRADE_SUCCESS", "12.34").unwrap();
        assert_eq!(paid.state, RemoteTradeState::Paid);
        assert_eq!(paid.amount_fen, Some(1234));
        assert_eq!(
            paid.paid_at.unwrap().to_rfc3339(),
            "2026-01-01T19:04:05+00:00"
        );
        assert_eq!(q("TRADE_FINISHED", "0.1").unwrap().amount_fen, Some(10));
        assert_eq!(
            q("WAIT_BUYER_PAY", "1").unwrap().state,
            RemoteTradeState::Pending
        );
        // Closed after payment (send_pay_date set) = refunded in full: still paid.
        let refunded = q("TRADE_CLOSED", "1.00").unwrap();
        assert_eq!(refunded.state, RemoteTradeState::Paid);
        assert!(refunded.paid_at.is_some());
        let closed = remote_trade(
            "o1",
            &content(r#"{"code":"10000","trade_status":"TRADE_CLOSED","total_amount":"1.00"}"#),
        )
        .unwrap();
        assert_eq!(closed.state, RemoteTradeState::Closed);
        assert!(q("TRADE_SUCCESS", "1.001").is_err());
        assert!(q("TRADE_SUCCESS", "1e3").is_err());
        assert!(q("SOMETHING_ELSE", "1.00").is_err());
    }

    #[test]
    fn refund_query_answers_map() {
        let r = |text: &str| remote_refund("o1", "r1", &content(text));
        let ok = r(r#"{"code":"10000","out_request_no":"r1","refund_amount":"0.30","refund_status":"REFUND_SUCCESS","gmt_refund_pay":"2026-01-02 03:04:05","trade_no":"2026x"}"#).unwrap();
        assert_eq!(ok.state, RemoteRefundState::Succeeded);
        assert_eq!(ok.amount_fen, 30);
        assert_eq!(ok.refund_id.as_deref(), Some("2026x"));
        assert_eq!(
            ok.succeeded_at.unwrap().to_rfc3339(),
            "2026-01-01T19:04:05+00:00"
        );
        assert_eq!(
            r(r#"{"code":"10000","out_request_no":"r1","out_trade_no":"o1"}"#),
            Err(ProviderError::TradeNotExist)
        );
        assert_eq!(
            r(r#"{"code":"10000","refund_amount":"1.00"}"#)
                .unwrap()
                .state,
            RemoteRefundState::Processing
        );
        assert_eq!(
            r(r#"{"code":"10000","refund_amount":"1.00","refund_status":"REFUND_FAIL"}"#)
                .unwrap()
                .state,
            RemoteRefundState::Failed
        );
        assert!(r(r#"{"code":"10000","out_request_no":"r2","refund_amount":"1.00","refund_status":"REFUND_SUCCESS"}"#).is_err());
        assert!(
            r(r#"{"code":"10000","refund_amount":"1.001","refund_status":"REFUND_SUCCESS"}"#)
                .is_err()
        );
        assert!(r(r#"{"code":"10000","refund_status":"REFUNDED"}"#).is_err());
    }

    #[test]
    fn forms_round_trip_and_plus_is_space() {
        let parsed = parse_form("a=1+2&b=%E4%B8%AD%2B&c=&d").unwrap();
        assert_eq!(parsed["a"], "1 2");
        assert_eq!(parsed["b"], "中+");
        assert_eq!(parsed["c"], "");
        assert_eq!(parsed["d"], "");
        assert!(parse_form("a=1&a=2").is_err());
        assert!(parse_form("a=%FF").is_err());
        let mut map = BTreeMap::new();
        map.insert(
            "biz_content".to_string(),
            r#"{"subject":"a b&c=d+中"}"#.to_string(),
        );
        map.insert("timestamp".to_string(), "2026-01-02 03:04:05".to_string());
        assert_eq!(parse_form(&encode_form(&map)).unwrap(), map);
    }

    #[test]
    fn v3_paths_cover_the_server_calls_only() {
        assert_eq!(
            v3_path("alipay.trade.fastpay.refund.query").as_deref(),
            Some("/v3/alipay/trade/fastpay/refund/query")
        );
        assert_eq!(
            v3_path("alipay.trade.precreate").as_deref(),
            Some("/v3/alipay/trade/precreate")
        );
        assert_eq!(v3_path("alipay.trade.page.pay"), None);
        assert_eq!(v3_path("alipay.trade.cancel"), None);
    }

    #[test]
    fn v3_answers_are_read_only_when_verified() {
        let paid = r#"{"out_trade_no":"A1","trade_status":"TRADE_SUCCESS","total_amount":"1.00"}"#;
        let content = v3_content("alipay.trade.query", 200, paid, true).unwrap();
        assert!(check_code(&content).is_ok());
        assert_eq!(content["trade_status"], "TRADE_SUCCESS");
        assert_eq!(
            remote_trade("A1", &content).unwrap().state,
            RemoteTradeState::Paid
        );
        // The same answer without a valid alipay-signature changes nothing.
        assert!(matches!(
            v3_content("alipay.trade.query", 200, paid, false),
            Err(ProviderError::InvalidResponse(_))
        ));
        // A verified business error reads like gateway.do's; an unverified one is
        // unverifiable (never "the trade does not exist").
        let missing = r#"{"code":"ACQ.TRADE_NOT_EXIST","message":"交易不存在"}"#;
        let content = v3_content("alipay.trade.query", 400, missing, true).unwrap();
        assert!(matches!(
            check_code(&content),
            Err(ProviderError::TradeNotExist)
        ));
        assert!(matches!(
            v3_content("alipay.trade.query", 400, missing, false),
            Err(ProviderError::InvalidResponse(_))
        ));
        // Answers that cannot move money are believed unsigned.
        assert!(matches!(
            v3_content("alipay.trade.query", 503, "", false),
            Err(ProviderError::Unavailable(_))
        ));
        assert!(matches!(
            v3_content(
                "alipay.trade.query",
                401,
                r#"{"code":"invalid-signature","message":"x"}"#,
                false
            ),
            Err(ProviderError::SignatureRejected(_))
        ));
        assert!(matches!(
            v3_content("alipay.trade.query", 200, "not json", true),
            Err(ProviderError::InvalidResponse(_))
        ));
    }

    #[test]
    fn china_time_round_trips() {
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 19, 4, 5).unwrap();
        assert_eq!(china_time(t), "2026-01-02 03:04:05");
        assert_eq!(parse_china_time("2026-01-02 03:04:05"), Some(t));
        assert_eq!(parse_china_time("2026-01-02T03:04:05"), None);
    }
}
