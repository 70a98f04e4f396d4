//! Sizes as users write them: `512M`, `2G`, `1024` (MiB when no unit is given, as QEMU),
//! and as Docker prints them (`4.26MB`).

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

/// Docker's image size: three significant digits, decimal units (`4.26MB`, `512B`, `1.2GB`).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    let mut text = significant(value, 3);
    if text == "1000" && unit < UNITS.len() - 1 {
        text = "1".into();
        unit += 1;
    }
    format!("{text}{}", UNITS[unit])
}

/// Docker's memory figures (go-units `BytesSize`): four significant digits, binary
/// units (`1.5MiB`, `1GiB`, `512B`).
pub fn human_binary(bytes: f64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut value = bytes.max(0.0);
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{}{}", significant(value, 4), UNITS[unit])
}

/// `value` (below 1000) with `digits` significant digits and no trailing zeros, like Go's `%g`.
fn significant(value: f64, digits: usize) -> String {
    let int_digits = if value < 1.0 {
        1
    } else {
        value.log10().floor() as usize + 1
    };
    let decimals = digits.saturating_sub(int_digits);
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_sizes_have_four_significant_digits() {
        assert_eq!(human_binary(512.0), "512B");
        assert_eq!(human_binary(1_572_864.0), "1.5MiB");
        assert_eq!(human_binary(1_073_741_824.0), "1GiB");
        assert_eq!(human_binary(1_234_567.0), "1.177MiB");
    }

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

    #[test]
    fn sizes_like_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(512), "512B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1000), "1kB");
        assert_eq!(human_size(1500), "1.5kB");
        assert_eq!(human_size(4_261_550), "4.26MB");
        assert_eq!(human_size(77_800_000), "77.8MB");
        assert_eq!(human_size(123_456_789), "123MB");
        assert_eq!(human_size(1_234_567_890), "1.23GB");
        assert_eq!(human_size(999_999), "1MB");
    }
}
