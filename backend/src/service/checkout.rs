//! The hosted checkout page's public API: what the buyer sees of a merchant order, the
//! buyer's choice of a payment method, the way back to the app, and the WeChat web
//! authorisation (`snsapi_base`) that gives a JSAPI payment its payer's openid.
//!
//! Every route needs the link's `sig` (see `service::apps::checkout_link_signature`):
//! without it, or with a wrong one, the order does not exist (404), so order numbers
//! cannot be enumerated. The openid goes from WeChat's answer straight into the order's
//! JSAPI prepay; the page and the app never see it.

use std::time::Duration;

use api_types::merchant::{CheckoutPayRequest, CheckoutView, MerchantOrder};
use api_types::payment::{OrderStatus, PaymentChannel, PaymentMethod};

use crate::db::apps::AppRow;
use crate::db::orders as order_db;
use crate::domain::apps as rules;
use crate::error::{AppError, AppResult};
use crate::service::{apps as app_service, merchant, orders as order_service};
use crate::startup::AppState;

/// How long the `state` of a web-authorisation round trip stays good.
pub const OAUTH_STATE_TTL_SECS: i64 = 600;

/// 404 unless `sig` signs `order_no`'s checkout link.
pub fn check_link(state: &AppState, order_no: &str, sig: Option<&str>) -> AppResult<()> {
    match sig {
        Some(sig) if app_service::checkout_link_valid(state, order_no, sig) => Ok(()),
        _ => Err(AppError::NotFound("order")),
    }
}

/// The page's own address for an order (relative: same origin as the API).
pub fn page_path(state: &AppState, order_no: &str) -> String {
    format!(
        "/pay/{order_no}?sig={}",
        app_service::checkout_link_signature(state, order_no)
    )
}

/// Where Alipay's return (page / wap pay) sends the buyer of a merchant order: back to
/// its checkout page. `None`: not a merchant order (the shop's own order list).
pub async fn alipay_return_target(state: &AppState, order_no: &str) -> Option<String> {
    match crate::db::apps::find_checkout(&state.db, order_no).await {
        Ok(Some(_)) => Some(page_path(state, order_no)),
        _ => None,
    }
}

/// The methods this server can take (its configured providers).
fn methods(state: &AppState) -> Vec<PaymentMethod> {
    [PaymentMethod::Wechat, PaymentMethod::Alipay]
        .into_iter()
        .filter(|m| state.providers.is_configured(*m))
        .collect()
}

/// What the page shows of a merchant order: no secrets, nothing about the buyer.
pub fn to_view(state: &AppState, app: &AppRow, o: MerchantOrder) -> CheckoutView {
    CheckoutView {
        order_no: o.order_no,
        app_name: app.name.clone(),
        subject: o.subject,
        amount_fen: o.amount_fen,
        amount: o.amount,
        status: o.status,
        payment_method: o.payment_method,
        channel: o.channel,
        methods: match crate::domain::epay::offered_method(o.metadata.as_ref()) {
            Some(only) => methods(state).into_iter().filter(|m| *m == only).collect(),
            None => methods(state),
        },
        qr_code_url: o.qr_code_url,
        h5_url: o.h5_url,
        pay_url: o.pay_url,
        sdk_params: o.sdk_params,
        expire_at: o.expire_at,
        has_return: o.return_url.is_some(),
    }
}

/// The order as the page shows it.
pub async fn view(state: &AppState, order_no: &str) -> AppResult<CheckoutView> {
    let (app, order) = merchant::view(state, order_no).await?;
    Ok(to_view(state, &app, order))
}

/// An open stream keeps the provider watcher checking the order (as the order page does).
pub async fn watch(state: &AppState, order_no: &str) {
    if let Ok(Some(row)) = order_db::find_cached(&state.db, order_no).await {
        order_service::watch_if_pending(state, &row);
    }
}

/// The buyer chooses how to pay. WeChat JSAPI goes through [`oauth_redirect`] (the page
/// has no openid); the `app` channel is for mobile apps, not a web page.
pub async fn pay(
    state: &AppState,
    order_no: &str,
    req: CheckoutPayRequest,
    client_ip: String,
) -> AppResult<CheckoutView> {
    match (req.payment_method, req.channel) {
        (_, PaymentChannel::App) => {
            return Err(AppError::bad_request(
                "unsupported_channel",
                "the app channel is for mobile apps, not the checkout page",
            ))
        }
        (PaymentMethod::Wechat, PaymentChannel::Jsapi) if req.openid.is_none() => {
            return Err(AppError::bad_request(
                "openid_required",
                "WeChat JSAPI needs the payer's openid: open wechat-oauth inside WeChat",
            ))
        }
        _ => {}
    }
    let order = merchant::choose(
        state,
        order_no,
        req.payment_method,
        req.channel,
        req.openid,
        client_ip,
    )
    .await?;
    let (app, _) = merchant::view(state, order_no).await?;
    Ok(to_view(state, &app, order))
}

/// The app's `return_url` with the signed result; 404 when the order has none.
pub async fn return_redirect(state: &AppState, order_no: &str) -> AppResult<String> {
    merchant::return_redirect(state, order_no).await
}

// ---------------------------------------------------------------------------
// WeChat web authorisation (snsapi_base) for JSAPI inside WeChat

fn oauth_base(state: &AppState) -> AppResult<(String, String)> {
    let w = &state.settings.wechat;
    let unavailable = || {
        AppError::bad_request(
            "wechat_oauth_unavailable",
            "WeChat web authorisation is not configured on this server (WECHAT_PAY_APP_SECRET)",
        )
    };
    if !state.providers.is_configured(PaymentMethod::Wechat)
        || w.app_secret.expose().is_empty()
        || w.app_id.is_empty()
    {
        return Err(unavailable());
    }
    let emulator = state.emulator_url.clone();
    let oauth = w.oauth_url.clone().or_else(|| emulator.clone());
    let api = w.api_url.clone().or(emulator);
    match (oauth, api) {
        (Some(oauth), Some(api)) => Ok((oauth, api)),
        _ => Err(unavailable()),
    }
}

fn oauth_mac(state: &AppState, order_no: &str, exp: i64) -> String {
    let mac = rules::hmac_hex(
        state.settings.api_key_secret.expose().as_bytes(),
        format!("wechat-oauth\n{order_no}\n{exp}").as_bytes(),
    );
    mac[..32].to_string()
}

/// `state` for WeChat: `{expiry unix secs}h{mac}`, letters and digits only (WeChat allows
/// `a-zA-Z0-9`, at most 128 bytes), bound to the order.
pub fn oauth_state(state: &AppState, order_no: &str, now: i64) -> String {
    let exp = now + OAUTH_STATE_TTL_SECS;
    format!("{exp}h{}", oauth_mac(state, order_no, exp))
}

/// Whether `s` is a state this server issued for `order_no` and it has not expired.
pub fn oauth_state_valid(state: &AppState, order_no: &str, s: &str, now: i64) -> bool {
    let Some((exp, mac)) = s.split_once('h') else {
        return false;
    };
    let Ok(exp) = exp.parse::<i64>() else {
        return false;
    };
    exp > now && rules::same_signature(&oauth_mac(state, order_no, exp), mac)
}

/// Where the page sends a buyer inside WeChat: WeChat's authorize URL, which comes back
/// to [`oauth_callback`] with a code.
pub async fn oauth_redirect(state: &AppState, order_no: &str) -> AppResult<String> {
    let (oauth, _) = oauth_base(state)?;
    let (_, order) = merchant::view(state, order_no).await?;
    if order.status != OrderStatus::Pending {
        return Err(AppError::conflict(
            "order_not_pending",
            format!("the order is {}", order.status.as_str()),
        ));
    }
    let callback = format!(
        "{}/api/v1/checkout/{order_no}/wechat-oauth/callback?sig={}",
        state.settings.public_base_url.trim_end_matches('/'),
        app_service::checkout_link_signature(state, order_no)
    );
    Ok(format!(
        "{oauth}/connect/oauth2/authorize?appid={}&redirect_uri={}&response_type=code&scope=snsapi_base&state={}#wechat_redirect",
        urlencoding::encode(&state.settings.wechat.app_id),
        urlencoding::encode(&callback),
        oauth_state(state, order_no, chrono::Utc::now().timestamp()),
    ))
}

/// Why a code could not be turned into an openid.
#[derive(Debug, PartialEq, Eq)]
pub enum OauthError {
    /// WeChat's own error (`errcode`, `errmsg`): 40029 invalid code, 40125 invalid appsecret.
    Wechat(i64, String),
    /// Not an answer WeChat gives.
    Unreadable,
}

/// The openid in WeChat's answer to `/sns/oauth2/access_token`.
pub fn parse_token_answer(body: &str) -> Result<String, OauthError> {
    let v: serde_json::Value = serde_json::from_str(body).map_err(|_| OauthError::Unreadable)?;
    if let Some(code) = v.get("errcode").and_then(serde_json::Value::as_i64) {
        if code != 0 {
            let msg = v
                .get("errmsg")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default();
            return Err(OauthError::Wechat(code, msg.to_string()));
        }
    }
    match v.get("openid").and_then(serde_json::Value::as_str) {
        Some(id) if !id.is_empty() && id.len() <= 128 => Ok(id.to_string()),
        _ => Err(OauthError::Unreadable),
    }
}

async fn exchange_code(state: &AppState, api: &str, code: &str) -> AppResult<String> {
    let w = &state.settings.wechat;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(w.timeout_secs))
        .build()
        .map_err(AppError::internal)?;
    let resp = client
        .get(format!("{api}/sns/oauth2/access_token"))
        .query(&[
            ("appid", w.app_id.as_str()),
            ("secret", w.app_secret.expose()),
            ("code", code),
            ("grant_type", "authorization_code"),
        ])
        .send()
        .await
        .map_err(|e| AppError::ProviderUnavailable(format!("WeChat web authorisation: {e}")))?;
    let body = resp
        .text()
        .await
        .map_err(|e| AppError::ProviderUnavailable(format!("WeChat web authorisation: {e}")))?;
    parse_token_answer(&body).map_err(|e| {
        tracing::warn!(error = ?e, "WeChat code exchange refused");
        AppError::bad_request(
            "wechat_oauth_failed",
            "WeChat did not confirm the buyer; open the page again",
        )
    })
}

/// WeChat's redirect back with `code` and `state`: exchange the code for the openid,
/// choose WeChat JSAPI with it, and send the buyer back to the page (which then invokes
/// the payment). Every failure also goes back to the page, named in `wechat_error`.
pub async fn oauth_callback(
    state: &AppState,
    order_no: &str,
    code: Option<&str>,
    oauth_state_param: Option<&str>,
    client_ip: String,
) -> String {
    let page = page_path(state, order_no);
    let now = chrono::Utc::now().timestamp();
    let result = async {
        if !oauth_state_param.is_some_and(|s| oauth_state_valid(state, order_no, s, now)) {
            return Err(AppError::bad_request(
                "wechat_oauth_expired",
                "the authorisation is stale; open the page again",
            ));
        }
        let code = code
            .filter(|c| !c.is_empty() && c.len() <= 256)
            .ok_or_else(|| AppError::bad_request("wechat_oauth_failed", "WeChat sent no code"))?;
        let (_, api) = oauth_base(state)?;
        let openid = exchange_code(state, &api, code).await?;
        merchant::choose(
            state,
            order_no,
            PaymentMethod::Wechat,
            PaymentChannel::Jsapi,
            Some(openid),
            client_ip,
        )
        .await
    }
    .await;
    match result {
        Ok(_) => page,
        Err(e) => {
            tracing::info!(%order_no, code = e.code(), "checkout WeChat authorisation did not lead to a payment");
            format!("{page}&wechat_error={}", e.code())
        }
    }
}

/// Development only: the emulator pays the order as a buyer would (the "simulate scan &
/// pay" button of the page). 404 in production.
pub async fn simulate_pay(state: &AppState, order_no: &str) -> AppResult<()> {
    let base = match (&state.emulator_url, state.settings.is_development()) {
        (Some(url), true) => url.clone(),
        _ => return Err(AppError::NotFound("route")),
    };
    let row = order_db::find(&state.db, order_no)
        .await?
        .ok_or_else(|| AppError::conflict("no_method_chosen", "choose a payment method first"))?;
    if row.status != OrderStatus::Pending {
        return Err(AppError::conflict(
            "order_not_pending",
            "the order is not pending",
        ));
    }
    order_service::pay_at_emulator(&base, &row.provider, order_no).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn token_answers() {
        assert_eq!(
            parse_token_answer(
                r#"{"access_token":"a","expires_in":7200,"refresh_token":"r","openid":"oABC","scope":"snsapi_base"}"#
            ),
            Ok("oABC".into())
        );
        assert_eq!(
            parse_token_answer(r#"{"errcode":40029,"errmsg":"invalid code"}"#),
            Err(OauthError::Wechat(40029, "invalid code".into()))
        );
        assert_eq!(parse_token_answer("<html>"), Err(OauthError::Unreadable));
        assert_eq!(
            parse_token_answer(r#"{"access_token":"a"}"#),
            Err(OauthError::Unreadable)
        );
    }
}
