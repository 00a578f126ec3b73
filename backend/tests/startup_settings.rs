//! `fenpay serve` refuses bad settings before it touches anything: it exits non-zero
//! and its message names the variable and what it accepts (the binary, as an operator
//! runs it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Run `fenpay serve` in an empty directory (no `.env`) with only `vars` set; its exit
/// status and stderr, or `None` when it was still running after 30 s (it started).
fn serve_with(vars: &[(&str, &str)]) -> Option<(i32, String)> {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fenpay"));
    cmd.arg("serve")
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "error")
        .env("DATA_DIR", dir.path())
        .env("BIND_ADDR", "127.0.0.1:0")
        .env("EMULATOR_BIND", "127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            return Some((status.code().unwrap_or(-1), stderr));
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn start_up_refuses_numbers_outside_their_range_naming_the_variable() {
    for (var, value, message) in [
        (
            "DATABASE_POOL_SIZE",
            "0",
            "DATABASE_POOL_SIZE must be between 1 and 512, got 0",
        ),
        (
            "HTTP_WORKERS",
            "0",
            "HTTP_WORKERS must be between 1 and 512, got 0",
        ),
        (
            "HTTP_WORKERS",
            "513",
            "HTTP_WORKERS must be between 1 and 512, got 513",
        ),
        (
            "WECHAT_PAY_TIMEOUT_SECS",
            "0",
            "WECHAT_PAY_TIMEOUT_SECS must be between 1 and 120, got 0",
        ),
        (
            "RECONCILE_MIN_AGE_SECS",
            "-60",
            "RECONCILE_MIN_AGE_SECS must be between 0 and 86400, got -60",
        ),
    ] {
        let (code, stderr) = serve_with(&[(var, value)])
            .unwrap_or_else(|| panic!("{var}={value}: the server started"));
        assert_eq!(code, 1, "{var}={value}: {stderr}");
        assert!(
            stderr.contains(&format!("fenpay: {message}")),
            "{var}={value}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{var}={value}: {stderr}");
    }
}

#[test]
fn production_start_up_refuses_a_local_notify_url() {
    let (code, stderr) = serve_with(&[
        ("APP_ENV", "production"),
        ("DATABASE_URL", "sqlite://fenpay.db"),
        (
            "JWT_SECRET",
            "f3a9c2e17b5d4a8e9c0b1d2e3f4a5b6c7d8e9f0a1b2c3d4e",
        ),
        (
            "WECHAT_PAY_PRIVATE_KEY_PATH",
            "/nonexistent/apiclient_key.pem",
        ),
    ])
    .expect("the server started");
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("fenpay: PUBLIC_BASE_URL: unset, so WECHAT_PAY_NOTIFY_URL defaults to http://127.0.0.1:0/api/v1/payment/wechat/callback"),
        "{stderr}"
    );
}
