//! Callback debugging from the command line (in the spirit of Stripe's CLI):
//! `fenpay trigger paid <order_no>` makes the emulator pay an order (it then notifies the
//! running server, as the provider would), and `fenpay replay <payment_record_id>` sends
//! a stored notification to the local server's callback route again, so it goes through
//! verification again.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::config::Settings;
use crate::db::{self, Db};

/// Where the emulator runs for this configuration: `EMULATOR_URL`, else `EMULATOR_BIND`.
pub fn emulator_url(settings: &Settings) -> String {
    settings
        .emulator
        .external_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", local(&settings.emulator.bind)))
}

/// The local server's base URL for `BIND_ADDR` (a wildcard address becomes loopback).
pub fn server_url(settings: &Settings) -> String {
    format!("http://{}", local(&settings.bind))
}

fn local(bind: &str) -> String {
    bind.replacen("0.0.0.0:", "127.0.0.1:", 1)
        .replacen("[::]:", "[::1]:", 1)
}

async fn open_db(settings: &Settings) -> anyhow::Result<Db> {
    Ok(Db::connect(settings.database_url.expose(), 1).await?)
}

/// `fenpay trigger paid <order_no>`: the buyer pays at the emulator; then wait up to
/// `wait` for the server to have applied the notification. Returns the final status.
pub async fn trigger_paid(
    settings: &Settings,
    order_no: &str,
    wait: Duration,
) -> anyhow::Result<String> {
    if !settings.is_development() {
        bail!(
            "APP_ENV=production: `fenpay trigger` drives the provider emulator, development only"
        );
    }
    let db = open_db(settings).await?;
    let Some(order) = db::orders::find(&db, order_no).await? else {
        bail!("no order {order_no} in DATABASE_URL");
    };
    let emulator = emulator_url(settings);
    let url = format!("{emulator}/__emulator/{}/pay/{order_no}", order.provider);
    let res = reqwest::Client::new()
        .post(&url)
        .json(&serde_json::json!({}))
        .send()
        .await
        .with_context(|| {
            format!("cannot reach the emulator at {emulator} (EMULATOR_URL / EMULATOR_BIND)")
        })?;
    let status = res.status();
    let text = res.text().await.unwrap_or_default();
    if !status.is_success() {
        bail!("the emulator refused to pay {order_no}: {status} {text}");
    }
    println!(
        "emulator: {} paid {order_no}; waiting for the notification to be applied",
        order.provider
    );
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let now = db::orders::find(&db, order_no)
            .await?
            .map(|o| o.status.as_str().to_string())
            .unwrap_or_default();
        if now != "pending" || tokio::time::Instant::now() >= deadline {
            return Ok(now);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the server answered a replayed notification.
#[derive(Debug)]
pub struct Replayed {
    pub url: String,
    pub status: u16,
    pub body: String,
}

/// Whether `base` names this host (a loopback address or `localhost`).
fn is_loopback_url(base: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(base) else {
        return false;
    };
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Headers a replay leaves out: the transport's own.
const HOP_HEADERS: [&str; 6] = [
    "host",
    "content-length",
    "connection",
    "transfer-encoding",
    "accept-encoding",
    "user-agent",
];

/// `fenpay replay <payment_record_id>`: post the stored notification (its raw body and
/// its headers, signature included) to the callback route it arrived on.
pub async fn replay(settings: &Settings, id: i64, base: Option<&str>) -> anyhow::Result<Replayed> {
    let db = open_db(settings).await?;
    let Some(rec) = db::orders::record_by_id(&db, id).await? else {
        bail!("no payment record {id}");
    };
    let route = match (rec.provider.as_str(), rec.kind.as_str()) {
        ("wechat", "notification") => "/api/v1/payment/wechat/callback",
        ("wechat", "refund_notification") => "/api/v1/payment/wechat/refund-callback",
        ("alipay", "notification" | "refund_notification") => "/api/v1/payment/alipay/callback",
        (p, k) => bail!("payment record {id} is a {p} {k}, not a notification: nothing to replay"),
    };
    let headers: HashMap<String, String> =
        serde_json::from_str(&rec.headers).context("the record's headers are not a JSON map")?;
    let base = base.map_or_else(
        || server_url(settings),
        |b| b.trim_end_matches('/').to_string(),
    );
    if !settings.is_development() && !is_loopback_url(&base) {
        bail!(
            "APP_ENV=production: replay sends a provider-signed notification, so only to this \
             host's own server (a loopback --url), not to {base}"
        );
    }
    let url = format!("{base}{route}");
    let mut req = reqwest::Client::new().post(&url).body(rec.body.clone());
    for (k, v) in &headers {
        if !HOP_HEADERS.contains(&k.as_str()) {
            req = req.header(k, v);
        }
    }
    let res = req
        .send()
        .await
        .with_context(|| format!("cannot reach the server at {base} (BIND_ADDR, or --url)"))?;
    Ok(Replayed {
        url,
        status: res.status().as_u16(),
        body: res.text().await.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn production_replays_go_to_this_host_only() {
        assert!(super::is_loopback_url("http://127.0.0.1:8080"));
        assert!(super::is_loopback_url("http://localhost:8080/"));
        assert!(super::is_loopback_url("http://[::1]:8080"));
        assert!(!super::is_loopback_url("https://pay.example.com"));
        assert!(!super::is_loopback_url("http://10.0.0.5:8080"));
        assert!(!super::is_loopback_url("not a url"));
    }
}
