//! ServiceAccount `x` for the auth-server pods. The auth-server never talks to the API server,
//! so no token is mounted.

use super::owner::Owner;
use k8s_openapi::api::core::v1::ServiceAccount;

/// Renders the pods' ServiceAccount, with token automount off.
pub fn render_service_account(owner: &Owner) -> ServiceAccount {
    ServiceAccount {
        metadata: owner.meta(owner.name.clone(), "auth-server"),
        automount_service_account_token: Some(false),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::owner::fixtures::owner;

    #[test]
    fn service_account_does_not_automount_a_token() {
        let sa = render_service_account(&owner());
        assert_eq!(sa.automount_service_account_token, Some(false));
        assert_eq!(sa.metadata.name.as_deref(), Some("dev"));
    }
}
