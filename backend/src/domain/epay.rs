//! The epay (易支付) merchant protocol: its parameters, their checks, the device -> channel
//! rule and the answers, so tools that speak it can use fenpay by changing a URL, pid and
//! key. Pure: the service finds the app, creates the order and sends the notification.
//!
//! Signature (`domain::apps::epay_sign`): lowercase MD5 of the parameters sorted by name,
//! empty values and `sign` / `sign_type` left out, joined as `k=v&k=v`, the merchant key
//! appended. Unlike several clones, every request's signature and amount are checked.

use std::collections::BTreeMap;

use api_types::payment::{PaymentChannel, PaymentMethod};
use chrono::{FixedOffset, NaiveDateTime};
use serde_json::{json, Value};

use super::apps::{epay_money, epay_money_fen, epay_sign, same_signature, valid_ref};

/// Longest `name` (the order's subject), in characters.
pub const MAX_NAME_CHARS: usize = 128;
/// Longest `param` (returned as given in notifications and queries), in bytes.
pub const MAX_PARAM_BYTES: usize = 1024;
/// Longest `notify_url` / `return_url`, in bytes.
pub const MAX_URL_BYTES: usize = 1024;
/// The key in an epay order's `metadata` that keeps its `param`.
pub const PARAM_METADATA_KEY: &str = "epay_param";
/// The key in an epay order's `metadata` that keeps the `type` a request named when the
/// checkout page is left to choose the channel: the page then offers only that method.
pub const TYPE_METADATA_KEY: &str = "epay_type";

/// The only method an order's checkout page may offer, from its `metadata` (an epay
/// order whose request named a `type`); `None`: every configured method.
pub fn offered_method(metadata: Option<&Value>) -> Option<PaymentMethod> {
    let ty = metadata?.get(TYPE_METADATA_KEY)?.as_str()?;
    PayType::parse(ty).ok().map(PayType::method)
}

/// What a notify receiver answers to acknowledge: exactly this, surrounding blanks aside.
pub const NOTIFY_ACK: &str = "success";

/// A request refused: the message the client sees (`msg`, or the error page's text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused(pub String);

impl Refused {
    fn new(msg: impl Into<String>) -> Refused {
        Refused(msg.into())
    }
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The parameters of one request (query string or form body), each name once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params(BTreeMap<String, String>);

impl Params {
    /// From decoded name/value pairs. A name given twice is refused: which value was
    /// signed would be ambiguous.
    pub fn from_pairs(
        pairs: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Params, Refused> {
        let mut map = BTreeMap::new();
        for (k, v) in pairs {
            if map.contains_key(&k) {
                return Err(Refused::new(format!(
                    "parameter {k} is given more than once"
                )));
            }
            map.insert(k, v);
        }
        Ok(Params(map))
    }

    /// A parameter's value; absent and empty are the same (the signature ignores both).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn required(&self, name: &str) -> Result<&str, Refused> {
        self.get(name)
            .ok_or_else(|| Refused::new(format!("missing parameter {name}")))
    }

    /// The merchant id (`pid`), before anything else is looked at.
    pub fn pid(&self) -> Result<i64, Refused> {
        let pid = self.required("pid")?;
        if pid.is_empty() || pid.len() > 18 || !pid.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Refused::new("pid is not a merchant id"));
        }
        pid.parse()
            .map_err(|_| Refused::new("pid is not a merchant id"))
    }

    /// Whether `sign` is the signature of these parameters under `key` (constant time;
    /// the hex case does not matter). `sign_type`, when given, must be `MD5`.
    pub fn signed_by(&self, key: &str) -> Result<(), Refused> {
        let given = self.required("sign")?.to_ascii_lowercase();
        if let Some(t) = self.get("sign_type") {
            if !t.eq_ignore_ascii_case("MD5") {
                return Err(Refused::new("sign_type must be MD5"));
            }
        }
        let expected = epay_sign(self.0.iter().map(|(k, v)| (k.as_str(), v.as_str())), key);
        if same_signature(&expected, &given) {
            Ok(())
        } else {
            Err(Refused::new("signature check failed"))
        }
    }

    /// Whether `key` is the merchant key (api.php's plain `key` parameter), constant time.
    pub fn has_key(&self, key: &str) -> bool {
        self.get("key").is_some_and(|k| same_signature(k, key))
    }
}

/// epay's payment types fenpay takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayType {
    Alipay,
    Wxpay,
}

impl PayType {
    pub fn parse(s: &str) -> Result<PayType, Refused> {
        match s {
            "alipay" => Ok(PayType::Alipay),
            "wxpay" => Ok(PayType::Wxpay),
            other => Err(Refused::new(format!(
                "payment type {other} is not supported (alipay or wxpay)"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PayType::Alipay => "alipay",
            PayType::Wxpay => "wxpay",
        }
    }

    pub fn method(self) -> PaymentMethod {
        match self {
            PayType::Alipay => PaymentMethod::Alipay,
            PayType::Wxpay => PaymentMethod::Wechat,
        }
    }

    /// The epay type of an order's provider (`wechat` | `alipay`).
    pub fn of_method(method: PaymentMethod) -> PayType {
        match method {
            PaymentMethod::Alipay => PayType::Alipay,
            PaymentMethod::Wechat => PayType::Wxpay,
        }
    }
}

/// Where the buyer is (mapi.php's `device`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    /// A desktop browser (the default): a QR code to scan.
    Pc,
    /// A phone's browser: WeChat H5 / Alipay wap.
    Mobile,
    /// Inside WeChat: the hosted checkout page, which runs the JSAPI flow.
    Wechat,
    /// Inside the Alipay app: Alipay wap.
    Alipay,
}

impl Device {
    pub fn parse(s: Option<&str>) -> Result<Device, Refused> {
        match s {
            None | Some("pc") => Ok(Device::Pc),
            Some("mobile") => Ok(Device::Mobile),
            Some("wechat") => Ok(Device::Wechat),
            Some("alipay") => Ok(Device::Alipay),
            Some(other) => Err(Refused::new(format!(
                "device {other} is not supported (pc, mobile, wechat or alipay)"
            ))),
        }
    }
}

/// Which of mapi.php's answer fields carries the way to pay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// `qrcode`: the provider's QR code content (WeChat Native `code_url`, Alipay precreate).
    QrCode,
    /// `payurl`: the provider's page (WeChat `h5_url`, Alipay wap `pay_url`).
    ProviderUrl,
    /// `payurl`: fenpay's hosted checkout page, which adapts to where it is opened.
    Checkout,
}

/// How an order for `ty` on `device` is paid: the channel to create it with (`None`:
/// the method is fixed but the hosted checkout page picks the channel) and what the
/// answer carries.
pub fn plan(ty: PayType, device: Device) -> (Option<PaymentChannel>, Target) {
    match (ty, device) {
        (_, Device::Pc) => (Some(PaymentChannel::Native), Target::QrCode),
        (PayType::Wxpay, Device::Mobile) => (Some(PaymentChannel::H5), Target::ProviderUrl),
        (PayType::Alipay, Device::Mobile | Device::Alipay) => {
            (Some(PaymentChannel::Wap), Target::ProviderUrl)
        }
        // JSAPI needs the buyer's openid, which only the page's OAuth step can get; and
        // inside WeChat, Alipay cannot pay: the page tells the buyer to open a browser.
        (_, Device::Wechat) => (None, Target::Checkout),
        // WeChat cannot pay inside the Alipay app either: the page says so.
        (PayType::Wxpay, Device::Alipay) => (None, Target::Checkout),
    }
}

/// A checked order request (submit.php, mapi.php).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayRequest {
    pub pid: i64,
    /// `None` (submit.php only): the buyer chooses on the checkout page.
    pub ty: Option<PayType>,
    pub out_trade_no: String,
    pub notify_url: String,
    pub return_url: Option<String>,
    pub name: String,
    pub money_fen: i64,
    pub param: Option<String>,
    pub clientip: Option<std::net::IpAddr>,
    pub device: Device,
}

/// Check an order request's fields (the signature is checked before, with the app's key).
/// `type_required`: mapi.php needs `type`; submit.php without one lets the buyer choose.
pub fn parse_pay(
    p: &Params,
    max_amount_fen: i64,
    type_required: bool,
) -> Result<PayRequest, Refused> {
    let pid = p.pid()?;
    let ty = match p.get("type") {
        Some(t) => Some(PayType::parse(t)?),
        None if type_required => return Err(Refused::new("missing parameter type")),
        None => None,
    };
    let out_trade_no = p.required("out_trade_no")?;
    if !valid_ref(out_trade_no) {
        return Err(Refused::new(
            "out_trade_no must be 1-64 of A-Z a-z 0-9 _ - . : |",
        ));
    }
    let notify_url = p.required("notify_url")?;
    check_url("notify_url", notify_url)?;
    let return_url = p.get("return_url");
    if let Some(u) = return_url {
        check_url("return_url", u)?;
    }
    let name = p.required("name")?;
    if name.trim().is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(Refused::new(format!(
            "name must be 1-{MAX_NAME_CHARS} characters without control characters"
        )));
    }
    let money = p.required("money")?;
    let money_fen = epay_money_fen(money).ok_or_else(|| {
        Refused::new("money must be yuan with at most 2 decimals, more than 0 (e.g. 12.30)")
    })?;
    if money_fen > max_amount_fen {
        return Err(Refused::new(format!(
            "money is above this merchant's limit of {} yuan",
            epay_money(max_amount_fen)
        )));
    }
    let param = p.get("param");
    if param.is_some_and(|v| v.len() > MAX_PARAM_BYTES) {
        return Err(Refused::new(format!(
            "param is longer than {MAX_PARAM_BYTES} bytes"
        )));
    }
    let clientip = match p.get("clientip") {
        Some(ip) => Some(
            ip.parse()
                .map_err(|_| Refused::new("clientip is not an IP address"))?,
        ),
        None => None,
    };
    let device = Device::parse(p.get("device"))?;
    Ok(PayRequest {
        pid,
        ty,
        out_trade_no: out_trade_no.to_string(),
        notify_url: notify_url.to_string(),
        return_url: return_url.map(str::to_string),
        name: name.to_string(),
        money_fen,
        param: param.map(str::to_string),
        clientip,
        device,
    })
}

/// An absolute http(s) URL with a host, no blanks or control characters. (The service
/// parses it again with a URL parser; this keeps obvious garbage out early.)
fn check_url(field: &str, url: &str) -> Result<(), Refused> {
    let lower = url.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"));
    let ok = url.len() <= MAX_URL_BYTES
        && rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/'))
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(Refused::new(format!(
            "{field} must be an absolute http(s) URL"
        )))
    }
}

/// Whether this server may send a notification to `notify_url`: in production only to a
/// public host (never loopback, private, link-local or metadata addresses, which a
/// merchant could otherwise make this server call); in development anywhere.
pub fn notify_url_allowed(notify_url: &str, production: bool) -> bool {
    if !production {
        return true;
    }
    let lower = notify_url.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
        .unwrap_or("");
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    // userinfo@host:port -> host
    let host_port = authority.rsplit('@').next().unwrap_or("");
    let host = if host_port.starts_with('[') {
        host_port.split(']').next().map(|h| format!("{h}]"))
    } else {
        host_port.split(':').next().map(str::to_string)
    }
    .unwrap_or_default();
    !host.is_empty() && crate::config::is_public_host(&host)
}

/// api.php's order reference: `trade_no` (ours) or `out_trade_no` (the merchant's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OrderRef {
    TradeNo(String),
    OutTradeNo(String),
}

pub fn order_ref(p: &Params) -> Result<OrderRef, Refused> {
    match (p.get("trade_no"), p.get("out_trade_no")) {
        (Some(t), _) => Ok(OrderRef::TradeNo(t.to_string())),
        (None, Some(o)) => Ok(OrderRef::OutTradeNo(o.to_string())),
        (None, None) => Err(Refused::new("missing parameter trade_no or out_trade_no")),
    }
}

/// The refund number of an api.php refund: the merchant's `out_refund_no` when given,
/// else derived from the order and the amount, so a retried request never refunds twice
/// (and a second refund of the same amount of the same order needs `out_refund_no`).
pub fn refund_no(p: &Params, order_no: &str, fen: i64) -> Result<String, Refused> {
    match p.get("out_refund_no") {
        Some(own) => {
            let ok = (1..=40).contains(&own.len())
                && own
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
            if ok {
                Ok(format!("ep-{own}"))
            } else {
                Err(Refused::new(
                    "out_refund_no must be 1-40 of A-Z a-z 0-9 _ -",
                ))
            }
        }
        None => Ok(format!("ep-{order_no}-{fen}")),
    }
}

/// An order as the epay answers and notifications describe it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpayOrder {
    pub pid: i64,
    pub trade_no: String,
    pub out_trade_no: String,
    /// `None` while the buyer has not chosen a method.
    pub ty: Option<PayType>,
    pub name: String,
    pub money_fen: i64,
    pub refunded_fen: i64,
    /// Paid at some point (later refunds included).
    pub paid: bool,
    pub param: Option<String>,
    /// The provider's transaction id once paid.
    pub api_trade_no: Option<String>,
    pub created_at: NaiveDateTime,
    pub paid_at: Option<NaiveDateTime>,
}

/// Times as epay shows them: `YYYY-MM-DD HH:MM:SS`, China Standard Time (UTC+8).
pub fn epay_time(utc: NaiveDateTime) -> String {
    let cst = FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| unreachable!("+8h is valid"));
    utc.and_utc()
        .with_timezone(&cst)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// The signed parameters of a payment notification (GET to `notify_url`) and of the
/// redirect to `return_url`, in the order they are sent.
pub fn notify_params(o: &EpayOrder, key: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = vec![
        ("pid".into(), o.pid.to_string()),
        ("trade_no".into(), o.trade_no.clone()),
        ("out_trade_no".into(), o.out_trade_no.clone()),
        (
            "type".into(),
            o.ty.map(PayType::as_str).unwrap_or_default().into(),
        ),
        ("name".into(), o.name.clone()),
        ("money".into(), epay_money(o.money_fen)),
        ("trade_status".into(), "TRADE_SUCCESS".into()),
        ("param".into(), o.param.clone().unwrap_or_default()),
    ];
    let sign = epay_sign(out.iter().map(|(k, v)| (k.as_str(), v.as_str())), key);
    out.push(("sign".into(), sign));
    out.push(("sign_type".into(), "MD5".into()));
    out
}

/// Whether a notify receiver's body acknowledges the notification.
pub fn acknowledged(body: &str) -> bool {
    body.trim() == NOTIFY_ACK
}

/// A refusal as mapi.php and api.php answer it.
pub fn failure(msg: &str) -> Value {
    json!({ "code": -1, "msg": msg })
}

/// mapi.php's answer for a created order.
pub fn mapi_answer(trade_no: &str, target: Target, value: &str) -> Value {
    let field = match target {
        Target::QrCode => "qrcode",
        Target::ProviderUrl | Target::Checkout => "payurl",
    };
    json!({ "code": 1, "msg": "success", "trade_no": trade_no, field: value })
}

/// api.php?act=order's answer. `status` is 1 once paid, else 0; `trade_status` is
/// given too (`TRADE_SUCCESS` / `WAIT_BUYER_PAY`) for clients that read that instead.
pub fn order_answer(o: &EpayOrder) -> Value {
    json!({
        "code": 1,
        "msg": "success",
        "trade_no": o.trade_no,
        "out_trade_no": o.out_trade_no,
        "api_trade_no": o.api_trade_no.clone().unwrap_or_default(),
        "type": o.ty.map(PayType::as_str).unwrap_or_default(),
        "pid": o.pid,
        "addtime": epay_time(o.created_at),
        "endtime": o.paid_at.map(epay_time).unwrap_or_default(),
        "name": o.name,
        "money": epay_money(o.money_fen),
        "refund_money": epay_money(o.refunded_fen),
        "status": i32::from(o.paid),
        "trade_status": if o.paid { "TRADE_SUCCESS" } else { "WAIT_BUYER_PAY" },
        "param": o.param.clone().unwrap_or_default(),
        "buyer": "",
    })
}

/// api.php?act=refund's answer.
pub fn refund_answer(trade_no: &str, out_trade_no: &str, fen: i64, refund_no: &str) -> Value {
    json!({
        "code": 1,
        "msg": "refund accepted",
        "trade_no": trade_no,
        "out_trade_no": out_trade_no,
        "money": epay_money(fen),
        "out_refund_no": refund_no,
    })
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .expect("no duplicates")
    }

    fn signed(pairs: &[(&str, &str)], key: &str) -> Params {
        let sign = epay_sign(pairs.iter().copied(), key);
        let mut all: Vec<(&str, &str)> = pairs.to_vec();
        all.push(("sign", &sign));
        params(&all)
    }

    // Expected signatures computed independently with Python's hashlib:
    // md5(("&".join(f"{k}={v}" for k, v in sorted(p.items()) if v != "" and k not in
    // ("sign", "sign_type")) + key).encode()).hexdigest()
    #[test]
    fn signature_known_answers() {
        type Vector<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
        let vectors: [Vector; 4] = [
            (
                &[
                    ("pid", "1001"),
                    ("type", "alipay"),
                    ("out_trade_no", "20160806151343349"),
                    ("notify_url", "http://www.pay.com/notify_url.php"),
                    ("return_url", "http://www.pay.com/return_url.php"),
                    ("name", "VIP会员"),
                    ("money", "1.00"),
                    ("sitename", ""),
                    ("sign_type", "MD5"),
                ],
                "89unJUB8HZ54Hj7x4nUj56HN4nUzUJ8i",
                "427724b6656aa612cfdbe7a2262036a3",
            ),
            (
                &[
                    ("pid", "20001"),
                    ("type", "wxpay"),
                    ("out_trade_no", "ORDER-42"),
                    ("notify_url", "https://shop.example.com/epay/notify?x=1&y=2"),
                    ("name", "100 points"),
                    ("money", "0.01"),
                    ("clientip", "203.0.113.7"),
                    ("device", "mobile"),
                    ("param", "uid=7&plan=pro"),
                    ("sign_type", "MD5"),
                ],
                "k3y",
                "a05fb65e56362746a9f09ee1b970afc2",
            ),
            (
                &[
                    ("pid", "20001"),
                    ("trade_no", "FP20261205093000123456"),
                    ("out_trade_no", "ORDER-42"),
                    ("type", "wxpay"),
                    ("name", "100 points"),
                    ("money", "12.30"),
                    ("trade_status", "TRADE_SUCCESS"),
                    ("param", ""),
                    ("sign_type", "MD5"),
                ],
                "k3y",
                "e61f92f6cf2342193e9f7d5075390e13",
            ),
            (
                &[
                    ("act", "order"),
                    ("pid", "20001"),
                    ("out_trade_no", "ORDER-42"),
                    ("sign_type", "MD5"),
                ],
                "k3y",
                "162d31525ccd737d50749fbd2ca02c8a",
            ),
        ];
        for (pairs, key, expected) in vectors {
            assert_eq!(epay_sign(pairs.iter().copied(), key), expected);
            let mut with_sign = pairs.to_vec();
            with_sign.push(("sign", expected));
            assert_eq!(params(&with_sign).signed_by(key), Ok(()));
            // Upper-case hex is the same signature.
            let upper = expected.to_ascii_uppercase();
            let mut with_upper = pairs.to_vec();
            with_upper.push(("sign", &upper));
            assert_eq!(params(&with_upper).signed_by(key), Ok(()));
            assert!(params(&with_sign).signed_by("other").is_err());
        }
    }

    #[test]
    fn notification_is_signed_like_the_known_answer() {
        let o = EpayOrder {
            pid: 20001,
            trade_no: "FP20261205093000123456".into(),
            out_trade_no: "ORDER-42".into(),
            ty: Some(PayType::Wxpay),
            name: "100 points".into(),
            money_fen: 1230,
            refunded_fen: 0,
            paid: true,
            param: None,
            api_trade_no: Some("4200000001".into()),
            created_at: NaiveDateTime::default(),
            paid_at: None,
        };
        let q = notify_params(&o, "k3y");
        let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("sign"), Some("e61f92f6cf2342193e9f7d5075390e13"));
        assert_eq!(get("sign_type"), Some("MD5"));
        assert_eq!(get("param"), Some(""));
        assert_eq!(get("money"), Some("12.30"));
        // A receiver that checks it the protocol's way accepts it.
        let back = Params::from_pairs(q.clone()).expect("no duplicates");
        assert_eq!(back.signed_by("k3y"), Ok(()));
        // The param is part of what is signed.
        let with_param = EpayOrder {
            param: Some("uid=7".into()),
            ..o
        };
        let q2 = notify_params(&with_param, "k3y");
        assert_ne!(
            q2.iter().find(|(n, _)| n == "sign"),
            q.iter().find(|(n, _)| n == "sign")
        );
    }

    #[test]
    fn tampering_breaks_the_signature() {
        let base = [
            ("pid", "20001"),
            ("type", "wxpay"),
            ("out_trade_no", "A1"),
            ("notify_url", "https://shop.example.com/n"),
            ("name", "x"),
            ("money", "1.00"),
        ];
        let p = signed(&base, "k3y");
        assert_eq!(p.signed_by("k3y"), Ok(()));
        let mut changed = p.clone();
        changed.0.insert("money".into(), "0.01".into());
        assert_eq!(
            changed.signed_by("k3y"),
            Err(Refused("signature check failed".into()))
        );
        // An added parameter with a value is signed too; an empty one is not.
        let mut added = p.clone();
        added.0.insert("param".into(), "x".into());
        assert!(added.signed_by("k3y").is_err());
        let mut empty = p.clone();
        empty.0.insert("param".into(), String::new());
        assert_eq!(empty.signed_by("k3y"), Ok(()));
        let mut no_sign = p.clone();
        no_sign.0.remove("sign");
        assert!(no_sign.signed_by("k3y").is_err());
        let mut sha = p.clone();
        sha.0.insert("sign_type".into(), "RSA".into());
        assert_eq!(
            sha.signed_by("k3y"),
            Err(Refused("sign_type must be MD5".into()))
        );
        assert!(Params::from_pairs([
            ("pid".to_string(), "1".to_string()),
            ("pid".to_string(), "2".to_string())
        ])
        .is_err());
    }

    #[test]
    fn order_requests_are_checked() {
        let ok = [
            ("pid", "20001"),
            ("type", "wxpay"),
            ("out_trade_no", "A1"),
            ("notify_url", "https://shop.example.com/n?a=1"),
            ("return_url", "https://shop.example.com/r"),
            ("name", "VIP 会员"),
            ("money", "12.3"),
            ("param", "uid=7"),
            ("clientip", "203.0.113.7"),
            ("device", "mobile"),
        ];
        let r = parse_pay(&params(&ok), 100_000, true).expect("valid");
        assert_eq!(r.pid, 20001);
        assert_eq!(r.ty, Some(PayType::Wxpay));
        assert_eq!(r.money_fen, 1230);
        assert_eq!(r.device, Device::Mobile);
        assert_eq!(r.param.as_deref(), Some("uid=7"));
        assert_eq!(r.clientip, Some("203.0.113.7".parse().expect("ip")));

        let with = |k: &str, v: &str| {
            let mut p = params(&ok);
            p.0.insert(k.into(), v.into());
            parse_pay(&p, 100_000, true)
        };
        for (k, v) in [
            ("pid", "abc"),
            ("pid", "-1"),
            ("type", "qqpay"),
            ("type", ""),
            ("out_trade_no", ""),
            ("out_trade_no", "a b"),
            ("notify_url", ""),
            ("notify_url", "ftp://x/y"),
            ("notify_url", "/relative"),
            ("notify_url", "https:///nohost"),
            ("return_url", "javascript:alert(1)"),
            ("name", ""),
            ("name", "   "),
            ("name", "a\nb"),
            ("money", "0"),
            ("money", "0.00"),
            ("money", "-1"),
            ("money", "1.001"),
            ("money", "1e3"),
            ("money", "１"),
            ("money", "1000.01"),
            ("clientip", "not-an-ip"),
            ("device", "qq"),
        ] {
            assert!(with(k, v).is_err(), "{k}={v} accepted");
        }
        assert!(with("name", &"名".repeat(128)).is_ok());
        assert!(with("name", &"名".repeat(129)).is_err());
        assert!(with("param", &"p".repeat(1024)).is_ok());
        assert!(with("param", &"p".repeat(1025)).is_err());
        assert!(with("money", "1000.00").is_ok());
        // submit.php may leave the type to the buyer; mapi.php may not.
        let mut no_type = params(&ok);
        no_type.0.remove("type");
        assert_eq!(parse_pay(&no_type, 100_000, false).expect("ok").ty, None);
        assert!(parse_pay(&no_type, 100_000, true).is_err());
        // Absent device is a desktop.
        let mut no_device = params(&ok);
        no_device.0.remove("device");
        assert_eq!(
            parse_pay(&no_device, 100_000, true).expect("ok").device,
            Device::Pc
        );
    }

    #[test]
    fn devices_choose_channels() {
        use PaymentChannel::*;
        let cases = [
            (PayType::Wxpay, Device::Pc, Some(Native), Target::QrCode),
            (PayType::Alipay, Device::Pc, Some(Native), Target::QrCode),
            (
                PayType::Wxpay,
                Device::Mobile,
                Some(H5),
                Target::ProviderUrl,
            ),
            (
                PayType::Alipay,
                Device::Mobile,
                Some(Wap),
                Target::ProviderUrl,
            ),
            (PayType::Wxpay, Device::Wechat, None, Target::Checkout),
            (PayType::Alipay, Device::Wechat, None, Target::Checkout),
            (
                PayType::Alipay,
                Device::Alipay,
                Some(Wap),
                Target::ProviderUrl,
            ),
            (PayType::Wxpay, Device::Alipay, None, Target::Checkout),
        ];
        for (ty, device, channel, target) in cases {
            assert_eq!(plan(ty, device), (channel, target), "{ty:?} {device:?}");
        }
        let a = mapi_answer("FP1", Target::QrCode, "weixin://wxpay/bizpayurl?pr=x");
        assert_eq!(a["code"], 1);
        assert_eq!(a["qrcode"], "weixin://wxpay/bizpayurl?pr=x");
        assert!(a.get("payurl").is_none());
        let b = mapi_answer(
            "FP1",
            Target::Checkout,
            "https://pay.example.com/pay/FP1?sig=x",
        );
        assert_eq!(b["payurl"], "https://pay.example.com/pay/FP1?sig=x");
        assert_eq!(failure("nope"), json!({"code": -1, "msg": "nope"}));
    }

    #[test]
    fn refund_numbers_are_stable() {
        let none = params(&[]);
        assert_eq!(refund_no(&none, "FP1", 100).expect("ok"), "ep-FP1-100");
        assert_eq!(refund_no(&none, "FP1", 100), refund_no(&none, "FP1", 100));
        assert_ne!(refund_no(&none, "FP1", 100), refund_no(&none, "FP1", 200));
        let own = params(&[("out_refund_no", "R-7")]);
        assert_eq!(refund_no(&own, "FP1", 100).expect("ok"), "ep-R-7");
        assert!(refund_no(&params(&[("out_refund_no", "a b")]), "FP1", 1).is_err());
    }

    #[test]
    fn answers_and_times() {
        let created = chrono::NaiveDate::from_ymd_opt(2026, 12, 5)
            .and_then(|d| d.and_hms_opt(16, 30, 5))
            .expect("date");
        // 16:30 UTC is 00:30 the next day in China.
        assert_eq!(epay_time(created), "2026-12-06 00:30:05");
        let o = EpayOrder {
            pid: 7,
            trade_no: "FP1".into(),
            out_trade_no: "A1".into(),
            ty: Some(PayType::Alipay),
            name: "n".into(),
            money_fen: 5,
            refunded_fen: 0,
            paid: false,
            param: Some("p".into()),
            api_trade_no: None,
            created_at: created,
            paid_at: None,
        };
        let a = order_answer(&o);
        assert_eq!(a["status"], 0);
        assert_eq!(a["trade_status"], "WAIT_BUYER_PAY");
        assert_eq!(a["money"], "0.05");
        assert_eq!(a["type"], "alipay");
        assert_eq!(a["param"], "p");
        assert_eq!(a["endtime"], "");
        let paid = order_answer(&EpayOrder {
            paid: true,
            paid_at: Some(created),
            ..o
        });
        assert_eq!(paid["status"], 1);
        assert_eq!(paid["endtime"], "2026-12-06 00:30:05");
        assert!(acknowledged(" success\r\n"));
        assert!(!acknowledged("SUCCESS"));
        assert!(!acknowledged("success!"));
        assert!(!acknowledged(""));
    }

    #[test]
    fn notify_urls_of_the_servers_own_network_are_refused_in_production() {
        for url in [
            "http://127.0.0.1:9000/n",
            "http://localhost/n",
            "http://10.0.0.5/n",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]:8080/n",
            "http://user@192.168.1.1/n",
            "http://metadata.internal/n",
            "https:///n",
        ] {
            assert!(!notify_url_allowed(url, true), "{url}");
            assert!(
                notify_url_allowed(url, false),
                "{url}: development allows it"
            );
        }
        for url in [
            "https://shop.example.com/notify.php",
            "http://203.0.113.7:8080/n?x=1",
            "https://[2001:db8::1]/n",
        ] {
            assert!(notify_url_allowed(url, true), "{url}");
        }
    }

    #[test]
    fn the_offered_method_comes_from_the_type_in_metadata() {
        assert_eq!(
            offered_method(Some(&json!({"epay_type": "wxpay", "epay_param": "x"}))),
            Some(PaymentMethod::Wechat)
        );
        assert_eq!(
            offered_method(Some(&json!({"epay_type": "alipay"}))),
            Some(PaymentMethod::Alipay)
        );
        assert_eq!(offered_method(Some(&json!({"epay_type": "qqpay"}))), None);
        assert_eq!(offered_method(Some(&json!({"epay_param": "x"}))), None);
        assert_eq!(offered_method(None), None);
    }
}
