//! The `fenpay` binary as an operator runs it (issue #12): graceful shutdown on SIGTERM,
//! `fenpay doctor` (with and without `--probe`), `fenpay trigger paid` and
//! `fenpay replay`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const JWT: &str = "cli-test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";

/// One set of TEST keys shared with the other test suites (generating RSA keys is slow).
fn dev_keys_dir() -> &'static str {
    static DIR: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/test-dev-keys");
        fenpay::devkeys::DevKeys::load_or_generate(std::path::Path::new(dir)).unwrap();
        dir.to_string()
    })
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A `fenpay` command in `dir` with only the variables given (no `.env`, no inherited
/// settings).
fn fenpay(dir: &std::path::Path, vars: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fenpay"));
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .env("DATA_DIR", dir)
        .env("DEV_KEYS_DIR", dev_keys_dir());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd
}

/// Run to completion: exit code and stdout + stderr.
fn run(mut cmd: Command) -> (i32, String) {
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// `fenpay serve` in a temp dir with the in-process emulator, on free ports.
struct Served {
    child: Child,
    dir: tempfile::TempDir,
    vars: Vec<(&'static str, String)>,
    base: String,
    emulator: String,
    http: reqwest::Client,
}

impl Served {
    async fn start(extra: &[(&'static str, &str)]) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let (port, emu) = (free_port(), free_port());
        let mut vars: Vec<(&'static str, String)> = vec![
            ("BIND_ADDR", format!("127.0.0.1:{port}")),
            ("EMULATOR_BIND", format!("127.0.0.1:{emu}")),
            ("EMULATOR_TIME_SCALE", "1000".into()),
            ("JWT_SECRET", JWT.into()),
            ("HTTP_WORKERS", "2".into()),
            (
                "DATABASE_URL",
                format!("sqlite://{}", dir.path().join("fenpay.db").display()),
            ),
        ];
        vars.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        let mut cmd = fenpay(dir.path(), &vars);
        cmd.arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        // Keep stderr drained (the child must never block on a full pipe).
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[fenpay serve] {line}");
            }
        });
        let served = Served {
            child,
            dir,
            vars,
            base: format!("http://127.0.0.1:{port}"),
            emulator: format!("http://127.0.0.1:{emu}"),
            http: reqwest::Client::new(),
        };
        for _ in 0..600 {
            if let Ok(r) = served.http.get(served.url("/healthz")).send().await {
                if r.status().is_success() {
                    return served;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("fenpay serve did not start");
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn command(&self) -> Command {
        fenpay(self.dir.path(), &self.vars)
    }

    async fn post(&self, path: &str, body: Value, token: Option<&str>) -> (u16, Value) {
        let mut req = self.http.post(self.url(path)).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn buyer(&self, name: &str) -> String {
        let password = format!("password-{name}");
        let (s, b) = self
            .post(
                "/api/v1/auth/register",
                json!({"username": name, "password": password, "email": format!("{name}@example.com")}),
                None,
            )
            .await;
        assert_eq!(s, 201, "{b}");
        let (s, b) = self
            .post(
                "/api/v1/auth/login",
                json!({"username": name, "password": password}),
                None,
            )
            .await;
        assert_eq!(s, 200, "{b}");
        b["access_token"].as_str().unwrap().to_string()
    }

    async fn order(&self, token: &str) -> String {
        let (s, b) = self
            .post(
                "/api/v1/payment/create-order",
                json!({"product_type": "points", "product_id": 1, "payment_method": "wechat"}),
                Some(token),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        b["order_no"].as_str().unwrap().to_string()
    }

    async fn db(&self) -> fenpay::db::Db {
        let url = &self
            .vars
            .iter()
            .find(|(k, _)| *k == "DATABASE_URL")
            .unwrap()
            .1;
        fenpay::db::Db::connect(url, 1).await.unwrap()
    }

    fn sql(&self, sql: &str) {
        use diesel::{Connection, RunQueryDsl};
        let path = self.dir.path().join("fenpay.db");
        let mut conn = diesel::SqliteConnection::establish(&path.display().to_string()).unwrap();
        diesel::sql_query("PRAGMA busy_timeout = 5000")
            .execute(&mut conn)
            .unwrap();
        diesel::sql_query(sql).execute(&mut conn).unwrap();
    }

    fn sigterm(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Wait for the process to exit (at most `limit`); its exit code.
    fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn sigterm_drains_requests_ends_streams_and_releases_job_claims() {
    let mut app = Served::start(&[
        ("SWEEP_INTERVAL_SECS", "1"),
        ("SHUTDOWN_TIMEOUT_SECS", "20"),
        ("WECHAT_PAY_TIMEOUT_SECS", "10"),
        ("PAYMENT_QUERY_RETRY_MAX", "0"),
    ])
    .await;
    let token = app.buyer("drain").await;
    let expiring = app.order(&token).await;
    let watched = app.order(&token).await;

    // A live stream on one order: its first frame arrives.
    let mut stream = app
        .http
        .get(app.url(&format!("/api/v1/payment/orders/{watched}/events")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let mut seen = String::new();
    while !seen.contains("event: status") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }

    // From now on the provider stalls every call for 3 s (then fails).
    let r = app
        .http
        .post(format!("{}/__emulator/faults", app.emulator))
        .json(&json!({"timeout_requests_next": 50, "timeout_ms": 3000}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    // The sweeper claims the expired order and is stuck in the provider's close.
    app.sql(&format!(
        "UPDATE orders SET expire_at = datetime('now', '-1 hour') WHERE order_no = '{expiring}'"
    ));
    let db = app.db().await;
    let mut claimed = false;
    for _ in 0..200 {
        let row = fenpay::db::orders::find(&db, &expiring)
            .await
            .unwrap()
            .unwrap();
        if row.lease_until.is_some() {
            claimed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(claimed, "the sweeper never claimed the expired order");

    // A request in flight: create-order waits for the stalled provider.
    let (http, url, t) = (
        app.http.clone(),
        app.url("/api/v1/payment/create-order"),
        token.clone(),
    );
    let in_flight = tokio::spawn(async move {
        http.post(url)
            .bearer_auth(t)
            .json(&json!({"product_type": "points", "product_id": 1, "payment_method": "wechat"}))
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    // Let it reach the server (it then waits ~3 s at the provider).
    tokio::time::sleep(Duration::from_millis(500)).await;

    let signalled = Instant::now();
    app.sigterm();

    // The stream ends with its final event.
    let mut tail = String::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(15), stream.chunk()).await {
            Ok(Ok(Some(chunk))) => tail.push_str(&String::from_utf8_lossy(&chunk)),
            Ok(Err(e)) => panic!("the stream broke instead of ending: {e}; got {tail:?}"),
            Ok(Ok(None)) => break,
            Err(_) => panic!("the stream neither ended nor said why: {tail:?}"),
        }
    }
    assert!(tail.contains("event: shutdown"), "{tail:?}");
    // The request in flight was answered (the provider's failure: 502), not cut off.
    let answered = in_flight.await.unwrap();
    assert!(
        matches!(answered, Ok(s) if s >= 200),
        "the request in flight was cut off: {answered:?}"
    );
    let code = app.wait_exit(Duration::from_secs(25));
    let took = signalled.elapsed();
    assert_eq!(code, Some(0), "exit after {took:?}");
    assert!(
        took < Duration::from_secs(20),
        "took {took:?} (SHUTDOWN_TIMEOUT_SECS=20)"
    );
    eprintln!("shutdown took {took:?}");
    // The sweeper finished its close (it failed) and gave the order back.
    let row = fenpay::db::orders::find(&db, &expiring)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.lease_until, None, "the job's claim was left leased");
    assert_eq!(row.status.as_str(), "pending");
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn doctor_names_every_broken_variable_and_exits_non_zero() {
    let keys =
        fenpay::devkeys::DevKeys::load_or_generate(std::path::Path::new(dev_keys_dir())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let garbage = write(
        d,
        "apiclient_key.pem",
        "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n",
    );
    let pubkey = write(
        d,
        "pub_key.pem",
        &keys.wechat_platform_key.public_key().to_spki_pem(),
    );
    let app_key = keys.alipay_app_key.to_pkcs8_pem();
    let own_public = keys.alipay_app_key.public_key().to_spki_pem();
    let vars: Vec<(&str, String)> = vec![
        ("APP_ENV", "production".into()),
        ("DATABASE_URL", format!("sqlite://{}/x.db", d.display())),
        ("JWT_SECRET", "short".into()),
        ("PUBLIC_BASE_URL", "http://127.0.0.1:8080".into()),
        ("WECHAT_PAY_PRIVATE_KEY_PATH", garbage),
        ("WECHAT_PAY_MCH_ID", "mch-1".into()),
        ("WECHAT_PAY_APP_ID", "app".into()),
        ("WECHAT_PAY_API_V3_KEY", "too-short".into()),
        (
            "WECHAT_PAY_MCH_SERIAL",
            "3775B6A45ACD588826D15E583A95F5DD2C0A2E44".into(),
        ),
        ("WECHAT_PAY_PUBLIC_KEY_PATH", pubkey),
        ("WECHAT_PAY_PUBLIC_KEY_ID", "KEY_123".into()),
        ("ALIPAY_APP_ID", "12345".into()),
        ("ALIPAY_PRIVATE_KEY", app_key),
        ("ALIPAY_PUBLIC_KEY", own_public),
    ];
    let mut cmd = fenpay(d, &vars);
    cmd.arg("doctor");
    let (code, out) = run(cmd);
    assert_eq!(code, 1, "{out}");
    for var in [
        "JWT_SECRET",
        "PUBLIC_BASE_URL",
        "WECHAT_PAY_PRIVATE_KEY_PATH",
        "WECHAT_PAY_MCH_ID",
        "WECHAT_PAY_APP_ID",
        "WECHAT_PAY_API_V3_KEY",
        "WECHAT_PAY_PUBLIC_KEY_ID",
        "ALIPAY_APP_ID",
        "ALIPAY_PUBLIC_KEY",
    ] {
        assert!(
            out.contains(&format!("PROBLEM {var}: ")),
            "{var} not named:\n{out}"
        );
    }
    assert!(out.contains("your app's own public key"), "{out}");
    assert!(out.contains("must be exactly 32 bytes, got 9"), "{out}");
    assert!(!out.contains("panicked"), "{out}");
    // Nothing secret is printed.
    assert!(!out.contains("BEGIN PRIVATE KEY"), "{out}");
}

/// Certificate mode on the dev key set's TEST chain (`alipayRootCert.crt`, ...).
fn alipay_cert_vars(app: &str, cert: &str, root: &str) -> Vec<(&'static str, String)> {
    let keys =
        fenpay::devkeys::DevKeys::load_or_generate(std::path::Path::new(dev_keys_dir())).unwrap();
    let path = |name: &str| format!("{}/{name}", dev_keys_dir());
    vec![
        ("ALIPAY_APP_ID", "2021000000000001".into()),
        ("ALIPAY_PRIVATE_KEY", keys.alipay_app_key.to_pkcs8_pem()),
        ("ALIPAY_APP_CERT_PATH", path(app)),
        ("ALIPAY_CERT_PATH", path(cert)),
        ("ALIPAY_ROOT_CERT_PATH", path(root)),
    ]
}

#[test]
fn doctor_checks_the_alipay_certificate_chain_and_prints_the_sns() {
    let keys =
        fenpay::devkeys::DevKeys::load_or_generate(std::path::Path::new(dev_keys_dir())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let vars = alipay_cert_vars(
        "appCertPublicKey.crt",
        "alipayCertPublicKey_RSA2.crt",
        "alipayRootCert.crt",
    );
    let mut cmd = fenpay(dir.path(), &vars);
    cmd.arg("doctor");
    let (code, out) = run(cmd);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!(
            "matches ALIPAY_PRIVATE_KEY, app_cert_sn {}",
            keys.alipay_app_cert_sn
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("alipay_root_cert_sn {}", keys.alipay_root_cert_sn)),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "alipay_cert_sn {}, issued by root CN=fenpay emulator TEST Alipay Root CA",
            keys.alipay_cert_sn
        )),
        "{out}"
    );
    assert!(out.contains("days left"), "{out}");
    // The sample sign string carries both SNs.
    assert!(
        out.contains(&format!(
            "alipay_root_cert_sn={}&app_cert_sn={}&app_id=",
            keys.alipay_root_cert_sn, keys.alipay_app_cert_sn
        )),
        "{out}"
    );

    // Swapped certificates and a root bundle that did not issue them: each named.
    let vars = alipay_cert_vars(
        "alipayCertPublicKey_RSA2.crt",
        "appCertPublicKey.crt",
        "wechat_platform_cert.pem",
    );
    let mut cmd = fenpay(dir.path(), &vars);
    cmd.arg("doctor");
    let (code, out) = run(cmd);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("PROBLEM ALIPAY_APP_CERT_PATH: ")
            && out.contains("certifies another key than ALIPAY_PRIVATE_KEY"),
        "{out}"
    );
    assert!(
        out.contains("PROBLEM ALIPAY_CERT_PATH: ")
            && out.contains("does not chain to ALIPAY_ROOT_CERT_PATH"),
        "{out}"
    );
    assert!(out.contains("is over your app's own key"), "{out}");
    assert!(!out.contains("BEGIN PRIVATE KEY"), "{out}");

    // Two of three.
    let mut vars = alipay_cert_vars("appCertPublicKey.crt", "alipayCertPublicKey_RSA2.crt", "x");
    vars.pop();
    let mut cmd = fenpay(dir.path(), &vars);
    cmd.arg("doctor");
    let (code, out) = run(cmd);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("PROBLEM ALIPAY_ROOT_CERT_PATH: certificate mode needs all three"),
        "{out}"
    );
}

#[test]
fn doctor_passes_the_development_configuration_and_prints_what_it_signs() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = fenpay(dir.path(), &[]);
    cmd.arg("doctor");
    let (code, out) = run(cmd);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("no problems found"), "{out}");
    // WeChat's signature message (method, URL, timestamp, nonce, empty body) ...
    assert!(out.contains("WeChat Pay (emulator TEST key"), "{out}");
    assert!(out.contains("\"GET\\n/v3/pay/transactions/out-trade-no/FPDOCTOR0000000000000001?mchid=1900000109\\n"), "{out}");
    assert!(
        out.contains("Authorization: WECHATPAY2-SHA256-RSA2048 mchid=\"1900000109\""),
        "{out}"
    );
    // ... and Alipay's sign string, sorted, sign_type included.
    assert!(out.contains("app_id=2021000000000001&biz_content={\"out_trade_no\":\"FPDOCTOR0000000000000001\"}&charset=utf-8&format=JSON&method=alipay.trade.query&sign_type=RSA2&timestamp="), "{out}");
}

#[test]
fn doctor_probe_asks_the_emulator_and_names_an_unreachable_provider() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let vars = vec![("EMULATOR_BIND", format!("127.0.0.1:{port}"))];
    // Nobody listens there yet: the probe fails, naming the URL's variable.
    let mut cmd = fenpay(dir.path(), &vars);
    cmd.args(["doctor", "--probe"]);
    let (code, out) = run(cmd);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("PROBLEM WECHAT_PAY_BASE_URL: "), "{out}");
    assert!(out.contains("PROBLEM ALIPAY_GATEWAY: "), "{out}");

    let mut emulator = fenpay(dir.path(), &vars);
    emulator
        .arg("emulator")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = emulator.spawn().unwrap();
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "emulator did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut cmd = fenpay(dir.path(), &vars);
    cmd.args(["doctor", "--probe"]);
    let (code, out) = run(cmd);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("probe WeChat Pay query of FPDOCTOR0000000000000001: ORDER_NOT_EXIST"),
        "{out}"
    );
    assert!(
        out.contains(
            "probe Alipay alipay.trade.query of FPDOCTOR0000000000000001: ACQ.TRADE_NOT_EXIST"
        ),
        "{out}"
    );
    assert!(
        out.contains("probe WeChat Pay GET /v3/certificates"),
        "{out}"
    );
}

#[tokio::test]
async fn trigger_paid_pays_through_the_emulator_and_replay_sends_a_notification_again() {
    let metrics = format!("127.0.0.1:{}", free_port());
    let app = Served::start(&[("METRICS_BIND", &metrics)]).await;
    let scrape = || async {
        reqwest::get(format!("http://{metrics}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let applied_series =
        r#"fenpay_notifications_total{provider="wechat",result="applied",reason=""} "#;
    let duplicate_series =
        r#"fenpay_notifications_total{provider="wechat",result="duplicate",reason=""} "#;
    let text = scrape().await;
    assert!(text.contains(&format!("{applied_series}0\n")), "{text}");
    let token = app.buyer("trigger").await;
    let no = app.order(&token).await;

    let mut cmd = app.command();
    cmd.args(["trigger", "paid", &no]);
    let (code, out) = tokio::task::spawn_blocking(move || run(cmd)).await.unwrap();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("order {no}: paid")), "{out}");

    let db = app.db().await;
    let records = fenpay::db::orders::records_for(&db, &no).await.unwrap();
    let notification = records
        .iter()
        .find(|r| r.kind == "notification" && r.decision == "Applied")
        .unwrap_or_else(|| panic!("no applied notification: {records:?}"));
    let prepay = records.iter().find(|r| r.kind == "prepay").unwrap();

    // Replayed: verified again (signature, timestamp) and found to be a duplicate.
    let mut cmd = app.command();
    cmd.args(["replay", &notification.id.to_string()]);
    let (code, out) = tokio::task::spawn_blocking(move || run(cmd)).await.unwrap();
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("/api/v1/payment/wechat/callback -> 204"),
        "{out}"
    );
    let mut duplicate = false;
    for _ in 0..300 {
        let records = fenpay::db::orders::records_for(&db, &no).await.unwrap();
        if records
            .iter()
            .any(|r| r.kind == "notification" && r.decision == "Duplicate" && r.verified)
        {
            duplicate = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        duplicate,
        "the replay was not verified and recorded as a duplicate"
    );
    // This process's own counters, on the METRICS_BIND listener (no token needed there;
    // the main listener has no /metrics without METRICS_TOKEN).
    let text = scrape().await;
    assert!(text.contains(&format!("{applied_series}1\n")), "{text}");
    assert!(text.contains(&format!("{duplicate_series}1\n")), "{text}");
    let main = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(main.status(), 404);

    // Only notifications can be replayed.
    let mut cmd = app.command();
    cmd.args(["replay", &prepay.id.to_string()]);
    let (code, out) = tokio::task::spawn_blocking(move || run(cmd)).await.unwrap();
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not a notification"), "{out}");
}
