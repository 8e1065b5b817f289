//! The OpenAPI 3 description of both ports, generated from the handlers' `#[utoipa::path]`
//! annotations and the request/response types. `palisade-auth-server openapi` prints it, the
//! admin port serves it at `/openapi.json`, and `docs/reference/openapi.json` is a copy that a
//! test keeps equal to it.
//!
//! What every operation shares is added here, from the router's own rules, instead of being
//! repeated on each handler: the rate-limit answer (429 with `Retry-After`) on the limited
//! routes, the request deadline's 503, and the body limit's 413.

use crate::{admin, endpoints, error, grants, ratelimit, MAX_BODY_BYTES, REQUEST_DEADLINE};
use utoipa::openapi::content::Content;
use utoipa::openapi::header::Header;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{Object, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::server::Server;
use utoipa::openapi::{OpenApi as Document, Ref, RefOr};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Palisade auth-server",
        description = "The OpenID Connect provider Palisade runs for each AuthProvider. The public \
port (8080) serves the issuer's endpoints under the issuer URL's path; the admin port (8081, \
never behind the Ingress) serves the client and user registries and metrics. Operations are \
tagged `public` or `admin` by port. Errors of the JSON endpoints have the RFC 6749 §5.2 shape \
(`ErrorBody`); the browser endpoints (`/authorize`, `/login`, `/upstream/...`, `/end_session`) \
answer errors they must not redirect with an HTML page.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        endpoints::discovery::discovery,
        endpoints::jwks::jwks,
        endpoints::authorize::authorize_get,
        endpoints::authorize::authorize_post,
        endpoints::login::login_get,
        endpoints::login::login_post,
        endpoints::mfa::totp_post,
        endpoints::mfa::enrol_post,
        endpoints::mfa::continue_post,
        endpoints::upstream::start,
        endpoints::upstream::callback,
        endpoints::token::token,
        endpoints::userinfo::userinfo,
        endpoints::userinfo::userinfo_post,
        endpoints::introspect::introspect,
        endpoints::revoke::revoke,
        endpoints::end_session::end_session_get,
        endpoints::end_session::end_session_post,
        endpoints::health::healthz,
        endpoints::health::readyz,
        admin::clients::put,
        admin::clients::get,
        admin::clients::delete,
        admin::users::put,
        admin::users::get,
        admin::users::delete,
        admin::audit::list,
        admin::users::reset_totp,
        admin::metrics,
        admin::openapi,
    ),
    components(schemas(error::ErrorBody, grants::TokenResponse)),
    tags(
        (name = "public", description = "Public port (8080): the issuer's endpoints"),
        (name = "admin", description = "Admin port (8081): registries and metrics; bearer token from the internal Secret"),
    ),
    modifiers(&Shared),
)]
struct ApiDoc;

/// The description as a document.
pub fn document() -> Document {
    ApiDoc::openapi()
}

/// The description as pretty-printed JSON with a final newline (the committed file's form).
pub fn json() -> String {
    let mut s = document()
        .to_pretty_json()
        .expect("the OpenAPI document serializes");
    s.push('\n');
    s
}

/// Paths answered by the rate limiter: the routes `public_router` wraps in `rate_limited`.
fn rate_limited(path: &str) -> Option<ratelimit::Endpoint> {
    use ratelimit::Endpoint;
    Some(match path {
        "/token" => Endpoint::Token,
        "/introspect" => Endpoint::Introspect,
        "/revoke" => Endpoint::Revoke,
        "/userinfo" => Endpoint::Userinfo,
        "/login/totp" | "/login/totp/enrol" | "/login/totp/continue" => Endpoint::Mfa,
        "/authorize" | "/login" | "/upstream/{name}/start" | "/upstream/{name}/callback" => {
            Endpoint::Authorize
        }
        _ => return None,
    })
}

/// Paths that answer browsers with HTML pages, errors included.
fn browser_page(path: &str) -> bool {
    matches!(
        path,
        "/authorize"
            | "/login"
            | "/login/totp"
            | "/login/totp/enrol"
            | "/login/totp/continue"
            | "/end_session"
    ) || path.starts_with("/upstream/")
}

struct Shared;

fn error_json() -> Content {
    Content::new(Some(Ref::from_schema_name("ErrorBody")))
}

fn text() -> Content {
    Content::new(Some(Object::with_type(Type::String)))
}

fn retry_after(description: &str) -> Header {
    let mut h = Header::new(Object::with_type(Type::Integer));
    h.description = Some(description.into());
    h
}

impl Modify for Shared {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        let http = |scheme, description: &str| {
            let mut h = Http::new(scheme);
            h.description = Some(description.into());
            SecurityScheme::Http(h)
        };
        components.add_security_scheme(
            "client_secret_basic",
            http(
                HttpAuthScheme::Basic,
                "client_secret_basic: the client's id and secret, each form-urlencoded \
                 (RFC 6749 §2.3.1). Clients registered for client_secret_post send \
                 `client_id` and `client_secret` in the form instead, and public clients \
                 `client_id` alone; a client must use the method it registered.",
            ),
        );
        components.add_security_scheme("access_token", {
            let mut h = Http::new(HttpAuthScheme::Bearer);
            h.bearer_format = Some("JWT".into());
            h.description = Some("An access token this issuer signed (RFC 6750).".into());
            SecurityScheme::Http(h)
        });
        components.add_security_scheme(
            "admin_token",
            http(
                HttpAuthScheme::Bearer,
                "The admin token: key `admin-token` of Secret `<provider>-internal`.",
            ),
        );
        let server = |url: &str, description: &str| {
            let mut s = Server::new(url);
            s.description = Some(description.into());
            s
        };
        doc.servers = Some(vec![
            server(
                "http://127.0.0.1:8080",
                "Public port: the issuer URL (development default shown)",
            ),
            server("http://127.0.0.1:8081", "Admin port (development default)"),
        ]);
        for (path, item) in doc.paths.paths.iter_mut() {
            let limited = rate_limited(path).is_some();
            let page = browser_page(path);
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
            ] {
                let Some(op) = op.as_mut() else { continue };
                shared_responses(op, limited, page);
            }
        }
    }
}

fn shared_responses(op: &mut Operation, limited: bool, page: bool) {
    let responses = &mut op.responses.responses;
    if limited {
        let mut description = "`too_many_requests`: this client address is over the endpoint's \
                               rate limit (AuthProvider `spec.rateLimits`)"
            .to_string();
        // A handler that answers 429 itself (an HTML page) keeps its description and content.
        let own = match responses.get("429") {
            Some(RefOr::T(r)) => {
                description = format!("{description}. Or: {}", r.description);
                r.content.get("text/html").cloned()
            }
            _ => None,
        };
        let mut limit = ResponseBuilder::new()
            .description(description)
            .header(
                "Retry-After",
                retry_after("Seconds until a request will be admitted"),
            )
            .content("application/json", error_json());
        if let Some(html) = own {
            limit = limit.content("text/html", html);
        }
        responses.insert("429".into(), RefOr::T(limit.build()));
    }
    if op.request_body.is_some() {
        responses.insert(
            "413".into(),
            RefOr::T(
                ResponseBuilder::new()
                    .description(format!("The body is larger than {MAX_BODY_BYTES} bytes"))
                    .content("text/plain", text())
                    .build(),
            ),
        );
    }
    let mut unavailable = ResponseBuilder::new()
        .description(format!(
            "`temporarily_unavailable`: storage is unreachable or the request took longer than \
             {} s; retry later",
            REQUEST_DEADLINE.as_secs()
        ))
        .header(
            "Retry-After",
            retry_after("Seconds to wait before retrying"),
        )
        .content("application/json", error_json());
    if page {
        unavailable = unavailable.content("text/html", text());
    }
    let unavailable: Response = unavailable.build();
    match responses.get_mut("503") {
        // /readyz documents its own 503; the deadline's JSON answer is added to it.
        Some(RefOr::T(own)) => {
            own.content
                .entry("application/json".into())
                .or_insert_with(error_json);
        }
        _ => {
            responses.insert("503".into(), RefOr::T(unavailable));
        }
    }
}
