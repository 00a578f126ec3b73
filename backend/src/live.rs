//! Committed events, fanned out to whoever listens in this process: live order streams
//! (SSE) and the webhook dispatcher.
//!
//! SQLite mode is one process: services publish right after their transaction commits.
//! PostgreSQL mode may run several replicas: an `AFTER INSERT` trigger on `outbox_events`
//! calls `pg_notify('fenpay_events', ...)`, which PostgreSQL delivers on commit to every
//! replica's `LISTEN` connection, including the writer's own; services do not publish
//! locally then, so each replica hears every event exactly once.

use std::time::Duration;

use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use futures_util::StreamExt;
use tokio::sync::broadcast;

use crate::db::events::{EventSignal, PendingEvent};
use crate::db::{Backend, Db};

/// The channel PostgreSQL notifications arrive on.
pub const PG_CHANNEL: &str = "fenpay_events";
/// Changed order rows (payload: the order number), for the order cache.
pub const PG_ORDERS_CHANNEL: &str = "fenpay_orders";
/// Every replica notifies `fenpay_orders` (empty payload) this often, through its pool...
const HEARTBEAT: Duration = Duration::from_secs(5);
/// ...and a LISTEN connection that heard nothing for this long is taken for dead (a
/// half-open socket never errors): the order cache goes off and the connection is
/// replaced.
const SILENCE: Duration = Duration::from_secs(15);

/// In-process fan-out of committed events.
#[derive(Clone, Debug)]
pub struct EventHub {
    tx: broadcast::Sender<EventSignal>,
    backend: Backend,
}

impl EventHub {
    pub fn new(backend: Backend) -> EventHub {
        let (tx, _) = broadcast::channel(1024);
        EventHub { tx, backend }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<EventSignal> {
        self.tx.subscribe()
    }

    /// Hand subscribers an event.
    pub fn publish(&self, signal: EventSignal) {
        // No subscriber is fine.
        let _ = self.tx.send(signal);
    }

    /// Announce events a service just committed. With PostgreSQL the LISTEN task does it
    /// (for every replica), so this is a no-op there.
    pub fn committed<'a>(&self, events: impl IntoIterator<Item = &'a PendingEvent>) {
        if self.backend == Backend::Sqlite {
            for ev in events {
                self.publish(ev.signal());
            }
        }
    }
}

/// Open live event streams: at most `per_user` for one user and `total` in all (per
/// process). A [`StreamSlot`] is held by the stream and gives its place back when the
/// stream is dropped, whether it ended or the client went away.
#[derive(Clone, Debug)]
pub struct StreamSlots {
    inner: std::sync::Arc<std::sync::Mutex<SlotCounts>>,
    per_user: usize,
    total: usize,
}

#[derive(Debug, Default)]
struct SlotCounts {
    total: usize,
    per_user: std::collections::HashMap<String, usize>,
}

/// Why a stream cannot open now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotRefused {
    /// This user holds `STREAM_MAX_PER_USER` streams.
    User,
    /// The process holds `STREAM_MAX_TOTAL` streams.
    Total,
}

/// One open stream's place; released on drop.
#[derive(Debug)]
pub struct StreamSlot {
    slots: StreamSlots,
    user_id: String,
}

impl StreamSlots {
    pub fn new(per_user: usize, total: usize) -> StreamSlots {
        StreamSlots {
            inner: Default::default(),
            per_user,
            total,
        }
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, SlotCounts> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Take a place for one of `user_id`'s streams.
    pub fn open(&self, user_id: &str) -> Result<StreamSlot, SlotRefused> {
        let mut counts = self.counts();
        if counts.total >= self.total {
            return Err(SlotRefused::Total);
        }
        let mine = counts.per_user.entry(user_id.to_string()).or_insert(0);
        if *mine >= self.per_user {
            return Err(SlotRefused::User);
        }
        *mine += 1;
        counts.total += 1;
        Ok(StreamSlot {
            slots: self.clone(),
            user_id: user_id.to_string(),
        })
    }

    /// Streams open now (all users).
    pub fn open_now(&self) -> usize {
        self.counts().total
    }

    /// Streams `user_id` holds now.
    pub fn open_for(&self, user_id: &str) -> usize {
        self.counts().per_user.get(user_id).copied().unwrap_or(0)
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut counts = self.slots.counts();
        counts.total = counts.total.saturating_sub(1);
        if let Some(mine) = counts.per_user.get_mut(&self.user_id) {
            *mine -= 1;
            if *mine == 0 {
                counts.per_user.remove(&self.user_id);
            }
        }
    }
}

/// Prove this replica's LISTEN connection (and every other's) alive: an empty notice.
async fn heartbeat(db: &Db) -> crate::db::DbResult<()> {
    crate::db_run!(db, |conn| {
        diesel::sql_query(format!("SELECT pg_notify('{PG_ORDERS_CHANNEL}', '')"))
            .execute(conn)
            .await?;
        Ok(())
    })
}

/// Parse a `fenpay_events` payload: `<event id> <event type> <order no or empty>`.
pub fn parse_notification(payload: &str) -> Option<EventSignal> {
    let mut parts = payload.splitn(3, ' ');
    let event_id = parts.next()?.to_string();
    let event_type = parts.next()?.to_string();
    let order_no = parts
        .next()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from);
    if event_id.is_empty() || event_type.is_empty() {
        return None;
    }
    Some(EventSignal {
        event_id,
        event_type,
        order_no,
    })
}

/// Keep a `LISTEN fenpay_events` connection open (reconnecting with backoff) and publish
/// every notification into `hub`; changed orders announced on `fenpay_orders` leave the
/// order cache, which is on only while this connection is up. Returns only when the
/// database is not PostgreSQL.
pub async fn listen(db: Db, url: String, hub: EventHub) {
    if db.backend() != Backend::Postgres {
        return;
    }
    let beat = db.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(HEARTBEAT).await;
            if let Err(e) = heartbeat(&beat).await {
                tracing::debug!(error = %e, "LISTEN heartbeat not sent");
            }
        }
    });
    let mut backoff = Duration::from_millis(200);
    loop {
        match db.dedicated_pg_connection(&url).await {
            Ok(mut conn) => {
                match conn
                    .batch_execute(&format!("LISTEN {PG_CHANNEL}; LISTEN {PG_ORDERS_CHANNEL}"))
                    .await
                {
                    Ok(_) => {
                        tracing::debug!("listening for {PG_CHANNEL} and {PG_ORDERS_CHANNEL}");
                        backoff = Duration::from_millis(200);
                        // From here every committed change is heard: start from empty.
                        db.order_cache().set_live(true);
                        let mut stream = std::pin::pin!(conn.notifications_stream());
                        loop {
                            let item = match tokio::time::timeout(SILENCE, stream.next()).await {
                                Ok(Some(item)) => item,
                                Ok(None) => break,
                                Err(_) => {
                                    tracing::warn!(
                                        "LISTEN connection silent for {SILENCE:?}: reconnecting"
                                    );
                                    break;
                                }
                            };
                            match item {
                                Ok(n) if n.channel == PG_ORDERS_CHANNEL => {
                                    if !n.payload.is_empty() {
                                        db.order_cache().invalidate(&n.payload);
                                    }
                                }
                                Ok(n) => {
                                    if let Some(sig) = parse_notification(&n.payload) {
                                        hub.publish(sig);
                                    }
                                }
                                Err(e) => {
                                    tracing::warn!(error = %e, "LISTEN connection failed");
                                    break;
                                }
                            }
                        }
                        db.order_cache().set_live(false);
                    }
                    Err(e) => tracing::warn!(error = %e, "LISTEN failed"),
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot open the LISTEN connection"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_slots_are_capped_and_given_back() {
        let slots = StreamSlots::new(2, 3);
        let a1 = slots.open("a").unwrap_or_else(|_| panic!());
        let a2 = slots.open("a").unwrap_or_else(|_| panic!());
        assert_eq!(slots.open("a").err(), Some(SlotRefused::User));
        let b1 = slots.open("b").unwrap_or_else(|_| panic!());
        assert_eq!(slots.open("c").err(), Some(SlotRefused::Total));
        drop(a1);
        assert_eq!(slots.open_for("a"), 1);
        let c1 = slots.open("c").unwrap_or_else(|_| panic!());
        drop((a2, b1, c1));
        assert_eq!(slots.open_now(), 0);
        assert_eq!(slots.open_for("a"), 0);
    }

    #[test]
    fn notification_payloads_parse() {
        let s = parse_notification("evt_1 order.paid FP2026").unwrap_or_else(|| panic!());
        assert_eq!(s.event_id, "evt_1");
        assert_eq!(s.event_type, "order.paid");
        assert_eq!(s.order_no.as_deref(), Some("FP2026"));
        let s = parse_notification("evt_2 order.created ").unwrap_or_else(|| panic!());
        assert_eq!(s.order_no, None);
        assert!(parse_notification("garbage").is_none());
    }
}
