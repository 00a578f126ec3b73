//! Fault switches shared by both emulated providers, set through the control API:
//! `GET/POST /__emulator/faults`, `POST /__emulator/reset`.
//!
//! `POST /__emulator/faults` replaces the whole setting with its JSON body (absent
//! members are off), e.g. `{"refund_abnormal_next": 1}` makes the next WeChat refund
//! end `ABNORMAL` (with a `REFUND.ABNORMAL` notification) and
//! `{"refund_not_enough_next": 1}` refuses the next refund on either provider for
//! lack of merchant balance (WeChat 403 `NOT_ENOUGH`, Alipay
//! `ACQ.SELLER_BALANCE_NOT_ENOUGH`). `{"hold_refunds": true}` keeps new WeChat
//! refunds `PROCESSING` until `POST /__emulator/wechat/refunds/{out_refund_no}/settle`.
//! `{"bad_signature_next": 1}` makes the next 2xx API answer (either provider) carry a
//! signature that does not verify (clock skew, a rotated key): what it says happened,
//! but the client cannot prove it. `{"bill_missing": true}` makes every bill answer
//! not-ready; `{"bill_extra_payment": 1}` adds a payment fenpay never made to the next bill.

use std::sync::Mutex;

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

/// Current fault settings. Counters (`*_next`) apply to that many upcoming events and
/// then stop; booleans stay on until cleared.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct FaultSettings {
    /// Drop (do not send) the next N notification attempts; the resend schedule goes on.
    pub drop_notifications_next: u32,
    /// Send every notification twice (concurrently).
    pub duplicate_notifications: bool,
    /// Wait this long (ms, unscaled) before each notification attempt.
    pub delay_notifications_ms: u64,
    /// Answer the next N API requests with HTTP 500 SYSTEM_ERROR (nothing changes).
    pub fail_requests_next: u32,
    /// Stall the next N API requests for `timeout_ms` before answering 500 (nothing changes).
    pub timeout_requests_next: u32,
    /// How long a stalled request hangs (ms, unscaled); default 30000.
    pub timeout_ms: u64,
    /// Precede each notification with a `WECHATPAY/SIGNTEST/` signature probe (WeChat).
    pub signature_probe: bool,
    /// The next N new WeChat refunds end `ABNORMAL` instead of `SUCCESS`.
    pub refund_abnormal_next: u32,
    /// Refuse the next N refunds for lack of merchant balance (nothing changes).
    pub refund_not_enough_next: u32,
    /// New WeChat refunds stay `PROCESSING` until settled through the control API.
    pub hold_refunds: bool,
    /// The next N 2xx API answers (WeChat and Alipay) carry a signature that does not
    /// verify; the request itself is carried out.
    pub bad_signature_next: u32,
    /// Bills are not ready: WeChat `tradebill`/`fundflowbill` answer 400
    /// `NO_STATEMENT_EXIST`, Alipay's bill query `isp.bill_not_exist`.
    pub bill_missing: bool,
    /// The next N bills built (WeChat trade bill or Alipay trade bill) also hold a
    /// successful payment of an `out_trade_no` the merchant never created.
    pub bill_extra_payment: u32,
    /// Certificate mode: the next N Alipay API answers name another `alipay_cert_sn`, as
    /// after Alipay rotated its certificate (the merchant's copy is outdated); the request
    /// itself is carried out.
    pub alipay_cert_rotated_next: u32,
}

/// Thread-safe holder of [`FaultSettings`].
#[derive(Debug, Default)]
pub struct Faults(Mutex<FaultSettings>);

/// What the next API request should suffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestFault {
    None,
    Fail,
    Timeout(u64),
}

impl Faults {
    pub fn get(&self) -> FaultSettings {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set(&self, settings: FaultSettings) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = settings;
    }

    /// Consume one request fault, if any is armed.
    pub fn next_request_fault(&self) -> RequestFault {
        let mut f = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if f.timeout_requests_next > 0 {
            f.timeout_requests_next -= 1;
            return RequestFault::Timeout(if f.timeout_ms == 0 {
                30_000
            } else {
                f.timeout_ms
            });
        }
        if f.fail_requests_next > 0 {
            f.fail_requests_next -= 1;
            return RequestFault::Fail;
        }
        RequestFault::None
    }

    /// Consume one "drop this notification attempt", if armed.
    pub fn take_drop_notification(&self) -> bool {
        self.take(|f| &mut f.drop_notifications_next)
    }

    /// Consume one "this refund ends ABNORMAL", if armed.
    pub fn take_refund_abnormal(&self) -> bool {
        self.take(|f| &mut f.refund_abnormal_next)
    }

    /// Consume one "refuse this refund: balance not enough", if armed.
    pub fn take_refund_not_enough(&self) -> bool {
        self.take(|f| &mut f.refund_not_enough_next)
    }

    /// Consume one "sign this answer wrongly", if armed.
    pub fn take_bad_signature(&self) -> bool {
        self.take(|f| &mut f.bad_signature_next)
    }

    /// Consume one "add a payment nobody made to this bill", if armed.
    pub fn take_bill_extra_payment(&self) -> bool {
        self.take(|f| &mut f.bill_extra_payment)
    }

    /// Consume one "answer under a rotated Alipay certificate", if armed.
    pub fn take_alipay_cert_rotated(&self) -> bool {
        self.take(|f| &mut f.alipay_cert_rotated_next)
    }

    fn take(&self, counter: impl FnOnce(&mut FaultSettings) -> &mut u32) -> bool {
        let mut f = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = counter(&mut f);
        if *n > 0 {
            *n -= 1;
            true
        } else {
            false
        }
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/__emulator/faults", web::get().to(get_faults))
        .route("/__emulator/faults", web::post().to(set_faults))
        .route("/__emulator/reset", web::post().to(reset));
}

async fn get_faults(state: super::State) -> HttpResponse {
    HttpResponse::Ok().json(state.faults.get())
}

async fn set_faults(state: super::State, body: web::Json<FaultSettings>) -> HttpResponse {
    state.faults.set(body.into_inner());
    HttpResponse::Ok().json(state.faults.get())
}

/// Clear faults and forget all trades on both providers.
async fn reset(state: super::State) -> HttpResponse {
    state.faults.set(FaultSettings::default());
    state.wechat.reset();
    state.wechat_oauth.reset();
    state.alipay.reset();
    state.bills.reset();
    HttpResponse::NoContent().finish()
}
