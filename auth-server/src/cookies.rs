//! Browser cookies: the session cookie and the login form's CSRF cookie. Both are sealed
//! (AES-256-GCM, authenticated, name bound as associated data) with a key derived from the
//! internal Secret's `cookie-key`, so a client can neither read nor forge them.

use axum::http::{header, HeaderMap};
use cookie::{Cookie, CookieJar, Key, SameSite};

/// Name of the session cookie (value: a random session token; the store keeps its hash).
pub const SESSION_COOKIE: &str = "palisade_session";
/// Name of the CSRF cookie of the login form (double submit: the form echoes its value).
pub const CSRF_COOKIE: &str = "palisade_csrf";

/// Name of the cookie binding an upstream sign-in to the browser that started it (value: the
/// `state` sent to the upstream, which the callback must carry back).
pub const UPSTREAM_COOKIE: &str = "palisade_upstream";

/// Seals and opens cookies.
pub struct Cookies {
    key: Key,
    /// Cookie `Path`: the issuer's path, so cookies of two issuers on one host stay apart.
    path: String,
    /// `Secure` when the issuer is https.
    secure: bool,
}

impl Cookies {
    /// Cookies for `issuer`, keyed from `material` (at least 32 bytes: the operator writes 32
    /// random bytes, base64url). The key is derived with HKDF, so any such string works.
    pub fn new(material: &[u8], issuer: &str) -> anyhow::Result<Self> {
        if material.len() < 32 {
            anyhow::bail!("the cookie key must be at least 32 bytes");
        }
        let path = crate::url_path(issuer);
        Ok(Cookies {
            key: Key::derive_from(material),
            path: if path.is_empty() { "/".into() } else { path },
            secure: issuer.starts_with("https://"),
        })
    }

    /// A `Set-Cookie` value sealing `value` under `name`, kept for `max_age_secs`.
    pub fn seal(&self, name: &str, value: &str, max_age_secs: u64) -> String {
        let mut jar = CookieJar::new();
        let mut c = Cookie::new(name.to_string(), value.to_string());
        c.set_path(self.path.clone());
        c.set_http_only(true);
        c.set_same_site(SameSite::Lax);
        c.set_secure(self.secure);
        c.set_max_age(cookie::time::Duration::seconds(
            i64::try_from(max_age_secs).unwrap_or(i64::MAX),
        ));
        jar.private_mut(&self.key).add(c);
        jar.get(name).expect("just added").to_string()
    }

    /// A `Set-Cookie` value deleting `name`.
    pub fn clear(&self, name: &str) -> String {
        let mut c = Cookie::new(name.to_string(), "");
        c.set_path(self.path.clone());
        c.set_http_only(true);
        c.set_same_site(SameSite::Lax);
        c.set_secure(self.secure);
        c.make_removal();
        c.to_string()
    }

    /// The opened value of cookie `name` in the request, if present and authentic.
    pub fn open(&self, headers: &HeaderMap, name: &str) -> Option<String> {
        let mut jar = CookieJar::new();
        for value in headers.get_all(header::COOKIE) {
            let Ok(value) = value.to_str() else { continue };
            for c in Cookie::split_parse(value.to_string()).flatten() {
                if c.name() == name {
                    jar.add_original(c.into_owned());
                }
            }
        }
        jar.private(&self.key)
            .get(name)
            .map(|c| c.value().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_with(cookie: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, cookie.parse().unwrap());
        h
    }

    fn pair(set_cookie: &str) -> String {
        set_cookie.split(';').next().unwrap().to_string()
    }

    #[test]
    fn sealed_cookies_open_only_with_the_same_key_and_name() {
        let a = Cookies::new(&[7u8; 32], "https://id.example/realm").unwrap();
        let set = a.seal(SESSION_COOKIE, "token-123", 60);
        assert!(!set.contains("token-123"), "the value is encrypted");
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Lax"));
        assert!(set.contains("Secure") && set.contains("Path=/realm"));
        let req = request_with(&format!("other=1; {}", pair(&set)));
        assert_eq!(a.open(&req, SESSION_COOKIE).as_deref(), Some("token-123"));
        let b = Cookies::new(&[8u8; 32], "https://id.example/realm").unwrap();
        assert_eq!(b.open(&req, SESSION_COOKIE), None, "another key");
        let renamed = pair(&set).replacen(SESSION_COOKIE, CSRF_COOKIE, 1);
        assert_eq!(
            a.open(&request_with(&renamed), CSRF_COOKIE),
            None,
            "a value cannot move to another cookie name"
        );
        assert_eq!(
            a.open(&request_with("palisade_session=forged"), SESSION_COOKIE),
            None
        );
    }

    #[test]
    fn http_issuers_get_no_secure_flag_and_short_keys_are_refused() {
        let c = Cookies::new(&[1u8; 40], "http://127.0.0.1:8080").unwrap();
        let set = c.seal(CSRF_COOKIE, "x", 60);
        assert!(!set.contains("Secure") && set.contains("Path=/"));
        assert!(c.clear(SESSION_COOKIE).contains("Max-Age=0"));
        assert!(Cookies::new(&[1u8; 16], "http://x").is_err());
    }
}
