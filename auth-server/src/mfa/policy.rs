//! Which step follows a correct password, and whether an existing session is strong enough.
//! Pure functions of the provider's policy, the user's flags and their enrolment.

use crate::auth_methods::MULTI_FACTOR;
use palisade_wire::contract::TotpPolicy;

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

/// The step after a correct password, under `policy`, for a user with the admin flag
/// `mfa_required` who has (`enrolled`) or has not an authenticator.
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
/// session from before the policy became Required, or before the user enrolled).
pub fn session_suffices(
    policy: TotpPolicy,
    mfa_required: bool,
    enrolled: bool,
    amr: &[String],
) -> bool {
    next_step(policy, mfa_required, enrolled) == NextStep::Done
        || amr.iter().any(|m| m == MULTI_FACTOR)
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
        assert!(
            !session_suffices(Required, false, false, &[]),
            "unknown methods"
        );
    }
}
