//! The auth-server binary in development mode (in-memory store): discovery, client_credentials,
//! introspection, revocation, RFC error shapes and the token endpoint's rate limit, over HTTP
//! on 127.0.0.1.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

struct Server {
    child: Child,
    /// Where the server's log goes, shown when it does not become ready.
    log: std::path::PathBuf,
    base: String,
    admin: String,
    admin_token: String,
    secret: String,
    dev_password: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Two distinct free ports: both listeners are held until both are chosen.
fn free_ports() -> (u16, u16) {
    let bind = || std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (a, b) = (bind(), bind());
    (
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    )
}

fn start(rate_limits: &str) -> Server {
    let (public, admin) = free_ports();
    let log = std::env::temp_dir().join(format!("palisade-dev-server-{public}.log"));
    let base = format!("http://127.0.0.1:{public}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_palisade-auth-server"))
        .env_clear()
        .env("PALISADE_ISSUER", &base)
        .env("PALISADE_PUBLIC_ADDR", format!("127.0.0.1:{public}"))
        .env("PALISADE_ADMIN_ADDR", format!("127.0.0.1:{admin}"))
        .env("PALISADE_RATE_LIMITS", rate_limits)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("auth-server starts");
    // Drain stdout for the server's whole life: a closed pipe would fail its later prints.
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = rx.iter();
    let secret = lines
        .by_ref()
        .find_map(|l| l.split("client_secret=").nth(1).map(str::to_string))
        .expect("dev client printed");
    let dev_password = lines
        .by_ref()
        .find_map(|l| l.split("username=dev password=").nth(1).map(str::to_string))
        .expect("dev user printed");
    let admin_token = lines
        .find_map(|l| l.split("admin token: ").nth(1).map(str::to_string))
        .expect("admin token printed");
    Server {
        child,
        log,
        base,
        admin: format!("http://127.0.0.1:{admin}"),
        admin_token,
        secret,
        dev_password,
    }
}

impl Server {
    /// Waits until `/readyz` answers 200; otherwise fails with the server's exit status and log.
    async fn wait_ready(&mut self) {
        for _ in 0..400 {
            if reqwest::get(format!("{}/readyz", self.base))
                .await
                .is_ok_and(|r| r.status() == 200)
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the server exited ({status}): {}", self.log_text());
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("not ready after 20 s: {}", self.log_text());
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

#[tokio::test]
async fn dev_issuer_issues_introspects_revokes_and_limits() {
    let mut s = start(r#"{"token":{"requestsPerMinute":60,"burst":5}}"#);
    s.wait_ready().await;
    let http = reqwest::Client::new();

    let discovery: serde_json::Value = http
        .get(format!("{}/.well-known/openid-configuration", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["issuer"], s.base);
    assert_eq!(discovery["token_endpoint"], format!("{}/token", s.base));
    assert_eq!(
        discovery["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );

    let token = |secret: &str| {
        http.post(format!("{}/token", s.base))
            .basic_auth("dev-client", Some(secret.to_string()))
            .form(&[("grant_type", "client_credentials"), ("scope", "api")])
            .send()
    };
    let resp = token(&s.secret).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: serde_json::Value = resp.json().await.unwrap();
    let access = body["access_token"].as_str().unwrap().to_string();

    let introspect = || {
        http.post(format!("{}/introspect", s.base))
            .basic_auth("dev-client", Some(s.secret.clone()))
            .form(&[("token", access.as_str())])
            .send()
    };
    let active: serde_json::Value = introspect().await.unwrap().json().await.unwrap();
    assert_eq!(active["active"], true);
    assert_eq!(active["scope"], "api");
    let revoked = http
        .post(format!("{}/revoke", s.base))
        .basic_auth("dev-client", Some(s.secret.clone()))
        .form(&[("token", access.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let inactive: serde_json::Value = introspect().await.unwrap().json().await.unwrap();
    assert_eq!(inactive, serde_json::json!({"active": false}));

    // RFC error shapes.
    let wrong = token("wrong").await.unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().contains_key("www-authenticate"));
    assert_eq!(
        wrong.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_client"
    );
    let unsupported = http
        .post(format!("{}/token", s.base))
        .basic_auth("dev-client", Some(s.secret.clone()))
        .form(&[("grant_type", "password")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        unsupported.json::<serde_json::Value>().await.unwrap()["error"],
        "unsupported_grant_type"
    );
    // Its own connection: the server closes it after refusing the body.
    let oversized = reqwest::Client::new()
        .post(format!("{}/token", s.base))
        .body(vec![b'a'; 70_000])
        .send()
        .await
        .unwrap();
    assert_eq!(oversized.status(), 413);

    // The token endpoint allows a burst of 5 per address, then 429 with Retry-After.
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let r = token(&s.secret).await.unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            assert!(r.headers().contains_key("retry-after"));
        }
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(
        statuses.iter().filter(|s| **s == 429).count() >= 2,
        "{statuses:?}"
    );
}

/// The printed development client and user can do the authorization code flow as documented
/// (redirect URI http://127.0.0.1:8765/callback, no PKCE needed for a confidential client).
#[tokio::test]
async fn dev_client_and_dev_user_do_the_code_flow() {
    let mut s = start("{}");
    s.wait_ready().await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let redirect = "http://127.0.0.1:8765/callback";
    let to_login = http
        .get(format!("{}/authorize", s.base))
        .query(&[
            ("response_type", "code"),
            ("client_id", "dev-client"),
            ("redirect_uri", redirect),
            ("scope", "openid profile email"),
            ("state", "x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(to_login.status(), 303);
    let login_url = to_login.headers()["location"].to_str().unwrap().to_string();
    let page = http.get(&login_url).send().await.unwrap();
    let cookie = page.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let html = page.text().await.unwrap();
    let hidden = |name: &str| {
        let needle = format!("name=\"{name}\" value=\"");
        let start = html.find(&needle).unwrap() + needle.len();
        html[start..start + html[start..].find('"').unwrap()].to_string()
    };
    let done = http
        .post(format!("{}/login", s.base))
        .header("cookie", cookie)
        .form(&[
            ("request", hidden("request")),
            ("csrf", hidden("csrf")),
            ("username", "dev".into()),
            ("password", s.dev_password.clone()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 303);
    let location = url::Url::parse(done.headers()["location"].to_str().unwrap()).unwrap();
    assert!(location.as_str().starts_with(redirect));
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .to_string();
    let tokens: serde_json::Value = http
        .post(format!("{}/token", s.base))
        .basic_auth("dev-client", Some(s.secret.clone()))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(tokens["id_token"].is_string(), "{tokens}");
    assert!(tokens["refresh_token"].is_string(), "{tokens}");
}

/// `/authorize`, `/login` (sharing the authorize bucket) and `/userinfo` are rate limited.
#[tokio::test]
async fn authorize_login_and_userinfo_are_rate_limited() {
    let mut s = start(
        r#"{"authorize":{"requestsPerMinute":1,"burst":2},"userinfo":{"requestsPerMinute":1,"burst":2}}"#,
    );
    s.wait_ready().await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut statuses = Vec::new();
    for path in ["/authorize", "/login?request=x", "/authorize"] {
        let r = http.get(format!("{}{path}", s.base)).send().await.unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            assert!(r.headers().contains_key("retry-after"));
        }
    }
    assert_eq!(statuses, [400, 400, 429], "two in the burst, then limited");
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let r = http
            .get(format!("{}/userinfo", s.base))
            .bearer_auth("x")
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 429]);
}

#[tokio::test]
async fn sigterm_stops_the_server_gracefully() {
    let mut server = start("{}");
    server.wait_ready().await;
    let killed = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    for _ in 0..100 {
        if let Some(status) = server.child.try_wait().unwrap() {
            // Killed by the signal, the status would carry no exit code.
            assert_eq!(status.code(), Some(0), "a clean exit after SIGTERM");
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("still running 5 s after SIGTERM");
}

/// Statuses of `/authorize` requests carrying these `X-Forwarded-For` values.
async fn authorize_statuses(base: &str, forwarded: &[&str]) -> Vec<u16> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut statuses = Vec::new();
    for xff in forwarded {
        let r = http
            .get(format!("{base}/authorize"))
            .header("x-forwarded-for", *xff)
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    statuses
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_bucket() {
    let limit = r#""authorize":{"requestsPerMinute":1,"burst":1}"#;
    // The test client (127.0.0.1) plays the ingress controller.
    let mut s = start(&format!(r#"{{{limit},"trustedProxies":["127.0.0.0/8"]}}"#));
    s.wait_ready().await;
    assert_eq!(
        authorize_statuses(
            &s.base,
            &["198.51.100.1", "198.51.100.2", "6.6.6.6, 198.51.100.1"]
        )
        .await,
        [400, 400, 429],
        "two clients, one request each; a spoofed hop left of the real one changes nothing"
    );
    // Without trusted proxies the header is ignored: everyone is 127.0.0.1.
    let mut s = start(&format!("{{{limit}}}"));
    s.wait_ready().await;
    assert_eq!(
        authorize_statuses(&s.base, &["198.51.100.1", "198.51.100.2"]).await,
        [400, 429]
    );
}

/// Password hashing gives its memory back. argon2id works in 19 MiB; an allocator that keeps
/// a freed block of that size for each thread that hashed leaves the server hundreds of MiB
/// larger after a burst of logins (glibc's defaults: 247 MiB after 20 sequential hashes;
/// mimalloc's: 131 MiB after these 16).
#[tokio::test]
async fn password_hashes_give_their_memory_back() {
    let mut s = start("{}");
    s.wait_ready().await;
    let http = reqwest::Client::new();
    let puts = (0..16).map(|i| {
        http.put(format!("{}/admin/users/user{i}", s.admin))
            .bearer_auth(&s.admin_token)
            .json(&serde_json::json!({"password": format!("correct horse battery {i}")}))
            .send()
    });
    for resp in futures::future::join_all(puts).await {
        assert_eq!(resp.unwrap().status(), 201);
    }
    let status = std::fs::read_to_string(format!("/proc/{}/status", s.child.id())).unwrap();
    let rss_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc");
    assert!(
        rss_kib < 64 * 1024,
        "RSS after 16 password hashes: {rss_kib} KiB"
    );
}
