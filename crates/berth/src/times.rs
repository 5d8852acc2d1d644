//! Times as docker's client prints them: "2 hours ago", and Go's
//! `time.Time` forms of RFC 3339 times.

fn parse_time(t: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
}

/// How long ago an RFC 3339 time was: "2 hours ago".
pub fn since(t: Option<&str>) -> String {
    let Some(t) = t.and_then(parse_time) else {
        return "N/A".into();
    };
    let secs = (time::OffsetDateTime::now_utc() - t).whole_seconds().max(0);
    let (n, unit) = match secs {
        s if s < 60 => {
            return if s < 2 {
                "Less than a second ago".into()
            } else {
                format!("{s} seconds ago")
            }
        }
        s if s < 3600 => (s / 60, "minute"),
        s if s < 86_400 => (s / 3600, "hour"),
        s if s < 86_400 * 14 => (s / 86_400, "day"),
        s if s < 86_400 * 60 => (s / (86_400 * 7), "week"),
        s if s < 86_400 * 365 * 2 => (s / (86_400 * 30), "month"),
        s => (s / (86_400 * 365), "year"),
    };
    if n == 1 {
        format!(
            "{} {unit} ago",
            if unit == "hour" { "About an" } else { "1" }
        )
    } else {
        format!("{n} {unit}s ago")
    }
}

/// An RFC 3339 time as Go's `time.Time.String()` prints it in UTC, to
/// whole seconds (`2006-01-02 15:04:05 +0000 UTC`), which is what docker's
/// list columns show (`ps`, `images`: `.CreatedAt`).
pub fn go_time(t: &str) -> String {
    let Some(t) = parse_time(t) else {
        return String::new();
    };
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} +0000 UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// An RFC 3339 time to whole seconds in UTC (`2006-01-02T15:04:05Z`), as
/// `history` shows `.CreatedAt`.
pub fn rfc3339_seconds(t: &str) -> String {
    match go_time(t).split_once(' ') {
        Some((date, rest)) => format!("{date}T{}Z", &rest[..8]),
        None => String::new(),
    }
}

/// An RFC 3339 time as Go's `time.Time.String()` prints it in UTC with
/// its fraction of a second (`2006-01-02 15:04:05.726087532 +0000 UTC`,
/// trailing zeros dropped), as `network ls` shows `.CreatedAt`.
pub fn go_time_exact(t: &str) -> String {
    let Some(p) = parse_time(t) else {
        return String::new();
    };
    let whole = go_time(t);
    let nanos = p.nanosecond();
    if nanos == 0 {
        return whole;
    }
    let frac = format!("{nanos:09}");
    let (date_time, zone) = whole.split_at(19);
    format!("{date_time}.{}{zone}", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_as_go_prints_them() {
        assert_eq!(
            go_time("2026-12-05T11:16:53.9566883Z"),
            "2026-12-05 11:16:53 +0000 UTC"
        );
        assert_eq!(
            go_time("2026-12-05T12:16:53+01:00"),
            "2026-12-05 11:16:53 +0000 UTC"
        );
    }
}
