//! The catalog: every product, on sale or retired, in display order, with a creation
//! form and per product edit, retire / restore, restock and move up / down. Prices are
//! typed in yuan and sent as integer fen (no floats).

use std::future::Future;

use api_types::console::{ProductCreate, ProductPatchRequest, ReorderRequest, RestockRequest};
use api_types::product::{ProductKind, ProductResponse};
use api_types::Yuan;
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;

use super::console::{parse_int, parse_price, ConsoleError};
use super::yuan;
use crate::api::{Api, ApiError};
use crate::components::error_box::ErrorBox;
use crate::i18n::{use_i18n, I18n};

fn kind_label(i18n: I18n, kind: ProductKind) -> &'static str {
    match kind {
        ProductKind::Points => i18n.t("积分", "Points"),
        ProductKind::Membership => i18n.t("会员", "Membership"),
        ProductKind::Custom => i18n.t("自定义", "Custom"),
    }
}

/// What buying one unit grants, in words.
fn grant_text(i18n: I18n, p: &ProductResponse) -> String {
    let mut parts = Vec::new();
    if let Some(days) = p.membership_days {
        parts.push(format!("{days} {}", i18n.t("天", "days")));
    }
    if let Some(tier) = &p.membership_tier {
        let rank = p
            .tier_rank
            .map(|r| format!(" ({} {r})", i18n.t("级别", "rank")))
            .unwrap_or_default();
        parts.push(format!("{tier}{rank}"));
    }
    if let Some(points) = p.points {
        parts.push(format!("{points} {}", i18n.t("积分", "points")));
    }
    if parts.is_empty() {
        "—".to_owned()
    } else {
        parts.join(" · ")
    }
}

/// Ids in display order with the one at `index` swapped with its neighbour (`up`:
/// the one before); `None` at either end.
pub fn moved(ids: &[i64], index: usize, up: bool) -> Option<Vec<i64>> {
    let other = if up { index.checked_sub(1)? } else { index + 1 };
    if other >= ids.len() || index >= ids.len() {
        return None;
    }
    let mut order = ids.to_vec();
    order.swap(index, other);
    Some(order)
}

/// Runs one catalog call: busy while it runs, the error shown, the list reloaded after.
fn run<T: 'static>(
    call: impl Future<Output = Result<T, ApiError>> + 'static,
    busy: RwSignal<bool>,
    error: RwSignal<Option<ApiError>>,
    products: LocalResource<Result<api_types::console::AdminProductList, ApiError>>,
    done: impl FnOnce(T) + 'static,
) {
    if busy.get_untracked() {
        return;
    }
    busy.set(true);
    error.set(None);
    spawn_local(async move {
        let result = call.await;
        let _ = busy.try_set(false);
        match result {
            Ok(value) => {
                done(value);
                products.refetch();
            }
            Err(err) => {
                let _ = error.try_set(Some(err));
            }
        }
    });
}

#[component]
pub fn CatalogView() -> impl IntoView {
    let i18n = use_i18n();
    let api = expect_context::<Api>();

    let products = LocalResource::new(move || async move { api.admin_products().await });
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<ApiError>);
    let editing = RwSignal::new(None::<ProductResponse>);
    let restocking = RwSignal::new(None::<ProductResponse>);

    let table = move || {
        Suspend::new(async move {
            match products.await {
                Ok(list) if list.items.is_empty() => view! {
                    <p class="empty" data-testid="catalog-empty">
                        {move || i18n.t("还没有商品。", "No products yet.")}
                    </p>
                }
                .into_any(),
                Ok(list) => {
                    let ids: Vec<i64> = list.items.iter().map(|p| p.id).collect();
                    let ids = StoredValue::new(ids);
                    let count = list.items.len();
                    let rows = list
                        .items
                        .into_iter()
                        .enumerate()
                        .map(|(index, p)| {
                            let id = p.id;
                            let kind = p.kind;
                            let active = p.active;
                            let limited = p.stock.is_some();
                            let stock = p.stock;
                            let grant_p = p.clone();
                            let edit_p = p.clone();
                            let restock_p = p.clone();
                            let reorder = move |up: bool| {
                                let Some(order) = moved(&ids.get_value(), index, up) else {
                                    return;
                                };
                                let req = ReorderRequest { ids: order };
                                run(async move { api.reorder_products(&req).await }, busy, error, products, |_| {});
                            };
                            let set_active = move |on: bool| {
                                let action = if on { "restore" } else { "retire" };
                                run(async move { api.product_action(id, action).await }, busy, error, products, |_| {});
                            };
                            view! {
                                <tr data-testid=format!("product-row-{id}") data-product-id=id.to_string() data-active=active.to_string() class:row-retired=!active>
                                    <td class="nowrap">
                                        <button type="button" class="btn btn-small" data-testid=format!("product-up-{id}")
                                            aria-label=move || i18n.t("上移", "Move up")
                                            disabled=move || { index == 0 || busy.get() } on:click=move |_| reorder(true)>
                                            "↑"
                                        </button>
                                        <button type="button" class="btn btn-small" data-testid=format!("product-down-{id}")
                                            aria-label=move || i18n.t("下移", "Move down")
                                            disabled=move || { index + 1 >= count || busy.get() } on:click=move |_| reorder(false)>
                                            "↓"
                                        </button>
                                    </td>
                                    <td class="wrap">
                                        <strong data-testid=format!("product-name-{id}")>{p.name.clone()}</strong>
                                        " "<code class="muted">{format!("#{id}")}</code>
                                        {(!p.description.is_empty()).then(|| view! { <br /><span class="muted">{p.description.clone()}</span> })}
                                    </td>
                                    <td>{move || kind_label(i18n, kind)}</td>
                                    <td class="num" data-testid=format!("product-price-{id}")>{yuan(p.price_fen)}</td>
                                    <td data-testid=format!("product-grant-{id}")>{move || grant_text(i18n, &grant_p)}</td>
                                    <td class="num" data-testid=format!("product-stock-{id}")>
                                        {move || stock.map(|n| n.to_string()).unwrap_or_else(|| i18n.t("不限", "Unlimited").to_owned())}
                                    </td>
                                    <td>
                                        {if active {
                                            view! { <span class="badge badge-paid" data-testid=format!("product-status-{id}")>{move || i18n.t("在售", "On sale")}</span> }.into_any()
                                        } else {
                                            view! { <span class="badge badge-cancelled" data-testid=format!("product-status-{id}")>{move || i18n.t("已下架", "Retired")}</span> }.into_any()
                                        }}
                                    </td>
                                    <td class="actions-cell">
                                        <button type="button" class="btn btn-small" data-testid=format!("product-edit-{id}")
                                            on:click=move |_| { error.set(None); restocking.set(None); editing.set(Some(edit_p.clone())) }>
                                            {move || i18n.t("编辑", "Edit")}
                                        </button>
                                        {if active {
                                            view! {
                                                <button type="button" class="btn btn-small btn-danger" data-testid=format!("product-retire-{id}")
                                                    disabled=move || busy.get() on:click=move |_| set_active(false)>
                                                    {move || i18n.t("下架", "Retire")}
                                                </button>
                                            }.into_any()
                                        } else {
                                            view! {
                                                <button type="button" class="btn btn-small" data-testid=format!("product-restore-{id}")
                                                    disabled=move || busy.get() on:click=move |_| set_active(true)>
                                                    {move || i18n.t("重新上架", "Restore")}
                                                </button>
                                            }.into_any()
                                        }}
                                        {limited.then(|| view! {
                                            <button type="button" class="btn btn-small" data-testid=format!("product-restock-{id}")
                                                on:click=move |_| { error.set(None); editing.set(None); restocking.set(Some(restock_p.clone())) }>
                                                {move || i18n.t("补货…", "Restock…")}
                                            </button>
                                        })}
                                    </td>
                                </tr>
                            }
                        })
                        .collect_view();
                    view! {
                        <div class="table-scroll" role="region" tabindex="0" aria-label=move || i18n.t("商品（可横向滚动）", "Products (scrolls sideways)")>
                            <table class="data" data-testid="catalog-table">
                                <thead>
                                    <tr>
                                        <th scope="col">{move || i18n.t("顺序", "Order")}</th>
                                        <th scope="col">{move || i18n.t("商品", "Product")}</th>
                                        <th scope="col">{move || i18n.t("类型", "Kind")}</th>
                                        <th scope="col" class="num">{move || i18n.t("价格", "Price")}</th>
                                        <th scope="col">{move || i18n.t("内容", "Grants")}</th>
                                        <th scope="col" class="num">{move || i18n.t("库存", "Stock")}</th>
                                        <th scope="col">{move || i18n.t("状态", "Status")}</th>
                                        <th scope="col">{move || i18n.t("操作", "Actions")}</th>
                                    </tr>
                                </thead>
                                <tbody>{rows}</tbody>
                            </table>
                        </div>
                    }
                    .into_any()
                }
                Err(err) => view! {
                    <ErrorBox error=Signal::derive(move || Some(err.clone())) />
                    <button type="button" class="btn" on:click=move |_| products.refetch()>
                        {move || i18n.t("重试", "Retry")}
                    </button>
                }
                .into_any(),
            }
        })
    };

    let on_saved = Callback::new(move |()| {
        editing.set(None);
        restocking.set(None);
        products.refetch();
    });
    let on_cancel = Callback::new(move |()| {
        editing.set(None);
        restocking.set(None);
    });

    view! {
        <div class="page-head">
            <h1>{move || i18n.t("商品管理", "Catalog")}</h1>
            <button type="button" class="btn btn-ghost" data-testid="catalog-refresh" on:click=move |_| products.refetch()>
                {move || i18n.t("刷新", "Refresh")}
            </button>
        </div>
        <p class="muted">
            {move || i18n.t(
                "改价只影响之后创建的订单；已创建的订单按创建时的价格和内容支付与发放。",
                "A new price applies to orders created from now on; orders already created are paid and fulfilled as they were created.",
            )}
        </p>
        <ConsoleError error=error testid="catalog-error" />
        {move || editing.get().map(|product| view! { <EditProduct product on_saved on_cancel /> })}
        {move || restocking.get().map(|product| view! { <Restock product on_saved on_cancel /> })}
        <Transition fallback=move || {
            view! { <p class="loading" data-testid="loading" role="status">{i18n.t("正在加载商品…", "Loading products…")}</p> }
        }>{table}</Transition>
        <CreateProduct on_created=Callback::new(move |()| products.refetch()) />
    }
}

/// Text fields of the forms as typed; empty optional numbers are absent.
fn optional_int(text: &str) -> Result<Option<i64>, ()> {
    let text = text.trim();
    if text.is_empty() {
        Ok(None)
    } else {
        parse_int(text).map(Some).ok_or(())
    }
}

#[component]
fn CreateProduct(on_created: Callback<()>) -> impl IntoView {
    let i18n = use_i18n();
    let api = expect_context::<Api>();
    let kind = RwSignal::new("points".to_owned());
    let name = RwSignal::new(String::new());
    let description = RwSignal::new(String::new());
    let price = RwSignal::new(String::new());
    let points = RwSignal::new(String::new());
    let days = RwSignal::new(String::new());
    let tier = RwSignal::new(String::new());
    let rank = RwSignal::new(String::new());
    let stock = RwSignal::new(String::new());
    let invalid = RwSignal::new(None::<&'static str>);
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<ApiError>);
    let created = RwSignal::new(None::<(i64, String)>);
    let membership = move || kind.get() == "membership";

    let submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        if busy.get_untracked() {
            return;
        }
        created.set(None);
        let Some(price_fen) = parse_price(&price.get_untracked()) else {
            invalid.set(Some("price"));
            return;
        };
        let is_membership = kind.get_untracked() == "membership";
        let numbers = (
            optional_int(&points.get_untracked()),
            optional_int(&days.get_untracked()),
            optional_int(&rank.get_untracked()),
            optional_int(&stock.get_untracked()),
        );
        let (Ok(points_n), Ok(days_n), Ok(rank_n), Ok(stock_n)) = numbers else {
            invalid.set(Some("number"));
            return;
        };
        let Ok(rank_n) = rank_n.map(i32::try_from).transpose() else {
            invalid.set(Some("number"));
            return;
        };
        invalid.set(None);
        let tier_text = tier.get_untracked().trim().to_owned();
        let req = ProductCreate {
            kind: if is_membership {
                "membership"
            } else {
                "points"
            }
            .to_owned(),
            name: name.get_untracked().trim().to_owned(),
            description: description.get_untracked().trim().to_owned(),
            price_fen,
            points: points_n,
            membership_days: if is_membership { days_n } else { None },
            membership_tier: (is_membership && !tier_text.is_empty()).then_some(tier_text),
            tier_rank: if is_membership { rank_n } else { None },
            stock: stock_n,
        };
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            let result = api.create_product(&req).await;
            let _ = busy.try_set(false);
            match result {
                Ok(product) => {
                    for field in [name, description, price, points, days, tier, rank, stock] {
                        field.set(String::new());
                    }
                    created.set(Some((product.id, product.name)));
                    on_created.run(());
                }
                Err(err) => {
                    let _ = error.try_set(Some(err));
                }
            }
        });
    };

    view! {
        <section class="card" aria-labelledby="catalog-create-title" data-testid="catalog-create">
            <h2 id="catalog-create-title">{move || i18n.t("新建商品", "New product")}</h2>
            <form class="filters" data-testid="catalog-create-form" on:submit=submit>
                <div class="field">
                    <label for="catalog-create-kind">{move || i18n.t("类型", "Kind")}</label>
                    <select id="catalog-create-kind" data-testid="catalog-create-kind" prop:value=kind on:change=move |ev| kind.set(event_target_value(&ev))>
                        <option value="points">{move || kind_label(i18n, ProductKind::Points)}</option>
                        <option value="membership">{move || kind_label(i18n, ProductKind::Membership)}</option>
                    </select>
                </div>
                <div class="field">
                    <label for="catalog-create-name">{move || i18n.t("名称", "Name")}</label>
                    <input id="catalog-create-name" data-testid="catalog-create-name" type="text" maxlength="100" required autocomplete="off"
                        prop:value=name on:input=move |ev| name.set(event_target_value(&ev)) />
                </div>
                <div class="field">
                    <label for="catalog-create-description">{move || i18n.t("描述（可选）", "Description (optional)")}</label>
                    <input id="catalog-create-description" data-testid="catalog-create-description" type="text" autocomplete="off"
                        prop:value=description on:input=move |ev| description.set(event_target_value(&ev)) />
                </div>
                <div class="field">
                    <label for="catalog-create-price">{move || i18n.t("价格（元）", "Price (yuan)")}</label>
                    <input id="catalog-create-price" data-testid="catalog-create-price" type="text" inputmode="decimal" required autocomplete="off" placeholder="9.90"
                        aria-invalid=move || (invalid.get() == Some("price")).then_some("true")
                        prop:value=price on:input=move |ev| price.set(event_target_value(&ev)) />
                </div>
                <div class="field">
                    <label for="catalog-create-points">
                        {move || if membership() { i18n.t("附赠积分（可选）", "Extra points (optional)") } else { i18n.t("积分", "Points") }}
                    </label>
                    <input id="catalog-create-points" data-testid="catalog-create-points" type="number" step="1" min="0" autocomplete="off"
                        prop:value=points on:input=move |ev| points.set(event_target_value(&ev)) />
                </div>
                <Show when=membership>
                    <div class="field">
                        <label for="catalog-create-days">{move || i18n.t("会员天数", "Membership days")}</label>
                        <input id="catalog-create-days" data-testid="catalog-create-days" type="number" step="1" min="1" autocomplete="off"
                            prop:value=days on:input=move |ev| days.set(event_target_value(&ev)) />
                    </div>
                    <div class="field">
                        <label for="catalog-create-tier">{move || i18n.t("会员等级名称（a-z、0-9、_、-）", "Tier (a-z, 0-9, _, -)")}</label>
                        <input id="catalog-create-tier" data-testid="catalog-create-tier" type="text" autocomplete="off"
                            prop:value=tier on:input=move |ev| tier.set(event_target_value(&ev)) />
                    </div>
                    <div class="field">
                        <label for="catalog-create-rank">{move || i18n.t("级别（越高越贵）", "Rank (higher costs more)")}</label>
                        <input id="catalog-create-rank" data-testid="catalog-create-rank" type="number" step="1" autocomplete="off"
                            prop:value=rank on:input=move |ev| rank.set(event_target_value(&ev)) />
                    </div>
                </Show>
                <div class="field">
                    <label for="catalog-create-stock">{move || i18n.t("库存（留空为不限）", "Stock (empty: unlimited)")}</label>
                    <input id="catalog-create-stock" data-testid="catalog-create-stock" type="number" step="1" min="1" autocomplete="off"
                        prop:value=stock on:input=move |ev| stock.set(event_target_value(&ev)) />
                </div>
                {move || invalid.get().map(|what| view! {
                    <p class="field-error" role="alert" data-testid="catalog-create-invalid">
                        {if what == "price" {
                            i18n.t("请输入价格（元），最多两位小数，例如 9.90。", "Enter a price in yuan with at most two decimals, e.g. 9.90.")
                        } else {
                            i18n.t("积分、天数、级别和库存须为整数。", "Points, days, rank and stock must be whole numbers.")
                        }}
                    </p>
                })}
                <div class="filter-actions">
                    <button type="submit" class="btn btn-primary" data-testid="catalog-create-submit" disabled=move || busy.get()>
                        {move || if busy.get() { i18n.t("正在创建…", "Creating…") } else { i18n.t("创建", "Create") }}
                    </button>
                </div>
            </form>
            {move || created.get().map(|(id, name)| view! {
                <p class="alert alert-success" role="status" data-testid="catalog-created" data-product-id=id.to_string()>
                    {move || i18n.t("已创建商品：", "Product created: ")}{name.clone()}" "<code>{format!("#{id}")}</code>
                </p>
            })}
            <ConsoleError error=error testid="catalog-create-error" />
        </section>
    }
}

#[component]
fn EditProduct(
    product: ProductResponse,
    on_saved: Callback<()>,
    on_cancel: Callback<()>,
) -> impl IntoView {
    let i18n = use_i18n();
    let api = expect_context::<Api>();
    let original = StoredValue::new(product.clone());
    let is_membership = product.kind == ProductKind::Membership;
    let name = RwSignal::new(product.name.clone());
    let description = RwSignal::new(product.description.clone());
    let price = RwSignal::new(Yuan(product.price_fen).to_string());
    let points = RwSignal::new(product.points.map(|n| n.to_string()).unwrap_or_default());
    let days = RwSignal::new(
        product
            .membership_days
            .map(|n| n.to_string())
            .unwrap_or_default(),
    );
    let invalid = RwSignal::new(None::<&'static str>);
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<ApiError>);

    let submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        if busy.get_untracked() {
            return;
        }
        let p = original.get_value();
        let mut patch = ProductPatchRequest::default();
        let new_name = name.get_untracked().trim().to_owned();
        if new_name != p.name {
            patch.name = Some(new_name);
        }
        let new_description = description.get_untracked().trim().to_owned();
        if new_description != p.description {
            patch.description = Some(new_description);
        }
        let Some(price_fen) = parse_price(&price.get_untracked()) else {
            invalid.set(Some("price"));
            return;
        };
        if price_fen != p.price_fen {
            patch.price_fen = Some(price_fen);
        }
        let (Ok(points_n), Ok(days_n)) = (
            optional_int(&points.get_untracked()),
            optional_int(&days.get_untracked()),
        ) else {
            invalid.set(Some("number"));
            return;
        };
        if points_n.is_some() && points_n != p.points {
            patch.points = points_n;
        }
        if days_n.is_some() && days_n != p.membership_days.map(i64::from) {
            patch.membership_days = days_n;
        }
        if patch == ProductPatchRequest::default() {
            invalid.set(Some("unchanged"));
            return;
        }
        invalid.set(None);
        busy.set(true);
        error.set(None);
        let id = p.id;
        spawn_local(async move {
            let result = api.update_product(id, &patch).await;
            let _ = busy.try_set(false);
            match result {
                Ok(_) => on_saved.run(()),
                Err(err) => {
                    let _ = error.try_set(Some(err));
                }
            }
        });
    };

    let id = product.id;
    view! {
        <section class="card" aria-labelledby="product-edit-title" data-testid="product-edit-form-section" data-product-id=id.to_string()>
            <h2 id="product-edit-title">{move || format!("{}「{}」", i18n.t("编辑商品", "Edit product "), original.with_value(|p| p.name.clone()))}</h2>
            <form class="filters" data-testid="product-edit-form" on:submit=submit>
                <div class="field">
                    <label for="product-edit-name">{move || i18n.t("名称", "Name")}</label>
                    <input id="product-edit-name" data-testid="product-edit-name" type="text" maxlength="100" required autocomplete="off"
                        prop:value=name on:input=move |ev| name.set(event_target_value(&ev)) />
                </div>
                <div class="field">
                    <label for="product-edit-description">{move || i18n.t("描述", "Description")}</label>
                    <input id="product-edit-description" data-testid="product-edit-description" type="text" autocomplete="off"
                        prop:value=description on:input=move |ev| description.set(event_target_value(&ev)) />
                </div>
                <div class="field">
                    <label for="product-edit-price">{move || i18n.t("价格（元）", "Price (yuan)")}</label>
                    <input id="product-edit-price" data-testid="product-edit-price" type="text" inputmode="decimal" required autocomplete="off"
                        aria-invalid=move || (invalid.get() == Some("price")).then_some("true")
                        prop:value=price on:input=move |ev| price.set(event_target_value(&ev)) />
                </div>
                <div class="field">
                    <label for="product-edit-points">{move || i18n.t("积分", "Points")}</label>
                    <input id="product-edit-points" data-testid="product-edit-points" type="number" step="1" min="0" autocomplete="off"
                        prop:value=points on:input=move |ev| points.set(event_target_value(&ev)) />
                </div>
                {is_membership.then(|| view! {
                    <div class="field">
                        <label for="product-edit-days">{move || i18n.t("会员天数", "Membership days")}</label>
                        <input id="product-edit-days" data-testid="product-edit-days" type="number" step="1" min="1" autocomplete="off"
                            prop:value=days on:input=move |ev| days.set(event_target_value(&ev)) />
                    </div>
                })}
                {move || invalid.get().map(|what| view! {
                    <p class="field-error" role="alert" data-testid="product-edit-invalid">
                        {match what {
                            "price" => i18n.t("请输入价格（元），最多两位小数，例如 9.90。", "Enter a price in yuan with at most two decimals, e.g. 9.90."),
                            "unchanged" => i18n.t("没有修改任何内容。", "Nothing was changed."),
                            _ => i18n.t("积分和天数须为整数。", "Points and days must be whole numbers."),
                        }}
                    </p>
                })}
                <div class="filter-actions">
                    <button type="submit" class="btn btn-primary" data-testid="product-edit-save" disabled=move || busy.get()>
                        {move || if busy.get() { i18n.t("正在保存…", "Saving…") } else { i18n.t("保存", "Save") }}
                    </button>
                    <button type="button" class="btn" data-testid="product-edit-cancel" on:click=move |_| on_cancel.run(())>
                        {move || i18n.t("取消", "Cancel")}
                    </button>
                </div>
            </form>
            <ConsoleError error=error testid="product-edit-error" />
        </section>
    }
}

#[component]
fn Restock(
    product: ProductResponse,
    on_saved: Callback<()>,
    on_cancel: Callback<()>,
) -> impl IntoView {
    let i18n = use_i18n();
    let api = expect_context::<Api>();
    let id = product.id;
    let name = product.name.clone();
    let left = product.stock.unwrap_or(0);
    let add = RwSignal::new(String::new());
    let invalid = RwSignal::new(false);
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<ApiError>);

    let submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        if busy.get_untracked() {
            return;
        }
        let Some(n) = parse_int(&add.get_untracked()).filter(|n| *n > 0) else {
            invalid.set(true);
            return;
        };
        invalid.set(false);
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            let result = api.restock_product(id, &RestockRequest { add: n }).await;
            let _ = busy.try_set(false);
            match result {
                Ok(_) => on_saved.run(()),
                Err(err) => {
                    let _ = error.try_set(Some(err));
                }
            }
        });
    };

    view! {
        <section class="card" aria-labelledby="product-restock-title" data-testid="product-restock-section" data-product-id=id.to_string()>
            <h2 id="product-restock-title">{move || format!("{}「{name}」", i18n.t("补货", "Restock "))}</h2>
            <p class="muted">{move || format!("{} {left}", i18n.t("当前库存：", "Units left:"))}</p>
            <form class="filters" data-testid="product-restock-form" on:submit=submit>
                <div class="field">
                    <label for="product-restock-add">{move || i18n.t("增加数量", "Units to add")}</label>
                    <input id="product-restock-add" data-testid="product-restock-add" type="number" step="1" min="1" required autocomplete="off"
                        aria-invalid=move || invalid.get().then_some("true")
                        prop:value=add on:input=move |ev| add.set(event_target_value(&ev)) />
                </div>
                <Show when=move || invalid.get()>
                    <p class="field-error" role="alert">{move || i18n.t("请输入大于 0 的整数。", "Enter a whole number above 0.")}</p>
                </Show>
                <div class="filter-actions">
                    <button type="submit" class="btn btn-primary" data-testid="product-restock-submit" disabled=move || busy.get()>
                        {move || i18n.t("补货", "Restock")}
                    </button>
                    <button type="button" class="btn" data-testid="product-restock-cancel" on:click=move |_| on_cancel.run(())>
                        {move || i18n.t("取消", "Cancel")}
                    </button>
                </div>
            </form>
            <ConsoleError error=error testid="product-restock-error" />
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::moved;

    #[test]
    fn moves_swap_neighbours() {
        assert_eq!(moved(&[1, 2, 3], 1, true), Some(vec![2, 1, 3]));
        assert_eq!(moved(&[1, 2, 3], 1, false), Some(vec![1, 3, 2]));
        assert_eq!(moved(&[1, 2, 3], 0, true), None);
        assert_eq!(moved(&[1, 2, 3], 2, false), None);
    }
}
