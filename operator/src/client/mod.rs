//! The OAuthClient controller: `reconcile.rs` holds the steps; `policy.rs` decides whether a
//! namespace may use a provider; `credentials.rs` renders the application's Secret;
//! `admin.rs` talks to the provider's admin API; `known_credentials.rs` remembers the values of
//! the credentials Secrets by resourceVersion; `provider_changes.rs` decides which provider
//! changes wake its clients; `events.rs` which status changes are told as Events;
//! `registered_with.rs` which provider holds a client's registration.

pub mod admin;
pub mod credentials;
pub mod events;
pub mod known_credentials;
pub mod policy;
pub mod provider_changes;
pub mod reconcile;
pub mod registered_with;
