//! Sessions after a login, and throttling of failed logins.
//!
//! Invariants: a session token is 32 bytes from the OS random source and
//! is kept only as its SHA-256 (a memory dump or a log line cannot replay
//! it); a session ends at its idle or absolute expiry, whichever comes
//! first, or when revoked; the clock is passed in, so expiry is tested
//! without waiting.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::roles::Identity;

/// Whether `a` equals `b`, in a time that depends only on their lengths:
/// for comparing secrets (or their hashes) where an early exit would tell
/// an attacker how much of a guess was right.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// How long sessions last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// Ends after this long without use.
    pub idle: Duration,
    /// Ends this long after login, used or not.
    pub absolute: Duration,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            idle: Duration::from_secs(30 * 60),
            absolute: Duration::from_secs(12 * 3600),
        }
    }
}

/// Why a token does not open a session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("not logged in (unknown or revoked session); log in again")]
    Unknown,
    #[error("the session expired after {0:?} without use; log in again")]
    Idle(Duration),
    #[error("the session reached its maximum age of {0:?}; log in again")]
    TooOld(Duration),
}

struct Session {
    identity: Identity,
    created: Instant,
    last_used: Instant,
}

/// The live sessions of a server.
pub struct Sessions {
    limits: SessionLimits,
    by_hash: Mutex<HashMap<String, Session>>,
}

fn digest(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Sessions {
    pub fn new(limits: SessionLimits) -> Self {
        Sessions {
            limits,
            by_hash: Mutex::new(HashMap::new()),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.by_hash.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a session for a user who just logged in; returns its token.
    pub fn open(&self, identity: Identity, now: Instant) -> std::io::Result<String> {
        let token = haven_pki::random_hex(32)?;
        self.map().insert(
            digest(&token),
            Session {
                identity,
                created: now,
                last_used: now,
            },
        );
        Ok(token)
    }

    /// The identity behind a token, if its session is alive (and marks
    /// it used).
    pub fn check(&self, token: &str, now: Instant) -> Result<Identity, SessionError> {
        let key = digest(token);
        let mut map = self.map();
        let Some(session) = map.get_mut(&key) else {
            return Err(SessionError::Unknown);
        };
        if now.saturating_duration_since(session.created) > self.limits.absolute {
            map.remove(&key);
            return Err(SessionError::TooOld(self.limits.absolute));
        }
        if now.saturating_duration_since(session.last_used) > self.limits.idle {
            map.remove(&key);
            return Err(SessionError::Idle(self.limits.idle));
        }
        session.last_used = now;
        Ok(session.identity.clone())
    }

    /// Ends a session (logout). Returns whether there was one.
    pub fn close(&self, token: &str) -> bool {
        self.map().remove(&digest(token)).is_some()
    }

    /// Ends every session of a user (their account was locked, say).
    pub fn close_user(&self, user: &str) -> usize {
        let mut map = self.map();
        let before = map.len();
        map.retain(|_, s| s.identity.user != user);
        before - map.len()
    }

    /// Forgets expired sessions; returns how many.
    pub fn purge(&self, now: Instant) -> usize {
        let limits = self.limits;
        let mut map = self.map();
        let before = map.len();
        map.retain(|_, s| {
            now.saturating_duration_since(s.created) <= limits.absolute
                && now.saturating_duration_since(s.last_used) <= limits.idle
        });
        before - map.len()
    }

    pub fn len(&self) -> usize {
        self.map().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One-time login codes (the demo's login link, `haven login-link`): each
/// opens one session, once, within its lifetime. Kept as their SHA-256,
/// like session tokens.
pub struct OneTimeCodes {
    ttl: Duration,
    by_hash: Mutex<HashMap<String, (Identity, Instant)>>,
}

impl OneTimeCodes {
    pub fn new(ttl: Duration) -> Self {
        OneTimeCodes {
            ttl,
            by_hash: Mutex::new(HashMap::new()),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Identity, Instant)>> {
        self.by_hash.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new code for `identity`.
    pub fn issue(&self, identity: Identity, now: Instant) -> std::io::Result<String> {
        let code = haven_pki::random_hex(32)?;
        let ttl = self.ttl;
        let mut map = self.map();
        map.retain(|_, (_, at)| now.saturating_duration_since(*at) <= ttl);
        map.insert(digest(&code), (identity, now));
        Ok(code)
    }

    /// Spends a code: the identity it was issued for, if it is unused and
    /// not expired. A code never works twice.
    pub fn redeem(&self, code: &str, now: Instant) -> Option<Identity> {
        let (identity, at) = self.map().remove(&digest(code))?;
        (now.saturating_duration_since(at) <= self.ttl).then_some(identity)
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}

/// Slows password guessing: after `limit` failures within `window` for a
/// key (a user name, a source address), that key waits until the oldest
/// failure leaves the window.
pub struct Throttle {
    limit: usize,
    window: Duration,
    failures: Mutex<HashMap<String, Vec<Instant>>>,
}

impl Throttle {
    pub fn new(limit: usize, window: Duration) -> Self {
        Throttle {
            limit: limit.max(1),
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Instant>>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a login for these keys may be tried now; if not, how long
    /// to wait.
    pub fn check(&self, keys: &[&str], now: Instant) -> Result<(), Duration> {
        let mut map = self.map();
        let mut wait = Duration::ZERO;
        for key in keys {
            if let Some(times) = map.get_mut(*key) {
                times.retain(|t| now.saturating_duration_since(*t) < self.window);
                if times.len() >= self.limit {
                    let oldest = times[0];
                    wait = wait.max(self.window - now.saturating_duration_since(oldest));
                }
            }
        }
        if wait.is_zero() {
            Ok(())
        } else {
            Err(wait)
        }
    }

    /// Records a failed login for these keys.
    pub fn failed(&self, keys: &[&str], now: Instant) {
        let mut map = self.map();
        for key in keys {
            map.entry(key.to_string()).or_default().push(now);
        }
    }

    /// A successful login clears the user's count (not the source's).
    pub fn succeeded(&self, key: &str) {
        self.map().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_one_time_code_works_once_and_only_in_time() {
        let codes = OneTimeCodes::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let who = Identity {
            user: "ann".into(),
            groups: vec![],
        };
        let code = codes.issue(who.clone(), t0).unwrap();
        assert_eq!(codes.redeem("not-a-code", t0), None);
        assert_eq!(
            codes.redeem(&code, t0 + Duration::from_secs(5)),
            Some(who.clone())
        );
        assert_eq!(
            codes.redeem(&code, t0 + Duration::from_secs(6)),
            None,
            "spent"
        );
        let late = codes.issue(who, t0).unwrap();
        assert_eq!(
            codes.redeem(&late, t0 + Duration::from_secs(61)),
            None,
            "expired"
        );
    }

    fn ann() -> Identity {
        Identity {
            user: "ann".into(),
            groups: vec!["ops".into()],
        }
    }

    #[test]
    fn a_session_lives_until_idle_or_absolute_expiry_or_logout() {
        let limits = SessionLimits {
            idle: Duration::from_secs(60),
            absolute: Duration::from_secs(300),
        };
        let sessions = Sessions::new(limits);
        let t0 = Instant::now();
        let token = sessions.open(ann(), t0).unwrap();
        assert_eq!(token.len(), 64);
        assert_eq!(
            sessions.check(&token, t0 + Duration::from_secs(50)),
            Ok(ann())
        );
        // Used every 50 s, it stays alive past the idle limit...
        for i in 2..6 {
            assert!(sessions
                .check(&token, t0 + Duration::from_secs(50 * i))
                .is_ok());
        }
        // ...but not past its absolute age.
        assert_eq!(
            sessions.check(&token, t0 + Duration::from_secs(310)),
            Err(SessionError::TooOld(limits.absolute))
        );
        assert_eq!(
            sessions.check(&token, t0 + Duration::from_secs(311)),
            Err(SessionError::Unknown)
        );

        let idle = sessions.open(ann(), t0).unwrap();
        assert_eq!(
            sessions.check(&idle, t0 + Duration::from_secs(61)),
            Err(SessionError::Idle(limits.idle))
        );

        let out = sessions.open(ann(), t0).unwrap();
        assert!(sessions.close(&out));
        assert_eq!(sessions.check(&out, t0), Err(SessionError::Unknown));
        assert_eq!(sessions.check("forged", t0), Err(SessionError::Unknown));
    }

    #[test]
    fn tokens_differ_and_only_their_hashes_are_kept() {
        let sessions = Sessions::new(SessionLimits::default());
        let t0 = Instant::now();
        let a = sessions.open(ann(), t0).unwrap();
        let b = sessions.open(ann(), t0).unwrap();
        assert_ne!(a, b);
        assert!(
            !sessions.map().contains_key(&a),
            "the token itself is not stored"
        );
        assert_eq!(sessions.close_user("ann"), 2);
        assert!(sessions.is_empty());
    }

    #[test]
    fn purge_forgets_expired_sessions() {
        let sessions = Sessions::new(SessionLimits {
            idle: Duration::from_secs(10),
            absolute: Duration::from_secs(100),
        });
        let t0 = Instant::now();
        sessions.open(ann(), t0).unwrap();
        sessions.open(ann(), t0 + Duration::from_secs(15)).unwrap();
        assert_eq!(sessions.purge(t0 + Duration::from_secs(20)), 1);
        assert_eq!(sessions.len(), 1);
    }

    #[test]
    fn failed_logins_are_throttled_per_user_and_per_source() {
        let throttle = Throttle::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(throttle
                .check(&["ann", "10.0.0.1"], t0 + Duration::from_secs(i))
                .is_ok());
            throttle.failed(&["ann", "10.0.0.1"], t0 + Duration::from_secs(i));
        }
        let wait = throttle
            .check(&["ann", "10.0.0.9"], t0 + Duration::from_secs(10))
            .unwrap_err();
        assert_eq!(
            wait,
            Duration::from_secs(50),
            "until the oldest failure ages out"
        );
        assert!(
            throttle
                .check(&["bob", "10.0.0.1"], t0 + Duration::from_secs(10))
                .is_err(),
            "the source too"
        );
        assert!(throttle
            .check(&["bob", "10.0.0.2"], t0 + Duration::from_secs(10))
            .is_ok());
        assert!(
            throttle
                .check(&["ann"], t0 + Duration::from_secs(61))
                .is_ok(),
            "window passed"
        );
        throttle.succeeded("ann");
        assert!(throttle
            .check(&["ann"], t0 + Duration::from_secs(2))
            .is_ok());
    }

    #[test]
    fn constant_time_eq_compares_whole_values() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }
}
