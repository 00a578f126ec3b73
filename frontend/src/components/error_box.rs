//! Turns an [`ApiError`] into words: known codes get our own text, others the server's.

use leptos::prelude::*;

use crate::api::ApiError;
use crate::i18n::{use_i18n, I18n};

/// The headline for an error, in the current language.
pub fn error_text(i18n: I18n, err: &ApiError) -> String {
    let body = match err {
        ApiError::Network => {
            return i18n
                .t(
                    "无法连接服务器，请检查网络后重试。",
                    "Cannot reach the server. Check your connection and try again.",
                )
                .to_owned()
        }
        ApiError::Unexpected => {
            return i18n
                .t(
                    "服务器返回了无法识别的数据。",
                    "The server sent an unexpected response.",
                )
                .to_owned()
        }
        ApiError::SessionExpired => {
            return i18n
                .t(
                    "登录已过期，请重新登录。",
                    "Your session expired. Please sign in again.",
                )
                .to_owned()
        }
        ApiError::Status { status, body } => (status, body),
    };
    let (status, body) = body;
    let known = body.as_ref().and_then(|b| match b.code.as_str() {
        "invalid_credentials" => Some(i18n.t("用户名或密码错误。", "Wrong username or password.")),
        "username_taken" => Some(i18n.t(
            "该用户名已被注册，请换一个。",
            "That username is taken. Please choose another.",
        )),
        "email_taken" => Some(i18n.t(
            "该邮箱已被注册。",
            "That email address is already registered.",
        )),
        "validation_failed" if !b.details.is_empty() => Some(i18n.t(
            "输入有误，请检查以下内容：",
            "Please correct the following:",
        )),
        "rate_limited" => Some(i18n.t(
            "操作过于频繁，请稍后再试。",
            "Too many attempts. Please wait a moment and try again.",
        )),
        "unauthorized" => Some(i18n.t("请先登录。", "Please sign in first.")),
        "forbidden" => Some(i18n.t("没有权限执行此操作。", "You are not allowed to do that.")),
        "not_found" => Some(i18n.t("未找到该内容。", "Not found.")),
        "provider_unavailable" => Some(i18n.t(
            "支付渠道暂时不可用，请稍后重试或换一种支付方式。",
            "The payment provider is unavailable. Try again later or use the other method.",
        )),
        "order_already_paid" => Some(i18n.t("该订单已支付。", "This order has already been paid.")),
        "order_not_pending" => Some(i18n.t(
            "该订单已不是待支付状态。",
            "This order is no longer awaiting payment.",
        )),
        "order_expired" => Some(i18n.t("订单已过期。", "The order has expired.")),
        "product_not_found" | "product_unavailable" => {
            Some(i18n.t("该商品已下架。", "This product is no longer available."))
        }
        "out_of_stock" => Some(i18n.t("该商品已售罄。", "This product is sold out.")),
        "invalid_query" => Some(i18n.t(
            "查询条件无效，请检查日期等筛选条件。",
            "Invalid filters. Check the dates and other fields.",
        )),
        "order_not_paid" => Some(i18n.t(
            "该订单未支付，无法退款。",
            "This order is not paid, so it cannot be refunded.",
        )),
        "invalid_refund_amount" => Some(i18n.t("退款金额无效。", "Invalid refund amount.")),
        "internal" | "internal_error" => Some(i18n.t(
            "服务器内部错误，请稍后再试。",
            "Something went wrong on the server. Please try again later.",
        )),
        _ => None,
    });
    match (known, body) {
        (Some(text), _) => text.to_owned(),
        (None, Some(body)) if !body.message.is_empty() => body.message.clone(),
        (None, _) if *status == 429 => i18n
            .t(
                "操作过于频繁，请稍后再试。",
                "Too many attempts. Please wait a moment and try again.",
            )
            .to_owned(),
        (None, _) if *status >= 500 => format!(
            "{} (HTTP {status})",
            i18n.t("服务暂时不可用", "The service is unavailable")
        ),
        (None, _) => format!("{} (HTTP {status})", i18n.t("请求失败", "Request failed")),
    }
}

fn field_label(i18n: I18n, field: &str) -> String {
    match field {
        "username" => i18n.t("用户名", "Username").to_owned(),
        "password" => i18n.t("密码", "Password").to_owned(),
        "email" => i18n.t("邮箱", "Email").to_owned(),
        other => other.to_owned(),
    }
}

/// An alert box for the error in `error`, if any; lists per-field problems.
#[component]
pub fn ErrorBox(#[prop(into)] error: Signal<Option<ApiError>>) -> impl IntoView {
    let i18n = use_i18n();
    move || {
        error.get().map(|err| {
            let details = match &err {
                ApiError::Status {
                    body: Some(body), ..
                } => body
                    .details
                    .iter()
                    .map(|d| format!("{}: {}", field_label(i18n, &d.field), d.message))
                    .collect::<Vec<_>>(),
                _ => Vec::new(),
            };
            view! {
                <div class="alert alert-error" role="alert" data-testid="error" data-code=err.code().map(str::to_owned)>
                    <p>{error_text(i18n, &err)}</p>
                    {(!details.is_empty())
                        .then(|| {
                            view! {
                                <ul class="details">
                                    {details.into_iter().map(|d| view! { <li>{d}</li> }).collect_view()}
                                </ul>
                            }
                        })}
                </div>
            }
        })
    }
}
