//! The signing-key rotation schedule, as a pure function: key set + policy + now → the key set
//! that should be stored, and when to look again.
//!
//! Steady state: one *current* key signs; the *next* key is already in the Secret with a
//! `publishAt` at least `publishLead` before its `activateAt`, which equals the current key's
//! `retireAt` (so exactly one key signs at every instant); *retired* keys stay in JWKS until
//! `retireAt` + the longest token TTL. Because every instant is written ahead of time, the
//! Secret changes once per rotation, and replicas switch keys by the clock alone.

use chrono::{DateTime, Duration, Utc};
use palisade_wire::keyset::{Algorithm, GeneratedKey, KeySet, SigningKey};

/// What the AuthProvider asks of its keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub algorithm: Algorithm,
    /// How long each key signs.
    pub rotation_interval: Duration,
    /// How long before activation a key is published in JWKS (must exceed Secret propagation
    /// plus relying parties' JWKS caching).
    pub publish_lead: Duration,
    /// Longest lifetime of a token signed by a key (access or ID token).
    pub max_token_ttl: Duration,
}

/// The schedule's answer.
#[derive(Debug, PartialEq)]
pub struct Plan {
    /// The key set that should be stored.
    pub keys: KeySet,
    /// Whether `keys` differs from the input (the Secret must be written).
    pub changed: bool,
    /// Whether the current signer was replaced at once (emergency, clock jump, or first key).
    pub replaced_current: bool,
    /// The next instant at which the schedule must run again.
    pub next_wake: DateTime<Utc>,
}

/// Produces new key pairs; the controller passes the real generator, tests a deterministic one.
pub type KeyGenerator<'a> = dyn FnMut(Algorithm) -> GeneratedKey + 'a;

fn new_key(
    generate: &mut KeyGenerator<'_>,
    policy: &Policy,
    publish: DateTime<Utc>,
    activate: DateTime<Utc>,
) -> SigningKey {
    let retire = activate + policy.rotation_interval;
    generate(policy.algorithm).schedule(publish, activate, retire, retire + policy.max_token_ttl)
}

/// Computes the key set for `now`. With `emergency`, every existing key leaves JWKS at once
/// (they all lived in the same Secret, so all are presumed compromised) and a fresh key signs
/// from `now`; tokens signed before then stop verifying.
pub fn plan(
    stored: &KeySet,
    policy: &Policy,
    now: DateTime<Utc>,
    emergency: bool,
    generate: &mut KeyGenerator<'_>,
) -> Plan {
    let mut keys: Vec<SigningKey> = if emergency {
        Vec::new()
    } else {
        stored.keys.clone()
    };

    // Keys that have left JWKS are gone for good.
    keys.retain(|k| k.delete_at > now);
    // A retired key stays published until every token it signed has expired, under the
    // current TTLs (a longer TTL extends it; a shorter one never cuts it short).
    for k in keys.iter_mut().filter(|k| k.retire_at <= now) {
        k.delete_at = k.delete_at.max(k.retire_at + policy.max_token_ttl);
    }

    // The current signer, chosen exactly as the auth-server chooses it.
    let signer_kid = KeySet { keys: keys.clone() }
        .signing_key(now)
        .map(|k| k.kid.clone());
    let replaced_current = signer_kid.is_none();
    let current_kid = match signer_kid {
        Some(kid) => kid,
        None => {
            // No key can sign now (first key, emergency, or the clock jumped past every
            // window): sign from now on. Nobody can have cached a JWKS without it yet.
            let key = new_key(generate, policy, now, now);
            let kid = key.kid.clone();
            keys.push(key);
            kid
        }
    };
    let mut current = keys
        .iter()
        .find(|k| k.kid == current_kid)
        .cloned()
        .expect("current key is in the set");

    // A shorter rotation interval applies to the current key too, no sooner than a successor
    // can be published ahead of it.
    let shortened = (current.activate_at + policy.rotation_interval).max(now + policy.publish_lead);
    if current.retire_at > shortened {
        current.retire_at = shortened;
        current.delete_at = current.retire_at + policy.max_token_ttl;
    }

    // Keys that never signed and are not the proper successor are dropped (e.g. a next key of
    // the old algorithm after an algorithm change). Dropping a never-active key fails no
    // verification. Retired keys and the current key stay.
    let successor_ok = |k: &SigningKey, current: &SigningKey| {
        k.activate_at == current.retire_at
            && k.alg == policy.algorithm
            && k.activate_at - k.publish_at >= policy.publish_lead
    };
    let mut next = keys
        .iter()
        .find(|k| k.activate_at > now && successor_ok(k, &current))
        .cloned();
    // An algorithm change rotates early, through the same publish-ahead path.
    if current.alg != policy.algorithm && next.is_none() {
        let earliest = now + policy.publish_lead;
        if current.retire_at > earliest {
            current.retire_at = earliest;
        }
    }
    if next.is_none() {
        // The successor must be published `publish_lead` before it activates. If the operator
        // was away through that window, the current key signs a little longer instead.
        let earliest_activation = now + policy.publish_lead;
        if current.retire_at < earliest_activation {
            current.retire_at = earliest_activation;
        }
        current.delete_at = current
            .delete_at
            .max(current.retire_at + policy.max_token_ttl);
        let activate = current.retire_at;
        next = Some(new_key(
            generate,
            policy,
            activate - policy.publish_lead,
            activate,
        ));
    }
    let next = next.expect("successor exists");

    let mut result: Vec<SigningKey> = keys
        .into_iter()
        .filter(|k| k.activate_at <= now && k.kid != current.kid) // keys that signed before
        .map(|mut k| {
            // Only the current key may still sign (a hand-edited Secret could overlap windows).
            if k.retire_at > now {
                k.retire_at = now;
                k.delete_at = k.delete_at.max(now + policy.max_token_ttl);
            }
            k
        })
        .collect();
    result.push(current.clone());
    result.push(next.clone());
    result.sort_by(by_activation);

    let next_wake = result
        .iter()
        .filter(|k| k.retire_at <= now)
        .map(|k| k.delete_at)
        .chain([current.retire_at])
        .filter(|t| *t > now)
        .min()
        .unwrap_or(current.retire_at);

    let keys = KeySet { keys: result };
    let mut before = stored.keys.clone();
    before.sort_by(by_activation);
    Plan {
        changed: keys.keys != before,
        keys,
        replaced_current,
        next_wake,
    }
}

fn by_activation(a: &SigningKey, b: &SigningKey) -> std::cmp::Ordering {
    a.activate_at.cmp(&b.activate_at).then(a.kid.cmp(&b.kid))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn policy() -> Policy {
        Policy {
            algorithm: Algorithm::EdDSA,
            rotation_interval: Duration::seconds(40),
            publish_lead: Duration::seconds(10),
            max_token_ttl: Duration::seconds(15),
        }
    }

    fn gen() -> impl FnMut(Algorithm) -> GeneratedKey {
        |alg| GeneratedKey::generate(alg).unwrap()
    }

    /// Runs the schedule as the operator would: at every wake-up and at every `step`.
    fn simulate(
        policy: &Policy,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step: Duration,
    ) -> Vec<(DateTime<Utc>, KeySet)> {
        let mut g = gen();
        let mut set = KeySet::default();
        let mut now = start;
        let mut history = Vec::new();
        while now < end {
            let p = plan(&set, policy, now, false, &mut g);
            set = p.keys;
            history.push((now, set.clone()));
            now = (now + step).min(p.next_wake);
        }
        history
    }

    fn assert_invariants(policy: &Policy, set: &KeySet, now: DateTime<Utc>) {
        let signers: Vec<_> = set.keys.iter().filter(|k| k.can_sign(now)).collect();
        assert_eq!(signers.len(), 1, "exactly one signer at {now}: {set:?}");
        let current = signers[0];
        let next = set
            .keys
            .iter()
            .find(|k| k.activate_at == current.retire_at)
            .expect("a successor is scheduled");
        assert!(
            next.activate_at - next.publish_at >= policy.publish_lead,
            "successor published early enough"
        );
        for k in &set.keys {
            if k.retire_at <= now {
                assert!(
                    k.delete_at >= k.retire_at + policy.max_token_ttl,
                    "retired key outlives its tokens"
                );
            }
        }
    }

    #[test]
    fn first_plan_creates_a_signing_key_and_a_published_ahead_successor() {
        let p = plan(&KeySet::default(), &policy(), t0(), false, &mut gen());
        assert!(p.changed && p.replaced_current);
        assert_eq!(p.keys.keys.len(), 2);
        let signer = p.keys.signing_key(t0()).unwrap();
        assert_eq!(signer.retire_at, t0() + Duration::seconds(40));
        assert_eq!(p.next_wake, t0() + Duration::seconds(40));
        assert_invariants(&policy(), &p.keys, t0());
        // Not yet published: the successor appears in JWKS 10 s before it signs.
        assert_eq!(p.keys.published(t0()).count(), 1);
        assert_eq!(p.keys.published(t0() + Duration::seconds(30)).count(), 2);
    }

    #[test]
    fn steady_state_is_stable_between_rotations() {
        let mut g = gen();
        let first = plan(&KeySet::default(), &policy(), t0(), false, &mut g);
        let again = plan(
            &first.keys,
            &policy(),
            t0() + Duration::seconds(5),
            false,
            &mut g,
        );
        assert!(!again.changed, "no rewrite when nothing is due");
        assert!(!again.replaced_current);
    }

    #[test]
    fn every_instant_has_exactly_one_signer_across_many_rotations() {
        let policy = policy();
        let history = simulate(
            &policy,
            t0(),
            t0() + Duration::seconds(400),
            Duration::seconds(3),
        );
        for (now, set) in &history {
            assert_invariants(&policy, set, *now);
            // Probe the instants between runs too: the stored set alone must cover them.
            for s in 0..3 {
                let probe = *now + Duration::seconds(s);
                assert_eq!(
                    set.keys.iter().filter(|k| k.can_sign(probe)).count(),
                    1,
                    "at {probe}"
                );
            }
        }
        let kids: std::collections::BTreeSet<_> = history
            .iter()
            .filter_map(|(now, set)| set.signing_key(*now).map(|k| k.kid.clone()))
            .collect();
        assert!(kids.len() >= 9, "rotated about every 40 s: {}", kids.len());
    }

    #[test]
    fn retired_key_stays_published_until_its_tokens_expire_then_leaves() {
        let policy = policy();
        let mut g = gen();
        let p0 = plan(&KeySet::default(), &policy, t0(), false, &mut g);
        let first_kid = p0.keys.signing_key(t0()).unwrap().kid.clone();
        let at_rotation = t0() + Duration::seconds(40);
        let p1 = plan(&p0.keys, &policy, at_rotation, false, &mut g);
        assert_ne!(p1.keys.signing_key(at_rotation).unwrap().kid, first_kid);
        assert!(p1
            .keys
            .published(at_rotation + Duration::seconds(14))
            .any(|k| k.kid == first_kid));
        assert_eq!(
            p1.next_wake,
            at_rotation + Duration::seconds(15),
            "wake to drop the retired key"
        );
        let p2 = plan(
            &p1.keys,
            &policy,
            at_rotation + Duration::seconds(15),
            false,
            &mut g,
        );
        assert!(!p2.keys.keys.iter().any(|k| k.kid == first_kid));
    }

    #[test]
    fn operator_restart_with_same_set_changes_nothing() {
        let policy = policy();
        let history = simulate(
            &policy,
            t0(),
            t0() + Duration::seconds(100),
            Duration::seconds(7),
        );
        let (now, set) = history.last().unwrap().clone();
        // A restarted operator sees only the Secret; planning again must be a no-op.
        let p = plan(&set, &policy, now, false, &mut gen());
        assert!(!p.changed);
    }

    #[test]
    fn clock_jump_past_every_window_starts_a_fresh_key_immediately() {
        let policy = policy();
        let mut g = gen();
        let p0 = plan(&KeySet::default(), &policy, t0(), false, &mut g);
        let later = t0() + Duration::hours(3);
        let p = plan(&p0.keys, &policy, later, false, &mut g);
        assert!(p.replaced_current);
        assert_invariants(&policy, &p.keys, later);
        assert!(
            p.keys.keys.iter().all(|k| k.delete_at > later),
            "expired keys dropped"
        );
    }

    #[test]
    fn late_operator_extends_the_current_key_instead_of_publishing_too_late() {
        let policy = policy();
        let now = t0();
        // A current key that retires in 3 s, with no successor (e.g. hand-edited Secret).
        let current = GeneratedKey::generate(Algorithm::EdDSA).unwrap().schedule(
            now - Duration::seconds(37),
            now - Duration::seconds(37),
            now + Duration::seconds(3),
            now + Duration::seconds(18),
        );
        let p = plan(
            &KeySet {
                keys: vec![current.clone()],
            },
            &policy,
            now,
            false,
            &mut gen(),
        );
        let kept = p.keys.keys.iter().find(|k| k.kid == current.kid).unwrap();
        assert_eq!(kept.retire_at, now + Duration::seconds(10));
        assert_invariants(&policy, &p.keys, now);
        assert!(!p.replaced_current);
    }

    #[test]
    fn emergency_rotation_removes_every_old_key_from_jwks_at_once() {
        let policy = policy();
        let mut g = gen();
        let p0 = plan(&KeySet::default(), &policy, t0(), false, &mut g);
        let now = t0() + Duration::seconds(12);
        let p = plan(&p0.keys, &policy, now, true, &mut g);
        assert!(p.changed && p.replaced_current);
        let old: Vec<_> = p0.keys.keys.iter().map(|k| k.kid.clone()).collect();
        assert!(p.keys.published(now).all(|k| !old.contains(&k.kid)));
        assert!(!old.contains(&p.keys.signing_key(now).unwrap().kid));
        assert_invariants(&policy, &p.keys, now);
    }

    #[test]
    fn shorter_rotation_interval_applies_to_the_current_key_through_publish_ahead() {
        let mut policy = policy();
        policy.rotation_interval = Duration::hours(24);
        let mut g = gen();
        let p0 = plan(&KeySet::default(), &policy, t0(), false, &mut g);
        let first = p0.keys.signing_key(t0()).unwrap().kid.clone();
        policy.rotation_interval = Duration::seconds(40);
        let now = t0() + Duration::seconds(100);
        let p = plan(&p0.keys, &policy, now, false, &mut g);
        assert!(p.changed && !p.replaced_current);
        assert_invariants(&policy, &p.keys, now);
        let current = p.keys.signing_key(now).unwrap();
        assert_eq!(current.kid, first, "the current key keeps signing for now");
        assert_eq!(
            current.retire_at,
            now + policy.publish_lead,
            "but only until a successor is published long enough"
        );
        let later = now + Duration::seconds(60);
        let p2 = plan(&p.keys, &policy, later, false, &mut g);
        assert_ne!(p2.keys.signing_key(later).unwrap().kid, first);
        assert_invariants(&policy, &p2.keys, later);
    }

    #[test]
    fn algorithm_change_goes_through_publish_ahead() {
        let mut policy = policy();
        let mut g = gen();
        let p0 = plan(&KeySet::default(), &policy, t0(), false, &mut g);
        policy.algorithm = Algorithm::ES256;
        let now = t0() + Duration::seconds(5);
        let p = plan(&p0.keys, &policy, now, false, &mut g);
        assert!(
            !p.replaced_current,
            "the old key keeps signing until the new one is published long enough"
        );
        assert_eq!(p.keys.signing_key(now).unwrap().alg, Algorithm::EdDSA);
        let switch = now + policy.publish_lead;
        let new_signer = p.keys.signing_key(switch).unwrap();
        assert_eq!(new_signer.alg, Algorithm::ES256);
        assert!(new_signer.publish_at <= now);
        assert_invariants(&policy, &p.keys, now);
    }
}
