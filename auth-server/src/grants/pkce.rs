//! PKCE (RFC 7636) with S256 only: `plain` offers no protection against a stolen code.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Whether `s` is a syntactically valid code verifier or S256 challenge: 43 to 128 characters
/// of `[A-Za-z0-9-._~]` (RFC 7636 §4.1, §4.2).
pub fn well_formed(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// The S256 challenge of a verifier: `BASE64URL(SHA256(verifier))`.
pub fn s256_challenge(verifier: &str) -> String {
    B64.encode(Sha256::digest(verifier.as_bytes()))
}

/// Whether `verifier` proves `challenge`, compared in constant time.
pub fn verify_s256(challenge: &str, verifier: &str) -> bool {
    if !well_formed(verifier) {
        return false;
    }
    let computed = s256_challenge(verifier);
    computed.len() == challenge.len() && bool::from(computed.as_bytes().ct_eq(challenge.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b_example_verifies() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert_eq!(s256_challenge(verifier), challenge);
        assert!(verify_s256(challenge, verifier));
    }

    #[test]
    fn wrong_short_or_plain_verifiers_fail() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = s256_challenge(verifier);
        assert!(!verify_s256(
            &challenge,
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXK"
        ));
        assert!(!verify_s256(&challenge, "short"), "too short");
        assert!(
            !verify_s256(verifier, verifier),
            "a plain challenge (verifier == challenge) does not pass"
        );
        assert!(!well_formed(&"a".repeat(129)));
        assert!(!well_formed(&format!("{}!", "a".repeat(43))));
    }
}
