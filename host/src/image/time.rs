//! Image creation times: RFC 3339 timestamps as image configs carry them, and Docker's
//! relative form (`2 hours ago`).

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch of an RFC 3339 timestamp such as
/// `2024-09-26T21:31:42.360133735Z` or `2024-01-01T10:00:00+02:00`.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = b.get(range)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(digits).ok()?.parse().ok()
    };
    let sep = |i: usize, set: &[u8]| b.get(i).is_some_and(|c| set.contains(c));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 60 {
        return None;
    }
    let mut rest = &text[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        rest = &frac[n..];
    }
    let offset = match rest.as_bytes() {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let field = |a: u8, b: u8| -> Option<i64> {
                (a.is_ascii_digit() && b.is_ascii_digit())
                    .then(|| i64::from(a - b'0') * 10 + i64::from(b - b'0'))
            };
            let secs = field(*h1, *h2)? * 3600 + field(*m1, *m2)? * 60;
            if *sign == b'-' {
                -secs
            } else {
                secs
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A civil date of days since 1970-01-01 (Howard Hinnant's algorithm, the inverse of
/// `days_from_civil`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `t` as Docker writes times in its API: RFC 3339 in UTC with nanoseconds,
/// `2024-09-26T21:31:42.360133735Z`. Times before 1970 print as the zero time.
/// A filter's `until=`: an RFC 3339 time, unix seconds, or a duration before `now`
/// (`90s`, `30m`, `24h`), as unix seconds.
pub fn until(value: &str, now: SystemTime) -> Result<i64, String> {
    let now = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    if let Some(t) = parse_rfc3339(value) {
        return Ok(t);
    }
    if let Ok(t) = value.parse::<i64>() {
        return Ok(t);
    }
    let bad = || {
        format!("invalid until value {value:?}: a time, unix seconds, or a duration such as 24h")
    };
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let n: i64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(bad()),
    };
    Ok(now - seconds)
}

pub fn rfc3339_nanos(t: SystemTime) -> String {
    let Ok(d) = t.duration_since(UNIX_EPOCH) else {
        return "0001-01-01T00:00:00Z".into();
    };
    format!(
        "{}.{:09}Z",
        date_time(d.as_secs() as i64, 'T'),
        d.subsec_nanos()
    )
}

/// `YYYY-MM-DD<sep>HH:MM:SS` in UTC.
fn date_time(secs: i64, sep: char) -> String {
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}{sep}{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Go's `time.Unix(secs, 0).UTC().String()`, which the docker CLI prints as `CreatedAt`:
/// `2026-12-03 14:45:43 +0000 UTC`.
pub fn go_time_string(secs: i64) -> String {
    format!("{} +0000 UTC", date_time(secs, ' '))
}

/// Docker's `CREATED` column: `2 hours ago`, `3 years ago`; `N/A` for a missing,
/// unparsable or pre-1970 time, as Docker shows for a zero time. The epoch itself is a
/// real time (reproducible builds use it) and shows as `56 years ago`, as in Docker.
pub fn created_since(created: Option<&str>, now: SystemTime) -> String {
    let now = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    match created.and_then(parse_rfc3339) {
        Some(t) if t >= 0 => format!("{} ago", human_duration(now.saturating_sub(t).max(0))),
        _ => "N/A".to_string(),
    }
}

/// Docker's (go-units) `HumanDuration` of `seconds`.
pub fn human_duration(seconds: i64) -> String {
    let minutes = seconds / 60;
    let hours = (seconds + 1800) / 3600;
    match seconds {
        s if s < 1 => "Less than a second".into(),
        1 => "1 second".into(),
        s if s < 60 => format!("{s} seconds"),
        _ if minutes == 1 => "About a minute".into(),
        _ if minutes < 60 => format!("{minutes} minutes"),
        _ if hours == 1 => "About an hour".into(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        s => format!("{} years", s / 3600 / 24 / 365),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn go_time_strings_are_utc_with_the_zone_named() {
        assert_eq!(
            go_time_string(1_727_386_302),
            "2024-09-26 21:31:42 +0000 UTC"
        );
    }

    #[test]
    fn formats_rfc3339_and_parses_it_back() {
        let t = UNIX_EPOCH + Duration::new(1_727_386_302, 360_133_735);
        assert_eq!(rfc3339_nanos(t), "2024-09-26T21:31:42.360133735Z");
        assert_eq!(rfc3339_nanos(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
        for secs in [0u64, 951_782_400, 4_102_444_799] {
            let text = rfc3339_nanos(UNIX_EPOCH + Duration::from_secs(secs));
            assert_eq!(parse_rfc3339(&text), Some(secs as i64), "{text}");
        }
    }

    #[test]
    fn parses_rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2000-03-01T00:00:00Z"), Some(951_868_800));
        assert_eq!(
            parse_rfc3339("2024-09-26T21:31:42.360133735Z"),
            Some(1_727_386_302)
        );
        assert_eq!(
            parse_rfc3339("2024-01-01T02:00:00+02:00"),
            Some(1_704_067_200)
        );
        assert_eq!(
            parse_rfc3339("2023-12-31t19:00:00-05:00"),
            Some(1_704_067_200)
        );
        assert_eq!(parse_rfc3339("0001-01-01T00:00:00Z"), Some(-62_135_596_800));
    }

    #[test]
    fn refuses_what_is_not_rfc3339() {
        for bad in [
            "",
            "yesterday",
            "2024-01-01",
            "2024-01-01T00:00:00",
            "2024-13-01T00:00:00Z",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00+0200",
            "2024-01-01T00:00:00Zjunk",
            "２０２４-01-01T00:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn humanizes_like_docker() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(1), "1 second");
        assert_eq!(human_duration(59), "59 seconds");
        assert_eq!(human_duration(60), "About a minute");
        assert_eq!(human_duration(45 * 60), "45 minutes");
        assert_eq!(human_duration(3600), "About an hour");
        assert_eq!(human_duration(2 * 3600), "2 hours");
        assert_eq!(human_duration(3 * 86_400), "3 days");
        assert_eq!(human_duration(20 * 86_400), "2 weeks");
        assert_eq!(human_duration(90 * 86_400), "3 months");
        assert_eq!(human_duration(3 * 365 * 86_400), "3 years");
    }

    #[test]
    fn created_since_is_relative_or_na() {
        let now = UNIX_EPOCH + Duration::from_secs(1_704_067_200 + 7200);
        let created = Some("2024-01-01T00:00:00Z");
        assert_eq!(created_since(created, now), "2 hours ago");
        assert_eq!(created_since(None, now), "N/A");
        assert_eq!(created_since(Some("garbage"), now), "N/A");
        assert!(created_since(Some("1970-01-01T00:00:00Z"), now).ends_with("years ago"));
        assert_eq!(created_since(Some("0001-01-01T00:00:00Z"), now), "N/A");
    }
}
