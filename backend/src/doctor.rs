//! `fenpay doctor`: check the configuration and the provider credentials without starting
//! the server. Every problem names its variable; the exit status is non-zero when there
//! is any. It also prints the exact strings fenpay would sign for a sample request, and
//! with `--probe` calls the providers' read-only endpoints.

use std::collections::HashMap;

use fenpay_proto::{Certificate, RsaPrivateKey, RsaPublicKey};

use crate::config::{callback_url_problem, ConfigError, Settings};
use crate::providers::{self, ProviderError};

/// A trade number no provider knows (the probe's query).
pub const PROBE_TRADE_NO: &str = "FPDOCTOR0000000000000001";

/// What the doctor found.
#[derive(Debug, Default)]
pub struct Report {
    /// (variable, what is wrong with it)
    pub problems: Vec<(String, String)>,
    /// Everything else worth saying (checks passed, sign strings, probe answers).
    pub notes: Vec<String>,
}

impl Report {
    fn problem(&mut self, var: &str, message: impl Into<String>) {
        self.problems.push((var.to_string(), message.into()));
    }

    fn note(&mut self, message: impl Into<String>) {
        self.notes.push(message.into());
    }

    /// The report as printed.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for n in &self.notes {
            out.push_str(n);
            out.push('\n');
        }
        if self.problems.is_empty() {
            out.push_str("no problems found\n");
        } else {
            out.push_str(&format!("{} problem(s):\n", self.problems.len()));
            for (var, message) in &self.problems {
                out.push_str(&format!("PROBLEM {var}: {message}\n"));
            }
        }
        out
    }
}

fn config_var(e: &ConfigError) -> String {
    match e {
        ConfigError::Invalid { var, .. }
        | ConfigError::OutOfRange { var, .. }
        | ConfigError::Missing { var, .. } => (*var).to_string(),
        _ => "DATA_DIR".into(),
    }
}

struct Vars<'a>(&'a HashMap<String, String>);

impl Vars<'_> {
    fn get(&self, k: &str) -> Option<String> {
        self.0
            .get(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }
}

/// A private key from `<VAR>_PATH` (a file) or `<VAR>` (inline PEM); the variable it
/// came from.
fn private_key(
    r: &mut Report,
    v: &Vars,
    path_var: Option<&str>,
    inline_var: &str,
) -> Option<(RsaPrivateKey, String)> {
    let (text, var) = match path_var.and_then(|p| v.get(p).map(|path| (p, path))) {
        Some((p, path)) => match std::fs::read_to_string(&path) {
            Ok(t) => (t, p.to_string()),
            Err(e) => {
                r.problem(p, format!("cannot read {path}: {e}"));
                return None;
            }
        },
        None => (v.get(inline_var)?, inline_var.to_string()),
    };
    match RsaPrivateKey::from_pem(&text) {
        Ok(k) => Some((k, var)),
        Err(e) => {
            r.problem(&var, format!("not an RSA private key (PEM): {e}"));
            None
        }
    }
}

fn read_file(r: &mut Report, var: &str, path: &str) -> Option<String> {
    match std::fs::read_to_string(path) {
        Ok(t) => Some(t),
        Err(e) => {
            r.problem(var, format!("cannot read {path}: {e}"));
            None
        }
    }
}

/// The URLs the providers call: (variable, value, is a notify URL).
fn callback_urls(v: &Vars) -> Vec<(&'static str, String, bool, &'static str)> {
    let bind = v
        .get("BIND_ADDR")
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let base = v
        .get("PUBLIC_BASE_URL")
        .unwrap_or_else(|| format!("http://{bind}"))
        .trim_end_matches('/')
        .to_string();
    let url = |var: &'static str, path: &str, notify: bool, provider: &'static str| {
        (
            var,
            v.get(var).unwrap_or_else(|| format!("{base}{path}")),
            notify,
            provider,
        )
    };
    vec![
        url(
            "WECHAT_PAY_NOTIFY_URL",
            "/api/v1/payment/wechat/callback",
            true,
            "wechat",
        ),
        url(
            "WECHAT_PAY_REFUND_NOTIFY_URL",
            "/api/v1/payment/wechat/refund-callback",
            true,
            "wechat",
        ),
        url(
            "ALIPAY_NOTIFY_URL",
            "/api/v1/payment/alipay/callback",
            true,
            "alipay",
        ),
        url(
            "ALIPAY_RETURN_URL",
            "/api/v1/payment/alipay/return",
            false,
            "alipay",
        ),
    ]
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Check WeChat Pay's merchant settings; the merchant key and serial when they are good.
fn check_wechat(r: &mut Report, v: &Vars) -> Option<(RsaPrivateKey, String)> {
    match v.get("WECHAT_PAY_MCH_ID") {
        None => r.problem("WECHAT_PAY_MCH_ID", "required with a merchant key"),
        Some(m) if !(all_digits(&m) && (8..=10).contains(&m.len())) => r.problem(
            "WECHAT_PAY_MCH_ID",
            format!("{m:?} is not a merchant id (8 to 10 digits, e.g. 1900000109)"),
        ),
        Some(_) => {}
    }
    match v.get("WECHAT_PAY_APP_ID") {
        None => r.problem("WECHAT_PAY_APP_ID", "required with a merchant key"),
        Some(a)
            if !(a.len() == 18
                && a.starts_with("wx")
                && a[2..].bytes().all(|b| b.is_ascii_alphanumeric())) =>
        {
            r.problem(
                "WECHAT_PAY_APP_ID",
                format!("{a:?} is not an app id (wx followed by 16 characters)"),
            )
        }
        Some(_) => {}
    }
    match v.get("WECHAT_PAY_API_V3_KEY") {
        None => r.problem(
            "WECHAT_PAY_API_V3_KEY",
            "required: the 32-byte APIv3 key set in the merchant platform",
        ),
        Some(k) if k.len() != 32 => r.problem(
            "WECHAT_PAY_API_V3_KEY",
            format!(
                "must be exactly 32 bytes, got {} (it decrypts notifications: AEAD_AES_256_GCM)",
                k.len()
            ),
        ),
        Some(_) => {}
    }
    let key = private_key(
        r,
        v,
        Some("WECHAT_PAY_PRIVATE_KEY_PATH"),
        "WECHAT_PAY_PRIVATE_KEY",
    );
    let serial = v.get("WECHAT_PAY_MCH_SERIAL");
    if let Some(s) = &serial {
        if !(s.len() <= 40 && s.len() >= 8 && s.bytes().all(|b| b.is_ascii_hexdigit())) {
            r.problem(
                "WECHAT_PAY_MCH_SERIAL",
                format!("{s:?} is not a certificate serial number (hex, 40 digits in the merchant platform)"),
            );
        }
    }
    let mut cert_serial = None;
    if let Some(path) = v.get("WECHAT_PAY_CERT_PATH") {
        if let Some(text) = read_file(r, "WECHAT_PAY_CERT_PATH", &path) {
            match Certificate::from_pem(&text) {
                Ok(cert) => {
                    if let Some((k, var)) = &key {
                        if k.public_key() != cert.public_key {
                            r.problem(var, format!("does not match the certificate in WECHAT_PAY_CERT_PATH (serial {})", cert.serial_hex));
                        }
                    }
                    if let Some(s) = &serial {
                        if !s.eq_ignore_ascii_case(&cert.serial_hex) {
                            r.problem(
                                "WECHAT_PAY_MCH_SERIAL",
                                format!(
                                    "{s} is not the serial of WECHAT_PAY_CERT_PATH ({})",
                                    cert.serial_hex
                                ),
                            );
                        }
                    }
                    if !cert.is_valid_at(chrono::Utc::now()) {
                        r.problem(
                            "WECHAT_PAY_CERT_PATH",
                            format!(
                                "the certificate is not valid now ({} to {})",
                                cert.not_before, cert.not_after
                            ),
                        );
                    }
                    cert_serial = Some(cert.serial_hex);
                }
                Err(e) => r.problem(
                    "WECHAT_PAY_CERT_PATH",
                    format!("not an X.509 certificate (PEM): {e}"),
                ),
            }
        }
    } else if serial.is_none() {
        r.problem(
            "WECHAT_PAY_MCH_SERIAL",
            "required with a merchant key (or WECHAT_PAY_CERT_PATH, the apiclient_cert.pem it comes from)",
        );
    } else if key.is_some() {
        r.note("WeChat Pay: the merchant key cannot be matched with WECHAT_PAY_MCH_SERIAL offline (set WECHAT_PAY_CERT_PATH, or run with --probe: WeChat answers SIGN_ERROR on a mismatch)");
    }
    let public_id = v.get("WECHAT_PAY_PUBLIC_KEY_ID");
    match (v.get("WECHAT_PAY_PUBLIC_KEY_PATH"), &public_id) {
        (Some(path), id) => {
            match id {
                None => r.problem("WECHAT_PAY_PUBLIC_KEY_ID", "required with WECHAT_PAY_PUBLIC_KEY_PATH: the PUB_KEY_ID_... shown next to the key in the merchant platform"),
                Some(id) if !(fenpay_proto::wechat::is_public_key_id(id) && all_digits(&id["PUB_KEY_ID_".len()..])) => r.problem(
                    "WECHAT_PAY_PUBLIC_KEY_ID",
                    format!("{id:?} is not a public key id (PUB_KEY_ID_ followed by digits)"),
                ),
                Some(_) => {}
            }
            if let Some(text) = read_file(r, "WECHAT_PAY_PUBLIC_KEY_PATH", &path) {
                match RsaPublicKey::from_pem(&text) {
                    Ok(pk) => {
                        if let Some((k, var)) = &key {
                            if k.public_key() == pk {
                                r.problem("WECHAT_PAY_PUBLIC_KEY_PATH", format!("is the public half of your own merchant key ({var}), not WeChat Pay's public key (download pub_key.pem from the merchant platform)"));
                            }
                        }
                    }
                    Err(e) => r.problem("WECHAT_PAY_PUBLIC_KEY_PATH", format!("not an RSA public key (PEM): {e}")),
                }
            }
        }
        (None, Some(_)) => r.problem(
            "WECHAT_PAY_PUBLIC_KEY_PATH",
            "required with WECHAT_PAY_PUBLIC_KEY_ID (the pub_key.pem it names)",
        ),
        (None, None) => r.note("WeChat Pay: no public key: platform certificates are downloaded from /v3/certificates (merchants created since late 2024 have no certificates: set WECHAT_PAY_PUBLIC_KEY_PATH + WECHAT_PAY_PUBLIC_KEY_ID)"),
    }
    let serial = serial.or(cert_serial)?;
    key.map(|(k, _)| (k, serial))
}

/// Check Alipay's app settings; the app key when it is good.
fn check_alipay(r: &mut Report, v: &Vars) -> Option<RsaPrivateKey> {
    match v.get("ALIPAY_APP_ID") {
        None => r.problem("ALIPAY_APP_ID", "required with ALIPAY_PRIVATE_KEY"),
        Some(a) if !(all_digits(&a) && a.len() == 16) => r.problem(
            "ALIPAY_APP_ID",
            format!("{a:?} is not an app id (16 digits, e.g. 2021000000000001)"),
        ),
        Some(_) => {}
    }
    if let Some(s) = v.get("ALIPAY_SELLER_ID") {
        if !(all_digits(&s) && s.len() == 16 && s.starts_with("2088")) {
            r.problem(
                "ALIPAY_SELLER_ID",
                format!("{s:?} is not a seller id (16 digits starting 2088)"),
            );
        }
    }
    let key = private_key(r, v, None, "ALIPAY_PRIVATE_KEY").map(|(k, _)| k);
    if CERT_VARS.iter().any(|var| v.get(var).is_some()) {
        check_alipay_certs(r, v, key.as_ref());
        return key;
    }
    match v.get("ALIPAY_PUBLIC_KEY") {
        None => r.problem("ALIPAY_PUBLIC_KEY", "required with ALIPAY_PRIVATE_KEY: Alipay's public key (支付宝公钥) from the open platform"),
        Some(text) => match RsaPublicKey::from_pem(&text) {
            Ok(pk) => {
                if key.as_ref().is_some_and(|k| k.public_key() == pk) {
                    r.problem("ALIPAY_PUBLIC_KEY", "is your app's own public key (应用公钥, the public half of ALIPAY_PRIVATE_KEY), not Alipay's public key (支付宝公钥): Alipay's answers and notifications would never verify");
                }
            }
            Err(e) => r.problem("ALIPAY_PUBLIC_KEY", format!("not an RSA public key: {e}")),
        },
    }
    key
}

/// The certificate-mode variables (all three, or none for public-key mode).
const CERT_VARS: [&str; 3] = [
    "ALIPAY_APP_CERT_PATH",
    "ALIPAY_CERT_PATH",
    "ALIPAY_ROOT_CERT_PATH",
];

/// Days from now until `t` (negative once past).
fn days_left(t: chrono::DateTime<chrono::Utc>) -> i64 {
    (t - chrono::Utc::now()).num_days()
}

/// Alipay certificate mode: the three files parse, the app certificate is over
/// ALIPAY_PRIVATE_KEY's key pair, the Alipay certificate chains to a root of the bundle
/// and is valid (days left); prints the SNs fenpay sends and expects.
fn check_alipay_certs(r: &mut Report, v: &Vars, key: Option<&RsaPrivateKey>) {
    use fenpay_proto::alipay as ap;
    let mut texts = Vec::with_capacity(3);
    for var in CERT_VARS {
        match v.get(var) {
            None => r.problem(var, "certificate mode needs all three of ALIPAY_APP_CERT_PATH, ALIPAY_CERT_PATH and ALIPAY_ROOT_CERT_PATH (or none for public-key mode)"),
            Some(path) => texts.push(read_file(r, var, &path).map(|t| (var, path, t))),
        }
    }
    let [Some((_, app_path, app_pem)), Some((_, cert_path, cert_pem)), Some((_, root_path, root_pem))] =
        <[_; 3]>::try_from(texts).unwrap_or([None, None, None])
    else {
        return;
    };
    let cert = |r: &mut Report, var: &str, path: &str, pem: &str| match (
        Certificate::from_pem(pem),
        ap::cert_sn(pem),
    ) {
        (Ok(c), Ok(sn)) => Some((c, sn)),
        (Err(e), _) | (_, Err(e)) => {
            r.problem(var, format!("{path} is not a usable certificate: {e}"));
            None
        }
    };
    let app = cert(r, "ALIPAY_APP_CERT_PATH", &app_path, &app_pem);
    let alipay = cert(r, "ALIPAY_CERT_PATH", &cert_path, &cert_pem);
    let root_sn = match ap::root_cert_sn(&root_pem) {
        Ok(sn) => Some(sn),
        Err(e) => {
            r.problem(
                "ALIPAY_ROOT_CERT_PATH",
                format!("{root_path} is not a root certificate bundle: {e}"),
            );
            None
        }
    };
    if let Some((app_cert, sn)) = &app {
        if key.is_some_and(|k| k.public_key() != app_cert.public_key) {
            r.problem("ALIPAY_APP_CERT_PATH", format!("{app_path} certifies another key than ALIPAY_PRIVATE_KEY: use the appCertPublicKey certificate issued for this app's key pair"));
        } else if key.is_some() {
            r.note(format!(
                "Alipay app certificate {app_path}: matches ALIPAY_PRIVATE_KEY, app_cert_sn {sn}"
            ));
        }
        let left = days_left(app_cert.not_after);
        if left < 0 {
            r.problem(
                "ALIPAY_APP_CERT_PATH",
                format!("{app_path} expired on {}", app_cert.not_after),
            );
        } else {
            r.note(format!(
                "Alipay app certificate valid until {} ({left} days left)",
                app_cert.not_after
            ));
        }
    }
    if let Some(sn) = &root_sn {
        r.note(format!(
            "Alipay root bundle {root_path}: alipay_root_cert_sn {sn}"
        ));
    }
    if let (Some((alipay_cert, sn)), Some(_)) = (&alipay, &root_sn) {
        match ap::verify_chain(&cert_pem, &root_pem, chrono::Utc::now()) {
            Ok(chain) => {
                r.note(format!(
                    "Alipay certificate {cert_path}: alipay_cert_sn {sn}, issued by root {} ({} intermediate(s)), valid until {} ({} days left)",
                    chain.root,
                    chain.intermediates,
                    alipay_cert.not_after,
                    days_left(chain.leaf_not_after)
                ));
                if days_left(chain.leaf_not_after) < 30 {
                    r.note("WARNING: the Alipay certificate expires within 30 days: download the new one from the Alipay open platform");
                }
            }
            Err(e) => r.problem(
                "ALIPAY_CERT_PATH",
                format!("{cert_path} does not chain to ALIPAY_ROOT_CERT_PATH {root_path}: {e}"),
            ),
        }
        if key.is_some_and(|k| k.public_key() == alipay_cert.public_key) {
            r.problem("ALIPAY_CERT_PATH", format!("{cert_path} is over your app's own key (ALIPAY_PRIVATE_KEY), not Alipay's: use alipayCertPublicKey_RSA2.crt"));
        }
    }
}

/// Check everything in `vars` (the process environment and `.env`); `probe` also calls
/// the providers.
pub async fn run(vars: &HashMap<String, String>, probe: bool) -> Report {
    let mut r = Report::default();
    let v = Vars(vars);
    let settings = match Settings::from_map(vars) {
        Ok(s) => Some(s),
        Err(e) => {
            // The certificate-mode checks below name each of these themselves.
            let var = config_var(&e);
            let cert_mode = CERT_VARS.iter().any(|c| v.get(c).is_some());
            if !(cert_mode && (CERT_VARS.contains(&var.as_str()) || var == "ALIPAY_PRIVATE_KEY")) {
                r.problem(&var, e.to_string());
            }
            None
        }
    };
    let production = matches!(v.get("APP_ENV").as_deref(), Some("production" | "prod"));
    let wechat_explicit =
        v.get("WECHAT_PAY_PRIVATE_KEY_PATH").is_some() || v.get("WECHAT_PAY_PRIVATE_KEY").is_some();
    let alipay_explicit = v.get("ALIPAY_PRIVATE_KEY").is_some();
    if production && !wechat_explicit && !alipay_explicit {
        r.problem(
            "WECHAT_PAY_PRIVATE_KEY_PATH",
            "no provider is configured (set WECHAT_PAY_PRIVATE_KEY_PATH and friends, or ALIPAY_PRIVATE_KEY and friends)",
        );
    }
    let wechat_key = if wechat_explicit {
        check_wechat(&mut r, &v)
    } else {
        None
    };
    let alipay_key = if alipay_explicit {
        check_alipay(&mut r, &v)
    } else {
        None
    };
    for (var, url, notify, provider) in callback_urls(&v) {
        let used = !production
            || (provider == "wechat" && wechat_explicit)
            || (provider == "alipay" && alipay_explicit);
        if !used {
            continue;
        }
        if let Some(problem) = callback_url_problem(&url, notify, production) {
            let var = if v.get(var).is_some() {
                var
            } else {
                "PUBLIC_BASE_URL"
            };
            r.problem(var, format!("{url} {problem}"));
        }
    }
    if production {
        for (var, default) in [
            ("WECHAT_PAY_BASE_URL", "https://api.mch.weixin.qq.com"),
            ("ALIPAY_GATEWAY", "https://openapi.alipay.com/gateway.do"),
        ] {
            let url = v.get(var).unwrap_or_else(|| default.into());
            if !url.starts_with("https://") {
                r.problem(var, format!("{url} is not https"));
            }
        }
    }
    let Some(settings) = settings else {
        return r;
    };
    // The keys fenpay would use: the merchant's, or (development) the emulator's TEST keys.
    let dev_keys = if !wechat_explicit || !alipay_explicit {
        if settings.emulator.enabled || settings.emulator.external_url.is_some() {
            match crate::devkeys::DevKeys::load_or_generate(&settings.dev_keys_dir) {
                Ok(k) => Some(k),
                Err(e) => {
                    r.problem("DEV_KEYS_DIR", e.to_string());
                    None
                }
            }
        } else {
            None
        }
    } else {
        None
    };
    let wechat = match (&wechat_key, &dev_keys) {
        (Some((k, serial)), _) => Some((k.clone(), serial.clone(), "merchant key")),
        (None, Some(d)) if !wechat_explicit => Some((
            d.wechat_merchant_key.clone(),
            d.wechat_merchant_serial.clone(),
            "emulator TEST key",
        )),
        _ => None,
    };
    let alipay = match (&alipay_key, &dev_keys) {
        (Some(k), _) => Some((k.clone(), "app key")),
        (None, Some(d)) if !alipay_explicit => {
            Some((d.alipay_app_key.clone(), "emulator TEST key"))
        }
        _ => None,
    };
    sample_signatures(&mut r, &settings, wechat, alipay);
    if probe && r.problems.is_empty() {
        probe_providers(&mut r, &settings, dev_keys.as_ref()).await;
    } else if probe {
        r.note("--probe skipped: fix the problems above first");
    }
    r
}

/// The exact strings signed for a sample query of [`PROBE_TRADE_NO`], so they can be
/// compared with an SDK's or the provider's signature tool.
fn sample_signatures(
    r: &mut Report,
    s: &Settings,
    wechat: Option<(RsaPrivateKey, String, &str)>,
    alipay: Option<(RsaPrivateKey, &str)>,
) {
    let now = chrono::Utc::now();
    if let Some((key, serial, which)) = wechat {
        let url = format!(
            "/v3/pay/transactions/out-trade-no/{PROBE_TRADE_NO}?mchid={}",
            s.wechat.mch_id
        );
        let ts = now.timestamp();
        let nonce = fenpay_proto::wechat::nonce_str(32);
        let message = fenpay_proto::wechat::request_message("GET", &url, ts, &nonce, "");
        r.note(format!(
            "WeChat Pay ({which}, serial {serial}): the message signed for GET {}{url} is\n  {:?}",
            s.wechat.base_url, message
        ));
        match fenpay_proto::wechat::authorization(
            &s.wechat.mch_id,
            &serial,
            &key,
            "GET",
            &url,
            ts,
            &nonce,
            "",
        ) {
            Ok(h) => r.note(format!("  Authorization: {h}")),
            Err(e) => r.problem("WECHAT_PAY_PRIVATE_KEY_PATH", format!("cannot sign: {e}")),
        }
    }
    if let Some((key, which)) = alipay {
        let mut params = std::collections::BTreeMap::new();
        for (k, v) in [
            ("app_id", s.alipay.app_id.clone()),
            ("method", "alipay.trade.query".into()),
            ("format", "JSON".into()),
            ("charset", "utf-8".into()),
            ("sign_type", "RSA2".into()),
            ("timestamp", providers::alipay::china_time(now)),
            ("version", "1.0".into()),
            (
                "biz_content",
                format!("{{\"out_trade_no\":\"{PROBE_TRADE_NO}\"}}"),
            ),
        ] {
            params.insert(k.to_string(), v);
        }
        // Certificate mode: both SNs are signed too.
        if let Some(files) = &s.alipay.certs {
            if let Ok(m) = files.load(None, now) {
                params.insert("app_cert_sn".to_string(), m.app_cert_sn);
                params.insert("alipay_root_cert_sn".to_string(), m.root_cert_sn);
            }
        }
        let content = fenpay_proto::alipay::sign_content(
            params.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            &["sign"],
        );
        r.note(format!(
            "Alipay ({which}): the string signed (RSA2) for alipay.trade.query at {} is\n  {content}",
            s.alipay.gateway
        ));
        match fenpay_proto::alipay::sign_params(&params, &key) {
            Ok(sign) => r.note(format!("  sign={sign}")),
            Err(e) => r.problem("ALIPAY_PRIVATE_KEY", format!("cannot sign: {e}")),
        }
    }
}

/// Which variable a failed provider call points at.
fn blame(provider: &str, e: &ProviderError) -> &'static str {
    match (provider, e) {
        ("wechat", ProviderError::SignatureRejected(_)) => "WECHAT_PAY_PRIVATE_KEY_PATH",
        ("wechat", ProviderError::BadSignature(_) | ProviderError::InvalidResponse(_)) => {
            "WECHAT_PAY_PUBLIC_KEY_PATH"
        }
        ("wechat", ProviderError::Unavailable(_)) => "WECHAT_PAY_BASE_URL",
        ("wechat", _) => "WECHAT_PAY_MCH_ID",
        (_, ProviderError::SignatureRejected(_)) => "ALIPAY_PRIVATE_KEY",
        (_, ProviderError::BadSignature(_) | ProviderError::InvalidResponse(_)) => {
            "ALIPAY_PUBLIC_KEY"
        }
        (_, ProviderError::Unavailable(_)) => "ALIPAY_GATEWAY",
        _ => "ALIPAY_APP_ID",
    }
}

async fn probe_providers(r: &mut Report, s: &Settings, dev_keys: Option<&crate::devkeys::DevKeys>) {
    let built = match providers::build(s, dev_keys, s.emulator.external_url.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            r.problem(
                "WECHAT_PAY_PRIVATE_KEY_PATH",
                format!("the provider clients cannot be built: {e}"),
            );
            return;
        }
    };
    if let Some(w) = &built.wechat {
        let certificates = matches!(
            w.config().trust,
            providers::wechat::PlatformTrust::Certificates
        );
        match w.refresh_certificates().await {
            Ok(n) => r.note(format!("probe WeChat Pay GET /v3/certificates: {n} platform certificate(s), decrypted with the APIv3 key and verified")),
            Err(e) if certificates => {
                let var = match e {
                    ProviderError::InvalidResponse(_) => "WECHAT_PAY_API_V3_KEY",
                    _ => blame("wechat", &e),
                };
                r.problem(var, format!("GET /v3/certificates failed: {e}"));
            }
            Err(e) => r.note(format!("probe WeChat Pay GET /v3/certificates: {e} (expected for a public-key merchant)")),
        }
        match w.query(PROBE_TRADE_NO).await {
            Err(ProviderError::TradeNotExist)
            | Ok(providers::RemoteTrade {
                state: providers::RemoteTradeState::NotExist,
                ..
            }) => r.note(format!(
                "probe WeChat Pay query of {PROBE_TRADE_NO}: ORDER_NOT_EXIST, signed answer verified (credentials accepted)"
            )),
            Ok(t) => r.note(format!("probe WeChat Pay query of {PROBE_TRADE_NO}: {:?}", t.state)),
            Err(e) => r.problem(blame("wechat", &e), format!("WeChat Pay query of a non-existent trade: {e}")),
        }
    }
    if let Some(a) = &built.alipay {
        match a.query(PROBE_TRADE_NO).await {
            Err(ProviderError::TradeNotExist)
            | Ok(providers::RemoteTrade {
                state: providers::RemoteTradeState::NotExist,
                ..
            }) => r.note(format!(
                "probe Alipay alipay.trade.query of {PROBE_TRADE_NO}: ACQ.TRADE_NOT_EXIST, signed answer verified (credentials accepted)"
            )),
            Ok(t) => r.note(format!("probe Alipay query of {PROBE_TRADE_NO}: {:?}", t.state)),
            Err(e) => r.problem(blame("alipay", &e), format!("Alipay query of a non-existent trade: {e}")),
        }
    }
}
