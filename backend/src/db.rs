//! Storage over SQLite (embedded default) or PostgreSQL (production), one codebase.
//!
//! diesel-async has no multi-backend connection type, so [`Db`] is an enum of pools and
//! [`db_run!`](crate::db_run) writes the same diesel body into both arms. Where the SQL must
//! differ, callers match on [`Db`] themselves.

pub mod apps;
pub mod audit;
pub mod cache;
pub mod complaints;
pub mod events;
pub mod exports;
pub mod gauges;
pub mod idempotency;
pub mod ledger;
pub mod orders;
mod pg;
pub mod products;
pub mod reconciliations;
pub mod refunds;
pub mod retention;
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
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use futures_util::FutureExt;
pub use pg::{PgPool, Timeouts};

pub type SqliteConn = SyncConnectionWrapper<SqliteConnection, Blocking>;
/// The SQLite writer: statements run on the calling thread (see [`Inline`]).
pub type SqliteWriteConn = SyncConnectionWrapper<SqliteConnection, Inline>;

/// Runs a SQLite reader's statement on tokio's blocking pool, like diesel-async's default,
/// and when the caller goes away first (a client disconnects mid-read), dropping the
/// statement waits for it to finish, so the connection goes back to the pool unshared.
/// The default waits with `tokio::task::block_in_place`, which panics on a current-thread
/// runtime: every actix-web worker is one. A read takes microseconds to milliseconds, so
/// the wait is short.
#[derive(Clone, Debug)]
pub struct Blocking(tokio::runtime::Handle);

impl diesel_async::sync_connection_wrapper::SpawnBlocking for Blocking {
    fn spawn_blocking<'a, R>(
        &mut self,
        task: impl FnOnce() -> R + Send + 'static,
    ) -> futures_util::future::BoxFuture<
        'a,
        Result<R, Box<dyn std::error::Error + Send + Sync + 'static>>,
    >
    where
        R: Send + 'static,
    {
        let (done, finished) = std::sync::mpsc::sync_channel::<()>(1);
        let handle = self.0.spawn_blocking(move || {
            // `task` owns the connection's handle; it is released when `task` returns.
            let out = task();
            let _ = done.send(());
            out
        });
        Box::pin(FinishOnDrop {
            handle: Some(handle),
            finished,
        })
    }

    fn get_runtime() -> Self {
        Blocking(tokio::runtime::Handle::current())
    }
}

/// A blocking statement's future that, dropped before the statement finished, waits for it.
struct FinishOnDrop<R> {
    handle: Option<tokio::task::JoinHandle<R>>,
    finished: std::sync::mpsc::Receiver<()>,
}

impl<R> std::future::Future for FinishOnDrop<R> {
    type Output = Result<R, Box<dyn std::error::Error + Send + Sync + 'static>>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let Some(handle) = self.handle.as_mut() else {
            return std::task::Poll::Ready(Err("statement polled after it finished".into()));
        };
        match std::pin::Pin::new(handle).poll(cx) {
            std::task::Poll::Ready(out) => {
                self.handle = None;
                std::task::Poll::Ready(out.map_err(|e| Box::new(e) as _))
            }
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }
}

impl<R> Drop for FinishOnDrop<R> {
    fn drop(&mut self) {
        if self.handle.take().is_some() {
            // Returns once the statement has finished (or its thread panicked).
            let _ = self.finished.recv();
        }
    }
}

/// Runs a SQLite statement where it is called instead of on tokio's blocking pool.
///
/// For the single writer connection only. A write transaction is a handful of
/// statements of some microseconds each; sending each to a blocking thread and back cost
/// two context switches per statement and, on a busy machine, a wait for a core while the
/// transaction held SQLite's write lock (the profile of create-order and notifications:
/// 25% of the time in context switches, CPU idle while writers queued). Writers of this
/// process take turns at the one writer connection (first come, first served), so they
/// never sleep in SQLite's busy handler; only another process holding the database's
/// write lock can make one wait, for at most 0.5 s ([`SQLITE_WRITER_PRAGMAS`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct Inline;

impl diesel_async::sync_connection_wrapper::SpawnBlocking for Inline {
    fn spawn_blocking<'a, R>(
        &mut self,
        task: impl FnOnce() -> R + Send + 'static,
    ) -> futures_util::future::BoxFuture<
        'a,
        Result<R, Box<dyn std::error::Error + Send + Sync + 'static>>,
    >
    where
        R: Send + 'static,
    {
        Box::pin(std::future::ready(Ok(task())))
    }

    fn get_runtime() -> Self {
        Inline
    }
}

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/sqlite");
const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/postgres");

/// Pragmas applied to every pooled SQLite connection.
const SQLITE_PRAGMAS: &str = "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;";
/// The writer's: a short busy timeout (it waits on the thread that asked, so another
/// process holding the write lock fails the write after 0.5 s: the caller answers 5xx and
/// the provider, the job or the client tries again), and no automatic checkpoints (the
/// commit that crosses the threshold would copy and fsync the WAL on that thread;
/// [`checkpoint_wal`] does it in the background instead).
const SQLITE_WRITER_PRAGMAS: &str = "PRAGMA busy_timeout = 500; PRAGMA journal_mode = WAL; \
     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA wal_autocheckpoint = 0;";

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
    /// No answer within the deadline (`DATABASE_STATEMENT_TIMEOUT_SECS`, or the connect
    /// timeout): the connection was dropped. The outcome is unknown: a transaction that
    /// had not sent its `COMMIT` rolls back, one that had may have committed.
    #[error("database timeout: {0}")]
    Timeout(String),
}

impl DbError {
    /// True when the database could not take the statement now (no connection in time,
    /// a connection the server closed, SQLite's write lock held by another process past
    /// the busy timeout): worth answering 503 and trying later.
    pub fn is_unavailable(&self) -> bool {
        use diesel::result::{DatabaseErrorKind, Error};
        match self {
            DbError::Pool(_) | DbError::Timeout(_) => true,
            DbError::Query(Error::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                _,
            )) => true,
            DbError::Query(Error::DatabaseError(_, info)) => {
                let m = info.message();
                // SQLite's lock; PostgreSQL's notice to a connection it is closing, and
                // its statement timeout (the transaction rolled back).
                m.contains("database is locked")
                    || m.contains("database is busy")
                    || m.starts_with("terminating connection")
                    || m.starts_with("canceling statement due to statement timeout")
            }
            _ => false,
        }
    }

    /// True when a row names one that does not exist (e.g. an order of a deleted account).
    pub fn is_foreign_key_violation(&self) -> bool {
        matches!(
            self,
            DbError::Query(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::ForeignKeyViolation,
                _
            ))
        )
    }

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

/// A pool over either backend. SQLite has readers (statements on tokio's blocking pool)
/// and one writer (statements inline, see [`Inline`]); [`db_write!`](crate::db_write)
/// takes the writer, [`db_run!`](crate::db_run) a reader.
#[derive(Clone)]
pub enum Pools {
    Pg(PgPool),
    Sqlite(Pool<SqliteConn>, Pool<SqliteWriteConn>),
}

/// The database: a pool over either backend and the order-row cache its writers keep
/// honest (see [`cache`]).
#[derive(Clone)]
pub struct Db {
    pools: Pools,
    orders: Arc<OrderCache>,
    clock_offset: chrono::TimeDelta,
    /// PostgreSQL: statements may run long (see [`Db::unhurried`]).
    unhurried: bool,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.pools {
            Pools::Pg(_) => "Db::Pg",
            Pools::Sqlite(..) => "Db::Sqlite",
        })
    }
}

/// `sqlite://data/fenpay.db` -> `data/fenpay.db`; `sqlite:///abs/x.db` -> `/abs/x.db`.
pub fn sqlite_path(url: &str) -> &str {
    let rest = url.strip_prefix("sqlite:").unwrap_or(url);
    rest.strip_prefix("//").unwrap_or(rest)
}

/// A pool manager for SQLite connections at `path` that apply `pragmas` when opened.
fn sqlite_manager<C>(path: &str, pragmas: &str) -> AsyncDieselConnectionManager<C>
where
    C: AsyncConnection + 'static,
{
    let mut config = ManagerConfig::<C>::default();
    let pragmas = pragmas.to_string();
    config.custom_setup = Box::new(move |url: &str| {
        let (url, pragmas) = (url.to_string(), pragmas.clone());
        async move {
            let mut conn = C::establish(&url).await?;
            conn.batch_execute(&pragmas)
                .await
                .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
            Ok(conn)
        }
        .boxed()
    });
    AsyncDieselConnectionManager::new_with_config(path, config)
}

impl Db {
    /// Connect a pool for `url` (the scheme selects the backend) with the default
    /// [`Timeouts`].
    pub async fn connect(url: &str, max_size: u32) -> DbResult<Db> {
        Db::connect_with(url, max_size, Timeouts::default()).await
    }

    /// Connect a pool for `url` with these timeouts (settings `DATABASE_*_TIMEOUT_SECS`).
    pub async fn connect_with(url: &str, max_size: u32, timeouts: Timeouts) -> DbResult<Db> {
        match Backend::from_url(url) {
            Some(Backend::Postgres) => Ok(Db::new(Pools::Pg(
                PgPool::connect(url, max_size, timeouts).await?,
            ))),
            Some(Backend::Sqlite) => {
                let path = sqlite_path(url).to_string();
                if let Some(parent) = std::path::Path::new(&path).parent() {
                    if !parent.as_os_str().is_empty() {
                        std::fs::create_dir_all(parent).map_err(|e| {
                            DbError::Pool(format!("cannot create {}: {e}", parent.display()))
                        })?;
                    }
                }
                // A local file does not drop connections: no test query before every use (it
                // cost a second blocking-thread hop per query); a connection left in a broken
                // transaction is still discarded on its way back to the pool.
                let read = Pool::builder()
                    .max_size(max_size)
                    .test_on_check_out(false)
                    .connection_timeout(timeouts.acquire)
                    .build(sqlite_manager::<SqliteConn>(&path, SQLITE_PRAGMAS))
                    .await
                    .map_err(|e| DbError::Pool(e.to_string()))?;
                // Writers queued behind a stuck one give up after 2 s (503), inside a
                // provider's 5 s deadline for its notification's answer.
                let write = Pool::builder()
                    .max_size(1)
                    .test_on_check_out(false)
                    .connection_timeout(Duration::from_secs(2))
                    .build(sqlite_manager::<SqliteWriteConn>(
                        &path,
                        SQLITE_WRITER_PRAGMAS,
                    ))
                    .await
                    .map_err(|e| DbError::Pool(e.to_string()))?;
                Ok(Db::new(Pools::Sqlite(read, write)))
            }
            None => Err(DbError::Pool(
                "DATABASE_URL must start with sqlite:, postgres:// or postgresql://".into(),
            )),
        }
    }

    fn new(pools: Pools) -> Db {
        let sqlite = matches!(pools, Pools::Sqlite(..));
        Db {
            pools,
            orders: Arc::new(OrderCache::new(OrderCacheConfig::default(), sqlite)),
            clock_offset: chrono::TimeDelta::zero(),
            unhurried: false,
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
            Pools::Sqlite(..) => Backend::Sqlite,
        }
    }

    /// Cheap liveness query for `/readyz`: answers within [`pg::PING_DEADLINE`] on
    /// PostgreSQL, whatever the network does.
    pub async fn ping(&self) -> DbResult<()> {
        match &self.pools {
            Pools::Pg(pool) => pool.ping().await,
            Pools::Sqlite(..) => crate::db_run!(self, |conn| {
                diesel::sql_query("SELECT 1").execute(conn).await?;
                Ok(())
            }),
        }
    }

    /// This handle for work whose statements may legitimately run long (the retention
    /// purge, the ledger check): on PostgreSQL they run without the statement timeout
    /// and with a deadline of [`pg::LONG_DEADLINE`] instead. Same pool.
    pub fn unhurried(&self) -> Db {
        let mut db = self.clone();
        db.unhurried = true;
        db
    }

    #[doc(hidden)]
    pub fn is_unhurried(&self) -> bool {
        self.unhurried
    }

    /// A connection of its own (not pooled) with the pool's connect timeout, keepalive
    /// and statement timeout: the LISTEN connection ([`crate::live::listen`]).
    pub async fn dedicated_pg_connection(&self, url: &str) -> DbResult<AsyncPgConnection> {
        let timeouts = match &self.pools {
            Pools::Pg(pool) => pool.timeouts(),
            Pools::Sqlite(..) => Timeouts::default(),
        };
        pg::establish(url, &timeouts, true).await
    }
}

/// SQLite: checkpoint the WAL into the database every second, on a reader connection
/// (tokio's blocking pool), since the writer does not ([`SQLITE_WRITER_PRAGMAS`]).
/// `PASSIVE` never waits for readers or the writer; what it cannot copy yet, the next
/// pass does. Returns at once on PostgreSQL.
pub async fn checkpoint_wal(db: Db) {
    use diesel_async::SimpleAsyncConnection;
    if db.backend() != Backend::Sqlite {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let pass = async {
            crate::db_run!(db, |conn| {
                conn.batch_execute("PRAGMA wal_checkpoint(PASSIVE)").await?;
                Ok::<(), DbError>(())
            })
        };
        if let Err(e) = pass.await {
            tracing::warn!(error = %e, "WAL checkpoint failed; trying again in 1 s");
        }
    }
}

/// Apply pending migrations for `url`; returns the versions applied.
///
/// PostgreSQL runs them under an advisory lock so replicas starting together do not race.
pub async fn migrate(url: &str) -> DbResult<Vec<String>> {
    match Backend::from_url(url) {
        Some(Backend::Postgres) => {
            // Connect timeout and keepalive, but no statement timeout: a migration may
            // legitimately run long.
            let conn = pg::establish(url, &Timeouts::default(), false).await?;
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

/// Check a connection out of `$pool` (503 when none comes in time) and run `$body` on it.
#[doc(hidden)]
#[macro_export]
macro_rules! db_on {
    ($pool:expr, |$conn:ident| $body:expr) => {{
        let mut pooled = $pool
            .get()
            .await
            .map_err(|e| $crate::db::DbError::Pool(e.to_string()))?;
        let $conn = &mut *pooled;
        async { $body }.await
    }};
}

/// Check a connection out of a PostgreSQL pool and run `$body` on it within the
/// statement deadline; a connection whose body did not finish in time is dropped (an
/// uncommitted transaction on it rolls back) and the call fails with [`DbError::Timeout`]
/// (outcome unknown). An unhurried call's connection is dropped unless its statement
/// timeout was restored, so a caller that goes away mid-call cannot leak a session
/// without one into the pool.
#[doc(hidden)]
#[macro_export]
macro_rules! db_on_pg {
    ($pool:expr, $db:expr, |$conn:ident| $body:expr) => {{
        let pool: &$crate::db::PgPool = $pool;
        let unhurried = $db.is_unhurried();
        let mut pooled = pool.get().await?;
        if unhurried {
            $crate::db::PgPool::lift_statement_timeout(&mut pooled).await?;
        }
        let out = ::tokio::time::timeout(pool.deadline(unhurried), async {
            let $conn = $crate::db::PgPool::raw(&mut pooled);
            $body
        })
        .await;
        match out {
            Ok(out) => {
                if unhurried {
                    // Clears the mark `lift_statement_timeout` set, once the session's
                    // statement timeout is back.
                    $crate::db::PgPool::restore_statement_timeout(&mut pooled).await;
                }
                out
            }
            Err(_) => {
                pool.timed_out(&mut pooled);
                Err(::core::convert::From::from($crate::db::DbError::Timeout(
                    "no answer from the database within the statement deadline".into(),
                )))
            }
        }
    }};
}

/// Run the same diesel-async body against whichever backend the pool holds.
///
/// `conn` is bound to `&mut AsyncPgConnection` or `&mut SyncConnectionWrapper<SqliteConnection>`;
/// the body must be an expression evaluating to `DbResult<T>` and may `.await` (a `?`
/// in it leaves the body, not the calling function). On PostgreSQL the body runs within
/// the statement deadline (`DATABASE_STATEMENT_TIMEOUT_SECS`).
#[macro_export]
macro_rules! db_run {
    ($db:expr, |$conn:ident| $body:expr) => {
        match $db.pools() {
            $crate::db::Pools::Pg(pool) => $crate::db_on_pg!(pool, $db, |$conn| $body),
            $crate::db::Pools::Sqlite(pool, _) => $crate::db_on!(pool, |$conn| $body),
        }
    };
}

/// [`db_run!`](crate::db_run) for a body that writes. On SQLite it takes the one writer
/// connection (writers of this process queue for it in order instead of colliding in
/// SQLite's busy handler; its statements run inline, see [`Inline`]). A write through
/// `db_run!` would still be correct (SQLite's busy timeout serialises it), only slower.
#[macro_export]
macro_rules! db_write {
    ($db:expr, |$conn:ident| $body:expr) => {
        match $db.pools() {
            $crate::db::Pools::Pg(pool) => $crate::db_on_pg!(pool, $db, |$conn| $body),
            $crate::db::Pools::Sqlite(_, pool) => $crate::db_on!(pool, |$conn| $body),
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

/// The database's clock, read once ([`Db::clock`]) and carried forward with this
/// process's monotonic clock, so a wrong wall clock here does not move it.
#[derive(Clone, Copy, Debug)]
pub struct DbClock {
    at: chrono::NaiveDateTime,
    read: std::time::Instant,
}

impl DbClock {
    pub fn new(at: chrono::NaiveDateTime) -> DbClock {
        DbClock {
            at,
            read: std::time::Instant::now(),
        }
    }

    /// The database's time now (UTC, as stored).
    pub fn now(&self) -> chrono::NaiveDateTime {
        self.at + self.read.elapsed()
    }
}

/// Who holds a job's claim on a row (an order, a webhook delivery): a fresh random token
/// per claim. Finishing or releasing a claim names it, so a holder whose lease ran out and
/// was taken over by another job changes nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimToken(String);

impl ClaimToken {
    pub fn new() -> ClaimToken {
        ClaimToken(uuid::Uuid::new_v4().simple().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for ClaimToken {
    fn default() -> Self {
        ClaimToken::new()
    }
}

#[derive(diesel::QueryableByName)]
struct ClockRow {
    #[diesel(sql_type = diesel::sql_types::Timestamp)]
    now: chrono::NaiveDateTime,
}

impl Db {
    /// This process's own clock (UTC, as stored), shifted by `CLOCK_OFFSET_SECS` (a
    /// test-only skew; refused in production). Leases and due times never use it: they
    /// come from the database's clock ([`Db::clock_sql`]), which all replicas share.
    pub fn now(&self) -> chrono::NaiveDateTime {
        now() + self.clock_offset
    }

    /// Skew this handle's own clock (see [`Db::now`]); call before cloning the handle.
    pub fn with_clock_offset(mut self, secs: i64) -> Db {
        self.clock_offset = chrono::TimeDelta::seconds(secs);
        self
    }

    /// SQL for the database's time `secs` from now, UTC and naive like the stored times.
    /// PostgreSQL's clock is the server's (one for every replica); SQLite's is this
    /// process's (SQLite mode is single-process). `secs` is an integer, never user text.
    pub fn clock_sql(&self, secs: i64) -> String {
        match self.backend() {
            Backend::Postgres if secs == 0 => "(now() AT TIME ZONE 'UTC')".to_string(),
            Backend::Postgres => {
                format!("((now() AT TIME ZONE 'UTC') + interval '{secs} seconds')")
            }
            Backend::Sqlite if secs == 0 => "strftime('%Y-%m-%d %H:%M:%f', 'now')".to_string(),
            Backend::Sqlite => {
                format!("strftime('%Y-%m-%d %H:%M:%f', 'now', '{secs:+} seconds')")
            }
        }
    }

    /// [`Db::clock_sql`] as a diesel expression of type `ST` (`Timestamp` or
    /// `Nullable<Timestamp>`).
    pub fn clock_expr<ST>(&self, secs: i64) -> diesel::expression::SqlLiteral<ST>
    where
        ST: diesel::sql_types::SqlType + diesel::expression::TypedExpressionType,
    {
        diesel::dsl::sql::<ST>(&self.clock_sql(secs))
    }

    /// Read the database's clock (one query).
    pub async fn clock(&self) -> DbResult<DbClock> {
        let sql = format!("SELECT {} AS now", self.clock_sql(0));
        let row: ClockRow = crate::db_run!(self, |conn| {
            Ok::<_, DbError>(diesel::sql_query(sql.as_str()).get_result(conn).await?)
        })?;
        Ok(DbClock::new(row.now))
    }
}
