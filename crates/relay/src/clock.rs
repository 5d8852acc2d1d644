//! The wall clock as berth writes it: RFC 3339 in UTC with nanoseconds,
//! Docker's form for log lines, container times and events. One
//! implementation for the monitor (which links this crate and must stay
//! small: no date crate), the engine and the network store.

/// Now: seconds and nanoseconds since the epoch.
fn now() -> (i64, i64) {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into a valid struct.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    (ts.tv_sec, ts.tv_nsec)
}

/// Nanoseconds since the epoch (the event journal's clock).
pub fn unix_nanos() -> i64 {
    let (s, n) = now();
    s.saturating_mul(1_000_000_000).saturating_add(n)
}

/// Now, UTC, nanoseconds always written (`2026-01-02T03:04:05.123456789Z`).
pub fn rfc3339_nanos() -> String {
    let (s, n) = now();
    format_nanos(s, n)
}

/// `secs.nanos` since the epoch as [`rfc3339_nanos`] writes it.
pub fn format_nanos(secs: i64, nanos: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Go's `time.ParseDuration` (`1h2m3.5s`, `-500ms`, `0`), in nanoseconds;
/// None when it is not one. berth's one parser of Go durations: Docker's
/// flags and filters, Dockerfile HEALTHCHECK options and runc's intervals
/// all take this form.
pub fn go_duration(s: &str) -> Option<i128> {
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num = &rest[..num_end];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return None;
        }
        let n: f64 = num.parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += n * unit;
    }
    if !total.is_finite() || total > 9.3e18 {
        return None;
    }
    // In range (checked above): Go's durations are int64 nanoseconds.
    #[allow(clippy::cast_possible_truncation)]
    let nanos = total.round() as i128;
    Some(if neg { -nanos } else { nanos })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_780), (2026, 11, 23));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        // date -u -d @1767323045 +%FT%T: 2026-01-02T03:04:05
        assert_eq!(
            format_nanos(1_767_323_045, 7),
            "2026-01-02T03:04:05.000000007Z"
        );
        assert_eq!(format_nanos(0, 0), "1970-01-01T00:00:00.000000000Z");
    }

    #[test]
    fn clocks_agree() {
        let a = unix_nanos();
        let text = rfc3339_nanos();
        let b = unix_nanos();
        // The text's seconds lie between the two readings.
        let secs = |n: i64| format_nanos(n.div_euclid(1_000_000_000), 0)[..19].to_string();
        let (lo, hi) = (secs(a), secs(b));
        assert!(
            lo.as_str() <= &text[..19] && &text[..19] <= hi.as_str(),
            "{text}"
        );
    }
}
