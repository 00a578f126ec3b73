//! The hosted checkout page's public API (`/api/v1/checkout/...`) and the emulator's
//! WeChat web authorisation, on both backends: the view, the buyer's choice of each method
//! and channel, a choice race, links without a valid `sig`, expired orders, the in-WeChat
//! JSAPI flow through OAuth end to end, the signed return redirect, and live status.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use fenpay::domain::apps::{return_signature, Fulfilment, KeyMode};
use fenpay::service::apps::{self as app_service, NewApp};
use fenpay_tests::{both_backends, into_json, sse_statuses, TestApp};
use serde_json::{json, Value};

fn emu() -> Vec<(&'static str, &'static str)> {
    TestApp::emulator_overrides()
}

struct Shop {
    key: String,
    webhook_secret: String,
}

async fn shop(app: &TestApp) -> Shop {
    let issued = app_service::create(
        &app.state,
        NewApp {
            name: "Pixel Studio".into(),
            mode: KeyMode::Test,
            webhook_url: None,
            return_hosts: vec!["shop.example".into(), "127.0.0.1".into()],
            fulfilment: Fulfilment::Webhook,
            max_amount_fen: None,
            epay: false,
        },
    )
    .await
    .unwrap();
    Shop {
        key: issued.api_key,
        webhook_secret: issued.app.webhook_secret,
    }
}

/// A merchant order with `extra` fields; returns it (with `checkout_url`).
async fn order(app: &TestApp, shop: &Shop, out: &str, extra: Value) -> Value {
    let mut body = json!({"out_order_no": out, "subject": "100 credits", "amount_fen": 1234});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let (status, order) = app
        .post("/api/v1/merchant/orders", &body, Some(&shop.key))
        .await;
    assert!(status == 200 || status == 201, "{status} {order}");
    order
}

/// `(order_no, sig)` from a checkout URL.
fn link(order: &Value) -> (String, String) {
    let url = order["checkout_url"].as_str().unwrap();
    let (path, sig) = url.split_once("?sig=").unwrap();
    let order_no = path.rsplit('/').next().unwrap().to_string();
    assert_eq!(order_no, order["order_no"].as_str().unwrap());
    assert_eq!(sig.len(), 32);
    (order_no, sig.to_string())
}

async fn view(app: &TestApp, no: &str, sig: &str) -> (u16, Value) {
    app.get(&format!("/api/v1/checkout/{no}?sig={sig}"), None)
        .await
}

async fn pay(app: &TestApp, no: &str, sig: &str, method: &str, channel: &str) -> (u16, Value) {
    app.post(
        &format!("/api/v1/checkout/{no}/pay?sig={sig}"),
        &json!({"payment_method": method, "channel": channel}),
        None,
    )
    .await
}

async fn location(app: &TestApp, url: &str) -> (u16, String) {
    let resp = app.client.get(url).send().await.unwrap();
    let status = resp.status().as_u16();
    let loc = resp
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, loc)
}

fn query_of(url: &str) -> Vec<(String, String)> {
    let q = url.split_once('?').map_or("", |(_, q)| q);
    let q = q.split('#').next().unwrap_or("");
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_string(), urlencoding::decode(v).unwrap().into_owned())
        })
        .collect()
}

fn param(url: &str, name: &str) -> Option<String> {
    query_of(url)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

both_backends!(
    view_shows_the_order_without_secrets,
    &emu(),
    |app: TestApp| async move {
        let shop = shop(&app).await;
        let o = order(
            &app,
            &shop,
            "v-1",
            json!({"return_url": "https://shop.example/done", "metadata": {"user": 7}, "customer_ref": "u7"}),
        )
        .await;
        let (no, sig) = link(&o);
        let (status, v) = view(&app, &no, &sig).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["order_no"], no.as_str());
        assert_eq!(v["app_name"], "Pixel Studio");
        assert_eq!(v["subject"], "100 credits");
        assert_eq!(v["amount_fen"], 1234);
        assert_eq!(v["amount"], json!(12.34));
        assert_eq!(v["status"], "pending");
        assert_eq!(v["payment_method"], Value::Null);
        assert_eq!(v["methods"], json!(["wechat", "alipay"]));
        assert_eq!(v["has_return"], true);
        // Nothing of the app's own data or the buyer's reaches the page.
        let text = v.to_string();
        for secret in ["u7", "\"user\"", "shop.example", "out_order_no", "v-1"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        let o2 = order(&app, &shop, "v-2", json!({})).await;
        let (no2, sig2) = link(&o2);
        assert_eq!(view(&app, &no2, &sig2).await.1["has_return"], false);
    }
);

both_backends!(
    links_without_a_valid_sig_are_404,
    &emu(),
    |app: TestApp| async move {
        let shop = shop(&app).await;
        let o = order(
            &app,
            &shop,
            "s-1",
            json!({"return_url": "https://shop.example/r"}),
        )
        .await;
        let (no, sig) = link(&o);
        let (_, other_sig) = link(&order(&app, &shop, "s-2", json!({})).await);
        let wrong = format!(
            "{}{}",
            &sig[..31],
            if sig.ends_with('0') { '1' } else { '0' }
        );
        for bad in [
            None,
            Some(String::new()),
            Some(wrong),
            Some(other_sig),
            Some(sig.to_uppercase()),
        ] {
            let q = match &bad {
                None => "?x=1".to_string(),
                Some(s) => format!("?sig={s}"),
            };
            for (method, path) in [
                ("GET", format!("/api/v1/checkout/{no}{q}")),
                ("POST", format!("/api/v1/checkout/{no}/pay{q}")),
                ("GET", format!("/api/v1/checkout/{no}/events{q}")),
                ("GET", format!("/api/v1/checkout/{no}/return{q}")),
                ("GET", format!("/api/v1/checkout/{no}/wechat-oauth{q}")),
                (
                    "GET",
                    format!("/api/v1/checkout/{no}/wechat-oauth/callback{q}&code=x&state=y"),
                ),
                ("POST", format!("/api/v1/checkout/{no}/simulate-pay{q}")),
            ] {
                let req = match method {
                    "GET" => app.client.get(app.url(&path)),
                    _ => app
                        .client
                        .post(app.url(&path))
                        .json(&json!({"payment_method": "wechat", "channel": "native"})),
                };
                let (status, body) = into_json(req.send().await.unwrap()).await;
                assert_eq!(status, 404, "{method} {path}: {body}");
                assert_eq!(body["code"], "not_found", "{path}");
            }
        }
        // A valid-looking link for an order that does not exist.
        let (status, _) = view(&app, "FP20990101000000000000", &sig).await;
        assert_eq!(status, 404);
        // Nothing was chosen by any of it.
        assert_eq!(view(&app, &no, &sig).await.1["payment_method"], Value::Null);
    }
);

both_backends!(
    the_buyer_chooses_each_method_and_channel,
    &emu(),
    |app: TestApp| async move {
        let shop = shop(&app).await;
        let cases = [
            (
                "wechat",
                "native",
                "qr_code_url",
                "weixin://wxpay/bizpayurl?pr=",
            ),
            ("wechat", "h5", "h5_url", "https://wx.tenpay.com/"),
            ("alipay", "native", "qr_code_url", "https://qr.alipay.com/"),
            ("alipay", "wap", "pay_url", ""),
            ("alipay", "page", "pay_url", ""),
        ];
        for (i, (method, channel, field, prefix)) in cases.into_iter().enumerate() {
            let o = order(&app, &shop, &format!("c-{i}"), json!({})).await;
            let (no, sig) = link(&o);
            let (status, v) = pay(&app, &no, &sig, method, channel).await;
            assert_eq!(status, 200, "{method}/{channel}: {v}");
            assert_eq!(v["payment_method"], method);
            assert_eq!(v["channel"], channel);
            assert_eq!(v["status"], "pending");
            let target = v[field].as_str().unwrap_or_default().to_string();
            assert!(
                !target.is_empty() && target.starts_with(prefix),
                "{method}/{channel}: {v}"
            );
            // The same choice again: the same targets, nothing new at the provider.
            let (status, again) = pay(&app, &no, &sig, method, channel).await;
            assert_eq!(status, 200, "{again}");
            assert_eq!(again[field], v[field]);
            // Another method: refused.
            let other = if method == "wechat" {
                "alipay"
            } else {
                "wechat"
            };
            let (status, body) = pay(&app, &no, &sig, other, "native").await;
            assert_eq!(status, 409, "{body}");
            assert_eq!(body["code"], "method_already_chosen");
            // The page shows what was chosen.
            let (_, shown) = view(&app, &no, &sig).await;
            assert_eq!(shown["payment_method"], method);
            assert_eq!(shown[field], v[field]);
        }
        // Not for a web page: the app channel; JSAPI without the OAuth step.
        let o = order(&app, &shop, "c-x", json!({})).await;
        let (no, sig) = link(&o);
        let (status, body) = pay(&app, &no, &sig, "wechat", "app").await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("unsupported_channel")),
            "{body}"
        );
        let (status, body) = pay(&app, &no, &sig, "wechat", "jsapi").await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("openid_required")),
            "{body}"
        );
        assert_eq!(view(&app, &no, &sig).await.1["payment_method"], Value::Null);
    }
);

both_backends!(
    two_concurrent_choices_make_one_order,
    &emu(),
    |app: TestApp| async move {
        let shop = shop(&app).await;
        for round in 0..3 {
            let o = order(&app, &shop, &format!("race-{round}"), json!({})).await;
            let (no, sig) = link(&o);
            let (a, b) = tokio::join!(
                pay(&app, &no, &sig, "wechat", "native"),
                pay(&app, &no, &sig, "alipay", "native")
            );
            let mut statuses = [a.0, b.0];
            statuses.sort();
            assert_eq!(statuses, [200, 409], "{a:?} {b:?}");
            let loser = if a.0 == 409 { &a.1 } else { &b.1 };
            assert_eq!(loser["code"], "method_already_chosen");
            let winner = if a.0 == 200 { &a.1 } else { &b.1 };
            let won = winner["payment_method"].as_str().unwrap();
            let lost = if won == "wechat" { "alipay" } else { "wechat" };
            let row = fenpay_tests::order(&app, &no).await;
            assert_eq!(row.provider, won);
            // Only the winner's trade exists at a provider.
            let emu = app.emulator();
            let at = |p: &str| {
                let url = format!("{emu}/__emulator/{p}/trades/{no}");
                let client = app.client.clone();
                async move { client.get(url).send().await.unwrap().status().as_u16() }
            };
            assert_eq!(at(won).await, 200);
            assert_eq!(at(lost).await, 404);
        }
    }
);

both_backends!(
    an_expired_order_cannot_be_chosen,
    &emu(),
    |app: TestApp| async move {
        let shop = shop(&app).await;
        let o = order(
            &app,
            &shop,
            "e-1",
            json!({"return_url": "https://shop.example/r"}),
        )
        .await;
        let (no, sig) = link(&o);
        app.sql(&format!(
            "UPDATE checkouts SET expire_at = '2000-01-01 00:00:00' WHERE order_no = '{no}'"
        ))
        .await;
        let (status, body) = pay(&app, &no, &sig, "wechat", "native").await;
        assert_eq!(status, 409, "{body}");
        assert_eq!(body["code"], "order_not_pending");
        let (_, v) = view(&app, &no, &sig).await;
        assert_eq!(v["status"], "cancelled");
        assert_eq!(v["payment_method"], Value::Null);
        let row = fenpay::db::orders::find(&app.state.db, &no).await.unwrap();
        assert!(row.is_none(), "no order row for an expired checkout");
        // Inside WeChat too.
        let (status, _) = location(
            &app,
            &app.url(&format!("/api/v1/checkout/{no}/wechat-oauth?sig={sig}")),
        )
        .await;
        assert_eq!(status, 409);
        // The way back still works, and says so.
        let (status, to) = location(
            &app,
            &app.url(&format!("/api/v1/checkout/{no}/return?sig={sig}")),
        )
        .await;
        assert_eq!(status, 302);
        assert_eq!(param(&to, "status").as_deref(), Some("cancelled"));
    }
);

both_backends!(
    in_wechat_oauth_then_jsapi_end_to_end,
    &emu(),
    |app: TestApp| async move {
        let shop = shop(&app).await;
        let o = order(&app, &shop, "w-1", json!({})).await;
        let (no, sig) = link(&o);
        let emulator = app.emulator();

        // 1. The page sends the buyer to WeChat's authorize URL.
        let (status, authorize) = location(
            &app,
            &app.url(&format!("/api/v1/checkout/{no}/wechat-oauth?sig={sig}")),
        )
        .await;
        assert_eq!(status, 302);
        assert!(
            authorize.starts_with(&format!(
                "{emulator}/connect/oauth2/authorize?appid=wxd0000000000emu01&redirect_uri="
            )),
            "{authorize}"
        );
        assert!(authorize.ends_with("#wechat_redirect"), "{authorize}");
        assert_eq!(param(&authorize, "response_type").as_deref(), Some("code"));
        assert_eq!(param(&authorize, "scope").as_deref(), Some("snsapi_base"));
        let state = param(&authorize, "state").unwrap();
        assert!(
            state.len() <= 128 && state.bytes().all(|b| b.is_ascii_alphanumeric()),
            "{state}"
        );
        let redirect_uri = param(&authorize, "redirect_uri").unwrap();
        assert!(
            redirect_uri.starts_with(
                &app.url(&format!("/api/v1/checkout/{no}/wechat-oauth/callback?sig="))
            ),
            "{redirect_uri}"
        );

        // 2. WeChat (the emulator) comes straight back with a code (snsapi_base).
        let without_fragment = authorize.split('#').next().unwrap();
        let (status, callback) = location(&app, without_fragment).await;
        assert_eq!(status, 302);
        assert!(callback.starts_with(&redirect_uri), "{callback}");
        assert_eq!(param(&callback, "state").as_deref(), Some(state.as_str()));
        let code = param(&callback, "code").unwrap();
        assert_eq!(code.len(), 32);

        // 3. The callback exchanges it, chooses JSAPI and returns to the page.
        let (status, page) = location(&app, &callback).await;
        assert_eq!(status, 302);
        assert_eq!(page, format!("/pay/{no}?sig={sig}"));

        // 4. The page has the JSAPI parameters; the openid is nowhere in them.
        let (_, v) = view(&app, &no, &sig).await;
        assert_eq!(v["payment_method"], "wechat");
        assert_eq!(v["channel"], "jsapi");
        let p = &v["sdk_params"];
        assert_eq!(p["appId"], "wxd0000000000emu01");
        assert_eq!(p["signType"], "RSA");
        assert!(
            p["package"].as_str().unwrap().starts_with("prepay_id=wx"),
            "{p}"
        );
        assert!(!p["paySign"].as_str().unwrap().is_empty());
        let trade: Value = app
            .client
            .get(format!("{emulator}/__emulator/wechat/trades/{no}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let openid = trade["payer_openid"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert_eq!(openid.len(), 28, "{trade}");
        for text in [&authorize, &callback, &page, &v.to_string()] {
            assert!(!text.contains(&openid), "openid leaked into {text}");
        }
        let merchant: Value = app
            .get(&format!("/api/v1/merchant/orders/{no}"), Some(&shop.key))
            .await
            .1;
        assert!(
            !merchant.to_string().contains(&openid),
            "openid reached the app: {merchant}"
        );

        // 5. WeChatPay in the page pays it (the emulator as the buyer).
        fenpay_tests::pay_at_emulator(&app, "wechat", &no).await;
        app.wait_in_db(&no, "paid").await;
        assert_eq!(view(&app, &no, &sig).await.1["status"], "paid");

        // A replayed callback (the code is used) changes nothing and says why.
        let (status, again) = location(&app, &callback).await;
        assert_eq!(status, 302);
        assert_eq!(
            param(&again, "wechat_error").as_deref(),
            Some("wechat_oauth_failed")
        );

        // A forged or stale state never reaches WeChat's token endpoint with a choice.
        let o2 = order(&app, &shop, "w-2", json!({})).await;
        let (no2, sig2) = link(&o2);
        for bad_state in [
            state.clone(),
            "1h00".to_string(),
            format!("{}h{}", chrono::Utc::now().timestamp() + 60, "0".repeat(32)),
        ] {
            let (status, to) = location(
                &app,
                &app.url(&format!(
                    "/api/v1/checkout/{no2}/wechat-oauth/callback?sig={sig2}&code=abc&state={bad_state}"
                )),
            )
            .await;
            assert_eq!(status, 302);
            assert_eq!(
                param(&to, "wechat_error").as_deref(),
                Some("wechat_oauth_expired"),
                "{bad_state}"
            );
        }
        assert_eq!(
            view(&app, &no2, &sig2).await.1["payment_method"],
            Value::Null
        );
    }
);

both_backends!(
    emulator_oauth_refuses_what_wechat_refuses,
    &emu(),
    |app: TestApp| async move {
        let emulator = app.emulator();
        let cb = urlencoding::encode("http://127.0.0.1:9/cb?x=1").into_owned();
        let authorize = |appid: &str, redirect: &str| {
            format!("{emulator}/connect/oauth2/authorize?appid={appid}&redirect_uri={redirect}&response_type=code&scope=snsapi_base&state=s1")
        };
        // Unknown appid, unconfigured domain: WeChat's error page, no redirect.
        for (url, code) in [
            (authorize("wx_unknown", &cb), "10016"),
            (
                authorize(
                    "wxd0000000000emu01",
                    &urlencoding::encode("https://evil.example/cb"),
                ),
                "10003",
            ),
            (authorize("wxd0000000000emu01", ""), "10011"),
        ] {
            let resp = app.client.get(&url).send().await.unwrap();
            assert_eq!(resp.status().as_u16(), 200, "{url}");
            assert!(resp.headers().get("location").is_none());
            let body = resp.text().await.unwrap();
            assert!(body.contains(code), "{url}: {body}");
        }
        // A good one: the redirect keeps redirect_uri's own query.
        let (status, to) = location(&app, &authorize("wxd0000000000emu01", &cb)).await;
        assert_eq!(status, 302);
        assert!(to.starts_with("http://127.0.0.1:9/cb?x=1&code="), "{to}");
        assert_eq!(param(&to, "state").as_deref(), Some("s1"));
        let code = param(&to, "code").unwrap();

        let token = |secret: &str, code: &str| {
            format!("{emulator}/sns/oauth2/access_token?appid=wxd0000000000emu01&secret={secret}&code={code}&grant_type=authorization_code")
        };
        let get = |url: String| {
            let client = app.client.clone();
            async move {
                client
                    .get(url)
                    .send()
                    .await
                    .unwrap()
                    .json::<Value>()
                    .await
                    .unwrap()
            }
        };
        let secret = fenpay::emulator::wechat_oauth::DEV_APP_SECRET;
        let wrong = get(token("0".repeat(32).as_str(), &code)).await;
        assert_eq!(
            wrong,
            json!({"errcode": 40125, "errmsg": "invalid appsecret"})
        );
        let unknown = get(token(secret, "nosuchcode")).await;
        assert_eq!(unknown, json!({"errcode": 40029, "errmsg": "invalid code"}));
        // The wrong secret did not use the code up.
        let ok = get(token(secret, &code)).await;
        assert_eq!(ok["expires_in"], 7200, "{ok}");
        assert_eq!(ok["scope"], "snsapi_base");
        assert!(ok["access_token"].as_str().is_some_and(|t| !t.is_empty()));
        assert!(ok["refresh_token"].as_str().is_some_and(|t| !t.is_empty()));
        let openid = ok["openid"].as_str().unwrap().to_string();
        assert!(openid.starts_with('o') && openid.len() == 28);
        let used = get(token(secret, &code)).await;
        assert_eq!(used, json!({"errcode": 40029, "errmsg": "invalid code"}));

        // The same browser (cookie) is the same WeChat user: the same openid.
        let mut ids = Vec::new();
        let mut cookie = String::new();
        for _ in 0..2 {
            let resp = app
                .client
                .get(authorize("wxd0000000000emu01", &cb))
                .header("cookie", cookie.clone())
                .send()
                .await
                .unwrap();
            if let Some(set) = resp.headers().get("set-cookie") {
                cookie = set.to_str().unwrap().split(';').next().unwrap().to_string();
            }
            let to = resp.headers()["location"].to_str().unwrap().to_string();
            let code = param(&to, "code").unwrap();
            ids.push(
                get(token(secret, &code)).await["openid"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        }
        assert_eq!(ids[0], ids[1]);
    }
);

both_backends!(
    return_redirect_is_signed_for_the_app,
    &emu(),
    |app: TestApp| async move {
        let shop = shop(&app).await;
        let o = order(
            &app,
            &shop,
            "r-1",
            json!({"return_url": "https://shop.example/thanks?from=fenpay"}),
        )
        .await;
        let (no, sig) = link(&o);
        let ret = app.url(&format!("/api/v1/checkout/{no}/return?sig={sig}"));
        let verify = |to: &str, want: &str| {
            assert!(
                to.starts_with("https://shop.example/thanks?from=fenpay&"),
                "{to}"
            );
            assert_eq!(param(to, "order_no").as_deref(), Some(no.as_str()));
            assert_eq!(param(to, "out_order_no").as_deref(), Some("r-1"));
            assert_eq!(param(to, "status").as_deref(), Some(want));
            let expected = return_signature(shop.webhook_secret.as_bytes(), &no, "r-1", want);
            assert_eq!(param(to, "sig").as_deref(), Some(expected.as_str()), "{to}");
            // Another status under the same signature does not verify.
            assert_ne!(
                return_signature(shop.webhook_secret.as_bytes(), &no, "r-1", "paid"),
                return_signature(shop.webhook_secret.as_bytes(), &no, "r-1", "pending")
            );
        };
        let (status, to) = location(&app, &ret).await;
        assert_eq!(status, 302);
        verify(&to, "pending");

        let (status, _) = pay(&app, &no, &sig, "alipay", "native").await;
        assert_eq!(status, 200);
        fenpay_tests::pay_at_emulator(&app, "alipay", &no).await;
        app.wait_in_db(&no, "paid").await;
        let (status, to) = location(&app, &ret).await;
        assert_eq!(status, 302);
        verify(&to, "paid");

        // No return_url: 404.
        let o2 = order(&app, &shop, "r-2", json!({})).await;
        let (no2, sig2) = link(&o2);
        let (status, body) = app
            .get(&format!("/api/v1/checkout/{no2}/return?sig={sig2}"), None)
            .await;
        assert_eq!(status, 404, "{body}");
    }
);

both_backends!(
    live_status_streams_until_paid,
    &emu(),
    |app: TestApp| async move {
        let shop = shop(&app).await;
        let o = order(&app, &shop, "l-1", json!({})).await;
        let (no, sig) = link(&o);
        let resp = app
            .client
            .get(app.url(&format!("/api/v1/checkout/{no}/events?sig={sig}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        let watcher = tokio::spawn(sse_statuses(resp, "paid"));
        let (status, _) = pay(&app, &no, &sig, "wechat", "native").await;
        assert_eq!(status, 200);
        // Simulated scan & pay through the page's development route.
        let (status, body) = app
            .post(
                &format!("/api/v1/checkout/{no}/simulate-pay?sig={sig}"),
                &json!({}),
                None,
            )
            .await;
        assert_eq!(status, 202, "{body}");
        let seen = watcher.await.unwrap();
        assert_eq!(
            seen.first().map(String::as_str),
            Some("pending"),
            "{seen:?}"
        );
        assert_eq!(seen.last().map(String::as_str), Some("paid"), "{seen:?}");
        // Paid: the development route refuses another payment.
        let (status, body) = app
            .post(
                &format!("/api/v1/checkout/{no}/simulate-pay?sig={sig}"),
                &json!({}),
                None,
            )
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (409, Some("order_not_pending"))
        );
    }
);
