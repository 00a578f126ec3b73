//! Clock and date display through the browser (chrono's clock is not wired to JS here).

use chrono::{DateTime, Utc};
use wasm_bindgen::JsValue;

use crate::i18n::Lang;

/// Milliseconds since the Unix epoch, from the browser clock.
pub fn now_ms() -> i64 {
    js_sys::Date::now() as i64
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
    use super::mm_ss;

    #[test]
    fn countdown_format() {
        assert_eq!(mm_ss(0), "00:00");
        assert_eq!(mm_ss(-5), "00:00");
        assert_eq!(mm_ss(59_999), "00:59");
        assert_eq!(mm_ss(300_000), "05:00");
    }
}
