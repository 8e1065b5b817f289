//! palisade-operator: runs the AuthProvider and OAuthClient controllers.

use axum::routing::get;
use axum::Router;
use clap::Parser;
use palisade_operator::context::{Config, Context};
use palisade_operator::controller::{self, Scope};
use palisade_operator::leader::{self, Election};
use palisade_operator::metrics::Metrics;
use palisade_operator::telemetry::{self, LogFormat};
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;

/// Flags (each also read from the environment).
#[derive(Parser, Debug)]
#[command(
    version,
    about = "Kubernetes operator that runs OpenID Connect providers"
)]
struct Args {
    /// auth-server image used when an AuthProvider sets none.
    #[arg(
        long,
        env = "PALISADE_AUTH_SERVER_IMAGE",
        default_value = "ghcr.io/palisade-dev/auth-server:0.1.0"
    )]
    auth_server_image: String,
    /// Watch only these namespaces: repeat the flag or separate them with commas (default:
    /// all namespaces).
    #[arg(long, env = "PALISADE_WATCH_NAMESPACE", value_delimiter = ',')]
    watch_namespace: Vec<String>,
    /// Namespace the operator runs in (allowed to reach auth-server admin ports).
    #[arg(
        long,
        env = "PALISADE_OPERATOR_NAMESPACE",
        default_value = "palisade-system"
    )]
    operator_namespace: String,
    /// Namespace of the Prometheus scraper, also allowed to reach admin ports.
    #[arg(long, env = "PALISADE_METRICS_NAMESPACE")]
    metrics_namespace: Option<String>,
    /// Admin API base URL to use instead of the provider's admin Service ({namespace} and
    /// {name} are substituted). For tests that reach auth-servers on 127.0.0.1.
    #[arg(long, env = "PALISADE_ADMIN_ENDPOINT_OVERRIDE")]
    admin_endpoint_override: Option<String>,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "PALISADE_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    http_addr: SocketAddr,
    /// Log format.
    #[arg(long, env = "PALISADE_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Log filter (RUST_LOG syntax).
    #[arg(long, env = "PALISADE_LOG_LEVEL", default_value = "info,kube=warn")]
    log_level: String,
    /// Run leader election on a Lease so only one replica reconciles.
    #[arg(long, env = "PALISADE_LEADER_ELECT", default_value_t = false)]
    leader_elect: bool,
    /// Name of the leader-election Lease.
    #[arg(long, env = "PALISADE_LEASE_NAME", default_value = "palisade-operator")]
    lease_name: String,
    /// This replica's identity in the election (default: the host name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Seconds between re-registrations of every OAuthClient (heals a wiped database).
    #[arg(long, env = "PALISADE_CLIENT_RESYNC_SECONDS", default_value_t = 300)]
    client_resync_seconds: u64,
    /// Objects reconciled at once per controller.
    #[arg(long, env = "PALISADE_CONCURRENCY", default_value_t = 8)]
    concurrency: u16,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    telemetry::init(args.log_format, &args.log_level);
    let metrics = Metrics::default();
    let client = counting_client(metrics.clone()).await?;

    let mut registry = Registry::default();
    metrics.register(&mut registry);
    let registry = Arc::new(registry);
    let ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
    serve_http(args.http_addr, registry, ready.clone()).await?;

    let identity = args
        .identity
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| format!("palisade-operator-{}", std::process::id()));
    let lost_leadership = if args.leader_elect {
        let election = Election {
            lease_name: args.lease_name.clone(),
            namespace: args.operator_namespace.clone(),
            identity: identity.clone(),
        };
        Some(leader::acquire(client.clone(), election).await?)
    } else {
        None
    };
    metrics.leader.set(1);
    ready.store(true, std::sync::atomic::Ordering::Relaxed);

    let scopes = watch_scopes(args.watch_namespace);
    let config = Config {
        auth_server_image: args.auth_server_image,
        operator_namespace: args.operator_namespace,
        metrics_namespace: args.metrics_namespace,
        admin_endpoint_override: args.admin_endpoint_override,
        client_resync: std::time::Duration::from_secs(args.client_resync_seconds),
        streaming_lists: controller::supports_streaming_lists(&client, &scopes[0]).await,
    };
    let ctx = Arc::new(Context::new(client, metrics, config, Some(identity)));
    let controllers = futures::future::join_all(scopes.into_iter().map(|scope| {
        let ctx = ctx.clone();
        async move {
            tokio::join!(
                controller::run_auth_providers(ctx.clone(), scope.clone(), args.concurrency),
                controller::run_oauth_clients(ctx, scope, args.concurrency),
            );
        }
    }));
    match lost_leadership {
        Some(channel) => tokio::select! {
            _ = controllers => {}
            _ = leader::lost(channel) => {
                tracing::error!("lost the leader lease; exiting so that only one replica writes");
                std::process::exit(1);
            }
        },
        None => {
            controllers.await;
        }
    }
    Ok(())
}

/// The API client, with every request it sends counted in the metrics.
async fn counting_client(metrics: Metrics) -> anyhow::Result<kube::Client> {
    let config = kube::Config::infer().await?;
    let count =
        tower::util::MapRequestLayer::new(move |request: http::Request<kube::client::Body>| {
            metrics.count_request(
                request.method().as_str(),
                request.uri().path(),
                request.uri().query(),
            );
            request
        });
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(&count)
        .build())
}

/// One controller scope per watched namespace, or the whole cluster when none is named.
fn watch_scopes(namespaces: Vec<String>) -> Vec<Scope> {
    let mut namespaces: Vec<String> = namespaces
        .into_iter()
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .collect();
    namespaces.sort();
    namespaces.dedup();
    if namespaces.is_empty() {
        vec![Scope::All]
    } else {
        namespaces.into_iter().map(Scope::Namespace).collect()
    }
}

async fn serve_http(
    addr: SocketAddr,
    registry: Arc<Registry>,
    ready: Arc<std::sync::atomic::AtomicBool>,
) -> anyhow::Result<()> {
    let app = Router::new()
        .route(
            "/metrics",
            get(move || {
                let registry = registry.clone();
                async move {
                    let mut body = String::new();
                    match prometheus_client::encoding::text::encode(&mut body, &registry) {
                        Ok(()) => (
                            axum::http::StatusCode::OK,
                            [(
                                "content-type",
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            )],
                            body,
                        ),
                        Err(_) => (
                            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                            [("content-type", "text/plain")],
                            String::new(),
                        ),
                    }
                }
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let ready = ready.clone();
                async move {
                    if ready.load(std::sync::atomic::Ordering::Relaxed) {
                        (axum::http::StatusCode::OK, "ready")
                    } else {
                        (
                            axum::http::StatusCode::SERVICE_UNAVAILABLE,
                            "waiting for leadership",
                        )
                    }
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "HTTP server stopped");
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_namespace_takes_a_comma_list_or_repeats_and_defaults_to_all() {
        let args =
            Args::try_parse_from(["op", "--watch-namespace", "b,a", "--watch-namespace", "c,a"])
                .unwrap();
        let names: Vec<String> = watch_scopes(args.watch_namespace)
            .into_iter()
            .map(|s| match s {
                Scope::Namespace(n) => n,
                Scope::All => "*".into(),
            })
            .collect();
        assert_eq!(names, ["a", "b", "c"]);
        let one = Args::try_parse_from(["op", "--watch-namespace", "team-a"]).unwrap();
        assert!(
            matches!(&watch_scopes(one.watch_namespace)[..], [Scope::Namespace(n)] if n == "team-a")
        );
        let none = Args::try_parse_from(["op"]).unwrap();
        assert!(matches!(
            &watch_scopes(none.watch_namespace)[..],
            [Scope::All]
        ));
    }
}
