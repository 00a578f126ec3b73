//! A faithful local WeChat Pay v3 + Alipay gateway on its own listener: real signatures,
//! AES-GCM notifications, provider resend schedules, fault injection. WeChat v3 has no
//! sandbox; this makes the whole flow runnable and testable on a laptop.
//!
//! Paths at its root mirror the providers (`/v3/...`, `/gateway.do`, Alipay's OpenAPI v3
//! `/v3/alipay/...`); the control API
//! lives under `/__emulator/`.

pub mod alipay;
pub mod alipay_v3;
pub mod bills;
pub mod devkeys;
pub mod faults;
pub mod info;
pub mod wechat;
pub mod wechat_oauth;

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{web, App, HttpResponse, HttpServer};
use fenpay_proto::{Certificate, RsaPrivateKey, RsaPublicKey};

pub use devkeys::DevKeys;
pub use faults::Faults;
pub use fenpay_proto::alipay::AlipayKeyMode;
pub use fenpay_proto::wechat::WechatKeyMode;
pub use fenpay_proto::Secret;

/// The merchant the WeChat side serves, and the keys it signs with.
#[derive(Clone, Debug)]
pub struct WechatEmulatorConfig {
    pub mch_id: String,
    pub app_id: String,
    /// Verifies the merchant's `Authorization` signatures.
    pub merchant_public_key: RsaPublicKey,
    /// Expected `serial_no` in `Authorization`.
    pub merchant_serial: String,
    pub api_v3_key: Secret,
    /// Public-key mode: the id (`PUB_KEY_ID_...`) and the key that signs.
    pub public_key_id: String,
    pub platform_key: RsaPrivateKey,
    /// Certificate mode: the platform certificate (over `platform_key`).
    pub platform_cert: Certificate,
    /// Public key only (every answer and notification under `public_key_id`, no
    /// certificates), or platform certificates.
    pub mode: WechatKeyMode,
    /// The official account's web authorisation (AppSecret, authorised domains).
    pub oauth: wechat_oauth::WechatOauthConfig,
}

/// The app the Alipay side serves, and Alipay's own signing key.
#[derive(Clone, Debug)]
pub struct AlipayEmulatorConfig {
    pub app_id: String,
    /// Verifies the merchant's request signatures.
    pub app_public_key: RsaPublicKey,
    /// Signs responses and notifications (its public half is the "Alipay public key").
    pub alipay_private_key: RsaPrivateKey,
    /// Seller (partner) id reported as `seller_id`.
    pub seller_id: String,
    /// Public-key mode, or certificate mode: requests must carry `app_cert_sn` and
    /// `alipay_root_cert_sn` equal to these, and answers carry `alipay_cert_sn`.
    pub mode: AlipayKeyMode,
    pub alipay_cert_sn: String,
    pub app_cert_sn: String,
    pub root_cert_sn: String,
}

/// Everything the emulator needs.
#[derive(Clone, Debug)]
pub struct EmulatorConfig {
    /// `host:port`; port 0 picks a free port.
    pub bind: String,
    /// Divides resend delays: 60.0 turns WeChat's 15 s first retry into 0.25 s.
    pub time_scale: f64,
    pub wechat: WechatEmulatorConfig,
    pub alipay: AlipayEmulatorConfig,
}

/// Who the emulator serves, apart from the keys: ids, listener and key mode.
#[derive(Clone, Debug)]
pub struct Merchant {
    /// `host:port`; port 0 picks a free port.
    pub bind: String,
    /// Divides resend delays (1.0 = the providers' real schedules).
    pub time_scale: f64,
    pub wechat_mch_id: String,
    pub wechat_app_id: String,
    /// Overrides the key set's WeChat Pay key mode.
    pub wechat_mode: Option<WechatKeyMode>,
    pub alipay_app_id: String,
    /// Overrides the key set's Alipay key mode.
    pub alipay_mode: Option<AlipayKeyMode>,
    /// Empty: `2088000000000001`.
    pub alipay_seller_id: String,
    /// The official account's AppSecret; empty: [`wechat_oauth::DEV_APP_SECRET`].
    pub wechat_app_secret: String,
    /// Hosts a web-authorisation `redirect_uri` may use; empty: `127.0.0.1`, `localhost`.
    pub wechat_oauth_domains: Vec<String>,
}

impl EmulatorConfig {
    /// The configuration over a TEST key set (see [`DevKeys`]).
    pub fn from_dev_keys(merchant: &Merchant, keys: &DevKeys) -> EmulatorConfig {
        EmulatorConfig {
            bind: merchant.bind.clone(),
            time_scale: merchant.time_scale,
            wechat: WechatEmulatorConfig {
                mch_id: merchant.wechat_mch_id.clone(),
                app_id: merchant.wechat_app_id.clone(),
                merchant_public_key: keys.wechat_merchant_key.public_key(),
                merchant_serial: keys.wechat_merchant_serial.clone(),
                api_v3_key: keys.wechat_api_v3_key.clone(),
                public_key_id: keys.wechat_public_key_id.clone(),
                platform_key: keys.wechat_platform_key.clone(),
                platform_cert: keys.wechat_platform_cert.clone(),
                mode: keys.wechat_mode(merchant.wechat_mode),
                oauth: wechat_oauth::WechatOauthConfig {
                    app_secret: if merchant.wechat_app_secret.is_empty() {
                        wechat_oauth::DEV_APP_SECRET.to_string()
                    } else {
                        merchant.wechat_app_secret.clone()
                    },
                    domains: if merchant.wechat_oauth_domains.is_empty() {
                        wechat_oauth::WechatOauthConfig::default().domains
                    } else {
                        merchant.wechat_oauth_domains.clone()
                    },
                },
            },
            alipay: AlipayEmulatorConfig {
                app_id: merchant.alipay_app_id.clone(),
                app_public_key: keys.alipay_app_key.public_key(),
                alipay_private_key: keys.alipay_platform_key.clone(),
                seller_id: if merchant.alipay_seller_id.is_empty() {
                    "2088000000000001".to_string()
                } else {
                    merchant.alipay_seller_id.clone()
                },
                mode: keys.alipay_mode(merchant.alipay_mode),
                alipay_cert_sn: keys.alipay_cert_sn.clone(),
                app_cert_sn: keys.alipay_app_cert_sn.clone(),
                root_cert_sn: keys.alipay_root_cert_sn.clone(),
            },
        }
    }
}

/// Shared emulator state handed to every handler.
pub struct EmulatorState {
    pub config: EmulatorConfig,
    pub faults: Faults,
    pub wechat: wechat::WechatState,
    /// WeChat web authorisation: codes not yet exchanged, emulated users' openids.
    pub wechat_oauth: wechat_oauth::OauthState,
    pub alipay: alipay::AlipayState,
    /// Bill files handed out under download tokens.
    pub bills: bills::BillStore,
    /// Posts notifications to merchants.
    pub http: reqwest::Client,
    /// This emulator's own base URL (`http://127.0.0.1:PORT`).
    pub base_url: String,
}

/// A bound emulator: its URL and the server future to spawn or await.
pub struct Emulator {
    pub base_url: String,
    pub port: u16,
    pub state: web::Data<EmulatorState>,
    pub server: Server,
}

/// Bind and build the emulator server (not yet running: spawn or await `server`).
pub fn start(config: EmulatorConfig) -> anyhow::Result<Emulator> {
    let listener = TcpListener::bind(&config.bind)
        .map_err(|e| anyhow::anyhow!("cannot bind EMULATOR_BIND={}: {e}", config.bind))?;
    let port = listener.local_addr()?.port();
    let base_url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        // WeChat and Alipay give the merchant 5 s to answer a notification.
        .timeout(std::time::Duration::from_secs(5))
        .build()?;
    let state = web::Data::new(EmulatorState {
        wechat: wechat::WechatState::default(),
        wechat_oauth: wechat_oauth::OauthState::default(),
        alipay: alipay::AlipayState::default(),
        bills: bills::BillStore::default(),
        faults: Faults::default(),
        config,
        http,
        base_url: base_url.clone(),
    });
    let app_state = state.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(app_state.clone())
            .app_data(web::PayloadConfig::default().limit(1024 * 1024))
            .configure(faults::configure)
            .configure(info::configure)
            .configure(wechat::configure)
            .configure(wechat_oauth::configure)
            .configure(alipay::configure)
            .configure(alipay_v3::configure)
            .default_service(web::to(|| async {
                HttpResponse::NotFound().json(serde_json::json!({
                    "code": "NOT_FOUND", "message": "no such path on the fenpay emulator"
                }))
            }))
    })
    .workers(2)
    .listen(listener)?
    .shutdown_timeout(2)
    .run();
    Ok(Emulator {
        base_url,
        port,
        state,
        server,
    })
}

/// Shared handle type for handlers.
pub type State = web::Data<EmulatorState>;

/// Convenience for tests: an `Arc`-free clone of the config.
pub fn config_of(state: &State) -> Arc<EmulatorConfig> {
    Arc::new(state.config.clone())
}
