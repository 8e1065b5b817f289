//! How a user authenticated: the `amr` values (RFC 8176) a session records and the `acr`
//! (authentication context class) the ID token derives from them.

/// A password (RFC 8176 `pwd`).
pub const PASSWORD: &str = "pwd";
/// A one-time password, here TOTP (RFC 8176 `otp`).
pub const ONE_TIME_PASSWORD: &str = "otp";
/// More than one factor (RFC 8176 `mfa`).
pub const MULTI_FACTOR: &str = "mfa";
/// A single-use recovery code instead of the authenticator. RFC 8176 has no value for it, so
/// a collision-resistant name (§2 allows them) tells relying parties it was not a TOTP code.
pub const RECOVERY_CODE: &str = "urn:palisade:amr:recovery-code";
/// Signed in through an upstream OpenID provider. Not an RFC 8176 value (it registers none
/// for federation); Palisade's own, see docs/decisions.md.
pub const FEDERATED: &str = "fed";

/// `acr` of a sign-in with one factor.
pub const ACR_SINGLE_FACTOR: &str = "urn:palisade:acr:1fa";
/// `acr` of a sign-in with a second factor.
pub const ACR_MULTI_FACTOR: &str = "urn:palisade:acr:2fa";
/// Every `acr` value this provider issues (`acr_values_supported`).
pub const ACR_VALUES: [&str; 2] = [ACR_SINGLE_FACTOR, ACR_MULTI_FACTOR];

/// The `acr` claim for a sign-in by `amr`; none when the methods are unknown (a grant minted
/// before methods were recorded).
pub fn acr(amr: &[String]) -> Option<String> {
    if amr.is_empty() {
        None
    } else if amr.iter().any(|m| m == MULTI_FACTOR) {
        Some(ACR_MULTI_FACTOR.into())
    } else {
        Some(ACR_SINGLE_FACTOR.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acr_follows_the_methods() {
        let v = |s: &[&str]| s.iter().map(|m| m.to_string()).collect::<Vec<_>>();
        assert_eq!(acr(&v(&["pwd"])).as_deref(), Some(ACR_SINGLE_FACTOR));
        assert_eq!(
            acr(&v(&["pwd", "otp", "mfa"])).as_deref(),
            Some(ACR_MULTI_FACTOR)
        );
        assert_eq!(acr(&[]), None);
    }
}
