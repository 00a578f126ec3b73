//! Provider notifications built the way WeChat Pay and Alipay send them, signed with the
//! emulator's (test) platform keys: for the scenario suites and the benchmark.

use std::collections::BTreeMap;

use fenpay_proto::wechat as proto;
use serde_json::{json, Value};

use crate::dev_keys;

/// A WeChat `TRANSACTION.SUCCESS` notification: signed with the emulator's platform key,
/// the transaction encrypted with the APIv3 key; `edit` may tamper with the plaintext.
/// Returns (headers, body).
pub fn wechat_notification(
    order_no: &str,
    total: i64,
    edit: impl FnOnce(&mut Value),
) -> (Vec<(String, String)>, String) {
    let keys = dev_keys();
    let mut tx = json!({
        "appid": "wxd0000000000emu01", "mchid": "1900000109", "out_trade_no": order_no,
        "transaction_id": format!("4200{}", &order_no[order_no.len().saturating_sub(10)..]),
        "trade_type": "NATIVE", "trade_state": "SUCCESS", "trade_state_desc": "支付成功",
        "bank_type": "OTHERS", "success_time": "2026-11-22T12:00:00+08:00",
        "payer": {"openid": "o-test"}, "amount": {"total": total, "payer_total": total, "currency": "CNY", "payer_currency": "CNY"}
    });
    edit(&mut tx);
    let nonce = proto::nonce_str(12);
    let resource = proto::EncryptedResource::seal(
        keys.wechat_api_v3_key.expose().as_bytes(),
        "transaction",
        "transaction",
        &nonce,
        tx.to_string().as_bytes(),
    )
    .expect("seal");
    let body = json!({
        "id": uuid::Uuid::new_v4().to_string(), "create_time": "2026-11-22T12:00:01+08:00",
        "resource_type": "encrypt-resource", "event_type": "TRANSACTION.SUCCESS", "summary": "支付成功",
        "resource": resource
    })
    .to_string();
    let ts = chrono::Utc::now().timestamp().to_string();
    let header_nonce = proto::nonce_str(32);
    let sig = proto::sign_response(
        &keys.wechat_platform_key,
        &ts,
        &header_nonce,
        body.as_bytes(),
    )
    .expect("sign");
    let headers = vec![
        ("Wechatpay-Timestamp".to_string(), ts),
        ("Wechatpay-Nonce".to_string(), header_nonce),
        ("Wechatpay-Signature".to_string(), sig),
        (
            "Wechatpay-Serial".to_string(),
            keys.wechat_public_key_id.clone(),
        ),
        (
            "Wechatpay-Signature-Type".to_string(),
            "WECHATPAY2-SHA256-RSA2048".to_string(),
        ),
    ];
    (headers, body)
}

/// An Alipay `trade_status_sync` notification (form body), V1-signed with the
/// emulator's Alipay key; `edit` may change any parameter before signing.
pub fn alipay_notification(
    order_no: &str,
    total: &str,
    edit: impl FnOnce(&mut BTreeMap<String, String>),
) -> String {
    let mut p: BTreeMap<String, String> = [
        ("notify_time", "2026-11-22 12:00:05"),
        ("notify_type", "trade_status_sync"),
        ("notify_id", "ac05099524730693a8b330c5ecf72da9786"),
        ("app_id", "2021000000000001"),
        ("auth_app_id", "2021000000000001"),
        ("charset", "utf-8"),
        ("version", "1.0"),
        ("sign_type", "RSA2"),
        ("trade_no", "2026112222001400000000000001"),
        ("out_trade_no", order_no),
        ("trade_status", "TRADE_SUCCESS"),
        ("total_amount", total),
        ("receipt_amount", total),
        ("buyer_pay_amount", total),
        ("seller_id", "2088000000000001"),
        ("buyer_id", "2088102177846880"),
        ("gmt_create", "2026-11-22 12:00:00"),
        ("gmt_payment", "2026-11-22 12:00:04"),
        ("subject", "100 积分"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    edit(&mut p);
    signed_form(p, &dev_keys().alipay_platform_key)
}

/// [`alipay_notification`] signed by `key` instead of Alipay's (dev) key.
pub fn alipay_notification_signed_by(
    order_no: &str,
    total: &str,
    key: &fenpay_proto::RsaPrivateKey,
) -> String {
    let form = alipay_notification(order_no, total, |_| {});
    let mut p: BTreeMap<String, String> = form
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| {
            (
                urlencoding::decode(k).expect("utf-8").into_owned(),
                urlencoding::decode(v).expect("utf-8").into_owned(),
            )
        })
        .collect();
    p.remove("sign");
    signed_form(p, key)
}

fn signed_form(mut p: BTreeMap<String, String>, key: &fenpay_proto::RsaPrivateKey) -> String {
    let sign = fenpay_proto::alipay::sign_notification(&p, key).expect("sign");
    p.insert("sign".into(), sign);
    p.iter()
        .map(|(k, v)| format!("{}={}", urlencoding::encode(k), urlencoding::encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}
