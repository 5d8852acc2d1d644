//! The times the `until` (and `since`) filters take, as Docker reads them
//! (`api/types/time.GetTimestamp`): a Go duration before now (`10m`,
//! `1h30m`), an RFC 3339 date or date-time, with or without a zone (none:
//! the local zone), or Unix seconds (`1600000000.5`). The errors are Go's
//! own (`parsing time "2020-13-01": month out of range`): the daemon sends
//! them back as they are.

use super::FilterError;

const NANOS: i128 = 1_000_000_000;

/// `value` as nanoseconds since the epoch; `now_nanos` is what a duration
/// counts back from, `offset` (seconds east of UTC) the zone of a time
/// without one.
pub fn timestamp(value: &str, now_nanos: i128, offset: i32) -> Result<i128, FilterError> {
    if value != "0" {
        if let Some(d) = berth_relay::clock::go_duration(value) {
            // Docker keeps whole seconds of `now - d`.
            let t = now_nanos - d;
            return Ok(t.div_euclid(NANOS) * NANOS);
        }
    }
    let zoned = value.contains(['z', 'Z', '+']) || value.matches('-').count() == 3;
    let layout = if value.contains('.') {
        if zoned {
            "2006-01-02T15:04:05.999999999Z07:00"
        } else {
            "2006-01-02T15:04:05.999999999"
        }
    } else if value.contains('T') {
        let mut colons = value.matches(':').count();
        // A numeric zone (`+01:00`) has a colon of its own.
        if zoned && !value.contains(['z', 'Z']) && colons > 0 {
            colons -= 1;
        }
        match (zoned, colons) {
            (false, 0) => "2006-01-02T15",
            (false, 1) => "2006-01-02T15:04",
            (false, _) => "2006-01-02T15:04:05",
            (true, 0) => "2006-01-02T15Z07:00",
            (true, 1) => "2006-01-02T15:04Z07:00",
            (true, _) => "2006-01-02T15:04:05Z07:00",
        }
    } else if zoned {
        "2006-01-02Z07:00"
    } else {
        "2006-01-02"
    };
    match parse_layout(layout, value, (!zoned).then_some(offset)) {
        Ok(t) => Ok(t),
        // With a dash it was meant as a date: Go's error stands.
        Err(e) if value.contains('-') => Err(FilterError::Time(e)),
        Err(_) => unix_seconds(value).ok_or_else(|| {
            FilterError::Time(format!(
                "failed to parse value as time or duration: {}",
                go_quote(value)
            ))
        }),
    }
}

/// The local zone's offset from UTC now, in seconds (the daemon's zone).
pub fn local_offset() -> i32 {
    let now: libc::time_t = 0;
    // SAFETY: time() with a null pointer only returns the time.
    let now = unsafe { libc::time(std::ptr::null_mut()) }.max(now);
    // SAFETY: zeroed is a valid tm (plain integers and a null pointer).
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are to live locals; localtime_r is reentrant.
    let ok = !unsafe { libc::localtime_r(&now, &mut tm) }.is_null();
    if ok {
        i32::try_from(tm.tm_gmtoff).unwrap_or(0)
    } else {
        0
    }
}

/// `SECONDS[.FRACTION]`, Docker's Unix time form.
fn unix_seconds(s: &str) -> Option<i128> {
    let (secs, frac) = match s.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    };
    let secs: i64 = go_parse_int(secs)?;
    let nanos = match frac {
        None => 0,
        Some(f) => {
            let n: i64 = go_parse_int(f)?;
            let digits = u32::try_from(f.len()).ok()?;
            if digits > 9 {
                i128::from(n) / 10_i128.pow(digits - 9)
            } else {
                i128::from(n) * 10_i128.pow(9 - digits)
            }
        }
    };
    Some(i128::from(secs) * NANOS + nanos)
}

/// Go's `strconv.ParseInt(s, 10, 64)`: an optional sign, then digits only.
fn go_parse_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Go's `strconv.Quote` for the strings that reach it here.
fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&c.escape_default().to_string()),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One element of a Go time layout.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Elem {
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
    Fraction,
    Zone,
}

impl Elem {
    fn text(self) -> &'static str {
        match self {
            Elem::Year => "2006",
            Elem::Month => "01",
            Elem::Day => "02",
            Elem::Hour => "15",
            Elem::Minute => "04",
            Elem::Second => "05",
            Elem::Fraction => ".999999999",
            Elem::Zone => "Z07:00",
        }
    }
}

/// Splits a layout into (literal prefix, element) chunks, as Go's
/// `nextStdChunk` does for the few elements Docker's layouts use.
fn chunks(layout: &str) -> Vec<(&str, Option<Elem>)> {
    const ELEMS: [Elem; 8] = [
        Elem::Fraction,
        Elem::Zone,
        Elem::Year,
        Elem::Month,
        Elem::Day,
        Elem::Hour,
        Elem::Minute,
        Elem::Second,
    ];
    let mut out = Vec::new();
    let mut rest = layout;
    let mut start = 0;
    while start < rest.len() {
        if let Some(e) = ELEMS.iter().find(|e| rest[start..].starts_with(e.text())) {
            out.push((&rest[..start], Some(*e)));
            rest = &rest[start + e.text().len()..];
            start = 0;
        } else {
            start += rest[start..].chars().next().map_or(1, char::len_utf8);
        }
    }
    out.push((rest, None));
    out
}

/// Go's `getnum`: one or two digits (two when `fixed`).
fn getnum(s: &str, fixed: bool) -> Option<(i64, &str)> {
    let b = s.as_bytes();
    if !b.first().is_some_and(u8::is_ascii_digit) {
        return None;
    }
    if !b.get(1).is_some_and(u8::is_ascii_digit) {
        if fixed {
            return None;
        }
        return Some((i64::from(b[0] - b'0'), &s[1..]));
    }
    Some((
        i64::from(b[0] - b'0') * 10 + i64::from(b[1] - b'0'),
        &s[2..],
    ))
}

/// Go's `time.Parse(layout, value)` (`ParseInLocation` with a fixed zone
/// when `offset` is given) for Docker's layouts, with Go's error texts.
fn parse_layout(layout: &str, value: &str, offset: Option<i32>) -> Result<i128, String> {
    let cannot = |value_elem: &str, layout_elem: &str| {
        format!(
            "parsing time {} as {}: cannot parse {} as {}",
            go_quote(value),
            go_quote(layout),
            go_quote(value_elem),
            go_quote(layout_elem)
        )
    };
    let out_of_range =
        |what: &str| format!("parsing time {}: {what} out of range", go_quote(value));
    let (mut year, mut month, mut day, mut hour, mut minute, mut second) = (0, 1, 1, 0, 0, 0);
    let mut nanos: i64 = 0;
    let mut zone = offset.map(i64::from);
    let mut rest = value;
    for (prefix, elem) in chunks(layout) {
        match rest.strip_prefix(prefix) {
            Some(r) => rest = r,
            None => return Err(cannot(rest, prefix)),
        }
        let Some(elem) = elem else {
            if !rest.is_empty() {
                return Err(format!(
                    "parsing time {}: extra text: {}",
                    go_quote(value),
                    go_quote(rest)
                ));
            }
            break;
        };
        let hold = rest;
        let bad = || cannot(hold, elem.text());
        match elem {
            Elem::Year => {
                let digits = rest
                    .get(..4)
                    .filter(|d| d.bytes().all(|b| b.is_ascii_digit()));
                year = digits.and_then(|d| d.parse().ok()).ok_or_else(bad)?;
                rest = &rest[4..];
            }
            Elem::Month => {
                (month, rest) = getnum(rest, true).ok_or_else(bad)?;
                if !(1..=12).contains(&month) {
                    return Err(out_of_range("month"));
                }
            }
            Elem::Day => (day, rest) = getnum(rest, true).ok_or_else(bad)?,
            Elem::Hour => {
                (hour, rest) = getnum(rest, false).ok_or_else(bad)?;
                if !(0..24).contains(&hour) {
                    return Err(out_of_range("hour"));
                }
            }
            Elem::Minute => {
                (minute, rest) = getnum(rest, true).ok_or_else(bad)?;
                if !(0..60).contains(&minute) {
                    return Err(out_of_range("minute"));
                }
            }
            Elem::Second => {
                (second, rest) = getnum(rest, true).ok_or_else(bad)?;
                if !(0..60).contains(&second) {
                    return Err(out_of_range("second"));
                }
            }
            Elem::Fraction => {
                let b = rest.as_bytes();
                if b.len() >= 2 && matches!(b[0], b'.' | b',') && b[1].is_ascii_digit() {
                    let n = 1 + b[1..].iter().take_while(|c| c.is_ascii_digit()).count();
                    let digits = &rest[1..n.min(10)];
                    let scale = 10_i64.pow(9 - u32::try_from(digits.len()).unwrap_or(9));
                    nanos = digits.parse::<i64>().map_err(|_| bad())? * scale;
                    rest = &rest[n..];
                }
            }
            Elem::Zone => {
                if let Some(r) = rest.strip_prefix('Z') {
                    rest = r;
                    zone = Some(0);
                } else {
                    let b = rest.as_bytes();
                    if b.len() < 6 || b[3] != b':' {
                        return Err(bad());
                    }
                    let (h, _) = getnum(&rest[1..3], true).ok_or_else(bad)?;
                    let (m, _) = getnum(&rest[4..6], true).ok_or_else(bad)?;
                    if h > 24 {
                        return Err(out_of_range("time zone offset hour"));
                    }
                    if m > 60 {
                        return Err(out_of_range("time zone offset minute"));
                    }
                    let secs = (h * 60 + m) * 60;
                    zone = Some(match b[0] {
                        b'+' => secs,
                        b'-' => -secs,
                        _ => return Err(bad()),
                    });
                    rest = &rest[6..];
                }
            }
        }
    }
    let month_t = u8::try_from(month)
        .ok()
        .and_then(|m| time::Month::try_from(m).ok())
        .ok_or_else(|| out_of_range("month"))?;
    let date = u8::try_from(day)
        .ok()
        .and_then(|d| time::Date::from_calendar_date(year, month_t, d).ok())
        .ok_or_else(|| out_of_range("day"))?;
    let secs_of_day = hour * 3600 + minute * 60 + second;
    let midnight = date.midnight().assume_utc().unix_timestamp();
    let utc_secs = midnight + secs_of_day - zone.unwrap_or(0);
    Ok(i128::from(utc_secs) * NANOS + i128::from(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i128 = 1_700_000_000_123_456_789;

    fn t(v: &str) -> Result<i128, String> {
        timestamp(v, NOW, 0).map_err(|e| e.to_string())
    }

    fn secs(s: i64) -> i128 {
        i128::from(s) * NANOS
    }

    #[test]
    fn durations_count_back_from_now_in_whole_seconds() {
        assert_eq!(t("1h"), Ok(secs(1_700_000_000 - 3600)));
        assert_eq!(t("1h30m"), Ok(secs(1_700_000_000 - 5400)));
        assert_eq!(t("1.5s"), Ok(secs(1_699_999_998)));
        assert_eq!(t("-1h"), Ok(secs(1_700_003_600)));
        assert_eq!(t("500ms"), Ok(secs(1_699_999_999)));
    }

    #[test]
    fn dates_and_times_in_dockers_layouts() {
        assert_eq!(t("2020-01-01"), Ok(secs(1_577_836_800)));
        assert_eq!(t("2020-01-01T10"), Ok(secs(1_577_872_800)));
        assert_eq!(t("2020-01-01T10:30"), Ok(secs(1_577_874_600)));
        assert_eq!(t("2020-01-01T10:30:05"), Ok(secs(1_577_874_605)));
        assert_eq!(t("2020-01-01T10:30:05Z"), Ok(secs(1_577_874_605)));
        assert_eq!(t("2020-01-01T10:30:05+01:00"), Ok(secs(1_577_871_005)));
        assert_eq!(
            t("2020-01-01T10:30:05.5Z"),
            Ok(secs(1_577_874_605) + 500_000_000)
        );
        assert_eq!(t("2020-01-01Z"), Ok(secs(1_577_836_800)));
        // No zone: the local one (here one hour east).
        assert_eq!(
            timestamp("2020-01-01T10", NOW, 3600),
            Ok(secs(1_577_869_200))
        );
    }

    #[test]
    fn unix_seconds_and_zero() {
        assert_eq!(t("0"), Ok(0));
        assert_eq!(t("1600000000"), Ok(secs(1_600_000_000)));
        assert_eq!(t("1.5"), Ok(secs(1) + 500_000_000));
    }

    #[test]
    fn errors_are_gos_words() {
        assert_eq!(
            t("2020-13-01"),
            Err(r#"parsing time "2020-13-01": month out of range"#.into())
        );
        assert_eq!(
            t("2020-01-01x"),
            Err(r#"parsing time "2020-01-01x": extra text: "x""#.into())
        );
        assert_eq!(
            t("2020-02-30"),
            Err(r#"parsing time "2020-02-30": day out of range"#.into())
        );
        assert_eq!(
            t("2020-1-01"),
            Err(r#"parsing time "2020-1-01" as "2006-01-02": cannot parse "1-01" as "01""#.into())
        );
        assert_eq!(
            t("-5"),
            Err(r#"parsing time "-5" as "2006-01-02": cannot parse "-5" as "2006""#.into())
        );
        assert_eq!(
            t("bad"),
            Err(r#"failed to parse value as time or duration: "bad""#.into())
        );
        assert_eq!(
            t("12:00"),
            Err(r#"failed to parse value as time or duration: "12:00""#.into())
        );
        assert_eq!(
            t("2020-01-01T25"),
            Err(r#"parsing time "2020-01-01T25": hour out of range"#.into())
        );
    }
}
