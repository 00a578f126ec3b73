//! Property tests (fuzzing without nightly) for the WeChat Pay client's parsers:
//! notifications (signature headers, envelope, AEAD_AES_256_GCM resource, transaction)
//! and error answers. Arbitrary input never panics; a valid notification (signed and
//! sealed here with a published test key) is read exactly, and no tampering with it is
//! accepted; an unverified error answer never says anything about money.
//! `PROPTEST_CASES=<n>` runs more cases.

use futures_util::FutureExt;
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::Value;

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

/// WeChat's side and ours share one published test key (wechatpay-go's vector).
fn key() -> &'static RsaPrivateKey {
    static KEY: std::sync::OnceLock<RsaPrivateKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../proto/testdata/vectors/wechatpay/01_go_sha256rsa_sign_source.json"
        );
        let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        RsaPrivateKey::from_pem(v["private_key_pkcs8_pem"].as_str().unwrap()).unwrap()
    })
}

const APIV3: &str = "0123456789abcdef0123456789abcdef";
const KEY_ID: &str = "PUB_KEY_ID_0000000000000000000000000001";

fn client() -> WechatClient {
    WechatClient::new(WechatClientConfig {
        mch_id: "1900000109".into(),
        app_id: "wxd0000000000emu01".into(),
        merchant_serial: "ABC".into(),
        merchant_key: key().clone(),
        api_v3_key: Secret::new(APIV3),
        trust: PlatformTrust::PublicKey {
            id: KEY_ID.into(),
            key: key().public_key(),
        },
        base_url: "http://127.0.0.1:9".into(),
        notify_url: "http://127.0.0.1:9/notify".into(),
        refund_notify_url: "http://127.0.0.1:9/refund".into(),
        timeout: Duration::from_secs(1),
    })
    .unwrap()
}

fn transaction(order: &str, total: i64, state: &str) -> Value {
    json!({
        "appid": "wxd0000000000emu01", "mchid": "1900000109", "out_trade_no": order,
        "transaction_id": "4200000000000000001", "trade_type": "NATIVE",
        "trade_state": state, "trade_state_desc": "", "success_time": "2026-12-05T10:00:00+08:00",
        "amount": {"total": total, "payer_total": total, "currency": "CNY"}
    })
}

/// (headers, body) as WeChat sends them.
fn notification(tx: &Value, event: &str, nonce: &str) -> (HashMap<String, String>, Vec<u8>) {
    let resource = proto::EncryptedResource::seal(
        APIV3.as_bytes(),
        "transaction",
        "transaction",
        nonce,
        tx.to_string().as_bytes(),
    )
    .unwrap();
    let body = json!({
        "id": "EV-1", "create_time": "2026-12-05T10:00:01+08:00",
        "resource_type": "encrypt-resource", "event_type": event, "summary": "支付成功",
        "resource": resource
    })
    .to_string()
    .into_bytes();
    let ts = Utc::now().timestamp().to_string();
    let header_nonce = "5K8264ILTKCH16CQ2502SI8ZNMTM67VS";
    let sig = proto::sign_response(key(), &ts, header_nonce, &body).unwrap();
    let headers = [
        ("wechatpay-timestamp", ts),
        ("wechatpay-nonce", header_nonce.to_string()),
        ("wechatpay-signature", sig),
        ("wechatpay-serial", KEY_ID.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    (headers, body)
}

fn verify(
    c: &WechatClient,
    headers: &HashMap<String, String>,
    body: &[u8],
) -> Result<(PaymentNotice, Transaction), ProviderError> {
    // Public-key mode never goes to the network: the future is ready at once.
    c.verify_notification(headers, body).now_or_never().unwrap()
}

const HEADERS: &[&str] = &[
    "wechatpay-timestamp",
    "wechatpay-nonce",
    "wechatpay-signature",
    "wechatpay-serial",
];

/// How a notification is tampered with.
#[derive(Clone, Debug)]
enum Tamper {
    /// Flip a bit of the body.
    Body(usize, u8),
    /// Replace (or drop) a signature header.
    Header(usize, Option<String>),
}

fn tamper() -> impl Strategy<Value = Tamper> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Tamper::Body(i, b)),
        (0..HEADERS.len(), proptest::option::of("[ -~]{0,40}"))
            .prop_map(|(i, v)| Tamper::Header(i, v)),
    ]
}

proptest! {
    #![proptest_config(config(48))]

    /// A valid notification is read exactly; any tampering is refused.
    #[test]
    fn notifications_are_exact_and_refuse_tampering(
        order in "FP[0-9]{16}",
        total in 1i64..100_000_000,
        nonce in "[0-9A-Za-z]{12}",
        t in tamper(),
    ) {
        let c = client();
        let (headers, body) = notification(&transaction(&order, total, "SUCCESS"), "TRANSACTION.SUCCESS", &nonce);
        let (notice, _) = verify(&c, &headers, &body).unwrap();
        prop_assert_eq!(&notice.out_trade_no, &order);
        prop_assert_eq!(notice.amount_fen, total);
        prop_assert!(notice.paid);
        let (mut h, mut b) = (headers.clone(), body.clone());
        match &t {
            Tamper::Body(i, bit) => {
                let at = i % b.len();
                b[at] ^= 1 << (bit % 8);
            }
            Tamper::Header(i, v) => {
                let name = HEADERS[*i];
                match v {
                    Some(v) if h.get(name) == Some(v) => return Ok(()),
                    Some(v) => { h.insert(name.to_string(), v.clone()); }
                    None => { h.remove(name); }
                }
            }
        }
        prop_assert!(verify(&c, &h, &b).is_err(), "accepted after {:?}", t);
    }

    /// Properly signed and sealed, but not a payment: refused.
    #[test]
    fn signed_notifications_of_no_payment_are_refused(
        state in prop_oneof![
            proptest::sample::select(vec!["NOTPAY", "CLOSED", "REFUND", "USERPAYING", "SUCCESS"]).prop_map(String::from),
            "[A-Z_]{0,12}",
        ],
        event in prop_oneof![
            proptest::sample::select(vec!["TRANSACTION.SUCCESS", "REFUND.SUCCESS"]).prop_map(String::from),
            "[A-Z._]{0,20}",
        ],
        drop in proptest::option::of(proptest::sample::select(vec!["amount", "transaction_id", "out_trade_no", "trade_state"])),
    ) {
        let c = client();
        let mut tx = transaction("FP2026", 100, &state);
        if let Some(field) = drop {
            tx.as_object_mut().unwrap().remove(field);
        }
        let (headers, body) = notification(&tx, &event, "0123456789ab");
        let accepted = verify(&c, &headers, &body);
        let is_payment = state == "SUCCESS" && event == "TRANSACTION.SUCCESS" && drop.is_none();
        prop_assert_eq!(accepted.is_ok(), is_payment, "{:?}", accepted);
    }

    #[test]
    fn notifications_never_panic_on_garbage(
        body in proptest::collection::vec(any::<u8>(), 0..400),
        values in proptest::collection::vec(".{0,40}", 4),
        keep in proptest::collection::vec(any::<bool>(), 4),
    ) {
        let c = client();
        let mut headers: HashMap<String, String> = HashMap::new();
        for ((name, v), k) in HEADERS.iter().zip(&values).zip(&keep) {
            if *k {
                headers.insert(name.to_string(), v.clone());
            }
        }
        headers.insert("wechatpay-serial".into(), KEY_ID.into());
        let _ = verify(&c, &headers, &body);
        let _ = c.verify_refund_notification(&headers, &body).now_or_never().unwrap();
    }

    /// Whatever an error answer says, only a verified one may say the trade does not
    /// exist, is closed, or was refused.
    #[test]
    fn unverified_error_answers_say_nothing_about_money(
        status in 400u16..600,
        code in prop_oneof![
            proptest::sample::select(vec!["ORDER_NOT_EXIST", "RESOURCE_NOT_EXISTS", "ORDER_CLOSED", "ORDERCLOSED", "ORDERPAID", "NOT_ENOUGH", "PARAM_ERROR", "SYSTEM_ERROR"]).prop_map(String::from),
            "[A-Z_]{0,16}",
        ],
        garbage in proptest::collection::vec(any::<u8>(), 0..100),
        signed in 0..3u8,
    ) {
        let authenticity = match signed {
            0 => Authenticity::Verified,
            1 => Authenticity::Unsigned,
            _ => Authenticity::Invalid("bad".into()),
        };
        let body = json!({"code": code, "message": "m"}).to_string();
        for body in [body.as_bytes(), garbage.as_slice()] {
            let e = map_error(status, body, &authenticity);
            if authenticity != Authenticity::Verified {
                prop_assert!(
                    !matches!(e, ProviderError::TradeNotExist | ProviderError::AlreadyClosed | ProviderError::Rejected { .. }),
                    "{:?}", e
                );
            }
        }
    }
}
