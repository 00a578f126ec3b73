//! WeChat Pay API v3 client: native / h5 / jsapi / app prepay, query, close,
//! refunds, and payment / refund notification verification. Every request is signed (`WECHATPAY2-SHA256-RSA2048`);
//! every 2xx response, 204 included, is verified before it is trusted.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use api_types::payment::{PaymentChannel, SdkParams};
use chrono::{DateTime, FixedOffset, Utc};
use fenpay_proto::wechat::{
    self as proto, ApiErrorBody, NotificationEnvelope, RefundResource, Transaction,
};
use fenpay_proto::{Certificate, RsaPrivateKey, RsaPublicKey};
use reqwest::header::HeaderMap;
use serde_json::json;

use super::{
    PaymentNotice, PrepayRequest, PrepayResponse, ProviderError, RefundRequest, RemoteRefund,
    RemoteRefundState, RemoteTrade, RemoteTradeState,
};
use crate::config::Secret;
use crate::domain::bills::BillFetch;

/// How we trust WeChat Pay's signatures.
#[derive(Clone, Debug)]
pub enum PlatformTrust {
    /// WeChat Pay public key and its id (`PUB_KEY_ID_...`), the mode for new merchants.
    PublicKey { id: String, key: RsaPublicKey },
    /// Platform certificates downloaded from `/v3/certificates` (decrypted with the
    /// APIv3 key) and cached by serial.
    Certificates,
}

/// Everything the client needs.
#[derive(Clone, Debug)]
pub struct WechatClientConfig {
    pub mch_id: String,
    pub app_id: String,
    pub merchant_serial: String,
    pub merchant_key: RsaPrivateKey,
    pub api_v3_key: Secret,
    pub trust: PlatformTrust,
    pub base_url: String,
    pub notify_url: String,
    /// Where WeChat sends `REFUND.*` notifications.
    pub refund_notify_url: String,
    pub timeout: Duration,
}

/// The client. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct WechatClient {
    cfg: WechatClientConfig,
    http: reqwest::Client,
    certs: RwLock<CertCache>,
}

#[derive(Debug, Default)]
struct CertCache {
    by_serial: HashMap<String, Certificate>,
    fetched_at: Option<Instant>,
}

/// Minimum gap between certificate downloads triggered by an unknown serial.
const CERT_REFRESH_GAP: Duration = Duration::from_secs(60);

impl WechatClient {
    pub fn new(cfg: WechatClientConfig) -> Result<Self, ProviderError> {
        if cfg.api_v3_key.expose().len() != 32 {
            return Err(ProviderError::NotConfigured(
                "WECHAT_PAY_API_V3_KEY must be exactly 32 bytes".into(),
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("fenpay/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ProviderError::NotConfigured(e.to_string()))?;
        Ok(WechatClient {
            cfg,
            http,
            certs: RwLock::new(CertCache::default()),
        })
    }

    pub fn config(&self) -> &WechatClientConfig {
        &self.cfg
    }

    /// Open a trade for the buyer.
    pub async fn prepay(&self, req: &PrepayRequest) -> Result<PrepayResponse, ProviderError> {
        let (path, mut body) = match req.channel {
            PaymentChannel::Native => ("/v3/pay/transactions/native", self.base_body(req)),
            PaymentChannel::H5 => {
                let mut body = self.base_body(req);
                body["scene_info"] = json!({
                    "payer_client_ip": req.client_ip,
                    "h5_info": {"type": "Wap"}
                });
                ("/v3/pay/transactions/h5", body)
            }
            PaymentChannel::Jsapi => {
                let openid = req.openid.clone().ok_or_else(|| ProviderError::Rejected {
                    code: "PARAM_ERROR".into(),
                    message: "jsapi requires openid".into(),
                })?;
                let mut body = self.base_body(req);
                body["payer"] = json!({ "openid": openid });
                ("/v3/pay/transactions/jsapi", body)
            }
            PaymentChannel::App => ("/v3/pay/transactions/app", self.base_body(req)),
            other => {
                return Err(ProviderError::Rejected {
                    code: "unsupported_channel".into(),
                    message: format!("WeChat Pay does not support the {} channel", other.as_str()),
                })
            }
        };
        if matches!(req.channel, PaymentChannel::Native | PaymentChannel::H5) {
            body["scene_info"]
                .as_object_mut()
                .map(|o| o.insert("payer_client_ip".into(), json!(req.client_ip)));
        }
        let (_, text) = self.call("POST", path, Some(body.to_string())).await?;
        let value: serde_json::Value = parse_json(&text)?;
        let field = |name: &str| {
            value[name]
                .as_str()
                .map(String::from)
                .ok_or_else(|| ProviderError::InvalidResponse(format!("missing {name}")))
        };
        Ok(match req.channel {
            PaymentChannel::Native => PrepayResponse {
                qr_code_url: Some(field("code_url")?),
                ..Default::default()
            },
            PaymentChannel::H5 => PrepayResponse {
                h5_url: Some(field("h5_url")?),
                ..Default::default()
            },
            PaymentChannel::Jsapi => PrepayResponse {
                sdk_params: Some(self.jsapi_params(&field("prepay_id")?)?),
                ..Default::default()
            },
            _ => PrepayResponse {
                sdk_params: Some(self.app_params(&field("prepay_id")?)?),
                ..Default::default()
            },
        })
    }

    fn base_body(&self, req: &PrepayRequest) -> serde_json::Value {
        let expire: DateTime<FixedOffset> = req.expire_at.with_timezone(&china());
        json!({
            "appid": self.cfg.app_id,
            "mchid": self.cfg.mch_id,
            "description": truncate_bytes(&req.description, 127),
            "out_trade_no": req.out_trade_no,
            "time_expire": expire.to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
            "notify_url": self.cfg.notify_url,
            "amount": {"total": req.amount_fen, "currency": "CNY"},
        })
    }

    fn jsapi_params(&self, prepay_id: &str) -> Result<SdkParams, ProviderError> {
        let ts = Utc::now().timestamp().to_string();
        let nonce = proto::nonce_str(32);
        let package = format!("prepay_id={prepay_id}");
        let sign = proto::jsapi_pay_sign(
            &self.cfg.app_id,
            &ts,
            &nonce,
            &package,
            &self.cfg.merchant_key,
        )
        .map_err(|e| ProviderError::InvalidResponse(e.to_string()))?;
        Ok(SdkParams::WechatJsapi {
            app_id: self.cfg.app_id.clone(),
            time_stamp: ts,
            nonce_str: nonce,
            package,
            sign_type: "RSA".into(),
            pay_sign: sign,
        })
    }

    fn app_params(&self, prepay_id: &str) -> Result<SdkParams, ProviderError> {
        let ts = Utc::now().timestamp().to_string();
        let nonce = proto::nonce_str(32);
        let sign = proto::app_pay_sign(
            &self.cfg.app_id,
            &ts,
            &nonce,
            prepay_id,
            &self.cfg.merchant_key,
        )
        .map_err(|e| ProviderError::InvalidResponse(e.to_string()))?;
        Ok(SdkParams::WechatApp {
            appid: self.cfg.app_id.clone(),
            partnerid: self.cfg.mch_id.clone(),
            prepayid: prepay_id.to_string(),
            package: "Sign=WXPay".into(),
            noncestr: nonce,
            timestamp: ts,
            sign,
        })
    }

    /// The day's trade bill (`GET /v3/bill/tradebill`, bill_type ALL, GZIP), downloaded,
    /// checked against the verified answer's SHA-1 and parsed. A verified
    /// `NO_STATEMENT_EXIST` / `STATEMENT_CREATING` is [`BillFetch::NotReady`].
    pub async fn trade_bill(&self, day: chrono::NaiveDate) -> Result<BillFetch, ProviderError> {
        let path = format!(
            "/v3/bill/tradebill?bill_date={}&bill_type=ALL&tar_type=GZIP",
            day.format("%Y-%m-%d")
        );
        match self.bill_file(&path).await? {
            Err(reason) => Ok(BillFetch::NotReady { reason }),
            Ok(file) => {
                let (rows, totals) = super::bills::wechat::parse_trade_bill(&file)
                    .map_err(|e| ProviderError::InvalidResponse(e.to_string()))?;
                Ok(BillFetch::Ready { day, rows, totals })
            }
        }
    }

    /// The day's fund-flow bill of the basic account (`GET /v3/bill/fundflowbill`).
    pub async fn fundflow_bill(
        &self,
        day: chrono::NaiveDate,
    ) -> Result<FundFlowFetch, ProviderError> {
        let path = format!(
            "/v3/bill/fundflowbill?bill_date={}&account_type=BASIC&tar_type=GZIP",
            day.format("%Y-%m-%d")
        );
        match self.bill_file(&path).await? {
            Err(reason) => Ok(FundFlowFetch::NotReady { reason }),
            Ok(file) => {
                let (rows, totals) = super::bills::wechat::parse_fundflow_bill(&file)
                    .map_err(|e| ProviderError::InvalidResponse(e.to_string()))?;
                Ok(FundFlowFetch::Ready { day, rows, totals })
            }
        }
    }

    /// Ask for a bill (signed request, verified answer), download it from the answer's
    /// `download_url` with our `Authorization`, gunzip, check the SHA-1. `Ok(Err(reason))`:
    /// not ready yet.
    async fn bill_file(&self, path: &str) -> Result<Result<Vec<u8>, String>, ProviderError> {
        let text = match self.call("GET", path, None).await {
            Ok((_, text)) => text,
            Err(ProviderError::Rejected { code, message })
                if code == "NO_STATEMENT_EXIST" || code == "STATEMENT_CREATING" =>
            {
                return Ok(Err(format!("{code}: {message}")))
            }
            Err(e) => return Err(e),
        };
        let answer: BillAnswer = parse_json(&text)?;
        // Our Authorization goes only to the provider's own host.
        let download_path = answer
            .download_url
            .strip_prefix(self.cfg.base_url.trim_end_matches('/'))
            .filter(|rest| rest.starts_with('/'))
            .ok_or_else(|| {
                ProviderError::InvalidResponse("bill download_url is not on the API host".into())
            })?;
        let (status, headers, bytes) = self.send_signed_get(download_path).await?;
        if status != 200 {
            let authenticity = if headers.contains_key("wechatpay-signature") {
                match self.verify_signature(&headers, &bytes).await {
                    Ok(()) => Authenticity::Verified,
                    Err(e) => Authenticity::Invalid(e.to_string()),
                }
            } else {
                Authenticity::Unsigned
            };
            return Err(map_error(status, &bytes, &authenticity));
        }
        verify_bill_file(&bytes, &answer.hash_type, &answer.hash_value).map(Ok)
    }

    /// The merchant's `Authorization` for one request (a fresh timestamp and nonce).
    fn authorization(
        &self,
        method: &str,
        path_and_query: &str,
        body: &str,
    ) -> Result<String, ProviderError> {
        proto::authorization(
            &self.cfg.mch_id,
            &self.cfg.merchant_serial,
            &self.cfg.merchant_key,
            method,
            path_and_query,
            Utc::now().timestamp(),
            &proto::nonce_str(32),
            body,
        )
        .map_err(|e| ProviderError::NotConfigured(format!("signing failed: {e}")))
    }

    /// A signed GET whose answer is returned as is (the bill download is not signed).
    async fn send_signed_get(
        &self,
        path_and_query: &str,
    ) -> Result<(u16, HashMap<String, String>, Vec<u8>), ProviderError> {
        let auth = self.authorization("GET", path_and_query, "")?;
        let resp = self
            .http
            .get(format!(
                "{}{}",
                self.cfg.base_url.trim_end_matches('/'),
                path_and_query
            ))
            .header("Authorization", auth)
            .header("Wechatpay-Serial", self.accept_serial())
            .send()
            .await
            .map_err(|e| ProviderError::Unavailable(format!("bill download: {e}")))?;
        let status = resp.status().as_u16();
        let headers = header_map(resp.headers());
        let bytes = super::read_capped(resp, super::bills::MAX_BILL_BYTES, "bill download").await?;
        Ok((status, headers, bytes))
    }

    /// Query a trade by our order number.
    pub async fn query(&self, out_trade_no: &str) -> Result<RemoteTrade, ProviderError> {
        let path = format!(
            "/v3/pay/transactions/out-trade-no/{}?mchid={}",
            urlencoding::encode(out_trade_no),
            urlencoding::encode(&self.cfg.mch_id)
        );
        let text = match self.call("GET", &path, None).await {
            Ok((_, text)) => text,
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
        let tx: Transaction = parse_json(&text)?;
        self.check_identity(&tx)?;
        answered_trade(out_trade_no, &tx)
    }

    /// Open a refund (`POST /v3/refund/domestic/refunds`). WeChat answers a repeated
    /// `out_refund_no` with the refund it already has, so retrying is safe. A new
    /// refund usually comes back `Processing`; the result arrives by notification
    /// ([`Self::verify_refund_notification`]) or [`Self::query_refund`].
    pub async fn refund(&self, req: &RefundRequest) -> Result<RemoteRefund, ProviderError> {
        let mut body = json!({
            "out_trade_no": req.out_trade_no,
            "out_refund_no": req.out_refund_no,
            "amount": {"refund": req.amount_fen, "total": req.total_fen, "currency": "CNY"},
        });
        if let Some(reason) = req
            .reason
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
        {
            // string[1, 80]
            body["reason"] = json!(reason.chars().take(80).collect::<String>());
        }
        if !self.cfg.refund_notify_url.is_empty() {
            body["notify_url"] = json!(self.cfg.refund_notify_url);
        }
        let (_, text) = self
            .call(
                "POST",
                "/v3/refund/domestic/refunds",
                Some(body.to_string()),
            )
            .await?;
        let answer: RefundAnswer = parse_json(&text)?;
        let refund = answer.into_remote()?;
        if refund.out_refund_no != req.out_refund_no || refund.out_trade_no != req.out_trade_no {
            return Err(ProviderError::InvalidResponse(format!(
                "refund answer is for {}/{}, asked for {}/{}",
                refund.out_trade_no, refund.out_refund_no, req.out_trade_no, req.out_refund_no
            )));
        }
        Ok(refund)
    }

    /// Where a refund stands (`GET /v3/refund/domestic/refunds/{out_refund_no}`);
    /// `TradeNotExist` when WeChat has no such refund (404 `RESOURCE_NOT_EXISTS`).
    pub async fn query_refund(&self, out_refund_no: &str) -> Result<RemoteRefund, ProviderError> {
        let path = format!(
            "/v3/refund/domestic/refunds/{}",
            urlencoding::encode(out_refund_no)
        );
        let (_, text) = self.call("GET", &path, None).await?;
        let answer: RefundAnswer = parse_json(&text)?;
        let refund = answer.into_remote()?;
        if refund.out_refund_no != out_refund_no {
            return Err(ProviderError::InvalidResponse(format!(
                "refund answer is for {}, asked for {out_refund_no}",
                refund.out_refund_no
            )));
        }
        Ok(refund)
    }

    /// Close an unpaid trade. `AlreadyPaid` when the buyer paid first.
    pub async fn close(&self, out_trade_no: &str) -> Result<(), ProviderError> {
        let path = format!(
            "/v3/pay/transactions/out-trade-no/{}/close",
            urlencoding::encode(out_trade_no)
        );
        let body = json!({ "mchid": self.cfg.mch_id }).to_string();
        self.call("POST", &path, Some(body)).await.map(|_| ())
    }

    /// Verify a notification (signature over the raw body, timestamp skew, serial mode),
    /// decrypt it and reduce it to a [`PaymentNotice`].
    pub async fn verify_notification(
        &self,
        headers: &HashMap<String, String>,
        body: &[u8],
    ) -> Result<(PaymentNotice, Transaction), ProviderError> {
        let (_, tx): (_, Transaction) = self
            .open_notification(headers, body, &["TRANSACTION.SUCCESS"], "transaction")
            .await?;
        if tx.trade_state != "SUCCESS" {
            return Err(ProviderError::InvalidResponse(format!(
                "trade_state {} in a success notification",
                tx.trade_state
            )));
        }
        let trade = remote_trade(&tx);
        let notice = PaymentNotice {
            out_trade_no: tx.out_trade_no.clone(),
            transaction_id: trade
                .transaction_id
                .clone()
                .ok_or_else(|| ProviderError::InvalidResponse("missing transaction_id".into()))?,
            amount_fen: trade
                .amount_fen
                .ok_or_else(|| ProviderError::InvalidResponse("missing amount".into()))?,
            paid_at: trade.paid_at.unwrap_or_else(Utc::now),
            app_id: tx.appid.clone(),
            merchant_id: tx.mchid.clone(),
            paid: true,
        };
        Ok((notice, tx))
    }

    /// Verify a refund notification (`REFUND.SUCCESS` / `REFUND.ABNORMAL` /
    /// `REFUND.CLOSED`) exactly like a payment notification (signature over the raw
    /// body, timestamp skew, serial mode), decrypt its `refund` resource and check it
    /// is ours (`mchid`) and agrees with the event.
    pub async fn verify_refund_notification(
        &self,
        headers: &HashMap<String, String>,
        body: &[u8],
    ) -> Result<RemoteRefund, ProviderError> {
        let (envelope, refund): (_, RefundResource) = self
            .open_notification(
                headers,
                body,
                &["REFUND.SUCCESS", "REFUND.ABNORMAL", "REFUND.CLOSED"],
                "refund",
            )
            .await?;
        if refund.mchid != self.cfg.mch_id {
            return Err(ProviderError::InvalidResponse(format!(
                "refund belongs to mchid {}",
                refund.mchid
            )));
        }
        let expected = envelope.event_type.trim_start_matches("REFUND.");
        if refund.refund_status != expected {
            return Err(ProviderError::InvalidResponse(format!(
                "refund_status {} in a {} notification",
                refund.refund_status, envelope.event_type
            )));
        }
        Ok(RemoteRefund {
            out_trade_no: refund.out_trade_no,
            out_refund_no: refund.out_refund_no,
            refund_id: Some(refund.refund_id).filter(|id| !id.is_empty()),
            state: refund_state(&refund.refund_status)?,
            amount_fen: refund.amount.refund,
            succeeded_at: refund.success_time.as_deref().and_then(parse_time),
        })
    }

    /// What both notification kinds share: signature (raw body, skew, serial mode),
    /// the envelope, an expected `event_type` and `original_type`, and decryption.
    async fn open_notification<T: serde::de::DeserializeOwned>(
        &self,
        headers: &HashMap<String, String>,
        body: &[u8],
        events: &[&str],
        original_type: &str,
    ) -> Result<(NotificationEnvelope, T), ProviderError> {
        self.verify_signature(headers, body).await?;
        let envelope: NotificationEnvelope = serde_json::from_slice(body)
            .map_err(|e| ProviderError::InvalidResponse(format!("notification JSON: {e}")))?;
        if !events.contains(&envelope.event_type.as_str()) {
            return Err(ProviderError::InvalidResponse(format!(
                "unexpected event_type {}",
                envelope.event_type
            )));
        }
        // Doc samples leave original_type out on payments; when present it must match.
        let kind = envelope.resource.original_type.as_str();
        if !kind.is_empty() && !original_type.is_empty() && kind != original_type {
            return Err(ProviderError::InvalidResponse(format!(
                "unexpected original_type {kind}"
            )));
        }
        let resource = envelope
            .decrypt_resource(self.cfg.api_v3_key.expose().as_bytes())
            .map_err(|e| ProviderError::InvalidResponse(format!("resource: {e}")))?;
        Ok((envelope, resource))
    }

    fn check_identity(&self, tx: &Transaction) -> Result<(), ProviderError> {
        if tx.mchid != self.cfg.mch_id || tx.appid != self.cfg.app_id {
            return Err(ProviderError::InvalidResponse(format!(
                "trade belongs to mchid {} / appid {}",
                tx.mchid, tx.appid
            )));
        }
        Ok(())
    }

    /// Send a signed request; verify and return the body of a 2xx answer. A non-2xx
    /// answer is verified too when it carries signature headers: only a verified one
    /// may say that a trade does not exist or is closed (see [`map_error`]).
    async fn call(
        &self,
        method: &str,
        path_and_query: &str,
        body: Option<String>,
    ) -> Result<(u16, String), ProviderError> {
        let body_text = body.unwrap_or_default();
        let auth = self.authorization(method, path_and_query, &body_text)?;
        let url = format!("{}{}", self.cfg.base_url, path_and_query);
        let mut req = match method {
            "GET" => self.http.get(&url),
            "DELETE" => self.http.delete(&url),
            "PUT" => self
                .http
                .put(&url)
                .header("Content-Type", "application/json")
                .body(body_text),
            _ => self
                .http
                .post(&url)
                .header("Content-Type", "application/json")
                .body(body_text),
        };
        req = req
            .header("Authorization", auth)
            .header("Accept", "application/json")
            .header("Wechatpay-Serial", self.accept_serial());
        let resp = req.send().await.map_err(|e| {
            if e.is_timeout() {
                ProviderError::Unavailable("timed out".into())
            } else {
                ProviderError::Unavailable(format!("request failed: {e}"))
            }
        })?;
        let status = resp.status().as_u16();
        let headers = header_map(resp.headers());
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| ProviderError::Unavailable(format!("reading response: {e}")))?;
        if (200..300).contains(&status) {
            self.verify_signature(&headers, &bytes).await?;
            let text = String::from_utf8(bytes.to_vec())
                .map_err(|_| ProviderError::InvalidResponse("response is not UTF-8".into()))?;
            return Ok((status, text));
        }
        let authenticity = if headers.contains_key("wechatpay-signature") {
            match self.verify_signature(&headers, &bytes).await {
                Ok(()) => Authenticity::Verified,
                Err(e) => Authenticity::Invalid(e.to_string()),
            }
        } else {
            Authenticity::Unsigned
        };
        Err(map_error(status, &bytes, &authenticity))
    }

    fn accept_serial(&self) -> String {
        match &self.cfg.trust {
            PlatformTrust::PublicKey { id, .. } => id.clone(),
            PlatformTrust::Certificates => self
                .certs
                .read()
                .ok()
                .and_then(|c| {
                    c.by_serial
                        .values()
                        .max_by_key(|cert| cert.not_after)
                        .map(|cert| cert.serial_hex.clone())
                })
                .unwrap_or_default(),
        }
    }

    /// Check `Wechatpay-Signature` over `ts\nnonce\nbody\n` with the key `Wechatpay-Serial` names.
    async fn verify_signature(
        &self,
        headers: &HashMap<String, String>,
        body: &[u8],
    ) -> Result<(), ProviderError> {
        let get = |name: &str| {
            headers
                .get(name)
                .map(String::as_str)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| ProviderError::BadSignature(format!("missing {name} header")))
        };
        let serial = get("wechatpay-serial")?;
        let timestamp = get("wechatpay-timestamp")?;
        let nonce = get("wechatpay-nonce")?;
        let signature = get("wechatpay-signature")?;
        if proto::is_signature_probe(signature) {
            return Err(ProviderError::BadSignature(
                "signature probe (WECHATPAY/SIGNTEST/) rejected".into(),
            ));
        }
        let key = self.key_for_serial(serial).await?;
        proto::verify_signed_message(
            &key,
            timestamp,
            nonce,
            body,
            signature,
            Utc::now().timestamp(),
        )
        .map_err(|e| ProviderError::BadSignature(e.to_string()))
    }

    async fn key_for_serial(&self, serial: &str) -> Result<RsaPublicKey, ProviderError> {
        match &self.cfg.trust {
            PlatformTrust::PublicKey { id, key } => {
                if proto::is_public_key_id(serial) && serial == id {
                    Ok(key.clone())
                } else {
                    Err(ProviderError::BadSignature(format!(
                        "unexpected Wechatpay-Serial {serial}"
                    )))
                }
            }
            PlatformTrust::Certificates => {
                if let Some(key) = self.cached_cert_key(serial) {
                    return Ok(key);
                }
                self.refresh_certificates().await?;
                self.cached_cert_key(serial).ok_or_else(|| {
                    ProviderError::BadSignature(format!("unknown platform certificate {serial}"))
                })
            }
        }
    }

    fn cached_cert_key(&self, serial: &str) -> Option<RsaPublicKey> {
        let cache = self.certs.read().ok()?;
        let cert = cache.by_serial.get(&serial.to_ascii_uppercase())?;
        cert.is_valid_at(Utc::now())
            .then(|| cert.public_key.clone())
    }

    /// Download `/v3/certificates`. The certificates are authenticated by decrypting
    /// them with the APIv3 key (only WeChat and the merchant know it); the response
    /// signature is then checked with the certificate it names.
    pub async fn refresh_certificates(&self) -> Result<usize, ProviderError> {
        if let Ok(cache) = self.certs.read() {
            if cache
                .fetched_at
                .is_some_and(|t| t.elapsed() < CERT_REFRESH_GAP)
            {
                return Ok(cache.by_serial.len());
            }
        }
        let path = "/v3/certificates";
        let auth = self.authorization("GET", path, "")?;
        let resp = self
            .http
            .get(format!("{}{}", self.cfg.base_url, path))
            .header("Authorization", auth)
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|e| ProviderError::Unavailable(format!("certificates: {e}")))?;
        let status = resp.status().as_u16();
        let headers = header_map(resp.headers());
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| ProviderError::Unavailable(format!("certificates: {e}")))?;
        if !(200..300).contains(&status) {
            let no_certificates = status == 404
                && serde_json::from_slice::<ApiErrorBody>(&bytes)
                    .is_ok_and(|b| b.code == "RESOURCE_NOT_EXISTS");
            if no_certificates {
                // A merchant registered since late 2024 has the public key only.
                tracing::warn!(
                    "WeChat Pay has no platform certificate for this merchant: configure its WeChat Pay public key (WECHAT_PAY_PUBLIC_KEY_PATH and WECHAT_PAY_PUBLIC_KEY_ID)"
                );
            }
            // Not verifiable here (the certificates are what is being fetched).
            return Err(map_error(status, &bytes, &Authenticity::Unsigned));
        }
        let list: fenpay_proto::wechat::CertificateList =
            parse_json(&String::from_utf8_lossy(&bytes))?;
        let mut fresh = HashMap::new();
        for entry in &list.data {
            let cert = entry
                .decrypt_certificate(self.cfg.api_v3_key.expose().as_bytes())
                .map_err(|e| ProviderError::InvalidResponse(format!("certificate: {e}")))?;
            fresh.insert(cert.serial_hex.to_ascii_uppercase(), cert);
        }
        let serial = headers
            .get("wechatpay-serial")
            .map(|s| s.to_ascii_uppercase())
            .unwrap_or_default();
        let signer = fresh.get(&serial).ok_or_else(|| {
            ProviderError::InvalidResponse(
                "certificates response signed by an unknown certificate".into(),
            )
        })?;
        proto::verify_signed_message(
            &signer.public_key,
            headers
                .get("wechatpay-timestamp")
                .map_or("", String::as_str),
            headers.get("wechatpay-nonce").map_or("", String::as_str),
            &bytes,
            headers
                .get("wechatpay-signature")
                .map_or("", String::as_str),
            Utc::now().timestamp(),
        )
        .map_err(|e| ProviderError::InvalidResponse(format!("certificates signature: {e}")))?;
        let count = fresh.len();
        if let Ok(mut cache) = self.certs.write() {
            cache.by_serial = fresh;
            cache.fetched_at = Some(Instant::now());
        }
        Ok(count)
    }
}

/// What `tradebill` / `fundflowbill` answer.
#[derive(serde::Deserialize)]
struct BillAnswer {
    hash_type: String,
    hash_value: String,
    download_url: String,
}

/// A downloaded (gzip) bill checked against the hash of the verified answer: the
/// SHA-1 of the decompressed file must match, or nothing in it is trusted.
pub fn verify_bill_file(
    gzipped: &[u8],
    hash_type: &str,
    hash_value: &str,
) -> Result<Vec<u8>, ProviderError> {
    if !hash_type.eq_ignore_ascii_case("SHA1") {
        return Err(ProviderError::InvalidResponse(format!(
            "bill hash_type {hash_type:?} is not SHA1"
        )));
    }
    let file =
        super::bills::gunzip(gzipped).map_err(|e| ProviderError::InvalidResponse(e.to_string()))?;
    let actual = fenpay_proto::bills::sha1_hex(&file);
    if !actual.eq_ignore_ascii_case(hash_value.trim()) {
        return Err(ProviderError::InvalidResponse(format!(
            "bill file SHA-1 {actual} does not match hash_value {hash_value}: not trusted"
        )));
    }
    Ok(file)
}

/// A fund-flow bill as fetched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FundFlowFetch {
    NotReady {
        reason: String,
    },
    Ready {
        day: chrono::NaiveDate,
        rows: Vec<super::bills::wechat::FundFlowRow>,
        totals: super::bills::wechat::FundFlowTotals,
    },
}

/// China Standard Time (+08:00), the zone WeChat's timestamps use.
pub fn china() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| chrono::Offset::fix(&Utc))
}

fn truncate_bytes(s: &str, max: usize) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    out
}

/// Lower-cased header map (names are case-insensitive).
pub fn header_map(headers: &HeaderMap) -> HashMap<String, String> {
    headers
        .iter()
        .filter_map(|(k, v)| {
            Some((
                k.as_str().to_ascii_lowercase(),
                v.to_str().ok()?.to_string(),
            ))
        })
        .collect()
}

fn parse_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ProviderError> {
    serde_json::from_str(text).map_err(|e| ProviderError::InvalidResponse(format!("JSON: {e}")))
}

/// How far a non-2xx answer could be authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Authenticity {
    /// Its `Wechatpay-Signature` verified.
    Verified,
    /// No signature headers (WeChat does not sign answers to requests it could not
    /// authenticate; proxies and load balancers never sign).
    Unsigned,
    /// Signature headers that do not verify.
    Invalid(String),
}

/// WeChat's error codes to ours. "No such trade" and "already closed" let a close
/// cancel the order locally, so only a verified answer may say so; an unverified one
/// (a proxy's 404, a stale or forged answer) is transient: ask again later.
fn map_error(status: u16, body: &[u8], authenticity: &Authenticity) -> ProviderError {
    let parsed: Option<ApiErrorBody> = serde_json::from_slice(body).ok();
    let (code, message) = parsed.map(|b| (b.code, b.message)).unwrap_or_else(|| {
        (
            String::new(),
            String::from_utf8_lossy(body).chars().take(200).collect(),
        )
    });
    let verified = *authenticity == Authenticity::Verified;
    let unverified = || {
        let why = match authenticity {
            Authenticity::Verified => "signed, but without WeChat's not-exist code".to_string(),
            Authenticity::Unsigned => "unsigned".to_string(),
            Authenticity::Invalid(e) => format!("signature does not verify: {e}"),
        };
        ProviderError::Unavailable(format!(
            "unverified {status} answer ({why}; code {code:?}): not trusted"
        ))
    };
    if let Authenticity::Invalid(e) = authenticity {
        if status != 404 && status < 500 && status != 429 {
            return ProviderError::BadSignature(format!("HTTP {status} answer: {e}"));
        }
    }
    match code.as_str() {
        "ORDER_NOT_EXIST" | "RESOURCE_NOT_EXISTS" | "ORDER_CLOSED" | "ORDERCLOSED" if !verified => {
            unverified()
        }
        "ORDER_NOT_EXIST" | "RESOURCE_NOT_EXISTS" => ProviderError::TradeNotExist,
        "ORDERPAID" | "ORDER_PAID" => ProviderError::AlreadyPaid,
        "ORDER_CLOSED" | "ORDERCLOSED" => ProviderError::AlreadyClosed,
        "SIGN_ERROR" => ProviderError::SignatureRejected(message),
        "FREQUENCY_LIMITED" | "FREQUENCY_LIMIT_EXCEED" => ProviderError::RateLimited,
        "SYSTEM_ERROR" | "SYSTEMERROR" | "BANKERROR" => ProviderError::Unavailable(message),
        // A 404 without WeChat's not-exist code says nothing about the trade.
        _ if status == 404 => unverified(),
        _ if status == 429 => ProviderError::RateLimited,
        _ if status >= 500 => ProviderError::Unavailable(format!("HTTP {status}")),
        // Only a verified answer is a business refusal (it may fail a refund); an unsigned
        // 4xx could come from any proxy on the way: unknown, retried.
        _ if !verified => unverified(),
        _ => ProviderError::Rejected {
            code: if code.is_empty() {
                format!("HTTP_{status}")
            } else {
                code
            },
            message,
        },
    }
}

/// The `Refund` object the refund endpoints answer (only what we use).
#[derive(serde::Deserialize)]
struct RefundAnswer {
    refund_id: String,
    out_refund_no: String,
    #[serde(default)]
    out_trade_no: String,
    status: String,
    #[serde(default)]
    success_time: Option<String>,
    amount: RefundAnswerAmount,
}

#[derive(serde::Deserialize)]
struct RefundAnswerAmount {
    refund: i64,
}

impl RefundAnswer {
    fn into_remote(self) -> Result<RemoteRefund, ProviderError> {
        Ok(RemoteRefund {
            state: refund_state(&self.status)?,
            succeeded_at: self.success_time.as_deref().and_then(parse_time),
            out_trade_no: self.out_trade_no,
            out_refund_no: self.out_refund_no,
            refund_id: Some(self.refund_id).filter(|id| !id.is_empty()),
            amount_fen: self.amount.refund,
        })
    }
}

/// WeChat's refund `status` / `refund_status` to ours.
fn refund_state(status: &str) -> Result<RemoteRefundState, ProviderError> {
    match status {
        "SUCCESS" => Ok(RemoteRefundState::Succeeded),
        "PROCESSING" => Ok(RemoteRefundState::Processing),
        // ABNORMAL: the money is stuck (e.g. the payer's card was cancelled) and
        // needs the merchant's attention; CLOSED: abandoned.
        "ABNORMAL" => Ok(RemoteRefundState::Abnormal),
        "CLOSED" => Ok(RemoteRefundState::Failed),
        other => Err(ProviderError::InvalidResponse(format!(
            "unknown refund status {other}"
        ))),
    }
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// A query's answer counts only for the order asked about: a verified answer about
/// another trade (misrouted, or replayed within the signature window) is no answer.
fn answered_trade(asked: &str, tx: &Transaction) -> Result<RemoteTrade, ProviderError> {
    if tx.out_trade_no != asked {
        return Err(ProviderError::InvalidResponse(format!(
            "asked about {asked}, the answer is about {}",
            tx.out_trade_no
        )));
    }
    Ok(remote_trade(tx))
}

fn remote_trade(tx: &Transaction) -> RemoteTrade {
    let state = match tx.trade_state.as_str() {
        // REFUND means it was paid first; the money question is settled as paid.
        "SUCCESS" | "REFUND" => RemoteTradeState::Paid,
        "CLOSED" | "REVOKED" | "PAYERROR" => RemoteTradeState::Closed,
        _ => RemoteTradeState::Pending,
    };
    RemoteTrade {
        out_trade_no: tx.out_trade_no.clone(),
        state,
        transaction_id: tx.transaction_id.clone(),
        amount_fen: tx.amount.as_ref().map(|a| a.total),
        paid_at: tx.success_time.as_deref().and_then(parse_time),
    }
}

pub mod complaints;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod properties;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_bill_file_must_match_the_verified_hash() {
        use std::io::Write;
        let file = "交易时间,商户订单号\r\n".as_bytes();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(file).unwrap();
        let gz = gz.finish().unwrap();
        let hash = fenpay_proto::bills::sha1_hex(file);
        assert_eq!(verify_bill_file(&gz, "SHA1", &hash).unwrap(), file);
        assert_eq!(
            verify_bill_file(&gz, "sha1", &hash.to_uppercase()).unwrap(),
            file
        );
        // A tampered file (or a hash for another file) is refused.
        let mut tampered =
            flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        tampered
            .write_all("交易时间,商户订单号\r\nFPX\r\n".as_bytes())
            .unwrap();
        let tampered = tampered.finish().unwrap();
        let e = verify_bill_file(&tampered, "SHA1", &hash).unwrap_err();
        assert!(
            matches!(e, ProviderError::InvalidResponse(ref m) if m.contains("does not match")),
            "{e}"
        );
        assert!(verify_bill_file(&gz, "MD5", &hash).is_err());
        assert!(verify_bill_file(file, "SHA1", &hash).is_err(), "not gzip");
    }

    const V: Authenticity = Authenticity::Verified;

    #[test]
    fn error_mapping_follows_wechat_codes() {
        let body = |code: &str| format!("{{\"code\":\"{code}\",\"message\":\"m\"}}").into_bytes();
        assert_eq!(
            map_error(404, &body("ORDER_NOT_EXIST"), &V),
            ProviderError::TradeNotExist
        );
        assert_eq!(
            map_error(400, &body("ORDERPAID"), &V),
            ProviderError::AlreadyPaid
        );
        assert!(matches!(
            map_error(401, &body("SIGN_ERROR"), &V),
            ProviderError::SignatureRejected(_)
        ));
        assert_eq!(
            map_error(429, &body("FREQUENCY_LIMITED"), &V),
            ProviderError::RateLimited
        );
        assert!(map_error(500, &body("SYSTEM_ERROR"), &V).is_retryable());
        assert!(map_error(502, b"<html>bad gateway</html>", &V).is_retryable());
        assert!(matches!(
            map_error(400, &body("PARAM_ERROR"), &V),
            ProviderError::Rejected { code, .. } if code == "PARAM_ERROR"
        ));
    }

    #[test]
    fn only_a_verified_answer_says_a_trade_does_not_exist() {
        let body = |code: &str| format!("{{\"code\":\"{code}\",\"message\":\"m\"}}").into_bytes();
        let unsigned = Authenticity::Unsigned;
        let invalid = Authenticity::Invalid("bad".into());
        for code in ["ORDER_NOT_EXIST", "RESOURCE_NOT_EXISTS"] {
            assert_eq!(
                map_error(404, &body(code), &V),
                ProviderError::TradeNotExist
            );
            for a in [&unsigned, &invalid] {
                let e = map_error(404, &body(code), a);
                assert!(
                    matches!(&e, ProviderError::Unavailable(m) if m.starts_with("unverified 404")),
                    "{e:?}"
                );
                assert!(e.is_retryable());
            }
        }
        // A 404 without WeChat's code (a proxy, a wrong path) never means "no such trade".
        for a in [&V, &unsigned, &invalid] {
            let e = map_error(404, b"<html>Not Found</html>", a);
            assert!(matches!(e, ProviderError::Unavailable(_)), "{e:?}");
            let e = map_error(404, &body("NOT_FOUND"), a);
            assert!(matches!(e, ProviderError::Unavailable(_)), "{e:?}");
        }
        // "Already closed" also lets a close cancel locally: verified only.
        assert_eq!(
            map_error(400, &body("ORDER_CLOSED"), &V),
            ProviderError::AlreadyClosed
        );
        assert!(map_error(400, &body("ORDER_CLOSED"), &unsigned).is_retryable());
        // Other answers with a signature that does not verify are not trusted either.
        assert!(matches!(
            map_error(403, &body("NOT_ENOUGH"), &invalid),
            ProviderError::BadSignature(_)
        ));
        // Unsigned 401 SIGN_ERROR: WeChat cannot sign an answer to a request it could
        // not authenticate.
        assert!(matches!(
            map_error(401, &body("SIGN_ERROR"), &unsigned),
            ProviderError::SignatureRejected(_)
        ));
        assert!(map_error(500, &body("SYSTEM_ERROR"), &invalid).is_retryable());
        // An unsigned business refusal (a proxy's 403, an unsigned NOT_ENOUGH) is unknown,
        // so it can never fail a refund whose money may have left.
        for (status, code) in [(403, "NOT_ENOUGH"), (400, "PARAM_ERROR"), (408, "")] {
            let e = map_error(status, &body(code), &unsigned);
            assert!(e.is_retryable(), "{status} {code}: {e:?}");
        }
        assert!(matches!(
            map_error(403, &body("NOT_ENOUGH"), &V),
            ProviderError::Rejected { code, .. } if code == "NOT_ENOUGH"
        ));
    }

    #[test]
    fn trade_states_map_to_money_states() {
        let tx = |state: &str| Transaction {
            appid: "a".into(),
            mchid: "m".into(),
            out_trade_no: "o".into(),
            transaction_id: Some("t".into()),
            trade_type: None,
            trade_state: state.into(),
            trade_state_desc: String::new(),
            bank_type: None,
            attach: None,
            success_time: Some("2026-01-02T03:04:05+08:00".into()),
            payer: None,
            amount: None,
        };
        assert_eq!(remote_trade(&tx("SUCCESS")).state, RemoteTradeState::Paid);
        assert_eq!(remote_trade(&tx("REFUND")).state, RemoteTradeState::Paid);
        assert_eq!(remote_trade(&tx("NOTPAY")).state, RemoteTradeState::Pending);
        assert_eq!(
            remote_trade(&tx("USERPAYING")).state,
            RemoteTradeState::Pending
        );
        assert_eq!(remote_trade(&tx("CLOSED")).state, RemoteTradeState::Closed);
        let paid_at = remote_trade(&tx("SUCCESS")).paid_at.unwrap();
        assert_eq!(paid_at.to_rfc3339(), "2026-01-01T19:04:05+00:00");
        // Only an answer about the trade asked about counts.
        assert_eq!(
            answered_trade("o", &tx("SUCCESS")).unwrap().state,
            RemoteTradeState::Paid
        );
        assert!(matches!(
            answered_trade("another", &tx("SUCCESS")),
            Err(ProviderError::InvalidResponse(_))
        ));
    }

    #[test]
    fn refund_states_and_answers_map() {
        assert_eq!(refund_state("SUCCESS"), Ok(RemoteRefundState::Succeeded));
        assert_eq!(
            refund_state("PROCESSING"),
            Ok(RemoteRefundState::Processing)
        );
        assert_eq!(refund_state("CLOSED"), Ok(RemoteRefundState::Failed));
        assert_eq!(refund_state("ABNORMAL"), Ok(RemoteRefundState::Abnormal));
        assert!(refund_state("REFUNDED").is_err());
        let answer: RefundAnswer = serde_json::from_str(
            r#"{"refund_id":"50000000382019052709732678859","out_refund_no":"R1",
                "transaction_id":"1217752501201407033233368018","out_trade_no":"O1",
                "channel":"ORIGINAL","user_received_account":"支付用户零钱",
                "success_time":"2020-12-01T16:18:12+08:00","create_time":"2020-12-01T16:18:12+08:00",
                "status":"SUCCESS","funds_account":"UNSETTLED",
                "amount":{"total":100,"refund":30,"from":[],"payer_total":100,"payer_refund":30,
                          "settlement_refund":30,"settlement_total":100,"discount_refund":0,"currency":"CNY"}}"#,
        )
        .unwrap();
        let refund = answer.into_remote().unwrap();
        assert_eq!(refund.state, RemoteRefundState::Succeeded);
        assert_eq!(refund.amount_fen, 30);
        assert_eq!(refund.out_trade_no, "O1");
        assert_eq!(
            refund.succeeded_at.unwrap().to_rfc3339(),
            "2020-12-01T08:18:12+00:00"
        );
        // Refund error codes.
        let body = |code: &str| format!("{{\"code\":\"{code}\",\"message\":\"m\"}}").into_bytes();
        assert_eq!(
            map_error(404, &body("RESOURCE_NOT_EXISTS"), &V),
            ProviderError::TradeNotExist
        );
        assert!(matches!(
            map_error(403, &body("NOT_ENOUGH"), &V),
            ProviderError::Rejected { code, .. } if code == "NOT_ENOUGH"
        ));
        assert!(matches!(
            map_error(400, &body("INVALID_REQUEST"), &V),
            ProviderError::Rejected { code, .. } if code == "INVALID_REQUEST"
        ));
    }

    #[test]
    fn descriptions_are_cut_at_utf8_boundaries() {
        let s = "积".repeat(50);
        let cut = truncate_bytes(&s, 127);
        assert_eq!(cut.len(), 126);
        assert!(cut.chars().all(|c| c == '积'));
    }
}
