//! How long fenpay keeps what it writes (the `RETENTION_*` settings).
//!
//! Never purged: orders, refunds, the balance ledger, and every payment record that is, or
//! may be, the evidence of money moving. Purged once older than their window:
//! - payment records (`RETENTION_RECORDS_DAYS`), as [`record_may_go`] decides: provider
//!   queries that changed nothing, calls that got no answer, unverified records of no known
//!   order (forgeries), and the records of an order never paid and not held for review
//!   (except a verified answer we rejected, which may be money we still owe);
//! - events (`RETENTION_EVENTS_DAYS`): an event whose every webhook delivery arrived (or
//!   that had none), with its deliveries and their attempts. An event with a delivery still
//!   pending or given up stays, so an operator can still resend it;
//! - `Idempotency-Key` answers, once they expired (24 h).
//!
//! A window of 0 days keeps that kind forever.

use api_types::payment::OrderStatus;
use chrono::NaiveDateTime;

/// The payment query kind, and the decisions of a query that changed nothing: it found
/// the trade unpaid (`ok`) or already applied (`Duplicate`).
pub const QUERY_KIND: &str = "query";
pub const QUERY_CHANGED_NOTHING: [&str; 2] = ["ok", "Duplicate"];
/// The refund query kind: only its failed calls may go (an `ok` may be the proof of a
/// refund completed by query).
pub const REFUND_QUERY_KIND: &str = "refund_query";
/// Decision prefix of a call that got no usable answer.
pub const FAILED_CALL_PREFIX: &str = "error:";
/// Decision prefix of a verified answer or notification we did not apply.
pub const REJECTED_PREFIX: &str = "rejected:";
/// Order statuses whose records are kept for good (money moved); so are held orders'.
pub const KEPT_STATUSES: [OrderStatus; 2] = [OrderStatus::Paid, OrderStatus::Refunded];
/// Rows one purge statement looks at; purges go in steps this size so the database is
/// never held by one long delete.
pub const BATCH: i64 = 500;

/// The order a payment record names, as the purge sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordOrder {
    /// No order number, or one we have no order for.
    Unknown,
    Known {
        status: OrderStatus,
        needs_review: bool,
    },
}

/// May a payment record older than the window be deleted? (The purge's SQL says the same;
/// a test checks the two agree on every combination.)
pub fn record_may_go(kind: &str, decision: &str, verified: bool, order: RecordOrder) -> bool {
    let failed_call = decision.starts_with(FAILED_CALL_PREFIX);
    if kind == QUERY_KIND && (failed_call || QUERY_CHANGED_NOTHING.contains(&decision)) {
        return true;
    }
    if kind == REFUND_QUERY_KIND && failed_call {
        return true;
    }
    match order {
        RecordOrder::Unknown => !verified,
        RecordOrder::Known {
            status,
            needs_review,
        } => {
            let money_moved = KEPT_STATUSES.contains(&status) || needs_review;
            let rejected_answer = verified && decision.starts_with(REJECTED_PREFIX);
            !(money_moved || rejected_answer)
        }
    }
}

/// Rows created before this time are past a `days`-long window (`None`: keep forever).
pub fn cutoff(now: NaiveDateTime, days: i64) -> Option<NaiveDateTime> {
    (days > 0).then(|| now - chrono::Duration::days(days))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_days_keeps_forever_and_a_window_counts_back_from_now() {
        let now = chrono::DateTime::from_timestamp(1_800_000_000, 0)
            .unwrap_or_default()
            .naive_utc();
        assert_eq!(cutoff(now, 0), None);
        assert_eq!(cutoff(now, -3), None);
        assert_eq!(cutoff(now, 90), Some(now - chrono::Duration::days(90)));
    }

    fn known(status: OrderStatus, needs_review: bool) -> RecordOrder {
        RecordOrder::Known {
            status,
            needs_review,
        }
    }

    #[test]
    fn the_evidence_of_a_payment_stays() {
        let paid = known(OrderStatus::Paid, false);
        assert!(!record_may_go("notification", "Applied", true, paid));
        assert!(!record_may_go("query", "Applied", true, paid));
        assert!(!record_may_go("prepay", "ok", true, paid));
        assert!(!record_may_go("refund_query", "ok", true, paid));
        // A mismatched payment found by query, on an order held for review.
        let held = known(OrderStatus::Pending, true);
        assert!(!record_may_go(
            "query",
            "rejected: amount differs",
            true,
            held
        ));
        assert!(!record_may_go("prepay", "ok", true, held));
        // A signed notification for an order we no longer have.
        assert!(!record_may_go(
            "notification",
            "rejected: unknown order",
            true,
            RecordOrder::Unknown
        ));
        // A verified answer rejected on a cancelled order.
        let cancelled = known(OrderStatus::Cancelled, false);
        assert!(!record_may_go(
            "notification",
            "rejected: x",
            true,
            cancelled
        ));
    }

    #[test]
    fn what_changed_nothing_goes() {
        let paid = known(OrderStatus::Refunded, false);
        assert!(record_may_go("query", "ok", true, paid));
        assert!(record_may_go("query", "Duplicate", true, paid));
        assert!(record_may_go("query", "error: timed out", false, paid));
        assert!(record_may_go(
            "refund_query",
            "error: timed out",
            false,
            paid
        ));
        let cancelled = known(OrderStatus::Cancelled, false);
        assert!(record_may_go("prepay", "ok", true, cancelled));
        assert!(record_may_go("close", "ok", true, cancelled));
        assert!(record_may_go(
            "notification",
            "rejected: bad signature",
            false,
            cancelled
        ));
        assert!(record_may_go(
            "notification",
            "rejected: bad signature",
            false,
            RecordOrder::Unknown
        ));
    }
}
