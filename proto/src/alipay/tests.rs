use serde_json::Value;

use super::*;
use crate::test_support::{generated_key, str_at, vector};
use crate::Certificate;

fn v01() -> Value {
    vector("alipay/01_java_sdk_rsacheck_sign_kat.json")
}

fn v01_key() -> RsaPrivateKey {
    RsaPrivateKey::from_pem(str_at(&v01(), "/app_private_key_pkcs8_pem")).unwrap()
}

fn params_of(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect()
}

// ---- vector 01: Java SDK RSA/RSA2 sign KATs ----

#[test]
fn v01_sign_content_for_every_case() {
    let v = v01();
    let cases = v["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for case in cases {
        let params = params_of(&case["params"]);
        assert_eq!(
            map_content(&params, &["sign"]),
            str_at(case, "/sign_content")
        );
    }
}

#[test]
fn v01_rsa2_sign_kats() {
    let v = v01();
    let key = v01_key();
    let mut rsa2_cases = 0;
    for case in v["cases"].as_array().unwrap() {
        // SHA1withRSA ("RSA") is deliberately unsupported; see the RSA case below.
        if str_at(case, "/sign_type") != "RSA2" {
            continue;
        }
        rsa2_cases += 1;
        let params = params_of(&case["params"]);
        assert_eq!(
            sign_params(&params, &key).unwrap(),
            str_at(case, "/expected_sign")
        );
    }
    assert_eq!(rsa2_cases, 2);
}

#[test]
fn v01_rsa_sha1_case_is_not_an_rsa2_signature() {
    let v = v01();
    let case = &v["cases"][0];
    assert_eq!(str_at(case, "/sign_type"), "RSA");
    let mut params = params_of(&case["params"]);
    params.insert("sign".into(), str_at(case, "/expected_sign").into());
    assert!(!verify_request_params(&params, &v01_key().public_key()));
}

#[test]
fn v01_bare_base64_key_and_app_certificate() {
    let v = v01();
    let bare = RsaPrivateKey::from_pem(str_at(&v, "/app_private_key_pkcs8_base64")).unwrap();
    let pem = v01_key();
    assert_eq!(bare.public_key(), pem.public_key());

    let cert_pem = str_at(&v, "/app_cert_pem");
    let cert = Certificate::from_pem(cert_pem).unwrap();
    assert_eq!(cert.public_key, pem.public_key());
    assert_eq!(
        cert_sn(cert_pem).unwrap(),
        str_at(&v, "/app_cert_sn_computed")
    );

    // RSACheckTest verifies the RSA2 cases with the app certificate's key.
    for case in v["cases"].as_array().unwrap().iter().skip(1) {
        let mut params = params_of(&case["params"]);
        params.insert("sign".into(), str_at(case, "/expected_sign").into());
        assert!(verify_request_params(&params, &cert.public_key));
        params.insert("extra2".into(), "x".into());
        assert!(!verify_request_params(&params, &cert.public_key));
    }
}

// ---- vector 05: gopay sync response ----

fn v05() -> (Value, RsaPublicKey) {
    let v = vector("alipay/05_gopay_sync_response_sign.json");
    let key = RsaPublicKey::from_pem(str_at(&v, "/alipay_public_key_base64_der")).unwrap();
    (v, key)
}

#[test]
fn v05_sync_response_signature_verifies() {
    let (v, key) = v05();
    let content = str_at(&v, "/sign_content");
    let sign = str_at(&v, "/sign");
    assert!(key.verify_sha256_base64(content.as_bytes(), sign));
    assert!(!key.verify_sha256_base64(content.replace("0.01", "0.02").as_bytes(), sign));
    assert_eq!(
        key.to_spki_base64(),
        str_at(&v, "/alipay_public_key_base64_der")
    );
}

#[test]
fn v05_verify_response_on_assembled_bodies() {
    let (v, key) = v05();
    let content = str_at(&v, "/sign_content");
    let sign = str_at(&v, "/sign");
    let escaped_sign = sign.replace('/', "\\/");
    let bodies = [
        format!("{{\"alipay_trade_query_response\":{content},\"sign\":\"{sign}\"}}"),
        format!("{{\"alipay_trade_query_response\":{content},\"alipay_cert_sn\":\"abc\",\"sign\":\"{sign}\"}}"),
        format!("{{\"sign\":\"{escaped_sign}\",\"alipay_trade_query_response\":{content}}}"),
        format!("\n{{ \"alipay_trade_query_response\" :\r\n {content} ,\n  \"sign\" : \"{sign}\" }}\n"),
    ];
    for body in &bodies {
        assert_eq!(
            verify_response(body, "alipay.trade.query", &key).unwrap(),
            content
        );
        assert_eq!(response_sign(body).unwrap(), sign);
    }
    let tampered = bodies[0].replace("GZ201901301040361012", "GZ201901301040361013");
    assert_eq!(
        verify_response(&tampered, "alipay.trade.query", &key),
        Err(ProtoError::BadSignature)
    );
    let no_node = format!("{{\"other_response\":{content},\"sign\":\"{sign}\"}}");
    assert!(matches!(
        verify_response(&no_node, "alipay.trade.query", &key),
        Err(ProtoError::Malformed(_))
    ));
    let no_sign = format!("{{\"alipay_trade_query_response\":{content}}}");
    assert!(matches!(
        verify_response(&no_sign, "alipay.trade.query", &key),
        Err(ProtoError::Malformed(_))
    ));
}

// ---- vector 06: certificate SNs ----

#[test]
fn v06_cert_sn_kats() {
    let v = vector("alipay/06_cert_sn.json");
    let mut single = 0;
    let mut root = 0;
    for case in v["cases"].as_array().unwrap() {
        if let Some(pem) = case.get("cert_pem").and_then(Value::as_str) {
            assert_eq!(cert_sn(pem).unwrap(), str_at(case, "/expected_sn"));
            single += 1;
        }
        if let Some(bundle) = case.get("root_cert_bundle_pem").and_then(Value::as_str) {
            assert_eq!(
                root_cert_sn(bundle).unwrap(),
                str_at(case, "/expected_root_sn")
            );
            root += 1;
        }
        if let Some(expected) = case
            .get("expected_public_key_base64")
            .and_then(Value::as_str)
        {
            let pem = str_at(case, "/cert_pem");
            let cert = Certificate::from_pem(pem).unwrap();
            assert_eq!(cert.public_key.to_spki_base64(), expected);
        }
    }
    assert_eq!((single, root), (5, 1));
}

#[test]
fn v06_root_bundle_skips_non_rsa_certificates() {
    let v = vector("alipay/06_cert_sn.json");
    let bundle = v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|c| c.get("root_cert_bundle_pem").and_then(Value::as_str))
        .unwrap();
    assert_eq!(parse_certs(bundle).unwrap().len(), 4);
    assert_eq!(root_cert_sn(bundle).unwrap().split('_').count(), 2);
    let first_only = bundle.split("\n\n").next().unwrap();
    // The first certificate is SM2-signed.
    assert!(root_cert_sn(first_only).is_err());
    assert!(cert_sn(first_only).is_ok());
}

#[test]
fn cert_sn_of_generated_certificate_is_stable() {
    let key = generated_key();
    let cert = Certificate::generate(key, "0A", "Emulated, Alipay+CA", 10).unwrap();
    let dn = issuer_dn(
        &x509_cert::Certificate::from_der(&pem::blocks(&cert.pem).unwrap()[0].der)
            .unwrap()
            .tbs_certificate
            .issuer,
    )
    .unwrap();
    assert_eq!(dn, "CN=Emulated\\, Alipay\\+CA");
    let expected = hex::encode(Md5::digest(format!("{dn}10").as_bytes()));
    assert_eq!(cert_sn(&cert.pem).unwrap(), expected);
    assert_eq!(root_cert_sn(&cert.pem).unwrap(), expected);
}

#[test]
fn decimal_serials() {
    assert_eq!(be_bytes_to_decimal(&[]), "0");
    assert_eq!(be_bytes_to_decimal(&[0]), "0");
    assert_eq!(be_bytes_to_decimal(&[0x01, 0x00]), "256");
    assert_eq!(
        be_bytes_to_decimal(&u128::MAX.to_be_bytes()),
        u128::MAX.to_string()
    );
    assert_eq!(
        be_bytes_to_decimal(&[0x00, 0x1F, 0xCF, 0xA1, 0x8D, 0x6A, 0x48, 0x0D, 0x11]),
        "2292228364100439313"
    );
}

// ---- vector 07: Java response extraction ----

#[test]
fn v07_extraction_cases() {
    let v = vector("alipay/07_java_response_extraction.json");
    let cases = v["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    let node = response_node("alipay.trade.create");
    assert_eq!(node, "alipay_trade_create_response");
    for case in cases {
        let body = str_at(case, "/raw_body");
        match case.get("expected_sign_content").and_then(Value::as_str) {
            Some(expected) => {
                assert_eq!(extract_response_content(body, &node).unwrap(), expected);
                assert_eq!(response_sign(body).unwrap(), str_at(case, "/expected_sign"));
            }
            None => {
                assert!(case.get("expect_error").is_some());
                let err = extract_response_content(body, &node).unwrap_err();
                assert!(matches!(err, ProtoError::Malformed(ref m) if m.contains("duplicate")));
                // verify_response must reject it before any key is consulted.
                let any_key = generated_key().public_key();
                assert!(matches!(
                    verify_response(body, "alipay.trade.create", &any_key),
                    Err(ProtoError::Malformed(_))
                ));
            }
        }
    }
}

#[test]
fn extraction_is_quote_and_escape_aware() {
    let body = r#"{"x_response":{"a":"}\"{","b":[1,{"c":"]"}],"d":null},"sign":"c2ln"}"#;
    assert_eq!(
        extract_response_content(body, "x_response").unwrap(),
        r#"{"a":"}\"{","b":[1,{"c":"]"}],"d":null}"#
    );
    // A node name inside a string value is not a member.
    let body = r#"{"note":"\"x_response\":{}","x_response":{"k":1},"sign":"s"}"#;
    assert_eq!(
        extract_response_content(body, "x_response").unwrap(),
        r#"{"k":1}"#
    );
    // AES-encrypted payloads are strings; the signed text is between the quotes.
    let body = r#"{"x_response":"QUVTZW5jcnlwdGVk","sign":"s"}"#;
    assert_eq!(
        extract_response_content(body, "x_response").unwrap(),
        "QUVTZW5jcnlwdGVk"
    );
    assert!(
        extract_response_content(r#"{"x_response":{"k":1},"sign":"s"}"#, "y_response").is_err()
    );
    for bad in [
        "",
        "[]",
        r#"{"x_response":{"k":1}"#,
        r#"{"x_response":{"k":"1}}"#,
        r#"{"x_response":{"k":1}} trailing"#,
        r#"{"x_response" {"k":1}}"#,
    ] {
        assert!(
            extract_response_content(bad, "x_response").is_err(),
            "{bad}"
        );
    }
}

// ---- vector 08: doc notification string to verify ----

#[test]
fn v08_notification_string_to_verify() {
    let v = vector("alipay/08_official_doc_notify_string_to_verify.json");
    let fields = params_of(&v["form_fields"]);
    let content = map_content(&fields, &["sign", "sign_type"]);
    assert_eq!(content, str_at(&v, "/expected_string_to_verify"));
    assert_ne!(content, str_at(&v, "/doc_printed_string_to_verify"));

    // The raw query in the doc carries the same fields (values are not
    // percent-encoded there; split each pair at its first '=').
    let from_query: BTreeMap<String, String> = str_at(&v, "/notify_query_as_in_doc")
        .split('&')
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect();
    assert_eq!(from_query, fields);
}

// ---- round trips and conventions ----

#[test]
fn notification_v1_round_trip_and_convention_mismatch() {
    let v = vector("alipay/08_official_doc_notify_string_to_verify.json");
    let mut params = params_of(&v["form_fields"]);
    let key = generated_key();
    let sign = sign_notification(&params, key).unwrap();
    params.insert("sign".into(), sign);
    assert!(verify_notification(&params, &key.public_key()));
    // The request-style (V2) string includes sign_type, so it must not verify.
    assert!(!verify_request_params(&params, &key.public_key()));
    // Empty values are dropped, so adding one does not change the string.
    params.insert("passback_params".into(), String::new());
    assert!(verify_notification(&params, &key.public_key()));
    params.insert("total_amount".into(), "200.00".into());
    assert!(!verify_notification(&params, &key.public_key()));
    params.remove("sign");
    assert!(!verify_notification(&params, &key.public_key()));
}

#[test]
fn request_params_round_trip() {
    let key = v01_key();
    let mut params: BTreeMap<String, String> = [
        ("app_id", "2021000000000001"),
        ("method", "alipay.trade.precreate"),
        ("charset", "utf-8"),
        ("sign_type", "RSA2"),
        ("timestamp", "2024-01-01 12:00:00"),
        ("version", "1.0"),
        (
            "biz_content",
            r#"{"out_trade_no":"o1","total_amount":"0.01","subject":"测试 & = +"}"#,
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let sign = sign_params(&params, &key).unwrap();
    params.insert("sign".into(), sign);
    assert!(verify_request_params(&params, &key.public_key()));
    params.insert("sign_type".into(), "RSA".into());
    assert!(!verify_request_params(&params, &key.public_key()));
}

#[test]
fn sign_content_rules() {
    let pairs = [
        ("b", "2"),
        ("a", "1"),
        ("sign", "x"),
        ("c", ""),
        ("", "v"),
        ("B", "3"),
    ];
    assert_eq!(sign_content(pairs, &["sign"]), "B=3&a=1&b=2");
    assert_eq!(sign_content(pairs, &[]), "B=3&a=1&b=2&sign=x");
    assert_eq!(sign_content([("k", "a b&c=d")], &[]), "k=a b&c=d");
    assert_eq!(sign_content(std::iter::empty(), &[]), "");
}

#[test]
fn build_signed_response_layout_and_round_trip() {
    let key = v01_key();
    let public = key.public_key();
    let content = r#"{"code":"10000","msg":"Success","out_trade_no":"o1","qr_code":"https:\/\/qr.alipay.com\/x"}"#;
    let node = response_node("alipay.trade.precreate");
    let sign = key.sign_sha256_base64(content.as_bytes()).unwrap();

    let body = build_signed_response(&node, content, None, &key).unwrap();
    assert_eq!(
        body,
        format!("{{\"alipay_trade_precreate_response\":{content},\"sign\":\"{sign}\"}}")
    );
    assert_eq!(
        verify_response(&body, "alipay.trade.precreate", &public).unwrap(),
        content
    );

    let body = build_signed_response(
        &node,
        content,
        Some("4498aaa8ab0c8986c15c41b36186db7d"),
        &key,
    )
    .unwrap();
    assert_eq!(
        body,
        format!("{{\"alipay_trade_precreate_response\":{content},\"alipay_cert_sn\":\"4498aaa8ab0c8986c15c41b36186db7d\",\"sign\":\"{sign}\"}}")
    );
    assert_eq!(
        verify_response(&body, "alipay.trade.precreate", &public).unwrap(),
        content
    );
    // The whole body is valid JSON with members in the documented order.
    let parsed: serde_json::Map<String, Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(parsed.len(), 3);

    assert!(build_signed_response(&node, "{not json", None, &key).is_err());
    let other = generated_key().public_key();
    assert_eq!(
        verify_response(&body, "alipay.trade.precreate", &other),
        Err(ProtoError::BadSignature)
    );
}

#[test]
fn error_response_fallback() {
    let key = v01_key();
    let content = r#"{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.invalid-app-id","sub_msg":"无效的AppID参数"}"#;
    let body = build_signed_response("error_response", content, None, &key).unwrap();
    assert_eq!(
        verify_response(&body, "alipay.trade.query", &key.public_key()).unwrap(),
        content
    );
    // Gateways may send an empty sign on errors: that does not verify.
    let unsigned = format!("{{\"error_response\":{content},\"sign\":\"\"}}");
    assert_eq!(
        verify_response(&unsigned, "alipay.trade.query", &key.public_key()),
        Err(ProtoError::BadSignature)
    );
}

#[test]
fn response_node_names() {
    assert_eq!(
        response_node("alipay.trade.precreate"),
        "alipay_trade_precreate_response"
    );
    assert_eq!(
        response_node("alipay.trade.fastpay.refund.query"),
        "alipay_trade_fastpay_refund_query_response"
    );
}

#[test]
fn yuan_fen_conversion() {
    assert_eq!(fen_to_yuan(1234), "12.34");
    assert_eq!(fen_to_yuan(1), "0.01");
    assert_eq!(fen_to_yuan(0), "0.00");
    assert_eq!(fen_to_yuan(100), "1.00");
    assert_eq!(fen_to_yuan(-5), "-0.05");
    assert_eq!(fen_to_yuan(10_000_000_000), "100000000.00");
    assert_eq!(fen_to_yuan(i64::MIN), "-92233720368547758.08");

    let ok = [
        ("12.34", 1234),
        ("12.3", 1230),
        ("12", 1200),
        ("0.01", 1),
        ("0.10", 10),
        ("00.5", 50),
        ("100000000.00", 10_000_000_000),
        ("-0.05", -5),
        ("-0.00", 0),
    ];
    for (text, fen) in ok {
        assert_eq!(yuan_to_fen(text), Some(fen), "{text}");
    }
    let bad = [
        "",
        ".",
        ".5",
        "1.",
        "1.234",
        "+1",
        " 1",
        "1 ",
        "1,00",
        "1e2",
        "--1",
        "-",
        "0x10",
        "1.2.3",
        "１",
        "92233720368547758.08",
    ];
    for text in bad {
        assert_eq!(yuan_to_fen(text), None, "{text}");
    }
    for fen in [0, 1, 9, 10, 99, 100, 12345, -12345, i64::MAX, i64::MIN + 1] {
        assert_eq!(yuan_to_fen(&fen_to_yuan(fen)), Some(fen));
    }
    // Found by the amounts_round_trip property: the most negative amount printed did
    // not parse back (its magnitude is past i64::MAX).
    assert_eq!(yuan_to_fen("-92233720368547758.08"), Some(i64::MIN));
    assert_eq!(yuan_to_fen(&fen_to_yuan(i64::MIN)), Some(i64::MIN));
    assert_eq!(yuan_to_fen("-92233720368547758.09"), None);
}

#[test]
fn real_alipay_cert_chains_through_its_intermediate_to_the_real_root_bundle() {
    let v = vector("alipay/06_cert_sn.json");
    // gopay's alipayCertPublicKey_RSA2.crt: the leaf plus "Class 2 R1"; the node
    // SDK's alipayRootCert.crt holds "Ant Financial ... R1" (and SM2/ECDSA roots).
    let leaf = str_at(&v, "/cases/3/cert_pem");
    let bundle = str_at(&v, "/cases/2/root_cert_bundle_pem");
    let during = chrono::DateTime::parse_from_rfc3339("2020-06-01T00:00:00Z")
        .unwrap()
        .to_utc();
    let info = verify_chain(leaf, bundle, during).unwrap();
    assert_eq!(info.intermediates, 1);
    assert!(
        info.root
            .contains("Ant Financial Certification Authority R1"),
        "{}",
        info.root
    );
    // Expired since 2021-08-29.
    let err = verify_chain(leaf, bundle, chrono::Utc::now()).unwrap_err();
    assert!(err.to_string().contains("expired"), "{err}");
    // The leaf alone (no intermediate) does not reach the roots.
    let only_leaf = crate::pem::blocks(leaf).unwrap().remove(0);
    let only_leaf = crate::pem::encode("CERTIFICATE", &only_leaf.der);
    assert!(verify_chain(&only_leaf, bundle, during).is_err());
}

#[test]
fn issued_test_chain_verifies_and_a_foreign_root_does_not() {
    let root_key = crate::test_support::generated_key();
    let root = crate::Certificate::generate(root_key, "01", "TEST Root", 30).unwrap();
    let leaf_key = RsaPrivateKey::generate(2048).unwrap();
    let leaf = crate::Certificate::issue(
        root_key,
        "CN=TEST Root",
        &leaf_key.public_key(),
        "0A",
        "CN=TEST Leaf,OU=Alipay,O=fenpay TEST,C=CN",
        10,
    )
    .unwrap();
    assert_eq!(leaf.public_key, leaf_key.public_key());
    let info = verify_chain(&leaf.pem, &root.pem, chrono::Utc::now()).unwrap();
    assert_eq!(info.root, "CN=TEST Root");
    assert_eq!(info.intermediates, 0);
    assert!(cert_sn(&leaf.pem).unwrap() != cert_sn(&root.pem).unwrap());
    // Same name, different key: the signature decides.
    let other = crate::Certificate::generate(&leaf_key, "01", "TEST Root", 30).unwrap();
    assert!(verify_chain(&leaf.pem, &other.pem, chrono::Utc::now()).is_err());
}
