//! Where a client is registered. The status names the AuthProvider that holds the client's
//! registration (`status.registeredWith`, `<namespace>/<name>`), so that a client moved to
//! another provider, or refused by its provider's `clientNamespaces`, is deregistered where it
//! was: its credentials work only at the provider its OAuthClient names.

use crate::crd::OAuthClientStatus;

/// The `registeredWith` form of an AuthProvider's namespace and name.
pub fn provider_key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// The namespace and name in a `registeredWith` value.
pub fn split_key(key: &str) -> Option<(&str, &str)> {
    key.split_once('/')
}

/// The AuthProvider holding the registration, as `status` tells it, while the client is being
/// kept in sync. Statuses written before `registeredWith` existed name none; a client with a
/// client ID that its provider had not refused may be registered with the provider its spec
/// names (`spec_provider`).
pub fn held_by(status: &OAuthClientStatus, spec_provider: &str) -> Option<String> {
    if status.registered_with.is_some() {
        return status.registered_with.clone();
    }
    let refused = status
        .conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.reason == "NamespaceNotAllowed");
    (status.client_id.is_some() && !refused).then(|| spec_provider.to_string())
}

/// The provider to deregister from when deleting the client: the one holding the registration,
/// or, when the status names none, the one its spec names (deregistering a client that is not
/// registered is harmless).
pub fn deregister_at(status: &OAuthClientStatus, spec_provider: &str) -> Option<String> {
    status.client_id.as_ref()?;
    Some(
        status
            .registered_with
            .clone()
            .unwrap_or_else(|| spec_provider.to_string()),
    )
}

/// The provider to deregister from before registering with `target`: the one holding the
/// registration, when it is another.
pub fn to_leave(held: Option<&str>, target: &str) -> Option<String> {
    held.filter(|h| *h != target).map(String::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::status::{merge, Verdict};

    fn status(
        client_id: Option<&str>,
        registered_with: Option<&str>,
        ready: Option<&'static str>,
    ) -> OAuthClientStatus {
        let verdicts: Vec<Verdict> = ready
            .map(|reason| Verdict {
                type_: "Ready",
                ok: reason == "Registered",
                reason,
                message: String::new(),
            })
            .into_iter()
            .collect();
        OAuthClientStatus {
            client_id: client_id.map(String::from),
            registered_with: registered_with.map(String::from),
            conditions: merge(&[], &verdicts, None, chrono::Utc::now()),
            ..Default::default()
        }
    }

    #[test]
    fn the_recorded_provider_holds_the_registration() {
        let s = status(Some("id"), Some("a/old"), Some("Registered"));
        assert_eq!(held_by(&s, "a/new").as_deref(), Some("a/old"));
        assert_eq!(
            to_leave(held_by(&s, "a/new").as_deref(), "a/new").as_deref(),
            Some("a/old")
        );
        assert_eq!(to_leave(Some("a/new"), "a/new"), None);
        assert_eq!(deregister_at(&s, "a/new").as_deref(), Some("a/old"));
    }

    #[test]
    fn a_status_from_before_the_field_means_the_spec_provider() {
        let s = status(Some("id"), None, Some("Registered"));
        assert_eq!(held_by(&s, "a/p").as_deref(), Some("a/p"));
        let waiting = status(Some("id"), None, Some("ProviderUnavailable"));
        assert_eq!(held_by(&waiting, "a/p").as_deref(), Some("a/p"));
    }

    #[test]
    fn a_refused_or_new_client_is_registered_nowhere() {
        let refused = status(Some("id"), None, Some("NamespaceNotAllowed"));
        assert_eq!(held_by(&refused, "a/p"), None);
        assert_eq!(
            deregister_at(&refused, "a/p").as_deref(),
            Some("a/p"),
            "deletion still makes sure"
        );
        let new = status(None, None, None);
        assert_eq!(held_by(&new, "a/p"), None);
        assert_eq!(deregister_at(&new, "a/p"), None);
    }

    #[test]
    fn keys_round_trip() {
        assert_eq!(
            split_key(&provider_key("auth", "dev")),
            Some(("auth", "dev"))
        );
    }
}
