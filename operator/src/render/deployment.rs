//! Deployment `x`: the auth-server pods, with restricted pod security, probes on `/healthz` and
//! `/readyz`, the key-set and internal Secrets mounted as files, and the database and Redis
//! URLs as environment variables taken from the user's Secrets.

use super::owner::Owner;
use super::secrets::{internal_secret_name, signing_keys_secret_name};
use super::service_account::render_service_account;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction,
    Lifecycle, LifecycleHandler, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, SeccompProfile, SecretKeySelector, SecretVolumeSource, SecurityContext,
    SleepAction, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use palisade_wire::contract::{self, env, ADMIN_PORT, PUBLIC_PORT};
use std::collections::BTreeMap;

pub use crate::rollout::revision::{revision_of, REVISION_ANNOTATION};
/// Non-root UID/GID of the auth-server image.
pub const RUN_AS_USER: i64 = 65532;

/// Token lifetimes in seconds, as the auth-server reads them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenTtls {
    pub access: u64,
    pub id: u64,
    pub refresh: u64,
    pub authorization_code: u64,
}

/// Everything that shapes the auth-server pods, reduced from the AuthProvider spec.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct PodInput {
    pub image: String,
    pub issuer: String,
    pub database_url: Option<SecretKeySelector>,
    pub redis_url: Option<SecretKeySelector>,
    pub ttls: Option<TokenTtls>,
    /// How long audit records are kept (`None`: the auth-server's default).
    pub audit_retention_seconds: Option<u64>,
    /// How client_credentials tokens are audited.
    pub audit_machine_tokens: palisade_wire::contract::MachineTokenAudit,
    pub rate_limits: palisade_wire::contract::RateLimits,
    pub resources: Option<ResourceRequirements>,
    pub node_selector: Option<BTreeMap<String, String>>,
    pub tolerations: Option<Vec<Toleration>>,
    pub affinity: Option<Affinity>,
    pub log_level: Option<String>,
    /// When the TOTP second factor is asked for.
    pub totp_policy: palisade_wire::contract::TotpPolicy,
    /// Upstream OpenID providers, each with the Secret key of its client secret.
    pub upstreams: Vec<UpstreamInput>,
}

/// An upstream provider as the pods get it: its settings (rendered into
/// [`env::UPSTREAMS`]) and its client secret's Secret key (a `secretKeyRef` variable).
#[derive(Clone, Debug, PartialEq)]
pub struct UpstreamInput {
    pub upstream: contract::Upstream,
    pub client_secret: SecretKeySelector,
}

/// The Deployment's own settings.
#[derive(Clone, Debug, PartialEq)]
pub struct DeploymentInput {
    /// `None` when an HPA owns the replica count.
    pub replicas: Option<i32>,
    pub progress_deadline_seconds: i32,
}

fn env_value(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        value_from: None,
    }
}

fn env_secret(name: &str, selector: &SecretKeySelector) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(selector.clone()),
            ..Default::default()
        }),
    }
}

/// How long a stopping auth-server pod keeps serving before SIGTERM.
pub const PRE_STOP_PAUSE_SECONDS: i64 = 5;

fn probe(path: &str, port: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String(port.into()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(2),
        ..Default::default()
    }
}

fn secret_volume(name: &str, secret: String) -> Volume {
    Volume {
        name: name.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret),
            default_mode: Some(0o440),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: Some(true),
        ..Default::default()
    }
}

/// The container's environment: the pod contract of [`palisade_wire::contract`].
pub fn render_env(input: &PodInput) -> Vec<EnvVar> {
    let mut vars = vec![
        env_value(env::ISSUER, input.issuer.clone()),
        env_value(env::PUBLIC_ADDR, format!("0.0.0.0:{PUBLIC_PORT}")),
        env_value(env::ADMIN_ADDR, format!("0.0.0.0:{ADMIN_PORT}")),
        env_value(
            env::KEYSET_FILE,
            format!(
                "{}/{}",
                contract::KEYSET_MOUNT_DIR,
                contract::KEYSET_SECRET_KEY
            ),
        ),
        env_value(env::INTERNAL_DIR, contract::INTERNAL_MOUNT_DIR),
        env_value(env::LOG_FORMAT, "json"),
        env_value(
            env::LOG_LEVEL,
            input.log_level.clone().unwrap_or_else(|| "info".into()),
        ),
        env_value(env::TOTP_POLICY, input.totp_policy.as_str()),
        env_value(
            env::RATE_LIMITS,
            serde_json::to_string(&input.rate_limits).expect("rate limits serialize"),
        ),
    ];
    if let Some(ttls) = &input.ttls {
        vars.push(env_value(env::ACCESS_TOKEN_TTL, ttls.access.to_string()));
        vars.push(env_value(env::ID_TOKEN_TTL, ttls.id.to_string()));
        vars.push(env_value(env::REFRESH_TOKEN_TTL, ttls.refresh.to_string()));
        vars.push(env_value(
            env::AUTHORIZATION_CODE_TTL,
            ttls.authorization_code.to_string(),
        ));
    }
    if let Some(retention) = input.audit_retention_seconds {
        vars.push(env_value(env::AUDIT_RETENTION, retention.to_string()));
    }
    vars.push(env_value(
        env::AUDIT_MACHINE_TOKENS,
        input.audit_machine_tokens.as_str(),
    ));
    if let Some(db) = &input.database_url {
        vars.push(env_secret(env::DATABASE_URL, db));
    }
    if let Some(redis) = &input.redis_url {
        vars.push(env_secret(env::REDIS_URL, redis));
    }
    if !input.upstreams.is_empty() {
        let list: Vec<&contract::Upstream> = input.upstreams.iter().map(|u| &u.upstream).collect();
        vars.push(env_value(
            env::UPSTREAMS,
            serde_json::to_string(&list).expect("upstreams serialize"),
        ));
        for u in &input.upstreams {
            vars.push(env_secret(
                &contract::upstream_secret_env(&u.upstream.name),
                &u.client_secret,
            ));
        }
    }
    vars
}

/// The restricted security context every container gets.
pub fn restricted_security_context() -> SecurityContext {
    SecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(RUN_AS_USER),
        run_as_group: Some(RUN_AS_USER),
        read_only_root_filesystem: Some(true),
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            add: None,
        }),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            localhost_profile: None,
        }),
        ..Default::default()
    }
}

/// The restricted pod-level security context.
pub fn restricted_pod_security_context() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(RUN_AS_USER),
        run_as_group: Some(RUN_AS_USER),
        fs_group: Some(RUN_AS_USER),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            localhost_profile: None,
        }),
        ..Default::default()
    }
}

/// Renders the pod template, annotated with its revision; returns the template and revision.
pub fn render_pod_template(owner: &Owner, input: &PodInput) -> (PodTemplateSpec, String) {
    let container = Container {
        name: "auth-server".into(),
        image: Some(input.image.clone()),
        args: Some(vec!["serve".into()]),
        ports: Some(vec![
            ContainerPort {
                name: Some("http".into()),
                container_port: PUBLIC_PORT.into(),
                protocol: Some("TCP".into()),
                ..Default::default()
            },
            ContainerPort {
                name: Some("admin".into()),
                container_port: ADMIN_PORT.into(),
                protocol: Some("TCP".into()),
                ..Default::default()
            },
        ]),
        env: Some(render_env(input)),
        liveness_probe: Some(probe("/healthz", "http", 10, 3)),
        readiness_probe: Some(probe("/readyz", "http", 5, 2)),
        // A stopping pod keeps serving while Services and Ingress controllers drop it, then
        // gets SIGTERM and finishes its requests in flight.
        lifecycle: Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                sleep: Some(SleepAction {
                    seconds: PRE_STOP_PAUSE_SECONDS,
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        resources: input.resources.clone(),
        security_context: Some(restricted_security_context()),
        volume_mounts: Some(vec![
            mount("signing-keys", contract::KEYSET_MOUNT_DIR),
            mount("internal", contract::INTERNAL_MOUNT_DIR),
        ]),
        ..Default::default()
    };
    let mut template = PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(owner.labels("auth-server")),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            service_account_name: render_service_account(owner).metadata.name,
            automount_service_account_token: Some(false),
            security_context: Some(restricted_pod_security_context()),
            containers: vec![container],
            volumes: Some(vec![
                secret_volume("signing-keys", signing_keys_secret_name(owner)),
                secret_volume("internal", internal_secret_name(owner)),
            ]),
            node_selector: input.node_selector.clone(),
            tolerations: input.tolerations.clone(),
            affinity: input.affinity.clone(),
            ..Default::default()
        }),
    };
    let revision = crate::rollout::revision::stamp(&mut template);
    (template, revision)
}

/// Renders the Deployment around an already rendered pod template.
pub fn render_deployment(
    owner: &Owner,
    input: &DeploymentInput,
    template: PodTemplateSpec,
) -> Deployment {
    Deployment {
        metadata: owner.meta(owner.name.clone(), "auth-server"),
        spec: Some(DeploymentSpec {
            replicas: input.replicas,
            selector: LabelSelector {
                match_labels: Some(owner.selector_labels()),
                ..Default::default()
            },
            progress_deadline_seconds: Some(input.progress_deadline_seconds),
            revision_history_limit: Some(5),
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                // Never drop below the desired count while a new revision proves itself.
                rolling_update: Some(RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString::Int(0)),
                    max_surge: Some(IntOrString::String("25%".into())),
                }),
            }),
            template,
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::owner::fixtures::owner;

    fn input() -> PodInput {
        PodInput {
            image: "ghcr.io/palisade/auth-server:0.1.0".into(),
            issuer: "https://id.example.com".into(),
            database_url: Some(SecretKeySelector {
                name: "pg-app".into(),
                key: "uri".into(),
                optional: None,
            }),
            redis_url: Some(SecretKeySelector {
                name: "redis".into(),
                key: "url".into(),
                optional: None,
            }),
            ttls: Some(TokenTtls {
                access: 900,
                id: 3600,
                refresh: 86400,
                authorization_code: 60,
            }),
            audit_retention_seconds: Some(7 * 86_400),
            audit_machine_tokens: palisade_wire::contract::MachineTokenAudit::PerToken,
            resources: Some(ResourceRequirements {
                limits: Some(BTreeMap::from([(
                    "memory".to_string(),
                    k8s_openapi::apimachinery::pkg::api::resource::Quantity("128Mi".into()),
                )])),
                ..Default::default()
            }),
            node_selector: Some(BTreeMap::from([("pool".to_string(), "auth".to_string())])),
            tolerations: Some(vec![Toleration {
                key: Some("dedicated".into()),
                operator: Some("Exists".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    fn render(input: &PodInput) -> Deployment {
        let (template, _) = render_pod_template(&owner(), input);
        render_deployment(
            &owner(),
            &DeploymentInput {
                replicas: Some(3),
                progress_deadline_seconds: 600,
            },
            template,
        )
    }

    fn container(d: &Deployment) -> &Container {
        &d.spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
    }

    #[test]
    fn pods_run_with_restricted_security() {
        let d = render(&input());
        let c = container(&d);
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.run_as_non_root, Some(true));
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(
            sc.capabilities.as_ref().unwrap().drop.as_deref(),
            Some(&["ALL".to_string()][..])
        );
        assert_eq!(sc.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
        let pod = d.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        assert_eq!(pod.automount_service_account_token, Some(false));
        assert_eq!(
            pod.security_context
                .as_ref()
                .unwrap()
                .seccomp_profile
                .as_ref()
                .unwrap()
                .type_,
            "RuntimeDefault"
        );
    }

    #[test]
    fn probes_ports_and_scheduling_follow_the_contract() {
        let d = render(&input());
        let c = container(&d);
        assert_eq!(
            c.lifecycle
                .as_ref()
                .and_then(|l| l.pre_stop.as_ref()?.sleep.as_ref())
                .map(|s| s.seconds),
            Some(PRE_STOP_PAUSE_SECONDS),
            "a stopping pod keeps serving while it is removed from the endpoints"
        );
        assert_eq!(
            c.liveness_probe
                .as_ref()
                .unwrap()
                .http_get
                .as_ref()
                .unwrap()
                .path
                .as_deref(),
            Some("/healthz")
        );
        assert_eq!(
            c.readiness_probe
                .as_ref()
                .unwrap()
                .http_get
                .as_ref()
                .unwrap()
                .path
                .as_deref(),
            Some("/readyz")
        );
        let ports: Vec<i32> = c
            .ports
            .as_ref()
            .unwrap()
            .iter()
            .map(|p| p.container_port)
            .collect();
        assert_eq!(ports, [8080, 8081]);
        assert_eq!(c.resources, input().resources);
        let pod = d.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        assert_eq!(pod.node_selector, input().node_selector);
        assert_eq!(pod.tolerations, input().tolerations);
        assert_eq!(d.spec.as_ref().unwrap().replicas, Some(3));
        assert_eq!(
            d.spec.as_ref().unwrap().progress_deadline_seconds,
            Some(600)
        );
    }

    #[test]
    fn secrets_are_mounted_as_files_and_urls_come_from_secret_refs() {
        let d = render(&input());
        let c = container(&d);
        let env = c.env.as_ref().unwrap();
        let db = env.iter().find(|e| e.name == "DATABASE_URL").unwrap();
        assert!(db.value.is_none(), "never inline the URL");
        let sel = db
            .value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap();
        assert_eq!((sel.name.as_str(), sel.key.as_str()), ("pg-app", "uri"));
        assert!(env.iter().any(|e| e.name == "REDIS_URL"));
        assert!(env
            .iter()
            .any(|e| e.name == "PALISADE_ACCESS_TOKEN_TTL_SECONDS"
                && e.value.as_deref() == Some("900")));
        assert!(env
            .iter()
            .any(|e| e.name == "PALISADE_AUDIT_RETENTION_SECONDS"
                && e.value.as_deref() == Some("604800")));
        assert!(env
            .iter()
            .any(|e| e.name == "PALISADE_AUDIT_MACHINE_TOKENS"
                && e.value.as_deref() == Some("PerToken")));
        let mounts: Vec<_> = c
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .map(|m| (m.mount_path.as_str(), m.read_only))
            .collect();
        assert_eq!(
            mounts,
            [
                ("/etc/palisade/keys", Some(true)),
                ("/etc/palisade/internal", Some(true))
            ]
        );
        let vols = d
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .volumes
            .as_ref()
            .unwrap();
        let secrets: Vec<_> = vols
            .iter()
            .map(|v| v.secret.as_ref().unwrap().secret_name.clone().unwrap())
            .collect();
        assert_eq!(secrets, ["dev-signing-keys", "dev-internal"]);
    }

    #[test]
    fn revision_changes_with_the_pod_template_only() {
        let (t1, r1) = render_pod_template(&owner(), &input());
        let (_, r1_again) = render_pod_template(&owner(), &input());
        assert_eq!(r1, r1_again, "stable hash");
        assert_eq!(revision_of(&t1), Some(r1.as_str()));
        let mut changed = input();
        changed.image = "ghcr.io/palisade/auth-server:0.2.0".into();
        let (_, r2) = render_pod_template(&owner(), &changed);
        assert_ne!(r1, r2);
        // Labels are the standard set on the pods too.
        assert_eq!(
            t1.metadata.unwrap().labels.unwrap()["app.kubernetes.io/managed-by"],
            "palisade-operator"
        );
    }

    #[test]
    fn upstreams_render_as_json_and_their_secrets_only_as_secret_refs() {
        let mut i = input();
        i.upstreams = vec![UpstreamInput {
            upstream: contract::Upstream {
                name: "entra-id".into(),
                display_name: "Microsoft".into(),
                issuer: "https://login.microsoftonline.com/t/v2.0".into(),
                client_id: "app-1".into(),
                scopes: contract::Upstream::default_scopes(),
                claims: contract::ClaimMapping {
                    subject: "oid".into(),
                    ..Default::default()
                },
                account_linking: contract::AccountLinking::VerifiedEmail,
            },
            client_secret: SecretKeySelector {
                name: "entra".into(),
                key: "client-secret".into(),
                optional: None,
            },
        }];
        let d = render(&i);
        let env = container(&d).env.clone().unwrap();
        let json = env
            .iter()
            .find(|e| e.name == env::UPSTREAMS)
            .and_then(|e| e.value.clone())
            .expect("PALISADE_UPSTREAMS");
        let parsed: Vec<contract::Upstream> = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed, vec![i.upstreams[0].upstream.clone()]);
        assert!(!json.contains("client-secret") && !json.contains("entra\""));
        let secret = env
            .iter()
            .find(|e| e.name == "PALISADE_UPSTREAM_CLIENT_SECRET_ENTRA_ID")
            .expect("the secret variable");
        assert_eq!(secret.value, None, "never a literal value");
        let r = secret
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref())
            .unwrap();
        assert_eq!(
            (r.name.as_str(), r.key.as_str()),
            ("entra", "client-secret")
        );
        // The upstream list shapes the pods: a change rolls them out.
        assert_ne!(
            render_pod_template(&owner(), &i).1,
            render_pod_template(&owner(), &input()).1
        );
        // Without upstreams nothing is rendered.
        let plain = render(&input());
        assert!(!container(&plain)
            .env
            .as_ref()
            .unwrap()
            .iter()
            .any(|e| e.name.starts_with("PALISADE_UPSTREAM")));
    }

    #[test]
    fn without_redis_no_redis_url_is_rendered() {
        let mut i = input();
        i.redis_url = None;
        let d = render(&i);
        assert!(!container(&d)
            .env
            .as_ref()
            .unwrap()
            .iter()
            .any(|e| e.name == "REDIS_URL"));
    }

    #[test]
    fn the_totp_policy_reaches_the_container_and_changes_the_revision() {
        use palisade_wire::contract::TotpPolicy;
        let env_of = |i: &PodInput| {
            container(&render(i))
                .env
                .as_ref()
                .unwrap()
                .iter()
                .find(|e| e.name == "PALISADE_TOTP_POLICY")
                .and_then(|e| e.value.clone())
        };
        let mut i = input();
        assert_eq!(env_of(&i).as_deref(), Some("Optional"), "the default");
        i.totp_policy = TotpPolicy::Required;
        assert_eq!(env_of(&i).as_deref(), Some("Required"));
        i.totp_policy = TotpPolicy::Disabled;
        assert_eq!(env_of(&i).as_deref(), Some("Disabled"));
        let (_, r1) = render_pod_template(&owner(), &input());
        let (_, r2) = render_pod_template(&owner(), &i);
        assert_ne!(r1, r2, "a policy change rolls the pods");
    }
}
