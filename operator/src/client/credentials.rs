//! The application's Secret: `client_id`, `client_secret` (confidential clients only),
//! `issuer` and `discovery_url`, owned by the OAuthClient.

use crate::crd::OAuthClient;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use kube::{Resource, ResourceExt};
use palisade_wire::registration::random_token;
use std::collections::BTreeMap;

/// Keys of the application's Secret.
pub const CLIENT_ID_KEY: &str = "client_id";
pub const CLIENT_SECRET_KEY: &str = "client_secret";
pub const ISSUER_KEY: &str = "issuer";
pub const DISCOVERY_URL_KEY: &str = "discovery_url";

/// A client's credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub client_id: String,
    pub client_secret: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// Name of the credentials Secret (`spec.secretName`, default `<name>-oauth`).
pub fn secret_name(client: &OAuthClient) -> String {
    client
        .spec
        .secret_name
        .clone()
        .unwrap_or_else(|| format!("{}-oauth", client.name_any()))
}

/// Generates a client ID: readable prefix from the namespace and name, plus randomness so IDs
/// never collide across re-creations.
pub fn new_client_id(namespace: &str, name: &str) -> String {
    let mut id = format!("{namespace}-{name}");
    id.truncate(80);
    format!("{id}-{}", &random_token(6)[..8])
        .to_lowercase()
        .replace('_', "x")
}

/// Whether `secret` belongs to the OAuthClient with `uid`: it names that client as its
/// controller. Only such a Secret is read or written: one created by someone else (an
/// application's own Secret, another OAuthClient's) is neither adopted nor trusted.
pub fn controlled_by(secret: &Secret, uid: &str) -> bool {
    secret
        .owner_references()
        .iter()
        .any(|r| r.controller == Some(true) && r.kind == "OAuthClient" && r.uid == uid)
}

/// Decides the credentials of a client whose Secret is `live` (one it controls, see
/// [`controlled_by`]): the client ID recorded in status wins, then the Secret's unless
/// `secret_id_taken` (another OAuthClient's status records it), and a new one for a client
/// that has neither. Status is written by the operator alone, so neither editing a Secret nor
/// forging one (its owner reference included) can point a client at another client's
/// registration. The Secret's ID counts only for a client whose status has none (one
/// restored from a backup without its status). A confidential client whose Secret lost
/// `client_secret` (or was deleted) gets a new secret — that is how a user rotates it.
pub fn decide(
    live: Option<&Secret>,
    known_id: Option<&str>,
    secret_id_taken: bool,
    public: bool,
    namespace: &str,
    name: &str,
) -> Credentials {
    let get = |key: &str| live.and_then(|s| value(s, key));
    let client_id = known_id
        .map(String::from)
        .or_else(|| get(CLIENT_ID_KEY).filter(|_| !secret_id_taken))
        .unwrap_or_else(|| new_client_id(namespace, name));
    let client_secret = if public {
        None
    } else {
        Some(get(CLIENT_SECRET_KEY).unwrap_or_else(|| random_token(32)))
    };
    Credentials {
        client_id,
        client_secret,
    }
}

/// The client ID `secret` holds, if any.
pub fn client_id_in(secret: &Secret) -> Option<String> {
    value(secret, CLIENT_ID_KEY)
}

/// A non-empty value of `secret`.
fn value(secret: &Secret, key: &str) -> Option<String> {
    secret
        .data
        .as_ref()?
        .get(key)
        .and_then(|b| String::from_utf8(b.0.clone()).ok())
        .filter(|v| !v.is_empty())
}

/// Whether `live` says another client ID than the decided one (someone edited it): it is
/// written back even though the operator's own content did not change.
pub fn id_edited(live: &Secret, credentials: &Credentials) -> bool {
    value(live, CLIENT_ID_KEY).as_deref() != Some(credentials.client_id.as_str())
}

/// Renders the Secret for `client` with `credentials`.
pub fn render(
    client: &OAuthClient,
    credentials: &Credentials,
    issuer: &str,
    discovery_url: &str,
) -> Option<Secret> {
    let mut data = BTreeMap::from([
        (
            CLIENT_ID_KEY.to_string(),
            ByteString(credentials.client_id.clone().into_bytes()),
        ),
        (
            ISSUER_KEY.to_string(),
            ByteString(issuer.as_bytes().to_vec()),
        ),
        (
            DISCOVERY_URL_KEY.to_string(),
            ByteString(discovery_url.as_bytes().to_vec()),
        ),
    ]);
    if let Some(secret) = &credentials.client_secret {
        data.insert(
            CLIENT_SECRET_KEY.to_string(),
            ByteString(secret.clone().into_bytes()),
        );
    }
    Some(Secret {
        metadata: ObjectMeta {
            name: Some(secret_name(client)),
            namespace: client.namespace(),
            labels: Some(BTreeMap::from([
                (
                    "app.kubernetes.io/managed-by".to_string(),
                    crate::render::owner::MANAGED_BY.to_string(),
                ),
                (
                    "app.kubernetes.io/component".to_string(),
                    "oauth-client".to_string(),
                ),
                ("app.kubernetes.io/instance".to_string(), client.name_any()),
            ])),
            owner_references: Some(vec![client.controller_owner_ref(&())?]),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(data),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret_with(pairs: &[(&str, &str)]) -> Secret {
        Secret {
            data: Some(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn existing_credentials_are_kept() {
        let live = secret_with(&[("client_id", "app-1"), ("client_secret", "s3cret")]);
        let c = decide(Some(&live), None, false, false, "ns", "app");
        assert_eq!(c.client_id, "app-1");
        assert_eq!(c.client_secret.as_deref(), Some("s3cret"));
    }

    #[test]
    fn the_id_in_status_wins_over_an_edited_secret() {
        let live = secret_with(&[("client_id", "victim-1"), ("client_secret", "s3cret")]);
        let c = decide(Some(&live), Some("app-1"), false, false, "ns", "app");
        assert_eq!(c.client_id, "app-1");
        assert_eq!(c.client_secret.as_deref(), Some("s3cret"));
    }

    #[test]
    fn an_id_another_client_holds_is_not_taken_from_the_secret() {
        // A forged Secret (owner reference and all) naming another client's ID, for a client
        // whose status records none yet.
        let live = secret_with(&[("client_id", "victim-1"), ("client_secret", "s3cret")]);
        let c = decide(Some(&live), None, true, false, "ns", "app");
        assert!(c.client_id.starts_with("ns-app-"), "{}", c.client_id);
        assert!(
            id_edited(&live, &c),
            "the Secret is rewritten with the new ID"
        );
        assert_eq!(client_id_in(&live).as_deref(), Some("victim-1"));
        assert_eq!(
            decide(Some(&live), Some("app-1"), true, false, "ns", "app").client_id,
            "app-1",
            "the recorded ID is the client's own whatever the Secret says"
        );
    }

    #[test]
    fn an_edited_id_is_noticed() {
        let live = secret_with(&[("client_id", "victim-1"), ("client_secret", "s3cret")]);
        let c = decide(Some(&live), Some("app-1"), false, false, "ns", "app");
        assert!(id_edited(&live, &c));
        let kept = decide(Some(&live), None, false, false, "ns", "app");
        assert!(!id_edited(&live, &kept));
    }

    #[test]
    fn only_a_secret_the_client_controls_is_its_own() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
        let owner = |kind: &str, uid: &str, controller: bool| OwnerReference {
            kind: kind.into(),
            uid: uid.into(),
            controller: Some(controller),
            ..Default::default()
        };
        let with = |refs: Vec<OwnerReference>| {
            let mut s = secret_with(&[]);
            s.metadata.owner_references = Some(refs);
            s
        };
        assert!(controlled_by(
            &with(vec![owner("OAuthClient", "u1", true)]),
            "u1"
        ));
        assert!(
            !controlled_by(&secret_with(&[]), "u1"),
            "created by someone else"
        );
        assert!(!controlled_by(
            &with(vec![owner("OAuthClient", "u2", true)]),
            "u1"
        ));
        assert!(!controlled_by(
            &with(vec![owner("OAuthClient", "u1", false)]),
            "u1"
        ));
        assert!(!controlled_by(
            &with(vec![owner("Deployment", "u1", true)]),
            "u1"
        ));
    }

    #[test]
    fn deleted_secret_rotates_the_secret_but_keeps_the_id() {
        let c = decide(None, Some("app-1"), false, false, "ns", "app");
        assert_eq!(c.client_id, "app-1");
        assert_eq!(c.client_secret.as_ref().unwrap().len(), 43);
    }

    #[test]
    fn public_clients_get_no_secret_and_new_ids_are_unique() {
        let a = decide(None, None, false, true, "team-a", "spa");
        let b = decide(None, None, false, true, "team-a", "spa");
        assert!(a.client_secret.is_none());
        assert!(a.client_id.starts_with("team-a-spa-"));
        assert_ne!(a.client_id, b.client_id);
        assert!(!format!("{a:?}").contains("secret\""));
    }
}
