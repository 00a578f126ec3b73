//! Top bar of the signed-in app: navigation, account summary, language, sign-out.

use api_types::auth::Role;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::{Api, ApiError};
use crate::components::lang_toggle::LangToggle;
use crate::i18n::use_i18n;
use crate::state::{AdminView, Nav, Route, Session};
use crate::time::{local_date, server_now_ms};

#[component]
pub fn Header() -> impl IntoView {
    let i18n = use_i18n();
    let session = expect_context::<Session>();
    let api = expect_context::<Api>();
    let Nav(route) = expect_context::<Nav>();

    // After a page reload only the token is known: fetch the account it belongs to.
    let load_failed = RwSignal::new(false);
    let load_user = move || {
        load_failed.set(false);
        spawn_local(async move {
            match api.me().await {
                Ok(user) => session.user.set(Some(user)),
                Err(ApiError::SessionExpired) => {}
                Err(_) => {
                    let _ = load_failed.try_set(true);
                }
            }
        });
    };
    if session.user.with_untracked(Option::is_none) {
        load_user();
    }

    let on_products = move || matches!(route.get(), Route::Products | Route::Pay(_));
    let on_orders = move || matches!(route.get(), Route::Orders);
    let on_admin = move || matches!(route.get(), Route::Admin(_));
    let is_admin = move || {
        session
            .user
            .with(|u| u.as_ref().is_some_and(|u| u.role == Role::Admin))
    };

    let account = move || {
        let Some(user) = session.user.get() else {
            if load_failed.get() {
                return view! {
                    <span class="muted" role="alert">{i18n.t("账户信息加载失败。", "Could not load your account.")}</span>
                    <button type="button" class="btn btn-ghost btn-small" data-testid="retry-account" on:click=move |_| load_user()>
                        {i18n.t("重试", "Retry")}
                    </button>
                }
                .into_any();
            }
            return view! {
                <span class="muted" data-testid="account-loading">{i18n.t("加载账户…", "Loading account…")}</span>
            }
            .into_any();
        };
        let membership = match (&user.membership_tier, &user.membership_expires_at) {
            (None, _) => i18n.t("非会员", "No membership").to_owned(),
            (Some(tier), Some(until)) if until.timestamp_millis() <= server_now_ms() => {
                format!("{tier} · {}", i18n.t("已过期", "expired"))
            }
            (Some(tier), Some(until)) => format!(
                "{tier} · {} {}",
                i18n.t("有效期至", "until"),
                local_date(until, i18n.lang())
            ),
            (Some(tier), None) => tier.clone(),
        };
        view! {
            <span class="username" data-testid="username">{user.username}</span>
            <span class="points">
                {i18n.t("积分", "Points")}
                " "
                <strong data-testid="points-balance">{user.points_balance}</strong>
            </span>
            <span class="membership" data-testid="membership">
                {i18n.t("会员", "Membership")}
                ": "
                {membership}
            </span>
        }
        .into_any()
    };

    view! {
        <header class="topbar">
            <div class="topbar-row">
                <span class="brand">"fenpay"</span>
                <nav class="nav" aria-label=move || i18n.t("主导航", "Main")>
                    <button
                        type="button"
                        class="nav-link"
                        class:active=on_products
                        data-testid="nav-products"
                        on:click=move |_| route.set(Route::Products)
                    >
                        {move || i18n.t("商品", "Products")}
                    </button>
                    <button
                        type="button"
                        class="nav-link"
                        class:active=on_orders
                        data-testid="nav-orders"
                        on:click=move |_| route.set(Route::Orders)
                    >
                        {move || i18n.t("我的订单", "My orders")}
                    </button>
                    <Show when=is_admin>
                        <button
                            type="button"
                            class="nav-link"
                            class:active=on_admin
                            data-testid="nav-admin"
                            on:click=move |_| route.set(Route::Admin(AdminView::Orders))
                        >
                            {move || i18n.t("管理", "Admin")}
                        </button>
                    </Show>
                </nav>
                <div class="topbar-actions">
                    <LangToggle />
                    <button
                        type="button"
                        class="btn btn-ghost"
                        data-testid="logout"
                        on:click=move |_| session.sign_out(Some(crate::state::Notice::SignedOut))
                    >
                        {move || i18n.t("退出", "Sign out")}
                    </button>
                </div>
            </div>
            <div class="account" data-testid="account">{account}</div>
        </header>
    }
}
