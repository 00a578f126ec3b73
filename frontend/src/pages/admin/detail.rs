//! One order for operators: the order, its provider exchanges, refunds and outbound
//! events, and the refund form.

use std::time::Duration;

use api_types::admin::{
    AdminOrderDetail, BalanceEntry, DeliveryStatus, EventSummary, PaymentRecord, RefundRequest,
    RefundResponse, RefundStatus,
};
use api_types::payment::OrderStatus;
use api_types::Yuan;
use leptos::ev::SubmitEvent;
use leptos::html;
use leptos::prelude::*;
use leptos::task::spawn_local;

use super::{delivery_status_label, refund_status_label, yuan};
use crate::api::{Api, ApiError};
use crate::components::error_box::{error_text, ErrorBox};
use crate::i18n::{method_label, status_label, use_i18n, I18n};
use crate::state::{AdminView, Nav, Route};
use crate::time::local_datetime;

/// While a refund is processing, the page re-reads the order this often...
const WATCH_EVERY: Duration = Duration::from_millis(1500);
/// ...this many times at most (WeChat settles in seconds; a stuck one needs a person).
const WATCH_LIMIT: u32 = 40;

#[component]
pub fn OrderDetail(order_no: String) -> impl IntoView {
    let i18n = use_i18n();
    let api = expect_context::<Api>();
    let Nav(route) = expect_context::<Nav>();

    let order_no = StoredValue::new(order_no);
    let detail = RwSignal::new(None::<Result<AdminOrderDetail, ApiError>>);
    let loading = RwSignal::new(false);
    let watched = StoredValue::new(0_u32);

    let load = move || {
        let Some(no) = order_no.try_get_value() else {
            return;
        };
        if loading.get_untracked() {
            return;
        }
        loading.set(true);
        spawn_local(async move {
            let result = api.admin_order(&no).await;
            let _ = detail.try_set(Some(result));
            let _ = loading.try_set(false);
        });
    };
    load();

    // A processing refund settles on the provider's schedule: keep looking for a while.
    let watcher = set_interval_with_handle(
        move || {
            let processing = detail
                .try_with_untracked(|d| {
                    matches!(d, Some(Ok(d)) if d.refunds.iter().any(|r| r.status == RefundStatus::Processing))
                })
                .unwrap_or(false);
            let count = watched.try_get_value().unwrap_or(WATCH_LIMIT);
            if processing && count < WATCH_LIMIT {
                watched.set_value(count + 1);
                load();
            }
        },
        WATCH_EVERY,
    )
    .ok();
    on_cleanup(move || {
        if let Some(handle) = watcher {
            handle.clear();
        }
    });

    // Outlives the reload that follows a refund (the form is rebuilt with the order).
    let last_refund = RwSignal::new(None::<RefundResponse>);
    let refunded = move |reply: RefundResponse| {
        last_refund.set(Some(reply));
        watched.set_value(0);
        load();
    };

    let body = move || {
        match detail.get() {
        None => view! {
            <p class="loading" data-testid="loading" role="status">{move || i18n.t("正在加载订单…", "Loading the order…")}</p>
        }
        .into_any(),
        Some(Err(err)) => view! {
            <ErrorBox error=Signal::derive(move || Some(err.clone())) />
            <button type="button" class="btn" on:click=move |_| load()>{move || i18n.t("重试", "Retry")}</button>
        }
        .into_any(),
        Some(Ok(d)) => view! { <DetailBody detail=d on_refunded=Callback::new(refunded) /> }.into_any(),
    }
    };

    view! {
        <div class="admin-detail" data-testid="admin-order-detail" data-order-no=order_no.get_value()>
            <div class="page-head">
                <button type="button" class="btn btn-ghost" data-testid="admin-back" on:click=move |_| route.set(Route::Admin(AdminView::Orders))>
                    {move || i18n.t("← 返回订单列表", "← Back to orders")}
                </button>
                <button type="button" class="btn btn-ghost" data-testid="admin-detail-refresh" disabled=move || loading.get() on:click=move |_| load()>
                    {move || if loading.get() { i18n.t("正在刷新…", "Refreshing…") } else { i18n.t("刷新", "Refresh") }}
                </button>
            </div>
            <h1>{move || i18n.t("订单 ", "Order ")}<code>{order_no.get_value()}</code></h1>
            <div aria-live="polite">
                {move || last_refund.get().map(|r| {
                    let status = r.status;
                    view! {
                        <p class="alert alert-success" data-testid="refund-result" data-status=status.as_str()>
                            {move || match status {
                                RefundStatus::Succeeded => i18n.t("退款成功：", "Refunded: "),
                                RefundStatus::Processing => i18n.t("退款已受理，处理中：", "Refund accepted, processing: "),
                                RefundStatus::Failed => i18n.t("退款失败：", "Refund failed: "),
                            }}
                            {yuan(r.amount_fen)}
                            " · "
                            <code>{r.out_refund_no}</code>
                        </p>
                    }
                })}
            </div>
            {body}
        </div>
    }
}

#[component]
fn DetailBody(detail: AdminOrderDetail, on_refunded: Callback<RefundResponse>) -> impl IntoView {
    let i18n = use_i18n();
    let admin_order = detail.order;
    let order = admin_order.order;
    let status = order.status;
    let reason = order.cancel_reason;
    let method = order.payment_method;
    let created_at = order.created_at;
    let paid_at = order.payment_time;
    let remaining = (order.amount_fen - order.refunded_fen).max(0);
    let refundable = status == OrderStatus::Paid && remaining > 0;
    let review = admin_order.needs_review.then(|| {
        let why = admin_order.review_reason.clone().unwrap_or_default();
        view! {
            <div class="alert alert-warn review" role="note" data-testid="review-flag">
                <strong>{move || i18n.t("需要人工复核", "Needs review")}</strong>
                {(!why.is_empty()).then(|| view! { <p data-testid="review-reason">{why.clone()}</p> })}
            </div>
        }
    });
    let form = refundable.then(|| {
        view! { <RefundForm order_no=order.order_no.clone() remaining_fen=remaining on_done=on_refunded /> }
    });

    view! {
        <div class="card">
            <dl class="facts facts-wide">
                <dt>{move || i18n.t("状态", "Status")}</dt>
                <dd aria-live="polite">
                    <span class=format!("badge badge-{}", status.as_str()) data-testid="admin-order-status" data-status=status.as_str()>
                        {move || status_label(i18n, status, reason)}
                    </span>
                </dd>
                <dt>{move || i18n.t("用户", "User")}</dt>
                <dd>{admin_order.username}" "<code class="muted">{admin_order.user_id}</code></dd>
                <dt>{move || i18n.t("商品", "Product")}</dt>
                <dd>{order.product_name}" × "{order.quantity}</dd>
                <dt>{move || i18n.t("金额", "Amount")}</dt>
                <dd data-testid="admin-order-amount">{yuan(order.amount_fen)}</dd>
                <dt>{move || i18n.t("已退款", "Refunded")}</dt>
                <dd data-testid="admin-order-refunded">{yuan(order.refunded_fen)}</dd>
                <dt>{move || i18n.t("支付方式", "Provider")}</dt>
                <dd>{move || method_label(i18n, method)}" · "{order.channel.as_str()}</dd>
                <dt>{move || i18n.t("创建时间", "Created")}</dt>
                <dd>{move || local_datetime(&created_at, i18n.lang())}</dd>
                <dt>{move || i18n.t("支付时间", "Paid at")}</dt>
                <dd>{move || paid_at.map(|t| local_datetime(&t, i18n.lang())).unwrap_or_else(|| "—".to_owned())}</dd>
                <dt>{move || i18n.t("渠道交易号", "Provider transaction")}</dt>
                <dd><code>{order.provider_transaction_id.unwrap_or_else(|| "—".to_owned())}</code></dd>
            </dl>
            {review}
        </div>
        {form}
        <h2>{move || i18n.t("退款", "Refunds")}</h2>
        <Refunds refunds=detail.refunds />
        <h2>{move || i18n.t("余额流水", "Balance ledger")}</h2>
        <Ledger entries=detail.balance_entries />
        <h2>{move || i18n.t("支付渠道记录", "Provider records")}</h2>
        <Records records=detail.records />
        <h2>{move || i18n.t("通知事件", "Outbound events")}</h2>
        <Events events=detail.events />
    }
}

#[component]
fn Refunds(refunds: Vec<RefundResponse>) -> impl IntoView {
    let i18n = use_i18n();
    if refunds.is_empty() {
        return view! { <p class="empty" data-testid="refunds-empty">{move || i18n.t("没有退款。", "No refunds.")}</p> }.into_any();
    }
    let rows = refunds
        .into_iter()
        .map(|r| {
            let status = r.status;
            let created_at = r.created_at;
            let done_at = r.succeeded_at;
            let refund_no = r.out_refund_no.clone();
            view! {
                <tr data-testid="refund-row" data-status=status.as_str() data-refund-no=refund_no>
                    <td><code>{r.out_refund_no}</code></td>
                    <td class="num">{yuan(r.amount_fen)}</td>
                    <td><span class=format!("badge badge-refund-{}", status.as_str())>{move || refund_status_label(i18n, status)}</span></td>
                    <td>{r.reason.unwrap_or_default()}</td>
                    <td class="nowrap">{move || local_datetime(&created_at, i18n.lang())}</td>
                    <td class="nowrap">{move || done_at.map(|t| local_datetime(&t, i18n.lang())).unwrap_or_default()}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <div class="table-scroll" role="region" tabindex="0" aria-label=move || i18n.t("退款列表", "Refunds")>
            <table class="data" data-testid="refunds">
                <thead>
                    <tr>
                        <th scope="col">{move || i18n.t("退款单号", "Refund no.")}</th>
                        <th scope="col" class="num">{move || i18n.t("金额", "Amount")}</th>
                        <th scope="col">{move || i18n.t("状态", "Status")}</th>
                        <th scope="col">{move || i18n.t("原因", "Reason")}</th>
                        <th scope="col">{move || i18n.t("申请时间", "Requested")}</th>
                        <th scope="col">{move || i18n.t("完成时间", "Completed")}</th>
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
    }
    .into_any()
}

/// Signed seconds as whole days and hours, e.g. `+30d 0h` or `-2d 5h`.
fn duration_text(secs: i64) -> String {
    let sign = if secs < 0 { "-" } else { "+" };
    let s = secs.unsigned_abs();
    format!("{sign}{}d {}h", s / 86_400, (s % 86_400) / 3_600)
}

#[component]
fn Ledger(entries: Vec<BalanceEntry>) -> impl IntoView {
    let i18n = use_i18n();
    if entries.is_empty() {
        return view! { <p class="empty" data-testid="ledger-empty">{move || i18n.t("没有余额变动。", "No balance changes.")}</p> }.into_any();
    }
    let rows = entries
        .into_iter()
        .map(|e| {
            let created_at = e.created_at;
            let tier = match (&e.tier_before, &e.tier_after) {
                (b, a) if b == a => a.clone().unwrap_or_default(),
                (b, a) => format!(
                    "{} → {}",
                    b.clone().unwrap_or_else(|| "—".to_owned()),
                    a.clone().unwrap_or_else(|| "—".to_owned())
                ),
            };
            let expires = e.expires_after;
            let reason = e.reason.clone();
            view! {
                <tr data-testid="ledger-row" data-reason=reason>
                    <td class="nowrap">{move || local_datetime(&created_at, i18n.lang())}</td>
                    <td>{e.reason}</td>
                    <td class="num">{format!("{:+}", e.delta_points)}</td>
                    <td class="num">{e.points_after}</td>
                    <td class="num">{duration_text(e.delta_membership_secs)}</td>
                    <td>{tier}</td>
                    <td class="nowrap">{move || expires.map(|t| local_datetime(&t, i18n.lang())).unwrap_or_default()}</td>
                    <td><code>{e.out_refund_no.unwrap_or_default()}</code></td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <div class="table-scroll" role="region" tabindex="0" aria-label=move || i18n.t("余额流水", "Balance ledger")>
            <table class="data" data-testid="ledger">
                <thead>
                    <tr>
                        <th scope="col">{move || i18n.t("时间", "Time")}</th>
                        <th scope="col">{move || i18n.t("原因", "Reason")}</th>
                        <th scope="col" class="num">{move || i18n.t("积分变动", "Points")}</th>
                        <th scope="col" class="num">{move || i18n.t("积分余额", "Balance")}</th>
                        <th scope="col" class="num">{move || i18n.t("会员时长变动", "Membership")}</th>
                        <th scope="col">{move || i18n.t("会员等级", "Tier")}</th>
                        <th scope="col">{move || i18n.t("到期时间", "Expires")}</th>
                        <th scope="col">{move || i18n.t("退款单号", "Refund no.")}</th>
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
    }
    .into_any()
}

#[component]
fn Records(records: Vec<PaymentRecord>) -> impl IntoView {
    let i18n = use_i18n();
    if records.is_empty() {
        return view! { <p class="empty">{move || i18n.t("没有记录。", "No records.")}</p> }
            .into_any();
    }
    let items = records
        .into_iter()
        .map(|r| {
            let at = r.created_at;
            let verified = r.verified;
            let headers = (!r.headers.is_empty() && r.headers != "{}").then_some(r.headers);
            let kind = r.kind.clone();
            view! {
                <li class="record" data-testid="record" data-kind=kind>
                    <div class="record-head">
                        <code class="record-kind">{r.kind}</code>
                        <span>{move || method_label(i18n, r.provider)}</span>
                        <span class=if verified { "badge badge-paid" } else { "badge" }>
                            {move || if verified { i18n.t("签名已验证", "Signature verified") } else { i18n.t("未验证", "Not verified") }}
                        </span>
                        <span class="decision">{r.decision}</span>
                        <span class="muted nowrap">{move || local_datetime(&at, i18n.lang())}</span>
                    </div>
                    <details>
                        <summary>{move || i18n.t("查看内容", "Show body")}</summary>
                        {headers.map(|h| view! { <pre class="raw">{h}</pre> })}
                        <pre class="raw">{r.body}</pre>
                    </details>
                </li>
            }
        })
        .collect_view();
    view! { <ul class="records" data-testid="records">{items}</ul> }.into_any()
}

#[component]
fn Events(events: Vec<EventSummary>) -> impl IntoView {
    let i18n = use_i18n();
    if events.is_empty() {
        return view! { <p class="empty">{move || i18n.t("没有事件。", "No events.")}</p> }
            .into_any();
    }
    let items = events
        .into_iter()
        .map(|e| {
            let at = e.created_at;
            let deliveries = if e.deliveries.is_empty() {
                view! {
                    <p class="muted deliveries-none">{move || i18n.t("未配置投递地址。", "No delivery endpoints configured.")}</p>
                }
                .into_any()
            } else {
                let items = e
                    .deliveries
                    .into_iter()
                    .map(|d| {
                        let status = d.status;
                        let last = match (d.last_status_code, d.last_error) {
                            (Some(code), Some(err)) => format!("HTTP {code} · {err}"),
                            (Some(code), None) => format!("HTTP {code}"),
                            (None, Some(err)) => err,
                            (None, None) => String::new(),
                        };
                        let attempts = d.attempts;
                        view! {
                            <li class="delivery" data-testid="delivery" data-status=delivery_key(status)>
                                <code>{d.endpoint}</code>
                                <span class=format!("badge badge-delivery-{}", delivery_key(status))>
                                    {move || delivery_status_label(i18n, status)}
                                </span>
                                <span class="muted">{move || format!("{} {attempts}", i18n.t("尝试次数", "attempts"))}</span>
                                <span class="muted">{last}</span>
                            </li>
                        }
                    })
                    .collect_view();
                view! { <ul class="deliveries">{items}</ul> }.into_any()
            };
            let event_type = e.event_type.clone();
            view! {
                <li class="event" data-testid="event" data-type=event_type>
                    <div class="record-head">
                        <code>{e.event_type}</code>
                        <span class="muted nowrap">{move || local_datetime(&at, i18n.lang())}</span>
                    </div>
                    {deliveries}
                </li>
            }
        })
        .collect_view();
    view! { <ul class="records" data-testid="events">{items}</ul> }.into_any()
}

fn delivery_key(status: DeliveryStatus) -> &'static str {
    match status {
        DeliveryStatus::Pending => "pending",
        DeliveryStatus::Delivered => "delivered",
        DeliveryStatus::Failed => "failed",
    }
}

/// Why a typed refund amount is not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AmountError {
    /// Not a plain yuan amount with at most two decimals.
    Invalid,
    Zero,
    TooMuch,
}

/// `"12.3"` -> 1230 fen, by integer arithmetic; at most `max_fen`.
fn parse_refund_amount(text: &str, max_fen: i64) -> Result<i64, AmountError> {
    let text = text.trim();
    let text = text
        .strip_prefix('¥')
        .or_else(|| text.strip_prefix('￥'))
        .unwrap_or(text)
        .trim();
    if text.starts_with('-') {
        return Err(AmountError::Invalid);
    }
    let fen = Yuan::parse(text).ok_or(AmountError::Invalid)?.fen();
    if fen <= 0 {
        Err(AmountError::Zero)
    } else if fen > max_fen {
        Err(AmountError::TooMuch)
    } else {
        Ok(fen)
    }
}

fn amount_error_text(i18n: I18n, err: AmountError, max_fen: i64) -> String {
    match err {
        AmountError::Invalid => i18n
            .t(
                "请输入金额（元），最多两位小数，例如 12.50。",
                "Enter an amount in yuan with at most two decimals, e.g. 12.50.",
            )
            .to_owned(),
        AmountError::Zero => i18n
            .t("退款金额必须大于 0。", "The amount must be more than 0.")
            .to_owned(),
        AmountError::TooMuch => format!(
            "{} {}",
            i18n.t(
                "退款金额不能超过可退金额",
                "The amount cannot exceed the refundable"
            ),
            yuan(max_fen)
        ),
    }
}

/// Refund errors in words: the refund-specific codes first, then the shared ones.
fn refund_error_text(i18n: I18n, err: &ApiError) -> String {
    let text = match err.code() {
        Some("invalid_refund_amount") => Some(i18n.t(
            "退款金额无效：必须大于 0 且不超过可退金额。",
            "Invalid refund amount: it must be more than 0 and at most the refundable amount.",
        )),
        Some("order_not_paid") => Some(i18n.t(
            "该订单不是已支付状态，无法退款。",
            "This order is not paid, so it cannot be refunded.",
        )),
        Some("provider_unavailable") => Some(i18n.t(
            "支付渠道暂时不可用，退款未完成。请稍后重试。",
            "The payment provider is unavailable; the refund was not made. Please try again later.",
        )),
        Some("idempotency_key_reused") => Some(i18n.t(
            "该退款请求已用不同的内容提交过。请刷新页面后重新填写。",
            "This refund request was already submitted with different details. Refresh and fill in the form again.",
        )),
        Some("idempotency_key_in_progress") => Some(i18n.t(
            "同一退款请求仍在处理中，请稍候刷新查看结果。",
            "The same refund request is still being processed; refresh in a moment to see the result.",
        )),
        Some("refund_rejected") => Some(i18n.t(
            "支付渠道拒绝了该退款。",
            "The payment provider rejected the refund.",
        )),
        _ => None,
    };
    text.map(str::to_owned)
        .unwrap_or_else(|| error_text(i18n, err))
}

/// True when the request may or may not have reached the server: retry with the same key.
fn outcome_unknown(err: &ApiError) -> bool {
    match err {
        ApiError::Network | ApiError::Unexpected => true,
        ApiError::Status { status, .. } => *status >= 500 || *status == 409,
        ApiError::SessionExpired => false,
    }
}

/// A random `Idempotency-Key`, one per refund confirmation.
fn new_idempotency_key() -> String {
    let mut bytes = [0_u8; 16];
    let filled = web_sys::window()
        .and_then(|w| w.crypto().ok())
        .is_some_and(|c| c.get_random_values_with_u8_array(&mut bytes).is_ok());
    if !filled {
        for b in &mut bytes {
            *b = (js_sys::Math::random() * 256.0) as u8;
        }
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("refund-{hex}")
}

/// The two steps of a refund: fill in, then confirm.
#[derive(Clone, Debug, PartialEq)]
enum Step {
    Edit,
    Confirm { amount_fen: i64, key: String },
}

#[component]
fn RefundForm(
    order_no: String,
    remaining_fen: i64,
    on_done: Callback<RefundResponse>,
) -> impl IntoView {
    let i18n = use_i18n();
    let api = expect_context::<Api>();

    let order_no = StoredValue::new(order_no);
    let amount = RwSignal::new(Yuan(remaining_fen).to_string());
    let reason = RwSignal::new(String::new());
    let step = RwSignal::new(Step::Edit);
    let invalid = RwSignal::new(None::<AmountError>);
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<ApiError>);
    let confirm_ref = NodeRef::<html::Button>::new();
    let amount_ref = NodeRef::<html::Input>::new();

    // Focus follows the step: the confirm button, or back to the amount.
    Effect::new(move |_| {
        if let Some(button) = confirm_ref.get() {
            let _ = button.focus();
        }
    });

    let review = move |ev: SubmitEvent| {
        ev.prevent_default();
        error.set(None);
        match parse_refund_amount(&amount.get_untracked(), remaining_fen) {
            Ok(amount_fen) => {
                invalid.set(None);
                step.set(Step::Confirm {
                    amount_fen,
                    key: new_idempotency_key(),
                });
            }
            Err(err) => {
                invalid.set(Some(err));
                if let Some(input) = amount_ref.get_untracked() {
                    let _ = input.focus();
                }
            }
        }
    };

    let back = move |_| {
        step.set(Step::Edit);
        error.set(None);
        if let Some(input) = amount_ref.get_untracked() {
            let _ = input.focus();
        }
    };

    let confirm = move |_| {
        let Step::Confirm { amount_fen, key } = step.get_untracked() else {
            return;
        };
        if busy.get_untracked() {
            return;
        }
        busy.set(true);
        error.set(None);
        let reason = reason.get_untracked().trim().to_owned();
        let req = RefundRequest {
            order_no: order_no.get_value(),
            amount_fen: Some(amount_fen),
            out_refund_no: None,
            reason: (!reason.is_empty()).then_some(reason),
        };
        spawn_local(async move {
            let result = api.refund(&req, &key).await;
            let _ = busy.try_set(false);
            match result {
                Ok(reply) => {
                    let _ = step.try_set(Step::Edit);
                    on_done.run(reply);
                }
                Err(err) => {
                    // Unknown outcome: stay on the confirm step so a retry reuses the key.
                    if !outcome_unknown(&err) {
                        let _ = step.try_set(Step::Edit);
                    }
                    let _ = error.try_set(Some(err));
                }
            }
        });
    };

    let confirming = move || matches!(step.get(), Step::Confirm { .. });
    let confirm_text = move || match step.get() {
        Step::Confirm { amount_fen, .. } => format!(
            "{} {} {}",
            i18n.t("确认向买家退款", "Refund"),
            yuan(amount_fen),
            i18n.t("？此操作无法撤销。", "to the buyer? This cannot be undone.")
        ),
        Step::Edit => String::new(),
    };

    view! {
        <section class="card refund" data-testid="refund-form-section" aria-labelledby="refund-title">
            <h2 id="refund-title">{move || i18n.t("退款", "Refund")}</h2>
            <form class="refund-form" data-testid="refund-form" on:submit=review>
                <div class="field">
                    <label for="refund-amount">{move || i18n.t("退款金额（元）", "Amount (yuan)")}</label>
                    <input
                        id="refund-amount"
                        node_ref=amount_ref
                        type="text"
                        inputmode="decimal"
                        autocomplete="off"
                        aria-describedby="refund-amount-hint"
                        aria-invalid=move || invalid.get().is_some().then_some("true")
                        disabled=confirming
                        prop:value=amount
                        on:input=move |ev| amount.set(event_target_value(&ev))
                    />
                    <p id="refund-amount-hint" class="hint-inline">
                        {move || format!("{} {}", i18n.t("可退金额：", "Refundable:"), yuan(remaining_fen))}
                    </p>
                    {move || invalid.get().map(|err| view! {
                        <p class="field-error" role="alert" data-testid="refund-amount-error">
                            {amount_error_text(i18n, err, remaining_fen)}
                        </p>
                    })}
                </div>
                <div class="field">
                    <label for="refund-reason">{move || i18n.t("退款原因（可选）", "Reason (optional)")}</label>
                    <input
                        id="refund-reason"
                        type="text"
                        maxlength="80"
                        autocomplete="off"
                        disabled=confirming
                        prop:value=reason
                        on:input=move |ev| reason.set(event_target_value(&ev))
                    />
                </div>
                <Show when=move || !confirming()>
                    <div class="actions actions-start">
                        <button type="submit" class="btn btn-danger" data-testid="refund-submit">
                            {move || i18n.t("退款…", "Refund…")}
                        </button>
                    </div>
                </Show>
            </form>
            <Show when=confirming>
                <div class="alert alert-warn confirm" role="group" aria-labelledby="refund-confirm-text" data-testid="refund-confirm-box">
                    <p id="refund-confirm-text">{confirm_text}</p>
                    <div class="actions actions-start">
                        <button
                            type="button"
                            class="btn btn-danger"
                            node_ref=confirm_ref
                            data-testid="refund-confirm"
                            disabled=move || busy.get()
                            on:click=confirm
                        >
                            {move || if busy.get() { i18n.t("正在退款…", "Refunding…") } else { i18n.t("确认退款", "Confirm refund") }}
                        </button>
                        <button type="button" class="btn" data-testid="refund-back" disabled=move || busy.get() on:click=back>
                            {move || i18n.t("返回修改", "Go back")}
                        </button>
                    </div>
                </div>
            </Show>
            {move || error.get().map(|err| view! {
                <div class="alert alert-error" role="alert" data-testid="refund-error" data-code=err.code().map(str::to_owned)>
                    <p>{refund_error_text(i18n, &err)}</p>
                </div>
            })}
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::{duration_text, parse_refund_amount, AmountError};

    #[test]
    fn ledger_durations_read_as_days_and_hours() {
        assert_eq!(duration_text(30 * 86_400), "+30d 0h");
        assert_eq!(duration_text(-(2 * 86_400 + 5 * 3_600 + 59)), "-2d 5h");
        assert_eq!(duration_text(0), "+0d 0h");
    }

    #[test]
    fn refund_amounts_are_exact_fen() {
        assert_eq!(parse_refund_amount("10", 1000), Ok(1000));
        assert_eq!(parse_refund_amount(" ¥0.01 ", 1000), Ok(1));
        assert_eq!(parse_refund_amount("9.9", 1000), Ok(990));
        assert_eq!(parse_refund_amount("0.29", 1000), Ok(29));
        assert_eq!(
            parse_refund_amount("10.01", 1000),
            Err(AmountError::TooMuch)
        );
        assert_eq!(parse_refund_amount("0", 1000), Err(AmountError::Zero));
        assert_eq!(parse_refund_amount("-1", 1000), Err(AmountError::Invalid));
        assert_eq!(
            parse_refund_amount("1.234", 1000),
            Err(AmountError::Invalid)
        );
        assert_eq!(parse_refund_amount("1e2", 1000), Err(AmountError::Invalid));
        assert_eq!(parse_refund_amount("", 1000), Err(AmountError::Invalid));
    }
}
