//! `GET /__emulator/merchant`: what an SDK pointed at this emulator needs to know that is
//! not secret: the merchant ids, the serial the emulator expects, and the public keys and
//! certificate it signs with. The secrets (the merchant's private keys, the APIv3 key)
//! stay in the TEST key set's files.

use actix_web::{web, HttpResponse};
use fenpay_proto::wechat::WechatKeyMode;
use serde_json::json;

use crate::EmulatorConfig;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/__emulator/merchant", web::get().to(merchant));
}

/// The public half of the configuration, as JSON.
pub fn public_info(c: &EmulatorConfig, base_url: &str) -> serde_json::Value {
    json!({
        "base_url": base_url,
        "wechat": {
            "mch_id": c.wechat.mch_id,
            "app_id": c.wechat.app_id,
            "merchant_serial_no": c.wechat.merchant_serial,
            "key_mode": c.wechat.mode.as_str(),
            "public_key_id": c.wechat.public_key_id,
            "public_key_pem": c.wechat.platform_key.public_key().to_spki_pem(),
            "platform_certificate_serial_no": match c.wechat.mode {
                WechatKeyMode::Certificate => Some(c.wechat.platform_cert.serial_hex.clone()),
                WechatKeyMode::PublicKey => None,
            },
            "platform_certificate_pem": match c.wechat.mode {
                WechatKeyMode::Certificate => Some(c.wechat.platform_cert.pem.clone()),
                WechatKeyMode::PublicKey => None,
            },
        },
        "alipay": {
            "app_id": c.alipay.app_id,
            "seller_id": c.alipay.seller_id,
            "gateway": format!("{base_url}/gateway.do"),
            "alipay_public_key_pem": c.alipay.alipay_private_key.public_key().to_spki_pem(),
        },
    })
}

async fn merchant(state: crate::State) -> HttpResponse {
    HttpResponse::Ok().json(public_info(&state.config, &state.base_url))
}
