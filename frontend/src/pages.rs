//! One module per screen.

pub mod admin;
pub mod auth;
pub mod checkout;
pub mod hosted;
pub mod orders;
pub mod products;
