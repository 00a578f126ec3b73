//! Bring your own auth: a merchant app's own user tokens (HS256, RS256 from a PEM, ES256
//! from a JWKS with `kid`) on the SPA / mobile contract routes, and everything that must
//! be refused with 401 and nothing written.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use diesel::QueryDsl;
use fenpay::db::schema::{app_accounts, users};
use fenpay::domain::apps::{Fulfilment, KeyMode};
use fenpay::service::apps::NewApp;
use fenpay_tests::{both_backends, into_json, TestApp};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::pkcs1::EncodeRsaPrivateKey;
use serde_json::{json, Value};

const ISSUER: &str = "https://login.shop.example";
const AUDIENCE: &str = "fenpay";
const SECRET: &str = "the-shop-shares-this-secret-with-fenpay-0123";

fn overrides() -> Vec<(&'static str, &'static str)> {
    TestApp::emulator_overrides()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn claims(sub: &str) -> Value {
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now(), "exp": now() + 600})
}

fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(String::from);
    encode(&header, claims, key).unwrap()
}

fn hs256(claims: &Value, secret: &[u8]) -> String {
    sign(
        Algorithm::HS256,
        None,
        claims,
        &EncodingKey::from_secret(secret),
    )
}

struct RsaTestKey {
    pem: String,
    signer: EncodingKey,
}

fn rsa_test_key() -> RsaTestKey {
    let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    RsaTestKey {
        pem: key
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap(),
        signer: EncodingKey::from_rsa_der(key.to_pkcs1_der().unwrap().as_bytes()),
    }
}

/// A P-256 key: its JWK (with `kid`) and its signer.
fn ec_test_key(kid: &str) -> (Value, EncodingKey) {
    let secret = p256::SecretKey::random(&mut rand::thread_rng());
    let point = secret.public_key().to_encoded_point(false);
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
        "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
        "y": URL_SAFE_NO_PAD.encode(point.y().unwrap()),
    });
    let der = secret.to_pkcs8_der().unwrap();
    (jwk, EncodingKey::from_ec_der(der.as_bytes()))
}

/// A merchant app (made directly through the service, as the CLI does).
async fn new_app(app: &TestApp, name: &str) -> String {
    let issued = fenpay::service::apps::create(
        &app.state,
        NewApp {
            name: name.into(),
            mode: KeyMode::Test,
            webhook_url: None,
            return_hosts: vec![],
            fulfilment: Fulfilment::Builtin,
            max_amount_fen: None,
            epay: false,
        },
    )
    .await
    .unwrap();
    issued.app.id
}

async fn put_jwt(app: &TestApp, admin: &str, app_id: &str, body: &Value) -> (u16, Value) {
    let resp = app
        .client
        .put(app.url(&format!("/api/v1/admin/apps/{app_id}/jwt")))
        .bearer_auth(admin)
        .json(body)
        .send()
        .await
        .unwrap();
    into_json(resp).await
}

async fn delete_jwt(app: &TestApp, admin: &str, app_id: &str) -> (u16, Value) {
    let resp = app
        .client
        .delete(app.url(&format!("/api/v1/admin/apps/{app_id}/jwt")))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap();
    into_json(resp).await
}

/// (accounts, app-account links) in the database.
async fn counts(app: &TestApp) -> (i64, i64) {
    use diesel_async::RunQueryDsl;
    let read = async {
        fenpay::db_run!(&app.state.db, |conn| {
            let users: i64 = users::table.count().get_result(conn).await?;
            let links: i64 = app_accounts::table.count().get_result(conn).await?;
            Ok::<(i64, i64), fenpay::db::DbError>((users, links))
        })
    };
    read.await.unwrap()
}

async fn create_order(app: &TestApp, token: &str) -> (u16, Value) {
    app.post(
        "/api/v1/payment/create-order",
        &json!({"product_type": "points", "product_id": 1, "payment_method": "wechat"}),
        Some(token),
    )
    .await
}

async fn order_status(app: &TestApp, token: &str, no: &str) -> (u16, Value) {
    app.get(
        &format!("/api/v1/payment/order-status?order_no={no}"),
        Some(token),
    )
    .await
}

/// The first frame of an order's event stream opened at `url` (with `bearer`, if any).
async fn first_event(app: &TestApp, url: &str, bearer: Option<&str>) -> (u16, String) {
    let mut req = app.client.get(app.url(url));
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    let mut resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    if status != 200 {
        return (status, resp.text().await.unwrap_or_default());
    }
    let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), resp.chunk())
        .await
        .expect("a first event within 10 s")
        .unwrap()
        .unwrap_or_default();
    (status, String::from_utf8_lossy(&chunk).into_owned())
}

/// 401 `unauthorized` on the contract routes, with a plain message.
async fn assert_refused(app: &TestApp, token: &str, why: &str) -> String {
    let (status, body) = app.get("/api/v1/auth/me", Some(token)).await;
    assert_eq!(status, 401, "{why}: {body}");
    assert_eq!(body["code"], "unauthorized", "{why}: {body}");
    let message = body["message"].as_str().unwrap().to_string();
    assert!(
        message == "invalid token" || message == "token expired",
        "{why}: no details beyond invalid/expired, got {message:?}"
    );
    let (status, body) = create_order(app, token).await;
    assert_eq!(status, 401, "{why}: {body}");
    let (status, _) = app.get("/api/v1/payment/orders", Some(token)).await;
    assert_eq!(status, 401, "{why}");
    message
}

both_backends!(
    an_apps_users_use_the_contract_routes_with_its_hs256_tokens,
    &overrides(),
    |app: TestApp| async move {
        let admin = app.admin("root").await;
        let shop = new_app(&app, "shop").await;
        let (status, config) = put_jwt(
            &app,
            &admin,
            &shop,
            &json!({"issuer": ISSUER, "audience": AUDIENCE, "hs256_secret": SECRET}),
        )
        .await;
        assert_eq!(status, 200, "{config}");
        assert_eq!(config["issuer"], ISSUER);
        assert_eq!(config["hs256_secret_set"], true);
        assert!(
            !config.to_string().contains(SECRET),
            "the secret is never shown"
        );
        let (status, shown) = app
            .get(&format!("/api/v1/admin/apps/{shop}/jwt"), Some(&admin))
            .await;
        assert_eq!((status, &shown), (200, &config));

        let before = counts(&app).await;
        let token = hs256(&claims("customer-1"), SECRET.as_bytes());
        let (status, me) = app.get("/api/v1/auth/me", Some(&token)).await;
        assert_eq!(status, 200, "{me}");
        assert_eq!(me["role"], "user");
        assert_eq!(
            counts(&app).await,
            (before.0 + 1, before.1 + 1),
            "one account, linked"
        );
        let account = fenpay::db::apps::account_of(&app.state.db, &shop, "customer-1")
            .await
            .unwrap()
            .expect("the account is linked to the app and the sub");

        // create-order, order-status, the orders list.
        let (status, order) = create_order(&app, &token).await;
        assert_eq!(status, 200, "{order}");
        let no = order["order_no"].as_str().unwrap().to_string();
        let stored = fenpay::db::orders::find(&app.state.db, &no)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            stored.user_id, account,
            "the order belongs to the linked account"
        );
        let (status, body) = order_status(&app, &token, &no).await;
        assert_eq!(
            (status, body["status"].as_str()),
            (200, Some("pending")),
            "{body}"
        );
        let (status, list) = app.get("/api/v1/payment/orders", Some(&token)).await;
        assert_eq!(status, 200, "{list}");
        assert_eq!(list["total"], 1, "{list}");
        assert_eq!(list["items"][0]["order_no"], no.as_str());

        // A later token with the same sub (another iat, another lifetime) is the same
        // customer: same account, same order, no new rows.
        let mut later = claims("customer-1");
        later["iat"] = json!(now() - 5);
        later["exp"] = json!(now() + 3600);
        later["jti"] = json!("second");
        let second = hs256(&later, SECRET.as_bytes());
        assert_ne!(second, token);
        let (status, body) = order_status(&app, &second, &no).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(counts(&app).await, (before.0 + 1, before.1 + 1));

        // Stream token + events, and events with the app's token itself.
        let (status, stream) = app
            .post(
                &format!("/api/v1/payment/orders/{no}/stream-token"),
                &json!({}),
                Some(&second),
            )
            .await;
        assert_eq!(status, 200, "{stream}");
        let (status, frame) = first_event(&app, stream["url"].as_str().unwrap(), None).await;
        assert_eq!(status, 200, "{frame}");
        assert!(
            frame.contains("event: status") && frame.contains(&no),
            "{frame}"
        );
        let events = format!("/api/v1/payment/orders/{no}/events");
        let (status, frame) = first_event(&app, &events, Some(&token)).await;
        assert_eq!(status, 200, "{frame}");
        assert!(frame.contains(&no), "{frame}");

        // Another customer of the same app sees nothing of it.
        let other = hs256(&claims("customer-2"), SECRET.as_bytes());
        let (status, body) = order_status(&app, &other, &no).await;
        assert_eq!(status, 404, "{body}");
        let (status, body) = app
            .post(
                "/api/v1/payment/cancel-order",
                &json!({"order_no": no}),
                Some(&other),
            )
            .await;
        assert_eq!(status, 404, "{body}");
        let (status, body) = app
            .post(
                &format!("/api/v1/payment/orders/{no}/stream-token"),
                &json!({}),
                Some(&other),
            )
            .await;
        assert_eq!(status, 404, "{body}");
        let (_, list) = app.get("/api/v1/payment/orders", Some(&other)).await;
        assert_eq!(list["total"], 0, "{list}");
        assert_ne!(
            fenpay::db::apps::account_of(&app.state.db, &shop, "customer-2")
                .await
                .unwrap(),
            Some(account.clone())
        );

        // Never an administrator.
        for path in ["/api/v1/admin/orders", "/api/v1/admin/stats"] {
            let (status, body) = app.get(path, Some(&token)).await;
            assert_eq!(status, 403, "{path}: {body}");
        }
        let (status, _) = put_jwt(
            &app,
            &token,
            &shop,
            &json!({"issuer": "x", "hs256_secret": SECRET}),
        )
        .await;
        assert_eq!(status, 403);
        let (status, _) = delete_jwt(&app, &token, &shop).await;
        assert_eq!(status, 403);

        // cancel-order by its owner.
        let (status, body) = app
            .post(
                "/api/v1/payment/cancel-order",
                &json!({"order_no": no}),
                Some(&token),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let (_, body) = order_status(&app, &token, &no).await;
        assert_eq!(body["status"], "cancelled", "{body}");

        // "Log out everywhere" by such a user revokes its stream tokens; the app's own
        // tokens keep working (their lifetime is the app's business).
        let resp = app
            .client
            .post(app.url("/api/v1/auth/logout-all"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 204);
        let (status, _) = first_event(&app, stream["url"].as_str().unwrap(), None).await;
        assert_eq!(status, 401, "the stream token died with logout-all");
        let (status, _) = app.get("/api/v1/auth/me", Some(&token)).await;
        assert_eq!(status, 200);

        // fenpay's own tokens are unaffected.
        let alice = app.signup("alice").await;
        let (status, _) = app.get("/api/v1/auth/me", Some(&alice)).await;
        assert_eq!(status, 200);

        // Clearing the configuration refuses the app's tokens at the next request.
        let (status, config) = delete_jwt(&app, &admin, &shop).await;
        assert_eq!(status, 200, "{config}");
        assert_eq!(config["issuer"], Value::Null);
        assert_refused(&app, &token, "configuration cleared").await;
    }
);

both_backends!(
    bad_tokens_are_refused_with_401_and_nothing_written,
    &overrides(),
    |app: TestApp| async move {
        let admin = app.admin("root").await;
        let shop = new_app(&app, "shop").await;
        let key = rsa_test_key();
        let (status, config) = put_jwt(
            &app,
            &admin,
            &shop,
            &json!({"issuer": ISSUER, "audience": AUDIENCE, "public_keys": key.pem}),
        )
        .await;
        assert_eq!(status, 200, "{config}");
        assert_eq!(
            config["public_keys"],
            json!([{"kid": null, "alg": "RS256"}])
        );
        assert_eq!(config["hs256_secret_set"], false);
        let rs256 = |c: &Value| sign(Algorithm::RS256, None, c, &key.signer);
        let before = counts(&app).await;

        let mut wrong_iss = claims("c1");
        wrong_iss["iss"] = json!("https://login.other.example");
        let mut wrong_aud = claims("c1");
        wrong_aud["aud"] = json!("another-service");
        let mut no_aud = claims("c1");
        no_aud.as_object_mut().unwrap().remove("aud");
        let mut expired = claims("c1");
        expired["exp"] = json!(now() - 300);
        let mut early = claims("c1");
        early["nbf"] = json!(now() + 300);
        let mut no_exp = claims("c1");
        no_exp.as_object_mut().unwrap().remove("exp");
        let mut bad_sub = claims("c1");
        bad_sub["sub"] = json!("robert'); drop table users;--");
        let stranger = rsa_test_key();
        let b64 = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let cases: Vec<(&str, String)> = vec![
            ("wrong issuer", rs256(&wrong_iss)),
            ("wrong audience", rs256(&wrong_aud)),
            ("no audience", rs256(&no_aud)),
            ("expired", rs256(&expired)),
            ("not yet valid", rs256(&early)),
            ("no exp", rs256(&no_exp)),
            ("sub with bad characters", rs256(&bad_sub)),
            (
                "wrong key",
                sign(Algorithm::RS256, None, &claims("c1"), &stranger.signer),
            ),
            (
                "HS256 signed with the public key (algorithm confusion)",
                hs256(&claims("c1"), key.pem.as_bytes()),
            ),
            (
                "alg none",
                format!(
                    "{}.{}.",
                    b64(json!({"alg": "none", "typ": "JWT"})),
                    b64(claims("c1"))
                ),
            ),
            ("not a JWT", "definitely-not-a-token".into()),
        ];
        for (why, token) in &cases {
            let message = assert_refused(&app, token, why).await;
            if *why == "expired" {
                assert_eq!(message, "token expired");
            } else {
                assert_eq!(message, "invalid token", "{why}");
            }
        }
        assert_eq!(counts(&app).await, before, "refused tokens wrote nothing");

        // The right token works; then the key changes: the old key's tokens stop at once.
        let good = rs256(&claims("c1"));
        let (status, body) = create_order(&app, &good).await;
        assert_eq!(status, 200, "{body}");
        let rotated = rsa_test_key();
        let (status, _) = put_jwt(
            &app,
            &admin,
            &shop,
            &json!({"issuer": ISSUER, "audience": AUDIENCE, "public_keys": rotated.pem}),
        )
        .await;
        assert_eq!(status, 200);
        assert_refused(&app, &good, "key rotated").await;
        let fresh = sign(Algorithm::RS256, None, &claims("c1"), &rotated.signer);
        let (status, _) = app.get("/api/v1/auth/me", Some(&fresh)).await;
        assert_eq!(status, 200);

        // A revoked app: its tokens are refused at the next request.
        assert!(fenpay::db::apps::revoke(&app.state.db, &shop)
            .await
            .unwrap());
        let after = counts(&app).await;
        assert_refused(&app, &fresh, "revoked app").await;
        let newcomer = sign(Algorithm::RS256, None, &claims("c9"), &rotated.signer);
        assert_refused(&app, &newcomer, "revoked app, new sub").await;
        assert_eq!(
            counts(&app).await,
            after,
            "nothing written for a revoked app"
        );
        let (status, body) = put_jwt(
            &app,
            &admin,
            &shop,
            &json!({"issuer": ISSUER, "public_keys": rotated.pem}),
        )
        .await;
        assert_eq!((status, body["code"].as_str()), (409, Some("app_revoked")));
    }
);

both_backends!(
    es256_tokens_from_a_jwks_pick_their_key_by_kid,
    &overrides(),
    |app: TestApp| async move {
        let admin = app.admin("root").await;
        let shop = new_app(&app, "shop").await;
        let (jwk_a, sign_a) = ec_test_key("2026-11");
        let (jwk_b, sign_b) = ec_test_key("2026-12");
        let jwks = json!({"keys": [jwk_a, jwk_b]}).to_string();
        let (status, config) = put_jwt(
            &app,
            &admin,
            &shop,
            &json!({"issuer": ISSUER, "public_keys": jwks}),
        )
        .await;
        assert_eq!(status, 200, "{config}");
        assert_eq!(
            config["public_keys"],
            json!([{"kid": "2026-11", "alg": "ES256"}, {"kid": "2026-12", "alg": "ES256"}])
        );
        // No audience configured: tokens with or without `aud` pass.
        let by_b = sign(
            Algorithm::ES256,
            Some("2026-12"),
            &claims("buyer-7"),
            &sign_b,
        );
        let (status, order) = create_order(&app, &by_b).await;
        assert_eq!(status, 200, "{order}");
        let no = order["order_no"].as_str().unwrap();
        let by_a = sign(
            Algorithm::ES256,
            Some("2026-11"),
            &claims("buyer-7"),
            &sign_a,
        );
        let (status, body) = order_status(&app, &by_a, no).await;
        assert_eq!(
            status, 200,
            "the other key of the set, same customer: {body}"
        );

        let before = counts(&app).await;
        let mislabelled = sign(
            Algorithm::ES256,
            Some("2026-11"),
            &claims("buyer-8"),
            &sign_b,
        );
        assert_refused(&app, &mislabelled, "kid names the other key").await;
        let unknown = sign(
            Algorithm::ES256,
            Some("2027-01"),
            &claims("buyer-8"),
            &sign_b,
        );
        assert_refused(&app, &unknown, "unknown kid").await;
        let hs = hs256(&claims("buyer-8"), SECRET.as_bytes());
        assert_refused(&app, &hs, "HS256 against a public-key app").await;
        assert_eq!(counts(&app).await, before);

        // The configuration is checked before it is stored.
        let other = new_app(&app, "other").await;
        let refused = [
            (
                json!({"issuer": ISSUER, "hs256_secret": SECRET}),
                409,
                "jwt_issuer_taken",
            ),
            (
                json!({"issuer": "https://o.example", "hs256_secret": "too-short"}),
                400,
                "invalid_jwt_config",
            ),
            (
                json!({"issuer": "https://o.example"}),
                400,
                "invalid_jwt_config",
            ),
            (
                json!({"issuer": " ", "hs256_secret": SECRET}),
                400,
                "invalid_jwt_config",
            ),
            (
                json!({"issuer": "https://o.example", "public_keys": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"}),
                400,
                "invalid_jwt_config",
            ),
            (
                json!({"issuer": "https://o.example", "public_keys": "{\"keys\": [{\"kty\": \"oct\", \"k\": \"AAAA\"}]}"}),
                400,
                "invalid_jwt_config",
            ),
            (
                json!({"issuer": "https://o.example", "hs256_secret": SECRET, "extra": 1}),
                400,
                "",
            ),
        ];
        for (body, want_status, want_code) in refused {
            let (status, answer) = put_jwt(&app, &admin, &other, &body).await;
            assert_eq!(status, want_status, "{body}: {answer}");
            if !want_code.is_empty() {
                assert_eq!(answer["code"], want_code, "{body}: {answer}");
            }
        }
        // fenpay's own JWT secret is never an app's secret.
        let own = app.state.settings.jwt_secret.expose().to_string();
        let (status, answer) = put_jwt(
            &app,
            &admin,
            &other,
            &json!({"issuer": "https://o.example", "hs256_secret": own}),
        )
        .await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (400, Some("invalid_jwt_config"))
        );
        let (status, shown) = app
            .get(&format!("/api/v1/admin/apps/{other}/jwt"), Some(&admin))
            .await;
        assert_eq!(status, 200);
        assert_eq!(shown["issuer"], Value::Null, "nothing stored: {shown}");
        let (status, _) = put_jwt(
            &app,
            &admin,
            "app_nosuchapp",
            &json!({"issuer": "https://o.example", "hs256_secret": SECRET}),
        )
        .await;
        assert_eq!(status, 404);
    }
);
