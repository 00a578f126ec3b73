//! Our Alipay client against the emulator's Alipay gateway, end to end over HTTP:
//! precreate / page / wap / app, query, close, cancel, the cashier, return
//! redirects, notifications with resends, faults and signature failures.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use api_types::payment::{PaymentChannel, SdkParams};
use chrono::Utc;
use fenpay::config::Secret;
use fenpay::config::WechatKeyMode;
use fenpay::emulator::{
    self, AlipayEmulatorConfig, AlipayKeyMode, EmulatorConfig, WechatEmulatorConfig,
};
use fenpay::providers::alipay::{
    encode_form, parse_form, AlipayCertSns, AlipayClient, AlipayClientConfig,
};
use fenpay::providers::{
    PrepayRequest, ProviderError, RefundRequest, RemoteRefundState, RemoteTradeState,
};
use fenpay_proto::alipay as proto;
use fenpay_proto::{Certificate, RsaPrivateKey};
use serde_json::{json, Value};

const APP_ID: &str = "2021000000000001";
const SELLER_ID: &str = "2088000000000001";
const RETURN_URL: &str = "https://shop.example/pay/return";
/// 4 min / 6000 = 40 ms: the resend schedule runs in well under a second.
const TIME_SCALE: f64 = 6000.0;

struct Keys {
    /// The merchant's app key.
    app: RsaPrivateKey,
    /// Alipay's key; also stands in for WeChat's keys, which these tests never use.
    alipay: RsaPrivateKey,
    cert: Certificate,
}

/// RSA key generation is slow in debug builds: two keys per test binary.
fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let app = RsaPrivateKey::generate(2048).unwrap();
        let alipay = RsaPrivateKey::generate(2048).unwrap();
        let cert = Certificate::generate(&alipay, "5A1F00D1", "fenpay test platform", 30).unwrap();
        Keys { app, alipay, cert }
    })
}

struct Emu {
    url: String,
    http: reqwest::Client,
}

/// A TEST certificate chain over the keys (certificate mode): a root, Alipay's
/// certificate and the app's certificate, both issued by the root.
struct Chain {
    root: Certificate,
    alipay: Certificate,
    app: Certificate,
}

fn chain() -> &'static Chain {
    static CHAIN: OnceLock<Chain> = OnceLock::new();
    CHAIN.get_or_init(|| {
        let root_key = RsaPrivateKey::generate(2048).unwrap();
        let root = Certificate::generate(&root_key, "0101", "TEST Alipay root", 30).unwrap();
        let issue = |key: &RsaPrivateKey, serial: &str, cn: &str| {
            Certificate::issue(
                &root_key,
                "CN=TEST Alipay root",
                &key.public_key(),
                serial,
                cn,
                30,
            )
            .unwrap()
        };
        Chain {
            alipay: issue(&keys().alipay, "0202", "CN=TEST Alipay cert"),
            app: issue(&keys().app, "0303", "CN=TEST app cert"),
            root,
        }
    })
}

fn sns() -> AlipayCertSns {
    AlipayCertSns {
        app_cert_sn: proto::cert_sn(&chain().app.pem).unwrap(),
        alipay_root_cert_sn: proto::root_cert_sn(&chain().root.pem).unwrap(),
        alipay_cert_sn: proto::cert_sn(&chain().alipay.pem).unwrap(),
    }
}

impl Emu {
    async fn start() -> Emu {
        Self::start_in(AlipayKeyMode::PublicKey).await
    }

    async fn start_in(mode: AlipayKeyMode) -> Emu {
        let k = keys();
        let (alipay_cert_sn, app_cert_sn, root_cert_sn) = match mode {
            AlipayKeyMode::PublicKey => (String::new(), String::new(), String::new()),
            AlipayKeyMode::Certificate => {
                let s = sns();
                (s.alipay_cert_sn, s.app_cert_sn, s.alipay_root_cert_sn)
            }
        };
        let config = EmulatorConfig {
            bind: "127.0.0.1:0".into(),
            time_scale: TIME_SCALE,
            wechat: WechatEmulatorConfig {
                mch_id: "1900000001".into(),
                app_id: "wx0000000000000001".into(),
                merchant_public_key: k.app.public_key(),
                merchant_serial: "ABCDEF".into(),
                api_v3_key: Secret::new("0123456789abcdef0123456789abcdef"),
                public_key_id: "PUB_KEY_ID_0000000000000001".into(),
                platform_key: k.alipay.clone(),
                platform_cert: k.cert.clone(),
                mode: WechatKeyMode::PublicKey,
                oauth: Default::default(),
            },
            alipay: AlipayEmulatorConfig {
                app_id: APP_ID.into(),
                app_public_key: k.app.public_key(),
                alipay_private_key: k.alipay.clone(),
                seller_id: SELLER_ID.into(),
                mode,
                alipay_cert_sn,
                app_cert_sn,
                root_cert_sn,
            },
        };
        let emulator = emulator::start(config).unwrap();
        tokio::spawn(emulator.server);
        Emu {
            url: emulator.base_url,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    fn client(&self) -> AlipayClient {
        self.client_with(|_| {})
    }

    fn client_with(&self, tweak: impl FnOnce(&mut AlipayClientConfig)) -> AlipayClient {
        let mut cfg = AlipayClientConfig {
            app_id: APP_ID.into(),
            app_private_key: keys().app.clone(),
            alipay_public_key: keys().alipay.public_key(),
            cert_mode: None,
            seller_id: Some(SELLER_ID.into()),
            gateway: format!("{}/gateway.do", self.url),
            // TEST_ALIPAY_API=v3: the server-side calls over OpenAPI v3.
            v3_endpoint: std::env::var("TEST_ALIPAY_API")
                .is_ok_and(|v| v.eq_ignore_ascii_case("v3"))
                .then(|| self.url.clone()),
            notify_url: String::new(),
            return_url: RETURN_URL.into(),
            timeout: Duration::from_secs(10),
        };
        tweak(&mut cfg);
        AlipayClient::new(cfg).unwrap()
    }

    async fn control(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.url);
        let req = match method {
            "GET" => self.http.get(url),
            _ => self.http.post(url).json(&body.unwrap_or(json!({}))),
        };
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn pay(&self, out_trade_no: &str) -> Value {
        let (status, trade) = self
            .control(
                "POST",
                &format!("/__emulator/alipay/pay/{out_trade_no}"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{trade}");
        trade
    }

    /// The buyer scans a precreate QR code: only then does Alipay know the trade.
    async fn scan(&self, out_trade_no: &str) {
        let (status, body) = self
            .control(
                "POST",
                &format!("/__emulator/alipay/scan/{out_trade_no}"),
                None,
            )
            .await;
        assert!(
            status == 200 || body["code"] == "NOTHING_TO_NOTIFY",
            "{status} {body}"
        );
    }

    /// Polls the delivery log until a notification was delivered.
    async fn delivered_log(&self, out_trade_no: &str) -> Vec<Value> {
        for _ in 0..600 {
            let (_, log) = self
                .control(
                    "GET",
                    &format!("/__emulator/alipay/notifications?out_trade_no={out_trade_no}"),
                    None,
                )
                .await;
            let entries = log.as_array().cloned().unwrap_or_default();
            if entries.iter().any(|e| e["outcome"] == "delivered") {
                return entries;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("notification for {out_trade_no} never delivered");
    }
}

fn order(out_trade_no: &str, amount_fen: i64, channel: PaymentChannel) -> PrepayRequest {
    PrepayRequest {
        out_trade_no: out_trade_no.into(),
        description: "fenpay 测试商品 & co".into(),
        amount_fen,
        channel,
        expire_at: Utc::now() + chrono::Duration::minutes(30),
        openid: None,
        client_ip: "127.0.0.1".into(),
    }
}

/// A merchant endpoint that answers notifications from a script (then `success`).
struct Receiver {
    url: String,
    bodies: Arc<Mutex<Vec<Vec<u8>>>>,
}

async fn receiver(answers: &[&'static str]) -> Receiver {
    let bodies: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let answers: Arc<Vec<&'static str>> = Arc::new(answers.to_vec());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = bodies.clone();
    let server = HttpServer::new(move || {
        let seen = seen.clone();
        let answers = answers.clone();
        App::new().route(
            "/notify",
            web::post().to(move |body: web::Bytes| {
                let seen = seen.clone();
                let answers = answers.clone();
                async move {
                    let n = {
                        let mut seen = seen.lock().unwrap();
                        seen.push(body.to_vec());
                        seen.len()
                    };
                    HttpResponse::Ok().body(answers.get(n - 1).copied().unwrap_or("success"))
                }
            }),
        )
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    Receiver {
        url: format!("http://127.0.0.1:{port}/notify"),
        bodies,
    }
}

fn unique(prefix: &str) -> String {
    format!("{prefix}{}", Utc::now().timestamp_nanos_opt().unwrap())
}

#[tokio::test]
async fn precreate_query_pay_then_close_is_refused() {
    let emu = Emu::start().await;
    let client = emu.client();
    let no = unique("FPPRE");
    let prepay = client
        .prepay(&order(&no, 1234, PaymentChannel::Native))
        .await
        .unwrap();
    let qr = prepay.qr_code_url.unwrap();
    assert!(qr.starts_with("https://qr.alipay.com/"), "{qr}");
    assert_eq!(prepay.pay_url, None);

    // Alipay knows a QR trade only once the buyer scanned the code.
    assert_eq!(
        client.query(&no).await.unwrap().state,
        RemoteTradeState::NotExist
    );
    emu.scan(&no).await;
    let pending = client.query(&no).await.unwrap();
    assert_eq!(pending.state, RemoteTradeState::Pending);
    assert_eq!(pending.amount_fen, Some(1234));
    assert_eq!(pending.paid_at, None);

    let trade = emu.pay(&no).await;
    assert_eq!(trade["status"], "TRADE_SUCCESS");

    let paid = client.query(&no).await.unwrap();
    assert_eq!(paid.state, RemoteTradeState::Paid);
    assert_eq!(paid.amount_fen, Some(1234));
    assert_eq!(paid.transaction_id.as_deref(), trade["trade_no"].as_str());
    assert_eq!(paid.transaction_id.as_ref().unwrap().len(), 28);
    assert!(paid.paid_at.is_some());

    assert_eq!(client.close(&no).await, Err(ProviderError::AlreadyPaid));
    // A repeated precreate of a paid trade is refused as well.
    assert_eq!(
        client
            .prepay(&order(&no, 1234, PaymentChannel::Native))
            .await,
        Err(ProviderError::AlreadyPaid)
    );

    let cancelled = client.cancel(&no).await.unwrap();
    assert_eq!(cancelled.action.as_deref(), Some("refund"));
    assert!(!cancelled.retry);
    // Cancelled after payment = refunded in full: TRADE_CLOSED at Alipay, but it
    // was paid, and callers must never take it for an unpaid closed trade.
    let refunded = client.query(&no).await.unwrap();
    assert_eq!(refunded.state, RemoteTradeState::Paid);
    assert!(
        refunded.paid_at.is_some(),
        "a refunded trade keeps its payment time"
    );
}

/// A precreate (QR) trade does not exist at Alipay until the buyer scans the code:
/// query and close answer `ACQ.TRADE_NOT_EXIST` (a verified answer), the QR code stays
/// payable (a close could not close it), a repeated precreate does not scan it, and
/// after the scan the query says `WAIT_BUYER_PAY`.
#[tokio::test]
async fn an_unscanned_qr_trade_does_not_exist_until_the_buyer_scans_it() {
    let emu = Emu::start().await;
    let client = emu.client();
    let no = unique("FPUNSCAN");
    let first = client
        .prepay(&order(&no, 300, PaymentChannel::Native))
        .await
        .unwrap();
    let mut params = BTreeMap::new();
    params.insert("method".to_string(), "alipay.trade.query".to_string());
    params.insert(
        "biz_content".to_string(),
        json!({ "out_trade_no": no }).to_string(),
    );
    let raw: Value = serde_json::from_str(&raw_call(&emu, params).await).unwrap();
    let node = &raw["alipay_trade_query_response"];
    assert_eq!(
        (node["code"].as_str(), node["sub_code"].as_str()),
        (Some("40004"), Some("ACQ.TRADE_NOT_EXIST")),
        "{raw}"
    );
    assert_eq!(node["buyer_pay_amount"], "0.00");
    assert_eq!(
        client.query(&no).await.unwrap().state,
        RemoteTradeState::NotExist
    );
    assert_eq!(client.close(&no).await, Err(ProviderError::TradeNotExist));
    let again = client
        .prepay(&order(&no, 300, PaymentChannel::Native))
        .await
        .unwrap();
    assert_eq!(first.qr_code_url, again.qr_code_url);
    assert_eq!(
        client.query(&no).await.unwrap().state,
        RemoteTradeState::NotExist
    );
    let (_, trade) = emu
        .control("GET", &format!("/__emulator/alipay/trades/{no}"), None)
        .await;
    assert_eq!(
        (trade["status"].as_str(), trade["opened"].as_bool()),
        (Some("WAIT_BUYER_PAY"), Some(false))
    );
    emu.scan(&no).await;
    let waiting = client.query(&no).await.unwrap();
    assert_eq!(waiting.state, RemoteTradeState::Pending);
    assert_eq!(waiting.amount_fen, Some(300));
    // The close that found nothing closed nothing: a buyer scanning later can pay.
    let later = unique("FPLATE");
    client
        .prepay(&order(&later, 300, PaymentChannel::Native))
        .await
        .unwrap();
    assert_eq!(
        client.close(&later).await,
        Err(ProviderError::TradeNotExist)
    );
    assert_eq!(emu.pay(&later).await["status"], "TRADE_SUCCESS");
    assert_eq!(
        client.query(&later).await.unwrap().state,
        RemoteTradeState::Paid
    );
}

#[tokio::test]
async fn precreate_is_idempotent_and_close_and_cancel_follow_the_state() {
    let emu = Emu::start().await;
    let client = emu.client();
    let no = unique("FPIDEM");
    let first = client
        .prepay(&order(&no, 100, PaymentChannel::Native))
        .await
        .unwrap();
    let again = client
        .prepay(&order(&no, 100, PaymentChannel::Native))
        .await
        .unwrap();
    assert_eq!(first.qr_code_url, again.qr_code_url);
    match client
        .prepay(&order(&no, 200, PaymentChannel::Native))
        .await
    {
        Err(ProviderError::Rejected { code, .. }) => assert_eq!(code, "ACQ.CONTEXT_INCONSISTENT"),
        other => panic!("changed amount accepted: {other:?}"),
    }

    emu.scan(&no).await;
    client.close(&no).await.unwrap();
    assert_eq!(
        client.query(&no).await.unwrap().state,
        RemoteTradeState::Closed
    );
    assert_eq!(client.close(&no).await, Err(ProviderError::AlreadyClosed));
    assert_eq!(
        client
            .prepay(&order(&no, 100, PaymentChannel::Native))
            .await,
        Err(ProviderError::AlreadyClosed)
    );
    let (status, body) = emu
        .control("POST", &format!("/__emulator/alipay/pay/{no}"), None)
        .await;
    assert_eq!((status, body["code"].as_str()), (409, Some("TRADE_CLOSED")));

    assert_eq!(
        client.close("FPNOSUCHTRADE").await,
        Err(ProviderError::TradeNotExist)
    );
    assert_eq!(
        client.cancel("FPNOSUCHTRADE").await,
        Err(ProviderError::TradeNotExist)
    );

    let other = unique("FPCANCEL");
    client
        .prepay(&order(&other, 100, PaymentChannel::Native))
        .await
        .unwrap();
    emu.scan(&other).await;
    let cancelled = client.cancel(&other).await.unwrap();
    assert_eq!(cancelled.action.as_deref(), Some("close"));
    assert!(cancelled.trade_no.is_some());
    assert_eq!(
        client.query(&other).await.unwrap().state,
        RemoteTradeState::Closed
    );
}

#[tokio::test]
async fn page_pay_exists_only_once_the_cashier_is_opened() {
    let emu = Emu::start().await;
    let client = emu.client();
    let no = unique("FPPAGE");
    let prepay = client
        .prepay(&order(&no, 1, PaymentChannel::Page))
        .await
        .unwrap();
    let pay_url = prepay.pay_url.unwrap();
    assert!(
        pay_url.starts_with(&format!("{}/gateway.do?", emu.url)),
        "{pay_url}"
    );
    assert_eq!(prepay.qr_code_url, None);

    assert_eq!(
        client.query(&no).await.unwrap().state,
        RemoteTradeState::NotExist
    );
    assert_eq!(client.close(&no).await, Err(ProviderError::TradeNotExist));
    let (status, _) = emu
        .control("POST", &format!("/__emulator/alipay/pay/{no}"), None)
        .await;
    assert_eq!(status, 404);

    let page = emu.http.get(&pay_url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("支付宝 收银台 (fenpay emulator)"), "{html}");
    assert!(html.contains(r#"id="emulator-pay""#));
    assert!(html.contains("0.01"));
    assert!(html.contains("fenpay 测试商品 &amp; co"));
    // Opening the same URL again shows the same trade.
    assert_eq!(emu.http.get(&pay_url).send().await.unwrap().status(), 200);
    assert_eq!(
        client.query(&no).await.unwrap().state,
        RemoteTradeState::Pending
    );

    let paid = emu
        .http
        .post(format!("{}/__emulator/alipay/cashier/{no}/pay", emu.url))
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), 303);
    let location = paid.headers()["location"].to_str().unwrap().to_string();
    let (base, query) = location.split_once('?').unwrap();
    assert_eq!(base, RETURN_URL);
    let params = client.verify_return(query).unwrap();
    assert_eq!(params["method"], "alipay.trade.page.pay.return");
    assert_eq!(params["out_trade_no"], no);
    assert_eq!(params["total_amount"], "0.01");
    assert_eq!(params["seller_id"], SELLER_ID);

    let mut forged = parse_form(query).unwrap();
    forged.insert("total_amount".into(), "100.00".into());
    assert!(matches!(
        client.verify_return(&encode_form(&forged)),
        Err(ProviderError::InvalidResponse(_))
    ));

    let trade = client.query(&no).await.unwrap();
    assert_eq!(trade.state, RemoteTradeState::Paid);
    assert_eq!(trade.amount_fen, Some(1));
    assert_eq!(
        trade.transaction_id.as_deref(),
        Some(params["trade_no"].as_str())
    );
}

#[tokio::test]
async fn wap_and_app_open_the_cashier_and_other_channels_are_refused() {
    let emu = Emu::start().await;
    let client = emu.client();

    let wap = unique("FPWAP");
    let url = client
        .prepay(&order(&wap, 250, PaymentChannel::Wap))
        .await
        .unwrap()
        .pay_url
        .unwrap();
    let params = parse_form(url.split_once('?').unwrap().1).unwrap();
    assert_eq!(params["method"], "alipay.trade.wap.pay");
    let biz: Value = serde_json::from_str(&params["biz_content"]).unwrap();
    assert_eq!(biz["product_code"], "QUICK_WAP_WAY");
    assert_eq!(biz["quit_url"], RETURN_URL);
    assert_eq!(biz["total_amount"], "2.50");
    let html = emu
        .http
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains(r#"id="emulator-pay""#), "{html}");
    let paid = emu
        .http
        .post(format!("{}/__emulator/alipay/cashier/{wap}/pay", emu.url))
        .send()
        .await
        .unwrap();
    let location = paid.headers()["location"].to_str().unwrap().to_string();
    let returned = client
        .verify_return(location.split_once('?').unwrap().1)
        .unwrap();
    assert_eq!(returned["method"], "alipay.trade.wap.pay.return");

    let app = unique("FPAPP");
    let prepay = client
        .prepay(&order(&app, 99, PaymentChannel::App))
        .await
        .unwrap();
    let order_string = match prepay.sdk_params {
        Some(SdkParams::AlipayApp { order_string }) => order_string,
        other => panic!("no order string: {other:?}"),
    };
    let params = parse_form(&order_string).unwrap();
    assert_eq!(params["method"], "alipay.trade.app.pay");
    assert!(proto::verify_request_params(
        &params,
        &keys().app.public_key()
    ));
    assert_eq!(
        client.query(&app).await.unwrap().state,
        RemoteTradeState::NotExist
    );
    // What the Alipay app does with the order string, in the emulator's cashier.
    let opened = emu
        .http
        .get(format!("{}/gateway.do?{order_string}", emu.url))
        .send()
        .await
        .unwrap();
    assert_eq!(opened.status(), 200);
    assert_eq!(
        client.query(&app).await.unwrap().state,
        RemoteTradeState::Pending
    );

    match client
        .prepay(&order("FPJSAPI1", 1, PaymentChannel::Jsapi))
        .await
    {
        Err(ProviderError::Rejected { code, .. }) => assert_eq!(code, "unsupported_channel"),
        other => panic!("jsapi accepted: {other:?}"),
    }
}

#[tokio::test]
async fn notifications_verify_and_forgeries_are_rejected() {
    let emu = Emu::start().await;
    let rx = receiver(&[]).await;
    let client = emu.client_with(|c| c.notify_url = rx.url.clone());
    let no = unique("FPNOTIFY");
    client
        .prepay(&order(&no, 8888, PaymentChannel::Native))
        .await
        .unwrap();
    emu.pay(&no).await;
    let log = emu.delivered_log(&no).await;
    assert_eq!(log.len(), 1);

    let body = rx.bodies.lock().unwrap()[0].clone();
    let (notice, status, params) = client.verify_notification(&body).unwrap();
    assert_eq!(status, "TRADE_SUCCESS");
    assert!(notice.paid);
    assert_eq!(notice.out_trade_no, no);
    assert_eq!(notice.amount_fen, 8888);
    assert_eq!(notice.app_id, APP_ID);
    assert_eq!(notice.merchant_id, SELLER_ID);
    assert_eq!(params["notify_type"], "trade_status_sync");
    assert_eq!(params["notify_id"], log[0]["notify_id"].as_str().unwrap());
    assert_eq!(params["subject"], "fenpay 测试商品 & co");
    let paid = client.query(&no).await.unwrap();
    assert_eq!(Some(notice.transaction_id.clone()), paid.transaction_id);
    assert_eq!(Some(notice.paid_at), paid.paid_at);

    // Tampered amount: the signature no longer matches.
    let mut forged = params.clone();
    forged.insert("total_amount".into(), "0.01".into());
    let err = client
        .verify_notification(encode_form(&forged).as_bytes())
        .unwrap_err();
    assert!(
        matches!(&err, ProviderError::InvalidResponse(m) if m.contains("signature")),
        "{err}"
    );

    // Correctly signed by Alipay, but for another app.
    let mut other_app = params.clone();
    other_app.insert("app_id".into(), "2021000000009999".into());
    let sign = proto::sign_notification(&other_app, &keys().alipay).unwrap();
    other_app.insert("sign".into(), sign);
    let err = client
        .verify_notification(encode_form(&other_app).as_bytes())
        .unwrap_err();
    assert!(
        matches!(&err, ProviderError::InvalidResponse(m) if m.contains("app_id")),
        "{err}"
    );

    // Signed by someone else's key.
    let mut self_signed = params.clone();
    self_signed.insert(
        "sign".into(),
        proto::sign_notification(&params, &keys().app).unwrap(),
    );
    assert!(client
        .verify_notification(encode_form(&self_signed).as_bytes())
        .is_err());

    // A different seller.
    let strict = emu.client_with(|c| c.seller_id = Some("2088999999999999".into()));
    assert!(strict.verify_notification(&body).is_err());
    assert!(client.verify_notification(b"not a form at all").is_err());
}

#[tokio::test]
async fn notifications_are_resent_until_the_answer_is_success() {
    let emu = Emu::start().await;
    let rx = receiver(&["fail", "FAIL", " success\n"]).await;
    let client = emu.client_with(|c| c.notify_url = rx.url.clone());
    let no = unique("FPRESEND");
    client
        .prepay(&order(&no, 500, PaymentChannel::Native))
        .await
        .unwrap();
    emu.pay(&no).await;
    let log = emu.delivered_log(&no).await;
    let outcomes: Vec<&str> = log.iter().map(|e| e["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["rejected", "rejected", "delivered"]);
    let attempts: Vec<u64> = log.iter().map(|e| e["attempt"].as_u64().unwrap()).collect();
    assert_eq!(attempts, [1, 2, 3]);
    assert!(log.iter().all(|e| e["notify_id"] == log[0]["notify_id"]));
    let bodies = rx.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 3);
    for body in &bodies {
        client.verify_notification(body).unwrap();
    }

    // A manual resend goes out once more, with the same notify_id.
    let (status, entry) = emu
        .control("POST", &format!("/__emulator/alipay/notify/{no}"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(entry["outcome"], "delivered");
    assert_eq!(entry["notify_id"], log[0]["notify_id"]);
    assert_eq!(entry["attempt"], 4);
}

#[tokio::test]
async fn request_faults_are_unavailable_and_change_nothing() {
    let emu = Emu::start().await;
    let client = emu.client();
    let no = unique("FPFAULT");
    let (status, _) = emu
        .control(
            "POST",
            "/__emulator/faults",
            Some(json!({"fail_requests_next": 1})),
        )
        .await;
    assert_eq!(status, 200);
    let err = client
        .prepay(&order(&no, 100, PaymentChannel::Native))
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Unavailable(_)), "{err:?}");
    assert!(err.is_retryable());
    assert_eq!(
        client.query(&no).await.unwrap().state,
        RemoteTradeState::NotExist
    );

    let (status, _) = emu
        .control(
            "POST",
            "/__emulator/faults",
            Some(json!({"timeout_requests_next": 1, "timeout_ms": 3000})),
        )
        .await;
    assert_eq!(status, 200);
    let impatient = emu.client_with(|c| c.timeout = Duration::from_millis(300));
    let err = impatient.query(&no).await.unwrap_err();
    assert!(matches!(err, ProviderError::Unavailable(_)), "{err:?}");
    client
        .prepay(&order(&no, 100, PaymentChannel::Native))
        .await
        .unwrap();
}

#[tokio::test]
async fn signature_failures_on_either_side() {
    let emu = Emu::start().await;
    // We sign with a key the emulator does not know.
    let wrong_key = emu.client_with(|c| c.app_private_key = keys().alipay.clone());
    match wrong_key.query("FPANY123").await {
        Err(ProviderError::SignatureRejected(msg)) => {
            assert!(msg.contains("验签字符串为：app_id="), "{msg}")
        }
        other => panic!("wrong private key accepted: {other:?}"),
    }
    // Responses signed by a key we do not trust are not believed.
    let wrong_trust = emu.client_with(|c| c.alipay_public_key = keys().app.public_key());
    assert!(matches!(
        wrong_trust.query("FPANY123").await,
        Err(ProviderError::InvalidResponse(_))
    ));
    let wrong_app = emu.client_with(|c| c.app_id = "2021000000009999".into());
    match wrong_app.query("FPANY123").await {
        // gateway.do's sub_code; OpenAPI v3's code (TEST_ALIPAY_API=v3).
        Err(ProviderError::Rejected { code, .. }) => {
            assert!(
                code == "isv.invalid-app-id" || code == "invalid-app-id",
                "{code}"
            )
        }
        other => panic!("wrong app_id accepted: {other:?}"),
    }
}

#[tokio::test]
async fn certificate_mode_needs_the_sns_and_answers_name_the_alipay_cert() {
    let emu = Emu::start_in(AlipayKeyMode::Certificate).await;
    let client = emu.client_with(|c| {
        c.cert_mode = Some(sns());
        c.alipay_public_key = chain().alipay.public_key.clone();
    });
    let no = unique("FPCERT");
    let prepay = client
        .prepay(&order(&no, 250, PaymentChannel::Native))
        .await
        .unwrap();
    assert!(prepay.qr_code_url.is_some());
    emu.scan(&no).await;
    emu.pay(&no).await;
    let paid = client.query(&no).await.unwrap();
    assert_eq!(
        (paid.state, paid.amount_fen),
        (RemoteTradeState::Paid, Some(250))
    );

    // Page pay: the signed URL carries both SNs and opens the cashier.
    let page_no = unique("FPCERTPAGE");
    let pay_url = client
        .prepay(&order(&page_no, 1, PaymentChannel::Page))
        .await
        .unwrap()
        .pay_url
        .unwrap();
    let query: BTreeMap<String, String> = parse_form(pay_url.split_once('?').unwrap().1).unwrap();
    assert_eq!(query["app_cert_sn"], sns().app_cert_sn);
    assert_eq!(query["alipay_root_cert_sn"], sns().alipay_root_cert_sn);
    assert_eq!(emu.http.get(&pay_url).send().await.unwrap().status(), 200);

    // A public-key-mode client (no SNs) is refused as Alipay does.
    let no_sns = emu.client();
    match no_sns.query(&no).await {
        Err(ProviderError::Rejected { code, .. }) => assert_eq!(code, "isv.app-cert-not-exist"),
        other => panic!("request without app_cert_sn accepted: {other:?}"),
    }
    let wrong_root = emu.client_with(|c| {
        c.cert_mode = Some(AlipayCertSns {
            alipay_root_cert_sn: "687b59193f3f462dd5336e5abf83c5d8".into(),
            ..sns()
        });
        c.alipay_public_key = chain().alipay.public_key.clone();
    });
    match wrong_root.query(&no).await {
        Err(ProviderError::Rejected { code, .. }) => {
            assert_eq!(code, "isv.invalid-alipay-root-cert-sn")
        }
        other => panic!("wrong alipay_root_cert_sn accepted: {other:?}"),
    }
    // We hold another Alipay certificate than the one answering: not believed.
    let outdated = emu.client_with(|c| {
        c.cert_mode = Some(AlipayCertSns {
            alipay_cert_sn: "7513daaaa48aa3ba2e4018d84402479c".into(),
            ..sns()
        });
        c.alipay_public_key = chain().alipay.public_key.clone();
    });
    match outdated.query(&no).await {
        Err(ProviderError::InvalidResponse(msg)) => {
            assert!(msg.contains("alipay_cert_sn"), "{msg}")
        }
        other => panic!("answer under another certificate believed: {other:?}"),
    }

    // The raw answer: node, alipay_cert_sn, sign, in that order.
    let mut params = BTreeMap::new();
    params.insert("method".to_string(), "alipay.trade.query".to_string());
    params.insert(
        "biz_content".to_string(),
        json!({ "out_trade_no": no }).to_string(),
    );
    params.insert("app_cert_sn".to_string(), sns().app_cert_sn);
    params.insert("alipay_root_cert_sn".to_string(), sns().alipay_root_cert_sn);
    let body = raw_call(&emu, params).await;
    let node = "alipay_trade_query_response";
    let content = proto::extract_response_content(&body, node).unwrap();
    let sign = proto::response_sign(&body).unwrap();
    assert_eq!(
        body,
        format!(
            r#"{{"{node}":{content},"alipay_cert_sn":"{}","sign":"{sign}"}}"#,
            sns().alipay_cert_sn
        )
    );
    assert_eq!(
        proto::response_cert_sn(&body).unwrap(),
        Some(sns().alipay_cert_sn)
    );
}

#[tokio::test]
async fn public_key_mode_requests_carry_no_certificate_sns() {
    let emu = Emu::start().await;
    let no = unique("FPPK");
    let pay_url = emu
        .client()
        .prepay(&order(&no, 1, PaymentChannel::Page))
        .await
        .unwrap()
        .pay_url
        .unwrap();
    let query = parse_form(pay_url.split_once('?').unwrap().1).unwrap();
    let mut keys: Vec<&str> = query.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "app_id",
            "biz_content",
            "charset",
            "format",
            "method",
            "return_url",
            "sign",
            "sign_type",
            "timestamp",
            "version"
        ]
    );
}

/// Sends hand-built signed parameters the way a minimal SDK would (all in the query
/// string, no `format`) and returns the raw body.
async fn raw_call(emu: &Emu, mut params: BTreeMap<String, String>) -> String {
    params.insert("app_id".into(), APP_ID.into());
    params.insert("charset".into(), "utf-8".into());
    params.insert("sign_type".into(), "RSA2".into());
    params.insert("timestamp".into(), "2026-01-02 03:04:05".into());
    params.insert("version".into(), "1.0".into());
    let sign = proto::sign_params(&params, &keys().app).unwrap();
    params.insert("sign".into(), sign);
    let url = format!("{}/gateway.do?{}", emu.url, encode_form(&params));
    emu.http
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn precreate_response_is_compact_ordered_and_extractable() {
    let emu = Emu::start().await;
    let no = unique("FPRAW");
    let mut params = BTreeMap::new();
    params.insert("method".to_string(), "alipay.trade.precreate".to_string());
    params.insert(
        "biz_content".to_string(),
        json!({"out_trade_no": no, "total_amount": 0.5, "subject": "raw"}).to_string(),
    );
    let body = raw_call(&emu, params.clone()).await;
    let node = "alipay_trade_precreate_response";
    let content = proto::extract_response_content(&body, node).unwrap();
    assert!(
        content.starts_with(r#"{"code":"10000","msg":"Success","out_trade_no":""#),
        "{content}"
    );
    let sign = proto::response_sign(&body).unwrap();
    assert_eq!(body, format!(r#"{{"{node}":{content},"sign":"{sign}"}}"#));
    assert!(!body.contains(char::is_whitespace));
    assert_eq!(
        proto::verify_response(&body, "alipay.trade.precreate", &keys().alipay.public_key())
            .unwrap(),
        content
    );
    let parsed: Value = serde_json::from_str(content).unwrap();
    assert!(parsed["qr_code"]
        .as_str()
        .unwrap()
        .starts_with("https://qr.alipay.com/"));

    // A forged second node must make extraction fail.
    let doubled = body.replacen(
        &format!("\"{node}\":"),
        &format!("\"{node}\":{{\"code\":\"10000\"}},\"{node}\":"),
        1,
    );
    assert!(proto::extract_response_content(&doubled, node).is_err());
    assert!(proto::verify_response(
        &doubled,
        "alipay.trade.precreate",
        &keys().alipay.public_key()
    )
    .is_err());

    // Unknown methods answer a signed error_response.
    params.insert("method".into(), "alipay.trade.nonsense".into());
    let body = raw_call(&emu, params).await;
    let content =
        proto::verify_response(&body, "alipay.trade.nonsense", &keys().alipay.public_key())
            .unwrap();
    let parsed: Value = serde_json::from_str(content).unwrap();
    assert_eq!(parsed["sub_code"], "isv.invalid-method");
    assert!(body.starts_with(r#"{"error_response":"#));
}

/// The third-party Python SDK against this emulator (keys written to a temp dir).
/// Needs `tests/interop/.venv` (`python3 -m venv tests/interop/.venv &&
/// tests/interop/.venv/bin/pip install -r tests/interop/requirements.txt`), or
/// `FENPAY_INTEROP_PYTHON` naming a Python that has python-alipay-sdk.
#[tokio::test]
#[ignore = "needs the tests/interop Python environment"]
async fn python_alipay_sdk_drives_the_emulator() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/interop");
    let python = std::env::var("FENPAY_INTEROP_PYTHON")
        .unwrap_or_else(|_| root.join(".venv/bin/python").display().to_string());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("alipay_app_key.pem"),
        keys().app.to_pkcs8_pem(),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("alipay_platform_key.pem"),
        keys().alipay.to_pkcs8_pem(),
    )
    .unwrap();
    let emu = Emu::start().await;
    let output = tokio::process::Command::new(python)
        .arg(root.join("alipay_sdk_test.py"))
        .env("FENPAY_DEV_KEYS", dir.path())
        .env("FENPAY_EMULATOR_URL", &emu.url)
        .env("FENPAY_ALIPAY_APP_ID", APP_ID)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    println!("{stdout}");
}

// ---------------------------------------------------------------------------
// Refunds

fn refund_req(out_trade_no: &str, out_refund_no: &str, amount: i64, total: i64) -> RefundRequest {
    RefundRequest {
        out_trade_no: out_trade_no.into(),
        out_refund_no: out_refund_no.into(),
        amount_fen: amount,
        total_fen: total,
        reason: Some("用户申请退款".into()),
    }
}

fn rejected_code(err: &ProviderError) -> &str {
    match err {
        ProviderError::Rejected { code, .. } => code,
        _ => "",
    }
}

impl Receiver {
    /// The refund notification for `out_biz_no`, once it arrived.
    async fn refund_notice(&self, out_biz_no: &str) -> (Vec<u8>, BTreeMap<String, String>) {
        for _ in 0..600 {
            let found = self.bodies.lock().unwrap().iter().find_map(|b| {
                let form = parse_form(std::str::from_utf8(b).ok()?).ok()?;
                (form.get("out_biz_no").map(String::as_str) == Some(out_biz_no))
                    .then(|| (b.clone(), form))
            });
            if let Some(found) = found {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("no refund notification for {out_biz_no}");
    }
}

#[tokio::test]
async fn partial_then_full_refund_closes_the_trade_which_still_reads_paid() {
    let emu = Emu::start().await;
    let rx = receiver(&[]).await;
    let client = emu.client_with(|c| c.notify_url = rx.url.clone());
    let no = unique("FPREFUND");
    client
        .prepay(&order(&no, 1000, PaymentChannel::Native))
        .await
        .unwrap();
    let paid = emu.pay(&no).await;
    emu.delivered_log(&no).await;

    let first = client
        .refund(&refund_req(&no, "RF-A-1", 300, 1000))
        .await
        .unwrap();
    assert_eq!(first.state, RemoteRefundState::Succeeded);
    assert_eq!(first.amount_fen, 300);
    assert_eq!(first.refund_id.as_deref(), paid["trade_no"].as_str());
    assert!(first.succeeded_at.is_some());
    // The same out_request_no again: fund_change=N, the query confirms it, and
    // nothing moves twice.
    let again = client
        .refund(&refund_req(&no, "RF-A-1", 300, 1000))
        .await
        .unwrap();
    assert_eq!(
        (again.state, again.amount_fen),
        (RemoteRefundState::Succeeded, 300)
    );
    let (_, trade) = emu
        .control("GET", &format!("/__emulator/alipay/trades/{no}"), None)
        .await;
    assert_eq!(trade["refund_fen"], 300);
    assert_eq!(trade["refunds"].as_array().unwrap().len(), 1);
    assert_eq!(trade["status"], "TRADE_SUCCESS");
    assert_eq!(
        client.query(&no).await.unwrap().state,
        RemoteTradeState::Paid
    );

    // More than what is left.
    let err = client
        .refund(&refund_req(&no, "RF-A-2", 701, 1000))
        .await
        .unwrap_err();
    assert_eq!(
        rejected_code(&err),
        "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL",
        "{err:?}"
    );
    assert!(err.to_string().contains("退款金额超限"), "{err}");
    // Same number, other amount.
    let err = client
        .refund(&refund_req(&no, "RF-A-1", 200, 1000))
        .await
        .unwrap_err();
    assert_eq!(
        rejected_code(&err),
        "ACQ.DISCORDANT_REPEAT_REQUEST",
        "{err:?}"
    );

    let rest = client
        .refund(&refund_req(&no, "RF-A-2", 700, 1000))
        .await
        .unwrap();
    assert_eq!(rest.state, RemoteRefundState::Succeeded);
    // Fully refunded: Alipay says TRADE_CLOSED, which must not read as "unpaid".
    let (_, trade) = emu
        .control("GET", &format!("/__emulator/alipay/trades/{no}"), None)
        .await;
    assert_eq!(trade["status"], "TRADE_CLOSED");
    let after = client.query(&no).await.unwrap();
    assert_eq!(after.state, RemoteTradeState::Paid);
    assert_eq!(after.amount_fen, Some(1000));
    assert!(after.paid_at.is_some());
    assert_eq!(after.transaction_id.as_deref(), paid["trade_no"].as_str());
    let err = client
        .refund(&refund_req(&no, "RF-A-3", 1, 1000))
        .await
        .unwrap_err();
    assert_eq!(
        rejected_code(&err),
        "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL",
        "{err:?}"
    );

    for (out_request_no, amount) in [("RF-A-1", 300), ("RF-A-2", 700)] {
        let r = client.query_refund(&no, out_request_no).await.unwrap();
        assert_eq!(
            (r.state, r.amount_fen),
            (RemoteRefundState::Succeeded, amount)
        );
        assert!(r.succeeded_at.is_some());
    }
    assert_eq!(
        client.query_refund(&no, "RF-NEVER").await.unwrap_err(),
        ProviderError::TradeNotExist
    );

    // Each refund that moved money was notified once, V1-signed, on the trade.
    let (body, partial) = rx.refund_notice("RF-A-1").await;
    assert_eq!(partial["trade_status"], "TRADE_SUCCESS");
    assert_eq!(partial["refund_fee"], "3.00");
    assert!(partial.contains_key("gmt_refund"));
    let (notice, status, _) = client.verify_notification(&body).unwrap();
    assert_eq!(status, "TRADE_SUCCESS");
    assert_eq!(notice.out_trade_no, no);
    let (body, full) = rx.refund_notice("RF-A-2").await;
    assert_eq!(full["trade_status"], "TRADE_CLOSED");
    assert_eq!(full["refund_fee"], "10.00");
    assert_ne!(full["notify_id"], partial["notify_id"]);
    let (_, status, _) = client.verify_notification(&body).unwrap();
    assert_eq!(status, "TRADE_CLOSED");
    let refund_notes = rx
        .bodies
        .lock()
        .unwrap()
        .iter()
        .filter(|b| String::from_utf8_lossy(b).contains("out_biz_no"))
        .count();
    assert_eq!(refund_notes, 2);
}

#[tokio::test]
async fn refunds_of_unknown_unpaid_or_faulty_trades() {
    let emu = Emu::start().await;
    let client = emu.client();
    assert_eq!(
        client
            .refund(&refund_req(&unique("FPNOPE"), "RF-B-1", 1, 1))
            .await
            .unwrap_err(),
        ProviderError::TradeNotExist
    );
    assert_eq!(
        client
            .query_refund(&unique("FPNOPE"), "RF-B-1")
            .await
            .unwrap_err(),
        ProviderError::TradeNotExist
    );
    let unpaid = unique("FPUNPAID");
    client
        .prepay(&order(&unpaid, 500, PaymentChannel::Native))
        .await
        .unwrap();
    emu.scan(&unpaid).await;
    let err = client
        .refund(&refund_req(&unpaid, "RF-B-2", 500, 500))
        .await
        .unwrap_err();
    assert_eq!(rejected_code(&err), "ACQ.TRADE_STATUS_ERROR", "{err:?}");

    let no = unique("FPREFUNDF");
    client
        .prepay(&order(&no, 500, PaymentChannel::Native))
        .await
        .unwrap();
    emu.pay(&no).await;
    let (status, _) = emu
        .control(
            "POST",
            "/__emulator/faults",
            Some(json!({"refund_not_enough_next": 1, "fail_requests_next": 1})),
        )
        .await;
    assert_eq!(status, 200);
    let err = client
        .refund(&refund_req(&no, "RF-B-3", 500, 500))
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    let err = client
        .refund(&refund_req(&no, "RF-B-3", 500, 500))
        .await
        .unwrap_err();
    assert_eq!(
        rejected_code(&err),
        "ACQ.SELLER_BALANCE_NOT_ENOUGH",
        "{err:?}"
    );
    // Nothing moved; the retry refunds once.
    assert_eq!(
        client.query_refund(&no, "RF-B-3").await.unwrap_err(),
        ProviderError::TradeNotExist
    );
    let ok = client
        .refund(&refund_req(&no, "RF-B-3", 500, 500))
        .await
        .unwrap();
    assert_eq!(
        (ok.state, ok.amount_fen),
        (RemoteRefundState::Succeeded, 500)
    );
}
