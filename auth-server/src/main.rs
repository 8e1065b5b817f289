//! palisade-auth-server: `serve` (default), `migrate`, `schema-version`, `openapi`.

use axum::serve::ListenerExt;
use clap::{Parser, Subcommand};
use palisade_auth_server::audit;
use palisade_auth_server::config::Config;
use palisade_auth_server::keys::KeyStore;
use palisade_auth_server::state::{AppState, Secrets};
use palisade_auth_server::store::{memory::MemoryStore, postgres, Store, User};
use palisade_auth_server::{admin_router, public_router};
use palisade_wire::registration::{
    hash_client_secret, random_token, ClientRegistration, GrantType, TokenEndpointAuthMethod,
};
use std::sync::Arc;
use std::time::Duration;

/// Redirect URI of the development client (a local RP listening on port 8765).
const DEV_REDIRECT_URI: &str = "http://127.0.0.1:8765/callback";
/// Post-logout redirect URI of the development client.
const DEV_POST_LOGOUT_URI: &str = "http://127.0.0.1:8765/";

#[derive(Parser)]
#[command(
    version,
    about = "Palisade's OpenID Connect provider (configuration from PALISADE_* environment variables)"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the public and admin ports (the default).
    Serve,
    /// Apply database migrations (DATABASE_URL) and print the schema version.
    Migrate,
    /// Print the database schema version this binary needs.
    SchemaVersion,
    /// Print the OpenAPI 3 description of the public and admin ports (JSON).
    Openapi,
}

fn init_logs(config: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_new(audit::log_directives(&config.log_level))
        .unwrap_or_else(|_| EnvFilter::new(audit::log_directives("info")));
    if config.json_logs {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
}

/// jemalloc: about 12 % more tokens/s than with glibc's allocator (`docs/decisions.md`), and
/// blocks over 8 MiB (argon2id's 19 MiB working memory) go back to the system as soon as they
/// are freed.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve);
    if let Command::Openapi = command {
        // Needs no configuration: the description does not depend on it.
        print!("{}", palisade_auth_server::openapi::json());
        return Ok(());
    }
    let config = Config::from_env()?;
    match command {
        Command::Openapi => unreachable!("handled above"),
        Command::SchemaVersion => {
            println!("{}", postgres::required_schema_version());
            Ok(())
        }
        Command::Migrate => {
            let url = config
                .database_url
                .clone()
                .ok_or_else(|| anyhow::anyhow!("migrate needs DATABASE_URL"))?;
            let version = postgres::PostgresStore::connect_lazy(&url)?
                .migrate()
                .await?;
            let report = palisade_wire::contract::migration::report(version);
            println!("{report}");
            // In a pod, the operator reads the result from the termination message.
            let path = palisade_wire::contract::migration::TERMINATION_MESSAGE_PATH;
            if std::path::Path::new(path).exists() {
                let _ = std::fs::write(path, &report);
            }
            Ok(())
        }
        Command::Serve => serve(config).await,
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    init_logs(&config);
    let dev = config.database_url.is_none();
    let store: Arc<dyn Store> = match &config.database_url {
        Some(url) => {
            let pg = postgres::PostgresStore::connect_lazy(url)?;
            // Developers' convenience: bring the schema up to date at start; in a cluster the
            // migration Job has done so already and this is a no-op.
            if let Err(e) = pg.migrate().await {
                tracing::warn!(error = %e, "could not migrate at start-up; /readyz will say when storage is reachable");
            }
            Arc::new(pg)
        }
        None => Arc::new(MemoryStore::default()),
    };
    let keys = match &config.keyset_file {
        Some(path) => {
            let keys = KeyStore::load(path)?;
            keys.watch(path.clone(), Duration::from_secs(2));
            keys
        }
        None => KeyStore::development()?,
    };
    let secrets = Secrets::load(config.internal_dir.as_deref())?;
    let admin_token = secrets.admin_token.clone();
    let (state, audit_writer) = AppState::new(config.clone(), store.clone(), keys, secrets)?;
    let audit = state.audit.clone();
    if dev {
        let secret = random_token(32);
        store
            .put_client(&ClientRegistration {
                client_id: "dev-client".into(),
                client_name: Some("Development client".into()),
                redirect_uris: vec![
                    DEV_REDIRECT_URI.into(),
                    "http://127.0.0.1:3000/callback".into(),
                ],
                post_logout_redirect_uris: vec![DEV_POST_LOGOUT_URI.into()],
                grant_types: vec![
                    GrantType::ClientCredentials,
                    GrantType::AuthorizationCode,
                    GrantType::RefreshToken,
                ],
                scopes: vec![
                    "openid".into(),
                    "profile".into(),
                    "email".into(),
                    "api".into(),
                ],
                token_endpoint_auth_method: TokenEndpointAuthMethod::ClientSecretBasic,
                public: false,
                client_secret_hash: Some(hash_client_secret(&secret)),
            })
            .await?;
        let password = random_token(12);
        store
            .put_user(&User {
                username: "dev".into(),
                sub: random_token(16),
                password_hash: Some(state.passwords.hash(&password)?),
                email: Some("dev@example.com".into()),
                email_verified: true,
                name: Some("Development User".into()),
                disabled: false,
                mfa_required: false,
            })
            .await?;
        // Development only (in-memory store): print what a developer needs to try it.
        // Written with errors ignored: a reader that stops reading must not stop the server.
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "development issuer {} (in-memory store)\n\
             dev client: client_id=dev-client client_secret={secret}\n\
             dev client redirect URI: {DEV_REDIRECT_URI}\n\
             dev user: username=dev password={password}\n\
             admin token: {admin_token}",
            config.issuer
        );
        let _ = out.flush();
    }
    // TCP_NODELAY: a response is written as soon as it is ready, never held back by Nagle's
    // algorithm waiting for the client's (delayed) ACK of the previous one.
    let nodelay = |tcp: &mut tokio::net::TcpStream| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
    };
    let public = tokio::net::TcpListener::bind(config.public_addr)
        .await?
        .tap_io(nodelay);
    let admin = tokio::net::TcpListener::bind(config.admin_addr)
        .await?
        .tap_io(nodelay);
    tracing::info!(issuer = %config.issuer, public = %config.public_addr, admin = %config.admin_addr, "serving");
    // SIGTERM (the kubelet, after the pod's preStop pause) or Ctrl-C: stop accepting and let
    // requests in flight finish.
    let shutdown = || async {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term => {}
        }
        tracing::info!("shutting down: finishing requests in flight");
    };
    // The client address feeds the per-address rate limits.
    let public_app =
        public_router(state.clone()).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let p = axum::serve(public, public_app).with_graceful_shutdown(shutdown());
    let a = axum::serve(admin, admin_router(state)).with_graceful_shutdown(shutdown());
    tokio::try_join!(p, a)?;
    // The machine-token counts of the last partial minute.
    audit.flush_tally(chrono::Utc::now());
    drop(audit);
    // Every clone of the state is gone with the routers: the audit writer stores what is
    // queued and ends. A store that is down gets a few seconds, not forever.
    if tokio::time::timeout(Duration::from_secs(5), audit_writer)
        .await
        .is_err()
    {
        tracing::warn!("audit records still queued at exit were not stored");
    }
    Ok(())
}
