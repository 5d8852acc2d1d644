//! Durations and sizes as Compose files write them.

/// Go's durations as Compose writes them: `1m30s`, `500ms`, `10s`, `1h`
/// (compose-go reads them with Go's time.ParseDuration: berth's one
/// parser of those, berth_relay::clock::go_duration). Negative ones are
/// refused: no Compose duration goes back in time.
pub fn duration_ns(s: &str) -> std::result::Result<u64, String> {
    berth_relay::clock::go_duration(s.trim())
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| format!("{s:?} is not a duration (like 10s, 1m30s, 500ms)"))
}

/// Sizes as Compose writes them: bytes, or with b, k, m, g (kb, mb...),
/// read as compose-go reads them, with docker's units.RAMInBytes (binary
/// units): berth_relay::size, berth's one size parser.
pub fn size(s: &str) -> std::result::Result<u64, String> {
    berth_relay::size::ram_in_bytes(s.trim())
        .map_err(|_| format!("{s:?} is not a size (like 64m, 1g)"))
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
