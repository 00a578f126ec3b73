//! The product catalog.

use api_types::product::{ProductKind, ProductResponse};
use api_types::Yuan;

use crate::db::products::{self, ProductRow};
use crate::db::{self, Db};
use crate::error::{AppError, AppResult};

pub fn kind_of(row: &ProductRow) -> ProductKind {
    if row.kind == "membership" {
        ProductKind::Membership
    } else {
        ProductKind::Points
    }
}

pub fn to_response(row: &ProductRow) -> ProductResponse {
    ProductResponse {
        id: row.id,
        kind: kind_of(row),
        name: row.name.clone(),
        description: row.description.clone(),
        price_fen: row.price_fen,
        price: Yuan(row.price_fen),
        points: row.points,
        membership_days: row.membership_days,
        membership_tier: row.membership_tier.clone(),
        tier_rank: row.tier_rank,
        stock: row.stock,
        active: row.active,
        updated_at: db::utc(row.updated_at),
    }
}

pub async fn list(db: &Db) -> AppResult<Vec<ProductResponse>> {
    Ok(products::list_active(db)
        .await?
        .iter()
        .map(to_response)
        .collect())
}

/// An active product; inactive ones are not for sale and read as 404.
pub async fn get(db: &Db, id: i64) -> AppResult<ProductResponse> {
    products::find(db, id)
        .await?
        .filter(|p| p.active)
        .map(|p| to_response(&p))
        .ok_or(AppError::NotFound("product"))
}
