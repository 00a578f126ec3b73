//! RSA keys and X.509 certificates.
//!
//! `ring` does the RSASSA-PKCS1-v1_5 SHA-256 signing and verification (much
//! faster than `rsa`); `rsa` parses the many key encodings providers hand out,
//! converts them to what `ring` accepts, and generates keys.

use std::fmt;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Utc};
use ring::signature as ring_sig;
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey, EncodeRsaPublicKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use x509_cert::der::asn1::{Any, BitString, GeneralizedTime, UtcTime, Utf8StringRef};
use x509_cert::der::oid::ObjectIdentifier;
use x509_cert::der::{Decode, Encode};
use x509_cert::name::{RdnSequence, RelativeDistinguishedName};
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::time::{Time, Validity};
use x509_cert::{attr::AttributeTypeAndValue, certificate::TbsCertificate, certificate::Version};

use crate::{pem, ProtoError};

const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");

fn key_err(e: impl fmt::Display) -> ProtoError {
    ProtoError::InvalidKey(e.to_string())
}

fn cert_err(e: impl fmt::Display) -> ProtoError {
    ProtoError::InvalidCertificate(e.to_string())
}

/// Splits key text into an optional PEM label and the DER bytes.
/// Text without armour is taken as bare base64 DER (Alipay style).
fn key_der(text: &str) -> Result<(Option<String>, Vec<u8>), ProtoError> {
    if !pem::is_armoured(text) {
        return Ok((None, pem::decode_base64_loose(text).map_err(key_err)?));
    }
    let block = pem::blocks(text)
        .map_err(key_err)?
        .into_iter()
        .next()
        .ok_or_else(|| key_err("no PEM block"))?;
    Ok((Some(block.label), block.der))
}

/// An RSA private key usable for SHA256withRSA (PKCS#1 v1.5) signing.
///
/// Cheap to clone (shared), `Send + Sync`. Its `Debug` output never shows
/// key material.
#[derive(Clone)]
pub struct RsaPrivateKey {
    inner: Arc<PrivateInner>,
}

struct PrivateInner {
    pair: ring_sig::RsaKeyPair,
    // SecretDocument zeroizes its buffer on drop.
    pkcs8: rsa::pkcs8::SecretDocument,
    public: RsaPublicKey,
}

impl fmt::Debug for RsaPrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RsaPrivateKey(<redacted>)")
    }
}

impl RsaPrivateKey {
    /// Parses a private key from PKCS#8 PEM (`PRIVATE KEY`), PKCS#1 PEM
    /// (`RSA PRIVATE KEY`), or bare base64 PKCS#8/PKCS#1 DER without armour.
    /// Whitespace and line breaks anywhere are tolerated.
    pub fn from_pem(text: &str) -> Result<Self, ProtoError> {
        let (label, der) = key_der(text)?;
        let key = match label.as_deref() {
            Some("PRIVATE KEY") => rsa::RsaPrivateKey::from_pkcs8_der(&der).map_err(key_err)?,
            Some("RSA PRIVATE KEY") => rsa::RsaPrivateKey::from_pkcs1_der(&der).map_err(key_err)?,
            Some(other) => return Err(key_err(format!("unsupported PEM label {other:?}"))),
            None => rsa::RsaPrivateKey::from_pkcs8_der(&der)
                .or_else(|_| rsa::RsaPrivateKey::from_pkcs1_der(&der))
                .map_err(|_| key_err("neither PKCS#8 nor PKCS#1 RSA private key"))?,
        };
        Self::from_rsa(&key)
    }

    /// Generates a fresh key of `bits` bits (at least 2048).
    pub fn generate(bits: usize) -> Result<Self, ProtoError> {
        if bits < 2048 {
            return Err(key_err("RSA keys must be at least 2048 bits"));
        }
        let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, bits).map_err(key_err)?;
        Self::from_rsa(&key)
    }

    fn from_rsa(key: &rsa::RsaPrivateKey) -> Result<Self, ProtoError> {
        let pkcs8 = key.to_pkcs8_der().map_err(key_err)?;
        let pair = ring_sig::RsaKeyPair::from_pkcs8(pkcs8.as_bytes()).map_err(key_err)?;
        let public = RsaPublicKey::from_rsa(&key.to_public_key())?;
        Ok(Self {
            inner: Arc::new(PrivateInner {
                pair,
                pkcs8,
                public,
            }),
        })
    }

    /// Encodes the key as PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub fn to_pkcs8_pem(&self) -> String {
        pem::encode("PRIVATE KEY", self.inner.pkcs8.as_bytes())
    }

    /// The matching public key.
    pub fn public_key(&self) -> RsaPublicKey {
        self.inner.public.clone()
    }

    /// Modulus size in bits.
    pub fn bits(&self) -> usize {
        self.inner.pair.public().modulus_len() * 8
    }

    /// SHA256withRSA (RSASSA-PKCS1-v1_5) signature over `msg`.
    pub fn sign_sha256(&self, msg: &[u8]) -> Result<Vec<u8>, ProtoError> {
        let rng = ring::rand::SystemRandom::new();
        let mut sig = vec![0u8; self.inner.pair.public().modulus_len()];
        self.inner
            .pair
            .sign(&ring_sig::RSA_PKCS1_SHA256, &rng, msg, &mut sig)
            .map_err(|_| ProtoError::Sign)?;
        Ok(sig)
    }

    /// [`Self::sign_sha256`], standard base64 encoded (with padding).
    pub fn sign_sha256_base64(&self, msg: &[u8]) -> Result<String, ProtoError> {
        Ok(STANDARD.encode(self.sign_sha256(msg)?))
    }
}

/// An RSA public key usable for SHA256withRSA (PKCS#1 v1.5) verification.
/// Equality compares the key itself.
#[derive(Clone)]
pub struct RsaPublicKey {
    inner: Arc<PublicInner>,
}

struct PublicInner {
    // ring wants the PKCS#1 RSAPublicKey structure, not SPKI.
    pkcs1: Vec<u8>,
    spki: Vec<u8>,
}

impl PartialEq for RsaPublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.inner.spki == other.inner.spki
    }
}

impl Eq for RsaPublicKey {}

impl fmt::Debug for RsaPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RsaPublicKey({})", self.to_spki_base64())
    }
}

impl RsaPublicKey {
    /// Parses SPKI PEM (`PUBLIC KEY`), PKCS#1 PEM (`RSA PUBLIC KEY`), or bare
    /// base64 SPKI/PKCS#1 DER without armour (Alipay style).
    pub fn from_pem(text: &str) -> Result<Self, ProtoError> {
        let (label, der) = key_der(text)?;
        let key = match label.as_deref() {
            Some("PUBLIC KEY") => rsa::RsaPublicKey::from_public_key_der(&der).map_err(key_err)?,
            Some("RSA PUBLIC KEY") => rsa::RsaPublicKey::from_pkcs1_der(&der).map_err(key_err)?,
            Some(other) => return Err(key_err(format!("unsupported PEM label {other:?}"))),
            None => rsa::RsaPublicKey::from_public_key_der(&der)
                .or_else(|_| rsa::RsaPublicKey::from_pkcs1_der(&der))
                .map_err(|_| key_err("neither SPKI nor PKCS#1 RSA public key"))?,
        };
        Self::from_rsa(&key)
    }

    /// Parses DER-encoded SubjectPublicKeyInfo.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, ProtoError> {
        Self::from_rsa(&rsa::RsaPublicKey::from_public_key_der(der).map_err(key_err)?)
    }

    fn from_rsa(key: &rsa::RsaPublicKey) -> Result<Self, ProtoError> {
        let pkcs1 = key.to_pkcs1_der().map_err(key_err)?.into_vec();
        let spki = key.to_public_key_der().map_err(key_err)?.into_vec();
        Ok(Self {
            inner: Arc::new(PublicInner { pkcs1, spki }),
        })
    }

    /// DER-encoded SubjectPublicKeyInfo.
    pub fn to_spki_der(&self) -> Vec<u8> {
        self.inner.spki.clone()
    }

    /// SPKI PEM (`-----BEGIN PUBLIC KEY-----`).
    pub fn to_spki_pem(&self) -> String {
        pem::encode("PUBLIC KEY", &self.inner.spki)
    }

    /// Base64 of the SPKI DER without armour or line breaks (the form Alipay
    /// shows as "支付宝公钥").
    pub fn to_spki_base64(&self) -> String {
        STANDARD.encode(&self.inner.spki)
    }

    /// Verifies a SHA256withRSA (PKCS#1 v1.5) signature. Keys below 2048 bits
    /// are rejected.
    pub fn verify_sha256(&self, msg: &[u8], sig: &[u8]) -> bool {
        ring_sig::UnparsedPublicKey::new(&ring_sig::RSA_PKCS1_2048_8192_SHA256, &self.inner.pkcs1)
            .verify(msg, sig)
            .is_ok()
    }

    /// Verifies a PKCS#1 v1.5 signature with the given digest (certificate chains:
    /// roots may be SHA1withRSA).
    pub(crate) fn verify_with(
        &self,
        alg: &'static ring_sig::RsaParameters,
        msg: &[u8],
        sig: &[u8],
    ) -> bool {
        ring_sig::UnparsedPublicKey::new(alg, &self.inner.pkcs1)
            .verify(msg, sig)
            .is_ok()
    }

    /// [`Self::verify_sha256`] over a standard-base64 signature; false when the
    /// signature is not valid base64 (e.g. `WECHATPAY/SIGNTEST/...` probes).
    pub fn verify_sha256_base64(&self, msg: &[u8], sig_b64: &str) -> bool {
        match STANDARD.decode(sig_b64.as_bytes()) {
            Ok(sig) => self.verify_sha256(msg, &sig),
            Err(_) => false,
        }
    }
}

/// A parsed X.509 certificate carrying an RSA key.
#[derive(Clone, Debug)]
pub struct Certificate {
    /// Serial number as uppercase hex of its DER content bytes, minus the DER
    /// sign-padding `00` (e.g. `F5765756002FDD77`).
    pub serial_hex: String,
    /// Subject public key.
    pub public_key: RsaPublicKey,
    /// Start of validity.
    pub not_before: DateTime<Utc>,
    /// End of validity.
    pub not_after: DateTime<Utc>,
    /// This certificate re-encoded as PEM (64-character lines).
    pub pem: String,
}

impl Certificate {
    /// Parses the first `CERTIFICATE` block in `pem`.
    pub fn from_pem(pem: &str) -> Result<Self, ProtoError> {
        let block = pem::blocks(pem)
            .map_err(cert_err)?
            .into_iter()
            .find(|b| b.label == "CERTIFICATE")
            .ok_or_else(|| cert_err("no CERTIFICATE block"))?;
        Self::from_der(&block.der)
    }

    /// Parses a DER-encoded certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, ProtoError> {
        let cert = x509_cert::Certificate::from_der(der).map_err(cert_err)?;
        let tbs = &cert.tbs_certificate;
        let spki = tbs.subject_public_key_info.to_der().map_err(cert_err)?;
        let public_key = RsaPublicKey::from_spki_der(&spki)
            .map_err(|e| cert_err(format!("not an RSA certificate: {e}")))?;
        Ok(Self {
            serial_hex: serial_hex(tbs.serial_number.as_bytes()),
            public_key,
            not_before: to_chrono(tbs.validity.not_before)?,
            not_after: to_chrono(tbs.validity.not_after)?,
            pem: pem::encode("CERTIFICATE", der),
        })
    }

    /// True when `now` lies within the validity period.
    pub fn is_valid_at(&self, now: DateTime<Utc>) -> bool {
        self.not_before <= now && now <= self.not_after
    }

    /// Builds a self-signed v3 certificate (SHA256withRSA, subject = issuer =
    /// `CN=<common_name>`), valid from now for `days` days. Used by the
    /// emulator's platform-certificate mode. `serial_hex` may have any case
    /// and an odd number of digits; at most 20 bytes.
    pub fn generate(
        key: &RsaPrivateKey,
        serial_hex: &str,
        common_name: &str,
        days: i64,
    ) -> Result<Self, ProtoError> {
        let name = common_name_dn(common_name)?;
        Self::build(key, name.clone(), &key.public_key(), serial_hex, name, days)
    }

    /// Builds a v3 certificate over `subject_key` for the subject DN, issued and
    /// signed (SHA256withRSA) by `issuer_key` under the issuer DN, valid from now for
    /// `days` days. DNs are RFC 4514 strings, most specific first (e.g.
    /// `CN=..,OU=..,O=..,C=CN`, as Alipay's certificates have). With the issuer's
    /// own key and DN this is a self-signed (root) certificate. Used for the
    /// emulator's TEST chains.
    pub fn issue(
        issuer_key: &RsaPrivateKey,
        issuer_dn: &str,
        subject_key: &RsaPublicKey,
        serial_hex: &str,
        subject_dn: &str,
        days: i64,
    ) -> Result<Self, ProtoError> {
        let parse = |dn: &str| {
            dn.parse::<RdnSequence>()
                .map_err(|e| cert_err(format!("distinguished name {dn:?}: {e}")))
        };
        Self::build(
            issuer_key,
            parse(issuer_dn)?,
            subject_key,
            serial_hex,
            parse(subject_dn)?,
            days,
        )
    }

    fn build(
        issuer_key: &RsaPrivateKey,
        issuer: RdnSequence,
        subject_key: &RsaPublicKey,
        serial_hex: &str,
        subject: RdnSequence,
        days: i64,
    ) -> Result<Self, ProtoError> {
        if days <= 0 {
            return Err(cert_err("validity must be at least one day"));
        }
        let algorithm = AlgorithmIdentifierOwned {
            oid: SHA256_WITH_RSA,
            parameters: Some(Any::null()),
        };
        let spki =
            SubjectPublicKeyInfoOwned::from_der(&subject_key.to_spki_der()).map_err(cert_err)?;
        let tbs = TbsCertificate {
            version: Version::V3,
            serial_number: parse_serial(serial_hex)?,
            signature: algorithm.clone(),
            issuer,
            validity: validity_from_now(days)?,
            subject,
            subject_public_key_info: spki,
            issuer_unique_id: None,
            subject_unique_id: None,
            extensions: None,
        };
        let signature = issuer_key.sign_sha256(&tbs.to_der().map_err(cert_err)?)?;
        let cert = x509_cert::Certificate {
            tbs_certificate: tbs,
            signature_algorithm: algorithm,
            signature: BitString::from_bytes(&signature).map_err(cert_err)?,
        };
        Self::from_der(&cert.to_der().map_err(cert_err)?)
    }
}

/// Uppercase hex of an X.509 serial, dropping DER's leading sign bytes.
fn serial_hex(bytes: &[u8]) -> String {
    let first = bytes
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(bytes.len().saturating_sub(1));
    hex::encode_upper(&bytes[first..])
}

fn parse_serial(text: &str) -> Result<SerialNumber, ProtoError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(cert_err("empty serial"));
    }
    let padded = if text.len() % 2 == 1 {
        format!("0{text}")
    } else {
        text.to_string()
    };
    let bytes = hex::decode(padded).map_err(|e| cert_err(format!("serial is not hex: {e}")))?;
    // SerialNumber::new adds the 0x00 sign byte itself when the top bit is set.
    let first = bytes
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(bytes.len() - 1);
    SerialNumber::new(&bytes[first..]).map_err(cert_err)
}

fn common_name_dn(common_name: &str) -> Result<RdnSequence, ProtoError> {
    let value =
        Any::encode_from(&Utf8StringRef::new(common_name).map_err(cert_err)?).map_err(cert_err)?;
    let atv = AttributeTypeAndValue {
        oid: COMMON_NAME,
        value,
    };
    let rdn = RelativeDistinguishedName(vec![atv].try_into().map_err(cert_err)?);
    Ok(RdnSequence(vec![rdn]))
}

fn validity_from_now(days: i64) -> Result<Validity, ProtoError> {
    let now = Utc::now().timestamp();
    let end = days
        .checked_mul(86_400)
        .and_then(|secs| now.checked_add(secs))
        .ok_or_else(|| cert_err("validity overflow"))?;
    Ok(Validity {
        not_before: x509_time(now)?,
        not_after: x509_time(end)?,
    })
}

/// RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050.
fn x509_time(unix: i64) -> Result<Time, ProtoError> {
    let secs = u64::try_from(unix).map_err(|_| cert_err("time before 1970"))?;
    let duration = std::time::Duration::from_secs(secs);
    let date = x509_cert::der::DateTime::from_unix_duration(duration).map_err(cert_err)?;
    if date.year() < 2050 {
        Ok(UtcTime::from_date_time(date).map_err(cert_err)?.into())
    } else {
        Ok(GeneralizedTime::from_date_time(date).into())
    }
}

fn to_chrono(time: Time) -> Result<DateTime<Utc>, ProtoError> {
    let secs = i64::try_from(time.to_unix_duration().as_secs()).map_err(cert_err)?;
    DateTime::from_timestamp(secs, 0).ok_or_else(|| cert_err("time out of range"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::test_support::{generated_key, str_at, vector};

    fn assert_send_sync_clone<T: Send + Sync + Clone>() {}

    #[test]
    fn key_types_are_send_sync_clone() {
        assert_send_sync_clone::<RsaPrivateKey>();
        assert_send_sync_clone::<RsaPublicKey>();
        assert_send_sync_clone::<Certificate>();
    }

    #[test]
    fn private_key_debug_is_redacted() {
        let v = vector("wechatpay/01_go_sha256rsa_sign_source.json");
        let key = RsaPrivateKey::from_pem(str_at(&v, "/private_key_pkcs8_pem")).unwrap();
        let shown = format!("{key:?}");
        assert_eq!(shown, "RsaPrivateKey(<redacted>)");
        let shown_alt = format!("{key:#?}");
        assert!(!shown_alt.contains("MII"));
    }

    #[test]
    fn pkcs1_pkcs8_and_bare_forms_parse_to_the_same_key() {
        let v = vector("wechatpay/06_official_doc_examples.json");
        let pkcs8 = str_at(&v, "/merchant_private_key_pkcs8_pem");
        let pkcs1 = str_at(&v, "/merchant_private_key_pkcs1_pem");
        let public = RsaPublicKey::from_pem(str_at(&v, "/merchant_public_key_pem")).unwrap();
        let strip = |pem: &str| -> String {
            pem.lines()
                .filter(|l| !l.starts_with("-----"))
                .collect::<Vec<_>>()
                .join("\r\n")
        };
        for text in [
            pkcs8.to_string(),
            pkcs1.to_string(),
            strip(pkcs8),
            strip(pkcs1),
            format!("\n\n  {}  \n", pkcs8.replace('\n', "\r\n")),
        ] {
            let key = RsaPrivateKey::from_pem(&text).unwrap();
            assert_eq!(key.public_key(), public);
            assert_eq!(key.bits(), 2048);
        }
    }

    #[test]
    fn public_key_forms_parse_to_the_same_key() {
        let v = vector("wechatpay/06_official_doc_examples.json");
        let spki_pem = str_at(&v, "/merchant_public_key_pem");
        let key = RsaPublicKey::from_pem(spki_pem).unwrap();
        assert_eq!(key.to_spki_pem(), spki_pem);
        let bare = key.to_spki_base64();
        assert!(!bare.contains('\n'));
        assert_eq!(RsaPublicKey::from_pem(&bare).unwrap(), key);
        let rsa_key = rsa::RsaPublicKey::from_public_key_der(&key.to_spki_der()).unwrap();
        let pkcs1_pem = rsa_key.to_pkcs1_pem(rsa::pkcs1::LineEnding::LF).unwrap();
        assert!(pkcs1_pem.contains("BEGIN RSA PUBLIC KEY"));
        assert_eq!(RsaPublicKey::from_pem(&pkcs1_pem).unwrap(), key);
        let pkcs1_bare = STANDARD.encode(rsa_key.to_pkcs1_der().unwrap().as_bytes());
        assert_eq!(RsaPublicKey::from_pem(&pkcs1_bare).unwrap(), key);
    }

    #[test]
    fn garbage_keys_are_rejected() {
        assert!(RsaPrivateKey::from_pem("").is_err());
        assert!(RsaPrivateKey::from_pem("not base64 !!").is_err());
        assert!(RsaPrivateKey::from_pem("AAAA").is_err());
        assert!(RsaPublicKey::from_pem(
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"
        )
        .is_err());
        assert!(RsaPrivateKey::generate(1024).is_err());
    }

    #[test]
    fn generated_key_round_trips_through_pem_and_signs() {
        let key = generated_key();
        assert_eq!(key.bits(), 2048);
        let reparsed = RsaPrivateKey::from_pem(&key.to_pkcs8_pem()).unwrap();
        assert_eq!(reparsed.public_key(), key.public_key());
        let sig = key.sign_sha256_base64(b"hello").unwrap();
        // PKCS#1 v1.5 is deterministic: both handles give the same signature.
        assert_eq!(reparsed.sign_sha256_base64(b"hello").unwrap(), sig);
        assert!(key.public_key().verify_sha256_base64(b"hello", &sig));
        assert!(!key.public_key().verify_sha256_base64(b"hellO", &sig));
        assert!(!key
            .public_key()
            .verify_sha256_base64(b"hello", "WECHATPAY/SIGNTEST/abc"));
    }

    #[test]
    fn generated_certificate_parses_back() {
        let key = generated_key();
        let cert = Certificate::generate(
            key,
            "5dea10ef55877e3cf6c33255c2e7defff7e427ec",
            "Tenpay.com Root CA",
            365,
        )
        .unwrap();
        assert_eq!(cert.serial_hex, "5DEA10EF55877E3CF6C33255C2E7DEFFF7E427EC");
        assert_eq!(cert.public_key, key.public_key());
        assert!(cert.is_valid_at(Utc::now()));
        assert_eq!((cert.not_after - cert.not_before).num_days(), 365);
        let again = Certificate::from_pem(&cert.pem).unwrap();
        assert_eq!(again.serial_hex, cert.serial_hex);
        assert_eq!(again.pem, cert.pem);

        // Self-signature is valid over the TBS bytes.
        let der = pem::blocks(&cert.pem).unwrap().remove(0).der;
        let parsed = x509_cert::Certificate::from_der(&der).unwrap();
        let tbs = parsed.tbs_certificate.to_der().unwrap();
        let sig = parsed.signature.raw_bytes();
        assert!(key.public_key().verify_sha256(&tbs, sig));
        assert_eq!(
            parsed.tbs_certificate.issuer.to_string(),
            "CN=Tenpay.com Root CA"
        );
    }

    #[test]
    fn generated_certificate_serials_keep_their_digits() {
        let key = generated_key();
        // High bit set: DER adds a 00 sign byte that must not show up.
        let cert = Certificate::generate(key, "F5765756002FDD77", "x", 1).unwrap();
        assert_eq!(cert.serial_hex, "F5765756002FDD77");
        let cert = Certificate::generate(key, "0A12", "x", 1).unwrap();
        assert_eq!(cert.serial_hex, "0A12");
        let cert = Certificate::generate(key, "abc", "x", 1).unwrap();
        assert_eq!(cert.serial_hex, "0ABC");
        assert!(Certificate::generate(key, "xyz", "x", 1).is_err());
        assert!(Certificate::generate(key, "", "x", 1).is_err());
        assert!(Certificate::generate(key, &"11".repeat(21), "x", 1).is_err());
        assert!(Certificate::generate(key, "01", "x", 0).is_err());
    }

    #[test]
    fn far_future_validity_uses_generalized_time() {
        let key = generated_key();
        let cert = Certificate::generate(key, "01", "x", 365 * 40).unwrap();
        assert!(
            cert.not_after
                .format("%Y")
                .to_string()
                .parse::<i32>()
                .unwrap()
                >= 2050
        );
    }

    #[test]
    fn serial_hex_strips_only_sign_padding() {
        assert_eq!(serial_hex(&[0x00, 0xF5, 0x76]), "F576");
        assert_eq!(serial_hex(&[0x0A, 0x12]), "0A12");
        assert_eq!(serial_hex(&[0x00]), "00");
    }
}
