//! fenpay: a self-hosted payment backend for WeChat Pay API v3 and Alipay.
//!
//! Data flows one way: `http` -> `service` -> (`domain`, `db`, `providers`); jobs and the
//! CLI call the same services.

/// The allocator the server binary (and the benchmark) run on: chosen by measurement,
/// see BENCHMARKS.md.
pub use mimalloc::MiMalloc;

pub mod auth;
pub mod config;
pub mod db;
pub use fenpay_emulator::devkeys;
pub mod devtools;
pub mod doctor;
pub mod domain;
pub mod emulator;
pub mod error;
pub mod http;
pub mod jobs;
pub mod live;
pub mod metrics;
pub mod providers;
pub mod service;
pub mod shutdown;
pub mod startup;
pub mod telemetry;

pub use config::Settings;
pub use startup::Application;
