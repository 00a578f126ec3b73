//! The order state machine and order numbers.
//!
//! Every transition is decided here and persisted as a compare-and-set
//! (`UPDATE ... WHERE order_no = ? AND status = <from>`); the row count decides the winner.

use api_types::payment::{CancelReason, OrderStatus};
use rand::Rng;

/// What can happen to an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderEvent {
    /// The provider confirmed the payment (notification or query).
    Pay,
    /// The buyer cancelled, or the order expired.
    Cancel(CancelReason),
    /// A refund of `amount` fen out of `refundable` fen still refundable.
    Refund { amount: i64, refundable: i64 },
}

/// The outcome of applying an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// Persist `from -> to` as a compare-and-set.
    Move { from: OrderStatus, to: OrderStatus },
    /// Nothing to do: the event was already applied (duplicate notification, repeated cancel).
    AlreadyDone,
    /// Paid after the order was cancelled: the money arrived anyway, so the order becomes
    /// paid (never lose a payment) and is flagged for review.
    PaidAfterCancel,
}

/// Why an event cannot apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("order is already paid")]
    AlreadyPaid,
    #[error("order is not pending")]
    NotPending,
    #[error("order is not paid")]
    NotPaid,
    #[error("refund amount must be positive and at most the refundable amount")]
    InvalidRefundAmount,
}

/// Decide what `event` does to an order in `status`.
pub fn decide(status: OrderStatus, event: OrderEvent) -> Result<Transition, TransitionError> {
    use OrderStatus::*;
    match (status, event) {
        (Pending, OrderEvent::Pay) => Ok(Transition::Move {
            from: Pending,
            to: Paid,
        }),
        (Paid | Refunded, OrderEvent::Pay) => Ok(Transition::AlreadyDone),
        (Cancelled, OrderEvent::Pay) => Ok(Transition::PaidAfterCancel),
        (Pending, OrderEvent::Cancel(_)) => Ok(Transition::Move {
            from: Pending,
            to: Cancelled,
        }),
        (Cancelled, OrderEvent::Cancel(_)) => Ok(Transition::AlreadyDone),
        (Paid | Refunded, OrderEvent::Cancel(_)) => Err(TransitionError::AlreadyPaid),
        (Paid, OrderEvent::Refund { amount, refundable }) => {
            if amount <= 0 || amount > refundable {
                Err(TransitionError::InvalidRefundAmount)
            } else if amount == refundable {
                Ok(Transition::Move {
                    from: Paid,
                    to: Refunded,
                })
            } else {
                Ok(Transition::Move {
                    from: Paid,
                    to: Paid,
                })
            }
        }
        (Pending | Cancelled | Refunded, OrderEvent::Refund { .. }) => {
            Err(TransitionError::NotPaid)
        }
    }
}

/// Characters WeChat allows in `out_trade_no` (and Alipay accepts): `[0-9A-Za-z_\-|*]`.
pub fn is_valid_order_no(s: &str) -> bool {
    (6..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'|' | b'*'))
}

/// A new order number: `FP` + UTC `yyyyMMddHHmmss` + 10 random digits (26 chars).
pub fn new_order_no(now: chrono::DateTime<chrono::Utc>) -> String {
    let mut rng = rand::thread_rng();
    let digits: String = (0..10)
        .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
        .collect();
    format!("FP{}{}", now.format("%Y%m%d%H%M%S"), digits)
}

/// The refund number for a refund requested without `out_refund_no` under an
/// `Idempotency-Key`: `RK` + 30 hex digits of SHA-256(actor, key). A retry of the same
/// request (after a 5xx, which the key does not store) then finds the refund the first try
/// reserved instead of opening a second one.
pub fn refund_no_for_key(actor: &str, key: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(actor.as_bytes())
        .chain_update([0u8])
        .chain_update(key.as_bytes())
        .finalize();
    format!("RK{}", &hex::encode(digest)[..30])
}

pub fn cancel_reason_str(r: CancelReason) -> &'static str {
    match r {
        CancelReason::User => "user",
        CancelReason::Expired => "expired",
    }
}

pub fn cancel_reason_from_str(s: &str) -> Option<CancelReason> {
    match s {
        "user" => Some(CancelReason::User),
        "expired" => Some(CancelReason::Expired),
        _ => None,
    }
}

/// Order amount in fen: unit price times quantity, refusing overflow.
pub fn order_amount(unit_price_fen: i64, quantity: i64) -> Option<i64> {
    if unit_price_fen <= 0 || quantity <= 0 {
        return None;
    }
    unit_price_fen.checked_mul(quantity)
}

/// Price of upgrading a membership for the time that remains on it: the difference of
/// the two tiers' daily prices times the remaining time, rounded up to the fen.
///
/// `None` when the target tier is not dearer per day (nothing to pay: not an upgrade).
pub fn upgrade_price(
    current_price_fen: i64,
    current_days: i64,
    target_price_fen: i64,
    target_days: i64,
    remaining_secs: i64,
) -> Option<i64> {
    if current_days <= 0 || target_days <= 0 || remaining_secs <= 0 {
        return None;
    }
    // Daily price difference as a fraction with denominator current_days * target_days.
    let per_day_num = i128::from(target_price_fen) * i128::from(current_days)
        - i128::from(current_price_fen) * i128::from(target_days);
    if per_day_num <= 0 {
        return None;
    }
    let num = per_day_num * i128::from(remaining_secs);
    let den = i128::from(current_days) * i128::from(target_days) * 86_400;
    let fen = (num + den - 1) / den;
    i64::try_from(fen).ok().filter(|f| *f > 0)
}

/// First wait before a failed paid-after-close check of a cancelled order is retried.
pub const PAID_CHECK_BACKOFF_BASE_SECS: i64 = 60;
/// Longest wait between retries.
pub const PAID_CHECK_BACKOFF_MAX_SECS: i64 = 3_600;

/// How long to wait before retrying the paid-after-close check after `failures` failed
/// queries (1 or more): 1 min, 2, 4, ... capped at 1 h.
pub fn paid_check_backoff_secs(failures: i32) -> i64 {
    let doublings = u32::try_from(failures.saturating_sub(1))
        .unwrap_or(0)
        .min(16);
    PAID_CHECK_BACKOFF_BASE_SECS
        .saturating_mul(1_i64 << doublings)
        .min(PAID_CHECK_BACKOFF_MAX_SECS)
}

/// How long the expiry sweeper waits before trying again to close an expired order whose
/// close failed `failures` times (1 or more): the same schedule as the paid-after-close
/// check, 1 min, 2, 4, ... capped at 1 h.
pub fn close_retry_backoff_secs(failures: i32) -> i64 {
    paid_check_backoff_secs(failures)
}

/// How often a pending order someone is watching (polling order-status, or an open event
/// stream) is checked with the provider, by its age: every 5 s for its first 30 s (most
/// buyers pay within them, and a lost notification must show within seconds), every 10 s
/// up to 2 minutes, 30 s up to 10 minutes, and once a minute after.
pub fn watch_gap_secs(age_secs: i64) -> i64 {
    match age_secs {
        ..30 => 5,
        30..120 => 10,
        120..600 => 30,
        _ => 60,
    }
}

/// A new code for the same purchase ("get a new code") is a new order that replaces the
/// old one. The orders of such a chain all name its first order: the chain a replacement
/// of `replaced_no` (itself in the chain of `replaced_root`, `None` when it started one)
/// belongs to.
pub fn renewal_root(replaced_no: &str, replaced_root: Option<&str>) -> String {
    replaced_root.unwrap_or(replaced_no).to_string()
}

/// Why an order can (or cannot) replace another: the same purchase (product, quantity,
/// upgrade or not), and the replaced order may never be paid once its replacement exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replacement {
    /// Still pending: close it at the provider and cancel it first (paid there wins).
    CloseFirst,
    /// Already closed: go ahead.
    Ready,
    /// Paid (or refunded): nothing to replace, the buyer has paid.
    AlreadyPaid,
    /// Another purchase: a replacement is the same product, quantity and upgrade flag.
    OtherPurchase,
}

/// Decide whether an order for (`product_id`, `quantity`, `is_upgrade`) may replace an
/// order in `status` that bought (`old_product_id`, `old_quantity`, `old_is_upgrade`).
pub fn replacement(
    status: OrderStatus,
    old: (i64, i64, bool),
    new: (i64, i64, bool),
) -> Replacement {
    match status {
        OrderStatus::Paid | OrderStatus::Refunded => Replacement::AlreadyPaid,
        _ if old != new => Replacement::OtherPurchase,
        OrderStatus::Pending => Replacement::CloseFirst,
        OrderStatus::Cancelled => Replacement::Ready,
    }
}

/// Does an order of `amount_fen` still count as paid while refunds of `refunding_fen`
/// (succeeded or under way) exist for it? Not once they return all of it.
pub fn still_paid(amount_fen: i64, refunding_fen: i64) -> bool {
    refunding_fen < amount_fen
}

/// A payment just applied to an order of a renewal chain is a duplicate when another
/// order of the same chain (same buyer, same purchase) is paid and not refunded:
/// `others_paid` are those orders. The later payment is the duplicate; the reason to
/// hold it for review, naming the order paid first.
pub fn duplicate_payment(others_paid: &[String]) -> Option<String> {
    let first = others_paid.iter().min()?;
    Some(format!(
        "duplicate payment: order {first} of the same purchase (renewed QR code) is already paid"
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    #[test]
    fn renewal_chains_and_duplicate_payments() {
        use super::{duplicate_payment, renewal_root, replacement, still_paid, Replacement};
        // An order being refunded in full no longer makes a later payment a duplicate.
        assert!(still_paid(1000, 0));
        assert!(still_paid(1000, 999));
        assert!(!still_paid(1000, 1000));
        use api_types::payment::OrderStatus::*;
        assert_eq!(
            renewal_root("FP1", None),
            "FP1",
            "replacing a first order starts its chain"
        );
        assert_eq!(
            renewal_root("FP2", Some("FP1")),
            "FP1",
            "a renewal of a renewal stays in the chain"
        );
        let same = (1, 1, false);
        assert_eq!(replacement(Pending, same, same), Replacement::CloseFirst);
        assert_eq!(replacement(Cancelled, same, same), Replacement::Ready);
        assert_eq!(replacement(Paid, same, same), Replacement::AlreadyPaid);
        assert_eq!(replacement(Refunded, same, same), Replacement::AlreadyPaid);
        for other in [(2, 1, false), (1, 2, false), (1, 1, true)] {
            assert_eq!(
                replacement(Pending, same, other),
                Replacement::OtherPurchase
            );
            assert_eq!(
                replacement(Cancelled, same, other),
                Replacement::OtherPurchase
            );
        }
        assert_eq!(
            duplicate_payment(&[]),
            None,
            "the first payment of a chain is not a duplicate"
        );
        let reason = duplicate_payment(&["FP9".into(), "FP3".into()]).unwrap();
        assert!(
            reason.starts_with("duplicate payment") && reason.contains("FP3"),
            "{reason}"
        );
    }

    #[test]
    fn refund_numbers_for_keys_are_stable_valid_and_per_actor() {
        use super::refund_no_for_key;
        let a = refund_no_for_key("admin-1", "key-1");
        assert_eq!(a, refund_no_for_key("admin-1", "key-1"));
        assert_ne!(a, refund_no_for_key("admin-2", "key-1"));
        assert_ne!(a, refund_no_for_key("admin-1", "key-2"));
        // No ambiguity between (actor, key) splits.
        assert_ne!(refund_no_for_key("ab", "c"), refund_no_for_key("a", "bc"));
        assert_eq!(a.len(), 32);
        assert!(a.starts_with("RK") && a[2..].bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn watched_orders_are_checked_less_often_as_they_age() {
        use super::watch_gap_secs;
        assert_eq!(watch_gap_secs(-5), 5, "clock skew: treat as new");
        assert_eq!(watch_gap_secs(0), 5);
        assert_eq!(watch_gap_secs(29), 5);
        assert_eq!(watch_gap_secs(30), 10);
        assert_eq!(watch_gap_secs(119), 10);
        assert_eq!(watch_gap_secs(120), 30);
        assert_eq!(watch_gap_secs(599), 30);
        assert_eq!(watch_gap_secs(600), 60);
        assert_eq!(watch_gap_secs(i64::MAX), 60);
        let mut last = 0;
        for age in (0..4_000).step_by(7) {
            let gap = watch_gap_secs(age);
            assert!(gap >= last, "never more often as the order ages");
            last = gap;
        }
    }

    #[test]
    fn upgrade_price_is_the_daily_difference_for_the_remaining_time() {
        use super::upgrade_price;
        // basic 29.00/30 days -> pro 99.00/30 days with 15 days left: (99-29)/2 = 35.00.
        assert_eq!(upgrade_price(2900, 30, 9900, 30, 15 * 86_400), Some(3500));
        // The whole period left: the full difference.
        assert_eq!(upgrade_price(2900, 30, 9900, 30, 30 * 86_400), Some(7000));
        // One second left still costs at least one fen (rounded up).
        assert_eq!(upgrade_price(2900, 30, 9900, 30, 1), Some(1));
        // Different period lengths compare daily prices: 30.00/30d vs 300.00/365d.
        assert_eq!(upgrade_price(3000, 30, 30000, 365, 10 * 86_400), None);
        assert_eq!(upgrade_price(3000, 30, 60000, 365, 10 * 86_400), Some(644));
        // Same or cheaper tier, or nothing left: not an upgrade.
        assert_eq!(upgrade_price(9900, 30, 2900, 30, 86_400), None);
        assert_eq!(upgrade_price(2900, 30, 2900, 30, 86_400), None);
        assert_eq!(upgrade_price(2900, 30, 9900, 30, 0), None);
        // Never overflows for large values.
        assert!(upgrade_price(i64::MAX / 2, 1, i64::MAX, 1, 86_400).is_some());
    }

    use super::*;
    use OrderStatus::*;

    const ALL: [OrderStatus; 4] = [Pending, Paid, Cancelled, Refunded];

    fn events() -> Vec<OrderEvent> {
        vec![
            OrderEvent::Pay,
            OrderEvent::Cancel(CancelReason::User),
            OrderEvent::Cancel(CancelReason::Expired),
            OrderEvent::Refund {
                amount: 100,
                refundable: 100,
            },
            OrderEvent::Refund {
                amount: 40,
                refundable: 100,
            },
            OrderEvent::Refund {
                amount: 0,
                refundable: 100,
            },
            OrderEvent::Refund {
                amount: 101,
                refundable: 100,
            },
        ]
    }

    /// Every (status, event) pair has exactly the expected outcome.
    #[test]
    fn exhaustive_transition_table() {
        for status in ALL {
            for event in events() {
                let got = decide(status, event);
                let expected = match (status, event) {
                    (Pending, OrderEvent::Pay) => Ok(Transition::Move {
                        from: Pending,
                        to: Paid,
                    }),
                    (Paid | Refunded, OrderEvent::Pay) => Ok(Transition::AlreadyDone),
                    (Cancelled, OrderEvent::Pay) => Ok(Transition::PaidAfterCancel),
                    (Pending, OrderEvent::Cancel(_)) => Ok(Transition::Move {
                        from: Pending,
                        to: Cancelled,
                    }),
                    (Cancelled, OrderEvent::Cancel(_)) => Ok(Transition::AlreadyDone),
                    (Paid | Refunded, OrderEvent::Cancel(_)) => Err(TransitionError::AlreadyPaid),
                    (Paid, OrderEvent::Refund { amount: 100, .. }) => Ok(Transition::Move {
                        from: Paid,
                        to: Refunded,
                    }),
                    (Paid, OrderEvent::Refund { amount: 40, .. }) => Ok(Transition::Move {
                        from: Paid,
                        to: Paid,
                    }),
                    (Paid, OrderEvent::Refund { .. }) => Err(TransitionError::InvalidRefundAmount),
                    (_, OrderEvent::Refund { .. }) => Err(TransitionError::NotPaid),
                };
                assert_eq!(got, expected, "{status:?} + {event:?}");
            }
        }
    }

    #[test]
    fn no_event_leaves_a_terminal_money_state_backwards() {
        // A paid or refunded order can never become pending or cancelled.
        for status in [Paid, Refunded] {
            for event in events() {
                if let Ok(Transition::Move { to, .. }) = decide(status, event) {
                    assert!(
                        matches!(to, Paid | Refunded),
                        "{status:?} + {event:?} -> {to:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn order_numbers_fit_the_provider_charset() {
        let now = chrono::Utc::now();
        let a = new_order_no(now);
        let b = new_order_no(now);
        assert_eq!(a.len(), 26);
        assert!(is_valid_order_no(&a));
        assert_ne!(a, b);
        assert!(!is_valid_order_no("short"));
        assert!(!is_valid_order_no("has space 123"));
        assert!(!is_valid_order_no(&"x".repeat(33)));
        assert!(is_valid_order_no("abc_-|*123"));
    }

    #[test]
    fn statuses_round_trip_through_strings() {
        for s in ALL {
            assert_eq!(OrderStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(OrderStatus::parse("PAID"), None);
        for r in [CancelReason::User, CancelReason::Expired] {
            assert_eq!(cancel_reason_from_str(cancel_reason_str(r)), Some(r));
        }
    }

    #[test]
    fn amounts_refuse_overflow_and_nonsense() {
        assert_eq!(order_amount(990, 3), Some(2970));
        assert_eq!(order_amount(i64::MAX, 2), None);
        assert_eq!(order_amount(100, 0), None);
        assert_eq!(order_amount(0, 1), None);
    }

    #[test]
    fn paid_check_backoff_doubles_up_to_an_hour() {
        let waits: Vec<i64> = (1..=9).map(paid_check_backoff_secs).collect();
        assert_eq!(waits, [60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]);
        assert_eq!(paid_check_backoff_secs(0), 60);
        assert_eq!(paid_check_backoff_secs(i32::MAX), 3600);
    }
}
