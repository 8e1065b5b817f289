//! Rate-limit buckets shared by every replica through Redis: one atomic script call per request,
//! or per lease of several requests for a busy address ([`super::lease`]) (GCRA on Redis's own
//! clock, so replicas with skewed clocks still agree), keys prefixed per
//! issuer and expiring once the bucket is full again. Every failure — not yet connected, an
//! error, or no answer within [`REDIS_TIMEOUT`] — admits the request (fail open), counts
//! `rate_limiter_errors_total` and logs a warning at most every [`WARN_EVERY`].

use super::lease::{Decision, Leases};
use super::Endpoint;
use palisade_wire::contract::RateLimit;
use prometheus_client::metrics::counter::Counter;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Longest a request waits for Redis before it is admitted without it.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(50);
/// At most one "Redis unavailable" warning per this interval.
pub const WARN_EVERY: Duration = Duration::from_secs(10);

/// GCRA: the key holds the theoretical arrival time (TAT) in microseconds of Redis time.
/// ARGV[1] is the emission interval in µs (60e6 / requestsPerMinute), ARGV[2] the burst,
/// ARGV[3] how many requests to reserve (a lease, see [`super::lease`]; 1 without one) and
/// ARGV[4] how many reserved requests an expired lease gives back. Reserves as many of the
/// wanted requests as the bucket holds and returns `{reserved, 0}`, or `{0, µs to wait}` when
/// it holds none.
const GCRA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local capacity = interval * tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now) - interval * tonumber(ARGV[4])
if tat < now then tat = now end
local room = math.floor((capacity - (tat - now)) / interval)
local n = math.min(tonumber(ARGV[3]), room)
if n < 1 then
  if tonumber(ARGV[4]) > 0 then
    redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', math.max(1, math.ceil((tat - now) / 1000)))
  end
  return {0, math.ceil(tat + interval - now - capacity)}
end
local new_tat = tat + n * interval
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
return {n, 0}
"#;

/// The Redis side of the limiter.
pub struct RedisLimiter {
    conn: Arc<OnceLock<ConnectionManager>>,
    script: redis::Script,
    prefix: String,
    errors: Counter,
    last_warn: AtomicU64,
    leases: Leases<(Endpoint, IpAddr)>,
}

fn endpoint_key(e: Endpoint) -> &'static str {
    match e {
        Endpoint::Authorize => "authorize",
        Endpoint::Token => "token",
        Endpoint::Userinfo => "userinfo",
        Endpoint::Introspect => "introspect",
        Endpoint::Revoke => "revoke",
        Endpoint::Mfa => "mfa",
    }
}

/// Seconds to wait, as `Retry-After` says it: at least one.
pub fn retry_after_secs(wait_micros: u64) -> u64 {
    wait_micros.div_ceil(1_000_000).max(1)
}

impl RedisLimiter {
    /// Connects in the background (retrying until Redis answers); until then, requests pass.
    /// Must be called inside a Tokio runtime.
    pub fn new(url: &str, prefix: String, errors: Counter) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)
            .map_err(|e| anyhow::anyhow!("REDIS_URL is not a valid Redis URL: {e}"))?;
        let conn = Arc::new(OnceLock::new());
        let slot = conn.clone();
        tokio::spawn(async move {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Duration::from_secs(1))
                .set_response_timeout(REDIS_TIMEOUT)
                .set_number_of_retries(2)
                .set_max_delay(500);
            loop {
                match ConnectionManager::new_with_config(client.clone(), config.clone()).await {
                    Ok(c) => {
                        let _ = slot.set(c);
                        tracing::info!("connected to Redis for shared rate limits");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "Redis unreachable; rate limits fail open until it answers");
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                }
            }
        });
        Ok(RedisLimiter {
            conn,
            script: redis::Script::new(GCRA),
            prefix,
            errors,
            last_warn: AtomicU64::new(0),
            leases: Leases::default(),
        })
    }

    fn fail_open(&self, why: &str) -> Result<(), u64> {
        self.errors.inc();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let last = self.last_warn.load(Ordering::Relaxed);
        if now >= last + WARN_EVERY.as_secs()
            && self
                .last_warn
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                error = why,
                "rate limiter unavailable; admitting requests (fail open)"
            );
        }
        Ok(())
    }

    /// Admits one request from `addr` at `endpoint` under `limit`, or says how many seconds
    /// to wait: from this replica's lease on the bucket when it holds one, else from Redis.
    pub async fn check(
        &self,
        endpoint: Endpoint,
        addr: IpAddr,
        limit: RateLimit,
    ) -> Result<(), u64> {
        let bucket = (endpoint, addr);
        let mut now = Instant::now();
        // The whole check, waiting for another request's reservation included.
        let deadline = now + REDIS_TIMEOUT;
        // `admitted`: from the lease already; `leased`: the reservation is the lease's.
        let (want, refund, admitted, leased) = loop {
            match self.leases.decide(bucket, limit.burst, now) {
                Decision::Admit => return Ok(()),
                Decision::AdmitAndRefill { want } => break (want, 0, true, true),
                Decision::Reserve {
                    want,
                    refund,
                    batch,
                } => break (want, refund, false, batch),
                Decision::Wait if now >= deadline => {
                    return self.fail_open("Redis did not answer in time")
                }
                Decision::Wait => {
                    if let Some(answer) = self.leases.answered(bucket, now) {
                        let _ = tokio::time::timeout_at(deadline.into(), answer).await;
                    }
                    now = Instant::now();
                }
            }
        };
        // Answered (or, if this request goes away first, refused) for the lease's waiters.
        let reservation = leased.then(|| self.leases.reservation(bucket, now));
        let answer = self
            .reserve(endpoint, addr, limit, want, refund, deadline)
            .await;
        if let Some(reservation) = reservation {
            reservation.answer(answer.as_ref().map_or(0, |a| a.0));
        }
        match answer {
            Ok((0, wait)) if !admitted => Err(retry_after_secs(wait)),
            Ok(_) => Ok(()),
            Err(why) => self.fail_open(&why),
        }
    }

    /// Reserves up to `want` requests in the shared bucket, giving back `refund`, unless that
    /// takes past `deadline`: the number reserved, and the µs to wait when that is none.
    async fn reserve(
        &self,
        endpoint: Endpoint,
        addr: IpAddr,
        limit: RateLimit,
        want: u32,
        refund: u32,
        deadline: Instant,
    ) -> Result<(u32, u64), String> {
        let Some(conn) = self.conn.get() else {
            return Err("not connected to Redis yet".into());
        };
        let mut conn = conn.clone();
        // At least 1 µs: a zero interval would make the key expire at once (PX 0 is refused).
        let interval = (60_000_000 / u64::from(limit.requests_per_minute.max(1))).max(1);
        let key = format!("{}rl:{}:{addr}", self.prefix, endpoint_key(endpoint));
        let mut call = self.script.key(key);
        call.arg(interval)
            .arg(limit.burst.max(1))
            .arg(want)
            .arg(refund);
        match tokio::time::timeout_at(deadline.into(), call.invoke_async::<(u32, u64)>(&mut conn))
            .await
        {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("Redis did not answer in time".into()),
        }
    }

    /// Whether Redis answers a PING within `timeout` (readiness).
    pub async fn ping(&self, timeout: Duration) -> Result<(), String> {
        let Some(conn) = self.conn.get() else {
            return Err("not connected to Redis".into());
        };
        let mut conn = conn.clone();
        match tokio::time::timeout(timeout, redis::cmd("PING").query_async::<String>(&mut conn))
            .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("Redis did not answer in time".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn retry_after_rounds_up_to_whole_seconds_and_is_never_zero() {
        assert_eq!(super::retry_after_secs(1), 1);
        assert_eq!(super::retry_after_secs(1_000_000), 1);
        assert_eq!(super::retry_after_secs(1_000_001), 2);
        assert_eq!(super::retry_after_secs(59_999_999), 60);
    }
}
