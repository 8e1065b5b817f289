//! Encryption at rest of TOTP secrets, which cannot be hashed (the server must compute codes
//! from them). AES-256-GCM, as the cookies use, with a key derived by HKDF-SHA-256 from the
//! internal Secret's `password-pepper` (stable for the provider's lifetime: it cannot rotate
//! without invalidating every password either). The user's `sub` is the associated data, so
//! a sealed secret copied to another user's row does not open.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// Version prefix of a sealed value (a later key or algorithm gets another).
const PREFIX: &str = "v1.";
const NONCE_BYTES: usize = 12;
const HKDF_INFO: &[u8] = b"palisade totp secret v1";

/// Seals and opens TOTP secrets. Deliberately not `Debug`.
pub struct SecretBox {
    cipher: Aes256Gcm,
}

impl SecretBox {
    /// A box keyed from `material` (at least 16 bytes).
    pub fn new(material: &[u8]) -> anyhow::Result<Self> {
        if material.len() < 16 {
            anyhow::bail!("the key material for TOTP secrets must be at least 16 bytes");
        }
        let mut key = [0u8; 32];
        hkdf::Hkdf::<sha2::Sha256>::new(None, material)
            .expand(HKDF_INFO, &mut key)
            .map_err(|_| anyhow::anyhow!("HKDF output length"))?;
        Ok(SecretBox {
            cipher: Aes256Gcm::new(&Key::<Aes256Gcm>::from(key)),
        })
    }

    /// `secret` sealed for `context` (the user's `sub`): `v1.` + base64url(nonce ‖ ciphertext).
    pub fn seal(&self, secret: &[u8], context: &str) -> String {
        use rand::RngCore;
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: secret,
                    aad: context.as_bytes(),
                },
            )
            .expect("AES-GCM encryption of a short message cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(out))
    }

    /// The secret sealed for `context`, or `None` when the value is not authentic (another
    /// key, another context, tampered).
    pub fn open(&self, sealed: &str, context: &str) -> Option<Vec<u8>> {
        let raw = URL_SAFE_NO_PAD.decode(sealed.strip_prefix(PREFIX)?).ok()?;
        if raw.len() <= NONCE_BYTES {
            return None;
        }
        let (nonce, ciphertext) = raw.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().ok()?;
        self.cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_the_same_key_and_context() {
        let a = SecretBox::new(b"pepper-material-one").unwrap();
        let sealed = a.seal(b"totp secret bytes", "sub-1");
        assert!(sealed.starts_with("v1."));
        assert!(!sealed.contains("totp"));
        assert_ne!(sealed, a.seal(b"totp secret bytes", "sub-1"), "fresh nonce");
        assert_eq!(
            a.open(&sealed, "sub-1").as_deref(),
            Some(&b"totp secret bytes"[..])
        );
        assert_eq!(a.open(&sealed, "sub-2"), None, "another user");
        let b = SecretBox::new(b"pepper-material-two").unwrap();
        assert_eq!(b.open(&sealed, "sub-1"), None, "another key");
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(a.open(&tampered, "sub-1"), None);
        assert_eq!(a.open("v1.", "sub-1"), None);
        assert_eq!(a.open("garbage", "sub-1"), None);
        assert!(SecretBox::new(b"short").is_err());
    }
}
