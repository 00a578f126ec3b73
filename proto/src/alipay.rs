//! Alipay OpenAPI v2 with RSA2 (SHA256withRSA): signing strings, request and
//! notification signatures, sync-response extraction and signing,
//! certificate-mode SNs, and yuan/fen conversion.

use std::collections::BTreeMap;

use md5::{Digest, Md5};
use x509_cert::der::asn1::Any;
use x509_cert::der::oid::ObjectIdentifier;
use x509_cert::der::{Decode, Encode, Tag, Tagged};
use x509_cert::name::Name;

use crate::{pem, ProtoError, RsaPrivateKey, RsaPublicKey};

/// Builds the signing string: pairs sorted by key (byte order), pairs with an
/// empty key or value dropped, keys in `exclude` dropped, joined as
/// `k=v&k=v` with raw (not url-encoded) values.
pub fn sign_content<'a>(
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
    exclude: &[&str],
) -> String {
    let mut pairs: Vec<(&str, &str)> = params
        .into_iter()
        .filter(|(k, v)| !k.is_empty() && !v.is_empty() && !exclude.contains(k))
        .collect();
    pairs.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut out = String::new();
    for (i, (k, v)) in pairs.into_iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

fn map_content(params: &BTreeMap<String, String>, exclude: &[&str]) -> String {
    sign_content(
        params.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        exclude,
    )
}

/// Signs request parameters (RSA2). The content excludes only `sign`, so
/// `sign_type` IS signed. Returns the base64 value for the `sign` parameter.
pub fn sign_params(
    params: &BTreeMap<String, String>,
    key: &RsaPrivateKey,
) -> Result<String, ProtoError> {
    key.sign_sha256_base64(map_content(params, &["sign"]).as_bytes())
}

/// Verifies a request's `sign` parameter over the content excluding only
/// `sign` (emulator side). False when `sign` is missing.
pub fn verify_request_params(params: &BTreeMap<String, String>, key: &RsaPublicKey) -> bool {
    verify_map(params, key, &["sign"])
}

/// Verifies an async trade notification (rsaCheckV1: `sign` and `sign_type`
/// both excluded). `params` must already be url-decoded.
pub fn verify_notification(params: &BTreeMap<String, String>, key: &RsaPublicKey) -> bool {
    verify_map(params, key, &["sign", "sign_type"])
}

/// Signs an async trade notification with the V1 string (excludes `sign` and
/// `sign_type`), as Alipay does for `notify_url` posts.
pub fn sign_notification(
    params: &BTreeMap<String, String>,
    key: &RsaPrivateKey,
) -> Result<String, ProtoError> {
    key.sign_sha256_base64(map_content(params, &["sign", "sign_type"]).as_bytes())
}

fn verify_map(params: &BTreeMap<String, String>, key: &RsaPublicKey, exclude: &[&str]) -> bool {
    match params.get("sign") {
        Some(sign) => key.verify_sha256_base64(map_content(params, exclude).as_bytes(), sign),
        None => false,
    }
}

/// Response node name for a method: `alipay.trade.precreate` →
/// `alipay_trade_precreate_response`.
pub fn response_node(method: &str) -> String {
    format!("{}_response", method.replace('.', "_"))
}

/// Returns the raw text of the top-level `node` member of a sync response
/// body, exactly as received (no re-serialisation). For an object that is the
/// `{...}` text; for a string (AES-encrypted payload) the text between the
/// quotes. Errors when the node is absent or appears more than once at the
/// top level (a forged duplicate must not be accepted).
pub fn extract_response_content<'a>(body: &'a str, node: &str) -> Result<&'a str, ProtoError> {
    let members = json_scan::top_level_members(body)?;
    find_member(&members, node)?
        .map(content_text)
        .ok_or_else(|| malformed(format!("response node {node} not found")))
}

/// Reads the top-level `sign` of a sync response body.
pub fn response_sign(body: &str) -> Result<String, ProtoError> {
    let members = json_scan::top_level_members(body)?;
    sign_member(&members)
}

/// Reads the top-level `alipay_cert_sn` of a sync response (certificate mode);
/// `None` when absent.
pub fn response_cert_sn(body: &str) -> Result<Option<String>, ProtoError> {
    let members = json_scan::top_level_members(body)?;
    find_member(&members, "alipay_cert_sn")?
        .map(|raw| {
            serde_json::from_str::<String>(raw)
                .map_err(|_| malformed("alipay_cert_sn is not a JSON string"))
        })
        .transpose()
}

/// Verifies a sync response: extracts the method's node (or `error_response`
/// when the method node is absent), reads the top-level `sign` and checks the
/// RSA2 signature over the raw node text. Returns that text.
pub fn verify_response<'a>(
    body: &'a str,
    method: &str,
    key: &RsaPublicKey,
) -> Result<&'a str, ProtoError> {
    let members = json_scan::top_level_members(body)?;
    let node = response_node(method);
    let raw = match find_member(&members, &node)? {
        Some(raw) => raw,
        None => find_member(&members, "error_response")?
            .ok_or_else(|| malformed(format!("response node {node} not found")))?,
    };
    let content = content_text(raw);
    let sign = sign_member(&members)?;
    if key.verify_sha256_base64(content.as_bytes(), &sign) {
        Ok(content)
    } else {
        Err(ProtoError::BadSignature)
    }
}

/// Builds a signed sync response body
/// `{"<node>":<content_json>,"alipay_cert_sn":"..","sign":".."}` (the
/// `alipay_cert_sn` member only when `cert_sn` is given), compact, in exactly
/// that member order. `content_json` is embedded and signed verbatim.
pub fn build_signed_response(
    node: &str,
    content_json: &str,
    cert_sn: Option<&str>,
    key: &RsaPrivateKey,
) -> Result<String, ProtoError> {
    serde_json::from_str::<serde::de::IgnoredAny>(content_json)
        .map_err(|e| malformed(format!("response content is not JSON: {e}")))?;
    let sign = key.sign_sha256_base64(content_json.as_bytes())?;
    let mut out = format!("{{{}:{content_json}", json_string(node)?);
    if let Some(sn) = cert_sn {
        out.push_str(&format!(",\"alipay_cert_sn\":{}", json_string(sn)?));
    }
    out.push_str(&format!(",\"sign\":{}}}", json_string(&sign)?));
    Ok(out)
}

fn json_string(s: &str) -> Result<String, ProtoError> {
    serde_json::to_string(s).map_err(|e| malformed(e.to_string()))
}

fn find_member<'a>(
    members: &[json_scan::Member<'a>],
    name: &str,
) -> Result<Option<&'a str>, ProtoError> {
    let mut found = members.iter().filter(|m| m.key == name);
    let first = found.next().map(|m| m.value);
    if found.next().is_some() {
        return Err(malformed(format!("duplicate response node {name}")));
    }
    Ok(first)
}

/// Strips the quotes of a string value; objects are returned as they are.
fn content_text(raw: &str) -> &str {
    raw.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(raw)
}

fn sign_member(members: &[json_scan::Member<'_>]) -> Result<String, ProtoError> {
    let raw = find_member(members, "sign")?.ok_or_else(|| malformed("response has no sign"))?;
    // Decoding the literal undoes JSON escapes such as `\/`.
    serde_json::from_str::<String>(raw).map_err(|_| malformed("sign is not a JSON string"))
}

fn malformed(msg: impl Into<String>) -> ProtoError {
    ProtoError::Malformed(msg.into())
}

/// A tiny scanner over the top level of a JSON object that reports raw member
/// spans; signatures cover the bytes as received, so nothing is re-serialised.
mod json_scan {
    use super::malformed;
    use crate::ProtoError;

    /// One top-level member: its key (as written, without quotes) and raw value.
    pub(super) struct Member<'a> {
        pub(super) key: &'a str,
        pub(super) value: &'a str,
    }

    struct Scanner<'a> {
        text: &'a str,
        pos: usize,
    }

    /// Lists the members of the top-level object in `text`.
    pub(super) fn top_level_members(text: &str) -> Result<Vec<Member<'_>>, ProtoError> {
        let mut s = Scanner { text, pos: 0 };
        s.skip_ws();
        s.expect(b'{')?;
        let mut members = Vec::new();
        s.skip_ws();
        if s.peek() == Some(b'}') {
            s.pos += 1;
        } else {
            loop {
                members.push(s.member()?);
                s.skip_ws();
                match s.next() {
                    Some(b',') => continue,
                    Some(b'}') => break,
                    _ => return Err(malformed("expected ',' or '}' in response")),
                }
            }
        }
        s.skip_ws();
        if s.pos != text.len() {
            return Err(malformed("trailing data after response object"));
        }
        Ok(members)
    }

    impl<'a> Scanner<'a> {
        fn peek(&self) -> Option<u8> {
            self.text.as_bytes().get(self.pos).copied()
        }

        fn next(&mut self) -> Option<u8> {
            let b = self.peek();
            self.pos += usize::from(b.is_some());
            b
        }

        fn skip_ws(&mut self) {
            while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
                self.pos += 1;
            }
        }

        fn expect(&mut self, want: u8) -> Result<(), ProtoError> {
            if self.next() == Some(want) {
                Ok(())
            } else {
                Err(malformed(format!(
                    "expected '{}' in response",
                    want as char
                )))
            }
        }

        fn member(&mut self) -> Result<Member<'a>, ProtoError> {
            self.skip_ws();
            let key = self.string()?;
            let key = &key[1..key.len() - 1];
            self.skip_ws();
            self.expect(b':')?;
            self.skip_ws();
            let value = self.value()?;
            Ok(Member { key, value })
        }

        /// A string literal including its quotes.
        fn string(&mut self) -> Result<&'a str, ProtoError> {
            let start = self.pos;
            self.expect(b'"')?;
            loop {
                match self.next() {
                    Some(b'"') => return Ok(&self.text[start..self.pos]),
                    Some(b'\\') => {
                        self.next();
                    }
                    Some(_) => {}
                    None => return Err(malformed("unterminated string in response")),
                }
            }
        }

        fn value(&mut self) -> Result<&'a str, ProtoError> {
            match self.peek() {
                Some(b'"') => self.string(),
                Some(b'{' | b'[') => self.nested(),
                Some(_) => Ok(self.scalar()),
                None => Err(malformed("missing value in response")),
            }
        }

        /// An object or array, matched by depth while skipping strings.
        fn nested(&mut self) -> Result<&'a str, ProtoError> {
            let start = self.pos;
            let mut depth = 0usize;
            loop {
                match self.peek() {
                    Some(b'"') => {
                        self.string()?;
                    }
                    Some(b'{' | b'[') => {
                        depth += 1;
                        self.pos += 1;
                    }
                    Some(b'}' | b']') => {
                        depth = depth.saturating_sub(1);
                        self.pos += 1;
                        if depth == 0 {
                            return Ok(&self.text[start..self.pos]);
                        }
                    }
                    Some(_) => self.pos += 1,
                    None => return Err(malformed("unbalanced braces in response")),
                }
            }
        }

        fn scalar(&mut self) -> &'a str {
            let start = self.pos;
            while !matches!(
                self.peek(),
                None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n')
            ) {
                self.pos += 1;
            }
            &self.text[start..self.pos]
        }
    }
}

/// Certificate SN for certificate mode (`app_cert_sn`, `alipay_cert_sn`): the
/// lowercase hex MD5 of the issuer DN (most specific RDN first, e.g.
/// `CN=..,OU=..,O=..,C=..`) followed by the decimal serial. Uses the first
/// certificate in `cert_pem`.
pub fn cert_sn(cert_pem: &str) -> Result<String, ProtoError> {
    let cert = parse_certs(cert_pem)?
        .into_iter()
        .next()
        .ok_or_else(|| cert_err("no certificate"))?;
    sn_of(&cert)
}

/// `alipay_root_cert_sn`: the SNs of the RSA-signed certificates in the root
/// bundle joined with `_` (SM2 and ECDSA certificates are skipped).
pub fn root_cert_sn(bundle_pem: &str) -> Result<String, ProtoError> {
    let sns = parse_certs(bundle_pem)?
        .iter()
        .filter(|c| is_rsa_signed(c))
        .map(sn_of)
        .collect::<Result<Vec<_>, _>>()?;
    if sns.is_empty() {
        return Err(cert_err("no RSA-signed certificate in bundle"));
    }
    Ok(sns.join("_"))
}

/// What a successful [`verify_chain`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainInfo {
    /// Subject DN of the bundle's root that anchors the chain.
    pub root: String,
    /// Number of certificates between the leaf and the root (0: issued by the root).
    pub intermediates: usize,
    /// End of the leaf certificate's validity.
    pub leaf_not_after: chrono::DateTime<chrono::Utc>,
}

/// Checks that the first certificate in `cert_pem` chains to a certificate of
/// the root bundle `bundle_pem`: each link's issuer name matches and its RSA
/// signature (SHA-1/256/384/512) verifies, through the other certificates in
/// `cert_pem` as intermediates (Alipay ships `alipayCertPublicKey_RSA2.crt`
/// with its intermediate), and the leaf is valid at `now`.
pub fn verify_chain(
    cert_pem: &str,
    bundle_pem: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<ChainInfo, ProtoError> {
    let mut chain = parse_certs(cert_pem)?.into_iter();
    let leaf = chain.next().ok_or_else(|| cert_err("no certificate"))?;
    let intermediates: Vec<_> = chain.collect();
    let roots = parse_certs(bundle_pem)?;
    if roots.is_empty() {
        return Err(cert_err("no certificate in the root bundle"));
    }
    let leaf_not_after = cert_time(leaf.tbs_certificate.validity.not_after)?;
    let leaf_not_before = cert_time(leaf.tbs_certificate.validity.not_before)?;
    if now > leaf_not_after {
        return Err(cert_err(format!("certificate expired at {leaf_not_after}")));
    }
    if now < leaf_not_before {
        return Err(cert_err(format!(
            "certificate not valid before {leaf_not_before}"
        )));
    }
    let mut current = leaf;
    for depth in 0..=intermediates.len() {
        if let Some(root) = roots.iter().find(|r| signed_by(&current, r)) {
            return Ok(ChainInfo {
                root: issuer_dn(&root.tbs_certificate.subject)?,
                intermediates: depth,
                leaf_not_after,
            });
        }
        match intermediates.iter().find(|c| signed_by(&current, c)) {
            Some(next) => current = next.clone(),
            None => break,
        }
    }
    Err(cert_err(format!(
        "not issued by any certificate of the root bundle (issuer {})",
        issuer_dn(&current.tbs_certificate.issuer)?
    )))
}

fn cert_time(time: x509_cert::time::Time) -> Result<chrono::DateTime<chrono::Utc>, ProtoError> {
    let secs =
        i64::try_from(time.to_unix_duration().as_secs()).map_err(|e| cert_err(e.to_string()))?;
    chrono::DateTime::from_timestamp(secs, 0).ok_or_else(|| cert_err("time out of range"))
}

/// True when `issuer`'s subject is `cert`'s issuer and `issuer`'s RSA key
/// verifies `cert`'s signature.
fn signed_by(cert: &x509_cert::Certificate, issuer: &x509_cert::Certificate) -> bool {
    use ring::signature as sig;
    if cert.tbs_certificate.issuer != issuer.tbs_certificate.subject {
        return false;
    }
    let alg: &'static sig::RsaParameters = match cert.signature_algorithm.oid.to_string().as_str() {
        "1.2.840.113549.1.1.5" => &sig::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
        "1.2.840.113549.1.1.11" => &sig::RSA_PKCS1_2048_8192_SHA256,
        "1.2.840.113549.1.1.12" => &sig::RSA_PKCS1_2048_8192_SHA384,
        "1.2.840.113549.1.1.13" => &sig::RSA_PKCS1_2048_8192_SHA512,
        _ => return false,
    };
    let (Ok(spki), Ok(tbs)) = (
        issuer.tbs_certificate.subject_public_key_info.to_der(),
        cert.tbs_certificate.to_der(),
    ) else {
        return false;
    };
    let Ok(key) = RsaPublicKey::from_spki_der(&spki) else {
        return false;
    };
    match cert.signature.as_bytes() {
        Some(signature) => key.verify_with(alg, &tbs, signature),
        None => false,
    }
}

fn cert_err(msg: impl Into<String>) -> ProtoError {
    ProtoError::InvalidCertificate(msg.into())
}

fn parse_certs(text: &str) -> Result<Vec<x509_cert::Certificate>, ProtoError> {
    pem::blocks(text)
        .map_err(cert_err)?
        .into_iter()
        .filter(|b| b.label == "CERTIFICATE")
        .map(|b| x509_cert::Certificate::from_der(&b.der).map_err(|e| cert_err(e.to_string())))
        .collect()
}

fn is_rsa_signed(cert: &x509_cert::Certificate) -> bool {
    // PKCS#1 signature algorithms all live under 1.2.840.113549.1.1.
    cert.signature_algorithm
        .oid
        .to_string()
        .starts_with("1.2.840.113549.1.1.")
}

fn sn_of(cert: &x509_cert::Certificate) -> Result<String, ProtoError> {
    let tbs = &cert.tbs_certificate;
    let input = format!(
        "{}{}",
        issuer_dn(&tbs.issuer)?,
        be_bytes_to_decimal(tbs.serial_number.as_bytes())
    );
    Ok(hex::encode(Md5::digest(input.as_bytes())))
}

/// RFC 2253 rendering (what Java's `getIssuerX500Principal().getName()` gives
/// for these certificates): RDNs reversed, multi-valued RDNs joined by `+`.
fn issuer_dn(name: &Name) -> Result<String, ProtoError> {
    let mut rdns = Vec::with_capacity(name.0.len());
    for rdn in name.0.iter().rev() {
        let atvs = rdn
            .0
            .iter()
            .map(|atv| attribute_text(&atv.oid, &atv.value))
            .collect::<Result<Vec<_>, _>>()?;
        rdns.push(atvs.join("+"));
    }
    Ok(rdns.join(","))
}

fn attribute_text(oid: &ObjectIdentifier, value: &Any) -> Result<String, ProtoError> {
    match (short_name(oid), any_text(value)) {
        (Some(key), Some(text)) => Ok(format!("{key}={}", escape_rfc2253(&text))),
        _ => {
            let der = value.to_der().map_err(|e| cert_err(e.to_string()))?;
            Ok(format!("{oid}=#{}", hex::encode(der)))
        }
    }
}

fn short_name(oid: &ObjectIdentifier) -> Option<&'static str> {
    let name = match oid.to_string().as_str() {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "0.9.2342.19200300.100.1.1" => "UID",
        "0.9.2342.19200300.100.1.25" => "DC",
        _ => return None,
    };
    Some(name)
}

fn any_text(value: &Any) -> Option<String> {
    let bytes = value.value();
    match value.tag() {
        Tag::Utf8String
        | Tag::PrintableString
        | Tag::Ia5String
        | Tag::TeletexString
        | Tag::VisibleString => String::from_utf8(bytes.to_vec()).ok(),
        Tag::BmpString => {
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        _ => None,
    }
}

fn escape_rfc2253(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let last = text.chars().count().saturating_sub(1);
    for (i, c) in text.chars().enumerate() {
        let edge_space = c == ' ' && (i == 0 || i == last);
        if matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || edge_space
            || (c == '#' && i == 0)
        {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Decimal rendering of a big-endian unsigned integer (X.509 serials exceed u128).
fn be_bytes_to_decimal(bytes: &[u8]) -> String {
    let mut digits: Vec<u8> = vec![0]; // little-endian base-10 digits
    for &byte in bytes {
        let mut carry = u32::from(byte);
        for d in digits.iter_mut() {
            let v = u32::from(*d) * 256 + carry;
            *d = (v % 10) as u8;
            carry = v / 10;
        }
        while carry > 0 {
            digits.push((carry % 10) as u8);
            carry /= 10;
        }
    }
    while digits.len() > 1 && digits.last() == Some(&0) {
        digits.pop();
    }
    digits.iter().rev().map(|d| char::from(b'0' + d)).collect()
}

/// Formats fen as a yuan string with two decimals: `1234` → `"12.34"`,
/// `-5` → `"-0.05"`.
pub fn fen_to_yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let abs = fen.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// Parses a yuan string into fen exactly (no floats): digits, optionally a
/// `.` and one or two decimals, optionally a leading `-`. `None` for anything
/// else (`".5"`, `"1."`, `"1.234"`, `"+1"`, `" 1"`, overflow).
pub fn yuan_to_fen(text: &str) -> Option<i64> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int_part, frac_part) = match unsigned.split_once('.') {
        Some((i, f)) if !f.is_empty() && f.len() <= 2 => (i, f),
        Some(_) => return None,
        None => (unsigned, ""),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int_part.is_empty() || !all_digits(int_part) || !all_digits(frac_part) {
        return None;
    }
    // In i128, so the most negative amount (whose magnitude is past i64::MAX) parses.
    let yuan: i128 = int_part.parse().ok()?;
    let frac: i128 = match frac_part.len() {
        0 => 0,
        1 => frac_part.parse::<i128>().ok()? * 10,
        _ => frac_part.parse().ok()?,
    };
    let fen = yuan.checked_mul(100)?.checked_add(frac)?;
    i64::try_from(if negative { -fen } else { fen }).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;

/// How an Alipay app verifies Alipay and is identified: with the Alipay public key
/// ("公钥模式") or with certificates ("公钥证书模式": `app_cert_sn` and
/// `alipay_root_cert_sn` on every request, `alipay_cert_sn` on every answer).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlipayKeyMode {
    /// The Alipay public key verifies answers; requests carry no certificate SNs.
    #[default]
    PublicKey,
    /// Certificate mode: the Alipay certificate's key verifies answers.
    Certificate,
}

impl AlipayKeyMode {
    /// The setting's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AlipayKeyMode::PublicKey => "public_key",
            AlipayKeyMode::Certificate => "certificate",
        }
    }
}

impl std::str::FromStr for AlipayKeyMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "public_key" => Ok(AlipayKeyMode::PublicKey),
            "certificate" => Ok(AlipayKeyMode::Certificate),
            other => Err(format!("expected public_key or certificate, got {other:?}")),
        }
    }
}
