//! Which step follows a correct password, and whether an existing session is strong enough.
//! Pure functions of the provider's policy, the user's flags and their enrolment.

use crate::auth_methods::{FEDERATED, MULTI_FACTOR};
use chrono::{DateTime, Duration, Utc};
use palisade_wire::contract::TotpPolicy;

/// Wrong codes a user may present (across sign-ins) before the back-off starts.
pub const FREE_FAILURES: u32 = 10;
/// The first wait; it doubles with every further wrong code, up to [`MAX_BACKOFF_SECS`].
const FIRST_BACKOFF_SECS: i64 = 30;
/// The longest wait between two guesses once the back-off has grown.
pub const MAX_BACKOFF_SECS: i64 = 15 * 60;

/// Until when a user who presented `failures` wrong codes in a row, the last at
/// `last_failure_at`, may not try another code (`None`: now). Someone who knows the password
/// can restart sign-ins, each ending after five wrong codes; this bounds their guesses per user.
pub fn backoff_until(
    failures: u32,
    last_failure_at: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    let last = last_failure_at?;
    let over = failures.checked_sub(FREE_FAILURES)?;
    let secs = FIRST_BACKOFF_SECS
        .saturating_mul(1i64 << over.min(20))
        .min(MAX_BACKOFF_SECS);
    Some(last + Duration::seconds(secs))
}

/// What the sign-in does after the password was verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextStep {
    /// Signed in with the password alone.
    Done,
    /// Ask for a TOTP code (or a recovery code).
    Verify,
    /// The user must enrol an authenticator first.
    Enrol,
}

/// The step after a correct password, under `policy`, for a user who must use a second factor
/// (`mfa_required`: the admin flag, or the user asked to enrol) and has (`enrolled`) or has not
/// an authenticator.
pub fn next_step(policy: TotpPolicy, mfa_required: bool, enrolled: bool) -> NextStep {
    match (policy, enrolled) {
        (TotpPolicy::Disabled, _) => NextStep::Done,
        (_, true) => NextStep::Verify,
        (TotpPolicy::Required, false) => NextStep::Enrol,
        (TotpPolicy::Optional, false) if mfa_required => NextStep::Enrol,
        (TotpPolicy::Optional, false) => NextStep::Done,
    }
}

/// Whether a session whose sign-in used the methods `amr` may be reused without signing in
/// again: it may unless this user now needs a second factor the session did not have (a
/// session from before the policy became Required, or before the user enrolled). A sign-in
/// through an upstream provider suffices: the upstream authenticated the user, with its own
/// second-factor policy (the TOTP policy is about passwords checked here).
pub fn session_suffices(
    policy: TotpPolicy,
    mfa_required: bool,
    enrolled: bool,
    amr: &[String],
) -> bool {
    next_step(policy, mfa_required, enrolled) == NextStep::Done
        || amr.iter().any(|m| m == MULTI_FACTOR || m == FEDERATED)
}

#[cfg(test)]
mod tests {
    use super::*;
    use TotpPolicy::*;

    #[test]
    fn disabled_never_asks_even_enrolled_or_flagged_users() {
        assert_eq!(next_step(Disabled, true, true), NextStep::Done);
        assert_eq!(next_step(Disabled, true, false), NextStep::Done);
    }

    #[test]
    fn optional_asks_enrolled_users_and_makes_flagged_users_enrol() {
        assert_eq!(next_step(Optional, false, false), NextStep::Done);
        assert_eq!(next_step(Optional, false, true), NextStep::Verify);
        assert_eq!(next_step(Optional, true, false), NextStep::Enrol);
        assert_eq!(next_step(Optional, true, true), NextStep::Verify);
    }

    #[test]
    fn required_makes_everyone_enrol_or_verify() {
        assert_eq!(next_step(Required, false, false), NextStep::Enrol);
        assert_eq!(next_step(Required, false, true), NextStep::Verify);
    }

    #[test]
    fn the_back_off_starts_after_ten_wrong_codes_and_doubles_up_to_fifteen_minutes() {
        let t = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        assert_eq!(backoff_until(9, Some(t)), None);
        assert_eq!(backoff_until(50, None), None, "no failure time, no wait");
        assert_eq!(backoff_until(10, Some(t)), Some(t + Duration::seconds(30)));
        assert_eq!(backoff_until(11, Some(t)), Some(t + Duration::seconds(60)));
        assert_eq!(backoff_until(13, Some(t)), Some(t + Duration::seconds(240)));
        assert_eq!(backoff_until(15, Some(t)), Some(t + Duration::seconds(900)));
        assert_eq!(
            backoff_until(u32::MAX, Some(t)),
            Some(t + Duration::seconds(900))
        );
    }

    #[test]
    fn password_only_sessions_do_not_satisfy_a_later_requirement() {
        let pwd = vec!["pwd".to_string()];
        let mfa: Vec<String> = ["pwd", "otp", "mfa"].map(String::from).to_vec();
        assert!(session_suffices(Optional, false, false, &pwd));
        assert!(!session_suffices(Required, false, false, &pwd));
        assert!(
            !session_suffices(Optional, false, true, &pwd),
            "enrolled since"
        );
        assert!(
            !session_suffices(Optional, true, false, &pwd),
            "flagged since"
        );
        assert!(session_suffices(Required, false, true, &mfa));
        assert!(session_suffices(Disabled, true, true, &pwd));
        let fed = vec!["fed".to_string()];
        assert!(
            session_suffices(Required, true, true, &fed),
            "the upstream authenticated"
        );
        assert!(
            !session_suffices(Required, false, false, &[]),
            "unknown methods"
        );
    }
}
