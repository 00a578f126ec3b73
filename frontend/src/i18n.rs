//! Two languages, zh-CN by default, switched at run time and remembered in localStorage.
//! Strings live next to their use as `i18n.t("中文", "English")` pairs.

use leptos::prelude::*;

use crate::state::storage;

const LANG_KEY: &str = "fenpay.lang";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

impl Lang {
    /// BCP 47 tag for `<html lang>` and date formatting.
    pub fn locale(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }
}

/// The current language as a reactive value, shared through context.
#[derive(Clone, Copy)]
pub struct I18n(RwSignal<Lang>);

impl I18n {
    pub fn load() -> Self {
        let lang = match storage().and_then(|s| s.get_item(LANG_KEY).ok().flatten()) {
            Some(tag) if tag == "en" => Lang::En,
            _ => Lang::Zh,
        };
        set_document_lang(lang);
        I18n(RwSignal::new(lang))
    }

    /// Reactive read of the language.
    pub fn lang(self) -> Lang {
        self.0.get()
    }

    pub fn set(self, lang: Lang) {
        if let Some(s) = storage() {
            // Losing the preference (private mode, quota) is harmless.
            let _ = s.set_item(LANG_KEY, if lang == Lang::En { "en" } else { "zh" });
        }
        set_document_lang(lang);
        self.0.set(lang);
    }

    /// Picks the string for the current language (reactive).
    pub fn t(self, zh: &'static str, en: &'static str) -> &'static str {
        match self.lang() {
            Lang::Zh => zh,
            Lang::En => en,
        }
    }
}

pub fn use_i18n() -> I18n {
    expect_context::<I18n>()
}

fn set_document_lang(lang: Lang) {
    if let Some(root) = document().document_element() {
        let _ = root.set_attribute("lang", lang.locale());
    }
}

use api_types::payment::{CancelReason, OrderStatus, PaymentMethod};

/// Human name of a payment method.
pub fn method_label(i18n: I18n, method: PaymentMethod) -> &'static str {
    match method {
        PaymentMethod::Wechat => i18n.t("微信支付", "WeChat Pay"),
        PaymentMethod::Alipay => i18n.t("支付宝", "Alipay"),
    }
}

/// Human name of an order status; an order cancelled by the expiry job reads "expired".
pub fn status_label(i18n: I18n, status: OrderStatus, reason: Option<CancelReason>) -> &'static str {
    match (status, reason) {
        (OrderStatus::Pending, _) => i18n.t("待支付", "Awaiting payment"),
        (OrderStatus::Paid, _) => i18n.t("已支付", "Paid"),
        (OrderStatus::Cancelled, Some(CancelReason::Expired)) => i18n.t("已过期", "Expired"),
        (OrderStatus::Cancelled, _) => i18n.t("已取消", "Cancelled"),
        (OrderStatus::Refunded, _) => i18n.t("已退款", "Refunded"),
    }
}
