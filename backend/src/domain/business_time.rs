//! The business time zone (`BUSINESS_TIMEZONE`, default `Asia/Shanghai`): where an
//! operator's days begin and end. Daily totals group by it, `from`/`to` days in the
//! admin lists and exports are its days, and exports show times in it with their offset.
//!
//! Stored times are UTC; these functions turn a local day into the UTC instants it
//! covers and back. Nothing here reads the clock.

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, SecondsFormat, TimeZone, Utc};
use chrono_tz::Tz;

/// The first instant of the local `day` in `tz`. Midnight itself when it exists; on a
/// day whose midnight is skipped by a daylight-saving jump, the first local time after
/// the gap; on one where midnight happens twice, the earlier.
pub fn day_start(day: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let midnight = day.and_time(NaiveTime::MIN);
    // Gaps are at most a few hours; look forward minute by minute for the first time
    // that exists (bounded: a whole day).
    for minutes in 0..(24 * 60) {
        let local = midnight + Duration::minutes(minutes);
        if let Some(t) = tz.from_local_datetime(&local).earliest() {
            return t.with_timezone(&Utc);
        }
    }
    // No zone skips a whole day's worth of minutes; fall back to UTC midnight.
    midnight.and_utc()
}

/// The UTC instants `[start, end)` that the local days `from..=to` cover.
pub fn days_range(from: NaiveDate, to: NaiveDate, tz: Tz) -> (DateTime<Utc>, DateTime<Utc>) {
    (day_start(from, tz), day_start(to + Duration::days(1), tz))
}

/// The local day an instant falls in.
pub fn day_of(t: DateTime<Utc>, tz: Tz) -> NaiveDate {
    t.with_timezone(&tz).date_naive()
}

/// An instant as local time with its offset, to the second: `2026-12-05T00:30:00+08:00`.
pub fn local_text(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz)
        .to_rfc3339_opts(SecondsFormat::Secs, false)
}

/// Which end of a range a `from`/`to` parameter gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// `from`: the range starts at this day's first instant, or at this instant.
    From,
    /// `to`: the range includes this whole day (ends at the next day's start), or ends
    /// just before this instant.
    To,
}

/// A `from`/`to` parameter: a day `YYYY-MM-DD` in `tz`, or an RFC 3339 instant (with its
/// own offset, e.g. `2026-12-05T00:00:00+08:00` or `...Z`). Returns the UTC bound: for
/// `From` the first instant included, for `To` the first instant excluded.
pub fn parse_bound(text: &str, end: End, tz: Tz) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if text.len() == 10 {
        let day = NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map_err(|_| format!("{text:?} is not a date (YYYY-MM-DD)"))?;
        return Ok(match end {
            End::From => day_start(day, tz),
            End::To => day_start(
                day.succ_opt()
                    .ok_or_else(|| format!("{text:?} is out of range"))?,
                tz,
            ),
        });
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| format!("{text:?} is neither a date (YYYY-MM-DD) nor an RFC 3339 time"))
}

/// UTC bounds `[from, before)`; either may be open.
pub type Range = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// `from` and `to` as UTC bounds `[from, before)`; either may be absent. Refuses a range
/// that ends before it starts.
pub fn parse_range(from: Option<&str>, to: Option<&str>, tz: Tz) -> Result<Range, String> {
    let from = from
        .filter(|s| !s.trim().is_empty())
        .map(|s| parse_bound(s, End::From, tz))
        .transpose()?;
    let before = to
        .filter(|s| !s.trim().is_empty())
        .map(|s| parse_bound(s, End::To, tz))
        .transpose()?;
    if let (Some(f), Some(b)) = (from, before) {
        if f >= b {
            return Err("from is not before to".into());
        }
    }
    Ok((from, before))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono_tz::{America, Asia, Europe};

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn china_days_start_at_16_utc_the_day_before() {
        assert_eq!(
            day_start(d(2026, 12, 5), Asia::Shanghai),
            utc("2026-12-04T16:00:00Z")
        );
        // Paid at 16:30 UTC on the 4th: 00:30 on the 5th in China.
        let paid = utc("2026-12-04T16:30:00Z");
        assert_eq!(day_of(paid, Asia::Shanghai), d(2026, 12, 5));
        assert_eq!(day_of(paid, chrono_tz::UTC), d(2026, 12, 4));
        assert_eq!(
            local_text(paid, Asia::Shanghai),
            "2026-12-05T00:30:00+08:00"
        );
        assert_eq!(
            local_text(paid, chrono_tz::UTC),
            "2026-12-04T16:30:00+00:00"
        );
        let (start, end) = days_range(d(2026, 12, 5), d(2026, 12, 5), Asia::Shanghai);
        assert_eq!(start, utc("2026-12-04T16:00:00Z"));
        assert_eq!(end, utc("2026-12-05T16:00:00Z"));
    }

    #[test]
    fn daylight_saving_days_are_23_or_25_hours() {
        // Berlin springs forward on 2026-03-29 and falls back on 2026-10-25.
        let (s, e) = days_range(d(2026, 3, 29), d(2026, 3, 29), Europe::Berlin);
        assert_eq!(e - s, Duration::hours(23));
        let (s, e) = days_range(d(2026, 10, 25), d(2026, 10, 25), Europe::Berlin);
        assert_eq!(e - s, Duration::hours(25));
        assert_eq!(
            local_text(utc("2026-07-01T12:00:00Z"), Europe::Berlin),
            "2026-07-01T14:00:00+02:00"
        );
        // Santiago skipped midnight on 2022-09-11 (00:00 -> 01:00): the day starts at 01:00.
        assert_eq!(
            day_start(d(2022, 9, 11), America::Santiago),
            utc("2022-09-11T04:00:00Z")
        );
    }

    #[test]
    fn bounds_are_days_or_instants() {
        let tz = Asia::Shanghai;
        assert_eq!(
            parse_bound("2026-12-05", End::From, tz).unwrap(),
            utc("2026-12-04T16:00:00Z")
        );
        assert_eq!(
            parse_bound("2026-12-05", End::To, tz).unwrap(),
            utc("2026-12-05T16:00:00Z")
        );
        assert_eq!(
            parse_bound("2026-12-05T08:00:00+08:00", End::To, tz).unwrap(),
            utc("2026-12-05T00:00:00Z")
        );
        assert_eq!(
            parse_bound("2026-12-05T00:00:00Z", End::From, tz).unwrap(),
            utc("2026-12-05T00:00:00Z")
        );
        for bad in [
            "2026-13-01",
            "yesterday",
            "2026-12-05T25:00:00Z",
            "20261205",
            "2026-12-05 08:00",
        ] {
            assert!(parse_bound(bad, End::From, tz).is_err(), "{bad}");
        }
        assert!(parse_range(Some("2026-12-06"), Some("2026-12-05"), tz).is_err());
        assert_eq!(
            parse_range(Some("2026-12-05"), Some("2026-12-05"), tz).unwrap(),
            (
                Some(utc("2026-12-04T16:00:00Z")),
                Some(utc("2026-12-05T16:00:00Z"))
            )
        );
        assert_eq!(parse_range(None, Some(""), tz).unwrap(), (None, None));
    }
}
