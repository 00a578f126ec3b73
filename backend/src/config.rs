//! One typed [`Settings`], read from environment variables (plus an optional `.env`).
//!
//! Every variable is documented in `.env.example` with its default. Development needs no
//! configuration at all; production refuses to start on missing or weak secrets.

use std::collections::HashMap;
use std::fmt;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use rand::distributions::Alphanumeric;
use rand::Rng;

pub use fenpay_proto::Secret;

/// `APP_ENV`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppEnv {
    Development,
    Production,
}

pub use fenpay_proto::wechat::WechatKeyMode;

/// Why the configuration cannot be used; the message always names the variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{var}: {reason}")]
    Invalid { var: &'static str, reason: String },
    /// A number outside its documented range (or not a number at all).
    #[error("{var} must be between {min} and {max}, got {got}")]
    OutOfRange {
        var: &'static str,
        min: String,
        max: String,
        got: String,
    },
    #[error("{var} is required in production: {hint}")]
    Missing {
        var: &'static str,
        hint: &'static str,
    },
    #[error("cannot prepare {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// WeChat Pay API v3 merchant configuration.
#[derive(Clone, Debug)]
pub struct WechatSettings {
    pub app_id: String,
    pub mch_id: String,
    pub api_v3_key: Secret,
    /// Merchant API certificate serial number (hex), sent as `serial_no`.
    pub merchant_serial: String,
    /// PEM file with the merchant API private key (`apiclient_key.pem`).
    pub private_key_path: Option<PathBuf>,
    /// The merchant private key as PEM text (alternative to the path).
    pub private_key: Secret,
    /// Merchant API certificate (`apiclient_cert.pem`), optional: the serial can be read from it.
    pub cert_path: Option<PathBuf>,
    /// WeChat Pay public key (public-key mode) and its id `PUB_KEY_ID_...`.
    pub public_key_path: Option<PathBuf>,
    pub public_key_id: String,
    pub notify_url: String,
    /// Where WeChat sends `REFUND.*` notifications.
    pub refund_notify_url: String,
    /// The complaint notification URL registered with WeChat
    /// (`WECHAT_COMPLAINT_NOTIFY_URL`; `fenpay complaints register-url`).
    pub complaint_notify_url: String,
    /// Register [`Self::complaint_notify_url`] at start-up (`WECHAT_COMPLAINTS_REGISTER`,
    /// default off; `scripts/run.sh` turns it on for the emulator).
    pub complaints_register: bool,
    /// Pull the last two days' complaints this often (`COMPLAINTS_SYNC_INTERVAL_SECS`,
    /// 0 = never; notifications bring new ones at once).
    pub complaints_sync_interval_secs: u64,
    pub base_url: String,
    pub timeout_secs: u64,
    /// The official account's AppSecret (`WECHAT_PAY_APP_SECRET`), for the web
    /// authorisation that gives the hosted checkout a payer's openid (JSAPI).
    pub app_secret: Secret,
    /// `WECHAT_OAUTH_URL` (`https://open.weixin.qq.com`); unset in development: the emulator.
    pub oauth_url: Option<String>,
    /// `WECHAT_API_URL` (`https://api.weixin.qq.com`); unset in development: the emulator.
    pub api_url: Option<String>,
}

/// WeChat's web-authorisation host.
pub const WECHAT_OAUTH_URL: &str = "https://open.weixin.qq.com";
/// WeChat's official-account API host (code -> openid).
pub const WECHAT_API_URL: &str = "https://api.weixin.qq.com";

/// Alipay OpenAPI (RSA2) configuration: public-key mode, or certificate mode when
/// `certs` is set.
#[derive(Clone, Debug)]
pub struct AlipaySettings {
    pub app_id: String,
    pub private_key: Secret,
    /// Public-key mode: the Alipay public key (unused in certificate mode).
    pub public_key: String,
    /// Certificate mode ("公钥证书模式"): `ALIPAY_APP_CERT_PATH`, `ALIPAY_CERT_PATH`,
    /// `ALIPAY_ROOT_CERT_PATH` (checked at start).
    pub certs: Option<AlipayCertFiles>,
    pub seller_id: String,
    pub notify_url: String,
    pub return_url: String,
    pub gateway: String,
    /// `ALIPAY_API`: which OpenAPI the server-side trade calls (precreate, query, close,
    /// refund, refund query) use. Page / wap / app pay always go through `gateway.do`.
    pub api: AlipayApi,
    /// `ALIPAY_ENDPOINT`: the OpenAPI v3 base URL; default: the gateway's origin.
    pub endpoint: String,
    pub timeout_secs: u64,
}

/// The three certificate files of Alipay's certificate mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlipayCertFiles {
    /// `ALIPAY_APP_CERT_PATH`: `appCertPublicKey_<appid>.crt`, our app's certificate.
    pub app_cert_path: PathBuf,
    /// `ALIPAY_CERT_PATH`: `alipayCertPublicKey_RSA2.crt`, Alipay's certificate (its key
    /// verifies answers and notifications), possibly followed by its intermediate.
    pub cert_path: PathBuf,
    /// `ALIPAY_ROOT_CERT_PATH`: `alipayRootCert.crt`, the root bundle.
    pub root_cert_path: PathBuf,
}

/// What the certificate files say, once checked.
#[derive(Clone, Debug)]
pub struct AlipayCertMaterial {
    pub app_cert: fenpay_proto::Certificate,
    pub alipay_cert: fenpay_proto::Certificate,
    pub app_cert_sn: String,
    pub alipay_cert_sn: String,
    pub root_cert_sn: String,
    /// How the Alipay certificate chains to the bundle.
    pub chain: fenpay_proto::alipay::ChainInfo,
}

impl AlipayCertFiles {
    /// Reads and checks the three files: each readable and a certificate, the app
    /// certificate over `private_key`'s public half (when given), the Alipay certificate
    /// valid now and issued (through its intermediates) by a root of the bundle.
    pub fn load(
        &self,
        private_key: Option<&fenpay_proto::RsaPrivateKey>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<AlipayCertMaterial, ConfigError> {
        use fenpay_proto::alipay as ap;
        let read = |var: &'static str, path: &Path| {
            std::fs::read_to_string(path).map_err(|e| ConfigError::Invalid {
                var,
                reason: format!("cannot read {}: {e}", path.display()),
            })
        };
        let not_cert =
            |var: &'static str, path: &Path, e: fenpay_proto::ProtoError| ConfigError::Invalid {
                var,
                reason: format!("{} is not a usable certificate: {e}", path.display()),
            };
        let app_pem = read("ALIPAY_APP_CERT_PATH", &self.app_cert_path)?;
        let cert_pem = read("ALIPAY_CERT_PATH", &self.cert_path)?;
        let root_pem = read("ALIPAY_ROOT_CERT_PATH", &self.root_cert_path)?;
        let app_cert = fenpay_proto::Certificate::from_pem(&app_pem)
            .map_err(|e| not_cert("ALIPAY_APP_CERT_PATH", &self.app_cert_path, e))?;
        let app_cert_sn = ap::cert_sn(&app_pem)
            .map_err(|e| not_cert("ALIPAY_APP_CERT_PATH", &self.app_cert_path, e))?;
        let alipay_cert = fenpay_proto::Certificate::from_pem(&cert_pem)
            .map_err(|e| not_cert("ALIPAY_CERT_PATH", &self.cert_path, e))?;
        let alipay_cert_sn =
            ap::cert_sn(&cert_pem).map_err(|e| not_cert("ALIPAY_CERT_PATH", &self.cert_path, e))?;
        let root_cert_sn = ap::root_cert_sn(&root_pem)
            .map_err(|e| not_cert("ALIPAY_ROOT_CERT_PATH", &self.root_cert_path, e))?;
        if let Some(key) = private_key {
            if key.public_key() != app_cert.public_key {
                return Err(ConfigError::Invalid {
                    var: "ALIPAY_APP_CERT_PATH",
                    reason: format!(
                        "{} certifies another key than ALIPAY_PRIVATE_KEY: use the appCertPublicKey certificate issued for this app's key pair",
                        self.app_cert_path.display()
                    ),
                });
            }
        }
        let chain =
            ap::verify_chain(&cert_pem, &root_pem, now).map_err(|e| ConfigError::Invalid {
                var: "ALIPAY_CERT_PATH",
                reason: format!(
                    "{} does not chain to ALIPAY_ROOT_CERT_PATH {}: {e}",
                    self.cert_path.display(),
                    self.root_cert_path.display()
                ),
            })?;
        Ok(AlipayCertMaterial {
            app_cert,
            alipay_cert,
            app_cert_sn,
            alipay_cert_sn,
            root_cert_sn,
            chain,
        })
    }
}

/// `ALIPAY_API`: `v2` (`gateway.do`, the default) or `v3` (`/v3/alipay/...`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AlipayApi {
    #[default]
    V2,
    V3,
}

impl std::str::FromStr for AlipayApi {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "v2" | "gateway" => Ok(AlipayApi::V2),
            "v3" => Ok(AlipayApi::V3),
            other => Err(format!("expected v2 or v3, got {other:?}")),
        }
    }
}

/// The origin (`scheme://host[:port]`) of a URL, for the default v3 endpoint.
fn url_origin(url: &str) -> String {
    match url.find("://") {
        Some(i) => {
            let rest = &url[i + 3..];
            let end = rest.find(['/', '?', '#']).map_or(url.len(), |j| i + 3 + j);
            url[..end].to_string()
        }
        None => url.trim_end_matches('/').to_string(),
    }
}

/// The local provider emulator.
#[derive(Clone, Debug)]
pub struct EmulatorSettings {
    /// Start the emulator inside `fenpay serve` (development default).
    pub enabled: bool,
    pub bind: String,
    /// Divides provider retry delays (notification resend schedules), for tests.
    pub time_scale: f64,
    /// Use an emulator that already runs at this URL (`fenpay emulator`, or another
    /// replica's) with the development keys in DEV_KEYS_DIR, instead of starting one.
    pub external_url: Option<String>,
    /// `EMULATOR_WECHAT_MODE`: the emulated merchant's WeChat Pay key mode; unset, the
    /// development key set decides (new key sets: public key only).
    pub wechat_mode: Option<WechatKeyMode>,
    /// `EMULATOR_ALIPAY_MODE`: the emulated app's Alipay key mode (`public_key` |
    /// `certificate`); unset, the development key set decides (new key sets: public key).
    pub alipay_mode: Option<fenpay_proto::alipay::AlipayKeyMode>,
}

/// Background jobs and outbound events (the lifecycle engine).
#[derive(Clone, Debug)]
pub struct LifecycleSettings {
    /// Run the sweeper, reconciler and webhook dispatcher in this process.
    pub jobs_enabled: bool,
    /// Expiry sweeper period.
    pub sweep_interval_secs: u64,
    /// Reconciler period.
    pub reconcile_interval_secs: u64,
    /// Pending orders younger than this are left to the notification path.
    pub reconcile_min_age_secs: i64,
    /// Reconcile yesterday's provider bills daily (with the other jobs).
    pub bill_reconcile_enabled: bool,
    /// From this hour (China time) on, yesterday's bills are fetched and reconciled.
    pub bill_reconcile_hour: u32,
    /// A day whose bill is not ready (or whose run failed) is retried this many days.
    pub bill_reconcile_days_back: i64,
    /// Most provider checks per second the order watcher starts (each is a signed query).
    pub watch_checks_per_sec: u32,
    /// Refund a payment that arrives after its order was cancelled, automatically.
    pub auto_refund_paid_after_close: bool,
    /// Refund the second payment for the same purchase (an order and its renewed QR
    /// code both paid) automatically; it is held for review either way.
    pub auto_refund_duplicate_payments: bool,
    /// Take back points / membership time in proportion to what is refunded.
    pub refund_clawback: bool,
    /// Webhook endpoints that receive every event.
    pub webhook_urls: Vec<String>,
    /// HMAC-SHA256 key for `Fenpay-Signature`.
    pub webhook_secret: Secret,
    /// Keep retrying a delivery this long before giving up.
    pub webhook_retry_hours: i64,
    /// First retry delay; doubles per attempt (capped at 6 h).
    pub webhook_backoff_base_secs: i64,
    pub webhook_timeout_secs: u64,
    /// Dispatcher poll period (it also wakes at once on new events).
    pub dispatch_interval_secs: u64,
    /// Payment records that may go are kept this many days (0: forever); see
    /// `domain::retention` for which ones stay for good.
    pub retention_records_days: i64,
    /// Events whose webhooks all arrived are kept this many days (0: forever).
    pub retention_events_days: i64,
    /// How often the retention purge runs.
    pub retention_interval_secs: u64,
    /// Deliveries in flight at once (per process); a slot is refilled as each ends.
    pub webhook_concurrency: usize,
    /// Most deliveries in flight at once to one endpoint (per process).
    pub webhook_per_endpoint_concurrency: usize,
    /// Consecutive failed attempts that open an endpoint's circuit ...
    pub webhook_circuit_failures: u32,
    /// ... for this long; then one probe decides whether it closes.
    pub webhook_circuit_open_secs: u64,
    /// Telegram notifier for new and paid orders (off unless both are set).
    pub telegram_bot_token: Secret,
    pub telegram_chat_id: String,
    pub telegram_api_base: String,
}

impl LifecycleSettings {
    pub fn telegram_enabled(&self) -> bool {
        !self.telegram_bot_token.is_empty() && !self.telegram_chat_id.is_empty()
    }
}

/// Abuse limits (issue #12): per client address, account or user, per process.
#[derive(Clone, Debug)]
pub struct LimitSettings {
    /// Failed logins per account in `LOGIN_WINDOW_SECS` (`LOGIN_MAX_FAILURES` is per address).
    pub login_account_max_failures: u32,
    /// Registrations per client address in `register_window_secs`.
    pub register_max_per_ip: u32,
    pub register_window_secs: u64,
    /// create-order calls per user in `create_order_window_secs`.
    pub create_order_max_per_user: u32,
    pub create_order_window_secs: u64,
    /// Unverified callback posts stored (digest and prefix) per source address per minute,
    /// and in all per minute; more are counted, not stored.
    pub unverified_records_per_ip_per_min: u32,
    pub unverified_records_per_min: u32,
    /// Live event streams open at once per user, and in all (per process).
    pub stream_max_per_user: usize,
    pub stream_max_total: usize,
    /// A stream ends (with an `event: reconnect`) after this long; clients reconnect.
    pub stream_max_lifetime_secs: u64,
}

impl LimitSettings {
    fn from_env(env: &Env) -> Result<LimitSettings, ConfigError> {
        Ok(LimitSettings {
            login_account_max_failures: env.number(
                "LOGIN_ACCOUNT_MAX_FAILURES",
                10,
                1..=10_000_000,
            )?,
            register_max_per_ip: env.number("REGISTER_MAX_PER_IP", 10, 1..=10_000_000)?,
            register_window_secs: env.number("REGISTER_WINDOW_SECS", 3_600, 1..=86_400)?,
            create_order_max_per_user: env.number(
                "CREATE_ORDER_MAX_PER_USER",
                30,
                1..=10_000_000,
            )?,
            create_order_window_secs: env.number("CREATE_ORDER_WINDOW_SECS", 60, 1..=86_400)?,
            unverified_records_per_ip_per_min: env.number(
                "UNVERIFIED_RECORDS_PER_IP_PER_MIN",
                20,
                0..=1_000_000,
            )?,
            unverified_records_per_min: env.number(
                "UNVERIFIED_RECORDS_PER_MIN",
                200,
                0..=10_000_000,
            )?,
            stream_max_per_user: env.number("STREAM_MAX_PER_USER", 8, 1..=100_000)?,
            stream_max_total: env.number("STREAM_MAX_TOTAL", 10_000, 1..=1_000_000)?,
            stream_max_lifetime_secs: env.number("STREAM_MAX_LIFETIME_SECS", 900, 1..=86_400)?,
        })
    }
}

/// Everything fenpay reads from its environment.
#[derive(Clone, Debug)]
pub struct Settings {
    pub app_env: AppEnv,
    pub bind: String,
    /// HTTP worker threads (default: available CPUs).
    pub http_workers: usize,
    /// Externally visible base URL of this server (used for default notify/return URLs).
    pub public_base_url: String,
    pub database_url: Secret,
    pub database_pool_size: u32,
    /// Opening a PostgreSQL connection (`DATABASE_CONNECT_TIMEOUT_SECS`), waiting for a
    /// pooled one (`DATABASE_ACQUIRE_TIMEOUT_SECS`), one call on PostgreSQL
    /// (`DATABASE_STATEMENT_TIMEOUT_SECS`); see `db::pg`.
    pub database_timeouts: crate::db::Timeouts,
    pub data_dir: PathBuf,
    /// Development TEST keys shared by the emulator and our clients.
    pub dev_keys_dir: PathBuf,
    pub jwt_secret: Secret,
    pub jwt_ttl_minutes: i64,
    /// Keys the stored hashes of merchant API keys and the hosted checkout links
    /// (`API_KEY_SECRET`; unset: derived from `JWT_SECRET`, so rotating that one also
    /// retires every API key and checkout link).
    pub api_key_secret: Secret,
    /// Default largest amount of one merchant order, fen (`MERCHANT_MAX_AMOUNT_FEN`).
    pub merchant_max_amount_fen: i64,
    pub cors_origins: Vec<String>,
    pub body_limit_bytes: usize,
    pub static_dir: PathBuf,
    pub login_max_failures: u32,
    pub login_window_secs: u64,
    /// Threads that hash passwords (each hash takes ~19 MiB while it runs).
    pub password_hash_threads: usize,
    /// Hashes that may wait for a thread; more are answered 503 `server_busy`.
    pub password_hash_queue: usize,
    /// Longest wait for a hashing thread before 503 `server_busy`.
    pub password_hash_wait_secs: u64,
    /// Take the client address from `X-Forwarded-For` (only behind a trusted proxy).
    pub trust_proxy: bool,
    /// The proxies whose `X-Forwarded-For` entries are believed (`TRUSTED_PROXIES`, IPs or
    /// CIDRs; with `TRUST_PROXY` and none given: loopback and private ranges).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// How long an account's token version is cached per process (`AUTH_CACHE_TTL_SECS`):
    /// a revocation made by another replica takes effect here within it.
    pub auth_cache_ttl_secs: u64,
    /// Order rows kept in memory for order-status (`ORDER_CACHE_SIZE`, 0 = off).
    pub order_cache_size: usize,
    /// Longest a cached order row is served (`ORDER_CACHE_TTL_SECS`), a backstop:
    /// changes drop it at once.
    pub order_cache_ttl_secs: u64,
    pub order_expire_minutes: i64,
    pub qr_code_expire_minutes: i64,
    pub payment_query_retry_max: u32,
    /// Most periods of a membership in one order (`MAX_MEMBERSHIP_QUANTITY`).
    pub max_membership_quantity: i64,
    /// Test-only skew of this process's own clock (`CLOCK_OFFSET_SECS`), to show that
    /// leases do not depend on it; refused in production.
    pub clock_offset_secs: i64,
    pub wechat: WechatSettings,
    pub alipay: AlipaySettings,
    pub emulator: EmulatorSettings,
    pub lifecycle: LifecycleSettings,
    /// Longest a graceful shutdown (SIGTERM/SIGINT) may take (`SHUTDOWN_TIMEOUT_SECS`).
    pub shutdown_timeout_secs: u64,
    /// A separate, unauthenticated listener for `/metrics` (`METRICS_BIND`).
    pub metrics_bind: Option<String>,
    /// Bearer token that opens `/metrics` on the main listener (`METRICS_TOKEN`; unset:
    /// 404 there).
    pub metrics_token: Secret,
    pub limits: LimitSettings,
    /// `BUSINESS_TIMEZONE` (IANA name, default `Asia/Shanghai`): where the operator's
    /// days begin and end, for daily totals, day filters and CSV exports.
    pub business_timezone: chrono_tz::Tz,
}

fn secs(n: u64) -> std::time::Duration {
    std::time::Duration::from_secs(n)
}

/// Most HTTP worker threads (`HTTP_WORKERS`); also caps the default (one per CPU).
pub const MAX_HTTP_WORKERS: usize = 512;

/// Proxies trusted by default with `TRUST_PROXY=true`: loopback, RFC 1918, unique local.
pub const DEFAULT_TRUSTED_PROXIES: &str =
    "127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7";

/// `BUSINESS_TIMEZONE`: an IANA time zone name (`Asia/Shanghai`, `Europe/Berlin`, `UTC`).
fn parse_timezone(name: &str) -> Result<chrono_tz::Tz, ConfigError> {
    name.trim()
        .parse::<chrono_tz::Tz>()
        .map_err(|_| ConfigError::Invalid {
            var: "BUSINESS_TIMEZONE",
            reason: format!(
                "unknown time zone {name:?}: use an IANA name such as Asia/Shanghai or UTC"
            ),
        })
}

/// Minimum length of a production JWT secret.
pub const MIN_SECRET_LEN: usize = 32;

impl Settings {
    /// Read the process environment, after loading `.env` when present.
    pub fn from_env() -> Result<Settings, ConfigError> {
        // A missing .env is normal; a malformed one is reported by the parse below.
        let _ = dotenvy::dotenv();
        let vars: HashMap<String, String> = std::env::vars().collect();
        Settings::from_map(&vars)
    }

    /// Build settings from an explicit variable map (tests use this).
    pub fn from_map(vars: &HashMap<String, String>) -> Result<Settings, ConfigError> {
        let env = Env(vars);
        let app_env = match env.str_or("APP_ENV", "development").as_str() {
            "development" | "dev" => AppEnv::Development,
            "production" | "prod" => AppEnv::Production,
            other => {
                return Err(ConfigError::Invalid {
                    var: "APP_ENV",
                    reason: format!("expected development or production, got {other:?}"),
                })
            }
        };
        let dev = app_env == AppEnv::Development;
        let bind = env.str_or("BIND_ADDR", "127.0.0.1:8080");
        let public_base_url = env
            .str_or("PUBLIC_BASE_URL", &format!("http://{bind}"))
            .trim_end_matches('/')
            .to_string();
        let data_dir = PathBuf::from(env.str_or("DATA_DIR", "./data"));
        let database_url = match env.get("DATABASE_URL") {
            Some(url) => url,
            None if dev => format!("sqlite://{}", data_dir.join("fenpay.db").display()),
            None => {
                return Err(ConfigError::Missing {
                    var: "DATABASE_URL",
                    hint: "set postgres://user:pass@host/db or sqlite:///path/fenpay.db",
                })
            }
        };
        let jwt_secret = match env.get("JWT_SECRET") {
            Some(secret) => {
                if !dev && weak_secret(&secret) {
                    return Err(ConfigError::Invalid {
                        var: "JWT_SECRET",
                        reason: format!(
                            "too weak for production: use at least {MIN_SECRET_LEN} random characters (e.g. `openssl rand -hex 32`)"
                        ),
                    });
                }
                secret
            }
            None if dev => load_or_create_secret(&data_dir.join("jwt_secret"))?,
            None => {
                return Err(ConfigError::Missing {
                    var: "JWT_SECRET",
                    hint: "at least 32 random characters, e.g. `openssl rand -hex 32`",
                })
            }
        };
        let emulator_bind = env.str_or("EMULATOR_BIND", "127.0.0.1:8090");
        let emulator_base = format!("http://{emulator_bind}");
        let emulator_enabled = env.bool_or("EMULATOR_ENABLED", dev)?;
        // The emulator accepts TEST keys and takes "payments" from anyone who can reach
        // its control API: production never talks to it, in any form.
        if !dev && emulator_enabled {
            return Err(ConfigError::Invalid {
                var: "EMULATOR_ENABLED",
                reason: "the provider emulator cannot run in production (APP_ENV=production): unset it or set it to false".into(),
            });
        }
        if !dev && env.get("EMULATOR_URL").is_some() {
            return Err(ConfigError::Invalid {
                var: "EMULATOR_URL",
                reason: "production cannot use a provider emulator (APP_ENV=production): unset it"
                    .into(),
            });
        }
        let default_provider_url = |real: &str| {
            if emulator_enabled {
                emulator_base.clone()
            } else {
                real.to_string()
            }
        };
        let wechat = WechatSettings {
            app_id: env.str_or(
                "WECHAT_PAY_APP_ID",
                if dev { "wxd0000000000emu01" } else { "" },
            ),
            mch_id: env.str_or("WECHAT_PAY_MCH_ID", if dev { "1900000109" } else { "" }),
            api_v3_key: Secret::new(env.get("WECHAT_PAY_API_V3_KEY").unwrap_or_default()),
            merchant_serial: env.str_or("WECHAT_PAY_MCH_SERIAL", ""),
            private_key_path: env.get("WECHAT_PAY_PRIVATE_KEY_PATH").map(PathBuf::from),
            private_key: Secret::new(env.get("WECHAT_PAY_PRIVATE_KEY").unwrap_or_default()),
            cert_path: env.get("WECHAT_PAY_CERT_PATH").map(PathBuf::from),
            public_key_path: env.get("WECHAT_PAY_PUBLIC_KEY_PATH").map(PathBuf::from),
            public_key_id: env.str_or("WECHAT_PAY_PUBLIC_KEY_ID", ""),
            notify_url: env.str_or(
                "WECHAT_PAY_NOTIFY_URL",
                &format!("{public_base_url}/api/v1/payment/wechat/callback"),
            ),
            refund_notify_url: env.str_or(
                "WECHAT_PAY_REFUND_NOTIFY_URL",
                &format!("{public_base_url}/api/v1/payment/wechat/refund-callback"),
            ),
            complaint_notify_url: env.str_or(
                "WECHAT_COMPLAINT_NOTIFY_URL",
                &format!("{public_base_url}/api/v1/callbacks/wechat/complaints"),
            ),
            complaints_register: env.bool_or("WECHAT_COMPLAINTS_REGISTER", false)?,
            complaints_sync_interval_secs: env.number(
                "COMPLAINTS_SYNC_INTERVAL_SECS",
                3600,
                0..=86_400,
            )?,
            base_url: env
                .str_or(
                    "WECHAT_PAY_BASE_URL",
                    &default_provider_url("https://api.mch.weixin.qq.com"),
                )
                .trim_end_matches('/')
                .to_string(),
            timeout_secs: env.number("WECHAT_PAY_TIMEOUT_SECS", 10, 1..=120)?,
            app_secret: Secret::new(env.str_or(
                "WECHAT_PAY_APP_SECRET",
                if emulator_enabled {
                    crate::emulator::wechat_oauth::DEV_APP_SECRET
                } else {
                    ""
                },
            )),
            oauth_url: env
                .get("WECHAT_OAUTH_URL")
                .or_else(|| (!emulator_enabled).then(|| WECHAT_OAUTH_URL.to_string()))
                .map(|u| u.trim_end_matches('/').to_string()),
            api_url: env
                .get("WECHAT_API_URL")
                .or_else(|| (!emulator_enabled).then(|| WECHAT_API_URL.to_string()))
                .map(|u| u.trim_end_matches('/').to_string()),
        };
        let alipay_gateway = env.str_or(
            "ALIPAY_GATEWAY",
            &if emulator_enabled {
                format!("{emulator_base}/gateway.do")
            } else {
                "https://openapi.alipay.com/gateway.do".to_string()
            },
        );
        let alipay = AlipaySettings {
            app_id: env.str_or("ALIPAY_APP_ID", if dev { "2021000000000001" } else { "" }),
            private_key: Secret::new(env.get("ALIPAY_PRIVATE_KEY").unwrap_or_default()),
            public_key: env.str_or("ALIPAY_PUBLIC_KEY", ""),
            certs: alipay_cert_files(&env)?,
            seller_id: env.str_or("ALIPAY_SELLER_ID", ""),
            notify_url: env.str_or(
                "ALIPAY_NOTIFY_URL",
                &format!("{public_base_url}/api/v1/payment/alipay/callback"),
            ),
            return_url: env.str_or(
                "ALIPAY_RETURN_URL",
                &format!("{public_base_url}/api/v1/payment/alipay/return"),
            ),
            api: env
                .get("ALIPAY_API")
                .map(|v| v.parse())
                .transpose()
                .map_err(|reason| ConfigError::Invalid {
                    var: "ALIPAY_API",
                    reason,
                })?
                .unwrap_or_default(),
            endpoint: env
                .str_or("ALIPAY_ENDPOINT", &url_origin(&alipay_gateway))
                .trim_end_matches('/')
                .to_string(),
            gateway: alipay_gateway,
            timeout_secs: env.number("ALIPAY_TIMEOUT_SECS", 10, 1..=120)?,
        };
        if alipay.api == AlipayApi::V3 && alipay.certs.is_some() {
            return Err(ConfigError::Invalid {
                var: "ALIPAY_API",
                reason: "v3 cannot be combined with Alipay certificate mode (ALIPAY_*CERT_PATH) yet: use v2, the default".into(),
            });
        }
        let business_timezone = parse_timezone(&env.str_or("BUSINESS_TIMEZONE", "Asia/Shanghai"))?;
        let settings = Settings {
            business_timezone,
            app_env,
            bind,
            http_workers: env.number(
                "HTTP_WORKERS",
                std::thread::available_parallelism().map_or(2, |n| n.get().min(MAX_HTTP_WORKERS)),
                1..=MAX_HTTP_WORKERS,
            )?,
            public_base_url,
            database_url: Secret::new(database_url),
            database_pool_size: env.number("DATABASE_POOL_SIZE", 10, 1..=512)?,
            database_timeouts: crate::db::Timeouts {
                connect: secs(env.number("DATABASE_CONNECT_TIMEOUT_SECS", 3, 1..=60)?),
                acquire: secs(env.number("DATABASE_ACQUIRE_TIMEOUT_SECS", 2, 1..=60)?),
                statement: secs(env.number("DATABASE_STATEMENT_TIMEOUT_SECS", 3, 1..=3_600)?),
            },
            dev_keys_dir: env
                .get("DEV_KEYS_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| data_dir.join("dev-keys")),
            data_dir,
            api_key_secret: Secret::new(match env.get("API_KEY_SECRET") {
                Some(secret) if !dev && weak_secret(&secret) => {
                    return Err(ConfigError::Invalid {
                        var: "API_KEY_SECRET",
                        reason: format!(
                        "too weak for production: use at least {MIN_SECRET_LEN} random characters"
                    ),
                    })
                }
                Some(secret) => secret,
                None => crate::domain::apps::hmac_hex(jwt_secret.as_bytes(), b"fenpay api keys v1"),
            }),
            merchant_max_amount_fen: env.number(
                "MERCHANT_MAX_AMOUNT_FEN",
                5_000_000,
                1..=10_000_000_000,
            )?,
            jwt_secret: Secret::new(jwt_secret),
            jwt_ttl_minutes: env.number("JWT_TTL_MINUTES", 60 * 24, 1..=525_600)?,
            cors_origins: env
                .str_or("CORS_ORIGINS", "")
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
            body_limit_bytes: env.number("BODY_LIMIT_BYTES", 64 * 1024, 1024..=16 * 1024 * 1024)?,
            static_dir: PathBuf::from(env.str_or("STATIC_DIR", "./frontend/dist")),
            login_max_failures: env.number("LOGIN_MAX_FAILURES", 5, 1..=10_000_000)?,
            login_window_secs: env.number("LOGIN_WINDOW_SECS", 900, 1..=86_400)?,
            password_hash_threads: env.number("PASSWORD_HASH_THREADS", 2, 1..=64)?,
            password_hash_queue: env.number("PASSWORD_HASH_QUEUE", 64, 1..=100_000)?,
            password_hash_wait_secs: env.number("PASSWORD_HASH_WAIT_SECS", 10, 1..=300)?,
            trust_proxy: env.bool_or("TRUST_PROXY", false)?,
            trusted_proxies: env.proxies("TRUSTED_PROXIES")?,
            auth_cache_ttl_secs: env.number("AUTH_CACHE_TTL_SECS", 5, 0..=300)?,
            order_cache_size: env.number("ORDER_CACHE_SIZE", 20_000, 0..=10_000_000)?,
            order_cache_ttl_secs: env.number("ORDER_CACHE_TTL_SECS", 30, 1..=86_400)?,
            order_expire_minutes: env.number("ORDER_EXPIRE_MINUTES", 30, 1..=10_080)?,
            qr_code_expire_minutes: env.number("QR_CODE_EXPIRE_MINUTES", 15, 1..=10_080)?,
            payment_query_retry_max: env.number("PAYMENT_QUERY_RETRY_MAX", 5, 0..=20)?,
            max_membership_quantity: env.number("MAX_MEMBERSHIP_QUANTITY", 12, 1..=120)?,
            clock_offset_secs: env.number("CLOCK_OFFSET_SECS", 0, -86_400..=86_400)?,
            wechat,
            alipay,
            emulator: EmulatorSettings {
                enabled: emulator_enabled,
                bind: emulator_bind,
                time_scale: env.number("EMULATOR_TIME_SCALE", 1.0, 0.001..=1_000_000.0)?,
                external_url: env
                    .get("EMULATOR_URL")
                    .map(|u| u.trim_end_matches('/').to_string()),
                wechat_mode: env
                    .get("EMULATOR_WECHAT_MODE")
                    .map(|v| v.parse())
                    .transpose()
                    .map_err(|reason| ConfigError::Invalid {
                        var: "EMULATOR_WECHAT_MODE",
                        reason,
                    })?,
                alipay_mode: env
                    .get("EMULATOR_ALIPAY_MODE")
                    .map(|v| v.parse())
                    .transpose()
                    .map_err(|reason| ConfigError::Invalid {
                        var: "EMULATOR_ALIPAY_MODE",
                        reason,
                    })?,
            },
            lifecycle: LifecycleSettings {
                jobs_enabled: env.bool_or("JOBS_ENABLED", true)?,
                sweep_interval_secs: env.number("SWEEP_INTERVAL_SECS", 60, 1..=86_400)?,
                reconcile_interval_secs: env.number("RECONCILE_INTERVAL_SECS", 300, 1..=86_400)?,
                reconcile_min_age_secs: env.number("RECONCILE_MIN_AGE_SECS", 180, 0..=86_400)?,
                bill_reconcile_enabled: env.bool_or("RECONCILE_ENABLED", true)?,
                bill_reconcile_hour: env.number("RECONCILE_HOUR", 10, 0..=23)?,
                bill_reconcile_days_back: env.number("RECONCILE_DAYS_BACK", 3, 1..=60)?,
                watch_checks_per_sec: env.number("ORDER_WATCH_CHECKS_PER_SEC", 50, 1..=10_000)?,
                auto_refund_paid_after_close: env.bool_or("AUTO_REFUND_PAID_AFTER_CLOSE", false)?,
                auto_refund_duplicate_payments: env
                    .bool_or("AUTO_REFUND_DUPLICATE_PAYMENTS", false)?,
                refund_clawback: env.bool_or("REFUND_CLAWBACK", true)?,
                webhook_urls: env
                    .str_or("WEBHOOK_URLS", "")
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect(),
                webhook_secret: Secret::new(env.get("WEBHOOK_SECRET").unwrap_or_default()),
                webhook_retry_hours: env.number("WEBHOOK_RETRY_HOURS", 24, 1..=720)?,
                webhook_backoff_base_secs: env.number(
                    "WEBHOOK_BACKOFF_BASE_SECS",
                    30,
                    1..=21_600,
                )?,
                webhook_timeout_secs: env.number("WEBHOOK_TIMEOUT_SECS", 10, 1..=120)?,
                dispatch_interval_secs: env.number("DISPATCH_INTERVAL_SECS", 5, 1..=3_600)?,
                retention_records_days: env.number("RETENTION_RECORDS_DAYS", 90, 0..=36_500)?,
                retention_events_days: env.number("RETENTION_EVENTS_DAYS", 90, 0..=36_500)?,
                retention_interval_secs: env.number(
                    "RETENTION_INTERVAL_SECS",
                    3_600,
                    60..=86_400,
                )?,
                webhook_concurrency: env.number("WEBHOOK_CONCURRENCY", 32, 1..=1_024)?,
                webhook_per_endpoint_concurrency: env.number(
                    "WEBHOOK_PER_ENDPOINT_CONCURRENCY",
                    8,
                    1..=1_024,
                )?,
                webhook_circuit_failures: env.number("WEBHOOK_CIRCUIT_FAILURES", 5, 1..=10_000)?,
                webhook_circuit_open_secs: env.number(
                    "WEBHOOK_CIRCUIT_OPEN_SECS",
                    30,
                    1..=21_600,
                )?,
                telegram_bot_token: Secret::new(env.get("TELEGRAM_BOT_TOKEN").unwrap_or_default()),
                telegram_chat_id: env.str_or("TELEGRAM_CHAT_ID", ""),
                telegram_api_base: env
                    .str_or("TELEGRAM_API_BASE", "https://api.telegram.org")
                    .trim_end_matches('/')
                    .to_string(),
            },
            shutdown_timeout_secs: env.number("SHUTDOWN_TIMEOUT_SECS", 30, 1..=3_600)?,
            metrics_bind: env.get("METRICS_BIND").filter(|v| !v.trim().is_empty()),
            metrics_token: Secret::new(env.get("METRICS_TOKEN").unwrap_or_default()),
            limits: LimitSettings::from_env(&env)?,
        };
        if !dev
            && !settings.metrics_token.is_empty()
            && weak_secret(settings.metrics_token.expose())
        {
            return Err(ConfigError::Invalid {
                var: "METRICS_TOKEN",
                reason: format!(
                    "too weak for production: use at least {MIN_SECRET_LEN} random characters"
                ),
            });
        }
        settings.check()?;
        check_callback_urls(&env, &settings)?;
        settings.check_dispatch()?;
        Ok(settings)
    }

    /// The dispatcher's limits and the test-only clock skew.
    /// What single ranges cannot say about the dispatcher and the test clock.
    fn check_dispatch(&self) -> Result<(), ConfigError> {
        let l = &self.lifecycle;
        if l.webhook_per_endpoint_concurrency > l.webhook_concurrency {
            return Err(ConfigError::Invalid {
                var: "WEBHOOK_PER_ENDPOINT_CONCURRENCY",
                reason: format!(
                    "must be between 1 and WEBHOOK_CONCURRENCY ({}), got {}",
                    l.webhook_concurrency, l.webhook_per_endpoint_concurrency
                ),
            });
        }
        if self.clock_offset_secs != 0 && self.app_env == AppEnv::Production {
            return Err(ConfigError::Invalid {
                var: "CLOCK_OFFSET_SECS",
                reason: "a test-only clock skew; it cannot be set in production".into(),
            });
        }
        Ok(())
    }

    fn check(&self) -> Result<(), ConfigError> {
        let l = &self.lifecycle;
        if !l.webhook_urls.is_empty() && l.webhook_secret.is_empty() {
            return Err(ConfigError::Missing {
                var: "WEBHOOK_SECRET",
                hint: "WEBHOOK_URLS is set: receivers verify Fenpay-Signature with this key (e.g. `openssl rand -hex 32`)",
            });
        }
        for url in &l.webhook_urls {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ConfigError::Invalid {
                    var: "WEBHOOK_URLS",
                    reason: format!("{url:?} is not an http(s) URL"),
                });
            }
        }
        if self.qr_code_expire_minutes > self.order_expire_minutes {
            return Err(ConfigError::Invalid {
                var: "QR_CODE_EXPIRE_MINUTES",
                reason: "must not exceed ORDER_EXPIRE_MINUTES".into(),
            });
        }
        if !(self.database_url.expose().starts_with("sqlite:")
            || self.database_url.expose().starts_with("postgres://")
            || self.database_url.expose().starts_with("postgresql://"))
        {
            return Err(ConfigError::Invalid {
                var: "DATABASE_URL",
                reason: "must start with sqlite:, postgres:// or postgresql://".into(),
            });
        }
        Ok(())
    }

    /// When `BIND_ADDR` asked for port 0, URLs derived from it (public base URL, notify
    /// and return URLs) are rewritten to the port actually bound.
    pub fn rebase_default_urls(&mut self, actual_addr: &str) {
        if !self.bind.ends_with(":0") {
            return;
        }
        let old = format!("http://{}", self.bind);
        let new = format!("http://{actual_addr}");
        for url in [
            &mut self.public_base_url,
            &mut self.wechat.notify_url,
            &mut self.wechat.refund_notify_url,
            &mut self.wechat.complaint_notify_url,
            &mut self.alipay.notify_url,
            &mut self.alipay.return_url,
        ] {
            if url.starts_with(&old) {
                *url = url.replacen(&old, &new, 1);
            }
        }
    }

    pub fn is_development(&self) -> bool {
        self.app_env == AppEnv::Development
    }
}

/// `ALIPAY_APP_CERT_PATH`, `ALIPAY_CERT_PATH`, `ALIPAY_ROOT_CERT_PATH`: all three
/// (certificate mode, checked now) or none (public-key mode).
fn alipay_cert_files(env: &Env) -> Result<Option<AlipayCertFiles>, ConfigError> {
    const VARS: [&str; 3] = [
        "ALIPAY_APP_CERT_PATH",
        "ALIPAY_CERT_PATH",
        "ALIPAY_ROOT_CERT_PATH",
    ];
    let values: Vec<Option<String>> = VARS
        .iter()
        .map(|v| env.get(v).filter(|p| !p.trim().is_empty()))
        .collect();
    if values.iter().all(Option::is_none) {
        return Ok(None);
    }
    let mut paths = Vec::with_capacity(3);
    for (var, value) in VARS.into_iter().zip(values) {
        match value {
            Some(p) => paths.push(PathBuf::from(p.trim())),
            None => {
                return Err(ConfigError::Invalid {
                    var,
                    reason: "Alipay certificate mode needs all three of ALIPAY_APP_CERT_PATH, ALIPAY_CERT_PATH and ALIPAY_ROOT_CERT_PATH (or none of them for public-key mode)".into(),
                })
            }
        }
    }
    let files = AlipayCertFiles {
        app_cert_path: paths[0].clone(),
        cert_path: paths[1].clone(),
        root_cert_path: paths[2].clone(),
    };
    let key = match env
        .get("ALIPAY_PRIVATE_KEY")
        .filter(|k| !k.trim().is_empty())
    {
        Some(text) => Some(fenpay_proto::RsaPrivateKey::from_pem(&text).map_err(|e| {
            ConfigError::Invalid {
                var: "ALIPAY_PRIVATE_KEY",
                reason: format!(
                    "not an RSA private key (needed to check ALIPAY_APP_CERT_PATH): {e}"
                ),
            }
        })?),
        None => None,
    };
    files.load(key.as_ref(), chrono::Utc::now())?;
    Ok(Some(files))
}

/// The URLs the providers call back (notifications) or send buyers to (return URL).
/// Notify URLs never carry a query string (WeChat Pay answers such a prepay with 400
/// `PARAM_ERROR`); in production every URL of a configured provider must be public https,
/// so `PUBLIC_BASE_URL` unset (`http://$BIND_ADDR`) refuses to start. The message blames
/// the variable the URL came from: its own, or `PUBLIC_BASE_URL` it was derived from.
fn check_callback_urls(env: &Env, s: &Settings) -> Result<(), ConfigError> {
    let production = !s.is_development();
    // Development always runs both providers (the emulator's keys); production only
    // those given a merchant key.
    let wechat = !production
        || env.get("WECHAT_PAY_PRIVATE_KEY_PATH").is_some()
        || env.get("WECHAT_PAY_PRIVATE_KEY").is_some();
    let alipay = !production || env.get("ALIPAY_PRIVATE_KEY").is_some();
    let mut urls: Vec<(&'static str, &str, bool)> = Vec::new();
    if production && env.get("PUBLIC_BASE_URL").is_some() {
        urls.push(("PUBLIC_BASE_URL", &s.public_base_url, true));
    }
    if wechat {
        urls.push(("WECHAT_PAY_NOTIFY_URL", &s.wechat.notify_url, true));
        urls.push((
            "WECHAT_PAY_REFUND_NOTIFY_URL",
            &s.wechat.refund_notify_url,
            true,
        ));
    }
    if alipay {
        urls.push(("ALIPAY_NOTIFY_URL", &s.alipay.notify_url, true));
        urls.push(("ALIPAY_RETURN_URL", &s.alipay.return_url, false));
    }
    for (var, url, notify) in urls {
        let Some(problem) = callback_url_problem(url, notify, production) else {
            continue;
        };
        if env.get(var).is_some() {
            return Err(ConfigError::Invalid {
                var,
                reason: format!("{url} {problem}"),
            });
        }
        let base = if env.get("PUBLIC_BASE_URL").is_some() {
            format!("{var} is derived from it as {url}, which {problem}")
        } else {
            format!(
                "unset, so {var} defaults to {url}, which {problem}; set PUBLIC_BASE_URL=https://<your public host> (or {var})"
            )
        };
        return Err(ConfigError::Invalid {
            var: "PUBLIC_BASE_URL",
            reason: base,
        });
    }
    Ok(())
}

/// Why `url` cannot be given to a provider, if it cannot: not http(s), a query string or
/// fragment on a notify URL, and in production plain http or a host the provider could
/// never reach (see [`is_public_host`]).
pub fn callback_url_problem(url: &str, notify: bool, production: bool) -> Option<String> {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return Some("is not a URL".into());
    };
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Some("is not an http(s) URL with a host".into());
    }
    if notify && (parsed.query().is_some() || parsed.fragment().is_some()) {
        return Some(
            "carries a query string or fragment: notify URLs cannot (WeChat Pay refuses them)"
                .into(),
        );
    }
    if production {
        if parsed.scheme() != "https" {
            return Some("is not https (required in production)".into());
        }
        if !parsed.host_str().is_some_and(is_public_host) {
            return Some(
                "does not name a public host (localhost, loopback, private or link-local): the providers cannot reach it".into(),
            );
        }
    }
    None
}

/// A host the internet can reach: not localhost, a single-label or reserved local name,
/// nor a loopback, private, link-local, shared (CGNAT) or unspecified address.
pub fn is_public_host(host: &str) -> bool {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    fn public_v4(ip: Ipv4Addr) -> bool {
        let [a, b, ..] = ip.octets();
        !(ip.is_loopback()
            || ip.is_private()
            || ip.is_link_local()
            || ip.is_unspecified()
            || ip.is_broadcast()
            || (a == 100 && (64..128).contains(&b)))
    }
    fn public_v6(ip: Ipv6Addr) -> bool {
        if let Some(v4) = ip.to_ipv4_mapped() {
            return public_v4(v4);
        }
        let first = ip.segments()[0];
        !(ip.is_loopback()
            || ip.is_unspecified()
            || (first & 0xfe00) == 0xfc00
            || (first & 0xffc0) == 0xfe80)
    }
    // URLs write IPv6 hosts in brackets.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => public_v4(ip),
        Ok(IpAddr::V6(ip)) => public_v6(ip),
        Err(_) => {
            let name = bare.trim_end_matches('.').to_ascii_lowercase();
            name.contains('.')
                && !["localhost", "local", "internal"]
                    .iter()
                    .any(|tld| name.rsplit('.').next() == Some(tld))
        }
    }
}

/// A secret is weak when short or built from very few distinct characters.
pub fn weak_secret(secret: &str) -> bool {
    let distinct: std::collections::HashSet<char> = secret.chars().collect();
    secret.len() < MIN_SECRET_LEN || distinct.len() < 10
}

/// Development convenience: a random secret generated once and kept in the data dir.
fn load_or_create_secret(path: &Path) -> Result<String, ConfigError> {
    let io = |source| ConfigError::Io {
        path: path.display().to_string(),
        source,
    };
    if let Ok(existing) = std::fs::read_to_string(path) {
        let existing = existing.trim().to_string();
        if !existing.is_empty() {
            return Ok(existing);
        }
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let secret: String = rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(48)
        .map(char::from)
        .collect();
    std::fs::write(path, &secret).map_err(io)?;
    tracing::warn!(
        path = %path.display(),
        "JWT_SECRET is not set: generated a development secret and stored it in the data directory; set JWT_SECRET in production"
    );
    Ok(secret)
}

/// Typed access to the variable map with defaults and error messages naming the variable.
struct Env<'a>(&'a HashMap<String, String>);

impl Env<'_> {
    fn get(&self, var: &str) -> Option<String> {
        self.0
            .get(var)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    fn str_or(&self, var: &str, default: &str) -> String {
        self.get(var).unwrap_or_else(|| default.to_string())
    }

    /// A number within `range` (its default when unset). Anything else, a value that
    /// does not parse included, is refused with one message shape:
    /// `DATABASE_POOL_SIZE must be between 1 and 512, got 0`.
    fn number<T>(
        &self,
        var: &'static str,
        default: T,
        range: RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + fmt::Display,
    {
        let value = match self.get(var) {
            None => default,
            Some(raw) => match raw.parse::<T>() {
                Ok(v) if range.contains(&v) => v,
                _ => {
                    return Err(ConfigError::OutOfRange {
                        var,
                        min: range.start().to_string(),
                        max: range.end().to_string(),
                        got: raw,
                    })
                }
            },
        };
        Ok(value)
    }

    /// A comma-separated list of IP addresses and CIDR blocks; unset: loopback and the
    /// private ranges (used only when `TRUST_PROXY` is on).
    fn proxies(&self, var: &'static str) -> Result<Vec<ipnet::IpNet>, ConfigError> {
        let raw = self
            .get(var)
            .unwrap_or_else(|| DEFAULT_TRUSTED_PROXIES.to_string());
        raw.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<ipnet::IpNet>()
                    .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| ConfigError::Invalid {
                        var,
                        reason: format!("expected IP addresses or CIDR blocks, got {s:?}"),
                    })
            })
            .collect()
    }

    fn bool_or(&self, var: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self
            .get(var)
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None => Ok(default),
            Some("1" | "true" | "yes" | "on") => Ok(true),
            Some("0" | "false" | "no" | "off") => Ok(false),
            Some(other) => Err(ConfigError::Invalid {
                var,
                reason: format!("expected true or false, got {other:?}"),
            }),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn development_needs_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let vars = map(&[("DATA_DIR", dir.path().to_str().unwrap())]);
        let s = Settings::from_map(&vars).unwrap();
        assert!(s.is_development());
        assert!(s.database_url.expose().starts_with("sqlite://"));
        assert_eq!(s.order_expire_minutes, 30);
        assert_eq!(s.qr_code_expire_minutes, 15);
        assert_eq!(s.payment_query_retry_max, 5);
        assert_eq!(s.max_membership_quantity, 12);
        // The generated secret is kept and reused.
        let again = Settings::from_map(&vars).unwrap();
        assert_eq!(s.jwt_secret, again.jwt_secret);
        assert!(s.jwt_secret.expose().len() >= MIN_SECRET_LEN);
        assert_eq!(s.wechat.base_url, "http://127.0.0.1:8090");
    }

    #[test]
    fn alipay_api_and_v3_endpoint() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().to_str().unwrap();
        let s = Settings::from_map(&map(&[("DATA_DIR", data)])).unwrap();
        assert_eq!(s.alipay.api, AlipayApi::V2);
        let s = Settings::from_map(&map(&[
            ("DATA_DIR", data),
            ("ALIPAY_API", "v3"),
            (
                "ALIPAY_GATEWAY",
                "https://openapi-sandbox.dl.alipaydev.com/gateway.do",
            ),
        ]))
        .unwrap();
        assert_eq!(s.alipay.api, AlipayApi::V3);
        assert_eq!(
            s.alipay.endpoint,
            "https://openapi-sandbox.dl.alipaydev.com"
        );
        let s = Settings::from_map(&map(&[
            ("DATA_DIR", data),
            ("ALIPAY_ENDPOINT", "https://openapi.example.com/"),
        ]))
        .unwrap();
        assert_eq!(s.alipay.endpoint, "https://openapi.example.com");
        let err = Settings::from_map(&map(&[("DATA_DIR", data), ("ALIPAY_API", "v4")]))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("ALIPAY_API: "), "{err}");
        assert_eq!(
            url_origin("http://127.0.0.1:8090/gateway.do?x=1"),
            "http://127.0.0.1:8090"
        );
    }

    #[test]
    fn production_refuses_missing_or_weak_secret() {
        let base = [
            ("APP_ENV", "production"),
            ("DATABASE_URL", "postgres://localhost/fenpay"),
        ];
        let err = Settings::from_map(&map(&base)).unwrap_err().to_string();
        assert!(err.contains("JWT_SECRET"), "{err}");
        let mut weak = base.to_vec();
        weak.push(("JWT_SECRET", "secret"));
        let err = Settings::from_map(&map(&weak)).unwrap_err().to_string();
        assert!(err.contains("JWT_SECRET") && err.contains("weak"), "{err}");
        let mut ok = base.to_vec();
        ok.push((
            "JWT_SECRET",
            "f3a9c2e17b5d4a8e9c0b1d2e3f4a5b6c7d8e9f0a1b2c3d4e",
        ));
        let s = Settings::from_map(&map(&ok)).unwrap();
        assert_eq!(s.wechat.base_url, "https://api.mch.weixin.qq.com");
        assert!(!s.emulator.enabled);
    }

    #[test]
    fn business_timezone_is_an_iana_name() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().to_str().unwrap();
        let s = Settings::from_map(&map(&[("DATA_DIR", data)])).unwrap();
        assert_eq!(s.business_timezone, chrono_tz::Asia::Shanghai);
        let s = Settings::from_map(&map(&[
            ("DATA_DIR", data),
            ("BUSINESS_TIMEZONE", "Europe/Berlin"),
        ]))
        .unwrap();
        assert_eq!(s.business_timezone.name(), "Europe/Berlin");
        for bad in ["Mars/Olympus", "+08:00", "Asia/Nowhere"] {
            let err = Settings::from_map(&map(&[("DATA_DIR", data), ("BUSINESS_TIMEZONE", bad)]))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("BUSINESS_TIMEZONE: "), "{bad}: {err}");
        }
    }

    #[test]
    fn production_refuses_the_emulator() {
        let base = [
            ("APP_ENV", "production"),
            ("DATABASE_URL", "postgres://localhost/fenpay"),
            (
                "JWT_SECRET",
                "f3a9c2e17b5d4a8e9c0b1d2e3f4a5b6c7d8e9f0a1b2c3d4e",
            ),
        ];
        for (var, value) in [
            ("EMULATOR_ENABLED", "true"),
            ("EMULATOR_ENABLED", "1"),
            ("EMULATOR_URL", "http://127.0.0.1:8090"),
        ] {
            let mut vars = base.to_vec();
            vars.push((var, value));
            let err = Settings::from_map(&map(&vars)).unwrap_err().to_string();
            assert!(err.starts_with(var) && err.contains("production"), "{err}");
        }
        // Explicitly off (or empty, as `.env.example` leaves it) is fine.
        for value in ["false", ""] {
            let mut vars = base.to_vec();
            vars.push(("EMULATOR_ENABLED", value));
            vars.push(("EMULATOR_URL", ""));
            let s = Settings::from_map(&map(&vars)).unwrap();
            assert!(!s.is_development() && !s.emulator.enabled);
            assert!(s.emulator.external_url.is_none());
        }
        // Development keeps both.
        let dir = tempfile::tempdir().unwrap();
        let s = Settings::from_map(&map(&[
            ("DATA_DIR", dir.path().to_str().unwrap()),
            ("EMULATOR_URL", "http://127.0.0.1:8090"),
        ]))
        .unwrap();
        assert!(s.emulator.enabled && s.emulator.external_url.is_some());
    }

    #[test]
    fn production_requires_database_url() {
        let err = Settings::from_map(&map(&[("APP_ENV", "production")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("DATABASE_URL"), "{err}");
    }

    #[test]
    fn bad_numbers_name_the_variable() {
        let dir = tempfile::tempdir().unwrap();
        let vars = map(&[
            ("DATA_DIR", dir.path().to_str().unwrap()),
            ("ORDER_EXPIRE_MINUTES", "soon"),
        ]);
        let err = Settings::from_map(&vars).unwrap_err().to_string();
        assert!(err.starts_with("ORDER_EXPIRE_MINUTES"), "{err}");
    }

    fn dev_with(dir: &tempfile::TempDir, pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let mut vars = map(pairs);
        vars.insert("DATA_DIR".into(), dir.path().display().to_string());
        Settings::from_map(&vars)
    }

    /// Every numeric setting: a value just outside its range, and its two ends.
    const NUMERIC: &[(&str, &str, &str, &str)] = &[
        ("HTTP_WORKERS", "0", "1", "512"),
        ("DATABASE_POOL_SIZE", "0", "1", "512"),
        ("DATABASE_CONNECT_TIMEOUT_SECS", "0", "1", "60"),
        ("DATABASE_ACQUIRE_TIMEOUT_SECS", "0", "1", "60"),
        ("DATABASE_STATEMENT_TIMEOUT_SECS", "0", "1", "3600"),
        ("JWT_TTL_MINUTES", "0", "1", "525600"),
        ("BODY_LIMIT_BYTES", "1023", "1024", "16777216"),
        ("LOGIN_MAX_FAILURES", "0", "1", "10000000"),
        ("LOGIN_WINDOW_SECS", "0", "1", "86400"),
        ("LOGIN_ACCOUNT_MAX_FAILURES", "0", "1", "10000000"),
        ("REGISTER_MAX_PER_IP", "0", "1", "10000000"),
        ("REGISTER_WINDOW_SECS", "0", "1", "86400"),
        ("CREATE_ORDER_MAX_PER_USER", "0", "1", "10000000"),
        ("CREATE_ORDER_WINDOW_SECS", "0", "1", "86400"),
        ("UNVERIFIED_RECORDS_PER_IP_PER_MIN", "-1", "0", "1000000"),
        ("UNVERIFIED_RECORDS_PER_MIN", "-1", "0", "10000000"),
        ("STREAM_MAX_PER_USER", "0", "1", "100000"),
        ("STREAM_MAX_TOTAL", "0", "1", "1000000"),
        ("STREAM_MAX_LIFETIME_SECS", "0", "1", "86400"),
        ("PASSWORD_HASH_THREADS", "0", "1", "64"),
        ("PASSWORD_HASH_QUEUE", "0", "1", "100000"),
        ("PASSWORD_HASH_WAIT_SECS", "0", "1", "300"),
        ("ORDER_CACHE_SIZE", "-1", "0", "10000000"),
        ("ORDER_CACHE_TTL_SECS", "0", "1", "86400"),
        ("ORDER_EXPIRE_MINUTES", "0", "1", "10080"),
        ("QR_CODE_EXPIRE_MINUTES", "0", "1", "10080"),
        ("PAYMENT_QUERY_RETRY_MAX", "-1", "0", "20"),
        ("MAX_MEMBERSHIP_QUANTITY", "0", "1", "120"),
        ("WECHAT_PAY_TIMEOUT_SECS", "0", "1", "120"),
        ("ALIPAY_TIMEOUT_SECS", "0", "1", "120"),
        ("EMULATOR_TIME_SCALE", "0", "0.001", "1000000"),
        ("SWEEP_INTERVAL_SECS", "0", "1", "86400"),
        ("RECONCILE_INTERVAL_SECS", "0", "1", "86400"),
        ("RECONCILE_MIN_AGE_SECS", "-1", "0", "86400"),
        ("RECONCILE_HOUR", "24", "0", "23"),
        ("RECONCILE_DAYS_BACK", "0", "1", "60"),
        ("ORDER_WATCH_CHECKS_PER_SEC", "0", "1", "10000"),
        ("WEBHOOK_RETRY_HOURS", "0", "1", "720"),
        ("WEBHOOK_BACKOFF_BASE_SECS", "0", "1", "21600"),
        ("WEBHOOK_TIMEOUT_SECS", "0", "1", "120"),
        ("DISPATCH_INTERVAL_SECS", "0", "1", "3600"),
        ("RETENTION_RECORDS_DAYS", "-1", "0", "36500"),
        ("RETENTION_EVENTS_DAYS", "36501", "0", "36500"),
        ("RETENTION_INTERVAL_SECS", "59", "60", "86400"),
    ];

    #[test]
    fn every_number_has_a_range_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        for (var, bad, min, max) in NUMERIC {
            let err = dev_with(&dir, &[(var, bad)]).unwrap_err().to_string();
            assert_eq!(
                err,
                format!("{var} must be between {min} and {max}, got {bad}"),
                "{var}"
            );
            for ok in [min, max] {
                // The QR code may not outlive its order: move both together.
                let both = [
                    ("ORDER_EXPIRE_MINUTES", *ok),
                    ("QR_CODE_EXPIRE_MINUTES", *ok),
                ];
                let vars: &[(&str, &str)] = if var.ends_with("EXPIRE_MINUTES") {
                    &both
                } else {
                    &[(var, ok)]
                };
                assert!(dev_with(&dir, vars).is_ok(), "{var}={ok}");
            }
        }
    }

    #[test]
    fn numbers_that_do_not_parse_or_overflow_get_the_same_message() {
        let dir = tempfile::tempdir().unwrap();
        for (var, raw, want) in [
            (
                "DATABASE_POOL_SIZE",
                "513",
                "DATABASE_POOL_SIZE must be between 1 and 512, got 513",
            ),
            (
                "HTTP_WORKERS",
                "513",
                "HTTP_WORKERS must be between 1 and 512, got 513",
            ),
            (
                "HTTP_WORKERS",
                "-2",
                "HTTP_WORKERS must be between 1 and 512, got -2",
            ),
            (
                "SWEEP_INTERVAL_SECS",
                "1m",
                "SWEEP_INTERVAL_SECS must be between 1 and 86400, got 1m",
            ),
            (
                "EMULATOR_TIME_SCALE",
                "NaN",
                "EMULATOR_TIME_SCALE must be between 0.001 and 1000000, got NaN",
            ),
            (
                "EMULATOR_TIME_SCALE",
                "-1",
                "EMULATOR_TIME_SCALE must be between 0.001 and 1000000, got -1",
            ),
            (
                "WEBHOOK_RETRY_HOURS",
                "99999999999999999999",
                "WEBHOOK_RETRY_HOURS must be between 1 and 720, got 99999999999999999999",
            ),
        ] {
            assert_eq!(dev_with(&dir, &[(var, raw)]).unwrap_err().to_string(), want);
        }
        // Unset or empty: the default, within range.
        let s = dev_with(&dir, &[("DATABASE_POOL_SIZE", ""), ("HTTP_WORKERS", " ")]).unwrap();
        assert_eq!(s.database_pool_size, 10);
        assert!((1..=MAX_HTTP_WORKERS).contains(&s.http_workers));
    }

    const PROD: [(&str, &str); 3] = [
        ("APP_ENV", "production"),
        ("DATABASE_URL", "postgres://localhost/fenpay"),
        (
            "JWT_SECRET",
            "f3a9c2e17b5d4a8e9c0b1d2e3f4a5b6c7d8e9f0a1b2c3d4e",
        ),
    ];

    fn prod(extra: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let mut vars = PROD.to_vec();
        vars.extend_from_slice(extra);
        Settings::from_map(&map(&vars))
    }

    #[test]
    fn production_needs_a_public_https_base_url_for_its_providers() {
        let wechat = (
            "WECHAT_PAY_PRIVATE_KEY_PATH",
            "/etc/fenpay/apiclient_key.pem",
        );
        // Unset: the notify URL would be http://127.0.0.1:8080/..., which WeChat never reaches.
        let err = prod(&[wechat]).unwrap_err().to_string();
        assert!(err.starts_with("PUBLIC_BASE_URL: unset"), "{err}");
        assert!(
            err.contains("http://127.0.0.1:8080/api/v1/payment/wechat/callback"),
            "{err}"
        );
        for (base, why) in [
            ("http://pay.example.com", "not https"),
            ("https://127.0.0.1", "public host"),
            ("https://localhost:8443", "public host"),
            ("https://api.localhost", "public host"),
            ("https://fenpay", "public host"),
            ("https://10.1.2.3", "public host"),
            ("https://172.20.0.5", "public host"),
            ("https://192.168.1.10", "public host"),
            ("https://169.254.169.254", "public host"),
            ("https://100.64.0.1", "public host"),
            ("https://0.0.0.0", "public host"),
            ("https://[::1]", "public host"),
            ("https://[fe80::1]", "public host"),
            ("https://[fd00::1]", "public host"),
            ("https://[::ffff:192.168.0.1]", "public host"),
            ("https://pay.example.com/?shop=1", "query string"),
            ("https://pay.example.com/#x", "query string"),
            ("ftp://pay.example.com", "http(s)"),
        ] {
            let err = prod(&[wechat, ("PUBLIC_BASE_URL", base)])
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("PUBLIC_BASE_URL: "), "{base}: {err}");
            assert!(err.contains(why), "{base}: {err}");
        }
        for base in [
            "https://pay.example.com",
            "https://pay.example.com/shop/",
            "https://203.0.113.9:8443",
            "https://[2001:db8::1]",
        ] {
            let s = prod(&[wechat, ("PUBLIC_BASE_URL", base)]).unwrap();
            assert!(
                s.wechat.notify_url.starts_with(base.trim_end_matches('/')),
                "{base}"
            );
        }
        // No provider configured: nothing is handed out, nothing to check.
        assert!(prod(&[]).is_ok());
    }

    #[test]
    fn explicit_notify_urls_stand_in_for_the_base_url_and_are_named() {
        let alipay = ("ALIPAY_PRIVATE_KEY", "MIIB...");
        let explicit = [
            alipay,
            ("ALIPAY_NOTIFY_URL", "https://pay.example.com/alipay/notify"),
            (
                "ALIPAY_RETURN_URL",
                "https://shop.example.com/done?from=alipay",
            ),
        ];
        let s = prod(&explicit).unwrap();
        assert_eq!(s.alipay.notify_url, "https://pay.example.com/alipay/notify");
        let mut bad = explicit.to_vec();
        bad[1] = (
            "ALIPAY_NOTIFY_URL",
            "https://pay.example.com/alipay/notify?shop=2",
        );
        let err = prod(&bad).unwrap_err().to_string();
        assert!(
            err.starts_with("ALIPAY_NOTIFY_URL: ") && err.contains("query string"),
            "{err}"
        );
        bad[1] = ("ALIPAY_NOTIFY_URL", "https://192.168.0.2/alipay/notify");
        let err = prod(&bad).unwrap_err().to_string();
        assert!(
            err.starts_with("ALIPAY_NOTIFY_URL: ") && err.contains("public host"),
            "{err}"
        );
    }

    #[test]
    fn notify_urls_never_carry_a_query_string_even_in_development() {
        let dir = tempfile::tempdir().unwrap();
        let err = dev_with(
            &dir,
            &[("WECHAT_PAY_NOTIFY_URL", "http://127.0.0.1:8080/cb?x=1")],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("WECHAT_PAY_NOTIFY_URL: ") && err.contains("query string"),
            "{err}"
        );
        let err = dev_with(
            &dir,
            &[("PUBLIC_BASE_URL", "http://127.0.0.1:8080/?tenant=1")],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("PUBLIC_BASE_URL: ") && err.contains("WECHAT_PAY_NOTIFY_URL"),
            "{err}"
        );
        // Local plain-http URLs are fine for the emulator.
        assert!(dev_with(&dir, &[("PUBLIC_BASE_URL", "http://localhost:8080")]).is_ok());
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let dir = tempfile::tempdir().unwrap();
        let vars = map(&[
            ("DATA_DIR", dir.path().to_str().unwrap()),
            (
                "JWT_SECRET",
                "super-secret-value-that-must-not-leak-0123456789",
            ),
            ("WECHAT_PAY_API_V3_KEY", "apiv3keyapiv3keyapiv3keyapiv3key"),
            ("DATABASE_URL", "postgres://u:hunter2@localhost/db"),
        ]);
        let s = Settings::from_map(&vars).unwrap();
        let debug = format!("{s:?}");
        assert!(!debug.contains("super-secret-value"));
        assert!(!debug.contains("apiv3keyapiv3key"));
        assert!(!debug.contains("hunter2"));
        assert!(debug.contains("<redacted>"));
    }

    #[test]
    fn dispatcher_limits_have_defaults_and_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().to_str().unwrap();
        let s = Settings::from_map(&map(&[("DATA_DIR", data)])).unwrap();
        let l = &s.lifecycle;
        assert_eq!(
            (
                l.webhook_concurrency,
                l.webhook_per_endpoint_concurrency,
                l.webhook_circuit_failures,
                l.webhook_circuit_open_secs
            ),
            (32, 8, 5, 30)
        );
        assert_eq!(s.clock_offset_secs, 0);
        for (var, value) in [
            ("WEBHOOK_CONCURRENCY", "0"),
            ("WEBHOOK_CONCURRENCY", "5000"),
            ("WEBHOOK_PER_ENDPOINT_CONCURRENCY", "0"),
            ("WEBHOOK_PER_ENDPOINT_CONCURRENCY", "33"),
            ("WEBHOOK_CIRCUIT_FAILURES", "0"),
            ("WEBHOOK_CIRCUIT_OPEN_SECS", "0"),
            ("CLOCK_OFFSET_SECS", "100000"),
        ] {
            let err = Settings::from_map(&map(&[("DATA_DIR", data), (var, value)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(var), "{var}={value}: {err}");
        }
        let s = Settings::from_map(&map(&[("DATA_DIR", data), ("CLOCK_OFFSET_SECS", "-40")]));
        assert_eq!(s.unwrap().clock_offset_secs, -40);
        // Production never runs on a skewed clock on purpose.
        let err = Settings::from_map(&map(&[
            ("APP_ENV", "production"),
            ("DATABASE_URL", "postgres://localhost/fenpay"),
            ("JWT_SECRET", "0123456789abcdefghijklmnopqrstuvwxyzABCDEF"),
            ("CLOCK_OFFSET_SECS", "40"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(err.contains("CLOCK_OFFSET_SECS"), "{err}");
    }

    /// One fixed key (the Java SDK test vector's) plays the app, Alipay and the TEST
    /// root: these checks are about the files, and key generation is slow.
    fn vector_key_pem() -> String {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../proto/testdata/vectors/alipay/01_java_sdk_rsacheck_sign_kat.json"
        );
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        v["app_private_key_pkcs8_pem"].as_str().unwrap().to_string()
    }

    fn real_cert(index: usize) -> String {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../proto/testdata/vectors/alipay/06_cert_sn.json"
        );
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        v["cases"][index]["cert_pem"].as_str().unwrap().to_string()
    }

    #[test]
    fn alipay_certificate_mode_files_are_checked_and_named() {
        use fenpay_proto::{Certificate, RsaPrivateKey};
        let dir = tempfile::tempdir().unwrap();
        let key_pem = vector_key_pem();
        let key = RsaPrivateKey::from_pem(&key_pem).unwrap();
        let root = Certificate::generate(&key, "01", "TEST root", 30).unwrap();
        let issued = |serial: &str, cn: &str| {
            Certificate::issue(&key, "CN=TEST root", &key.public_key(), serial, cn, 30).unwrap()
        };
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path.display().to_string()
        };
        let app = write("appCertPublicKey.crt", &issued("02", "CN=TEST app").pem);
        let alipay = write(
            "alipayCertPublicKey_RSA2.crt",
            &issued("03", "CN=TEST alipay").pem,
        );
        let roots = write("alipayRootCert.crt", &root.pem);
        let data = dir.path().display().to_string();
        let run = |pairs: &[(&str, &str)]| {
            let mut vars = vec![
                ("DATA_DIR", data.as_str()),
                ("ALIPAY_PRIVATE_KEY", key_pem.as_str()),
            ];
            vars.extend_from_slice(pairs);
            Settings::from_map(&map(&vars))
        };
        let ok = run(&[
            ("ALIPAY_APP_CERT_PATH", &app),
            ("ALIPAY_CERT_PATH", &alipay),
            ("ALIPAY_ROOT_CERT_PATH", &roots),
        ])
        .unwrap();
        let files = ok.alipay.certs.clone().unwrap();
        let m = files.load(Some(&key), chrono::Utc::now()).unwrap();
        assert_eq!(
            m.root_cert_sn,
            fenpay_proto::alipay::cert_sn(&root.pem).unwrap()
        );
        assert_ne!(m.app_cert_sn, m.alipay_cert_sn);
        // None of the three: public-key mode.
        assert!(run(&[]).unwrap().alipay.certs.is_none());
        // OpenAPI v3 does not carry the certificate SNs here: refused, named.
        let e = run(&[
            ("ALIPAY_APP_CERT_PATH", &app),
            ("ALIPAY_CERT_PATH", &alipay),
            ("ALIPAY_ROOT_CERT_PATH", &roots),
            ("ALIPAY_API", "v3"),
        ])
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("ALIPAY_API: v3 cannot be combined"), "{e}");

        let err = |pairs: &[(&str, &str)]| run(pairs).unwrap_err().to_string();
        let e = err(&[
            ("ALIPAY_APP_CERT_PATH", &app),
            ("ALIPAY_CERT_PATH", &alipay),
        ]);
        assert!(
            e.starts_with("ALIPAY_ROOT_CERT_PATH: ") && e.contains("all three"),
            "{e}"
        );
        let missing = dir.path().join("nope.crt").display().to_string();
        let e = err(&[
            ("ALIPAY_APP_CERT_PATH", &missing),
            ("ALIPAY_CERT_PATH", &alipay),
            ("ALIPAY_ROOT_CERT_PATH", &roots),
        ]);
        assert!(e.starts_with("ALIPAY_APP_CERT_PATH: cannot read"), "{e}");
        let junk = write("junk.crt", "not a certificate");
        let e = err(&[
            ("ALIPAY_APP_CERT_PATH", &app),
            ("ALIPAY_CERT_PATH", &junk),
            ("ALIPAY_ROOT_CERT_PATH", &roots),
        ]);
        assert!(
            e.starts_with("ALIPAY_CERT_PATH: ") && e.contains("not a usable certificate"),
            "{e}"
        );
        // A real app certificate over another key than ALIPAY_PRIVATE_KEY.
        let foreign_app = write("foreign_app.crt", &real_cert(4));
        let e = err(&[
            ("ALIPAY_APP_CERT_PATH", &foreign_app),
            ("ALIPAY_CERT_PATH", &alipay),
            ("ALIPAY_ROOT_CERT_PATH", &roots),
        ]);
        assert!(
            e.starts_with("ALIPAY_APP_CERT_PATH: ") && e.contains("ALIPAY_PRIVATE_KEY"),
            "{e}"
        );
        // Alipay's real certificate is not issued by our TEST root.
        let real_alipay = write("real_alipay.crt", &real_cert(1));
        let e = err(&[
            ("ALIPAY_APP_CERT_PATH", &app),
            ("ALIPAY_CERT_PATH", &real_alipay),
            ("ALIPAY_ROOT_CERT_PATH", &roots),
        ]);
        assert!(
            e.starts_with("ALIPAY_CERT_PATH: ") && e.contains("does not chain"),
            "{e}"
        );
        let e = err(&[
            ("ALIPAY_PRIVATE_KEY", "MIIB..."),
            ("ALIPAY_APP_CERT_PATH", &app),
            ("ALIPAY_CERT_PATH", &alipay),
            ("ALIPAY_ROOT_CERT_PATH", &roots),
        ]);
        assert!(e.starts_with("ALIPAY_PRIVATE_KEY: "), "{e}");
        let e = err(&[("EMULATOR_ALIPAY_MODE", "certs")]);
        assert!(e.starts_with("EMULATOR_ALIPAY_MODE: "), "{e}");
    }
}
