//! The `fenpay-emulator` binary on its own, driven the way a third-party SDK would drive
//! it: configuration from `GET /__emulator/merchant` and the TEST key files, a signed
//! WeChat Pay request, a verified answer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use fenpay_proto::wechat;
use fenpay_proto::{RsaPrivateKey, RsaPublicKey};

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start the binary on a free port with a fresh key directory; its base URL.
fn start(keys: &std::path::Path) -> (Running, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fenpay-emulator"))
        .env("EMULATOR_BIND", "127.0.0.1:0")
        .env("EMULATOR_KEYS_DIR", keys)
        .env("EMULATOR_TIME_SCALE", "100")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start fenpay-emulator");
    let stdout = child.stdout.take().unwrap();
    let running = Running(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let url = line
        .strip_prefix("emulator listening on ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_string();
    (running, url)
}

#[tokio::test]
async fn the_binary_serves_an_sdk_configured_from_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let (_emu, base) = start(dir.path());
    let http = reqwest::Client::new();

    let info: serde_json::Value = http
        .get(format!("{base}/__emulator/merchant"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let wx = &info["wechat"];
    assert_eq!(wx["key_mode"], "public_key");
    // The public key file written next to the keys is the one the merchant info names.
    let pem_file = std::fs::read_to_string(dir.path().join("wechat_pay_public_key.pem")).unwrap();
    assert_eq!(wx["public_key_pem"].as_str().unwrap(), pem_file);
    assert!(info["alipay"]["alipay_public_key_pem"]
        .as_str()
        .unwrap()
        .contains("BEGIN PUBLIC KEY"));
    // No secret leaves through the control API.
    let text = info.to_string();
    let v3_key = std::fs::read_to_string(dir.path().join("wechat_api_v3_key")).unwrap();
    assert!(!text.contains(v3_key.trim()));
    assert!(!text.contains("PRIVATE KEY"));

    // A Native prepay signed with the merchant's TEST key from the key directory.
    let merchant_key = RsaPrivateKey::from_pem(
        &std::fs::read_to_string(dir.path().join("wechat_merchant_key.pem")).unwrap(),
    )
    .unwrap();
    let mch_id = wx["mch_id"].as_str().unwrap();
    let body = serde_json::json!({
        "appid": wx["app_id"], "mchid": mch_id, "description": "binary test",
        "out_trade_no": "BIN0000000001", "notify_url": "https://merchant.example/notify",
        "amount": {"total": 1, "currency": "CNY"}
    })
    .to_string();
    let path = "/v3/pay/transactions/native";
    let now = chrono::Utc::now().timestamp();
    let auth = wechat::authorization(
        mch_id,
        wx["merchant_serial_no"].as_str().unwrap(),
        &merchant_key,
        "POST",
        path,
        now,
        "binarytestnonce",
        &body,
    )
    .unwrap();
    let resp = http
        .post(format!("{base}{path}"))
        .header("authorization", auth)
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .unwrap_or_else(|| panic!("answer without {name}"))
            .to_str()
            .unwrap()
            .to_string()
    };
    let (ts, nonce, sig, serial) = (
        header("wechatpay-timestamp"),
        header("wechatpay-nonce"),
        header("wechatpay-signature"),
        header("wechatpay-serial"),
    );
    assert_eq!(serial, wx["public_key_id"].as_str().unwrap());
    let answer = resp.bytes().await.unwrap();
    let public_key = RsaPublicKey::from_pem(&pem_file).unwrap();
    wechat::verify_signed_message(&public_key, &ts, &nonce, &answer, &sig, now).unwrap();
    let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    assert!(answer["code_url"]
        .as_str()
        .unwrap()
        .starts_with("weixin://"));

    // The same request signed by another key is refused.
    let stranger = RsaPrivateKey::generate(2048).unwrap();
    let body = r#"{"mchid":"x"}"#;
    let auth = wechat::authorization(
        mch_id,
        wx["merchant_serial_no"].as_str().unwrap(),
        &stranger,
        "POST",
        path,
        now,
        "othernonce",
        body,
    )
    .unwrap();
    let resp = http
        .post(format!("{base}{path}"))
        .header("authorization", auth)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

#[test]
fn a_bad_setting_is_refused_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fenpay-emulator"))
        .env("EMULATOR_BIND", "127.0.0.1:0")
        .env("EMULATOR_KEYS_DIR", dir.path())
        .env("EMULATOR_WECHAT_MODE", "sometimes")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("EMULATOR_WECHAT_MODE"), "{err}");
}
