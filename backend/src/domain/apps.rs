//! Merchant apps: API keys, their signatures and the checks on what an app may ask for.
//! Pure: the callers bring randomness, secrets and time.

use hmac::{Hmac, Mac};
use md5::{Digest as _, Md5};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Which providers an app's key drives: `live` the configured ones, `test` keys are meant
/// for the emulator (a development server).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyMode {
    Live,
    Test,
}

impl KeyMode {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyMode::Live => "live",
            KeyMode::Test => "test",
        }
    }

    pub fn parse(s: &str) -> Option<KeyMode> {
        match s {
            "live" => Some(KeyMode::Live),
            "test" => Some(KeyMode::Test),
            _ => None,
        }
    }
}

/// Who credits the buyer: fenpay (points, memberships) or the app from the events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fulfilment {
    Builtin,
    Webhook,
}

impl Fulfilment {
    pub fn as_str(self) -> &'static str {
        match self {
            Fulfilment::Builtin => "builtin",
            Fulfilment::Webhook => "webhook",
        }
    }

    pub fn parse(s: &str) -> Option<Fulfilment> {
        match s {
            "builtin" => Some(Fulfilment::Builtin),
            "webhook" => Some(Fulfilment::Webhook),
            _ => None,
        }
    }
}

/// Random characters of an API key after its `sk_live_` / `sk_test_` head (base62: ~190 bits).
pub const KEY_RANDOM_LEN: usize = 32;
/// Characters of a key kept visible (`sk_live_` + 4), to tell keys apart in lists.
pub const KEY_PREFIX_LEN: usize = 12;

/// An API key from `random` (>= [`KEY_RANDOM_LEN`] alphanumeric characters).
pub fn api_key(mode: KeyMode, random: &str) -> String {
    format!("sk_{}_{}", mode.as_str(), &random[..KEY_RANDOM_LEN])
}

/// The mode a key claims by its head; `None` for anything that is not shaped as our key.
pub fn key_mode_of(key: &str) -> Option<KeyMode> {
    let rest = key.strip_prefix("sk_")?;
    let (mode, random) = rest.split_once('_')?;
    if random.len() != KEY_RANDOM_LEN || !random.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    KeyMode::parse(mode)
}

/// The visible part of a key.
pub fn key_prefix(key: &str) -> String {
    key.chars().take(KEY_PREFIX_LEN).collect()
}

/// The stored form of a key: HMAC-SHA256 under the server's key-hash secret, hex.
pub fn key_hash(secret: &[u8], key: &str) -> String {
    hmac_hex(secret, key.as_bytes())
}

/// HMAC-SHA256, hex.
pub fn hmac_hex(secret: &[u8], message: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

/// Constant-time comparison of two hex/ASCII signatures.
pub fn same_signature(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Longest `out_order_no` / `customer_ref`.
pub const MAX_REF_LEN: usize = 64;
/// Largest `metadata` (its JSON text).
pub const MAX_METADATA_BYTES: usize = 4096;

/// An app's own order number or customer reference: 1-64 of `A-Z a-z 0-9 _ - . : |`.
pub fn valid_ref(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_REF_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':' | b'|'))
}

/// A URL the buyer may be sent back to: http(s), and its host one of `allowed` (exactly,
/// case-insensitive; `*.example.com` also allows its subdomains). Parsing is the caller's:
/// `scheme` and `host` as a URL parser found them.
pub fn return_host_allowed(scheme: &str, host: &str, allowed: &[String]) -> bool {
    if !matches!(scheme, "http" | "https") || host.is_empty() {
        return false;
    }
    let host = host.to_ascii_lowercase();
    allowed.iter().any(|a| {
        let a = a.trim().to_ascii_lowercase();
        match a.strip_prefix("*.") {
            Some(base) => host.ends_with(&format!(".{base}")),
            None => !a.is_empty() && host == a,
        }
    })
}

/// The allowed return hosts as stored (comma-separated) -> list.
pub fn parse_hosts(stored: &str) -> Vec<String> {
    stored
        .split(',')
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect()
}

/// The signature on the redirect to an app's `return_url`: HMAC-SHA256 under the app's
/// webhook secret of `order_no`, `out_order_no`, `status` joined by `\n`, hex. It tells the
/// app the redirect came from fenpay; it is never proof of payment.
pub fn return_signature(secret: &[u8], order_no: &str, out_order_no: &str, status: &str) -> String {
    hmac_hex(
        secret,
        format!("{order_no}\n{out_order_no}\n{status}").as_bytes(),
    )
}

/// The epay (易支付) signature: the parameters sorted by name, empty values and
/// `sign` / `sign_type` left out, joined as `k=v&k=v`, the merchant key appended, MD5,
/// lowercase hex.
pub fn epay_sign<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)>, key: &str) -> String {
    let mut kept: Vec<(&str, &str)> = params
        .into_iter()
        .filter(|(k, v)| !v.is_empty() && *k != "sign" && *k != "sign_type")
        .collect();
    kept.sort_by(|a, b| a.0.cmp(b.0));
    let joined = kept
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    hex::encode(Md5::digest(format!("{joined}{key}").as_bytes()))
}

/// Yuan as epay sends it (`"12.30"`, `"5"`, `"0.01"`) -> fen, integer-only; `None` for
/// anything else (more than 2 decimals, signs, exponents, zero, overflow).
pub fn epay_money_fen(money: &str) -> Option<i64> {
    let (int, frac) = match money.split_once('.') {
        Some((i, f)) => (i, f),
        None => (money, ""),
    };
    if int.is_empty()
        || int.len() > 12
        || frac.len() > 2
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || (money.contains('.') && frac.is_empty())
    {
        return None;
    }
    let yuan: i64 = int.parse().ok()?;
    let mut cents: i64 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    if frac.len() == 1 {
        cents *= 10;
    }
    let fen = yuan.checked_mul(100)?.checked_add(cents)?;
    (fen > 0).then_some(fen)
}

/// Fen as epay shows money: `"12.30"`.
pub fn epay_money(fen: i64) -> String {
    format!("{}.{:02}", fen / 100, fen % 100)
}

/// The meaning of a create request, for "same out_order_no, same body": SHA-256 of the
/// canonical JSON the caller built, hex.
pub fn request_hash(canonical: &str) -> String {
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

/// Longest stored list of allowed return hosts (its comma-joined text).
pub const MAX_RETURN_HOSTS: usize = 20;

/// An allowed return host as an operator writes it: a DNS name or IPv4 address, lowercase
/// after trimming, optionally `*.` before a name with at least two labels (its subdomains);
/// no scheme, port, path or user. `None` when it is not one.
pub fn normalize_return_host(raw: &str) -> Option<String> {
    let host = raw.trim().to_ascii_lowercase();
    let (wildcard, name) = match host.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, host.as_str()),
    };
    if name.is_empty() || name.len() > 253 {
        return None;
    }
    let labels: Vec<&str> = name.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if !labels.iter().all(label_ok) || (wildcard && labels.len() < 2) {
        return None;
    }
    Some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_a_mode_and_a_prefix() {
        let random = "abcdefghijABCDEFGHIJ0123456789xyzEXTRA";
        let key = api_key(KeyMode::Live, random);
        assert_eq!(key, "sk_live_abcdefghijABCDEFGHIJ0123456789xy");
        assert_eq!(key_mode_of(&key), Some(KeyMode::Live));
        assert_eq!(key_prefix(&key), "sk_live_abcd");
        let test = api_key(KeyMode::Test, random);
        assert_eq!(key_mode_of(&test), Some(KeyMode::Test));
        for bad in [
            "",
            "sk_live_",
            "sk_prod_abcdefghijABCDEFGHIJ0123456789xy",
            "sk_live_abcdefghijABCDEFGHIJ0123456789x",
            "sk_live_abcdefghijABCDEFGHIJ0123456789x!",
            "pk_live_abcdefghijABCDEFGHIJ0123456789xy",
        ] {
            assert_eq!(key_mode_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn key_hash_depends_on_secret_and_key() {
        let a = key_hash(b"secret-one", "sk_live_x");
        assert_eq!(a.len(), 64);
        assert_ne!(a, key_hash(b"secret-two", "sk_live_x"));
        assert_ne!(a, key_hash(b"secret-one", "sk_live_y"));
        assert!(same_signature(&a, &key_hash(b"secret-one", "sk_live_x")));
        assert!(!same_signature(&a, &a[..63]));
    }

    #[test]
    fn refs_and_hosts() {
        assert!(valid_ref("ORDER-2026_12.05:1|a"));
        assert!(!valid_ref(""));
        assert!(!valid_ref(&"a".repeat(65)));
        assert!(!valid_ref("a b"));
        assert!(!valid_ref("订单"));
        let hosts = parse_hosts(" Shop.Example.com, *.app.example.org ,");
        assert_eq!(hosts, vec!["shop.example.com", "*.app.example.org"]);
        assert!(return_host_allowed("https", "shop.example.com", &hosts));
        assert!(return_host_allowed("http", "SHOP.example.com", &hosts));
        assert!(return_host_allowed("https", "a.app.example.org", &hosts));
        assert!(!return_host_allowed("https", "app.example.org", &hosts));
        assert!(!return_host_allowed("https", "evilapp.example.org", &hosts));
        assert!(!return_host_allowed(
            "https",
            "shop.example.com.evil.io",
            &hosts
        ));
        assert!(!return_host_allowed(
            "javascript",
            "shop.example.com",
            &hosts
        ));
        assert!(!return_host_allowed("https", "shop.example.com", &[]));
    }

    #[test]
    fn epay_signature_known_answer() {
        // md5("money=1.00&name=test&out_trade_no=20160806151343349&pid=1001&type=alipay" + "key")
        let params = [
            ("pid", "1001"),
            ("type", "alipay"),
            ("out_trade_no", "20160806151343349"),
            ("notify_url", ""),
            ("name", "test"),
            ("money", "1.00"),
            ("sign", "whatever"),
            ("sign_type", "MD5"),
        ];
        let joined = "money=1.00&name=test&out_trade_no=20160806151343349&pid=1001&type=alipay";
        let expected = hex::encode(Md5::digest(format!("{joined}key").as_bytes()));
        assert_eq!(epay_sign(params, "key"), expected);
        // Order of the input does not matter.
        let mut rev = params;
        rev.reverse();
        assert_eq!(epay_sign(rev, "key"), expected);
    }

    #[test]
    fn epay_money_is_integer_fen() {
        assert_eq!(epay_money_fen("12.30"), Some(1230));
        assert_eq!(epay_money_fen("12.3"), Some(1230));
        assert_eq!(epay_money_fen("5"), Some(500));
        assert_eq!(epay_money_fen("0.01"), Some(1));
        for bad in [
            "", "0", "0.00", "-1", "1.001", "1e3", "1.", ".5", " 1", "1,00", "abc",
        ] {
            assert_eq!(epay_money_fen(bad), None, "{bad}");
        }
        assert_eq!(epay_money_fen("999999999999.99"), Some(99_999_999_999_999));
        assert_eq!(epay_money_fen("9999999999999"), None);
        assert_eq!(epay_money(1230), "12.30");
        assert_eq!(epay_money(1), "0.01");
    }

    #[test]
    fn return_signature_binds_every_field() {
        let s = return_signature(b"whsec", "FP1", "A1", "paid");
        assert_ne!(s, return_signature(b"whsec", "FP1", "A1", "pending"));
        assert_ne!(s, return_signature(b"whsec", "FP1", "A2", "paid"));
        assert_ne!(s, return_signature(b"other", "FP1", "A1", "paid"));
    }

    #[test]
    fn return_hosts_are_bare_names() {
        assert_eq!(
            normalize_return_host(" Shop.Example.COM "),
            Some("shop.example.com".into())
        );
        assert_eq!(
            normalize_return_host("*.example.com"),
            Some("*.example.com".into())
        );
        assert_eq!(normalize_return_host("127.0.0.1"), Some("127.0.0.1".into()));
        assert_eq!(normalize_return_host("localhost"), Some("localhost".into()));
        for bad in [
            "",
            "*.",
            "*.com",
            "https://example.com",
            "example.com/x",
            "example.com:8080",
            "user@example.com",
            "exa mple.com",
            "-a.example.com",
            "a..b",
            "*.*.example.com",
            "example.com,",
            "ex_ample.com",
        ] {
            assert_eq!(normalize_return_host(bad), None, "{bad}");
        }
        assert_eq!(normalize_return_host(&"a".repeat(64)), None);
    }
}
