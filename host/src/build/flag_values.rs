//! The values of Dockerfile instruction flags: Go durations (`HEALTHCHECK --interval`)
//! and `RUN --mount` specifications, as BuildKit reads them.

use std::time::Duration;

/// A Go duration: `300ms`, `1.5h`, `1m30s`, `0`; units ns, us (µs), ms, s, m, h.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {s:?}");
    let number = |t: &str| match t {
        "" => Ok(0u128),
        _ => t.parse::<u128>().map_err(|_| bad()),
    };
    let (negative, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut nanos: u128 = 0;
    while !rest.is_empty() {
        let int_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (int, after) = rest.split_at(int_end);
        let (frac, after) = match after.strip_prefix('.') {
            Some(f) => f.split_at(f.find(|c: char| !c.is_ascii_digit()).unwrap_or(f.len())),
            None => ("", after),
        };
        if int.is_empty() && frac.is_empty() {
            return Err(bad());
        }
        let unit_end = after
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_end);
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(format!("missing unit in duration {s:?}")),
            _ => return Err(format!("unknown unit {unit:?} in duration {s:?}")),
        };
        let frac = &frac[..frac.len().min(18)];
        let frac_nanos = number(frac)? * scale / 10u128.pow(frac.len() as u32);
        nanos = number(int)?
            .checked_mul(scale)
            .and_then(|n| n.checked_add(frac_nanos))
            .and_then(|n| n.checked_add(nanos))
            .ok_or_else(bad)?;
        rest = after;
    }
    if negative && nanos != 0 {
        return Err(format!("negative duration {s:?}"));
    }
    u64::try_from(nanos)
        .map(Duration::from_nanos)
        .map_err(|_| bad())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MountKind {
    #[default]
    Bind,
    Cache,
    Tmpfs,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RunMount {
    pub kind: MountKind,
    pub target: String,
    pub source: Option<String>,
    pub from: Option<String>,
    /// Bind mounts are read-only unless `rw`; cache and tmpfs are writable unless `ro`.
    pub read_only: bool,
    pub id: Option<String>,
    /// Cache sharing: shared (default), private or locked.
    pub sharing: Option<String>,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// tmpfs size, raw.
    pub size: Option<String>,
}

/// Parses one `RUN --mount=` value (already expanded): comma-separated `key=value` fields,
/// double quotes allowed around a field or value.
pub fn parse_mount(raw: &str) -> Result<RunMount, String> {
    let (mut fields, mut field, mut quoted) = (Vec::new(), String::new(), false);
    for c in raw.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
    }
    fields.push(field);
    if quoted {
        return Err(format!("unterminated quote in mount {raw:?}"));
    }
    let mut m = RunMount::default();
    let mut read_only: Option<bool> = None;
    let number = |key: &str, v: &str, radix: u32| {
        u32::from_str_radix(v, radix)
            .map_err(|_| format!("mount {key}={v:?} is not a valid number"))
    };
    for field in fields.iter().map(|f| f.trim()).filter(|f| !f.is_empty()) {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.trim().to_string())),
            None => (field.to_ascii_lowercase(), None),
        };
        let need = || {
            value
                .clone()
                .ok_or_else(|| format!("mount option {key} requires a value"))
        };
        let flag = || match value.as_deref() {
            None | Some("true" | "1") => Ok(true),
            Some("false" | "0") => Ok(false),
            Some(v) => Err(format!("mount option {key}={v:?} expects true or false")),
        };
        match key.as_str() {
            "type" => {
                m.kind = match need()?.to_ascii_lowercase().as_str() {
                    "bind" => MountKind::Bind,
                    "cache" => MountKind::Cache,
                    "tmpfs" => MountKind::Tmpfs,
                    t @ ("secret" | "ssh") => {
                        return Err(format!("mount type {t} is not supported"))
                    }
                    t => return Err(format!("unknown mount type {t:?}")),
                }
            }
            "target" | "dst" | "destination" => m.target = need()?,
            "source" | "src" => m.source = Some(need()?),
            "from" => m.from = Some(need()?),
            "readonly" | "ro" => read_only = Some(flag()?),
            "readwrite" | "rw" => read_only = Some(!flag()?),
            "id" => m.id = Some(need()?),
            "sharing" => match need()?.as_str() {
                v @ ("shared" | "private" | "locked") => m.sharing = Some(v.to_string()),
                v => {
                    return Err(format!(
                        "mount sharing={v:?}: expected shared, private or locked"
                    ))
                }
            },
            "mode" => m.mode = Some(number("mode", &need()?, 8)?),
            "uid" => m.uid = Some(number("uid", &need()?, 10)?),
            "gid" => m.gid = Some(number("gid", &need()?, 10)?),
            "size" => m.size = Some(need()?),
            _ => return Err(format!("unknown mount option {key:?}")),
        }
    }
    if m.target.is_empty() {
        return Err(format!("mount {raw:?} requires a target (target=/path)"));
    }
    m.read_only = read_only.unwrap_or(m.kind == MountKind::Bind);
    Ok(m)
}
