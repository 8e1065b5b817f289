//! TOTP codes (RFC 6238 with the parameters every authenticator app uses: HMAC-SHA-1, six
//! digits, 30-second steps), computed by the `totp-rs` crate. A code is accepted for the
//! current step and one step either side (clock drift), and each step at most once per user
//! ([`step_is_fresh`]; the store applies it atomically).

use totp_rs::{Algorithm, Builder, Totp, TotpError};

/// Digits of a code.
pub const DIGITS: u8 = 6;
/// Seconds per step.
pub const STEP_SECS: u64 = 30;
/// Steps accepted either side of the current one.
pub const SKEW_STEPS: u16 = 1;
/// Bytes of a new secret (160 bits, RFC 4226 §4's recommendation).
pub const SECRET_BYTES: usize = 20;

/// A fresh random secret.
pub fn new_secret() -> Vec<u8> {
    use rand::RngCore;
    let mut secret = vec![0u8; SECRET_BYTES];
    rand::rng().fill_bytes(&mut secret);
    secret
}

/// The label of the provider in authenticator apps: the issuer's host (an otpauth label may
/// not contain `:`, so no port).
pub fn issuer_label(issuer: &str) -> String {
    url::Url::parse(issuer)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| "Palisade".into())
}

/// The authenticator of `secret` for `account` (the username) at `issuer_label`. A `:`,
/// which otpauth labels cannot carry, becomes `_` in the displayed names only.
pub fn authenticator(secret: &[u8], issuer_label: &str, account: &str) -> Result<Totp, TotpError> {
    builder(secret)
        .with_issuer(Some(issuer_label.replace(':', "_")))
        .with_account_name(account.replace(':', "_"))
        .build()
}

/// The code generator of `secret`, for checking codes (no labels: they only matter in URIs).
pub fn generator(secret: &[u8]) -> Result<Totp, TotpError> {
    builder(secret).build()
}

/// What every authenticator app uses (HMAC-SHA-1, 6 digits, 30 s steps, ±1 step) for `secret`.
fn builder(secret: &[u8]) -> Builder {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS)
        .with_skew(SKEW_STEPS)
        .with_step_duration(STEP_SECS)
        .with_secret(secret.to_vec())
}

/// Whether `code` has the shape of a TOTP code (six digits, spaces ignored) rather than a
/// recovery code.
pub fn looks_like_totp(code: &str) -> bool {
    let digits: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    digits.len() == usize::from(DIGITS) && digits.bytes().all(|b| b.is_ascii_digit())
}

/// The step whose code `code` is, among the current step at `now_unix` and one either side;
/// `None` for a wrong or malformed code.
pub fn matched_step(totp: &Totp, code: &str, now_unix: u64) -> Option<i64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if !looks_like_totp(&code) {
        return None;
    }
    totp.check(&code, now_unix)
        .and_then(|s| i64::try_from(s).ok())
}

/// Whether `step` may be accepted after `last_accepted` (RFC 6238 §5.2: a code is accepted
/// once; an older step than the last accepted one is refused too).
pub fn step_is_fresh(last_accepted: Option<i64>, step: i64) -> bool {
    last_accepted.is_none_or(|last| step > last)
}

/// The QR code of `uri` as an inline SVG element (no image crate, no external resource).
pub fn qr_svg(uri: &str) -> Option<String> {
    let code = qrcode::QrCode::with_error_correction_level(uri, qrcode::EcLevel::M).ok()?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build();
    // Drop the XML declaration: the element is embedded in an HTML page.
    Some(match svg.find("<svg") {
        Some(i) => svg[i..].to_string(),
        None => svg,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totp() -> Totp {
        authenticator(b"12345678901234567890", "id.example.com", "alice").unwrap()
    }

    #[test]
    fn rfc_6238_sha1_vectors_with_six_digits() {
        // RFC 6238 Appendix B (SHA-1), last six digits of the eight-digit values.
        let t = totp();
        assert_eq!(t.generate(59).to_string(), "287082");
        assert_eq!(t.generate(1111111109).to_string(), "081804");
        assert_eq!(t.generate(2000000000).to_string(), "279037");
    }

    #[test]
    fn one_step_either_side_is_accepted_two_are_not() {
        let t = totp();
        let now = 1_700_000_015u64;
        let step = (now / STEP_SECS) as i64;
        for (offset, expected) in [
            (-2i64, None),
            (-1, Some(step - 1)),
            (0, Some(step)),
            (1, Some(step + 1)),
            (2, None),
        ] {
            let at = (now as i64 + offset * STEP_SECS as i64) as u64;
            let code = t.generate(at).to_string();
            assert_eq!(matched_step(&t, &code, now), expected, "offset {offset}");
        }
        assert_eq!(matched_step(&t, "12345", now), None);
        assert_eq!(matched_step(&t, "abcdef", now), None);
        let spaced = t.generate(now).to_string();
        let spaced = format!("{} {}", &spaced[..3], &spaced[3..]);
        assert_eq!(matched_step(&t, &spaced, now), Some(step));
    }

    #[test]
    fn a_step_is_accepted_once_and_older_steps_never() {
        assert!(step_is_fresh(None, 10));
        assert!(step_is_fresh(Some(9), 10));
        assert!(!step_is_fresh(Some(10), 10), "replay");
        assert!(!step_is_fresh(Some(11), 10), "older than the last accepted");
    }

    #[test]
    fn the_otpauth_uri_names_the_provider_and_the_user() {
        let t = authenticator(
            &new_secret(),
            &issuer_label("https://id.example.com:8443/realm"),
            "bob:x",
        )
        .unwrap();
        let uri = t.to_url().unwrap();
        assert!(
            uri.starts_with("otpauth://totp/id.example.com:bob_x?"),
            "{uri}"
        );
        assert!(uri.contains("issuer=id.example.com"), "{uri}");
        let parsed = Totp::from_url(&uri).unwrap();
        assert_eq!(
            parsed.generate(1000).to_string(),
            t.generate(1000).to_string()
        );
        let checker = generator(parsed.secret().as_bytes()).unwrap();
        let code = t.generate(1000).to_string();
        assert_eq!(matched_step(&checker, &code, 1000), Some(33));
        let svg = qr_svg(&uri).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("</svg>"), "{svg}");
    }

    #[test]
    fn codes_and_recovery_codes_are_told_apart_by_shape() {
        assert!(looks_like_totp("123456") && looks_like_totp("123 456"));
        assert!(!looks_like_totp("abcd-efgh-jkmn-pqrs") && !looks_like_totp("1234567"));
    }
}
