//! Sizes as docker's client prints them: decimal units with Go's `%g`
//! (`4.26MB`), binary ones for memory (`23.54GiB`).

/// `4.26MB`: decimal units, three significant digits, as docker shows sizes.
pub fn size(bytes: u64) -> String {
    human_size(bytes, 3)
}

/// docker's units.HumanSizeWithPrecision: decimal units, Go's `%.*g` of
/// the number (so 999999 bytes are `1e+03kB`, as docker prints them).
pub fn human_size(bytes: u64, precision: usize) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < units.len() {
        v /= 1000.0;
        u += 1;
    }
    format!("{}{}", go_g(v, precision.max(1)), units[u])
}

/// docker's units.BytesSize: binary units, Go's `%.4g` of the number
/// (`23.54GiB`), as `info` shows the memory.
pub fn binary_size(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{}{}", go_g(v, 4), units[u])
}

/// Go's `%.Ng` of a non-negative number.
fn go_g(v: f64, p: usize) -> String {
    let e = format!("{v:.*e}", p - 1);
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i64 = exp.parse().unwrap_or(0);
    let trim = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    if exp < -4 || exp >= i64::try_from(p).unwrap_or(i64::MAX) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim(mant), exp.abs())
    } else {
        let decimals = usize::try_from(i64::try_from(p).unwrap_or(0) - 1 - exp).unwrap_or(0);
        trim(&format!("{v:.decimals$}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_docker() {
        assert_eq!(size(512), "512B");
        assert_eq!(size(4_261_412), "4.26MB");
        assert_eq!(size(1_000_000), "1MB");
        assert_eq!(size(12_345_678_901), "12.3GB");
        assert_eq!(size(999_999), "1e+03kB");
        assert_eq!(human_size(1_984_120, 4), "1.984MB");
        // Four digits, as the classic builder's "Sending build context".
        for (n, want) in [
            (0, "0B"),
            (999, "999B"),
            (1000, "1kB"),
            (2048, "2.048kB"),
            (1_234_567, "1.235MB"),
            (45_600_000, "45.6MB"),
        ] {
            assert_eq!(human_size(n, 4), want, "{n}");
        }
        // docker info's Total Memory on the machine these tests were written on.
        assert_eq!(binary_size(25_276_194_816), "23.54GiB");
        assert_eq!(binary_size(1023), "1023B");
        assert_eq!(binary_size(1024), "1KiB");
    }
}
