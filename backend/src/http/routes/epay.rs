//! The epay (易支付)-compatible gateway under `/epay/` (outside `/api/v1`): tools that
//! speak the protocol use fenpay by changing a URL, pid and key. It answers only apps
//! that enabled it. Parameters come from the query string and an urlencoded or
//! multipart form body, each name at most once.

use actix_web::http::header::{self, ContentType};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use crate::domain::epay::{self as rules, Params, Refused};
use crate::service::epay as service;
use crate::startup::AppState;

/// Largest request body read (a form of a few short fields).
const MAX_BODY: usize = 64 * 1024;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/epay")
            .app_data(web::PayloadConfig::new(MAX_BODY))
            .service(
                web::resource("/submit.php")
                    .get(submit_get)
                    .post(submit_post),
            )
            .service(web::resource("/mapi.php").post(mapi))
            .service(web::resource("/api.php").get(api_get).post(api_post)),
    );
}

/// The protocol's parameters (documentation; the handlers read them as sent).
#[derive(Serialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EpayParams {
    /// The app's epay merchant id.
    pub pid: Option<i64>,
    /// `alipay` or `wxpay` (required by mapi.php; absent on submit.php: the buyer chooses).
    #[serde(rename = "type")]
    #[param(rename = "type")]
    #[schema(rename = "type")]
    pub pay_type: Option<String>,
    /// The merchant's order number (1-64 of `A-Z a-z 0-9 _ - . : |`), unique per app.
    pub out_trade_no: Option<String>,
    /// Where the payment notification (a signed GET) goes; absolute http(s).
    pub notify_url: Option<String>,
    /// Where the buyer returns (its host must be one of the app's return hosts).
    pub return_url: Option<String>,
    /// The order's subject (1-128 characters).
    pub name: Option<String>,
    /// Yuan with at most 2 decimals, more than 0, at most the app's maximum.
    pub money: Option<String>,
    /// Returned as given in notifications and queries (at most 1024 bytes).
    pub param: Option<String>,
    /// The buyer's IP address (mapi.php; default: the caller's).
    pub clientip: Option<String>,
    /// mapi.php: `pc` (default), `mobile`, `wechat` or `alipay`.
    pub device: Option<String>,
    /// api.php: `order` or `refund`.
    pub act: Option<String>,
    /// api.php: the merchant key (instead of `sign`).
    pub key: Option<String>,
    /// api.php: fenpay's order number.
    pub trade_no: Option<String>,
    /// Lowercase hex MD5 signature (see the README's epay section).
    pub sign: Option<String>,
    /// `MD5`.
    pub sign_type: Option<String>,
}

/// mapi.php / api.php answer: `code` 1 on success, -1 with `msg` when refused.
#[derive(Serialize, ToSchema)]
pub struct EpayAnswer {
    pub code: i32,
    pub msg: String,
    pub trade_no: Option<String>,
    /// mapi.php, device `pc`: the QR code content.
    pub qrcode: Option<String>,
    /// mapi.php, other devices: the page to open.
    pub payurl: Option<String>,
}

/// Query string and body parameters, each name at most once.
fn params(req: &HttpRequest, body: &[u8]) -> Result<Params, Refused> {
    let refused = |m: &str| Refused(m.to_string());
    let mut pairs = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map_err(|_| refused("the query string cannot be read"))?
        .into_inner();
    if !body.is_empty() {
        let raw_ctype = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        // The boundary is case-sensitive: only the media type is compared lowercased.
        let ctype = raw_ctype.to_ascii_lowercase();
        if ctype.starts_with("application/x-www-form-urlencoded") {
            let text = std::str::from_utf8(body).map_err(|_| refused("the form is not UTF-8"))?;
            pairs.extend(
                web::Query::<Vec<(String, String)>>::from_query(text)
                    .map_err(|_| refused("the form cannot be read"))?
                    .into_inner(),
            );
        } else if ctype.starts_with("multipart/form-data") {
            pairs.extend(
                multipart_fields(raw_ctype, body)
                    .ok_or_else(|| refused("the form cannot be read"))?,
            );
        } else {
            return Err(refused(
                "send the parameters urlencoded or as multipart/form-data",
            ));
        }
    }
    Params::from_pairs(pairs)
}

/// The text fields of a `multipart/form-data` body (what PHP's curl sends for an array of
/// fields); `None` when it is not well formed. File parts are refused.
fn multipart_fields(ctype: &str, body: &[u8]) -> Option<Vec<(String, String)>> {
    let boundary = ctype
        .split(';')
        .filter_map(|p| p.trim().strip_prefix("boundary="))
        .next()?
        .trim_matches('"');
    if boundary.is_empty() {
        return None;
    }
    let text = std::str::from_utf8(body).ok()?;
    let delimiter = format!("--{boundary}");
    let mut out = Vec::new();
    let mut parts = text.split(delimiter.as_str());
    // Before the first delimiter: the preamble, ignored.
    parts.next()?;
    for part in parts {
        if part.starts_with("--") {
            return Some(out);
        }
        let part = part.strip_prefix("\r\n")?;
        let (head, value) = part.split_once("\r\n\r\n")?;
        let value = value.strip_suffix("\r\n")?;
        let disposition = head
            .split("\r\n")
            .find(|l| l.to_ascii_lowercase().starts_with("content-disposition:"))?;
        if disposition.contains("filename=") {
            return None;
        }
        let name = disposition
            .split(';')
            .filter_map(|p| p.trim().strip_prefix("name="))
            .next()?
            .trim_matches('"');
        out.push((name.to_string(), value.to_string()));
    }
    // No closing delimiter.
    None
}

/// A small UTF-8 HTML page with the refusal, status 400 (submit.php is opened by a browser).
fn error_page(msg: &str) -> HttpResponse {
    let escaped = msg
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;");
    HttpResponse::build(StatusCode::BAD_REQUEST)
        .content_type(ContentType::html())
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(format!(
            "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>支付请求无效 / Payment request refused</title></head>\
             <body><h1>支付请求无效 / Payment request refused</h1><p>{escaped}</p></body></html>"
        ))
}

/// JSON answers are HTTP 200 with `code` -1 when refused, as the clones answer and as
/// epay clients read them (they switch on `code`).
fn json_answer(value: serde_json::Value) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(value)
}

async fn submit(state: &AppState, req: &HttpRequest, body: &[u8]) -> HttpResponse {
    let ip = state.client_ip(req);
    let result = match params(req, body) {
        Ok(p) => service::submit(state, &p, ip).await,
        Err(r) => Err(r),
    };
    match result {
        Ok(checkout_url) => HttpResponse::Found()
            .insert_header((header::LOCATION, checkout_url))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish(),
        Err(r) => error_page(&r.0),
    }
}

/// epay page payment (browser form, GET): verify, create the order, 302 to the hosted
/// checkout page. Refused: a small HTML page with the reason, status 400.
#[utoipa::path(get, path = "/epay/submit.php", tag = "epay", params(EpayParams),
    responses(
        (status = 302, description = "To the hosted checkout page (`Location`)"),
        (status = 400, description = "Refused: an HTML page with the reason", content_type = "text/html", body = String),
    ))]
pub async fn submit_get(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    submit(&state, &req, &[]).await
}

/// epay page payment (browser form, POST urlencoded or multipart): as the GET.
#[utoipa::path(post, path = "/epay/submit.php", tag = "epay",
    request_body(content = EpayParams, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 302, description = "To the hosted checkout page (`Location`)"),
        (status = 400, description = "Refused: an HTML page with the reason", content_type = "text/html", body = String),
    ))]
pub async fn submit_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    submit(&state, &req, &body).await
}

/// epay API payment: verify, create the order and answer how to pay by `device`:
/// `pc` -> `qrcode`; `mobile` -> `payurl` (WeChat H5 / Alipay wap); `wechat` -> `payurl`
/// = the hosted checkout page (JSAPI); `alipay` -> `payurl` (Alipay wap). Refused:
/// HTTP 200 `{"code": -1, "msg"}`.
#[utoipa::path(post, path = "/epay/mapi.php", tag = "epay",
    request_body(content = EpayParams, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "`code` 1 with `trade_no` and `qrcode` or `payurl`; -1 with `msg`", body = EpayAnswer)))]
pub async fn mapi(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let ip = state.client_ip(&req);
    json_answer(match params(&req, &body) {
        Ok(p) => service::mapi(&state, &p, ip).await,
        Err(r) => rules::failure(&r.0),
    })
}

async fn api(state: &AppState, req: &HttpRequest, body: &[u8]) -> HttpResponse {
    json_answer(match params(req, body) {
        Ok(p) => service::api(state, &p).await,
        Err(r) => rules::failure(&r.0),
    })
}

/// epay merchant API: `act=order` (the order by `trade_no` or `out_trade_no`) and
/// `act=refund` (`money` yuan). Authenticated by `pid` with `key`, or a valid `sign`.
#[utoipa::path(get, path = "/epay/api.php", tag = "epay", params(EpayParams),
    responses((status = 200, description = "`code` 1 with the order or refund; -1 with `msg`", body = EpayAnswer)))]
pub async fn api_get(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    api(&state, &req, &[]).await
}

/// epay merchant API (POST): as the GET.
#[utoipa::path(post, path = "/epay/api.php", tag = "epay",
    request_body(content = EpayParams, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "`code` 1 with the order or refund; -1 with `msg`", body = EpayAnswer)))]
pub async fn api_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    api(&state, &req, &body).await
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn multipart_text_fields() {
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"pid\"\r\n\r\n1001\r\n\
                    --XyZ\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nVIP 会员\r\n--XyZ--\r\n";
        let fields =
            multipart_fields("multipart/form-data; boundary=XyZ", body.as_bytes()).expect("parsed");
        assert_eq!(
            fields,
            vec![
                ("pid".to_string(), "1001".to_string()),
                ("name".to_string(), "VIP 会员".to_string())
            ]
        );
        // No closing delimiter, a file part, or no boundary: refused.
        assert!(multipart_fields(
            "multipart/form-data; boundary=XyZ",
            b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n"
        )
        .is_none());
        assert!(multipart_fields(
            "multipart/form-data; boundary=XyZ",
            b"--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x\"\r\n\r\n1\r\n--XyZ--"
        )
        .is_none());
        assert!(multipart_fields("multipart/form-data", b"").is_none());
    }
}
