//! Reduces an AuthProvider spec to the plain inputs of the renderers. Pure: the operator's
//! configuration is passed in; no I/O.

use crate::crd::auth_provider::{AuthProviderSpec, RateLimit, SecretKeyRef, UpstreamProvider};
use crate::crd::duration;
use crate::keys::schedule::Policy;
use crate::render::deployment::{DeploymentInput, PodInput, TokenTtls, UpstreamInput};
use crate::render::hpa::AutoscalingInput;
use crate::render::ingress::IngressInput;
use k8s_openapi::api::core::v1::SecretKeySelector;
use palisade_wire::contract;
use std::time::Duration;

/// How many replicas the provider may run, and why it is limited if it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scale {
    /// Fixed replicas for the Deployment (`None` when an HPA owns the count).
    pub replicas: Option<i32>,
    /// Autoscaler, when one is wanted and allowed.
    pub autoscaling: Option<AutoscalingInput>,
    /// The most pods that can run (decides the PDB).
    pub max_replicas: i32,
    /// Set when the spec asked for more than one replica but Redis is not configured.
    pub limited_without_redis: bool,
}

/// Decides the replica count: without Redis, one replica and no autoscaler.
pub fn scale(spec: &AuthProviderSpec) -> Scale {
    let wants_many = spec
        .autoscaling
        .as_ref()
        .map(|a| a.max_replicas > 1)
        .unwrap_or(spec.replicas > 1);
    if spec.redis.is_none() {
        return Scale {
            replicas: Some(1),
            autoscaling: None,
            max_replicas: 1,
            limited_without_redis: wants_many,
        };
    }
    match &spec.autoscaling {
        Some(a) => Scale {
            replicas: None,
            autoscaling: Some(AutoscalingInput {
                min_replicas: a.min_replicas,
                max_replicas: a.max_replicas,
                target_cpu_percent: a.target_cpu_utilization_percentage,
                target_memory_percent: a.target_memory_utilization_percentage,
            }),
            max_replicas: a.max_replicas,
            limited_without_redis: false,
        },
        None => Scale {
            replicas: Some(spec.replicas),
            autoscaling: None,
            max_replicas: spec.replicas,
            limited_without_redis: false,
        },
    }
}

fn selector(r: &SecretKeyRef) -> SecretKeySelector {
    SecretKeySelector {
        name: r.name.clone(),
        key: r.key.clone(),
        optional: None,
    }
}

fn secs(text: &str, default: u64) -> u64 {
    duration::parse_or(text, Duration::from_secs(default)).as_secs()
}

/// Token lifetimes in seconds.
pub fn token_ttls(spec: &AuthProviderSpec) -> TokenTtls {
    TokenTtls {
        access: secs(&spec.tokens.access_token_ttl, 900),
        id: secs(&spec.tokens.id_token_ttl, 3600),
        refresh: secs(&spec.tokens.refresh_token_ttl, 720 * 3600),
        authorization_code: secs(&spec.tokens.authorization_code_ttl, 60),
    }
}

fn rate_limit(r: &Option<RateLimit>) -> Option<contract::RateLimit> {
    r.map(|r| contract::RateLimit {
        requests_per_minute: r.requests_per_minute,
        burst: r.burst,
    })
}

/// Everything that shapes the pods. `default_image` is the operator's configured image.
pub fn pod_input(spec: &AuthProviderSpec, default_image: &str) -> PodInput {
    let rl = &spec.rate_limits;
    PodInput {
        image: spec
            .image
            .clone()
            .unwrap_or_else(|| default_image.to_string()),
        issuer: spec.issuer.clone(),
        database_url: Some(selector(&spec.database.url_secret_ref)),
        redis_url: spec.redis.as_ref().map(|r| selector(&r.url_secret_ref)),
        ttls: Some(token_ttls(spec)),
        audit_retention_seconds: Some(secs(&spec.audit.retention, 720 * 3600)),
        audit_machine_tokens: spec.audit.machine_tokens,
        rate_limits: contract::RateLimits {
            authorize: rate_limit(&rl.authorize),
            token: rate_limit(&rl.token),
            userinfo: rate_limit(&rl.userinfo),
            introspect: rate_limit(&rl.introspect),
            revoke: rate_limit(&rl.revoke),
            mfa: rate_limit(&rl.mfa),
            trusted_proxies: rl.trusted_proxies.iter().map(|p| p.0.clone()).collect(),
        },
        resources: spec.resources.clone(),
        node_selector: spec.node_selector.clone(),
        tolerations: spec.tolerations.clone(),
        affinity: spec.affinity.clone(),
        log_level: spec.log_level.map(|l| l.as_str().to_string()),
        totp_policy: spec.mfa.totp,
        upstreams: spec.upstreams.iter().map(upstream_input).collect(),
    }
}

/// One upstream as the pods get it.
fn upstream_input(u: &UpstreamProvider) -> UpstreamInput {
    UpstreamInput {
        upstream: contract::Upstream {
            name: u.name.clone(),
            display_name: u.display_name.clone(),
            issuer: u.issuer.clone(),
            client_id: u.client_id.clone(),
            scopes: u.scopes.iter().map(|s| s.0.clone()).collect(),
            claims: contract::ClaimMapping {
                subject: u.claims.subject.clone(),
                email: u.claims.email.clone(),
                name: u.claims.name.clone(),
            },
            account_linking: u.account_linking,
        },
        client_secret: selector(&u.client_secret_ref),
    }
}

/// The Deployment's own settings.
pub fn deployment_input(spec: &AuthProviderSpec) -> DeploymentInput {
    DeploymentInput {
        replicas: scale(spec).replicas,
        progress_deadline_seconds: spec.rollout.progress_deadline_seconds,
    }
}

/// The Ingress, when one is wanted.
pub fn ingress_input(spec: &AuthProviderSpec) -> Option<IngressInput> {
    spec.ingress.as_ref().map(|i| IngressInput {
        host: i.host.clone(),
        class_name: i.class_name.clone(),
        annotations: i.annotations.clone().unwrap_or_default(),
        tls_secret_name: i.tls.as_ref().and_then(|t| t.secret_name.clone()),
        cluster_issuer: i.tls.as_ref().and_then(|t| t.cluster_issuer.clone()),
    })
}

/// The key rotation policy.
pub fn key_policy(spec: &AuthProviderSpec) -> Policy {
    let ttls = token_ttls(spec);
    let chrono = |d: Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
    Policy {
        algorithm: spec.signing_keys.algorithm,
        rotation_interval: chrono(duration::parse_or(
            &spec.signing_keys.rotation_interval,
            Duration::from_secs(720 * 3600),
        )),
        publish_lead: chrono(duration::parse_or(
            &spec.signing_keys.publish_lead,
            Duration::from_secs(24 * 3600),
        )),
        max_token_ttl: chrono::Duration::seconds(ttls.access.max(ttls.id) as i64),
    }
}

/// The issuer's discovery URL.
pub fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

/// The redirect URI to register at each upstream, in `spec.upstreams` order:
/// `<issuer>/upstream/<name>/callback`.
pub fn upstream_redirect_uris(spec: &AuthProviderSpec) -> Vec<String> {
    spec.upstreams
        .iter()
        .map(|u| {
            format!(
                "{}{}",
                spec.issuer.trim_end_matches('/'),
                contract::upstream_callback_path(&u.name)
            )
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::crd::auth_provider::*;

    pub fn spec() -> AuthProviderSpec {
        serde_json::from_value(serde_json::json!({
            "issuer": "https://id.example.com",
            "database": {"urlSecretRef": {"name": "pg", "key": "uri"}},
            "redis": {"urlSecretRef": {"name": "redis", "key": "url"}},
        }))
        .unwrap()
    }

    #[test]
    fn upstreams_reach_the_pods_and_their_redirect_uris_the_status() {
        let mut spec = spec();
        spec.issuer = "https://id.example.com/realm/".into();
        spec.upstreams = serde_json::from_value(serde_json::json!([
            {"name": "google", "displayName": "Google", "issuer": "https://accounts.google.com",
             "clientId": "g", "clientSecretRef": {"name": "oidc", "key": "google"}},
            {"name": "entra", "displayName": "Microsoft", "issuer": "https://login.microsoftonline.com/t/v2.0",
             "clientId": "e", "clientSecretRef": {"name": "oidc", "key": "entra"},
             "claims": {"subject": "oid"}, "accountLinking": "VerifiedEmail"},
        ]))
        .unwrap();
        assert_eq!(
            upstream_redirect_uris(&spec),
            [
                "https://id.example.com/realm/upstream/google/callback",
                "https://id.example.com/realm/upstream/entra/callback"
            ]
        );
        let pods = pod_input(&spec, "img");
        assert_eq!(pods.upstreams.len(), 2);
        let entra = &pods.upstreams[1];
        assert_eq!(entra.upstream.claims.subject, "oid");
        assert_eq!(entra.upstream.claims.email, "email");
        assert_eq!(
            entra.upstream.account_linking,
            contract::AccountLinking::VerifiedEmail
        );
        assert_eq!(entra.upstream.scopes, ["openid", "email", "profile"]);
        assert_eq!(
            (
                entra.client_secret.name.as_str(),
                entra.client_secret.key.as_str()
            ),
            ("oidc", "entra")
        );
    }

    #[test]
    fn defaults_give_two_replicas_with_redis() {
        let s = scale(&spec());
        assert_eq!(s.replicas, Some(2));
        assert!(!s.limited_without_redis);
        assert_eq!(s.max_replicas, 2);
    }

    #[test]
    fn without_redis_replicas_are_forced_to_one_and_the_reason_is_kept() {
        let mut spec = spec();
        spec.redis = None;
        spec.autoscaling = Some(Autoscaling {
            min_replicas: 3,
            max_replicas: 20,
            target_cpu_utilization_percentage: None,
            target_memory_utilization_percentage: None,
        });
        let s = scale(&spec);
        assert_eq!(s.replicas, Some(1));
        assert!(s.autoscaling.is_none());
        assert!(s.limited_without_redis);
        spec.autoscaling = None;
        spec.replicas = 1;
        assert!(
            !scale(&spec).limited_without_redis,
            "one replica asked, nothing to explain"
        );
    }

    #[test]
    fn autoscaling_leaves_replicas_to_the_hpa() {
        let mut spec = spec();
        spec.autoscaling = Some(Autoscaling {
            min_replicas: 3,
            max_replicas: 20,
            target_cpu_utilization_percentage: Some(70),
            target_memory_utilization_percentage: None,
        });
        let s = scale(&spec);
        assert_eq!(s.replicas, None);
        assert_eq!(s.autoscaling.unwrap().max_replicas, 20);
        assert_eq!(deployment_input(&spec).replicas, None);
    }

    #[test]
    fn pod_input_uses_default_image_ttls_and_secret_refs() {
        let p = pod_input(&spec(), "palisade/auth-server:1.0");
        assert_eq!(p.image, "palisade/auth-server:1.0");
        assert_eq!(
            p.ttls,
            Some(TokenTtls {
                access: 900,
                id: 3600,
                refresh: 2_592_000,
                authorization_code: 60
            })
        );
        assert_eq!(p.database_url.unwrap().key, "uri");
        assert_eq!(p.audit_retention_seconds, Some(30 * 86_400), "default 720h");
        let mut s = spec();
        s.audit.retention = "2160h".into();
        assert_eq!(
            pod_input(&s, "img").audit_retention_seconds,
            Some(90 * 86_400)
        );
        let policy = key_policy(&spec());
        assert_eq!(policy.max_token_ttl, chrono::Duration::seconds(3600));
        assert_eq!(policy.publish_lead, chrono::Duration::hours(24));
        assert_eq!(
            discovery_url("https://a.example/x/"),
            "https://a.example/x/.well-known/openid-configuration"
        );
    }

    #[test]
    fn rate_limits_and_trusted_proxies_reach_the_pods() {
        let mut s = spec();
        s.rate_limits = serde_json::from_value(serde_json::json!({
            "token": {"requestsPerMinute": 600, "burst": 100},
            "trustedProxies": ["10.0.0.0/8", "192.0.2.7"],
        }))
        .unwrap();
        let rl = pod_input(&s, "img").rate_limits;
        assert_eq!(
            rl.token,
            Some(contract::RateLimit {
                requests_per_minute: 600,
                burst: 100
            })
        );
        assert_eq!(rl.authorize, None);
        assert_eq!(rl.trusted_proxies, ["10.0.0.0/8", "192.0.2.7"]);
    }

    #[test]
    fn the_mfa_policy_and_its_rate_limit_reach_the_pods() {
        use palisade_wire::contract::TotpPolicy;
        let mut s = spec();
        assert_eq!(pod_input(&s, "img").totp_policy, TotpPolicy::Optional);
        s.mfa = serde_json::from_value(serde_json::json!({"totp": "Required"})).unwrap();
        s.rate_limits = serde_json::from_value(serde_json::json!({
            "mfa": {"requestsPerMinute": 30, "burst": 5},
        }))
        .unwrap();
        let input = pod_input(&s, "img");
        assert_eq!(input.totp_policy, TotpPolicy::Required);
        assert_eq!(
            input.rate_limits.mfa,
            Some(contract::RateLimit {
                requests_per_minute: 30,
                burst: 5
            })
        );
        assert!(
            serde_json::from_value::<crate::crd::auth_provider::Mfa>(
                serde_json::json!({"totp": "required"})
            )
            .is_err(),
            "only the documented names"
        );
    }
}
