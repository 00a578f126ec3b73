//! The catalog: pick a product, then pay with WeChat Pay or Alipay.

use api_types::payment::{CreateOrderRequest, PaymentChannel, PaymentMethod};
use api_types::product::{ProductKind, ProductResponse};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::{Api, ApiError};
use crate::components::error_box::ErrorBox;
use crate::i18n::{use_i18n, I18n};
use crate::pages::checkout::start_checkout;
use crate::state::{Nav, Route};

#[component]
pub fn ProductsPage() -> impl IntoView {
    let i18n = use_i18n();
    let api = expect_context::<Api>();
    let Nav(route) = expect_context::<Nav>();

    let products = LocalResource::new(move || async move { api.products().await });
    let selected = RwSignal::new(None::<ProductResponse>);
    let creating = RwSignal::new(None::<PaymentMethod>);
    let error = RwSignal::new(None::<ApiError>);

    let pay = move |method: PaymentMethod| {
        let Some(product) = selected.get_untracked() else {
            return;
        };
        if creating.get_untracked().is_some() {
            return;
        }
        creating.set(Some(method));
        error.set(None);
        spawn_local(async move {
            match start_checkout(api, &product, method).await {
                Ok(checkout) => route.set(Route::Pay(checkout)),
                Err(err) => {
                    let _ = error.try_set(Some(err));
                    let _ = creating.try_set(None);
                }
            }
        });
    };

    // Alipay page pay (desktop): the browser goes to Alipay's cashier and comes back
    // through /api/v1/payment/alipay/return to `/?order_no=...`.
    let page_pay = move |_| {
        let Some(product) = selected.get_untracked() else {
            return;
        };
        if creating.get_untracked().is_some() {
            return;
        }
        creating.set(Some(PaymentMethod::Alipay));
        error.set(None);
        spawn_local(async move {
            let req = CreateOrderRequest {
                product_type: product.kind,
                product_id: product.id,
                payment_method: PaymentMethod::Alipay,
                is_upgrade: false,
                quantity: None,
                channel: Some(PaymentChannel::Page),
                openid: None,
                replaces_order_no: None,
            };
            let target = api.create_order(&req).await.map(|reply| reply.pay_url);
            match target {
                Ok(Some(url)) => {
                    if let Some(window) = web_sys::window() {
                        let _ = window.location().assign(&url);
                    }
                }
                Ok(None) => {
                    let _ = creating.try_set(None);
                }
                Err(err) => {
                    let _ = error.try_set(Some(err));
                    let _ = creating.try_set(None);
                }
            }
        });
    };

    let catalog = move || {
        Suspend::new(async move {
            match products.await {
                Ok(list) => {
                    let (points, memberships): (Vec<_>, Vec<_>) = list
                        .items
                        .into_iter()
                        .filter(|p| p.active)
                        .partition(|p| p.kind == ProductKind::Points);
                    if points.is_empty() && memberships.is_empty() {
                        return view! {
                            <p class="empty" data-testid="products-empty">
                                {move || i18n.t("暂无可购买的商品。", "Nothing is for sale right now.")}
                            </p>
                        }
                        .into_any();
                    }
                    view! {
                        <ProductGroup title=("积分充值", "Points packs") items=points selected />
                        <ProductGroup title=("会员", "Memberships") items=memberships selected />
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

    let pay_button = move |method: PaymentMethod, testid: &'static str, class: &'static str| {
        view! {
            <button
                type="button"
                class=format!("btn {class}")
                data-testid=testid
                disabled=move || selected.with(Option::is_none) || creating.get().is_some()
                on:click=move |_| pay(method)
            >
                {move || {
                    if creating.get() == Some(method) {
                        i18n.t("正在创建订单…", "Creating order…")
                    } else {
                        match method {
                            PaymentMethod::Wechat => i18n.t("微信支付", "WeChat Pay"),
                            PaymentMethod::Alipay => i18n.t("支付宝", "Alipay"),
                        }
                    }
                }}
            </button>
        }
    };

    view! {
        <section class="page products-page">
            <h1>{move || i18n.t("选择商品", "Choose a product")}</h1>
            <Transition fallback=move || {
                view! { <p class="loading" data-testid="loading">{i18n.t("正在加载商品…", "Loading products…")}</p> }
            }>{catalog}</Transition>
            <div class="checkout-bar" data-testid="checkout-bar">
                <p class="selection">
                    {move || match selected.get() {
                        Some(p) => format!("{} · ¥{}", p.name, p.price),
                        None => i18n.t("请选择一个商品", "Select a product").to_owned(),
                    }}
                </p>
                <div class="pay-methods">
                    {pay_button(PaymentMethod::Wechat, "pay-wechat", "btn-wechat")}
                    {pay_button(PaymentMethod::Alipay, "pay-alipay", "btn-alipay")}
                    <button
                        type="button"
                        class="btn btn-alipay btn-secondary"
                        data-testid="pay-alipay-page"
                        disabled=move || selected.with(Option::is_none) || creating.get().is_some()
                        on:click=page_pay
                    >
                        {move || i18n.t("支付宝网页支付", "Alipay page pay")}
                    </button>
                </div>
                <ErrorBox error=error />
            </div>
        </section>
    }
}

#[component]
fn ProductGroup(
    title: (&'static str, &'static str),
    items: Vec<ProductResponse>,
    selected: RwSignal<Option<ProductResponse>>,
) -> impl IntoView {
    let i18n = use_i18n();
    (!items.is_empty()).then(|| {
        view! {
            <h2>{move || i18n.t(title.0, title.1)}</h2>
            <div class="product-grid" role="radiogroup">
                {items.into_iter().map(|p| view! { <ProductCard product=p selected /> }).collect_view()}
            </div>
        }
    })
}

/// What a product grants, e.g. "+1000 积分" or "pro · 30 天".
fn grant_text(i18n: I18n, p: &ProductResponse) -> String {
    match p.kind {
        ProductKind::Points => format!(
            "+{} {}",
            p.points.unwrap_or_default(),
            i18n.t("积分", "points")
        ),
        ProductKind::Membership => {
            let tier = p.membership_tier.clone().unwrap_or_default();
            match p.membership_days {
                Some(days) => format!("{tier} · {days} {}", i18n.t("天", "days")),
                None => tier,
            }
        }
        ProductKind::Custom => String::new(),
    }
}

#[component]
fn ProductCard(
    product: ProductResponse,
    selected: RwSignal<Option<ProductResponse>>,
) -> impl IntoView {
    let i18n = use_i18n();
    let id = product.id;
    let sold_out = product.stock == Some(0);
    let input_id = format!("product-{id}");
    let label_for = input_id.clone();
    let is_selected = move || selected.with(|s| s.as_ref().map(|p| p.id) == Some(id));
    let name = product.name.clone();
    let description = product.description.clone();
    let price = product.price.to_string();
    let grant = {
        let product = product.clone();
        move || grant_text(i18n, &product)
    };
    let stock = product.stock;
    view! {
        <label
            class="product-card"
            class:selected=is_selected
            class:sold-out=sold_out
            for=label_for
            data-testid="product-card"
            data-product-id=id.to_string()
        >
            <input
                id=input_id
                type="radio"
                name="product"
                class="visually-hidden"
                value=id.to_string()
                disabled=sold_out
                prop:checked=is_selected
                on:change=move |_| selected.set(Some(product.clone()))
            />
            <span class="product-name">{name}</span>
            <span class="product-grant">{grant}</span>
            <span class="product-desc">{description}</span>
            <span class="product-price">"¥"{price}</span>
            {move || match stock {
                Some(0) => Some(i18n.t("已售罄", "Sold out").to_owned()),
                Some(n) if n <= 10 => Some(format!("{} {n}", i18n.t("仅剩", "Only left:"))),
                _ => None,
            }
                .map(|s| view! { <span class="product-stock">{s}</span> })}
        </label>
    }
}
