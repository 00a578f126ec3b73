//! Product catalog rows.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::products;
use super::{Db, DbResult};
use crate::db_run;

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
