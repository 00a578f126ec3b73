//! Catalog rules: what a product must say to be sold, and how membership tiers must
//! relate so that upgrades and conversions stay well-defined (a higher rank always costs
//! more per day, and one tier name is one rank).

/// Most characters of a product name.
pub const MAX_NAME_CHARS: usize = 100;
/// Most characters of a description.
pub const MAX_DESCRIPTION_CHARS: usize = 1_000;
/// Highest price of one product, fen (one million yuan).
pub const MAX_PRICE_FEN: i64 = 100_000_000;
/// Most points one unit may grant.
pub const MAX_POINTS: i64 = 1_000_000_000;
/// Most days one unit of membership may grant (ten years).
pub const MAX_DAYS: i64 = 3_660;
/// Most units a restock may add at once.
pub const MAX_RESTOCK: i64 = 1_000_000_000;

/// A product as it would be after a create or an edit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Draft {
    /// `points` or `membership`.
    pub kind: String,
    pub name: String,
    pub description: String,
    pub price_fen: i64,
    pub points: Option<i64>,
    pub membership_days: Option<i64>,
    pub membership_tier: Option<String>,
    pub tier_rank: Option<i32>,
    pub stock: Option<i64>,
}

/// Why a catalog change is refused: a stable code and a message naming the field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatalogError {
    pub code: &'static str,
    pub message: String,
}

fn invalid(message: impl Into<String>) -> CatalogError {
    CatalogError {
        code: "invalid_product",
        message: message.into(),
    }
}

/// A product on its own: required fields by kind, ranges.
pub fn check_product(d: &Draft) -> Result<(), CatalogError> {
    let name = d.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(invalid(format!(
            "name must be 1 to {MAX_NAME_CHARS} characters"
        )));
    }
    if d.description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(invalid(format!(
            "description is at most {MAX_DESCRIPTION_CHARS} characters"
        )));
    }
    if !(1..=MAX_PRICE_FEN).contains(&d.price_fen) {
        return Err(invalid(format!(
            "price_fen must be between 1 and {MAX_PRICE_FEN}"
        )));
    }
    if let Some(s) = d.stock {
        if !(0..=MAX_RESTOCK).contains(&s) {
            return Err(invalid(format!(
                "stock must be between 0 and {MAX_RESTOCK}"
            )));
        }
    }
    if let Some(p) = d.points {
        if !(1..=MAX_POINTS).contains(&p) {
            return Err(invalid(format!(
                "points must be between 1 and {MAX_POINTS}"
            )));
        }
    }
    match d.kind.as_str() {
        "points" => {
            if d.points.is_none() {
                return Err(invalid("a points product needs points"));
            }
            if d.membership_days.is_some() || d.membership_tier.is_some() || d.tier_rank.is_some() {
                return Err(invalid(
                    "a points product has no membership_days, membership_tier or tier_rank",
                ));
            }
        }
        "membership" => {
            match d.membership_days {
                Some(days) if (1..=MAX_DAYS).contains(&days) => {}
                _ => {
                    return Err(invalid(format!(
                        "a membership needs membership_days between 1 and {MAX_DAYS}"
                    )))
                }
            }
            let tier_ok = d.membership_tier.as_deref().is_some_and(|t| {
                (1..=32).contains(&t.len())
                    && t.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                    })
            });
            if !tier_ok {
                return Err(invalid(
                    "membership_tier must be 1 to 32 characters of a-z, 0-9, _ or -",
                ));
            }
            if !d.tier_rank.is_some_and(|r| (1..=1000).contains(&r)) {
                return Err(invalid("tier_rank must be between 1 and 1000"));
            }
        }
        other => {
            return Err(invalid(format!(
                "kind must be `points` or `membership`, not `{other}`"
            )))
        }
    }
    Ok(())
}

/// One on-sale membership product's tier, rank and rate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TierOffer {
    pub product_id: i64,
    pub tier: String,
    pub rank: i32,
    pub price_fen: i64,
    pub days: i64,
}

/// `a` costs less per day than `b` (exactly: cross-multiplied, no division).
fn cheaper_per_day(a: &TierOffer, b: &TierOffer) -> bool {
    i128::from(a.price_fen) * i128::from(b.days) < i128::from(b.price_fen) * i128::from(a.days)
}

/// The on-sale membership products together: one tier name is one rank (and one rank one
/// tier), and every product of a higher rank costs more per day than every product of a
/// lower rank. Checked over the catalog as it would be after a change.
pub fn check_tiers(offers: &[TierOffer]) -> Result<(), CatalogError> {
    for (i, a) in offers.iter().enumerate() {
        for b in &offers[i + 1..] {
            if a.tier == b.tier && a.rank != b.rank {
                return Err(CatalogError {
                    code: "tier_rank_conflict",
                    message: format!(
                        "tier {} has rank {} on product {} but {} on product {}: one tier, one rank",
                        a.tier, a.rank, a.product_id, b.rank, b.product_id
                    ),
                });
            }
            if a.tier != b.tier && a.rank == b.rank {
                return Err(CatalogError {
                    code: "tier_rank_conflict",
                    message: format!(
                        "tiers {} and {} share rank {}: each tier needs its own rank",
                        a.tier, b.tier, a.rank
                    ),
                });
            }
            let (low, high) = if a.rank < b.rank { (a, b) } else { (b, a) };
            if low.rank != high.rank && !cheaper_per_day(low, high) {
                return Err(CatalogError {
                    code: "tier_price_order",
                    message: format!(
                        "tier {} (rank {}) costs {}/{} fen per day on product {}, not less than tier {} (rank {}) at {}/{} on product {}: a higher rank must cost more per day",
                        low.tier, low.rank, low.price_fen, low.days, low.product_id,
                        high.tier, high.rank, high.price_fen, high.days, high.product_id
                    ),
                });
            }
        }
    }
    Ok(())
}

/// An edit of a product: each field given replaces the current one (the kind never
/// changes; stock moves only by restock, so a sale is never overwritten).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Patch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub price_fen: Option<i64>,
    pub points: Option<i64>,
    pub membership_days: Option<i64>,
    pub membership_tier: Option<String>,
    pub tier_rank: Option<i32>,
}

impl Patch {
    pub fn is_empty(&self) -> bool {
        self == &Patch::default()
    }

    /// The product after the edit (to be checked with [`check_product`]).
    pub fn apply(&self, before: &Draft) -> Draft {
        Draft {
            kind: before.kind.clone(),
            name: self.name.clone().unwrap_or_else(|| before.name.clone()),
            description: self
                .description
                .clone()
                .unwrap_or_else(|| before.description.clone()),
            price_fen: self.price_fen.unwrap_or(before.price_fen),
            points: self.points.or(before.points),
            membership_days: self.membership_days.or(before.membership_days),
            membership_tier: self
                .membership_tier
                .clone()
                .or_else(|| before.membership_tier.clone()),
            tier_rank: self.tier_rank.or(before.tier_rank),
            stock: before.stock,
        }
    }
}

/// Units added by a restock: a limited product only, 1 to [`MAX_RESTOCK`], never past it.
pub fn restocked(stock: Option<i64>, add: i64) -> Result<i64, CatalogError> {
    let Some(held) = stock else {
        return Err(CatalogError {
            code: "unlimited_stock",
            message: "the product has unlimited stock: nothing to restock".into(),
        });
    };
    if !(1..=MAX_RESTOCK).contains(&add) {
        return Err(invalid(format!("add must be between 1 and {MAX_RESTOCK}")));
    }
    match held.checked_add(add) {
        Some(n) if n <= MAX_RESTOCK => Ok(n),
        _ => Err(invalid(format!("stock would exceed {MAX_RESTOCK}"))),
    }
}

/// The sort order of the `i`-th product in an operator's ordering (gaps of 10 leave room).
pub fn position(i: usize) -> i32 {
    i32::try_from(i)
        .unwrap_or(i32::MAX / 10)
        .saturating_mul(10)
        .saturating_add(10)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn points(price: i64, pts: i64) -> Draft {
        Draft {
            kind: "points".into(),
            name: "pack".into(),
            description: String::new(),
            price_fen: price,
            points: Some(pts),
            membership_days: None,
            membership_tier: None,
            tier_rank: None,
            stock: None,
        }
    }

    fn offer(id: i64, tier: &str, rank: i32, price: i64, days: i64) -> TierOffer {
        TierOffer {
            product_id: id,
            tier: tier.into(),
            rank,
            price_fen: price,
            days,
        }
    }

    #[test]
    fn products_need_their_fields_in_range() {
        assert!(check_product(&points(100, 10)).is_ok());
        assert!(check_product(&points(0, 10)).is_err());
        assert!(check_product(&points(MAX_PRICE_FEN + 1, 10)).is_err());
        assert!(check_product(&Draft {
            points: None,
            ..points(100, 1)
        })
        .is_err());
        assert!(check_product(&Draft {
            name: "  ".into(),
            ..points(100, 1)
        })
        .is_err());
        assert!(check_product(&Draft {
            stock: Some(-1),
            ..points(100, 1)
        })
        .is_err());
        assert!(check_product(&Draft {
            tier_rank: Some(1),
            ..points(100, 1)
        })
        .is_err());
        let member = Draft {
            kind: "membership".into(),
            points: None,
            membership_days: Some(30),
            membership_tier: Some("pro".into()),
            tier_rank: Some(2),
            ..points(9900, 1)
        };
        assert!(check_product(&member).is_ok());
        assert!(check_product(&Draft {
            membership_days: Some(0),
            ..member.clone()
        })
        .is_err());
        assert!(check_product(&Draft {
            membership_tier: Some("Pro!".into()),
            ..member.clone()
        })
        .is_err());
        assert!(check_product(&Draft {
            tier_rank: None,
            ..member.clone()
        })
        .is_err());
        assert_eq!(
            check_product(&Draft {
                kind: "gift".into(),
                ..member
            })
            .unwrap_err()
            .code,
            "invalid_product"
        );
    }

    #[test]
    fn a_higher_rank_costs_more_per_day() {
        let basic = offer(1, "basic", 1, 2900, 30);
        let pro = offer(2, "pro", 2, 9900, 30);
        assert!(check_tiers(&[basic.clone(), pro.clone()]).is_ok());
        // A yearly basic pack is cheaper per day still: fine.
        assert!(check_tiers(&[
            basic.clone(),
            pro.clone(),
            offer(3, "basic", 1, 29_000, 365)
        ])
        .is_ok());
        // Pro made cheaper per day than basic: refused, whichever order they come in.
        let cheap_pro = offer(2, "pro", 2, 2800, 30);
        assert_eq!(
            check_tiers(&[basic.clone(), cheap_pro.clone()])
                .unwrap_err()
                .code,
            "tier_price_order"
        );
        assert_eq!(
            check_tiers(&[cheap_pro, basic.clone()]).unwrap_err().code,
            "tier_price_order"
        );
        // Equal daily price is not "more".
        assert!(check_tiers(&[basic.clone(), offer(2, "pro", 2, 5800, 60)]).is_err());
        // One tier, one rank; one rank, one tier.
        assert_eq!(
            check_tiers(&[basic.clone(), offer(3, "basic", 2, 9900, 30)])
                .unwrap_err()
                .code,
            "tier_rank_conflict"
        );
        assert_eq!(
            check_tiers(&[basic, offer(3, "plus", 1, 9900, 30)])
                .unwrap_err()
                .code,
            "tier_rank_conflict"
        );
    }

    #[test]
    fn patches_replace_given_fields_and_restocks_add() {
        let before = points(100, 10);
        let after = Patch {
            price_fen: Some(250),
            ..Patch::default()
        }
        .apply(&before);
        assert_eq!(
            (after.price_fen, after.points, after.name.as_str()),
            (250, Some(10), "pack")
        );
        assert!(Patch::default().is_empty());
        assert_eq!(restocked(Some(3), 7), Ok(10));
        assert_eq!(restocked(None, 7).unwrap_err().code, "unlimited_stock");
        assert!(restocked(Some(3), 0).is_err());
        assert!(restocked(Some(MAX_RESTOCK), 1).is_err());
    }

    #[test]
    fn positions_leave_gaps() {
        assert_eq!((position(0), position(1), position(2)), (10, 20, 30));
    }
}
