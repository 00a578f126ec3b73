//! Development key material, generated once under `<DATA_DIR>/dev-keys/` and shared by
//! our provider clients and the local emulator, so development needs no configuration.
//!
//! These are TEST keys for the emulator only; production keys come from the environment.

use std::path::{Path, PathBuf};

use fenpay_proto::{Certificate, RsaPrivateKey};
use rand::distributions::Alphanumeric;
use rand::Rng;

use fenpay_proto::alipay::{self as alipay_proto, AlipayKeyMode};
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
    /// Certificate mode, a TEST chain named like Alipay's downloads: the root bundle
    /// (`alipayRootCert.crt`, one self-signed TEST root), Alipay's certificate over
    /// `alipay_platform_key` (`alipayCertPublicKey_RSA2.crt`) and the app's certificate
    /// over `alipay_app_key` (`appCertPublicKey.crt`), both issued by that root. The
    /// root's key is not kept: delete the three files to issue a new chain.
    pub alipay_root_cert: Certificate,
    pub alipay_cert: Certificate,
    pub alipay_app_cert: Certificate,
    /// Their SNs: `alipay_cert_sn` (answers), `app_cert_sn` and `alipay_root_cert_sn`
    /// (requests).
    pub alipay_cert_sn: String,
    pub alipay_app_cert_sn: String,
    pub alipay_root_cert_sn: String,
    /// The emulated app's Alipay key mode (file `alipay_key_mode`: `public_key`,
    /// written for new key sets, or `certificate`).
    pub alipay_key_mode: AlipayKeyMode,
}

/// File names of the TEST Alipay certificate chain inside the key set directory.
pub const ALIPAY_ROOT_CERT_FILE: &str = "alipayRootCert.crt";
pub const ALIPAY_CERT_FILE: &str = "alipayCertPublicKey_RSA2.crt";
pub const ALIPAY_APP_CERT_FILE: &str = "appCertPublicKey.crt";

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
        let (alipay_root_cert, alipay_cert, alipay_app_cert) =
            alipay_chain(dir, &alipay_platform_key, &alipay_app_key)?;
        let alipay_key_mode = text(dir, "alipay_key_mode", || {
            AlipayKeyMode::default().as_str().to_string()
        })?
        .parse()
        .map_err(|e| anyhow::anyhow!("{}: {e}", dir.join("alipay_key_mode").display()))?;
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
            alipay_cert_sn: alipay_proto::cert_sn(&alipay_cert.pem)?,
            alipay_app_cert_sn: alipay_proto::cert_sn(&alipay_app_cert.pem)?,
            alipay_root_cert_sn: alipay_proto::root_cert_sn(&alipay_root_cert.pem)?,
            alipay_root_cert,
            alipay_cert,
            alipay_app_cert,
            alipay_key_mode,
        })
    }
}

/// Loads the TEST Alipay chain, issuing a new one (fresh root key) when a file is
/// missing or no longer matches the keys.
fn alipay_chain(
    dir: &Path,
    alipay_key: &RsaPrivateKey,
    app_key: &RsaPrivateKey,
) -> anyhow::Result<(Certificate, Certificate, Certificate)> {
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name))
            .ok()
            .and_then(|pem| Certificate::from_pem(&pem).ok())
    };
    if let (Some(root), Some(alipay), Some(app)) = (
        read(ALIPAY_ROOT_CERT_FILE),
        read(ALIPAY_CERT_FILE),
        read(ALIPAY_APP_CERT_FILE),
    ) {
        if alipay.public_key == alipay_key.public_key() && app.public_key == app_key.public_key() {
            return Ok((root, alipay, app));
        }
    }
    // Full DNs (CN, OU, O, C) as on Alipay's certificates: some SDKs build the SN's
    // issuer string from exactly these four (python-alipay-sdk).
    const ROOT_DN: &str =
        "CN=fenpay emulator TEST Alipay Root CA,OU=TEST Certification Authority,O=fenpay emulator TEST,C=CN";
    let root_key = RsaPrivateKey::generate(2048)?;
    let serial = || format!("{}{}", rand::thread_rng().gen_range(1..8u8), random_hex(31));
    let root = Certificate::issue(
        &root_key,
        ROOT_DN,
        &root_key.public_key(),
        &serial(),
        ROOT_DN,
        7300,
    )?;
    let alipay = Certificate::issue(
        &root_key,
        ROOT_DN,
        &alipay_key.public_key(),
        &serial(),
        "CN=fenpay emulator TEST Alipay certificate,OU=Alipay,O=fenpay emulator TEST,C=CN",
        3650,
    )?;
    let app = Certificate::issue(
        &root_key,
        ROOT_DN,
        &app_key.public_key(),
        &serial(),
        "CN=fenpay emulator TEST app certificate,OU=Alipay,O=fenpay emulator TEST,C=CN",
        3650,
    )?;
    std::fs::write(dir.join(ALIPAY_ROOT_CERT_FILE), &root.pem)?;
    std::fs::write(dir.join(ALIPAY_CERT_FILE), &alipay.pem)?;
    std::fs::write(dir.join(ALIPAY_APP_CERT_FILE), &app.pem)?;
    Ok((root, alipay, app))
}

impl DevKeys {
    /// The WeChat Pay key mode in force: `overridden` (the `EMULATOR_WECHAT_MODE`
    /// setting) when given, else the key set's. The emulator and fenpay's client (on these
    /// keys) always agree on it.
    pub fn wechat_mode(&self, overridden: Option<WechatKeyMode>) -> WechatKeyMode {
        overridden.unwrap_or(self.wechat_key_mode)
    }

    /// The Alipay key mode in force: `overridden` (`EMULATOR_ALIPAY_MODE`) when given,
    /// else the key set's. The emulator and fenpay's client (on these keys) agree on it.
    pub fn alipay_mode(&self, overridden: Option<AlipayKeyMode>) -> AlipayKeyMode {
        overridden.unwrap_or(self.alipay_key_mode)
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
