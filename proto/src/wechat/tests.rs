use serde_json::Value;

use super::*;
use crate::test_support::{generated_key, str_at, vector};

fn v01() -> Value {
    vector("wechatpay/01_go_sha256rsa_sign_source.json")
}

fn v04() -> Value {
    vector("wechatpay/04_go_notification_signed_encrypted.json")
}

fn v05() -> Value {
    vector("wechatpay/05_java_keys_aead_signature_certificates.json")
}

fn v06() -> Value {
    vector("wechatpay/06_official_doc_examples.json")
}

fn i64_at(v: &Value, ptr: &str) -> i64 {
    v.pointer(ptr).and_then(Value::as_i64).unwrap()
}

// ---- vector 01: wechatpay-go SHA256-RSA2048 over "source" ----

#[test]
fn v01_sign_kat() {
    let v = v01();
    let key = RsaPrivateKey::from_pem(str_at(&v, "/private_key_pkcs8_pem")).unwrap();
    let sig = key
        .sign_sha256_base64(str_at(&v, "/message").as_bytes())
        .unwrap();
    assert_eq!(sig, str_at(&v, "/expected_signature_base64"));
}

#[test]
fn v01_verifies_with_certificate_and_public_key() {
    let v = v01();
    let sig = str_at(&v, "/expected_signature_base64");
    let msg = str_at(&v, "/message").as_bytes();
    let wrong = str_at(&v, "/negative/message").as_bytes();

    let cert = Certificate::from_pem(str_at(&v, "/platform_certificate_pem")).unwrap();
    assert_eq!(cert.serial_hex, str_at(&v, "/platform_certificate_serial"));
    assert_eq!(cert.serial_hex, str_at(&v, "/merchant_serial_no"));
    let pubkey = RsaPublicKey::from_pem(str_at(&v, "/wechatpay_public_key_pem")).unwrap();
    assert_eq!(cert.public_key, pubkey);

    for key in [&cert.public_key, &pubkey] {
        assert!(key.verify_sha256_base64(msg, sig));
        assert!(!key.verify_sha256_base64(wrong, sig));
    }
    // The vector's "public key ID" is a bare serial, not a PUB_KEY_ID_ value.
    assert!(!is_public_key_id(str_at(&v, "/wechatpay_public_key_id")));
}

#[test]
fn v01_certificate_validity() {
    let cert = Certificate::from_pem(str_at(&v01(), "/platform_certificate_pem")).unwrap();
    assert_eq!(cert.not_before.to_rfc3339(), "2021-04-27T08:40:32+00:00");
    assert_eq!(cert.not_after.to_rfc3339(), "2031-04-25T08:40:32+00:00");
}

// ---- vector 02: message and header layout ----

#[test]
fn v02_request_message_layout() {
    let v = vector("wechatpay/02_go_authorization_header_layout.json");
    let cases = v["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 2);
    for case in cases {
        let msg = request_message(
            str_at(case, "/method"),
            str_at(case, "/canonical_url"),
            i64_at(case, "/timestamp"),
            str_at(case, "/nonce"),
            str_at(case, "/body"),
        );
        assert_eq!(msg, str_at(case, "/expected_message"));
    }
}

#[test]
fn v02_authorization_header_layout_with_mock_signer() {
    let v = vector("wechatpay/02_go_authorization_header_layout.json");
    let case = &v["cases"][0];
    let message = str_at(case, "/expected_message");
    let header = authorization_header(
        str_at(case, "/mchid"),
        str_at(case, "/serial_no"),
        i64_at(case, "/timestamp"),
        str_at(case, "/nonce"),
        &format!("Sign:{message}"),
    );
    // The Go test's mock signer calls its algorithm "Mock".
    let expected = str_at(case, "/expected_authorization_with_mock_signer").replacen(
        "WECHATPAY2-Mock",
        SIGNATURE_TYPE,
        1,
    );
    assert_eq!(header, expected);

    let parsed = parse_authorization(&header).unwrap();
    assert_eq!(parsed.mchid, "1234567890");
    assert_eq!(parsed.nonce_str, "A1B2C3D4E5F6G7");
    assert_eq!(parsed.timestamp, 1624523846);
    assert_eq!(parsed.serial_no, "0123456789ABC");
    assert_eq!(parsed.signature, format!("Sign:{message}"));
}

// ---- vector 03: AES-GCM with a 16-byte key ----

#[test]
fn v03_aead_decrypt_kat_and_negatives() {
    let v = vector("wechatpay/03_go_aes_gcm_hello_world.json");
    let key = str_at(&v, "/apiv3_key").as_bytes();
    let nonce = str_at(&v, "/nonce");
    let aad = str_at(&v, "/associated_data");
    let ct = str_at(&v, "/ciphertext_base64");
    let plain = aead_decrypt(key, nonce, aad, ct).unwrap();
    assert_eq!(plain, str_at(&v, "/expected_plaintext").as_bytes());
    // GCM is deterministic for a fixed nonce.
    assert_eq!(aead_encrypt(key, nonce, aad, &plain).unwrap(), ct);

    let negatives = v["negative"].as_array().unwrap();
    assert_eq!(negatives.len(), 3);
    let wrong_key = str_at(&negatives[0], "/apiv3_key").as_bytes();
    assert_eq!(
        aead_decrypt(wrong_key, nonce, aad, ct),
        Err(ProtoError::Decrypt)
    );
    let short = str_at(&negatives[1], "/ciphertext_base64");
    assert_eq!(
        aead_decrypt(key, nonce, aad, short),
        Err(ProtoError::Decrypt)
    );
    let not_b64 = str_at(&negatives[2], "/ciphertext_base64");
    assert!(matches!(
        aead_decrypt(key, nonce, aad, not_b64),
        Err(ProtoError::Malformed(_))
    ));
}

// ---- vector 04: real signed + encrypted notification ----

struct Notification {
    cert: Certificate,
    timestamp: String,
    nonce: String,
    serial: String,
    signature: String,
    body: String,
    now: i64,
}

fn notification() -> Notification {
    let v = v04();
    Notification {
        cert: Certificate::from_pem(str_at(&v, "/platform_certificate_pem")).unwrap(),
        timestamp: str_at(&v, "/headers/Wechatpay-Timestamp").to_string(),
        nonce: str_at(&v, "/headers/Wechatpay-Nonce").to_string(),
        serial: str_at(&v, "/headers/Wechatpay-Serial").to_string(),
        signature: str_at(&v, "/headers/Wechatpay-Signature").to_string(),
        body: str_at(&v, "/body").to_string(),
        now: i64_at(&v, "/clock_now_unix"),
    }
}

impl Notification {
    fn verify(&self, body: &str, signature: &str, now: i64) -> Result<(), ProtoError> {
        verify_signed_message(
            &self.cert.public_key,
            &self.timestamp,
            &self.nonce,
            body.as_bytes(),
            signature,
            now,
        )
    }
}

#[test]
fn v04_message_and_serial() {
    let v = v04();
    let n = notification();
    let msg = response_message(&n.timestamp, &n.nonce, n.body.as_bytes());
    assert_eq!(msg, str_at(&v, "/verify_message").as_bytes());
    assert_eq!(n.cert.serial_hex, n.serial);
    assert_eq!(
        n.cert.serial_hex,
        str_at(&v, "/platform_certificate_serial")
    );
    assert!(!is_public_key_id(&n.serial));
}

#[test]
fn v04_signature_verifies_with_frozen_clock() {
    let n = notification();
    assert_eq!(n.verify(&n.body, &n.signature, n.now), Ok(()));
    assert_eq!(n.verify(&n.body, &n.signature, n.now + 299), Ok(()));
    assert_eq!(n.verify(&n.body, &n.signature, n.now - 299), Ok(()));
}

#[test]
fn v04_stale_or_future_timestamp_is_rejected() {
    let n = notification();
    for now in [n.now + 300, n.now - 300, n.now + 86_400] {
        assert_eq!(
            n.verify(&n.body, &n.signature, now),
            Err(ProtoError::TimestampSkew {
                timestamp: n.now,
                now
            })
        );
    }
}

#[test]
fn v04_tampered_body_and_probe_are_rejected() {
    let n = notification();
    let tampered = n.body.replace("签约成功", "签约失败");
    assert_ne!(tampered, n.body);
    assert_eq!(
        n.verify(&tampered, &n.signature, n.now),
        Err(ProtoError::BadSignature)
    );
    let probe = format!("{SIGNATURE_PROBE_PREFIX}{}", n.signature);
    assert!(is_signature_probe(&probe));
    assert_eq!(
        n.verify(&n.body, &probe, n.now),
        Err(ProtoError::BadSignature)
    );
    // Re-serialising the JSON (whitespace) breaks the signature: raw bytes only.
    let reserialised =
        serde_json::to_string_pretty(&serde_json::from_str::<Value>(&n.body).unwrap()).unwrap();
    assert_eq!(
        n.verify(&reserialised, &n.signature, n.now),
        Err(ProtoError::BadSignature)
    );
    assert!(matches!(
        verify_signed_message(
            &n.cert.public_key,
            "not-a-number",
            &n.nonce,
            n.body.as_bytes(),
            &n.signature,
            n.now
        ),
        Err(ProtoError::Malformed(_))
    ));
}

/// Found by the signed-message property: a body holding a newline can have its start
/// moved to the end of the nonce; the signed message `ts\nnonce\nbody\n`, and so the
/// signature, stay the same while the body changes.
#[test]
fn a_nonce_cannot_take_part_of_the_body() {
    let key = RsaPrivateKey::from_pem(str_at(&v01(), "/private_key_pkcs8_pem")).unwrap();
    let (ts, now) = ("1700000000", 1_700_000_000);
    let body = b"{\"forged\":0}\n{\"amount\":1}";
    let sig = sign_response(&key, ts, "nonce", body).unwrap();
    let (nonce, rest) = ("nonce\n{\"forged\":0}", &body[13..]);
    assert_eq!(rest, b"{\"amount\":1}");
    assert_eq!(
        response_message(ts, nonce, rest),
        response_message(ts, "nonce", body)
    );
    let public = key.public_key();
    assert_eq!(
        verify_signed_message(&public, ts, "nonce", body, &sig, now),
        Ok(())
    );
    assert!(matches!(
        verify_signed_message(&public, ts, nonce, rest, &sig, now),
        Err(ProtoError::Malformed(_))
    ));
}

#[test]
fn v04_envelope_parses_and_decrypts() {
    let v = v04();
    let n = notification();
    let env: NotificationEnvelope = serde_json::from_str(&n.body).unwrap();
    let fields = v["expected_fields"].as_object().unwrap();
    let actual = [
        ("id", env.id.as_str()),
        ("create_time", env.create_time.as_str()),
        ("resource_type", env.resource_type.as_str()),
        ("event_type", env.event_type.as_str()),
        ("summary", env.summary.as_str()),
        (
            "resource.original_type",
            env.resource.original_type.as_str(),
        ),
        ("resource.algorithm", env.resource.algorithm.as_str()),
        (
            "resource.associated_data",
            env.resource.associated_data.as_str(),
        ),
        ("resource.nonce", env.resource.nonce.as_str()),
    ];
    assert_eq!(fields.len(), actual.len());
    for (name, value) in actual {
        assert_eq!(fields[name].as_str().unwrap(), value, "{name}");
    }

    let apiv3_key = str_at(&v, "/apiv3_key").as_bytes();
    let plain = env.resource.decrypt(apiv3_key).unwrap();
    assert_eq!(plain, str_at(&v, "/expected_plaintext").as_bytes());
    let as_json: Value = env.decrypt_resource(apiv3_key).unwrap();
    assert_eq!(
        as_json["out_contract_code"],
        "21640bdbd08e473e828f3206a2741c6e"
    );

    // Wrong AAD fails.
    let mut wrong = env.resource.clone();
    wrong.associated_data = "transaction".into();
    assert_eq!(wrong.decrypt(apiv3_key), Err(ProtoError::Decrypt));
}

#[test]
fn v04_platform_can_be_emulated_with_v01_private_key() {
    // The vector notes the 04 certificate carries the 01 key pair.
    let key = RsaPrivateKey::from_pem(str_at(&v01(), "/private_key_pkcs8_pem")).unwrap();
    let n = notification();
    assert_eq!(key.public_key(), n.cert.public_key);
    let sig = sign_response(&key, &n.timestamp, &n.nonce, n.body.as_bytes()).unwrap();
    assert_eq!(sig, n.signature);
}

// ---- vector 05: wechatpay-java key material ----

#[test]
fn v05_key_material_is_consistent() {
    let v = v05();
    let merchant_key = RsaPrivateKey::from_pem(str_at(&v, "/merchant_private_key_pem")).unwrap();
    let merchant_cert = Certificate::from_pem(str_at(&v, "/merchant_certificate_pem")).unwrap();
    assert_eq!(
        merchant_cert.serial_hex,
        str_at(&v, "/merchant_certificate_serial")
    );
    assert_eq!(merchant_cert.public_key, merchant_key.public_key());

    let platform_key = RsaPrivateKey::from_pem(str_at(&v, "/wechatpay_private_key_pem")).unwrap();
    let platform_cert = Certificate::from_pem(str_at(&v, "/wechatpay_certificate_pem")).unwrap();
    let platform_pub = RsaPublicKey::from_pem(str_at(&v, "/wechatpay_public_key_pem")).unwrap();
    assert_eq!(
        platform_cert.serial_hex,
        str_at(&v, "/wechatpay_certificate_serial")
    );
    assert_eq!(platform_cert.public_key, platform_key.public_key());
    assert_eq!(platform_pub, platform_key.public_key());

    // Both test certificates expired on 2025-05-09.
    for cert in [&merchant_cert, &platform_cert] {
        assert_eq!(cert.not_after.date_naive().to_string(), "2025-05-09");
        assert!(!cert.is_valid_at(chrono::Utc::now()));
    }
}

#[test]
fn v05_aead_kat_and_negatives() {
    let v = v05();
    let a = &v["aead"];
    let key = str_at(a, "/key").as_bytes();
    assert_eq!(key, str_at(&v, "/apiv3_key").as_bytes());
    let nonce = str_at(a, "/nonce");
    let aad = str_at(a, "/associated_data");
    let ct = str_at(a, "/ciphertext_base64");
    let plaintext = str_at(a, "/plaintext").as_bytes();
    assert_eq!(aead_encrypt(key, nonce, aad, plaintext).unwrap(), ct);
    assert_eq!(aead_decrypt(key, nonce, aad, ct).unwrap(), plaintext);

    let negatives = a["negative"].as_array().unwrap();
    assert_eq!(negatives.len(), 2);
    let bad_aad = str_at(&negatives[0], "/associated_data");
    assert_eq!(
        aead_decrypt(key, nonce, bad_aad, ct),
        Err(ProtoError::Decrypt)
    );
    let bad_nonce = str_at(&negatives[1], "/nonce");
    assert_eq!(
        aead_decrypt(key, bad_nonce, aad, ct),
        Err(ProtoError::Decrypt)
    );
}

#[test]
fn v05_signature_kat() {
    let v = v05();
    let s = &v["signature"];
    assert_eq!(str_at(s, "/signer"), "merchant_private_key_pem");
    let key = RsaPrivateKey::from_pem(str_at(&v, "/merchant_private_key_pem")).unwrap();
    let msg = str_at(s, "/message").as_bytes();
    let expected = str_at(s, "/expected_signature_base64");
    assert_eq!(key.sign_sha256_base64(msg).unwrap(), expected);
    assert!(key.public_key().verify_sha256_base64(msg, expected));
    let platform_pub = RsaPublicKey::from_pem(str_at(&v, "/wechatpay_public_key_pem")).unwrap();
    assert!(!platform_pub.verify_sha256_base64(msg, expected));
}

#[test]
fn v05_certificates_response_decrypts_to_matching_certificate() {
    let v = v05();
    let c = &v["certificates_response"];
    assert_eq!(str_at(c, "/decrypt_with"), "apiv3_key");
    let apiv3_key = str_at(&v, "/apiv3_key").as_bytes();
    let list: CertificateList = serde_json::from_str(str_at(c, "/http_body")).unwrap();
    assert_eq!(list.data.len(), 1);
    let entry = &list.data[0];
    assert_eq!(entry.serial_no, str_at(c, "/expected_serial_no"));
    assert_eq!(entry.encrypt_certificate.associated_data, "certificate");

    let cert = entry.decrypt_certificate(apiv3_key).unwrap();
    assert_eq!(cert.serial_hex, entry.serial_no);
    let effective = chrono::DateTime::parse_from_rfc3339(&entry.effective_time).unwrap();
    let expire = chrono::DateTime::parse_from_rfc3339(&entry.expire_time).unwrap();
    assert_eq!(cert.not_before, effective);
    assert_eq!(cert.not_after, expire);

    let mut tampered = entry.encrypt_certificate.clone();
    tampered.associated_data = "transaction".into();
    assert_eq!(tampered.decrypt(apiv3_key), Err(ProtoError::Decrypt));
}

// ---- vector 06: official doc examples ----

#[test]
fn v06_request_signature_and_authorization() {
    let v = v06();
    let r = &v["request_signature"];
    let ts: i64 = str_at(r, "/timestamp").parse().unwrap();
    let (method, url, nonce, body) = (
        str_at(r, "/method"),
        str_at(r, "/url"),
        str_at(r, "/nonce_str"),
        str_at(r, "/body"),
    );
    assert_eq!(
        request_message(method, url, ts, nonce, body),
        str_at(r, "/message")
    );

    let mchid = str_at(&v, "/mchid");
    let serial = str_at(&v, "/merchant_serial_no");
    for pem in [
        "/merchant_private_key_pkcs8_pem",
        "/merchant_private_key_pkcs1_pem",
    ] {
        let key = RsaPrivateKey::from_pem(str_at(&v, pem)).unwrap();
        let header = authorization(mchid, serial, &key, method, url, ts, nonce, body).unwrap();
        let ours = parse_authorization(&header).unwrap();
        assert_eq!(ours.signature, str_at(r, "/expected_signature"));
        // The doc orders parameters differently; only the content must match.
        let theirs = parse_authorization(str_at(r, "/expected_authorization")).unwrap();
        assert_eq!(ours, theirs);
    }

    let public = RsaPublicKey::from_pem(str_at(&v, "/merchant_public_key_pem")).unwrap();
    let expected = str_at(r, "/expected_authorization");
    assert_eq!(
        verify_authorization(&public, expected, method, url, body, ts + 10)
            .unwrap()
            .mchid,
        mchid
    );
    assert_eq!(
        verify_authorization(&public, expected, method, url, "{}", ts),
        Err(ProtoError::BadSignature)
    );
    assert!(matches!(
        verify_authorization(&public, expected, method, url, body, ts + 301),
        Err(ProtoError::TimestampSkew { .. })
    ));
}

#[test]
fn v06_jsapi_and_app_pay_signs() {
    let v = v06();
    let key = RsaPrivateKey::from_pem(str_at(&v, "/merchant_private_key_pkcs8_pem")).unwrap();
    let j = &v["jsapi_miniprogram_paysign"];
    let sign = jsapi_pay_sign(
        str_at(j, "/appId"),
        str_at(j, "/timeStamp"),
        str_at(j, "/nonceStr"),
        str_at(j, "/package"),
        &key,
    )
    .unwrap();
    assert_eq!(sign, str_at(j, "/expected_paySign"));
    assert!(key
        .public_key()
        .verify_sha256_base64(str_at(j, "/message").as_bytes(), &sign));

    let a = &v["app_sign"];
    let sign = app_pay_sign(
        str_at(a, "/appid"),
        str_at(a, "/timestamp"),
        str_at(a, "/noncestr"),
        str_at(a, "/prepayid"),
        &key,
    )
    .unwrap();
    assert_eq!(sign, str_at(a, "/expected_sign"));
    assert!(key
        .public_key()
        .verify_sha256_base64(str_at(a, "/message").as_bytes(), &sign));
}

#[test]
fn v06_locally_derived_get_signatures() {
    let v = v06();
    let key = RsaPrivateKey::from_pem(str_at(&v, "/merchant_private_key_pkcs8_pem")).unwrap();
    let urls = [
        ("get_refund", "/v3/refund/domestic/refunds/123123123123"),
        ("get_certificates", "/v3/certificates"),
    ];
    for (name, url) in urls {
        let case = &v["derived_locally_not_from_docs"][name];
        let msg = request_message(
            "GET",
            url,
            1554208460,
            "593BEC0C930BF1AFEB40B4A08C8FB242",
            "",
        );
        assert_eq!(msg, str_at(case, "/message"));
        assert!(msg.ends_with("\n\n"));
        assert_eq!(
            key.sign_sha256_base64(msg.as_bytes()).unwrap(),
            str_at(case, "/signature")
        );
    }
}

#[test]
fn v06_public_key_mode_response_verification() {
    let v = v06();
    let r = &v["response_verification_example"];
    let key = RsaPublicKey::from_pem(str_at(r, "/wechatpay_public_key_pem")).unwrap();
    let ts = str_at(r, "/Wechatpay-Timestamp");
    let nonce = str_at(r, "/Wechatpay-Nonce");
    let body = str_at(r, "/body").as_bytes();
    assert_eq!(
        response_message(ts, nonce, body),
        str_at(r, "/message").as_bytes()
    );
    let sig = str_at(r, "/Wechatpay-Signature");
    let now: i64 = ts.parse().unwrap();
    assert_eq!(
        verify_signed_message(&key, ts, nonce, body, sig, now),
        Ok(())
    );
    assert_eq!(
        verify_signed_message(&key, ts, nonce, b"{\"code_url\":\"x\"}", sig, now),
        Err(ProtoError::BadSignature)
    );
}

// ---- non-vector behaviour ----

#[test]
fn parse_authorization_edge_cases() {
    let ok = format!(
        "{SIGNATURE_TYPE}  serial_no=\"S\", signature=\"c2ln\" ,timestamp=\"1\",nonce_str=\"N\",mchid=\"M\",extra=\"x\""
    );
    let p = parse_authorization(&ok).unwrap();
    assert_eq!(
        p,
        AuthorizationParams {
            mchid: "M".into(),
            nonce_str: "N".into(),
            timestamp: 1,
            serial_no: "S".into(),
            signature: "c2ln".into(),
        }
    );
    let all = "mchid=\"M\",nonce_str=\"N\",timestamp=\"1\",serial_no=\"S\",signature=\"c2ln\"";
    let bad = [
        format!("WECHATPAY2-SHA256-RSA2049 {all}"),
        format!("{SIGNATURE_TYPE}{all}"),
        format!("Bearer {all}"),
        format!("{SIGNATURE_TYPE} {all},mchid=\"M2\""),
        format!("{SIGNATURE_TYPE} mchid=\"M\",nonce_str=\"N\",timestamp=\"1\",serial_no=\"S\""),
        format!("{SIGNATURE_TYPE} mchid=M,nonce_str=\"N\",timestamp=\"1\",serial_no=\"S\",signature=\"c2ln\""),
        format!("{SIGNATURE_TYPE} mchid=\"\",nonce_str=\"N\",timestamp=\"1\",serial_no=\"S\",signature=\"c2ln\""),
        format!("{SIGNATURE_TYPE} mchid=\"M\",nonce_str=\"N\",timestamp=\"x1\",serial_no=\"S\",signature=\"c2ln\""),
        format!("{SIGNATURE_TYPE} mchid=\"M\" nonce_str=\"N\",timestamp=\"1\",serial_no=\"S\",signature=\"c2ln\""),
        format!("{SIGNATURE_TYPE} mchid=\"M,nonce_str=\"N\""),
        String::new(),
    ];
    for header in bad {
        assert!(
            matches!(parse_authorization(&header), Err(ProtoError::Malformed(_))),
            "{header}"
        );
    }
}

#[test]
fn authorization_round_trip_with_generated_key() {
    let key = generated_key();
    let nonce = nonce_str(32);
    let header = authorization(
        "1900000001",
        "ABC123",
        key,
        "POST",
        "/v3/pay/transactions/native",
        1_700_000_000,
        &nonce,
        "{\"a\":1}",
    )
    .unwrap();
    let params = verify_authorization(
        &key.public_key(),
        &header,
        "POST",
        "/v3/pay/transactions/native",
        "{\"a\":1}",
        1_700_000_100,
    )
    .unwrap();
    assert_eq!(params.nonce_str, nonce);
    assert_eq!(params.serial_no, "ABC123");
    assert_eq!(
        verify_authorization(
            &key.public_key(),
            &header,
            "POST",
            "/v3/pay/transactions/native?x=1",
            "{\"a\":1}",
            1_700_000_100,
        ),
        Err(ProtoError::BadSignature)
    );
}

#[test]
fn response_sign_verify_round_trip_including_empty_body() {
    let key = generated_key();
    for body in [&b""[..], b"{\"prepay_id\":\"wx1\"}", "中文\n".as_bytes()] {
        let sig = sign_response(key, "1700000000", "NONCE", body).unwrap();
        assert_eq!(
            verify_signed_message(
                &key.public_key(),
                "1700000000",
                "NONCE",
                body,
                &sig,
                1_700_000_000
            ),
            Ok(())
        );
        assert_eq!(
            verify_signed_message(
                &key.public_key(),
                "1700000000",
                "NONCE2",
                body,
                &sig,
                1_700_000_000
            ),
            Err(ProtoError::BadSignature)
        );
    }
    assert_eq!(response_message("1", "N", b""), b"1\nN\n\n");
}

#[test]
fn nonce_str_charset_and_length() {
    for len in [0, 1, 12, 32, 64] {
        let n = nonce_str(len);
        assert_eq!(n.len(), len);
        assert!(n.bytes().all(|b| b.is_ascii_alphanumeric()));
    }
    assert_ne!(nonce_str(32), nonce_str(32));
}

#[test]
fn aead_round_trip_key_sizes_and_rejections() {
    let nonce = "uluk4a9R25RW";
    for key in [&[7u8; 16][..], &[7u8; 24], &[7u8; 32]] {
        let ct = aead_encrypt(key, nonce, "transaction", "支付成功".as_bytes()).unwrap();
        assert_eq!(
            aead_decrypt(key, nonce, "transaction", &ct).unwrap(),
            "支付成功".as_bytes()
        );
        assert_eq!(
            aead_decrypt(key, nonce, "refund", &ct),
            Err(ProtoError::Decrypt)
        );
    }
    assert!(matches!(
        aead_encrypt(&[7u8; 31], nonce, "", b"x"),
        Err(ProtoError::InvalidKey(_))
    ));
    assert!(matches!(
        aead_encrypt(&[7u8; 32], "short", "", b"x"),
        Err(ProtoError::Malformed(_))
    ));
}

#[test]
fn emulated_transaction_notification_round_trip() {
    let apiv3_key = b"0123456789abcdef0123456789abcdef";
    let tx = Transaction {
        appid: "wxd678efh567hg6787".into(),
        mchid: "1230000109".into(),
        out_trade_no: "1217752501201407033233368018".into(),
        transaction_id: Some("1217752501201407033233368018".into()),
        trade_type: Some("NATIVE".into()),
        trade_state: "SUCCESS".into(),
        trade_state_desc: "支付成功".into(),
        bank_type: Some("OTHERS".into()),
        attach: None,
        success_time: Some("2018-06-08T10:34:56+08:00".into()),
        payer: Some(Payer {
            openid: Some("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o".into()),
        }),
        amount: Some(TransactionAmount {
            total: 100,
            payer_total: Some(100),
            currency: Some("CNY".into()),
            payer_currency: Some("CNY".into()),
        }),
    };
    let plain = serde_json::to_vec(&tx).unwrap();
    assert!(!String::from_utf8_lossy(&plain).contains("attach"));
    let env = NotificationEnvelope {
        id: "f6d3e392-7a32-5e7a-97d7-12a343048b1c".into(),
        create_time: "2018-06-08T10:34:56+08:00".into(),
        resource_type: "encrypt-resource".into(),
        event_type: "TRANSACTION.SUCCESS".into(),
        summary: "支付成功".into(),
        resource: EncryptedResource::seal(
            apiv3_key,
            "transaction",
            "transaction",
            &nonce_str(12),
            &plain,
        )
        .unwrap(),
    };
    let wire = serde_json::to_string(&env).unwrap();
    let back: NotificationEnvelope = serde_json::from_str(&wire).unwrap();
    assert_eq!(back, env);
    let decrypted: Transaction = back.decrypt_resource(apiv3_key).unwrap();
    assert_eq!(decrypted, tx);
}

#[test]
fn unpaid_transaction_with_empty_payer_deserializes() {
    let body = r#"{"appid":"wx1","mchid":"1","out_trade_no":"o1","trade_state":"NOTPAY","trade_state_desc":"订单未支付","payer":{},"amount":{"total":100,"currency":"CNY","payer_currency":"CNY"},"promotion_detail":[]}"#;
    let tx: Transaction = serde_json::from_str(body).unwrap();
    assert_eq!(tx.trade_state, "NOTPAY");
    assert_eq!(tx.payer, Some(Payer { openid: None }));
    assert_eq!(tx.amount.as_ref().map(|a| a.total), Some(100));
    assert!(tx.transaction_id.is_none());
    assert_eq!(
        serde_json::to_value(&tx).unwrap()["payer"],
        serde_json::json!({})
    );
}

#[test]
fn certificate_list_round_trip_with_generated_certificate() {
    let key = generated_key();
    let apiv3_key = b"a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb";
    let cert = Certificate::generate(key, "2E5F1B2A3C4D", "Tenpay.com Root CA", 30).unwrap();
    let entry = CertificateEntry {
        serial_no: cert.serial_hex.clone(),
        effective_time: cert.not_before.to_rfc3339(),
        expire_time: cert.not_after.to_rfc3339(),
        encrypt_certificate: EncryptedCertificate::seal(apiv3_key, "14b16c03dc1b", &cert.pem)
            .unwrap(),
    };
    let list = CertificateList { data: vec![entry] };
    let wire = serde_json::to_string(&list).unwrap();
    let back: CertificateList = serde_json::from_str(&wire).unwrap();
    let decrypted = back.data[0].decrypt_certificate(apiv3_key).unwrap();
    assert_eq!(decrypted.serial_hex, "2E5F1B2A3C4D");
    assert_eq!(decrypted.public_key, key.public_key());
}

#[test]
fn api_error_body_shape() {
    let e: ApiErrorBody =
        serde_json::from_str(r#"{"code":"SIGN_ERROR","message":"签名错误"}"#).unwrap();
    assert_eq!(e.code, "SIGN_ERROR");
    assert!(e.detail.is_none());
    assert_eq!(
        serde_json::to_string(&e).unwrap(),
        r#"{"code":"SIGN_ERROR","message":"签名错误"}"#
    );
    let e: ApiErrorBody = serde_json::from_str(
        r#"{"code":"PARAM_ERROR","message":"x","detail":{"field":"amount.total"}}"#,
    )
    .unwrap();
    assert_eq!(e.detail.unwrap()["field"], "amount.total");
}

#[test]
fn public_key_id_detection() {
    assert!(is_public_key_id(
        "PUB_KEY_ID_0000000000000024101100397200000006"
    ));
    assert!(!is_public_key_id(
        "5DEA10EF55877E3CF6C33255C2E7DEFFF7E427EC"
    ));
    assert!(!is_public_key_id("pub_key_id_1"));
}

#[test]
fn refund_resource_parses_the_documented_sample_and_round_trips() {
    // The decrypted REFUND.SUCCESS sample of the official refund notification doc.
    let sample = r#"{"mchid":"1900000100","transaction_id":"1008450740201411110005820873",
        "out_trade_no":"20150806125346","refund_id":"50200207182018070300011301001",
        "out_refund_no":"7752501201407033233368018","refund_status":"SUCCESS",
        "success_time":"2018-06-08T10:34:56+08:00","user_received_account":"招商银行信用卡0403",
        "amount":{"total":999,"refund":999,"payer_total":999,"payer_refund":999}}"#;
    let refund: RefundResource = serde_json::from_str(sample).unwrap();
    assert_eq!(refund.refund_status, "SUCCESS");
    assert_eq!(refund.amount.refund, 999);
    assert_eq!(
        refund.success_time.as_deref(),
        Some("2018-06-08T10:34:56+08:00")
    );
    let key = b"a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb";
    let sealed = EncryptedResource::seal(
        key,
        "refund",
        "refund",
        "uluk4a9R25RW",
        &serde_json::to_vec(&refund).unwrap(),
    )
    .unwrap();
    let envelope = NotificationEnvelope {
        id: "EV-1".into(),
        create_time: "2018-06-08T10:34:56+08:00".into(),
        resource_type: "encrypt-resource".into(),
        event_type: "REFUND.SUCCESS".into(),
        summary: "退款成功".into(),
        resource: sealed,
    };
    let back: RefundResource = envelope.decrypt_resource(key).unwrap();
    assert_eq!(back, refund);
    // An ABNORMAL refund has no success_time; the AAD is part of the seal.
    let mut other = envelope.clone();
    other.resource.associated_data = "transaction".into();
    assert_eq!(
        other.decrypt_resource::<RefundResource>(key),
        Err(ProtoError::Decrypt)
    );
}
