//! All orders, filtered by status, provider, creation day, user and review flag; 20 a page.

use api_types::admin::{AdminOrder, AdminOrderQuery};
use api_types::payment::{OrderStatus, PaymentMethod};
use chrono::NaiveDate;
use leptos::ev::SubmitEvent;
use leptos::prelude::*;

use super::{yuan, AdminFilters, PER_PAGE};
use crate::api::{export_paths, Api};
use crate::components::error_box::ErrorBox;
use crate::i18n::{method_label, status_label, use_i18n};
use crate::state::{AdminView, Nav, Route};
use crate::time::local_datetime;

fn parse_status(value: &str) -> Option<OrderStatus> {
    match value {
        "pending" => Some(OrderStatus::Pending),
        "paid" => Some(OrderStatus::Paid),
        "cancelled" => Some(OrderStatus::Cancelled),
        "refunded" => Some(OrderStatus::Refunded),
        _ => None,
    }
}

fn parse_provider(value: &str) -> Option<PaymentMethod> {
    match value {
        "wechat" => Some(PaymentMethod::Wechat),
        "alipay" => Some(PaymentMethod::Alipay),
        _ => None,
    }
}

/// `<input type=date>` gives `YYYY-MM-DD` or an empty string.
fn parse_day(value: &str) -> Option<NaiveDate> {
    value.trim().parse().ok()
}

fn day_text(day: Option<NaiveDate>) -> String {
    day.map(|d| d.to_string()).unwrap_or_default()
}

#[component]
pub fn OrderTable() -> impl IntoView {
    let i18n = use_i18n();
    let api = expect_context::<Api>();
    let filters = expect_context::<AdminFilters>();
    let applied = filters.applied;

    // The form's own copy, applied on submit.
    let current = applied.get_untracked();
    let status = RwSignal::new(
        current
            .status
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
    );
    let provider = RwSignal::new(
        current
            .provider
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default(),
    );
    let from = RwSignal::new(day_text(current.from));
    let to = RwSignal::new(day_text(current.to));
    let user = RwSignal::new(current.user.clone().unwrap_or_default());
    let review = RwSignal::new(current.needs_review == Some(true));

    let orders = LocalResource::new(move || {
        let query = applied.get();
        async move { api.admin_orders(&query).await }
    });

    let apply = move |ev: SubmitEvent| {
        ev.prevent_default();
        let user = user.get_untracked().trim().to_owned();
        applied.set(AdminOrderQuery {
            status: parse_status(&status.get_untracked()),
            provider: parse_provider(&provider.get_untracked()),
            from: parse_day(&from.get_untracked()),
            to: parse_day(&to.get_untracked()),
            user: (!user.is_empty()).then_some(user),
            needs_review: review.get_untracked().then_some(true),
            page: Some(1),
            per_page: Some(PER_PAGE),
        });
    };
    let reset = move |_| {
        status.set(String::new());
        provider.set(String::new());
        from.set(String::new());
        to.set(String::new());
        user.set(String::new());
        review.set(false);
        applied.set(AdminOrderQuery {
            page: Some(1),
            per_page: Some(PER_PAGE),
            ..AdminOrderQuery::default()
        });
    };
    let go_to = move |page: i64| applied.update(|q| q.page = Some(page.max(1)));

    let list = move || {
        Suspend::new(async move {
            match orders.await {
                Ok(list) => {
                    let per_page = list.per_page.max(1);
                    let pages = ((list.total + per_page - 1) / per_page).max(1);
                    let current = list.page;
                    let total = list.total;
                    let empty = list.items.is_empty();
                    view! {
                        <p class="muted result-count" role="status" data-testid="admin-orders-total">
                            {move || format!("{} {total} {}", i18n.t("共", "Total:"), i18n.t("个订单", "orders"))}
                        </p>
                        {if empty {
                            view! {
                                <p class="empty" data-testid="admin-orders-empty">
                                    {move || i18n.t("没有符合条件的订单。", "No orders match these filters.")}
                                </p>
                            }
                            .into_any()
                        } else {
                            view! { <Rows items=list.items /> }.into_any()
                        }}
                        {(pages > 1).then(|| view! {
                            <nav class="pager" aria-label=move || i18n.t("分页", "Pages")>
                                <button type="button" class="btn" data-testid="admin-prev" disabled=current <= 1 on:click=move |_| go_to(current - 1)>
                                    {move || i18n.t("上一页", "Previous")}
                                </button>
                                <span data-testid="admin-page">{format!("{current} / {pages}")}</span>
                                <button type="button" class="btn" data-testid="admin-next" disabled=current >= pages on:click=move |_| go_to(current + 1)>
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
        <div class="page-head">
            <h1>{move || i18n.t("订单管理", "Orders")}</h1>
            <button type="button" class="btn btn-ghost" data-testid="admin-refresh" on:click=move |_| orders.refetch()>
                {move || i18n.t("刷新", "Refresh")}
            </button>
        </div>
        <form class="filters card" data-testid="admin-filters" on:submit=apply>
            <div class="field">
                <label for="f-status">{move || i18n.t("状态", "Status")}</label>
                <select id="f-status" prop:value=status on:change=move |ev| status.set(event_target_value(&ev))>
                    <option value="">{move || i18n.t("全部", "All")}</option>
                    {[OrderStatus::Pending, OrderStatus::Paid, OrderStatus::Cancelled, OrderStatus::Refunded]
                        .into_iter()
                        .map(|s| view! {
                            <option value=s.as_str() selected=move || status.get() == s.as_str()>
                                {move || status_label(i18n, s, None)}
                            </option>
                        })
                        .collect_view()}
                </select>
            </div>
            <div class="field">
                <label for="f-provider">{move || i18n.t("支付方式", "Provider")}</label>
                <select id="f-provider" prop:value=provider on:change=move |ev| provider.set(event_target_value(&ev))>
                    <option value="">{move || i18n.t("全部", "All")}</option>
                    {[PaymentMethod::Wechat, PaymentMethod::Alipay]
                        .into_iter()
                        .map(|m| view! {
                            <option value=m.as_str() selected=move || provider.get() == m.as_str()>
                                {move || method_label(i18n, m)}
                            </option>
                        })
                        .collect_view()}
                </select>
            </div>
            <div class="field">
                <label for="f-from">{move || i18n.t("开始日期", "From")}</label>
                <input id="f-from" type="date" prop:value=from on:input=move |ev| from.set(event_target_value(&ev)) />
            </div>
            <div class="field">
                <label for="f-to">{move || i18n.t("结束日期", "To")}</label>
                <input id="f-to" type="date" prop:value=to on:input=move |ev| to.set(event_target_value(&ev)) />
            </div>
            <div class="field">
                <label for="f-user">{move || i18n.t("用户（ID 或用户名）", "User (id or username)")}</label>
                <input
                    id="f-user"
                    type="search"
                    autocomplete="off"
                    prop:value=user
                    on:input=move |ev| user.set(event_target_value(&ev))
                />
            </div>
            <div class="field field-check">
                <input
                    id="f-review"
                    type="checkbox"
                    prop:checked=review
                    on:change=move |ev| review.set(event_target_checked(&ev))
                />
                <label for="f-review">{move || i18n.t("仅看待复核", "Needs review only")}</label>
            </div>
            <div class="filter-actions">
                <button type="submit" class="btn btn-primary" data-testid="admin-apply">
                    {move || i18n.t("筛选", "Apply")}
                </button>
                <button type="button" class="btn" data-testid="admin-reset" on:click=reset>
                    {move || i18n.t("重置", "Reset")}
                </button>
            </div>
        </form>
        <Exports />
        <Transition fallback=move || {
            view! { <p class="loading" data-testid="loading" role="status">{i18n.t("正在加载订单…", "Loading orders…")}</p> }
        }>{list}</Transition>
    }
}

/// CSV downloads of orders, refunds and the ledger with the filters applied above
/// (those that exist for each: refunds by provider, days and user; the ledger by days
/// and user). Fetched with the session's token and saved through a Blob URL.
#[component]
fn Exports() -> impl IntoView {
    let i18n = use_i18n();
    let api = expect_context::<Api>();
    let applied = expect_context::<AdminFilters>().applied;
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None);
    let labels: [(&'static str, &'static str, &'static str); 3] = [
        ("导出订单 CSV", "Export orders (CSV)", "admin-export-orders"),
        (
            "导出退款 CSV",
            "Export refunds (CSV)",
            "admin-export-refunds",
        ),
        (
            "导出余额流水 CSV",
            "Export ledger (CSV)",
            "admin-export-ledger",
        ),
    ];
    let buttons = labels
        .into_iter()
        .enumerate()
        .map(|(i, (zh, en, testid))| {
            let start = move |_| {
                let Some((path, name)) = export_paths(&applied.get_untracked()).into_iter().nth(i)
                else {
                    return;
                };
                busy.set(true);
                error.set(None);
                leptos::task::spawn_local(async move {
                    if let Err(e) = api.download(&path, name).await {
                        error.set(Some(e));
                    }
                    busy.set(false);
                });
            };
            view! {
                <button type="button" class="btn" data-testid=testid disabled=move || busy.get() on:click=start>
                    {move || i18n.t(zh, en)}
                </button>
            }
        })
        .collect_view();
    view! {
        <div class="filter-actions exports" data-testid="admin-exports">
            {buttons}
            <span class="hint-inline">
                {move || i18n.t(
                    "按上方已应用的筛选条件导出；日期与时间为业务时区。",
                    "Exports use the filters applied above; days and times are in the business time zone.",
                )}
            </span>
        </div>
        <ErrorBox error=error />
    }
}

#[component]
fn Rows(items: Vec<AdminOrder>) -> impl IntoView {
    let i18n = use_i18n();
    let Nav(route) = expect_context::<Nav>();
    let rows = items
        .into_iter()
        .map(|item| {
            let order = item.order;
            let status = order.status;
            let reason = order.cancel_reason;
            let method = order.payment_method;
            let created_at = order.created_at;
            let no = order.order_no.clone();
            let open = {
                let no = no.clone();
                move |_| route.set(Route::Admin(AdminView::Order(no.clone())))
            };
            let review_reason = item.review_reason.clone().unwrap_or_default();
            view! {
                <tr data-testid="admin-order-row" data-order-no=no.clone() data-status=status.as_str()>
                    <td>
                        <button type="button" class="link" data-testid="admin-open-order" on:click=open>
                            <code>{no.clone()}</code>
                        </button>
                    </td>
                    <td>{item.username}</td>
                    <td>{order.product_name}{(order.quantity > 1).then(|| format!(" × {}", order.quantity))}</td>
                    <td class="num">{yuan(order.amount_fen)}</td>
                    <td class="num">{(order.refunded_fen > 0).then(|| yuan(order.refunded_fen))}</td>
                    <td>{move || method_label(i18n, method)}</td>
                    <td>
                        <span class=format!("badge badge-{}", status.as_str())>{move || status_label(i18n, status, reason)}</span>
                    </td>
                    <td class="nowrap">{move || local_datetime(&created_at, i18n.lang())}</td>
                    <td>
                        {item.needs_review.then(|| view! {
                            <span class="badge badge-review" title=review_reason.clone() data-testid="review-flag">
                                {move || i18n.t("待复核", "Review")}
                            </span>
                        })}
                    </td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <div
            class="table-scroll"
            role="region"
            tabindex="0"
            aria-label=move || i18n.t("订单列表（可横向滚动）", "Orders (scrolls sideways)")
        >
            <table class="data" data-testid="admin-orders">
                <thead>
                    <tr>
                        <th scope="col">{move || i18n.t("订单号", "Order no.")}</th>
                        <th scope="col">{move || i18n.t("用户", "User")}</th>
                        <th scope="col">{move || i18n.t("商品", "Product")}</th>
                        <th scope="col" class="num">{move || i18n.t("金额", "Amount")}</th>
                        <th scope="col" class="num">{move || i18n.t("已退款", "Refunded")}</th>
                        <th scope="col">{move || i18n.t("方式", "Provider")}</th>
                        <th scope="col">{move || i18n.t("状态", "Status")}</th>
                        <th scope="col">{move || i18n.t("创建时间", "Created")}</th>
                        <th scope="col">{move || i18n.t("复核", "Review")}</th>
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
    }
}
