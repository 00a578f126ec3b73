//! The hosted checkout page (`/pay/{order_no}?sig=...`): a merchant app's buyer pays here
//! without an account. No login, no shop navigation.
//!
//! What the buyer is offered depends on where the page is opened (user agent): a QR code
//! on a desktop, WeChat H5 / Alipay wap in a mobile browser, WeChat JSAPI inside WeChat
//! (through WeChat's web authorisation, which the server completes) with an "open in a
//! browser" hint for Alipay, and Alipay wap inside the Alipay app. Status arrives over
//! server-sent events, or by polling every 2 s. The QR code lives as long as the order:
//! there is no renewal here (the app creates a new order if it wants one).

use std::rc::Rc;
use std::time::Duration;

use api_types::merchant::{CheckoutPayRequest, CheckoutView};
use api_types::payment::{OrderStatus, PaymentChannel, PaymentMethod, SdkParams};
use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};

use crate::api::{Api, ApiError};
use crate::components::error_box::ErrorBox;
use crate::components::lang_toggle::LangToggle;
use crate::components::qr::QrCodeView;
use crate::i18n::{method_label, use_i18n};
use crate::live::{LiveEvent, LiveStream};
use crate::state::DevMode;
use crate::time::{mm_ss, server_now_ms};

const POLL_EVERY: Duration = Duration::from_secs(2);
const TICK_EVERY: Duration = Duration::from_secs(1);
/// After a payment the page goes back to the app after this long.
const RETURN_AFTER_SECS: i64 = 3;

/// Where the page was opened, from the user agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    Desktop,
    /// A phone or tablet browser.
    Mobile,
    /// WeChat's built-in browser (`MicroMessenger`).
    Wechat,
    /// The Alipay app (`AlipayClient`).
    AlipayApp,
}

impl Device {
    pub fn from_user_agent(ua: &str) -> Device {
        if ua.contains("MicroMessenger") {
            Device::Wechat
        } else if ua.contains("AlipayClient") {
            Device::AlipayApp
        } else if ["Android", "iPhone", "iPad", "iPod", "Mobile", "HarmonyOS"]
            .iter()
            .any(|m| ua.contains(m))
        {
            Device::Mobile
        } else {
            Device::Desktop
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Device::Desktop => "desktop",
            Device::Mobile => "mobile",
            Device::Wechat => "wechat",
            Device::AlipayApp => "alipay",
        }
    }

    /// The channel for `method` here; `None`: it cannot be paid here (Alipay inside
    /// WeChat, WeChat Pay inside Alipay) or, for WeChat inside WeChat, only through the
    /// web authorisation.
    pub fn channel(self, method: PaymentMethod) -> Option<PaymentChannel> {
        match (self, method) {
            (Device::Desktop, _) => Some(PaymentChannel::Native),
            (Device::Mobile, PaymentMethod::Wechat) => Some(PaymentChannel::H5),
            (Device::Mobile | Device::AlipayApp, PaymentMethod::Alipay) => {
                Some(PaymentChannel::Wap)
            }
            (Device::Wechat, _) | (Device::AlipayApp, PaymentMethod::Wechat) => None,
        }
    }
}

fn user_agent() -> String {
    web_sys::window()
        .and_then(|w| w.navigator().user_agent().ok())
        .unwrap_or_default()
}

fn go(url: &str) {
    if let Some(w) = web_sys::window() {
        let _ = w.location().set_href(url);
    }
}

fn query_param(name: &str) -> Option<String> {
    let search = web_sys::window()?.location().search().ok()?;
    web_sys::UrlSearchParams::new_with_str(&search)
        .ok()?
        .get(name)
        .filter(|v| !v.is_empty())
}

/// `/pay/{order_no}` and `sig` from the address bar.
pub fn from_location() -> Option<(String, String)> {
    let path = web_sys::window()?.location().pathname().ok()?;
    let order_no = path.strip_prefix("/pay/")?.trim_end_matches('/');
    if order_no.is_empty() || order_no.contains('/') {
        return None;
    }
    Some((order_no.to_owned(), query_param("sig").unwrap_or_default()))
}

fn enc(s: &str) -> String {
    String::from(js_sys::encode_uri_component(s))
}

/// `WeixinJSBridge.invoke('getBrandWCPayRequest', params, cb)`, once the bridge is there.
fn invoke_wechat_pay(params: &SdkParams, done: Rc<dyn Fn(String)>) {
    let Ok(json) = serde_json::to_string(params) else {
        return;
    };
    let Ok(params) = js_sys::JSON::parse(&json) else {
        return;
    };
    let call = move || -> bool {
        let Some(window) = web_sys::window() else {
            return false;
        };
        let Ok(bridge) = js_sys::Reflect::get(&window, &JsValue::from_str("WeixinJSBridge")) else {
            return false;
        };
        if bridge.is_undefined() || bridge.is_null() {
            return false;
        }
        let Ok(invoke) = js_sys::Reflect::get(&bridge, &JsValue::from_str("invoke")) else {
            return false;
        };
        let Some(invoke) = invoke.dyn_ref::<js_sys::Function>() else {
            return false;
        };
        let done = done.clone();
        let cb = Closure::once_into_js(move |res: JsValue| {
            let msg = js_sys::Reflect::get(&res, &JsValue::from_str("err_msg"))
                .ok()
                .and_then(|v| v.as_string())
                .unwrap_or_default();
            done(msg);
        });
        invoke
            .call3(
                &bridge,
                &JsValue::from_str("getBrandWCPayRequest"),
                &params,
                &cb,
            )
            .is_ok()
    };
    if call() {
        return;
    }
    // Not injected yet: WeChat fires `WeixinJSBridgeReady` on the document when it is.
    let ready = Closure::once_into_js(move || {
        call();
    });
    if let Some(doc) = web_sys::window().and_then(|w| w.document()) {
        let opts = web_sys::AddEventListenerOptions::new();
        opts.set_once(true);
        let _ = doc.add_event_listener_with_callback_and_add_event_listener_options(
            "WeixinJSBridgeReady",
            ready.unchecked_ref(),
            &opts,
        );
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Feed {
    Connecting,
    Live,
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

/// Loads the order named by the address bar and shows the page.
#[component]
pub fn HostedCheckoutPage(order_no: String, sig: String) -> impl IntoView {
    let i18n = use_i18n();
    let api = expect_context::<Api>();
    let DevMode(dev) = expect_context::<DevMode>();
    let device = Device::from_user_agent(&user_agent());
    let order_no = StoredValue::new(order_no);
    let sig = StoredValue::new(sig);
    let view_state = RwSignal::new(None::<CheckoutView>);
    let load_error = RwSignal::new(None::<ApiError>);
    let error = RwSignal::new(None::<ApiError>);
    let busy = RwSignal::new(false);
    let now = RwSignal::new(server_now_ms());
    let feed = RwSignal::new(Feed::Connecting);
    let hint_alipay_in_wechat = RwSignal::new(false);
    let paid_at_ms = RwSignal::new(None::<i64>);
    let jsapi_started = StoredValue::new(false);
    let simulated = RwSignal::new(false);
    let wechat_error = query_param("wechat_error");
    let stream = StoredValue::new_local(None::<LiveStream>);
    let in_flight = StoredValue::new(false);

    let return_href = move || {
        format!(
            "/api/v1/checkout/{}/return?sig={}",
            enc(&order_no.get_value()),
            enc(&sig.get_value())
        )
    };
    let page_url = move || {
        web_sys::window()
            .and_then(|w| w.location().href().ok())
            .unwrap_or_default()
    };

    let stop_stream = move || {
        let _ = stream.try_with_value(|s| {
            if let Some(s) = s {
                s.close();
            }
        });
    };
    let apply = move |v: CheckoutView| {
        if v.status != OrderStatus::Pending {
            stop_stream();
        }
        if v.status == OrderStatus::Paid && paid_at_ms.get_untracked().is_none() {
            let _ = paid_at_ms.try_set(Some(server_now_ms()));
        }
        if view_state.with_untracked(|old| old.as_ref() != Some(&v)) {
            let _ = view_state.try_set(Some(v));
        }
    };
    let poll = move || {
        if in_flight.try_get_value() != Some(false) {
            return;
        }
        if view_state
            .with_untracked(|v| v.as_ref().is_some_and(|v| v.status != OrderStatus::Pending))
        {
            return;
        }
        in_flight.set_value(true);
        spawn_local(async move {
            let result = api
                .checkout_view(&order_no.get_value(), &sig.get_value())
                .await;
            let _ = in_flight.try_set_value(false);
            match result {
                Ok(v) => apply(v),
                Err(e) if view_state.get_untracked().is_none() => {
                    let _ = load_error.try_set(Some(e));
                }
                Err(_) => {}
            }
        });
    };
    let on_live = move |event: LiveEvent<CheckoutView>| match event {
        LiveEvent::Status(v) => {
            let _ = feed.try_set(Feed::Live);
            apply(*v);
        }
        LiveEvent::Error { .. } => {
            if feed.try_set(Feed::Polling).is_none() {
                poll();
            }
        }
    };

    // First read, then the live stream.
    spawn_local(async move {
        match api
            .checkout_view(&order_no.get_value(), &sig.get_value())
            .await
        {
            Ok(v) => {
                let pending = v.status == OrderStatus::Pending;
                apply(v);
                if !pending {
                    return;
                }
                let url = format!(
                    "/api/v1/checkout/{}/events?sig={}",
                    enc(&order_no.get_value()),
                    enc(&sig.get_value())
                );
                match LiveStream::open(&url, Rc::new(on_live)) {
                    Ok(opened) => drop(stream.try_set_value(Some(opened))),
                    Err(_) => {
                        let _ = feed.try_set(Feed::Polling);
                    }
                }
            }
            Err(e) => {
                let _ = load_error.try_set(Some(e));
            }
        }
    });

    let ticker = set_interval_with_handle(
        move || {
            let t = server_now_ms();
            let _ = now.try_set(t);
            // Paid and the app gave a way back: go there after a moment.
            let back = view_state.with_untracked(|v| v.as_ref().is_some_and(|v| v.has_return));
            if let (Some(Some(at)), true) = (paid_at_ms.try_get_untracked(), back) {
                if t - at >= RETURN_AFTER_SECS * 1000 {
                    let _ = paid_at_ms.try_set(Some(i64::MAX / 2));
                    go(&return_href());
                }
            }
        },
        TICK_EVERY,
    )
    .ok();
    let poller = set_interval_with_handle(
        move || {
            if feed.try_get_untracked() == Some(Feed::Polling) {
                poll();
            }
        },
        POLL_EVERY,
    )
    .ok();
    on_cleanup(move || {
        if let Some(h) = ticker {
            h.clear();
        }
        if let Some(h) = poller {
            h.clear();
        }
        stop_stream();
    });

    // Inside WeChat, back from the authorisation with JSAPI parameters: open the cashier.
    let start_jsapi = move || {
        let params = view_state.with_untracked(|v| {
            v.as_ref()
                .filter(|v| v.status == OrderStatus::Pending)
                .and_then(|v| v.sdk_params.clone())
        });
        if let Some(params) = params {
            jsapi_started.set_value(true);
            invoke_wechat_pay(
                &params,
                Rc::new(move |msg: String| {
                    if msg.ends_with(":ok") {
                        poll();
                    }
                }),
            );
        }
    };
    Effect::new(move |_| {
        let ready = view_state.with(|v| {
            v.as_ref().is_some_and(|v| {
                v.status == OrderStatus::Pending && v.channel == Some(PaymentChannel::Jsapi)
            })
        });
        if ready && device == Device::Wechat && jsapi_started.try_get_value() == Some(false) {
            start_jsapi();
        }
    });

    let choose = move |method: PaymentMethod| {
        error.set(None);
        hint_alipay_in_wechat.set(false);
        let Some(channel) = device.channel(method) else {
            match (device, method) {
                (Device::Wechat, PaymentMethod::Wechat) => go(&format!(
                    "/api/v1/checkout/{}/wechat-oauth?sig={}",
                    enc(&order_no.get_value()),
                    enc(&sig.get_value())
                )),
                _ => hint_alipay_in_wechat.set(true),
            }
            return;
        };
        busy.set(true);
        spawn_local(async move {
            let req = CheckoutPayRequest {
                payment_method: method,
                channel,
                openid: None,
            };
            let result = api
                .checkout_pay(&order_no.get_value(), &sig.get_value(), &req)
                .await;
            let _ = busy.try_set(false);
            match result {
                Ok(v) => {
                    // A phone goes straight on to the provider's page.
                    let target = match v.channel {
                        Some(PaymentChannel::H5) => v
                            .h5_url
                            .clone()
                            .map(|u| format!("{u}&redirect_url={}", enc(&page_url()))),
                        Some(PaymentChannel::Wap | PaymentChannel::Page) => v.pay_url.clone(),
                        _ => None,
                    };
                    apply(v);
                    if let Some(url) = target {
                        go(&url);
                    }
                }
                Err(e) => {
                    let _ = error.try_set(Some(e));
                    poll();
                }
            }
        });
    };

    let simulate = move |_| {
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            let result = api
                .checkout_simulate_pay(&order_no.get_value(), &sig.get_value())
                .await;
            let _ = busy.try_set(false);
            match result {
                Ok(()) => {
                    let _ = simulated.try_set(true);
                    if feed.try_get_untracked() != Some(Feed::Live) {
                        poll();
                        set_timeout(poll, Duration::from_millis(800));
                    }
                }
                Err(e) => {
                    let _ = error.try_set(Some(e));
                }
            }
        });
    };

    let expire_ms =
        move || view_state.with(|v| v.as_ref().map_or(0, |v| v.expire_at.timestamp_millis()));
    let expired = move || now.get() >= expire_ms();

    let indicator = move || {
        view! {
            <p class="feed" data-testid="live-indicator" data-mode=move || feed.get().as_str()>
                <span class="feed-dot" aria-hidden="true"></span>
                {move || match feed.get() {
                    Feed::Connecting => i18n.t("正在连接…", "Connecting…"),
                    Feed::Live => i18n.t("实时更新", "Live"),
                    Feed::Polling => i18n.t("每 2 秒刷新", "Checking every 2 s"),
                }}
            </p>
        }
    };

    let method_buttons = move |v: &CheckoutView| {
        let buttons = v
            .methods
            .iter()
            .copied()
            .map(|m| {
                let class = match m {
                    PaymentMethod::Wechat => "btn btn-wechat btn-block",
                    PaymentMethod::Alipay => "btn btn-alipay btn-block",
                };
                view! {
                    <button
                        type="button"
                        class=class
                        data-testid=format!("choose-{}", m.as_str())
                        disabled=move || busy.get()
                        on:click=move |_| choose(m)
                    >
                        {move || method_label(i18n, m)}
                    </button>
                }
            })
            .collect_view();
        view! {
            <div class="hosted-methods" data-testid="choose-method">
                <p>{move || i18n.t("请选择支付方式", "Choose how to pay")}</p>
                <div class="actions">{buttons}</div>
                {move || hint_alipay_in_wechat.get().then(|| view! {
                    <p class="alert alert-warn" role="status" data-testid="open-in-browser">
                        {move || if device == Device::AlipayApp {
                            i18n.t(
                                "支付宝内无法使用微信支付。请点击右上角「…」，选择「在浏览器打开」后再支付。",
                                "WeChat Pay does not work inside Alipay. Tap \u{2026} at the top right and choose \u{201c}Open in browser\u{201d}, then pay there.",
                            )
                        } else {
                            i18n.t(
                                "微信内无法使用支付宝。请点击右上角「…」，选择「在浏览器打开」后再支付。",
                                "Alipay does not work inside WeChat. Tap \u{2026} at the top right and choose \u{201c}Open in browser\u{201d}, then pay there.",
                            )
                        }}
                    </p>
                })}
            </div>
        }
    };

    let dev_button = move || {
        view! {
            <Show when=move || dev.get()>
                <div class="actions">
                    <button
                        type="button"
                        class="btn btn-primary"
                        data-testid="simulate-pay"
                        disabled=move || busy.get()
                        on:click=simulate
                    >
                        {move || i18n.t("模拟扫码支付", "Simulate scan & pay")}
                    </button>
                </div>
                {move || simulated.get().then(|| view! {
                    <p class="muted" role="status" data-testid="simulate-sent">
                        {i18n.t("已模拟支付，等待支付结果…", "Simulated payment sent; waiting for the result…")}
                    </p>
                })}
            </Show>
        }
    };

    let targets = move |v: &CheckoutView| {
        let method = v.payment_method;
        match v.channel {
            Some(PaymentChannel::Native) => {
                let qr = match v.qr_code_url.clone() {
                    Some(content) => view! { <QrCodeView order_no=v.order_no.clone() content /> }.into_any(),
                    None => view! { <p class="muted">{move || i18n.t("正在获取二维码…", "Getting the QR code…")}</p> }.into_any(),
                };
                view! {
                    <div class="pay-live">
                        {qr}
                        <p class="scan-hint">{move || match method {
                            Some(PaymentMethod::Alipay) => i18n.t("请使用支付宝「扫一扫」扫码支付", "Scan with Alipay to pay"),
                            _ => i18n.t("请使用微信「扫一扫」扫码支付", "Scan with WeChat to pay"),
                        }}</p>
                        {dev_button()}
                    </div>
                }
                .into_any()
            }
            Some(PaymentChannel::H5) => {
                let url = v.h5_url.clone().unwrap_or_default();
                view! {
                    <div class="actions">
                        <button type="button" class="btn btn-wechat btn-block" data-testid="open-provider"
                            on:click=move |_| go(&format!("{url}&redirect_url={}", enc(&page_url())))>
                            {move || i18n.t("打开微信支付", "Open WeChat Pay")}
                        </button>
                    </div>
                    {dev_button()}
                }
                .into_any()
            }
            Some(PaymentChannel::Wap | PaymentChannel::Page) => {
                let url = v.pay_url.clone().unwrap_or_default();
                view! {
                    <div class="actions">
                        <button type="button" class="btn btn-alipay btn-block" data-testid="open-provider"
                            on:click=move |_| go(&url)>
                            {move || i18n.t("打开支付宝", "Open Alipay")}
                        </button>
                    </div>
                    {dev_button()}
                }
                .into_any()
            }
            Some(PaymentChannel::Jsapi) => view! {
                <div class="actions">
                    <button type="button" class="btn btn-wechat btn-block" data-testid="open-provider"
                        on:click=move |_| start_jsapi()>
                        {move || i18n.t("微信支付", "Pay with WeChat")}
                    </button>
                </div>
                {dev_button()}
            }
            .into_any(),
            _ => view! {
                <p class="muted">{move || i18n.t("请在创建订单的应用中完成支付。", "Finish paying in the app that created the order.")}</p>
            }
            .into_any(),
        }
    };

    let back_button = move || {
        let href = return_href();
        view! {
            <a class="btn btn-primary" data-testid="return-to-app" href=href>
                {move || i18n.t("返回商家", "Back to the shop")}
            </a>
        }
    };

    let body = move || {
        let Some(v) = view_state.get() else {
            return match load_error.get() {
                Some(ApiError::Status { status: 404, .. }) => view! {
                    <p class="alert alert-error" role="alert" data-testid="link-invalid">
                        {move || i18n.t("支付链接无效或已失效。", "This payment link is not valid.")}
                    </p>
                }
                .into_any(),
                Some(_) => view! {
                    <p class="alert alert-error" role="alert" data-testid="load-failed">
                        {move || i18n.t("暂时无法加载订单，请刷新重试。", "The order cannot be loaded right now; please reload.")}
                    </p>
                }
                .into_any(),
                None => view! { <p class="muted" role="status">{move || i18n.t("加载中…", "Loading…")}</p> }.into_any(),
            };
        };
        let has_return = v.has_return;
        let facts = {
            let method = v.payment_method;
            view! {
                <p class="muted" data-testid="app-name">{v.app_name.clone()}</p>
                <h1 data-testid="subject">{v.subject.clone()}</h1>
                <p class="amount" data-testid="order-amount">"¥"{v.amount.to_string()}</p>
                <dl class="facts">
                    <dt>{move || i18n.t("订单号", "Order no.")}</dt>
                    <dd><code data-testid="order-no">{v.order_no.clone()}</code></dd>
                    {method.map(|m| view! {
                        <dt>{move || i18n.t("支付方式", "Method")}</dt>
                        <dd data-testid="order-method">{move || method_label(i18n, m)}</dd>
                    })}
                    <dt>{move || i18n.t("状态", "Status")}</dt>
                    <dd><span class=format!("badge badge-{}", v.status.as_str()) data-testid="order-status">{v.status.as_str()}</span></dd>
                </dl>
            }
        };
        let main = match v.status {
            OrderStatus::Pending if expired() => view! {
                <div class="alert alert-warn" role="status" data-testid="order-expired">
                    <p>{move || i18n.t("订单已过期。", "The order has expired.")}</p>
                    {has_return.then(back_button)}
                </div>
            }
            .into_any(),
            OrderStatus::Pending => {
                let inner = if v.payment_method.is_none() {
                    method_buttons(&v).into_any()
                } else {
                    targets(&v).into_any()
                };
                view! {
                    <div data-testid="pending">
                        {inner}
                        <p class="countdown" data-testid="countdown" aria-live="off">
                            {move || i18n.t("剩余支付时间 ", "Time left to pay ")}
                            <strong>{move || mm_ss(expire_ms() - now.get())}</strong>
                        </p>
                        {indicator()}
                    </div>
                }
                .into_any()
            }
            OrderStatus::Paid | OrderStatus::Refunded => view! {
                <div class="alert alert-success" role="status" data-testid="payment-success">
                    <p class="big">{move || i18n.t("支付成功！", "Payment received!")}</p>
                    {has_return.then(|| view! {
                        <p class="muted" data-testid="returning">{move || i18n.t("即将返回商家…", "Taking you back to the shop…")}</p>
                        <div class="actions">{back_button()}</div>
                    })}
                </div>
            }
            .into_any(),
            OrderStatus::Cancelled => view! {
                <div class="alert alert-info" role="status" data-testid="order-closed">
                    <p>{move || if expired() {
                        i18n.t("订单已过期。", "The order has expired.")
                    } else {
                        i18n.t("订单已关闭。", "The order was closed.")
                    }}</p>
                    {has_return.then(back_button)}
                </div>
            }
            .into_any(),
        };
        view! { {facts} {main} }.into_any()
    };

    let oauth_message = wechat_error.map(|code| {
        let attr = code.clone();
        view! {
            <p class="alert alert-error" role="alert" data-testid="wechat-error" data-code=attr>
                {move || match code.as_str() {
                    "method_already_chosen" => i18n.t("该订单已选择其他支付方式。", "Another payment method was chosen for this order."),
                    "order_not_pending" => i18n.t("订单已不能支付。", "The order can no longer be paid."),
                    _ => i18n.t("微信授权未完成，请重试。", "WeChat did not confirm you; please try again."),
                }}
            </p>
        }
    });

    view! {
        <main class="content hosted" data-testid="hosted-checkout" data-device=device.as_str()>
            <section class="page pay-page card" data-feed=move || feed.get().as_str()>
                <div class="hosted-top"><LangToggle /></div>
                {oauth_message}
                {body}
                <ErrorBox error=error />
            </section>
        </main>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_from_user_agents() {
        let wechat = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.44(0x18002c2f) NetType/WIFI Language/zh_CN";
        let alipay = "Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/116.0 Mobile Safari/537.36 AlipayClient/10.5.36";
        let phone = "Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/116.0 Mobile Safari/537.36";
        let desktop = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36";
        assert_eq!(Device::from_user_agent(wechat), Device::Wechat);
        assert_eq!(Device::from_user_agent(alipay), Device::AlipayApp);
        assert_eq!(Device::from_user_agent(phone), Device::Mobile);
        assert_eq!(Device::from_user_agent(desktop), Device::Desktop);
        assert_eq!(
            Device::Desktop.channel(PaymentMethod::Alipay),
            Some(PaymentChannel::Native)
        );
        assert_eq!(
            Device::Mobile.channel(PaymentMethod::Wechat),
            Some(PaymentChannel::H5)
        );
        assert_eq!(
            Device::AlipayApp.channel(PaymentMethod::Alipay),
            Some(PaymentChannel::Wap)
        );
        assert_eq!(Device::Wechat.channel(PaymentMethod::Wechat), None);
        assert_eq!(Device::Wechat.channel(PaymentMethod::Alipay), None);
    }
}
