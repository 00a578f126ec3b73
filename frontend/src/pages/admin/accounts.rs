//! Accounts: a search by username, email, account id or an app's external user id, and
//! one account's page with its balances, links, orders, refunds, ledger and admin history,
//! a points / membership adjustment form (with a mandatory reason), disable / enable and
//! admin role changes (each confirmed first).

use api_types::admin::{AdminOrder, BalanceEntry, RefundResponse};
use api_types::console::{
    AccountDetail, AccountQuery, AccountSummary, AdjustRequest, AdjustResponse, ReasonRequest,
};
use api_types::product::ProductKind;
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;

use super::audit::AuditEntries;
use super::console::{parse_int, ConsoleError};
use super::{refund_status_label, yuan, AdminFilters, PER_PAGE};
use crate::api::{Api, ApiError};
use crate::components::error_box::ErrorBox;
use crate::i18n::{method_label, status_label, use_i18n, I18n};
use crate::state::{AdminView, Nav, Route};
use crate::time::{local_date, local_datetime, server_now_ms};

fn role_label(i18n: I18n, role: &str) -> &'static str {
    match role {
        "admin" => i18n.t("管理员", "Admin"),
        _ => i18n.t("用户", "User"),
    }
}

/// True while the account holds a membership that has not run out.
fn membership_active(a: &AccountSummary) -> bool {
    a.membership_tier.is_some()
        && a.membership_expires_at
            .is_some_and(|at| at.timestamp_millis() > server_now_ms())
}

/// `pro · 2027/1/5`, or a dash without a membership.
fn membership_text(i18n: I18n, a: &AccountSummary) -> String {
    match (&a.membership_tier, a.membership_expires_at) {
        (Some(tier), Some(at)) => {
            let ended = if membership_active(a) {
                ""
            } else {
                i18n.t("（已过期）", " (expired)")
            };
            format!(
                "{tier} · {} {}{ended}",
                i18n.t("到期", "until"),
                local_date(&at, i18n.lang())
            )
        }
        (Some(tier), None) => tier.clone(),
        _ => "—".to_owned(),
    }
}

fn first_page(q: AccountQuery) -> AccountQuery {
    AccountQuery {
        page: Some(1),
        per_page: Some(PER_PAGE),
        ..q
    }
}

#[component]
pub fn AccountsView() -> impl IntoView {
    let i18n = use_i18n();
    let api = expect_context::<Api>();
    let Nav(route) = expect_context::<Nav>();
    let applied = expect_context::<AdminFilters>().accounts;

    let current = applied.get_untracked();
    let q = RwSignal::new(current.q.clone().unwrap_or_default());
    let role = RwSignal::new(current.role.clone().unwrap_or_default());
    let disabled = RwSignal::new(current.disabled.map(|d| d.to_string()).unwrap_or_default());

    let accounts = LocalResource::new(move || {
        let query = applied.get();
        async move { api.admin_accounts(&query).await }
    });

    let apply = move |ev: SubmitEvent| {
        ev.prevent_default();
        let text = q.get_untracked().trim().to_owned();
        let role = role.get_untracked();
        applied.set(first_page(AccountQuery {
            q: (!text.is_empty()).then_some(text),
            role: (!role.is_empty()).then_some(role),
            disabled: disabled.get_untracked().parse().ok(),
            ..AccountQuery::default()
        }));
    };
    let reset = move |_| {
        q.set(String::new());
        role.set(String::new());
        disabled.set(String::new());
        applied.set(first_page(AccountQuery::default()));
    };
    let go_to = move |page: i64| applied.update(|q| q.page = Some(page.max(1)));

    let list = move || {
        Suspend::new(async move {
            match accounts.await {
                Ok(list) => {
                    let per_page = list.per_page.max(1);
                    let pages = ((list.total + per_page - 1) / per_page).max(1);
                    let current = list.page;
                    let total = list.total;
                    let rows = list
                        .items
                        .into_iter()
                        .map(|a| {
                            let id = a.id.clone();
                            let open = move |_| route.set(Route::Admin(AdminView::Account(id.clone())));
                            let created_at = a.created_at;
                            let is_disabled = a.disabled_at.is_some();
                            let role_code = a.role.clone();
                            let summary = a.clone();
                            view! {
                                <tr data-testid=format!("account-row-{}", a.username) data-account-id=a.id.clone() data-disabled=is_disabled.to_string()>
                                    <td>
                                        <button type="button" class="link" data-testid=format!("account-open-{}", a.username) on:click=open>
                                            {a.username.clone()}
                                        </button>
                                    </td>
                                    <td class="wrap">{a.email.clone()}</td>
                                    <td>
                                        <span class=if a.role == "admin" { "badge badge-refunded" } else { "badge" }>
                                            {move || role_label(i18n, &role_code)}
                                        </span>
                                    </td>
                                    <td class="num" data-testid="account-row-points">{a.points_balance}</td>
                                    <td>{move || membership_text(i18n, &summary)}</td>
                                    <td>
                                        {if is_disabled {
                                            view! { <span class="badge badge-review" data-testid="account-disabled-badge">{move || i18n.t("已停用", "Disabled")}</span> }.into_any()
                                        } else {
                                            view! { <span class="badge badge-paid">{move || i18n.t("正常", "Active")}</span> }.into_any()
                                        }}
                                    </td>
                                    <td class="nowrap">{move || local_datetime(&created_at, i18n.lang())}</td>
                                </tr>
                            }
                        })
                        .collect_view();
                    view! {
                        <p class="muted result-count" role="status" data-testid="accounts-total">
                            {move || format!("{} {total} {}", i18n.t("共", "Total:"), i18n.t("个账户", "accounts"))}
                        </p>
                        {if total == 0 {
                            view! {
                                <p class="empty" data-testid="accounts-empty">
                                    {move || i18n.t("没有符合条件的账户。", "No accounts match.")}
                                </p>
                            }
                            .into_any()
                        } else {
                            view! {
                                <div class="table-scroll" role="region" tabindex="0" aria-label=move || i18n.t("账户列表（可横向滚动）", "Accounts (scrolls sideways)")>
                                    <table class="data" data-testid="accounts-table">
                                        <thead>
                                            <tr>
                                                <th scope="col">{move || i18n.t("用户名", "Username")}</th>
                                                <th scope="col">{move || i18n.t("邮箱", "Email")}</th>
                                                <th scope="col">{move || i18n.t("角色", "Role")}</th>
                                                <th scope="col" class="num">{move || i18n.t("积分", "Points")}</th>
                                                <th scope="col">{move || i18n.t("会员", "Membership")}</th>
                                                <th scope="col">{move || i18n.t("状态", "Status")}</th>
                                                <th scope="col">{move || i18n.t("注册时间", "Created")}</th>
                                            </tr>
                                        </thead>
                                        <tbody>{rows}</tbody>
                                    </table>
                                </div>
                            }
                            .into_any()
                        }}
                        {(pages > 1).then(|| view! {
                            <nav class="pager" aria-label=move || i18n.t("分页", "Pages")>
                                <button type="button" class="btn" data-testid="accounts-prev" disabled={current <= 1} on:click=move |_| go_to(current - 1)>
                                    {move || i18n.t("上一页", "Previous")}
                                </button>
                                <span data-testid="accounts-page">{format!("{current} / {pages}")}</span>
                                <button type="button" class="btn" data-testid="accounts-next" disabled={current >= pages} on:click=move |_| go_to(current + 1)>
                                    {move || i18n.t("下一页", "Next")}
                                </button>
                            </nav>
                        })}
                    }
                    .into_any()
                }
                Err(err) => view! {
                    <ErrorBox error=Signal::derive(move || Some(err.clone())) />
                    <button type="button" class="btn" on:click=move |_| accounts.refetch()>
                        {move || i18n.t("重试", "Retry")}
                    </button>
                }
                .into_any(),
            }
        })
    };

    view! {
        <div class="page-head">
            <h1>{move || i18n.t("账户管理", "Accounts")}</h1>
            <button type="button" class="btn btn-ghost" data-testid="accounts-refresh" on:click=move |_| accounts.refetch()>
                {move || i18n.t("刷新", "Refresh")}
            </button>
        </div>
        <form class="filters card" data-testid="accounts-filters" on:submit=apply>
            <div class="field field-wide">
                <label for="accounts-q">{move || i18n.t("搜索（用户名、邮箱、账户 ID 或外部用户 ID）", "Search (username, email, account id or external id)")}</label>
                <input id="accounts-q" type="search" autocomplete="off" data-testid="accounts-search"
                    prop:value=q on:input=move |ev| q.set(event_target_value(&ev)) />
            </div>
            <div class="field">
                <label for="accounts-role">{move || i18n.t("角色", "Role")}</label>
                <select id="accounts-role" data-testid="accounts-role" prop:value=role on:change=move |ev| role.set(event_target_value(&ev))>
                    <option value="">{move || i18n.t("全部", "All")}</option>
                    <option value="user" selected=move || role.get() == "user">{move || role_label(i18n, "user")}</option>
                    <option value="admin" selected=move || role.get() == "admin">{move || role_label(i18n, "admin")}</option>
                </select>
            </div>
            <div class="field">
                <label for="accounts-disabled">{move || i18n.t("状态", "Status")}</label>
                <select id="accounts-disabled" data-testid="accounts-disabled" prop:value=disabled on:change=move |ev| disabled.set(event_target_value(&ev))>
                    <option value="">{move || i18n.t("全部", "All")}</option>
                    <option value="false" selected=move || disabled.get() == "false">{move || i18n.t("正常", "Active")}</option>
                    <option value="true" selected=move || disabled.get() == "true">{move || i18n.t("已停用", "Disabled")}</option>
                </select>
            </div>
            <div class="filter-actions">
                <button type="submit" class="btn btn-primary" data-testid="accounts-apply">
                    {move || i18n.t("搜索", "Search")}
                </button>
                <button type="button" class="btn" data-testid="accounts-reset" on:click=reset>
                    {move || i18n.t("重置", "Reset")}
                </button>
            </div>
        </form>
        <Transition fallback=move || {
            view! { <p class="loading" data-testid="loading" role="status">{i18n.t("正在加载账户…", "Loading accounts…")}</p> }
        }>{list}</Transition>
    }
}

/// A disable / enable / role change waiting for its confirmation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Change {
    Disable,
    Enable,
    GrantAdmin,
    RevokeAdmin,
}

impl Change {
    fn path(self) -> &'static str {
        match self {
            Change::Disable => "disable",
            Change::Enable => "enable",
            Change::GrantAdmin => "grant-admin",
            Change::RevokeAdmin => "revoke-admin",
        }
    }

    fn question(self, i18n: I18n) -> (&'static str, &'static str) {
        match self {
            Change::Disable => (
                i18n.t("停用账户", "Disable the account "),
                i18n.t(
                    "？它将无法登录，已有的登录令牌立即失效；订单和余额保持不变。",
                    "? It cannot sign in and every token it holds stops working at once; its orders and balances stay as they are.",
                ),
            ),
            Change::Enable => (
                i18n.t("启用账户", "Enable the account "),
                i18n.t("？它可以重新登录。", "? It can sign in again."),
            ),
            Change::GrantAdmin => (
                i18n.t("授予管理员权限给", "Grant the admin role to "),
                i18n.t(
                    "？该账户需要重新登录。",
                    "? The account signs in again to use it.",
                ),
            ),
            Change::RevokeAdmin => (
                i18n.t("撤销管理员权限：", "Revoke the admin role of "),
                i18n.t(
                    "？该账户需要重新登录。",
                    "? The account signs in again.",
                ),
            ),
        }
    }

    fn done(self, i18n: I18n) -> &'static str {
        match self {
            Change::Disable => i18n.t("账户已停用。", "The account is disabled."),
            Change::Enable => i18n.t("账户已启用。", "The account is enabled."),
            Change::GrantAdmin => i18n.t("已授予管理员权限。", "The admin role is granted."),
            Change::RevokeAdmin => i18n.t("已撤销管理员权限。", "The admin role is revoked."),
        }
    }
}

#[component]
pub fn AccountPage(id: String) -> impl IntoView {
    let i18n = use_i18n();
    let api = expect_context::<Api>();
    let Nav(route) = expect_context::<Nav>();
    let id = StoredValue::new(id);

    let detail = LocalResource::new(move || {
        let id = id.get_value();
        async move { api.admin_account(&id).await }
    });
    // A tier to grant with days, for an account without a membership.
    let catalog = LocalResource::new(move || async move { api.admin_products().await });
    // Outlive the reload that follows an action.
    let result = RwSignal::new(None::<String>);

    let on_adjusted = Callback::new(move |reply: AdjustResponse| {
        result.set(Some(format!(
            "{} {} · {}",
            i18n.t("已调整。当前积分：", "Adjusted. Points now:"),
            reply.account.points_balance,
            membership_text(i18n, &reply.account)
        )));
        detail.refetch();
    });
    let on_changed = Callback::new(move |(change, _account): (Change, AccountSummary)| {
        result.set(Some(change.done(i18n).to_owned()));
        detail.refetch();
    });

    let body = move || {
        Suspend::new(async move {
            match detail.await {
                Ok(d) => {
                    view! { <AccountBody detail=d catalog on_adjusted on_changed /> }.into_any()
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
        <div class="admin-detail" data-testid="account-page" data-account-id=id.get_value()>
            <div class="page-head">
                <button type="button" class="btn btn-ghost" data-testid="account-back" on:click=move |_| route.set(Route::Admin(AdminView::Accounts))>
                    {move || i18n.t("← 返回账户列表", "← Back to accounts")}
                </button>
                <button type="button" class="btn btn-ghost" data-testid="account-refresh" on:click=move |_| detail.refetch()>
                    {move || i18n.t("刷新", "Refresh")}
                </button>
            </div>
            <div aria-live="polite">
                {move || result.get().map(|text| view! {
                    <p class="alert alert-success" data-testid="account-result">{text}</p>
                })}
            </div>
            <Transition fallback=move || {
                view! { <p class="loading" data-testid="loading" role="status">{i18n.t("正在加载账户…", "Loading the account…")}</p> }
            }>{body}</Transition>
        </div>
    }
}

#[component]
fn AccountBody(
    detail: AccountDetail,
    catalog: LocalResource<Result<api_types::console::AdminProductList, ApiError>>,
    on_adjusted: Callback<AdjustResponse>,
    on_changed: Callback<(Change, AccountSummary)>,
) -> impl IntoView {
    let i18n = use_i18n();
    let a = detail.account.clone();
    let created_at = a.created_at;
    let disabled_at = a.disabled_at;
    let role_code = a.role.clone();
    let summary = a.clone();
    let links = if detail.links.is_empty() {
        view! { <span class="muted">"—"</span> }.into_any()
    } else {
        let items = detail
            .links
            .iter()
            .map(|l| view! { <li data-testid="account-link"><code>{l.app_id.clone()}</code>" / "<code>{l.external_id.clone()}</code></li> })
            .collect_view();
        view! { <ul class="plain-list">{items}</ul> }.into_any()
    };
    let orders_total = detail.orders_total;

    view! {
        <h1>{move || i18n.t("账户 ", "Account ")}<span data-testid="account-username">{a.username.clone()}</span></h1>
        <div class="card">
            <dl class="facts facts-wide">
                <dt>{move || i18n.t("账户 ID", "Account id")}</dt>
                <dd><code data-testid="account-id">{a.id.clone()}</code></dd>
                <dt>{move || i18n.t("邮箱", "Email")}</dt>
                <dd>{a.email.clone()}</dd>
                <dt>{move || i18n.t("角色", "Role")}</dt>
                <dd data-testid="account-role" data-role=a.role.clone()>{move || role_label(i18n, &role_code)}</dd>
                <dt>{move || i18n.t("积分", "Points")}</dt>
                <dd data-testid="account-points">{a.points_balance}</dd>
                <dt>{move || i18n.t("会员", "Membership")}</dt>
                <dd data-testid="account-membership">{move || membership_text(i18n, &summary)}</dd>
                <dt>{move || i18n.t("状态", "Status")}</dt>
                <dd data-testid="account-status" data-disabled=disabled_at.is_some().to_string()>
                    {match disabled_at {
                        Some(at) => view! {
                            <span class="badge badge-review" data-testid="account-disabled-badge">{move || i18n.t("已停用", "Disabled")}</span>
                            " "<span class="muted">{move || local_datetime(&at, i18n.lang())}</span>
                        }.into_any(),
                        None => view! { <span class="badge badge-paid">{move || i18n.t("正常", "Active")}</span> }.into_any(),
                    }}
                </dd>
                <dt>{move || i18n.t("注册时间", "Created")}</dt>
                <dd>{move || local_datetime(&created_at, i18n.lang())}</dd>
                <dt>{move || i18n.t("应用用户", "App users")}</dt>
                <dd>{links}</dd>
            </dl>
        </div>
        <AccountActions account=a.clone() on_changed />
        <AdjustForm account=a.clone() catalog on_done=on_adjusted />
        <h2>{move || format!("{} ({orders_total})", i18n.t("订单", "Orders"))}</h2>
        <Orders orders=detail.orders />
        <h2>{move || i18n.t("退款", "Refunds")}</h2>
        <Refunds refunds=detail.refunds />
        <h2>{move || i18n.t("余额流水", "Balance ledger")}</h2>
        <Ledger entries=detail.ledger />
        <h2>{move || i18n.t("管理操作记录", "Admin history")}</h2>
        {if detail.audit.is_empty() {
            view! { <p class="empty" data-testid="account-audit-empty">{move || i18n.t("没有管理操作。", "No admin actions.")}</p> }.into_any()
        } else {
            view! { <AuditEntries entries=detail.audit testid="account-audit-row" /> }.into_any()
        }}
    }
}

#[component]
fn AccountActions(
    account: AccountSummary,
    on_changed: Callback<(Change, AccountSummary)>,
) -> impl IntoView {
    let i18n = use_i18n();
    let api = expect_context::<Api>();
    let id = StoredValue::new(account.id.clone());
    let username = StoredValue::new(account.username.clone());
    let disabled = account.disabled_at.is_some();
    let admin = account.role == "admin";
    let pending = RwSignal::new(None::<Change>);
    let reason = RwSignal::new(String::new());
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<ApiError>);

    let ask = move |change: Change| {
        error.set(None);
        reason.set(String::new());
        pending.set(Some(change));
    };
    let confirm = move |_| {
        let Some(change) = pending.get_untracked() else {
            return;
        };
        if busy.get_untracked() {
            return;
        }
        busy.set(true);
        error.set(None);
        let why = reason.get_untracked().trim().to_owned();
        let req = ReasonRequest {
            reason: (!why.is_empty()).then_some(why),
        };
        spawn_local(async move {
            let result = api
                .account_action(&id.get_value(), change.path(), &req)
                .await;
            let _ = busy.try_set(false);
            match result {
                Ok(account) => {
                    let _ = pending.try_set(None);
                    on_changed.run((change, account));
                }
                Err(err) => {
                    let _ = error.try_set(Some(err));
                }
            }
        });
    };
    let question = move || {
        pending.get().map(|c| {
            let (before, after) = c.question(i18n);
            format!("{before}「{}」{after}", username.get_value())
        })
    };

    view! {
        <section class="card account-actions" aria-labelledby="account-actions-title">
            <h2 id="account-actions-title">{move || i18n.t("账户操作", "Account actions")}</h2>
            <div class="actions actions-start">
                {if disabled {
                    view! {
                        <button type="button" class="btn" data-testid="account-enable" on:click=move |_| ask(Change::Enable)>
                            {move || i18n.t("启用…", "Enable…")}
                        </button>
                    }.into_any()
                } else {
                    view! {
                        <button type="button" class="btn btn-danger" data-testid="account-disable" on:click=move |_| ask(Change::Disable)>
                            {move || i18n.t("停用…", "Disable…")}
                        </button>
                    }.into_any()
                }}
                {if admin {
                    view! {
                        <button type="button" class="btn" data-testid="account-revoke-admin" on:click=move |_| ask(Change::RevokeAdmin)>
                            {move || i18n.t("撤销管理员…", "Revoke admin…")}
                        </button>
                    }.into_any()
                } else {
                    view! {
                        <button type="button" class="btn" data-testid="account-grant-admin" on:click=move |_| ask(Change::GrantAdmin)>
                            {move || i18n.t("设为管理员…", "Grant admin…")}
                        </button>
                    }.into_any()
                }}
            </div>
            <Show when=move || pending.get().is_some()>
                <div class="alert alert-warn confirm" role="group" aria-labelledby="account-confirm-text" data-testid="account-confirm-box">
                    <p id="account-confirm-text">{question}</p>
                    <div class="field">
                        <label for="account-action-reason">{move || i18n.t("原因（可选）", "Reason (optional)")}</label>
                        <input id="account-action-reason" data-testid="account-action-reason" type="text" maxlength="200" autocomplete="off"
                            prop:value=reason on:input=move |ev| reason.set(event_target_value(&ev)) />
                    </div>
                    <div class="actions actions-start">
                        <button type="button" class="btn btn-danger" data-testid="account-confirm" disabled=move || busy.get() on:click=confirm>
                            {move || if busy.get() { i18n.t("正在处理…", "Working…") } else { i18n.t("确认", "Confirm") }}
                        </button>
                        <button type="button" class="btn" data-testid="account-cancel" disabled=move || busy.get()
                            on:click=move |_| { pending.set(None); error.set(None); }>
                            {move || i18n.t("取消", "Cancel")}
                        </button>
                    </div>
                </div>
            </Show>
            <ConsoleError error=error testid="account-action-error" />
        </section>
    }
}

#[component]
fn AdjustForm(
    account: AccountSummary,
    catalog: LocalResource<Result<api_types::console::AdminProductList, ApiError>>,
    on_done: Callback<AdjustResponse>,
) -> impl IntoView {
    let i18n = use_i18n();
    let api = expect_context::<Api>();
    let id = StoredValue::new(account.id.clone());
    let needs_tier = !membership_active(&account);
    let points = RwSignal::new(String::new());
    let days = RwSignal::new(String::new());
    let tier_product = RwSignal::new(String::new());
    let reason = RwSignal::new(String::new());
    let invalid = RwSignal::new(false);
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<ApiError>);

    let submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        if busy.get_untracked() {
            return;
        }
        let (Some(points_n), Some(days_n)) = (
            parse_int(&points.get_untracked()),
            parse_int(&days.get_untracked()),
        ) else {
            invalid.set(true);
            return;
        };
        invalid.set(false);
        let req = AdjustRequest {
            points: points_n,
            membership_days: days_n,
            tier_product_id: tier_product.get_untracked().parse().ok(),
            reason: reason.get_untracked().trim().to_owned(),
        };
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            let result = api.adjust_account(&id.get_value(), &req).await;
            let _ = busy.try_set(false);
            match result {
                Ok(reply) => on_done.run(reply),
                Err(err) => {
                    let _ = error.try_set(Some(err));
                }
            }
        });
    };

    // The membership products on sale, to pick the tier granted with the days.
    let tiers = move || {
        Suspend::new(async move {
            let options = match catalog.await {
                Ok(list) => list
                    .items
                    .into_iter()
                    .filter(|p| p.kind == ProductKind::Membership && p.active)
                    .map(|p| {
                        let label = format!(
                            "{} ({})",
                            p.name,
                            p.membership_tier.clone().unwrap_or_default()
                        );
                        view! { <option value=p.id.to_string()>{label}</option> }
                    })
                    .collect_view()
                    .into_any(),
                Err(_) => ().into_any(),
            };
            view! {
                <div class="field">
                    <label for="adjust-tier-product">{move || i18n.t("授予的会员等级（无会员时必选）", "Tier to grant (accounts without a membership)")}</label>
                    <select id="adjust-tier-product" data-testid="adjust-tier-product" prop:value=tier_product
                        on:change=move |ev| tier_product.set(event_target_value(&ev))>
                        <option value="">{move || i18n.t("不授予", "None")}</option>
                        {options}
                    </select>
                </div>
            }
        })
    };

    view! {
        <section class="card adjust" aria-labelledby="adjust-title" data-testid="adjust-section">
            <h2 id="adjust-title">{move || i18n.t("调整积分 / 会员", "Adjust points / membership")}</h2>
            <form class="filters" data-testid="adjust-form" on:submit=submit>
                <div class="field">
                    <label for="adjust-points">{move || i18n.t("积分（正数增加，负数扣除）", "Points (+ add, − take)")}</label>
                    <input id="adjust-points" data-testid="adjust-points" type="number" step="1" autocomplete="off"
                        prop:value=points on:input=move |ev| points.set(event_target_value(&ev)) />
                </div>
                <div class="field">
                    <label for="adjust-days">{move || i18n.t("会员天数（正数增加，负数扣除）", "Membership days (+ add, − take)")}</label>
                    <input id="adjust-days" data-testid="adjust-days" type="number" step="1" autocomplete="off"
                        prop:value=days on:input=move |ev| days.set(event_target_value(&ev)) />
                </div>
                {needs_tier.then(|| view! { <Suspense fallback=|| ()>{tiers}</Suspense> })}
                <div class="field field-wide">
                    <label for="adjust-reason">{move || i18n.t("原因（必填，记入流水）", "Reason (required, written to the ledger)")}</label>
                    <input id="adjust-reason" data-testid="adjust-reason" type="text" maxlength="200" autocomplete="off"
                        prop:value=reason on:input=move |ev| reason.set(event_target_value(&ev)) />
                </div>
                <Show when=move || invalid.get()>
                    <p class="field-error" role="alert" data-testid="adjust-invalid">
                        {move || i18n.t("积分和天数须为整数。", "Points and days must be whole numbers.")}
                    </p>
                </Show>
                <div class="filter-actions">
                    <button type="submit" class="btn btn-primary" data-testid="adjust-submit" disabled=move || busy.get()>
                        {move || if busy.get() { i18n.t("正在调整…", "Adjusting…") } else { i18n.t("调整", "Adjust") }}
                    </button>
                </div>
            </form>
            <ConsoleError error=error testid="adjust-error" />
        </section>
    }
}

#[component]
fn Orders(orders: Vec<AdminOrder>) -> impl IntoView {
    let i18n = use_i18n();
    let Nav(route) = expect_context::<Nav>();
    if orders.is_empty() {
        return view! { <p class="empty" data-testid="account-orders-empty">{move || i18n.t("没有订单。", "No orders.")}</p> }.into_any();
    }
    let rows = orders
        .into_iter()
        .map(|item| {
            let order = item.order;
            let status = order.status;
            let reason = order.cancel_reason;
            let method = order.payment_method;
            let created_at = order.created_at;
            let no = order.order_no.clone();
            let open = {
                let no = no.clone();
                move |_| route.set(Route::Admin(AdminView::Order(no.clone())))
            };
            view! {
                <tr data-testid="account-order-row" data-order-no=no.clone() data-status=status.as_str()>
                    <td>
                        <button type="button" class="link" data-testid="account-open-order" on:click=open>
                            <code>{no.clone()}</code>
                        </button>
                    </td>
                    <td>{order.product_name}{(order.quantity > 1).then(|| format!(" × {}", order.quantity))}</td>
                    <td class="num">{yuan(order.amount_fen)}</td>
                    <td>{move || method_label(i18n, method)}</td>
                    <td><span class=format!("badge badge-{}", status.as_str())>{move || status_label(i18n, status, reason)}</span></td>
                    <td class="nowrap">{move || local_datetime(&created_at, i18n.lang())}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <div class="table-scroll" role="region" tabindex="0" aria-label=move || i18n.t("订单（可横向滚动）", "Orders (scrolls sideways)")>
            <table class="data" data-testid="account-orders">
                <thead>
                    <tr>
                        <th scope="col">{move || i18n.t("订单号", "Order no.")}</th>
                        <th scope="col">{move || i18n.t("商品", "Product")}</th>
                        <th scope="col" class="num">{move || i18n.t("金额", "Amount")}</th>
                        <th scope="col">{move || i18n.t("方式", "Provider")}</th>
                        <th scope="col">{move || i18n.t("状态", "Status")}</th>
                        <th scope="col">{move || i18n.t("创建时间", "Created")}</th>
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
    }
    .into_any()
}

#[component]
fn Refunds(refunds: Vec<RefundResponse>) -> impl IntoView {
    let i18n = use_i18n();
    if refunds.is_empty() {
        return view! { <p class="empty" data-testid="account-refunds-empty">{move || i18n.t("没有退款。", "No refunds.")}</p> }.into_any();
    }
    let rows = refunds
        .into_iter()
        .map(|r| {
            let status = r.status;
            let created_at = r.created_at;
            view! {
                <tr data-testid="account-refund-row" data-status=status.as_str()>
                    <td><code>{r.out_refund_no}</code></td>
                    <td><code>{r.order_no}</code></td>
                    <td class="num">{yuan(r.amount_fen)}</td>
                    <td><span class=format!("badge badge-refund-{}", status.as_str())>{move || refund_status_label(i18n, status)}</span></td>
                    <td>{r.reason.unwrap_or_default()}</td>
                    <td class="nowrap">{move || local_datetime(&created_at, i18n.lang())}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <div class="table-scroll" role="region" tabindex="0" aria-label=move || i18n.t("退款列表", "Refunds")>
            <table class="data" data-testid="account-refunds">
                <thead>
                    <tr>
                        <th scope="col">{move || i18n.t("退款单号", "Refund no.")}</th>
                        <th scope="col">{move || i18n.t("订单号", "Order no.")}</th>
                        <th scope="col" class="num">{move || i18n.t("金额", "Amount")}</th>
                        <th scope="col">{move || i18n.t("状态", "Status")}</th>
                        <th scope="col">{move || i18n.t("原因", "Reason")}</th>
                        <th scope="col">{move || i18n.t("申请时间", "Requested")}</th>
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
    }
    .into_any()
}

fn ledger_reason_label(i18n: I18n, reason: &str) -> String {
    match reason {
        "purchase" => i18n.t("购买", "Purchase").to_owned(),
        "upgrade" => i18n.t("升级", "Upgrade").to_owned(),
        "clawback" => i18n.t("退款扣回", "Claw-back").to_owned(),
        "upgrade_reverted" => i18n.t("升级撤销", "Upgrade reverted").to_owned(),
        "opening_balance" => i18n.t("期初余额", "Opening balance").to_owned(),
        "adjustment" => i18n.t("人工调整", "Adjustment").to_owned(),
        other => other.to_owned(),
    }
}

/// Signed seconds as whole days, e.g. `+30d` or `-2d 5h`.
fn days_text(secs: i64) -> String {
    if secs == 0 {
        return "—".to_owned();
    }
    let sign = if secs < 0 { "-" } else { "+" };
    let s = secs.unsigned_abs();
    let hours = (s % 86_400) / 3_600;
    if hours == 0 {
        format!("{sign}{}d", s / 86_400)
    } else {
        format!("{sign}{}d {hours}h", s / 86_400)
    }
}

#[component]
fn Ledger(entries: Vec<BalanceEntry>) -> impl IntoView {
    let i18n = use_i18n();
    if entries.is_empty() {
        return view! { <p class="empty" data-testid="account-ledger-empty">{move || i18n.t("没有余额变动。", "No balance changes.")}</p> }.into_any();
    }
    let rows = entries
        .into_iter()
        .map(|e| {
            let created_at = e.created_at;
            let reason = e.reason.clone();
            let reason_code = e.reason.clone();
            let tier = match (&e.tier_before, &e.tier_after) {
                (b, a) if b == a => a.clone().unwrap_or_default(),
                (b, a) => format!(
                    "{} → {}",
                    b.clone().unwrap_or_else(|| "—".to_owned()),
                    a.clone().unwrap_or_else(|| "—".to_owned())
                ),
            };
            view! {
                <tr data-testid="account-ledger-row" data-reason=reason>
                    <td class="nowrap">{move || local_datetime(&created_at, i18n.lang())}</td>
                    <td>{move || ledger_reason_label(i18n, &reason_code)}</td>
                    <td class="wrap" data-testid="ledger-note">{e.note.clone().unwrap_or_default()}</td>
                    <td class="num">{format!("{:+}", e.delta_points)}</td>
                    <td class="num">{e.points_after}</td>
                    <td class="num">{days_text(e.delta_membership_secs)}</td>
                    <td>{tier}</td>
                    <td><code>{e.order_no.or(e.out_refund_no).unwrap_or_default()}</code></td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <div class="table-scroll" role="region" tabindex="0" aria-label=move || i18n.t("余额流水（可横向滚动）", "Balance ledger (scrolls sideways)")>
            <table class="data" data-testid="account-ledger">
                <thead>
                    <tr>
                        <th scope="col">{move || i18n.t("时间", "Time")}</th>
                        <th scope="col">{move || i18n.t("类型", "Kind")}</th>
                        <th scope="col">{move || i18n.t("备注", "Note")}</th>
                        <th scope="col" class="num">{move || i18n.t("积分变动", "Points")}</th>
                        <th scope="col" class="num">{move || i18n.t("积分余额", "Balance")}</th>
                        <th scope="col" class="num">{move || i18n.t("会员时长", "Membership")}</th>
                        <th scope="col">{move || i18n.t("会员等级", "Tier")}</th>
                        <th scope="col">{move || i18n.t("订单 / 退款", "Order / refund")}</th>
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
    }
    .into_any()
}

#[cfg(test)]
mod tests {
    use super::days_text;

    #[test]
    fn membership_changes_read_as_days() {
        assert_eq!(days_text(0), "—");
        assert_eq!(days_text(30 * 86_400), "+30d");
        assert_eq!(days_text(-(2 * 86_400 + 5 * 3_600)), "-2d 5h");
    }
}
