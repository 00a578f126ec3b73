//! Merchant apps as operators manage them (issue 13, part 1): the admin API under
//! `/api/v1/admin/apps`, its checks and codes, keys that stop working the moment they are
//! rotated or revoked, and secrets that never show outside the answer that made them.
//! (`fenpay app ...`, the same operations from the command line, is tested with the real
//! binary in `backend/tests/app_cli.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use fenpay::service::apps as svc;
use fenpay_tests::{both_backends, into_json, TestApp};
use serde_json::{json, Value};

const APPS: &str = "/api/v1/admin/apps";

async fn patch(app: &TestApp, path: &str, body: &Value, token: Option<&str>) -> (u16, Value) {
    let mut req = app.client.patch(app.url(path)).json(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    into_json(req.send().await.unwrap()).await
}

/// Whether `key` opens the server API (what `Authorization: Bearer sk_...` checks).
async fn key_works(app: &TestApp, key: &str) -> Option<String> {
    svc::authenticate_key(&app.state, key)
        .await
        .ok()
        .map(|a| a.id)
}

/// The stored row (secrets included), for comparisons.
async fn row(app: &TestApp, id: &str) -> fenpay::db::apps::AppRow {
    fenpay::db::apps::find(&app.state.db, id)
        .await
        .unwrap()
        .expect("app row")
}

/// No secret of `row` (nor the key `api_key`) appears in `text`.
fn assert_no_secret(text: &str, row: &fenpay::db::apps::AppRow, api_key: &str) {
    assert!(!text.contains(api_key), "api key in {text}");
    assert!(!text.contains(&row.key_hash), "key hash in {text}");
    assert!(
        !text.contains(&row.webhook_secret),
        "webhook secret in {text}"
    );
    if let Some(k) = &row.epay_key {
        assert!(!text.contains(k.as_str()), "epay key in {text}");
    }
}

both_backends!(
    only_admins_reach_the_apps_api,
    &[],
    |app: TestApp| async move {
        let admin = app.admin("apps-admin").await;
        let user = app.signup("apps-buyer").await;
        let (status, created) = app.post(APPS, &json!({"name": "Shop"}), Some(&admin)).await;
        assert_eq!(status, 201, "{created}");
        let id = created["app"]["id"].as_str().unwrap().to_string();
        let routes = [
            ("GET", APPS.to_string()),
            ("POST", APPS.to_string()),
            ("GET", format!("{APPS}/{id}")),
            ("PATCH", format!("{APPS}/{id}")),
            ("POST", format!("{APPS}/{id}/rotate-key")),
            ("POST", format!("{APPS}/{id}/revoke")),
            ("POST", format!("{APPS}/{id}/rotate-webhook-secret")),
        ];
        for (method, path) in &routes {
            for (token, want) in [(None, 401), (Some(user.as_str()), 403)] {
                let body = json!({"name": "Other"});
                let (status, answer) = match *method {
                    "GET" => app.get(path, token).await,
                    "PATCH" => patch(&app, path, &body, token).await,
                    _ => app.post(path, &body, token).await,
                };
                assert_eq!(status, want, "{method} {path}: {answer}");
                let code = if want == 401 {
                    "unauthorized"
                } else {
                    "forbidden"
                };
                assert_eq!(answer["code"], code, "{method} {path}: {answer}");
            }
        }
        // Nothing was created, changed, rotated or revoked by the refused calls.
        let (_, list) = app.get(APPS, Some(&admin)).await;
        assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
        assert_eq!(list["items"][0]["name"], "Shop");
        assert_eq!(list["items"][0]["revoked"], false);
        assert_eq!(
            key_works(&app, created["api_key"].as_str().unwrap()).await,
            Some(id.clone())
        );
        assert_eq!(
            row(&app, &id).await.webhook_secret,
            created["webhook_secret"]
        );
    }
);

both_backends!(
    create_list_get_and_secrets_shown_once,
    &[],
    |app: TestApp| async move {
        let admin = app.admin("apps-admin").await;
        let (status, plain) = app
        .post(
            APPS,
            &json!({"name": "  Image site  ", "webhook_url": "https://img.example.com/hooks/fenpay",
                    "return_hosts": ["IMG.example.com", "*.cdn.example.com", "img.example.com"],
                    "fulfilment": "webhook", "max_amount_fen": 100000}),
            Some(&admin),
        )
        .await;
        assert_eq!(status, 201, "{plain}");
        let key = plain["api_key"].as_str().unwrap();
        assert!(key.starts_with("sk_live_") && key.len() == 40, "{key}");
        assert!(plain["webhook_secret"]
            .as_str()
            .unwrap()
            .starts_with("whsec_"));
        assert_eq!(plain["epay_key"], Value::Null);
        let view = &plain["app"];
        let id = view["id"].as_str().unwrap().to_string();
        assert!(id.starts_with("app_"), "{id}");
        assert_eq!(view["name"], "Image site");
        assert_eq!(view["mode"], "live");
        assert_eq!(view["key_prefix"], &key[..12]);
        assert_eq!(
            view["return_hosts"],
            json!(["img.example.com", "*.cdn.example.com"])
        );
        assert_eq!(view["fulfilment"], "webhook");
        assert_eq!(view["max_amount_fen"], 100000);
        assert_eq!(view["epay_pid"], Value::Null);
        assert_eq!(view["epay_enabled"], false);
        assert_eq!(view["revoked"], false);
        // The key opens the server API: it is this app's.
        assert_eq!(key_works(&app, key).await, Some(id.clone()));
        // Stored as a keyed hash, never as given.
        let stored = row(&app, &id).await;
        assert_ne!(stored.key_hash, key);
        assert!(!stored.key_hash.contains(&key[12..]));
        assert_eq!(stored.webhook_secret, plain["webhook_secret"]);

        let (status, epay) = app
            .post(
                APPS,
                &json!({"name": "Card shop", "mode": "test", "epay": true}),
                Some(&admin),
            )
            .await;
        assert_eq!(status, 201, "{epay}");
        let epay_key = epay["api_key"].as_str().unwrap();
        assert!(epay_key.starts_with("sk_test_"), "{epay_key}");
        assert_eq!(epay["app"]["mode"], "test");
        assert_eq!(epay["app"]["epay_enabled"], true);
        let pid = epay["app"]["epay_pid"].as_i64().unwrap();
        assert!((1000..10_000_000).contains(&pid), "{pid}");
        assert_eq!(epay["epay_key"].as_str().unwrap().len(), 32);
        let epay_id = epay["app"]["id"].as_str().unwrap().to_string();
        assert_eq!(
            fenpay::db::apps::find_by_epay_pid(&app.state.db, pid)
                .await
                .unwrap()
                .map(|a| a.id),
            Some(epay_id.clone())
        );
        assert_eq!(
            row(&app, &epay_id).await.epay_key.as_deref(),
            epay["epay_key"].as_str()
        );

        // The list and the detail answers carry no secret.
        let (status, list) = app.get(APPS, Some(&admin)).await;
        assert_eq!(status, 200, "{list}");
        let items = list["items"].as_array().unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0]["id"], id.as_str());
        assert_eq!(items[1]["id"], epay_id.as_str());
        let text = list.to_string();
        assert_no_secret(&text, &stored, key);
        assert_no_secret(&text, &row(&app, &epay_id).await, epay_key);
        for (i, item) in items.iter().enumerate() {
            let (status, one) = app
                .get(
                    &format!("{APPS}/{}", item["id"].as_str().unwrap()),
                    Some(&admin),
                )
                .await;
            assert_eq!(status, 200, "{one}");
            assert_eq!(&one, item, "detail {i} differs from the list");
        }
        let (status, none) = app
            .get(&format!("{APPS}/app_nosuchapp"), Some(&admin))
            .await;
        assert_eq!(
            (status, none["code"].as_str()),
            (404, Some("not_found")),
            "{none}"
        );
    }
);

both_backends!(
    bad_input_is_refused_with_its_code_and_nothing_written,
    &[],
    |app: TestApp| async move {
        let admin = app.admin("apps-admin").await;
        let cap = app.state.settings.merchant_max_amount_fen;
        let cases = [
            (json!({"name": ""}), "invalid_app"),
            (json!({"name": "   "}), "invalid_app"),
            (json!({"name": "x".repeat(101)}), "invalid_app"),
            (json!({"name": "a\u{0007}b"}), "invalid_app"),
            (json!({"name": "S", "max_amount_fen": 0}), "invalid_app"),
            (
                json!({"name": "S", "max_amount_fen": cap + 1}),
                "invalid_app",
            ),
            (
                json!({"name": "S", "webhook_url": "ftp://example.com/x"}),
                "invalid_webhook_url",
            ),
            (
                json!({"name": "S", "webhook_url": "/relative"}),
                "invalid_webhook_url",
            ),
            (
                json!({"name": "S", "return_hosts": ["https://shop.example.com"]}),
                "invalid_return_host",
            ),
            (
                json!({"name": "S", "return_hosts": ["shop.example.com:8443"]}),
                "invalid_return_host",
            ),
            (
                json!({"name": "S", "return_hosts": ["*.com"]}),
                "invalid_return_host",
            ),
            (json!({"name": "S", "mode": "prod"}), "invalid_body"),
            (json!({"name": "S", "fulfilment": "magic"}), "invalid_body"),
            (
                json!({"name": "S", "api_key": "sk_live_mine"}),
                "invalid_body",
            ),
        ];
        for (body, code) in &cases {
            let (status, answer) = app.post(APPS, body, Some(&admin)).await;
            assert_eq!(status, 400, "{body}: {answer}");
            assert_eq!(answer["code"], *code, "{body}: {answer}");
        }
        let (_, list) = app.get(APPS, Some(&admin)).await;
        assert_eq!(
            list["items"],
            json!([]),
            "a refused create left an app behind"
        );

        // The same checks on a change, which then writes nothing at all.
        let (_, created) = app
            .post(
                APPS,
                &json!({"name": "Shop", "return_hosts": ["shop.example.com"]}),
                Some(&admin),
            )
            .await;
        let id = created["app"]["id"].as_str().unwrap().to_string();
        let path = format!("{APPS}/{id}");
        let before = app.get(&path, Some(&admin)).await.1;
        let changes = [
            (
                json!({"name": "Renamed", "webhook_url": "mailto:a@b.c"}),
                "invalid_webhook_url",
            ),
            (
                json!({"name": "Renamed", "return_hosts": ["a.com", "a.com/x"]}),
                "invalid_return_host",
            ),
            (
                json!({"name": "Renamed", "max_amount_fen": -5}),
                "invalid_app",
            ),
            (json!({"name": ""}), "invalid_app"),
            (json!({"name": "Renamed", "epay": "yes"}), "invalid_body"),
            (json!({"revoked": false}), "invalid_body"),
        ];
        for (body, code) in &changes {
            let (status, answer) = patch(&app, &path, body, Some(&admin)).await;
            assert_eq!(status, 400, "{body}: {answer}");
            assert_eq!(answer["code"], *code, "{body}: {answer}");
        }
        assert_eq!(app.get(&path, Some(&admin)).await.1, before);
        let (status, answer) = patch(
            &app,
            &format!("{APPS}/app_nosuchapp"),
            &json!({"name": "x"}),
            Some(&admin),
        )
        .await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (404, Some("not_found")),
            "{answer}"
        );
    }
);

both_backends!(
    changes_rotations_and_revocation,
    &[],
    |app: TestApp| async move {
        let admin = app.admin("apps-admin").await;
        let (_, created) = app
            .post(
                APPS,
                &json!({"name": "Shop", "webhook_url": "https://shop.example.com/hook"}),
                Some(&admin),
            )
            .await;
        let id = created["app"]["id"].as_str().unwrap().to_string();
        let path = format!("{APPS}/{id}");
        let first_key = created["api_key"].as_str().unwrap().to_string();

        // PATCH: absent fields stay, null removes the webhook URL.
        let (status, changed) = patch(
        &app,
        &path,
        &json!({"webhook_url": null, "return_hosts": ["*.shop.example.com"], "fulfilment": "webhook", "max_amount_fen": 500}),
        Some(&admin),
    )
    .await;
        assert_eq!(status, 200, "{changed}");
        assert_eq!(changed["epay_key"], Value::Null);
        let v = &changed["app"];
        assert_eq!(v["name"], "Shop");
        assert_eq!(v["webhook_url"], Value::Null);
        assert_eq!(v["return_hosts"], json!(["*.shop.example.com"]));
        assert_eq!(v["fulfilment"], "webhook");
        assert_eq!(v["max_amount_fen"], 500);
        let (_, changed) = patch(
            &app,
            &path,
            &json!({"webhook_url": "https://new.example.com/h", "name": "Shop 2"}),
            Some(&admin),
        )
        .await;
        assert_eq!(changed["app"]["webhook_url"], "https://new.example.com/h");
        assert_eq!(changed["app"]["fulfilment"], "webhook");
        assert_eq!(app.get(&path, Some(&admin)).await.1, changed["app"]);

        // epay on for the first time draws credentials, shown once; off keeps them; on again
        // brings back the same ones without showing the key.
        let (status, on) = patch(&app, &path, &json!({"epay": true}), Some(&admin)).await;
        assert_eq!(status, 200, "{on}");
        let pid = on["app"]["epay_pid"].as_i64().expect("pid drawn");
        let epay_key = on["epay_key"].as_str().expect("key shown once").to_string();
        assert_eq!(on["app"]["epay_enabled"], true);
        assert_eq!(
            row(&app, &id).await.epay_key.as_deref(),
            Some(epay_key.as_str())
        );
        let (_, off) = patch(&app, &path, &json!({"epay": false}), Some(&admin)).await;
        assert_eq!(off["app"]["epay_enabled"], false);
        assert_eq!(off["app"]["epay_pid"], pid);
        let (_, again) = patch(&app, &path, &json!({"epay": true}), Some(&admin)).await;
        assert_eq!(again["app"]["epay_enabled"], true);
        assert_eq!(again["app"]["epay_pid"], pid);
        assert_eq!(again["epay_key"], Value::Null, "{again}");
        assert_eq!(
            row(&app, &id).await.epay_key.as_deref(),
            Some(epay_key.as_str())
        );
        assert!(!app
            .get(&path, Some(&admin))
            .await
            .1
            .to_string()
            .contains(&epay_key));

        // rotate-key: the old key is refused at once, the new one works.
        let (status, rotated) = app
            .post(&format!("{path}/rotate-key"), &json!({}), Some(&admin))
            .await;
        assert_eq!(status, 200, "{rotated}");
        let new_key = rotated["api_key"].as_str().unwrap().to_string();
        assert_ne!(new_key, first_key);
        assert!(new_key.starts_with("sk_live_"));
        assert_eq!(rotated["app_id"], id.as_str());
        assert_eq!(rotated["key_prefix"], &new_key[..12]);
        assert_eq!(key_works(&app, &first_key).await, None);
        assert_eq!(key_works(&app, &new_key).await, Some(id.clone()));
        assert_eq!(
            app.get(&path, Some(&admin)).await.1["key_prefix"],
            &new_key[..12]
        );
        // The server API's own check answers the same way on the wire.
        let err = svc::authenticate_key(&app.state, &first_key)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "unauthorized");

        // rotate-webhook-secret: a new secret, stored, shown once.
        let old_secret = row(&app, &id).await.webhook_secret;
        let (status, secret) = app
            .post(
                &format!("{path}/rotate-webhook-secret"),
                &json!({}),
                Some(&admin),
            )
            .await;
        assert_eq!(status, 200, "{secret}");
        let new_secret = secret["webhook_secret"].as_str().unwrap();
        assert!(new_secret.starts_with("whsec_"));
        assert_ne!(new_secret, old_secret);
        assert_eq!(row(&app, &id).await.webhook_secret, new_secret);
        assert_no_secret(
            &app.get(APPS, Some(&admin)).await.1.to_string(),
            &row(&app, &id).await,
            &new_key,
        );

        // revoke: refused at once, for good; nothing about a revoked app changes any more.
        let (status, revoked) = app
            .post(&format!("{path}/revoke"), &json!({}), Some(&admin))
            .await;
        assert_eq!(status, 200, "{revoked}");
        assert_eq!(revoked["revoked"], true);
        assert!(revoked["revoked_at"].is_string(), "{revoked}");
        assert_eq!(key_works(&app, &new_key).await, None);
        let before = row(&app, &id).await;
        for (method, p) in [
            ("POST", format!("{path}/revoke")),
            ("POST", format!("{path}/rotate-key")),
            ("POST", format!("{path}/rotate-webhook-secret")),
            ("PATCH", path.clone()),
        ] {
            let (status, answer) = match method {
                "PATCH" => patch(&app, &p, &json!({"name": "Back"}), Some(&admin)).await,
                _ => app.post(&p, &json!({}), Some(&admin)).await,
            };
            assert_eq!(status, 409, "{method} {p}: {answer}");
            assert_eq!(answer["code"], "app_revoked", "{method} {p}: {answer}");
        }
        let after = row(&app, &id).await;
        assert_eq!(
            (
                &after.key_hash,
                &after.webhook_secret,
                &after.name,
                after.revoked_at
            ),
            (
                &before.key_hash,
                &before.webhook_secret,
                &before.name,
                before.revoked_at
            )
        );
        assert_eq!(key_works(&app, &new_key).await, None);
        for p in ["revoke", "rotate-key", "rotate-webhook-secret"] {
            let (status, answer) = app
                .post(
                    &format!("{APPS}/app_nosuchapp/{p}"),
                    &json!({}),
                    Some(&admin),
                )
                .await;
            assert_eq!(
                (status, answer["code"].as_str()),
                (404, Some("not_found")),
                "{p}: {answer}"
            );
        }
    }
);

both_backends!(
    debug_output_never_shows_a_secret,
    &[],
    |app: TestApp| async move {
        let issued = svc::create(
            &app.state,
            svc::NewApp {
                name: "Debug".into(),
                mode: fenpay::domain::apps::KeyMode::Live,
                webhook_url: None,
                return_hosts: vec![],
                fulfilment: fenpay::domain::apps::Fulfilment::Builtin,
                max_amount_fen: None,
                epay: true,
            },
        )
        .await
        .unwrap();
        let stored = row(&app, &issued.app.id).await;
        for text in [
            format!("{issued:?}"),
            format!("{:?}", issued.app),
            format!("{stored:?}"),
            format!("{:?}", svc::created(&issued)),
            format!("{:#?}", svc::created(&issued)),
        ] {
            assert_no_secret(&text, &stored, &issued.api_key);
            assert!(text.contains(&issued.app.id), "{text}");
        }
        let rotated = svc::rotate_key(&app.state, &issued.app.id).await.unwrap();
        assert_no_secret(
            &format!("{rotated:?}"),
            &row(&app, &issued.app.id).await,
            &rotated.api_key,
        );
    }
);
