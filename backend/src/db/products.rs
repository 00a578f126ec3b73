//! Product catalog rows.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::products;
use super::{Db, DbResult};
use crate::domain::catalog::{self, CatalogError, Draft, Patch, TierOffer};
use crate::{db_run, db_write};

#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = products)]
pub struct ProductRow {
    pub id: i64,
    pub kind: String,
    pub name: String,
    pub description: String,
    pub price_fen: i64,
    pub points: Option<i64>,
    pub membership_days: Option<i32>,
    pub membership_tier: Option<String>,
    pub tier_rank: Option<i32>,
    pub stock: Option<i64>,
    pub active: bool,
    pub sort_order: i32,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// Active products in display order.
pub async fn list_active(db: &Db) -> DbResult<Vec<ProductRow>> {
    db_run!(db, |conn| {
        Ok(products::table
            .filter(products::active.eq(true))
            .order((products::sort_order.asc(), products::id.asc()))
            .select(ProductRow::as_select())
            .load(conn)
            .await?)
    })
}

/// One product, active or not (orders keep a snapshot, so history stays readable).
pub async fn find(db: &Db, id: i64) -> DbResult<Option<ProductRow>> {
    db_run!(db, |conn| {
        Ok(products::table
            .find(id)
            .select(ProductRow::as_select())
            .first(conn)
            .await
            .optional()?)
    })
}

/// Every product, on sale or retired, in display order.
pub async fn list_all(db: &Db) -> DbResult<Vec<ProductRow>> {
    db_run!(db, |conn| {
        Ok(products::table
            .order((products::sort_order.asc(), products::id.asc()))
            .select(ProductRow::as_select())
            .load(conn)
            .await?)
    })
}

impl ProductRow {
    /// The product as the catalog rules see it.
    pub fn draft(&self) -> Draft {
        Draft {
            kind: self.kind.clone(),
            name: self.name.clone(),
            description: self.description.clone(),
            price_fen: self.price_fen,
            points: self.points,
            membership_days: self.membership_days.map(i64::from),
            membership_tier: self.membership_tier.clone(),
            tier_rank: self.tier_rank,
            stock: self.stock,
        }
    }

    fn offer(&self) -> Option<TierOffer> {
        offer_of(self.id, &self.draft())
    }
}

fn offer_of(id: i64, d: &Draft) -> Option<TierOffer> {
    match (
        d.kind.as_str(),
        &d.membership_tier,
        d.tier_rank,
        d.membership_days,
    ) {
        ("membership", Some(tier), Some(rank), Some(days)) => Some(TierOffer {
            product_id: id,
            tier: tier.clone(),
            rank,
            price_fen: d.price_fen,
            days,
        }),
        _ => None,
    }
}

/// An operator's change to the catalog.
#[derive(Clone, Debug)]
pub enum CatalogOp {
    Create(Draft),
    Update(i64, Patch),
    /// Put on sale (`true`) or retire (`false`).
    SetActive(i64, bool),
    Restock(i64, i64),
}

/// What a catalog change did.
// One per admin action, returned once: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum CatalogWrite {
    NotFound,
    Refused(CatalogError),
    /// Written (or, for a retire/restore that was already so, left as it was).
    Done {
        before: Option<ProductRow>,
        after: ProductRow,
    },
}

/// Apply a catalog change with its audit entry in one transaction. Catalog changes are
/// serialised (an advisory lock on PostgreSQL, the single writer on SQLite), so the
/// tier rules are checked over the catalog as it is when the change is written. Orders
/// keep the snapshot taken when they were created: nothing here touches them.
pub async fn apply(
    db: &Db,
    op: &CatalogOp,
    audit: impl Fn(Option<&ProductRow>, &ProductRow) -> super::audit::NewAudit + Sync,
) -> DbResult<CatalogWrite> {
    use diesel_async::AsyncConnection;
    let now = super::now();
    let audit = &audit;
    let pg = db.backend() == super::Backend::Postgres;
    db_write!(db, |conn| {
        conn.transaction::<CatalogWrite, super::DbError, _>(async |conn| {
            if pg {
                diesel::sql_query("SELECT pg_advisory_xact_lock(724312)")
                    .execute(conn)
                    .await?;
            }
            let id = match op {
                CatalogOp::Create(_) => None,
                CatalogOp::Update(id, _)
                | CatalogOp::SetActive(id, _)
                | CatalogOp::Restock(id, _) => Some(*id),
            };
            let before = match id {
                Some(id) => match products::table
                    .find(id)
                    .select(ProductRow::as_select())
                    .first(conn)
                    .await
                    .optional()?
                {
                    Some(row) => Some(row),
                    None => return Ok(CatalogWrite::NotFound),
                },
                None => None,
            };
            // The product as it would be, and whether it would be on sale.
            let (draft, active) = match (op, &before) {
                (CatalogOp::Create(d), _) => (d.clone(), true),
                (CatalogOp::Update(_, patch), Some(b)) => (patch.apply(&b.draft()), b.active),
                (CatalogOp::SetActive(_, on), Some(b)) => (b.draft(), *on),
                (CatalogOp::Restock(_, add), Some(b)) => {
                    if let Err(e) = catalog::restocked(b.stock, *add) {
                        return Ok(CatalogWrite::Refused(e));
                    }
                    (b.draft(), b.active)
                }
                _ => return Ok(CatalogWrite::NotFound),
            };
            if let Err(e) = catalog::check_product(&draft) {
                return Ok(CatalogWrite::Refused(e));
            }
            if active {
                let mut offers: Vec<TierOffer> = products::table
                    .filter(products::active.eq(true))
                    .select(ProductRow::as_select())
                    .load(conn)
                    .await?
                    .iter()
                    .filter(|p| Some(p.id) != id)
                    .filter_map(ProductRow::offer)
                    .collect();
                offers.extend(offer_of(id.unwrap_or(0), &draft));
                if let Err(e) = catalog::check_tiers(&offers) {
                    return Ok(CatalogWrite::Refused(e));
                }
            }
            let days = draft
                .membership_days
                .map(|d| i32::try_from(d).unwrap_or(i32::MAX));
            let id = match (op, id) {
                (CatalogOp::Create(_), _) => {
                    let last: Option<i32> = products::table
                        .select(diesel::dsl::max(products::sort_order))
                        .first(conn)
                        .await?;
                    diesel::insert_into(products::table)
                        .values((
                            products::kind.eq(&draft.kind),
                            products::name.eq(draft.name.trim()),
                            products::description.eq(&draft.description),
                            products::price_fen.eq(draft.price_fen),
                            products::points.eq(draft.points),
                            products::membership_days.eq(days),
                            products::membership_tier.eq(&draft.membership_tier),
                            products::tier_rank.eq(draft.tier_rank),
                            products::stock.eq(draft.stock),
                            products::active.eq(true),
                            products::sort_order.eq(last.unwrap_or(0).saturating_add(10)),
                            products::created_at.eq(now),
                            products::updated_at.eq(now),
                        ))
                        .returning(products::id)
                        .get_result::<i64>(conn)
                        .await?
                }
                (CatalogOp::Update(..), Some(id)) => {
                    diesel::update(products::table.find(id))
                        .set((
                            products::name.eq(draft.name.trim()),
                            products::description.eq(&draft.description),
                            products::price_fen.eq(draft.price_fen),
                            products::points.eq(draft.points),
                            products::membership_days.eq(days),
                            products::membership_tier.eq(&draft.membership_tier),
                            products::tier_rank.eq(draft.tier_rank),
                            products::updated_at.eq(now),
                        ))
                        .execute(conn)
                        .await?;
                    id
                }
                (CatalogOp::SetActive(_, on), Some(id)) => {
                    diesel::update(products::table.find(id))
                        .set((products::active.eq(*on), products::updated_at.eq(now)))
                        .execute(conn)
                        .await?;
                    id
                }
                (CatalogOp::Restock(_, add), Some(id)) => {
                    // Relative: a sale that decremented the stock meanwhile is kept.
                    diesel::update(
                        products::table
                            .find(id)
                            .filter(products::stock.is_not_null()),
                    )
                    .set((
                        products::stock.eq(products::stock + *add),
                        products::updated_at.eq(now),
                    ))
                    .execute(conn)
                    .await?;
                    id
                }
                _ => return Ok(CatalogWrite::NotFound),
            };
            let after: ProductRow = products::table
                .find(id)
                .select(ProductRow::as_select())
                .first(conn)
                .await?;
            diesel::insert_into(super::schema::admin_audit::table)
                .values(audit(before.as_ref(), &after))
                .execute(conn)
                .await?;
            Ok(CatalogWrite::Done { before, after })
        })
        .await
    })
}

/// Put products in the given order (the first listed first); products not listed keep
/// their place after them. Returns the ids that exist, in their new order.
pub async fn reorder(
    db: &Db,
    ids: &[i64],
    audit: impl Fn(&[i64], &[i64]) -> super::audit::NewAudit + Sync,
) -> DbResult<Vec<i64>> {
    use diesel_async::AsyncConnection;
    let now = super::now();
    let audit = &audit;
    let pg = db.backend() == super::Backend::Postgres;
    db_write!(db, |conn| {
        conn.transaction::<Vec<i64>, super::DbError, _>(async |conn| {
            if pg {
                diesel::sql_query("SELECT pg_advisory_xact_lock(724312)")
                    .execute(conn)
                    .await?;
            }
            let before: Vec<i64> = products::table
                .order((products::sort_order.asc(), products::id.asc()))
                .select(products::id)
                .load(conn)
                .await?;
            let mut after: Vec<i64> = Vec::with_capacity(before.len());
            for id in ids.iter().chain(before.iter()) {
                if before.contains(id) && !after.contains(id) {
                    after.push(*id);
                }
            }
            for (i, id) in after.iter().enumerate() {
                diesel::update(products::table.find(*id))
                    .set((
                        products::sort_order.eq(catalog::position(i)),
                        products::updated_at.eq(now),
                    ))
                    .execute(conn)
                    .await?;
            }
            diesel::insert_into(super::schema::admin_audit::table)
                .values(audit(&before, &after))
                .execute(conn)
                .await?;
            Ok(after)
        })
        .await
    })
}
