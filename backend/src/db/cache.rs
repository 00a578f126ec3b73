//! A bounded in-memory copy of order rows for the read-mostly order-status path.
//!
//! It never serves a row older than a change this process or another replica committed:
//! - every `db::` function that changes an order row (anything but the jobs' bookkeeping
//!   columns) drops the cached copy after its transaction, committed or not;
//! - on PostgreSQL a trigger on `orders` notifies `fenpay_orders` with the order number on
//!   commit; every replica's LISTEN task drops its copy. While that connection is down the
//!   cache is off (every read goes to the database) and it starts empty when the
//!   connection is back;
//! - a fill carries the generation of its shard taken before the database read; a drop in
//!   between bumps it and the fill is discarded, so a read that raced a change cannot
//!   store the old row after the change was announced;
//! - entries also expire after a TTL, a backstop for writes made outside fenpay.
//!
//! Misses (unknown order numbers) are not cached.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::orders::OrderRow;

const SHARDS: usize = 64;

/// Size and lifetime of the cache (`ORDER_CACHE_SIZE`, `ORDER_CACHE_TTL_SECS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderCacheConfig {
    /// Most rows held; 0 turns the cache off.
    pub capacity: usize,
    pub ttl: Duration,
}

impl Default for OrderCacheConfig {
    fn default() -> Self {
        OrderCacheConfig {
            capacity: 20_000,
            ttl: Duration::from_secs(30),
        }
    }
}

/// Counters for tests and the benchmark.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    /// Fills discarded because a change to the shard was announced during the read.
    pub raced: u64,
}

#[derive(Default)]
struct Shard {
    generation: u64,
    rows: HashMap<String, (Instant, Arc<OrderRow>)>,
    /// Orders with a write in progress (count of writers): never served, never filled.
    writing: HashMap<String, u32>,
}

/// Proof of when a fill's database read started (see the module docs).
#[derive(Clone, Copy, Debug)]
pub struct FillTicket {
    shard: usize,
    generation: u64,
}

/// See [`OrderCache::writing`].
pub struct WriteGuard<'a> {
    cache: &'a OrderCache,
    order_no: String,
}

impl WriteGuard<'_> {
    /// The write is over: a failed one forgets every cached row (a commit whose answer
    /// was lost may have gone through, and may have touched other orders' rows).
    pub fn finish<T>(self, outcome: &Result<T, super::DbError>) {
        if outcome.is_err() {
            self.cache.clear();
        }
    }
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        let mut s = lock(&self.cache.shards[self.cache.shard_of(&self.order_no)]);
        if let Some(n) = s.writing.get_mut(&self.order_no) {
            *n -= 1;
            if *n == 0 {
                s.writing.remove(&self.order_no);
            }
        }
        s.generation = s.generation.wrapping_add(1);
        s.rows.remove(&self.order_no);
    }
}

pub struct OrderCache {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
    ttl: Duration,
    hasher: RandomState,
    /// False while changes from other writers could go unannounced.
    live: AtomicBool,
    hits: AtomicU64,
    misses: AtomicU64,
    raced: AtomicU64,
}

impl std::fmt::Debug for OrderCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderCache")
            .field("capacity", &(self.per_shard * SHARDS))
            .field("live", &self.live.load(Ordering::Relaxed))
            .finish()
    }
}

fn lock(m: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl OrderCache {
    /// A cache that is live from the start when `live` (one process owns the database).
    pub fn new(config: OrderCacheConfig, live: bool) -> OrderCache {
        OrderCache {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            per_shard: config.capacity.div_ceil(SHARDS),
            ttl: config.ttl,
            hasher: RandomState::new(),
            live: AtomicBool::new(live && config.capacity > 0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            raced: AtomicU64::new(0),
        }
    }

    fn shard_of(&self, order_no: &str) -> usize {
        (self.hasher.hash_one(order_no) as usize) % SHARDS
    }

    fn enabled(&self) -> bool {
        self.per_shard > 0 && self.live.load(Ordering::Acquire)
    }

    /// The cached row, if fresh. `Err(ticket)` on a miss: read the database, then `fill`.
    /// `Err(None)` when the cache is off.
    pub fn get(&self, order_no: &str) -> Result<Arc<OrderRow>, Option<FillTicket>> {
        if !self.enabled() {
            return Err(None);
        }
        let shard = self.shard_of(order_no);
        let mut s = lock(&self.shards[shard]);
        if s.writing.contains_key(order_no) {
            // Committed or not, the database has the answer.
            self.misses.fetch_add(1, Ordering::Relaxed);
            return Err(None);
        }
        if let Some((at, row)) = s.rows.get(order_no) {
            if at.elapsed() < self.ttl {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(row.clone());
            }
            s.rows.remove(order_no);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        Err(Some(FillTicket {
            shard,
            generation: s.generation,
        }))
    }

    /// Store a row read after `ticket` was taken, unless a change was announced since.
    pub fn fill(&self, ticket: FillTicket, row: Arc<OrderRow>) {
        if !self.enabled() || self.shard_of(&row.order_no) != ticket.shard {
            return;
        }
        let mut s = lock(&self.shards[ticket.shard]);
        if s.generation != ticket.generation {
            self.raced.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if s.rows.len() >= self.per_shard && !s.rows.contains_key(&row.order_no) {
            let ttl = self.ttl;
            s.rows.retain(|_, (at, _)| at.elapsed() < ttl);
            if s.rows.len() >= self.per_shard {
                // Full of fresh rows: drop the oldest (a scan of one small shard).
                let oldest = s
                    .rows
                    .iter()
                    .min_by_key(|(_, (at, _))| *at)
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    s.rows.remove(&k);
                }
            }
        }
        s.rows.insert(row.order_no.clone(), (Instant::now(), row));
    }

    /// A change to this order was made (or may have been): forget it.
    pub fn invalidate(&self, order_no: &str) {
        let mut s = lock(&self.shards[self.shard_of(order_no)]);
        s.generation = s.generation.wrapping_add(1);
        s.rows.remove(order_no);
    }

    /// A write to `order_no` is about to start: until the guard is dropped (after the
    /// transaction, committed or not, also on panic or cancellation) the order is read
    /// from the database and nothing is cached for it, so no reader sees the old row once
    /// the new one is committed. Dropping the guard forgets the order again.
    pub fn writing(&self, order_no: &str) -> WriteGuard<'_> {
        let mut s = lock(&self.shards[self.shard_of(order_no)]);
        *s.writing.entry(order_no.to_string()).or_default() += 1;
        s.generation = s.generation.wrapping_add(1);
        s.rows.remove(order_no);
        WriteGuard {
            cache: self,
            order_no: order_no.to_string(),
        }
    }

    /// Forget everything (fills in flight are discarded too).
    pub fn clear(&self) {
        for shard in self.shards.iter() {
            let mut s = lock(shard);
            s.generation = s.generation.wrapping_add(1);
            s.rows.clear();
        }
    }

    /// Turn the cache on (empty) once every change will be announced, or off when
    /// announcements may be missed.
    pub fn set_live(&self, live: bool) {
        if !live {
            self.live.store(false, Ordering::Release);
        }
        self.clear();
        if live {
            self.live.store(true, Ordering::Release);
        }
    }

    pub fn is_live(&self) -> bool {
        self.enabled()
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            raced: self.raced.load(Ordering::Relaxed),
        }
    }

    /// Rows held now.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).rows.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api_types::payment::OrderStatus;

    fn row(order_no: &str, status: OrderStatus) -> Arc<OrderRow> {
        let t = chrono::DateTime::UNIX_EPOCH.naive_utc();
        Arc::new(OrderRow {
            order_no: order_no.into(),
            user_id: "u".into(),
            product_id: 1,
            product_type: "points".into(),
            product_name: "p".into(),
            unit_price_fen: 1,
            quantity: 1,
            is_upgrade: false,
            amount_fen: 1,
            provider: "wechat".into(),
            channel: "native".into(),
            status,
            cancel_reason: None,
            refunded_fen: 0,
            provider_transaction_id: None,
            qr_code_url: None,
            pay_url: None,
            h5_url: None,
            sdk_params: None,
            expire_at: t,
            qr_code_expire_at: t,
            paid_at: None,
            last_query_at: None,
            needs_review: false,
            created_at: t,
            updated_at: t,
            stock_held: 0,
            review_reason: None,
            lease_until: None,
            query_attempts: 0,
            snap_points: 1,
            snap_membership_days: 0,
            snap_tier: None,
            snap_tier_rank: None,
            snap_tier_price_fen: None,
            snap_tier_days: None,
            snap_from_tier: None,
            snap_from_rank: None,
            snap_from_price_fen: None,
            snap_from_days: None,
            snap_upgrade_secs: 0,
            sync_halted: false,
            renewal_root: None,
            app_id: None,
            out_order_no: None,
            customer_ref: None,
            metadata: None,
            return_url: None,
            notify_url: None,
        })
    }

    fn cache(capacity: usize, ttl_ms: u64) -> OrderCache {
        OrderCache::new(
            OrderCacheConfig {
                capacity,
                ttl: Duration::from_millis(ttl_ms),
            },
            true,
        )
    }

    fn ticket(c: &OrderCache, order_no: &str) -> FillTicket {
        match c.get(order_no) {
            Err(Some(t)) => t,
            other => panic!("expected a miss with a ticket, got {other:?}"),
        }
    }

    #[test]
    fn a_fill_is_served_until_invalidated() {
        let c = cache(100, 60_000);
        let t = ticket(&c, "A");
        c.fill(t, row("A", OrderStatus::Pending));
        assert_eq!(
            c.get("A").ok().map(|r| r.status),
            Some(OrderStatus::Pending)
        );
        c.invalidate("A");
        assert!(matches!(c.get("A"), Err(Some(_))));
        assert_eq!(c.stats().hits, 1);
    }

    #[test]
    fn a_fill_that_raced_a_change_is_discarded() {
        let c = cache(100, 60_000);
        // The read started, the change was announced, then the (old) row arrives.
        let t = ticket(&c, "A");
        c.invalidate("A");
        c.fill(t, row("A", OrderStatus::Pending));
        assert!(matches!(c.get("A"), Err(Some(_))));
        assert_eq!(c.stats().raced, 1);
        // A clear (the LISTEN connection dropped) discards reads in flight too.
        let t = ticket(&c, "B");
        c.clear();
        c.fill(t, row("B", OrderStatus::Pending));
        assert!(matches!(c.get("B"), Err(Some(_))));
    }

    #[test]
    fn off_while_not_live_and_empty_when_live_again() {
        let c = cache(100, 60_000);
        let t = ticket(&c, "A");
        c.fill(t, row("A", OrderStatus::Pending));
        c.set_live(false);
        assert!(matches!(c.get("A"), Err(None)));
        c.set_live(true);
        assert!(
            matches!(c.get("A"), Err(Some(_))),
            "served a row from before"
        );
        assert!(!cache(0, 1000).is_live(), "capacity 0 turns it off");
    }

    #[test]
    fn rows_expire_and_the_size_is_bounded() {
        let c = cache(64, 30);
        let t = ticket(&c, "A");
        c.fill(t, row("A", OrderStatus::Paid));
        std::thread::sleep(Duration::from_millis(40));
        assert!(matches!(c.get("A"), Err(Some(_))), "expired row served");
        let c = cache(SHARDS * 2, 60_000);
        for i in 0..SHARDS * 10 {
            let no = format!("N{i}");
            let t = ticket(&c, &no);
            c.fill(t, row(&no, OrderStatus::Paid));
        }
        assert!(c.len() <= SHARDS * 2, "{} rows held", c.len());
    }

    #[test]
    fn an_order_being_written_is_never_served_nor_filled() {
        let c = cache(100, 60_000);
        let t = ticket(&c, "A");
        c.fill(t, row("A", OrderStatus::Pending));
        let before = ticket(&c, "B");
        let guard = c.writing("A");
        let other = c.writing("B");
        // Committed or not, readers go to the database meanwhile.
        assert!(matches!(c.get("A"), Err(None)));
        c.fill(before, row("B", OrderStatus::Pending));
        assert!(matches!(c.get("B"), Err(None)));
        drop(other);
        guard.finish::<()>(&Ok(()));
        let t = ticket(&c, "A");
        c.fill(t, row("A", OrderStatus::Paid));
        assert_eq!(c.get("A").ok().map(|r| r.status), Some(OrderStatus::Paid));
        let t = ticket(&c, "B");
        let guard = c.writing("A");
        guard.finish::<()>(&Err(super::super::DbError::Pool("lost".into())));
        c.fill(t, row("B", OrderStatus::Paid));
        assert!(c.get("B").is_err(), "a failed write empties the cache");
    }
}
