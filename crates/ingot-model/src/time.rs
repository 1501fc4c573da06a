use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unparseable time {value:?}: expected RFC 3339 (any offset, 0-9 fractional digits) or a zone-less UTC time")]
pub struct TimeError {
    pub value: String,
}

/// Parses a 3PA time to UTC. Accepts RFC 3339 with any offset and 0–9 fractional digits
/// (`2021-12-31T19:00:00-05:00`, `2023-03-29T18:00:27.877041743Z`) and, when
/// `zoneless_is_utc` is set, a time without offset taken as UTC (WooCommerce `*_gmt`
/// fields: `2017-03-22T19:28:02`, see QUIRKS Q-W7; also `2024-04-01 14:27:15`).
pub fn parse_time(value: &str, zoneless_is_utc: bool) -> Result<DateTime<Utc>, TimeError> {
    let v = value.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok(t.with_timezone(&Utc));
    }
    if zoneless_is_utc {
        for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
            if let Ok(t) = NaiveDateTime::parse_from_str(v, fmt) {
                return Ok(t.and_utc());
            }
        }
    }
    Err(TimeError {
        value: value.to_string(),
    })
}

/// Formats a time as RFC 3339 UTC with `Z`, keeping sub-second digits only when present
/// (`2022-01-01T00:00:00Z`, `2023-03-29T18:00:27.877041743Z`).
pub fn format_utc(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_and_fractions_normalize_to_utc() {
        let t = parse_time("2021-12-31T19:00:00-05:00", false).unwrap();
        assert_eq!(format_utc(&t), "2022-01-01T00:00:00Z");
        let t = parse_time("2023-03-29T18:00:27.877041743Z", false).unwrap();
        assert_eq!(format_utc(&t), "2023-03-29T18:00:27.877041743Z");
        let t = parse_time("2017-03-22T19:28:02", true).unwrap();
        assert_eq!(format_utc(&t), "2017-03-22T19:28:02Z");
        assert!(parse_time("2017-03-22T19:28:02", false).is_err());
        assert!(parse_time("yesterday", true).is_err());
    }
}
