//! Fulfilment and claw-back as pure rules over an order's snapshot and the account's
//! current balances.
//!
//! Every function returns the account as it must be afterwards and the ledger entry that
//! explains the difference; `db/` reads the account under its row lock, calls
//! [`decide`], and writes both in the transaction that changes the order or the refund.
//!
//! Membership rules:
//! - buying the tier the account holds extends it;
//! - buying another tier converts the remaining time at the ratio of the two tiers' daily
//!   prices (rounded down to the second), then adds the purchased days;
//! - an upgrade (`is_upgrade`) switches the tier for the time it paid for and keeps the
//!   expiry; time beyond what it paid for (an extension paid meanwhile) is converted;
//! - a refund takes back the refunded share of the points and purchased days (in the held
//!   tier's time if the tier changed since); a full refund of an upgrade restores the tier
//!   it upgraded from; a partial one keeps the tier and asks for review.

use chrono::{Duration, NaiveDateTime};

pub const DAY_SECS: i64 = 86_400;

/// A tier's price per period: its daily price is `price_fen / days`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub rank: i32,
    pub price_fen: i64,
    pub days: i64,
}

/// A membership tier with the rate it was sold at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tier {
    pub name: String,
    pub rate: Rate,
}

/// What an order bought, frozen when it was created.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Points credited on payment (per-unit points times quantity).
    pub points: i64,
    /// The membership tier bought, if any.
    pub tier: Option<Tier>,
    /// Days of membership granted (per-unit days times quantity; 0 for an upgrade).
    pub membership_days: i64,
    /// For an upgrade: the tier upgraded from.
    pub upgrade_from: Option<Tier>,
    /// For an upgrade: the seconds of remaining time the price paid for.
    pub upgrade_secs: i64,
}

/// An account's balances.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Account {
    pub points: i64,
    pub tier: Option<String>,
    /// The held tier's rate; `None` when unknown (data older than the ledger).
    pub rate: Option<Rate>,
    pub expires_at: Option<NaiveDateTime>,
}

impl Account {
    /// Seconds of membership left at `now` (0 without an active tier).
    pub fn remaining_secs(&self, now: NaiveDateTime) -> i64 {
        match (&self.tier, self.expires_at) {
            (Some(_), Some(e)) if e > now => (e - now).num_seconds(),
            _ => 0,
        }
    }
}

/// Why a ledger entry was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    Purchase,
    Upgrade,
    Clawback,
    UpgradeReverted,
    OpeningBalance,
    Adjustment,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Purchase => "purchase",
            Reason::Upgrade => "upgrade",
            Reason::Clawback => "clawback",
            Reason::UpgradeReverted => "upgrade_reverted",
            Reason::OpeningBalance => "opening_balance",
            Reason::Adjustment => "adjustment",
        }
    }

    pub fn parse(s: &str) -> Option<Reason> {
        Some(match s {
            "purchase" => Reason::Purchase,
            "upgrade" => Reason::Upgrade,
            "clawback" => Reason::Clawback,
            "upgrade_reverted" => Reason::UpgradeReverted,
            "opening_balance" => Reason::OpeningBalance,
            "adjustment" => Reason::Adjustment,
            _ => return None,
        })
    }
}

/// One ledger entry: the difference between the account before and after.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub delta_points: i64,
    pub points_after: i64,
    /// Remaining membership seconds after minus before, measured at the same instant.
    pub delta_membership_secs: i64,
    pub tier_before: Option<String>,
    pub tier_after: Option<String>,
    pub expires_before: Option<NaiveDateTime>,
    pub expires_after: Option<NaiveDateTime>,
    pub reason: Reason,
}

/// What to write: the account afterwards, its ledger entry, and notes for an operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub after: Account,
    pub entry: Entry,
    pub review: Vec<String>,
    /// Why an operator's adjustment cannot be made (then nothing changes).
    pub refused: Option<AdjustRefusal>,
}

impl Change {
    /// Whether the balances move at all (an entry is written only then).
    pub fn changes_balances(&self) -> bool {
        self.entry.delta_points != 0
            || self.entry.tier_before != self.entry.tier_after
            || self.entry.expires_before != self.entry.expires_after
    }
}

/// A balance operation, decided by [`decide`] over the locked account.
#[derive(Clone, Debug)]
pub enum BalanceOp<'a> {
    /// The order was paid: grant what its snapshot says.
    Fulfil(&'a Snapshot),
    /// A refund of the order succeeded: the order's refunded total went from `before` to
    /// `after` fen out of `amount` fen.
    Clawback {
        snapshot: &'a Snapshot,
        before: i64,
        after: i64,
        amount: i64,
    },
    /// An operator's manual adjustment.
    Adjust(&'a Adjustment),
}

/// Decide the change `op` makes to `account` at `now`.
pub fn decide(op: &BalanceOp<'_>, account: &Account, now: NaiveDateTime) -> Change {
    match op {
        BalanceOp::Fulfil(snapshot) => fulfil(snapshot, account, now),
        BalanceOp::Clawback {
            snapshot,
            before,
            after,
            amount,
        } => clawback(snapshot, account, now, *before, *after, *amount),
        BalanceOp::Adjust(adj) => adjust(adj, account, now),
    }
}

/// An operator's manual adjustment of an account: points added (or taken, when
/// negative) and days of membership added (or taken). Days go to the tier the account
/// holds; an account without an active membership is granted `tier` (a membership tier
/// of the catalog at its current rate).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Adjustment {
    pub points: i64,
    pub membership_days: i64,
    pub tier: Option<Tier>,
}

/// Why an adjustment is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdjustRefusal {
    /// Nothing to change.
    Empty,
    /// Taking more points than the account holds.
    InsufficientPoints { held: i64 },
    /// Days to add, but no membership held and no tier named.
    TierRequired,
    /// A tier named that is not the one the account holds (a conversion is a purchase).
    TierConflict { held: String },
    /// Days to take from an account without an active membership.
    NoMembership,
}

impl AdjustRefusal {
    /// A stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            AdjustRefusal::Empty => "empty_adjustment",
            AdjustRefusal::InsufficientPoints { .. } => "insufficient_points",
            AdjustRefusal::TierRequired => "tier_required",
            AdjustRefusal::TierConflict { .. } => "tier_conflict",
            AdjustRefusal::NoMembership => "no_membership",
        }
    }

    pub fn message(&self) -> String {
        match self {
            AdjustRefusal::Empty => "an adjustment must change points or membership days".into(),
            AdjustRefusal::InsufficientPoints { held } => {
                format!("the account holds {held} points; no more can be taken")
            }
            AdjustRefusal::TierRequired => {
                "the account holds no active membership: name the tier (a membership product) to grant".into()
            }
            AdjustRefusal::TierConflict { held } => format!(
                "the account holds tier {held}: days can only be added to it (another tier is a purchase)"
            ),
            AdjustRefusal::NoMembership => {
                "the account holds no active membership to take days from".into()
            }
        }
    }
}

/// The account after an operator's adjustment, or why it is refused. Points are never
/// taken below zero (refused); taken days end the membership now at most.
pub fn adjust(adj: &Adjustment, acc: &Account, now: NaiveDateTime) -> Change {
    let refuse = |why: AdjustRefusal| Change {
        after: acc.clone(),
        entry: change(acc, acc.clone(), Reason::Adjustment, now),
        review: Vec::new(),
        refused: Some(why),
    };
    if adj.points == 0 && adj.membership_days == 0 {
        return refuse(AdjustRefusal::Empty);
    }
    let mut after = acc.clone();
    match acc.points.checked_add(adj.points) {
        Some(p) if p >= 0 => after.points = p,
        _ => return refuse(AdjustRefusal::InsufficientPoints { held: acc.points }),
    }
    let remaining = acc.remaining_secs(now);
    let secs = adj.membership_days.saturating_mul(DAY_SECS);
    if let (Some(t), Some(held)) = (&adj.tier, &acc.tier) {
        if remaining > 0 && &t.name != held {
            return refuse(AdjustRefusal::TierConflict { held: held.clone() });
        }
    }
    if secs > 0 {
        match (remaining > 0, &adj.tier) {
            (true, _) => after.expires_at = acc.expires_at.map(|e| plus_secs(e, secs)),
            (false, Some(t)) => {
                after.tier = Some(t.name.clone());
                after.rate = Some(t.rate);
                after.expires_at = Some(plus_secs(now, secs));
            }
            (false, None) => return refuse(AdjustRefusal::TierRequired),
        }
    } else if secs < 0 {
        if remaining == 0 {
            return refuse(AdjustRefusal::NoMembership);
        }
        after.expires_at = if -secs >= remaining {
            Some(now)
        } else {
            acc.expires_at.map(|e| plus_secs(e, secs))
        };
    }
    let entry = change(acc, after.clone(), Reason::Adjustment, now);
    Change {
        after,
        entry,
        review: Vec::new(),
        refused: None,
    }
}

/// The snapshot of a purchase: `points` and `tier` per unit from the catalog row, times
/// `quantity`; an upgrade (`upgrade_from` with the seconds it pays for) grants no days.
pub fn purchase_snapshot(
    points_per_unit: Option<i64>,
    tier: Option<Tier>,
    quantity: i64,
    upgrade_from: Option<(Tier, i64)>,
) -> Snapshot {
    let per_unit_days = tier.as_ref().map_or(0, |t| t.rate.days);
    let (upgrade_from, upgrade_secs) = match upgrade_from {
        Some((from, secs)) => (Some(from), secs),
        None => (None, 0),
    };
    Snapshot {
        points: points_per_unit.unwrap_or(0).saturating_mul(quantity),
        membership_days: if upgrade_from.is_some() {
            0
        } else {
            per_unit_days.saturating_mul(quantity)
        },
        tier,
        upgrade_from,
        upgrade_secs,
    }
}

/// `secs` of a tier at `from` converted to the same value at `to`, rounded down to the
/// second. A rate without a price or period converts 1:1.
pub fn convert_secs(secs: i64, from: &Rate, to: &Rate) -> i64 {
    if secs <= 0 {
        return 0;
    }
    if from.price_fen <= 0 || from.days <= 0 || to.price_fen <= 0 || to.days <= 0 {
        return secs;
    }
    let num = i128::from(secs) * i128::from(from.price_fen) * i128::from(to.days);
    let den = i128::from(from.days) * i128::from(to.price_fen);
    i64::try_from(num / den).unwrap_or(i64::MAX)
}

/// The share of `total` that `part` of `whole` fen stands for, rounded down. Shares of
/// cumulative refunded amounts telescope, so partial refunds add up exactly to `total`.
pub fn share(total: i64, part: i64, whole: i64) -> i64 {
    if whole <= 0 || part <= 0 {
        return 0;
    }
    let part = part.min(whole);
    i64::try_from(i128::from(total) * i128::from(part) / i128::from(whole)).unwrap_or(0)
}

fn plus_secs(now: NaiveDateTime, secs: i64) -> NaiveDateTime {
    now.checked_add_signed(Duration::seconds(secs))
        .unwrap_or(NaiveDateTime::MAX)
}

fn change(before: &Account, after: Account, reason: Reason, now: NaiveDateTime) -> Entry {
    Entry {
        delta_points: after.points - before.points,
        points_after: after.points,
        delta_membership_secs: after.remaining_secs(now) - before.remaining_secs(now),
        tier_before: before.tier.clone(),
        tier_after: after.tier.clone(),
        expires_before: before.expires_at,
        expires_after: after.expires_at,
        reason,
    }
}

/// What the buyer gets when the order is paid.
pub fn fulfil(snap: &Snapshot, acc: &Account, now: NaiveDateTime) -> Change {
    let mut after = acc.clone();
    let mut review = Vec::new();
    after.points = acc.points.saturating_add(snap.points);
    let mut reason = Reason::Purchase;
    if let Some(target) = &snap.tier {
        let remaining = acc.remaining_secs(now);
        let same_tier = acc.tier.as_deref() == Some(target.name.as_str());
        match &snap.upgrade_from {
            None => {
                let added = snap.membership_days.saturating_mul(DAY_SECS);
                let base = match (remaining, same_tier, &acc.rate) {
                    (0, _, _) => now,
                    // The same tier: extend the expiry itself (no rounding at all).
                    (_, true, _) => acc.expires_at.unwrap_or(now),
                    (_, false, Some(rate)) => {
                        plus_secs(now, convert_secs(remaining, rate, &target.rate))
                    }
                    (_, false, None) => {
                        review.push(format!(
                            "the rate of tier {} is unknown: its remaining time was carried over 1:1",
                            acc.tier.as_deref().unwrap_or("?")
                        ));
                        acc.expires_at.unwrap_or(now)
                    }
                };
                after.tier = Some(target.name.clone());
                after.rate = Some(target.rate);
                after.expires_at = Some(plus_secs(base, added));
            }
            Some(from) => {
                reason = Reason::Upgrade;
                if remaining == 0 {
                    review.push("membership lapsed before the upgrade was paid".into());
                    after.tier = Some(target.name.clone());
                    after.rate = Some(target.rate);
                    after.expires_at = Some(now);
                } else if same_tier {
                    review.push(format!(
                        "the account already held {} when the upgrade was paid",
                        target.name
                    ));
                } else {
                    if acc.tier.as_deref() != Some(from.name.as_str()) {
                        review.push(format!(
                            "the tier changed from {} to {} between the upgrade order and its payment",
                            from.name,
                            acc.tier.as_deref().unwrap_or("none")
                        ));
                    }
                    // The upgrade paid for `upgrade_secs`; time beyond that (an extension
                    // paid meanwhile) keeps its value by conversion.
                    let paid = remaining.min(snap.upgrade_secs.max(0));
                    after.tier = Some(target.name.clone());
                    after.rate = Some(target.rate);
                    if paid < remaining {
                        let held = acc.rate.unwrap_or(from.rate);
                        let extra = convert_secs(remaining - paid, &held, &target.rate);
                        after.expires_at = Some(plus_secs(now, paid + extra));
                    }
                }
            }
        }
    }
    let entry = change(acc, after.clone(), reason, now);
    Change {
        after,
        entry,
        review,
        refused: None,
    }
}

/// What a refund takes back: the refunded share of what the order granted, never below
/// zero; a full refund of an upgrade restores the tier it upgraded from.
pub fn clawback(
    snap: &Snapshot,
    acc: &Account,
    now: NaiveDateTime,
    before: i64,
    after_refunded: i64,
    amount: i64,
) -> Change {
    let mut after = acc.clone();
    let mut review = Vec::new();
    let mut reason = Reason::Clawback;
    let points = share(snap.points, after_refunded, amount) - share(snap.points, before, amount);
    // Points already spent cannot be taken back below zero.
    let taken = points.clamp(0, acc.points.max(0));
    if taken < points {
        review.push(format!(
            "{} of {points} points to claw back were already spent",
            points - taken
        ));
    }
    after.points = acc.points - taken;
    if let Some(tier) = &snap.tier {
        match &snap.upgrade_from {
            None if snap.membership_days > 0 => {
                let total = snap.membership_days.saturating_mul(DAY_SECS);
                let secs = share(total, after_refunded, amount) - share(total, before, amount);
                let remaining = acc.remaining_secs(now);
                // Days bought in one tier are worth other time in the tier held now.
                let in_held = match (acc.tier.as_deref() == Some(tier.name.as_str()), &acc.rate) {
                    (false, Some(rate)) => convert_secs(secs, &tier.rate, rate),
                    _ => secs,
                };
                // Like points, time is never taken below zero: at most it ends now.
                if in_held >= remaining && remaining > 0 {
                    after.expires_at = Some(now);
                } else if in_held > 0 {
                    after.expires_at = acc.expires_at.map(|e| e - Duration::seconds(in_held));
                }
            }
            // Paid before snapshots existed (an upgrade with no "from" tier): a person decides.
            None => review.push(format!(
                "the order holds no snapshot of the {} membership it granted: check the account",
                tier.name
            )),
            Some(from) => {
                if after_refunded < amount {
                    review.push(
                        "partial refund of an upgrade: the upgraded tier was kept".to_string(),
                    );
                } else if acc.tier.as_deref() == Some(tier.name.as_str()) {
                    reason = Reason::UpgradeReverted;
                    after.tier = Some(from.name.clone());
                    after.rate = Some(from.rate);
                } else {
                    review.push(format!(
                        "upgrade refunded, but the account no longer holds {}: check its membership",
                        tier.name
                    ));
                }
            }
        }
    }
    let entry = change(acc, after.clone(), reason, now);
    Change {
        after,
        entry,
        review,
        refused: None,
    }
}

/// What an account's ledger says it must hold: the sum of its point deltas and the
/// membership of its newest entry that names one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LedgerTotals {
    pub points: i64,
    pub tier: Option<String>,
    pub expires_at: Option<NaiveDateTime>,
}

/// Fold an account's entries (oldest first) into what its balances must be.
pub fn ledger_totals<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> LedgerTotals {
    let mut t = LedgerTotals::default();
    for e in entries {
        t.points = t.points.saturating_add(e.delta_points);
        t.tier = e.tier_after.clone();
        t.expires_at = e.expires_after;
    }
    t
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t0() -> NaiveDateTime {
        chrono::DateTime::from_timestamp(1_800_000_000, 0)
            .unwrap()
            .naive_utc()
    }

    fn basic() -> Tier {
        Tier {
            name: "basic".into(),
            rate: Rate {
                rank: 1,
                price_fen: 2900,
                days: 30,
            },
        }
    }

    fn pro() -> Tier {
        Tier {
            name: "pro".into(),
            rate: Rate {
                rank: 2,
                price_fen: 9900,
                days: 30,
            },
        }
    }

    fn buy(tier: Tier, days: i64) -> Snapshot {
        Snapshot {
            tier: Some(tier),
            membership_days: days,
            ..Snapshot::default()
        }
    }

    fn holding(tier: &Tier, days_left: i64) -> Account {
        Account {
            points: 0,
            tier: Some(tier.name.clone()),
            rate: Some(tier.rate),
            expires_at: Some(t0() + Duration::days(days_left)),
        }
    }

    #[test]
    fn another_tier_converts_the_remaining_time_by_daily_price() {
        // 90 days of basic, then one month of pro: 90 * 29/99 days of pro + 30 days.
        let c = fulfil(&buy(pro(), 30), &holding(&basic(), 90), t0());
        let converted = 90 * DAY_SECS * 2900 / 9900;
        assert_eq!(c.after.tier.as_deref(), Some("pro"));
        assert_eq!(
            c.after.expires_at,
            Some(t0() + Duration::seconds(converted + 30 * DAY_SECS))
        );
        assert_eq!(
            c.entry.delta_membership_secs,
            converted + 30 * DAY_SECS - 90 * DAY_SECS
        );
        assert!(c.review.is_empty());
        // The reverse is not a silent demotion: 30 days of pro are worth ~102 days of basic.
        let c = fulfil(&buy(basic(), 30), &holding(&pro(), 30), t0());
        let converted = 30 * DAY_SECS * 9900 / 2900;
        assert_eq!(
            c.after.expires_at,
            Some(t0() + Duration::seconds(converted + 30 * DAY_SECS))
        );
    }

    #[test]
    fn same_tier_extends_and_lapsed_starts_now() {
        let c = fulfil(&buy(basic(), 60), &holding(&basic(), 10), t0());
        assert_eq!(c.after.expires_at, Some(t0() + Duration::days(70)));
        let mut lapsed = holding(&pro(), 0);
        lapsed.expires_at = Some(t0() - Duration::days(3));
        let c = fulfil(&buy(basic(), 30), &lapsed, t0());
        assert_eq!(c.after.expires_at, Some(t0() + Duration::days(30)));
        assert_eq!(c.after.tier.as_deref(), Some("basic"));
    }

    #[test]
    fn upgrade_switches_the_tier_for_the_paid_time_and_full_refund_restores_it() {
        let snap = Snapshot {
            tier: Some(pro()),
            upgrade_from: Some(basic()),
            upgrade_secs: 15 * DAY_SECS,
            ..Snapshot::default()
        };
        let acc = holding(&basic(), 15);
        let paid = fulfil(&snap, &acc, t0());
        assert_eq!(paid.after.tier.as_deref(), Some("pro"));
        assert_eq!(paid.after.expires_at, acc.expires_at);
        assert_eq!(paid.entry.reason, Reason::Upgrade);
        // A partial refund keeps the tier and asks for review.
        let part = clawback(&snap, &paid.after, t0(), 0, 1000, 3500);
        assert_eq!(part.after.tier.as_deref(), Some("pro"));
        assert_eq!(part.review.len(), 1);
        // The full refund restores basic, expiry untouched.
        let full = clawback(&snap, &paid.after, t0(), 0, 3500, 3500);
        assert_eq!(full.after.tier.as_deref(), Some("basic"));
        assert_eq!(full.after.rate, Some(basic().rate));
        assert_eq!(full.after.expires_at, acc.expires_at);
        assert_eq!(full.entry.reason, Reason::UpgradeReverted);
    }

    #[test]
    fn upgrade_converts_time_it_did_not_pay_for() {
        let snap = Snapshot {
            tier: Some(pro()),
            upgrade_from: Some(basic()),
            upgrade_secs: 10 * DAY_SECS,
            ..Snapshot::default()
        };
        // 30 more days of basic were paid between the upgrade order and its payment.
        let c = fulfil(&snap, &holding(&basic(), 40), t0());
        let extra = 30 * DAY_SECS * 2900 / 9900;
        assert_eq!(
            c.after.expires_at,
            Some(t0() + Duration::seconds(10 * DAY_SECS + extra))
        );
    }

    #[test]
    fn clawback_of_days_bought_in_another_tier_is_converted() {
        // Bought 30 days of basic, then converted to pro; refunding basic takes back the
        // value of 30 basic days in pro time.
        let snap = buy(basic(), 30);
        let acc = holding(&pro(), 40);
        let c = clawback(&snap, &acc, t0(), 0, 2900, 2900);
        let taken = 30 * DAY_SECS * 2900 / 9900;
        assert_eq!(
            c.after.expires_at,
            Some(t0() + Duration::seconds(40 * DAY_SECS - taken))
        );
    }

    #[test]
    fn ledger_totals_fold_entries() {
        let a = Account::default();
        let c1 = fulfil(
            &Snapshot {
                points: 100,
                ..Snapshot::default()
            },
            &a,
            t0(),
        );
        let c2 = fulfil(&buy(basic(), 30), &c1.after, t0());
        let totals = ledger_totals([&c1.entry, &c2.entry]);
        assert_eq!(totals.points, 100);
        assert_eq!(totals.tier.as_deref(), Some("basic"));
        assert_eq!(totals.expires_at, c2.after.expires_at);
        for r in [
            Reason::Purchase,
            Reason::Upgrade,
            Reason::Clawback,
            Reason::UpgradeReverted,
            Reason::OpeningBalance,
            Reason::Adjustment,
        ] {
            assert_eq!(Reason::parse(r.as_str()), Some(r));
        }
    }

    fn rate() -> impl Strategy<Value = Rate> {
        (1i64..1_000_000, 1i64..3650).prop_map(|(price_fen, days)| Rate {
            rank: 1,
            price_fen,
            days,
        })
    }

    proptest! {
        /// Converted time is worth what it was worth, within one second of rounding.
        #[test]
        fn conversion_preserves_value(secs in 0i64..(10 * 365 * DAY_SECS), a in rate(), b in rate()) {
            let out = convert_secs(secs, &a, &b);
            // value in (fen * seconds / day) units, scaled to stay exact:
            let before = i128::from(secs) * i128::from(a.price_fen) * i128::from(b.days);
            let after = i128::from(out) * i128::from(b.price_fen) * i128::from(a.days);
            let one_second = i128::from(b.price_fen) * i128::from(a.days);
            prop_assert!(after <= before, "conversion must not create value");
            prop_assert!(before - after < one_second, "lost more than a second");
        }

        /// Claw-back never takes points below zero, whatever was spent meanwhile.
        #[test]
        fn clawback_never_below_zero(points in 0i64..1_000_000, balance in 0i64..1_000_000,
                                     amount in 1i64..100_000, cut in 0i64..100_000) {
            let snap = Snapshot { points, ..Snapshot::default() };
            let acc = Account { points: balance, ..Account::default() };
            let refunded = cut.min(amount);
            let c = clawback(&snap, &acc, t0(), 0, refunded, amount);
            prop_assert!(c.after.points >= 0);
            prop_assert!(c.after.points <= balance);
        }

        /// Partial refunds in any split take back exactly the whole grant, in integer units.
        #[test]
        fn refund_shares_add_up_exactly(points in 0i64..1_000_000, days in 0i64..400,
                                        amount in 1i64..1_000_000,
                                        cuts in proptest::collection::vec(1i64..1_000_000, 1..8)) {
            let snap = Snapshot { points, tier: Some(basic()), membership_days: days, ..Snapshot::default() };
            let mut acc = Account { points, tier: Some("basic".into()), rate: Some(basic().rate),
                                    expires_at: Some(t0() + Duration::days(days + 1)) };
            let mut refunded = 0;
            let mut taken_points = 0;
            let mut taken_secs = 0;
            let mut parts: Vec<i64> = cuts.iter().map(|c| c % amount + 1).collect();
            parts.push(amount);
            for p in parts {
                let next = (refunded + p).min(amount);
                if next == refunded { continue; }
                let c = clawback(&snap, &acc, t0(), refunded, next, amount);
                prop_assert!(c.entry.delta_points <= 0);
                taken_points -= c.entry.delta_points;
                taken_secs -= c.entry.delta_membership_secs;
                acc = c.after;
                refunded = next;
            }
            prop_assert_eq!(taken_points, points);
            prop_assert_eq!(taken_secs, days * DAY_SECS);
            prop_assert_eq!(acc.points, 0);
        }

        /// Buying then fully refunding a points pack leaves the balance where it was.
        #[test]
        fn fulfil_then_full_refund_round_trips(start in 0i64..1_000_000, points in 0i64..1_000_000, amount in 1i64..1_000_000) {
            let snap = Snapshot { points, ..Snapshot::default() };
            let acc = Account { points: start, ..Account::default() };
            let paid = fulfil(&snap, &acc, t0());
            prop_assert_eq!(paid.after.points, start + points);
            let back = clawback(&snap, &paid.after, t0(), 0, amount, amount);
            prop_assert_eq!(back.after.points, start);
            prop_assert_eq!(ledger_totals([&paid.entry, &back.entry]).points, 0);
        }
    }

    fn adj(points: i64, days: i64, tier: Option<Tier>) -> Adjustment {
        Adjustment {
            points,
            membership_days: days,
            tier,
        }
    }

    #[test]
    fn adjustments_move_points_and_days_and_refuse_what_cannot_be() {
        let now = t0();
        let acc = Account {
            points: 50,
            ..Account::default()
        };
        // Points both ways, never below zero.
        let c = adjust(&adj(25, 0, None), &acc, now);
        assert_eq!(
            (c.after.points, c.entry.delta_points, c.refused.clone()),
            (75, 25, None)
        );
        assert_eq!(c.entry.reason, Reason::Adjustment);
        assert_eq!(adjust(&adj(-50, 0, None), &acc, now).after.points, 0);
        let over = adjust(&adj(-51, 0, None), &acc, now);
        assert_eq!(
            over.refused,
            Some(AdjustRefusal::InsufficientPoints { held: 50 })
        );
        assert!(!over.changes_balances());
        assert_eq!(
            adjust(&adj(0, 0, None), &acc, now).refused,
            Some(AdjustRefusal::Empty)
        );
        // Days without a membership need a tier; with one they extend it.
        assert_eq!(
            adjust(&adj(0, 7, None), &acc, now).refused,
            Some(AdjustRefusal::TierRequired)
        );
        assert_eq!(
            adjust(&adj(0, -7, None), &acc, now).refused,
            Some(AdjustRefusal::NoMembership)
        );
        let granted = adjust(&adj(0, 7, Some(basic())), &acc, now);
        assert_eq!(granted.after.tier.as_deref(), Some("basic"));
        assert_eq!(granted.after.expires_at, Some(now + Duration::days(7)));
        assert_eq!(granted.entry.delta_membership_secs, 7 * DAY_SECS);
        let member = holding(&basic(), 10);
        let more = adjust(&adj(0, 5, None), &member, now);
        assert_eq!(more.after.remaining_secs(now), 15 * DAY_SECS);
        assert_eq!(
            adjust(&adj(0, 5, Some(pro())), &member, now).refused,
            Some(AdjustRefusal::TierConflict {
                held: "basic".into()
            })
        );
        // Taking more days than remain ends the membership now, never before.
        let ended = adjust(&adj(0, -30, None), &member, now);
        assert_eq!(ended.after.expires_at, Some(now));
        assert_eq!(ended.entry.delta_membership_secs, -10 * DAY_SECS);
        let fewer = adjust(&adj(0, -3, None), &member, now);
        assert_eq!(fewer.after.remaining_secs(now), 7 * DAY_SECS);
        // What the entry says is what the ledger sums to.
        assert_eq!(ledger_totals([&more.entry]).points, 0);
    }
}
