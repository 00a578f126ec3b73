//! Bill reconciliation: the days per provider with status and difference counts, one
//! day's items with the differences first, and a form to reconcile a day now.

use api_types::payment::PaymentMethod;
use api_types::reconciliation::{ReconStatus, ReconciliationQuery, RunReconciliationRequest};
use chrono::NaiveDate;
use leptos::ev::SubmitEvent;
use leptos::prelude::*;

use super::yuan;
use crate::api::{Api, ApiError};
use crate::components::error_box::ErrorBox;
use crate::i18n::{method_label, recon_kind_label, recon_status_label, use_i18n};
use crate::state::{AdminView, Nav, Route};

fn parse_day(value: &str) -> Option<NaiveDate> {
    value.trim().parse().ok()
}

fn parse_provider(value: &str) -> Option<PaymentMethod> {
    match value {
        "wechat" => Some(PaymentMethod::Wechat),
        "alipay" => Some(PaymentMethod::Alipay),
        _ => None,
    }
}

fn amount(fen: Option<i64>) -> String {
    fen.map(yuan).unwrap_or_else(|| "–".to_owned())
}

#[component]
pub fn ReconciliationList() -> impl IntoView {
    let i18n = use_i18n();
    let api = expect_context::<Api>();
    let Nav(route) = expect_context::<Nav>();

    let provider = RwSignal::new(String::new());
    let run_date = RwSignal::new(String::new());
    let run_error = RwSignal::new(None::<ApiError>);
    let running = RwSignal::new(false);
    let query = RwSignal::new(ReconciliationQuery::default());
    let list = LocalResource::new(move || {
        let q = query.get();
        async move { api.admin_reconciliations(&q).await }
    });

    let filter = move |ev: SubmitEvent| {
        ev.prevent_default();
        query.set(ReconciliationQuery {
            provider: parse_provider(&provider.get_untracked()),
            ..ReconciliationQuery::default()
        });
    };
    let run = move |ev: SubmitEvent| {
        ev.prevent_default();
        let Some(date) = parse_day(&run_date.get_untracked()) else {
            return;
        };
        let req = RunReconciliationRequest {
            date,
            provider: parse_provider(&provider.get_untracked()),
        };
        running.set(true);
        run_error.set(None);
        leptos::task::spawn_local(async move {
            match api.run_reconciliation(&req).await {
                Ok(_) => list.refetch(),
                Err(e) => run_error.set(Some(e)),
            }
            running.set(false);
        });
    };

    let table = move || {
        Suspend::new(async move {
            match list.await {
                Ok(l) if l.items.is_empty() => view! {
                    <p class="empty" data-testid="recon-empty">
                        {move || i18n.t("还没有对账记录。", "No reconciliations yet.")}
                    </p>
                }
                .into_any(),
                Ok(l) => {
                    let rows = l
                        .items
                        .into_iter()
                        .map(|r| {
                            let id = r.id;
                            let method = r.provider;
                            let status = r.status;
                            let differences = r.difference_count;
                            let alert = differences > 0;
                            let open = move |_| route.set(Route::Admin(AdminView::Reconciliation(id)));
                            view! {
                                <tr
                                    data-testid="recon-row"
                                    data-date=r.date.to_string()
                                    data-provider=method.as_str()
                                    class:row-alert=alert
                                >
                                    <td class="nowrap">
                                        <button type="button" class="link" data-testid="recon-open" on:click=open>
                                            {r.date.to_string()}
                                        </button>
                                    </td>
                                    <td>{move || method_label(i18n, method)}</td>
                                    <td>{move || recon_status_label(i18n, status)}</td>
                                    <td class="num" data-testid="recon-differences">{differences}</td>
                                    <td class="num">{r.matched_count}</td>
                                    <td class="num">{yuan(r.bill_payments_fen)}</td>
                                    <td class="num">{yuan(r.bill_refunds_fen)}</td>
                                    <td class="num">{yuan(r.bill_fees_fen)}</td>
                                    <td class="num">{yuan(r.net_fen)}</td>
                                </tr>
                            }
                        })
                        .collect_view();
                    view! {
                        <div class="table-scroll" role="region" tabindex="0" aria-label=move || i18n.t("对账记录（可横向滚动）", "Reconciliations (scrolls sideways)")>
                            <table class="data" data-testid="recon-table">
                                <thead>
                                    <tr>
                                        <th scope="col">{move || i18n.t("账单日（北京时间）", "Bill day (China time)")}</th>
                                        <th scope="col">{move || i18n.t("渠道", "Provider")}</th>
                                        <th scope="col">{move || i18n.t("状态", "Status")}</th>
                                        <th scope="col" class="num">{move || i18n.t("差异", "Differences")}</th>
                                        <th scope="col" class="num">{move || i18n.t("一致", "Matched")}</th>
                                        <th scope="col" class="num">{move || i18n.t("收款", "Payments")}</th>
                                        <th scope="col" class="num">{move || i18n.t("退款", "Refunds")}</th>
                                        <th scope="col" class="num">{move || i18n.t("手续费", "Fees")}</th>
                                        <th scope="col" class="num">{move || i18n.t("结算净额", "Net settlement")}</th>
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
                    <button type="button" class="btn" on:click=move |_| list.refetch()>
                        {move || i18n.t("重试", "Retry")}
                    </button>
                }
                .into_any(),
            }
        })
    };

    view! {
        <div class="page-head">
            <h1>{move || i18n.t("对账", "Reconciliation")}</h1>
            <button type="button" class="btn btn-ghost" data-testid="recon-refresh" on:click=move |_| list.refetch()>
                {move || i18n.t("刷新", "Refresh")}
            </button>
        </div>
        <form class="filters card" data-testid="recon-filters" on:submit=filter>
            <div class="field">
                <label for="r-provider">{move || i18n.t("渠道", "Provider")}</label>
                <select id="r-provider" on:change=move |ev| provider.set(event_target_value(&ev))>
                    <option value="">{move || i18n.t("全部", "All")}</option>
                    <option value="wechat">{move || method_label(i18n, PaymentMethod::Wechat)}</option>
                    <option value="alipay">{move || method_label(i18n, PaymentMethod::Alipay)}</option>
                </select>
            </div>
            <div class="filter-actions">
                <button type="submit" class="btn btn-primary" data-testid="recon-apply">
                    {move || i18n.t("查询", "Show")}
                </button>
            </div>
        </form>
        <form class="filters card" data-testid="recon-run" on:submit=run>
            <div class="field">
                <label for="r-date">{move || i18n.t("对账日期", "Day to reconcile")}</label>
                <input id="r-date" type="date" required prop:value=run_date on:input=move |ev| run_date.set(event_target_value(&ev)) />
            </div>
            <div class="filter-actions">
                <button type="submit" class="btn" data-testid="recon-run-submit" disabled=move || running.get()>
                    {move || if running.get() { i18n.t("对账中…", "Reconciling…") } else { i18n.t("立即对账", "Reconcile now") }}
                </button>
            </div>
            <p class="hint-inline">{move || i18n.t(
                "每天在账单发布后自动对账前一天（北京时间）；差异排在最前。",
                "Yesterday (China time) is reconciled daily once the bills are out; differences come first.",
            )}</p>
            <ErrorBox error=run_error />
        </form>
        <Transition fallback=move || {
            view! { <p class="loading" data-testid="loading" role="status">{i18n.t("正在加载对账…", "Loading reconciliations…")}</p> }
        }>{table}</Transition>
    }
}

#[component]
pub fn ReconciliationDetailView(id: i64) -> impl IntoView {
    let i18n = use_i18n();
    let api = expect_context::<Api>();
    let Nav(route) = expect_context::<Nav>();
    let detail = LocalResource::new(move || async move { api.admin_reconciliation(id).await });

    let body = move || {
        Suspend::new(async move {
            match detail.await {
                Ok(d) => {
                    let r = d.reconciliation;
                    let method = r.provider;
                    let status = r.status;
                    let error =
                        (status != ReconStatus::Done).then(|| r.error.clone().unwrap_or_default());
                    let rows = d
                        .items
                        .into_iter()
                        .map(|i| {
                            let kind = i.kind;
                            let difference = kind.is_difference();
                            let order_no = i.order_no.clone();
                            let open = move |_| {
                                if let Some(no) = order_no.clone() {
                                    route.set(Route::Admin(AdminView::Order(no)));
                                }
                            };
                            view! {
                                <tr data-testid="recon-item" data-kind=kind.as_str() class:row-alert=difference>
                                    <td>{move || recon_kind_label(i18n, kind)}</td>
                                    <td class="nowrap">
                                        <button type="button" class="link" on:click=open>
                                            {i.order_no.clone().unwrap_or_default()}
                                        </button>
                                    </td>
                                    <td class="nowrap">{i.out_refund_no.clone().unwrap_or_default()}</td>
                                    <td class="num">{amount(i.our_amount_fen)}</td>
                                    <td class="num">{amount(i.provider_amount_fen)}</td>
                                    <td>{i.our_status.clone().unwrap_or_default()}" / "{i.provider_status.clone().unwrap_or_default()}</td>
                                    <td>{i.applied.then(|| i18n.t("已核实并入账", "Verified and applied"))}</td>
                                    <td class="muted">{i.detail.clone()}</td>
                                </tr>
                            }
                        })
                        .collect_view();
                    view! {
                        <p class="muted" role="status" data-testid="recon-summary">
                            {r.date.to_string()}" · "{move || method_label(i18n, method)}" · "{move || recon_status_label(i18n, status)}
                        </p>
                        {error.map(|e| view! { <p class="error" role="alert">{e}</p> })}
                        <div class="totals" data-testid="recon-totals">
                            <div class="total card">
                                <span class="muted">{move || i18n.t("差异", "Differences")}</span>
                                <strong data-testid="recon-total-differences">{r.difference_count}</strong>
                            </div>
                            <div class="total card">
                                <span class="muted">{move || i18n.t("账单收款 / 本地收款", "Bill payments / ours")}</span>
                                <strong>{yuan(r.bill_payments_fen)}" / "{yuan(r.our_payments_fen)}</strong>
                            </div>
                            <div class="total card">
                                <span class="muted">{move || i18n.t("账单退款 / 本地退款", "Bill refunds / ours")}</span>
                                <strong>{yuan(r.bill_refunds_fen)}" / "{yuan(r.our_refunds_fen)}</strong>
                            </div>
                            <div class="total card">
                                <span class="muted">{move || i18n.t("手续费", "Fees")}</span>
                                <strong>{yuan(r.bill_fees_fen)}</strong>
                            </div>
                            <div class="total card">
                                <span class="muted">{move || i18n.t("结算净额", "Net settlement")}</span>
                                <strong data-testid="recon-total-net">{yuan(r.net_fen)}</strong>
                            </div>
                        </div>
                        <div class="table-scroll" role="region" tabindex="0" aria-label=move || i18n.t("对账明细（可横向滚动）", "Reconciliation items (scrolls sideways)")>
                            <table class="data" data-testid="recon-items">
                                <thead>
                                    <tr>
                                        <th scope="col">{move || i18n.t("结果", "Result")}</th>
                                        <th scope="col">{move || i18n.t("订单号", "Order")}</th>
                                        <th scope="col">{move || i18n.t("退款单号", "Refund")}</th>
                                        <th scope="col" class="num">{move || i18n.t("本地金额", "Our amount")}</th>
                                        <th scope="col" class="num">{move || i18n.t("渠道金额", "Provider amount")}</th>
                                        <th scope="col">{move || i18n.t("本地 / 渠道状态", "Our / provider status")}</th>
                                        <th scope="col">{move || i18n.t("处理", "Action")}</th>
                                        <th scope="col">{move || i18n.t("说明", "Detail")}</th>
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
                    <button type="button" class="btn" on:click=move |_| detail.refetch()>
                        {move || i18n.t("重试", "Retry")}
                    </button>
                }
                .into_any(),
            }
        })
    };

    view! {
        <div class="page-head">
            <h1>{move || i18n.t("对账明细", "Reconciliation")}</h1>
            <button type="button" class="btn btn-ghost" data-testid="recon-back" on:click=move |_| route.set(Route::Admin(AdminView::Reconciliations))>
                {move || i18n.t("返回列表", "Back to the list")}
            </button>
        </div>
        <Transition fallback=move || {
            view! { <p class="loading" data-testid="loading" role="status">{i18n.t("正在加载…", "Loading…")}</p> }
        }>{body}</Transition>
    }
}
