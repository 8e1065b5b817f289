//! The custom resources: `AuthProvider` and `OAuthClient` (group `auth.palisade.dev`,
//! version `v1alpha1`). Doc comments here are user documentation (`kubectl explain`).

pub mod auth_provider;
pub mod duration;
pub mod oauth_client;

pub use auth_provider::{AuthProvider, AuthProviderSpec, AuthProviderStatus};
pub use oauth_client::{OAuthClient, OAuthClientSpec, OAuthClientStatus};

/// API group of Palisade's resources.
pub const GROUP: &str = "auth.palisade.dev";
