//! The epay (易支付)-compatible gateway, driven by a client written here from the
//! protocol's description (not fenpay's own signing code): orders through mapi.php (each
//! device) and submit.php, the buyer pays at the emulator, the notify receiver gets a
//! correctly signed GET and is retried until it answers `success`, the order query and a
//! refund through api.php; every refusal writes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use fenpay::domain::apps::{Fulfilment, KeyMode};
use fenpay::service::apps::{create, NewApp};
use fenpay_tests::{both_backends, eventually, pay_at_emulator, TestApp};
use md5::{Digest, Md5};
use serde_json::Value;

// ---- the client, from the protocol description -------------------------------------

/// sign = md5(k1=v1&k2=v2...key): names sorted, empty values and sign / sign_type left
/// out, lowercase hex.
fn sign(params: &[(String, String)], key: &str) -> String {
    let mut kept: Vec<&(String, String)> = params
        .iter()
        .filter(|(k, v)| !v.is_empty() && k != "sign" && k != "sign_type")
        .collect();
    kept.sort();
    let joined = kept
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    hex::encode(Md5::digest(format!("{joined}{key}").as_bytes()))
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `pairs` with `sign` and `sign_type=MD5` added.
fn signed(pairs: &[(&str, &str)], key: &str) -> Vec<(String, String)> {
    let mut p = owned(pairs);
    let s = sign(&p, key);
    p.push(("sign".into(), s));
    p.push(("sign_type".into(), "MD5".into()));
    p
}

fn set(p: &mut [(String, String)], name: &str, value: &str) {
    for (k, v) in p.iter_mut() {
        if k == name {
            *v = value.to_string();
        }
    }
}

// Known answers computed independently with Python's hashlib when this test was written.
#[test]
fn the_test_client_signs_like_the_protocol() {
    let vectors = [
        (
            vec![
                ("pid", "1001"),
                ("type", "alipay"),
                ("out_trade_no", "20160806151343349"),
                ("notify_url", "http://www.pay.com/notify_url.php"),
                ("return_url", "http://www.pay.com/return_url.php"),
                ("name", "VIP会员"),
                ("money", "1.00"),
                ("sitename", ""),
                ("sign_type", "MD5"),
            ],
            "89unJUB8HZ54Hj7x4nUj56HN4nUzUJ8i",
            "427724b6656aa612cfdbe7a2262036a3",
        ),
        (mobile_vector(), "k3y", "a05fb65e56362746a9f09ee1b970afc2"),
        (
            vec![
                ("pid", "20001"),
                ("trade_no", "FP20261205093000123456"),
                ("out_trade_no", "ORDER-42"),
                ("type", "wxpay"),
                ("name", "100 points"),
                ("money", "12.30"),
                ("trade_status", "TRADE_SUCCESS"),
                ("param", ""),
                ("sign_type", "MD5"),
            ],
            "k3y",
            "e61f92f6cf2342193e9f7d5075390e13",
        ),
        (
            vec![
                ("act", "order"),
                ("pid", "20001"),
                ("out_trade_no", "ORDER-42"),
                ("sign_type", "MD5"),
            ],
            "k3y",
            "162d31525ccd737d50749fbd2ca02c8a",
        ),
    ];
    for (pairs, key, expected) in vectors {
        assert_eq!(sign(&owned(&pairs), key), expected);
    }
}

/// A mapi.php request whose signature under key `k3y` is the known answer
/// `a05fb65e56362746a9f09ee1b970afc2`.
fn mobile_vector() -> Vec<(&'static str, &'static str)> {
    vec![
        ("pid", "20001"),
        ("type", "wxpay"),
        ("out_trade_no", "ORDER-42"),
        ("notify_url", "https://shop.example.com/epay/notify?x=1&y=2"),
        ("name", "100 points"),
        ("money", "0.01"),
        ("clientip", "203.0.113.7"),
        ("device", "mobile"),
        ("param", "uid=7&plan=pro"),
        ("sign_type", "MD5"),
    ]
}

// ---- the merchant's notify receiver ---------------------------------------------------

/// Records every notification's query; answers `fail` to the first `fail_first`, then
/// `success`.
/// One notification's query parameters, in order.
type Query = Vec<(String, String)>;

#[derive(Clone, Default)]
struct NotifyReceiver {
    got: Arc<Mutex<Vec<Query>>>,
    fail_first: Arc<Mutex<u32>>,
}

impl NotifyReceiver {
    async fn start(&self) -> String {
        let me = self.clone();
        let server = actix_web::HttpServer::new(move || {
            let me = me.clone();
            actix_web::App::new().default_service(actix_web::web::to(
                move |req: actix_web::HttpRequest| {
                    let me = me.clone();
                    async move {
                        assert_eq!(req.method(), actix_web::http::Method::GET);
                        let q = actix_web::web::Query::<Vec<(String, String)>>::from_query(
                            req.query_string(),
                        )
                        .unwrap()
                        .into_inner();
                        me.got.lock().unwrap().push(q);
                        let mut f = me.fail_first.lock().unwrap();
                        if *f > 0 {
                            *f -= 1;
                            "fail"
                        } else {
                            "success\n"
                        }
                    }
                },
            ))
        })
        .workers(1)
        .bind("127.0.0.1:0")
        .unwrap();
        let addr = server.addrs()[0];
        tokio::spawn(server.run());
        // The merchant's own query survives next to the notification's parameters.
        format!("http://{addr}/epay/notify?shop=1")
    }

    fn all(&self) -> Vec<Vec<(String, String)>> {
        self.got.lock().unwrap().clone()
    }
}

fn get<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

// ---- helpers --------------------------------------------------------------------------

/// Rows of orders and checkouts: a refusal must change neither.
async fn written(app: &TestApp) -> (i64, i64) {
    (app.count("orders").await, app.count("checkouts").await)
}

struct Merchant {
    pid: String,
    key: String,
    app_id: String,
}

async fn merchant(app: &TestApp, name: &str) -> Merchant {
    let issued = create(
        &app.state,
        NewApp {
            name: name.into(),
            mode: KeyMode::Test,
            webhook_url: None,
            return_hosts: vec!["shop.example.com".into()],
            fulfilment: Fulfilment::Webhook,
            max_amount_fen: Some(100_000),
            epay: true,
        },
    )
    .await
    .unwrap();
    Merchant {
        pid: issued.app.epay_pid.unwrap().to_string(),
        key: issued.app.epay_key.clone().unwrap(),
        app_id: issued.app.id.clone(),
    }
}

async fn post_form(app: &TestApp, path: &str, form: &[(String, String)]) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .form(form)
        .send()
        .await
        .unwrap()
}

async fn mapi(app: &TestApp, form: &[(String, String)]) -> Value {
    let resp = post_form(app, "/epay/mapi.php", form).await;
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

async fn api_get(app: &TestApp, query: &[(String, String)]) -> Value {
    let resp = app
        .client
        .get(app.url("/epay/api.php"))
        .query(query)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

fn order_request<'a>(
    m: &'a Merchant,
    ty: &'a str,
    out: &'a str,
    notify: &'a str,
    device: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("pid", m.pid.as_str()),
        ("type", ty),
        ("out_trade_no", out),
        ("notify_url", notify),
        ("return_url", "https://shop.example.com/done"),
        ("name", "100 积分 points"),
        ("money", "12.30"),
        ("param", "uid=7&plan=pro"),
        ("clientip", "203.0.113.7"),
        ("device", device),
    ]
}

fn overrides() -> Vec<(&'static str, &'static str)> {
    let mut o = TestApp::emulator_overrides();
    o.extend([
        ("DISPATCH_INTERVAL_SECS", "1"),
        ("WEBHOOK_BACKOFF_BASE_SECS", "1"),
    ]);
    o
}

// ---- the scenarios ----------------------------------------------------------------------

both_backends!(
    orders_payment_notify_query_refund,
    &overrides(),
    |app: TestApp| async move {
        let m = merchant(&app, "shop").await;
        let receiver = NotifyReceiver::default();
        let notify = receiver.start().await;

        // mapi.php, each device kind, both types.
        let cases = [
            ("wxpay", "pc", "W-PC", "qrcode"),
            ("wxpay", "mobile", "W-MOB", "payurl"),
            ("wxpay", "wechat", "W-WX", "payurl"),
            ("alipay", "pc", "A-PC", "qrcode"),
            ("alipay", "mobile", "A-MOB", "payurl"),
            ("alipay", "alipay", "A-ALI", "payurl"),
            ("alipay", "wechat", "A-WX", "payurl"),
        ];
        let mut trade_nos = std::collections::HashMap::new();
        for (ty, device, out, field) in cases {
            let form = signed(&order_request(&m, ty, out, &notify, device), &m.key);
            let a = mapi(&app, &form).await;
            assert_eq!(a["code"], 1, "{ty} {device}: {a}");
            let trade_no = a["trade_no"].as_str().unwrap().to_string();
            let target = a[field]
                .as_str()
                .unwrap_or_else(|| panic!("{ty} {device}: {a}"));
            let other = if field == "qrcode" {
                "payurl"
            } else {
                "qrcode"
            };
            assert!(a.get(other).is_none(), "{a}");
            match (ty, device) {
                ("wxpay", "pc") => assert!(target.starts_with("weixin://"), "{target}"),
                (_, "wechat") => {
                    assert!(
                        target.contains(&format!("/pay/{trade_no}?sig=")),
                        "{target}"
                    );
                    // Left for the page to choose (JSAPI needs the buyer's openid).
                    let c = fenpay::db::apps::find_checkout(&app.state.db, &trade_no)
                        .await
                        .unwrap()
                        .unwrap();
                    assert_eq!(c.status, "open", "{ty} {device}");
                }
                _ => assert!(target.starts_with("http"), "{target}"),
            }
            // The same request again: the same order (retry-safe).
            let again = mapi(&app, &form).await;
            assert_eq!(again["trade_no"], a["trade_no"], "{again}");
            trade_nos.insert(out, trade_no);
        }

        // submit.php (GET, and POST without a type: the buyer chooses) -> the checkout page.
        let form = signed(
            &order_request(&m, "alipay", "S-GET", &notify, "pc")[..9],
            &m.key,
        );
        let resp = app
            .client
            .get(app.url("/epay/submit.php"))
            .query(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 302);
        let location = resp.headers()["location"].to_str().unwrap().to_string();
        assert!(
            location.contains("/pay/") && location.contains("?sig="),
            "{location}"
        );
        let s_get = location
            .split("/pay/")
            .nth(1)
            .and_then(|rest| rest.split('?').next())
            .unwrap()
            .to_string();
        let c = fenpay::db::apps::find_checkout(&app.state.db, &s_get)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            c.status, "open",
            "submit.php leaves the channel to the page"
        );
        // ... which offers only the type the request named.
        let sig = fenpay::service::apps::checkout_link_signature(&app.state, &s_get);
        let view: Value = app
            .client
            .get(app.url(&format!("/api/v1/checkout/{s_get}?sig={sig}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(view["methods"], serde_json::json!(["alipay"]), "{view}");
        let refused = app
            .client
            .post(app.url(&format!("/api/v1/checkout/{s_get}/pay?sig={sig}")))
            .json(&serde_json::json!({"payment_method": "wechat", "channel": "native"}))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 400);
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["code"], "method_not_offered", "{body}");
        let mut no_type = order_request(&m, "", "S-POST", &notify, "pc");
        no_type.retain(|(k, _)| *k != "type" && *k != "device");
        let resp = post_form(&app, "/epay/submit.php", &signed(&no_type, &m.key)).await;
        assert_eq!(resp.status(), 302);

        // The buyer pays the WeChat QR order; the receiver says `fail` once, then `success`.
        *receiver.fail_first.lock().unwrap() = 1;
        let paid_no = trade_nos["W-PC"].clone();
        pay_at_emulator(&app, "wechat", &paid_no).await;
        app.wait_in_db(&paid_no, "paid").await;
        assert!(
            eventually(|| async { receiver.all().len() >= 2 }).await,
            "the notification was not retried: {:?}",
            receiver.all()
        );
        // Delivered: no third attempt comes.
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        let got = receiver.all();
        assert_eq!(got.len(), 2, "{got:?}");
        for q in &got {
            assert_eq!(get(q, "shop"), Some("1"));
            let mut protocol: Vec<(String, String)> =
                q.iter().filter(|(k, _)| k != "shop").cloned().collect();
            assert_eq!(
                get(&protocol, "sign").unwrap(),
                sign(&protocol, &m.key),
                "{q:?}"
            );
            assert_eq!(get(&protocol, "sign_type"), Some("MD5"));
            assert_eq!(get(&protocol, "pid"), Some(m.pid.as_str()));
            assert_eq!(get(&protocol, "trade_no"), Some(paid_no.as_str()));
            assert_eq!(get(&protocol, "out_trade_no"), Some("W-PC"));
            assert_eq!(get(&protocol, "type"), Some("wxpay"));
            assert_eq!(get(&protocol, "name"), Some("100 积分 points"));
            assert_eq!(get(&protocol, "money"), Some("12.30"));
            assert_eq!(get(&protocol, "trade_status"), Some("TRADE_SUCCESS"));
            assert_eq!(get(&protocol, "param"), Some("uid=7&plan=pro"));
            // Tampered, it no longer verifies.
            set(&mut protocol, "money", "0.01");
            assert_ne!(get(&protocol, "sign").unwrap(), sign(&protocol, &m.key));
        }
        // The buyer's return to the shop carries the same signed parameters, nothing else.
        let sig = fenpay::service::apps::checkout_link_signature(&app.state, &paid_no);
        let resp = app
            .client
            .get(app.url(&format!("/api/v1/checkout/{paid_no}/return?sig={sig}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 302);
        let back = reqwest::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
        assert!(
            back.as_str().starts_with("https://shop.example.com/done?"),
            "{back}"
        );
        let q: Vec<(String, String)> = back.query_pairs().into_owned().collect();
        assert_eq!(get(&q, "sign").unwrap(), sign(&q, &m.key), "{q:?}");
        assert_eq!(get(&q, "trade_status"), Some("TRADE_SUCCESS"));
        assert_eq!(get(&q, "out_trade_no"), Some("W-PC"));
        assert!(
            get(&q, "sig").is_none() && get(&q, "order_no").is_none(),
            "{q:?}"
        );

        // The delivery log: one delivery, delivered on its second attempt.
        let (deliveries, _) =
            fenpay::db::events::list_deliveries(&app.state.db, None, Some(&paid_no), 100, 0)
                .await
                .unwrap();
        let epay: Vec<_> = deliveries
            .iter()
            .filter(|(d, _)| d.endpoint == format!("epay:{}", m.app_id))
            .collect();
        assert_eq!(epay.len(), 1, "{deliveries:?}");
        assert_eq!(epay[0].0.status, "delivered");
        assert_eq!(epay[0].0.attempts, 2);
        // The app has no webhook_url: its own deliveries end at once, not retried for hours.
        let app_endpoint = format!("app:{}", m.app_id);
        assert!(
            eventually(|| async {
                let (all, _) = fenpay::db::events::list_deliveries(
                    &app.state.db,
                    None,
                    Some(&paid_no),
                    100,
                    0,
                )
                .await
                .unwrap();
                let own: Vec<_> = all
                    .iter()
                    .filter(|(d, _)| d.endpoint == app_endpoint)
                    .collect();
                !own.is_empty()
                    && own
                        .iter()
                        .all(|(d, _)| d.status == "failed" && d.attempts == 1)
            })
            .await,
            "deliveries to an app without a webhook_url"
        );

        // api.php?act=order, with the key, by trade_no and by out_trade_no.
        let by_trade = api_get(
            &app,
            &owned(&[
                ("act", "order"),
                ("pid", &m.pid),
                ("key", &m.key),
                ("trade_no", &paid_no),
            ]),
        )
        .await;
        assert_eq!(by_trade["code"], 1, "{by_trade}");
        assert_eq!(by_trade["status"], 1);
        assert_eq!(by_trade["trade_status"], "TRADE_SUCCESS");
        assert_eq!(by_trade["out_trade_no"], "W-PC");
        assert_eq!(by_trade["type"], "wxpay");
        assert_eq!(by_trade["money"], "12.30");
        assert_eq!(by_trade["param"], "uid=7&plan=pro");
        assert_eq!(by_trade["pid"].to_string(), m.pid);
        assert!(
            by_trade["endtime"].as_str().unwrap().len() == 19,
            "{by_trade}"
        );
        // Signed instead of the plain key (as some SDKs ask).
        let signed_query = signed(
            &[("act", "order"), ("pid", &m.pid), ("out_trade_no", "A-PC")],
            &m.key,
        );
        let unpaid = api_get(&app, &signed_query).await;
        assert_eq!(unpaid["code"], 1, "{unpaid}");
        assert_eq!(unpaid["status"], 0);
        assert_eq!(unpaid["type"], "alipay");
        assert_eq!(unpaid["endtime"], "");

        // api.php?act=refund: 5.00 of 12.30; the same request again refunds nothing more.
        let refund = owned(&[
            ("act", "refund"),
            ("pid", &m.pid),
            ("key", &m.key),
            ("trade_no", &paid_no),
            ("money", "5.00"),
        ]);
        let r = api_get(&app, &refund).await;
        assert_eq!(r["code"], 1, "{r}");
        assert_eq!(r["money"], "5.00");
        let again = post_form(&app, "/epay/api.php", &refund)
            .await
            .json::<Value>()
            .await
            .unwrap();
        assert_eq!(again["code"], 1, "{again}");
        assert_eq!(again["out_refund_no"], r["out_refund_no"]);
        assert!(
            eventually(|| async {
                let o = fenpay_tests::order(&app, &paid_no).await;
                o.refunded_fen == 500
            })
            .await
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        assert_eq!(fenpay_tests::order(&app, &paid_no).await.refunded_fen, 500);
        // More than what is left: refused.
        let too_much = owned(&[
            ("act", "refund"),
            ("pid", &m.pid),
            ("key", &m.key),
            ("trade_no", &paid_no),
            ("money", "7.31"),
        ]);
        let r = api_get(&app, &too_much).await;
        assert_eq!(r["code"], -1, "{r}");
        assert_eq!(fenpay_tests::order(&app, &paid_no).await.refunded_fen, 500);
    }
);

both_backends!(
    known_answer_request_is_accepted,
    &overrides(),
    |app: TestApp| async move {
        // The app's pid and key set to the vector's: the server accepts the independently
        // computed signature as it is.
        let m = merchant(&app, "vector").await;
        let mut row = fenpay::db::apps::find(&app.state.db, &m.app_id)
            .await
            .unwrap()
            .unwrap();
        row.epay_pid = Some(20001);
        row.epay_key = Some("k3y".into());
        assert!(fenpay::db::apps::update(&app.state.db, &row).await.unwrap());
        let mut form = owned(&mobile_vector());
        form.push(("sign".into(), "a05fb65e56362746a9f09ee1b970afc2".into()));
        let a = mapi(&app, &form).await;
        assert_eq!(a["code"], 1, "{a}");
        assert!(a["payurl"].as_str().unwrap().starts_with("http"), "{a}");
        // One character of the signature changed: refused.
        set(&mut form, "sign", "a05fb65e56362746a9f09ee1b970afc3");
        set(&mut form, "out_trade_no", "ORDER-43");
        let before = written(&app).await;
        let r = mapi(&app, &form).await;
        assert_eq!(r["code"], -1, "{r}");
        assert_eq!(written(&app).await, before);
    }
);

both_backends!(
    refusals_write_nothing,
    &overrides(),
    |app: TestApp| async move {
        let m = merchant(&app, "shop").await;
        let other = merchant(&app, "other shop").await;
        let notify = "https://shop.example.com/notify";
        // One order exists (for the "same out_trade_no, other parameters" case).
        let first = signed(&order_request(&m, "wxpay", "R-1", notify, "pc"), &m.key);
        let a = mapi(&app, &first).await;
        assert_eq!(a["code"], 1, "{a}");
        let trade_no = a["trade_no"].as_str().unwrap().to_string();
        let before = written(&app).await;

        let base = order_request(&m, "wxpay", "R-2", notify, "pc");
        let mut refusals: Vec<(&str, Vec<(String, String)>)> = Vec::new();
        refusals.push(("wrong key", signed(&base, "not-the-key")));
        let mut tampered = signed(&base, &m.key);
        set(&mut tampered, "money", "0.01");
        refusals.push(("tampered money", tampered));
        let mut no_sign = signed(&base, &m.key);
        no_sign.retain(|(k, _)| k != "sign");
        refusals.push(("no signature", no_sign));
        for money in ["0", "0.00", "-1", "1.001", "1e3", "abc", "12,30", "1000.01"] {
            let mut p = base.clone();
            p.iter_mut().find(|(k, _)| *k == "money").unwrap().1 = money;
            refusals.push(("money", signed(&p, &m.key)));
        }
        for (field, value) in [
            ("type", "qqpay"),
            ("device", "qq"),
            ("out_trade_no", "has space"),
            ("notify_url", "ftp://shop.example.com/n"),
            ("clientip", "nope"),
        ] {
            let mut p = base.clone();
            p.iter_mut().find(|(k, _)| *k == field).unwrap().1 = value;
            refusals.push((field, signed(&p, &m.key)));
        }
        for missing in ["type", "out_trade_no", "notify_url", "name", "money"] {
            let mut p = base.clone();
            p.retain(|(k, _)| *k != missing);
            // submit.php may leave the type to the checkout page; mapi.php may not.
            let what = if missing == "type" {
                "missing type"
            } else {
                "missing"
            };
            refusals.push((what, signed(&p, &m.key)));
        }
        // A return host the app does not allow.
        let mut p = base.clone();
        p.iter_mut().find(|(k, _)| *k == "return_url").unwrap().1 = "https://evil.example.net/x";
        refusals.push(("return host", signed(&p, &m.key)));
        // Unknown pid.
        let mut p = base.clone();
        p.iter_mut().find(|(k, _)| *k == "pid").unwrap().1 = "99";
        refusals.push(("unknown pid", signed(&p, &m.key)));
        // Another app's key for this pid.
        refusals.push(("other app's key", signed(&base, &other.key)));
        // The same out_trade_no with other parameters.
        let mut p = order_request(&m, "wxpay", "R-1", notify, "pc");
        p.iter_mut().find(|(k, _)| *k == "money").unwrap().1 = "99.00";
        refusals.push(("same out_trade_no, other money", signed(&p, &m.key)));
        // A name given twice.
        let mut dup = signed(&base, &m.key);
        dup.push(("name".into(), "again".into()));
        refusals.push(("duplicate", dup));

        for (what, form) in &refusals {
            let a = mapi(&app, form).await;
            assert_eq!(a["code"], -1, "{what}: {a}");
            assert!(!a["msg"].as_str().unwrap().is_empty(), "{what}");
            assert_eq!(written(&app).await, before, "{what} wrote something");
            if *what == "missing type" {
                continue;
            }
            // submit.php refuses the same with a 400 page.
            let resp = post_form(&app, "/epay/submit.php", form).await;
            assert_eq!(resp.status(), 400, "{what}");
            let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
            assert!(
                ct.starts_with("text/html"),
                "{what}: {ct} {}",
                resp.text().await.unwrap()
            );
            assert_eq!(written(&app).await, before, "{what} wrote something");
        }

        // Queries: wrong key, another app's order, unknown order.
        let q = |pid: &str, key: &str, trade: &str| {
            owned(&[
                ("act", "order"),
                ("pid", pid),
                ("key", key),
                ("trade_no", trade),
            ])
        };
        for (what, query) in [
            ("wrong key", q(&m.pid, "nope", &trade_no)),
            ("other app's order", q(&other.pid, &other.key, &trade_no)),
            ("unknown order", q(&m.pid, &m.key, "FP000")),
        ] {
            let a = api_get(&app, &query).await;
            assert_eq!(a["code"], -1, "{what}: {a}");
            assert!(a.get("out_trade_no").is_none(), "{what}: {a}");
        }
        // A refund of another app's order, or with the wrong key: refused.
        for (pid, key) in [(&other.pid, &other.key), (&m.pid, &other.key)] {
            let a = api_get(
                &app,
                &owned(&[
                    ("act", "refund"),
                    ("pid", pid),
                    ("key", key),
                    ("trade_no", &trade_no),
                    ("money", "1.00"),
                ]),
            )
            .await;
            assert_eq!(a["code"], -1, "{a}");
        }

        // Disabled, then revoked: refused, nothing written.
        let mut row = fenpay::db::apps::find(&app.state.db, &m.app_id)
            .await
            .unwrap()
            .unwrap();
        row.epay_enabled = false;
        assert!(fenpay::db::apps::update(&app.state.db, &row).await.unwrap());
        let fresh = signed(&base, &m.key);
        let a = mapi(&app, &fresh).await;
        assert_eq!(a["code"], -1, "{a}");
        assert!(a["msg"].as_str().unwrap().contains("not enabled"), "{a}");
        row.epay_enabled = true;
        assert!(fenpay::db::apps::update(&app.state.db, &row).await.unwrap());
        assert!(fenpay::db::apps::revoke(&app.state.db, &m.app_id)
            .await
            .unwrap());
        let a = mapi(&app, &fresh).await;
        assert_eq!(a["code"], -1, "{a}");
        assert!(a["msg"].as_str().unwrap().contains("revoked"), "{a}");
        let a = api_get(&app, &q(&m.pid, &m.key, &trade_no)).await;
        assert_eq!(a["code"], -1, "{a}");
        assert_eq!(written(&app).await, before);
    }
);
