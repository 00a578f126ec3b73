//! WeChat web authorisation (网页授权), the `snsapi_base` flow an official account's page
//! uses to learn the payer's openid for JSAPI payments:
//!
//! - `GET /connect/oauth2/authorize?appid=&redirect_uri=&response_type=code&scope=&state=`
//!   (on `open.weixin.qq.com`): inside WeChat, `snsapi_base` asks the user nothing and
//!   redirects straight to `redirect_uri` with `code` and `state`. A wrong appid or a
//!   `redirect_uri` outside the account's authorised domains gets WeChat's error page.
//! - `GET /sns/oauth2/access_token?appid=&secret=&code=&grant_type=authorization_code`
//!   (on `api.weixin.qq.com`): the code, once, within 5 minutes, for the openid.
//!
//! There is no WeChat user here: the emulator gives each browser one (a cookie), so the
//! same browser gets the same openid again, as the same WeChat user would.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use actix_web::cookie::Cookie;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use serde::Deserialize;
use serde_json::json;

use super::State;

/// The development AppSecret of the emulated official account (`WECHAT_PAY_APP_SECRET`).
pub const DEV_APP_SECRET: &str = "e0a1b2c3d4e5f60718293a4b5c6d7e8f";
/// Authorised domains when none are configured.
pub const DEFAULT_DOMAINS: &[&str] = &["127.0.0.1", "localhost"];
/// A code is good for one exchange within this long (WeChat: 5 minutes).
const CODE_TTL_SECS: i64 = 300;
/// The cookie that stands for "the WeChat user of this browser".
const USER_COOKIE: &str = "emulator_wechat_user";

/// The official account's web-authorisation settings.
#[derive(Clone, Debug)]
pub struct WechatOauthConfig {
    /// The AppSecret `/sns/oauth2/access_token` requires.
    pub app_secret: String,
    /// 网页授权域名: hosts `redirect_uri` may point at (the port is not compared).
    pub domains: Vec<String>,
}

impl Default for WechatOauthConfig {
    fn default() -> Self {
        WechatOauthConfig {
            app_secret: DEV_APP_SECRET.to_string(),
            domains: DEFAULT_DOMAINS.iter().map(|d| d.to_string()).collect(),
        }
    }
}

#[derive(Clone, Debug)]
struct Grant {
    appid: String,
    scope: String,
    openid: String,
    expires_at: DateTime<Utc>,
}

/// Codes handed out and not yet exchanged, and the openid of each emulated user.
#[derive(Debug, Default)]
pub struct OauthState {
    codes: Mutex<HashMap<String, Grant>>,
    openids: Mutex<HashMap<String, String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl OauthState {
    pub fn reset(&self) {
        lock(&self.codes).clear();
        lock(&self.openids).clear();
    }

    fn openid_of(&self, user: &str) -> String {
        lock(&self.openids)
            .entry(user.to_string())
            .or_insert_with(random_openid)
            .clone()
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/connect/oauth2/authorize", web::get().to(authorize))
        .route("/sns/oauth2/access_token", web::get().to(access_token));
}

#[derive(Deserialize)]
struct AuthorizeQuery {
    appid: Option<String>,
    redirect_uri: Option<String>,
    response_type: Option<String>,
    scope: Option<String>,
    state: Option<String>,
}

/// WeChat's error page: HTTP 200 with the code and its text, no redirect.
fn error_page(code: u32, text: &str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(format!(
            "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>微信网页授权</title></head>\
             <body><div class=\"weui-msg\"><h2 class=\"weui-msg__title\">Oops! Something went wrong:(</h2>\
             <p class=\"weui-msg__desc\">{code}: {text}</p></div></body></html>"
        ))
}

fn random_from(alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| char::from(alphabet[rng.gen_range(0..alphabet.len())]))
        .collect()
}

const ALNUM: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn random_openid() -> String {
    format!(
        "o{}",
        random_from(
            b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_",
            27
        )
    )
}

async fn authorize(state: State, req: HttpRequest, q: web::Query<AuthorizeQuery>) -> HttpResponse {
    let q = q.into_inner();
    let cfg = &state.config.wechat;
    let Some(appid) = q.appid.filter(|a| !a.is_empty()) else {
        return error_page(10012, "appid不能为空");
    };
    if appid != cfg.app_id {
        return error_page(10016, "appid参数错误");
    }
    let Some(redirect) = q.redirect_uri.filter(|r| !r.is_empty()) else {
        return error_page(10011, "redirect_uri不能为空");
    };
    let host_ok = reqwest::Url::parse(&redirect).ok().is_some_and(|u| {
        matches!(u.scheme(), "http" | "https")
            && u.host_str()
                .is_some_and(|h| cfg.oauth.domains.iter().any(|d| d.eq_ignore_ascii_case(h)))
    });
    if !host_ok {
        return error_page(10003, "redirect_uri域名与后台配置不一致");
    }
    if q.response_type.as_deref() != Some("code") {
        return error_page(10002, "response_type参数错误");
    }
    match q.scope.as_deref() {
        None | Some("") => return error_page(10010, "scope不能为空"),
        Some("snsapi_base") | Some("snsapi_userinfo") => {}
        Some(_) => return error_page(10005, "此公众号并没有这些scope的权限"),
    }
    let scope = q.scope.unwrap_or_default();
    // Reuse this browser's user, or make one.
    let (user, new_user) = match req.cookie(USER_COOKIE) {
        Some(c) if !c.value().is_empty() => (c.value().to_string(), false),
        _ => (random_from(ALNUM, 24), true),
    };
    let code = random_from(ALNUM, 32);
    lock(&state.wechat_oauth.codes).insert(
        code.clone(),
        Grant {
            appid,
            scope,
            openid: state.wechat_oauth.openid_of(&user),
            expires_at: Utc::now() + Duration::seconds(CODE_TTL_SECS),
        },
    );
    // redirect_uri keeps its own query; code and state are appended, as WeChat does.
    let mut target = redirect;
    let sep = if target.contains('?') { '&' } else { '?' };
    target.push(sep);
    target.push_str("code=");
    target.push_str(&code);
    target.push_str("&state=");
    target.push_str(&urlencoding::encode(q.state.as_deref().unwrap_or_default()));
    let mut resp = HttpResponse::Found();
    resp.insert_header((header::LOCATION, target));
    if new_user {
        resp.cookie(
            Cookie::build(USER_COOKIE, user)
                .path("/")
                .http_only(true)
                .finish(),
        );
    }
    resp.finish()
}

#[derive(Deserialize)]
struct TokenQuery {
    appid: Option<String>,
    secret: Option<String>,
    code: Option<String>,
    grant_type: Option<String>,
}

fn wx_error(errcode: u32, errmsg: &str) -> HttpResponse {
    HttpResponse::Ok().json(json!({"errcode": errcode, "errmsg": errmsg}))
}

async fn access_token(state: State, q: web::Query<TokenQuery>) -> HttpResponse {
    let q = q.into_inner();
    let cfg = &state.config.wechat;
    let appid = q.appid.unwrap_or_default();
    if appid.is_empty() {
        return wx_error(41002, "appid missing");
    }
    if appid != cfg.app_id {
        return wx_error(40013, "invalid appid");
    }
    let secret = q.secret.unwrap_or_default();
    if secret.is_empty() {
        return wx_error(41004, "appsecret missing");
    }
    // Same length compare is fine here: TEST secrets only.
    if secret != cfg.oauth.app_secret {
        return wx_error(40125, "invalid appsecret");
    }
    if q.grant_type.as_deref() != Some("authorization_code") {
        return wx_error(40002, "invalid grant_type");
    }
    let code = q.code.unwrap_or_default();
    if code.is_empty() {
        return wx_error(41008, "missing code");
    }
    // Taken out at once: a code is good for one exchange, whatever follows.
    let grant = lock(&state.wechat_oauth.codes).remove(&code);
    let Some(grant) = grant else {
        return wx_error(40029, "invalid code");
    };
    if grant.appid != appid {
        return wx_error(40029, "invalid code");
    }
    if grant.expires_at <= Utc::now() {
        return wx_error(40029, "invalid code");
    }
    HttpResponse::Ok().json(json!({
        "access_token": random_from(ALNUM, 86),
        "expires_in": 7200,
        "refresh_token": random_from(ALNUM, 86),
        "openid": grant.openid,
        "scope": grant.scope,
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn openids_are_shaped_like_wechat_and_stable_per_user() {
        let s = OauthState::default();
        let a = s.openid_of("u1");
        assert_eq!(a.len(), 28);
        assert!(a.starts_with('o'));
        assert_eq!(s.openid_of("u1"), a);
        assert_ne!(s.openid_of("u2"), a);
        s.reset();
        assert_ne!(s.openid_of("u1"), a);
    }
}
