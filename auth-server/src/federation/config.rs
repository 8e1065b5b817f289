//! The upstream providers' configuration: [`env::UPSTREAMS`] (JSON, rendered by the operator)
//! plus one client-secret variable per upstream ([`upstream_secret_env`]). Checked once at
//! start-up, so a bad setting stops the server with a clear message instead of failing a user.

use palisade_wire::contract::{env, upstream_secret_env, Upstream};
use std::fmt;

/// One upstream, validated, with its client secret.
#[derive(Clone, PartialEq, Eq)]
pub struct UpstreamConfig {
    pub upstream: Upstream,
    pub client_secret: String,
}

// The secret never reaches a log line, even through `{:?}`.
impl fmt::Debug for UpstreamConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamConfig")
            .field("upstream", &self.upstream)
            .field("client_secret", &"<redacted>")
            .finish()
    }
}

/// Whether `name` is a DNS label (RFC 1123: 1 to 63 of `a-z0-9-`, no `-` at either end).
pub fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && !name.starts_with('-')
        && !name.ends_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Whether `issuer` may be an upstream: an https URL, or plain http to the loopback host
/// (`127.0.0.1`, `[::1]`, `localhost`) for tests and development. No query or fragment.
pub fn issuer_allowed(issuer: &str) -> bool {
    let Ok(url) = url::Url::parse(issuer) else {
        return false;
    };
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return false;
    }
    match url.scheme() {
        "https" => url.host().is_some(),
        "http" => matches!(
            url.host_str(),
            Some("127.0.0.1") | Some("[::1]") | Some("localhost")
        ),
        _ => false,
    }
}

/// Checks the list: names, issuers, client ids, claim names and unique names. Pure.
pub fn validate(upstreams: &[Upstream]) -> Result<(), String> {
    for (i, u) in upstreams.iter().enumerate() {
        if !is_dns_label(&u.name) {
            return Err(format!(
                "upstream name {:?} must be a DNS label (lower-case letters, digits and '-')",
                u.name
            ));
        }
        if upstreams[..i].iter().any(|o| o.name == u.name) {
            return Err(format!("upstream name {:?} is used twice", u.name));
        }
        if !issuer_allowed(&u.issuer) {
            return Err(format!(
                "upstream {}: issuer {:?} must be an https URL (http only for 127.0.0.1 or localhost)",
                u.name, u.issuer
            ));
        }
        if u.client_id.is_empty() || u.display_name.trim().is_empty() {
            return Err(format!(
                "upstream {}: clientId and displayName must not be empty",
                u.name
            ));
        }
        let c = &u.claims;
        if [&c.subject, &c.email, &c.name].iter().any(|n| n.is_empty()) {
            return Err(format!(
                "upstream {}: claim names must not be empty",
                u.name
            ));
        }
    }
    Ok(())
}

/// Parses and validates the upstream list and looks up each client secret with `secret`
/// (the environment in production). Pure apart from `secret`.
pub fn parse(
    json: Option<&str>,
    secret: impl Fn(&str) -> Option<String>,
) -> Result<Vec<UpstreamConfig>, String> {
    let Some(json) = json.filter(|j| !j.trim().is_empty()) else {
        return Ok(Vec::new());
    };
    let upstreams: Vec<Upstream> =
        serde_json::from_str(json).map_err(|e| format!("{}: {e}", env::UPSTREAMS))?;
    validate(&upstreams)?;
    upstreams
        .into_iter()
        .map(|upstream| {
            let var = upstream_secret_env(&upstream.name);
            let client_secret = secret(&var).filter(|s| !s.is_empty()).ok_or_else(|| {
                format!(
                    "upstream {}: its client secret is missing ({var} is unset)",
                    upstream.name
                )
            })?;
            Ok(UpstreamConfig {
                upstream,
                client_secret,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = r#"[{"name":"google","displayName":"Google","issuer":"https://accounts.google.com","clientId":"abc"}]"#;

    fn secrets(var: &str) -> Option<String> {
        (var == "PALISADE_UPSTREAM_CLIENT_SECRET_GOOGLE").then(|| "s3cret".to_string())
    }

    #[test]
    fn absent_or_empty_means_no_upstreams() {
        assert_eq!(parse(None, secrets).unwrap(), vec![]);
        assert_eq!(parse(Some("  "), secrets).unwrap(), vec![]);
    }

    #[test]
    fn an_upstream_gets_its_secret_from_its_own_variable() {
        let list = parse(Some(ONE), secrets).unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].upstream.name, "google");
        assert_eq!(list[0].client_secret, "s3cret");
        assert!(
            !format!("{:?}", list[0]).contains("s3cret"),
            "Debug redacts"
        );
        let missing = parse(Some(ONE), |_| None).unwrap_err();
        assert!(
            missing.contains("PALISADE_UPSTREAM_CLIENT_SECRET_GOOGLE"),
            "{missing}"
        );
    }

    #[test]
    fn bad_names_issuers_and_duplicates_are_refused() {
        let with = |name: &str, issuer: &str| {
            format!(r#"{{"name":"{name}","displayName":"X","issuer":"{issuer}","clientId":"c"}}"#)
        };
        let list = |items: &[String]| format!("[{}]", items.join(","));
        let ok = |j: String| parse(Some(&j), |_| Some("s".into()));
        assert!(ok(list(&[with("Google", "https://a.example")])).is_err());
        assert!(ok(list(&[with("-g", "https://a.example")])).is_err());
        assert!(ok(list(&[with("g", "http://a.example")])).is_err());
        assert!(ok(list(&[with("g", "ftp://a.example")])).is_err());
        assert!(ok(list(&[with("g", "https://a.example?x=1")])).is_err());
        let dup = ok(list(&[
            with("g", "https://a.example"),
            with("g", "https://b.example"),
        ]));
        assert!(dup.unwrap_err().contains("used twice"));
        assert!(ok(list(&[with("g", "http://127.0.0.1:9000/t")])).is_ok());
        assert!(ok(list(&[with("g", "http://localhost:9000")])).is_ok());
        assert!(ok(list(&[with("g1", "https://a.example/tenant/v2.0")])).is_ok());
        assert!(parse(Some("{not json"), |_| None).is_err());
    }
}
