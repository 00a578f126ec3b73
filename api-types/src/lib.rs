//! Wire types of the fenpay HTTP API, shared by the backend (which derives OpenAPI
//! schemas and validation rules with the `server` feature) and the WASM frontend.
//!
//! Money is integer fen everywhere. Where the public contract shows a yuan amount
//! (`"amount": 99.00`) it is rendered from fen by [`Yuan`], never through a float.

pub mod admin;
pub mod app_tokens;
pub mod apps;
pub mod auth;
pub mod complaints;
pub mod console;
pub mod error;
pub mod merchant;
pub mod money;
pub mod payment;
pub mod product;
pub mod reconciliation;
#[cfg(feature = "server")]
pub mod sql;

pub use money::Yuan;
