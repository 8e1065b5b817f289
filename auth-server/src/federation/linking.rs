//! Who a federated sign-in is, locally: the upstream's claims mapped to an identity, and the
//! linking decision (pure, see docs/decisions.md "Upstream federation"):
//!
//! 1. a link (upstream name, upstream subject) → local subject made by an earlier sign-in;
//! 2. else, when the upstream's policy is [`AccountLinking::VerifiedEmail`], the upstream says
//!    `email_verified: true` and exactly one local user has that email, verified too, that user;
//! 3. else a new local user named `<upstream>:<subject>`, without a password.
//!
//! An unverified email never links: whoever controls an upstream account could otherwise claim
//! any address and take over the local account that has it.

use crate::store::User;
use palisade_wire::contract::{AccountLinking, ClaimMapping};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Longest upstream subject accepted (OpenID Connect Core §2: at most 255 ASCII characters).
pub const MAX_SUBJECT_LEN: usize = 255;
/// Longest email kept (RFC 5321 path limit); a longer one is dropped.
pub const MAX_EMAIL_LEN: usize = 320;
/// Longest display name kept; a longer one is cut.
pub const MAX_NAME_LEN: usize = 256;

/// The user as the upstream describes them, after claim mapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamIdentity {
    pub subject: String,
    pub email: Option<String>,
    /// The upstream's `email_verified` (a JSON `true` or the string `"true"`).
    pub email_verified: bool,
    pub name: Option<String>,
}

fn text<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    claims
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && !s.contains('\0'))
}

/// Maps verified ID-token claims to an identity; `Err` names what is missing or unusable.
pub fn map_claims(
    mapping: &ClaimMapping,
    claims: &Map<String, Value>,
) -> Result<UpstreamIdentity, String> {
    let subject = text(claims, &mapping.subject)
        .ok_or_else(|| format!("claim {} is missing or not a string", mapping.subject))?;
    if subject.len() > MAX_SUBJECT_LEN {
        return Err(format!("claim {} is too long", mapping.subject));
    }
    let email = text(claims, &mapping.email)
        .filter(|e| e.len() <= MAX_EMAIL_LEN && e.contains('@'))
        .map(str::to_string);
    let verified_claim = match claims.get("email_verified") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => false,
    };
    // `email_verified` vouches for the standard `email` claim only: an address mapped from
    // another claim (a username the user may edit, say) is never taken as verified.
    let email_verified = email.is_some() && verified_claim && mapping.email == "email";
    let name = text(claims, &mapping.name).map(|n| n.chars().take(MAX_NAME_LEN).collect());
    Ok(UpstreamIdentity {
        subject: subject.to_string(),
        email,
        email_verified,
        name,
    })
}

/// What a federated sign-in signs in as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Link {
    /// The local user this upstream subject was linked to before (their `sub`).
    Existing(String),
    /// An existing local user matched by verified email, to be linked now.
    ByEmail(User),
    /// Nobody yet: create a user and link it.
    Create,
}

/// The linking decision. `linked` is the local `sub` of an existing link, `same_email` the
/// local users whose email equals the upstream's (any case). Pure.
pub fn decide(
    policy: AccountLinking,
    identity: &UpstreamIdentity,
    linked: Option<&str>,
    same_email: &[User],
) -> Link {
    if let Some(sub) = linked {
        return Link::Existing(sub.to_string());
    }
    if policy != AccountLinking::VerifiedEmail || !identity.email_verified {
        return Link::Create;
    }
    let Some(email) = identity.email.as_deref() else {
        return Link::Create;
    };
    let mut candidates = same_email.iter().filter(|u| {
        u.email_verified
            && u.email
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case(email))
    });
    // Exactly one: two local users with one address is ambiguous, so neither is chosen.
    match (candidates.next(), candidates.next()) {
        (Some(u), None) => Link::ByEmail(u.clone()),
        _ => Link::Create,
    }
}

/// The username of a user created by upstream `upstream`: `<upstream>:<subject>`, or
/// `<upstream>:sha256:<hex>` when that would pass the 256-byte username limit.
pub fn new_username(upstream: &str, subject: &str) -> String {
    let plain = format!("{upstream}:{subject}");
    if plain.len() <= crate::endpoints::login::MAX_USERNAME_LEN {
        plain
    } else {
        format!(
            "{upstream}:sha256:{}",
            hex::encode(Sha256::digest(subject.as_bytes()))
        )
    }
}

/// The local user created for `identity`: no password (federated sign-in only), the
/// upstream's email and name. The email counts as verified only when this upstream is trusted
/// for addresses (`policy` `VerifiedEmail`): otherwise an upstream that is not trusted to
/// link by email could still plant a "verified" address that a trusted one later links to.
pub fn new_user(
    upstream: &str,
    policy: AccountLinking,
    identity: &UpstreamIdentity,
    sub: String,
) -> User {
    User {
        username: new_username(upstream, &identity.subject),
        sub,
        password_hash: None,
        email: identity.email.clone(),
        email_verified: identity.email_verified && policy == AccountLinking::VerifiedEmail,
        name: identity.name.clone(),
        disabled: false,
        mfa_required: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn identity(email: &str, verified: bool) -> UpstreamIdentity {
        UpstreamIdentity {
            subject: "s-1".into(),
            email: Some(email.into()),
            email_verified: verified,
            name: None,
        }
    }

    fn local(username: &str, email: &str, verified: bool) -> User {
        User {
            username: username.into(),
            sub: format!("sub-{username}"),
            password_hash: None,
            email: Some(email.into()),
            email_verified: verified,
            name: None,
            disabled: false,
            mfa_required: false,
        }
    }

    #[test]
    fn default_mapping_reads_sub_email_and_name() {
        let id = map_claims(
            &ClaimMapping::default(),
            &claims(json!({"sub": "u1", "email": "a@x.io", "email_verified": true, "name": "A"})),
        )
        .unwrap();
        assert_eq!(
            id,
            UpstreamIdentity {
                subject: "u1".into(),
                email: Some("a@x.io".into()),
                email_verified: true,
                name: Some("A".into()),
            }
        );
    }

    #[test]
    fn custom_subject_claim_and_unverified_or_odd_emails() {
        let mapping = ClaimMapping {
            subject: "oid".into(),
            email: "upn".into(),
            name: "name".into(),
        };
        let id = map_claims(
            &mapping,
            &claims(json!({"sub": "pairwise", "oid": "o-9", "upn": "b@x.io"})),
        )
        .unwrap();
        assert_eq!(id.subject, "o-9");
        assert_eq!(id.email.as_deref(), Some("b@x.io"));
        assert!(!id.email_verified, "no email_verified claim → unverified");
        let mapped = map_claims(
            &mapping,
            &claims(json!({"oid": "o-9", "upn": "ceo@x.io", "email_verified": true})),
        )
        .unwrap();
        assert!(
            !mapped.email_verified,
            "email_verified vouches for `email`, not for an address mapped from another claim"
        );
        let stringly = map_claims(
            &ClaimMapping::default(),
            &claims(json!({"sub": "u", "email": "c@x.io", "email_verified": "true"})),
        )
        .unwrap();
        assert!(stringly.email_verified);
        let false_ = map_claims(
            &ClaimMapping::default(),
            &claims(json!({"sub": "u", "email": "c@x.io", "email_verified": false})),
        )
        .unwrap();
        assert!(!false_.email_verified);
        let no_at = map_claims(
            &ClaimMapping::default(),
            &claims(json!({"sub": "u", "email": "nope", "email_verified": true})),
        )
        .unwrap();
        assert_eq!(no_at.email, None);
        assert!(!no_at.email_verified, "no email, nothing verified");
        assert!(map_claims(&mapping, &claims(json!({"sub": "u"}))).is_err());
        assert!(map_claims(&ClaimMapping::default(), &claims(json!({"sub": 7}))).is_err());
        let long = "x".repeat(MAX_SUBJECT_LEN + 1);
        assert!(map_claims(&ClaimMapping::default(), &claims(json!({ "sub": long }))).is_err());
    }

    #[test]
    fn an_existing_link_wins_over_everything() {
        let users = [local("alice", "a@x.io", true)];
        assert_eq!(
            decide(
                AccountLinking::VerifiedEmail,
                &identity("a@x.io", true),
                Some("sub-linked"),
                &users
            ),
            Link::Existing("sub-linked".into())
        );
    }

    #[test]
    fn email_links_only_when_allowed_and_verified_on_both_sides() {
        let alice = local("alice", "Alice@X.io", true);
        let verified = identity("alice@x.io", true);
        assert_eq!(
            decide(
                AccountLinking::VerifiedEmail,
                &verified,
                None,
                std::slice::from_ref(&alice)
            ),
            Link::ByEmail(alice.clone())
        );
        assert_eq!(
            decide(
                AccountLinking::SubjectOnly,
                &verified,
                None,
                std::slice::from_ref(&alice)
            ),
            Link::Create,
            "policy forbids"
        );
        assert_eq!(
            decide(
                AccountLinking::VerifiedEmail,
                &identity("alice@x.io", false),
                None,
                std::slice::from_ref(&alice)
            ),
            Link::Create,
            "unverified upstream email"
        );
        assert_eq!(
            decide(
                AccountLinking::VerifiedEmail,
                &verified,
                None,
                &[local("alice", "alice@x.io", false)]
            ),
            Link::Create,
            "unverified local email"
        );
        assert_eq!(
            decide(
                AccountLinking::VerifiedEmail,
                &verified,
                None,
                &[alice.clone(), local("alice2", "alice@x.io", true)]
            ),
            Link::Create,
            "ambiguous"
        );
    }

    #[test]
    fn usernames_are_namespaced_by_upstream_and_bounded() {
        assert_eq!(new_username("google", "123"), "google:123");
        let long = new_username("google", &"s".repeat(255));
        assert!(long.starts_with("google:sha256:") && long.len() <= 256);
    }

    #[test]
    fn created_users_have_a_verified_email_only_from_upstreams_trusted_for_it() {
        let id = UpstreamIdentity {
            subject: "x".into(),
            email: Some("ceo@corp.example".into()),
            email_verified: true,
            name: None,
        };
        let untrusted = new_user("partner", AccountLinking::SubjectOnly, &id, "s1".into());
        assert!(!untrusted.email_verified);
        assert_eq!(untrusted.username, "partner:x");
        assert!(untrusted.password_hash.is_none());
        let trusted = new_user("google", AccountLinking::VerifiedEmail, &id, "s2".into());
        assert!(trusted.email_verified);
        // So the planted account is never a candidate for a trusted upstream's email link.
        assert_eq!(
            decide(AccountLinking::VerifiedEmail, &id, None, &[untrusted]),
            Link::Create
        );
    }
}
