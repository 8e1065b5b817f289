//! Client of a provider's admin API: `PUT/DELETE /admin/clients/{client_id}` with the bearer
//! token from Secret `x-internal`.

use palisade_wire::contract::{ADMIN_CLIENTS_PATH, ADMIN_PORT};
use palisade_wire::registration::ClientRegistration;
use std::time::Duration;

/// Admin API failures.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("admin API at {url} unreachable: {source}")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("admin API at {url} answered {status}")]
    Status { url: String, status: u16 },
    /// The provider exists but its admin token is not known (its internal Secret is missing
    /// or being regenerated): its pods may still hold registrations, so this is retried.
    #[error("its admin token is not available yet")]
    NoToken,
}

impl AdminError {
    /// Whether the admin API refused the bearer token (401 or 403).
    pub fn refused_credentials(&self) -> bool {
        matches!(
            self,
            AdminError::Status {
                status: 401 | 403,
                ..
            }
        )
    }
}

/// The base URL of a provider's admin API: the override (with `{namespace}`/`{name}`
/// substituted) or the admin Service's cluster DNS name.
pub fn base_url(override_template: Option<&str>, namespace: &str, name: &str) -> String {
    match override_template {
        Some(t) => t
            .replace("{namespace}", namespace)
            .replace("{name}", name)
            .trim_end_matches('/')
            .to_string(),
        None => format!("http://{name}-admin.{namespace}.svc:{ADMIN_PORT}"),
    }
}

/// A small admin API client.
#[derive(Clone)]
pub struct AdminClient {
    http: reqwest::Client,
}

impl Default for AdminClient {
    fn default() -> Self {
        AdminClient {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("HTTP client builds"),
        }
    }
}

impl AdminClient {
    fn url(base: &str, client_id: &str) -> String {
        format!("{base}{ADMIN_CLIENTS_PATH}/{client_id}")
    }

    /// Sends an authenticated request and returns the response status.
    async fn send(req: reqwest::RequestBuilder, token: &str, url: &str) -> Result<u16, AdminError> {
        let resp =
            req.bearer_auth(token)
                .send()
                .await
                .map_err(|source| AdminError::Unreachable {
                    url: url.to_string(),
                    source,
                })?;
        Ok(resp.status().as_u16())
    }

    /// Registers (or re-registers, idempotently) a client.
    pub async fn put_client(
        &self,
        base: &str,
        token: &str,
        reg: &ClientRegistration,
    ) -> Result<(), AdminError> {
        let url = Self::url(base, &reg.client_id);
        let status = Self::send(self.http.put(&url).json(reg), token, &url).await?;
        match status {
            200..=299 => Ok(()),
            status => Err(AdminError::Status { url, status }),
        }
    }

    /// Deregisters a client; an unknown client counts as done.
    pub async fn delete_client(
        &self,
        base: &str,
        token: &str,
        client_id: &str,
    ) -> Result<(), AdminError> {
        let url = Self::url(base, client_id);
        match Self::send(self.http.delete(&url), token, &url).await? {
            200..=299 | 404 => Ok(()),
            status => Err(AdminError::Status { url, status }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_uses_override_template_or_admin_service() {
        assert_eq!(
            base_url(None, "auth", "dev"),
            "http://dev-admin.auth.svc:8081"
        );
        assert_eq!(
            base_url(Some("http://127.0.0.1:18081/"), "auth", "dev"),
            "http://127.0.0.1:18081"
        );
        assert_eq!(
            base_url(Some("http://127.0.0.1:9/{namespace}/{name}"), "auth", "dev"),
            "http://127.0.0.1:9/auth/dev"
        );
    }
}
