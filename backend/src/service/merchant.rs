//! Merchant orders: what an app asks for through the server API (or the epay gateway),
//! the buyer's choice of a payment method on the hosted checkout page, and the app's view
//! of its orders.
//!
//! A merchant order is a checkout row (`db::apps::CheckoutRow`) from the start; its order
//! row (same `order_no`) is written when a payment method is chosen, by a compare-and-set
//! on the checkout in the same transaction. From then on the order follows the ordinary
//! lifecycle (callbacks, sweeper, reconciler, refunds) unchanged.

use api_types::admin::{RefundRequest, RefundResponse};
use api_types::merchant::{
    MerchantOrder, MerchantOrderList, MerchantOrderQuery, MerchantOrderRequest,
    MerchantRefundRequest,
};
use api_types::payment::{OrderStatus, PaymentChannel, PaymentMethod};
use api_types::Yuan;
use chrono::Duration;

use crate::db::apps::{
    self as app_db, AppRow, CheckoutRow, ChooseOutcome, CHECKOUT_CANCELLED, CHECKOUT_CHOSEN,
    CHECKOUT_OPEN,
};
use crate::db::orders::{self as order_db, OrderRow};
use crate::db::{self, products};
use crate::domain::apps::{self as rules, Fulfilment};
use crate::domain::fulfilment::{self as grants, Rate, Snapshot, Tier};
use crate::domain::order as order_rules;
use crate::error::{AppError, AppResult};
use crate::service::{apps as app_service, orders as order_service, refunds};
use crate::startup::AppState;

/// Longest subject.
pub const MAX_SUBJECT_CHARS: usize = 128;
/// Longest lifetime of a merchant order, minutes.
pub const MAX_EXPIRE_MINUTES: i64 = 1440;
/// Product type of an order with an amount set by the app.
pub const CUSTOM: &str = "custom";

fn invalid(code: &'static str, message: impl Into<String>) -> AppError {
    AppError::bad_request(code, message.into())
}

/// Where the buyer pays: `{PUBLIC_BASE_URL}/pay/{order_no}?sig=...`.
pub fn checkout_url(state: &AppState, order_no: &str) -> String {
    format!(
        "{}/pay/{order_no}?sig={}",
        state.settings.public_base_url.trim_end_matches('/'),
        app_service::checkout_link_signature(state, order_no)
    )
}

/// A return URL the app may use: absolute http(s), its host allowed for the app.
fn check_return_url(app: &AppRow, url: &str) -> AppResult<()> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|_| invalid("invalid_return_url", "return_url must be an absolute URL"))?;
    let hosts = rules::parse_hosts(&app.return_hosts);
    if url.len() > 1024
        || !rules::return_host_allowed(parsed.scheme(), parsed.host_str().unwrap_or(""), &hosts)
    {
        return Err(invalid(
            "invalid_return_url",
            "return_url must be http(s), at most 1024 characters, on one of the app's allowed return hosts",
        ));
    }
    Ok(())
}

/// The provider, channel and openid a request fixes are usable on this server.
fn check_method(
    state: &AppState,
    method: PaymentMethod,
    channel: PaymentChannel,
    openid: Option<&str>,
) -> AppResult<()> {
    if !crate::providers::Providers::supports(method, channel) {
        return Err(invalid(
            "unsupported_channel",
            format!(
                "{} does not support the {} channel",
                method.as_str(),
                channel.as_str()
            ),
        ));
    }
    if channel == PaymentChannel::Jsapi && openid.is_none_or(str::is_empty) {
        return Err(invalid(
            "openid_required",
            "the jsapi channel requires openid",
        ));
    }
    if !state.providers.is_configured(method) {
        return Err(invalid(
            "payment_method_unavailable",
            format!("{} is not configured on this server", method.as_str()),
        ));
    }
    Ok(())
}

/// A `sk_test_` app drives the emulator only: a server with real providers refuses it.
fn check_mode(state: &AppState, app: &AppRow) -> AppResult<()> {
    if app.key_mode == "test" && state.emulator_url.is_none() {
        return Err(AppError::Forbidden(
            "a test key works only on a server whose providers are the emulator".into(),
        ));
    }
    Ok(())
}

fn tier_of(p: &products::ProductRow) -> Option<Tier> {
    if p.kind != "membership" {
        return None;
    }
    Some(Tier {
        name: p.membership_tier.clone()?,
        rate: Rate {
            rank: p.tier_rank.unwrap_or(0),
            price_fen: p.price_fen,
            days: i64::from(p.membership_days?),
        },
    })
}

/// Create a merchant order (or find the one this `out_order_no` made before). Returns the
/// order and whether this call created it. With `payment_method`, the trade is opened at
/// the provider at once; a provider failure leaves the order open for the buyer's choice
/// (a retry of the same request tries the provider again).
pub async fn create(
    state: &AppState,
    app: &AppRow,
    req: MerchantOrderRequest,
    notify_url: Option<String>,
    client_ip: String,
) -> AppResult<(MerchantOrder, bool)> {
    check_mode(state, app)?;
    if !rules::valid_ref(&req.out_order_no) {
        return Err(invalid(
            "invalid_out_order_no",
            "out_order_no must be 1-64 of A-Z a-z 0-9 _ - . : |",
        ));
    }
    if let Some(r) = req.customer_ref.as_deref() {
        if !rules::valid_ref(r) {
            return Err(invalid(
                "invalid_customer_ref",
                "customer_ref must be 1-64 of A-Z a-z 0-9 _ - . : |",
            ));
        }
    }
    if let Some(subject) = req.subject.as_deref() {
        let n = subject.chars().count();
        if n == 0 || n > MAX_SUBJECT_CHARS || subject.chars().any(char::is_control) {
            return Err(invalid(
                "invalid_subject",
                format!(
                    "subject must be 1-{MAX_SUBJECT_CHARS} characters without control characters"
                ),
            ));
        }
    }
    let metadata = match &req.metadata {
        None | Some(serde_json::Value::Null) => None,
        Some(v @ serde_json::Value::Object(_)) => {
            let text = v.to_string();
            if text.len() > rules::MAX_METADATA_BYTES {
                return Err(invalid(
                    "invalid_metadata",
                    format!(
                        "metadata is at most {} bytes as JSON",
                        rules::MAX_METADATA_BYTES
                    ),
                ));
            }
            Some(text)
        }
        Some(_) => {
            return Err(invalid(
                "invalid_metadata",
                "metadata must be a JSON object",
            ))
        }
    };
    if let Some(url) = req.return_url.as_deref() {
        check_return_url(app, url)?;
    }
    let expire_minutes = req
        .expire_minutes
        .unwrap_or(state.settings.order_expire_minutes);
    if !(1..=MAX_EXPIRE_MINUTES).contains(&expire_minutes) {
        return Err(invalid(
            "invalid_expire_minutes",
            format!("expire_minutes must be between 1 and {MAX_EXPIRE_MINUTES}"),
        ));
    }
    match (req.payment_method, req.channel) {
        (Some(method), channel) => check_method(
            state,
            method,
            channel.unwrap_or_default(),
            req.openid.as_deref(),
        )?,
        (None, Some(_)) => return Err(invalid(
            "channel_without_method",
            "channel needs payment_method (without one, the buyer chooses on the checkout page)",
        )),
        (None, None) => {}
    }
    let quantity = req.quantity.unwrap_or(1);
    if !(1..=order_service::MAX_QUANTITY).contains(&quantity) {
        return Err(invalid(
            "invalid_quantity",
            format!(
                "quantity must be between 1 and {}",
                order_service::MAX_QUANTITY
            ),
        ));
    }
    let fulfilment = Fulfilment::parse(&app.fulfilment).unwrap_or(Fulfilment::Webhook);
    // What is bought: an amount, or a catalog product priced and frozen now.
    let (product_type, product_id, unit_price, amount_fen, subject, snapshot) =
        match (req.amount_fen, req.product_id) {
            (Some(amount), None) => {
                if req.quantity.is_some_and(|q| q != 1) {
                    return Err(invalid(
                        "invalid_quantity",
                        "quantity applies to product_id only",
                    ));
                }
                let subject = req.subject.clone().ok_or_else(|| {
                    invalid("invalid_subject", "subject is required with amount_fen")
                })?;
                (
                    CUSTOM.to_string(),
                    None,
                    amount,
                    amount,
                    subject,
                    Snapshot::default(),
                )
            }
            (None, Some(id)) => {
                let product = products::find(&state.db, id)
                    .await?
                    .filter(|p| p.active)
                    .ok_or(AppError::NotFound("product"))?;
                let amount = order_rules::order_amount(product.price_fen, quantity)
                    .ok_or_else(|| invalid("invalid_quantity", "amount overflows"))?;
                let snap = match fulfilment {
                    Fulfilment::Builtin => {
                        grants::purchase_snapshot(product.points, tier_of(&product), quantity, None)
                    }
                    // The app credits its buyer from the events: nothing here.
                    Fulfilment::Webhook => Snapshot::default(),
                };
                let subject = req.subject.clone().unwrap_or_else(|| product.name.clone());
                (
                    product.kind.clone(),
                    Some(id),
                    product.price_fen,
                    amount,
                    subject,
                    snap,
                )
            }
            _ => {
                return Err(invalid(
                    "amount_or_product",
                    "give exactly one of amount_fen and product_id",
                ))
            }
        };
    if !(1..=app.max_amount_fen).contains(&amount_fen) {
        return Err(invalid(
            "invalid_amount",
            format!(
                "the amount must be between 1 and {} fen",
                app.max_amount_fen
            ),
        ));
    }
    let canonical = serde_json::json!({ "request": &req, "notify_url": &notify_url });
    let request_hash = rules::request_hash(&canonical.to_string());
    let user_id = match req.customer_ref.as_deref() {
        Some(r) => app_service::customer_account(&state.db, app, r).await?,
        None => app.user_id.clone(),
    };
    let now = db::now();
    let tier = snapshot.tier.as_ref();
    let row = CheckoutRow {
        order_no: order_rules::new_order_no(chrono::Utc::now()),
        app_id: app.id.clone(),
        out_order_no: req.out_order_no.clone(),
        request_hash,
        user_id,
        subject,
        amount_fen,
        product_type,
        product_id,
        unit_price_fen: unit_price,
        quantity,
        snap_points: snapshot.points,
        snap_membership_days: snapshot.membership_days,
        snap_tier: tier.map(|t| t.name.clone()),
        snap_tier_rank: tier.map(|t| t.rate.rank),
        snap_tier_price_fen: tier.map(|t| t.rate.price_fen),
        snap_tier_days: tier.map(|t| i32::try_from(t.rate.days).unwrap_or(i32::MAX)),
        customer_ref: req.customer_ref.clone(),
        metadata,
        payment_method: None,
        channel: None,
        return_url: req.return_url.clone(),
        notify_url,
        fulfilment: fulfilment.as_str().into(),
        status: CHECKOUT_OPEN.into(),
        expire_at: now + Duration::minutes(expire_minutes),
        created_at: now,
        updated_at: now,
    };
    let (checkout, created) = match app_db::insert_checkout(&state.db, &row).await? {
        Ok(()) => (row, true),
        Err(existing) if existing.request_hash == row.request_hash => (*existing, false),
        Err(_) => {
            return Err(AppError::conflict(
                "out_order_no_conflict",
                "this out_order_no was used with a different request",
            ))
        }
    };
    if created {
        tracing::info!(order_no = %checkout.order_no, app_id = %app.id, amount_fen, "merchant order created");
    }
    if let Some(method) = req.payment_method {
        // Open: choose now. Chosen by an earlier call whose prepay timed out: ask again.
        let retry = checkout.status == CHECKOUT_CHOSEN
            && order_db::find(&state.db, &checkout.order_no)
                .await?
                .is_some_and(|o| awaiting_prepay(&o));
        if checkout.status == CHECKOUT_OPEN || retry {
            let order = choose(
                state,
                &checkout.order_no,
                method,
                req.channel.unwrap_or_default(),
                req.openid.clone(),
                client_ip,
            )
            .await?;
            return Ok((order, created));
        }
    }
    Ok((present(state, &checkout).await?, created))
}

/// A pending order whose prepay has not answered yet (it timed out): nothing to pay with.
fn awaiting_prepay(o: &OrderRow) -> bool {
    o.status == OrderStatus::Pending
        && o.qr_code_url.is_none()
        && o.pay_url.is_none()
        && o.h5_url.is_none()
        && o.sdk_params.is_none()
}

/// The order row a checkout becomes once `method` is chosen.
fn order_row(c: &CheckoutRow, method: PaymentMethod, channel: PaymentChannel) -> OrderRow {
    let now = db::now();
    OrderRow {
        order_no: c.order_no.clone(),
        user_id: c.user_id.clone(),
        product_id: c.product_id.unwrap_or(0),
        product_type: c.product_type.clone(),
        product_name: c.subject.clone(),
        unit_price_fen: c.unit_price_fen,
        quantity: c.quantity,
        is_upgrade: false,
        amount_fen: c.amount_fen,
        provider: method.as_str().into(),
        channel: channel.as_str().into(),
        status: OrderStatus::Pending,
        cancel_reason: None,
        refunded_fen: 0,
        provider_transaction_id: None,
        qr_code_url: None,
        pay_url: None,
        h5_url: None,
        sdk_params: None,
        expire_at: c.expire_at,
        // A merchant order's code lasts as long as the order (no renewals on its page).
        qr_code_expire_at: c.expire_at,
        paid_at: None,
        last_query_at: None,
        needs_review: false,
        created_at: now,
        updated_at: now,
        stock_held: 0,
        review_reason: None,
        lease_until: None,
        query_attempts: 0,
        snap_points: c.snap_points,
        snap_membership_days: c.snap_membership_days,
        snap_tier: c.snap_tier.clone(),
        snap_tier_rank: c.snap_tier_rank,
        snap_tier_price_fen: c.snap_tier_price_fen,
        snap_tier_days: c.snap_tier_days,
        snap_from_tier: None,
        snap_from_rank: None,
        snap_from_price_fen: None,
        snap_from_days: None,
        snap_upgrade_secs: 0,
        sync_halted: false,
        renewal_root: None,
        app_id: Some(c.app_id.clone()),
        out_order_no: Some(c.out_order_no.clone()),
        customer_ref: c.customer_ref.clone(),
        metadata: c.metadata.clone(),
        return_url: c.return_url.clone(),
        notify_url: c.notify_url.clone(),
    }
}

/// The buyer (or the app at creation) chooses how to pay: the checkout moves
/// `open -> chosen` and its order row is written in one transaction, then the trade is
/// opened at the provider. Choosing the method that was chosen already returns the order
/// as it is; another method is 409 `method_already_chosen`.
pub async fn choose(
    state: &AppState,
    order_no: &str,
    method: PaymentMethod,
    channel: PaymentChannel,
    openid: Option<String>,
    client_ip: String,
) -> AppResult<MerchantOrder> {
    let checkout = app_db::find_checkout(&state.db, order_no)
        .await?
        .ok_or(AppError::NotFound("order"))?;
    let app = app_db::find(&state.db, &checkout.app_id)
        .await?
        .ok_or(AppError::NotFound("order"))?;
    check_mode(state, &app)?;
    let metadata: Option<serde_json::Value> = checkout
        .metadata
        .as_deref()
        .and_then(|m| serde_json::from_str(m).ok());
    if crate::domain::epay::offered_method(metadata.as_ref()).is_some_and(|only| only != method) {
        return Err(invalid(
            "method_not_offered",
            "this order is paid with the method its shop asked for",
        ));
    }
    if checkout.status == CHECKOUT_OPEN {
        check_method(state, method, channel, openid.as_deref())?;
        let mut row = order_row(&checkout, method, channel);
        if let Some(id) = checkout.product_id {
            let limited = products::find(&state.db, id)
                .await?
                .is_some_and(|p| p.stock.is_some());
            if limited {
                row.stock_held = checkout.quantity;
            }
        }
        match app_db::choose(&state.db, &row, db::now()).await? {
            ChooseOutcome::Chosen => {
                order_service::open_trade(
                    state,
                    &row,
                    method,
                    channel,
                    openid,
                    client_ip,
                    order_service::OnTimeout::Keep,
                )
                .await?;
                tracing::info!(%order_no, provider = method.as_str(), "merchant order: method chosen");
                let checkout = app_db::find_checkout(&state.db, order_no)
                    .await?
                    .ok_or(AppError::NotFound("order"))?;
                return present(state, &checkout).await;
            }
            ChooseOutcome::OutOfStock => {
                return Err(AppError::conflict(
                    "out_of_stock",
                    "the product has fewer units left than this order needs",
                ))
            }
            ChooseOutcome::NotOpen => {}
        }
    }
    // Not open (any more): chosen by someone, cancelled, or expired.
    let checkout = app_db::find_checkout(&state.db, order_no)
        .await?
        .ok_or(AppError::NotFound("order"))?;
    let order = present(state, &checkout).await?;
    match checkout.status.as_str() {
        CHECKOUT_CHOSEN if order.payment_method == Some(method) => {
            if order.status == OrderStatus::Pending && order.channel == Some(channel) {
                let row = order_db::find(&state.db, order_no)
                    .await?
                    .ok_or(AppError::NotFound("order"))?;
                if !awaiting_prepay(&row) {
                    return Ok(order);
                }
                // The first prepay timed out: the same trade number asks again.
                check_method(state, method, channel, openid.as_deref())?;
                order_service::open_trade(
                    state,
                    &row,
                    method,
                    channel,
                    openid,
                    client_ip,
                    order_service::OnTimeout::Keep,
                )
                .await?;
                present(state, &checkout).await
            } else if order.status == OrderStatus::Pending {
                Err(AppError::conflict(
                    "method_already_chosen",
                    "this order is being paid through another channel",
                ))
            } else {
                Err(AppError::conflict(
                    "order_not_pending",
                    format!("the order is {}", order.status.as_str()),
                ))
            }
        }
        CHECKOUT_CHOSEN => Err(AppError::conflict(
            "method_already_chosen",
            "another payment method was chosen for this order",
        )),
        _ => Err(AppError::conflict(
            "order_not_pending",
            "the order was cancelled or has expired",
        )),
    }
}

/// A checkout as the app sees it, with its order row when it has one.
pub async fn present(state: &AppState, c: &CheckoutRow) -> AppResult<MerchantOrder> {
    let order = if c.status == CHECKOUT_CHOSEN {
        order_db::find_cached(&state.db, &c.order_no).await?
    } else {
        None
    };
    Ok(to_merchant(state, c, order.as_deref()))
}

/// The app's view of a checkout and its order (if a method was chosen).
pub fn to_merchant(state: &AppState, c: &CheckoutRow, order: Option<&OrderRow>) -> MerchantOrder {
    let now = db::now();
    let status = match order {
        Some(o) => o.status,
        None if c.status == CHECKOUT_CANCELLED || c.expire_at <= now => OrderStatus::Cancelled,
        None => OrderStatus::Pending,
    };
    let pending = status == OrderStatus::Pending;
    let targets = order.filter(|_| pending);
    MerchantOrder {
        order_no: c.order_no.clone(),
        out_order_no: c.out_order_no.clone(),
        status,
        subject: c.subject.clone(),
        amount_fen: c.amount_fen,
        amount: Yuan(c.amount_fen),
        refunded_fen: order.map_or(0, |o| o.refunded_fen),
        product_id: c.product_id,
        quantity: c.quantity,
        customer_ref: c.customer_ref.clone(),
        metadata: c
            .metadata
            .as_deref()
            .and_then(|m| serde_json::from_str(m).ok()),
        payment_method: order.map(order_service::method_of),
        channel: order.and_then(|o| channel_of(&o.channel)),
        checkout_url: checkout_url(state, &c.order_no),
        return_url: c.return_url.clone(),
        qr_code_url: targets.and_then(|o| o.qr_code_url.clone()),
        h5_url: targets.and_then(|o| o.h5_url.clone()),
        pay_url: targets.and_then(|o| o.pay_url.clone()),
        sdk_params: targets.and_then(order_service::stored_sdk_params),
        provider_transaction_id: order.and_then(|o| o.provider_transaction_id.clone()),
        fulfilment: c.fulfilment.clone(),
        expire_at: db::utc(c.expire_at),
        paid_at: order.and_then(|o| o.paid_at).map(db::utc),
        created_at: db::utc(c.created_at),
    }
}

fn channel_of(s: &str) -> Option<PaymentChannel> {
    Some(match s {
        "native" => PaymentChannel::Native,
        "h5" => PaymentChannel::H5,
        "jsapi" => PaymentChannel::Jsapi,
        "app" => PaymentChannel::App,
        "page" => PaymentChannel::Page,
        "wap" => PaymentChannel::Wap,
        _ => return None,
    })
}

/// Any app's order, with its app (the checkout page, the epay gateway).
pub async fn view(state: &AppState, order_no: &str) -> AppResult<(AppRow, MerchantOrder)> {
    let checkout = app_db::find_checkout(&state.db, order_no)
        .await?
        .ok_or(AppError::NotFound("order"))?;
    let app = app_db::find(&state.db, &checkout.app_id)
        .await?
        .ok_or(AppError::NotFound("order"))?;
    Ok((app, present(state, &checkout).await?))
}

/// One of `app`'s orders; another app's is 404, like one that does not exist.
async fn own_checkout(state: &AppState, app: &AppRow, order_no: &str) -> AppResult<CheckoutRow> {
    app_db::find_checkout(&state.db, order_no)
        .await?
        .filter(|c| c.app_id == app.id)
        .ok_or(AppError::NotFound("order"))
}

pub async fn get(state: &AppState, app: &AppRow, order_no: &str) -> AppResult<MerchantOrder> {
    let c = own_checkout(state, app, order_no).await?;
    present(state, &c).await
}

pub async fn find_by_out(
    state: &AppState,
    app: &AppRow,
    out_order_no: &str,
) -> AppResult<MerchantOrder> {
    let c = app_db::find_checkout_by_out(&state.db, &app.id, out_order_no)
        .await?
        .ok_or(AppError::NotFound("order"))?;
    present(state, &c).await
}

/// Most orders in one page of the list.
pub const MAX_PER_PAGE: i64 = 100;

pub async fn list(
    state: &AppState,
    app: &AppRow,
    q: MerchantOrderQuery,
) -> AppResult<MerchantOrderList> {
    let page = q.page.unwrap_or(1);
    let per_page = q.per_page.unwrap_or(20);
    if page < 1 || !(1..=MAX_PER_PAGE).contains(&per_page) {
        return Err(AppError::bad_request(
            "invalid_query",
            format!("page must be >= 1 and per_page 1-{MAX_PER_PAGE}"),
        ));
    }
    let filter = app_db::CheckoutFilter {
        out_order_no: q.out_order_no,
        customer_ref: q.customer_ref,
        from: q.from.map(|t| t.naive_utc()),
        to: q.to.map(|t| t.naive_utc()),
    };
    let mut items = Vec::new();
    // The status lives partly on order rows: filter after reading, page by page of checkouts.
    let mut offset = (page - 1) * per_page;
    let mut skipped = 0;
    let wanted_skip = if q.status.is_some() { offset } else { 0 };
    if q.status.is_some() {
        offset = 0;
    }
    loop {
        let batch = app_db::list_checkouts(&state.db, &app.id, &filter, 200, offset).await?;
        let n = batch.len() as i64;
        for c in &batch {
            let o = present(state, c).await?;
            if q.status.is_none_or(|s| s == o.status) {
                if skipped < wanted_skip {
                    skipped += 1;
                } else if (items.len() as i64) < per_page {
                    items.push(o);
                }
            }
        }
        if q.status.is_none() || n < 200 || items.len() as i64 >= per_page {
            break;
        }
        offset += n;
    }
    items.truncate(per_page as usize);
    Ok(MerchantOrderList {
        items,
        page,
        per_page,
    })
}

/// Cancel one of `app`'s orders: an open checkout directly (compare-and-set); an order
/// with a method through the provider close, as `cancel-order` does.
pub async fn cancel(state: &AppState, app: &AppRow, order_no: &str) -> AppResult<MerchantOrder> {
    let c = own_checkout(state, app, order_no).await?;
    if c.status == CHECKOUT_OPEN && app_db::cancel_open(&state.db, order_no).await? {
        tracing::info!(%order_no, app_id = %app.id, "merchant order cancelled before a method was chosen");
    } else {
        let c = app_db::find_checkout(&state.db, order_no)
            .await?
            .ok_or(AppError::NotFound("order"))?;
        if c.status == CHECKOUT_CHOSEN {
            let order = order_db::find(&state.db, order_no)
                .await?
                .ok_or(AppError::NotFound("order"))?;
            match order.status {
                OrderStatus::Pending => {
                    order_service::close_and_cancel(
                        state,
                        &order,
                        api_types::payment::CancelReason::User,
                    )
                    .await?
                }
                OrderStatus::Cancelled => {}
                OrderStatus::Paid | OrderStatus::Refunded => {
                    return Err(AppError::conflict(
                        "order_already_paid",
                        "the order was paid: refund it instead",
                    ))
                }
            }
        }
    }
    get(state, app, order_no).await
}

/// Refund one of `app`'s paid orders (all or part). The same `out_refund_no` never refunds
/// twice; without one, the request's `Idempotency-Key` names the refund.
pub async fn refund(
    state: &AppState,
    app: &AppRow,
    req: MerchantRefundRequest,
    idempotency_key: Option<&str>,
) -> AppResult<RefundResponse> {
    own_checkout(state, app, &req.order_no).await?;
    if req.out_refund_no.is_none() && idempotency_key.is_none() {
        return Err(invalid(
            "out_refund_no_required",
            "give out_refund_no (or an Idempotency-Key), so a retry can never refund twice",
        ));
    }
    refunds::create_refund(
        state,
        &app.id,
        RefundRequest {
            order_no: req.order_no,
            amount_fen: req.amount_fen,
            out_refund_no: req.out_refund_no,
            reason: req.reason,
        },
        idempotency_key,
    )
    .await
}

/// Where the checkout page sends the buyer back: the order's `return_url` with
/// `order_no`, `out_order_no`, `status` and `sig` (HMAC-SHA256 under the app's webhook
/// secret, see `domain::apps::return_signature`). It is never proof of payment.
pub async fn return_redirect(state: &AppState, order_no: &str) -> AppResult<String> {
    let (app, order) = view(state, order_no).await?;
    let base = order
        .return_url
        .clone()
        .ok_or(AppError::NotFound("return_url"))?;
    let mut url = reqwest::Url::parse(&base).map_err(AppError::internal)?;
    // An epay order's return carries the protocol's signed parameters (its clients verify
    // every query parameter, so nothing else is added); before payment, ours.
    if let Some(row) = order_db::find(&state.db, order_no).await? {
        if row.notify_url.is_some() && row.paid_at.is_some() {
            let params = crate::service::epay::return_query(&app, &row);
            if !params.is_empty() {
                url.query_pairs_mut().extend_pairs(params);
                return Ok(url.to_string());
            }
        }
    }
    let status = order.status.as_str();
    let sig = rules::return_signature(
        app.webhook_secret.as_bytes(),
        &order.order_no,
        &order.out_order_no,
        status,
    );
    url.query_pairs_mut()
        .append_pair("order_no", &order.order_no)
        .append_pair("out_order_no", &order.out_order_no)
        .append_pair("status", status)
        .append_pair("sig", &sig);
    Ok(url.to_string())
}
