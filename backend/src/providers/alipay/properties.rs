//! Property tests (fuzzing without nightly) for the Alipay client's parsers: async
//! notifications (form bodies), sync responses and the answers they carry. Arbitrary
//! input never panics; a valid message (signed here with a published test key) is
//! accepted with exact amounts, and no edit of it is. `PROPTEST_CASES=<n>` runs more.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use proptest::prelude::*;
use proptest::test_runner::Config;

use super::*;

fn config(default_cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default_cases);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// Alipay's side and ours share one published test key (the Java SDK's vector).
fn key() -> &'static RsaPrivateKey {
    static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../proto/testdata/vectors/alipay/01_java_sdk_rsacheck_sign_kat.json"
        );
        let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        RsaPrivateKey::from_pem(v["app_private_key_pkcs8_pem"].as_str().unwrap()).unwrap()
    })
}

const APP_ID: &str = "2021000000000001";
const SELLER: &str = "2088000000000001";

fn client() -> AlipayClient {
    AlipayClient::new(AlipayClientConfig {
        app_id: APP_ID.into(),
        app_private_key: key().clone(),
        alipay_public_key: key().public_key(),
        cert_mode: None,
        seller_id: Some(SELLER.into()),
        gateway: "http://127.0.0.1:9/gateway.do".into(),
        v3_endpoint: None,
        notify_url: "http://127.0.0.1:9/notify".into(),
        return_url: "http://127.0.0.1:9/return".into(),
        timeout: Duration::from_secs(1),
    })
    .unwrap()
}

const STATUSES: &[&str] = &[
    "TRADE_SUCCESS",
    "TRADE_FINISHED",
    "TRADE_CLOSED",
    "WAIT_BUYER_PAY",
];

fn notification(
    order: &str,
    fen: i64,
    status: &str,
    extra: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut p = extra.clone();
    for (k, v) in [
        ("notify_time", "2026-12-05 12:00:05"),
        ("notify_type", "trade_status_sync"),
        ("app_id", APP_ID),
        ("charset", "utf-8"),
        ("trade_no", "2026120522001400000000000001"),
        ("out_trade_no", order),
        ("trade_status", status),
        ("total_amount", &proto::fen_to_yuan(fen)),
        ("seller_id", SELLER),
        ("gmt_payment", "2026-12-05 12:00:04"),
    ] {
        p.insert(k.to_string(), v.to_string());
    }
    p.remove("sign");
    p.remove("sign_type");
    let sign = proto::sign_notification(&p, key()).unwrap();
    p.insert("sign".into(), sign);
    p.insert("sign_type".into(), "RSA2".into());
    p
}

/// One change to a signed notification's form.
#[derive(Clone, Debug)]
enum Edit {
    /// Another non-empty value for the n-th parameter (but `sign_type`).
    Value(usize, String),
    /// Drop the n-th parameter (but `sign_type`).
    Remove(usize),
    /// A parameter that was not there, with a non-empty value.
    Add(String, String),
    /// The n-th parameter once more (same or another value).
    Repeat(usize, String),
    /// Flip a bit of the encoded body.
    Byte(usize, u8),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), ".{1,16}").prop_map(|(i, v)| Edit::Value(i, v)),
        any::<usize>().prop_map(Edit::Remove),
        ("[a-z_]{1,12}", ".{1,16}").prop_map(|(k, v)| Edit::Add(k, v)),
        (any::<usize>(), ".{0,8}").prop_map(|(i, v)| Edit::Repeat(i, v)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Byte(i, b)),
    ]
}

fn edited(p: &BTreeMap<String, String>, e: &Edit) -> Option<String> {
    let names: Vec<&String> = p.keys().filter(|k| *k != "sign_type").collect();
    let mut q = p.clone();
    match e {
        Edit::Value(i, v) => {
            let k = names[i % names.len()];
            if &q[k] == v {
                return None;
            }
            q.insert(k.clone(), v.clone());
        }
        Edit::Remove(i) => {
            // An empty value is not signed: dropping it changes nothing.
            let k = names[i % names.len()];
            if q[k].is_empty() {
                return None;
            }
            q.remove(k);
        }
        Edit::Add(k, v) => {
            if q.contains_key(k) {
                return None;
            }
            q.insert(k.clone(), v.clone());
        }
        Edit::Repeat(i, v) => {
            let k = names[i % names.len()];
            return Some(format!(
                "{}&{}={}",
                encode_form(p),
                urlencoding::encode(k),
                urlencoding::encode(v)
            ));
        }
        Edit::Byte(i, b) => {
            let mut body = encode_form(p).into_bytes();
            let at = i % body.len();
            body[at] ^= 1 << (b % 8);
            // A hex digit's case (`%2A` / `%2a`) means the same text.
            let text = String::from_utf8(body).ok()?;
            if parse_form(&text).ok().as_ref() == Some(p) {
                return None;
            }
            return Some(text);
        }
    }
    Some(encode_form(&q))
}

/// What the signature covers, and `sign` itself.
fn signed_view(p: &BTreeMap<String, String>) -> BTreeMap<&String, &String> {
    p.iter()
        .filter(|(k, v)| !k.is_empty() && !v.is_empty() && *k != "sign_type")
        .collect()
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn forms_round_trip_and_never_panic(
        map in proptest::collection::btree_map(".{0,10}", ".{0,20}", 0..8),
        garbage in ".{0,200}",
    ) {
        prop_assert_eq!(parse_form(&encode_form(&map)).unwrap(), map);
        let _ = parse_form(&garbage);
    }

    #[test]
    fn notifications_never_panic_on_arbitrary_bodies(body in proptest::collection::vec(any::<u8>(), 0..400), text in ".{0,300}") {
        let c = client();
        let _ = c.verify_notification(&body);
        let _ = c.verify_notification(text.as_bytes());
        let _ = c.verify_return(&text);
    }

    /// A valid notification is read exactly; no edit of it is accepted.
    #[test]
    fn signed_notifications_are_exact_and_refuse_any_edit(
        order in "FP[0-9]{16}",
        fen in 1i64..100_000_000,
        status in 0..STATUSES.len(),
        extra in proptest::collection::btree_map("[a-z_]{1,12}", ".{0,16}", 0..4),
        e in edit(),
    ) {
        let c = client();
        let p = notification(&order, fen, STATUSES[status], &extra);
        let body = encode_form(&p);
        let (notice, trade_status, params) = c.verify_notification(body.as_bytes()).unwrap();
        prop_assert_eq!(&notice.out_trade_no, &order);
        prop_assert_eq!(notice.amount_fen, fen);
        prop_assert_eq!(notice.paid, matches!(STATUSES[status], "TRADE_SUCCESS" | "TRADE_FINISHED"));
        prop_assert_eq!(trade_status.as_str(), STATUSES[status]);
        prop_assert_eq!(&params, &p);
        if let Some(tampered) = edited(&p, &e) {
            // Parameters with empty values are not signed (Alipay's rule): an edit that
            // only touches those changes nothing that was signed.
            let same = parse_form(&tampered).is_ok_and(|q| signed_view(&q) == signed_view(&p));
            if !same {
                prop_assert!(c.verify_notification(tampered.as_bytes()).is_err(), "accepted after {:?}", e);
            }
        }
    }

    /// Whatever a verified query or refund-query answer holds, reading it never panics
    /// and never yields a payment without an exact amount.
    #[test]
    fn answers_never_panic_and_paid_means_an_amount(
        status in prop_oneof![Just(None), proptest::sample::select(vec!["WAIT_BUYER_PAY", "TRADE_SUCCESS", "TRADE_FINISHED", "TRADE_CLOSED", "REFUND_SUCCESS", "REFUND_PROCESSING", "REFUND_FAIL", "x"]).prop_map(Some)],
        amount in prop_oneof![Just(None), "-?[0-9]{1,12}(\\.[0-9]{1,3})?".prop_map(Some), ".{0,8}".prop_map(Some)],
        code in prop_oneof![Just("10000".to_string()), Just("20000".to_string()), Just("40004".to_string()), ".{0,6}"],
        sub_code in prop_oneof![Just(None), ".{0,24}".prop_map(Some), Just(Some("ACQ.TRADE_NOT_EXIST".to_string()))],
        pay_date in prop_oneof![Just(None), Just(Some("2026-12-05 12:00:04".to_string())), ".{0,20}".prop_map(Some)],
        garbage in prop_oneof![Just(Value::Null), any::<i64>().prop_map(Value::from), ".{0,10}".prop_map(Value::from)],
    ) {
        let mut content = json!({"code": code, "trade_no": "2026x", "out_request_no": "r1"});
        for (k, v) in [("trade_status", &status.map(String::from)), ("refund_status", &status.map(String::from)),
                       ("total_amount", &amount), ("refund_amount", &amount), ("sub_code", &sub_code),
                       ("send_pay_date", &pay_date), ("gmt_refund_pay", &pay_date)] {
            if let Some(v) = v {
                content[k] = Value::from(v.clone());
            }
        }
        let _ = check_code(&content);
        let _ = check_code(&garbage);
        if let Ok(trade) = remote_trade("o1", &content) {
            if trade.state == RemoteTradeState::Paid {
                prop_assert_eq!(trade.amount_fen, amount.as_deref().and_then(proto::yuan_to_fen));
                prop_assert!(trade.amount_fen.is_some());
            }
        }
        let _ = remote_trade("o1", &garbage);
        if let Ok(refund) = remote_refund("o1", "r1", &content) {
            if refund.state == RemoteRefundState::Succeeded {
                prop_assert!(refund.amount_fen > 0);
            }
        }
        let _ = remote_refund("o1", "r1", &garbage);
    }

    /// Sync responses: a signed one is read as signed; any cut or insertion is refused
    /// or read as the same content.
    #[test]
    fn sync_responses_are_verified_before_use(
        fields in proptest::collection::btree_map("[a-z_]{1,10}", ".{0,16}", 0..5),
        at in any::<usize>(),
        insert in ".{0,4}",
        cut in any::<bool>(),
        garbage in ".{0,300}",
    ) {
        let c = client();
        let method = "alipay.trade.query";
        let mut content = json!({"code": "10000", "msg": "Success"});
        for (k, v) in &fields {
            content[k] = Value::from(v.clone());
        }
        let text = content.to_string();
        let body = proto::build_signed_response(&proto::response_node(method), &text, None, key()).unwrap();
        prop_assert_eq!(c.verified_content(&body, method).unwrap(), content.clone());
        let mut i = at % (body.len() + 1);
        while !body.is_char_boundary(i) {
            i -= 1;
        }
        let mutated = if cut { body[..i].to_string() } else { format!("{}{insert}{}", &body[..i], &body[i..]) };
        if let Ok(read) = c.verified_content(&mutated, method) {
            prop_assert_eq!(read, content);
        }
        let _ = c.verified_content(&garbage, method);
    }
}
