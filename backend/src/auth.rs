//! Accounts: JWT issuing/verification, argon2id password hashing, the `AuthUser`
//! extractor and the login-failure limiter.

pub mod app_tokens;
pub mod extractor;
pub mod jwt;
pub mod limiter;
pub mod password;
pub mod sessions;

pub use extractor::AuthUser;
pub use jwt::{Claims, JwtKeys};
