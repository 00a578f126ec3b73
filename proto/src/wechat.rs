//! WeChat Pay API v3: request signing (`Authorization`), response and
//! notification verification, AEAD_AES_256_GCM, client pay-signs, and the
//! JSON shapes of notifications, transactions, certificates and errors.

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{Aead, AeadCore, KeyInit, Payload};
use aes_gcm::{Aes128Gcm, Aes256Gcm, AesGcm};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::distributions::Alphanumeric;
use rand::Rng;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{Certificate, ProtoError, RsaPrivateKey, RsaPublicKey};

/// Authorization scheme and `Wechatpay-Signature-Type` value.
pub const SIGNATURE_TYPE: &str = "WECHATPAY2-SHA256-RSA2048";

/// AEAD algorithm name used in notifications and `/v3/certificates`.
pub const AEAD_ALGORITHM: &str = "AEAD_AES_256_GCM";

/// Maximum accepted clock skew: a message is rejected when
/// `abs(now - timestamp) >= MAX_CLOCK_SKEW_SECS` (wechatpay-go rule).
pub const MAX_CLOCK_SKEW_SECS: i64 = 300;

/// Prefix of WeChat Pay public-key IDs sent in `Wechatpay-Serial`.
pub const PUBLIC_KEY_ID_PREFIX: &str = "PUB_KEY_ID_";

/// Prefix of deliberately invalid "signature probe" values.
pub const SIGNATURE_PROBE_PREFIX: &str = "WECHATPAY/SIGNTEST/";

type Aes192Gcm = AesGcm<aes_gcm::aes::Aes192, U12>;

/// The request signing message: method, canonical URL (path + query),
/// timestamp, nonce and body, each followed by `\n` (also the last one, so an
/// empty body ends in `\n\n`).
pub fn request_message(
    method: &str,
    canonical_url: &str,
    timestamp: i64,
    nonce: &str,
    body: &str,
) -> String {
    format!("{method}\n{canonical_url}\n{timestamp}\n{nonce}\n{body}\n")
}

/// The response/notification verification message `ts\nnonce\nbody\n`, over
/// the raw body bytes.
pub fn response_message(timestamp: &str, nonce: &str, body: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(timestamp.len() + nonce.len() + body.len() + 3);
    msg.extend_from_slice(timestamp.as_bytes());
    msg.push(b'\n');
    msg.extend_from_slice(nonce.as_bytes());
    msg.push(b'\n');
    msg.extend_from_slice(body);
    msg.push(b'\n');
    msg
}

/// Formats an `Authorization` header value from an already computed signature,
/// in wechatpay-go's parameter order.
pub fn authorization_header(
    mchid: &str,
    serial_no: &str,
    timestamp: i64,
    nonce: &str,
    signature: &str,
) -> String {
    format!(
        "{SIGNATURE_TYPE} mchid=\"{mchid}\",nonce_str=\"{nonce}\",timestamp=\"{timestamp}\",serial_no=\"{serial_no}\",signature=\"{signature}\""
    )
}

/// Signs a request and returns the full `Authorization` header value.
#[allow(clippy::too_many_arguments)]
pub fn authorization(
    mchid: &str,
    serial_no: &str,
    key: &RsaPrivateKey,
    method: &str,
    canonical_url: &str,
    timestamp: i64,
    nonce: &str,
    body: &str,
) -> Result<String, ProtoError> {
    let message = request_message(method, canonical_url, timestamp, nonce, body);
    let signature = key.sign_sha256_base64(message.as_bytes())?;
    Ok(authorization_header(
        mchid, serial_no, timestamp, nonce, &signature,
    ))
}

/// The parameters of a parsed `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationParams {
    /// Merchant ID.
    pub mchid: String,
    /// Request nonce.
    pub nonce_str: String,
    /// Request time, Unix seconds.
    pub timestamp: i64,
    /// Merchant API certificate serial.
    pub serial_no: String,
    /// Base64 signature.
    pub signature: String,
}

/// Parses an `Authorization` header: checks the scheme, accepts the five
/// parameters in any order with double-quoted values, ignores unknown
/// parameters, and rejects missing, empty or duplicated ones.
pub fn parse_authorization(header: &str) -> Result<AuthorizationParams, ProtoError> {
    let rest = header
        .trim()
        .strip_prefix(SIGNATURE_TYPE)
        .ok_or_else(|| malformed("unsupported authorization scheme"))?;
    if !rest.starts_with([' ', '\t']) {
        return Err(malformed("unsupported authorization scheme"));
    }
    let mut fields: [Option<String>; 5] = Default::default();
    const NAMES: [&str; 5] = ["mchid", "nonce_str", "timestamp", "serial_no", "signature"];
    for (name, value) in auth_params(rest)? {
        let Some(slot) = NAMES.iter().position(|n| *n == name) else {
            continue;
        };
        if fields[slot].is_some() {
            return Err(malformed(format!("duplicate parameter {name}")));
        }
        if value.is_empty() {
            return Err(malformed(format!("empty parameter {name}")));
        }
        fields[slot] = Some(value.to_string());
    }
    let [mchid, nonce_str, timestamp, serial_no, signature] = fields;
    let need = |v: Option<String>, name: &str| {
        v.ok_or_else(|| malformed(format!("missing parameter {name}")))
    };
    let timestamp = need(timestamp, "timestamp")?;
    Ok(AuthorizationParams {
        mchid: need(mchid, "mchid")?,
        nonce_str: need(nonce_str, "nonce_str")?,
        timestamp: timestamp
            .parse()
            .map_err(|_| malformed("timestamp is not an integer"))?,
        serial_no: need(serial_no, "serial_no")?,
        signature: need(signature, "signature")?,
    })
}

/// Splits `k="v",k="v"` (whitespace allowed around separators).
fn auth_params(mut rest: &str) -> Result<Vec<(&str, &str)>, ProtoError> {
    let mut out = Vec::new();
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return Ok(out);
        }
        let (name, after) = rest
            .split_once('=')
            .ok_or_else(|| malformed("parameter without '='"))?;
        let quoted = after
            .trim_start()
            .strip_prefix('"')
            .ok_or_else(|| malformed("parameter value must be quoted"))?;
        let (value, after) = quoted
            .split_once('"')
            .ok_or_else(|| malformed("unterminated quoted value"))?;
        out.push((name.trim(), value));
        rest = after.trim_start();
        if !rest.is_empty() {
            rest = rest
                .strip_prefix(',')
                .ok_or_else(|| malformed("parameters must be separated by ','"))?;
        }
    }
}

/// Verifies a request's `Authorization` header against the merchant's public
/// key (emulator side), including the clock-skew rule. Returns the parsed
/// parameters so the caller can check `mchid` and `serial_no`.
pub fn verify_authorization(
    key: &RsaPublicKey,
    header: &str,
    method: &str,
    canonical_url: &str,
    body: &str,
    now: i64,
) -> Result<AuthorizationParams, ProtoError> {
    let params = parse_authorization(header)?;
    check_skew(params.timestamp, now)?;
    // As in `verify_signed_message`: a newline in the nonce could shift the body.
    if params.nonce_str.contains('\n') {
        return Err(malformed("nonce_str contains a newline"));
    }
    let message = request_message(
        method,
        canonical_url,
        params.timestamp,
        &params.nonce_str,
        body,
    );
    if !key.verify_sha256_base64(message.as_bytes(), &params.signature) {
        return Err(ProtoError::BadSignature);
    }
    Ok(params)
}

/// A random nonce of `len` characters from `[0-9A-Za-z]`.
pub fn nonce_str(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// Encrypts with AES-GCM and returns base64(ciphertext || 16-byte tag).
/// The key may be 16, 24 or 32 bytes (the APIv3 key is 32 ASCII bytes; Go's
/// SDK picks AES-128/192/256 by length). The nonce must be 12 bytes.
pub fn aead_encrypt(
    key: &[u8],
    nonce: &str,
    associated_data: &str,
    plaintext: &[u8],
) -> Result<String, ProtoError> {
    let payload = Payload {
        msg: plaintext,
        aad: associated_data.as_bytes(),
    };
    let sealed = aead_apply(key, nonce, payload, Direction::Seal)?;
    Ok(STANDARD.encode(sealed))
}

/// Decrypts base64(ciphertext || tag) produced by [`aead_encrypt`] or WeChat.
pub fn aead_decrypt(
    key: &[u8],
    nonce: &str,
    associated_data: &str,
    ciphertext_b64: &str,
) -> Result<Vec<u8>, ProtoError> {
    let sealed = STANDARD
        .decode(ciphertext_b64.as_bytes())
        .map_err(|_| malformed("ciphertext is not valid base64"))?;
    let payload = Payload {
        msg: &sealed,
        aad: associated_data.as_bytes(),
    };
    aead_apply(key, nonce, payload, Direction::Open)
}

#[derive(Clone, Copy)]
enum Direction {
    Seal,
    Open,
}

fn aead_apply(
    key: &[u8],
    nonce: &str,
    payload: Payload<'_, '_>,
    direction: Direction,
) -> Result<Vec<u8>, ProtoError> {
    let nonce: [u8; 12] = nonce
        .as_bytes()
        .try_into()
        .map_err(|_| malformed("AEAD nonce must be 12 bytes"))?;
    match key.len() {
        16 => aead_with::<Aes128Gcm>(key, nonce, payload, direction),
        24 => aead_with::<Aes192Gcm>(key, nonce, payload, direction),
        32 => aead_with::<Aes256Gcm>(key, nonce, payload, direction),
        n => Err(ProtoError::InvalidKey(format!(
            "AES-GCM key must be 16, 24 or 32 bytes, got {n}"
        ))),
    }
}

fn aead_with<C: Aead + KeyInit + AeadCore<NonceSize = U12>>(
    key: &[u8],
    nonce: [u8; 12],
    payload: Payload<'_, '_>,
    direction: Direction,
) -> Result<Vec<u8>, ProtoError> {
    let cipher = C::new_from_slice(key).map_err(|e| ProtoError::InvalidKey(e.to_string()))?;
    let nonce = aes_gcm::aead::Nonce::<C>::from(nonce);
    match direction {
        Direction::Seal => cipher
            .encrypt(&nonce, payload)
            .map_err(|_| malformed("AES-GCM encryption failed")),
        Direction::Open => cipher
            .decrypt(&nonce, payload)
            .map_err(|_| ProtoError::Decrypt),
    }
}

/// JSAPI / mini-program `paySign`: signs `appid\ntimestamp\nnonce\npackage\n`
/// where `package` is `prepay_id=...`.
pub fn jsapi_pay_sign(
    appid: &str,
    timestamp: &str,
    nonce: &str,
    package: &str,
    key: &RsaPrivateKey,
) -> Result<String, ProtoError> {
    key.sign_sha256_base64(format!("{appid}\n{timestamp}\n{nonce}\n{package}\n").as_bytes())
}

/// APP pay `sign`: signs `appid\ntimestamp\nnonce\nprepay_id\n`.
pub fn app_pay_sign(
    appid: &str,
    timestamp: &str,
    nonce: &str,
    prepay_id: &str,
    key: &RsaPrivateKey,
) -> Result<String, ProtoError> {
    key.sign_sha256_base64(format!("{appid}\n{timestamp}\n{nonce}\n{prepay_id}\n").as_bytes())
}

/// Signs a response or notification (emulator side): the value for the
/// `Wechatpay-Signature` header.
pub fn sign_response(
    key: &RsaPrivateKey,
    timestamp: &str,
    nonce: &str,
    body: &[u8],
) -> Result<String, ProtoError> {
    key.sign_sha256_base64(&response_message(timestamp, nonce, body))
}

/// Verifies a WeChat response or notification from its `Wechatpay-Timestamp`,
/// `Wechatpay-Nonce` and `Wechatpay-Signature` headers and the raw body.
/// Rejects when `abs(now - timestamp) >= 300` ([`ProtoError::TimestampSkew`])
/// or the signature does not verify ([`ProtoError::BadSignature`], which
/// includes `WECHATPAY/SIGNTEST/` probes).
pub fn verify_signed_message(
    key: &RsaPublicKey,
    timestamp: &str,
    nonce: &str,
    body: &[u8],
    signature_b64: &str,
    now: i64,
) -> Result<(), ProtoError> {
    let ts: i64 = timestamp
        .parse()
        .map_err(|_| malformed("Wechatpay-Timestamp is not an integer"))?;
    check_skew(ts, now)?;
    // The signed message is `ts\nnonce\nbody\n`: a nonce holding a newline could take
    // the start of the body with it and leave the message, and the signature, unchanged.
    if nonce.contains('\n') {
        return Err(malformed("Wechatpay-Nonce contains a newline"));
    }
    if key.verify_sha256_base64(&response_message(timestamp, nonce, body), signature_b64) {
        Ok(())
    } else {
        Err(ProtoError::BadSignature)
    }
}

fn check_skew(timestamp: i64, now: i64) -> Result<(), ProtoError> {
    if now.abs_diff(timestamp) >= MAX_CLOCK_SKEW_SECS.unsigned_abs() {
        return Err(ProtoError::TimestampSkew { timestamp, now });
    }
    Ok(())
}

/// True when a `Wechatpay-Serial` value names a WeChat Pay public key
/// (public-key mode) rather than a platform certificate.
pub fn is_public_key_id(serial: &str) -> bool {
    serial.starts_with(PUBLIC_KEY_ID_PREFIX)
}

/// True when a `Wechatpay-Signature` value is a deliberate signature probe.
/// Informational only: probes already fail verification.
pub fn is_signature_probe(signature: &str) -> bool {
    signature.starts_with(SIGNATURE_PROBE_PREFIX)
}

fn malformed(msg: impl Into<String>) -> ProtoError {
    ProtoError::Malformed(msg.into())
}

/// A notification POSTed to the merchant's `notify_url`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationEnvelope {
    /// Notification ID (a UUID in real traffic).
    pub id: String,
    /// RFC 3339 creation time, e.g. `2015-05-20T13:29:35+08:00`.
    pub create_time: String,
    /// Always `encrypt-resource`.
    pub resource_type: String,
    /// e.g. `TRANSACTION.SUCCESS`, `REFUND.SUCCESS`.
    pub event_type: String,
    /// Human-readable summary, e.g. `支付成功`.
    pub summary: String,
    /// The encrypted payload.
    pub resource: EncryptedResource,
}

impl NotificationEnvelope {
    /// Decrypts the resource and deserializes it (e.g. into [`Transaction`]).
    pub fn decrypt_resource<T: DeserializeOwned>(&self, apiv3_key: &[u8]) -> Result<T, ProtoError> {
        let plain = self.resource.decrypt(apiv3_key)?;
        serde_json::from_slice(&plain).map_err(|e| malformed(format!("resource JSON: {e}")))
    }
}

/// The `resource` member of a notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedResource {
    /// `transaction`, `refund`, ...
    #[serde(default)]
    pub original_type: String,
    /// Always `AEAD_AES_256_GCM`.
    pub algorithm: String,
    /// base64(ciphertext || tag).
    pub ciphertext: String,
    /// AAD, e.g. `transaction`; may be empty in doc samples.
    #[serde(default)]
    pub associated_data: String,
    /// 12-character nonce.
    pub nonce: String,
}

impl EncryptedResource {
    /// Encrypts `plaintext` into a resource (emulator side).
    pub fn seal(
        apiv3_key: &[u8],
        original_type: &str,
        associated_data: &str,
        nonce: &str,
        plaintext: &[u8],
    ) -> Result<Self, ProtoError> {
        Ok(Self {
            original_type: original_type.to_string(),
            algorithm: AEAD_ALGORITHM.to_string(),
            ciphertext: aead_encrypt(apiv3_key, nonce, associated_data, plaintext)?,
            associated_data: associated_data.to_string(),
            nonce: nonce.to_string(),
        })
    }

    /// Decrypts the ciphertext with the APIv3 key.
    pub fn decrypt(&self, apiv3_key: &[u8]) -> Result<Vec<u8>, ProtoError> {
        check_algorithm(&self.algorithm)?;
        aead_decrypt(
            apiv3_key,
            &self.nonce,
            &self.associated_data,
            &self.ciphertext,
        )
    }
}

fn check_algorithm(algorithm: &str) -> Result<(), ProtoError> {
    if algorithm == AEAD_ALGORITHM {
        Ok(())
    } else {
        Err(malformed(format!("unsupported algorithm {algorithm}")))
    }
}

/// A payment as returned by query endpoints and inside `TRANSACTION.*`
/// notifications. Fields WeChat omits for some states are optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    /// App ID.
    pub appid: String,
    /// Merchant ID.
    pub mchid: String,
    /// Merchant order number.
    pub out_trade_no: String,
    /// WeChat order number (absent before payment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
    /// `JSAPI`, `NATIVE`, `APP`, `MICROPAY`, `MWEB`, `FACEPAY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trade_type: Option<String>,
    /// `SUCCESS`, `REFUND`, `NOTPAY`, `CLOSED`, `REVOKED`, `USERPAYING`, `PAYERROR`.
    pub trade_state: String,
    /// Description of the state.
    #[serde(default)]
    pub trade_state_desc: String,
    /// Paying bank, e.g. `OTHERS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bank_type: Option<String>,
    /// Merchant data echoed back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attach: Option<String>,
    /// RFC 3339 payment time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_time: Option<String>,
    /// Payer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer: Option<Payer>,
    /// Amounts in fen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<TransactionAmount>,
}

/// The paying user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payer {
    /// User's openid under the appid (`payer` may be `{}` for unpaid orders).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openid: Option<String>,
}

/// Transaction amounts, integer fen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionAmount {
    /// Order total in fen.
    pub total: i64,
    /// Amount the payer actually paid, in fen (after payment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer_total: Option<i64>,
    /// Currency, `CNY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// Payer currency, `CNY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer_currency: Option<String>,
}

/// A refund as carried (decrypted) by `REFUND.SUCCESS` / `REFUND.ABNORMAL` /
/// `REFUND.CLOSED` notifications (`original_type` and `associated_data` `refund`).
/// Note the state member is `refund_status` here, while the refund API answers
/// spell it `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundResource {
    /// Merchant ID.
    pub mchid: String,
    /// WeChat order number of the refunded payment.
    #[serde(default)]
    pub transaction_id: String,
    /// Merchant order number.
    pub out_trade_no: String,
    /// WeChat refund number.
    pub refund_id: String,
    /// Merchant refund number.
    pub out_refund_no: String,
    /// `SUCCESS`, `CLOSED`, `PROCESSING` or `ABNORMAL`.
    pub refund_status: String,
    /// RFC 3339 time the money went back (success only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_time: Option<String>,
    /// Where the money went, e.g. `支付用户零钱`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_received_account: Option<String>,
    /// Amounts in fen.
    pub amount: RefundResourceAmount,
}

/// Amounts of a [`RefundResource`], integer fen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundResourceAmount {
    /// Order total.
    pub total: i64,
    /// This refund.
    pub refund: i64,
    /// What the payer paid.
    #[serde(default)]
    pub payer_total: i64,
    /// What the payer gets back.
    #[serde(default)]
    pub payer_refund: i64,
}

/// Body of `GET /v3/certificates`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateList {
    /// Platform certificates.
    pub data: Vec<CertificateEntry>,
}

/// One platform certificate in [`CertificateList`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateEntry {
    /// Certificate serial, uppercase hex.
    pub serial_no: String,
    /// RFC 3339 start of validity.
    pub effective_time: String,
    /// RFC 3339 end of validity.
    pub expire_time: String,
    /// The PEM certificate, encrypted with the APIv3 key.
    pub encrypt_certificate: EncryptedCertificate,
}

impl CertificateEntry {
    /// Decrypts and parses the certificate. The caller should check that its
    /// serial equals `serial_no`.
    pub fn decrypt_certificate(&self, apiv3_key: &[u8]) -> Result<Certificate, ProtoError> {
        let pem = self.encrypt_certificate.decrypt(apiv3_key)?;
        let pem = String::from_utf8(pem).map_err(|_| malformed("certificate is not UTF-8"))?;
        Certificate::from_pem(&pem)
    }
}

/// An encrypted PEM certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedCertificate {
    /// Always `AEAD_AES_256_GCM`.
    pub algorithm: String,
    /// 12-character nonce.
    pub nonce: String,
    /// AAD, `certificate`.
    pub associated_data: String,
    /// base64(ciphertext || tag).
    pub ciphertext: String,
}

impl EncryptedCertificate {
    /// Encrypts a PEM certificate (emulator side), with AAD `certificate`.
    pub fn seal(apiv3_key: &[u8], nonce: &str, pem: &str) -> Result<Self, ProtoError> {
        Ok(Self {
            algorithm: AEAD_ALGORITHM.to_string(),
            nonce: nonce.to_string(),
            associated_data: "certificate".to_string(),
            ciphertext: aead_encrypt(apiv3_key, nonce, "certificate", pem.as_bytes())?,
        })
    }

    /// Decrypts to the PEM text bytes.
    pub fn decrypt(&self, apiv3_key: &[u8]) -> Result<Vec<u8>, ProtoError> {
        check_algorithm(&self.algorithm)?;
        aead_decrypt(
            apiv3_key,
            &self.nonce,
            &self.associated_data,
            &self.ciphertext,
        )
    }
}

/// Body of a non-2xx WeChat Pay response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiErrorBody {
    /// e.g. `PARAM_ERROR`, `SIGN_ERROR`, `ORDER_NOT_EXIST`.
    pub code: String,
    /// Human-readable message.
    pub message: String,
    /// Optional structured detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
}

/// How a WeChat Pay merchant checks WeChat's signatures: the emulator's merchant
/// (`EMULATOR_WECHAT_MODE`, else the development key set's `wechat_key_mode` file), and
/// our own client when it runs on the development keys.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WechatKeyMode {
    /// Only the WeChat Pay public key (`PUB_KEY_ID_...`), as every merchant registered
    /// since late 2024: every answer and notification is signed with it, and there are
    /// no platform certificates (`/v3/certificates` is 404 `RESOURCE_NOT_EXISTS`).
    #[default]
    PublicKey,
    /// Platform certificates (older merchants): answers follow the request's
    /// `Wechatpay-Serial` (none or the certificate serial: the certificate; the public key
    /// id, during the switch to public keys: the public key).
    Certificate,
}

impl WechatKeyMode {
    /// The setting's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            WechatKeyMode::PublicKey => "public_key",
            WechatKeyMode::Certificate => "certificate",
        }
    }
}

impl std::str::FromStr for WechatKeyMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "public_key" => Ok(WechatKeyMode::PublicKey),
            "certificate" => Ok(WechatKeyMode::Certificate),
            other => Err(format!("expected public_key or certificate, got {other:?}")),
        }
    }
}

pub mod complaints;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
