//! Operator console: daily totals and day filters in the business time zone
//! (`BUSINESS_TIMEZONE`, default Asia/Shanghai) and the streamed CSV exports of orders,
//! refunds and the ledger (BOM, quoting, formula guard, admin only, bad dates, size).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use fenpay_tests::{both_backends, TestApp};
use serde_json::Value;

/// A registered buyer's id.
async fn user_id(app: &TestApp, username: &str) -> String {
    fenpay::db::users::find_by_username(&app.state.db, username)
        .await
        .unwrap()
        .unwrap()
        .id
}

fn q(s: &str) -> String {
    s.replace('\'', "''")
}

/// An `INSERT` of one paid order created and paid at `at` (UTC, `YYYY-MM-DD HH:MM:SS`).
fn order_sql(no: &str, user: &str, provider: &str, name: &str, fen: i64, at: &str) -> String {
    format!(
        "INSERT INTO orders (order_no, user_id, product_id, product_type, product_name, \
         unit_price_fen, quantity, amount_fen, provider, channel, status, refunded_fen, \
         expire_at, qr_code_expire_at, paid_at, created_at, updated_at) VALUES \
         ({}, '{user}', 1, 'points', '{}', {fen}, 1, {fen}, '{provider}', 'native', 'paid', 0, \
         '{at}', '{at}', '{at}', '{at}', '{at}')",
        format_args!("'{}'", q(no)),
        q(name)
    )
}

/// Download `path` as `token`: status, content type, disposition, the body's bytes and
/// whether a length was announced.
async fn download(
    app: &TestApp,
    path: &str,
    token: Option<&str>,
) -> (u16, String, String, Vec<u8>) {
    let mut req = app.client.get(app.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let (ctype, disposition) = (header("content-type"), header("content-disposition"));
    let body = resp.bytes().await.unwrap().to_vec();
    (status, ctype, disposition, body)
}

/// A CSV file (after its BOM) as records of fields, by RFC 4180.
fn parse_csv(body: &[u8]) -> Vec<Vec<String>> {
    assert_eq!(
        &body[..3],
        b"\xEF\xBB\xBF",
        "the export starts with a UTF-8 BOM"
    );
    let text = std::str::from_utf8(&body[3..]).expect("UTF-8");
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' => quoted = true,
            ',' => record.push(std::mem::take(&mut field)),
            '\r' => {
                assert_eq!(chars.next(), Some('\n'), "lines end with CRLF");
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            _ => field.push(c),
        }
    }
    assert!(
        field.is_empty() && record.is_empty(),
        "the last line is complete"
    );
    records
}

/// The records of an export as maps column -> value (header dropped).
fn rows(body: &[u8]) -> Vec<std::collections::HashMap<String, String>> {
    let mut records = parse_csv(body);
    let header = records.remove(0);
    records
        .into_iter()
        .map(|r| {
            assert_eq!(r.len(), header.len(), "{r:?}");
            header.iter().cloned().zip(r).collect()
        })
        .collect()
}

async fn get_csv(
    app: &TestApp,
    path: &str,
    token: &str,
) -> Vec<std::collections::HashMap<String, String>> {
    let (status, ctype, disposition, body) = download(app, path, Some(token)).await;
    assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
    assert_eq!(ctype, "text/csv; charset=utf-8");
    assert!(
        disposition.starts_with("attachment; filename=\"fenpay-")
            && disposition.ends_with(".csv\""),
        "{disposition}"
    );
    rows(&body)
}

const TRICKY_NAME: &str = "Gold, \"VIP\"\n会员 plan";
const FORMULA_NAME: &str = "=HYPERLINK(\"http://evil.example\",\"x\")";

/// Order A paid 2026-12-04T16:30Z (00:30 on the 5th in China), B paid 15:30Z (23:30 on
/// the 4th in China), a refund of A at 16:45Z and a ledger entry at 16:30Z.
async fn seed(app: &TestApp) -> (String, String) {
    let admin = app.admin("boss").await;
    let _buyer = app.signup("buyer").await;
    let uid = user_id(app, "buyer").await;
    app.sql_atomic(&[
        order_sql(
            "FPCONSOLEA0001",
            &uid,
            "wechat",
            TRICKY_NAME,
            1000,
            "2026-12-04 16:30:00",
        ),
        order_sql(
            "FPCONSOLEB0001",
            &uid,
            "alipay",
            FORMULA_NAME,
            2000,
            "2026-12-04 15:30:00",
        ),
        "INSERT INTO refunds (out_refund_no, order_no, provider, amount_fen, reason, status, \
         requested_by, created_at, updated_at, succeeded_at) VALUES ('RFCONSOLE0001', \
         'FPCONSOLEA0001', 'wechat', 500, '+1 refund, sorry', 'succeeded', 'boss', \
         '2026-12-04 16:45:00', '2026-12-04 16:46:00', '2026-12-04 16:46:00')"
            .to_string(),
        format!(
            "INSERT INTO balance_entries (user_id, delta_points, points_after, \
             delta_membership_secs, order_no, out_refund_no, reason, created_at) VALUES \
             ('{uid}', -100, 0, 0, 'FPCONSOLEA0001', 'RFCONSOLE0001', 'clawback', \
             '2026-12-04 16:30:00')"
        ),
        "UPDATE orders SET refunded_fen = 500 WHERE order_no = 'FPCONSOLEA0001'".to_string(),
    ])
    .await;
    (admin, uid)
}

both_backends!(days_are_cut_in_china_time, &[], |app: TestApp| async move {
    let (admin, uid) = seed(&app).await;

    // Daily totals: A on the 5th, B on the 4th (not both on the 4th as in UTC).
    let (status, stats) = app
        .get(
            "/api/v1/admin/stats?from=2026-12-04&to=2026-12-05",
            Some(&admin),
        )
        .await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["timezone"], "Asia/Shanghai");
    let days: Vec<(String, String, i64)> = stats["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["date"].as_str().unwrap().to_string(),
                d["provider"].as_str().unwrap().to_string(),
                d["paid_fen"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        days,
        vec![
            ("2026-12-04".into(), "alipay".into(), 2000),
            ("2026-12-05".into(), "wechat".into(), 1000)
        ],
        "{stats}"
    );
    let (_, fifth) = app
        .get(
            "/api/v1/admin/stats?from=2026-12-05&to=2026-12-05",
            Some(&admin),
        )
        .await;
    assert_eq!(
        (&fifth["total_paid_fen"], &fifth["total_refunded_fen"]),
        (&Value::from(1000), &Value::from(500)),
        "{fifth}"
    );

    // The order list's day filter is the same day.
    let (_, list) = app
        .get(
            "/api/v1/admin/orders?from=2026-12-05&to=2026-12-05",
            Some(&admin),
        )
        .await;
    assert_eq!(list["total"], 1, "{list}");
    assert_eq!(list["items"][0]["order"]["order_no"], "FPCONSOLEA0001");

    // Orders export of the 5th: A only, times in China time with the offset,
    // fen and exact yuan, the product name quoted intact.
    let a = get_csv(
        &app,
        "/api/v1/admin/exports/orders.csv?from=2026-12-05&to=2026-12-05",
        &admin,
    )
    .await;
    assert_eq!(a.len(), 1, "{a:?}");
    let a = &a[0];
    assert_eq!(a["order_no"], "FPCONSOLEA0001");
    assert_eq!(a["created_at"], "2026-12-05T00:30:00+08:00");
    assert_eq!(a["paid_at"], "2026-12-05T00:30:00+08:00");
    assert_eq!(
        (a["amount_fen"].as_str(), a["amount_yuan"].as_str()),
        ("1000", "10.00")
    );
    assert_eq!(
        (a["refunded_fen"].as_str(), a["refunded_yuan"].as_str()),
        ("500", "5.00")
    );
    assert_eq!(a["product_name"], TRICKY_NAME);
    assert_eq!(
        (a["username"].as_str(), a["user_id"].as_str()),
        ("buyer", uid.as_str())
    );
    assert_eq!(a["status"], "paid");

    // The raw bytes: BOM, then the tricky name as RFC 4180 quoting writes it.
    let (_, _, _, raw) = download(
        &app,
        "/api/v1/admin/exports/orders.csv?from=2026-12-05&to=2026-12-05",
        Some(&admin),
    )
    .await;
    assert!(raw.starts_with(b"\xEF\xBB\xBForder_no,created_at,"));
    let text = String::from_utf8(raw).unwrap();
    assert!(
        text.contains(",\"Gold, \"\"VIP\"\"\n会员 plan\","),
        "{text}"
    );

    // The 4th: B only, its formula defused with a leading apostrophe.
    let b = get_csv(
        &app,
        "/api/v1/admin/exports/orders.csv?from=2026-12-04&to=2026-12-04",
        &admin,
    )
    .await;
    assert_eq!(b.len(), 1, "{b:?}");
    assert_eq!(b[0]["order_no"], "FPCONSOLEB0001");
    assert_eq!(b[0]["product_name"], format!("'{FORMULA_NAME}"));
    assert_eq!(b[0]["paid_at"], "2026-12-04T23:30:00+08:00");

    // RFC 3339 bounds (`to` excluded) and the list's other filters.
    let r = get_csv(
        &app,
        "/api/v1/admin/exports/orders.csv?from=2026-12-04T16:00:00Z&to=2026-12-05T00:30:00%2B08:00",
        &admin,
    )
    .await;
    assert!(r.is_empty(), "00:30 China time is excluded: {r:?}");
    let r = get_csv(
        &app,
        "/api/v1/admin/exports/orders.csv?from=2026-12-04T16:00:00Z&to=2026-12-04T16:30:01Z",
        &admin,
    )
    .await;
    assert_eq!(r.len(), 1);
    let r = get_csv(
        &app,
        "/api/v1/admin/exports/orders.csv?provider=alipay&status=paid&user=buyer",
        &admin,
    )
    .await;
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["order_no"], "FPCONSOLEB0001");
    let r = get_csv(
        &app,
        &format!("/api/v1/admin/exports/orders.csv?user={uid}"),
        &admin,
    )
    .await;
    assert_eq!(r.len(), 2);
    let r = get_csv(&app, "/api/v1/admin/exports/orders.csv?user=nobody", &admin).await;
    assert!(r.is_empty());
    let r = get_csv(
        &app,
        "/api/v1/admin/exports/orders.csv?status=pending",
        &admin,
    )
    .await;
    assert!(r.is_empty());

    // Refunds of the 5th (China time): the reason guarded and quoted.
    let f = get_csv(
        &app,
        "/api/v1/admin/exports/refunds.csv?from=2026-12-05&to=2026-12-05",
        &admin,
    )
    .await;
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0]["out_refund_no"], "RFCONSOLE0001");
    assert_eq!(f[0]["created_at"], "2026-12-05T00:45:00+08:00");
    assert_eq!(f[0]["succeeded_at"], "2026-12-05T00:46:00+08:00");
    assert_eq!(
        (f[0]["amount_fen"].as_str(), f[0]["amount_yuan"].as_str()),
        ("500", "5.00")
    );
    assert_eq!(f[0]["reason"], "'+1 refund, sorry");
    assert_eq!(f[0]["status"], "succeeded");
    assert_eq!(f[0]["username"], "buyer");
    assert_eq!(f[0]["product_name"], TRICKY_NAME);
    assert!(get_csv(
        &app,
        "/api/v1/admin/exports/refunds.csv?to=2026-12-04",
        &admin
    )
    .await
    .is_empty());
    assert!(get_csv(
        &app,
        "/api/v1/admin/exports/refunds.csv?status=failed",
        &admin
    )
    .await
    .is_empty());
    assert!(get_csv(
        &app,
        "/api/v1/admin/exports/refunds.csv?provider=alipay",
        &admin
    )
    .await
    .is_empty());

    // The ledger: our own negative numbers stay numbers (no apostrophe).
    let l = get_csv(
        &app,
        "/api/v1/admin/exports/ledger.csv?from=2026-12-05&to=2026-12-05&user=buyer",
        &admin,
    )
    .await;
    assert_eq!(l.len(), 1, "{l:?}");
    assert_eq!(l[0]["delta_points"], "-100");
    assert_eq!(l[0]["reason"], "clawback");
    assert_eq!(l[0]["created_at"], "2026-12-05T00:30:00+08:00");
    assert_eq!(l[0]["out_refund_no"], "RFCONSOLE0001");
    assert!(get_csv(
        &app,
        "/api/v1/admin/exports/ledger.csv?to=2026-12-04",
        &admin
    )
    .await
    .is_empty());
});

both_backends!(
    another_business_timezone_moves_the_day,
    &[("BUSINESS_TIMEZONE", "UTC")],
    |app: TestApp| async move {
        let (admin, _) = seed(&app).await;
        let (_, stats) = app
            .get(
                "/api/v1/admin/stats?from=2026-12-04&to=2026-12-05",
                Some(&admin),
            )
            .await;
        assert_eq!(stats["timezone"], "UTC");
        let days = stats["days"].as_array().unwrap();
        assert!(days.iter().all(|d| d["date"] == "2026-12-04"), "{stats}");
        assert_eq!(stats["total_paid_fen"], 3000);
        let a = get_csv(
            &app,
            "/api/v1/admin/exports/orders.csv?from=2026-12-04&to=2026-12-04",
            &admin,
        )
        .await;
        assert_eq!(a.len(), 2);
        assert_eq!(a[0]["paid_at"], "2026-12-04T15:30:00+00:00");
    }
);

const EXPORTS: [&str; 3] = [
    "/api/v1/admin/exports/orders.csv",
    "/api/v1/admin/exports/refunds.csv",
    "/api/v1/admin/exports/ledger.csv",
];

both_backends!(
    exports_are_for_administrators_only,
    &[],
    |app: TestApp| async move {
        let buyer = app.signup("plain").await;
        for path in EXPORTS {
            let (status, _, _, body) = download(&app, path, None).await;
            assert_eq!(status, 401, "{path}");
            let body: Value = serde_json::from_slice(&body).unwrap();
            assert!(body["code"].is_string(), "{body}");
            let (status, _, _, body) = download(&app, path, Some(&buyer)).await;
            assert_eq!(status, 403, "{path}");
            let body: Value = serde_json::from_slice(&body).unwrap();
            assert!(body["code"].is_string(), "{body}");
        }
        let (status, _) = app.get("/api/v1/admin/stats", Some(&buyer)).await;
        assert_eq!(status, 403);
    }
);

both_backends!(bad_dates_are_refused, &[], |app: TestApp| async move {
    let admin = app.admin("boss").await;
    for path in EXPORTS {
        for query in [
            "from=2026-13-01",
            "to=yesterday",
            "from=2026-12-05%2008:00",
            "from=2026-12-06&to=2026-12-05",
            "from=2026-12-05T00:00:00Z&to=2026-12-05T00:00:00Z",
        ] {
            let (status, body) = app.get(&format!("{path}?{query}"), Some(&admin)).await;
            assert_eq!(
                (status, body["code"].as_str()),
                (400, Some("invalid_date")),
                "{path}?{query}: {body}"
            );
        }
    }
    let (status, body) = app
        .get(
            "/api/v1/admin/exports/orders.csv?status=weird",
            Some(&admin),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_query")),
        "{body}"
    );
    let (status, body) = app
        .get("/api/v1/admin/stats?from=2026-12-32", Some(&admin))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_query")),
        "{body}"
    );
});

both_backends!(
    a_large_export_streams_every_row_once,
    &[],
    |app: TestApp| async move {
        let admin = app.admin("boss").await;
        let _ = app.signup("many").await;
        let uid = user_id(&app, "many").await;
        // 2,500 orders, 250 to each of ten creation times: pages (500 rows) end inside
        // runs of equal times, which the keyset (time, order_no) must not skip or repeat.
        let statements: Vec<String> = (0..5)
            .map(|chunk| {
                let values: Vec<String> = (0..500)
                    .map(|i| {
                        let n = chunk * 500 + i;
                        let at = format!("2026-11-{:02} 08:00:00", 10 + n % 10);
                        format!(
                            "('FPBULK{n:08}', '{uid}', 1, 'points', '点数包 {n}', 100, 1, 100, \
                             'wechat', 'native', 'paid', 0, '{at}', '{at}', '{at}', '{at}', '{at}')"
                        )
                    })
                    .collect();
                format!(
                    "INSERT INTO orders (order_no, user_id, product_id, product_type, \
                     product_name, unit_price_fen, quantity, amount_fen, provider, channel, \
                     status, refunded_fen, expire_at, qr_code_expire_at, paid_at, created_at, \
                     updated_at) VALUES {}",
                    values.join(", ")
                )
            })
            .collect();
        app.sql_atomic(&statements).await;

        let resp = app
            .client
            .get(app.url("/api/v1/admin/exports/orders.csv"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        assert_eq!(
            resp.content_length(),
            None,
            "streamed, not sent with a length"
        );
        let body = resp.bytes().await.unwrap();
        let all = rows(&body);
        assert_eq!(all.len(), 2500);
        let unique: std::collections::HashSet<&str> =
            all.iter().map(|r| r["order_no"].as_str()).collect();
        assert_eq!(unique.len(), 2500, "no row twice");
        // Oldest first.
        let times: Vec<&str> = all.iter().map(|r| r["created_at"].as_str()).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(times[0], "2026-11-10T16:00:00+08:00");
        assert!(all.iter().all(|r| r["amount_yuan"] == "1.00"));
        // A day's filter on the same data.
        let day = get_csv(
            &app,
            "/api/v1/admin/exports/orders.csv?from=2026-11-12&to=2026-11-12",
            &admin,
        )
        .await;
        assert_eq!(day.len(), 250);
    }
);
