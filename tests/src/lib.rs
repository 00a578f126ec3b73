//! Harness for fenpay's end-to-end tests: spawn the real application on port 0 with a
//! fresh database (a temp SQLite file, or a fresh PostgreSQL database when
//! `TEST_DATABASE_URL` is set) and talk to it over HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod notices;

use std::collections::HashMap;

use fenpay::{Application, Settings};
use serde_json::{json, Value};

/// Which storage backend a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A running application with its own database.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub state: fenpay::startup::AppStateHandle,
    pub backend: Backend,
    pub database_url: String,
    _dir: tempfile::TempDir,
    pg_db: Option<(String, String)>,
}

impl TestApp {
    /// SQLite in a temp dir.
    pub async fn sqlite(overrides: &[(&str, &str)]) -> TestApp {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("fenpay.db").display());
        TestApp::start(Backend::Sqlite, url, dir, None, overrides).await
    }

    /// Overrides that start the in-process emulator on a free port, with shared dev keys
    /// and provider resend delays compressed 1000x. `TEST_ALIPAY_API=v3` in the test's
    /// environment runs fenpay's Alipay server calls over OpenAPI v3 (`ALIPAY_API=v3`).
    pub fn emulator_overrides() -> Vec<(&'static str, &'static str)> {
        let mut overrides = vec![
            ("EMULATOR_ENABLED", "true"),
            ("EMULATOR_BIND", "127.0.0.1:0"),
            ("EMULATOR_TIME_SCALE", "1000"),
            ("DEV_KEYS_DIR", shared_dev_keys_dir()),
            ("WECHAT_PAY_TIMEOUT_SECS", "2"),
            ("ALIPAY_TIMEOUT_SECS", "2"),
        ];
        if std::env::var("TEST_ALIPAY_API").is_ok_and(|v| v.eq_ignore_ascii_case("v3")) {
            overrides.push(("ALIPAY_API", "v3"));
        }
        overrides
    }

    /// [`Self::emulator_overrides`] with the emulated Alipay app in `mode`
    /// (`public_key` or `certificate`); fenpay's client on the dev keys follows it.
    /// Certificate mode always runs over `gateway.do`, whatever `TEST_ALIPAY_API` says.
    pub fn emulator_overrides_alipay(mode: &'static str) -> Vec<(&'static str, &'static str)> {
        let mut vars = Self::emulator_overrides();
        if mode == "certificate" {
            // OpenAPI v3 is refused in certificate mode (the SNs are not sent there yet):
            // those runs stay on gateway.do.
            vars.retain(|(k, _)| *k != "ALIPAY_API");
        }
        vars.push(("EMULATOR_ALIPAY_MODE", mode));
        vars
    }

    /// The emulator's base URL (panics when it is not enabled).
    pub fn emulator(&self) -> String {
        self.state.emulator_url.clone().expect("emulator enabled")
    }

    /// Call the emulator's control API.
    pub async fn emulator_post(&self, path: &str, body: &Value) -> (u16, Value) {
        let resp = self
            .client
            .post(format!("{}{}", self.emulator(), path))
            .json(body)
            .send()
            .await
            .expect("emulator request");
        into_json(resp).await
    }

    /// Poll order-status until it leaves `pending` (or 15 s pass); returns the last body.
    pub async fn wait_for_status(&self, token: &str, order_no: &str, want: &str) -> Value {
        let mut last = Value::Null;
        for _ in 0..150 {
            let (status, body) = self
                .get(
                    &format!("/api/v1/payment/order-status?order_no={order_no}"),
                    Some(token),
                )
                .await;
            assert_eq!(status, 200, "{body}");
            if body["status"] == want {
                return body;
            }
            last = body;
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("order {order_no} never became {want}: {last}");
    }

    /// Wait (up to 15 s) until the stored order has `status`, reading the database
    /// directly so no provider query interferes: only a notification can change it.
    pub async fn wait_in_db(&self, order_no: &str, status: &str) {
        for _ in 0..300 {
            let row = fenpay::db::orders::find(&self.state.db, order_no)
                .await
                .expect("db");
            if row.as_ref().is_some_and(|r| r.status.as_str() == status) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("order {order_no} never became {status} in the database");
    }

    /// A fresh PostgreSQL database, or `None` when `TEST_DATABASE_URL` is not set.
    pub async fn postgres(overrides: &[(&str, &str)]) -> Option<TestApp> {
        let admin_url = std::env::var("TEST_DATABASE_URL").ok()?;
        let name = format!("fenpay_t_{}", uuid::Uuid::new_v4().simple());
        pg_exec(&admin_url, &format!("CREATE DATABASE {name}")).await;
        let url = replace_db_name(&admin_url, &name);
        let dir = tempfile::tempdir().expect("tempdir");
        Some(
            TestApp::start(
                Backend::Postgres,
                url,
                dir,
                Some((admin_url, name)),
                overrides,
            )
            .await,
        )
    }

    async fn start(
        backend: Backend,
        database_url: String,
        dir: tempfile::TempDir,
        pg_db: Option<(String, String)>,
        overrides: &[(&str, &str)],
    ) -> TestApp {
        if std::env::var_os("RUST_LOG").is_none() {
            // Quiet by default; RUST_LOG=info shows the app's logs for a failing test.
            std::env::set_var("RUST_LOG", "error");
        }
        fenpay::telemetry::init();
        let settings =
            Settings::from_map(&test_vars(&dir, &database_url, overrides)).expect("test settings");
        let app = Application::build(settings).await.expect("build app");
        let database_url_kept = database_url.clone();
        let base = format!("http://127.0.0.1:{}", app.port());
        let (server, state) = app.into_parts();
        tokio::spawn(server);
        TestApp {
            base,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                // Below the server's 5 s keep-alive: never reuse a connection the server
                // may be closing at that moment (a request sent on it fails as incomplete).
                .pool_idle_timeout(std::time::Duration::from_secs(3))
                .build()
                .expect("client"),
            state,
            backend,
            database_url: database_url_kept,
            _dir: dir,
            pg_db,
        }
    }

    /// Another `fenpay serve` on the same PostgreSQL database, using this app's emulator
    /// (a second replica behind the same load balancer).
    pub async fn replica(&self, overrides: &[(&str, &str)]) -> TestApp {
        assert_eq!(self.backend, Backend::Postgres, "replicas need PostgreSQL");
        let emulator = self.emulator();
        let mut all: Vec<(&str, &str)> = overrides.to_vec();
        all.push(("EMULATOR_ENABLED", "false"));
        all.push(("EMULATOR_URL", &emulator));
        all.push(("DEV_KEYS_DIR", shared_dev_keys_dir()));
        let dir = tempfile::tempdir().expect("tempdir");
        TestApp::start(
            Backend::Postgres,
            self.database_url.clone(),
            dir,
            None,
            &all,
        )
        .await
    }

    /// Run raw SQL on the app's database (tests use it to move times into the past).
    pub async fn sql(&self, sql: &str) -> usize {
        use diesel_async::RunQueryDsl;
        let run = async {
            fenpay::db_write!(&self.state.db, |conn| {
                Ok::<usize, fenpay::db::DbError>(diesel::sql_query(sql).execute(conn).await?)
            })
        };
        let n = run.await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        // A write behind the app's back: this process's order cache cannot know (on
        // SQLite nothing tells it; on PostgreSQL the trigger's notice is asynchronous).
        self.state.db.order_cache().clear();
        n
    }

    /// How many rows `table` holds.
    pub async fn count(&self, table: &str) -> i64 {
        use diesel_async::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let sql = format!("SELECT COUNT(*) AS n FROM {table}");
        let run = async {
            fenpay::db_run!(&self.state.db, |conn| {
                Ok::<Count, fenpay::db::DbError>(
                    diesel::sql_query(sql.as_str()).get_result(conn).await?,
                )
            })
        };
        run.await.unwrap_or_else(|e| panic!("{sql}: {e}")).n
    }

    /// An order's payment records, once the background writer has stored what was queued.
    pub async fn records(&self, order_no: &str) -> Vec<fenpay::db::orders::PaymentRecordRow> {
        assert!(
            self.state
                .records
                .flushed(std::time::Duration::from_secs(10))
                .await,
            "payment records were not written within 10 s"
        );
        assert_eq!(
            self.state.records.failed(),
            0,
            "payment records were refused"
        );
        fenpay::db::orders::records_for(&self.state.db, order_no)
            .await
            .expect("db")
    }

    /// Run several statements in one transaction (all or nothing, seen at once by the app).
    pub async fn sql_atomic(&self, statements: &[String]) {
        use diesel_async::{AsyncConnection, RunQueryDsl};
        let run = async {
            fenpay::db_write!(&self.state.db, |conn| {
                conn.transaction::<(), fenpay::db::DbError, _>(async |conn| {
                    for sql in statements {
                        diesel::sql_query(sql.as_str()).execute(conn).await?;
                    }
                    Ok(())
                })
                .await
            })
        };
        run.await.unwrap_or_else(|e| panic!("{statements:?}: {e}"));
        self.state.db.order_cache().clear();
    }

    /// Register `username` and make it an administrator; returns a fresh admin token.
    pub async fn admin(&self, username: &str) -> String {
        let _ = self.signup(username).await;
        let ok = fenpay::db::users::set_role(&self.state.db, username, "admin")
            .await
            .expect("db");
        assert!(ok);
        self.login(username, &format!("password-{username}")).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// POST JSON, optionally with a bearer token; returns status and parsed body.
    pub async fn post(&self, path: &str, body: &Value, token: Option<&str>) -> (u16, Value) {
        let mut req = self.client.post(self.url(path)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        into_json(req.send().await.expect("request")).await
    }

    /// GET, optionally with a bearer token; returns status and parsed body.
    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut req = self.client.get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        into_json(req.send().await.expect("request")).await
    }

    /// Register `username` (password `password-<username>`) and return a bearer token.
    pub async fn signup(&self, username: &str) -> String {
        let password = format!("password-{username}");
        let (status, body) = self
            .post(
                "/api/v1/auth/register",
                &json!({"username": username, "password": password, "email": format!("{username}@example.com")}),
                None,
            )
            .await;
        assert_eq!(status, 201, "register {username}: {body}");
        self.login(username, &password).await
    }

    pub async fn login(&self, username: &str, password: &str) -> String {
        let (status, body) = self
            .post(
                "/api/v1/auth/login",
                &json!({"username": username, "password": password}),
                None,
            )
            .await;
        assert_eq!(status, 200, "login {username}: {body}");
        body["access_token"].as_str().expect("token").to_string()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some((admin_url, name)) = self.pg_db.take() {
            // Runs during unwinding too, so failed tests do not leak databases.
            let _ = std::thread::spawn(move || {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    rt.block_on(pg_exec(
                        &admin_url,
                        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                    ));
                }
            })
            .join();
        }
    }
}

/// One set of development TEST keys shared by every test in this workspace (RSA key
/// generation is slow, so it happens once and is kept under target/).
pub fn shared_dev_keys_dir() -> &'static str {
    static DIR: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/test-dev-keys");
        fenpay::devkeys::DevKeys::load_or_generate(std::path::Path::new(dir)).expect("dev keys");
        dir.to_string()
    })
}

/// The shared dev keys, for tests that play WeChat or Alipay themselves.
pub fn dev_keys() -> fenpay::devkeys::DevKeys {
    fenpay::devkeys::DevKeys::load_or_generate(std::path::Path::new(shared_dev_keys_dir()))
        .expect("dev keys")
}

/// Parse a response as JSON (non-JSON bodies become a JSON string for assertions).
pub async fn into_json(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

fn test_vars(
    dir: &tempfile::TempDir,
    database_url: &str,
    overrides: &[(&str, &str)],
) -> HashMap<String, String> {
    let mut vars: HashMap<String, String> = [
        ("APP_ENV", "development"),
        ("BIND_ADDR", "127.0.0.1:0"),
        ("DATABASE_POOL_SIZE", "5"),
        ("HTTP_WORKERS", "2"),
        ("EMULATOR_ENABLED", "false"),
        // Suites register many buyers and create many orders from one address: the
        // abuse limits (tests/tests/abuse.rs sets its own) stay out of their way.
        ("REGISTER_MAX_PER_IP", "1000000"),
        ("CREATE_ORDER_MAX_PER_USER", "1000000"),
        ("STREAM_MAX_PER_USER", "10000"),
        (
            "JWT_SECRET",
            "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz",
        ),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let data = dir.path().display().to_string();
    vars.insert("DATA_DIR".into(), data.clone());
    vars.insert("STATIC_DIR".into(), format!("{data}/no-spa"));
    vars.insert("DATABASE_URL".into(), database_url.to_string());
    for (k, v) in overrides {
        vars.insert(k.to_string(), v.to_string());
    }
    vars
}

fn replace_db_name(url: &str, name: &str) -> String {
    let (head, tail) = url
        .split_once('?')
        .map_or((url, None), |(h, t)| (h, Some(t)));
    let base = head.rsplit_once('/').map_or(head, |(b, _)| b);
    match tail {
        Some(t) => format!("{base}/{name}?{t}"),
        None => format!("{base}/{name}"),
    }
}

async fn pg_exec(url: &str, sql: &str) {
    use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
    let mut conn = AsyncPgConnection::establish(url)
        .await
        .unwrap_or_else(|e| panic!("connect TEST_DATABASE_URL: {e}"));
    conn.batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Run one async test body on SQLite and, when `TEST_DATABASE_URL` is set, on PostgreSQL.
///
/// `both_backends!(name, overrides, |app| async move { ... });` defines `name::sqlite` and
/// `name::postgres`.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $overrides:expr, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = $crate::TestApp::sqlite($overrides).await;
                ($body)(app).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                match $crate::TestApp::postgres($overrides).await {
                    Some(app) => ($body)(app).await,
                    None => eprintln!("TEST_DATABASE_URL not set: PostgreSQL variant skipped"),
                }
            }
        }
    };
}

/// Run one async test body in both Alipay key modes against the emulator, each on both
/// backends: `both_alipay_modes!(name, |app| async move { ... });` defines
/// `name::public_key::{sqlite,postgres}` and `name::certificate::{sqlite,postgres}`.
#[macro_export]
macro_rules! both_alipay_modes {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            $crate::both_backends!(
                public_key,
                &$crate::TestApp::emulator_overrides_alipay("public_key"),
                $body
            );
            $crate::both_backends!(
                certificate,
                &$crate::TestApp::emulator_overrides_alipay("certificate"),
                $body
            );
        }
    };
}

/// HMAC key the webhook tests configure (`WEBHOOK_SECRET`); a TEST value.
pub const TEST_WEBHOOK_SECRET: &str = "whsec_test_only_0123456789";

/// A webhook receiver on a free port: records each delivery (event id, event type,
/// whether `Fenpay-Signature` verified with [`TEST_WEBHOOK_SECRET`]) and Telegram
/// `sendMessage` calls; can be told to answer 500 to the next N deliveries.
#[derive(Clone, Default)]
pub struct WebhookReceiver {
    pub got: std::sync::Arc<std::sync::Mutex<Vec<(String, String, bool)>>>,
    pub telegram: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
    pub fail_first: std::sync::Arc<std::sync::Mutex<u32>>,
}

impl WebhookReceiver {
    /// Start it; returns the webhook URL (`.../hooks`). Telegram calls go to the same host.
    pub async fn start(&self) -> String {
        let me = self.clone();
        let server = actix_web::HttpServer::new(move || {
            let me = me.clone();
            actix_web::App::new().default_service(actix_web::web::to(
                move |req: actix_web::HttpRequest, body: actix_web::web::Bytes| {
                    let me = me.clone();
                    async move { me.receive(&req, &body) }
                },
            ))
        })
        .workers(2)
        .bind("127.0.0.1:0")
        .expect("bind receiver");
        let addr = server.addrs()[0];
        tokio::spawn(server.run());
        format!("http://{addr}/hooks")
    }

    fn receive(&self, req: &actix_web::HttpRequest, body: &[u8]) -> actix_web::HttpResponse {
        if req.path().contains("/sendMessage") {
            self.telegram
                .lock()
                .unwrap()
                .push(serde_json::from_slice(body).unwrap_or_default());
            return actix_web::HttpResponse::Ok().json(json!({"ok": true}));
        }
        {
            let mut f = self.fail_first.lock().unwrap();
            if *f > 0 {
                *f -= 1;
                return actix_web::HttpResponse::InternalServerError().finish();
            }
        }
        let h = |n: &str| {
            req.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        let valid = fenpay::jobs::dispatcher::verify_signature(
            TEST_WEBHOOK_SECRET.as_bytes(),
            &h("fenpay-signature"),
            body,
            chrono::Utc::now().timestamp(),
            300,
        );
        let payload: Value = serde_json::from_slice(body).unwrap_or_default();
        let id_matches = payload["id"].as_str() == Some(h("fenpay-event-id").as_str());
        self.got.lock().unwrap().push((
            h("fenpay-event-id"),
            h("fenpay-event-type"),
            valid && id_matches,
        ));
        actix_web::HttpResponse::NoContent().finish()
    }

    /// Deliveries per event id.
    pub fn per_event(&self) -> HashMap<String, (String, usize)> {
        let mut m: HashMap<String, (String, usize)> = HashMap::new();
        for (id, kind, _) in self.got.lock().unwrap().iter() {
            m.entry(id.clone()).or_insert((kind.clone(), 0)).1 += 1;
        }
        m
    }
}

/// Read `event: status` frames until one has `want` (or 15 s pass); returns the statuses seen.
pub async fn sse_statuses(resp: reqwest::Response, want: &str) -> Vec<String> {
    use futures_util::StreamExt;
    let mut seen = Vec::new();
    let mut buf = String::new();
    let mut stream = resp.bytes_stream();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    while let Ok(Some(chunk)) = tokio::time::timeout_at(deadline, stream.next()).await {
        buf.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            if let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data: ")) {
                let v: Value = serde_json::from_str(data).unwrap();
                seen.push(v["status"].as_str().unwrap().to_string());
                if v["status"] == want {
                    return seen;
                }
            }
        }
    }
    seen
}

/// Poll `check` every 50 ms for up to 15 s; `true` as soon as it holds. Callers assert
/// the expected state afterwards, so a timeout fails with their own message.
pub async fn eventually<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..300 {
        if check().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}

// ---- helpers shared by the scenario suites --------------------------------------------

/// The buyer pays `order_no` at the emulator (`POST /__emulator/{provider}/pay/{no}`).
pub async fn pay_at_emulator(app: &TestApp, provider: &str, order_no: &str) {
    let (status, body) = app
        .emulator_post(
            &format!("/__emulator/{provider}/pay/{order_no}"),
            &json!({}),
        )
        .await;
    assert!(status < 300, "emulator pay: {status} {body}");
}

/// A 100-point WeChat order bought and paid by `token`'s user; its number once it reads
/// paid in the database.
pub async fn paid_points_order(app: &TestApp, token: &str) -> String {
    let (status, order) = app
        .post(
            "/api/v1/payment/create-order",
            &json!({"product_type": "points", "product_id": 1, "payment_method": "wechat"}),
            Some(token),
        )
        .await;
    assert_eq!(status, 200, "{order}");
    let no = order["order_no"].as_str().expect("order_no").to_string();
    pay_at_emulator(app, "wechat", &no).await;
    app.wait_in_db(&no, "paid").await;
    no
}

/// `GET /api/v1/auth/me` for `token`.
pub async fn me(app: &TestApp, token: &str) -> Value {
    app.get("/api/v1/auth/me", Some(token)).await.1
}

/// Replace the emulator's fault settings.
pub async fn faults(app: &TestApp, f: Value) {
    let (status, body) = app.emulator_post("/__emulator/faults", &f).await;
    assert_eq!(status, 200, "{body}");
}

/// The order's row as stored.
pub async fn order(app: &TestApp, order_no: &str) -> fenpay::db::orders::OrderRow {
    fenpay::db::orders::find(&app.state.db, order_no)
        .await
        .unwrap()
        .unwrap()
}

/// `POST /api/v1/admin/refunds` as `admin`.
pub async fn refund(app: &TestApp, admin: &str, body: Value) -> (u16, Value) {
    app.post("/api/v1/admin/refunds", &body, Some(admin)).await
}
