//! Fidelity checks found by driving the emulator with third-party SDKs (issue #14, item 5):
//! each drives a real listener over HTTP as an SDK would.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use fenpay_emulator::{DevKeys, EmulatorConfig, Merchant, WechatKeyMode};
use fenpay_proto::alipay as ali;
use fenpay_proto::wechat as wx;
use serde_json::Value;

struct Emu {
    url: String,
    keys: DevKeys,
    http: reqwest::Client,
}

async fn emulator() -> Emu {
    emulator_in(None).await
}

async fn emulator_in(wechat_mode: Option<WechatKeyMode>) -> Emu {
    // The TEST key set the workspace's other tests share (RSA generation is slow in
    // debug builds).
    static KEYS: std::sync::OnceLock<DevKeys> = std::sync::OnceLock::new();
    let keys = KEYS
        .get_or_init(|| {
            let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/test-dev-keys");
            DevKeys::load_or_generate(std::path::Path::new(dir)).unwrap()
        })
        .clone();
    let merchant = Merchant {
        bind: "127.0.0.1:0".into(),
        time_scale: 100.0,
        wechat_mch_id: "1900000109".into(),
        wechat_app_id: "wxd0000000000emu01".into(),
        wechat_mode,
        alipay_app_id: "2021000000000001".into(),
        alipay_mode: None,
        alipay_seller_id: String::new(),
        wechat_app_secret: String::new(),
        wechat_oauth_domains: Vec::new(),
    };
    let emu = fenpay_emulator::start(EmulatorConfig::from_dev_keys(&merchant, &keys)).unwrap();
    tokio::spawn(emu.server);
    Emu {
        url: emu.base_url,
        keys,
        http: reqwest::Client::new(),
    }
}

/// Form-encodes like Python's `urlencode` (and HTML forms): space as `+`.
fn form_encode(params: &BTreeMap<String, String>) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", plus_encode(k), plus_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn plus_encode(text: &str) -> String {
    urlencoding::encode(text).replace("%20", "+")
}

fn alipay_params(emu: &Emu, method: &str, biz: Value) -> BTreeMap<String, String> {
    let mut params: BTreeMap<String, String> = [
        ("app_id", "2021000000000001".to_string()),
        ("method", method.to_string()),
        ("charset", "utf-8".to_string()),
        ("sign_type", "RSA2".to_string()),
        // The space in the timestamp is what Python SDKs send as `+`.
        ("timestamp", "2026-12-05 12:00:00".to_string()),
        ("version", "1.0".to_string()),
        ("biz_content", biz.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let sign = ali::sign_params(&params, &emu.keys.alipay_app_key).unwrap();
    params.insert("sign".into(), sign);
    params
}

async fn alipay_answer(resp: reqwest::Response, node: &str) -> (u16, Value) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    (status, body[node].clone())
}

#[tokio::test]
async fn alipay_query_string_plus_is_a_space() {
    let emu = emulator().await;
    let params = alipay_params(
        &emu,
        "alipay.trade.precreate",
        serde_json::json!({"out_trade_no": "PLUSQ1", "total_amount": "0.01", "subject": "a b+c"}),
    );
    let query = form_encode(&params);
    assert!(
        query.contains("timestamp=2026-12-05+12%3A00%3A00"),
        "{query}"
    );
    let resp = emu
        .http
        .post(format!("{}/gateway.do?{query}", emu.url))
        .send()
        .await
        .unwrap();
    let (status, answer) = alipay_answer(resp, "alipay_trade_precreate_response").await;
    assert_eq!(status, 200);
    assert_eq!(answer["code"], "10000", "{answer}");
    assert_eq!(answer["out_trade_no"], "PLUSQ1");
}

#[tokio::test]
async fn alipay_form_body_plus_is_a_space() {
    let emu = emulator().await;
    let params = alipay_params(
        &emu,
        "alipay.trade.precreate",
        serde_json::json!({"out_trade_no": "PLUSF1", "total_amount": "0.01", "subject": "a b+c"}),
    );
    let resp = emu
        .http
        .post(format!("{}/gateway.do?charset=utf-8", emu.url))
        .header(
            "content-type",
            "application/x-www-form-urlencoded;charset=utf-8",
        )
        .body(form_encode(&params))
        .send()
        .await
        .unwrap();
    let (status, answer) = alipay_answer(resp, "alipay_trade_precreate_response").await;
    assert_eq!(status, 200);
    assert_eq!(answer["code"], "10000", "{answer}");
    // The subject kept its literal `+` (sent as %2B) and its space (sent as `+`).
    let trade: Value = emu
        .http
        .get(format!("{}/__emulator/alipay/trades/PLUSF1", emu.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(trade["subject"], "a b+c", "{trade}");
}

#[tokio::test]
async fn alipay_page_pay_url_with_plus_opens_the_cashier() {
    let emu = emulator().await;
    let mut params = alipay_params(
        &emu,
        "alipay.trade.page.pay",
        serde_json::json!({"out_trade_no": "PLUSP1", "total_amount": "2.00", "subject": "page pay 测试",
            "product_code": "FAST_INSTANT_TRADE_PAY"}),
    );
    params.insert(
        "return_url".into(),
        "http://127.0.0.1:9/return?a=1 2".into(),
    );
    params.remove("sign");
    let sign = ali::sign_params(&params, &emu.keys.alipay_app_key).unwrap();
    params.insert("sign".into(), sign);
    let resp = emu
        .http
        .get(format!("{}/gateway.do?{}", emu.url, form_encode(&params)))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let html = resp.text().await.unwrap();
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("id=\"emulator-pay\""), "{html}");
}

// ---------------------------------------------------------------------------
// WeChat Pay v3: refunds of unpaid trades, and signed refund answers

const MCHID: &str = "1900000109";

async fn wechat(
    emu: &Emu,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let text = body.map(|b| b.to_string()).unwrap_or_default();
    let ts = chrono_now();
    let nonce = wx::nonce_str(32);
    let auth = wx::authorization(
        MCHID,
        &emu.keys.wechat_merchant_serial,
        &emu.keys.wechat_merchant_key,
        method.as_str(),
        path,
        ts,
        &nonce,
        &text,
    )
    .unwrap();
    let mut req = emu
        .http
        .request(method, format!("{}{path}", emu.url))
        .header("Authorization", auth)
        .header("Accept", "application/json");
    if !text.is_empty() {
        req = req.header("Content-Type", "application/json").body(text);
    }
    req.send().await.unwrap()
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The answer's status and JSON body, after checking it carries `Wechatpay-Serial`
/// (the one `expect_serial` names) and a signature that verifies with WeChat Pay's key,
/// as an SDK verifying every answer does.
async fn verified(emu: &Emu, resp: reqwest::Response, expect_serial: &str) -> (u16, Value) {
    let status = resp.status().as_u16();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .unwrap_or_else(|| panic!("answer {status} has no {name}"))
            .to_str()
            .unwrap()
            .to_string()
    };
    let (serial, ts, nonce, sig) = (
        header("Wechatpay-Serial"),
        header("Wechatpay-Timestamp"),
        header("Wechatpay-Nonce"),
        header("Wechatpay-Signature"),
    );
    assert_eq!(serial, expect_serial, "answer {status} serial");
    let body = resp.bytes().await.unwrap();
    wx::verify_signed_message(
        &emu.keys.wechat_platform_key.public_key(),
        &ts,
        &nonce,
        &body,
        &sig,
        chrono_now(),
    )
    .unwrap_or_else(|e| panic!("answer {status} does not verify: {e}"));
    let value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).unwrap()
    };
    (status, value)
}

async fn native_order(emu: &Emu, out_trade_no: &str) {
    let resp = wechat(
        emu,
        reqwest::Method::POST,
        "/v3/pay/transactions/native",
        Some(serde_json::json!({
            "appid": "wxd0000000000emu01", "mchid": MCHID, "description": "fidelity",
            "out_trade_no": out_trade_no, "notify_url": "https://example.com/notify",
            "amount": {"total": 100, "currency": "CNY"}
        })),
    )
    .await;
    assert_eq!(resp.status().as_u16(), 200);
}

fn refund_body(out_trade_no: &str, out_refund_no: &str) -> Value {
    serde_json::json!({
        "out_trade_no": out_trade_no, "out_refund_no": out_refund_no,
        "amount": {"refund": 100, "total": 100, "currency": "CNY"}
    })
}

async fn refund_answers_are_signed(mode: WechatKeyMode) {
    let emu = emulator_in(Some(mode)).await;
    let serial = match mode {
        WechatKeyMode::PublicKey => emu.keys.wechat_public_key_id.clone(),
        WechatKeyMode::Certificate => emu.keys.wechat_platform_cert.serial_hex.clone(),
    };
    native_order(&emu, "WXUNPAID1").await;

    // A trade that exists but was never paid: the documented 404 RESOURCE_NOT_EXISTS
    // ("请检查订单号是否正确且是否已支付，未支付的订单不能发起退款"), signed.
    let resp = wechat(
        &emu,
        reqwest::Method::POST,
        "/v3/refund/domestic/refunds",
        Some(refund_body("WXUNPAID1", "RFUNPAID1")),
    )
    .await;
    let (status, body) = verified(&emu, resp, &serial).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["code"], "RESOURCE_NOT_EXISTS", "{body}");

    // Refund query of an unknown refund: 404, signed.
    let resp = wechat(
        &emu,
        reqwest::Method::GET,
        "/v3/refund/domestic/refunds/RFUNPAID1",
        None,
    )
    .await;
    let (status, body) = verified(&emu, resp, &serial).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["code"], "RESOURCE_NOT_EXISTS", "{body}");

    // Business errors on refunds are signed too (amount mismatch: 400 INVALID_REQUEST).
    let paid = emu
        .http
        .post(format!("{}/__emulator/wechat/pay/WXUNPAID1", emu.url))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert!(paid.status().is_success(), "{}", paid.status());
    let mut wrong = refund_body("WXUNPAID1", "RFPAID1");
    wrong["amount"]["total"] = Value::from(101);
    let resp = wechat(
        &emu,
        reqwest::Method::POST,
        "/v3/refund/domestic/refunds",
        Some(wrong),
    )
    .await;
    let (status, body) = verified(&emu, resp, &serial).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "INVALID_REQUEST", "{body}");

    // And the successful refund and its query.
    let resp = wechat(
        &emu,
        reqwest::Method::POST,
        "/v3/refund/domestic/refunds",
        Some(refund_body("WXUNPAID1", "RFPAID1")),
    )
    .await;
    let (status, body) = verified(&emu, resp, &serial).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["out_refund_no"], "RFPAID1");
    let resp = wechat(
        &emu,
        reqwest::Method::GET,
        "/v3/refund/domestic/refunds/RFPAID1",
        None,
    )
    .await;
    let (status, body) = verified(&emu, resp, &serial).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["amount"]["refund"], 100);
}

#[tokio::test]
async fn wechat_refund_answers_are_signed_public_key_mode() {
    refund_answers_are_signed(WechatKeyMode::PublicKey).await;
}

#[tokio::test]
async fn wechat_refund_answers_are_signed_certificate_mode() {
    refund_answers_are_signed(WechatKeyMode::Certificate).await;
}

// ---------------------------------------------------------------------------
// Alipay OpenAPI v3

async fn alipay_v3(
    emu: &Emu,
    path: &str,
    body: Value,
    key: &fenpay_proto::RsaPrivateKey,
) -> reqwest::Response {
    let body = body.to_string();
    let auth = format!(
        "app_id=2021000000000001,nonce={},timestamp={}",
        uuid_like(),
        chrono_now() * 1000
    );
    let sign = key
        .sign_sha256_base64(format!("{auth}\nPOST\n{path}\n{body}\n").as_bytes())
        .unwrap();
    emu.http
        .post(format!("{}{path}", emu.url))
        .header(
            "authorization",
            format!("ALIPAY-SHA256withRSA {auth},sign={sign}"),
        )
        .header("alipay-request-id", "req-fidelity-1")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

fn uuid_like() -> String {
    wx::nonce_str(32)
}

/// Status, headers checked and signature verified (`ts\nnonce\nbody\n`), JSON body.
async fn v3_verified(emu: &Emu, resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let get = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let (ts, nonce, sig) = (
        get("alipay-timestamp").expect("alipay-timestamp"),
        get("alipay-nonce").expect("alipay-nonce"),
        get("alipay-signature").expect("alipay-signature"),
    );
    assert_eq!(get("alipay-request-id").as_deref(), Some("req-fidelity-1"));
    let body = resp.text().await.unwrap();
    assert!(
        emu.keys
            .alipay_platform_key
            .public_key()
            .verify_sha256_base64(format!("{ts}\n{nonce}\n{body}\n").as_bytes(), &sig),
        "answer {status} does not verify"
    );
    (status, serde_json::from_str(&body).unwrap())
}

#[tokio::test]
async fn alipay_v3_trade_api_shares_the_gateway_trades() {
    let emu = emulator().await;
    let key = emu.keys.alipay_app_key.clone();
    let resp = alipay_v3(
        &emu,
        "/v3/alipay/trade/precreate",
        serde_json::json!({"out_trade_no": "V3T1", "total_amount": "1.00", "subject": "v3"}),
        &key,
    )
    .await;
    let (status, body) = v3_verified(&emu, resp).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["out_trade_no"], "V3T1");
    assert!(body["qr_code"]
        .as_str()
        .unwrap()
        .starts_with("https://qr.alipay.com/"));
    assert!(
        body.get("code").is_none(),
        "v3 answers carry no code/msg: {body}"
    );

    // Not scanned yet: the trade does not exist (400, signed).
    let resp = alipay_v3(
        &emu,
        "/v3/alipay/trade/query",
        serde_json::json!({"out_trade_no": "V3T1"}),
        &key,
    )
    .await;
    let (status, body) = v3_verified(&emu, resp).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("ACQ.TRADE_NOT_EXIST")),
        "{body}"
    );

    // Paid through the control API; the gateway.do trade is the v3 trade.
    let paid = emu
        .http
        .post(format!("{}/__emulator/alipay/pay/V3T1", emu.url))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert!(paid.status().is_success());
    let resp = alipay_v3(
        &emu,
        "/v3/alipay/trade/query",
        serde_json::json!({"out_trade_no": "V3T1"}),
        &key,
    )
    .await;
    let (status, body) = v3_verified(&emu, resp).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["trade_status"], "TRADE_SUCCESS");
    assert_eq!(body["total_amount"], "1.00");

    let resp = alipay_v3(
        &emu,
        "/v3/alipay/trade/refund",
        serde_json::json!({"out_trade_no": "V3T1", "refund_amount": "0.25", "out_request_no": "V3R1"}),
        &key,
    )
    .await;
    let (status, body) = v3_verified(&emu, resp).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["refund_fee"], "0.25");
    let resp = alipay_v3(
        &emu,
        "/v3/alipay/trade/fastpay/refund/query",
        serde_json::json!({"out_trade_no": "V3T1", "out_request_no": "V3R1"}),
        &key,
    )
    .await;
    let (status, body) = v3_verified(&emu, resp).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["refund_amount"], "0.25");

    // A request signed with another key: 401 invalid-signature, nothing runs.
    let stranger = emu.keys.wechat_merchant_key.clone();
    let resp = alipay_v3(
        &emu,
        "/v3/alipay/trade/close",
        serde_json::json!({"out_trade_no": "V3T1"}),
        &stranger,
    )
    .await;
    let (status, body) = v3_verified(&emu, resp).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("invalid-signature")),
        "{body}"
    );

    // No Authorization at all.
    let resp = emu
        .http
        .post(format!("{}/v3/alipay/trade/query", emu.url))
        .header("alipay-request-id", "req-fidelity-1")
        .body("{}")
        .send()
        .await
        .unwrap();
    let (status, body) = v3_verified(&emu, resp).await;
    assert_eq!(status, 401, "{body}");
}
