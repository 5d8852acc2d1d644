//! Sizes as docker's command line takes them: berth's one size parser,
//! for `--memory`, `--shm-size`, a volume's `size` option, the runtime's
//! `update --memory`, the json-file log's `max-size` and berth's own
//! `--max-layer-size`.
//!
//! The grammar is go-units' `parseSize` as Docker 20.10 links it (checked
//! against its dockerd and client): digits with optional `.digits` parts,
//! an optional single space, then an optional unit `k m g t p`, an
//! optional `i` and an optional `b`, in any case; nothing before or after
//! (`" 5m"`, `".5g"`, `"1e3"` and `"1byte"` are refused). The unit counts
//! in 1024s for memory ([`ram_in_bytes`], `64MiB` = `64m` = `64mb`) and in
//! 1000s where docker reads a "human" size ([`from_human_size`]: the
//! json-file log's `max-size`, where `3k` rotates at 3000 bytes). A
//! fraction is kept until the unit is applied (`1.5g`), then cut to whole
//! bytes, as Go's `int64(size)` does.

use std::fmt;

/// Why a size was refused; the messages are docker's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SizeError {
    /// Not a size at all: `invalid size: 'lots'`.
    Invalid(String),
    /// The shape of a size but not a number (`1.5.5m`), in the words of
    /// Go's `strconv.ParseFloat`, which docker shows.
    Number(String),
    /// More bytes than a signed 64-bit count holds (where docker would
    /// wrap around).
    TooLarge(String),
}

impl fmt::Display for SizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SizeError::Invalid(s) => write!(f, "invalid size: '{s}'"),
            SizeError::Number(n) => {
                write!(f, "strconv.ParseFloat: parsing \"{n}\": invalid syntax")
            }
            SizeError::TooLarge(s) => write!(f, "invalid size: '{s}' is too large"),
        }
    }
}

impl std::error::Error for SizeError {}

/// docker's `units.RAMInBytes`: binary units (`k` is 1024).
pub fn ram_in_bytes(s: &str) -> Result<u64, SizeError> {
    parse(s, 1024)
}

/// docker's `units.FromHumanSize`: decimal units (`k` is 1000).
pub fn from_human_size(s: &str) -> Result<u64, SizeError> {
    parse(s, 1000)
}

fn parse(s: &str, base: u32) -> Result<u64, SizeError> {
    let invalid = || SizeError::Invalid(s.to_string());
    let b = s.as_bytes();
    let digits = |at: usize| b[at..].iter().take_while(|c| c.is_ascii_digit()).count();
    // (\d+(\.\d+)*)
    let mut end = digits(0);
    if end == 0 {
        return Err(invalid());
    }
    while b.get(end) == Some(&b'.') && digits(end + 1) > 0 {
        end += 1 + digits(end + 1);
    }
    let number = &s[..end];
    //  ?([kmgtp])?[i]?[b]?$
    let mut rest = s[end..]
        .strip_prefix(' ')
        .unwrap_or(&s[end..])
        .to_ascii_lowercase();
    let power = match rest.chars().next() {
        Some(u @ ('k' | 'm' | 'g' | 't' | 'p')) => {
            rest.remove(0);
            "kmgtp".find(u).map_or(0, |i| i + 1)
        }
        _ => 0,
    };
    let rest = rest.strip_prefix('i').unwrap_or(&rest);
    let rest = rest.strip_prefix('b').unwrap_or(rest);
    if !rest.is_empty() {
        return Err(invalid());
    }
    // More than one fraction matched the pattern but is no number.
    let n: f64 = number
        .parse()
        .map_err(|_| SizeError::Number(number.to_string()))?;
    let scaled = (0..power).fold(n, |v, _| v * f64::from(base));
    // 2^63: the first count a signed 64-bit size cannot hold.
    if scaled >= 9_223_372_036_854_775_808.0 {
        return Err(SizeError::TooLarge(s.to_string()));
    }
    // Whole bytes, the fraction cut off; non-negative and in range.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok(scaled as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Docker 20.10's client and dockerd accept (`create --memory`,
    /// `--shm-size`, `volume create --opt size`) and what they refuse, in
    /// their words.
    #[test]
    fn sizes_parse_as_docker_parses_them() {
        for (s, want) in [
            ("0", 0),
            ("10", 10),
            ("100b", 100),
            ("100B", 100),
            ("1ib", 1),
            ("1kb", 1024),
            ("1KiB", 1024),
            ("1kib", 1024),
            ("1kB", 1024),
            ("1 k", 1024),
            ("6m", 6 << 20),
            ("64M", 64 << 20),
            ("64MiB", 64 << 20),
            ("64mib", 64 << 20),
            ("64MB", 64 << 20),
            ("64Mb", 64 << 20),
            ("1.5g", 3 << 29),
            ("1.5G", 3 << 29),
            ("1t", 1 << 40),
            ("1p", 1 << 50),
            ("1pb", 1 << 50),
            ("1.0000001k", 1024),
        ] {
            assert_eq!(ram_in_bytes(s), Ok(want), "{s}");
        }
        for bad in [
            "", "lots", "-5", "1e3", "1x", ".5g", " 5m", "5m ", "1byte", "1bytes", "1_000", "1  k",
            "1bi", "k",
        ] {
            let e = ram_in_bytes(bad).unwrap_err();
            assert_eq!(e.to_string(), format!("invalid size: '{bad}'"));
        }
        assert_eq!(
            ram_in_bytes("1.5.5m").unwrap_err().to_string(),
            "strconv.ParseFloat: parsing \"1.5.5\": invalid syntax"
        );
    }

    #[test]
    fn human_sizes_count_in_thousands() {
        assert_eq!(from_human_size("3k"), Ok(3000));
        assert_eq!(from_human_size("1.5MB"), Ok(1_500_000));
        assert_eq!(from_human_size("10"), Ok(10));
        assert!(from_human_size("lots").is_err());
    }

    #[test]
    fn sizes_past_a_signed_64_bit_count_are_refused() {
        assert_eq!(ram_in_bytes("8191p"), Ok(8191 << 50));
        assert!(matches!(ram_in_bytes("8192p"), Err(SizeError::TooLarge(_))));
        assert!(matches!(
            ram_in_bytes("99999999999999999999"),
            Err(SizeError::TooLarge(_))
        ));
    }
}
