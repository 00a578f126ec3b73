//! argon2id password hashing (PHC strings), run off the async executor on a few dedicated
//! threads ([`Hasher`]).

use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// Hash `password` with argon2id and a random salt.
pub fn hash(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

/// Constant-time verification against a stored PHC string.
pub fn verify(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A fixed hash verified when the user does not exist, so a failed login costs the same
/// time whether or not the username is known.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash("fenpay-dummy-password").unwrap_or_default())
}

type Job = Box<dyn FnOnce() + Send>;

/// Password hashing on `threads` dedicated threads with a bounded queue. Each argon2 hash
/// takes ~19 MiB on the thread that computes it, and the allocator keeps that memory per
/// thread: running them on the general blocking pool (up to hundreds of threads) let a burst
/// of logins grow the process by gigabytes. Here memory is bounded by `threads`, and a
/// caller that cannot be served within `wait` (queue full or too long) is told to retry.
#[derive(Clone, Debug)]
pub struct Hasher {
    tx: SyncSender<Job>,
    wait: Duration,
}

/// The hashing threads are all busy and the queue is full (or the wait ran out).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Busy;

impl Hasher {
    /// Start the threads. They end when the last clone of the `Hasher` is dropped.
    pub fn new(threads: usize, queue: usize, wait: Duration) -> std::io::Result<Hasher> {
        let (tx, rx) = sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("fenpay-hash-{i}"))
                .spawn(move || loop {
                    let job = match rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                })?;
        }
        Ok(Hasher { tx, wait })
    }

    /// Queue `f` for a hashing thread now (refused at once when the queue is full); the
    /// future waits for its result, at most `wait`.
    pub fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> impl std::future::Future<Output = Result<T, Busy>> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(f());
        });
        let queued = self.tx.try_send(job).map_err(|_| Busy);
        let wait = self.wait;
        async move {
            queued?;
            match tokio::time::timeout(wait, result).await {
                Ok(Ok(value)) => Ok(value),
                _ => Err(Busy),
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_hasher_bounds_its_queue() {
        let hasher = Hasher::new(1, 1, Duration::from_secs(5)).unwrap();
        assert_eq!(hasher.run(|| 6 * 7).await, Ok(42));
        // One job running (held until released), one queued: a third is refused at once.
        let (started_tx, started) = std::sync::mpsc::channel::<()>();
        let (release, held) = std::sync::mpsc::channel::<()>();
        let running = hasher.run(move || {
            started_tx.send(()).unwrap();
            held.recv().is_ok()
        });
        tokio::task::spawn_blocking(move || started.recv().unwrap())
            .await
            .unwrap();
        let queued = hasher.run(|| 1);
        assert_eq!(hasher.run(|| 2).await, Err(Busy), "queue full");
        release.send(()).unwrap();
        assert_eq!(running.await, Ok(true));
        assert_eq!(queued.await, Ok(1));
        // A wait that runs out is Busy too.
        let slow = Hasher::new(1, 4, Duration::from_millis(50)).unwrap();
        assert_eq!(
            slow.run(|| std::thread::sleep(Duration::from_millis(300)))
                .await,
            Err(Busy)
        );
    }

    #[test]
    fn hashes_are_argon2id_and_verify() {
        let h = hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse", &h));
        assert!(!verify("wrong horse", &h));
        assert!(!verify("correct horse", "not-a-hash"));
        assert_ne!(h, hash("correct horse").unwrap(), "salted");
    }
}
