//! WeChat Pay consumer complaints (issue 15 part 3): the emulator's complaint API and
//! notifications, the verified callback, storage, the admin inbox, reply and completion
//! with audit entries, and `complaint.created` delivered once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use fenpay_proto::wechat as proto;
use fenpay_tests::{
    both_backends, dev_keys, eventually, paid_points_order, TestApp, WebhookReceiver,
    TEST_WEBHOOK_SECRET,
};
use serde_json::{json, Value};

/// Receivers of the running tests, by their webhook URL.
static RECEIVERS: std::sync::Mutex<Vec<(String, WebhookReceiver)>> =
    std::sync::Mutex::new(Vec::new());

/// The emulator, start-up registration of the complaint URL, and a fresh webhook receiver
/// (found again by [`receiver`]).
async fn emu() -> Vec<(&'static str, &'static str)> {
    let rx = WebhookReceiver::default();
    let hook = rx.start().await;
    RECEIVERS.lock().unwrap().push((hook.clone(), rx));
    let mut v = TestApp::emulator_overrides();
    v.extend([
        ("WECHAT_COMPLAINTS_REGISTER", "true"),
        ("WEBHOOK_SECRET", TEST_WEBHOOK_SECRET),
        ("DISPATCH_INTERVAL_SECS", "1"),
        ("WEBHOOK_URLS", &*Box::leak(hook.into_boxed_str())),
    ]);
    v
}

fn receiver(app: &TestApp) -> WebhookReceiver {
    let hook = app.state.sinks.webhook_urls[0].clone();
    RECEIVERS
        .lock()
        .unwrap()
        .iter()
        .find(|(h, _)| *h == hook)
        .map(|(_, rx)| rx.clone())
        .unwrap()
}

/// Complain about a paid trade at the emulator (once the start-up registration of the
/// notification URL has reached it).
async fn complain(app: &TestApp, order_no: &str) -> String {
    let body = json!({"out_trade_no": order_no, "problem_description": "付款后没有收到积分",
                      "problem_type": "SERVICE_NOT_WORK", "user_complaint_times": 2});
    let mut last = (0, Value::Null);
    for _ in 0..300 {
        last = app
            .emulator_post("/__emulator/wechat/complaints", &body)
            .await;
        if last.0 != 409 || last.1["code"] != "NO_NOTIFY_URL" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(last.0, 200, "emulator complaint: {last:?}");
    last.1["complaint"]["complaint_id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn emulator_complaint(app: &TestApp, id: &str) -> Value {
    let resp = app
        .client
        .get(format!("{}/__emulator/wechat/complaints", app.emulator()))
        .send()
        .await
        .unwrap();
    let all: Value = resp.json().await.unwrap();
    all["complaints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["complaint"]["complaint_id"] == id)
        .cloned()
        .unwrap()
}

fn complaint_events(rx: &WebhookReceiver) -> Vec<(String, bool)> {
    rx.got
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, kind, _)| kind == "complaint.created")
        .map(|(id, _, valid)| (id.clone(), *valid))
        .collect()
}

/// A `COMPLAINT.CREATE` envelope for `id`, sealed with the real APIv3 key but signed by
/// a key that is not WeChat's.
fn forged_notification(id: &str) -> (Vec<(String, String)>, String) {
    let keys = dev_keys();
    let resource = proto::EncryptedResource::seal(
        keys.wechat_api_v3_key.expose().as_bytes(),
        "complaint",
        "complaint",
        &proto::nonce_str(12),
        json!({"complaint_id": id, "action_type": "CREATE_COMPLAINT"})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    let body = json!({
        "id": uuid::Uuid::new_v4().to_string(), "create_time": "2026-12-10T12:00:01+08:00",
        "resource_type": "encrypt-resource", "event_type": "COMPLAINT.CREATE", "summary": "产生新投诉",
        "resource": resource
    })
    .to_string();
    let ts = chrono::Utc::now().timestamp().to_string();
    let nonce = proto::nonce_str(32);
    let sig = proto::sign_response(&keys.alipay_app_key, &ts, &nonce, body.as_bytes()).unwrap();
    let headers = vec![
        ("Wechatpay-Timestamp".to_string(), ts),
        ("Wechatpay-Nonce".to_string(), nonce),
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

const ROUTES: [(&str, &str); 5] = [
    ("GET", "/api/v1/admin/complaints"),
    ("GET", "/api/v1/admin/complaints/X"),
    ("POST", "/api/v1/admin/complaints/X/reply"),
    ("POST", "/api/v1/admin/complaints/X/complete"),
    ("POST", "/api/v1/admin/complaints/sync"),
];

async fn call(app: &TestApp, method: &str, path: &str, token: Option<&str>) -> u16 {
    let mut req = match method {
        "GET" => app.client.get(app.url(path)),
        _ => app
            .client
            .post(app.url(path))
            .json(&json!({"content": "您好"})),
    };
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap().status().as_u16()
}

async fn run(app: TestApp, rx: WebhookReceiver) {
    let buyer = app.signup("complainer").await;
    let admin = app.admin("complaint-admin").await;
    let order_no = paid_points_order(&app, &buyer).await;

    // Only paid trades can be complained about (the emulator refuses others).
    let (status, body) = app
        .emulator_post(
            "/__emulator/wechat/complaints",
            &json!({"out_trade_no": "FPNOSUCHORDER"}),
        )
        .await;
    assert_eq!(status, 404, "{body}");

    let id = complain(&app, &order_no).await;

    // The signed, encrypted notification arrives, is verified, and the complaint is read
    // from the API: it shows in the inbox with the 24-hour clock running.
    assert!(
        eventually(|| async {
            let (_, list) = app.get("/api/v1/admin/complaints", Some(&admin)).await;
            list["total"] == 1
        })
        .await,
        "the complaint never reached the inbox"
    );
    let (status, list) = app
        .get("/api/v1/admin/complaints?state=pending", Some(&admin))
        .await;
    assert_eq!(status, 200, "{list}");
    let item = &list["items"][0];
    assert_eq!(item["complaint_id"], id.as_str());
    assert_eq!(item["state"], "pending");
    assert_eq!(item["order_no"], order_no.as_str());
    assert_eq!(item["amount_fen"], 1000);
    assert_eq!(item["problem_type"], "SERVICE_NOT_WORK");
    assert_eq!(item["user_complaint_times"], 2);
    let left = item["time_left_secs"].as_i64().unwrap();
    assert!((86_000..=86_400).contains(&left), "time left {left}");
    let (_, none) = app
        .get("/api/v1/admin/complaints?state=processed", Some(&admin))
        .await;
    assert_eq!(none["total"], 0, "{none}");

    // Detail: history and the linked order.
    let (status, detail) = app
        .get(&format!("/api/v1/admin/complaints/{id}"), Some(&admin))
        .await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["order"]["order_no"], order_no.as_str());
    assert_eq!(detail["order"]["status"], "paid");
    assert_eq!(
        detail["history"][0]["operate_type"],
        "USER_CREATE_COMPLAINT"
    );
    assert_eq!(detail["complaint_detail"], "付款后没有收到积分");

    // The same notification again, and a sync of the window: nothing is created twice.
    let (status, resent) = app
        .emulator_post(
            &format!("/__emulator/wechat/complaints/{id}/notify"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200, "{resent}");
    assert_eq!(resent["delivered"], true, "{resent}");
    let (status, synced) = app
        .post("/api/v1/admin/complaints/sync", &json!({}), Some(&admin))
        .await;
    assert_eq!(status, 200, "{synced}");
    assert_eq!(
        (synced["seen"].as_i64(), synced["created"].as_i64()),
        (Some(1), Some(0))
    );
    assert_eq!(app.count("complaints").await, 1);
    assert!(
        eventually(|| async { !complaint_events(&rx).is_empty() }).await,
        "complaint.created never delivered"
    );

    // A forged notification (not signed by WeChat) changes nothing.
    let (headers, body) = forged_notification("200099999999999999999999999");
    let mut req = app
        .client
        .post(app.url("/api/v1/callbacks/wechat/complaints"))
        .header("content-type", "application/json")
        .body(body);
    for (k, v) in &headers {
        req = req.header(k, v);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(app.count("complaints").await, 1);

    // Bad reply input: 400 with a stable code, nothing sent.
    for content in ["", "   ", &"退".repeat(201)] {
        let (status, body) = app
            .post(
                &format!("/api/v1/admin/complaints/{id}/reply"),
                &json!({ "content": content }),
                Some(&admin),
            )
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("invalid_reply")),
            "{body}"
        );
    }
    let (status, body) = app
        .post(
            &format!("/api/v1/admin/complaints/{id}/reply"),
            &json!({ "text": "wrong field" }),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = app
        .post(
            "/api/v1/admin/complaints/nope/reply",
            &json!({ "content": "您好" }),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 404, "{body}");

    // Reply: PROCESSING at the emulator and here, the reply in the history, audited.
    let (status, replied) = app
        .post(
            &format!("/api/v1/admin/complaints/{id}/reply"),
            &json!({ "content": "您好，积分已补发，请查收" }),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 200, "{replied}");
    assert_eq!(replied["complaint"]["state"], "processing");
    assert!(replied["complaint"]["time_left_secs"].is_null());
    let at_emulator = emulator_complaint(&app, &id).await;
    assert_eq!(at_emulator["complaint"]["complaint_state"], "PROCESSING");
    let history = replied["history"].as_array().unwrap();
    assert_eq!(history.last().unwrap()["operate_type"], "MERCHANT_RESPONSE");
    assert_eq!(
        history.last().unwrap()["operate_details"],
        "您好，积分已补发，请查收"
    );

    // Complete: PROCESSED at both ends, handled_at set, audited; then no more actions.
    let (status, done) = app
        .post(
            &format!("/api/v1/admin/complaints/{id}/complete"),
            &json!({}),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["complaint"]["state"], "processed");
    assert!(done["complaint"]["handled_at"].is_string(), "{done}");
    let at_emulator = emulator_complaint(&app, &id).await;
    assert_eq!(at_emulator["complaint"]["complaint_state"], "PROCESSED");
    assert_eq!(
        at_emulator["history"].as_array().unwrap().last().unwrap()["operate_type"],
        "MERCHANT_CONFIRM_COMPLETE"
    );
    let (status, body) = app
        .post(
            &format!("/api/v1/admin/complaints/{id}/complete"),
            &json!({}),
            Some(&admin),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("complaint_processed"))
    );

    let (status, audit) = app
        .get(
            &format!("/api/v1/admin/audit?target_kind=complaint&target_id={id}"),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 200, "{audit}");
    let mut actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    actions.sort_unstable();
    assert_eq!(
        actions,
        ["complaint.complete", "complaint.reply"],
        "{audit}"
    );

    // The state-change notifications of the reply and the completion were absorbed, and
    // complaint.created was delivered exactly once, signed.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let events = complaint_events(&rx);
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0].1, "signature");
    assert_eq!(app.count("complaints").await, 1);

    // Every complaints route: 401 without a token, 403 for a non-admin.
    for (method, path) in ROUTES {
        assert_eq!(call(&app, method, path, None).await, 401, "{method} {path}");
        assert_eq!(
            call(&app, method, path, Some(&buyer)).await,
            403,
            "{method} {path}"
        );
    }
}

both_backends!(
    complaints_inbox_end_to_end,
    &emu().await,
    |app: TestApp| async move {
        let rx = receiver(&app);
        run(app, rx).await;
    }
);
