//! Clock and date display through the browser (chrono's clock is not wired to JS here).

use std::cell::Cell;

use chrono::{DateTime, Utc};
use wasm_bindgen::JsValue;

use crate::i18n::Lang;

/// Milliseconds since the Unix epoch, from the browser clock.
pub fn now_ms() -> i64 {
    js_sys::Date::now() as i64
}

/// The server's clock as this browser knows it: the browser clock corrected by the
/// offset learned from the `Date` header of API responses. Every remaining-time display
/// (QR code, order, membership) counts against this, so a browser whose clock is
/// minutes off still shows the server's deadlines.
pub fn server_now_ms() -> i64 {
    now_ms().saturating_add(OFFSET.with(|o| o.get().map_or(0, ClockOffset::estimate)))
}

/// Learns from one API exchange: sent and received on the browser clock, `date` the
/// response's `Date` header. Headers that do not parse are ignored.
pub fn note_server_date(sent_ms: i64, received_ms: i64, date: &str) {
    let Ok(at) = DateTime::parse_from_rfc2822(date) else {
        return;
    };
    let sample = ClockOffset::from_exchange(sent_ms, received_ms, at.timestamp_millis());
    OFFSET.with(|o| o.set(Some(o.get().map_or(sample, |known| known.merge(sample)))));
}

thread_local! {
    static OFFSET: Cell<Option<ClockOffset>> = const { Cell::new(None) };
}

/// What the browser knows of `server clock - browser clock`, in milliseconds: an
/// interval every exchange narrows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockOffset {
    lo: i64,
    hi: i64,
}

impl ClockOffset {
    /// One exchange: the server stamped its answer (`Date`, whole seconds, so the true
    /// time is in `[date, date + 1 s)`) between `sent` and `received` on our clock.
    pub fn from_exchange(sent_ms: i64, received_ms: i64, date_ms: i64) -> Self {
        let (sent, received) = (sent_ms.min(received_ms), sent_ms.max(received_ms));
        ClockOffset {
            lo: date_ms - received,
            hi: date_ms + 999 - sent,
        }
    }

    /// Both exchanges hold: keep what they agree on. When they cannot both hold (a
    /// clock was set meanwhile), the newer one wins.
    pub fn merge(self, newer: ClockOffset) -> ClockOffset {
        let (lo, hi) = (self.lo.max(newer.lo), self.hi.min(newer.hi));
        if lo <= hi {
            ClockOffset { lo, hi }
        } else {
            newer
        }
    }

    /// The middle of what is known.
    pub fn estimate(self) -> i64 {
        self.lo + (self.hi - self.lo) / 2
    }
}

/// A UTC instant in the browser's local time zone, formatted for the language.
pub fn local_datetime(at: &DateTime<Utc>, lang: Lang) -> String {
    let date = js_sys::Date::new(&JsValue::from_f64(at.timestamp_millis() as f64));
    String::from(date.to_locale_string(lang.locale(), &JsValue::UNDEFINED))
}

/// A local date only (membership expiry).
pub fn local_date(at: &DateTime<Utc>, lang: Lang) -> String {
    let date = js_sys::Date::new(&JsValue::from_f64(at.timestamp_millis() as f64));
    String::from(date.to_locale_date_string(lang.locale(), &JsValue::UNDEFINED))
}

/// `mm:ss` for a countdown; negative durations show as `00:00`.
pub fn mm_ss(remaining_ms: i64) -> String {
    let secs = remaining_ms.max(0).div_euclid(1000);
    format!("{:02}:{:02}", secs / 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::{mm_ss, ClockOffset};

    #[test]
    fn server_clock_offset_from_date_headers() {
        // The browser is 10 minutes behind: sent at t, answered within 300 ms, the
        // server's Date says t + 10 min (truncated to the second).
        let t = 1_780_000_000_000;
        let ten_min = 600_000;
        let one = ClockOffset::from_exchange(t, t + 300, t + ten_min);
        assert!(
            (ten_min - 300..=ten_min + 999).contains(&one.estimate()),
            "{one:?}"
        );
        // More exchanges narrow it down to the true offset (here exactly 10 min + 400 ms).
        let mut known = one;
        for k in 0..20 {
            let sent = t + 5_000 + k * 1_337;
            let received = sent + 20;
            let server_ms = sent + 10 + ten_min + 400;
            let date_ms = server_ms - server_ms.rem_euclid(1000);
            known = known.merge(ClockOffset::from_exchange(sent, received, date_ms));
        }
        assert!(
            (known.estimate() - (ten_min + 400)).abs() <= 100,
            "{known:?}"
        );
        // The browser clock is set right meanwhile: the new exchange wins at once.
        let reset = known.merge(ClockOffset::from_exchange(
            t + ten_min,
            t + ten_min + 50,
            t + ten_min,
        ));
        assert!(reset.estimate().abs() <= 1_000, "{reset:?}");
        // A browser ahead of the server gets a negative offset.
        let ahead = ClockOffset::from_exchange(t, t + 100, t - 3_600_000);
        assert!(
            (-3_600_100..=-3_599_000).contains(&ahead.estimate()),
            "{ahead:?}"
        );
    }

    #[test]
    fn http_dates_parse() {
        let at = chrono::DateTime::parse_from_rfc2822("Sat, 05 Dec 2026 00:01:03 GMT");
        assert_eq!(at.map(|d| d.timestamp()).ok(), Some(1_796_428_863));
    }

    #[test]
    fn countdown_format() {
        assert_eq!(mm_ss(0), "00:00");
        assert_eq!(mm_ss(-5), "00:00");
        assert_eq!(mm_ss(59_999), "00:59");
        assert_eq!(mm_ss(300_000), "05:00");
    }
}
