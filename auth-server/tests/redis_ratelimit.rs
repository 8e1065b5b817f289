//! Rate limits shared through a real Redis (`PALISADE_TEST_REDIS_URL`, e.g.
//! `redis://127.0.0.1:6379/1`): two limiters ("replicas") share one budget, two server
//! processes answer 429 with `Retry-After` from that budget, and an unreachable Redis admits
//! requests within the timeout (fail open). Skipped without the variable unless
//! `PALISADE_REQUIRE_SERVICES=1`.

use palisade_auth_server::ratelimit::lease::LEASE_TTL;
use palisade_auth_server::ratelimit::redis::{RedisLimiter, REDIS_TIMEOUT};
use palisade_auth_server::ratelimit::{Endpoint, RateLimiter};
use palisade_wire::contract::{RateLimit, RateLimits};
use prometheus_client::metrics::counter::Counter;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::IpAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn redis_url() -> Option<String> {
    match std::env::var("PALISADE_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("PALISADE_REQUIRE_SERVICES").as_deref() == Ok("1") => {
            panic!("PALISADE_REQUIRE_SERVICES=1 but PALISADE_TEST_REDIS_URL is not set")
        }
        _ => {
            eprintln!("skipped: PALISADE_TEST_REDIS_URL is not set");
            None
        }
    }
}

fn random_prefix() -> String {
    format!(
        "palisade-test:{}:",
        palisade_wire::registration::random_token(8)
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn connected(limiter: &RedisLimiter) {
    for _ in 0..100 {
        if limiter.ping(Duration::from_millis(200)).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("Redis did not become reachable");
}

/// A limiter under a fresh key prefix, once it reaches Redis.
async fn connected_limiter(url: &str) -> (String, RedisLimiter) {
    let prefix = random_prefix();
    let limiter = RedisLimiter::new(url, prefix.clone(), Counter::default()).unwrap();
    connected(&limiter).await;
    (prefix, limiter)
}

#[tokio::test]
async fn two_replicas_share_one_budget() {
    let Some(url) = redis_url() else { return };
    let prefix = random_prefix();
    let limit = RateLimit {
        requests_per_minute: 60,
        burst: 3,
    };
    let a = RedisLimiter::new(&url, prefix.clone(), Counter::default()).unwrap();
    let b = RedisLimiter::new(&url, prefix.clone(), Counter::default()).unwrap();
    connected(&a).await;
    connected(&b).await;
    let ip: IpAddr = "192.0.2.7".parse().unwrap();
    // Alternate between the replicas: together they admit the burst of 3, then refuse.
    let mut verdicts = Vec::new();
    for i in 0..5 {
        let replica = if i % 2 == 0 { &a } else { &b };
        verdicts.push(replica.check(Endpoint::Token, ip, limit).await);
    }
    assert_eq!(verdicts[..3], [Ok(()), Ok(()), Ok(())], "{verdicts:?}");
    assert_eq!(verdicts[3], Err(1), "one request per second refills");
    assert_eq!(verdicts[4], Err(1));
    // Other addresses and other endpoints have their own buckets.
    let other: IpAddr = "192.0.2.8".parse().unwrap();
    assert_eq!(b.check(Endpoint::Token, other, limit).await, Ok(()));
    assert_eq!(a.check(Endpoint::Introspect, ip, limit).await, Ok(()));
    // Another issuer's prefix does not share the budget.
    let c = RedisLimiter::new(&url, random_prefix(), Counter::default()).unwrap();
    connected(&c).await;
    assert_eq!(c.check(Endpoint::Token, ip, limit).await, Ok(()));
    // The bucket refills at the sustained rate, on Redis's clock.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(a.check(Endpoint::Token, ip, limit).await, Ok(()));
    assert_eq!(b.check(Endpoint::Token, ip, limit).await, Err(1));
}

#[tokio::test]
async fn bucket_keys_expire_once_the_bucket_is_full_again() {
    let Some(url) = redis_url() else { return };
    let (prefix, limiter) = connected_limiter(&url).await;
    let limit = RateLimit {
        requests_per_minute: 60,
        burst: 2,
    };
    let ip: IpAddr = "192.0.2.9".parse().unwrap();
    assert_eq!(limiter.check(Endpoint::Revoke, ip, limit).await, Ok(()));
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let key = format!("{prefix}rl:revoke:{ip}");
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        (1..=1000).contains(&ttl),
        "key expires after one interval (1 s), got {ttl}"
    );
}

async fn tat_ahead_secs(url: &str, key: &str) -> f64 {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let tat: u64 = redis::cmd("GET")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap();
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut conn).await.unwrap();
    (tat as f64 - (secs * 1_000_000 + micros) as f64) / 1e6
}

#[tokio::test]
async fn a_busy_address_leases_requests_and_gives_back_what_it_did_not_use() {
    let Some(url) = redis_url() else { return };
    let (prefix, limiter) = connected_limiter(&url).await;
    // One request per second sustained, a burst of 1024: leases of up to 64 (1024 / 16).
    let limit = RateLimit {
        requests_per_minute: 60,
        burst: 1024,
    };
    // Leases of 1, 2 and 4: four requests admitted, seven reserved in Redis. That needs the
    // four requests within one lease's lifetime; a stalled machine gets another address.
    for attempt in 11..14 {
        let ip: IpAddr = format!("192.0.2.{attempt}").parse().unwrap();
        let key = format!("{prefix}rl:token:{ip}");
        let start = Instant::now();
        for _ in 0..4 {
            assert_eq!(limiter.check(Endpoint::Token, ip, limit).await, Ok(()));
        }
        if start.elapsed() > LEASE_TTL / 2 {
            continue;
        }
        let ahead = tat_ahead_secs(&url, &key).await;
        assert!((6.0..=7.0).contains(&ahead), "7 reserved, got {ahead} s");
        // Once the lease expires, the next reservation gives back its 3 unused requests and
        // takes 2.
        tokio::time::sleep(LEASE_TTL).await;
        assert_eq!(limiter.check(Endpoint::Token, ip, limit).await, Ok(()));
        let ahead = tat_ahead_secs(&url, &key).await;
        assert!((5.0..=6.0).contains(&ahead), "6 reserved, got {ahead} s");
        return;
    }
    panic!("four requests never fitted in {LEASE_TTL:?}");
}

#[tokio::test]
async fn leasing_replicas_never_admit_more_than_the_shared_budget() {
    let Some(url) = redis_url() else { return };
    let prefix = random_prefix();
    let a = RedisLimiter::new(&url, prefix.clone(), Counter::default()).unwrap();
    let b = RedisLimiter::new(&url, prefix.clone(), Counter::default()).unwrap();
    connected(&a).await;
    connected(&b).await;
    // A burst of 64 and one request a minute: leases of up to 4, no refill during the test.
    let limit = RateLimit {
        requests_per_minute: 1,
        burst: 64,
    };
    let ip: IpAddr = "192.0.2.20".parse().unwrap();
    let mut admitted = 0;
    for i in 0..200 {
        let replica = if i % 2 == 0 { &a } else { &b };
        match replica.check(Endpoint::Token, ip, limit).await {
            Ok(()) => admitted += 1,
            Err(wait) => assert!((1..=60).contains(&wait), "{wait}"),
        }
    }
    assert_eq!(admitted, 64, "together exactly the burst");
}

#[tokio::test]
async fn unreachable_redis_admits_requests_within_the_timeout() {
    if redis_url().is_none() {
        return;
    }
    let closed = free_port();
    let errors = Counter::default();
    let limiter = RateLimiter::shared(
        RateLimits {
            token: Some(RateLimit {
                requests_per_minute: 1,
                burst: 1,
            }),
            introspect: Some(RateLimit {
                requests_per_minute: 1,
                burst: 1024,
            }),
            ..Default::default()
        },
        RedisLimiter::new(
            &format!("redis://127.0.0.1:{closed}/0"),
            random_prefix(),
            errors.clone(),
        )
        .unwrap(),
    );
    let ip: IpAddr = "192.0.2.10".parse().unwrap();
    for _ in 0..5 {
        let start = Instant::now();
        assert_eq!(limiter.admit(Endpoint::Token, ip).await, Ok(()));
        assert!(start.elapsed() < REDIS_TIMEOUT + Duration::from_millis(100));
    }
    assert_eq!(errors.get(), 5, "every failed check is counted");
    // A leased bucket (large burst): concurrent requests that wait for one reservation are
    // bounded by the same timeout.
    let start = Instant::now();
    let verdicts =
        futures::future::join_all((0..20).map(|_| limiter.admit(Endpoint::Introspect, ip))).await;
    assert!(verdicts.iter().all(Result::is_ok), "{verdicts:?}");
    assert!(start.elapsed() < REDIS_TIMEOUT + Duration::from_millis(100));
    assert!(limiter
        .ping_shared(Duration::from_millis(100))
        .await
        .unwrap()
        .is_err());
}

/// A TCP proxy to the Redis at `url` that stops passing its answers back once the returned
/// flag is set: Redis "hangs" for the limiter.
fn silenceable_proxy(url: &str) -> (String, Arc<AtomicBool>) {
    let upstream = url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let db = url.rsplit('/').next().unwrap().to_string();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let silent = Arc::new(AtomicBool::new(false));
    let flag = silent.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().map_while(Result::ok) {
            let server = std::net::TcpStream::connect(&upstream).unwrap();
            let (mut to_server, mut from_client) =
                (server.try_clone().unwrap(), client.try_clone().unwrap());
            std::thread::spawn(move || std::io::copy(&mut from_client, &mut to_server));
            let (mut from_server, mut to_client) = (server, client);
            let flag = flag.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = from_server.read(&mut buf) {
                    if !flag.load(Ordering::SeqCst) && to_client.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    (format!("redis://127.0.0.1:{port}/{db}"), silent)
}

#[tokio::test]
async fn a_redis_that_stops_answering_holds_no_request_past_the_timeout() {
    let Some(url) = redis_url() else { return };
    let (proxied, silent) = silenceable_proxy(&url);
    let errors = Counter::default();
    let redis = RedisLimiter::new(&proxied, random_prefix(), errors.clone()).unwrap();
    connected(&redis).await;
    let limiter = RateLimiter::shared(
        RateLimits {
            token: Some(RateLimit {
                requests_per_minute: 60,
                burst: 1024,
            }),
            ..Default::default()
        },
        redis,
    );
    let ip: IpAddr = "192.0.2.30".parse().unwrap();
    assert_eq!(limiter.admit(Endpoint::Token, ip).await, Ok(()));
    silent.store(true, Ordering::SeqCst);
    // Many at once: one reserves for the lease, the others wait for it; all are admitted
    // within the bound, and each is counted as failing open.
    for round in 1..=3 {
        let start = Instant::now();
        let verdicts =
            futures::future::join_all((0..40).map(|_| limiter.admit(Endpoint::Token, ip))).await;
        assert!(verdicts.iter().all(Result::is_ok), "{verdicts:?}");
        let took = start.elapsed();
        assert!(took < REDIS_TIMEOUT * 2, "{took:?}");
        assert_eq!(errors.get(), 40 * round);
    }
}

struct Server {
    child: Child,
    base: String,
    admin: String,
    secret: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a development server (in-memory store) with `REDIS_URL`; servers given the same
/// issuer share rate-limit buckets.
fn start(issuer: &str, redis_url: &str, rate_limits: &str) -> Server {
    let (public, admin) = (free_port(), free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_palisade-auth-server"))
        .env_clear()
        .env("PALISADE_ISSUER", issuer)
        .env("PALISADE_PUBLIC_ADDR", format!("127.0.0.1:{public}"))
        .env("PALISADE_ADMIN_ADDR", format!("127.0.0.1:{admin}"))
        .env("PALISADE_RATE_LIMITS", rate_limits)
        .env("REDIS_URL", redis_url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("auth-server starts");
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let secret = stdout
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.split("client_secret=").nth(1).map(str::to_string))
        .expect("dev client printed");
    Server {
        child,
        base: format!("http://127.0.0.1:{public}"),
        admin: format!("http://127.0.0.1:{admin}"),
        secret,
    }
}

async fn readyz(base: &str) -> Option<u16> {
    for _ in 0..100 {
        if let Ok(r) = reqwest::get(format!("{base}/readyz")).await {
            if r.status() == 200 {
                return Some(200);
            }
            if r.status() == 503 && r.text().await.unwrap_or_default().contains("redis") {
                return Some(503);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

async fn token_status(http: &reqwest::Client, s: &Server) -> (u16, Option<String>) {
    let r = http
        .post(format!("{}/token", s.base))
        .basic_auth("dev-client", Some(s.secret.clone()))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    (r.status().as_u16(), retry)
}

#[tokio::test]
async fn two_servers_answer_429_with_retry_after_from_one_shared_budget() {
    let Some(url) = redis_url() else { return };
    // The key prefix follows the issuer: a random one keeps this run apart from others.
    let issuer = format!(
        "https://id-{}.example",
        palisade_wire::registration::random_token(6).to_lowercase()
    );
    let limits = r#"{"token":{"requestsPerMinute":6,"burst":4}}"#;
    let a = start(&issuer, &url, limits);
    let b = start(&issuer, &url, limits);
    assert_eq!(
        readyz(&a.base).await,
        Some(200),
        "ready with Redis reachable"
    );
    assert_eq!(readyz(&b.base).await, Some(200));
    let http = reqwest::Client::new();
    let mut answers = Vec::new();
    for i in 0..8 {
        let s = if i % 2 == 0 { &a } else { &b };
        answers.push(token_status(&http, s).await);
    }
    let ok = answers.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(ok, 4, "the burst is shared by both servers: {answers:?}");
    for (status, retry) in &answers[4..] {
        assert_eq!(*status, 429, "{answers:?}");
        let secs: u64 = retry.as_deref().expect("Retry-After").parse().unwrap();
        assert!((1..=10).contains(&secs), "{secs}");
    }
}

#[tokio::test]
async fn server_with_unreachable_redis_fails_open_and_counts_errors() {
    if redis_url().is_none() {
        return;
    }
    let closed = free_port();
    let s = start(
        "https://fail-open.example",
        &format!("redis://127.0.0.1:{closed}/0"),
        r#"{"token":{"requestsPerMinute":1,"burst":1}}"#,
    );
    assert_eq!(
        readyz(&s.base).await,
        Some(503),
        "readiness reports the unreachable Redis"
    );
    let http = reqwest::Client::new();
    for _ in 0..3 {
        let start = Instant::now();
        let (status, _) = token_status(&http, &s).await;
        assert_eq!(status, 200, "requests pass while Redis is down");
        assert!(start.elapsed() < Duration::from_secs(1));
    }
    let metrics = http
        .get(format!("{}/metrics", s.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let errors: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("rate_limiter_errors_total "))
        .expect("rate_limiter_errors_total exported")
        .parse()
        .unwrap();
    assert!(errors >= 3.0, "{metrics}");
}
