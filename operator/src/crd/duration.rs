//! Durations as users write them: Go duration strings such as `40s`, `15m`, `1h30m`, `720h`
//! (the same syntax CEL's `duration()` reads, so the API server can compare them).

use std::time::Duration;

/// The OpenAPI pattern every duration field carries.
pub const PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$";

/// Parses a Go-style duration (`ms`, `s`, `m`, `h` units, fractions allowed).
pub fn parse(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration such as 90s, 15m or 1h30m");
    if text.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let value: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (0.001, 2)
        } else if rest.starts_with('s') {
            (1.0, 1)
        } else if rest.starts_with('m') {
            (60.0, 1)
        } else if rest.starts_with('h') {
            (3600.0, 1)
        } else {
            return Err(bad());
        };
        total += value * unit;
        rest = &rest[len..];
    }
    Ok(Duration::from_secs_f64(total))
}

/// Parses a duration already validated by the API server; falls back to `default` if a
/// hand-crafted object slipped an invalid one through (never panics in the controller).
pub fn parse_or(text: &str, default: Duration) -> Duration {
    parse(text).unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse("40s").unwrap(), Duration::from_secs(40));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("720h").unwrap(), Duration::from_secs(720 * 3600));
        assert_eq!(parse("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse("250ms").unwrap(), Duration::from_millis(250));
    }

    #[test]
    fn rejects_what_the_api_server_rejects() {
        for bad in ["", "10", "5d", "h", "1h 30m", "-5s"] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert_eq!(
            parse_or("nonsense", Duration::from_secs(7)),
            Duration::from_secs(7)
        );
    }
}
