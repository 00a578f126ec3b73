//! WeChat Pay complaints (消费者投诉): the inbox with the time left to answer, one
//! complaint's negotiation history and order, a reply box and "mark handled".

use api_types::complaints::{ComplaintDetail, ComplaintState, ComplaintSummary};
use leptos::ev::SubmitEvent;
use leptos::prelude::*;

use super::yuan;
use crate::api::{Api, ApiError};
use crate::components::error_box::ErrorBox;
use crate::i18n::{use_i18n, I18n};
use crate::time::local_datetime;

/// Replies are 1-200 characters (the server says so too).
const REPLY_MAX: usize = 200;

fn state_label(i18n: I18n, state: &str) -> &'static str {
    match state {
        "pending" => i18n.t("待处理", "Pending"),
        "processing" => i18n.t("处理中", "Processing"),
        "processed" => i18n.t("已处理", "Handled"),
        _ => i18n.t("未知", "Unknown"),
    }
}

fn parse_state(value: &str) -> Option<ComplaintState> {
    match value {
        "pending" => Some(ComplaintState::Pending),
        "processing" => Some(ComplaintState::Processing),
        "processed" => Some(ComplaintState::Processed),
        _ => None,
    }
}

/// `5h 12m`, or overdue by as much; a dash without a deadline.
fn time_left(i18n: I18n, secs: Option<i64>) -> String {
    match secs {
        None => "—".to_owned(),
        Some(s) => {
            let a = s.abs();
            let text = format!("{}h {:02}m", a / 3600, (a % 3600) / 60);
            if s < 0 {
                format!("{} {text}", i18n.t("已超时", "overdue"))
            } else {
                text
            }
        }
    }
}

#[component]
pub fn ComplaintsView() -> impl IntoView {
    let i18n = use_i18n();
    let api = expect_context::<Api>();
    let filter = RwSignal::new(String::new());
    let selected = RwSignal::new(None::<String>);
    let sync_error = RwSignal::new(None::<ApiError>);
    let syncing = RwSignal::new(false);
    let list = LocalResource::new(move || {
        let state = parse_state(&filter.get());
        async move { api.admin_complaints(state, 1).await }
    });
    let sync = move |_| {
        syncing.set(true);
        sync_error.set(None);
        leptos::task::spawn_local(async move {
            match api.sync_complaints().await {
                Ok(_) => list.refetch(),
                Err(e) => sync_error.set(Some(e)),
            }
            syncing.set(false);
        });
    };
    let row = move |c: ComplaintSummary| {
        let id = c.complaint_id.clone();
        let (state, at, left) = (c.state.clone(), c.complaint_time, c.time_left_secs);
        view! {
            <tr data-testid="complaint-row">
                <td>
                    <button type="button" class="link" on:click=move |_| selected.set(Some(id.clone()))>
                        {c.complaint_id.clone()}
                    </button>
                </td>
                <td>{move || state_label(i18n, &state)}</td>
                <td>{c.problem_type.clone().unwrap_or_default()}</td>
                <td>{c.amount_fen.map(yuan).unwrap_or_else(|| "—".to_owned())}</td>
                <td>{c.order_no.clone().unwrap_or_else(|| "—".to_owned())}</td>
                <td class="nowrap">{move || local_datetime(&at, i18n.lang())}</td>
                <td class:overdue=c.time_left_secs.is_some_and(|s| s < 0) data-testid="complaint-time-left">
                    {move || time_left(i18n, left)}
                </td>
            </tr>
        }
    };
    let table = move || {
        Suspend::new(async move {
            match list.await {
                Ok(l) if l.items.is_empty() => view! {
                    <p class="empty" data-testid="complaints-empty">
                        {move || i18n.t("没有投诉。", "No complaints.")}
                    </p>
                }
                .into_any(),
                Ok(l) => view! {
                    <div class="table-scroll" role="region" tabindex="0" aria-label=move || i18n.t("投诉（可横向滚动）", "Complaints (scrolls sideways)")>
                        <table class="data" data-testid="complaints-table">
                            <thead>
                                <tr>
                                    <th>{move || i18n.t("投诉单号", "Complaint")}</th>
                                    <th>{move || i18n.t("状态", "State")}</th>
                                    <th>{move || i18n.t("问题类型", "Problem")}</th>
                                    <th>{move || i18n.t("金额", "Amount")}</th>
                                    <th>{move || i18n.t("订单号", "Order")}</th>
                                    <th>{move || i18n.t("投诉时间", "Complained at")}</th>
                                    <th>{move || i18n.t("剩余回复时间", "Time left to reply")}</th>
                                </tr>
                            </thead>
                            <tbody>{l.items.into_iter().map(row).collect_view()}</tbody>
                        </table>
                    </div>
                }
                .into_any(),
                Err(e) => {
                    view! { <ErrorBox error=Signal::derive(move || Some(e.clone())) /> }.into_any()
                }
            }
        })
    };
    view! {
        <section class="card" data-testid="complaints-view">
            <h2>{move || i18n.t("微信支付投诉", "WeChat Pay complaints")}</h2>
            <p class="hint">
                {move || i18n.t(
                    "新投诉须在 24 小时内首次回复，否则商户可能被微信支付限制。",
                    "New complaints need a first reply within 24 hours, or WeChat Pay may restrict the merchant.",
                )}
            </p>
            <div class="complaints-toolbar">
                <select
                    aria-label=move || i18n.t("状态", "State")
                    on:change=move |ev| filter.set(event_target_value(&ev))
                >
                    <option value="">{move || i18n.t("全部", "All")}</option>
                    <option value="pending">{move || state_label(i18n, "pending")}</option>
                    <option value="processing">{move || state_label(i18n, "processing")}</option>
                    <option value="processed">{move || state_label(i18n, "processed")}</option>
                </select>
                <button type="button" class="btn" disabled=move || syncing.get() on:click=sync>
                    {move || i18n.t("从微信同步", "Sync from WeChat")}
                </button>
            </div>
            <ErrorBox error=sync_error />
            <Transition fallback=move || view! { <p class="loading">"…"</p> }>{table}</Transition>
        </section>
        {move || selected.get().map(|id| view! { <ComplaintPanel id on_change=move || list.refetch() /> })}
    }
}

#[component]
fn ComplaintPanel(
    id: String,
    on_change: impl Fn() + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let i18n = use_i18n();
    let api = expect_context::<Api>();
    let id = StoredValue::new(id);
    let detail = RwSignal::new(None::<ComplaintDetail>);
    let error = RwSignal::new(None::<ApiError>);
    let content = RwSignal::new(String::new());
    let busy = RwSignal::new(false);
    let load = move || {
        leptos::task::spawn_local(async move {
            match api.admin_complaint(&id.get_value()).await {
                Ok(d) => detail.set(Some(d)),
                Err(e) => error.set(Some(e)),
            }
        });
    };
    load();
    let after = move |r: Result<ComplaintDetail, ApiError>| {
        match r {
            Ok(d) => {
                detail.set(Some(d));
                content.set(String::new());
                on_change();
            }
            Err(e) => error.set(Some(e)),
        }
        busy.set(false);
    };
    let reply = move |ev: SubmitEvent| {
        ev.prevent_default();
        let text = content.get_untracked();
        busy.set(true);
        error.set(None);
        leptos::task::spawn_local(async move {
            after(api.reply_complaint(&id.get_value(), &text).await);
        });
    };
    let complete = move |_| {
        busy.set(true);
        error.set(None);
        leptos::task::spawn_local(async move {
            after(api.complete_complaint(&id.get_value()).await);
        });
    };
    let too_long = move || content.with(|c| c.trim().chars().count() > REPLY_MAX);
    let empty = move || content.with(|c| c.trim().is_empty());
    view! {
        <section class="card" data-testid="complaint-detail">
            <h2>{move || format!("{} {}", i18n.t("投诉", "Complaint"), id.get_value())}</h2>
            <ErrorBox error=error />
            {move || detail.get().map(|d| {
                let synced = d.complaint.last_synced_at;
                let open = d.complaint.state != "processed";
                view! {
                    <p data-testid="complaint-state">
                        {state_label(i18n, &d.complaint.state)} " · "
                        {time_left(i18n, d.complaint.time_left_secs)}
                    </p>
                    <p>{d.complaint_detail.clone()}</p>
                    {d.order.clone().map(|o| view! {
                        <p data-testid="complaint-order">
                            {move || i18n.t("订单", "Order")} " " {o.order_no.clone()} " · "
                            {yuan(o.amount_fen)} " · " {o.status.clone()} " · " {o.product_name.clone()}
                        </p>
                    })}
                    <h3>{move || i18n.t("协商历史", "Negotiation history")}</h3>
                    <ol class="complaint-history" data-testid="complaint-history">
                        {d.history.iter().map(|h| view! {
                            <li>
                                <span class="muted">{h.operate_time.clone()}</span> " "
                                <strong>{h.operate_type.clone()}</strong> " "
                                {h.operate_details.clone().unwrap_or_default()}
                            </li>
                        }).collect_view()}
                    </ol>
                    <p class="muted">{move || local_datetime(&synced, i18n.lang())}</p>
                    {open.then(|| view! {
                        <form class="complaint-reply" on:submit=reply data-testid="complaint-reply">
                            <textarea
                                rows="3"
                                maxlength="400"
                                prop:value=move || content.get()
                                on:input=move |ev| content.set(event_target_value(&ev))
                                aria-label=move || i18n.t("回复内容", "Reply")
                            ></textarea>
                            <p class="hint" class:error=too_long>
                                {move || format!("{}/{REPLY_MAX}", content.with(|c| c.trim().chars().count()))}
                            </p>
                            <button type="submit" class="btn btn-primary" disabled=move || busy.get() || too_long() || empty()>
                                {move || i18n.t("回复用户", "Reply to the buyer")}
                            </button>
                            <button type="button" class="btn" disabled=move || busy.get() on:click=complete data-testid="complaint-complete">
                                {move || i18n.t("标记为已处理", "Mark handled")}
                            </button>
                        </form>
                    })}
                }
            })}
        </section>
    }
}
