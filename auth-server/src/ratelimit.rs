//! Per-endpoint rate limits per client address: token buckets (`requestsPerMinute` sustained,
//! `burst` at once), answered with 429 and `Retry-After`. With `REDIS_URL` the buckets live in
//! Redis and every replica shares them ([`redis`]); without it they live in this process.

pub mod lease;
pub mod redis;

use palisade_wire::contract::{RateLimit, RateLimits};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// One client's bucket on one endpoint.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bucket {
    pub tokens: f64,
    pub updated: Instant,
}

/// Takes one token from `bucket` at `now`. Returns `Err(seconds)` to wait when it is empty.
/// Pure: the caller stores the bucket.
pub fn take(bucket: Option<Bucket>, limit: RateLimit, now: Instant) -> (Bucket, Result<(), u64>) {
    let per_sec = f64::from(limit.requests_per_minute) / 60.0;
    let capacity = f64::from(limit.burst.max(1));
    let mut b = bucket.unwrap_or(Bucket {
        tokens: capacity,
        updated: now,
    });
    let elapsed = now.saturating_duration_since(b.updated).as_secs_f64();
    b.tokens = (b.tokens + elapsed * per_sec).min(capacity);
    b.updated = now;
    if b.tokens >= 1.0 {
        b.tokens -= 1.0;
        (b, Ok(()))
    } else {
        let wait = ((1.0 - b.tokens) / per_sec).ceil().max(1.0) as u64;
        (b, Err(wait))
    }
}

/// The endpoints that can be limited.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Authorize,
    Token,
    Userinfo,
    Introspect,
    Revoke,
    /// The second-factor pages (TOTP or recovery code, enrolment).
    Mfa,
}

/// The rate limits, with buckets in this process or shared through Redis.
pub struct RateLimiter {
    limits: RateLimits,
    trusted: Vec<ipnet::IpNet>,
    buckets: Mutex<HashMap<(Endpoint, IpAddr), Bucket>>,
    shared: Option<redis::RedisLimiter>,
}

impl RateLimiter {
    /// A limiter enforcing `limits` with buckets in this process.
    pub fn new(limits: RateLimits) -> Self {
        RateLimiter {
            // Validated with the configuration; an entry that does not parse trusts nothing.
            trusted: crate::client_addr::parse_trusted(&limits.trusted_proxies).unwrap_or_default(),
            limits,
            buckets: Mutex::new(HashMap::new()),
            shared: None,
        }
    }

    /// A limiter enforcing `limits` with buckets shared through Redis.
    pub fn shared(limits: RateLimits, redis: redis::RedisLimiter) -> Self {
        RateLimiter {
            shared: Some(redis),
            ..Self::new(limits)
        }
    }

    /// Admits one request from `addr` at `endpoint`, or says how many seconds to wait.
    pub async fn admit(&self, endpoint: Endpoint, addr: IpAddr) -> Result<(), u64> {
        match (&self.shared, self.limit(endpoint)) {
            (_, None) => Ok(()),
            (Some(shared), Some(limit)) => shared.check(endpoint, addr, limit).await,
            (None, Some(_)) => self.check(endpoint, addr, Instant::now()),
        }
    }

    /// The proxies whose `X-Forwarded-For` names the client.
    pub fn trusted_proxies(&self) -> &[ipnet::IpNet] {
        &self.trusted
    }

    /// Whether the shared store answers within `timeout`; `None` without one.
    pub async fn ping_shared(&self, timeout: std::time::Duration) -> Option<Result<(), String>> {
        match &self.shared {
            Some(shared) => Some(shared.ping(timeout).await),
            None => None,
        }
    }

    fn limit(&self, endpoint: Endpoint) -> Option<RateLimit> {
        match endpoint {
            Endpoint::Authorize => self.limits.authorize,
            Endpoint::Token => self.limits.token,
            Endpoint::Userinfo => self.limits.userinfo,
            Endpoint::Introspect => self.limits.introspect,
            Endpoint::Revoke => self.limits.revoke,
            Endpoint::Mfa => self.limits.mfa,
        }
    }

    /// Admits one request from `addr` against this process's buckets, or says how many
    /// seconds to wait.
    pub fn check(&self, endpoint: Endpoint, addr: IpAddr, now: Instant) -> Result<(), u64> {
        let Some(limit) = self.limit(endpoint) else {
            return Ok(());
        };
        let mut buckets = self.buckets.lock().expect("lock");
        // Keep memory bounded: drop full (idle) buckets when the map grows large.
        if buckets.len() > 100_000 {
            buckets.retain(|_, b| now.saturating_duration_since(b.updated).as_secs() < 600);
        }
        let (bucket, verdict) = take(buckets.get(&(endpoint, addr)).copied(), limit, now);
        buckets.insert((endpoint, addr), bucket);
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_refill_at_the_sustained_rate() {
        let limit = RateLimit {
            requests_per_minute: 60,
            burst: 3,
        };
        let t0 = Instant::now();
        let mut b = None;
        for _ in 0..3 {
            let (nb, v) = take(b, limit, t0);
            assert!(v.is_ok());
            b = Some(nb);
        }
        let (nb, v) = take(b, limit, t0);
        assert_eq!(v, Err(1), "one request per second refills");
        let (_, v) = take(Some(nb), limit, t0 + Duration::from_millis(1100));
        assert!(v.is_ok());
    }

    #[test]
    fn limits_are_per_endpoint_and_address() {
        let limiter = RateLimiter::new(RateLimits {
            token: Some(RateLimit {
                requests_per_minute: 1,
                burst: 1,
            }),
            ..Default::default()
        });
        let now = Instant::now();
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(limiter.check(Endpoint::Token, a, now).is_ok());
        assert_eq!(limiter.check(Endpoint::Token, a, now), Err(60));
        assert!(
            limiter.check(Endpoint::Token, b, now).is_ok(),
            "another address has its own bucket"
        );
        assert!(
            limiter.check(Endpoint::Introspect, a, now).is_ok(),
            "unconfigured endpoints are not limited"
        );
    }
}
