//! The provider emulator (crate `fenpay-emulator`) as fenpay runs it in development:
//! inside `fenpay serve`, or alone as `fenpay emulator`, on the settings' ids and the
//! development TEST key set.

pub use fenpay_emulator::*;

use crate::config::Settings;

/// The emulator's configuration for these settings and TEST keys.
pub fn config_for(settings: &Settings, keys: &DevKeys) -> EmulatorConfig {
    EmulatorConfig::from_dev_keys(
        &Merchant {
            bind: settings.emulator.bind.clone(),
            time_scale: settings.emulator.time_scale,
            wechat_mch_id: settings.wechat.mch_id.clone(),
            wechat_app_id: settings.wechat.app_id.clone(),
            wechat_mode: settings.emulator.wechat_mode,
            alipay_app_id: settings.alipay.app_id.clone(),
            alipay_mode: settings.emulator.alipay_mode,
            alipay_seller_id: settings.alipay.seller_id.clone(),
            wechat_app_secret: settings.wechat.app_secret.expose().to_string(),
            // The server's own host may receive web-authorisation redirects.
            wechat_oauth_domains: reqwest::Url::parse(&settings.public_base_url)
                .ok()
                .and_then(|u| u.host_str().map(String::from))
                .into_iter()
                .chain(wechat_oauth::DEFAULT_DOMAINS.iter().map(|d| d.to_string()))
                .collect(),
        },
        keys,
    )
}
