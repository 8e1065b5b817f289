//! When the key step may skip reading the signing-key Secret: the Secret cache holds no values
//! (see `trim`), so deciding on the key set needs a GET, once per AuthProvider reconcile. But
//! the schedule (`crate::keys::schedule::plan`) changes nothing between the instants written
//! in the key set: when it found nothing to do at one version of the Secret, it finds nothing
//! to do at that version, under the same policy and with no emergency request, until the set's
//! next instant (a key published, activated, retired or deleted). Within that window the
//! answer it gave is still the answer, and the cached copy's resourceVersion tells whether the
//! Secret is still at that version.
//!
//! Only the answer is kept (the signer's kid and instants), never the keys. Entries of deleted
//! providers stay (a few hundred bytes each); a provider created again under the same name has
//! a new Secret with another resourceVersion, which does not match.

use super::keys::KeysOutcome;
use crate::keys::schedule::Policy;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Mutex;

/// The key step's answer for one version of a key Secret, valid until its `next_wake`.
#[derive(Clone, Debug)]
pub struct Settled {
    resource_version: String,
    policy: Policy,
    outcome: KeysOutcome,
}

impl Settled {
    /// The answer `outcome`, which wrote nothing, for the Secret at `resource_version`.
    pub fn new(resource_version: String, policy: Policy, outcome: &KeysOutcome) -> Self {
        Settled {
            resource_version,
            policy,
            outcome: outcome.clone(),
        }
    }

    /// The answer again, if it holds for the Secret at `cached_version` under `policy` at
    /// `now` with no emergency request.
    pub fn answer(
        &self,
        cached_version: Option<&str>,
        policy: &Policy,
        emergency: bool,
        now: DateTime<Utc>,
    ) -> Option<KeysOutcome> {
        let holds = !emergency
            && cached_version == Some(self.resource_version.as_str())
            && *policy == self.policy
            && now < self.outcome.next_wake;
        holds.then(|| self.outcome.clone())
    }
}

/// Settled answers by namespace and key Secret name.
#[derive(Default)]
pub struct SettledKeys {
    by_name: Mutex<HashMap<(String, String), Settled>>,
}

impl SettledKeys {
    /// The settled answer for `namespace/name`, if it holds (see [`Settled::answer`]).
    pub fn recall(
        &self,
        namespace: &str,
        name: &str,
        cached_version: Option<&str>,
        policy: &Policy,
        emergency: bool,
        now: DateTime<Utc>,
    ) -> Option<KeysOutcome> {
        let key = (namespace.to_string(), name.to_string());
        self.by_name
            .lock()
            .expect("lock")
            .get(&key)?
            .answer(cached_version, policy, emergency, now)
    }

    /// Keeps `settled` for `namespace/name`, or forgets what was kept (`None`: the Secret was
    /// just written, or its version is unknown).
    pub fn keep(&self, namespace: &str, name: &str, settled: Option<Settled>) {
        let key = (namespace.to_string(), name.to_string());
        let mut by_name = self.by_name.lock().expect("lock");
        match settled {
            Some(s) => {
                by_name.insert(key, s);
            }
            None => {
                by_name.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::schedule::plan;
    use chrono::Duration;
    use palisade_wire::keyset::{Algorithm, GeneratedKey, KeySet};

    fn policy() -> Policy {
        Policy {
            algorithm: Algorithm::ES256,
            rotation_interval: Duration::days(30),
            publish_lead: Duration::hours(24),
            max_token_ttl: Duration::hours(1),
        }
    }

    fn generate() -> impl FnMut(Algorithm) -> GeneratedKey {
        |alg| GeneratedKey::generate(alg).unwrap()
    }

    /// A key set in its steady state at `now`, and the step's answer for it.
    fn settled_at(now: DateTime<Utc>) -> (KeySet, KeysOutcome) {
        let first = plan(&KeySet::default(), &policy(), now, false, &mut generate()).keys;
        let steady = plan(&first, &policy(), now, false, &mut generate());
        assert!(!steady.changed, "a fresh set needs nothing more");
        let signer = steady.keys.signing_key(now).unwrap().clone();
        let outcome = KeysOutcome {
            active_kid: signer.kid,
            until: signer.retire_at,
            next_wake: steady.keys.next_change_after(now).unwrap(),
            written: false,
            emergency: false,
            active_since: signer.activate_at,
        };
        (steady.keys, outcome)
    }

    #[test]
    fn the_answer_holds_for_its_version_and_policy_until_the_next_instant() {
        let now = "2026-11-25T10:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let (_, outcome) = settled_at(now);
        let s = Settled::new("7".into(), policy(), &outcome);
        let later = outcome.next_wake - Duration::seconds(1);
        let again = s.answer(Some("7"), &policy(), false, later).unwrap();
        assert_eq!(again.active_kid, outcome.active_kid);
        assert_eq!(again.next_wake, outcome.next_wake);
        assert!(!again.written && !again.emergency);

        assert!(
            s.answer(Some("8"), &policy(), false, now).is_none(),
            "another version"
        );
        assert!(
            s.answer(None, &policy(), false, now).is_none(),
            "no cached copy"
        );
        assert!(
            s.answer(Some("7"), &policy(), true, now).is_none(),
            "an emergency"
        );
        let mut shorter = policy();
        shorter.rotation_interval = Duration::days(7);
        assert!(
            s.answer(Some("7"), &shorter, false, now).is_none(),
            "a new policy"
        );
        assert!(
            s.answer(Some("7"), &policy(), false, outcome.next_wake)
                .is_none(),
            "the next instant"
        );
    }

    #[test]
    fn within_the_window_the_schedule_itself_would_change_nothing() {
        // What makes the reuse exact: at any moment before the set's next instant, the
        // schedule leaves the set as it is and keeps the same signer.
        let now = "2026-11-25T10:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let (keys, outcome) = settled_at(now);
        let span = outcome.next_wake - now;
        for step in 1..=20 {
            let t = now + span * step / 21;
            let p = plan(&keys, &policy(), t, false, &mut generate());
            assert!(!p.changed, "changed at {t}");
            assert_eq!(keys.signing_key(t).unwrap().kid, outcome.active_kid);
        }
    }

    #[test]
    fn kept_answers_are_recalled_by_name_and_forgotten_after_a_write() {
        let now = "2026-11-25T10:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let (_, outcome) = settled_at(now);
        let kept = SettledKeys::default();
        kept.keep(
            "team",
            "dev-signing-keys",
            Some(Settled::new("7".into(), policy(), &outcome)),
        );
        let recall =
            |ns: &str| kept.recall(ns, "dev-signing-keys", Some("7"), &policy(), false, now);
        assert!(recall("team").is_some());
        assert!(recall("other").is_none());
        kept.keep("team", "dev-signing-keys", None);
        assert!(recall("team").is_none());
    }
}
