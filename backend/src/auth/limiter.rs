//! Abuse limits: fixed-window attempt counters in memory, per process.
//!
//! An attempt is *taken* before the work it pays for (a password hash, a signed provider
//! call, a stored record), so N requests racing each other cannot all pass: the counter
//! says no to the N+1st before anything runs. Work that turns out not to count (a correct
//! password, a server error) gives its attempt back.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Windows kept before expired ones are dropped.
const PRUNE_AT: usize = 10_000;
/// Hard bound on the keys one limiter remembers: past it only blocked keys are kept.
const MAX_KEYS: usize = 100_000;

/// At most `max` attempts per key in a fixed `window`.
#[derive(Debug)]
pub struct WindowLimiter<K> {
    max: u32,
    window: Duration,
    state: Mutex<Windows<K>>,
}

#[derive(Debug)]
struct Windows<K> {
    map: HashMap<K, (u32, Instant)>,
    /// Size at which expired windows are dropped next (doubles with what stays, so
    /// pruning costs O(1) per new key on average).
    prune_at: usize,
}

impl<K: Hash + Eq + Clone> WindowLimiter<K> {
    pub fn new(max: u32, window: Duration) -> Self {
        WindowLimiter {
            max,
            window,
            state: Mutex::new(Windows {
                map: HashMap::new(),
                prune_at: PRUNE_AT,
            }),
        }
    }

    fn retry_after(&self, elapsed: Duration) -> u64 {
        self.window.saturating_sub(elapsed).as_secs().max(1)
    }

    /// Take one attempt for `key`; `Ok(window)` names the window it was taken in (for
    /// [`WindowLimiter::release`]), `Err(retry_after_secs)` when that window is used up.
    pub fn acquire(&self, key: &K) -> Result<Instant, u64> {
        let now = Instant::now();
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let state = &mut *guard;
        if state.map.len() >= state.prune_at && !state.map.contains_key(key) {
            let (window, max) = (self.window, self.max);
            state
                .map
                .retain(|_, (_, start)| now.duration_since(*start) < window);
            if state.map.len() >= MAX_KEYS {
                // Keep what is blocked; if even that is too much, start over.
                state.map.retain(|_, (count, _)| *count >= max);
                if state.map.len() >= MAX_KEYS {
                    state.map.clear();
                }
            }
            state.prune_at = (state.map.len() * 2).clamp(PRUNE_AT, MAX_KEYS);
        }
        let entry = state.map.entry(key.clone()).or_insert((0, now));
        let elapsed = now.duration_since(entry.1);
        if elapsed >= self.window {
            *entry = (0, now);
        }
        if entry.0 >= self.max {
            return Err(self.retry_after(now.duration_since(entry.1)));
        }
        entry.0 += 1;
        Ok(entry.1)
    }

    /// `Err(retry_after_secs)` when `key` has no attempt left, without taking one.
    pub fn check(&self, key: &K) -> Result<(), u64> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match state.map.get(key) {
            Some((count, start)) if *count >= self.max => {
                let elapsed = start.elapsed();
                if elapsed >= self.window {
                    Ok(())
                } else {
                    Err(self.retry_after(elapsed))
                }
            }
            _ => Ok(()),
        }
    }

    /// Give back an attempt taken by [`WindowLimiter::acquire`] in `window` that should
    /// not count. Once that window has ended it is nothing to give back: the new window's
    /// count is left alone.
    pub fn release(&self, key: &K, window: Instant) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = state.map.get_mut(key) {
            if entry.1 == window {
                entry.0 = entry.0.saturating_sub(1);
            }
        }
    }

    /// Forget `key`'s attempts.
    pub fn reset(&self, key: &K) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.map.remove(key);
    }
}

/// The key a client address is limited under: IPv4 as is, IPv6 by its /64 (one host
/// usually holds a whole /64, so single addresses would cost an attacker nothing).
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut octets = v6.octets();
                octets[8..].fill(0);
                IpAddr::from(octets)
            }
        },
    }
}

/// Login guesses: limited per client address and per account, both taken before the
/// password is hashed.
#[derive(Debug)]
pub struct LoginLimiter {
    per_ip: WindowLimiter<IpAddr>,
    per_account: WindowLimiter<String>,
}

/// An attempt taken by [`LoginLimiter::begin`]; settle it with `succeeded` or `abandoned`
/// (a failed guess keeps it).
#[derive(Debug)]
pub struct LoginAttempt {
    ip: IpAddr,
    ip_window: Instant,
    account: String,
    account_window: Instant,
}

impl LoginLimiter {
    pub fn new(max_per_ip: u32, max_per_account: u32, window: Duration) -> Self {
        LoginLimiter {
            per_ip: WindowLimiter::new(max_per_ip, window),
            per_account: WindowLimiter::new(max_per_account, window),
        }
    }

    /// Take an attempt for `client` and `username`; `Err(retry_after_secs)` when either
    /// has used up its failures in the window (then nothing is taken).
    pub fn begin(&self, client: IpAddr, username: &str) -> Result<LoginAttempt, u64> {
        let ip = client_key(client);
        let account = username.trim().to_lowercase();
        let ip_window = self.per_ip.acquire(&ip)?;
        let account_window = match self.per_account.acquire(&account) {
            Ok(window) => window,
            Err(retry) => {
                self.per_ip.release(&ip, ip_window);
                return Err(retry);
            }
        };
        Ok(LoginAttempt {
            ip,
            ip_window,
            account,
            account_window,
        })
    }

    /// The password was right: the attempt does not count, and the account's earlier
    /// failures are forgotten.
    pub fn succeeded(&self, attempt: LoginAttempt) {
        self.per_ip.release(&attempt.ip, attempt.ip_window);
        self.per_account.reset(&attempt.account);
    }

    /// Nothing was decided (server busy, database down): the attempt does not count.
    pub fn abandoned(&self, attempt: LoginAttempt) {
        self.per_ip.release(&attempt.ip, attempt.ip_window);
        self.per_account
            .release(&attempt.account, attempt.account_window);
    }
}

/// Every abuse limit of the HTTP API (see `LimitSettings`).
#[derive(Debug)]
pub struct Limits {
    pub login: LoginLimiter,
    /// Registrations per client address (each runs argon2).
    pub register: WindowLimiter<IpAddr>,
    /// create-order per user (each signs a provider call and writes an order).
    pub create_order: WindowLimiter<String>,
    /// Unverified callback posts stored per source address and per minute ...
    pub unverified_per_ip: WindowLimiter<IpAddr>,
    /// ... and in all.
    pub unverified_total: WindowLimiter<()>,
}

impl Limits {
    pub fn new(settings: &crate::config::Settings) -> Limits {
        let l = &settings.limits;
        let minute = Duration::from_secs(60);
        Limits {
            login: LoginLimiter::new(
                settings.login_max_failures,
                l.login_account_max_failures,
                Duration::from_secs(settings.login_window_secs),
            ),
            register: WindowLimiter::new(
                l.register_max_per_ip,
                Duration::from_secs(l.register_window_secs),
            ),
            create_order: WindowLimiter::new(
                l.create_order_max_per_user,
                Duration::from_secs(l.create_order_window_secs),
            ),
            unverified_per_ip: WindowLimiter::new(l.unverified_records_per_ip_per_min, minute),
            unverified_total: WindowLimiter::new(l.unverified_records_per_min, minute),
        }
    }

    /// Take a registration attempt for `client`.
    pub fn register(&self, client: IpAddr) -> Result<(), u64> {
        self.register.acquire(&client_key(client)).map(|_| ())
    }

    /// May an unverified callback post from `client` be stored now? Takes from both the
    /// address's and the overall budget.
    pub fn store_unverified(&self, client: IpAddr) -> bool {
        let ip = client_key(client);
        let Ok(window) = self.unverified_per_ip.acquire(&ip) else {
            return false;
        };
        if self.unverified_total.acquire(&()).is_err() {
            self.unverified_per_ip.release(&ip, window);
            return false;
        }
        true
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn attempts_are_taken_before_the_work_and_given_back() {
        let limiter = WindowLimiter::new(2, Duration::from_secs(60));
        let ip: IpAddr = [10, 0, 0, 1].into();
        let other: IpAddr = [10, 0, 0, 2].into();
        let window = limiter.acquire(&ip).unwrap();
        assert!(limiter.acquire(&ip).is_ok());
        assert!(matches!(limiter.acquire(&ip), Err(s) if (1..=60).contains(&s)));
        assert!(limiter.check(&ip).is_err());
        assert!(limiter.acquire(&other).is_ok(), "other clients unaffected");
        limiter.release(&ip, window);
        assert!(limiter.check(&ip).is_ok());
        assert!(limiter.acquire(&ip).is_ok());
        limiter.reset(&ip);
        assert!(limiter.acquire(&ip).is_ok());
    }

    #[test]
    fn an_attempt_of_an_ended_window_is_not_given_back_to_the_next() {
        let limiter = WindowLimiter::new(1, Duration::from_millis(30));
        let ip: IpAddr = [10, 0, 0, 4].into();
        let old = limiter.acquire(&ip).unwrap();
        std::thread::sleep(Duration::from_millis(40));
        // The new window's attempt is taken; giving back the old one frees nothing.
        assert!(limiter.acquire(&ip).is_ok());
        limiter.release(&ip, old);
        assert!(
            limiter.acquire(&ip).is_err(),
            "the new window's count was lowered"
        );
    }

    #[test]
    fn window_expires() {
        let limiter = WindowLimiter::new(1, Duration::from_millis(0));
        let ip: IpAddr = [10, 0, 0, 3].into();
        assert!(limiter.acquire(&ip).is_ok());
        assert!(limiter.acquire(&ip).is_ok());
        assert!(limiter.check(&ip).is_ok());
    }

    #[test]
    fn logins_count_per_address_and_per_account() {
        let limiter = LoginLimiter::new(3, 2, Duration::from_secs(60));
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        // Two failed guesses at alice (any spelling) lock alice, from any address.
        limiter.begin(a, "alice").unwrap();
        limiter.begin(b, "Alice ").unwrap();
        assert!(limiter.begin([10, 0, 0, 9].into(), "alice").is_err());
        // A refused account does not use up the address.
        limiter.begin(a, "bob").unwrap();
        limiter.begin(a, "carol").unwrap();
        assert!(limiter.begin(a, "dan").is_err(), "a: 3 guesses");
        // A success gives its attempt back and clears the account.
        let ok = limiter.begin(b, "dave").unwrap();
        limiter.succeeded(ok);
        let busy = limiter.begin(b, "dave").unwrap();
        limiter.abandoned(busy);
        limiter.begin(b, "erin").unwrap();
        limiter.begin(b, "frank").unwrap();
        assert!(limiter.begin(b, "gina").is_err(), "b: alice, erin, frank");
    }

    #[test]
    fn ipv6_clients_are_limited_by_their_64() {
        let one: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let two: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let elsewhere: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(one), client_key(two));
        assert_ne!(client_key(one), client_key(elsewhere));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(client_key(mapped), IpAddr::from([10, 0, 0, 1]));
    }

    #[test]
    fn memory_stays_bounded() {
        let limiter = WindowLimiter::new(1, Duration::from_secs(60));
        for i in 0..(MAX_KEYS as u32 + 10) {
            let _ = limiter.acquire(&i);
        }
        let len = limiter.state.lock().unwrap().map.len();
        assert!(len <= MAX_KEYS, "{len}");
    }
}
