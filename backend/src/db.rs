//! Storage over SQLite (embedded default) or PostgreSQL (production), one codebase.
//!
//! diesel-async has no multi-backend connection type, so [`Db`] is an enum of pools and
//! [`db_run!`](crate::db_run) writes the same diesel body into both arms. Where the SQL must
//! differ, callers match on [`Db`] themselves.

pub mod cache;
pub mod events;
pub mod idempotency;
pub mod ledger;
pub mod orders;
pub mod products;
pub mod refunds;
pub mod schema;
pub mod users;

use std::sync::Arc;
use std::time::Duration;

use cache::{OrderCache, OrderCacheConfig};

use diesel::connection::SimpleConnection;
use diesel::{Connection, SqliteConnection};
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::bb8::Pool;
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use futures_util::FutureExt;

pub type SqliteConn = SyncConnectionWrapper<SqliteConnection>;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/sqlite");
const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/postgres");

/// Pragmas applied to every pooled SQLite connection.
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; \
     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;";

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database pool: {0}")]
    Pool(String),
    #[error("database connection: {0}")]
    Connection(#[from] diesel::ConnectionError),
    #[error("database query: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("database migration: {0}")]
    Migration(String),
}

impl DbError {
    /// True when the failure is a unique-constraint violation (same on both backends).
    pub fn is_unique_violation(&self) -> bool {
        matches!(
            self,
            DbError::Query(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _
            ))
        )
    }
}

pub type DbResult<T> = Result<T, DbError>;

/// Which database engine a URL selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn from_url(url: &str) -> Option<Backend> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }
}

/// A pool over either backend.
#[derive(Clone)]
pub enum Pools {
    Pg(Pool<AsyncPgConnection>),
    Sqlite(Pool<SqliteConn>),
}

/// The database: a pool over either backend and the order-row cache its writers keep
/// honest (see [`cache`]).
#[derive(Clone)]
pub struct Db {
    pools: Pools,
    orders: Arc<OrderCache>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.pools {
            Pools::Pg(_) => "Db::Pg",
            Pools::Sqlite(_) => "Db::Sqlite",
        })
    }
}

/// `sqlite://data/fenpay.db` -> `data/fenpay.db`; `sqlite:///abs/x.db` -> `/abs/x.db`.
pub fn sqlite_path(url: &str) -> &str {
    let rest = url.strip_prefix("sqlite:").unwrap_or(url);
    rest.strip_prefix("//").unwrap_or(rest)
}

impl Db {
    /// Connect a pool for `url` (the scheme selects the backend).
    pub async fn connect(url: &str, max_size: u32) -> DbResult<Db> {
        match Backend::from_url(url) {
            Some(Backend::Postgres) => {
                let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(url);
                let pool = Pool::builder()
                    .max_size(max_size)
                    .connection_timeout(Duration::from_secs(10))
                    .build(manager)
                    .await
                    .map_err(|e| DbError::Pool(e.to_string()))?;
                Ok(Db::new(Pools::Pg(pool)))
            }
            Some(Backend::Sqlite) => {
                let path = sqlite_path(url).to_string();
                if let Some(parent) = std::path::Path::new(&path).parent() {
                    if !parent.as_os_str().is_empty() {
                        std::fs::create_dir_all(parent).map_err(|e| {
                            DbError::Pool(format!("cannot create {}: {e}", parent.display()))
                        })?;
                    }
                }
                let mut config = ManagerConfig::<SqliteConn>::default();
                config.custom_setup = Box::new(|url: &str| {
                    let url = url.to_string();
                    async move {
                        let mut conn = SqliteConn::establish(&url).await?;
                        conn.batch_execute(SQLITE_PRAGMAS)
                            .await
                            .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                        Ok(conn)
                    }
                    .boxed()
                });
                let manager =
                    AsyncDieselConnectionManager::<SqliteConn>::new_with_config(path, config);
                // A local file does not drop connections: no test query before every use (it
                // cost a second blocking-thread hop per query); a connection left in a broken
                // transaction is still discarded on its way back to the pool.
                let pool = Pool::builder()
                    .max_size(max_size)
                    .test_on_check_out(false)
                    .connection_timeout(Duration::from_secs(10))
                    .build(manager)
                    .await
                    .map_err(|e| DbError::Pool(e.to_string()))?;
                Ok(Db::new(Pools::Sqlite(pool)))
            }
            None => Err(DbError::Pool(
                "DATABASE_URL must start with sqlite:, postgres:// or postgresql://".into(),
            )),
        }
    }

    fn new(pools: Pools) -> Db {
        let live = matches!(pools, Pools::Sqlite(_));
        Db {
            pools,
            orders: Arc::new(OrderCache::new(OrderCacheConfig::default(), live)),
        }
    }

    /// Replace the order cache (call before cloning the handle). On SQLite it is live at
    /// once (this process is the only writer); on PostgreSQL it stays off until the
    /// LISTEN task hears changes (`live::listen`).
    pub fn with_order_cache(mut self, config: OrderCacheConfig) -> Db {
        let live = self.backend() == Backend::Sqlite;
        self.orders = Arc::new(OrderCache::new(config, live));
        self
    }

    pub fn pools(&self) -> &Pools {
        &self.pools
    }

    /// The order-row cache (order-status reads, writers' invalidations).
    pub fn order_cache(&self) -> &OrderCache {
        &self.orders
    }

    pub fn backend(&self) -> Backend {
        match self.pools {
            Pools::Pg(_) => Backend::Postgres,
            Pools::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// Cheap liveness query for `/readyz`.
    pub async fn ping(&self) -> DbResult<()> {
        crate::db_run!(self, |conn| {
            diesel::sql_query("SELECT 1").execute(conn).await?;
            Ok(())
        })
    }
}

/// Apply pending migrations for `url`; returns the versions applied.
///
/// PostgreSQL runs them under an advisory lock so replicas starting together do not race.
pub async fn migrate(url: &str) -> DbResult<Vec<String>> {
    match Backend::from_url(url) {
        Some(Backend::Postgres) => {
            let conn = AsyncPgConnection::establish(url).await?;
            let mut wrapper: AsyncConnectionWrapper<AsyncPgConnection> = conn.into();
            tokio::task::spawn_blocking(move || {
                SimpleConnection::batch_execute(&mut wrapper, "SELECT pg_advisory_lock(724311)")
                    .map_err(DbError::Query)?;
                let applied = wrapper
                    .run_pending_migrations(PG_MIGRATIONS)
                    .map(|v| v.iter().map(|m| m.to_string()).collect())
                    .map_err(|e| DbError::Migration(e.to_string()));
                let _ = SimpleConnection::batch_execute(
                    &mut wrapper,
                    "SELECT pg_advisory_unlock(724311)",
                );
                applied
            })
            .await
            .map_err(|e| DbError::Migration(e.to_string()))?
        }
        Some(Backend::Sqlite) => {
            let path = sqlite_path(url).to_string();
            tokio::task::spawn_blocking(move || {
                if let Some(parent) = std::path::Path::new(&path).parent() {
                    if !parent.as_os_str().is_empty() {
                        let _ = std::fs::create_dir_all(parent);
                    }
                }
                let mut conn = SqliteConnection::establish(&path)?;
                conn.batch_execute(SQLITE_PRAGMAS)?;
                conn.run_pending_migrations(SQLITE_MIGRATIONS)
                    .map(|v| v.iter().map(|m| m.to_string()).collect())
                    .map_err(|e| DbError::Migration(e.to_string()))
            })
            .await
            .map_err(|e| DbError::Migration(e.to_string()))?
        }
        None => Err(DbError::Migration("unsupported DATABASE_URL scheme".into())),
    }
}

/// Run the same diesel-async body against whichever backend the pool holds.
///
/// `conn` is bound to `&mut AsyncPgConnection` or `&mut SyncConnectionWrapper<SqliteConnection>`;
/// the body must be an expression evaluating to `DbResult<T>` and may `.await`.
#[macro_export]
macro_rules! db_run {
    ($db:expr, |$conn:ident| $body:expr) => {
        match $db.pools() {
            $crate::db::Pools::Pg(pool) => {
                let mut pooled = pool
                    .get()
                    .await
                    .map_err(|e| $crate::db::DbError::Pool(e.to_string()))?;
                let $conn = &mut *pooled;
                $body
            }
            $crate::db::Pools::Sqlite(pool) => {
                let mut pooled = pool
                    .get()
                    .await
                    .map_err(|e| $crate::db::DbError::Pool(e.to_string()))?;
                let $conn = &mut *pooled;
                $body
            }
        }
    };
}

/// Current time as stored: UTC, naive, microsecond precision (both backends keep µs).
pub fn now() -> chrono::NaiveDateTime {
    use chrono::{DurationRound, TimeDelta};
    let now = chrono::Utc::now();
    now.duration_trunc(TimeDelta::microseconds(1))
        .unwrap_or(now)
        .naive_utc()
}

/// Read a stored naive UTC time back as `DateTime<Utc>`.
pub fn utc(t: chrono::NaiveDateTime) -> chrono::DateTime<chrono::Utc> {
    t.and_utc()
}
