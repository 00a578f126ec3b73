//! One typed [`Settings`], read from environment variables (plus an optional `.env`).
//!
//! Every variable is documented in `.env.example` with its default. Development needs no
//! configuration at all; production refuses to start on missing or weak secrets.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use rand::distributions::Alphanumeric;
use rand::Rng;

/// A secret value: usable by the code, never shown by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself; call only where it is consumed (signing, hashing).
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("Secret(<empty>)")
        } else {
            f.write_str("Secret(<redacted>)")
        }
    }
}

/// `APP_ENV`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppEnv {
    Development,
    Production,
}

/// Why the configuration cannot be used; the message always names the variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{var}: {reason}")]
    Invalid { var: &'static str, reason: String },
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
    pub base_url: String,
    pub timeout_secs: u64,
}

/// Alipay OpenAPI (RSA2, public-key mode) configuration.
#[derive(Clone, Debug)]
pub struct AlipaySettings {
    pub app_id: String,
    pub private_key: Secret,
    pub public_key: String,
    pub seller_id: String,
    pub notify_url: String,
    pub return_url: String,
    pub gateway: String,
    pub timeout_secs: u64,
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
    pub data_dir: PathBuf,
    /// Development TEST keys shared by the emulator and our clients.
    pub dev_keys_dir: PathBuf,
    pub jwt_secret: Secret,
    pub jwt_ttl_minutes: i64,
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
    pub wechat: WechatSettings,
    pub alipay: AlipaySettings,
    pub emulator: EmulatorSettings,
    pub lifecycle: LifecycleSettings,
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
            base_url: env
                .str_or(
                    "WECHAT_PAY_BASE_URL",
                    &default_provider_url("https://api.mch.weixin.qq.com"),
                )
                .trim_end_matches('/')
                .to_string(),
            timeout_secs: env.parse_or("WECHAT_PAY_TIMEOUT_SECS", 10)?,
        };
        let alipay = AlipaySettings {
            app_id: env.str_or("ALIPAY_APP_ID", if dev { "2021000000000001" } else { "" }),
            private_key: Secret::new(env.get("ALIPAY_PRIVATE_KEY").unwrap_or_default()),
            public_key: env.str_or("ALIPAY_PUBLIC_KEY", ""),
            seller_id: env.str_or("ALIPAY_SELLER_ID", ""),
            notify_url: env.str_or(
                "ALIPAY_NOTIFY_URL",
                &format!("{public_base_url}/api/v1/payment/alipay/callback"),
            ),
            return_url: env.str_or(
                "ALIPAY_RETURN_URL",
                &format!("{public_base_url}/api/v1/payment/alipay/return"),
            ),
            gateway: env.str_or(
                "ALIPAY_GATEWAY",
                &if emulator_enabled {
                    format!("{emulator_base}/gateway.do")
                } else {
                    "https://openapi.alipay.com/gateway.do".to_string()
                },
            ),
            timeout_secs: env.parse_or("ALIPAY_TIMEOUT_SECS", 10)?,
        };
        let settings = Settings {
            app_env,
            bind,
            http_workers: env.parse_or(
                "HTTP_WORKERS",
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            )?,
            public_base_url,
            database_url: Secret::new(database_url),
            database_pool_size: env.parse_or("DATABASE_POOL_SIZE", 10)?,
            dev_keys_dir: env
                .get("DEV_KEYS_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| data_dir.join("dev-keys")),
            data_dir,
            jwt_secret: Secret::new(jwt_secret),
            jwt_ttl_minutes: env.parse_or("JWT_TTL_MINUTES", 60 * 24)?,
            cors_origins: env
                .str_or("CORS_ORIGINS", "")
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
            body_limit_bytes: env.parse_or("BODY_LIMIT_BYTES", 64 * 1024)?,
            static_dir: PathBuf::from(env.str_or("STATIC_DIR", "./frontend/dist")),
            login_max_failures: env.parse_or("LOGIN_MAX_FAILURES", 5)?,
            login_window_secs: env.parse_or("LOGIN_WINDOW_SECS", 900)?,
            password_hash_threads: env.parse_or("PASSWORD_HASH_THREADS", 2)?,
            password_hash_queue: env.parse_or("PASSWORD_HASH_QUEUE", 64)?,
            password_hash_wait_secs: env.parse_or("PASSWORD_HASH_WAIT_SECS", 10)?,
            trust_proxy: env.bool_or("TRUST_PROXY", false)?,
            order_cache_size: env.parse_or("ORDER_CACHE_SIZE", 20_000)?,
            order_cache_ttl_secs: env.parse_or("ORDER_CACHE_TTL_SECS", 30)?,
            order_expire_minutes: env.parse_or("ORDER_EXPIRE_MINUTES", 30)?,
            qr_code_expire_minutes: env.parse_or("QR_CODE_EXPIRE_MINUTES", 15)?,
            payment_query_retry_max: env.parse_or("PAYMENT_QUERY_RETRY_MAX", 5)?,
            max_membership_quantity: env.parse_or("MAX_MEMBERSHIP_QUANTITY", 12)?,
            wechat,
            alipay,
            emulator: EmulatorSettings {
                enabled: emulator_enabled,
                bind: emulator_bind,
                time_scale: env.parse_or("EMULATOR_TIME_SCALE", 1.0)?,
                external_url: env
                    .get("EMULATOR_URL")
                    .map(|u| u.trim_end_matches('/').to_string()),
            },
            lifecycle: LifecycleSettings {
                jobs_enabled: env.bool_or("JOBS_ENABLED", true)?,
                sweep_interval_secs: env.parse_or("SWEEP_INTERVAL_SECS", 60)?,
                reconcile_interval_secs: env.parse_or("RECONCILE_INTERVAL_SECS", 300)?,
                reconcile_min_age_secs: env.parse_or("RECONCILE_MIN_AGE_SECS", 180)?,
                watch_checks_per_sec: env.parse_or("ORDER_WATCH_CHECKS_PER_SEC", 50)?,
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
                webhook_retry_hours: env.parse_or("WEBHOOK_RETRY_HOURS", 24)?,
                webhook_backoff_base_secs: env.parse_or("WEBHOOK_BACKOFF_BASE_SECS", 30)?,
                webhook_timeout_secs: env.parse_or("WEBHOOK_TIMEOUT_SECS", 10)?,
                dispatch_interval_secs: env.parse_or("DISPATCH_INTERVAL_SECS", 5)?,
                telegram_bot_token: Secret::new(env.get("TELEGRAM_BOT_TOKEN").unwrap_or_default()),
                telegram_chat_id: env.str_or("TELEGRAM_CHAT_ID", ""),
                telegram_api_base: env
                    .str_or("TELEGRAM_API_BASE", "https://api.telegram.org")
                    .trim_end_matches('/')
                    .to_string(),
            },
        };
        settings.check()?;
        Ok(settings)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let positive = |var: &'static str, value: i64| {
            if value > 0 {
                Ok(())
            } else {
                Err(ConfigError::Invalid {
                    var,
                    reason: "must be a positive number".into(),
                })
            }
        };
        positive("ORDER_EXPIRE_MINUTES", self.order_expire_minutes)?;
        positive("MAX_MEMBERSHIP_QUANTITY", self.max_membership_quantity)?;
        positive("QR_CODE_EXPIRE_MINUTES", self.qr_code_expire_minutes)?;
        positive("JWT_TTL_MINUTES", self.jwt_ttl_minutes)?;
        positive("PASSWORD_HASH_THREADS", self.password_hash_threads as i64)?;
        positive("PASSWORD_HASH_QUEUE", self.password_hash_queue as i64)?;
        positive("ORDER_CACHE_TTL_SECS", self.order_cache_ttl_secs as i64)?;
        positive(
            "PASSWORD_HASH_WAIT_SECS",
            self.password_hash_wait_secs as i64,
        )?;
        let l = &self.lifecycle;
        positive("SWEEP_INTERVAL_SECS", l.sweep_interval_secs as i64)?;
        positive("RECONCILE_INTERVAL_SECS", l.reconcile_interval_secs as i64)?;
        positive(
            "ORDER_WATCH_CHECKS_PER_SEC",
            i64::from(l.watch_checks_per_sec),
        )?;
        positive("DISPATCH_INTERVAL_SECS", l.dispatch_interval_secs as i64)?;
        positive("WEBHOOK_RETRY_HOURS", l.webhook_retry_hours)?;
        positive("WEBHOOK_BACKOFF_BASE_SECS", l.webhook_backoff_base_secs)?;
        positive("WEBHOOK_TIMEOUT_SECS", l.webhook_timeout_secs as i64)?;
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
        if self.emulator.time_scale <= 0.0 {
            return Err(ConfigError::Invalid {
                var: "EMULATOR_TIME_SCALE",
                reason: "must be greater than zero".into(),
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

    fn parse_or<T: std::str::FromStr>(
        &self,
        var: &'static str,
        default: T,
    ) -> Result<T, ConfigError>
    where
        T::Err: fmt::Display,
    {
        match self.get(var) {
            None => Ok(default),
            Some(raw) => raw.parse().map_err(|e: T::Err| ConfigError::Invalid {
                var,
                reason: format!("cannot parse {raw:?}: {e}"),
            }),
        }
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
}
