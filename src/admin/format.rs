//! Text forms the admin API shares with the `restate` CLI: compact "friendly" durations,
//! RFC 3339 UTC timestamps, and the human-readable input/output descriptions of handlers.
//!
//! This module owns only formatting; it is pure (no clock, no I/O). Timestamps are written by
//! the crate-wide [`crate::timefmt`]; the tests here pin the form the CLI needs.
//!
//! Invariants:
//! - [`friendly_duration_ms`] writes days as the largest unit and milliseconds as the smallest,
//!   units separated by one space, `0s` for zero; every output parses back with the CLI's
//!   duration parser (`1d 12h 4m 2s`, `500ms`).
//! - [`rfc3339_utc_ms`] always ends in `Z` (the CLI rejects `+00:00`) and prints a fraction
//!   only when the milliseconds are non-zero, then always with three digits.

use crate::protocol::discovery::{InputPayload, OutputPayload};

const MS_PER_SECOND: u64 = 1_000;
const MS_PER_MINUTE: u64 = 60 * MS_PER_SECOND;
const MS_PER_HOUR: u64 = 60 * MS_PER_MINUTE;
const MS_PER_DAY: u64 = 24 * MS_PER_HOUR;

/// A duration in milliseconds in the compact friendly form (`1d 2h`, `10m`, `1s 500ms`, `0s`).
pub fn friendly_duration_ms(duration_ms: u64) -> String {
    if duration_ms == 0 {
        return "0s".to_owned();
    }
    let units = [
        (MS_PER_DAY, "d"),
        (MS_PER_HOUR, "h"),
        (MS_PER_MINUTE, "m"),
        (MS_PER_SECOND, "s"),
        (1, "ms"),
    ];
    let mut rest = duration_ms;
    let mut parts = Vec::with_capacity(units.len());
    for (unit_ms, designator) in units {
        let n = rest / unit_ms;
        rest %= unit_ms;
        if n > 0 {
            parts.push(format!("{n}{designator}"));
        }
    }
    debug_assert_eq!(rest, 0);
    parts.join(" ")
}

/// Milliseconds since the Unix epoch as RFC 3339 in UTC: `2026-01-02T03:04:05Z`, or
/// `2026-01-02T03:04:05.123Z` when the milliseconds are non-zero.
pub fn rfc3339_utc_ms(unix_ms: u64) -> String {
    crate::timefmt::rfc3339_ms(unix_ms)
}

/// How a handler's accepted input reads to a person: `none`, `*/*`, `application/json`,
/// `JSON 'Title'` or `JSON <type>`. When an empty body is accepted besides a content type,
/// only the content type is shown. A handler without an input description accepts an empty
/// body or any content type (`*/*`).
pub fn input_description(input: Option<&InputPayload>) -> String {
    let Some(input) = input else {
        return "*/*".to_owned();
    };
    let mut alternatives = Vec::with_capacity(2);
    if !input.required.unwrap_or(false) {
        alternatives.push("none".to_owned());
    }
    if let Some(content_type) = &input.content_type {
        alternatives.push(
            json_detail(input.json_schema.as_ref())
                .unwrap_or_else(|| content_type.trim().to_owned()),
        );
    }
    // At most two alternatives, the first being "none": show the last one.
    alternatives.pop().unwrap_or_else(|| "<invalid rules>".to_owned())
}

/// How a handler's output reads to a person: `none`, `application/json`, `JSON 'Title'`,
/// `JSON <type>`, or `optional application/json` when the content type is sent even with an
/// empty output. A handler without an output description returns `application/json`.
pub fn output_description(output: Option<&OutputPayload>) -> String {
    let Some(output) = output else {
        return "application/json".to_owned();
    };
    let Some(content_type) = &output.content_type else {
        return "none".to_owned();
    };
    if let Some(detail) = json_detail(output.json_schema.as_ref()) {
        return detail;
    }
    if output.set_content_type_if_empty.unwrap_or(false) {
        format!("optional {content_type}")
    } else {
        content_type.clone()
    }
}

/// `JSON 'Title'` from a schema's `title`, else `JSON <type>` from its `type`.
fn json_detail(schema: Option<&serde_json::Value>) -> Option<String> {
    let schema = schema?;
    if let Some(serde_json::Value::String(title)) = schema.get("title") {
        return Some(format!("JSON '{title}'"));
    }
    if let Some(serde_json::Value::String(ty)) = schema.get("type") {
        return Some(format!("JSON {ty}"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(friendly_duration_ms(0), "0s");
        assert_eq!(friendly_duration_ms(100), "100ms");
        assert_eq!(friendly_duration_ms(1_500), "1s 500ms");
        assert_eq!(friendly_duration_ms(60_000), "1m");
        assert_eq!(friendly_duration_ms(600_000), "10m");
        assert_eq!(friendly_duration_ms(3_600_000), "1h");
        assert_eq!(friendly_duration_ms(86_400_000), "1d");
        assert_eq!(
            friendly_duration_ms(86_400_000 + 12 * 3_600_000 + 4 * 60_000 + 2_000),
            "1d 12h 4m 2s"
        );
        assert_eq!(friendly_duration_ms(30 * 86_400_000), "30d");
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339_utc_ms(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc_ms(1), "1970-01-01T00:00:00.001Z");
        // 2000-02-29 (leap day of a century divisible by 400).
        assert_eq!(rfc3339_utc_ms(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc_ms(951_868_799_999), "2000-02-29T23:59:59.999Z");
        // 2026-01-02T03:04:05.123Z
        assert_eq!(rfc3339_utc_ms(1_767_323_045_123), "2026-01-02T03:04:05.123Z");
        // 2100-03-01 (2100 is not a leap year).
        assert_eq!(rfc3339_utc_ms(4_107_542_400_000), "2100-03-01T00:00:00Z");
    }

    #[test]
    fn timestamps_agree_with_a_day_by_day_walk() {
        let days_in = |y: u64, m: u64| match m {
            4 | 6 | 9 | 11 => 30,
            2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
            2 => 28,
            _ => 31,
        };
        let (mut y, mut m, mut d) = (1970u64, 1u64, 1u64);
        for days in 0..200_000u64 {
            let expected = format!("{y:04}-{m:02}-{d:02}T00:00:00Z");
            assert_eq!(rfc3339_utc_ms(days * MS_PER_DAY), expected, "day {days}");
            d += 1;
            if d > days_in(y, m) {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }

    #[test]
    fn descriptions() {
        assert_eq!(input_description(None), "*/*");
        let json = InputPayload {
            required: Some(false),
            content_type: Some("application/json".into()),
            json_schema: None,
        };
        assert_eq!(input_description(Some(&json)), "application/json");
        let titled = InputPayload {
            required: Some(true),
            content_type: Some("application/json".into()),
            json_schema: Some(serde_json::json!({"title": "Person", "type": "object"})),
        };
        assert_eq!(input_description(Some(&titled)), "JSON 'Person'");
        let empty = InputPayload::default();
        assert_eq!(input_description(Some(&empty)), "none");

        assert_eq!(output_description(None), "application/json");
        assert_eq!(output_description(Some(&OutputPayload::default())), "none");
        let optional = OutputPayload {
            content_type: Some("application/json".into()),
            set_content_type_if_empty: Some(true),
            json_schema: None,
        };
        assert_eq!(output_description(Some(&optional)), "optional application/json");
        let typed = OutputPayload {
            content_type: Some("application/json".into()),
            set_content_type_if_empty: None,
            json_schema: Some(serde_json::json!({"type": "string"})),
        };
        assert_eq!(output_description(Some(&typed)), "JSON string");
    }
}
