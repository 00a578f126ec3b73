//! The server API for merchant apps (`/api/v1/merchant/...`): keys, orders with a custom
//! amount or a product, the buyer's choice of method, webhook-only and builtin
//! fulfilment, the app's own signed webhooks, cancels, refunds, and isolation between apps.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use fenpay::db::apps::AppRow;
use fenpay::domain::apps::{Fulfilment, KeyMode};
use fenpay::service::apps::{self as app_service, IssuedApp, NewApp};
use fenpay_tests::*;
use serde_json::{json, Value};

/// One delivery: its `fenpay-signature` header and body.
type Delivery = (String, Vec<u8>);

/// An app's webhook receiver: every delivery's headers and body.
#[derive(Clone, Default)]
struct AppHooks {
    got: Arc<Mutex<Vec<Delivery>>>,
}

impl AppHooks {
    async fn start(&self) -> String {
        let me = self.clone();
        let server = actix_web::HttpServer::new(move || {
            let me = me.clone();
            actix_web::App::new().default_service(actix_web::web::to(
                move |req: actix_web::HttpRequest, body: actix_web::web::Bytes| {
                    let me = me.clone();
                    async move {
                        let sig = req
                            .headers()
                            .get("fenpay-signature")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string();
                        me.got.lock().unwrap().push((sig, body.to_vec()));
                        actix_web::HttpResponse::NoContent().finish()
                    }
                },
            ))
        })
        .workers(1)
        .bind("127.0.0.1:0")
        .expect("bind");
        let addr = server.addrs()[0];
        tokio::spawn(server.run());
        format!("http://{addr}/app-hooks")
    }

    /// Events of `kind` whose signature verifies with `secret`, as JSON.
    fn verified(&self, secret: &str, kind: &str) -> Vec<Value> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|(sig, body)| {
                fenpay::jobs::dispatcher::verify_signature(
                    secret.as_bytes(),
                    sig,
                    body,
                    chrono::Utc::now().timestamp(),
                    300,
                )
            })
            .filter_map(|(_, body)| serde_json::from_slice::<Value>(body).ok())
            .filter(|v| v["type"] == kind)
            .collect()
    }

    fn count(&self) -> usize {
        self.got.lock().unwrap().len()
    }
}

fn overrides() -> Vec<(&'static str, &'static str)> {
    let mut o = TestApp::emulator_overrides();
    o.push(("DISPATCH_INTERVAL_SECS", "1"));
    o
}

async fn new_app(app: &TestApp, name: &str, webhook: Option<String>, f: Fulfilment) -> IssuedApp {
    app_service::create(
        &app.state,
        NewApp {
            name: name.into(),
            mode: KeyMode::Live,
            webhook_url: webhook,
            return_hosts: vec!["shop.example.com".into()],
            fulfilment: f,
            max_amount_fen: Some(100_000),
            epay: false,
        },
    )
    .await
    .expect("create app")
}

async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    key: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut rb = app.client.request(method, app.url(path)).bearer_auth(key);
    if let Some(b) = body {
        rb = rb.json(b);
    }
    into_json(rb.send().await.expect("request")).await
}

async fn post(app: &TestApp, path: &str, key: &str, body: &Value) -> (u16, Value) {
    call(app, reqwest::Method::POST, path, key, Some(body)).await
}

async fn get(app: &TestApp, path: &str, key: &str) -> (u16, Value) {
    call(app, reqwest::Method::GET, path, key, None).await
}

async fn count(app: &TestApp, table: &str) -> i64 {
    app.count(table).await
}

both_backends!(
    custom_amount_webhook_only,
    &overrides(),
    |app: TestApp| async move {
        let hooks = AppHooks::default();
        let url = hooks.start().await;
        let shop = new_app(&app, "AI images", Some(url), Fulfilment::Webhook).await;
        let key = shop.api_key.clone();
        assert!(key.starts_with("sk_live_"), "{key}");
        let body = json!({
            "out_order_no": "IMG-1001",
            "subject": "500 credits",
            "amount_fen": 990,
            "customer_ref": "user-42",
            "payment_method": "wechat",
            "metadata": {"plan": "credits-500", "n": 1},
            "return_url": "https://shop.example.com/done"
        });
        let (s, order) = post(&app, "/api/v1/merchant/orders", &key, &body).await;
        assert_eq!(s, 200, "{order}");
        let no = order["order_no"].as_str().unwrap().to_string();
        assert_eq!(order["status"], "pending");
        assert_eq!(order["amount_fen"], 990);
        assert_eq!(order["amount"], 9.9);
        assert_eq!(order["payment_method"], "wechat");
        assert_eq!(order["channel"], "native");
        assert_eq!(order["fulfilment"], "webhook");
        assert_eq!(order["metadata"]["plan"], "credits-500");
        assert!(
            order["qr_code_url"]
                .as_str()
                .unwrap()
                .starts_with("weixin://"),
            "{order}"
        );
        let checkout = order["checkout_url"].as_str().unwrap();
        assert!(checkout.contains(&format!("/pay/{no}?sig=")), "{checkout}");

        // The same request again: the same order, nothing new.
        let (s, again) = post(&app, "/api/v1/merchant/orders", &key, &body).await;
        assert_eq!(s, 200, "{again}");
        assert_eq!(again["order_no"], no.as_str());
        assert_eq!(count(&app, "orders").await, 1);
        // The same out_order_no with another body: 409, nothing new.
        let mut other = body.clone();
        other["amount_fen"] = json!(991);
        let (s, err) = post(&app, "/api/v1/merchant/orders", &key, &other).await;
        assert_eq!(
            (s, err["code"].as_str()),
            (409, Some("out_order_no_conflict")),
            "{err}"
        );
        assert_eq!(count(&app, "checkouts").await, 1);

        // Read back by number and by the app's own number.
        let (s, got) = get(&app, &format!("/api/v1/merchant/orders/{no}"), &key).await;
        assert_eq!((s, got["out_order_no"].as_str()), (200, Some("IMG-1001")));
        let (s, list) = get(&app, "/api/v1/merchant/orders?out_order_no=IMG-1001", &key).await;
        assert_eq!(s, 200, "{list}");
        assert_eq!(list["items"].as_array().unwrap().len(), 1);

        pay_at_emulator(&app, "wechat", &no).await;
        app.wait_in_db(&no, "paid").await;
        let secret = shop.app.webhook_secret.clone();
        assert!(
            eventually(|| {
                let hooks = hooks.clone();
                let secret = secret.clone();
                async move { !hooks.verified(&secret, "order.paid").is_empty() }
            })
            .await,
            "no verified order.paid reached the app ({} deliveries)",
            hooks.count()
        );
        let paid = hooks.verified(&secret, "order.paid");
        assert_eq!(paid.len(), 1, "{paid:?}");
        let o = &paid[0]["data"]["order"];
        assert_eq!(o["out_order_no"], "IMG-1001");
        assert_eq!(o["customer_ref"], "user-42");
        assert_eq!(o["metadata"], json!({"plan": "credits-500", "n": 1}));
        assert_eq!(o["amount_fen"], 990);
        // A delivery signed with another secret does not verify.
        assert!(hooks.verified("whsec_wrong", "order.paid").is_empty());

        // Webhook fulfilment: fenpay credited nothing, wrote no ledger entry.
        let (s, got) = get(&app, &format!("/api/v1/merchant/orders/{no}"), &key).await;
        assert_eq!((s, got["status"].as_str()), (200, Some("paid")), "{got}");
        assert_eq!(count(&app, "balance_entries").await, 0);

        // Refunds: a number (or an Idempotency-Key) is required so retries never refund twice.
        let (s, err) = post(
            &app,
            "/api/v1/merchant/refunds",
            &key,
            &json!({"order_no": no, "amount_fen": 100}),
        )
        .await;
        assert_eq!(
            (s, err["code"].as_str()),
            (400, Some("out_refund_no_required")),
            "{err}"
        );
        let r = json!({"order_no": no, "amount_fen": 100, "out_refund_no": "IMG-1001-R1"});
        let (s, refund) = post(&app, "/api/v1/merchant/refunds", &key, &r).await;
        assert_eq!(s, 200, "{refund}");
        let (s, again) = post(&app, "/api/v1/merchant/refunds", &key, &r).await;
        assert_eq!(s, 200, "{again}");
        assert_eq!(count(&app, "refunds").await, 1);

        // A paid order cannot be cancelled.
        let (s, err) = post(
            &app,
            &format!("/api/v1/merchant/orders/{no}/cancel"),
            &key,
            &json!({}),
        )
        .await;
        assert_eq!(
            (s, err["code"].as_str()),
            (409, Some("order_already_paid")),
            "{err}"
        );
    }
);

both_backends!(
    isolation_and_keys,
    &overrides(),
    |app: TestApp| async move {
        let a = new_app(&app, "A", None, Fulfilment::Webhook).await;
        let b = new_app(&app, "B", None, Fulfilment::Webhook).await;
        let body = json!({"out_order_no": "X1", "subject": "thing", "amount_fen": 100});
        let (s, order) = post(&app, "/api/v1/merchant/orders", &a.api_key, &body).await;
        assert_eq!(s, 200, "{order}");
        let no = order["order_no"].as_str().unwrap().to_string();
        assert!(order["payment_method"].is_null());
        // The same out_order_no is another order for another app.
        let (s, theirs) = post(&app, "/api/v1/merchant/orders", &b.api_key, &body).await;
        assert_eq!(s, 200, "{theirs}");
        assert_ne!(theirs["order_no"], no.as_str());
        // B cannot see, cancel or refund A's order.
        let (s, _) = get(&app, &format!("/api/v1/merchant/orders/{no}"), &b.api_key).await;
        assert_eq!(s, 404);
        let (s, _) = post(
            &app,
            &format!("/api/v1/merchant/orders/{no}/cancel"),
            &b.api_key,
            &json!({}),
        )
        .await;
        assert_eq!(s, 404);
        let (s, _) = post(
            &app,
            "/api/v1/merchant/refunds",
            &b.api_key,
            &json!({"order_no": no, "out_refund_no": "RB0001"}),
        )
        .await;
        assert_eq!(s, 404);
        let (s, list) = get(&app, "/api/v1/merchant/orders?out_order_no=X1", &b.api_key).await;
        assert_eq!(s, 200);
        assert_eq!(list["items"][0]["order_no"], theirs["order_no"]);

        // Keys: wrong, malformed, a user's JWT, then revoked -> 401 at once.
        for bad in [
            "sk_live_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "sk_live_short",
            "nonsense",
        ] {
            let (s, err) = get(&app, "/api/v1/merchant/orders", bad).await;
            assert_eq!(
                (s, err["code"].as_str()),
                (401, Some("unauthorized")),
                "{bad}: {err}"
            );
        }
        let user = app.signup("merchant_user").await;
        let (s, _) = get(&app, "/api/v1/merchant/orders", &user).await;
        assert_eq!(s, 401);
        let (s, _) = get(&app, &format!("/api/v1/merchant/orders/{no}"), &a.api_key).await;
        assert_eq!(s, 200);
        assert!(fenpay::db::apps::revoke(&app.state.db, &a.app.id)
            .await
            .unwrap());
        let (s, err) = get(&app, &format!("/api/v1/merchant/orders/{no}"), &a.api_key).await;
        assert_eq!(
            (s, err["code"].as_str()),
            (401, Some("unauthorized")),
            "{err}"
        );
        let (s, _) = post(
            &app,
            "/api/v1/merchant/orders",
            &a.api_key,
            &json!({"out_order_no": "X2", "subject": "t", "amount_fen": 1}),
        )
        .await;
        assert_eq!(s, 401);
        assert_eq!(count(&app, "checkouts").await, 2);

        // Bad input: a clear 400 with its code, nothing written.
        let cases = [
            (
                json!({"out_order_no": "bad no", "subject": "t", "amount_fen": 1}),
                "invalid_out_order_no",
            ),
            (
                json!({"out_order_no": "Y", "subject": "t", "amount_fen": 0}),
                "invalid_amount",
            ),
            (
                json!({"out_order_no": "Y", "subject": "t", "amount_fen": 100_001}),
                "invalid_amount",
            ),
            (
                json!({"out_order_no": "Y", "subject": "t", "amount_fen": -5}),
                "invalid_amount",
            ),
            (
                json!({"out_order_no": "Y", "amount_fen": 5}),
                "invalid_subject",
            ),
            (
                json!({"out_order_no": "Y", "subject": "t"}),
                "amount_or_product",
            ),
            (
                json!({"out_order_no": "Y", "subject": "t", "amount_fen": 5, "product_id": 1}),
                "amount_or_product",
            ),
            (
                json!({"out_order_no": "Y", "subject": "t", "amount_fen": 5, "metadata": [1]}),
                "invalid_metadata",
            ),
            (
                json!({"out_order_no": "Y", "subject": "t", "amount_fen": 5, "metadata": {"k": "x".repeat(5000)}}),
                "invalid_metadata",
            ),
            (
                json!({"out_order_no": "Y", "subject": "t", "amount_fen": 5, "return_url": "https://evil.example.net/x"}),
                "invalid_return_url",
            ),
            (
                json!({"out_order_no": "Y", "subject": "t", "amount_fen": 5, "return_url": "javascript:alert(1)"}),
                "invalid_return_url",
            ),
            (
                json!({"out_order_no": "Y", "subject": "t", "amount_fen": 5, "channel": "h5"}),
                "channel_without_method",
            ),
            (
                json!({"out_order_no": "Y", "subject": "t", "amount_fen": 5, "payment_method": "wechat", "channel": "jsapi"}),
                "openid_required",
            ),
            (
                json!({"out_order_no": "Y", "subject": "t", "amount_fen": 5, "expire_minutes": 0}),
                "invalid_expire_minutes",
            ),
            (
                json!({"out_order_no": "Y", "subject": "t", "amount_fen": 5, "customer_ref": "a b"}),
                "invalid_customer_ref",
            ),
        ];
        for (body, code) in cases {
            let (s, err) = post(&app, "/api/v1/merchant/orders", &b.api_key, &body).await;
            assert_eq!(
                (s, err["code"].as_str()),
                (400, Some(code)),
                "{body}: {err}"
            );
        }
        let (s, err) = post(
            &app,
            "/api/v1/merchant/orders",
            &b.api_key,
            &json!({"out_order_no": "Y", "amount_fen": 5, "subject": "t", "surprise": 1}),
        )
        .await;
        assert_eq!(s, 400, "{err}");
        assert_eq!(count(&app, "checkouts").await, 2);
        assert_eq!(count(&app, "orders").await, 0);
    }
);

both_backends!(
    buyer_chooses_once,
    &overrides(),
    |app: TestApp| async move {
        let shop = new_app(&app, "Shop", None, Fulfilment::Webhook).await;
        let key = shop.api_key.clone();
        let (s, order) = post(
            &app,
            "/api/v1/merchant/orders",
            &key,
            &json!({"out_order_no": "C1", "subject": "t", "amount_fen": 300}),
        )
        .await;
        assert_eq!(s, 200, "{order}");
        let no = order["order_no"].as_str().unwrap().to_string();
        assert_eq!(order["status"], "pending");
        assert!(order["qr_code_url"].is_null());
        assert_eq!(count(&app, "orders").await, 0);

        // Two choices at once (WeChat and Alipay): exactly one order, one method.
        use api_types::payment::{PaymentChannel, PaymentMethod};
        let st = app.state.clone();
        let (w, a) = tokio::join!(
            fenpay::service::merchant::choose(
                &st,
                &no,
                PaymentMethod::Wechat,
                PaymentChannel::Native,
                None,
                "127.0.0.1".into()
            ),
            fenpay::service::merchant::choose(
                &st,
                &no,
                PaymentMethod::Alipay,
                PaymentChannel::Native,
                None,
                "127.0.0.1".into()
            ),
        );
        let loser = match (w, a) {
            (Ok(_), Err(e)) | (Err(e), Ok(_)) => e,
            other => panic!("exactly one choice wins: {other:?}"),
        };
        assert!(
            loser.to_string().contains("another payment method"),
            "{loser}"
        );
        assert_eq!(count(&app, "orders").await, 1);
        let (_, got) = get(&app, &format!("/api/v1/merchant/orders/{no}"), &key).await;
        let method = got["payment_method"].as_str().unwrap().to_string();
        assert!(got["qr_code_url"].is_string(), "{got}");
        // The same choice again returns the order as it is.
        let again = fenpay::service::merchant::choose(
            &st,
            &no,
            if method == "wechat" {
                PaymentMethod::Wechat
            } else {
                PaymentMethod::Alipay
            },
            PaymentChannel::Native,
            None,
            "127.0.0.1".into(),
        )
        .await
        .expect("same choice");
        assert_eq!(
            again.qr_code_url,
            got["qr_code_url"].as_str().map(String::from)
        );

        // Cancel before any choice: the checkout closes; a later choice is refused.
        let (_, open) = post(
            &app,
            "/api/v1/merchant/orders",
            &key,
            &json!({"out_order_no": "C2", "subject": "t", "amount_fen": 300}),
        )
        .await;
        let open_no = open["order_no"].as_str().unwrap().to_string();
        let (s, cancelled) = post(
            &app,
            &format!("/api/v1/merchant/orders/{open_no}/cancel"),
            &key,
            &json!({}),
        )
        .await;
        assert_eq!(
            (s, cancelled["status"].as_str()),
            (200, Some("cancelled")),
            "{cancelled}"
        );
        let err = fenpay::service::merchant::choose(
            &st,
            &open_no,
            PaymentMethod::Wechat,
            PaymentChannel::Native,
            None,
            "127.0.0.1".into(),
        )
        .await
        .unwrap_err();
        assert!(
            err.to_string().contains("cancelled or has expired"),
            "{err}"
        );
        assert_eq!(count(&app, "orders").await, 1);

        // Cancel after the choice: closed at the provider, the order cancelled.
        let (s, c) = post(
            &app,
            &format!("/api/v1/merchant/orders/{no}/cancel"),
            &key,
            &json!({}),
        )
        .await;
        assert_eq!((s, c["status"].as_str()), (200, Some("cancelled")), "{c}");

        // A provider failure leaves the order open; the same request again opens the trade.
        faults(&app, json!({"fail_requests_next": 1})).await;
        let body = json!({"out_order_no": "C3", "subject": "t", "amount_fen": 300, "payment_method": "alipay"});
        let (s, err) = post(&app, "/api/v1/merchant/orders", &key, &body).await;
        assert_eq!(
            (s, err["code"].as_str()),
            (502, Some("provider_unavailable")),
            "{err}"
        );
        // The trade may exist at the provider: the order keeps its number and stays pending
        // with nothing to pay with (never reopened for another method under that number).
        let (_, list) = get(&app, "/api/v1/merchant/orders?out_order_no=C3", &key).await;
        let waiting = &list["items"][0];
        assert_eq!(waiting["status"], "pending", "{list}");
        assert_eq!(waiting["payment_method"], "alipay", "{list}");
        assert!(waiting["qr_code_url"].is_null(), "{list}");
        let (s, retry) = post(&app, "/api/v1/merchant/orders", &key, &body).await;
        assert_eq!(s, 200, "{retry}");
        assert_eq!(retry["payment_method"], "alipay");
        assert!(retry["qr_code_url"].is_string(), "{retry}");
        assert_eq!(count(&app, "checkouts").await, 3);
    }
);

both_backends!(
    builtin_product_credits_the_customer,
    &overrides(),
    |app: TestApp| async move {
        let shop = new_app(&app, "Points shop", None, Fulfilment::Builtin).await;
        let key = shop.api_key.clone();
        let (s, order) = post(&app, "/api/v1/merchant/orders", &key, &json!({
        "out_order_no": "P1", "product_id": 1, "quantity": 2, "customer_ref": "buyer-7", "payment_method": "alipay"
    })).await;
        assert_eq!(s, 200, "{order}");
        let no = order["order_no"].as_str().unwrap().to_string();
        let product = fenpay::db::products::find(&app.state.db, 1)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(order["amount_fen"], product.price_fen * 2);
        assert_eq!(order["subject"], product.name.as_str());
        pay_at_emulator(&app, "alipay", &no).await;
        app.wait_in_db(&no, "paid").await;
        let account = fenpay::db::apps::account_of(&app.state.db, &shop.app.id, "buyer-7")
            .await
            .unwrap()
            .expect("the customer's account");
        let acc = fenpay::db::ledger::read_account(&app.state.db, &account)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(acc.points, product.points.unwrap() * 2);
        let admin = app.admin("boss").await;
        let (s, check) = app.get("/api/v1/admin/ledger/verify", Some(&admin)).await;
        assert_eq!(s, 200);
        assert_eq!(check["mismatches"], json!([]), "{check}");
        // The app's own account holds nothing; its customer is one account for every order.
        let (s, second) = post(
            &app,
            "/api/v1/merchant/orders",
            &key,
            &json!({"out_order_no": "P2", "product_id": 1, "customer_ref": "buyer-7"}),
        )
        .await;
        assert_eq!(s, 200, "{second}");
        let c =
            fenpay::db::apps::find_checkout(&app.state.db, second["order_no"].as_str().unwrap())
                .await
                .unwrap()
                .unwrap();
        assert_eq!(c.user_id, account);
        let _: &AppRow = &shop.app;
    }
);
