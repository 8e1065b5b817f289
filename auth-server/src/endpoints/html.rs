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
input[type=checkbox]{width:auto;margin:0 .5rem 0 0;vertical-align:middle}\
label.check{font-weight:400;margin-top:1rem}\
button{width:100%;margin-top:1.25rem;padding:.6rem;border:0;border-radius:.375rem;\
background:#2563eb;color:#fff;font:inherit;font-weight:600;cursor:pointer}\
button:hover{background:#1d4ed8}\
.error{margin:0 0 .5rem;padding:.5rem .75rem;border-radius:.375rem;background:#fef2f2;color:#991b1b;font-size:.875rem}\
.muted{color:#6b7280;font-size:.875rem}\
.qr{display:flex;justify-content:center;margin:.5rem 0}\
code{font:.9375rem/1.4 ui-monospace,SFMono-Regular,Menlo,monospace;word-break:break-all}\
ul.codes{columns:2;padding-left:1.25rem;margin:.5rem 0}\
.upstreams{margin-top:1.25rem;border-top:1px solid #e5e7eb}\
.upstreams button{margin-top:.75rem;background:#fff;color:#111827;border:1px solid #d1d5db}\
.upstreams button:hover{background:#f9fafb}";

/// The message of a storage outage on a sign-in page.
pub const UNAVAILABLE: &str =
    "The sign-in service is temporarily unavailable. Please try again in a moment.";

/// The 503 page of a storage outage.
pub fn unavailable_page() -> Response {
    error_page(StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE)
}

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
    /// Offer the `enrol_totp` checkbox (self-enrolment under the `Optional` TOTP policy).
    pub offer_totp_enrolment: bool,
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
{enrol}<button type=\"submit\">Sign in</button>\n</form>{upstreams}",
        enrol = if f.offer_totp_enrolment {
            "<label class=\"check\"><input type=\"checkbox\" name=\"enrol_totp\" value=\"1\">\
Set up two-step verification</label>\n"
        } else {
            ""
        },
        upstreams = upstream_buttons(f),
        client = escape(f.client_name),
        action = escape(f.action),
        request = escape(f.request_id),
        csrf = escape(f.csrf),
    );
    page(status, "Sign in", &body)
}

/// Hidden fields every second-factor form carries: the parked sign-in and the CSRF token.
fn sign_in_fields(sign_in: &str, csrf: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"signin\" value=\"{}\">\n\
<input type=\"hidden\" name=\"csrf\" value=\"{}\">\n",
        escape(sign_in),
        escape(csrf)
    )
}

fn error_line(error: Option<&str>) -> String {
    error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>\n", escape(e)))
        .unwrap_or_default()
}

/// Fields of the second-factor page.
pub struct TotpForm<'a> {
    /// Form target: `<issuer path>/login/totp`.
    pub action: &'a str,
    /// The parked sign-in.
    pub sign_in: &'a str,
    pub csrf: &'a str,
    pub error: Option<&'a str>,
}

/// The page asking for a TOTP code or a recovery code.
pub fn totp_page(status: StatusCode, f: &TotpForm<'_>) -> Response {
    let body = format!(
        "<h1>Two-step verification</h1>\n\
<p class=\"muted\">Enter the 6-digit code from your authenticator app, or one of your recovery codes.</p>\n\
{error}<form method=\"post\" action=\"{action}\">\n{fields}\
<label for=\"code\">Code</label><input id=\"code\" name=\"code\" autocomplete=\"one-time-code\" autofocus>\n\
<button type=\"submit\">Verify</button>\n</form>",
        error = error_line(f.error),
        action = escape(f.action),
        fields = sign_in_fields(f.sign_in, f.csrf),
    );
    page(status, "Two-step verification", &body)
}

/// Fields of the enrolment page.
pub struct EnrolForm<'a> {
    /// Form target: `<issuer path>/login/totp/enrol`.
    pub action: &'a str,
    pub sign_in: &'a str,
    pub csrf: &'a str,
    /// The `otpauth://totp/...` URI the QR code encodes.
    pub otpauth_uri: &'a str,
    /// The secret in base32, for typing into an app by hand.
    pub secret_base32: &'a str,
    /// The QR code as an `<svg>` element (generated here, from the URI only).
    pub qr_svg: &'a str,
    pub error: Option<&'a str>,
}

/// The page enrolling an authenticator: QR code, link, secret for manual entry, first code.
pub fn enrol_page(status: StatusCode, f: &EnrolForm<'_>) -> Response {
    let body = format!(
        "<h1>Set up two-step verification</h1>\n\
<p class=\"muted\">Scan this code with an authenticator app, or <a id=\"otpauth-uri\" href=\"{uri}\">open it in the app</a>.</p>\n\
<div class=\"qr\">{qr}</div>\n\
<p class=\"muted\">Or enter this key by hand (time-based, 6 digits):<br><code id=\"totp-secret\">{secret}</code></p>\n\
{error}<form method=\"post\" action=\"{action}\">\n{fields}\
<label for=\"code\">Code from the app</label><input id=\"code\" name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\">\n\
<button type=\"submit\">Confirm</button>\n</form>",
        uri = escape(f.otpauth_uri),
        qr = f.qr_svg,
        secret = escape(f.secret_base32),
        error = error_line(f.error),
        action = escape(f.action),
        fields = sign_in_fields(f.sign_in, f.csrf),
    );
    page(status, "Set up two-step verification", &body)
}

/// Fields of the page showing the recovery codes.
pub struct RecoveryCodesForm<'a> {
    /// Form target: `<issuer path>/login/totp/continue`.
    pub action: &'a str,
    pub sign_in: &'a str,
    pub csrf: &'a str,
    pub codes: &'a [String],
}

/// The recovery codes, shown once, and a button finishing the sign-in.
pub fn recovery_codes_page(f: &RecoveryCodesForm<'_>) -> Response {
    let items: String = f
        .codes
        .iter()
        .map(|c| format!("<li><code>{}</code></li>", escape(c)))
        .collect();
    let body = format!(
        "<h1>Save your recovery codes</h1>\n\
<p class=\"muted\">Each code signs you in once if you lose your authenticator. \
They are shown only now: store them somewhere safe.</p>\n\
<ul id=\"recovery-codes\" class=\"codes\">{items}</ul>\n\
<form method=\"post\" action=\"{action}\">\n{fields}\
<button type=\"submit\">Continue</button>\n</form>",
        action = escape(f.action),
        fields = sign_in_fields(f.sign_in, f.csrf),
    );
    page(StatusCode::OK, "Save your recovery codes", &body)
}

/// The "Sign in with …" forms under the password form, one per upstream provider.
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
                offer_totp_enrolment: false,
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

    async fn html(resp: Response) -> String {
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        String::from_utf8(body.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn second_factor_pages_escape_and_carry_the_parked_sign_in() {
        let totp = html(totp_page(
            StatusCode::UNAUTHORIZED,
            &TotpForm {
                action: "/t/login/totp",
                sign_in: "s\"1",
                csrf: "c1",
                error: Some("<wrong>"),
            },
        ))
        .await;
        for needle in [
            "<form method=\"post\" action=\"/t/login/totp\">",
            "<input type=\"hidden\" name=\"signin\" value=\"s&quot;1\">",
            "<input type=\"hidden\" name=\"csrf\" value=\"c1\">",
            "name=\"code\"",
            "&lt;wrong&gt;",
        ] {
            assert!(totp.contains(needle), "missing {needle} in {totp}");
        }
        let enrol = html(enrol_page(
            StatusCode::OK,
            &EnrolForm {
                action: "/t/login/totp/enrol",
                sign_in: "s2",
                csrf: "c2",
                otpauth_uri: "otpauth://totp/a:b?secret=K&issuer=a",
                secret_base32: "KRSXG5A",
                qr_svg: "<svg></svg>",
                error: None,
            },
        ))
        .await;
        assert!(enrol.contains("href=\"otpauth://totp/a:b?secret=K&amp;issuer=a\""));
        assert!(enrol.contains("<code id=\"totp-secret\">KRSXG5A</code>"));
        assert!(enrol.contains("<div class=\"qr\"><svg></svg></div>"));
        let codes = html(recovery_codes_page(&RecoveryCodesForm {
            action: "/t/login/totp/continue",
            sign_in: "s3",
            csrf: "c3",
            codes: &["abcd-efgh".to_string()],
        }))
        .await;
        assert!(codes.contains("<li><code>abcd-efgh</code></li>"));
        assert!(codes.contains("value=\"s3\""));
    }
}
