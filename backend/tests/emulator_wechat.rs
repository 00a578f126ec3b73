//! The WeChat Pay v3 emulator driven as a merchant would: signed requests, verified
//! answers, notifications received by a local server and checked with the
//! platform key, resends, faults.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use chrono::Utc;
use fenpay::config::{Secret, WechatKeyMode};
use fenpay::emulator::wechat::RefundStatus;
use fenpay::emulator::{
    self, AlipayEmulatorConfig, EmulatorConfig, EmulatorState, WechatEmulatorConfig,
};
use fenpay::providers::wechat::{PlatformTrust, WechatClient, WechatClientConfig};
use fenpay::providers::{ProviderError, RefundRequest, RemoteRefundState, RemoteTradeState};
use fenpay_proto::wechat::{
    self as proto, CertificateList, EncryptedResource, NotificationEnvelope, RefundResource,
    RefundResourceAmount, Transaction,
};
use fenpay_proto::{Certificate, RsaPrivateKey, RsaPublicKey};
use serde_json::{json, Value};

const MCH_ID: &str = "1900000109";
const APP_ID: &str = "wxd0000000000emu01";
const MERCHANT_SERIAL: &str = "408B07E79B8269FEC3D5D3E6AB8ED163A6A380DB";
const PUBLIC_KEY_ID: &str = "PUB_KEY_ID_0114232134912410000000000000000001";
const CERT_SERIAL: &str = "5DEA10EF55877E3CF6C33255C2E7DEFFF7E427EC";
const API_V3_KEY: &str = "a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb";

struct Keys {
    merchant: RsaPrivateKey,
    platform: RsaPrivateKey,
    cert: Certificate,
}

/// Key generation is slow in debug builds: once per test binary.
fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let merchant = RsaPrivateKey::generate(2048).unwrap();
        let platform = RsaPrivateKey::generate(2048).unwrap();
        let cert =
            Certificate::generate(&platform, CERT_SERIAL, "Tenpay.com Root CA", 365).unwrap();
        Keys {
            merchant,
            platform,
            cert,
        }
    })
}

fn platform_public() -> RsaPublicKey {
    keys().platform.public_key()
}

struct Harness {
    base: String,
    http: reqwest::Client,
    state: web::Data<EmulatorState>,
}

/// A public-key merchant's emulator (the default).
async fn start(time_scale: f64) -> Harness {
    start_in(WechatKeyMode::PublicKey, time_scale).await
}

async fn start_in(mode: WechatKeyMode, time_scale: f64) -> Harness {
    let k = keys();
    let config = EmulatorConfig {
        bind: "127.0.0.1:0".into(),
        time_scale,
        wechat: WechatEmulatorConfig {
            mch_id: MCH_ID.into(),
            app_id: APP_ID.into(),
            merchant_public_key: k.merchant.public_key(),
            merchant_serial: MERCHANT_SERIAL.into(),
            api_v3_key: Secret::new(API_V3_KEY),
            public_key_id: PUBLIC_KEY_ID.into(),
            platform_key: k.platform.clone(),
            platform_cert: k.cert.clone(),
            mode,
            oauth: Default::default(),
        },
        alipay: AlipayEmulatorConfig {
            app_id: "2021000000000001".into(),
            app_public_key: k.merchant.public_key(),
            alipay_private_key: k.platform.clone(),
            seller_id: "2088000000000001".into(),
            mode: fenpay::emulator::AlipayKeyMode::PublicKey,
            alipay_cert_sn: String::new(),
            app_cert_sn: String::new(),
            root_cert_sn: String::new(),
        },
    };
    let emu = emulator::start(config).unwrap();
    tokio::spawn(emu.server);
    Harness {
        base: emu.base_url,
        http: reqwest::Client::new(),
        state: emu.state,
    }
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or_default().to_string()
    }

    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }

    /// Check `Wechatpay-Signature` over `ts\nnonce\nbody\n`.
    fn verify_with(&self, key: &RsaPublicKey) -> bool {
        proto::verify_signed_message(
            key,
            self.header("wechatpay-timestamp"),
            self.header("wechatpay-nonce"),
            &self.body,
            self.header("wechatpay-signature"),
            Utc::now().timestamp(),
        )
        .is_ok()
    }
}

fn authorization(method: &str, path_and_query: &str, body: &str) -> String {
    proto::authorization(
        MCH_ID,
        MERCHANT_SERIAL,
        &keys().merchant,
        method,
        path_and_query,
        Utc::now().timestamp(),
        &proto::nonce_str(32),
        body,
    )
    .unwrap()
}

impl Harness {
    /// A raw request: the caller supplies (or omits) Authorization and Wechatpay-Serial.
    async fn raw(
        &self,
        method: &str,
        path_and_query: &str,
        body: &str,
        auth: Option<String>,
        serial: Option<&str>,
    ) -> Resp {
        let url = format!("{}{}", self.base, path_and_query);
        let mut req = match method {
            "GET" => self.http.get(&url),
            _ => self
                .http
                .post(&url)
                .header("Content-Type", "application/json")
                .body(body.to_string()),
        };
        req = req.header("Accept", "application/json");
        if let Some(auth) = auth {
            req = req.header("Authorization", auth);
        }
        if let Some(serial) = serial {
            req = req.header("Wechatpay-Serial", serial);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let body = resp.bytes().await.unwrap().to_vec();
        Resp {
            status,
            headers,
            body,
        }
    }

    /// A correctly signed request in public-key mode.
    async fn call(&self, method: &str, path_and_query: &str, body: &str) -> Resp {
        let auth = authorization(method, path_and_query, body);
        self.raw(
            method,
            path_and_query,
            body,
            Some(auth),
            Some(PUBLIC_KEY_ID),
        )
        .await
    }

    async fn native(&self, order: &Value) -> Resp {
        self.call("POST", "/v3/pay/transactions/native", &order.to_string())
            .await
    }

    async fn query(&self, out_trade_no: &str) -> Resp {
        self.call(
            "GET",
            &format!("/v3/pay/transactions/out-trade-no/{out_trade_no}?mchid={MCH_ID}"),
            "",
        )
        .await
    }

    async fn close(&self, out_trade_no: &str) -> Resp {
        self.call(
            "POST",
            &format!("/v3/pay/transactions/out-trade-no/{out_trade_no}/close"),
            &json!({ "mchid": MCH_ID }).to_string(),
        )
        .await
    }

    async fn control(&self, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.post(format!("{}{}", self.base, path));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn control_get(&self, path: &str) -> (u16, Value) {
        let resp = self
            .http
            .get(format!("{}{}", self.base, path))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn pay(&self, out_trade_no: &str, body: Option<Value>) -> (u16, Value) {
        self.control(&format!("/__emulator/wechat/pay/{out_trade_no}"), body)
            .await
    }

    async fn set_faults(&self, faults: Value) {
        let (status, _) = self.control("/__emulator/faults", Some(faults)).await;
        assert_eq!(status, 200);
    }

    fn delivered(&self, out_trade_no: &str) -> bool {
        self.state
            .wechat
            .notifications(Some(out_trade_no))
            .iter()
            .any(|n| n.delivered)
    }
}

fn order(out_trade_no: &str, total: i64, notify_url: &str) -> Value {
    json!({
        "appid": APP_ID,
        "mchid": MCH_ID,
        "description": "fenpay 测试商品",
        "out_trade_no": out_trade_no,
        "notify_url": notify_url,
        "amount": {"total": total, "currency": "CNY"},
    })
}

const NOWHERE: &str = "https://merchant.example/wechat/notify";

/// A merchant's notify endpoint: records every request and answers the scripted
/// statuses in turn (then 204).
#[derive(Clone, Default)]
struct Receiver {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<u16>>>,
    /// How long the receiver waits before answering (after recording).
    answer_after: Duration,
}

#[derive(Clone, Debug)]
struct Received {
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }

    fn verify_with(&self, key: &RsaPublicKey) -> bool {
        proto::verify_signed_message(
            key,
            self.header("wechatpay-timestamp"),
            self.header("wechatpay-nonce"),
            &self.body,
            self.header("wechatpay-signature"),
            Utc::now().timestamp(),
        )
        .is_ok()
    }

    fn envelope(&self) -> NotificationEnvelope {
        serde_json::from_slice(&self.body).unwrap()
    }
}

async fn receiver(script: &[u16]) -> Receiver {
    slow_receiver(script, Duration::ZERO).await
}

async fn slow_receiver(script: &[u16], answer_after: Duration) -> Receiver {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let rx = Receiver {
        url: format!("http://127.0.0.1:{port}/wechat/notify"),
        received: Arc::default(),
        script: Arc::new(Mutex::new(script.iter().copied().collect())),
        answer_after,
    };
    let data = web::Data::new(rx.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .default_service(web::to(receive))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    rx
}

async fn receive(rx: web::Data<Receiver>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    rx.received.lock().unwrap().push(Received {
        headers,
        body: body.to_vec(),
    });
    let status = rx.script.lock().unwrap().pop_front().unwrap_or(204);
    tokio::time::sleep(rx.answer_after).await;
    HttpResponse::build(StatusCode::from_u16(status).unwrap()).finish()
}

impl Receiver {
    fn all(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

/// Poll until `done` (generous deadline; never a timing assertion).
async fn wait_for(what: &str, done: impl Fn() -> bool) {
    for _ in 0..400 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn native_prepay_is_signed_in_public_key_mode() {
    let h = start(1.0).await;
    let resp = h.native(&order("NATIVE0001", 100, NOWHERE)).await;
    assert_eq!(resp.status, 200, "{resp:?}");
    let code_url = resp.json()["code_url"].as_str().unwrap().to_string();
    assert!(
        code_url.starts_with("weixin://wxpay/bizpayurl?pr="),
        "{code_url}"
    );
    assert_eq!(resp.header("wechatpay-serial"), PUBLIC_KEY_ID);
    assert_eq!(resp.header("wechatpay-nonce").len(), 32);
    assert_eq!(
        resp.header("wechatpay-signature-type"),
        "WECHATPAY2-SHA256-RSA2048"
    );
    assert!(!resp.header("request-id").is_empty());
    assert!(resp.header("content-type").starts_with("application/json"));
    assert!(resp.verify_with(&platform_public()));
    assert!(!resp.verify_with(&keys().merchant.public_key()));
}

/// A certificate merchant: the request's `Wechatpay-Serial` picks the key (during the
/// switch to public keys, the public key id gets the public key).
#[tokio::test]
async fn request_serial_selects_the_answer_key_for_a_certificate_merchant() {
    let h = start_in(WechatKeyMode::Certificate, 1.0).await;
    let body = order("SERIAL0001", 1, NOWHERE).to_string();
    let path = "/v3/pay/transactions/native";

    let auth = authorization("POST", path, &body);
    let cert_mode = h
        .raw("POST", path, &body, Some(auth), Some(CERT_SERIAL))
        .await;
    assert_eq!(cert_mode.status, 200);
    assert_eq!(cert_mode.header("wechatpay-serial"), CERT_SERIAL);
    assert!(cert_mode.verify_with(&keys().cert.public_key));

    // Certificate-mode clients send no Wechatpay-Serial at all.
    let auth = authorization("POST", path, &body);
    let absent = h.raw("POST", path, &body, Some(auth), None).await;
    assert_eq!(absent.status, 200);
    assert_eq!(absent.header("wechatpay-serial"), CERT_SERIAL);
    assert!(absent.verify_with(&keys().cert.public_key));

    let auth = authorization("POST", path, &body);
    let other = h
        .raw("POST", path, &body, Some(auth), Some("SOMETHING"))
        .await;
    assert_eq!(other.header("wechatpay-serial"), PUBLIC_KEY_ID);
    assert!(other.verify_with(&platform_public()));
}

#[tokio::test]
async fn certificates_download_decrypts_to_the_platform_certificate() {
    let h = start_in(WechatKeyMode::Certificate, 1.0).await;
    let resp = h.call("GET", "/v3/certificates", "").await;
    assert_eq!(resp.status, 200, "{resp:?}");
    // Signed by the certificate it lists, whatever serial the request named.
    assert_eq!(resp.header("wechatpay-serial"), CERT_SERIAL);
    assert!(resp.verify_with(&keys().cert.public_key));
    let list: CertificateList = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(list.data.len(), 1);
    let entry = &list.data[0];
    assert_eq!(entry.serial_no, CERT_SERIAL);
    assert!(entry.effective_time.ends_with("+08:00"));
    assert_eq!(entry.encrypt_certificate.algorithm, "AEAD_AES_256_GCM");
    assert_eq!(entry.encrypt_certificate.associated_data, "certificate");
    assert_eq!(entry.encrypt_certificate.nonce.len(), 12);
    let cert = entry.decrypt_certificate(API_V3_KEY.as_bytes()).unwrap();
    assert_eq!(cert.serial_hex, CERT_SERIAL);
    assert_eq!(cert.public_key, platform_public());
}

#[tokio::test]
async fn query_and_close_follow_the_trade_state() {
    let h = start(1.0).await;
    let mut body = order("QUERY00001", 250, NOWHERE);
    body["attach"] = json!("cart=42");
    assert_eq!(h.native(&body).await.status, 200);

    let resp = h.query("QUERY00001").await;
    assert_eq!(resp.status, 200, "{resp:?}");
    assert!(resp.verify_with(&platform_public()));
    let tx: Transaction = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(tx.trade_state, "NOTPAY");
    assert_eq!(tx.trade_state_desc, "订单未支付");
    assert_eq!((tx.appid.as_str(), tx.mchid.as_str()), (APP_ID, MCH_ID));
    assert_eq!(tx.attach.as_deref(), Some("cart=42"));
    assert_eq!(tx.amount.as_ref().unwrap().total, 250);
    assert!(tx.transaction_id.is_none() && tx.success_time.is_none());

    let unknown = h.query("NOSUCHORDER").await;
    assert_eq!(
        (unknown.status, unknown.code().as_str()),
        (404, "ORDER_NOT_EXIST")
    );
    // Business errors to authenticated requests are signed like 2xx answers (SDKs
    // ignore it; a careful client tells a real 404 from a proxy's by it).
    assert!(unknown.verify_with(&platform_public()));
    let wrong_mchid = h
        .call(
            "GET",
            "/v3/pay/transactions/out-trade-no/QUERY00001?mchid=1230000109",
            "",
        )
        .await;
    assert_eq!(
        (wrong_mchid.status, wrong_mchid.code().as_str()),
        (400, "PARAM_ERROR")
    );
    let no_mchid = h
        .call("GET", "/v3/pay/transactions/out-trade-no/QUERY00001", "")
        .await;
    assert_eq!(no_mchid.status, 400);

    let closed = h.close("QUERY00001").await;
    assert_eq!(closed.status, 204, "{closed:?}");
    assert!(closed.body.is_empty());
    assert!(
        closed.verify_with(&platform_public()),
        "204 is signed over an empty body"
    );
    let tx: Transaction = serde_json::from_slice(&h.query("QUERY00001").await.body).unwrap();
    assert_eq!(tx.trade_state, "CLOSED");
    // Close is re-entrant; a closed trade cannot be paid or re-posted.
    assert_eq!(h.close("QUERY00001").await.status, 204);
    let (status, answer) = h.pay("QUERY00001", None).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (409, Some("ORDER_CLOSED"))
    );
    let again = h.native(&body).await;
    assert_eq!((again.status, again.code().as_str()), (400, "ORDER_CLOSED"));
    let unknown_close = h.close("NOSUCHORDER").await;
    assert_eq!(
        (unknown_close.status, unknown_close.code().as_str()),
        (404, "ORDER_NOT_EXIST")
    );
}

#[tokio::test]
async fn payment_sends_a_verifiable_encrypted_notification() {
    let h = start(1.0).await;
    let rx = receiver(&[]).await;
    assert_eq!(
        h.native(&order("PAYNOTIFY1", 1999, &rx.url)).await.status,
        200
    );

    let (status, paid) = h
        .pay(
            "PAYNOTIFY1",
            Some(json!({"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"})),
        )
        .await;
    assert_eq!(status, 200, "{paid}");
    assert_eq!(paid["trade_state"], "SUCCESS");
    wait_for("the notification", || !rx.all().is_empty()).await;

    let note = rx.all().remove(0);
    assert_eq!(
        note.header("wechatpay-signature-type"),
        "WECHATPAY2-SHA256-RSA2048"
    );
    assert_eq!(note.header("wechatpay-serial"), PUBLIC_KEY_ID);
    assert!(note.header("content-type").starts_with("application/json"));
    assert!(!note.header("user-agent").is_empty());
    assert!(note.verify_with(&platform_public()));
    let envelope = note.envelope();
    assert!(
        uuid::Uuid::parse_str(&envelope.id).is_ok(),
        "{}",
        envelope.id
    );
    assert_eq!(envelope.event_type, "TRANSACTION.SUCCESS");
    assert_eq!(envelope.resource_type, "encrypt-resource");
    assert_eq!(envelope.summary, "支付成功");
    assert!(envelope.create_time.ends_with("+08:00"));
    assert_eq!(envelope.resource.original_type, "transaction");
    assert_eq!(envelope.resource.associated_data, "transaction");
    assert_eq!(envelope.resource.nonce.len(), 12);
    let tx: Transaction = envelope.decrypt_resource(API_V3_KEY.as_bytes()).unwrap();
    assert_eq!(tx.trade_state, "SUCCESS");
    assert_eq!(tx.out_trade_no, "PAYNOTIFY1");
    assert_eq!(tx.trade_type.as_deref(), Some("NATIVE"));
    assert_eq!(tx.bank_type.as_deref(), Some("OTHERS"));
    let transaction_id = tx.transaction_id.clone().unwrap();
    assert!(transaction_id.starts_with("4200") && transaction_id.len() == 28);
    assert!(tx.success_time.as_deref().unwrap().ends_with("+08:00"));
    assert_eq!(
        tx.payer.as_ref().unwrap().openid.as_deref(),
        Some("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o")
    );
    let amount = tx.amount.clone().unwrap();
    assert_eq!((amount.total, amount.payer_total), (1999, Some(1999)));
    assert_eq!(amount.currency.as_deref(), Some("CNY"));

    // The query answers the same Transaction the notification carried.
    let queried: Transaction = serde_json::from_slice(&h.query("PAYNOTIFY1").await.body).unwrap();
    assert_eq!(queried, tx);
    let by_id = h
        .call(
            "GET",
            &format!("/v3/pay/transactions/id/{transaction_id}?mchid={MCH_ID}"),
            "",
        )
        .await;
    assert_eq!(by_id.status, 200);
    assert!(by_id.verify_with(&platform_public()));
    assert_eq!(
        serde_json::from_slice::<Transaction>(&by_id.body).unwrap(),
        tx
    );
    let no_id = h
        .call(
            "GET",
            &format!("/v3/pay/transactions/id/4200000000000000000000000000?mchid={MCH_ID}"),
            "",
        )
        .await;
    assert_eq!(no_id.status, 404);

    // Paid: close and re-post are refused; paying again changes nothing.
    let close = h.close("PAYNOTIFY1").await;
    assert_eq!((close.status, close.code().as_str()), (400, "ORDER_PAID"));
    let repost = h.native(&order("PAYNOTIFY1", 1999, &rx.url)).await;
    assert_eq!((repost.status, repost.code().as_str()), (400, "ORDER_PAID"));
    let (status, again) = h.pay("PAYNOTIFY1", None).await;
    assert_eq!(status, 200);
    assert_eq!(again["transaction_id"], transaction_id.as_str());
    wait_for("delivery to be logged", || h.delivered("PAYNOTIFY1")).await;
    let (status, log) = h
        .control_get("/__emulator/wechat/notifications?out_trade_no=PAYNOTIFY1")
        .await;
    assert_eq!(status, 200);
    assert_eq!(log.as_array().unwrap().len(), 1, "{log}");
    assert_eq!(log[0]["id"], envelope.id.as_str());
    assert_eq!(log[0]["delivered"], true);
    assert_eq!(log[0]["attempts"][0]["status"], 204);
    assert_eq!(rx.all().len(), 1);

    let (status, trade) = h.control_get("/__emulator/wechat/trades/PAYNOTIFY1").await;
    assert_eq!(status, 200);
    assert_eq!(trade["trade_state"], "SUCCESS");
    assert_eq!(trade["amount_total"], 1999);
    assert_eq!(trade["notify_url"], rx.url.as_str());
    assert_eq!(trade["transaction_id"], transaction_id.as_str());
}

#[tokio::test]
async fn certificate_mode_notifications_name_the_certificate() {
    let h = start_in(WechatKeyMode::Certificate, 1.0).await;
    let rx = receiver(&[]).await;
    assert_eq!(h.native(&order("CERTNOTE01", 5, &rx.url)).await.status, 200);
    let (status, _) = h
        .pay("CERTNOTE01", Some(json!({"serial_mode": "certificate"})))
        .await;
    assert_eq!(status, 200);
    // A trade prepaid without Wechatpay-Serial (a certificate-mode client) is notified
    // under the certificate too, unasked.
    let body = order("CERTNOTE02", 5, &rx.url).to_string();
    let path = "/v3/pay/transactions/native";
    let auth = authorization("POST", path, &body);
    assert_eq!(
        h.raw("POST", path, &body, Some(auth), None).await.status,
        200
    );
    assert_eq!(h.pay("CERTNOTE02", None).await.0, 200);
    wait_for("the notifications", || rx.all().len() >= 2).await;
    for note in rx.all() {
        assert_eq!(note.header("wechatpay-serial"), CERT_SERIAL);
        assert!(note.verify_with(&keys().cert.public_key));
    }
}

/// A merchant with the WeChat Pay public key only (every merchant since late 2024):
/// whatever `Wechatpay-Serial` the request names, or none (wechatpay-go in public-key
/// mode sends none), answers, errors and notifications are signed with the public key
/// under its id; there are no platform certificates to download or to sign with.
#[tokio::test]
async fn public_key_merchant_gets_everything_signed_with_the_public_key() {
    let h = start(1.0).await;
    let rx = receiver(&[]).await;
    let body = order("PUBKEY0001", 7, &rx.url).to_string();
    let path = "/v3/pay/transactions/native";
    for serial in [
        None,
        Some(CERT_SERIAL),
        Some("SOMETHING"),
        Some(PUBLIC_KEY_ID),
    ] {
        let auth = authorization("POST", path, &body);
        let resp = h.raw("POST", path, &body, Some(auth), serial).await;
        assert_eq!(resp.status, 200, "{serial:?}: {resp:?}");
        assert_eq!(resp.header("wechatpay-serial"), PUBLIC_KEY_ID, "{serial:?}");
        assert!(resp.verify_with(&platform_public()), "{serial:?}");
    }
    // A business error to an authenticated request without a serial, and the close's 204.
    let missing = "/v3/pay/transactions/out-trade-no/PUBKEYNONE?mchid=1900000109";
    let auth = authorization("GET", missing, "");
    let resp = h.raw("GET", missing, "", Some(auth), None).await;
    assert_eq!(
        (resp.status, resp.code().as_str()),
        (404, "ORDER_NOT_EXIST")
    );
    assert_eq!(resp.header("wechatpay-serial"), PUBLIC_KEY_ID);
    assert!(resp.verify_with(&platform_public()));
    // No platform certificate: the download is refused, in WeChat's words.
    let auth = authorization("GET", "/v3/certificates", "");
    let resp = h.raw("GET", "/v3/certificates", "", Some(auth), None).await;
    assert_eq!(
        (resp.status, resp.code().as_str()),
        (404, "RESOURCE_NOT_EXISTS"),
        "{resp:?}"
    );
    assert!(resp.json()["message"]
        .as_str()
        .unwrap()
        .contains("微信支付公钥"));
    // The notification too, and the buyer cannot ask for a certificate one.
    let (status, answer) = h
        .pay("PUBKEY0001", Some(json!({"serial_mode": "certificate"})))
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (409, Some("NO_PLATFORM_CERTIFICATE"))
    );
    assert_eq!(h.pay("PUBKEY0001", None).await.0, 200);
    wait_for("the notification", || !rx.all().is_empty()).await;
    let note = rx.all().remove(0);
    assert_eq!(note.header("wechatpay-serial"), PUBLIC_KEY_ID);
    assert!(note.verify_with(&platform_public()));
}

/// Our client in certificate mode (no public key configured) against a public-key
/// merchant finds no certificate and trusts nothing; in public-key mode it works.
#[tokio::test]
async fn our_client_needs_the_public_key_for_a_public_key_merchant() {
    let h = start(1.0).await;
    let mut cfg = client(&h, NOWHERE).config().clone();
    cfg.trust = PlatformTrust::Certificates;
    let cert_client = WechatClient::new(cfg).unwrap();
    let err = cert_client.query("NOSUCHTRADE1").await.unwrap_err();
    assert!(!matches!(err, ProviderError::TradeNotExist), "{err:?}");
    let err = cert_client.refresh_certificates().await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    let trade = client(&h, NOWHERE).query("NOSUCHTRADE1").await.unwrap();
    assert_eq!(trade.state, RemoteTradeState::NotExist);
    // ...and in certificate mode against a certificate merchant.
    let h = start_in(WechatKeyMode::Certificate, 1.0).await;
    let mut cfg = client(&h, NOWHERE).config().clone();
    cfg.trust = PlatformTrust::Certificates;
    let cert_client = WechatClient::new(cfg).unwrap();
    let trade = cert_client.query("NOSUCHTRADE1").await.unwrap();
    assert_eq!(trade.state, RemoteTradeState::NotExist);
}

#[tokio::test]
async fn failed_deliveries_are_resent_with_the_same_id() {
    let h = start(1000.0).await;
    let rx = receiver(&[500, 500]).await;
    assert_eq!(
        h.native(&order("RETRY00001", 100, &rx.url)).await.status,
        200
    );
    assert_eq!(h.pay("RETRY00001", None).await.0, 200);
    wait_for("delivery", || h.delivered("RETRY00001")).await;

    let log = h.state.wechat.notifications(Some("RETRY00001"));
    assert_eq!(log.len(), 1);
    let statuses: Vec<Option<u16>> = log[0].attempts.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [Some(500), Some(500), Some(204)]);
    let received = rx.all();
    assert_eq!(received.len(), 3);
    for note in &received {
        assert_eq!(note.envelope().id, log[0].id);
        assert!(note.verify_with(&platform_public()));
    }
    // Each resend is signed afresh.
    assert_ne!(
        received[0].header("wechatpay-nonce"),
        received[1].header("wechatpay-nonce")
    );
}

#[tokio::test]
async fn authorization_failures_are_401_sign_error() {
    let h = start(1.0).await;
    let path = "/v3/pay/transactions/native";
    let body = order("AUTHFAIL01", 1, NOWHERE).to_string();
    let now = Utc::now().timestamp();
    let signed_by = |key: &RsaPrivateKey, mchid: &str, serial: &str, ts: i64, body: &str| {
        proto::authorization(
            mchid,
            serial,
            key,
            "POST",
            path,
            ts,
            &proto::nonce_str(32),
            body,
        )
        .unwrap()
    };
    let k = keys();
    let cases = [
        ("missing", None),
        ("garbage", Some("Bearer abc".to_string())),
        (
            "wrong key",
            Some(signed_by(&k.platform, MCH_ID, MERCHANT_SERIAL, now, &body)),
        ),
        (
            "stale",
            Some(signed_by(
                &k.merchant,
                MCH_ID,
                MERCHANT_SERIAL,
                now - 301,
                &body,
            )),
        ),
        (
            "future",
            Some(signed_by(
                &k.merchant,
                MCH_ID,
                MERCHANT_SERIAL,
                now + 400,
                &body,
            )),
        ),
        (
            "other serial",
            Some(signed_by(&k.merchant, MCH_ID, "ABCDEF", now, &body)),
        ),
        (
            "other mchid",
            Some(signed_by(
                &k.merchant,
                "1230000109",
                MERCHANT_SERIAL,
                now,
                &body,
            )),
        ),
        (
            "other body",
            Some(signed_by(&k.merchant, MCH_ID, MERCHANT_SERIAL, now, "{}")),
        ),
    ];
    for (name, auth) in cases {
        let resp = h.raw("POST", path, &body, auth, Some(PUBLIC_KEY_ID)).await;
        assert_eq!(
            (resp.status, resp.code().as_str()),
            (401, "SIGN_ERROR"),
            "{name}"
        );
        assert!(resp.header("wechatpay-signature").is_empty(), "{name}");
    }
    // The query string is part of what is signed.
    let auth = authorization("GET", "/v3/pay/transactions/out-trade-no/AUTHFAIL01", "");
    let resp = h
        .raw(
            "GET",
            &format!("/v3/pay/transactions/out-trade-no/AUTHFAIL01?mchid={MCH_ID}"),
            "",
            Some(auth),
            None,
        )
        .await;
    assert_eq!(resp.status, 401);
    // Nothing was created by the rejected requests.
    assert_eq!(h.query("AUTHFAIL01").await.status, 404);
}

#[tokio::test]
async fn authorization_accepts_any_parameter_order_and_nonce_length() {
    let h = start(1.0).await;
    let path = "/v3/pay/transactions/native";
    let body = order("ANYORDER01", 1, NOWHERE).to_string();
    let ts = Utc::now().timestamp();
    let nonce = proto::nonce_str(16);
    let message = proto::request_message("POST", path, ts, &nonce, &body);
    let signature = keys()
        .merchant
        .sign_sha256_base64(message.as_bytes())
        .unwrap();
    let auth = format!(
        "WECHATPAY2-SHA256-RSA2048 serial_no=\"{MERCHANT_SERIAL}\", signature=\"{signature}\", timestamp=\"{ts}\", mchid=\"{MCH_ID}\", nonce_str=\"{nonce}\""
    );
    let resp = h
        .http
        .post(format!("{}{path}", h.base))
        .header("Authorization", auth)
        .header("Accept", "*/*")
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
}

#[tokio::test]
async fn reposts_are_idempotent_only_when_identical() {
    let h = start(1.0).await;
    let first = h.native(&order("REPOST0001", 300, NOWHERE)).await;
    assert_eq!(first.status, 200);
    // Same parameters, different member order and spacing: same answer.
    let reordered = format!(
        r#"{{ "amount": {{"currency": "CNY", "total": 300}}, "out_trade_no": "REPOST0001", "notify_url": "{NOWHERE}", "description": "fenpay 测试商品", "mchid": "{MCH_ID}", "appid": "{APP_ID}" }}"#
    );
    let second = h
        .call("POST", "/v3/pay/transactions/native", &reordered)
        .await;
    assert_eq!(second.status, 200, "{second:?}");
    assert_eq!(second.json()["code_url"], first.json()["code_url"]);

    let changed = h.native(&order("REPOST0001", 301, NOWHERE)).await;
    assert_eq!(
        (changed.status, changed.code().as_str()),
        (403, "OUT_TRADE_NO_USED")
    );
    assert!(changed.header("request-id").ends_with("-268498688"));
    let mut jsapi = order("REPOST0001", 300, NOWHERE);
    jsapi["payer"] = json!({"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"});
    let other_product = h
        .call("POST", "/v3/pay/transactions/jsapi", &jsapi.to_string())
        .await;
    assert_eq!(other_product.status, 403);
    let trade = h.state.wechat.trade("REPOST0001").unwrap();
    assert_eq!(trade.amount_total, 300);
}

#[tokio::test]
async fn request_faults_fail_without_side_effects() {
    let h = start(1.0).await;
    h.set_faults(json!({"fail_requests_next": 1})).await;
    let failed = h.native(&order("FAULTS0001", 1, NOWHERE)).await;
    assert_eq!(
        (failed.status, failed.code().as_str()),
        (500, "SYSTEM_ERROR")
    );
    assert!(failed.header("wechatpay-signature").is_empty());
    assert_eq!(h.query("FAULTS0001").await.status, 404);
    assert_eq!(h.native(&order("FAULTS0001", 1, NOWHERE)).await.status, 200);

    h.set_faults(json!({"timeout_requests_next": 1, "timeout_ms": 20}))
        .await;
    let stalled = h.query("FAULTS0001").await;
    assert_eq!(
        (stalled.status, stalled.code().as_str()),
        (500, "SYSTEM_ERROR")
    );
    assert_eq!(h.query("FAULTS0001").await.status, 200);
}

#[tokio::test]
async fn signature_probe_precedes_the_real_notification() {
    let h = start(1.0).await;
    let rx = receiver(&[401]).await;
    h.set_faults(json!({"signature_probe": true})).await;
    assert_eq!(h.native(&order("PROBE00001", 1, &rx.url)).await.status, 200);
    assert_eq!(h.pay("PROBE00001", None).await.0, 200);
    wait_for("probe and notification", || rx.all().len() >= 2).await;
    let received = rx.all();
    let probe = &received[0];
    assert!(probe
        .header("wechatpay-signature")
        .starts_with("WECHATPAY/SIGNTEST/"));
    assert!(!probe.verify_with(&platform_public()));
    assert!(received[1].verify_with(&platform_public()));
    wait_for("delivery", || h.delivered("PROBE00001")).await;
    let log = h.state.wechat.notifications(Some("PROBE00001"));
    let kinds: Vec<(bool, Option<u16>)> = log[0]
        .attempts
        .iter()
        .map(|a| (a.probe, a.status))
        .collect();
    assert_eq!(kinds, [(true, Some(401)), (false, Some(204))]);
}

#[tokio::test]
async fn dropped_and_duplicated_notifications() {
    let h = start(1000.0).await;
    let rx = receiver(&[]).await;
    h.set_faults(json!({"drop_notifications_next": 1, "duplicate_notifications": true}))
        .await;
    assert_eq!(h.native(&order("DUPDROP001", 1, &rx.url)).await.status, 200);
    assert_eq!(h.pay("DUPDROP001", None).await.0, 200);
    wait_for("delivery", || h.delivered("DUPDROP001")).await;
    let log = h.state.wechat.notifications(Some("DUPDROP001"));
    let attempts = &log[0].attempts;
    assert_eq!(attempts.len(), 3, "{attempts:?}");
    assert!(attempts[0].dropped && attempts[0].status.is_none());
    assert!(attempts[1..].iter().all(|a| a.status == Some(204)));
    let received = rx.all();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].envelope().id, received[1].envelope().id);
}

#[tokio::test]
async fn manual_resend_repeats_the_same_notification() {
    let h = start(1.0).await;
    // The receiver answers late, so the scheduled delivery is still in flight
    // (seen by the receiver, not yet logged) when the resend is asked for: the
    // resend's answer must list only its own attempt.
    let rx = slow_receiver(&[], Duration::from_millis(300)).await;
    assert_eq!(h.native(&order("RESEND0001", 1, &rx.url)).await.status, 200);
    let (status, answer) = h
        .control("/__emulator/wechat/notify/RESEND0001", None)
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (409, Some("ORDER_NOT_PAID"))
    );
    assert_eq!(
        h.control("/__emulator/wechat/notify/NOSUCHORDER", None)
            .await
            .0,
        404
    );

    assert_eq!(h.pay("RESEND0001", None).await.0, 200);
    wait_for("the notification", || !rx.all().is_empty()).await;
    let (status, answer) = h
        .control("/__emulator/wechat/notify/RESEND0001", None)
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["attempts"].as_array().unwrap().len(), 1);
    let received = rx.all();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].body, received[1].body);
    assert!(received[1].verify_with(&platform_public()));
}

#[tokio::test]
async fn prepay_products_answer_their_own_shapes() {
    let h = start(1.0).await;
    let mut jsapi = order("JSAPI00001", 1, NOWHERE);
    jsapi["payer"] = json!({"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"});
    let resp = h
        .call("POST", "/v3/pay/transactions/jsapi", &jsapi.to_string())
        .await;
    assert_eq!(resp.status, 200, "{resp:?}");
    assert!(resp.json()["prepay_id"].as_str().unwrap().starts_with("wx"));

    let app = order("APP0000001", 1, NOWHERE);
    let resp = h
        .call("POST", "/v3/pay/transactions/app", &app.to_string())
        .await;
    assert!(resp.json()["prepay_id"].as_str().unwrap().starts_with("wx"));

    let mut h5 = order("H500000001", 1, NOWHERE);
    h5["scene_info"] = json!({"payer_client_ip": "14.23.150.211", "h5_info": {"type": "Wap"}});
    let resp = h
        .call("POST", "/v3/pay/transactions/h5", &h5.to_string())
        .await;
    assert_eq!(resp.status, 200, "{resp:?}");
    assert!(resp.json()["h5_url"]
        .as_str()
        .unwrap()
        .starts_with("https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb?prepay_id="));

    // The JSAPI payer is the one who pays; H5 trades report MWEB.
    let (_, paid) = h
        .pay("JSAPI00001", Some(json!({"openid": "someone-else"})))
        .await;
    assert_eq!(paid["payer"]["openid"], "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o");
    assert_eq!(paid["trade_type"], "JSAPI");
    let (_, paid) = h.pay("H500000001", None).await;
    assert_eq!(paid["trade_type"], "MWEB");
    assert_eq!(paid["payer"]["openid"].as_str().unwrap().len(), 28);
}

#[tokio::test]
async fn prepay_parameters_are_validated() {
    let h = start(1.0).await;
    let base = || order("VALID00001", 100, NOWHERE);
    let with = |path: &str, value: Value| {
        let mut body = base();
        let mut target = &mut body;
        let parts: Vec<&str> = path.split('/').collect();
        for part in &parts[..parts.len() - 1] {
            target = &mut target[*part];
        }
        target[parts[parts.len() - 1]] = value;
        body
    };
    let without = |field: &str| {
        let mut body = base();
        body.as_object_mut().unwrap().remove(field);
        body
    };
    let cases: Vec<(&str, &str, Value, u16, &str)> = vec![
        (
            "native",
            "no description",
            without("description"),
            400,
            "PARAM_ERROR",
        ),
        (
            "native",
            "no notify_url",
            without("notify_url"),
            400,
            "PARAM_ERROR",
        ),
        ("native", "no amount", without("amount"), 400, "PARAM_ERROR"),
        (
            "native",
            "long description",
            with("description", json!("商".repeat(43))),
            400,
            "PARAM_ERROR",
        ),
        (
            "native",
            "short trade no",
            with("out_trade_no", json!("A1234")),
            400,
            "PARAM_ERROR",
        ),
        (
            "native",
            "bad trade no",
            with("out_trade_no", json!("ORDER#0001")),
            400,
            "PARAM_ERROR",
        ),
        (
            "native",
            "zero total",
            with("amount/total", json!(0)),
            400,
            "PARAM_ERROR",
        ),
        (
            "native",
            "fractional total",
            with("amount/total", json!(1.5)),
            400,
            "PARAM_ERROR",
        ),
        (
            "native",
            "string total",
            with("amount/total", json!("100")),
            400,
            "PARAM_ERROR",
        ),
        (
            "native",
            "usd",
            with("amount/currency", json!("USD")),
            400,
            "PARAM_ERROR",
        ),
        (
            "native",
            "ftp notify",
            with("notify_url", json!("ftp://x/y")),
            400,
            "PARAM_ERROR",
        ),
        (
            "native",
            "bad expiry",
            with("time_expire", json!("tomorrow")),
            400,
            "PARAM_ERROR",
        ),
        (
            "native",
            "long attach",
            with("attach", json!("a".repeat(129))),
            400,
            "PARAM_ERROR",
        ),
        (
            "native",
            "extra member",
            with("mch_id", json!(MCH_ID)),
            400,
            "PARAM_ERROR",
        ),
        (
            "native",
            "other mchid",
            with("mchid", json!("1230000109")),
            400,
            "PARAM_ERROR",
        ),
        (
            "native",
            "other appid",
            with("appid", json!("wx0000000000000000")),
            400,
            "APPID_MCHID_NOT_MATCH",
        ),
        ("jsapi", "no payer", base(), 400, "PARAM_ERROR"),
        ("h5", "no scene", base(), 400, "PARAM_ERROR"),
        (
            "h5",
            "no h5_info",
            with("scene_info", json!({"payer_client_ip": "14.23.150.211"})),
            400,
            "PARAM_ERROR",
        ),
    ];
    for (product, name, body, status, code) in cases {
        let resp = h
            .call(
                "POST",
                &format!("/v3/pay/transactions/{product}"),
                &body.to_string(),
            )
            .await;
        assert_eq!(
            (resp.status, resp.code().as_str()),
            (status, code),
            "{name}: {resp:?}"
        );
        assert!(
            !resp.json()["message"]
                .as_str()
                .unwrap_or_default()
                .is_empty(),
            "{name}"
        );
    }
    // 127 bytes exactly is fine; none of the rejected posts created the trade.
    let ok = with("description", json!(format!("{}a", "商".repeat(42))));
    assert_eq!(h.native(&ok).await.status, 200);
}

/// WeChat refuses a `notify_url` with parameters ("不能携带参数") as a parameter error,
/// on prepay and on refunds; nothing is created.
#[tokio::test]
async fn notify_urls_with_a_query_string_are_param_errors() {
    let h = start(1.0).await;
    let with_query = format!("{NOWHERE}?order=QUERYURL01");
    let resp = h.native(&order("QUERYURL01", 1, &with_query)).await;
    assert_eq!(
        (resp.status, resp.code().as_str()),
        (400, "PARAM_ERROR"),
        "{resp:?}"
    );
    let body = resp.json();
    assert!(
        body["message"].as_str().unwrap().contains("通知地址"),
        "{body}"
    );
    assert_eq!(body["detail"]["location"], "body");
    assert_eq!(body["detail"]["value"], with_query.as_str());
    assert!(
        resp.header("request-id").ends_with("-268435461"),
        "{resp:?}"
    );
    assert_eq!(h.query("QUERYURL01").await.status, 404);
    let refund = json!({
        "out_trade_no": "QUERYURL01",
        "out_refund_no": "QUERYURL01R1",
        "notify_url": format!("{NOWHERE}#refund"),
        "amount": {"refund": 1, "total": 1, "currency": "CNY"},
    });
    let resp = h
        .call("POST", "/v3/refund/domestic/refunds", &refund.to_string())
        .await;
    assert_eq!(
        (resp.status, resp.code().as_str()),
        (400, "PARAM_ERROR"),
        "{resp:?}"
    );
    // Without parameters it is accepted.
    assert_eq!(h.native(&order("QUERYURL01", 1, NOWHERE)).await.status, 200);
}

/// Past `time_expire` the buyer can no longer pay, but the trade still answers
/// `NOTPAY` until the merchant closes it (WeChat closes it by itself only after 7 days).
#[tokio::test]
async fn an_expired_trade_cannot_be_paid_but_stays_notpay_until_closed() {
    let h = start(1.0).await;
    let past = (Utc::now() - chrono::Duration::minutes(1))
        .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false);
    let mut body = order("EXPIRED001", 1, NOWHERE);
    body["time_expire"] = json!(past);
    assert_eq!(h.native(&body).await.status, 200);
    let (status, answer) = h.pay("EXPIRED001", None).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (409, Some("ORDER_EXPIRED"))
    );
    let tx: Transaction = serde_json::from_slice(&h.query("EXPIRED001").await.body).unwrap();
    assert_eq!(tx.trade_state, "NOTPAY");
    let (_, trade) = h.control_get("/__emulator/wechat/trades/EXPIRED001").await;
    assert_eq!(
        (trade["trade_state"].as_str(), trade["expired"].as_bool()),
        (Some("NOTPAY"), Some(true))
    );
    assert!(h.state.wechat.notifications(Some("EXPIRED001")).is_empty());
    // The merchant's close ends it.
    let close = "/v3/pay/transactions/out-trade-no/EXPIRED001/close";
    let resp = h
        .call("POST", close, &json!({"mchid": MCH_ID}).to_string())
        .await;
    assert_eq!(resp.status, 204);
    let tx: Transaction = serde_json::from_slice(&h.query("EXPIRED001").await.body).unwrap();
    assert_eq!(tx.trade_state, "CLOSED");
}

/// Seven days after it was placed an unpaid trade closes by itself, `time_expire` or not;
/// before that, time passing alone changes nothing.
#[tokio::test]
async fn an_unpaid_trade_closes_by_itself_after_seven_days() {
    let h = start(1.0).await;
    let in_an_hour = (Utc::now() + chrono::Duration::hours(1))
        .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false);
    let mut body = order("SEVENDAY01", 1, NOWHERE);
    body["time_expire"] = json!(in_an_hour);
    assert_eq!(h.native(&body).await.status, 200);
    assert_eq!(h.native(&order("SEVENDAY02", 1, NOWHERE)).await.status, 200);
    let age = |no: &'static str, secs: i64| {
        let url = format!("{}/__emulator/wechat/trades/{no}/age", h.base);
        let http = h.http.clone();
        async move {
            let resp = http
                .post(url)
                .json(&json!({"secs": secs}))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status().as_u16(), 200);
            resp.json::<Value>().await.unwrap()
        }
    };
    let state = |t: &Value| t["trade_state"].as_str().unwrap().to_string();
    // Two hours later: past time_expire, still NOTPAY.
    let t = age("SEVENDAY01", 2 * 3600).await;
    assert_eq!(
        (state(&t).as_str(), t["expired"].as_bool()),
        ("NOTPAY", Some(true))
    );
    // Just short of 7 days: still NOTPAY and (without time_expire) still payable.
    let t = age("SEVENDAY02", 7 * 86_400 - 60).await;
    assert_eq!(
        (state(&t).as_str(), t["expired"].as_bool()),
        ("NOTPAY", Some(false))
    );
    // Past 7 days both are CLOSED.
    for no in ["SEVENDAY01", "SEVENDAY02"] {
        let t = age(no, 7 * 86_400).await;
        assert_eq!(state(&t), "CLOSED", "{no}");
        let tx: Transaction = serde_json::from_slice(&h.query(no).await.body).unwrap();
        assert_eq!(tx.trade_state, "CLOSED", "{no}");
        assert_eq!(h.pay(no, None).await.1["code"], "ORDER_CLOSED", "{no}");
    }
}

#[tokio::test]
async fn reset_forgets_everything() {
    let h = start(1.0).await;
    assert_eq!(h.native(&order("RESET00001", 1, NOWHERE)).await.status, 200);
    let (status, trades) = h.control_get("/__emulator/wechat/trades").await;
    assert_eq!((status, trades.as_array().unwrap().len()), (200, 1));
    assert_eq!(h.control("/__emulator/reset", None).await.0, 204);
    assert_eq!(h.query("RESET00001").await.status, 404);
    assert_eq!(
        h.control_get("/__emulator/wechat/trades/RESET00001")
            .await
            .0,
        404
    );
}

// ---------------------------------------------------------------------------
// Refunds, driven through our own client

/// Our WeChat client pointed at the emulator, in public-key mode, sending refund
/// notifications to `refund_notify_url`.
fn client(h: &Harness, refund_notify_url: &str) -> WechatClient {
    WechatClient::new(WechatClientConfig {
        mch_id: MCH_ID.into(),
        app_id: APP_ID.into(),
        merchant_serial: MERCHANT_SERIAL.into(),
        merchant_key: keys().merchant.clone(),
        api_v3_key: Secret::new(API_V3_KEY),
        trust: PlatformTrust::PublicKey {
            id: PUBLIC_KEY_ID.into(),
            key: platform_public(),
        },
        base_url: h.base.clone(),
        notify_url: NOWHERE.into(),
        refund_notify_url: refund_notify_url.into(),
        timeout: Duration::from_secs(10),
    })
    .unwrap()
}

fn refund_req(out_trade_no: &str, out_refund_no: &str, amount: i64, total: i64) -> RefundRequest {
    RefundRequest {
        out_trade_no: out_trade_no.into(),
        out_refund_no: out_refund_no.into(),
        amount_fen: amount,
        total_fen: total,
        reason: Some("商品已售完".into()),
    }
}

impl Harness {
    /// A native trade of `total` fen, paid by the buyer.
    async fn paid_trade(&self, out_trade_no: &str, total: i64) {
        assert_eq!(
            self.native(&order(out_trade_no, total, NOWHERE))
                .await
                .status,
            200
        );
        let (status, paid) = self.pay(out_trade_no, None).await;
        assert_eq!(status, 200, "{paid}");
    }
}

impl Received {
    /// Header names lower-cased, as our HTTP layer hands them to the verifier.
    fn lower_headers(&self) -> HashMap<String, String> {
        self.headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect()
    }
}

fn rejected_code(err: &ProviderError) -> &str {
    match err {
        ProviderError::Rejected { code, .. } => code,
        _ => "",
    }
}

#[tokio::test]
async fn full_refund_goes_processing_then_success_with_a_verifiable_notification() {
    let h = start(1000.0).await;
    let rx = receiver(&[]).await;
    let wx = client(&h, &rx.url);
    h.paid_trade("REFUNDFULL1", 2500).await;

    let refund = wx
        .refund(&refund_req("REFUNDFULL1", "RF-FULL-1", 2500, 2500))
        .await
        .unwrap();
    assert_eq!(refund.state, RemoteRefundState::Processing);
    assert_eq!(refund.amount_fen, 2500);
    assert_eq!(refund.out_trade_no, "REFUNDFULL1");
    let refund_id = refund.refund_id.clone().unwrap();
    assert!(
        refund_id.starts_with("50") && refund_id.len() == 29,
        "{refund_id}"
    );
    assert_eq!(refund.succeeded_at, None);

    wait_for("the refund notification", || !rx.all().is_empty()).await;
    let note = rx.all().remove(0);
    assert!(note.verify_with(&platform_public()));
    assert_eq!(
        note.header("wechatpay-signature-type"),
        "WECHATPAY2-SHA256-RSA2048"
    );
    let envelope = note.envelope();
    assert_eq!(envelope.event_type, "REFUND.SUCCESS");
    assert_eq!(envelope.summary, "退款成功");
    assert_eq!(envelope.resource_type, "encrypt-resource");
    assert_eq!(envelope.resource.original_type, "refund");
    assert_eq!(envelope.resource.associated_data, "refund");
    assert_eq!(envelope.resource.nonce.len(), 12);
    let resource: RefundResource = envelope.decrypt_resource(API_V3_KEY.as_bytes()).unwrap();
    assert_eq!(resource.mchid, MCH_ID);
    assert_eq!(resource.refund_status, "SUCCESS");
    assert_eq!(resource.refund_id, refund_id);
    assert_eq!(resource.out_refund_no, "RF-FULL-1");
    assert_eq!(
        resource.user_received_account.as_deref(),
        Some("支付用户零钱")
    );
    assert_eq!(
        (
            resource.amount.total,
            resource.amount.refund,
            resource.amount.payer_total,
            resource.amount.payer_refund
        ),
        (2500, 2500, 2500, 2500)
    );
    let paid: Transaction = serde_json::from_slice(&h.query("REFUNDFULL1").await.body).unwrap();
    assert_eq!(Some(resource.transaction_id.clone()), paid.transaction_id);

    // Our verifier accepts it; a flipped byte or a payment notification it refuses.
    let headers = note.lower_headers();
    let verified = wx
        .verify_refund_notification(&headers, &note.body)
        .await
        .unwrap();
    assert_eq!(verified.state, RemoteRefundState::Succeeded);
    assert_eq!(verified.out_refund_no, "RF-FULL-1");
    assert_eq!(verified.out_trade_no, "REFUNDFULL1");
    assert_eq!(verified.refund_id.as_deref(), Some(refund_id.as_str()));
    assert_eq!(verified.amount_fen, 2500);
    let succeeded_at = verified.succeeded_at.unwrap();
    let tampered =
        String::from_utf8(note.body.clone())
            .unwrap()
            .replacen("退款成功", "退款失败", 1);
    let err = wx
        .verify_refund_notification(&headers, tampered.as_bytes())
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::BadSignature(_)), "{err:?}");
    let mut stale = headers.clone();
    stale.insert("wechatpay-timestamp".into(), "1624523846".into());
    assert!(matches!(
        wx.verify_refund_notification(&stale, &note.body).await,
        Err(ProviderError::BadSignature(_))
    ));
    // The payment notification is no refund notification, and vice versa.
    let pay_rx = receiver(&[]).await;
    assert_eq!(
        h.native(&order("REFUNDFULL2", 1, &pay_rx.url)).await.status,
        200
    );
    h.pay("REFUNDFULL2", None).await;
    wait_for("the payment notification", || !pay_rx.all().is_empty()).await;
    let payment = pay_rx.all().remove(0);
    let err = wx
        .verify_refund_notification(&payment.lower_headers(), &payment.body)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProviderError::InvalidResponse(m) if m.contains("event_type")),
        "{err:?}"
    );
    assert!(wx.verify_notification(&headers, &note.body).await.is_err());

    // Query: the refund succeeded; the trade is REFUND, which is still "paid".
    let queried = wx.query_refund("RF-FULL-1").await.unwrap();
    assert_eq!(queried.state, RemoteRefundState::Succeeded);
    assert_eq!(queried.succeeded_at, Some(succeeded_at));
    assert_eq!(paid.trade_state, "REFUND");
    assert_eq!(paid.trade_state_desc, "转入退款");
    assert_eq!(
        wx.query("REFUNDFULL1").await.unwrap().state,
        RemoteTradeState::Paid
    );
    // Nothing is left to refund.
    let err = wx
        .refund(&refund_req("REFUNDFULL1", "RF-FULL-2", 1, 2500))
        .await
        .unwrap_err();
    assert_eq!(rejected_code(&err), "INVALID_REQUEST", "{err:?}");
}

#[tokio::test]
async fn partial_refunds_sum_to_the_total_and_repeats_refund_once() {
    let h = start(1000.0).await;
    let wx = client(&h, NOWHERE);
    h.paid_trade("REFUNDPART1", 1000).await;

    let first = wx
        .refund(&refund_req("REFUNDPART1", "RF-PART-1", 300, 1000))
        .await
        .unwrap();
    // The same out_refund_no again: the same refund, nothing more refunded.
    let again = wx
        .refund(&refund_req("REFUNDPART1", "RF-PART-1", 300, 1000))
        .await
        .unwrap();
    assert_eq!(again.refund_id, first.refund_id);
    assert_eq!(h.state.wechat.refunds(Some("REFUNDPART1")).len(), 1);
    // ... unless it asks for something else.
    let err = wx
        .refund(&refund_req("REFUNDPART1", "RF-PART-1", 301, 1000))
        .await
        .unwrap_err();
    assert_eq!(rejected_code(&err), "INVALID_REQUEST", "{err:?}");
    // total must be the order total.
    let err = wx
        .refund(&refund_req("REFUNDPART1", "RF-PART-X", 100, 999))
        .await
        .unwrap_err();
    assert_eq!(rejected_code(&err), "INVALID_REQUEST", "{err:?}");
    // 300 + 800 > 1000.
    let err = wx
        .refund(&refund_req("REFUNDPART1", "RF-PART-2", 800, 1000))
        .await
        .unwrap_err();
    assert_eq!(rejected_code(&err), "INVALID_REQUEST", "{err:?}");
    assert!(err.to_string().contains("可退金额"), "{err}");
    // A single refund above the total is a parameter error.
    let err = wx
        .refund(&refund_req("REFUNDPART1", "RF-PART-3", 1001, 1000))
        .await
        .unwrap_err();
    assert_eq!(rejected_code(&err), "PARAM_ERROR", "{err:?}");

    let second = wx
        .refund(&refund_req("REFUNDPART1", "RF-PART-4", 700, 1000))
        .await
        .unwrap();
    assert_ne!(second.refund_id, first.refund_id);
    wait_for("both refunds to succeed", || {
        h.state
            .wechat
            .refunds(Some("REFUNDPART1"))
            .iter()
            .all(|r| r.status == RefundStatus::Success)
    })
    .await;
    for (no, amount) in [("RF-PART-1", 300), ("RF-PART-4", 700)] {
        let r = wx.query_refund(no).await.unwrap();
        assert_eq!(
            (r.state, r.amount_fen),
            (RemoteRefundState::Succeeded, amount)
        );
    }
    let err = wx
        .refund(&refund_req("REFUNDPART1", "RF-PART-5", 1, 1000))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("全额退款"), "{err}");
    assert_eq!(h.state.wechat.refunds(Some("REFUNDPART1")).len(), 2);
    // A repeat after success answers the refund as it is now.
    let repeated = wx
        .refund(&refund_req("REFUNDPART1", "RF-PART-1", 300, 1000))
        .await
        .unwrap();
    assert_eq!(repeated.state, RemoteRefundState::Succeeded);
}

#[tokio::test]
async fn refund_errors_map_to_provider_errors() {
    let h = start(1000.0).await;
    let wx = client(&h, NOWHERE);
    assert_eq!(
        wx.refund(&refund_req("NOSUCHTRADE", "RF-ERR-1", 1, 1))
            .await
            .unwrap_err(),
        ProviderError::TradeNotExist
    );
    assert_eq!(
        wx.query_refund("RF-NEVER").await.unwrap_err(),
        ProviderError::TradeNotExist
    );
    // Unpaid: nothing to refund.
    assert_eq!(
        h.native(&order("REFUNDUNPAID", 100, NOWHERE)).await.status,
        200
    );
    assert_eq!(
        wx.refund(&refund_req("REFUNDUNPAID", "RF-ERR-2", 100, 100))
            .await
            .unwrap_err(),
        ProviderError::TradeNotExist
    );
    h.paid_trade("REFUNDERR1", 100).await;
    h.set_faults(json!({"refund_not_enough_next": 1})).await;
    let err = wx
        .refund(&refund_req("REFUNDERR1", "RF-ERR-3", 100, 100))
        .await
        .unwrap_err();
    assert_eq!(rejected_code(&err), "NOT_ENOUGH", "{err:?}");
    h.set_faults(json!({"fail_requests_next": 1})).await;
    let err = wx
        .refund(&refund_req("REFUNDERR1", "RF-ERR-3", 100, 100))
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    // Neither refused attempt refunded anything: the retry goes through.
    assert!(h.state.wechat.refunds(Some("REFUNDERR1")).is_empty());
    let ok = wx
        .refund(&refund_req("REFUNDERR1", "RF-ERR-3", 100, 100))
        .await
        .unwrap();
    assert_eq!(ok.state, RemoteRefundState::Processing);
    // Signed by someone else: SIGN_ERROR.
    let mut impostor = client(&h, NOWHERE).config().clone();
    impostor.merchant_key = keys().platform.clone();
    let err = WechatClient::new(impostor)
        .unwrap()
        .query_refund("RF-ERR-3")
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::SignatureRejected(_)),
        "{err:?}"
    );
}

#[tokio::test]
async fn abnormal_fault_ends_the_refund_abnormal() {
    let h = start(1000.0).await;
    let rx = receiver(&[]).await;
    let wx = client(&h, &rx.url);
    h.paid_trade("REFUNDABN1", 800).await;
    h.set_faults(json!({"refund_abnormal_next": 1})).await;

    let refund = wx
        .refund(&refund_req("REFUNDABN1", "RF-ABN-1", 800, 800))
        .await
        .unwrap();
    assert_eq!(refund.state, RemoteRefundState::Processing);
    wait_for("the abnormal notification", || !rx.all().is_empty()).await;
    let note = rx.all().remove(0);
    assert_eq!(note.envelope().event_type, "REFUND.ABNORMAL");
    assert_eq!(note.envelope().summary, "退款异常");
    let verified = wx
        .verify_refund_notification(&note.lower_headers(), &note.body)
        .await
        .unwrap();
    assert_eq!(verified.state, RemoteRefundState::Abnormal);
    assert_eq!(verified.succeeded_at, None);
    assert_eq!(
        wx.query_refund("RF-ABN-1").await.unwrap().state,
        RemoteRefundState::Abnormal
    );
    // The fault was for one refund only.
    assert_eq!(h.state.faults.get().refund_abnormal_next, 0);
}

#[tokio::test]
async fn held_refunds_stay_processing_until_settled() {
    let h = start(1000.0).await;
    let rx = receiver(&[500]).await;
    let wx = client(&h, &rx.url);
    h.paid_trade("REFUNDHOLD1", 600).await;
    h.set_faults(json!({"hold_refunds": true})).await;

    wx.refund(&refund_req("REFUNDHOLD1", "RF-HOLD-1", 600, 600))
        .await
        .unwrap();
    assert_eq!(
        wx.query_refund("RF-HOLD-1").await.unwrap().state,
        RemoteRefundState::Processing
    );
    let (status, view) = h.control_get("/__emulator/wechat/refunds/RF-HOLD-1").await;
    assert_eq!((status, view["status"].as_str()), (200, Some("PROCESSING")));

    // Closed: the money stays with the merchant and can be refunded again.
    let (status, closed) = h
        .control(
            "/__emulator/wechat/refunds/RF-HOLD-1/settle",
            Some(json!({"status": "CLOSED"})),
        )
        .await;
    assert_eq!((status, closed["status"].as_str()), (200, Some("CLOSED")));
    assert_eq!(
        wx.query_refund("RF-HOLD-1").await.unwrap().state,
        RemoteRefundState::Failed
    );
    // The merchant's 500 makes the emulator resend the REFUND.CLOSED notification.
    wait_for("the resent REFUND.CLOSED", || rx.all().len() >= 2).await;
    let all = rx.all();
    assert_eq!(all[0].envelope().id, all[1].envelope().id);
    assert_eq!(all[0].envelope().event_type, "REFUND.CLOSED");
    wait_for("delivery", || {
        h.state
            .wechat
            .notifications(Some("REFUNDHOLD1"))
            .iter()
            .any(|n| n.out_refund_no.as_deref() == Some("RF-HOLD-1") && n.delivered)
    })
    .await;

    wx.refund(&refund_req("REFUNDHOLD1", "RF-HOLD-2", 600, 600))
        .await
        .unwrap();
    let (status, settled) = h
        .control("/__emulator/wechat/refunds/RF-HOLD-2/settle", None)
        .await;
    assert_eq!((status, settled["status"].as_str()), (200, Some("SUCCESS")));
    let done = wx.query_refund("RF-HOLD-2").await.unwrap();
    assert_eq!(done.state, RemoteRefundState::Succeeded);
    assert!(done.succeeded_at.is_some());
    // Settling again changes nothing; unknown refunds are 404.
    let (status, again) = h
        .control(
            "/__emulator/wechat/refunds/RF-HOLD-2/settle",
            Some(json!({"status": "ABNORMAL"})),
        )
        .await;
    assert_eq!((status, again["status"].as_str()), (200, Some("SUCCESS")));
    let (status, _) = h
        .control("/__emulator/wechat/refunds/RF-NONE/settle", None)
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn refund_notifications_are_forged_only_at_a_cost() {
    // A notification signed with WeChat's key but for another merchant is refused.
    let h = start(1000.0).await;
    let wx = client(&h, NOWHERE);
    let resource = RefundResource {
        mchid: "1900000999".into(),
        transaction_id: "4200000000000000000000000001".into(),
        out_trade_no: "OTHERSHOP1".into(),
        refund_id: "50000000000000000000000000001".into(),
        out_refund_no: "RF-OTHER-1".into(),
        refund_status: "SUCCESS".into(),
        success_time: Some("2026-01-02T03:04:05+08:00".into()),
        user_received_account: None,
        amount: RefundResourceAmount {
            total: 1,
            refund: 1,
            payer_total: 1,
            payer_refund: 1,
        },
    };
    let signed = |resource: &RefundResource, event: &str| {
        let envelope = NotificationEnvelope {
            id: uuid::Uuid::new_v4().to_string(),
            create_time: "2026-01-02T03:04:05+08:00".into(),
            resource_type: "encrypt-resource".into(),
            event_type: event.into(),
            summary: "退款成功".into(),
            resource: EncryptedResource::seal(
                API_V3_KEY.as_bytes(),
                "refund",
                "refund",
                &proto::nonce_str(12),
                &serde_json::to_vec(resource).unwrap(),
            )
            .unwrap(),
        };
        let body = serde_json::to_vec(&envelope).unwrap();
        let ts = Utc::now().timestamp().to_string();
        let nonce = proto::nonce_str(32);
        let signature = proto::sign_response(&keys().platform, &ts, &nonce, &body).unwrap();
        let headers: HashMap<String, String> = [
            ("wechatpay-timestamp", ts),
            ("wechatpay-nonce", nonce),
            ("wechatpay-signature", signature),
            ("wechatpay-serial", PUBLIC_KEY_ID.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        (headers, body)
    };
    let (headers, body) = signed(&resource, "REFUND.SUCCESS");
    let err = wx
        .verify_refund_notification(&headers, &body)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProviderError::InvalidResponse(m) if m.contains("mchid")),
        "{err:?}"
    );
    // Ours, but the event and the status disagree.
    let mine = RefundResource {
        mchid: MCH_ID.into(),
        ..resource.clone()
    };
    let (headers, body) = signed(&mine, "REFUND.ABNORMAL");
    let err = wx
        .verify_refund_notification(&headers, &body)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProviderError::InvalidResponse(m) if m.contains("refund_status")),
        "{err:?}"
    );
    let (headers, body) = signed(&mine, "REFUND.SUCCESS");
    let ok = wx
        .verify_refund_notification(&headers, &body)
        .await
        .unwrap();
    assert_eq!((ok.state, ok.amount_fen), (RemoteRefundState::Succeeded, 1));
    // Signed under a serial we do not trust.
    let mut other_serial = headers.clone();
    other_serial.insert("wechatpay-serial".into(), CERT_SERIAL.into());
    assert!(matches!(
        wx.verify_refund_notification(&other_serial, &body).await,
        Err(ProviderError::BadSignature(_))
    ));
}
