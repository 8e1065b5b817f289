//! The TOTP second factor (RFC 6238): when it is asked for ([`policy`]), codes and their
//! replay rule ([`totp`]), single-use recovery codes ([`recovery`]) and the encryption of
//! secrets at rest ([`seal`]). The pages and their handlers live in `endpoints/mfa.rs`.

pub mod policy;
pub mod recovery;
pub mod seal;
pub mod totp;
