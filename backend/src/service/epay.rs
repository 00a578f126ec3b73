//! The epay (易支付) gateway: orders, queries and refunds for apps that enabled it, and
//! the payment notification to an order's `notify_url`. The protocol's rules are in
//! `domain::epay`; orders are merchant orders (`service::merchant`).

use crate::db::apps::{self as app_db, AppRow};
use crate::db::orders::{self as order_db, OrderRow};
use crate::domain::epay::{self as rules, EpayOrder, PayType, Refused};
use crate::error::{AppError, AppResult};
use crate::startup::AppState;

/// The `param` an epay order keeps in its metadata.
pub fn param_of(metadata: Option<&serde_json::Value>) -> Option<String> {
    metadata?
        .get(rules::PARAM_METADATA_KEY)?
        .as_str()
        .map(str::to_string)
}

fn param_of_text(metadata: Option<&str>) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(metadata?).ok()?;
    param_of(Some(&value))
}

/// An order row as the epay protocol describes it (`None` for an order of no epay app).
fn epay_order_of_row(app: &AppRow, order: &OrderRow) -> Option<EpayOrder> {
    let ty = match order.provider.as_str() {
        "wechat" => Some(PayType::Wxpay),
        "alipay" => Some(PayType::Alipay),
        _ => None,
    };
    Some(EpayOrder {
        pid: app.epay_pid?,
        trade_no: order.order_no.clone(),
        out_trade_no: order.out_order_no.clone()?,
        ty,
        name: order.product_name.clone(),
        money_fen: order.amount_fen,
        refunded_fen: order.refunded_fen,
        paid: order.paid_at.is_some(),
        param: param_of_text(order.metadata.as_deref()),
        api_trade_no: order.provider_transaction_id.clone(),
        created_at: order.created_at,
        paid_at: order.paid_at,
    })
}

/// The signed parameters of the redirect to an epay order's `return_url` (the same as
/// its payment notification's); empty when the app has no epay key or the order is not
/// one of its orders.
pub fn return_query(app: &AppRow, order: &OrderRow) -> Vec<(String, String)> {
    match (app.epay_key.as_deref(), epay_order_of_row(app, order)) {
        (Some(key), Some(o)) if order.app_id.as_deref() == Some(app.id.as_str()) => {
            rules::notify_params(&o, key)
        }
        _ => Vec::new(),
    }
}

/// The payment notification of a paid epay order: its `notify_url` and the signed
/// parameters to append. An error when it cannot be built (the dispatcher records it as
/// a failed attempt and tries again later).
pub async fn notification(
    state: &AppState,
    order_no: &str,
) -> AppResult<(String, Vec<(String, String)>)> {
    let order = order_db::find(&state.db, order_no)
        .await?
        .ok_or(AppError::NotFound("order"))?;
    let (Some(app_id), Some(notify_url)) = (order.app_id.as_deref(), order.notify_url.clone())
    else {
        return Err(AppError::internal(anyhow::anyhow!(
            "order {order_no} has no epay notify_url"
        )));
    };
    let app = app_db::find(&state.db, app_id)
        .await?
        .ok_or(AppError::NotFound("app"))?;
    if order.paid_at.is_none() {
        return Err(AppError::internal(anyhow::anyhow!(
            "order {order_no} is not paid"
        )));
    }
    let params = return_query(&app, &order);
    if params.is_empty() {
        return Err(AppError::internal(anyhow::anyhow!(
            "app {} has no epay key or pid",
            app.id
        )));
    }
    Ok((notify_url, params))
}

/// A refusal as a message; internal failures are logged and shown as a generic message.
pub fn message_of(e: &AppError) -> String {
    match e {
        AppError::Internal(err) => {
            tracing::error!(error = ?err, "epay request failed");
            "internal error, try again".into()
        }
        other => other.to_string(),
    }
}

impl From<Refused> for AppError {
    fn from(r: Refused) -> AppError {
        AppError::bad_request("epay_refused", r.0)
    }
}
