//! Property tests (fuzzing without nightly) for every parser of provider messages in
//! this crate: WeChat notification envelopes, AEAD_AES_256_GCM resources, signed
//! messages and `Authorization` headers; Alipay signing strings, sync responses and
//! amounts. Arbitrary input never panics; structure-aware mutations of valid messages
//! (the official SDKs' vectors, or messages signed here with a vector key) are never
//! accepted as something else; round trips hold.
//!
//! Fast by default (CI); `PROPTEST_CASES=<n>` runs n cases per property.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use fenpay_proto::wechat::{self, EncryptedResource, NotificationEnvelope, Transaction};
use fenpay_proto::{alipay, Certificate, ProtoError, RsaPrivateKey};
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{json, Value};

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

fn vector(rel: &str) -> Value {
    let path = format!("{}/testdata/vectors/{rel}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap()
}

/// A published test key (Alipay Java SDK vector): signing here needs no key generation.
fn key() -> &'static RsaPrivateKey {
    static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let v = vector("alipay/01_java_sdk_rsacheck_sign_kat.json");
        RsaPrivateKey::from_pem(str_at(&v, "/app_private_key_pkcs8_pem")).unwrap()
    })
}

const APIV3_KEY: &[u8; 32] = b"0123456789abcdef0123456789abcdef";

fn transaction(out_trade_no: &str, total: i64) -> Transaction {
    serde_json::from_value(json!({
        "appid": "wxd0000000000emu01", "mchid": "1900000109", "out_trade_no": out_trade_no,
        "transaction_id": "4200000000000000001", "trade_type": "NATIVE",
        "trade_state": "SUCCESS", "trade_state_desc": "ok",
        "success_time": "2026-12-05T10:00:00+08:00",
        "amount": {"total": total, "payer_total": total, "currency": "CNY"}
    }))
    .unwrap()
}

fn envelope(tx: &Transaction, nonce: &str) -> NotificationEnvelope {
    let plain = serde_json::to_vec(tx).unwrap();
    NotificationEnvelope {
        id: "EV-1".into(),
        create_time: "2026-12-05T10:00:00+08:00".into(),
        resource_type: "encrypt-resource".into(),
        event_type: "TRANSACTION.SUCCESS".into(),
        summary: "支付成功".into(),
        resource: EncryptedResource::seal(APIV3_KEY, "transaction", "transaction", nonce, &plain)
            .unwrap(),
    }
}

/// Flip one bit of base64 data (as decoded), re-encoded.
fn flip_b64(b64: &str, at: usize, bit: u8) -> String {
    let mut raw = STANDARD.decode(b64).unwrap();
    let i = at % raw.len();
    raw[i] ^= 1 << (bit % 8);
    STANDARD.encode(raw)
}

// ---- WeChat: AEAD_AES_256_GCM ------------------------------------------------------

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn aead_round_trips_and_rejects_any_tampering(
        key in proptest::array::uniform32(any::<u8>()),
        nonce in "[0-9A-Za-z]{12}",
        aad in "[ -~]{0,40}",
        plain in proptest::collection::vec(any::<u8>(), 0..512),
        at in any::<usize>(),
        bit in any::<u8>(),
        other in "[0-9A-Za-z]{12}",
    ) {
        let sealed = wechat::aead_encrypt(&key, &nonce, &aad, &plain).unwrap();
        prop_assert_eq!(wechat::aead_decrypt(&key, &nonce, &aad, &sealed).unwrap(), plain);
        let tampered = flip_b64(&sealed, at, bit);
        prop_assert_eq!(wechat::aead_decrypt(&key, &nonce, &aad, &tampered), Err(ProtoError::Decrypt));
        if other != nonce {
            prop_assert!(wechat::aead_decrypt(&key, &other, &aad, &sealed).is_err());
        }
        let other_aad = format!("{aad}x");
        prop_assert!(wechat::aead_decrypt(&key, &nonce, &other_aad, &sealed).is_err());
        let mut other_key = key;
        other_key[at % 32] ^= 1 << (bit % 8);
        prop_assert!(wechat::aead_decrypt(&other_key, &nonce, &aad, &sealed).is_err());
    }

    #[test]
    fn aead_never_panics_on_garbage(
        key in proptest::collection::vec(any::<u8>(), 0..40),
        nonce in ".{0,16}",
        aad in ".{0,16}",
        ciphertext in ".{0,200}",
        algorithm in prop_oneof![Just("AEAD_AES_256_GCM".to_string()), ".{0,20}"],
    ) {
        let _ = wechat::aead_decrypt(&key, &nonce, &aad, &ciphertext);
        let resource = EncryptedResource {
            original_type: "transaction".into(),
            algorithm,
            ciphertext,
            associated_data: aad,
            nonce,
        };
        let _ = resource.decrypt(&key);
    }
}

// ---- WeChat: notification envelopes ------------------------------------------------

/// The fields of an envelope a mutation can replace.
const ENVELOPE_FIELDS: &[&str] = &[
    "/id",
    "/create_time",
    "/resource_type",
    "/event_type",
    "/summary",
    "/resource/original_type",
    "/resource/algorithm",
    "/resource/ciphertext",
    "/resource/associated_data",
    "/resource/nonce",
];

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn envelopes_never_panic_on_arbitrary_bytes(body in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(env) = serde_json::from_slice::<NotificationEnvelope>(&body) {
            let _ = env.decrypt_resource::<Transaction>(APIV3_KEY);
        }
    }

    /// Replace one field, drop one, or cut the body anywhere: the envelope either fails
    /// or still opens to exactly the transaction that was sealed.
    #[test]
    fn mutated_envelopes_never_open_to_another_transaction(
        out_trade_no in "FP[0-9]{8}",
        total in 1i64..1_000_000,
        nonce in "[0-9A-Za-z]{12}",
        field in 0..ENVELOPE_FIELDS.len(),
        replacement in prop_oneof![".{0,40}".prop_map(Value::from), any::<i64>().prop_map(Value::from), Just(Value::Null)],
        drop_it in any::<bool>(),
        cut in any::<usize>(),
    ) {
        let tx = transaction(&out_trade_no, total);
        let original = serde_json::to_value(envelope(&tx, &nonce)).unwrap();
        let mut mutated = original.clone();
        let ptr = ENVELOPE_FIELDS[field];
        let (parent, name) = ptr.rsplit_once('/').unwrap();
        let parent = if parent.is_empty() { &mut mutated } else { mutated.pointer_mut(parent).unwrap() };
        if drop_it {
            parent.as_object_mut().unwrap().remove(name);
        } else {
            parent[name] = replacement;
        }
        let mut bodies = vec![serde_json::to_vec(&mutated).unwrap()];
        let whole = serde_json::to_vec(&original).unwrap();
        bodies.push(whole[..cut % (whole.len() + 1)].to_vec());
        for body in bodies {
            let Ok(env) = serde_json::from_slice::<NotificationEnvelope>(&body) else { continue };
            if let Ok(opened) = env.decrypt_resource::<Transaction>(APIV3_KEY) {
                prop_assert_eq!(&opened, &tx);
            }
        }
    }
}

// ---- WeChat: signed messages and Authorization headers ---------------------------------

/// How a signed notification is tampered with.
#[derive(Clone, Debug)]
enum Tamper {
    /// Flip a bit of the body.
    Body(usize, u8),
    /// Another timestamp (still within the allowed skew).
    Timestamp(i64),
    /// Another nonce.
    Nonce(String),
    /// Flip a bit of the signature.
    Signature(usize, u8),
    /// Move the body up to a newline (from about byte n on) to the end of the nonce:
    /// the signed message `ts\nnonce\nbody\n` is byte for byte the same.
    ShiftIntoNonce(usize),
}

fn tamper() -> impl Strategy<Value = Tamper> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(a, b)| Tamper::Body(a, b)),
        (-299i64..299)
            .prop_filter("another time", |d| *d != 0)
            .prop_map(Tamper::Timestamp),
        "[ -~]{0,40}".prop_map(Tamper::Nonce),
        (any::<usize>(), any::<u8>()).prop_map(|(a, b)| Tamper::Signature(a, b)),
        (1usize..64).prop_map(Tamper::ShiftIntoNonce),
    ]
}

fn apply(
    t: &Tamper,
    ts: &str,
    nonce: &str,
    body: &[u8],
    sig: &str,
) -> (String, String, Vec<u8>, String) {
    let (mut ts, mut nonce, mut body, mut sig) = (
        ts.to_string(),
        nonce.to_string(),
        body.to_vec(),
        sig.to_string(),
    );
    match t {
        Tamper::Body(at, bit) => {
            let i = at % body.len();
            body[i] ^= 1 << (bit % 8);
        }
        Tamper::Timestamp(d) => ts = (ts.parse::<i64>().unwrap() + d).to_string(),
        Tamper::Nonce(n) => {
            if *n != nonce {
                nonce = n.clone()
            } else {
                nonce.push('x')
            }
        }
        Tamper::Signature(at, bit) => sig = flip_b64(&sig, *at, *bit),
        Tamper::ShiftIntoNonce(n) => {
            // Split the body at a newline from the n-th byte on: `nonce\nhead` and
            // `tail` give the same message as `nonce` and `head\ntail`. Without a newline
            // (or with a head that is not text) flip a body bit instead.
            let from = n % body.len();
            let split = body[from..]
                .iter()
                .position(|b| *b == b'\n')
                .map(|k| from + k);
            match split.and_then(|k| Some((k, String::from_utf8(body[..k].to_vec()).ok()?))) {
                Some((k, head)) => {
                    nonce = format!("{nonce}\n{head}");
                    body.drain(..=k);
                }
                None => body[from] ^= 1,
            }
        }
    }
    (ts, nonce, body, sig)
}

proptest! {
    #![proptest_config(config(64))]

    /// The wechatpay-go notification vector (a real platform signature): any change
    /// to what it covers is refused.
    #[test]
    fn the_sdk_vector_notification_rejects_any_tampering(t in tamper()) {
        let v = vector("wechatpay/04_go_notification_signed_encrypted.json");
        let cert = Certificate::from_pem(str_at(&v, "/platform_certificate_pem")).unwrap();
        let now = v["clock_now_unix"].as_i64().unwrap();
        let (ts, nonce, body, sig) = (
            str_at(&v, "/headers/Wechatpay-Timestamp"),
            str_at(&v, "/headers/Wechatpay-Nonce"),
            str_at(&v, "/body").as_bytes(),
            str_at(&v, "/headers/Wechatpay-Signature"),
        );
        prop_assert!(wechat::verify_signed_message(&cert.public_key, ts, nonce, body, sig, now).is_ok());
        let (ts2, nonce2, body2, sig2) = apply(&t, ts, nonce, body, sig);
        prop_assert!(
            wechat::verify_signed_message(&cert.public_key, &ts2, &nonce2, &body2, &sig2, now).is_err(),
            "accepted after {:?}", t
        );
    }

    #[test]
    fn signed_messages_round_trip_and_reject_tampering(
        now in 1_600_000_000i64..2_000_000_000,
        skew in -299i64..299,
        nonce in "[0-9A-Za-z]{1,32}",
        body in prop_oneof![
            proptest::collection::vec(any::<u8>(), 1..300),
            "[ -~\n]{1,300}".prop_map(String::into_bytes),
        ],
        t in tamper(),
    ) {
        let ts = (now + skew).to_string();
        let public = key().public_key();
        let sig = wechat::sign_response(key(), &ts, &nonce, &body).unwrap();
        prop_assert!(wechat::verify_signed_message(&public, &ts, &nonce, &body, &sig, now).is_ok());
        let (ts2, nonce2, body2, sig2) = apply(&t, &ts, &nonce, &body, &sig);
        prop_assert!(wechat::verify_signed_message(&public, &ts2, &nonce2, &body2, &sig2, now).is_err());
    }

    #[test]
    fn signed_message_headers_never_panic(
        ts in ".{0,24}", nonce in ".{0,40}", sig in ".{0,400}",
        body in proptest::collection::vec(any::<u8>(), 0..100), now in any::<i64>(),
    ) {
        let public = key().public_key();
        let _ = wechat::verify_signed_message(&public, &ts, &nonce, &body, &sig, now);
    }

    #[test]
    fn authorization_headers_parse_back(
        mchid in "[0-9]{6,12}",
        serial in "[0-9A-F]{8,40}",
        ts in any::<i64>(),
        nonce in "[0-9A-Za-z]{1,32}",
        sig in "[A-Za-z0-9+/=]{1,344}",
        garbage in ".{0,200}",
    ) {
        let header = wechat::authorization_header(&mchid, &serial, ts, &nonce, &sig);
        let parsed = wechat::parse_authorization(&header).unwrap();
        prop_assert_eq!(
            (parsed.mchid, parsed.serial_no, parsed.timestamp, parsed.nonce_str, parsed.signature),
            (mchid, serial, ts, nonce, sig)
        );
        let _ = wechat::parse_authorization(&garbage);
        let _ = wechat::parse_authorization(&format!("{} {garbage}", wechat::SIGNATURE_TYPE));
    }
}

// ---- Alipay: signing strings and notifications -----------------------------------------

fn params() -> impl Strategy<Value = BTreeMap<String, String>> {
    let base = [
        ("app_id", "2021000000000001"),
        ("out_trade_no", "FP2026120500000001"),
        ("trade_no", "2026120522001400000000000001"),
        ("trade_status", "TRADE_SUCCESS"),
        ("total_amount", "10.00"),
        ("notify_type", "trade_status_sync"),
    ];
    proptest::collection::btree_map("[a-z_]{1,12}", ".{0,20}", 0..8).prop_map(move |mut extra| {
        for (k, v) in base {
            extra.insert(k.to_string(), v.to_string());
        }
        extra.remove("sign");
        extra.remove("sign_type");
        extra
    })
}

/// One change to a signed parameter set (`sign` and `sign_type` aside).
#[derive(Clone, Debug)]
enum Edit {
    /// Another non-empty value for the n-th signed parameter.
    Value(usize, String),
    /// Drop the n-th parameter with a non-empty value.
    Remove(usize),
    /// Add a parameter that was not there, with a non-empty value.
    Add(String, String),
    /// Empty the n-th parameter's value.
    Empty(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), ".{1,20}").prop_map(|(i, v)| Edit::Value(i, v)),
        any::<usize>().prop_map(Edit::Remove),
        ("[a-z_]{1,12}", ".{1,20}").prop_map(|(k, v)| Edit::Add(k, v)),
        any::<usize>().prop_map(Edit::Empty),
    ]
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn sign_content_ignores_order_empty_values_and_excluded_keys(
        pairs in proptest::collection::vec(("[ -~]{0,8}", "[ -~]{0,8}"), 0..12),
        rotate in any::<usize>(),
    ) {
        let exclude = ["sign", "sign_type"];
        let borrowed: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let content = alipay::sign_content(borrowed.iter().copied(), &exclude);
        let mut turned = borrowed.clone();
        if !turned.is_empty() {
            let n = rotate % turned.len();
            turned.rotate_left(n);
            turned.reverse();
        }
        // Stable sort: pairs with equal keys keep their order, so only compare sets
        // of distinct keys.
        let distinct = borrowed.iter().map(|(k, _)| k).collect::<std::collections::BTreeSet<_>>().len() == borrowed.len();
        if distinct {
            prop_assert_eq!(&alipay::sign_content(turned.iter().copied(), &exclude), &content);
        }
        let mut kept: Vec<(&str, &str)> = borrowed
            .iter()
            .copied()
            .filter(|(k, v)| !k.is_empty() && !v.is_empty() && !exclude.contains(k))
            .collect();
        kept.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let expected: Vec<String> = kept.iter().map(|(k, v)| format!("{k}={v}")).collect();
        prop_assert_eq!(content, expected.join("&"));
    }

    #[test]
    fn signed_notifications_verify_and_reject_any_edit(mut p in params(), e in edit()) {
        let public = key().public_key();
        let sign = alipay::sign_notification(&p, key()).unwrap();
        p.insert("sign".into(), sign);
        p.insert("sign_type".into(), "RSA2".into());
        prop_assert!(alipay::verify_notification(&p, &public));
        let signed: Vec<String> = p
            .iter()
            .filter(|(k, v)| *k != "sign" && *k != "sign_type" && !v.is_empty())
            .map(|(k, _)| k.clone())
            .collect();
        let mut q = p.clone();
        match &e {
            Edit::Value(i, v) => {
                let k = &signed[i % signed.len()];
                if q[k] == *v { return Ok(()); }
                q.insert(k.clone(), v.clone());
            }
            Edit::Remove(i) => { q.remove(&signed[i % signed.len()]); }
            Edit::Add(k, v) => {
                if q.contains_key(k) || k == "sign" || k == "sign_type" { return Ok(()); }
                q.insert(k.clone(), v.clone());
            }
            Edit::Empty(i) => { q.insert(signed[i % signed.len()].clone(), String::new()); }
        }
        prop_assert!(!alipay::verify_notification(&q, &public), "accepted after {:?}", e);
    }
}

// ---- Alipay: sync responses ----------------------------------------------------------

fn content() -> impl Strategy<Value = String> {
    proptest::collection::btree_map("[a-z_]{1,10}", ".{0,16}", 0..6).prop_map(|fields| {
        let mut obj = serde_json::Map::new();
        obj.insert("code".into(), Value::from("10000"));
        obj.insert("msg".into(), Value::from("Success"));
        for (k, v) in fields {
            obj.insert(k, Value::from(v));
        }
        Value::Object(obj).to_string()
    })
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn sync_responses_round_trip_and_reject_tampering(
        content in content(),
        cert_sn in proptest::option::of("[0-9a-f]{32}"),
        at in any::<usize>(),
        forged in content(),
        before in any::<bool>(),
        ws in "[ \t\r\n]{0,3}",
    ) {
        let method = "alipay.trade.query";
        let node = alipay::response_node(method);
        let public = key().public_key();
        let body = alipay::build_signed_response(&node, &content, cert_sn.as_deref(), key()).unwrap();
        prop_assert_eq!(alipay::verify_response(&body, method, &public).unwrap(), content.as_str());
        prop_assert_eq!(alipay::extract_response_content(&body, &node).unwrap(), content.as_str());
        // Whitespace between top-level tokens changes nothing signed.
        let last_sign = body.rfind(",\"sign\"").unwrap();
        let spaced = format!("{{{ws}{}{ws},{ws}{}", &body[1..last_sign], &body[last_sign + 1..]);
        prop_assert_eq!(alipay::verify_response(&spaced, method, &public).unwrap(), content.as_str());
        // A changed byte inside the signed content is refused (or not even parsed).
        let start = body.find(&content).unwrap();
        let i = start + at % content.len();
        if content.is_char_boundary(i - start) && content.is_char_boundary(i - start + 1) {
            let mut bytes = body.clone().into_bytes();
            let b = bytes[i];
            bytes[i] = if b == b'0' { b'1' } else if b.is_ascii_alphanumeric() { b'0' } else { b };
            if bytes[i] != b {
                let changed = String::from_utf8(bytes).unwrap();
                prop_assert!(alipay::verify_response(&changed, method, &public).is_err());
            }
        }
        // A second node with forged content, before or after the real one: refused.
        let member = format!("\"{node}\":{forged}");
        let doubled = if before {
            format!("{{{member},{}", &body[1..])
        } else {
            format!("{},{member}{}", &body[..last_sign], &body[last_sign..])
        };
        prop_assert!(alipay::verify_response(&doubled, method, &public).is_err());
        prop_assert!(alipay::extract_response_content(&doubled, &node).is_err());
    }

    #[test]
    fn response_scanning_never_panics_nor_accepts_a_mutation(
        content in content(),
        garbage in ".{0,300}",
        at in any::<usize>(),
        insert in ".{0,4}",
        cut in any::<bool>(),
    ) {
        let method = "alipay.trade.query";
        let public = key().public_key();
        let _ = alipay::extract_response_content(&garbage, "alipay_trade_query_response");
        let _ = alipay::response_sign(&garbage);
        let _ = alipay::verify_response(&garbage, method, &public);
        let body = alipay::build_signed_response(&alipay::response_node(method), &content, None, key()).unwrap();
        let mut i = at % (body.len() + 1);
        while !body.is_char_boundary(i) { i -= 1; }
        let mutated = if cut { body[..i].to_string() } else { format!("{}{insert}{}", &body[..i], &body[i..]) };
        if let Ok(accepted) = alipay::verify_response(&mutated, method, &public) {
            prop_assert_eq!(accepted, content.as_str());
        }
    }
}

// ---- Alipay: amounts ---------------------------------------------------------------

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn amounts_round_trip(fen in prop_oneof![any::<i64>(), Just(i64::MIN), Just(i64::MAX), -1000i64..1000]) {
        prop_assert_eq!(alipay::yuan_to_fen(&alipay::fen_to_yuan(fen)), Some(fen));
    }

    #[test]
    fn amount_parsing_is_exact_or_refuses(text in prop_oneof![".{0,24}", "-?[0-9]{0,20}(\\.[0-9]{0,3})?"]) {
        let expected = reference_fen(&text).and_then(|f| i64::try_from(f).ok());
        prop_assert_eq!(alipay::yuan_to_fen(&text), expected, "{:?}", text);
    }
}

/// An independent reading of a yuan amount (`-`? digits, then `.` and one or two
/// digits), in i128 so no overflow hides.
fn reference_fen(text: &str) -> Option<i128> {
    let (negative, rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text),
    };
    let (int, frac) = rest.split_once('.').unwrap_or((rest, ""));
    let digits = |s: &str| !s.is_empty() && s.len() <= 30 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || (rest.contains('.') && (!digits(frac) || frac.len() > 2)) {
        return None;
    }
    let frac_fen = match frac.len() {
        0 => 0,
        1 => frac.parse::<i128>().ok()? * 10,
        _ => frac.parse::<i128>().ok()?,
    };
    let fen = int.parse::<i128>().ok()? * 100 + frac_fen;
    Some(if negative { -fen } else { fen })
}
