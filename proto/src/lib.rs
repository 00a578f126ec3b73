//! Protocol primitives shared by fenpay's provider clients and its local
//! provider emulator: WeChat Pay API v3 (SHA256-RSA2048 signatures,
//! AEAD_AES_256_GCM) and Alipay OpenAPI (RSA2 signing strings, sync response
//! extraction, certificate SNs).
//!
//! Everything here is pure: no I/O, no async, no clock reads except where a
//! function explicitly generates fresh material (keys, nonces, certificates).
//! Verification functions take `now` as a parameter so tests can freeze time.

pub mod alipay;
pub mod bills;
pub mod keys;
mod pem;
mod secret;
pub mod wechat;

#[cfg(test)]
mod test_support;

pub use keys::{Certificate, RsaPrivateKey, RsaPublicKey};
pub use secret::Secret;

/// Every failure this crate reports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    /// A key could not be parsed, converted or generated.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// A certificate could not be parsed or built.
    #[error("invalid certificate: {0}")]
    InvalidCertificate(String),
    /// A signature did not verify (includes undecodable signatures).
    #[error("signature verification failed")]
    BadSignature,
    /// A signed message's timestamp is too far from `now`.
    #[error("timestamp {timestamp} is outside the allowed clock skew (now {now})")]
    TimestampSkew {
        /// The timestamp carried by the message, in Unix seconds.
        timestamp: i64,
        /// The verifier's clock, in Unix seconds.
        now: i64,
    },
    /// AEAD decryption failed (wrong key, nonce, associated data, or tampered data).
    #[error("decryption failed")]
    Decrypt,
    /// Signing failed inside the crypto backend.
    #[error("signing failed")]
    Sign,
    /// Input did not have the expected shape.
    #[error("malformed input: {0}")]
    Malformed(String),
}
