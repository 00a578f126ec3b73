//! Paying one order: QR code, countdown, live status, cancel, "get a new code" after
//! expiry and, against the development emulator, simulated payment.
//!
//! Status arrives over server-sent events; when the stream cannot be opened (an older
//! server without `stream-token`, a proxy that blocks it) the page polls every 3 s.
//!
//! The QR code is shown until `qr_code_expire_at`, but the provider takes the payment
//! until the order's `expire_at`: a buyer who scanned at the last moment may still be
//! paying, so the page keeps watching the order until then. "Get a new code" first
//! cancels the old order (closed at the provider; if it turns out paid, the page shows
//! the payment instead) and only then creates the new one, naming the order it replaces,
//! so the two can never both be paid. Every countdown runs on the server's clock
//! ([`server_now_ms`]).

use std::rc::Rc;
use std::time::Duration;

use api_types::payment::{CreateOrderRequest, OrderStatus, PaymentMethod};
use api_types::product::{ProductKind, ProductResponse};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::{Api, ApiError};
use crate::components::error_box::ErrorBox;
use crate::components::qr::QrCodeView;
use crate::i18n::{method_label, status_label, use_i18n};
use crate::live::{LiveEvent, LiveStream};
use crate::state::{Checkout, DevMode, Nav, Route, Session};
use crate::time::{mm_ss, server_now_ms};

const POLL_EVERY: Duration = Duration::from_secs(3);
const TICK_EVERY: Duration = Duration::from_secs(1);

/// Creates an order for `product` and returns what the payment screen shows.
pub async fn start_checkout(
    api: Api,
    product: &ProductResponse,
    method: PaymentMethod,
) -> Result<Checkout, ApiError> {
    let reply = api
        .create_order(&order_request(product.kind, product.id, method))
        .await?;
    Ok(Checkout::created(
        reply,
        product.kind,
        product.id,
        product.name.clone(),
    ))
}

fn order_request(kind: ProductKind, id: i64, method: PaymentMethod) -> CreateOrderRequest {
    CreateOrderRequest {
        product_type: kind,
        product_id: id,
        payment_method: method,
        is_upgrade: false,
        quantity: None,
        channel: None,
        openid: None,
        replaces_order_no: None,
    }
}

/// Where status updates come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Feed {
    /// Asking for a stream token / opening the stream.
    Connecting,
    /// Server-sent events.
    Live,
    /// Polling order-status every 3 s.
    Polling,
}

impl Feed {
    fn as_str(self) -> &'static str {
        match self {
            Feed::Connecting => "connecting",
            Feed::Live => "sse",
            Feed::Polling => "poll",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Busy {
    Cancelling,
    Simulating,
    Renewing,
}

#[component]
pub fn PayPage(checkout: Checkout) -> impl IntoView {
    let i18n = use_i18n();
    let api = expect_context::<Api>();
    let session = expect_context::<Session>();
    let Nav(route) = expect_context::<Nav>();
    let DevMode(dev) = expect_context::<DevMode>();

    let qr_expire_ms = checkout.qr_code_expire_at.timestamp_millis();
    // Never before the QR code: an order row from an older server may say otherwise.
    let order_expire_ms = checkout.expire_at.timestamp_millis().max(qr_expire_ms);
    let order_no = StoredValue::new(checkout.order_no.clone());
    let status = RwSignal::new(checkout.status);
    let now = RwSignal::new(server_now_ms());
    let qr_expired = Memo::new(move |_| now.get() >= qr_expire_ms);
    let order_expired = Memo::new(move |_| now.get() >= order_expire_ms);
    let error = RwSignal::new(None::<ApiError>);
    let poll_failed = RwSignal::new(false);
    let busy = RwSignal::new(None::<Busy>);
    let simulated = RwSignal::new(false);
    let in_flight = StoredValue::new(false);
    let final_check_done = StoredValue::new(false);
    let feed = RwSignal::new(Feed::Connecting);
    let stream = StoredValue::new_local(None::<LiveStream>);
    let streamed = StoredValue::new(false);
    let stop_stream = move || {
        let _ = stream.try_with_value(|s| {
            if let Some(s) = s {
                s.close();
            }
        });
    };

    // Applies a status read from the server; a fresh payment refreshes the balance.
    let apply = move |next: OrderStatus| {
        let Some(prev) = status.try_get_untracked() else {
            return;
        };
        if next.is_terminal() {
            stop_stream();
        }
        if prev == next {
            return;
        }
        status.set(next);
        if next == OrderStatus::Paid {
            spawn_local(async move {
                if let Ok(user) = api.me().await {
                    session.user.set(Some(user));
                }
            });
        }
    };

    let poll = move || {
        let (Some(no), Some(false)) = (order_no.try_get_value(), in_flight.try_get_value()) else {
            return;
        };
        if status
            .try_get_untracked()
            .is_none_or(OrderStatus::is_terminal)
        {
            return;
        }
        in_flight.set_value(true);
        spawn_local(async move {
            let result = api.order_status(&no).await;
            let _ = in_flight.try_set_value(false);
            match result {
                Ok(order) => {
                    let _ = poll_failed.try_set(false);
                    apply(order.status);
                }
                Err(ApiError::SessionExpired) => {}
                Err(_) => {
                    let _ = poll_failed.try_set(true);
                }
            }
        });
    };

    // Server-sent events first; polling when the stream cannot be had.
    let fall_back = move || {
        stop_stream();
        if feed.try_set(Feed::Polling).is_none() {
            poll();
        }
    };
    let on_live = move |event: LiveEvent| match event {
        LiveEvent::Status(order) => {
            let _ = streamed.try_set_value(true);
            let _ = feed.try_set(Feed::Live);
            apply(order.status);
        }
        // Before any message the stream is not usable (refused, blocked): poll instead.
        LiveEvent::Error { closed } if closed || streamed.try_get_value() != Some(true) => {
            fall_back()
        }
        // A dropped connection the browser is re-opening: poll until it is back.
        LiveEvent::Error { .. } => {
            if feed.try_set(Feed::Polling).is_none() {
                poll();
            }
        }
    };
    // Watched until the order itself expires, not only while its QR code is shown.
    if checkout.status.is_terminal() || server_now_ms() >= order_expire_ms {
        feed.set(Feed::Polling);
        poll();
    } else {
        spawn_local(async move {
            let Some(no) = order_no.try_get_value() else {
                return;
            };
            let url = match api.stream_token(&no).await {
                Ok(reply) => reply.url,
                Err(_) => return fall_back(),
            };
            if status
                .try_get_untracked()
                .is_none_or(OrderStatus::is_terminal)
            {
                return;
            }
            match LiveStream::open(&url, Rc::new(on_live)) {
                // Some(..) back means the page is gone: dropping the stream closes it.
                Ok(opened) => drop(stream.try_set_value(Some(opened))),
                Err(_) => fall_back(),
            }
        });
    }

    let ticker = set_interval_with_handle(
        move || {
            let t = server_now_ms();
            let _ = now.try_set(t);
            // One last look when the order runs out, in case the payment landed at the end.
            if t >= order_expire_ms && final_check_done.try_get_value() == Some(false) {
                final_check_done.set_value(true);
                stop_stream();
                poll();
            }
        },
        TICK_EVERY,
    )
    .ok();
    let poller = set_interval_with_handle(
        move || {
            if server_now_ms() < order_expire_ms && feed.try_get_untracked() == Some(Feed::Polling)
            {
                poll();
            }
        },
        POLL_EVERY,
    )
    .ok();
    on_cleanup(move || {
        if let Some(handle) = ticker {
            handle.clear();
        }
        if let Some(handle) = poller {
            handle.clear();
        }
        stop_stream();
    });

    let cancel = move |_| {
        let Some(no) = order_no.try_get_value() else {
            return;
        };
        busy.set(Some(Busy::Cancelling));
        error.set(None);
        spawn_local(async move {
            let result = api.cancel_order(&no).await;
            let _ = busy.try_set(None);
            match result {
                Ok(reply) if reply.code == 200 => apply(OrderStatus::Cancelled),
                Ok(reply) => {
                    let _ = error.try_set(Some(ApiError::Status {
                        status: 200,
                        body: Some(api_types::error::ErrorResponse {
                            code: "cancel_failed".to_owned(),
                            message: reply.msg,
                            details: Vec::new(),
                        }),
                    }));
                    poll();
                }
                Err(err) => {
                    // Paid or closed meanwhile: show the real state next to the message.
                    let _ = error.try_set(Some(err));
                    poll();
                }
            }
        });
    };

    let simulate = move |_| {
        let Some(no) = order_no.try_get_value() else {
            return;
        };
        busy.set(Some(Busy::Simulating));
        error.set(None);
        spawn_local(async move {
            let result = api.simulate_pay(&no).await;
            let _ = busy.try_set(None);
            match result {
                Ok(()) => {
                    let _ = simulated.try_set(true);
                    // The stream reports the payment; a poller looks now and again soon
                    // (the notification reaches the backend asynchronously).
                    if feed.try_get_untracked() != Some(Feed::Live) {
                        poll();
                        set_timeout(poll, Duration::from_millis(800));
                    }
                }
                Err(err) => {
                    let _ = error.try_set(Some(err));
                }
            }
        });
    };

    let product_type = checkout.product_type;
    let product_id = checkout.product_id;
    let product_name = checkout.product_name.clone();
    let method = checkout.payment_method;
    // The provider says the old order was paid: show that (the server applied it
    // before answering), never a new code.
    let paid_meanwhile = move |err: ApiError| {
        let _ = busy.try_set(None);
        if err.code() != Some("order_already_paid") {
            let _ = error.try_set(Some(err));
        }
        poll();
        set_timeout(poll, Duration::from_millis(1_000));
    };
    let renew = move |_| {
        let Some(old) = order_no.try_get_value() else {
            return;
        };
        let name = product_name.clone();
        busy.set(Some(Busy::Renewing));
        error.set(None);
        spawn_local(async move {
            // Close the old trade first, so the old code can never be paid next to the
            // new one. Until that is confirmed there is no new code.
            match api.cancel_order(&old).await {
                Ok(reply) if reply.code == 200 => {}
                Ok(reply) => {
                    return paid_meanwhile(ApiError::Status {
                        status: 200,
                        body: Some(api_types::error::ErrorResponse {
                            code: "cancel_failed".to_owned(),
                            message: reply.msg,
                            details: Vec::new(),
                        }),
                    })
                }
                Err(err) => return paid_meanwhile(err),
            }
            let request = CreateOrderRequest {
                replaces_order_no: Some(old),
                ..order_request(product_type, product_id, method)
            };
            match api.create_order(&request).await {
                Ok(reply) => {
                    let next = Checkout::created(reply, product_type, product_id, name);
                    route.set(Route::Pay(next));
                }
                Err(err) => paid_meanwhile(err),
            }
        });
    };

    let qr_content = checkout.qr_code_url.clone();
    let order_no_text = checkout.order_no.clone();
    let scan_hint = move || match method {
        PaymentMethod::Wechat => i18n.t("请使用微信「扫一扫」扫码支付", "Scan with WeChat to pay"),
        PaymentMethod::Alipay => {
            i18n.t("请使用支付宝「扫一扫」扫码支付", "Scan with Alipay to pay")
        }
    };

    let indicator = move || {
        view! {
            <p class="feed" data-testid="live-indicator" data-mode=move || feed.get().as_str()>
                <span class="feed-dot" aria-hidden="true"></span>
                {move || match feed.get() {
                    Feed::Connecting => i18n.t("正在连接…", "Connecting…"),
                    Feed::Live => i18n.t("实时更新", "Live"),
                    Feed::Polling => i18n.t("每 3 秒刷新", "Checking every 3 s"),
                }}
            </p>
        }
    };
    let renew_button = move || {
        let renew = renew.clone();
        view! {
            <button
                type="button"
                class="btn btn-primary"
                data-testid="renew-qr"
                disabled=move || busy.get().is_some()
                on:click=renew
            >
                {move || if busy.get() == Some(Busy::Renewing) {
                    i18n.t("正在获取…", "Getting a new code…")
                } else {
                    i18n.t("获取新二维码", "Get a new code")
                }}
            </button>
        }
    };
    let renew_button_closed = renew_button.clone();

    let body = move || {
        match (status.get(), qr_expired.get()) {
            (OrderStatus::Pending, false) => {
                let qr = match qr_content.clone() {
                    Some(content) => view! { <QrCodeView order_no=order_no.get_value() content /> }.into_any(),
                    None => view! {
                        <p class="alert alert-error" role="alert" data-testid="error">
                            {move || i18n.t("该订单没有可显示的二维码。", "This order has no QR code to show.")}
                        </p>
                    }
                    .into_any(),
                };
                view! {
                    <div class="pay-live">
                        {qr}
                        <p class="scan-hint">{scan_hint}</p>
                        <p class="countdown" data-testid="countdown" aria-live="off">
                            {move || i18n.t("二维码有效期剩余 ", "Code valid for ")}
                            <strong>{move || mm_ss(qr_expire_ms - now.get())}</strong>
                        </p>
                        {indicator()}
                        {move || poll_failed.get().then(|| view! {
                            <p class="muted" role="status">
                                {i18n.t("暂时无法获取支付状态，正在重试…", "Cannot check the payment status right now; retrying…")}
                            </p>
                        })}
                        {move || simulated.get().then(|| view! {
                            <p class="muted" role="status" data-testid="simulate-sent">
                                {i18n.t("已模拟扫码支付，等待支付结果…", "Simulated payment sent; waiting for the result…")}
                            </p>
                        })}
                        <div class="actions">
                            <Show when=move || dev.get()>
                                <button
                                    type="button"
                                    class="btn btn-primary"
                                    data-testid="simulate-pay"
                                    disabled=move || busy.get().is_some()
                                    on:click=simulate
                                >
                                    {move || if busy.get() == Some(Busy::Simulating) {
                                        i18n.t("正在模拟…", "Simulating…")
                                    } else {
                                        i18n.t("模拟扫码支付", "Simulate scan & pay")
                                    }}
                                </button>
                            </Show>
                            <button
                                type="button"
                                class="btn"
                                data-testid="cancel-order"
                                disabled=move || busy.get().is_some()
                                on:click=cancel
                            >
                                {move || if busy.get() == Some(Busy::Cancelling) {
                                    i18n.t("正在取消…", "Cancelling…")
                                } else {
                                    i18n.t("取消订单", "Cancel order")
                                }}
                            </button>
                        </div>
                    </div>
                }
                .into_any()
            }
            (OrderStatus::Pending, true) => view! {
                <div class="alert alert-warn" role="status" data-testid="qr-expired"
                    data-order-expired=move || order_expired.get().to_string()>
                    <p>{move || if order_expired.get() {
                        i18n.t("订单已过期。", "The order has expired.")
                    } else {
                        i18n.t("二维码已过期。", "The QR code has expired.")
                    }}</p>
                    // Scanned in time, still paying: the provider takes it until expire_at.
                    <Show when=move || !order_expired.get()>
                        <p class="muted" data-testid="pay-window">
                            {move || i18n.t(
                                "如果您已扫码，仍可在以下时间内完成支付，本页会显示支付结果：",
                                "Already scanned it? You can still finish paying within ",
                            )}
                            <strong>{move || mm_ss(order_expire_ms - now.get())}</strong>
                        </p>
                        {indicator()}
                    </Show>
                    <div class="actions">
                        {renew_button()}
                        <button type="button" class="btn" on:click=move |_| route.set(Route::Products)>
                            {move || i18n.t("返回商品", "Back to products")}
                        </button>
                    </div>
                </div>
            }
            .into_any(),
            (OrderStatus::Paid, _) => view! {
                <div class="alert alert-success" role="status" data-testid="payment-success">
                    <p class="big">{move || i18n.t("支付成功！", "Payment received!")}</p>
                    <p>
                        {move || i18n.t("积分余额：", "Points balance: ")}
                        <strong>{move || session.user.with(|u| u.as_ref().map(|u| u.points_balance.to_string()).unwrap_or_default())}</strong>
                    </p>
                    <div class="actions">
                        <button type="button" class="btn btn-primary" on:click=move |_| route.set(Route::Products)>
                            {move || i18n.t("继续购买", "Buy more")}
                        </button>
                        <button type="button" class="btn" on:click=move |_| route.set(Route::Orders)>
                            {move || i18n.t("查看订单", "View orders")}
                        </button>
                    </div>
                </div>
            }
            .into_any(),
            (closed, _) => view! {
                <div class="alert alert-info" role="status" data-testid="order-closed">
                    <p>
                        {move || if closed == OrderStatus::Refunded {
                            i18n.t("该订单已退款。", "This order was refunded.")
                        } else {
                            i18n.t("订单已取消。", "The order was cancelled.")
                        }}
                    </p>
                    <div class="actions">
                        {(closed == OrderStatus::Cancelled).then(renew_button_closed.clone())}
                        <button type="button" class="btn" on:click=move |_| route.set(Route::Products)>
                            {move || i18n.t("返回商品", "Back to products")}
                        </button>
                    </div>
                </div>
            }
            .into_any(),
        }
    };

    let amount = checkout.amount.to_string();
    let title = checkout.product_name.clone();
    view! {
        <section class="page pay-page card" data-testid="pay-page" data-feed=move || feed.get().as_str()>
            <button type="button" class="btn btn-ghost back" on:click=move |_| route.set(Route::Products)>
                {move || i18n.t("← 返回", "← Back")}
            </button>
            <h1>{title}</h1>
            <p class="amount" data-testid="order-amount">"¥"{amount}</p>
            <dl class="facts">
                <dt>{move || i18n.t("支付方式", "Method")}</dt>
                <dd>{move || method_label(i18n, method)}</dd>
                <dt>{move || i18n.t("订单号", "Order no.")}</dt>
                <dd><code data-testid="order-no">{order_no_text}</code></dd>
                <dt>{move || i18n.t("状态", "Status")}</dt>
                <dd aria-live="polite">
                    <span class=move || format!("badge badge-{}", status.get().as_str()) data-testid="order-status">
                        {move || status.get().as_str()}
                    </span>
                    " "
                    <span class="muted">{move || status_label(i18n, status.get(), None)}</span>
                </dd>
            </dl>
            {body}
            <ErrorBox error=error />
        </section>
    }
}
