//! The epay (易支付) gateway: orders, queries and refunds for apps that enabled it, and
//! the payment notification to an order's `notify_url`. The protocol's rules are in
//! `domain::epay`; orders are merchant orders (`service::merchant`).

use std::net::IpAddr;

use api_types::merchant::{MerchantOrder, MerchantOrderRequest, MerchantRefundRequest};
use api_types::payment::OrderStatus;
use serde_json::{json, Value};

use crate::db::apps::{self as app_db, AppRow};
use crate::db::orders::{self as order_db, OrderRow};
use crate::domain::apps::epay_money_fen;
use crate::domain::epay::{
    self as rules, EpayOrder, OrderRef, Params, PayRequest, PayType, Refused, Target,
};
use crate::error::{AppError, AppResult};
use crate::service::merchant;
use crate::startup::AppState;

/// The app a request's `pid` names, with its epay key: enabled for epay, not revoked.
async fn merchant_app(state: &AppState, p: &Params) -> Result<(AppRow, String), Refused> {
    let pid = p.pid()?;
    let app = app_db::find_by_epay_pid(&state.db, pid)
        .await
        .map_err(|e| refused_by(&AppError::from(e)))?
        .ok_or_else(|| Refused(format!("unknown merchant {pid}")))?;
    if app.revoked_at.is_some() {
        return Err(Refused("this merchant's access is revoked".into()));
    }
    match (&app.epay_key, app.epay_enabled) {
        (Some(key), true) => {
            let key = key.clone();
            Ok((app, key))
        }
        _ => Err(Refused(
            "the epay gateway is not enabled for this merchant".into(),
        )),
    }
}

/// A failure of ours as the message a client sees; internals stay in the logs.
fn refused_by(e: &AppError) -> Refused {
    Refused(message_of(e))
}

/// An epay order's metadata: its `param`, and the `type` when the page chooses the
/// channel (it then offers only that method).
fn metadata_of(req: &PayRequest, page_chooses: bool) -> Option<Value> {
    let mut m = serde_json::Map::new();
    if let Some(p) = &req.param {
        m.insert(rules::PARAM_METADATA_KEY.into(), json!(p));
    }
    if let (true, Some(ty)) = (page_chooses, req.ty) {
        m.insert(rules::TYPE_METADATA_KEY.into(), json!(ty.as_str()));
    }
    (!m.is_empty()).then_some(Value::Object(m))
}

/// Create (or find again, for the same parameters) the merchant order of a checked
/// request. `channel`: `None` with a type leaves the channel to the checkout page.
async fn create_order(
    state: &AppState,
    app: &AppRow,
    req: &PayRequest,
    channel: Option<api_types::payment::PaymentChannel>,
    ip: IpAddr,
) -> Result<MerchantOrder, Refused> {
    // The notification is a GET from this server: in production never to an address of
    // its own network (loopback, private, link-local, metadata services).
    if !rules::notify_url_allowed(&req.notify_url, !state.settings.is_development()) {
        return Err(Refused(
            "notify_url must be a public http(s) address".into(),
        ));
    }
    let body = MerchantOrderRequest {
        out_order_no: req.out_trade_no.clone(),
        subject: Some(req.name.clone()),
        amount_fen: Some(req.money_fen),
        product_id: None,
        quantity: None,
        customer_ref: None,
        // Without a channel the checkout page chooses it (JSAPI inside WeChat, wap on a
        // phone): the order is left open, and the page offers only the type asked for.
        payment_method: channel.and(req.ty.map(PayType::method)),
        channel,
        openid: None,
        metadata: metadata_of(req, channel.is_none()),
        return_url: req.return_url.clone(),
        expire_minutes: None,
    };
    let client_ip = req.clientip.unwrap_or(ip).to_string();
    match merchant::create(state, app, body, Some(req.notify_url.clone()), client_ip).await {
        Ok((order, _created)) => Ok(order),
        Err(AppError::Conflict { .. }) => Err(Refused(
            "out_trade_no is already used with other parameters".into(),
        )),
        Err(e) => Err(refused_by(&e)),
    }
}

/// submit.php: the hosted checkout page's URL for the request's order.
pub async fn submit(state: &AppState, p: &Params, ip: IpAddr) -> Result<String, Refused> {
    let (app, key) = merchant_app(state, p).await?;
    p.signed_by(&key)?;
    let req = rules::parse_pay(p, app.max_amount_fen, false)?;
    let order = create_order(state, &app, &req, None, ip).await?;
    Ok(order.checkout_url)
}

/// mapi.php: the request's order and how to pay it, as the protocol's JSON answer.
pub async fn mapi(state: &AppState, p: &Params, ip: IpAddr) -> Value {
    match mapi_inner(state, p, ip).await {
        Ok(v) => v,
        Err(r) => rules::failure(&r.0),
    }
}

async fn mapi_inner(state: &AppState, p: &Params, ip: IpAddr) -> Result<Value, Refused> {
    let (app, key) = merchant_app(state, p).await?;
    p.signed_by(&key)?;
    let req = rules::parse_pay(p, app.max_amount_fen, true)?;
    let ty = req
        .ty
        .ok_or_else(|| Refused("missing parameter type".into()))?;
    let (channel, target) = rules::plan(ty, req.device);
    let order = create_order(state, &app, &req, channel, ip).await?;
    if order.status != OrderStatus::Pending {
        return Err(Refused(format!(
            "order {} is {}",
            order.order_no,
            order.status.as_str()
        )));
    }
    let value = match target {
        Target::Checkout => Some(order.checkout_url.clone()),
        Target::QrCode => order.qr_code_url.clone(),
        Target::ProviderUrl => match ty {
            PayType::Wxpay => order.h5_url.clone(),
            PayType::Alipay => order.pay_url.clone(),
        },
    };
    // The same out_trade_no asked again for another device keeps its first channel.
    let value = value.ok_or_else(|| {
        Refused("this order was created for another device; use a new out_trade_no".into())
    })?;
    Ok(rules::mapi_answer(&order.order_no, target, &value))
}

/// api.php: `act=order` and `act=refund`, as the protocol's JSON answer.
pub async fn api(state: &AppState, p: &Params) -> Value {
    match api_inner(state, p).await {
        Ok(v) => v,
        Err(r) => rules::failure(&r.0),
    }
}

async fn api_inner(state: &AppState, p: &Params) -> Result<Value, Refused> {
    let (app, key) = merchant_app(state, p).await?;
    // The clones authenticate api.php with the plain key; signed requests are taken too.
    if !p.has_key(&key) && p.signed_by(&key).is_err() {
        return Err(Refused("wrong key or signature".into()));
    }
    match p.get("act") {
        Some("order") => {
            let order = find(state, &app, &rules::order_ref(p)?).await?;
            Ok(rules::order_answer(&epay_order(&app, &order)?))
        }
        Some("refund") => refund(state, &app, p).await,
        Some(other) => Err(Refused(format!("unknown act {other}"))),
        None => Err(Refused("missing parameter act".into())),
    }
}

/// One of the app's orders by `trade_no` or `out_trade_no` (another app's: not found).
async fn find(state: &AppState, app: &AppRow, r: &OrderRef) -> Result<MerchantOrder, Refused> {
    let found = match r {
        OrderRef::TradeNo(no) => merchant::get(state, app, no).await,
        OrderRef::OutTradeNo(out) => merchant::find_by_out(state, app, out).await,
    };
    match found {
        Ok(o) => Ok(o),
        Err(AppError::NotFound(_)) => Err(Refused("order not found".into())),
        Err(e) => Err(refused_by(&e)),
    }
}

async fn refund(state: &AppState, app: &AppRow, p: &Params) -> Result<Value, Refused> {
    let order = find(state, app, &rules::order_ref(p)?).await?;
    let money = p
        .get("money")
        .ok_or_else(|| Refused("missing parameter money".into()))?;
    let fen = epay_money_fen(money).ok_or_else(|| {
        Refused("money must be yuan with at most 2 decimals, more than 0 (e.g. 12.30)".into())
    })?;
    let out_refund_no = rules::refund_no(p, &order.order_no, fen)?;
    let request = MerchantRefundRequest {
        order_no: order.order_no.clone(),
        amount_fen: Some(fen),
        out_refund_no: Some(out_refund_no.clone()),
        reason: Some("epay api.php refund".into()),
    };
    let done = merchant::refund(state, app, request, None)
        .await
        .map_err(|e| refused_by(&e))?;
    if done.amount_fen != fen {
        // The derived refund number names an earlier refund of another amount.
        return Err(Refused(
            "out_refund_no was already used for another amount".into(),
        ));
    }
    Ok(rules::refund_answer(
        &order.order_no,
        &order.out_order_no,
        done.amount_fen,
        &done.out_refund_no,
    ))
}

/// A merchant order as the epay protocol describes it.
fn epay_order(app: &AppRow, o: &MerchantOrder) -> Result<EpayOrder, Refused> {
    let pid = app
        .epay_pid
        .ok_or_else(|| Refused("the epay gateway is not enabled for this merchant".into()))?;
    Ok(EpayOrder {
        pid,
        trade_no: o.order_no.clone(),
        out_trade_no: o.out_order_no.clone(),
        ty: o.payment_method.map(PayType::of_method),
        name: o.subject.clone(),
        money_fen: o.amount_fen,
        refunded_fen: o.refunded_fen,
        paid: o.paid_at.is_some(),
        param: param_of(o.metadata.as_ref()),
        api_trade_no: o.provider_transaction_id.clone(),
        created_at: o.created_at.naive_utc(),
        paid_at: o.paid_at.map(|t| t.naive_utc()),
    })
}

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
