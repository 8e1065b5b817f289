//! Leases on shared rate-limit buckets: when one client address keeps a replica busy, the
//! replica reserves a few requests of that address's shared budget in one Redis call and admits
//! the next requests from the reservation, instead of asking Redis for each one.
//!
//! The rules, all decided here with the clock passed in:
//! - Only buckets with a `burst` of at least [`MIN_BURST_TO_LEASE`] are leased; smaller ones (the
//!   default burst is 10) are checked in Redis request by request.
//! - A lease holds at most `burst / 16` requests, and never more than [`MAX_LEASE`]. It starts at
//!   one and doubles each time it is half spent before it expires, halves when it expires half
//!   unused, and starts at one again after a pause: it grows only while its address keeps it
//!   busy.
//! - The lease is topped up when half of it is spent, by the request that finds it so (it is
//!   admitted, and waits for Redis). One reservation per address is in flight at a time;
//!   requests that find the lease empty meanwhile wait for its answer, and each of them makes
//!   the next reservation one larger.
//! - A lease lives [`LEASE_TTL`]; what it did not use goes back to the bucket with the next
//!   reservation for that address.
//!
//! Every admitted request was reserved in the shared bucket, so the budget is never exceeded
//! overall. A replica spends reservations a little after Redis counted them, so in any window
//! an address gets at most one lease (≤ `burst / 16`) per replica more than the exact limit;
//! and a replica holding unused reservations can make other replicas refuse that many requests
//! early, until it spends them or the lease returns them.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::futures::OwnedNotified;
use tokio::sync::Notify;

/// How long reserved requests may be spent.
pub const LEASE_TTL: Duration = Duration::from_millis(100);
/// The most requests one reservation holds.
pub const MAX_LEASE: u32 = 256;
/// Buckets with a smaller burst are never leased.
pub const MIN_BURST_TO_LEASE: u32 = 32;
/// A reservation not answered within this time no longer blocks the next one.
const RESERVING_FOR: Duration = Duration::from_millis(200);
/// Above this many addresses, expired leases are dropped (their leftovers stay spent).
const MAX_ENTRIES: usize = 100_000;

/// The most requests a lease on a bucket with this burst may hold (1: no leasing).
pub fn lease_cap(burst: u32) -> u32 {
    if burst < MIN_BURST_TO_LEASE {
        1
    } else {
        (burst / 16).clamp(1, MAX_LEASE)
    }
}

/// What to do with one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Admitted from this replica's lease.
    Admit,
    /// Admitted from the lease, which is running low: reserve `want` more requests for it and
    /// pass the answer to [`Leases::granted`].
    AdmitAndRefill { want: u32 },
    /// The lease is empty and a reservation for it is in flight: wait for its answer
    /// ([`Leases::answered`]), then decide again.
    Wait,
    /// Ask the shared bucket for `want` requests (this one included), giving back `refund`
    /// requests an expired lease did not use. `batch` says whether this is the address's one
    /// reservation in flight, whose answer must be passed to [`Leases::granted`].
    Reserve { want: u32, refund: u32, batch: bool },
}

#[derive(Debug)]
struct Lease {
    /// Reserved requests not yet admitted.
    units: u32,
    expires: Instant,
    /// How many requests the lease is topped up to.
    size: u32,
    reserving_until: Option<Instant>,
    /// Whether the reservation in flight includes the request that made it.
    for_asker: bool,
    answered: Arc<Notify>,
}

/// This replica's leases, by bucket.
pub struct Leases<K> {
    map: Mutex<HashMap<K, Lease>>,
}

impl<K: Hash + Eq + Copy> Default for Leases<K> {
    fn default() -> Self {
        Leases {
            map: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq + Copy> Leases<K> {
    /// Decides one request to bucket `key` whose burst is `burst`, at `now`.
    pub fn decide(&self, key: K, burst: u32, now: Instant) -> Decision {
        let cap = lease_cap(burst);
        if cap == 1 {
            return Decision::Reserve {
                want: 1,
                refund: 0,
                batch: false,
            };
        }
        let mut map = self.map.lock().expect("lock");
        if map.len() > MAX_ENTRIES {
            map.retain(|_, l| l.expires > now);
        }
        let lease = map.entry(key).or_insert(Lease {
            units: 0,
            expires: now,
            size: 1,
            reserving_until: None,
            for_asker: false,
            answered: Arc::default(),
        });
        let in_flight = lease.reserving_until.is_some_and(|t| now < t);
        if now < lease.expires && lease.units > 0 {
            lease.units -= 1;
            if in_flight || lease.units * 2 >= lease.size {
                return Decision::Admit;
            }
            // Half spent before it expired: the address keeps the lease busy.
            lease.size = (lease.size * 2).min(cap);
            lease.reserving_until = Some(now + RESERVING_FOR);
            lease.for_asker = false;
            return Decision::AdmitAndRefill {
                want: lease.size - lease.units,
            };
        }
        if in_flight {
            // The next reservation also covers this request.
            lease.size = (lease.size + 1).min(cap);
            return Decision::Wait;
        }
        let refund = if now < lease.expires {
            // Ran out before it expired.
            lease.size *= 2;
            0
        } else {
            let unused = std::mem::take(&mut lease.units);
            if now.saturating_duration_since(lease.expires) > LEASE_TTL {
                lease.size = 1;
            } else if unused >= lease.size / 2 {
                lease.size /= 2;
            }
            unused
        };
        lease.size = lease.size.clamp(1, cap);
        lease.reserving_until = Some(now + RESERVING_FOR);
        lease.for_asker = true;
        Decision::Reserve {
            want: lease.size,
            refund,
            batch: true,
        }
    }

    /// The reservation in flight for `key` that a [`Decision`] asked for, made at `now`.
    pub fn reservation(&self, key: K, now: Instant) -> Reservation<'_, K> {
        Reservation {
            leases: self,
            key,
            at: now,
            answered: false,
        }
    }

    /// Records the answer to the reservation in flight for `key`, made at `now`: `granted`
    /// requests (0 when refused or when the shared bucket did not answer).
    fn granted(&self, key: K, granted: u32, now: Instant) {
        let mut map = self.map.lock().expect("lock");
        if let Some(lease) = map.get_mut(&key) {
            lease.reserving_until = None;
            if granted > 0 {
                lease.units += granted - u32::from(lease.for_asker);
                lease.expires = now + LEASE_TTL;
            }
            lease.answered.notify_waiters();
        }
    }

    /// Resolves when the reservation in flight for `key` is answered (or dropped); `None` when
    /// none is in flight any more.
    pub fn answered(&self, key: K, now: Instant) -> Option<OwnedNotified> {
        let map = self.map.lock().expect("lock");
        let lease = map.get(&key)?;
        // Registered under the lock that `granted` takes, so no answer is missed.
        lease
            .reserving_until
            .is_some_and(|t| now < t)
            .then(|| lease.answered.clone().notified_owned())
    }
}

/// A reservation in flight. Pass its answer to [`Reservation::answer`]; dropped unanswered
/// (its request went away), it counts as refused, so that no request waits for it.
pub struct Reservation<'a, K: Hash + Eq + Copy> {
    leases: &'a Leases<K>,
    key: K,
    at: Instant,
    answered: bool,
}

impl<K: Hash + Eq + Copy> Reservation<'_, K> {
    /// Records that the shared bucket granted `granted` requests (0: refused or no answer).
    pub fn answer(mut self, granted: u32) {
        self.answered = true;
        self.leases.granted(self.key, granted, self.at);
    }
}

impl<K: Hash + Eq + Copy> Drop for Reservation<'_, K> {
    fn drop(&mut self) {
        if !self.answered {
            self.leases.granted(self.key, 0, self.at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BURST: u32 = 1024;

    fn reserve(want: u32, refund: u32) -> Decision {
        Decision::Reserve {
            want,
            refund,
            batch: true,
        }
    }

    #[test]
    fn small_bursts_are_never_leased() {
        let leases = Leases::default();
        let t = Instant::now();
        for _ in 0..3 {
            assert_eq!(
                leases.decide(1, 31, t),
                Decision::Reserve {
                    want: 1,
                    refund: 0,
                    batch: false
                }
            );
        }
        assert_eq!(lease_cap(10), 1);
        assert_eq!(lease_cap(32), 2);
        assert_eq!(lease_cap(160), 10);
        assert_eq!(lease_cap(1_000_000), MAX_LEASE);
    }

    #[test]
    fn a_busy_address_doubles_its_lease_up_to_the_cap() {
        let leases = Leases::default();
        let t = Instant::now();
        assert_eq!(leases.decide(1, BURST, t), reserve(1, 0));
        leases.granted(1, 1, t);
        let mut wants = Vec::new();
        let mut held = Vec::new();
        for _ in 0..200 {
            match leases.decide(1, BURST, t) {
                Decision::Admit => {}
                Decision::Wait => panic!("answered at once"),
                Decision::AdmitAndRefill { want } | Decision::Reserve { want, .. } => {
                    wants.push(want);
                    leases.granted(1, want, t);
                }
            }
            held.push(leases.map.lock().unwrap()[&1].units);
        }
        // Topped up each time half of it is spent, doubling up to the cap.
        assert_eq!(wants[..7], [2, 4, 7, 13, 25, 49, 33]);
        assert!(wants[7..].iter().all(|w| *w == 33), "{wants:?}");
        assert!(held.iter().all(|h| *h <= lease_cap(BURST)), "{held:?}");
    }

    #[test]
    fn expired_leftovers_go_back_and_the_lease_shrinks() {
        let leases = Leases::default();
        let t = Instant::now();
        leases.decide(1, BURST, t);
        leases.granted(1, 1, t);
        assert_eq!(leases.decide(1, BURST, t), reserve(2, 0));
        leases.granted(1, 2, t);
        assert_eq!(
            leases.decide(1, BURST, t),
            Decision::AdmitAndRefill { want: 4 }
        );
        leases.granted(1, 4, t);
        assert_eq!(leases.decide(1, BURST, t), Decision::Admit);
        // Three of the four left when the lease expires: they go back, the size halves.
        let later = t + LEASE_TTL;
        assert_eq!(leases.decide(1, BURST, later), reserve(2, 3));
        leases.granted(1, 2, later);
        // After a pause longer than a lease, the next one starts at one again.
        let idle = later + LEASE_TTL * 3;
        assert_eq!(leases.decide(1, BURST, idle), reserve(1, 1));
    }

    #[test]
    fn one_reservation_at_a_time() {
        let leases = Leases::default();
        let t = Instant::now();
        assert_eq!(leases.decide(1, BURST, t), reserve(1, 0));
        assert_eq!(leases.decide(1, BURST, t), Decision::Wait);
        assert_eq!(leases.decide(2, BURST, t), reserve(1, 0), "per address");
        // A reservation that never answered stops blocking the next one.
        assert!(leases.answered(1, t + RESERVING_FOR).is_none());
        assert!(matches!(
            leases.decide(1, BURST, t + RESERVING_FOR),
            Decision::Reserve { batch: true, .. }
        ));
    }

    #[tokio::test]
    async fn waiters_wake_when_the_reservation_is_answered() {
        let leases = Leases::default();
        let t = Instant::now();
        leases.decide(1, BURST, t);
        leases.granted(1, 1, t);
        assert_eq!(leases.decide(1, BURST, t), reserve(2, 0));
        assert_eq!(leases.decide(1, BURST, t), Decision::Wait);
        let waiting = leases.answered(1, t).expect("in flight");
        leases.granted(1, 2, t);
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("woken by the answer");
        assert!(leases.answered(1, t).is_none(), "nothing in flight");
        // The waiter made the lease 3; spent by half, it doubles.
        assert_eq!(
            leases.decide(1, BURST, t),
            Decision::AdmitAndRefill { want: 6 }
        );
    }

    #[tokio::test]
    async fn a_reservation_whose_request_went_away_wakes_its_waiters() {
        let leases = Leases::default();
        let t = Instant::now();
        assert_eq!(leases.decide(1, BURST, t), reserve(1, 0));
        let in_flight = leases.reservation(1, t);
        assert_eq!(leases.decide(1, BURST, t), Decision::Wait);
        let waiting = leases.answered(1, t).expect("in flight");
        drop(in_flight);
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("woken when the reservation was dropped");
        assert!(matches!(
            leases.decide(1, BURST, t),
            Decision::Reserve { batch: true, .. }
        ));
    }

    #[test]
    fn the_next_reservation_covers_the_requests_that_waited() {
        let leases = Leases::default();
        let t = Instant::now();
        assert_eq!(leases.decide(1, BURST, t), reserve(1, 0));
        for _ in 0..40 {
            assert_eq!(leases.decide(1, BURST, t), Decision::Wait);
        }
        leases.granted(1, 1, t);
        // The first waiter back finds the lease empty and reserves for everyone, up to the cap.
        assert_eq!(leases.decide(1, BURST, t), reserve(lease_cap(BURST), 0));
    }

    #[test]
    fn a_refused_reservation_leaves_nothing_to_spend() {
        let leases = Leases::default();
        let t = Instant::now();
        leases.decide(1, BURST, t);
        leases.granted(1, 0, t);
        assert!(matches!(
            leases.decide(1, BURST, t),
            Decision::Reserve { batch: true, .. }
        ));
    }

    #[test]
    fn never_admits_more_than_was_granted() {
        // However requests and answers interleave, local admissions equal granted units
        // minus the requests that asked and minus refunds.
        let leases = Leases::default();
        let t0 = Instant::now();
        let (mut granted, mut admitted, mut asked, mut refunded) = (0u32, 0u32, 0u32, 0u32);
        let mut pending = Vec::new();
        for i in 0..5_000u32 {
            let now = t0 + Duration::from_millis(u64::from(i / 7));
            match leases.decide(9, BURST, now) {
                Decision::Admit => admitted += 1,
                Decision::Wait => {}
                Decision::AdmitAndRefill { want } => {
                    admitted += 1;
                    pending.push((want, now, false));
                }
                Decision::Reserve {
                    want,
                    refund,
                    batch,
                } => {
                    refunded += refund;
                    if batch {
                        pending.push((want, now, true));
                    } else {
                        granted += 1;
                        asked += 1;
                    }
                }
            }
            // Answer batch reservations a little later; refuse every fifth.
            if i % 3 == 0 {
                if let Some((want, at, for_asker)) = pending.pop() {
                    let g = if i % 5 == 0 { 0 } else { want };
                    granted += g;
                    asked += u32::from(g > 0 && for_asker);
                    leases.granted(9, g, at);
                }
            }
        }
        let left = leases.map.lock().unwrap().get(&9).map_or(0, |l| l.units);
        assert_eq!(admitted + asked + refunded + left, granted);
    }
}
