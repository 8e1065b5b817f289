//! The TOTP second factor through the login UI, on both stores: enrolment (QR/otpauth URI,
//! first code, recovery codes shown once), verification with codes computed by a real TOTP
//! generator (`totp-rs`) from the URI the page shows, replay and window refusal, the wrong-code
//! limit, single-use recovery codes, admin reset, the policies, and ID-token `amr`/`acr`.

mod common;

use common::{authorize_url, Backend, Browser, Page, Srv, TestClient, PASSWORD, REDIRECT};
use palisade_wire::contract::TotpPolicy;
use totp_rs::Totp;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Runs `test` on `backend` under `policy`.
async fn run<F, Fut>(backend: Backend, policy: TotpPolicy, test: F)
where
    F: FnOnce(Srv) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    common::run_configured(backend, common::ttls(), |c| c.totp_policy = policy, test).await
}

macro_rules! on_both_stores_with {
    ($name:ident, $policy:expr, $body:path) => {
        mod $name {
            use super::*;
            #[tokio::test]
            async fn memory() {
                run(Backend::Memory, $policy, $body).await
            }
            #[tokio::test]
            async fn postgres() {
                run(Backend::Postgres, $policy, $body).await
            }
        }
    };
}

fn unescape(s: &str) -> String {
    s.replace("&amp;", "&")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
}

/// The `href` of the enrolment page's otpauth link, parsed by `totp-rs`.
fn authenticator(page: &Page) -> (String, Totp) {
    let needle = "id=\"otpauth-uri\" href=\"";
    let start = page.body.find(needle).expect("an otpauth link") + needle.len();
    let end = page.body[start..].find('"').unwrap() + start;
    let uri = unescape(&page.body[start..end]);
    let totp = Totp::from_url(&uri).expect("a valid otpauth URI");
    (uri, totp)
}

fn code_at(totp: &Totp, t: u64) -> String {
    totp.generate(t).to_string()
}

/// A code that is not valid now (nor one step either side).
fn wrong_code(totp: &Totp) -> String {
    let t = now();
    let valid: Vec<String> = [t - 30, t, t + 30]
        .iter()
        .map(|&t| code_at(totp, t))
        .collect();
    (0..1_000_000u32)
        .map(|n| format!("{n:06}"))
        .find(|c| !valid.contains(c))
        .unwrap()
}

/// The recovery codes listed on a page.
fn recovery_codes(page: &Page) -> Vec<String> {
    let list = page
        .body
        .split("id=\"recovery-codes\"")
        .nth(1)
        .expect("a code list");
    let list = list.split("</ul>").next().unwrap();
    list.split("<code>")
        .skip(1)
        .map(|c| c.split("</code>").next().unwrap().to_string())
        .collect()
}

/// A sign-in's front channel up to the page after the password.
struct Flow {
    browser: Browser,
    verifier: String,
}

impl Flow {
    async fn password(srv: &Srv, client: &TestClient, username: &str) -> (Flow, Page) {
        let (url, verifier) = authorize_url(srv, &client.id, &[]);
        let browser = Browser::default();
        let login = browser.login_page(&url).await;
        let page = browser.submit(srv, &login, username, PASSWORD).await;
        (Flow { browser, verifier }, page)
    }

    /// Posts `code` (and the page's hidden fields) to `/login/totp{tail}`.
    async fn post(&self, srv: &Srv, page: &Page, tail: &str, code: &str) -> Page {
        let signin = page.hidden("signin").expect("signin input");
        let csrf = page.hidden("csrf").expect("csrf input");
        self.browser
            .post(
                &srv.url(&format!("/login/totp{tail}")),
                &[("signin", &signin), ("csrf", &csrf), ("code", code)],
            )
            .await
    }

    /// Exchanges the code of a final redirect; returns the ID token's claims.
    async fn claims(&self, srv: &Srv, client: &TestClient, done: &Page) -> serde_json::Value {
        assert_eq!(done.status, 303, "{}", done.body);
        assert!(done.location.as_deref().unwrap().starts_with(REDIRECT));
        let cb = done.location_query();
        let (status, body) = srv.exchange_code(client, &cb["code"], &self.verifier).await;
        assert_eq!(status, 200, "{body}");
        id_token_claims(&body)
    }
}

fn id_token_claims(tokens: &serde_json::Value) -> serde_json::Value {
    use base64::Engine;
    let jwt = tokens["id_token"].as_str().expect("an ID token");
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

/// Enrols `username`: returns the authenticator, the recovery codes and the step used.
async fn enrol(srv: &Srv, client: &TestClient, username: &str) -> (Totp, Vec<String>) {
    let (flow, page) = Flow::password(srv, client, username).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("Set up two-step verification"),
        "{}",
        page.body
    );
    let (_, totp) = authenticator(&page);
    let shown = flow
        .post(srv, &page, "/enrol", &code_at(&totp, now()))
        .await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    let codes = recovery_codes(&shown);
    let done = flow.post(srv, &shown, "/continue", "").await;
    let claims = flow.claims(srv, client, &done).await;
    assert_eq!(claims["amr"], serde_json::json!(["pwd", "otp", "mfa"]));
    (totp, codes)
}

/// A confidential client and a new user who enrolled an authenticator through it: the
/// client, the username, the authenticator and the recovery codes.
async fn enrolled_user(srv: &Srv) -> (TestClient, String, Totp, Vec<String>) {
    let client = srv.confidential().await;
    let username = srv.user().await;
    let (totp, codes) = enrol(srv, &client, &username).await;
    (client, username, totp, codes)
}

async fn enrolment_then_totp_sign_in_with_replay_and_window_checks(srv: Srv) {
    let client = srv.confidential().await;
    let username = srv.user().await;
    let (flow, page) = Flow::password(&srv, &client, &username).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        !page.sets_cookie("palisade_session"),
        "no session before the second factor"
    );
    let (uri, totp) = authenticator(&page);
    assert!(uri.starts_with("otpauth://totp/127.0.0.1:"), "{uri}");
    assert!(uri.contains("issuer=127.0.0.1"), "{uri}");
    assert_eq!(totp.account_name(), username);
    let secret = totp.secret().to_base32();
    let shown = page
        .body
        .split("<code id=\"totp-secret\">")
        .nth(1)
        .and_then(|s| s.split("</code>").next())
        .expect("the secret in text");
    assert_eq!(
        shown.replace(' ', ""),
        secret,
        "the text and the URI carry one secret"
    );
    assert!(
        page.body.contains("<svg") && page.body.contains("</svg>"),
        "inline QR code"
    );
    assert!(!page.body.contains("<img"), "no image");

    // A wrong first code keeps the same secret and asks again.
    let again = flow.post(&srv, &page, "/enrol", &wrong_code(&totp)).await;
    assert_eq!(again.status, 401, "{}", again.body);
    assert_eq!(authenticator(&again).0, uri, "the same secret");

    let failures_before = srv.counter("mfa_failure_total").await;
    let success_before = srv.counter("mfa_success_total").await;
    let enrol_code = code_at(&totp, now());
    let shown = flow.post(&srv, &again, "/enrol", &enrol_code).await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    let codes = recovery_codes(&shown);
    assert_eq!(codes.len(), 10);
    assert!(codes.iter().all(|c| c.len() == 19), "{codes:?}");
    // The enrolment form is used up: posting it again is refused.
    let replayed = flow.post(&srv, &again, "/enrol", &enrol_code).await;
    assert_eq!(replayed.status, 400, "{}", replayed.body);
    let done = flow.post(&srv, &shown, "/continue", "").await;
    assert!(done.sets_cookie("palisade_session"));
    let claims = flow.claims(&srv, &client, &done).await;
    assert_eq!(claims["amr"], serde_json::json!(["pwd", "otp", "mfa"]));
    assert_eq!(claims["acr"], "urn:palisade:acr:2fa");
    assert_eq!(srv.counter("mfa_success_total").await, success_before + 1.0);
    assert_eq!(srv.counter("mfa_enrolled_total").await, 1.0);

    // Next sign-in asks for a code, not for enrolment.
    let (flow, page) = Flow::password(&srv, &client, &username).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Two-step verification"), "{}", page.body);
    assert!(
        !page.body.contains("otpauth"),
        "the secret is never shown again"
    );
    // The enrolment code's step is used up.
    let replay = flow.post(&srv, &page, "", &enrol_code).await;
    assert_eq!(replay.status, 401, "replayed step: {}", replay.body);
    // Two steps ago is outside the window.
    let old = flow
        .post(&srv, &page, "", &code_at(&totp, now() - 60))
        .await;
    assert_eq!(old.status, 401, "two steps ago");
    // The next step's code is inside the window and fresh.
    let next_code = code_at(&totp, now() + 30);
    let done = flow.post(&srv, &page, "", &next_code).await;
    let claims = flow.claims(&srv, &client, &done).await;
    assert_eq!(claims["amr"], serde_json::json!(["pwd", "otp", "mfa"]));
    assert_eq!(claims["acr"], "urn:palisade:acr:2fa");
    assert_eq!(
        srv.counter("mfa_failure_total").await,
        failures_before + 2.0,
        "the replay and the old code"
    );

    // The same code in another sign-in is a replay.
    let (flow, page) = Flow::password(&srv, &client, &username).await;
    let replay = flow.post(&srv, &page, "", &next_code).await;
    assert_eq!(replay.status, 401, "{}", replay.body);
    assert!(replay.body.contains("That code is not valid"));
}
on_both_stores_with!(
    enrolment_and_totp_sign_in,
    TotpPolicy::Required,
    enrolment_then_totp_sign_in_with_replay_and_window_checks
);

async fn recovery_codes_work_once(srv: Srv) {
    let (client, username, _, codes) = enrolled_user(&srv).await;
    let (flow, page) = Flow::password(&srv, &client, &username).await;
    // Typed in upper case with spaces: still the code.
    let typed = codes[4].to_uppercase().replace('-', " ");
    let done = flow.post(&srv, &page, "", &typed).await;
    let claims = flow.claims(&srv, &client, &done).await;
    assert_eq!(
        claims["amr"],
        serde_json::json!(["pwd", "mfa", "urn:palisade:amr:recovery-code"])
    );
    assert_eq!(claims["acr"], "urn:palisade:acr:2fa");
    assert_eq!(srv.counter("mfa_recovery_code_used_total").await, 1.0);

    let (flow, page) = Flow::password(&srv, &client, &username).await;
    let again = flow.post(&srv, &page, "", &codes[4]).await;
    assert_eq!(again.status, 401, "a used recovery code: {}", again.body);
    let other = flow.post(&srv, &page, "", &codes[5]).await;
    flow.claims(&srv, &client, &other).await;

    // The audit trail of the three sign-ins, newest first; no code in it.
    let mfa = srv
        .audit_records(&format!("event=mfa&username={username}"), 7)
        .await;
    let details: Vec<(&str, &str)> = mfa
        .iter()
        .map(|r| {
            (
                r["outcome"].as_str().unwrap(),
                r["detail"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        details,
        [
            ("success", "recovery code used"),
            ("failure", "wrong recovery code"),
            ("success", "password accepted; code asked"),
            ("success", "recovery code used"),
            ("success", "password accepted; code asked"),
            ("success", "authenticator enrolled; recovery codes issued"),
            (
                "success",
                "password accepted; authenticator enrolment asked"
            ),
        ]
    );
    assert!(mfa.iter().all(|r| r["clientId"] == client.id.as_str()));
    let logins = srv
        .audit_records(&format!("event=login&username={username}"), 3)
        .await;
    let methods: Vec<&str> = logins
        .iter()
        .map(|r| r["detail"].as_str().unwrap())
        .collect();
    assert_eq!(
        methods,
        [
            "pwd mfa urn:palisade:amr:recovery-code",
            "pwd mfa urn:palisade:amr:recovery-code",
            "pwd otp mfa"
        ]
    );
    let trail = serde_json::to_string(&(mfa, logins)).unwrap();
    assert!(codes.iter().all(|c| !trail.contains(c.as_str())));
}
on_both_stores_with!(
    recovery_codes,
    TotpPolicy::Required,
    recovery_codes_work_once
);

async fn five_wrong_codes_end_the_parked_sign_in(srv: Srv) {
    let (client, username, totp, codes) = enrolled_user(&srv).await;
    let (flow, page) = Flow::password(&srv, &client, &username).await;
    let wrong = wrong_code(&totp);
    for attempt in 1..=4 {
        let p = flow.post(&srv, &page, "", &wrong).await;
        assert_eq!(p.status, 401, "attempt {attempt}: {}", p.body);
    }
    let last = flow.post(&srv, &page, "", "aaaa-bbbb-cccc-dddd").await;
    assert_eq!(last.status, 403, "{}", last.body);
    assert!(last.body.contains("Too many incorrect codes"));
    let right = flow.post(&srv, &page, "", &codes[0]).await;
    assert_eq!(right.status, 400, "the sign-in is gone: {}", right.body);
    // The recovery code was not spent by the refused attempt.
    let (flow, page) = Flow::password(&srv, &client, &username).await;
    let done = flow.post(&srv, &page, "", &codes[0]).await;
    flow.claims(&srv, &client, &done).await;
}
on_both_stores_with!(
    wrong_code_limit,
    TotpPolicy::Required,
    five_wrong_codes_end_the_parked_sign_in
);

/// Codes sent in parallel on one parked sign-in are charged before they are checked: no more
/// than five are ever looked at, however many arrive at once.
async fn parallel_codes_cannot_exceed_the_limit(srv: Srv) {
    let (client, username, totp, _) = enrolled_user(&srv).await;
    let (flow, page) = Flow::password(&srv, &client, &username).await;
    let wrong = wrong_code(&totp);
    let checked_before = srv.counter("mfa_failure_total").await;
    let answers =
        futures::future::join_all((0..30).map(|_| flow.post(&srv, &page, "", &wrong))).await;
    let statuses: Vec<u16> = answers.iter().map(|p| p.status).collect();
    // 401: asked again; 403: the sign-in ended; 400: already gone; 429: the account is busy.
    assert!(
        statuses.iter().all(|s| [400, 401, 403, 429].contains(s)),
        "{statuses:?}"
    );
    assert!(
        statuses.iter().filter(|s| **s == 401).count() <= 4,
        "at most four pages asking again: {statuses:?}"
    );
    let checked = srv.counter("mfa_failure_total").await - checked_before;
    assert!(
        (1.0..=5.0).contains(&checked),
        "{checked} codes were checked: {statuses:?}"
    );
    // The sign-in is over: even the right code is refused now.
    let late = flow.post(&srv, &page, "", &code_at(&totp, now())).await;
    assert_ne!(late.status, 303, "{}", late.body);
}
on_both_stores_with!(
    parallel_codes,
    TotpPolicy::Required,
    parallel_codes_cannot_exceed_the_limit
);

async fn ten_wrong_codes_across_sign_ins_make_the_user_wait(srv: Srv) {
    let (client, username, totp, codes) = enrolled_user(&srv).await;
    let wrong = wrong_code(&totp);
    for sign_in in 0..2 {
        let (flow, page) = Flow::password(&srv, &client, &username).await;
        for attempt in 1..=5 {
            let p = flow.post(&srv, &page, "", &wrong).await;
            let expected = if attempt < 5 { 401 } else { 403 };
            assert_eq!(p.status, expected, "sign-in {sign_in}, attempt {attempt}");
        }
    }
    // Ten in a row: even the right code (or a recovery code) waits now.
    let (flow, page) = Flow::password(&srv, &client, &username).await;
    let p = flow
        .post(&srv, &page, "", &code_at(&totp, now() + 30))
        .await;
    assert_eq!(p.status, 429, "{}", p.body);
    assert!(p.body.contains("Wait a few minutes"), "{}", p.body);
    let p = flow.post(&srv, &page, "", &codes[0]).await;
    assert_eq!(p.status, 429);
    // Those refusals did not end the sign-in or spend the recovery code.
    let other_user = srv.user().await;
    let (flow2, page2) = Flow::password(&srv, &client, &other_user).await;
    assert!(
        page2.body.contains("Set up"),
        "another user is not affected"
    );
    drop((flow2, page2));
    assert_eq!(flow.post(&srv, &page, "", "").await.status, 429);
}
on_both_stores_with!(
    per_user_backoff,
    TotpPolicy::Required,
    ten_wrong_codes_across_sign_ins_make_the_user_wait
);

async fn admin_reset_makes_the_user_enrol_again(srv: Srv) {
    let (client, username, _, _) = enrolled_user(&srv).await;
    let get = |srv: Srv, username: String| async move {
        let resp = srv
            .http
            .get(format!("{}/admin/users/{username}", srv.admin))
            .bearer_auth(&srv.admin_token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.text().await.unwrap()
    };
    let view = get(srv.clone(), username.clone()).await;
    let json: serde_json::Value = serde_json::from_str(&view).unwrap();
    assert_eq!(json["totpEnrolled"], true, "{view}");
    assert!(
        !view.to_lowercase().contains("secret") && !view.contains("recovery"),
        "{view}"
    );
    // Updating the user (new password) keeps the authenticator.
    let status = srv
        .put_user(
            &username,
            serde_json::json!({"password": PASSWORD, "name": "Renamed"}),
        )
        .await;
    assert_eq!(status, 204);
    let (_, page) = Flow::password(&srv, &client, &username).await;
    assert!(page.body.contains("Two-step verification"), "{}", page.body);

    let reset = |name: String| {
        srv.http
            .delete(format!("{}/admin/users/{name}/totp", srv.admin))
            .bearer_auth(&srv.admin_token)
            .send()
    };
    assert_eq!(reset(username.clone()).await.unwrap().status(), 204);
    assert_eq!(
        reset(username.clone()).await.unwrap().status(),
        204,
        "idempotent"
    );
    assert_eq!(reset("nobody".into()).await.unwrap().status(), 404);
    // Audited once (the second reset removed nothing), as the newest second-factor event.
    // Before it: enrolment asked, enrolled, code asked.
    let records = srv
        .audit_records(&format!("event=mfa&username={username}"), 4)
        .await;
    let details: Vec<&str> = records
        .iter()
        .map(|r| r["detail"].as_str().unwrap())
        .collect();
    assert_eq!(details[0], "authenticator reset by an administrator");
    assert_eq!(
        details.iter().filter(|d| d.contains("reset")).count(),
        1,
        "{details:?}"
    );
    let unauthenticated = srv
        .http
        .delete(format!("{}/admin/users/{username}/totp", srv.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
    let json: serde_json::Value =
        serde_json::from_str(&get(srv.clone(), username.clone()).await).unwrap();
    assert_eq!(json["totpEnrolled"], false);
    // The parked sign-in from before the reset cannot continue.
    let (_, page) = Flow::password(&srv, &client, &username).await;
    assert!(
        page.body.contains("Set up two-step verification"),
        "{}",
        page.body
    );
    // A new enrolment works.
    enrol(&srv, &client, &username).await;
}
on_both_stores_with!(
    admin_reset,
    TotpPolicy::Required,
    admin_reset_makes_the_user_enrol_again
);

async fn disabled_policy_asks_nothing(srv: Srv) {
    let client = srv.confidential().await;
    let username = srv.user().await;
    let status = srv
        .put_user(
            &username,
            serde_json::json!({"password": PASSWORD, "mfaRequired": true}),
        )
        .await;
    assert_eq!(status, 204);
    let (flow, page) = Flow::password(&srv, &client, &username).await;
    let claims = flow.claims(&srv, &client, &page).await;
    assert_eq!(claims["amr"], serde_json::json!(["pwd"]));
    assert_eq!(claims["acr"], "urn:palisade:acr:1fa");
}
on_both_stores_with!(
    disabled_policy,
    TotpPolicy::Disabled,
    disabled_policy_asks_nothing
);

async fn optional_policy_asks_flagged_users_and_reprompts_old_sessions(srv: Srv) {
    let client = srv.confidential().await;
    let username = srv.user().await;
    // Not flagged, not enrolled: the password is enough, and a session starts.
    let (flow, page) = Flow::password(&srv, &client, &username).await;
    let claims = flow.claims(&srv, &client, &page).await;
    assert_eq!(claims["amr"], serde_json::json!(["pwd"]));
    let (url, _) = authorize_url(&srv, &client.id, &[]);
    let sso = flow.browser.get(&url).await;
    assert!(
        sso.location.as_deref().unwrap().starts_with(REDIRECT),
        "SSO"
    );

    // Flagged by an administrator: the password-only session no longer counts.
    let status = srv
        .put_user(
            &username,
            serde_json::json!({"password": PASSWORD, "mfaRequired": true}),
        )
        .await;
    assert_eq!(status, 204);
    let reprompt = flow.browser.get(&url).await;
    assert_eq!(reprompt.status, 303);
    assert!(
        reprompt
            .location
            .as_deref()
            .unwrap()
            .contains("/t/login?request="),
        "re-prompted: {:?}",
        reprompt.location
    );
    let (url, _) = authorize_url(&srv, &client.id, &[("prompt", "none")]);
    let silent = flow.browser.get(&url).await;
    assert_eq!(silent.location_query()["error"], "login_required");
    let (_, page) = Flow::password(&srv, &client, &username).await;
    assert!(page.body.contains("Set up two-step verification"));

    // After enrolling, the 2fa session is reused.
    let enrolled = srv.user().await;
    let (flow, page) = Flow::password(&srv, &client, &enrolled).await;
    flow.claims(&srv, &client, &page).await;
    let status = srv
        .put_user(
            &enrolled,
            serde_json::json!({"password": PASSWORD, "mfaRequired": true}),
        )
        .await;
    assert_eq!(status, 204);
    let (flow, page) = Flow::password(&srv, &client, &enrolled).await;
    let (_, totp) = authenticator(&page);
    let shown = flow
        .post(&srv, &page, "/enrol", &code_at(&totp, now()))
        .await;
    let done = flow.post(&srv, &shown, "/continue", "").await;
    flow.claims(&srv, &client, &done).await;
    let (url, _) = authorize_url(&srv, &client.id, &[]);
    let sso = flow.browser.get(&url).await;
    assert!(
        sso.location.as_deref().unwrap().starts_with(REDIRECT),
        "2fa session reused"
    );
}
on_both_stores_with!(
    optional_policy,
    TotpPolicy::Optional,
    optional_policy_asks_flagged_users_and_reprompts_old_sessions
);

async fn forms_are_bound_to_the_browser_and_checked(srv: Srv) {
    let client = srv.confidential().await;
    let username = srv.user().await;
    let (flow, page) = Flow::password(&srv, &client, &username).await;
    let (_, totp) = authenticator(&page);
    let signin = page.hidden("signin").unwrap();
    let code = code_at(&totp, now());
    // Wrong CSRF token.
    let p = flow
        .browser
        .post(
            &srv.url("/login/totp/enrol"),
            &[
                ("signin", signin.as_str()),
                ("csrf", "forged"),
                ("code", &code),
            ],
        )
        .await;
    assert_eq!(p.status, 403);
    // Another browser with its own valid CSRF pair cannot continue this sign-in.
    let (url, _) = authorize_url(&srv, &client.id, &[]);
    let other = Browser::default();
    let login = other.login_page(&url).await;
    let csrf = login.hidden("csrf").unwrap();
    let p = other
        .post(
            &srv.url("/login/totp/enrol"),
            &[
                ("signin", signin.as_str()),
                ("csrf", csrf.as_str()),
                ("code", &code),
            ],
        )
        .await;
    assert_eq!(p.status, 403, "{}", p.body);
    // Unknown sign-in id; malformed form; over-long code.
    let mine = page.hidden("csrf").unwrap();
    let p = flow
        .browser
        .post(
            &srv.url("/login/totp"),
            &[
                ("signin", "nope"),
                ("csrf", mine.as_str()),
                ("code", "123456"),
            ],
        )
        .await;
    assert_eq!(p.status, 400);
    let long = "9".repeat(100);
    let p = flow.post(&srv, &page, "/enrol", &long).await;
    assert_eq!(p.status, 400);
    // A verify-step form cannot be used on the enrolment sign-in, and vice versa.
    let p = flow.post(&srv, &page, "", &code).await;
    assert_eq!(p.status, 400);
    let p = flow.post(&srv, &page, "/continue", "").await;
    assert_eq!(p.status, 400);
    // Still usable afterwards.
    let shown = flow.post(&srv, &page, "/enrol", &code).await;
    assert_eq!(shown.status, 200, "{}", shown.body);
}
on_both_stores_with!(
    forms_are_checked,
    TotpPolicy::Required,
    forms_are_bound_to_the_browser_and_checked
);

#[tokio::test]
async fn mfa_pages_have_their_own_rate_limit() {
    let limits = palisade_wire::contract::RateLimits {
        mfa: Some(palisade_wire::contract::RateLimit {
            requests_per_minute: 1,
            burst: 2,
        }),
        ..Default::default()
    };
    let srv = common::start_with(
        std::sync::Arc::new(palisade_auth_server::store::memory::MemoryStore::default()),
        common::ttls(),
        None,
        limits,
    )
    .await;
    let mut statuses = vec![];
    for _ in 0..3 {
        let resp = srv
            .http
            .post(srv.url("/login/totp"))
            .form(&[("signin", "x"), ("csrf", "y"), ("code", "123456")])
            .send()
            .await
            .unwrap();
        statuses.push(resp.status().as_u16());
    }
    assert_eq!(statuses, [403, 403, 429]);
    // The login page's own bucket is untouched.
    let client = srv.confidential().await;
    let (url, _) = authorize_url(&srv, &client.id, &[]);
    Browser::default().login_page(&url).await;
}

async fn users_can_choose_to_enrol_under_the_optional_policy(srv: Srv) {
    let client = srv.confidential().await;
    let username = srv.user().await;
    let (url, verifier) = authorize_url(&srv, &client.id, &[]);
    let browser = Browser::default();
    let login = browser.login_page(&url).await;
    assert!(login.body.contains("name=\"enrol_totp\""), "{}", login.body);
    let request = login.hidden("request").unwrap();
    let csrf = login.hidden("csrf").unwrap();
    let page = browser
        .post(
            &srv.url("/login"),
            &[
                ("request", request.as_str()),
                ("csrf", csrf.as_str()),
                ("username", username.as_str()),
                ("password", PASSWORD),
                ("enrol_totp", "1"),
            ],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let flow = Flow { browser, verifier };
    let (_, totp) = authenticator(&page);
    let shown = flow
        .post(&srv, &page, "/enrol", &code_at(&totp, now()))
        .await;
    let done = flow.post(&srv, &shown, "/continue", "").await;
    let claims = flow.claims(&srv, &client, &done).await;
    assert_eq!(claims["acr"], "urn:palisade:acr:2fa");
    // Enrolled: asked from now on, without ticking anything.
    let (_, page) = Flow::password(&srv, &client, &username).await;
    assert!(page.body.contains("Two-step verification"), "{}", page.body);
}
on_both_stores_with!(
    self_enrolment,
    TotpPolicy::Optional,
    users_can_choose_to_enrol_under_the_optional_policy
);

async fn required_policy_offers_no_checkbox(srv: Srv) {
    let client = srv.confidential().await;
    let (url, _) = authorize_url(&srv, &client.id, &[]);
    let login = Browser::default().login_page(&url).await;
    assert!(!login.body.contains("enrol_totp"));
}
on_both_stores_with!(
    no_checkbox_when_required,
    TotpPolicy::Required,
    required_policy_offers_no_checkbox
);
