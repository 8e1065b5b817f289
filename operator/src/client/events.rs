//! Which changes of an OAuthClient's Ready condition are worth an Event: becoming registered,
//! losing a registration, and a refusal a person must fix (no such provider, namespace not
//! accepted). Waiting for a provider that is still starting is only a condition: it is what
//! every client applied together with its provider goes through.

use crate::provider::status::Verdict;
use kube::runtime::events::EventType;

/// Reasons that stay until someone changes the OAuthClient or its provider.
const NEEDS_A_PERSON: [&str; 3] = ["ProviderNotFound", "NamespaceNotAllowed", "SecretConflict"];

/// The Event for a Ready condition going from `was` (status, reason) to `verdict`, if any.
pub fn transition_event(was: Option<(&str, &str)>, verdict: &Verdict) -> Option<EventType> {
    let now = (if verdict.ok { "True" } else { "False" }, verdict.reason);
    if was == Some(now) {
        return None;
    }
    if verdict.ok {
        return Some(EventType::Normal);
    }
    let was_ready = was.is_some_and(|(status, _)| status == "True");
    (was_ready || NEEDS_A_PERSON.contains(&verdict.reason)).then_some(EventType::Warning)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(ok: bool, reason: &'static str) -> Verdict {
        Verdict {
            type_: "Ready",
            ok,
            reason,
            message: String::new(),
        }
    }

    #[test]
    fn only_transitions_a_person_cares_about_make_events() {
        let unavailable = v(false, "ProviderUnavailable");
        let registered = v(true, "Registered");
        // Applied together with its provider: waiting is quiet, registration is told.
        assert_eq!(transition_event(None, &unavailable), None);
        assert_eq!(
            transition_event(Some(("False", "ProviderUnavailable")), &registered),
            Some(EventType::Normal)
        );
        assert_eq!(transition_event(None, &registered), Some(EventType::Normal));
        // Nothing new: nothing told.
        assert_eq!(
            transition_event(Some(("True", "Registered")), &registered),
            None
        );
        // A registered client that loses its provider is told.
        assert_eq!(
            transition_event(Some(("True", "Registered")), &unavailable),
            Some(EventType::Warning)
        );
        // Refusals that need a fix are told once.
        for reason in NEEDS_A_PERSON {
            assert_eq!(
                transition_event(None, &v(false, reason)),
                Some(EventType::Warning)
            );
            assert_eq!(
                transition_event(Some(("False", "ProviderUnavailable")), &v(false, reason)),
                Some(EventType::Warning)
            );
            assert_eq!(
                transition_event(Some(("False", reason)), &v(false, reason)),
                None
            );
        }
    }
}
