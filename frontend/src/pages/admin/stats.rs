//! Paid and refunded totals per day and provider, with a bar per row.

use api_types::admin::StatsQuery;
use chrono::NaiveDate;
use leptos::ev::SubmitEvent;
use leptos::prelude::*;

use super::yuan;
use crate::api::Api;
use crate::components::error_box::ErrorBox;
use crate::i18n::{method_label, use_i18n};

fn parse_day(value: &str) -> Option<NaiveDate> {
    value.trim().parse().ok()
}

/// Bar length in whole percent of the largest value (integer arithmetic).
fn bar_percent(value: i64, max: i64) -> i64 {
    if max <= 0 || value <= 0 {
        0
    } else {
        (value.saturating_mul(100) / max).clamp(1, 100)
    }
}

#[component]
pub fn StatsView() -> impl IntoView {
    let i18n = use_i18n();
    let api = expect_context::<Api>();

    let from = RwSignal::new(String::new());
    let to = RwSignal::new(String::new());
    let query = RwSignal::new(StatsQuery::default());
    let stats = LocalResource::new(move || {
        let q = query.get();
        async move { api.admin_stats(&q).await }
    });

    let apply = move |ev: SubmitEvent| {
        ev.prevent_default();
        query.set(StatsQuery {
            from: parse_day(&from.get_untracked()),
            to: parse_day(&to.get_untracked()),
        });
    };

    let table = move || {
        Suspend::new(async move {
            match stats.await {
                Ok(s) => {
                    let max = s.days.iter().map(|d| d.paid_fen).max().unwrap_or(0);
                    let empty = s.days.is_empty();
                    let range = format!("{} – {}", s.from, s.to);
                    let tz = s.timezone.clone();
                    let tz_head = tz.clone();
                    let net = s.total_paid_fen - s.total_refunded_fen;
                    let stuck = s.stuck.clone();
                    let stuck_view = (stuck.count > 0).then(|| {
                        let count = stuck.count;
                        let since = stuck
                            .oldest_expire_at
                            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                            .unwrap_or_default();
                        let error = stuck.last_error.unwrap_or_default();
                        view! {
                            <div class="card stuck-warning" role="alert" data-testid="stats-stuck">
                                <strong data-testid="stats-stuck-count">{count}</strong>
                                {move || i18n.t(
                                    " 个已过期订单无法在支付渠道关闭，正在退避重试。最早过期：",
                                    " expired orders could not be closed at their provider and are being retried with backoff. Oldest expiry: ",
                                )}
                                {since}
                                <p class="muted">{error}</p>
                            </div>
                        }
                    });
                    let rows = s
                        .days
                        .into_iter()
                        .map(|d| {
                            let method = d.provider;
                            // `style:` sets the property through CSSOM, which the CSP allows (a `style`
                            // attribute would be an inline style it refuses).
                            let width = format!("{}%", bar_percent(d.paid_fen, max));
                            view! {
                                <tr data-testid="stats-row" data-date=d.date.to_string() data-provider=method.as_str()>
                                    <td class="nowrap">{d.date.to_string()}</td>
                                    <td>{move || method_label(i18n, method)}</td>
                                    <td class="num">{d.paid_count}</td>
                                    <td class="num">{yuan(d.paid_fen)}</td>
                                    <td class="num">{yuan(d.refunded_fen)}</td>
                                    <td class="num">{yuan(d.net_fen)}</td>
                                    <td class="bar-cell" aria-hidden="true">
                                        <span class=format!("bar bar-{}", method.as_str()) style:width=width></span>
                                    </td>
                                </tr>
                            }
                        })
                        .collect_view();
                    view! {
                        {stuck_view}
                        <p class="muted" role="status" data-testid="stats-range">
                            {range}
                            " · "
                            {move || i18n.t("时区：", "Time zone: ")}
                            <span data-testid="stats-timezone">{tz.clone()}</span>
                        </p>
                        <div class="totals" data-testid="stats-totals">
                            <div class="total card">
                                <span class="muted">{move || i18n.t("已支付订单", "Paid orders")}</span>
                                <strong data-testid="stats-total-count">{s.total_paid_count}</strong>
                            </div>
                            <div class="total card">
                                <span class="muted">{move || i18n.t("收款", "Paid")}</span>
                                <strong data-testid="stats-total-paid">{yuan(s.total_paid_fen)}</strong>
                            </div>
                            <div class="total card">
                                <span class="muted">{move || i18n.t("退款", "Refunded")}</span>
                                <strong data-testid="stats-total-refunded">{yuan(s.total_refunded_fen)}</strong>
                            </div>
                            <div class="total card">
                                <span class="muted">{move || i18n.t("净收入", "Net")}</span>
                                <strong data-testid="stats-total-net">{yuan(net)}</strong>
                            </div>
                        </div>
                        {if empty {
                            view! {
                                <p class="empty" data-testid="stats-empty">
                                    {move || i18n.t("该时间段内没有已支付订单。", "No paid orders in this period.")}
                                </p>
                            }
                            .into_any()
                        } else {
                            view! {
                                <div class="table-scroll" role="region" tabindex="0" aria-label=move || i18n.t("每日统计（可横向滚动）", "Daily totals (scrolls sideways)")>
                                    <table class="data" data-testid="stats-table">
                                        <thead>
                                            <tr>
                                                <th scope="col">{move || format!("{} ({})", i18n.t("日期", "Date"), tz_head)}</th>
                                                <th scope="col">{move || i18n.t("渠道", "Provider")}</th>
                                                <th scope="col" class="num">{move || i18n.t("笔数", "Orders")}</th>
                                                <th scope="col" class="num">{move || i18n.t("收款", "Paid")}</th>
                                                <th scope="col" class="num">{move || i18n.t("退款", "Refunded")}</th>
                                                <th scope="col" class="num">{move || i18n.t("净额", "Net")}</th>
                                                <th scope="col"><span class="visually-hidden">{move || i18n.t("收款占比", "Paid, relative")}</span></th>
                                            </tr>
                                        </thead>
                                        <tbody>{rows}</tbody>
                                    </table>
                                </div>
                            }
                            .into_any()
                        }}
                    }
                    .into_any()
                }
                Err(err) => view! {
                    <ErrorBox error=Signal::derive(move || Some(err.clone())) />
                    <button type="button" class="btn" on:click=move |_| stats.refetch()>
                        {move || i18n.t("重试", "Retry")}
                    </button>
                }
                .into_any(),
            }
        })
    };

    view! {
        <div class="page-head">
            <h1>{move || i18n.t("每日统计", "Daily totals")}</h1>
            <button type="button" class="btn btn-ghost" data-testid="stats-refresh" on:click=move |_| stats.refetch()>
                {move || i18n.t("刷新", "Refresh")}
            </button>
        </div>
        <form class="filters card" data-testid="stats-filters" on:submit=apply>
            <div class="field">
                <label for="s-from">{move || i18n.t("开始日期", "From")}</label>
                <input id="s-from" type="date" prop:value=from on:input=move |ev| from.set(event_target_value(&ev)) />
            </div>
            <div class="field">
                <label for="s-to">{move || i18n.t("结束日期", "To")}</label>
                <input id="s-to" type="date" prop:value=to on:input=move |ev| to.set(event_target_value(&ev)) />
            </div>
            <div class="filter-actions">
                <button type="submit" class="btn btn-primary" data-testid="stats-apply">
                    {move || i18n.t("查询", "Show")}
                </button>
            </div>
            <p class="hint-inline">{move || i18n.t("默认显示最近 30 天；日期按业务时区（BUSINESS_TIMEZONE）划分。", "Defaults to the last 30 days; days are those of the business time zone (BUSINESS_TIMEZONE).")}</p>
        </form>
        <Transition fallback=move || {
            view! { <p class="loading" data-testid="loading" role="status">{i18n.t("正在加载统计…", "Loading totals…")}</p> }
        }>{table}</Transition>
    }
}

#[cfg(test)]
mod tests {
    use super::bar_percent;

    #[test]
    fn bars_scale_to_the_largest() {
        assert_eq!(bar_percent(0, 100), 0);
        assert_eq!(bar_percent(100, 100), 100);
        assert_eq!(bar_percent(1, 10_000), 1);
        assert_eq!(bar_percent(5_000, 10_000), 50);
        assert_eq!(bar_percent(5, 0), 0);
    }
}
