//! Use-cases shared by HTTP handlers, jobs and the CLI.

pub mod accounts;
pub mod admin;
pub mod app_tokens;
pub mod apps;
pub mod audit;
pub mod catalog;
pub mod checkout;
pub mod complaints;
pub mod console;
pub mod epay;
pub mod exports;
pub mod merchant;
pub mod orders;
pub mod reconciliation;
pub mod records;
pub mod refunds;
pub mod watcher;
