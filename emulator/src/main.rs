//! `fenpay-emulator`: the WeChat Pay v3 + Alipay emulator on its own, for any SDK or app.
//!
//! Configuration (environment): `EMULATOR_BIND` (default `127.0.0.1:8090`),
//! `EMULATOR_KEYS_DIR` (default `./emulator-keys`: the TEST key set, generated on first
//! start), `EMULATOR_TIME_SCALE` (default 1: the providers' real resend schedule),
//! `EMULATOR_WECHAT_MODE` and `EMULATOR_ALIPAY_MODE` (`public_key` | `certificate`;
//! default: the key set's),
//! `WECHAT_PAY_MCH_ID`, `WECHAT_PAY_APP_ID`, `WECHAT_PAY_APP_SECRET`, `ALIPAY_APP_ID`,
//! `ALIPAY_SELLER_ID` (the names and development defaults fenpay uses),
//! `EMULATOR_WECHAT_OAUTH_DOMAINS` (hosts a web-authorisation `redirect_uri` may use;
//! default `127.0.0.1,localhost`).

use std::path::PathBuf;

use fenpay_emulator::{DevKeys, EmulatorConfig, Merchant};

fn var(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_string())
}

fn merchant() -> anyhow::Result<Merchant> {
    let time_scale: f64 = var("EMULATOR_TIME_SCALE", "1")
        .parse()
        .map_err(|e| anyhow::anyhow!("EMULATOR_TIME_SCALE: {e}"))?;
    if !(time_scale.is_finite() && (0.001..=1_000_000.0).contains(&time_scale)) {
        anyhow::bail!("EMULATOR_TIME_SCALE must be between 0.001 and 1000000, got {time_scale}");
    }
    let wechat_mode = match std::env::var("EMULATOR_WECHAT_MODE") {
        Ok(v) if !v.trim().is_empty() => Some(
            v.parse()
                .map_err(|e| anyhow::anyhow!("EMULATOR_WECHAT_MODE: {e}"))?,
        ),
        _ => None,
    };
    let alipay_mode = match std::env::var("EMULATOR_ALIPAY_MODE") {
        Ok(v) if !v.trim().is_empty() => Some(
            v.parse()
                .map_err(|e| anyhow::anyhow!("EMULATOR_ALIPAY_MODE: {e}"))?,
        ),
        _ => None,
    };
    Ok(Merchant {
        bind: var("EMULATOR_BIND", "127.0.0.1:8090"),
        time_scale,
        wechat_mch_id: var("WECHAT_PAY_MCH_ID", "1900000109"),
        wechat_app_id: var("WECHAT_PAY_APP_ID", "wxd0000000000emu01"),
        wechat_mode,
        alipay_app_id: var("ALIPAY_APP_ID", "2021000000000001"),
        alipay_mode,
        alipay_seller_id: var("ALIPAY_SELLER_ID", ""),
        wechat_app_secret: var("WECHAT_PAY_APP_SECRET", ""),
        wechat_oauth_domains: var("EMULATOR_WECHAT_OAUTH_DOMAINS", "")
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(String::from)
            .collect(),
    })
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    if std::env::args()
        .nth(1)
        .is_some_and(|a| a == "--help" || a == "-h")
    {
        println!("{}", include_str!("../README.md"));
        return Ok(());
    }
    let merchant = merchant()?;
    let dir = PathBuf::from(var("EMULATOR_KEYS_DIR", "./emulator-keys"));
    let keys = DevKeys::load_or_generate(&dir)?;
    let config = EmulatorConfig::from_dev_keys(&merchant, &keys);
    // The public halves an SDK is configured with, next to the TEST keys.
    std::fs::write(
        dir.join("wechat_pay_public_key.pem"),
        config.wechat.platform_key.public_key().to_spki_pem(),
    )?;
    std::fs::write(
        dir.join("alipay_public_key.pem"),
        config.alipay.alipay_private_key.public_key().to_spki_pem(),
    )?;
    let emu = fenpay_emulator::start(config)?;
    println!(
        "emulator listening on {} (TEST keys in {})",
        emu.base_url,
        dir.display()
    );
    emu.server.await?;
    Ok(())
}
