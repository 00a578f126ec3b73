//! Bring your own auth: the keys a merchant app signs its own users' tokens with, and the
//! check of such a token. Pure: parsing and verification, no I/O.
//!
//! Algorithms follow the configured key kind and nothing else: HS256 only with a shared
//! secret, RS256 only with an RSA public key, ES256 only with a P-256 public key. The
//! token's `alg` header picks among those, never the other way round, so a token cannot
//! turn a public key into an HMAC secret (algorithm confusion), and `none` is never
//! accepted.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::dangerous::insecure_decode;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;
use serde::Deserialize;

use super::apps::valid_ref;

/// Shortest HS256 secret accepted, in bytes (the secret is used as its UTF-8 bytes).
pub const MIN_HS256_SECRET_LEN: usize = 32;
/// Longest HS256 secret accepted, in bytes.
pub const MAX_HS256_SECRET_LEN: usize = 1024;
/// Smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;
/// Most public keys in one configuration (a JWKS during a key rotation holds two or three).
pub const MAX_PUBLIC_KEYS: usize = 16;
/// Longest PEM / JWKS text accepted.
pub const MAX_PUBLIC_KEYS_LEN: usize = 32 * 1024;
/// Clock difference tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: u64 = 30;

/// The algorithm a public key verifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAlg {
    Rs256,
    Es256,
}

impl KeyAlg {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlg::Rs256 => "RS256",
            KeyAlg::Es256 => "ES256",
        }
    }

    fn algorithm(self) -> Algorithm {
        match self {
            KeyAlg::Rs256 => Algorithm::RS256,
            KeyAlg::Es256 => Algorithm::ES256,
        }
    }
}

/// One parsed public key.
#[derive(Clone)]
pub struct PublicKey {
    /// The JWKS `kid` (PEM keys have none).
    pub kid: Option<String>,
    pub alg: KeyAlg,
    key: DecodingKey,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish()
    }
}

/// Why a configured secret or key text is refused (the message says what to fix).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(pub String);

fn key_error(msg: impl Into<String>) -> KeyError {
    KeyError(msg.into())
}

/// Why a token is refused. Deliberately coarse: no oracle for which check failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Well signed by the app, past `exp`.
    #[error("token expired")]
    Expired,
    #[error("invalid token")]
    Invalid,
}

/// An app's parsed token keys: a shared secret, public keys, or both.
#[derive(Clone)]
pub struct AppKeys {
    hs256: Option<DecodingKey>,
    public: Vec<PublicKey>,
}

impl std::fmt::Debug for AppKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppKeys")
            .field("hs256", &self.hs256.as_ref().map(|_| "[redacted]"))
            .field("public", &self.public)
            .finish()
    }
}

/// An HS256 secret is at least [`MIN_HS256_SECRET_LEN`] bytes.
pub fn check_hs256_secret(secret: &str) -> Result<(), KeyError> {
    if secret.len() < MIN_HS256_SECRET_LEN {
        return Err(key_error(format!(
            "hs256_secret must be at least {MIN_HS256_SECRET_LEN} bytes"
        )));
    }
    if secret.len() > MAX_HS256_SECRET_LEN {
        return Err(key_error(format!(
            "hs256_secret must be at most {MAX_HS256_SECRET_LEN} bytes"
        )));
    }
    Ok(())
}

impl AppKeys {
    /// Parse an app's configuration; at least one of the two must be given.
    pub fn parse(hs256_secret: Option<&str>, public_keys: Option<&str>) -> Result<Self, KeyError> {
        if hs256_secret.is_none() && public_keys.is_none() {
            return Err(key_error("give hs256_secret, public_keys, or both"));
        }
        let hs256 = match hs256_secret {
            Some(secret) => {
                check_hs256_secret(secret)?;
                Some(DecodingKey::from_secret(secret.as_bytes()))
            }
            None => None,
        };
        let public = match public_keys {
            Some(text) => parse_public_keys(text)?,
            None => Vec::new(),
        };
        Ok(AppKeys { hs256, public })
    }

    pub fn has_secret(&self) -> bool {
        self.hs256.is_some()
    }

    pub fn public_keys(&self) -> &[PublicKey] {
        &self.public
    }

    /// Verify `token` as one of this app's: signature by a configured key of the token's
    /// algorithm (chosen by `kid` when the token names one we know), `exp` required and
    /// not past, `nbf` not ahead (both with [`LEEWAY_SECS`]), `iss` exactly `issuer`, `aud`
    /// containing `audience` when one is configured, `sub` a valid external id.
    /// Returns the `sub`.
    pub fn verify(
        &self,
        token: &str,
        issuer: &str,
        audience: Option<&str>,
    ) -> Result<String, TokenError> {
        let header = decode_header(token).map_err(|_| TokenError::Invalid)?;
        let candidates: Vec<&DecodingKey> = match header.alg {
            Algorithm::HS256 => self.hs256.iter().collect(),
            Algorithm::RS256 | Algorithm::ES256 => {
                let of_alg = || {
                    self.public
                        .iter()
                        .filter(|k| k.alg.algorithm() == header.alg)
                };
                let named: Vec<&DecodingKey> = match header.kid.as_deref() {
                    Some(kid) => of_alg()
                        .filter(|k| k.kid.as_deref() == Some(kid))
                        .map(|k| &k.key)
                        .collect(),
                    None => Vec::new(),
                };
                if !named.is_empty() {
                    named
                } else if header.kid.is_some() {
                    // A kid we do not know: only keys without a kid (PEM) may still match.
                    of_alg()
                        .filter(|k| k.kid.is_none())
                        .map(|k| &k.key)
                        .collect()
                } else {
                    of_alg().map(|k| &k.key).collect()
                }
            }
            _ => Vec::new(),
        };
        if candidates.is_empty() {
            return Err(TokenError::Invalid);
        }
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[issuer]);
        match audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
            }
            None => {
                validation.validate_aud = false;
                validation.set_required_spec_claims(&["exp", "iss", "sub"]);
            }
        }
        #[derive(Deserialize)]
        struct Subject {
            sub: String,
        }
        for key in candidates {
            match decode::<Subject>(token, key, &validation) {
                Ok(data) if valid_ref(&data.claims.sub) => return Ok(data.claims.sub),
                Ok(_) => return Err(TokenError::Invalid),
                // Claims are checked only after the signature: an expired token was signed
                // by this key.
                Err(e) if matches!(e.kind(), ErrorKind::ExpiredSignature) => {
                    return Err(TokenError::Expired)
                }
                Err(e) if matches!(e.kind(), ErrorKind::InvalidSignature) => continue,
                Err(_) => return Err(TokenError::Invalid),
            }
        }
        Err(TokenError::Invalid)
    }
}

/// The `iss` claim of a token, read without checking anything (it only says which app's
/// keys to check the token with). `None` when the token does not parse, its header names
/// no algorithm we know (`none` included), or `iss` is absent or not a string.
pub fn unverified_issuer(token: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Issuer {
        iss: Option<String>,
    }
    insecure_decode::<Issuer>(token).ok()?.claims.iss
}

/// Public keys from PEM text (one or more `PUBLIC KEY` / `RSA PUBLIC KEY` blocks) or a
/// JWKS document (`{"keys": [...]}`, or a single JWK). RSA keys (>= 2048 bits) verify
/// RS256, P-256 keys ES256.
pub fn parse_public_keys(text: &str) -> Result<Vec<PublicKey>, KeyError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(key_error("public_keys is empty"));
    }
    if text.len() > MAX_PUBLIC_KEYS_LEN {
        return Err(key_error(format!(
            "public_keys must be at most {MAX_PUBLIC_KEYS_LEN} bytes"
        )));
    }
    let keys = if text.starts_with('{') {
        parse_jwks(text)?
    } else if text.starts_with("-----BEGIN ") {
        parse_pem(text)?
    } else {
        return Err(key_error(
            "public_keys must be PEM (-----BEGIN PUBLIC KEY-----) or a JWKS document ({\"keys\": [...]})",
        ));
    };
    if keys.is_empty() {
        return Err(key_error("public_keys holds no key"));
    }
    if keys.len() > MAX_PUBLIC_KEYS {
        return Err(key_error(format!(
            "public_keys may hold at most {MAX_PUBLIC_KEYS} keys"
        )));
    }
    let mut kids: Vec<&str> = keys.iter().filter_map(|k| k.kid.as_deref()).collect();
    kids.sort_unstable();
    if kids.windows(2).any(|w| w[0] == w[1]) {
        return Err(key_error("two keys have the same kid"));
    }
    Ok(keys)
}

fn rsa_key(kid: Option<String>, key: &rsa::RsaPublicKey) -> Result<PublicKey, KeyError> {
    if key.n().bits() < MIN_RSA_BITS {
        return Err(key_error(format!(
            "RSA keys must have at least {MIN_RSA_BITS} bits"
        )));
    }
    Ok(PublicKey {
        kid,
        alg: KeyAlg::Rs256,
        key: DecodingKey::from_rsa_raw_components(&key.n().to_bytes_be(), &key.e().to_bytes_be()),
    })
}

fn ec_key(kid: Option<String>, key: &p256::PublicKey) -> PublicKey {
    PublicKey {
        kid,
        alg: KeyAlg::Es256,
        key: DecodingKey::from_ec_der(key.to_encoded_point(false).as_bytes()),
    }
}

fn parse_pem(text: &str) -> Result<Vec<PublicKey>, KeyError> {
    let mut keys = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        if !rest[..start].trim().is_empty() {
            return Err(key_error("text between PEM blocks"));
        }
        let after = &rest[start + "-----BEGIN ".len()..];
        let label_end = after
            .find("-----")
            .ok_or_else(|| key_error("a PEM block without its label"))?;
        let label = &after[..label_end];
        let end_marker = format!("-----END {label}-----");
        let end = rest
            .find(&end_marker)
            .ok_or_else(|| key_error(format!("a PEM block without `{end_marker}`")))?;
        let block = &rest[start..end + end_marker.len()];
        rest = &rest[end + end_marker.len()..];
        let key = match label {
            "PUBLIC KEY" => {
                if let Ok(key) = rsa::RsaPublicKey::from_public_key_pem(block) {
                    rsa_key(None, &key)?
                } else if let Ok(key) = p256::PublicKey::from_public_key_pem(block) {
                    ec_key(None, &key)
                } else {
                    return Err(key_error(
                        "a PUBLIC KEY block that is neither an RSA key nor a P-256 EC key",
                    ));
                }
            }
            "RSA PUBLIC KEY" => {
                let key = rsa::RsaPublicKey::from_pkcs1_pem(block)
                    .map_err(|_| key_error("an RSA PUBLIC KEY block that does not parse"))?;
                rsa_key(None, &key)?
            }
            "CERTIFICATE" => {
                return Err(key_error(
                    "a certificate: give its public key (openssl x509 -pubkey -noout)",
                ))
            }
            l if l.contains("PRIVATE KEY") => {
                return Err(key_error("a private key: give the public key only"))
            }
            other => return Err(key_error(format!("an unexpected PEM block `{other}`"))),
        };
        keys.push(key);
    }
    if !rest.trim().is_empty() {
        return Err(key_error("text after the last PEM block"));
    }
    Ok(keys)
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default, rename = "use")]
    use_: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum JwksText {
    Set { keys: Vec<Jwk> },
    One(Jwk),
}

fn b64url(field: &str, value: Option<&str>) -> Result<Vec<u8>, KeyError> {
    let value = value.ok_or_else(|| key_error(format!("a JWK without `{field}`")))?;
    URL_SAFE_NO_PAD
        .decode(value.trim_end_matches('='))
        .map_err(|_| key_error(format!("a JWK whose `{field}` is not base64url")))
}

fn parse_jwks(text: &str) -> Result<Vec<PublicKey>, KeyError> {
    let parsed: JwksText = serde_json::from_str(text)
        .map_err(|_| key_error("public_keys is not a JWKS document ({\"keys\": [...]})"))?;
    let jwks = match parsed {
        JwksText::Set { keys } => keys,
        JwksText::One(jwk) => vec![jwk],
    };
    jwks.into_iter().map(parse_jwk).collect()
}

fn parse_jwk(jwk: Jwk) -> Result<PublicKey, KeyError> {
    if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
        return Err(key_error("a JWK whose `use` is not `sig`"));
    }
    if jwk
        .kid
        .as_deref()
        .is_some_and(|k| k.is_empty() || k.len() > 256)
    {
        return Err(key_error("a JWK whose `kid` is empty or longer than 256"));
    }
    match jwk.kty.as_str() {
        "RSA" => {
            if jwk.alg.as_deref().is_some_and(|a| a != "RS256") {
                return Err(key_error("an RSA JWK must be for RS256"));
            }
            let n = b64url("n", jwk.n.as_deref())?;
            let e = b64url("e", jwk.e.as_deref())?;
            let key = rsa::RsaPublicKey::new(
                rsa::BigUint::from_bytes_be(&n),
                rsa::BigUint::from_bytes_be(&e),
            )
            .map_err(|_| key_error("an RSA JWK that is not a valid key"))?;
            rsa_key(jwk.kid, &key)
        }
        "EC" => {
            if jwk.alg.as_deref().is_some_and(|a| a != "ES256") {
                return Err(key_error("an EC JWK must be for ES256"));
            }
            if jwk.crv.as_deref() != Some("P-256") {
                return Err(key_error("an EC JWK must be on curve P-256"));
            }
            let x = b64url("x", jwk.x.as_deref())?;
            let y = b64url("y", jwk.y.as_deref())?;
            if x.len() != 32 || y.len() != 32 {
                return Err(key_error("a P-256 JWK has 32-byte `x` and `y`"));
            }
            let mut point = Vec::with_capacity(65);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            let key = p256::PublicKey::from_sec1_bytes(&point)
                .map_err(|_| key_error("an EC JWK whose point is not on P-256"))?;
            Ok(ec_key(jwk.kid, &key))
        }
        other => Err(key_error(format!(
            "a JWK of type `{other}`: only RSA (RS256) and EC P-256 (ES256) keys"
        ))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::sync::OnceLock;

    use jsonwebtoken::{encode, EncodingKey, Header};
    use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use serde_json::{json, Value};

    use super::*;

    const SECRET: &str = "an-app-shared-secret-of-32-bytes-or-more";

    /// One RSA test key for the module (2048-bit generation takes a while).
    fn rsa_test_key() -> &'static rsa::RsaPrivateKey {
        static KEY: OnceLock<rsa::RsaPrivateKey> = OnceLock::new();
        KEY.get_or_init(|| rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap())
    }

    fn rsa_pem(key: &rsa::RsaPrivateKey) -> String {
        key.to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap()
    }

    fn rsa_signer(key: &rsa::RsaPrivateKey) -> EncodingKey {
        EncodingKey::from_rsa_der(key.to_pkcs1_der().unwrap().as_bytes())
    }

    fn ec_pair() -> (p256::SecretKey, EncodingKey) {
        let secret = p256::SecretKey::random(&mut rand::thread_rng());
        let der = secret.to_pkcs8_der().unwrap();
        (secret, EncodingKey::from_ec_der(der.as_bytes()))
    }

    fn ec_jwk(secret: &p256::SecretKey, kid: &str) -> Value {
        let point = secret.public_key().to_encoded_point(false);
        json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
            "y": URL_SAFE_NO_PAD.encode(point.y().unwrap()),
        })
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    fn claims(sub: &str) -> Value {
        json!({"iss": "https://app.example", "aud": "fenpay", "sub": sub,
               "iat": now(), "exp": now() + 600})
    }

    fn hs256(claims: &Value, secret: &[u8]) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    }

    fn with_kid(alg: Algorithm, kid: Option<&str>) -> Header {
        let mut h = Header::new(alg);
        h.kid = kid.map(String::from);
        h
    }

    const ISS: &str = "https://app.example";

    #[test]
    fn pem_keys_parse_by_kind_and_refuse_what_is_not_a_public_key() {
        let rsa = rsa_pem(rsa_test_key());
        let keys = parse_public_keys(&rsa).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!((keys[0].alg, keys[0].kid.as_deref()), (KeyAlg::Rs256, None));

        let (ec, _) = ec_pair();
        let ec_pem = ec.public_key().to_public_key_pem(LineEnding::LF).unwrap();
        let both = parse_public_keys(&format!("{rsa}\n{ec_pem}")).unwrap();
        let algs: Vec<KeyAlg> = both.iter().map(|k| k.alg).collect();
        assert_eq!(algs, vec![KeyAlg::Rs256, KeyAlg::Es256]);

        // PKCS#1 "RSA PUBLIC KEY" too.
        use rsa::pkcs1::EncodeRsaPublicKey;
        let pkcs1 = rsa_test_key()
            .to_public_key()
            .to_pkcs1_pem(LineEnding::LF)
            .unwrap();
        assert_eq!(parse_public_keys(&pkcs1).unwrap()[0].alg, KeyAlg::Rs256);

        let private = rsa_test_key().to_pkcs1_pem(LineEnding::LF).unwrap();
        assert!(parse_public_keys(&private)
            .unwrap_err()
            .0
            .contains("private key"));
        let cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----";
        assert!(parse_public_keys(cert)
            .unwrap_err()
            .0
            .contains("certificate"));
        let broken = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----";
        assert!(parse_public_keys(broken).is_err());
        assert!(parse_public_keys("-----BEGIN PUBLIC KEY-----\nAAAA").is_err());
        assert!(parse_public_keys(&format!("{rsa}\ntrailing words")).is_err());
        assert!(parse_public_keys("not a key").is_err());
        assert!(parse_public_keys("  ").is_err());

        let small = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 1024).unwrap();
        assert!(parse_public_keys(&rsa_pem(&small))
            .unwrap_err()
            .0
            .contains("2048"));
    }

    #[test]
    fn jwks_parse_with_kids_and_refuse_unusable_keys() {
        let (a, _) = ec_pair();
        let (b, _) = ec_pair();
        let jwks = json!({"keys": [ec_jwk(&a, "a"), ec_jwk(&b, "b")]}).to_string();
        let keys = parse_public_keys(&jwks).unwrap();
        let kids: Vec<_> = keys.iter().map(|k| (k.kid.as_deref(), k.alg)).collect();
        assert_eq!(
            kids,
            vec![(Some("a"), KeyAlg::Es256), (Some("b"), KeyAlg::Es256)]
        );
        // A single JWK is a set of one.
        assert_eq!(
            parse_public_keys(&ec_jwk(&a, "a").to_string())
                .unwrap()
                .len(),
            1
        );

        let pk = rsa_test_key().to_public_key();
        let rsa_jwk = json!({"kty": "RSA", "kid": "r", "n": URL_SAFE_NO_PAD.encode(pk.n().to_bytes_be()),
                             "e": URL_SAFE_NO_PAD.encode(pk.e().to_bytes_be())});
        let keys = parse_public_keys(&json!({"keys": [rsa_jwk.clone()]}).to_string()).unwrap();
        assert_eq!(keys[0].alg, KeyAlg::Rs256);

        let refused = |v: Value| parse_public_keys(&v.to_string()).unwrap_err().0;
        assert!(refused(json!({"keys": [ec_jwk(&a, "a"), ec_jwk(&b, "a")]})).contains("same kid"));
        assert!(refused(json!({"keys": []})).contains("no key"));
        assert!(refused(json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]})).contains("oct"));
        let mut wrong_curve = ec_jwk(&a, "a");
        wrong_curve["crv"] = json!("P-384");
        assert!(refused(json!({"keys": [wrong_curve]})).contains("P-256"));
        let mut off_curve = ec_jwk(&a, "a");
        off_curve["y"] = off_curve["x"].clone();
        assert!(refused(json!({"keys": [off_curve]})).contains("not on P-256"));
        let mut enc = ec_jwk(&a, "a");
        enc["use"] = json!("enc");
        assert!(refused(json!({"keys": [enc]})).contains("sig"));
        let mut rs_as_es = rsa_jwk;
        rs_as_es["alg"] = json!("ES256");
        assert!(refused(json!({"keys": [rs_as_es]})).contains("RS256"));
        assert!(parse_public_keys("{\"keys\": 3}").is_err());
    }

    #[test]
    fn secrets_are_long_enough_and_something_is_configured() {
        assert!(AppKeys::parse(None, None).is_err());
        assert!(AppKeys::parse(Some("short"), None)
            .unwrap_err()
            .0
            .contains("32"));
        let keys = AppKeys::parse(Some(SECRET), None).unwrap();
        assert!(keys.has_secret() && keys.public_keys().is_empty());
        assert!(format!("{keys:?}").contains("redacted"));
        assert!(!format!("{keys:?}").contains(SECRET));
    }

    #[test]
    fn hs256_tokens_check_issuer_audience_and_times() {
        let keys = AppKeys::parse(Some(SECRET), None).unwrap();
        let ok = hs256(&claims("user-42"), SECRET.as_bytes());
        assert_eq!(keys.verify(&ok, ISS, Some("fenpay")).unwrap(), "user-42");
        assert_eq!(keys.verify(&ok, ISS, None).unwrap(), "user-42");
        assert_eq!(unverified_issuer(&ok).as_deref(), Some(ISS));

        let invalid = Err(TokenError::Invalid);
        assert_eq!(
            keys.verify(&ok, "https://other.example", Some("fenpay")),
            invalid
        );
        assert_eq!(keys.verify(&ok, ISS, Some("another-audience")), invalid);
        let mut no_aud = claims("u");
        no_aud.as_object_mut().unwrap().remove("aud");
        let no_aud = hs256(&no_aud, SECRET.as_bytes());
        assert_eq!(keys.verify(&no_aud, ISS, Some("fenpay")), invalid);
        assert!(keys.verify(&no_aud, ISS, None).is_ok());

        let mut expired = claims("u");
        expired["exp"] = json!(now() - LEEWAY_SECS as i64 - 5);
        let expired = hs256(&expired, SECRET.as_bytes());
        assert_eq!(
            keys.verify(&expired, ISS, Some("fenpay")),
            Err(TokenError::Expired)
        );
        // Within the leeway it still counts.
        let mut just = claims("u");
        just["exp"] = json!(now() - 5);
        assert!(keys
            .verify(&hs256(&just, SECRET.as_bytes()), ISS, None)
            .is_ok());
        // Expired and signed by someone else: invalid, not "expired" (no oracle).
        let forged = hs256(
            &json!({"iss": ISS, "sub": "u", "exp": now() - 600}),
            &[7; 40],
        );
        assert_eq!(keys.verify(&forged, ISS, None), invalid);

        let mut early = claims("u");
        early["nbf"] = json!(now() + 600);
        assert_eq!(
            keys.verify(&hs256(&early, SECRET.as_bytes()), ISS, None),
            invalid
        );
        let mut no_exp = claims("u");
        no_exp.as_object_mut().unwrap().remove("exp");
        assert_eq!(
            keys.verify(&hs256(&no_exp, SECRET.as_bytes()), ISS, None),
            invalid
        );
        for bad_sub in [
            json!("has space"),
            json!(""),
            json!(42),
            json!("x".repeat(65)),
        ] {
            let mut c = claims("u");
            c["sub"] = bad_sub;
            assert_eq!(
                keys.verify(&hs256(&c, SECRET.as_bytes()), ISS, None),
                invalid
            );
        }
        let other_secret = hs256(&claims("u"), b"another-secret-another-secret-another");
        assert_eq!(keys.verify(&other_secret, ISS, None), invalid);
        // An HS256 token is refused by an app configured with public keys only.
        let public_only = AppKeys::parse(None, Some(&rsa_pem(rsa_test_key()))).unwrap();
        assert_eq!(public_only.verify(&ok, ISS, None), invalid);
    }

    #[test]
    fn no_algorithm_confusion_and_no_none() {
        let pem = rsa_pem(rsa_test_key());
        let keys = AppKeys::parse(None, Some(&pem)).unwrap();
        let good = encode(
            &Header::new(Algorithm::RS256),
            &claims("u1"),
            &rsa_signer(rsa_test_key()),
        )
        .unwrap();
        assert_eq!(keys.verify(&good, ISS, Some("fenpay")).unwrap(), "u1");

        // HS256 "signed" with the public key's bytes (PEM text and DER): refused.
        let der = rsa_test_key().to_public_key().to_public_key_der().unwrap();
        for secret in [pem.as_bytes(), der.as_bytes()] {
            let confused = hs256(&claims("u1"), secret);
            assert_eq!(keys.verify(&confused, ISS, None), Err(TokenError::Invalid));
        }
        // Same key, another RSA algorithm than the allow-list: refused.
        let ps256 = encode(
            &Header::new(Algorithm::PS256),
            &claims("u1"),
            &rsa_signer(rsa_test_key()),
        )
        .unwrap();
        assert_eq!(keys.verify(&ps256, ISS, None), Err(TokenError::Invalid));
        // ES256 header against an RSA-only configuration.
        let (_, ec) = ec_pair();
        let es = encode(&Header::new(Algorithm::ES256), &claims("u1"), &ec).unwrap();
        assert_eq!(keys.verify(&es, ISS, None), Err(TokenError::Invalid));

        // alg none, unsigned: neither its issuer is read nor is it accepted.
        let b64 = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
        for alg in ["none", "None", "NONE"] {
            let none = format!(
                "{}.{}.",
                b64(json!({"alg": alg, "typ": "JWT"})),
                b64(claims("u1"))
            );
            assert_eq!(unverified_issuer(&none), None);
            assert_eq!(keys.verify(&none, ISS, None), Err(TokenError::Invalid));
            let both = AppKeys::parse(Some(SECRET), Some(&pem)).unwrap();
            assert_eq!(both.verify(&none, ISS, None), Err(TokenError::Invalid));
        }
    }

    #[test]
    fn kid_picks_the_jwks_key() {
        let (a, sign_a) = ec_pair();
        let (b, sign_b) = ec_pair();
        let jwks = json!({"keys": [ec_jwk(&a, "key-a"), ec_jwk(&b, "key-b")]}).to_string();
        let keys = AppKeys::parse(None, Some(&jwks)).unwrap();
        let es = |kid: Option<&str>, key: &EncodingKey| {
            encode(&with_kid(Algorithm::ES256, kid), &claims("u7"), key).unwrap()
        };
        assert!(keys.verify(&es(Some("key-a"), &sign_a), ISS, None).is_ok());
        assert!(keys.verify(&es(Some("key-b"), &sign_b), ISS, None).is_ok());
        // No kid: any key of the algorithm.
        assert!(keys.verify(&es(None, &sign_b), ISS, None).is_ok());
        // The kid names another key than the one that signed: refused.
        assert_eq!(
            keys.verify(&es(Some("key-a"), &sign_b), ISS, None),
            Err(TokenError::Invalid)
        );
        // An unknown kid with a JWKS where every key has one: refused.
        assert_eq!(
            keys.verify(&es(Some("key-c"), &sign_a), ISS, None),
            Err(TokenError::Invalid)
        );
        // A stranger's key: refused.
        let (_, stranger) = ec_pair();
        assert_eq!(
            keys.verify(&es(Some("key-a"), &stranger), ISS, None),
            Err(TokenError::Invalid)
        );
    }
}
