//! Wall-clock time in milliseconds, and timestamps as the Restate tools print and parse them:
//! RFC 3339 in UTC with `Z`, with a fraction only when it is non-zero. Restate prints that
//! fraction in two widths, and each place keeps the one Restate uses there: milliseconds
//! ([`rfc3339_ms`]: `2026-01-02T03:04:05.123Z`; the admin API, `idempotency-expires`) or
//! nanoseconds ([`rfc3339_ns`]: `2026-01-02T03:04:05.123000000Z`; a delayed send's
//! `executionTime`). A whole second has no fraction in either (`2026-01-02T03:04:05Z`). The
//! state machine never calls [`now_ms`]: its time comes from record headers.

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Formats milliseconds since the Unix epoch, a fraction as 3 digits.
pub fn rfc3339_ms(ms: u64) -> String {
    rfc3339(ms, false)
}

/// Formats milliseconds since the Unix epoch, a fraction as 9 digits (nanoseconds).
pub fn rfc3339_ns(ms: u64) -> String {
    rfc3339(ms, true)
}

fn rfc3339(ms: u64, nanos: bool) -> String {
    let secs = ms / 1000;
    let frac = ms % 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil-from-days (proleptic Gregorian), valid for all dates after 1970.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    let fraction = match (frac, nanos) {
        (0, _) => String::new(),
        (_, false) => format!(".{frac:03}"),
        (_, true) => format!(".{:09}", frac * 1_000_000),
    };
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}{fraction}Z")
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_known_instants() {
        assert_eq!(super::rfc3339_ms(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339_ms(1_767_323_045_123), "2026-01-02T03:04:05.123Z");
        assert_eq!(super::rfc3339_ms(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(super::rfc3339_ms(1_767_323_045_120), "2026-01-02T03:04:05.120Z");
        assert_eq!(super::rfc3339_ns(1_767_323_045_123), "2026-01-02T03:04:05.123000000Z");
        assert_eq!(super::rfc3339_ns(1_767_323_045_001), "2026-01-02T03:04:05.001000000Z");
        assert_eq!(super::rfc3339_ns(1_767_323_045_000), "2026-01-02T03:04:05Z");
    }
}
