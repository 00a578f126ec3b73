//! Orders: create, status (with provider query), cancel, list, and applying a
//! provider-confirmed payment. Handlers, callbacks and jobs all go through here.

use api_types::auth::Role;
use api_types::payment::{
    CancelReason, CreateOrderRequest, CreateOrderResponse, MembershipPreview, MembershipRule,
    OrderResponse, OrderStatus, PaymentChannel, PaymentMethod, SdkParams,
};
use api_types::product::ProductKind;
use api_types::Yuan;
use chrono::{Duration, Utc};

use crate::auth::AuthUser;
use crate::db::orders::{self as order_db, NewPaymentRecord, OrderRow, PaidFacts};
use crate::db::{self, ledger, products};
use crate::domain::fulfilment::{self as grants, Account, Rate, Snapshot, Tier};
use crate::domain::order::{self as rules, OrderEvent, Transition};
use crate::error::{AppError, AppResult};
use crate::providers::{
    PaymentNotice, PrepayRequest, ProviderError, RemoteTrade, RemoteTradeState,
};
use crate::startup::AppState;

/// Most units of one product in a single order.
pub const MAX_QUANTITY: i64 = 100;

pub fn method_of(row: &OrderRow) -> PaymentMethod {
    if row.provider == "alipay" {
        PaymentMethod::Alipay
    } else {
        PaymentMethod::Wechat
    }
}

fn channel_of(s: &str) -> PaymentChannel {
    match s {
        "h5" => PaymentChannel::H5,
        "jsapi" => PaymentChannel::Jsapi,
        "app" => PaymentChannel::App,
        "page" => PaymentChannel::Page,
        "wap" => PaymentChannel::Wap,
        _ => PaymentChannel::Native,
    }
}

fn status_of(row: &OrderRow) -> OrderStatus {
    row.status
}

/// The API view of an order.
pub fn to_response(row: &OrderRow) -> OrderResponse {
    OrderResponse {
        order_no: row.order_no.clone(),
        status: status_of(row),
        amount: Yuan(row.amount_fen),
        amount_fen: row.amount_fen,
        payment_time: row.paid_at.map(db::utc),
        payment_method: method_of(row),
        channel: channel_of(&row.channel),
        product_id: row.product_id,
        product_type: match row.product_type.as_str() {
            "membership" => ProductKind::Membership,
            "custom" => ProductKind::Custom,
            _ => ProductKind::Points,
        },
        product_name: row.product_name.clone(),
        unit_price_fen: row.unit_price_fen,
        quantity: row.quantity,
        is_upgrade: row.is_upgrade,
        qr_code_url: row.qr_code_url.clone().or_else(|| row.pay_url.clone()),
        qr_code_expire_at: db::utc(row.qr_code_expire_at),
        expire_at: db::utc(row.expire_at),
        cancel_reason: row
            .cancel_reason
            .as_deref()
            .and_then(rules::cancel_reason_from_str),
        refunded_fen: row.refunded_fen,
        provider_transaction_id: row.provider_transaction_id.clone(),
        created_at: db::utc(row.created_at),
        updated_at: db::utc(row.updated_at),
    }
}

fn provider_error(err: ProviderError) -> AppError {
    match err {
        ProviderError::NotConfigured(m) => AppError::bad_request("payment_method_unavailable", m),
        ProviderError::Rejected { code, message } if code == "unsupported_channel" => {
            AppError::bad_request("unsupported_channel", message)
        }
        other => AppError::ProviderUnavailable(other.to_string()),
    }
}

/// Create a pending order priced from the catalog and open the trade at the provider.
/// On any provider failure the order row is removed: nothing half-made stays behind.
pub async fn create_order(
    state: &AppState,
    user: &AuthUser,
    req: CreateOrderRequest,
    client_ip: String,
) -> AppResult<CreateOrderResponse> {
    let channel = req.channel.unwrap_or_default();
    let quantity = req.quantity.unwrap_or(1);
    if !(1..=MAX_QUANTITY).contains(&quantity) {
        return Err(AppError::bad_request(
            "invalid_quantity",
            format!("quantity must be between 1 and {MAX_QUANTITY}"),
        ));
    }
    if !crate::providers::Providers::supports(req.payment_method, channel) {
        return Err(AppError::bad_request(
            "unsupported_channel",
            format!(
                "{} does not support the {} channel",
                req.payment_method.as_str(),
                channel.as_str()
            ),
        ));
    }
    if channel == PaymentChannel::Jsapi && req.openid.as_deref().is_none_or(str::is_empty) {
        return Err(AppError::bad_request(
            "openid_required",
            "the jsapi channel requires openid",
        ));
    }
    if !state.providers.is_configured(req.payment_method) {
        return Err(AppError::bad_request(
            "payment_method_unavailable",
            format!(
                "{} is not configured on this server",
                req.payment_method.as_str()
            ),
        ));
    }
    let product = products::find(&state.db, req.product_id)
        .await?
        .filter(|p| p.active)
        .ok_or(AppError::NotFound("product"))?;
    if product.kind != req.product_type.as_str() {
        return Err(AppError::bad_request(
            "product_type_mismatch",
            format!("product {} is a {} product", product.id, product.kind),
        ));
    }
    if product.kind == "membership" && quantity > state.settings.max_membership_quantity {
        return Err(AppError::bad_request(
            "invalid_quantity",
            format!(
                "at most {} periods of a membership in one order",
                state.settings.max_membership_quantity
            ),
        ));
    }
    let account = ledger::read_account(&state.db, &user.user_id)
        .await?
        .ok_or_else(|| AppError::Unauthorized("unknown user".into()))?;
    let (amount_fen, snapshot) = if req.is_upgrade {
        if quantity != 1 {
            return Err(AppError::bad_request(
                "invalid_quantity",
                "an upgrade is a single unit",
            ));
        }
        upgrade_terms(state, &account, &product).await?
    } else {
        let amount = rules::order_amount(product.price_fen, quantity)
            .ok_or_else(|| AppError::bad_request("invalid_quantity", "amount overflows"))?;
        let snap = grants::purchase_snapshot(product.points, tier_of(&product), quantity, None);
        (amount, snap)
    };
    let preview = membership_preview(&snapshot, &account, db::now());
    let now = db::now();
    let order_no = rules::new_order_no(Utc::now());
    let expire_at = now + Duration::minutes(state.settings.order_expire_minutes);
    let row = OrderRow {
        order_no: order_no.clone(),
        user_id: user.user_id.clone(),
        product_id: product.id,
        product_type: product.kind.clone(),
        product_name: product.name.clone(),
        unit_price_fen: product.price_fen,
        quantity,
        is_upgrade: req.is_upgrade,
        amount_fen,
        provider: req.payment_method.as_str().to_string(),
        channel: channel.as_str().to_string(),
        status: OrderStatus::Pending,
        cancel_reason: None,
        refunded_fen: 0,
        provider_transaction_id: None,
        qr_code_url: None,
        pay_url: None,
        h5_url: None,
        sdk_params: None,
        expire_at,
        qr_code_expire_at: now + Duration::minutes(state.settings.qr_code_expire_minutes),
        paid_at: None,
        last_query_at: None,
        needs_review: false,
        created_at: now,
        updated_at: now,
        stock_held: if product.stock.is_some() { quantity } else { 0 },
        review_reason: None,
        lease_until: None,
        query_attempts: 0,
        snap_points: 0,
        snap_membership_days: 0,
        snap_tier: None,
        snap_tier_rank: None,
        snap_tier_price_fen: None,
        snap_tier_days: None,
        snap_from_tier: None,
        snap_from_rank: None,
        snap_from_price_fen: None,
        snap_from_days: None,
        snap_upgrade_secs: 0,
        sync_halted: false,
        renewal_root: None,
        app_id: None,
        out_order_no: None,
        customer_ref: None,
        metadata: None,
        return_url: None,
        notify_url: None,
    };
    let mut row = row;
    row.set_snapshot(&snapshot);
    if let Some(old_no) = req.replaces_order_no.as_deref() {
        row.renewal_root = Some(retire_replaced(state, user, old_no, &row).await?);
    }
    let inserted = order_db::insert(&state.db, &row).await.map_err(|e| {
        // The account went away after its token was checked (within the auth cache's TTL).
        if e.is_foreign_key_violation() {
            AppError::Unauthorized("account no longer exists".into())
        } else {
            e.into()
        }
    })?;
    if !inserted {
        return Err(AppError::conflict(
            "out_of_stock",
            format!("product {} has fewer than {quantity} left", product.id),
        ));
    }
    let opened = open_trade(
        state,
        &row,
        req.payment_method,
        channel,
        req.openid.clone(),
        client_ip,
        OnTimeout::Discard,
    )
    .await?;
    tracing::info!(%order_no, amount_fen, provider = req.payment_method.as_str(), "order created");
    Ok(CreateOrderResponse {
        order_no,
        amount: Yuan(amount_fen),
        amount_fen,
        payment_method: req.payment_method,
        channel,
        qr_code_url: opened.qr_code_url.or_else(|| opened.pay_url.clone()),
        qr_code_expire_at: db::utc(row.qr_code_expire_at),
        expire_at: db::utc(expire_at),
        h5_url: opened.h5_url,
        pay_url: opened.pay_url,
        sdk_params: opened.sdk_params,
        status: OrderStatus::Pending,
        membership: preview,
    })
}

/// What happens to an order whose prepay times out (the provider may have opened the trade).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnTimeout {
    /// Remove the order and close the trade: the caller's next order has a new number.
    Discard,
    /// Keep the order pending (a merchant order: its number is the app's order and cannot
    /// change): the buyer's same choice again repeats the prepay with the same number,
    /// which the providers answer with the same trade; the sweeper and the reconciler
    /// treat it as any pending order meanwhile.
    Keep,
}

/// Open the trade of a pending order at its provider and store what came back
/// (`order.created`). On a provider refusal the order row is removed (a merchant order's
/// checkout reopens, so its buyer may choose again): nothing half-made stays. On a
/// timeout, `on_timeout` decides.
pub async fn open_trade(
    state: &AppState,
    row: &OrderRow,
    method: PaymentMethod,
    channel: PaymentChannel,
    openid: Option<String>,
    client_ip: String,
    on_timeout: OnTimeout,
) -> AppResult<crate::providers::PrepayResponse> {
    let order_no = row.order_no.clone();
    let prepay = PrepayRequest {
        out_trade_no: order_no.clone(),
        description: row.product_name.clone(),
        amount_fen: row.amount_fen,
        channel,
        expire_at: db::utc(row.expire_at),
        openid,
        client_ip,
    };
    let prepaid = state.providers.prepay(method, &prepay).await;
    record_call(
        state,
        &order_no,
        method,
        "prepay",
        &format!("{prepay:?}"),
        &prepaid,
    )
    .await;
    let opened = match prepaid {
        Ok(opened) => opened,
        Err(err @ ProviderError::Unavailable(_)) if on_timeout == OnTimeout::Keep => {
            tracing::warn!(%order_no, error = %err, "prepay failed; the order stays pending for a retry");
            return Err(provider_error(err));
        }
        Err(err) => {
            tracing::warn!(%order_no, error = %err, "prepay failed; removing the order");
            order_db::delete_unopened(&state.db, &order_no).await?;
            if matches!(err, ProviderError::Unavailable(_)) {
                // A timeout may still have opened the trade: close it so it cannot be paid.
                let providers = state.providers.clone();
                let no = order_no.clone();
                tokio::spawn(async move {
                    let _ = providers.close(method, &no).await;
                });
            }
            return Err(provider_error(err));
        }
    };
    let sdk_json = opened
        .sdk_params
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(AppError::internal)?;
    let created = order_db::set_payment_targets(
        &state.db,
        &order_no,
        (
            opened.qr_code_url.clone(),
            opened.pay_url.clone(),
            opened.h5_url.clone(),
            sdk_json,
        ),
        &state.sinks,
    )
    .await?;
    state.hub.committed(created.iter());
    Ok(opened)
}

/// Make way for `new`, a new code for the caller's order `old_no`: once a replacement
/// exists the old order must never be payable. Still pending, it is closed at the
/// provider and cancelled (the provider says paid: the payment is applied and the answer
/// is 409 `order_already_paid`, no new order); paid already, 409 as well. Returns the
/// renewal chain `new` joins.
async fn retire_replaced(
    state: &AppState,
    user: &AuthUser,
    old_no: &str,
    new: &OrderRow,
) -> AppResult<String> {
    let old = order_db::find(&state.db, old_no)
        .await?
        .filter(|o| o.user_id == user.user_id)
        .ok_or(AppError::NotFound("order"))?;
    let purchase = |o: &OrderRow| (o.product_id, o.quantity, o.is_upgrade);
    match rules::replacement(old.status, purchase(&old), purchase(new)) {
        rules::Replacement::CloseFirst => close_and_cancel(state, &old, CancelReason::User).await?,
        rules::Replacement::Ready => {}
        rules::Replacement::AlreadyPaid => {
            return Err(AppError::conflict(
                "order_already_paid",
                "the order being replaced is already paid",
            ))
        }
        rules::Replacement::OtherPurchase => return Err(AppError::bad_request(
            "invalid_replacement",
            "a replacement buys the same product, quantity and upgrade as the order it replaces",
        )),
    }
    Ok(rules::renewal_root(
        &old.order_no,
        old.renewal_root.as_deref(),
    ))
}

/// A catalog membership product as a tier with its rate.
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

/// What upgrading the caller's active membership to `target` costs for the time left,
/// and the snapshot of that upgrade (the tier it upgrades from, the seconds it pays for).
/// The held tier's rate is the one the buyer bought it at; the catalog is asked only for
/// memberships older than the ledger.
async fn upgrade_terms(
    state: &AppState,
    account: &Account,
    target: &products::ProductRow,
) -> AppResult<(i64, Snapshot)> {
    let unavailable = |m: &str| AppError::bad_request("upgrade_not_available", m.to_string());
    let Some(to) = tier_of(target).filter(|t| target.tier_rank.is_some() && t.rate.days > 0) else {
        return Err(unavailable("only membership tiers can be upgraded to"));
    };
    let now = db::now();
    let remaining = account.remaining_secs(now);
    let Some(tier) = account.tier.clone().filter(|_| remaining > 0) else {
        return Err(unavailable("no active membership to upgrade"));
    };
    let rate = match account.rate {
        Some(rate) if rate.days > 0 => rate,
        _ => products::list_active(&state.db)
            .await?
            .iter()
            .find(|p| p.membership_tier.as_deref() == Some(tier.as_str()))
            .and_then(tier_of)
            .map(|t| t.rate)
            .ok_or_else(|| unavailable("the current tier is no longer sold"))?,
    };
    if rate.rank >= to.rate.rank || tier == to.name {
        return Err(unavailable(
            "the target tier is not higher than the current one",
        ));
    }
    let price = rules::upgrade_price(
        rate.price_fen,
        rate.days,
        to.rate.price_fen,
        to.rate.days,
        remaining,
    )
    .ok_or_else(|| unavailable("nothing to pay for this upgrade"))?;
    let from = Tier { name: tier, rate };
    Ok((
        price,
        grants::purchase_snapshot(None, Some(to), 1, Some((from, remaining))),
    ))
}

/// What paying an order with `snap` now would do to the membership of `account`.
fn membership_preview(
    snap: &Snapshot,
    account: &Account,
    now: chrono::NaiveDateTime,
) -> Option<MembershipPreview> {
    let tier = snap.tier.as_ref()?;
    let change = grants::fulfil(snap, account, now);
    let before = account.remaining_secs(now);
    let added = snap.membership_days.saturating_mul(grants::DAY_SECS);
    let after = change.after.remaining_secs(now);
    let rule = if snap.upgrade_from.is_some() {
        MembershipRule::Upgrade
    } else if before == 0 {
        MembershipRule::Start
    } else if account.tier.as_deref() == Some(tier.name.as_str()) {
        MembershipRule::Extend
    } else {
        MembershipRule::Convert
    };
    Some(MembershipPreview {
        rule,
        tier_before: account.tier.clone().filter(|_| before > 0),
        expires_before: account.expires_at.filter(|_| before > 0).map(db::utc),
        remaining_seconds_before: before,
        carried_seconds: after
            - if rule == MembershipRule::Upgrade {
                0
            } else {
                added
            },
        added_seconds: if rule == MembershipRule::Upgrade {
            0
        } else {
            added
        },
        tier_after: tier.name.clone(),
        expires_after: db::utc(change.after.expires_at.unwrap_or(now)),
    })
}

/// Keep one of our provider calls in `payment_records`: what we asked, what came back.
pub async fn record_call<T: std::fmt::Debug>(
    state: &AppState,
    order_no: &str,
    method: PaymentMethod,
    kind: &str,
    request: &str,
    result: &Result<T, ProviderError>,
) {
    let (verified, decision, answer) = match result {
        Ok(v) => (true, "ok".to_string(), format!("{v:?}")),
        Err(e) => (false, format!("error: {e}"), String::new()),
    };
    record(
        state,
        Some(order_no),
        method,
        kind,
        "",
        &format!("request: {request}\nresponse: {answer}"),
        verified,
        &decision,
    )
    .await;
}

/// Load an order the caller may see: its owner or an admin. Anyone else gets 404.
pub async fn visible_order(
    state: &AppState,
    user: &AuthUser,
    order_no: &str,
) -> AppResult<OrderRow> {
    order_db::find(&state.db, order_no)
        .await?
        .filter(|o| o.user_id == user.user_id || user.role == Role::Admin)
        .ok_or(AppError::NotFound("order"))
}

/// Order status: a read, served from the order cache when it can be (see
/// `db::cache`). A pending order is handed to the watcher, which checks it with the
/// provider in the background while someone keeps looking (so a lost notification still
/// shows within seconds); this call never waits for the provider and never writes.
pub async fn order_status(
    state: &AppState,
    user: &AuthUser,
    order_no: &str,
) -> AppResult<OrderResponse> {
    let order = order_db::find_cached(&state.db, order_no)
        .await?
        .filter(|o| o.user_id == user.user_id || user.role == Role::Admin)
        .ok_or(AppError::NotFound("order"))?;
    watch_if_pending(state, &order);
    Ok(to_response(&order))
}

/// Nudge the watcher when the order may still change at the provider.
pub fn watch_if_pending(state: &AppState, order: &OrderRow) {
    if order.status == OrderStatus::Pending && !order.sync_halted {
        state.watcher.nudge(&order.order_no);
    }
}

/// Ask the provider about a pending order and apply a payment it reports. Callers bound
/// nothing here: the provider client has its own timeout, and once a payment is being
/// applied its transaction runs to commit or rollback.
pub async fn sync_with_provider(
    state: &AppState,
    order: &OrderRow,
) -> Result<Option<ApplyOutcome>, ProviderError> {
    let queried = state
        .providers
        .query(method_of(order), &order.order_no)
        .await;
    if !matches!(&queried, Ok(t) if t.state == RemoteTradeState::Paid) {
        record_call(
            state,
            &order.order_no,
            method_of(order),
            "query",
            "",
            &queried,
        )
        .await;
    }
    let trade = queried?;
    apply_queried_payment(state, order, &trade).await
}

/// Apply what a verified query reported, when it reports the trade paid.
async fn apply_queried_payment(
    state: &AppState,
    order: &OrderRow,
    trade: &RemoteTrade,
) -> Result<Option<ApplyOutcome>, ProviderError> {
    if trade.state != RemoteTradeState::Paid {
        return Ok(None);
    }
    // A paid answer without the facts to check is incomplete, not a mismatch.
    let (Some(transaction_id), Some(amount_fen)) = (trade.transaction_id.clone(), trade.amount_fen)
    else {
        let e =
            ProviderError::InvalidResponse("paid trade without transaction id or amount".into());
        record_call::<()>(
            state,
            &order.order_no,
            method_of(order),
            "query",
            &format!("{trade:?}"),
            &Err(e.clone()),
        )
        .await;
        return Err(e);
    };
    let notice = PaymentNotice {
        out_trade_no: trade.out_trade_no.clone(),
        transaction_id,
        amount_fen,
        paid_at: trade.paid_at.unwrap_or_else(Utc::now),
        app_id: String::new(),
        merchant_id: String::new(),
        paid: true,
    };
    let evidence = Evidence {
        kind: "query",
        headers: String::new(),
        body: format!("{trade:?}"),
    };
    match apply_payment(state, method_of(order), &notice, None, Some(&evidence)).await {
        Ok(outcome) => {
            if outcome == ApplyOutcome::Duplicate {
                // Changed nothing: written in the background.
                state.records.record(new_record(
                    Some(&order.order_no),
                    method_of(order),
                    "query",
                    "",
                    &evidence.body,
                    true,
                    &format!("{outcome:?}"),
                ));
            }
            Ok(Some(outcome))
        }
        Err(e @ (ApplyError::Db(_) | ApplyError::Unconfirmed(_))) => {
            // Not a verdict on the answer (our database failed, or the provider could
            // not confirm): nothing to record as a decision; the next check asks again.
            tracing::warn!(order_no = %order.order_no, error = %e, "a verified payment could not be applied now; the next check tries again");
            Err(ProviderError::Unavailable(e.to_string()))
        }
        Err(e) => {
            tracing::error!(order_no = %order.order_no, error = %e, "provider reports a payment we cannot apply");
            record(
                state,
                Some(&order.order_no),
                method_of(order),
                "query",
                "",
                &evidence.body,
                true,
                &format!("rejected: {e}"),
            )
            .await;
            Err(ProviderError::InvalidResponse(e.to_string()))
        }
    }
}

/// Cancel a pending order: close the trade at the provider first. If the provider says it
/// is already paid, the order becomes paid and the reply is 409 `order_already_paid`.
pub async fn cancel_order(state: &AppState, user: &AuthUser, order_no: &str) -> AppResult<()> {
    let order = visible_order(state, user, order_no).await?;
    match rules::decide(status_of(&order), OrderEvent::Cancel(CancelReason::User)) {
        Ok(Transition::AlreadyDone) => return Ok(()),
        Ok(_) => {}
        Err(rules::TransitionError::AlreadyPaid) => {
            return Err(AppError::conflict(
                "order_already_paid",
                "the order is already paid",
            ))
        }
        Err(e) => return Err(AppError::conflict("order_not_pending", e.to_string())),
    }
    close_and_cancel(state, &order, CancelReason::User).await
}

/// Close at the provider, then compare-and-set `pending -> cancelled`.
pub async fn close_and_cancel(
    state: &AppState,
    order: &OrderRow,
    reason: CancelReason,
) -> AppResult<()> {
    let method = method_of(order);
    let closed = state.providers.close(method, &order.order_no).await;
    record_call(state, &order.order_no, method, "close", "", &closed).await;
    match closed {
        // Never opened at the provider (or already closed there): nothing can be paid.
        Ok(()) | Err(ProviderError::TradeNotExist) | Err(ProviderError::AlreadyClosed) => {}
        Err(ProviderError::AlreadyPaid) => {
            if let Err(e) = sync_with_provider(state, order).await {
                tracing::error!(order_no = %order.order_no, error = %e, "paid at provider but query failed");
            }
            return Err(AppError::conflict(
                "order_already_paid",
                "the order was paid before it could be cancelled",
            ));
        }
        Err(e) => return Err(provider_error(e)),
    }
    if let Some(ev) = order_db::cancel(
        &state.db,
        &order.order_no,
        rules::cancel_reason_str(reason),
        &state.sinks,
    )
    .await?
    {
        state.hub.committed([&ev]);
        tracing::info!(order_no = %order.order_no, ?reason, "order cancelled");
        return Ok(());
    }
    // Lost the race: a payment (or another cancel) got there first.
    let fresh = order_db::find(&state.db, &order.order_no)
        .await?
        .ok_or(AppError::NotFound("order"))?;
    match status_of(&fresh) {
        OrderStatus::Cancelled => Ok(()),
        OrderStatus::Paid | OrderStatus::Refunded => Err(AppError::conflict(
            "order_already_paid",
            "the order was paid before it could be cancelled",
        )),
        OrderStatus::Pending => Err(AppError::conflict(
            "order_not_pending",
            "the order changed, retry",
        )),
    }
}

/// The caller's orders, newest first.
pub async fn list_orders(
    state: &AppState,
    user: &AuthUser,
    page: i64,
    per_page: i64,
) -> AppResult<(Vec<OrderResponse>, i64)> {
    let (rows, total) =
        order_db::list_for_user(&state.db, &user.user_id, per_page, (page - 1) * per_page).await?;
    Ok((rows.iter().map(to_response).collect(), total))
}

/// Result of applying a confirmed payment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// This call moved the order to paid and fulfilled it.
    Applied,
    /// Already paid: a duplicate or concurrent notification. Nothing changed.
    Duplicate,
    /// The order had been cancelled; it is now paid, fulfilled and flagged for review.
    PaidAfterCancel,
}

impl ApplyOutcome {
    /// The payment record of this decision was written with the state change.
    pub fn recorded(self) -> bool {
        matches!(self, ApplyOutcome::Applied | ApplyOutcome::PaidAfterCancel)
    }
}

/// Why a notice cannot be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("unknown order {0}")]
    UnknownOrder(String),
    #[error("notification does not match the order: {0}")]
    Mismatch(String),
    /// The provider could not confirm what a notification claims (query failed or
    /// unverifiable): nothing changed; the provider should send it again.
    #[error("the provider could not confirm it: {0}")]
    Unconfirmed(String),
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
}

/// The raw provider message behind a payment, stored in the transaction that applies it.
#[derive(Clone, Debug)]
pub struct Evidence {
    /// `notification` or `query`.
    pub kind: &'static str,
    pub headers: String,
    pub body: String,
}

/// Apply a provider-confirmed payment exactly once: checks, then compare-and-set with
/// fulfilment in one transaction. `expected_ids` is (app id, merchant id) to check. When
/// this call applies it, `evidence` is stored as the payment record of that decision in
/// the same transaction. A verified payment that does not match the order flags it for
/// review, emits `order.payment_mismatch` and stops the jobs from retrying it.
pub async fn apply_payment(
    state: &AppState,
    method: PaymentMethod,
    notice: &PaymentNotice,
    expected_ids: Option<(&str, &str)>,
    evidence: Option<&Evidence>,
) -> Result<ApplyOutcome, ApplyError> {
    // The cached row is enough to decide what to try: the amount and ids it is checked
    // against never change, and every write below is a compare-and-set in the database,
    // so a stale status only makes an attempt lose (and the database is read again). A
    // duplicate of an applied payment costs no database round trip here.
    let order = order_db::find_cached(&state.db, &notice.out_trade_no)
        .await?
        .ok_or_else(|| ApplyError::UnknownOrder(notice.out_trade_no.clone()))?;
    if let Some(mismatch) = payment_mismatch(&order, method, notice, expected_ids) {
        if let Some(ev) =
            order_db::halt_for_mismatch(&state.db, &order.order_no, &mismatch, &state.sinks).await?
        {
            state.hub.committed([&ev]);
            tracing::error!(order_no = %order.order_no, %mismatch, "verified payment does not match the order: held for review");
        }
        return Err(ApplyError::Mismatch(mismatch));
    }
    let facts = PaidFacts {
        transaction_id: notice.transaction_id.clone(),
        paid_at: notice.paid_at.naive_utc(),
    };
    let order_no = order.order_no.as_str();
    let order_ref = &order;
    let duplicate_flagged = std::sync::atomic::AtomicBool::new(false);
    let duplicate_flagged = &duplicate_flagged;
    let pay_from = |from: OrderStatus| {
        let facts = &facts;
        async move {
            let decision = if from == OrderStatus::Cancelled {
                "PaidAfterCancel"
            } else {
                "Applied"
            };
            let rec = evidence.map(|e| NewPaymentRecord {
                order_no: Some(order_no.to_string()),
                provider: method.as_str().to_string(),
                kind: e.kind.to_string(),
                headers: e.headers.clone(),
                body: e.body.clone(),
                verified: true,
                decision: decision.to_string(),
                created_at: db::now(),
            });
            let after_close = (from == OrderStatus::Cancelled
                && state.settings.lifecycle.auto_refund_paid_after_close)
                .then(|| crate::service::refunds::paid_after_close_refund(order_ref));
            // Only orders of a renewal chain can be duplicates (see `mark_paid`).
            let duplicate = (state.settings.lifecycle.auto_refund_duplicate_payments
                && (order_ref.renewal_root.is_some() || from == OrderStatus::Cancelled))
                .then(|| crate::service::refunds::duplicate_payment_refund(order_ref));
            let refunds = order_db::AutoRefunds {
                after_close: after_close.as_ref(),
                duplicate: duplicate.as_ref(),
            };
            let won = order_db::mark_paid(
                &state.db,
                order_no,
                from,
                facts,
                rec.as_ref(),
                refunds,
                &state.sinks,
            )
            .await?;
            if let Some(evs) = &won {
                state.hub.committed(evs.iter());
                if evs
                    .iter()
                    .any(|e| e.event.event_type == crate::db::events::ORDER_DUPLICATE_PAYMENT)
                {
                    duplicate_flagged.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
            Ok::<bool, ApplyError>(won.is_some())
        }
    };
    let outcome = match rules::decide(status_of(&order), OrderEvent::Pay) {
        Ok(Transition::Move { .. }) => {
            if pay_from(OrderStatus::Pending).await? {
                ApplyOutcome::Applied
            } else {
                // Lost a race: re-read and decide again (it may have been cancelled meanwhile).
                let fresh = order_db::find(&state.db, &order.order_no)
                    .await?
                    .ok_or_else(|| ApplyError::UnknownOrder(order.order_no.clone()))?;
                if fresh.status == OrderStatus::Cancelled
                    && pay_from(OrderStatus::Cancelled).await?
                {
                    ApplyOutcome::PaidAfterCancel
                } else {
                    ApplyOutcome::Duplicate
                }
            }
        }
        Ok(Transition::PaidAfterCancel) => {
            if pay_from(OrderStatus::Cancelled).await? {
                ApplyOutcome::PaidAfterCancel
            } else {
                ApplyOutcome::Duplicate
            }
        }
        Ok(Transition::AlreadyDone) | Err(_) => ApplyOutcome::Duplicate,
    };
    if outcome == ApplyOutcome::PaidAfterCancel
        && state.settings.lifecycle.auto_refund_paid_after_close
    {
        let no = order.order_no.clone();
        match crate::service::refunds::refund_paid_after_close(state, &no).await {
            Ok(r) => {
                tracing::warn!(order_no = %no, out_refund_no = %r.out_refund_no, "paid after close: refunded automatically")
            }
            Err(e) => {
                tracing::error!(order_no = %no, error = %e, "paid after close: automatic refund failed; review the order")
            }
        }
    }
    if duplicate_flagged.load(std::sync::atomic::Ordering::Relaxed) {
        tracing::warn!(order_no = %order.order_no, "a second payment for the same purchase: held for review");
        // The after-close refund, when there is one, already gives the whole amount back.
        let refunded_after_close = outcome == ApplyOutcome::PaidAfterCancel
            && state.settings.lifecycle.auto_refund_paid_after_close;
        if state.settings.lifecycle.auto_refund_duplicate_payments && !refunded_after_close {
            let no = order.order_no.clone();
            match crate::service::refunds::refund_duplicate_payment(state, &no).await {
                Ok(r) => {
                    tracing::warn!(order_no = %no, out_refund_no = %r.out_refund_no, "duplicate payment: refunded automatically")
                }
                Err(e) => {
                    tracing::error!(order_no = %no, error = %e, "duplicate payment: automatic refund failed; review the order")
                }
            }
        }
    }
    match outcome {
        ApplyOutcome::Applied => tracing::info!(order_no = %order.order_no, "order paid"),
        ApplyOutcome::PaidAfterCancel => {
            tracing::warn!(order_no = %order.order_no, "payment arrived after cancel: order paid and flagged for review")
        }
        ApplyOutcome::Duplicate => {
            tracing::debug!(order_no = %order.order_no, "duplicate payment confirmation")
        }
    }
    Ok(outcome)
}

/// The provider says it closed a trade (Alipay `TRADE_CLOSED`). A notification alone
/// never cancels: a verified query decides. Closed and never paid: a pending order is
/// cancelled as expired. Paid: the payment is applied. Still open (or unknown to the
/// provider): nothing changes, the trade may still be paid. Query failed:
/// [`ApplyError::Unconfirmed`], nothing changes, the provider resends.
pub async fn apply_provider_close(
    state: &AppState,
    method: PaymentMethod,
    order_no: &str,
) -> Result<&'static str, ApplyError> {
    let order = order_db::find(&state.db, order_no)
        .await?
        .ok_or_else(|| ApplyError::UnknownOrder(order_no.to_string()))?;
    if method_of(&order) != method {
        return Err(ApplyError::Mismatch(format!(
            "order was placed with {}",
            order.provider
        )));
    }
    if order.status != OrderStatus::Pending {
        return Ok("unchanged");
    }
    let queried = state.providers.query(method, order_no).await;
    record_call(
        state,
        order_no,
        method,
        "query",
        "close confirmation",
        &queried,
    )
    .await;
    let trade = queried.map_err(|e| ApplyError::Unconfirmed(e.to_string()))?;
    match trade.state {
        RemoteTradeState::Closed => {}
        RemoteTradeState::Paid => {
            return match apply_queried_payment(state, &order, &trade).await {
                Ok(Some(outcome)) => Ok(match outcome {
                    ApplyOutcome::Applied => "paid at the provider: payment applied",
                    ApplyOutcome::PaidAfterCancel => "paid at the provider: paid after cancel",
                    ApplyOutcome::Duplicate => "paid at the provider: already applied",
                }),
                Ok(None) => Ok("unchanged"),
                Err(e) => Err(ApplyError::Unconfirmed(e.to_string())),
            };
        }
        RemoteTradeState::Pending | RemoteTradeState::NotExist => {
            return Ok("not closed at the provider: ignored")
        }
    }
    if let Some(ev) = order_db::cancel(
        &state.db,
        order_no,
        rules::cancel_reason_str(CancelReason::Expired),
        &state.sinks,
    )
    .await?
    {
        state.hub.committed([&ev]);
        Ok("cancelled")
    } else {
        Ok("unchanged")
    }
}

/// Keep a provider exchange in `payment_records` before going on; failures are logged,
/// never fatal.
#[allow(clippy::too_many_arguments)]
pub async fn record(
    state: &AppState,
    order_no: Option<&str>,
    method: PaymentMethod,
    kind: &str,
    headers: &str,
    body: &str,
    verified: bool,
    decision: &str,
) {
    let rec = new_record(order_no, method, kind, headers, body, verified, decision);
    store_record(state, &rec).await;
}

/// Store one record now; failures are logged, never fatal.
pub async fn store_record(state: &AppState, rec: &NewPaymentRecord) {
    if let Err(e) = order_db::record_many(&state.db, std::slice::from_ref(rec)).await {
        tracing::error!(error = %e, "could not store payment record");
    }
}

/// A payment record. NUL characters (PostgreSQL text cannot hold them; a forged body may
/// carry them) become U+FFFD.
pub fn new_record(
    order_no: Option<&str>,
    method: PaymentMethod,
    kind: &str,
    headers: &str,
    body: &str,
    verified: bool,
    decision: &str,
) -> NewPaymentRecord {
    let clean = |s: &str| s.replace('\0', "\u{FFFD}");
    NewPaymentRecord {
        order_no: order_no.map(String::from),
        provider: method.as_str().to_string(),
        kind: kind.to_string(),
        headers: clean(headers),
        body: clean(body),
        verified,
        decision: clean(decision),
        created_at: db::now(),
    }
}

/// Why a verified payment cannot be applied to `order`: provider, app / merchant,
/// amount or a missing transaction id. `None` when it matches.
pub fn payment_mismatch(
    order: &OrderRow,
    method: PaymentMethod,
    notice: &PaymentNotice,
    expected_ids: Option<(&str, &str)>,
) -> Option<String> {
    if method_of(order) != method {
        return Some(format!("order was placed with {}", order.provider));
    }
    if let Some((app_id, merchant_id)) = expected_ids {
        if notice.app_id != app_id || notice.merchant_id != merchant_id {
            return Some(format!(
                "app/merchant {}/{} is not ours",
                notice.app_id, notice.merchant_id
            ));
        }
    }
    if notice.amount_fen != order.amount_fen {
        return Some(format!(
            "amount {} fen, order is {} fen",
            notice.amount_fen, order.amount_fen
        ));
    }
    if notice.transaction_id.is_empty() {
        return Some("missing transaction id".into());
    }
    None
}

/// SDK parameters stored with an order.
pub fn stored_sdk_params(row: &OrderRow) -> Option<SdkParams> {
    row.sdk_params
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok())
}

/// Development only: the emulator at `base` pays `order_no` as its buyer would (the demo's
/// "simulate scan & pay"); the order then goes paid by the normal notification path. 409
/// `simulate_pay_failed` with the emulator's answer when it refuses.
pub async fn pay_at_emulator(base: &str, provider: &str, order_no: &str) -> AppResult<()> {
    let resp = reqwest::Client::new()
        .post(format!("{base}/__emulator/{provider}/pay/{order_no}"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .map_err(|e| AppError::ProviderUnavailable(e.to_string()))?;
    if !resp.status().is_success() {
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        return Err(AppError::conflict(
            "simulate_pay_failed",
            format!("emulator answered {status}: {text}"),
        ));
    }
    Ok(())
}
