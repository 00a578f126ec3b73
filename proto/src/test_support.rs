//! Shared helpers for unit tests: vector loading and one generated key.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::Value;

use crate::RsaPrivateKey;

/// Loads `proto/testdata/vectors/<rel>` (known-answer vectors copied from the official
/// SDKs' test suites, see its README); a missing file fails the test.
pub(crate) fn vector(rel: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/vectors")
        .join(rel);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("test vector {} is missing: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("test vector {} is not JSON: {e}", path.display()))
}

/// The string at JSON pointer `ptr`; panics when absent or not a string.
pub(crate) fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("vector has no string at {ptr}"))
}

/// One 2048-bit key per test binary (generation is slow in debug builds).
pub(crate) fn generated_key() -> &'static RsaPrivateKey {
    static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| RsaPrivateKey::generate(2048).expect("key generation"))
}
