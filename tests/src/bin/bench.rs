//! fenpay benchmark: prints figures, asserts nothing.
//!
//! `cargo run --release -p fenpay-tests --bin bench [-- ORDERS]` measures
//! 1. RSA-2048 SHA-256 sign/verify with ring (what fenpay uses) vs the `rsa` crate,
//!    and AES-256-GCM notification decryption;
//! 2. the whole product on SQLite with the emulator: create-order latency, notification
//!    handling (verify + decrypt + compare-and-set + fulfil) throughput, and memory;
//! 3. HTTP load from `wrk` (a second process on the same cores) on SQLite and, with
//!    `TEST_DATABASE_URL`, PostgreSQL: the trivial route (`/healthz`, the ceiling), then
//!    order-status over many buyers' pending orders and over the same orders once paid
//!    (64 to 1,000 connections), each with its ratio to the ceiling taken in the same run;
//!    and every order paid by a notification signed (WeChat: and encrypted) as the
//!    providers do, 10% sent twice, posted from a second process (`bench blast`).
//!    `BENCH_BUYERS` (200), `BENCH_LOAD_ORDERS` (10000) and `BENCH_SECS` (10) size it;
//!    `BENCH_DB_POOL` sets the pool size; `BENCH_HTTP=0` skips it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use fenpay_tests::TestApp;

// The server binary's allocator: the app runs in this process.
#[global_allocator]
static GLOBAL: fenpay::MiMalloc = fenpay::MiMalloc;
use serde_json::json;

fn per_op(total: Duration, n: u32) -> String {
    let us = total.as_secs_f64() * 1e6 / f64::from(n);
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.1} µs")
    }
}

/// Measures the crypto; returns ring's (sign, verify) time per operation.
fn crypto() -> (Duration, Duration) {
    use rsa::pkcs1v15::{SigningKey, VerifyingKey};
    use rsa::signature::{SignatureEncoding, Signer, Verifier};

    let keys = fenpay_tests::dev_keys();
    let key = &keys.wechat_platform_key;
    let public = key.public_key();
    let msg = b"1700000000\nnonce-nonce-nonce-nonce-nonce-123\n{\"id\":\"EV-2018022511223320873\",\"resource\":{}}\n";
    let n = 200;

    let start = Instant::now();
    let mut sig = Vec::new();
    for _ in 0..n {
        sig = key.sign_sha256(msg).unwrap();
    }
    let ring_sign = start.elapsed();
    let start = Instant::now();
    for _ in 0..n {
        assert!(public.verify_sha256(msg, &sig));
    }
    let ring_verify = start.elapsed();

    let rsa_key = {
        use rsa::pkcs8::DecodePrivateKey;
        rsa::RsaPrivateKey::from_pkcs8_pem(&key.to_pkcs8_pem()).unwrap()
    };
    let signing = SigningKey::<sha2::Sha256>::new(rsa_key.clone());
    let verifying = VerifyingKey::<sha2::Sha256>::new(rsa_key.to_public_key());
    let start = Instant::now();
    let mut rsa_sig = None;
    for _ in 0..n {
        rsa_sig = Some(signing.sign(msg));
    }
    let rsa_sign = start.elapsed();
    let rsa_sig = rsa_sig.unwrap();
    assert_eq!(rsa_sig.to_vec(), sig, "same PKCS#1 v1.5 signature");
    let start = Instant::now();
    for _ in 0..n {
        verifying.verify(msg, &rsa_sig).unwrap();
    }
    let rsa_verify = start.elapsed();

    let api_key = b"0123456789abcdef0123456789abcdef";
    let plain = vec![b'x'; 1024];
    let ct =
        fenpay_proto::wechat::aead_encrypt(api_key, "0123456789ab", "transaction", &plain).unwrap();
    let m = 20_000;
    let start = Instant::now();
    for _ in 0..m {
        fenpay_proto::wechat::aead_decrypt(api_key, "0123456789ab", "transaction", &ct).unwrap();
    }
    let aead = start.elapsed();

    println!("## crypto (RSA-2048 PKCS#1 v1.5 SHA-256, {n} ops each)");
    println!("| op | ring (used) | rsa crate |");
    println!("|---|---|---|");
    println!(
        "| sign | {} | {} |",
        per_op(ring_sign, n),
        per_op(rsa_sign, n)
    );
    println!(
        "| verify | {} | {} |",
        per_op(ring_verify, n),
        per_op(rsa_verify, n)
    );
    println!(
        "AES-256-GCM decrypt of a 1 KiB notification resource (base64 in): {}",
        per_op(aead, m)
    );
    (ring_sign / n, ring_verify / n)
}

fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn percentile(sorted: &[Duration], p: f64) -> String {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    format!("{:.2} ms", sorted[idx].as_secs_f64() * 1000.0)
}

async fn product(orders: u32) {
    let receiver = fenpay_tests::WebhookReceiver::default();
    let hook = receiver.start().await;
    let app = TestApp::sqlite(&[
        ("EMULATOR_ENABLED", "true"),
        ("EMULATOR_BIND", "127.0.0.1:0"),
        ("EMULATOR_TIME_SCALE", "1000"),
        ("DEV_KEYS_DIR", fenpay_tests::shared_dev_keys_dir()),
        ("RUST_LOG", "error"),
        ("WEBHOOK_URLS", &hook),
        ("WEBHOOK_SECRET", fenpay_tests::TEST_WEBHOOK_SECRET),
    ])
    .await;
    let token = app.signup("bench").await;
    let mut create = Vec::new();
    let mut order_nos = Vec::new();
    for _ in 0..orders {
        let start = Instant::now();
        let (status, body) = app
            .post(
                "/api/v1/payment/create-order",
                &json!({"product_type": "points", "product_id": 1, "payment_method": "wechat"}),
                Some(&token),
            )
            .await;
        create.push(start.elapsed());
        assert_eq!(status, 200, "{body}");
        order_nos.push(body["order_no"].as_str().unwrap().to_string());
    }
    create.sort();

    // Pay them all at once; the emulator notifies fenpay, which verifies, decrypts and
    // applies each one. Measure until the last order is paid.
    let start = Instant::now();
    let mut tasks = Vec::new();
    for no in &order_nos {
        let (client, url) = (
            app.client.clone(),
            format!("{}/__emulator/wechat/pay/{no}", app.emulator()),
        );
        tasks.push(tokio::spawn(async move {
            client.post(url).send().await.unwrap().status()
        }));
    }
    for t in tasks {
        assert!(t.await.unwrap().is_success());
    }
    loop {
        let (_, me) = app.get("/api/v1/auth/me", Some(&token)).await;
        if me["points_balance"].as_i64().unwrap() == i64::from(orders) * 100 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "payments did not settle: {me}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let settle = start.elapsed();
    // Every order.paid event delivered (signed) to the webhook receiver.
    let paid_events = || {
        receiver
            .per_event()
            .values()
            .filter(|(t, _)| t == "order.paid")
            .count()
    };
    while paid_events() < orders as usize {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "webhooks were not delivered"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let delivered = start.elapsed();
    let sse = sse_latency(&app, &token, 20).await;
    let (rss, hwm) = rss_kib();
    println!("\n## product on SQLite with the emulator ({orders} orders, one process: app + emulator + client)");
    println!(
        "create-order (signed WeChat native prepay round trip): p50 {} p95 {} max {}",
        percentile(&create, 0.5),
        percentile(&create, 0.95),
        percentile(&create, 1.0)
    );
    println!(
        "pay all + notifications verified, decrypted and applied: {:.2} s ({:.0} orders/s)",
        settle.as_secs_f64(),
        f64::from(orders) / settle.as_secs_f64()
    );
    println!(
        "webhooks: all {orders} order.paid events signed and delivered {:.2} s after the payments started",
        delivered.as_secs_f64()
    );
    println!(
        "live status (SSE): emulator payment -> `paid` frame on an open stream: p50 {} p95 {} max {} (20 orders)",
        percentile(&sse, 0.5),
        percentile(&sse, 0.95),
        percentile(&sse, 1.0)
    );
    println!("memory: RSS {} MiB, peak {} MiB", rss / 1024, hwm / 1024);
}

/// Open an order's event stream, pay it at the emulator, time until the paid frame.
async fn sse_latency(app: &TestApp, token: &str, n: usize) -> Vec<Duration> {
    let mut out = Vec::new();
    for _ in 0..n {
        let (_, body) = app
            .post(
                "/api/v1/payment/create-order",
                &json!({"product_type": "points", "product_id": 1, "payment_method": "wechat"}),
                Some(token),
            )
            .await;
        let no = body["order_no"].as_str().unwrap().to_string();
        let resp = app
            .client
            .get(app.url(&format!("/api/v1/payment/orders/{no}/events")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let reader = tokio::spawn(fenpay_tests::sse_statuses(resp, "paid"));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let start = Instant::now();
        let url = format!("{}/__emulator/wechat/pay/{no}", app.emulator());
        assert!(app
            .client
            .post(url)
            .send()
            .await
            .unwrap()
            .status()
            .is_success());
        let seen = reader.await.unwrap();
        assert_eq!(seen.last().map(String::as_str), Some("paid"));
        out.push(start.elapsed());
    }
    out.sort();
    out
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One `wrk` run: requests per second, p50 and p99 latency (as wrk prints them).
struct Load {
    rps: f64,
    p50: String,
    p99: String,
    errors: String,
}

fn wrk(base: &str, path: &str, conns: u64, secs: u64, script: Option<(&str, &str)>) -> Load {
    let mut cmd = std::process::Command::new("wrk");
    cmd.args([
        "-t2",
        &format!("-c{conns}"),
        &format!("-d{secs}s"),
        "--latency",
        "--timeout",
        "10s",
    ]);
    if let Some((lua, orders)) = script {
        cmd.args(["-s", lua]).env("BENCH_ORDERS", orders);
    }
    let out = cmd
        .arg(format!("{base}{path}"))
        .output()
        .expect("wrk (apt-get install -y wrk)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("?")
            .to_string()
    };
    let errors = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("Non-2xx") || l.starts_with("Socket errors"))
        .collect::<Vec<_>>()
        .join("; ");
    Load {
        rps: field("Requests/sec:").parse().unwrap_or(0.0),
        p50: field("50%"),
        p99: field("99%"),
        errors: if errors.is_empty() {
            "none".into()
        } else {
            errors
        },
    }
}

/// order-status for a rotating list of (order, owner's token), one request each.
const ORDER_STATUS_LUA: &str = r#"
local orders = {}
for line in io.lines(os.getenv("BENCH_ORDERS")) do
  local no, token = line:match("(%S+) (%S+)")
  orders[#orders + 1] = { "/api/v1/payment/order-status?order_no=" .. no, { ["authorization"] = "Bearer " .. token } }
end
local i = math.random(#orders)
request = function()
  i = i % #orders + 1
  return wrk.format("GET", orders[i][1], orders[i][2])
end
"#;

async fn http_load(app: TestApp, label: &str, signing: (Duration, Duration)) {
    let buyers = env_or("BENCH_BUYERS", 200);
    let per_buyer = (env_or("BENCH_LOAD_ORDERS", 10_000) / buyers.max(1)).max(1);
    let secs = env_or("BENCH_SECS", 10);
    let app = std::sync::Arc::new(app);
    // Seed: many buyers, each with a few pending WeChat and Alipay orders.
    let seed_start = Instant::now();
    let mut all_seeded = Vec::new();
    let mut tasks = Vec::new();
    for b in 0..buyers {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let token = app.signup(&format!("buyer{b}")).await;
            let mut mine = Vec::new();
            for k in 0..per_buyer {
                let method = if k % 2 == 0 { "wechat" } else { "alipay" };
                let (status, body) = app
                    .post(
                        "/api/v1/payment/create-order",
                        &json!({"product_type": "points", "product_id": 1, "payment_method": method}),
                        Some(&token),
                    )
                    .await;
                assert_eq!(status, 200, "{body}");
                mine.push((
                    body["order_no"].as_str().unwrap().to_string(),
                    method,
                    token.clone(),
                    body["amount_fen"].as_i64().unwrap(),
                ));
            }
            mine
        }));
        if tasks.len() >= 8 {
            // A few buyers at a time (argon2 per registration).
            for t in tasks.drain(..) {
                all_seeded.extend(t.await.unwrap());
            }
        }
    }
    let mut all = all_seeded;
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let seeded = seed_start.elapsed();
    let dir = tempfile::tempdir().unwrap();
    let lua = dir.path().join("order_status.lua");
    std::fs::write(&lua, ORDER_STATUS_LUA).unwrap();
    let list = dir.path().join("orders.txt");
    let lines: String = all
        .iter()
        .map(|(no, _, token, _)| format!("{no} {token}\n"))
        .collect();
    std::fs::write(&list, lines).unwrap();
    let (lua, list) = (lua.to_str().unwrap(), list.to_str().unwrap());
    let base = app.url("");
    let run = |path: &'static str, conns: u64, script: bool| {
        let base = base.clone();
        let (lua, list) = (lua.to_string(), list.to_string());
        tokio::task::spawn_blocking(move || {
            wrk(
                &base,
                path,
                conns,
                secs,
                script.then_some((lua.as_str(), list.as_str())),
            )
        })
    };
    // Warm up, then the ceiling.
    let _ = wrk(&base, "/healthz", 64, 2, None);
    let ceiling = run("/healthz", 64, false).await.unwrap();
    let pending64 = run("/", 64, true).await.unwrap();
    let pending256 = run("/", 256, true).await.unwrap();
    let pending1000 = run("/", 1000, true).await.unwrap();
    let (rss_pending, _) = rss_kib();
    let cache_pending = app.state.db.order_cache().stats();
    // Every order paid by its provider's notification, signed (and for WeChat encrypted)
    // as the providers do, 10% of them delivered twice; sent by a second process.
    let notices = dir.path().join("notices.txt");
    let notices_file = notices.clone();
    let orders: Vec<(String, String, i64)> = all
        .iter()
        .map(|(no, method, _, fen)| (no.clone(), method.to_string(), *fen))
        .collect();
    let signed = tokio::task::spawn_blocking(move || notification_lines(&orders, &notices_file))
        .await
        .unwrap();
    let blast = {
        let (file, base) = (notices.to_str().unwrap().to_string(), base.clone());
        tokio::task::spawn_blocking(move || blast_from_another_process(&file, &base, 64))
            .await
            .unwrap()
    };
    for (no, _) in &signed {
        app.wait_in_db(no, "paid").await;
    }
    let paid64 = run("/", 64, true).await.unwrap();
    let paid1000 = run("/", 1000, true).await.unwrap();
    let cache = app.state.db.order_cache().stats();
    // create-order under load: one WeChat native prepay per request, signed by us and
    // answered (signed) by the in-process emulator.
    let creator = app.signup("creator").await;
    let create_lua = dir.path().join("create.lua");
    std::fs::write(
        &create_lua,
        format!(
            "wrk.method = \"POST\"\nwrk.body = '{{\"product_type\":\"points\",\"product_id\":1,\"payment_method\":\"wechat\"}}'\nwrk.headers[\"content-type\"] = \"application/json\"\nwrk.headers[\"authorization\"] = \"Bearer {creator}\"\n"
        ),
    )
    .unwrap();
    let creates = {
        let (base, lua) = (base.clone(), create_lua.to_str().unwrap().to_string());
        tokio::task::spawn_blocking(move || {
            wrk(
                &base,
                "/api/v1/payment/create-order",
                16,
                secs,
                Some((&lua, "")),
            )
        })
        .await
        .unwrap()
    };
    // The merchant API: an app's backend reading an order by its API key (the key's
    // keyed hash looked up per request), and creating orders (custom amount, WeChat native
    // prepay, a fresh out_order_no per request).
    let merchant = fenpay::service::apps::create(
        &app.state,
        fenpay::service::apps::NewApp {
            name: "bench".into(),
            mode: fenpay::domain::apps::KeyMode::Test,
            webhook_url: None,
            return_hosts: Vec::new(),
            fulfilment: fenpay::domain::apps::Fulfilment::Webhook,
            max_amount_fen: None,
            epay: false,
        },
    )
    .await
    .unwrap();
    let sk = merchant.api_key.clone();
    let first: api_types::merchant::MerchantOrderRequest =
        serde_json::from_value(json!({"out_order_no": "bench-read", "subject": "bench", "amount_fen": 990, "payment_method": "wechat"}))
            .unwrap();
    let (read_order, _) = fenpay::service::merchant::create(
        &app.state,
        &merchant.app,
        first,
        None,
        "127.0.0.1".into(),
    )
    .await
    .unwrap();
    let read_lua = dir.path().join("merchant-read.lua");
    std::fs::write(
        &read_lua,
        format!("wrk.headers[\"authorization\"] = \"Bearer {sk}\"\n"),
    )
    .unwrap();
    let merchant_create_lua = dir.path().join("merchant-create.lua");
    std::fs::write(
        &merchant_create_lua,
        format!(
            "local threads = 0\n\
             function setup(thread) threads = threads + 1; thread:set(\"tid\", threads) end\n\
             local n = 0\n\
             function request()\n\
               n = n + 1\n\
               local body = string.format('{{\"out_order_no\":\"b%d-%d\",\"subject\":\"bench\",\"amount_fen\":990,\"payment_method\":\"wechat\"}}', tid, n)\n\
               return wrk.format(\"POST\", nil, {{[\"content-type\"] = \"application/json\", [\"authorization\"] = \"Bearer {sk}\"}}, body)\n\
             end\n"
        ),
    )
    .unwrap();
    let merchant_reads = {
        let (base, lua) = (base.clone(), read_lua.to_str().unwrap().to_string());
        let path = format!("/api/v1/merchant/orders/{}", read_order.order_no);
        tokio::task::spawn_blocking(move || wrk(&base, &path, 64, secs, Some((&lua, ""))))
            .await
            .unwrap()
    };
    let merchant_creates = {
        let (base, lua) = (
            base.clone(),
            merchant_create_lua.to_str().unwrap().to_string(),
        );
        tokio::task::spawn_blocking(move || {
            wrk(&base, "/api/v1/merchant/orders", 16, secs, Some((&lua, "")))
        })
        .await
        .unwrap()
    };
    // Each create-order costs this machine two RSA signatures and two verifications (ours
    // and the emulator's); the cores can do no more than this many per second.
    let (sign, verify) = signing;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let per_create = 2.0 * (sign + verify).as_secs_f64();
    let signing_limit = cores / per_create;
    let (rss, hwm) = rss_kib();
    let ratio = |l: &Load| {
        if ceiling.rps > 0.0 {
            format!("{:.2}x", l.rps / ceiling.rps)
        } else {
            "?".into()
        }
    };
    println!(
        "\n## HTTP load on {label} ({buyers} buyers, {} orders seeded in {:.1} s; wrk -t2, {secs} s per row)",
        all.len(),
        seeded.as_secs_f64()
    );
    println!("| path | conns | req/s | p50 | p99 | ratio to ceiling | errors |");
    println!("|---|---:|---:|---:|---:|---:|---|");
    for (name, conns, l) in [
        ("GET /healthz (ceiling)", 64, &ceiling),
        ("order-status, pending orders", 64, &pending64),
        ("order-status, pending orders", 256, &pending256),
        ("order-status, pending orders", 1000, &pending1000),
        ("order-status, the same orders paid", 64, &paid64),
        ("order-status, the same orders paid", 1000, &paid1000),
        (
            "create-order (WeChat native prepay via the emulator)",
            16,
            &creates,
        ),
        (
            "merchant API: GET /merchant/orders/{no} (API key)",
            64,
            &merchant_reads,
        ),
        (
            "merchant API: POST /merchant/orders (custom amount, WeChat native prepay)",
            16,
            &merchant_creates,
        ),
    ] {
        println!(
            "| {name} | {conns} | {:.0} | {} | {} | {} | {} |",
            l.rps,
            l.p50,
            l.p99,
            ratio(l),
            l.errors
        );
    }
    let hit_rate = |hits: u64, misses: u64| 100.0 * hits as f64 / (hits + misses).max(1) as f64;
    println!(
        "order cache: {:.1}% of pending reads and {:.1}% of paid reads served from memory ({} fills discarded after racing a change)",
        hit_rate(cache_pending.hits, cache_pending.misses),
        hit_rate(
            cache.hits - cache_pending.hits,
            cache.misses - cache_pending.misses
        ),
        cache.raced
    );
    println!(
        "create-order: {:.0}/s = {:.0}% of the signing limit ({signing_limit:.0}/s: {cores} cores / (2 signatures + 2 verifications = {:.2} ms), ours and the emulator's)",
        creates.rps,
        100.0 * creates.rps / signing_limit,
        per_create * 1000.0
    );
    println!(
        "notifications (WeChat signed + encrypted, Alipay RSA2-signed, 10% duplicates; c=64 from a second process): {}",
        blast
    );
    println!(
        "memory (this process: app + emulator + seeding client): RSS {} MiB after the pending runs, {} MiB at the end, peak {} MiB",
        rss_pending / 1024,
        rss / 1024,
        hwm / 1024
    );
}

/// Sign one notification per order (plus a duplicate of every tenth), shuffled, one per
/// line (`path TAB headers-json TAB body`); returns the (order, provider) pairs.
fn notification_lines(
    orders: &[(String, String, i64)],
    file: &std::path::Path,
) -> Vec<(String, String)> {
    use rand::seq::SliceRandom;
    let mut lines = Vec::new();
    for (i, (no, method, fen)) in orders.iter().enumerate() {
        let line = if method == "wechat" {
            let (headers, body) = fenpay_tests::notices::wechat_notification(no, *fen, |_| {});
            let headers: serde_json::Map<String, serde_json::Value> =
                headers.into_iter().map(|(k, v)| (k, v.into())).collect();
            format!(
                "/api/v1/payment/wechat/callback\t{}\t{body}",
                serde_json::Value::Object(headers)
            )
        } else {
            let yuan = format!("{}.{:02}", fen / 100, fen % 100);
            let trade_no = format!("2026112222001{:015}", i);
            let body = fenpay_tests::notices::alipay_notification(no, &yuan, |p| {
                p.insert("trade_no".into(), trade_no);
            });
            format!("/api/v1/payment/alipay/callback\t{{}}\t{body}")
        };
        if i % 10 == 0 {
            lines.push(line.clone());
        }
        lines.push(line);
    }
    lines.shuffle(&mut rand::thread_rng());
    std::fs::write(file, lines.join("\n") + "\n").unwrap();
    orders
        .iter()
        .map(|(no, m, _)| (no.clone(), m.clone()))
        .collect()
}

/// `bench blast FILE BASE CONNS` in a child process: the load generator does not share
/// the server's runtime. Returns its one-line summary.
fn blast_from_another_process(file: &str, base: &str, conns: u32) -> String {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["blast", file, base, &conns.to_string()])
        .output()
        .expect("run the blast child");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A prepared request: path, headers, body.
type Request = (String, Vec<(String, String)>, String);

/// The child: post every line of FILE once, CONNS at a time; print the rate, latency and
/// answers.
fn blast(file: &str, base: &str, conns: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let lines: Vec<Request> = std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .map(|l| {
            let mut parts = l.splitn(3, '\t');
            let path = parts.next().unwrap().to_string();
            let headers: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(parts.next().unwrap()).unwrap();
            let body = parts.next().unwrap().to_string();
            let headers = headers
                .into_iter()
                .map(|(k, v)| (k, v.as_str().unwrap().to_string()))
                .collect();
            (path, headers, body)
        })
        .collect();
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(conns)
            .build()
            .unwrap();
        let queue = std::sync::Arc::new(std::sync::Mutex::new(lines.into_iter()));
        let start = Instant::now();
        let mut workers = Vec::new();
        for _ in 0..conns {
            let (client, queue, base) = (client.clone(), queue.clone(), base.to_string());
            workers.push(tokio::spawn(async move {
                let mut seen = Vec::new();
                loop {
                    let next = queue.lock().unwrap().next();
                    let Some((path, headers, body)) = next else {
                        break;
                    };
                    let content_type = if path.contains("alipay") {
                        "application/x-www-form-urlencoded"
                    } else {
                        "application/json"
                    };
                    let mut req = client
                        .post(format!("{base}{path}"))
                        .header("content-type", content_type)
                        .body(body);
                    for (k, v) in headers {
                        req = req.header(k, v);
                    }
                    let t = Instant::now();
                    let status = match req.send().await {
                        Ok(r) => {
                            let code = r.status().as_u16();
                            let _ = r.bytes().await;
                            code
                        }
                        Err(_) => 0,
                    };
                    seen.push((t.elapsed(), status));
                }
                seen
            }));
        }
        let mut all = Vec::new();
        for w in workers {
            all.extend(w.await.unwrap());
        }
        let secs = start.elapsed().as_secs_f64();
        let mut codes: std::collections::BTreeMap<u16, usize> = Default::default();
        for (_, c) in &all {
            *codes.entry(*c).or_default() += 1;
        }
        let mut times: Vec<Duration> = all.iter().map(|(t, _)| *t).collect();
        times.sort();
        println!(
            "{} sent in {secs:.2} s: {:.0}/s, p50 {}, p99 {}, answers {codes:?}",
            all.len(),
            all.len() as f64 / secs,
            percentile(&times, 0.5),
            percentile(&times, 0.99)
        );
    });
}

/// `bench streams BASE STREAMS ORDERS SECS`: one buyer creates ORDERS pending orders, then
/// STREAMS server-sent-event streams are opened over them (raw HTTP/1.1, a connection
/// each) and held for SECS seconds. Prints `held N` once every stream has its first
/// `status` frame (the caller measures the server then), then a summary at the end.
fn streams(base: &str, streams: usize, orders: usize, secs: u64) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = reqwest::Client::new();
        let post = |path: &str, body: serde_json::Value, token: Option<&str>| {
            let mut req = client.post(format!("{base}{path}")).json(&body);
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            async move {
                let r = req.send().await.expect("reach the server");
                let status = r.status().as_u16();
                (status, r.json::<serde_json::Value>().await.unwrap_or_default())
            }
        };
        // The password-hashing queue may still be draining an earlier crowd of logins
        // (503 `server_busy`): try again for a while.
        let mut answer = (0, serde_json::Value::Null);
        for (path, body) in [
            (
                "/api/v1/auth/register",
                json!({"username": "streams", "password": "streams-password", "email": "streams@example.com"}),
            ),
            (
                "/api/v1/auth/login",
                json!({"username": "streams", "password": "streams-password"}),
            ),
        ] {
            for _ in 0..60 {
                answer = post(path, body.clone(), None).await;
                if answer.0 != 503 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            assert!(answer.0 < 300, "{path}: {answer:?}");
        }
        let body = answer.1;
        let token = body["access_token"].as_str().unwrap().to_string();
        let mut nos = Vec::new();
        for _ in 0..orders {
            let (status, body) = post(
                "/api/v1/payment/create-order",
                json!({"product_type": "points", "product_id": 1, "payment_method": "alipay"}),
                Some(&token),
            )
            .await;
            assert_eq!(status, 200, "{body}");
            nos.push(body["order_no"].as_str().unwrap().to_string());
        }
        let addr = base.trim_start_matches("http://").to_string();
        let start = Instant::now();
        let open = std::sync::Arc::new(tokio::sync::Semaphore::new(256));
        let mut held = Vec::new();
        for i in 0..streams {
            let request = format!(
                "GET /api/v1/payment/orders/{}/events HTTP/1.1\r\nhost: {addr}\r\n\
                 authorization: Bearer {token}\r\naccept: text/event-stream\r\n\r\n",
                nos[i % nos.len()]
            );
            let (addr, open) = (addr.clone(), open.clone());
            held.push(tokio::spawn(async move {
                // A few hundred handshakes at a time (the listen backlog is finite).
                let permit = open.acquire_owned().await.unwrap();
                let mut conn = tokio::net::TcpStream::connect(&addr).await.ok()?;
                conn.write_all(request.as_bytes()).await.ok()?;
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                while !seen.windows(13).any(|w| w == b"event: status") {
                    let n = conn.read(&mut buf).await.ok()?;
                    if n == 0 {
                        return None;
                    }
                    seen.extend_from_slice(&buf[..n]);
                }
                drop(permit);
                Some(conn)
            }));
        }
        let mut conns = Vec::new();
        for h in held {
            if let Some(c) = h.await.unwrap() {
                conns.push(c);
            }
        }
        let opened = start.elapsed();
        println!(
            "held {} of {streams} streams over {orders} pending orders (first frames in {:.1} s)",
            conns.len(),
            opened.as_secs_f64()
        );
        use std::io::Write;
        std::io::stdout().flush().unwrap();
        // Hold them (reading what the server sends, so nothing backs up).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        let mut readers = Vec::new();
        for mut c in conns {
            readers.push(tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let mut alive = true;
                while tokio::time::Instant::now() < deadline {
                    match tokio::time::timeout_at(deadline, c.read(&mut buf)).await {
                        Ok(Ok(0)) | Ok(Err(_)) => {
                            alive = false;
                            break;
                        }
                        _ => {}
                    }
                }
                alive
            }));
        }
        let mut alive = 0;
        for r in readers {
            alive += r.await.unwrap() as usize;
        }
        println!("{alive} still open after {secs} s");
    });
}

fn load_overrides() -> Vec<(&'static str, &'static str)> {
    let mut o = vec![];
    if let Ok(n) = std::env::var("BENCH_DB_POOL") {
        o.push(("DATABASE_POOL_SIZE", &*Box::leak(n.into_boxed_str())));
    }
    o.extend([
        ("EMULATOR_ENABLED", "true"),
        ("EMULATOR_BIND", "127.0.0.1:0"),
        ("EMULATOR_TIME_SCALE", "1000"),
        ("DEV_KEYS_DIR", fenpay_tests::shared_dev_keys_dir()),
        ("RUST_LOG", "error"),
        // 200 buyers sign in from one address, several at once: the abuse limits would
        // refuse them (they are measured by tests/tests/abuse.rs, not here).
        ("LOGIN_MAX_FAILURES", "1000000"),
        ("LOGIN_ACCOUNT_MAX_FAILURES", "1000000"),
        ("CREATE_ORDER_MAX_PER_USER", "1000000"),
    ]);
    o
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("blast") {
        blast(&args[2], &args[3], args[4].parse().unwrap());
        return;
    }
    if args.get(1).map(String::as_str) == Some("streams") {
        let n = |i: usize| args[i].parse().unwrap();
        streams(&args[2], n(3), n(4), n(5) as u64);
        return;
    }
    let orders = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    println!(
        "fenpay benchmark — {}",
        chrono::Utc::now().format("%Y-%m-%d")
    );
    let signing = crypto();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(product(orders));
    if std::env::var("BENCH_HTTP").as_deref() == Ok("0") {
        return;
    }
    rt.block_on(async {
        http_load(TestApp::sqlite(&load_overrides()).await, "SQLite", signing).await;
        match TestApp::postgres(&load_overrides()).await {
            Some(app) => http_load(app, "PostgreSQL", signing).await,
            None => println!("\n(PostgreSQL skipped: TEST_DATABASE_URL is not set)"),
        }
    });
}
