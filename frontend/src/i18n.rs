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

use api_types::reconciliation::{ReconItemKind, ReconStatus};

/// Human name of a reconciliation item's kind.
pub fn recon_kind_label(i18n: I18n, kind: ReconItemKind) -> &'static str {
    match kind {
        ReconItemKind::Matched => i18n.t("一致", "Matched"),
        ReconItemKind::MissingHere => i18n.t("渠道已付、本地未付", "Paid at provider, not here"),
        ReconItemKind::MissingAtProvider => {
            i18n.t("本地已付、账单缺失", "Paid here, not in the bill")
        }
        ReconItemKind::AmountMismatch => i18n.t("金额不一致", "Amount differs"),
        ReconItemKind::StatusMismatch => i18n.t("交易号不一致", "Transaction id differs"),
        ReconItemKind::RefundMissingHere => {
            i18n.t("渠道已退款、本地未退", "Refunded at provider, not here")
        }
        ReconItemKind::RefundMissingAtProvider => {
            i18n.t("本地已退款、账单缺失", "Refunded here, not in the bill")
        }
        ReconItemKind::RefundAmountMismatch => i18n.t("退款金额不一致", "Refund amount differs"),
        ReconItemKind::UnknownOrder => i18n.t("未知订单号", "Unknown order number"),
        ReconItemKind::DuplicateInBill => i18n.t("账单重复记录", "Listed twice in the bill"),
        ReconItemKind::BillTotalsMismatch => {
            i18n.t("账单汇总与明细不符", "Bill summary does not add up")
        }
    }
}

/// Human name of a reconciliation run's status.
pub fn recon_status_label(i18n: I18n, status: ReconStatus) -> &'static str {
    match status {
        ReconStatus::Pending => i18n.t("等待中", "Pending"),
        ReconStatus::Done => i18n.t("已完成", "Done"),
        ReconStatus::Failed => i18n.t("失败，将重试", "Failed, retrying"),
        ReconStatus::NotReady => i18n.t("账单未出，将重试", "Bill not ready, retrying"),
    }
}
