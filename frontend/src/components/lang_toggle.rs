//! 中文 / English switch.

use leptos::prelude::*;

use crate::i18n::{use_i18n, Lang};

#[component]
pub fn LangToggle() -> impl IntoView {
    let i18n = use_i18n();
    let toggle = move |_| {
        i18n.set(match i18n.lang() {
            Lang::Zh => Lang::En,
            Lang::En => Lang::Zh,
        })
    };
    view! {
        <button
            type="button"
            class="btn btn-ghost lang-toggle"
            data-testid="lang-toggle"
            on:click=toggle
            aria-label=move || i18n.t("切换语言", "Switch language")
        >
            {move || i18n.t("English", "中文")}
        </button>
    }
}
