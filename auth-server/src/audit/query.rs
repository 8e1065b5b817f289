//! Filters of `GET /admin/audit`, parsed from the query string and applied by the stores.

use super::{AuditEvent, AuditRecord, Outcome};
use chrono::{DateTime, Utc};
use std::collections::HashMap;

/// Most records one page returns.
pub const MAX_LIMIT: usize = 1000;
/// Records per page when `limit` is absent.
pub const DEFAULT_LIMIT: usize = 100;

/// Which records to list, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub event: Option<AuditEvent>,
    pub outcome: Option<Outcome>,
    pub subject: Option<String>,
    pub username: Option<String>,
    pub client_id: Option<String>,
    /// At or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Before this time.
    pub until: Option<DateTime<Utc>>,
    /// Only ids below this one (the `next` cursor of the previous page).
    pub before: Option<i64>,
    pub limit: usize,
}

impl AuditQuery {
    /// Parses the query parameters; an error names the parameter and what it accepts.
    pub fn parse(params: &HashMap<String, String>) -> Result<Self, String> {
        let mut q = AuditQuery {
            limit: DEFAULT_LIMIT,
            ..Default::default()
        };
        for (k, v) in params {
            let time = |v: &str| {
                DateTime::parse_from_rfc3339(v)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| format!("{k} must be an RFC 3339 time"))
            };
            match k.as_str() {
                "event" => {
                    q.event = Some(AuditEvent::parse(v).ok_or_else(|| {
                        "event must be one of login, mfa, federated_login, token_issued, refresh_reuse, client_registration, key_rotation".to_string()
                    })?)
                }
                "outcome" => {
                    q.outcome = Some(
                        Outcome::parse(v)
                            .ok_or_else(|| "outcome must be success or failure".to_string())?,
                    )
                }
                "subject" => q.subject = Some(v.clone()),
                "username" => q.username = Some(v.clone()),
                "client_id" => q.client_id = Some(v.clone()),
                "since" => q.since = Some(time(v)?),
                "until" => q.until = Some(time(v)?),
                "before" => {
                    q.before = Some(
                        v.parse()
                            .map_err(|_| "before must be a record id".to_string())?,
                    )
                }
                "limit" => {
                    q.limit = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_LIMIT).contains(n))
                        .ok_or_else(|| format!("limit must be 1 to {MAX_LIMIT}"))?
                }
                other => return Err(format!("unknown parameter {other}")),
            }
        }
        Ok(q)
    }

    /// Whether `r` passes the filters (the memory store's query; PostgreSQL has it in SQL).
    pub fn matches(&self, r: &AuditRecord) -> bool {
        let eq = |want: &Option<String>, have: &Option<String>| {
            want.as_ref().is_none_or(|w| have.as_ref() == Some(w))
        };
        self.event.is_none_or(|e| e == r.event)
            && self.outcome.is_none_or(|o| o == r.outcome)
            && eq(&self.subject, &r.subject)
            && eq(&self.username, &r.username)
            && eq(&self.client_id, &r.client_id)
            && self.since.is_none_or(|t| r.time >= t)
            && self.until.is_none_or(|t| r.time < t)
            && self.before.is_none_or(|b| r.id < b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(p: &[(&str, &str)]) -> HashMap<String, String> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_filters_and_refuses_bad_values_by_name() {
        let q = AuditQuery::parse(&params(&[
            ("event", "login"),
            ("outcome", "failure"),
            ("since", "2026-01-01T00:00:00Z"),
            ("limit", "5"),
        ]))
        .unwrap();
        assert_eq!(q.event, Some(AuditEvent::Login));
        assert_eq!(q.outcome, Some(Outcome::Failure));
        assert_eq!(q.limit, 5);
        assert_eq!(
            AuditQuery::parse(&params(&[])).unwrap().limit,
            DEFAULT_LIMIT
        );
        for (bad, named) in [
            (("event", "nope"), "event"),
            (("outcome", "maybe"), "outcome"),
            (("since", "yesterday"), "since"),
            (("limit", "0"), "limit"),
            (("limit", "1001"), "limit"),
            (("before", "x"), "before"),
            (("password", "x"), "password"),
        ] {
            let e = AuditQuery::parse(&params(&[bad])).unwrap_err();
            assert!(e.contains(named), "{e}");
        }
    }

    #[test]
    fn matches_every_filter() {
        let t = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut r = AuditRecord::new(AuditEvent::TokenIssued, Outcome::Success, t)
            .subject("u1")
            .client("app");
        r.id = 10;
        let q = |f: fn(&mut AuditQuery)| {
            let mut q = AuditQuery::default();
            f(&mut q);
            q.matches(&r)
        };
        assert!(q(|_| {}));
        assert!(q(|q| q.client_id = Some("app".into())));
        assert!(!q(|q| q.client_id = Some("other".into())));
        assert!(
            !q(|q| q.username = Some("alice".into())),
            "no username recorded"
        );
        assert!(!q(|q| q.event = Some(AuditEvent::Login)));
        assert!(!q(|q| q.outcome = Some(Outcome::Failure)));
        assert!(q(|q| q.before = Some(11)));
        assert!(!q(|q| q.before = Some(10)));
        assert!(q(|q| q.since = Some(DateTime::<Utc>::MIN_UTC)));
        assert!(!q(|q| q.until = Some(DateTime::<Utc>::MIN_UTC)));
    }
}
