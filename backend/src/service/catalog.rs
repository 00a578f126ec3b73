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

// ---- catalog management (admin) ------------------------------------------------------

use api_types::console::{AdminProductList, ProductCreate, ProductPatchRequest};

use crate::db::audit::NewAudit;
use crate::db::products::{CatalogOp, CatalogWrite};
use crate::domain::catalog::{Draft, Patch};
use crate::service::audit::{Actor, Change, Target};

/// Every product, on sale or retired, in display order.
pub async fn list_all(db: &Db) -> AppResult<AdminProductList> {
    Ok(AdminProductList {
        items: products::list_all(db)
            .await?
            .iter()
            .map(to_response)
            .collect(),
    })
}

fn action_of(op: &CatalogOp) -> &'static str {
    match op {
        CatalogOp::Create(_) => "product.create",
        CatalogOp::Update(..) => "product.update",
        CatalogOp::SetActive(_, true) => "product.restore",
        CatalogOp::SetActive(_, false) => "product.retire",
        CatalogOp::Restock(..) => "product.restock",
    }
}

/// Apply a catalog change as `actor`, recorded in the audit log in the same transaction.
pub async fn apply(db: &Db, actor: &Actor, op: CatalogOp) -> AppResult<ProductResponse> {
    let action = action_of(&op);
    let audit = |before: Option<&ProductRow>, after: &ProductRow| -> NewAudit {
        actor.entry(
            action,
            Target("product", &after.id.to_string()),
            Change::new(before.map(to_response), Some(to_response(after))),
        )
    };
    match products::apply(db, &op, audit).await? {
        CatalogWrite::NotFound => Err(AppError::NotFound("product")),
        CatalogWrite::Refused(e) => Err(if e.code == "invalid_product" {
            AppError::bad_request(e.code, e.message)
        } else {
            AppError::conflict(e.code, e.message)
        }),
        CatalogWrite::Done { after, .. } => Ok(to_response(&after)),
    }
}

pub fn create_op(req: &ProductCreate) -> CatalogOp {
    CatalogOp::Create(Draft {
        kind: req.kind.trim().to_string(),
        name: req.name.trim().to_string(),
        description: req.description.clone(),
        price_fen: req.price_fen,
        points: req.points,
        membership_days: req.membership_days,
        membership_tier: req.membership_tier.clone(),
        tier_rank: req.tier_rank,
        stock: req.stock,
    })
}

/// 400 `empty_patch` when the edit changes nothing.
pub fn update_op(id: i64, req: &ProductPatchRequest) -> AppResult<CatalogOp> {
    let patch = Patch {
        name: req.name.as_ref().map(|n| n.trim().to_string()),
        description: req.description.clone(),
        price_fen: req.price_fen,
        points: req.points,
        membership_days: req.membership_days,
        membership_tier: req.membership_tier.clone(),
        tier_rank: req.tier_rank,
    };
    if patch.is_empty() {
        return Err(AppError::bad_request(
            "empty_patch",
            "name at least one field to change",
        ));
    }
    Ok(CatalogOp::Update(id, patch))
}

/// Put products in the given order.
pub async fn reorder(db: &Db, actor: &Actor, ids: &[i64]) -> AppResult<AdminProductList> {
    if ids.is_empty() || ids.len() > 1000 {
        return Err(AppError::bad_request(
            "invalid_order",
            "ids lists 1 to 1000 product ids",
        ));
    }
    products::reorder(db, ids, |before, after| {
        actor.entry(
            "product.reorder",
            Target("catalog", "order"),
            Change::new(
                Some(serde_json::json!({ "order": before })),
                Some(serde_json::json!({ "order": after })),
            ),
        )
    })
    .await?;
    list_all(db).await
}
