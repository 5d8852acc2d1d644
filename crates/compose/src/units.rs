//! Durations and sizes as Compose files write them.

/// Go's durations as Compose writes them: `1m30s`, `500ms`, `10s`, `1h`.
pub fn duration_ns(s: &str) -> std::result::Result<u64, String> {
    let bad = || format!("{s:?} is not a duration (like 10s, 1m30s, 500ms)");
    let mut total: f64 = 0.0;
    let mut rest = s.trim();
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(bad());
        }
        let n: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += n * mult;
        rest = &rest[unit_len..];
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok(total.round() as u64)
}

/// Sizes as Compose writes them: bytes, or with b, k, m, g (kb, mb...).
pub fn size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let t = t
        .strip_suffix('b')
        .filter(|r| !r.is_empty() && r.ends_with(['k', 'm', 'g']))
        .unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('b') => (&t[..t.len() - 1], 1),
        _ => (t, 1),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (like 64m, 1g)"))?;
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    Ok((n * mult as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes_as_compose_writes_them() {
        assert_eq!(duration_ns("1m30s").unwrap(), 90_000_000_000);
        assert_eq!(duration_ns("500ms").unwrap(), 500_000_000);
        assert_eq!(duration_ns("1.5s").unwrap(), 1_500_000_000);
        assert!(duration_ns("10").is_err());
        assert!(duration_ns("soon").is_err());
        assert_eq!(size("64m").unwrap(), 64 << 20);
        assert_eq!(size("1gb").unwrap(), 1 << 30);
        assert_eq!(size("512").unwrap(), 512);
        assert!(size("big").is_err());
    }
}
