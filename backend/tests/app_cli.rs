//! `fenpay app ...` as an operator runs it (issue 13): the real binary against a fresh
//! SQLite database and, when `TEST_DATABASE_URL` is set, a fresh PostgreSQL database. The
//! printed key is checked with the server's own key check against the same database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::process::Command;

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use serde_json::Value;

const JWT: &str = "app-cli-test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";

/// A database for one test: a temp SQLite file or a fresh PostgreSQL database (dropped
/// at the end).
struct TestDb {
    url: String,
    dir: tempfile::TempDir,
    pg: Option<(String, String)>,
}

impl TestDb {
    fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("fenpay.db").display());
        TestDb { url, dir, pg: None }
    }

    async fn postgres() -> Option<TestDb> {
        let admin_url = std::env::var("TEST_DATABASE_URL").ok()?;
        let name = format!("fenpay_c_{}", uuid::Uuid::new_v4().simple());
        let mut conn = AsyncPgConnection::establish(&admin_url).await.unwrap();
        conn.batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let (head, tail) = admin_url
            .split_once('?')
            .map_or((admin_url.as_str(), None), |(h, t)| (h, Some(t)));
        let base = head.rsplit_once('/').map_or(head, |(b, _)| b);
        let url = match tail {
            Some(t) => format!("{base}/{name}?{t}"),
            None => format!("{base}/{name}"),
        };
        Some(TestDb {
            url,
            dir: tempfile::tempdir().unwrap(),
            pg: Some((admin_url, name)),
        })
    }

    fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("APP_ENV", "development".into()),
            ("DATABASE_URL", self.url.clone()),
            ("DATA_DIR", self.dir.path().display().to_string()),
            ("JWT_SECRET", JWT.into()),
            ("EMULATOR_ENABLED", "false".into()),
            ("MERCHANT_MAX_AMOUNT_FEN", "1000000".into()),
        ]
    }

    /// `fenpay app <args>`: exit code, stdout, stderr.
    fn app(&self, args: &[&str]) -> (i32, String, String) {
        self.run("app", args)
    }

    /// `fenpay <command> <args>`: exit code, stdout, stderr.
    fn run(&self, command: &str, args: &[&str]) -> (i32, String, String) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fenpay"));
        cmd.arg(command)
            .args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info");
        for (k, v) in self.vars() {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `fenpay app <args>` that must succeed with exactly one JSON object on stdout.
    fn one(&self, args: &[&str]) -> Value {
        let (code, out, err) = self.app(args);
        assert_eq!(code, 0, "fenpay app {args:?}: {out}{err}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1, "fenpay app {args:?} printed {out:?}");
        let v: Value = serde_json::from_str(lines[0]).unwrap();
        assert!(v.is_object(), "{v}");
        v
    }

    /// The server's state on the same database, as `fenpay serve` would build it.
    async fn state(&self) -> fenpay::startup::AppState {
        let vars: HashMap<String, String> = self
            .vars()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let settings = fenpay::Settings::from_map(&vars).unwrap();
        fenpay::startup::AppState::for_command(settings)
            .await
            .unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((url, name)) = self.pg.take() {
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    if let Ok(mut c) = AsyncPgConnection::establish(&url).await {
                        let _ = c
                            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                            .await;
                    }
                });
            })
            .join();
        }
    }
}

async fn key_works(state: &fenpay::startup::AppState, key: &str) -> Option<String> {
    fenpay::service::apps::authenticate_key(state, key)
        .await
        .ok()
        .map(|a| a.id)
}

/// Every `fenpay app` subcommand on one database.
async fn the_app_commands(db: TestDb) {
    // create: one JSON object with exactly the five fields; epay fields null without --epay.
    let created = db.one(&[
        "create",
        "--name",
        "Image site",
        "--webhook-url",
        "https://img.example.com/hook",
        "--return-host",
        "img.example.com",
        "--return-host",
        "*.cdn.example.com",
        "--fulfilment",
        "webhook",
    ]);
    let mut fields: Vec<&str> = created
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "api_key",
            "app_id",
            "epay_key",
            "epay_pid",
            "webhook_secret"
        ]
    );
    assert_eq!(created["epay_pid"], Value::Null);
    assert_eq!(created["epay_key"], Value::Null);
    let id = created["app_id"].as_str().unwrap().to_string();
    let key = created["api_key"].as_str().unwrap().to_string();
    assert!(key.starts_with("sk_live_"), "{key}");
    assert!(created["webhook_secret"]
        .as_str()
        .unwrap()
        .starts_with("whsec_"));

    let state = db.state().await;
    // The printed key authenticates, as this app.
    assert_eq!(key_works(&state, &key).await, Some(id.clone()));
    let stored = fenpay::db::apps::find(&state.db, &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.webhook_secret, created["webhook_secret"]);
    assert_eq!(stored.return_hosts, "img.example.com,*.cdn.example.com");
    assert_eq!(stored.fulfilment, "webhook");

    let epay = db.one(&[
        "create",
        "--name",
        "Card shop",
        "--mode",
        "test",
        "--epay",
        "--max-amount-fen",
        "5000",
    ]);
    let epay_id = epay["app_id"].as_str().unwrap().to_string();
    let epay_key = epay["epay_key"].as_str().unwrap().to_string();
    assert!(epay["api_key"].as_str().unwrap().starts_with("sk_test_"));
    let pid = epay["epay_pid"].as_i64().unwrap();
    let epay_row = fenpay::db::apps::find_by_epay_pid(&state.db, pid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(epay_row.id, epay_id);
    assert_eq!(epay_row.epay_key.as_deref(), Some(epay_key.as_str()));
    assert!(epay_row.epay_enabled);
    assert_eq!(epay_row.max_amount_fen, 5000);

    // list: one object per line, oldest first, no secrets.
    let (code, out, err) = db.app(&["list"]);
    assert_eq!(code, 0, "{out}{err}");
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(lines[0]["id"], id.as_str());
    assert_eq!(lines[0]["name"], "Image site");
    assert_eq!(lines[0]["mode"], "live");
    assert_eq!(lines[0]["key_prefix"], &key[..12]);
    assert_eq!(lines[0]["webhook_url"], "https://img.example.com/hook");
    assert_eq!(lines[0]["fulfilment"], "webhook");
    assert_eq!(lines[0]["epay_pid"], Value::Null);
    assert_eq!(lines[0]["epay_enabled"], false);
    assert_eq!(lines[0]["revoked"], false);
    assert_eq!(lines[1]["id"], epay_id.as_str());
    assert_eq!(lines[1]["epay_pid"], pid);
    assert_eq!(lines[1]["epay_enabled"], true);
    for secret in [
        key.as_str(),
        stored.key_hash.as_str(),
        stored.webhook_secret.as_str(),
        epay_key.as_str(),
        epay["api_key"].as_str().unwrap(),
        epay["webhook_secret"].as_str().unwrap(),
    ] {
        assert!(
            !out.contains(secret) && !err.contains(secret),
            "a secret in list: {out}{err}"
        );
    }

    // rotate-key: the old key is refused at once, the new one works.
    let rotated = db.one(&["rotate-key", &id]);
    let new_key = rotated["api_key"].as_str().unwrap().to_string();
    assert_eq!(rotated["app_id"], id.as_str());
    assert_ne!(new_key, key);
    assert_eq!(key_works(&state, &key).await, None);
    assert_eq!(key_works(&state, &new_key).await, Some(id.clone()));

    // set: each field; `none` removes the webhook URL; --epay on draws credentials once.
    let set = db.one(&[
        "set",
        &id,
        "--name",
        "Images",
        "--webhook-url",
        "none",
        "--return-hosts",
        "a.example.com, b.example.com",
        "--fulfilment",
        "builtin",
        "--max-amount-fen",
        "700",
        "--epay",
        "on",
    ]);
    assert_eq!(set["name"], "Images");
    assert_eq!(set["webhook_url"], Value::Null);
    assert_eq!(
        set["return_hosts"],
        serde_json::json!(["a.example.com", "b.example.com"])
    );
    assert_eq!(set["fulfilment"], "builtin");
    assert_eq!(set["max_amount_fen"], 700);
    assert_eq!(set["epay_enabled"], true);
    let drawn = set["epay_key"]
        .as_str()
        .expect("the drawn epay key, once")
        .to_string();
    let row = fenpay::db::apps::find(&state.db, &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.epay_key.as_deref(), Some(drawn.as_str()));
    assert_eq!(row.epay_pid, set["epay_pid"].as_i64());
    let off = db.one(&["set", &id, "--epay", "off"]);
    assert_eq!(off["epay_enabled"], false);
    assert!(off.get("epay_key").is_none(), "{off}");
    let on = db.one(&["set", &id, "--epay", "on", "--return-hosts", ""]);
    assert!(on.get("epay_key").is_none(), "{on}");
    assert_eq!(on["epay_pid"], set["epay_pid"]);
    assert_eq!(on["return_hosts"], serde_json::json!([]));

    // rotate-webhook-secret.
    let secret = db.one(&["rotate-webhook-secret", &id]);
    let new_secret = secret["webhook_secret"].as_str().unwrap();
    assert_ne!(new_secret, stored.webhook_secret);
    let row = fenpay::db::apps::find(&state.db, &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.webhook_secret, new_secret);

    // set-jwt / clear-jwt: the secret comes from a file and is never printed back.
    let secret_file = db.dir.path().join("hs256.secret");
    std::fs::write(&secret_file, "app-cli-hs256-secret-0123456789abcdef\n").unwrap();
    let secret_arg = secret_file.display().to_string();
    let jwt = db.one(&[
        "set-jwt",
        &id,
        "--issuer",
        "https://login.images.example",
        "--audience",
        "fenpay",
        "--hs256-secret-file",
        &secret_arg,
    ]);
    assert_eq!(jwt["issuer"], "https://login.images.example");
    assert_eq!(jwt["audience"], "fenpay");
    assert_eq!(jwt["hs256_secret_set"], true);
    assert!(!jwt.to_string().contains("0123456789abcdef"), "{jwt}");
    let cleared = db.one(&["clear-jwt", &id]);
    assert_eq!(cleared["issuer"], Value::Null);
    assert_eq!(cleared["hs256_secret_set"], false);

    // Bad input and unknown apps: exit code 2, a message naming the problem, nothing on
    // stdout, nothing written.
    for (args, code_text) in [
        (vec!["create", "--name", ""], "invalid_app"),
        (
            vec![
                "create",
                "--name",
                "X",
                "--webhook-url",
                "ftp://x.example/h",
            ],
            "invalid_webhook_url",
        ),
        (
            vec![
                "create",
                "--name",
                "X",
                "--return-host",
                "https://x.example",
            ],
            "invalid_return_host",
        ),
        (
            vec!["create", "--name", "X", "--max-amount-fen", "1000001"],
            "invalid_app",
        ),
        (
            vec!["set", &id, "--return-hosts", "ok.example, bad host"],
            "invalid_return_host",
        ),
        (
            vec!["set", &id, "--webhook-url", "nope"],
            "invalid_webhook_url",
        ),
        (vec!["set", "app_nosuchapp", "--name", "X"], "not_found"),
        (vec!["rotate-key", "app_nosuchapp"], "not_found"),
        (vec!["revoke", "app_nosuchapp"], "not_found"),
        (vec!["rotate-webhook-secret", "app_nosuchapp"], "not_found"),
        (
            vec!["set-jwt", &id, "--issuer", "https://login.images.example"],
            "invalid_jwt_config",
        ),
        (
            vec![
                "set-jwt",
                &id,
                "--issuer",
                "x",
                "--hs256-secret-file",
                "/nonexistent/secret",
            ],
            "invalid_jwt_config",
        ),
    ] {
        let (code, out, err) = db.app(&args);
        assert_eq!(code, 2, "fenpay app {args:?}: {out}{err}");
        assert_eq!(out, "", "fenpay app {args:?}");
        assert!(err.contains(code_text), "fenpay app {args:?}: {err}");
    }
    for args in [
        vec!["create", "--name", "X", "--mode", "prod"],
        vec!["create"],
        vec!["set", &id, "--epay", "maybe"],
    ] {
        let (code, out, err) = db.app(&args);
        assert_eq!(code, 2, "fenpay app {args:?}: {out}{err}");
        assert_eq!(out, "");
    }
    let (_, out, _) = db.app(&["list"]);
    assert_eq!(
        out.lines().count(),
        2,
        "a refused command wrote an app: {out}"
    );
    let unchanged = fenpay::db::apps::find(&state.db, &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(unchanged.return_hosts, "");
    assert_eq!(unchanged.webhook_url, None);

    // revoke: refused at once; revoking again or rotating a revoked app is exit code 2.
    let revoked = db.one(&["revoke", &id]);
    assert_eq!(revoked["revoked"], true);
    assert_eq!(key_works(&state, &new_key).await, None);
    for args in [
        vec!["revoke", &id],
        vec!["rotate-key", &id],
        vec!["set", &id, "--name", "Back"],
    ] {
        let (code, out, err) = db.app(&args);
        assert_eq!(code, 2, "fenpay app {args:?}: {out}{err}");
        assert!(err.contains("app_revoked"), "{err}");
    }
    assert_eq!(key_works(&state, &new_key).await, None);
    let (_, out, _) = db.app(&["list"]);
    let first: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(first["revoked"], true);
    assert_eq!(first["name"], "Images");
    // The other app is untouched.
    assert_eq!(
        key_works(&state, epay["api_key"].as_str().unwrap()).await,
        Some(epay_id)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_commands_sqlite() {
    the_app_commands(TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_commands_postgres() {
    match TestDb::postgres().await {
        Some(db) => the_app_commands(db).await,
        None => eprintln!("TEST_DATABASE_URL not set: PostgreSQL variant skipped"),
    }
}

/// `fenpay product ...`: the catalog from the command line, with the API's rules and an
/// audit entry per change (actor `cli`).
async fn the_product_commands(db: TestDb) {
    let product = |args: &[&str]| -> Value {
        let (code, out, err) = db.run("product", args);
        assert_eq!(code, 0, "fenpay product {args:?}: {out}{err}");
        serde_json::from_str(out.lines().next().unwrap()).unwrap()
    };
    let created = product(&[
        "create",
        "--kind",
        "points",
        "--name",
        "Night pack",
        "--price-fen",
        "300",
        "--points",
        "30",
        "--stock",
        "4",
    ]);
    let id = created["id"].as_i64().unwrap().to_string();
    assert_eq!(
        (created["price_fen"].as_i64(), created["stock"].as_i64()),
        (Some(300), Some(4))
    );
    let updated = product(&["update", &id, "--price-fen", "350"]);
    assert_eq!(updated["price_fen"], 350);
    assert_eq!(product(&["restock", &id, "--add", "6"])["stock"], 10);
    assert_eq!(product(&["retire", &id])["active"], false);
    // Refused changes: exit 2 with the code, nothing written.
    let (code, _, err) = db.run("product", &["update", "4", "--price-fen", "20000"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("tier_price_order"), "{err}");
    let (code, _, err) = db.run("product", &["restock", "999", "--add", "1"]);
    assert_eq!(code, 2, "{err}");
    let (code, out, _) = db.run("product", &["reorder", &id]);
    assert_eq!(code, 0);
    let first: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(first["id"].as_i64().unwrap().to_string(), id);
    let (_, out, _) = db.run("product", &["list"]);
    assert_eq!(out.lines().count(), 6, "{out}");

    let state = db.state().await;
    let (entries, total) = fenpay::db::audit::list(
        &state.db,
        &fenpay::db::audit::AuditFilter::default(),
        100,
        0,
    )
    .await
    .unwrap();
    assert_eq!(
        total, 5,
        "create, update, restock, retire, reorder: {entries:?}"
    );
    assert!(entries.iter().all(|e| e.actor_id == "cli"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn product_commands_sqlite() {
    the_product_commands(TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn product_commands_postgres() {
    match TestDb::postgres().await {
        Some(db) => the_product_commands(db).await,
        None => eprintln!("TEST_DATABASE_URL not set: PostgreSQL variant skipped"),
    }
}
