//! A person signing in at a provider's login page, as a browser does: `/authorize` redirects to
//! `/login`, the form is posted with its CSRF token and cookies, and the provider redirects back
//! to the application. The relying-party side (building the authorize URL, redeeming the code,
//! validating the ID token) is left to a real RP library in the tests.

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use reqwest::Response;

/// Where the front channel ended.
#[derive(Debug)]
pub enum Outcome {
    /// The provider redirected back to the application: the full callback URL.
    Redirected(url::Url),
    /// The provider answered with a page instead (an error page, or the login form again).
    Page { status: u16, body: String },
}

fn cookies(resp: &Response) -> Vec<String> {
    resp.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_string))
        .collect()
}

fn hidden(body: &str, name: &str) -> Option<String> {
    let needle = format!("name=\"{name}\" value=\"");
    let start = body.find(&needle)? + needle.len();
    Some(body[start..start + body[start..].find('"')?].to_string())
}

fn location(base: &str, resp: &Response) -> Option<url::Url> {
    let loc = resp.headers().get(LOCATION)?.to_str().ok()?;
    url::Url::parse(base).ok()?.join(loc).ok()
}

/// Opens `authorize_url` with no session and signs in as `username`.
pub async fn sign_in(authorize_url: &str, username: &str, password: &str) -> Outcome {
    let http = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("HTTP client");
    let resp = http.get(authorize_url).send().await.expect("authorize");
    let Some(login_url) = location(authorize_url, &resp).filter(|u| u.path().ends_with("/login"))
    else {
        return match location(authorize_url, &resp) {
            Some(url) => Outcome::Redirected(url),
            None => Outcome::Page {
                status: resp.status().as_u16(),
                body: resp.text().await.unwrap_or_default(),
            },
        };
    };
    let page = http
        .get(login_url.clone())
        .send()
        .await
        .expect("login page");
    let jar = cookies(&page).join("; ");
    let body = page.text().await.unwrap_or_default();
    let (Some(request), Some(csrf)) = (hidden(&body, "request"), hidden(&body, "csrf")) else {
        return Outcome::Page { status: 200, body };
    };
    let resp = http
        .post(login_url.clone())
        .header(COOKIE, jar)
        .form(&[
            ("request", request.as_str()),
            ("csrf", csrf.as_str()),
            ("username", username),
            ("password", password),
        ])
        .send()
        .await
        .expect("login form");
    match location(login_url.as_str(), &resp) {
        Some(url) => Outcome::Redirected(url),
        None => Outcome::Page {
            status: resp.status().as_u16(),
            body: resp.text().await.unwrap_or_default(),
        },
    }
}
