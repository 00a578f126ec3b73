//! The signed-in user's orders, newest first, 20 a page; pending ones can be reopened.

use api_types::payment::{OrderResponse, OrderStatus};
use leptos::prelude::*;

use crate::api::Api;
use crate::components::error_box::ErrorBox;
use crate::i18n::{method_label, status_label, use_i18n};
use crate::state::{Checkout, Nav, Route};
use crate::time::local_datetime;

const PER_PAGE: i64 = 20;

#[component]
pub fn OrdersPage() -> impl IntoView {
    let i18n = use_i18n();
    let api = expect_context::<Api>();

    let page = RwSignal::new(1_i64);
    let orders = LocalResource::new(move || {
        let page = page.get();
        async move { api.orders(page, PER_PAGE).await }
    });

    let list = move || {
        Suspend::new(async move {
            match orders.await {
                Ok(list) => {
                    let pages = ((list.total + PER_PAGE - 1) / PER_PAGE).max(1);
                    let current = list.page;
                    let empty = list.items.is_empty();
                    view! {
                        <ul class="orders" data-testid="orders-list" data-total=list.total>
                            {list.items.into_iter().map(|o| view! { <OrderRow order=o /> }).collect_view()}
                        </ul>
                        {empty.then(|| view! {
                            <p class="empty" data-testid="orders-empty">{move || i18n.t("还没有订单。", "No orders yet.")}</p>
                        })}
                        {(pages > 1).then(|| view! {
                            <nav class="pager" aria-label=move || i18n.t("分页", "Pages")>
                                <button
                                    type="button"
                                    class="btn"
                                    disabled=current <= 1
                                    on:click=move |_| page.update(|p| *p = (*p - 1).max(1))
                                >
                                    {move || i18n.t("上一页", "Previous")}
                                </button>
                                <span>{format!("{current} / {pages}")}</span>
                                <button
                                    type="button"
                                    class="btn"
                                    disabled=current >= pages
                                    on:click=move |_| page.update(|p| *p += 1)
                                >
                                    {move || i18n.t("下一页", "Next")}
                                </button>
                            </nav>
                        })}
                    }
                    .into_any()
                }
                Err(err) => view! {
                    <ErrorBox error=Signal::derive(move || Some(err.clone())) />
                    <button type="button" class="btn" on:click=move |_| orders.refetch()>
                        {move || i18n.t("重试", "Retry")}
                    </button>
                }
                .into_any(),
            }
        })
    };

    view! {
        <section class="page orders-page">
            <div class="page-head">
                <h1>{move || i18n.t("我的订单", "My orders")}</h1>
                <button type="button" class="btn btn-ghost" data-testid="refresh-orders" on:click=move |_| orders.refetch()>
                    {move || i18n.t("刷新", "Refresh")}
                </button>
            </div>
            <Transition fallback=move || {
                view! { <p class="loading" data-testid="loading">{i18n.t("正在加载订单…", "Loading orders…")}</p> }
            }>{list}</Transition>
        </section>
    }
}

#[component]
fn OrderRow(order: OrderResponse) -> impl IntoView {
    let i18n = use_i18n();
    let Nav(route) = expect_context::<Nav>();
    let status = order.status;
    let reason = order.cancel_reason;
    let created_at = order.created_at;
    let method = order.payment_method;
    let quantity = (order.quantity > 1).then(|| format!(" × {}", order.quantity));
    let reopen = (status == OrderStatus::Pending).then(|| {
        let checkout = Checkout::reopened(&order);
        view! {
            <button
                type="button"
                class="btn btn-primary btn-small"
                data-testid="reopen-order"
                on:click=move |_| route.set(Route::Pay(checkout.clone()))
            >
                {move || i18n.t("继续支付", "Pay now")}
            </button>
        }
    });
    view! {
        <li class="order-row" data-testid="order-row" data-order-no=order.order_no.clone() data-status=status.as_str()>
            <div class="order-main">
                <span class="order-name">{order.product_name.clone()}{quantity}</span>
                <span class="order-amount">"¥"{order.amount.to_string()}</span>
            </div>
            <div class="order-meta">
                <span class=format!("badge badge-{}", status.as_str())>{move || status_label(i18n, status, reason)}</span>
                <span>{move || method_label(i18n, method)}</span>
                <span>{move || local_datetime(&created_at, i18n.lang())}</span>
                <code class="order-no">{order.order_no.clone()}</code>
            </div>
            {reopen}
        </li>
    }
}
