//! Three-way reconciliation rules: a provider's daily bill against our orders and refunds.
//!
//! Days are China time (UTC+8), as both providers cut their bills. The caller hands in
//! every order and refund that may concern the day (see [`Window`]: the day widened by
//! [`TOLERANCE_SECS`] on each side, plus every one the bill names), and gets back one item
//! per bill row and per of ours that the bill lacks, and the day's totals. Nothing here
//! reads or writes anything.

use std::collections::{HashMap, HashSet};

use api_types::admin::RefundStatus;
use api_types::payment::{OrderStatus, PaymentMethod};
use api_types::reconciliation::ReconItemKind;
use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};

use super::bills::{BillKind, BillRow, BillTotals};

/// China Standard Time (no daylight saving).
pub const CHINA_OFFSET_SECS: i32 = 8 * 3600;
/// Ours paid or refunded this close outside the day still match a row of the day
/// (a late notification, a clock a few seconds off), and are never flagged absent.
pub const TOLERANCE_SECS: i64 = 3600;

/// The UTC instants a China-time day covers, `[start, end)`, and the wider window in
/// which our records are loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Window {
    /// The China-time `day`.
    pub fn china_day(day: NaiveDate) -> Window {
        // Midnight in China is 16:00 UTC the day before.
        let start = day.and_time(NaiveTime::MIN).and_utc()
            - Duration::seconds(i64::from(CHINA_OFFSET_SECS));
        Window {
            start,
            end: start + Duration::days(1),
        }
    }

    /// This window widened by [`TOLERANCE_SECS`] on both sides: what to load.
    pub fn widened(self) -> Window {
        Window {
            start: self.start - Duration::seconds(TOLERANCE_SECS),
            end: self.end + Duration::seconds(TOLERANCE_SECS),
        }
    }

    pub fn contains(self, t: DateTime<Utc>) -> bool {
        t >= self.start && t < self.end
    }
}

/// The China-time day an instant falls in.
pub fn china_day_of(t: DateTime<Utc>) -> NaiveDate {
    (t + Duration::seconds(i64::from(CHINA_OFFSET_SECS)))
        .naive_utc()
        .date()
}

/// The day a job run on `now` reconciles: yesterday, China time.
pub fn yesterday_in_china(now: DateTime<Utc>) -> NaiveDate {
    china_day_of(now) - Duration::days(1)
}

/// Whether the daily job may reconcile yesterday yet: it is past `hour` (China time).
pub fn bills_due(now: DateTime<Utc>, hour: u32) -> bool {
    let local = now + Duration::seconds(i64::from(CHINA_OFFSET_SECS));
    chrono::Timelike::hour(&local.naive_utc()) >= hour
}

/// Our order as the reconciliation sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderSnap {
    pub order_no: String,
    pub status: OrderStatus,
    pub amount_fen: i64,
    pub provider_trade_no: Option<String>,
    pub paid_at: Option<DateTime<Utc>>,
}

/// Our refund as the reconciliation sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefundSnap {
    pub out_refund_no: String,
    pub order_no: String,
    pub amount_fen: i64,
    pub status: RefundStatus,
    pub succeeded_at: Option<DateTime<Utc>>,
}

/// One matched pair or one difference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub kind: ReconItemKind,
    pub order_no: Option<String>,
    pub out_refund_no: Option<String>,
    pub provider_trade_no: Option<String>,
    pub our_amount_fen: Option<i64>,
    pub provider_amount_fen: Option<i64>,
    pub our_status: Option<String>,
    pub provider_status: Option<String>,
    pub detail: String,
}

/// The day's figures.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Sum of the bill's payment rows.
    pub bill_payments_fen: i64,
    /// Sum of the bill's refund rows.
    pub bill_refunds_fen: i64,
    /// The provider's fees (net of fees given back with refunds).
    pub bill_fees_fen: i64,
    /// Settlement: payments - refunds - fees.
    pub net_fen: i64,
    /// Our payments within the day.
    pub our_payments_fen: i64,
    /// Our successful refunds within the day.
    pub our_refunds_fen: i64,
}

/// What the match found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Differences first (in a stable order), then the matched items.
    pub items: Vec<Item>,
    pub totals: Totals,
}

impl Outcome {
    pub fn differences(&self) -> impl Iterator<Item = &Item> {
        self.items.iter().filter(|i| i.kind.is_difference())
    }

    pub fn difference_count(&self) -> usize {
        self.differences().count()
    }

    pub fn matched_count(&self) -> usize {
        self.items.len() - self.difference_count()
    }
}

fn base(kind: ReconItemKind) -> Item {
    Item {
        kind,
        order_no: None,
        out_refund_no: None,
        provider_trade_no: None,
        our_amount_fen: None,
        provider_amount_fen: None,
        our_status: None,
        provider_status: None,
        detail: String::new(),
    }
}

fn payment_item(
    kind: ReconItemKind,
    row: &BillRow,
    ours: Option<&OrderSnap>,
    detail: String,
) -> Item {
    Item {
        order_no: Some(row.out_trade_no.clone()),
        provider_trade_no: Some(row.provider_trade_no.clone()),
        our_amount_fen: ours.map(|o| o.amount_fen),
        provider_amount_fen: Some(row.amount_fen),
        our_status: ours.map(|o| o.status.as_str().to_string()),
        provider_status: Some(row.status.clone()),
        detail,
        ..base(kind)
    }
}

fn refund_item(
    kind: ReconItemKind,
    row: &BillRow,
    ours: Option<&RefundSnap>,
    detail: String,
) -> Item {
    Item {
        order_no: Some(row.out_trade_no.clone()),
        out_refund_no: row
            .out_refund_no
            .clone()
            .or_else(|| ours.map(|r| r.out_refund_no.clone())),
        provider_trade_no: Some(row.provider_trade_no.clone()),
        our_amount_fen: ours.map(|r| r.amount_fen),
        provider_amount_fen: Some(row.amount_fen),
        our_status: ours.map(|r| r.status.as_str().to_string()),
        provider_status: Some(row.status.clone()),
        detail,
        ..base(kind)
    }
}

/// Match one provider's bill for `day` against our orders and refunds of that provider.
///
/// `orders` and `refunds` should hold everything of ours touching [`Window::widened`]
/// plus every record the bill names; more is harmless (ours outside the day are never
/// reported absent), fewer makes rows look unknown.
pub fn reconcile(
    provider: PaymentMethod,
    day: NaiveDate,
    rows: &[BillRow],
    stated: Option<&BillTotals>,
    orders: &[OrderSnap],
    refunds: &[RefundSnap],
) -> Outcome {
    let window = Window::china_day(day);
    let by_order: HashMap<&str, &OrderSnap> =
        orders.iter().map(|o| (o.order_no.as_str(), o)).collect();
    let by_refund: HashMap<&str, &RefundSnap> = refunds
        .iter()
        .map(|r| (r.out_refund_no.as_str(), r))
        .collect();
    let mut items = Vec::new();
    let mut totals = Totals::default();
    let mut paid_rows: HashSet<&str> = HashSet::new();
    let mut refund_rows: HashSet<String> = HashSet::new();
    for row in rows.iter().filter(|r| r.provider == provider) {
        match row.kind {
            BillKind::Payment => {
                totals.bill_payments_fen += row.amount_fen;
                totals.bill_fees_fen += row.fee_fen;
                if !paid_rows.insert(row.out_trade_no.as_str()) {
                    items.push(payment_item(
                        ReconItemKind::DuplicateInBill,
                        row,
                        by_order.get(row.out_trade_no.as_str()).copied(),
                        "the bill lists this payment more than once".into(),
                    ));
                    continue;
                }
                items.push(match_payment(
                    row,
                    by_order.get(row.out_trade_no.as_str()).copied(),
                ));
            }
            BillKind::Refund => {
                totals.bill_refunds_fen += row.amount_fen;
                totals.bill_fees_fen += row.fee_fen;
                // A refund row without our refund number is keyed by the provider's.
                let key = row
                    .out_refund_no
                    .clone()
                    .or_else(|| row.provider_refund_no.clone())
                    .unwrap_or_else(|| format!("{}#{}", row.out_trade_no, row.amount_fen));
                if !refund_rows.insert(key.clone()) {
                    items.push(refund_item(
                        ReconItemKind::DuplicateInBill,
                        row,
                        by_refund.get(key.as_str()).copied(),
                        "the bill lists this refund more than once".into(),
                    ));
                    continue;
                }
                items.push(match_refund(
                    row,
                    by_refund.get(key.as_str()).copied(),
                    by_order.contains_key(row.out_trade_no.as_str()),
                ));
            }
        }
    }
    // Ours within the day that the bill lacks. Refunded orders were paid too.
    let mut ours_sorted: Vec<&OrderSnap> = orders.iter().collect();
    ours_sorted.sort_by(|a, b| a.order_no.cmp(&b.order_no));
    for o in ours_sorted {
        let paid = matches!(o.status, OrderStatus::Paid | OrderStatus::Refunded);
        let Some(at) = o.paid_at.filter(|_| paid) else {
            continue;
        };
        if !window.contains(at) {
            continue;
        }
        totals.our_payments_fen += o.amount_fen;
        if !paid_rows.contains(o.order_no.as_str()) {
            items.push(Item {
                order_no: Some(o.order_no.clone()),
                provider_trade_no: o.provider_trade_no.clone(),
                our_amount_fen: Some(o.amount_fen),
                our_status: Some(o.status.as_str().to_string()),
                detail: "paid here within the day; the provider's bill has no such payment".into(),
                ..base(ReconItemKind::MissingAtProvider)
            });
        }
    }
    let mut refunds_sorted: Vec<&RefundSnap> = refunds.iter().collect();
    refunds_sorted.sort_by(|a, b| a.out_refund_no.cmp(&b.out_refund_no));
    for r in refunds_sorted {
        let Some(at) = r
            .succeeded_at
            .filter(|_| r.status == RefundStatus::Succeeded)
        else {
            continue;
        };
        if !window.contains(at) {
            continue;
        }
        totals.our_refunds_fen += r.amount_fen;
        if !refund_rows.contains(&r.out_refund_no) {
            items.push(Item {
                order_no: Some(r.order_no.clone()),
                out_refund_no: Some(r.out_refund_no.clone()),
                our_amount_fen: Some(r.amount_fen),
                our_status: Some(r.status.as_str().to_string()),
                detail: "refunded here within the day; the provider's bill has no such refund"
                    .into(),
                ..base(ReconItemKind::RefundMissingAtProvider)
            });
        }
    }
    totals.net_fen = totals.bill_payments_fen - totals.bill_refunds_fen - totals.bill_fees_fen;
    if let Some(s) = stated {
        let counted = rows.iter().filter(|r| r.provider == provider).count() as i64;
        let sums = (
            totals.bill_payments_fen,
            totals.bill_refunds_fen,
            totals.bill_fees_fen,
        );
        if s.rows != counted || (s.payments_fen, s.refunds_fen, s.fees_fen) != sums {
            items.push(Item {
                our_amount_fen: Some(totals.bill_payments_fen),
                provider_amount_fen: Some(s.payments_fen),
                detail: format!(
                    "the bill's summary states {} rows, payments {}, refunds {}, fees {} fen; \
                     its rows add up to {counted} rows, payments {}, refunds {}, fees {} fen",
                    s.rows, s.payments_fen, s.refunds_fen, s.fees_fen, sums.0, sums.1, sums.2
                ),
                ..base(ReconItemKind::BillTotalsMismatch)
            });
        }
    }
    // Differences first; stable within each group.
    items.sort_by_key(|i| !i.kind.is_difference());
    Outcome { items, totals }
}

fn match_payment(row: &BillRow, ours: Option<&OrderSnap>) -> Item {
    let Some(o) = ours else {
        return payment_item(
            ReconItemKind::UnknownOrder,
            row,
            None,
            "the bill names an order number we never issued for this provider".into(),
        );
    };
    match o.status {
        OrderStatus::Pending | OrderStatus::Cancelled => payment_item(
            ReconItemKind::MissingHere,
            row,
            Some(o),
            format!("paid at the provider; {} here", o.status.as_str()),
        ),
        OrderStatus::Paid | OrderStatus::Refunded => {
            if o.amount_fen != row.amount_fen {
                payment_item(
                    ReconItemKind::AmountMismatch,
                    row,
                    Some(o),
                    format!(
                        "the provider was paid {} fen; the order is {} fen",
                        row.amount_fen, o.amount_fen
                    ),
                )
            } else if o
                .provider_trade_no
                .as_deref()
                .is_some_and(|t| t != row.provider_trade_no)
            {
                payment_item(
                    ReconItemKind::StatusMismatch,
                    row,
                    Some(o),
                    format!(
                        "the bill's transaction id {} differs from ours {}",
                        row.provider_trade_no,
                        o.provider_trade_no.as_deref().unwrap_or_default()
                    ),
                )
            } else {
                payment_item(ReconItemKind::Matched, row, Some(o), String::new())
            }
        }
    }
}

fn match_refund(row: &BillRow, ours: Option<&RefundSnap>, order_known: bool) -> Item {
    let Some(r) = ours else {
        let detail = if order_known {
            "refunded at the provider; no such refund here".to_string()
        } else {
            "refunded at the provider for an order number we never issued".to_string()
        };
        let kind = if order_known {
            ReconItemKind::RefundMissingHere
        } else {
            ReconItemKind::UnknownOrder
        };
        return refund_item(kind, row, None, detail);
    };
    if r.order_no != row.out_trade_no {
        return refund_item(
            ReconItemKind::RefundMissingHere,
            row,
            Some(r),
            format!(
                "the bill's refund is for order {}; ours is for {}",
                row.out_trade_no, r.order_no
            ),
        );
    }
    if r.status != RefundStatus::Succeeded {
        return refund_item(
            ReconItemKind::RefundMissingHere,
            row,
            Some(r),
            format!("refunded at the provider; {} here", r.status.as_str()),
        );
    }
    if r.amount_fen != row.amount_fen {
        return refund_item(
            ReconItemKind::RefundAmountMismatch,
            row,
            Some(r),
            format!(
                "the provider refunded {} fen; ours is {} fen",
                row.amount_fen, r.amount_fen
            ),
        );
    }
    refund_item(ReconItemKind::Matched, row, Some(r), String::new())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const W: PaymentMethod = PaymentMethod::Wechat;

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, 4).unwrap()
    }

    /// China time on 2026-12-04 (or the day after with h >= 24).
    fn cn(h: u32, m: u32, s: u32, ms: u32) -> DateTime<Utc> {
        let (d, h) = if h >= 24 { (5, h - 24) } else { (4, h) };
        Utc.with_ymd_and_hms(2026, 12, d, h, m, s).unwrap() - Duration::hours(8)
            + Duration::milliseconds(i64::from(ms))
    }

    fn pay_row(no: &str, fen: i64, at: DateTime<Utc>) -> BillRow {
        BillRow {
            provider: W,
            kind: BillKind::Payment,
            out_trade_no: no.into(),
            provider_trade_no: format!("T{no}"),
            out_refund_no: None,
            provider_refund_no: None,
            amount_fen: fen,
            fee_fen: fen * 6 / 1000,
            status: "SUCCESS".into(),
            occurred_at: at,
        }
    }

    fn refund_row(no: &str, rno: &str, fen: i64, at: DateTime<Utc>) -> BillRow {
        BillRow {
            kind: BillKind::Refund,
            out_refund_no: Some(rno.into()),
            provider_refund_no: Some(format!("R{rno}")),
            fee_fen: -(fen * 6 / 1000),
            status: "REFUND".into(),
            ..pay_row(no, fen, at)
        }
    }

    fn order(no: &str, status: OrderStatus, fen: i64, paid: Option<DateTime<Utc>>) -> OrderSnap {
        OrderSnap {
            order_no: no.into(),
            status,
            amount_fen: fen,
            provider_trade_no: paid.map(|_| format!("T{no}")),
            paid_at: paid,
        }
    }

    fn refund(
        no: &str,
        rno: &str,
        fen: i64,
        status: RefundStatus,
        at: Option<DateTime<Utc>>,
    ) -> RefundSnap {
        RefundSnap {
            out_refund_no: rno.into(),
            order_no: no.into(),
            amount_fen: fen,
            status,
            succeeded_at: at,
        }
    }

    fn kinds(o: &Outcome) -> Vec<(ReconItemKind, Option<String>)> {
        o.items
            .iter()
            .map(|i| (i.kind, i.out_refund_no.clone().or(i.order_no.clone())))
            .collect()
    }

    fn run(rows: &[BillRow], orders: &[OrderSnap], refunds: &[RefundSnap]) -> Outcome {
        reconcile(W, day(), rows, None, orders, refunds)
    }

    #[test]
    fn china_day_window_is_utc_plus_8() {
        let w = Window::china_day(day());
        assert_eq!(
            w.start,
            Utc.with_ymd_and_hms(2026, 12, 3, 16, 0, 0).unwrap()
        );
        assert_eq!(w.end, Utc.with_ymd_and_hms(2026, 12, 4, 16, 0, 0).unwrap());
        assert!(w.contains(cn(0, 0, 0, 0)));
        assert!(w.contains(cn(23, 59, 59, 900)));
        assert!(!w.contains(cn(24, 0, 0, 0)));
        assert_eq!(w.widened().start, w.start - Duration::hours(1));
        assert_eq!(china_day_of(cn(23, 59, 59, 999)), day());
        assert_eq!(china_day_of(cn(24, 0, 0, 0)), day().succ_opt().unwrap());
        // 01:00 UTC on the 5th is 09:00 in China: yesterday there is the 4th.
        let now = Utc.with_ymd_and_hms(2026, 12, 5, 1, 0, 0).unwrap();
        assert_eq!(yesterday_in_china(now), day());
        assert!(!bills_due(now, 10));
        assert!(bills_due(now + Duration::hours(1), 10));
        // 17:00 UTC on the 4th is already the 5th in China.
        let late = Utc.with_ymd_and_hms(2026, 12, 4, 17, 0, 0).unwrap();
        assert_eq!(yesterday_in_china(late), day());
    }

    #[test]
    fn everything_agrees() {
        let rows = [
            pay_row("A", 1000, cn(9, 0, 0, 0)),
            pay_row("B", 2500, cn(23, 59, 59, 900)),
            refund_row("A", "RA", 400, cn(12, 0, 0, 0)),
        ];
        let orders = [
            order("A", OrderStatus::Paid, 1000, Some(cn(9, 0, 0, 0))),
            order("B", OrderStatus::Paid, 2500, Some(cn(23, 59, 59, 900))),
        ];
        let refunds = [refund(
            "A",
            "RA",
            400,
            RefundStatus::Succeeded,
            Some(cn(12, 0, 0, 0)),
        )];
        let out = run(&rows, &orders, &refunds);
        assert_eq!(out.difference_count(), 0, "{:?}", out.items);
        assert_eq!(out.matched_count(), 3);
        assert_eq!(out.totals.bill_payments_fen, 3500);
        assert_eq!(out.totals.bill_refunds_fen, 400);
        // fees: 6 + 15 - 2
        assert_eq!(out.totals.bill_fees_fen, 19);
        assert_eq!(out.totals.net_fen, 3500 - 400 - 19);
        assert_eq!(out.totals.our_payments_fen, 3500);
        assert_eq!(out.totals.our_refunds_fen, 400);
    }

    #[test]
    fn a_late_notification_still_matches_and_ours_beyond_the_day_are_not_absent() {
        // Paid at 23:59:58 at the provider; our paid_at says 00:00:03 the next day.
        let rows = [pay_row("L", 100, cn(23, 59, 58, 0))];
        let orders = [
            order("L", OrderStatus::Paid, 100, Some(cn(24, 0, 3, 0))),
            // Paid just before the day and just after it: other days' bills.
            order(
                "P",
                OrderStatus::Paid,
                100,
                Some(cn(0, 0, 0, 0) - Duration::milliseconds(1)),
            ),
            order("N", OrderStatus::Paid, 100, Some(cn(24, 0, 0, 0))),
        ];
        let out = run(&rows, &orders, &[]);
        assert_eq!(
            kinds(&out),
            vec![(ReconItemKind::Matched, Some("L".into()))]
        );
        // Our figure counts only ours strictly inside the day.
        assert_eq!(out.totals.our_payments_fen, 0);
    }

    #[test]
    fn boundary_orders_inside_the_day_are_flagged_when_absent() {
        let orders = [
            order("FIRST", OrderStatus::Paid, 100, Some(cn(0, 0, 0, 0))),
            order(
                "LAST",
                OrderStatus::Refunded,
                200,
                Some(cn(23, 59, 59, 900)),
            ),
        ];
        let out = run(&[], &orders, &[]);
        assert_eq!(
            kinds(&out),
            vec![
                (ReconItemKind::MissingAtProvider, Some("FIRST".into())),
                (ReconItemKind::MissingAtProvider, Some("LAST".into())),
            ]
        );
        assert_eq!(out.totals.our_payments_fen, 300);
    }

    #[test]
    fn paid_at_the_provider_but_pending_or_cancelled_here_is_missing_here() {
        let rows = [
            pay_row("D", 100, cn(10, 0, 0, 0)),
            pay_row("C", 300, cn(11, 0, 0, 0)),
        ];
        let orders = [
            order("D", OrderStatus::Pending, 100, None),
            order("C", OrderStatus::Cancelled, 300, None),
        ];
        let out = run(&rows, &orders, &[]);
        assert_eq!(
            kinds(&out),
            vec![
                (ReconItemKind::MissingHere, Some("D".into())),
                (ReconItemKind::MissingHere, Some("C".into())),
            ]
        );
        assert_eq!(out.items[1].our_status.as_deref(), Some("cancelled"));
        assert_eq!(out.items[1].provider_amount_fen, Some(300));
    }

    #[test]
    fn unknown_orders_amounts_and_transaction_ids() {
        let rows = [
            pay_row("X", 100, cn(10, 0, 0, 0)),
            pay_row("A", 999, cn(10, 0, 0, 0)),
            pay_row("T", 100, cn(10, 0, 0, 0)),
        ];
        let mut t = order("T", OrderStatus::Paid, 100, Some(cn(10, 0, 0, 0)));
        t.provider_trade_no = Some("OTHER".into());
        let orders = [
            order("A", OrderStatus::Paid, 1000, Some(cn(10, 0, 0, 0))),
            t,
        ];
        let out = run(&rows, &orders, &[]);
        assert_eq!(
            kinds(&out),
            vec![
                (ReconItemKind::UnknownOrder, Some("X".into())),
                (ReconItemKind::AmountMismatch, Some("A".into())),
                (ReconItemKind::StatusMismatch, Some("T".into())),
            ]
        );
        assert_eq!(out.items[1].our_amount_fen, Some(1000));
        assert_eq!(out.items[1].provider_amount_fen, Some(999));
    }

    #[test]
    fn duplicates_in_the_bill_are_reported_once_each() {
        let rows = [
            pay_row("A", 100, cn(10, 0, 0, 0)),
            pay_row("A", 100, cn(10, 0, 0, 0)),
            refund_row("A", "RA", 50, cn(11, 0, 0, 0)),
            refund_row("A", "RA", 50, cn(11, 0, 0, 0)),
        ];
        let orders = [order("A", OrderStatus::Paid, 100, Some(cn(10, 0, 0, 0)))];
        let refunds = [refund(
            "A",
            "RA",
            50,
            RefundStatus::Succeeded,
            Some(cn(11, 0, 0, 0)),
        )];
        let out = run(&rows, &orders, &refunds);
        assert_eq!(
            kinds(&out),
            vec![
                (ReconItemKind::DuplicateInBill, Some("A".into())),
                (ReconItemKind::DuplicateInBill, Some("RA".into())),
                (ReconItemKind::Matched, Some("A".into())),
                (ReconItemKind::Matched, Some("RA".into())),
            ]
        );
        // The bill's figures are the bill's: both rows count.
        assert_eq!(out.totals.bill_payments_fen, 200);
        assert_eq!(out.totals.bill_refunds_fen, 100);
    }

    #[test]
    fn refund_differences() {
        let rows = [
            refund_row("A", "R1", 50, cn(11, 0, 0, 0)), // processing here
            refund_row("A", "R2", 70, cn(11, 0, 0, 0)), // amount differs
            refund_row("A", "R3", 10, cn(11, 0, 0, 0)), // no such refund here
            refund_row("Z", "R9", 10, cn(11, 0, 0, 0)), // no such order
        ];
        let orders = [order("A", OrderStatus::Paid, 1000, Some(cn(10, 0, 0, 0)))];
        let refunds = [
            refund("A", "R1", 50, RefundStatus::Processing, None),
            refund(
                "A",
                "R2",
                60,
                RefundStatus::Succeeded,
                Some(cn(11, 0, 0, 0)),
            ),
            // Succeeded within the day, absent from the bill.
            refund(
                "A",
                "R4",
                20,
                RefundStatus::Succeeded,
                Some(cn(23, 59, 59, 999)),
            ),
            // Succeeded the next day: another bill.
            refund(
                "A",
                "R5",
                20,
                RefundStatus::Succeeded,
                Some(cn(24, 0, 0, 1)),
            ),
            // Failed: refunded nothing.
            refund("A", "R6", 20, RefundStatus::Failed, None),
        ];
        let out = run(&rows, &orders, &refunds);
        assert_eq!(
            kinds(&out),
            vec![
                (ReconItemKind::RefundMissingHere, Some("R1".into())),
                (ReconItemKind::RefundAmountMismatch, Some("R2".into())),
                (ReconItemKind::RefundMissingHere, Some("R3".into())),
                (ReconItemKind::UnknownOrder, Some("R9".into())),
                (ReconItemKind::MissingAtProvider, Some("A".into())),
                (ReconItemKind::RefundMissingAtProvider, Some("R4".into())),
            ]
        );
        assert_eq!(out.totals.our_refunds_fen, 60 + 20);
    }

    #[test]
    fn other_providers_rows_are_ignored_and_the_summary_is_checked() {
        let mut ali = pay_row("B", 100, cn(10, 0, 0, 0));
        ali.provider = PaymentMethod::Alipay;
        let rows = [pay_row("A", 1000, cn(10, 0, 0, 0)), ali];
        let orders = [order("A", OrderStatus::Paid, 1000, Some(cn(10, 0, 0, 0)))];
        let good = BillTotals {
            rows: 1,
            payments_fen: 1000,
            refunds_fen: 0,
            fees_fen: 6,
        };
        let out = reconcile(W, day(), &rows, Some(&good), &orders, &[]);
        assert_eq!(out.difference_count(), 0, "{:?}", out.items);
        let bad = BillTotals {
            payments_fen: 1100,
            ..good
        };
        let out = reconcile(W, day(), &rows, Some(&bad), &orders, &[]);
        assert_eq!(out.items[0].kind, ReconItemKind::BillTotalsMismatch);
        assert_eq!(out.difference_count(), 1);
    }

    #[test]
    fn kinds_round_trip_their_codes() {
        for k in ReconItemKind::ALL {
            assert_eq!(ReconItemKind::parse(k.as_str()), Some(k));
            assert_eq!(
                serde_json::to_value(k).unwrap(),
                serde_json::Value::String(k.as_str().into())
            );
        }
        assert_eq!(ReconItemKind::parse("nope"), None);
    }
}
