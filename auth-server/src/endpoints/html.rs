//! The few server-rendered pages (login, errors, signed out): plain HTML with a little inline
//! CSS and no JavaScript, so they work with scripts disabled. Every interpolated value is
//! escaped here, in one place.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "\
*{box-sizing:border-box}\
body{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;\
background:#f3f4f6;color:#111827;font:16px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif}\
main{width:100%;max-width:22rem;margin:1rem;padding:2rem;background:#fff;border-radius:.75rem;\
box-shadow:0 1px 3px rgba(0,0,0,.1),0 8px 24px rgba(0,0,0,.06)}\
h1{margin:0 0 1.25rem;font-size:1.375rem;font-weight:600}\
label{display:block;margin:.75rem 0 .25rem;font-size:.875rem;font-weight:500}\
input{width:100%;padding:.55rem .7rem;border:1px solid #d1d5db;border-radius:.375rem;font:inherit}\
input:focus{outline:2px solid #2563eb;outline-offset:1px;border-color:#2563eb}\
button{width:100%;margin-top:1.25rem;padding:.6rem;border:0;border-radius:.375rem;\
background:#2563eb;color:#fff;font:inherit;font-weight:600;cursor:pointer}\
button:hover{background:#1d4ed8}\
.error{margin:0 0 .5rem;padding:.5rem .75rem;border-radius:.375rem;background:#fef2f2;color:#991b1b;font-size:.875rem}\
.muted{color:#6b7280;font-size:.875rem}\
.upstreams{margin-top:1.25rem;border-top:1px solid #e5e7eb}\
.upstreams button{margin-top:.75rem;background:#fff;color:#111827;border:1px solid #d1d5db}\
.upstreams button:hover{background:#f9fafb}";

/// A complete page: `title` (escaped) and `body` (already HTML).
pub fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta name=\"referrer\" content=\"no-referrer\">\
<title>{}</title><style>{STYLE}</style></head>\n<body><main>\n{body}\n</main></body></html>\n",
        escape(title)
    );
    let mut resp = (status, html).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // No scripts, no framing (clickjacking on the login form), nothing loaded from elsewhere.
    // No `form-action`: browsers apply it to the redirect after the login POST, which goes to
    // the client's origin by design.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

/// An error page for problems that must not be redirected to the client (unknown client,
/// unregistered redirect URI, expired login request, CSRF failure).
pub fn error_page(status: StatusCode, message: &str) -> Response {
    page(
        status,
        "Sign-in error",
        &format!(
            "<h1>Something went wrong</h1>\n<p role=\"alert\">{}</p>\n\
<p class=\"muted\">Go back to the application and try again.</p>",
            escape(message)
        ),
    )
}

/// A "Sign in with <display name>" button: a form POST to the upstream's start endpoint.
pub struct UpstreamButton<'a> {
    /// Form target: `<issuer path>/upstream/<name>/start`.
    pub action: String,
    pub display_name: &'a str,
}

/// The page of a failed federated sign-in: the same words whatever went wrong (details are in
/// the log), and a way back to the sign-in page when the request is still open.
pub fn upstream_failed_page(
    status: StatusCode,
    display_name: &str,
    retry: Option<&str>,
) -> Response {
    let back = retry
        .map(|href| {
            format!(
                "\n<p><a href=\"{}\">Back to the sign-in page</a></p>",
                escape(href)
            )
        })
        .unwrap_or_default();
    page(
        status,
        "Sign-in error",
        &format!(
            "<h1>Sign-in failed</h1>\n<p role=\"alert\">Sign-in with {} failed. Try again or use another method.</p>{back}",
            escape(display_name)
        ),
    )
}

/// Fields of the login form.
pub struct LoginForm<'a> {
    /// Form target: `<issuer path>/login`.
    pub action: &'a str,
    pub request_id: &'a str,
    pub csrf: &'a str,
    pub client_name: &'a str,
    pub error: Option<&'a str>,
    /// One button per upstream provider, under the password form.
    pub upstreams: &'a [UpstreamButton<'a>],
}

/// The login page.
pub fn login_page(status: StatusCode, f: &LoginForm<'_>) -> Response {
    let error = f
        .error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>\n", escape(e)))
        .unwrap_or_default();
    let body = format!(
        "<h1>Sign in</h1>\n<p class=\"muted\">to continue to {client}</p>\n{error}\
<form method=\"post\" action=\"{action}\">\n\
<input type=\"hidden\" name=\"request\" value=\"{request}\">\n\
<input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\n\
<label for=\"username\">Username</label><input id=\"username\" name=\"username\" autocomplete=\"username\">\n\
<label for=\"password\">Password</label><input id=\"password\" name=\"password\" type=\"password\">\n\
<button type=\"submit\">Sign in</button>\n</form>{upstreams}",
        upstreams = upstream_buttons(f),
        client = escape(f.client_name),
        action = escape(f.action),
        request = escape(f.request_id),
        csrf = escape(f.csrf),
    );
    page(status, "Sign in", &body)
}

fn upstream_buttons(f: &LoginForm<'_>) -> String {
    if f.upstreams.is_empty() {
        return String::new();
    }
    let forms: String = f
        .upstreams
        .iter()
        .map(|u| {
            format!(
                "\n<form method=\"post\" action=\"{action}\">\
<input type=\"hidden\" name=\"request\" value=\"{request}\">\
<input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<button type=\"submit\">Sign in with {name}</button></form>",
                action = escape(&u.action),
                request = escape(f.request_id),
                csrf = escape(f.csrf),
                name = escape(u.display_name),
            )
        })
        .collect();
    format!("\n<div class=\"upstreams\">{forms}\n</div>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_neutralises_markup_in_text_and_attributes() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#x27;&amp;&#x27;&lt;/a&gt;"
        );
    }

    #[tokio::test]
    async fn login_page_has_the_fixed_form_contract() {
        let resp = login_page(
            StatusCode::UNAUTHORIZED,
            &LoginForm {
                action: "/realm/login",
                request_id: "req1",
                csrf: "c\"srf",
                client_name: "<App>",
                error: Some("Incorrect username or password."),
                upstreams: &[UpstreamButton {
                    action: "/realm/upstream/google/start".into(),
                    display_name: "<Google>",
                }],
            },
        );
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let html = String::from_utf8(body.to_vec()).unwrap();
        for needle in [
            "<title>Sign in</title>",
            "<form method=\"post\" action=\"/realm/login\">",
            "<label for=\"username\">Username</label><input id=\"username\" name=\"username\" autocomplete=\"username\">",
            "<label for=\"password\">Password</label><input id=\"password\" name=\"password\" type=\"password\">",
            "<input type=\"hidden\" name=\"request\" value=\"req1\">",
            "<input type=\"hidden\" name=\"csrf\" value=\"c&quot;srf\">",
            "<button type=\"submit\">Sign in</button>",
            "<p class=\"error\" role=\"alert\">Incorrect username or password.</p>",
            "to continue to &lt;App&gt;",
            "<form method=\"post\" action=\"/realm/upstream/google/start\">",
            "<button type=\"submit\">Sign in with &lt;Google&gt;</button>",
        ] {
            assert!(html.contains(needle), "missing {needle} in {html}");
        }
    }
}
