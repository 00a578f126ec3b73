//! Per-client login failure limiter (fixed window, in memory, per process).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct LoginLimiter {
    max_failures: u32,
    window: Duration,
    state: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl LoginLimiter {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        LoginLimiter {
            max_failures,
            window,
            state: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(retry_after_secs)` when `client` has used up its failures in the window.
    pub fn check(&self, client: IpAddr) -> Result<(), u64> {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((count, start)) = state.get(&client).copied() {
            let elapsed = now.duration_since(start);
            if elapsed >= self.window {
                state.remove(&client);
            } else if count >= self.max_failures {
                return Err((self.window - elapsed).as_secs().max(1));
            }
        }
        Ok(())
    }

    pub fn record_failure(&self, client: IpAddr) {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        // Bound memory: drop expired windows when the map grows.
        if state.len() > 10_000 {
            let window = self.window;
            state.retain(|_, (_, start)| now.duration_since(*start) < window);
        }
        let entry = state.entry(client).or_insert((0, now));
        entry.0 += 1;
    }

    pub fn record_success(&self, client: IpAddr) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.remove(&client);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_max_failures_and_resets_on_success() {
        let limiter = LoginLimiter::new(2, Duration::from_secs(60));
        let ip: IpAddr = [10, 0, 0, 1].into();
        let other: IpAddr = [10, 0, 0, 2].into();
        assert!(limiter.check(ip).is_ok());
        limiter.record_failure(ip);
        assert!(limiter.check(ip).is_ok());
        limiter.record_failure(ip);
        let retry = limiter.check(ip);
        assert!(matches!(retry, Err(s) if (1..=60).contains(&s)));
        assert!(limiter.check(other).is_ok(), "other clients unaffected");
        limiter.record_success(ip);
        assert!(limiter.check(ip).is_ok());
    }

    #[test]
    fn window_expires() {
        let limiter = LoginLimiter::new(1, Duration::from_millis(0));
        let ip: IpAddr = [10, 0, 0, 3].into();
        limiter.record_failure(ip);
        assert!(limiter.check(ip).is_ok());
    }
}
