//! Provider clients (WeChat Pay v3, Alipay) and the types they share with the services.
//!
//! Each client exposes the same inherent methods (`prepay`, `query`, `close`) and a
//! notification verifier; services pick the client by [`PaymentMethod`].

pub mod alipay;
pub mod bills;
pub mod wechat;

/// Read a downloaded file's body chunk by chunk, refusing it once it passes `cap` bytes
/// (a bill is never held whole beyond the cap, however long the body).
pub(crate) async fn read_capped(
    mut resp: reqwest::Response,
    cap: u64,
    what: &str,
) -> Result<Vec<u8>, ProviderError> {
    let mut out = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| ProviderError::Unavailable(format!("{what}: {e}")))?
    {
        if (out.len() + chunk.len()) as u64 > cap {
            return Err(ProviderError::InvalidResponse(format!(
                "{what}: the file is larger than {cap} bytes"
            )));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

use api_types::payment::{PaymentChannel, PaymentMethod, SdkParams};
use chrono::{DateTime, Utc};

/// What a provider call can fail with, mapped from each provider's own codes.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum ProviderError {
    /// The provider has no such trade (WeChat ORDER_NOT_EXIST / 404; Alipay ACQ.TRADE_NOT_EXIST).
    #[error("trade does not exist at the provider")]
    TradeNotExist,
    /// The trade is already paid (WeChat ORDERPAID; Alipay ACQ.TRADE_HAS_SUCCESS).
    #[error("trade already paid")]
    AlreadyPaid,
    /// The trade is already closed (WeChat ORDER_CLOSED; Alipay ACQ.TRADE_HAS_CLOSE).
    #[error("trade already closed")]
    AlreadyClosed,
    /// The provider rejected our signature (WeChat SIGN_ERROR; Alipay isv.invalid-signature).
    #[error("provider rejected our signature: {0}")]
    SignatureRejected(String),
    /// Rate limited (WeChat FREQUENCY_LIMITED): retry later.
    #[error("provider rate limited the request")]
    RateLimited,
    /// Transient: 5xx, SYSTEM_ERROR, timeouts, connection failures. Retryable.
    #[error("provider unavailable: {0}")]
    Unavailable(String),
    /// A message claiming to come from the provider failed signature verification
    /// (bad or missing signature, unknown serial, stale timestamp, signature probe).
    #[error("provider signature invalid: {0}")]
    BadSignature(String),
    /// The provider's answer failed verification or could not be parsed. Not trusted.
    #[error("provider response rejected: {0}")]
    InvalidResponse(String),
    /// Any other business error, with the provider's code.
    #[error("provider error {code}: {message}")]
    Rejected { code: String, message: String },
    /// This provider is not configured on this server.
    #[error("provider not configured: {0}")]
    NotConfigured(String),
}

impl ProviderError {
    /// Worth retrying later (jobs and the order-status query use this).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ProviderError::Unavailable(_) | ProviderError::RateLimited
        )
    }
}

/// Everything a provider needs to open a trade.
#[derive(Clone, Debug)]
pub struct PrepayRequest {
    pub out_trade_no: String,
    pub description: String,
    pub amount_fen: i64,
    pub channel: PaymentChannel,
    /// When the provider should stop accepting payment.
    pub expire_at: DateTime<Utc>,
    /// WeChat JSAPI payer.
    pub openid: Option<String>,
    /// Buyer's IP (WeChat H5 requires scene_info.payer_client_ip).
    pub client_ip: String,
}

/// What the buyer needs to pay.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PrepayResponse {
    /// QR content (native / precreate).
    pub qr_code_url: Option<String>,
    /// WeChat H5 URL.
    pub h5_url: Option<String>,
    /// Alipay page/wap cashier URL.
    pub pay_url: Option<String>,
    /// Signed SDK parameters (jsapi/app).
    pub sdk_params: Option<SdkParams>,
}

/// A trade's state as the provider reports it.
#[derive(Clone, Debug, PartialEq)]
pub enum RemoteTradeState {
    /// Waiting for the buyer (WeChat NOTPAY/USERPAYING; Alipay WAIT_BUYER_PAY).
    Pending,
    /// Paid (WeChat SUCCESS, or REFUND after a payment; Alipay TRADE_SUCCESS/TRADE_FINISHED).
    Paid,
    /// Closed (WeChat CLOSED/REVOKED/PAYERROR; Alipay TRADE_CLOSED, which also follows a
    /// full refund: then `paid_at`/`transaction_id` are still set).
    Closed,
    /// The provider does not know the trade (Alipay page/wap before the buyer opens the cashier).
    NotExist,
}

/// Result of a query.
#[derive(Clone, Debug, PartialEq)]
pub struct RemoteTrade {
    pub out_trade_no: String,
    pub state: RemoteTradeState,
    pub transaction_id: Option<String>,
    /// Total amount in fen, when the provider reports it.
    pub amount_fen: Option<i64>,
    pub paid_at: Option<DateTime<Utc>>,
}

/// A verified payment notification, reduced to what the order service checks and applies.
#[derive(Clone, Debug, PartialEq)]
pub struct PaymentNotice {
    pub out_trade_no: String,
    pub transaction_id: String,
    pub amount_fen: i64,
    pub paid_at: DateTime<Utc>,
    /// WeChat appid / Alipay app_id the payment was made for.
    pub app_id: String,
    /// WeChat mchid / Alipay seller_id.
    pub merchant_id: String,
    /// `true` for a success event; `false` for e.g. Alipay TRADE_CLOSED.
    pub paid: bool,
}

/// A refund to open at the provider.
#[derive(Clone, Debug)]
pub struct RefundRequest {
    pub out_trade_no: String,
    /// Our refund number; the provider treats a repeated number as the same refund.
    pub out_refund_no: String,
    /// Fen to refund now.
    pub amount_fen: i64,
    /// The original order total in fen (WeChat requires it).
    pub total_fen: i64,
    pub reason: Option<String>,
}

/// A refund's state as the provider reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemoteRefundState {
    /// Accepted, money not back yet (WeChat PROCESSING).
    Processing,
    /// Money returned (WeChat SUCCESS; Alipay fund_change=Y / REFUND_SUCCESS).
    Succeeded,
    /// Refused or abandoned (WeChat CLOSED, Alipay REFUND_FAIL): nothing was refunded.
    Failed,
    /// WeChat ABNORMAL: the money left the merchant but could not reach the payer (e.g. a
    /// cancelled card). It needs a person in the merchant platform; WeChat reports SUCCESS
    /// once it is handled. The amount stays reserved.
    Abnormal,
}

/// Result of a refund call, a refund query or a refund notification.
#[derive(Clone, Debug, PartialEq)]
pub struct RemoteRefund {
    pub out_trade_no: String,
    pub out_refund_no: String,
    /// The provider's refund id (WeChat refund_id; Alipay has none: the trade_no).
    pub refund_id: Option<String>,
    pub state: RemoteRefundState,
    /// Fen refunded by this refund.
    pub amount_fen: i64,
    pub succeeded_at: Option<DateTime<Utc>>,
}

/// The configured provider clients.
#[derive(Debug, Default, Clone)]
pub struct Providers {
    pub wechat: Option<std::sync::Arc<wechat::WechatClient>>,
    pub alipay: Option<std::sync::Arc<alipay::AlipayClient>>,
}

impl Providers {
    fn wechat(&self) -> Result<&wechat::WechatClient, ProviderError> {
        self.wechat
            .as_deref()
            .ok_or_else(|| ProviderError::NotConfigured("WeChat Pay is not configured".into()))
    }

    fn alipay(&self) -> Result<&alipay::AlipayClient, ProviderError> {
        self.alipay
            .as_deref()
            .ok_or_else(|| ProviderError::NotConfigured("Alipay is not configured".into()))
    }

    /// Whether `method` can take orders on this server.
    pub fn is_configured(&self, method: PaymentMethod) -> bool {
        match method {
            PaymentMethod::Wechat => self.wechat.is_some(),
            PaymentMethod::Alipay => self.alipay.is_some(),
        }
    }

    pub async fn prepay(
        &self,
        method: PaymentMethod,
        req: &PrepayRequest,
    ) -> Result<PrepayResponse, ProviderError> {
        let started = std::time::Instant::now();
        let r = match method {
            PaymentMethod::Wechat => self.wechat()?.prepay(req).await,
            PaymentMethod::Alipay => self.alipay()?.prepay(req).await,
        };
        crate::metrics::provider_call(method, "prepay", r.is_ok(), started.elapsed());
        r
    }

    pub async fn query(
        &self,
        method: PaymentMethod,
        out_trade_no: &str,
    ) -> Result<RemoteTrade, ProviderError> {
        let started = std::time::Instant::now();
        let r = match method {
            PaymentMethod::Wechat => self.wechat()?.query(out_trade_no).await,
            PaymentMethod::Alipay => self.alipay()?.query(out_trade_no).await,
        };
        crate::metrics::provider_call(method, "query", r.is_ok(), started.elapsed());
        r
    }

    pub async fn close(
        &self,
        method: PaymentMethod,
        out_trade_no: &str,
    ) -> Result<(), ProviderError> {
        let started = std::time::Instant::now();
        let r = match method {
            PaymentMethod::Wechat => self.wechat()?.close(out_trade_no).await,
            PaymentMethod::Alipay => self.alipay()?.close(out_trade_no).await,
        };
        crate::metrics::provider_call(method, "close", r.is_ok(), started.elapsed());
        r
    }

    /// Open (or repeat: same `out_refund_no`) a refund.
    pub async fn refund(
        &self,
        method: PaymentMethod,
        req: &RefundRequest,
    ) -> Result<RemoteRefund, ProviderError> {
        let started = std::time::Instant::now();
        let r = match method {
            PaymentMethod::Wechat => self.wechat()?.refund(req).await,
            PaymentMethod::Alipay => self.alipay()?.refund(req).await,
        };
        crate::metrics::provider_call(method, "refund", r.is_ok(), started.elapsed());
        r
    }

    /// Ask the provider where a refund stands. `TradeNotExist` when it has no such refund.
    pub async fn query_refund(
        &self,
        method: PaymentMethod,
        out_trade_no: &str,
        out_refund_no: &str,
    ) -> Result<RemoteRefund, ProviderError> {
        let started = std::time::Instant::now();
        let r = match method {
            PaymentMethod::Wechat => self.wechat()?.query_refund(out_refund_no).await,
            PaymentMethod::Alipay => {
                self.alipay()?
                    .query_refund(out_trade_no, out_refund_no)
                    .await
            }
        };
        crate::metrics::provider_call(method, "refund_query", r.is_ok(), started.elapsed());
        r
    }

    /// The provider's daily bill for `day` (a China day): every payment and refund it
    /// records, with the totals the bill states; `NotReady` while the provider has
    /// none. WeChat: the `tradebill` (ALL), SHA-1 checked; Alipay: the `trade` bill.
    pub async fn fetch_bill(
        &self,
        method: PaymentMethod,
        day: chrono::NaiveDate,
    ) -> Result<crate::domain::bills::BillFetch, ProviderError> {
        let started = std::time::Instant::now();
        let r = match method {
            PaymentMethod::Wechat => self.wechat()?.trade_bill(day).await,
            PaymentMethod::Alipay => self.alipay()?.trade_bill(day).await,
        };
        crate::metrics::provider_call(method, "bill", r.is_ok(), started.elapsed());
        r
    }

    /// Channels each provider offers.
    pub fn supports(method: PaymentMethod, channel: PaymentChannel) -> bool {
        use PaymentChannel::*;
        match method {
            PaymentMethod::Wechat => matches!(channel, Native | H5 | Jsapi | App),
            PaymentMethod::Alipay => matches!(channel, Native | Page | Wap | App),
        }
    }
}

/// Build the provider clients from settings: explicit merchant keys when configured,
/// otherwise the development TEST keys (when the emulator runs). `emulator_url`
/// overrides the provider base URLs.
pub fn build(
    settings: &crate::config::Settings,
    dev_keys: Option<&crate::devkeys::DevKeys>,
    emulator_url: Option<&str>,
) -> anyhow::Result<Providers> {
    let w = &settings.wechat;
    let timeout = std::time::Duration::from_secs(w.timeout_secs);
    let base_url = emulator_url.map_or_else(|| w.base_url.clone(), String::from);
    let explicit_key =
        match (&w.private_key_path, w.private_key.is_empty()) {
            (Some(path), _) => Some(std::fs::read_to_string(path).map_err(|e| {
                anyhow::anyhow!("WECHAT_PAY_PRIVATE_KEY_PATH {}: {e}", path.display())
            })?),
            (None, false) => Some(w.private_key.expose().to_string()),
            (None, true) => None,
        };
    let wechat_cfg = match (explicit_key, dev_keys) {
        (Some(pem), _) => {
            let merchant_key = fenpay_proto::RsaPrivateKey::from_pem(&pem)
                .map_err(|e| anyhow::anyhow!("WECHAT_PAY_PRIVATE_KEY: {e}"))?;
            let merchant_serial = match (&w.merchant_serial, &w.cert_path) {
                (s, _) if !s.is_empty() => s.clone(),
                (_, Some(path)) => fenpay_proto::Certificate::from_pem(&std::fs::read_to_string(path)?)
                    .map_err(|e| anyhow::anyhow!("WECHAT_PAY_CERT_PATH: {e}"))?
                    .serial_hex,
                _ => anyhow::bail!("WECHAT_PAY_MCH_SERIAL (or WECHAT_PAY_CERT_PATH) is required with a merchant key"),
            };
            let trust = match &w.public_key_path {
                Some(path) => {
                    if !fenpay_proto::wechat::is_public_key_id(&w.public_key_id) {
                        anyhow::bail!("WECHAT_PAY_PUBLIC_KEY_ID must be the PUB_KEY_ID_... of WECHAT_PAY_PUBLIC_KEY_PATH");
                    }
                    wechat::PlatformTrust::PublicKey {
                        id: w.public_key_id.clone(),
                        key: fenpay_proto::RsaPublicKey::from_pem(&std::fs::read_to_string(path)?)
                            .map_err(|e| anyhow::anyhow!("WECHAT_PAY_PUBLIC_KEY_PATH: {e}"))?,
                    }
                }
                None => wechat::PlatformTrust::Certificates,
            };
            Some(wechat::WechatClientConfig {
                mch_id: w.mch_id.clone(),
                app_id: w.app_id.clone(),
                merchant_serial,
                merchant_key,
                api_v3_key: w.api_v3_key.clone(),
                trust,
                base_url,
                notify_url: w.notify_url.clone(),
                refund_notify_url: w.refund_notify_url.clone(),
                timeout,
            })
        }
        (None, Some(keys)) => Some(wechat::WechatClientConfig {
            mch_id: w.mch_id.clone(),
            app_id: w.app_id.clone(),
            merchant_serial: keys.wechat_merchant_serial.clone(),
            merchant_key: keys.wechat_merchant_key.clone(),
            api_v3_key: keys.wechat_api_v3_key.clone(),
            // The merchant the emulator plays: public key only, or platform certificates
            // (downloaded and cached like a production merchant's).
            trust: match keys.wechat_mode(settings.emulator.wechat_mode) {
                crate::config::WechatKeyMode::PublicKey => wechat::PlatformTrust::PublicKey {
                    id: keys.wechat_public_key_id.clone(),
                    key: keys.wechat_platform_key.public_key(),
                },
                crate::config::WechatKeyMode::Certificate => wechat::PlatformTrust::Certificates,
            },
            base_url,
            notify_url: w.notify_url.clone(),
            refund_notify_url: w.refund_notify_url.clone(),
            timeout,
        }),
        (None, None) => {
            tracing::warn!(
                "WeChat Pay is not configured (set WECHAT_PAY_PRIVATE_KEY_PATH and friends)"
            );
            None
        }
    };
    let wechat = wechat_cfg
        .map(wechat::WechatClient::new)
        .transpose()
        .map_err(|e| anyhow::anyhow!("WeChat Pay client: {e}"))?
        .map(std::sync::Arc::new);
    Ok(Providers {
        wechat,
        alipay: build_alipay(settings, dev_keys, emulator_url)?,
    })
}

fn build_alipay(
    settings: &crate::config::Settings,
    dev_keys: Option<&crate::devkeys::DevKeys>,
    emulator_url: Option<&str>,
) -> anyhow::Result<Option<std::sync::Arc<alipay::AlipayClient>>> {
    let a = &settings.alipay;
    let gateway = emulator_url.map_or_else(|| a.gateway.clone(), |u| format!("{u}/gateway.do"));
    let keys = match (a.private_key.is_empty(), dev_keys) {
        (false, _) => {
            let private = fenpay_proto::RsaPrivateKey::from_pem(a.private_key.expose())
                .map_err(|e| anyhow::anyhow!("ALIPAY_PRIVATE_KEY: {e}"))?;
            match &a.certs {
                // Certificate mode: the Alipay certificate's key verifies answers.
                Some(files) => {
                    let m = files.load(Some(&private), chrono::Utc::now())?;
                    let sns = alipay::AlipayCertSns {
                        app_cert_sn: m.app_cert_sn,
                        alipay_root_cert_sn: m.root_cert_sn,
                        alipay_cert_sn: m.alipay_cert_sn,
                    };
                    (private, m.alipay_cert.public_key, Some(sns))
                }
                None => {
                    let public = fenpay_proto::RsaPublicKey::from_pem(&a.public_key)
                        .map_err(|e| anyhow::anyhow!("ALIPAY_PUBLIC_KEY: {e}"))?;
                    (private, public, None)
                }
            }
        }
        // The app the emulator plays, in the emulator's mode.
        (true, Some(keys)) => {
            let sns = (keys.alipay_mode(settings.emulator.alipay_mode)
                == fenpay_proto::alipay::AlipayKeyMode::Certificate)
                .then(|| alipay::AlipayCertSns {
                    app_cert_sn: keys.alipay_app_cert_sn.clone(),
                    alipay_root_cert_sn: keys.alipay_root_cert_sn.clone(),
                    alipay_cert_sn: keys.alipay_cert_sn.clone(),
                });
            let verifier = if sns.is_some() {
                keys.alipay_cert.public_key.clone()
            } else {
                keys.alipay_platform_key.public_key()
            };
            (keys.alipay_app_key.clone(), verifier, sns)
        }
        (true, None) => {
            tracing::warn!("Alipay is not configured (set ALIPAY_APP_ID, ALIPAY_PRIVATE_KEY, and ALIPAY_PUBLIC_KEY or the three ALIPAY_*CERT_PATH files)");
            return Ok(None);
        }
    };
    if a.api == crate::config::AlipayApi::V3 && keys.2.is_some() {
        anyhow::bail!("ALIPAY_API=v3 cannot be combined with Alipay certificate mode yet (the v3 requests would lack the certificate SNs): use ALIPAY_API=v2, the default, in certificate mode");
    }
    let client = alipay::AlipayClient::new(alipay::AlipayClientConfig {
        app_id: a.app_id.clone(),
        app_private_key: keys.0,
        alipay_public_key: keys.1,
        cert_mode: keys.2,
        seller_id: Some(a.seller_id.clone()).filter(|s| !s.is_empty()),
        gateway,
        v3_endpoint: (a.api == crate::config::AlipayApi::V3)
            .then(|| emulator_url.map_or_else(|| a.endpoint.clone(), str::to_string)),
        notify_url: a.notify_url.clone(),
        return_url: a.return_url.clone(),
        timeout: std::time::Duration::from_secs(a.timeout_secs),
    })
    .map_err(|e| anyhow::anyhow!("Alipay client: {e}"))?;
    Ok(Some(std::sync::Arc::new(client)))
}
