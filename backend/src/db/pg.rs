//! The PostgreSQL pool: bb8 over diesel-async connections, hardened against a database
//! that stops answering without closing its connections (a network blackhole, a
//! failover that leaves half-open sockets).
//!
//! - Opening a connection (TCP, start-up, authentication, session setup) has a deadline
//!   (`DATABASE_CONNECT_TIMEOUT_SECS`), so connections being opened never hold the pool's
//!   slots for ever; TCP keepalive and `tcp_user_timeout` let the kernel notice a peer
//!   that went away.
//! - Every pooled call ([`db_run!`](crate::db_run), [`db_write!`](crate::db_write)) has a
//!   deadline (`DATABASE_STATEMENT_TIMEOUT_SECS`), and the server cancels a statement
//!   past the same time (`statement_timeout`) and ends a session left idle inside a
//!   transaction (`idle_in_transaction_session_timeout`), so a client that vanished
//!   never holds row locks for long. A call that misses its deadline drops its
//!   connection (any transaction on it rolls back: nothing is half-applied).
//! - Checkouts are not pinged (a round trip per use): the fast path stays fast. But once
//!   any call has timed out, every connection opened or checked before that moment is
//!   checked once (`SELECT 1`, short deadline) at its next checkout, and dropped if it
//!   does not answer: after an outage the pool holds no dead connections, and a request
//!   meets at most one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use diesel_async::pooled_connection::PoolableConnection;
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};

use super::{DbError, DbResult};

/// `/readyz` answers within this, whatever the network does.
pub const PING_DEADLINE: Duration = Duration::from_millis(1500);
/// A connection checked after a timeout elsewhere must answer `SELECT 1` within this.
const CHECK_DEADLINE: Duration = Duration::from_secs(1);
/// The deadline of [`super::Db::unhurried`] calls (no server-side statement timeout).
pub const LONG_DEADLINE: Duration = Duration::from_secs(600);
/// Keepalive probes on idle connections: first after this, then every
/// [`KEEPALIVE_INTERVAL`], [`KEEPALIVE_RETRIES`] times (unless the URL sets them).
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_RETRIES: u32 = 3;
/// Unacknowledged data for this long aborts the connection (unless the URL sets it).
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);

/// Timeouts of the database pool (settings `DATABASE_CONNECT_TIMEOUT_SECS`,
/// `DATABASE_ACQUIRE_TIMEOUT_SECS`, `DATABASE_STATEMENT_TIMEOUT_SECS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Opening a PostgreSQL connection, start-up and authentication included.
    pub connect: Duration,
    /// Waiting for a pooled connection (PostgreSQL, and SQLite's readers).
    pub acquire: Duration,
    /// One pooled call on PostgreSQL (client deadline and server `statement_timeout`).
    pub statement: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(3),
            acquire: Duration::from_secs(2),
            statement: Duration::from_secs(3),
        }
    }
}

/// Open one connection to `url`: connect timeout over the whole start-up, keepalive,
/// and (with `session_limits`) the statement and idle-in-transaction timeouts.
pub async fn establish(
    url: &str,
    timeouts: &Timeouts,
    session_limits: bool,
) -> DbResult<AsyncPgConnection> {
    let config = config_for(url, timeouts, session_limits)?;
    let open = async {
        let (client, connection) = config
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(|e| DbError::Pool(format!("cannot connect to PostgreSQL: {e}")))?;
        AsyncPgConnection::try_from_client_and_connection(client, connection)
            .await
            .map_err(DbError::Connection)
    };
    match tokio::time::timeout(timeouts.connect, open).await {
        Ok(conn) => conn,
        Err(_) => Err(DbError::Timeout(format!(
            "no PostgreSQL connection within {:?}",
            timeouts.connect
        ))),
    }
}

/// The URL's settings, with ours where the URL sets none.
fn config_for(
    url: &str,
    timeouts: &Timeouts,
    session_limits: bool,
) -> DbResult<tokio_postgres::Config> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| DbError::Pool(format!("invalid PostgreSQL URL: {e}")))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(timeouts.connect);
    }
    config.keepalives(true);
    // tokio-postgres' own default is 2 hours.
    if config.get_keepalives_idle() == Duration::from_secs(2 * 60 * 60) {
        config
            .keepalives_idle(KEEPALIVE_IDLE)
            .keepalives_interval(KEEPALIVE_INTERVAL)
            .keepalives_retries(KEEPALIVE_RETRIES);
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(TCP_USER_TIMEOUT);
    }
    if session_limits {
        let ms = timeouts.statement.as_millis();
        // A session idle inside a transaction this long has lost its client (ours never
        // wait between statements of a transaction): the server ends it, releasing its
        // locks, instead of waiting for TCP to notice.
        let idle = (timeouts.statement * 2)
            .max(Duration::from_secs(10))
            .as_millis();
        let ours =
            format!("-c statement_timeout={ms} -c idle_in_transaction_session_timeout={idle}");
        let options = match config.get_options() {
            Some(theirs) if !theirs.trim().is_empty() => format!("{ours} {theirs}"),
            _ => ours,
        };
        config.options(options);
    }
    Ok(config)
}

/// A pooled connection and what the pool knows of it.
pub struct PgConn {
    conn: AsyncPgConnection,
    /// The timeout epoch this connection was opened or last checked in.
    epoch: u64,
    /// Drop it instead of putting it back (a call on it timed out, or a check did not
    /// finish).
    broken: bool,
}

/// Opens connections; checks a connection at checkout only when a timeout happened
/// since it was opened or last checked.
pub struct PgManager {
    url: String,
    timeouts: Timeouts,
    /// Bumped by every timeout.
    epoch: Arc<AtomicU64>,
}

impl bb8::ManageConnection for PgManager {
    type Connection = PgConn;
    type Error = DbError;

    async fn connect(&self) -> Result<PgConn, DbError> {
        let epoch = AtomicU64::load(&self.epoch, Ordering::Acquire);
        let conn = establish(&self.url, &self.timeouts, true).await?;
        Ok(PgConn {
            conn,
            epoch,
            broken: false,
        })
    }

    async fn is_valid(&self, c: &mut PgConn) -> Result<(), DbError> {
        if c.conn.is_broken() {
            return Err(DbError::Pool("connection closed".into()));
        }
        let now = AtomicU64::load(&self.epoch, Ordering::Acquire);
        if c.epoch == now {
            return Ok(());
        }
        // Stays set when this check is abandoned (the checkout timed out meanwhile).
        c.broken = true;
        let check = diesel::sql_query("SELECT 1").execute(&mut c.conn);
        match tokio::time::timeout(CHECK_DEADLINE, check).await {
            Ok(Ok(_)) => {
                c.broken = false;
                c.epoch = now;
                Ok(())
            }
            Ok(Err(e)) => Err(DbError::Query(e)),
            Err(_) => Err(DbError::Timeout("connection check".into())),
        }
    }

    fn has_broken(&self, c: &mut PgConn) -> bool {
        c.broken || std::thread::panicking() || c.conn.is_broken()
    }
}

/// The PostgreSQL pool with its timeouts.
#[derive(Clone)]
pub struct PgPool {
    pool: bb8::Pool<PgManager>,
    timeouts: Timeouts,
    epoch: Arc<AtomicU64>,
}

/// A connection checked out of a [`PgPool`].
pub type PgPooled<'a> = bb8::PooledConnection<'a, PgManager>;

impl PgPool {
    pub async fn connect(url: &str, max_size: u32, timeouts: Timeouts) -> DbResult<PgPool> {
        let epoch = Arc::new(AtomicU64::new(0));
        let manager = PgManager {
            url: url.to_string(),
            timeouts,
            epoch: epoch.clone(),
        };
        // No `SELECT 1` before every checkout: it cost a round trip per use (an
        // authenticated read: 11.9k -> 17.8k req/s without it; create-order +11%).
        // `is_valid` checks a connection only after a timeout (see the module's doc).
        let pool = bb8::Pool::builder()
            .max_size(max_size)
            .test_on_check_out(true)
            .connection_timeout(timeouts.acquire)
            .build(manager)
            .await?;
        Ok(PgPool {
            pool,
            timeouts,
            epoch,
        })
    }

    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// Connections open and idle (the metrics' pool gauges).
    pub fn state(&self) -> bb8::State {
        self.pool.state()
    }

    /// A connection, or [`DbError::Pool`] after `DATABASE_ACQUIRE_TIMEOUT_SECS`.
    pub async fn get(&self) -> DbResult<PgPooled<'_>> {
        self.pool.get().await.map_err(|e| match e {
            bb8::RunError::User(e) => e,
            bb8::RunError::TimedOut => DbError::Pool(format!(
                "no database connection within {:?}",
                self.timeouts.acquire
            )),
        })
    }

    /// The deadline of one call.
    pub fn deadline(&self, unhurried: bool) -> Duration {
        if unhurried {
            LONG_DEADLINE
        } else {
            self.timeouts.statement
        }
    }

    /// The diesel connection inside a pooled one.
    pub fn raw<'c>(pooled: &'c mut PgPooled<'_>) -> &'c mut AsyncPgConnection {
        &mut pooled.conn
    }

    /// A call on `pooled` missed its deadline: drop it, and check every other connection
    /// before its next use.
    pub fn timed_out(&self, pooled: &mut PgPooled<'_>) {
        pooled.broken = true;
        self.epoch.fetch_add(1, Ordering::AcqRel);
        tracing::warn!(
            deadline = ?self.timeouts.statement,
            "database call timed out: connection dropped, the others are checked before reuse"
        );
    }

    /// [`super::Db::unhurried`]: no statement timeout for this call. The connection is
    /// marked broken until [`PgPool::restore_statement_timeout`] succeeds: if the caller
    /// goes away in between, it is dropped instead of going back without a timeout.
    pub async fn lift_statement_timeout(pooled: &mut PgPooled<'_>) -> DbResult<()> {
        pooled.broken = true;
        let set = pooled.conn.batch_execute("SET statement_timeout = 0");
        match tokio::time::timeout(CHECK_DEADLINE * 3, set).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(DbError::Query(e)),
            Err(_) => Err(DbError::Timeout("SET statement_timeout".into())),
        }
    }

    /// Back to the session's statement timeout; a connection that cannot is dropped.
    pub async fn restore_statement_timeout(pooled: &mut PgPooled<'_>) {
        let reset = pooled.conn.batch_execute("RESET statement_timeout");
        if matches!(
            tokio::time::timeout(CHECK_DEADLINE * 3, reset).await,
            Ok(Ok(()))
        ) {
            pooled.broken = false;
        }
    }

    /// `SELECT 1` within [`PING_DEADLINE`], checkout included. Only a connection that
    /// was taken and then did not answer counts as a timeout (a pool that is merely busy
    /// does not make every connection be checked again).
    pub async fn ping(&self) -> DbResult<()> {
        let hung = std::sync::atomic::AtomicBool::new(false);
        let run = async {
            let mut pooled = self.get().await?;
            // Stays set if the deadline ends the ping first: that connection is dropped.
            pooled.broken = true;
            hung.store(true, Ordering::Relaxed);
            diesel::sql_query("SELECT 1")
                .execute(&mut pooled.conn)
                .await
                .map_err(DbError::Query)?;
            pooled.broken = false;
            Ok(())
        };
        match tokio::time::timeout(PING_DEADLINE, run).await {
            Ok(r) => r,
            Err(_) => {
                if std::sync::atomic::AtomicBool::load(&hung, Ordering::Relaxed) {
                    self.epoch.fetch_add(1, Ordering::AcqRel);
                }
                Err(DbError::Timeout(format!(
                    "the database did not answer within {PING_DEADLINE:?}"
                )))
            }
        }
    }
}
