//! Pure business rules: no actix, diesel or reqwest here.

pub mod accounts;
pub mod app_tokens;
pub mod apps;
pub mod bills;
pub mod business_time;
pub mod catalog;
pub mod complaints;
pub mod csv;
pub mod epay;
pub mod fulfilment;
pub mod order;
pub mod reconciliation;
pub mod retention;
