//! Running the business from the console (issue 15): catalog management (new orders
//! only see a change; retired products stay readable on their orders; tier rules),
//! account management (search, account page, adjustments as ledger entries, disable /
//! enable, the admin role and the last admin), and the admin audit log of all of them.
//! Every route refuses non-admins (403) and anonymous callers (401).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use fenpay_tests::{both_backends, pay_at_emulator, TestApp};
use serde_json::{json, Value};

async fn patch(app: &TestApp, path: &str, body: &Value, token: &str) -> (u16, Value) {
    let resp = app
        .client
        .patch(app.url(path))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    fenpay_tests::into_json(resp).await
}

async fn create_order(app: &TestApp, token: &str, product_id: i64) -> (u16, Value) {
    app.post(
        "/api/v1/payment/create-order",
        &json!({"product_type": "points", "product_id": product_id, "payment_method": "wechat"}),
        Some(token),
    )
    .await
}

/// The audit log's actions for `query`, newest first.
async fn actions(app: &TestApp, admin: &str, query: &str) -> Vec<String> {
    let (status, body) = app
        .get(
            &format!("/api/v1/admin/audit?per_page=100&{query}"),
            Some(admin),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect()
}

async fn ledger_ok(app: &TestApp, admin: &str) {
    let (status, body) = app.get("/api/v1/admin/ledger/verify", Some(admin)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["mismatches"], json!([]), "{body}");
}

both_backends!(
    catalog_changes_reach_new_orders_only,
    &TestApp::emulator_overrides(),
    |app: TestApp| async move {
        let admin = app.admin("boss").await;
        let buyer = app.signup("cat_buyer").await;

        // Create: on sale at once, last in the catalog.
        let (status, p) = app
            .post(
                "/api/v1/admin/products",
                &json!({"kind": "points", "name": "Promo 50", "description": "launch pack",
                        "price_fen": 500, "points": 50}),
                Some(&admin),
            )
            .await;
        assert_eq!(status, 200, "{p}");
        let id = p["id"].as_i64().unwrap();
        assert_eq!(
            (p["active"].as_bool(), p["price_fen"].as_i64()),
            (Some(true), Some(500))
        );
        let (_, public) = app.get("/api/v1/products", None).await;
        let listed: Vec<i64> = public["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_i64().unwrap())
            .collect();
        assert_eq!(listed.last(), Some(&id), "{public}");

        // An order created now keeps its snapshot through a price and grant change.
        let (status, before) = create_order(&app, &buyer, id).await;
        assert_eq!(status, 200, "{before}");
        let old_no = before["order_no"].as_str().unwrap().to_string();
        let (status, changed) = patch(
            &app,
            &format!("/api/v1/admin/products/{id}"),
            &json!({"price_fen": 800, "points": 80}),
            &admin,
        )
        .await;
        assert_eq!(status, 200, "{changed}");
        assert_eq!(changed["price_fen"], 800);
        let (status, after) = create_order(&app, &buyer, id).await;
        assert_eq!(status, 200, "{after}");
        let new_row = fenpay_tests::order(&app, after["order_no"].as_str().unwrap()).await;
        assert_eq!(new_row.amount_fen, 800);
        pay_at_emulator(&app, "wechat", &old_no).await;
        app.wait_in_db(&old_no, "paid").await;
        let old_row = fenpay_tests::order(&app, &old_no).await;
        assert_eq!(old_row.amount_fen, 500);
        let me = fenpay_tests::me(&app, &buyer).await;
        assert_eq!(me["points_balance"], 50, "paid at the old snapshot: {me}");

        // Retire: gone from the catalog and not for sale; its paid order stays intact.
        let (status, retired) = app
            .post(
                &format!("/api/v1/admin/products/{id}/retire"),
                &json!({}),
                Some(&admin),
            )
            .await;
        assert_eq!(status, 200, "{retired}");
        assert_eq!(retired["active"], false);
        let (status, _) = app.get(&format!("/api/v1/products/{id}"), None).await;
        assert_eq!(status, 404);
        let (_, public) = app.get("/api/v1/products", None).await;
        assert!(
            public["items"]
                .as_array()
                .unwrap()
                .iter()
                .all(|p| p["id"] != id),
            "{public}"
        );
        let (status, refused) = create_order(&app, &buyer, id).await;
        assert!((400..500).contains(&status), "{status} {refused}");
        let (status, old) = app
            .get(
                &format!("/api/v1/payment/order-status?order_no={old_no}"),
                Some(&buyer),
            )
            .await;
        assert_eq!(status, 200, "{old}");
        assert_eq!(old["status"], "paid");
        let (_, all) = app.get("/api/v1/admin/products", Some(&admin)).await;
        assert!(all["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == id && p["active"] == false));
        let (status, restored) = app
            .post(
                &format!("/api/v1/admin/products/{id}/restore"),
                &json!({}),
                Some(&admin),
            )
            .await;
        assert_eq!(
            (status, restored["active"].as_bool()),
            (200, Some(true)),
            "{restored}"
        );

        // Restock: limited goods only, relative.
        let (status, body) = app
            .post(
                &format!("/api/v1/admin/products/{id}/restock"),
                &json!({"add": 5}),
                Some(&admin),
            )
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (409, Some("unlimited_stock")),
            "{body}"
        );
        let (status, limited) = app
            .post(
                "/api/v1/admin/products",
                &json!({"kind": "points", "name": "Collector card", "price_fen": 1999,
                        "points": 10, "stock": 2}),
                Some(&admin),
            )
            .await;
        assert_eq!(status, 200, "{limited}");
        let lid = limited["id"].as_i64().unwrap();
        let (status, body) = app
            .post(
                &format!("/api/v1/admin/products/{lid}/restock"),
                &json!({"add": 3}),
                Some(&admin),
            )
            .await;
        assert_eq!((status, body["stock"].as_i64()), (200, Some(5)), "{body}");

        // Validation: clear codes, nothing written.
        let count = app.count("products").await;
        for (body, want) in [
            (
                json!({"kind": "points", "name": "", "price_fen": 100, "points": 1}),
                "invalid_product",
            ),
            (
                json!({"kind": "points", "name": "x", "price_fen": 0, "points": 1}),
                "invalid_product",
            ),
            (
                json!({"kind": "gift", "name": "x", "price_fen": 100}),
                "invalid_product",
            ),
            // Rank 3 cheaper per day than pro (rank 2, 9900/30 days): upgrades would be ill-defined.
            (
                json!({"kind": "membership", "name": "Max", "price_fen": 9000, "membership_days": 30,
                    "membership_tier": "max", "tier_rank": 3}),
                "tier_price_order",
            ),
            // A second rank for an existing tier.
            (
                json!({"kind": "membership", "name": "Pro year", "price_fen": 99000, "membership_days": 365,
                    "membership_tier": "pro", "tier_rank": 3}),
                "tier_rank_conflict",
            ),
        ] {
            let (status, e) = app
                .post("/api/v1/admin/products", &body, Some(&admin))
                .await;
            assert!(status == 400 || status == 409, "{body}: {status} {e}");
            assert_eq!(e["code"], want, "{body}: {e}");
        }
        // Making basic (rank 1) dearer per day than pro is refused too.
        let (status, e) = patch(
            &app,
            "/api/v1/admin/products/4",
            &json!({"price_fen": 20000}),
            &admin,
        )
        .await;
        assert_eq!(
            (status, e["code"].as_str()),
            (409, Some("tier_price_order")),
            "{e}"
        );
        let (status, e) = patch(&app, "/api/v1/admin/products/4", &json!({}), &admin).await;
        assert_eq!(
            (status, e["code"].as_str()),
            (400, Some("empty_patch")),
            "{e}"
        );
        assert_eq!(app.count("products").await, count);
        // A yearly pro pack, cheaper per day than monthly pro but dearer than basic: fine.
        let (status, e) = app
            .post(
                "/api/v1/admin/products",
                &json!({"kind": "membership", "name": "Pro year", "price_fen": 99000,
                        "membership_days": 365, "membership_tier": "pro", "tier_rank": 2}),
                Some(&admin),
            )
            .await;
        assert_eq!(status, 200, "{e}");

        // Reorder: the listed first, the rest after in their order.
        let (status, order) = app
            .post(
                "/api/v1/admin/products/reorder",
                &json!({"ids": [lid, 2]}),
                Some(&admin),
            )
            .await;
        assert_eq!(status, 200, "{order}");
        let ids: Vec<i64> = order["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_i64().unwrap())
            .collect();
        assert_eq!(&ids[..3], &[lid, 2, 1], "{ids:?}");
        let (status, e) = app
            .post(
                "/api/v1/admin/products/reorder",
                &json!({"ids": []}),
                Some(&admin),
            )
            .await;
        assert_eq!((status, e["code"].as_str()), (400, Some("invalid_order")));

        // Every change is on record with who and when; refusals are not.
        let log = actions(&app, &admin, "target_kind=product").await;
        for a in [
            "product.create",
            "product.update",
            "product.retire",
            "product.restore",
            "product.restock",
        ] {
            assert!(log.iter().any(|l| l == a), "{a} missing from {log:?}");
        }
        assert_eq!(
            log.iter().filter(|l| *l == "product.update").count(),
            1,
            "{log:?}"
        );
        assert_eq!(
            actions(&app, &admin, "action=product.reorder").await.len(),
            1
        );
        let (_, entries) = app
            .get(
                &format!(
                    "/api/v1/admin/audit?target_kind=product&target_id={id}&action=product.update"
                ),
                Some(&admin),
            )
            .await;
        let e = &entries["items"][0];
        assert_eq!(e["actor_name"], "boss");
        assert_eq!(
            (
                e["before"]["price_fen"].as_i64(),
                e["after"]["price_fen"].as_i64()
            ),
            (Some(500), Some(800))
        );
        assert!(e["created_at"].as_str().is_some());
        assert_eq!(
            actions(&app, &admin, "action=product").await.len(),
            log.len() + 1
        );
    }
);

both_backends!(
    accounts_are_managed_with_a_trail,
    &TestApp::emulator_overrides(),
    |app: TestApp| async move {
        let admin = app.admin("chief").await;
        let buyer = app.signup("Alice_Buyer").await;
        let buyer_id = fenpay_tests::me(&app, &buyer).await["id"]
            .as_str()
            .unwrap()
            .to_string();
        let paid = fenpay_tests::paid_points_order(&app, &buyer).await;

        // Search by part of the name (any case), by email, by id.
        for q in ["alice", "ALICE_b", "alice_buyer@example", buyer_id.as_str()] {
            let (status, found) = app
                .get(&format!("/api/v1/admin/accounts?q={q}"), Some(&admin))
                .await;
            assert_eq!(status, 200, "{found}");
            assert_eq!(found["total"], 1, "{q}: {found}");
            assert_eq!(found["items"][0]["id"], buyer_id.as_str());
        }
        let (_, none) = app.get("/api/v1/admin/accounts?q=%25", Some(&admin)).await;
        assert_eq!(none["total"], 0, "a % is literal: {none}");
        let (_, admins) = app
            .get("/api/v1/admin/accounts?role=admin", Some(&admin))
            .await;
        assert_eq!(admins["total"], 1);
        let (status, e) = app
            .get("/api/v1/admin/accounts?role=root", Some(&admin))
            .await;
        assert_eq!((status, e["code"].as_str()), (400, Some("invalid_query")));

        // Adjust with a reason: a ledger entry with the note; the books still balance.
        let (status, adj) = app
            .post(
                &format!("/api/v1/admin/accounts/{buyer_id}/adjust"),
                &json!({"points": 25, "reason": "compensation for outage #12"}),
                Some(&admin),
            )
            .await;
        assert_eq!(status, 200, "{adj}");
        assert_eq!(adj["account"]["points_balance"], 125);
        assert_eq!(adj["entry"]["reason"], "adjustment");
        assert_eq!(adj["entry"]["note"], "compensation for outage #12");
        assert_eq!(adj["entry"]["delta_points"], 25);
        ledger_ok(&app, &admin).await;
        // Refusals write nothing.
        let entries = app.count("balance_entries").await;
        let audits = app.count("admin_audit").await;
        for (body, status_want, code) in [
            (
                json!({"points": -1000, "reason": "too much"}),
                409,
                "insufficient_points",
            ),
            (json!({"points": 5, "reason": "  "}), 400, "reason_required"),
            (
                json!({"points": 5, "reason": "x".repeat(201)}),
                400,
                "reason_too_long",
            ),
            (json!({"reason": "nothing"}), 409, "empty_adjustment"),
            (
                json!({"membership_days": 7, "reason": "gift"}),
                409,
                "tier_required",
            ),
            (
                json!({"membership_days": -7, "reason": "take"}),
                409,
                "no_membership",
            ),
            (
                json!({"membership_days": 7, "tier_product_id": 1, "reason": "gift"}),
                400,
                "invalid_product",
            ),
        ] {
            let (status, e) = app
                .post(
                    &format!("/api/v1/admin/accounts/{buyer_id}/adjust"),
                    &body,
                    Some(&admin),
                )
                .await;
            assert_eq!(
                (status, e["code"].as_str()),
                (status_want, Some(code)),
                "{body}: {e}"
            );
        }
        assert_eq!(app.count("balance_entries").await, entries);
        assert_eq!(app.count("admin_audit").await, audits);
        let (status, _) = app
            .post(
                "/api/v1/admin/accounts/nobody/adjust",
                &json!({"points": 1, "reason": "x"}),
                Some(&admin),
            )
            .await;
        assert_eq!(status, 404);
        // Days of a tier to an account without one; then taken back.
        let (status, adj) = app
            .post(
                &format!("/api/v1/admin/accounts/{buyer_id}/adjust"),
                &json!({"membership_days": 10, "tier_product_id": 4, "reason": "trial"}),
                Some(&admin),
            )
            .await;
        assert_eq!(status, 200, "{adj}");
        assert_eq!(adj["account"]["membership_tier"], "basic");
        assert_eq!(adj["entry"]["delta_membership_secs"], 10 * 86_400);
        let (status, adj) = app
            .post(
                &format!("/api/v1/admin/accounts/{buyer_id}/adjust"),
                &json!({"membership_days": -3, "points": -5, "reason": "partial revoke"}),
                Some(&admin),
            )
            .await;
        assert_eq!(status, 200, "{adj}");
        assert_eq!(adj["account"]["points_balance"], 120);
        ledger_ok(&app, &admin).await;

        // The account page: orders, ledger (with notes), history.
        let (status, page) = app
            .get(&format!("/api/v1/admin/accounts/{buyer_id}"), Some(&admin))
            .await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["orders_total"], 1);
        assert_eq!(
            page["orders"][0]["order"]["order_no"].as_str(),
            Some(paid.as_str())
        );
        assert_eq!(page["ledger"][0]["note"], "partial revoke");
        assert_eq!(
            page["ledger"].as_array().unwrap().len(),
            4,
            "purchase + 3 adjustments"
        );
        assert_eq!(page["audit"].as_array().unwrap().len(), 3);
        let (status, _) = app.get("/api/v1/admin/accounts/nobody", Some(&admin)).await;
        assert_eq!(status, 404);

        // Disable: the open session is refused at once, sign-in too; enable: sign-in works,
        // the old token stays revoked.
        let (status, acct) = app
            .post(
                &format!("/api/v1/admin/accounts/{buyer_id}/disable"),
                &json!({"reason": "chargeback fraud"}),
                Some(&admin),
            )
            .await;
        assert_eq!(status, 200, "{acct}");
        assert!(acct["disabled_at"].as_str().is_some());
        let (status, _) = app.get("/api/v1/auth/me", Some(&buyer)).await;
        assert_eq!(status, 401);
        let (status, e) = app
            .post(
                "/api/v1/auth/login",
                &json!({"username": "Alice_Buyer", "password": "password-Alice_Buyer"}),
                None,
            )
            .await;
        assert_eq!(
            (status, e["code"].as_str()),
            (403, Some("account_disabled")),
            "{e}"
        );
        let (_, disabled) = app
            .get("/api/v1/admin/accounts?disabled=true", Some(&admin))
            .await;
        assert_eq!(disabled["total"], 1);
        // Disabling again changes nothing and records nothing.
        let audits = app.count("admin_audit").await;
        let (status, _) = app
            .post(
                &format!("/api/v1/admin/accounts/{buyer_id}/disable"),
                &json!({}),
                Some(&admin),
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(app.count("admin_audit").await, audits);
        let (status, _) = app
            .post(
                &format!("/api/v1/admin/accounts/{buyer_id}/enable"),
                &json!({}),
                Some(&admin),
            )
            .await;
        assert_eq!(status, 200);
        let fresh = app.login("Alice_Buyer", "password-Alice_Buyer").await;
        assert_eq!(app.get("/api/v1/auth/me", Some(&fresh)).await.0, 200);
        assert_eq!(app.get("/api/v1/auth/me", Some(&buyer)).await.0, 401);

        // The admin role: grant bumps the version (the token in hand dies); the last
        // active admin cannot be demoted or disabled.
        let chief_id = fenpay_tests::me(&app, &admin).await["id"]
            .as_str()
            .unwrap()
            .to_string();
        for route in ["revoke-admin", "disable"] {
            let (status, e) = app
                .post(
                    &format!("/api/v1/admin/accounts/{chief_id}/{route}"),
                    &json!({}),
                    Some(&admin),
                )
                .await;
            assert_eq!(
                (status, e["code"].as_str()),
                (409, Some("last_admin")),
                "{route}: {e}"
            );
        }
        let (status, _) = app
            .post(
                &format!("/api/v1/admin/accounts/{buyer_id}/grant-admin"),
                &json!({}),
                Some(&admin),
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(app.get("/api/v1/auth/me", Some(&fresh)).await.0, 401);
        let alice_admin = app.login("Alice_Buyer", "password-Alice_Buyer").await;
        assert_eq!(
            app.get("/api/v1/admin/accounts", Some(&alice_admin))
                .await
                .0,
            200
        );
        // Now chief may step down; then Alice is the last one.
        let (status, _) = app
            .post(
                &format!("/api/v1/admin/accounts/{chief_id}/revoke-admin"),
                &json!({}),
                Some(&alice_admin),
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(app.get("/api/v1/admin/accounts", Some(&admin)).await.0, 401);
        let (status, e) = app
            .post(
                &format!("/api/v1/admin/accounts/{buyer_id}/revoke-admin"),
                &json!({}),
                Some(&alice_admin),
            )
            .await;
        assert_eq!(
            (status, e["code"].as_str()),
            (409, Some("last_admin")),
            "{e}"
        );

        // A refund is on record too.
        let (status, r) = fenpay_tests::refund(
            &app,
            &alice_admin,
            json!({"order_no": paid, "reason": "goodwill"}),
        )
        .await;
        assert_eq!(status, 200, "{r}");
        let log = actions(&app, &alice_admin, "").await;
        for a in [
            "account.adjust",
            "account.disable",
            "account.enable",
            "account.grant_admin",
            "account.revoke_admin",
            "refund.create",
        ] {
            assert!(log.iter().any(|l| l == a), "{a} missing from {log:?}");
        }
        let (_, mine) = app.get(&format!("/api/v1/admin/audit?target_kind=account&target_id={buyer_id}&action=account.disable"), Some(&alice_admin)).await;
        assert_eq!(mine["total"], 1);
        let e = &mine["items"][0];
        assert_eq!(
            (e["actor_name"].as_str(), e["reason"].as_str()),
            (Some("chief"), Some("chargeback fraud"))
        );
        assert_eq!(
            (
                e["before"]["disabled"].as_bool(),
                e["after"]["disabled"].as_bool()
            ),
            (Some(false), Some(true))
        );
        // App changes are on record, never with a key or secret in them.
        let (status, created) = app
            .post(
                "/api/v1/admin/apps",
                &json!({"name": "Shop", "webhook_url": "https://shop.example.com/hook"}),
                Some(&alice_admin),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        let app_id = created["app"]["id"].as_str().unwrap();
        let (status, rotated) = app
            .post(
                &format!("/api/v1/admin/apps/{app_id}/rotate-key"),
                &json!({}),
                Some(&alice_admin),
            )
            .await;
        assert_eq!(status, 200, "{rotated}");
        let (_, trail) = app
            .get(
                &format!("/api/v1/admin/audit?target_kind=app&target_id={app_id}"),
                Some(&alice_admin),
            )
            .await;
        assert_eq!(trail["total"], 2, "{trail}");
        let text = trail.to_string();
        for secret in [
            &created["api_key"],
            &created["webhook_secret"],
            &rotated["api_key"],
        ] {
            assert!(
                !text.contains(secret.as_str().unwrap()),
                "a secret in the audit log: {text}"
            );
        }
        let (status, e) = app
            .get("/api/v1/admin/audit?from=yesterday", Some(&alice_admin))
            .await;
        assert_eq!((status, e["code"].as_str()), (400, Some("invalid_date")));
        ledger_ok(&app, &alice_admin).await;
    }
);

both_backends!(
    console_routes_are_for_admins_only,
    &[],
    |app: TestApp| async move {
        let user = app.signup("plain").await;
        let id = fenpay_tests::me(&app, &user).await["id"]
            .as_str()
            .unwrap()
            .to_string();
        let gets = [
            "/api/v1/admin/audit".to_string(),
            "/api/v1/admin/accounts".to_string(),
            format!("/api/v1/admin/accounts/{id}"),
            "/api/v1/admin/products".to_string(),
        ];
        let posts = [
            (
                format!("/api/v1/admin/accounts/{id}/adjust"),
                json!({"points": 1000, "reason": "me"}),
            ),
            (format!("/api/v1/admin/accounts/{id}/disable"), json!({})),
            (format!("/api/v1/admin/accounts/{id}/enable"), json!({})),
            (
                format!("/api/v1/admin/accounts/{id}/grant-admin"),
                json!({}),
            ),
            (
                format!("/api/v1/admin/accounts/{id}/revoke-admin"),
                json!({}),
            ),
            (
                "/api/v1/admin/products".to_string(),
                json!({"kind": "points", "name": "x", "price_fen": 1, "points": 1}),
            ),
            ("/api/v1/admin/products/1/retire".to_string(), json!({})),
            ("/api/v1/admin/products/1/restore".to_string(), json!({})),
            (
                "/api/v1/admin/products/1/restock".to_string(),
                json!({"add": 1}),
            ),
            (
                "/api/v1/admin/products/reorder".to_string(),
                json!({"ids": [2, 1]}),
            ),
        ];
        for token in [Some(user.as_str()), None] {
            let want = if token.is_some() { 403 } else { 401 };
            for path in &gets {
                assert_eq!(app.get(path, token).await.0, want, "GET {path}");
            }
            for (path, body) in &posts {
                assert_eq!(app.post(path, body, token).await.0, want, "POST {path}");
            }
            let mut req = app
                .client
                .patch(app.url("/api/v1/admin/products/1"))
                .json(&json!({"price_fen": 1}));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            assert_eq!(req.send().await.unwrap().status().as_u16(), want, "PATCH");
        }
        // Nothing changed: the grant was refused, the price stands, nothing on record.
        assert_eq!(fenpay_tests::me(&app, &user).await["role"], "user");
        assert_eq!(fenpay_tests::me(&app, &user).await["points_balance"], 0);
        let p = fenpay::db::products::find(&app.state.db, 1)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((p.price_fen, p.active), (1000, true));
        assert_eq!(app.count("admin_audit").await, 0);
    }
);
