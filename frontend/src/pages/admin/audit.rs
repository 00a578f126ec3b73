//! The admin audit log: every admin action with its actor, time, target, reason and what
//! changed, filtered by action family, target and days; 20 a page.

use api_types::console::{AuditEntry, AuditQuery};
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use serde_json::Value;

use super::PER_PAGE;
use crate::api::Api;
use crate::components::error_box::ErrorBox;
use crate::i18n::{use_i18n, I18n};
use crate::state::{AdminView, Nav, Route};
use crate::time::local_datetime;

/// The action families the log can be filtered by (`product` matches `product.*`).
const FAMILIES: [&str; 5] = ["refund", "delivery", "product", "account", "complaint"];
/// The kinds of target an entry can name.
const TARGET_KINDS: [&str; 6] = [
    "order",
    "refund",
    "delivery",
    "product",
    "account",
    "complaint",
];

fn family_label(i18n: I18n, family: &str) -> &'static str {
    match family {
        "refund" => i18n.t("退款", "Refunds"),
        "delivery" => i18n.t("通知投递", "Deliveries"),
        "product" => i18n.t("商品", "Products"),
        "account" => i18n.t("账户", "Accounts"),
        "complaint" => i18n.t("投诉", "Complaints"),
        _ => i18n.t("其他", "Other"),
    }
}

fn kind_label(i18n: I18n, kind: &str) -> &'static str {
    match kind {
        "order" => i18n.t("订单", "Order"),
        "refund" => i18n.t("退款", "Refund"),
        "delivery" => i18n.t("通知投递", "Delivery"),
        "product" => i18n.t("商品", "Product"),
        "account" => i18n.t("账户", "Account"),
        "complaint" => i18n.t("投诉", "Complaint"),
        _ => i18n.t("其他", "Other"),
    }
}

/// A JSON value in a line: strings as they are, absent and null as a dash.
fn value_text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "—".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// A value, with null counted as absent.
fn present(v: Option<&Value>) -> Option<&Value> {
    v.filter(|v| !v.is_null())
}

/// What changed between the target's state before and after: `(field, before, after)`
/// for each top-level key whose value differs (the whole value when either side is not
/// an object).
pub fn changes(before: Option<&Value>, after: Option<&Value>) -> Vec<(String, String, String)> {
    match (before, after) {
        (Some(Value::Object(b)), Some(Value::Object(a))) => {
            let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter()
                .filter(|k| present(b.get(*k)) != present(a.get(*k)))
                .map(|k| (k.clone(), value_text(b.get(k)), value_text(a.get(k))))
                .collect()
        }
        (None, Some(Value::Object(a))) => a
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.clone(), "—".to_owned(), value_text(Some(v))))
            .collect(),
        (Some(Value::Object(b)), None) => b
            .iter()
            .map(|(k, v)| (k.clone(), value_text(Some(v)), "—".to_owned()))
            .collect(),
        (b, a) if b == a => Vec::new(),
        (b, a) => vec![(String::new(), value_text(b), value_text(a))],
    }
}

/// Audit entries as a table (the log, and an account's history on its page).
#[component]
pub fn AuditEntries(entries: Vec<AuditEntry>, testid: &'static str) -> impl IntoView {
    let i18n = use_i18n();
    let Nav(route) = expect_context::<Nav>();
    let rows = entries
        .into_iter()
        .map(|e| {
            let at = e.created_at;
            let diff = changes(e.before.as_ref(), e.after.as_ref());
            let diff_view = if diff.is_empty() {
                view! { <span class="muted">"—"</span> }.into_any()
            } else {
                let items = diff
                    .into_iter()
                    .map(|(key, b, a)| {
                        view! {
                            <li data-testid="audit-change" data-field=key.clone()>
                                {(!key.is_empty()).then(|| view! { <code>{key.clone()}</code>": " })}
                                <span class="diff-before">{b}</span>
                                " → "
                                <span class="diff-after">{a}</span>
                            </li>
                        }
                    })
                    .collect_view();
                view! { <ul class="diff">{items}</ul> }.into_any()
            };
            let kind = e.target_kind.clone();
            let target_id = e.target_id.clone();
            let target = match kind.as_str() {
                "account" => {
                    let id = target_id.clone();
                    view! {
                        <button type="button" class="link link-wrap" data-testid="audit-open-target"
                            on:click=move |_| route.set(Route::Admin(AdminView::Account(id.clone())))>
                            <code>{target_id.clone()}</code>
                        </button>
                    }
                    .into_any()
                }
                "order" => {
                    let id = target_id.clone();
                    view! {
                        <button type="button" class="link link-wrap" data-testid="audit-open-target"
                            on:click=move |_| route.set(Route::Admin(AdminView::Order(id.clone())))>
                            <code>{target_id.clone()}</code>
                        </button>
                    }
                    .into_any()
                }
                _ => view! { <code>{target_id.clone()}</code> }.into_any(),
            };
            let kind_text = kind.clone();
            view! {
                <tr data-testid=testid data-action=e.action.clone() data-target-kind=kind.clone() data-target-id=e.target_id.clone()>
                    <td class="nowrap">{move || local_datetime(&at, i18n.lang())}</td>
                    <td>{e.actor_name.clone()}</td>
                    <td class="nowrap"><code class="keep" data-testid="audit-action">{e.action.clone()}</code></td>
                    <td class="wrap">
                        <span class="muted">{move || kind_label(i18n, &kind_text)}</span>" "
                        {target}
                    </td>
                    <td class="wrap" data-testid="audit-reason">{e.reason.clone().unwrap_or_default()}</td>
                    <td class="wrap diff-cell">{diff_view}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <div class="table-scroll" role="region" tabindex="0" aria-label=move || i18n.t("操作记录（可横向滚动）", "Audit log (scrolls sideways)")>
            <table class="data">
                <thead>
                    <tr>
                        <th scope="col">{move || i18n.t("时间", "Time")}</th>
                        <th scope="col">{move || i18n.t("操作人", "Actor")}</th>
                        <th scope="col">{move || i18n.t("操作", "Action")}</th>
                        <th scope="col">{move || i18n.t("对象", "Target")}</th>
                        <th scope="col">{move || i18n.t("原因", "Reason")}</th>
                        <th scope="col">{move || i18n.t("变更（前 → 后）", "Changes (before → after)")}</th>
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
    }
}

fn first_page() -> AuditQuery {
    AuditQuery {
        page: Some(1),
        per_page: Some(PER_PAGE),
        ..AuditQuery::default()
    }
}

fn some_text(text: String) -> Option<String> {
    let text = text.trim().to_owned();
    (!text.is_empty()).then_some(text)
}

#[component]
pub fn AuditView() -> impl IntoView {
    let i18n = use_i18n();
    let api = expect_context::<Api>();

    let applied = RwSignal::new(first_page());
    let family = RwSignal::new(String::new());
    let kind = RwSignal::new(String::new());
    let target = RwSignal::new(String::new());
    let from = RwSignal::new(String::new());
    let to = RwSignal::new(String::new());

    let entries = LocalResource::new(move || {
        let query = applied.get();
        async move { api.admin_audit(&query).await }
    });

    let apply = move |ev: SubmitEvent| {
        ev.prevent_default();
        applied.set(AuditQuery {
            action: some_text(family.get_untracked()),
            target_kind: some_text(kind.get_untracked()),
            target_id: some_text(target.get_untracked()),
            from: some_text(from.get_untracked()),
            to: some_text(to.get_untracked()),
            ..first_page()
        });
    };
    let reset = move |_| {
        for field in [family, kind, target, from, to] {
            field.set(String::new());
        }
        applied.set(first_page());
    };
    let go_to = move |page: i64| applied.update(|q| q.page = Some(page.max(1)));

    let list = move || {
        Suspend::new(async move {
            match entries.await {
                Ok(list) => {
                    let per_page = list.per_page.max(1);
                    let pages = ((list.total + per_page - 1) / per_page).max(1);
                    let current = list.page;
                    let total = list.total;
                    let empty = list.items.is_empty();
                    view! {
                        <p class="muted result-count" role="status" data-testid="audit-total">
                            {move || format!("{} {total} {}", i18n.t("共", "Total:"), i18n.t("条记录", "entries"))}
                        </p>
                        {if empty {
                            view! {
                                <p class="empty" data-testid="audit-empty">
                                    {move || i18n.t("没有符合条件的操作记录。", "No entries match these filters.")}
                                </p>
                            }
                            .into_any()
                        } else {
                            view! { <AuditEntries entries=list.items testid="audit-row" /> }.into_any()
                        }}
                        {(pages > 1).then(|| view! {
                            <nav class="pager" aria-label=move || i18n.t("分页", "Pages")>
                                <button type="button" class="btn" data-testid="audit-prev" disabled={current <= 1} on:click=move |_| go_to(current - 1)>
                                    {move || i18n.t("上一页", "Previous")}
                                </button>
                                <span data-testid="audit-page">{format!("{current} / {pages}")}</span>
                                <button type="button" class="btn" data-testid="audit-next" disabled={current >= pages} on:click=move |_| go_to(current + 1)>
                                    {move || i18n.t("下一页", "Next")}
                                </button>
                            </nav>
                        })}
                    }
                    .into_any()
                }
                Err(err) => view! {
                    <ErrorBox error=Signal::derive(move || Some(err.clone())) />
                    <button type="button" class="btn" on:click=move |_| entries.refetch()>
                        {move || i18n.t("重试", "Retry")}
                    </button>
                }
                .into_any(),
            }
        })
    };

    view! {
        <div class="page-head">
            <h1>{move || i18n.t("操作记录", "Audit log")}</h1>
            <button type="button" class="btn btn-ghost" data-testid="audit-refresh" on:click=move |_| entries.refetch()>
                {move || i18n.t("刷新", "Refresh")}
            </button>
        </div>
        <form class="filters card" data-testid="audit-filters" on:submit=apply>
            <div class="field">
                <label for="audit-action">{move || i18n.t("操作类别", "Action")}</label>
                <select id="audit-action" data-testid="audit-action-filter" prop:value=family on:change=move |ev| family.set(event_target_value(&ev))>
                    <option value="">{move || i18n.t("全部", "All")}</option>
                    {FAMILIES
                        .into_iter()
                        .map(|f| view! {
                            <option value=f selected=move || family.get() == f>{move || family_label(i18n, f)}</option>
                        })
                        .collect_view()}
                </select>
            </div>
            <div class="field">
                <label for="audit-kind">{move || i18n.t("对象类型", "Target kind")}</label>
                <select id="audit-kind" data-testid="audit-kind-filter" prop:value=kind on:change=move |ev| kind.set(event_target_value(&ev))>
                    <option value="">{move || i18n.t("全部", "All")}</option>
                    {TARGET_KINDS
                        .into_iter()
                        .map(|k| view! {
                            <option value=k selected=move || kind.get() == k>{move || kind_label(i18n, k)}</option>
                        })
                        .collect_view()}
                </select>
            </div>
            <div class="field">
                <label for="audit-target">{move || i18n.t("对象 ID", "Target id")}</label>
                <input id="audit-target" type="search" autocomplete="off" data-testid="audit-target-filter"
                    prop:value=target on:input=move |ev| target.set(event_target_value(&ev)) />
            </div>
            <div class="field">
                <label for="audit-from">{move || i18n.t("开始日期", "From")}</label>
                <input id="audit-from" type="date" data-testid="audit-from" prop:value=from on:input=move |ev| from.set(event_target_value(&ev)) />
            </div>
            <div class="field">
                <label for="audit-to">{move || i18n.t("结束日期", "To")}</label>
                <input id="audit-to" type="date" data-testid="audit-to" prop:value=to on:input=move |ev| to.set(event_target_value(&ev)) />
            </div>
            <div class="filter-actions">
                <button type="submit" class="btn btn-primary" data-testid="audit-apply">
                    {move || i18n.t("筛选", "Apply")}
                </button>
                <button type="button" class="btn" data-testid="audit-reset" on:click=reset>
                    {move || i18n.t("重置", "Reset")}
                </button>
            </div>
            <p class="hint-inline">{move || i18n.t("日期按业务时区划分；时间以本机时区显示。", "Days are those of the business time zone; times show in your local time zone.")}</p>
        </form>
        <Transition fallback=move || {
            view! { <p class="loading" data-testid="loading" role="status">{i18n.t("正在加载操作记录…", "Loading the audit log…")}</p> }
        }>{list}</Transition>
    }
}

#[cfg(test)]
mod tests {
    use super::changes;
    use serde_json::json;

    #[test]
    fn only_changed_keys() {
        let before = json!({"price_fen": 1000, "name": "A", "active": true});
        let after = json!({"price_fen": 1200, "name": "A", "active": true, "stock": null});
        assert_eq!(
            changes(Some(&before), Some(&after)),
            vec![("price_fen".to_owned(), "1000".to_owned(), "1200".to_owned())]
        );
        let created = changes(None, Some(&json!({"name": "B", "stock": null})));
        assert_eq!(
            created,
            vec![("name".to_owned(), "—".to_owned(), "B".to_owned())]
        );
        assert!(changes(None, None).is_empty());
    }
}
