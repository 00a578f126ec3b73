//! Graceful shutdown: one flag every long-running part watches, and a count of the
//! background jobs that must end (finishing or releasing their claims) before exit.
//!
//! On SIGTERM or SIGINT `fenpay serve` raises the flag: event streams send a final
//! `event: shutdown` and end, the sweeper and reconciler release the orders they claimed
//! but did not start, the dispatcher stops claiming and waits for its deliveries in
//! flight; meanwhile the HTTP server stops accepting and drains the requests in flight.
//! All of it bounded by `SHUTDOWN_TIMEOUT_SECS`.

use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, watch};

#[derive(Clone, Debug)]
pub struct Shutdown {
    flag: Arc<watch::Sender<bool>>,
    /// Each tracked job holds a clone; `drained` ends when every clone is gone.
    jobs: Arc<Mutex<Option<mpsc::Sender<()>>>>,
    done: Arc<tokio::sync::Mutex<mpsc::Receiver<()>>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown::new()
    }
}

impl Shutdown {
    pub fn new() -> Shutdown {
        let (flag, _) = watch::channel(false);
        let (tx, rx) = mpsc::channel(1);
        Shutdown {
            flag: Arc::new(flag),
            jobs: Arc::new(Mutex::new(Some(tx))),
            done: Arc::new(tokio::sync::Mutex::new(rx)),
        }
    }

    /// Raise the flag (idempotent).
    pub fn trigger(&self) {
        self.flag.send_replace(true);
    }

    pub fn is_triggered(&self) -> bool {
        *self.flag.borrow()
    }

    /// Resolves once the flag is raised.
    pub async fn triggered(&self) {
        let mut rx = self.flag.subscribe();
        // The sender lives as long as `self`, so this cannot fail while we wait.
        let _ = rx.wait_for(|v| *v).await;
    }

    /// Spawn a job that shutdown waits for.
    pub fn spawn_tracked<F>(&self, job: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let guard = self.jobs.lock().ok().and_then(|g| g.clone());
        tokio::spawn(async move {
            job.await;
            drop(guard);
        });
    }

    /// Wait until every tracked job has ended (call after `trigger`).
    pub async fn drained(&self) {
        if let Ok(mut g) = self.jobs.lock() {
            g.take();
        }
        let mut rx = self.done.lock().await;
        while rx.recv().await.is_some() {}
    }
}

/// Resolves at the first SIGTERM or SIGINT.
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                    _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; SIGINT only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
