//! Palisade's OpenID Connect provider: public endpoints (8080), admin API (8081), storage,
//! keys and tokens. `main.rs` only parses flags and starts [`serve`].

pub mod admin;
pub mod audit;
pub mod auth_methods;
pub mod client_addr;
pub mod client_auth;
pub mod config;
pub mod cookies;
pub mod endpoints;
pub mod error;
pub mod federation;
pub mod grants;
pub mod keys;
pub mod metrics;
pub mod mfa;
pub mod openapi;
pub mod passwords;
pub mod ratelimit;
pub mod revocation;
pub mod sessions;
pub mod state;
pub mod store;
pub mod tokens;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::IntoResponse;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use state::AppState;
use std::time::{Duration, Instant};
use tower_http::cors::CorsLayer;
use tower_http::limit::RequestBodyLimitLayer;

/// Largest request body accepted (forms and registrations are small).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Longest a request may take. Past it the answer is 503 `temporarily_unavailable`, so a
/// storage or network stall (a partitioned database holds a query forever) never hangs clients.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(5);

/// Runs `fut` (the rest of a request) until [`REQUEST_DEADLINE`]; past it, the answer is 503.
async fn within_deadline(fut: impl std::future::Future<Output = Response>) -> Response {
    match tokio::time::timeout(REQUEST_DEADLINE, fut).await {
        Ok(resp) => resp,
        Err(_) => {
            tracing::warn!(
                deadline_seconds = REQUEST_DEADLINE.as_secs(),
                "request abandoned at the deadline"
            );
            error::OAuthError::TemporarilyUnavailable.into_response()
        }
    }
}

async fn deadline(req: Request, next: Next) -> Response {
    within_deadline(next.run(req)).await
}

/// What every public request goes through once routed, in one middleware (each `from_fn`
/// layer costs the server allocations on every request): its client address is worked out
/// (through trusted proxies) and kept for the request, it is abandoned at the deadline, and it
/// is counted and timed by endpoint and status.
async fn edge(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let endpoint = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let addr = client_addr_of(&state, &req);
    let start = Instant::now();
    let run = within_deadline(next.run(req));
    let resp = match addr {
        Some(ip) => client_addr::scope(ip, run).await,
        None => run.await,
    };
    state
        .metrics
        .latency
        .get_or_create(&metrics::EndpointLabels {
            endpoint: endpoint.clone(),
        })
        .observe(start.elapsed().as_secs_f64());
    state
        .metrics
        .requests
        .get_or_create(&metrics::RequestLabels {
            endpoint,
            status: resp.status().as_u16(),
        })
        .inc();
    resp
}

/// The client address of `req`: its peer, or the address a trusted proxy forwarded.
fn client_addr_of(state: &AppState, req: &Request) -> Option<std::net::IpAddr> {
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())?;
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok());
    Some(client_addr::client_addr(
        peer,
        forwarded,
        state.limiter.trusted_proxies(),
    ))
}

async fn rate_limited(
    State((state, endpoint)): State<(AppState, ratelimit::Endpoint)>,
    req: Request,
    next: Next,
) -> Result<Response, error::OAuthError> {
    if let Some(ip) = client_addr::current() {
        if let Err(wait) = state.limiter.admit(endpoint, ip).await {
            state.metrics.rate_limit_block.inc();
            return Err(error::OAuthError::TooManyRequests(wait));
        }
    }
    Ok(next.run(req).await)
}

/// The API endpoints' CORS policy: any origin, no credentials.
static API_CORS: std::sync::LazyLock<CorsLayer> = std::sync::LazyLock::new(CorsLayer::permissive);

/// CORS for the token, introspection, revocation and userinfo endpoints, applied to the
/// requests that carry `Origin` (every cross-origin request a browser sends does; servers
/// calling these endpoints send none, and skip the building and merging of CORS headers, 5 to
/// 10 % of the token endpoint's throughput). Their answers are not stored by caches (`no-store`,
/// POST, or a request with credentials), so no `Vary` is owed to a cache.
async fn cors_when_asked(req: Request, next: Next) -> Response {
    use tower::{Layer, ServiceExt};
    if !req.headers().contains_key(axum::http::header::ORIGIN) {
        return next.run(req).await;
    }
    match API_CORS.layer(next).oneshot(req).await {
        Ok(resp) => resp,
        Err(never) => match never {},
    }
}

/// The public router. Routes sit under the issuer's path component, if it has one. The API
/// routes allow any origin (CORS, no credentials); the browser pages do not.
pub fn public_router(state: AppState) -> Router {
    use ratelimit::Endpoint;
    let prefix = url_path(&state.config.issuer);
    // Discovery and the JWKS are cached (also by shared caches): their CORS headers are sent
    // whoever asks.
    let documents = Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(endpoints::discovery::discovery),
        )
        .route("/jwks", get(endpoints::jwks::jwks))
        .layer(API_CORS.clone());
    let api = Router::new()
        .route(
            "/token",
            post(endpoints::token::token).route_layer(middleware::from_fn_with_state(
                (state.clone(), Endpoint::Token),
                rate_limited,
            )),
        )
        .route(
            "/introspect",
            post(endpoints::introspect::introspect).route_layer(middleware::from_fn_with_state(
                (state.clone(), Endpoint::Introspect),
                rate_limited,
            )),
        )
        .route(
            "/revoke",
            post(endpoints::revoke::revoke).route_layer(middleware::from_fn_with_state(
                (state.clone(), Endpoint::Revoke),
                rate_limited,
            )),
        )
        .route(
            "/userinfo",
            get(endpoints::userinfo::userinfo)
                .post(endpoints::userinfo::userinfo_post)
                .route_layer(middleware::from_fn_with_state(
                    (state.clone(), Endpoint::Userinfo),
                    rate_limited,
                )),
        )
        .layer(middleware::from_fn(cors_when_asked));
    let browser = Router::new()
        .route(
            "/authorize",
            get(endpoints::authorize::authorize_get)
                .post(endpoints::authorize::authorize_post)
                .route_layer(middleware::from_fn_with_state(
                    (state.clone(), Endpoint::Authorize),
                    rate_limited,
                )),
        )
        .route(
            "/login",
            get(endpoints::login::login_get)
                .post(endpoints::login::login_post)
                .route_layer(middleware::from_fn_with_state(
                    (state.clone(), Endpoint::Authorize),
                    rate_limited,
                )),
        )
        .route(
            "/login/totp",
            post(endpoints::mfa::totp_post).route_layer(middleware::from_fn_with_state(
                (state.clone(), Endpoint::Mfa),
                rate_limited,
            )),
        )
        .route(
            "/login/totp/enrol",
            post(endpoints::mfa::enrol_post).route_layer(middleware::from_fn_with_state(
                (state.clone(), Endpoint::Mfa),
                rate_limited,
            )),
        )
        .route(
            "/login/totp/continue",
            post(endpoints::mfa::continue_post).route_layer(middleware::from_fn_with_state(
                (state.clone(), Endpoint::Mfa),
                rate_limited,
            )),
        )
        .route(
            "/upstream/{name}/start",
            post(endpoints::upstream::start).route_layer(middleware::from_fn_with_state(
                (state.clone(), Endpoint::Authorize),
                rate_limited,
            )),
        )
        .route(
            "/upstream/{name}/callback",
            get(endpoints::upstream::callback).route_layer(middleware::from_fn_with_state(
                (state.clone(), Endpoint::Authorize),
                rate_limited,
            )),
        )
        .route(
            "/end_session",
            get(endpoints::end_session::end_session_get)
                .post(endpoints::end_session::end_session_post),
        );
    let routes = documents.merge(api).merge(browser);
    let app = if prefix.is_empty() {
        routes
    } else {
        Router::new().nest(&prefix, routes)
    };
    app.route("/healthz", get(endpoints::health::healthz))
        .route("/readyz", get(endpoints::health::readyz))
        .layer(middleware::from_fn_with_state(state.clone(), edge))
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .with_state(state)
}

/// The admin router.
pub fn admin_router(state: AppState) -> Router {
    let protected = Router::new()
        .route(
            "/admin/clients/{client_id}",
            get(admin::clients::get)
                .put(admin::clients::put)
                .delete(admin::clients::delete),
        )
        .route(
            &format!("{}/{{username}}", palisade_wire::contract::ADMIN_USERS_PATH),
            get(admin::users::get)
                .put(admin::users::put)
                .delete(admin::users::delete),
        )
        .route("/admin/audit", get(admin::audit::list))
        .route(
            &format!(
                "{}/{{username}}/totp",
                palisade_wire::contract::ADMIN_USERS_PATH
            ),
            axum::routing::delete(admin::users::reset_totp),
        )
        .layer(middleware::from_fn_with_state(
            state.clone(),
            admin::require_token,
        ));
    Router::new()
        .merge(protected)
        .route("/metrics", get(admin::metrics))
        .route("/openapi.json", get(admin::openapi))
        .layer(middleware::from_fn(deadline))
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .with_state(state)
}

/// The path component of the issuer, without a trailing slash ("" for none).
pub fn url_path(issuer: &str) -> String {
    let after_scheme = issuer.split_once("://").map(|(_, r)| r).unwrap_or(issuer);
    match after_scheme.find('/') {
        Some(i) => after_scheme[i..].trim_end_matches('/').to_string(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn issuer_path_component_becomes_the_route_prefix() {
        assert_eq!(super::url_path("https://id.example.com"), "");
        assert_eq!(super::url_path("https://id.example.com/"), "");
        assert_eq!(
            super::url_path("https://example.com/auth/realm"),
            "/auth/realm"
        );
    }
}
