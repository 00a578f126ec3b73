//! How long fenpay keeps what it writes (the `RETENTION_*` settings).
//!
//! Never purged: orders, refunds and the balance ledger, and the payment records that are
//! an order's audit trail once money moved. Purged once older than their window:
//! - payment records (`RETENTION_RECORDS_DAYS`): provider queries that decided nothing,
//!   records of no order (forgeries, unknown trades) and every record of an order that was
//!   never paid and is not held for review. A record that applied a payment (including a
//!   query that found one) stays as long as its order is paid, refunded or held;
//! - events (`RETENTION_EVENTS_DAYS`): an event whose every webhook delivery arrived (or
//!   that had none), with its deliveries and their attempts. An event with a delivery still
//!   pending or given up stays, so an operator can still resend it;
//! - `Idempotency-Key` answers, once they expired (24 h).
//!
//! A window of 0 days keeps that kind forever.

use api_types::payment::OrderStatus;
use chrono::NaiveDateTime;

/// Payment record kinds that only say what a provider answered when asked.
pub const QUERY_KINDS: [&str; 2] = ["query", "refund_query"];
/// Decisions that make a record the evidence of a payment.
pub const EVIDENCE_DECISIONS: [&str; 2] = ["Applied", "PaidAfterCancel"];
/// Order statuses whose payment records are kept for good (money moved).
pub const KEPT_STATUSES: [OrderStatus; 2] = [OrderStatus::Paid, OrderStatus::Refunded];
/// Rows one purge statement removes; a purge loops in batches this size so the database
/// is never held by one long delete.
pub const BATCH: i64 = 500;

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
}
