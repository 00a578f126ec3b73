//! Development key material, generated once under `<DATA_DIR>/dev-keys/` and shared by
//! our provider clients and the local emulator, so development needs no configuration.
//!
//! These are TEST keys for the emulator only; production keys come from the environment.

use std::path::{Path, PathBuf};

use fenpay_proto::{Certificate, RsaPrivateKey};
use rand::distributions::Alphanumeric;
use rand::Rng;

use fenpay_proto::wechat::WechatKeyMode;
use fenpay_proto::Secret;

/// Every key and id the emulator and our clients share in development.
#[derive(Clone, Debug)]
pub struct DevKeys {
    pub dir: PathBuf,
    /// WeChat merchant API key pair (the merchant signs requests with it).
    pub wechat_merchant_key: RsaPrivateKey,
    /// Merchant API certificate serial (hex).
    pub wechat_merchant_serial: String,
    /// WeChat Pay's own key (public-key mode signer) and its id `PUB_KEY_ID_...`.
    pub wechat_platform_key: RsaPrivateKey,
    pub wechat_public_key_id: String,
    /// Platform certificate over the same platform key (certificate mode).
    pub wechat_platform_cert: Certificate,
    pub wechat_api_v3_key: Secret,
    /// The emulated merchant's WeChat Pay key mode (file `wechat_key_mode`:
    /// `public_key`, written for new key sets, or `certificate`).
    pub wechat_key_mode: WechatKeyMode,
    /// Alipay app key pair (the merchant signs requests with it).
    pub alipay_app_key: RsaPrivateKey,
    /// Alipay's own key (signs responses and notifications).
    pub alipay_platform_key: RsaPrivateKey,
}

impl DevKeys {
    /// Load the key set from `dir`, generating whatever is missing.
    pub fn load_or_generate(dir: &Path) -> anyhow::Result<DevKeys> {
        std::fs::create_dir_all(dir)?;
        let generated = !dir.join("wechat_merchant_key.pem").exists();
        let wechat_merchant_key = key(dir, "wechat_merchant_key.pem")?;
        let wechat_platform_key = key(dir, "wechat_platform_key.pem")?;
        let alipay_app_key = key(dir, "alipay_app_key.pem")?;
        let alipay_platform_key = key(dir, "alipay_platform_key.pem")?;
        let wechat_merchant_serial = text(dir, "wechat_merchant_serial", || random_hex(40))?;
        let wechat_public_key_id = text(dir, "wechat_public_key_id", || {
            format!("PUB_KEY_ID_{}", random_digits(32))
        })?;
        let wechat_api_v3_key = text(dir, "wechat_api_v3_key", || random_alnum(32))?;
        let wechat_key_mode = text(dir, "wechat_key_mode", || {
            WechatKeyMode::default().as_str().to_string()
        })?
        .parse()
        .map_err(|e| anyhow::anyhow!("{}: {e}", dir.join("wechat_key_mode").display()))?;
        let cert_path = dir.join("wechat_platform_cert.pem");
        let wechat_platform_cert = match std::fs::read_to_string(&cert_path) {
            Ok(pem) => Certificate::from_pem(&pem)?,
            Err(_) => {
                // X.509 serials are positive and at most 20 bytes: a leading hex digit of
                // 1-7 keeps DER from adding a sign byte (21 bytes would be rejected).
                let serial = format!("{}{}", rand::thread_rng().gen_range(1..8u8), random_hex(39));
                let cert = Certificate::generate(
                    &wechat_platform_key,
                    &serial,
                    "Tenpay.com Root CA (fenpay emulator TEST)",
                    3650,
                )?;
                std::fs::write(&cert_path, &cert.pem)?;
                cert
            }
        };
        if generated {
            tracing::warn!(dir = %dir.display(), "generated development TEST keys for the provider emulator");
        }
        Ok(DevKeys {
            dir: dir.to_path_buf(),
            wechat_merchant_key,
            wechat_merchant_serial,
            wechat_platform_key,
            wechat_public_key_id,
            wechat_platform_cert,
            wechat_api_v3_key: Secret::new(wechat_api_v3_key),
            wechat_key_mode,
            alipay_app_key,
            alipay_platform_key,
        })
    }
}

impl DevKeys {
    /// The WeChat Pay key mode in force: `overridden` (the `EMULATOR_WECHAT_MODE`
    /// setting) when given, else the key set's. The emulator and fenpay's client (on these
    /// keys) always agree on it.
    pub fn wechat_mode(&self, overridden: Option<WechatKeyMode>) -> WechatKeyMode {
        overridden.unwrap_or(self.wechat_key_mode)
    }
}

fn key(dir: &Path, name: &str) -> anyhow::Result<RsaPrivateKey> {
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(pem) => Ok(RsaPrivateKey::from_pem(&pem)?),
        Err(_) => {
            let key = RsaPrivateKey::generate(2048)?;
            write_private(&path, &key.to_pkcs8_pem())?;
            Ok(key)
        }
    }
}

fn text(dir: &Path, name: &str, make: impl FnOnce() -> String) -> anyhow::Result<String> {
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
        _ => {
            let v = make();
            write_private(&path, &v)?;
            Ok(v)
        }
    }
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

fn random_hex(len: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| char::from(b"0123456789ABCDEF"[rng.gen_range(0..16)]))
        .collect()
}

fn random_digits(len: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
        .collect()
}

fn random_alnum(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}
