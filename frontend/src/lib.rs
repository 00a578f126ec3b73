//! fenpay web client: a Leptos client-side-rendered app compiled to wasm32.
//!
//! `main.rs` only calls [`mount`]. Views switch on a [`state::Route`] signal instead of a
//! router: the buyer screens live at `/`, the operator screens at `/admin...` (kept in
//! the address bar so a reload stays there). All HTTP goes through [`api`].

mod api;
mod components;
mod i18n;
mod live;
mod pages;
mod state;
mod time;

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::Api;
use crate::components::header::Header;
use crate::i18n::I18n;
use crate::pages::admin::{AdminFilters, AdminPage};
use crate::pages::auth::AuthPage;
use crate::pages::checkout::PayPage;
use crate::pages::hosted::HostedCheckoutPage;
use crate::pages::orders::OrdersPage;
use crate::pages::products::ProductsPage;
use crate::state::{DevMode, Nav, Route, Session};

/// Replaces the static "loading" placeholder of `index.html` with the app.
pub fn mount() {
    console_error_panic_hook::set_once();
    if let Some(boot) = document().get_element_by_id("boot") {
        boot.remove();
    }
    leptos::mount::mount_to_body(App);
}

#[component]
fn App() -> impl IntoView {
    let i18n = I18n::load();
    provide_context(i18n);
    let session = Session::restore();
    provide_context(session);
    let api = Api::new(session);
    provide_context(api);
    let dev = RwSignal::new(false);
    provide_context(DevMode(dev));
    // The development emulator answers /dev/info; production answers 404.
    spawn_local(async move {
        dev.set(api.dev_info().await);
    });

    // The hosted checkout page: no account, no shop around it.
    if let Some((order_no, sig)) = pages::hosted::from_location() {
        return view! {
            <div id="app-root" class="app" data-testid="app-root">
                <HostedCheckoutPage order_no sig />
            </div>
        }
        .into_any();
    }

    let route = RwSignal::new(
        current_path()
            .and_then(|p| Route::from_path(&p))
            .unwrap_or(Route::Products),
    );
    provide_context(Nav(route));
    // Operator screens have their own addresses (reload, bookmarks); the rest live at `/`.
    Effect::new(move |_| {
        let path = route.with(Route::path);
        if current_path().is_some_and(|now| now != path) {
            if let Ok(history) = window().history() {
                let _ =
                    history.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&path));
            }
        }
    });
    provide_context(AdminFilters::new());

    // Back from Alipay's cashier (`/?order_no=...&from=alipay`): confirm the order with
    // the server (which asks Alipay) and show the order list.
    if let Some(order_no) = returned_order_no() {
        route.set(Route::Orders);
        spawn_local(async move {
            let _ = api.order_status(&order_no).await;
            route.set(Route::Products);
            route.set(Route::Orders);
        });
    }

    let signed_in = move || session.token.with(Option::is_some);

    view! {
        <div id="app-root" class="app" data-testid="app-root">
            <Show when=signed_in fallback=|| view! { <AuthPage /> }>
                <Header />
                <main class="content">
                    {move || match route.get() {
                        Route::Products => view! { <ProductsPage /> }.into_any(),
                        Route::Orders => view! { <OrdersPage /> }.into_any(),
                        Route::Pay(checkout) => view! { <PayPage checkout /> }.into_any(),
                        Route::Admin(view) => view! { <AdminPage view /> }.into_any(),
                    }}
                </main>
            </Show>
        </div>
    }
    .into_any()
}

/// The address bar path (without query).
fn current_path() -> Option<String> {
    web_sys::window()?.location().pathname().ok()
}

/// The `order_no` of a page-pay return, removed from the address bar once read.
fn returned_order_no() -> Option<String> {
    let window = web_sys::window()?;
    let search = window.location().search().ok()?;
    let params = web_sys::UrlSearchParams::new_with_str(&search).ok()?;
    let order_no = params.get("order_no").filter(|v| !v.is_empty())?;
    if let Ok(history) = window.history() {
        let _ = history.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some("/"));
    }
    Some(order_no)
}
