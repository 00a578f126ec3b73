//! The order watcher: pending orders that someone is looking at (polling order-status or
//! holding an event stream) are checked with the provider in the background, on the
//! schedule of [`rules::watch_gap_secs`]. Reading an order never calls the provider and
//! never writes: a reader only nudges the watcher, and never waits for it.
//!
//! One check per order at a time (single flight), a bounded number at once and per second
//! (`ORDER_WATCH_CHECKS_PER_SEC`), a bounded set of watched orders. Across replicas, `claim_query_slot` keeps the provider from being
//! asked about one order more often than the schedule says, whichever replica asks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::web;
use tokio::sync::{mpsc, Semaphore};

use crate::db::orders as order_db;
use crate::domain::order as rules;
use crate::service::orders as order_service;
use crate::startup::AppState;
use api_types::payment::OrderStatus;

/// Nudges waiting to be taken in; more are dropped (the order is nudged again soon).
const QUEUE: usize = 4_096;
/// Most orders watched at once; nudges for more wait until some leave.
const MAX_WATCHED: usize = 20_000;
/// An order nobody nudged for this long is no longer watched.
const WATCH_TTL: Duration = Duration::from_secs(20);
/// Provider checks in flight at once.
const CONCURRENCY: usize = 16;
/// How often the watcher looks for checks that are due.
const TICK: Duration = Duration::from_millis(200);
/// After a failure to read the order, try again this much later.
const RETRY: Duration = Duration::from_secs(5);

/// The handle readers nudge. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Watcher {
    tx: mpsc::Sender<String>,
    rx: Arc<Mutex<Option<mpsc::Receiver<String>>>>,
}

impl Default for Watcher {
    fn default() -> Self {
        Self::new()
    }
}

impl Watcher {
    pub fn new() -> Watcher {
        let (tx, rx) = mpsc::channel(QUEUE);
        Watcher {
            tx,
            rx: Arc::new(Mutex::new(Some(rx))),
        }
    }

    /// Someone is looking at this pending order. Never blocks.
    pub fn nudge(&self, order_no: &str) {
        // A full queue drops the nudge: the watcher is busy, and the reader polls again.
        let _ = self.tx.try_send(order_no.to_owned());
    }

    fn take_receiver(&self) -> Option<mpsc::Receiver<String>> {
        self.rx.lock().ok()?.take()
    }
}

struct Entry {
    /// Last nudge.
    seen: Instant,
    /// When the next check may start.
    due: Instant,
    /// A check is running.
    busy: bool,
}

/// What a finished check says about the order.
enum Next {
    /// Still pending: check again after this long (if still watched).
    After(Duration),
    /// Paid, cancelled, held for review or gone: stop watching.
    Done,
}

/// Run the watcher until the process ends (only the first call per state does anything).
pub async fn run(state: web::Data<AppState>) {
    let Some(mut nudges) = state.watcher.take_receiver() else {
        return;
    };
    let (done_tx, mut done) = mpsc::unbounded_channel::<(String, Next)>();
    let permits = Arc::new(Semaphore::new(CONCURRENCY));
    let mut watched: HashMap<String, Entry> = HashMap::new();
    let per_sec = state.settings.lifecycle.watch_checks_per_sec.max(1);
    let ticks_per_sec = (1_000 / TICK.as_millis()).max(1) as u32;
    let per_tick = per_sec.div_ceil(ticks_per_sec);
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            nudge = nudges.recv() => {
                let Some(order_no) = nudge else { return };
                let now = Instant::now();
                if let Some(entry) = watched.get_mut(&order_no) {
                    entry.seen = now;
                } else if watched.len() < MAX_WATCHED {
                    watched.insert(order_no, Entry { seen: now, due: now, busy: false });
                }
            }
            Some((order_no, next)) = done.recv() => match next {
                Next::After(gap) => {
                    if let Some(entry) = watched.get_mut(&order_no) {
                        entry.busy = false;
                        entry.due = Instant::now() + gap;
                    }
                }
                Next::Done => {
                    watched.remove(&order_no);
                }
            },
            _ = tick.tick() => {
                let now = Instant::now();
                watched.retain(|_, e| e.busy || now.duration_since(e.seen) < WATCH_TTL);
                // Each check signs a request (and verifies the answer): a rate, not only a
                // concurrency bound, keeps a crowd of watchers from eating the CPU.
                let mut budget = per_tick;
                for (order_no, entry) in watched.iter_mut() {
                    if budget == 0 {
                        break;
                    }
                    if entry.busy || entry.due > now {
                        continue;
                    }
                    let Ok(permit) = permits.clone().try_acquire_owned() else {
                        break;
                    };
                    budget -= 1;
                    entry.busy = true;
                    let (state, order_no, done_tx) = (state.clone(), order_no.clone(), done_tx.clone());
                    tokio::spawn(async move {
                        let next = check(&state, &order_no).await;
                        drop(permit);
                        let _ = done_tx.send((order_no, next));
                    });
                }
            }
        }
    }
}

/// One check of one order: ask the provider when its slot is free, apply a payment it
/// reports (exactly as a notification would be).
async fn check(state: &AppState, order_no: &str) -> Next {
    let order = match order_db::find(&state.db, order_no).await {
        Ok(Some(order)) => order,
        Ok(None) => return Next::Done,
        Err(e) => {
            tracing::warn!(%order_no, error = %e, "watcher cannot read the order");
            return Next::After(RETRY);
        }
    };
    if order.status != OrderStatus::Pending || order.sync_halted {
        return Next::Done;
    }
    let age = (crate::db::now() - order.created_at).num_seconds();
    let gap = rules::watch_gap_secs(age);
    // A second less than the gap, so the watcher's own rhythm never just misses its slot.
    let slot = chrono::Duration::seconds(gap - 1);
    match order_db::claim_query_slot(&state.db, order_no, slot).await {
        Ok(true) => match order_service::sync_with_provider(state, &order).await {
            Ok(Some(_)) => return Next::Done,
            Ok(None) => {}
            Err(e) => tracing::debug!(%order_no, error = %e, "watcher: provider query failed"),
        },
        // Asked recently (another replica, the reconciler), or no longer pending.
        Ok(false) => {}
        Err(e) => tracing::warn!(%order_no, error = %e, "watcher cannot claim a query slot"),
    }
    Next::After(Duration::from_secs(gap.unsigned_abs()))
}
