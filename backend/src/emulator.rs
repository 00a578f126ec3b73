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
        },
        keys,
    )
}
