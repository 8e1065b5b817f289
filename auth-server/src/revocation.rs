//! Revoking everything an authorization grant issued, and whether an access token is revoked.
//!
//! A grant is the refresh-token family that a code exchange starts and each refresh continues.
//! A user's access tokens carry it as the `grant_id` claim, so revoking the grant (a refresh
//! token sent to `/revoke`, a replayed code, a reused refresh token) also ends the access
//! tokens minted under it at `/introspect` and `/userinfo` (RFC 7009 §2.1, RFC 6749 §4.1.2).
//! A grant's mark sits in the same list as single revoked tokens, under `grant:<id>`, so it is
//! cached and expires the same way.

use crate::config::Ttls;
use crate::store::{Store, StoreError};
use crate::tokens::AccessClaims;
use chrono::{DateTime, Duration, Utc};

/// The revocation-list entry of a grant. Token ids are base64url, so no `jti` can take this
/// form.
pub fn grant_key(grant_id: &str) -> String {
    format!("grant:{grant_id}")
}

/// Revokes a grant at `now`: its refresh tokens (including ones a racing use mints later) until
/// the last could expire, and its access tokens until the last has expired.
pub async fn revoke_grant(
    store: &dyn Store,
    grant_id: &str,
    ttls: &Ttls,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    store
        .revoke_family(grant_id, now + Duration::seconds(ttls.refresh as i64))
        .await?;
    store
        .revoke_jti(
            &grant_key(grant_id),
            now + Duration::seconds(ttls.access as i64),
        )
        .await
}

/// Whether an access token was revoked, by itself or with its grant.
pub async fn access_token_revoked(
    store: &dyn Store,
    claims: &AccessClaims,
) -> Result<bool, StoreError> {
    if store.is_revoked(&claims.jti).await? {
        return Ok(true);
    }
    match &claims.grant_id {
        Some(grant) => store.is_revoked(&grant_key(grant)).await,
        None => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    fn ttls() -> Ttls {
        Ttls {
            access: 300,
            id: 300,
            refresh: 3600,
            authorization_code: 60,
            session: 3600,
        }
    }

    fn user_token(jti: &str, grant: Option<&str>) -> AccessClaims {
        let mut c = AccessClaims::for_user(
            "https://id.example",
            "app",
            "u",
            "openid".into(),
            jti.into(),
            Utc::now(),
            300,
        );
        c.grant_id = grant.map(str::to_string);
        c
    }

    #[tokio::test]
    async fn revoking_a_grant_revokes_its_access_tokens_and_refresh_family_only() {
        let store = MemoryStore::default();
        let now = Utc::now();
        let first = user_token("a1", Some("fam"));
        let refreshed = user_token("a2", Some("fam"));
        let other = user_token("b1", Some("other"));
        let machine = user_token("c1", None);
        for t in [&first, &refreshed, &other, &machine] {
            assert!(!access_token_revoked(&store, t).await.unwrap());
        }
        revoke_grant(&store, "fam", &ttls(), now).await.unwrap();
        assert!(access_token_revoked(&store, &first).await.unwrap());
        assert!(access_token_revoked(&store, &refreshed).await.unwrap());
        assert!(!access_token_revoked(&store, &other).await.unwrap());
        assert!(!access_token_revoked(&store, &machine).await.unwrap());
        assert!(store.is_family_revoked("fam").await.unwrap());
        assert!(!store.is_family_revoked("other").await.unwrap());
        // A single token is still revoked on its own.
        store
            .revoke_jti("c1", now + Duration::seconds(300))
            .await
            .unwrap();
        assert!(access_token_revoked(&store, &machine).await.unwrap());
    }
}
