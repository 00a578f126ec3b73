//! HS256 tokens with `sub`, `role`, `ver`, `iat`, `exp`.

use api_types::auth::Role;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Token claims.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    /// User id.
    pub sub: String,
    pub role: Role,
    /// The account's token version at issue; a later bump revokes the token. Tokens
    /// issued before versions existed carry none and count as version 0.
    #[serde(default)]
    pub ver: i64,
    pub iat: i64,
    pub exp: i64,
}

/// Signing and verification keys derived from `JWT_SECRET`.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    ttl_secs: i64,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JwtKeys(<redacted>, ttl={}s)", self.ttl_secs)
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum JwtError {
    #[error("token expired")]
    Expired,
    #[error("invalid token")]
    Invalid,
}

impl JwtKeys {
    pub fn new(secret: &[u8], ttl_secs: i64) -> Self {
        JwtKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            ttl_secs,
        }
    }

    pub fn ttl_secs(&self) -> i64 {
        self.ttl_secs
    }

    /// Issue a token for `user_id` at token version `ver`, valid for the configured lifetime.
    pub fn issue(
        &self,
        user_id: &str,
        role: Role,
        ver: i64,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let now = chrono::Utc::now().timestamp();
        self.encode(&Claims {
            sub: user_id.to_string(),
            role,
            ver,
            iat: now,
            exp: now + self.ttl_secs,
        })
    }

    /// Issue at version 0 with explicit times (tests craft expired tokens with this).
    pub fn issue_at(
        &self,
        user_id: &str,
        role: Role,
        iat: i64,
        exp: i64,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        self.encode(&Claims {
            sub: user_id.to_string(),
            role,
            ver: 0,
            iat,
            exp,
        })
    }

    /// Sign any claims (tests craft tokens with this).
    pub fn encode(&self, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
        encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
    }

    /// Verify signature, algorithm and expiry (no leeway).
    pub fn verify(&self, token: &str) -> Result<Claims, JwtError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        decode::<Claims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => JwtError::Expired,
                _ => JwtError::Invalid,
            })
    }
}

/// Audience of single-order stream tokens; ordinary API tokens never carry it.
pub const STREAM_AUDIENCE: &str = "fenpay-order-events";

/// Claims of a short-lived token that only opens one order's event stream.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StreamClaims {
    pub sub: String,
    pub role: Role,
    /// The one order this token opens.
    pub ord: String,
    /// The account's token version, as in [`Claims::ver`].
    #[serde(default)]
    pub ver: i64,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
}

impl JwtKeys {
    /// A token for `EventSource` (which cannot send headers), valid for one order only.
    pub fn issue_stream(
        &self,
        user_id: &str,
        role: Role,
        ver: i64,
        order_no: &str,
        ttl_secs: i64,
    ) -> Result<(String, i64), jsonwebtoken::errors::Error> {
        let now = chrono::Utc::now().timestamp();
        let claims = StreamClaims {
            sub: user_id.to_string(),
            role,
            ord: order_no.to_string(),
            ver,
            aud: STREAM_AUDIENCE.to_string(),
            iat: now,
            exp: now + ttl_secs,
        };
        let token = encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok((token, claims.exp))
    }

    /// Verify a stream token for `order_no`.
    pub fn verify_stream(&self, token: &str, order_no: &str) -> Result<StreamClaims, JwtError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_audience(&[STREAM_AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "sub", "aud"]);
        let claims = decode::<StreamClaims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => JwtError::Expired,
                _ => JwtError::Invalid,
            })?;
        if claims.ord != order_no {
            return Err(JwtError::Invalid);
        }
        Ok(claims)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn stream_tokens_open_one_order_and_nothing_else() {
        let keys = JwtKeys::new(b"0123456789abcdef0123456789abcdef", 60);
        let (token, exp) = keys.issue_stream("u1", Role::User, 3, "FP1", 600).unwrap();
        assert!(exp > chrono::Utc::now().timestamp());
        let claims = keys.verify_stream(&token, "FP1").unwrap();
        assert_eq!((claims.sub.as_str(), claims.ver), ("u1", 3));
        assert_eq!(keys.verify_stream(&token, "FP2"), Err(JwtError::Invalid));
        // Not usable as an API bearer token...
        assert!(keys.verify(&token).is_err());
        // ...and an API token does not open streams.
        let api = keys.issue("u1", Role::User, 0).unwrap();
        assert_eq!(keys.verify_stream(&api, "FP1"), Err(JwtError::Invalid));
    }

    #[test]
    fn round_trip_and_rejections() {
        let keys = JwtKeys::new(b"0123456789abcdef0123456789abcdef", 60);
        let token = keys.issue("u1", Role::Admin, 7).unwrap();
        let claims = keys.verify(&token).unwrap();
        assert_eq!(claims.sub, "u1");
        assert_eq!(claims.role, Role::Admin);
        assert_eq!(claims.ver, 7);

        let other = JwtKeys::new(b"another-secret-another-secret-xx", 60);
        assert_eq!(other.verify(&token), Err(JwtError::Invalid));

        let now = chrono::Utc::now().timestamp();
        let expired = keys
            .issue_at("u1", Role::User, now - 120, now - 60)
            .unwrap();
        assert_eq!(keys.verify(&expired), Err(JwtError::Expired));

        // Flip one character of the payload: the signature no longer matches.
        let mut parts: Vec<String> = token.split('.').map(String::from).collect();
        parts[1] = parts[1].replacen('e', "f", 1);
        assert!(keys.verify(&parts.join(".")).is_err());
    }
}
