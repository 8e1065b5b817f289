//! Secrets hygiene: gathers every secret a test run used (each Secret's values in its namespace,
//! the signing keys' private parts, passwords and tokens the test itself handled) and asserts
//! that none of them appears in what people and tools read: the log lines the operator and the
//! auth-server printed, the namespace's Events, the custom resources' status, and every object
//! that is not a Secret.

use palisade_wire::keyset::KeySet;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Secret keys whose values are meant to be read (they are copied into status and docs).
const PUBLIC_KEYS: &[&str] = &["client_id", "issuer", "discovery_url"];
/// Shorter values match ordinary words and names; every generated secret is far longer.
const MIN_NEEDLE: usize = 12;
/// The kinds, besides Events and Palisade's own, that the operator writes or a person reads.
const SCANNED_KINDS: &str = "events,authproviders,oauthclients,deployments,services,configmaps,\
jobs,horizontalpodautoscalers,poddisruptionbudgets,networkpolicies,serviceaccounts,ingresses,leases";

/// Every secret value seen so far, each with a description that names it without showing it.
#[derive(Default)]
pub struct SecretWatch {
    needles: BTreeMap<String, String>,
}

impl SecretWatch {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a value the test handled itself (a password, a token).
    pub fn add(&mut self, what: &str, value: &str) {
        if value.len() >= MIN_NEEDLE {
            self.needles.insert(value.to_string(), what.to_string());
        }
    }

    /// Number of distinct secret values gathered.
    pub fn len(&self) -> usize {
        self.needles.len()
    }

    /// Whether nothing was gathered.
    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    /// Records every secret value now in the namespace's Secrets. Call it again whenever
    /// secrets may have changed (a key rotation drops retired private keys from the Secret).
    pub fn collect(&mut self, ns: &str) {
        let list: serde_json::Value = serde_json::from_str(&crate::kubectl_ok(&[
            "get", "secrets", "-n", ns, "-o", "json",
        ]))
        .expect("secret list is JSON");
        for item in list["items"].as_array().into_iter().flatten() {
            let name = item["metadata"]["name"].as_str().unwrap_or_default();
            let data: BTreeMap<String, String> = item["data"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| Some((k.clone(), decode(v.as_str()?)?)))
                .collect();
            for (key, value) in &data {
                if PUBLIC_KEYS.contains(&key.as_str()) {
                    continue;
                }
                let what = format!("Secret {name} key {key}");
                self.add_secret_value(&what, value);
            }
            if let (Some(id), Some(secret)) = (data.get("client_id"), data.get("client_secret")) {
                use base64::Engine;
                let basic =
                    base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
                self.add(&format!("Secret {name} as HTTP Basic credentials"), &basic);
            }
        }
    }

    fn add_secret_value(&mut self, what: &str, value: &str) {
        if let Ok(set) = KeySet::from_json(value.as_bytes()) {
            for key in &set.keys {
                self.add_pem(
                    &format!("{what}: private key {}", key.kid),
                    &key.private_key_pem,
                );
            }
        } else if value.contains("-----BEGIN") {
            self.add_pem(what, value);
        } else {
            self.add(what, value);
        }
    }

    /// A PEM block is matched by each line of its base64 body, so a partial print is caught.
    fn add_pem(&mut self, what: &str, pem: &str) {
        for line in pem.lines().filter(|l| !l.starts_with("-----")) {
            self.add(what, line.trim());
        }
    }

    /// Fails the test if any gathered secret appears in one of `logs` (every line), in the
    /// namespace's Events or in any object of [`SCANNED_KINDS`], or if any of them carries a URL
    /// with a password in it. The failure names the secret and where it was seen, never the value.
    pub fn assert_clean(&self, ns: &str, logs: &[PathBuf]) {
        assert!(
            !self.is_empty(),
            "nothing gathered: collect() the namespace first"
        );
        let mut sources: Vec<(String, String)> = logs
            .iter()
            .map(|p| {
                let text = std::fs::read_to_string(p)
                    .unwrap_or_else(|e| panic!("log {} unreadable: {e}", p.display()));
                (p.display().to_string(), text)
            })
            .collect();
        // Some log must hold something, or the scan proves nothing; not each, since a process
        // killed as it starts (the crash test's kills after 0 ms) leaves an empty log.
        assert!(
            logs.is_empty() || sources.iter().any(|(_, text)| !text.is_empty()),
            "every log is empty: {logs:?}"
        );
        sources.push((
            format!("objects in namespace {ns} ({SCANNED_KINDS})"),
            crate::kubectl_ok(&["get", SCANNED_KINDS, "-n", ns, "-o", "json"]),
        ));
        let found = self.scan(&sources);
        let lines: usize = sources.iter().map(|(_, t)| t.lines().count()).sum();
        println!(
            "secrets hygiene: {} secret values watched in {} sources ({lines} lines): {} found",
            self.needles.len(),
            sources.len(),
            found.len()
        );
        assert!(
            found.is_empty(),
            "secrets leaked ({} values watched):\n{}",
            self.needles.len(),
            found.join("\n")
        );
    }
}

impl SecretWatch {
    /// Where each watched secret, or a URL with a password, appears in `sources` (name, text).
    pub fn scan(&self, sources: &[(String, String)]) -> Vec<String> {
        let mut found = Vec::new();
        for (source, text) in sources {
            for (number, line) in text.lines().enumerate() {
                for (needle, what) in &self.needles {
                    if line.contains(needle.as_str()) {
                        found.push(format!("{what} in {source} line {}", number + 1));
                    }
                }
                for url in urls_with_password(line) {
                    found.push(format!(
                        "a URL with a password ({url}) in {source} line {}",
                        number + 1
                    ));
                }
            }
        }
        found
    }
}

fn decode(b64: &str) -> Option<String> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    String::from_utf8(bytes).ok()
}

/// `scheme://user:password@` prefixes in `text`, with the password masked.
pub fn urls_with_password(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let scheme_start = rest[..at]
            .rfind(|c: char| !c.is_ascii_alphanumeric() && c != '+' && c != '-' && c != '.')
            .map_or(0, |i| i + 1);
        let scheme = &rest[scheme_start..at];
        let after = &rest[at + 3..];
        let authority_end = after
            .find(['/', '?', '#', '"', '\'', ' ', '\\'])
            .unwrap_or(after.len());
        let authority = &after[..authority_end];
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            if let Some((user, password)) = userinfo.split_once(':') {
                if !scheme.is_empty() && !password.is_empty() {
                    found.push(format!("{scheme}://{user}:***@"));
                }
            }
        }
        rest = after;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_passwords_in_urls_and_ignores_plain_ones() {
        assert_eq!(
            urls_with_password(r#"{"msg":"connecting","url":"postgres://app:s3cret@db:5432/x"}"#),
            vec!["postgres://app:***@".to_string()]
        );
        assert_eq!(
            urls_with_password("redis://127.0.0.1:6379 and https://issuer.example.com:443/a@b"),
            Vec::<String>::new()
        );
        assert_eq!(
            urls_with_password("redis://:pw@127.0.0.1:6379"),
            vec!["redis://:***@".to_string()]
        );
    }

    #[test]
    fn a_secret_in_a_log_line_is_found_and_named_without_its_value() {
        let mut watch = SecretWatch::new();
        watch.add("Secret x key admin-token", "tok-0123456789abcdef");
        let sources = [
            ("clean.log".to_string(), "{\"msg\":\"ready\"}\n".to_string()),
            (
                "leaky.log".to_string(),
                "first\n{\"msg\":\"auth\",\"header\":\"Bearer tok-0123456789abcdef\"}\n"
                    .to_string(),
            ),
        ];
        let found = watch.scan(&sources);
        assert_eq!(
            found,
            vec!["Secret x key admin-token in leaky.log line 2".to_string()]
        );
        assert!(!found[0].contains("tok-0123"));
    }

    #[test]
    fn private_keys_are_watched_line_by_line_and_short_values_are_not() {
        let mut watch = SecretWatch::new();
        watch.add_secret_value(
            "pem",
            "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49\nAwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n",
        );
        watch.add("short", "palisade");
        assert_eq!(watch.len(), 2);
        assert!(watch
            .needles
            .contains_key("MIGHAgEAMBMGByqGSM49AgEGCCqGSM49"));
        assert!(watch.needles.contains_key("AwEHBG0wawIBAQQg"));
    }
}
