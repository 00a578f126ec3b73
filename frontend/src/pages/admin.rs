//! Operator screens (role `admin`): every order with filters, one order's history with
//! refunds, daily totals, bill reconciliation, merchant apps, accounts, the catalog and the
//! audit log. The server enforces the role; this only hides the screens.

mod accounts;
mod apps;
mod audit;
mod catalog;
mod complaints;
mod console;
mod detail;
mod orders;
mod reconciliation;
mod stats;

use api_types::admin::{AdminOrderQuery, DeliveryStatus, RefundStatus};
use api_types::auth::Role;
use api_types::console::AccountQuery;
use api_types::Yuan;
use leptos::prelude::*;

use crate::i18n::{use_i18n, I18n};
use crate::state::{AdminView, Nav, Route, Session};

use self::accounts::{AccountPage, AccountsView};
use self::apps::AppsView;
use self::audit::AuditView;
use self::catalog::CatalogView;
use self::complaints::ComplaintsView;
use self::detail::OrderDetail;
use self::orders::OrderTable;
use self::reconciliation::{ReconciliationDetailView, ReconciliationList};
use self::stats::StatsView;

/// Orders shown per page in the operator table.
pub const PER_PAGE: i64 = 20;

/// The order filters, kept while the operator moves between the list and an order.
#[derive(Clone, Copy)]
pub struct AdminFilters {
    /// The filters the table shows (the form edits its own copy until applied).
    pub applied: RwSignal<AdminOrderQuery>,
    /// The account search, kept while the operator moves between the list and an account.
    pub accounts: RwSignal<AccountQuery>,
}

impl AdminFilters {
    pub fn new() -> Self {
        AdminFilters {
            applied: RwSignal::new(AdminOrderQuery {
                page: Some(1),
                per_page: Some(PER_PAGE),
                ..AdminOrderQuery::default()
            }),
            accounts: RwSignal::new(AccountQuery {
                page: Some(1),
                per_page: Some(PER_PAGE),
                ..AccountQuery::default()
            }),
        }
    }
}

impl Default for AdminFilters {
    fn default() -> Self {
        Self::new()
    }
}

/// `¥12.34` from fen, by integer arithmetic.
pub fn yuan(fen: i64) -> String {
    format!("¥{}", Yuan(fen))
}

pub fn refund_status_label(i18n: I18n, status: RefundStatus) -> &'static str {
    match status {
        RefundStatus::Processing => i18n.t("处理中", "Processing"),
        RefundStatus::Succeeded => i18n.t("已退款", "Succeeded"),
        RefundStatus::Failed => i18n.t("失败", "Failed"),
    }
}

pub fn delivery_status_label(i18n: I18n, status: DeliveryStatus) -> &'static str {
    match status {
        DeliveryStatus::Pending => i18n.t("待投递", "Pending"),
        DeliveryStatus::Delivered => i18n.t("已送达", "Delivered"),
        DeliveryStatus::Failed => i18n.t("投递失败", "Failed"),
    }
}

#[component]
pub fn AdminPage(view: AdminView) -> impl IntoView {
    let i18n = use_i18n();
    let session = expect_context::<Session>();
    let Nav(route) = expect_context::<Nav>();

    // Decided by the account the header loads; `None` while it is loading.
    let role = Memo::new(move |_| session.user.with(|u| u.as_ref().map(|u| u.role)));
    let on_stats = matches!(view, AdminView::Stats);
    let on_recon = matches!(
        view,
        AdminView::Reconciliations | AdminView::Reconciliation(_)
    );
    let on_apps = matches!(view, AdminView::Apps);
    let on_accounts = matches!(view, AdminView::Accounts | AdminView::Account(_));
    let on_catalog = matches!(view, AdminView::Catalog);
    let on_audit = matches!(view, AdminView::Audit);
    let on_complaints = matches!(view, AdminView::Complaints);
    let on_orders = !on_stats
        && !on_recon
        && !on_apps
        && !on_accounts
        && !on_catalog
        && !on_audit
        && !on_complaints;
    let tabs = move || {
        view! {
            <nav class="subnav" aria-label=move || i18n.t("管理功能", "Admin sections")>
                <button
                    type="button"
                    class="nav-link"
                    class:active=on_orders
                    aria-current=on_orders.then_some("page")
                    data-testid="admin-tab-orders"
                    on:click=move |_| route.set(Route::Admin(AdminView::Orders))
                >
                    {move || i18n.t("订单", "Orders")}
                </button>
                <button
                    type="button"
                    class="nav-link"
                    class:active=on_stats
                    aria-current=on_stats.then_some("page")
                    data-testid="admin-tab-stats"
                    on:click=move |_| route.set(Route::Admin(AdminView::Stats))
                >
                    {move || i18n.t("每日统计", "Daily totals")}
                </button>
                <button
                    type="button"
                    class="nav-link"
                    class:active=on_recon
                    aria-current=on_recon.then_some("page")
                    data-testid="admin-tab-reconciliation"
                    on:click=move |_| route.set(Route::Admin(AdminView::Reconciliations))
                >
                    {move || i18n.t("对账", "Reconciliation")}
                </button>
                <button
                    type="button"
                    class="nav-link"
                    class:active=on_apps
                    aria-current=on_apps.then_some("page")
                    data-testid="admin-tab-apps"
                    on:click=move |_| route.set(Route::Admin(AdminView::Apps))
                >
                    {move || i18n.t("接入应用", "Apps")}
                </button>
                <button
                    type="button"
                    class="nav-link"
                    class:active=on_accounts
                    aria-current=on_accounts.then_some("page")
                    data-testid="admin-tab-accounts"
                    on:click=move |_| route.set(Route::Admin(AdminView::Accounts))
                >
                    {move || i18n.t("账户", "Accounts")}
                </button>
                <button
                    type="button"
                    class="nav-link"
                    class:active=on_catalog
                    aria-current=on_catalog.then_some("page")
                    data-testid="admin-tab-catalog"
                    on:click=move |_| route.set(Route::Admin(AdminView::Catalog))
                >
                    {move || i18n.t("商品", "Catalog")}
                </button>
                <button
                    type="button"
                    class="nav-link"
                    class:active=on_audit
                    aria-current=on_audit.then_some("page")
                    data-testid="admin-tab-audit"
                    on:click=move |_| route.set(Route::Admin(AdminView::Audit))
                >
                    {move || i18n.t("操作记录", "Audit log")}
                </button>
                <button
                    type="button"
                    class="nav-link"
                    class:active=on_complaints
                    aria-current=on_complaints.then_some("page")
                    data-testid="admin-tab-complaints"
                    on:click=move |_| route.set(Route::Admin(AdminView::Complaints))
                >
                    {move || i18n.t("投诉", "Complaints")}
                </button>
            </nav>
        }
    };

    move || {
        match role.get() {
        None => view! {
            <p class="loading" data-testid="loading" role="status">
                {move || i18n.t("正在确认权限…", "Checking your access…")}
            </p>
        }
        .into_any(),
        Some(Role::User) => view! {
            <section class="page card no-access" data-testid="admin-no-access" role="alert">
                <h1>{move || i18n.t("没有访问权限", "No access")}</h1>
                <p>
                    {move || i18n.t(
                        "管理页面仅对管理员开放。如需访问，请联系系统管理员。",
                        "The admin pages are for administrators only. Ask an administrator if you need access.",
                    )}
                </p>
                <button type="button" class="btn btn-primary" on:click=move |_| route.set(Route::Products)>
                    {move || i18n.t("返回商品", "Back to products")}
                </button>
            </section>
        }
        .into_any(),
        Some(Role::Admin) => {
            let body = match view.clone() {
                AdminView::Orders => view! { <OrderTable /> }.into_any(),
                AdminView::Order(order_no) => view! { <OrderDetail order_no /> }.into_any(),
                AdminView::Stats => view! { <StatsView /> }.into_any(),
                AdminView::Reconciliations => view! { <ReconciliationList /> }.into_any(),
                AdminView::Reconciliation(id) => {
                    view! { <ReconciliationDetailView id /> }.into_any()
                }
                AdminView::Apps => view! { <AppsView /> }.into_any(),
                AdminView::Accounts => view! { <AccountsView /> }.into_any(),
                AdminView::Account(id) => view! { <AccountPage id /> }.into_any(),
                AdminView::Catalog => view! { <CatalogView /> }.into_any(),
                AdminView::Audit => view! { <AuditView /> }.into_any(),
                AdminView::Complaints => view! { <ComplaintsView /> }.into_any(),
            };
            view! {
                <section class="page admin-page" data-testid="admin-page">
                    {tabs()}
                    {body}
                </section>
            }
            .into_any()
        }
    }
    }
}
