//! The product catalog.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Yuan;

/// What buying a product grants.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ProductKind {
    /// A pack of points credited to the balance.
    Points,
    /// Membership days at a tier.
    Membership,
    /// An order with an amount set by a merchant app (never a catalog product): fenpay
    /// credits nothing, the app does.
    Custom,
}

impl ProductKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProductKind::Points => "points",
            ProductKind::Membership => "membership",
            ProductKind::Custom => "custom",
        }
    }
}

/// One sellable product.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct ProductResponse {
    pub id: i64,
    pub kind: ProductKind,
    pub name: String,
    pub description: String,
    /// Price in fen (integer; 100 fen = 1 yuan).
    pub price_fen: i64,
    /// Price in yuan with two decimals.
    pub price: Yuan,
    /// Points granted (points packs).
    pub points: Option<i64>,
    /// Membership days granted (memberships).
    pub membership_days: Option<i32>,
    /// Membership tier name (memberships), e.g. `pro`.
    pub membership_tier: Option<String>,
    /// Tier rank: a higher rank is an upgrade.
    pub tier_rank: Option<i32>,
    /// Units left; absent means unlimited.
    pub stock: Option<i64>,
    pub active: bool,
    pub updated_at: DateTime<Utc>,
}

/// `GET /api/v1/products`
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct ProductListResponse {
    pub items: Vec<ProductResponse>,
}
