//! WeChat Pay consumer complaints (消费者投诉 2.0): states, the first-reply deadline and
//! what a merchant reply may contain. Pure rules; the provider calls live in
//! `providers::wechat::complaints`, the use-cases in `service::complaints`.

use chrono::{Duration, NaiveDate, NaiveDateTime};

/// WeChat expects a first answer to a new (`PENDING`) complaint within 24 hours; a merchant
/// left unanswered is restricted. fenpay counts it from the complaint's `complaint_time`.
pub const FIRST_REPLY_SECS: i64 = 24 * 3600;

/// A reply to the buyer: 1..=200 characters (WeChat takes up to 500; fenpay keeps replies
/// short enough to read on a phone in the buyer's complaint page).
pub const REPLY_MAX_CHARS: usize = 200;

/// WeChat's complaint list takes at most 30 days per query (`begin_date`..=`end_date`).
pub const MAX_WINDOW_DAYS: i64 = 30;

/// A complaint's state at WeChat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ComplaintState {
    /// New, nobody answered yet (the 24-hour clock runs).
    Pending,
    /// The merchant answered; the buyer and merchant negotiate.
    Processing,
    /// The merchant marked it handled (or it was closed).
    Processed,
}

impl ComplaintState {
    /// WeChat's `complaint_state`; `None` for a value WeChat has not documented.
    pub fn parse(text: &str) -> Option<ComplaintState> {
        match text {
            "PENDING" => Some(ComplaintState::Pending),
            "PROCESSING" => Some(ComplaintState::Processing),
            "PROCESSED" => Some(ComplaintState::Processed),
            _ => None,
        }
    }

    /// The stored (and API) spelling: lower-case.
    pub fn as_str(self) -> &'static str {
        match self {
            ComplaintState::Pending => "pending",
            ComplaintState::Processing => "processing",
            ComplaintState::Processed => "processed",
        }
    }

    /// The stored spelling back to the state.
    pub fn from_stored(text: &str) -> Option<ComplaintState> {
        match text {
            "pending" => Some(ComplaintState::Pending),
            "processing" => Some(ComplaintState::Processing),
            "processed" => Some(ComplaintState::Processed),
            _ => None,
        }
    }

    /// Whether the merchant can still reply / mark it handled.
    pub fn is_open(self) -> bool {
        self != ComplaintState::Processed
    }
}

/// When the first reply is due: only a `PENDING` complaint has a deadline (once the
/// merchant answered, WeChat's clock for the first reply has stopped).
pub fn response_deadline(
    state: ComplaintState,
    complaint_time: NaiveDateTime,
) -> Option<NaiveDateTime> {
    (state == ComplaintState::Pending).then(|| complaint_time + Duration::seconds(FIRST_REPLY_SECS))
}

/// Seconds left until `deadline` at `now`; negative once it has passed (overdue).
pub fn time_left_secs(deadline: Option<NaiveDateTime>, now: NaiveDateTime) -> Option<i64> {
    deadline.map(|d| (d - now).num_seconds())
}

/// Why a reply is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplyError {
    Empty,
    TooLong { chars: usize },
}

impl std::fmt::Display for ReplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplyError::Empty => write!(f, "content must not be empty"),
            ReplyError::TooLong { chars } => write!(
                f,
                "content has {chars} characters, at most {REPLY_MAX_CHARS} are allowed"
            ),
        }
    }
}

/// The reply as sent: trimmed, 1..=[`REPLY_MAX_CHARS`] characters (not bytes).
pub fn reply_content(text: &str) -> Result<String, ReplyError> {
    let trimmed = text.trim();
    let chars = trimmed.chars().count();
    if chars == 0 {
        Err(ReplyError::Empty)
    } else if chars > REPLY_MAX_CHARS {
        Err(ReplyError::TooLong { chars })
    } else {
        Ok(trimmed.to_string())
    }
}

/// A sync window `from..=to` (China days, as WeChat's `begin_date` / `end_date`): `to`
/// not before `from` and at most [`MAX_WINDOW_DAYS`] days long.
pub fn sync_window(from: NaiveDate, to: NaiveDate) -> Result<(NaiveDate, NaiveDate), String> {
    if to < from {
        return Err(format!("to ({to}) is before from ({from})"));
    }
    let days = (to - from).num_days() + 1;
    if days > MAX_WINDOW_DAYS {
        return Err(format!(
            "the window has {days} days; WeChat answers at most {MAX_WINDOW_DAYS} per query"
        ));
    }
    Ok((from, to))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn t(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    #[test]
    fn states_map_both_ways() {
        for (wire, state) in [
            ("PENDING", ComplaintState::Pending),
            ("PROCESSING", ComplaintState::Processing),
            ("PROCESSED", ComplaintState::Processed),
        ] {
            assert_eq!(ComplaintState::parse(wire), Some(state));
            assert_eq!(ComplaintState::from_stored(state.as_str()), Some(state));
        }
        assert_eq!(ComplaintState::parse("pending"), None);
        assert_eq!(ComplaintState::parse("CLOSED"), None);
        assert!(ComplaintState::Pending.is_open());
        assert!(ComplaintState::Processing.is_open());
        assert!(!ComplaintState::Processed.is_open());
    }

    #[test]
    fn only_pending_complaints_have_a_24_hour_deadline() {
        let at = t("2026-12-10 08:00:00");
        assert_eq!(
            response_deadline(ComplaintState::Pending, at),
            Some(t("2026-12-11 08:00:00"))
        );
        assert_eq!(response_deadline(ComplaintState::Processing, at), None);
        assert_eq!(response_deadline(ComplaintState::Processed, at), None);
    }

    #[test]
    fn time_left_counts_down_and_goes_negative_when_overdue() {
        let deadline = Some(t("2026-12-11 08:00:00"));
        assert_eq!(
            time_left_secs(deadline, t("2026-12-10 08:00:00")),
            Some(86_400)
        );
        assert_eq!(time_left_secs(deadline, t("2026-12-11 07:59:00")), Some(60));
        assert_eq!(time_left_secs(deadline, t("2026-12-11 08:00:00")), Some(0));
        assert_eq!(
            time_left_secs(deadline, t("2026-12-11 09:00:00")),
            Some(-3_600)
        );
        assert_eq!(time_left_secs(None, t("2026-12-11 09:00:00")), None);
    }

    #[test]
    fn replies_are_1_to_200_characters_after_trimming() {
        assert_eq!(reply_content("  已为您退款  ").unwrap(), "已为您退款");
        assert_eq!(reply_content("   "), Err(ReplyError::Empty));
        assert_eq!(reply_content(""), Err(ReplyError::Empty));
        // Characters, not bytes: 200 CJK characters are 600 bytes.
        assert!(reply_content(&"退".repeat(200)).is_ok());
        assert_eq!(
            reply_content(&"退".repeat(201)),
            Err(ReplyError::TooLong { chars: 201 })
        );
    }

    #[test]
    fn sync_windows_are_at_most_30_days() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert!(sync_window(d("2026-11-11"), d("2026-12-10")).is_ok());
        assert!(sync_window(d("2026-11-10"), d("2026-12-10")).is_err());
        assert!(sync_window(d("2026-12-10"), d("2026-12-10")).is_ok());
        assert!(sync_window(d("2026-12-10"), d("2026-12-09")).is_err());
    }
}
