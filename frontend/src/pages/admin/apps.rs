//! Merchant apps: the list, a creation form, and per app its settings, key and webhook
//! secret rotation and revocation. Secrets are shown once, right after the call that made
//! them, with a warning to copy them now.

use api_types::apps::{AppFulfilment, AppKeyMode, AppView, CreateAppRequest, UpdateAppRequest};
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::{Api, ApiError};
use crate::components::error_box::ErrorBox;
use crate::i18n::{use_i18n, I18n};

/// `a.com, *.b.com` -> `["a.com", "*.b.com"]` (the server checks each).
pub fn split_hosts(text: &str) -> Vec<String> {
    text.split([',', '\n', ' '])
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
        .collect()
}

fn fulfilment_label(i18n: I18n, f: AppFulfilment) -> &'static str {
    match f {
        AppFulfilment::Builtin => i18n.t("内置（积分/会员）", "Built-in (points, memberships)"),
        AppFulfilment::Webhook => i18n.t("由应用处理（Webhook）", "By the app (webhook)"),
    }
}

/// Secrets to show once: (label in both languages, value, test id).
type Secrets = Vec<(&'static str, &'static str, String, &'static str)>;

/// An action that needs a second click.
#[derive(Clone, Debug, PartialEq)]
enum Pending {
    Revoke { id: String, name: String },
    RotateKey { id: String, name: String },
    RotateSecret { id: String, name: String },
}

#[component]
pub fn AppsView() -> impl IntoView {
    let i18n = use_i18n();
    let api = expect_context::<Api>();

    let apps = LocalResource::new(move || async move { api.admin_apps().await });
    let secrets = RwSignal::new(None::<(String, Secrets)>);
    let pending = RwSignal::new(None::<Pending>);
    let editing = RwSignal::new(None::<AppView>);
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<ApiError>);

    let show_secrets = move |title: String, list: Secrets| {
        secrets.set(Some((title, list)));
        if let Some(w) = web_sys::window() {
            w.scroll_to_with_x_and_y(0.0, 0.0);
        }
    };

    let confirm = move |_| {
        let Some(action) = pending.get_untracked() else {
            return;
        };
        if busy.get_untracked() {
            return;
        }
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            let result: Result<Option<(String, Secrets)>, ApiError> = match &action {
                Pending::Revoke { id, .. } => api.revoke_app(id).await.map(|_| None),
                Pending::RotateKey { id, name } => api.rotate_app_key(id).await.map(|k| {
                    Some((
                        name.clone(),
                        vec![("新 API 密钥", "New API key", k.api_key, "secret-api-key")],
                    ))
                }),
                Pending::RotateSecret { id, name } => {
                    api.rotate_app_webhook_secret(id).await.map(|s| {
                        Some((
                            name.clone(),
                            vec![(
                                "新 Webhook 签名密钥",
                                "New webhook secret",
                                s.webhook_secret,
                                "secret-webhook",
                            )],
                        ))
                    })
                }
            };
            let _ = busy.try_set(false);
            match result {
                Ok(shown) => {
                    let _ = pending.try_set(None);
                    if let Some((title, list)) = shown {
                        show_secrets(title, list);
                    }
                    apps.refetch();
                }
                Err(err) => {
                    let _ = error.try_set(Some(err));
                }
            }
        });
    };

    let confirm_text = move || match pending.get() {
        Some(Pending::Revoke { name, .. }) => format!(
            "{}「{name}」{}",
            i18n.t("吊销应用", "Revoke the app "),
            i18n.t(
                "？其 API 密钥立即失效，且无法恢复。",
                "? Its API key stops working at once, for good."
            )
        ),
        Some(Pending::RotateKey { name, .. }) => format!(
            "{}「{name}」{}",
            i18n.t("为应用", "Replace the API key of "),
            i18n.t(
                "更换 API 密钥？旧密钥立即失效。",
                "? The old key stops working at once."
            )
        ),
        Some(Pending::RotateSecret { name, .. }) => format!(
            "{}「{name}」{}",
            i18n.t("为应用", "Replace the webhook secret of "),
            i18n.t(
                "更换 Webhook 签名密钥？之后的事件用新密钥签名。",
                "? Events are signed with the new secret from now on."
            )
        ),
        None => String::new(),
    };

    let table = move || {
        Suspend::new(async move {
            match apps.await {
                Ok(list) if list.items.is_empty() => view! {
                    <p class="empty" data-testid="apps-empty">
                        {move || i18n.t("还没有接入应用。", "No apps yet.")}
                    </p>
                }
                .into_any(),
                Ok(list) => {
                    let rows = list
                        .items
                        .into_iter()
                        .map(|a| {
                            let live = !a.revoked;
                            let mode = a.mode;
                            let fulfilment = a.fulfilment;
                            let hosts = if a.return_hosts.is_empty() {
                                "—".to_owned()
                            } else {
                                a.return_hosts.join(", ")
                            };
                            let epay = a.epay_pid.map(|pid| pid.to_string());
                            let epay_on = a.epay_enabled;
                            let (id, name) = (a.id.clone(), a.name.clone());
                            let (id2, name2) = (a.id.clone(), a.name.clone());
                            let (id3, name3) = (a.id.clone(), a.name.clone());
                            let edit_app = a.clone();
                            view! {
                                <tr data-testid="app-row" data-app-id=a.id.clone() data-revoked=a.revoked.to_string()>
                                    <td>
                                        <strong data-testid="app-name">{a.name.clone()}</strong>
                                        <br />
                                        <code class="muted">{a.id.clone()}</code>
                                    </td>
                                    <td>
                                        <code data-testid="app-key-prefix">{format!("{}…", a.key_prefix)}</code>
                                        <br />
                                        <span class="muted">{move || match mode {
                                            AppKeyMode::Live => i18n.t("正式", "live"),
                                            AppKeyMode::Test => i18n.t("测试", "test"),
                                        }}</span>
                                    </td>
                                    <td class="wrap" data-testid="app-webhook">{a.webhook_url.clone().unwrap_or_else(|| "—".to_owned())}</td>
                                    <td class="wrap" data-testid="app-hosts">{hosts}</td>
                                    <td>{move || fulfilment_label(i18n, fulfilment)}</td>
                                    <td data-testid="app-epay">
                                        {move || match (&epay, epay_on) {
                                            (Some(pid), true) => format!("{} {pid}", i18n.t("已开启", "on, pid")),
                                            (Some(pid), false) => format!("{} {pid}", i18n.t("已关闭", "off, pid")),
                                            (None, _) => i18n.t("未开启", "off").to_owned(),
                                        }}
                                    </td>
                                    <td>
                                        {if live {
                                            view! { <span class="badge badge-paid">{move || i18n.t("启用", "Active")}</span> }.into_any()
                                        } else {
                                            view! { <span class="badge badge-cancelled" data-testid="app-revoked">{move || i18n.t("已吊销", "Revoked")}</span> }.into_any()
                                        }}
                                    </td>
                                    <td class="actions-cell">
                                        <Show when=move || live>
                                            {
                                                let edit_app = edit_app.clone();
                                                let (id, name) = (id.clone(), name.clone());
                                                let (id2, name2) = (id2.clone(), name2.clone());
                                                let (id3, name3) = (id3.clone(), name3.clone());
                                                view! {
                                                    <button type="button" class="btn btn-small" data-testid="app-edit"
                                                        on:click=move |_| { error.set(None); editing.set(Some(edit_app.clone())) }>
                                                        {move || i18n.t("编辑", "Edit")}
                                                    </button>
                                                    <button type="button" class="btn btn-small" data-testid="app-rotate-key"
                                                        on:click=move |_| { error.set(None); pending.set(Some(Pending::RotateKey { id: id2.clone(), name: name2.clone() })) }>
                                                        {move || i18n.t("更换密钥…", "Rotate key…")}
                                                    </button>
                                                    <button type="button" class="btn btn-small" data-testid="app-rotate-secret"
                                                        on:click=move |_| { error.set(None); pending.set(Some(Pending::RotateSecret { id: id3.clone(), name: name3.clone() })) }>
                                                        {move || i18n.t("更换签名密钥…", "Rotate webhook secret…")}
                                                    </button>
                                                    <button type="button" class="btn btn-small btn-danger" data-testid="app-revoke"
                                                        on:click=move |_| { error.set(None); pending.set(Some(Pending::Revoke { id: id.clone(), name: name.clone() })) }>
                                                        {move || i18n.t("吊销…", "Revoke…")}
                                                    </button>
                                                }
                                            }
                                        </Show>
                                    </td>
                                </tr>
                            }
                        })
                        .collect_view();
                    view! {
                        <div class="table-scroll" role="region" tabindex="0" aria-label=move || i18n.t("接入应用（可横向滚动）", "Apps (scrolls sideways)")>
                            <table class="data" data-testid="apps-table">
                                <thead>
                                    <tr>
                                        <th scope="col">{move || i18n.t("应用", "App")}</th>
                                        <th scope="col">{move || i18n.t("API 密钥", "API key")}</th>
                                        <th scope="col">{move || i18n.t("Webhook 地址", "Webhook URL")}</th>
                                        <th scope="col">{move || i18n.t("允许的返回域名", "Return hosts")}</th>
                                        <th scope="col">{move || i18n.t("履约", "Fulfilment")}</th>
                                        <th scope="col">{move || i18n.t("易支付", "epay")}</th>
                                        <th scope="col">{move || i18n.t("状态", "Status")}</th>
                                        <th scope="col">{move || i18n.t("操作", "Actions")}</th>
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
                    <button type="button" class="btn" on:click=move |_| apps.refetch()>
                        {move || i18n.t("重试", "Retry")}
                    </button>
                }
                .into_any(),
            }
        })
    };

    let on_created = Callback::new(move |(title, list): (String, Secrets)| {
        show_secrets(title, list);
        apps.refetch();
    });
    let on_saved = Callback::new(move |shown: Option<(String, Secrets)>| {
        editing.set(None);
        if let Some((title, list)) = shown {
            show_secrets(title, list);
        }
        apps.refetch();
    });

    view! {
        <div class="page-head">
            <h1>{move || i18n.t("接入应用", "Apps")}</h1>
            <button type="button" class="btn btn-ghost" data-testid="apps-refresh" on:click=move |_| apps.refetch()>
                {move || i18n.t("刷新", "Refresh")}
            </button>
        </div>
        <p class="muted">
            {move || i18n.t(
                "其他应用通过 API 密钥使用 fenpay 收款：服务端 API、托管收银台、Webhook 通知和易支付兼容接口。",
                "Other applications take payments through fenpay with an API key: the server API, the hosted checkout page, webhooks and the epay-compatible gateway.",
            )}
        </p>
        {move || secrets.get().map(|(title, list)| {
            let items = list
                .into_iter()
                .map(|(zh, en, value, testid)| view! {
                    <dt>{move || i18n.t(zh, en)}</dt>
                    <dd><code class="secret" data-testid=testid>{value}</code></dd>
                })
                .collect_view();
            view! {
                <div class="alert alert-warn secrets" role="alert" data-testid="app-secrets">
                    <p><strong>{title}</strong></p>
                    <p>{move || i18n.t(
                        "请立即复制并妥善保存以下密钥：它们只显示这一次，关闭后无法再次查看。",
                        "Copy these secrets now and keep them safe: they are shown this once and cannot be viewed again.",
                    )}</p>
                    <dl class="secret-list">{items}</dl>
                    <button type="button" class="btn" data-testid="app-secrets-done" on:click=move |_| secrets.set(None)>
                        {move || i18n.t("我已复制", "I have copied them")}
                    </button>
                </div>
            }
        })}
        <Show when=move || pending.get().is_some()>
            <div class="alert alert-warn confirm" role="group" aria-labelledby="app-confirm-text" data-testid="app-confirm-box">
                <p id="app-confirm-text">{confirm_text}</p>
                <div class="actions actions-start">
                    <button type="button" class="btn btn-danger" data-testid="app-confirm" disabled=move || busy.get() on:click=confirm>
                        {move || if busy.get() { i18n.t("正在处理…", "Working…") } else { i18n.t("确认", "Confirm") }}
                    </button>
                    <button type="button" class="btn" data-testid="app-cancel" disabled=move || busy.get() on:click=move |_| pending.set(None)>
                        {move || i18n.t("取消", "Cancel")}
                    </button>
                </div>
            </div>
        </Show>
        <ErrorBox error=Signal::derive(move || error.get()) />
        {move || editing.get().map(|app| view! { <EditApp app on_saved on_cancel=Callback::new(move |()| editing.set(None)) /> })}
        <Transition fallback=move || {
            view! { <p class="loading" data-testid="loading" role="status">{i18n.t("正在加载应用…", "Loading apps…")}</p> }
        }>{table}</Transition>
        <CreateApp on_created />
    }
}

#[component]
fn CreateApp(on_created: Callback<(String, Secrets)>) -> impl IntoView {
    let i18n = use_i18n();
    let api = expect_context::<Api>();
    let name = RwSignal::new(String::new());
    let webhook = RwSignal::new(String::new());
    let hosts = RwSignal::new(String::new());
    let mode = RwSignal::new("live".to_owned());
    let fulfilment = RwSignal::new("builtin".to_owned());
    let epay = RwSignal::new(false);
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<ApiError>);

    let submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        if busy.get_untracked() {
            return;
        }
        let webhook_url = webhook.get_untracked().trim().to_owned();
        let req = CreateAppRequest {
            name: name.get_untracked(),
            webhook_url: (!webhook_url.is_empty()).then_some(webhook_url),
            mode: Some(if mode.get_untracked() == "test" {
                AppKeyMode::Test
            } else {
                AppKeyMode::Live
            }),
            return_hosts: split_hosts(&hosts.get_untracked()),
            fulfilment: Some(if fulfilment.get_untracked() == "webhook" {
                AppFulfilment::Webhook
            } else {
                AppFulfilment::Builtin
            }),
            max_amount_fen: None,
            epay: epay.get_untracked(),
        };
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            let result = api.create_app(&req).await;
            let _ = busy.try_set(false);
            match result {
                Ok(created) => {
                    let mut list: Secrets = vec![
                        ("应用 ID", "App id", created.app.id.clone(), "secret-app-id"),
                        ("API 密钥", "API key", created.api_key, "secret-api-key"),
                        (
                            "Webhook 签名密钥",
                            "Webhook secret",
                            created.webhook_secret,
                            "secret-webhook",
                        ),
                    ];
                    if let (Some(pid), Some(key)) = (created.app.epay_pid, created.epay_key) {
                        list.push((
                            "易支付商户号 (pid)",
                            "epay pid",
                            pid.to_string(),
                            "secret-epay-pid",
                        ));
                        list.push(("易支付密钥", "epay key", key, "secret-epay-key"));
                    }
                    name.set(String::new());
                    webhook.set(String::new());
                    hosts.set(String::new());
                    epay.set(false);
                    on_created.run((created.app.name, list));
                }
                Err(err) => {
                    let _ = error.try_set(Some(err));
                }
            }
        });
    };

    view! {
        <section class="card" aria-labelledby="app-create-title" data-testid="app-create">
            <h2 id="app-create-title">{move || i18n.t("新建应用", "New app")}</h2>
            <form class="filters" data-testid="app-create-form" on:submit=submit>
                <div class="field">
                    <label for="app-name">{move || i18n.t("名称", "Name")}</label>
                    <input id="app-name" type="text" maxlength="100" required autocomplete="off"
                        prop:value=name on:input=move |ev| name.set(event_target_value(&ev)) />
                </div>
                <div class="field">
                    <label for="app-webhook">{move || i18n.t("Webhook 地址（可选）", "Webhook URL (optional)")}</label>
                    <input id="app-webhook" type="url" autocomplete="off" placeholder="https://"
                        prop:value=webhook on:input=move |ev| webhook.set(event_target_value(&ev)) />
                </div>
                <div class="field">
                    <label for="app-hosts">{move || i18n.t("允许的返回域名（逗号分隔）", "Return hosts (comma-separated)")}</label>
                    <input id="app-hosts" type="text" autocomplete="off" placeholder="shop.example.com, *.example.com"
                        prop:value=hosts on:input=move |ev| hosts.set(event_target_value(&ev)) />
                </div>
                <div class="field">
                    <label for="app-mode">{move || i18n.t("密钥类型", "Key mode")}</label>
                    <select id="app-mode" prop:value=mode on:change=move |ev| mode.set(event_target_value(&ev))>
                        <option value="live">{move || i18n.t("正式 (sk_live_)", "live (sk_live_)")}</option>
                        <option value="test">{move || i18n.t("测试 (sk_test_，模拟器)", "test (sk_test_, emulator)")}</option>
                    </select>
                </div>
                <div class="field">
                    <label for="app-fulfilment">{move || i18n.t("履约方式", "Fulfilment")}</label>
                    <select id="app-fulfilment" prop:value=fulfilment on:change=move |ev| fulfilment.set(event_target_value(&ev))>
                        <option value="builtin">{move || fulfilment_label(i18n, AppFulfilment::Builtin)}</option>
                        <option value="webhook">{move || fulfilment_label(i18n, AppFulfilment::Webhook)}</option>
                    </select>
                </div>
                <div class="field field-check">
                    <input id="app-epay" type="checkbox" prop:checked=epay on:change=move |ev| epay.set(event_target_checked(&ev)) />
                    <label for="app-epay">{move || i18n.t("开启易支付兼容接口", "Enable the epay gateway")}</label>
                </div>
                <div class="filter-actions">
                    <button type="submit" class="btn btn-primary" data-testid="app-create-submit" disabled=move || busy.get()>
                        {move || if busy.get() { i18n.t("正在创建…", "Creating…") } else { i18n.t("创建", "Create") }}
                    </button>
                </div>
            </form>
            <ErrorBox error=Signal::derive(move || error.get()) />
        </section>
    }
}

#[component]
fn EditApp(
    app: AppView,
    on_saved: Callback<Option<(String, Secrets)>>,
    on_cancel: Callback<()>,
) -> impl IntoView {
    let i18n = use_i18n();
    let api = expect_context::<Api>();
    let id = StoredValue::new(app.id.clone());
    let title = StoredValue::new(app.name.clone());
    let webhook = RwSignal::new(app.webhook_url.clone().unwrap_or_default());
    let hosts = RwSignal::new(app.return_hosts.join(", "));
    let fulfilment = RwSignal::new(
        match app.fulfilment {
            AppFulfilment::Builtin => "builtin",
            AppFulfilment::Webhook => "webhook",
        }
        .to_owned(),
    );
    let epay = RwSignal::new(app.epay_enabled);
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<ApiError>);

    let submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        if busy.get_untracked() {
            return;
        }
        let url = webhook.get_untracked().trim().to_owned();
        let req = UpdateAppRequest {
            name: None,
            webhook_url: Some((!url.is_empty()).then_some(url)),
            return_hosts: Some(split_hosts(&hosts.get_untracked())),
            fulfilment: Some(if fulfilment.get_untracked() == "webhook" {
                AppFulfilment::Webhook
            } else {
                AppFulfilment::Builtin
            }),
            max_amount_fen: None,
            epay: Some(epay.get_untracked()),
        };
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            let result = api.update_app(&id.get_value(), &req).await;
            let _ = busy.try_set(false);
            match result {
                Ok(updated) => {
                    let shown = match (updated.app.epay_pid, updated.epay_key) {
                        (Some(pid), Some(key)) => Some((
                            title.get_value(),
                            vec![
                                (
                                    "易支付商户号 (pid)",
                                    "epay pid",
                                    pid.to_string(),
                                    "secret-epay-pid",
                                ),
                                ("易支付密钥", "epay key", key, "secret-epay-key"),
                            ],
                        )),
                        _ => None,
                    };
                    on_saved.run(shown);
                }
                Err(err) => {
                    let _ = error.try_set(Some(err));
                }
            }
        });
    };

    view! {
        <section class="card" aria-labelledby="app-edit-title" data-testid="app-edit-form-section">
            <h2 id="app-edit-title">{move || format!("{}「{}」", i18n.t("编辑应用", "Edit app "), title.get_value())}</h2>
            <form class="filters" data-testid="app-edit-form" on:submit=submit>
                <div class="field">
                    <label for="edit-webhook">{move || i18n.t("Webhook 地址（留空则不发送）", "Webhook URL (empty: none sent)")}</label>
                    <input id="edit-webhook" type="url" autocomplete="off"
                        prop:value=webhook on:input=move |ev| webhook.set(event_target_value(&ev)) />
                </div>
                <div class="field">
                    <label for="edit-hosts">{move || i18n.t("允许的返回域名（逗号分隔）", "Return hosts (comma-separated)")}</label>
                    <input id="edit-hosts" type="text" autocomplete="off"
                        prop:value=hosts on:input=move |ev| hosts.set(event_target_value(&ev)) />
                </div>
                <div class="field">
                    <label for="edit-fulfilment">{move || i18n.t("履约方式", "Fulfilment")}</label>
                    <select id="edit-fulfilment" prop:value=fulfilment on:change=move |ev| fulfilment.set(event_target_value(&ev))>
                        <option value="builtin" selected=move || fulfilment.get() == "builtin">{move || fulfilment_label(i18n, AppFulfilment::Builtin)}</option>
                        <option value="webhook" selected=move || fulfilment.get() == "webhook">{move || fulfilment_label(i18n, AppFulfilment::Webhook)}</option>
                    </select>
                </div>
                <div class="field field-check">
                    <input id="edit-epay" type="checkbox" prop:checked=epay on:change=move |ev| epay.set(event_target_checked(&ev)) />
                    <label for="edit-epay">{move || i18n.t("开启易支付兼容接口", "Enable the epay gateway")}</label>
                </div>
                <div class="filter-actions">
                    <button type="submit" class="btn btn-primary" data-testid="app-edit-save" disabled=move || busy.get()>
                        {move || i18n.t("保存", "Save")}
                    </button>
                    <button type="button" class="btn" data-testid="app-edit-cancel" on:click=move |_| on_cancel.run(())>
                        {move || i18n.t("取消", "Cancel")}
                    </button>
                </div>
            </form>
            <ErrorBox error=Signal::derive(move || error.get()) />
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::split_hosts;

    #[test]
    fn hosts_split_on_commas_and_spaces() {
        assert_eq!(
            split_hosts(" a.example.com,*.b.example.com  c.example.com,, "),
            vec!["a.example.com", "*.b.example.com", "c.example.com"]
        );
        assert!(split_hosts(" , ").is_empty());
    }
}
