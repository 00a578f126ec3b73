//! The admin audit log: one append-only row per admin action. Written in the transaction
//! of the change where the change is ours to write (catalog, accounts: insert a
//! [`NewAudit`] into `admin_audit` on the same connection), or right after a change made
//! elsewhere succeeded (a refund, a resend) through [`insert`].

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::admin_audit;
use super::{Db, DbResult};
use crate::{db_run, db_write};

#[derive(Clone, Debug, Insertable)]
#[diesel(table_name = admin_audit)]
pub struct NewAudit {
    pub actor_id: String,
    pub actor_name: String,
    pub action: String,
    pub target_kind: String,
    pub target_id: String,
    pub before_json: Option<String>,
    pub after_json: Option<String>,
    pub reason: Option<String>,
    pub created_at: NaiveDateTime,
}

#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = admin_audit)]
pub struct AuditRow {
    pub id: i64,
    pub actor_id: String,
    pub actor_name: String,
    pub action: String,
    pub target_kind: String,
    pub target_id: String,
    pub before_json: Option<String>,
    pub after_json: Option<String>,
    pub reason: Option<String>,
    pub created_at: NaiveDateTime,
}

/// Append one entry on its own.
pub async fn insert(db: &Db, entry: &NewAudit) -> DbResult<()> {
    db_write!(db, |conn| {
        diesel::insert_into(admin_audit::table)
            .values(entry)
            .execute(conn)
            .await?;
        Ok(())
    })
}

/// What to list.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    pub actor_id: Option<String>,
    pub action: Option<String>,
    pub target_kind: Option<String>,
    pub target_id: Option<String>,
    pub from: Option<NaiveDateTime>,
    pub to: Option<NaiveDateTime>,
}

/// A page of entries, newest first, and how many match.
pub async fn list(
    db: &Db,
    f: &AuditFilter,
    limit: i64,
    offset: i64,
) -> DbResult<(Vec<AuditRow>, i64)> {
    macro_rules! filtered {
        () => {{
            let mut q = admin_audit::table.into_boxed();
            if let Some(v) = &f.actor_id {
                q = q.filter(admin_audit::actor_id.eq(v.clone()));
            }
            if let Some(v) = &f.action {
                // A prefix names a family: `product` matches `product.update`.
                if v.contains('.') {
                    q = q.filter(admin_audit::action.eq(v.clone()));
                } else {
                    q = q.filter(admin_audit::action.like(format!("{v}.%")));
                }
            }
            if let Some(v) = &f.target_kind {
                q = q.filter(admin_audit::target_kind.eq(v.clone()));
            }
            if let Some(v) = &f.target_id {
                q = q.filter(admin_audit::target_id.eq(v.clone()));
            }
            if let Some(v) = f.from {
                q = q.filter(admin_audit::created_at.ge(v));
            }
            if let Some(v) = f.to {
                q = q.filter(admin_audit::created_at.lt(v));
            }
            q
        }};
    }
    db_run!(db, |conn| {
        let total: i64 = filtered!().count().get_result(conn).await?;
        let rows = filtered!()
            .order(admin_audit::id.desc())
            .limit(limit)
            .offset(offset)
            .select(AuditRow::as_select())
            .load(conn)
            .await?;
        Ok((rows, total))
    })
}
