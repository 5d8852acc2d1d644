//! Kubernetes quantities (`128Mi`, `1G`, `500m`, `0.5`, `1e3`) as the
//! engine's numbers: bytes for memory, nano-CPUs for CPU.

/// A memory quantity in bytes.
pub fn bytes(q: &str) -> Result<i64, String> {
    let (num, mult) = split(q)?;
    let v = num * mult;
    if !(0.0..9.2e18).contains(&v) {
        return Err(format!("quantity {q:?} is out of range"));
    }
    #[allow(clippy::cast_possible_truncation)]
    Ok(v.ceil() as i64)
}

/// A CPU quantity in billionths of a CPU (`500m` is 500_000_000).
pub fn nano_cpus(q: &str) -> Result<i64, String> {
    let (num, mult) = split(q)?;
    let v = num * mult * 1e9;
    if !(0.0..9.2e18).contains(&v) {
        return Err(format!("quantity {q:?} is out of range"));
    }
    #[allow(clippy::cast_possible_truncation)]
    Ok(v.round() as i64)
}

/// The number and its suffix's multiplier.
fn split(q: &str) -> Result<(f64, f64), String> {
    let q = q.trim();
    let at = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(at);
    // A decimal exponent (1e3) is a number, not a suffix.
    let (num, suffix) = match suffix.strip_prefix(['e', 'E']) {
        Some(exp)
            if !exp.is_empty()
                && exp
                    .trim_start_matches(['+', '-'])
                    .chars()
                    .all(|c| c.is_ascii_digit()) =>
        {
            let n: f64 = format!("{num}e{exp}")
                .parse()
                .map_err(|_| format!("invalid quantity {q:?}"))?;
            return Ok((n, 1.0));
        }
        _ => (num, suffix),
    };
    let n: f64 = num.parse().map_err(|_| format!("invalid quantity {q:?}"))?;
    let mult = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        _ => return Err(format!("invalid quantity {q:?}: unknown suffix {suffix:?}")),
    };
    Ok((n, mult))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_and_cpu_as_kubernetes_reads_them() {
        assert_eq!(bytes("128Mi").unwrap(), 128 << 20);
        assert_eq!(bytes("1G").unwrap(), 1_000_000_000);
        assert_eq!(bytes("1e3").unwrap(), 1000);
        assert_eq!(bytes("1000").unwrap(), 1000);
        assert_eq!(nano_cpus("500m").unwrap(), 500_000_000);
        assert_eq!(nano_cpus("1.5").unwrap(), 1_500_000_000);
        assert_eq!(nano_cpus("2").unwrap(), 2_000_000_000);
        assert!(bytes("12Qi").is_err());
        assert!(bytes("lots").is_err());
        assert!(bytes("-1").is_err());
    }
}
