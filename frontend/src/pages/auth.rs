//! Sign in and sign up. Only one form is mounted at a time, so the input ids
//! (`username`, `password`, `email`) stay unique.

use api_types::auth::{LoginRequest, RegisterRequest};
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::{Api, ApiError};
use crate::components::error_box::ErrorBox;
use crate::components::lang_toggle::LangToggle;
use crate::i18n::{use_i18n, I18n};
use crate::state::{Nav, Notice, Route, Session};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    SignIn,
    SignUp,
}

/// A non-error line above the form; rendered in the current language.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Info {
    SignedOut,
    Registered,
    MissingCredentials,
    MissingFields,
}

impl Info {
    fn text(self, i18n: I18n) -> &'static str {
        match self {
            Info::SignedOut => i18n.t("已退出登录。", "You have signed out."),
            Info::Registered => i18n.t("注册成功，请登录。", "Account created. Please sign in."),
            Info::MissingCredentials => {
                i18n.t("请输入用户名和密码。", "Enter your username and password.")
            }
            Info::MissingFields => i18n.t("请填写所有字段。", "Please fill in every field."),
        }
    }
}

#[component]
pub fn AuthPage() -> impl IntoView {
    let i18n = use_i18n();
    let session = expect_context::<Session>();
    let api = expect_context::<Api>();
    let Nav(route) = expect_context::<Nav>();

    let mode = RwSignal::new(Mode::SignIn);
    let username = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let email = RwSignal::new(String::new());
    let busy = RwSignal::new(false);
    let notice = session.notice.get_untracked();
    let error =
        RwSignal::new((notice == Some(Notice::SessionExpired)).then_some(ApiError::SessionExpired));
    let info = RwSignal::new((notice == Some(Notice::SignedOut)).then_some(Info::SignedOut));

    let switch_to = move |next: Mode| {
        mode.set(next);
        error.set(None);
        info.set(None);
    };

    // Signs in and starts on the product list; shared by both forms.
    let sign_in = move |req: LoginRequest| async move {
        match api.login(&req).await {
            Ok(reply) => {
                route.set(Route::Products);
                session.sign_in(reply);
                Ok(())
            }
            Err(err) => Err(err),
        }
    };

    let on_login = move |ev: SubmitEvent| {
        ev.prevent_default();
        if busy.get_untracked() {
            return;
        }
        let req = LoginRequest {
            username: username.get_untracked().trim().to_owned(),
            password: password.get_untracked(),
        };
        if req.username.is_empty() || req.password.is_empty() {
            error.set(None);
            info.set(Some(Info::MissingCredentials));
            return;
        }
        busy.set(true);
        error.set(None);
        info.set(None);
        spawn_local(async move {
            if let Err(err) = sign_in(req).await {
                let _ = error.try_set(Some(err));
                let _ = busy.try_set(false);
            }
        });
    };

    let on_register = move |ev: SubmitEvent| {
        ev.prevent_default();
        if busy.get_untracked() {
            return;
        }
        let req = RegisterRequest {
            username: username.get_untracked().trim().to_owned(),
            password: password.get_untracked(),
            email: email.get_untracked().trim().to_owned(),
        };
        if req.username.is_empty() || req.password.is_empty() || req.email.is_empty() {
            error.set(None);
            info.set(Some(Info::MissingFields));
            return;
        }
        busy.set(true);
        error.set(None);
        info.set(None);
        spawn_local(async move {
            if let Err(err) = api.register(&req).await {
                let _ = error.try_set(Some(err));
                let _ = busy.try_set(false);
                return;
            }
            let login = LoginRequest {
                username: req.username,
                password: req.password,
            };
            if sign_in(login).await.is_err() {
                // The account exists; let the user sign in by hand.
                let _ = mode.try_set(Mode::SignIn);
                let _ = info.try_set(Some(Info::Registered));
                let _ = busy.try_set(false);
            }
        });
    };

    let username_field = move |autocomplete: &'static str| {
        view! {
            <div class="field">
                <label for="username">{move || i18n.t("用户名", "Username")}</label>
                <input
                    id="username"
                    name="username"
                    type="text"
                    autocomplete=autocomplete
                    autocapitalize="none"
                    spellcheck="false"
                    required
                    bind:value=username
                />
            </div>
        }
    };
    let password_field = move |autocomplete: &'static str| {
        view! {
            <div class="field">
                <label for="password">{move || i18n.t("密码", "Password")}</label>
                <input
                    id="password"
                    name="password"
                    type="password"
                    autocomplete=autocomplete
                    required
                    bind:value=password
                />
            </div>
        }
    };

    let form = move || {
        match mode.get() {
        Mode::SignIn => view! {
            <form class="auth-form" data-testid="login-form" novalidate on:submit=on_login>
                {username_field("username")}
                {password_field("current-password")}
                <button type="submit" class="btn btn-primary btn-block" disabled=move || busy.get()>
                    {move || if busy.get() { i18n.t("登录中…", "Signing in…") } else { i18n.t("登录", "Sign in") }}
                </button>
            </form>
        }
        .into_any(),
        Mode::SignUp => view! {
            <form class="auth-form" data-testid="register-form" novalidate on:submit=on_register>
                {username_field("username")}
                <p class="hint">
                    {move || i18n.t("3–32 位：字母、数字、_ - .", "3–32 characters: letters, digits, _ - .")}
                </p>
                {password_field("new-password")}
                <p class="hint">{move || i18n.t("至少 8 位。", "At least 8 characters.")}</p>
                <div class="field">
                    <label for="email">{move || i18n.t("邮箱", "Email")}</label>
                    <input
                        id="email"
                        name="email"
                        type="email"
                        autocomplete="email"
                        required
                        bind:value=email
                    />
                </div>
                <button type="submit" class="btn btn-primary btn-block" disabled=move || busy.get()>
                    {move || if busy.get() { i18n.t("注册中…", "Creating account…") } else { i18n.t("注册", "Sign up") }}
                </button>
            </form>
        }
        .into_any(),
    }
    };

    view! {
        <div class="auth-page">
            <div class="auth-top">
                <span class="brand">"fenpay"</span>
                <LangToggle />
            </div>
            <section class="card auth-card">
                <div class="tabs" role="tablist">
                    <button
                        type="button"
                        role="tab"
                        class="tab"
                        class:active=move || mode.get() == Mode::SignIn
                        aria-selected=move || (mode.get() == Mode::SignIn).to_string()
                        data-testid="tab-login"
                        on:click=move |_| switch_to(Mode::SignIn)
                    >
                        {move || i18n.t("登录", "Sign in")}
                    </button>
                    <button
                        type="button"
                        role="tab"
                        class="tab"
                        class:active=move || mode.get() == Mode::SignUp
                        aria-selected=move || (mode.get() == Mode::SignUp).to_string()
                        data-testid="tab-register"
                        on:click=move |_| switch_to(Mode::SignUp)
                    >
                        {move || i18n.t("注册", "Sign up")}
                    </button>
                </div>
                {move || {
                    info.get()
                        .map(|i| view! { <p class="alert alert-info" role="status" data-testid="notice">{i.text(i18n)}</p> })
                }}
                <ErrorBox error=error />
                {form}
            </section>
        </div>
    }
}
