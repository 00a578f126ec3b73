//! Alipay OpenAPI v3 (the `/v3/alipay/...` JSON API the official Node, Java, PHP and
//! .NET SDKs now default to) over the same trades as `gateway.do`:
//! `POST /v3/alipay/trade/{precreate,query,close,refund}` and
//! `POST /v3/alipay/trade/fastpay/refund/query`.
//!
//! - Requests carry `Authorization: ALIPAY-SHA256withRSA app_id=..,[app_cert_sn=..,]
//!   nonce=..,timestamp=..,sign=..`; the signature (RSA2 with the app key) covers
//!   `{everything before ",sign="}\n{METHOD}\n{path and query as sent}\n{body}\n`, plus
//!   `{alipay-app-auth-token}\n` when that header is present.
//! - Every answer, errors included, is JSON signed over
//!   `{alipay-timestamp}\n{alipay-nonce}\n{body}\n` with Alipay's key in the
//!   `alipay-signature` header, next to `alipay-timestamp`, `alipay-nonce`,
//!   `alipay-request-id` (the request's, echoed) and `alipay-trace-id`.
//! - Success is HTTP 200 with the business fields (no `code` / `msg`); failures are
//!   4xx/5xx with `{"code","message"}`: 401 for a missing, malformed or wrong
//!   signature, 400 for parameters (an unknown `app_id` included) and business failures
//!   (`ACQ.*`), 500 for system errors.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde_json::{json, Value};

use super::alipay::{answer_json, run_method};
use super::faults::RequestFault;
use super::State;

const JSON_UTF8: &str = "application/json;charset=utf-8";
const SCHEME: &str = "ALIPAY-SHA256withRSA";

/// The v3 paths and the gateway methods they run.
const ROUTES: [(&str, &str); 5] = [
    ("/v3/alipay/trade/precreate", "alipay.trade.precreate"),
    ("/v3/alipay/trade/query", "alipay.trade.query"),
    ("/v3/alipay/trade/close", "alipay.trade.close"),
    ("/v3/alipay/trade/refund", "alipay.trade.refund"),
    (
        "/v3/alipay/trade/fastpay/refund/query",
        "alipay.trade.fastpay.refund.query",
    ),
];

/// Registers the v3 trade endpoints.
pub fn configure(cfg: &mut web::ServiceConfig) {
    for (path, method) in ROUTES {
        cfg.route(
            path,
            web::post().to(move |state: State, req: HttpRequest, body: web::Bytes| {
                handle(state, req, body, method)
            }),
        );
    }
}

/// A v3 failure: HTTP status, `code`, `message`.
struct V3Error {
    status: StatusCode,
    code: String,
    message: String,
}

impl V3Error {
    fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        V3Error {
            status,
            code: code.to_string(),
            message: message.into(),
        }
    }

    fn auth(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }
}

async fn handle(state: State, req: HttpRequest, body: web::Bytes, method: &str) -> HttpResponse {
    let request_id = header_str(&req, "alipay-request-id")
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    match state.faults.next_request_fault() {
        RequestFault::None => {}
        RequestFault::Fail => return answer(&state, &request_id, Err(system_error())),
        RequestFault::Timeout(ms) => {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            return answer(&state, &request_id, Err(system_error()));
        }
    }
    let result = serve(&state, &req, &body, method);
    answer(&state, &request_id, result)
}

fn system_error() -> V3Error {
    V3Error::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "SYSTEM_ERROR",
        "系统繁忙",
    )
}

fn serve(state: &State, req: &HttpRequest, body: &[u8], method: &str) -> Result<String, V3Error> {
    let text = std::str::from_utf8(body).map_err(|_| {
        V3Error::new(
            StatusCode::BAD_REQUEST,
            "invalid-parameter",
            "请求体不是 UTF-8",
        )
    })?;
    authenticate(state, req, text)?;
    let biz = match serde_json::from_str::<Value>(if text.is_empty() { "{}" } else { text }) {
        Ok(Value::Object(map)) => map,
        _ => {
            return Err(V3Error::new(
                StatusCode::BAD_REQUEST,
                "invalid-parameter",
                "请求体不是 JSON 对象",
            ))
        }
    };
    match run_method(state, method, &biz) {
        Ok(members) => Ok(answer_json(&members)),
        Err(f) if f.unavailable => Err(V3Error::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            &f.sub_code,
            f.sub_msg,
        )),
        Err(f) => Err(V3Error::new(
            StatusCode::BAD_REQUEST,
            &f.sub_code,
            f.sub_msg,
        )),
    }
}

fn header_str<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The `Authorization` header's parameters: the signed part (everything before
/// `,sign=`) and its pairs, plus the signature.
struct Authorization<'a> {
    signed_part: &'a str,
    sign: &'a str,
    app_id: Option<&'a str>,
    nonce: Option<&'a str>,
    timestamp: Option<&'a str>,
}

fn parse_authorization(value: &str) -> Option<Authorization<'_>> {
    let rest = value.strip_prefix(SCHEME)?.strip_prefix(' ')?.trim_start();
    let (signed_part, sign) = rest.rsplit_once(",sign=")?;
    let mut auth = Authorization {
        signed_part,
        sign: sign.trim(),
        app_id: None,
        nonce: None,
        timestamp: None,
    };
    for pair in signed_part.split(',') {
        let (k, v) = pair.split_once('=')?;
        match k.trim() {
            "app_id" => auth.app_id = Some(v),
            "nonce" => auth.nonce = Some(v),
            "timestamp" => auth.timestamp = Some(v),
            _ => {}
        }
    }
    Some(auth)
}

fn authenticate(state: &State, req: &HttpRequest, body: &str) -> Result<(), V3Error> {
    let cfg = &state.config.alipay;
    let value = header_str(req, header::AUTHORIZATION.as_str())
        .ok_or_else(|| V3Error::auth("missing-auth", "缺少 Authorization 请求头"))?;
    let auth = parse_authorization(value).ok_or_else(|| {
        V3Error::auth(
            "invalid-auth",
            format!(
                "Authorization 格式错误，应为 {SCHEME} app_id=..,nonce=..,timestamp=..,sign=.."
            ),
        )
    })?;
    let (Some(app_id), Some(nonce), Some(timestamp)) = (auth.app_id, auth.nonce, auth.timestamp)
    else {
        return Err(V3Error::auth(
            "invalid-auth",
            "Authorization 缺少 app_id、nonce 或 timestamp",
        ));
    };
    if nonce.is_empty() || timestamp.parse::<i64>().is_err() || auth.sign.is_empty() {
        return Err(V3Error::auth("invalid-auth", "Authorization 参数格式错误"));
    }
    if app_id != cfg.app_id {
        return Err(V3Error::new(
            StatusCode::BAD_REQUEST,
            "invalid-app-id",
            "无效的AppID参数",
        ));
    }
    let path = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path(), |pq| pq.as_str());
    let mut content = format!("{}\n{}\n{path}\n{body}\n", auth.signed_part, req.method());
    if let Some(token) = header_str(req, "alipay-app-auth-token") {
        content.push_str(token);
        content.push('\n');
    }
    if !cfg
        .app_public_key
        .verify_sha256_base64(content.as_bytes(), auth.sign)
    {
        return Err(V3Error::auth(
            "invalid-signature",
            format!("验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配，网关生成的验签字符串为：{content}"),
        ));
    }
    Ok(())
}

/// The signed answer: 200 with the body, or the error's status with `{"code","message"}`.
fn answer(state: &State, request_id: &str, result: Result<String, V3Error>) -> HttpResponse {
    let (status, body) = match result {
        Ok(body) => (StatusCode::OK, body),
        Err(e) => (
            e.status,
            json!({"code": e.code, "message": e.message}).to_string(),
        ),
    };
    let timestamp = Utc::now().timestamp_millis().to_string();
    let nonce = uuid::Uuid::new_v4().to_string();
    let mut content = format!("{timestamp}\n{nonce}\n{body}\n");
    // `bad_signature_next`: sign other content, so the signature does not verify.
    if status.is_success() && state.faults.take_bad_signature() {
        content.push(' ');
    }
    let signature = match state
        .config
        .alipay
        .alipay_private_key
        .sign_sha256_base64(content.as_bytes())
    {
        Ok(s) => s,
        Err(e) => {
            return HttpResponse::InternalServerError()
                .body(format!("emulator signing failed: {e}"))
        }
    };
    HttpResponse::build(status)
        .content_type(JSON_UTF8)
        .insert_header(("alipay-request-id", request_id.to_string()))
        .insert_header(("alipay-trace-id", uuid::Uuid::new_v4().simple().to_string()))
        .insert_header(("alipay-timestamp", timestamp))
        .insert_header(("alipay-nonce", nonce))
        .insert_header(("alipay-signature", signature))
        .body(body)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn authorization_parses_with_the_signed_part() {
        let auth = parse_authorization(
            "ALIPAY-SHA256withRSA app_id=2021,nonce=n-1,timestamp=1700000000000,sign=ab+/c==",
        )
        .unwrap();
        assert_eq!(
            auth.signed_part,
            "app_id=2021,nonce=n-1,timestamp=1700000000000"
        );
        assert_eq!(auth.sign, "ab+/c==");
        assert_eq!(auth.app_id, Some("2021"));
        assert_eq!(auth.nonce, Some("n-1"));
        assert_eq!(auth.timestamp, Some("1700000000000"));
        assert!(parse_authorization("WECHATPAY2-SHA256-RSA2048 a=b").is_none());
        assert!(parse_authorization("ALIPAY-SHA256withRSA app_id=1,nonce=2").is_none());
    }
}
