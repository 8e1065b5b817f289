//! User passwords: argon2id with a server-wide pepper (the internal Secret's
//! `password-pepper`, passed as argon2's secret parameter), so a stolen database alone cannot
//! be brute-forced. Unknown users are checked against a dummy hash, so timing does not tell
//! whether a username exists.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// How many argon2 computations run at once: each takes ~19 MiB and a core for tens of
/// milliseconds, so a flood of logins queues instead of exhausting memory.
const CONCURRENT_HASHES: usize = 4;

/// Hashes and verifies passwords with the pepper.
pub struct Passwords {
    pepper: Vec<u8>,
    dummy_hash: String,
    slots: Semaphore,
}

impl Passwords {
    /// A hasher with `pepper` (any length up to argon2's limit; empty means no pepper).
    pub fn new(pepper: Vec<u8>) -> anyhow::Result<Self> {
        let mut p = Passwords {
            pepper,
            dummy_hash: String::new(),
            slots: Semaphore::new(CONCURRENT_HASHES),
        };
        p.dummy_hash = p.hash(&palisade_wire::registration::random_token(16))?;
        Ok(p)
    }

    fn argon2(&self) -> anyhow::Result<Argon2<'_>> {
        Argon2::new_with_secret(
            &self.pepper,
            Algorithm::Argon2id,
            Version::V0x13,
            Params::default(),
        )
        .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))
    }

    /// A PHC string (`$argon2id$...`) of `password` with a fresh salt.
    pub fn hash(&self, password: &str) -> anyhow::Result<String> {
        let salt = SaltString::generate(&mut OsRng);
        Ok(self
            .argon2()?
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))?
            .to_string())
    }

    /// Whether `password` matches `stored`. With no stored hash (unknown user, or a user
    /// without a password) the dummy hash is checked anyway and `false` returned.
    pub fn verify(&self, password: &str, stored: Option<&str>) -> bool {
        let (hash, real) = match stored {
            Some(h) => (h, true),
            None => (self.dummy_hash.as_str(), false),
        };
        let Ok(parsed) = PasswordHash::new(hash) else {
            return false;
        };
        let Ok(argon2) = self.argon2() else {
            return false;
        };
        argon2.verify_password(password.as_bytes(), &parsed).is_ok() && real
    }
}

/// [`Passwords::verify`] on a blocking thread, at most [`CONCURRENT_HASHES`] at a time.
pub async fn verify_blocking(p: Arc<Passwords>, password: String, stored: Option<String>) -> bool {
    let Ok(_slot) = p.slots.acquire().await else {
        return false;
    };
    let p2 = p.clone();
    tokio::task::spawn_blocking(move || p2.verify(&password, stored.as_deref()))
        .await
        .unwrap_or(false)
}

/// [`Passwords::hash`] on a blocking thread, at most [`CONCURRENT_HASHES`] at a time.
pub async fn hash_blocking(p: Arc<Passwords>, password: String) -> anyhow::Result<String> {
    let _slot = p.slots.acquire().await?;
    let p2 = p.clone();
    tokio::task::spawn_blocking(move || p2.hash(&password)).await?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_salted_and_bound_to_the_pepper() {
        let p = Passwords::new(b"pepper-one".to_vec()).unwrap();
        let h = p.hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(!h.contains("correct"));
        assert_ne!(h, p.hash("correct horse").unwrap(), "fresh salt each time");
        assert!(p.verify("correct horse", Some(&h)));
        assert!(!p.verify("wrong horse", Some(&h)));
        let other = Passwords::new(b"pepper-two".to_vec()).unwrap();
        assert!(
            !other.verify("correct horse", Some(&h)),
            "another pepper cannot verify"
        );
    }

    #[tokio::test]
    async fn blocking_helpers_hash_and_verify_off_the_runtime() {
        let p = Arc::new(Passwords::new(b"pepper".to_vec()).unwrap());
        let h = hash_blocking(p.clone(), "open sesame".into())
            .await
            .unwrap();
        assert!(verify_blocking(p.clone(), "open sesame".into(), Some(h.clone())).await);
        assert!(!verify_blocking(p.clone(), "open says me".into(), Some(h)).await);
        assert!(!verify_blocking(p, "open sesame".into(), None).await);
    }

    #[test]
    fn unknown_users_never_verify_even_with_the_dummy_password() {
        let p = Passwords::new(vec![]).unwrap();
        assert!(!p.verify("anything", None));
        assert!(!p.verify("x", Some("not-a-phc-string")));
    }
}
