//! Sizes as users write them: `512M`, `2G`, `1024` (MiB when no unit is given, as QEMU).

/// Parses a memory size into MiB.
pub fn parse_mib(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let t = t.strip_suffix(['b', 'B']).unwrap_or(t);
    let (digits, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => (&t[..i], &t[i..]),
        None => (t, "M"),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("invalid size {text:?}: expected e.g. 512M or 2G"))?;
    let mib = match unit.to_ascii_uppercase().as_str() {
        "K" => n / 1024,
        "M" => n,
        "G" => n
            .checked_mul(1024)
            .ok_or_else(|| format!("size {text:?} is too large"))?,
        _ => return Err(format!("invalid size {text:?}: unit must be K, M or G")),
    };
    if mib == 0 {
        return Err(format!("size {text:?} is less than 1 MiB"));
    }
    Ok(mib)
}

/// Parses a byte size as `docker run --memory` does: `32m`, `1g`, `512k`, `100` (bytes).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (digits, shift) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 10),
        Some('m') => (&t[..t.len() - 1], 20),
        Some('g') => (&t[..t.len() - 1], 30),
        _ => (t, 0),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("invalid size {text:?}: expected e.g. 32m or 1g"))?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("size {text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_byte_sizes() {
        assert_eq!(parse_bytes("32m"), Ok(32 << 20));
        assert_eq!(parse_bytes("1G"), Ok(1 << 30));
        assert_eq!(parse_bytes("512kb"), Ok(512 << 10));
        assert_eq!(parse_bytes("100"), Ok(100));
        assert!(parse_bytes("lots").is_err());
    }

    #[test]
    fn parses_common_forms() {
        assert_eq!(parse_mib("512M"), Ok(512));
        assert_eq!(parse_mib("2G"), Ok(2048));
        assert_eq!(parse_mib("2gb"), Ok(2048));
        assert_eq!(parse_mib("16M"), Ok(16));
        assert_eq!(parse_mib("1024"), Ok(1024));
        assert_eq!(parse_mib("2097152K"), Ok(2048));
    }

    #[test]
    fn refuses_nonsense() {
        assert!(parse_mib("lots").is_err());
        assert!(parse_mib("12Q").is_err());
        assert!(parse_mib("0").is_err());
        assert!(parse_mib("").is_err());
    }
}
