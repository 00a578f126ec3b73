//! Pieces shared by the console tabs (accounts, catalog, audit log): errors in words by
//! their code, and integer parsing of typed numbers.

use api_types::Yuan;
use leptos::prelude::*;

use crate::api::ApiError;
use crate::components::error_box::error_text;
use crate::i18n::{use_i18n, I18n};

/// Our own words for the codes the console routes answer with.
fn known_text(i18n: I18n, code: &str) -> Option<&'static str> {
    Some(match code {
        "reason_required" => i18n.t("请填写原因。", "A reason is required."),
        "reason_too_long" => i18n.t(
            "原因过长（最多 200 个字符）。",
            "The reason is too long (at most 200 characters).",
        ),
        "invalid_adjustment" => i18n.t("调整数值无效。", "Invalid adjustment."),
        "empty_adjustment" => i18n.t(
            "请填写要调整的积分或会员天数。",
            "Enter points or membership days to change.",
        ),
        "insufficient_points" => i18n.t(
            "积分不足：不能扣除超过账户现有的积分。",
            "Not enough points: no more than the account holds can be taken.",
        ),
        "tier_required" => i18n.t(
            "该账户没有有效会员：请选择要授予的会员等级。",
            "The account holds no active membership: choose the tier to grant.",
        ),
        "tier_conflict" => i18n.t(
            "该账户已是其他会员等级，只能为现有等级增加天数。",
            "The account holds another tier: days can only be added to the tier it holds.",
        ),
        "no_membership" => i18n.t(
            "该账户没有有效会员，无法扣除天数。",
            "The account holds no active membership to take days from.",
        ),
        "last_admin" => i18n.t(
            "这是最后一个有效的管理员账户，不能停用或撤销其管理员权限。请先授予其他账户管理员权限。",
            "This is the last active admin: it cannot be disabled or demoted. Grant the role to another account first.",
        ),
        "concurrent_change" => i18n.t(
            "该账户刚被其他操作修改，请刷新后重试。",
            "The account was changed meanwhile. Refresh and try again.",
        ),
        "invalid_product" => i18n.t("商品信息无效。", "Invalid product."),
        "empty_patch" => i18n.t("没有修改任何内容。", "Nothing was changed."),
        "tier_price_order" => i18n.t(
            "会员价格顺序不对：等级越高，每天的价格必须越高。",
            "Tier prices out of order: a higher rank must cost more per day.",
        ),
        "tier_rank_conflict" => i18n.t(
            "会员等级冲突：每个等级名称对应唯一的级别。",
            "Tier rank conflict: each tier name has exactly one rank of its own.",
        ),
        "unlimited_stock" => i18n.t(
            "该商品不限库存，无需补货。",
            "This product has unlimited stock: nothing to restock.",
        ),
        "invalid_order" => i18n.t("排序无效，请刷新后重试。", "Invalid order. Refresh and try again."),
        "invalid_date" => i18n.t("日期无效。", "Invalid date."),
        _ => return None,
    })
}

/// An alert for a console call that failed: our words for a known code with the server's
/// message below (it names the field or the numbers), the shared texts otherwise.
#[component]
pub fn ConsoleError(
    #[prop(into)] error: Signal<Option<ApiError>>,
    testid: &'static str,
) -> impl IntoView {
    let i18n = use_i18n();
    move || {
        error.get().map(|err| {
            let code = err.code().map(str::to_owned);
            let known = code.as_deref().and_then(|c| known_text(i18n, c));
            let detail = match (&err, known) {
                (ApiError::Status { body: Some(b), .. }, Some(_)) if !b.message.is_empty() => {
                    Some(b.message.clone())
                }
                _ => None,
            };
            let headline = known
                .map(str::to_owned)
                .unwrap_or_else(|| error_text(i18n, &err));
            view! {
                <div class="alert alert-error" role="alert" data-testid=testid data-code=code>
                    <p>{headline}</p>
                    {detail.map(|d| view! { <p class="error-detail">{d}</p> })}
                </div>
            }
        })
    }
}

/// A typed whole number (`-5`, `+10`, `7`); empty text is 0.
pub fn parse_int(text: &str) -> Option<i64> {
    let text = text.trim();
    if text.is_empty() {
        return Some(0);
    }
    text.strip_prefix('+').unwrap_or(text).parse().ok()
}

/// A typed price in yuan (`12`, `12.5`, `¥12.50`) as integer fen, without floats;
/// negative amounts and more than two decimals are refused.
pub fn parse_price(text: &str) -> Option<i64> {
    let text = text.trim();
    let text = text
        .strip_prefix('¥')
        .or_else(|| text.strip_prefix('￥'))
        .unwrap_or(text)
        .trim();
    if text.starts_with('-') {
        return None;
    }
    Yuan::parse(text).map(Yuan::fen)
}

#[cfg(test)]
mod tests {
    use super::{parse_int, parse_price};

    #[test]
    fn prices_are_exact_fen() {
        assert_eq!(parse_price("12"), Some(1200));
        assert_eq!(parse_price(" ¥0.29 "), Some(29));
        assert_eq!(parse_price("9.9"), Some(990));
        assert_eq!(parse_price("1.234"), None);
        assert_eq!(parse_price("-1"), None);
        assert_eq!(parse_price("1e2"), None);
        assert_eq!(parse_price(""), None);
    }

    #[test]
    fn whole_numbers() {
        assert_eq!(parse_int(""), Some(0));
        assert_eq!(parse_int("-15"), Some(-15));
        assert_eq!(parse_int("+7"), Some(7));
        assert_eq!(parse_int("1.5"), None);
    }
}
